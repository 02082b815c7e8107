# -*- test-case-name: tests.test_simulator_memory -*-
"""Trading requests: orders, positions, their history, profit, margin and cash flow.

What the real server does, as far as the recorded sessions show it:

* a trading request (new order, close, amend, cancel) has no ``*Res``: the
  first ``ProtoOAExecutionEvent`` (``ORDER_ACCEPTED``, ``ORDER_REPLACED`` or
  ``ORDER_CANCELLED``) answers it and carries the request's ``clientMsgId``;
  the ``ORDER_FILLED`` that follows a market order carries it too. Other
  connections where the account is authorized get the same events without a
  ``clientMsgId``;
* a trading request refused at validation is answered with a
  ``ProtoOAOrderErrorEvent`` carrying the error code (the recording shows one
  for ``ORDER_NOT_FOUND`` on a cancel): ``TRADING_BAD_VOLUME``,
  ``NOT_ENOUGH_MONEY``, ``TRADING_BAD_STOPS``, ``TRADING_BAD_PRICES``,
  ``POSITION_NOT_FOUND``, ``ORDER_NOT_FOUND``, ``SYMBOL_NOT_FOUND``;
* queries (reconcile, order details, deal and order lists, unrealized profit,
  expected margin, cash flow) answer errors with ``ProtoOAErrorRes``;
* a closed market (``Simulator(marketHours=True)``) refuses new orders and
  closes with ``MARKET_CLOSED``;
* PnL-change subscriptions (``ProtoOAv1PnLChangeSubscribeReq``) and margin
  call thresholds (list, update) are kept per connection and per account.

Fills, money and the execution events are :mod:`..execution`'s.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import TYPE_CHECKING, Any, Callable

from ...messages.OpenApiMessages_pb2 import (
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
    ProtoOAExpectedMarginReq,
    ProtoOAExpectedMarginRes,
    ProtoOAGetPositionUnrealizedPnLReq,
    ProtoOAGetPositionUnrealizedPnLRes,
    ProtoOAMarginCallListReq,
    ProtoOAMarginCallListRes,
    ProtoOAMarginCallUpdateEvent,
    ProtoOAMarginCallUpdateReq,
    ProtoOAMarginCallUpdateRes,
    ProtoOANewOrderReq,
    ProtoOAOrderDetailsReq,
    ProtoOAOrderDetailsRes,
    ProtoOAOrderListByPositionIdReq,
    ProtoOAOrderListByPositionIdRes,
    ProtoOAOrderListReq,
    ProtoOAOrderListRes,
    ProtoOAReconcileReq,
    ProtoOAReconcileRes,
    ProtoOAv1PnLChangeSubscribeReq,
    ProtoOAv1PnLChangeSubscribeRes,
    ProtoOAv1PnLChangeUnSubscribeReq,
    ProtoOAv1PnLChangeUnSubscribeRes,
)
from ...messages.OpenApiModelMessages_pb2 import (
    ProtoOAChangeBalanceType,
    ProtoOADepositWithdraw,
    ProtoOAExecutionType,
    ProtoOAExpectedMargin,
    ProtoOAMarginCall,
    ProtoOAOrderStatus,
    ProtoOAOrderType,
    ProtoOAPositionStatus,
    ProtoOAPositionUnrealizedPnL,
    ProtoOATimeInForce,
    ProtoOATradeSide,
)
from ...history import CASH_FLOW_WINDOW_MS
from ..accounthistory import pastOf
from ..accounts import Order, Position
from ..execution import (
    closeEmptyPosition,
    closingOrder,
    closingPrice,
    commissionFor,
    direction,
    execute,
    executionEvent,
    fillMarket,
    freeMargin,
    marginFor,
    openingPrice,
    unrealizedGross,
)
from .registry import MAX_IDS, Registry

if TYPE_CHECKING:
    from ..accounts import Account
    from ..session import Session

__all__ = ["HANDLERS", "MAX_CASH_FLOW_WINDOW_MS", "MAX_DEALS"]

#: Longest ``ProtoOACashFlowHistoryListReq`` window (one week; the library's table).
MAX_CASH_FLOW_WINDOW_MS = CASH_FLOW_WINDOW_MS
#: Most deals in one ``ProtoOADealListRes`` (``hasMore`` tells there are more).
MAX_DEALS = 1000

#: The handlers of this module.
HANDLERS = Registry()

_MARKET = ProtoOAOrderType.MARKET
_LIMIT = ProtoOAOrderType.LIMIT
_STOP = ProtoOAOrderType.STOP
_STOP_LIMIT = ProtoOAOrderType.STOP_LIMIT
_STOPS = (_STOP, _STOP_LIMIT)
_OPEN = ProtoOAPositionStatus.POSITION_STATUS_OPEN


def _volumeProblem(spec: dict[str, Any], volume: int) -> str | None:
    """Why *volume* is not tradable for a symbol of *spec*, or ``None``."""
    if volume < spec["minVolume"] or volume > spec["maxVolume"]:
        return f"Order volume {volume} is out of bounds [{spec['minVolume']}, {spec['maxVolume']}]"
    if volume % spec["stepVolume"]:
        return f"Order volume {volume} is not a multiple of {spec['stepVolume']}"
    return None


def _badStops(side: ProtoOATradeSide, reference: float, stopLoss: float | None, takeProfit: float | None) -> bool:
    """Whether a stop loss or take profit lies on the wrong side of *reference* for *side*."""
    d = direction(side)
    if stopLoss is not None and (stopLoss - reference) * d >= 0:
        return True
    return takeProfit is not None and (takeProfit - reference) * d <= 0


# --- orders and positions --------------------------------------------------------------------


@HANDLERS.handler(ProtoOANewOrderReq, account=True)
def newOrder(session: Session, account: Account, req: ProtoOANewOrderReq, clientMsgId: str | None) -> None:
    """Place an order: a market order fills at once, a limit or stop order waits."""
    sim = session.simulator
    accountId = account.ctidTraderAccountId

    def refuse(code: str, description: str, positionId: int | None = None) -> None:
        session.orderError(code, description, clientMsgId, accountId, positionId=positionId)

    state = sim.market.symbols.get(req.symbolId)
    if state is None:
        refuse("SYMBOL_NOT_FOUND", f"Symbol {req.symbolId} not found")
        return
    if not sim.marketOpen(req.symbolId):
        refuse("MARKET_CLOSED", f"The market of {state.spec['light']['symbolName']} is closed")
        return
    problem = _volumeProblem(state.spec["spec"], req.volume)
    if problem:
        refuse("TRADING_BAD_VOLUME", problem)
        return
    orderType = req.orderType
    if orderType == ProtoOAOrderType.STOP_LOSS_TAKE_PROFIT:
        refuse("TRADING_BAD_PRICES", "this order type is not simulated")
        return
    if orderType == _LIMIT and not req.limitPrice > 0:
        refuse("TRADING_BAD_PRICES", "a limit order needs a positive limitPrice")
        return
    if orderType in _STOPS and not req.stopPrice > 0:
        refuse("TRADING_BAD_PRICES", "a stop order needs a positive stopPrice")
        return
    if orderType == _STOP_LIMIT and req.slippageInPoints < 0:
        refuse("TRADING_BAD_PRICES", "a stop-limit order's slippageInPoints must not be negative")
        return
    position: Position | None = None
    closing = False
    if req.HasField("positionId") and req.positionId:
        position = account.positions.get(req.positionId)
        if position is None or position.status != _OPEN:
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
    pending = orderType in (_LIMIT, _STOP, _STOP_LIMIT)
    reference = req.limitPrice if orderType == _LIMIT else req.stopPrice if orderType in _STOPS else openingPrice(state, req.tradeSide)
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
    if req.HasField("timeInForce"):
        timeInForce = req.timeInForce
    else:
        timeInForce = ProtoOATimeInForce.GOOD_TILL_CANCEL if pending else ProtoOATimeInForce.IMMEDIATE_OR_CANCEL
    order = Order(
        orderId=next(account.orderIds),
        symbolId=req.symbolId,
        tradeSide=req.tradeSide,
        volume=req.volume,
        orderType=orderType,
        openTimestamp=now,
        positionId=0,
        timeInForce=timeInForce,
        limitPrice=req.limitPrice if orderType == _LIMIT else None,
        stopPrice=req.stopPrice if orderType in _STOPS else None,
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
        trailingStopLoss=req.trailingStopLoss,
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
    executionEvent(sim, account, ProtoOAExecutionType.ORDER_ACCEPTED, session, clientMsgId, order, position)
    if pending:
        return
    if closing:  # closing orders fill in full at the best price
        execute(sim, account, order, position, openingPrice(state, req.tradeSide), session, clientMsgId)
    else:
        fillMarket(sim, account, order, position, session, clientMsgId)


def _openPosition(session: Session, account: Account, positionId: int, clientMsgId: str | None) -> Position | None:
    """The open position *positionId* of *account*, or ``None`` once
    ``POSITION_NOT_FOUND`` has been answered."""
    position = account.positions.get(positionId)
    if position is None or position.status != _OPEN:
        session.orderError(
            "POSITION_NOT_FOUND",
            f"Position {positionId} not found",
            clientMsgId,
            account.ctidTraderAccountId,
            positionId=positionId,
        )
        return None
    return position


@HANDLERS.handler(ProtoOAClosePositionReq, account=True)
def closePosition(session: Session, account: Account, req: ProtoOAClosePositionReq, clientMsgId: str | None) -> None:
    """Close all or part of a position with a market order at the closing price."""
    position = _openPosition(session, account, req.positionId, clientMsgId)
    if position is None:
        return
    sim = session.simulator
    accountId = account.ctidTraderAccountId
    state = sim.market.symbols[position.symbolId]
    spec = state.spec["spec"]
    if not sim.marketOpen(position.symbolId):
        session.orderError(
            "MARKET_CLOSED", f"The market of {state.spec['light']['symbolName']} is closed", clientMsgId, accountId,
            positionId=position.positionId,
        )
        return
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
    order = closingOrder(account, position, req.volume, _MARKET, ProtoOATimeInForce.IMMEDIATE_OR_CANCEL, now)
    executionEvent(sim, account, ProtoOAExecutionType.ORDER_ACCEPTED, session, clientMsgId, order, position)
    execute(sim, account, order, position, closingPrice(state, position.tradeSide), session, clientMsgId)


@HANDLERS.handler(ProtoOAAmendPositionSLTPReq, account=True)
def amendPositionSLTP(
    session: Session, account: Account, req: ProtoOAAmendPositionSLTPReq, clientMsgId: str | None
) -> None:
    """Set a position's stop loss and take profit (a level left out is removed)."""
    position = _openPosition(session, account, req.positionId, clientMsgId)
    if position is None:
        return
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
    position.trailingDistance = (
        abs(closingPrice(state, position.tradeSide) - stopLoss) if position.trailingStopLoss and stopLoss is not None else None
    )
    position.lastUpdate = sim.nowMs()
    executionEvent(sim, account, ProtoOAExecutionType.ORDER_REPLACED, session, clientMsgId, position=position)


def _pendingOrder(session: Session, account: Account, orderId: int, clientMsgId: str | None) -> Order | None:
    """The pending order *orderId* of *account*, or ``None`` once
    ``ORDER_NOT_FOUND`` has been answered."""
    order = account.orders.get(orderId)
    if order is None or not order.pending:
        session.orderError(
            "ORDER_NOT_FOUND", f"Order not found with id {orderId}", clientMsgId, account.ctidTraderAccountId,
            orderId=orderId,
        )
        return None
    return order


@HANDLERS.handler(ProtoOAAmendOrderReq, account=True)
def amendOrder(session: Session, account: Account, req: ProtoOAAmendOrderReq, clientMsgId: str | None) -> None:
    """Change a pending order's volume, price, protection or expiry."""
    order = _pendingOrder(session, account, req.orderId, clientMsgId)
    if order is None:
        return
    sim = session.simulator
    accountId = account.ctidTraderAccountId
    state = sim.market.symbols[order.symbolId]
    if req.HasField("volume"):
        problem = _volumeProblem(state.spec["spec"], req.volume)
        position = account.positions.get(order.positionId)
        if not problem and order.closingOrder and position is not None and position.status == _OPEN:
            # As for a new closing order: no more than the position holds.
            if req.volume > position.volume:
                problem = f"Volume {req.volume} exceeds the position's {position.volume}"
        if problem:
            session.orderError("TRADING_BAD_VOLUME", problem, clientMsgId, accountId, orderId=order.orderId)
            return
    limitPrice = req.limitPrice if req.HasField("limitPrice") else order.limitPrice
    stopPrice = req.stopPrice if req.HasField("stopPrice") else order.stopPrice
    if (order.orderType == _LIMIT and not (limitPrice or 0) > 0) or (order.orderType in _STOPS and not (stopPrice or 0) > 0):
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
    if req.HasField("trailingStopLoss"):
        order.trailingStopLoss = req.trailingStopLoss
    order.limitPrice = limitPrice if order.orderType == _LIMIT else None
    order.stopPrice = stopPrice if order.orderType in _STOPS else None
    order.stopLoss, order.takeProfit = stopLoss, takeProfit
    for name in ("relativeStopLoss", "relativeTakeProfit", "expirationTimestamp", "slippageInPoints"):
        if req.HasField(name):
            setattr(order, name, getattr(req, name))
    order.lastUpdate = sim.nowMs()
    executionEvent(
        sim, account, ProtoOAExecutionType.ORDER_REPLACED, session, clientMsgId, order,
        account.positions.get(order.positionId),
    )


@HANDLERS.handler(ProtoOACancelOrderReq, account=True)
def cancelOrder(session: Session, account: Account, req: ProtoOACancelOrderReq, clientMsgId: str | None) -> None:
    """Cancel a pending order."""
    order = _pendingOrder(session, account, req.orderId, clientMsgId)
    if order is None:
        return
    sim = session.simulator
    now = sim.nowMs()
    order.status = ProtoOAOrderStatus.ORDER_STATUS_CANCELLED
    order.lastUpdate = now
    position = closeEmptyPosition(account, order, now)
    executionEvent(sim, account, ProtoOAExecutionType.ORDER_CANCELLED, session, clientMsgId, order, position)


# --- queries -----------------------------------------------------------------------------------


@HANDLERS.handler(ProtoOAReconcileReq, account=True)
def reconcile(session: Session, account: Account, req: ProtoOAReconcileReq, clientMsgId: str | None) -> None:
    """The open positions and pending orders."""
    session.send(
        ProtoOAReconcileRes(
            ctidTraderAccountId=account.ctidTraderAccountId,
            position=[p.toProto() for p in account.openPositions()],
            order=[o.toProto() for o in account.pendingOrders()],
        ),
        clientMsgId,
    )


def _window(req: Any, default: int) -> tuple[int, int]:
    """A history request's ``(fromTimestamp, toTimestamp)``: from 0, to *default*
    where not given."""
    fromMs = req.fromTimestamp if req.HasField("fromTimestamp") else 0
    toMs = req.toTimestamp if req.HasField("toTimestamp") else default
    return fromMs, toMs


def _between(items: list[Any], fromMs: int, toMs: int, time: Callable[[Any], int]) -> list[Any]:
    """The items of a time-ordered list whose time lies in ``[fromMs, toMs]``."""
    return items[bisect_left(items, fromMs, key=time) : bisect_right(items, toMs, key=time)]


def _dealTime(deal: Any) -> int:
    return int(deal.executionTimestamp)


@HANDLERS.handler(ProtoOADealListReq, account=True)
def dealList(session: Session, account: Account, req: ProtoOADealListReq, clientMsgId: str | None) -> None:
    """The deals executed in a window, newest first as the real server sends
    them (the account's past, :mod:`..accounthistory`, then its own deals):
    the newest ``maxRows``, at most :data:`MAX_DEALS`, with ``hasMore`` when
    the window holds more."""
    sim = session.simulator
    fromMs, toMs = _window(req, sim.nowMs())
    deals = _between(pastOf(sim, account).deals, fromMs, toMs, _dealTime)
    deals += [d for d in account.deals if fromMs <= d.executionTimestamp <= toMs]
    limit = MAX_DEALS
    if req.HasField("maxRows") and req.maxRows > 0:
        limit = min(limit, req.maxRows)
    newest = sorted(deals, key=lambda d: (d.executionTimestamp, d.dealId), reverse=True)[:limit]
    session.send(
        ProtoOADealListRes(
            ctidTraderAccountId=account.ctidTraderAccountId,
            deal=[d.toProto() for d in newest],
            hasMore=len(deals) > limit,
        ),
        clientMsgId,
    )


@HANDLERS.handler(ProtoOAOrderListReq, account=True)
def orderList(session: Session, account: Account, req: ProtoOAOrderListReq, clientMsgId: str | None) -> None:
    """The orders opened in a window (the account's past, then its own)."""
    sim = session.simulator
    fromMs, toMs = _window(req, sim.nowMs())
    orders = _between(pastOf(sim, account).orders, fromMs, toMs, lambda o: int(o.openTimestamp))
    orders += [o for o in account.orders.values() if fromMs <= o.openTimestamp <= toMs]
    session.send(
        ProtoOAOrderListRes(
            ctidTraderAccountId=account.ctidTraderAccountId, order=[o.toProto() for o in orders], hasMore=False
        ),
        clientMsgId,
    )


@HANDLERS.handler(ProtoOADealListByPositionIdReq, account=True)
def dealListByPosition(
    session: Session, account: Account, req: ProtoOADealListByPositionIdReq, clientMsgId: str | None
) -> None:
    """A position's deals of a window, newest first (positions of the past too)."""
    fromMs, toMs = _window(req, session.simulator.nowMs())
    deals = pastOf(session.simulator, account).byPosition.get(req.positionId, []) + [
        d for d in account.deals if d.positionId == req.positionId
    ]
    deals = [d for d in deals if fromMs <= d.executionTimestamp <= toMs]
    session.send(
        ProtoOADealListByPositionIdRes(
            ctidTraderAccountId=account.ctidTraderAccountId, deal=[d.toProto() for d in reversed(deals)], hasMore=False
        ),
        clientMsgId,
    )


@HANDLERS.handler(ProtoOAOrderListByPositionIdReq, account=True)
def orderListByPosition(
    session: Session, account: Account, req: ProtoOAOrderListByPositionIdReq, clientMsgId: str | None
) -> None:
    """A position's orders opened in a window, newest first."""
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


@HANDLERS.handler(ProtoOAOrderDetailsReq, account=True)
def orderDetails(session: Session, account: Account, req: ProtoOAOrderDetailsReq, clientMsgId: str | None) -> None:
    """One order and its deals."""
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


@HANDLERS.handler(ProtoOAGetPositionUnrealizedPnLReq, account=True)
def unrealizedPnL(
    session: Session, account: Account, req: ProtoOAGetPositionUnrealizedPnLReq, clientMsgId: str | None
) -> None:
    """Gross and net unrealized profit of every open position."""
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


@HANDLERS.handler(ProtoOAExpectedMarginReq, account=True)
def expectedMargin(session: Session, account: Account, req: ProtoOAExpectedMarginReq, clientMsgId: str | None) -> None:
    """The margin of buying and of selling each volume asked for, at current prices."""
    sim = session.simulator
    if len(req.volume) > MAX_IDS:
        session.commonError("INVALID_REQUEST", f"volume has {len(req.volume)} entries; at most {MAX_IDS}", clientMsgId)
        return
    state = sim.market.symbols.get(req.symbolId)
    if state is None:
        session.oaError("SYMBOL_NOT_FOUND", f"Symbol {req.symbolId} not found", clientMsgId, account.ctidTraderAccountId)
        return
    margins = [
        ProtoOAExpectedMargin(
            volume=v,
            buyMargin=marginFor(sim, account, state, v, openingPrice(state, ProtoOATradeSide.BUY)),
            sellMargin=marginFor(sim, account, state, v, openingPrice(state, ProtoOATradeSide.SELL)),
        )
        for v in req.volume
    ]
    session.send(
        ProtoOAExpectedMarginRes(ctidTraderAccountId=account.ctidTraderAccountId, margin=margins, moneyDigits=2),
        clientMsgId,
    )


@HANDLERS.handler(ProtoOACashFlowHistoryListReq, account=True)
def cashFlow(session: Session, account: Account, req: ProtoOACashFlowHistoryListReq, clientMsgId: str | None) -> None:
    """Deposits and withdrawals of a window of at most :data:`MAX_CASH_FLOW_WINDOW_MS`,
    oldest first: the account's past (:mod:`..accounthistory`), then its own."""
    if req.toTimestamp <= req.fromTimestamp or req.toTimestamp - req.fromTimestamp > MAX_CASH_FLOW_WINDOW_MS:
        session.oaError(
            "INCORRECT_BOUNDARIES", "the window must be positive and at most one week", clientMsgId,
            account.ctidTraderAccountId,
        )
        return
    operations = pastOf(session.simulator, account).cashFlow + account.cashFlow
    items = [
        ProtoOADepositWithdraw(
            operationType=(
                ProtoOAChangeBalanceType.BALANCE_DEPOSIT if delta >= 0 else ProtoOAChangeBalanceType.BALANCE_WITHDRAW
            ),
            balanceHistoryId=i + 1,
            balance=after,
            delta=abs(delta),
            changeBalanceTimestamp=timestamp,
            equity=after,
            moneyDigits=2,
        )
        for i, (timestamp, delta, after) in enumerate(operations)
        if req.fromTimestamp <= timestamp <= req.toTimestamp
    ]
    session.send(
        ProtoOACashFlowHistoryListRes(ctidTraderAccountId=account.ctidTraderAccountId, depositWithdraw=items),
        clientMsgId,
    )


# --- PnL changes and margin calls --------------------------------------------------------------


@HANDLERS.handler(ProtoOAv1PnLChangeSubscribeReq, account=True)
def subscribePnL(session: Session, account: Account, req: ProtoOAv1PnLChangeSubscribeReq, clientMsgId: str | None) -> None:
    """Send ``ProtoOAv1PnLChangeEvent`` on every market step that changes the
    account's unrealized profit (the first one at the next step)."""
    accountId = account.ctidTraderAccountId
    if accountId in session.pnl:
        session.oaError("ALREADY_SUBSCRIBED", "Already subscribed to PnL changes", clientMsgId, accountId)
        return
    session.pnl[accountId] = None
    session.send(ProtoOAv1PnLChangeSubscribeRes(ctidTraderAccountId=accountId), clientMsgId)


@HANDLERS.handler(ProtoOAv1PnLChangeUnSubscribeReq, account=True)
def unsubscribePnL(
    session: Session, account: Account, req: ProtoOAv1PnLChangeUnSubscribeReq, clientMsgId: str | None
) -> None:
    """Stop the PnL changes."""
    accountId = account.ctidTraderAccountId
    if accountId not in session.pnl:
        session.oaError("INVALID_REQUEST", "Not subscribed to PnL changes", clientMsgId, accountId)
        return
    del session.pnl[accountId]
    session.send(ProtoOAv1PnLChangeUnSubscribeRes(ctidTraderAccountId=accountId), clientMsgId)


def _marginCall(kind: int, threshold: float, now: int | None = None) -> ProtoOAMarginCall:
    call = ProtoOAMarginCall(marginCallType=kind, marginLevelThreshold=threshold)  # type: ignore[arg-type]
    if now is not None:
        call.utcLastUpdateTimestamp = now
    return call


@HANDLERS.handler(ProtoOAMarginCallListReq, account=True)
def marginCallList(session: Session, account: Account, req: ProtoOAMarginCallListReq, clientMsgId: str | None) -> None:
    """The account's three margin call thresholds."""
    calls = [_marginCall(kind, threshold) for kind, threshold in sorted(account.marginCalls.items())]
    session.send(ProtoOAMarginCallListRes(marginCall=calls), clientMsgId)


@HANDLERS.handler(ProtoOAMarginCallUpdateReq, account=True)
def marginCallUpdate(session: Session, account: Account, req: ProtoOAMarginCallUpdateReq, clientMsgId: str | None) -> None:
    """Change one threshold; every connection of the account gets
    ``ProtoOAMarginCallUpdateEvent``."""
    call = req.marginCall
    threshold = call.marginLevelThreshold
    if call.marginCallType not in account.marginCalls or not 0 < threshold < 1e6:
        session.oaError("INVALID_REQUEST", "unknown margin call type or threshold out of range", clientMsgId,
                        account.ctidTraderAccountId)
        return
    account.marginCalls[call.marginCallType] = threshold
    account.marginCallsTriggered.pop(call.marginCallType, None)
    session.send(ProtoOAMarginCallUpdateRes(), clientMsgId)
    session.simulator.accountEvent(
        account.ctidTraderAccountId,
        ProtoOAMarginCallUpdateEvent(
            ctidTraderAccountId=account.ctidTraderAccountId,
            marginCall=_marginCall(call.marginCallType, threshold, session.simulator.nowMs()),
        ),
    )
