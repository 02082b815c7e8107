# -*- test-case-name: tests.test_redis_leases -*-
"""Accounts shared by the workers of a group: :class:`AccountLeases`.

Every worker of a group (same Redis, same group name) runs one
:class:`AccountLeases` over the same list of accounts. Each account is held
by one worker at a time through a **lease**, a key holding the worker's id
with a time to live::

    <prefix>:{<account>}:lease:<group>      SET <workerId> NX PX <lease ms>

``lease`` is the bound on a takeover: the keys live two thirds of it and
are renewed every sixth of it, so a dead worker's accounts are taken by the
others at most ``2/3 + 1/6`` of ``lease`` after its last renewal. Every
``lease / 6`` seconds (a ``LoopingCall`` on the injected clock) a worker

1. renews its **membership** of the group: a sorted set
   ``<prefix>:group:{<group>}:workers`` scored by expiry time (the Redis
   server's clock, in a Lua script), from which expired workers are removed;
2. computes the owner of each account by **rendezvous hashing** over the
   live workers (the highest ``sha1(account:worker)`` wins), so a new worker
   takes a fair share and a departed worker's accounts spread over the rest;
3. renews the leases it holds and should hold (compare-and-renew), hands
   over those another live worker should now hold (releases them), and
   takes those it should hold that are free (``SET NX PX``).

When a worker dies its membership and leases expire and the others take
its accounts at their next tick, within ``lease`` seconds. A worker that
cannot renew a lease (Redis unreachable, or another holder) gives the
account up locally once the lease may have expired, so two workers never
stream one account for long. ``onAcquire(account)`` and
``onRelease(account, reason)`` start and stop streaming it (they may return
Deferreds; ticks wait for them).
"""

from __future__ import annotations

import hashlib
import inspect
import os
import socket
import uuid
from typing import Any, Callable, Sequence

from twisted.internet.defer import CancelledError, Deferred, ensureDeferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from .errors import RedisConfigError, RedisUnavailable
from .streams import DEFAULT_PREFIX, checkNumber

__all__ = ["AccountLeases", "rendezvousOwner", "leaseKey", "membersKey"]

_HEARTBEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 10)
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def leaseKey(account: int, group: str, prefix: str = DEFAULT_PREFIX) -> str:
    """``<prefix>:{<account>}:lease:<group>``."""
    return f"{prefix}:{{{account}}}:lease:{group}"


def membersKey(group: str, prefix: str = DEFAULT_PREFIX) -> str:
    """``<prefix>:group:{<group>}:workers``."""
    return f"{prefix}:group:{{{group}}}:workers"


def rendezvousOwner(account: int, workers: Sequence[str]) -> str | None:
    """The worker that should hold *account* (highest random weight), or ``None`` without workers."""
    best, owner = -1, None
    for worker in workers:
        weight = int.from_bytes(hashlib.sha1(f"{account}:{worker}".encode()).digest()[:8], "big")
        if weight > best:
            best, owner = weight, worker
    return owner


class AccountLeases:
    """This worker's side of the account sharing (see the module docstring).

    :param link: the Redis link.
    :param clock: time source for the ticks (the reactor; a Clock in tests).
    :param group: the group's name.
    :param accounts: the accounts the group shares (the same list in every worker).
    :param onAcquire: called with an account this worker now holds.
    :param onRelease: called with an account it no longer holds and why
        (``"handover"``, ``"lost"``, ``"stopping"``).
    :param lease: how soon a dead worker's accounts are taken over, seconds
        (keys live two thirds of it; ticks every sixth of it).
    :param workerId: this worker's id (default: host, pid and a random part).
    :param prefix: first part of the key names.
    """

    _log = Logger()

    def __init__(
        self,
        link: Any,
        clock: IReactorTime,
        group: str,
        accounts: Sequence[int],
        onAcquire: Callable[[int], Any],
        onRelease: Callable[[int, str], Any],
        *,
        lease: float = 10.0,
        workerId: str | None = None,
        prefix: str = DEFAULT_PREFIX,
    ) -> None:
        if not isinstance(group, str) or not group or any(c in group for c in "{} \n"):
            raise RedisConfigError(f"group must be a name without braces or spaces, got {group!r}")
        self.lease = checkNumber("lease", lease, minimum=0.3)
        if not accounts:
            raise RedisConfigError("give the accounts the group shares")
        self.accounts = [int(a) for a in accounts]
        self.link = link
        self.clock = clock
        self.group = group
        self.prefix = prefix
        self.onAcquire = onAcquire
        self.onRelease = onRelease
        self.workerId = workerId or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        #: accounts held now
        self.held: set[int] = set()
        #: live workers at the last tick
        self.members: list[str] = []
        self._renewed: dict[int, float] = {}
        self._loop: LoopingCall | None = None
        self._ticking: Deferred[None] | None = None
        self._tickStarted = 0.0

    def __repr__(self) -> str:
        return f"<AccountLeases {self.workerId} in {self.group}: holds {sorted(self.held)}>"

    @property
    def ttl(self) -> float:
        """Seconds a lease (and a membership) lives unrenewed: two thirds of ``lease``."""
        return self.lease * 2 / 3

    def start(self) -> None:
        """Tick now and every ``lease / 6`` seconds."""
        loop = self._loop = LoopingCall(self._tickOnce)
        loop.clock = self.clock
        loop.start(self.lease / 6, now=True).addErrback(
            lambda f: self._log.failure("Lease ticks stopped", f))

    def _tickOnce(self) -> None:
        if self._ticking is not None:
            stuck = self.clock.seconds() - self._tickStarted
            if stuck < self.ttl:
                return  # the previous tick still waits on Redis or on a callback
            # No answer for longer than a lease lives: give up on that tick (its
            # leases may have expired; the next tick finds out) and start anew.
            self._log.warn("Lease tick of {worker} got no answer for {s:.1f} s: starting a new one",
                           worker=self.workerId, s=stuck)
            self._ticking.cancel()
        self._tickStarted = self.clock.seconds()
        ticking = self._ticking = ensureDeferred(self.tick())
        ticking.addErrback(self._tickFailed).addBoth(self._ticked, ticking)

    def _ticked(self, _: Any, ticking: Deferred[None]) -> None:
        if self._ticking is ticking:
            self._ticking = None

    def _tickFailed(self, failure: Any) -> None:
        if failure.check(RedisUnavailable):
            self._log.debug("Lease tick of {worker}: {why}", worker=self.workerId, why=failure.getErrorMessage())
        elif not failure.check(CancelledError):
            self._log.failure("Lease tick failed", failure)
        self._expireUnrenewed()

    def _expireUnrenewed(self) -> None:
        """Give up locally the accounts whose lease may have expired unrenewed."""
        now = self.clock.seconds()
        for account in sorted(self.held):
            if now - self._renewed.get(account, now) >= self.ttl * 0.9:
                self._drop(account, "lost")

    def _drop(self, account: int, reason: str) -> Any:
        self.held.discard(account)
        self._renewed.pop(account, None)
        self._log.info("Worker {worker} gives up account {account} ({reason})", worker=self.workerId,
                       account=account, reason=reason)
        return _deferred(self.onRelease(account, reason)).addErrback(
            lambda f: self._log.failure("Releasing account {account} failed", f, account=account))

    async def tick(self) -> None:
        """One round: membership, owners, renew, hand over, acquire."""
        ttl = int(self.ttl * 1000)
        members = await self.link.execute("EVAL", _HEARTBEAT, 1, membersKey(self.group, self.prefix), self.workerId, ttl)
        self.members = sorted(str(m) for m in members or ())
        if self.workerId not in self.members:
            self.members.append(self.workerId)
        for account in self.accounts:
            owner = rendezvousOwner(account, self.members)
            key = leaseKey(account, self.group, self.prefix)
            if account in self.held:
                if owner != self.workerId:
                    await _maybe(self._drop(account, "handover"))
                    await self.link.execute("EVAL", _RELEASE, 1, key, self.workerId)
                    continue
                renewed = await self.link.execute("EVAL", _RENEW, 1, key, self.workerId, ttl)
                if renewed:
                    self._renewed[account] = self.clock.seconds()
                else:
                    await _maybe(self._drop(account, "lost"))
            elif owner == self.workerId:
                taken = await self.link.execute("SET", key, self.workerId, "NX", "PX", ttl)
                if taken == "OK":
                    self.held.add(account)
                    self._renewed[account] = self.clock.seconds()
                    self._log.info("Worker {worker} holds account {account}", worker=self.workerId, account=account)
                    try:
                        await _maybe(self.onAcquire(account))
                    except Exception:
                        # Could not start streaming it: give it back for another try.
                        self.held.discard(account)
                        await self.link.execute("EVAL", _RELEASE, 1, key, self.workerId)
                        raise
        self._expireUnrenewed()

    def stop(self, release: bool = True) -> Deferred[None]:
        """Stop ticking; with *release*, give every lease and the membership back
        at once (the others take over at their next tick)."""
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
        if not release:
            return succeed(None)

        async def go() -> None:
            if self._ticking is not None:
                await self._ticking
            for account in sorted(self.held):
                await _maybe(self._drop(account, "stopping"))
                try:
                    await self.link.execute("EVAL", _RELEASE, 1, leaseKey(account, self.group, self.prefix), self.workerId)
                except RedisUnavailable:
                    pass
            try:
                await self.link.execute("ZREM", membersKey(self.group, self.prefix), self.workerId)
            except RedisUnavailable:
                pass

        return ensureDeferred(go())


def _deferred(result: Any) -> Deferred[Any]:
    """A callback's result as a Deferred (it may be a value, a Deferred or a coroutine)."""
    if isinstance(result, Deferred):
        return result
    if inspect.iscoroutine(result):
        return ensureDeferred(result)
    return succeed(result)


async def _maybe(result: Any) -> Any:
    return await _deferred(result)
