"""The simulated market: live prices, live trend bars, depth, and history.

Two price sources, both deterministic for a given seed:

* **live prices** follow a seeded random walk (one step per symbol every
  ``spotInterval`` seconds of the simulator's clock), starting from the
  recorded price levels of :mod:`.data`;
* **history** (trend bars, tick data) comes from a deterministic function of
  time (slow waves plus hashed noise around the recorded level), so the same
  request always returns the same bars, however the window is cut. There is
  history only in each symbol's weekly trading sessions (no ticks and no
  bars at weekends and in the daily breaks), and ticks are denser in the
  London and New York hours than in the Asian ones.

Prices are integers in 1/100000 of a unit, rounded to each symbol's digits.
"""

from __future__ import annotations

import calendar
import math
import random
import time as _time
from dataclasses import dataclass
from typing import Any, Iterator

from ..messages.OpenApiMessages_pb2 import ProtoOASpotEvent
from ..messages.OpenApiModelMessages_pb2 import (
    ProtoOADepthQuote,
    ProtoOAQuoteType,
    ProtoOATrendbar,
    ProtoOATrendbarPeriod as Period,
)
from ..history import TRENDBAR_WINDOW_MS
from .data import SYMBOLS

__all__ = ["Market", "SymbolState", "LiveBar", "PERIOD_MINUTES", "MAX_WINDOW_MS", "TICKS_PER_SECOND", "HOURLY_ACTIVITY"]

#: Minutes per ``ProtoOATrendbarPeriod`` (W1 and MN1 are aligned specially).
PERIOD_MINUTES: dict[int, int] = {
    Period.M1: 1, Period.M2: 2, Period.M3: 3, Period.M4: 4, Period.M5: 5, Period.M10: 10, Period.M15: 15,
    Period.M30: 30, Period.H1: 60, Period.H4: 240, Period.H12: 720, Period.D1: 1440, Period.W1: 10080,
    Period.MN1: 43200,
}

#: Longest ``GetTrendbars`` window per period, in ms (one table for the
#: library and the simulator: :data:`ctrader_twisted.history.TRENDBAR_WINDOW_MS`).
MAX_WINDOW_MS: dict[int, int] = TRENDBAR_WINDOW_MS

#: Average history ticks per second of a symbol at activity 1 (see
#: :data:`HOURLY_ACTIVITY`): about 60,000 a day, 300,000 a week, per side.
TICKS_PER_SECOND = 0.75

#: Relative tick activity per UTC hour: quiet in the Asian hours, busiest
#: when London and New York overlap (13:00-16:00 UTC).
HOURLY_ACTIVITY: tuple[float, ...] = (
    0.35, 0.3, 0.3, 0.35, 0.4, 0.5, 0.6, 0.9, 1.3, 1.4, 1.3, 1.2,
    1.4, 1.8, 1.9, 1.7, 1.3, 1.0, 0.8, 0.7, 0.6, 0.5, 0.4, 0.35,
)

_WEEK = 604800
#: A Sunday 00:00 UTC (1970-01-04): the weekly schedules count from Sundays.
_SUNDAY = 3 * 86400

_TWO_PI = 2 * math.pi


def _mix(x: int) -> int:
    """A cheap 32-bit integer hash (deterministic across runs)."""
    x &= 0xFFFFFFFF
    x = ((x >> 16) ^ x) * 0x45D9F3B & 0xFFFFFFFF
    x = ((x >> 16) ^ x) * 0x45D9F3B & 0xFFFFFFFF
    return (x >> 16) ^ x


def barStart(period: Period, minute: int) -> int:
    """The first minute of the bar of *period* that contains *minute*."""
    if period == Period.MN1:  # calendar months (UTC)
        t = _time.gmtime(minute * 60)
        return calendar.timegm((t.tm_year, t.tm_mon, 1, 0, 0, 0)) // 60
    if period == Period.W1:  # weeks from Monday 00:00 UTC (the epoch was a Thursday)
        return (minute - 4 * 1440) // 10080 * 10080 + 4 * 1440
    size = PERIOD_MINUTES[period]
    return minute // size * size


def nextBarStart(period: Period, start: int) -> int:
    """The first minute of the bar after the one starting at *start*."""
    if period == Period.MN1:
        t = _time.gmtime(start * 60)
        year, month = (t.tm_year + 1, 1) if t.tm_mon == 12 else (t.tm_year, t.tm_mon + 1)
        return calendar.timegm((year, month, 1, 0, 0, 0)) // 60
    return start + PERIOD_MINUTES[period]


@dataclass
class LiveBar:
    """The bar being built for one symbol and period (live trend bars)."""

    period: Period
    start: int
    open: int
    high: int
    low: int
    volume: int = 0

    def toProto(self) -> ProtoOATrendbar:
        """The bar as carried by spot events (no ``deltaClose``: the close is the bid)."""
        return ProtoOATrendbar(
            volume=self.volume,
            period=self.period,
            low=self.low,
            deltaOpen=self.open - self.low,
            deltaHigh=self.high - self.low,
            utcTimestampInMinutes=self.start,
        )


class SymbolState:
    """Live price state of one symbol."""

    def __init__(self, symbolId: int, spec: dict[str, Any], rng: random.Random, seed: int) -> None:
        self.symbolId = symbolId
        self.spec = spec
        self.digits: int = spec["spec"]["digits"]
        self.tick = 10 ** (5 - self.digits) if self.digits <= 5 else 1
        self.level: int = spec["price"]
        self.spread: int = max(self.tick, spec["spread"] // self.tick * self.tick)
        #: Weekly trading sessions: ``(start, end)`` seconds from Sunday 00:00 UTC.
        self.schedule: list[tuple[int, int]] = sorted(spec.get("schedule") or [])
        self.step = max(1, round(self.level * 2e-5 / self.tick))
        self.bid = self.round(self.level)
        self.ask = self.bid + self.spread
        self.sessionClose = self.bid
        self.liveBars: dict[Period, LiveBar] = {}
        #: The current depth of market (quotes with ids), empty until needed.
        self.book: list[ProtoOADepthQuote] = []
        #: Liquidity: volume (cents) at each price level of a side, and how
        #: many levels a market order may take (one lot per level by default).
        self.levelVolume: int = int(spec.get("levelVolume") or spec["spec"].get("lotSize") or 1)
        self.levels: int = int(spec.get("levels") or 5)
        rnd = random.Random(f"{seed}:{symbolId}")
        self._phases = [rnd.uniform(0, _TWO_PI) for _ in range(4)]
        self._salt = rnd.getrandbits(32)

    def startAt(self, seconds: float) -> None:
        """Start the live prices from the history at *seconds* (UNIX time); the
        session close is the history at the start of that UTC day."""
        self.bid = self.historicalBid(int(seconds))
        self.ask = self.bid + self.spread
        self.sessionClose = self.historicalBid(int(seconds) // 86400 * 86400)

    def round(self, price: float) -> int:
        """Round *price* (1/100000 units) to the symbol's tick."""
        return max(self.tick, int(round(price / self.tick)) * self.tick)

    # --- history ------------------------------------------------------------------

    def openIntervals(self, fromSecond: int, toSecond: int) -> Iterator[tuple[int, int]]:
        """The trading sessions of the symbol's weekly schedule within
        ``[fromSecond, toSecond)`` (UNIX seconds, UTC), oldest first, as
        ``[start, end)`` pairs. A symbol without a schedule is always open."""
        if fromSecond >= toSecond:
            return
        if not self.schedule:
            yield fromSecond, toSecond
            return
        week = (fromSecond - _SUNDAY) // _WEEK * _WEEK + _SUNDAY
        while week < toSecond:
            for start, end in self.schedule:
                a, b = max(week + start, fromSecond), min(week + end, toSecond)
                if a < b:
                    yield a, b
            week += _WEEK

    def historicalBid(self, seconds: int) -> int:
        """The bid of the deterministic history at *seconds* (UNIX time)."""
        return self._price(seconds, _mix(seconds ^ self._salt))

    def _price(self, seconds: float, noise: int) -> int:
        p = self._phases
        wave = (
            0.010 * math.sin(_TWO_PI * seconds / 604800 + p[0])
            + 0.003 * math.sin(_TWO_PI * seconds / 86400 + p[1])
            + 0.0008 * math.sin(_TWO_PI * seconds / 3600 + p[2])
            + 0.0002 * math.sin(_TWO_PI * seconds / 300 + p[3])
        )
        return self.round(self.level * (1 + wave + (noise / 0xFFFFFFFF - 0.5) * 0.0002))

    def ticksPerSecond(self, second: int) -> float:
        """The average number of history ticks per second around *second*
        (open or not: see :meth:`openIntervals`)."""
        return TICKS_PER_SECOND * HOURLY_ACTIVITY[second // 3600 % 24]

    def _ticksIn(self, second: int) -> list[int]:
        """The millisecond offsets of the history ticks of one open *second*, newest first."""
        rate = TICKS_PER_SECOND * HOURLY_ACTIVITY[second // 3600 % 24]
        h = _mix(second ^ self._salt ^ 0x5A5A)
        count = int(rate) + (1 if (h & 0xFFFF) < (rate - int(rate)) * 0x10000 else 0)
        if not count:
            return []
        offsets = {(h >> 16) % 1000}
        x = h
        while len(offsets) < count:
            x = _mix(x + 0x9E37)
            offsets.add(x % 1000)
        return sorted(offsets, reverse=True)

    def historicalTicks(self, quoteType: ProtoOAQuoteType, fromMs: int, toMs: int) -> Iterator[tuple[int, int]]:
        """``(timestampMs, price)`` ticks in ``[fromMs, toMs]``, newest first.

        Ticks come only in the symbol's trading sessions, about
        :data:`TICKS_PER_SECOND` a second on average, more in the
        London and New York hours than in the Asian ones
        (:data:`HOURLY_ACTIVITY`), at deterministic instants; the ask is the
        bid plus the spread (sometimes twice the spread).
        """
        if toMs < fromMs:
            return
        ask = quoteType == ProtoOAQuoteType.ASK
        intervals = list(self.openIntervals(fromMs // 1000, toMs // 1000 + 1))
        for start, end in reversed(intervals):
            for second in range(end - 1, start - 1, -1):
                for offset in self._ticksIn(second):
                    ms = second * 1000 + offset
                    if fromMs <= ms <= toMs:
                        noise = _mix(ms ^ self._salt)
                        bid = self._price(ms / 1000, noise)
                        yield ms, bid + self.spread * (1 + (noise >> 30 == 3)) if ask else bid

    def expectedTicks(self, fromSecond: int, toSecond: int) -> float:
        """The average number of history ticks in ``[fromSecond, toSecond)``
        (trading sessions only)."""
        total = 0.0
        for a, b in self.openIntervals(fromSecond, toSecond):
            while a < b:
                hourEnd = min(b, (a // 3600 + 1) * 3600)
                total += (hourEnd - a) * HOURLY_ACTIVITY[a // 3600 % 24]
                a = hourEnd
        return total * TICKS_PER_SECOND

    def historicalBar(self, period: Period, start: int) -> ProtoOATrendbar | None:
        """The complete bar of *period* starting at minute *start*, or ``None``
        when the symbol did not trade then (no ticks, no bar)."""
        end = nextBarStart(period, start)
        intervals = list(self.openIntervals(start * 60, end * 60))
        if not intervals:
            return None
        span = sum(b - a for a, b in intervals)
        samples = min(24, (end - start) * 4)
        points: list[int] = []
        for a, b in intervals:  # the first and last second of each session, and points between
            k = max(1, round(samples * (b - a) / span))
            step = (b - 1 - a) / k
            points.extend(int(a + i * step) for i in range(k + 1))
        prices = [self.historicalBid(t) for t in points]
        low, high = min(prices), max(prices)
        ticks = self.expectedTicks(start * 60, end * 60)
        volume = max(1, int(ticks * (0.85 + 0.3 * (_mix(start ^ self._salt ^ period) % 1000) / 1000)))
        return ProtoOATrendbar(
            volume=volume,
            period=period,
            low=low,
            deltaOpen=prices[0] - low,
            deltaClose=prices[-1] - low,
            deltaHigh=high - low,
            utcTimestampInMinutes=start,
        )

    def historicalBars(self, period: Period, fromMs: int, toMs: int) -> Iterator[ProtoOATrendbar]:
        """Complete bars whose start lies in ``[fromMs, toMs)``, oldest first
        (bars of closed hours are skipped without being computed)."""
        start = barStart(period, fromMs // 60000)
        if start * 60000 < fromMs:
            start = nextBarStart(period, start)
        limit = -(-toMs // 60000)  # the first minute not before toMs
        for a, b in self.openIntervals(start * 60, limit * 60):
            bar = barStart(period, a // 60)
            if bar < start:
                bar = start
            while bar * 60 < b and bar < limit:
                if bar * 60000 >= fromMs and bar * 60000 < toMs:
                    made = self.historicalBar(period, bar)
                    if made is not None:
                        yield made
                bar = nextBarStart(period, bar)
            start = bar

    # --- live ----------------------------------------------------------------------

    def walk(self, rng: random.Random) -> None:
        """One step of the live random walk (mean-reverting towards the level)."""
        move = rng.randint(-self.step, self.step)
        if self.bid > self.level * 1.02:
            move -= self.step // 2 + 1
        elif self.bid < self.level * 0.98:
            move += self.step // 2 + 1
        self.bid = self.round(self.bid + move * self.tick)
        self.ask = self.bid + self.spread

    def updateBars(self, minute: int, periods: set[Period]) -> None:
        """Roll and update the live bars of *periods* with the current bid."""
        for period in list(self.liveBars):
            if period not in periods:
                del self.liveBars[period]
        for period in periods:
            bar = self.liveBars.get(period)
            start = barStart(period, minute)
            if bar is None or bar.start != start:
                bar = self.liveBars[period] = LiveBar(period, start, self.bid, self.bid, self.bid)
            bar.high = max(bar.high, self.bid)
            bar.low = min(bar.low, self.bid)
            bar.volume += 1

    def spotEvent(
        self, accountId: int, timestamp: int, bid: bool = True, ask: bool = True, sessionClose: bool = False
    ) -> ProtoOASpotEvent:
        """A spot event with the current prices (only the sides asked for)."""
        event = ProtoOASpotEvent(ctidTraderAccountId=accountId, symbolId=self.symbolId, timestamp=timestamp)
        if bid:
            event.bid = self.bid
        if ask:
            event.ask = self.ask
        if sessionClose:
            event.sessionClose = self.sessionClose
        return event

    def depth(self, rng: random.Random, newId: Iterator[int], levels: int | None = None) -> list[ProtoOADepthQuote]:
        """A fresh book of *levels* quotes per side from the current bid and
        ask outwards; sizes around :attr:`levelVolume`, on the volume step."""
        step = max(1, int(self.spec["spec"].get("stepVolume", 1)))
        quotes = []
        for i in range(self.levels if levels is None else levels):
            gap = i * self.step * self.tick
            size = max(step, self.levelVolume * rng.randint(1, 50) // 25 // step * step)
            quotes.append(ProtoOADepthQuote(id=next(newId), size=size, bid=self.round(self.bid - gap)))
            quotes.append(ProtoOADepthQuote(id=next(newId), size=size, ask=self.round(self.ask + gap)))
        return quotes

    def liquidity(self, side: int) -> list[tuple[int, int, ProtoOADepthQuote | None]]:
        """What a market order of *side* (``ProtoOATradeSide``) can take, best
        price first: ``(price, volume, quote)``. The published book when the
        symbol's depth is subscribed (its quotes shrink as orders take them),
        else :attr:`levels` levels of :attr:`levelVolume` one walk step apart."""
        buy = side == 1
        if self.book:
            quotes = [q for q in self.book if q.HasField("ask" if buy else "bid")]
            quotes.sort(key=lambda q: q.ask if buy else -q.bid)
            return [(q.ask if buy else q.bid, q.size, q) for q in quotes if q.size > 0]
        best, sign = (self.ask, 1) if buy else (self.bid, -1)
        return [(self.round(best + sign * i * self.step * self.tick), self.levelVolume, None) for i in range(self.levels)]


class Market:
    """Every symbol's state, with one shared seeded random generator."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.symbols: dict[int, SymbolState] = {}
        self._depthIds = iter(range(1, 1 << 62))
        for symbolId, spec in SYMBOLS.items():
            self.addSymbol(symbolId, spec)

    def addSymbol(self, symbolId: int, spec: dict[str, Any]) -> SymbolState:
        """Add (or replace) a symbol, given in the form of :data:`.data.SYMBOLS` values."""
        state = SymbolState(symbolId, spec, self.rng, self.seed)
        self.symbols[symbolId] = state
        return state

    def refreshBook(self, state: SymbolState) -> list[int]:
        """Replace *state*'s book with a fresh one; return the replaced quote ids."""
        deleted = [q.id for q in state.book]
        state.book = state.depth(self.rng, self._depthIds)
        return deleted
