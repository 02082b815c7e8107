# -*- test-case-name: tests.test_auth -*-
"""OAuth 2.0 with the cTrader token service: the consent URL, the code
exchange and refreshes over HTTP.

:class:`Auth` keeps the official SDK's class and methods (``getAuthUri``,
``getToken``, ``refreshToken``, with their signatures and results): those
two HTTP calls **block** the calling thread, as the official ones do (they
use the standard library here, with a timeout). In a Twisted program call the
non-blocking versions instead, built on treq: :meth:`Auth.requestToken` and
:meth:`Auth.requestRefresh` return Deferreds firing with
:class:`~ctrader_twisted.tokens.Tokens`, and fail with
:class:`TokenServiceError` (the service refused: its ``errorCode`` and
``description``), :class:`TokenTimeoutError` or :class:`TokenRequestError`
(no usable answer).

The client secret, codes and tokens travel in the query string, as the
service wants them: they are never logged and never part of an exception or a
``repr``. They are only sent over HTTPS (plain HTTP is accepted for a
loopback host only, for tests), and redirects are never followed.

Importing this module imports neither treq nor the reactor: both are loaded
by the first non-blocking call.
"""

from __future__ import annotations

import json
import math
import socket
import ssl
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping
from urllib.parse import quote, urlsplit

from twisted.internet.defer import CancelledError, Deferred, fail
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from ._version import __version__
from .endpoints import EndPoints
from .errors import CTraderError, wireText
from .tokens import ALIASES, MAX_TOKEN_LENGTH, Tokens

if TYPE_CHECKING:
    from twisted.web.iweb import IResponse

__all__ = [
    "Auth",
    "OAuthError",
    "TokenServiceError",
    "TokenRequestError",
    "TokenTimeoutError",
    "SCOPES",
    "MAX_ANSWER_SIZE",
    "accessLogLine",
    "checkServiceUri",
]

_log = Logger()

#: Scopes the consent page accepts: ``accounts`` (read only) and ``trading``.
SCOPES = ("trading", "accounts")
#: Largest token-service answer read (bytes): a token answer is a few hundred.
MAX_ANSWER_SIZE = 64 * 1024
_USER_AGENT = f"ctrader-twisted/{__version__}"
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})


class OAuthError(CTraderError):
    """Base class of the token-service errors."""


class TokenServiceError(OAuthError):
    """The token service refused the request: a bad or used authorization
    code, a used or revoked refresh token, wrong application credentials...

    :ivar errorCode: the service's error code, as sent.
    :ivar description: the service's description, or ``""``.
    :ivar status: the HTTP status of the answer.
    """

    def __init__(self, errorCode: str, description: str = "", status: int = 200) -> None:
        self.errorCode = errorCode
        self.description = description
        self.status = status
        super().__init__(errorCode, description)

    def __str__(self) -> str:
        return f"{self.errorCode}: {self.description}" if self.description else self.errorCode


class TokenRequestError(OAuthError):
    """No usable answer from the token service: unreachable, TLS failure,
    an HTTP error status, an answer that is not the service's JSON.

    :ivar status: the HTTP status when an answer came, else ``None``.
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class TokenTimeoutError(TokenRequestError):
    """The token service did not answer in time."""


def _text(value: Any, limit: int) -> str:
    """A string from the service, bounded and printable."""
    text = wireText(value) if value is not None else ""
    text = "".join(c if c.isprintable() else " " for c in text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _withAliases(answer: dict[str, Any]) -> dict[str, Any]:
    """*answer* with both spellings of the token fields (official samples
    read ``accessToken`` and ``access_token``)."""
    for camel, snake in ALIASES.items():
        if camel in answer and snake not in answer:
            answer[snake] = answer[camel]
        elif snake in answer and camel not in answer:
            answer[camel] = answer[snake]
    return answer


def _code(value: Any, name: str) -> str:
    """A code or token argument as text (``bytes`` accepted: Twisted Web's
    ``request.args`` hands them out).

    :raises ValueError: empty, not UTF-8, too long or not printable.
    """
    if isinstance(value, (bytes, bytearray)):
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"{name} is not UTF-8 text") from None
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string")
    if len(value) > MAX_TOKEN_LENGTH or not value.isprintable():
        raise ValueError(f"{name} is too long or holds control characters")
    return value


def _query(pairs: Iterable[tuple[str, str]]) -> str:
    # Characters legal in a query value stay as they are, so that plain
    # values give the official SDK's URL; the others are percent-encoded.
    return "&".join(f"{quote(k, safe='')}={quote(v, safe=':/@')}" for k, v in pairs)


def _join(baseUri: str, query: str) -> str:
    return f"{baseUri}{'&' if '?' in baseUri else '?'}{query}"


def checkServiceUri(uri: Any, name: str) -> str:
    """*uri* if the client secret may be sent there (an OAuth page or token endpoint).

    :raises ValueError: not an ``https`` URL (``http`` only for a loopback host).
    """
    if not isinstance(uri, str) or not uri:
        raise ValueError(f"{name} must be an https:// URL")
    parts = urlsplit(uri)
    if parts.scheme == "https" and parts.hostname:
        return uri
    if parts.scheme == "http" and parts.hostname in _LOOPBACK:
        return uri
    raise ValueError(f"{name} must be an https:// URL (plain http only for a loopback host), got {parts.scheme or 'no'} scheme")


class Auth:
    """OAuth with the cTrader token service (the official SDK's ``Auth``, and more).

    :param appClientId: the application's client id.
    :param appClientSecret: the application's client secret (never shown).
    :param redirectUri: a redirect URI registered for the application
        (needed by :meth:`getAuthUri` and the code exchange; ``None`` when
        only refreshing).
    :param timeout: seconds allowed for each token request (connect,
        answer and body).
    :param reactor: the reactor of the non-blocking calls (the global one
        when omitted, loaded on first use).
    :param trustRoot: CA certificates to trust instead of the platform's,
        as for :class:`~ctrader_twisted.client.Client` (a PEM file path, PEM
        bytes, a :class:`~twisted.internet.ssl.Certificate` or a list of
        them): the simulator's CA in tests.
    :param httpClient: a treq ``HTTPClient`` (or ``treq.testing.StubTreq``)
        for the non-blocking calls; by default one with certificate checks
        (``BrowserLikePolicyForHTTPS``) and no persistent connections.

    :ivar appClientId: as given.
    :ivar appClientSecret: as given.
    :ivar redirectUri: as given.
    """

    _log = _log

    def __init__(
        self,
        appClientId: str,
        appClientSecret: str,
        redirectUri: str | None,
        *,
        timeout: float = 30.0,
        reactor: Any = None,
        trustRoot: Any = None,
        httpClient: Any = None,
    ) -> None:
        if not isinstance(appClientId, str) or not appClientId:
            raise ValueError("appClientId must be a non-empty string")
        if not isinstance(appClientSecret, str) or not appClientSecret:
            raise ValueError("appClientSecret must be a non-empty string")
        if redirectUri is not None and not isinstance(redirectUri, str):
            raise ValueError("redirectUri must be a string")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not math.isfinite(timeout) or not 0 < timeout <= 3600:
            raise ValueError("timeout must be a number of seconds from 0 to 3600")
        self.appClientId = appClientId
        self.appClientSecret = appClientSecret
        self.redirectUri = redirectUri
        self.timeout = float(timeout)
        self._reactor = reactor
        self._trustRoot = trustRoot
        self._httpClient = httpClient

    def __repr__(self) -> str:
        return f"<Auth clientId={self.appClientId!r} redirectUri={self.redirectUri!r}>"

    # --- the official SDK's API ---------------------------------------------------------

    def getAuthUri(self, scope: str = "trading", baseUri: str = EndPoints.AUTH_URI) -> str:
        """The consent page's URL: send the user there; the service then
        redirects to *redirectUri* with ``?code=...``.

        Values are URL-encoded (a redirect URI holding ``&`` or ``?`` works);
        plain values give the same URL as the official SDK.

        :param scope: ``"trading"`` (trade and read) or ``"accounts"`` (read only).
        :raises ValueError: an unknown scope, or no redirect URI.
        """
        if scope not in SCOPES:
            raise ValueError(f"scope must be one of {', '.join(SCOPES)}, not {scope!r}")
        if not self.redirectUri:
            raise ValueError("getAuthUri needs the redirectUri given to Auth()")
        query = _query([("client_id", self.appClientId), ("redirect_uri", self.redirectUri), ("scope", scope)])
        return _join(baseUri, query)

    def getToken(self, authCode: str | bytes, baseUri: str = EndPoints.TOKEN_URI) -> dict[str, Any]:
        """Exchange an authorization code for tokens. **Blocks** (standard
        library HTTP): in a Twisted program use :meth:`requestToken`.

        :param authCode: the ``code`` of the redirect (``str`` or ``bytes``).
        :returns: the service's JSON answer as a dict, with each token field
            under both names (``accessToken`` and ``access_token``,
            ``refreshToken`` and ``refresh_token``, ``tokenType`` and
            ``token_type``, ``expiresIn`` and ``expires_in``). A refusal is
            returned too, as by the official SDK: ``errorCode`` and
            ``description`` are then set.
        :raises ValueError: a bad argument.
        :raises TokenTimeoutError: no answer within *timeout* seconds.
        :raises TokenRequestError: no usable answer (unreachable, TLS failure,
            not JSON, an HTTP error without the service's JSON).
        """
        return self._blockingGet(baseUri, self._codeParams(authCode))

    def refreshToken(self, refreshToken: str | bytes, baseUri: str = EndPoints.TOKEN_URI) -> dict[str, Any]:
        """Exchange a refresh token for a new pair (the old refresh token then
        stops working). **Blocks**: in a Twisted program use
        :meth:`requestRefresh`, or refresh over the connection
        (:meth:`~ctrader_twisted.client.Client.setTokenRefresher`).

        :returns: as :meth:`getToken`.
        :raises: as :meth:`getToken`.
        """
        return self._blockingGet(baseUri, self._refreshParams(refreshToken))

    # --- the non-blocking API -------------------------------------------------------------

    def requestToken(self, authCode: str | bytes, baseUri: str = EndPoints.TOKEN_URI) -> Deferred[Tokens]:
        """Exchange an authorization code for tokens, without blocking.

        :returns: a Deferred firing with :class:`~ctrader_twisted.tokens.Tokens`,
            or failing with :class:`TokenServiceError` (refused: a bad,
            expired or used code, wrong credentials),
            :class:`TokenTimeoutError`, :class:`TokenRequestError`, or
            ``ValueError`` for a bad argument.
        """
        try:
            params = self._codeParams(authCode)
        except ValueError as error:
            return fail(error)
        return self._request(baseUri, params)

    def requestRefresh(self, refreshToken: str | bytes, baseUri: str = EndPoints.TOKEN_URI) -> Deferred[Tokens]:
        """Exchange a refresh token for a new pair, without blocking. Keep the
        result (a :class:`~ctrader_twisted.tokens.FileTokenStore`): the old
        refresh token no longer works.

        :returns: as :meth:`requestToken` (a used or revoked refresh token
            fails with :class:`TokenServiceError`).
        """
        try:
            params = self._refreshParams(refreshToken)
        except ValueError as error:
            return fail(error)
        return self._request(baseUri, params)

    # --- parameters -------------------------------------------------------------------

    def _codeParams(self, authCode: Any) -> list[tuple[str, str]]:
        code = _code(authCode, "authCode")
        if not self.redirectUri:
            raise ValueError("the code exchange needs the redirectUri given to Auth()")
        return [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", self.redirectUri),
            ("client_id", self.appClientId),
            ("client_secret", self.appClientSecret),
        ]

    def _refreshParams(self, refreshToken: Any) -> list[tuple[str, str]]:
        return [
            ("grant_type", "refresh_token"),
            ("refresh_token", _code(refreshToken, "refreshToken")),
            ("client_id", self.appClientId),
            ("client_secret", self.appClientSecret),
        ]

    # --- answers ----------------------------------------------------------------------

    @staticmethod
    def _decode(status: int, body: bytes) -> dict[str, Any]:
        """The JSON object of an answer, or :class:`TokenRequestError`."""
        try:
            answer = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            answer = None
        if isinstance(answer, dict):
            if answer.get("errorCode") is not None or 200 <= status < 300:
                return answer
        if not 200 <= status < 300:
            raise TokenRequestError(f"the token service answered HTTP {status}", status)
        raise TokenRequestError("the token service's answer is not a JSON object", status)

    @staticmethod
    def _error(answer: Mapping[str, Any], status: int) -> TokenServiceError | None:
        code = answer.get("errorCode")
        if code is None:
            return None
        return TokenServiceError(_text(code, 100) or "UNKNOWN_ERROR", _text(answer.get("description"), 500), status)

    # --- blocking HTTP (standard library) -----------------------------------------------

    def _blockingGet(self, baseUri: str, params: list[tuple[str, str]]) -> dict[str, Any]:
        checkServiceUri(baseUri, "baseUri")
        _warnOnReactorThread()
        host = urlsplit(baseUri).hostname or baseUri
        request = urllib.request.Request(
            _join(baseUri, _query(params)), headers={"Accept": "application/json", "User-Agent": _USER_AGENT}
        )
        opener = urllib.request.build_opener(
            _NoRedirect(), urllib.request.HTTPSHandler(context=_sslContext(self._trustRoot))
        )
        deadline = time.monotonic() + self.timeout
        try:
            try:
                response = opener.open(request, timeout=self.timeout)
            except urllib.error.HTTPError as httpError:  # an HTTP error status: its body may be the service's JSON
                response = httpError
            with response:
                status = int(response.status or 0)
                body = _readLimited(response, deadline)
        except (socket.timeout, TimeoutError):
            raise TokenTimeoutError(f"the token service at {host} did not answer within {self.timeout:g} s") from None
        except urllib.error.URLError as error:
            reason = error.reason
            if isinstance(reason, (socket.timeout, TimeoutError)):
                raise TokenTimeoutError(f"the token service at {host} did not answer within {self.timeout:g} s") from None
            raise TokenRequestError(f"cannot reach the token service at {host}: {_reasonText(reason)}") from None
        except (OSError, ValueError) as error:  # ssl.SSLError is an OSError; http.client errors
            raise TokenRequestError(f"cannot reach the token service at {host}: {_reasonText(error)}") from None
        answer = self._decode(status, body)
        refusal = self._error(answer, status)
        if refusal is not None:
            self._log.warn("The token service refused the request: {error}", error=str(refusal))
        return _withAliases(answer)

    # --- non-blocking HTTP (treq) -----------------------------------------------------

    def _getReactor(self) -> Any:
        if self._reactor is None:
            from twisted.internet import reactor

            self._reactor = reactor
        return self._reactor

    def _client(self) -> Any:
        if self._httpClient is None:
            from treq.client import HTTPClient
            from twisted.web.client import Agent, BrowserLikePolicyForHTTPS, HTTPConnectionPool

            from .endpoints import loadTrustRoot

            reactor = self._getReactor()
            policy = BrowserLikePolicyForHTTPS(trustRoot=loadTrustRoot(self._trustRoot))
            pool = HTTPConnectionPool(reactor, persistent=False)
            agent = Agent(reactor, contextFactory=policy, pool=pool, connectTimeout=self.timeout)
            self._httpClient = HTTPClient(agent)
        return self._httpClient

    def _request(self, baseUri: str, params: list[tuple[str, str]]) -> Deferred[Tokens]:
        try:
            checkServiceUri(baseUri, "baseUri")
        except ValueError as error:
            return fail(error)
        reactor = self._getReactor()
        host = urlsplit(baseUri).hostname or baseUri
        timeout = self.timeout
        d = Deferred.fromCoroutine(self._exchange(baseUri, params, host))

        def timedOut(result: Any, _: float) -> Any:
            if isinstance(result, Failure):
                return Failure(TokenTimeoutError(f"the token service at {host} did not answer within {timeout:g} s"))
            return result

        d.addTimeout(timeout, reactor, onTimeoutCancel=timedOut)
        return d

    async def _exchange(self, baseUri: str, params: list[tuple[str, str]], host: str) -> Tokens:
        client = self._client()
        reactor = self._getReactor()
        try:
            response: IResponse = await client.get(
                baseUri,
                params=params,
                headers={"Accept": ["application/json"], "User-Agent": [_USER_AGENT]},
                allow_redirects=False,
                unbuffered=True,
                reactor=reactor,
            )
        except CancelledError:
            raise
        except Exception as error:
            raise TokenRequestError(f"cannot reach the token service at {host}: {_reasonText(error)}") from None
        status = int(response.code)
        body = await _collect(response, MAX_ANSWER_SIZE, host)
        answer = self._decode(status, body)
        refusal = self._error(answer, status)
        if refusal is not None:
            raise refusal
        try:
            return Tokens.fromAnswer(answer, reactor.seconds())
        except ValueError as problem:
            raise TokenRequestError(f"the token service's answer is malformed: {problem}", status) from None


def accessLogLine(timestamp: str, request: Any) -> str:
    """An access-log line for a Twisted Web ``Site`` (its ``logFormatter``)
    that leaves out the query string: in OAuth pages it carries codes,
    tokens and the client secret."""
    path = (request.uri or b"").split(b"?", 1)[0].decode("ascii", "replace")
    method = (request.method or b"-").decode("ascii", "replace")
    return f'{timestamp} "{method} {path}" {request.code}'


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Never follow a redirect: the request carries the client secret."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _readLimited(response: Any, deadline: float) -> bytes:
    """The body of a blocking answer, at most :data:`MAX_ANSWER_SIZE` bytes,
    read before *deadline* (``time.monotonic``)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        if time.monotonic() > deadline:
            raise TimeoutError("deadline passed while reading the answer")
        chunk = response.read(8192)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > MAX_ANSWER_SIZE:
            raise TokenRequestError(f"the token service's answer is larger than {MAX_ANSWER_SIZE} bytes")
        chunks.append(chunk)


def _sslContext(trustRoot: Any) -> ssl.SSLContext:
    """A verifying client context trusting *trustRoot* (the platform's store when ``None``)."""
    if trustRoot is None:
        return ssl.create_default_context()
    if isinstance(trustRoot, (str, Path)):
        return ssl.create_default_context(cafile=str(trustRoot))
    pems: list[bytes] = []
    for item in trustRoot if isinstance(trustRoot, (list, tuple)) else [trustRoot]:
        if isinstance(item, bytes):
            pems.append(item)
        elif hasattr(item, "dumpPEM"):
            pems.append(item.dumpPEM())
        else:
            raise TypeError(f"the blocking calls take a trust root as PEM, a path or Certificates, not {type(item).__name__}")
    return ssl.create_default_context(cadata=b"\n".join(pems).decode("ascii"))


def _reasonText(error: Any) -> str:
    """A one-line reason for a transport failure. Only messages known to be
    free of the URL (it holds the secrets) are quoted: OS errors, TLS errors
    and Twisted's connection errors; anything else is named by its type."""
    from twisted.internet import error as netError

    reasons = getattr(error, "reasons", None)  # twisted.web's ResponseNeverReceived and friends
    if isinstance(reasons, list) and reasons:
        first = reasons[0]
        return _reasonText(first.value if isinstance(first, Failure) else first)
    if isinstance(error, str):
        return error
    module = type(error).__module__
    if module.startswith("OpenSSL") or module.startswith("service_identity") or isinstance(error, ssl.SSLError):
        detail = getattr(error, "verify_message", None) or getattr(error, "reason", None) or _opensslReason(error)
        return f"TLS failure ({detail or type(error).__name__})"
    if isinstance(error, OSError) and error.strerror:
        return f"{type(error).__name__}: {error.strerror}"
    if isinstance(error, (netError.ConnectError, netError.DNSLookupError, netError.ConnectionLost)):
        text = str(error).strip().splitlines()
        return text[0] if text else type(error).__name__
    return type(error).__name__


def _opensslReason(error: Any) -> str:
    parts: list[str] = []
    for arg in getattr(error, "args", ()):
        if isinstance(arg, list):
            parts.extend(str(item[-1]) for item in arg if isinstance(item, tuple) and item)
        elif isinstance(arg, str):
            parts.append(arg)
    return "; ".join(p for p in parts if p)


def _warnOnReactorThread() -> None:
    """Log a warning when a blocking call is made on a running reactor's thread."""
    import sys

    module = sys.modules.get("twisted.internet.reactor")
    if module is None or not getattr(module, "running", False):
        return
    from twisted.python.threadable import isInIOThread

    if isInIOThread():
        _log.warn(
            "Auth.getToken/refreshToken block the reactor (heartbeats stop): "
            "use Auth.requestToken/requestRefresh in a Twisted program"
        )


class _Body(Protocol):
    """Collects a response body up to a size limit; cancelling stops it."""

    def __init__(self, finished: Deferred[bytes], limit: int, host: str) -> None:
        self.finished = finished
        self.limit = limit
        self.host = host
        self.chunks: list[bytes] = []
        self.size = 0

    def dataReceived(self, data: bytes) -> None:
        if self.finished.called:
            return
        self.size += len(data)
        if self.size > self.limit:
            self.finished.errback(TokenRequestError(f"the token service's answer is larger than {self.limit} bytes"))
            self.stop()
            return
        self.chunks.append(data)

    def stop(self) -> None:
        transport: Any = self.transport  # the response's producer
        if transport is not None:
            transport.stopProducing()

    def connectionLost(self, reason: Failure = Failure(Exception())) -> None:
        if self.finished.called:
            return
        from twisted.web.client import ResponseDone
        from twisted.web.http import PotentialDataLoss

        if reason.check(ResponseDone, PotentialDataLoss):
            self.finished.callback(b"".join(self.chunks))
        else:
            self.finished.errback(
                TokenRequestError(f"the connection to the token service at {self.host} was lost mid-answer: {_reasonText(reason.value)}")
            )


def _collect(response: IResponse, limit: int, host: str) -> Deferred[bytes]:
    """The body of *response* (at most *limit* bytes); cancelling the
    Deferred stops reading and closes the connection."""
    finished: Deferred[bytes] = Deferred(lambda _: body.stop())
    body = _Body(finished, limit, host)
    response.deliverBody(body)
    length = response.length
    if isinstance(length, int) and length > limit and not finished.called:
        finished.errback(TokenRequestError(f"the token service's answer is larger than {limit} bytes"))
        body.stop()
    return finished
