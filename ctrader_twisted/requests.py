# -*- test-case-name: tests.test_requests -*-
"""Correlation: one Deferred per request, matched to its answer by ``clientMsgId``.

This is the role of AMP's ``BoxDispatcher``. :class:`Correlator` owns every
request from ``send`` until its Deferred fires:

* it gives each request a ``clientMsgId`` (``ct1``, ``ct2``, ...; never
  reused, and never one a caller chose for a request still pending) and
  refuses a caller's id that is already pending;
* it encodes the request's ``ProtoMessage`` once (:func:`~ctrader_twisted.protobuf.encodeEnvelope`);
* it fires the Deferred with the first message that carries the id: the
  decoded answer, or a typed :class:`~ctrader_twisted.errors.OpenApiError`
  for an error answer (``raw`` requests get the ``ProtoMessage`` either way,
  as with the official SDK);
* it keeps every deadline: a request times out *timeout* seconds after it was
  sent while it waits to be written (:class:`~ctrader_twisted.errors.NotSentTimeout`),
  and *timeout* seconds after it was written while it waits for its answer
  (:class:`~ctrader_twisted.errors.RequestTimeout`);
* when a connection is lost it fails every request written on it with
  :class:`~ctrader_twisted.errors.OutcomeUnknownError`: never re-sent.

Deadlines are served by one timer, not a timer per request. They wait in
lanes, one first-in-first-out queue per timeout value: requests with the same
timeout reach their deadlines in the order they were set, so setting one is an
append and the earliest of a lane is its head (no heap, no per-request
timer). A deadline replaced (the request was written) or no longer needed
(the request was answered) is left where it is and skipped when it reaches
the head; the lanes are compacted when such entries outnumber the live ones.

Time the process spent frozen is not the server's: when the timer fires more
than :data:`BLOCKED_AFTER` seconds late, on the clock and on the process's
monotonic clock alike (so a test's ``Clock`` moved far ahead is not a
freeze), because the reactor was blocked (a blocking ``input()`` or
``time.sleep`` in a callback, a slow notebook cell, a suspended laptop), the
requests it finds past their deadline get their timeout once more, counted
from now, and a warning says the reactor was blocked. Their request may have
gone out only at the end of the freeze, or their answer may be waiting
unread in the socket; either way, failing them now would report the
client's own stall as the server's silence. Each request is given this
second chance once, so its Deferred still fires at most one timeout after
the reactor runs again.

Writing and queueing are the outbox's job (:mod:`ctrader_twisted.outbox`).
"""

from __future__ import annotations

import bisect
import itertools
import time
from collections import deque
from typing import Any, Callable

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from .errors import (
    ERROR_PAYLOAD_TYPES,
    CTraderError,
    DuplicateClientMsgIdError,
    InvalidMessageError,
    NotSentTimeout,
    OpenApiError,
    OutcomeUnknownError,
    RequestTimeout,
    UnknownMessageError,
    errorFromPayload,
)
from .messages.OpenApiCommonMessages_pb2 import ProtoMessage
from .protobuf import Protobuf, encodeEnvelope

__all__ = ["Request", "Correlator", "BLOCKED_AFTER"]

#: Seconds late the deadline timer may fire before the reactor counts as
#: having been blocked (see the module docstring).
BLOCKED_AFTER = 0.5

#: Called with a request and the error that answered it; returns ``True``
#: when it takes the request over (to write it again later) instead of
#: letting the error fire its Deferred.
RefusalHandler = Callable[["Request", OpenApiError], bool]


def _deadlineOf(entry: tuple[float, Request]) -> float:
    return entry[0]


class Request:
    """One request from ``send`` until its Deferred fires.

    :ivar clientMsgId: its id on the wire.
    :ivar payloadType: the request's payload type.
    :ivar data: the serialized ``ProtoMessage`` (dropped once answered).
    :ivar raw: fire with the ``ProtoMessage`` (official contract) rather than
        the decoded payload.
    :ivar timeout: seconds allowed to wait for the write, then for the
        answer (``None``: forever).
    :ivar priority: written even while user traffic is held (session restore).
    :ivar deferred: what the caller holds.
    :ivar connection: the transport it was written on, or ``None`` while unwritten.
    :ivar done: its Deferred fired (or was cancelled).
    :ivar attempts: how many times it was written (more than once only after
        the server refused it for a rate limit: it did not act on it).
    :ivar extended: its deadline passed while the reactor was blocked and it
        was given its timeout again (once).
    """

    __slots__ = (
        "clientMsgId",
        "payloadType",
        "data",
        "raw",
        "timeout",
        "priority",
        "deferred",
        "connection",
        "done",
        "attempts",
        "extended",
        "deadlineEntry",
    )

    def __init__(
        self, clientMsgId: str, payloadType: int, data: bytes, raw: bool, timeout: float | None, priority: bool
    ) -> None:
        self.clientMsgId = clientMsgId
        self.payloadType = payloadType
        self.data = data
        self.raw = raw
        self.timeout = timeout
        self.priority = priority
        self.deferred: Deferred[Any] = Deferred(self._cancelled)
        self.connection: Any = None
        self.done = False
        self.attempts = 0
        self.extended = False
        #: its live entry ``(deadline, request)`` in the correlator's
        #: deadline lanes, or ``None``
        self.deadlineEntry: tuple[float, Request] | None = None

    def _cancelled(self, d: Deferred[Any]) -> None:
        # Deferred.cancel() errbacks with CancelledError after this returns;
        # the correlator's callback then forgets the request.
        self.done = True

    @property
    def sent(self) -> bool:
        """Whether it was written to a connection."""
        return self.connection is not None

    def __repr__(self) -> str:
        state = "done" if self.done else ("written" if self.sent else "unwritten")
        return f"<Request {Protobuf.name(self.payloadType)} {self.clientMsgId!r} {state}>"


class Correlator:
    """Pending requests, their ids and deadlines, and their answers.

    :param clock: the time source for deadlines.
    :param onForget: called with each request once its Deferred fired
        (the outbox frees its queue place).
    :param onRefused: see :data:`RefusalHandler`; ``None``: errors always fire.
    """

    _log = Logger()
    #: The process's own clock, which a blocked reactor cannot stop (a test's
    #: Clock moving ahead is not a blocked process).
    _monotonic: Callable[[], float] = staticmethod(time.monotonic)

    def __init__(
        self,
        clock: IReactorTime,
        onForget: Callable[[Request], None] | None = None,
        onRefused: RefusalHandler | None = None,
    ) -> None:
        self.clock = clock
        #: clientMsgId -> request, for every request whose Deferred has not fired
        self.pending: dict[str, Request] = {}
        self._ids = itertools.count(1)
        self._onForget = onForget
        self.onRefused = onRefused
        # timeout -> deadline entries (deadline, request) in deadline order
        self._lanes: dict[float, deque[tuple[float, Request]]] = {}
        self._entries = 0  # entries in all lanes
        self._live = 0  # requests with a deadline
        self._timer: IDelayedCall | None = None
        # When the timer is due, on the clock and on the process's monotonic
        # clock (a test's Clock jumps ahead without the process being blocked).
        self._due = 0.0
        self._dueReal = 0.0

    def __len__(self) -> int:
        return len(self.pending)

    # --- creating ----------------------------------------------------------------

    def create(
        self,
        payloadType: int,
        payload: bytes,
        clientMsgId: str | None,
        *,
        raw: bool,
        timeout: float | None,
        priority: bool = False,
    ) -> Request:
        """Register a new request and start its deadline.

        :param payload: the serialized request message.
        :param clientMsgId: the caller's id, or ``None`` for a generated one.
        :raises DuplicateClientMsgIdError: *clientMsgId* is already pending.
        """
        pending = self.pending
        if clientMsgId is None:
            clientMsgId = f"ct{next(self._ids)}"
            while clientMsgId in pending:  # a caller chose this id itself
                clientMsgId = f"ct{next(self._ids)}"
        elif clientMsgId in pending:
            raise DuplicateClientMsgIdError(f"clientMsgId {clientMsgId!r} is already in use by a pending request")
        request = Request(
            clientMsgId, payloadType, encodeEnvelope(payloadType, payload, clientMsgId), raw, timeout, priority
        )
        pending[clientMsgId] = request
        request.deferred.addBoth(self._forget, request)
        if timeout is not None:
            self._setDeadline(request, timeout)
        return request

    def written(self, request: Request, connection: Any) -> None:
        """*request* was written on *connection*: its answer is due within its
        timeout. (Its bytes are kept until it is answered, in case the server
        refuses it for a rate limit and it must be written again.)"""
        request.connection = connection
        request.attempts += 1
        if request.timeout is not None:
            self._setDeadline(request, request.timeout)

    def unwritten(self, request: Request) -> None:
        """The server refused *request* without acting on it (a rate limit):
        it waits to be written again, under the deadline it has left."""
        request.connection = None

    def _forget(self, result: Any, request: Request) -> Any:
        request.done = True
        request.data = b""
        if self.pending.get(request.clientMsgId) is request:
            del self.pending[request.clientMsgId]
        self._clearDeadline(request)
        if self._onForget is not None:
            self._onForget(request)
        return result

    # --- answering ------------------------------------------------------------------

    def answer(self, request: Request, message: ProtoMessage) -> None:
        """Fire *request* with *message*, the first message carrying its id."""
        payloadType = message.payloadType
        d = request.deferred
        if payloadType in ERROR_PAYLOAD_TYPES:
            try:
                payload = Protobuf.extract(message)
            except CTraderError:
                payload = None
            if payload is not None:
                error = errorFromPayload(payload, request.clientMsgId)
                if self.onRefused is not None and self.onRefused(request, error):
                    return
                if request.raw:
                    d.callback(message)
                else:
                    d.errback(error)
                return
        if request.raw:
            d.callback(message)
            return
        try:
            decoded = Protobuf.extract(message)
        except (UnknownMessageError, InvalidMessageError) as e:
            d.errback(e)
            return
        d.callback(decoded)

    def failWritten(self, connection: Any, why: str, cause: Any) -> None:
        """*connection* is gone: fail every request written on it, at once,
        with :class:`~ctrader_twisted.errors.OutcomeUnknownError`."""
        lost = [r for r in self.pending.values() if r.connection is connection and not r.done]
        for request in lost:
            request.deferred.errback(
                OutcomeUnknownError(
                    f"connection lost after {Protobuf.name(request.payloadType)} "
                    f"(clientMsgId {request.clientMsgId!r}) was sent; its outcome is unknown ({why})",
                    cause,
                )
            )

    # --- deadlines --------------------------------------------------------------------

    def _setDeadline(self, request: Request, seconds: float) -> None:
        deadline = self.clock.seconds() + seconds
        entry = (deadline, request)
        if request.deadlineEntry is None:
            self._live += 1
        request.deadlineEntry = entry
        lane = self._lanes.get(seconds)
        if lane is None:
            lane = self._lanes[seconds] = deque()
        if lane and deadline < lane[-1][0]:  # the clock went back: keep the lane in order
            lane.insert(bisect.bisect_right(lane, deadline, key=_deadlineOf), entry)
        else:
            lane.append(entry)
        self._entries += 1
        timer = self._timer
        if timer is None:
            self._timer = self.clock.callLater(seconds, self._expire)
            self._due, self._dueReal = deadline, self._monotonic() + seconds
        elif deadline < self._due:
            timer.reset(seconds)
            self._due, self._dueReal = deadline, self._monotonic() + seconds

    def _clearDeadline(self, request: Request) -> None:
        entry = request.deadlineEntry
        if entry is None:
            return
        request.deadlineEntry = None
        self._live -= 1
        if not self._live:
            # Nothing left to time out: no entries, no timer either.
            self._lanes.clear()
            self._entries = 0
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            return
        lane = self._lanes.get(request.timeout)  # type: ignore[arg-type]
        if lane:  # answered in order: the head goes at once
            while lane and lane[0][1].deadlineEntry is not lane[0]:
                lane.popleft()
                self._entries -= 1
        if self._entries > 2 * self._live + 64:
            # Most entries belong to requests answered out of order behind
            # one still waiting: keep only the live ones, so the lanes stay
            # as small as the number of requests in flight.
            for key, lane in list(self._lanes.items()):
                kept = deque(entry for entry in lane if entry[1].deadlineEntry is entry)
                if kept:
                    self._lanes[key] = kept
                else:
                    del self._lanes[key]
            self._entries = self._live

    def _expire(self) -> None:
        self._timer = None
        now = self.clock.seconds()
        blocked = min(now - self._due, self._monotonic() - self._dueReal)
        lanes = self._lanes
        if blocked > BLOCKED_AFTER:
            self._extendAfterBlock(now, blocked)
        for key, lane in list(lanes.items()):
            # (a timed-out request's callbacks may empty the lanes: stop then)
            while lane and lane[0][0] <= now and lanes.get(key) is lane:
                entry = lane.popleft()
                self._entries -= 1
                request = entry[1]
                if request.deadlineEntry is not entry:
                    continue
                request.deadlineEntry = None
                self._live -= 1
                self._timedOut(request)
        first: float | None = None
        for key, lane in list(lanes.items()):
            while lane and lane[0][1].deadlineEntry is not lane[0]:
                lane.popleft()
                self._entries -= 1
            if lane:
                first = lane[0][0] if first is None else min(first, lane[0][0])
            elif lanes.get(key) is lane:
                del lanes[key]
        if first is not None:
            # A callback above may have set a timer for a later deadline.
            delay = max(0.0, first - self.clock.seconds())
            if self._timer is None:
                self._timer = self.clock.callLater(delay, self._expire)
                self._due, self._dueReal = first, self._monotonic() + delay
            elif first < self._due:
                self._timer.reset(delay)
                self._due, self._dueReal = first, self._monotonic() + delay

    def _extendAfterBlock(self, now: float, blocked: float) -> None:
        """The timer fired *blocked* seconds late: give the requests past their
        deadline, once each, their timeout again from *now*."""
        extended = 0
        for lane in list(self._lanes.values()):
            for entry in [e for e in lane if e[0] <= now]:
                request = entry[1]
                if request.deadlineEntry is entry and not request.extended and request.timeout is not None:
                    request.extended = True
                    self._live -= 1  # _setDeadline counts it again
                    request.deadlineEntry = None
                    self._setDeadline(request, request.timeout)
                    extended += 1
        if extended:
            self._log.warn(
                "The reactor was blocked for {seconds:.1f} s (a blocking call in a callback?): "
                "{count} request(s) past their deadline get their timeout again",
                seconds=blocked,
                count=extended,
            )

    def _timedOut(self, request: Request) -> None:
        if request.done:
            return
        name = Protobuf.name(request.payloadType)
        timeout = request.timeout or 0.0
        if request.sent:
            self._log.warn(
                "No answer to {name} (clientMsgId {clientMsgId}) within {timeout} s",
                name=name,
                clientMsgId=request.clientMsgId,
                timeout=timeout,
            )
            request.deferred.errback(RequestTimeout(name, request.clientMsgId, timeout))
        else:
            request.deferred.errback(NotSentTimeout(name, request.clientMsgId, timeout))

    def stop(self) -> None:
        """Cancel the deadline timer (nothing is pending any more)."""
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
