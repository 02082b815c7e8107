# -*- test-case-name: tests.test_factory -*-
"""The request core: one ``ClientFactory`` shared by every transport.

:class:`Factory` owns everything above framing:

* building ``ProtoMessage`` envelopes with unique ``clientMsgId`` values and
  returning a Deferred per request;
* correlating answers (the first message carrying a request's id fires it;
  later ones still reach the listeners), response timeouts counted from the
  moment a request is written, cancellation;
* mapping error answers to typed exceptions (:mod:`ctrader_twisted.errors`);
* the heartbeat ``LoopingCall``;
* rate-limit pacing (:mod:`ctrader_twisted.ratelimit`) and the bounded queue
  of requests accepted but not yet written;
* dispatching every received message to the message callbacks and
  per-payload-type listeners, isolating their exceptions.

Transports plug in through a small interface, so TCP and WebSocket share this
code unchanged. A transport protocol class provides ``forFactory(factory,
addr)`` to build an instance (an Autobahn protocol needs an Autobahn factory
of its own for its settings; it builds one and keeps this one as its core),
and instances provide ``writeFrame(bytes)``, ``abort()`` and ``close()``. They
call back :meth:`Factory.connectionReady`, :meth:`Factory.frameReceived`,
:meth:`Factory.protocolFailed` and :meth:`Factory.connectionLost`.
"""

from __future__ import annotations

import itertools
from collections import deque
from typing import Any, Callable, Iterable, Protocol as TypingProtocol

from google.protobuf.message import DecodeError
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IAddress, IDelayedCall, IReactorTime
from twisted.internet.protocol import ClientFactory
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from .errors import (
    ERROR_PAYLOAD_TYPES,
    BlockedPayloadTypeError,
    CTraderError,
    DuplicateClientMsgIdError,
    InvalidMessageError,
    NotConnectedError,
    NotSentError,
    OutcomeUnknownError,
    QueueFullError,
    RequestTimeout,
    SilentConnectionError,
    UnknownMessageError,
    errorFromPayload,
)
from .messages.OpenApiCommonMessages_pb2 import ProtoMessage
from .protobuf import Protobuf, payloadTypeOf
from .ratelimit import RateLimiter
from .tcp import DEFAULT_MAX_MESSAGE_SIZE, TcpProtocol

__all__ = ["Factory", "FrameProtocol", "HEARTBEAT_FRAME"]

_HEARTBEAT_TYPE = 51
#: payload type -> the message class's ``FromString``, built once (listeners
#: are only registered for known payload types, so every lookup hits).
_decodeEnvelope = ProtoMessage.FromString
_DECODERS = {payloadType: cls.FromString for payloadType, cls in Protobuf.payloadTypes().items()}
#: The serialized heartbeat envelope, built once (``payload`` written empty,
#: exactly as the official SDK writes it).
HEARTBEAT_FRAME = ProtoMessage(payloadType=_HEARTBEAT_TYPE, payload=b"").SerializeToString()


class FrameProtocol(TypingProtocol):
    """What the core needs from a transport protocol instance."""

    def writeFrame(self, data: bytes) -> None: ...

    def abort(self) -> None: ...

    def close(self) -> None: ...


MessageCallback = Callable[[ProtoMessage], Any]
Listener = Callable[[Any], Any]


class _Request:
    """One request from ``send`` until its Deferred fires."""

    __slots__ = (
        "clientMsgId",
        "payloadType",
        "data",
        "deferred",
        "raw",
        "timeout",
        "timer",
        "sent",
        "done",
        "priority",
    )

    def __init__(
        self,
        clientMsgId: str,
        payloadType: int,
        data: bytes,
        raw: bool,
        timeout: float | None,
        priority: bool,
    ) -> None:
        self.clientMsgId = clientMsgId
        self.payloadType = payloadType
        self.data = data
        self.raw = raw
        self.timeout = timeout
        self.priority = priority
        self.deferred: Deferred[Any] = Deferred(self._cancelled)
        self.timer: IDelayedCall | None = None
        self.sent = False
        self.done = False

    def _cancelled(self, d: Deferred[Any]) -> None:
        # Deferred.cancel() errbacks with CancelledError after this returns;
        # the core drops the request when it sees ``done``.
        self.done = True
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.timer = None


class Factory(ClientFactory):
    """The request core behind every transport (see the module docstring).

    :param protocol: the transport protocol class (:class:`TcpProtocol` or
        :class:`~ctrader_twisted.websocket.WebSocketProtocol`).
    :param clock: the time source for timeouts, heartbeats and pacing
        (a reactor, or :class:`~twisted.internet.task.Clock` in tests).
    :param host: server host name (the WebSocket handshake needs it).
    :param port: server port.
    :param heartbeatInterval: seconds between ``ProtoHeartbeatEvent`` frames
        (``None`` or 0 turns them off).
    :param responseTimeout: default seconds to wait for an answer once a
        request is written (``None``: wait forever).
    :param maxMessageSize: largest frame or WebSocket message accepted, bytes.
    :param requestsPerSecond: general rate limit (``None``: no pacing).
    :param historicalRequestsPerSecond: historical-data rate limit.
    :param maxQueuedRequests: bound on requests accepted but not yet written.
    :param silenceTimeout: drop the connection when nothing at all has been
        received for this many seconds (``None``: never). Checked four times
        per period, so the drop comes within 1.25 periods of the last frame.
    """

    _log = Logger()
    protocol: type = TcpProtocol  # type: ignore[assignment]

    def __init__(
        self,
        protocol: type = TcpProtocol,
        clock: IReactorTime | None = None,
        host: str = "localhost",
        port: int = 5035,
        *,
        heartbeatInterval: float | None = 10.0,
        responseTimeout: float | None = 5.0,
        maxMessageSize: int = DEFAULT_MAX_MESSAGE_SIZE,
        requestsPerSecond: int | None = 50,
        historicalRequestsPerSecond: int | None = 5,
        maxQueuedRequests: int = 10_000,
        useTLS: bool = True,
        silenceTimeout: float | None = 60.0,
    ) -> None:
        if clock is None:
            raise TypeError("Factory needs a clock (the reactor, or a task.Clock in tests)")
        if maxMessageSize < 1:
            raise ValueError(f"maxMessageSize must be positive, got {maxMessageSize}")
        if heartbeatInterval is not None and heartbeatInterval < 0:
            raise ValueError(f"heartbeatInterval must not be negative, got {heartbeatInterval}")
        if silenceTimeout is not None and silenceTimeout <= 0:
            raise ValueError(f"silenceTimeout must be positive or None, got {silenceTimeout}")
        if maxQueuedRequests < 1:
            raise ValueError(f"maxQueuedRequests must be at least 1, got {maxQueuedRequests}")
        self.protocol = protocol
        self.clock = clock
        self.host = host
        self.port = port
        self.useTLS = useTLS
        self.heartbeatInterval = heartbeatInterval
        self.silenceTimeout = silenceTimeout
        self.responseTimeout = responseTimeout
        self.maxMessageSize = maxMessageSize
        self.maxQueuedRequests = maxQueuedRequests
        self.limiter = RateLimiter(clock, requestsPerSecond, historicalRequestsPerSecond)

        #: The live transport protocol, or ``None``.
        self.connection: FrameProtocol | None = None
        #: Whether user traffic may be written (see :meth:`holdTraffic`).
        self.trafficOpen = False
        #: Whether queued requests wait for a reconnection when the connection
        #: is lost (set by the client while it runs), or fail at once.
        self.keepQueuedOnDisconnect = False
        #: Bumped whenever frames arrive on the current connection (once per
        #: read); the silence watchdog compares it between its checks, which is
        #: cheaper than reading the clock per frame.
        self.activity = 0
        self._watchdog: LoopingCall | None = None
        self._silentFor = 0.0
        self._activityAtCheck = 0

        self._holdUntilReleased = False
        self._ids = itertools.count(1)
        self._pending: dict[str, _Request] = {}
        self._queue: deque[_Request] = deque()
        self._queued = 0
        self._drainCall: IDelayedCall | None = None
        self._heartbeat: LoopingCall | None = None
        self._failure: CTraderError | None = None
        self._messageCallbacks: list[MessageCallback] = []
        self._listeners: dict[int, list[Listener]] = {}
        self._connectionObservers: list[Callable[[FrameProtocol], Any]] = []
        self._disconnectionObservers: list[Callable[[FrameProtocol, Failure], Any]] = []
        self._attemptFailureObservers: list[Callable[[Failure], Any]] = []

    def __repr__(self) -> str:
        state = "connected" if self.connection is not None else "disconnected"
        return (
            f"<{type(self).__name__} {self.host}:{self.port} {state} "
            f"pending={len(self._pending)} queued={self._queued}>"
        )

    # --- building protocols ----------------------------------------------------

    def buildProtocol(self, addr: IAddress | None) -> Any:
        """Build the transport protocol through its ``forFactory``."""
        return self.protocol.forFactory(self, addr)  # type: ignore[attr-defined]

    # --- observers -------------------------------------------------------------

    def addMessageCallback(self, callback: MessageCallback) -> None:
        """Call ``callback(protoMessage)`` for every message received."""
        self._messageCallbacks.append(callback)

    def removeMessageCallback(self, callback: MessageCallback) -> None:
        """Stop calling a callback added with :meth:`addMessageCallback`."""
        self._messageCallbacks.remove(callback)

    def addListener(self, payload: Any, listener: Listener) -> None:
        """Call ``listener(decodedPayload)`` for every message of one type.

        :param payload: message class, name, short name or payload type.
        """
        payloadType = Protobuf.get_type(payload)
        self._listeners.setdefault(payloadType, []).append(listener)

    def removeListener(self, payload: Any, listener: Listener) -> None:
        """Remove a listener added with :meth:`addListener`.

        :raises ValueError: it was not added.
        """
        payloadType = Protobuf.get_type(payload)
        listeners = self._listeners.get(payloadType, [])
        listeners.remove(listener)
        if not listeners:
            self._listeners.pop(payloadType, None)

    def addConnectionObserver(self, observer: Callable[[FrameProtocol], Any]) -> None:
        """Call ``observer(protocol)`` whenever a connection becomes ready."""
        self._connectionObservers.append(observer)

    def addDisconnectionObserver(self, observer: Callable[[FrameProtocol, Failure], Any]) -> None:
        """Call ``observer(protocol, reason)`` whenever a connection ends."""
        self._disconnectionObservers.append(observer)

    def addAttemptFailureObserver(self, observer: Callable[[Failure], Any]) -> None:
        """Call ``observer(reason)`` when a connection ends before it was ready
        (for example a TLS certificate that failed verification)."""
        self._attemptFailureObservers.append(observer)

    def removeAttemptFailureObserver(self, observer: Callable[[Failure], Any]) -> None:
        """Stop calling an observer added with :meth:`addAttemptFailureObserver`."""
        self._attemptFailureObservers.remove(observer)

    # --- traffic gate ----------------------------------------------------------

    def holdTraffic(self, hold: bool = True) -> None:
        """Keep user requests queued after connecting until :meth:`releaseTraffic`.

        The client uses this to restore a session (authentication,
        subscriptions) before user traffic flows. Requests sent with
        ``priority=True`` are not held.
        """
        self._holdUntilReleased = hold

    def releaseTraffic(self) -> None:
        """Let queued and new user requests be written."""
        if self.connection is not None:
            self.trafficOpen = True
            self._scheduleDrain(0)

    # --- sending ---------------------------------------------------------------

    def buildEnvelope(
        self, message: Any, clientMsgId: str | None = None, **fields: Any
    ) -> tuple[ProtoMessage, int]:
        """Validate the arguments of a send and build its ``ProtoMessage``.

        :returns: the envelope (without ``clientMsgId`` unless one was given)
            and its payload type.
        :raises UnknownMessageError, InvalidMessageError: bad arguments.
        """
        if isinstance(message, ProtoMessage):
            if fields:
                raise InvalidMessageError("fields cannot be given with a ready ProtoMessage")
            envelope = ProtoMessage()
            envelope.CopyFrom(message)
            if not envelope.HasField("payloadType"):
                raise InvalidMessageError("ProtoMessage is missing its payloadType")
            Protobuf.get_class(envelope.payloadType)  # unknown types fail here
        else:
            payload = Protobuf.build(message, **fields)
            payloadType = payloadTypeOf(payload)
            if payloadType is None:
                raise InvalidMessageError(
                    f"{payload.DESCRIPTOR.name} is not a request message (it has no payloadType)"
                )
            envelope = ProtoMessage(payloadType=payloadType, payload=payload.SerializeToString())
        if clientMsgId is not None:
            if not isinstance(clientMsgId, str) or not clientMsgId:
                raise InvalidMessageError(f"clientMsgId must be a non-empty string, got {clientMsgId!r}")
            envelope.clientMsgId = clientMsgId
        return envelope, envelope.payloadType

    def send(
        self,
        message: Any,
        clientMsgId: str | None = None,
        responseTimeoutInSeconds: float | None | object = ...,
        *,
        raw: bool = True,
        priority: bool = False,
        **fields: Any,
    ) -> Deferred[Any]:
        """Send a request and return a Deferred for its answer.

        :param message: a message object, a ready ``ProtoMessage`` (sent as is,
            never wrapped twice), or a class, name, short name or payload type
            built with *fields*.
        :param clientMsgId: the request id; unique among pending requests.
            One is generated when omitted.
        :param responseTimeoutInSeconds: seconds to wait for the answer once
            the request is written; ``None`` waits forever. Defaults to the
            factory's ``responseTimeout``.
        :param raw: ``True`` (the official SDK's contract): fire with the
            ``ProtoMessage`` answer, errors included. ``False``: fire with the
            decoded payload and errback error answers with
            :class:`~ctrader_twisted.errors.OpenApiError` subclasses.
        :param priority: write even while user traffic is held (session restore).
        :raises UnknownMessageError, InvalidMessageError: bad message or fields.
        :raises DuplicateClientMsgIdError: *clientMsgId* is already pending.
        :raises QueueFullError: too many requests wait to be written.
        :returns: a Deferred; it fails with
            :class:`~ctrader_twisted.errors.RequestTimeout`,
            :class:`~ctrader_twisted.errors.OutcomeUnknownError` (connection
            lost after the request was written),
            :class:`~ctrader_twisted.errors.NotSentError` (never written) or an
            :class:`~ctrader_twisted.errors.OpenApiError` (``raw=False`` only).
        """
        timeout = self.responseTimeout if responseTimeoutInSeconds is ... else responseTimeoutInSeconds
        if timeout is not None and (not isinstance(timeout, (int, float)) or timeout <= 0):
            raise InvalidMessageError(f"responseTimeoutInSeconds must be positive or None, got {timeout!r}")
        envelope, payloadType = self.buildEnvelope(message, clientMsgId, **fields)
        if envelope.HasField("clientMsgId"):
            msgId = envelope.clientMsgId
            if msgId in self._pending:
                raise DuplicateClientMsgIdError(f"clientMsgId {msgId!r} is already in use by a pending request")
        else:
            msgId = f"ct{next(self._ids)}"
            while msgId in self._pending:  # a caller chose this id itself
                msgId = f"ct{next(self._ids)}"
            envelope.clientMsgId = msgId
        if self._queued >= self.maxQueuedRequests and not self._canWriteNow(payloadType, priority):
            raise QueueFullError(
                f"{self._queued} requests are already waiting to be written "
                f"(maxQueuedRequests={self.maxQueuedRequests})"
            )
        request = _Request(
            msgId,
            payloadType,
            envelope.SerializeToString(),
            raw,
            timeout,  # type: ignore[arg-type]
            priority,
        )
        self._pending[msgId] = request
        request.deferred.addBoth(self._forget, request)
        if self._canWriteNow(payloadType, priority):
            self._write(request)
        else:
            self._queue.append(request)
            self._queued += 1
            self._scheduleDrain(self.limiter.wait(payloadType) if self.connection else None)
        return request.deferred

    def request(
        self,
        message: Any,
        clientMsgId: str | None = None,
        responseTimeoutInSeconds: float | None | object = ...,
        **fields: Any,
    ) -> Deferred[Any]:
        """Like :meth:`send` with ``raw=False``: fire with the decoded answer."""
        return self.send(message, clientMsgId, responseTimeoutInSeconds, raw=False, **fields)

    def sendEvent(self, message: Any, **fields: Any) -> None:
        """Write a message that expects no answer (no ``clientMsgId``), now.

        :raises NotConnectedError: there is no connection.
        """
        envelope, _ = self.buildEnvelope(message, **fields)
        if self.connection is None:
            raise NotConnectedError("cannot send an event: not connected")
        self.connection.writeFrame(envelope.SerializeToString())

    def failQueued(self, reason: CTraderError) -> None:
        """Errback every request that waits to be written with *reason*."""
        queue, self._queue, self._queued = self._queue, deque(), 0
        for request in queue:
            if not request.done:
                request.deferred.errback(reason)

    def pendingCount(self) -> int:
        """Requests whose Deferred has not fired yet (queued or written)."""
        return len(self._pending)

    def _canWriteNow(self, payloadType: int, priority: bool) -> bool:
        if self.connection is None:
            return False
        if not priority:
            if not self.trafficOpen or self._queued:
                return False
        return self.limiter.wait(payloadType) <= 0

    def _write(self, request: _Request) -> None:
        connection = self.connection
        assert connection is not None
        self.limiter.record(request.payloadType)
        request.sent = True
        try:
            connection.writeFrame(request.data)
        except Exception as e:  # e.g. a WebSocket message over the size limit
            request.deferred.errback(NotSentError(f"request could not be written: {e}", e))
            return
        request.data = b""  # written: no need to keep the bytes
        if request.timeout is not None:
            request.timer = self.clock.callLater(request.timeout, self._timedOut, request)

    def _forget(self, result: Any, request: _Request) -> Any:
        request.done = True
        if self._pending.get(request.clientMsgId) is request:
            del self._pending[request.clientMsgId]
        if not request.sent:  # cancelled while queued: free its place at once
            try:
                self._queue.remove(request)
            except ValueError:  # already taken off (failQueued)
                pass
            else:
                self._queued -= 1
        if request.timer is not None:
            if request.timer.active():
                request.timer.cancel()
            request.timer = None
        return result

    def _timedOut(self, request: _Request) -> None:
        request.timer = None
        if not request.done:
            name = Protobuf.name(request.payloadType)
            self._log.warn(
                "No answer to {name} (clientMsgId {clientMsgId}) within {timeout} s",
                name=name,
                clientMsgId=request.clientMsgId,
                timeout=request.timeout,
            )
            request.deferred.errback(RequestTimeout(name, request.clientMsgId, request.timeout or 0))

    def _scheduleDrain(self, delay: float | None) -> None:
        if delay is None or not self._queued:
            return
        call = self._drainCall
        if call is not None and call.active():
            if call.getTime() <= self.clock.seconds() + delay:
                return
            call.cancel()
        self._drainCall = self.clock.callLater(delay, self._drain)

    def _drain(self) -> None:
        """Write queued requests in order, as fast as the limits allow."""
        self._drainCall = None
        if self.connection is None:
            return
        queue = self._queue
        skipped: list[_Request] = []
        soonest: float | None = None
        try:
            while queue:
                request = queue.popleft()
                if request.done:  # cancelled or timed out while queued
                    self._queued -= 1
                    continue
                if not (self.trafficOpen or request.priority):
                    skipped.append(request)
                    continue
                wait = self.limiter.wait(request.payloadType)
                if wait > 0:
                    # Keep order within the limit that holds it; requests
                    # under another limit (or type block) may go ahead.
                    skipped.append(request)
                    soonest = wait if soonest is None else min(soonest, wait)
                    if len(skipped) > 64 and not self.limiter.isBlocked(request.payloadType):
                        break
                    continue
                self._queued -= 1
                self._write(request)
                if self.connection is None:
                    break
        finally:
            if skipped:
                queue.extendleft(reversed(skipped))
        if soonest is not None:
            self._scheduleDrain(soonest)

    # --- connection life (called by transport protocols) ------------------------

    def connectionReady(self, connection: FrameProtocol) -> None:
        """A transport is ready to carry messages (TCP connected, WebSocket open)."""
        self.connection = connection
        self._failure = None
        self.activity = 0
        self.trafficOpen = not self._holdUntilReleased
        if self.heartbeatInterval:
            self._heartbeat = LoopingCall(self._sendHeartbeat)
            self._heartbeat.clock = self.clock
            self._heartbeat.start(self.heartbeatInterval, now=False)
        if self.silenceTimeout:
            self._silentFor = 0.0
            self._activityAtCheck = 0
            self._watchdog = LoopingCall(self._checkSilence, self.silenceTimeout / 4)
            self._watchdog.clock = self.clock
            self._watchdog.start(self.silenceTimeout / 4, now=False)
        self._log.info("Connected to {host}:{port}", host=self.host, port=self.port)
        for observer in list(self._connectionObservers):
            self._safely(observer, connection)
        if self.connection is connection:
            self._scheduleDrain(0)

    def _sendHeartbeat(self) -> None:
        if self.connection is not None:
            try:
                self.connection.writeFrame(HEARTBEAT_FRAME)
            except Exception:
                # Never let a transport's refusal stop the LoopingCall for good.
                self._log.failure("Could not write a heartbeat")

    def _checkSilence(self, interval: float) -> None:
        if self.activity != self._activityAtCheck:
            self._activityAtCheck = self.activity
            self._silentFor = 0.0
            return
        self._silentFor += interval
        if self._silentFor >= (self.silenceTimeout or 0) and self.connection is not None:
            self.abortConnection(SilentConnectionError(self._silentFor))

    def abortConnection(self, cause: CTraderError) -> None:
        """Drop the current connection at once; pending requests fail with
        *cause* as the reason. Does nothing when there is no connection."""
        if self.connection is not None:
            self.protocolFailed(self.connection, cause)

    def frameReceived(self, connection: FrameProtocol, data: bytes) -> None:
        """One complete frame arrived: decode, correlate and dispatch it."""
        self.framesReceived(connection, (data,))

    def framesReceived(self, connection: FrameProtocol, frames: Iterable[bytes]) -> None:
        """Complete frames arrived (all those of one read): decode, correlate
        and dispatch each, in order.

        This is the hot path of every spot event: one call per read rather
        than per frame, lookups hoisted out of the loop, dispatch inline, and
        user code isolated with one ``try`` per call.
        """
        pending = self._pending
        callbacks = self._messageCallbacks
        listenersByType = self._listeners
        log = self._log
        if connection is self.connection:
            self.activity += 1
        for data in frames:
            if connection is not self.connection:
                return  # dropped while handling an earlier frame of this read
            try:
                message = _decodeEnvelope(data)
            except DecodeError as e:
                log.warn(
                    "Skipped a {length}-byte frame that is not a ProtoMessage: {error}",
                    length=len(data),
                    error=str(e),
                )
                continue
            payloadType = message.payloadType
            if not payloadType:  # missing (0 is no payload type)
                log.warn("Skipped a {length}-byte frame without a payloadType", length=len(data))
                continue
            msgId = message.clientMsgId
            if msgId:
                request = pending.get(msgId)
                if request is not None and request.sent and not request.done:
                    self._answer(request, message)
                elif request is None and payloadType != _HEARTBEAT_TYPE:
                    log.debug(
                        "{name} for clientMsgId {clientMsgId} matches no pending request",
                        name=Protobuf.name(payloadType),
                        clientMsgId=msgId,
                    )
            for callback in callbacks:
                try:
                    callback(message)
                except Exception:
                    log.failure("Exception in user callback {callback!r}", callback=callback)
            listeners = listenersByType.get(payloadType)
            if listeners:
                try:
                    payload = _DECODERS[payloadType](message.payload)
                except (KeyError, DecodeError) as e:
                    log.warn("Could not decode {name} for its listeners: {error}",
                             name=Protobuf.name(payloadType), error=str(e))
                    continue
                for listener in listeners:
                    try:
                        listener(payload)
                    except Exception:
                        log.failure("Exception in user callback {callback!r}", callback=listener)

    def _answer(self, request: _Request, message: ProtoMessage) -> None:
        payloadType = message.payloadType
        d = request.deferred
        if payloadType in ERROR_PAYLOAD_TYPES:
            try:
                payload = Protobuf.extract(message)
            except CTraderError:
                payload = None
            if payload is not None:
                error = errorFromPayload(payload, request.clientMsgId)
                if isinstance(error, BlockedPayloadTypeError) and error.retryAfter:
                    self.limiter.block(request.payloadType, float(error.retryAfter))
                if request.raw:
                    d.callback(message)
                else:
                    d.errback(error)
                return
        if request.raw:
            d.callback(message)
            return
        try:
            payload = Protobuf.extract(message)
        except (UnknownMessageError, InvalidMessageError) as e:
            d.errback(e)
            return
        d.callback(payload)

    def _safely(self, function: Callable[..., Any], *args: Any) -> None:
        try:
            function(*args)
        except Exception:
            self._log.failure("Exception in user callback {callback!r}", callback=function)

    def protocolFailed(self, connection: FrameProtocol, error: CTraderError) -> None:
        """The transport received something it cannot carry on from: log,
        remember the cause for the pending requests, and drop the connection."""
        self._log.error(
            "Closing the connection to {host}:{port}: {error}",
            host=self.host,
            port=self.port,
            error=str(error),
        )
        if connection is self.connection:
            self._failure = error
        connection.abort()

    def connectionLost(self, connection: FrameProtocol, reason: Failure) -> None:
        """The transport is gone: fail what was written, keep or fail the queue."""
        if connection is not self.connection:
            if self.connection is None:
                self._log.warn(
                    "Connection to {host}:{port} failed before it was ready: {why}",
                    host=self.host,
                    port=self.port,
                    why=str(reason.value),
                )
                for attemptObserver in list(self._attemptFailureObservers):
                    self._safely(attemptObserver, reason)
            return
        self.connection = None
        self.trafficOpen = False
        for loop in (self._heartbeat, self._watchdog):
            if loop is not None and loop.running:
                loop.stop()
        self._heartbeat = self._watchdog = None
        if self._drainCall is not None and self._drainCall.active():
            self._drainCall.cancel()
        self._drainCall = None
        cause: Any = self._failure or reason
        self._failure = None
        why = str(cause.value if isinstance(cause, Failure) else cause)
        self._log.info("Disconnected from {host}:{port}: {why}", host=self.host, port=self.port, why=why)
        for request in [r for r in self._pending.values() if r.sent and not r.done]:
            request.deferred.errback(
                OutcomeUnknownError(
                    f"connection lost after {Protobuf.name(request.payloadType)} "
                    f"(clientMsgId {request.clientMsgId!r}) was sent; its outcome is unknown ({why})",
                    cause,
                )
            )
        if not self.keepQueuedOnDisconnect:
            self.failQueued(NotSentError(f"connection lost before the request was sent ({why})", cause))
        for observer in list(self._disconnectionObservers):
            self._safely(observer, connection, reason)
