"""In-process figures: no reactor, no network, no TLS.

* :func:`parsingCeiling`: the spot stream's bytes (frames like those the
  simulator writes in burst mode) fed in 16 KiB reads (the size of a full TLS record) to our
  :class:`~ctrader_twisted.tcp.TcpProtocol`, whose ``stringReceived`` decodes
  the ``ProtoMessage`` and the ``ProtoOASpotEvent`` and calls a callback that
  reads bid and ask. This is the ceiling the whole stack is compared with.
* :func:`coreInProcess`: the same bytes through ``TcpProtocol`` *and* the real
  request core (:class:`~ctrader_twisted.factory.Factory`: correlation check,
  message callbacks, listener dispatch), still without a reactor or TLS.
* :func:`webSocketCoreInProcess`: the same messages as binary WebSocket
  frames, through our ``WebSocketProtocol`` (Autobahn parses the frames) and
  the request core, in process.
* :func:`requestsInProcess`: requests through the real request core with
  100 in flight, answered from memory (the requests path without TLS, reactor
  or server).
* :func:`rawProtobuf`: frames already split; only the two ``FromString``
  calls and the callback (the protobuf backend's own ceiling, for context).
* :func:`reassembly`: one large frame fed in small reads to our
  ``TcpProtocol`` and to Twisted's stock ``Int32StringReceiver``
  (Twisted #6358: quadratic), framing only.

:mod:`bench.run` runs each in a fresh process, alternated with the client
runs: ``python -m bench.ceiling parse|core|wscore|requests|raw COUNT`` or
``python -m bench.ceiling reassembly SIZE CHUNK`` prints ``RESULT {json}``.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench.server import spotMessages  # noqa: E402
from ctrader_twisted.framing import frame  # noqa: E402

READ = 16 * 1024


def spotStream(count: int) -> tuple[bytes, list[bytes]]:
    """``count`` framed spot messages as one byte string, and the unframed messages."""
    spots = spotMessages()
    messages = [spots[i % len(spots)] for i in range(count)]
    return b"".join(len(m).to_bytes(4, "big") + m for m in messages), messages


def _reads(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def _feed(proto: Any, reads: list[bytes], seen: list[int], count: int) -> dict[str, float]:
    """Time feeding *reads* to *proto*; *seen[0]* must reach *count*."""
    start, cpu = time.perf_counter(), time.process_time()
    for chunk in reads:
        proto.dataReceived(chunk)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert seen[0] == count, seen
    return {"events_per_s": count / wall, "cpu_s_per_million": cpu / count * 1e6}


def parsingCeiling(count: int) -> dict[str, float]:
    """Events/s of framing + decoding + callback in a tight loop (see module docstring)."""
    from ctrader_twisted.messages.OpenApiCommonMessages_pb2 import ProtoMessage
    from ctrader_twisted.messages.OpenApiMessages_pb2 import ProtoOASpotEvent
    from ctrader_twisted.tcp import TcpProtocol

    data, _ = spotStream(count)
    reads = _reads(data, READ)
    seen = [0, 0]
    envelope, spot = ProtoMessage.FromString, ProtoOASpotEvent.FromString

    def callback(event: Any) -> None:
        seen[1] += event.ask - event.bid
        seen[0] += 1

    class Decoding(TcpProtocol):
        def stringReceived(self, frame: bytes) -> None:
            callback(spot(envelope(frame).payload))

    proto = Decoding()
    return _feed(proto, reads, seen, count)


def coreInProcess(count: int) -> dict[str, float]:
    """Events/s through ``TcpProtocol`` and the real ``Factory`` dispatch, no reactor."""
    from twisted.internet.task import Clock

    from ctrader_twisted.factory import Factory

    data, _ = spotStream(count)
    reads = _reads(data, READ)
    seen = [0, 0]

    def listener(event: Any) -> None:
        seen[1] += event.ask - event.bid
        seen[0] += 1

    factory = Factory(clock=Clock(), heartbeatInterval=None, silenceTimeout=None)
    factory.addListener("ProtoOASpotEvent", listener)
    proto = factory.buildProtocol(None)
    factory.connectionReady(proto)
    return _feed(proto, reads, seen, count)


def webSocketStream(count: int) -> bytes:
    """``count`` spot messages as the binary WebSocket frames a server sends
    (unmasked, one frame per message), as one byte string."""
    spots = spotMessages()
    out = []
    for i in range(count):
        m = spots[i % len(spots)]
        size = len(m)
        if size < 126:
            head = bytes((0x82, size))
        elif size < 65536:
            head = bytes((0x82, 126)) + size.to_bytes(2, "big")
        else:
            head = bytes((0x82, 127)) + size.to_bytes(8, "big")
        out.append(head + m)
    return b"".join(out)


def webSocketCoreInProcess(count: int) -> dict[str, float]:
    """Events/s through our ``WebSocketProtocol`` (Autobahn's frame parser)
    and the real ``Factory`` dispatch, no reactor, no TLS."""
    import txaio

    txaio.use_twisted()
    from twisted.internet.task import Clock

    from ctrader_twisted.factory import Factory
    from ctrader_twisted.testing import ScriptedWebSocketServer, connectInMemory
    from ctrader_twisted.websocket import WebSocketProtocol

    reads = _reads(webSocketStream(count), READ)
    seen = [0, 0]

    def listener(event: Any) -> None:
        seen[1] += event.ask - event.bid
        seen[0] += 1

    clock = Clock()
    factory = Factory(WebSocketProtocol, clock, heartbeatInterval=None, silenceTimeout=None, useTLS=False)
    factory.addListener("ProtoOASpotEvent", listener)
    proto, _, _ = connectInMemory(factory, clock, ScriptedWebSocketServer())
    assert factory.connection is proto, "the WebSocket did not open"
    return _feed(proto, reads, seen, count)


def requestsInProcess(count: int, window: int = 100, batch: int = 10) -> dict[str, float]:
    """Requests/s of the request core in process: ``Factory.request`` of a
    ``ProtoOAVersionReq`` written to a memory transport, with *window* in
    flight; the answers (serialized beforehand, so that no server work is
    timed) arrive *batch* to a read. No reactor, no TLS."""
    from twisted.internet.task import Clock
    from twisted.internet.testing import StringTransport

    from ctrader_twisted.factory import Factory
    from ctrader_twisted.messages.OpenApiCommonMessages_pb2 import ProtoMessage
    from ctrader_twisted.messages.OpenApiMessages_pb2 import ProtoOAVersionRes

    answer = ProtoOAVersionRes(version="91").SerializeToString()
    reads = []
    for first in range(1, count + 1, batch):
        reads.append(b"".join(
            frame(ProtoMessage(payloadType=2105, payload=answer, clientMsgId=f"ct{i}").SerializeToString())
            for i in range(first, min(first + batch, count + 1))
        ))
    factory = Factory(clock=Clock(), heartbeatInterval=None, silenceTimeout=None, requestsPerSecond=None,
                      historicalRequestsPerSecond=None, responseTimeout=60, maxQueuedRequests=10**6)
    proto = factory.buildProtocol(None)
    proto.transport = StringTransport()
    factory.connectionReady(proto)
    state = [0, 0]  # sent, answered

    def send() -> None:
        state[0] += 1
        factory.request("ProtoOAVersionReq").addCallback(answered)

    def answered(_: Any) -> None:
        state[1] += 1
        if state[0] < count:
            send()

    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(min(window, count)):
        send()
    for data in reads:
        proto.dataReceived(data)
        proto.transport.clear()
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert state == [count, count], state
    return {"requests_per_s": count / wall, "cpu_us_per_request": cpu / count * 1e6}


def rawProtobuf(count: int) -> dict[str, float]:
    """Events/s of the two protobuf decodes and the callback only."""
    from ctrader_twisted.messages.OpenApiCommonMessages_pb2 import ProtoMessage
    from ctrader_twisted.messages.OpenApiMessages_pb2 import ProtoOASpotEvent

    _, messages = spotStream(count)
    envelope, spot = ProtoMessage.FromString, ProtoOASpotEvent.FromString
    total = 0
    start, cpu = time.perf_counter(), time.process_time()
    for m in messages:
        event = spot(envelope(m).payload)
        total += event.ask - event.bid
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {"events_per_s": count / wall, "cpu_s_per_million": cpu / count * 1e6}


def reassembly(size: int, chunk: int) -> dict[str, float]:
    """Milliseconds to reassemble one *size*-byte frame from *chunk*-byte reads."""
    from twisted.protocols.basic import Int32StringReceiver

    from ctrader_twisted.tcp import TcpProtocol

    body = b"\x00" * size
    reads = _reads(len(body).to_bytes(4, "big") + body, chunk)
    out: dict[str, float] = {}
    got: list[int] = []

    class Ours(TcpProtocol):
        MAX_LENGTH = 16 * 2**20

        def stringReceived(self, frame: bytes) -> None:
            got.append(len(frame))

    class Stock(Int32StringReceiver):
        MAX_LENGTH = 16 * 2**20

        def stringReceived(self, frame: bytes) -> None:
            got.append(len(frame))

    for name, cls in (("ours_ms", Ours), ("stock_ms", Stock)):
        proto = cls()
        start = time.perf_counter()
        for r in reads:
            proto.dataReceived(r)
        out[name] = (time.perf_counter() - start) * 1e3
        assert got.pop() == size
    return out


def main(argv: list[str]) -> None:
    from bench.common import emit

    name, args = argv[0], [int(a) for a in argv[1:]]
    functions = {
        "parse": parsingCeiling,
        "core": coreInProcess,
        "wscore": webSocketCoreInProcess,
        "requests": requestsInProcess,
        "raw": rawProtobuf,
        "reassembly": reassembly,
    }
    emit(functions[name](*args))  # type: ignore[operator]


if __name__ == "__main__":
    main(sys.argv[1:])
