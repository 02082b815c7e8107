# -*- test-case-name: tests.test_trading,tests.test_trading_parts,tests.test_trading_session,tests.test_units -*-
"""Subscriptions to typed events: callbacks with a handle, and async iterators.

:class:`Subscription` is what :meth:`Trader.on
<ctrader_twisted.trading.Trader.on>` returns: ``cancel()`` removes the
callback and releases the server subscription it holds (the last holder's
release unsubscribes). :class:`EventStream` is an async iterator over the same
events: it subscribes on first use and releases when closed (``aclose()``,
leaving an ``async with`` block, or garbage collection).

Awaiting works both in Twisted coroutines (``ensureDeferred``,
``inlineCallbacks``) and in asyncio tasks under Twisted's asyncio reactor:
:func:`awaitable` picks ``Deferred.asFuture`` when it runs in an asyncio task.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import deque
from typing import Any, Callable, Generator, Generic, TypeVar

from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import Logger

__all__ = ["Subscription", "EventStream", "awaitable", "Awaitable"]

_T = TypeVar("_T")


class Awaitable(Generic[_T]):
    """A Deferred made awaitable from Twisted coroutines and asyncio tasks alike."""

    __slots__ = ("deferred",)

    def __init__(self, deferred: Deferred[_T]) -> None:
        self.deferred = deferred

    def __await__(self) -> Generator[Any, None, _T]:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None and asyncio.current_task(loop) is not None:
            return (yield from self.deferred.asFuture(loop).__await__())
        return (yield from self.deferred.__await__())


def awaitable(deferred: Deferred[_T]) -> Awaitable[_T]:
    """*deferred* as something both ``ensureDeferred`` coroutines and asyncio
    tasks (under ``asyncioreactor``) can ``await``."""
    return Awaitable(deferred)


class Subscription:
    """A registered callback and the server subscription it holds.

    :ivar active: false once cancelled.
    """

    _log = Logger()

    def __init__(self, cancel: Callable[[], None], ready: Callable[[], Deferred[None]]) -> None:
        self._cancel: Callable[[], None] | None = cancel
        self._ready = ready

    @property
    def active(self) -> bool:
        """Whether it still delivers events."""
        return self._cancel is not None

    def whenReady(self) -> Deferred[None]:
        """A new Deferred firing once the server subscription is in place
        (at once when none is needed), or failing with why it could not be
        made (an unknown symbol on the server, ...)."""
        return self._ready()

    def cancel(self) -> None:
        """Stop delivering events and release the server subscription (the
        last holder's release unsubscribes). Cancelling twice does nothing."""
        cancel, self._cancel = self._cancel, None
        if cancel is not None:
            cancel()


_END: Any = object()


class EventStream(Generic[_T]):
    """An async iterator of typed events (see the module docstring).

    :param start: registers the stream's callback and returns its
        :class:`Subscription`; called on first use.
    :param maxQueued: events kept while nobody awaits; when full, the oldest
        is dropped (counted in :attr:`dropped`): a slow consumer sees the
        newest prices, not an ever-growing backlog.

    Use it as::

        async with trader.stream(Spot, symbol="EURUSD") as spots:
            async for spot in spots:
                ...

    or ``async for`` alone followed by ``await stream.aclose()``.
    """

    def __init__(self, start: Callable[[Callable[[_T], None]], Subscription], maxQueued: int = 10_000) -> None:
        if isinstance(maxQueued, bool) or not isinstance(maxQueued, int) or maxQueued < 1:
            raise ValueError(f"maxQueued must be a positive integer, got {maxQueued!r}")
        self._start = start
        self._queue: deque[Any] = deque()
        self._maxQueued = maxQueued
        self._waiter: Deferred[Any] | None = None
        self._subscription: Subscription | None = None
        self._closed = False
        #: events dropped because the queue was full
        self.dropped = 0

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open" if self._subscription is not None else "not started"
        return f"<EventStream {state} queued={len(self._queue)} dropped={self.dropped}>"

    def _push(self, event: Any) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            waiter.callback(event)
            return
        queue = self._queue
        if len(queue) >= self._maxQueued:
            queue.popleft()
            self.dropped += 1
        queue.append(event)

    def _ensureStarted(self) -> None:
        if self._subscription is None and not self._closed:
            # The subscription holds the stream weakly: a stream its consumer
            # dropped (a ``break`` without aclose()) is collected, and releases.
            ref = weakref.ref(self)

            def push(event: Any) -> None:
                stream = ref()
                if stream is not None:
                    stream._push(event)

            self._subscription = self._start(push)

    def whenReady(self) -> Deferred[None]:
        """Start the stream now; a Deferred firing when its server
        subscription is in place (see :meth:`Subscription.whenReady`)."""
        self._ensureStarted()
        assert self._subscription is not None or self._closed
        if self._subscription is None:
            return succeed(None)
        return self._subscription.whenReady()

    def __aiter__(self) -> EventStream[_T]:
        return self

    def __anext__(self) -> Awaitable[_T]:
        return Awaitable(self._next())

    def _next(self) -> Deferred[_T]:
        self._ensureStarted()
        if self._queue:
            return succeed(self._queue.popleft())
        if self._closed:
            return fail(StopAsyncIteration())
        if self._waiter is not None:
            raise RuntimeError("another consumer is already awaiting this stream")
        waiter: Deferred[Any] = Deferred()
        self._waiter = waiter

        def ended(event: Any) -> Any:
            if event is _END:
                raise StopAsyncIteration
            return event

        return waiter.addCallback(ended)

    def close(self) -> None:
        """End the stream: release its subscription; a consumer awaiting
        gets the end of the iteration. Closing twice does nothing."""
        if self._closed:
            return
        self._closed = True
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            subscription.cancel()
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            waiter.callback(_END)

    def aclose(self) -> Awaitable[None]:
        """:meth:`close`, awaitable (the async-iterator protocol's name)."""
        self.close()
        return Awaitable(succeed(None))

    async def __aenter__(self) -> EventStream[_T]:
        self._ensureStarted()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        # Left by a ``break`` without aclose(): release the subscription.
        subscription = getattr(self, "_subscription", None)  # None if __init__ refused its arguments
        if subscription is not None and not self._closed:
            self._closed = True
            subscription.cancel()
