# -*- test-case-name: tests.test_history -*-
"""Historical data over any range: trend bars, ticks, deals and cash flow.

The Open API answers history in windows: each request covers at most a
window of time that depends on what is asked (:data:`TRENDBAR_WINDOW_MS` per
trend bar period, one week for ticks, deals and cash flow), and an answer
holds at most a page of rows (``hasMore`` says there are more). A
:class:`Download` does the paging for any range:

* it cuts ``[start, end)`` into windows the server accepts, fetches a few
  windows ahead (``lookahead``), follows ``hasMore`` inside each window
  (answers hold the newest rows; the next page asks for what lies before
  the oldest row, without repeating the rows at the boundary), and delivers
  each window's rows **in time order** as soon as it and every window before
  it are complete: never the whole range at once;
* tick windows are sized from the density seen so far (about
  ``pagesPerWindow`` pages each), so that a quiet night and a busy London
  morning both cost few requests;
* its requests are paced by the client's rate limiter (5 historical
  requests per second per connection, measured with a margin as the server
  counts arrivals; see :mod:`ctrader_twisted.ratelimit`), and refusals for a
  rate limit are written again by the core after a hold. Several downloads
  on one client take turns (:class:`HistoryPacer`: round-robin), so none
  starves another;
* a request that fails for a reason that may pass (a timeout, a lost
  connection, a rate limit the core gave up on) is asked again after a pause
  (up to ``maxRetries`` times), once the client is ready again: a managed
  :class:`~ctrader_twisted.client.Client` reconnects and re-authorizes by
  itself. Rows are delivered per complete window, so a retried request never
  duplicates or skips a row.

Two ways to read a download: as an async iterator of rows (``async for bar
in trendbars(...)``: it works in a coroutine run by
:func:`~twisted.internet.defer.ensureDeferred`, and in an asyncio task under
Twisted's asyncio reactor) or of per-window batches (:meth:`Download.batches`),
and with callbacks (:meth:`Download.each`, :meth:`Download.eachBatch`), which
return a Deferred.

Rows are decoded: prices are :class:`~decimal.Decimal` with the symbol's
digits (trend bars from ``low`` plus deltas, ticks from their differences),
times are UTC milliseconds (``timestamp``) with a ``time`` property giving a
timezone-aware :class:`~datetime.datetime`, volumes of deals in units and
money scaled by ``moneyDigits``. See ``docs/history.rst``.
"""

from __future__ import annotations

import math
import weakref
from array import array
from bisect import bisect_left, bisect_right
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from heapq import heapify, heappop, heappush, merge
from itertools import chain, islice
from typing import (
    TYPE_CHECKING,
    Any,
    AsyncIterator,
    Awaitable,
    Callable,
    Generic,
    Iterator,
    NamedTuple,
    Sequence,
    TypeVar,
    Union,
)

from twisted.internet.defer import CancelledError, Deferred, ensureDeferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure

from .errors import ConnectionLostError, CTraderError, MaintenanceError, QueueFullError, RateLimitError
from .messages.OpenApiModelMessages_pb2 import (
    ProtoOAChangeBalanceType,
    ProtoOADealStatus,
    ProtoOAPayloadType,
    ProtoOAQuoteType,
    ProtoOATradeSide,
    ProtoOATrendbarPeriod,
)

if TYPE_CHECKING:
    from .client import Client

__all__ = [
    "trendbars",
    "ticks",
    "deals",
    "cashFlow",
    "Download",
    "Progress",
    "HistoryPacer",
    "pacerFor",
    "HistoryError",
    "Bar",
    "Tick",
    "Deal",
    "CashFlow",
    "decodeTrendbars",
    "decodeTickData",
    "decodeDeal",
    "decodeCashFlow",
    "wirePrice",
    "moneyValue",
    "toMilliseconds",
    "utcTime",
    "TRENDBAR_WINDOW_MS",
    "TICK_WINDOW_MS",
    "DEAL_WINDOW_MS",
    "CASH_FLOW_WINDOW_MS",
    "PERIOD_MS",
    "MAX_TIMESTAMP_MS",
]

_P = ProtoOATrendbarPeriod
_log = Logger()

#: Longest window of one ``ProtoOAGetTrendbarsReq`` per period, ms: the server
#: answers ``INCORRECT_BOUNDARIES`` beyond (the official .NET SDK's table).
#: The simulator enforces the same table.
TRENDBAR_WINDOW_MS: dict[int, int] = {
    **dict.fromkeys((_P.M1, _P.M2, _P.M3, _P.M4, _P.M5), 302_400_000),  # 3.5 days
    **dict.fromkeys((_P.M10, _P.M15, _P.M30, _P.H1), 21_168_000_000),  # 245 days
    **dict.fromkeys((_P.H4, _P.H12, _P.D1), 31_622_400_000),  # 366 days
    **dict.fromkeys((_P.W1, _P.MN1), 158_112_000_000),  # 1830 days
}

#: Longest window of one ``ProtoOAGetTickDataReq``, ms (one week).
TICK_WINDOW_MS = 604_800_000
#: Longest window of one ``ProtoOACashFlowHistoryListReq``, ms (one week: the
#: proto's own validation rule).
CASH_FLOW_WINDOW_MS = 604_800_000
#: Window of one ``ProtoOADealListReq``, ms. The proto states no limit; users
#: report about a week, so downloads ask for a week at a time.
DEAL_WINDOW_MS = 604_800_000

#: The largest timestamp the Open API accepts (2038-01-19), ms.
MAX_TIMESTAMP_MS = 2_147_483_646_000

#: Length of one bar per period, ms (W1 a week, MN1 the longest month).
PERIOD_MS: dict[int, int] = {
    _P.M1: 60_000, _P.M2: 120_000, _P.M3: 180_000, _P.M4: 240_000, _P.M5: 300_000, _P.M10: 600_000,
    _P.M15: 900_000, _P.M30: 1_800_000, _P.H1: 3_600_000, _P.H4: 14_400_000, _P.H12: 43_200_000,
    _P.D1: 86_400_000, _P.W1: 604_800_000, _P.MN1: 2_678_400_000,
}

#: Wire prices are integers in 1/100000 of a unit.
_WIRE_DIGITS = 5
#: Rows of one answer page when the server has not shown its page size yet.
_ASSUMED_PAGE = 5000
#: Most rows handed over at once (a window's rows are made as they are read).
_BATCH_ROWS = 5000
#: Payload types whose answers carry ``moneyDigits`` (bounded below).
_MAX_MONEY_DIGITS = 18
_MAX_PRICE_DIGITS = 10

_UTC = timezone.utc


class HistoryError(CTraderError):
    """A download cannot go on: the server's answers cannot be paged (for
    example ``hasMore`` with no rows), or carry unusable values. The message
    says what and where."""


# --- values ------------------------------------------------------------------------


def utcTime(milliseconds: int) -> datetime:
    """A UTC timestamp in milliseconds as a timezone-aware :class:`~datetime.datetime`."""
    return datetime.fromtimestamp(milliseconds / 1000, _UTC)


def toMilliseconds(value: Union[int, datetime], name: str = "time") -> int:
    """*value* (UTC milliseconds, or a timezone-aware datetime) as UTC milliseconds.

    :raises TypeError: neither an integer nor a datetime.
    :raises ValueError: a naive datetime, or a time before 1970 or after
        :data:`MAX_TIMESTAMP_MS` (the message names *name*).
    """
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"{name} must be a timezone-aware datetime (UTC is assumed nowhere), got {value!r}")
        ms = round(value.timestamp() * 1000)
    elif isinstance(value, int) and not isinstance(value, bool):
        ms = value
    else:
        raise TypeError(f"{name} must be UTC milliseconds (int) or an aware datetime, got {value!r}")
    if not 0 <= ms <= MAX_TIMESTAMP_MS:
        raise ValueError(f"{name} must lie between 1970-01-01 and 2038-01-19 (ms {MAX_TIMESTAMP_MS}), got {ms}")
    return ms


def _digits(value: int, name: str, limit: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limit:
        raise HistoryError(f"{name} must be an integer from 0 to {limit}, got {value!r}")
    return value


def wirePrice(value: int, digits: int) -> Decimal:
    """A wire price (an integer in 1/100000 of a unit) as a Decimal with *digits* places."""
    return Decimal(value).scaleb(-_WIRE_DIGITS).quantize(_QUANTA[digits])


_QUANTA = [Decimal(1).scaleb(-d) for d in range(_MAX_PRICE_DIGITS + 1)]


def moneyValue(value: int, moneyDigits: int | None) -> Decimal:
    """An amount of money from the wire, scaled by ``moneyDigits`` (2 when absent).

    :raises HistoryError: ``moneyDigits`` beyond 18.
    """
    digits = 2 if moneyDigits is None else _digits(moneyDigits, "moneyDigits", _MAX_MONEY_DIGITS)
    return Decimal(value).scaleb(-digits)


def _doublePrice(value: float) -> Decimal | None:
    """A price sent as a double, exactly as its shortest repr (``None`` if not finite)."""
    return Decimal(repr(value)) if math.isfinite(value) else None


def _enumName(enum: Any, number: int) -> str:
    try:
        return str(enum.Name(number))
    except ValueError:
        return str(number)


def _optional(message: Any, name: str) -> Any:
    return getattr(message, name) if message.HasField(name) else None


# --- rows ------------------------------------------------------------------------------


class Bar(NamedTuple):
    """One trend bar.

    :ivar timestamp: the bar's open time, UTC milliseconds.
    :ivar open: open price (``low + deltaOpen``).
    :ivar high: high price (``low + deltaHigh``).
    :ivar low: low price.
    :ivar close: close price (``low + deltaClose``).
    :ivar volume: the bar's volume in ticks.
    """

    timestamp: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: int

    @property
    def time(self) -> datetime:
        """:attr:`timestamp` as an aware UTC datetime."""
        return utcTime(self.timestamp)


class Tick(NamedTuple):
    """One historical tick.

    :ivar timestamp: UTC milliseconds.
    :ivar side: ``"bid"`` or ``"ask"``.
    :ivar price: the price.
    """

    timestamp: int
    side: str
    price: Decimal

    @property
    def time(self) -> datetime:
        """:attr:`timestamp` as an aware UTC datetime."""
        return utcTime(self.timestamp)


class Deal(NamedTuple):
    """One deal (an execution) of an account.

    Money is in the account's deposit currency, scaled by ``moneyDigits``;
    volumes are in units (the wire's cents / 100). The ``close*`` fields
    are those of a closing deal (``None`` for an opening one).

    :ivar timestamp: execution time, UTC milliseconds.
    :ivar createTimestamp: when the deal was sent for execution, UTC ms.
    :ivar side: ``"BUY"`` or ``"SELL"``.
    :ivar volume: filled volume, units.
    :ivar requestedVolume: volume sent for execution, units.
    :ivar price: execution price (``None`` when not given).
    :ivar status: ``"FILLED"``, ``"PARTIALLY_FILLED"``, ``"REJECTED"``...
    :ivar commission: commission of the deal.
    :ivar closedVolume: volume closed, units.
    :ivar entryPrice: the position's price when it was closed.
    :ivar grossProfit: realized gross profit.
    :ivar swap: realized swap.
    :ivar closeCommission: realized commission of the closed volume.
    :ivar balance: account balance after the deal.
    :ivar pnlConversionFee: fee of converting the profit to the deposit currency.
    """

    timestamp: int
    dealId: int
    orderId: int
    positionId: int
    symbolId: int
    side: str
    volume: Decimal
    requestedVolume: Decimal
    price: Decimal | None
    status: str
    commission: Decimal | None
    createTimestamp: int
    closedVolume: Decimal | None = None
    entryPrice: Decimal | None = None
    grossProfit: Decimal | None = None
    swap: Decimal | None = None
    closeCommission: Decimal | None = None
    balance: Decimal | None = None
    pnlConversionFee: Decimal | None = None

    @property
    def time(self) -> datetime:
        """:attr:`timestamp` as an aware UTC datetime."""
        return utcTime(self.timestamp)


class CashFlow(NamedTuple):
    """One balance operation of an account (deposit, withdrawal, and the like).

    :ivar timestamp: UTC milliseconds.
    :ivar balanceHistoryId: the operation's id.
    :ivar type: the ``ProtoOAChangeBalanceType`` name (``"BALANCE_DEPOSIT"``...).
    :ivar delta: the amount of the operation, as the server gives it.
    :ivar balance: balance after the operation.
    :ivar equity: equity after the operation (``None`` when not given).
    :ivar balanceVersion: the balance version (``None`` when not given).
    :ivar note: the note visible to the trader ("" when none).
    """

    timestamp: int
    balanceHistoryId: int
    type: str
    delta: Decimal
    balance: Decimal
    equity: Decimal | None
    balanceVersion: int | None
    note: str

    @property
    def time(self) -> datetime:
        """:attr:`timestamp` as an aware UTC datetime."""
        return utcTime(self.timestamp)


#: The type of the rows a :class:`Download` delivers: :class:`Bar`,
#: :class:`Tick`, :class:`Deal` or :class:`CashFlow`.
Row = TypeVar("Row")


# --- decoding ----------------------------------------------------------------------------


def decodeTrendbars(response: Any, digits: int) -> list[Bar]:
    """The bars of a ``ProtoOAGetTrendbarsRes`` (or of any sequence of
    ``ProtoOATrendbar``), oldest first, prices with *digits* places.

    :raises HistoryError: *digits* out of 0..10.
    """
    _digits(digits, "digits", _MAX_PRICE_DIGITS)
    bars = response.trendbar if hasattr(response, "trendbar") else response
    out = [_bar(bar, digits) for bar in bars]
    out.sort(key=_timestampOf)
    return out


def _timestampOf(row: Any) -> int:
    return int(row[0])


def _bar(bar: Any, digits: int) -> Bar:
    low = int(bar.low)
    return Bar(
        int(bar.utcTimestampInMinutes) * 60_000,
        wirePrice(low + int(bar.deltaOpen), digits),
        wirePrice(low + int(bar.deltaHigh), digits),
        wirePrice(low, digits),
        wirePrice(low + int(bar.deltaClose), digits),
        int(bar.volume),
    )


def _tickArrays(tickData: Sequence[Any]) -> tuple[array[int], array[int]]:
    """Absolute ``(timestamps, prices)`` of a tick page, oldest first.

    The server sends ticks newest first: the first with its absolute time
    and price, each later one as the difference to the tick before it.
    """
    times: array[int] = array("q")
    prices: array[int] = array("q")
    t = p = 0
    for i, tick in enumerate(tickData):
        if i == 0:
            t, p = int(tick.timestamp), int(tick.tick)
        else:
            t += int(tick.timestamp)
            p += int(tick.tick)
        times.append(t)
        prices.append(p)
    times.reverse()
    prices.reverse()
    if any(times[i] > times[i + 1] for i in range(len(times) - 1)):
        # Not newest first after all: order by time, keeping the server's
        # order (reversed) among ticks of the same millisecond.
        order = sorted(range(len(times)), key=times.__getitem__)
        times = array("q", (times[i] for i in order))
        prices = array("q", (prices[i] for i in order))
    return times, prices


def decodeTickData(response: Any, digits: int, side: str = "bid") -> list[Tick]:
    """The ticks of a ``ProtoOAGetTickDataRes``, oldest first, decoded from
    their differences, prices with *digits* places.

    :param side: ``"bid"`` or ``"ask"`` (what was asked for).
    :raises HistoryError: *digits* out of 0..10.
    """
    _digits(digits, "digits", _MAX_PRICE_DIGITS)
    times, prices = _tickArrays(response.tickData)
    return [Tick(t, side, wirePrice(p, digits)) for t, p in zip(times, prices)]


def decodeDeal(deal: Any) -> Deal:
    """A ``ProtoOADeal`` as a :class:`Deal` (money scaled by its ``moneyDigits``).

    :raises HistoryError: an unusable ``moneyDigits``.
    """
    moneyDigits = _optional(deal, "moneyDigits")
    price = _doublePrice(deal.executionPrice) if deal.HasField("executionPrice") else None
    row = Deal(
        timestamp=int(deal.executionTimestamp),
        dealId=int(deal.dealId),
        orderId=int(deal.orderId),
        positionId=int(deal.positionId),
        symbolId=int(deal.symbolId),
        side=_enumName(ProtoOATradeSide, deal.tradeSide),
        volume=Decimal(int(deal.filledVolume)).scaleb(-2),
        requestedVolume=Decimal(int(deal.volume)).scaleb(-2),
        price=price,
        status=_enumName(ProtoOADealStatus, deal.dealStatus),
        commission=moneyValue(int(deal.commission), moneyDigits) if deal.HasField("commission") else None,
        createTimestamp=int(deal.createTimestamp),
    )
    if not deal.HasField("closePositionDetail"):
        return row
    detail = deal.closePositionDetail
    detailDigits = _optional(detail, "moneyDigits")
    return row._replace(
        closedVolume=Decimal(int(detail.closedVolume)).scaleb(-2) if detail.HasField("closedVolume") else None,
        entryPrice=_doublePrice(detail.entryPrice),
        grossProfit=moneyValue(int(detail.grossProfit), detailDigits),
        swap=moneyValue(int(detail.swap), detailDigits),
        closeCommission=moneyValue(int(detail.commission), detailDigits),
        balance=moneyValue(int(detail.balance), detailDigits),
        pnlConversionFee=(
            moneyValue(int(detail.pnlConversionFee), detailDigits) if detail.HasField("pnlConversionFee") else None
        ),
    )


def decodeCashFlow(item: Any) -> CashFlow:
    """A ``ProtoOADepositWithdraw`` as a :class:`CashFlow` (money scaled by its ``moneyDigits``).

    :raises HistoryError: an unusable ``moneyDigits``.
    """
    moneyDigits = _optional(item, "moneyDigits")
    return CashFlow(
        timestamp=int(item.changeBalanceTimestamp),
        balanceHistoryId=int(item.balanceHistoryId),
        type=_enumName(ProtoOAChangeBalanceType, item.operationType),
        delta=moneyValue(int(item.delta), moneyDigits),
        balance=moneyValue(int(item.balance), moneyDigits),
        equity=moneyValue(int(item.equity), moneyDigits) if item.HasField("equity") else None,
        balanceVersion=int(item.balanceVersion) if item.HasField("balanceVersion") else None,
        note=item.externalNote if item.HasField("externalNote") else "",
    )


# --- pages and sources -----------------------------------------------------------------


class _Page:
    """One answer: its rows' times (oldest first) and what builds each row."""

    __slots__ = ("times", "values", "hasMore", "chain")

    def __init__(self, times: array[int], values: Sequence[Any], hasMore: bool, chain: int) -> None:
        self.times = times
        self.values = values
        self.hasMore = hasMore
        self.chain = chain


class _Source:
    """What to ask for, and how to read the answers (one per kind of data)."""

    #: The request's name and payload type.
    request = ""
    payloadType = 0
    #: What a row is, for messages ("bars", "ticks"...).
    noun = "rows"
    #: Streams fetched for every window (two for ticks of both sides).
    chains: Sequence[Any] = (None,)
    #: How rows of a window are put in order when time alone does not say
    #: (``None``: as the pages have them).
    ordered: Callable[[Any], Any] | None = None

    def __init__(self, accountId: int) -> None:
        self.accountId = accountId
        #: The largest page an answer with ``hasMore`` showed (the server's page size).
        self.pageSize: int | None = None

    def fields(self, chain: Any, fromMs: int, toMs: int) -> dict[str, Any]:
        raise NotImplementedError

    def page(self, answer: Any, chain: int) -> _Page:
        raise NotImplementedError

    def row(self, page: _Page, index: int) -> Any:
        raise NotImplementedError

    def key(self, page: _Page, index: int) -> Any:
        """What tells the row apart from the others of its millisecond
        (``None``: nothing; rows received twice are then told by count)."""
        return None

    def without(self, page: _Page, upper: int, held: list[Any]) -> _Page:
        """*page* without the rows at time *upper* already held (*held*: their keys)."""
        times = page.times
        lo, hi = bisect_left(times, upper), bisect_right(times, upper)
        if lo == hi:
            return page
        if held[0] is None:  # by count: the held ones are the newest of that millisecond
            drop = set(range(max(lo, hi - len(held)), hi))
        else:
            keys = set(held)
            drop = {i for i in range(lo, hi) if self.key(page, i) in keys}
        kept = [i for i in range(len(times)) if i not in drop]
        values = page.values
        newValues: Sequence[Any] = (
            array("q", (values[i] for i in kept)) if isinstance(values, array) else [values[i] for i in kept]
        )
        return _Page(array("q", (times[i] for i in kept)), newValues, page.hasMore, page.chain)

    def windowLength(self, start: int) -> int:
        """How long the window that begins at *start* is, ms."""
        raise NotImplementedError

    def windowDone(self, start: int, end: int, rows: int) -> None:
        """A window was fetched (sources that size windows by density learn here)."""

    def pageSeen(self, page: _Page, fromMs: int, toMs: int) -> None:
        """An answer to ``[fromMs, toMs]`` arrived (sources that size windows by density learn here)."""

    def sized(self) -> bool:
        """Whether :meth:`windowLength` is known well enough to plan windows ahead."""
        return True

    def prepare(self, client: Client, timeout: float | None) -> Deferred[None]:
        """Anything to ask before the first window (a symbol's digits)."""
        return succeed(None)


def _sortedPage(items: Sequence[Any], key: Callable[[Any], Any], time: Callable[[Any], int]) -> tuple[array[int], list[Any]]:
    ordered = sorted(items, key=key)
    return array("q", (time(item) for item in ordered)), ordered


class _SymbolSource(_Source):
    """A source of prices of one symbol: it needs the symbol's digits."""

    def __init__(self, accountId: int, symbolId: int, digits: int | None) -> None:
        super().__init__(accountId)
        self.symbolId = symbolId
        self.digits = digits

    def prepare(self, client: Client, timeout: float | None) -> Deferred[None]:
        if self.digits is not None:
            return succeed(None)
        d = client.request(
            "ProtoOASymbolByIdReq", None, timeout, ctidTraderAccountId=self.accountId, symbolId=[self.symbolId]
        )

        def found(answer: Any) -> None:
            for symbol in answer.symbol:
                if int(symbol.symbolId) == self.symbolId:
                    self.digits = _digits(int(symbol.digits), "the symbol's digits", _MAX_PRICE_DIGITS)
                    return
            raise HistoryError(f"the server does not describe symbol {self.symbolId} (ProtoOASymbolByIdReq)")

        return d.addCallback(found)


class _Trendbars(_SymbolSource):
    request = "ProtoOAGetTrendbarsReq"
    payloadType = ProtoOAPayloadType.PROTO_OA_GET_TRENDBARS_REQ
    noun = "bars"

    def __init__(self, accountId: int, symbolId: int, period: int, digits: int | None) -> None:
        super().__init__(accountId, symbolId, digits)
        self.period = period

    def fields(self, chain: Any, fromMs: int, toMs: int) -> dict[str, Any]:
        return dict(
            ctidTraderAccountId=self.accountId, symbolId=self.symbolId, period=self.period,
            fromTimestamp=fromMs, toTimestamp=toMs,
        )

    def page(self, answer: Any, chain: int) -> _Page:
        times, bars = _sortedPage(
            answer.trendbar, lambda b: int(b.utcTimestampInMinutes), lambda b: int(b.utcTimestampInMinutes) * 60_000
        )
        return _Page(times, bars, bool(answer.hasMore), chain)

    def row(self, page: _Page, index: int) -> Bar:
        return _bar(page.values[index], self.digits or 0)

    def windowLength(self, start: int) -> int:
        limit = TRENDBAR_WINDOW_MS[self.period]
        if self.pageSize:
            # No more bars per window than one answer holds.
            limit = min(limit, max(1, self.pageSize) * PERIOD_MS[self.period])
        return limit


class _Ticks(_SymbolSource):
    request = "ProtoOAGetTickDataReq"
    payloadType = ProtoOAPayloadType.PROTO_OA_GET_TICKDATA_REQ
    noun = "ticks"
    #: Window length before anything is known of the density, ms (it grows
    #: fourfold after each empty window: a closed market is crossed quickly).
    firstWindow = 3_600_000
    shortestWindow = 60_000

    def __init__(
        self, accountId: int, symbolId: int, sides: Sequence[str], digits: int | None, pagesPerWindow: int
    ) -> None:
        super().__init__(accountId, symbolId, digits)
        self.chains = tuple(sides)
        self.pagesPerWindow = pagesPerWindow
        #: Ticks per ms of one side, from the windows fetched (None: nothing seen yet).
        self.density: float | None = None
        self.emptyInARow = 0

    def fields(self, chain: Any, fromMs: int, toMs: int) -> dict[str, Any]:
        quote = ProtoOAQuoteType.BID if chain == "bid" else ProtoOAQuoteType.ASK
        return dict(
            ctidTraderAccountId=self.accountId, symbolId=self.symbolId, type=quote,
            fromTimestamp=fromMs, toTimestamp=toMs,
        )

    def page(self, answer: Any, chain: int) -> _Page:
        times, prices = _tickArrays(answer.tickData)
        return _Page(times, prices, bool(answer.hasMore), chain)

    def row(self, page: _Page, index: int) -> Tick:
        return Tick(page.times[index], self.chains[page.chain], wirePrice(page.values[index], self.digits or 0))

    def windowLength(self, start: int) -> int:
        if self.density is None:
            length = float(self.firstWindow * 4 ** min(self.emptyInARow, 8))
        else:
            target = self.pagesPerWindow * (self.pageSize or _ASSUMED_PAGE)
            length = target / max(self.density, 1e-9) * 2 ** min(self.emptyInARow, 1)
        return int(min(TICK_WINDOW_MS, max(self.shortestWindow, length)))

    def sized(self) -> bool:
        return self.density is not None or self.emptyInARow > 0

    def _learn(self, seen: float) -> None:
        self.density = seen if self.density is None else 0.5 * self.density + 0.5 * seen

    def pageSeen(self, page: _Page, fromMs: int, toMs: int) -> None:
        times = page.times
        if page.hasMore and len(times) > 1:  # a full page: the density of its span
            self._learn(len(times) / max(1, toMs - times[0]))

    def windowDone(self, start: int, end: int, rows: int) -> None:
        perSide = rows / max(1, len(self.chains))
        if perSide <= 0:
            self.emptyInARow += 1
            return
        self.emptyInARow = 0
        self._learn(perSide / max(1, end - start))


class _Deals(_Source):
    request = "ProtoOADealListReq"
    payloadType = ProtoOAPayloadType.PROTO_OA_DEAL_LIST_REQ
    noun = "deals"

    def fields(self, chain: Any, fromMs: int, toMs: int) -> dict[str, Any]:
        return dict(ctidTraderAccountId=self.accountId, fromTimestamp=fromMs, toTimestamp=toMs)

    def page(self, answer: Any, chain: int) -> _Page:
        times, items = _sortedPage(
            answer.deal, lambda d: (int(d.executionTimestamp), int(d.dealId)), lambda d: int(d.executionTimestamp)
        )
        return _Page(times, items, bool(answer.hasMore), chain)

    def row(self, page: _Page, index: int) -> Deal:
        return decodeDeal(page.values[index])

    def key(self, page: _Page, index: int) -> Any:
        return int(page.values[index].dealId)

    @staticmethod
    def ordered(deal: Deal) -> tuple[int, int]:  # type: ignore[override]
        return deal.timestamp, deal.dealId

    def windowLength(self, start: int) -> int:
        return DEAL_WINDOW_MS


class _CashFlow(_Source):
    request = "ProtoOACashFlowHistoryListReq"
    payloadType = ProtoOAPayloadType.PROTO_OA_CASH_FLOW_HISTORY_LIST_REQ
    noun = "balance operations"

    def fields(self, chain: Any, fromMs: int, toMs: int) -> dict[str, Any]:
        return dict(ctidTraderAccountId=self.accountId, fromTimestamp=fromMs, toTimestamp=toMs)

    def page(self, answer: Any, chain: int) -> _Page:
        times, items = _sortedPage(
            answer.depositWithdraw,
            lambda i: (int(i.changeBalanceTimestamp), int(i.balanceHistoryId)),
            lambda i: int(i.changeBalanceTimestamp),
        )
        return _Page(times, items, False, chain)  # the answer has no hasMore

    def row(self, page: _Page, index: int) -> CashFlow:
        return decodeCashFlow(page.values[index])

    def windowLength(self, start: int) -> int:
        return CASH_FLOW_WINDOW_MS


# --- fair sharing ---------------------------------------------------------------------------


class HistoryPacer:
    """Shares one client's historical requests fairly between its downloads,
    and spaces them out.

    At most *slots* history requests of the downloads are outstanding
    (queued in the client or awaiting their answer) at a time; when a slot
    frees, the next download in turn gets it (round-robin), however many
    requests each one wants. Within one download the waiting request with
    the lowest *priority* goes first (a download gives the start of the
    request's window: the oldest window, which is delivered first, is
    fetched first). Turns are at least *spacing* seconds apart: the
    client's rate limiter alone would let a burst of 5 go at once every 1.1
    s, and a server that handles a burst one request after the other counts
    the last ones late, which can make two bursts look closer than a second
    apart; spaced requests arrive, and are counted, one by one. With
    *limit*, there are at most *limit* turns in any *period* seconds too
    (:func:`pacerFor` gives the limiter's own window): requests then wait
    for their turn here, in priority order, rather than in the client's
    queue. :func:`pacerFor` gives every download on one client the same
    pacer.

    :param slots: requests outstanding at once (5: one second of the
        historical limit, enough to keep it busy over any network).
    :param spacing: least seconds between two turns (0: none).
    :param clock: the time source (needed for *spacing* or *limit*).
    :param limit: most turns in any *period* seconds (``None``: no such bound).
    :param period: the length of that window, seconds.
    """

    def __init__(
        self,
        slots: int = 5,
        spacing: float = 0.0,
        clock: IReactorTime | None = None,
        limit: int | None = None,
        period: float = 1.0,
    ) -> None:
        if isinstance(slots, bool) or not isinstance(slots, int) or slots < 1:
            raise ValueError(f"slots must be a positive integer, got {slots!r}")
        if not (isinstance(spacing, (int, float)) and math.isfinite(spacing) and 0 <= spacing <= 60):
            raise ValueError(f"spacing must be a number of seconds from 0 to 60, got {spacing!r}")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise ValueError(f"limit must be a positive integer or None, got {limit!r}")
        if not (isinstance(period, (int, float)) and math.isfinite(period) and 0 < period <= 3600):
            raise ValueError(f"period must be a number of seconds from 0 to 3600, got {period!r}")
        if (spacing or limit is not None) and clock is None:
            raise ValueError("a spacing or a limit needs a clock")
        self.slots = slots
        self.spacing = float(spacing)
        self.clock = clock
        self.limit = limit
        self.period = float(period)
        #: When the last *limit* turns were given (clock seconds).
        self._given: deque[float] = deque(maxlen=limit or 1)
        self.busy = 0
        #: Per owner, its waiting turns as a heap of (priority, order, Deferred).
        self._waiting: dict[object, list[tuple[float, int, Deferred[None]]]] = {}
        self._order = 0
        self._turns: deque[object] = deque()
        self._last = -math.inf
        self._timer: Any = None

    def __repr__(self) -> str:
        return f"<HistoryPacer {self.busy}/{self.slots} busy, {len(self._turns)} waiting>"

    def acquire(self, owner: object, priority: float = 0) -> Deferred[None]:
        """A Deferred that fires when *owner* may send one request; call
        :meth:`release` once it is answered. Of *owner*'s waiting requests,
        the one with the lowest *priority* goes first (equal ones in the
        order asked). Cancelling the Deferred gives up the turn."""
        self._order += 1
        d: Deferred[None] = Deferred(lambda _: cancel())
        entry = (float(priority), self._order, d)

        def cancel() -> None:
            queue = self._waiting.get(owner)
            if queue is not None and entry in queue:
                queue.remove(entry)
                heapify(queue)
                if not queue:
                    del self._waiting[owner]
                    self._turns.remove(owner)

        queue = self._waiting.get(owner)
        if queue is None:
            queue = self._waiting[owner] = []
            self._turns.append(owner)
        heappush(queue, entry)
        self._grant()
        return d

    def release(self) -> None:
        """One request is answered (or failed): give its slot to the next in turn."""
        self.busy = max(0, self.busy - 1)
        self._grant()

    def _grant(self) -> None:
        while self.busy < self.slots and self._turns:
            if self.clock is not None:
                now = self.clock.seconds()
                due = self._last + self.spacing
                given = self._given
                if self.limit is not None and len(given) == self.limit:
                    due = max(due, given[0] + self.period)
                if due > now:
                    if self._timer is None or not self._timer.active():
                        self._timer = self.clock.callLater(due - now, self._grant)
                    return
                # Turns keep to a grid: one that came late (the reactor was
                # busy) does not push every later one back. The window
                # counts when turns were really given.
                self._last = due if now - due < self.spacing else now
                given.append(now)
            owner = self._turns.popleft()
            queue = self._waiting[owner]
            d = heappop(queue)[2]
            if queue:
                self._turns.append(owner)
            else:
                del self._waiting[owner]
            self.busy += 1
            d.callback(None)


_PACERS: "weakref.WeakKeyDictionary[Any, HistoryPacer]" = weakref.WeakKeyDictionary()


def pacerFor(client: Any) -> HistoryPacer:
    """The :class:`HistoryPacer` every download on *client* shares: turns
    spaced by one second over the client's historical limit (0.2 s for 5/s),
    and at most that many in any of the rate limiter's windows (1.1 s with its
    margin): the pace the limiter lets them through at, so requests wait for
    their turn in the pacer, where the oldest window goes first, not in the
    client's queue."""
    pacer = _PACERS.get(client)
    if pacer is None:
        limiter = getattr(getattr(client, "factory", None), "limiter", None)
        limit = getattr(limiter, "historicalRequestsPerSecond", None)
        if limit:
            pacer = HistoryPacer(
                spacing=1.0 / limit, clock=client.clock, limit=limit, period=float(getattr(limiter, "window", 1.0))
            )
        else:
            pacer = HistoryPacer()
        _PACERS[client] = pacer
    return pacer


# --- progress ---------------------------------------------------------------------------------


@dataclass
class Progress:
    """How far a download is; read it any time (a :class:`Download`'s
    ``progress``).

    :ivar start: the range's start, UTC ms.
    :ivar end: the range's end (excluded), UTC ms.
    :ivar startedAt: clock time the download started, seconds.
    :ivar windowsDone: windows delivered.
    :ivar windowsTotal: windows in all (an estimate for ticks, whose
        windows follow the density).
    :ivar rows: rows delivered.
    :ivar requests: requests answered.
    :ivar retries: requests asked again after a failure that may pass
        (timeouts, lost connections); rate-limit refusals the core wrote
        again are in ``rateLimitRetries``.
    :ivar rateLimitRetries: requests the client wrote again after a
        rate-limit refusal while this download ran (all requests of the
        client: it should stay 0).
    :ivar coveredUntil: rows up to this time (excluded), UTC ms, were delivered.
    :ivar fetched: ms of the range fetched so far, delivered or not (windows
        are fetched side by side, so this runs ahead of ``coveredUntil``;
        with bid and ask, the mean of the two).
    :ivar lastTimestamp: time of the last row delivered, or ``None``.
    :ivar finishedAt: clock time it ended (done, failed or cancelled), or ``None``.
    """

    start: int
    end: int
    startedAt: float
    windowsDone: int = 0
    windowsTotal: int = 0
    rows: int = 0
    requests: int = 0
    retries: int = 0
    rateLimitRetries: int = 0
    coveredUntil: int = 0
    fetched: float = 0.0
    lastTimestamp: int | None = None
    finishedAt: float | None = None
    _retriesAtStart: int = field(default=0, repr=False)

    @property
    def fraction(self) -> float:
        """The part of the range delivered, 0 to 1."""
        span = self.end - self.start
        return 1.0 if span <= 0 else min(1.0, max(0.0, (self.coveredUntil - self.start) / span))

    def elapsed(self, now: float) -> float:
        """Seconds since the start (until the end once finished)."""
        return (self.finishedAt if self.finishedAt is not None else now) - self.startedAt

    def rowsPerSecond(self, now: float) -> float:
        """Rows delivered per second so far."""
        elapsed = self.elapsed(now)
        return self.rows / elapsed if elapsed > 0 else 0.0

    @property
    def fetchedFraction(self) -> float:
        """The part of the range fetched (delivered or about to be), 0 to 1."""
        span = self.end - self.start
        if span <= 0:
            return 1.0
        return min(1.0, max(0.0, max(self.fetched, self.coveredUntil - self.start) / span))

    def eta(self, now: float) -> float | None:
        """Seconds still to go, from the pace of fetching so far (``None``
        until something is fetched)."""
        fraction = self.fetchedFraction
        if fraction <= 0:
            return None
        if fraction >= 1:
            return 0.0
        return self.elapsed(now) * (1 - fraction) / fraction


# --- the download ----------------------------------------------------------------------------

#: Errors after which a history request is asked again: they may pass, and
#: asking again for history changes nothing on the server.
_RETRYABLE = (
    ConnectionLostError,  # lost before or after the write: a read is safe to repeat
    RateLimitError,  # the core's retries ran out
    MaintenanceError,
    QueueFullError,
    TimeoutError,  # RequestTimeout, NotSentTimeout
)


class _Window(NamedTuple):
    start: int
    end: int
    fetch: Deferred[list[list[tuple[_Page, int, int]]]]


def _asyncioAware(d: Deferred[Any]) -> Awaitable[Any]:
    """*d*, or an asyncio future of it when awaited in an asyncio task (Twisted's asyncio reactor)."""
    try:
        import asyncio

        loop = asyncio.get_running_loop()
    except RuntimeError:
        return d
    if asyncio.current_task(loop) is None:
        return d
    return d.asFuture(loop)


class Download(Generic[Row]):
    """One history download (see the module docstring); made by
    :func:`trendbars`, :func:`ticks`, :func:`deals` and :func:`cashFlow`.

    Nothing is asked until it is read. It can be read once, in one of the
    ways ``async for``, :meth:`batches`, :meth:`each` or
    :meth:`eachBatch`. If a request fails for good, the rows of every window
    before it are delivered first, then the error is raised (iterators) or
    the Deferred fails (callbacks); ``progress`` then says how far it
    got (``coveredUntil``), which is where a new download may resume.

    :ivar progress: the :class:`Progress` of the download.
    """

    def __init__(
        self,
        client: Client,
        source: _Source,
        start: int,
        end: int,
        *,
        lookahead: int = 3,
        timeout: float | None = 60.0,
        maxRetries: int = 5,
        skip: int = 0,
        pacer: HistoryPacer | None = None,
        clock: IReactorTime | None = None,
    ) -> None:
        if isinstance(lookahead, bool) or not isinstance(lookahead, int) or lookahead < 1:
            raise ValueError(f"lookahead must be a positive integer, got {lookahead!r}")
        if isinstance(maxRetries, bool) or not isinstance(maxRetries, int) or maxRetries < 0:
            raise ValueError(f"maxRetries must be a non-negative integer, got {maxRetries!r}")
        if isinstance(skip, bool) or not isinstance(skip, int) or skip < 0:
            raise ValueError(f"skip must be a non-negative integer, got {skip!r}")
        if timeout is not None and not (
            isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and math.isfinite(timeout) and timeout > 0
        ):
            raise ValueError(f"timeout must be a positive number of seconds or None, got {timeout!r}")
        self.client = client
        self.source = source
        self.start = start
        self.end = end
        self.lookahead = lookahead
        self.timeout = timeout
        self.maxRetries = maxRetries
        self.pacer = pacer if pacer is not None else pacerFor(client)
        self.clock: IReactorTime = clock if clock is not None else client.clock
        self.progress = Progress(start, end, self.clock.seconds(), coveredUntil=start)
        self._skip = skip
        self._next = start
        self._windows: deque[_Window] = deque()
        #: The window being delivered: its rows still to read, and how many.
        self._current: tuple[_Window, Iterator[Row], int] | None = None
        self._turns = 0
        self._filling = False
        self._outstanding: set[Deferred[Any]] = set()
        self._read = False
        self._prepared: Deferred[None] | None = None
        self._failure: BaseException | None = None
        self._cancelled = False
        self._finished = False

    def __repr__(self) -> str:
        p = self.progress
        return (
            f"<Download {self.source.noun} {p.windowsDone}/{p.windowsTotal} windows, {p.rows} rows"
            f"{' cancelled' if self._cancelled else ''}>"
        )

    # --- reading ---------------------------------------------------------------------

    def _claim(self) -> None:
        if self._read:
            raise RuntimeError("a Download can be read once; make a new one to read the range again")
        self._read = True
        self.progress.startedAt = self.clock.seconds()
        self.progress._retriesAtStart = self._coreRetries()

    def __aiter__(self) -> AsyncIterator[Row]:
        """The rows, oldest first (``async for row in download``)."""
        self._claim()
        return self._rows()

    async def _rows(self) -> AsyncIterator[Row]:
        while True:
            batch = await _asyncioAware(ensureDeferred(self._nextBatch()))
            if batch is None:
                return
            for row in batch:
                if self._cancelled:
                    raise CancelledError("the download was cancelled")
                yield row

    def batches(self) -> AsyncIterator[list[Row]]:
        """The rows window by window (a list per window, oldest first; empty
        windows are skipped): fewer awaits than row by row."""
        self._claim()
        return self._batches()

    async def _batches(self) -> AsyncIterator[list[Row]]:
        while True:
            batch = await _asyncioAware(ensureDeferred(self._nextBatch()))
            if batch is None:
                return
            if batch:
                yield batch

    def each(self, callback: Callable[[Row], Any]) -> Deferred[Progress]:
        """Call ``callback(row)`` for every row, oldest first; a callback that
        returns a Deferred is waited for before the next row.

        :returns: a Deferred firing with the final :class:`Progress`, or
            failing with the error that stopped the download (after the rows
            before it). Cancelling it cancels the download.
        """

        def perBatch(batch: list[Row]) -> Any:
            return self._eachRow(batch, callback)

        return self.eachBatch(perBatch)

    async def _eachRow(self, batch: list[Row], callback: Callable[[Row], Any]) -> None:
        for row in batch:
            result = callback(row)
            if isinstance(result, Deferred):
                await result

    def eachBatch(self, callback: Callable[[list[Row]], Any]) -> Deferred[Progress]:
        """Call ``callback(rows)`` with the rows of every window, oldest first
        (see :meth:`each`)."""
        self._claim()

        async def run() -> Progress:
            while True:
                batch = await self._nextBatch()
                if batch is None:
                    return self.progress
                if batch:
                    result = callback(batch)
                    if isinstance(result, Deferred) or hasattr(result, "__await__"):
                        await result

        outer = ensureDeferred(run())
        outer.addErrback(self._failedOuter)
        return outer

    def _failedOuter(self, failure: Any) -> Any:
        if failure.check(CancelledError):
            self.cancel()
        return failure

    def cancel(self) -> None:
        """Stop: cancel every request of the download. An iterator then
        raises :class:`~twisted.internet.defer.CancelledError`, a callback's
        Deferred fails with it."""
        if self._cancelled or self._finished:
            return
        self._cancelled = True
        self._stop()
        _log.info("History download of {noun} cancelled at {until}", noun=self.source.noun,
                  until=_iso(self.progress.coveredUntil))

    # --- the engine --------------------------------------------------------------------

    def _coreRetries(self) -> int:
        factory = getattr(self.client, "factory", None)
        return int(getattr(factory, "rateLimitRetries", 0))

    def _stop(self) -> None:
        self.progress.finishedAt = self.clock.seconds()
        windows, self._windows = self._windows, deque()
        for window in windows:
            window.fetch.cancel()
            window.fetch.addErrback(lambda f: None)  # never read: its failure is not news
        for d in list(self._outstanding):
            d.cancel()

    async def _nextBatch(self) -> list[Row] | None:
        """The next rows (at most :data:`_BATCH_ROWS`, all of one window), or ``None`` at the end."""
        if self._cancelled:
            raise CancelledError("the download was cancelled")
        if self._failure is not None:
            raise self._failure
        if self._turns:
            # Let the reactor run between two batches: the rows of a window
            # already fetched would otherwise all be handed over in one go.
            try:
                await self._track(deferLater(self.clock, 0, lambda: None))
            except CancelledError:
                self.cancel()
                raise
        self._turns += 1
        if self._current is None:
            try:
                if self._prepared is None:
                    self._prepared = self.source.prepare(self.client, self.timeout)
                    self._track(self._prepared)
                    _log.info(
                        "Downloading {noun} from {start} to {end}", noun=self.source.noun,
                        start=_iso(self.start), end=_iso(self.end),
                    )
                await self._prepared
                self._fill()
                if not self._windows:
                    self._finish()
                    return None
                window = self._windows[0]
                chains = await window.fetch
            except BaseException as error:
                if isinstance(error, CancelledError) or self._cancelled:
                    self.cancel()
                    raise CancelledError("the download was cancelled") from None
                self._failure = error
                self._stop()
                _log.warn(
                    "History download of {noun} failed at {until}: {error}", noun=self.source.noun,
                    until=_iso(self.progress.coveredUntil), error=str(error),
                )
                raise
            self._windows.popleft()
            rows, count = self._rowsOf(window, chains)
            self._current = (window, rows, count)
            self._fill()
        window, rows, left = self._current
        batch = list(islice(rows, _BATCH_ROWS))
        left -= len(batch)
        p = self.progress
        p.rows += len(batch)
        if batch:
            p.lastTimestamp = _timestampOf(batch[-1])
        if left > 0:
            self._current = (window, rows, left)
        else:
            self._current = None
            p.windowsDone += 1
            p.coveredUntil = window.end
        p.rateLimitRetries = self._coreRetries() - p._retriesAtStart
        return batch

    def _finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        p = self.progress
        p.finishedAt = self.clock.seconds()
        p.windowsTotal = p.windowsDone
        p.rateLimitRetries = self._coreRetries() - p._retriesAtStart
        _log.info(
            "Downloaded {rows} {noun} in {windows} windows with {requests} requests in {seconds:.1f} s "
            "({retries} asked again, {limited} rate-limit retries by the client)",
            rows=p.rows, noun=self.source.noun, windows=p.windowsDone, requests=p.requests,
            seconds=p.elapsed(p.finishedAt), retries=p.retries, limited=p.rateLimitRetries,
        )

    def _rowsOf(self, window: _Window, chains: list[list[tuple[_Page, int, int]]]) -> tuple[Iterator[Row], int]:
        """The rows of a fetched window, made as they are read, and how many."""
        source = self.source
        streams = [
            (source.row(page, i) for page, lo, hi in segments for i in range(lo, hi)) for segments in chains
        ]
        count = sum(hi - lo for segments in chains for _, lo, hi in segments)
        rows: Iterator[Row] = streams[0] if len(streams) == 1 else merge(*streams, key=_timestampOf)
        if source.ordered is not None:
            rows = iter(sorted(rows, key=source.ordered))
        if self._skip and window.start == self.start:
            # Resuming: the first rows at the start are already held.
            skip, self._skip = self._skip, 0
            for row in rows:
                if skip and _timestampOf(row) == self.start:
                    skip -= 1
                    count -= 1
                    continue
                rows = chain((row,), rows)
                break
            else:
                count = 0
        return rows, count

    def _fill(self) -> None:
        """Start fetching windows until *lookahead* are under way (a source
        that sizes windows by density starts one alone until it knows it)."""
        source = self.source
        if self._cancelled or self._failure is not None or self._filling:
            return
        self._filling = True  # an answer that arrives at once calls back here: plan in order
        try:
            self._plan()
        finally:
            self._filling = False
        p = self.progress
        left = self.end - self._next
        p.windowsTotal = p.windowsDone + len(self._windows) + (self._current is not None)
        if left > 0:
            p.windowsTotal += -(-left // max(1, source.windowLength(self._next)))

    def _plan(self) -> None:
        source = self.source
        while len(self._windows) < self.lookahead and self._next < self.end:
            if self._windows and not source.sized():
                break
            start = self._next
            length = source.windowLength(start)
            free = self.lookahead - len(self._windows)
            if source.chains and self.end - start <= length * free:
                # The last windows: as many as there are free places, of one
                # size, so that they are fetched side by side to the end.
                length = max(1, -(-(self.end - start) // free))
            end = min(self.end, start + length)
            self._next = end
            # The window is in the queue before its fetch starts (an answer
            # may arrive at once); cancelling it cancels the fetch.
            running: list[Deferred[Any]] = []
            fetch: Deferred[Any] = Deferred(lambda d: running[0].cancel() if running else None)
            self._windows.append(_Window(start, end, fetch))
            running.append(ensureDeferred(self._fetchWindow(start, end)))
            running[0].addBoth(_relay, fetch)

    async def _fetchWindow(self, start: int, end: int) -> list[list[tuple[_Page, int, int]]]:
        chains = self.source.chains
        if len(chains) == 1:
            result = [await self._fetchChain(0, start, end)]
        else:
            fetches = [ensureDeferred(self._fetchChain(i, start, end)) for i in range(len(chains))]
            try:
                result = [await d for d in fetches]
            except BaseException:
                for d in fetches:
                    d.cancel()
                    d.addErrback(lambda f: None)
                raise
        self.source.windowDone(start, end, sum(hi - lo for segments in result for _, lo, hi in segments))
        return result

    async def _fetchChain(self, chain: int, start: int, end: int) -> list[tuple[_Page, int, int]]:
        """The rows of ``[start, end)`` of one stream, following ``hasMore``
        backwards: each answer holds the newest rows of what was asked, so
        the next asks up to the oldest row received, and the rows at that
        boundary received twice are dropped (by identity where rows have
        one, else by count: the newest rows of a millisecond come first)."""
        source = self.source
        segments: list[tuple[_Page, int, int]] = []  # newest first
        upper = end  # the toTimestamp asked for
        held: list[Any] = []  # the rows held whose time is exactly `upper` (their keys)
        share = 1 / len(source.chains)  # of the progress's fetched span
        while True:
            answer = await self._ask(chain, min(start, upper - 1), upper)
            page = source.page(answer, chain)
            if page.hasMore and len(page.times) > (source.pageSize or 0):
                source.pageSize = len(page.times)
            source.pageSeen(page, min(start, upper - 1), upper)
            first = bisect_left(page.times, start)
            if page.hasMore and bisect_right(page.times, upper) <= first:
                raise HistoryError(
                    f"{source.request} answered hasMore with no {source.noun} between {_iso(start)} "
                    f"and {_iso(upper)}: the rest of that window cannot be asked for"
                )
            oldest = page.times[first] if page.hasMore else start
            if held:
                page = source.without(page, upper, held)
            times = page.times
            lo = bisect_left(times, start)
            keep = bisect_left(times, min(end, upper + 1), lo)
            if keep > lo:
                segments.append((page, lo, keep))
            if not page.hasMore:
                self.progress.fetched += (upper - start) * share
                break
            self.progress.fetched += (upper - max(start, oldest)) * share
            new = [source.key(page, i) for i in range(lo, keep) if times[i] == oldest]
            if oldest == upper:
                if not new:
                    raise HistoryError(
                        f"{source.request} keeps answering the same {source.noun} at {_iso(upper)} with hasMore "
                        "(more than a page of rows at one millisecond): cannot page past them"
                    )
                held.extend(new)
            else:
                held = new
            upper = oldest
            self._fill()  # what this page taught may size the next windows
        segments.reverse()
        return segments

    async def _ask(self, chain: int, fromMs: int, toMs: int) -> Any:
        """One request, with a turn from the pacer, asked again after
        failures that may pass."""
        source = self.source
        attempt = 0
        while True:
            await self._track(self.pacer.acquire(self, fromMs))
            if self._cancelled or self._failure is not None:
                self.pacer.release()
                raise CancelledError("the download stopped")
            try:
                answer = await self._track(
                    self.client.request(
                        source.request, None, self.timeout, **source.fields(source.chains[chain], fromMs, toMs)
                    )
                )
            except Exception as error:
                if self._cancelled or not isinstance(error, _RETRYABLE) or attempt >= self.maxRetries:
                    raise
                attempt += 1
                self.progress.retries += 1
                delay = min(30.0, 2.0 ** (attempt - 1))
                limiter = getattr(getattr(self.client, "factory", None), "limiter", None)
                if limiter is not None:
                    delay = max(delay, limiter.wait(source.payloadType))
                _log.warn(
                    "{request} for {start}..{end} failed ({error}); asking again in {delay:.1f} s "
                    "(attempt {attempt} of {most})",
                    request=source.request, start=_iso(fromMs), end=_iso(toMs), error=str(error) or type(error).__name__,
                    delay=delay, attempt=attempt + 1, most=self.maxRetries + 1,
                )
                await self._track(deferLater(self.clock, delay, lambda: None))
                if not getattr(self.client, "isReady", True):
                    await self._track(self.client.whenReady())
                continue
            finally:
                self.pacer.release()
            self.progress.requests += 1
            return answer

    def _track(self, d: Deferred[Any]) -> Deferred[Any]:
        """Remember *d* until it fires, so that :meth:`cancel` can cancel it."""
        if d.called:
            return d
        self._outstanding.add(d)

        def forget(result: Any) -> Any:
            self._outstanding.discard(d)
            return result

        return d.addBoth(forget)


def _relay(result: Any, to: Deferred[Any]) -> None:
    """Fire *to* with *result*, unless it fired already (cancelled)."""
    if not to.called:
        if isinstance(result, Failure):
            to.errback(result)
        else:
            to.callback(result)


def _iso(milliseconds: int) -> str:
    seconds, ms = divmod(int(milliseconds), 1000)
    try:
        return datetime.fromtimestamp(seconds, _UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{ms:03d}Z"
    except (OverflowError, OSError, ValueError):
        return str(milliseconds)


# --- entry points -----------------------------------------------------------------------------


def _range(start: Union[int, datetime], end: Union[int, datetime]) -> tuple[int, int]:
    a, b = toMilliseconds(start, "start"), toMilliseconds(end, "end")
    if a >= b:
        raise ValueError(f"start must be before end, got {_iso(a)} and {_iso(b)}")
    return a, b


def _positiveId(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def _period(period: Union[int, str]) -> int:
    if isinstance(period, str):
        try:
            return int(ProtoOATrendbarPeriod.Value(period.strip().upper()))
        except ValueError:
            pass
    elif isinstance(period, int) and not isinstance(period, bool) and period in TRENDBAR_WINDOW_MS:
        return period
    raise ValueError(f"unknown trend bar period {period!r} (valid: {', '.join(ProtoOATrendbarPeriod.keys())})")


def _priceDigits(digits: int | None) -> int | None:
    if digits is None:
        return None
    if isinstance(digits, bool) or not isinstance(digits, int) or not 0 <= digits <= _MAX_PRICE_DIGITS:
        raise ValueError(f"digits must be an integer from 0 to {_MAX_PRICE_DIGITS} or None, got {digits!r}")
    return digits


def trendbars(
    client: Client,
    accountId: int,
    symbolId: int,
    period: Union[int, str],
    start: Union[int, datetime],
    end: Union[int, datetime],
    *,
    digits: int | None = None,
    **options: Any,
) -> Download[Bar]:
    """Trend bars of one symbol whose open time lies in ``[start, end)``.

    :param client: a client whose session has *accountId* authorized (a
        managed :class:`~ctrader_twisted.client.Client` keeps it so across
        reconnections).
    :param accountId: the ``ctidTraderAccountId``.
    :param symbolId: the symbol.
    :param period: a ``ProtoOATrendbarPeriod`` value or name (``"M1"``, ``"H4"``...).
    :param start: UTC milliseconds or an aware datetime.
    :param end: likewise (excluded).
    :param digits: the symbol's digits; asked of the server when omitted.
    :param options: :class:`Download` options: ``lookahead`` (windows
        fetched ahead, 3), ``timeout`` (seconds per request, 60), ``maxRetries``
        (5), ``skip`` (rows at exactly *start* already held: resuming),
        ``pacer``, ``clock``.
    :returns: a :class:`Download` of :class:`Bar` (nothing is asked until it is read).
    :raises ValueError: a bad period, id, time, range or option (the message names it).
    :raises TypeError: a time that is neither an integer nor a datetime.
    """
    a, b = _range(start, end)
    source = _Trendbars(_positiveId(accountId, "accountId"), _positiveId(symbolId, "symbolId"), _period(period),
                        _priceDigits(digits))
    return Download(client, source, a, b, **options)


_SIDES = {"bid": ("bid",), "ask": ("ask",), "both": ("bid", "ask")}


def ticks(
    client: Client,
    accountId: int,
    symbolId: int,
    start: Union[int, datetime],
    end: Union[int, datetime],
    *,
    side: str = "both",
    digits: int | None = None,
    pagesPerWindow: int = 24,
    **options: Any,
) -> Download[Tick]:
    """Historical ticks of one symbol in ``[start, end)``, oldest first.

    :param side: ``"bid"``, ``"ask"`` or ``"both"`` (both sides merged in
        time order; each :class:`Tick` says its side).
    :param pagesPerWindow: about how many answers each window should take
        (windows follow the density seen so far; fewer, larger windows
        waste fewer requests on half-full pages and hold more in memory).
    :param options: see :func:`trendbars`.
    :returns: a :class:`Download` of :class:`Tick`.
    :raises ValueError: a bad side, id, time, range or option.
    :raises TypeError: a time that is neither an integer nor a datetime.
    """
    a, b = _range(start, end)
    sides = _SIDES.get(side) if isinstance(side, str) else None
    if sides is None:
        raise ValueError(f"side must be 'bid', 'ask' or 'both', got {side!r}")
    if isinstance(pagesPerWindow, bool) or not isinstance(pagesPerWindow, int) or not 1 <= pagesPerWindow <= 1000:
        raise ValueError(f"pagesPerWindow must be an integer from 1 to 1000, got {pagesPerWindow!r}")
    source = _Ticks(_positiveId(accountId, "accountId"), _positiveId(symbolId, "symbolId"), sides,
                    _priceDigits(digits), pagesPerWindow)
    return Download(client, source, a, b, **options)


def deals(
    client: Client, accountId: int, start: Union[int, datetime], end: Union[int, datetime], **options: Any
) -> Download[Deal]:
    """The deals of an account executed in ``[start, end)``, oldest first.

    :param options: see :func:`trendbars`.
    :returns: a :class:`Download` of :class:`Deal`.
    :raises ValueError: a bad id, time, range or option.
    :raises TypeError: a time that is neither an integer nor a datetime.
    """
    a, b = _range(start, end)
    return Download(client, _Deals(_positiveId(accountId, "accountId")), a, b, **options)


def cashFlow(
    client: Client, accountId: int, start: Union[int, datetime], end: Union[int, datetime], **options: Any
) -> Download[CashFlow]:
    """The deposits, withdrawals and other balance operations of an account
    in ``[start, end)``, oldest first.

    :param options: see :func:`trendbars`.
    :returns: a :class:`Download` of :class:`CashFlow`.
    :raises ValueError: a bad id, time, range or option.
    :raises TypeError: a time that is neither an integer nor a datetime.
    """
    a, b = _range(start, end)
    return Download(client, _CashFlow(_positiveId(accountId, "accountId")), a, b, **options)
