"""Hostile servers against the client: no hang, no crash, whatever they do.

The TLS tarpit runs over real loopback (a real TLS handshake is the point,
with a short deadline); the rest runs in memory on a Clock.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.protocol import Factory as ServerFactory, Protocol
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import implementer

from ctrader_twisted import Client, TcpProtocol
from ctrader_twisted.endpoints import clientEndpoint
from ctrader_twisted.errors import HandshakeTimeoutError, NotSentTimeout
from ctrader_twisted.messages.OpenApiCommonMessages_pb2 import ProtoMessage
from ctrader_twisted.messages.OpenApiMessages_pb2 import ProtoOASymbolsListRes
from ctrader_twisted.testing import MemoryEndpoint

from .test_client import _TLSServerMixin


class _Tarpit(Protocol):
    """Accepts TCP and never says a word (so a TLS handshake never ends)."""

    def dataReceived(self, data: bytes) -> None:
        pass


@implementer(IStreamClientEndpoint)
class _Sequence:
    """Each connection attempt goes to the next endpoint of a list (the last repeats)."""

    def __init__(self, endpoints: list[Any]) -> None:
        self.endpoints = endpoints
        self.attempts = 0

    def connect(self, factory: Any) -> Any:
        endpoint = self.endpoints[min(self.attempts, len(self.endpoints) - 1)]
        self.attempts += 1
        return endpoint.connect(factory)


class TlsTarpitTests(_TLSServerMixin, TestCase):
    @defer.inlineCallbacks
    def test_tarpitFailsTheAttemptAndTheNextServerAnswers(self) -> Any:
        """A server that accepts TCP and never completes TLS: the handshake
        deadline ends the attempt, the disconnected callback hears why, and
        the next attempt reaches a good server, which answers the request
        made meanwhile."""
        from twisted.internet import reactor

        tarpit = yield TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(ServerFactory.forProtocol(_Tarpit))
        self.addCleanup(tarpit.stopListening)
        good = self.startServer()
        endpoints = [
            clientEndpoint(reactor, "localhost", port, trustRoot=self.authority.certificate)
            for port in (tarpit.getHost().port, good)
        ]
        sequence = _Sequence(endpoints)
        client = Client(
            "localhost", good, TcpProtocol, reactor=reactor, endpoint=sequence,
            handshakeTimeout=0.3, retryPolicy=lambda attempt: 0.05,
        )
        self.addCleanup(client.stopService)
        reasons: list[Failure] = []
        client.setDisconnectedCallback(lambda c, reason: reasons.append(reason))
        client.startService()
        d = client.request("VersionReq", responseTimeoutInSeconds=5)
        result = yield d
        self.assertEqual(result.version, "91")
        self.assertEqual(sequence.attempts, 2)
        self.assertTrue(reasons[0].check(HandshakeTimeoutError), reasons[0])
        self.assertIn("TLS handshake did not finish within 0.3 s", str(reasons[0].value))

    @defer.inlineCallbacks
    def test_onlyTarpitsStillFireEveryDeferred(self) -> Any:
        from twisted.internet import reactor

        tarpit = yield TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(ServerFactory.forProtocol(_Tarpit))
        self.addCleanup(tarpit.stopListening)
        client = Client(
            "localhost", tarpit.getHost().port, TcpProtocol, reactor=reactor,
            handshakeTimeout=0.2, retryPolicy=lambda attempt: 0.05,
        )
        self.addCleanup(client.stopService)
        client.startService()
        yield self.assertFailure(client.request("VersionReq", responseTimeoutInSeconds=1), NotSentTimeout)


class SlowLargeAnswerTests(SynchronousTestCase):
    def test_bytesArrivingSteadilyAreNotSilence(self) -> None:
        """A 4 MB answer trickling in for longer than the silence timeout
        keeps the connection: bytes are activity, not only whole frames."""
        clock = Clock()
        endpoint = MemoryEndpoint(clock)
        client = Client("localhost", 5035, clock=clock, endpoint=endpoint, silenceTimeout=10, heartbeatInterval=None)
        self.addCleanup(client.stopService)
        client.startService()
        endpoint.flush()
        d = client.request("SymbolsListReq", ctidTraderAccountId=1, responseTimeoutInSeconds=None)
        endpoint.flush()
        server = endpoint.servers[-1]
        request = server.requests()[-1]
        answer = ProtoOASymbolsListRes(ctidTraderAccountId=1)
        for i in range(60_000):
            answer.archivedSymbol.add(symbolId=i, name=f"SYMBOL{i:06d}", utcLastUpdateTimestamp=1_700_000_000_000)
        envelope = ProtoMessage(payloadType=2115, payload=answer.SerializeToString(), clientMsgId=request.clientMsgId)
        data = envelope.SerializeToString()
        framed = len(data).to_bytes(4, "big") + data
        pieces = 30  # one piece per second: 30 s, three times the silence timeout
        size = len(framed) // pieces + 1
        transport = server.transport
        for i in range(pieces):
            transport.write(framed[i * size : (i + 1) * size])
            endpoint.flush()
            clock.advance(1)
            self.assertTrue(client.isConnected, f"dropped after {i + 1} s")
        endpoint.flush()
        self.assertEqual(len(self.successResultOf(d).archivedSymbol), 60_000)

    def test_silenceIsStillSilence(self) -> None:
        clock = Clock()
        endpoint = MemoryEndpoint(clock)
        client = Client("localhost", 5035, clock=clock, endpoint=endpoint, silenceTimeout=10, heartbeatInterval=None)
        self.addCleanup(client.stopService)
        client.startService()
        endpoint.flush()
        clock.pump([2.5] * 5)
        endpoint.flush()
        self.assertFalse(client.isConnected)
