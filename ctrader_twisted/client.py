# -*- test-case-name: tests.test_client,tests.test_session -*-
"""The user's entry point: :class:`Client`, a ``ClientService`` like the official SDK's.

``Client`` knows connection life (the ``ClientService`` reconnect loop, its
backoff, the server's disconnect events, permanent errors that stop it) and
the user-facing API (the official SDK's callbacks, ``send`` and ``request``,
``whenReady``). Everything below it has its own module: the request core
(:class:`~ctrader_twisted.factory.Factory` and its layers), the managed
session (:mod:`ctrader_twisted.session`), the transports.

Ported code changes only its imports::

    from ctrader_twisted import Client, Protobuf, TcpProtocol, EndPoints
    client = Client(EndPoints.PROTOBUF_DEMO_HOST, EndPoints.PROTOBUF_PORT, TcpProtocol)
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorTime, IStreamClientEndpoint
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from .endpoints import clientEndpoint
from .errors import (
    ERROR_PAYLOAD_TYPES,
    AccountLostError,
    ClientAuthenticationError,
    ConnectionLostError,
    CTraderError,
    InvalidMessageError,
    NotConnectedError,
    NotReadyError,
    NotSentError,
    OpenApiError,
    ServerDisconnectError,
    wireText,
)
from .factory import Encoded, Factory, checkTimeout
from .framing import DEFAULT_MAX_MESSAGE_SIZE
from .interfaces import IFrameTransport
from .messages.OpenApiCommonMessages_pb2 import ProtoMessage
from .session import AccountState, Session
from .tcp import TcpProtocol

__all__ = ["Client", "MAX_MAINTENANCE_WAIT"]

_DEFAULT: Any = ...

#: The longest wait before reconnecting that a maintenance answer can set,
#: seconds, whatever end time it gives: the client then tries again (and
#: waits again if the maintenance goes on).
MAX_MAINTENANCE_WAIT = 3600.0

#: Requests whose success changes what a reconnect restores.
_TRACKED = frozenset(
    {
        "ProtoOAAccountLogoutReq",
        "ProtoOASubscribeSpotsReq",
        "ProtoOAUnsubscribeSpotsReq",
        "ProtoOASubscribeLiveTrendbarReq",
        "ProtoOAUnsubscribeLiveTrendbarReq",
        "ProtoOASubscribeDepthQuotesReq",
        "ProtoOAUnsubscribeDepthQuotesReq",
        "ProtoOAv1PnLChangeSubscribeReq",
        "ProtoOAv1PnLChangeUnSubscribeReq",
    }
)


class Client(ClientService):
    """A reconnecting Open API client.

    Two ways to use it:

    * **as the official SDK**: ``send`` requests from the connected callback
      (application auth included), read answers as ``ProtoMessage``;
    * **managed session**: give the application credentials
      (``clientId``/``clientSecret`` or :meth:`authorizeApplication`) and
      authorize accounts with :meth:`authorizeAccount`. After every
      (re)connection the client then restores the session before releasing
      user traffic: application auth, every authorized account, every active
      subscription (spots with their timestamp option, live trend bars, depth
      quotes, PnL changes), in that order; :meth:`whenReady` and the ready
      callback say when. Orders are never re-sent.

    :param host: proxy host name (see :class:`~ctrader_twisted.EndPoints`).
    :param port: proxy port (5035).
    :param protocol: transport protocol class: :class:`TcpProtocol` (TLS TCP)
        or :class:`~ctrader_twisted.websocket.WebSocketProtocol` (``wss://``).
    :param retryPolicy: seconds to wait before reconnection attempt *n*
        (exponential backoff with jitter by default: 1.5 s growing by 1.5x to
        60 s, plus up to 1 s). Failed session restores count as failed attempts.
    :param clock: time source for timeouts, heartbeats, pacing and retries
        (defaults to *reactor*).
    :param prepareConnection: passed to ``ClientService`` for compatibility;
        prefer the managed session (see the Twisted traps in the docs).
    :param numberOfMessagesToSendPerSecond: the official SDK's throttle
        setting, honoured as a cap on the general rate when given (never
        above *requestsPerSecond*; the official default of 5 is not copied:
        the server allows 50). Also settable later as an attribute.
    :param reactor: reactor for connecting; the global one, imported only
        when needed, if omitted.
    :param trustRoot: CA certificate(s) to trust instead of the platform's
        (see :func:`~ctrader_twisted.endpoints.loadTrustRoot`).
    :param useTLS: ``False`` connects without TLS (the simulator's benchmark
        listener only).
    :param endpoint: a ready ``IStreamClientEndpoint`` to use instead of
        building one (tests, proxies).
    :param heartbeatInterval: seconds between heartbeats (10).
    :param responseTimeout: default response timeout, seconds (5).
    :param silenceTimeout: drop and reconnect when nothing was received for
        this long, seconds (60; ``None`` disables).
    :param handshakeTimeout: seconds allowed from the TCP connection to a
        verified TLS session (and an open WebSocket) before the attempt is
        abandoned and the next one begins (30).
    :param maxMessageSize: largest frame accepted, bytes (15,000,000).
    :param requestsPerSecond: general rate limit (50).
    :param historicalRequestsPerSecond: historical-data rate limit (5).
    :param maxQueuedRequests: bound of the queue of unsent requests.
    :param failFast: fail sends at once while disconnected instead of
        queueing them until the session is back.
    :param clientId: application client id (turns on the managed session).
    :param clientSecret: application client secret; never logged.
    """

    _log = Logger()

    def __init__(
        self,
        host: str,
        port: int,
        protocol: type = TcpProtocol,
        retryPolicy: Callable[[int], float] | None = None,
        clock: IReactorTime | None = None,
        prepareConnection: Callable[[Any], Any] | None = None,
        numberOfMessagesToSendPerSecond: int | None = None,
        *,
        reactor: Any = None,
        trustRoot: Any = None,
        useTLS: bool = True,
        endpoint: IStreamClientEndpoint | None = None,
        heartbeatInterval: float | None = 10.0,
        responseTimeout: float | None = 5.0,
        silenceTimeout: float | None = 60.0,
        handshakeTimeout: float | None = 30.0,
        maxMessageSize: int = DEFAULT_MAX_MESSAGE_SIZE,
        requestsPerSecond: int | None = 50,
        historicalRequestsPerSecond: int | None = 5,
        maxQueuedRequests: int = 10_000,
        failFast: bool = False,
        clientId: str | None = None,
        clientSecret: str | None = None,
    ) -> None:
        if not isinstance(host, str) or not host:
            raise ValueError(f"host must be a non-empty string, got {host!r}")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise ValueError(f"port must be an integer from 1 to 65535, got {port!r}")
        if (clientId is None) != (clientSecret is None):
            raise ValueError("give both clientId and clientSecret, or neither")
        if reactor is None and (endpoint is None or clock is None):
            from twisted.internet import reactor as globalReactor

            reactor = globalReactor
        if clock is None:
            clock = reactor
        self._serverRequestsPerSecond = requestsPerSecond
        self._messagesPerSecond: int | None = None
        self.host = host
        self.port = port
        self.failFast = failFast
        self.clock = clock
        self.factory = Factory(
            protocol,
            clock,
            host,
            port,
            heartbeatInterval=heartbeatInterval,
            responseTimeout=responseTimeout,
            maxMessageSize=maxMessageSize,
            requestsPerSecond=requestsPerSecond,
            historicalRequestsPerSecond=historicalRequestsPerSecond,
            maxQueuedRequests=maxQueuedRequests,
            useTLS=useTLS,
            silenceTimeout=silenceTimeout,
            handshakeTimeout=handshakeTimeout,
            client=self,
        )
        if numberOfMessagesToSendPerSecond is not None:
            self.numberOfMessagesToSendPerSecond = numberOfMessagesToSendPerSecond
        self.session = Session(self._sendRestoreStep)
        self.session.onAccountLost = self._accountLost
        self.session.onTokensRefreshed = self._tokensRefreshed
        if clientId is not None:
            self.session.state.setApplication(clientId, clientSecret)  # type: ignore[arg-type]
            self.factory.holdTraffic()
        if endpoint is None:
            endpoint = clientEndpoint(reactor, host, port, useTLS=useTLS, trustRoot=trustRoot)
        endpoint = _ReportingEndpoint(endpoint, self._attemptFailed)
        self._basePolicy = retryPolicy if retryPolicy is not None else backoffPolicy()
        super().__init__(
            endpoint,
            self.factory,
            retryPolicy=self._retryDelay,
            clock=clock,
            prepareConnection=prepareConnection,
        )
        self._connectedCallback: Callable[[Client], Any] | None = None
        self._disconnectedCallback: Callable[[Client, Failure], Any] | None = None
        self._messageReceivedCallback: Callable[[Client, ProtoMessage], Any] | None = None
        self._readyCallback: Callable[[Client], Any] | None = None
        self._accountLostCallback: Callable[[Client, int, CTraderError], Any] | None = None
        self._tokensCallback: Callable[[Client, Any], Any] | None = None
        self._ready = False
        self._readyWaiters: list[tuple[Deferred[Client], bool]] = []
        self._lastFailure: BaseException | None = None
        self._fatal: CTraderError | None = None
        #: consecutive failed session restores (drives the backoff with the
        #: attempt count, which ClientService resets on every TCP connect)
        self.restoreFailures = 0
        self._notBefore = 0.0
        self.factory.addConnectionObserver(self._connected)
        self.factory.addDisconnectionObserver(self._disconnected)
        self.factory.addAttemptFailureObserver(self._attemptFailed)
        self.factory.addListener("ProtoOAClientDisconnectEvent", self._serverDisconnected)
        self.factory.addListener("ProtoOAAccountsTokenInvalidatedEvent", self._tokensInvalidated)
        self.factory.addListener("ProtoOAAccountDisconnectEvent", self._accountDisconnected)

    def __repr__(self) -> str:
        if self._ready:
            state = "ready"
        elif self.isConnected:
            state = "connected"
        else:
            state = "running" if self.running else "stopped"
        return f"<{type(self).__name__} {self.host}:{self.port} {state}>"

    # --- life cycle ------------------------------------------------------------------

    @property
    def isConnected(self) -> bool:
        """Whether a connection is up and ready to carry messages."""
        return self.factory.link is not None

    @property
    def numberOfMessagesToSendPerSecond(self) -> int | None:
        """The official SDK's throttle setting: a cap on requests per second.

        Setting it (here or in the constructor) paces requests at that rate
        when it is below the server's limit (``requestsPerSecond``, 50); the
        official SDK's default of 5 per second is not copied. Reading it gives
        the value set, or the general limit in force.
        """
        if self._messagesPerSecond is not None:
            return self._messagesPerSecond
        return self.factory.limiter.requestsPerSecond

    @numberOfMessagesToSendPerSecond.setter
    def numberOfMessagesToSendPerSecond(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"numberOfMessagesToSendPerSecond must be a positive integer, got {value!r}")
        self._messagesPerSecond = value
        server = self._serverRequestsPerSecond
        self.factory.limiter.requestsPerSecond = min(value, server) if server else value

    @property
    def isReady(self) -> bool:
        """Whether the connection is up and (for a managed session) restored."""
        return self._ready

    def startService(self) -> None:
        """Start connecting (and reconnecting after every loss)."""
        if self.running:
            return
        self._fatal = None
        self.restoreFailures = 0
        self.factory.keepQueuedOnDisconnect = not self.failFast
        super().startService()

    def stopService(self) -> Deferred[None]:
        """Stop reconnecting and close the connection; works in every state.

        Requests still waiting to be written fail with
        :class:`~ctrader_twisted.errors.NotSentError`; written ones with
        :class:`~ctrader_twisted.errors.OutcomeUnknownError` when the
        connection closes. :meth:`whenReady` waiters fail with
        :class:`~ctrader_twisted.errors.NotConnectedError` (or the permanent
        error that stopped the client).

        :returns: a Deferred that fires when the connection is closed.
        """
        self.factory.keepQueuedOnDisconnect = False
        cause = self._fatal
        reason = f"the client stopped: {cause}" if cause is not None else "the client was stopped"
        self.factory.failQueued(NotSentError(f"{reason} before the request was sent", cause))
        self._failWaiters(cause or NotConnectedError(reason))
        if not self.running:
            return succeed(None)
        return super().stopService()  # type: ignore[no-any-return]

    def whenReady(self, timeout: float | None = None) -> Deferred[Client]:
        """A new Deferred that fires with this client when it is ready.

        Ready means connected and, for a managed session, restored. It fails
        with a permanent error (:class:`~ctrader_twisted.errors.ClientAuthenticationError`,
        for instance) if the client stops because of one, with
        :class:`~ctrader_twisted.errors.NotConnectedError` if it is stopped,
        with :class:`~ctrader_twisted.errors.AccountLostError` if the restore
        it waited for dropped accounts (their tokens refused for good; the
        session is ready without them), and with
        :class:`~ctrader_twisted.errors.NotReadyError` (naming why the last
        attempt failed) when *timeout* seconds pass first.

        :param timeout: seconds to wait (``None``: as long as the client runs).
        """
        if self._ready:
            return succeed(self)
        if self._fatal is not None:
            return fail(self._fatal)
        if not self.running:
            return fail(NotConnectedError("the client is not running: call startService() first"))
        try:
            limit = checkTimeout(timeout, "timeout")
        except InvalidMessageError as e:
            return fail(e)
        d = self._waitReady(reportDropped=True)
        if limit is not None:

            def timedOut(result: Any, seconds: float) -> Any:
                raise NotReadyError(seconds, self._lastFailure)

            d.addTimeout(limit, self.clock, onTimeoutCancel=timedOut)
        return d

    def _waitReady(self, reportDropped: bool = False) -> Deferred[Client]:
        d: Deferred[Client] = Deferred(self._forgetWaiter)
        self._readyWaiters.append((d, reportDropped))
        return d

    def _forgetWaiter(self, d: Deferred[Client]) -> None:
        self._readyWaiters = [w for w in self._readyWaiters if w[0] is not d]

    def _retryDelay(self, attempt: int) -> float:
        delay = float(self._basePolicy(max(attempt, self.restoreFailures)))
        wait = self._notBefore - self.clock.seconds()
        return max(delay, wait)

    def _failWaiters(self, error: CTraderError) -> None:
        waiters, self._readyWaiters = self._readyWaiters, []
        for waiter, _ in waiters:
            waiter.errback(error)

    # --- official SDK API ------------------------------------------------------------

    def setConnectedCallback(self, callback: Callable[[Client], Any] | None) -> None:
        """Call ``callback(client)`` each time a connection is made."""
        self._connectedCallback = callback

    def setDisconnectedCallback(self, callback: Callable[[Client, Failure], Any] | None) -> None:
        """Call ``callback(client, reason)`` each time the connection ends,
        and each time a connection attempt fails (refused, unreachable, a
        TLS certificate refused, a handshake that timed out)."""
        self._disconnectedCallback = callback

    def setMessageReceivedCallback(self, callback: Callable[[Client, ProtoMessage], Any] | None) -> None:
        """Call ``callback(client, protoMessage)`` for every message received
        (answers included, as in the official SDK)."""
        # Registered with the core only while set: no per-message cost otherwise.
        if callback is not None and self._messageReceivedCallback is None:
            self.factory.addMessageCallback(self._received)
        elif callback is None and self._messageReceivedCallback is not None:
            self.factory.removeMessageCallback(self._received)
        self._messageReceivedCallback = callback

    def send(
        self,
        message: Any,
        clientMsgId: str | None = None,
        responseTimeoutInSeconds: Any = _DEFAULT,
        **params: Any,
    ) -> Deferred[ProtoMessage]:
        """Send a request; the Deferred fires with the answering ``ProtoMessage``.

        This is the official SDK's contract, kept exactly: error answers
        (``ProtoErrorRes``, ``ProtoOAErrorRes``, ...) fire the callback too;
        field values are not checked here (the server answers bad ones, as a
        zero volume gets ``TRADING_BAD_VOLUME``); *params* given beside a
        message object are ignored; it never raises. New code wants
        :meth:`request`.

        :param message: message object, ready ``ProtoMessage``, or a class,
            name (``"ProtoOAVersionReq"``), short name (``"VersionReq"``) or
            payload type built with *params*.
        :param clientMsgId: request id (generated when omitted).
        :param responseTimeoutInSeconds: seconds the request may wait to be
            written, then seconds from the write to the answer (``None``: no
            limit); the client's ``responseTimeout`` by default.
        :returns: a Deferred; an unknown message name or field, a bad
            timeout, a duplicate pending *clientMsgId* or a full queue fail it
            at once (nothing is written); see :meth:`Factory.send
            <ctrader_twisted.factory.Factory.send>` for the other failures.
        """
        return self._send(message, clientMsgId, responseTimeoutInSeconds, True, params)

    def request(
        self,
        message: Any,
        clientMsgId: str | None = None,
        responseTimeoutInSeconds: Any = _DEFAULT,
        **params: Any,
    ) -> Deferred[Any]:
        """Send a request; the Deferred fires with the decoded answer.

        Error answers errback with an
        :class:`~ctrader_twisted.errors.OpenApiError` subclass carrying the
        error code, description and the error message's other fields. The
        request is checked before anything is written (unknown names and
        fields, missing required fields, non-positive volumes): a problem
        fails the Deferred with :class:`~ctrader_twisted.errors.InvalidMessageError`
        or :class:`~ctrader_twisted.errors.UnknownMessageError` naming it.
        Arguments as for :meth:`send`.
        """
        return self._send(message, clientMsgId, responseTimeoutInSeconds, False, params)

    def _send(
        self,
        message: Any,
        clientMsgId: str | None,
        timeout: Any,
        raw: bool,
        params: dict[str, Any],
        priority: bool = False,
    ) -> Deferred[Any]:
        try:
            encoded = self.factory.encode(message, clientMsgId, validate=not raw, **params)
        except CTraderError as e:
            return fail(e)
        if not self.running:
            return fail(self._fatal or NotConnectedError("the client is not running: call startService() first"))
        if self.failFast and not (self._ready or (priority and self.isConnected)):
            return fail(NotConnectedError("the session is not ready (failFast is set)"))
        d = self.factory.submit(encoded, timeout, raw=raw, priority=priority)
        if encoded.message is not None and encoded.message.DESCRIPTOR.name in _TRACKED:
            d.addCallback(self._observe, encoded, raw)
        return d

    def _observe(self, result: Any, encoded: Encoded, raw: bool) -> Any:
        if raw and result.payloadType in ERROR_PAYLOAD_TYPES:
            return result
        self.session.state.observe(encoded.message)
        return result

    def _sendRestoreStep(self, name: str, fields: dict[str, Any]) -> Deferred[Any]:
        return self._send(name, None, _DEFAULT, False, fields, priority=True)

    # --- managed session ----------------------------------------------------------------

    def authorizeApplication(self, clientId: str, clientSecret: str) -> Deferred[Any]:
        """Authenticate the application now and after every reconnection.

        :returns: a Deferred that fires when the session is ready (the
            application authenticated) with this client, or fails with
            :class:`~ctrader_twisted.errors.ClientAuthenticationError` (the
            client then stops: the credentials are wrong), or with
            :class:`~ctrader_twisted.errors.InvalidMessageError` for empty
            credentials.
        """
        try:
            self.session.state.setApplication(clientId, clientSecret)
        except ValueError as e:
            return fail(InvalidMessageError(str(e)))
        self.factory.holdTraffic()
        if self.isConnected and self._ready:
            return self.session.authenticateApplication().addCallback(lambda _: self)
        if self._fatal is not None:
            return fail(self._fatal)
        if not self.running:
            return fail(NotConnectedError("the client is not running: call startService() first"))
        return self._waitReady()

    def authorizeAccount(self, ctidTraderAccountId: int, accessToken: str) -> Deferred[Any]:
        """Authorize a trading account now and after every reconnection.

        ``ALREADY_LOGGED_IN`` counts as success. A token refused as expired or
        invalid is refreshed once when a refresher is set
        (:meth:`setTokenRefresher`), and the authorization tried again.

        :returns: a Deferred that fires with ``ProtoOAAccountAuthRes`` (or
            ``None`` when the account was already logged in), or fails with
            :class:`~ctrader_twisted.errors.AccessTokenInvalidError` /
            :class:`~ctrader_twisted.errors.AccountNotAuthorizedError` (the
            account is then forgotten), with
            :class:`~ctrader_twisted.errors.NotConnectedError` when the
            application credentials are unknown, or with
            :class:`~ctrader_twisted.errors.InvalidMessageError` for a bad id
            or an empty token.
        """
        if not self.session.managed:
            return fail(
                NotConnectedError(
                    "authorizeAccount needs the application credentials: pass clientId and "
                    "clientSecret to Client or call authorizeApplication() first"
                )
            )
        try:
            account = self.session.state.addAccount(ctidTraderAccountId, accessToken)
        except ValueError as e:
            return fail(InvalidMessageError(str(e)))
        if self._ready:
            return self.session.authorize(account)
        if self._fatal is not None:
            return fail(self._fatal)
        if not self.running:
            return fail(NotConnectedError("the client is not running: call startService() first"))
        return self._waitReady().addCallback(lambda _: self.session.authorize(account))

    def logoutAccount(self, ctidTraderAccountId: int) -> Deferred[Any]:
        """Log an account out and stop restoring it."""
        self.session.state.removeAccount(ctidTraderAccountId)
        return self.request("ProtoOAAccountLogoutReq", ctidTraderAccountId=ctidTraderAccountId)

    def setReadyCallback(self, callback: Callable[[Client], Any] | None) -> None:
        """Call ``callback(client)`` each time the session is ready (restored)."""
        self._readyCallback = callback

    def setAccountLostCallback(self, callback: Callable[[Client, int, CTraderError], Any] | None) -> None:
        """Call ``callback(client, ctidTraderAccountId, error)`` when an account
        is dropped for good (its token was refused and could not be renewed)."""
        self._accountLostCallback = callback

    def setTokenRefresher(
        self,
        refreshToken: str,
        onTokensRefreshed: Callable[[Client, Any], Any],
        accessToken: str | None = None,
    ) -> None:
        """Renew access tokens with ``ProtoOARefreshTokenReq`` when they are refused.

        When an account's token is invalidated (or refused while restoring or
        authorizing), the client refreshes it, re-authorizes the accounts that
        used it and calls ``onTokensRefreshed(client, ProtoOARefreshTokenRes)``:
        store the new access and refresh tokens there (the old refresh token
        no longer works).

        :param accessToken: the access token *refreshToken* belongs to; by
            default the one token all authorized accounts share.
        """
        self.session.setTokenRefresher(refreshToken, accessToken)
        self._tokensCallback = onTokensRefreshed

    def refreshAccessToken(self) -> Deferred[Any]:
        """Refresh the access token now (see :meth:`setTokenRefresher`).

        :returns: a Deferred firing with ``ProtoOARefreshTokenRes``.
        """
        return self.session.refreshAccessToken()

    def _accountLost(self, ctidTraderAccountId: int, error: CTraderError) -> None:
        if self._accountLostCallback is not None:
            self._accountLostCallback(self, ctidTraderAccountId, error)

    def _tokensRefreshed(self, res: Any) -> None:
        if self._tokensCallback is not None:
            self._tokensCallback(self, res)

    # --- restoring ---------------------------------------------------------------------------

    def _startRestore(self, connection: IFrameTransport) -> None:
        def current() -> bool:
            return self.factory.connection is connection

        d = self.session.restore(current)
        d.addCallbacks(self._restored, self._restoreFailed, callbackArgs=(connection,), errbackArgs=(connection,))

    def _restored(self, dropped: list[tuple[int, CTraderError]], connection: IFrameTransport) -> None:
        if self.factory.connection is not connection:
            return
        self.restoreFailures = 0
        self._notBefore = 0.0
        self._becomeReady(AccountLostError(dict(dropped)) if dropped else None)

    def _restoreFailed(self, failure: Failure, connection: IFrameTransport) -> None:
        error = failure.value
        if isinstance(error, ClientAuthenticationError):
            self._log.error("Application authentication refused: {error}; stopping", error=str(error))
            self._stopForGood(error)
            return
        if isinstance(error, ConnectionLostError) or self.factory.connection is not connection:
            # The connection went away mid-restore: the reconnect loop goes on.
            self.restoreFailures += 1
            return
        if not isinstance(error, CTraderError):
            self._log.failure("Unexpected error while restoring the session", failure)
        self.restoreFailures += 1
        if isinstance(error, OpenApiError) and error.maintenanceEndTimestamp:
            now = self.clock.seconds()
            end = _maintenanceEnd(error)
            self._notBefore = min(end, now + MAX_MAINTENANCE_WAIT)
            self._log.warn(
                "Server under maintenance until {end} (as sent); reconnecting in {wait} s",
                end=error.maintenanceEndTimestamp,
                wait=round(max(0.0, self._notBefore - now), 3),
            )
        self._log.warn(
            "Session restore failed ({error}); reconnecting (failure {n})",
            error=str(error),
            n=self.restoreFailures,
        )
        self.factory.abortConnection(error if isinstance(error, CTraderError) else CTraderError(str(error)))

    def _stopForGood(self, error: CTraderError) -> None:
        self._fatal = error
        self.stopService()

    def _becomeReady(self, dropped: AccountLostError | None = None) -> None:
        self._ready = True
        self._lastFailure = None
        self.factory.releaseTraffic()
        self._log.info("Session ready on {host}:{port}", host=self.host, port=self.port)
        waiters, self._readyWaiters = self._readyWaiters, []
        for waiter, reportDropped in waiters:
            if dropped is not None and reportDropped:
                waiter.errback(dropped)
            else:
                waiter.callback(self)
        if self._readyCallback is not None:
            try:
                self._readyCallback(self)
            except Exception:
                self._log.failure("Exception in the ready callback")

    # --- listeners ------------------------------------------------------------------------

    def addListener(self, payload: Any, listener: Callable[[Any], Any]) -> None:
        """Call ``listener(decodedMessage)`` for every received message of one type.

        :param payload: class, name, short name or payload type, e.g.
            ``"ProtoOASpotEvent"``. Exceptions raised by *listener* are logged
            and do not affect the connection or other listeners.
        """
        self.factory.addListener(payload, listener)

    def removeListener(self, payload: Any, listener: Callable[[Any], Any]) -> None:
        """Remove a listener added with :meth:`addListener`."""
        self.factory.removeListener(payload, listener)

    # --- factory observers ------------------------------------------------------------

    def _connected(self, connection: IFrameTransport) -> None:
        if self._connectedCallback is not None:
            try:
                self._connectedCallback(self)
            except Exception:
                self._log.failure("Exception in the connected callback")
        if self.factory.connection is not connection:
            return  # the callback stopped the client
        if self.session.managed:
            self._startRestore(connection)
        else:
            self._becomeReady()

    def _disconnected(self, connection: IFrameTransport, reason: Failure) -> None:
        self._ready = False
        self._callDisconnected(reason)

    def _attemptFailed(self, reason: Failure) -> None:
        # A connection attempt that never became ready (refused, no route,
        # TLS refused or timed out): callback-style users hear of it through
        # the disconnected callback, with the reason.
        self._callDisconnected(reason)

    def _callDisconnected(self, reason: Failure) -> None:
        self._lastFailure = reason.value
        if self._disconnectedCallback is not None:
            try:
                self._disconnectedCallback(self, reason)
            except Exception:
                self._log.failure("Exception in the disconnected callback")

    def _received(self, message: ProtoMessage) -> None:
        if self._messageReceivedCallback is not None:
            self._messageReceivedCallback(self, message)

    def _serverDisconnected(self, event: Any) -> None:
        self.restoreFailures += 1
        reason = wireText(event.reason) or "no reason given"
        self._log.warn("The server ended the session: {reason}", reason=reason)
        self.factory.abortConnection(ServerDisconnectError(f"ProtoOAClientDisconnectEvent: {reason}"))

    def _tokensInvalidated(self, event: Any) -> None:
        for accountId in event.ctidTraderAccountIds:
            account = self.session.accounts.get(accountId)
            if account is None:
                continue
            self._log.warn(
                "Access token of account {account} invalidated: {reason}",
                account=accountId,
                reason=wireText(event.reason) or "no reason given",
            )
            self._reauthorize(account)

    def _accountDisconnected(self, event: Any) -> None:
        account = self.session.accounts.get(event.ctidTraderAccountId)
        if account is not None and self._ready:
            self._log.warn(
                "Account {account} was disconnected by the server; re-authorizing",
                account=event.ctidTraderAccountId,
            )
            self._reauthorize(account)

    def _reauthorize(self, account: AccountState) -> None:
        connection = self.factory.connection
        if connection is None:
            return
        self.session.reauthorize(account, lambda: self.factory.connection is connection)


@implementer(IStreamClientEndpoint)
class _ReportingEndpoint:
    """Wraps the client's endpoint to report failed connection attempts."""

    def __init__(self, endpoint: IStreamClientEndpoint, onFailure: Callable[[Failure], Any]) -> None:
        self._endpoint = endpoint
        self._onFailure = onFailure

    def connect(self, protocolFactory: Any) -> Deferred[Any]:
        d: Deferred[Any] = self._endpoint.connect(protocolFactory)

        def failed(failure: Failure) -> Failure:
            self._onFailure(failure)
            return failure

        return d.addErrback(failed)

    def __repr__(self) -> str:
        return repr(self._endpoint)


def _maintenanceEnd(error: OpenApiError) -> float:
    """Maintenance end as clock seconds: ``ProtoErrorRes`` sends milliseconds,
    ``ProtoOAErrorRes`` (per its spec) seconds; values past year 5138 in
    seconds are taken as milliseconds."""
    value = float(error.maintenanceEndTimestamp or 0)
    return value / 1000.0 if value > 1e11 else value
