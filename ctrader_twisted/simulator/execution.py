# -*- test-case-name: tests.test_simulator_memory -*-
"""Trade execution: money, fills, execution events, and what a market move does.

The rules the trading requests (:mod:`.handlers.trading`) and the market
ticker (:mod:`.ticker`) share, as far as the recorded sessions show what the
real server does:

* the account is hedged: every opening order makes its own position; an
  order with a ``positionId`` on the opposite side reduces that position;
* commission is charged on both sides at close
  (``closePositionDetail.commission``), and ``balance`` after a close is the
  balance before plus gross profit, swap and commission;
* every ``ProtoOAExecutionEvent`` goes to each connection where the account
  is authorized; the connection whose request caused it gets it with the
  request's ``clientMsgId``;
* on a market tick, pending (limit and stop) orders expire or trigger, and
  positions whose stop loss or take profit is touched are closed. A pending
  order that triggers when the account has not enough free margin is
  rejected with an ``ORDER_REJECTED`` execution event whose ``errorCode`` is
  ``NOT_ENOUGH_MONEY``; a closing order that triggers when its position is
  no longer open, or holds less than the order's volume (another order
  closed part of it), is rejected likewise with ``POSITION_NOT_OPEN`` or
  ``TRADING_BAD_VOLUME``. A fill never closes more than a position holds.

Money is in cents of the deposit currency (USD), volumes in cents of units,
order and position prices as floats.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ..messages.OpenApiMessages_pb2 import ProtoOAExecutionEvent
from ..messages.OpenApiModelMessages_pb2 import (
    ProtoOAClosePositionDetail,
    ProtoOACommissionType,
    ProtoOAExecutionType,
    ProtoOAOrderStatus,
    ProtoOAOrderType,
    ProtoOAPositionStatus,
    ProtoOATimeInForce,
    ProtoOATradeSide,
)
from .accounts import Account, Deal, Order, Position
from .data import DEPOSIT_ASSET_ID
from .market import SymbolState

if TYPE_CHECKING:
    from .server import Simulator
    from .session import Session

__all__ = [
    "conversionRate",
    "marginFor",
    "commissionFor",
    "direction",
    "closingPrice",
    "openingPrice",
    "unrealizedGross",
    "freeMargin",
    "executionEvent",
    "execute",
    "closingOrder",
    "closeEmptyPosition",
    "processTick",
]

_BUY = ProtoOATradeSide.BUY
_OPEN = ProtoOAPositionStatus.POSITION_STATUS_OPEN


# --- money ------------------------------------------------------------------------------


def conversionRate(sim: Simulator, assetId: int) -> float:
    """Units of the deposit currency (USD) per unit of *assetId*."""
    if assetId == DEPOSIT_ASSET_ID:
        return 1.0
    for state in sim.market.symbols.values():
        light = state.spec["light"]
        if light["baseAssetId"] == assetId and light["quoteAssetId"] == DEPOSIT_ASSET_ID:
            return state.bid / 100000
        if light["quoteAssetId"] == assetId and light["baseAssetId"] == DEPOSIT_ASSET_ID:
            return 100000 / state.ask
    return 1.0


def _quoteRate(sim: Simulator, state: SymbolState) -> float:
    """Units of the deposit currency per unit of *state*'s quote asset."""
    return conversionRate(sim, state.spec["light"]["quoteAssetId"])


def marginFor(sim: Simulator, account: Account, state: SymbolState, volume: int, price: float) -> int:
    """Margin in deposit cents for *volume* (cents of units) at *price*."""
    leverage = account.leverageInCents / 100
    return round(volume / 100 * price * _quoteRate(sim, state) / leverage * 100)


def commissionFor(sim: Simulator, state: SymbolState, volume: int, price: float) -> int:
    """One side's commission in deposit cents (positive), rounded up.

    ``USD_PER_LOT`` charges ``preciseTradingCommissionRate / 1e8`` USD per lot
    (EURUSD: 2.50 USD, so 1,000 units pay 3 cents as recorded);
    ``PERCENTAGE_OF_VALUE`` charges ``preciseTradingCommissionRate / 1e7`` of
    the value (an approximation); other types charge nothing.
    """
    spec = state.spec["spec"]
    rate = spec.get("preciseTradingCommissionRate", 0)
    kind = spec.get("commissionType")
    if kind == ProtoOACommissionType.USD_PER_LOT:
        usd = rate / 1e8 * volume / spec["lotSize"]
    elif kind == ProtoOACommissionType.PERCENTAGE_OF_VALUE:
        usd = volume / 100 * price * _quoteRate(sim, state) * rate / 1e7
    else:
        return 0
    return math.ceil(usd * 100 - 1e-9)


def direction(side: ProtoOATradeSide) -> int:
    """1 for a buy, -1 for a sell: the sign of a price move that profits *side*."""
    return 1 if side == _BUY else -1


def closingPrice(state: SymbolState, side: ProtoOATradeSide) -> float:
    """The price a position of *side* closes at now (bid for buys, ask for sells)."""
    return (state.bid if side == _BUY else state.ask) / 100000


def openingPrice(state: SymbolState, side: ProtoOATradeSide) -> float:
    """The price an order of *side* fills at now (ask for buys, bid for sells)."""
    return (state.ask if side == _BUY else state.bid) / 100000


def unrealizedGross(sim: Simulator, position: Position) -> int:
    """Gross unrealized profit of an open position, deposit cents."""
    state = sim.market.symbols[position.symbolId]
    diff = (closingPrice(state, position.tradeSide) - position.price) * direction(position.tradeSide)
    return round(diff * position.volume / 100 * _quoteRate(sim, state) * 100)


def freeMargin(sim: Simulator, account: Account) -> int:
    """Equity (balance, unrealized profit, commissions) minus used margin, cents."""
    equity = account.balance
    used = 0
    for position in account.openPositions():
        equity += unrealizedGross(sim, position) + position.commission + position.swap
        used += position.usedMargin
    return equity - used


# --- fills and events ------------------------------------------------------------------------


def executionEvent(
    sim: Simulator,
    account: Account,
    executionType: ProtoOAExecutionType,
    origin: Session | None,
    clientMsgId: str | None,
    order: Order | None = None,
    position: Position | None = None,
    deal: Deal | None = None,
    errorCode: str | None = None,
    isServerEvent: bool = False,
) -> None:
    """Send a ``ProtoOAExecutionEvent`` to the account's connections (*origin*
    gets it with *clientMsgId*: the answer to its request)."""
    event = ProtoOAExecutionEvent(
        ctidTraderAccountId=account.ctidTraderAccountId, executionType=executionType, isServerEvent=isServerEvent
    )
    if position is not None:
        event.position.CopyFrom(position.toProto())
    if order is not None:
        event.order.CopyFrom(order.toProto())
    if deal is not None:
        event.deal.CopyFrom(deal.toProto())
    if errorCode is not None:
        event.errorCode = errorCode
    sim.accountEvent(account.ctidTraderAccountId, event, origin, clientMsgId)


def _protection(state: SymbolState, side: ProtoOATradeSide, price: float, order: Order) -> tuple[float | None, float | None]:
    """Absolute SL/TP for a fill of *order* at *price*."""
    d = direction(side)
    stopLoss, takeProfit = order.stopLoss, order.takeProfit
    if order.relativeStopLoss:
        stopLoss = round(price - d * order.relativeStopLoss / 100000, state.digits)
    if order.relativeTakeProfit:
        takeProfit = round(price + d * order.relativeTakeProfit / 100000, state.digits)
    return stopLoss, takeProfit


def execute(
    sim: Simulator,
    account: Account,
    order: Order,
    position: Position,
    price: float,
    origin: Session | None = None,
    clientMsgId: str | None = None,
    isServerEvent: bool = False,
) -> None:
    """Fill *order* at *price* against *position* and publish ``ORDER_FILLED``."""
    now = sim.nowMs()
    state = sim.market.symbols[order.symbolId]
    rate = _quoteRate(sim, state)
    detail = None
    if position.status == _OPEN and order.tradeSide != position.tradeSide:
        closed = order.volume
        if closed > position.volume:
            raise ValueError(
                f"order {order.orderId} would close {closed} of position {position.positionId}, "
                f"which holds {position.volume}"
            )
        gross = round((price - position.price) * direction(position.tradeSide) * closed / 100 * rate * 100)
        openShare = round(position.commission * closed / position.volume)
        closeCommission = -commissionFor(sim, state, closed, price)
        commission = openShare + closeCommission
        account.balance += gross + commission + 0  # swap is not simulated
        account.balanceVersion += 1
        position.commission -= openShare
        position.volume -= closed
        detail = ProtoOAClosePositionDetail(
            entryPrice=position.price,
            grossProfit=gross,
            swap=0,
            commission=commission,
            balance=account.balance,
            quoteToDepositConversionRate=rate,
            closedVolume=closed,
            balanceVersion=account.balanceVersion,
            moneyDigits=2,
            pnlConversionFee=0,
        )
        order.closingOrder = True
        if position.volume == 0:
            position.status = ProtoOAPositionStatus.POSITION_STATUS_CLOSED
            position.closeTimestamp = now
            position.usedMargin = 0
        else:
            position.usedMargin = marginFor(sim, account, state, position.volume, position.price)
        dealCommission = closeCommission
    else:
        dealCommission = -commissionFor(sim, state, order.volume, price)
        total = position.volume + order.volume
        position.price = round((position.price * position.volume + price * order.volume) / total, 10)
        position.volume = total
        if position.status != _OPEN:
            position.status = _OPEN
            position.openTimestamp = now
        position.commission += dealCommission
        position.marginRate = position.price
        position.usedMargin = marginFor(sim, account, state, position.volume, position.price)
        stopLoss, takeProfit = _protection(state, order.tradeSide, price, order)
        if stopLoss is not None:
            position.stopLoss = stopLoss
        if takeProfit is not None:
            position.takeProfit = takeProfit
    position.lastUpdate = now
    order.status = ProtoOAOrderStatus.ORDER_STATUS_FILLED
    order.executionPrice = price
    order.executedVolume = order.volume
    order.closeTimestamp = now
    order.lastUpdate = now
    order.positionId = position.positionId
    deal = Deal(
        dealId=next(account.dealIds),
        orderId=order.orderId,
        positionId=position.positionId,
        symbolId=order.symbolId,
        tradeSide=order.tradeSide,
        volume=order.volume,
        createTimestamp=order.openTimestamp,
        executionTimestamp=now,
        executionPrice=price,
        commission=dealCommission,
        marginRate=price,
        baseToUsdConversionRate=round(price * rate, 10),
        closeDetail=detail,
    )
    account.deals.append(deal)
    executionEvent(
        sim, account, ProtoOAExecutionType.ORDER_FILLED, origin, clientMsgId, order, position, deal,
        isServerEvent=isServerEvent,
    )


def closingOrder(
    account: Account,
    position: Position,
    volume: int,
    orderType: ProtoOAOrderType,
    timeInForce: ProtoOATimeInForce,
    now: int,
    stopPrice: float | None = None,
    limitPrice: float | None = None,
) -> Order:
    """A new order of *account* that closes *volume* of *position* (not filled yet)."""
    order = Order(
        orderId=next(account.orderIds),
        symbolId=position.symbolId,
        tradeSide=ProtoOATradeSide.SELL if position.tradeSide == _BUY else _BUY,
        volume=volume,
        orderType=orderType,
        openTimestamp=now,
        positionId=position.positionId,
        timeInForce=timeInForce,
        stopPrice=stopPrice,
        limitPrice=limitPrice,
        closingOrder=True,
        lastUpdate=now,
    )
    account.orders[order.orderId] = order
    return order


def closeEmptyPosition(account: Account, order: Order, now: int) -> Position | None:
    """The position of a pending *order* that ends unfilled; closed if the
    order was all it had (it never opened)."""
    position = account.positions.get(order.positionId)
    if position is not None and position.status == ProtoOAPositionStatus.POSITION_STATUS_CREATED:
        position.status = ProtoOAPositionStatus.POSITION_STATUS_CLOSED
        position.closeTimestamp = now
        position.lastUpdate = now
    return position


# --- the market moves ------------------------------------------------------------------------


def _triggered(order: Order, state: SymbolState) -> bool:
    bid, ask = state.bid / 100000, state.ask / 100000
    if order.orderType == ProtoOAOrderType.LIMIT:
        return ask <= order.limitPrice if order.tradeSide == _BUY else bid >= order.limitPrice  # type: ignore[operator]
    if order.orderType == ProtoOAOrderType.STOP:
        return ask >= order.stopPrice if order.tradeSide == _BUY else bid <= order.stopPrice  # type: ignore[operator]
    return False


def _reject(sim: Simulator, account: Account, order: Order, now: int, errorCode: str) -> None:
    """A pending order that triggered cannot fill: ``ORDER_REJECTED`` with *errorCode*."""
    order.status = ProtoOAOrderStatus.ORDER_STATUS_REJECTED
    order.lastUpdate = now
    executionEvent(
        sim, account, ProtoOAExecutionType.ORDER_REJECTED, None, None, order,
        closeEmptyPosition(account, order, now), errorCode=errorCode, isServerEvent=True,
    )


def processTick(sim: Simulator, account: Account) -> None:
    """Expire, trigger and protect: what the market move means for *account*."""
    now = sim.nowMs()
    symbols = sim.market.symbols
    for order in account.pendingOrders():
        state = symbols[order.symbolId]
        position = account.positions[order.positionId]
        if (
            order.timeInForce == ProtoOATimeInForce.GOOD_TILL_DATE
            and order.expirationTimestamp
            and now >= order.expirationTimestamp
        ):
            order.status = ProtoOAOrderStatus.ORDER_STATUS_EXPIRED
            order.lastUpdate = now
            executionEvent(
                sim, account, ProtoOAExecutionType.ORDER_EXPIRED, None, None, order,
                closeEmptyPosition(account, order, now), isServerEvent=True,
            )
            continue
        if not _triggered(order, state):
            continue
        price = openingPrice(state, order.tradeSide)
        closing = position.status == _OPEN and position.tradeSide != order.tradeSide
        if order.closingOrder and not closing:
            _reject(sim, account, order, now, "POSITION_NOT_OPEN")
            continue
        if closing and order.volume > position.volume:
            _reject(sim, account, order, now, "TRADING_BAD_VOLUME")
            continue
        if not closing and marginFor(sim, account, state, order.volume, price) > freeMargin(sim, account):
            _reject(sim, account, order, now, "NOT_ENOUGH_MONEY")
            continue
        execute(sim, account, order, position, price, isServerEvent=True)
    for position in account.openPositions():
        state = symbols[position.symbolId]
        price = closingPrice(state, position.tradeSide)
        d = direction(position.tradeSide)
        hitStop = position.stopLoss is not None and (price - position.stopLoss) * d <= 0
        hitTake = position.takeProfit is not None and (price - position.takeProfit) * d >= 0
        if not (hitStop or hitTake):
            continue
        order = closingOrder(
            account, position, position.volume, ProtoOAOrderType.STOP_LOSS_TAKE_PROFIT,
            ProtoOATimeInForce.GOOD_TILL_CANCEL, now, stopPrice=position.stopLoss, limitPrice=position.takeProfit,
        )
        execute(sim, account, order, position, price, isServerEvent=True)
