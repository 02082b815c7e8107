# -*- test-case-name: tests.test_simulator -*-
"""The :class:`Simulator`: configuration, listeners, the market clock, events.

It owns the accounts, tokens and market (shared by all connections), the
sessions (one per connection), the fault switches and the market ticker.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Literal

from google.protobuf.message import Message
from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.interfaces import IAddress, IListeningPort, IPullProducer, IReactorTime
from twisted.internet.ssl import Certificate, PrivateCertificate
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from zope.interface import implementer  # type: ignore[import-untyped]

from ..messages.OpenApiCommonMessages_pb2 import ProtoMessage
from ..messages.OpenApiMessages_pb2 import (
    ProtoOAAccountDisconnectEvent,
    ProtoOAAccountsTokenInvalidatedEvent,
    ProtoOAClientDisconnectEvent,
)
from ..tcp import DEFAULT_MAX_MESSAGE_SIZE, frame
from . import marketdata, trading  # noqa: F401  (registers their handlers)
from .accounts import Account, Token
from .certs import CertificateSet, mintCertificates
from .data import ASSET_CLASSES, ASSETS, SYMBOL_CATEGORIES
from .faults import Faults
from .market import Market, SymbolState
from .protocol import SimulatorTcpFactory, SimulatorTcpProtocol, SimulatorWebSocketFactory
from .session import Session

__all__ = ["Simulator", "Listening"]


@dataclass(frozen=True)
class Listening:
    """Where a simulator listens and the CA certificate clients must trust.

    :ivar tlsPort: TLS TCP port, or ``None``.
    :ivar wsPort: ``wss://`` port, or ``None``.
    :ivar plainPort: plain TCP port (benchmarks only), or ``None``.
    :ivar caCertificate: pass it as ``Client(..., trustRoot=...)``.
    :ivar caPEM: the same certificate in PEM form.
    :ivar host: the name the server certificate is issued for.
    """

    tlsPort: int | None
    wsPort: int | None
    plainPort: int | None
    caCertificate: Certificate
    caPEM: bytes
    host: str = "localhost"
    ports: list[IListeningPort] = field(default_factory=list, repr=False, compare=False)


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
    :param heartbeatInterval: seconds between the server's heartbeats.
    :param clientId: the application's client id.
    :param clientSecret: the application's client secret.
    """

    _log = Logger()

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
    ) -> None:
        if clock is None:
            from twisted.internet import reactor

            clock = reactor  # type: ignore[assignment]
        if spotInterval <= 0:
            raise ValueError(f"spotInterval must be positive, got {spotInterval}")
        if maxMessageSize < 1:
            raise ValueError(f"maxMessageSize must be positive, got {maxMessageSize}")
        self.clock: IReactorTime = clock  # type: ignore[assignment]
        self.seed = seed
        self.spotInterval = spotInterval
        self.idleTimeout = idleTimeout
        self.requestsPerSecond = requestsPerSecond
        self.historicalRequestsPerSecond = historicalRequestsPerSecond
        self.maxMessageSize = maxMessageSize
        self.heartbeatInterval = heartbeatInterval
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
        self._ticker: LoopingCall | None = None
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
        :param grantDefaultToken: let :attr:`accessToken` authorize it too.
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
        from .data import SYMBOLS

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

    def _sessionOpened(self, connection: Any, transport: str) -> Session:
        session = Session(self, connection, transport)
        self.sessions.append(session)
        session.start()
        if self._ticker is None:
            self._ticker = LoopingCall(self._tick)
            self._ticker.clock = self.clock
            self._ticker.start(self.spotInterval, now=False)
        return session

    def _sessionClosed(self, session: Session) -> None:
        if session in self.sessions:
            self.sessions.remove(session)
        burst = getattr(session, "burst", None)
        if burst is not None:
            burst.stopProducing()
        waiter = self._lost.pop(session, None)
        if waiter is not None:
            waiter.callback(None)
        if not self.sessions and self._ticker is not None:
            if self._ticker.running:
                self._ticker.stop()
            self._ticker = None

    # --- the market -------------------------------------------------------------------------------

    def _tick(self) -> None:
        """One market step: walk prices, roll bars, refresh books, publish, trade."""
        market = self.market
        minute = int(self.clock.seconds()) // 60
        periods: dict[int, set[int]] = {}
        depthSymbols: set[int] = set()
        for session in self.sessions:
            for _, symbolId, period in session.trendbars:
                periods.setdefault(symbolId, set()).add(period)
            for symbolIds in session.depth.values():
                depthSymbols.update(symbolIds)
        changed: dict[int, tuple[bool, bool]] = {}
        newBooks: dict[int, list[int]] = {}
        for symbolId, state in market.symbols.items():
            bid, ask = state.bid, state.ask
            state.walk(market.rng)
            state.updateBars(minute, periods.get(symbolId, set()))
            changed[symbolId] = (state.bid != bid, state.ask != ask)
            if symbolId in depthSymbols:
                newBooks[symbolId] = market.refreshBook(state)
            elif state.book:
                state.book = []
        marketdata.publish(self, changed, newBooks)
        for account in self.accounts.values():
            if account.orders or account.positions:
                trading.processTick(self, account)

    def burst(self, count: int, symbolId: int = 1) -> Deferred[int]:
        """Stream *count* spot events of *symbolId* to every connection subscribed
        to its spots, as fast as each transport takes them.

        The events are built and serialized once (a pool of 16 prices, reused);
        a pull producer writes them in chunks when the transport asks for
        more, so memory stays bounded whatever *count* is.

        :returns: a Deferred firing with the number of events written in all
            (fewer than *count* per connection if a connection is lost).
        """
        if count < 0:
            raise ValueError(f"count must not be negative, got {count}")
        state = self.market.symbols.get(symbolId)
        if state is None:
            raise ValueError(f"unknown symbol {symbolId}")
        waits = []
        for session in list(self.sessions):
            for accountId, symbolIds in session.spots.items():
                if symbolId in symbolIds:
                    waits.append(_BurstProducer(session, _spotPool(accountId, state, self.nowMs()), count).start())
                    break
        if not waits:
            return succeed(0)
        return DeferredList(waits, consumeErrors=True).addCallback(
            lambda results: sum(r for ok, r in results if ok)
        )

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
        if chunkSize is not None and chunkSize < 1:
            raise ValueError(f"chunkSize must be positive, got {chunkSize}")
        total = 0
        framed: bytes | None = None
        for session in list(self.sessions):
            connection: Any = session.connection
            if session.closed or connection.transport is None:
                continue
            if isinstance(connection, SimulatorTcpProtocol):
                if framed is None:
                    framed = frame(frameBytes)
                if chunkSize is None or chunkSize >= len(framed):
                    connection.transport.write(framed)
                else:
                    view = memoryview(framed)
                    for start in range(0, len(framed), chunkSize):
                        connection.transport.write(bytes(view[start : start + chunkSize]))
                total += len(framed)
            else:
                connection.writeFrame(frameBytes)
                total += len(frameBytes)
            session.written += 1
        return total

    # --- listening ---------------------------------------------------------------------------------

    def listen(
        self,
        reactor: Any,
        tlsPort: int | None = 0,
        wsPort: int | None = 0,
        plainPort: int | None = None,
        interface: str = "127.0.0.1",
        certificate: CertificateSet | PrivateCertificate | tuple[bytes, bytes] | None = None,
    ) -> Listening:
        """Start listening (synchronously) and return where.

        :param tlsPort: TLS TCP port (0: any free port; ``None``: none).
        :param wsPort: ``wss://`` port (0: any free port; ``None``: none).
        :param plainPort: plain TCP port for benchmarks (``None``: none, the default).
        :param certificate: ``None`` mints a CA and a ``localhost`` certificate;
            or a :class:`~.certs.CertificateSet`, a ``PrivateCertificate``
            (self-signed: it is its own CA), or ``(certificatePEM, keyPEM)``.
        """
        certs = _certificates(certificate)
        server = PrivateCertificate.loadPEM(certs.keyPEM + b"\n" + certs.certificatePEM)
        options = server.options()
        ports: list[IListeningPort] = []

        def number(port: IListeningPort) -> int:
            ports.append(port)
            return int(port.getHost().port)

        try:
            tls = number(reactor.listenSSL(tlsPort, self.serverFactory("tcp"), options, interface=interface)) if tlsPort is not None else None
            ws = number(reactor.listenSSL(wsPort, self.serverFactory("ws"), options, interface=interface)) if wsPort is not None else None
            plain = number(reactor.listenTCP(plainPort, self.serverFactory("tcp"), interface=interface)) if plainPort is not None else None
        except Exception:
            for port in ports:
                port.stopListening()
            raise
        listening = Listening(tls, ws, plain, Certificate.loadPEM(certs.caPEM), certs.caPEM, "localhost", ports)
        self._listening.append(listening)
        self._log.info(
            "Simulator listening on {interface}: TLS {tls}, WebSocket {ws}, plain {plain}",
            interface=interface, tls=tls, ws=ws, plain=plain,
        )
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
        if self._ticker is not None and self._ticker.running and not self.sessions:
            self._ticker.stop()
            self._ticker = None
        return DeferredList(waits, consumeErrors=True).addCallback(lambda _: None)


def _certificates(certificate: Any) -> CertificateSet:
    if certificate is None:
        return mintCertificates()
    if isinstance(certificate, CertificateSet):
        return certificate
    if isinstance(certificate, PrivateCertificate):
        pem = certificate.dumpPEM()
        marker = b"-----BEGIN CERTIFICATE-----"
        certPEM = pem[pem.index(marker):] if marker in pem else certificate.dump()  # type: ignore[arg-type]
        keyPEM = certificate.privateKey.dump()  # type: ignore[attr-defined]
        return CertificateSet(caPEM=certPEM, certificatePEM=certPEM, keyPEM=keyPEM)
    if isinstance(certificate, tuple) and len(certificate) in (2, 3):
        certPEM, keyPEM = certificate[0], certificate[1]
        caPEM = certificate[2] if len(certificate) == 3 else certPEM
        return CertificateSet(caPEM=caPEM, certificatePEM=certPEM, keyPEM=keyPEM)
    raise TypeError(f"unsupported certificate: {type(certificate).__name__}")


def _spotPool(accountId: int, state: SymbolState, timestamp: int, size: int = 16) -> list[bytes]:
    """*size* serialized spot-event envelopes around *state*'s current price."""
    from ..messages.OpenApiMessages_pb2 import ProtoOASpotEvent

    pool = []
    for i in range(size):
        bid = state.round(state.bid + (i % 8 - 4) * state.tick)
        event = ProtoOASpotEvent(
            ctidTraderAccountId=accountId, symbolId=state.symbolId, bid=bid, ask=bid + state.spread,
            timestamp=timestamp + i,
        )
        pool.append(ProtoMessage(payloadType=2131, payload=event.SerializeToString()).SerializeToString())
    return pool


@implementer(IPullProducer)
class _BurstProducer:
    """Writes a pool of pre-serialized frames, a chunk per ``resumeProducing``."""

    #: Frames per write: 2048 spot frames of 30 bytes are about 64 KiB.
    CHUNK = 2048

    def __init__(self, session: Session, pool: list[bytes], count: int) -> None:
        self.session = session
        self.connection: Any = session.connection
        self.remaining = count
        self.written = 0
        self.done: Deferred[int] = Deferred()
        self._finished = False
        if isinstance(self.connection, SimulatorTcpProtocol):
            framed = [frame(p) for p in pool]
            self._chunk = b"".join(framed[i % len(framed)] for i in range(self.CHUNK))
            self._framed = framed
            self._prepared = None
        else:
            factory = self.connection.factory
            self._prepared = [factory.prepareMessage(p, isBinary=True) for p in pool]

    def start(self) -> Deferred[int]:
        if getattr(self.session, "burst", None) is not None:
            raise RuntimeError("a burst is already running on this connection")
        if self.remaining == 0:
            self._finish()
            return self.done
        self.session.burst = self  # type: ignore[attr-defined]
        self.connection.transport.registerProducer(self, False)
        return self.done

    def resumeProducing(self) -> None:
        if self._finished:
            return
        n = min(self.CHUNK, self.remaining)
        if self._prepared is None:
            transport = self.connection.transport
            if n == self.CHUNK:
                transport.write(self._chunk)
            else:
                framed = self._framed
                transport.write(b"".join(framed[i % len(framed)] for i in range(n)))
        else:
            send = self.connection.sendPreparedMessage
            prepared = self._prepared
            for i in range(n):
                send(prepared[i % len(prepared)])
        self.remaining -= n
        self.written += n
        self.session.written += n
        if self.remaining == 0:
            transport = self.connection.transport
            if transport is not None:
                transport.unregisterProducer()
            self._finish()

    def stopProducing(self) -> None:
        self._finish()

    def _finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        if getattr(self.session, "burst", None) is self:
            self.session.burst = None  # type: ignore[attr-defined]
        self.done.callback(self.written)
