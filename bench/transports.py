"""Compare the TLS TCP and WebSocket (wss://) transports on the same spot stream.

Usage (from the repository root)::

    python bench/transports.py [--count 200000] [--rounds 3]

A child process serves both transports over loopback TLS (a CA minted for
the run) and, when a client sends ``ProtoOAVersionReq``, answers it and then
writes ``--count`` identical pre-serialized ``ProtoOASpotEvent`` messages as
fast as the transport takes them (one TCP frame or one binary WebSocket
message each). The parent process runs a real :class:`ctrader_twisted.Client`
with a ``ProtoOASpotEvent`` listener (so every event is framed, decoded and
dispatched as in an application) and measures, from the answer to the last
event:

* events per second (wall clock), and
* client CPU time per event (``time.process_time`` of the client process
  only: the server's work is in the child).

The best of ``--rounds`` runs per transport is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import txaio  # noqa: E402

txaio.use_twisted()

SPOT_SYMBOL = 1


def spotFrame() -> bytes:
    """One serialized ProtoMessage carrying a typical spot event."""
    from ctrader_twisted.messages.OpenApiCommonMessages_pb2 import ProtoMessage
    from ctrader_twisted.messages.OpenApiMessages_pb2 import ProtoOASpotEvent

    event = ProtoOASpotEvent(
        ctidTraderAccountId=12345678, symbolId=SPOT_SYMBOL, bid=108_123, ask=108_131, timestamp=1_763_000_000_000
    )
    return ProtoMessage(payloadType=2131, payload=event.SerializeToString()).SerializeToString()


# --- server (child process) ----------------------------------------------------------


def serve(count: int) -> None:
    from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
    from twisted.internet import reactor
    from twisted.internet.endpoints import SSL4ServerEndpoint
    from twisted.internet.protocol import Factory
    from twisted.protocols.basic import Int32StringReceiver

    from ctrader_twisted.messages.OpenApiCommonMessages_pb2 import ProtoMessage
    from ctrader_twisted.messages.OpenApiMessages_pb2 import ProtoOAVersionRes
    from tests.tlsutil import Authority

    spot = spotFrame()
    batch = 2000

    def answer(request: bytes) -> bytes | None:
        message = ProtoMessage.FromString(request)
        if message.payloadType != 2104:
            return None
        return ProtoMessage(
            payloadType=2105, payload=ProtoOAVersionRes(version="91").SerializeToString(), clientMsgId=message.clientMsgId
        ).SerializeToString()

    def stream(write: Any, connected: Any) -> None:
        left = [count]

        def more() -> None:
            if not connected():
                return
            n = min(batch, left[0])
            for _ in range(n):
                write(spot)
            left[0] -= n
            if left[0]:
                reactor.callLater(0, more)  # type: ignore[attr-defined]

        more()

    class TcpServer(Int32StringReceiver):
        MAX_LENGTH = 15_000_000

        def stringReceived(self, data: bytes) -> None:
            reply = answer(data)
            if reply is not None:
                self.sendString(reply)
                stream(self.sendString, lambda: self.transport.connected)

    class WsServer(WebSocketServerProtocol):  # type: ignore[misc]
        def onMessage(self, payload: bytes, isBinary: bool) -> None:
            reply = answer(payload)
            if reply is not None:
                self.sendMessage(reply, isBinary=True)
                stream(lambda data: self.sendMessage(data, isBinary=True), lambda: self.state == self.STATE_OPEN)

    authority = Authority("bench CA")
    options = authority.issue("localhost").options()
    wsFactory = WebSocketServerFactory("wss://localhost", reactor=reactor)
    wsFactory.protocol = WsServer

    def started(ports: list[Any]) -> None:
        print(json.dumps({"tcp": ports[0].getHost().port, "ws": ports[1].getHost().port,
                          "ca": authority.pem.decode()}), flush=True)

    from twisted.internet.defer import gatherResults

    gatherResults([
        SSL4ServerEndpoint(reactor, 0, options, interface="127.0.0.1").listen(Factory.forProtocol(TcpServer)),
        SSL4ServerEndpoint(reactor, 0, options, interface="127.0.0.1").listen(wsFactory),
    ]).addCallback(started)
    reactor.run()  # type: ignore[attr-defined]


# --- client (parent process) ----------------------------------------------------------


def measure(reactor: Any, protocol: type, port: int, ca: bytes, count: int) -> Any:
    from twisted.internet.defer import Deferred, inlineCallbacks

    from ctrader_twisted import Client

    @inlineCallbacks
    def run() -> Any:
        client = Client("localhost", port, protocol, reactor=reactor, trustRoot=ca, heartbeatInterval=10)
        ready: Deferred[None] = Deferred()
        done: Deferred[None] = Deferred()
        seen = [0]

        def onSpot(event: Any) -> None:
            seen[0] += 1
            if seen[0] == count:
                done.callback(None)

        client.addListener("ProtoOASpotEvent", onSpot)
        client.setConnectedCallback(lambda c: ready.callback(None) if not ready.called else None)
        client.startService()
        yield ready
        yield client.request("VersionReq")
        wall, cpu = time.perf_counter(), time.process_time()
        yield done
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        yield client.stopService()
        return count / wall, cpu / count * 1e6

    return run()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=200_000, help="spot events per run")
    parser.add_argument("--rounds", type=int, default=3, help="runs per transport (best is kept)")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.count)
        return

    child = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--serve", "--count", str(args.count)],
        stdout=subprocess.PIPE, cwd=ROOT, text=True,
    )
    try:
        info = json.loads(child.stdout.readline())  # type: ignore[union-attr]
        from twisted.internet import reactor
        from twisted.internet.defer import ensureDeferred

        from ctrader_twisted import TcpProtocol
        from ctrader_twisted.websocket import WebSocketProtocol

        transports = [("TLS TCP", TcpProtocol, info["tcp"]), ("WebSocket wss://", WebSocketProtocol, info["ws"])]
        results: dict[str, list[tuple[float, float]]] = {name: [] for name, _, _ in transports}

        async def runAll() -> None:
            for _ in range(args.rounds):
                for name, protocol, port in transports:
                    rate, cpu = await measure(reactor, protocol, port, info["ca"].encode(), args.count)
                    results[name].append((rate, cpu))

        def finished(result: Any) -> Any:
            reactor.stop()  # type: ignore[attr-defined]
            return result

        ensureDeferred(runAll()).addBoth(finished).addErrback(lambda f: f.printTraceback())
        reactor.run()  # type: ignore[attr-defined]
    finally:
        child.terminate()
        child.wait()

    import platform

    import autobahn
    import twisted

    print(f"{args.count} spot events per run, best of {args.rounds}; Python {platform.python_version()}, "
          f"Twisted {twisted.__version__}, autobahn {autobahn.__version__}, {os.cpu_count()} CPUs")
    print(f"{'transport':<18} {'events/s':>10} {'client CPU us/event':>20}")
    for name, runs in results.items():
        if not runs:
            continue
        rate = max(r for r, _ in runs)
        cpu = min(c for _, c in runs)
        print(f"{name:<18} {rate:>10,.0f} {cpu:>20.2f}")


if __name__ == "__main__":
    main()
