"""The promises on every path: the official SDK's contract, every Deferred
fires, tokens that stay valid, numbers from the wire bounded.

Everything runs in memory on a Clock against scripted servers
(``ctrader_twisted.testing``), unless a real TLS handshake is the point.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from typing import Any

from twisted.internet import defer
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.task import Clock, deferLater
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

from ctrader_twisted import Client, Factory, Protobuf, TcpProtocol
from ctrader_twisted.client import MAX_MAINTENANCE_WAIT
from ctrader_twisted.errors import (
    AccessTokenInvalidError,
    AccountLostError,
    DuplicateClientMsgIdError,
    InvalidMessageError,
    InvalidRequestError,
    NotConnectedError,
    NotReadyError,
    NotSentError,
    NotSentTimeout,
    OpenApiError,
    RequestTimeout,
    wireText,
)
from ctrader_twisted.messages.OpenApiCommonMessages_pb2 import ProtoErrorRes, ProtoMessage
from ctrader_twisted.messages.OpenApiMessages_pb2 import (
    ProtoOAApplicationAuthReq,
    ProtoOAErrorRes,
    ProtoOANewOrderReq,
    ProtoOAOrderListByPositionIdReq,
    ProtoOAVersionReq,
    ProtoOAVersionRes,
)
from ctrader_twisted.testing import MemoryEndpoint, ScriptedServer

from .test_session import FakeProxy, fixed


class _ClientCase(SynchronousTestCase):
    managed = False

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        self.endpoint = MemoryEndpoint(self.clock)
        options: dict[str, Any] = dict(clock=self.clock, endpoint=self.endpoint, retryPolicy=fixed, silenceTimeout=None)
        if self.managed:
            options.update(clientId="cid", clientSecret="app-secret")
        self.client = Client("localhost", 5035, **options)
        self.addCleanup(self.client.stopService)

    def flush(self) -> None:
        for _ in range(5):
            self.endpoint.flush()

    @property
    def server(self) -> ScriptedServer:
        return self.endpoint.servers[-1]

    def start(self) -> None:
        self.client.startService()
        self.flush()


class OfficialSendContractTests(_ClientCase):
    """``send`` is the official SDK's: it never raises, checks no values."""

    def setUp(self) -> None:
        super().setUp()
        self.start()

    def test_zeroVolumeReachesTheServer(self) -> None:
        d = self.client.send("NewOrderReq", ctidTraderAccountId=1, symbolId=1, orderType=1, tradeSide=1, volume=0)
        self.flush()
        sent = Protobuf.extract(self.server.requests()[-1])
        self.assertEqual(sent.volume, 0)
        self.server.reply(self.server.requests()[-1], ProtoOAErrorRes(errorCode="TRADING_BAD_VOLUME"))
        self.flush()
        self.assertEqual(self.successResultOf(d).payloadType, 2142)

    def test_missingRequiredFieldIsLeftToTheServer(self) -> None:
        request = ProtoOANewOrderReq(ctidTraderAccountId=1, symbolId=1)  # no orderType, tradeSide, volume
        self.client.send(request)
        self.flush()
        self.assertEqual(self.server.requests()[-1].payloadType, 2106)

    def test_fieldsBesideAMessageObjectAreIgnored(self) -> None:
        """The console sample sends OrderListByPositionIdReq with
        fromTimestamp/toTimestamp keywords beside the message object."""
        request = ProtoOAOrderListByPositionIdReq(ctidTraderAccountId=1, positionId=7)
        d = self.client.send(request, fromTimestamp=None, toTimestamp=None, clientMsgId="x")
        self.flush()
        sent = self.server.requests()[-1]
        self.assertEqual(sent.clientMsgId, "x")
        self.assertEqual(Protobuf.extract(sent).positionId, 7)
        self.assertNoResult(d)

    def test_badArgumentsFailTheDeferred(self) -> None:
        for d, error in [
            (self.client.send("NoSuchReq"), IndexError),
            (self.client.send("VersionReq", colour="red"), InvalidMessageError),
            (self.client.send("VersionReq", responseTimeoutInSeconds=float("nan")), InvalidMessageError),
            (self.client.request("AccountAuthReq", ctidTraderAccountId=1), InvalidMessageError),
            (self.client.request("NewOrderReq", ctidTraderAccountId=1, symbolId=1, orderType=1, tradeSide=1, volume=0),
             InvalidMessageError),
        ]:
            self.failureResultOf(d, error)
        self.flush()
        self.assertEqual(self.server.requests(), [])

    def test_duplicatePendingIdFailsTheDeferred(self) -> None:
        first = self.client.send("VersionReq", clientMsgId="same")
        second = self.client.send("VersionReq", clientMsgId="same")
        self.failureResultOf(second, DuplicateClientMsgIdError)
        self.assertNoResult(first)

    def test_callbackSeesTheAnswerBeforeTheDeferred(self) -> None:
        order: list[str] = []
        self.client.setMessageReceivedCallback(lambda c, m: order.append(f"callback {m.payloadType}"))
        self.client.addListener("ProtoOAVersionRes", lambda res: order.append("listener"))
        d = self.client.send(ProtoOAVersionReq())
        d.addCallback(lambda m: order.append("deferred"))
        self.flush()
        self.server.reply(self.server.requests()[-1], ProtoOAVersionRes(version="91"))
        self.flush()
        self.assertEqual(order, ["callback 2105", "listener", "deferred"])

    def test_timeoutIsTwistedsTimeoutError(self) -> None:
        d = self.client.send("VersionReq", responseTimeoutInSeconds=3)
        caught: list[Any] = []

        def officialStyle(failure: Failure) -> None:
            failure.trap(defer.TimeoutError)
            caught.append(failure.value)

        d.addErrback(officialStyle)
        self.clock.advance(3)
        [error] = caught
        self.assertIsInstance(error, RequestTimeout)


class OfficialNamesTests(_ClientCase):
    def test_factoryForProtocolWithTheClient(self) -> None:
        factory = Factory.forProtocol(TcpProtocol, client=self.client)
        self.assertIs(factory.protocol, TcpProtocol)
        self.assertIs(factory.clock, self.clock)
        self.assertEqual((factory.host, factory.port), ("localhost", 5035))

    def test_protobufPopulateAndPayloadTypeZero(self) -> None:
        table = Protobuf.populate()
        self.assertIs(table[0], ProtoMessage)
        self.assertIs(table[2104], ProtoOAVersionReq)
        self.assertIsInstance(Protobuf.get(0), ProtoMessage)
        self.assertEqual(Protobuf.get_type("ProtoMessage"), 0)

    def test_tcpProtocolModuleAlias(self) -> None:
        from ctrader_twisted.tcpProtocol import TcpProtocol as Alias

        self.assertIs(Alias, TcpProtocol)

    def test_protocolSendAndHeartbeat(self) -> None:
        self.start()
        proto = self.client.factory.connection
        proto.send(ProtoOAApplicationAuthReq(clientId="a", clientSecret="b"), clientMsgId="m1")
        proto.send(ProtoOAVersionReq(), isCanceled=lambda: True)
        proto.heartbeat()
        self.flush()
        received = self.server.received
        self.assertEqual([(m.payloadType, m.clientMsgId) for m in received], [(2100, "m1"), (51, "")])

    def test_numberOfMessagesToSendPerSecondIsACap(self) -> None:
        self.assertEqual(self.client.numberOfMessagesToSendPerSecond, 50)
        self.client.numberOfMessagesToSendPerSecond = 2
        self.assertEqual(self.client.factory.limiter.requestsPerSecond, 2)
        self.client.numberOfMessagesToSendPerSecond = 500
        self.assertEqual(self.client.numberOfMessagesToSendPerSecond, 500)
        self.assertEqual(self.client.factory.limiter.requestsPerSecond, 50)  # never past the server's limit
        self.assertRaises(ValueError, setattr, self.client, "numberOfMessagesToSendPerSecond", 0)


class EveryDeferredFiresTests(_ClientCase):
    def test_requestWhileTheServerIsUnreachable(self) -> None:
        """Unwritten, a request times out from send(): NotSentTimeout, which
        is also Twisted's TimeoutError."""
        self.endpoint.refuse = True
        self.start()
        d = self.client.request("VersionReq", responseTimeoutInSeconds=4)
        self.clock.advance(3.9)
        self.assertNoResult(d)
        self.clock.advance(0.1)
        failure = self.failureResultOf(d, NotSentTimeout)
        self.assertIsInstance(failure.value, NotSentError)
        self.assertIsInstance(failure.value, defer.TimeoutError)
        self.assertIn("never sent", str(failure.value))

    def test_waitedThenWrittenCountsAgainFromTheWrite(self) -> None:
        self.endpoint.refuse = True
        self.start()  # attempts at 0 s and 2 s are refused; the next is at 6 s
        d = self.client.request("VersionReq", responseTimeoutInSeconds=10)
        self.clock.pump([2, 1])
        self.endpoint.refuse = False
        self.clock.advance(3)
        self.flush()
        self.assertEqual(len(self.server.requests()), 1)  # written 6 s after send()
        self.clock.advance(9.9)
        self.assertNoResult(d)
        self.clock.advance(0.1)
        self.failureResultOf(d, RequestTimeout)

    def test_failFastFailsAtOnce(self) -> None:
        self.client.failFast = True
        self.endpoint.refuse = True
        self.start()
        self.failureResultOf(self.client.request("VersionReq"), NotConnectedError)

    def test_refusedAttemptsReachTheDisconnectedCallback(self) -> None:
        reasons: list[Failure] = []
        self.client.setDisconnectedCallback(lambda c, reason: reasons.append(reason))
        self.endpoint.refuse = True
        self.start()
        self.clock.advance(fixed(1))
        self.assertEqual(len(reasons), 2)
        self.assertTrue(all(r.check(ConnectionRefusedError) for r in reasons))

    def test_whenReadyWithATimeoutNamesTheLastFailure(self) -> None:
        self.endpoint.refuse = True
        self.start()
        d = self.client.whenReady(timeout=5)
        self.clock.advance(5)
        error = self.failureResultOf(d, NotReadyError).value
        self.assertIsInstance(error, defer.TimeoutError)
        self.assertIn("refused", str(error))
        self.failureResultOf(self.client.whenReady(timeout=float("inf")), InvalidMessageError)


class ManagedPromisesTests(_ClientCase):
    managed = True

    def setUp(self) -> None:
        super().setUp()
        self.proxy = FakeProxy()
        self.endpoint.onServer = self.proxy.setUp

    def test_connectedCallbackThatRaisesIsIsolated(self) -> None:
        """The restore still runs and whenReady fires; the user's request
        from the callback is written only after the application is
        authenticated."""

        def connected(client: Client) -> None:
            client.send("VersionReq")
            raise RuntimeError("user bug")

        self.client.setConnectedCallback(connected)
        self.client.startService()
        ready = self.client.whenReady()
        self.flush()
        self.assertIs(self.successResultOf(ready), self.client)
        self.assertEqual([m.payloadType for m in self.server.requests()], [2100, 2104])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_refusedFirstAuthorizationRefreshesOnce(self) -> None:
        stored: list[Any] = []
        self.proxy.tokenValid["token-1"] = False
        self.client.setTokenRefresher("refresh-1", lambda c, res: stored.append(res.accessToken))
        self.start()
        d = self.client.authorizeAccount(11, "token-1")
        self.flush()
        self.assertEqual(self.successResultOf(d).ctidTraderAccountId, 11)
        self.assertEqual(stored, ["new-token"])
        types = [m.payloadType for m in self.server.requests()]
        self.assertEqual(types, [2100, 2102, 2173, 2102])

    def test_refusedAgainAfterTheRefreshFailsClearly(self) -> None:
        self.proxy.tokenValid["token-1"] = False
        self.proxy.tokenValid["new-token"] = False
        lost: list[Any] = []
        self.client.setAccountLostCallback(lambda c, a, e: lost.append(a))
        self.client.setTokenRefresher("refresh-1", lambda c, res: None)
        self.start()
        d = self.client.authorizeAccount(11, "token-1")
        self.flush()
        self.failureResultOf(d, AccessTokenInvalidError)
        self.assertEqual(lost, [11])
        self.assertEqual([m.payloadType for m in self.server.requests()].count(2173), 1)

    def test_failedRefreshDuringRestoreDropsTheAccount(self) -> None:
        """Not treated as transient: the account is dropped and reported,
        whenReady says so, and the client does not reconnect forever."""
        lost: list[Any] = []
        self.client.setAccountLostCallback(lambda c, a, e: lost.append((a, type(e))))
        self.client.setTokenRefresher("refresh-1", lambda c, res: None)
        self.start()
        d = self.client.authorizeAccount(11, "token-1")
        self.flush()
        self.successResultOf(d)
        self.proxy.tokenValid["token-1"] = False
        self.endpoint.onServer = self.refreshRefused
        waiter = self.client.whenReady()
        self.endpoint.pumps[-1].clientIO.loseConnection()  # type: ignore[attr-defined]
        self.flush()
        waiter = self.client.whenReady()
        self.clock.advance(fixed(1))
        self.flush()
        error = self.failureResultOf(waiter, AccountLostError).value
        self.assertEqual(list(error.accounts), [11])
        self.assertEqual(lost, [(11, InvalidRequestError)])
        self.assertTrue(self.client.isReady)
        servers = len(self.endpoint.servers)
        self.clock.advance(120)
        self.flush()
        self.assertEqual(len(self.endpoint.servers), servers)  # no reconnect loop
        self.assertIs(self.successResultOf(self.client.whenReady()), self.client)

    def refreshRefused(self, server: ScriptedServer) -> None:
        self.proxy.setUp(server)
        server.auto[2173] = lambda r: ProtoOAErrorRes(errorCode="INVALID_REQUEST", description="refresh token expired")

    def test_refresherOfOneTokenLeavesOtherTokensAlone(self) -> None:
        """With accounts of two tokens and no accessToken given, a refused
        token is not 'renewed' with the refresher's token."""
        self.start()
        d = self.client.authorizeAccount(11, "token-1")
        self.flush()
        self.successResultOf(d)
        self.client.setTokenRefresher("refresh-1", lambda c, res: None)
        self.proxy.tokenValid["other"] = False
        d = self.client.authorizeAccount(22, "other")
        self.flush()
        self.failureResultOf(d, AccessTokenInvalidError)
        self.assertNotIn(2173, [m.payloadType for m in self.server.requests()])
        self.assertEqual(self.client.session.accounts[11].accessToken, "token-1")

    def test_badArgumentsFailTheDeferred(self) -> None:
        self.failureResultOf(self.client.authorizeAccount(-1, "t"), InvalidMessageError)
        self.failureResultOf(self.client.authorizeAccount(1, ""), InvalidMessageError)
        self.failureResultOf(self.client.authorizeApplication("", "x"), InvalidMessageError)

    def test_maintenanceFarInTheFutureIsBounded(self) -> None:
        events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        self.proxy.maintenanceEnd = 2**62
        self.start()
        self.proxy.maintenanceEnd = None
        self.assertLessEqual(self.client._retryDelay(1), MAX_MAINTENANCE_WAIT)
        self.clock.advance(MAX_MAINTENANCE_WAIT)
        self.flush()
        self.assertTrue(self.client.isReady)
        self.assertIn(str(2**62), " ".join(str(e.get("end")) for e in events))


class WireTextTests(_ClientCase):
    def test_errorCodeThatIsNotUtf8(self) -> None:
        """A refusal whose errorCode is not valid UTF-8 still makes a typed
        error whose text can be shown."""
        self.start()
        d = self.client.request("VersionReq")
        self.flush()
        error = ProtoErrorRes(errorCode="X", description="Y")
        body = error.SerializeToString().replace(b"\x12\x01X", b"\x12\x03\xff\xfeA").replace(b"\x1a\x01Y", b"\x1a\x02\xc3\x28")
        envelope = ProtoMessage(payloadType=50, payload=body, clientMsgId=self.server.requests()[-1].clientMsgId)
        self.server.pushRaw(envelope.SerializeToString())
        self.flush()
        failure = self.failureResultOf(d, OpenApiError)
        text = str(failure.value)
        self.assertIn("\ufffd", text)
        self.assertIsInstance(failure.value.errorCode, str)

    def test_wireText(self) -> None:
        self.assertEqual(wireText(b"\xffA"), "\ufffdA")
        self.assertEqual(wireText("ok"), "ok")
        self.assertEqual(wireText(None), "None")


class BlockedReactorTests(TestCase):
    """Time the process spends blocked (a blocking ``input()`` in a
    callback, as the official console sample does; a slow notebook cell) is
    not counted as the server's silence: a request whose deadline passes
    while the reactor is blocked gets its timeout again, once. The server
    runs in a thread, so it answers while the reactor thread sleeps; the
    reactor has to be really blocked, which a Clock cannot show (and a Clock
    moved far ahead is not taken for a blocked process: see
    tests.test_deadlines)."""

    timeout = 20

    delay = 0.0  # seconds the server thread takes to answer

    def answeringServer(self) -> int:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        self.addCleanup(listener.close)

        def serve() -> None:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            with connection:
                buffer = b""
                while True:
                    try:
                        data = connection.recv(65536)
                    except OSError:
                        return
                    if not data:
                        return
                    buffer += data
                    while len(buffer) >= 4 and len(buffer) >= 4 + struct.unpack(">I", buffer[:4])[0]:
                        size = struct.unpack(">I", buffer[:4])[0]
                        request = ProtoMessage.FromString(buffer[4:4 + size])
                        buffer = buffer[4 + size:]
                        if request.payloadType == ProtoOAVersionReq().payloadType:
                            time.sleep(self.delay)
                            answer = ProtoMessage(
                                payloadType=ProtoOAVersionRes().payloadType,
                                payload=ProtoOAVersionRes(version="91").SerializeToString(),
                                clientMsgId=request.clientMsgId,
                            ).SerializeToString()
                            connection.sendall(struct.pack(">I", len(answer)) + answer)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        return int(listener.getsockname()[1])

    async def test_answerReadBeforeItsDeadlineIsExpired(self) -> None:
        from twisted.internet import reactor

        port = self.answeringServer()
        client = Client("127.0.0.1", port, reactor=reactor, useTLS=False, heartbeatInterval=None)
        client.startService()
        self.addCleanup(client.stopService)
        await client.whenReady(5)
        self.assertEqual((await client.request("ProtoOAVersionReq")).version, "91")
        events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        # Written into the transport's buffer, then the reactor blocks before
        # the bytes even leave: far past the deadline when it runs again.
        d = client.request("ProtoOAVersionReq", responseTimeoutInSeconds=0.2)
        time.sleep(1.0)
        self.assertEqual((await d).version, "91")
        self.assertTrue(any("reactor was blocked" in str(e.get("log_format")) for e in events))
        # Its answer waiting unread in the socket while the reactor is blocked.
        self.delay = 0.1
        d = client.request("ProtoOAVersionReq", responseTimeoutInSeconds=0.3)
        await deferLater(reactor, 0.02, lambda: None)  # written; the server answers in 0.1 s
        self.assertFalse(d.called)
        time.sleep(0.8)
        self.assertEqual((await d).version, "91")
        self.delay = 0.0
        # A request the server leaves unanswered still times out, blocked or not.
        for block in (0.0, 0.6):
            silent = client.request("ProtoOAApplicationAuthReq", clientId="a", clientSecret="b",
                                    responseTimeoutInSeconds=0.2)
            time.sleep(block)
            with self.assertRaises(RequestTimeout):
                await silent
