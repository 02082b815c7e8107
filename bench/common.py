"""Helpers shared by every benchmark process (standard library and Twisted only).

This module is imported both by our client (``/work/venv``: Twisted 26,
protobuf 7) and by :mod:`bench.official_client` in the official SDK's own
virtual environment (Twisted 24.3, protobuf 3.20), so it must not import
``ctrader_twisted`` or anything version-specific.
"""

from __future__ import annotations

import gc
import json
import os
import resource
import statistics
import sys
import time
from typing import Any, Sequence

#: Payload type of ``ProtoOASpotEvent`` / ``ProtoOASymbolsListRes``.
SPOT_EVENT = 2131
SYMBOLS_LIST_RES = 2115

_PAGE = os.sysconf("SC_PAGE_SIZE")


def rssBytes() -> int:
    """Current resident set size of this process, in bytes (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


def peakRssBytes() -> int:
    """Peak resident set size of this process so far, in bytes.

    Read from ``VmHWM`` (Linux): ``getrusage``'s ``ru_maxrss`` survives
    ``execve`` and would report the parent's peak in a child process.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def settledRss() -> int:
    """RSS after a full garbage collection (so growth figures compare like with like)."""
    gc.collect()
    return rssBytes()


def cpuSeconds() -> float:
    """CPU seconds (user + system) used by this process so far."""
    return time.process_time()


def serverCpu(control: Any) -> Any:
    """A Deferred firing with the bench server's CPU seconds so far (its ``cpu`` command)."""

    def parse(line: str) -> float:
        if not line.startswith("ok "):
            raise RuntimeError(f"cpu: the bench server answered {line!r}")
        return float(line.split()[1])

    return control.command("cpu").addCallback(parse)


class Window:
    """Wall time, this process's CPU time and the bench server's CPU time over
    one measurement: ``await window.start()``, the work, ``await window.stop()``."""

    def __init__(self, control: Any) -> None:
        self.control = control
        self.wall = self.cpu = self.serverCpu = 0.0

    async def start(self) -> None:
        self.serverCpu = await serverCpu(self.control)
        self.wall, self.cpu = time.perf_counter(), cpuSeconds()

    async def stop(self) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, cpuSeconds() - self.cpu
        self.serverCpu = await serverCpu(self.control) - self.serverCpu


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of *values* (``fraction`` in 0..1)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, int(round(fraction * len(ordered) + 0.5)) - 1))
    return ordered[rank]


def latencySummary(seconds: Sequence[float]) -> dict[str, float]:
    """p50, p99 and max of latencies given in seconds, returned in milliseconds."""
    return {
        "count": len(seconds),
        "p50_ms": percentile(seconds, 0.50) * 1e3,
        "p99_ms": percentile(seconds, 0.99) * 1e3,
        "max_ms": max(seconds) * 1e3 if seconds else float("nan"),
    }


def summarize(values: Sequence[float]) -> dict[str, Any]:
    """Median and spread (min, max, relative spread) of repeated measurements."""
    vals = [v for v in values if v is not None]
    if not vals:
        return {"median": None, "min": None, "max": None, "spread_pct": None, "runs": []}
    med = statistics.median(vals)
    spread = (max(vals) - min(vals)) / med * 100 if med else 0.0
    return {"median": med, "min": min(vals), "max": max(vals), "spread_pct": spread, "runs": list(vals)}


def loadCredentials(path: str) -> dict[str, Any]:
    """The simulator's credentials written by the runner: ``clientId``,
    ``clientSecret``, ``accessToken`` and ``accountId``."""
    with open(path) as f:
        return json.load(f)  # type: ignore[no-any-return]


def emit(result: dict[str, Any]) -> None:
    """Write a client's result as the last line of stdout (read by the runner)."""
    sys.stdout.write("RESULT " + json.dumps(result) + "\n")
    sys.stdout.flush()


def connectControl(reactor: Any, port: int) -> Any:
    """Connect to the bench server's control port; fires with a :class:`Control`."""
    from twisted.internet.endpoints import TCP4ClientEndpoint
    from twisted.internet.protocol import Factory

    return TCP4ClientEndpoint(reactor, "127.0.0.1", port).connect(Factory.forProtocol(Control))


def _controlBase() -> type:
    from twisted.protocols.basic import LineReceiver

    return LineReceiver


class Control(_controlBase()):  # type: ignore[misc]
    """Line client of the bench server's control port.

    ``command(line)`` returns a Deferred that fires with the server's reply
    line (commands are answered in order).
    """

    delimiter = b"\n"

    def connectionMade(self) -> None:
        self._waiting: list[Any] = []

    def command(self, line: str) -> Any:
        from twisted.internet.defer import Deferred

        d: Deferred[str] = Deferred()
        self._waiting.append(d)
        self.sendLine(line.encode())
        return d

    def lineReceived(self, line: bytes) -> None:
        self._waiting.pop(0).callback(line.decode())


def stopChild(process: Any, seconds: float = 10) -> None:
    """Close a child's stdin (bench servers stop on EOF) and wait for it; kill it after *seconds*."""
    import subprocess

    process.stdin.close()
    try:
        process.wait(seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
