"""The account model agrees with the simulator to the cent after a scripted
random session of 1,000 orders, closes, amendments and price moves, across a
forced reconnection during which another connection trades on the account."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from ctrader_twisted.errors import CTraderError
from ctrader_twisted.simulator.execution import equity, unrealizedGross, usedMargin
from ctrader_twisted.testing import SimulatedServer
from ctrader_twisted.trading import Execution, ExecutionType, OrderType, Side, Trader, TrailingStop
from ctrader_twisted.units import moneyFromWire, priceFromDouble

SYMBOLS = ["EURUSD", "GBPUSD", "XAUUSD", "US100.cash", "GER40.cash"]
LOTS = ["0.01", "0.02", "0.05", "0.1", "0.3", "0.7", "1.2"]
#: 2026-09-22 20:57 UTC, a Tuesday: the swap time (20:59) comes during the session.
START = 1_790_110_620.0


def money(cents: int) -> Decimal:
    return moneyFromWire(cents, 2)


class ScriptedSessionTests(SynchronousTestCase):
    def setUp(self) -> None:
        from twisted.internet.task import Clock

        clock = Clock()
        clock.advance(START)
        self.server = SimulatedServer(seed=3, clock=clock, spotInterval=0.5)
        self.sim = self.server.simulator
        self.sim.setLiquidity(1, 50_000_000)  # half a lot per level: larger EURUSD orders fill in parts
        self.accountId = self.sim.addAccount(balance=5_000_000)
        self.client = self.server.connect(self.server.managedClient())
        self.addCleanup(self.client.stopService)
        self.trader = Trader(self.client, self.accountId, self.sim.accessToken)
        self.server.resultOf(self.trader.start())
        self.events: list[Any] = []
        self.trader.on(Execution, self.events.append)
        self.trader.on(TrailingStop, self.events.append)
        self.rng = random.Random(15)
        self.outcomes: dict[str, int] = {}

    def count(self, what: str) -> None:
        self.outcomes[what] = self.outcomes.get(what, 0) + 1

    def attempt(self, d: Any, what: str) -> Any:
        try:
            result = self.server.resultOf(d, within=30)
        except CTraderError as e:
            self.count(f"{what}: {type(e).__name__}")
            return None
        self.count(what)
        return result

    def price(self, symbol: str, side: Side, ticks: int) -> Decimal:
        state = self.sim.market.symbols[self.trader.symbols.find(symbol).id]
        wire = (state.ask if side is Side.BUY else state.bid) + ticks * state.step * state.tick
        return Decimal(max(state.tick, wire)) / 100000

    def operate(self) -> None:
        rng, trader = self.rng, self.trader
        account = trader.account
        roll = rng.random()
        symbol = rng.choice(SYMBOLS)
        side = rng.choice([Side.BUY, Side.SELL])
        lots = rng.choice(LOTS)
        if roll < 0.30:
            protect: dict[str, Any] = {}
            if rng.random() < 0.5:
                protect = {"stopLossPips": rng.choice([5, 20, 80]), "takeProfitPips": rng.choice([10, 40, 100])}
                if rng.random() < 0.3:
                    protect["trailingStopLoss"] = True
            self.attempt(trader.placeOrder(symbol, side, OrderType.MARKET, lots=lots, **protect), "market")
        elif roll < 0.45:
            kind = rng.choice([OrderType.LIMIT, OrderType.STOP, OrderType.STOP_LIMIT])
            away = rng.randint(1, 6)
            ticks = -away * side.sign if kind == OrderType.LIMIT else away * side.sign
            price = self.price(symbol, side, ticks)
            extra: dict[str, Any] = {}
            if kind == OrderType.STOP_LIMIT:
                extra["limitPrice"] = self.price(symbol, side, ticks + 2 * side.sign)
            self.attempt(trader.placeOrder(symbol, side, kind, lots=lots, price=price, **extra), "pending")
        elif roll < 0.55 and account.orders:
            orderId = rng.choice(sorted(account.orders))
            self.attempt(trader.cancelOrder(orderId), "cancel")
        elif roll < 0.62 and account.orders:
            order = account.orders[rng.choice(sorted(account.orders))]
            ticks = rng.randint(1, 6) * (-order.side.sign if order.type == OrderType.LIMIT else order.side.sign)
            self.attempt(trader.amendOrder(order.id, price=self.price(order.symbol, order.side, ticks)), "amend order")
        elif roll < 0.75 and account.positions:
            position = account.positions[rng.choice(sorted(account.positions))]
            if rng.random() < 0.5 or position.lots is None or position.lots <= Decimal("0.01"):
                self.attempt(trader.closePosition(position.id), "close")
            else:
                part = (position.lots / 2).quantize(Decimal("0.01"))
                self.attempt(trader.closePosition(position.id, lots=part), "partial close")
        elif roll < 0.82 and account.positions:
            position = account.positions[rng.choice(sorted(account.positions))]
            symbolInfo = self.trader.symbols.find(position.symbolId)
            quote = trader.quote(symbolInfo.id)
            if quote is not None and quote.bid is not None and quote.ask is not None:
                reference = quote.bid if position.side is Side.BUY else quote.ask
                step = symbolInfo.pipSize * rng.choice([10, 30, 60])
                self.attempt(
                    trader.amendPosition(position.id, stopLoss=reference - position.side.sign * step,
                                         takeProfit=reference + position.side.sign * step),
                    "amend position",
                )
        else:
            self.server.advance(rng.choice([0.5, 1.0, 2.5]))
            self.count("market moves")

    def reconnectWhileOthersTrade(self) -> None:
        """Drop the trader's connection; while it reconnects, another
        connection opens and closes positions on the account."""
        other = self.server.connect(self.server.managedClient())
        self.addCleanup(other.stopService)
        self.server.resultOf(other.authorizeAccount(self.accountId, self.sim.accessToken))
        self.sim.faults.refuseConnections(5.0)
        mine = self.sim.sessions[0]  # the trader's connection came first
        mine.connection.abort()
        self.server.flush()
        self.assertFalse(self.trader.account.reconciled)
        self.server.resultOf(other.request("ProtoOANewOrderReq", ctidTraderAccountId=self.accountId, symbolId=1,
                                           orderType=1, tradeSide=1, volume=100000))
        opened = sorted(p.positionId for p in self.sim.accounts[self.accountId].openPositions())
        self.server.resultOf(other.request("ProtoOAClosePositionReq", ctidTraderAccountId=self.accountId,
                                           positionId=opened[0],
                                           volume=self.sim.accounts[self.accountId].positions[opened[0]].volume))
        self.server.advance(3)
        self.server.connect(self.client, within=60)
        self.server.resultOf(self.trader.account.whenReconciled(), within=30)
        self.server.advance(1)

    def assertAgrees(self, when: str) -> None:
        self.server.advance(0.3)
        simAccount = self.sim.accounts[self.accountId]
        model = self.trader.account
        self.assertTrue(model.reconciled, when)
        self.assertEqual(model.balance, money(simAccount.balance), when)
        open_ = {p.positionId: p for p in simAccount.openPositions()}
        self.assertEqual(set(model.positions), set(open_), when)
        for positionId, p in open_.items():
            typed = model.positions[positionId]
            state = self.sim.market.symbols[p.symbolId]
            self.assertEqual(typed.units, Decimal(p.volume) / 100, when)
            self.assertEqual(int(typed.side), int(p.tradeSide), when)
            self.assertEqual(typed.entryPrice, priceFromDouble(p.price), when)
            self.assertEqual(typed.stopLoss, priceFromDouble(p.stopLoss, state.digits) if p.stopLoss is not None else None, when)
            self.assertEqual(typed.takeProfit, priceFromDouble(p.takeProfit, state.digits) if p.takeProfit is not None else None, when)
            self.assertEqual((typed.swap, typed.commission, typed.usedMargin),
                             (money(p.swap), money(p.commission), money(p.usedMargin)), when)
            pnl = model.unrealized(positionId)
            self.assertIsNotNone(pnl, f"{when}: no quotes for position {positionId}")
            self.assertEqual(pnl.gross, money(unrealizedGross(self.sim, p)),
                             f"{when}: position {positionId} {p} {state.bid} {state.ask}")
        self.assertEqual(set(model.orders), {o.orderId for o in simAccount.pendingOrders()}, when)
        self.assertEqual(model.margin, money(usedMargin(simAccount)), when)
        self.assertEqual(model.equity, money(equity(self.sim, simAccount)), when)
        self.assertEqual(model.freeMargin, money(equity(self.sim, simAccount) - usedMargin(simAccount)), when)

    def test_thousandOperationsAcrossAReconnection(self) -> None:
        for i in range(1000):
            self.operate()
            if i == 500:
                self.reconnectWhileOthersTrade()
                self.assertAgrees("after the reconnection")
            if i % 100 == 99:
                self.assertAgrees(f"after {i + 1} operations")
        executed = sum(v for k, v in self.outcomes.items() if ":" not in k)
        self.assertGreater(executed, 500, self.outcomes)
        deals = self.sim.accounts[self.accountId].deals
        seen = {e.type for e in self.events if isinstance(e, Execution)}
        for kind in (ExecutionType.ORDER_PARTIAL_FILL, ExecutionType.SWAP, ExecutionType.ORDER_REPLACED,
                     ExecutionType.ORDER_CANCELLED, ExecutionType.ORDER_FILLED):
            self.assertIn(kind, seen)
        self.assertTrue(any(isinstance(e, TrailingStop) for e in self.events), "a trailing stop moved")
        self.assertTrue(any(e.isServerEvent and e.type == ExecutionType.ORDER_FILLED for e in self.events
                            if isinstance(e, Execution)), "a pending order or a stop loss filled")
        kinds = {d.closeDetail is not None for d in deals}
        self.assertEqual(kinds, {True, False})
        swaps = [d.closeDetail.swap for d in deals if d.closeDetail is not None and d.closeDetail.swap]
        swaps += [p.swap for p in self.sim.accounts[self.accountId].openPositions() if p.swap]
        self.assertTrue(swaps, f"no swap was charged by {self.server.clock.seconds() - START:.0f} s: {self.outcomes}")
