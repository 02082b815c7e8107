# -*- test-case-name: tests.test_simulator_cli -*-
"""The ``twistd ctrader-simulator`` plugin, and the one table of the
simulator's options (``ctrader-twisted simulator``, ``ctrader-simulator`` and
``python -m ctrader_twisted.simulator`` build their argparse options from it).

``twistd -n ctrader-simulator`` listens on 5035 (TLS TCP) and 5036
(``wss://``) on 127.0.0.1 with a certificate kept in ``--cert-dir`` (minted
there the first time), and writes the credentials to accept to
``credentials.json`` beside it (owner-readable only). ``--http-port`` adds the
OAuth consent page and token endpoint over HTTPS (:mod:`.oauth`).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from twisted.python import usage

from .certs import CertificateSet, loadOrMintCertificates

__all__ = ["Options", "SimulatorService", "makeService", "describe", "DEFAULT_CERT_DIR"]

#: Where the generated CA, certificate and credentials are kept.
DEFAULT_CERT_DIR = "~/.ctrader-twisted/simulator"


def _port(value: str | int | None, name: str) -> int | None:
    if value is None or str(value).lower() in ("none", "off", ""):
        return None
    try:
        port = int(value)
    except ValueError:
        raise usage.UsageError(f"--{name} must be a port number or 'none'") from None
    if not 0 <= port < 65536:
        raise usage.UsageError(f"--{name} must be between 0 and 65535")
    return port


class Options(usage.Options):
    """Command-line options of the simulator (``twistd`` and ``python -m``)."""

    synopsis = "[options]"
    longdesc = (
        "Run a local cTrader Open API simulator: TLS TCP and wss:// listeners with "
        "real semantics (auth, symbols, spots, trend bars, trading) for offline "
        "development and tests. Ports: 0 picks a free port, 'none' disables."
    )
    optParameters = [
        ["tls-port", None, "5035", "TLS TCP port (protobuf frames), or 'none'."],
        ["ws-port", None, "5036", "wss:// port (one protobuf message per binary message), or 'none'."],
        ["plain-port", None, None, "Plain TCP port without TLS, for benchmarks only (off unless given)."],
        ["http-port", None, None, "HTTPS port of the OAuth pages /apps/auth and /apps/token (off unless given)."],
        ["interface", None, "127.0.0.1", "Interface to listen on."],
        ["cert-dir", None, DEFAULT_CERT_DIR, "Directory of the generated CA and certificate (ca.pem: trust it)."],
        ["hostname", None, "localhost", "Host names of the generated certificate, comma-separated (add "
         "demo.ctraderapi.com to run code written for the demo server, with a hosts-file entry)."],
        ["certificate", None, None, "Server certificate PEM file to use instead of the generated one."],
        ["private-key", None, None, "Private key PEM file of --certificate."],
        ["ca", None, None, "CA certificate PEM file that signed --certificate (default: the certificate itself)."],
        ["seed", None, 0, "Seed of prices and tokens.", int],
        ["spot-interval", None, 1.0, "Seconds between spot events.", float],
        ["idle-timeout", None, 30.0, "Seconds of silence before a connection is closed (0: never).", float],
        ["client-id", None, "sim-client-id", "Application client id to accept."],
    ]

    def opt_version(self) -> None:
        """Print ctrader-twisted's version (not Twisted's) and exit."""
        from .._version import __version__

        print(f"twistd ctrader-simulator (ctrader-twisted) {__version__}")
        raise SystemExit(0)

    def postOptions(self) -> None:
        self["tls-port"] = _port(self["tls-port"], "tls-port")
        self["ws-port"] = _port(self["ws-port"], "ws-port")
        self["plain-port"] = _port(self["plain-port"], "plain-port")
        self["http-port"] = _port(self["http-port"], "http-port")
        if self["tls-port"] is None and self["ws-port"] is None and self["plain-port"] is None:
            raise usage.UsageError("nothing to listen on: give at least one port")
        if bool(self["certificate"]) != bool(self["private-key"]):
            raise usage.UsageError("--certificate and --private-key go together")
        names = [n.strip() for n in str(self["hostname"]).split(",")]
        if not all(names) or any(" " in n for n in names):
            raise usage.UsageError(f"--hostname must be host names separated by commas, not {self['hostname']!r}")
        if self["certificate"] and names != ["localhost"]:
            raise usage.UsageError("--hostname names the generated certificate: it cannot go with --certificate")
        self["hostnames"] = names
        spotInterval, idleTimeout = self["spot-interval"], self["idle-timeout"]
        if not (math.isfinite(spotInterval) and spotInterval > 0):
            raise usage.UsageError(f"--spot-interval must be a positive number of seconds, not {spotInterval}")
        if not (math.isfinite(idleTimeout) and idleTimeout >= 0):
            raise usage.UsageError(f"--idle-timeout must be a number of seconds >= 0 (0: never), not {idleTimeout}")
        # The secret comes from the environment, never from the command line.
        self["client-secret"] = os.environ.get("CTRADER_SIMULATOR_CLIENT_SECRET", "sim-client-secret")

    def certificates(self) -> tuple[CertificateSet, bool]:
        """The certificates to serve, and whether they were minted just now."""
        if self["certificate"]:
            certPEM = Path(self["certificate"]).read_bytes()
            keyPEM = Path(self["private-key"]).read_bytes()
            caPEM = Path(self["ca"]).read_bytes() if self["ca"] else certPEM
            return CertificateSet(caPEM=caPEM, certificatePEM=certPEM, keyPEM=keyPEM), False
        return loadOrMintCertificates(self["cert-dir"], self["hostnames"])


def describe(simulator: Any, listening: Any, certDir: str | None) -> str:
    """A human-readable summary: addresses, CA file and the credentials to use."""
    lines = ["ctrader-twisted simulator"]
    if listening.tlsPort is not None:
        lines.append(f"  TLS TCP:    {listening.host}:{listening.tlsPort}")
    if listening.wsPort is not None:
        lines.append(f"  WebSocket:  wss://{listening.host}:{listening.wsPort}")
    if listening.plainPort is not None:
        lines.append(f"  plain TCP:  {listening.host}:{listening.plainPort} (no TLS, benchmarks only)")
    if getattr(listening, "httpPort", None) is not None:
        lines.append(f"  OAuth:      {listening.authUri} and {listening.tokenUri}")
    if certDir:
        lines.append(f"  trust this CA: {Path(certDir).expanduser() / 'ca.pem'}")
    lines += [
        f"  clientId:     {simulator.clientId}",
        f"  clientSecret: {simulator.clientSecret}",
        f"  accessToken:  {simulator.accessToken}",
        f"  refreshToken: {simulator.refreshToken}",
        "  accounts:     "
        + ", ".join(f"{i} ({'live' if simulator.accounts[i].isLive else 'demo'})" for i in simulator.accountIds),
    ]
    return "\n".join(lines)


def writeCredentials(simulator: Any, listening: Any, directory: str) -> Path:
    """Write the credentials and ports to ``credentials.json`` (mode 0600)."""
    path = Path(directory).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    target = path / "credentials.json"
    data = {
        "host": listening.host,
        "tlsPort": listening.tlsPort,
        "wsPort": listening.wsPort,
        "plainPort": listening.plainPort,
        "httpPort": getattr(listening, "httpPort", None),
        "clientId": simulator.clientId,
        "clientSecret": simulator.clientSecret,
        "accessToken": simulator.accessToken,
        "refreshToken": simulator.refreshToken,
        "accounts": [{"ctidTraderAccountId": i, "isLive": simulator.accounts[i].isLive} for i in simulator.accountIds],
        "caFile": str(path / "ca.pem"),
    }
    # The old file stays whole until the new one is complete.
    temporary = path / f".credentials.json.{os.getpid()}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2)
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return target


class SimulatorService(Service):
    """Runs a :class:`~ctrader_twisted.simulator.Simulator` while the service runs.

    :ivar simulator: the simulator, once started.
    :ivar listening: where it listens, once started.
    """

    _log = Logger()

    def __init__(self, options: Options, reactor: Any = None) -> None:
        self.options = options
        self._reactor = reactor
        self.simulator: Any = None
        self.listening: Any = None

    def startService(self) -> None:
        from .server import Simulator

        reactor = self._reactor
        if reactor is None:
            from twisted.internet import reactor as globalReactor

            reactor = globalReactor
        options = self.options
        certs, minted = options.certificates()
        self.simulator = Simulator(
            seed=options["seed"],
            clock=reactor,
            spotInterval=options["spot-interval"],
            idleTimeout=options["idle-timeout"] or None,
            clientId=options["client-id"],
            clientSecret=options["client-secret"],
        )
        self.listening = self.simulator.listen(
            reactor,
            tlsPort=options["tls-port"],
            wsPort=options["ws-port"],
            plainPort=options["plain-port"],
            interface=options["interface"],
            certificate=certs,
            httpPort=options["http-port"],
        )
        super().startService()
        certDir = None if options["certificate"] else options["cert-dir"]
        credentials = writeCredentials(self.simulator, self.listening, options["cert-dir"])
        self._log.info(
            "Simulator up: TLS {tls}, wss {ws}, plain {plain}, OAuth HTTPS {http}; CA {ca} ({state}); "
            "credentials in {credentials}; accounts {accounts}",
            tls=self.listening.tlsPort,
            ws=self.listening.wsPort,
            plain=self.listening.plainPort,
            http=self.listening.httpPort,
            ca=str(Path(certDir).expanduser() / "ca.pem") if certDir else options["ca"] or options["certificate"],
            state="minted now" if minted else "existing",
            credentials=str(credentials),
            accounts=self.simulator.accountIds,
        )

    def stopService(self) -> Deferred[None]:
        super().stopService()
        if self.simulator is None:
            return succeed(None)
        return self.simulator.stop()


def makeService(options: Options) -> SimulatorService:
    """The ``twistd`` entry point."""
    return SimulatorService(options)
