"""The stream layout (names, keys, entries, ids), URL parsing and the server helper."""

from __future__ import annotations

import os
from typing import Any

from twisted.internet import reactor
from twisted.internet.task import Clock
from twisted.logger import LogLevel, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase

from ctrader_twisted.redis import RedisConfigError, RedisLink, RedisUnavailable, parseRedisURL
from ctrader_twisted.redis.leases import rendezvousOwner
from ctrader_twisted.redis.server import RedisServer, RedisServerError, findServerBinary
from ctrader_twisted.redis.streams import (
    checkNumber,
    decodeEntry,
    encodeEntry,
    eventKey,
    formatId,
    kindOf,
    parseId,
    parseMaxlen,
    streamName,
)

from .redisutil import run, startServer, waitFor


class LayoutTests(SynchronousTestCase):
    def test_names(self) -> None:
        self.assertEqual(streamName(2000001, "spot"), "ctrader:{2000001}:spot")
        self.assertEqual(streamName(5, "exec", "prod"), "prod:{5}:exec")

    def test_kindsAndKeys(self) -> None:
        cases = [
            ({"event": "spot", "account": 1, "symbolId": 2, "time": "T"}, "spot", "1:spot:2:T"),
            ({"event": "trendbar", "account": 1, "symbolId": 2, "period": "M1", "barTime": "B", "time": "T"},
             "bar", "1:bar:2:M1:B:T"),
            ({"event": "depth", "account": 1, "symbolId": 2, "time": "T"}, "depth", "1:depth:2:T"),
            ({"event": "execution", "account": 1, "dealId": 9, "orderId": 8, "type": "ORDER_FILLED", "time": "T"},
             "exec", "1:exec:deal:9"),
            ({"event": "execution", "account": 1, "orderId": 8, "type": "ORDER_ACCEPTED", "time": "T"},
             "exec", "1:exec:order:8:ORDER_ACCEPTED:T"),
            ({"event": "execution", "account": 1, "positionId": 7, "type": "SWAP", "time": "T"},
             "exec", "1:exec:position:7:SWAP:T"),
            ({"event": "order_error", "account": 1, "orderId": 8, "errorCode": "X", "time": "T"},
             "exec", "1:exec:error:8:X:T"),
            ({"event": "lease", "account": 1, "time": "T"}, "account", "1:account:lease:T"),
            ({"event": "gap", "account": 1, "kind": "depth", "since": "S", "time": "T"}, "depth", "1:depth:gap:S:T"),
        ]
        for event, kind, key in cases:
            self.assertEqual((kindOf(event), eventKey(event)), (kind, key))

    def test_entryRoundTrip(self) -> None:
        fields = encodeEntry(["a", "b"], ['{"x":1}', '{"y":2}'])
        events = list(decodeEntry("s", "5-1", fields))
        self.assertEqual([(e.key, e.line, e.index) for e in events], [("a", '{"x":1}', 0), ("b", '{"y":2}', 1)])
        self.assertEqual(events[0].data, {"x": 1})
        self.assertRaises(ValueError, list, decodeEntry("s", "1-0", ["v", "2"]))
        self.assertRaises(ValueError, list, decodeEntry("s", "1-0", ["v", "1", "n", "3", "k", "a", "e", "{}"]))

    def test_ids(self) -> None:
        self.assertEqual(parseId("1790000000123-4"), (1790000000123, 4))
        self.assertEqual(formatId((1, 0)), "1-0")

    def test_maxlen(self) -> None:
        self.assertEqual(parseMaxlen("spot=100, exec=0"), {"spot": 100, "exec": 0})
        for bad in ("spots=1", "spot", "spot=-1", "spot=1.5", "spot=x"):
            with self.assertRaises(RedisConfigError) as caught:
                parseMaxlen(bad)
            self.assertIn("--redis-maxlen", str(caught.exception))

    def test_checkNumber(self) -> None:
        self.assertEqual(checkNumber("x", 2.0, integer=True), 2)
        for value in (float("nan"), float("-inf"), -1, 0, "3", None, True):
            self.assertRaises(RedisConfigError, checkNumber, "x", value)
        self.assertEqual(checkNumber("x", 0, allowZero=True), 0)

    def test_rendezvousFairAndStable(self) -> None:
        """Accounts spread over workers; adding one moves only its share."""
        accounts = range(1000, 1600)
        two = {a: rendezvousOwner(a, ["w1", "w2"]) for a in accounts}
        three = {a: rendezvousOwner(a, ["w1", "w2", "w3"]) for a in accounts}
        self.assertTrue(250 < sum(1 for o in two.values() if o == "w1") < 350)
        moved = [a for a in accounts if two[a] != three[a]]
        self.assertTrue(all(three[a] == "w3" for a in moved))
        self.assertTrue(150 < len(moved) < 250)
        self.assertIsNone(rendezvousOwner(1, []))


class URLTests(SynchronousTestCase):
    def test_parse(self) -> None:
        url = parseRedisURL("redis://:s3cret@10.0.0.5:6380/2")
        self.assertEqual((url.host, url.port, url.db, url.tls, url.password), ("10.0.0.5", 6380, 2, False, "s3cret"))
        self.assertEqual(url.safe, "redis://:***@10.0.0.5:6380/2")
        self.assertNotIn("s3cret", repr(url))
        self.assertEqual(parseRedisURL("rediss://user:pw@h").safe, "rediss://user:***@h:6379/0")
        self.assertEqual(parseRedisURL("redis://h").port, 6379)

    def test_badURLs(self) -> None:
        for bad in ("", "http://h", "redis://", "redis://h:99999/0", "redis://h:0/x", "redis://:pw@h:1/-1",
                    "redis://:pw@h:port/0"):
            with self.assertRaises(RedisConfigError) as caught:
                parseRedisURL(bad)
            self.assertNotIn("pw", str(caught.exception))
            self.assertNotIn("\n", str(caught.exception))

    def test_linkRepr(self) -> None:
        link = RedisLink("redis://:s3cret@127.0.0.1:1/0", Clock())
        self.assertNotIn("s3cret", repr(link))
        failure = self.failureResultOf(link.execute("PING"))
        self.assertIsInstance(failure.value, RedisUnavailable)
        self.assertNotIn("s3cret", str(failure.value))


class ServerHelperTests(SynchronousTestCase):
    def test_explicitBinary(self) -> None:
        """CTRADER_REDIS_SERVER wins; a path that is not an executable finds nothing."""
        self.assertIsNone(findServerBinary({"CTRADER_REDIS_SERVER": "/nonexistent/redis-server"}))
        self.assertEqual(findServerBinary({"CTRADER_REDIS_SERVER": "/bin/true"}), "/bin/true")

    def test_serverThatExits(self) -> None:
        """A binary that exits at once is reported with the log's path, not waited for."""
        server = RedisServer(self.mktemp(), binary="/bin/false")
        with self.assertRaises(RedisServerError) as caught:
            server.start(timeout=5)
        self.assertIn("exited with status 1", str(caught.exception))
        self.assertIn(str(server.logPath), str(caught.exception))


class LinkTests(TestCase):
    timeout = 30

    def test_wrongPasswordNeverShown(self) -> Any:
        """A refused password is logged as the server's reason, never the password."""

        async def go() -> None:
            server = startServer(self, extraArgs=["--requirepass", "right-password"])
            events: list[dict[str, Any]] = []
            globalLogPublisher.addObserver(events.append)
            self.addCleanup(globalLogPublisher.removeObserver, events.append)
            link = RedisLink(f"redis://:wrong-password@127.0.0.1:{server.port}/0", reactor)
            link.start()
            self.addCleanup(link.stop)
            await waitFor(lambda: any(e.get("log_level") == LogLevel.error for e in events), 10, "refusal logged")
            refusal = [e for e in events if e.get("log_level") == LogLevel.error][0]
            self.assertIn("could not auth", refusal["why"])
            self.assertNotIn("wrong-password", repr(events))
            self.assertFalse(link.connected)
            good = RedisLink(f"redis://:right-password@127.0.0.1:{server.port}/0", reactor)
            good.start()
            self.addCleanup(good.stop)
            await good.whenConnected()
            self.assertEqual(await good.execute("PING"), "PONG")

        return run(go())

    def test_unreachableThenUp(self) -> Any:
        """Commands fail at once with RedisUnavailable until the server is up; then it connects."""

        async def go() -> None:
            if findServerBinary() is None:
                startServer(self)  # skips (or fails in CI) with the reason
            server = RedisServer(os.path.abspath(self.mktemp()))
            link = RedisLink(server.url, reactor, retryInitial=0.05, retryMax=0.2)
            link.start()
            self.addCleanup(link.stop)
            with self.assertRaises(RedisUnavailable):
                await link.execute("PING")
            server.start()
            self.addCleanup(server.kill)
            await link.whenConnected()
            self.assertEqual(await link.execute("PING"), "PONG")

        return run(go())
