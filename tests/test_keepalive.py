"""Liveness alone: heartbeats, the silence watchdog, the handshake deadline."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from ctrader_twisted.interfaces import IFrameTransport
from ctrader_twisted.keepalive import HEARTBEAT_FRAME, HandshakeDeadline, KeepAlive
from ctrader_twisted.messages.OpenApiCommonMessages_pb2 import ProtoMessage


@implementer(IFrameTransport)
class _Transport:
    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.broken = False

    def writeFrame(self, data: bytes) -> None:
        if self.broken:
            raise ConnectionError("closing")
        self.frames.append(data)

    def abort(self) -> None:
        pass

    def close(self) -> None:
        pass


class KeepAliveTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.transport = _Transport()
        self.silences: list[float] = []
        self.keepalive = KeepAlive(self.clock, self.transport, 10, 60, self.silences.append)
        self.keepalive.start()
        self.addCleanup(self.keepalive.stop)

    def test_heartbeatBytesAreTheOfficialOnes(self) -> None:
        message = ProtoMessage.FromString(HEARTBEAT_FRAME)
        self.assertEqual((message.payloadType, message.HasField("payload"), message.payload), (51, True, b""))

    def test_heartbeatEveryTenSeconds(self) -> None:
        self.clock.pump([10] * 3)
        self.assertEqual(self.transport.frames, [HEARTBEAT_FRAME] * 3)

    def test_aRefusedHeartbeatDoesNotStopTheNext(self) -> None:
        self.transport.broken = True
        self.clock.advance(10)
        self.transport.broken = False
        self.clock.advance(10)
        self.assertEqual(len(self.transport.frames), 1)
        self.flushLoggedErrors(ConnectionError)

    def test_readsKeepTheWatchdogQuiet(self) -> None:
        for _ in range(20):
            self.keepalive.reads += 1
            self.clock.advance(15)
        self.assertEqual(self.silences, [])

    def test_silenceIsReportedOnceWithinAQuarterPeriod(self) -> None:
        self.clock.pump([15] * 4)
        self.assertEqual(self.silences, [60.0])
        self.clock.pump([15] * 8)
        self.assertEqual(self.silences, [60.0])

    def test_stopStopsBoth(self) -> None:
        self.keepalive.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])


class HandshakeDeadlineTests(SynchronousTestCase):
    def test_expires(self) -> None:
        clock = Clock()
        expired: list[float] = []
        deadline = HandshakeDeadline(clock, 3, expired.append)
        clock.advance(2.9)
        self.assertTrue(deadline.active)
        clock.advance(0.1)
        self.assertEqual(expired, [3])
        self.assertFalse(deadline.active)

    def test_cancelled(self) -> None:
        clock = Clock()
        expired: list[float] = []
        deadline = HandshakeDeadline(clock, 3, expired.append)
        deadline.cancel()
        deadline.cancel()
        clock.advance(5)
        self.assertEqual(expired, [])
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_none(self) -> None:
        clock = Clock()
        HandshakeDeadline(clock, None, lambda s: None)
        self.assertEqual(clock.getDelayedCalls(), [])
