"""Record the spots of a Redis stream to CSV, each exactly once across restarts.

Publish first (the simulator streams into Redis, no account needed)::

    ctrader-twisted stream EURUSD GBPUSD --redis redis://127.0.0.1:6379/0 --duration 60

then record, as often as you like (a restart, even after ``kill -9``, goes
on where it stopped)::

    python docs/examples/redis_recorder.py --redis redis://127.0.0.1:6379/0 --account 2000001 --csv spots.csv

The recorder is one consumer of the ``recorders`` group: run several with
different ``--consumer`` names to share the work, and a dead one's entries
are claimed by the others. Each row carries the event's idempotency key;
on start the recorder reads the keys already in the CSV, so an entry it
wrote but did not acknowledge before a crash is skipped, not written twice.
"""

from __future__ import annotations

import argparse
import csv
import os
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import react

from ctrader_twisted.redis import RedisLink, streamName
from ctrader_twisted.redis.consumer import StreamConsumer
from ctrader_twisted.redis.streams import Event

COLUMNS = ["key", "time", "symbol", "bid", "ask"]


def keysIn(path: str) -> list[str]:
    """The keys of the rows already recorded (a row cut by a crash is dropped)."""
    if not os.path.exists(path):
        return []
    with open(path, newline="", encoding="utf-8") as f:
        text = f.read()
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
        with open(path, "w", newline="", encoding="utf-8") as f:
            f.write(text)
    return [row["key"] for row in csv.DictReader(text.splitlines())]


async def record(reactor: Any, url: str, account: int, path: str, group: str, consumer: str, count: int | None) -> None:
    seen = keysIn(path)
    new = not seen and not (os.path.exists(path) and os.path.getsize(path))
    out = open(path, "a", newline="", encoding="utf-8")
    writer = csv.writer(out, lineterminator="\n")
    if new:
        writer.writerow(COLUMNS)
    done: Deferred[None] = Deferred()
    written = [0]

    def handle(event: Event) -> None:
        spot = event.data
        if spot.get("event") != "spot":
            return  # a gap marker: the recorder could note it; here it is skipped
        writer.writerow([event.key, spot["time"], spot["symbol"], spot["bid"], spot["ask"]])
        out.flush()
        written[0] += 1
        if count is not None and len(seen) + written[0] >= count and not done.called:
            done.callback(None)

    link = RedisLink(url, reactor)
    reader = StreamConsumer(link, reactor, [streamName(account, "spot")], group, consumer, handle, seen=seen)
    reader.start()
    reader.whenStopped().addErrback(lambda f: None if done.called else done.errback(f))
    try:
        await done
    finally:
        await reader.stop()
        await link.stop()
        out.close()
    print(f"{written[0]} spots recorded to {path} ({reader.stats.duplicates} duplicates skipped)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--account", type=int, default=2000001)
    parser.add_argument("--csv", default="spots.csv")
    parser.add_argument("--group", default="recorders")
    parser.add_argument("--consumer", default="recorder-1")
    parser.add_argument("--count", type=int, help="stop once the CSV holds this many spots")
    args = parser.parse_args()
    react(lambda reactor: record(reactor, args.redis, args.account, args.csv, args.group, args.consumer, args.count))


if __name__ == "__main__":
    main()
