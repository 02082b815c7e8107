# -*- test-case-name: tests.test_simulator_oauth -*-
"""The simulator's OAuth pages: the consent page and the token endpoint.

:class:`OAuthService` serves, over HTTPS on the port given to
:meth:`Simulator.listen(httpPort=...) <ctrader_twisted.simulator.Simulator.listen>`,
what ``openapi.ctrader.com`` serves:

``GET /apps/auth?client_id=&redirect_uri=&scope=``
    the consent page. The simulator has no user to ask: it redirects at
    once to ``redirect_uri?code=...`` (or ``?error=access_denied`` when
    the service's ``denyConsent`` is set, ``?error=invalid_scope`` for a
    scope other than ``trading`` and ``accounts``). An unknown client id or a
    redirect URI not registered for the application gets an error page, and
    no redirect.

``GET /apps/token``
    the token endpoint, with the query
    ``grant_type=authorization_code&code=&redirect_uri=&client_id=&client_secret=``
    (a code) or
    ``grant_type=refresh_token&refresh_token=&client_id=&client_secret=``
    (a refresh). It answers JSON with ``accessToken``,
    ``tokenType``, ``expiresIn``, ``refreshToken``, ``errorCode`` and
    ``description``: the error fields are ``null`` on success, the token
    fields ``null`` on failure (HTTP 200 either way, as the service's own
    SDKs expect). Form-encoded ``POST`` works too.

Codes live :data:`CODE_LIFETIME` seconds on the simulator's clock and work
once. Tokens are issued through the simulator's registry
(:meth:`~ctrader_twisted.simulator.Simulator.addToken`), so they authorize
accounts over the Open API at once; a refresh replaces the pair (the old
refresh token stops working) and ends the account sessions of the old
access token, as ``ProtoOARefreshTokenReq`` does.

The real service's error codes are not published: the simulator answers
with OAuth 2.0's names (RFC 6749, section 5.2) as ``errorCode``:
``invalid_request``, ``invalid_client``, ``invalid_grant``,
``unsupported_grant_type``.

Requests are logged without their query string: it carries secrets.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from ..auth import SCOPES, accessLogLine
from ..tokens import MAX_TOKEN_LENGTH

if TYPE_CHECKING:
    from .server import Simulator

__all__ = ["OAuthService", "CODE_LIFETIME", "LOOPBACK_HOSTS"]

#: Seconds an authorization code can be exchanged (the real service: one minute).
CODE_LIFETIME = 60.0
#: Codes kept at most (oldest dropped first): bounds memory under a flood.
MAX_CODES = 1000
#: Hosts of the redirect URIs accepted without registration (see
#: :class:`OAuthService`'s ``allowLoopbackRedirects``).
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


@dataclass
class _Grant:
    clientId: str
    redirectUri: str
    scope: str
    issuedAt: float


class OAuthService:
    """The consent page and token endpoint of a simulator (see the module docs).

    :param simulator: issues and keeps the tokens; its clock times the codes.

    :ivar redirectUris: client id to the redirect URIs registered for it.
    :ivar allowLoopbackRedirects: accept any ``http://localhost``,
        ``127.0.0.1`` or ``[::1]`` redirect URI (any port and path) without
        registration (default ``True``: ``ctrader-twisted login`` picks its
        port); the real service accepts registered URIs only.
    :ivar denyConsent: the simulated user refuses (``error=access_denied``).
    :ivar grantAccountIds: the accounts new tokens grant (``None``: all).
    :ivar codesIssued: authorization codes issued so far.
    :ivar tokensIssued: token pairs issued by the endpoint so far.
    """

    def __init__(self, simulator: Simulator) -> None:
        self.simulator = simulator
        self.redirectUris: dict[str, set[str]] = {}
        self.allowLoopbackRedirects = True
        self.denyConsent = False
        self.grantAccountIds: list[int] | None = None
        self.codesIssued = 0
        self.tokensIssued = 0
        self._codes: dict[str, _Grant] = {}

    def __repr__(self) -> str:
        return f"<OAuthService codes={len(self._codes)} issued={self.tokensIssued}>"

    # --- configuration -----------------------------------------------------------------

    def registerRedirectUri(self, clientId: str, redirectUri: str) -> None:
        """Accept *redirectUri* for the application *clientId*."""
        self.redirectUris.setdefault(clientId, set()).add(redirectUri)

    def redirectAllowed(self, clientId: str, redirectUri: str) -> bool:
        """Whether the consent page may redirect to *redirectUri* for *clientId*."""
        if redirectUri in self.redirectUris.get(clientId, ()):
            return True
        if not self.allowLoopbackRedirects:
            return False
        try:
            parts = urlsplit(redirectUri)
            return parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS and parts.port is not None
        except ValueError:
            return False

    # --- codes and tokens ----------------------------------------------------------------

    def issueCode(self, clientId: str, redirectUri: str, scope: str = "trading") -> str:
        """A new authorization code (what the consent page redirects with)."""
        now = self.simulator.clock.seconds()
        for stale in [c for c, g in self._codes.items() if now - g.issuedAt > CODE_LIFETIME]:
            del self._codes[stale]
        while len(self._codes) >= MAX_CODES:
            del self._codes[next(iter(self._codes))]
        code = f"sim-code-{self.simulator.rng.getrandbits(64):016x}"
        self._codes[code] = _Grant(clientId, redirectUri, scope, now)
        self.codesIssued += 1
        return code

    def token(self, params: dict[str, str]) -> dict[str, Any]:
        """The token endpoint's answer to *params* (the decoded query).

        :returns: the JSON object (``errorCode`` set on failure).
        """
        grantType = params.get("grant_type", "")
        if grantType not in ("authorization_code", "refresh_token"):
            if not grantType:
                return _error("invalid_request", "grant_type is missing")
            return _error("unsupported_grant_type", "grant_type must be authorization_code or refresh_token")
        clientId = params.get("client_id", "")
        if not clientId or not params.get("client_secret"):
            return _error("invalid_request", "client_id and client_secret are required")
        if self.simulator.applications.get(clientId) != params["client_secret"]:
            return _error("invalid_client", "clientId or clientSecret is incorrect")
        if grantType == "authorization_code":
            return self._exchangeCode(clientId, params)
        return self._refresh(params)

    def _exchangeCode(self, clientId: str, params: dict[str, str]) -> dict[str, Any]:
        code = params.get("code", "")
        if not code:
            return _error("invalid_request", "code is missing")
        grant = self._codes.get(code)
        if grant is None or grant.clientId != clientId:
            return _error("invalid_grant", "the authorization code is invalid or was already used")
        del self._codes[code]  # a code works once, even when the exchange fails
        if self.simulator.clock.seconds() - grant.issuedAt > CODE_LIFETIME:
            return _error("invalid_grant", f"the authorization code expired (it lives {CODE_LIFETIME:g} s)")
        if params.get("redirect_uri", "") != grant.redirectUri:
            return _error("invalid_grant", "redirect_uri does not match the one of the authorization request")
        sim = self.simulator
        accountIds = list(sim.accounts) if self.grantAccountIds is None else list(self.grantAccountIds)
        accessToken, _ = sim.addToken(accountIds)
        self.tokensIssued += 1
        return _answer(sim.tokens[accessToken])

    def _refresh(self, params: dict[str, str]) -> dict[str, Any]:
        refreshToken = params.get("refresh_token", "")
        if not refreshToken:
            return _error("invalid_request", "refresh_token is missing")
        sim = self.simulator
        old = sim.refreshTokens.get(refreshToken)
        if old is None or not old.valid:
            return _error("invalid_grant", "the refresh token is invalid or was already used")
        new = sim.replaceToken(old)
        sim.invalidateToken(old, "Access token was refreshed")
        self.tokensIssued += 1
        return _answer(new)

    # --- web --------------------------------------------------------------------------

    def resource(self) -> Resource:
        """The resource tree: ``/apps/auth`` and ``/apps/token``."""
        root = Resource()
        apps = Resource()
        root.putChild(b"apps", apps)
        apps.putChild(b"auth", _ConsentPage(self))
        apps.putChild(b"token", _TokenEndpoint(self))
        return root

    def site(self, reactor: Any = None) -> Site:
        """A ``Site`` serving :meth:`resource`; its access log leaves out query strings."""
        site = Site(self.resource(), logFormatter=accessLogLine, reactor=reactor)
        site.timeOut = 60
        return site


def _answer(token: Any) -> dict[str, Any]:
    return {
        "accessToken": token.accessToken,
        "tokenType": "bearer",
        "expiresIn": token.expiresIn,
        "refreshToken": token.refreshToken,
        "errorCode": None,
        "description": None,
    }


def _error(code: str, description: str) -> dict[str, Any]:
    return {
        "accessToken": None,
        "tokenType": None,
        "expiresIn": None,
        "refreshToken": None,
        "errorCode": code,
        "description": description,
    }


def _params(request: Request) -> dict[str, str] | None:
    """The first value of each argument, as text; ``None`` if one is not
    UTF-8 or is too long."""
    params: dict[str, str] = {}
    args: dict[bytes, list[bytes]] = request.args or {}
    for key, values in args.items():
        if not values:
            continue
        try:
            name, value = key.decode("utf-8"), values[0].decode("utf-8")
        except UnicodeDecodeError:
            return None
        if len(value) > MAX_TOKEN_LENGTH:
            return None
        params.setdefault(name, value)
    return params


def _withQuery(uri: str, **values: str) -> str:
    query = "&".join(f"{k}={quote(v, safe='')}" for k, v in values.items())
    return f"{uri}{'&' if '?' in uri else '?'}{query}"


class _ServicePage(Resource):
    """A page of an :class:`OAuthService`."""

    isLeaf = True

    def __init__(self, service: OAuthService) -> None:
        super().__init__()
        self.service = service


class _ConsentPage(_ServicePage):
    def render_GET(self, request: Request) -> bytes:
        service = self.service
        params = _params(request) or {}
        clientId = params.get("client_id", "")
        redirectUri = params.get("redirect_uri", "")
        if clientId not in service.simulator.applications:
            return _page(request, 400, "Unknown application: check client_id.")
        if not service.redirectAllowed(clientId, redirectUri):
            return _page(request, 400, "redirect_uri is not registered for this application.")
        scope = params.get("scope", "")
        if scope not in SCOPES:
            target = _withQuery(redirectUri, error="invalid_scope", error_description="scope must be trading or accounts")
        elif service.denyConsent:
            target = _withQuery(redirectUri, error="access_denied", error_description="the user refused access")
        else:
            target = _withQuery(redirectUri, code=service.issueCode(clientId, redirectUri, scope))
        request.redirect(target.encode("utf-8"))
        request.setHeader(b"cache-control", b"no-store")
        return b""


class _TokenEndpoint(_ServicePage):
    def render_GET(self, request: Request) -> bytes:
        params = _params(request)
        if params is None:
            answer = _error("invalid_request", "parameters must be UTF-8 text of at most 4096 characters")
        else:
            answer = self.service.token(params)
        request.setHeader(b"content-type", b"application/json; charset=utf-8")
        request.setHeader(b"cache-control", b"no-store")
        return json.dumps(answer).encode("utf-8")

    render_POST = render_GET


def _page(request: Request, status: int, text: str) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    return text.encode("utf-8") + b"\n"
