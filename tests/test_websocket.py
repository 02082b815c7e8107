"""The WebSocket transport's own behaviour, in memory.

The peer is Autobahn's own ``WebSocketServerProtocol`` (an independent
implementation of the handshake and framing; ``ScriptedWebSocketServer`` from
``ctrader_twisted.testing``), connected with ``twisted.test.iosim``; a
``Clock`` drives every client timer (the handshake deadline, pings, the
closing deadline): ``txaio``'s global loop is never used. The behaviours
shared with the TCP transport are in ``tests/test_transports.py``.
"""

from __future__ import annotations

from typing import Any

import txaio

txaio.use_twisted()

from autobahn.exception import PayloadExceededError  # noqa: E402
from twisted.internet.defer import Deferred  # noqa: E402
from twisted.internet.error import ConnectionDone, ConnectionLost  # noqa: E402
from twisted.internet.task import Clock  # noqa: E402
from twisted.internet.testing import EventLoggingObserver  # noqa: E402
from twisted.logger import LogLevel, globalLogPublisher  # noqa: E402
from twisted.python.failure import Failure  # noqa: E402
from twisted.trial.unittest import SynchronousTestCase  # noqa: E402

from ctrader_twisted.errors import (  # noqa: E402
    FrameTooLargeError,
    MalformedFrameError,
    NotConnectedError,
    NotSentError,
    OutcomeUnknownError,
)
from ctrader_twisted.factory import HEARTBEAT_FRAME, Factory  # noqa: E402
from ctrader_twisted.messages.OpenApiCommonMessages_pb2 import ProtoMessage  # noqa: E402
from ctrader_twisted.messages.OpenApiMessages_pb2 import ProtoOAVersionRes  # noqa: E402
from ctrader_twisted.protobuf import Protobuf  # noqa: E402
from ctrader_twisted.websocket import WebSocketProtocol, webSocketURL  # noqa: E402

from ctrader_twisted.testing import ScriptedWebSocketServer, connectInMemory  # noqa: E402


class WebSocketTestCase(SynchronousTestCase):
    factoryOptions: dict[str, Any] = {}

    def setUp(self) -> None:
        self.clock = Clock()
        self.factory = Factory(WebSocketProtocol, self.clock, "localhost", 5035, **self.factoryOptions)
        self.connected: list[Any] = []
        self.disconnected: list[Failure] = []
        self.factory.addConnectionObserver(self.connected.append)
        self.factory.addDisconnectionObserver(lambda proto, reason: self.disconnected.append(reason))
        self.events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)

    def connect(self, server: ScriptedWebSocketServer | None = None) -> None:
        self.client, self.server, self.pump = connectInMemory(self.factory, self.clock, server or ScriptedWebSocketServer())

    def advance(self, seconds: float, step: float = 0.25) -> None:
        """Move the clock in small steps, moving bytes after each."""
        elapsed = 0.0
        while elapsed < seconds:
            self.clock.advance(step)
            self.pump.flush()
            elapsed += step

    def errorsLogged(self) -> list[str]:
        return [e.get("error", "") for e in self.events if e.get("log_level") == LogLevel.error]


class FactoryTests(SynchronousTestCase):
    """How the Autobahn factory is built from the core."""

    def test_urlAndOptionsComeFromTheCore(self) -> None:
        core = Factory(WebSocketProtocol, Clock(), "demo.ctraderapi.com", 5035, maxMessageSize=1234)
        proto = core.buildProtocol(None)
        ws = proto.factory
        self.assertIs(proto.receiver, core)
        self.assertEqual(ws.url, "wss://demo.ctraderapi.com:5035")
        self.assertTrue(ws.isSecure)
        self.assertEqual((ws.host, ws.port, ws.resource), ("demo.ctraderapi.com", 5035, "/"))
        # Autobahn's default (0 = unlimited) is replaced on purpose; incoming
        # frames are checked by the protocol itself when they begin.
        self.assertEqual(ws.maxMessagePayloadSize, 1234)
        # Every Autobahn timer is off: the protocol keeps its own on the clock.
        self.assertEqual(
            (ws.autoPingInterval, ws.openHandshakeTimeout, ws.closeHandshakeTimeout, ws.serverConnectionDropTimeout),
            (0, 0, 0, 0),
        )
        self.assertEqual(ws.perMessageCompressionOffers, [])

    def test_plainURLWithoutTLS(self) -> None:
        core = Factory(WebSocketProtocol, Clock(), "127.0.0.1", 8080, useTLS=False)
        ws = core.buildProtocol(None).factory
        self.assertEqual(ws.url, "ws://127.0.0.1:8080")
        self.assertFalse(ws.isSecure)

    def test_ipv6Literal(self) -> None:
        self.assertEqual(webSocketURL("::1", 5035), "wss://[::1]:5035")

    def test_oneAutobahnFactoryPerAttempt(self) -> None:
        """Each connection attempt gets its own Autobahn factory; nothing is
        cached on the core."""
        clock = Clock()
        core = Factory(WebSocketProtocol, clock, "localhost", 5035)
        first, second = core.buildProtocol(None), core.buildProtocol(None)
        self.assertIsNot(first, second)
        self.assertIsNot(first.factory, second.factory)
        self.assertEqual(first.factory.url, second.factory.url)
        self.assertFalse([name for name in vars(core) if "webSocket" in name.lower()])

    def test_reprNamesTheServerOnly(self) -> None:
        core = Factory(WebSocketProtocol, Clock(), "localhost", 5035)
        self.assertIn("localhost:5035", repr(core.buildProtocol(None)))


class HandshakeTests(WebSocketTestCase):
    def test_handshakeRequest(self) -> None:
        self.connect()
        request = self.server.handshake
        assert request is not None
        self.assertEqual(request.host, "localhost")
        self.assertEqual(request.headers["host"], "localhost:5035")
        self.assertEqual(request.path, "/")
        self.assertEqual(request.protocols, [])
        self.assertEqual(request.extensions, [])
        self.assertTrue(request.headers["user-agent"].startswith("ctrader-twisted/"))

    def test_readyOnlyAfterTheHandshake(self) -> None:
        server = ScriptedWebSocketServer()
        server.holdHandshake = Deferred()
        self.connect(server)
        # TCP is up but the server has not answered the upgrade yet.
        self.assertIsNone(self.factory.connection)
        self.assertEqual(self.connected, [])
        server.holdHandshake.callback(None)
        self.pump.flush()
        self.assertIs(self.factory.connection, self.client)
        self.assertEqual(self.connected, [self.client])

    def test_handshakeTimeoutDisconnectsWithoutEverBeingReady(self) -> None:
        server = ScriptedWebSocketServer()
        server.holdHandshake = Deferred()
        self.connect(server)
        self.advance(self.factory.settings.handshakeTimeout + 1)
        self.assertTrue(server.lost)
        self.assertEqual(self.connected, [])
        self.assertEqual(self.disconnected, [])  # it never was connected
        server.holdHandshake.cancel()
        self.flushLoggedErrors()


class MessageTests(WebSocketTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.connect()

    def test_binaryRoundTrip(self) -> None:
        first = self.factory.request("VersionReq")
        second = self.factory.send("VersionReq", clientMsgId="mine")
        self.pump.flush()
        requests = self.server.requests()
        self.assertEqual([r.payloadType for r in requests], [2104, 2104])
        self.assertEqual(requests[1].clientMsgId, "mine")
        # Answer out of order: correlation by clientMsgId.
        self.server.reply(requests[1], ProtoOAVersionRes(version="2"))
        self.server.reply(requests[0], ProtoOAVersionRes(version="1"))
        self.pump.flush()
        self.assertEqual(self.successResultOf(first).version, "1")
        raw = self.successResultOf(second)
        self.assertEqual(raw.clientMsgId, "mine")
        self.assertEqual(Protobuf.extract(raw).version, "2")

    def test_heartbeatIsABinaryMessage(self) -> None:
        self.advance(10)
        heartbeats = [m for m in self.server.received if m.payloadType == 51]
        self.assertEqual(len(heartbeats), 1)
        self.assertEqual(heartbeats[0].SerializeToString(), HEARTBEAT_FRAME)

    def test_textMessageClosesAndFailsPending(self) -> None:
        d = self.factory.request("VersionReq")
        self.pump.flush()
        self.server.pushText('{"payloadType": 2105}')
        self.pump.flush()
        failure = self.failureResultOf(d, OutcomeUnknownError)
        self.assertIsInstance(failure.value.reason, MalformedFrameError)
        self.assertTrue(self.server.lost)
        self.assertIsNone(self.factory.connection)
        self.assertEqual(len(self.disconnected), 1)
        [error] = self.errorsLogged()
        self.assertIn("text message", error)

    def test_garbageBinaryMessageIsSkipped(self) -> None:
        self.server.pushRaw(b"\xff\xff\xff\xff")
        d = self.factory.request("VersionReq")
        self.pump.flush()
        self.server.reply(self.server.requests()[-1], ProtoOAVersionRes(version="91"))
        self.pump.flush()
        self.assertEqual(self.successResultOf(d).version, "91")
        self.assertIs(self.factory.connection, self.client)


class SizeLimitTests(WebSocketTestCase):
    factoryOptions = {"maxMessageSize": 1000}

    def setUp(self) -> None:
        super().setUp()
        self.connect()

    def test_messageAtTheLimitIsAccepted(self) -> None:
        seen: list[Any] = []
        self.factory.addMessageCallback(seen.append)
        padding = 990
        data = b""
        while len(data) != 1000:
            padding += 1000 - len(data) if data else 0
            data = ProtoMessage(payloadType=2105, payload=b"v" * padding).SerializeToString()
        self.assertEqual(len(data), 1000)
        self.server.pushRaw(data)
        self.pump.flush()
        self.assertEqual(len(seen), 1)

    def test_outgoingMessageOverTheLimitFailsItsDeferred(self) -> None:
        d = self.factory.send("ProtoOAApplicationAuthReq", clientId="x" * 2000, clientSecret="topsecret")
        failure = self.failureResultOf(d, NotSentError)
        self.assertIsInstance(failure.value.reason, PayloadExceededError)
        self.assertNotIn("topsecret", str(failure.value))
        # The connection is still usable.
        ok = self.factory.request("VersionReq")
        self.pump.flush()
        self.assertEqual([r.payloadType for r in self.server.requests()], [2104])
        self.server.reply(self.server.requests()[-1], ProtoOAVersionRes(version="91"))
        self.pump.flush()
        self.successResultOf(ok)
        self.assertIs(self.factory.connection, self.client)

    def test_oversizedIncomingMessage(self) -> None:
        d = self.factory.request("VersionReq")
        self.pump.flush()
        self.server.push(ProtoOAVersionRes(version="v" * 2000), self.server.requests()[-1].clientMsgId)
        self.pump.flush()
        failure = self.failureResultOf(d, OutcomeUnknownError)
        cause = failure.value.reason
        self.assertIsInstance(cause, FrameTooLargeError)
        self.assertEqual(cause.limit, 1000)
        self.assertGreater(cause.length, 1000)
        self.assertIn("exceeds the limit of 1000 bytes", str(failure.value))
        [error] = self.errorsLogged()
        self.assertIn("exceeds the limit", error)
        self.assertTrue(self.server.lost)
        self.assertEqual(len(self.disconnected), 1)
        self.assertIn("exceeds the limit of 1000 bytes", self.disconnected[0].getErrorMessage())

    def test_oversizedMessageInSmallFrames(self) -> None:
        # The message limit holds for a fragmented message too.
        d = self.factory.request("VersionReq")
        self.pump.flush()
        envelope = ProtoMessage(payloadType=2105, payload=b"x" * 1500).SerializeToString()
        self.server.sendMessage(envelope, isBinary=True, fragmentSize=200)
        self.pump.flush()
        failure = self.failureResultOf(d, OutcomeUnknownError)
        self.assertIsInstance(failure.value.reason, FrameTooLargeError)


class ConnectionEndTests(WebSocketTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.connect()

    def test_clientCloseHandshake(self) -> None:
        d = self.factory.request("VersionReq")
        self.client.close()
        self.pump.flush()
        self.advance(2)
        self.assertEqual(self.server.closes[0][:2], (True, 1000))
        self.assertEqual(len(self.disconnected), 1)
        self.assertIsInstance(self.disconnected[0].value, ConnectionDone)
        self.assertIn("closed cleanly (code 1000", self.disconnected[0].getErrorMessage())
        self.failureResultOf(d, OutcomeUnknownError)
        self.assertIsNone(self.factory.connection)

    def test_serverCloseHandshake(self) -> None:
        self.server.sendClose(1000, "maintenance")
        self.pump.flush()
        self.advance(2)
        self.assertEqual(len(self.disconnected), 1)
        self.assertIsInstance(self.disconnected[0].value, ConnectionDone)
        self.assertIn("maintenance", self.disconnected[0].getErrorMessage())

    def test_abruptLoss(self) -> None:
        d = self.factory.request("VersionReq")
        self.pump.flush()
        self.pump.serverIO.abortConnection()  # type: ignore[attr-defined]
        self.pump.flush()
        self.advance(2)
        self.assertEqual(len(self.disconnected), 1)
        self.assertIsInstance(self.disconnected[0].value, ConnectionLost)
        self.failureResultOf(d, OutcomeUnknownError)

    def test_pingTimeoutDisconnects(self) -> None:
        self.server.answerPings = False
        interval = WebSocketProtocol.autoPingIntervalSeconds
        timeout = WebSocketProtocol.autoPingTimeoutSeconds
        self.advance(interval + timeout - 1)
        self.assertEqual(self.disconnected, [])
        self.advance(2)
        self.assertEqual(len(self.disconnected), 1)
        self.assertIn("ping timeout", self.disconnected[0].getErrorMessage())
        self.assertTrue(self.server.lost)

    def test_pingsAnsweredKeepTheConnection(self) -> None:
        # Well under the core's silence watchdog (which counts Open API
        # frames, not WebSocket pongs): several ping rounds pass.
        self.advance(self.factory.silenceTimeout - 5)
        self.assertEqual(self.disconnected, [])
        self.assertIs(self.factory.connection, self.client)

    def test_heartbeatWhileClosingIsDropped(self) -> None:
        self.client.sendClose(1000)
        self.assertEqual(self.client.state, WebSocketProtocol.STATE_CLOSING)
        self.client.writeFrame(HEARTBEAT_FRAME)  # no exception
        self.assertRaises(NotConnectedError, self.client.writeFrame, b"\x08\x01")
        # A request written now fails as never sent, not as outcome unknown.
        self.failureResultOf(self.factory.request("VersionReq"), NotSentError)
        self.pump.flush()
        self.advance(2)
        self.assertEqual(len(self.disconnected), 1)
