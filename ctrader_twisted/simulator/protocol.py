# -*- test-case-name: tests.test_simulator_memory -*-
"""The simulator's transport protocols: TCP framing and WebSocket messages.

Both only move frames; everything above framing is the connection's
:class:`~ctrader_twisted.simulator.session.Session`, opened by the simulator when the connection is
made. The TCP protocol splits the stream with
:class:`ctrader_twisted.framing.FrameSplitter` (4-byte big-endian length,
then a serialized ``ProtoMessage``); the WebSocket protocol is an Autobahn
``WebSocketServerProtocol`` carrying one serialized ``ProtoMessage`` per
binary message. Both provide what a session needs of its connection
(:class:`.session.ServerConnection`), and both register the session as
their transport's streaming producer, so that a client that does not read
pauses it (see :mod:`~ctrader_twisted.simulator.session`).

Every timer of the WebSocket protocol runs on the simulator's clock, so that
the simulator works in memory on a ``task.Clock``
(:class:`ctrader_twisted.testing.SimulatedServer`): Autobahn's own timers
(which run on ``txaio``'s global loop) are all turned off, and the protocol
keeps its opening-handshake deadline and its closing deadline itself,
through Autobahn's public hooks only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import txaio

txaio.use_twisted()

from autobahn.twisted.websocket import (  # noqa: E402  (txaio must choose Twisted first)
    WebSocketServerFactory,
    WebSocketServerProtocol,
)
from twisted.internet.interfaces import IAddress, IConsumer, IDelayedCall, ITCPTransport  # noqa: E402
from twisted.internet.protocol import Factory as ProtocolFactory, Protocol  # noqa: E402
from twisted.logger import Logger  # noqa: E402
from twisted.python.failure import Failure  # noqa: E402

from ..framing import FrameSplitter, frame  # noqa: E402
from ..keepalive import HandshakeDeadline  # noqa: E402
from .faults import oversizedTcpHeader, oversizedWebSocketHeader  # noqa: E402

if TYPE_CHECKING:
    from .server import Simulator
    from .session import Session

__all__ = [
    "SimulatorTcpProtocol",
    "SimulatorTcpFactory",
    "SimulatorWebSocketProtocol",
    "SimulatorWebSocketFactory",
]


class SimulatorTcpProtocol(Protocol):
    """Server side of the TCP transport (4-byte length, then a ``ProtoMessage``).

    A frame over the simulator's ``maxMessageSize`` aborts the connection;
    the frames before it in the same read are still handled.
    """

    _log = Logger()

    def __init__(self, simulator: Simulator) -> None:
        self.simulator = simulator
        self.session: Session | None = None
        self._splitter = FrameSplitter(simulator.maxMessageSize)
        # Aborted by this side: nothing more is read.
        self._failed = False
        self._lost = False

    def __repr__(self) -> str:
        return f"<SimulatorTcpProtocol {self.session!r}>"

    def connectionMade(self) -> None:
        if self.simulator.faults.refusing():
            self._log.info("Fault injection: refusing a connection")
            self.abort()
            return
        self.session = self.simulator.openSession(self, "tcp")
        if self.transport is not None:
            cast(IConsumer, self.transport).registerProducer(self.session, True)

    def dataReceived(self, data: bytes) -> None:
        if self._failed or self._lost:
            return
        for received in self._splitter.feed(data):
            if self.session is not None:
                self.session.frameReceived(received)
            if self._failed or self._lost:
                return
        if self._splitter.tooLarge is not None:
            self._log.warn(
                "Closing a connection: frame of {length} bytes over the limit of {limit}",
                length=self._splitter.tooLarge,
                limit=self._splitter.maxLength,
            )
            self.abort()

    def connectionLost(self, reason: Failure = Failure(ConnectionError())) -> None:
        self._lost = True
        self._splitter.clear()
        if self.session is not None:
            self.session.stop()

    # --- ServerConnection ---------------------------------------------------------------

    def writeFrame(self, data: bytes) -> None:
        """Write one serialized ``ProtoMessage`` with its length prefix."""
        if self.transport is not None:
            self.transport.write(frame(data))

    def abort(self) -> None:
        """Drop the connection at once; nothing more is read."""
        self._failed = True
        if not self._lost and self.transport is not None:
            cast(ITCPTransport, self.transport).abortConnection()

    def close(self) -> None:
        """Close the connection cleanly after pending writes."""
        if not self._lost and self.transport is not None:
            self.transport.loseConnection()

    def writeOversizedHeader(self) -> None:
        """Write a length prefix larger than any client accepts (fault injection)."""
        if not self._lost and self.transport is not None:
            self.transport.write(oversizedTcpHeader())


class SimulatorTcpFactory(ProtocolFactory):
    """Builds :class:`SimulatorTcpProtocol` instances for one simulator."""

    def __init__(self, simulator: Simulator) -> None:
        self.simulator = simulator

    def buildProtocol(self, addr: IAddress | None) -> SimulatorTcpProtocol:  # type: ignore[override]
        proto = SimulatorTcpProtocol(self.simulator)
        proto.factory = self
        return proto


class SimulatorWebSocketProtocol(WebSocketServerProtocol):
    """Server side of the WebSocket transport: one binary message, one ``ProtoMessage``.

    Its deadlines run on the simulator's clock (see the module docstring).
    """

    _log = Logger()
    session: Session | None = None
    _gone = False
    _deadline: HandshakeDeadline | None = None
    _closing: IDelayedCall | None = None

    #: Seconds from the TCP connection to the WebSocket being open (the TLS
    #: and WebSocket opening handshakes); then the connection is dropped.
    openHandshakeTimeoutSeconds: float = 10.0
    #: Seconds the client has to answer the server's close (and go); then
    #: the connection is dropped.
    closeHandshakeTimeoutSeconds: float = 1.0

    def __repr__(self) -> str:
        return f"<SimulatorWebSocketProtocol {self.session!r}>"

    @property
    def simulator(self) -> Simulator:
        """The simulator this connection belongs to."""
        return cast(SimulatorWebSocketFactory, self.factory).simulator

    def connectionMade(self) -> None:
        if self.simulator.faults.refusing():
            self._log.info("Fault injection: refusing a connection")
            self._gone = True
            cast(ITCPTransport, self.transport).abortConnection()
            return
        self._deadline = HandshakeDeadline(
            self.simulator.clock, self.openHandshakeTimeoutSeconds, self._handshakeTimedOut
        )
        super().connectionMade()

    def _handshakeTimedOut(self, seconds: float) -> None:
        self._log.info("Dropping a WebSocket connection: not open within {seconds} s", seconds=seconds)
        self.abort()

    def onOpen(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self.session = self.simulator.openSession(self, "ws")
        if self.transport is not None:
            cast(IConsumer, self.transport).registerProducer(self.session, True)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        if self.session is None:
            return
        if not isBinary:
            self._log.warn("Closing a WebSocket connection: a text message arrived")
            self.sendClose(4000, "binary messages only")
            return
        self.session.frameReceived(payload)

    def onClose(self, wasClean: bool, code: Any, reason: Any) -> None:
        self._gone = True
        if self.session is not None:
            self.session.stop()

    def connectionLost(self, reason: Failure = Failure(ConnectionError())) -> None:
        self._gone = True
        if self._deadline is not None:
            self._deadline.cancel()
        if self._closing is not None and self._closing.active():
            self._closing.cancel()
        self._closing = None
        super().connectionLost(reason)
        if self.session is not None:
            self.session.stop()

    def sendClose(self, code: int | None = None, reason: str | None = None) -> None:
        """Autobahn's ``sendClose``, with a deadline on the simulator's clock:
        a client that does not answer within :attr:`closeHandshakeTimeoutSeconds`
        is dropped."""
        super().sendClose(code, reason)
        if self._closing is None and not self._gone:
            self._closing = self.simulator.clock.callLater(self.closeHandshakeTimeoutSeconds, self._closeTimedOut)

    def _closeTimedOut(self) -> None:
        self._closing = None
        self._log.info(
            "Dropping a WebSocket connection: no close answer within {seconds} s",
            seconds=self.closeHandshakeTimeoutSeconds,
        )
        self.abort()

    # --- ServerConnection ---------------------------------------------------------------

    def writeFrame(self, data: bytes) -> None:
        """Send one serialized ``ProtoMessage`` as a binary message."""
        if not self._gone:
            self.sendMessage(data, isBinary=True)

    def abort(self) -> None:
        """Drop the connection at once."""
        if not self._gone and self.transport is not None:
            self._gone = True
            cast(ITCPTransport, self.transport).abortConnection()

    def close(self) -> None:
        """Close with the WebSocket closing handshake."""
        if not self._gone:
            self.sendClose(1000)

    def writeOversizedHeader(self) -> None:
        """Write a binary frame header announcing 2**40 bytes (fault injection)."""
        if not self._gone and self.transport is not None:
            self.transport.write(oversizedWebSocketHeader())


class SimulatorWebSocketFactory(WebSocketServerFactory):
    """Builds :class:`SimulatorWebSocketProtocol` instances for one simulator.

    Messages and frames larger than the simulator's ``maxMessageSize`` are
    refused (Autobahn drops the connection). Autobahn's timers are off: the
    protocol keeps its deadlines on the simulator's clock.
    """

    protocol = SimulatorWebSocketProtocol

    def __init__(self, simulator: Simulator) -> None:
        # Autobahn uses its reactor only in listenWS, which is never called.
        super().__init__(server="ctrader-twisted simulator", reactor=simulator.clock)
        self.simulator = simulator
        self.setProtocolOptions(
            maxMessagePayloadSize=simulator.maxMessageSize,
            maxFramePayloadSize=simulator.maxMessageSize,
            autoPingInterval=0,
            autoPingTimeout=0,
            openHandshakeTimeout=0,
            closeHandshakeTimeout=0,
        )
