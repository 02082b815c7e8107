"""StreamPublisher on a Clock against an in-memory link: batching, ids,
in-flight bound, replay after reconnect, lost tails, backpressure, refusals."""

from __future__ import annotations

import json

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from ctrader_twisted.redis import PublisherStopped, RedisConfigError, StreamPublisher
from ctrader_twisted.redis.streams import parseId

from .redisfake import FakeLink

SPOT = "ctrader:{7}:spot"
EXEC = "ctrader:{7}:exec"


def spot(i: int, symbol: int = 1) -> tuple[str, str]:
    return f"7:spot:{symbol}:{i}", json.dumps({"event": "spot", "account": 7, "symbolId": symbol, "n": i})


class PublisherTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_790_000_000)
        self.link = FakeLink()
        self.said: list[str] = []
        self.link.connect()

    def publisher(self, **options: object) -> StreamPublisher:
        options.setdefault("maxBatchEvents", 10)
        return StreamPublisher(self.link, self.clock, say=self.said.append, **options)  # type: ignore[arg-type]

    def publishSpots(self, publisher: StreamPublisher, start: int, stop: int, symbol: int = 1) -> None:
        for i in range(start, stop):
            key, line = spot(i, symbol)
            publisher.publish(7, "spot", key, line, symbol)

    def test_batchesByCountAndByTime(self) -> None:
        """A full batch goes at once; a partial one after flushInterval; ids increase."""
        publisher = self.publisher(flushInterval=0.005)
        self.publishSpots(publisher, 0, 13)
        self.assertEqual(len(self.link.streams[SPOT]), 1)
        self.clock.advance(0.004)
        self.assertEqual(len(self.link.streams[SPOT]), 1)
        self.clock.advance(0.002)
        entries = self.link.streams[SPOT]
        self.assertEqual([len(json.loads("[" + ",".join(f[7].split("\n")) + "]")) for _, f in entries], [10, 3])
        self.assertLess(entries[0][0], entries[1][0])
        self.assertEqual(self.link.keys(SPOT), [f"7:spot:1:{i}" for i in range(13)])
        self.assertEqual(publisher.stats.acked, 13)
        self.assertEqual(publisher.pendingEvents, 0)

    def test_maxlenPerKind(self) -> None:
        """XADD carries MAXLEN ~ of the kind; 0 means no trimming."""
        publisher = self.publisher(maxlen={"spot": 500, "exec": 0})
        publisher.publish(7, "spot", "k1", "{}", 1)
        publisher.publish(7, "exec", "k2", "{}")
        self.clock.advance(0.01)
        xadds = [c for c in self.link.commands if c[0] == "XADD"]
        self.assertEqual(xadds[0][1:5], (SPOT, "MAXLEN", "~", 500))
        self.assertEqual(xadds[1][1], EXEC)
        self.assertNotIn("MAXLEN", xadds[1])

    def test_sameKeyTwiceGetsSuffix(self) -> None:
        """Two events with the same natural key in one stream stay distinct."""
        publisher = self.publisher()
        for _ in range(3):
            publisher.publish(7, "spot", "7:spot:1:t", "{}", 1)
        self.clock.advance(0.01)
        self.assertEqual(self.link.keys(SPOT), ["7:spot:1:t", "7:spot:1:t#2", "7:spot:1:t#3"])

    def test_inFlightBounded(self) -> None:
        """No more than maxInFlight entries wait for a reply at once."""
        publisher = self.publisher(maxInFlight=3)
        publisher.publish(7, "spot", "first", "{}", 1)
        self.clock.advance(0.01)  # the stream's last id is read, then the entry added
        self.link.paused = True
        self.publishSpots(publisher, 0, 100)
        self.clock.advance(0.01)
        self.assertEqual(len(self.link.held), 3)
        self.link.resume()
        while self.link.held or publisher.pendingEvents:
            self.link.resume()
            self.clock.advance(0.01)
        self.assertEqual(self.link.keys(SPOT), ["first"] + [f"7:spot:1:{i}" for i in range(100)])

    def test_reconnectResendsMissingOnly(self) -> None:
        """Entries applied before the drop are not sent twice; the others are, with their ids."""
        publisher = self.publisher(maxInFlight=4)
        self.publishSpots(publisher, 0, 10)
        self.clock.advance(0.01)
        self.link.paused = True
        self.publishSpots(publisher, 10, 50)
        self.clock.advance(0.01)
        sentIds = [c[5] for c in self.link.commands if c[0] == "XADD"][1:]
        # Redis applied the first two held commands, then the connection broke.
        first, self.link.held = self.link.held[:2], self.link.held[2:]
        for args, _ in first:
            self.link.apply(args)
        self.link.drop()
        self.publishSpots(publisher, 50, 55)
        self.assertEqual(publisher.stats.acked, 10)
        self.link.connect()
        self.clock.advance(0.01)
        self.assertEqual(self.link.keys(SPOT), [f"7:spot:1:{i}" for i in range(55)])
        ids = [formatted for formatted, _ in self.link.streams[SPOT]]
        self.assertEqual(ids, sorted(ids))
        self.assertEqual([f"{i[0]}-{i[1]}" for i in ids[1:5]], sentIds)
        self.assertEqual(publisher.stats.acked, 55)
        self.assertEqual(publisher.stats.resent, 2)

    def test_dropAfterApplyNothingDuplicated(self) -> None:
        """Every held command applied but every reply lost: nothing is sent again."""
        publisher = self.publisher()
        self.publishSpots(publisher, 0, 10)
        self.clock.advance(0.01)
        self.link.paused = True
        self.publishSpots(publisher, 10, 30)
        self.clock.advance(0.01)
        self.link.drop(applyHeld=True)
        self.link.connect()
        self.clock.advance(0.01)
        self.assertEqual(self.link.keys(SPOT), [f"7:spot:1:{i}" for i in range(30)])
        self.assertEqual(publisher.stats.resent, 0)

    def test_lostTailResent(self) -> None:
        """Redis restarted without its last entries: the retained ones are sent again."""
        publisher = self.publisher(retainSeconds=5)
        self.publishSpots(publisher, 0, 50)
        self.clock.advance(0.01)
        self.link.drop()
        self.link.loseTail(SPOT, 3)
        self.link.connect()
        self.clock.advance(0.01)
        self.assertEqual(self.link.keys(SPOT), [f"7:spot:1:{i}" for i in range(50)])
        self.assertEqual(publisher.stats.resent, 3)
        self.assertTrue(any("lost the tail" in s for s in self.said))

    def test_lostTailBeyondRetentionMarked(self) -> None:
        """What Redis lost and is no longer retained is announced by a gap marker."""
        publisher = self.publisher(retainSeconds=1)
        self.publishSpots(publisher, 0, 20)
        self.clock.advance(2)
        self.publishSpots(publisher, 20, 30)  # acknowledging these expires the first two entries
        self.clock.advance(0.01)
        self.link.drop()
        self.link.loseTail(SPOT, 3)
        self.link.connect()
        self.clock.advance(0.01)
        # The retained entry is sent again; the two forgotten ones are announced after it.
        keys = self.link.keys(SPOT)
        self.assertEqual(keys[:10], [f"7:spot:1:{i}" for i in range(20, 30)])
        marker = json.loads(self.link.lines(SPOT)[10])
        self.assertEqual((marker["event"], marker["kind"], marker["reason"]),
                         ("gap", "spot", "redis lost acknowledged entries no longer retained"))
        self.assertEqual(len(keys), 11)

    def test_backpressureCoalescesMarketKeepsExecutions(self) -> None:
        """While Redis is paused: market events coalesce to the latest per symbol,
        memory stays under the cap, executions all wait; then a gap marker."""
        publisher = self.publisher(maxBacklogBytes=4000, maxInFlight=2)
        publisher.publish(7, "exec", "start", "{}")
        publisher.publish(7, "spot", "start", "{}", 0)
        self.clock.advance(0.01)
        self.link.paused = True
        for i in range(2000):
            key, line = spot(i, symbol=1 + i % 3)
            publisher.publish(7, "spot", key, line, 1 + i % 3)
            if i % 100 == 0:
                publisher.publish(7, "exec", f"7:exec:deal:{i}", json.dumps({"event": "execution", "dealId": i}))
            self.clock.advance(0.001)
        self.assertTrue(publisher.coalescing)
        self.assertLess(publisher.stats.maxBufferedBytes - publisher._retainedBytes, 4000 + 2000 + 200)
        self.assertTrue(any("coalesced" in s for s in self.said))
        self.link.resume()
        for _ in range(50):
            self.link.resume()
            self.clock.advance(0.01)
        self.assertFalse(publisher.coalescing)
        self.assertEqual(self.link.keys(EXEC), ["start"] + [f"7:exec:deal:{i}" for i in range(0, 2000, 100)])
        lines = [json.loads(line) for line in self.link.lines(SPOT)[1:]]
        gaps = [line for line in lines if line.get("event") == "gap"]
        self.assertEqual(len(gaps), 1)
        delivered = [line["n"] for line in lines if "n" in line]
        self.assertEqual(gaps[0]["dropped"] + len(delivered), 2000)
        self.assertEqual(sum(gaps[0]["symbols"].values()), gaps[0]["dropped"])
        # The latest of each symbol was delivered, after the marker.
        self.assertEqual(sorted(delivered[-3:]), [1997, 1998, 1999])
        self.assertEqual(delivered, sorted(delivered))

    def test_refusedWritesRetried(self) -> None:
        """An error reply (OOM) keeps the entry and retries it; the user is told."""
        publisher = self.publisher()
        self.link.refuseWrites = "OOM command not allowed when used memory > 'maxmemory'."
        publisher.publish(7, "exec", "7:exec:deal:1", "{}")
        self.clock.advance(0.01)
        self.assertEqual(publisher.pendingEvents, 1)
        self.assertTrue(any("refuses writes" in s for s in self.said))
        self.link.refuseWrites = None
        self.clock.advance(1)
        self.assertEqual(self.link.keys(EXEC), ["7:exec:deal:1"])
        self.assertEqual(publisher.pendingEvents, 0)

    def test_anotherWriterAhead(self) -> None:
        """A stream whose top is past our ids (another writer): ours are renumbered after it, not lost."""
        publisher = self.publisher()
        self.link.streams[SPOT] = [((1_800_000_000_000, 0), ["v", "1", "n", "1", "k", "x", "e", "{}"])]
        self.link.lastIds[SPOT] = (1_800_000_000_000, 0)
        self.publishSpots(publisher, 0, 5)
        self.clock.advance(0.01)
        self.assertEqual(self.link.keys(SPOT), ["x"] + [f"7:spot:1:{i}" for i in range(5)])
        self.assertGreater(parseId("-".join(map(str, self.link.streams[SPOT][1][0]))), (1_800_000_000_000, 0))

    def test_linkDownAtStartBuffers(self) -> None:
        """Events published before Redis is reachable wait and are all delivered."""
        self.link.drop()
        publisher = self.publisher()
        self.publishSpots(publisher, 0, 25)
        self.clock.advance(0.5)
        self.assertEqual(publisher.pendingEvents, 25)
        self.link.connect()
        self.clock.advance(0.01)
        self.assertEqual(len(self.link.keys(SPOT)), 25)

    def test_unreachableStatusLines(self) -> None:
        """While Redis is gone the waiting execution events are reported periodically."""
        publisher = self.publisher(statusInterval=2)
        self.link.drop()
        publisher.publish(7, "exec", "7:exec:deal:1", "{}")
        self.clock.advance(0.01)
        self.clock.advance(2)
        self.assertIn("Redis unreachable: 1 execution/account events waiting (never dropped)", self.said)
        self.clock.advance(2)
        self.assertEqual(sum("unreachable" in s for s in self.said), 2)

    def test_neverConnectedStatusLines(self) -> None:
        """Redis unreachable from the start: the waiting execution events are reported too."""
        link = FakeLink()
        publisher = StreamPublisher(link, self.clock, say=self.said.append, statusInterval=2)
        publisher.publish(7, "exec", "7:exec:deal:1", "{}")
        self.clock.advance(0.01)  # the batch closes
        self.clock.advance(2)
        self.assertIn("Redis unreachable: 1 execution/account events waiting (never dropped)", self.said)

    def test_stopReportsUndelivered(self) -> None:
        """stop() waits for the backlog at most timeout seconds, then says what is left."""
        publisher = self.publisher()
        self.link.drop()
        self.publishSpots(publisher, 0, 4)
        d = publisher.stop(timeout=1)
        self.assertNoResult(d)
        self.clock.advance(1)
        self.assertEqual(self.successResultOf(d), 4)
        self.assertRaises(PublisherStopped, publisher.publish, 7, "spot", "k", "{}")

    def test_whenDrained(self) -> None:
        publisher = self.publisher()
        self.link.paused = True
        self.publishSpots(publisher, 0, 3)
        d = publisher.whenDrained()
        self.assertNoResult(d)
        self.link.resume()
        self.successResultOf(d)

    def test_publishEventFromStreamLine(self) -> None:
        """publishEvent picks the stream, the key and the symbol from a stream-command event."""
        publisher = self.publisher()
        publisher.publishEvent({"event": "execution", "time": "t", "account": 7, "type": "ORDER_FILLED", "dealId": 9})
        publisher.publishEvent({"event": "trendbar", "time": "t", "account": 7, "symbolId": 1, "period": "M1",
                                "barTime": "b"})
        self.clock.advance(0.01)
        self.assertEqual(self.link.keys(EXEC), ["7:exec:deal:9"])
        self.assertEqual(self.link.keys("ctrader:{7}:bar"), ["7:bar:1:M1:b:t"])

    def test_hostileNumbers(self) -> None:
        """NaN, infinities, negatives and zero are refused with one line naming the option."""
        for name, value in [("flushInterval", float("nan")), ("flushInterval", float("inf")), ("maxInFlight", -1),
                            ("maxInFlight", 0), ("maxBatchEvents", 2.5), ("retainSeconds", -1.0),
                            ("maxBacklogBytes", True)]:
            with self.assertRaises(RedisConfigError) as caught:
                StreamPublisher(self.link, self.clock, **{name: value})  # type: ignore[arg-type]
            self.assertIn(name, str(caught.exception))
            self.assertNotIn("\n", str(caught.exception))
        self.assertRaises(RedisConfigError, StreamPublisher, self.link, self.clock, maxlen={"spots": 1})
        self.assertRaises(RedisConfigError, StreamPublisher, self.link, self.clock, maxlen={"spot": -5})
        self.assertRaises(RedisConfigError, StreamPublisher, self.link, self.clock, prefix="a{b}")
        self.assertRaises(RedisConfigError, self.publisher().publish, 7, "trades", "k", "{}")
