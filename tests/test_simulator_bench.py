"""``Simulator.writeToAll``: one pre-serialized message to every connection.

The benchmarks (``bench/``) use it to push a response of several megabytes
in small writes. The unit tests drive a server protocol over an in-memory
transport with a ``task.Clock``; the loopback tests check that the real
client decodes what it wrote, over TLS TCP and ``wss://``.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import TestCase

from ctrader_twisted import Client
from ctrader_twisted.messages.OpenApiCommonMessages_pb2 import ProtoMessage
from ctrader_twisted.messages.OpenApiMessages_pb2 import ProtoOASymbolsListRes
from ctrader_twisted.simulator import Simulator
from ctrader_twisted.tcp import TcpProtocol, frame
from ctrader_twisted.websocket import WebSocketProtocol


def symbolsList(count: int) -> bytes:
    """A serialized ``ProtoMessage`` carrying a ``ProtoOASymbolsListRes`` of *count* symbols."""
    res = ProtoOASymbolsListRes(ctidTraderAccountId=2000001)
    for i in range(count):
        res.symbol.add(symbolId=100_000 + i, symbolName=f"SYM{i}", enabled=True, description=f"symbol number {i}")
    return ProtoMessage(payloadType=res.payloadType, payload=res.SerializeToString()).SerializeToString()


class RecordingTransport(StringTransport):
    """A ``StringTransport`` that also keeps every write separately."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))
        super().write(data)


class WriteToAllUnitTests(TestCase):
    def setUp(self) -> None:
        self.sim = Simulator(seed=0, clock=Clock())

    def connect(self) -> tuple[Any, RecordingTransport]:
        proto = self.sim.buildProtocol(None)
        transport = RecordingTransport()
        proto.makeConnection(transport)
        self.addCleanup(lambda: proto.connectionLost() if not proto.session.closed else None)
        return proto, transport

    def test_chunkedWrites(self) -> None:
        """A TCP session gets the length-prefixed frame in *chunkSize*-byte writes."""
        _, transport = self.connect()
        data = symbolsList(50)
        written = self.sim.writeToAll(data, chunkSize=100)
        framed = frame(data)
        self.assertEqual(written, len(framed))
        self.assertEqual(b"".join(transport.writes), framed)
        self.assertEqual([len(w) for w in transport.writes[:-1]], [100] * (len(transport.writes) - 1))
        self.assertEqual(len(transport.writes), -(-len(framed) // 100))
        self.assertEqual(self.sim.sessions[0].written, 1)

    def test_oneWrite(self) -> None:
        """Without *chunkSize* the frame goes out in one write."""
        _, transport = self.connect()
        data = symbolsList(3)
        self.assertEqual(self.sim.writeToAll(data), len(data) + 4)
        self.assertEqual(transport.writes, [frame(data)])

    def test_everyLiveSession(self) -> None:
        """Every live session gets it; one already gone is skipped and not counted."""
        _, first = self.connect()
        gone, second = self.connect()
        gone.connectionLost()
        data = symbolsList(2)
        self.assertEqual(self.sim.writeToAll(data, chunkSize=7), len(data) + 4)
        self.assertEqual(first.value(), frame(data))
        self.assertEqual(second.value(), b"")

    def test_noConnection(self) -> None:
        """With nobody connected nothing is written."""
        self.assertEqual(self.sim.writeToAll(symbolsList(1), chunkSize=10), 0)

    def test_badChunkSize(self) -> None:
        """A chunk size below 1 is refused."""
        self.assertRaises(ValueError, self.sim.writeToAll, b"x", 0)


class WriteToAllLoopbackTests(TestCase):
    timeout = 30

    def setUp(self) -> None:
        self.sim = Simulator(seed=0, spotInterval=3600)
        self.listening = self.sim.listen(reactor)
        self.addCleanup(self.sim.stop)

    async def receive(self, protocol: type, port: int) -> None:
        client = Client(
            "localhost", port, protocol, reactor=reactor, trustRoot=self.listening.caCertificate,
            clientId=self.sim.clientId, clientSecret=self.sim.clientSecret,
        )
        client.startService()
        self.addCleanup(client.stopService)
        await client.whenReady()
        received: defer.Deferred[Any] = defer.Deferred()
        client.addListener("ProtoOASymbolsListRes", received.callback)
        data = symbolsList(20_000)  # about 0.6 MB
        self.assertGreater(self.sim.writeToAll(data, chunkSize=4096), len(data) - 1)
        res = await received
        self.assertEqual(len(res.symbol), 20_000)
        self.assertEqual(res.symbol[-1].symbolName, "SYM19999")

    async def test_tls(self) -> None:
        """A client over TLS TCP decodes the message written in 4 KiB pieces."""
        await self.receive(TcpProtocol, self.listening.tlsPort)  # type: ignore[arg-type]

    async def test_webSocket(self) -> None:
        """A ``wss://`` client gets it as one binary message."""
        await self.receive(WebSocketProtocol, self.listening.wsPort)  # type: ignore[arg-type]
