"""Tests for :mod:`ctrader_twisted.history`: windows, paging, pacing, retries, decoding.

Downloads run against the simulator in memory on a ``task.Clock``
(:class:`ctrader_twisted.testing.SimulatedServer`), so the rate limits and
the holds are virtual time; the simulator's deterministic history is the
oracle (every row, exactly, once). Paging edge cases (rows sharing a
millisecond across a page boundary, servers that include or exclude
``toTimestamp``, hostile answers) run against scripted answers.
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from heapq import merge
from typing import Any, Callable

from twisted.internet.defer import CancelledError, Deferred, ensureDeferred, fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase

from ctrader_twisted import history
from ctrader_twisted.errors import IncorrectBoundariesError, OutcomeUnknownError, RequestTimeout
from ctrader_twisted.history import (
    Bar,
    HistoryError,
    HistoryPacer,
    Tick,
    decodeCashFlow,
    decodeDeal,
    decodeTickData,
    decodeTrendbars,
)
from ctrader_twisted.messages.OpenApiMessages_pb2 import (
    ProtoOACashFlowHistoryListRes,
    ProtoOADealListRes,
    ProtoOAErrorRes,
    ProtoOAGetTickDataRes,
    ProtoOAGetTrendbarsRes,
    ProtoOASymbolByIdRes,
)
from ctrader_twisted.messages.OpenApiModelMessages_pb2 import (
    ProtoOADeal,
    ProtoOAQuoteType,
    ProtoOATickData,
    ProtoOATrendbar,
    ProtoOATrendbarPeriod,
)
from ctrader_twisted.simulator.accounthistory import pastOf
from ctrader_twisted.simulator.handlers import Registry, Route, auth, marketdata, refdata, trading
from ctrader_twisted.testing import SimulatedServer

from .util import ROOT, referenceDir

M1 = ProtoOATrendbarPeriod.M1
DAY = 86_400_000
#: 2026-09-21 (a Monday) 00:00 UTC: history ranges end here, in the simulator's past.
MONDAY = 1_789_948_800_000
#: The Saturday before, 00:00 UTC: the days before it are trading days.
SATURDAY = MONDAY - 2 * DAY


def bars(sim: Any, symbolId: int, period: int, start: int, end: int) -> list[Bar]:
    """The simulator's own bars of ``[start, end)`` (the oracle)."""
    state = sim.market.symbols[symbolId]
    return decodeTrendbars(list(state.historicalBars(period, start, end)), state.digits)


def ticks(sim: Any, symbolId: int, sides: tuple[str, ...], start: int, end: int) -> list[Tick]:
    """The simulator's own ticks of ``[start, end)``, oldest first, sides merged bid first."""
    state = sim.market.symbols[symbolId]
    streams = []
    for side in sides:
        quote = ProtoOAQuoteType.BID if side == "bid" else ProtoOAQuoteType.ASK
        raw = list(state.historicalTicks(quote, start, end - 1))[::-1]
        streams.append([Tick(t, side, history.wirePrice(p, state.digits)) for t, p in raw])
    return list(merge(*streams, key=lambda t: t.timestamp))


class SimulatedTestCase(SynchronousTestCase):
    """A managed client of the simulator in memory, its demo account authorized."""

    simulatorOptions: dict[str, Any] = {}

    def setUp(self) -> None:
        self.server = SimulatedServer(**self.simulatorOptions)
        self.sim = self.server.simulator
        self.client = self.server.connect(self.server.managedClient())
        self.accountId = self.sim.accountIds[0]
        self.server.resultOf(self.client.authorizeAccount(self.accountId, self.sim.accessToken))
        self.addCleanup(lambda: self.server.resultOf(self.client.stopService()))
        self.requests: list[tuple[float, str, dict[str, Any]]] = []
        original = self.client.request

        def recording(message: Any, *args: Any, **fields: Any) -> Any:
            if isinstance(message, str) and message.endswith(("TrendbarsReq", "TickDataReq", "DealListReq",
                                                               "CashFlowHistoryListReq")):
                self.requests.append((self.server.clock.seconds(), message, fields))
            return original(message, *args, **fields)

        self.client.request = recording  # type: ignore[method-assign]

    def read(self, download: history.Download[Any], within: float = 3600) -> list[Any]:
        """Every row of *download*, read with the async iterator."""
        rows: list[Any] = []

        async def go() -> None:
            async for row in download:
                rows.append(row)

        self.server.resultOf(ensureDeferred(go()), within=within)
        return rows

    def replaceHandler(self, requestClass: Any, wrap: Callable[[Any], Any]) -> None:
        withHandler(self.sim, requestClass, wrap)


def withHandler(sim: Any, requestClass: Any, wrap: Callable[[Any], Any]) -> None:
    """Make *sim* answer *requestClass* with ``wrap(originalHandler)``."""
    registry = Registry()
    for module in (auth, refdata, marketdata, trading):
        for route in module.HANDLERS._routes.values():
            if route.requestClass is requestClass:
                route = Route(route.requestClass, wrap(route.function), route.account, route.application)
            registry.add(route)
    sim.handlers = registry


class DownloadTests(SimulatedTestCase):
    """Every row of a range, once, in time order, in windows the server allows."""

    def test_barsAcrossWindowsAndPages(self) -> None:
        """17 days of M1: windows of at most 3.5 days, a window over the page size
        is paged backwards (then windows shrink to a page), and every bar arrives
        once, oldest first, as the server has it."""
        start, end = MONDAY - 17 * DAY, MONDAY
        download = history.trendbars(self.client, self.accountId, 1, "M1", start, end)
        rows = self.read(download)
        self.assertEqual(rows, bars(self.sim, 1, M1, start, end))
        self.assertEqual(len({r.timestamp for r in rows}), len(rows))
        windows = [(f["fromTimestamp"], f["toTimestamp"]) for _, _, f in self.requests]
        self.assertTrue(all(b - a <= history.TRENDBAR_WINDOW_MS[M1] for a, b in windows))
        self.assertGreater(len(windows), download.progress.windowsDone, "a window over the page size: paged")
        p = download.progress
        self.assertEqual((p.rows, p.windowsTotal, p.coveredUntil), (len(rows), p.windowsDone, end))
        self.assertGreaterEqual(p.windowsDone, 3)
        self.assertEqual(p.requests, len(windows))
        self.assertEqual(p.fraction, 1.0)
        self.assertIsInstance(rows[0].open, Decimal)
        self.assertEqual(rows[0].time.tzinfo, timezone.utc)

    def test_everyPeriodWithinItsWindow(self) -> None:
        """Each period is asked for in windows of its own limit (one table for library and simulator)."""
        for name, days in (("M5", 8), ("H1", 300), ("D1", 400), ("W1", 2000), ("MN1", 2000)):
            period = ProtoOATrendbarPeriod.Value(name)
            self.requests.clear()
            start = MONDAY - days * DAY
            rows = self.read(history.trendbars(self.client, self.accountId, 41, name, start, MONDAY))
            self.assertEqual(rows, bars(self.sim, 41, period, start, MONDAY), name)
            self.assertTrue(rows, name)
            self.assertGreater(len(self.requests), 1, name)
            for _, _, f in self.requests:
                self.assertLessEqual(f["toTimestamp"] - f["fromTimestamp"], history.TRENDBAR_WINDOW_MS[period], name)

    def test_ticksBothSidesMerged(self) -> None:
        """Ticks of both sides over a day and a half, paged by density, merged in time order, exact."""
        start, end = SATURDAY - 42 * 3_600_000, SATURDAY - 6 * 3_600_000
        download = history.ticks(self.client, self.accountId, 1, start, end, digits=5)
        rows = self.read(download)
        expected = ticks(self.sim, 1, ("bid", "ask"), start, end)
        self.assertEqual(len(rows), len(expected))
        self.assertEqual(rows, expected)
        fewest = 2 * -(-len(rows) // 10_000)
        self.assertLessEqual(download.progress.requests, fewest * 1.3, "windows follow the density")
        self.assertEqual(download.progress.fetched, end - start, "both sides fetched over the whole range")
        self.assertEqual(download.progress.fetchedFraction, 1.0)
        for _, _, f in self.requests:
            self.assertLessEqual(f["toTimestamp"] - f["fromTimestamp"], history.TICK_WINDOW_MS)

    def test_dealsAndCashFlow(self) -> None:
        """An account's deals (paged backwards by deal id) and balance operations over a year."""
        account = self.sim.accounts[self.accountId]
        past = pastOf(self.sim, account)
        start, end = MONDAY - 380 * DAY, account.registrationTimestamp
        self.patch(trading, "MAX_DEALS", 7)  # pages of 7: every week is paged
        deals = self.read(history.deals(self.client, self.accountId, start, end))
        expected = [decodeDeal(d.toProto()) for d in past.deals if start <= d.executionTimestamp < end]
        self.assertEqual(deals, expected)
        self.assertGreater(len(deals), 500)
        for _, _, f in self.requests:
            self.assertLessEqual(f["toTimestamp"] - f["fromTimestamp"], history.DEAL_WINDOW_MS)
        self.requests.clear()
        flows = self.read(history.cashFlow(self.client, self.accountId, start, end))
        self.assertEqual([(c.timestamp, c.balance) for c in flows],
                         [(t, Decimal(after).scaleb(-2)) for t, _, after in past.cashFlow if start <= t < end])
        self.assertEqual(flows[-1].balance, 0, "the past ends with everything withdrawn")
        for _, _, f in self.requests:
            self.assertLessEqual(f["toTimestamp"] - f["fromTimestamp"], history.CASH_FLOW_WINDOW_MS)

    def test_eachAndEachBatch(self) -> None:
        """The callback forms deliver the same rows; a callback's Deferred is waited for."""
        start, end = SATURDAY - 2 * DAY, SATURDAY
        seen: list[Bar] = []
        waits: list[Deferred[None]] = []

        def slow(bar: Bar) -> Deferred[None] | None:
            seen.append(bar)
            if len(seen) == 10:
                d: Deferred[None] = Deferred()
                waits.append(d)
                self.server.clock.callLater(5, d.callback, None)
                return d
            return None

        progress = self.server.resultOf(history.trendbars(self.client, self.accountId, 1, M1, start, end).each(slow))
        self.assertEqual(seen, bars(self.sim, 1, M1, start, end))
        self.assertEqual(progress.rows, len(seen))
        self.assertTrue(waits[0].called)
        batches: list[list[Bar]] = []
        self.server.resultOf(history.trendbars(self.client, self.accountId, 1, M1, start, end).eachBatch(batches.append))
        self.assertEqual([b for batch in batches for b in batch], seen)
        self.assertTrue(all(batch for batch in batches))

    def test_resumeSkip(self) -> None:
        """``skip`` drops rows at exactly the start, already held by the caller."""
        start, end = SATURDAY - DAY + 3_600_000, SATURDAY - DAY + 4 * 3_600_000
        every = ticks(self.sim, 1, ("bid",), start, end)
        at = every[10].timestamp
        held = sum(1 for t in every if t.timestamp == at and every.index(t) <= 10)
        rows = self.read(history.ticks(self.client, self.accountId, 1, at, end, side="bid", digits=5, skip=held))
        self.assertEqual(rows, every[11:])

    def test_readOnce(self) -> None:
        download = history.trendbars(self.client, self.accountId, 1, M1, MONDAY - DAY, MONDAY)
        self.read(download)
        self.assertRaises(RuntimeError, download.__aiter__)
        self.assertRaises(RuntimeError, download.each, print)

    def test_digitsAskedWhenNotGiven(self) -> None:
        """Without ``digits`` the symbol's are asked for: XAUUSD prices have 2 places."""
        rows = self.read(history.trendbars(self.client, self.accountId, 41, "H1", SATURDAY - DAY, SATURDAY))
        self.assertTrue(rows)
        self.assertTrue(all(r.close.as_tuple().exponent == -2 for r in rows))

    def test_unknownSymbolFails(self) -> None:
        """A symbol the server does not know fails the download with the server's error."""
        download = history.trendbars(self.client, self.accountId, 999, M1, MONDAY - DAY, MONDAY, digits=5)
        d = download.each(lambda bar: None)
        error = self.assertRaises(Exception, self.server.resultOf, d)
        self.assertEqual(getattr(error, "errorCode", None), "SYMBOL_NOT_FOUND")


class RateLimitTests(SimulatedTestCase):
    """Refusals mid-download: the core writes the request again; no row is lost or doubled."""

    simulatorOptions = {"historicalRequestsPerSecond": 2}  # stricter than the client's 5/s

    def test_requestFrequencyExceeded(self) -> None:
        start, end = MONDAY - 20 * DAY, MONDAY
        download = history.trendbars(self.client, self.accountId, 1, "M5", start, end)
        rows = self.read(download)
        self.assertEqual(rows, bars(self.sim, 1, ProtoOATrendbarPeriod.M5, start, end))
        self.assertGreater(self.client.factory.rateLimitRetries, 0)
        self.assertEqual(download.progress.rateLimitRetries, self.client.factory.rateLimitRetries)
        self.assertEqual(download.progress.retries, 0, "the core retried, not the download")


class BlockedPayloadTests(SimulatedTestCase):
    def test_blockedPayloadTypeWithRetryAfter(self) -> None:
        """BLOCKED_PAYLOAD_TYPE with retryAfter mid-download: nothing of that type is
        written for retryAfter seconds, then the download goes on, complete."""
        from ctrader_twisted.messages.OpenApiMessages_pb2 import ProtoOAGetTrendbarsReq

        arrivals: list[float] = []
        blockedAt: list[float] = []

        def wrap(handler: Any) -> Any:
            def refusing(session: Any, account: Any, req: Any, clientMsgId: Any) -> None:
                arrivals.append(self.server.clock.seconds())
                if len(arrivals) == 3:
                    blockedAt.append(self.server.clock.seconds())
                    session.send(ProtoOAErrorRes(errorCode="BLOCKED_PAYLOAD_TYPE", description="blocked",
                                                 retryAfter=7), clientMsgId)
                    return
                handler(session, account, req, clientMsgId)
            return refusing

        self.replaceHandler(ProtoOAGetTrendbarsReq, wrap)
        start, end = MONDAY - 12 * DAY, MONDAY
        download = history.trendbars(self.client, self.accountId, 1, "M5", start, end)
        rows = self.read(download)
        self.assertEqual(rows, bars(self.sim, 1, ProtoOATrendbarPeriod.M5, start, end))
        later = [t for t in arrivals if t > blockedAt[0]]
        self.assertTrue(later)
        self.assertGreaterEqual(min(later) - blockedAt[0], 7 - 1e-6, "held for retryAfter")
        self.assertEqual(self.client.factory.rateLimitRetries, 1)


class DisconnectTests(SimulatedTestCase):
    def test_disconnectMidDownload(self) -> None:
        """The connection drops while a request is in flight: the managed client
        reconnects, the request is asked again, no row is missing or doubled."""
        start, end = MONDAY - 15 * DAY, MONDAY
        download = history.trendbars(self.client, self.accountId, 1, "M1", start, end)
        drops = [0]
        original = self.client.request

        def dropping(message: Any, *args: Any, **fields: Any) -> Any:
            d = original(message, *args, **fields)
            if message == "ProtoOAGetTrendbarsReq" and not drops[0] and len(self.requests) == 3:
                drops[0] += 1
                self.sim.faults.dropAfter(1)  # the next message received (this request) drops the link
            return d

        self.client.request = dropping  # type: ignore[method-assign]
        rows = self.read(download)
        self.assertEqual(drops[0], 1)
        self.assertEqual(rows, bars(self.sim, 1, M1, start, end))
        self.assertEqual(len({r.timestamp for r in rows}), len(rows))
        self.assertGreaterEqual(download.progress.retries, 1)


class CancelTests(SimulatedTestCase):
    def test_cancelEach(self) -> None:
        """Cancelling the Deferred of each() stops the download: it fails with
        CancelledError, no request is sent after, and what arrived is a prefix."""
        start, end = MONDAY - 60 * DAY, MONDAY
        seen: list[Bar] = []
        download = history.trendbars(self.client, self.accountId, 1, M1, start, end)
        d = download.each(seen.append)
        self.server.advance(1.5)
        self.assertFalse(d.called)
        d.cancel()
        self.failureResultOf(d, CancelledError)
        sent = len(self.requests)
        self.server.advance(10)
        self.assertEqual(len(self.requests), sent)
        expected = bars(self.sim, 1, M1, start, end)
        self.assertEqual(seen, expected[: len(seen)])
        self.assertLess(len(seen), len(expected))
        self.assertIsNotNone(download.progress.finishedAt)
        self.assertEqual(len(self.client.factory.outbox), 0, "nothing left queued")

    def test_cancelIterator(self) -> None:
        download = history.trendbars(self.client, self.accountId, 1, M1, MONDAY - 30 * DAY, MONDAY)
        got: list[Any] = []

        async def go() -> None:
            async for bar in download:
                got.append(bar)
                if len(got) == 100:
                    download.cancel()

        d = ensureDeferred(go())
        self.assertRaises(CancelledError, self.server.resultOf, d)
        self.assertEqual(len(got), 100)


class FairnessTests(SimulatedTestCase):
    def test_twoDownloadsShareTheLimit(self) -> None:
        """Two downloads on one client take turns: neither waits for the other to finish."""
        start, end = MONDAY - 40 * DAY, MONDAY
        a = history.trendbars(self.client, self.accountId, 1, "M5", start, end, lookahead=6)
        b = history.trendbars(self.client, self.accountId, 41, "M5", start, end, lookahead=1)
        da, db = a.each(lambda r: None), b.each(lambda r: None)
        self.server.resultOf(da, within=600)
        self.server.resultOf(db, within=600)
        order = [f["symbolId"] for _, _, f in self.requests]
        half = order[: len(order) // 2]
        self.assertGreaterEqual(half.count(41), len(half) // 2 - 1, f"round-robin turns: {order}")
        self.assertLess(abs(a.progress.finishedAt - b.progress.finishedAt), 3)

    def test_pacerRoundRobin(self) -> None:
        """Turns alternate between owners however many each asks for; spaced in time."""
        clock = Clock()
        pacer = HistoryPacer(slots=1, spacing=0.2, clock=clock)
        order: list[str] = []
        granted: list[float] = []

        def turn(_: Any, owner: str) -> None:
            order.append(owner)
            granted.append(clock.seconds())

        for owner in "aaabbb":
            pacer.acquire(owner).addCallback(turn, owner)
        for _ in range(6):
            pacer.release()
            clock.advance(0.2)
        # "a" had its first turn at once and was waiting again before "b" came.
        self.assertEqual(order, ["a", "a", "b", "a", "b", "b"])
        self.assertTrue(all(b - a >= 0.2 - 1e-9 for a, b in zip(granted, granted[1:])), granted)
        self.successResultOf(pacer.acquire("x"))  # the one slot is busy again
        cancelled, waiting = pacer.acquire("c"), pacer.acquire("d")
        cancelled.cancel()
        self.failureResultOf(cancelled, CancelledError)
        pacer.release()
        clock.advance(0.2)
        self.successResultOf(waiting)
        self.assertRaises(ValueError, HistoryPacer, slots=0)
        self.assertRaises(ValueError, HistoryPacer, spacing=float("nan"))
        self.assertRaises(ValueError, HistoryPacer, spacing=1.0)


    def test_pacerOldestFirstWithinAnOwner(self) -> None:
        """An owner's waiting turns go lowest priority first (a download's oldest
        window first), equal ones in the order asked; other owners still alternate."""
        pacer = HistoryPacer(slots=1)
        order: list[tuple[str, int]] = []
        self.successResultOf(pacer.acquire("a", 0))  # takes the one slot
        for owner, priority in (("a", 30), ("a", 10), ("b", 5), ("a", 20), ("a", 10), ("a", 40)):
            pacer.acquire(owner, priority).addCallback(lambda _, o=owner, p=priority: order.append((o, p)))
        dropped = pacer.acquire("a", 1)
        dropped.cancel()  # leaves the heap in order
        self.failureResultOf(dropped, CancelledError)
        for _ in range(6):
            pacer.release()
        # "a" asked first, so its turn comes first, then "b"'s; each takes its lowest.
        self.assertEqual(order, [("a", 10), ("b", 5), ("a", 10), ("a", 20), ("a", 30), ("a", 40)])

    def test_pacerSpacedAsTheLimiterLetsThrough(self) -> None:
        """A client's pacer spaces turns by the limiter's window (1 s plus its
        margin) over the historical limit: requests wait in the pacer, in
        priority order, not in the client's queue."""
        pacer = history.pacerFor(self.client)
        limiter = self.client.factory.limiter
        self.assertEqual((pacer.spacing, pacer.limit, pacer.period), (0.2, 5, limiter.window))
        self.assertGreater(limiter.window, 1.0)
        self.assertIs(history.pacerFor(self.client), pacer)

    def test_pacerWindow(self) -> None:
        """With a limit, at most that many turns in any period (five 0.2 s
        apart, then the sixth a period after the first), however many slots."""
        clock = Clock()
        pacer = HistoryPacer(slots=10, spacing=0.2, clock=clock, limit=5, period=1.1)
        granted: list[float] = []
        for _ in range(11):
            pacer.acquire("a").addCallback(lambda _: granted.append(round(clock.seconds(), 6)))
        while clock.getDelayedCalls():  # to each timer's time, exactly
            clock.advance(min(c.getTime() for c in clock.getDelayedCalls()) - clock.seconds())
        self.assertEqual(granted[:6], [0.0, 0.2, 0.4, 0.6, 0.8, 1.1])
        self.assertTrue(all(b - a >= 1.1 - 1e-9 for a, b in zip(granted, granted[5:])), granted)
        self.assertRaises(ValueError, HistoryPacer, limit=0, clock=clock)
        self.assertRaises(ValueError, HistoryPacer, limit=5, period=float("inf"), clock=clock)
        self.assertRaises(ValueError, HistoryPacer, limit=5)

    def test_progressRunsAheadOfDelivery(self) -> None:
        """Windows are fetched side by side: before the first is delivered, the
        fetched part of the range (and so the ETA) moves on."""
        start, end = SATURDAY - 42 * 3_600_000, SATURDAY - 6 * 3_600_000
        download = history.ticks(self.client, self.accountId, 1, start, end, digits=5)
        seen: list[tuple[float, float, float | None]] = []

        def batch(rows: list[Any]) -> None:
            p = download.progress
            seen.append((p.fraction, p.fetchedFraction, p.eta(self.server.clock.seconds())))

        self.server.resultOf(download.eachBatch(batch), within=3600)
        self.assertTrue(any(fetched > delivered for delivered, fetched, _ in seen), seen)
        self.assertTrue(all(fetched >= delivered for delivered, fetched, _ in seen), seen)
        self.assertTrue(all(eta is not None for _, fetched, eta in seen if fetched > 0), seen)


class AsyncioTests(SimulatedTestCase):
    def test_asyncIteratorInAnAsyncioTask(self) -> None:
        """``async for`` in an asyncio task (as under Twisted's asyncio reactor) gets futures, not Deferreds."""
        download = history.trendbars(self.client, self.accountId, 1, "M5", MONDAY - 5 * DAY, MONDAY)
        loop = asyncio.new_event_loop()
        self.addCleanup(loop.close)

        async def read() -> list[Bar]:
            return [bar async for bar in download]

        async def main() -> list[Bar]:
            task = loop.create_task(read())
            while not task.done():
                self.server.advance(0.05)
                await asyncio.sleep(0)
            return task.result()

        rows = loop.run_until_complete(main())
        self.assertEqual(rows, bars(self.sim, 1, ProtoOATrendbarPeriod.M5, MONDAY - 5 * DAY, MONDAY))


class AsyncioReactorTests(TestCase):
    def test_underTheAsyncioReactor(self) -> None:
        """A real asyncio reactor, a coroutine of asyncio's, the simulator over loopback TLS."""
        script = textwrap.dedent(
            """
            import asyncio, sys
            from twisted.internet import asyncioreactor
            asyncioreactor.install()
            from twisted.internet import reactor
            from twisted.internet.defer import Deferred
            from ctrader_twisted import Client, history
            from ctrader_twisted.simulator import Simulator

            async def main():
                sim = Simulator(seed=0, clock=reactor)
                listening = sim.listen(reactor, tlsPort=0, wsPort=None)
                client = Client(listening.host, listening.tlsPort, reactor=reactor, trustRoot=listening.caPEM,
                                clientId=sim.clientId, clientSecret=sim.clientSecret)
                client.startService()
                await Deferred.asFuture(client.whenReady(timeout=20), asyncio.get_running_loop())
                account = sim.accountIds[0]
                await Deferred.asFuture(client.authorizeAccount(account, sim.accessToken), asyncio.get_running_loop())
                end = 1_789_948_800_000
                rows = [bar async for bar in history.trendbars(client, account, 1, "M5", end - 4 * 86_400_000, end)]
                await Deferred.asFuture(client.stopService(), asyncio.get_running_loop())
                await Deferred.asFuture(sim.stop(), asyncio.get_running_loop())
                print("ROWS", len(rows), rows[0].timestamp < rows[-1].timestamp)

            def run():
                task = asyncio.ensure_future(main())
                task.add_done_callback(lambda t: reactor.stop())
                return task
            reactor.callWhenRunning(lambda: setattr(sys.modules[__name__], "task", run()))
            reactor.run()
            task.result()
            """
        )
        done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
        self.assertEqual(done.returncode, 0, done.stderr[-3000:])
        from ctrader_twisted.simulator.market import Market

        expected = list(Market(0).symbols[1].historicalBars(ProtoOATrendbarPeriod.M5, MONDAY - 4 * DAY, MONDAY))
        self.assertIn(f"ROWS {len(expected)} True", done.stdout)


# --- scripted answers --------------------------------------------------------------------


class ScriptedClient:
    """What a download needs of a client, answering from a function (no pacing)."""

    def __init__(self, answer: Callable[[str, dict[str, Any]], Any]) -> None:
        self.clock = Clock()
        self.answer = answer
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def request(self, message: str, clientMsgId: Any = None, timeout: Any = None, **fields: Any) -> Deferred[Any]:
        self.calls.append((message, fields))
        try:
            return succeed(self.answer(message, fields))
        except Exception as error:
            return fail(error)


def tickServer(rows: list[tuple[int, int]], page: int, inclusive: bool = True) -> Callable[[str, dict[str, Any]], Any]:
    """A tick server over *rows* ``(ms, price)`` (in server order among equal
    times): the newest *page* rows of the window, newest first, as differences."""

    def answer(message: str, f: dict[str, Any]) -> Any:
        a, b = f["fromTimestamp"], f["toTimestamp"]
        inside = [r for r in rows if a <= r[0] and (r[0] <= b if inclusive else r[0] < b)]
        newest = inside[::-1][:page]
        res = ProtoOAGetTickDataRes(ctidTraderAccountId=1, hasMore=len(inside) > page)
        previous = None
        for t, p in newest:
            if previous is None:
                res.tickData.add(timestamp=t, tick=p)
            else:
                res.tickData.add(timestamp=t - previous[0], tick=p - previous[1])
            previous = (t, p)
        return res

    return answer


def run(download: history.Download[Any], d: Deferred[Any]) -> None:
    """Move the scripted client's clock until *d* fires (pauses, turns between batches)."""
    for _ in range(1000):
        if d.called:
            return
        download.clock.advance(0.5)  # type: ignore[attr-defined]


class PagingTests(SynchronousTestCase):
    """The backwards paging inside a window, against scripted servers."""

    def read(self, download: history.Download[Any]) -> list[Any]:
        rows: list[Any] = []
        d = download.each(rows.append)
        run(download, d)
        self.successResultOf(d)
        return rows

    def test_ticksSharingAMillisecondAcrossPages(self) -> None:
        """Several ticks in one millisecond, cut by a page: none lost, none doubled."""
        base = 1_700_000_000_000
        data = []
        for i in range(40):
            t = base + (i // 4) * 10  # four ticks per millisecond
            data.append((t, 100_000 + i))
        client = ScriptedClient(tickServer(data, page=5))
        rows = self.read(history.ticks(client, 1, 1, base, base + 1000, side="bid", digits=5))  # type: ignore[arg-type]
        # Oldest first; among ticks of one millisecond, the server's newest-first order reversed.
        self.assertEqual([(r.timestamp, r.price) for r in rows],
                         [(t, Decimal(p).scaleb(-5)) for t, p in data])

    def test_barsFromServersIncludingOrExcludingTheEnd(self) -> None:
        """Whether the server includes bars at ``toTimestamp`` or not, each bar comes once."""
        base = 1_700_000_040_000 // 60_000
        data = [ProtoOATrendbar(volume=i + 1, low=100_000 + i, deltaHigh=5, utcTimestampInMinutes=base + i)
                for i in range(50)]
        for inclusive in (True, False):
            def answer(message: str, f: dict[str, Any], inclusive: bool = inclusive) -> Any:
                if message == "ProtoOASymbolByIdReq":
                    res = ProtoOASymbolByIdRes(ctidTraderAccountId=1)
                    res.symbol.add(symbolId=1, digits=5)
                    return res
                a, b = f["fromTimestamp"], f["toTimestamp"]
                inside = [bar for bar in data if a <= bar.utcTimestampInMinutes * 60_000
                          and (bar.utcTimestampInMinutes * 60_000 <= b if inclusive else bar.utcTimestampInMinutes * 60_000 < b)]
                return ProtoOAGetTrendbarsRes(ctidTraderAccountId=1, period=M1, trendbar=inside[-7:],
                                              hasMore=len(inside) > 7)

            client = ScriptedClient(answer)
            rows = self.read(history.trendbars(client, 1, 1, M1, base * 60_000, (base + 50) * 60_000))  # type: ignore[arg-type]
            self.assertEqual([r.volume for r in rows], list(range(1, 51)), f"inclusive={inclusive}")

    def test_dealsPagedByIdentity(self) -> None:
        """Deals sharing a millisecond across pages are told apart by id."""
        base = 1_700_000_000_000
        data = [ProtoOADeal(dealId=i, orderId=i, positionId=i, volume=100, filledVolume=100, symbolId=1,
                            createTimestamp=base, executionTimestamp=base + (i // 3), tradeSide=1, dealStatus=2)
                for i in range(1, 20)]

        def answer(message: str, f: dict[str, Any]) -> Any:
            inside = [d for d in data if f["fromTimestamp"] <= d.executionTimestamp <= f["toTimestamp"]]
            newest = sorted(inside, key=lambda d: (d.executionTimestamp, d.dealId % 2), reverse=True)
            return ProtoOADealListRes(ctidTraderAccountId=1, deal=newest[:4], hasMore=len(inside) > 4)

        rows = self.read(history.deals(ScriptedClient(answer), 1, base, base + 100))  # type: ignore[arg-type]
        self.assertEqual([r.dealId for r in rows], list(range(1, 20)))

    def test_hasMoreWithoutRows(self) -> None:
        """A server that says hasMore and sends nothing cannot be paged: a clear error."""
        client = ScriptedClient(lambda m, f: ProtoOAGetTickDataRes(ctidTraderAccountId=1, hasMore=True))
        download = history.ticks(client, 1, 1, 1_000, 2_000, digits=5)  # type: ignore[arg-type]
        d = download.each(lambda r: None)
        run(download, d)
        error = self.failureResultOf(d, HistoryError).value
        self.assertIn("hasMore with no ticks", str(error))

    def test_morethanAPageInOneMillisecond(self) -> None:
        data = [(5_000, 100 + i) for i in range(10)]
        client = ScriptedClient(tickServer(data, page=4))
        download = history.ticks(client, 1, 1, 1_000, 9_000, side="ask", digits=5)  # type: ignore[arg-type]
        d = download.each(lambda r: None)
        run(download, d)
        self.assertIn("more than a page", str(self.failureResultOf(d, HistoryError).value))

    def test_retriesWhatMayPass(self) -> None:
        """A timeout and a lost connection are asked again after a pause; the rows are exact."""
        data = [(1_000 + i * 7, 100 + i) for i in range(30)]
        serve = tickServer(data, page=10)
        failures = [RequestTimeout("ProtoOAGetTickDataReq", "ct1", 60.0), OutcomeUnknownError("lost")]

        def answer(message: str, f: dict[str, Any]) -> Any:
            if failures:
                raise failures.pop(0)
            return serve(message, f)

        client = ScriptedClient(answer)
        download = history.ticks(client, 1, 1, 1_000, 2_000, side="bid", digits=5)  # type: ignore[arg-type]
        rows = self.read(download)
        self.assertEqual([r.timestamp for r in rows], [t for t, _ in data])
        self.assertEqual(download.progress.retries, 2)

    def test_givesUpAfterMaxRetries(self) -> None:
        client = ScriptedClient(lambda m, f: (_ for _ in ()).throw(RequestTimeout("X", "ct1", 1.0)))
        download = history.deals(client, 1, 0, DAY, maxRetries=2, lookahead=1)  # type: ignore[arg-type]
        d = download.each(lambda r: None)
        run(download, d)
        self.failureResultOf(d, RequestTimeout)
        self.assertEqual(len(client.calls), 3, "asked, then asked again twice")

    def test_permanentErrorAfterTheWindowsBefore(self) -> None:
        """A refusal that cannot pass fails the download, after the rows of the windows before it."""
        def answer(message: str, f: dict[str, Any]) -> Any:
            if f["fromTimestamp"] >= 1_000 + history.DEAL_WINDOW_MS:
                raise IncorrectBoundariesError("INCORRECT_BOUNDARIES", "no")
            return ProtoOADealListRes(ctidTraderAccountId=1, hasMore=False)

        rows: list[Any] = []
        download = history.deals(ScriptedClient(answer), 1, 1_000, 1_000 + 3 * history.DEAL_WINDOW_MS)  # type: ignore[arg-type]
        d = download.each(rows.append)
        run(download, d)
        self.failureResultOf(d, IncorrectBoundariesError)
        self.assertEqual(download.progress.windowsDone, 1, "the window before was delivered")


class ArgumentTests(SynchronousTestCase):
    def test_badArguments(self) -> None:
        """Bad arguments raise at once, naming the problem."""
        client = ScriptedClient(lambda m, f: None)
        aware = datetime(2026, 1, 1, tzinfo=timezone.utc)
        for call, fragment in (
            (lambda: history.trendbars(client, 1, 1, "M7", 0, 1), "unknown trend bar period"),  # type: ignore[arg-type]
            (lambda: history.trendbars(client, 1, 1, 99, 0, 1), "unknown trend bar period"),  # type: ignore[arg-type]
            (lambda: history.trendbars(client, 0, 1, "M1", 0, 1), "accountId"),  # type: ignore[arg-type]
            (lambda: history.trendbars(client, 1, True, "M1", 0, 1), "symbolId"),  # type: ignore[arg-type]
            (lambda: history.trendbars(client, 1, 1, "M1", 5, 5), "before"),  # type: ignore[arg-type]
            (lambda: history.trendbars(client, 1, 1, "M1", -1, 5), "1970"),  # type: ignore[arg-type]
            (lambda: history.trendbars(client, 1, 1, "M1", 0, 2**60), "2038"),  # type: ignore[arg-type]
            (lambda: history.trendbars(client, 1, 1, "M1", datetime(2026, 1, 1), aware), "timezone-aware"),  # type: ignore[arg-type]
            (lambda: history.trendbars(client, 1, 1, "M1", 0, 1, digits=11), "digits"),  # type: ignore[arg-type]
            (lambda: history.trendbars(client, 1, 1, "M1", 0, 1, lookahead=0), "lookahead"),  # type: ignore[arg-type]
            (lambda: history.trendbars(client, 1, 1, "M1", 0, 1, timeout=float("nan")), "timeout"),  # type: ignore[arg-type]
            (lambda: history.trendbars(client, 1, 1, "M1", 0, 1, maxRetries=-1), "maxRetries"),  # type: ignore[arg-type]
            (lambda: history.trendbars(client, 1, 1, "M1", 0, 1, skip=-1), "skip"),  # type: ignore[arg-type]
            (lambda: history.ticks(client, 1, 1, 0, 1, side="mid"), "side"),  # type: ignore[arg-type]
            (lambda: history.ticks(client, 1, 1, 0, 1, pagesPerWindow=0), "pagesPerWindow"),  # type: ignore[arg-type]
        ):
            error = self.assertRaises(ValueError, call)
            self.assertIn(fragment, str(error))
        self.assertRaises(TypeError, history.deals, client, 1, 0.5, 10)
        self.assertRaises(TypeError, history.deals, client, 1, float("nan"), 10)
        download = history.trendbars(client, 1, 1, "m1", aware, aware + timedelta(days=1))  # type: ignore[arg-type]
        self.assertEqual(download.end - download.start, DAY)


# --- decoding --------------------------------------------------------------------------------


class DecodingTests(SynchronousTestCase):
    """Decoding checked against payloads recorded from a real server."""

    def recorded(self, name: str) -> Any:
        return json.loads((referenceDir("recorded") / name).read_text())

    def test_recordedTrendbars(self) -> None:
        """The recorded M15 and H1 bars: low + deltas, the symbols' digits, UTC minutes."""
        data = self.recorded("m2_recorded.json")
        specs = ProtoOASymbolByIdRes.FromString(base64.b64decode(data["symbol_specs"][0]["payload"]))
        digits = {s.symbolId: s.digits for s in specs.symbol}
        for key, minutes in (("trendbars_m15", 15), ("trendbars_h1", 60)):
            for item in data[key]:
                res = ProtoOAGetTrendbarsRes.FromString(base64.b64decode(item["payload"]))
                rows = decodeTrendbars(res, digits[res.symbolId])
                self.assertEqual(len(rows), 49)
                steps = {b.timestamp - a.timestamp for a, b in zip(rows, rows[1:])}
                self.assertEqual({step % (minutes * 60_000) for step in steps}, {0}, "whole periods (gaps: no ticks)")
                for row, bar in zip(rows, res.trendbar):
                    self.assertEqual(row.timestamp, bar.utcTimestampInMinutes * 60_000)
                    self.assertEqual(row.low.as_tuple().exponent, -digits[res.symbolId])
                    self.assertEqual(row.open - row.low, Decimal(bar.deltaOpen).scaleb(-5))
                    self.assertTrue(row.low <= min(row.open, row.close) <= max(row.open, row.close) <= row.high)
        first = decodeTrendbars(ProtoOAGetTrendbarsRes.FromString(base64.b64decode(data["trendbars_m15"][0]["payload"])), 5)[0]
        self.assertEqual(first, Bar(1_789_712_100_000, Decimal("1.14813"), Decimal("1.14835"), Decimal("1.14791"),
                                    Decimal("1.14826"), 1613))
        self.assertEqual(first.time, datetime(2026, 9, 18, 6, 15, tzinfo=timezone.utc))

    def test_recordedDealsAndCashFlow(self) -> None:
        """The recorded deals and cash flow: money scaled by moneyDigits, balances chained."""
        data = self.recorded("m3_execution_recorded.json")
        res = ProtoOADealListRes.FromString(base64.b64decode(data["closing"]["account_deals"][0]["payload"]))
        rows = [decodeDeal(d) for d in res.deal]
        closing = [r for r in rows if r.balance is not None]
        self.assertTrue(closing)
        for row in closing:
            self.assertEqual(row.closeCommission.as_tuple().exponent, -2)  # type: ignore[union-attr]
        first = decodeDeal(res.deal[0])
        self.assertEqual((first.commission, first.grossProfit, first.closeCommission, first.balance),
                         (Decimal("-27.69"), Decimal("-21.21"), Decimal("-55.38"), Decimal("51223784.60")))
        self.assertEqual((first.side, first.status, first.volume, first.price), ("SELL", "FILLED", Decimal("1.00"),
                                                                                 Decimal("85187.89")))
        flow = ProtoOACashFlowHistoryListRes.FromString(base64.b64decode(data["closing"]["cash_flow"][1]["payload"]))
        item = decodeCashFlow(flow.depositWithdraw[0])
        self.assertEqual((item.type, item.delta, item.balance, item.note),
                         ("BALANCE_DEPOSIT", Decimal("51224029.64"), Decimal("51224029.64"), "scrubbed"))

    def test_tickDifferences(self) -> None:
        """Newest first: the first tick absolute, the others differences to the one before."""
        res = ProtoOAGetTickDataRes(ctidTraderAccountId=1, hasMore=False, tickData=[
            ProtoOATickData(timestamp=1_000_500, tick=114_820),
            ProtoOATickData(timestamp=-300, tick=-3),
            ProtoOATickData(timestamp=-200, tick=5),
        ])
        self.assertEqual(decodeTickData(res, 5, "ask"), [
            Tick(1_000_000, "ask", Decimal("1.14822")),
            Tick(1_000_200, "ask", Decimal("1.14817")),
            Tick(1_000_500, "ask", Decimal("1.14820")),
        ])

    def test_hostileValues(self) -> None:
        """Unusable moneyDigits fail clearly; a non-finite price is no price."""
        deal = ProtoOADeal(dealId=1, orderId=1, positionId=1, volume=1, filledVolume=1, symbolId=1, createTimestamp=0,
                           executionTimestamp=0, tradeSide=1, dealStatus=2, executionPrice=float("nan"),
                           commission=5, moneyDigits=4_000_000)
        self.assertRaises(HistoryError, decodeDeal, deal)
        deal.moneyDigits = 2
        self.assertIsNone(decodeDeal(deal).price)
        self.assertRaises(HistoryError, decodeTrendbars, [], 99)
