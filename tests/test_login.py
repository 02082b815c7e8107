"""Tests for ``ctrader-twisted login`` and the token file in the command
line: end to end against the simulator's OAuth pages and TLS port over
loopback, the test playing the browser."""

from __future__ import annotations

import io
import json
import stat
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from treq.client import HTTPClient
from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import Agent, BrowserLikePolicyForHTTPS, HTTPConnectionPool

from ctrader_twisted import cli
from ctrader_twisted.cli import login
from ctrader_twisted.cli.options import UsageError
from ctrader_twisted.endpoints import loadTrustRoot
from ctrader_twisted.simulator import Simulator
from ctrader_twisted.tokens import FileTokenStore, fingerprint


class Browser:
    """Plays the user's browser: fetches the consent page, follows its
    redirect to the login command's listener (optionally tampering with it)."""

    def __init__(self, caPEM: bytes) -> None:
        agent = Agent(reactor, contextFactory=BrowserLikePolicyForHTTPS(loadTrustRoot(caPEM)),
                      pool=HTTPConnectionPool(reactor, persistent=False))
        self.http = HTTPClient(agent)
        self.tamper: Callable[[dict[str, list[str]]], None] | None = None
        self.pages: list[tuple[int, bytes]] = []
        self.visited: Deferred[None] = Deferred()

    @inlineCallbacks
    def visit(self, url: str) -> Any:
        try:
            consent = yield self.http.get(url, allow_redirects=False)
            yield consent.content()
            location = consent.headers.getRawHeaders(b"location")[0].decode()
            if self.tamper is not None:
                parts = urlsplit(location)
                query = parse_qs(parts.query)
                self.tamper(query)
                location = urlunsplit(parts._replace(query=urlencode(query, doseq=True)))
            page = yield self.http.get(location)
            self.pages.append((page.code, (yield page.content())))
        finally:
            if not self.visited.called:
                self.visited.callback(None)


class Console(io.StringIO):
    """stderr of the command: when the consent URL is printed, the browser goes there."""

    def __init__(self, browser: Browser | None) -> None:
        super().__init__()
        self.browser = browser
        self.urls: list[str] = []

    def write(self, text: str) -> int:
        written = super().write(text)
        if text.startswith("  https://"):
            self.urls.append(text.strip())
            if self.browser is not None:
                reactor.callLater(0, self.browser.visit, text.strip())
        return written


class LoginTests(TestCase):
    """``login`` end to end, then the other commands with the kept tokens."""

    timeout = 60

    def setUp(self) -> None:
        self.sim = Simulator(seed=7, clock=reactor, spotInterval=0.05)
        self.listening = self.sim.listen(reactor, tlsPort=0, wsPort=None, httpPort=0)
        self.addCleanup(self.sim.stop)
        home = Path(self.mktemp())
        home.mkdir()
        self.ca = str(home / "ca.pem")
        Path(self.ca).write_bytes(self.listening.caPEM)
        self.tokenFile = home / ".config" / "ctrader-twisted" / "tokens.json"
        self.environ = {
            "HOME": str(home),
            "CTRADER_CLIENT_ID": self.sim.clientId,
            "CTRADER_CLIENT_SECRET": self.sim.clientSecret,
            "CTRADER_HOST": "localhost",
            "CTRADER_PORT": str(self.listening.tlsPort),
        }
        self.browser = Browser(self.listening.caPEM)

    @inlineCallbacks
    def call(self, *argv: str, environ: dict[str, str] | None = None, browser: bool = True) -> Any:
        stdout, stderr = io.StringIO(), Console(self.browser if browser else None)
        code = yield cli.run(reactor, list(argv), stdout, stderr, self.environ if environ is None else environ)
        if browser and stderr.urls:
            yield self.browser.visited  # the browser has its page
        return code, stdout.getvalue(), stderr.getvalue()

    def login(self, *extra: str, environ: dict[str, str] | None = None, browser: bool = True) -> Deferred[Any]:
        return self.call(
            "login", "--auth-uri", str(self.listening.authUri), "--token-uri", str(self.listening.tokenUri),
            "--ca-file", self.ca, "--redirect-port", "0", "--no-browser", *extra, environ=environ, browser=browser,
        )

    def stored(self) -> Any:
        return FileTokenStore(self.tokenFile, key=self.sim.clientId).load()

    def assertNoSecrets(self, *texts: str) -> None:
        secrets = [self.sim.clientSecret, *self.sim.tokens, *self.sim.refreshTokens]
        for text in texts:
            for secret in secrets:
                self.assertNotIn(secret, text)

    @inlineCallbacks
    def test_loginKeepsTokensForTheNextCommands(self) -> Any:
        """The flow: URL printed, redirect received, code exchanged, tokens kept (0600),
        accounts listed; then ``accounts`` runs on the kept tokens with none configured.
        No secret, code or token reaches the log."""
        logged: list[str] = []

        def observe(event: dict[str, Any]) -> None:
            logged.append(formatEvent(event) or "")
            if event.get("log_failure") is not None:
                logged.append(event["log_failure"].getTraceback())

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        code, out, err = yield self.login()
        self.assertEqual(code, cli.EXIT_OK, err)
        self.assertEqual(self.browser.pages[0][0], 200)
        self.assertIn(b"Access granted", self.browser.pages[0][1])
        tokens = self.stored()
        self.assertTrue(self.sim.tokens[tokens.accessToken].valid)
        self.assertEqual(stat.S_IMODE(self.tokenFile.stat().st_mode), 0o600)
        self.assertIn(f"tokens kept in {self.tokenFile}", err)
        self.assertIn("the tokens grant account(s): 2000001 (demo), 2000002 (live)", err)
        self.assertEqual(out, "")
        self.assertNoSecrets(out, err)

        code, out, err = yield self.call("accounts", "--ca-file", self.ca)
        self.assertEqual(code, cli.EXIT_OK, err)
        self.assertIn("2000001", out)
        self.assertNoSecrets(out, err)
        self.assertTrue(any("Tokens of application" in line for line in logged))
        self.assertNoSecrets(*logged)
        self.assertFalse([line for line in logged if "sim-code-" in line])

    @inlineCallbacks
    def test_deadRefreshToken(self) -> Any:
        """A refused access token whose refresh token is dead too: exit 1, one line, the token file untouched."""
        a0, r0 = self.sim.addToken(self.sim.accountIds)
        self.sim.revokeToken(a0)
        environ = dict(self.environ, CTRADER_ACCESS_TOKEN=a0, CTRADER_REFRESH_TOKEN=r0)
        code, _, err = yield self.call("symbols", "--ca-file", self.ca, environ=environ)
        self.assertEqual(code, cli.EXIT_FAILURE)
        self.assertIn("refused the access token", err)
        self.assertEqual(len([line for line in err.splitlines() if "error" in line]), 1, err)
        self.assertFalse(self.tokenFile.exists())

    @inlineCallbacks
    def test_loginReplacesConfiguredTokens(self) -> Any:
        """Tokens configured before the login are older: the kept ones win from then on."""
        oldAccess, oldRefresh = self.sim.accessToken, self.sim.refreshToken
        environ = dict(self.environ, CTRADER_ACCESS_TOKEN=oldAccess, CTRADER_REFRESH_TOKEN=oldRefresh)
        code, _, err = yield self.login(environ=environ)
        self.assertEqual(code, cli.EXIT_OK, err)
        tokens = self.stored()
        self.assertTrue(tokens.succeeds(oldAccess) and tokens.succeeds(oldRefresh))
        self.sim.revokeToken(oldAccess)  # the configured tokens no longer work: only the kept ones can
        code, out, err = yield self.call("accounts", "--ca-file", self.ca, environ=environ)
        self.assertEqual(code, cli.EXIT_OK, err)

    @inlineCallbacks
    def test_refreshedTokensAreKeptForTheNextRun(self) -> Any:
        """A refused access token is refreshed once and the new pair written to the token file;
        the next run starts from it; configured tokens the file never saw win again."""
        a0, r0 = self.sim.addToken(self.sim.accountIds)
        environ = dict(self.environ, CTRADER_ACCESS_TOKEN=a0, CTRADER_REFRESH_TOKEN=r0)
        del self.sim.tokens[a0]  # an expired access token; its refresh token still works

        code, out, err = yield self.call("accounts", "--ca-file", self.ca, environ=environ)
        self.assertEqual(code, cli.EXIT_OK, err)
        self.assertIn("access token refreshed; the new tokens are kept in", err)
        first = self.stored()
        self.assertTrue(self.sim.tokens[first.accessToken].valid)
        self.assertEqual(first.replaces, (fingerprint(a0), fingerprint(r0)))
        self.assertNoSecrets(out, err)

        issued = len(self.sim.tokens)
        code, _, err = yield self.call("accounts", "--ca-file", self.ca, environ=environ)
        self.assertEqual(code, cli.EXIT_OK, err)
        self.assertEqual(len(self.sim.tokens), issued)  # the kept pair was used: no refresh
        self.assertNotIn("refreshed", err)

        del self.sim.tokens[first.accessToken]  # expires again: refreshed while authorizing an account
        code, _, err = yield self.call("symbols", "--ca-file", self.ca, environ=environ)
        self.assertEqual(code, cli.EXIT_OK, err)
        second = self.stored()
        self.assertNotEqual(second.accessToken, first.accessToken)
        self.assertTrue(second.succeeds(a0) and second.succeeds(first.refreshToken))

        a9, r9 = self.sim.addToken(self.sim.accountIds)  # pasted from the playground: newer than the file
        self.sim.revokeToken(second.accessToken)
        code, _, err = yield self.call(
            "accounts", "--ca-file", self.ca, environ=dict(environ, CTRADER_ACCESS_TOKEN=a9, CTRADER_REFRESH_TOKEN=r9)
        )
        self.assertEqual(code, cli.EXIT_OK, err)

    @inlineCallbacks
    def test_unwritableTokenFileIsReported(self) -> Any:
        """A refresh whose tokens cannot be kept still serves this run, and says so."""
        a0, r0 = self.sim.addToken(self.sim.accountIds)
        del self.sim.tokens[a0]
        blocker = Path(self.mktemp())
        blocker.write_text("a file, not a directory")
        environ = dict(self.environ, CTRADER_ACCESS_TOKEN=a0, CTRADER_REFRESH_TOKEN=r0,
                       CTRADER_TOKEN_FILE=str(blocker / "tokens.json"))
        code, _, err = yield self.call("accounts", "--ca-file", self.ca, environ=environ)
        self.assertEqual(code, cli.EXIT_OK, err)
        self.assertIn("access token refreshed but NOT kept", err)
        self.assertIn("ctrader-twisted login", err)

    @inlineCallbacks
    def test_refusals(self) -> Any:
        """A refused consent, a tampered code, a wrong secret: exit 1 with one line, nothing kept."""
        self.sim.oauth.denyConsent = True
        code, _, err = yield self.login()
        self.assertEqual(code, cli.EXIT_FAILURE)
        self.assertIn("error: the authorization was refused: access_denied (the user refused access)", err)
        self.assertIn(b"Access not granted", self.browser.pages[-1][1])
        self.sim.oauth.denyConsent = False

        self.browser = Browser(self.listening.caPEM)
        self.browser.tamper = lambda query: query.update(code=["forged"])
        code, _, err = yield self.login()
        self.assertEqual(code, cli.EXIT_FAILURE)
        self.assertIn("error: the token service did not give tokens: invalid_grant:", err)

        self.browser = Browser(self.listening.caPEM)
        code, _, err = yield self.login(environ=dict(self.environ, CTRADER_CLIENT_SECRET="wr0ng-s3cret"))
        self.assertEqual(code, cli.EXIT_FAILURE)
        self.assertIn("invalid_client", err)
        self.assertNotIn("wr0ng-s3cret", err)
        self.assertFalse(self.tokenFile.exists())
        for text in (err,):
            self.assertEqual(len([line for line in text.splitlines() if "error" in line]), 1, text)

    @inlineCallbacks
    def test_usageAndLocalFailures(self) -> Any:
        """Bad options and configuration exit 2; a busy port or an unwritable token file exit 1."""
        code, _, err = yield self.login(environ={"HOME": self.environ["HOME"]}, browser=False)
        self.assertEqual(code, cli.EXIT_USAGE)
        self.assertIn("no client id", err)
        for argv, fragment in (
            (["--redirect-uri", "https://example.com/cb"], "--redirect-uri must be http://localhost:PORT/PATH"),
            (["--redirect-uri", "http://localhost:1/x", "--redirect-port", "2"], "not both"),
            (["--token-uri", "http://token.example/apps/token"], "https"),
            (["--wait", "0"], "--wait"),
        ):
            code, _, err = yield self.call("login", *argv, browser=False)
            self.assertEqual(code, cli.EXIT_USAGE, argv)
            self.assertIn(fragment, err)

        busy = reactor.listenTCP(0, Factory.forProtocol(Protocol), interface="127.0.0.1")
        self.addCleanup(busy.stopListening)
        port = str(busy.getHost().port)
        code, _, err = yield self.call("login", "--redirect-port", port, "--no-browser", browser=False)
        self.assertEqual(code, cli.EXIT_FAILURE)
        self.assertIn(f"cannot listen on localhost:{port} for the redirect", err)

        blocker = Path(self.mktemp())
        blocker.write_text("a file")
        code, _, err = yield self.login("--token-file", str(blocker / "tokens.json"))
        self.assertEqual(code, cli.EXIT_FAILURE)
        self.assertIn("error: the tokens could not be kept", err)

    @inlineCallbacks
    def test_opensTheBrowser(self) -> Any:
        """Without --no-browser the URL goes to the browser (in a thread); a missing browser is said."""
        opened: list[str] = []

        def fakeOpen(url: str) -> bool:
            opened.append(url)
            return False

        self.patch(login, "openBrowser", fakeOpen)
        stdout, stderr = io.StringIO(), Console(self.browser)
        argv = ["login", "--auth-uri", str(self.listening.authUri), "--token-uri", str(self.listening.tokenUri),
                "--ca-file", self.ca, "--redirect-port", "0"]
        code = yield cli.run(reactor, argv, stdout, stderr, self.environ)
        yield self.browser.visited
        self.assertEqual(code, cli.EXIT_OK, stderr.getvalue())
        self.assertEqual(opened, stderr.urls)
        self.assertIn("could not open a browser: open the page above yourself", stderr.getvalue())

    @inlineCallbacks
    def test_withoutHostSaysHowToListAccounts(self) -> Any:
        environ = {k: v for k, v in self.environ.items() if k not in ("CTRADER_HOST", "CTRADER_PORT")}
        code, _, err = yield self.login(environ=environ)
        self.assertEqual(code, cli.EXIT_OK, err)
        self.assertIn("ctrader-twisted accounts --host demo", err)
        self.assertIsNotNone(self.stored())


class RedirectTests(SynchronousTestCase):
    """The redirect target and listener, alone."""

    def test_redirectTarget(self) -> None:
        self.assertEqual(login.redirectTarget(None, None), ("localhost", 8080, "/redirect"))
        self.assertEqual(login.redirectTarget(None, 0), ("localhost", 0, "/redirect"))
        self.assertEqual(login.redirectTarget("http://127.0.0.1:9000/cb", None), ("127.0.0.1", 9000, "/cb"))
        self.assertEqual(login.redirectTarget("http://[::1]:9000", None), ("::1", 9000, "/"))
        for uri in ("http://localhost/cb", "https://localhost:1/cb", "http://example.com:1/cb",
                    "http://localhost:1/cb?x=1", "http://localhost:port/"):
            self.assertRaises(UsageError, login.redirectTarget, uri, None)
        self.assertRaises(UsageError, login.redirectTarget, None, 70000)

    def test_waitTimesOut(self) -> None:
        """No redirect within --wait: a LoginError naming the option (on a Clock)."""
        clock = Clock()
        listener = login.RedirectListener("/redirect")
        d = listener.wait(clock, 300)
        clock.advance(299)
        self.assertNoResult(d)
        clock.advance(1)
        failure = self.failureResultOf(d, login.LoginError)
        self.assertIn("no redirect within 300 s", str(failure.value))

    def test_pages(self) -> None:
        """Other paths get 404; the first answer counts; later ones are told it is done."""
        from twisted.web.test.requesthelper import DummyRequest

        listener = login.RedirectListener("/redirect")
        page = login._RedirectPage(listener)

        def get(path: bytes, **args: str) -> tuple[int, bytes]:
            request = DummyRequest(path.strip(b"/").split(b"/"))
            request.path = path
            request.args = {k.encode(): [v.encode()] for k, v in args.items()}
            body = page.render_GET(request)
            return request.responseCode or 200, body

        self.assertEqual(get(b"/favicon.ico")[0], 404)
        self.assertNoResult(listener.result)
        status, body = get(b"/redirect", error="access_denied\x1b[2J")
        self.assertEqual(status, 400)
        failure = self.failureResultOf(listener.result, login.LoginError)
        self.assertEqual(str(failure.value), "the authorization was refused: access_denied [2J")
        self.assertIn(b"Already done", get(b"/redirect", code="late")[1])
        json.dumps(str(failure.value))  # printable, one line
