"""One benchmark run of *our* client (ctrader_twisted), in its own process.

Started by :mod:`bench.run` as ``python -m bench.client_ours MODE ...``; prints
``RESULT {json}`` as its last line. Every figure is taken in this process, so
``time.process_time`` is the client's CPU alone (the server is another process).

Modes:

``stream``
    subscribe to spots of symbol 1 (after the first "current price" event),
    receive a warm-up burst, then ``--count`` events; each
    goes through TLS, framing, ``ProtoMessage`` and payload decoding and the
    dispatch to a listener that reads ``bid`` and ``ask``.
``latency``
    ``--count`` ``ProtoOAVersionReq`` requests one at a time.
``inflight``
    ``--count`` requests with ``--window`` in flight (after a warm-up of
    ``--warmup`` requests): latency percentiles, requests/s and RSS growth.
``large``
    receive one ``ProtoOASymbolsListRes`` of each ``--sizes`` (bytes), written
    by the simulator (``Simulator.writeToAll``) in ``--chunk``-byte writes.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from array import array
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench.common import (  # noqa: E402
    Window, connectControl, cpuSeconds, emit, latencySummary, loadCredentials, peakRssBytes, settledRss,
)

#: The symbol the simulator streams in burst mode (EURUSD).
SYMBOL = 1


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="one benchmark run of ctrader_twisted's client")
    p.add_argument("mode", choices=["stream", "latency", "inflight", "large"])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--control", type=int, required=True)
    p.add_argument("--ca", required=True, help="CA certificate PEM file")
    p.add_argument("--credentials", required=True, help="JSON file with the simulator's credentials")
    p.add_argument("--transport", choices=["tcp", "ws"], default="tcp")
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--warmup", type=int, default=1000)
    p.add_argument("--window", type=int, default=100)
    p.add_argument("--sizes", default="1048576")
    p.add_argument("--chunk", type=int, default=65536)
    p.add_argument("--repeat", type=int, default=1)
    return p


async def run(reactor: Any, args: argparse.Namespace) -> dict[str, Any]:
    from ctrader_twisted import Client, TcpProtocol

    if args.transport == "ws":
        from ctrader_twisted.websocket import WebSocketProtocol

        protocol: type = WebSocketProtocol
    else:
        protocol = TcpProtocol
    from twisted.internet.defer import Deferred

    credentials = loadCredentials(args.credentials)
    account = credentials["accountId"]
    client = Client(
        "localhost", args.port, protocol, reactor=reactor, trustRoot=args.ca,
        clientId=credentials["clientId"], clientSecret=credentials["clientSecret"],
        requestsPerSecond=None, historicalRequestsPerSecond=None,
        responseTimeout=60, maxQueuedRequests=1_000_000,
    )
    control = await connectControl(reactor, args.control)
    client.startService()
    try:
        await client.whenReady()  # application authentication done
        await client.authorizeAccount(account, credentials["accessToken"])
        # The simulator follows the subscription with one spot event carrying
        # the current price: wait for it, so that no burst counts it.
        first: Deferred[None] = Deferred()

        def firstSpot(event: Any) -> None:
            if not first.called:
                first.callback(None)

        client.addListener("ProtoOASpotEvent", firstSpot)
        await client.request("ProtoOASubscribeSpotsReq", ctidTraderAccountId=account, symbolId=[SYMBOL])
        await first
        client.removeListener("ProtoOASpotEvent", firstSpot)
        if args.mode == "stream":
            return await stream(client, control, args)
        if args.mode == "latency":
            return await latency(client, args)
        if args.mode == "inflight":
            return await inflight(client, control, args)
        return await large(client, control, args)
    finally:
        await client.stopService()
        control.transport.loseConnection()


async def stream(client: Any, control: Any, args: argparse.Namespace) -> dict[str, Any]:
    from twisted.internet.defer import Deferred

    state: dict[str, Any] = {"seen": 0, "target": 0, "done": None, "spread": 0}

    def onSpot(event: Any) -> None:
        state["spread"] += event.ask - event.bid  # a user callback reads bid and ask
        state["seen"] += 1
        if state["seen"] == state["target"]:
            state["done"].callback(None)

    client.addListener("ProtoOASpotEvent", onSpot)

    async def burst(count: int) -> None:
        state["seen"], state["target"], state["done"] = 0, count, Deferred()
        reply = await control.command(f"burst {count}")
        if reply != f"ok {count}":
            raise RuntimeError(f"burst {count}: the simulator answered {reply!r}")
        await state["done"]

    await burst(args.warmup)
    rssBefore = settledRss()
    window = Window(control)
    await window.start()
    await burst(args.count)
    await window.stop()
    rssAfter = settledRss()
    return {
        "events": args.count,
        "events_per_s": args.count / window.wall,
        "cpu_s_per_million": window.cpu / args.count * 1e6,
        "server_cpu_s_per_million": window.serverCpu / args.count * 1e6,
        "wall_s": window.wall,
        "rss_before_mib": rssBefore / 2**20,
        "rss_after_mib": rssAfter / 2**20,
        "rss_growth_mib": (rssAfter - rssBefore) / 2**20,
        "peak_rss_mib": peakRssBytes() / 2**20,
    }


async def latency(client: Any, args: argparse.Namespace) -> dict[str, Any]:
    for _ in range(args.warmup):
        await client.request("ProtoOAVersionReq")
    samples = array("d", bytes(8 * args.count))
    clock = time.perf_counter
    for i in range(args.count):
        start = clock()
        await client.request("ProtoOAVersionReq")
        samples[i] = clock() - start
    return latencySummary(samples)


def windowed(client: Any, total: int, window: int, samples: array | None) -> Any:
    """Send *total* requests keeping *window* in flight; fires when all are answered."""
    from twisted.internet.defer import Deferred

    finished: Deferred[None] = Deferred()
    clock = time.perf_counter
    state = [0, 0]  # sent, answered

    def sendOne() -> None:
        i = state[0]
        state[0] += 1
        client.request("ProtoOAVersionReq").addCallbacks(answered, finished.errback, (i, clock()))

    def answered(_: Any, i: int, start: float) -> None:
        if samples is not None:
            samples[i] = clock() - start
        state[1] += 1
        if state[0] < total:
            sendOne()
        elif state[1] == total:
            finished.callback(None)

    for _ in range(min(window, total)):
        sendOne()
    return finished


async def inflight(client: Any, control: Any, args: argparse.Namespace) -> dict[str, Any]:
    samples = array("d", bytes(8 * args.count))
    await windowed(client, args.warmup, args.window, None)
    rssBefore = settledRss()
    window = Window(control)
    await window.start()
    await windowed(client, args.count, args.window, samples)
    await window.stop()
    rssAfter = settledRss()
    result: dict[str, Any] = latencySummary(samples)
    result.update(
        window=args.window,
        requests_per_s=args.count / window.wall,
        cpu_us_per_request=window.cpu / args.count * 1e6,
        server_cpu_us_per_request=window.serverCpu / args.count * 1e6,
        rss_before_mib=rssBefore / 2**20,
        rss_after_mib=rssAfter / 2**20,
        rss_growth_mib=(rssAfter - rssBefore) / 2**20,
        pending_after=client.factory.pendingCount(),
    )
    return result


async def large(client: Any, control: Any, args: argparse.Namespace) -> dict[str, Any]:
    from twisted.internet.defer import Deferred

    clock = time.perf_counter
    state: dict[str, Any] = {}

    def onEnvelope(_: Any, message: Any) -> None:
        if message.payloadType == 2115:
            state["envelope"] = clock()

    def onList(res: Any) -> None:
        state["symbols"] = len(res.symbol)
        state["done"].callback(clock())

    client.setMessageReceivedCallback(onEnvelope)
    client.addListener("ProtoOASymbolsListRes", onList)
    out: dict[str, Any] = {}
    for size in (int(s) for s in args.sizes.split(",")):
        await control.command(f"prep {size}")
        runs = []
        for _ in range(args.repeat):
            state["done"] = Deferred()
            start, cpu = clock(), cpuSeconds()
            reply = await control.command(f"big {size} {args.chunk}")
            end = await state["done"]
            runs.append({
                "bytes": int(reply.split()[1]),
                "ms": (end - start) * 1e3,
                "frame_ms": (state["envelope"] - start) * 1e3,
                "cpu_ms": (cpuSeconds() - cpu) * 1e3,
                "symbols": state["symbols"],
            })
        out[str(size)] = runs
    return {"sizes": out}


def main() -> None:
    args = parser().parse_args()
    import txaio

    txaio.use_twisted()
    from twisted.internet import reactor
    from twisted.internet.defer import ensureDeferred

    result: dict[str, Any] = {}

    def done(value: Any) -> None:
        result.update(value)
        reactor.stop()  # type: ignore[attr-defined]

    def failed(failure: Any) -> None:
        result["error"] = failure.getTraceback()
        reactor.stop()  # type: ignore[attr-defined]

    reactor.callWhenRunning(lambda: ensureDeferred(run(reactor, args)).addCallbacks(done, failed))  # type: ignore[attr-defined]
    reactor.run()  # type: ignore[attr-defined]
    emit(result)
    if "error" in result:
        sys.exit(1)


if __name__ == "__main__":
    main()
