# -*- test-case-name: tests.test_session -*-
"""What a client restores after reconnecting: authentication and subscriptions.

:class:`SessionState` records the application credentials, every account
authorized through the client, and every subscription that succeeded (spots
with their timestamp option, live trend bars, depth quotes, PnL changes),
by watching successful requests. :meth:`SessionState.restoreSteps` lists the
requests that rebuild it on a new connection, in the order the server needs:
application auth, then each account, then its subscriptions.

Nothing that changes server state beyond subscriptions (orders above all) is
ever recorded or replayed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


__all__ = ["SessionState", "AccountState", "RestoreStep"]


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
    #: the token this account was last authorized with on the server
    authorizedWith: str | None = field(default=None, repr=False)

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
    kind: str = "subscription"  # "application", "account" or "subscription"

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
        if not clientId or not clientSecret:
            raise ValueError("clientId and clientSecret must be non-empty strings")
        self._clientId, self._clientSecret = clientId, clientSecret

    def applicationFields(self) -> dict[str, Any]:
        """Fields of ``ProtoOAApplicationAuthReq``."""
        return {"clientId": self._clientId, "clientSecret": self._clientSecret}

    def addAccount(self, ctidTraderAccountId: int, accessToken: str) -> AccountState:
        """Record an account to authorize on every (re)connection."""
        if not isinstance(ctidTraderAccountId, int) or ctidTraderAccountId <= 0:
            raise ValueError(f"ctidTraderAccountId must be a positive integer, got {ctidTraderAccountId!r}")
        if not accessToken:
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

    def replaceToken(self, old: str, new: str) -> list[int]:
        """Give every account authorized with *old* the token *new*."""
        changed = []
        for account in self.accounts.values():
            if account.accessToken == old:
                account.accessToken = new
                changed.append(account.ctidTraderAccountId)
        return changed

    def forgetConnection(self) -> None:
        """The connection is gone: no account is authorized on the server any more."""
        for account in self.accounts.values():
            account.authorizedWith = None

    # --- observing successful requests -----------------------------------------------

    def observe(self, request: Any) -> None:
        """Update the record after *request* succeeded."""
        name = request.DESCRIPTOR.name
        accountId = getattr(request, "ctidTraderAccountId", None)
        account = self.accounts.get(accountId) if accountId is not None else None
        if name == "ProtoOAAccountAuthReq":
            if account is not None:
                account.authorizedWith = request.accessToken
            return
        if name == "ProtoOAAccountLogoutReq":
            self.removeAccount(accountId)  # type: ignore[arg-type]
            return
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

    # --- restoring ------------------------------------------------------------------------

    def accountStep(self, account: AccountState) -> RestoreStep:
        """The authorization request of one account."""
        return RestoreStep(
            "ProtoOAAccountAuthReq",
            {"ctidTraderAccountId": account.ctidTraderAccountId, "accessToken": account.accessToken},
            account.ctidTraderAccountId,
            "account",
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

    def restoreSteps(self) -> list[RestoreStep]:
        """Every request of a full restore, in order."""
        steps = []
        if self.managed:
            steps.append(RestoreStep("ProtoOAApplicationAuthReq", self.applicationFields(), None, "application"))
        for account in list(self.accounts.values()):
            steps.append(self.accountStep(account))
        for account in list(self.accounts.values()):
            steps.extend(self.subscriptionSteps(account))
        return steps
