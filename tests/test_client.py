"""Client: the official SDK's API and life cycle, in memory and over real loopback TLS."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from OpenSSL.SSL import Error as OpenSSLError
from service_identity import VerificationError
from twisted.internet import defer
from twisted.internet.endpoints import SSL4ServerEndpoint
from twisted.internet.protocol import Factory as ServerFactory
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase

from ctrader_twisted import Client, EndPoints, Protobuf, TcpProtocol
from ctrader_twisted.errors import NotConnectedError, NotSentError, OutcomeUnknownError, RequestTimeout
from ctrader_twisted.messages.OpenApiMessages_pb2 import ProtoOAApplicationAuthRes, ProtoOAVersionRes

from ctrader_twisted.testing import MemoryEndpoint, ScriptedServer
from .tlsutil import Authority
from .util import ROOT


def noJitter(attempt: int) -> float:
    return 1.0


class ImportTests(SynchronousTestCase):
    def test_importDoesNotInstallTheGlobalReactor(self) -> None:
        code = (
            "import sys, ctrader_twisted, ctrader_twisted.client, ctrader_twisted.factory;"
            "sys.exit('twisted.internet.reactor' in sys.modules)"
        )
        result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True)
        self.assertEqual(result.returncode, 0, result.stderr)

    def test_endpoints(self) -> None:
        self.assertEqual(EndPoints.PROTOBUF_DEMO_HOST, "demo.ctraderapi.com")
        self.assertEqual(EndPoints.PROTOBUF_LIVE_HOST, "live.ctraderapi.com")
        self.assertEqual(EndPoints.PROTOBUF_PORT, 5035)

    def test_badArguments(self) -> None:
        clock = Clock()
        endpoint = MemoryEndpoint(clock)
        self.assertRaises(ValueError, Client, "", 5035, endpoint=endpoint, clock=clock)
        self.assertRaises(ValueError, Client, "h", 0, endpoint=endpoint, clock=clock)
        self.assertRaises(ValueError, Client, "h", 5035, endpoint=endpoint, clock=clock, heartbeatInterval=-1)


class InMemoryClientTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.endpoint = MemoryEndpoint(self.clock)
        self.client = Client(
            "localhost", 5035, TcpProtocol, retryPolicy=noJitter, clock=self.clock, endpoint=self.endpoint
        )
        self.events: list[Any] = []
        self.client.setConnectedCallback(lambda c: self.events.append(("connected", c)))
        self.client.setDisconnectedCallback(lambda c, reason: self.events.append(("disconnected", c)))
        self.client.setMessageReceivedCallback(lambda c, m: self.events.append(("message", m.payloadType)))

    def tearDown(self) -> None:
        self.client.stopService()
        self.endpoint.flush()

    @property
    def server(self) -> ScriptedServer:
        return self.endpoint.servers[-1]

    def test_officialFlow(self) -> None:
        self.client.startService()
        self.assertEqual(self.events, [("connected", self.client)])
        self.assertTrue(self.client.isConnected)
        d = self.client.send("ApplicationAuthReq", clientId="id", clientSecret="secret")
        self.endpoint.flush()
        request = self.server.requests()[-1]
        self.server.reply(request, ProtoOAApplicationAuthRes())
        self.endpoint.flush()
        message = self.successResultOf(d)
        self.assertEqual(Protobuf.extract(message).DESCRIPTOR.name, "ProtoOAApplicationAuthRes")
        self.assertIn(("message", 2101), self.events)

    def test_requestDecodes(self) -> None:
        self.client.startService()
        d = self.client.request("VersionReq")
        self.endpoint.flush()
        self.server.reply(self.server.requests()[-1], ProtoOAVersionRes(version="91"))
        self.endpoint.flush()
        self.assertEqual(self.successResultOf(d).version, "91")

    def test_sendBeforeStartFailsClearly(self) -> None:
        failure = self.failureResultOf(self.client.send("VersionReq"), NotConnectedError)
        self.assertIn("startService", str(failure.value))

    def test_badArgumentsFailEvenWhenStopped(self) -> None:
        """An unknown message fails the Deferred (an IndexError, as in the
        official SDK), whatever the client's state."""
        self.failureResultOf(self.client.send("NoSuchReq"), IndexError)

    def test_clockDrivesTimeouts(self) -> None:
        # The official SDK ignored the clock argument for timeouts.
        self.client.startService()
        d = self.client.request("VersionReq", responseTimeoutInSeconds=2)
        self.clock.advance(2)
        self.failureResultOf(d, RequestTimeout)

    def test_reconnectsAndFailsPendingAsOutcomeUnknown(self) -> None:
        self.client.startService()
        d = self.client.request("VersionReq")
        self.endpoint.flush()
        self.endpoint.pumps[-1].clientIO.loseConnection()  # type: ignore[attr-defined]
        self.endpoint.flush()
        self.failureResultOf(d, OutcomeUnknownError)
        self.assertIn(("disconnected", self.client), self.events)
        self.assertFalse(self.client.isConnected)
        self.clock.advance(1.0)
        self.assertTrue(self.client.isConnected)
        self.assertEqual(len(self.endpoint.servers), 2)

    def test_requestsWhileDisconnectedWaitForTheConnection(self) -> None:
        self.endpoint.refuse = True
        self.client.startService()
        d = self.client.request("VersionReq")
        self.assertNoResult(d)
        self.endpoint.refuse = False
        self.clock.advance(1.0)
        self.endpoint.flush()
        self.server.reply(self.server.requests()[-1], ProtoOAVersionRes(version="91"))
        self.endpoint.flush()
        self.successResultOf(d)

    def test_failFast(self) -> None:
        client = Client("localhost", 5035, clock=self.clock, endpoint=self.endpoint, failFast=True, retryPolicy=noJitter)
        self.endpoint.refuse = True
        client.startService()
        self.failureResultOf(client.request("VersionReq"), NotConnectedError)
        client.stopService()

    def test_stopServiceWhileDisconnected(self) -> None:
        # The official SDK's stopService did nothing unless connected and kept retrying.
        self.endpoint.refuse = True
        self.client.startService()
        queued = self.client.request("VersionReq")
        attempts = len(self.clock.getDelayedCalls())
        self.assertTrue(attempts)
        d = self.client.stopService()
        self.successResultOf(d)
        self.assertFalse(self.client.running)
        self.failureResultOf(queued, NotSentError)
        self.assertEqual([c for c in self.clock.getDelayedCalls() if c.active()], [])

    def test_stopServiceWhenNeverStarted(self) -> None:
        self.successResultOf(self.client.stopService())

    def test_stopServiceWhileConnected(self) -> None:
        self.client.startService()
        d = self.client.request("VersionReq")
        self.endpoint.flush()
        stopped = self.client.stopService()
        self.endpoint.flush()
        self.successResultOf(stopped)
        self.failureResultOf(d, OutcomeUnknownError)
        self.assertTrue(self.server.lost)

    def test_exceptionInMessageCallbackDoesNotKillConnection(self) -> None:
        def bad(client: Client, message: Any) -> None:
            raise RuntimeError("user bug")

        self.client.setMessageReceivedCallback(bad)
        self.client.startService()
        d = self.client.request("VersionReq")
        self.endpoint.flush()
        self.server.reply(self.server.requests()[-1], ProtoOAVersionRes(version="91"))
        self.endpoint.flush()
        self.successResultOf(d)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertTrue(self.client.isConnected)

    def test_numberOfMessagesToSendPerSecondIsTheRateLimit(self) -> None:
        client = Client("localhost", 5035, clock=self.clock, endpoint=self.endpoint,
                        numberOfMessagesToSendPerSecond=3)
        client.startService()
        for _ in range(5):
            client.request("VersionReq", responseTimeoutInSeconds=None)
        self.endpoint.flush()
        self.assertEqual(len(self.server.requests()), 3)
        client.stopService()
        self.endpoint.flush()
        self.flushLoggedErrors()

    def test_listeners(self) -> None:
        seen: list[Any] = []
        self.client.addListener("ProtoOAVersionRes", seen.append)
        self.client.startService()
        self.server.push(ProtoOAVersionRes(version="x"))
        self.endpoint.flush()
        self.assertEqual([m.version for m in seen], ["x"])
        self.client.removeListener("ProtoOAVersionRes", seen.append)
        self.server.push(ProtoOAVersionRes(version="y"))
        self.endpoint.flush()
        self.assertEqual(len(seen), 1)


class _TLSServerMixin:
    """A real loopback TLS server speaking the framing, with a minted CA."""

    def startServer(self: Any, dnsName: str = "localhost", expired: bool = False) -> int:
        from twisted.internet import reactor

        self.authority = Authority()
        certificate = self.authority.issue(dnsName, expired=expired)
        self.servers: list[ScriptedServer] = []

        def build() -> ScriptedServer:
            server = ScriptedServer()
            server.auto[2104] = lambda req: ProtoOAVersionRes(version="91")
            self.servers.append(server)
            return server

        endpoint = SSL4ServerEndpoint(reactor, 0, certificate.options(), interface="127.0.0.1")
        # SSL4ServerEndpoint.listen fires synchronously (listenSSL is synchronous).
        listening: list[Any] = []
        endpoint.listen(ServerFactory.forProtocol(build)).addCallback(listening.append)
        port = listening[0]
        self.addCleanup(port.stopListening)
        return port.getHost().port

    def client(self: Any, port: int, **kwargs: Any) -> Client:
        from twisted.internet import reactor

        kwargs.setdefault("trustRoot", self.authority.certificate)
        client = Client("localhost", port, TcpProtocol, reactor=reactor, **kwargs)
        self.addCleanup(client.stopService)
        return client


class LoopbackTLSTests(_TLSServerMixin, TestCase):
    @defer.inlineCallbacks
    def test_requestOverVerifiedTLS(self) -> Any:
        port = self.startServer()
        client = self.client(port)
        client.startService()
        result = yield client.request("VersionReq")
        self.assertEqual(result.version, "91")
        raw = yield client.send("VersionReq")
        self.assertEqual(raw.payloadType, 2105)

    @defer.inlineCallbacks
    def test_trustRootAsPemBytes(self) -> Any:
        port = self.startServer()
        client = self.client(port, trustRoot=self.authority.pem)
        client.startService()
        result = yield client.request("VersionReq")
        self.assertEqual(result.version, "91")

    def whenAttemptFails(self, client: Client) -> defer.Deferred[Any]:
        d: defer.Deferred[Any] = defer.Deferred()
        client.factory.addAttemptFailureObserver(lambda reason: d.called or d.callback([reason]))
        return d

    @defer.inlineCallbacks
    def assertRefused(self, port: int, *errors: type, **kwargs: Any) -> Any:
        client = self.client(port, **kwargs)
        failed = self.whenAttemptFails(client)
        client.startService()
        d = client.request("VersionReq")
        (reason,) = yield failed
        self.assertTrue(reason.check(*errors), reason)
        self.assertFalse(client.isConnected)
        yield client.stopService()
        yield self.assertFailure(d, NotSentError)
        self.assertEqual(self.servers[0].requests() if self.servers else [], [])

    def test_untrustedCertificateRefused(self) -> Any:
        port = self.startServer()
        return self.assertRefused(port, OpenSSLError, trustRoot=Authority().certificate)

    def test_platformTrustRefusesSelfSignedCA(self) -> Any:
        port = self.startServer()
        return self.assertRefused(port, OpenSSLError, trustRoot=None)

    @defer.inlineCallbacks
    def test_wrongHostNameRefused(self) -> Any:
        port = self.startServer(dnsName="other.example")
        yield self.assertRefused(port, VerificationError, OpenSSLError)
        self.flushLoggedErrors(VerificationError)

    def test_expiredCertificateRefused(self) -> Any:
        port = self.startServer(expired=True)
        return self.assertRefused(port, OpenSSLError)
