# -*- test-case-name: tests.test_outbox -*-
"""The outbox: requests accepted but not yet written.

:class:`Outbox` decides when each request is written:

* **at once** when there is a ready connection, user traffic is open, nothing
  is queued ahead of it and the rate limits (:mod:`ctrader_twisted.ratelimit`)
  allow it: no timer, no batching, no added latency;
* otherwise it **queues** it (bounded: :class:`~ctrader_twisted.errors.QueueFullError`
  past *maxQueued*) and drains the queue in order as soon as a connection is
  ready, traffic opens and the limits allow, with one timer for the whole
  queue;
* the **traffic gate**: a managed session holds user requests after every
  connect until the client has restored it (:meth:`Outbox.hold`, :meth:`Outbox.release`);
  priority requests (the restore's own) pass the gate.

A request that leaves the queue without being written (cancelled, timed
out) frees its place at once.
"""

from __future__ import annotations

from collections import deque
from typing import Callable

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from .errors import CTraderError, NotSentError, QueueFullError
from .interfaces import IFrameTransport
from .ratelimit import RateLimiter
from .requests import Request

__all__ = ["Outbox"]

#: How far past a request held by its limit the drain looks for requests
#: under another limit that may go ahead.
_LOOKAHEAD = 64


class Outbox:
    """The bounded queue, traffic gate and pacing of one client.

    :param clock: time source for pacing.
    :param limiter: the rate limits to respect.
    :param maxQueued: bound on requests waiting to be written.
    :param onWritten: called with each request and the connection just before
        its bytes are written (the correlator starts its answer deadline).
    """

    _log = Logger()

    def __init__(
        self,
        clock: IReactorTime,
        limiter: RateLimiter,
        maxQueued: int,
        onWritten: Callable[[Request, IFrameTransport], None],
    ) -> None:
        if maxQueued < 1:
            raise ValueError(f"maxQueuedRequests must be at least 1, got {maxQueued}")
        self.clock = clock
        self.limiter = limiter
        self.maxQueued = maxQueued
        self._onWritten = onWritten
        #: The ready connection requests are written on, or ``None``.
        self.connection: IFrameTransport | None = None
        #: Whether user traffic waits for :meth:`release` after each connect.
        self.gated = False
        #: Whether user traffic may be written now.
        self.open = False
        self._queue: deque[Request] = deque()
        self._queued = 0
        self._drainCall: IDelayedCall | None = None

    def __len__(self) -> int:
        return self._queued

    # --- connection life -------------------------------------------------------

    def connected(self, connection: IFrameTransport) -> None:
        """*connection* is ready: write what waits (unless the gate holds it)."""
        self.connection = connection
        self.open = not self.gated
        self._scheduleDrain(0)

    def disconnected(self) -> None:
        """The connection is gone: keep the queue, write nothing until the next."""
        self.connection = None
        self.open = False
        if self._drainCall is not None and self._drainCall.active():
            self._drainCall.cancel()
        self._drainCall = None

    # --- the traffic gate ---------------------------------------------------------

    def hold(self) -> None:
        """From now on, hold user requests after every connect until :meth:`release`."""
        self.gated = True
        self.open = False

    def release(self) -> None:
        """Let queued and new user requests be written on the current connection."""
        if self.connection is not None:
            self.open = True
            self._scheduleDrain(0)

    # --- requests --------------------------------------------------------------------

    def submit(self, request: Request) -> None:
        """Write *request* now if it may go, else queue it.

        :raises QueueFullError: the queue is full and it cannot go now.
        """
        if self._writableNow(request):
            self._write(request)
            return
        if self._queued >= self.maxQueued:
            raise QueueFullError(
                f"{self._queued} requests are already waiting to be written "
                f"(maxQueuedRequests={self.maxQueued})"
            )
        self._queue.append(request)
        self._queued += 1
        if self.connection is not None:
            self._scheduleDrain(self.limiter.wait(request.payloadType))

    def requeue(self, request: Request) -> None:
        """Put *request* back at the head of the queue: the server refused it
        for a rate limit, so it did not act on it, and it is written again as
        soon as the limits (and the hold the refusal set) allow."""
        self._queue.appendleft(request)
        self._queued += 1
        if self.connection is not None:
            self._scheduleDrain(self.limiter.wait(request.payloadType))

    def forget(self, request: Request) -> None:
        """*request* fired (answered, failed, cancelled): free its queue place
        at once if it never left the queue."""
        if request.sent:
            return
        try:
            self._queue.remove(request)
        except ValueError:  # not queued (written, or already failed)
            return
        self._queued -= 1

    def failQueued(self, reason: CTraderError) -> None:
        """Errback every request waiting to be written with *reason*."""
        queue, self._queue, self._queued = self._queue, deque(), 0
        for request in queue:
            if not request.done:
                request.deferred.errback(reason)

    # --- writing ------------------------------------------------------------------------

    def _writableNow(self, request: Request) -> bool:
        if self.connection is None:
            return False
        if not request.priority and (not self.open or self._queued):
            return False
        return self.limiter.wait(request.payloadType) <= 0

    def _write(self, request: Request) -> None:
        connection = self.connection
        assert connection is not None
        self.limiter.record(request.payloadType)
        data = request.data
        self._onWritten(request, connection)
        try:
            connection.writeFrame(data)
        except Exception as e:  # e.g. a WebSocket message over the size limit
            request.connection = None
            request.deferred.errback(NotSentError(f"request could not be written: {e}", e))

    def _scheduleDrain(self, delay: float) -> None:
        if not self._queued:
            return
        call = self._drainCall
        if call is not None and call.active():
            if call.getTime() <= self.clock.seconds() + delay:
                return
            call.cancel()
        self._drainCall = self.clock.callLater(delay, self._drain)

    def _drain(self) -> None:
        """Write queued requests in order, as fast as the gate and limits allow.

        Requests stay in order within the limit that holds them; a request
        under another limit (or of a payload type not blocked) may go ahead
        of one that waits.
        """
        self._drainCall = None
        queue = self._queue
        skipped: list[Request] = []
        soonest: float | None = None
        limiter = self.limiter
        try:
            while queue and self.connection is not None:
                request = queue.popleft()
                if request.done:  # cancelled or timed out while queued
                    self._queued -= 1
                    continue
                if not (self.open or request.priority):
                    skipped.append(request)
                    continue
                wait = limiter.wait(request.payloadType)
                if wait > 0:
                    skipped.append(request)
                    soonest = wait if soonest is None else min(soonest, wait)
                    if len(skipped) > _LOOKAHEAD and not limiter.isBlocked(request.payloadType):
                        break
                    continue
                self._queued -= 1
                self._write(request)
        finally:
            if skipped:
                queue.extendleft(reversed(skipped))
        if soonest is not None and self.connection is not None:
            self._scheduleDrain(soonest)

    def __repr__(self) -> str:
        return f"<Outbox queued={self._queued} open={self.open} gated={self.gated}>"

    def queued(self) -> list[Request]:
        """The requests waiting to be written, in order (a copy)."""
        return [r for r in self._queue if not r.done]
