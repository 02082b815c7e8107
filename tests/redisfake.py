"""An in-memory stand-in for a RedisLink, for tests on a Clock.

It implements the few commands the publisher sends (``XADD`` with explicit
ids and ``MAXLEN ~``, ``XINFO STREAM``) with Redis's answers and errors, and
lets a test drop the connection (with or without applying what was sent),
hold replies (``CLIENT PAUSE``), refuse writes, lose a stream's tail, or add
entries as another writer.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.internet.defer import Deferred, fail, succeed

from ctrader_twisted.redis.errors import RedisUnavailable
from ctrader_twisted.redis.streams import decodeEntry, formatId, parseId


class ResponseError(Exception):
    """What txredisapi raises for an error reply."""


class FakeLink:
    """Commands applied at once unless :attr:`paused`; replies held while paused."""

    def __init__(self) -> None:
        self.streams: dict[str, list[tuple[tuple[int, int], list[str]]]] = {}
        self.lastIds: dict[str, tuple[int, int]] = {}
        self.connected = False
        self.connections = 0
        self.paused = False
        self.held: list[tuple[tuple[Any, ...], Deferred[Any]]] = []
        self.refuseWrites: str | None = None
        self.commands: list[tuple[Any, ...]] = []
        self._ready: list[Callable[[], Any]] = []
        self._lost: list[Callable[[], Any]] = []

    def addReadyObserver(self, observer: Callable[[], Any]) -> None:
        self._ready.append(observer)

    def addLostObserver(self, observer: Callable[[], Any]) -> None:
        self._lost.append(observer)

    def connect(self) -> None:
        self.connected = True
        self.connections += 1
        for observer in list(self._ready):
            observer()

    def drop(self, applyHeld: bool = False) -> None:
        """Lose the connection; held commands are applied first when *applyHeld* (replies lost)."""
        held, self.held = self.held, []
        if applyHeld:
            for args, _ in held:
                try:
                    self.apply(args)
                except ResponseError:
                    pass
        self.connected = False
        self.paused = False
        for observer in list(self._lost):
            observer()
        for _, d in held:
            d.errback(RedisUnavailable("Lost connection"))

    def resume(self) -> None:
        """End a pause: apply the held commands in order and reply."""
        # Replies may send more commands: they queue behind the held ones, as on a socket.
        while self.held:
            args, d = self.held.pop(0)
            try:
                result = self.apply(args)
            except ResponseError as error:
                d.errback(error)
            else:
                d.callback(result)
        self.paused = False

    def execute(self, *args: Any) -> Deferred[Any]:
        if not self.connected:
            return fail(RedisUnavailable("not connected"))
        self.commands.append(args)
        if self.paused:
            d: Deferred[Any] = Deferred()
            self.held.append((args, d))
            return d
        try:
            return succeed(self.apply(args))
        except ResponseError as error:
            return fail(error)

    # --- the server ------------------------------------------------------------------

    def apply(self, args: tuple[Any, ...]) -> Any:
        name = str(args[0]).upper()
        if name == "XADD":
            return self._xadd(list(args[1:]))
        if name == "XINFO":
            key = args[2]
            if key not in self.lastIds:
                raise ResponseError("no such key")
            entries = self.streams.get(key, [])
            return ["length", len(entries), "last-generated-id", formatId(self.lastIds[key])]
        raise ResponseError(f"unknown command {name}")

    def _xadd(self, rest: list[Any]) -> str:
        key = rest.pop(0)
        if self.refuseWrites:
            raise ResponseError(self.refuseWrites)
        if rest[0] == "MAXLEN":
            rest = rest[3:]
        entryId = parseId(rest.pop(0))
        if entryId <= self.lastIds.get(key, (0, 0)):
            raise ResponseError("The ID specified in XADD is equal or smaller than the target stream top item")
        self.streams.setdefault(key, []).append((entryId, [str(v) for v in rest]))
        self.lastIds[key] = entryId
        return formatId(entryId)

    def loseTail(self, key: str, count: int) -> None:
        """Forget the last *count* entries of *key*, as a restart without AOF would."""
        entries = self.streams.get(key, [])
        del entries[len(entries) - count:]
        if entries:
            self.lastIds[key] = entries[-1][0]
        else:
            self.streams.pop(key, None)
            self.lastIds.pop(key, None)

    def keys(self, key: str) -> list[str]:
        """Every idempotency key in stream *key*, in order."""
        return [e.key for entryId, fields in self.streams.get(key, []) for e in decodeEntry(key, formatId(entryId), fields)]

    def lines(self, key: str) -> list[str]:
        return [e.line for entryId, fields in self.streams.get(key, []) for e in decodeEntry(key, formatId(entryId), fields)]
