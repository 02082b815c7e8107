"""Publisher throughput into a local Redis: ``python -m bench.redis_publish``.

One :class:`~ctrader_twisted.redis.StreamPublisher` publishes pre-formatted
spot JSON lines (10 symbols of one account, the ``stream`` command's format)
into a fresh ``redis-server`` on loopback (AOF on, ``appendfsync everysec``,
its own data directory; :class:`~ctrader_twisted.redis.server.RedisServer`),
as fast as it takes them without coalescing: the producer hands over 5,000
events per reactor turn and waits a turn whenever more than 8 MiB are
buffered. The figure is events acknowledged by Redis per second of wall
time, from the first event to the last acknowledgement (with ``--consume``:
events read back by a :class:`~ctrader_twisted.redis.consumer.StreamConsumer`
per second; with ``--formatted``: decoded ``ProtoOASpotEvent`` messages
going through the ``stream`` service's formatter first). Every run checks
that nothing was coalesced and that Redis holds every event. Each round
gets a new server and a new publisher; the median and the spread are
printed, and the JSON result goes to stdout with ``--json``.

This measures the publisher and the Redis server on one machine (they share
its cores), not the formatting of events from the Open API (the ``stream``
path formats each event first; see ``docs/benchmarks.rst``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench.common import cpuSeconds, peakRssBytes  # noqa: E402

LINE = ('{{"event":"spot","time":"2026-01-05T10:15:{s:02d}.{ms:03d}Z","account":2000001,"symbol":"SYM{sym}",'
        '"symbolId":{sym},"bid":1.{bid:05d},"ask":1.{ask:05d},"simulated":true}}')


def lines(count: int = 10_000) -> list[tuple[str, str, int]]:
    """(key, line, symbolId) of *count* distinct spot events."""
    out = []
    for i in range(count):
        sym = i % 10 + 1
        s, ms = divmod(i // 10, 1000)
        text = LINE.format(s=s % 60, ms=ms, sym=sym, bid=8000 + i % 97, ask=8002 + i % 97)
        out.append((f"2000001:spot:{sym}:{i}", text, sym))
    return out


def formattedPool(count: int = 10_000) -> list[Any]:
    """*count* ``ProtoOASpotEvent`` messages and a formatter, for the ``--formatted`` mode."""
    from ctrader_twisted.messages.OpenApiMessages_pb2 import ProtoOASpotEvent

    return [ProtoOASpotEvent(ctidTraderAccountId=2000001, symbolId=i % 10 + 1, bid=108000 + i % 97, ask=108002 + i % 97,
                             timestamp=1_790_000_000_000 + i) for i in range(count)]


def oneRun(events: int, binary: str | None, maxInFlight: int, batch: int, formatted: bool = False,
           consume: bool = False) -> dict[str, Any]:
    """One round in this process; returns its figures."""
    from twisted.internet import reactor
    from twisted.internet.defer import ensureDeferred
    from twisted.internet.task import deferLater

    from ctrader_twisted.redis import RedisLink, StreamPublisher
    from ctrader_twisted.redis.server import RedisServer

    directory = tempfile.mkdtemp(prefix="bench-redis-")
    server = RedisServer(directory, binary=binary)
    server.start()
    result: dict[str, Any] = {}
    pool: list[Any] = formattedPool() if formatted else lines()

    async def go() -> None:
        link = RedisLink(server.url, reactor)
        publisher = StreamPublisher(link, reactor, maxInFlight=maxInFlight, maxBatchEvents=batch, maxlen={"spot": 0})
        link.start()
        await link.whenConnected()
        from ctrader_twisted.cli.jsonlines import EventFormatter, SymbolInfo, dumpJson

        formatter = EventFormatter({2000001: {i: SymbolInfo(i, f"SYM{i}", 5) for i in range(1, 11)}}, True, lambda: 0)
        cpu0, t0 = cpuSeconds(), time.perf_counter()
        sent = 0
        n = len(pool)
        while sent < events:
            for i in range(sent, min(sent + 5000, events)):
                if formatted:
                    # The stream service's path: format the decoded event, dump it, publish it.
                    for line in formatter.spot(pool[i % n]):
                        publisher.publishEvent(line, dumpJson(line))
                    continue
                key, text, sym = pool[i % n]
                publisher.publish(2000001, "spot", f"{key}:{i}", text, sym)
            sent = min(sent + 5000, events)
            await deferLater(reactor, 0, lambda: None)
            while publisher.bufferedBytes - publisher._retainedBytes > 8 * 2**20:
                await deferLater(reactor, 0.0005, lambda: None)
        await publisher.whenDrained()
        wall, cpu = time.perf_counter() - t0, cpuSeconds() - cpu0
        if consume:
            # The figure is then the reading: a consumer group reads every event back.
            from ctrader_twisted.redis.consumer import StreamConsumer

            reading = RedisLink(server.url, reactor)
            done: list[int] = [0]
            cpu0, t0 = cpuSeconds(), time.perf_counter()
            consumer = StreamConsumer(reading, reactor, ["ctrader:{2000001}:spot"], "bench", "c1",
                                      lambda e: done.__setitem__(0, done[0] + 1), count=10, dedupeWindow=10_000)
            consumer.start()
            while done[0] < events:
                await deferLater(reactor, 0.01, lambda: None)
            wall, cpu = time.perf_counter() - t0, cpuSeconds() - cpu0
            await consumer.stop()
            await reading.stop()
        info = await link.execute("XINFO", "STREAM", "ctrader:{2000001}:spot")
        fields = dict(zip(info[0::2], info[1::2]))
        entries = int(fields["length"])
        stats = publisher.stats
        result.update(
            events=events, seconds=wall, eventsPerSecond=events / wall, cpuSeconds=cpu,
            entries=entries, coalesced=stats.dropped, acked=stats.acked, resent=stats.resent,
            maxBufferedMiB=stats.maxBufferedBytes / 2**20,
        )
        if stats.dropped or stats.acked != events:
            raise RuntimeError(f"invalid run: {stats}")
        await publisher.stop()
        await link.stop()

    def run() -> None:
        d = ensureDeferred(go())
        d.addErrback(lambda f: result.update(error=f.getTraceback()))
        d.addBoth(lambda _: reactor.stop())

    reactor.callWhenRunning(run)
    reactor.run()
    server.stop()
    shutil.rmtree(directory, ignore_errors=True)
    if "error" in result:
        raise RuntimeError(result["error"])
    result["peakRssMiB"] = peakRssBytes() / 2**20
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="python -m bench.redis_publish", description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=2_000_000, help="spot events per round")
    p.add_argument("--rounds", type=int, default=5, help="rounds (each in a fresh process, with a fresh server)")
    p.add_argument("--in-flight", dest="inflight", type=int, default=8, help="publisher maxInFlight")
    p.add_argument("--batch", type=int, default=1000, help="publisher maxBatchEvents")
    p.add_argument("--server", default=None, help="redis-server binary (default: found as the tests find it)")
    p.add_argument("--formatted", action="store_true",
                   help="publish decoded ProtoOASpotEvent messages through the stream service's formatter "
                   "(EventFormatter, dumpJson, publishEvent) instead of ready JSON lines")
    p.add_argument("--consume", action="store_true",
                   help="measure reading instead: a StreamConsumer (no-op handler) reads the published events back")
    p.add_argument("--no-hiredis", dest="noHiredis", action="store_true",
                   help="make txredisapi use its pure-Python reply parser")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        if args.noHiredis:
            sys.modules["hiredis"] = None  # type: ignore[assignment]
        print(json.dumps(oneRun(args.events, args.server, args.inflight, args.batch, args.formatted, args.consume)))
        return {}
    import subprocess

    from ctrader_twisted.redis.server import RedisServer, findServerBinary

    binary = args.server or findServerBinary()
    runs = []
    for _ in range(args.rounds):
        out = subprocess.run(
            [sys.executable, "-m", "bench.redis_publish", "--child", "--events", str(args.events),
             "--in-flight", str(args.inflight), "--batch", str(args.batch)] + (["--server", binary] if binary else [])
            + (["--formatted"] if args.formatted else []) + (["--no-hiredis"] if args.noHiredis else [])
            + (["--consume"] if args.consume else []),
            capture_output=True, text=True, cwd=ROOT, check=True,
        )
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    rates = [r["eventsPerSecond"] for r in runs]
    import twisted

    version = RedisServer(tempfile.mkdtemp(), binary=binary).version() if binary else "none"
    summary = {
        "command": "python -m bench.redis_publish " + " ".join(argv if argv is not None else sys.argv[1:]),
        "python": platform.python_version(),
        "twisted": twisted.__version__,
        "server": version,
        "cpus": os.cpu_count(),
        "median_events_per_s": statistics.median(rates),
        "min_events_per_s": min(rates),
        "max_events_per_s": max(rates),
        "runs": runs,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"{summary['server']}; Python {summary['python']}, Twisted {summary['twisted']}, {summary['cpus']} CPUs")
        print(f"{args.events} spot events x {args.rounds} rounds: median {summary['median_events_per_s']:,.0f} events/s "
              f"(range {summary['min_events_per_s']:,.0f} .. {summary['max_events_per_s']:,.0f})")
        for r in runs:
            print(f"  {r['eventsPerSecond']:>10,.0f} ev/s  {r['seconds']:.2f} s  cpu {r['cpuSeconds']:.2f} s  "
                  f"{r['entries']} entries  peak RSS {r['peakRssMiB']:.0f} MiB  max buffered {r['maxBufferedMiB']:.1f} MiB")
    return summary


if __name__ == "__main__":
    main()
