"""The benchmark server: a small loopback cTrader Open API endpoint, run as a child process.

``python -m bench.server`` (started by :mod:`bench.run`) listens on 127.0.0.1
with TLS TCP, TLS WebSocket (``wss://``) and a plain-text control port, then
prints one JSON line ``{"tcp": port, "ws": port, "control": port, "ca": pem}``.

It answers just what the benchmarks send (application and account
authentication, ``ProtoOASubscribeSpotsReq``, ``ProtoOAVersionReq``;
heartbeats are ignored) and obeys control commands, one per line:

``burst N``
    stream ``N`` ``ProtoOASpotEvent`` messages to every connection subscribed
    to spots, as fast as the transport takes them (a push producer, so the
    server never buffers more than one batch per connection). Replies ``ok N``
    at once.
``prep SIZE``
    build (and keep) the big message of ``big SIZE`` ahead of time, so that
    building it is not timed. Replies ``ok BYTES``.
``big SIZE CHUNK``
    build (unless prepared) one ``ProtoOASymbolsListRes`` of about ``SIZE`` bytes and write it to
    every connection in ``CHUNK``-byte writes (so it arrives in small TLS
    records, hence small reads). Replies ``ok BYTES`` once written.

The server runs in its own process so that the client's CPU time is measured
alone. It is a bench fixture, not the simulator: it does only the work above,
as cheaply as possible, so the client is the bottleneck.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import txaio  # noqa: E402

txaio.use_twisted()

from twisted.internet.interfaces import IPushProducer  # noqa: E402
from zope.interface import implementer  # noqa: E402

from ctrader_twisted.messages.OpenApiCommonMessages_pb2 import ProtoMessage  # noqa: E402
from ctrader_twisted.messages import OpenApiMessages_pb2 as M  # noqa: E402
from ctrader_twisted.messages.OpenApiModelMessages_pb2 import ProtoOALightSymbol  # noqa: E402

#: Spot frames per write: one write is one batch of whole frames.
BATCH = 500
ACCOUNT = 12345678


def spotMessages(count: int = 100) -> list[bytes]:
    """``count`` distinct serialized ``ProtoMessage`` envelopes carrying spot events."""
    out = []
    for i in range(count):
        event = M.ProtoOASpotEvent(
            ctidTraderAccountId=ACCOUNT,
            symbolId=1,
            bid=108_123 + i,
            ask=108_131 + i,
            timestamp=1_763_000_000_000 + i,
        )
        out.append(ProtoMessage(payloadType=event.payloadType, payload=event.SerializeToString()).SerializeToString())
    return out


def symbolsList(size: int) -> bytes:
    """A serialized ``ProtoMessage`` with a ``ProtoOASymbolsListRes`` of about *size* bytes."""
    one = ProtoOALightSymbol(
        symbolId=100_000, symbolName="EURUSD.100000", enabled=True, baseAssetId=1, quoteAssetId=2,
        symbolCategoryId=3, description="Euro vs US Dollar, bench symbol 100000",
    ).ByteSize() + 3
    count = max(1, size // one)
    for _ in range(2):  # the second pass corrects the size estimate
        res = M.ProtoOASymbolsListRes(ctidTraderAccountId=ACCOUNT)
        for i in range(count):
            n = 100_000 + i % 900_000
            res.symbol.add(
                symbolId=n, symbolName=f"EURUSD.{n}", enabled=True, baseAssetId=1, quoteAssetId=2,
                symbolCategoryId=3, description=f"Euro vs US Dollar, bench symbol {n}",
            )
        count = max(1, count * size // res.ByteSize())
    return ProtoMessage(payloadType=res.payloadType, payload=res.SerializeToString()).SerializeToString()


def answer(data: bytes, connection: Any) -> bytes | None:
    """The serialized answer to one request (``None``: no answer)."""
    message = ProtoMessage.FromString(data)
    t = message.payloadType
    reply: Any = None
    if t == M.ProtoOAVersionReq().payloadType:
        reply = M.ProtoOAVersionRes(version="bench")
    elif t == M.ProtoOAApplicationAuthReq().payloadType:
        reply = M.ProtoOAApplicationAuthRes()
    elif t == M.ProtoOAAccountAuthReq().payloadType:
        req = M.ProtoOAAccountAuthReq.FromString(message.payload)
        reply = M.ProtoOAAccountAuthRes(ctidTraderAccountId=req.ctidTraderAccountId)
    elif t == M.ProtoOASubscribeSpotsReq().payloadType:
        req2 = M.ProtoOASubscribeSpotsReq.FromString(message.payload)
        connection.subscribed = True
        reply = M.ProtoOASubscribeSpotsRes(ctidTraderAccountId=req2.ctidTraderAccountId)
    if reply is None:
        return None
    out = ProtoMessage(payloadType=reply.payloadType, payload=reply.SerializeToString())
    if message.HasField("clientMsgId"):
        out.clientMsgId = message.clientMsgId
    return out.SerializeToString()


@implementer(IPushProducer)
class Streamer:
    """Writes ``count`` spot frames (pre-encoded for the transport) to one connection."""

    def __init__(self, reactor: Any, transport: Any, blob: bytes, perBlob: int, single: bytes, count: int) -> None:
        self.reactor = reactor
        self.transport = transport
        self.blob, self.perBlob, self.single = blob, perBlob, single
        self.left = count
        self.paused = False
        self.scheduled = False
        transport.registerProducer(self, True)
        self._schedule()

    def _schedule(self) -> None:
        if not self.scheduled and not self.paused and self.left:
            self.scheduled = True
            self.reactor.callLater(0, self._run)

    def _run(self) -> None:
        self.scheduled = False
        # Write several batches per turn, stop as soon as the transport pushes back.
        for _ in range(8):
            if self.paused or not self.left:
                break
            if self.left >= self.perBlob:
                self.transport.write(self.blob)
                self.left -= self.perBlob
            else:
                self.transport.write(self.single * self.left)
                self.left = 0
        if not self.left:
            self.transport.unregisterProducer()
            return
        self._schedule()

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        self._schedule()

    def stopProducing(self) -> None:
        self.left = 0


def main() -> None:
    from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
    from twisted.internet import reactor
    from twisted.internet.defer import gatherResults
    from twisted.internet.endpoints import SSL4ServerEndpoint, TCP4ServerEndpoint
    from twisted.internet.protocol import Factory
    from twisted.protocols.basic import Int32StringReceiver, LineReceiver

    from tests.tlsutil import Authority

    connections: list[Any] = []
    prepared: dict[int, bytes] = {}
    spots = spotMessages()
    tcpSingle = [len(s).to_bytes(4, "big") + s for s in spots]
    tcpBlob = b"".join(tcpSingle[i % len(spots)] for i in range(BATCH))

    class TcpServer(Int32StringReceiver):
        MAX_LENGTH = 1_000_000
        kind = "tcp"
        subscribed = False

        def connectionMade(self) -> None:
            connections.append(self)

        def connectionLost(self, reason: Any) -> None:
            connections.remove(self)

        def stringReceived(self, data: bytes) -> None:
            reply = answer(data, self)
            if reply is not None:
                self.sendString(reply)

    wsFactory = WebSocketServerFactory("wss://localhost", reactor=reactor)
    wsFactory.setProtocolOptions(maxMessagePayloadSize=0, maxFramePayloadSize=0, autoPingInterval=0)
    wsSingle = [wsFactory.prepareMessage(s, isBinary=True).payloadHybi for s in spots]
    wsBlob = b"".join(wsSingle[i % len(spots)] for i in range(BATCH))

    class WsServer(WebSocketServerProtocol):  # type: ignore[misc]
        kind = "ws"
        subscribed = False

        def onOpen(self) -> None:
            connections.append(self)

        def onClose(self, wasClean: bool, code: Any, reason: Any) -> None:
            if self in connections:
                connections.remove(self)

        def onMessage(self, payload: bytes, isBinary: bool) -> None:
            reply = answer(payload, self)
            if reply is not None:
                self.sendMessage(reply, isBinary=True)

    wsFactory.protocol = WsServer

    class ControlServer(LineReceiver):
        delimiter = b"\n"

        def lineReceived(self, line: bytes) -> None:
            words = line.decode().split()
            if words[0] == "burst":
                count = int(words[1])
                for c in list(connections):
                    if c.subscribed:
                        if c.kind == "tcp":
                            Streamer(reactor, c.transport, tcpBlob, BATCH, tcpSingle[0], count)
                        else:
                            Streamer(reactor, c.transport, wsBlob, BATCH, wsSingle[0], count)
                self.sendLine(f"ok {count}".encode())
            elif words[0] == "prep":
                prepared[int(words[1])] = symbolsList(int(words[1]))
                self.sendLine(f"ok {len(prepared[int(words[1])])}".encode())
            elif words[0] == "big":
                size, chunk = int(words[1]), int(words[2])
                data = prepared.get(size) or symbolsList(size)
                for c in list(connections):
                    if c.kind == "tcp":
                        framed = len(data).to_bytes(4, "big") + data
                        view = memoryview(framed)
                        for i in range(0, len(framed), chunk):
                            c.transport.write(bytes(view[i : i + chunk]))
                    else:
                        c.sendMessage(data, isBinary=True)
                self.sendLine(f"ok {len(data)}".encode())
            else:
                self.sendLine(b"error unknown command")

    authority = Authority("ctrader-twisted bench CA")
    options = authority.issue("localhost").options()

    def started(ports: list[Any]) -> None:
        print(json.dumps({"tcp": ports[0].getHost().port, "ws": ports[1].getHost().port,
                          "control": ports[2].getHost().port, "ca": authority.pem.decode()}), flush=True)

    gatherResults([
        SSL4ServerEndpoint(reactor, 0, options, interface="127.0.0.1").listen(Factory.forProtocol(TcpServer)),
        SSL4ServerEndpoint(reactor, 0, options, interface="127.0.0.1").listen(wsFactory),
        TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(Factory.forProtocol(ControlServer)),
    ]).addCallback(started)
    # The parent closes our stdin when it is done: stop then.
    from twisted.internet import stdio
    from twisted.internet.protocol import Protocol

    class StopOnEOF(Protocol):
        def connectionLost(self, reason: Any) -> None:
            if reactor.running:  # type: ignore[attr-defined]
                reactor.stop()  # type: ignore[attr-defined]

    stdio.StandardIO(StopOnEOF())
    reactor.run()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
