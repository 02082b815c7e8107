# -*- test-case-name: tests.test_redis_publisher -*-
"""Publish events to Redis Streams, at least once, in order, in bounded memory.

:class:`StreamPublisher` takes events (a JSON line, its stream and its
idempotency key; :meth:`~StreamPublisher.publishEvent` works them out from a
``stream``-command event) and writes them to the streams of
:mod:`~ctrader_twisted.redis.streams`:

* **Batching.** Events of one stream are gathered into one entry, closed
  after ``maxBatchEvents`` events, ``maxBatchBytes`` bytes or
  ``flushInterval`` seconds, and given an explicit id (``<ms>-<seq>``,
  increasing per stream).
* **Pipelining.** At most ``maxInFlight`` entries wait for Redis's answer at
  once; the others queue, in order.
* **At least once, nothing duplicated.** An entry stays in the replay buffer
  until Redis acknowledged it, and acknowledged entries are kept
  ``retainSeconds`` longer (``retainBytes`` at most). After every (re)connect
  the publisher reads each stream's last id (``XINFO STREAM``): entries up to
  it that were sent are there, the rest is sent again with the same ids
  (Redis refuses an id it already has). When Redis came back with fewer
  entries than it had acknowledged (restarted without AOF, or with its tail
  lost), the retained entries after its last id are sent again, and a gap
  marker says what could not be.
* **Backpressure.** Market events (spot, bar, depth) buffered for Redis are
  capped at ``maxBacklogBytes``; past that they are coalesced to the latest
  per symbol (per bar for bars) until the backlog has drained to half, then
  a ``gap`` marker with the number dropped is published, followed by the
  latest values. Execution and account events are never dropped: they wait,
  and the ``say`` callable reports how many.
* **Retention.** ``XADD ... MAXLEN ~ <n>`` per kind (``maxlen``).

Everything runs on the injected clock; Redis is reached through a
:class:`~ctrader_twisted.redis.link.RedisLink` (or anything with its
``execute``/observer methods: the tests use an in-memory fake).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..cli.jsonlines import dumpJson, isoTime
from .errors import PublisherStopped, RedisConfigError, RedisUnavailable
from .streams import (
    DEFAULT_MAXLEN,
    DEFAULT_PREFIX,
    KINDS,
    MARKET_KINDS,
    checkNumber,
    coalesceKey,
    encodeEntry,
    eventKey,
    formatId,
    kindOf,
    parseId,
    streamName,
)

__all__ = ["StreamPublisher", "PublisherStats"]

_Id = tuple[int, int]
_QUEUED, _INFLIGHT = 0, 1


class _Batch:
    """One entry: events of one stream, its id, its state."""

    __slots__ = ("stream", "id", "fields", "size", "count", "state", "maybeApplied", "sends")

    def __init__(self, stream: _Stream, entryId: _Id, fields: list[str], size: int, count: int) -> None:
        self.stream = stream
        self.id = entryId
        self.fields = fields
        self.size = size
        self.count = count
        self.state = _QUEUED
        #: sent, and no answer says it was refused: Redis may hold it
        self.maybeApplied = False
        self.sends = 0


class _Stream:
    """What the publisher knows of one stream."""

    def __init__(self, account: int, kind: str, name: str, maxlen: int) -> None:
        self.account = account
        self.kind = kind
        self.name = name
        self.market = kind in MARKET_KINDS
        self.maxlen = maxlen
        self.keys: list[str] = []
        self.lines: list[str] = []
        self.openBytes = 0
        #: unacknowledged batches in id order (in flight first, then queued)
        self.batches: deque[_Batch] = deque()
        self.inflight = 0
        #: acknowledged batches kept for a replay after Redis lost its tail
        self.retained: deque[tuple[float, _Batch]] = deque()
        #: newest id dropped from retention (what a lost tail cannot be replayed past)
        self.forgotten: _Id = (0, 0)
        self.acked: _Id = (0, 0)
        self.last: _Id = (0, 0)
        self.synced = False
        self.syncing = False
        #: bumped whenever what is in flight is given up on: older sync replies are ignored
        self.epoch = 0
        #: refused lately: wait for the retry timer before syncing again
        self.blocked = False
        self.recent: dict[str, int] = {}
        self.coalesced: dict[Any, tuple[str, str]] = {}
        self.dropped: dict[Any, int] = {}
        self.droppedSince: str | None = None
        self.lostEntries: list[tuple[str, str]] = []


@dataclass
class PublisherStats:
    """Counters of a :class:`StreamPublisher` (events unless said otherwise)."""

    published: int = 0
    acked: int = 0
    entriesAcked: int = 0
    #: market events dropped while coalescing (a gap marker counts them)
    dropped: int = 0
    gaps: int = 0
    #: entries sent again after a reconnect or a lost tail
    resent: int = 0
    reconnects: int = 0
    #: the largest :attr:`StreamPublisher.bufferedBytes` seen
    maxBufferedBytes: int = 0
    ackedByKind: dict[str, int] = field(default_factory=lambda: {kind: 0 for kind in KINDS})


class StreamPublisher:
    """Publish events to the per-account streams (see the module docstring).

    :param link: the Redis link (started by the caller or by :meth:`start`).
    :param clock: time source (``reactor``, or a ``task.Clock`` in tests).
    :param prefix: first part of every stream name.
    :param flushInterval: seconds an event may wait for its batch to close.
    :param maxBatchEvents: events per entry at most.
    :param maxBatchBytes: bytes of JSON per entry at most (roughly).
    :param maxInFlight: entries sent and not yet answered, at most.
    :param maxBacklogBytes: market events buffered for Redis before coalescing.
    :param retainSeconds: how long acknowledged entries are kept for a replay.
    :param retainBytes: how many bytes of acknowledged entries are kept, at most.
    :param maxlen: ``MAXLEN ~`` per kind in entries (0: no trimming); kinds
        not given keep :data:`~ctrader_twisted.redis.streams.DEFAULT_MAXLEN`.
    :param statusInterval: seconds between status lines while degraded.
    :param say: called with one-line status messages for the user.
    """

    _log = Logger()

    def __init__(
        self,
        link: Any,
        clock: IReactorTime,
        *,
        prefix: str = DEFAULT_PREFIX,
        flushInterval: float = 0.002,
        maxBatchEvents: int = 1000,
        maxBatchBytes: int = 512 * 1024,
        maxInFlight: int = 8,
        maxBacklogBytes: int = 32 * 2**20,
        retainSeconds: float = 2.0,
        retainBytes: int = 16 * 2**20,
        maxlen: Mapping[str, int] | None = None,
        statusInterval: float = 10.0,
        say: Callable[[str], Any] | None = None,
    ) -> None:
        if not isinstance(prefix, str) or not prefix or any(c in prefix for c in "{}\n "):
            raise RedisConfigError(f"prefix must be a non-empty name without braces or spaces, got {prefix!r}")
        self.flushInterval = checkNumber("flushInterval", flushInterval)
        self.maxBatchEvents = checkNumber("maxBatchEvents", maxBatchEvents, integer=True)
        self.maxBatchBytes = checkNumber("maxBatchBytes", maxBatchBytes, integer=True)
        self.maxInFlight = checkNumber("maxInFlight", maxInFlight, integer=True)
        self.maxBacklogBytes = checkNumber("maxBacklogBytes", maxBacklogBytes, integer=True)
        self.retainSeconds = checkNumber("retainSeconds", retainSeconds, allowZero=True)
        self.retainBytes = checkNumber("retainBytes", retainBytes, integer=True, allowZero=True)
        self.statusInterval = checkNumber("statusInterval", statusInterval)
        self.maxlen = dict(DEFAULT_MAXLEN)
        for kind, value in (maxlen or {}).items():
            if kind not in KINDS:
                raise RedisConfigError(f"maxlen: unknown kind {kind!r} (kinds: {', '.join(KINDS)})")
            self.maxlen[kind] = checkNumber(f"maxlen[{kind}]", value, integer=True, allowZero=True)
        self.link = link
        self.clock = clock
        self.prefix = prefix
        self.say: Callable[[str], Any] = say or (lambda text: None)
        self.stats = PublisherStats()
        self._streams: dict[tuple[int, str], _Stream] = {}
        self._active: deque[_Stream] = deque()
        self._inflight = 0
        self._marketBytes = 0
        self._otherBytes = 0
        self._retainedBytes = 0
        self._openEvents = 0
        self._unackedEvents = {True: 0, False: 0}
        self._coalescing = False
        self._flushCall: IDelayedCall | None = None
        self._retryCall: IDelayedCall | None = None
        self._statusCall: IDelayedCall | None = None
        self._drained: list[Deferred[None]] = []
        self._stopped = False
        self._degradedSaid = False
        link.addReadyObserver(self._linkReady)
        link.addLostObserver(self._linkLost)

    # --- public ------------------------------------------------------------------------

    def __repr__(self) -> str:
        return (f"<StreamPublisher {len(self._streams)} streams, {self.pendingEvents} events pending, "
                f"{'coalescing' if self._coalescing else 'flowing'}>")

    @property
    def bufferedBytes(self) -> int:
        """Bytes of events held for Redis: open batches, unacknowledged and retained entries."""
        return self._marketBytes + self._otherBytes + self._retainedBytes

    @property
    def pendingEvents(self) -> int:
        """Events not yet acknowledged by Redis (coalesced ones not counted)."""
        return self._openEvents + self._unackedEvents[True] + self._unackedEvents[False]

    @property
    def waitingCritical(self) -> int:
        """Execution and account events not yet acknowledged."""
        return sum(len(s.keys) for s in self._streams.values() if not s.market) + self._unackedEvents[False]

    @property
    def coalescing(self) -> bool:
        """Whether market events are being coalesced now."""
        return self._coalescing

    def streamNameOf(self, account: int, kind: str) -> str:
        """The name of the stream of *kind* events of *account*."""
        return streamName(account, kind, self.prefix)

    def publishEvent(self, event: Mapping[str, Any], line: str | None = None) -> None:
        """Publish a ``stream``-command event (a dict with ``event`` and ``account``).

        :param line: its JSON line when already made (``dumpJson(event)`` otherwise).
        """
        self.publish(int(event["account"]), kindOf(event), eventKey(event), line if line is not None else dumpJson(event),
                     coalesceKey(event))

    def publish(self, account: int, kind: str, key: str, line: str, coalesce: Any = None) -> None:
        """Publish one event.

        :param account: the account it belongs to (its stream's name).
        :param kind: one of :data:`~ctrader_twisted.redis.streams.KINDS`.
        :param key: its idempotency key (made unique within a millisecond here).
        :param line: its JSON line (no newline in it).
        :param coalesce: for market kinds, what a later event supersedes (the
            symbol id; ``None``: the stream as a whole).
        :raises PublisherStopped: after :meth:`stop`.
        :raises RedisConfigError: an unknown kind.
        """
        if self._stopped:
            raise PublisherStopped("the publisher is stopped")
        stream = self._streams.get((account, kind))
        if stream is None:
            stream = self._stream(account, kind)
        self.stats.published += 1
        if stream.market and self._coalescing:
            self._coalesce(stream, key, line, coalesce)
            return
        self._append(stream, key, line)

    def whenDrained(self) -> Deferred[None]:
        """A Deferred firing once every event published so far is acknowledged
        (batches are closed at once), or failing with :class:`~ctrader_twisted.redis.errors.PublisherStopped`."""
        self._closeAll()
        self._pump()
        if self._isDrained():
            return succeed(None)
        d: Deferred[None] = Deferred(lambda d: self._drained.remove(d) if d in self._drained else None)
        self._drained.append(d)
        return d

    def stop(self, timeout: float = 5.0) -> Deferred[int]:
        """Stop accepting events, try for *timeout* seconds to deliver what is
        pending, then give up on it.

        :returns: a Deferred firing with the number of events not delivered.
        """
        checkNumber("timeout", timeout, allowZero=True)
        if self._stopped:
            return succeed(self.pendingEvents)
        drained = self.whenDrained()
        timer = self.clock.callLater(timeout, drained.cancel)
        result: Deferred[int] = Deferred()

        def done(outcome: Any) -> None:
            if timer.active():
                timer.cancel()
            self._stopped = True
            left = self.pendingEvents
            for call in (self._flushCall, self._retryCall, self._statusCall):
                if call is not None and call.active():
                    call.cancel()
            waiting, self._drained = self._drained, []
            for d in waiting:
                d.errback(PublisherStopped(f"the publisher stopped with {left} events undelivered"))
            if left:
                self._log.warn("Publisher stopped with {n} events not acknowledged by Redis", n=left)
            result.callback(left)

        drained.addBoth(done)
        return result

    # --- taking events ---------------------------------------------------------------------

    def _stream(self, account: int, kind: str) -> _Stream:
        if kind not in KINDS:
            raise RedisConfigError(f"unknown stream kind {kind!r} (kinds: {', '.join(KINDS)})")
        stream = _Stream(account, kind, streamName(account, kind, self.prefix), self.maxlen[kind])
        self._streams[(account, kind)] = stream
        return stream

    def _append(self, stream: _Stream, key: str, line: str) -> None:
        recent = stream.recent
        seen = recent.get(key)
        if seen is None:
            recent[key] = 1
            if len(recent) > 4096:
                for old in list(recent)[:2048]:
                    del recent[old]
        else:
            recent[key] = seen + 1
            key = f"{key}#{seen + 1}"
        stream.keys.append(key)
        stream.lines.append(line)
        size = len(line) + len(key) + 2
        stream.openBytes += size
        self._openEvents += 1
        if stream.market:
            self._marketBytes += size
        else:
            self._otherBytes += size
        if len(stream.keys) >= self.maxBatchEvents or stream.openBytes >= self.maxBatchBytes:
            self._close(stream)
            self._pump()
        elif self._flushCall is None:
            self._flushCall = self.clock.callLater(self.flushInterval, self._flush)
        if stream.market and not self._coalescing and self._marketBytes >= self.maxBacklogBytes:
            self._startCoalescing()
        buffered = self._marketBytes + self._otherBytes + self._retainedBytes
        if buffered > self.stats.maxBufferedBytes:
            self.stats.maxBufferedBytes = buffered

    def _coalesce(self, stream: _Stream, key: str, line: str, coalesce: Any) -> None:
        if stream.droppedSince is None:
            stream.droppedSince = isoTime(int(self.clock.seconds() * 1000))
        if stream.coalesced.pop(coalesce, None) is not None:  # re-inserted: kept in order of last update
            stream.dropped[coalesce] = stream.dropped.get(coalesce, 0) + 1
            self.stats.dropped += 1
        stream.coalesced[coalesce] = (key, line)

    def _startCoalescing(self) -> None:
        self._coalescing = True
        self._log.warn("Redis backlog full ({n} bytes of market events): coalescing spots and depth", n=self._marketBytes)
        self.say(f"Redis is slow or gone: market events coalesced to the latest per symbol "
                 f"({self._marketBytes} bytes waiting); execution events kept")
        self._scheduleStatus()

    def _maybeStopCoalescing(self) -> None:
        if not self._coalescing or not self.link.connected or self._marketBytes > self.maxBacklogBytes // 2:
            return
        self._coalescing = False
        dropped = 0
        now = isoTime(int(self.clock.seconds() * 1000))
        for stream in list(self._streams.values()):
            if not stream.coalesced:
                continue
            total = sum(stream.dropped.values())
            dropped += total
            if total:
                marker = {
                    "event": "gap",
                    "time": now,
                    "account": stream.account,
                    "kind": stream.kind,
                    "reason": "backpressure",
                    "since": stream.droppedSince,
                    "dropped": total,
                    "symbols": {_label(k): n for k, n in stream.dropped.items()},
                }
                self._append(stream, eventKey(marker), dumpJson(marker))
                self.stats.gaps += 1
            for key, line in stream.coalesced.values():
                self._append(stream, key, line)
            stream.coalesced = {}
            stream.dropped = {}
            stream.droppedSince = None
        self._log.info("Redis backlog drained: {n} market events were coalesced away", n=dropped)
        self.say(f"Redis keeps up again: {dropped} market events were coalesced away (gap markers published)")

    # --- batches ---------------------------------------------------------------------------

    def _flush(self) -> None:
        self._flushCall = None
        self._closeAll()
        self._pump()

    def _closeAll(self) -> None:
        for stream in self._streams.values():
            if stream.keys:
                self._close(stream)

    def _nextId(self, stream: _Stream, floor: _Id | None = None) -> _Id:
        last = stream.last if floor is None or floor < stream.last else floor
        ms = int(self.clock.seconds() * 1000)
        entryId = (ms, 0) if ms > last[0] else (last[0], last[1] + 1)
        stream.last = entryId
        return entryId

    def _close(self, stream: _Stream) -> None:
        keys, lines = stream.keys, stream.lines
        batch = _Batch(stream, self._nextId(stream), encodeEntry(keys, lines), stream.openBytes, len(keys))
        stream.keys, stream.lines, stream.openBytes = [], [], 0
        self._openEvents -= batch.count
        self._unackedEvents[stream.market] += batch.count
        stream.batches.append(batch)
        if stream.synced and stream not in self._active:
            self._active.append(stream)
        if not self.link.connected and not self._stopped:
            self._scheduleStatus()  # never connected yet: say what waits

    def _pump(self) -> None:
        if self._stopped or not self.link.connected:
            return
        active = self._active
        for stream in [s for s in self._streams.values() if not (s.synced or s.syncing or s.blocked) and s.batches]:
            self._sync(stream)
        while active and self._inflight < self.maxInFlight:
            stream = active.popleft()
            if not stream.synced or stream.inflight >= len(stream.batches):
                continue
            batch = stream.batches[stream.inflight]
            stream.inflight += 1
            self._send(batch)
            if stream.inflight < len(stream.batches):
                active.append(stream)

    def _send(self, batch: _Batch) -> None:
        stream = batch.stream
        batch.state = _INFLIGHT
        batch.maybeApplied = True
        batch.sends += 1
        if batch.sends > 1:
            self.stats.resent += 1
        self._inflight += 1
        args: list[Any] = ["XADD", stream.name]
        if stream.maxlen:
            args += ["MAXLEN", "~", stream.maxlen]
        args.append(formatId(batch.id))
        args += batch.fields
        connection = self.link.connections
        self.link.execute(*args).addCallbacks(self._added, self._refused, (batch, connection), None, (batch, connection))

    def _added(self, reply: Any, batch: _Batch, connection: int) -> None:
        if connection != self.link.connections or batch.state != _INFLIGHT:
            return  # the stream was resynchronized since: the sync decided
        self._inflight -= 1
        self._acknowledge(batch)
        self._afterReply()

    def _refused(self, failure: Failure, batch: _Batch, connection: int) -> None:
        if connection != self.link.connections or batch.state != _INFLIGHT:
            return  # the stream was resynchronized since: the sync decided
        stream = batch.stream
        self._unsync(stream)
        stream.blocked = True
        message = failure.getErrorMessage()
        if failure.check(RedisUnavailable):
            pass  # outcome unknown (maybeApplied stays): the next sync decides
        elif "equal or smaller" in message and batch.sends > 1:
            # Sent before on a lost connection, and applied then.
            self._acknowledge(batch)
        else:
            # Redis refused it: not applied.
            batch.maybeApplied = False
            if "equal or smaller" in message:
                self._log.warn("Redis refused entry {id} of {stream} (another writer?): resynchronizing",
                               id=formatId(batch.id), stream=stream.name)
            else:
                self._log.warn("Redis refused an entry of {stream}: {why}; retrying", stream=stream.name, why=message)
                if not self._degradedSaid:
                    self._degradedSaid = True
                    self.say(f"Redis refuses writes ({message.splitlines()[0][:200]}); events wait and are retried")
                    self._scheduleStatus()
        if self._retryCall is None:
            self._retryCall = self.clock.callLater(0.5, self._retry)
        self._afterReply()

    def _retry(self) -> None:
        self._retryCall = None
        for stream in self._streams.values():
            stream.blocked = False
        self._pump()

    def _unsync(self, stream: _Stream) -> None:
        """Forget what is in flight on *stream* (replies to it are ignored from
        now on) until the next sync says what Redis holds."""
        stream.synced = False
        stream.syncing = False
        stream.epoch += 1
        for batch in stream.batches:
            if batch.state == _INFLIGHT:
                batch.state = _QUEUED
                self._inflight -= 1
        stream.inflight = 0

    def _acknowledge(self, batch: _Batch, remove: bool = True) -> None:
        stream = batch.stream
        if remove:
            try:
                stream.batches.remove(batch)
            except ValueError:
                return
            if batch.state == _INFLIGHT:
                stream.inflight -= 1
        batch.state = _QUEUED
        batch.maybeApplied = True
        self._unackedEvents[stream.market] -= batch.count
        if stream.market:
            self._marketBytes -= batch.size
        else:
            self._otherBytes -= batch.size
        if batch.id > stream.acked:
            stream.acked = batch.id
        self.stats.acked += batch.count
        self.stats.entriesAcked += 1
        self.stats.ackedByKind[stream.kind] += batch.count
        if self.retainSeconds and self.retainBytes:
            stream.retained.append((self.clock.seconds(), batch))
            self._retainedBytes += batch.size
        else:
            stream.forgotten = max(stream.forgotten, batch.id)

    def _afterReply(self) -> None:
        self._expire()
        self._maybeStopCoalescing()
        if self._degradedSaid and self.link.connected and self._marketBytes + self._otherBytes < self.maxBacklogBytes:
            self._degradedSaid = False
        self._pump()
        if self._drained and self._isDrained():
            waiting, self._drained = self._drained, []
            for d in waiting:
                d.callback(None)

    def _expire(self) -> None:
        if not self._retainedBytes:
            return
        horizon = self.clock.seconds() - self.retainSeconds
        for stream in self._streams.values():
            retained = stream.retained
            while retained and (retained[0][0] < horizon or self._retainedBytes > self.retainBytes):
                _, old = retained.popleft()
                self._retainedBytes -= old.size
                stream.forgotten = max(stream.forgotten, old.id)

    def _isDrained(self) -> bool:
        return not self.pendingEvents and not any(s.coalesced for s in self._streams.values())

    # --- the link --------------------------------------------------------------------------

    def start(self) -> None:
        """Start the link (if it is a :class:`~ctrader_twisted.redis.link.RedisLink` not started)."""
        start = getattr(self.link, "start", None)
        if start is not None:
            start()

    def _linkLost(self) -> None:
        self._active.clear()
        for stream in self._streams.values():
            self._unsync(stream)
        self.stats.reconnects += 1
        if not self._stopped:
            self._scheduleStatus()

    def _linkReady(self) -> None:
        if self._stopped:
            return
        for stream in self._streams.values():
            if not stream.synced and not stream.syncing and (stream.batches or stream.retained):
                self._sync(stream)

    def _sync(self, stream: _Stream) -> None:
        """Read the stream's last id and decide which batches are there."""
        stream.syncing = True
        connection, epoch = self.link.connections, stream.epoch

        def got(reply: Any) -> None:
            if connection != self.link.connections or epoch != stream.epoch:
                return
            stream.syncing = False
            self._synced(stream, _lastGeneratedId(reply))

        def failed(failure: Failure) -> None:
            if connection != self.link.connections or epoch != stream.epoch:
                return
            stream.syncing = False
            if "no such key" in failure.getErrorMessage():
                self._synced(stream, (0, 0))
            elif not failure.check(RedisUnavailable):
                self._log.warn("Cannot read the last id of {stream}: {why}; retrying", stream=stream.name,
                               why=failure.getErrorMessage())
                stream.blocked = True
                if self._retryCall is None:
                    self._retryCall = self.clock.callLater(0.5, self._retry)

        self.link.execute("XINFO", "STREAM", stream.name).addCallbacks(got, failed)

    def _synced(self, stream: _Stream, top: _Id) -> None:
        # A tail lost by Redis: what it had acknowledged past `top` comes back.
        if top < stream.acked:
            lost = [b for _, b in stream.retained if b.id > top]
            if lost:
                self._log.warn("Redis lost {n} acknowledged entries of {stream} (its last id is {top}): sending them again",
                               n=len(lost), stream=stream.name, top=formatId(top))
                self.say(f"Redis lost the tail of {stream.name} (last id {formatId(top)}): re-sending {len(lost)} entries")
            kept = deque((t, b) for t, b in stream.retained if b.id <= top)
            for batch in lost:
                self._retainedBytes -= batch.size
                self.stats.acked -= batch.count
                self.stats.entriesAcked -= 1
                self.stats.ackedByKind[stream.kind] -= batch.count
                batch.maybeApplied = False
                self._unackedEvents[stream.market] += batch.count
                if stream.market:
                    self._marketBytes += batch.size
                else:
                    self._otherBytes += batch.size
            stream.retained = kept
            stream.batches = deque(lost + list(stream.batches))
            if stream.forgotten > top:
                self._lostForGood(stream, top)
            stream.acked = top
        floor = top
        keep: deque[_Batch] = deque()
        for batch in stream.batches:
            if batch.id <= top and batch.maybeApplied:
                self._acknowledge(batch, remove=False)
                continue
            if batch.id <= floor:
                batch.id = self._nextId(stream, floor)
                batch.maybeApplied = False
            floor = batch.id
            keep.append(batch)
        stream.batches = keep
        if floor > stream.last:
            stream.last = floor
        stream.inflight = 0
        stream.synced = True
        if keep and stream not in self._active:
            self._active.append(stream)
        self._afterReply()

    def _lostForGood(self, stream: _Stream, top: _Id) -> None:
        marker = {
            "event": "gap",
            "time": isoTime(int(self.clock.seconds() * 1000)),
            "account": stream.account,
            "kind": stream.kind,
            "reason": "redis lost acknowledged entries no longer retained",
            "since": formatId(top),
            "until": formatId(stream.forgotten),
            "dropped": None,
        }
        self._log.error("Redis lost entries of {stream} after {top} that are no longer retained (up to {until})",
                        stream=stream.name, top=formatId(top), until=formatId(stream.forgotten))
        self.say(f"Redis lost entries of {stream.name} after {formatId(top)} that can no longer be re-sent: gap marker published")
        self.stats.gaps += 1
        stream.forgotten = top
        self._append(stream, eventKey(marker), dumpJson(marker))

    # --- status ----------------------------------------------------------------------------

    def _scheduleStatus(self) -> None:
        if self._statusCall is None or not self._statusCall.active():
            self._statusCall = self.clock.callLater(self.statusInterval, self._status)

    def _status(self) -> None:
        self._statusCall = None
        if self._stopped:
            return
        waiting = self.waitingCritical
        if not self.link.connected:
            self.say(f"Redis unreachable: {waiting} execution/account events waiting (never dropped)"
                     + (f"; {self.stats.dropped} market events coalesced away so far" if self._coalescing else ""))
        elif self._coalescing or waiting > 0 and self._degradedSaid:
            self.say(f"Redis is behind: {waiting} execution/account events waiting; "
                     f"{self.stats.dropped} market events coalesced away so far")
        else:
            return
        self._scheduleStatus()


def _label(coalesce: Any) -> str:
    if isinstance(coalesce, tuple):
        return "/".join(str(part) for part in coalesce)
    return str(coalesce)


def _lastGeneratedId(reply: Any) -> _Id:
    """``last-generated-id`` from an ``XINFO STREAM`` reply (a flat list, or a dict)."""
    if isinstance(reply, dict):
        value = reply.get("last-generated-id")
    else:
        items = list(reply or ())
        value = dict(zip(items[0::2], items[1::2])).get("last-generated-id")
    if value is None:
        raise ValueError(f"XINFO STREAM gave no last-generated-id: {reply!r}")
    return parseId(str(value))
