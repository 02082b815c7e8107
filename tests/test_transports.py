"""One set of client behaviour tests, run over every transport.

:class:`ClientBehaviourMixin` holds the test bodies; each subclass pairs it
with a transport (TLS TCP framing or WebSocket) and a scripted in-memory
server speaking that transport, driven by a ``Clock``.
:class:`LoopbackMixin` does the same over real loopback TLS (``wss://`` for
the WebSocket transport), once against small servers minted in the test and
once against the simulator.
"""

from __future__ import annotations

from typing import Any, Callable

import txaio

txaio.use_twisted()

from autobahn.twisted.websocket import WebSocketServerFactory  # noqa: E402
from service_identity import VerificationError
from OpenSSL.SSL import Error as OpenSSLError  # noqa: E402
from twisted.internet import defer  # noqa: E402
from twisted.internet.endpoints import SSL4ServerEndpoint  # noqa: E402
from twisted.internet.protocol import Factory as ServerFactory  # noqa: E402
from twisted.internet.task import Clock  # noqa: E402
from twisted.internet.testing import EventLoggingObserver  # noqa: E402
from twisted.logger import globalLogPublisher  # noqa: E402
from twisted.python.failure import Failure  # noqa: E402
from twisted.trial.unittest import SkipTest, SynchronousTestCase, TestCase  # noqa: E402

from ctrader_twisted import Client, Protobuf, TcpProtocol  # noqa: E402
from ctrader_twisted.errors import (  # noqa: E402
    AccessTokenInvalidError,
    OpenApiError,
    OutcomeUnknownError,
    RequestTimeout,
)
from ctrader_twisted.messages.OpenApiMessages_pb2 import (  # noqa: E402
    ProtoOAErrorRes,
    ProtoOAExecutionEvent,
    ProtoOASpotEvent,
    ProtoOAVersionRes,
)
from ctrader_twisted.websocket import WebSocketProtocol  # noqa: E402

from ctrader_twisted.testing import MemoryEndpoint, ScriptedServer, ScriptedWebSocketServer  # noqa: E402
from .tlsutil import Authority  # noqa: E402

ORDER_ACCEPTED = 2


def oneSecond(attempt: int) -> float:
    return 1.0


class ClientBehaviourMixin:
    """The client's behaviour, whatever carries the bytes.

    Subclasses set :attr:`protocol` and :meth:`makeEndpoint` (an in-memory
    endpoint whose ``servers`` speak that transport).
    """

    protocol: type
    endpoint: Any

    def makeEndpoint(self, clock: Clock) -> Any:
        raise NotImplementedError

    def setUp(self) -> None:
        self.clock = Clock()
        self.endpoint = self.makeEndpoint(self.clock)
        self.client = Client(
            "localhost", 5035, self.protocol, retryPolicy=oneSecond, clock=self.clock, endpoint=self.endpoint
        )
        self.connected: list[Client] = []
        self.disconnected: list[Failure] = []
        self.messages: list[Any] = []
        self.client.setConnectedCallback(self.connected.append)
        self.client.setDisconnectedCallback(lambda client, reason: self.disconnected.append(reason))
        self.client.setMessageReceivedCallback(lambda client, message: self.messages.append(message))
        self.events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)  # type: ignore[arg-type]
        self.client.startService()
        self.flush()

    def tearDown(self) -> None:
        self.client.stopService()
        self.flush()

    @property
    def server(self) -> Any:
        return self.endpoint.servers[-1]

    def flush(self) -> None:
        self.endpoint.flush()

    def advance(self, seconds: float, step: float = 0.5) -> None:
        elapsed = 0.0
        while elapsed < seconds:
            self.clock.advance(step)
            self.flush()
            elapsed += step

    def lastRequest(self) -> Any:
        self.flush()
        return self.server.requests()[-1]

    # --- tests ------------------------------------------------------------------

    def test_connected(self) -> None:
        self.assertEqual(self.connected, [self.client])  # type: ignore[attr-defined]
        self.assertTrue(self.client.isConnected)  # type: ignore[attr-defined]
        self.assertIsInstance(self.client.factory.connection, self.protocol)  # type: ignore[attr-defined]

    def test_correlationWithClientMsgId(self) -> None:
        mine = self.client.request("VersionReq", clientMsgId="my-id")
        generated = self.client.request("VersionReq")
        self.flush()
        first, second = self.server.requests()
        self.assertEqual(first.clientMsgId, "my-id")  # type: ignore[attr-defined]
        self.assertNotEqual(second.clientMsgId, "my-id")  # type: ignore[attr-defined]
        self.server.reply(second, ProtoOAVersionRes(version="second"))
        self.server.reply(first, ProtoOAVersionRes(version="first"))
        self.flush()
        self.assertEqual(self.successResultOf(mine).version, "first")  # type: ignore[attr-defined]
        self.assertEqual(self.successResultOf(generated).version, "second")  # type: ignore[attr-defined]

    def test_laterMessageWithTheSameIdReachesListeners(self) -> None:
        executions: list[Any] = []
        self.client.addListener("ProtoOAExecutionEvent", executions.append)
        d = self.client.send("VersionReq", clientMsgId="order-1")
        request = self.lastRequest()
        self.server.reply(request, ProtoOAVersionRes(version="91"))
        self.server.reply(request, ProtoOAExecutionEvent(ctidTraderAccountId=7, executionType=ORDER_ACCEPTED))
        self.flush()
        answer = self.successResultOf(d)  # type: ignore[attr-defined]
        self.assertEqual(answer.payloadType, 2105)  # type: ignore[attr-defined]
        self.assertEqual([e.ctidTraderAccountId for e in executions], [7])  # type: ignore[attr-defined]
        self.assertEqual([m.clientMsgId for m in self.messages], ["order-1", "order-1"])  # type: ignore[attr-defined]

    def test_errorResponse(self) -> None:
        typed = self.client.request("VersionReq")
        raw = self.client.send("VersionReq")
        self.flush()
        for request in self.server.requests():
            self.server.reply(request, ProtoOAErrorRes(errorCode="CH_ACCESS_TOKEN_INVALID", description="expired"))
        self.flush()
        failure = self.failureResultOf(typed, AccessTokenInvalidError)  # type: ignore[attr-defined]
        self.assertIsInstance(failure.value, OpenApiError)  # type: ignore[attr-defined]
        self.assertEqual(failure.value.errorCode, "CH_ACCESS_TOKEN_INVALID")  # type: ignore[attr-defined]
        self.assertEqual(failure.value.description, "expired")  # type: ignore[attr-defined]
        message = self.successResultOf(raw)  # type: ignore[attr-defined]
        self.assertEqual(message.payloadType, 2142)  # type: ignore[attr-defined]
        self.assertEqual(Protobuf.extract(message).errorCode, "CH_ACCESS_TOKEN_INVALID")  # type: ignore[attr-defined]

    def test_responseTimeout(self) -> None:
        d = self.client.request("VersionReq", responseTimeoutInSeconds=2)
        request = self.lastRequest()
        self.clock.advance(1.9)
        self.assertNoResult(d)  # type: ignore[attr-defined]
        self.clock.advance(0.1)
        self.failureResultOf(d, RequestTimeout)  # type: ignore[attr-defined]
        # A late answer is ignored, not given to the next request.
        following = self.client.request("VersionReq")
        self.server.reply(request, ProtoOAVersionRes(version="late"))
        self.server.reply(self.lastRequest(), ProtoOAVersionRes(version="right"))
        self.flush()
        self.assertEqual(self.successResultOf(following).version, "right")  # type: ignore[attr-defined]

    def test_connectionLostWithPendingRequest(self) -> None:
        d = self.client.request("VersionReq")
        self.flush()
        self.endpoint.pumps[-1].serverIO.abortConnection()
        self.flush()
        self.failureResultOf(d, OutcomeUnknownError)  # type: ignore[attr-defined]
        self.assertEqual(len(self.disconnected), 1)  # type: ignore[attr-defined]
        self.assertFalse(self.client.isConnected)  # type: ignore[attr-defined]
        self.advance(1.0)
        self.assertEqual(len(self.connected), 2)  # type: ignore[attr-defined]
        self.assertEqual(len(self.disconnected), 1)  # type: ignore[attr-defined]

    def test_garbageFrameIsSkipped(self) -> None:
        self.server.pushRaw(b"\xff\xff\xff\xff")
        d = self.client.request("VersionReq")
        self.server.reply(self.lastRequest(), ProtoOAVersionRes(version="91"))
        self.flush()
        self.assertEqual(self.successResultOf(d).version, "91")  # type: ignore[attr-defined]
        self.assertTrue(self.client.isConnected)  # type: ignore[attr-defined]
        self.assertTrue(any("not a ProtoMessage" in e.get("log_format", "") for e in self.events))  # type: ignore[attr-defined]

    def test_unsolicitedEventsReachListeners(self) -> None:
        spots: list[Any] = []
        self.client.addListener("ProtoOASpotEvent", spots.append)
        for bid in (110000, 110001, 110002):
            self.server.push(ProtoOASpotEvent(ctidTraderAccountId=1, symbolId=1, bid=bid))
        self.flush()
        self.assertEqual([s.bid for s in spots], [110000, 110001, 110002])  # type: ignore[attr-defined]

    def test_heartbeatCadence(self) -> None:
        def heartbeats() -> int:
            return sum(1 for m in self.server.received if m.payloadType == 51)

        self.advance(9.5)
        self.assertEqual(heartbeats(), 0)  # type: ignore[attr-defined]
        self.advance(0.5)
        self.assertEqual(heartbeats(), 1)  # type: ignore[attr-defined]
        self.advance(30)
        self.assertEqual(heartbeats(), 4)  # type: ignore[attr-defined]
        self.assertEqual(self.disconnected, [])  # type: ignore[attr-defined]


class TcpClientBehaviourTests(ClientBehaviourMixin, SynchronousTestCase):
    protocol = TcpProtocol

    def makeEndpoint(self, clock: Clock) -> MemoryEndpoint:
        return MemoryEndpoint(clock)


class WebSocketClientBehaviourTests(ClientBehaviourMixin, SynchronousTestCase):
    protocol = WebSocketProtocol

    def makeEndpoint(self, clock: Clock) -> MemoryEndpoint:
        return MemoryEndpoint(clock, ScriptedWebSocketServer)

    def test_connectedOnlyAfterTheHandshake(self) -> None:
        # The WebSocket-specific half of test_connected: one handshake made.
        self.assertIsNotNone(self.server.handshake)
        self.assertEqual(self.server.handshake.headers["host"], "localhost:5035")


# --- real loopback TLS ------------------------------------------------------------


def _versionAnswer(payload: Any) -> ProtoOAVersionRes:
    return ProtoOAVersionRes(version="91")


class LoopbackMixin:
    """Connect a real :class:`Client` over loopback TLS and exchange messages.

    Subclasses provide :meth:`startServer` returning ``(port, trustRoot)``
    and set :attr:`protocol`.
    """

    protocol: type
    startServer: Callable[[], defer.Deferred[tuple[int, Any]]]

    def makeClient(self, port: int, trustRoot: Any) -> Client:
        from twisted.internet import reactor

        client = Client("localhost", port, self.protocol, reactor=reactor, trustRoot=trustRoot, retryPolicy=oneSecond)
        self.addCleanup(client.stopService)  # type: ignore[attr-defined]
        return client

    def authenticate(self, client: Client) -> Any:
        """Whatever the server needs before ordinary requests (nothing here)."""
        return None

    async def whenConnected(self, client: Client) -> None:
        ready: defer.Deferred[None] = defer.Deferred()
        client.setConnectedCallback(lambda c: ready.callback(None) if not ready.called else None)
        client.startService()
        await ready

    @defer.inlineCallbacks
    def test_requestOverLoopback(self) -> Any:
        port, trustRoot = yield self.startServer()
        client = self.makeClient(port, trustRoot)
        yield defer.Deferred.fromCoroutine(self.whenConnected(client))
        yield self.authenticate(client)
        answer = yield client.request("VersionReq")
        self.assertTrue(answer.version)  # type: ignore[attr-defined]
        raw = yield client.send("ProtoOAVersionReq")
        self.assertEqual(raw.payloadType, 2105)  # type: ignore[attr-defined]
        self.assertIsInstance(client.factory.connection, self.protocol)  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def test_untrustedCertificateIsRefused(self) -> Any:
        port, _ = yield self.startServer()
        error = yield self.assertAttemptRefused(port, Authority("someone else").certificate)
        self.assertIn("certificate verify failed", str(error))  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def assertAttemptRefused(self, port: int, trustRoot: Any, *errors: type) -> Any:
        """Connect, expect the attempt to fail before the connection is ready."""
        client = self.makeClient(port, trustRoot)
        connected: list[Client] = []
        client.setConnectedCallback(connected.append)
        failed: defer.Deferred[list[Failure]] = defer.Deferred()
        client.factory.addAttemptFailureObserver(lambda reason: failed.callback([reason]) if not failed.called else None)
        client.startService()
        [reason] = yield failed
        # The real TLS error reaches the core on both transports.
        self.assertIsInstance(reason.value, errors or (OpenSSLError,))  # type: ignore[attr-defined]
        self.assertEqual(connected, [])  # type: ignore[attr-defined]
        self.assertFalse(client.isConnected)  # type: ignore[attr-defined]
        yield client.stopService()
        self.flushLoggedErrors()  # type: ignore[attr-defined]
        return reason.value  # (a Failure returned from a Deferred would be raised)


class _LoopbackServers:
    """Small TLS servers minted in the test: TCP framing or WebSocket."""

    protocol: type

    @defer.inlineCallbacks
    def startServer(self, dnsName: str = "localhost", expired: bool = False) -> Any:
        from twisted.internet import reactor

        authority = Authority()
        certificate = authority.issue(dnsName, expired=expired)
        if self.protocol is WebSocketProtocol:
            factory: Any = WebSocketServerFactory("wss://localhost", reactor=reactor)

            def build() -> ScriptedWebSocketServer:
                server = ScriptedWebSocketServer()
                server.factory = factory
                server.auto[2104] = _versionAnswer
                return server

            factory.buildProtocol = lambda addr: build()
        else:

            def buildTcp() -> ScriptedServer:
                server = ScriptedServer()
                server.auto[2104] = _versionAnswer
                return server

            factory = ServerFactory.forProtocol(buildTcp)
        endpoint = SSL4ServerEndpoint(reactor, 0, certificate.options(), interface="127.0.0.1")
        listening = yield endpoint.listen(factory)
        self.addCleanup(listening.stopListening)  # type: ignore[attr-defined]
        return listening.getHost().port, authority.certificate

    @defer.inlineCallbacks
    def test_wrongHostNameIsRefused(self) -> Any:
        port, trustRoot = yield self.startServer(dnsName="other.example")
        yield self.assertAttemptRefused(port, trustRoot, VerificationError, OpenSSLError)  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def test_expiredCertificateIsRefused(self) -> Any:
        port, trustRoot = yield self.startServer(expired=True)
        error = yield self.assertAttemptRefused(port, trustRoot)  # type: ignore[attr-defined]
        self.assertIn("certificate verify failed", str(error))  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def test_trustRootAsPemFile(self) -> Any:
        port, trustRoot = yield self.startServer()
        path = self.mktemp()  # type: ignore[attr-defined]
        with open(path, "wb") as f:
            f.write(trustRoot.dumpPEM())
        client = self.makeClient(port, path)  # type: ignore[attr-defined]
        yield defer.Deferred.fromCoroutine(self.whenConnected(client))  # type: ignore[attr-defined]
        answer = yield client.request("VersionReq")
        self.assertEqual(answer.version, "91")  # type: ignore[attr-defined]


class TcpLoopbackTests(_LoopbackServers, LoopbackMixin, TestCase):
    protocol = TcpProtocol


class WebSocketLoopbackTests(_LoopbackServers, LoopbackMixin, TestCase):
    protocol = WebSocketProtocol


class _SimulatorServers:
    """The simulator (``ctrader_twisted.simulator``) as the server."""

    protocol: type

    @defer.inlineCallbacks
    def startServer(self) -> Any:
        from twisted.internet import reactor

        try:
            from ctrader_twisted.simulator import Simulator
        except ImportError as e:
            raise SkipTest(f"the simulator is not available: {e}")
        sim = Simulator(seed=0)
        listening = sim.listen(reactor, tlsPort=0, wsPort=0)
        if isinstance(listening, defer.Deferred):
            listening = yield listening
        self.addCleanup(sim.stop)  # type: ignore[attr-defined]
        self.simulator = sim
        port = listening.wsPort if self.protocol is WebSocketProtocol else listening.tlsPort
        return port, listening.caPEM

    def authenticate(self, client: Client) -> Any:
        sim = self.simulator
        return client.request("ApplicationAuthReq", clientId=sim.clientId, clientSecret=sim.clientSecret)

    @defer.inlineCallbacks
    def test_authenticatedSession(self) -> Any:
        port, trustRoot = yield self.startServer()
        client = self.makeClient(port, trustRoot)  # type: ignore[attr-defined]
        yield defer.Deferred.fromCoroutine(self.whenConnected(client))  # type: ignore[attr-defined]
        sim = self.simulator
        yield client.request("ApplicationAuthReq", clientId=sim.clientId, clientSecret=sim.clientSecret)
        accountId = sim.accountIds[0]
        yield client.request("AccountAuthReq", ctidTraderAccountId=accountId, accessToken=sim.accessToken)
        symbols = yield client.request("SymbolsListReq", ctidTraderAccountId=accountId)
        self.assertTrue(symbols.symbol)  # type: ignore[attr-defined]
        with self.assertRaises(OpenApiError):  # type: ignore[attr-defined]
            yield client.request("AccountAuthReq", ctidTraderAccountId=accountId, accessToken="not-a-token")


class TcpSimulatorTests(_SimulatorServers, LoopbackMixin, TestCase):
    protocol = TcpProtocol


class WebSocketSimulatorTests(_SimulatorServers, LoopbackMixin, TestCase):
    protocol = WebSocketProtocol
