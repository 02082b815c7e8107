"""The request core: correlation, timeouts, cancellation, errors, heartbeats, pacing.

Everything runs in memory with a Clock; the peer is a scripted server using
Twisted's own Int32StringReceiver.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import CancelledError
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher
from twisted.internet.testing import EventLoggingObserver
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from ctrader_twisted.errors import (
    AccessTokenInvalidError,
    BlockedPayloadTypeError,
    ClientAuthenticationError,
    DuplicateClientMsgIdError,
    InvalidMessageError,
    NotEnoughMoneyError,
    NotSentError,
    NotSentTimeout,
    OpenApiError,
    OutcomeUnknownError,
    QueueFullError,
    RateLimitError,
    RequestTimeout,
    SilentConnectionError,
    UnknownMessageError,
    UnsupportedMessageError,
)
from ctrader_twisted.factory import HEARTBEAT_FRAME, Factory
from ctrader_twisted.ratelimit import MAX_BLOCK_SECONDS, RateLimiter
from ctrader_twisted.messages.OpenApiCommonMessages_pb2 import ProtoErrorRes, ProtoMessage
from ctrader_twisted.messages.OpenApiMessages_pb2 import (
    ProtoOAErrorRes,
    ProtoOAExecutionEvent,
    ProtoOAOrderErrorEvent,
    ProtoOASpotEvent,
    ProtoOAVersionReq,
    ProtoOAVersionRes,
)
from ctrader_twisted.tcp import TcpProtocol

from ctrader_twisted.testing import connectInMemory


class CoreTestCase(SynchronousTestCase):
    """A Factory connected in memory to a ScriptedServer."""

    factoryOptions: dict[str, Any] = {}

    def setUp(self) -> None:
        self.clock = Clock()
        self.factory = Factory(TcpProtocol, self.clock, "localhost", 5035, **self.factoryOptions)
        self.connect()

    def connect(self) -> None:
        self.client, self.server, self.pump = connectInMemory(self.factory, self.clock)

    def flush(self) -> None:
        self.pump.flush()

    def lastRequest(self) -> ProtoMessage:
        self.flush()
        return self.server.requests()[-1]

    def disconnect(self) -> None:
        """Drop the connection without delivering anything still buffered."""
        self.client.connectionLost(Failure(ConnectionDone("test drop")))


class CorrelationTests(CoreTestCase):
    def test_requestFiresWithDecodedAnswer(self) -> None:
        d = self.factory.request("VersionReq")
        request = self.lastRequest()
        self.assertEqual(request.payloadType, 2104)
        self.assertTrue(request.clientMsgId)
        self.server.reply(request, ProtoOAVersionRes(version="91"))
        self.flush()
        result = self.successResultOf(d)
        self.assertIsInstance(result, ProtoOAVersionRes)
        self.assertEqual(result.version, "91")
        self.assertEqual(self.factory.pendingCount(), 0)

    def test_sendFiresWithProtoMessage(self) -> None:
        d = self.factory.send(ProtoOAVersionReq())
        request = self.lastRequest()
        self.server.reply(request, ProtoOAVersionRes(version="91"))
        self.flush()
        result = self.successResultOf(d)
        self.assertIsInstance(result, ProtoMessage)
        self.assertEqual(result.payloadType, 2105)
        self.assertEqual(result.clientMsgId, request.clientMsgId)

    def test_answersMatchTheirRequestsOutOfOrder(self) -> None:
        d1 = self.factory.request("VersionReq")
        d2 = self.factory.request("VersionReq")
        self.flush()
        r1, r2 = self.server.requests()
        self.server.reply(r2, ProtoOAVersionRes(version="two"))
        self.server.reply(r1, ProtoOAVersionRes(version="one"))
        self.flush()
        self.assertEqual(self.successResultOf(d1).version, "one")
        self.assertEqual(self.successResultOf(d2).version, "two")

    def test_generatedIdsAreNeverReused(self) -> None:
        # The official SDK used id(deferred), which CPython reuses.
        self.factory.outbox.limiter = RateLimiter(self.clock, None, None)
        for _ in range(500):
            d = self.factory.request("VersionReq", responseTimeoutInSeconds=0.001)
            self.clock.advance(0.01)
            self.failureResultOf(d, RequestTimeout)
        self.flush()
        ids = {m.clientMsgId for m in self.server.requests()}
        self.assertEqual(len(ids), 500)

    def test_callerSuppliedId(self) -> None:
        d = self.factory.request("VersionReq", clientMsgId="mine-1")
        request = self.lastRequest()
        self.assertEqual(request.clientMsgId, "mine-1")
        self.server.reply(request, ProtoOAVersionRes(version="91"))
        self.flush()
        self.successResultOf(d)

    def test_duplicatePendingIdRefusedBeforeWriting(self) -> None:
        d = self.factory.request("VersionReq", clientMsgId="dup")
        self.flush()
        count = len(self.server.requests())
        self.failureResultOf(self.factory.request("VersionReq", clientMsgId="dup"), DuplicateClientMsgIdError)
        self.flush()
        self.assertEqual(len(self.server.requests()), count)
        # the first request is untouched and can still complete
        self.server.reply(self.server.requests()[-1], ProtoOAVersionRes(version="91"))
        self.flush()
        self.successResultOf(d)
        # once answered, the id is free again
        self.factory.request("VersionReq", clientMsgId="dup")

    def test_generatedIdSkipsCallerIds(self) -> None:
        self.factory.request("VersionReq", clientMsgId="ct1")
        self.factory.request("VersionReq")
        self.flush()
        ids = [m.clientMsgId for m in self.server.requests()]
        self.assertEqual(len(set(ids)), 2)

    def test_laterMessagesWithSameIdReachListeners(self) -> None:
        events: list[Any] = []
        raw: list[ProtoMessage] = []
        self.factory.addListener("ProtoOAExecutionEvent", events.append)
        self.factory.addMessageCallback(raw.append)
        d = self.factory.request("NewOrderReq", ctidTraderAccountId=1, symbolId=1, orderType=1, tradeSide=1, volume=100000)
        request = self.lastRequest()
        accepted = ProtoOAExecutionEvent(ctidTraderAccountId=1, executionType=2)
        filled = ProtoOAExecutionEvent(ctidTraderAccountId=1, executionType=3)
        self.server.reply(request, accepted)
        self.server.reply(request, filled)
        self.flush()
        self.assertEqual(self.successResultOf(d).executionType, 2)
        self.assertEqual([e.executionType for e in events], [2, 3])
        self.assertEqual([m.clientMsgId for m in raw], [request.clientMsgId] * 2)

    def test_readyProtoMessageIsNotWrappedTwice(self) -> None:
        inner = ProtoOAVersionReq().SerializeToString()
        self.factory.send(ProtoMessage(payloadType=2104, payload=inner, clientMsgId="pm1"))
        request = self.lastRequest()
        self.assertEqual(request.payloadType, 2104)
        self.assertEqual(request.payload, inner)
        self.assertEqual(request.clientMsgId, "pm1")

    def test_unsolicitedMessagesGoToCallbacksAndListeners(self) -> None:
        spots: list[Any] = []
        raw: list[ProtoMessage] = []
        self.factory.addListener(2131, spots.append)
        self.factory.addMessageCallback(raw.append)
        self.server.push(ProtoOASpotEvent(ctidTraderAccountId=1, symbolId=1, bid=110000))
        self.flush()
        self.assertEqual([s.bid for s in spots], [110000])
        self.assertEqual([m.payloadType for m in raw], [2131])
        self.factory.removeListener("SpotEvent", spots.append)
        self.server.push(ProtoOASpotEvent(ctidTraderAccountId=1, symbolId=1, bid=110001))
        self.flush()
        self.assertEqual(len(spots), 1)
        self.assertEqual(len(raw), 2)

    def test_unknownPayloadTypePassesThrough(self) -> None:
        raw: list[ProtoMessage] = []
        self.factory.addMessageCallback(raw.append)
        self.server.pushRaw(ProtoMessage(payloadType=9999, payload=b"\x08\x01").SerializeToString())
        self.flush()
        self.assertEqual([m.payloadType for m in raw], [9999])
        self.assertIsNotNone(self.factory.connection)


class ErrorMappingTests(CoreTestCase):
    def test_oaErrorBecomesTypedException(self) -> None:
        d = self.factory.request("ApplicationAuthReq", clientId="id", clientSecret="s3cret-value")
        request = self.lastRequest()
        self.server.reply(
            request,
            ProtoOAErrorRes(errorCode="CH_CLIENT_AUTH_FAILURE", description="clientId or clientSecret is incorrect"),
        )
        self.flush()
        error = self.failureResultOf(d, ClientAuthenticationError).value
        self.assertEqual(error.errorCode, "CH_CLIENT_AUTH_FAILURE")
        self.assertEqual(error.description, "clientId or clientSecret is incorrect")
        self.assertEqual(error.clientMsgId, request.clientMsgId)
        self.assertIsInstance(error.payload, ProtoOAErrorRes)
        self.assertNotIn("s3cret-value", str(error) + repr(error))

    def test_errorFieldsAreCarried(self) -> None:
        self.factory.retryRateLimited = False
        d = self.factory.request("VersionReq")
        self.server.reply(
            self.lastRequest(),
            ProtoOAErrorRes(ctidTraderAccountId=7, errorCode="BLOCKED_PAYLOAD_TYPE", description="slow down",
                            maintenanceEndTimestamp=123, retryAfter=2),
        )
        self.flush()
        error = self.failureResultOf(d, BlockedPayloadTypeError).value
        self.assertEqual((error.ctidTraderAccountId, error.retryAfter, error.maintenanceEndTimestamp), (7, 2, 123))
        self.assertIn("retry after 2 s", str(error))

    def test_commonErrorRes(self) -> None:
        d = self.factory.request("VersionReq")
        self.server.reply(self.lastRequest(), ProtoErrorRes(errorCode="UNSUPPORTED_MESSAGE", description="no"))
        self.flush()
        self.failureResultOf(d, UnsupportedMessageError)

    def test_unknownCodeIsPlainOpenApiError(self) -> None:
        d = self.factory.request("VersionReq")
        self.server.reply(self.lastRequest(), ProtoOAErrorRes(errorCode="SOMETHING_NEW", description="?"))
        self.flush()
        error = self.failureResultOf(d, OpenApiError).value
        self.assertIs(type(error), OpenApiError)
        self.assertEqual(error.errorCode, "SOMETHING_NEW")

    def test_orderErrorEvent(self) -> None:
        d = self.factory.request("NewOrderReq", ctidTraderAccountId=1, symbolId=1, orderType=1, tradeSide=1, volume=100)
        self.server.reply(
            self.lastRequest(),
            ProtoOAOrderErrorEvent(ctidTraderAccountId=1, errorCode="NOT_ENOUGH_MONEY", description="margin", orderId=0),
        )
        self.flush()
        error = self.failureResultOf(d, NotEnoughMoneyError).value
        self.assertIsNone(error.orderId)  # 0 means absent (proto-messages #23)

    def test_rawSendGetsErrorsOnTheCallbackPath(self) -> None:
        d = self.factory.send("VersionReq")
        self.server.reply(self.lastRequest(), ProtoOAErrorRes(errorCode="CH_ACCESS_TOKEN_INVALID"))
        self.flush()
        result = self.successResultOf(d)
        self.assertEqual(result.payloadType, 2142)

    def test_tokenError(self) -> None:
        d = self.factory.request("AccountAuthReq", ctidTraderAccountId=1, accessToken="tok-secret")
        self.server.reply(self.lastRequest(), ProtoOAErrorRes(errorCode="CH_ACCESS_TOKEN_INVALID", description="expired"))
        self.flush()
        self.failureResultOf(d, AccessTokenInvalidError)


class BadArgumentTests(CoreTestCase):
    def assertNothingWritten(self) -> None:
        self.flush()
        self.assertEqual(self.server.requests(), [])

    def test_unknownName(self) -> None:
        e = self.failureResultOf(self.factory.request("AccountsListReq"), UnknownMessageError).value
        self.assertIn("AccountsListReq", str(e))
        self.assertNothingWritten()

    def test_unknownField(self) -> None:
        e = self.failureResultOf(self.factory.request("VersionReq", colour="red"), InvalidMessageError).value
        self.assertIn("colour", str(e))
        self.assertNothingWritten()

    def test_missingRequiredField(self) -> None:
        d = self.factory.request("AccountAuthReq", ctidTraderAccountId=1)
        e = self.failureResultOf(d, InvalidMessageError).value
        self.assertIn("accessToken", str(e))
        self.assertNothingWritten()

    def test_negativeVolume(self) -> None:
        d = self.factory.request("NewOrderReq", ctidTraderAccountId=1, symbolId=1, orderType=1, tradeSide=1, volume=-5)
        e = self.failureResultOf(d, InvalidMessageError).value
        self.assertIn("volume", str(e))
        self.assertNothingWritten()

    def test_wrongTypeDoesNotEchoValue(self) -> None:
        d = self.factory.request("ApplicationAuthReq", clientId="x", clientSecret=12345678)
        e = self.failureResultOf(d, InvalidMessageError).value
        self.assertNotIn("12345678", str(e))
        self.assertNothingWritten()

    def test_badTimeout(self) -> None:
        for bad in (-1, 0, float("nan"), float("inf"), "5", True):
            self.failureResultOf(self.factory.request("VersionReq", responseTimeoutInSeconds=bad), InvalidMessageError)
        self.assertNothingWritten()

    def test_eventMessageWithoutPayloadType(self) -> None:
        d = self.factory.request("ProtoOASymbol", symbolId=1, digits=5, pipPosition=4)
        self.failureResultOf(d, InvalidMessageError)
        self.assertNothingWritten()


class TimeoutTests(CoreTestCase):
    factoryOptions = {"silenceTimeout": None}

    def test_defaultTimeoutIsFiveSeconds(self) -> None:
        d = self.factory.request("VersionReq")
        self.clock.advance(4.9)
        self.assertNoResult(d)
        self.clock.advance(0.2)
        error = self.failureResultOf(d, RequestTimeout).value
        self.assertEqual(error.timeout, 5.0)
        self.assertIn("ProtoOAVersionReq", str(error))
        self.assertEqual(self.factory.pendingCount(), 0)

    def test_perCallTimeout(self) -> None:
        d = self.factory.request("VersionReq", responseTimeoutInSeconds=30)
        self.clock.advance(29)
        self.assertNoResult(d)
        self.clock.advance(1)
        self.failureResultOf(d, RequestTimeout)

    def test_noTimeout(self) -> None:
        d = self.factory.request("VersionReq", responseTimeoutInSeconds=None)
        self.clock.pump([100] * 10)
        self.assertNoResult(d)
        self.server.reply(self.lastRequest(), ProtoOAVersionRes(version="91"))
        self.flush()
        self.successResultOf(d)

    def test_lateAnswerIsNotMisdelivered(self) -> None:
        raw: list[ProtoMessage] = []
        self.factory.addMessageCallback(raw.append)
        d1 = self.factory.request("VersionReq", clientMsgId="late")
        self.flush()
        first = self.server.requests()[-1]
        self.clock.advance(5)
        self.failureResultOf(d1, RequestTimeout)
        d2 = self.factory.request("VersionReq")
        self.server.reply(first, ProtoOAVersionRes(version="late"))
        self.flush()
        self.assertNoResult(d2)
        self.assertEqual([m.clientMsgId for m in raw], ["late"])

    def test_timeoutCountsFromTheWriteNotFromSend(self) -> None:
        # The official SDK started the clock at send(), so queued requests
        # timed out before being written.
        self.factory.outbox.limiter = RateLimiter(self.clock, requestsPerSecond=1, historicalRequestsPerSecond=None, margin=0)
        first = self.factory.request("VersionReq", responseTimeoutInSeconds=2)
        second = self.factory.request("VersionReq", responseTimeoutInSeconds=2)
        self.flush()
        self.assertEqual(len(self.server.requests()), 1)
        self.clock.advance(1.0)  # second written now
        self.flush()
        self.assertEqual(len(self.server.requests()), 2)
        self.clock.advance(1.5)  # 2.5 s after send(), 1.5 s after its write
        self.failureResultOf(first, RequestTimeout)
        self.assertNoResult(second)
        self.clock.advance(0.5)
        self.failureResultOf(second, RequestTimeout)


class CancellationTests(CoreTestCase):
    def test_cancelForgetsTheId(self) -> None:
        d = self.factory.request("VersionReq", clientMsgId="c1")
        request = self.lastRequest()
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.assertEqual(self.factory.pendingCount(), 0)
        self.server.reply(request, ProtoOAVersionRes(version="91"))
        self.flush()  # nothing raises; the late answer is only dispatched
        self.assertEqual(self.clock.getDelayedCalls(), [c for c in self.clock.getDelayedCalls() if c.active()])

    def test_cancelledQueuedRequestIsNeverWritten(self) -> None:
        self.factory.outbox.limiter = RateLimiter(self.clock, requestsPerSecond=1, historicalRequestsPerSecond=None, margin=0)
        self.factory.request("VersionReq")
        queued = self.factory.request("VersionReq", clientMsgId="never")
        queued.cancel()
        self.failureResultOf(queued, CancelledError)
        third = self.factory.request("VersionReq", clientMsgId="third")
        self.clock.advance(1.0)
        self.flush()
        ids = [m.clientMsgId for m in self.server.requests()]
        self.assertNotIn("never", ids)
        # the cancelled entry used no slot: "third" went out at the first free slot
        self.assertEqual(ids[-1], "third")
        self.assertNoResult(third)

    def test_cancelledRequestsDoNotStarveHeartbeats(self) -> None:
        # The official SDK sent no heartbeat for 50 s with 300 cancelled requests queued.
        self.factory.outbox.limiter = RateLimiter(self.clock, requestsPerSecond=5, historicalRequestsPerSecond=None, margin=0)
        for _ in range(300):
            d = self.factory.request("VersionReq")
            d.addErrback(lambda f: None)
            d.cancel()
        self.flush()
        self.server.received.clear()
        self.clock.pump([1] * 30)
        self.flush()
        beats = [m for m in self.server.received if m.payloadType == 51]
        self.assertEqual(len(beats), 3)


class DisconnectTests(CoreTestCase):
    def test_pendingRequestsFailAtOnceWithOutcomeUnknown(self) -> None:
        d1 = self.factory.request("VersionReq")
        d2 = self.factory.send("NewOrderReq", ctidTraderAccountId=1, symbolId=1, orderType=1, tradeSide=1, volume=100)
        self.flush()
        self.disconnect()
        e1 = self.failureResultOf(d1, OutcomeUnknownError).value
        e2 = self.failureResultOf(d2, OutcomeUnknownError).value
        self.assertTrue(e1.sent and e2.sent)
        self.assertIn("outcome is unknown", str(e2))
        self.assertEqual(self.factory.pendingCount(), 0)
        self.assertEqual([c for c in self.clock.getDelayedCalls() if c.active()], [])

    def test_queuedRequestsFailAsNotSent(self) -> None:
        self.factory.outbox.limiter = RateLimiter(self.clock, requestsPerSecond=1, historicalRequestsPerSecond=None, margin=0)
        sent = self.factory.request("VersionReq")
        queued = self.factory.request("VersionReq")
        self.flush()
        self.disconnect()
        self.failureResultOf(sent, OutcomeUnknownError)
        error = self.failureResultOf(queued, NotSentError).value
        self.assertFalse(error.sent)

    def test_queuedRequestsWaitForReconnectionWhenAsked(self) -> None:
        self.factory.keepQueuedOnDisconnect = True
        self.disconnect()
        d = self.factory.request("VersionReq")
        self.assertNoResult(d)
        self.connect()
        request = self.lastRequest()
        self.assertEqual(request.payloadType, 2104)
        self.server.reply(request, ProtoOAVersionRes(version="91"))
        self.flush()
        self.successResultOf(d)

    def test_requestAfterDisconnectDoesNotWriteToOldConnection(self) -> None:
        old = self.server
        self.disconnect()
        d = self.factory.request("VersionReq")
        self.assertNoResult(d)
        self.pump.flush()
        self.assertEqual(old.requests(), [])
        d.addErrback(lambda f: None)
        d.cancel()

    def test_disconnectObserverCalled(self) -> None:
        seen: list[Any] = []
        self.factory.addDisconnectionObserver(lambda proto, reason: seen.append(reason))
        self.disconnect()
        self.assertEqual(len(seen), 1)
        self.assertIsNone(self.factory.connection)


class HeartbeatTests(CoreTestCase):
    def beats(self) -> int:
        self.flush()
        return sum(1 for m in self.server.received if m.payloadType == 51)

    def test_everyTenSeconds(self) -> None:
        self.clock.pump([1] * 9)
        self.assertEqual(self.beats(), 0)
        self.clock.pump([1] * 21)
        self.assertEqual(self.beats(), 3)

    def test_heartbeatBytes(self) -> None:
        self.assertEqual(HEARTBEAT_FRAME, b"\x08\x33\x12\x00")

    def test_heartbeatsIgnoreOtherTraffic(self) -> None:
        for _ in range(10):
            self.factory.request("VersionReq", responseTimeoutInSeconds=None)
            self.clock.advance(1)
        self.assertEqual(self.beats(), 1)

    def test_stopAfterDisconnect(self) -> None:
        self.disconnect()
        self.assertEqual([c for c in self.clock.getDelayedCalls() if c.active()], [])


class SilenceWatchdogTests(CoreTestCase):
    def test_silentLinkIsDropped(self) -> None:
        d = self.factory.request("VersionReq", responseTimeoutInSeconds=None)
        self.clock.pump([5] * 12)  # 60 s with nothing received
        self.flush()
        self.assertIsNone(self.factory.connection)
        error = self.failureResultOf(d, OutcomeUnknownError).value
        self.assertIsInstance(error.reason, SilentConnectionError)
        self.assertTrue(self.server.lost)

    def test_anyInboundFrameKeepsTheLinkAlive(self) -> None:
        for _ in range(20):
            self.clock.pump([5] * 2)
            self.server.pushRaw(HEARTBEAT_FRAME)
            self.flush()
        self.assertIsNotNone(self.factory.connection)
        self.clock.pump([5] * 15)  # within 1.25 periods of the last frame
        self.flush()
        self.assertIsNone(self.factory.connection)

    def test_ourHeartbeatsDoNotCount(self) -> None:
        # Outbound heartbeats flow every 10 s, yet a silent peer is still dropped.
        self.clock.pump([1] * 59)
        self.assertIsNotNone(self.factory.connection)
        self.clock.pump([1] * 16)
        self.flush()
        self.assertIsNone(self.factory.connection)


class ConfiguredSilenceTests(CoreTestCase):
    factoryOptions = {"silenceTimeout": 8.0}

    def test_configurable(self) -> None:
        self.clock.pump([1] * 7)
        self.assertIsNotNone(self.factory.connection)
        self.clock.pump([1] * 3)
        self.flush()
        self.assertIsNone(self.factory.connection)


class ConfiguredHeartbeatTests(CoreTestCase):
    factoryOptions = {"heartbeatInterval": 3.0}

    def test_configurable(self) -> None:
        self.clock.pump([1] * 9)
        self.flush()
        self.assertEqual(sum(1 for m in self.server.received if m.payloadType == 51), 3)


class CallbackIsolationTests(CoreTestCase):
    def test_exceptionInListenerIsLoggedAndContained(self) -> None:
        good: list[Any] = []

        def bad(message: Any) -> None:
            raise ValueError("user bug")

        self.factory.addListener("ProtoOAVersionRes", bad)
        self.factory.addListener("ProtoOAVersionRes", good.append)
        self.factory.addMessageCallback(lambda m: 1 / 0)
        d = self.factory.request("VersionReq")
        self.server.reply(self.lastRequest(), ProtoOAVersionRes(version="91"))
        self.flush()
        self.successResultOf(d)
        self.assertEqual(len(good), 1)
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        self.assertIsNotNone(self.factory.connection)
        self.assertFalse(self.server.lost)


class RateLimitTests(CoreTestCase):
    def test_noDelayUnderTheLimit(self) -> None:
        for _ in range(50):
            self.factory.request("VersionReq")
        self.flush()
        self.assertEqual(len(self.server.requests()), 50)

    def test_fiftyPerSecond(self) -> None:
        """50 requests go at once; the next 50 once the oldest left the
        window of 1 s plus the 0.1 s margin for uneven arrivals."""
        for _ in range(120):
            self.factory.request("VersionReq", responseTimeoutInSeconds=None)
        self.flush()
        self.assertEqual(len(self.server.requests()), 50)
        self.clock.advance(1.0)
        self.flush()
        self.assertEqual(len(self.server.requests()), 50)
        self.clock.advance(0.1)
        self.flush()
        self.assertEqual(len(self.server.requests()), 100)
        self.clock.advance(1.1)
        self.flush()
        self.assertEqual(len(self.server.requests()), 120)

    def test_noMarginCountsWholeSeconds(self) -> None:
        self.factory.outbox.limiter = RateLimiter(self.clock, requestsPerSecond=50, margin=0)
        for _ in range(60):
            self.factory.request("VersionReq", responseTimeoutInSeconds=None)
        self.flush()
        self.clock.advance(1.0)
        self.flush()
        self.assertEqual(len(self.server.requests()), 60)

    def test_historicalFivePerSecondDoesNotHoldOtherRequests(self) -> None:
        for _ in range(7):
            self.factory.request("GetTrendbarsReq", ctidTraderAccountId=1, symbolId=1, period=1,
                                 fromTimestamp=0, toTimestamp=1, responseTimeoutInSeconds=None)
        self.factory.request("VersionReq", clientMsgId="general")
        self.flush()
        types = [m.payloadType for m in self.server.requests()]
        self.assertEqual(types.count(2137), 5)
        self.assertIn(2104, types)
        self.clock.advance(1.1)
        self.flush()
        self.assertEqual([m.payloadType for m in self.server.requests()].count(2137), 7)

    def test_blockedPayloadTypeHeldForRetryAfter(self) -> None:
        """A BLOCKED_PAYLOAD_TYPE answer holds that payload type for its
        retryAfter, other types go on, and the refused request is written
        again when the hold ends (the server did not act on it)."""
        d = self.factory.request("VersionReq", clientMsgId="first", responseTimeoutInSeconds=10)
        self.server.reply(self.lastRequest(), ProtoOAErrorRes(errorCode="BLOCKED_PAYLOAD_TYPE", retryAfter=3))
        self.flush()
        self.assertNoResult(d)
        held = self.factory.request("VersionReq", clientMsgId="held")
        other = self.factory.request("AssetClassListReq", ctidTraderAccountId=1, clientMsgId="other")
        self.flush()
        ids = [m.clientMsgId for m in self.server.requests()]
        self.assertEqual(ids, ["first", "other"])
        self.clock.advance(3)
        self.flush()
        self.assertEqual([m.clientMsgId for m in self.server.requests()][2:], ["first", "held"])
        self.server.reply(self.server.requests()[2], ProtoOAVersionRes(version="91"))
        self.flush()
        self.assertEqual(self.successResultOf(d).version, "91")
        self.assertNoResult(held)
        self.assertNoResult(other)
        self.assertEqual(self.factory.rateLimitRetries, 1)

    def test_blockedWithoutRetryFails(self) -> None:
        self.factory.retryRateLimited = False
        d = self.factory.request("VersionReq")
        self.server.reply(self.lastRequest(), ProtoOAErrorRes(errorCode="BLOCKED_PAYLOAD_TYPE", retryAfter=3))
        self.flush()
        self.failureResultOf(d, BlockedPayloadTypeError)

    def test_absurdRetryAfterIsBounded(self) -> None:
        """A retryAfter of 1e12 s holds the type for MAX_BLOCK_SECONDS only,
        and a request held by it still fires within its own timeout."""
        events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        d = self.factory.request("VersionReq", clientMsgId="first")
        self.server.reply(self.lastRequest(), ProtoOAErrorRes(errorCode="BLOCKED_PAYLOAD_TYPE", retryAfter=10**12))
        self.flush()
        held = self.factory.request("VersionReq", clientMsgId="held", responseTimeoutInSeconds=2)
        self.clock.advance(2)
        self.failureResultOf(held, NotSentTimeout)
        self.assertNoResult(d)  # the refused one waits under its own deadline (from its write)
        self.clock.advance(3)
        self.failureResultOf(d, NotSentTimeout)
        self.assertTrue(self.factory.limiter.isBlocked(2104))
        self.clock.advance(MAX_BLOCK_SECONDS)
        self.assertFalse(self.factory.limiter.isBlocked(2104))
        self.assertIn("the maximum", " ".join(str(e.get("log_format")) for e in events))

    def test_frequencyExceededIsRetriedWithBackoff(self) -> None:
        d = self.factory.request("VersionReq", clientMsgId="a", responseTimeoutInSeconds=30)
        for n in range(3):
            self.server.reply(self.lastRequest(), ProtoOAErrorRes(errorCode="REQUEST_FREQUENCY_EXCEEDED"))
            self.flush()
            self.assertNoResult(d)
            written = len(self.server.requests())
            self.clock.advance(0.25 * 2**n - 0.01)
            self.flush()
            self.assertEqual(len(self.server.requests()), written)
            self.clock.advance(0.01)
            self.flush()
            self.assertEqual(len(self.server.requests()), written + 1)
        self.server.reply(self.lastRequest(), ProtoOAVersionRes(version="91"))
        self.flush()
        self.successResultOf(d)

    def test_retriesAreBounded(self) -> None:
        self.factory.maxRateLimitRetries = 2
        d = self.factory.request("VersionReq", responseTimeoutInSeconds=None)
        for _ in range(3):
            self.server.reply(self.lastRequest(), ProtoOAErrorRes(errorCode="REQUEST_FREQUENCY_EXCEEDED"))
            self.clock.advance(8)
            self.flush()
        self.failureResultOf(d, RateLimitError)
        self.assertEqual(len(self.server.requests()), 3)

    def test_queueIsBounded(self) -> None:
        factory = Factory(TcpProtocol, self.clock, maxQueuedRequests=3)
        for _ in range(3):
            factory.request("VersionReq")  # not connected: all queued
        e = self.failureResultOf(factory.request("VersionReq"), QueueFullError).value
        self.assertIn("maxQueuedRequests=3", str(e))
        factory.failQueued(NotSentError("test over"))
        self.flushLoggedErrors()


class IsolationTests(SynchronousTestCase):
    def test_nothingSharedBetweenFactories(self) -> None:
        # The official SDK's send queue was a class attribute shared by every client.
        clock = Clock()
        a = Factory(TcpProtocol, clock)
        b = Factory(TcpProtocol, clock)
        _, serverA, pumpA = connectInMemory(a, clock)
        _, serverB, pumpB = connectInMemory(b, clock)
        for _ in range(30):
            a.request("VersionReq", responseTimeoutInSeconds=None)
        pumpA.flush()
        pumpB.flush()
        self.assertEqual(len(serverA.requests()), 30)
        self.assertEqual(serverB.requests(), [])
        protoA, protoB = a.buildProtocol(None), b.buildProtocol(None)
        self.assertIsNot(protoA._splitter, protoB._splitter)

    def test_factoryNeedsAClock(self) -> None:
        self.assertRaises(TypeError, Factory, TcpProtocol)

    def test_reprHasNoSecrets(self) -> None:
        clock = Clock()
        f = Factory(TcpProtocol, clock)
        _, server, pump = connectInMemory(f, clock)
        f.request("ApplicationAuthReq", clientId="cid", clientSecret="very-secret")
        self.assertNotIn("very-secret", repr(f))


class LoggingTests(CoreTestCase):
    def test_noSecretInLogs(self) -> None:
        events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        d = self.factory.request("ApplicationAuthReq", clientId="cid", clientSecret="app-secret-123",
                                 responseTimeoutInSeconds=1)
        self.clock.advance(1)
        self.failureResultOf(d, RequestTimeout)
        d = self.factory.request("RefreshTokenReq", refreshToken="refresh-secret-456")
        self.disconnect()
        failure = self.failureResultOf(d, OutcomeUnknownError)
        from twisted.logger import formatEvent

        text = "\n".join(formatEvent(e) + repr(e) for e in events) + str(failure.value)
        self.assertTrue(events)  # something was logged
        self.assertNotIn("app-secret-123", text)
        self.assertNotIn("refresh-secret-456", text)


class RepeatedVolumeTests(CoreTestCase):
    def test_repeatedVolumesAreValidatedEachOne(self) -> None:
        self.factory.request("ExpectedMarginReq", ctidTraderAccountId=1, symbolId=1, volume=[100, 200])
        self.flush()
        self.assertEqual(self.server.requests()[-1].payloadType, 2139)
        d = self.factory.request("ExpectedMarginReq", ctidTraderAccountId=1, symbolId=1, volume=[100, 0])
        e = self.failureResultOf(d, InvalidMessageError).value
        self.assertIn("volume", str(e))


class QueuedCancellationTests(SynchronousTestCase):
    def test_cancelledQueuedRequestsFreeTheirPlace(self) -> None:
        clock = Clock()
        factory = Factory(TcpProtocol, clock, maxQueuedRequests=2)
        factory.keepQueuedOnDisconnect = True
        first = factory.request("VersionReq")  # not connected: queued
        second = factory.request("VersionReq")
        first.cancel()
        self.failureResultOf(first, CancelledError)
        third = factory.request("VersionReq")  # the cancelled one's place is free
        self.failureResultOf(factory.request("VersionReq"), QueueFullError)
        client, server, pump = connectInMemory(factory, clock)
        self.assertEqual(len(server.requests()), 2)
        for d in (second, third):
            d.cancel()
            self.failureResultOf(d, CancelledError)
