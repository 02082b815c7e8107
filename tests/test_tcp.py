"""TCP framing: split and coalesced frames, oversize, garbage, linear buffering."""

from __future__ import annotations

import struct
from typing import Any

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from ctrader_twisted.errors import FrameTooLargeError, OutcomeUnknownError
from ctrader_twisted.factory import Factory
from ctrader_twisted.messages.OpenApiCommonMessages_pb2 import ProtoMessage
from ctrader_twisted.messages.OpenApiMessages_pb2 import ProtoOASpotEvent, ProtoOAVersionRes
from ctrader_twisted.tcp import DEFAULT_MAX_MESSAGE_SIZE, TcpProtocol, frame


class AbortableTransport(StringTransport):
    """A StringTransport whose abortConnection delivers connectionLost."""

    def __init__(self) -> None:
        super().__init__()
        self.aborted = False

    def abortConnection(self) -> None:
        from twisted.internet.error import ConnectionAborted
        from twisted.python.failure import Failure

        self.aborted = True
        self.protocol.connectionLost(Failure(ConnectionAborted()))


def spotFrame(bid: int) -> bytes:
    payload = ProtoOASpotEvent(ctidTraderAccountId=1, symbolId=1, bid=bid).SerializeToString()
    return frame(ProtoMessage(payloadType=2131, payload=payload).SerializeToString())


class FramingTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.factory = Factory(TcpProtocol, self.clock, maxMessageSize=1000)
        self.spots: list[Any] = []
        self.factory.addListener("SpotEvent", self.spots.append)
        self.proto = self.factory.buildProtocol(None)
        self.transport = AbortableTransport()
        self.transport.protocol = self.proto
        self.proto.makeConnection(self.transport)

    def bids(self) -> list[int]:
        return [s.bid for s in self.spots]

    def test_defaultMaximumIsFifteenMillion(self) -> None:
        proto = Factory(TcpProtocol, self.clock).buildProtocol(None)
        self.assertEqual(proto.MAX_LENGTH, 15_000_000)
        self.assertEqual(DEFAULT_MAX_MESSAGE_SIZE, 15_000_000)
        self.assertEqual(self.proto.MAX_LENGTH, 1000)

    def test_frameSplitIntoSingleBytes(self) -> None:
        for b in spotFrame(1) + spotFrame(2):
            self.proto.dataReceived(bytes([b]))
        self.assertEqual(self.bids(), [1, 2])

    def test_coalescedFrames(self) -> None:
        self.proto.dataReceived(b"".join(spotFrame(i) for i in range(1, 101)))
        self.assertEqual(self.bids(), list(range(1, 101)))

    def test_frameBoundaryInsideLengthPrefix(self) -> None:
        data = spotFrame(1) + spotFrame(2) + spotFrame(3)
        cut = len(spotFrame(1)) + 2
        self.proto.dataReceived(data[:cut])
        self.proto.dataReceived(data[cut:])
        self.assertEqual(self.bids(), [1, 2, 3])

    def test_partialFrameIsKeptAsItsReads(self) -> None:
        """Linear receive: a 4 MiB frame arriving in 16 KiB reads is kept as
        the reads themselves and joined once (the stock IntNStringReceiver
        rebuilds a new bytes object on every read)."""
        big = Factory(TcpProtocol, self.clock)
        received: list[int] = []
        big.addMessageCallback(lambda m: received.append(len(m.payload)))
        proto = big.buildProtocol(None)
        proto.makeConnection(StringTransport())
        payload = b"\x00" * (4 * 1024 * 1024)
        data = frame(ProtoMessage(payloadType=2138, payload=payload).SerializeToString())
        chunk = 16 * 1024
        reads = [data[start : start + chunk] for start in range(0, len(data), chunk)]
        for number, read in enumerate(reads[:-1], 1):
            proto.dataReceived(read)
            self.assertEqual(proto._splitter.buffered, number * chunk)
            self.assertIs(proto._splitter._chunks[-1], read if number > 1 else proto._splitter._chunks[-1])
        self.assertEqual(received, [])
        proto.dataReceived(reads[-1])
        self.assertEqual(received, [len(payload)])
        self.assertEqual(proto._splitter.buffered, 0)

    def test_oversizedFrameClosesWithSpecificError(self) -> None:
        d = self.factory.request("VersionReq")
        self.proto.dataReceived(struct.pack("!I", 1001) + b"x" * 10)
        self.assertTrue(self.transport.aborted)
        failure = self.failureResultOf(d, OutcomeUnknownError)
        self.assertIsInstance(failure.value.reason, FrameTooLargeError)
        self.assertEqual((failure.value.reason.length, failure.value.reason.limit), (1001, 1000))
        # further bytes are ignored, not re-reported
        self.proto.dataReceived(b"more")
        self.assertIsNone(self.factory.connection)

    def test_frameAtTheLimitIsAccepted(self) -> None:
        payload = b"\x01" * (1000 - 10)
        message = ProtoMessage(payloadType=2131, payload=payload).SerializeToString()
        self.assertLessEqual(len(message), 1000)
        raw: list[Any] = []
        self.factory.addMessageCallback(raw.append)
        self.proto.dataReceived(frame(message))
        self.assertEqual(len(raw), 1)

    def test_garbageFrameIsSkippedAndLogged(self) -> None:
        self.proto.dataReceived(frame(b"\xff\xff\xff\xff") + spotFrame(7))
        self.assertEqual(self.bids(), [7])
        self.assertFalse(self.transport.aborted)

    def test_zeroLengthFrameIsSkipped(self) -> None:
        self.proto.dataReceived(frame(b"") + spotFrame(8))
        self.assertEqual(self.bids(), [8])

    def test_garbagePayloadForListenerIsContained(self) -> None:
        self.proto.dataReceived(frame(ProtoMessage(payloadType=2131, payload=b"\xff\xff").SerializeToString()))
        self.proto.dataReceived(spotFrame(9))
        self.assertEqual(self.bids(), [9])
        self.assertFalse(self.transport.aborted)

    def test_writeIsImmediate(self) -> None:
        # No batching timer: the frame is on the transport when send returns.
        self.factory.request("VersionReq")
        written = self.transport.value()
        (length,) = struct.unpack("!I", written[:4])
        message = ProtoMessage.FromString(written[4 : 4 + length])
        self.assertEqual(message.payloadType, 2104)
        self.assertEqual(self.clock.getDelayedCalls()[0].getTime(), 5.0)  # only the timeout (and heartbeat)

    def test_answerDeliveredAcrossReads(self) -> None:
        d = self.factory.request("VersionReq")
        written = self.transport.value()
        msgId = ProtoMessage.FromString(written[4:]).clientMsgId
        answer = frame(
            ProtoMessage(payloadType=2105, payload=ProtoOAVersionRes(version="91").SerializeToString(),
                         clientMsgId=msgId).SerializeToString()
        )
        self.proto.dataReceived(answer[:3])
        self.assertNoResult(d)
        self.proto.dataReceived(answer[3:])
        self.assertEqual(self.successResultOf(d).version, "91")
