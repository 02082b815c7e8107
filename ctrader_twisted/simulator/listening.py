# -*- test-case-name: tests.test_simulator -*-
"""Where a simulator listens: its ports and the certificate they serve.

:func:`listen` opens the TLS TCP, ``wss://`` and plain TCP ports a
:class:`~ctrader_twisted.simulator.Simulator` asks for, with a server
certificate from :func:`serverCertificates` (minted by
:mod:`~ctrader_twisted.simulator.certs` unless one is supplied), and
describes them in a :class:`Listening`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Union, cast

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IListeningPort, IProtocolFactory
from twisted.internet.ssl import Certificate, PrivateCertificate
from twisted.logger import Logger

from .certs import CertificateSet, mintCertificates

__all__ = ["Listening", "listen", "serverCertificates"]

_log = Logger()


@dataclass(frozen=True)
class Listening:
    """Where a simulator listens and the CA certificate clients must trust.

    :ivar tlsPort: TLS TCP port, or ``None``.
    :ivar wsPort: ``wss://`` port, or ``None``.
    :ivar plainPort: plain TCP port (benchmarks only), or ``None``.
    :ivar caCertificate: pass it as ``Client(..., trustRoot=...)``.
    :ivar caPEM: the same certificate in PEM form.
    :ivar host: the name the server certificate is issued for.
    :ivar ports: the listening ports (the simulator stops them).
    :ivar httpPort: HTTPS port of the OAuth pages, or ``None``.
    """

    tlsPort: int | None
    wsPort: int | None
    plainPort: int | None
    caCertificate: Certificate
    caPEM: bytes
    host: str = "localhost"
    ports: list[IListeningPort] = field(default_factory=list, repr=False, compare=False)
    httpPort: int | None = None

    @property
    def authUri(self) -> str | None:
        """The consent page (``EndPoints.AUTH_URI`` of this simulator), or ``None``."""
        return None if self.httpPort is None else f"https://{self.host}:{self.httpPort}/apps/auth"

    @property
    def tokenUri(self) -> str | None:
        """The token endpoint (``EndPoints.TOKEN_URI`` of this simulator), or ``None``."""
        return None if self.httpPort is None else f"https://{self.host}:{self.httpPort}/apps/token"


def serverCertificates(certificate: CertificateSet | PrivateCertificate | tuple[bytes, ...] | None) -> CertificateSet:
    """The certificates to serve for a ``certificate`` argument of :func:`listen`.

    ``None`` mints a CA and a ``localhost`` certificate; a
    ``PrivateCertificate`` is self-signed (its own CA); a tuple is
    ``(certificatePEM, keyPEM)`` or ``(certificatePEM, keyPEM, caPEM)``.
    """
    if certificate is None:
        return mintCertificates()
    if isinstance(certificate, CertificateSet):
        return certificate
    if isinstance(certificate, PrivateCertificate):
        pem = certificate.dumpPEM()
        marker = b"-----BEGIN CERTIFICATE-----"
        certPEM = pem[pem.index(marker):] if marker in pem else certificate.dump()  # type: ignore[arg-type]
        keyPEM = certificate.privateKey.dump()  # type: ignore[attr-defined]
        return CertificateSet(caPEM=certPEM, certificatePEM=certPEM, keyPEM=keyPEM)
    if isinstance(certificate, tuple) and len(certificate) in (2, 3):
        certPEM, keyPEM = certificate[0], certificate[1]
        caPEM = certificate[2] if len(certificate) == 3 else certPEM
        return CertificateSet(caPEM=caPEM, certificatePEM=certPEM, keyPEM=keyPEM)
    raise TypeError(f"unsupported certificate: {type(certificate).__name__}")


def listen(
    reactor: Any,
    serverFactory: Callable[[Literal["tcp", "ws"]], IProtocolFactory],
    tlsPort: int | None,
    wsPort: int | None,
    plainPort: int | None,
    interface: str,
    certificate: CertificateSet | PrivateCertificate | tuple[bytes, ...] | None,
    httpPort: int | None = None,
    httpFactory: Callable[[], IProtocolFactory] | None = None,
) -> Listening:
    """Open the ports asked for (synchronously) and return where they are.

    If one port cannot be opened, those already opened are closed and the
    error is raised.

    :param serverFactory: builds the server factory of a transport
        (``"tcp"`` framing or ``"ws"`` messages), one per port.
    :param tlsPort: TLS TCP port (0: any free port; ``None``: none).
    :param wsPort: ``wss://`` port (0: any free port; ``None``: none).
    :param plainPort: plain TCP port (0: any free port; ``None``: none).
    :param certificate: see :func:`serverCertificates`.
    :param httpPort: HTTPS port (0: any free port; ``None``: none) served by
        the factory *httpFactory* builds.
    """
    certs = serverCertificates(certificate)
    server = PrivateCertificate.loadPEM(certs.keyPEM + b"\n" + certs.certificatePEM)
    options = server.options()
    ports: list[IListeningPort] = []

    def number(port: IListeningPort) -> int:
        ports.append(port)
        return cast(Union[IPv4Address, IPv6Address], port.getHost()).port

    try:
        tls = number(reactor.listenSSL(tlsPort, serverFactory("tcp"), options, interface=interface)) if tlsPort is not None else None
        ws = number(reactor.listenSSL(wsPort, serverFactory("ws"), options, interface=interface)) if wsPort is not None else None
        plain = number(reactor.listenTCP(plainPort, serverFactory("tcp"), interface=interface)) if plainPort is not None else None
        http = None
        if httpPort is not None:
            if httpFactory is None:
                raise ValueError("httpPort needs an httpFactory")
            http = number(reactor.listenSSL(httpPort, httpFactory(), options, interface=interface))
    except Exception:
        for port in ports:
            port.stopListening()
        raise
    _log.info(
        "Simulator listening on {interface}: TLS {tls}, WebSocket {ws}, plain {plain}, OAuth HTTPS {http}",
        interface=interface, tls=tls, ws=ws, plain=plain, http=http,
    )
    return Listening(tls, ws, plain, Certificate.loadPEM(certs.caPEM), certs.caPEM, "localhost", ports, http)
