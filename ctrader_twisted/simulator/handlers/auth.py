# -*- test-case-name: tests.test_simulator_memory -*-
"""Authentication requests: the application, accounts and their tokens.

Application authentication (the only request accepted before it), the
server version, account authorization and logout, the account list and the
cTID profile of an access token, and token refresh. Tokens and accounts are
kept by the :class:`~ctrader_twisted.simulator.Simulator`; which accounts are
authorized on a connection is kept by its
:class:`~ctrader_twisted.simulator.session.Session`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...messages.OpenApiMessages_pb2 import (
    ProtoOAAccountAuthReq,
    ProtoOAAccountAuthRes,
    ProtoOAAccountDisconnectEvent,
    ProtoOAAccountLogoutReq,
    ProtoOAAccountLogoutRes,
    ProtoOAApplicationAuthReq,
    ProtoOAApplicationAuthRes,
    ProtoOAGetAccountListByAccessTokenReq,
    ProtoOAGetAccountListByAccessTokenRes,
    ProtoOAGetCtidProfileByTokenReq,
    ProtoOAGetCtidProfileByTokenRes,
    ProtoOARefreshTokenReq,
    ProtoOARefreshTokenRes,
    ProtoOAVersionReq,
    ProtoOAVersionRes,
)
from ...messages.OpenApiModelMessages_pb2 import ProtoOAClientPermissionScope, ProtoOACtidProfile
from .registry import Registry

if TYPE_CHECKING:
    from ..accounts import Account, Token
    from ..session import Session

__all__ = ["HANDLERS", "SERVER_VERSION", "SIMULATOR_MARKER"]

#: How the simulator identifies itself in its version answer: clients (the
#: command line's ``"simulated"`` field) look for it there. Real servers
#: answer a protocol version number ("91"), never this.
SIMULATOR_MARKER = "ctrader-twisted-simulator"

#: What ``ProtoOAVersionRes.version`` says.
SERVER_VERSION = f"91-{SIMULATOR_MARKER}"

#: The handlers of this module.
HANDLERS = Registry()


@HANDLERS.handler(ProtoOAApplicationAuthReq, application=False)
def applicationAuth(session: Session, req: ProtoOAApplicationAuthReq, clientMsgId: str | None) -> None:
    """Authenticate the connection's application, once; bad credentials close it."""
    if session.appAuthenticated:
        session.oaError("CH_CLIENT_ALREADY_AUTHENTICATED", "Open API application is already authorized", clientMsgId)
        return
    if session.simulator.applications.get(req.clientId) != req.clientSecret:
        session.oaError("CH_CLIENT_AUTH_FAILURE", "clientId or clientSecret is incorrect", clientMsgId)
        session.connection.close()  # the real proxy hangs up after this error
        return
    session.appAuthenticated = True
    session.send(ProtoOAApplicationAuthRes(), clientMsgId)


@HANDLERS.handler(ProtoOAVersionReq)
def version(session: Session, req: ProtoOAVersionReq, clientMsgId: str | None) -> None:
    """Answer :data:`SERVER_VERSION`."""
    session.send(ProtoOAVersionRes(version=SERVER_VERSION), clientMsgId)


@HANDLERS.handler(ProtoOAAccountAuthReq)
def accountAuth(session: Session, req: ProtoOAAccountAuthReq, clientMsgId: str | None) -> None:
    """Authorize an account on the connection with an access token that grants it."""
    sim = session.simulator
    accountId = req.ctidTraderAccountId
    token = _validToken(session, req.accessToken, clientMsgId, accountId)
    if token is None:
        return
    if accountId not in sim.accounts:
        session.oaError("CH_CTID_TRADER_ACCOUNT_NOT_FOUND", "Trading account not found", clientMsgId, accountId)
        return
    if accountId not in token.accountIds:
        session.oaError(
            "ACCOUNT_NOT_AUTHORIZED", "The access token does not grant this trading account", clientMsgId, accountId
        )
        return
    if accountId in session.accounts:
        session.oaError(
            "ALREADY_LOGGED_IN", "Trading account is already authorized in this channel", clientMsgId, accountId
        )
        return
    session.accounts[accountId] = req.accessToken
    session.send(ProtoOAAccountAuthRes(ctidTraderAccountId=accountId), clientMsgId)


@HANDLERS.handler(ProtoOAAccountLogoutReq, account=True)
def accountLogout(session: Session, account: Account, req: ProtoOAAccountLogoutReq, clientMsgId: str | None) -> None:
    """Log the account out of the connection: the answer, then ``ProtoOAAccountDisconnectEvent``."""
    accountId = account.ctidTraderAccountId
    session.forgetAccount(accountId)
    session.send(ProtoOAAccountLogoutRes(ctidTraderAccountId=accountId), clientMsgId)
    session.send(ProtoOAAccountDisconnectEvent(ctidTraderAccountId=accountId))


def _validToken(
    session: Session, accessToken: str, clientMsgId: str | None, ctidTraderAccountId: int | None = None
) -> Token | None:
    """The valid token *accessToken* names, or ``None`` once
    ``CH_ACCESS_TOKEN_INVALID`` has been answered."""
    token = session.simulator.tokens.get(accessToken)
    if token is None or not token.valid:
        session.oaError("CH_ACCESS_TOKEN_INVALID", "Invalid access token", clientMsgId, ctidTraderAccountId)
        return None
    return token


@HANDLERS.handler(ProtoOAGetAccountListByAccessTokenReq)
def accountList(session: Session, req: ProtoOAGetAccountListByAccessTokenReq, clientMsgId: str | None) -> None:
    """The accounts an access token grants."""
    sim = session.simulator
    token = _validToken(session, req.accessToken, clientMsgId)
    if token is None:
        return
    session.send(
        ProtoOAGetAccountListByAccessTokenRes(
            accessToken=req.accessToken,
            permissionScope=ProtoOAClientPermissionScope.SCOPE_TRADE,
            ctidTraderAccount=[sim.accounts[i].toCtidTraderAccount() for i in token.accountIds if i in sim.accounts],
        ),
        clientMsgId,
    )


@HANDLERS.handler(ProtoOAGetCtidProfileByTokenReq)
def ctidProfile(session: Session, req: ProtoOAGetCtidProfileByTokenReq, clientMsgId: str | None) -> None:
    """The cTID profile (user id) of an access token."""
    token = _validToken(session, req.accessToken, clientMsgId)
    if token is None:
        return
    session.send(ProtoOAGetCtidProfileByTokenRes(profile=ProtoOACtidProfile(userId=token.userId)), clientMsgId)


@HANDLERS.handler(ProtoOARefreshTokenReq)
def refreshToken(session: Session, req: ProtoOARefreshTokenReq, clientMsgId: str | None) -> None:
    """A new token pair for a refresh token; the old pair stops working and its
    sessions get ``ProtoOAAccountsTokenInvalidatedEvent``."""
    sim = session.simulator
    old = sim.refreshTokens.get(req.refreshToken)
    if old is None or not old.valid:
        session.oaError("CH_ACCESS_TOKEN_INVALID", "Invalid refresh token", clientMsgId)
        return
    new = sim.replaceToken(old)
    session.send(
        ProtoOARefreshTokenRes(
            accessToken=new.accessToken, tokenType="bearer", expiresIn=new.expiresIn, refreshToken=new.refreshToken
        ),
        clientMsgId,
    )
    sim.invalidateToken(old, "Access token was refreshed")
