"""Tests of the simulator's history: market sessions, tick density, windows, account pasts."""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from ctrader_twisted import history
from ctrader_twisted.errors import IncorrectBoundariesError
from ctrader_twisted.messages.OpenApiModelMessages_pb2 import ProtoOAQuoteType, ProtoOATrendbarPeriod
from ctrader_twisted.simulator.accounthistory import PAST_DAYS, pastOf
from ctrader_twisted.simulator.handlers import trading
from ctrader_twisted.simulator.market import HOURLY_ACTIVITY, MAX_WINDOW_MS, TICKS_PER_SECOND, Market
from ctrader_twisted.testing import SimulatedServer

DAY = 86_400_000
HOUR = 3_600_000
MONDAY = 1_789_344_000_000  # 2026-09-14 00:00 UTC
SATURDAY = MONDAY + 5 * DAY
P = ProtoOATrendbarPeriod


class MarketHistoryTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.market = Market(0)
        self.eurusd = self.market.symbols[1]
        self.gold = self.market.symbols[41]

    def test_noHistoryWhenClosed(self) -> None:
        """No tick and no bar at the weekend or in the daily breaks; bars again when trading resumes."""
        weekend = list(self.eurusd.historicalTicks(ProtoOAQuoteType.BID, SATURDAY, SATURDAY + 2 * DAY - 1))
        self.assertEqual(weekend, [])
        self.assertEqual(list(self.eurusd.historicalBars(P.M1, SATURDAY, SATURDAY + DAY)), [])
        # EURUSD trades 00:05-23:55, gold 01:05-23:50 (UTC): no M1 bar in the breaks.
        tuesday = MONDAY + DAY
        minutes = {b.utcTimestampInMinutes % 1440 for b in self.eurusd.historicalBars(P.M1, tuesday, tuesday + DAY)}
        self.assertEqual(minutes, set(range(5, 1435)))
        gold = {b.utcTimestampInMinutes % 1440 for b in self.gold.historicalBars(P.M1, tuesday, tuesday + DAY)}
        self.assertEqual(min(gold), 65)
        self.assertEqual(max(gold), 1429)
        daily = list(self.eurusd.historicalBars(P.D1, MONDAY, MONDAY + 7 * DAY))
        self.assertEqual(len(daily), 5)

    def test_tickDensity(self) -> None:
        """Ticks are densest when London and New York overlap, sparse in the Asian hours, as configured."""
        tuesday = MONDAY + DAY
        counts = {}
        for hour in (2, 14):
            start = tuesday + hour * HOUR
            counts[hour] = sum(1 for _ in self.eurusd.historicalTicks(ProtoOAQuoteType.BID, start, start + HOUR - 1))
            expected = 3600 * TICKS_PER_SECOND * HOURLY_ACTIVITY[hour]
            self.assertLess(abs(counts[hour] - expected) / expected, 0.05, (hour, counts[hour], expected))
        self.assertGreater(counts[14], 5 * counts[2])
        ticks = list(self.eurusd.historicalTicks(ProtoOAQuoteType.ASK, tuesday, tuesday + 60_000))
        bids = dict(self.eurusd.historicalTicks(ProtoOAQuoteType.BID, tuesday, tuesday + 60_000))
        self.assertTrue(all(price > bids[t] for t, price in ticks), "the ask is above the bid")

    def test_sameBarsHoweverCut(self) -> None:
        """History is a function of time: a window cut in two gives the same bars."""
        a, b, c = MONDAY, MONDAY + 30 * HOUR + 7 * 60_000, MONDAY + 3 * DAY
        for period in (P.M1, P.M15, P.H4):
            whole = list(self.eurusd.historicalBars(period, a, c))
            self.assertEqual(whole, list(self.eurusd.historicalBars(period, a, b)) + list(self.eurusd.historicalBars(period, b, c)))
            self.assertEqual(whole, list(Market(0).symbols[1].historicalBars(period, a, c)))
            for bar in whole:
                self.assertLessEqual(max(bar.deltaOpen, bar.deltaClose), bar.deltaHigh)
                self.assertGreater(bar.volume, 0)

    def test_oneTableOfWindows(self) -> None:
        """The simulator enforces the library's windows (the .NET SDK's values)."""
        self.assertIs(MAX_WINDOW_MS, history.TRENDBAR_WINDOW_MS)
        self.assertEqual(MAX_WINDOW_MS[P.M1], 302_400_000)
        self.assertEqual(MAX_WINDOW_MS[P.H1], 21_168_000_000)
        self.assertEqual(MAX_WINDOW_MS[P.D1], 31_622_400_000)
        self.assertEqual(MAX_WINDOW_MS[P.MN1], 158_112_000_000)
        self.assertEqual(set(MAX_WINDOW_MS), set(P.values()))


class HandlerTests(SynchronousTestCase):
    """The history requests answered over the wire, as the real server does."""

    def setUp(self) -> None:
        self.server = SimulatedServer(historicalRequestsPerSecond=None)
        self.sim = self.server.simulator
        self.client = self.server.connect(self.server.managedClient())
        self.accountId = self.sim.accountIds[0]
        self.server.resultOf(self.client.authorizeAccount(self.accountId, self.sim.accessToken))
        self.addCleanup(lambda: self.server.resultOf(self.client.stopService()))

    def ask(self, name: str, **fields: Any) -> Any:
        return self.server.resultOf(self.client.request(name, ctidTraderAccountId=self.accountId, **fields))

    def refused(self, name: str, **fields: Any) -> Any:
        d = self.client.request(name, ctidTraderAccountId=self.accountId, **fields)
        return self.assertRaises(IncorrectBoundariesError, self.server.resultOf, d)

    def test_windowLimits(self) -> None:
        """Every period's window is accepted at its limit and refused 1 ms beyond; so are ticks and cash flow."""
        end = SATURDAY
        for period, limit in history.TRENDBAR_WINDOW_MS.items():
            self.ask("ProtoOAGetTrendbarsReq", symbolId=1, period=period, fromTimestamp=end - limit, toTimestamp=end)
            self.refused("ProtoOAGetTrendbarsReq", symbolId=1, period=period, fromTimestamp=end - limit - 1,
                         toTimestamp=end)
        week = history.TICK_WINDOW_MS
        self.refused("ProtoOAGetTickDataReq", symbolId=1, type=1, fromTimestamp=end - week - 1, toTimestamp=end)
        self.ask("ProtoOACashFlowHistoryListReq", fromTimestamp=end - week, toTimestamp=end)
        self.refused("ProtoOACashFlowHistoryListReq", fromTimestamp=end - week - 1, toTimestamp=end)

    def test_tickPagesNewestFirst(self) -> None:
        """A busy week answers its newest ticks, newest first as differences, with hasMore."""
        res = self.ask("ProtoOAGetTickDataReq", symbolId=1, type=2, fromTimestamp=SATURDAY - 5 * DAY,
                       toTimestamp=SATURDAY)
        self.assertTrue(res.hasMore)
        self.assertEqual(len(res.tickData), 5000)
        rows = history.decodeTickData(res, 5, "ask")
        self.assertLessEqual(rows[-1].timestamp, SATURDAY)
        self.assertEqual(rows, sorted(rows, key=lambda t: t.timestamp))

    def test_dealListNewestFirstWithHasMore(self) -> None:
        """Deals come newest first (as recorded from a real server); past a page, hasMore."""
        account = self.sim.accounts[self.accountId]
        end = account.registrationTimestamp
        res = self.ask("ProtoOADealListReq", fromTimestamp=end - 30 * DAY, toTimestamp=end)
        times = [d.executionTimestamp for d in res.deal]
        self.assertEqual(times, sorted(times, reverse=True))
        self.assertFalse(res.hasMore)
        self.patch(trading, "MAX_DEALS", 5)
        res = self.ask("ProtoOADealListReq", fromTimestamp=end - 30 * DAY, toTimestamp=end)
        self.assertEqual(len(res.deal), 5)
        self.assertTrue(res.hasMore)
        self.assertEqual([d.executionTimestamp for d in res.deal], times[:5])
        res = self.ask("ProtoOADealListReq", fromTimestamp=end - 30 * DAY, toTimestamp=end, maxRows=2)
        self.assertEqual(len(res.deal), 2)
        orders = self.ask("ProtoOAOrderListReq", fromTimestamp=end - 30 * DAY, toTimestamp=end)
        self.assertEqual({o.orderId for o in orders.order} >= {d.orderId for d in res.deal}, True)
        byPosition = self.ask("ProtoOADealListByPositionIdReq", positionId=res.deal[0].positionId,
                              fromTimestamp=end - 31 * DAY, toTimestamp=end)
        self.assertEqual(len(byPosition.deal), 2, "an opening and a closing deal")


class AccountPastTests(SynchronousTestCase):
    def test_balanceChain(self) -> None:
        """Every balance in the past is the one before plus the operation; it ends at zero
        before the account's own records begin."""
        server = SimulatedServer()
        sim = server.simulator
        account = sim.accounts[sim.accountIds[0]]
        past = pastOf(sim, account)
        self.assertIs(pastOf(sim, account), past, "made once")
        events: list[tuple[int, int, Any]] = [(t, 0, (delta, after)) for t, delta, after in past.cashFlow]
        events += [(d.executionTimestamp, 1, d) for d in past.deals if d.closeDetail is not None]
        events.sort(key=lambda e: (e[0], e[1]))
        balance = 0
        for _, kind, item in events:
            if kind == 0:
                delta, after = item
                balance += delta
                self.assertEqual(after, balance)
            else:
                detail = item.closeDetail
                balance += detail.grossProfit + detail.swap + detail.commission
                self.assertEqual(detail.balance, balance)
            self.assertGreaterEqual(balance, 0)
        self.assertEqual(balance, 0)
        self.assertLess(past.cashFlow[-1][0], account.registrationTimestamp)
        first = min(d.executionTimestamp for d in past.deals)
        self.assertLess(first, account.registrationTimestamp - (PAST_DAYS - 5) * DAY)
        self.assertGreater(len(past.deals), PAST_DAYS)
        self.assertEqual({len(deals) for deals in past.byPosition.values()}, {2})
        other = pastOf(SimulatedServer().simulator, SimulatedServer().simulator.accounts[account.ctidTraderAccountId])
        self.assertEqual([d.dealId for d in other.deals][:50], [d.dealId for d in past.deals][:50])
