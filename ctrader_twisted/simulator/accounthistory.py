# -*- test-case-name: tests.test_simulator_history -*-
"""The past of every simulated account: a year of deals, orders and balance operations.

The simulator's accounts are created when it starts, yet a history download
needs a past to fetch. :func:`pastOf` makes one for each account, the first
time it is asked for, from the simulator's seed and the account id alone (so
the same simulator always tells the same past): :data:`PAST_DAYS` days
before the account's registration, with

* a first deposit, then now and then another deposit or a withdrawal;
* on each trading day, a few round trips (a market order that opens a
  position and one that closes it within the day) on the symbols quoted in
  the deposit currency, at the prices of the market's history
  (:meth:`.market.SymbolState.historicalBid`), with the commission of
  :func:`.execution.commissionFor` charged at close on both sides;
* the whole balance withdrawn just before the registration, where the
  account's own records begin (its first deposit): every balance in the
  chain is the one before plus the operation.

The history handlers (:mod:`.handlers.trading`) answer from this past and the
account's own records together.
"""

from __future__ import annotations

import itertools
import random
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..messages.OpenApiModelMessages_pb2 import (
    ProtoOAClosePositionDetail,
    ProtoOAOrderStatus,
    ProtoOAOrderType,
    ProtoOATradeSide,
)
from .accounts import Account, Deal, Order
from .data import DEPOSIT_ASSET_ID
from .execution import commissionFor

if TYPE_CHECKING:
    from .server import Simulator

__all__ = ["PastHistory", "pastOf", "PAST_DAYS"]

#: Days of history before each account's registration.
PAST_DAYS = 400

_DAY_MS = 86_400_000


@dataclass
class PastHistory:
    """An account's past (see the module docstring), oldest first.

    :ivar deals: deals, by execution time.
    :ivar orders: the orders of those deals, by open time.
    :ivar cashFlow: balance operations ``(timestamp, delta, balanceAfter)``
        in cents (delta negative for a withdrawal).
    """

    deals: list[Deal] = field(default_factory=list)
    orders: list[Order] = field(default_factory=list)
    cashFlow: list[tuple[int, int, int]] = field(default_factory=list)
    #: positionId -> its deals.
    byPosition: dict[int, list[Deal]] = field(default_factory=dict)


_PASTS: "weakref.WeakKeyDictionary[Account, PastHistory]" = weakref.WeakKeyDictionary()


def pastOf(sim: Simulator, account: Account) -> PastHistory:
    """The past of *account* (made once, then kept with the account)."""
    past = _PASTS.get(account)
    if past is None:
        past = _PASTS[account] = _make(sim, account)
    return past


def _make(sim: Simulator, account: Account) -> PastHistory:
    rng = random.Random(f"history:{sim.seed}:{account.ctidTraderAccountId}")
    past = PastHistory()
    end = account.registrationTimestamp - 3_600_000
    day = (account.registrationTimestamp // _DAY_MS - PAST_DAYS) * _DAY_MS
    if day < 0:
        return past
    symbols = [
        state for state in sim.market.symbols.values()
        if state.spec["light"].get("quoteAssetId") == DEPOSIT_ASSET_ID
    ]
    positionIds = itertools.count(1_000_001)
    orderIds = itertools.count(1_500_001)
    dealIds = itertools.count(2_000_001)
    balance = 0

    def cash(timestamp: int, delta: int) -> None:
        nonlocal balance
        balance += delta
        past.cashFlow.append((timestamp, delta, balance))

    cash(day + 60_000, 1_000_000 * rng.randint(1, 5))
    while symbols and day + _DAY_MS < end:
        # Balance operations at 00:01 UTC, trades between 00:02 and 23:58.
        if rng.random() < 0.05:
            if balance > 1_500_000 and rng.random() < 0.5:
                cash(day + 60_000, -100_000 * rng.randint(1, 10))
            else:
                cash(day + 60_000, 100_000 * rng.randint(1, 20))
        trades = []
        for _ in range(rng.choice((0, 1, 2, 2, 3, 4))):
            state = rng.choice(symbols)
            sessions = list(state.openIntervals(day // 1000 + 120, (day + _DAY_MS) // 1000 - 120))
            if not sessions:
                continue
            a, b = rng.choice(sessions)
            if b - a < 1200:
                continue
            opened = rng.randrange(a, b - 600)
            closed = min(b - 2, opened + rng.randrange(300, 6 * 3600))
            trades.append((closed, opened, state, rng.choice((ProtoOATradeSide.BUY, ProtoOATradeSide.SELL)),
                           state.spec["spec"]["minVolume"] * rng.randint(1, 20), rng.randrange(1000)))
        for closed, opened, state, side, volume, jitter in sorted(trades, key=lambda t: (t[0], t[5])):
            sign = 1 if side == ProtoOATradeSide.BUY else -1
            openWire = state.historicalBid(opened) + (state.spread if sign > 0 else 0)
            closeWire = state.historicalBid(closed) + (state.spread if sign < 0 else 0)
            openPrice, closePrice = openWire / 100_000, closeWire / 100_000
            oneSide = commissionFor(sim, state, volume, openPrice)
            gross = round((closeWire - openWire) * sign * volume / 100_000)
            balance += gross - 2 * oneSide
            positionId = next(positionIds)
            closing = ProtoOATradeSide.SELL if side == ProtoOATradeSide.BUY else ProtoOATradeSide.BUY
            for when, orderSide, price, isClosing in (
                (opened, side, openPrice, False),
                (closed, closing, closePrice, True),
            ):
                ms = when * 1000 + jitter
                orderId = next(orderIds)
                past.orders.append(Order(
                    orderId=orderId, symbolId=state.symbolId, tradeSide=orderSide, volume=volume,
                    orderType=ProtoOAOrderType.MARKET, openTimestamp=ms - 120, positionId=positionId,
                    status=ProtoOAOrderStatus.ORDER_STATUS_FILLED, closingOrder=isClosing,
                    executionPrice=price, executedVolume=volume, lastUpdate=ms, closeTimestamp=ms,
                ))
                detail = None
                if isClosing:
                    detail = ProtoOAClosePositionDetail(
                        entryPrice=openPrice, grossProfit=gross, swap=0, commission=-2 * oneSide, balance=balance,
                        quoteToDepositConversionRate=1.0, closedVolume=volume, moneyDigits=2, pnlConversionFee=0,
                    )
                deal = Deal(
                    dealId=next(dealIds), orderId=orderId, positionId=positionId, symbolId=state.symbolId,
                    tradeSide=orderSide, volume=volume, createTimestamp=ms - 120, executionTimestamp=ms,
                    executionPrice=price, commission=-oneSide, marginRate=price, baseToUsdConversionRate=price,
                    closeDetail=detail,
                )
                past.deals.append(deal)
                past.byPosition.setdefault(positionId, []).append(deal)
        if balance < 200_000:
            cash(day + _DAY_MS - 60_000, 1_000_000)
        day += _DAY_MS
    if balance:
        cash(end, -balance)
    past.deals.sort(key=lambda d: (d.executionTimestamp, d.dealId))
    past.orders.sort(key=lambda o: (o.openTimestamp, o.orderId))
    past.cashFlow.sort(key=lambda c: c[0])
    return past
