# -*- test-case-name: tests.test_redis_consumer -*-
"""Read the streams with a consumer group: :class:`StreamConsumer`.

::

    def handle(event):            # an Event: key, line, data, stream, entryId
        print(event.key, event.data["bid"])
        return None               # or a Deferred: the entry is acknowledged after it fires

    consumer = StreamConsumer(link, reactor, ["ctrader:{2000001}:spot"], "recorders", "recorder-1", handle)
    consumer.start()
    ...
    await consumer.stop()

What it does, in order:

1. creates the group on each stream if missing (``XGROUP CREATE ... MKSTREAM``,
   from ``startId``: ``0`` reads the streams from their start, ``$`` only
   what comes next);
2. handles **its own pending entries first** (``XREADGROUP ... 0``): what
   it read before a restart and never acknowledged;
3. then reads new entries (``>``), and every ``claimInterval`` seconds
   claims the entries other consumers of the group left pending for more
   than ``claimIdle`` seconds (``XAUTOCLAIM``: a dead consumer's work);
4. calls the handler for each event of an entry, in order, waiting for the
   Deferred it may return, and **acknowledges the entry** (``XACK``) once
   every event of it was handled;
5. **drops duplicates by idempotency key**: a key handled within the last
   ``dedupeWindow`` keys is not handled again. Seed the window with the keys
   your own output already holds (``seen``) and a restart handles each key
   exactly once: see the recorder example in ``docs/scaling.rst``.

A handler that raises (or whose Deferred fails) stops the consumer: the
entry stays pending and is handled again after a restart, and
:meth:`StreamConsumer.whenStopped` fails with the error. Reads are not
blocking (``BLOCK`` would hold the one connection): when nothing is new the
consumer polls again after ``idleDelay`` seconds.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence

from twisted.internet.defer import Deferred, ensureDeferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure

from .errors import RedisConfigError, RedisUnavailable
from .streams import Event, checkNumber, decodeEntry

__all__ = ["StreamConsumer", "KeyWindow", "ConsumerStats"]


class KeyWindow:
    """The last *size* keys seen, in a set with insertion order (oldest forgotten first)."""

    def __init__(self, size: int, keys: Iterable[str] = ()) -> None:
        self.size = checkNumber("dedupeWindow", size, integer=True)
        self._keys: dict[str, None] = {}
        for key in keys:
            self.add(key)

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, key: str) -> None:
        """Remember *key* (forgetting the oldest beyond the size)."""
        keys = self._keys
        keys[key] = None
        if len(keys) > self.size:
            del keys[next(iter(keys))]


class ConsumerStats:
    """Counters of a :class:`StreamConsumer`."""

    def __init__(self) -> None:
        #: events handed to the handler
        self.handled = 0
        #: events skipped as duplicates
        self.duplicates = 0
        #: entries acknowledged
        self.acked = 0
        #: entries of its own pending list handled at start
        self.pending = 0
        #: entries claimed from other consumers
        self.claimed = 0

    def __repr__(self) -> str:
        return (f"<ConsumerStats handled={self.handled} duplicates={self.duplicates} acked={self.acked} "
                f"pending={self.pending} claimed={self.claimed}>")


class StreamConsumer:
    """A member of a consumer group reading one or more streams (see the module docstring).

    :param link: a :class:`~ctrader_twisted.redis.link.RedisLink` (started here if needed).
    :param clock: time source (the reactor; a Clock in tests).
    :param streams: stream names (``streamName(account, kind)``).
    :param group: the consumer group's name.
    :param consumer: this consumer's name, stable across restarts (its
        pending entries are found by it).
    :param handler: called with each :class:`~ctrader_twisted.redis.streams.Event`;
        may return a Deferred.
    :param count: entries per read.
    :param idleDelay: seconds before reading again when nothing was new.
    :param claimIdle: seconds an entry must have been pending with another
        consumer before it is claimed.
    :param claimInterval: seconds between claim rounds.
    :param dedupeWindow: how many recent keys are remembered.
    :param seen: keys already handled (from your output), to start the window with.
    :param startId: where a group created here starts (``0``: the start; ``$``: new entries only).
    """

    _log = Logger()

    def __init__(
        self,
        link: Any,
        clock: IReactorTime,
        streams: Sequence[str],
        group: str,
        consumer: str,
        handler: Callable[[Event], Any],
        *,
        count: int = 10,
        idleDelay: float = 0.01,
        claimIdle: float = 30.0,
        claimInterval: float = 5.0,
        dedupeWindow: int = 100_000,
        seen: Iterable[str] = (),
        startId: str = "0",
    ) -> None:
        if not streams or any(not isinstance(s, str) or not s for s in streams):
            raise RedisConfigError("give at least one stream name")
        for name, value in (("group", group), ("consumer", consumer)):
            if not isinstance(value, str) or not value or any(c.isspace() for c in value):
                raise RedisConfigError(f"{name} must be a non-empty name without spaces, got {value!r}")
        if not callable(handler):
            raise RedisConfigError("handler must be callable")
        self.count = checkNumber("count", count, integer=True)
        self.idleDelay = checkNumber("idleDelay", idleDelay)
        self.claimIdle = checkNumber("claimIdle", claimIdle, allowZero=True)
        self.claimInterval = checkNumber("claimInterval", claimInterval)
        self.window = KeyWindow(dedupeWindow, seen)
        self.link = link
        self.clock = clock
        self.streams = list(streams)
        self.group = group
        self.consumer = consumer
        self.handler = handler
        self.startId = startId
        self.stats = ConsumerStats()
        self._running = False
        self._stopped: list[Deferred[None]] = []
        self._loop: Deferred[None] | None = None
        self._error: Failure | None = None

    def __repr__(self) -> str:
        return f"<StreamConsumer {self.consumer} of {self.group} on {len(self.streams)} streams>"

    def start(self) -> None:
        """Start reading (and the link, if it has a ``start`` and is not connected)."""
        if self._running:
            return
        start = getattr(self.link, "start", None)
        if start is not None and not self.link.connected:
            start()
        self._running = True
        self._loop = ensureDeferred(self._run())
        self._loop.addBoth(self._ended)

    def stop(self) -> Deferred[None]:
        """Stop after the entry being handled (it is acknowledged first)."""
        self._running = False
        return self.whenStopped().addErrback(lambda f: None)

    def whenStopped(self) -> Deferred[None]:
        """A Deferred firing when the consumer has stopped, failing with the
        handler's error if that is what stopped it."""
        if self._loop is None or self._loop.called:
            if self._error is not None:
                return _failed(self._error)
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._stopped.append(d)
        return d

    def _ended(self, result: Any) -> None:
        self._running = False
        if isinstance(result, Failure):
            self._error = result
            self._log.failure("Consumer {consumer} stopped by an error", result, consumer=self.consumer)
        waiting, self._stopped = self._stopped, []
        for d in waiting:
            if self._error is not None:
                d.errback(self._error)
            else:
                d.callback(None)

    async def _sleep(self, seconds: float) -> None:
        await deferLater(self.clock, seconds, lambda: None)

    async def _call(self, *args: Any) -> Any:
        """Run a command, waiting for the link through disconnections."""
        while True:
            try:
                return await self.link.execute(*args)
            except RedisUnavailable:
                if not self._running:
                    raise
                await self._sleep(max(self.idleDelay, 0.1))

    async def _run(self) -> None:
        for stream in self.streams:
            try:
                await self._call("XGROUP", "CREATE", stream, self.group, self.startId, "MKSTREAM")
            except RedisUnavailable:
                return
            except Exception as error:
                if "BUSYGROUP" not in str(error):
                    raise
        for stream in self.streams:
            last = "0"
            while self._running:
                reply = await self._call("XREADGROUP", "GROUP", self.group, self.consumer, "COUNT", self.count,
                                         "STREAMS", stream, last)
                entries = reply[0][1] if reply else []
                if not entries:
                    break
                self.stats.pending += len(entries)
                await self._handle(stream, entries)
                last = entries[-1][0]
        nextClaim = self.clock.seconds()
        while self._running:
            if self.clock.seconds() >= nextClaim:
                for stream in self.streams:
                    await self._claim(stream)
                nextClaim = self.clock.seconds() + self.claimInterval
            if not self._running:
                break
            reply = await self._call("XREADGROUP", "GROUP", self.group, self.consumer, "COUNT", self.count,
                                     "STREAMS", *self.streams, *([">"] * len(self.streams)))
            got = False
            for stream, entries in reply or ():
                if entries:
                    got = True
                    await self._handle(stream, entries)
            if not got and self._running:
                await self._sleep(self.idleDelay)

    async def _claim(self, stream: str) -> None:
        cursor = "0-0"
        while self._running:
            reply = await self._call("XAUTOCLAIM", stream, self.group, self.consumer, int(self.claimIdle * 1000),
                                     cursor, "COUNT", self.count)
            cursor, entries = reply[0], reply[1]
            if entries:
                self.stats.claimed += len(entries)
                self._log.info("Claimed {n} entries of {stream} left pending by another consumer",
                               n=len(entries), stream=stream)
                await self._handle(stream, entries)
            if cursor in ("0-0", "0"):
                return

    async def _handle(self, stream: str, entries: list[Any]) -> None:
        for entry in entries:
            entryId, fields = entry[0], entry[1] if len(entry) > 1 else None
            if fields is not None:
                try:
                    events = list(decodeEntry(stream, entryId, fields))
                except ValueError as error:
                    self._log.error("Skipping entry {id} of {stream}: {why}", id=entryId, stream=stream, why=str(error))
                    events = []
                for event in events:
                    if event.key in self.window:
                        self.stats.duplicates += 1
                        continue
                    result = self.handler(event)
                    if isinstance(result, Deferred):
                        await result
                    self.window.add(event.key)
                    self.stats.handled += 1
            await self._call("XACK", stream, self.group, entryId)
            self.stats.acked += 1


def _failed(failure: Failure) -> Deferred[None]:
    d: Deferred[None] = Deferred()
    d.errback(failure)
    return d
