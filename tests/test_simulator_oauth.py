"""Tests for the simulator's OAuth pages (ctrader_twisted.simulator.oauth),
in memory (treq's StubTreq) on the simulator's Clock."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

from treq.testing import StubTreq
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.test.requesthelper import DummyRequest

from ctrader_twisted.auth import accessLogLine
from ctrader_twisted.simulator import tap
from ctrader_twisted.simulator.oauth import CODE_LIFETIME, MAX_CODES
from ctrader_twisted.testing import SimulatedServer

BASE = "https://localhost:5037"
REDIRECT = "http://localhost:8080/redirect"


class OAuthHarness:
    """A simulator on a Clock and an in-memory HTTP client of its OAuth pages."""

    def __init__(self, test: SynchronousTestCase) -> None:
        self.test = test
        self.server = SimulatedServer()
        self.sim = self.server.simulator
        self.http = StubTreq(self.sim.oauth.resource())

    def request(self, method: str, path: str, **params: Any) -> tuple[int, Any, bytes]:
        if method == "GET":
            d = self.http.get(BASE + path, params=params, allow_redirects=False)
        else:
            d = self.http.post(BASE + path, data=params, allow_redirects=False)
        self.http.flush()
        response = self.test.successResultOf(d)
        body = self.test.successResultOf(response.content())
        return response.code, response.headers, body

    def consent(self, **params: Any) -> tuple[int, str | None, bytes]:
        params.setdefault("client_id", self.sim.clientId)
        params.setdefault("redirect_uri", REDIRECT)
        params.setdefault("scope", "trading")
        code, headers, body = self.request("GET", "/apps/auth", **params)
        location = headers.getRawHeaders(b"location")
        return code, location[0].decode() if location else None, body

    def code(self, **params: Any) -> str:
        status, location, _ = self.consent(**params)
        self.test.assertEqual(status, 302)
        assert location is not None
        return parse_qs(urlsplit(location).query)["code"][0]

    def token(self, method: str = "GET", **params: Any) -> dict[str, Any]:
        params.setdefault("client_id", self.sim.clientId)
        params.setdefault("client_secret", self.sim.clientSecret)
        status, headers, body = self.request(method, "/apps/token", **params)
        self.test.assertEqual(status, 200)
        self.test.assertEqual(headers.getRawHeaders(b"content-type"), [b"application/json; charset=utf-8"])
        answer = json.loads(body)
        self.test.assertEqual(
            set(answer), {"accessToken", "tokenType", "expiresIn", "refreshToken", "errorCode", "description"}
        )
        return answer

    def exchange(self, code: str, redirectUri: str = REDIRECT, **params: Any) -> dict[str, Any]:
        return self.token(grant_type="authorization_code", code=code, redirect_uri=redirectUri, **params)


class ConsentPageTests(SynchronousTestCase):
    """``/apps/auth``: an immediate redirect with a code, or an error."""

    def setUp(self) -> None:
        self.oauth = OAuthHarness(self)

    def test_redirectsWithACode(self) -> None:
        status, location, _ = self.oauth.consent()
        self.assertEqual(status, 302)
        assert location is not None
        self.assertTrue(location.startswith(REDIRECT + "?code=sim-code-"), location)
        self.assertEqual(self.oauth.sim.oauth.codesIssued, 1)

    def test_redirectUriWithAQuery(self) -> None:
        """The code is appended to a redirect URI that already has a query."""
        _, location, _ = self.oauth.consent(redirect_uri="http://127.0.0.1:9/cb?state=a&b=c")
        assert location is not None
        query = parse_qs(urlsplit(location).query)
        self.assertEqual((query["state"], query["b"]), (["a"], ["c"]))
        self.assertIn("code", query)

    def test_refusedWithoutRedirect(self) -> None:
        """An unknown application or an unregistered redirect URI: an error page, no redirect."""
        for params, text in (
            ({"client_id": "nobody"}, b"Unknown application"),
            ({"redirect_uri": "https://evil.example/cb"}, b"redirect_uri is not registered"),
            ({"redirect_uri": "http://localhost/no-port"}, b"redirect_uri is not registered"),
            ({"redirect_uri": "not a url ["}, b"redirect_uri is not registered"),
        ):
            status, location, body = self.oauth.consent(**params)
            self.assertEqual((status, location), (400, None), params)
            self.assertIn(text, body)

    def test_registeredRedirects(self) -> None:
        """Registered URIs are accepted; loopback ones only while allowed."""
        oauth = self.oauth.sim.oauth
        oauth.registerRedirectUri(self.oauth.sim.clientId, "https://app.example/cb")
        self.assertEqual(self.oauth.consent(redirect_uri="https://app.example/cb")[0], 302)
        oauth.allowLoopbackRedirects = False
        self.assertEqual(self.oauth.consent()[0], 400)

    def test_scopeAndDenial(self) -> None:
        """A bad scope and a refusing user come back as ``error=`` on the redirect."""
        _, location, _ = self.oauth.consent(scope="everything")
        assert location is not None
        self.assertEqual(parse_qs(urlsplit(location).query)["error"], ["invalid_scope"])
        self.oauth.sim.oauth.denyConsent = True
        _, location, _ = self.oauth.consent()
        assert location is not None
        self.assertEqual(parse_qs(urlsplit(location).query)["error"], ["access_denied"])
        self.assertEqual(self.oauth.sim.oauth.codesIssued, 0)

    def test_codesBounded(self) -> None:
        """Outstanding codes are bounded (oldest dropped)."""
        oauth = self.oauth.sim.oauth
        first = oauth.issueCode("sim-client-id", REDIRECT)
        for _ in range(MAX_CODES):
            oauth.issueCode("sim-client-id", REDIRECT)
        self.assertEqual(len(oauth._codes), MAX_CODES)
        self.assertEqual(self.oauth.exchange(first)["errorCode"], "invalid_grant")


class TokenEndpointTests(SynchronousTestCase):
    """``/apps/token``: the code exchange and refreshes with the real parameters."""

    def setUp(self) -> None:
        self.oauth = OAuthHarness(self)
        self.sim = self.oauth.sim

    def test_exchange(self) -> None:
        """A code gives a token pair the simulator knows, granting every account; the error fields are null."""
        answer = self.oauth.exchange(self.oauth.code())
        self.assertIsNone(answer["errorCode"])
        self.assertIsNone(answer["description"])
        self.assertEqual((answer["tokenType"], answer["expiresIn"]), ("bearer", 2628000))
        token = self.sim.tokens[answer["accessToken"]]
        self.assertIs(self.sim.refreshTokens[answer["refreshToken"]], token)
        self.assertEqual(token.accountIds, self.sim.accountIds)
        self.assertEqual(self.sim.oauth.tokensIssued, 1)

    def test_grantAccountIds(self) -> None:
        self.sim.oauth.grantAccountIds = [2000002]
        answer = self.oauth.exchange(self.oauth.code())
        self.assertEqual(self.sim.tokens[answer["accessToken"]].accountIds, [2000002])

    def test_postForm(self) -> None:
        answer = self.oauth.token("POST", grant_type="authorization_code", code=self.oauth.code(), redirect_uri=REDIRECT)
        self.assertIsNone(answer["errorCode"])

    def assertRefused(self, answer: dict[str, Any], code: str, fragment: str = "") -> None:
        self.assertEqual(answer["errorCode"], code)
        self.assertIn(fragment, answer["description"])
        self.assertIsNone(answer["accessToken"])
        self.assertIsNone(answer["refreshToken"])

    def test_codeWorksOnce(self) -> None:
        code = self.oauth.code()
        self.oauth.exchange(code)
        self.assertRefused(self.oauth.exchange(code), "invalid_grant", "already used")

    def test_codeExpires(self) -> None:
        """A code lives 60 s on the simulator's clock."""
        code = self.oauth.code()
        self.oauth.server.clock.advance(CODE_LIFETIME - 1)
        self.assertIsNone(self.oauth.exchange(code)["errorCode"])
        late = self.oauth.code()
        self.oauth.server.clock.advance(CODE_LIFETIME + 1)
        self.assertRefused(self.oauth.exchange(late), "invalid_grant", "expired")

    def test_codeChecks(self) -> None:
        """The redirect URI must match; a code is bound to its application; a bad secret is invalid_client."""
        self.assertRefused(self.oauth.exchange(self.oauth.code(), "http://localhost:1/other"), "invalid_grant", "redirect_uri")
        self.sim.addApplication("other-app", "other-secret")
        code = self.oauth.code()
        self.assertRefused(
            self.oauth.exchange(code, client_id="other-app", client_secret="other-secret"), "invalid_grant"
        )
        self.assertRefused(self.oauth.exchange(self.oauth.code(), client_secret="wrong"), "invalid_client")
        self.assertRefused(self.oauth.exchange(self.oauth.code(), client_id="nobody"), "invalid_client")

    def test_malformedRequests(self) -> None:
        self.assertRefused(self.oauth.token(), "invalid_request", "grant_type")
        self.assertRefused(self.oauth.token(grant_type="password"), "unsupported_grant_type")
        self.assertRefused(self.oauth.token(grant_type="authorization_code"), "invalid_request", "code")
        self.assertRefused(self.oauth.token(grant_type="refresh_token"), "invalid_request", "refresh_token")
        self.assertRefused(self.oauth.token(grant_type="refresh_token", client_secret=""), "invalid_request")
        self.assertRefused(self.oauth.token(grant_type="authorization_code", code="x" * 5000), "invalid_request")
        self.assertRefused(self.oauth.token(grant_type=b"\xff"), "invalid_request", "UTF-8")

    def test_refresh(self) -> None:
        """A refresh gives a new pair; the old refresh token and access token stop working."""
        first = self.oauth.exchange(self.oauth.code())
        second = self.oauth.token(grant_type="refresh_token", refresh_token=first["refreshToken"])
        self.assertIsNone(second["errorCode"])
        self.assertNotEqual(second["accessToken"], first["accessToken"])
        self.assertFalse(self.sim.tokens[first["accessToken"]].valid)
        self.assertTrue(self.sim.tokens[second["accessToken"]].valid)
        again = self.oauth.token(grant_type="refresh_token", refresh_token=first["refreshToken"])
        self.assertRefused(again, "invalid_grant", "already used")
        self.assertRefused(self.oauth.token(grant_type="refresh_token", refresh_token="made-up"), "invalid_grant")

    def test_refreshEndsAccountSessions(self) -> None:
        """Accounts authorized with the old access token are logged out, as by ProtoOARefreshTokenReq."""
        first = self.oauth.exchange(self.oauth.code())
        server = self.oauth.server
        client = server.connect(server.managedClient())
        self.addCleanup(lambda: server.resultOf(client.stopService()))
        lost: list[int] = []
        client.setAccountLostCallback(lambda c, accountId, error: lost.append(accountId))
        server.resultOf(client.authorizeAccount(2000001, first["accessToken"]))
        self.assertEqual(list(self.sim.sessions[0].accounts), [2000001])
        self.oauth.token(grant_type="refresh_token", refresh_token=first["refreshToken"])
        server.advance(1)
        self.assertEqual(self.sim.sessions[0].accounts, {})
        self.assertEqual(lost, [2000001])


class AccessLogTests(SynchronousTestCase):
    def test_noQueryInTheAccessLog(self) -> None:
        """The OAuth pages log the path, never the query (codes, tokens, the client secret)."""
        request = DummyRequest([b"apps", b"token"])
        request.uri = b"/apps/token?client_secret=s3cret&code=c0de"
        request.method = b"GET"
        request.code = 200
        line = accessLogLine("[01/Jan/2026:00:00:00 +0000]", request)
        self.assertIn('"GET /apps/token" 200', line)
        self.assertNotIn("s3cret", line)
        self.assertNotIn("c0de", line)
        server = SimulatedServer()
        self.assertIs(server.simulator.oauth.site(server.clock)._logFormatter, accessLogLine)


class TapTests(SynchronousTestCase):
    """``ctrader-simulator --http-port``."""

    def test_httpPortOption(self) -> None:
        options = tap.Options()
        options.parseOptions([])
        self.assertIsNone(options["http-port"])
        options = tap.Options()
        options.parseOptions(["--http-port", "5037"])
        self.assertEqual(options["http-port"], 5037)
        from twisted.python import usage

        self.assertRaises(usage.UsageError, tap.Options().parseOptions, ["--http-port", "web"])

    def test_describeNamesTheOAuthPages(self) -> None:
        server = SimulatedServer()

        class Where:
            host, tlsPort, wsPort, plainPort, httpPort = "localhost", 5035, None, None, 5037
            authUri = "https://localhost:5037/apps/auth"
            tokenUri = "https://localhost:5037/apps/token"

        text = tap.describe(server.simulator, Where, None)
        self.assertIn("OAuth:      https://localhost:5037/apps/auth and https://localhost:5037/apps/token", text)
