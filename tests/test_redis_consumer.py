"""StreamConsumer and the consume command against a real redis-server: pending
entries after a crash, claiming a dead consumer's entries, duplicates."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase

from ctrader_twisted.redis import RedisConfigError, RedisLink, StreamPublisher
from ctrader_twisted.redis.consumer import KeyWindow, StreamConsumer
from ctrader_twisted.redis.streams import Event, decodeEntry

from .redisfake import FakeLink
from .redisutil import run, sleep, startServer, waitFor
from .util import ROOT

SPOT = "ctrader:{2000001}:spot"


async def publishSpots(url: str, count: int, batch: int) -> None:
    link = RedisLink(url, reactor)
    publisher = StreamPublisher(link, reactor, maxBatchEvents=batch, flushInterval=0.001)
    link.start()
    for i in range(count):
        line = json.dumps({"event": "spot", "account": 2000001, "symbolId": 1, "seq": i}, separators=(",", ":"))
        publisher.publish(2000001, "spot", f"2000001:spot:1:{i}", line, 1)
    await publisher.whenDrained()
    await publisher.stop(0)
    await link.stop()


class ConsumerTests(TestCase):
    timeout = 90

    def consume(self, url: str, output: str, count: int = 30_000) -> subprocess.Popen[bytes]:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        return subprocess.Popen(
            [sys.executable, "-m", "ctrader_twisted.cli", "consume", "--redis", url, "--group", "recorders",
             "--account", "2000001", "--kinds", "spot", "--consumer", "c1", "--output", output, "--count", str(count),
             "--read-count", "1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=str(ROOT),
        )

    def test_killedBeforeAckHandlesEachKeyOnce(self) -> Any:
        """kill -9 of `consume` mid-entry, twice: on restart it handles its pending
        entries first and writes every key exactly once."""

        async def go() -> None:
            server = startServer(self)
            await publishSpots(server.url, 30_000, batch=1000)
            output = os.path.abspath(self.mktemp())
            link = RedisLink(server.url, reactor)
            link.start()
            self.addCleanup(link.stop)
            await link.whenConnected()
            # Kill it until it has twice died with entries read and not acknowledged,
            # once at least with events of them already written (a kill can land in
            # the instant between an XACK and the next read).
            pendingSeen: list[int] = []
            writtenUnacked: list[int] = []
            threshold = 3_000
            while sum(1 for n in pendingSeen if n) < 2 or not any(writtenUnacked):
                self.assertLess(len(pendingSeen), 9, f"pending after each kill: {pendingSeen}, {writtenUnacked}")
                process = self.consume(server.url, output)
                await waitFor(lambda: os.path.exists(output) and _lines(output) >= threshold, 30,
                              f"{threshold} lines written")
                process.send_signal(signal.SIGKILL)
                process.wait(10)
                pending = await link.execute("XPENDING", SPOT, "recorders", "-", "+", 100)
                pendingSeen.append(len(pending))
                keys = set()
                for entryId, *_ in pending:
                    for _, fields in await link.execute("XRANGE", SPOT, entryId, entryId):
                        keys.update(e.key for e in decodeEntry(SPOT, entryId, fields))
                with open(output) as f:
                    writtenUnacked.append(sum(1 for line in f if line.endswith("\n") and json.loads(line)["key"] in keys))
                threshold += 3_000
            # The last run is told how many are left: it stops once all are written.
            process = self.consume(server.url, output, 30_000 - _lines(output))
            deadline = time.monotonic() + 30
            while process.poll() is None:
                self.assertLess(time.monotonic(), deadline, "consume did not finish")
                await sleep(0.1)
            err = process.stderr.read().decode() if process.stderr else ""
            self.assertEqual(process.returncode, 0, err)
            print(f"\n  consume killed {len(pendingSeen)} times: entries pending {pendingSeen}, events of them already "
                  f"written {writtenUnacked}; last run: "
                  f"{err.strip().splitlines()[-1].split(': ', 1)[-1]}", file=sys.stderr)
            with open(output) as f:
                keys = [json.loads(line)["key"] for line in f]
            self.assertEqual(sorted(keys, key=lambda k: int(k.rsplit(":", 1)[1])), [f"2000001:spot:1:{i}" for i in range(30_000)])
            self.assertEqual(len(keys), len(set(keys)))
            summary = await link.execute("XPENDING", SPOT, "recorders")
            self.assertEqual(int(summary[0]), 0)

        return run(go())

    def test_claimsDeadConsumersEntries(self) -> Any:
        """Entries left pending by a consumer that never finishes are claimed by
        another after claimIdle, handled once each, and acknowledged."""

        async def go() -> None:
            server = startServer(self)
            await publishSpots(server.url, 2_000, batch=100)
            links = [RedisLink(server.url, reactor), RedisLink(server.url, reactor)]
            for link in links:
                link.start()
                self.addCleanup(link.stop)
            stuck: list[Event] = []
            dead = StreamConsumer(links[0], reactor, [SPOT], "g", "dead", lambda e: stuck.append(e) or Deferred(),
                                  count=3)
            dead.start()
            await waitFor(lambda: len(stuck) == 1, 10, "the dead consumer read")
            handled: list[str] = []
            alive = StreamConsumer(links[1], reactor, [SPOT], "g", "alive", lambda e: handled.append(e.key),
                                   claimIdle=0.3, claimInterval=0.2)
            alive.start()
            self.addCleanup(alive.stop)
            await waitFor(lambda: len(handled) == 2_000, 20, "every event handled by the live consumer")
            self.assertEqual(sorted(handled, key=lambda k: int(k.rsplit(":", 1)[1])),
                             [f"2000001:spot:1:{i}" for i in range(2_000)])
            self.assertEqual(alive.stats.claimed, 3)
            await waitFor(lambda: alive.stats.acked >= 20, 5, "acknowledged")
            summary = await links[1].execute("XPENDING", SPOT, "g")
            self.assertEqual(int(summary[0]), 0)

        return run(go())

    def test_duplicatesDroppedAndHandlerErrorStops(self) -> Any:
        """A key seen before is skipped; a failing handler stops the consumer and
        leaves its entry pending."""

        async def go() -> None:
            server = startServer(self)
            await publishSpots(server.url, 50, batch=10)
            link = RedisLink(server.url, reactor)
            link.start()
            self.addCleanup(link.stop)
            handled: list[str] = []

            def handle(event: Event) -> None:
                if event.key.endswith(":25"):
                    raise ValueError("disk full")
                handled.append(event.key)

            consumer = StreamConsumer(link, reactor, [SPOT], "g", "c", handle, seen=["2000001:spot:1:3"])
            consumer.start()
            with self.assertRaises(ValueError) as caught:
                await consumer.whenStopped()
            self.assertIn("disk full", str(caught.exception))
            self.flushLoggedErrors(ValueError)
            self.assertNotIn("2000001:spot:1:3", handled)
            self.assertEqual(consumer.stats.duplicates, 1)
            self.assertEqual(len(handled), 24)
            # Entries 3 to 5 were read in one go: the failed one and the two after it stay pending.
            summary = await link.execute("XPENDING", SPOT, "g")
            self.assertEqual(int(summary[0]), 3)

        return run(go())


def _lines(path: str) -> int:
    with open(path, "rb") as f:
        return f.read().count(b"\n")


class ConsumerUnitTests(SynchronousTestCase):
    def test_keyWindowForgetsOldest(self) -> None:
        window = KeyWindow(3, ["a", "b"])
        window.add("c")
        window.add("d")
        self.assertEqual([k in window for k in "abcd"], [False, True, True, True])
        self.assertEqual(len(window), 3)

    def test_hostileArguments(self) -> None:
        link, clock = FakeLink(), Clock()
        for options in ({"count": 0}, {"count": -1}, {"idleDelay": float("nan")}, {"claimIdle": float("inf")},
                        {"claimInterval": -2.0}, {"dedupeWindow": 0}):
            with self.assertRaises(RedisConfigError):
                StreamConsumer(link, clock, [SPOT], "g", "c", print, **options)  # type: ignore[arg-type]
        self.assertRaises(RedisConfigError, StreamConsumer, link, clock, [], "g", "c", print)
        self.assertRaises(RedisConfigError, StreamConsumer, link, clock, [SPOT], "my group", "c", print)
        self.assertRaises(RedisConfigError, StreamConsumer, link, clock, [SPOT], "g", "c", None)
