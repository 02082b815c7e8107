"""The typed trading API against the simulator in memory, on a Clock:
symbols, subscriptions and streams, order books, orders and their errors,
unknown outcomes, and the simulator's trading features seen through it."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from twisted.internet.defer import ensureDeferred
from twisted.trial.unittest import SynchronousTestCase

from ctrader_twisted.errors import (
    InvalidMessageError,
    InvalidVolumeError,
    MarketClosedError,
    NotConnectedError,
    NotEnoughMoneyError,
    NotExecutedError,
    NotFoundError,
    UnknownSymbolError,
)
from ctrader_twisted.messages.OpenApiMessages_pb2 import ProtoOASymbolChangedEvent
from ctrader_twisted.testing import SimulatedServer
from ctrader_twisted.trading import (
    AccountChanged,
    Bar,
    Depth,
    Execution,
    ExecutionType,
    MarginCall,
    OrderRejection,
    OrderStatus,
    OrderType,
    Period,
    PnLChanged,
    Side,
    Spot,
    SymbolChanged,
    Trader,
    TrailingStop,
)


class TradingTestCase(SynchronousTestCase):
    simulatorOptions: dict[str, Any] = {}

    def setUp(self) -> None:
        self.server = SimulatedServer(seed=2, spotInterval=0.5, **self.simulatorOptions)
        self.sim = self.server.simulator
        self.client = self.server.connect(self.server.managedClient())
        self.addCleanup(self.client.stopService)
        self.accountId = self.sim.accountIds[0]
        self.trader = Trader(self.client, self.accountId, self.sim.accessToken)
        self.server.resultOf(self.trader.start())
        self.requests: list[str] = []
        self.client.factory.addMessageCallback(lambda m: None)
        original = self.client.request

        def counting(message: Any, *args: Any, **kwargs: Any) -> Any:
            self.requests.append(message if isinstance(message, str) else type(message).__name__)
            return original(message, *args, **kwargs)

        self.client.request = counting  # type: ignore[method-assign]

    def run_(self, d: Any) -> Any:
        return self.server.resultOf(d, within=30)

    def fails(self, d: Any, error: type) -> Any:
        with self.assertRaises(error) as raised:
            self.run_(d)
        return raised.exception

    def session(self) -> Any:
        return self.sim.sessions[0]


class SymbolTests(TradingTestCase):
    def test_namesResolveCaseInsensitivelyWithSuggestions(self) -> None:
        symbols = self.trader.symbols
        self.assertEqual(symbols.find("eurusd").id, 1)
        self.assertEqual(symbols.find("EUR/USD").id, 1)
        self.assertEqual(symbols.find("us100.CASH").id, 275)
        self.assertEqual(symbols.find(41).name, "XAUUSD")
        error = self.assertRaises(UnknownSymbolError, symbols.find, "EURSUD")
        self.assertEqual(error.suggestions[0], "EURUSD")
        self.assertIn("did you mean EURUSD", str(error))
        self.assertNotIn("EURSUD", symbols)
        self.assertIn("gbpusd", symbols)

    def test_assetsAndCategoriesByName(self) -> None:
        gold = self.trader.symbols.find("XAUUSD")
        self.assertEqual((gold.baseAsset.name, gold.quoteAsset.name), ("XAU", "USD"))  # type: ignore[union-attr]
        self.assertEqual((gold.category.name, gold.category.assetClass), ("Metals", "Metals"))  # type: ignore[union-attr]
        self.assertIsNone(gold.details)
        with self.assertRaises(LookupError):
            gold.digits

    def test_detailsFetchedOnceAndShared(self) -> None:
        first, second = self.trader.symbols.get("XAUUSD"), self.trader.symbols.get("xauusd")
        gold = self.run_(first)
        self.assertIs(self.run_(second), gold)
        self.assertEqual(self.requests.count("ProtoOASymbolByIdReq"), 1)
        self.assertEqual((gold.digits, gold.lotUnits, gold.pipSize), (2, Decimal(100), Decimal(1)))
        self.assertEqual(self.run_(self.trader.symbols.get(41)), gold)
        self.assertEqual(self.requests.count("ProtoOASymbolByIdReq"), 1)
        self.fails(self.trader.symbols.get("NOPE"), UnknownSymbolError)

    def test_symbolChangedRefreshes(self) -> None:
        gold = self.run_(self.trader.symbols.get("XAUUSD"))
        changed: list[SymbolChanged] = []
        self.trader.on(SymbolChanged, changed.append)
        self.sim.market.symbols[41].spec["spec"]["minVolume"] = 200
        self.sim.sendEvent(ProtoOASymbolChangedEvent(ctidTraderAccountId=self.accountId, symbolId=[41]))
        self.server.advance(1)
        self.assertEqual([c.symbolIds for c in changed], [(41,)])
        refreshed = self.trader.symbols.find("XAUUSD")
        self.assertEqual(refreshed.spec.minVolume, 200)
        self.assertNotEqual(refreshed, gold)


class SubscriptionTests(TradingTestCase):
    def test_spotsSharedSubscriptionAndRelease(self) -> None:
        a: list[Spot] = []
        b: list[Spot] = []
        first = self.trader.on(Spot, a.append, symbol="EURUSD")
        second = self.trader.on(Spot, b.append, symbol="eurusd")
        self.run_(first.whenReady())
        self.server.advance(3)
        self.assertEqual(self.requests.count("ProtoOASubscribeSpotsReq"), 1)
        self.assertIn(1, self.session().spots[self.accountId])
        self.assertGreater(len(a), 3)
        self.assertEqual(len(a), len(b))
        for spot in a:
            self.assertEqual(spot.symbol, "EURUSD")
            self.assertIsNotNone(spot.bid)
            self.assertIsNotNone(spot.ask)  # the side the server left out is carried over
            self.assertEqual(spot.bid.as_tuple().exponent, -5)  # type: ignore[union-attr]
            self.assertLess(spot.bid, spot.ask)  # type: ignore[operator]
        first.cancel()
        self.server.advance(1)
        self.assertIn(1, self.session().spots[self.accountId])
        second.cancel()
        second.cancel()
        self.server.advance(1)
        self.assertNotIn(1, self.session().spots.get(self.accountId, set()))
        self.assertEqual(self.requests.count("ProtoOAUnsubscribeSpotsReq"), 1)

    def test_rawSubscriptionIsLeftToItsOwner(self) -> None:
        self.run_(self.client.request("ProtoOASubscribeSpotsReq", ctidTraderAccountId=self.accountId, symbolId=[2]))
        seen: list[Spot] = []
        subscription = self.trader.on(Spot, seen.append, symbol="GBPUSD")
        self.server.advance(2)
        self.assertTrue(seen)
        subscription.cancel()
        self.server.advance(1)
        self.assertIn(2, self.session().spots[self.accountId])  # still the raw subscriber's

    def test_filtersAreChecked(self) -> None:
        self.assertRaises(ValueError, self.trader.on, Spot, print, positionId=3)
        self.assertRaises(ValueError, self.trader.on, int, print)
        self.assertRaises(ValueError, self.trader.on, Bar, print, symbol="EURUSD")
        self.assertRaises(UnknownSymbolError, self.trader.on, Spot, print, symbol="EURSUD")

    def test_decoratorAndBars(self) -> None:
        bars: list[Bar] = []

        @self.trader.on(Bar, symbol="EURUSD", period="M1")
        def onBar(bar: Bar) -> None:
            bars.append(bar)

        self.server.advance(3)
        self.assertTrue(bars)
        self.assertEqual({b.period for b in bars}, {Period.M1})
        self.assertLessEqual(bars[-1].low, bars[-1].high)
        self.assertEqual(bars[-1].close, self.trader.quote("EURUSD").bid)  # type: ignore[union-attr]
        onBar.cancel()

    def test_streamSubscribesOnFirstUseAndReleasesOnClose(self) -> None:
        stream = self.trader.spots("GBPUSD")
        self.assertEqual(self.requests.count("ProtoOASubscribeSpotsReq"), 0)
        got: list[Spot] = []

        async def consume() -> None:
            async for spot in stream:
                got.append(spot)
                if len(got) == 3:
                    break
            await stream.aclose()

        self.run_(ensureDeferred(consume()))
        self.assertEqual([s.symbol for s in got], ["GBPUSD"] * 3)
        self.server.advance(1)
        self.assertNotIn(2, self.session().spots.get(self.accountId, set()))
        self.assertEqual(self.requests.count("ProtoOAUnsubscribeSpotsReq"), 1)

    def test_abandonedStreamReleases(self) -> None:
        """A stream left by ``break`` (no aclose, no ``async with``) releases
        its subscription once garbage-collected."""

        async def consume() -> None:
            async for spot in self.trader.spots("GBPUSD"):
                break

        self.run_(ensureDeferred(consume()))
        import gc

        gc.collect()
        self.server.advance(1)
        self.assertNotIn(2, self.session().spots.get(self.accountId, set()))

    def test_streamSurvivesReconnection(self) -> None:
        got: list[Spot] = []

        async def consume() -> None:
            async with self.trader.stream(Spot, symbol="EURUSD") as spots:
                async for spot in spots:
                    got.append(spot)
                    if len(got) == 3:
                        first.append(self.sim.sessions[0])
                        self.sim.faults.dropNow()
                    if len(got) == 8:
                        break

        first: list[Any] = []
        d = ensureDeferred(consume())
        self.run_(d)
        self.assertEqual(len(got), 8)
        self.assertEqual(len(first), 1)
        self.assertNotIn(first[0], self.sim.sessions)  # the last five came on a new connection
        # One subscription by the typed layer; the session restored it after the drop.
        self.assertEqual(self.requests.count("ProtoOASubscribeSpotsReq"), 1)

    def test_depthKeepsABook(self) -> None:
        depths: list[Depth] = []
        self.trader.on(Depth, depths.append, symbol="EURUSD")
        self.server.advance(2)
        self.assertGreater(len(depths), 1)
        book = self.trader.book("EURUSD")
        self.assertEqual(len(book.bids), 5)
        self.assertEqual(len(book.asks), 5)
        self.assertEqual(book, depths[-1].book)
        self.assertEqual([b.price for b in book.bids], sorted((b.price for b in book.bids), reverse=True))
        self.assertEqual([a.price for a in book.asks], sorted(a.price for a in book.asks))
        self.assertLess(book.bestBid.price, book.bestAsk.price)  # type: ignore[union-attr]
        self.assertEqual(set(depths[-1].deleted), {q.quoteId for q in depths[-2].book.bids + depths[-2].book.asks})
        self.sim.faults.dropNow()
        self.server.flush()
        self.assertEqual(self.trader.book("EURUSD").bids, ())  # cleared with the connection


class OrderTests(TradingTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.run_(self.trader.on(Spot, lambda s: None, symbol="EURUSD").whenReady())
        self.server.advance(1)

    def test_marketOrderWithStopsInPips(self) -> None:
        fill = self.run_(self.trader.buy("EURUSD", lots="0.1", stopLossPips=20, takeProfitPips=40, label="bracket"))
        self.assertFalse(fill.partial)
        self.assertEqual((fill.units, fill.lots, fill.side), (Decimal(10000), Decimal("0.1"), Side.BUY))
        position = self.trader.account.position(fill.positionId)
        self.assertEqual(position, fill.position)
        self.assertEqual(position.stopLoss, fill.price - Decimal("0.0020"))  # type: ignore[union-attr,operator]
        self.assertEqual(position.takeProfit, fill.price + Decimal("0.0040"))  # type: ignore[union-attr,operator]
        self.assertEqual(position.label, "bracket")  # type: ignore[union-attr]

    def test_absoluteStopsOnAMarketOrder(self) -> None:
        ask = self.trader.quote("EURUSD").ask  # type: ignore[union-attr]
        fill = self.run_(self.trader.buy("EURUSD", lots="0.01", stopLoss=ask - Decimal("0.003"), takeProfit=ask + Decimal("0.005")))
        self.assertEqual(fill.position.stopLoss, fill.price - Decimal("0.003"))
        self.fails(self.trader.buy("EURUSD", lots="0.01", stopLoss=ask + Decimal("0.01")), InvalidMessageError)

    def test_localRefusalsSendNothing(self) -> None:
        before = len(self.requests)
        error = self.fails(self.trader.buy("EURUSD", lots="0.015"), InvalidVolumeError)
        self.assertEqual(error.nearest, (100_000, 200_000))
        self.fails(self.trader.buy("EURUSD", lots="0.1", units=10), InvalidMessageError)
        self.fails(self.trader.buy("EURUSD", lots=float("nan")), InvalidMessageError)
        self.fails(self.trader.buy("EURSUD", lots="0.1"), UnknownSymbolError)
        self.fails(self.trader.buy("EURUSD", lots="0.1", clientOrderId="x" * 51), InvalidMessageError)
        self.fails(self.trader.limitOrder("EURUSD", Side.BUY, "-1", lots="0.1"), InvalidMessageError)
        self.fails(self.trader.placeOrder("EURUSD", Side.BUY, OrderType.LIMIT, lots="0.1"), InvalidMessageError)
        self.assertEqual([r for r in self.requests[before:] if r == "ProtoOANewOrderReq"], [])

    def test_serverRefusalsAreTyped(self) -> None:
        rejections: list[OrderRejection] = []
        self.trader.on(OrderRejection, rejections.append)
        error = self.fails(self.trader.buy("EURUSD", lots="80"), NotEnoughMoneyError)
        self.assertEqual(error.errorCode, "NOT_ENOUGH_MONEY")
        self.assertEqual([r.errorCode for r in rejections], ["NOT_ENOUGH_MONEY"])
        self.fails(self.trader.cancelOrder(123), NotFoundError)

    def test_pendingOrdersAmendCancel(self) -> None:
        bid = self.trader.quote("EURUSD").bid  # type: ignore[union-attr]
        order = self.run_(self.trader.limitOrder("EURUSD", Side.BUY, bid - Decimal("0.01"), lots="0.02",
                                                 stopLoss=bid - Decimal("0.02")))
        self.assertEqual((order.type, order.status, order.price), (OrderType.LIMIT, OrderStatus.ACCEPTED, bid - Decimal("0.01")))
        self.assertIn(order.id, self.trader.account.orders)
        amended = self.run_(self.trader.amendOrder(order.id, price=bid - Decimal("0.012"), lots="0.03"))
        self.assertEqual((amended.price, amended.lots), (bid - Decimal("0.012"), Decimal("0.03")))
        self.assertEqual(self.trader.account.order(order.id), amended)
        cancelled = self.run_(self.trader.cancelOrder(order.id))
        self.assertEqual(cancelled.status, OrderStatus.CANCELLED)
        self.assertNotIn(order.id, self.trader.account.orders)

    def test_stopLimitFillsWithinItsLimit(self) -> None:
        ask = self.trader.quote("EURUSD").ask  # type: ignore[union-attr]
        order = self.run_(self.trader.stopLimitOrder("EURUSD", Side.BUY, ask - Decimal("0.001"), ask + Decimal("0.001"), lots="0.01"))
        self.assertEqual((order.type, order.slippagePoints), (OrderType.STOP_LIMIT, 200))
        fills: list[Execution] = []
        self.trader.on(Execution, fills.append, orderId=order.id, type=ExecutionType.ORDER_FILLED)
        self.server.advance(1)
        self.assertEqual(len(fills), 1)
        self.assertTrue(fills[0].isServerEvent)
        self.assertLessEqual(fills[0].deal.price, ask + Decimal("0.001"))  # type: ignore[union-attr,operator]
        far = self.run_(self.trader.stopLimitOrder("EURUSD", Side.BUY, ask - Decimal("0.01"), ask - Decimal("0.0099"), lots="0.01"))
        self.server.advance(2)
        self.assertIn(far.id, self.trader.account.orders)  # triggered, but the price is beyond its limit
        self.fails(self.trader.stopLimitOrder("EURUSD", Side.BUY, ask, ask - Decimal("0.001"), lots="0.01"), InvalidMessageError)

    def test_partialFillAcrossTheBook(self) -> None:
        self.sim.setLiquidity(1, 100_000, levels=3)  # 0.01 lot a level, 3 levels
        fill = self.run_(self.trader.buy("EURUSD", lots="0.05"))
        self.assertTrue(fill.partial)
        self.assertEqual((fill.units, fill.requestedUnits), (Decimal(3000), Decimal(5000)))
        self.assertEqual(len(fill.deals), 3)
        self.assertEqual(fill.order.status, OrderStatus.CANCELLED)  # type: ignore[union-attr]
        prices = [d.price for d in fill.deals]
        self.assertEqual(prices, sorted(prices))
        self.assertEqual(fill.price, sum(prices, Decimal(0)) / 3)  # type: ignore[arg-type]
        self.assertEqual(self.trader.account.position(fill.positionId).units, Decimal(3000))  # type: ignore[union-attr]

    def test_closeInPartsThenFully(self) -> None:
        fill = self.run_(self.trader.sell("EURUSD", lots="0.03"))
        self.server.advance(2)
        balance = self.trader.account.balance
        part = self.run_(self.trader.closePosition(fill.positionId, lots="0.01"))
        self.assertEqual(part.closed.closedUnits, Decimal(1000))
        self.assertEqual(self.trader.account.balance, balance + part.closed.netProfit)
        self.assertEqual(self.trader.account.position(fill.positionId).units, Decimal(2000))  # type: ignore[union-attr]
        self.fails(self.trader.closePosition(fill.positionId, lots="0.005"), InvalidMessageError)
        rest = self.run_(self.trader.closePosition(fill.positionId))
        self.assertEqual(rest.units, Decimal(2000))
        self.assertIsNone(self.trader.account.position(fill.positionId))
        self.assertEqual(self.trader.account.balance, Decimal(self.sim.accounts[self.accountId].balance) / 100)

    def test_amendPositionKeepsWhatIsNotGiven(self) -> None:
        fill = self.run_(self.trader.buy("EURUSD", lots="0.01", stopLossPips=30, takeProfitPips=30))
        position = self.run_(self.trader.amendPosition(fill.positionId, stopLoss=fill.price - Decimal("0.005")))
        self.assertEqual(position.takeProfit, fill.position.takeProfit)
        self.assertEqual(position.stopLoss, fill.price - Decimal("0.005"))
        cleared = self.run_(self.trader.amendPosition(fill.positionId, takeProfit=None))
        self.assertIsNone(cleared.takeProfit)
        self.assertEqual(cleared.stopLoss, position.stopLoss)

    def test_lostConnectionAfterAnOrderWasExecuted(self) -> None:
        """The fill is never received (the connection drops first): once back,
        the order is reconciled as filled, not sent again."""
        changes: list[AccountChanged] = []
        self.trader.on(AccountChanged, changes.append, reason="reconciled")
        self.sim.faults.swallowResponses()
        d = self.trader.buy("EURUSD", lots="0.01", clientOrderId="mine-1")
        self.server.advance(0.5)
        self.sim.faults.clear()
        self.sim.faults.dropNow()
        fill = self.run_(d)
        self.assertTrue(fill.reconciled)
        self.assertEqual(fill.order.clientOrderId, "mine-1")
        self.assertEqual(self.requests.count("ProtoOANewOrderReq"), 1)
        self.assertEqual(len(self.sim.accounts[self.accountId].openPositions()), 1)
        self.assertIn(fill.positionId, self.trader.account.positions)
        self.assertTrue(changes)

    def test_lostConnectionBeforeTheServerActed(self) -> None:
        self.sim.faults.dropAfter(1)  # the order is the next message: never processed
        error = self.fails(self.trader.buy("EURUSD", lots="0.01"), NotExecutedError)
        self.assertTrue(error.clientOrderId.startswith("ctw-"))
        self.assertEqual(self.sim.accounts[self.accountId].openPositions(), [])
        self.assertEqual(self.requests.count("ProtoOANewOrderReq"), 1)


class MarketHoursTests(TradingTestCase):
    simulatorOptions = {"marketHours": True}

    def test_closedMarketRefuses(self) -> None:
        # 2026-09-21 14:13 UTC, Monday: FX open. Saturday: everything closed.
        self.run_(self.trader.buy("EURUSD", lots="0.01"))
        eurusd = self.run_(self.trader.symbols.get("EURUSD"))
        from datetime import datetime, timezone

        self.assertTrue(eurusd.isOpen(datetime(2026, 9, 21, 14, 0, tzinfo=timezone.utc)))
        self.assertFalse(eurusd.isOpen(datetime(2026, 9, 26, 14, 0, tzinfo=timezone.utc)))
        self.server.advance(5 * 86400 - 3600, step=600)  # to Saturday
        error = self.fails(self.trader.buy("EURUSD", lots="0.01"), MarketClosedError)
        self.assertEqual(error.errorCode, "MARKET_CLOSED")
        quote = self.trader.quote("EURUSD")
        self.server.advance(5)
        self.assertEqual(self.trader.quote("EURUSD"), quote)  # a closed market stays still


class SimulatedRiskTests(TradingTestCase):
    def test_trailingStopFollowsThePrice(self) -> None:
        self.run_(self.trader.on(Spot, lambda s: None, symbol="EURUSD").whenReady())
        moves: list[TrailingStop] = []
        self.trader.on(TrailingStop, moves.append)
        fill = self.run_(self.trader.buy("EURUSD", lots="0.01", stopLossPips=50, trailingStopLoss=True))
        for _ in range(200):
            self.server.advance(1)
            if moves:
                break
        self.assertTrue(moves)
        position = self.trader.account.position(fill.positionId)
        if position is not None:
            self.assertEqual(position.stopLoss, moves[-1].stopPrice)
            self.assertGreater(moves[-1].stopPrice, fill.position.stopLoss)

    def test_marginCallAndStopOut(self) -> None:
        poor = self.sim.addAccount(balance=20_000)  # 200 USD
        trader = Trader(self.client, poor, self.sim.accessToken)
        self.server.resultOf(trader.start())
        calls: list[MarginCall] = []
        stops: list[Execution] = []
        trader.on(MarginCall, calls.append)
        trader.on(Execution, lambda e: stops.append(e) if e.order is not None and e.order.raw.isStopOut else None)
        fill = self.server.resultOf(trader.buy("EURUSD", lots="0.1"))
        self.assertIsNotNone(fill)
        self.sim.market.symbols[1].bid -= 1500  # the price falls 150 pips
        self.sim.market.symbols[1].ask -= 1500
        self.server.advance(1)
        self.assertTrue(calls)
        self.assertTrue(all(c.triggered for c in calls))
        self.assertTrue(stops)
        self.assertIsNone(trader.account.position(fill.positionId))
        self.assertLess(trader.account.balance, Decimal(200))
        trader.stop()

    def test_pnlSubscriptionAndSwaps(self) -> None:
        minute = int(self.server.clock.seconds()) % 86400 // 60
        self.sim.market.symbols[2].spec["spec"]["swapTime"] = minute + 3  # GBPUSD's swaps, in three minutes
        changes: list[PnLChanged] = []
        subscription = self.trader.on(PnLChanged, changes.append)
        self.run_(subscription.whenReady())
        fill = self.run_(self.trader.buy("GBPUSD", lots="1"))
        self.server.advance(3)
        self.assertTrue(changes)
        self.assertEqual(changes[-1].net, self.trader.account.pnl.net)  # type: ignore[union-attr]
        swaps: list[Execution] = []
        self.trader.on(Execution, swaps.append, type=ExecutionType.SWAP)
        self.server.advance(240, step=1)
        self.assertEqual(len(swaps), 1)
        position = self.trader.account.position(fill.positionId)
        self.assertLess(position.swap, 0)  # type: ignore[union-attr]  # GBPUSD's long swap is negative
        subscription.cancel()
        self.server.advance(1)
        self.assertNotIn(self.accountId, self.session().pnl)


class LifeTests(SynchronousTestCase):
    def test_needsAManagedSessionAndAnAuthorizedAccount(self) -> None:
        server = SimulatedServer()
        client = server.connect(server.client())
        self.addCleanup(client.stopService)
        with self.assertRaises(NotConnectedError):
            server.resultOf(Trader(client, server.simulator.accountIds[0]).start())
        managed = server.connect(server.managedClient())
        self.addCleanup(managed.stopService)
        with self.assertRaises(NotConnectedError):
            server.resultOf(Trader(managed, server.simulator.accountIds[0]).start())
        self.assertRaises(ValueError, Trader, managed, 0)
        self.assertRaises(ValueError, Trader, managed, 1, "")


class HostileInputTests(TradingTestCase):
    """What the server sends is hostile too: odd values never break the
    layer, and one failing callback does not starve the others."""

    def test_oddValuesFromTheWire(self) -> None:
        from ctrader_twisted.messages.OpenApiMessages_pb2 import (
            ProtoOADepthEvent,
            ProtoOAExecutionEvent,
            ProtoOASpotEvent,
        )
        from ctrader_twisted.messages.OpenApiModelMessages_pb2 import ProtoOADepthQuote, ProtoOAPosition, ProtoOATradeData

        executions: list[Execution] = []
        depths: list[Depth] = []
        spots: list[Spot] = []
        self.trader.on(Execution, executions.append)
        self.trader.on(Depth, depths.append, symbol="EURUSD")
        self.trader.on(Spot, spots.append)
        self.server.advance(1)
        position = ProtoOAPosition(
            positionId=77, tradeData=ProtoOATradeData(symbolId=999, volume=100, tradeSide=1), positionStatus=1, swap=0,
            price=float("nan"), stopLoss=float("inf"),
        )
        self.sim.sendEvent(ProtoOAExecutionEvent(ctidTraderAccountId=self.accountId, executionType=8, position=position))
        self.sim.sendEvent(ProtoOADepthEvent(ctidTraderAccountId=self.accountId, symbolId=1, newQuotes=[
            ProtoOADepthQuote(id=10**9 + 1, size=100, bid=0), ProtoOADepthQuote(id=10**9 + 2, size=100, ask=114900)]))
        self.sim.sendEvent(ProtoOASpotEvent(ctidTraderAccountId=self.accountId, symbolId=999, bid=5))
        self.server.flush()
        [execution] = executions
        self.assertEqual(execution.type, ExecutionType.ORDER_CANCEL_REJECTED)
        self.assertEqual(execution.symbol, "#999")
        self.assertIsNone(execution.position.entryPrice)  # type: ignore[union-attr]  # NaN is not a price
        self.assertIsNone(execution.position.stopLoss)  # type: ignore[union-attr]
        book = depths[-1].book
        self.assertIn(10**9 + 2, [level.quoteId for level in book.asks])
        self.assertNotIn(10**9 + 1, [level.quoteId for level in book.bids])  # a price of 0 is not a quote
        self.assertEqual(depths[-1].added, (book.asks[[a.quoteId for a in book.asks].index(10**9 + 2)],))
        self.assertEqual([(s.symbol, s.bid, s.ask) for s in spots if s.symbolId == 999], [("#999", Decimal("0.00005"), None)])

    def test_aFailingCallbackDoesNotStarveTheOthers(self) -> None:
        seen: list[Spot] = []

        def broken(spot: Spot) -> None:
            raise RuntimeError("a bug in user code")

        self.trader.on(Spot, broken, symbol="EURUSD")
        self.trader.on(Spot, seen.append, symbol="EURUSD")
        self.server.advance(2)
        self.assertTrue(seen)
        self.assertTrue(self.flushLoggedErrors(RuntimeError))
        self.assertTrue(self.client.isReady)


class SimulatorRawTests(TradingTestCase):
    """The simulator's new requests, through the raw API."""

    def test_marginCallThresholds(self) -> None:
        calls = self.run_(self.client.request("ProtoOAMarginCallListReq", ctidTraderAccountId=self.accountId))
        self.assertEqual([(c.marginCallType, c.marginLevelThreshold) for c in calls.marginCall],
                         [(61, 150.0), (62, 120.0), (63, 100.0)])
        updates: list[MarginCall] = []
        self.trader.on(MarginCall, updates.append)
        from ctrader_twisted.messages.OpenApiModelMessages_pb2 import ProtoOAMarginCall

        self.run_(self.client.request("ProtoOAMarginCallUpdateReq", ctidTraderAccountId=self.accountId,
                                      marginCall=ProtoOAMarginCall(marginCallType=62, marginLevelThreshold=80.0)))
        self.server.flush()
        self.assertEqual([(u.kind, u.threshold, u.triggered) for u in updates], [("MARGIN_LEVEL_THRESHOLD_2", Decimal(80), False)])
        from ctrader_twisted.errors import InvalidRequestError

        self.fails(self.client.request("ProtoOAMarginCallUpdateReq", ctidTraderAccountId=self.accountId,
                                       marginCall=ProtoOAMarginCall(marginCallType=62, marginLevelThreshold=-1.0)),
                   InvalidRequestError)

    def test_pnlSubscriptionErrors(self) -> None:
        from ctrader_twisted.errors import InvalidRequestError, OpenApiError

        self.run_(self.client.request("ProtoOAv1PnLChangeSubscribeReq", ctidTraderAccountId=self.accountId))
        error = self.fails(self.client.request("ProtoOAv1PnLChangeSubscribeReq", ctidTraderAccountId=self.accountId), OpenApiError)
        self.assertEqual(error.errorCode, "ALREADY_SUBSCRIBED")
        self.run_(self.client.request("ProtoOAv1PnLChangeUnSubscribeReq", ctidTraderAccountId=self.accountId))
        self.fails(self.client.request("ProtoOAv1PnLChangeUnSubscribeReq", ctidTraderAccountId=self.accountId), InvalidRequestError)


class StopTests(TradingTestCase):
    def test_stopEndsStreamsAndReleasesSubscriptions(self) -> None:
        ended: list[str] = []

        async def consume() -> None:
            async for spot in self.trader.spots("EURUSD"):
                pass
            ended.append("end")

        d = ensureDeferred(consume())
        held = self.trader.on(Spot, lambda s: None, symbol="GBPUSD")
        self.server.advance(2)
        self.assertTrue({1, 2} <= self.session().spots[self.accountId])
        self.trader.stop()
        self.server.advance(1)
        self.run_(d)
        self.assertEqual(ended, ["end"])
        self.assertFalse({1, 2} & self.session().spots.get(self.accountId, set()))
        held.cancel()  # harmless after stop
        self.assertFalse(held.active)


class LayeringTests(SynchronousTestCase):
    def test_theCoreNeverImportsTheLayer(self) -> None:
        """Importing the package, the client and the command line loads no
        part of the typed layer; ``ctrader_twisted.Trader`` loads it on use."""
        import subprocess
        import sys

        code = (
            "import sys, ctrader_twisted, ctrader_twisted.client, ctrader_twisted.cli, ctrader_twisted.simulator\n"
            "assert not [m for m in sys.modules if m.startswith('ctrader_twisted.trading')], 'imported'\n"
            "from ctrader_twisted import Trader\n"
            "assert Trader.__module__ == 'ctrader_twisted.trading.trader'\n"
        )
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        self.assertEqual(done.returncode, 0, done.stderr)

    def test_startTwiceSharesOneStart(self) -> None:
        server = SimulatedServer()
        client = server.connect(server.managedClient())
        self.addCleanup(client.stopService)
        trader = Trader(client, server.simulator.accountIds[0], server.simulator.accessToken)
        first, second = trader.start(), trader.start()
        self.assertIs(server.resultOf(first), server.resultOf(second))
        self.assertIs(server.resultOf(trader.start()), trader)


class ModelEventTests(TradingTestCase):
    """Margin and trader updates reach the account model, and tell of it."""

    def test_marginAndTraderUpdates(self) -> None:
        from ctrader_twisted.messages.OpenApiMessages_pb2 import ProtoOAMarginChangedEvent, ProtoOATraderUpdatedEvent

        self.run_(self.trader.on(Spot, lambda s: None, symbol="EURUSD").whenReady())
        fill = self.run_(self.trader.buy("EURUSD", lots="0.01"))
        changes: list[AccountChanged] = []
        self.trader.on(AccountChanged, changes.append, reason="margin")
        self.trader.on(AccountChanged, changes.append, reason="balance")
        self.sim.sendEvent(ProtoOAMarginChangedEvent(ctidTraderAccountId=self.accountId, positionId=fill.positionId,
                                                     usedMargin=1234, moneyDigits=2))
        trader = self.sim.accounts[self.accountId].toTrader()
        version = trader.balanceVersion
        trader.balance, trader.balanceVersion = 2_000_000, version + 1
        self.sim.sendEvent(ProtoOATraderUpdatedEvent(ctidTraderAccountId=self.accountId, trader=trader))
        stale = self.sim.accounts[self.accountId].toTrader()
        stale.balance, stale.balanceVersion = 1, version  # an older balance than the one held
        self.sim.sendEvent(ProtoOATraderUpdatedEvent(ctidTraderAccountId=self.accountId, trader=stale))
        self.server.flush()
        self.assertEqual(self.trader.account.position(fill.positionId).usedMargin, Decimal("12.34"))  # type: ignore[union-attr]
        self.assertEqual(self.trader.account.balance, Decimal("20000.00"))
        self.assertEqual([(c.reason, c.positionId) for c in changes], [("margin", fill.positionId), ("balance", None)])

    def test_actingBeforeStartSaysSo(self) -> None:
        server = SimulatedServer()
        client = server.connect(server.managedClient())
        self.addCleanup(client.stopService)
        trader = Trader(client, server.simulator.accountIds[0], server.simulator.accessToken)
        self.assertRaises(NotConnectedError, trader.on, Spot, print, symbol="EURUSD")
        self.assertRaises(NotConnectedError, trader.spots, "EURUSD")
        for d in (trader.buy("EURUSD", lots="0.01"), trader.cancelOrder(1), trader.closePosition(1),
                  trader.amendPosition(1), trader.amendOrder(1)):
            self.assertIn("await trader.start() first", str(self.failureResultOf(d, NotConnectedError).value))
        server.resultOf(trader.start())
        trader.stop()
        self.failureResultOf(trader.buy("EURUSD", lots="0.01"), NotConnectedError)
