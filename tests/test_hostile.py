"""Hostile and broken input, property-based (hypothesis).

Random bytes, truncated and split frames, huge and zero lengths, unknown
payload types and garbage payloads go through the framing and decoding
layers. Every case must end in a defined outcome: messages delivered,
a frame skipped with a logged reason, or the connection closed with a
specific error. Nothing may raise into the reactor, and the receive buffer
stays bounded.
"""

from __future__ import annotations

import struct
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.error import ConnectionAborted
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from ctrader_twisted.errors import FrameTooLargeError, InvalidMessageError, OutcomeUnknownError
from ctrader_twisted.factory import Factory
from ctrader_twisted.messages.OpenApiCommonMessages_pb2 import ProtoMessage
from ctrader_twisted.messages.OpenApiMessages_pb2 import ProtoOASpotEvent
from ctrader_twisted.protobuf import Protobuf
from ctrader_twisted.tcp import TcpProtocol, frame

LIMIT = 4096
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class Harness:
    """A core + TCP protocol on an in-memory transport, recording outcomes."""

    def __init__(self) -> None:
        self.clock = Clock()
        self.factory = Factory(TcpProtocol, self.clock, maxMessageSize=LIMIT, silenceTimeout=None)
        self.raw: list[ProtoMessage] = []
        self.spots: list[Any] = []
        self.factory.addMessageCallback(self.raw.append)
        self.factory.addListener("ProtoOASpotEvent", self.spots.append)
        self.proto = self.factory.buildProtocol(None)
        self.transport = StringTransport()
        self.closedWith: Failure | None = None
        self.transport.abortConnection = self._abort  # type: ignore[method-assign]
        self.proto.makeConnection(self.transport)
        self.maxBuffer = 0

    def _abort(self) -> None:
        if self.closedWith is None:
            self.closedWith = Failure(ConnectionAborted())
            self.proto.connectionLost(self.closedWith)

    def feed(self, chunks: list[bytes]) -> None:
        for chunk in chunks:
            self.proto.dataReceived(chunk)
            self.maxBuffer = max(self.maxBuffer, self.proto._splitter.buffered)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:])]


spotEvents = st.builds(
    ProtoOASpotEvent,
    ctidTraderAccountId=st.integers(1, 2**40),
    symbolId=st.integers(1, 10_000),
    bid=st.integers(0, 2**40),
    ask=st.integers(0, 2**40),
)


def spotFrame(event: ProtoOASpotEvent) -> bytes:
    return frame(ProtoMessage(payloadType=2131, payload=event.SerializeToString()).SerializeToString())


class HostileInputTests(SynchronousTestCase):
    @SETTINGS
    @given(st.binary(max_size=20_000), st.lists(st.integers(0, 20_000), max_size=30))
    def test_randomBytes(self, data: bytes, cuts: list[int]) -> None:
        h = Harness()
        h.feed(split(data, cuts))
        # Defined outcome: closed for an oversized length, or everything
        # complete was parsed (delivered or skipped) and the rest is buffered.
        if h.closedWith is None:
            self.assertIsNotNone(h.factory.connection)
        else:
            self.assertIsNone(h.factory.connection)
        self.assertLessEqual(h.maxBuffer, LIMIT + 4 + len(data))
        self.assertLessEqual(h.proto._splitter.buffered, LIMIT + 4)

    @SETTINGS
    @given(st.lists(spotEvents, min_size=1, max_size=40), st.lists(st.integers(0, 10**6), max_size=60))
    def test_validFramesSplitAnywhereAreAllDelivered(self, events: list[Any], cuts: list[int]) -> None:
        h = Harness()
        data = b"".join(spotFrame(e) for e in events)
        h.feed(split(data, cuts))
        self.assertEqual([(s.symbolId, s.bid, s.ask) for s in h.spots], [(e.symbolId, e.bid, e.ask) for e in events])
        self.assertEqual(h.proto._splitter.buffered, 0)
        self.assertIsNone(h.closedWith)

    @SETTINGS
    @given(st.lists(spotEvents, min_size=1, max_size=10), st.integers(1, 10**6))
    def test_truncatedStreamKeepsOnlyWhatIsComplete(self, events: list[Any], cut: int) -> None:
        h = Harness()
        data = b"".join(spotFrame(e) for e in events)
        cut = cut % len(data)
        h.feed([data[:cut]])
        complete, offset = 0, 0
        while offset + 4 <= cut:
            (length,) = struct.unpack("!I", data[offset : offset + 4])
            if offset + 4 + length > cut:
                break
            offset += 4 + length
            complete += 1
        self.assertEqual(len(h.spots), complete)
        self.assertEqual(h.proto._splitter.buffered, cut - offset)

    @SETTINGS
    @given(st.integers(LIMIT + 1, 2**32 - 1), st.binary(max_size=200))
    def test_hugeLengthClosesWithSpecificError(self, length: int, tail: bytes) -> None:
        h = Harness()
        d = h.factory.request("VersionReq")
        h.feed([struct.pack("!I", length) + tail, tail])
        self.assertIsNotNone(h.closedWith)
        error = self.failureResultOf(d, OutcomeUnknownError).value
        self.assertIsInstance(error.reason, FrameTooLargeError)
        self.assertEqual(error.reason.length, length)
        self.assertEqual(h.proto._splitter.buffered, 0)  # nothing of it was buffered

    @SETTINGS
    @given(st.lists(st.just(b"\x00\x00\x00\x00"), min_size=1, max_size=20), spotEvents)
    def test_zeroLengthFramesAreSkipped(self, zeros: list[bytes], event: Any) -> None:
        h = Harness()
        h.feed(zeros + [spotFrame(event)])
        self.assertEqual(len(h.spots), 1)
        self.assertEqual(len(h.raw), 1)

    @SETTINGS
    @given(
        # 0 is no payload type: such frames are skipped like ones without it
        st.integers(1, 2**32 - 1).filter(lambda t: t not in Protobuf.payloadTypes()),
        st.binary(max_size=300),
    )
    def test_unknownPayloadTypesPassThrough(self, payloadType: int, payload: bytes) -> None:
        h = Harness()
        h.feed([frame(ProtoMessage(payloadType=payloadType, payload=payload).SerializeToString())])
        self.assertEqual([(m.payloadType, m.payload) for m in h.raw], [(payloadType, payload)])
        self.assertEqual(h.spots, [])
        self.assertIsNone(h.closedWith)

    @SETTINGS
    @given(st.sampled_from(sorted(Protobuf.payloadTypes())), st.binary(max_size=300))
    def test_garbagePayloadsNeverRaise(self, payloadType: int, payload: bytes) -> None:
        h = Harness()
        h.factory.addListener(payloadType, lambda message: None)
        h.feed([frame(ProtoMessage(payloadType=payloadType, payload=payload).SerializeToString())])
        self.assertEqual(len(h.raw), 1)
        self.assertIsNone(h.closedWith)

    @SETTINGS
    @given(st.binary(min_size=1, max_size=64))
    def test_garbageAnswerFailsTheRequestClearly(self, payload: bytes) -> None:
        h = Harness()
        d = h.factory.request("VersionReq")
        msgId = ProtoMessage.FromString(h.transport.value()[4:]).clientMsgId
        answer = ProtoMessage(payloadType=2105, payload=payload, clientMsgId=msgId)
        h.feed([frame(answer.SerializeToString())])
        try:
            Protobuf.extract(answer)
        except InvalidMessageError:
            self.failureResultOf(d, InvalidMessageError)
        else:
            self.successResultOf(d)
        self.assertEqual(h.factory.pendingCount(), 0)

    @SETTINGS
    @given(st.binary(max_size=2000))
    def test_coreDecodingLayerSurvivesAnyMessageBytes(self, data: bytes) -> None:
        # The WebSocket transport hands each binary message straight to this.
        h = Harness()
        h.factory.frameReceived(h.proto, data)
        self.assertIsNotNone(h.factory.connection)
