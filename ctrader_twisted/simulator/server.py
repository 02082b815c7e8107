# -*- test-case-name: tests.test_simulator -*-
"""The :class:`Simulator`: configuration, sessions and server events.

A simulator owns what all its connections share: the applications, accounts,
tokens and symbols it is configured with, the market, the fault switches
(:mod:`~ctrader_twisted.simulator.faults`), the market ticker (``ticker``) and the table of
request handlers (:mod:`~ctrader_twisted.simulator.handlers`). It opens a
:class:`~ctrader_twisted.simulator.session.Session` per connection, pushes server events
(:meth:`Simulator.sendEvent`, :meth:`Simulator.accountEvent`, token
invalidation) to the sessions concerned, and listens on ports through
:mod:`~ctrader_twisted.simulator.listening`.
"""

from __future__ import annotations

import math
import random
import time
from typing import Any, Literal

from google.protobuf.message import Message
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.interfaces import IAddress, IReactorTime
from twisted.internet.ssl import PrivateCertificate

from ..framing import DEFAULT_MAX_MESSAGE_SIZE
from ..messages.OpenApiMessages_pb2 import (
    ProtoOAAccountDisconnectEvent,
    ProtoOAAccountsTokenInvalidatedEvent,
    ProtoOAClientDisconnectEvent,
)
from . import burst as _burst
from .accounts import Account, Token
from .certs import CertificateSet
from .data import ASSET_CLASSES, ASSETS, SYMBOL_CATEGORIES, SYMBOLS
from .faults import Faults
from .handlers import Registry, defaultRegistry
from .listening import Listening, listen
from .market import Market
from .oauth import OAuthService
from .protocol import SimulatorTcpFactory, SimulatorTcpProtocol, SimulatorWebSocketFactory
from .session import ServerConnection, Session
from .ticker import Ticker

__all__ = ["Simulator"]


class Simulator:
    """A local cTrader Open API server (see :mod:`ctrader_twisted.simulator`).

    :param seed: seeds prices, tokens and depth; the same seed and the same
        requests at the same clock times give the same answers.
    :param clock: time source for every timer (a reactor, or a
        ``task.Clock`` in tests); the global reactor when omitted.
    :param spotInterval: seconds between market ticks (spot events).
    :param idleTimeout: seconds without any received frame before a
        connection is closed (``None`` or 0: never).
    :param requestsPerSecond: per-connection limit on requests.
    :param historicalRequestsPerSecond: per-connection limit on history requests.
    :param maxMessageSize: largest frame or WebSocket message accepted.
    :param heartbeatInterval: seconds between the server's heartbeats
        (``None`` or 0: none).
    :param clientId: the application's client id.
    :param clientSecret: the application's client secret.
    :param maxBufferedBytes: how many bytes of answers and events may wait
        for a client that does not read, beyond its transport's high-water
        mark, before the connection is dropped (spot and depth events are
        coalesced instead, see :mod:`~ctrader_twisted.simulator.session`).
    :raises ValueError: a time is negative, not a number or infinite (or
        *spotInterval* is not positive), or a size or limit is not positive.
    :param marketHours: follow the symbols' trading schedules (UTC): a
        closed market refuses orders and closes with ``MARKET_CLOSED``, and
        its prices and pending orders stay still. Off by default, so that
        everything works on any day of the week.
    :param stopOutLevel: the margin level (percent) below which positions
        are stopped out.
    """

    def __init__(
        self,
        seed: int = 0,
        clock: IReactorTime | None = None,
        spotInterval: float = 1.0,
        idleTimeout: float | None = 30.0,
        requestsPerSecond: int | None = 50,
        historicalRequestsPerSecond: int | None = 5,
        maxMessageSize: int = DEFAULT_MAX_MESSAGE_SIZE,
        *,
        heartbeatInterval: float | None = 10.0,
        clientId: str = "sim-client-id",
        clientSecret: str = "sim-client-secret",
        maxBufferedBytes: int = 4 * 1024 * 1024,
        marketHours: bool = False,
        stopOutLevel: float = 50.0,
    ) -> None:
        if clock is None:
            from twisted.internet import reactor

            clock = reactor  # type: ignore[assignment]
        if not (math.isfinite(spotInterval) and spotInterval > 0):
            raise ValueError(f"spotInterval must be a positive number of seconds, got {spotInterval}")
        for name, value in (("idleTimeout", idleTimeout), ("heartbeatInterval", heartbeatInterval)):
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a number of seconds >= 0 (0 or None: never), got {value}")
        for name, limit in (
            ("requestsPerSecond", requestsPerSecond),
            ("historicalRequestsPerSecond", historicalRequestsPerSecond),
        ):
            if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
                raise ValueError(f"{name} must be a whole number >= 0 (0 or None: no limit), got {limit!r}")
        if maxMessageSize < 1:
            raise ValueError(f"maxMessageSize must be positive, got {maxMessageSize}")
        if maxBufferedBytes < 1:
            raise ValueError(f"maxBufferedBytes must be positive, got {maxBufferedBytes}")
        self.clock: IReactorTime = clock  # type: ignore[assignment]
        self.seed = seed
        self.spotInterval = spotInterval
        self.idleTimeout = idleTimeout
        self.requestsPerSecond = requestsPerSecond
        self.historicalRequestsPerSecond = historicalRequestsPerSecond
        self.maxMessageSize = maxMessageSize
        self.heartbeatInterval = heartbeatInterval
        self.maxBufferedBytes = maxBufferedBytes
        self.marketHours = marketHours
        if not 0 <= stopOutLevel < 1e6:
            raise ValueError(f"stopOutLevel must be a percentage from 0, got {stopOutLevel}")
        self.stopOutLevel = stopOutLevel
        self.rng = random.Random(f"simulator:{seed}")
        self.market = Market(seed)
        for state in self.market.symbols.values():
            state.startAt(self.clock.seconds())
        self.assets = list(ASSETS)
        self.assetClasses = list(ASSET_CLASSES)
        self.symbolCategories = list(SYMBOL_CATEGORIES)
        #: Client id to client secret of the applications accepted.
        self.applications: dict[str, str] = {clientId: clientSecret}
        self.clientId = clientId
        self.clientSecret = clientSecret
        self.accounts: dict[int, Account] = {}
        #: Access token string to :class:`Token`, and refresh token to the same.
        self.tokens: dict[str, Token] = {}
        self.refreshTokens: dict[str, Token] = {}
        #: Live sessions, one per connection.
        self.sessions: list[Session] = []
        self.faults = Faults(self)
        #: The request handlers (:func:`.handlers.defaultRegistry`).
        self.handlers: Registry = defaultRegistry()
        #: The market clock: runs while any connection is open.
        self.ticker = Ticker(self)
        #: The consent page and token endpoint (served on ``listen(httpPort=...)``).
        self.oauth = OAuthService(self)
        self._listening: list[Listening] = []
        self._lost: dict[Session, Deferred[None]] = {}
        demo = self.addAccount(2000001, isLive=False, traderLogin=3000001)
        live = self.addAccount(2000002, isLive=True, traderLogin=3000002)
        self.accessToken, self.refreshToken = self.addToken([demo, live])

    def __repr__(self) -> str:
        return f"<Simulator seed={self.seed} connections={len(self.sessions)}>"

    # --- configuration -------------------------------------------------------------------

    @property
    def accountIds(self) -> list[int]:
        """Ids of every account, the default ones (demo, then live) first."""
        return list(self.accounts)

    @property
    def connections(self) -> list[Any]:
        """The live server-side protocol objects (each has a ``session``)."""
        return [s.connection for s in self.sessions]

    def nowMs(self) -> int:
        """The clock's time in milliseconds (the Open API's timestamps)."""
        return int(self.clock.seconds() * 1000)

    def marketOpen(self, symbolId: int) -> bool:
        """Whether *symbolId*'s market is open now: always, unless
        ``marketHours`` is on; then whether the clock (UTC) lies in one of
        its schedule's intervals (seconds from Sunday 00:00)."""
        if not self.marketHours:
            return True
        state = self.market.symbols.get(symbolId)
        if state is None:
            return False
        t = time.gmtime(self.clock.seconds())
        second = ((t.tm_wday + 1) % 7) * 86400 + t.tm_hour * 3600 + t.tm_min * 60 + t.tm_sec
        return any(start <= second < end for start, end in state.spec["schedule"])

    def setLiquidity(self, symbolId: int, levelVolume: int, levels: int = 5) -> None:
        """What market orders of *symbolId* can take when its depth is not
        subscribed: *levels* price levels of *levelVolume* (cents of a unit)
        a side; more is cancelled, as an immediate-or-cancel order's rest."""
        if levelVolume < 1 or not 1 <= levels <= 100:
            raise ValueError(f"levelVolume must be positive and levels from 1 to 100, got {levelVolume}, {levels}")
        state = self.market.symbols[symbolId]
        state.levelVolume, state.levels = int(levelVolume), int(levels)

    def addApplication(self, clientId: str, clientSecret: str) -> None:
        """Accept another application's credentials."""
        self.applications[clientId] = clientSecret

    def addAccount(
        self,
        ctidTraderAccountId: int | None = None,
        *,
        isLive: bool = False,
        balance: int = 1_000_000,
        leverageInCents: int = 10000,
        traderLogin: int | None = None,
        brokerName: str = "Simulator",
        grantDefaultToken: bool = True,
    ) -> int:
        """Add a trading account and return its ``ctidTraderAccountId``.

        :param ctidTraderAccountId: the id, or ``None`` for the next free one.
        :param balance: in cents of USD (the deposit currency).
        :param leverageInCents: 10000 is 1:100.
        :param grantDefaultToken: let the default access token
            (``accessToken``) authorize it too.
        """
        if ctidTraderAccountId is None:
            ctidTraderAccountId = max(self.accounts, default=2000000) + 1
        if ctidTraderAccountId in self.accounts:
            raise ValueError(f"account {ctidTraderAccountId} already exists")
        account = Account(
            ctidTraderAccountId=ctidTraderAccountId,
            isLive=isLive,
            traderLogin=traderLogin if traderLogin is not None else ctidTraderAccountId + 1000000,
            balance=balance,
            leverageInCents=leverageInCents,
            brokerName=brokerName,
            registrationTimestamp=self.nowMs(),
        )
        if balance:
            account.balanceVersion = 1
            account.cashFlow.append((self.nowMs(), balance, balance))
        self.accounts[ctidTraderAccountId] = account
        default = self.tokens.get(getattr(self, "accessToken", ""))
        if grantDefaultToken and default is not None:
            default.accountIds.append(ctidTraderAccountId)
        return ctidTraderAccountId

    def addToken(
        self,
        accountIds: list[int],
        accessToken: str | None = None,
        refreshToken: str | None = None,
        expiresIn: int = 2628000,
    ) -> tuple[str, str]:
        """Issue an access token (and its refresh token) granting *accountIds*.

        :returns: ``(accessToken, refreshToken)``; generated from the seed
            when not given.
        """
        unknown = [i for i in accountIds if i not in self.accounts]
        if unknown:
            raise ValueError(f"unknown account(s): {unknown}")
        accessToken = accessToken or f"sim-access-{self.rng.getrandbits(64):016x}"
        refreshToken = refreshToken or f"sim-refresh-{self.rng.getrandbits(64):016x}"
        token = Token(accessToken, refreshToken, accountIds, expiresIn)
        self.tokens[accessToken] = token
        self.refreshTokens[refreshToken] = token
        return accessToken, refreshToken

    def revokeToken(self, accessToken: str, reason: str = "Access token was revoked") -> None:
        """Invalidate a token: sessions using it get ``ProtoOAAccountsTokenInvalidatedEvent``."""
        token = self.tokens.get(accessToken)
        if token is not None:
            self.invalidateToken(token, reason)

    def addSymbol(
        self,
        symbolId: int,
        symbolName: str,
        *,
        price: int,
        spread: int,
        digits: int = 5,
        pipPosition: int = 4,
        baseAssetId: int = 5,
        quoteAssetId: int = 15,
        symbolCategoryId: int = 11,
        lotSize: int = 10000000,
        minVolume: int = 100000,
        maxVolume: int = 10000000000,
        stepVolume: int = 100000,
        description: str = "",
        **specFields: Any,
    ) -> int:
        """Add (or replace) a symbol; its spec copies EURUSD's for anything not given.

        :param price: starting bid, in 1/100000 of a unit.
        :param spread: in 1/100000 of a unit.
        :param specFields: any other ``ProtoOASymbol`` field.
        :returns: *symbolId*.
        """
        template = SYMBOLS[1]
        spec = dict(template["spec"])
        spec.update(
            digits=digits, pipPosition=pipPosition, lotSize=lotSize, minVolume=minVolume,
            maxVolume=maxVolume, stepVolume=stepVolume, **specFields,
        )
        state = self.market.addSymbol(
            symbolId,
            {
                "light": {
                    "symbolName": symbolName,
                    "enabled": True,
                    "baseAssetId": baseAssetId,
                    "quoteAssetId": quoteAssetId,
                    "symbolCategoryId": symbolCategoryId,
                    "description": description or symbolName,
                    "sortingNumber": float(len(self.market.symbols) + 1),
                },
                "spec": spec,
                "schedule": template["schedule"],
                "price": price,
                "spread": spread,
            },
        )
        state.startAt(self.clock.seconds())
        return symbolId

    # --- tokens and events ----------------------------------------------------------------

    def replaceToken(self, old: Token) -> Token:
        """Issue the token pair that replaces *old* (a refresh); *old*'s refresh
        token stops working at once."""
        old.valid = False
        self.refreshTokens.pop(old.refreshToken, None)
        accessToken, _ = self.addToken(old.accountIds, expiresIn=old.expiresIn)
        return self.tokens[accessToken]

    def invalidateToken(self, token: Token, reason: str) -> None:
        """End every account session authorized with *token*."""
        token.valid = False
        self.refreshTokens.pop(token.refreshToken, None)
        for session in list(self.sessions):
            ids = [a for a, t in session.accounts.items() if t == token.accessToken]
            if ids:
                for accountId in ids:
                    session.forgetAccount(accountId)
                session.send(ProtoOAAccountsTokenInvalidatedEvent(ctidTraderAccountIds=ids, reason=reason))

    def accountEvent(
        self, accountId: int, payload: Message, origin: Session | None = None, clientMsgId: str | None = None
    ) -> None:
        """Send *payload* to every session where *accountId* is authorized;
        *origin* gets it with *clientMsgId* (the answer to its request)."""
        for session in list(self.sessions):
            if accountId in session.accounts:
                session.send(payload, clientMsgId if session is origin else None)
        if origin is not None and accountId not in origin.accounts:
            origin.send(payload, clientMsgId)

    def sendEvent(self, payload: Message, ctidTraderAccountId: int | None = None) -> None:
        """Push an event to the connections concerned.

        * ``ProtoOAAccountsTokenInvalidatedEvent``: to sessions where one of its
          accounts is authorized; those accounts are logged out there.
        * ``ProtoOAAccountDisconnectEvent``: likewise for its one account.
        * ``ProtoOAClientDisconnectEvent``: to every connection, which is then closed.
        * anything else: to sessions where *ctidTraderAccountId* (or the
          payload's own ``ctidTraderAccountId``) is authorized, or to every
          connection when neither is given.
        """
        if isinstance(payload, ProtoOAAccountsTokenInvalidatedEvent):
            for session in list(self.sessions):
                ids = [a for a in payload.ctidTraderAccountIds if a in session.accounts]
                if ids:
                    for accountId in ids:
                        session.forgetAccount(accountId)
                    session.send(payload)
            return
        if isinstance(payload, ProtoOAAccountDisconnectEvent):
            for session in list(self.sessions):
                if payload.ctidTraderAccountId in session.accounts:
                    session.forgetAccount(payload.ctidTraderAccountId)
                    session.send(payload)
            return
        if isinstance(payload, ProtoOAClientDisconnectEvent):
            for session in list(self.sessions):
                session.send(payload)
                session.connection.close()
            return
        if ctidTraderAccountId is None and "ctidTraderAccountId" in payload.DESCRIPTOR.fields_by_name:
            if payload.HasField("ctidTraderAccountId"):
                ctidTraderAccountId = payload.ctidTraderAccountId  # type: ignore[attr-defined]
        for session in list(self.sessions):
            if ctidTraderAccountId is None or ctidTraderAccountId in session.accounts:
                session.send(payload)

    # --- connections --------------------------------------------------------------------------

    def buildProtocol(self, addr: IAddress | None) -> SimulatorTcpProtocol:
        """A TCP server protocol for one connection (``IProtocolFactory`` style)."""
        return self.serverFactory("tcp").buildProtocol(addr)

    def serverFactory(self, transport: Literal["tcp", "ws"] = "tcp") -> Any:
        """A server factory for *transport* (``"tcp"`` framing or ``"ws"`` messages),
        for ``listenSSL``, ``listenTCP`` or ``iosim.connectedServerAndClient``."""
        if transport == "tcp":
            return SimulatorTcpFactory(self)
        if transport == "ws":
            return SimulatorWebSocketFactory(self)
        raise ValueError(f"transport must be 'tcp' or 'ws', not {transport!r}")

    def openSession(self, connection: ServerConnection, transport: str) -> Session:
        """A connection is ready: start its session (and the market, if it was idle)."""
        session = Session(self, connection, transport)
        self.sessions.append(session)
        session.start()
        self.ticker.start()
        return session

    def sessionClosed(self, session: Session) -> None:
        """*session*'s connection is gone: forget it, end its burst, and stop
        the market when nobody is left."""
        if session in self.sessions:
            self.sessions.remove(session)
        if session.burst is not None:
            session.burst.stopProducing()
        waiter = self._lost.pop(session, None)
        if waiter is not None:
            waiter.callback(None)
        if not self.sessions:
            self.ticker.stop()

    # --- benchmarks -----------------------------------------------------------------------------

    def burst(self, count: int, symbolId: int = 1) -> Deferred[int]:
        """Stream *count* spot events of *symbolId* to every connection subscribed
        to its spots, as fast as each transport takes them.

        The events are built and serialized once (a pool of 16 prices, reused);
        a pull producer writes them in chunks when the transport asks for
        more, so memory stays bounded whatever *count* is.

        :returns: a Deferred firing with the number of events written in all
            (fewer than *count* per connection if a connection is lost).
        """
        return _burst.burst(self, count, symbolId)

    def writeToAll(self, frameBytes: bytes, chunkSize: int | None = None) -> int:
        """Write one already-serialized ``ProtoMessage`` to every live connection.

        Meant for benchmarks and tests that need a message no handler
        produces, such as a response of several megabytes. For a TCP session
        the 4-byte length prefix is added and the frame is handed to the
        transport in *chunkSize*-byte writes (one write when ``None``); a
        WebSocket session gets it as a single binary message. Everything is
        written before this returns. Twisted's TLS transport may still
        coalesce writes made in one reactor turn into larger TLS records.

        :param frameBytes: a serialized ``ProtoMessage`` (no length prefix).
        :param chunkSize: bytes per transport write for TCP sessions.
        :returns: the bytes handed to the transports in all (length prefixes
            included; for WebSocket sessions, the message payloads).
        """
        return _burst.writeToAll(self, frameBytes, chunkSize)

    # --- listening ---------------------------------------------------------------------------------

    def listen(
        self,
        reactor: Any,
        tlsPort: int | None = 0,
        wsPort: int | None = 0,
        plainPort: int | None = None,
        interface: str = "127.0.0.1",
        certificate: CertificateSet | PrivateCertificate | tuple[bytes, bytes] | None = None,
        httpPort: int | None = None,
    ) -> Listening:
        """Start listening (synchronously) and return where.

        :param tlsPort: TLS TCP port (0: any free port; ``None``: none).
        :param wsPort: ``wss://`` port (0: any free port; ``None``: none).
        :param plainPort: plain TCP port for benchmarks (``None``: none, the default).
        :param certificate: ``None`` mints a CA and a ``localhost`` certificate;
            or a :class:`~.certs.CertificateSet`, a ``PrivateCertificate``
            (self-signed: it is its own CA), or ``(certificatePEM, keyPEM)``.
        :param httpPort: HTTPS port of the OAuth pages (:attr:`oauth`; 0: any
            free port; ``None``: none, the default).
        """
        listening = listen(
            reactor, self.serverFactory, tlsPort, wsPort, plainPort, interface, certificate,
            httpPort=httpPort, httpFactory=lambda: self.oauth.site(reactor),
        )
        self._listening.append(listening)
        return listening

    def stop(self) -> Deferred[None]:
        """Stop listening and drop every connection.

        :returns: a Deferred that fires once the ports are closed and every
            connection is gone.
        """
        waits: list[Deferred[Any]] = []
        for listening in self._listening:
            for port in listening.ports:
                d = port.stopListening()
                if d is not None:
                    waits.append(d)
        self._listening = []
        for session in list(self.sessions):
            waiter: Deferred[None] = Deferred()
            self._lost[session] = waiter
            waits.append(waiter)
            session.connection.abort()
        if not self.sessions:
            self.ticker.stop()
        return DeferredList(waits, consumeErrors=True).addCallback(lambda _: None)
