# -*- test-case-name: tests.test_websocket,tests.test_transports -*-
"""WebSocket transport: one serialized ``ProtoMessage`` per binary message.

:class:`WebSocketProtocol` is an Autobahn
:class:`~autobahn.twisted.websocket.WebSocketClientProtocol` that offers the
request core the same frame interface as
:class:`~ctrader_twisted.tcp.TcpProtocol`, so a user switches transport with
one argument::

    client = Client(EndPoints.PROTOBUF_DEMO_HOST, EndPoints.PROTOBUF_PORT, WebSocketProtocol)

Correlation, timeouts, heartbeats, listeners, rate limits and error mapping
stay in the core; this module only turns WebSocket messages into frames.

Design notes:

* Autobahn protocols read their settings from an Autobahn factory.
  :meth:`WebSocketProtocol.buildTransport` builds one per connection attempt
  from the core's :class:`~ctrader_twisted.interfaces.TransportSettings`
  (cheap, and nothing is cached on the core).
* Autobahn's own timers run on ``txaio``'s global loop, not on an injected
  clock, so every Autobahn timer is turned off and this protocol keeps its own
  on the settings' clock: the opening-handshake deadline (from the TCP
  connection to the WebSocket being open, TLS included), the ping/pong
  keepalive, and the closing deadline.
* Size limits and text messages are checked when a message or frame
  *begins* (its length is known before its payload arrives), through
  Autobahn's public frame-level hooks, so an oversized message is refused
  before it is buffered, and a text message at its first byte.
* The messages of one read go to the core in one call, like TCP frames.
* TLS is not Autobahn's job: :class:`~ctrader_twisted.client.Client`
  connects through :func:`~ctrader_twisted.endpoints.clientEndpoint`
  (``optionsForClientTLS``, certificate and host name verified). Never use
  Autobahn's ``connectWS`` without a verifying context factory: by default it
  verifies nothing.
"""

from __future__ import annotations

import txaio

txaio.use_twisted()

from typing import Any  # noqa: E402

from autobahn.exception import Disconnected  # noqa: E402
from autobahn.twisted.websocket import (  # noqa: E402
    WebSocketClientFactory,
    WebSocketClientProtocol,
)
from twisted.internet.error import ConnectionDone, ConnectionLost  # noqa: E402
from twisted.internet.interfaces import IDelayedCall  # noqa: E402
from twisted.internet.task import LoopingCall  # noqa: E402
from twisted.logger import Logger  # noqa: E402
from twisted.python.failure import Failure  # noqa: E402
from zope.interface import implementer, provider  # noqa: E402

from ._version import __version__  # noqa: E402
from .errors import (  # noqa: E402
    FrameTooLargeError,
    HandshakeTimeoutError,
    MalformedFrameError,
    NotConnectedError,
)
from .interfaces import IFrameReceiver, IFrameTransport, ITransportFactory, TransportSettings  # noqa: E402
from .keepalive import HEARTBEAT_FRAME, HandshakeDeadline  # noqa: E402

__all__ = ["WebSocketProtocol", "webSocketURL"]


def webSocketURL(host: str, port: int, secure: bool = True) -> str:
    """The WebSocket URL of an Open API proxy: ``wss://host:port`` (the
    handshake's request path is ``/``).

    :param secure: ``False`` gives ``ws://`` (the simulator's plain listener).
    """
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 literal
    return f"{'wss' if secure else 'ws'}://{host}:{port}"


@implementer(IFrameTransport)
@provider(ITransportFactory)
class WebSocketProtocol(WebSocketClientProtocol):  # type: ignore[misc]
    """The Open API over WebSocket (binary messages, ``wss://host:port``).

    Built by the core through :meth:`buildTransport`; all state is per
    instance. The class attributes below are its timings; a subclass may
    change them.

    :ivar receiver: the request core (an :class:`~ctrader_twisted.interfaces.IFrameReceiver`).
    :ivar factory: the Autobahn ``WebSocketClientFactory`` of this connection
        attempt (Autobahn reads its settings from it).
    """

    _log = Logger()

    #: Seconds between WebSocket pings.
    autoPingIntervalSeconds: float = 10.0
    #: Seconds to wait for the pong before dropping the connection.
    autoPingTimeoutSeconds: float = 5.0
    #: Seconds allowed for closing: the closing handshake and the server
    #: dropping TCP after it; then the connection is dropped.
    closeHandshakeTimeoutSeconds: float = 1.0

    receiver: IFrameReceiver
    settings: TransportSettings

    def __init__(self) -> None:
        super().__init__()
        self._closeInfo: tuple[bool, int | None, str | None] | None = None
        self._notified = False
        self._opened = False
        self._failed = False
        self._error: Exception | None = None
        self._parts: list[bytes] = []
        self._size = 0
        self._batch: list[bytes] | None = None
        self._deadline: HandshakeDeadline | None = None
        self._pinger: LoopingCall | None = None
        self._pongDue: IDelayedCall | None = None
        self._closing: IDelayedCall | None = None

    # --- construction ---------------------------------------------------------

    @classmethod
    def options(cls, settings: TransportSettings) -> dict[str, Any]:
        """The Autobahn protocol options for a connection with *settings*.

        The message limit equals the core's ``maxMessageSize`` (it also
        bounds what we send; incoming frames and messages are checked by this
        class when they begin); every Autobahn timer is off (see the module
        docstring); no compression is offered (the proxy's messages are
        protobuf, and compression costs CPU on every spot event).
        """
        return {
            "maxMessagePayloadSize": settings.maxMessageSize,
            "maxFramePayloadSize": 0,
            "autoPingInterval": 0,
            "autoPingTimeout": 0,
            "openHandshakeTimeout": 0,
            "closeHandshakeTimeout": 0,
            "serverConnectionDropTimeout": 0,
            "perMessageCompressionOffers": [],
            "failByDrop": True,
            "utf8validateIncoming": False,
        }

    @classmethod
    def buildTransport(cls, receiver: IFrameReceiver, settings: TransportSettings) -> WebSocketProtocol:
        """A protocol for one connection attempt, with its own Autobahn factory."""
        wsFactory = WebSocketClientFactory(
            url=webSocketURL(settings.host, settings.port, settings.useTLS),
            useragent=f"ctrader-twisted/{__version__}",
            # Autobahn uses its reactor only in connectWS/listenWS, which are
            # never called; passing the clock avoids importing the global reactor.
            reactor=settings.clock,
        )
        wsFactory.protocol = cls
        wsFactory.setProtocolOptions(**cls.options(settings))
        proto = cls()
        proto.factory = wsFactory
        proto.receiver = receiver
        proto.settings = settings
        return proto

    # --- connection life ------------------------------------------------------------

    def connectionMade(self) -> None:
        """TCP (and TLS, underneath) is connecting: the handshakes have a deadline."""
        self._deadline = HandshakeDeadline(
            self.settings.clock, self.settings.handshakeTimeout, self._handshakeTimedOut
        )
        super().connectionMade()

    def _handshakeTimedOut(self, seconds: float) -> None:
        self._error = HandshakeTimeoutError(seconds, "TLS and WebSocket opening handshake")
        self._log.warn("{error}; dropping the connection", error=str(self._error))
        self._drop()

    def onOpen(self) -> None:
        """The opening handshake is done: the connection can carry messages."""
        self._opened = True
        if self._deadline is not None:
            self._deadline.cancel()
        if self.autoPingIntervalSeconds:
            self._pinger = LoopingCall(self._ping)
            self._pinger.clock = self.settings.clock
            self._pinger.start(self.autoPingIntervalSeconds, now=False)
        self.receiver.connectionReady(self)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        """Remember how the WebSocket ended; :meth:`connectionLost` reports it."""
        self._closeInfo = (wasClean, code, reason)

    def connectionLost(self, reason: Failure = Failure(ConnectionDone())) -> None:
        """The TCP connection is gone (after a close handshake or not): tell
        the core exactly once, with a reason saying how the WebSocket ended."""
        self._stopTimers()
        try:
            super().connectionLost(reason)
        finally:
            if not self._notified:
                self._notified = True
                self.receiver.connectionLost(self, self._lossReason(reason))

    def _stopTimers(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        if self._pinger is not None and self._pinger.running:
            self._pinger.stop()
        self._pinger = None
        for call in (self._pongDue, self._closing):
            if call is not None and call.active():
                call.cancel()
        self._pongDue = self._closing = None

    def _lossReason(self, reason: Failure) -> Failure:
        if self._error is not None:
            return Failure(self._error)
        info = self._closeInfo
        if info is None:
            return reason
        if not self._opened and not isinstance(reason.value, (ConnectionDone, ConnectionLost)):
            # Failed before the WebSocket opened, e.g. a TLS certificate
            # refused: the real error says more than Autobahn's summary.
            return reason
        wasClean, code, text = info
        if wasClean:
            detail = f"WebSocket closed cleanly (code {code}{': ' + text if text else ''})"
            error: Exception = ConnectionDone(detail)
        else:
            error = ConnectionLost(f"WebSocket connection lost: {text or reason.getErrorMessage()}")
        error.__cause__ = reason.value
        return Failure(error)

    # --- keepalive -------------------------------------------------------------------

    def _ping(self) -> None:
        if self.state != self.STATE_OPEN or self._pongDue is not None:
            return
        self.sendPing()
        self._pongDue = self.settings.clock.callLater(self.autoPingTimeoutSeconds, self._pingTimedOut)

    def onPong(self, payload: bytes) -> None:
        """Any pong shows the peer alive."""
        if self._pongDue is not None and self._pongDue.active():
            self._pongDue.cancel()
        self._pongDue = None

    def _pingTimedOut(self) -> None:
        self._pongDue = None
        self._log.warn(
            "No WebSocket pong within {timeout} s (ping timeout); dropping the connection",
            timeout=self.autoPingTimeoutSeconds,
        )
        self._error = ConnectionLost(f"WebSocket ping timeout: no pong within {self.autoPingTimeoutSeconds:g} s")
        self._drop()

    # --- receiving ---------------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        """One read: Autobahn parses it; its complete messages go to the core
        in one call (none is still activity: bytes arrived)."""
        batch: list[bytes] = []
        self._batch = batch
        try:
            super().dataReceived(data)
        finally:
            self._batch = None
        if self._opened and not self._failed:
            self.receiver.framesReceived(self, batch)

    # The four hooks below replace Autobahn's defaults entirely (none calls
    # ``super()``): a message's chunks are kept here, and Autobahn's own
    # per-frame and per-message buffers are never filled.

    def onMessageBegin(self, isBinary: bool) -> None:
        """A message begins: text is refused at once (the Open API sends binary only)."""
        self._parts = []
        self._size = 0
        if not isBinary and not self._failed:
            self._fail(
                MalformedFrameError("received a WebSocket text message; the Open API sends binary messages only")
            )

    def onMessageFrameBegin(self, length: int) -> None:
        """A frame begins: refuse it if the message would exceed the limit,
        before its payload is received."""
        if self._failed:
            return
        size = self._size + length
        self._size = size
        limit = self.settings.maxMessageSize
        if size > limit:
            self._fail(FrameTooLargeError(size, limit))

    def onMessageFrameData(self, payload: bytes) -> None:
        """Part of a frame's payload: keep it (ignored after a failure)."""
        if not self._failed:
            self._parts.append(payload)

    def onMessageFrameEnd(self) -> None:
        """A frame ended: its payload is already kept."""

    def onMessageEnd(self) -> None:
        """A message is complete: add it to this read's batch."""
        if self._failed:
            return
        parts = self._parts
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        self._parts = []
        if self._batch is not None:
            self._batch.append(data)
        else:  # pragma: no cover - Autobahn parses only inside dataReceived
            self.receiver.framesReceived(self, (data,))

    def _fail(self, error: Exception) -> None:
        # Stop delivering, then let the core record the cause and abort.
        self._failed = True
        self._error = error
        self.receiver.protocolFailed(self, error)
        self._drop()  # in case the core did not abort

    # --- the core's transport interface ------------------------------------------

    def writeFrame(self, data: bytes) -> None:
        """Send one serialized ``ProtoMessage`` as one binary message, now.

        :raises NotConnectedError: the WebSocket is not open (closing or closed).
        :raises autobahn.exception.PayloadExceededError: *data* is over the
            size limit; the core turns both into a failed Deferred.
        """
        if self.state != self.STATE_OPEN:
            if data == HEARTBEAT_FRAME:
                return  # a heartbeat on a closing connection is pointless
            raise NotConnectedError(f"the WebSocket is not open (state {self.state})")
        try:
            self.sendMessage(data, isBinary=True)
        except Disconnected as e:  # pragma: no cover - the state check comes first
            raise NotConnectedError(str(e)) from e

    def abort(self) -> None:
        """Drop the TCP connection at once (used after a protocol error)."""
        self._failed = True
        self._drop()

    def close(self) -> None:
        """Start the WebSocket closing handshake (code 1000); drop the
        connection if it is not gone within :attr:`closeHandshakeTimeoutSeconds`."""
        if self.state == self.STATE_OPEN:
            self.sendClose(1000)
        elif self.state != self.STATE_CLOSED and self.transport is not None:
            self.transport.loseConnection()
        if self._closing is None and not self._notified:
            self._closing = self.settings.clock.callLater(self.closeHandshakeTimeoutSeconds, self._closeTimedOut)

    def _closeTimedOut(self) -> None:
        self._closing = None
        self._drop()

    def sendClose(self, code: int | None = None, reason: str | None = None) -> None:
        """Autobahn's ``sendClose``, with the closing deadline of :meth:`close`."""
        super().sendClose(code, reason)
        if self._closing is None and not self._notified and self.state != self.STATE_CLOSED:
            self._closing = self.settings.clock.callLater(self.closeHandshakeTimeoutSeconds, self._closeTimedOut)

    def _drop(self) -> None:
        if self.transport is not None and not self._notified:
            self.transport.abortConnection()  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        settings = getattr(self, "settings", None)
        where = f" {settings.host}:{settings.port}" if settings is not None else ""
        return f"<{type(self).__name__}{where} state={getattr(self, 'state', None)}>"
