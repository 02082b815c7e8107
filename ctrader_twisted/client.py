# -*- test-case-name: tests.test_client -*-
"""The user's entry point: :class:`Client`, a ``ClientService`` like the official SDK's.

``Client`` knows connection life (the ``ClientService`` reconnect loop) and
the user-facing API. Requests, heartbeats and pacing live in its
:class:`~ctrader_twisted.factory.Factory`; framing lives in the transport
protocol (:class:`~ctrader_twisted.tcp.TcpProtocol` or
:class:`~ctrader_twisted.websocket.WebSocketProtocol`).

Ported code changes only its imports::

    from ctrader_twisted import Client, Protobuf, TcpProtocol, EndPoints
    client = Client(EndPoints.PROTOBUF_DEMO_HOST, EndPoints.PROTOBUF_PORT, TcpProtocol)
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.application.internet import ClientService
from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IReactorTime, IStreamClientEndpoint
from twisted.logger import Logger
from twisted.python.failure import Failure

from .endpoints import clientEndpoint
from .errors import NotConnectedError, NotSentError
from .factory import Factory, FrameProtocol
from .messages.OpenApiCommonMessages_pb2 import ProtoMessage
from .tcp import DEFAULT_MAX_MESSAGE_SIZE, TcpProtocol

__all__ = ["Client"]

_DEFAULT = object()


class Client(ClientService):
    """A reconnecting Open API client.

    :param host: proxy host name (see :class:`~ctrader_twisted.EndPoints`).
    :param port: proxy port (5035).
    :param protocol: transport protocol class: :class:`TcpProtocol` (TLS TCP)
        or :class:`~ctrader_twisted.websocket.WebSocketProtocol` (``wss://``).
    :param retryPolicy: ``ClientService`` retry policy (seconds to wait
        before attempt *n*); Twisted's ``backoffPolicy()`` by default.
    :param clock: time source for timeouts, heartbeats, pacing and retries
        (defaults to *reactor*).
    :param prepareConnection: passed to ``ClientService`` for compatibility.
    :param numberOfMessagesToSendPerSecond: the official SDK's throttle
        setting, honoured as the general rate limit when given (the official
        default of 5 is not copied: the server allows 50).
    :param reactor: reactor for connecting; the global one, imported only
        when needed, if omitted.
    :param trustRoot: CA certificate(s) to trust instead of the platform's
        (see :func:`~ctrader_twisted.endpoints.loadTrustRoot`).
    :param useTLS: ``False`` connects without TLS (the simulator's benchmark
        listener only).
    :param endpoint: a ready ``IStreamClientEndpoint`` to use instead of
        building one (tests, proxies).
    :param heartbeatInterval: seconds between heartbeats (10).
    :param responseTimeout: default response timeout, seconds (5).
    :param maxMessageSize: largest frame accepted, bytes (15,000,000).
    :param requestsPerSecond: general rate limit (50).
    :param historicalRequestsPerSecond: historical-data rate limit (5).
    :param maxQueuedRequests: bound of the queue of unsent requests.
    :param failFast: fail sends at once while disconnected instead of
        queueing them until the connection is back.
    """

    _log = Logger()

    def __init__(
        self,
        host: str,
        port: int,
        protocol: type = TcpProtocol,
        retryPolicy: Callable[[int], float] | None = None,
        clock: IReactorTime | None = None,
        prepareConnection: Callable[[Any], Any] | None = None,
        numberOfMessagesToSendPerSecond: int | None = None,
        *,
        reactor: Any = None,
        trustRoot: Any = None,
        useTLS: bool = True,
        endpoint: IStreamClientEndpoint | None = None,
        heartbeatInterval: float | None = 10.0,
        responseTimeout: float | None = 5.0,
        maxMessageSize: int = DEFAULT_MAX_MESSAGE_SIZE,
        requestsPerSecond: int | None = 50,
        historicalRequestsPerSecond: int | None = 5,
        maxQueuedRequests: int = 10_000,
        failFast: bool = False,
    ) -> None:
        if not isinstance(host, str) or not host:
            raise ValueError(f"host must be a non-empty string, got {host!r}")
        if not isinstance(port, int) or not 0 < port < 65536:
            raise ValueError(f"port must be an integer from 1 to 65535, got {port!r}")
        if reactor is None and (endpoint is None or clock is None):
            from twisted.internet import reactor as globalReactor

            reactor = globalReactor
        if clock is None:
            clock = reactor
        if numberOfMessagesToSendPerSecond is not None:
            requestsPerSecond = numberOfMessagesToSendPerSecond
        self.host = host
        self.port = port
        self.failFast = failFast
        self.factory = Factory(
            protocol,
            clock,
            host,
            port,
            heartbeatInterval=heartbeatInterval,
            responseTimeout=responseTimeout,
            maxMessageSize=maxMessageSize,
            requestsPerSecond=requestsPerSecond,
            historicalRequestsPerSecond=historicalRequestsPerSecond,
            maxQueuedRequests=maxQueuedRequests,
            useTLS=useTLS,
        )
        if endpoint is None:
            endpoint = clientEndpoint(reactor, host, port, useTLS=useTLS, trustRoot=trustRoot)
        super().__init__(
            endpoint,
            self.factory,
            retryPolicy=retryPolicy,
            clock=clock,
            prepareConnection=prepareConnection,
        )
        self._connectedCallback: Callable[[Client], Any] | None = None
        self._disconnectedCallback: Callable[[Client, Failure], Any] | None = None
        self._messageReceivedCallback: Callable[[Client, ProtoMessage], Any] | None = None
        self.factory.addConnectionObserver(self._connected)
        self.factory.addDisconnectionObserver(self._disconnected)
        self.factory.addMessageCallback(self._received)

    def __repr__(self) -> str:
        state = "connected" if self.isConnected else ("running" if self.running else "stopped")
        return f"<{type(self).__name__} {self.host}:{self.port} {state}>"

    # --- official SDK API ------------------------------------------------------------

    @property
    def isConnected(self) -> bool:
        """Whether a connection is up and ready to carry messages."""
        return self.factory.connection is not None

    def startService(self) -> None:
        """Start connecting (and reconnecting after every loss)."""
        if self.running:
            return
        self.factory.keepQueuedOnDisconnect = not self.failFast
        super().startService()

    def stopService(self) -> Deferred[None]:
        """Stop reconnecting and close the connection; works in every state.

        Requests still waiting to be written fail with
        :class:`~ctrader_twisted.errors.NotSentError`; written ones with
        :class:`~ctrader_twisted.errors.OutcomeUnknownError` when the
        connection closes.

        :returns: a Deferred that fires when the connection is closed.
        """
        self.factory.keepQueuedOnDisconnect = False
        self.factory.failQueued(NotSentError("the client was stopped before the request was sent"))
        if not self.running:
            from twisted.internet.defer import succeed

            return succeed(None)
        return super().stopService()  # type: ignore[no-any-return]

    def setConnectedCallback(self, callback: Callable[[Client], Any] | None) -> None:
        """Call ``callback(client)`` each time a connection is made."""
        self._connectedCallback = callback

    def setDisconnectedCallback(self, callback: Callable[[Client, Failure], Any] | None) -> None:
        """Call ``callback(client, reason)`` each time the connection ends."""
        self._disconnectedCallback = callback

    def setMessageReceivedCallback(self, callback: Callable[[Client, ProtoMessage], Any] | None) -> None:
        """Call ``callback(client, protoMessage)`` for every message received
        (answers included, as in the official SDK)."""
        self._messageReceivedCallback = callback

    def send(
        self,
        message: Any,
        clientMsgId: str | None = None,
        responseTimeoutInSeconds: float | None | object = _DEFAULT,
        **params: Any,
    ) -> Deferred[ProtoMessage]:
        """Send a request; the Deferred fires with the answering ``ProtoMessage``.

        This is the official SDK's contract: error answers (``ProtoErrorRes``,
        ``ProtoOAErrorRes``, ...) fire the callback too. New code wants
        :meth:`request`.

        :param message: message object, ready ``ProtoMessage``, or a class,
            name (``"ProtoOAVersionReq"``), short name (``"VersionReq"``) or
            payload type built with *params*.
        :param clientMsgId: request id (generated when omitted).
        :param responseTimeoutInSeconds: seconds from the write to the answer
            (``None``: no timeout); the client's ``responseTimeout`` by default.
        :raises UnknownMessageError, InvalidMessageError: bad arguments, before
            anything is written.
        :returns: see :meth:`Factory.send <ctrader_twisted.factory.Factory.send>`
            for the failures.
        """
        return self._send(message, clientMsgId, responseTimeoutInSeconds, True, params)

    def request(
        self,
        message: Any,
        clientMsgId: str | None = None,
        responseTimeoutInSeconds: float | None | object = _DEFAULT,
        **params: Any,
    ) -> Deferred[Any]:
        """Send a request; the Deferred fires with the decoded answer.

        Error answers errback with an
        :class:`~ctrader_twisted.errors.OpenApiError` subclass carrying the
        error code, description and the error message's other fields.
        Arguments as for :meth:`send`.
        """
        return self._send(message, clientMsgId, responseTimeoutInSeconds, False, params)

    def _send(
        self,
        message: Any,
        clientMsgId: str | None,
        timeout: Any,
        raw: bool,
        params: dict[str, Any],
    ) -> Deferred[Any]:
        if timeout is _DEFAULT:
            timeout = ...
        if not self.running:
            # Validate anyway: bad arguments must fail the same way whatever the state.
            self.factory.buildEnvelope(message, clientMsgId, **params)
            return fail(NotConnectedError("the client is not running: call startService() first"))
        if self.failFast and self.factory.connection is None:
            self.factory.buildEnvelope(message, clientMsgId, **params)
            return fail(NotConnectedError("not connected (failFast is set)"))
        return self.factory.send(message, clientMsgId, timeout, raw=raw, **params)

    # --- listeners ------------------------------------------------------------------------

    def addListener(self, payload: Any, listener: Callable[[Any], Any]) -> None:
        """Call ``listener(decodedMessage)`` for every received message of one type.

        :param payload: class, name, short name or payload type, e.g.
            ``"ProtoOASpotEvent"``. Exceptions raised by *listener* are logged
            and do not affect the connection or other listeners.
        """
        self.factory.addListener(payload, listener)

    def removeListener(self, payload: Any, listener: Callable[[Any], Any]) -> None:
        """Remove a listener added with :meth:`addListener`."""
        self.factory.removeListener(payload, listener)

    # --- factory observers ------------------------------------------------------------

    def _connected(self, connection: FrameProtocol) -> None:
        if self._connectedCallback is not None:
            self._connectedCallback(self)

    def _disconnected(self, connection: FrameProtocol, reason: Failure) -> None:
        if self._disconnectedCallback is not None:
            self._disconnectedCallback(self, reason)

    def _received(self, message: ProtoMessage) -> None:
        if self._messageReceivedCallback is not None:
            self._messageReceivedCallback(self, message)
