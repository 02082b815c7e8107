# -*- test-case-name: tests.test_factory -*-
"""Client-side pacing for the Open API's per-connection rate limits.

The proxy allows 50 requests per second on a connection, and 5 per second
for historical-data requests; past that it answers
``REQUEST_FREQUENCY_EXCEEDED``. :class:`RateLimiter` tells the request core how
long to wait before the next request of a given payload type may be written:
zero while under the limits, so nothing is delayed in the common case.

Each limit is a sliding window (the send times of the last *N* requests):
at most *N* requests in any one-second span, which is what the server counts.
A ``BLOCKED_PAYLOAD_TYPE`` answer holds one payload type until its
``retryAfter`` has passed.
"""

from __future__ import annotations

from collections import deque

from twisted.internet.interfaces import IReactorTime

from .messages.OpenApiModelMessages_pb2 import ProtoOAPayloadType

__all__ = ["RateLimiter", "HISTORICAL_PAYLOAD_TYPES"]

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


class _Window:
    __slots__ = ("limit", "period", "times")

    def __init__(self, limit: int, period: float) -> None:
        if limit < 1:
            raise ValueError(f"a rate limit must allow at least 1 request per period, got {limit}")
        if period <= 0:
            raise ValueError(f"a rate-limit period must be positive, got {period}")
        self.limit = limit
        self.period = period
        self.times: deque[float] = deque(maxlen=limit)

    def wait(self, now: float) -> float:
        times = self.times
        if len(times) < self.limit:
            return 0.0
        return max(0.0, times[0] + self.period - now)


class RateLimiter:
    """Sliding-window pacing: a general limit, a historical one, and blocks.

    :param clock: the reactor's time source.
    :param requestsPerSecond: general limit (``None``: unlimited).
    :param historicalRequestsPerSecond: limit for
        :data:`HISTORICAL_PAYLOAD_TYPES` (``None``: unlimited). Historical
        requests count against the general limit too.
    :param historicalPayloadTypes: override the set of historical payload types.
    """

    def __init__(
        self,
        clock: IReactorTime,
        requestsPerSecond: int | None = 50,
        historicalRequestsPerSecond: int | None = 5,
        historicalPayloadTypes: frozenset[int] = HISTORICAL_PAYLOAD_TYPES,
        period: float = 1.0,
    ) -> None:
        self._clock = clock
        self._general = _Window(requestsPerSecond, period) if requestsPerSecond else None
        self._historical = (
            _Window(historicalRequestsPerSecond, period) if historicalRequestsPerSecond else None
        )
        self.historicalPayloadTypes = historicalPayloadTypes
        self._blockedUntil: dict[int, float] = {}

    def wait(self, payloadType: int) -> float:
        """Seconds to wait before a request of *payloadType* may be written (0: now)."""
        now = self._clock.seconds()
        wait = 0.0
        if self._blockedUntil:
            until = self._blockedUntil.get(payloadType)
            if until is not None:
                if until > now:
                    wait = until - now
                else:
                    del self._blockedUntil[payloadType]
        if self._general is not None:
            wait = max(wait, self._general.wait(now))
        if self._historical is not None and payloadType in self.historicalPayloadTypes:
            wait = max(wait, self._historical.wait(now))
        return wait

    def record(self, payloadType: int) -> None:
        """Count a request of *payloadType* as written now."""
        now = self._clock.seconds()
        if self._general is not None:
            self._general.times.append(now)
        if self._historical is not None and payloadType in self.historicalPayloadTypes:
            self._historical.times.append(now)

    def block(self, payloadType: int, seconds: float) -> None:
        """Hold *payloadType* for *seconds* (a ``BLOCKED_PAYLOAD_TYPE`` answer)."""
        until = self._clock.seconds() + max(0.0, seconds)
        self._blockedUntil[payloadType] = max(until, self._blockedUntil.get(payloadType, 0.0))

    def isBlocked(self, payloadType: int) -> bool:
        """Whether *payloadType* is currently held by :meth:`block`."""
        until = self._blockedUntil.get(payloadType)
        return until is not None and until > self._clock.seconds()
