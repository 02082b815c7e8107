# -*- test-case-name: tests.test_streamer -*-
"""The library's main job: stream market data and account events as JSON lines.

:class:`StreamService` is an ``IService`` (a ``MultiService`` owning a
:class:`~ctrader_twisted.client.Client`, and the bundled simulator when no
host is given). On start it connects, authenticates the application and the
accounts, resolves the symbols by name, subscribes to spots (and optionally
live trend bars and depth) and writes every event as one JSON object per line
(:class:`EventFormatter`). Reconnecting and restoring the session is the
client's job: the service only reports it with a one-line status.

The helpers used by the one-shot commands of :mod:`ctrader_twisted.cli`
(:func:`startSimulator`, :func:`connectClient`, :func:`authorizeAccounts`,
:func:`resolveSymbols`, :func:`describeError`) live here too.

Output format (one line per event, UTF-8, flushed per line)::

    {"event":"spot","time":"2026-01-05T10:15:02.250Z","account":2000001,"symbol":"EURUSD","symbolId":1,"bid":1.08123,"ask":1.08125,"simulated":true}

Prices are JSON numbers written exactly with the symbol's digits (from the
wire's integers in 1/100000 of a unit, through :class:`decimal.Decimal`);
volumes are in units (the wire's cents / 100); times are ISO 8601 UTC with
milliseconds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Callable, Iterable, Sequence, TextIO

from twisted.application.service import MultiService
from twisted.internet.defer import CancelledError, Deferred, ensureDeferred, fail, succeed
from twisted.internet.error import ConnectError, ConnectionRefusedError, DNSLookupError, TimeoutError as ConnectTimeoutError
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from .client import Client
from .config import Credentials, Settings
from .errors import (
    AccessTokenInvalidError,
    AccountNotAuthorizedError,
    ClientAuthenticationError,
    CTraderError,
    OpenApiError,
)
from .messages.OpenApiModelMessages_pb2 import (
    ProtoOAExecutionType,
    ProtoOAOrderStatus,
    ProtoOAOrderType,
    ProtoOAPositionStatus,
    ProtoOATradeSide,
    ProtoOATrendbarPeriod,
)
from .tcp import TcpProtocol

__all__ = [
    "StreamService",
    "StreamError",
    "EventFormatter",
    "SymbolInfo",
    "dumpJson",
    "decimalPrice",
    "isoTime",
    "parsePeriod",
    "startSimulator",
    "connectClient",
    "listAccounts",
    "authorizeAccounts",
    "resolveSymbols",
    "describeError",
    "SIMULATOR_SPOT_INTERVAL",
]

#: Seconds between market ticks of the in-process simulator (a lively demo).
SIMULATOR_SPOT_INTERVAL = 0.25

_STATUS_PREFIX = "ctrader-twisted: "


class StreamError(Exception):
    """A one-line, user-facing reason why streaming (or a command) cannot go
    on: unknown symbol, refused credentials, unreachable host, certificate
    failure. Never holds a secret."""


# --- formatting ---------------------------------------------------------------------


def decimalPrice(value: int, digits: int) -> Decimal:
    """A wire price (integer, 1/100000 of a unit) as a Decimal with *digits* places."""
    return Decimal(value).scaleb(-5).quantize(Decimal(1).scaleb(-digits))


def _doublePrice(value: float, digits: int | None) -> Decimal:
    """A price sent as a double (execution events), rounded to *digits* when known."""
    number = Decimal(repr(float(value)))
    if digits is None:
        return number.normalize() if number == number.to_integral_value() else number
    return number.quantize(Decimal(1).scaleb(-digits))


def _units(cents: int) -> Decimal:
    """A wire volume (cents) in units."""
    return Decimal(cents).scaleb(-2).normalize() if cents % 100 == 0 else Decimal(cents).scaleb(-2)


def _money(value: int, moneyDigits: int | None) -> Decimal:
    return Decimal(value).scaleb(-(moneyDigits if moneyDigits is not None else 2))


def isoTime(milliseconds: int) -> str:
    """ISO 8601 UTC with milliseconds, e.g. ``2026-01-05T10:15:02.250Z``."""
    seconds, ms = divmod(int(milliseconds), 1000)
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") + f".{ms:03d}Z"


def dumpJson(value: Any) -> str:
    """Compact JSON in which :class:`~decimal.Decimal` values are exact numbers.

    ``json`` cannot write a Decimal as a number without going through float;
    this writes ``str``-formatted Decimals as they are (``1.10000`` stays
    ``1.10000``).
    """
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"cannot write {value} as JSON")
        return format(value, "f")
    if isinstance(value, dict):
        return "{" + ",".join(json.dumps(str(k)) + ":" + dumpJson(v) for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(dumpJson(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


def parsePeriod(name: str) -> int:
    """A trend bar period name (``M1``, ``m15``, ``H1``, ``D1``, ``W1``, ``MN1``) as its wire value.

    :raises ValueError: unknown name (the message lists the valid ones).
    """
    try:
        return int(ProtoOATrendbarPeriod.Value(name.strip().upper()))
    except ValueError:
        valid = ", ".join(ProtoOATrendbarPeriod.keys())
        raise ValueError(f"unknown trend bar period {name!r} (valid: {valid})") from None


def _enumName(enum: Any, number: int) -> str:
    try:
        return str(enum.Name(number))
    except ValueError:
        return str(number)


@dataclass(frozen=True)
class SymbolInfo:
    """What the formatter needs to know of a symbol."""

    symbolId: int
    name: str
    digits: int | None = None


class EventFormatter:
    """Turns decoded Open API events into JSON-ready dicts.

    Spot events carry only the side(s) that changed; the formatter carries
    the other side over from the previous event of the same symbol, so every
    ``spot`` line has both ``bid`` and ``ask``.

    :param symbols: account id to symbol id to :class:`SymbolInfo`.
    :param simulated: value of the ``simulated`` field of every line.
    :param now: current time in milliseconds (events without a server
        timestamp get the time they were received).
    """

    def __init__(
        self,
        symbols: dict[int, dict[int, SymbolInfo]],
        simulated: bool,
        now: Callable[[], int],
    ) -> None:
        self.symbols = symbols
        self.simulated = simulated
        self.now = now
        self._quotes: dict[tuple[int, int], tuple[int | None, int | None]] = {}

    def _symbol(self, accountId: int, symbolId: int) -> SymbolInfo:
        info = self.symbols.get(accountId, {}).get(symbolId)
        return info if info is not None else SymbolInfo(symbolId, str(symbolId))

    def _price(self, value: int, info: SymbolInfo) -> Decimal:
        return decimalPrice(value, info.digits if info.digits is not None else 5)

    def spot(self, event: Any) -> list[dict[str, Any]]:
        """``ProtoOASpotEvent``: a ``spot`` line, then a ``trendbar`` line per live bar."""
        accountId, symbolId = int(event.ctidTraderAccountId), int(event.symbolId)
        info = self._symbol(accountId, symbolId)
        ms = int(event.timestamp) if event.HasField("timestamp") else self.now()
        previous = self._quotes.get((accountId, symbolId), (None, None))
        bid = int(event.bid) if event.HasField("bid") else previous[0]
        ask = int(event.ask) if event.HasField("ask") else previous[1]
        self._quotes[(accountId, symbolId)] = (bid, ask)
        line: dict[str, Any] = {
            "event": "spot",
            "time": isoTime(ms),
            "account": accountId,
            "symbol": info.name,
            "symbolId": symbolId,
            "bid": None if bid is None else self._price(bid, info),
            "ask": None if ask is None else self._price(ask, info),
        }
        if event.HasField("sessionClose"):
            line["sessionClose"] = self._price(int(event.sessionClose), info)
        line["simulated"] = self.simulated
        lines = [line]
        for bar in event.trendbar:
            lines.append(self.trendbar(accountId, info, bar, ms, bid))
        return lines

    def trendbar(self, accountId: int, info: SymbolInfo, bar: Any, ms: int, bid: int | None = None) -> dict[str, Any]:
        """One live ``ProtoOATrendbar`` (low plus deltas) as a ``trendbar`` line.

        Live bars carried by spot events have no ``deltaClose``: their close
        is the current bid (*bid*).
        """
        low = int(bar.low)
        if bar.HasField("deltaClose"):
            close: Decimal | None = self._price(low + int(bar.deltaClose), info)
        else:
            close = None if bid is None else self._price(bid, info)
        return {
            "event": "trendbar",
            "time": isoTime(ms),
            "account": accountId,
            "symbol": info.name,
            "symbolId": info.symbolId,
            "period": _enumName(ProtoOATrendbarPeriod, bar.period),
            "barTime": isoTime(int(bar.utcTimestampInMinutes) * 60_000),
            "open": self._price(low + int(bar.deltaOpen), info),
            "high": self._price(low + int(bar.deltaHigh), info),
            "low": self._price(low, info),
            "close": close,
            "volume": int(bar.volume),
            "simulated": self.simulated,
        }

    def depth(self, event: Any) -> dict[str, Any]:
        """``ProtoOADepthEvent``: new quotes (id, side, price, size in units) and deleted ids."""
        accountId, symbolId = int(event.ctidTraderAccountId), int(event.symbolId)
        info = self._symbol(accountId, symbolId)
        quotes = []
        for quote in event.newQuotes:
            side, price = ("bid", quote.bid) if quote.HasField("bid") else ("ask", quote.ask)
            quotes.append(
                {"id": int(quote.id), "side": side, "price": self._price(int(price), info), "size": _units(int(quote.size))}
            )
        return {
            "event": "depth",
            "time": isoTime(self.now()),
            "account": accountId,
            "symbol": info.name,
            "symbolId": symbolId,
            "quotes": quotes,
            "deleted": [int(i) for i in event.deletedQuotes],
            "simulated": self.simulated,
        }

    def execution(self, event: Any) -> dict[str, Any]:
        """``ProtoOAExecutionEvent``: order, position and deal ids, side, volume, prices."""
        accountId = int(event.ctidTraderAccountId)
        line: dict[str, Any] = {"event": "execution", "time": None, "account": accountId,
                                "type": _enumName(ProtoOAExecutionType, event.executionType)}
        ms: int | None = None
        order = event.order if event.HasField("order") else None
        position = event.position if event.HasField("position") else None
        deal = event.deal if event.HasField("deal") else None
        trade = order.tradeData if order is not None else position.tradeData if position is not None else None
        symbolId = int(deal.symbolId) if deal is not None else int(trade.symbolId) if trade is not None else None
        info = self._symbol(accountId, symbolId) if symbolId is not None else None
        digits = info.digits if info is not None else None
        if info is not None:
            line["symbol"] = info.name
            line["symbolId"] = info.symbolId
        if trade is not None:
            line["side"] = _enumName(ProtoOATradeSide, trade.tradeSide)
            line["volume"] = _units(int(trade.volume))
        if order is not None:
            line["orderId"] = int(order.orderId)
            line["orderType"] = _enumName(ProtoOAOrderType, order.orderType)
            line["orderStatus"] = _enumName(ProtoOAOrderStatus, order.orderStatus)
            for name in ("limitPrice", "stopPrice", "executionPrice"):
                if order.HasField(name):
                    line[name] = _doublePrice(getattr(order, name), digits)
            if order.HasField("clientOrderId"):
                line["clientOrderId"] = order.clientOrderId
            if order.HasField("utcLastUpdateTimestamp"):
                ms = int(order.utcLastUpdateTimestamp)
        if position is not None:
            line["positionId"] = int(position.positionId)
            line["positionStatus"] = _enumName(ProtoOAPositionStatus, position.positionStatus)
            if position.HasField("price"):
                line["positionPrice"] = _doublePrice(position.price, digits)
            for name in ("stopLoss", "takeProfit"):
                if position.HasField(name):
                    line[name] = _doublePrice(getattr(position, name), digits)
            if ms is None and position.HasField("utcLastUpdateTimestamp"):
                ms = int(position.utcLastUpdateTimestamp)
        if deal is not None:
            line["dealId"] = int(deal.dealId)
            line["filledVolume"] = _units(int(deal.filledVolume))
            if deal.HasField("executionPrice"):
                line["dealPrice"] = _doublePrice(deal.executionPrice, digits)
            if deal.HasField("commission"):
                moneyDigits = int(deal.moneyDigits) if deal.HasField("moneyDigits") else None
                line["commission"] = _money(int(deal.commission), moneyDigits)
            ms = int(deal.executionTimestamp)
        if event.HasField("errorCode"):
            line["errorCode"] = event.errorCode
        line["time"] = isoTime(ms if ms is not None else self.now())
        line["simulated"] = self.simulated
        return line

    def orderError(self, event: Any) -> dict[str, Any]:
        """``ProtoOAOrderErrorEvent``: error code and description."""
        line: dict[str, Any] = {
            "event": "order_error",
            "time": isoTime(self.now()),
            "account": int(event.ctidTraderAccountId),
            "errorCode": event.errorCode,
        }
        for name in ("orderId", "positionId", "description"):
            if event.HasField(name):
                line[name] = getattr(event, name)
        line["simulated"] = self.simulated
        return line


# --- connecting ----------------------------------------------------------------------


def describeError(error: BaseException, host: str, port: int) -> str:
    """A one-line explanation of *error* for the user (never a secret)."""
    where = f"{host}:{port}"
    if isinstance(error, StreamError):
        return str(error)
    if isinstance(error, ClientAuthenticationError):
        return (
            f"{where} refused the application credentials ({error}): "
            "check the client id and secret (CTRADER_CLIENT_ID, CTRADER_CLIENT_SECRET)"
        )
    if isinstance(error, AccessTokenInvalidError):
        return f"{where} refused the access token ({error}): check CTRADER_ACCESS_TOKEN or refresh it"
    if isinstance(error, AccountNotAuthorizedError):
        return f"the access token does not grant this account ({error}): check CTRADER_ACCOUNT_ID"
    if isinstance(error, OpenApiError):
        return f"{where} answered with an error: {error}"
    if isinstance(error, DNSLookupError):
        return f"cannot resolve host name {host!r}"
    if isinstance(error, ConnectTimeoutError):
        return f"timed out connecting to {where}"
    if isinstance(error, ConnectionRefusedError):
        return f"cannot connect to {where}: connection refused (is the server running? check the host and port)"
    if isinstance(error, ConnectError):
        detail = error.osError if isinstance(getattr(error, "osError", None), str) else None
        text = type(error).__doc__ or "connection failed"
        text = text.strip().splitlines()[0].rstrip(".").lower()
        if isinstance(error.args, tuple) and error.args and isinstance(error.args[0], str) and error.args[0]:
            detail = error.args[0]
        return f"cannot connect to {where}: {text}" + (f" ({detail})" if detail else "")
    tls = _tlsProblem(error)
    if tls is not None:
        return f"TLS certificate verification failed for {where}: {tls}"
    if isinstance(error, CTraderError):
        return f"{where}: {error}"
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{where}: {type(error).__name__}" + (f": {text}" if text else "")


def _tlsProblem(error: BaseException) -> str | None:
    """The reason of a TLS failure (OpenSSL or service_identity), or ``None``."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        module = type(current).__module__
        if module.startswith("OpenSSL") or module.startswith("service_identity"):
            reasons = []
            for arg in current.args:
                if isinstance(arg, list):
                    for item in arg:
                        if isinstance(item, tuple) and item:
                            reasons.append(str(item[-1]))
                elif isinstance(arg, str):
                    reasons.append(arg)
            return "; ".join(r for r in reasons if r) or type(current).__name__
        current = current.__cause__ or current.__context__
    return None


def startSimulator(reactor: Any, websocket: bool = False, spotInterval: float = SIMULATOR_SPOT_INTERVAL) -> tuple[Any, Any]:
    """Start the bundled simulator on free loopback ports (imported only now).

    :returns: ``(simulator, listening)``; stop it with ``simulator.stop()``.
    """
    from .simulator import Simulator

    simulator = Simulator(seed=0, clock=reactor, spotInterval=spotInterval)
    listening = simulator.listen(reactor, tlsPort=None if websocket else 0, wsPort=0 if websocket else None)
    return simulator, listening


def buildClient(
    reactor: Any,
    host: str,
    port: int,
    credentials: Credentials,
    *,
    websocket: bool = False,
    trustRoot: Any = None,
    **clientOptions: Any,
) -> Client:
    """A managed-session :class:`Client` (not started)."""
    if websocket:
        from .websocket import WebSocketProtocol

        protocol: type = WebSocketProtocol
    else:
        protocol = TcpProtocol
    return Client(
        host,
        port,
        protocol,
        reactor=reactor,
        trustRoot=trustRoot,
        clientId=credentials.clientId,
        clientSecret=credentials.clientSecret,
        **clientOptions,
    )


def connectClient(client: Client, reactor: Any, timeout: float | None = 30.0) -> Deferred[Client]:
    """Start *client* and wait for its first ready session, failing fast.

    Fails (and stops the client) at the first sign that retrying cannot help
    the user: a refused or unresolvable connection, a TLS failure, refused
    application credentials, or *timeout* seconds without a session.

    :returns: a Deferred firing with *client*, or failing with the error
        (pass it to :func:`describeError`).
    """
    result: Deferred[Client] = Deferred()
    calls: list[IDelayedCall] = []

    done: list[Any] = []

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
            finish(reason)

    client.factory.addAttemptFailureObserver(attemptFailed)
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
        client.factory.removeAttemptFailureObserver(attemptFailed)
        if not connected.called:
            connected.cancel()
        return outcome

    return result.addBoth(cleanup)


async def listAccounts(client: Client, accessToken: str) -> list[Any]:
    """The ``ProtoOACtidTraderAccount`` entries the access token grants."""
    res = await client.request("ProtoOAGetAccountListByAccessTokenReq", accessToken=accessToken)
    return list(res.ctidTraderAccount)


async def authorizeAccounts(client: Client, accessToken: str, accountIds: Sequence[int]) -> list[int]:
    """Authorize *accountIds* (every account of the token when empty), in order.

    :raises StreamError: the token grants no account.
    """
    ids = list(accountIds)
    if not ids:
        ids = [int(a.ctidTraderAccountId) for a in await listAccounts(client, accessToken)]
        if not ids:
            raise StreamError("the access token grants no trading account")
    for accountId in ids:
        await client.authorizeAccount(accountId, accessToken)
    return ids


async def resolveSymbols(client: Client, accountId: int, names: Iterable[str]) -> tuple[list[SymbolInfo], dict[int, SymbolInfo]]:
    """Resolve symbol names (exact, else case-insensitive) on *accountId*.

    :returns: the requested symbols with their digits, and every symbol of
        the account by id (names only).
    :raises StreamError: an unknown name.
    """
    listing = await client.request("ProtoOASymbolsListReq", ctidTraderAccountId=accountId)
    byId = {int(s.symbolId): SymbolInfo(int(s.symbolId), s.symbolName) for s in listing.symbol}
    byName = {info.name: info for info in byId.values()}
    folded = {info.name.casefold(): info for info in byId.values()}
    wanted: list[SymbolInfo] = []
    for name in names:
        info = byName.get(name) or folded.get(name.casefold())
        if info is None:
            raise StreamError(
                f"unknown symbol {name!r} on account {accountId} "
                f"({len(byId)} symbols; `ctrader-twisted symbols` lists them)"
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


#: Errors :func:`describeError` explains without a traceback being useful.
_EXPECTED = (StreamError, CTraderError, ConnectError, DNSLookupError, ConnectTimeoutError, ConnectionError)


# --- the service -----------------------------------------------------------------------


class StreamService(MultiService):
    """Connect, authenticate, subscribe, and write every event as a JSON line.

    :param settings: where to connect and as whom (``settings.host`` ``None``:
        start the bundled simulator in-process and say so).
    :param symbols: symbol names to stream spot prices of.
    :param output: text stream for the JSON lines (flushed per line).
    :param status: text stream for the one-line status messages and errors
        (stderr: keeps *output* pure JSON lines).
    :param reactor: the reactor (connecting, timers).
    :param trendbars: period names (``M1``, ``H1``...) of live trend bars.
    :param depth: also stream depth-of-market quotes.
    :param count: stop after this many lines.
    :param duration: stop this many seconds after starting.
    :param connectTimeout: seconds allowed for the first session.
    :param spotInterval: market tick of the in-process simulator, seconds.
    :param clientOptions: extra :class:`Client` keyword arguments (tests:
        ``retryPolicy``).

    Market data is subscribed through the first account (``settings.accountIds``
    order, else the order the server lists them); execution events come from
    every authorized account.
    """

    _log = Logger()

    def __init__(
        self,
        settings: Settings,
        symbols: Sequence[str],
        output: TextIO,
        status: TextIO,
        reactor: Any,
        *,
        trendbars: Sequence[str] = (),
        depth: bool = False,
        count: int | None = None,
        duration: float | None = None,
        connectTimeout: float | None = 30.0,
        spotInterval: float = SIMULATOR_SPOT_INTERVAL,
        clientOptions: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if not symbols:
            raise ValueError("give at least one symbol")
        self.settings = settings
        self.symbolNames = list(symbols)
        self.periods = [parsePeriod(p) for p in trendbars]
        self.depth = depth
        self.count = count
        self.duration = duration
        self.connectTimeout = connectTimeout
        self.spotInterval = spotInterval
        self.clientOptions = dict(clientOptions or {})
        self.output = output
        self.status = status
        self.reactor = reactor
        #: the client, once started
        self.client: Client | None = None
        #: the in-process simulator and where it listens, when simulated
        self.simulator: Any = None
        self.listening: Any = None
        self.host = settings.host or "localhost"
        self.port = settings.port
        self.accountIds: list[int] = []
        self.resolved: list[SymbolInfo] = []
        self.formatter: EventFormatter | None = None
        #: JSON lines written
        self.written = 0
        self.reconnects = 0
        self.streaming = False
        self._error: StreamError | None = None
        self._finished = False
        self._stopping = False
        self._readyCount = 0
        self._waiters: list[Deferred[None]] = []
        self._timer: IDelayedCall | None = None
        self._listeners: list[tuple[str, Callable[[Any], Any]]] = []

    # --- life cycle ------------------------------------------------------------------

    def whenDone(self) -> Deferred[None]:
        """A new Deferred that fires with ``None`` when streaming ends normally
        (``count`` lines, ``duration`` elapsed, or the service stopped), or
        fails with :class:`StreamError` (a one-line reason) on a fatal error."""
        if self._error is not None:
            return fail(self._error)
        if self._finished:
            return succeed(None)
        d: Deferred[None] = Deferred(lambda d: self._waiters.remove(d) if d in self._waiters else None)
        self._waiters.append(d)
        return d

    def startService(self) -> None:
        """Start the simulator (if no host), the client, then subscribe."""
        super().startService()
        self._stopping = False
        if self.duration is not None:
            self._timer = self.reactor.callLater(self.duration, self._finish, "duration reached")
        ensureDeferred(self._start()).addErrback(self._startFailed)

    def stopService(self) -> Deferred[None]:
        """Unsubscribe nothing (closing the connection ends every
        subscription), stop the client and the simulator, report."""
        self._stopping = True
        self.streaming = False
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if self.client is not None:
            for payload, listener in self._listeners:
                self.client.removeListener(payload, listener)
        self._listeners = []
        d: Deferred[Any] = super().stopService() or succeed(None)

        def stopSimulator(_: Any) -> Any:
            simulator, self.simulator = self.simulator, None
            return simulator.stop() if simulator is not None else None

        def stopped(_: Any) -> None:
            self._log.info("Streaming stopped after {n} lines", n=self.written)
            self._say(f"stopped ({self.written} lines written)")
            self._finish(None)

        return d.addCallback(stopSimulator).addCallback(stopped)

    def _say(self, text: str) -> None:
        try:
            self.status.write(_STATUS_PREFIX + text + "\n")
            self.status.flush()
        except (OSError, ValueError):
            pass

    def _finish(self, why: str | None) -> None:
        if self._finished or self._error is not None:
            return
        self._finished = True
        self.streaming = False
        if why:
            self._log.info("Streaming done: {why}", why=why)
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.callback(None)

    def _fail(self, error: StreamError) -> None:
        if self._finished or self._error is not None:
            return
        self._error = error
        self.streaming = False
        self._log.error("Streaming failed: {error}", error=str(error))
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.errback(error)

    def _startFailed(self, failure: Failure) -> None:
        if self._stopping or not self.running:
            return
        error = failure.value
        if not isinstance(error, _EXPECTED) and _tlsProblem(error) is None:
            self._log.failure("Unexpected error while starting the stream", failure)
        self._fail(StreamError(describeError(error, self.host, self.port)))

    # --- starting --------------------------------------------------------------------

    async def _start(self) -> None:
        settings = self.settings
        reactor = self.reactor
        if settings.simulated:
            self.simulator, self.listening = startSimulator(reactor, settings.websocket, self.spotInterval)
            self.host = self.listening.host
            self.port = self.listening.wsPort if settings.websocket else self.listening.tlsPort
            credentials = Credentials(self.simulator.clientId, self.simulator.clientSecret, self.simulator.accessToken)
            trustRoot: Any = self.listening.caPEM
            self._say(
                f"SIMULATED DATA: no --host given, streaming from the bundled simulator on "
                f"{self.host}:{self.port} (no account, no network); every line has \"simulated\": true"
            )
        else:
            assert settings.credentials is not None and settings.host is not None
            credentials = settings.credentials
            trustRoot = settings.caFile
        transport = "WebSocket (wss)" if settings.websocket else "TLS TCP"
        self._log.info("Connecting to {host}:{port} over {transport}", host=self.host, port=self.port, transport=transport)
        self._say(f"connecting to {self.host}:{self.port} over {transport}")
        client = buildClient(
            reactor, self.host, self.port, credentials,
            websocket=settings.websocket, trustRoot=trustRoot, **self.clientOptions,
        )
        if credentials.refreshToken:
            client.setTokenRefresher(credentials.refreshToken, self._tokensRefreshed)
        self.client = client
        client.setReadyCallback(self._ready)
        client.setDisconnectedCallback(self._disconnected)
        client.setAccountLostCallback(self._accountLost)
        self.addService(client)  # starts it (this service is running)
        await connectClient(client, reactor, self.connectTimeout)
        if self._stopping:
            return
        self._log.info("Application authenticated on {host}:{port}", host=self.host, port=self.port)
        self.accountIds = await authorizeAccounts(client, credentials.accessToken, settings.accountIds)
        self._log.info("Accounts authorized: {accounts}", accounts=self.accountIds)
        marketAccount = self.accountIds[0]
        symbols: dict[int, dict[int, SymbolInfo]] = {}
        self.resolved, symbols[marketAccount] = await resolveSymbols(client, marketAccount, self.symbolNames)
        for accountId in self.accountIds[1:]:  # names for the execution events of the other accounts
            _, symbols[accountId] = await resolveSymbols(client, accountId, ())
        self._log.info("Symbols resolved: {symbols}", symbols=[(s.name, s.symbolId) for s in self.resolved])
        self.formatter = EventFormatter(symbols, settings.simulated, lambda: int(reactor.seconds() * 1000))
        for payload, listener in (
            ("ProtoOASpotEvent", self._onSpot),
            ("ProtoOADepthEvent", self._onDepth),
            ("ProtoOAExecutionEvent", self._onExecution),
            ("ProtoOAOrderErrorEvent", self._onOrderError),
        ):
            client.addListener(payload, listener)
            self._listeners.append((payload, listener))
        self.streaming = True
        ids = [s.symbolId for s in self.resolved]
        await client.request(
            "ProtoOASubscribeSpotsReq", ctidTraderAccountId=marketAccount, symbolId=ids, subscribeToSpotTimestamp=True
        )
        for period in self.periods:
            for symbolId in ids:
                await client.request(
                    "ProtoOASubscribeLiveTrendbarReq", ctidTraderAccountId=marketAccount, symbolId=symbolId, period=period
                )
        if self.depth:
            await client.request("ProtoOASubscribeDepthQuotesReq", ctidTraderAccountId=marketAccount, symbolId=ids)
        what = ["spots"]
        if self.periods:
            what.append("live bars " + ",".join(_enumName(ProtoOATrendbarPeriod, p) for p in self.periods))
        if self.depth:
            what.append("depth")
        names = ", ".join(s.name for s in self.resolved)
        accounts = ", ".join(str(a) for a in self.accountIds)
        self._log.info("Subscribed to {what} of {names}", what=what, names=names)
        self._say(
            f"streaming {names} ({'; '.join(what)}) through account {marketAccount}; "
            f"execution events of account(s) {accounts}"
        )

    # --- client callbacks ----------------------------------------------------------------

    def _ready(self, client: Client) -> None:
        self._readyCount += 1
        if self._readyCount > 1 and not self._stopping:
            self.reconnects += 1
            self._log.info("Session restored on {host}:{port} (reconnect {n})", host=self.host, port=self.port, n=self.reconnects)
            self._say(f"reconnected to {self.host}:{self.port}; session and subscriptions restored")

    def _disconnected(self, client: Client, reason: Failure) -> None:
        if self._stopping or self._readyCount == 0:
            return
        why = reason.getErrorMessage().strip().splitlines()[0] if reason.getErrorMessage().strip() else "no reason given"
        self._log.warn("Connection lost: {why}; reconnecting", why=why)
        self._say(f"connection to {self.host}:{self.port} lost ({why}); reconnecting")

    def _accountLost(self, client: Client, accountId: int, error: CTraderError) -> None:
        if not self.streaming:  # while starting, the failed authorization is the error reported
            return
        self._say(f"account {accountId} dropped by the server: {error}")
        if self.accountIds and accountId == self.accountIds[0] and not self._stopping:
            self._fail(StreamError(f"the market-data account {accountId} was dropped: {error}"))

    def _tokensRefreshed(self, client: Client, res: Any) -> None:
        # The new tokens are secrets: never shown. They live in memory only.
        self._say("access token refreshed (kept in memory for this run; store a new refresh token for the next)")

    # --- events ----------------------------------------------------------------------

    def _write(self, lines: list[dict[str, Any]]) -> None:
        if not self.streaming:
            return
        for line in lines:
            try:
                self.output.write(dumpJson(line) + "\n")
                self.output.flush()
            except BrokenPipeError:
                self._finish("output closed")
                return
            self.written += 1
            if self.count is not None and self.written >= self.count:
                self._finish(f"{self.count} lines written")
                return

    def _onSpot(self, event: Any) -> None:
        assert self.formatter is not None
        self._write(self.formatter.spot(event))

    def _onDepth(self, event: Any) -> None:
        assert self.formatter is not None
        self._write([self.formatter.depth(event)])

    def _onExecution(self, event: Any) -> None:
        assert self.formatter is not None
        self._write([self.formatter.execution(event)])

    def _onOrderError(self, event: Any) -> None:
        assert self.formatter is not None
        self._write([self.formatter.orderError(event)])
