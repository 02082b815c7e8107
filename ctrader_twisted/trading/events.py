# -*- test-case-name: tests.test_trading,tests.test_trading_parts,tests.test_trading_session,tests.test_units -*-
"""Typed events: frozen dataclasses for what the server pushes.

Every event names its account and keeps the decoded message it came from in
``raw``; prices and money are :class:`~decimal.Decimal`, times aware UTC
datetimes. Subscribe with :meth:`Trader.on <ctrader_twisted.trading.Trader.on>`
(callbacks, with filters) or :meth:`Trader.stream
<ctrader_twisted.trading.Trader.stream>` (async iterators).

=========================  ==========================================  ===========================
event                      from                                        filters
=========================  ==========================================  ===========================
:class:`Spot`              ``ProtoOASpotEvent``                        ``symbol``
:class:`Bar`               the live bars of ``ProtoOASpotEvent``       ``symbol``, ``period``
:class:`Depth`             ``ProtoOADepthEvent`` (an order book)       ``symbol``
:class:`Execution`         ``ProtoOAExecutionEvent``                   ``symbol``, ``orderId``,
                                                                       ``positionId``, ``type``
:class:`OrderRejection`    ``ProtoOAOrderErrorEvent``                  ``orderId``, ``positionId``
:class:`MarginChanged`     ``ProtoOAMarginChangedEvent``               ``positionId``
:class:`PnLChanged`        ``ProtoOAv1PnLChangeEvent``
:class:`TraderUpdated`     ``ProtoOATraderUpdatedEvent``
:class:`TrailingStop`      ``ProtoOATrailingSLChangedEvent``           ``positionId``
:class:`MarginCall`        ``ProtoOAMarginCallTriggerEvent``,
                           ``ProtoOAMarginCallUpdateEvent``
:class:`SymbolChanged`     ``ProtoOASymbolChangedEvent``
:class:`AccountLogout`     ``ProtoOAAccountDisconnectEvent``
:class:`TokenInvalidated`  ``ProtoOAAccountsTokenInvalidatedEvent``
:class:`AccountChanged`    the account model (after it changed)        ``positionId``, ``orderId``
=========================  ==========================================  ===========================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Callable

from ..units import WIRE_PRICE_DIGITS, moneyFromWire, priceFromDouble, priceFromWire, timeFromWire, unitsFromVolume
from .models import (
    Deal,
    ExecutionType,
    Order,
    Period,
    Position,
    SymbolSource,
    dealFromProto,
    member,
    orderFromProto,
    positionFromProto,
)

__all__ = [
    "Spot",
    "Bar",
    "BookLevel",
    "OrderBook",
    "Depth",
    "Execution",
    "OrderRejection",
    "MarginChanged",
    "PnLChanged",
    "TraderUpdated",
    "TrailingStop",
    "MarginCall",
    "SymbolChanged",
    "AccountLogout",
    "TokenInvalidated",
    "AccountChanged",
    "EVENT_TYPES",
]


def _fastConstructor(cls: type) -> Callable[..., Any]:
    """A constructor of a frozen, slotted dataclass that sets its slots
    directly, one call per field (the generated ``__init__`` goes through
    ``object.__setattr__`` for each): for the events of the hot path. It
    takes every field, positionally, in order."""
    names = list(cls.__dataclass_fields__)  # type: ignore[attr-defined]
    namespace: dict[str, Any] = {"new": object.__new__, "cls": cls}
    for i, name in enumerate(names):
        namespace[f"set{i}"] = cls.__dict__[name].__set__
    arguments = ", ".join(f"v{i}" for i in range(len(names)))
    body = "".join(f"    set{i}(obj, v{i})\n" for i in range(len(names)))
    # The source is built from the field count alone (no outside text).
    exec(f"def make({arguments}):\n    obj = new(cls)\n{body}    return obj\n", namespace)
    make: Callable[..., Any] = namespace["make"]
    make.__doc__ = f"A {cls.__name__} from its {len(names)} fields, in order."
    return make


@dataclass(frozen=True, slots=True)
class Spot:
    """A quote (``ProtoOASpotEvent``), with both sides.

    The server sends only the side(s) that changed; the side it left out is
    carried over from the previous quote of the symbol (``None`` until one
    was seen).

    :ivar bid: the bid, rounded to the symbol's digits.
    :ivar ask: the ask.
    :ivar raw: the ``ProtoOASpotEvent`` (``None`` for a quote rebuilt from
        the last one received, without an event).
    """

    account: int
    symbolId: int
    symbol: str
    bid: Decimal | None
    ask: Decimal | None
    raw: Any = field(repr=False, compare=False)

    @property
    def timestamp(self) -> int:
        """The server's time of the quote, milliseconds (``0`` when it sent none)."""
        raw = self.raw
        return int(raw.timestamp) if raw is not None else 0

    @property
    def time(self) -> datetime | None:
        """The server's time of the quote, or ``None`` when it sent none."""
        timestamp = self.timestamp
        return timeFromWire(timestamp) if timestamp else None

    @property
    def spread(self) -> Decimal | None:
        """``ask - bid`` (``None`` until both are known)."""
        if self.bid is None or self.ask is None:
            return None
        return self.ask - self.bid

    @property
    def mid(self) -> Decimal | None:
        """The middle of bid and ask (``None`` until both are known)."""
        if self.bid is None or self.ask is None:
            return None
        return (self.bid + self.ask) / 2

    @property
    def sessionClose(self) -> Decimal | None:
        """The previous session's close, when the event carries it (the
        first event after a subscription does)."""
        raw = self.raw
        if raw is None or not raw.HasField("sessionClose"):
            return None
        digits = self.bid.as_tuple().exponent if self.bid is not None else -WIRE_PRICE_DIGITS
        return priceFromWire(int(raw.sessionClose), -int(digits))


#: Builds a :class:`Spot` from its six values, in field order (hot path).
newSpot: Callable[[int, int, str, Decimal | None, Decimal | None, Any], Spot] = _fastConstructor(Spot)


@dataclass(frozen=True)
class Bar:
    """The live trend bar of a period, as carried by a spot event (it is
    still forming: its close is the current bid).

    :ivar time: the bar's start.
    :ivar volume: ticks in the bar.
    :ivar raw: the ``ProtoOATrendbar``.
    """

    account: int
    symbolId: int
    symbol: str
    period: Period
    time: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal | None
    volume: int
    raw: Any = field(repr=False, compare=False)

    @classmethod
    def fromProto(cls, account: int, symbolId: int, symbol: str, digits: int, bar: Any, bid: int | None) -> Bar:
        """A live bar from a ``ProtoOATrendbar`` of a spot event (*bid*: the
        event's bid, the close of a bar without ``deltaClose``)."""
        low = int(bar.low)
        if bar.HasField("deltaClose"):
            close: Decimal | None = priceFromWire(low + int(bar.deltaClose), digits)
        else:
            close = priceFromWire(bid, digits) if bid is not None else None
        return cls(
            account=account,
            symbolId=symbolId,
            symbol=symbol,
            period=member(Period, bar.period),
            time=timeFromWire(int(bar.utcTimestampInMinutes) * 60_000),
            open=priceFromWire(low + int(bar.deltaOpen), digits),
            high=priceFromWire(low + int(bar.deltaHigh), digits),
            low=priceFromWire(low, digits),
            close=close,
            volume=int(bar.volume),
            raw=bar,
        )


@dataclass(frozen=True)
class BookLevel:
    """One quote of an order book: a price and the volume there, in units."""

    price: Decimal
    units: Decimal
    quoteId: int


@dataclass(frozen=True)
class OrderBook:
    """The depth of market of a symbol at one moment, best prices first.

    Built from the incremental ``ProtoOADepthEvent`` s (new quotes by id,
    deleted ids) by the market layer.
    """

    symbolId: int
    symbol: str
    bids: tuple[BookLevel, ...]
    asks: tuple[BookLevel, ...]

    @property
    def bestBid(self) -> BookLevel | None:
        """The highest bid, if any."""
        return self.bids[0] if self.bids else None

    @property
    def bestAsk(self) -> BookLevel | None:
        """The lowest ask, if any."""
        return self.asks[0] if self.asks else None

    @property
    def spread(self) -> Decimal | None:
        """Best ask minus best bid (``None`` when a side is empty)."""
        if not self.bids or not self.asks:
            return None
        return self.asks[0].price - self.bids[0].price

    def units(self, side: str) -> Decimal:
        """The volume of one side (``"bids"`` or ``"asks"``), units."""
        levels = self.bids if side == "bids" else self.asks if side == "asks" else None
        if levels is None:
            raise ValueError(f"side must be 'bids' or 'asks', got {side!r}")
        return sum((level.units for level in levels), Decimal(0))


@dataclass(frozen=True)
class Depth:
    """A change of a symbol's order book (``ProtoOADepthEvent``), with the
    whole book after it.

    :ivar added: the quotes added (or replaced) by the event.
    :ivar deleted: the ids of the quotes it removed.
    :ivar raw: the ``ProtoOADepthEvent``.
    """

    account: int
    symbolId: int
    symbol: str
    book: OrderBook
    added: tuple[BookLevel, ...]
    deleted: tuple[int, ...]
    raw: Any = field(repr=False, compare=False)


@dataclass(frozen=True)
class Execution:
    """An execution event (``ProtoOAExecutionEvent``): an order accepted,
    filled, replaced, cancelled...; a swap, a deposit.

    :ivar type: what happened.
    :ivar symbolId: the symbol concerned (``0`` for deposits).
    :ivar errorCode: the code of an ``ORDER_REJECTED``, else ``None``.
    :ivar isServerEvent: caused by the server (a stop loss, a stop-out, a
        pending order triggering), not by a request.
    :ivar balance: the balance it reports (a closing deal or a deposit), else ``None``.
    :ivar raw: the ``ProtoOAExecutionEvent``.
    """

    account: int
    type: ExecutionType
    symbolId: int
    symbol: str
    order: Order | None
    position: Position | None
    deal: Deal | None
    errorCode: str | None
    isServerEvent: bool
    balance: Decimal | None
    raw: Any = field(repr=False, compare=False)

    @property
    def orderId(self) -> int | None:
        """The order's id, if the event has an order."""
        return self.order.id if self.order is not None else None

    @property
    def positionId(self) -> int | None:
        """The position's id, if the event has a position (or a deal)."""
        if self.position is not None:
            return self.position.id
        return self.deal.positionId if self.deal is not None else None

    @classmethod
    def fromProto(cls, event: Any, symbols: SymbolSource) -> Execution:
        """Build it from a decoded ``ProtoOAExecutionEvent``."""
        account = int(event.ctidTraderAccountId)
        order = orderFromProto(event.order, account, symbols) if event.HasField("order") else None
        position = positionFromProto(event.position, account, symbols) if event.HasField("position") else None
        deal = dealFromProto(event.deal, symbols) if event.HasField("deal") else None
        symbolId = (
            deal.symbolId if deal is not None else order.symbolId if order is not None else position.symbolId if position is not None else 0
        )
        balance: Decimal | None = None
        if deal is not None and deal.closed is not None:
            balance = deal.closed.balance
        elif event.HasField("depositWithdraw"):
            cash = event.depositWithdraw
            balance = moneyFromWire(int(cash.balance), int(cash.moneyDigits) if cash.HasField("moneyDigits") else None)
        return cls(
            account=account,
            type=member(ExecutionType, event.executionType),
            symbolId=symbolId,
            symbol=symbols.facts(symbolId).name if symbolId else "",
            order=order,
            position=position,
            deal=deal,
            errorCode=str(event.errorCode) if event.HasField("errorCode") else None,
            isServerEvent=bool(event.isServerEvent),
            balance=balance,
            raw=event,
        )


@dataclass(frozen=True)
class OrderRejection:
    """A trading request refused (``ProtoOAOrderErrorEvent``).

    :ivar orderId: the order concerned, if any; :ivar positionId: likewise.
    :ivar raw: the ``ProtoOAOrderErrorEvent``.
    """

    account: int
    errorCode: str
    description: str
    orderId: int | None
    positionId: int | None
    raw: Any = field(repr=False, compare=False)

    @classmethod
    def fromProto(cls, event: Any) -> OrderRejection:
        """Build it from a decoded ``ProtoOAOrderErrorEvent``."""
        return cls(
            account=int(event.ctidTraderAccountId),
            errorCode=str(event.errorCode),
            description=str(event.description),
            orderId=int(event.orderId) or None,
            positionId=int(event.positionId) or None,
            raw=event,
        )


@dataclass(frozen=True)
class MarginChanged:
    """The margin a position holds changed (``ProtoOAMarginChangedEvent``)."""

    account: int
    positionId: int
    usedMargin: Decimal
    raw: Any = field(repr=False, compare=False)

    @classmethod
    def fromProto(cls, event: Any) -> MarginChanged:
        """Build it from a decoded ``ProtoOAMarginChangedEvent``."""
        digits = int(event.moneyDigits) if event.HasField("moneyDigits") else None
        return cls(int(event.ctidTraderAccountId), int(event.positionId), moneyFromWire(int(event.usedMargin), digits), event)


@dataclass(frozen=True)
class PnLChanged:
    """The account's unrealized profit changed (``ProtoOAv1PnLChangeEvent``,
    after a PnL subscription)."""

    account: int
    gross: Decimal
    net: Decimal
    raw: Any = field(repr=False, compare=False)

    @classmethod
    def fromProto(cls, event: Any) -> PnLChanged:
        """Build it from a decoded ``ProtoOAv1PnLChangeEvent``."""
        digits = int(event.moneyDigits)
        return cls(
            int(event.ctidTraderAccountId),
            moneyFromWire(int(event.grossUnrealizedPnL), digits),
            moneyFromWire(int(event.netUnrealizedPnL), digits),
            event,
        )


@dataclass(frozen=True)
class TraderUpdated:
    """The account's record changed (``ProtoOATraderUpdatedEvent``)."""

    account: int
    balance: Decimal
    balanceVersion: int | None
    leverage: Decimal | None
    raw: Any = field(repr=False, compare=False)

    @classmethod
    def fromProto(cls, event: Any) -> TraderUpdated:
        """Build it from a decoded ``ProtoOATraderUpdatedEvent``."""
        trader = event.trader
        digits = int(trader.moneyDigits) if trader.HasField("moneyDigits") else None
        return cls(
            int(event.ctidTraderAccountId),
            moneyFromWire(int(trader.balance), digits),
            int(trader.balanceVersion) if trader.HasField("balanceVersion") else None,
            Decimal(int(trader.leverageInCents)).scaleb(-2) if trader.HasField("leverageInCents") else None,
            event,
        )


@dataclass(frozen=True)
class TrailingStop:
    """A trailing stop loss moved (``ProtoOATrailingSLChangedEvent``)."""

    account: int
    positionId: int
    orderId: int
    stopPrice: Decimal | None
    time: datetime
    raw: Any = field(repr=False, compare=False)

    @classmethod
    def fromProto(cls, event: Any, digits: int | None) -> TrailingStop:
        """Build it from a decoded ``ProtoOATrailingSLChangedEvent``."""
        return cls(
            int(event.ctidTraderAccountId),
            int(event.positionId),
            int(event.orderId),
            priceFromDouble(event.stopPrice, digits),
            timeFromWire(int(event.utcLastUpdateTimestamp)),
            event,
        )


@dataclass(frozen=True)
class MarginCall:
    """A margin call threshold was reached (``triggered``) or its setting
    changed (``ProtoOAMarginCallTriggerEvent`` / ``ProtoOAMarginCallUpdateEvent``).

    :ivar kind: the threshold's name (``MARGIN_LEVEL_THRESHOLD_1`` ...).
    :ivar threshold: the margin level, percent.
    """

    account: int
    kind: str
    threshold: Decimal | None
    triggered: bool
    raw: Any = field(repr=False, compare=False)

    @classmethod
    def fromProto(cls, event: Any, triggered: bool) -> MarginCall:
        """Build it from a decoded margin-call event."""
        from ..messages.OpenApiModelMessages_pb2 import ProtoOANotificationType

        call = event.marginCall
        value = int(call.marginCallType)
        kind = ProtoOANotificationType.Name(value) if value in ProtoOANotificationType.values() else str(value)
        return cls(int(event.ctidTraderAccountId), kind, priceFromDouble(call.marginLevelThreshold), triggered, event)


@dataclass(frozen=True)
class SymbolChanged:
    """Symbols of the account changed (``ProtoOASymbolChangedEvent``); the
    catalogue has refreshed them when this is delivered."""

    account: int
    symbolIds: tuple[int, ...]
    raw: Any = field(repr=False, compare=False)


@dataclass(frozen=True)
class AccountLogout:
    """The server ended the account's session (``ProtoOAAccountDisconnectEvent``);
    the client authorizes it again on its own."""

    account: int
    raw: Any = field(repr=False, compare=False)


@dataclass(frozen=True)
class TokenInvalidated:
    """The access token of these accounts was invalidated
    (``ProtoOAAccountsTokenInvalidatedEvent``)."""

    accounts: tuple[int, ...]
    reason: str
    raw: Any = field(repr=False, compare=False)


@dataclass(frozen=True)
class AccountChanged:
    """The account model changed.

    :ivar reason: ``"execution"`` (an execution event was applied),
        ``"reconciled"`` (the model was rebuilt from the server after a
        (re)connection), ``"balance"``, ``"margin"``, ``"swap"`` or
        ``"trailing"``.
    :ivar positionId: the position concerned, if one.
    :ivar orderId: the order concerned, if one.
    """

    account: int
    reason: str
    positionId: int | None = None
    orderId: int | None = None


#: Every event class, for :meth:`Trader.on <ctrader_twisted.trading.Trader.on>`'s checks.
EVENT_TYPES: tuple[type, ...] = (
    Spot,
    Bar,
    Depth,
    Execution,
    OrderRejection,
    MarginChanged,
    PnLChanged,
    TraderUpdated,
    TrailingStop,
    MarginCall,
    SymbolChanged,
    AccountLogout,
    TokenInvalidated,
    AccountChanged,
)


def bookLevel(priceWire: int, size: int, quoteId: int, digits: int) -> BookLevel:
    """A :class:`BookLevel` from a depth quote's wire values."""
    return BookLevel(priceFromWire(priceWire, digits), unitsFromVolume(size), quoteId)
