"""The outbox alone: when requests are written, and the traffic gate."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from ctrader_twisted.errors import NotSentError, QueueFullError
from ctrader_twisted.interfaces import IFrameTransport
from ctrader_twisted.messages.OpenApiCommonMessages_pb2 import ProtoMessage
from ctrader_twisted.outbox import Outbox
from ctrader_twisted.ratelimit import RateLimiter
from ctrader_twisted.requests import Correlator, Request


@implementer(IFrameTransport)
class _Transport:
    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.refuse = False

    def writeFrame(self, data: bytes) -> None:
        if self.refuse:
            raise ValueError("too big")
        self.frames.append(data)

    def abort(self) -> None:
        pass

    def close(self) -> None:
        pass


class OutboxTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.correlator = Correlator(self.clock, onForget=lambda r: self.outbox.forget(r))
        self.outbox = Outbox(self.clock, RateLimiter(self.clock, 2, None, margin=0), 3, self.correlator.written)
        self.transport = _Transport()

    def request(self, priority: bool = False) -> Request:
        request = self.correlator.create(2104, b"", None, raw=True, timeout=None, priority=priority)
        self.outbox.submit(request)
        return request

    def written(self) -> list[str]:
        return [ProtoMessage.FromString(f).clientMsgId for f in self.transport.frames]

    def test_writtenAtOnceWhenConnectedAndUnderTheLimit(self) -> None:
        self.outbox.connected(self.transport)
        self.request()
        self.assertEqual(self.written(), ["ct1"])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_queuedUntilConnectedThenInOrder(self) -> None:
        for _ in range(2):
            self.request()
        self.assertEqual(self.written(), [])
        self.outbox.connected(self.transport)
        self.clock.advance(0)
        self.assertEqual(self.written(), ["ct1", "ct2"])

    def test_gateHoldsUserTrafficButNotPriority(self) -> None:
        self.outbox.hold()
        self.outbox.connected(self.transport)
        self.request()
        self.request(priority=True)
        self.clock.advance(0)
        self.assertEqual(self.written(), ["ct2"])
        self.outbox.release()
        self.clock.advance(0)
        self.assertEqual(self.written(), ["ct2", "ct1"])

    def test_gateClosesAgainOnEveryConnect(self) -> None:
        self.outbox.hold()
        self.outbox.connected(self.transport)
        self.outbox.release()
        self.outbox.disconnected()
        self.outbox.connected(self.transport)
        self.request()
        self.clock.advance(0)
        self.assertEqual(self.written(), [])

    def test_boundedQueue(self) -> None:
        for _ in range(3):
            self.request()
        self.assertRaises(QueueFullError, self.request)

    def test_cancelledQueuedRequestFreesItsPlace(self) -> None:
        requests = [self.request() for _ in range(3)]
        requests[0].deferred.cancel()
        self.failureResultOf(requests[0].deferred)
        self.request()  # fits again
        self.assertEqual(len(self.outbox), 3)

    def test_pacedByTheLimit(self) -> None:
        self.outbox.connected(self.transport)
        for _ in range(5):
            self.request()
        self.assertEqual(len(self.written()), 2)
        self.clock.advance(1)
        self.assertEqual(len(self.written()), 4)
        self.clock.advance(1)
        self.assertEqual(len(self.written()), 5)

    def test_requeuedGoesFirstAfterItsHold(self) -> None:
        self.outbox.connected(self.transport)
        first = self.request()
        self.request()
        self.correlator.unwritten(first)
        self.outbox.limiter.block(2104, 3)
        self.outbox.requeue(first)
        self.clock.advance(3)
        self.assertEqual(self.written(), ["ct1", "ct2", "ct1"])

    def test_aTransportThatRefusesFailsOnlyThatRequest(self) -> None:
        self.outbox.connected(self.transport)
        self.transport.refuse = True
        failed = self.request()
        self.failureResultOf(failed.deferred, NotSentError)
        self.transport.refuse = False
        self.clock.advance(1)
        ok = self.request()
        self.assertNoResult(ok.deferred)
        self.assertEqual(len(self.written()), 1)

    def test_failQueued(self) -> None:
        queued = self.request()
        self.outbox.failQueued(NotSentError("test"))
        self.failureResultOf(queued.deferred, NotSentError)
        self.assertEqual(len(self.outbox), 0)
