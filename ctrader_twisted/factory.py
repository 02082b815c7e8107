# -*- test-case-name: tests.test_factory -*-
"""The request core: a thin ``ClientFactory`` composing the layers above framing.

:class:`Factory` (the official SDK's name) is what every transport protocol
talks to (it provides :class:`~ctrader_twisted.interfaces.IFrameReceiver`).
It does little itself; each concern lives in one module:

================================  ==================================================
:mod:`ctrader_twisted.requests`   ids, pending requests, deadlines, answers, fail-all
:mod:`ctrader_twisted.outbox`     the bounded queue, the traffic gate, pacing
:mod:`ctrader_twisted.ratelimit`  the rate limits the outbox respects
:mod:`ctrader_twisted.dispatch`   decoding, message callbacks, per-type listeners
:mod:`ctrader_twisted.keepalive`  heartbeats and the silence watchdog
================================  ==================================================

What it keeps is the one thing they share: the current connection (a
:class:`Link`, created when a transport is ready and dropped when it is lost),
and the observers of connection life.
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple, Sequence

from google.protobuf.message import Message
from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IAddress, IReactorTime
from twisted.internet.protocol import ClientFactory
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from .dispatch import Dispatcher, Listener, MessageCallback
from .errors import (
    BlockedPayloadTypeError,
    CTraderError,
    InvalidMessageError,
    NotConnectedError,
    NotSentError,
    OpenApiError,
    RateLimitError,
    SilentConnectionError,
)
from .framing import DEFAULT_MAX_MESSAGE_SIZE
from .interfaces import IFrameReceiver, IFrameTransport, ITransportFactory, TransportSettings
from .keepalive import HEARTBEAT_FRAME, KeepAlive
from .messages.OpenApiCommonMessages_pb2 import ProtoMessage
from .outbox import Outbox
from .protobuf import Protobuf, encodeEnvelope, payloadTypeOf
from .ratelimit import DEFAULT_MARGIN, RateLimiter
from .requests import Correlator, Request
from .tcp import TcpProtocol

__all__ = ["Factory", "Link", "Encoded", "HEARTBEAT_FRAME"]


class Encoded(NamedTuple):
    """A request checked and serialized, ready for :meth:`Factory.submit`.

    :ivar payloadType: its payload type.
    :ivar payload: the serialized request message.
    :ivar clientMsgId: the caller's id, or ``None`` for a generated one.
    :ivar message: the request message object, or ``None`` when a ready
        ``ProtoMessage`` was given.
    """

    payloadType: int
    payload: bytes
    clientMsgId: str | None
    message: Message | None


class Link:
    """One ready connection and what belongs to it alone.

    :ivar transport: the transport protocol carrying it.
    :ivar keepalive: its heartbeat and silence watchdog.
    :ivar failure: why the core dropped it, when it did (the cause given to
        the requests that fail with it).
    :ivar lost: set once it is gone.
    """

    __slots__ = ("transport", "keepalive", "failure", "lost")

    def __init__(self, transport: IFrameTransport, keepalive: KeepAlive) -> None:
        self.transport = transport
        self.keepalive = keepalive
        self.failure: Exception | None = None
        self.lost = False

    def __repr__(self) -> str:
        return f"<Link {self.transport!r}{' lost' if self.lost else ''}>"


def checkTimeout(value: Any, name: str = "responseTimeoutInSeconds") -> float | None:
    """*value* as a timeout in seconds: a positive finite number, or ``None``.

    :raises InvalidMessageError: anything else (zero, negative, NaN,
        infinity, a string ...), naming *name*.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise InvalidMessageError(f"{name} must be a positive number of seconds or None, got {value!r}")
    return float(value)


@implementer(IFrameReceiver)
class Factory(ClientFactory):
    """The request core behind every transport (see the module docstring).

    :param protocol: the transport protocol class (:class:`TcpProtocol` or
        :class:`~ctrader_twisted.websocket.WebSocketProtocol`).
    :param clock: the time source for timeouts, heartbeats and pacing (a
        reactor, or :class:`~twisted.internet.task.Clock` in tests); taken
        from *client* when omitted.
    :param host: server host name (the WebSocket handshake needs it).
    :param port: server port.
    :param heartbeatInterval: seconds between ``ProtoHeartbeatEvent`` frames
        (``None`` or 0 turns them off).
    :param responseTimeout: default seconds a request may wait to be written,
        then for its answer (``None``: forever).
    :param maxMessageSize: largest frame or WebSocket message accepted, bytes.
    :param requestsPerSecond: general rate limit (``None``: no pacing).
    :param historicalRequestsPerSecond: historical-data rate limit.
    :param maxQueuedRequests: bound on requests accepted but not yet written.
    :param useTLS: whether the stream under the transport is TLS.
    :param silenceTimeout: drop the connection when nothing at all has been
        received for this many seconds (``None``: never).
    :param handshakeTimeout: seconds allowed from the TCP connection to ready
        (TLS handshake, and WebSocket opening handshake).
    :param retryRateLimited: write a request refused for a rate limit
        (``REQUEST_FREQUENCY_EXCEEDED``, ``BLOCKED_PAYLOAD_TYPE``: the server
        did not act on it) again after a hold, instead of failing it.
    :param rateLimitMargin: seconds added to each one-second rate window, so
        that requests paced by their writes stay under the limit where the
        server counts their arrivals.
    :param client: the :class:`~ctrader_twisted.client.Client` this core
        serves (the official SDK's ``Factory.forProtocol(protocol,
        client=client)``); its clock, host and port are the defaults.
    """

    _log = Logger()
    protocol: Any = TcpProtocol

    def __init__(
        self,
        protocol: Any = TcpProtocol,
        clock: IReactorTime | None = None,
        host: str | None = None,
        port: int | None = None,
        *,
        heartbeatInterval: float | None = 10.0,
        responseTimeout: float | None = 5.0,
        maxMessageSize: int = DEFAULT_MAX_MESSAGE_SIZE,
        requestsPerSecond: int | None = 50,
        historicalRequestsPerSecond: int | None = 5,
        maxQueuedRequests: int = 10_000,
        useTLS: bool = True,
        silenceTimeout: float | None = 60.0,
        handshakeTimeout: float | None = 30.0,
        retryRateLimited: bool = True,
        rateLimitMargin: float = DEFAULT_MARGIN,
        client: Any = None,
    ) -> None:
        if client is not None:
            clock = clock if clock is not None else client.clock
            host = host if host is not None else client.host
            port = port if port is not None else client.port
        if clock is None:
            raise TypeError("Factory needs a clock (the reactor, or a task.Clock in tests)")
        if not isinstance(maxMessageSize, int) or maxMessageSize < 1:
            raise ValueError(f"maxMessageSize must be a positive integer, got {maxMessageSize!r}")
        if heartbeatInterval is not None and not (math.isfinite(heartbeatInterval) and heartbeatInterval >= 0):
            raise ValueError(f"heartbeatInterval must be a non-negative number or None, got {heartbeatInterval!r}")
        for name, value in (("silenceTimeout", silenceTimeout), ("handshakeTimeout", handshakeTimeout)):
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number or None, got {value!r}")
        try:
            checkTimeout(responseTimeout, "responseTimeout")
        except InvalidMessageError as e:
            raise ValueError(str(e)) from None
        self.protocol = protocol
        self.client = client
        self.clock = clock
        self.host = host if host is not None else "localhost"
        self.port = port if port is not None else 5035
        self.useTLS = useTLS
        self.heartbeatInterval = heartbeatInterval
        self.silenceTimeout = silenceTimeout
        self.responseTimeout = responseTimeout
        self.maxMessageSize = maxMessageSize
        self.settings = TransportSettings(self.host, self.port, clock, useTLS, maxMessageSize, handshakeTimeout)
        self.requests = Correlator(clock, onForget=self._forget, onRefused=self._refused)
        self.outbox = Outbox(
            clock,
            RateLimiter(clock, requestsPerSecond, historicalRequestsPerSecond, margin=rateLimitMargin),
            maxQueuedRequests,
            self.requests.written,
        )
        self.dispatcher = Dispatcher(self.requests)
        #: Whether a request refused with ``REQUEST_FREQUENCY_EXCEEDED`` or
        #: ``BLOCKED_PAYLOAD_TYPE`` is written again (after a hold) rather
        #: than failed; at most :attr:`maxRateLimitRetries` times.
        self.retryRateLimited = retryRateLimited
        #: How many times one request is written again after rate-limit
        #: refusals before it fails with the refusal.
        self.maxRateLimitRetries = 8
        #: Requests written again after a rate-limit refusal (a count for logs
        #: and benchmarks: it should stay 0).
        self.rateLimitRetries = 0
        #: Whether requests waiting to be written survive a lost connection
        #: (set by the client while it runs), or fail at once.
        self.keepQueuedOnDisconnect = False
        #: The current connection, or ``None``.
        self.link: Link | None = None
        self._connectionObservers: list[Callable[[IFrameTransport], Any]] = []
        self._disconnectionObservers: list[Callable[[IFrameTransport, Failure], Any]] = []
        self._attemptFailureObservers: list[Callable[[Failure], Any]] = []

    def __repr__(self) -> str:
        state = "connected" if self.link is not None else "disconnected"
        return (
            f"<{type(self).__name__} {self.host}:{self.port} {state} "
            f"pending={len(self.requests)} queued={len(self.outbox)}>"
        )

    @property
    def connection(self) -> IFrameTransport | None:
        """The transport of the current connection, or ``None``."""
        link = self.link
        return link.transport if link is not None else None

    @property
    def limiter(self) -> RateLimiter:
        """The rate limits requests are paced by."""
        return self.outbox.limiter

    # --- building protocols ----------------------------------------------------

    def buildProtocol(self, addr: IAddress | None) -> Any:
        """A transport protocol for one connection attempt, bound to this core."""
        if ITransportFactory.providedBy(self.protocol):
            return self.protocol.buildTransport(self, self.settings)
        return super().buildProtocol(addr)

    # --- listeners and observers -------------------------------------------------

    def addMessageCallback(self, callback: MessageCallback) -> None:
        """Call ``callback(protoMessage)`` for every message received."""
        self.dispatcher.addMessageCallback(callback)

    def removeMessageCallback(self, callback: MessageCallback) -> None:
        """Stop calling a callback added with :meth:`addMessageCallback`."""
        self.dispatcher.removeMessageCallback(callback)

    def addListener(self, payload: Any, listener: Listener) -> None:
        """Call ``listener(decodedPayload)`` for every message of one type.

        :param payload: message class, name, short name or payload type.
        """
        self.dispatcher.addListener(payload, listener)

    def removeListener(self, payload: Any, listener: Listener) -> None:
        """Remove a listener added with :meth:`addListener`.

        :raises ValueError: it was not added.
        """
        self.dispatcher.removeListener(payload, listener)

    def addConnectionObserver(self, observer: Callable[[IFrameTransport], Any]) -> None:
        """Call ``observer(transport)`` whenever a connection becomes ready."""
        self._connectionObservers.append(observer)

    def removeConnectionObserver(self, observer: Callable[[IFrameTransport], Any]) -> None:
        """Stop calling an observer added with :meth:`addConnectionObserver`.

        :raises ValueError: it was not added.
        """
        self._connectionObservers.remove(observer)

    def addDisconnectionObserver(self, observer: Callable[[IFrameTransport, Failure], Any]) -> None:
        """Call ``observer(transport, reason)`` whenever a ready connection ends;
        *reason* is the core's own cause when it dropped the connection (an
        oversized frame, silence, a failed restore)."""
        self._disconnectionObservers.append(observer)

    def removeDisconnectionObserver(self, observer: Callable[[IFrameTransport, Failure], Any]) -> None:
        """Stop calling an observer added with :meth:`addDisconnectionObserver`.

        :raises ValueError: it was not added.
        """
        self._disconnectionObservers.remove(observer)

    def addAttemptFailureObserver(self, observer: Callable[[Failure], Any]) -> None:
        """Call ``observer(reason)`` when a connection ends before it was ready
        (a TLS certificate refused, a handshake that timed out)."""
        self._attemptFailureObservers.append(observer)

    def removeAttemptFailureObserver(self, observer: Callable[[Failure], Any]) -> None:
        """Stop calling an observer added with :meth:`addAttemptFailureObserver`."""
        self._attemptFailureObservers.remove(observer)

    # --- the traffic gate ----------------------------------------------------------

    def holdTraffic(self) -> None:
        """From now on, keep user requests queued after every connect until
        :meth:`releaseTraffic` (the client restores its session first).
        Requests sent with ``priority=True`` are not held."""
        self.outbox.hold()

    def releaseTraffic(self) -> None:
        """Let queued and new user requests be written on this connection."""
        self.outbox.release()

    # --- sending -----------------------------------------------------------------------

    def encode(self, message: Any, clientMsgId: str | None = None, *, validate: bool = True, **fields: Any) -> Encoded:
        """Check the arguments of a request and serialize it.

        :param message: a message object, a ready ``ProtoMessage``, or a
            class, name, short name or payload type to build with *fields*.
        :param validate: check the message as :meth:`Protobuf.build
            <ctrader_twisted.protobuf.Protobuf.build>` does (required fields,
            positive volumes). ``False`` is the official SDK's ``send``: no
            check of field values (the server answers bad ones), and *fields*
            given beside a message object are ignored.
        :raises UnknownMessageError, InvalidMessageError: bad arguments (the
            error names the problem).
        """
        if clientMsgId is not None and (not isinstance(clientMsgId, str) or not clientMsgId):
            raise InvalidMessageError(f"clientMsgId must be a non-empty string, got {clientMsgId!r}")
        if isinstance(message, ProtoMessage):
            if fields and validate:
                raise InvalidMessageError("fields cannot be given with a ready ProtoMessage")
            if not message.HasField("payloadType"):
                raise InvalidMessageError("ProtoMessage is missing its payloadType")
            Protobuf.get_class(message.payloadType)  # unknown types fail here
            if clientMsgId is None and message.HasField("clientMsgId") and message.clientMsgId:
                clientMsgId = message.clientMsgId
            return Encoded(message.payloadType, message.payload, clientMsgId, None)
        if validate:
            payload = Protobuf.build(message, **fields)
        elif isinstance(message, Message):
            payload = message
        else:
            payload = Protobuf.get(message, **fields)
        payloadType = payloadTypeOf(payload)
        if payloadType is None:
            raise InvalidMessageError(
                f"{payload.DESCRIPTOR.name} is not a request message (it has no payloadType)"
            )
        data = payload.SerializeToString() if validate else payload.SerializePartialToString()
        return Encoded(payloadType, data, clientMsgId, payload)

    def submit(
        self,
        encoded: Encoded,
        responseTimeoutInSeconds: Any = ...,
        *,
        raw: bool = True,
        priority: bool = False,
    ) -> Deferred[Any]:
        """Send a request made by :meth:`encode`; see :meth:`send`. Problems
        (a bad timeout, a duplicate ``clientMsgId``, a full queue) fail the
        returned Deferred."""
        try:
            if responseTimeoutInSeconds is ...:
                timeout = self.responseTimeout
            else:
                timeout = checkTimeout(responseTimeoutInSeconds)
            request = self.requests.create(
                encoded.payloadType,
                encoded.payload,
                encoded.clientMsgId,
                raw=raw,
                timeout=timeout,
                priority=priority,
            )
        except CTraderError as e:
            return fail(e)
        try:
            self.outbox.submit(request)
        except CTraderError as e:
            self._abandon(request)
            return fail(e)
        return request.deferred

    def _abandon(self, request: Request) -> None:
        # Refused before it was queued: it never existed for the caller.
        request.deferred.addErrback(lambda f: None)
        request.deferred.errback(NotSentError("refused before it was queued"))

    def send(
        self,
        message: Any,
        clientMsgId: str | None = None,
        responseTimeoutInSeconds: Any = ...,
        *,
        raw: bool = True,
        priority: bool = False,
        **fields: Any,
    ) -> Deferred[Any]:
        """Send a request and return a Deferred for its answer.

        It is written at once when a ready connection, the traffic gate and
        the rate limits allow; otherwise it waits in the outbox.

        :param message: message object, ready ``ProtoMessage``, or a class,
            name, short name or payload type built with *fields*.
        :param clientMsgId: request id (generated when omitted).
        :param responseTimeoutInSeconds: seconds it may wait to be written,
            then seconds from the write to the answer (``None``: no limit);
            the core's ``responseTimeout`` by default.
        :param raw: fire with the answering ``ProtoMessage``, error answers
            included (the official SDK's contract). ``False`` fires with the
            decoded payload and errbacks error answers with
            :class:`~ctrader_twisted.errors.OpenApiError` subclasses.
        :param priority: write even while user traffic is held (session restore).
        :returns: a Deferred; it fails with
            :class:`~ctrader_twisted.errors.UnknownMessageError` or
            :class:`~ctrader_twisted.errors.InvalidMessageError` (bad message,
            fields or timeout: nothing is written),
            :class:`~ctrader_twisted.errors.DuplicateClientMsgIdError`
            (*clientMsgId* is already pending),
            :class:`~ctrader_twisted.errors.QueueFullError` (too many requests
            wait to be written), :class:`~ctrader_twisted.errors.RequestTimeout`
            (no answer in time after the write),
            :class:`~ctrader_twisted.errors.NotSentTimeout` (not written in
            time), :class:`~ctrader_twisted.errors.OutcomeUnknownError`
            (connection lost after the request was written),
            :class:`~ctrader_twisted.errors.NotSentError` (never written) or an
            :class:`~ctrader_twisted.errors.OpenApiError` (``raw=False`` only).
        """
        try:
            encoded = self.encode(message, clientMsgId, validate=not raw, **fields)
        except CTraderError as e:
            return fail(e)
        return self.submit(encoded, responseTimeoutInSeconds, raw=raw, priority=priority)

    def request(
        self,
        message: Any,
        clientMsgId: str | None = None,
        responseTimeoutInSeconds: Any = ...,
        **fields: Any,
    ) -> Deferred[Any]:
        """Like :meth:`send` with ``raw=False``: fire with the decoded answer."""
        return self.send(message, clientMsgId, responseTimeoutInSeconds, raw=False, **fields)

    def sendEvent(self, message: Any, **fields: Any) -> None:
        """Write a message that expects no answer (no ``clientMsgId``), now.

        :raises NotConnectedError: there is no connection.
        """
        encoded = self.encode(message, **fields)
        if self.link is None:
            raise NotConnectedError("cannot send an event: not connected")
        self.link.transport.writeFrame(encodeEnvelope(encoded.payloadType, encoded.payload))

    def failQueued(self, reason: CTraderError) -> None:
        """Errback every request that waits to be written with *reason*."""
        self.outbox.failQueued(reason)

    def pendingCount(self) -> int:
        """Requests whose Deferred has not fired yet (queued or written)."""
        return len(self.requests)

    def _forget(self, request: Request) -> None:
        self.outbox.forget(request)

    def _refused(self, request: Request, error: OpenApiError) -> bool:
        """An error answered *request*: when it is a rate-limit refusal (the
        server did not act on the request), hold its payload type and write
        it again later, up to :attr:`maxRateLimitRetries` times and within
        its own deadline."""
        if not isinstance(error, RateLimitError):
            return False
        limiter = self.outbox.limiter
        name = Protobuf.name(request.payloadType)
        if isinstance(error, BlockedPayloadTypeError):
            asked = error.retryAfter
            hold = limiter.block(request.payloadType, float(asked) if asked else 1.0)
            if asked is not None and asked > hold:
                self._log.warn(
                    "The server blocked {name} for {asked} s; holding it {hold} s (the maximum)",
                    name=name,
                    asked=asked,
                    hold=hold,
                )
        else:
            hold = limiter.backoff(request.payloadType)
        if not self.retryRateLimited or request.attempts > self.maxRateLimitRetries:
            return False
        self._log.warn(
            "{name} (clientMsgId {clientMsgId}) refused with {code}; writing it again in {hold} s (retry {n})",
            name=name,
            clientMsgId=request.clientMsgId,
            code=error.errorCode,
            hold=round(hold, 3),
            n=request.attempts,
        )
        self.rateLimitRetries += 1
        self.requests.unwritten(request)
        self.outbox.requeue(request)
        return True

    # --- connection life (IFrameReceiver) ----------------------------------------------

    def connectionReady(self, transport: IFrameTransport) -> None:
        """A transport is ready to carry messages (TLS verified, WebSocket open)."""
        keepalive = KeepAlive(
            self.clock, transport, self.heartbeatInterval, self.silenceTimeout, self._silent
        )
        link = self.link = Link(transport, keepalive)
        keepalive.start()
        self._log.info("Connected to {host}:{port}", host=self.host, port=self.port)
        for observer in list(self._connectionObservers):
            self._safely(observer, transport)
        if self.link is link:
            self.outbox.connected(transport)

    def framesReceived(self, transport: IFrameTransport, frames: Sequence[bytes]) -> None:
        """One read arrived: count it as activity, then dispatch its frames."""
        link = self.link
        if link is None or link.transport is not transport:
            return  # a connection that is not (or no longer) the current one
        link.keepalive.reads += 1
        if frames:
            self.dispatcher.dispatch(link, frames)

    def frameReceived(self, transport: IFrameTransport, data: bytes) -> None:
        """One complete frame arrived (see :meth:`framesReceived`)."""
        self.framesReceived(transport, (data,))

    def _silent(self, seconds: float) -> None:
        self.abortConnection(SilentConnectionError(seconds))

    def abortConnection(self, cause: CTraderError) -> None:
        """Drop the current connection at once; requests written on it fail
        with *cause* as the reason. Does nothing when there is no connection."""
        if self.link is not None:
            self.protocolFailed(self.link.transport, cause)

    def protocolFailed(self, transport: IFrameTransport, error: Exception) -> None:
        """The connection cannot go on (a framing violation, silence, a failed
        restore): log, remember the cause for its requests, and drop it."""
        self._log.error(
            "Closing the connection to {host}:{port}: {error}",
            host=self.host,
            port=self.port,
            error=str(error),
        )
        link = self.link
        if link is not None and link.transport is transport:
            link.failure = error
        transport.abort()

    def connectionLost(self, transport: IFrameTransport, reason: Failure) -> None:
        """A transport is gone: fail what was written on it; keep or fail the queue."""
        link = self.link
        if link is None or link.transport is not transport:
            if link is None:
                self._log.warn(
                    "Connection to {host}:{port} failed before it was ready: {why}",
                    host=self.host,
                    port=self.port,
                    why=str(reason.value),
                )
                for attemptObserver in list(self._attemptFailureObservers):
                    self._safely(attemptObserver, reason)
            return
        self.link = None
        link.lost = True
        link.keepalive.stop()
        self.outbox.disconnected()
        cause: Any = link.failure or reason
        why = str(cause.value if isinstance(cause, Failure) else cause)
        self._log.info("Disconnected from {host}:{port}: {why}", host=self.host, port=self.port, why=why)
        self.requests.failWritten(transport, why, cause)
        if not self.keepQueuedOnDisconnect:
            self.outbox.failQueued(NotSentError(f"connection lost before the request was sent ({why})", cause))
        if link.failure is not None:
            reason = Failure(link.failure)
        for observer in list(self._disconnectionObservers):
            self._safely(observer, transport, reason)

    def _safely(self, function: Callable[..., Any], *args: Any) -> None:
        try:
            function(*args)
        except Exception:
            self._log.failure("Exception in user callback {callback!r}", callback=function)
