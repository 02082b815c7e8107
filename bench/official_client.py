"""One benchmark run of the *official* SDK (``ctrader-open-api``), in its own process.

Run by :mod:`bench.run` with the interpreter of the SDK's own virtual
environment (``bench/.venv-official``: it pins Twisted 24.3 and protobuf
3.20.1), as ``python -m bench.official_client MODE ...``; the options and the
``RESULT {json}`` output are those of :mod:`bench.client_ours`.

Only the SDK's public API is used: ``Client(host, port, TcpProtocol,
numberOfMessagesToSendPerSecond=...)``, ``setConnectedCallback``,
``setMessageReceivedCallback``, ``send``, ``Protobuf.extract``. Its design
shapes the figures:

* ``send`` only queues: a ``LoopingCall`` writes at most
  ``numberOfMessagesToSendPerSecond`` (default 5) queued messages once per
  second, so a request waits up to one second before it is written;
* it has no per-type listeners: the message callback sees every message and
  decodes the payload itself (``Protobuf.extract``);
* it connects with ``clientFromString("ssl:host:port")``, which verifies no
  certificate, so it accepts the simulator's certificate;
* protobuf 3.20.1 has no binary wheel for Python 3.11, so it runs the pure
  Python protobuf backend.
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
    SPOT_EVENT, Window, connectControl, cpuSeconds, emit, latencySummary, loadCredentials, peakRssBytes, settledRss,
)

#: The symbol the simulator streams in burst mode (EURUSD).
SYMBOL = 1


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="one benchmark run of the official SDK's client")
    p.add_argument("mode", choices=["stream", "latency", "inflight", "large"])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--control", type=int, required=True)
    p.add_argument("--ca", help="ignored: the official SDK verifies no certificate")
    p.add_argument("--credentials", required=True, help="JSON file with the simulator's credentials")
    p.add_argument("--transport", choices=["tcp"], default="tcp")
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--warmup", type=int, default=1000)
    p.add_argument("--window", type=int, default=100)
    p.add_argument("--rate", type=int, default=5, help="numberOfMessagesToSendPerSecond")
    p.add_argument("--sizes", default="1048576")
    p.add_argument("--chunk", type=int, default=65536)
    p.add_argument("--repeat", type=int, default=1)
    return p


class Bench:
    def __init__(self, reactor: Any, args: argparse.Namespace) -> None:
        from ctrader_open_api import Client, Protobuf, TcpProtocol
        from twisted.internet.defer import Deferred

        self.reactor = reactor
        self.args = args
        self.Protobuf = Protobuf
        self.Deferred = Deferred
        self.client = Client("localhost", args.port, TcpProtocol, numberOfMessagesToSendPerSecond=args.rate)
        self.connected: Deferred[None] = Deferred()
        self.client.setConnectedCallback(lambda c: None if self.connected.called else self.connected.callback(None))
        self.client.setMessageReceivedCallback(self.received)
        self.onMessage: Any = None

    def received(self, client: Any, message: Any) -> None:
        if self.onMessage is not None:
            self.onMessage(message)

    def request(self, name: str, **fields: Any) -> Any:
        return self.client.send(self.Protobuf.get(name, **fields), responseTimeoutInSeconds=60)

    async def run(self) -> dict[str, Any]:
        from twisted.internet.defer import gatherResults

        args = self.args
        credentials = loadCredentials(args.credentials)
        account = credentials["accountId"]
        self.control = await connectControl(self.reactor, args.control)
        self.client.startService()
        await self.connected
        # The simulator follows the subscription with one spot event carrying
        # the current price: wait for it, so that no burst counts it.
        first = self.Deferred()

        def firstSpot(message: Any) -> None:
            if message.payloadType == SPOT_EVENT and not first.called:
                first.callback(None)

        self.onMessage = firstSpot
        # Queued together (application authentication first, as the server
        # requires): the SDK writes them in order on its next one-second tick.
        await gatherResults([
            self.request("ProtoOAApplicationAuthReq", clientId=credentials["clientId"],
                         clientSecret=credentials["clientSecret"]),
            self.request("ProtoOAAccountAuthReq", ctidTraderAccountId=account,
                         accessToken=credentials["accessToken"]),
            self.request("ProtoOASubscribeSpotsReq", ctidTraderAccountId=account, symbolId=[SYMBOL]),
        ])
        await first
        self.onMessage = None
        try:
            return await getattr(self, args.mode)()
        finally:
            self.control.transport.loseConnection()
            self.client.stopService()

    async def stream(self) -> dict[str, Any]:
        extract = self.Protobuf.extract
        state: dict[str, Any] = {"seen": 0, "target": 0, "done": None, "spread": 0}

        def onMessage(message: Any) -> None:
            if message.payloadType == 2131:
                event = extract(message)
                state["spread"] += event.ask - event.bid  # a user callback reads bid and ask
                state["seen"] += 1
                if state["seen"] == state["target"]:
                    state["done"].callback(None)

        self.onMessage = onMessage

        async def burst(count: int) -> None:
            state["seen"], state["target"], state["done"] = 0, count, self.Deferred()
            reply = await self.control.command(f"burst {count}")
            if reply != f"ok {count}":
                raise RuntimeError(f"burst {count}: the simulator answered {reply!r}")
            await state["done"]

        args = self.args
        await burst(args.warmup)
        rssBefore = settledRss()
        window = Window(self.control)
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

    async def latency(self) -> dict[str, Any]:
        args = self.args
        for _ in range(args.warmup):
            await self.request("ProtoOAVersionReq")
        samples = array("d", bytes(8 * args.count))
        clock = time.perf_counter
        for i in range(args.count):
            start = clock()
            await self.request("ProtoOAVersionReq")
            samples[i] = clock() - start
        return latencySummary(samples)

    def windowed(self, total: int, window: int, samples: Any) -> Any:
        finished = self.Deferred()
        clock = time.perf_counter
        state = [0, 0]

        def sendOne() -> None:
            i = state[0]
            state[0] += 1
            self.request("ProtoOAVersionReq").addCallbacks(answered, finished.errback, (i, clock()))

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

    async def inflight(self) -> dict[str, Any]:
        args = self.args
        samples = array("d", bytes(8 * args.count))
        await self.windowed(args.warmup, args.window, None)
        rssBefore = settledRss()
        window = Window(self.control)
        await window.start()
        await self.windowed(args.count, args.window, samples)
        await window.stop()
        rssAfter = settledRss()
        result: dict[str, Any] = latencySummary(samples)
        result.update(
            window=args.window,
            rate=args.rate,
            requests_per_s=args.count / window.wall,
            cpu_us_per_request=window.cpu / args.count * 1e6,
            server_cpu_us_per_request=window.serverCpu / args.count * 1e6,
            rss_before_mib=rssBefore / 2**20,
            rss_after_mib=rssAfter / 2**20,
            rss_growth_mib=(rssAfter - rssBefore) / 2**20,
        )
        return result

    async def large(self) -> dict[str, Any]:
        args = self.args
        clock = time.perf_counter
        extract = self.Protobuf.extract
        state: dict[str, Any] = {}

        def onMessage(message: Any) -> None:
            if message.payloadType == 2115:
                state["envelope"] = clock()
                state["symbols"] = len(extract(message).symbol)
                state["done"].callback(clock())

        self.onMessage = onMessage
        out: dict[str, Any] = {}
        for size in (int(s) for s in args.sizes.split(",")):
            await self.control.command(f"prep {size}")
            runs = []
            for _ in range(args.repeat):
                state["done"] = self.Deferred()
                start, cpu = clock(), cpuSeconds()
                reply = await self.control.command(f"big {size} {args.chunk}")
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
    import warnings

    warnings.filterwarnings("ignore", message=".*service_identity.*")
    from twisted.internet import reactor
    from twisted.internet.defer import ensureDeferred

    result: dict[str, Any] = {}

    def done(value: Any) -> None:
        result.update(value)
        reactor.stop()

    def failed(failure: Any) -> None:
        result["error"] = failure.getTraceback()
        reactor.stop()

    bench = Bench(reactor, args)
    reactor.callWhenRunning(lambda: ensureDeferred(bench.run()).addCallbacks(done, failed))
    reactor.run()
    emit(result)
    if "error" in result:
        sys.exit(1)


if __name__ == "__main__":
    main()
