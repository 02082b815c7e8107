"""The receive fast paths deliver exactly what the general path delivers.

:class:`~ctrader_twisted.dispatch.Dispatcher` skips the envelope decode for a
plain event (``payloadType`` and ``payload`` only) while no message callback
is registered. A message callback forces the general path for every frame, so
the reference here is the same dispatcher with a no-op message callback. On
random frames (plain events of every size, ``clientMsgId``s matching pending
requests or not, unknown and repeated fields, fields out of order,
non-canonical varints, truncated frames, garbage), random read splits and
listeners that change the dispatcher while a read is dispatched, both must
make the same listener and callback calls, answer the same requests the same
way and log the same warnings: in the dispatcher alone, through the TCP
transport and through the WebSocket transport (messages fragmented or not).
"""

from __future__ import annotations

from typing import Any, Callable

import txaio

txaio.use_twisted()

from hypothesis import HealthCheck, example, given, settings, strategies as st  # noqa: E402
from twisted.internet.task import Clock  # noqa: E402
from twisted.logger import globalLogPublisher  # noqa: E402
from twisted.python.failure import Failure  # noqa: E402
from twisted.trial.unittest import SynchronousTestCase  # noqa: E402

from ctrader_twisted.dispatch import Dispatcher  # noqa: E402
from ctrader_twisted.factory import Factory  # noqa: E402
from ctrader_twisted.framing import frame  # noqa: E402
from ctrader_twisted.messages import OpenApiMessages_pb2 as M  # noqa: E402
from ctrader_twisted.messages.OpenApiCommonMessages_pb2 import ProtoErrorRes, ProtoMessage  # noqa: E402
from ctrader_twisted.messages.OpenApiModelMessages_pb2 import ProtoOADepthQuote  # noqa: E402
from ctrader_twisted.requests import Correlator  # noqa: E402
from ctrader_twisted.tcp import TcpProtocol  # noqa: E402
from ctrader_twisted.testing import ScriptedWebSocketServer, connectInMemory  # noqa: E402
from ctrader_twisted.websocket import WebSocketProtocol  # noqa: E402

SPOT, DEPTH, VERSION_RES, EXECUTION = 2131, 2155, 2105, 2126
ERROR_RES, HEARTBEAT, OA_ERROR_RES = 50, 51, 2142
#: Payload types the frames use: listened to or not, below 128 or not.
TYPES = [SPOT, DEPTH, VERSION_RES, EXECUTION, ERROR_RES, HEARTBEAT, OA_ERROR_RES, 2100, 2193]
#: clientMsgIds of requests pending on the connection ("w" one written on
#: another connection), and ids matching nothing.
IDS = ["r1", "r2", "r3", "w", "zz", "ct1", ""]


def _depth(quotes: int) -> bytes:
    event = M.ProtoOADepthEvent(ctidTraderAccountId=7, symbolId=1)
    for i in range(quotes):
        event.newQuotes.append(ProtoOADepthQuote(id=i, size=100_000 + i, bid=116_000 + i))
    return event.SerializeToString()


#: Valid payloads of each type (the depth events with 1, 9 and 1500 quotes
#: have one-, two- and three-byte lengths).
PAYLOADS: dict[int, list[bytes]] = {
    SPOT: [
        M.ProtoOASpotEvent(ctidTraderAccountId=7, symbolId=1, bid=116_228, ask=116_230).SerializeToString(),
        M.ProtoOASpotEvent(ctidTraderAccountId=7, symbolId=1).SerializeToString(),
        b"",
    ],
    DEPTH: [_depth(1), _depth(9), _depth(1500)],
    VERSION_RES: [M.ProtoOAVersionRes(version="91").SerializeToString()],
    ERROR_RES: [ProtoErrorRes(errorCode="CANT_ROUTE_REQUEST", description="no").SerializeToString()],
    OA_ERROR_RES: [M.ProtoOAErrorRes(errorCode="INVALID_REQUEST", description="bad").SerializeToString()],
}


PLAIN_SPOT = ProtoMessage(payloadType=SPOT, payload=PAYLOADS[SPOT][0]).SerializeToString()
PLAIN_DEPTH = ProtoMessage(payloadType=DEPTH, payload=PAYLOADS[DEPTH][0]).SerializeToString()
BIG_DEPTH = ProtoMessage(payloadType=DEPTH, payload=_depth(6000)).SerializeToString()


def varint(value: int, padding: int = 0) -> bytes:
    """*value* as a protobuf varint; *padding* redundant bytes make it non-canonical."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value or padding:
            out.append(byte | 0x80)
            if not value:
                break
        else:
            out.append(byte)
            return bytes(out)
    for _ in range(padding - 1):
        out.append(0x80)
    out.append(0)
    return bytes(out)


payloads = st.one_of(
    st.sampled_from(TYPES).flatmap(lambda t: st.sampled_from(PAYLOADS.get(t, [b""]))),
    st.binary(max_size=40),
    st.binary(min_size=120, max_size=300),
    st.binary(min_size=125, max_size=130),  # around the one-byte length's end
)
paddings = st.sampled_from([0, 0, 0, 0, 1, 2])


@st.composite
def fields(draw: Any) -> bytes:
    """One ``ProtoMessage`` field, well formed or not."""
    kind = draw(st.sampled_from(["type", "payload", "id", "unknown", "garbage"]))
    if kind == "type":
        value = draw(st.one_of(st.sampled_from(TYPES), st.integers(0, 2**32 - 1)))
        return b"\x08" + varint(value, draw(paddings))
    if kind == "payload":
        data = draw(payloads)
        return b"\x12" + varint(len(data), draw(paddings)) + data
    if kind == "id":
        text = draw(st.sampled_from(IDS)).encode()
        return b"\x1a" + varint(len(text)) + text
    if kind == "unknown":
        return draw(st.sampled_from([b"\x20\x05", b"\x2a\x02ab", b"\x35\x00\x00\x00\x00", b"\x08"]))
    return draw(st.binary(max_size=6))


@st.composite
def frames(draw: Any) -> bytes:
    """A frame's bytes: mostly envelopes as a server writes them, the rest odd."""
    kind = draw(st.sampled_from(["plain", "plain", "plain", "answer", "padded", "odd", "garbage"]))
    if kind in ("plain", "answer"):
        payloadType = draw(st.sampled_from(TYPES))
        payload = draw(st.one_of(st.sampled_from(PAYLOADS.get(payloadType, [b""])), payloads))
        clientMsgId = draw(st.sampled_from(IDS)) if kind == "answer" else None
        data = ProtoMessage(payloadType=payloadType, payload=payload, clientMsgId=clientMsgId).SerializeToString()
    elif kind == "odd":
        data = b"".join(draw(st.lists(fields(), max_size=4)))
    elif kind == "padded":  # a plain event's two fields, their varints perhaps non-canonical
        payloadType = draw(st.sampled_from(TYPES))
        payload = draw(payloads)
        data = b"\x08" + varint(payloadType, draw(paddings)) + b"\x12" + varint(len(payload), draw(paddings)) + payload
    else:
        data = draw(st.binary(max_size=40))
    cut = draw(st.integers(0, 19))
    if cut == 0:  # truncated anywhere
        data = data[: draw(st.integers(0, len(data)))]
    elif cut == 1:  # a byte short, or a byte too many
        data = data[:-1] if draw(st.booleans()) else data + b"\x00"
    return data


#: What a listener does on its n-th call (counting every listener call).
ACTIONS = ["addCallback", "removeCallback", "addListener", "removeListener", "raise", "lose"]
actions = st.dictionaries(st.integers(0, 40), st.sampled_from(ACTIONS), max_size=3)


def describe(value: Any) -> Any:
    """A comparable description of a decoded payload, envelope or failure."""
    if isinstance(value, Failure):
        return ("failure", type(value.value).__name__, str(value.value))
    return (type(value).__name__, value.SerializePartialToString())


class Run:
    """One run of frames through a core: everything it delivered and logged.

    :param reference: register a no-op message callback first (the general
        path for every frame).
    :param listened: payload types with a listener (each gets two).
    :param actions: what the listeners do on their n-th call.
    """

    def __init__(self, reference: bool, listened: list[int], actions: dict[int, str]) -> None:
        self.record: list[Any] = []
        self.actions = actions
        self.calls = 0
        self.lost = False
        self.reference = reference
        self.listened = listened

    def install(self, add: Callable[[Any, Any], None], addCallback: Callable[[Any], None],
                removeListener: Callable[[Any, Any], None], removeCallback: Callable[[Any], None]) -> None:
        self.addListener, self.addCallback = add, addCallback
        self.removeListener, self.removeCallback = removeListener, removeCallback
        if self.reference:
            addCallback(lambda message: None)
        for payloadType in self.listened:
            add(payloadType, self.first)
            add(payloadType, self.second)

    def first(self, event: Any) -> None:
        self.record.append(("first", describe(event)))
        self._act(event)

    def second(self, event: Any) -> None:
        self.record.append(("second", describe(event)))
        self._act(event)

    def late(self, event: Any) -> None:
        self.record.append(("late", describe(event)))

    def callback(self, message: Any) -> None:
        self.record.append(("callback", describe(message)))

    def _act(self, event: Any) -> None:
        action = self.actions.get(self.calls)
        self.calls += 1
        if action == "addCallback":
            self.addCallback(self.callback)
        elif action == "removeCallback":
            try:
                self.removeCallback(self.callback)
            except ValueError:
                pass
        elif action == "addListener":  # to its own type and to one nobody listened to
            self.addListener(type(event), self.late)
            self.addListener(next((t for t in TYPES if t not in self.listened), SPOT), self.late)
        elif action == "removeListener":
            try:
                self.removeListener(type(event), self.first)
            except ValueError:
                pass
        elif action == "raise":
            raise ValueError("a listener failed")
        elif action == "lose":
            self.lost = True


class _Link:
    def __init__(self, run: Run) -> None:
        self.transport = object()
        self.run = run

    @property
    def lost(self) -> bool:
        return self.run.lost


class LogCapture:
    """The dispatcher's log events (format, level and their plain fields)."""

    def __init__(self) -> None:
        self.events: list[Any] = []

    def __call__(self, event: dict[str, Any]) -> None:
        if event.get("log_namespace", "").startswith("ctrader_twisted.dispatch"):
            fields = tuple((k, event[k]) for k in ("length", "error", "name", "clientMsgId") if k in event)
            self.events.append((event["log_level"].name, event["log_format"], fields))

    def __enter__(self) -> LogCapture:
        globalLogPublisher.addObserver(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        globalLogPublisher.removeObserver(self)


def _cut(stream: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    return [stream[a:b] for a, b in zip(points, points[1:])]


class FastPathTestCase(SynchronousTestCase):
    def outcome(self, run: Run, logs: LogCapture, extra: Any = None) -> Any:
        """What a run delivered and logged (the listeners' errors flushed)."""
        self.flushLoggedErrors(ValueError)
        return run.record, logs.events, extra


class DispatcherFastPathTests(FastPathTestCase):
    def dispatchAll(self, reference: bool, batches: list[list[bytes]], listened: list[int],
                    actions: dict[int, str]) -> Any:
        run = Run(reference, listened, actions)
        correlator = Correlator(Clock())
        dispatcher = Dispatcher(correlator)
        run.install(dispatcher.addListener, dispatcher.addMessageCallback, dispatcher.removeListener,
                    dispatcher.removeMessageCallback)
        link = _Link(run)
        answers: list[Any] = []
        for msgId, raw in (("r1", False), ("r2", True), ("r3", False), ("w", False)):
            request = correlator.create(VERSION_RES - 1, b"", msgId, raw=raw, timeout=None)
            correlator.written(request, link.transport if msgId != "w" else object())
            request.deferred.addBoth(lambda result, i=msgId: answers.append((i, describe(result))))
        with LogCapture() as logs:
            for batch in batches:
                dispatcher.dispatch(link, batch)
        for request in list(correlator.pending.values()):
            request.deferred.cancel()
        return self.outcome(run, logs, answers)

    @settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    # A listener added in the middle of a read, for a type already seen in it.
    @example([PLAIN_DEPTH, PLAIN_SPOT, PLAIN_DEPTH], [], [SPOT], {0: "addListener"})
    # Payloads of 64 KiB and more are decoded from a view of the frame, on both paths.
    @example([BIG_DEPTH, PLAIN_SPOT, BIG_DEPTH[:-1], BIG_DEPTH], [2], [DEPTH, SPOT], {1: "addCallback"})
    # A 133-byte frame whose length varint starts with 0x80 (and is one byte short).
    @example([b"\x08\xd3\x10\x12\x80\x01" + bytes(127)], [], [SPOT], {})
    @given(
        st.lists(frames(), max_size=30),
        st.lists(st.integers(0, 30), max_size=5),
        st.lists(st.sampled_from(TYPES), max_size=4, unique=True),
        actions,
    )
    def test_sameAsGeneralPath(self, data: list[bytes], cuts: list[int], listened: list[int],
                               acts: dict[int, str]) -> None:
        """Any frames, read by read: the fast path delivers, answers and logs
        exactly what the general path does."""
        points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
        batches = [data[a:b] for a, b in zip(points, points[1:])]
        self.assertEqual(
            self.dispatchAll(False, batches, listened, acts),
            self.dispatchAll(True, batches, listened, acts),
        )

    def test_plainEventsTakeTheFastPath(self) -> None:
        """Without a message callback a plain event is decoded from the frame
        (the envelope is never decoded); a clientMsgId or a callback makes the
        envelope necessary."""
        decoded: list[bytes] = []
        dispatcher = Dispatcher(Correlator(Clock()))
        dispatcher.addListener(SPOT, lambda event: None)
        link = _Link(Run(False, [], {}))
        import ctrader_twisted.dispatch as dispatch

        original = dispatch._decodeEnvelope

        def counting(data: bytes) -> Any:
            decoded.append(data)
            return original(data)

        self.patch(dispatch, "_decodeEnvelope", counting)
        plain = PLAIN_SPOT
        long = ProtoMessage(payloadType=DEPTH, payload=_depth(1500)).SerializeToString()
        withId = ProtoMessage(payloadType=SPOT, payload=PAYLOADS[SPOT][0], clientMsgId="x").SerializeToString()
        dispatcher.addListener(DEPTH, lambda event: None)
        dispatcher.dispatch(link, [plain, long, withId])
        self.assertEqual(decoded, [withId])
        dispatcher.addMessageCallback(lambda message: None)
        dispatcher.dispatch(link, [plain])
        self.assertEqual(decoded, [withId, plain])


def _webSocketFrames(data: bytes, pieces: int) -> bytes:
    """*data* as one binary WebSocket message from a server, in *pieces* frames."""
    size = len(data)
    cuts = [size * i // pieces for i in range(pieces + 1)]
    out = []
    for i in range(pieces):
        part = data[cuts[i] : cuts[i + 1]]
        first = (0x80 if i == pieces - 1 else 0) | (0x2 if i == 0 else 0x0)
        n = len(part)
        if n < 126:
            head = bytes((first, n))
        elif n < 65536:
            head = bytes((first, 126)) + n.to_bytes(2, "big")
        else:
            head = bytes((first, 127)) + n.to_bytes(8, "big")
        out.append(head + part)
        if i == 0 and pieces > 1:
            out.append(b"\x89\x02hi")  # a ping between fragments, as RFC 6455 allows
    return b"".join(out)


class TransportFastPathTests(FastPathTestCase):
    """Through each transport, with random reads: the same as the general path."""

    def receive(self, transport: str, reference: bool, data: list[bytes], cuts: list[int], pieces: list[int],
                listened: list[int], acts: dict[int, str]) -> Any:
        run = Run(reference, listened, acts)
        clock = Clock()
        options: dict[str, Any] = {"heartbeatInterval": None, "silenceTimeout": None, "useTLS": False}
        if transport == "tcp":
            factory = Factory(TcpProtocol, clock, **options)
            proto = factory.buildProtocol(None)
            factory.connectionReady(proto)
            stream = b"".join(frame(one) for one in data)
        else:
            factory = Factory(WebSocketProtocol, clock, **options)
            proto, _, _ = connectInMemory(factory, clock, ScriptedWebSocketServer())
            self.assertIs(factory.connection, proto)
            stream = b"".join(
                _webSocketFrames(one, pieces[i % len(pieces)] if pieces else 1) for i, one in enumerate(data)
            )
        run.install(factory.addListener, factory.addMessageCallback, factory.removeListener,
                    factory.removeMessageCallback)
        with LogCapture() as logs:
            for read in _cut(stream, cuts):
                if run.lost:
                    break
                proto.dataReceived(read)
        return self.outcome(run, logs)

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        st.lists(frames(), max_size=20),
        st.lists(st.integers(0, 10**6), max_size=8),
        st.lists(st.integers(1, 3), max_size=5),
        st.lists(st.sampled_from(TYPES), max_size=4, unique=True),
        actions,
    )
    def test_sameAsGeneralPathOnBothTransports(self, data: list[bytes], cuts: list[int], pieces: list[int],
                                               listened: list[int], acts: dict[int, str]) -> None:
        """TCP frames and WebSocket messages (fragmented or not, a ping among
        the fragments), cut into random reads: the fast path delivers and logs
        what the general path does, the same on both transports."""
        tcp = self.receive("tcp", False, data, cuts, pieces, listened, acts)
        self.assertEqual(tcp, self.receive("tcp", True, data, cuts, pieces, listened, acts))
        ws = self.receive("ws", False, data, cuts, pieces, listened, acts)
        self.assertEqual(ws, self.receive("ws", True, data, cuts, pieces, listened, acts))
        if "lose" not in acts.values():  # losing stops each transport at its own read boundary
            self.assertEqual(tcp, ws)


class RouteTableTests(SynchronousTestCase):
    def test_onlyPlainEventHeadersAreKept(self) -> None:
        """The routes remembered are those of plain events' headers (at most
        94 types x 256), whatever else arrives: garbage adds none."""
        dispatcher = Dispatcher(Correlator(Clock()))
        dispatcher.addListener(SPOT, lambda event: None)
        link = _Link(Run(False, [], {}))
        garbage = [bytes((i, j, 0x10, 0x12, 3)) + b"abc" for i in range(256) for j in range(256) if i != 0x08]
        dispatcher.dispatch(link, garbage + [PLAIN_SPOT])
        self.assertEqual(list(dispatcher._routes), [PLAIN_SPOT[:5]])
