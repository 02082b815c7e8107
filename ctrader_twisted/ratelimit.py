# -*- test-case-name: tests.test_outbox,tests.test_factory -*-
"""Client-side pacing for the Open API's per-connection rate limits.

The proxy allows 50 requests per second on a connection, and 5 per second
for historical-data requests; past that it answers
``REQUEST_FREQUENCY_EXCEEDED``. :class:`RateLimiter` tells the outbox how long
to wait before the next request of a given payload type may be written: zero
while under the limits, so nothing is delayed in the common case.

The server counts requests when they **arrive**, and requests written evenly
can arrive bunched (the network and the proxy add varying delays). So each
limit is a sliding window a little longer than a second: at most *N* writes
in any ``1 + margin`` seconds (``margin`` 0.1 s by default) means at most *N*
arrivals in any second as long as the delays vary by less than the margin.
The simulator uses the same class with no margin, counting arrivals.

When the server refuses anyway, :meth:`RateLimiter.backoff` says how long to
hold that payload type before the request is written again, growing with
each refusal in a row; a ``BLOCKED_PAYLOAD_TYPE`` answer holds it for its
``retryAfter`` (:meth:`RateLimiter.block`). Numbers from the wire are bounded:
a ``retryAfter`` over :data:`MAX_BLOCK_SECONDS` holds for that long only.
"""

from __future__ import annotations

import math
from collections import deque

from twisted.internet.interfaces import IReactorTime

from .messages.OpenApiModelMessages_pb2 import ProtoOAPayloadType

__all__ = ["RateLimiter", "HISTORICAL_PAYLOAD_TYPES", "MAX_BLOCK_SECONDS", "DEFAULT_MARGIN"]

#: Payload types paced by the historical-data limit: trend bars, tick data,
#: deal, order and cash-flow history (the docs name the first three; the
#: others tripped the limit for users, so they are paced the same way).
HISTORICAL_PAYLOAD_TYPES: frozenset[int] = frozenset(
    {
        ProtoOAPayloadType.PROTO_OA_GET_TRENDBARS_REQ,
        ProtoOAPayloadType.PROTO_OA_GET_TICKDATA_REQ,
        ProtoOAPayloadType.PROTO_OA_DEAL_LIST_REQ,
        ProtoOAPayloadType.PROTO_OA_CASH_FLOW_HISTORY_LIST_REQ,
        ProtoOAPayloadType.PROTO_OA_ORDER_LIST_REQ,
        ProtoOAPayloadType.PROTO_OA_DEAL_LIST_BY_POSITION_ID_REQ,
        ProtoOAPayloadType.PROTO_OA_ORDER_LIST_BY_POSITION_ID_REQ,
    }
)

#: The longest a payload type is held for one ``BLOCKED_PAYLOAD_TYPE``
#: answer, whatever its ``retryAfter`` says (seconds).
MAX_BLOCK_SECONDS = 300.0

#: Seconds added to each one-second window (see the module docstring).
DEFAULT_MARGIN = 0.1

#: First and largest hold after ``REQUEST_FREQUENCY_EXCEEDED`` (seconds).
_BACKOFF_FIRST = 0.25
_BACKOFF_MAX = 8.0
#: Seconds without a refusal after which the backoff starts from its first step.
_BACKOFF_RESET = 30.0


class _Window:
    __slots__ = ("limit", "period", "times")

    def __init__(self, limit: int, period: float) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"a rate limit must allow at least 1 request per period, got {limit!r}")
        if not (math.isfinite(period) and period > 0):
            raise ValueError(f"a rate-limit period must be a positive number, got {period!r}")
        self.limit = limit
        self.period = period
        self.times: deque[float] = deque(maxlen=limit)

    def wait(self, now: float) -> float:
        times = self.times
        if len(times) < self.limit:
            return 0.0
        return max(0.0, times[0] + self.period - now)


class RateLimiter:
    """Sliding-window pacing: a general limit, a historical one, and holds.

    :param clock: the reactor's time source.
    :param requestsPerSecond: general limit (``None``: unlimited).
    :param historicalRequestsPerSecond: limit for
        :data:`HISTORICAL_PAYLOAD_TYPES` (``None``: unlimited). Historical
        requests count against the general limit too.
    :param historicalPayloadTypes: override the set of historical payload types.
    :param period: the length of the server's window, seconds.
    :param margin: seconds added to *period* (see the module docstring);
        0 counts exactly as the server does (the simulator).
    """

    def __init__(
        self,
        clock: IReactorTime,
        requestsPerSecond: int | None = 50,
        historicalRequestsPerSecond: int | None = 5,
        historicalPayloadTypes: frozenset[int] = HISTORICAL_PAYLOAD_TYPES,
        period: float = 1.0,
        margin: float = DEFAULT_MARGIN,
    ) -> None:
        if not (isinstance(margin, (int, float)) and math.isfinite(margin) and margin >= 0):
            raise ValueError(f"margin must be a non-negative number of seconds, got {margin!r}")
        self._clock = clock
        window = self._window = period + margin
        self._general = _Window(requestsPerSecond, window) if requestsPerSecond else None
        self._historical = _Window(historicalRequestsPerSecond, window) if historicalRequestsPerSecond else None
        self.historicalPayloadTypes = historicalPayloadTypes
        self._heldUntil: dict[int, float] = {}
        self._refusals: dict[int, tuple[int, float]] = {}

    @property
    def requestsPerSecond(self) -> int | None:
        """The general limit (``None``: unlimited)."""
        return self._general.limit if self._general is not None else None

    @requestsPerSecond.setter
    def requestsPerSecond(self, limit: int | None) -> None:
        period = self._window
        self._general = _Window(limit, period) if limit else None

    @property
    def window(self) -> float:
        """The length of each sliding window, seconds (the period plus the margin)."""
        return self._window

    @property
    def historicalRequestsPerSecond(self) -> int | None:
        """The historical-data limit (``None``: unlimited)."""
        return self._historical.limit if self._historical is not None else None

    def wait(self, payloadType: int) -> float:
        """Seconds to wait before a request of *payloadType* may be written (0: now)."""
        now = self._clock.seconds()
        wait = 0.0
        if self._heldUntil:
            until = self._heldUntil.get(payloadType)
            if until is not None:
                if until > now:
                    wait = until - now
                else:
                    del self._heldUntil[payloadType]
        if self._general is not None:
            wait = max(wait, self._general.wait(now))
        if self._historical is not None and payloadType in self.historicalPayloadTypes:
            wait = max(wait, self._historical.wait(now))
        return wait

    def wouldExceed(self, payloadType: int) -> bool:
        """Whether a request of *payloadType* now would exceed a limit or a hold."""
        return self.wait(payloadType) > 0

    def record(self, payloadType: int) -> None:
        """Count a request of *payloadType* as written (or arrived) now."""
        now = self._clock.seconds()
        if self._general is not None:
            self._general.times.append(now)
        if self._historical is not None and payloadType in self.historicalPayloadTypes:
            self._historical.times.append(now)

    def block(self, payloadType: int, seconds: float) -> float:
        """Hold *payloadType* for *seconds*, bounded to :data:`MAX_BLOCK_SECONDS`
        (a ``BLOCKED_PAYLOAD_TYPE`` answer; non-finite or negative values
        hold for the maximum or not at all).

        :returns: the hold actually applied, seconds.
        """
        if math.isnan(seconds) or seconds <= 0:
            return 0.0
        seconds = min(float(seconds), MAX_BLOCK_SECONDS)
        until = self._clock.seconds() + seconds
        self._heldUntil[payloadType] = max(until, self._heldUntil.get(payloadType, 0.0))
        return seconds

    def backoff(self, payloadType: int) -> float:
        """The server refused a request of *payloadType* for its rate limit:
        hold the type for a delay that doubles with each refusal in a row
        (0.25 s, 0.5 s, ... up to 8 s; a refusal more than
        30 s after the previous one starts again).

        :returns: the hold applied, seconds.
        """
        now = self._clock.seconds()
        count, last = self._refusals.get(payloadType, (0, now))
        count = count + 1 if now - last < _BACKOFF_RESET else 1
        self._refusals[payloadType] = (count, now)
        return self.block(payloadType, min(_BACKOFF_FIRST * 2 ** (count - 1), _BACKOFF_MAX))

    def isBlocked(self, payloadType: int) -> bool:
        """Whether *payloadType* is currently held."""
        until = self._heldUntil.get(payloadType)
        return until is not None and until > self._clock.seconds()
