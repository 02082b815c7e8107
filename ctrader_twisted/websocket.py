# -*- test-case-name: tests.test_websocket,tests.test_transports -*-
"""WebSocket transport: one serialized ``ProtoMessage`` per binary message.

:class:`WebSocketProtocol` is an Autobahn
:class:`~autobahn.twisted.websocket.WebSocketClientProtocol` that plugs into
the request core (:class:`ctrader_twisted.factory.Factory`) exactly as
:class:`~ctrader_twisted.tcp.TcpProtocol` does, so a user switches transport
with one argument::

    client = Client(EndPoints.PROTOBUF_DEMO_HOST, EndPoints.PROTOBUF_PORT, WebSocketProtocol)

Correlation, timeouts, heartbeats, listeners, rate limits and error mapping
stay in the core; this module only turns WebSocket messages into frames.

Design notes:

* Autobahn protocols read their settings from an Autobahn factory
  (``self.factory``, copied in ``_connectionMade``). :meth:`forFactory`
  builds one ``WebSocketClientFactory`` per core, lazily, and keeps it on the
  core; the protocol keeps the core as :attr:`WebSocketProtocol.core`.
* Autobahn's defaults are wrong for us (no auto-ping, no size limit), so every
  option that matters is set deliberately (see :meth:`WebSocketProtocol.options`).
* TLS is not Autobahn's job: :class:`~ctrader_twisted.client.Client` connects
  through :func:`~ctrader_twisted.endpoints.clientEndpoint`
  (``optionsForClientTLS``, certificate and host name verified) and hands the
  core to that endpoint. Never use Autobahn's ``connectWS`` without a
  verifying context factory: by default it verifies nothing.
* Autobahn's handshake, auto-ping and close timers run on the core's clock
  (the Autobahn factory's timer is pointed at it), except the "server did not
  drop the TCP connection after the close handshake" timer, which Autobahn
  schedules on ``txaio.config.loop`` (the global reactor unless set).
"""

from __future__ import annotations

import txaio

txaio.use_twisted()

from typing import Any, Callable  # noqa: E402

from autobahn.exception import Disconnected  # noqa: E402
from autobahn.twisted.websocket import (  # noqa: E402
    WebSocketClientFactory,
    WebSocketClientProtocol,
)
from twisted.internet.error import ConnectionDone, ConnectionLost  # noqa: E402
from twisted.internet.interfaces import IAddress, IDelayedCall, IReactorTime  # noqa: E402
from twisted.logger import Logger  # noqa: E402
from twisted.python.failure import Failure  # noqa: E402

from ._version import __version__  # noqa: E402
from .errors import FrameTooLargeError, MalformedFrameError, NotConnectedError  # noqa: E402
from .factory import HEARTBEAT_FRAME, Factory  # noqa: E402

__all__ = ["WebSocketProtocol", "webSocketURL"]

#: Close code sent when the peer breaks our framing rules (a private code:
#: Autobahn accepts only 1000 and 3000-4999 from applications).
CLOSE_CODE_PROTOCOL_VIOLATION = 4000


def webSocketURL(host: str, port: int, secure: bool = True) -> str:
    """The WebSocket URL of an Open API proxy: ``wss://host:port`` (the
    handshake's request path is ``/``).

    :param secure: ``False`` gives ``ws://`` (the simulator's plain listener).
    """
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 literal
    return f"{'wss' if secure else 'ws'}://{host}:{port}"


class _ClockTimer:
    """Autobahn's batched-timer interface (``txaio.IBatchedTimer``) on an
    injected clock, so handshake and auto-ping timeouts follow the core's
    clock (a ``task.Clock`` in tests) instead of the global reactor."""

    def __init__(self, clock: IReactorTime) -> None:
        self._clock = clock

    def call_later(self, delay: float, func: Callable[..., Any], *args: Any, **kwargs: Any) -> IDelayedCall:
        """Schedule ``func(*args, **kwargs)`` in *delay* seconds; the result has ``cancel()``."""
        return self._clock.callLater(delay, func, *args, **kwargs)


class WebSocketProtocol(WebSocketClientProtocol):  # type: ignore[misc]
    """The Open API over WebSocket (binary messages, ``wss://host:port``).

    Built by :class:`~ctrader_twisted.factory.Factory` through
    :meth:`forFactory`; all state is per instance. The class attributes below
    are the Autobahn options we set on purpose; a subclass may change them.

    :ivar core: the request core (:class:`~ctrader_twisted.factory.Factory`).
    :ivar factory: the Autobahn ``WebSocketClientFactory`` shared by the
        protocols of one core (Autobahn reads its settings from it).
    """

    _log = Logger()

    #: Seconds between WebSocket pings (Autobahn's default is 0: never).
    autoPingIntervalSeconds: float = 10.0
    #: Seconds to wait for the pong before dropping the connection.
    autoPingTimeoutSeconds: float = 5.0
    #: Seconds allowed for the opening handshake once TCP/TLS is up.
    openHandshakeTimeoutSeconds: float = 10.0
    #: Seconds allowed for the closing handshake.
    closeHandshakeTimeoutSeconds: float = 1.0

    core: Factory

    def __init__(self) -> None:
        super().__init__()
        self._closeInfo: tuple[bool, int | None, str | None] | None = None
        self._coreNotified = False
        self._opened = False
        self._dropReason = "the client closed the connection after a protocol error"

    # --- construction ---------------------------------------------------------

    @classmethod
    def options(cls, core: Factory) -> dict[str, Any]:
        """The Autobahn protocol options used for *core*'s connections.

        The message and frame limits equal the core's ``maxMessageSize`` (the
        TCP transport's limit); auto-ping is on; no compression is offered
        (the proxy's messages are protobuf, and compression costs CPU on
        every spot event).
        """
        return {
            "maxMessagePayloadSize": core.maxMessageSize,
            "maxFramePayloadSize": core.maxMessageSize,
            "autoPingInterval": cls.autoPingIntervalSeconds,
            "autoPingTimeout": cls.autoPingTimeoutSeconds,
            "openHandshakeTimeout": cls.openHandshakeTimeoutSeconds,
            "closeHandshakeTimeout": cls.closeHandshakeTimeoutSeconds,
            "perMessageCompressionOffers": [],
            "failByDrop": True,
            "utf8validateIncoming": True,
        }

    @classmethod
    def webSocketFactory(cls, core: Factory) -> WebSocketClientFactory:
        """The Autobahn factory for *core*: built on first use, then kept on
        the core (``core._webSocketFactory``)."""
        wsFactory: WebSocketClientFactory | None = getattr(core, "_webSocketFactory", None)
        if wsFactory is not None and wsFactory.protocol is cls:
            return wsFactory
        wsFactory = WebSocketClientFactory(
            url=webSocketURL(core.host, core.port, core.useTLS),
            useragent=f"ctrader-twisted/{__version__}",
            # Autobahn uses its reactor only in connectWS/listenWS, which we
            # never call; passing the clock avoids importing the global reactor.
            reactor=core.clock,
        )
        wsFactory.protocol = cls
        wsFactory.setProtocolOptions(**cls.options(core))
        wsFactory._batched_timer = _ClockTimer(core.clock)
        core._webSocketFactory = wsFactory  # type: ignore[attr-defined]
        return wsFactory

    @classmethod
    def forFactory(cls, core: Factory, addr: IAddress | None) -> WebSocketProtocol:
        """Build a protocol bound to *core* (the request core)."""
        proto = cls()
        proto.factory = cls.webSocketFactory(core)
        proto.core = core
        return proto

    # --- WebSocket events -------------------------------------------------------

    def onOpen(self) -> None:
        """The opening handshake is done: the connection can carry messages."""
        self._opened = True
        self.core.connectionReady(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        """One complete message: binary goes to the core, text is a violation."""
        if isBinary:
            self.core.frameReceived(self, payload)
            return
        self.core.protocolFailed(
            self,
            MalformedFrameError(
                f"received a {len(payload)}-byte WebSocket text message; "
                "the Open API sends binary messages only"
            ),
        )

    def _max_message_size_exceeded(self, msg_size: int, max_msg_size: int, reason: str) -> None:
        # Autobahn's hook for an incoming message or frame over the limit; it
        # would drop the connection with a generic 1006 close. Report the
        # specific error to the core (logged, cause of the failed requests);
        # the core then calls abort(), which drops the connection.
        self._dropReason = reason
        self.core.protocolFailed(self, FrameTooLargeError(msg_size, max_msg_size))
        self._drop(reason)  # in case the core did not abort

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        """Remember how the WebSocket ended; :meth:`connectionLost` reports it."""
        self._closeInfo = (wasClean, code, reason)

    def connectionLost(self, reason: Failure = Failure(ConnectionDone())) -> None:
        """The TCP connection is gone (after a close handshake or not): tell
        the core exactly once, with a reason saying how the WebSocket ended."""
        try:
            super().connectionLost(reason)
        finally:
            if not self._coreNotified:
                self._coreNotified = True
                self.core.connectionLost(self, self._lossReason(reason))

    def _lossReason(self, reason: Failure) -> Failure:
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
        self._drop(self._dropReason)

    def close(self) -> None:
        """Start the WebSocket closing handshake (code 1000)."""
        if self.state == self.STATE_OPEN:
            self.sendClose(1000)
        elif self.state != self.STATE_CLOSED and self.transport is not None:
            self.transport.loseConnection()

    def _drop(self, reason: str) -> None:
        if self.state == self.STATE_CLOSED:
            return
        self.failedByMe = True  # stop Autobahn from handling the rest of the read
        self.wasClean = False
        self.wasNotCleanReason = reason
        self.dropConnection(abort=True)

    def __repr__(self) -> str:
        core = getattr(self, "core", None)
        where = f" {core.host}:{core.port}" if core is not None else ""
        return f"<{type(self).__name__}{where} state={getattr(self, 'state', None)}>"
