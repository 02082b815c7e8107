"""The publisher against a real redis-server: kill -9 and restart, a lost
tail, CLIENT PAUSE. Each test is bounded in time (trial's timeout)."""

from __future__ import annotations

import json
import random
import sys
import time
from typing import Any

from twisted.internet import reactor
from twisted.internet.task import LoopingCall
from twisted.trial.unittest import TestCase

from ctrader_twisted.redis import RedisLink, StreamPublisher

from .redisutil import readStream, run, sleep, startServer, waitFor

SPOT = "ctrader:{2000001}:spot"
EXEC = "ctrader:{2000001}:exec"


def spotLine(i: int) -> tuple[str, str]:
    symbol = 1 + i % 5
    return (f"2000001:spot:{symbol}:{i}",
            json.dumps({"event": "spot", "account": 2000001, "symbolId": symbol, "seq": i}, separators=(",", ":")))


class RedisFaultTests(TestCase):
    timeout = 90

    def setUp(self) -> None:
        self.said: list[str] = []

    def connect(self, url: str, **options: Any) -> tuple[RedisLink, StreamPublisher]:
        link = RedisLink(url, reactor, retryInitial=0.05, retryMax=0.5)
        publisher = StreamPublisher(link, reactor, say=self.said.append, **options)
        link.start()
        self.addCleanup(link.stop)
        self.addCleanup(publisher.stop, 0)
        return link, publisher

    def feed(self, publisher: StreamPublisher, total: int, perTick: int, interval: float) -> tuple[LoopingCall, list[int]]:
        """Publish *total* spots, *perTick* every *interval* seconds."""
        sent = [0]

        def tick() -> None:
            start = sent[0]
            for i in range(start, min(start + perTick, total)):
                key, line = spotLine(i)
                publisher.publish(2000001, "spot", key, line, 1 + i % 5)
            sent[0] = min(start + perTick, total)
            if sent[0] >= total:
                loop.stop()

        loop = LoopingCall(tick)
        loop.clock = reactor
        loop.start(interval)
        return loop, sent

    def test_killNineAtRandomPoints(self) -> Any:
        """kill -9 three times during a 100,000-event stream, restart on the same
        data directory: every event once, in order, no gap, no duplicate."""

        async def go() -> None:
            server = startServer(self)
            link, publisher = self.connect(server.url, maxlen={"spot": 0})
            await link.whenConnected()
            total = 100_000
            started = time.monotonic()
            loop, sent = self.feed(publisher, total, 250, 0.01)
            rng = random.Random()
            points = sorted(rng.randrange(5_000, 70_000) for _ in range(3))
            for point in points:
                await waitFor(lambda: sent[0] >= point, 30, f"{point} events published")
                before = link.connections
                server.kill()
                await sleep(rng.uniform(0, 0.2))
                server.start()
                await waitFor(lambda: link.connections > before, 20, "reconnected")
            self.assertLess(sent[0], total, "the stream ended before the last kill: slow the feed")
            await waitFor(lambda: sent[0] >= total, 30, "every event published")
            await publisher.whenDrained()
            events = await readStream(link, SPOT)
            self.assertEqual([key for _, key, _ in events], [spotLine(i)[0] for i in range(total)],
                             f"kill points {points}")
            ids = [entryId for entryId, _, _ in events]
            self.assertEqual(ids, sorted(ids, key=lambda i: tuple(map(int, i.split("-")))))
            self.assertFalse(any('"gap"' in line for _, _, line in events))
            self.assertGreaterEqual(link.connections, 4)
            self.assertEqual(publisher.stats.acked, total)
            print(f"\n  kill -9 after {points} of {total} events: {link.connections - 1} reconnects, "
                  f"{publisher.stats.resent} entries re-sent, {len(events)} events once each, in order, "
                  f"{time.monotonic() - started:.1f} s", file=sys.stderr)

        return run(go())

    def test_lostTailResent(self) -> Any:
        """Redis restarted without AOF loses what came after its last snapshot:
        the publisher notices by the last id and sends it again."""

        async def go() -> None:
            server = startServer(self, appendonly=False)
            link, publisher = self.connect(server.url, retainSeconds=60, maxlen={"spot": 0})
            await link.whenConnected()
            for i in range(20_000):
                publisher.publish(2000001, "spot", *spotLine(i), 1 + i % 5)
            await publisher.whenDrained()
            await link.execute("SAVE")
            for i in range(20_000, 30_000):
                publisher.publish(2000001, "spot", *spotLine(i), 1 + i % 5)
            await publisher.whenDrained()
            self.assertEqual(publisher.stats.acked, 30_000)
            server.restart()  # kill -9: the RDB has the first 20,000 only
            await waitFor(lambda: link.connections >= 2, 20, "reconnected")
            await publisher.whenDrained()
            events = await readStream(link, SPOT)
            self.assertEqual([key for _, key, _ in events], [spotLine(i)[0] for i in range(30_000)])
            self.assertTrue(any("lost the tail" in s for s in self.said), self.said)
            self.assertGreater(publisher.stats.resent, 0)
            print(f"\n  tail lost: {publisher.stats.resent} entries re-sent, {len(events)} events once each",
                  file=sys.stderr)

        return run(go())

    def test_clientPauseCoalescesAndBoundsMemory(self) -> Any:
        """CLIENT PAUSE for 2 s: memory stays under the cap, spots coalesce,
        executions are all kept, a gap marker appears when Redis answers again."""

        async def go() -> None:
            server = startServer(self)
            cap = 2 * 2**20
            link, publisher = self.connect(server.url, maxBacklogBytes=cap, retainBytes=2**20, statusInterval=0.5)
            control = RedisLink(server.url, reactor)
            control.start()
            self.addCleanup(control.stop)
            await link.whenConnected()
            await control.whenConnected()
            publisher.publish(2000001, "spot", *spotLine(0), 1)
            await publisher.whenDrained()
            await control.execute("CLIENT", "PAUSE", 2000, "WRITE")
            deals = []
            loop, sent = self.feed(publisher, 300_000, 2_000, 0.01)  # ~200,000 spots/s offered

            def deal() -> None:
                n = len(deals)
                deals.append(n)
                publisher.publish(2000001, "exec", f"2000001:exec:deal:{n}",
                                  json.dumps({"event": "execution", "account": 2000001, "dealId": n}))

            dealer = LoopingCall(deal)
            dealer.clock = reactor
            dealer.start(0.02)
            await waitFor(lambda: sent[0] >= 300_000, 60, "spots offered")
            dealer.stop()
            await publisher.whenDrained()
            self.assertLessEqual(publisher.stats.maxBufferedBytes, cap + 2**20 + 600 * 1024)
            self.assertGreater(publisher.stats.dropped, 0)
            execs = await readStream(link, EXEC)
            self.assertEqual([key for _, key, _ in execs], [f"2000001:exec:deal:{n}" for n in deals])
            spots = await readStream(link, SPOT)
            gaps = [json.loads(line) for _, _, line in spots if '"gap"' in line]
            self.assertGreaterEqual(len(gaps), 1)
            delivered = [json.loads(line)["seq"] for _, _, line in spots if '"seq"' in line]
            self.assertEqual(sum(g["dropped"] for g in gaps) + len(delivered), 300_001)
            self.assertEqual(delivered, sorted(delivered))
            self.assertTrue(any("coalesced" in s for s in self.said), self.said)
            print(f"\n  CLIENT PAUSE 2 s: max buffered {publisher.stats.maxBufferedBytes / 2**20:.2f} MiB "
                  f"(cap {cap / 2**20:.0f} MiB + 1 MiB retained), {publisher.stats.dropped} of 300,001 spots "
                  f"coalesced away, {len(gaps)} gap marker(s), {len(deals)} executions all kept", file=sys.stderr)

        return run(go())
