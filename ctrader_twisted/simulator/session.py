# -*- test-case-name: tests.test_simulator -*-
"""One client connection's session: the Open API's rules above framing.

A :class:`Session` is transport-neutral: the TCP and WebSocket server
protocols (:mod:`.protocol`) hand it complete frames and give it a
``connection`` with ``writeFrame``, ``abort``, ``close`` and
``writeOversizedHeader``. It enforces application authentication, per
connection rate limits, heartbeats and the idle timeout, answers every
request with the caller's ``clientMsgId`` and dispatches payloads to the
handlers of this module (authentication, accounts, reference data),
:mod:`.marketdata` and :mod:`.trading`.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any, Callable, Protocol as TypingProtocol

from google.protobuf.message import DecodeError, Message
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from ..messages.OpenApiCommonMessages_pb2 import ProtoErrorRes, ProtoHeartbeatEvent, ProtoMessage
from ..messages.OpenApiMessages_pb2 import (
    ProtoOAAccountAuthReq,
    ProtoOAAccountAuthRes,
    ProtoOAAccountDisconnectEvent,
    ProtoOAAccountLogoutReq,
    ProtoOAAccountLogoutRes,
    ProtoOAApplicationAuthReq,
    ProtoOAApplicationAuthRes,
    ProtoOAAssetClassListReq,
    ProtoOAAssetClassListRes,
    ProtoOAAssetListReq,
    ProtoOAAssetListRes,
    ProtoOAErrorRes,
    ProtoOAGetAccountListByAccessTokenReq,
    ProtoOAGetAccountListByAccessTokenRes,
    ProtoOAGetCtidProfileByTokenReq,
    ProtoOAGetCtidProfileByTokenRes,
    ProtoOAOrderErrorEvent,
    ProtoOARefreshTokenReq,
    ProtoOARefreshTokenRes,
    ProtoOASymbolByIdReq,
    ProtoOASymbolByIdRes,
    ProtoOASymbolCategoryListReq,
    ProtoOASymbolCategoryListRes,
    ProtoOASymbolsForConversionReq,
    ProtoOASymbolsForConversionRes,
    ProtoOASymbolsListReq,
    ProtoOASymbolsListRes,
    ProtoOATraderReq,
    ProtoOATraderRes,
    ProtoOAVersionReq,
    ProtoOAVersionRes,
)
from ..messages.OpenApiModelMessages_pb2 import (
    ProtoOAAsset,
    ProtoOAAssetClass,
    ProtoOACtidProfile,
    ProtoOAInterval,
    ProtoOALightSymbol,
    ProtoOASymbol,
    ProtoOASymbolCategory,
)
from ..protobuf import Protobuf
from ..ratelimit import HISTORICAL_PAYLOAD_TYPES

if TYPE_CHECKING:
    from .accounts import Account
    from .server import Simulator

__all__ = ["Session", "ServerConnection", "HANDLERS", "handles", "SERVER_VERSION"]

#: What ``ProtoOAVersionRes.version`` says.
SERVER_VERSION = "91-simulator"

_HEARTBEAT_FRAME = ProtoMessage(payloadType=51, payload=ProtoHeartbeatEvent().SerializeToString()).SerializeToString()

Handler = Callable[["Session", Any, "str | None"], None]

#: Payload type of a request to its handler (filled by :func:`handles`).
HANDLERS: dict[int, tuple[type[Message], Handler]] = {}


def handles(requestClass: type[Message]) -> Callable[[Handler], Handler]:
    """Register the decorated function as the handler of *requestClass*."""

    def register(function: Handler) -> Handler:
        HANDLERS[int(requestClass().payloadType)] = (requestClass, function)  # type: ignore[attr-defined]
        return function

    return register


class ServerConnection(TypingProtocol):
    """What a session needs from its transport protocol."""

    def writeFrame(self, data: bytes) -> None: ...

    def writeOversizedHeader(self) -> None: ...

    def abort(self) -> None: ...

    def close(self) -> None: ...


class Session:
    """The state of one connection (see the module docstring).

    :ivar appAuthenticated: whether ``ProtoOAApplicationAuthReq`` succeeded.
    :ivar accounts: account id to the access token that authorized it.
    :ivar spots: account id to the symbol ids it receives spots for.
    :ivar trendbars: ``(accountId, symbolId, period)`` live bar subscriptions.
    :ivar depth: account id to the symbol ids it receives depth for.
    """

    _log = Logger()

    def __init__(self, simulator: Simulator, connection: ServerConnection, transport: str = "tcp") -> None:
        self.simulator = simulator
        self.connection = connection
        self.transport = transport
        self.appAuthenticated = False
        self.clientId: str | None = None
        self.accounts: dict[int, str] = {}
        self.spots: dict[int, set[int]] = {}
        self.trendbars: set[tuple[int, int, int]] = set()
        self.depth: dict[int, set[int]] = {}
        self.closed = False
        #: Frames received and written (heartbeats included).
        self.received = 0
        self.written = 0
        self._clock = simulator.clock
        self._general: deque[float] = deque()
        self._historical: deque[float] = deque()
        self._heartbeat: LoopingCall | None = None
        self._idle: IDelayedCall | None = None
        self._delayed: set[IDelayedCall] = set()
        self._requestType: int | None = None

    def __repr__(self) -> str:
        return (
            f"<Session {self.transport} app={'yes' if self.appAuthenticated else 'no'} "
            f"accounts={sorted(self.accounts)}>"
        )

    # --- life -----------------------------------------------------------------------

    def start(self) -> None:
        """The connection is ready: start heartbeats and the idle timer."""
        sim = self.simulator
        if sim.heartbeatInterval:
            self._heartbeat = LoopingCall(self._sendHeartbeat)
            self._heartbeat.clock = self._clock
            self._heartbeat.start(sim.heartbeatInterval, now=False)
        if sim.idleTimeout:
            self._idle = self._clock.callLater(sim.idleTimeout, self._idleTimedOut)

    def stop(self) -> None:
        """The connection is gone: stop every timer and forget the session."""
        if self.closed:
            return
        self.closed = True
        if self._heartbeat is not None and self._heartbeat.running:
            self._heartbeat.stop()
        self._heartbeat = None
        if self._idle is not None and self._idle.active():
            self._idle.cancel()
        self._idle = None
        for call in self._delayed:
            if call.active():
                call.cancel()
        self._delayed.clear()
        self.simulator._sessionClosed(self)

    def _sendHeartbeat(self) -> None:
        self._write(_HEARTBEAT_FRAME)

    def _idleTimedOut(self) -> None:
        self._idle = None
        self._log.info(
            "Closing {session}: nothing received for {timeout} s", session=self, timeout=self.simulator.idleTimeout
        )
        self.connection.close()

    # --- receiving ----------------------------------------------------------------------

    def frameReceived(self, data: bytes) -> None:
        """One complete frame (a serialized ``ProtoMessage``) arrived."""
        if self.closed:
            return
        self.received += 1
        if self._idle is not None and self._idle.active():
            self._idle.reset(self.simulator.idleTimeout)
        if self.simulator.faults.countReceived():
            self._log.info("Fault injection: dropping {session}", session=self)
            self.connection.abort()
            return
        try:
            message = ProtoMessage.FromString(data)
        except DecodeError:
            self.commonError("INVALID_REQUEST", "frame is not a ProtoMessage", None)
            self.connection.close()
            return
        payloadType = message.payloadType
        if payloadType == 51:
            return
        clientMsgId = message.clientMsgId if message.HasField("clientMsgId") else None
        self._requestType = payloadType
        try:
            self._dispatch(payloadType, message.payload, clientMsgId)
        finally:
            self._requestType = None

    def _dispatch(self, payloadType: int, body: bytes, clientMsgId: str | None) -> None:
        if self._rateLimited(payloadType):
            self.oaError(
                "REQUEST_FREQUENCY_EXCEEDED",
                f"request frequency exceeded for {Protobuf.name(payloadType)}",
                clientMsgId,
            )
            return
        entry = HANDLERS.get(payloadType)
        if entry is None:
            self.commonError("UNSUPPORTED_MESSAGE", f"{Protobuf.name(payloadType)} is not supported", clientMsgId)
            return
        requestClass, handler = entry
        try:
            payload = requestClass.FromString(body)
        except DecodeError:
            self.commonError("INVALID_REQUEST", f"payload does not decode as {requestClass.DESCRIPTOR.name}", clientMsgId)
            return
        if not payload.IsInitialized():
            missing = ", ".join(payload.FindInitializationErrors())  # type: ignore[attr-defined]
            self.commonError("INVALID_REQUEST", f"missing required field(s): {missing}", clientMsgId)
            return
        if not self.appAuthenticated and payloadType != 2100:
            self.oaError("CH_CLIENT_NOT_AUTHENTICATED", "Client is not authorized", clientMsgId)
            return
        handler(self, payload, clientMsgId)

    def _rateLimited(self, payloadType: int) -> bool:
        now = self._clock.seconds()
        windows = [(self._general, self.simulator.requestsPerSecond)]
        if payloadType in HISTORICAL_PAYLOAD_TYPES:
            windows.append((self._historical, self.simulator.historicalRequestsPerSecond))
        for times, limit in windows:
            if not limit:
                continue
            while times and times[0] <= now - 1.0:
                times.popleft()
            if len(times) >= limit:
                return True
        for times, limit in windows:
            if limit:
                times.append(now)
        return False

    # --- sending ----------------------------------------------------------------------------

    def send(self, payload: Message, clientMsgId: str | None = None) -> None:
        """Write *payload*; with a *clientMsgId* it is an answer, subject to the
        response faults (delay, swallow)."""
        if self.closed:
            return
        payloadType = payload.payloadType  # type: ignore[attr-defined]
        envelope = ProtoMessage(payloadType=payloadType, payload=payload.SerializeToString())
        if clientMsgId is not None:
            envelope.clientMsgId = clientMsgId
            faults = self.simulator.faults
            if faults.shouldSwallow(self._requestType, payloadType):
                self._log.debug("Fault injection: swallowed {name}", name=Protobuf.name(payloadType))
                return
            if faults.responseDelay > 0:
                data = envelope.SerializeToString()
                call = self._clock.callLater(faults.responseDelay, self._writeDelayed, data)
                self._delayed.add(call)
                return
        self._write(envelope.SerializeToString())

    def _writeDelayed(self, data: bytes) -> None:
        self._delayed = {c for c in self._delayed if c.active()}
        self._write(data)

    def _write(self, data: bytes) -> None:
        if not self.closed:
            self.written += 1
            self.connection.writeFrame(data)

    def commonError(self, errorCode: str, description: str, clientMsgId: str | None) -> None:
        """Answer with a ``ProtoErrorRes`` (common error codes)."""
        self.send(ProtoErrorRes(errorCode=errorCode, description=description), clientMsgId)

    def oaError(
        self, errorCode: str, description: str, clientMsgId: str | None, ctidTraderAccountId: int | None = None
    ) -> None:
        """Answer with a ``ProtoOAErrorRes`` (Open API error codes)."""
        error = ProtoOAErrorRes(errorCode=errorCode, description=description)
        if ctidTraderAccountId is not None:
            error.ctidTraderAccountId = ctidTraderAccountId
        self.send(error, clientMsgId)

    def orderError(
        self,
        errorCode: str,
        description: str,
        clientMsgId: str | None,
        ctidTraderAccountId: int,
        orderId: int | None = None,
        positionId: int | None = None,
    ) -> None:
        """Answer with a ``ProtoOAOrderErrorEvent`` (refused trading request)."""
        error = ProtoOAOrderErrorEvent(
            errorCode=errorCode, description=description, ctidTraderAccountId=ctidTraderAccountId
        )
        if orderId:
            error.orderId = orderId
        if positionId:
            error.positionId = positionId
        self.send(error, clientMsgId)

    def account(self, payload: Any, clientMsgId: str | None) -> Account | None:
        """The account a request names, if it is authorized on this connection;
        otherwise answer ``ACCOUNT_NOT_AUTHORIZED`` and return ``None``."""
        accountId = payload.ctidTraderAccountId
        if accountId not in self.accounts:
            self.oaError("ACCOUNT_NOT_AUTHORIZED", "Trading account is not authorized", clientMsgId, accountId)
            return None
        return self.simulator.accounts[accountId]

    def forgetAccount(self, accountId: int) -> None:
        """Drop an account's authorization and subscriptions on this connection."""
        self.accounts.pop(accountId, None)
        self.spots.pop(accountId, None)
        self.depth.pop(accountId, None)
        self.trendbars = {t for t in self.trendbars if t[0] != accountId}


# --- application and account authentication -----------------------------------------


@handles(ProtoOAApplicationAuthReq)
def applicationAuth(session: Session, req: ProtoOAApplicationAuthReq, clientMsgId: str | None) -> None:
    if session.appAuthenticated:
        session.oaError("CH_CLIENT_ALREADY_AUTHENTICATED", "Open API application is already authorized", clientMsgId)
        return
    if session.simulator.applications.get(req.clientId) != req.clientSecret:
        session.oaError("CH_CLIENT_AUTH_FAILURE", "clientId or clientSecret is incorrect", clientMsgId)
        session.connection.close()  # the real proxy hangs up after this error
        return
    session.appAuthenticated = True
    session.clientId = req.clientId
    session.send(ProtoOAApplicationAuthRes(), clientMsgId)


@handles(ProtoOAVersionReq)
def version(session: Session, req: ProtoOAVersionReq, clientMsgId: str | None) -> None:
    session.send(ProtoOAVersionRes(version=SERVER_VERSION), clientMsgId)


@handles(ProtoOAAccountAuthReq)
def accountAuth(session: Session, req: ProtoOAAccountAuthReq, clientMsgId: str | None) -> None:
    sim = session.simulator
    accountId = req.ctidTraderAccountId
    token = sim.tokens.get(req.accessToken)
    if token is None or not token.valid:
        session.oaError("CH_ACCESS_TOKEN_INVALID", "Invalid access token", clientMsgId, accountId)
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


@handles(ProtoOAAccountLogoutReq)
def accountLogout(session: Session, req: ProtoOAAccountLogoutReq, clientMsgId: str | None) -> None:
    if session.account(req, clientMsgId) is None:
        return
    accountId = req.ctidTraderAccountId
    session.forgetAccount(accountId)
    session.send(ProtoOAAccountLogoutRes(ctidTraderAccountId=accountId), clientMsgId)
    session.send(ProtoOAAccountDisconnectEvent(ctidTraderAccountId=accountId))


def _validToken(session: Session, accessToken: str, clientMsgId: str | None) -> Any:
    """The valid token *accessToken* names, or ``None`` once
    ``CH_ACCESS_TOKEN_INVALID`` has been answered."""
    token = session.simulator.tokens.get(accessToken)
    if token is None or not token.valid:
        session.oaError("CH_ACCESS_TOKEN_INVALID", "Invalid access token", clientMsgId)
        return None
    return token


@handles(ProtoOAGetAccountListByAccessTokenReq)
def accountList(session: Session, req: ProtoOAGetAccountListByAccessTokenReq, clientMsgId: str | None) -> None:
    sim = session.simulator
    token = _validToken(session, req.accessToken, clientMsgId)
    if token is None:
        return
    session.send(
        ProtoOAGetAccountListByAccessTokenRes(
            accessToken=req.accessToken,
            permissionScope=1,  # SCOPE_TRADE
            ctidTraderAccount=[sim.accounts[i].toCtidTraderAccount() for i in token.accountIds if i in sim.accounts],
        ),
        clientMsgId,
    )


@handles(ProtoOAGetCtidProfileByTokenReq)
def ctidProfile(session: Session, req: ProtoOAGetCtidProfileByTokenReq, clientMsgId: str | None) -> None:
    token = _validToken(session, req.accessToken, clientMsgId)
    if token is None:
        return
    session.send(ProtoOAGetCtidProfileByTokenRes(profile=ProtoOACtidProfile(userId=token.userId)), clientMsgId)


@handles(ProtoOARefreshTokenReq)
def refreshToken(session: Session, req: ProtoOARefreshTokenReq, clientMsgId: str | None) -> None:
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


# --- reference data ----------------------------------------------------------------------


@handles(ProtoOAAssetListReq)
def assetList(session: Session, req: ProtoOAAssetListReq, clientMsgId: str | None) -> None:
    if session.account(req, clientMsgId) is None:
        return
    assets = [
        ProtoOAAsset(assetId=a, name=n, displayName=d, digits=g) for a, n, d, g in session.simulator.assets
    ]
    session.send(ProtoOAAssetListRes(ctidTraderAccountId=req.ctidTraderAccountId, asset=assets), clientMsgId)


@handles(ProtoOAAssetClassListReq)
def assetClassList(session: Session, req: ProtoOAAssetClassListReq, clientMsgId: str | None) -> None:
    if session.account(req, clientMsgId) is None:
        return
    classes = [ProtoOAAssetClass(id=i, name=n, sortingNumber=s) for i, n, s in session.simulator.assetClasses]
    session.send(ProtoOAAssetClassListRes(ctidTraderAccountId=req.ctidTraderAccountId, assetClass=classes), clientMsgId)


@handles(ProtoOASymbolCategoryListReq)
def symbolCategoryList(session: Session, req: ProtoOASymbolCategoryListReq, clientMsgId: str | None) -> None:
    if session.account(req, clientMsgId) is None:
        return
    categories = [
        ProtoOASymbolCategory(id=i, assetClassId=c, name=n, sortingNumber=s)
        for i, c, n, s in session.simulator.symbolCategories
    ]
    session.send(
        ProtoOASymbolCategoryListRes(ctidTraderAccountId=req.ctidTraderAccountId, symbolCategory=categories),
        clientMsgId,
    )


def lightSymbol(symbolId: int, spec: dict[str, Any]) -> ProtoOALightSymbol:
    """The ``ProtoOALightSymbol`` of a symbol definition."""
    return ProtoOALightSymbol(symbolId=symbolId, **spec["light"])


def fullSymbol(symbolId: int, spec: dict[str, Any]) -> ProtoOASymbol:
    """The ``ProtoOASymbol`` of a symbol definition."""
    schedule = [ProtoOAInterval(startSecond=a, endSecond=b) for a, b in spec["schedule"]]
    return ProtoOASymbol(symbolId=symbolId, schedule=schedule, **spec["spec"])


@handles(ProtoOASymbolsListReq)
def symbolsList(session: Session, req: ProtoOASymbolsListReq, clientMsgId: str | None) -> None:
    if session.account(req, clientMsgId) is None:
        return
    symbols = [lightSymbol(i, s.spec) for i, s in session.simulator.market.symbols.items()]
    session.send(ProtoOASymbolsListRes(ctidTraderAccountId=req.ctidTraderAccountId, symbol=symbols), clientMsgId)


@handles(ProtoOASymbolByIdReq)
def symbolById(session: Session, req: ProtoOASymbolByIdReq, clientMsgId: str | None) -> None:
    if session.account(req, clientMsgId) is None:
        return
    symbols = session.simulator.market.symbols
    unknown = [i for i in req.symbolId if i not in symbols]
    if unknown:
        session.oaError("SYMBOL_NOT_FOUND", f"Symbol(s) not found: {unknown}", clientMsgId, req.ctidTraderAccountId)
        return
    session.send(
        ProtoOASymbolByIdRes(
            ctidTraderAccountId=req.ctidTraderAccountId, symbol=[fullSymbol(i, symbols[i].spec) for i in req.symbolId]
        ),
        clientMsgId,
    )


@handles(ProtoOASymbolsForConversionReq)
def symbolsForConversion(session: Session, req: ProtoOASymbolsForConversionReq, clientMsgId: str | None) -> None:
    if session.account(req, clientMsgId) is None:
        return
    symbols = session.simulator.market.symbols
    edges = {}
    for symbolId, state in symbols.items():
        light = state.spec["light"]
        edges[(light["baseAssetId"], light["quoteAssetId"])] = symbolId
        edges[(light["quoteAssetId"], light["baseAssetId"])] = symbolId
    first, last = req.firstAssetId, req.lastAssetId
    chain: list[int] | None = None
    if (first, last) in edges:
        chain = [edges[(first, last)]]
    else:
        for (a, middle), symbolId in edges.items():
            if a == first and (middle, last) in edges:
                chain = [symbolId, edges[(middle, last)]]
                break
    if chain is None:
        session.oaError("SYMBOL_NOT_FOUND", "No conversion chain between these assets", clientMsgId, req.ctidTraderAccountId)
        return
    session.send(
        ProtoOASymbolsForConversionRes(
            ctidTraderAccountId=req.ctidTraderAccountId, symbol=[lightSymbol(i, symbols[i].spec) for i in chain]
        ),
        clientMsgId,
    )


@handles(ProtoOATraderReq)
def trader(session: Session, req: ProtoOATraderReq, clientMsgId: str | None) -> None:
    account = session.account(req, clientMsgId)
    if account is None:
        return
    session.send(ProtoOATraderRes(ctidTraderAccountId=account.ctidTraderAccountId, trader=account.toTrader()), clientMsgId)
