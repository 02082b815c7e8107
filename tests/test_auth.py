"""Tests for ctrader_twisted.auth: the official ``Auth`` contract (blocking)
and the non-blocking treq API, against the simulator's OAuth pages and
against hostile token services."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qs, urlsplit

from OpenSSL import SSL
from treq.testing import StubTreq
from twisted.internet import reactor, task
from twisted.internet.defer import Deferred, fail, inlineCallbacks, succeed
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.threads import deferToThread
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import ResponseNeverReceived
from twisted.web.resource import Resource
from twisted.web.server import Site

from ctrader_twisted import Auth as ExportedAuth
from ctrader_twisted import EndPoints
from ctrader_twisted.auth import (
    MAX_ANSWER_SIZE,
    Auth,
    TokenRequestError,
    TokenServiceError,
    TokenTimeoutError,
)
from ctrader_twisted.simulator import Simulator
from ctrader_twisted.tokens import Tokens

from .test_simulator_oauth import REDIRECT, OAuthHarness
from .util import ROOT

SECRET = "sim-client-secret"


def redirectCode(location: str) -> str:
    return parse_qs(urlsplit(location).query)["code"][0]


class AuthUriTests(SynchronousTestCase):
    """``getAuthUri``: the official URL for plain values, encoded otherwise."""

    def test_officialUrlForPlainValues(self) -> None:
        auth = Auth("1234_abcd", SECRET, "http://localhost:8080/redirect")
        official = f"{EndPoints.AUTH_URI}?client_id=1234_abcd&redirect_uri=http://localhost:8080/redirect&scope=trading"
        self.assertEqual(auth.getAuthUri(), official)
        self.assertEqual(auth.getAuthUri("accounts", "https://x.test/auth"),
                         "https://x.test/auth?client_id=1234_abcd&redirect_uri=http://localhost:8080/redirect&scope=accounts")

    def test_encodesWhatWouldBreakTheQuery(self) -> None:
        """A redirect URI with its own query survives the round trip (the official SDK's URL breaks)."""
        redirect = "https://app.example/cb?next=/home&lang=en #x"
        url = Auth("id", SECRET, redirect).getAuthUri(baseUri="https://x.test/auth?v=2")
        query = parse_qs(urlsplit(url).query)
        self.assertEqual(query["redirect_uri"], [redirect])
        self.assertEqual((query["client_id"], query["scope"], query["v"]), (["id"], ["trading"], ["2"]))

    def test_badArguments(self) -> None:
        auth = Auth("id", SECRET, REDIRECT)
        with self.assertRaises(ValueError) as raised:
            auth.getAuthUri("admin")
        self.assertIn("trading, accounts", str(raised.exception))
        self.assertRaises(ValueError, Auth("id", SECRET, None).getAuthUri)
        for args, kwargs in (
            (("", SECRET, REDIRECT), {}),
            (("id", "", REDIRECT), {}),
            (("id", SECRET, 5), {}),
            (("id", SECRET, REDIRECT), {"timeout": float("nan")}),
            (("id", SECRET, REDIRECT), {"timeout": -1}),
            (("id", SECRET, REDIRECT), {"timeout": True}),
        ):
            self.assertRaises(ValueError, Auth, *args, **kwargs)

    def test_reprHidesTheSecret(self) -> None:
        auth = Auth("id", SECRET, REDIRECT)
        self.assertNotIn(SECRET, repr(auth))
        self.assertIn("id", repr(auth))

    def test_exportedFromThePackage(self) -> None:
        self.assertIs(ExportedAuth, Auth)

    def test_importIsLazy(self) -> None:
        """Importing the package (and Auth) loads neither treq nor the reactor."""
        code = (
            "import sys, ctrader_twisted; from ctrader_twisted import Auth; "
            "Auth('i', 's', 'http://localhost:1/').getAuthUri(); "
            "print('treq' in sys.modules, 'twisted.internet.reactor' in sys.modules)"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
        self.assertEqual(out.stdout.strip(), "False False", out.stderr)


class NonBlockingTests(SynchronousTestCase):
    """``requestToken``/``requestRefresh`` against the simulator's token endpoint, in memory."""

    def setUp(self) -> None:
        self.oauth = OAuthHarness(self)
        self.sim = self.oauth.sim
        self.clock = self.oauth.server.clock
        self.auth = Auth(self.sim.clientId, self.sim.clientSecret, REDIRECT, reactor=self.clock, httpClient=self.oauth.http)
        self.tokenUri = "https://localhost:5037/apps/token"

    def resolve(self, d: Deferred[Any]) -> Any:
        self.oauth.http.flush()
        return d

    def test_codeExchangeAndRefresh(self) -> None:
        """Typed tokens (expiresAt from the reactor's clock), then a refresh; they authorize accounts."""
        tokens = self.successResultOf(self.resolve(self.auth.requestToken(self.oauth.code(), self.tokenUri)))
        self.assertIsInstance(tokens, Tokens)
        self.assertEqual(tokens.expiresAt, datetime.fromtimestamp(self.clock.seconds() + 2628000, timezone.utc))
        self.assertIn(tokens.accessToken, self.sim.tokens)
        renewed = self.successResultOf(self.resolve(self.auth.requestRefresh(tokens.refreshToken, self.tokenUri)))
        self.assertNotEqual(renewed.accessToken, tokens.accessToken)
        self.assertTrue(self.sim.tokens[renewed.accessToken].valid)
        server = self.oauth.server
        client = server.connect(server.managedClient())
        self.addCleanup(lambda: server.resultOf(client.stopService()))
        self.assertEqual(server.resultOf(client.authorizeAccount(2000002, renewed.accessToken)).ctidTraderAccountId, 2000002)

    def test_bytesCode(self) -> None:
        """A code as bytes (Twisted Web's ``request.args``) works."""
        code = self.oauth.code().encode()
        self.successResultOf(self.resolve(self.auth.requestToken(code, self.tokenUri)))

    def test_serviceRefusals(self) -> None:
        """A used code, a used refresh token, a wrong secret: TokenServiceError with the service's code."""
        code = self.oauth.code()
        tokens = self.successResultOf(self.resolve(self.auth.requestToken(code, self.tokenUri)))
        failure = self.failureResultOf(self.resolve(self.auth.requestToken(code, self.tokenUri)), TokenServiceError)
        self.assertEqual(failure.value.errorCode, "invalid_grant")
        self.assertIn("already used", failure.value.description)
        self.assertEqual(str(failure.value), f"invalid_grant: {failure.value.description}")
        self.successResultOf(self.resolve(self.auth.requestRefresh(tokens.refreshToken, self.tokenUri)))
        failure = self.failureResultOf(self.resolve(self.auth.requestRefresh(tokens.refreshToken, self.tokenUri)))
        self.assertEqual(failure.value.errorCode, "invalid_grant")
        wrong = Auth(self.sim.clientId, "wrong-secret", REDIRECT, reactor=self.clock, httpClient=self.oauth.http)
        failure = self.failureResultOf(self.resolve(wrong.requestToken(self.oauth.code(), self.tokenUri)))
        self.assertEqual(failure.value.errorCode, "invalid_client")
        self.assertNotIn("wrong-secret", str(failure.value) + repr(failure.value))

    def test_badArgumentsFailTheDeferred(self) -> None:
        for d in (
            self.auth.requestToken(b"\xff\xfe", self.tokenUri),
            self.auth.requestToken("", self.tokenUri),
            self.auth.requestToken("a\nb", self.tokenUri),
            self.auth.requestRefresh(None, self.tokenUri),  # type: ignore[arg-type]
            Auth("i", "s", None, reactor=self.clock, httpClient=self.oauth.http).requestToken("c", self.tokenUri),
        ):
            self.failureResultOf(d, ValueError)
        failure = self.failureResultOf(self.auth.requestToken("c", "http://token.example/apps/token"), ValueError)
        self.assertIn("https", str(failure.value))
        self.failureResultOf(self.auth.requestToken("c", "ftp://localhost/x"), ValueError)


class _Answer(Resource):
    """A token service answering whatever the test sets."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.status = 200
        self.headers: dict[bytes, bytes] = {b"content-type": b"application/json"}
        self.body = b"{}"
        self.queries: list[dict[bytes, list[bytes]]] = []

    def render_GET(self, request: Any) -> bytes:
        self.queries.append(dict(request.args))
        request.setResponseCode(self.status)
        for name, value in self.headers.items():
            request.setHeader(name, value)
        return self.body


class HostileServiceTests(SynchronousTestCase):
    """Answers that are not the service's JSON, transport failures, timeouts (on a Clock)."""

    def setUp(self) -> None:
        self.answer = _Answer()
        self.http = StubTreq(self.answer)
        self.clock = Clock()
        self.auth = Auth("id", SECRET, REDIRECT, reactor=self.clock, httpClient=self.http)

    def refresh(self, auth: Auth | None = None) -> Deferred[Tokens]:
        d = (auth or self.auth).requestRefresh("refresh-1", "https://token.test/apps/token")
        self.http.flush()
        return d

    def assertRequestError(self, fragment: str, status: int | None = None) -> TokenRequestError:
        failure = self.failureResultOf(self.refresh(), TokenRequestError)
        self.assertIn(fragment, str(failure.value))
        self.assertEqual(failure.value.status, status)
        for secret in (SECRET, "refresh-1"):
            self.assertNotIn(secret, str(failure.value))
        return failure.value

    def test_sendsTheRealParameters(self) -> None:
        self.answer.body = json.dumps({"accessToken": "a", "refreshToken": "r", "tokenType": "bearer", "expiresIn": 9}).encode()
        tokens = self.successResultOf(self.refresh())
        self.assertEqual((tokens.accessToken, tokens.expiresIn), ("a", 9))
        self.assertEqual(self.answer.queries[-1], {
            b"grant_type": [b"refresh_token"], b"refresh_token": [b"refresh-1"],
            b"client_id": [b"id"], b"client_secret": [SECRET.encode()],
        })

    def test_notJson(self) -> None:
        self.answer.body = b"<html>maintenance</html>"
        self.assertRequestError("not a JSON object", 200)
        self.answer.body = b"[1, 2]"
        self.assertRequestError("not a JSON object", 200)

    def test_httpErrors(self) -> None:
        """An HTTP error without the service's JSON is a TokenRequestError; with it, a TokenServiceError."""
        self.answer.status, self.answer.body = 500, b"Internal Server Error"
        self.assertRequestError("HTTP 500", 500)
        self.answer.status, self.answer.body = 302, b""
        self.answer.headers[b"location"] = b"https://elsewhere.test/steal"
        self.assertRequestError("HTTP 302", 302)  # never followed: the request carries the secret
        self.assertEqual(len(self.answer.queries), 2)
        self.answer.status = 400
        self.answer.body = json.dumps({"errorCode": "ACCESS_DENIED", "description": "Access denied"}).encode()
        failure = self.failureResultOf(self.refresh(), TokenServiceError)
        self.assertEqual((failure.value.errorCode, failure.value.status), ("ACCESS_DENIED", 400))

    def test_malformedSuccess(self) -> None:
        """A success answer with missing or hostile fields is refused, naming the field."""
        for body, field in (
            ({"accessToken": "a", "expiresIn": 9}, "refreshToken"),
            ({"accessToken": "a", "refreshToken": "r", "expiresIn": -9}, "expiresIn"),
            ({"accessToken": "a", "refreshToken": "r", "expiresIn": 1e300}, "expiresIn"),
            ({"accessToken": "a", "refreshToken": "r", "expiresIn": True}, "expiresIn"),
        ):
            self.answer.body = json.dumps(body).encode()
            self.assertRequestError(field, 200)
        self.answer.body = b'{"accessToken": "a", "refreshToken": "r", "expiresIn": NaN}'
        self.assertRequestError("expiresIn", 200)

    def test_hostileErrorText(self) -> None:
        """The service's error text is bounded and printable."""
        self.answer.body = json.dumps({"errorCode": "E\x1b[31m" + "X" * 500, "description": "d\n" * 1000}).encode()
        failure = self.failureResultOf(self.refresh(), TokenServiceError)
        self.assertLessEqual(len(failure.value.errorCode), 100)
        self.assertLessEqual(len(failure.value.description), 500)
        self.assertTrue(str(failure.value).isprintable())

    def test_answerTooLarge(self) -> None:
        self.answer.body = b"{" + b" " * MAX_ANSWER_SIZE + b"}"
        self.assertRequestError("larger than")

    def test_transportFailures(self) -> None:
        """Refused connections and TLS failures: one line, the reason, never the URL."""

        class Failing:
            def __init__(self, error: Exception) -> None:
                self.error = error

            def get(self, url: str, **kwargs: Any) -> Deferred[Any]:
                return fail(self.error)

        for error, fragment in (
            (ConnectionRefusedError(), "Connection was refused"),
            (ResponseNeverReceived([Failure(SSL.Error([("SSL routines", "", "certificate verify failed")]))]),
             "TLS failure (certificate verify failed)"),
            (ValueError(f"https://token.test/?client_secret={SECRET}"), "ValueError"),
        ):
            auth = Auth("id", SECRET, REDIRECT, reactor=self.clock, httpClient=Failing(error))
            failure = self.failureResultOf(auth.requestRefresh("refresh-1", "https://token.test/apps/token"), TokenRequestError)
            self.assertIn(fragment, str(failure.value))
            self.assertIn("token.test", str(failure.value))
            self.assertNotIn(SECRET, str(failure.value))

    def test_timeoutWaitingForTheAnswer(self) -> None:
        """No answer within the timeout: TokenTimeoutError, and the request is cancelled."""
        cancelled: list[bool] = []

        class Silent:
            def get(self, url: str, **kwargs: Any) -> Deferred[Any]:
                return Deferred(lambda d: cancelled.append(True))

        auth = Auth("id", SECRET, REDIRECT, reactor=self.clock, httpClient=Silent(), timeout=5)
        d = auth.requestRefresh("refresh-1", "https://token.test/apps/token")
        self.clock.advance(4.9)
        self.assertNoResult(d)
        self.clock.advance(0.2)
        failure = self.failureResultOf(d, TokenTimeoutError)
        self.assertIn("within 5 s", str(failure.value))
        self.assertEqual(cancelled, [True])

    def test_timeoutWhileReadingTheBody(self) -> None:
        """A body that stops coming: TokenTimeoutError, and the connection is closed."""
        stopped: list[bool] = []

        class Transport:
            def stopProducing(self) -> None:
                stopped.append(True)

        class Response:
            code = 200
            length = 100

            def deliverBody(self, protocol: Protocol) -> None:
                protocol.makeConnection(Transport())  # type: ignore[arg-type]
                protocol.dataReceived(b'{"accessToken": ')

        class Slow:
            def get(self, url: str, **kwargs: Any) -> Deferred[Any]:
                return succeed(Response())

        auth = Auth("id", SECRET, REDIRECT, reactor=self.clock, httpClient=Slow(), timeout=3)
        d = auth.requestRefresh("refresh-1", "https://token.test/apps/token")
        self.assertNoResult(d)
        self.clock.advance(3)
        self.failureResultOf(d, TokenTimeoutError)
        self.assertEqual(stopped, [True])


class _Silent(Protocol):
    """Accepts a connection and never answers."""


class LoopbackTests(TestCase):
    """Both APIs over real loopback HTTPS against the simulator (TLS verified)."""

    timeout = 30

    def setUp(self) -> None:
        self.sim = Simulator(seed=3, clock=reactor)
        self.listening = self.sim.listen(reactor, tlsPort=None, wsPort=None, httpPort=0)
        self.addCleanup(self.sim.stop)
        self.auth = Auth(self.sim.clientId, self.sim.clientSecret, REDIRECT, reactor=reactor,
                         trustRoot=self.listening.caPEM, timeout=10)
        assert self.listening.authUri is not None and self.listening.tokenUri is not None
        self.authUri: str = self.listening.authUri
        self.tokenUri: str = self.listening.tokenUri

    def code(self) -> str:
        return self.sim.oauth.issueCode(self.sim.clientId, REDIRECT)

    @inlineCallbacks
    def test_consentAndExchange(self) -> Any:
        """The consent URL of getAuthUri redirects with a code that requestToken exchanges."""
        from treq.client import HTTPClient
        from twisted.web.client import Agent, BrowserLikePolicyForHTTPS, HTTPConnectionPool

        from ctrader_twisted.endpoints import loadTrustRoot

        agent = Agent(reactor, contextFactory=BrowserLikePolicyForHTTPS(loadTrustRoot(self.listening.caPEM)),
                      pool=HTTPConnectionPool(reactor, persistent=False))
        response = yield HTTPClient(agent).get(self.auth.getAuthUri(baseUri=self.authUri), allow_redirects=False)
        yield response.content()
        self.assertEqual(response.code, 302)
        location = response.headers.getRawHeaders(b"location")[0].decode()
        tokens = yield self.auth.requestToken(redirectCode(location), self.tokenUri)
        self.assertTrue(self.sim.tokens[tokens.accessToken].valid)

    @inlineCallbacks
    def test_untrustedCertificate(self) -> Any:
        """Without the simulator's CA the certificate is refused (non-blocking and blocking)."""
        untrusting = Auth(self.sim.clientId, self.sim.clientSecret, REDIRECT, reactor=reactor, timeout=10)
        error = yield self.assertFailure(untrusting.requestToken(self.code(), self.tokenUri), TokenRequestError)
        self.assertIn("TLS failure", str(error))
        error = yield self.assertFailure(deferToThread(untrusting.getToken, self.code(), self.tokenUri), TokenRequestError)
        self.assertIn("TLS failure", str(error))
        self.assertNotIn(self.sim.clientSecret, str(error))

    @inlineCallbacks
    def test_blockingOfficialSamples(self) -> Any:
        """The blocking calls serve both official samples: the console one (``token["accessToken"]``)
        and the Klein one (a bytes code, ``token["access_token"]``, ``errorCode`` checked)."""
        token = yield deferToThread(self.auth.getToken, self.code(), self.tokenUri)
        self.assertIn("accessToken", token)
        self.assertTrue(self.sim.tokens[token["accessToken"]].valid)
        self.assertEqual(token["access_token"], token["accessToken"])
        self.assertEqual((token["refresh_token"], token["expires_in"], token["token_type"]),
                         (token["refreshToken"], token["expiresIn"], token["tokenType"]))
        self.assertIsNone(token["errorCode"])

        klein = yield deferToThread(self.auth.getToken, self.code().encode(), self.tokenUri)
        self.assertFalse("errorCode" in klein and klein["errorCode"] is not None)
        self.assertTrue(self.sim.tokens[klein["access_token"]].valid)

        refreshed = yield deferToThread(self.auth.refreshToken, klein["refreshToken"], self.tokenUri)
        self.assertTrue(self.sim.tokens[refreshed["accessToken"]].valid)
        refused = yield deferToThread(self.auth.refreshToken, klein["refreshToken"], self.tokenUri)
        self.assertEqual(refused["errorCode"], "invalid_grant")  # returned, not raised, as the official SDK
        self.assertIsNone(refused["access_token"])

    @inlineCallbacks
    def test_blockingTransportFailures(self) -> Any:
        """A closed port, an answer that is not JSON, a silent server: typed errors, bounded in time."""
        auth = Auth("id", SECRET, REDIRECT, timeout=1)
        closed = reactor.listenTCP(0, Factory.forProtocol(_Silent), interface="127.0.0.1")
        port = closed.getHost().port
        yield closed.stopListening()
        error = yield self.assertFailure(deferToThread(auth.refreshToken, "r", f"http://127.0.0.1:{port}/t"), TokenRequestError)
        self.assertIn("refused", str(error))

        page = _Answer()
        page.status, page.body = 503, b"<html>down</html>"
        web = reactor.listenTCP(0, Site(page), interface="127.0.0.1")
        self.addCleanup(web.stopListening)
        url = f"http://127.0.0.1:{web.getHost().port}/apps/token"
        error = yield self.assertFailure(deferToThread(auth.refreshToken, "r", url), TokenRequestError)
        self.assertEqual(error.status, 503)
        page.status, page.body = 400, json.dumps({"errorCode": "ACCESS_DENIED", "description": "no"}).encode()
        answer = yield deferToThread(auth.refreshToken, "r", url)
        self.assertEqual(answer["errorCode"], "ACCESS_DENIED")
        page.status, page.body = 200, b"{" + b" " * MAX_ANSWER_SIZE + b"}"
        error = yield self.assertFailure(deferToThread(auth.refreshToken, "r", url), TokenRequestError)
        self.assertIn("larger than", str(error))

        silent = reactor.listenTCP(0, Factory.forProtocol(_Silent), interface="127.0.0.1")
        self.addCleanup(silent.stopListening)
        error = yield self.assertFailure(
            deferToThread(auth.refreshToken, "r", f"http://127.0.0.1:{silent.getHost().port}/t"), TokenTimeoutError
        )
        self.assertIn("within 1 s", str(error))
        self.assertRaises(ValueError, auth.refreshToken, "r", "http://token.example/apps/token")

    @inlineCallbacks
    def test_blockingOnTheReactorThreadWarns(self) -> Any:
        """A blocking call from a reactor callback logs a warning naming the non-blocking API."""
        events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        closed = reactor.listenTCP(0, Factory.forProtocol(_Silent), interface="127.0.0.1")
        port = closed.getHost().port
        yield closed.stopListening()
        auth = Auth("id", SECRET, REDIRECT, timeout=1)
        inThread = deferToThread(auth.refreshToken, "r", f"http://127.0.0.1:{port}/t")
        yield self.assertFailure(inThread, TokenRequestError)
        self.assertFalse(any("requestToken/requestRefresh" in e.get("log_format", "") for e in events))
        inCallback = task.deferLater(reactor, 0, lambda: auth.refreshToken("r", f"http://127.0.0.1:{port}/t"))
        yield self.assertFailure(inCallback, TokenRequestError)
        self.assertTrue(any("requestToken/requestRefresh" in e.get("log_format", "") for e in events))
