"""The correlator alone: ids, deadlines (one timer for all), answers."""

from __future__ import annotations

import random
from typing import Any

from twisted.internet.defer import CancelledError
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from ctrader_twisted.errors import (
    DuplicateClientMsgIdError,
    NotSentTimeout,
    OutcomeUnknownError,
    RequestTimeout,
    UnsupportedMessageError,
)
from ctrader_twisted.messages.OpenApiCommonMessages_pb2 import ProtoErrorRes, ProtoMessage
from ctrader_twisted.messages.OpenApiMessages_pb2 import ProtoOAVersionReq, ProtoOAVersionRes
from ctrader_twisted.requests import Correlator, Request

VERSION = 2104
BODY = ProtoOAVersionReq().SerializeToString()


def answer(request: Request, payload: Any) -> ProtoMessage:
    return ProtoMessage(payloadType=payload.payloadType, payload=payload.SerializeToString(), clientMsgId=request.clientMsgId)


class CorrelatorTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.forgotten: list[Request] = []
        self.correlator = Correlator(self.clock, onForget=self.forgotten.append)

    def create(self, timeout: float | None = 5.0, clientMsgId: str | None = None, raw: bool = False) -> Request:
        return self.correlator.create(VERSION, BODY, clientMsgId, raw=raw, timeout=timeout)

    def test_idsAreUniqueAndTheEnvelopeIsEncodedOnce(self) -> None:
        first, second = self.create(), self.create()
        self.assertEqual((first.clientMsgId, second.clientMsgId), ("ct1", "ct2"))
        envelope = ProtoMessage.FromString(first.data)
        self.assertEqual((envelope.payloadType, envelope.payload, envelope.clientMsgId), (VERSION, BODY, "ct1"))

    def test_callerIdsAreCheckedAndSkipped(self) -> None:
        self.create(clientMsgId="ct1")
        self.assertRaises(DuplicateClientMsgIdError, self.create, clientMsgId="ct1")
        self.assertEqual(self.create().clientMsgId, "ct2")

    def test_answerFiresOnceAndForgets(self) -> None:
        request = self.create()
        self.correlator.written(request, "link")
        self.correlator.answer(request, answer(request, ProtoOAVersionRes(version="91")))
        self.assertEqual(self.successResultOf(request.deferred).version, "91")
        self.assertEqual(len(self.correlator), 0)
        self.assertEqual(self.forgotten, [request])
        self.assertEqual(request.data, b"")

    def test_errorAnswerIsTyped(self) -> None:
        request = self.create()
        self.correlator.written(request, "link")
        self.correlator.answer(request, answer(request, ProtoErrorRes(errorCode="UNSUPPORTED_MESSAGE")))
        self.failureResultOf(request.deferred, UnsupportedMessageError)

    def test_unwrittenTimesOutAsNotSent(self) -> None:
        request = self.create(timeout=2)
        self.clock.advance(2)
        self.failureResultOf(request.deferred, NotSentTimeout)

    def test_writtenTimesOutFromTheWrite(self) -> None:
        request = self.create(timeout=2)
        self.clock.advance(1.5)
        self.correlator.written(request, "link")
        self.clock.advance(1.9)
        self.assertNoResult(request.deferred)
        self.clock.advance(0.1)
        self.failureResultOf(request.deferred, RequestTimeout)

    def test_failWrittenOnlyFailsThatConnection(self) -> None:
        a, b, c = self.create(), self.create(), self.create()
        self.correlator.written(a, "one")
        self.correlator.written(b, "two")
        self.correlator.failWritten("one", "test", None)
        self.failureResultOf(a.deferred, OutcomeUnknownError)
        self.assertNoResult(b.deferred)
        self.assertNoResult(c.deferred)

    def test_cancelForgets(self) -> None:
        request = self.create()
        request.deferred.cancel()
        self.failureResultOf(request.deferred, CancelledError)
        self.assertTrue(request.done)
        self.assertEqual(len(self.correlator), 0)


class DeadlineTests(SynchronousTestCase):
    """One timer serves every deadline; it never outlives the last one."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.correlator = Correlator(self.clock)

    def test_noTimerWhenNothingCanTimeOut(self) -> None:
        request = self.correlator.create(VERSION, BODY, None, raw=True, timeout=5)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        request.deferred.cancel()
        self.failureResultOf(request.deferred)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.correlator.create(VERSION, BODY, None, raw=True, timeout=None)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def frozen(self) -> list[float]:
        """The correlator's monotonic clock, moved by hand (a blocked process)."""
        real = [0.0]
        self.correlator._monotonic = lambda: real[0]  # type: ignore[method-assign]
        return real

    def test_blockedProcessGetsTheTimeoutAgainOnce(self) -> None:
        """The timer firing late on both clocks (the process was blocked): the
        requests past their deadline get their timeout again from now, once;
        a request not yet due is left alone; a second block times them out."""
        real = self.frozen()
        late = self.correlator.create(VERSION, BODY, None, raw=True, timeout=5)
        self.correlator.written(late, "link")
        real[0] += 4
        self.clock.advance(4)
        notDue = self.correlator.create(VERSION, BODY, None, raw=True, timeout=20)
        real[0] += 10
        self.clock.advance(10)  # 9 s past the deadline, the process frozen throughout
        self.assertNoResult(late.deferred)
        self.assertTrue(late.extended)
        self.assertFalse(notDue.extended)
        real[0] += 4.9
        self.clock.advance(4.9)
        self.assertNoResult(late.deferred)
        # Once only: blocked again past its new deadline (t=19), it times out
        # now; the other, past its deadline (t=24) in this block, gets its turn.
        real[0] += 5.1
        self.clock.advance(5.1)
        self.assertEqual(self.failureResultOf(late.deferred, RequestTimeout).value.timeout, 5)
        self.assertNoResult(notDue.deferred)
        self.assertTrue(notDue.extended)
        for _ in range(19):
            real[0] += 1
            self.clock.advance(1)
        self.assertNoResult(notDue.deferred)
        real[0] += 1
        self.clock.advance(1)
        self.failureResultOf(notDue.deferred, NotSentTimeout)
        self.assertEqual(self.correlator._live, 0)

    def test_clockMovedAheadIsNotABlock(self) -> None:
        """A test's Clock jumping past a deadline (the process not blocked)
        times the request out at that step, as before."""
        self.frozen()
        request = self.correlator.create(VERSION, BODY, None, raw=True, timeout=5)
        self.correlator.written(request, "link")
        self.clock.advance(60)
        self.failureResultOf(request.deferred, RequestTimeout)
        self.assertFalse(request.extended)

    def test_lateByLessThanTheThresholdIsNotABlock(self) -> None:
        real = self.frozen()
        request = self.correlator.create(VERSION, BODY, None, raw=True, timeout=5)
        real[0] += 5.4
        self.clock.advance(5.4)
        self.failureResultOf(request.deferred, NotSentTimeout)

    def test_oneTimerForManyRequests(self) -> None:
        for _ in range(1000):
            self.correlator.create(VERSION, BODY, None, raw=True, timeout=5)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)

    def test_answeredRequestsDoNotGrowTheDeadlines(self) -> None:
        """The deadline entries stay about as many as the requests in flight."""
        for _ in range(10_000):
            request = self.correlator.create(VERSION, BODY, None, raw=True, timeout=5)
            self.correlator.written(request, "link")
            request.deferred.callback(None)
        self.assertLess(self.correlator._entries, 200)

    def test_mixedTimeoutsExpireInDeadlineOrder(self) -> None:
        rng = random.Random(5)
        expired: list[float] = []
        deadlines = []
        for _ in range(300):
            timeout = rng.choice([1, 2.5, 7, 30, 0.25])
            request = self.correlator.create(VERSION, BODY, None, raw=True, timeout=timeout)
            request.deferred.addErrback(lambda f: expired.append(self.clock.seconds()))
            deadlines.append(timeout)
            if rng.random() < 0.3:
                request.deferred.callback(None)
                deadlines.pop()
            self.clock.advance(0.01)
        self.clock.pump([0.05] * 1000)
        self.assertEqual(len(expired), len(deadlines))
        self.assertEqual(expired, sorted(expired))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_aTimerSetDuringExpiryKeepsEarlierDeadlines(self) -> None:
        """A callback that sends a new request while others expire must not
        push the timer past an earlier deadline."""
        first = self.correlator.create(VERSION, BODY, None, raw=True, timeout=1)
        second = self.correlator.create(VERSION, BODY, None, raw=True, timeout=2)
        late: list[Request] = []

        def sendAnother(failure: Any) -> Any:
            late.append(self.correlator.create(VERSION, BODY, None, raw=True, timeout=10))
            return failure

        first.deferred.addErrback(sendAnother)
        self.clock.advance(1)
        self.failureResultOf(first.deferred, NotSentTimeout)
        self.clock.advance(1)
        self.failureResultOf(second.deferred, NotSentTimeout)
        self.assertNoResult(late[0].deferred)
