# -*- test-case-name: tests.test_simulator_bench -*-
"""Bulk output for benchmarks: spot bursts and pre-serialized messages.

:func:`burst` streams spot events as fast as each transport takes them, from
a small pool of events serialized once, through a pull producer, so memory
stays bounded however many are asked for. While it runs, the burst is its
transport's producer in place of the session (which is its producer again
afterwards). :func:`writeToAll` writes one
already-serialized message to every connection, in chunks of a chosen size.
Both back the :class:`~ctrader_twisted.simulator.Simulator` methods of the
same names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.interfaces import IPullProducer
from zope.interface import implementer  # type: ignore[import-untyped]

from ..framing import frame
from ..messages.OpenApiCommonMessages_pb2 import ProtoMessage
from ..messages.OpenApiMessages_pb2 import ProtoOASpotEvent
from ..messages.OpenApiModelMessages_pb2 import ProtoOAPayloadType
from .market import SymbolState
from .protocol import SimulatorTcpProtocol

if TYPE_CHECKING:
    from .server import Simulator
    from .session import Session

__all__ = ["burst", "writeToAll"]


def burst(simulator: Simulator, count: int, symbolId: int) -> Deferred[int]:
    """Stream *count* spot events of *symbolId* to every connection of
    *simulator* subscribed to its spots (see :meth:`Simulator.burst
    <ctrader_twisted.simulator.Simulator.burst>`).

    :returns: a Deferred firing with the number of events written in all.
    """
    if count < 0:
        raise ValueError(f"count must not be negative, got {count}")
    state = simulator.market.symbols.get(symbolId)
    if state is None:
        raise ValueError(f"unknown symbol {symbolId}")
    waits = []
    for session in list(simulator.sessions):
        for accountId, symbolIds in session.spots.items():
            if symbolId in symbolIds:
                pool = _spotPool(accountId, state, simulator.nowMs())
                waits.append(_BurstProducer(session, pool, count).start())
                break
    if not waits:
        return succeed(0)
    return DeferredList(waits, consumeErrors=True).addCallback(
        lambda results: sum(r for ok, r in results if ok)
    )


def writeToAll(simulator: Simulator, frameBytes: bytes, chunkSize: int | None = None) -> int:
    """Write one serialized ``ProtoMessage`` to every live connection of
    *simulator* (see :meth:`Simulator.writeToAll
    <ctrader_twisted.simulator.Simulator.writeToAll>`).

    :returns: the bytes handed to the transports in all.
    """
    if chunkSize is not None and chunkSize < 1:
        raise ValueError(f"chunkSize must be positive, got {chunkSize}")
    total = 0
    framed: bytes | None = None
    for session in list(simulator.sessions):
        connection: Any = session.connection
        if session.closed or connection.transport is None:
            continue
        if isinstance(connection, SimulatorTcpProtocol):
            if framed is None:
                framed = frame(frameBytes)
            if chunkSize is None or chunkSize >= len(framed):
                connection.transport.write(framed)
            else:
                view = memoryview(framed)
                for start in range(0, len(framed), chunkSize):
                    connection.transport.write(bytes(view[start : start + chunkSize]))
            total += len(framed)
        else:
            connection.writeFrame(frameBytes)
            total += len(frameBytes)
        session.written += 1
    return total


def _spotPool(accountId: int, state: SymbolState, timestamp: int, size: int = 16) -> list[bytes]:
    """*size* serialized spot-event envelopes around *state*'s current price."""
    pool = []
    for i in range(size):
        bid = state.round(state.bid + (i % 8 - 4) * state.tick)
        event = ProtoOASpotEvent(
            ctidTraderAccountId=accountId, symbolId=state.symbolId, bid=bid, ask=bid + state.spread,
            timestamp=timestamp + i,
        )
        envelope = ProtoMessage(payloadType=ProtoOAPayloadType.PROTO_OA_SPOT_EVENT, payload=event.SerializeToString())
        pool.append(envelope.SerializeToString())
    return pool


@implementer(IPullProducer)
class _BurstProducer:
    """Writes a pool of pre-serialized frames, a chunk per ``resumeProducing``."""

    #: Frames per write: 2048 spot frames of about 30 bytes are about 64 KiB.
    CHUNK = 2048

    def __init__(self, session: Session, pool: list[bytes], count: int) -> None:
        self.session = session
        # A SimulatorTcpProtocol or a SimulatorWebSocketProtocol.
        connection: Any = session.connection
        self.connection = connection
        self.remaining = count
        self.written = 0
        self.done: Deferred[int] = Deferred()
        self._finished = False
        if isinstance(connection, SimulatorTcpProtocol):
            framed = [frame(p) for p in pool]
            self._chunk = b"".join(framed[i % len(framed)] for i in range(self.CHUNK))
            self._framed = framed
            self._prepared = None
        else:
            factory = connection.factory
            self._prepared = [factory.prepareMessage(p, isBinary=True) for p in pool]

    def start(self) -> Deferred[int]:
        """Register with the connection's transport; the Deferred fires with
        the number of events written once all are, or the connection is gone."""
        if self.session.burst is not None:
            raise RuntimeError("a burst is already running on this connection")
        if self.remaining == 0:
            self._finish()
            return self.done
        self.session.burst = self
        transport = self.connection.transport
        # A transport has one producer: the session's flow control steps
        # aside while the burst runs.
        transport.unregisterProducer()
        transport.registerProducer(self, False)
        return self.done

    def resumeProducing(self) -> None:
        """Write the next chunk of events."""
        if self._finished:
            return
        n = min(self.CHUNK, self.remaining)
        if self._prepared is None:
            transport = self.connection.transport
            if n == self.CHUNK:
                transport.write(self._chunk)
            else:
                framed = self._framed
                transport.write(b"".join(framed[i % len(framed)] for i in range(n)))
        else:
            send = self.connection.sendPreparedMessage
            prepared = self._prepared
            for i in range(n):
                send(prepared[i % len(prepared)])
        self.remaining -= n
        self.written += n
        self.session.written += n
        if self.remaining == 0:
            transport = self.connection.transport
            if transport is not None:
                transport.unregisterProducer()
                if not self.session.closed:
                    transport.registerProducer(self.session, True)
                    # The transport pauses it again at its next write if
                    # its buffer is still over the mark.
                    self.session.resumeProducing()
            self._finish()

    def stopProducing(self) -> None:
        """The connection is gone: fire :attr:`done` with what was written."""
        self._finish()

    def _finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        if self.session.burst is self:
            self.session.burst = None
        self.done.callback(self.written)
