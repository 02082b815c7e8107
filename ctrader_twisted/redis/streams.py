# -*- test-case-name: tests.test_redis_streams -*-
"""The stream layout: names, entry format, ids and idempotency keys.

Streams are named per account and kind::

    ctrader:{<account>}:spot      spot prices
    ctrader:{<account>}:bar       live trend bars
    ctrader:{<account>}:depth     depth-of-market quotes
    ctrader:{<account>}:exec      execution events and order errors (never dropped)
    ctrader:{<account>}:account   account events: leases taken and given up, accounts dropped

The braces are a Redis Cluster hash tag: every key of one account lands on
one slot. The prefix (``ctrader``) is configurable.

One stream **entry** is a batch of events of one stream, in order, with the
fields

``v``
    format version, ``1``;
``n``
    number of events;
``k``
    their idempotency keys, one per line;
``e``
    their JSON lines (the ``stream`` command's format), one per line.

Entry ids are explicit (``<milliseconds>-<sequence>``, strictly increasing
per stream) so that a batch re-sent after a reconnect is refused by Redis if
it already has it.

An **idempotency key** names an event by account, kind and natural id, the
same whoever publishes it and however often: ``<account>:spot:<symbolId>:<time>``,
``<account>:bar:<symbolId>:<period>:<barTime>:<time>``,
``<account>:depth:<symbolId>:<time>``, ``<account>:exec:deal:<dealId>`` (an
execution with a deal), ``<account>:exec:order:<orderId>:<type>:<time>``,
``<account>:exec:position:<positionId>:<type>:<time>``,
``<account>:exec:error:<orderId>:<errorCode>:<time>``,
``<account>:account:<event>:<time>``. A second event with the same key in
one stream within one millisecond gets ``#2``, ``#3``... appended.

A **gap marker** is an event ``{"event":"gap", ...}`` in the stream where
events were dropped (coalesced while Redis was slow or gone), published when
the link recovers, before the latest value of each symbol: it says how many
events were dropped in all and per symbol, and since when.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

from .errors import RedisConfigError

__all__ = [
    "KINDS",
    "MARKET_KINDS",
    "DEFAULT_PREFIX",
    "DEFAULT_MAXLEN",
    "streamName",
    "kindOf",
    "eventKey",
    "coalesceKey",
    "encodeEntry",
    "decodeEntry",
    "Event",
    "parseId",
    "formatId",
    "checkNumber",
    "parseMaxlen",
]

#: The kinds of stream, in the order of the layout.
KINDS = ("spot", "bar", "depth", "exec", "account")
#: Kinds whose events may be coalesced (latest per symbol) under backpressure.
MARKET_KINDS = frozenset({"spot", "bar", "depth"})
DEFAULT_PREFIX = "ctrader"
#: ``MAXLEN ~`` per kind, in entries (each entry holds up to a batch of events).
DEFAULT_MAXLEN: Mapping[str, int] = {"spot": 10_000, "bar": 10_000, "depth": 10_000, "exec": 1_000_000,
                                     "account": 100_000}

_KIND_OF_EVENT = {"spot": "spot", "trendbar": "bar", "depth": "depth", "execution": "exec", "order_error": "exec"}


def streamName(account: int, kind: str, prefix: str = DEFAULT_PREFIX) -> str:
    """``<prefix>:{<account>}:<kind>``."""
    return f"{prefix}:{{{account}}}:{kind}"


def kindOf(event: Mapping[str, Any]) -> str:
    """The stream kind of a JSON-line event (``spot``, ``trendbar`` -> ``bar``...; anything else ``account``)."""
    kind = _KIND_OF_EVENT.get(event.get("event", ""))
    if kind is not None:
        return kind
    given = event.get("kind")
    return given if event.get("event") == "gap" and given in KINDS else "account"


def eventKey(event: Mapping[str, Any]) -> str:
    """The idempotency key of a JSON-line event (see the module docstring)."""
    account = event.get("account")
    name = event.get("event")
    time = event.get("time")
    if name == "spot":
        return f"{account}:spot:{event.get('symbolId')}:{time}"
    if name == "trendbar":
        return f"{account}:bar:{event.get('symbolId')}:{event.get('period')}:{event.get('barTime')}:{time}"
    if name == "depth":
        return f"{account}:depth:{event.get('symbolId')}:{time}"
    if name == "execution":
        if event.get("dealId") is not None:
            return f"{account}:exec:deal:{event['dealId']}"
        if event.get("orderId") is not None:
            return f"{account}:exec:order:{event['orderId']}:{event.get('type')}:{time}"
        return f"{account}:exec:position:{event.get('positionId')}:{event.get('type')}:{time}"
    if name == "order_error":
        ref = event.get("orderId", event.get("positionId"))
        return f"{account}:exec:error:{ref}:{event.get('errorCode')}:{time}"
    if name == "gap":
        return f"{account}:{event.get('kind')}:gap:{event.get('since')}:{time}"
    return f"{account}:account:{name}:{time}"


def coalesceKey(event: Mapping[str, Any]) -> Any:
    """What a market event supersedes when coalesced: the previous one of the
    same symbol (spots, depth) or of the same bar (symbol, period, bar time)."""
    if event.get("event") == "trendbar":
        return (event.get("symbolId"), event.get("period"), event.get("barTime"))
    return event.get("symbolId")


def encodeEntry(keys: list[str], lines: list[str]) -> list[str]:
    """The field/value list of one entry holding *lines* (JSON lines without newlines)."""
    return ["v", "1", "n", str(len(lines)), "k", "\n".join(keys), "e", "\n".join(lines)]


@dataclass(frozen=True)
class Event:
    """One event read from a stream.

    :ivar stream: the stream's name.
    :ivar entryId: the id of the entry holding it.
    :ivar index: its place in the entry (0-based).
    :ivar key: its idempotency key.
    :ivar line: its JSON line.
    """

    stream: str
    entryId: str
    index: int
    key: str
    line: str

    @property
    def data(self) -> dict[str, Any]:
        """The JSON line, parsed (prices as ``Decimal``: exact)."""
        from decimal import Decimal

        value: dict[str, Any] = json.loads(self.line, parse_float=Decimal)
        return value


def decodeEntry(stream: str, entryId: str, fields: Any) -> Iterator[Event]:
    """The events of one entry (fields as Redis returns them: a flat list or a dict).

    :raises ValueError: not an entry of this format.
    """
    if isinstance(fields, dict):
        values = fields
    else:
        items = list(fields or ())
        values = dict(zip(items[0::2], items[1::2]))
    if values.get("v") != "1":
        raise ValueError(f"entry {entryId} of {stream} is not a ctrader-twisted batch (v={values.get('v')!r})")
    keys = str(values.get("k", "")).split("\n")
    lines = str(values.get("e", "")).split("\n")
    count = int(values.get("n", -1))
    if count != len(keys) or count != len(lines):
        raise ValueError(f"entry {entryId} of {stream} says {count} events but holds {len(keys)} keys, {len(lines)} lines")
    for index, (key, line) in enumerate(zip(keys, lines)):
        yield Event(stream, entryId, index, key, line)


def parseId(entryId: str) -> tuple[int, int]:
    """``"1790000000123-4"`` as ``(1790000000123, 4)``."""
    ms, _, seq = str(entryId).partition("-")
    return int(ms), int(seq or 0)


def formatId(entryId: tuple[int, int]) -> str:
    """``(1790000000123, 4)`` as ``"1790000000123-4"``."""
    return f"{entryId[0]}-{entryId[1]}"


def checkNumber(name: str, value: Any, *, minimum: float = 0.0, integer: bool = False, allowZero: bool = False,
                allowNone: bool = False) -> Any:
    """Check a number from a user: finite, not negative, above *minimum*.

    :raises RedisConfigError: one line naming *name*.
    """
    if value is None and allowNone:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RedisConfigError(f"{name} must be a number, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise RedisConfigError(f"{name} must be finite, got {value!r}")
    if integer and not isinstance(value, int):
        if not float(value).is_integer():
            raise RedisConfigError(f"{name} must be an integer, got {value!r}")
        value = int(value)
    if value < 0 or (value == 0 and not allowZero) or value < minimum:
        bound = f"at least {minimum:g}" if minimum > 0 else ("0 or more" if allowZero else "positive")
        raise RedisConfigError(f"{name} must be {bound}, got {value!r}")
    return value


def parseMaxlen(text: str) -> dict[str, int]:
    """``spot=100000,exec=0`` as a per-kind ``MAXLEN ~`` (0: no trimming).

    :raises RedisConfigError: unknown kind or a bad number.
    """
    result: dict[str, int] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        kind, sep, number = part.partition("=")
        kind = kind.strip()
        if not sep or kind not in KINDS:
            raise RedisConfigError(f"--redis-maxlen: expected KIND=ENTRIES with KIND one of {', '.join(KINDS)}, got {part!r}")
        try:
            value = int(number)
        except ValueError:
            raise RedisConfigError(f"--redis-maxlen: {kind} must be a whole number of entries, got {number.strip()!r}") from None
        if value < 0:
            raise RedisConfigError(f"--redis-maxlen: {kind} must be 0 (no trimming) or more, got {value}")
        result[kind] = value
    return result
