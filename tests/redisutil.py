"""A real Redis server for the Redis tests (skipped with a reason when there is none)."""

from __future__ import annotations

import os
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import deferLater
from twisted.trial.unittest import SkipTest, TestCase

from ctrader_twisted.redis.server import NO_SERVER_REASON, RedisServer, findServerBinary
from ctrader_twisted.redis.streams import decodeEntry

#: Set by .ci/run: a missing server fails these tests instead of skipping them.
REQUIRE = "CTRADER_REQUIRE_REDIS"


def startServer(case: TestCase, **options: Any) -> RedisServer:
    """A server on a free port with its own data directory, killed at cleanup."""
    if findServerBinary() is None:
        if os.environ.get(REQUIRE) == "1":
            raise AssertionError(f"{REQUIRE}=1 but {NO_SERVER_REASON}")
        raise SkipTest(NO_SERVER_REASON)
    server = RedisServer(case.mktemp(), **options)
    server.start()
    case.addCleanup(server.kill)
    return server


def sleep(seconds: float) -> Deferred[None]:
    """Wait on the real reactor (real-server tests only)."""
    return deferLater(reactor, seconds, lambda: None)


async def waitFor(predicate: Any, timeout: float, what: str, step: float = 0.02) -> None:
    """Wait until *predicate()* is true, at most *timeout* seconds of real time."""
    waited = 0.0
    while not predicate():
        if waited >= timeout:
            raise AssertionError(f"{what}: not within {timeout:g} s")
        await sleep(step)
        waited += step


async def readStream(link: Any, name: str) -> list[tuple[str, str, str]]:
    """Every event of stream *name*: (entry id, key, line), in order."""
    out: list[tuple[str, str, str]] = []
    start = "-"
    while True:
        page = await link.execute("XRANGE", name, start, "+", "COUNT", 200)
        if not page:
            return out
        for entryId, fields in page:
            out.extend((entryId, e.key, e.line) for e in decodeEntry(name, entryId, fields))
        start = "(" + page[-1][0]


def run(coroutine: Any) -> Deferred[Any]:
    """A coroutine as a Deferred (trial waits on it)."""
    return ensureDeferred(coroutine)
