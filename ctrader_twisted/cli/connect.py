# -*- test-case-name: tests.test_stream,tests.test_cli -*-
"""Where the data comes from: the bundled simulator, or a remote host.

:class:`Connection` is the one path every command takes: with no host it
starts the bundled simulator in-process on free loopback ports (and uses
its credentials and CA), otherwise it targets the configured host; then it
builds a managed-session :class:`~ctrader_twisted.client.Client`, waits for
its first session (failing fast when retrying cannot help), authorizes the
accounts and resolves symbol names. With a refresh token it also renews a
refused access token and keeps the new pair in the token file, so the next
run starts with it (a refresh token works once).

Two mistakes are told apart from an unreachable server: a transport that
does not match the port (TLS TCP against a WebSocket port, or the reverse:
:class:`TransportMismatchError`, within the client's response timeout rather
than after the 30 s connect timeout), and a server that turns out to be a
ctrader-twisted simulator started separately (:meth:`Connection.identify`:
its version answer says so, and the data is then marked simulated too).

The one-shot commands
(:mod:`~ctrader_twisted.cli.commands`, :mod:`~ctrader_twisted.cli.history`)
and the stream service (:mod:`~ctrader_twisted.cli.stream`) differ only in
what they do with the client, and in what they tell the user.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Iterable, Sequence, TextIO

from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.error import ConnectionDone, ConnectionLost, TimeoutError as ConnectTimeoutError
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..client import Client
from ..errors import AccessTokenInvalidError, FrameTooLargeError, RequestTimeout
from ..tcp import TcpProtocol
from ..tokens import ITokenStore, Tokens, TokenStoreError
from .config import Credentials, Settings
from .jsonlines import SymbolInfo
from .status import StreamError, describeError, say, tlsProblem

if TYPE_CHECKING:
    from ..simulator import Simulator
    from ..simulator.server import Listening

__all__ = ["Connection", "connectClient", "TransportMismatchError", "SIMULATOR_SPOT_INTERVAL"]

_log = Logger()

#: Seconds between market ticks of the in-process simulator (a lively demo).
SIMULATOR_SPOT_INTERVAL = 0.25

#: The ports named in the transport hints: cTrader's proxies serve both
#: transports on 5035; the bundled simulator listens for each on its own port.
_PORTS_HINT = (
    "cTrader's proxies serve TLS TCP and wss:// both on 5035; "
    "the bundled simulator listens for TLS TCP on 5035 and for wss:// on 5036"
)


class TransportMismatchError(StreamError):
    """The transport probably does not match the port: TLS TCP against a
    WebSocket port (the server waits for an HTTP upgrade, or answers in
    HTTP), or WebSocket against a TLS TCP port (the opening handshake fails).
    The message says which option to change."""


class Connection:
    """A client of the bundled simulator (no host) or of a remote host.

    Nothing happens until :meth:`start`; :meth:`close` undoes everything.

    :param reactor: the reactor (connecting, timers; the simulator's clock).
    :param settings: where to connect and as whom.
    :param timeout: seconds allowed for the first session (``None``: no limit).
    :param spotInterval: market tick of the in-process simulator, seconds.
    :param clientOptions: extra :class:`Client` keyword arguments (tests:
        ``retryPolicy``, ``endpoint``, ``clock``).
    :param status: where to say that refreshed tokens were kept (or not).
    :param tokenStore: where refreshed tokens go (by default the settings'
        token file; ``None`` with the simulator).

    :ivar host: the server's host (the simulator's once started).
    :ivar port: the server's port (the simulator's once started).
    :ivar client: the client, once started.
    :ivar simulator: the in-process simulator while it runs, else ``None``.
    :ivar listening: where the in-process simulator listens.
    """

    def __init__(
        self,
        reactor: Any,
        settings: Settings,
        *,
        timeout: float | None = 30.0,
        spotInterval: float = SIMULATOR_SPOT_INTERVAL,
        clientOptions: dict[str, Any] | None = None,
        status: TextIO | None = None,
        tokenStore: ITokenStore | None = None,
    ) -> None:
        self.reactor = reactor
        self.settings = settings
        self.timeout = timeout
        self.spotInterval = spotInterval
        self.clientOptions = dict(clientOptions or {})
        self.status = status
        self.tokenStore = tokenStore if tokenStore is not None else settings.tokenStore()
        self.host = settings.host or "localhost"
        self.port = settings.port
        self.credentials: Credentials | None = settings.credentials
        self.client: Client | None = None
        self.simulator: Simulator | None = None
        self.listening: Listening | None = None
        #: what the server's ``ProtoOAVersionRes`` said (:meth:`identify`)
        self.serverVersion: str | None = None

    @property
    def inProcess(self) -> bool:
        """Whether the server is the bundled simulator, run in this process."""
        return self.settings.simulated

    @property
    def simulated(self) -> bool:
        """Whether the data is simulated: the in-process simulator, or a
        server whose version answer (:meth:`identify`) says it is a
        ctrader-twisted simulator."""
        if self.settings.simulated:
            return True
        from ..simulator.handlers.auth import SIMULATOR_MARKER

        return self.serverVersion is not None and SIMULATOR_MARKER in self.serverVersion

    async def identify(self) -> bool:
        """Ask the server's version once (``ProtoOAVersionReq``) and say
        whether it is a simulator (:attr:`simulated`). The in-process
        simulator is not asked.

        A server that does not answer the question is taken as a real one:
        only a version that names the simulator marks the data simulated.
        """
        if self.inProcess or self.serverVersion is not None:
            return self.simulated
        try:
            res = await self._client.request("ProtoOAVersionReq")
        except Exception as error:  # not worth failing for: the data is then real
            _log.info("Version request failed: {error}", error=str(error))
            self.serverVersion = ""
            return False
        self.serverVersion = str(res.version)
        _log.info("Server version: {version}", version=self.serverVersion)
        return self.simulated

    async def simulatorNotice(self) -> str | None:
        """For a ctrader-twisted simulator started separately (asked with
        :meth:`identify`), the status line saying the data is simulated;
        ``None`` for a real server and for the in-process simulator (which
        its callers announce in their own words)."""
        if self.inProcess or not await self.identify():
            return None
        return (
            f"SIMULATED DATA: {self.where} is a ctrader-twisted simulator "
            f"(its version answer says {self.serverVersion!r})"
        )

    def describe(self, error: BaseException) -> str:
        """*error* as one line for the user, naming this server and where
        the settings involved came from."""
        return describeError(error, self.host, self.port, self.settings.sources)

    @property
    def where(self) -> str:
        """``host:port`` of the server."""
        return f"{self.host}:{self.port}"

    @property
    def transport(self) -> str:
        """The transport's name, for the user."""
        return "WebSocket (wss)" if self.settings.websocket else "TLS TCP"

    @property
    def accessToken(self) -> str:
        """The access token of the trading accounts (the simulator's when simulated)."""
        if self.credentials is None:
            raise RuntimeError("the connection has not started")
        return self.credentials.accessToken

    def start(self) -> Client:
        """Start the simulator when simulated, and build the client (not started).

        The caller may set the client's callbacks before :meth:`connect`.
        """
        settings = self.settings
        trustRoot: Any = settings.caFile
        if settings.simulated:
            from ..simulator import Simulator  # imported only when used

            websocket = settings.websocket
            simulator = self.simulator = Simulator(seed=0, clock=self.reactor, spotInterval=self.spotInterval)
            listening = self.listening = simulator.listen(
                self.reactor, tlsPort=None if websocket else 0, wsPort=0 if websocket else None
            )
            self.host = listening.host
            port = listening.wsPort if websocket else listening.tlsPort
            assert port is not None
            self.port = port
            trustRoot = listening.caPEM
            self.credentials = Credentials(simulator.clientId, simulator.clientSecret, simulator.accessToken)
        assert self.credentials is not None
        if settings.websocket:
            from ..websocket import WebSocketProtocol

            protocol: type = WebSocketProtocol
        else:
            protocol = TcpProtocol
        self.client = Client(
            self.host,
            self.port,
            protocol,
            reactor=self.reactor,
            trustRoot=trustRoot,
            clientId=self.credentials.clientId,
            clientSecret=self.credentials.clientSecret,
            **self.clientOptions,
        )
        if not settings.simulated and self.credentials.refreshToken:
            self.client.setTokenRefresher(
                self.credentials.refreshToken, self._tokensRefreshed, accessToken=self.credentials.accessToken
            )
        return self.client

    def _tokensRefreshed(self, client: Client, res: Any) -> None:
        """Use the new pair from now on and keep it in the token store before
        anything uses it (the old refresh token is dead)."""
        old = self.credentials
        assert old is not None
        self.credentials = replace(old, accessToken=res.accessToken, refreshToken=res.refreshToken)
        store = self.tokenStore
        if store is None:
            self._say("access token refreshed (kept in memory only: no token file)")
            return
        lineage = old.tokens.replaces if old.tokens is not None else ()
        try:
            tokens = replace(Tokens.fromRefreshRes(res, self.reactor.seconds()), replaces=lineage)
            tokens = tokens.replacing(old.accessToken, old.refreshToken)
            store.save(tokens)
        except (ValueError, TokenStoreError) as error:
            _log.error("Refreshed tokens not kept: {error}", error=str(error))
            self._say(f"warning: access token refreshed but NOT kept ({error}); the next run needs `ctrader-twisted login`")
            return
        self.credentials = replace(self.credentials, tokens=tokens)
        _log.info("Refreshed tokens kept in {store}", store=repr(store))
        self._say(f"access token refreshed; the new tokens are kept in {getattr(store, 'path', store)!s}")

    def _say(self, text: str) -> None:
        if self.status is not None:
            say(self.status, text)

    async def connect(self) -> Client:
        """Start (unless started) and wait for the client's first session.

        :raises: the error that stopped it (give it to
            :func:`~ctrader_twisted.cli.status.describeError`).
        """
        client = self.client if self.client is not None else self.start()
        websocketSource = self.settings.sources.get("websocket", "--websocket")
        return await connectClient(client, self.reactor, self.timeout, websocket=self.settings.websocket,
                                   websocketSource=websocketSource)

    async def listAccounts(self) -> list[Any]:
        """The ``ProtoOACtidTraderAccount`` entries the access token grants
        (a refused access token is refreshed once when a refresh token is known)."""
        client = self._client
        try:
            res = await client.request("ProtoOAGetAccountListByAccessTokenReq", accessToken=self.accessToken)
        except AccessTokenInvalidError:
            if self.inProcess or not (self.credentials and self.credentials.refreshToken):
                raise
            await client.refreshAccessToken()
            res = await client.request("ProtoOAGetAccountListByAccessTokenReq", accessToken=self.accessToken)
        return list(res.ctidTraderAccount)

    async def authorizeAccounts(self, accountIds: Sequence[int]) -> list[int]:
        """Authorize *accountIds* (every account of the token when empty), in order.

        :raises StreamError: the token grants no account.
        """
        ids = list(accountIds)
        if not ids:
            ids = [int(a.ctidTraderAccountId) for a in await self.listAccounts()]
            if not ids:
                raise StreamError("the access token grants no trading account")
        for accountId in ids:
            await self._client.authorizeAccount(accountId, self.accessToken)
        return ids

    async def firstAccount(self) -> int:
        """Authorize the first account of the settings (else of the token) alone."""
        ids = await self.authorizeAccounts(self.settings.accountIds[:1])
        return ids[0]

    async def resolveSymbols(
        self, accountId: int, names: Iterable[str]
    ) -> tuple[list[SymbolInfo], dict[int, SymbolInfo]]:
        """Resolve symbol names (exact, else case-insensitive) on *accountId*.

        :returns: the requested symbols with their digits, and every symbol of
            the account by id (names only).
        :raises StreamError: an unknown name.
        """
        client = self._client
        listing = await client.request("ProtoOASymbolsListReq", ctidTraderAccountId=accountId)
        byId = {int(s.symbolId): SymbolInfo(int(s.symbolId), s.symbolName) for s in listing.symbol}
        byName = {info.name: info for info in byId.values()}
        folded = {info.name.casefold(): info for info in byId.values()}
        wanted: list[SymbolInfo] = []
        for name in names:
            info = byName.get(name) or folded.get(name.casefold())
            if info is None:
                from ..trading.symbols import suggest

                close = suggest(name, byName)
                hint = f"did you mean {' or '.join(close)}? " if close else ""
                raise StreamError(
                    f"unknown symbol {name!r} on account {accountId} "
                    f"({hint}{len(byId)} symbols; `ctrader-twisted symbols` lists them)"
                )
            if info not in wanted:
                wanted.append(info)
        if not wanted:
            return [], byId
        full = await client.request(
            "ProtoOASymbolByIdReq", ctidTraderAccountId=accountId, symbolId=[s.symbolId for s in wanted]
        )
        digits = {int(s.symbolId): int(s.digits) for s in full.symbol}
        resolved = [SymbolInfo(s.symbolId, s.name, digits.get(s.symbolId)) for s in wanted]
        for info in resolved:
            byId[info.symbolId] = info
        return resolved, byId

    async def close(self) -> None:
        """Stop the client (unless already stopped) and then the simulator."""
        if self.client is not None and self.client.running:
            await self.client.stopService()
        simulator, self.simulator = self.simulator, None
        if simulator is not None:
            await simulator.stop()

    @property
    def _client(self) -> Client:
        if self.client is None:
            raise RuntimeError("the connection has not started")
        return self.client


def connectClient(
    client: Client,
    reactor: Any,
    timeout: float | None = 30.0,
    *,
    websocket: bool = False,
    websocketSource: str = "--websocket",
) -> Deferred[Client]:
    """Start *client* and wait for its first ready session, failing fast.

    Fails (and stops the client) at the first sign that retrying cannot help
    the user: a refused or unresolvable connection, a TLS failure, refused
    application credentials, a transport that does not match the port
    (:class:`TransportMismatchError`), or *timeout* seconds without a session.

    :param websocket: whether *client* connects with WebSocket (for the
        transport-mismatch hint).
    :param websocketSource: where the WebSocket setting came from
        (``--websocket``, or the config file), named in that hint.
    :returns: a Deferred firing with *client*, or failing with the error
        (pass it to :func:`~ctrader_twisted.cli.status.describeError`).
    """
    result: Deferred[Client] = Deferred()
    calls: list[IDelayedCall] = []
    where = f"{client.host}:{client.port}"
    factory = client.factory

    done: list[Any] = []
    links: list[Any] = []

    def finish(outcome: Any) -> None:
        if done:
            return
        done.append(outcome)
        for call in calls:
            if call.active():
                call.cancel()
        if isinstance(outcome, Failure):
            # Not from inside the ClientService state machine (which may be
            # what is calling us): stop the client on the next turn.
            def stop() -> None:
                stopping = client.stopService() if client.running else succeed(None)
                stopping.addBoth(lambda _: result.errback(outcome))

            reactor.callLater(0, stop)
        else:
            result.callback(outcome)

    def attemptFailed(reason: Failure) -> None:
        if not client.isReady:
            finish(_mismatch(reason.value, where, websocket, websocketSource, None) or reason)

    def onConnected(transport: Any) -> None:
        if not done:
            links.append(factory.link)

    def disconnected(transport: Any, reason: Failure) -> None:
        if client.isReady or done:
            return
        link = next((link for link in links if link is not None and link.transport is transport), None)
        reads = link.keepalive.reads if link is not None else None
        mismatch = _mismatch(reason.value, where, websocket, websocketSource, reads)
        if mismatch is not None:
            finish(mismatch)

    factory.addAttemptFailureObserver(attemptFailed)
    factory.addConnectionObserver(onConnected)
    factory.addDisconnectionObserver(disconnected)
    if not client.running:
        client.startService()
    connected = client.whenConnected(failAfterFailures=1)
    connected.addErrback(lambda f: None if f.check(CancelledError) else finish(f))
    ready = client.whenReady()
    ready.addCallbacks(finish, finish)
    if timeout is not None:
        calls.append(
            reactor.callLater(timeout, lambda: finish(Failure(ConnectTimeoutError(f"no session within {timeout:g} s"))))
        )

    def cleanup(outcome: Any) -> Any:
        factory.removeAttemptFailureObserver(attemptFailed)
        factory.removeConnectionObserver(onConnected)
        factory.removeDisconnectionObserver(disconnected)
        links.clear()
        if not connected.called:
            connected.cancel()
        return outcome

    return result.addBoth(cleanup)


def _mismatch(
    error: BaseException, where: str, websocket: bool, websocketSource: str, reads: int | None
) -> Failure | None:
    """A :class:`TransportMismatchError` when the way the first connection
    failed shows a transport that does not match the port, else ``None``.

    :param reads: reads that arrived on the ready connection (``None``: it
        never became ready).
    """
    if websocket:
        # The opening handshake failed after TCP (and TLS) succeeded: the
        # server does not speak WebSocket there.
        if reads is None and isinstance(error, (ConnectionLost, ConnectionDone)) and tlsProblem(error) is None:
            detail = _handshakeDetail(error)
            return Failure(TransportMismatchError(
                f"the WebSocket handshake with {where} failed ({detail}): the transport probably does not match "
                f"the port (a TLS TCP port? then drop {websocketSource}; {_PORTS_HINT})"
            ))
        return None
    if isinstance(error, FrameTooLargeError) and error.length.to_bytes(4, "big") in (b"HTTP", b"http"):
        return Failure(TransportMismatchError(
            f"{where} answered in HTTP over TLS TCP: the transport probably does not match the port "
            f"(a WebSocket port? then add --websocket; {_PORTS_HINT})"
        ))
    if isinstance(error, RequestTimeout) and reads == 0:
        # TLS succeeded, the first request went out, and not one byte came
        # back: a WebSocket server waits for an HTTP upgrade request.
        return Failure(TransportMismatchError(
            f"connected to {where} over TLS TCP, but the server sent nothing back: the transport probably does "
            f"not match the port (a WebSocket port? then add --websocket; {_PORTS_HINT})"
        ))
    return None


def _handshakeDetail(error: BaseException) -> str:
    """Autobahn's reason for a failed opening handshake, without its wrapping."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    found = re.search(r"closed uncleanly \((.*)\)", text)
    if found:
        text = found.group(1).strip().strip('"')
    return text or "the server closed the connection"
