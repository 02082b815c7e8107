"""AccountLeases: fair shares, handover to a new worker, takeover after a
death, a lost lease, Redis unreachable (on a Clock), releasing at stop."""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase

from ctrader_twisted.redis import RedisConfigError, RedisLink
from ctrader_twisted.redis.leases import AccountLeases, leaseKey, membersKey, rendezvousOwner

from .redisfake import FakeLink
from .redisutil import run, sleep, startServer

ACCOUNTS = list(range(3000001, 3000013))


class Worker:
    """One AccountLeases and what its callbacks saw."""

    def __init__(self, link: Any, name: str, lease: float = 10.0) -> None:
        self.events: list[tuple[str, int, str]] = []
        self.leases = AccountLeases(link, reactor, "g", ACCOUNTS, self.acquire, self.release, lease=lease,
                                    workerId=name)

    def acquire(self, account: int) -> None:
        self.events.append(("acquire", account, ""))

    def release(self, account: int, reason: str) -> None:
        self.events.append(("release", account, reason))


class LeaseTests(TestCase):
    timeout = 60

    async def link(self) -> RedisLink:
        if not hasattr(self, "server"):
            self.server = startServer(self)
        link = RedisLink(self.server.url, reactor)
        link.start()
        self.addCleanup(link.stop)
        await link.whenConnected()
        return link

    async def twoWorkers(self, link: RedisLink, lease: float = 10.0) -> tuple[Worker, Worker]:
        """Workers a and b, after two ticks each: the accounts are shared."""
        a, b = Worker(link, "a", lease), Worker(link, "b", lease)
        for _ in range(2):
            await a.leases.tick()
            await b.leases.tick()
        return a, b

    def test_fairShareAndHandover(self) -> Any:
        """Two workers split the accounts by rendezvous hashing; a third joins and
        takes exactly its share, handed over by the others."""

        async def go() -> None:
            link = await self.link()
            a, b = await self.twoWorkers(link)
            self.assertEqual(a.leases.held | b.leases.held, set(ACCOUNTS))
            self.assertFalse(a.leases.held & b.leases.held)
            for account in ACCOUNTS:
                self.assertEqual(await link.execute("GET", leaseKey(account, "g")), rendezvousOwner(account, ["a", "b"]))
            a.events.clear()
            b.events.clear()
            c = Worker(link, "c")
            await c.leases.tick()  # joins; its accounts are still held by the others
            await a.leases.tick()
            await b.leases.tick()  # they hand over
            await c.leases.tick()  # it takes them
            share = {x for x in ACCOUNTS if rendezvousOwner(x, ["a", "b", "c"]) == "c"}
            self.assertTrue(share)
            self.assertEqual(c.leases.held, share)
            handedOver = {acc for w in (a, b) for kind, acc, why in w.events if kind == "release" and why == "handover"}
            self.assertEqual(handedOver, share)
            self.assertEqual(len(a.leases.held) + len(b.leases.held) + len(c.leases.held), len(ACCOUNTS))

        return run(go())

    def test_deadWorkersAccountsMove(self) -> Any:
        """A worker that stops renewing (dead) loses its accounts to the others once its lease expires."""

        async def go() -> None:
            link = await self.link()
            a, b = await self.twoWorkers(link, lease=0.9)  # keys live 0.6 s
            dead = set(a.leases.held)
            self.assertTrue(dead)
            await b.leases.tick()
            self.assertEqual(b.leases.held & dead, set())  # not before the lease expires
            for _ in range(5):  # b ticks every 0.15 s (a sixth of the lease), a no more
                await sleep(0.15)
                await b.leases.tick()
            self.assertEqual(b.leases.held, set(ACCOUNTS))
            self.assertEqual(b.leases.members, ["b"])

        return run(go())

    def test_lostLease(self) -> Any:
        """A lease another worker holds now is given up ("lost") at the next renewal."""

        async def go() -> None:
            link = await self.link()
            a = Worker(link, "a")
            await a.leases.tick()
            self.assertEqual(a.leases.held, set(ACCOUNTS))
            await link.execute("SET", leaseKey(ACCOUNTS[0], "g"), "intruder")
            await a.leases.tick()
            self.assertNotIn(ACCOUNTS[0], a.leases.held)
            self.assertIn(("release", ACCOUNTS[0], "lost"), a.events)

        return run(go())

    def test_stopReleases(self) -> Any:
        """stop() gives every lease and the membership back; the other worker takes all at its next tick."""

        async def go() -> None:
            link = await self.link()
            a, b = await self.twoWorkers(link)
            await a.leases.stop()
            self.assertEqual(a.leases.held, set())
            self.assertEqual(await link.execute("ZRANGE", membersKey("g"), 0, -1), ["b"])
            await b.leases.tick()
            self.assertEqual(b.leases.held, set(ACCOUNTS))

        return run(go())


class LeaseClockTests(SynchronousTestCase):
    def test_unreachableGivesUpAfterLease(self) -> None:
        """Redis gone: held accounts are given up once the lease may have expired, not before."""
        clock, link = Clock(), FakeLink()
        released: list[tuple[int, str]] = []
        leases = AccountLeases(link, clock, "g", [1, 2], lambda a: None, lambda a, why: released.append((a, why)),
                               lease=6.0, workerId="w")  # keys live 4 s: given up after 3.6 s
        leases.held = {1, 2}
        leases._renewed = {1: 0.0, 2: 0.0}
        leases.start()  # ticks at 0, 1, 2, 3, 4...: each fails (not connected)
        clock.advance(3)
        self.assertEqual(released, [])
        clock.advance(1)
        self.assertEqual(sorted(released), [(1, "lost"), (2, "lost")])
        self.assertEqual(leases.held, set())
        self.successResultOf(leases.stop(release=False))

    def test_hostileArguments(self) -> None:
        link, clock = FakeLink(), Clock()
        for lease in (float("nan"), float("inf"), -1.0, 0.0, 0.1):
            with self.assertRaises(RedisConfigError) as caught:
                AccountLeases(link, clock, "g", [1], print, print, lease=lease)
            self.assertIn("lease", str(caught.exception))
        self.assertRaises(RedisConfigError, AccountLeases, link, clock, "a{b}", [1], print, print)
        self.assertRaises(RedisConfigError, AccountLeases, link, clock, "g", [], print, print)


class StuckTickTests(SynchronousTestCase):
    def test_stuckTickReplaced(self) -> None:
        """A tick whose command never gets an answer is cancelled once a lease
        could have expired, and the next tick starts anew."""
        clock, link = Clock(), FakeLink()
        link.connect()
        link.paused = True  # Redis takes the command and never answers
        leases = AccountLeases(link, clock, "g", [1], lambda a: None, lambda a, why: None, lease=6.0, workerId="w")
        leases.start()
        self.assertEqual(len(link.held), 1)
        clock.advance(3)  # ticks at 1, 2, 3 s: the first still waits
        self.assertEqual(len(link.held), 1)
        clock.advance(2)  # 5 s > 4 s (two thirds of the lease): cancelled, a new tick sent
        self.assertEqual(len(link.held), 2)
        self.flushLoggedErrors()
        self.successResultOf(leases.stop(release=False))
