# -*- test-case-name: tests.test_client -*-
"""Server addresses and the construction of verified TLS client endpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet._sslverify import IOpenSSLTrustRoot
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.ssl import Certificate, optionsForClientTLS, trustRootFromCertificates

__all__ = ["EndPoints", "clientEndpoint", "loadTrustRoot"]


class EndPoints:
    """cTrader Open API addresses (names as in the official SDK)."""

    #: OAuth pages and token endpoint (HTTP; not used by the socket client).
    AUTH_URI = "https://openapi.ctrader.com/apps/auth"
    TOKEN_URI = "https://openapi.ctrader.com/apps/token"
    #: Proxies for demo and live accounts (separate systems).
    PROTOBUF_DEMO_HOST = "demo.ctraderapi.com"
    PROTOBUF_LIVE_HOST = "live.ctraderapi.com"
    #: Port for protobuf over TLS TCP and over WebSocket (``wss://host:5035``).
    PROTOBUF_PORT = 5035


def loadTrustRoot(trustRoot: Any) -> IOpenSSLTrustRoot | None:
    """Turn the accepted forms of a trust root into an ``IOpenSSLTrustRoot``.

    :param trustRoot: ``None`` (the platform's trust store), an
        ``IOpenSSLTrustRoot``, a :class:`~twisted.internet.ssl.Certificate`, a
        list of them, PEM bytes, or the path of a PEM file (one or more CA
        certificates).
    :raises ValueError: the PEM data holds no certificate.
    """
    if trustRoot is None or IOpenSSLTrustRoot.providedBy(trustRoot):
        return trustRoot
    if isinstance(trustRoot, Certificate):
        return trustRootFromCertificates([trustRoot])
    if isinstance(trustRoot, (list, tuple)):
        return trustRootFromCertificates(list(trustRoot))
    if isinstance(trustRoot, (str, Path)):
        trustRoot = Path(trustRoot).read_bytes()
    if isinstance(trustRoot, bytes):
        marker = b"-----BEGIN CERTIFICATE-----"
        chunks = [marker + c for c in trustRoot.split(marker)[1:]]
        if not chunks:
            raise ValueError("the trust root holds no PEM certificate")
        return trustRootFromCertificates([Certificate.loadPEM(c) for c in chunks])
    raise TypeError(f"unsupported trust root: {type(trustRoot).__name__}")


def clientEndpoint(
    reactor: Any,
    host: str,
    port: int,
    *,
    useTLS: bool = True,
    trustRoot: Any = None,
    timeout: float = 30,
) -> IStreamClientEndpoint:
    """A client endpoint for *host*:*port*, TLS-verified by default.

    The certificate chain is checked against *trustRoot* (the platform's trust
    store when ``None``) and the certificate must be issued for *host*
    (``optionsForClientTLS`` with ``service_identity``; SNI is sent).

    :param useTLS: ``False`` gives a plain TCP endpoint; only the simulator's
        benchmark listener speaks plain TCP: real cTrader proxies require TLS.
    """
    endpoint = HostnameEndpoint(reactor, host, port, timeout=timeout)
    if not useTLS:
        return endpoint
    options = optionsForClientTLS(host, trustRoot=loadTrustRoot(trustRoot))
    return wrapClientTLS(options, endpoint)
