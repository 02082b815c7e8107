# -*- test-case-name: tests.test_redis_stream -*-
"""The Redis options of ``stream`` and the twistd plugin, and the ``consume`` command.

::

    ctrader-twisted stream EURUSD --redis redis://127.0.0.1:6379/0 [--redis-maxlen spot=100000] [--output FILE]
    ctrader-twisted consume --redis URL --group NAME --account ID[,ID] [--kinds spot,exec] [--consumer NAME]
        [--output FILE] [--count N] [--new]

With ``--redis`` the events go to the streams of :mod:`ctrader_twisted.redis.streams`;
JSON lines are still written with ``--output FILE`` (``--output -``: stdout).
``consume`` reads streams with a consumer group and writes each event as
its JSON line with its ``key`` added; given an ``--output`` file it already
wrote to, it skips the keys that file holds, so a restart after a crash
handles each key once. Needs the ``redis`` extra (``pip install 'ctrader-twisted[redis]'``).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
from collections import deque
from typing import Any, TextIO

from twisted.internet.defer import Deferred

from .options import UsageError, openOutput, positiveNumber, splitNames
from .status import EXIT_FAILURE, EXIT_OK, docsUrl, say

__all__ = ["addRedisOptions", "checkRedisOptions", "redisSinks", "addConsumeParser", "consumeCommand", "seenKeys", "withKey"]


def addRedisOptions(parser: argparse.ArgumentParser) -> None:
    """``--redis``, ``--redis-maxlen``, ``--redis-prefix`` (the ``stream`` command)."""
    group = parser.add_argument_group(f"Redis Streams (needs the redis extra; see {docsUrl('scaling')})")
    group.add_argument("--redis", metavar="URL", help="also publish every event to Redis, e.g. redis://127.0.0.1:6379/0 "
                       "(JSON lines then only with --output FILE, or --output - for stdout)")
    group.add_argument("--redis-maxlen", dest="redisMaxlen", metavar="KIND=N[,...]",
                       help="MAXLEN ~ per stream kind, in entries (0: no trimming), e.g. spot=100000,exec=0")
    group.add_argument("--redis-prefix", dest="redisPrefix", default="ctrader", metavar="NAME",
                       help="first part of the stream names (ctrader)")


def _requireTxredisapi(option: str) -> None:
    import importlib.util

    if importlib.util.find_spec("txredisapi") is None:
        raise UsageError(f"{option} needs txredisapi: pip install 'ctrader-twisted[redis]'")


def checkRedisOptions(url: str | None, maxlen: str | None, prefix: str) -> tuple[Any, dict[str, int]] | None:
    """The parsed ``--redis`` URL and ``--redis-maxlen``, or ``None`` without ``--redis``.

    :raises UsageError: a bad URL, ``--redis-maxlen`` or prefix, or txredisapi missing.
    """
    if not url:
        if maxlen:
            raise UsageError("--redis-maxlen needs --redis")
        return None
    from ..redis.errors import RedisConfigError
    from ..redis.link import parseRedisURL
    from ..redis.streams import parseMaxlen

    try:
        parsed = parseRedisURL(url)
        limits = parseMaxlen(maxlen) if maxlen else {}
    except RedisConfigError as error:
        raise UsageError(str(error)) from None
    if not prefix or any(c in prefix for c in "{} \n"):
        raise UsageError(f"--redis-prefix must be a name without braces or spaces, got {prefix!r}")
    _requireTxredisapi("--redis")
    return parsed, limits


def redisSinks(url: str | None, maxlen: str | None, prefix: str, reactor: Any, status: TextIO) -> list[Any]:
    """The sinks for ``--redis`` (none without it).

    :raises UsageError: see :func:`checkRedisOptions`.
    """
    checked = checkRedisOptions(url, maxlen, prefix)
    if checked is None:
        return []
    from ..redis.sink import RedisSink

    parsed, limits = checked
    return [RedisSink(parsed, reactor, lambda text: say(status, text), prefix=prefix, maxlen=limits)]


def addConsumeParser(sub: Any) -> None:
    """The ``consume`` subcommand's options."""
    consume = sub.add_parser("consume", help="read the Redis streams with a consumer group, as JSON lines",
                             description="Read ctrader:{ACCOUNT}:KIND streams with a consumer group; each event is "
                             f"written as its JSON line with its idempotency key (see {docsUrl('scaling')}).")
    consume.add_argument("--redis", required=True, metavar="URL", help="e.g. redis://127.0.0.1:6379/0")
    consume.add_argument("--group", required=True, metavar="NAME", help="consumer group")
    consume.add_argument("--account", dest="accounts", required=True, metavar="ID[,ID...]", help="account ids")
    consume.add_argument("--kinds", default="spot,bar,depth,exec,account", metavar="KIND[,KIND...]",
                         help="stream kinds (spot,bar,depth,exec,account)")
    consume.add_argument("--consumer", metavar="NAME", help="this consumer's name, the same after a restart "
                         "(default: the host name)")
    consume.add_argument("--output", "-o", metavar="FILE", help="append to FILE, skipping the keys it already holds")
    consume.add_argument("--count", type=int, metavar="N", help="stop after N events (the entry holding the Nth is "
                         "finished: entries are acknowledged whole)")
    consume.add_argument("--new", action="store_true", help="a group created now starts at new entries, not the start")
    consume.add_argument("--claim-idle", dest="claimIdle", type=float, default=30.0, metavar="S",
                         help="claim entries another consumer left pending this long (30)")
    consume.add_argument("--read-count", dest="readCount", type=int, default=10, metavar="N",
                         help="entries per read (10)")
    consume.add_argument("--redis-prefix", dest="redisPrefix", default="ctrader", metavar="NAME",
                         help="first part of the stream names (ctrader)")
    consume.add_argument("-v", "--verbose", action="count", default=0, help="log steps to stderr (-vv: debug)")


def withKey(line: str, key: str) -> str:
    """*line* (a JSON object) with ``"key"`` added last."""
    return line[:-1] + ("," if len(line) > 2 else "") + '"key":' + json.dumps(key) + "}"


def dropPartialLine(path: str) -> None:
    """Cut a last line left without its newline by a crash (its event is written again)."""
    if not os.path.exists(path):
        return
    with open(path, "rb+") as f:
        size = f.seek(0, os.SEEK_END)
        if not size:
            return
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return
        f.seek(max(0, size - 2**20))
        tail = f.read()
        cut = tail.rfind(b"\n")
        f.truncate(size - len(tail) + cut + 1 if cut >= 0 else max(0, size - len(tail)))


def seenKeys(path: str, limit: int = 100_000) -> list[str]:
    """The ``key`` of the last *limit* complete lines of *path* (none if it does not exist)."""
    if not os.path.exists(path):
        return []
    keys: deque[str] = deque(maxlen=limit)
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if not line.endswith("\n"):
                break  # a line cut by a crash: it is written again
            try:
                key = json.loads(line).get("key")
            except ValueError:
                continue
            if isinstance(key, str):
                keys.append(key)
    return list(keys)


async def consumeCommand(reactor: Any, args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    """``ctrader-twisted consume``: run a :class:`~ctrader_twisted.redis.consumer.StreamConsumer` until done.

    :raises UsageError: a bad option value.
    """
    from ..redis.consumer import StreamConsumer
    from ..redis.errors import RedisConfigError
    from ..redis.link import RedisLink, parseRedisURL
    from ..redis.streams import KINDS, streamName

    try:
        url = parseRedisURL(args.redis)
    except RedisConfigError as error:
        raise UsageError(str(error)) from None
    _requireTxredisapi("consume")
    kinds = splitNames([args.kinds])
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise UsageError(f"--kinds: expected some of {', '.join(KINDS)}, got {args.kinds!r}")
    try:
        accounts = [int(a) for a in splitNames([args.accounts])]
    except ValueError:
        raise UsageError("--account must be account ids (integers), comma-separated") from None
    if not accounts or any(a <= 0 for a in accounts):
        raise UsageError("--account must be positive account ids, comma-separated")
    count = positiveNumber(int, "count", args.count)
    claimIdle = positiveNumber(float, "claim-idle", args.claimIdle)
    readCount = positiveNumber(int, "read-count", args.readCount)
    if args.output:
        dropPartialLine(args.output)
    seen = seenKeys(args.output) if args.output else []
    output = openOutput(args.output, "a") if args.output else stdout
    streams = [streamName(a, k, args.redisPrefix) for a in accounts for k in kinds]
    link = RedisLink(url, reactor)
    done: Deferred[None] = Deferred()
    written = [0]

    def handle(event: Any) -> None:
        output.write(withKey(event.line, event.key) + "\n")
        output.flush()
        written[0] += 1
        if count is not None and written[0] >= count and not done.called:
            done.callback(None)

    try:
        consumer = StreamConsumer(link, reactor, streams, args.group, args.consumer or socket.gethostname(), handle,
                                  claimIdle=claimIdle, count=readCount, seen=seen, startId="$" if args.new else "0")
    except RedisConfigError as error:
        raise UsageError(str(error)) from None
    say(stderr, f"consuming {len(streams)} streams of Redis {url.safe} as {consumer.consumer} in group {args.group}"
        + (f" ({len(seen)} keys already in {args.output})" if seen else ""))
    trigger = reactor.addSystemEventTrigger("before", "shutdown", lambda: None if done.called else done.callback(None))
    consumer.start()
    consumer.whenStopped().addErrback(lambda f: None if done.called else done.errback(f))
    try:
        await done
        return EXIT_OK
    except Exception as error:
        say(stderr, f"error: {error}")
        return EXIT_FAILURE
    finally:
        reactor.removeSystemEventTrigger(trigger)
        await consumer.stop()
        await link.stop()
        if output is not stdout:
            output.close()
        say(stderr, f"stopped ({written[0]} events written; {consumer.stats.duplicates} duplicates skipped)")


