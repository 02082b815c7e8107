# -*- test-case-name: tests.test_simulator -*-
"""Trading: orders, positions, deals, margin and profit.

What the real server does, as far as the recorded sessions show it:

* a trading request has no ``*Res``: the first ``ProtoOAExecutionEvent``
  (``ORDER_ACCEPTED``, ``ORDER_REPLACED`` or ``ORDER_CANCELLED``) answers it
  and carries the request's ``clientMsgId``; the ``ORDER_FILLED`` that follows
  a market order carries it too. Other connections where the account is
  authorized get the same events without a ``clientMsgId``;
* a request refused at validation is answered with a
  ``ProtoOAOrderErrorEvent`` carrying the error code (the recording shows one
  for ``ORDER_NOT_FOUND`` on a cancel): ``TRADING_BAD_VOLUME``,
  ``NOT_ENOUGH_MONEY``, ``TRADING_BAD_STOPS``, ``TRADING_BAD_PRICES``,
  ``POSITION_NOT_FOUND``, ``ORDER_NOT_FOUND``, ``SYMBOL_NOT_FOUND``;
* a pending (limit or stop) order that triggers when the account has not
  enough free margin is rejected with an ``ORDER_REJECTED`` execution event
  whose ``errorCode`` is ``NOT_ENOUGH_MONEY``;
* queries (order details, lists) answer errors with ``ProtoOAErrorRes``.

The account is hedged: every opening order makes its own position; an order
with a ``positionId`` on the opposite side reduces that position. Commission
is charged on both sides at close (``closePositionDetail.commission``), and
``balance`` after a close is the balance before plus gross profit, swap and
commission, as in the recordings.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ..messages.OpenApiMessages_pb2 import (
    ProtoOAAmendOrderReq,
    ProtoOAAmendPositionSLTPReq,
    ProtoOACancelOrderReq,
    ProtoOACashFlowHistoryListReq,
    ProtoOACashFlowHistoryListRes,
    ProtoOAClosePositionReq,
    ProtoOADealListByPositionIdReq,
    ProtoOADealListByPositionIdRes,
    ProtoOADealListReq,
    ProtoOADealListRes,
    ProtoOAExecutionEvent,
    ProtoOAExpectedMarginReq,
    ProtoOAExpectedMarginRes,
    ProtoOAGetPositionUnrealizedPnLReq,
    ProtoOAGetPositionUnrealizedPnLRes,
    ProtoOANewOrderReq,
    ProtoOAOrderDetailsReq,
    ProtoOAOrderDetailsRes,
    ProtoOAOrderListByPositionIdReq,
    ProtoOAOrderListByPositionIdRes,
    ProtoOAOrderListReq,
    ProtoOAOrderListRes,
    ProtoOAReconcileReq,
    ProtoOAReconcileRes,
)
from ..messages.OpenApiModelMessages_pb2 import (
    ProtoOAClosePositionDetail,
    ProtoOADepositWithdraw,
    ProtoOAExpectedMargin,
    ProtoOAPositionUnrealizedPnL,
)
from .accounts import BUY, Account, Deal, Order, Position
from .data import DEPOSIT_ASSET_ID
from .market import SymbolState
from .session import Session, handles

if TYPE_CHECKING:
    from .server import Simulator

__all__ = ["marginFor", "freeMargin", "unrealizedGross", "processTick", "MAX_CASH_FLOW_WINDOW_MS"]

#: Longest ``ProtoOACashFlowHistoryListReq`` window (one week).
MAX_CASH_FLOW_WINDOW_MS = 604_800_000

_MARKET, _LIMIT, _STOP, _PROTECTION, _MARKET_RANGE, _STOP_LIMIT = 1, 2, 3, 4, 5, 6
_ACCEPTED, _FILLED, _REPLACED, _CANCELLED, _EXPIRED, _REJECTED = 2, 3, 4, 5, 6, 7


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
    if kind == 2:
        usd = rate / 1e8 * volume / spec["lotSize"]
    elif kind == 3:
        usd = volume / 100 * price * _quoteRate(sim, state) * rate / 1e7
    else:
        return 0
    return math.ceil(usd * 100 - 1e-9)


def _direction(side: int) -> int:
    return 1 if side == BUY else -1


def closingPrice(state: SymbolState, side: int) -> float:
    """The price a position of *side* closes at now (bid for buys, ask for sells)."""
    return (state.bid if side == BUY else state.ask) / 100000


def openingPrice(state: SymbolState, side: int) -> float:
    """The price an order of *side* fills at now (ask for buys, bid for sells)."""
    return (state.ask if side == BUY else state.bid) / 100000


def unrealizedGross(sim: Simulator, position: Position) -> int:
    """Gross unrealized profit of an open position, deposit cents."""
    state = sim.market.symbols[position.symbolId]
    diff = (closingPrice(state, position.tradeSide) - position.price) * _direction(position.tradeSide)
    return round(diff * position.volume / 100 * _quoteRate(sim, state) * 100)


def freeMargin(sim: Simulator, account: Account) -> int:
    """Equity (balance, unrealized profit, commissions) minus used margin, cents."""
    equity = account.balance
    used = 0
    for position in account.openPositions():
        equity += unrealizedGross(sim, position) + position.commission + position.swap
        used += position.usedMargin
    return equity - used


def _volumeProblem(spec: dict, volume: int) -> str | None:
    if volume < spec["minVolume"] or volume > spec["maxVolume"]:
        return f"Order volume {volume} is out of bounds [{spec['minVolume']}, {spec['maxVolume']}]"
    if volume % spec["stepVolume"]:
        return f"Order volume {volume} is not a multiple of {spec['stepVolume']}"
    return None


def _round(state: SymbolState, price: float) -> float:
    return round(price, state.digits)


# --- events -------------------------------------------------------------------------------


def _event(
    sim: Simulator,
    account: Account,
    executionType: int,
    origin: Session | None,
    clientMsgId: str | None,
    order: Order | None = None,
    position: Position | None = None,
    deal: Deal | None = None,
    errorCode: str | None = None,
    isServerEvent: bool = False,
) -> None:
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


def _protection(state: SymbolState, side: int, price: float, order: Order) -> tuple[float | None, float | None]:
    """Absolute SL/TP for a fill of *order* at *price*."""
    d = _direction(side)
    stopLoss, takeProfit = order.stopLoss, order.takeProfit
    if order.relativeStopLoss:
        stopLoss = _round(state, price - d * order.relativeStopLoss / 100000)
    if order.relativeTakeProfit:
        takeProfit = _round(state, price + d * order.relativeTakeProfit / 100000)
    return stopLoss, takeProfit


def _badStops(side: int, reference: float, stopLoss: float | None, takeProfit: float | None) -> bool:
    d = _direction(side)
    if stopLoss is not None and (stopLoss - reference) * d >= 0:
        return True
    return takeProfit is not None and (takeProfit - reference) * d <= 0


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
    if position.status == 1 and order.tradeSide != position.tradeSide:
        closed = order.volume
        gross = round((price - position.price) * _direction(position.tradeSide) * closed / 100 * rate * 100)
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
            position.status = 2
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
        if position.status != 1:
            position.status = 1
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
    order.status = 2
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
    _event(sim, account, _FILLED, origin, clientMsgId, order, position, deal, isServerEvent=isServerEvent)


# --- requests --------------------------------------------------------------------------------


@handles(ProtoOANewOrderReq)
def newOrder(session: Session, req: ProtoOANewOrderReq, clientMsgId: str | None) -> None:
    account = session.account(req, clientMsgId)
    if account is None:
        return
    sim = session.simulator
    accountId = account.ctidTraderAccountId

    def refuse(code: str, description: str, positionId: int | None = None) -> None:
        session.orderError(code, description, clientMsgId, accountId, positionId=positionId)

    state = sim.market.symbols.get(req.symbolId)
    if state is None:
        refuse("SYMBOL_NOT_FOUND", f"Symbol {req.symbolId} not found")
        return
    problem = _volumeProblem(state.spec["spec"], req.volume)
    if problem:
        refuse("TRADING_BAD_VOLUME", problem)
        return
    orderType = req.orderType
    if orderType == _STOP_LIMIT or orderType == _PROTECTION:
        refuse("TRADING_BAD_PRICES", "this order type is not simulated")
        return
    if orderType == _LIMIT and not req.limitPrice > 0:
        refuse("TRADING_BAD_PRICES", "a limit order needs a positive limitPrice")
        return
    if orderType == _STOP and not req.stopPrice > 0:
        refuse("TRADING_BAD_PRICES", "a stop order needs a positive stopPrice")
        return
    position: Position | None = None
    closing = False
    if req.HasField("positionId") and req.positionId:
        position = account.positions.get(req.positionId)
        if position is None or position.status != 1:
            refuse("POSITION_NOT_FOUND", f"Position {req.positionId} not found", req.positionId)
            return
        if position.symbolId != req.symbolId:
            refuse("TRADING_BAD_VOLUME", "the order's symbol is not the position's", req.positionId)
            return
        closing = req.tradeSide != position.tradeSide
        if closing and req.volume > position.volume:
            refuse("TRADING_BAD_VOLUME", f"Volume {req.volume} exceeds the position's {position.volume}", req.positionId)
            return
    now = sim.nowMs()
    pending = orderType in (_LIMIT, _STOP)
    reference = req.limitPrice if orderType == _LIMIT else req.stopPrice if orderType == _STOP else openingPrice(state, req.tradeSide)
    stopLoss = req.stopLoss if req.HasField("stopLoss") else None
    takeProfit = req.takeProfit if req.HasField("takeProfit") else None
    if _badStops(req.tradeSide, reference, stopLoss, takeProfit):
        refuse("TRADING_BAD_STOPS", "Stop loss or take profit on the wrong side of the price")
        return
    if not pending and not closing:
        required = marginFor(sim, account, state, req.volume, reference)
        if required > freeMargin(sim, account):
            refuse("NOT_ENOUGH_MONEY", f"Not enough money: margin {required} > free margin {freeMargin(sim, account)}")
            return
    order = Order(
        orderId=next(account.orderIds),
        symbolId=req.symbolId,
        tradeSide=req.tradeSide,
        volume=req.volume,
        orderType=orderType,
        openTimestamp=now,
        positionId=0,
        timeInForce=req.timeInForce if req.HasField("timeInForce") else (2 if pending else 3),
        limitPrice=req.limitPrice if orderType == _LIMIT else None,
        stopPrice=req.stopPrice if orderType == _STOP else None,
        stopLoss=stopLoss,
        takeProfit=takeProfit,
        relativeStopLoss=req.relativeStopLoss if req.HasField("relativeStopLoss") else None,
        relativeTakeProfit=req.relativeTakeProfit if req.HasField("relativeTakeProfit") else None,
        expirationTimestamp=req.expirationTimestamp if req.HasField("expirationTimestamp") else None,
        baseSlippagePrice=req.baseSlippagePrice if req.HasField("baseSlippagePrice") else None,
        slippageInPoints=req.slippageInPoints if req.HasField("slippageInPoints") else None,
        clientOrderId=req.clientOrderId,
        label=req.label,
        comment=req.comment,
        closingOrder=closing,
        lastUpdate=now,
    )
    if position is None:
        position = Position(
            positionId=next(account.positionIds),
            symbolId=req.symbolId,
            tradeSide=req.tradeSide,
            volume=0,
            price=0.0,
            openTimestamp=now,
            label=req.label,
            comment=req.comment,
            trailingStopLoss=req.trailingStopLoss,
            lastUpdate=now,
        )
        account.positions[position.positionId] = position
    order.positionId = position.positionId
    account.orders[order.orderId] = order
    _event(sim, account, _ACCEPTED, session, clientMsgId, order, position)
    if not pending:
        execute(sim, account, order, position, openingPrice(state, req.tradeSide), session, clientMsgId)


def _openPosition(session: Session, req: Any, clientMsgId: str | None) -> tuple[Account, Position] | None:
    """The account and the open position *req* names; ``None`` once the
    request has been refused (not authorized, or ``POSITION_NOT_FOUND``)."""
    account = session.account(req, clientMsgId)
    if account is None:
        return None
    position = account.positions.get(req.positionId)
    if position is None or position.status != 1:
        session.orderError(
            "POSITION_NOT_FOUND",
            f"Position {req.positionId} not found",
            clientMsgId,
            account.ctidTraderAccountId,
            positionId=req.positionId,
        )
        return None
    return account, position


@handles(ProtoOAClosePositionReq)
def closePosition(session: Session, req: ProtoOAClosePositionReq, clientMsgId: str | None) -> None:
    found = _openPosition(session, req, clientMsgId)
    if found is None:
        return
    account, position = found
    sim = session.simulator
    accountId = account.ctidTraderAccountId
    state = sim.market.symbols[position.symbolId]
    spec = state.spec["spec"]
    if req.volume > position.volume or req.volume % spec["stepVolume"] or req.volume < spec["minVolume"] and req.volume != position.volume:
        session.orderError(
            "TRADING_BAD_VOLUME",
            f"Cannot close {req.volume} of a position of {position.volume}",
            clientMsgId,
            accountId,
            positionId=position.positionId,
        )
        return
    now = sim.nowMs()
    side = 2 if position.tradeSide == BUY else BUY
    order = Order(
        orderId=next(account.orderIds),
        symbolId=position.symbolId,
        tradeSide=side,
        volume=req.volume,
        orderType=_MARKET,
        openTimestamp=now,
        positionId=position.positionId,
        timeInForce=3,
        closingOrder=True,
        lastUpdate=now,
    )
    account.orders[order.orderId] = order
    _event(sim, account, _ACCEPTED, session, clientMsgId, order, position)
    execute(sim, account, order, position, closingPrice(state, position.tradeSide), session, clientMsgId)


@handles(ProtoOAAmendPositionSLTPReq)
def amendPositionSLTP(session: Session, req: ProtoOAAmendPositionSLTPReq, clientMsgId: str | None) -> None:
    found = _openPosition(session, req, clientMsgId)
    if found is None:
        return
    account, position = found
    sim = session.simulator
    accountId = account.ctidTraderAccountId
    state = sim.market.symbols[position.symbolId]
    stopLoss = req.stopLoss if req.HasField("stopLoss") else None
    takeProfit = req.takeProfit if req.HasField("takeProfit") else None
    if _badStops(position.tradeSide, closingPrice(state, position.tradeSide), stopLoss, takeProfit):
        session.orderError(
            "TRADING_BAD_STOPS", "Stop loss or take profit on the wrong side of the market", clientMsgId, accountId,
            positionId=position.positionId,
        )
        return
    # Like the real server: a level left out of the request is removed.
    position.stopLoss = stopLoss
    position.takeProfit = takeProfit
    if req.HasField("trailingStopLoss"):
        position.trailingStopLoss = req.trailingStopLoss
    position.lastUpdate = sim.nowMs()
    _event(sim, account, _REPLACED, session, clientMsgId, position=position)


def _pendingOrder(session: Session, account: Account, orderId: int, clientMsgId: str | None) -> Order | None:
    order = account.orders.get(orderId)
    if order is None or not order.pending:
        session.orderError(
            "ORDER_NOT_FOUND", f"Order not found with id {orderId}", clientMsgId, account.ctidTraderAccountId,
            orderId=orderId,
        )
        return None
    return order


@handles(ProtoOAAmendOrderReq)
def amendOrder(session: Session, req: ProtoOAAmendOrderReq, clientMsgId: str | None) -> None:
    account = session.account(req, clientMsgId)
    if account is None:
        return
    order = _pendingOrder(session, account, req.orderId, clientMsgId)
    if order is None:
        return
    sim = session.simulator
    accountId = account.ctidTraderAccountId
    state = sim.market.symbols[order.symbolId]
    if req.HasField("volume"):
        problem = _volumeProblem(state.spec["spec"], req.volume)
        if problem:
            session.orderError("TRADING_BAD_VOLUME", problem, clientMsgId, accountId, orderId=order.orderId)
            return
    limitPrice = req.limitPrice if req.HasField("limitPrice") else order.limitPrice
    stopPrice = req.stopPrice if req.HasField("stopPrice") else order.stopPrice
    if (order.orderType == _LIMIT and not (limitPrice or 0) > 0) or (order.orderType == _STOP and not (stopPrice or 0) > 0):
        session.orderError("TRADING_BAD_PRICES", "the order price must be positive", clientMsgId, accountId, orderId=order.orderId)
        return
    stopLoss = req.stopLoss if req.HasField("stopLoss") else order.stopLoss
    takeProfit = req.takeProfit if req.HasField("takeProfit") else order.takeProfit
    reference = limitPrice if order.orderType == _LIMIT else stopPrice
    if _badStops(order.tradeSide, reference or 0.0, stopLoss, takeProfit):
        session.orderError("TRADING_BAD_STOPS", "Stop loss or take profit on the wrong side of the price", clientMsgId,
                           accountId, orderId=order.orderId)
        return
    if req.HasField("volume"):
        order.volume = req.volume
    order.limitPrice = limitPrice if order.orderType == _LIMIT else None
    order.stopPrice = stopPrice if order.orderType == _STOP else None
    order.stopLoss, order.takeProfit = stopLoss, takeProfit
    for name in ("relativeStopLoss", "relativeTakeProfit", "expirationTimestamp", "slippageInPoints"):
        if req.HasField(name):
            setattr(order, name, getattr(req, name))
    order.lastUpdate = sim.nowMs()
    _event(sim, account, _REPLACED, session, clientMsgId, order, account.positions.get(order.positionId))


def _closeEmptyPosition(account: Account, order: Order, now: int) -> Position | None:
    position = account.positions.get(order.positionId)
    if position is not None and position.status == 3:
        position.status = 2
        position.closeTimestamp = now
        position.lastUpdate = now
    return position


@handles(ProtoOACancelOrderReq)
def cancelOrder(session: Session, req: ProtoOACancelOrderReq, clientMsgId: str | None) -> None:
    account = session.account(req, clientMsgId)
    if account is None:
        return
    order = _pendingOrder(session, account, req.orderId, clientMsgId)
    if order is None:
        return
    sim = session.simulator
    now = sim.nowMs()
    order.status = 5
    order.lastUpdate = now
    position = _closeEmptyPosition(account, order, now)
    _event(sim, account, _CANCELLED, session, clientMsgId, order, position)


@handles(ProtoOAReconcileReq)
def reconcile(session: Session, req: ProtoOAReconcileReq, clientMsgId: str | None) -> None:
    account = session.account(req, clientMsgId)
    if account is None:
        return
    session.send(
        ProtoOAReconcileRes(
            ctidTraderAccountId=account.ctidTraderAccountId,
            position=[p.toProto() for p in account.openPositions()],
            order=[o.toProto() for o in account.pendingOrders()],
        ),
        clientMsgId,
    )


def _window(req: object, default: int) -> tuple[int, int]:
    fromMs = req.fromTimestamp if req.HasField("fromTimestamp") else 0  # type: ignore[attr-defined]
    toMs = req.toTimestamp if req.HasField("toTimestamp") else default  # type: ignore[attr-defined]
    return fromMs, toMs


@handles(ProtoOADealListReq)
def dealList(session: Session, req: ProtoOADealListReq, clientMsgId: str | None) -> None:
    account = session.account(req, clientMsgId)
    if account is None:
        return
    fromMs, toMs = _window(req, session.simulator.nowMs())
    deals = [d for d in account.deals if fromMs <= d.executionTimestamp <= toMs]
    limit = req.maxRows if req.HasField("maxRows") and req.maxRows > 0 else len(deals)
    session.send(
        ProtoOADealListRes(
            ctidTraderAccountId=account.ctidTraderAccountId,
            deal=[d.toProto() for d in deals[-limit:]] if limit else [],
            hasMore=len(deals) > limit,
        ),
        clientMsgId,
    )


@handles(ProtoOAOrderListReq)
def orderList(session: Session, req: ProtoOAOrderListReq, clientMsgId: str | None) -> None:
    account = session.account(req, clientMsgId)
    if account is None:
        return
    fromMs, toMs = _window(req, session.simulator.nowMs())
    orders = [o for o in account.orders.values() if fromMs <= o.openTimestamp <= toMs]
    session.send(
        ProtoOAOrderListRes(
            ctidTraderAccountId=account.ctidTraderAccountId, order=[o.toProto() for o in orders], hasMore=False
        ),
        clientMsgId,
    )


@handles(ProtoOADealListByPositionIdReq)
def dealListByPosition(session: Session, req: ProtoOADealListByPositionIdReq, clientMsgId: str | None) -> None:
    account = session.account(req, clientMsgId)
    if account is None:
        return
    fromMs, toMs = _window(req, session.simulator.nowMs())
    deals = [d for d in account.deals if d.positionId == req.positionId and fromMs <= d.executionTimestamp <= toMs]
    session.send(
        ProtoOADealListByPositionIdRes(
            ctidTraderAccountId=account.ctidTraderAccountId, deal=[d.toProto() for d in reversed(deals)], hasMore=False
        ),
        clientMsgId,
    )


@handles(ProtoOAOrderListByPositionIdReq)
def orderListByPosition(session: Session, req: ProtoOAOrderListByPositionIdReq, clientMsgId: str | None) -> None:
    account = session.account(req, clientMsgId)
    if account is None:
        return
    fromMs, toMs = _window(req, session.simulator.nowMs())
    orders = [
        o for o in account.orders.values() if o.positionId == req.positionId and fromMs <= o.openTimestamp <= toMs
    ]
    session.send(
        ProtoOAOrderListByPositionIdRes(
            ctidTraderAccountId=account.ctidTraderAccountId, order=[o.toProto() for o in reversed(orders)], hasMore=False
        ),
        clientMsgId,
    )


@handles(ProtoOAOrderDetailsReq)
def orderDetails(session: Session, req: ProtoOAOrderDetailsReq, clientMsgId: str | None) -> None:
    account = session.account(req, clientMsgId)
    if account is None:
        return
    order = account.orders.get(req.orderId)
    if order is None:
        session.oaError(
            "ORDER_NOT_FOUND", f"Order {req.orderId} not found or not belong to trader", clientMsgId,
            account.ctidTraderAccountId,
        )
        return
    session.send(
        ProtoOAOrderDetailsRes(
            ctidTraderAccountId=account.ctidTraderAccountId,
            order=order.toProto(),
            deal=[d.toProto() for d in account.deals if d.orderId == order.orderId],
        ),
        clientMsgId,
    )


@handles(ProtoOAGetPositionUnrealizedPnLReq)
def unrealizedPnL(session: Session, req: ProtoOAGetPositionUnrealizedPnLReq, clientMsgId: str | None) -> None:
    account = session.account(req, clientMsgId)
    if account is None:
        return
    sim = session.simulator
    items = []
    for position in account.openPositions():
        gross = unrealizedGross(sim, position)
        state = sim.market.symbols[position.symbolId]
        closeCommission = commissionFor(sim, state, position.volume, closingPrice(state, position.tradeSide))
        items.append(
            ProtoOAPositionUnrealizedPnL(
                positionId=position.positionId,
                grossUnrealizedPnL=gross,
                netUnrealizedPnL=gross + position.commission - closeCommission + position.swap,
            )
        )
    session.send(
        ProtoOAGetPositionUnrealizedPnLRes(
            ctidTraderAccountId=account.ctidTraderAccountId, positionUnrealizedPnL=items, moneyDigits=2
        ),
        clientMsgId,
    )


@handles(ProtoOAExpectedMarginReq)
def expectedMargin(session: Session, req: ProtoOAExpectedMarginReq, clientMsgId: str | None) -> None:
    account = session.account(req, clientMsgId)
    if account is None:
        return
    sim = session.simulator
    state = sim.market.symbols.get(req.symbolId)
    if state is None:
        session.oaError("SYMBOL_NOT_FOUND", f"Symbol {req.symbolId} not found", clientMsgId, account.ctidTraderAccountId)
        return
    margins = [
        ProtoOAExpectedMargin(
            volume=v,
            buyMargin=marginFor(sim, account, state, v, openingPrice(state, BUY)),
            sellMargin=marginFor(sim, account, state, v, openingPrice(state, 2)),
        )
        for v in req.volume
    ]
    session.send(
        ProtoOAExpectedMarginRes(ctidTraderAccountId=account.ctidTraderAccountId, margin=margins, moneyDigits=2),
        clientMsgId,
    )


@handles(ProtoOACashFlowHistoryListReq)
def cashFlow(session: Session, req: ProtoOACashFlowHistoryListReq, clientMsgId: str | None) -> None:
    account = session.account(req, clientMsgId)
    if account is None:
        return
    if req.toTimestamp <= req.fromTimestamp or req.toTimestamp - req.fromTimestamp > MAX_CASH_FLOW_WINDOW_MS:
        session.oaError(
            "INCORRECT_BOUNDARIES", "the window must be positive and at most one week", clientMsgId,
            account.ctidTraderAccountId,
        )
        return
    items = [
        ProtoOADepositWithdraw(
            operationType=0 if delta >= 0 else 1,
            balanceHistoryId=i + 1,
            balance=after,
            delta=abs(delta),
            changeBalanceTimestamp=timestamp,
            balanceVersion=i + 1,
            moneyDigits=2,
        )
        for i, (timestamp, delta, after) in enumerate(account.cashFlow)
        if req.fromTimestamp <= timestamp <= req.toTimestamp
    ]
    session.send(
        ProtoOACashFlowHistoryListRes(ctidTraderAccountId=account.ctidTraderAccountId, depositWithdraw=items),
        clientMsgId,
    )


# --- the market moves ------------------------------------------------------------------------


def _triggered(order: Order, state: SymbolState) -> bool:
    bid, ask = state.bid / 100000, state.ask / 100000
    if order.orderType == _LIMIT:
        return ask <= order.limitPrice if order.tradeSide == BUY else bid >= order.limitPrice  # type: ignore[operator]
    if order.orderType == _STOP:
        return ask >= order.stopPrice if order.tradeSide == BUY else bid <= order.stopPrice  # type: ignore[operator]
    return False


def processTick(sim: Simulator, account: Account) -> None:
    """Expire, trigger and protect: what the market move means for *account*."""
    now = sim.nowMs()
    symbols = sim.market.symbols
    for order in account.pendingOrders():
        state = symbols[order.symbolId]
        position = account.positions[order.positionId]
        if order.timeInForce == 1 and order.expirationTimestamp and now >= order.expirationTimestamp:
            order.status = 4
            order.lastUpdate = now
            _event(sim, account, _EXPIRED, None, None, order, _closeEmptyPosition(account, order, now), isServerEvent=True)
            continue
        if not _triggered(order, state):
            continue
        price = openingPrice(state, order.tradeSide)
        closing = position.status == 1 and position.tradeSide != order.tradeSide
        if not closing and marginFor(sim, account, state, order.volume, price) > freeMargin(sim, account):
            order.status = 3
            order.lastUpdate = now
            _event(
                sim, account, _REJECTED, None, None, order, _closeEmptyPosition(account, order, now),
                errorCode="NOT_ENOUGH_MONEY", isServerEvent=True,
            )
            continue
        execute(sim, account, order, position, price, isServerEvent=True)
    for position in account.openPositions():
        state = symbols[position.symbolId]
        price = closingPrice(state, position.tradeSide)
        d = _direction(position.tradeSide)
        hitStop = position.stopLoss is not None and (price - position.stopLoss) * d <= 0
        hitTake = position.takeProfit is not None and (price - position.takeProfit) * d >= 0
        if not (hitStop or hitTake):
            continue
        order = Order(
            orderId=next(account.orderIds),
            symbolId=position.symbolId,
            tradeSide=2 if position.tradeSide == BUY else BUY,
            volume=position.volume,
            orderType=_PROTECTION,
            openTimestamp=now,
            positionId=position.positionId,
            timeInForce=2,
            stopPrice=position.stopLoss,
            limitPrice=position.takeProfit,
            closingOrder=True,
            lastUpdate=now,
        )
        account.orders[order.orderId] = order
        execute(sim, account, order, position, price, isServerEvent=True)
