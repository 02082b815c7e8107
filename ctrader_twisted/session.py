# -*- test-case-name: tests.test_session -*-
"""The managed session: what a reconnect restores, and how accounts are authorized.

* :class:`SessionState` is the record: the application credentials, every
  account authorized through the client, and every subscription that
  succeeded (spots with their timestamp option, live trend bars, depth
  quotes, PnL changes), kept by watching successful requests.
* :class:`Session` acts on it over a connection: it restores the session in
  the order the server needs (application auth, then each account, then its
  subscriptions) and holds the **one account-authorization path**, used by
  the restore, by re-authorization after a server event and by
  ``Client.authorizeAccount``: authorize; when the token is refused as
  invalid or expired and a refresh token is known, refresh it once and try
  again; when the account is refused for good, drop it and say so.

Nothing that changes server state beyond subscriptions (orders above all) is
ever recorded or replayed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from twisted.internet.defer import Deferred, ensureDeferred, fail
from twisted.logger import Logger
from twisted.python.failure import Failure

from .errors import (
    AccessTokenInvalidError,
    AccountNotAuthorizedError,
    AlreadyLoggedInError,
    CTraderError,
    NotConnectedError,
    OpenApiError,
)

__all__ = ["SessionState", "AccountState", "RestoreStep", "Session"]

#: Error codes that mean a restored subscription is already in place.
_ALREADY_SUBSCRIBED = frozenset({"ALREADY_SUBSCRIBED"})


@dataclass(eq=False)
class AccountState:
    """One authorized trading account and its active subscriptions."""

    ctidTraderAccountId: int
    accessToken: str = field(repr=False)
    #: symbolId -> subscribeToSpotTimestamp
    spots: dict[int, bool] = field(default_factory=dict)
    #: (symbolId, period)
    trendbars: set[tuple[int, int]] = field(default_factory=set)
    depth: set[int] = field(default_factory=set)
    pnl: bool = False

    def __repr__(self) -> str:
        return (
            f"AccountState({self.ctidTraderAccountId}, spots={sorted(self.spots)}, "
            f"trendbars={sorted(self.trendbars)}, depth={sorted(self.depth)}, pnl={self.pnl})"
        )


@dataclass(frozen=True)
class RestoreStep:
    """One request of a restore: message name and fields (never logged whole:
    fields may hold secrets)."""

    name: str
    fields: dict[str, Any] = field(repr=False)
    ctidTraderAccountId: int | None = None

    def __repr__(self) -> str:
        return f"RestoreStep({self.name}, account={self.ctidTraderAccountId})"


class SessionState:
    """The client-side record of what a session must restore."""

    def __init__(self) -> None:
        self._clientId: str | None = None
        self._clientSecret: str | None = None
        self.accounts: dict[int, AccountState] = {}

    def __repr__(self) -> str:
        app = "set" if self._clientId is not None else "unset"
        return f"<SessionState application={app} accounts={list(self.accounts.values())!r}>"

    @property
    def managed(self) -> bool:
        """Whether the client restores this session (application credentials known)."""
        return self._clientId is not None

    def setApplication(self, clientId: str, clientSecret: str) -> None:
        """Record the application credentials used for every (re)connection."""
        if not isinstance(clientId, str) or not isinstance(clientSecret, str) or not clientId or not clientSecret:
            raise ValueError("clientId and clientSecret must be non-empty strings")
        self._clientId, self._clientSecret = clientId, clientSecret

    def applicationStep(self) -> RestoreStep:
        """The application authentication request."""
        return RestoreStep(
            "ProtoOAApplicationAuthReq", {"clientId": self._clientId, "clientSecret": self._clientSecret}
        )

    def addAccount(self, ctidTraderAccountId: int, accessToken: str) -> AccountState:
        """Record an account to authorize on every (re)connection."""
        if isinstance(ctidTraderAccountId, bool) or not isinstance(ctidTraderAccountId, int) or ctidTraderAccountId <= 0:
            raise ValueError(f"ctidTraderAccountId must be a positive integer, got {ctidTraderAccountId!r}")
        if not isinstance(accessToken, str) or not accessToken:
            raise ValueError("accessToken must be a non-empty string")
        account = self.accounts.get(ctidTraderAccountId)
        if account is None:
            account = self.accounts[ctidTraderAccountId] = AccountState(ctidTraderAccountId, accessToken)
        else:
            account.accessToken = accessToken
        return account

    def removeAccount(self, ctidTraderAccountId: int) -> AccountState | None:
        """Forget an account (logout, or authorization refused for good)."""
        return self.accounts.pop(ctidTraderAccountId, None)

    def observe(self, request: Any) -> None:
        """Update the record after *request* succeeded."""
        name = request.DESCRIPTOR.name
        accountId = getattr(request, "ctidTraderAccountId", None)
        if name == "ProtoOAAccountLogoutReq":
            self.removeAccount(accountId)  # type: ignore[arg-type]
            return
        account = self.accounts.get(accountId) if accountId is not None else None
        if account is None:
            return
        if name == "ProtoOASubscribeSpotsReq":
            for symbolId in request.symbolId:
                account.spots[symbolId] = bool(request.subscribeToSpotTimestamp)
        elif name == "ProtoOAUnsubscribeSpotsReq":
            for symbolId in request.symbolId:
                account.spots.pop(symbolId, None)
        elif name == "ProtoOASubscribeLiveTrendbarReq":
            account.trendbars.add((request.symbolId, request.period))
        elif name == "ProtoOAUnsubscribeLiveTrendbarReq":
            account.trendbars.discard((request.symbolId, request.period))
        elif name == "ProtoOASubscribeDepthQuotesReq":
            account.depth.update(request.symbolId)
        elif name == "ProtoOAUnsubscribeDepthQuotesReq":
            account.depth.difference_update(request.symbolId)
        elif name == "ProtoOAv1PnLChangeSubscribeReq":
            account.pnl = True
        elif name == "ProtoOAv1PnLChangeUnSubscribeReq":
            account.pnl = False

    def accountStep(self, account: AccountState) -> RestoreStep:
        """The authorization request of one account."""
        return RestoreStep(
            "ProtoOAAccountAuthReq",
            {"ctidTraderAccountId": account.ctidTraderAccountId, "accessToken": account.accessToken},
            account.ctidTraderAccountId,
        )

    def subscriptionSteps(self, account: AccountState) -> list[RestoreStep]:
        """The requests that restore one account's subscriptions."""
        accountId = account.ctidTraderAccountId
        steps = []
        for flag in (False, True):
            symbols = sorted(s for s, f in account.spots.items() if f is flag)
            if symbols:
                fields: dict[str, Any] = {"ctidTraderAccountId": accountId, "symbolId": symbols}
                if flag:
                    fields["subscribeToSpotTimestamp"] = True
                steps.append(RestoreStep("ProtoOASubscribeSpotsReq", fields, accountId))
        for symbolId, period in sorted(account.trendbars):
            steps.append(
                RestoreStep(
                    "ProtoOASubscribeLiveTrendbarReq",
                    {"ctidTraderAccountId": accountId, "symbolId": symbolId, "period": period},
                    accountId,
                )
            )
        if account.depth:
            steps.append(
                RestoreStep(
                    "ProtoOASubscribeDepthQuotesReq",
                    {"ctidTraderAccountId": accountId, "symbolId": sorted(account.depth)},
                    accountId,
                )
            )
        if account.pnl:
            steps.append(RestoreStep("ProtoOAv1PnLChangeSubscribeReq", {"ctidTraderAccountId": accountId}, accountId))
        return steps


#: Sends one restore request (ahead of held user traffic) and fires with the
#: decoded answer or fails with a typed error.
Sender = Callable[[str, dict[str, Any]], "Deferred[Any]"]


class Session:
    """Restores a :class:`SessionState` and authorizes its accounts.

    :param send: see :data:`Sender`.

    :ivar state: the record.
    :ivar onAccountLost: called with ``(ctidTraderAccountId, error)`` when an
        account is dropped for good.
    :ivar onTokensRefreshed: called with ``ProtoOARefreshTokenRes`` after a refresh.
    """

    _log = Logger()

    def __init__(self, send: Sender) -> None:
        self.state = SessionState()
        self._send = send
        self.onAccountLost: Callable[[int, CTraderError], Any] | None = None
        self.onTokensRefreshed: Callable[[Any], Any] | None = None
        self._refreshToken: str | None = None
        self._pairedToken: str | None = None
        self._refreshing: Deferred[Any] | None = None

    def __repr__(self) -> str:
        refresher = "set" if self._refreshToken is not None else "unset"
        return f"<Session {self.state!r} refresher={refresher}>"

    @property
    def managed(self) -> bool:
        """Whether the application credentials are known (the client restores)."""
        return self.state.managed

    @property
    def accounts(self) -> dict[int, AccountState]:
        """The accounts restored on every connection, by id."""
        return self.state.accounts

    # --- tokens ---------------------------------------------------------------------

    def setTokenRefresher(self, refreshToken: str, accessToken: str | None = None) -> None:
        """Renew refused access tokens with ``ProtoOARefreshTokenReq`` and *refreshToken*.

        :param accessToken: the access token *refreshToken* belongs to. When
            omitted, it is the token every authorized account shares (with
            accounts of several tokens and no *accessToken*, nothing is
            refreshed automatically: refreshing one token must not hand it to
            accounts of another).
        """
        if not isinstance(refreshToken, str) or not refreshToken:
            raise ValueError("refreshToken must be a non-empty string")
        if accessToken is not None and (not isinstance(accessToken, str) or not accessToken):
            raise ValueError("accessToken must be a non-empty string or None")
        self._refreshToken = refreshToken
        self._pairedToken = accessToken

    @property
    def canRefresh(self) -> bool:
        """Whether a refresh token is known."""
        return self._refreshToken is not None

    def _tokenOfRefresher(self) -> str | None:
        """The access token the refresh token belongs to, if it can be told."""
        if self._pairedToken is not None:
            return self._pairedToken
        tokens = {account.accessToken for account in self.state.accounts.values()}
        return tokens.pop() if len(tokens) == 1 else None

    def refreshAccessToken(self) -> Deferred[Any]:
        """Refresh the access token now; one refresh at a time (a refresh
        token works once), later callers share it.

        :returns: a Deferred firing with ``ProtoOARefreshTokenRes``; the
            accounts of the refreshed token then use the new one, and
            ``onTokensRefreshed`` has been called.
        """
        if self._refreshToken is None:
            return fail(NotConnectedError("no refresh token: call setTokenRefresher() first"))
        if self._refreshing is not None:
            waiter: Deferred[Any] = Deferred()
            self._refreshing.addBoth(_relay, waiter)
            return waiter
        old = self._tokenOfRefresher()
        d = self._send("ProtoOARefreshTokenReq", {"refreshToken": self._refreshToken})

        def refreshed(res: Any) -> Any:
            self._refreshToken = res.refreshToken
            self._pairedToken = res.accessToken
            for account in self.state.accounts.values():
                if account.accessToken == old:
                    account.accessToken = res.accessToken
            self._log.info("Access token refreshed; it expires in {seconds} s", seconds=res.expiresIn)
            if self.onTokensRefreshed is not None:
                try:
                    self.onTokensRefreshed(res)
                except Exception:
                    self._log.failure("Exception in the tokens-refreshed callback")
            return res

        def done(result: Any) -> Any:
            self._refreshing = None
            return result

        d.addCallback(refreshed)
        d.addBoth(done)
        self._refreshing = d
        return d

    # --- the one account-authorization path --------------------------------------------

    def authorize(self, account: AccountState) -> Deferred[Any]:
        """Authorize *account* on the current connection.

        ``ALREADY_LOGGED_IN`` counts as success. A token refused as invalid or
        expired is refreshed once (when a refresh token is known) and the
        authorization tried again.

        :returns: a Deferred firing with ``ProtoOAAccountAuthRes`` (``None``
            when already logged in); it fails with the refusal
            (:class:`~ctrader_twisted.errors.AccessTokenInvalidError`,
            :class:`~ctrader_twisted.errors.AccountNotAuthorizedError`, or
            the refresh's own error), and the account is then dropped and
            reported to ``onAccountLost``; other failures (timeouts, a
            lost connection) leave the account in place.
        """
        return ensureDeferred(self._authorize(account))

    async def _authorize(self, account: AccountState) -> Any:
        try:
            try:
                return await self._accountStep(account)
            except AccessTokenInvalidError:
                if self._refreshToken is None or account.accessToken != self._tokenOfRefresher():
                    raise
            try:
                await self.refreshAccessToken()
            except OpenApiError as error:
                raise _Refused(error) from None
            return await self._accountStep(account)
        except (AccessTokenInvalidError, AccountNotAuthorizedError) as error:
            self._drop(account, error)
            raise
        except _Refused as refused:
            self._drop(account, refused.error)
            raise refused.error from None

    def _accountStep(self, account: AccountState) -> Deferred[Any]:
        step = self.state.accountStep(account)

        def alreadyLoggedIn(failure: Failure) -> Any:
            failure.trap(AlreadyLoggedInError)
            return None

        return self._send(step.name, step.fields).addErrback(alreadyLoggedIn)

    def _drop(self, account: AccountState, error: CTraderError) -> None:
        if self.state.accounts.get(account.ctidTraderAccountId) is not account:
            return
        del self.state.accounts[account.ctidTraderAccountId]
        self._log.error("Account {account} dropped: {error}", account=account.ctidTraderAccountId, error=str(error))
        if self.onAccountLost is not None:
            try:
                self.onAccountLost(account.ctidTraderAccountId, error)
            except Exception:
                self._log.failure("Exception in the account-lost callback")

    # --- restoring ----------------------------------------------------------------------

    def authenticateApplication(self) -> Deferred[Any]:
        """Send the application authentication now."""
        step = self.state.applicationStep()
        return self._send(step.name, step.fields)

    def restoreSubscriptions(self, account: AccountState, current: Callable[[], bool]) -> Deferred[None]:
        """Restore *account*'s subscriptions, in order, while *current* is true."""

        async def run() -> None:
            for step in self.state.subscriptionSteps(account):
                if not current():
                    return
                await self._subscribe(step)

        return ensureDeferred(run())

    def _subscribe(self, step: RestoreStep) -> Deferred[Any]:
        def alreadySubscribed(failure: Failure) -> Any:
            failure.trap(OpenApiError)
            if failure.value.errorCode in _ALREADY_SUBSCRIBED:
                return None
            return failure

        return self._send(step.name, step.fields).addErrback(alreadySubscribed)

    def restore(self, current: Callable[[], bool]) -> Deferred[list[tuple[int, CTraderError]]]:
        """Rebuild the session on a new connection while *current* (the
        connection it runs on is still the live one) is true.

        :returns: a Deferred firing with the accounts dropped on the way
            (``(ctidTraderAccountId, error)``: refused for good), or failing
            with the first error that is not an account's refusal (the
            application refused, a timeout, a lost connection).
        """
        return ensureDeferred(self._restore(current))

    async def _restore(self, current: Callable[[], bool]) -> list[tuple[int, CTraderError]]:
        dropped: list[tuple[int, CTraderError]] = []
        if self.state.managed:
            await self.authenticateApplication()
        for account in list(self.state.accounts.values()):
            if not current():
                return dropped
            try:
                await self.authorize(account)
            except OpenApiError as error:
                if self.state.accounts.get(account.ctidTraderAccountId) is account:
                    raise  # not a refusal of this account: the restore failed
                dropped.append((account.ctidTraderAccountId, error))
        for account in list(self.state.accounts.values()):
            await self.restoreSubscriptions(account, current)
        return dropped

    def reauthorize(self, account: AccountState, current: Callable[[], bool]) -> Deferred[None]:
        """Authorize *account* again and restore its subscriptions (after
        ``ProtoOAAccountsTokenInvalidatedEvent`` or
        ``ProtoOAAccountDisconnectEvent``); failures are logged."""

        async def again() -> None:
            await self.authorize(account)
            await self.restoreSubscriptions(account, current)

        def failed(failure: Failure) -> None:
            if self.state.accounts.get(account.ctidTraderAccountId) is account:  # else dropped, and logged
                self._log.warn(
                    "Re-authorizing account {account} failed: {error}",
                    account=account.ctidTraderAccountId,
                    error=str(failure.value),
                )

        return ensureDeferred(again()).addErrback(failed)


class _Refused(Exception):
    """The refresh of a refused token failed with the server's *error*."""

    def __init__(self, error: OpenApiError) -> None:
        self.error = error
        super().__init__(str(error))


def _relay(result: Any, waiter: Deferred[Any]) -> Any:
    """Pass *result* on to *waiter* and leave it unchanged for the chain."""
    if isinstance(result, Failure):
        waiter.errback(result)
    else:
        waiter.callback(result)
    return result
