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
* a market order that opens or adds to a position takes the book's
  liquidity level by level (:meth:`.market.SymbolState.liquidity`): an
  ``ORDER_PARTIAL_FILL`` (with its deal) per level but the last, then
  ``ORDER_FILLED``; what the book cannot fill is cancelled
  (``ORDER_CANCELLED``, the order keeps its ``executedVolume``). Closing
  orders fill in full at the best price;
* on a market tick (while the symbol's market is open), pending (limit, stop
  and stop-limit) orders expire or trigger, trailing stop losses follow the
  price (``ProtoOATrailingSLChangedEvent``), and positions whose stop loss
  or take profit is touched are closed. A stop-limit order fills only while
  the price is within its ``slippageInPoints`` of the stop price. A pending
  order that triggers when the account has not enough free margin is
  rejected with an ``ORDER_REJECTED`` execution event whose ``errorCode`` is
  ``NOT_ENOUGH_MONEY``; a closing order that triggers when its position is
  no longer open, or holds less than the order's volume (another order
  closed part of it), is rejected likewise with ``POSITION_NOT_OPEN`` or
  ``TRADING_BAD_VOLUME``. A fill never closes more than a position holds;
* swaps are charged at each symbol's ``swapTime`` (every ``swapPeriod``
  hours, three times on ``swapRollover3Days``, not on weekends unless
  ``chargeSwapAtWeekends``): the symbol's ``swapLong``/``swapShort`` in pips
  per unit held, into the position's ``swap`` (a ``SWAP`` execution event),
  realized into the balance when the position closes;
* margin calls: when the margin level (equity over used margin, percent)
  falls to an account's threshold, ``ProtoOAMarginCallTriggerEvent`` (at
  most every ten minutes per threshold); below the simulator's
  ``stopOutLevel`` the position holding the most margin is closed
  (``isStopOut``, a server event), then the next, until the level is back.

Money is in cents of the deposit currency (USD), volumes in cents of units,
order and position prices as floats.
"""

from __future__ import annotations

import math
import time
from decimal import ROUND_HALF_EVEN, Decimal
from typing import TYPE_CHECKING

from ..messages.OpenApiMessages_pb2 import (
    ProtoOAExecutionEvent,
    ProtoOAMarginCallTriggerEvent,
    ProtoOATrailingSLChangedEvent,
)
from ..messages.OpenApiModelMessages_pb2 import (
    ProtoOAClosePositionDetail,
    ProtoOADayOfWeek,
    ProtoOAMarginCall,
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
    "grossProfit",
    "exactRate",
    "equity",
    "freeMargin",
    "fillMarket",
    "nextSwapTime",
    "executionEvent",
    "execute",
    "closingOrder",
    "closeEmptyPosition",
    "processTick",
    "unrealizedTotals",
    "usedMargin",
]

_BUY = ProtoOATradeSide.BUY
_OPEN = ProtoOAPositionStatus.POSITION_STATUS_OPEN

#: A margin call threshold triggers at most this often, ms (as the real server).
MARGIN_CALL_INTERVAL_MS = 600_000


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


_WIRE = Decimal(100000)
_CENT = Decimal("0.01")


def exactRate(sim: Simulator, assetId: int) -> Decimal:
    """:func:`conversionRate` in exact decimals: the bid of a base/deposit
    symbol over 100000, or 100000 over the ask of a deposit/quote symbol."""
    if assetId == DEPOSIT_ASSET_ID:
        return Decimal(1)
    for state in sim.market.symbols.values():
        light = state.spec["light"]
        if light["baseAssetId"] == assetId and light["quoteAssetId"] == DEPOSIT_ASSET_ID:
            return Decimal(state.bid) / _WIRE
        if light["quoteAssetId"] == assetId and light["baseAssetId"] == DEPOSIT_ASSET_ID:
            return _WIRE / Decimal(state.ask)
    return Decimal(1)


def grossProfit(sim: Simulator, state: SymbolState, side: ProtoOATradeSide, entry: float, exit: Decimal, volume: int) -> int:
    """The gross profit of *volume* (cents of a unit) bought or sold at
    *entry* and closed at *exit*, deposit cents: ``(exit - entry) x direction
    x units x rate`` in exact decimals, rounded half to even to the cent (the
    rule the typed account model follows too)."""
    move = (exit - Decimal(repr(entry))) * direction(side)
    value = move * (Decimal(volume) / 100) * exactRate(sim, state.spec["light"]["quoteAssetId"])
    return int(value.quantize(_CENT, ROUND_HALF_EVEN) * 100)


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
    """Gross unrealized profit of an open position at the closing price now,
    deposit cents (:func:`grossProfit`)."""
    state = sim.market.symbols[position.symbolId]
    exit = Decimal(state.bid if position.tradeSide == _BUY else state.ask) / _WIRE
    return grossProfit(sim, state, position.tradeSide, position.price, exit, position.volume)


def equity(sim: Simulator, account: Account) -> int:
    """Balance plus every open position's unrealized gross profit, commission
    and swap, cents."""
    total = account.balance
    for position in account.openPositions():
        total += unrealizedGross(sim, position) + position.commission + position.swap
    return total


def usedMargin(account: Account) -> int:
    """The margin the open positions hold, cents."""
    return sum(p.usedMargin for p in account.openPositions())


def freeMargin(sim: Simulator, account: Account) -> int:
    """Equity (balance, unrealized profit, commissions, swaps) minus used margin, cents."""
    return equity(sim, account) - usedMargin(account)


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
    volume: int | None = None,
) -> None:
    """Fill *volume* of *order* (all it has left by default) at *price* against
    *position*; publish ``ORDER_FILLED``, or ``ORDER_PARTIAL_FILL`` while
    some of the order is left."""
    now = sim.nowMs()
    state = sim.market.symbols[order.symbolId]
    rate = _quoteRate(sim, state)
    part = order.volume - order.executedVolume if volume is None else volume
    final = order.executedVolume + part >= order.volume
    detail = None
    if position.status == _OPEN and order.tradeSide != position.tradeSide:
        closed = part
        if closed > position.volume:
            raise ValueError(
                f"order {order.orderId} would close {closed} of position {position.positionId}, "
                f"which holds {position.volume}"
            )
        gross = grossProfit(sim, state, position.tradeSide, position.price, Decimal(repr(price)), closed)
        openShare = round(position.commission * closed / position.volume)
        swapShare = round(position.swap * closed / position.volume)
        closeCommission = -commissionFor(sim, state, closed, price)
        commission = openShare + closeCommission
        account.balance += gross + commission + swapShare
        account.balanceVersion += 1
        position.commission -= openShare
        position.swap -= swapShare
        position.volume -= closed
        detail = ProtoOAClosePositionDetail(
            entryPrice=position.price,
            grossProfit=gross,
            swap=swapShare,
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
        dealCommission = -commissionFor(sim, state, part, price)
        total = position.volume + part
        position.price = round((position.price * position.volume + price * part) / total, 10)
        position.volume = total
        if position.status != _OPEN:
            position.status = _OPEN
            position.openTimestamp = now
            position.openingOrderId = order.orderId
            position.nextSwap = nextSwapTime(state, now)
        position.commission += dealCommission
        position.marginRate = position.price
        position.usedMargin = marginFor(sim, account, state, position.volume, position.price)
        stopLoss, takeProfit = _protection(state, order.tradeSide, price, order)
        if stopLoss is not None:
            position.stopLoss = stopLoss
            if order.trailingStopLoss:
                position.trailingStopLoss = True
                position.trailingDistance = abs(price - stopLoss)
        if takeProfit is not None:
            position.takeProfit = takeProfit
    position.lastUpdate = now
    filledBefore = order.executedVolume
    order.executedVolume += part
    order.executionPrice = round(((order.executionPrice or 0.0) * filledBefore + price * part) / order.executedVolume, 10)
    order.lastUpdate = now
    order.positionId = position.positionId
    if final:
        order.status = ProtoOAOrderStatus.ORDER_STATUS_FILLED
        order.closeTimestamp = now
    deal = Deal(
        dealId=next(account.dealIds),
        orderId=order.orderId,
        positionId=position.positionId,
        symbolId=order.symbolId,
        tradeSide=order.tradeSide,
        volume=part,
        createTimestamp=order.openTimestamp,
        executionTimestamp=now,
        executionPrice=price,
        commission=dealCommission,
        marginRate=price,
        baseToUsdConversionRate=round(price * rate, 10),
        closeDetail=detail,
    )
    account.deals.append(deal)
    kind = ProtoOAExecutionType.ORDER_FILLED if final else ProtoOAExecutionType.ORDER_PARTIAL_FILL
    executionEvent(sim, account, kind, origin, clientMsgId, order, position, deal, isServerEvent=isServerEvent)


def fillMarket(
    sim: Simulator,
    account: Account,
    order: Order,
    position: Position,
    origin: Session | None = None,
    clientMsgId: str | None = None,
) -> None:
    """Fill a market order that opens or adds to *position* level by level
    from the book's liquidity; cancel what the book cannot fill."""
    state = sim.market.symbols[order.symbolId]
    step = max(1, int(state.spec["spec"].get("stepVolume", 1)))
    remaining = order.volume - order.executedVolume
    for price, size, quote in state.liquidity(order.tradeSide):
        if remaining <= 0:
            break
        part = min(remaining, size // step * step)
        if part <= 0:
            continue
        remaining -= part
        if quote is not None:
            quote.size -= part
        execute(sim, account, order, position, price / 100000, origin, clientMsgId, volume=part)
    if remaining > 0:
        now = sim.nowMs()
        order.status = ProtoOAOrderStatus.ORDER_STATUS_CANCELLED
        order.lastUpdate = now
        order.closeTimestamp = now
        if order.executedVolume == 0:
            closeEmptyPosition(account, order, now)
        executionEvent(sim, account, ProtoOAExecutionType.ORDER_CANCELLED, origin, clientMsgId, order, position)


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
    if order.orderType in (ProtoOAOrderType.STOP, ProtoOAOrderType.STOP_LIMIT):
        return ask >= order.stopPrice if order.tradeSide == _BUY else bid <= order.stopPrice  # type: ignore[operator]
    return False


def _beyondLimit(order: Order, state: SymbolState, price: float) -> bool:
    """Whether a triggered stop-limit order's fill *price* lies beyond its
    ``slippageInPoints`` from the stop price (it then waits)."""
    if order.orderType != ProtoOAOrderType.STOP_LIMIT:
        return False
    limit = (order.slippageInPoints or 0) / 10**state.digits
    return (price - (order.stopPrice or 0.0)) * direction(order.tradeSide) > limit + 1e-12


def nextSwapTime(state: SymbolState, after: int) -> int | None:
    """The first swap time of *state*'s symbol after *after* (ms), or ``None``
    when the symbol charges none."""
    spec = state.spec["spec"]
    minute = spec.get("swapTime")
    if minute is None:
        return None
    period = max(1, int(spec.get("swapPeriod") or 24)) * 3_600_000
    moment = after // 86_400_000 * 86_400_000 + int(minute) * 60_000 - 86_400_000
    while moment <= after:
        moment += period
    return moment


def _chargeSwaps(sim: Simulator, account: Account, now: int) -> None:
    for position in account.openPositions():
        state = sim.market.symbols[position.symbolId]
        spec = state.spec["spec"]
        while position.nextSwap is not None and now >= position.nextSwap:
            at = position.nextSwap
            position.nextSwap = nextSwapTime(state, at)
            weekday = time.gmtime(at // 1000).tm_wday  # Monday is 0
            if weekday >= 5 and not spec.get("chargeSwapAtWeekends"):
                continue
            times = 3 if weekday + 1 == spec.get("swapRollover3Days", ProtoOADayOfWeek.WEDNESDAY) else 1
            pips = spec.get("swapLong", 0.0) if position.tradeSide == _BUY else spec.get("swapShort", 0.0)
            pip = 10.0 ** -int(spec.get("pipPosition", state.digits))
            amount = round(pips * pip * position.volume / 100 * _quoteRate(sim, state) * 100 * times)
            if not amount:
                continue
            position.swap += amount
            position.lastUpdate = now
            executionEvent(sim, account, ProtoOAExecutionType.SWAP, None, None, position=position, isServerEvent=True)


def _trail(sim: Simulator, account: Account, position: Position, state: SymbolState, now: int) -> None:
    """Move a trailing stop loss after a favourable move."""
    if not position.trailingStopLoss or position.trailingDistance is None or position.stopLoss is None:
        return
    d = direction(position.tradeSide)
    candidate = round(closingPrice(state, position.tradeSide) - d * position.trailingDistance, state.digits)
    if (candidate - position.stopLoss) * d <= 1e-12:
        return
    position.stopLoss = candidate
    position.lastUpdate = now
    sim.accountEvent(
        account.ctidTraderAccountId,
        ProtoOATrailingSLChangedEvent(
            ctidTraderAccountId=account.ctidTraderAccountId,
            positionId=position.positionId,
            orderId=position.openingOrderId,
            stopPrice=candidate,
            utcLastUpdateTimestamp=now,
        ),
    )


def _checkMargin(sim: Simulator, account: Account, now: int) -> None:
    """Margin calls, then stop-outs (see the module docstring)."""
    used = usedMargin(account)
    if used <= 0:
        return
    level = equity(sim, account) / used * 100
    for kind, threshold in sorted(account.marginCalls.items()):
        last = account.marginCallsTriggered.get(kind)
        if level <= threshold and (last is None or now - last >= MARGIN_CALL_INTERVAL_MS):
            account.marginCallsTriggered[kind] = now
            sim.accountEvent(
                account.ctidTraderAccountId,
                ProtoOAMarginCallTriggerEvent(
                    ctidTraderAccountId=account.ctidTraderAccountId,
                    marginCall=ProtoOAMarginCall(
                        marginCallType=kind,  # type: ignore[arg-type]
                        marginLevelThreshold=threshold,
                        utcLastUpdateTimestamp=now,
                    ),
                ),
            )
    while level < sim.stopOutLevel:
        positions = [p for p in account.openPositions() if sim.marketOpen(p.symbolId)]
        if not positions:
            return
        worst = max(positions, key=lambda p: (p.usedMargin, -p.positionId))
        state = sim.market.symbols[worst.symbolId]
        order = closingOrder(
            account, worst, worst.volume, ProtoOAOrderType.MARKET, ProtoOATimeInForce.IMMEDIATE_OR_CANCEL, now
        )
        order.isStopOut = True
        executionEvent(sim, account, ProtoOAExecutionType.ORDER_ACCEPTED, None, None, order, worst, isServerEvent=True)
        execute(sim, account, order, worst, closingPrice(state, worst.tradeSide), isServerEvent=True)
        used = usedMargin(account)
        if used <= 0:
            return
        level = equity(sim, account) / used * 100


def _reject(sim: Simulator, account: Account, order: Order, now: int, errorCode: str) -> None:
    """A pending order that triggered cannot fill: ``ORDER_REJECTED`` with *errorCode*."""
    order.status = ProtoOAOrderStatus.ORDER_STATUS_REJECTED
    order.lastUpdate = now
    executionEvent(
        sim, account, ProtoOAExecutionType.ORDER_REJECTED, None, None, order,
        closeEmptyPosition(account, order, now), errorCode=errorCode, isServerEvent=True,
    )


def processTick(sim: Simulator, account: Account) -> None:
    """Expire, trigger, trail, protect, charge swaps and check the margin:
    what the market move means for *account*."""
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
        if not sim.marketOpen(order.symbolId) or not _triggered(order, state):
            continue
        price = openingPrice(state, order.tradeSide)
        if _beyondLimit(order, state, price):
            continue
        closing = position.status == _OPEN and position.tradeSide != order.tradeSide
        if order.closingOrder and not closing:
            _reject(sim, account, order, now, "POSITION_NOT_OPEN")
            continue
        if closing and order.volume - order.executedVolume > position.volume:
            _reject(sim, account, order, now, "TRADING_BAD_VOLUME")
            continue
        if not closing and marginFor(sim, account, state, order.volume, price) > freeMargin(sim, account):
            _reject(sim, account, order, now, "NOT_ENOUGH_MONEY")
            continue
        execute(sim, account, order, position, price, isServerEvent=True)
    for position in account.openPositions():
        if not sim.marketOpen(position.symbolId):
            continue
        state = symbols[position.symbolId]
        _trail(sim, account, position, state, now)
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
    _chargeSwaps(sim, account, now)
    _checkMargin(sim, account, now)


def unrealizedTotals(sim: Simulator, account: Account) -> tuple[int, int]:
    """The account's unrealized ``(gross, net)`` profit, cents; net adds the
    commissions and swaps charged so far (what ``ProtoOAv1PnLChangeEvent`` carries)."""
    gross = net = 0
    for position in account.openPositions():
        one = unrealizedGross(sim, position)
        gross += one
        net += one + position.commission + position.swap
    return gross, net
