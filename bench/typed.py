"""What the typed layer costs per spot event, over a raw listener, in process.

``python -m bench.typed [--count N] [--rounds R]`` prints one JSON line.

Two clients of one in-memory simulator (a Clock, no sockets, no TLS), each
with a live connection:

* **raw**: ``client.addListener("ProtoOASpotEvent", listener)``; the listener
  reads the decoded event's bid and ask (integers);
* **typed**: a started :class:`~ctrader_twisted.trading.Trader` and
  ``trader.on(Spot, callback, symbol="EURUSD")``; the callback reads the
  typed spot's bid and ask (Decimals, with the side the server left out
  carried over).

The same serialized spot events (the simulator's burst frames: symbol 1,
sixteen prices, both sides) go through each client's real dispatch
(``Factory.framesReceived``: envelope decode, payload decode, listeners), in
alternating rounds, timed in CPU seconds of the process; the cost is the
median of the rounds' differences, per event.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench.server import spotMessages  # noqa: E402

#: Frames per dispatch call (about one 16 KiB read of spot events).
BATCH = 512


def _feed(factory: Any, frames: list[bytes], count: int) -> float:
    """CPU seconds of this process to dispatch *count* frames (in batches)
    through *factory* (CPU time, not wall time: the machine's other load,
    which preempts this process, is not counted against either path)."""
    transport = factory.connection
    batches = [frames[i : i + BATCH] for i in range(0, len(frames), BATCH)]
    rounds, left = divmod(count, len(frames))
    start = time.process_time()
    for _ in range(rounds):
        for batch in batches:
            factory.framesReceived(transport, batch)
    if left:
        factory.framesReceived(transport, frames[:left])
    return time.process_time() - start


def typedOverhead(count: int = 200_000, rounds: int = 5) -> dict[str, float]:
    """Microseconds per spot event the typed layer adds over a raw listener
    (see the module docstring), with both paths' events per second."""
    from ctrader_twisted.testing import SimulatedServer
    from ctrader_twisted.trading import Spot, Trader

    server = SimulatedServer(seed=0, heartbeatInterval=None, idleTimeout=None)
    sim = server.simulator
    options = dict(heartbeatInterval=None, silenceTimeout=None)
    raw = server.connect(server.managedClient(**options))
    typed = server.connect(server.managedClient(**options))
    trader = Trader(typed, sim.accountIds[0], sim.accessToken)
    server.resultOf(trader.start())
    server.resultOf(trader.symbols.get("EURUSD"))
    seen = {"raw": 0, "typed": 0}
    total = [0, 0]

    def onRaw(event: Any) -> None:
        total[0] += event.ask - event.bid
        seen["raw"] += 1

    def onSpot(spot: Any) -> None:
        total[1] += 1 if spot.ask > spot.bid else 0
        seen["typed"] += 1

    raw.addListener("ProtoOASpotEvent", onRaw)
    subscription = trader.on(Spot, onSpot, symbol="EURUSD")
    server.resultOf(subscription.whenReady())
    server.flush()
    frames = [spotMessages()[i % 16] for i in range(BATCH * 4)]
    _feed(raw.factory, frames, BATCH * 8)  # warm-up: caches, branch predictors
    _feed(typed.factory, frames, BATCH * 8)
    timings: dict[str, list[float]] = {"raw": [], "typed": []}
    for _ in range(rounds):
        for name, client in (("raw", raw), ("typed", typed)):
            before = seen[name]
            timings[name].append(_feed(client.factory, frames, count))
            assert seen[name] - before == count, (name, seen[name] - before)
    rawSeconds, typedSeconds = statistics.median(timings["raw"]), statistics.median(timings["typed"])
    # Each round's difference, so that the machine's load, which drifts, is
    # the same on both sides of a difference.
    overhead = statistics.median(t - r for r, t in zip(timings["raw"], timings["typed"]))
    subscription.cancel()
    trader.stop()
    for client in (raw, typed):
        client.stopService()
    server.flush()
    return {
        "typed_overhead_us_per_event": overhead / count * 1e6,
        "raw_events_per_s": count / rawSeconds,
        "typed_events_per_s": count / typedSeconds,
        "raw_us_per_event": rawSeconds / count * 1e6,
        "typed_us_per_event": typedSeconds / count * 1e6,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.typed", description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200_000, help="spot events per round and path")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (medians reported)")
    args = parser.parse_args(argv)
    print(json.dumps({k: round(v, 4) for k, v in typedOverhead(args.count, args.rounds).items()}))


if __name__ == "__main__":
    main()
