"""Accounts, tokens and the trading records the simulator keeps per account.

Plain data: the rules that change them live in ``execution`` and
``handlers.trading``. Money is in
cents of the deposit currency (``moneyDigits`` 2), volumes in cents of units,
order and position prices as floats (as on the wire), spot prices as integers
in 1/100000 of a unit.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Iterator

from ..messages.OpenApiModelMessages_pb2 import (
    ProtoOAAccessRights,
    ProtoOAAccountType,
    ProtoOAClosePositionDetail,
    ProtoOACtidTraderAccount,
    ProtoOADeal,
    ProtoOADealStatus,
    ProtoOAOrder,
    ProtoOAOrderStatus,
    ProtoOAOrderTriggerMethod,
    ProtoOAOrderType,
    ProtoOAPosition,
    ProtoOAPositionStatus,
    ProtoOATimeInForce,
    ProtoOATotalMarginCalculationType,
    ProtoOATradeData,
    ProtoOATradeSide,
    ProtoOATrader,
)
from .data import DEPOSIT_ASSET_ID

__all__ = ["Token", "Account", "Position", "Order", "Deal"]


class Token:
    """An access token and its refresh token, granting a set of accounts.

    :ivar valid: false once refreshed away or revoked.
    """

    __slots__ = ("accessToken", "refreshToken", "accountIds", "expiresIn", "valid", "userId")

    def __init__(
        self, accessToken: str, refreshToken: str, accountIds: list[int], expiresIn: int = 2628000, userId: int = 1
    ) -> None:
        self.accessToken = accessToken
        self.refreshToken = refreshToken
        self.accountIds = list(accountIds)
        self.expiresIn = expiresIn
        self.valid = True
        self.userId = userId

    def __repr__(self) -> str:  # tokens are secrets: never shown
        return f"<Token for accounts {self.accountIds} valid={self.valid}>"


def _tradeData(item: Position | Order) -> ProtoOATradeData:
    """The ``ProtoOATradeData`` of a :class:`Position` or an :class:`Order`
    (both carry the same trade fields)."""
    trade = ProtoOATradeData(
        symbolId=item.symbolId,
        volume=item.volume,
        tradeSide=item.tradeSide,
        openTimestamp=item.openTimestamp,
        guaranteedStopLoss=False,
        measurementUnits="",
    )
    if item.label:
        trade.label = item.label
    if item.comment:
        trade.comment = item.comment
    if item.closeTimestamp is not None:
        trade.closeTimestamp = item.closeTimestamp
    return trade


@dataclass(eq=False)
class Position:
    """One position (hedged accounts: every filled opening order makes one)."""

    positionId: int
    symbolId: int
    tradeSide: ProtoOATradeSide
    volume: int
    price: float
    openTimestamp: int
    #: ``POSITION_STATUS_CREATED`` until the first fill.
    status: ProtoOAPositionStatus = ProtoOAPositionStatus.POSITION_STATUS_CREATED
    stopLoss: float | None = None
    takeProfit: float | None = None
    commission: int = 0
    swap: int = 0
    usedMargin: int = 0
    marginRate: float = 0.0
    label: str = ""
    comment: str = ""
    trailingStopLoss: bool = False
    lastUpdate: int = 0
    closeTimestamp: int | None = None
    #: a trailing stop loss's distance from the price, kept as the price moves
    trailingDistance: float | None = None
    #: when the next swap is charged, ms
    nextSwap: int | None = None
    #: the order whose fill opened it (what trailing-stop events name)
    openingOrderId: int = 0

    def toProto(self) -> ProtoOAPosition:
        """The ``ProtoOAPosition`` form."""
        trade = _tradeData(self)
        p = ProtoOAPosition(
            positionId=self.positionId,
            tradeData=trade,
            positionStatus=self.status,
            swap=self.swap,
            price=self.price,
            utcLastUpdateTimestamp=self.lastUpdate,
            commission=self.commission,
            marginRate=self.marginRate,
            mirroringCommission=0,
            guaranteedStopLoss=False,
            usedMargin=self.usedMargin,
            moneyDigits=2,
            trailingStopLoss=self.trailingStopLoss,
        )
        if self.stopLoss is not None:
            p.stopLoss = self.stopLoss
            p.stopLossTriggerMethod = ProtoOAOrderTriggerMethod.TRADE
        if self.takeProfit is not None:
            p.takeProfit = self.takeProfit
        return p


#: The order types that wait for their price (while accepted).
_PENDING_TYPES = (ProtoOAOrderType.LIMIT, ProtoOAOrderType.STOP, ProtoOAOrderType.STOP_LIMIT)


@dataclass(eq=False)
class Order:
    """One order: market orders fill at once, limit and stop orders wait."""

    orderId: int
    symbolId: int
    tradeSide: ProtoOATradeSide
    volume: int
    orderType: ProtoOAOrderType
    openTimestamp: int
    positionId: int
    status: ProtoOAOrderStatus = ProtoOAOrderStatus.ORDER_STATUS_ACCEPTED
    timeInForce: ProtoOATimeInForce = ProtoOATimeInForce.GOOD_TILL_CANCEL
    limitPrice: float | None = None
    stopPrice: float | None = None
    stopLoss: float | None = None
    takeProfit: float | None = None
    relativeStopLoss: int | None = None
    relativeTakeProfit: int | None = None
    expirationTimestamp: int | None = None
    baseSlippagePrice: float | None = None
    slippageInPoints: int | None = None
    clientOrderId: str = ""
    label: str = ""
    comment: str = ""
    closingOrder: bool = False
    executionPrice: float | None = None
    executedVolume: int = 0
    lastUpdate: int = 0
    closeTimestamp: int | None = None
    trailingStopLoss: bool = False
    isStopOut: bool = False

    @property
    def pending(self) -> bool:
        """Whether the order still waits (accepted, not filled/cancelled)."""
        return self.status == ProtoOAOrderStatus.ORDER_STATUS_ACCEPTED and self.orderType in _PENDING_TYPES

    def toProto(self) -> ProtoOAOrder:
        """The ``ProtoOAOrder`` form."""
        trade = _tradeData(self)
        o = ProtoOAOrder(
            orderId=self.orderId,
            tradeData=trade,
            orderType=self.orderType,
            orderStatus=self.status,
            executedVolume=self.executedVolume,
            utcLastUpdateTimestamp=self.lastUpdate,
            closingOrder=self.closingOrder,
            timeInForce=self.timeInForce,
            positionId=self.positionId,
        )
        for name in (
            "limitPrice", "stopPrice", "stopLoss", "takeProfit", "relativeStopLoss",
            "relativeTakeProfit", "expirationTimestamp", "baseSlippagePrice",
            "slippageInPoints", "executionPrice",
        ):
            value = getattr(self, name)
            if value is not None:
                setattr(o, name, value)
        if self.clientOrderId:
            o.clientOrderId = self.clientOrderId
        if self.trailingStopLoss:
            o.trailingStopLoss = True
        if self.isStopOut:
            o.isStopOut = True
        return o


@dataclass(eq=False)
class Deal:
    """One execution (a fill of an order)."""

    dealId: int
    orderId: int
    positionId: int
    symbolId: int
    tradeSide: ProtoOATradeSide
    volume: int
    createTimestamp: int
    executionTimestamp: int
    executionPrice: float
    commission: int
    marginRate: float
    baseToUsdConversionRate: float
    closeDetail: ProtoOAClosePositionDetail | None = None

    def toProto(self) -> ProtoOADeal:
        """The ``ProtoOADeal`` form."""
        d = ProtoOADeal(
            dealId=self.dealId,
            orderId=self.orderId,
            positionId=self.positionId,
            volume=self.volume,
            filledVolume=self.volume,
            symbolId=self.symbolId,
            createTimestamp=self.createTimestamp,
            executionTimestamp=self.executionTimestamp,
            utcLastUpdateTimestamp=self.createTimestamp,
            executionPrice=self.executionPrice,
            tradeSide=self.tradeSide,
            dealStatus=ProtoOADealStatus.FILLED,
            marginRate=self.marginRate,
            commission=self.commission,
            baseToUsdConversionRate=self.baseToUsdConversionRate,
            moneyDigits=2,
        )
        if self.closeDetail is not None:
            d.closePositionDetail.CopyFrom(self.closeDetail)
        return d


#: The margin call thresholds of a new account, percent of margin level.
DEFAULT_MARGIN_CALLS = {61: 150.0, 62: 120.0, 63: 100.0}


def _ids(start: int) -> Iterator[int]:
    return itertools.count(start)


@dataclass(eq=False)
class Account:
    """A trading account and everything traded on it.

    :ivar balance: in cents of the deposit currency.
    :ivar leverageInCents: 10000 is 1:100 (as recorded).
    """

    ctidTraderAccountId: int
    isLive: bool = False
    traderLogin: int = 0
    balance: int = 1_000_000
    leverageInCents: int = 10000
    brokerName: str = "Simulator"
    depositAssetId: int = DEPOSIT_ASSET_ID
    accessRights: ProtoOAAccessRights = ProtoOAAccessRights.FULL_ACCESS
    accountType: ProtoOAAccountType = ProtoOAAccountType.HEDGED
    balanceVersion: int = 0
    registrationTimestamp: int = 0
    positions: dict[int, Position] = field(default_factory=dict)
    orders: dict[int, Order] = field(default_factory=dict)
    deals: list[Deal] = field(default_factory=list)
    #: Deposits and withdrawals: ``(timestamp, delta, balanceAfter)``.
    cashFlow: list[tuple[int, int, int]] = field(default_factory=list)
    #: margin call thresholds (``ProtoOANotificationType`` -> margin level,
    #: percent) and when each was last triggered (ms)
    marginCalls: dict[int, float] = field(default_factory=lambda: dict(DEFAULT_MARGIN_CALLS))
    marginCallsTriggered: dict[int, int] = field(default_factory=dict)
    positionIds: Iterator[int] = field(default_factory=lambda: _ids(5000001))
    orderIds: Iterator[int] = field(default_factory=lambda: _ids(6000001))
    dealIds: Iterator[int] = field(default_factory=lambda: _ids(7000001))

    def openPositions(self) -> list[Position]:
        """Positions that are open now, oldest first."""
        return [p for p in self.positions.values() if p.status == ProtoOAPositionStatus.POSITION_STATUS_OPEN]

    def pendingOrders(self) -> list[Order]:
        """Limit and stop orders still waiting, oldest first."""
        return [o for o in self.orders.values() if o.pending]

    def toTrader(self) -> ProtoOATrader:
        """The ``ProtoOATrader`` form."""
        return ProtoOATrader(
            ctidTraderAccountId=self.ctidTraderAccountId,
            balance=self.balance,
            balanceVersion=self.balanceVersion,
            accessRights=self.accessRights,
            depositAssetId=self.depositAssetId,
            swapFree=False,
            leverageInCents=self.leverageInCents,
            totalMarginCalculationType=ProtoOATotalMarginCalculationType.SUM,
            maxLeverage=self.leverageInCents,
            frenchRisk=False,
            traderLogin=self.traderLogin,
            accountType=self.accountType,
            brokerName=self.brokerName,
            registrationTimestamp=self.registrationTimestamp,
            isLimitedRisk=False,
            moneyDigits=2,
        )

    def toCtidTraderAccount(self) -> ProtoOACtidTraderAccount:
        """The ``ProtoOACtidTraderAccount`` form (account lists)."""
        return ProtoOACtidTraderAccount(
            ctidTraderAccountId=self.ctidTraderAccountId,
            isLive=self.isLive,
            traderLogin=self.traderLogin,
            brokerTitleShort=self.brokerName,
        )
