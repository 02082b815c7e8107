"""Small Deferred helpers of the trading layer: one outcome for many waiters."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from twisted.internet.defer import Deferred, FirstError, fail, gatherResults, succeed
from twisted.python.failure import Failure

__all__ = ["Shared", "gather", "failed"]

_T = TypeVar("_T")
_PENDING: Any = object()


class Shared(Generic[_T]):
    """The outcome of one Deferred, handed to any number of waiters.

    Each :meth:`wait` gets a new Deferred with the same result (or failure),
    whether it asks before or after the outcome; the source's failure is
    consumed here, so an outcome nobody waited for is not reported as an
    unhandled error.
    """

    def __init__(self, source: Deferred[_T]) -> None:
        self._result: Any = _PENDING
        self._waiters: list[Deferred[_T]] = []
        source.addBoth(self._fire)

    @property
    def done(self) -> bool:
        """Whether the outcome is known."""
        return self._result is not _PENDING

    @property
    def failed(self) -> bool:
        """Whether the outcome is a failure."""
        return isinstance(self._result, Failure)

    def _fire(self, result: Any) -> None:
        self._result = result
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            _deliver(waiter, result)

    def wait(self) -> Deferred[_T]:
        """A new Deferred with the outcome."""
        if self._result is _PENDING:
            waiter: Deferred[_T] = Deferred()
            self._waiters.append(waiter)
            return waiter
        if isinstance(self._result, Failure):
            return fail(self._result)
        return succeed(self._result)


def _deliver(waiter: Deferred[Any], result: Any) -> None:
    if isinstance(result, Failure):
        waiter.errback(result)
    else:
        waiter.callback(result)


def gather(waits: list[Deferred[Any]]) -> Deferred[list[Any]]:
    """Fire with every result once all fired; fail with the first failure
    itself (not wrapped in ``FirstError``)."""
    d: Deferred[list[Any]] = gatherResults(waits, consumeErrors=True)

    def unwrap(failure: Failure) -> Failure:
        if failure.check(FirstError):
            return failure.value.subFailure  # type: ignore[no-any-return]
        return failure

    return d.addErrback(unwrap)


def failed(error: BaseException) -> Deferred[Any]:
    """A Deferred failed with *error* (with a traceback-free Failure)."""
    return fail(error)
