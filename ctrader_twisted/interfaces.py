"""The two contracts between a transport protocol and the request core.

A transport (TLS TCP framing in :mod:`ctrader_twisted.tcp`, WebSocket in
:mod:`ctrader_twisted.websocket`) knows bytes and frames; the core
(:class:`ctrader_twisted.factory.Factory`) knows messages, requests and
time. They meet here, as in Twisted's AMP, where ``BinaryBoxProtocol`` and
``BoxDispatcher`` meet through ``IBoxSender`` and ``IBoxReceiver``:

* :class:`IFrameTransport` is what a connected transport protocol offers the
  core: write one frame, drop the connection, close it;
* :class:`IFrameReceiver` is what the core offers a transport protocol: the
  connection is ready, frames arrived, the peer broke the framing rules, the
  connection is gone;
* :class:`ITransportFactory` is provided by a transport protocol *class*: it
  builds one protocol instance for one connection attempt, bound to a
  receiver, from :class:`TransportSettings`.

A new transport implements the first and third and calls the second; nothing
else in the core changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure
from zope.interface import Interface

__all__ = ["IFrameTransport", "IFrameReceiver", "ITransportFactory", "TransportSettings"]


class IFrameTransport(Interface):
    """A connected transport protocol, as the core sees it."""

    def writeFrame(data: bytes) -> None:
        """Write one serialized ``ProtoMessage`` now (the transport adds its
        own framing: a length prefix, or one binary WebSocket message).

        :raises CTraderError: the frame cannot be written (the connection is
            closing, or the frame is over a size limit).
        """

    def abort() -> None:
        """Drop the connection at once (after a protocol error)."""

    def close() -> None:
        """Close the connection cleanly, after what was already written."""


class IFrameReceiver(Interface):
    """The request core, as a transport protocol sees it."""

    def connectionReady(transport: IFrameTransport) -> None:
        """*transport* can carry messages: TLS verified, WebSocket open."""

    def framesReceived(transport: IFrameTransport, frames: Sequence[bytes]) -> None:
        """One read arrived on *transport*, completing *frames* (in order;
        possibly none: bytes arriving are activity even when no frame is
        complete yet)."""

    def protocolFailed(transport: IFrameTransport, error: Exception) -> None:
        """The peer broke the framing rules (an oversized or text frame): the
        core records *error* as the cause and calls ``transport.abort()``."""

    def connectionLost(transport: IFrameTransport, reason: Failure) -> None:
        """*transport* is gone, whether it was ever ready or not."""


class ITransportFactory(Interface):
    """Provided by a transport protocol class (``TcpProtocol``,
    ``WebSocketProtocol``): how the core's ``buildProtocol`` makes one."""

    def buildTransport(receiver: IFrameReceiver, settings: TransportSettings) -> Any:
        """A new protocol instance (an ``IProtocol`` providing
        :class:`IFrameTransport`) for one connection attempt."""


@dataclass(frozen=True)
class TransportSettings:
    """What a transport needs to know about the connection it carries.

    :ivar host: the server's host name (the WebSocket handshake names it).
    :ivar port: the server's port.
    :ivar clock: the time source for the transport's own timers.
    :ivar useTLS: whether the stream under the transport is TLS.
    :ivar maxMessageSize: the largest frame or message accepted, bytes.
    :ivar handshakeTimeout: seconds from the TCP connection to ready (TLS
        handshake, and the WebSocket opening handshake), or ``None``.
    """

    host: str
    port: int
    clock: IReactorTime
    useTLS: bool = True
    maxMessageSize: int = 15_000_000
    handshakeTimeout: float | None = 30.0

