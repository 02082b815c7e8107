# -*- test-case-name: tests.test_trading,tests.test_trading_parts,tests.test_trading_session,tests.test_units -*-
"""Typed, immutable views of the Open API's trading entities.

Enumerations (:class:`Side`, :class:`OrderType`, ...) are ``IntEnum`` s whose
values are the protocol's, so they go on the wire unchanged and compare
equal to the generated enums' numbers. Orders, positions and deals are frozen
dataclasses with :class:`~decimal.Decimal` prices and money, volumes in units
and lots, and aware UTC datetimes; each keeps the message it came from in
``raw`` (every raw field stays reachable).

The ``*FromProto`` functions build them from decoded messages, given a
:class:`SymbolSource` for names, digits and lot sizes (the symbol catalogue).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import IntEnum
from typing import Any, NamedTuple, Protocol, TypeVar

from ..messages.OpenApiModelMessages_pb2 import (
    ProtoOADealStatus,
    ProtoOAExecutionType,
    ProtoOAOrderStatus,
    ProtoOAOrderType,
    ProtoOAPositionStatus,
    ProtoOATimeInForce,
    ProtoOATradeSide,
    ProtoOATrendbarPeriod,
)
from ..units import lotsFromVolume, moneyFromWire, priceFromDouble, priceFromWire, timeFromWire, unitsFromVolume

__all__ = [
    "Side",
    "OrderType",
    "OrderStatus",
    "TimeInForce",
    "ExecutionType",
    "PositionStatus",
    "DealStatus",
    "Period",
    "SymbolFacts",
    "SymbolSource",
    "Order",
    "Position",
    "Deal",
    "ClosedDetail",
    "PnL",
    "member",
    "orderFromProto",
    "positionFromProto",
    "dealFromProto",
    "isProtection",
]


class Side(IntEnum):
    """A trade's direction (``ProtoOATradeSide``)."""

    BUY = ProtoOATradeSide.BUY
    SELL = ProtoOATradeSide.SELL

    @property
    def sign(self) -> int:
        """1 for a buy, -1 for a sell: the sign of a price move that profits it."""
        return 1 if self is Side.BUY else -1

    @property
    def opposite(self) -> Side:
        """The side that closes a position of this side."""
        return Side.SELL if self is Side.BUY else Side.BUY


class OrderType(IntEnum):
    """``ProtoOAOrderType``."""

    MARKET = ProtoOAOrderType.MARKET
    LIMIT = ProtoOAOrderType.LIMIT
    STOP = ProtoOAOrderType.STOP
    STOP_LOSS_TAKE_PROFIT = ProtoOAOrderType.STOP_LOSS_TAKE_PROFIT
    MARKET_RANGE = ProtoOAOrderType.MARKET_RANGE
    STOP_LIMIT = ProtoOAOrderType.STOP_LIMIT


class OrderStatus(IntEnum):
    """``ProtoOAOrderStatus`` (without the ``ORDER_STATUS_`` prefix)."""

    ACCEPTED = ProtoOAOrderStatus.ORDER_STATUS_ACCEPTED
    FILLED = ProtoOAOrderStatus.ORDER_STATUS_FILLED
    REJECTED = ProtoOAOrderStatus.ORDER_STATUS_REJECTED
    EXPIRED = ProtoOAOrderStatus.ORDER_STATUS_EXPIRED
    CANCELLED = ProtoOAOrderStatus.ORDER_STATUS_CANCELLED


class TimeInForce(IntEnum):
    """``ProtoOATimeInForce``."""

    GOOD_TILL_DATE = ProtoOATimeInForce.GOOD_TILL_DATE
    GOOD_TILL_CANCEL = ProtoOATimeInForce.GOOD_TILL_CANCEL
    IMMEDIATE_OR_CANCEL = ProtoOATimeInForce.IMMEDIATE_OR_CANCEL
    FILL_OR_KILL = ProtoOATimeInForce.FILL_OR_KILL
    MARKET_ON_OPEN = ProtoOATimeInForce.MARKET_ON_OPEN


class ExecutionType(IntEnum):
    """``ProtoOAExecutionType``."""

    ORDER_ACCEPTED = ProtoOAExecutionType.ORDER_ACCEPTED
    ORDER_FILLED = ProtoOAExecutionType.ORDER_FILLED
    ORDER_REPLACED = ProtoOAExecutionType.ORDER_REPLACED
    ORDER_CANCELLED = ProtoOAExecutionType.ORDER_CANCELLED
    ORDER_EXPIRED = ProtoOAExecutionType.ORDER_EXPIRED
    ORDER_REJECTED = ProtoOAExecutionType.ORDER_REJECTED
    ORDER_CANCEL_REJECTED = ProtoOAExecutionType.ORDER_CANCEL_REJECTED
    SWAP = ProtoOAExecutionType.SWAP
    DEPOSIT_WITHDRAW = ProtoOAExecutionType.DEPOSIT_WITHDRAW
    ORDER_PARTIAL_FILL = ProtoOAExecutionType.ORDER_PARTIAL_FILL
    BONUS_DEPOSIT_WITHDRAW = ProtoOAExecutionType.BONUS_DEPOSIT_WITHDRAW


class PositionStatus(IntEnum):
    """``ProtoOAPositionStatus`` (without the ``POSITION_STATUS_`` prefix)."""

    OPEN = ProtoOAPositionStatus.POSITION_STATUS_OPEN
    CLOSED = ProtoOAPositionStatus.POSITION_STATUS_CLOSED
    CREATED = ProtoOAPositionStatus.POSITION_STATUS_CREATED
    ERROR = ProtoOAPositionStatus.POSITION_STATUS_ERROR


class DealStatus(IntEnum):
    """``ProtoOADealStatus``."""

    FILLED = ProtoOADealStatus.FILLED
    PARTIALLY_FILLED = ProtoOADealStatus.PARTIALLY_FILLED
    REJECTED = ProtoOADealStatus.REJECTED
    INTERNALLY_REJECTED = ProtoOADealStatus.INTERNALLY_REJECTED
    ERROR = ProtoOADealStatus.ERROR
    MISSED = ProtoOADealStatus.MISSED


class Period(IntEnum):
    """``ProtoOATrendbarPeriod``: a trend bar's length."""

    M1 = ProtoOATrendbarPeriod.M1
    M2 = ProtoOATrendbarPeriod.M2
    M3 = ProtoOATrendbarPeriod.M3
    M4 = ProtoOATrendbarPeriod.M4
    M5 = ProtoOATrendbarPeriod.M5
    M10 = ProtoOATrendbarPeriod.M10
    M15 = ProtoOATrendbarPeriod.M15
    M30 = ProtoOATrendbarPeriod.M30
    H1 = ProtoOATrendbarPeriod.H1
    H4 = ProtoOATrendbarPeriod.H4
    H12 = ProtoOATrendbarPeriod.H12
    D1 = ProtoOATrendbarPeriod.D1
    W1 = ProtoOATrendbarPeriod.W1
    MN1 = ProtoOATrendbarPeriod.MN1


_E = TypeVar("_E", bound=IntEnum)


def member(enum: type[_E], value: int) -> _E:
    """The member of *enum* for a wire *value*; a value this version does not
    know (a newer server's) is kept as the plain integer rather than refused."""
    found = enum._value2member_map_.get(value)
    return found if found is not None else value  # type: ignore[return-value]


class SymbolFacts(NamedTuple):
    """What converting a message needs to know of its symbol."""

    name: str
    #: price digits; ``None`` until the symbol's details are loaded
    digits: int | None
    #: lot size in cents; ``None`` until the symbol's details are loaded
    lotSize: int | None


class SymbolSource(Protocol):
    """Where converters learn symbol names, digits and lot sizes."""

    def facts(self, symbolId: int) -> SymbolFacts:
        """The facts of *symbolId* (a placeholder name for an unknown id)."""


# --- entities ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Order:
    """An order (``ProtoOAOrder``).

    :ivar units: the order's volume in units; :ivar lots: the same in lots
        (``None`` when the symbol's lot size is unknown).
    :ivar filledUnits: the part executed so far.
    :ivar relativeStopLoss: the stop-loss distance from the entry price
        (relative orders), as a price distance.
    :ivar positionId: the position the order opens, adds to or closes.
    :ivar closing: whether it closes (part of) its position.
    :ivar raw: the ``ProtoOAOrder`` it was built from.
    """

    id: int
    account: int
    symbolId: int
    symbol: str
    side: Side
    type: OrderType
    status: OrderStatus
    units: Decimal
    lots: Decimal | None
    filledUnits: Decimal
    limitPrice: Decimal | None
    stopPrice: Decimal | None
    stopLoss: Decimal | None
    takeProfit: Decimal | None
    relativeStopLoss: Decimal | None
    relativeTakeProfit: Decimal | None
    trailingStopLoss: bool
    timeInForce: TimeInForce
    expiration: datetime | None
    executionPrice: Decimal | None
    positionId: int | None
    closing: bool
    clientOrderId: str
    label: str
    comment: str
    slippagePoints: int | None
    openTime: datetime | None
    updateTime: datetime | None
    raw: Any = field(repr=False, compare=False)

    @property
    def pending(self) -> bool:
        """Whether it waits for its price (a limit, stop or stop-limit order still accepted)."""
        return self.status == OrderStatus.ACCEPTED and self.type in _PENDING

    @property
    def price(self) -> Decimal | None:
        """The price it waits for: the limit price of a limit order, else the stop price."""
        return self.limitPrice if self.type == OrderType.LIMIT else self.stopPrice


_PENDING = (OrderType.LIMIT, OrderType.STOP, OrderType.STOP_LIMIT)


@dataclass(frozen=True)
class Position:
    """A position (``ProtoOAPosition``).

    :ivar entryPrice: the average price of its fills, every digit of the
        wire's double (not rounded to the symbol's digits: its profit depends
        on them).
    :ivar swap: swap charged so far, not yet in the balance.
    :ivar commission: commission charged so far (negative: a cost), not yet
        in the balance; closing charges about as much again.
    :ivar usedMargin: margin it holds, in the deposit currency.
    :ivar raw: the ``ProtoOAPosition`` it was built from.
    """

    id: int
    account: int
    symbolId: int
    symbol: str
    side: Side
    status: PositionStatus
    units: Decimal
    lots: Decimal | None
    entryPrice: Decimal | None
    stopLoss: Decimal | None
    takeProfit: Decimal | None
    trailingStopLoss: bool
    swap: Decimal
    commission: Decimal
    usedMargin: Decimal
    label: str
    comment: str
    openTime: datetime | None
    updateTime: datetime | None
    raw: Any = field(repr=False, compare=False)

    @property
    def open(self) -> bool:
        """Whether the position is open."""
        return self.status == PositionStatus.OPEN


@dataclass(frozen=True)
class ClosedDetail:
    """What a closing deal realized (``ProtoOAClosePositionDetail``); money in
    the deposit currency."""

    entryPrice: Decimal | None
    closedUnits: Decimal
    grossProfit: Decimal
    swap: Decimal
    commission: Decimal
    pnlConversionFee: Decimal
    balance: Decimal
    balanceVersion: int | None
    quoteToDepositRate: Decimal | None

    @property
    def netProfit(self) -> Decimal:
        """Gross profit plus swap, commission and conversion fee: what the balance changed by."""
        return self.grossProfit + self.swap + self.commission + self.pnlConversionFee


@dataclass(frozen=True)
class Deal:
    """An execution (``ProtoOADeal``).

    :ivar commission: this deal's commission (negative: a cost).
    :ivar closed: what it realized, when it closed (part of) a position.
    :ivar raw: the ``ProtoOADeal`` it was built from.
    """

    id: int
    orderId: int
    positionId: int
    symbolId: int
    symbol: str
    side: Side
    status: DealStatus
    units: Decimal
    filledUnits: Decimal
    lots: Decimal | None
    price: Decimal | None
    commission: Decimal
    time: datetime
    closed: ClosedDetail | None
    raw: Any = field(repr=False, compare=False)


@dataclass(frozen=True)
class PnL:
    """Unrealized profit of a position at the current prices, deposit currency.

    :ivar gross: from the price move alone.
    :ivar swap: swap charged so far.
    :ivar commission: commission charged so far (the opening side).
    :ivar net: ``gross + swap + commission``: what closing now would add to
        the balance, but for the closing commission.
    """

    gross: Decimal
    swap: Decimal
    commission: Decimal

    @property
    def net(self) -> Decimal:
        """``gross + swap + commission``."""
        return self.gross + self.swap + self.commission


# --- from messages -----------------------------------------------------------------------


def _price(message: Any, name: str, digits: int | None) -> Decimal | None:
    return priceFromDouble(getattr(message, name), digits) if message.HasField(name) else None


def _time(message: Any, name: str) -> datetime | None:
    if not message.HasField(name):
        return None
    value = int(getattr(message, name))
    return timeFromWire(value) if value > 0 else None


def _lots(volume: int, lotSize: int | None) -> Decimal | None:
    return lotsFromVolume(volume, lotSize) if lotSize else None


def isProtection(order: Any) -> bool:
    """Whether a ``ProtoOAOrder`` is the protection (stop loss / take profit)
    of a position rather than an order of the trader's: the real server lists
    them beside pending orders (recorded ``ProtoOAReconcileRes``)."""
    return bool(order.orderType == ProtoOAOrderType.STOP_LOSS_TAKE_PROFIT)


def orderFromProto(order: Any, account: int, symbols: SymbolSource) -> Order:
    """An :class:`Order` from a decoded ``ProtoOAOrder``."""
    trade = order.tradeData
    facts = symbols.facts(int(trade.symbolId))
    digits = facts.digits
    volume = int(trade.volume)
    relativeStopLoss = priceFromWire(int(order.relativeStopLoss)) if order.HasField("relativeStopLoss") else None
    relativeTakeProfit = priceFromWire(int(order.relativeTakeProfit)) if order.HasField("relativeTakeProfit") else None
    return Order(
        id=int(order.orderId),
        account=account,
        symbolId=int(trade.symbolId),
        symbol=facts.name,
        side=member(Side, trade.tradeSide),
        type=member(OrderType, order.orderType),
        status=member(OrderStatus, order.orderStatus),
        units=unitsFromVolume(volume),
        lots=_lots(volume, facts.lotSize),
        filledUnits=unitsFromVolume(int(order.executedVolume)),
        limitPrice=_price(order, "limitPrice", digits),
        stopPrice=_price(order, "stopPrice", digits),
        stopLoss=_price(order, "stopLoss", digits),
        takeProfit=_price(order, "takeProfit", digits),
        relativeStopLoss=relativeStopLoss,
        relativeTakeProfit=relativeTakeProfit,
        trailingStopLoss=bool(order.trailingStopLoss),
        timeInForce=member(TimeInForce, order.timeInForce),
        expiration=_time(order, "expirationTimestamp"),
        executionPrice=_price(order, "executionPrice", digits),
        positionId=int(order.positionId) or None,
        closing=bool(order.closingOrder),
        clientOrderId=str(order.clientOrderId),
        label=str(trade.label),
        comment=str(trade.comment),
        slippagePoints=int(order.slippageInPoints) if order.HasField("slippageInPoints") else None,
        openTime=_time(trade, "openTimestamp"),
        updateTime=_time(order, "utcLastUpdateTimestamp"),
        raw=order,
    )


def positionFromProto(position: Any, account: int, symbols: SymbolSource) -> Position:
    """A :class:`Position` from a decoded ``ProtoOAPosition``."""
    trade = position.tradeData
    facts = symbols.facts(int(trade.symbolId))
    digits = facts.digits
    moneyDigits = int(position.moneyDigits) if position.HasField("moneyDigits") else None
    volume = int(trade.volume)
    return Position(
        id=int(position.positionId),
        account=account,
        symbolId=int(trade.symbolId),
        symbol=facts.name,
        side=member(Side, trade.tradeSide),
        status=member(PositionStatus, position.positionStatus),
        units=unitsFromVolume(volume),
        lots=_lots(volume, facts.lotSize),
        entryPrice=_price(position, "price", None),
        stopLoss=_price(position, "stopLoss", digits),
        takeProfit=_price(position, "takeProfit", digits),
        trailingStopLoss=bool(position.trailingStopLoss),
        swap=moneyFromWire(int(position.swap), moneyDigits),
        commission=moneyFromWire(int(position.commission), moneyDigits),
        usedMargin=moneyFromWire(int(position.usedMargin), moneyDigits),
        label=str(trade.label),
        comment=str(trade.comment),
        openTime=_time(trade, "openTimestamp"),
        updateTime=_time(position, "utcLastUpdateTimestamp"),
        raw=position,
    )


def dealFromProto(deal: Any, symbols: SymbolSource) -> Deal:
    """A :class:`Deal` from a decoded ``ProtoOADeal``."""
    facts = symbols.facts(int(deal.symbolId))
    moneyDigits = int(deal.moneyDigits) if deal.HasField("moneyDigits") else None
    closed = None
    if deal.HasField("closePositionDetail"):
        detail = deal.closePositionDetail
        detailDigits = int(detail.moneyDigits) if detail.HasField("moneyDigits") else moneyDigits
        closed = ClosedDetail(
            entryPrice=priceFromDouble(detail.entryPrice),
            closedUnits=unitsFromVolume(int(detail.closedVolume)),
            grossProfit=moneyFromWire(int(detail.grossProfit), detailDigits),
            swap=moneyFromWire(int(detail.swap), detailDigits),
            commission=moneyFromWire(int(detail.commission), detailDigits),
            pnlConversionFee=moneyFromWire(int(detail.pnlConversionFee), detailDigits),
            balance=moneyFromWire(int(detail.balance), detailDigits),
            balanceVersion=int(detail.balanceVersion) if detail.HasField("balanceVersion") else None,
            quoteToDepositRate=_price(detail, "quoteToDepositConversionRate", None),
        )
    volume = int(deal.volume)
    return Deal(
        id=int(deal.dealId),
        orderId=int(deal.orderId),
        positionId=int(deal.positionId),
        symbolId=int(deal.symbolId),
        symbol=facts.name,
        side=member(Side, deal.tradeSide),
        status=member(DealStatus, deal.dealStatus),
        units=unitsFromVolume(volume),
        filledUnits=unitsFromVolume(int(deal.filledVolume)),
        lots=_lots(int(deal.filledVolume), facts.lotSize),
        price=_price(deal, "executionPrice", facts.digits),
        commission=moneyFromWire(int(deal.commission), moneyDigits),
        time=timeFromWire(int(deal.executionTimestamp)),
        closed=closed,
        raw=deal,
    )
