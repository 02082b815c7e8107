"""The simulated market: live prices, live trend bars, depth, and history.

Two price sources, both deterministic for a given seed:

* **live prices** follow a seeded random walk (one step per symbol every
  ``spotInterval`` seconds of the simulator's clock), starting from the
  recorded price levels of :mod:`.data`;
* **history** (trend bars, tick data) comes from a deterministic function of
  time (slow waves plus hashed noise around the recorded level), so the same
  request always returns the same bars, however the window is cut.

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
from .data import SYMBOLS

__all__ = ["Market", "SymbolState", "LiveBar", "PERIOD_MINUTES", "MAX_WINDOW_MS"]

#: Minutes per ``ProtoOATrendbarPeriod`` (W1 and MN1 are aligned specially).
PERIOD_MINUTES: dict[int, int] = {
    Period.M1: 1, Period.M2: 2, Period.M3: 3, Period.M4: 4, Period.M5: 5, Period.M10: 10, Period.M15: 15,
    Period.M30: 30, Period.H1: 60, Period.H4: 240, Period.H12: 720, Period.D1: 1440, Period.W1: 10080,
    Period.MN1: 43200,
}

#: Longest ``GetTrendbars`` window per period, in ms (the limits the official
#: .NET SDK hard-codes; longer windows get ``INCORRECT_BOUNDARIES``).
MAX_WINDOW_MS: dict[int, int] = {
    **{p: 302_400_000 for p in (Period.M1, Period.M2, Period.M3, Period.M4, Period.M5)},
    **{p: 21_168_000_000 for p in (Period.M10, Period.M15, Period.M30, Period.H1)},
    **{p: 31_622_400_000 for p in (Period.H4, Period.H12, Period.D1)},
    **{p: 158_112_000_000 for p in (Period.W1, Period.MN1)},
}

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

    def historicalBid(self, seconds: int) -> int:
        """The bid of the deterministic history at *seconds* (UNIX time)."""
        p = self._phases
        wave = (
            0.010 * math.sin(_TWO_PI * seconds / 604800 + p[0])
            + 0.003 * math.sin(_TWO_PI * seconds / 86400 + p[1])
            + 0.0008 * math.sin(_TWO_PI * seconds / 3600 + p[2])
            + 0.0002 * math.sin(_TWO_PI * seconds / 300 + p[3])
        )
        noise = (_mix(seconds ^ self._salt) / 0xFFFFFFFF - 0.5) * 0.0002
        return self.round(self.level * (1 + wave + noise))

    def historicalBar(self, period: Period, start: int) -> ProtoOATrendbar:
        """The complete bar of *period* starting at minute *start*."""
        end = nextBarStart(period, start)
        first = start * 60
        last = end * 60 - 1
        samples = min(24, (end - start) * 4)
        stride = (last - first) / samples
        prices = [self.historicalBid(int(first + i * stride)) for i in range(samples + 1)]
        prices[-1] = self.historicalBid(last)
        low, high = min(prices), max(prices)
        volume = 1 + _mix(start ^ self._salt ^ period) % (40 * (end - start) + 20)
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
        """Complete bars whose start lies in ``[fromMs, toMs)``, oldest first."""
        start = barStart(period, fromMs // 60000)
        if start * 60000 < fromMs:
            start = nextBarStart(period, start)
        while start * 60000 < toMs:
            yield self.historicalBar(period, start)
            start = nextBarStart(period, start)

    def historicalTicks(self, quoteType: ProtoOAQuoteType, fromMs: int, toMs: int) -> Iterator[tuple[int, int]]:
        """``(timestampMs, price)`` ticks in ``[fromMs, toMs]``, newest first.

        About one tick every 1.5 s of history, at deterministic instants.
        """
        second = toMs // 1000
        while second * 1000 >= fromMs:
            h = _mix(second ^ self._salt ^ 0x5A5A)
            if h % 3 != 0:
                ms = second * 1000 + h % 1000
                if fromMs <= ms <= toMs:
                    bid = self.historicalBid(second)
                    yield ms, bid if quoteType == ProtoOAQuoteType.BID else bid + self.spread
            second -= 1

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
