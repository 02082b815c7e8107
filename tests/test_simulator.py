"""The simulator through the real client over loopback TLS and ``wss://``.

These tests use the real reactor on 127.0.0.1 with the simulator's minted CA
as trust root; timers that matter are tested in
``tests/test_simulator_memory.py`` with a Clock.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, reactor
from twisted.python.filepath import FilePath
from twisted.trial.unittest import TestCase

from ctrader_twisted import Client
from ctrader_twisted.errors import BadVolumeError, NotAuthenticatedError
from ctrader_twisted.simulator import CertificateSet, Simulator, loadOrMintCertificates, mintCertificates
from ctrader_twisted.tcp import TcpProtocol
from ctrader_twisted.websocket import WebSocketProtocol


class Counter:
    """Counts messages of one type; ``reached(n)`` fires once *n* have arrived."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self._waiters: list[tuple[int, defer.Deferred[list[Any]]]] = []

    def __call__(self, item: Any) -> None:
        self.items.append(item)
        for entry in list(self._waiters):
            if len(self.items) >= entry[0]:
                self._waiters.remove(entry)
                entry[1].callback(self.items)

    def reached(self, n: int, timeout: float = 10) -> defer.Deferred[list[Any]]:
        d: defer.Deferred[list[Any]] = defer.Deferred()
        if len(self.items) >= n:
            d.callback(self.items)
        else:
            self._waiters.append((n, d))
            d.addTimeout(timeout, reactor)
        return d


class LoopbackTestCase(TestCase):
    timeout = 30

    def setUp(self) -> None:
        self.sim = Simulator(seed=5, spotInterval=0.05)
        self.listening = self.sim.listen(reactor)
        self.addCleanup(self.sim.stop)

    def client(self, protocol: type = TcpProtocol, port: int | None = None, **kwargs: Any) -> Client:
        if port is None:
            port = self.listening.wsPort if protocol is WebSocketProtocol else self.listening.tlsPort
        kwargs.setdefault("trustRoot", self.listening.caCertificate)
        client = Client("localhost", port, protocol, reactor=reactor, **kwargs)
        client.startService()
        self.addCleanup(client.stopService)
        return client

    async def login(self, client: Client) -> int:
        sim = self.sim
        await client.request("ProtoOAApplicationAuthReq", clientId=sim.clientId, clientSecret=sim.clientSecret)
        accountId = sim.accountIds[0]
        await client.request("ProtoOAAccountAuthReq", ctidTraderAccountId=accountId, accessToken=sim.accessToken)
        return accountId

    async def session(self, protocol: type) -> None:
        """Auth, reference data, spots, a trade and history over one transport."""
        client = self.client(protocol)
        error = await self.assertFailure(client.request("ProtoOAVersionReq"), NotAuthenticatedError)
        self.assertEqual(error.errorCode, "CH_CLIENT_NOT_AUTHENTICATED")
        accountId = await self.login(client)
        version = await client.request("ProtoOAVersionReq")
        self.assertTrue(version.version)
        symbols = await client.request("ProtoOASymbolsListReq", ctidTraderAccountId=accountId)
        self.assertIn("EURUSD", [s.symbolName for s in symbols.symbol])
        [spec] = (await client.request("ProtoOASymbolByIdReq", ctidTraderAccountId=accountId, symbolId=[41])).symbol
        self.assertEqual((spec.digits, spec.lotSize), (2, 10000))
        trader = await client.request("ProtoOATraderReq", ctidTraderAccountId=accountId)
        self.assertEqual(trader.trader.ctidTraderAccountId, accountId)

        spots = Counter()
        client.addListener("ProtoOASpotEvent", spots)
        await client.request("ProtoOASubscribeSpotsReq", ctidTraderAccountId=accountId, symbolId=[1, 279])
        events = await spots.reached(6)
        self.assertEqual({e.symbolId for e in events[:2]}, {1, 279})

        executions = Counter()
        client.addListener("ProtoOAExecutionEvent", executions)
        accepted = await client.request(
            "ProtoOANewOrderReq", ctidTraderAccountId=accountId, symbolId=1, orderType=1, tradeSide=1, volume=100000
        )
        self.assertEqual(accepted.executionType, 2)
        filled = (await executions.reached(2))[1]
        self.assertEqual(filled.executionType, 3)
        await self.assertFailure(
            client.request(
                "ProtoOANewOrderReq", ctidTraderAccountId=accountId, symbolId=1, orderType=1, tradeSide=1, volume=123
            ),
            BadVolumeError,
        )
        await client.request(
            "ProtoOAClosePositionReq", ctidTraderAccountId=accountId, positionId=filled.position.positionId, volume=100000
        )
        closed = (await executions.reached(4))[3]
        self.assertEqual(closed.position.positionStatus, 2)
        reconcile = await client.request("ProtoOAReconcileReq", ctidTraderAccountId=accountId)
        self.assertEqual(list(reconcile.position), [])
        wednesday = 1_767_744_000_000  # 2026-01-07 00:00 UTC: two trading days follow
        bars = await client.request(
            "ProtoOAGetTrendbarsReq", ctidTraderAccountId=accountId, symbolId=1, period=9,
            fromTimestamp=wednesday, toTimestamp=wednesday + 48 * 3600_000,
        )
        self.assertGreaterEqual(len(bars.trendbar), 47)

    async def test_sessionOverTLS(self) -> None:
        await self.session(TcpProtocol)

    async def test_sessionOverWebSocket(self) -> None:
        await self.session(WebSocketProtocol)

    async def burst(self, protocol: type) -> None:
        client = self.client(protocol)
        accountId = await self.login(client)
        spots = Counter()
        client.addListener("ProtoOASpotEvent", spots)
        await client.request("ProtoOASubscribeSpotsReq", ctidTraderAccountId=accountId, symbolId=[41])
        await spots.reached(1)
        before = len(spots.items)
        written = await self.sim.burst(20000, symbolId=41)
        self.assertEqual(written, 20000)
        await spots.reached(before + 20000, timeout=20)
        self.assertEqual({e.symbolId for e in spots.items}, {41})

    async def test_burstOverTLS(self) -> None:
        await self.burst(TcpProtocol)

    async def test_burstOverWebSocket(self) -> None:
        await self.burst(WebSocketProtocol)

    async def test_stopDropsConnections(self) -> None:
        client = self.client()
        await self.login(client)
        lost: defer.Deferred[None] = defer.Deferred()
        client.setDisconnectedCallback(lambda c, reason: lost.called or lost.callback(None))
        await self.sim.stop()
        await lost
        self.assertEqual(self.sim.sessions, [])


class ListenerOptionTests(TestCase):
    timeout = 20

    async def roundTrip(self, sim: Simulator, port: int, **kwargs: Any) -> None:
        client = Client("localhost", port, reactor=reactor, **kwargs)
        client.startService()
        self.addCleanup(client.stopService)
        await client.request("ProtoOAApplicationAuthReq", clientId=sim.clientId, clientSecret=sim.clientSecret)
        self.assertTrue((await client.request("ProtoOAVersionReq")).version)

    async def test_plainListener(self) -> None:
        """The plain listener is off by default and on only when asked for."""
        sim = Simulator()
        listening = sim.listen(reactor, tlsPort=None, wsPort=None, plainPort=0)
        self.addCleanup(sim.stop)
        self.assertIsNone(listening.tlsPort)
        self.assertIsNone(listening.wsPort)
        await self.roundTrip(sim, listening.plainPort, useTLS=False)
        other = Simulator()
        self.assertIsNone(other.listen(reactor, wsPort=None).plainPort)
        self.addCleanup(other.stop)

    async def test_suppliedCertificate(self) -> None:
        certs = mintCertificates()
        sim = Simulator()
        listening = sim.listen(reactor, wsPort=None, certificate=certs)
        self.addCleanup(sim.stop)
        self.assertEqual(listening.caPEM, certs.caPEM)
        await self.roundTrip(sim, listening.tlsPort, trustRoot=certs.caPEM)

    async def test_moreHostNames(self) -> None:
        """A certificate minted for more names verifies under each of them
        (here demo.ctraderapi.com, reached at 127.0.0.1), and under no other."""
        from twisted.internet.endpoints import TCP4ClientEndpoint, wrapClientTLS
        from twisted.internet.ssl import Certificate, optionsForClientTLS

        certs = mintCertificates(["localhost", "demo.ctraderapi.com"])
        sim = Simulator()
        listening = sim.listen(reactor, wsPort=None, certificate=certs)
        self.addCleanup(sim.stop)
        ca = Certificate.loadPEM(certs.caPEM)

        def endpoint(name: str) -> Any:
            return wrapClientTLS(optionsForClientTLS(name, ca), TCP4ClientEndpoint(reactor, "127.0.0.1", listening.tlsPort))

        await self.roundTrip(sim, listening.tlsPort, endpoint=endpoint("demo.ctraderapi.com"))
        refused = Client("live.ctraderapi.com", listening.tlsPort, reactor=reactor, endpoint=endpoint("live.ctraderapi.com"))
        refused.startService()
        self.addCleanup(refused.stopService)
        with self.assertRaises(Exception) as caught:
            await refused.whenReady(5)
        self.assertIn("VerificationError", repr(caught.exception))
        self.assertRaises(ValueError, mintCertificates, ["localhost", "bad name"])
        self.assertRaises(ValueError, mintCertificates, [])

    def test_certificateDirectoryFollowsTheNames(self) -> None:
        """Kept certificates are used while they name every host asked for and
        are not about to expire; otherwise minted anew, never half-written."""
        from ctrader_twisted.simulator.certs import certificateNames

        directory = FilePath(self.mktemp())
        first, _ = loadOrMintCertificates(directory.path)
        both, minted = loadOrMintCertificates(directory.path, ["localhost", "demo.ctraderapi.com"])
        self.assertTrue(minted)
        self.assertNotEqual(both.caPEM, first.caPEM)
        self.assertEqual(certificateNames(both.certificatePEM)[0], {"localhost", "demo.ctraderapi.com"})
        self.assertEqual(loadOrMintCertificates(directory.path), (both, False), "a subset of the names: kept")
        self.assertEqual(directory.child("server.key").getPermissions().shorthand(), "rw-------")
        self.assertEqual(sorted(directory.listdir()), ["ca.pem", "server.key", "server.pem"])
        # Expiring tomorrow: minted anew.
        expiring = mintCertificates(days=0)
        directory.child("server.pem").setContent(expiring.certificatePEM)
        self.assertTrue(loadOrMintCertificates(directory.path)[1])
        # Not a certificate at all: minted anew.
        directory.child("server.pem").setContent(b"garbage")
        renewed, minted = loadOrMintCertificates(directory.path)
        self.assertTrue(minted)
        self.assertEqual(directory.child("server.pem").getContent(), renewed.certificatePEM)

    def test_hostnameOption(self) -> None:
        from twisted.python.usage import UsageError

        from ctrader_twisted.simulator.tap import Options

        options = Options()
        options.parseOptions(["--hostname", "localhost, demo.ctraderapi.com"])
        self.assertEqual(options["hostnames"], ["localhost", "demo.ctraderapi.com"])
        for bad in (["--hostname", "a,,b"], ["--hostname", "two words"],
                    ["--hostname", "demo.ctraderapi.com", "--certificate", "c.pem", "--private-key", "k.pem"]):
            with self.assertRaises(UsageError) as caught:
                Options().parseOptions(bad)
            self.assertIn("--hostname", str(caught.exception))

    def test_certificateDirectory(self) -> None:
        directory = FilePath(self.mktemp())
        first, minted = loadOrMintCertificates(directory.path)
        self.assertTrue(minted)
        again, mintedAgain = loadOrMintCertificates(directory.path)
        self.assertFalse(mintedAgain)
        self.assertEqual(again, first)
        self.assertEqual(directory.child("server.key").getPermissions().shorthand(), "rw-------")
        self.assertIsInstance(first, CertificateSet)
        self.assertNotIn(b"PRIVATE", repr(first).encode())
