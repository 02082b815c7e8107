# -*- test-case-name: tests.test_login -*-
"""``ctrader-twisted login``: OAuth in the browser, tokens kept for the next runs.

The authorization-code flow, for people:

1. listen on a loopback port for the redirect (``--redirect-port``, or
   ``--redirect-uri``: it must be a redirect URI registered for the
   application, ``http://localhost:8080/redirect`` by default);
2. print the consent page's URL (and open it in a browser unless
   ``--no-browser``);
3. wait (``--wait`` seconds) for the browser to come back with ``?code=``;
4. exchange the code at the token endpoint
   (:meth:`~ctrader_twisted.auth.Auth.requestToken`);
5. keep the tokens in the token file
   (:class:`~ctrader_twisted.tokens.FileTokenStore`), marked as replacing
   the tokens configured now, so that every later command uses them;
6. with a host configured, list the accounts they grant.

Tokens are never printed. Errors are one line (exit status 1; 2 for bad
usage or configuration).
"""

from __future__ import annotations

import argparse
import html
from typing import Any, Mapping, TextIO
from urllib.parse import urlsplit

from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from ..auth import SCOPES, Auth, OAuthError, checkServiceUri, accessLogLine
from ..endpoints import EndPoints
from ..tokens import FileTokenStore, TokenStoreError, Tokens
from .config import Application, Credentials, Settings, loadApplication
from .options import UsageError, positiveNumber
from .status import EXIT_FAILURE, EXIT_OK, docsUrl, say

__all__ = ["addParser", "login", "openBrowser", "redirectTarget", "RedirectListener", "LoginError",
           "DEFAULT_REDIRECT_URI"]

_log = Logger()

#: The redirect URI when none is given (the official SDK's web sample uses it).
DEFAULT_REDIRECT_URI = "http://localhost:8080/redirect"
_LOOPBACK = {"localhost": "127.0.0.1", "127.0.0.1": "127.0.0.1", "::1": "::1"}


class LoginError(Exception):
    """The login failed; the message is one line for the user."""


def addParser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the ``login`` subcommand to the subparsers *sub*."""
    parser = sub.add_parser(
        "login", parents=[common], help="authorize the application in a browser and keep the tokens",
        description="Run the OAuth authorization-code flow: open the consent page, receive the redirect on a "
        "loopback port, exchange the code and keep the tokens in the token file, where every command finds "
        f"them (see {docsUrl('credentials')}).",
    )
    parser.add_argument("--redirect-port", dest="redirectPort", type=int, metavar="PORT",
                        help="receive the redirect on http://localhost:PORT/redirect (0: any free port)")
    parser.add_argument("--redirect-uri", dest="redirectUri", metavar="URI",
                        help=f"the redirect URI registered for the application, on a loopback host "
                        f"(default {DEFAULT_REDIRECT_URI})")
    parser.add_argument("--scope", choices=SCOPES, default="trading",
                        help="trading (default) or accounts (read only)")
    parser.add_argument("--no-browser", dest="browser", action="store_false",
                        help="only print the consent page's URL (headless machines)")
    parser.add_argument("--auth-uri", dest="authUri", default=EndPoints.AUTH_URI, metavar="URL",
                        help=f"consent page (default {EndPoints.AUTH_URI})")
    parser.add_argument("--token-uri", dest="tokenUri", default=EndPoints.TOKEN_URI, metavar="URL",
                        help=f"token endpoint (default {EndPoints.TOKEN_URI})")
    parser.add_argument("--wait", type=float, default=300.0, metavar="S",
                        help="seconds to wait for the browser's redirect (300)")


def redirectTarget(redirectUri: str | None, redirectPort: int | None) -> tuple[str, int, str]:
    """The loopback host, port and path to receive the redirect on.

    :raises UsageError: both given, not an ``http`` URI on a loopback host
        with an explicit port, or a bad port.
    """
    if redirectUri is not None and redirectPort is not None:
        raise UsageError("give --redirect-uri or --redirect-port, not both")
    if redirectPort is not None:
        if not 0 <= redirectPort < 65536:
            raise UsageError("--redirect-port must be an integer from 0 to 65535")
        return "localhost", redirectPort, "/redirect"
    uri = redirectUri or DEFAULT_REDIRECT_URI
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:
        raise UsageError(f"--redirect-uri {uri!r} is not a URL") from None
    if parts.scheme != "http" or parts.hostname not in _LOOPBACK or port is None or parts.query or parts.fragment:
        raise UsageError(
            "--redirect-uri must be http://localhost:PORT/PATH (or 127.0.0.1, [::1]) with an explicit port, "
            "no query: the redirect comes back to this machine"
        )
    return parts.hostname, port, parts.path or "/"


def openBrowser(url: str) -> bool:
    """Open *url* in the user's browser (``webbrowser.open``); run in a
    thread, since a console browser blocks until it exits. Tests replace it."""
    import webbrowser

    return bool(webbrowser.open(url))


class _RedirectPage(Resource):
    isLeaf = True

    def __init__(self, listener: RedirectListener) -> None:
        super().__init__()
        self.listener = listener

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        request.setHeader(b"cache-control", b"no-store")
        if (request.path or b"").decode("utf-8", "replace") != self.listener.path:
            request.setResponseCode(404)
            return _html("Not found", "This is not the redirect ctrader-twisted waits for.")
        args: dict[bytes, list[bytes]] = request.args or {}

        def arg(name: bytes) -> str:
            values = args.get(name) or [b""]
            return values[0][:4096].decode("utf-8", "replace")

        code, error = arg(b"code"), arg(b"error")
        if self.listener.result.called:
            return _html("Already done", "ctrader-twisted already received an answer: you can close this tab.")
        if code:
            self.listener.result.callback(code)
            return _html("Access granted", "ctrader-twisted received the authorization: you can close this tab.")
        reason = error or "no code in the redirect"
        description = arg(b"error_description")
        self.listener.result.errback(
            LoginError(f"the authorization was refused: {_oneLine(reason)}" + (f" ({_oneLine(description)})" if description else ""))
        )
        request.setResponseCode(400)
        return _html("Access not granted", f"The authorization was refused: {reason}. {description}")


def _oneLine(text: str) -> str:
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())[:200]


def _html(title: str, text: str) -> bytes:
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
        f"<body><h1>{html.escape(title)}</h1><p>{html.escape(text)}</p></body></html>"
    ).encode("utf-8")


class RedirectListener:
    """Receives the consent page's redirect on a loopback port.

    :param path: the redirect URI's path; other paths get 404.

    :ivar result: fires with the authorization code, or fails with
        :class:`LoginError` (refused, or no code).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.result: Deferred[str] = Deferred()
        self.ports: list[IListeningPort] = []

    def listen(self, reactor: Any, host: str, port: int) -> int:
        """Listen on *host* (``localhost``: 127.0.0.1, and ::1 when it can) and return the port.

        :raises CannotListenError: the port is taken (or not allowed).
        """
        site = Site(_RedirectPage(self), logFormatter=accessLogLine, reactor=reactor)
        site.timeOut = 60
        first = reactor.listenTCP(port, site, interface=_LOOPBACK[host])
        self.ports.append(first)
        bound = int(first.getHost().port)
        if host == "localhost":  # browsers may try ::1 first
            try:
                self.ports.append(reactor.listenTCP(bound, site, interface="::1"))
            except CannotListenError:
                pass
        return bound

    def wait(self, reactor: Any, seconds: float) -> Deferred[str]:
        """:attr:`result`, failing with :class:`LoginError` after *seconds*."""

        def timedOut(result: Any, _: float) -> Any:
            raise LoginError(
                f"no redirect within {seconds:g} s: open the page above and allow access (or use a larger --wait)"
            )

        return self.result.addTimeout(seconds, reactor, onTimeoutCancel=timedOut)

    def stop(self) -> Deferred[Any]:
        """Stop listening."""
        ports, self.ports = self.ports, []
        stopping = [port.stopListening() for port in ports]
        return DeferredList([d for d in stopping if d is not None], consumeErrors=True)


async def login(
    reactor: Any,
    args: argparse.Namespace,
    options: Mapping[str, Any],
    environ: Mapping[str, str],
    stdout: TextIO,
    stderr: TextIO,
) -> int:
    """``ctrader-twisted login`` (see the module docs).

    :param options: the shared connection options, by setting name.
    :returns: :data:`~ctrader_twisted.cli.status.EXIT_OK`, or
        :data:`~ctrader_twisted.cli.status.EXIT_FAILURE` after an error
        reported on *stderr*.
    :raises UsageError: a bad option.
    :raises ~ctrader_twisted.cli.config.ConfigError: no client id or secret.
    """
    app = loadApplication(options, environ, args.config)
    wait = positiveNumber(float, "wait", args.wait)
    timeout = positiveNumber(float, "timeout", args.timeout)
    host, port, path = redirectTarget(args.redirectUri, args.redirectPort)
    for name, uri in (("auth-uri", args.authUri), ("token-uri", args.tokenUri)):
        try:
            checkServiceUri(uri, f"--{name}")
        except ValueError as error:
            raise UsageError(str(error)) from None
    for warning in app.warnings:
        say(stderr, f"warning: {warning}")

    listener = RedirectListener(path)
    try:
        try:
            port = listener.listen(reactor, host, port)
        except CannotListenError as error:
            reason = getattr(error.socketError, "strerror", None) or str(error.socketError)
            say(stderr, f"error: cannot listen on {host}:{port} for the redirect ({reason}): "
                        "free the port, or register and use another one (--redirect-port)")
            return EXIT_FAILURE
        redirectUri = f"http://{'[::1]' if host == '::1' else host}:{port}{path}"
        auth = Auth(app.clientId, app.clientSecret, redirectUri, timeout=timeout, reactor=reactor, trustRoot=app.caFile)
        url = auth.getAuthUri(args.scope, baseUri=args.authUri)
        say(stderr, f"open this page and allow access; the browser then comes back to {redirectUri}:")
        _write(stderr, f"  {url}\n")
        if args.browser:
            _startBrowser(reactor, url, stderr)
        try:
            code = await listener.wait(reactor, wait)
            say(stderr, "authorization received; exchanging the code for tokens")
            tokens = await auth.requestToken(code, baseUri=args.tokenUri)
        except LoginError as error:
            say(stderr, f"error: {error}")
            return EXIT_FAILURE
        except OAuthError as error:
            say(stderr, f"error: the token service did not give tokens: {error}")
            return EXIT_FAILURE
    finally:
        await listener.stop()
    store = FileTokenStore(app.tokenFile, key=app.clientId)
    tokens = tokens.replacing(app.accessToken, app.refreshToken)
    try:
        store.save(tokens)
    except TokenStoreError as error:
        say(stderr, f"error: the tokens could not be kept: {error}")
        return EXIT_FAILURE
    _log.info("Tokens of application {clientId} kept in {path}", clientId=app.clientId, path=str(store.path))
    say(stderr, f"tokens kept in {store.path} (application {app.clientId}); the access token expires "
                f"{tokens.expiresAt:%Y-%m-%d %H:%M} UTC and is refreshed when refused")
    if app.host is None:
        say(stderr, "list the accounts they grant: ctrader-twisted accounts --host demo (or live)")
        return EXIT_OK
    await _sayAccounts(reactor, app, tokens, timeout, stderr)
    return EXIT_OK


def _startBrowser(reactor: Any, url: str, stderr: TextIO) -> None:
    def opened(ok: bool) -> None:
        if not ok:
            say(stderr, "could not open a browser: open the page above yourself")

    def failed(failure: Any) -> None:
        say(stderr, f"could not open a browser ({failure.getErrorMessage()}): open the page above yourself")

    deferToThreadPool(reactor, reactor.getThreadPool(), openBrowser, url).addCallbacks(opened, failed)


async def _sayAccounts(reactor: Any, app: Application, tokens: Tokens, timeout: float, stderr: TextIO) -> None:
    """Say which accounts *tokens* grant on the configured host (a failure is a warning)."""
    from .connect import Connection

    assert app.host is not None
    settings = Settings(
        host=app.host, port=app.port, websocket=app.websocket, caFile=app.caFile, tokenFile=app.tokenFile,
        credentials=Credentials(app.clientId, app.clientSecret, tokens.accessToken, tokens.refreshToken, True, tokens),
    )
    connection = Connection(reactor, settings, timeout=timeout, status=stderr)
    try:
        await connection.connect()
        accounts = await connection.listAccounts()
    except Exception as error:
        say(stderr, f"warning: could not list the accounts: {connection.describe(error)}")
        return
    finally:
        await connection.close()
    if not accounts:
        say(stderr, f"the tokens grant no trading account on {app.host}")
        return
    listed = ", ".join(f"{a.ctidTraderAccountId} ({'live' if a.isLive else 'demo'})" for a in accounts)
    say(stderr, f"the tokens grant account(s): {listed}")


def _write(stream: TextIO, text: str) -> None:
    try:
        stream.write(text)
        stream.flush()
    except (OSError, ValueError):
        pass
