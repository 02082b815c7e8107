# -*- test-case-name: tests.test_simulator -*-
"""The simulator's transport protocols: TCP framing and WebSocket messages.

Both only move frames; everything above framing is the shared
:class:`.session.Session`. The TCP protocol reuses the client library's
:class:`~ctrader_twisted.tcp.TcpProtocol` (its linear-time frame splitter and
frame writer); the WebSocket protocol is an Autobahn
``WebSocketServerProtocol`` carrying one serialized ``ProtoMessage`` per
binary message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import txaio

txaio.use_twisted()

from autobahn.twisted.websocket import (  # noqa: E402  (txaio must choose Twisted first)
    WebSocketServerFactory,
    WebSocketServerProtocol,
)
from twisted.internet.interfaces import IAddress  # noqa: E402
from twisted.internet.protocol import Factory as ProtocolFactory  # noqa: E402
from twisted.logger import Logger  # noqa: E402
from twisted.python.failure import Failure  # noqa: E402

from ..framing import FrameSplitter  # noqa: E402
from ..tcp import TcpProtocol  # noqa: E402
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


class SimulatorTcpProtocol(TcpProtocol):
    """Server side of the TCP transport (4-byte length, then a ``ProtoMessage``)."""

    _log = Logger()

    def __init__(self, simulator: Simulator) -> None:
        super().__init__()
        self.simulator = simulator
        self.session: Session | None = None
        self.MAX_LENGTH = simulator.maxMessageSize
        self._splitter = FrameSplitter(simulator.maxMessageSize)

    def __repr__(self) -> str:
        return f"<SimulatorTcpProtocol {self.session!r}>"

    def connectionMade(self) -> None:
        if self.simulator.faults.refusing():
            self._log.info("Fault injection: refusing a connection")
            self.abort()
            return
        self.session = self.simulator._sessionOpened(self, "tcp")

    def handshakeCompleted(self) -> None:
        """Nothing to do: the session started with the connection."""

    def stringReceived(self, data: bytes) -> None:
        if self.session is not None:
            self.session.frameReceived(data)

    def lengthLimitExceeded(self, length: int) -> None:
        if self._failed:
            return
        self._log.warn(
            "Closing a connection: frame of {length} bytes over the limit of {limit}",
            length=length,
            limit=self.MAX_LENGTH,
        )
        self.abort()

    def connectionLost(self, reason: Failure = Failure(ConnectionError())) -> None:
        self._lost = True
        self._buffer = bytearray()
        if self.session is not None:
            self.session.stop()

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
        proto.factory = self  # type: ignore[assignment]
        return proto


class SimulatorWebSocketProtocol(WebSocketServerProtocol):
    """Server side of the WebSocket transport: one binary message, one ``ProtoMessage``."""

    _log = Logger()
    session: Session | None = None
    _gone = False

    def __repr__(self) -> str:
        return f"<SimulatorWebSocketProtocol {self.session!r}>"

    @property
    def simulator(self) -> Simulator:
        """The simulator this connection belongs to."""
        return self.factory.simulator  # type: ignore[no-any-return]

    def connectionMade(self) -> None:
        if self.simulator.faults.refusing():
            self._log.info("Fault injection: refusing a connection")
            self._gone = True
            self.transport.abortConnection()  # type: ignore[union-attr]
            return
        super().connectionMade()

    def onOpen(self) -> None:
        self.session = self.simulator._sessionOpened(self, "ws")

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
        super().connectionLost(reason)
        if self.session is not None:
            self.session.stop()

    # --- ServerConnection ---------------------------------------------------------------

    def writeFrame(self, data: bytes) -> None:
        """Send one serialized ``ProtoMessage`` as a binary message."""
        if not self._gone:
            self.sendMessage(data, isBinary=True)

    def abort(self) -> None:
        """Drop the connection at once."""
        if not self._gone and self.transport is not None:
            self._gone = True
            self.transport.abortConnection()  # type: ignore[attr-defined]

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
    refused (Autobahn drops the connection).
    """

    protocol = SimulatorWebSocketProtocol

    def __init__(self, simulator: Simulator, url: str | None = None) -> None:
        super().__init__(url=url, server="ctrader-twisted simulator")
        self.simulator = simulator
        self.setProtocolOptions(
            maxMessagePayloadSize=simulator.maxMessageSize,
            maxFramePayloadSize=simulator.maxMessageSize,
            autoPingInterval=0,
        )
