# -*- test-case-name: tests.test_stream -*-
"""The library's main job: stream market data and account events as JSON lines.

:class:`StreamService` is an ``IService`` (a ``MultiService`` owning a
:class:`~ctrader_twisted.client.Client`, and the bundled simulator when no
host is given), run by the ``stream`` command (:func:`streamCommand`) and by
the twistd plugin (:mod:`ctrader_twisted.cli.tap`). On start it connects,
authenticates the application and the accounts, resolves the symbols by name
(:class:`~ctrader_twisted.cli.connect.Connection`), subscribes to spots (and
optionally live trend bars and depth) and writes every event as one JSON
object per line (:mod:`ctrader_twisted.cli.jsonlines`). Reconnecting and
restoring the session is the client's job: the service only reports it with
a one-line status.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any, Callable, Sequence, TextIO

from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, DeferredList, ensureDeferred, fail, succeed
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..client import Client
from ..errors import CTraderError
from ..messages.OpenApiModelMessages_pb2 import ProtoOATrendbarPeriod
from .config import Settings
from .connect import SIMULATOR_SPOT_INTERVAL, Connection
from .jsonlines import EventFormatter, SymbolInfo, dumpJson, enumName
from .options import openOutput, parsePeriod, periodNames, positiveNumber, splitNames
from .scaleout import redisSinks
from .status import EXIT_BROKEN_PIPE, EXIT_FAILURE, EXIT_OK, StreamError, isBrokenPipe, isExpected, say

if TYPE_CHECKING:
    from ..simulator import Simulator

__all__ = ["StreamService", "streamCommand"]


class StreamService(MultiService):
    """Connect, authenticate, subscribe, and write every event as a JSON line.

    :param settings: where to connect and as whom (``settings.host`` ``None``:
        start the bundled simulator in-process and say so).
    :param symbols: symbol names to stream spot prices of.
    :param output: text stream for the JSON lines (flushed per line), or
        ``None`` to write none (publishing to *sinks* only).
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
        ``retryPolicy``, ``endpoint``, ``clock``).
    :param sinks: more destinations of every event (``publishEvent(event,
        line)``, ``start()``, ``stop()``): :class:`~ctrader_twisted.redis.sink.RedisSink`.

    Market data is subscribed through the first account (``settings.accountIds``
    order, else the order the server lists them); execution events come from
    every authorized account.
    """

    _log = Logger()

    def __init__(
        self,
        settings: Settings,
        symbols: Sequence[str],
        output: TextIO | None,
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
        sinks: Sequence[Any] = (),
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
        self.output = output
        self.sinks = list(sinks)
        self.status = status
        self.reactor = reactor
        #: the simulator or the remote host, and the client connected there
        self.connection = Connection(
            reactor, settings, timeout=connectTimeout, spotInterval=spotInterval, clientOptions=clientOptions,
            status=status,
        )
        #: the client, once started
        self.client: Client | None = None
        self.accountIds: list[int] = []
        self.resolved: list[SymbolInfo] = []
        self.formatter: EventFormatter | None = None
        #: JSON lines written
        self.written = 0
        self.reconnects = 0
        self.streaming = False
        #: whether the reader of the output went away (a broken pipe)
        self.outputClosed = False
        self._error: StreamError | None = None
        self._finished = False
        self._stopping = False
        self._readyCount = 0
        self._waiters: list[Deferred[None]] = []
        self._timer: IDelayedCall | None = None
        self._listeners: list[tuple[str, Callable[[Any], Any]]] = []

    @property
    def simulator(self) -> Simulator | None:
        """The in-process simulator while it runs (simulated data), else ``None``."""
        return self.connection.simulator

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
        for sink in self.sinks:
            sink.start()
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

        def stopped(_: Any) -> None:
            self._log.info("Streaming stopped after {n} lines", n=self.written)
            self._say(f"stopped ({self.written} lines written)")
            self._finish(None)

        # The client is a child service, stopped by now: this stops the simulator.
        d.addCallback(lambda _: ensureDeferred(self.connection.close()))
        d.addCallback(lambda _: DeferredList([sink.stop() for sink in self.sinks]))
        return d.addCallback(stopped)

    def _say(self, text: str) -> None:
        say(self.status, text)

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
        if not isExpected(error):
            self._log.failure("Unexpected error while starting the stream", failure)
        self._fail(StreamError(self.connection.describe(error)))

    # --- starting --------------------------------------------------------------------

    async def _start(self) -> None:
        settings = self.settings
        connection = self.connection
        client = connection.start()
        where = connection.where
        if connection.inProcess:
            self._say(
                f"SIMULATED DATA: no --host given, streaming from the bundled simulator on "
                f"{where} (no account, no network); every line has \"simulated\": true"
            )
        self._log.info(
            "Connecting to {host}:{port} over {transport}",
            host=connection.host, port=connection.port, transport=connection.transport,
        )
        self._say(f"connecting to {where} over {connection.transport}")
        self.client = client
        client.setReadyCallback(self._ready)
        client.setDisconnectedCallback(self._disconnected)
        client.setAccountLostCallback(self._accountLost)
        self.addService(client)  # starts it (this service is running)
        await connection.connect()
        if self._stopping:
            return
        self._log.info("Application authenticated on {host}:{port}", host=connection.host, port=connection.port)
        notice = await connection.simulatorNotice()
        if notice:
            self._say(notice + '; every line has "simulated": true')
        if self._stopping:
            return
        self.accountIds = await connection.authorizeAccounts(settings.accountIds)
        self._log.info("Accounts authorized: {accounts}", accounts=self.accountIds)
        marketAccount = self.accountIds[0]
        symbols: dict[int, dict[int, SymbolInfo]] = {}
        self.resolved, symbols[marketAccount] = await connection.resolveSymbols(marketAccount, self.symbolNames)
        for accountId in self.accountIds[1:]:  # names for the execution events of the other accounts
            _, symbols[accountId] = await connection.resolveSymbols(accountId, ())
        self._log.info("Symbols resolved: {symbols}", symbols=[(s.name, s.symbolId) for s in self.resolved])
        self.formatter = EventFormatter(symbols, connection.simulated, lambda: int(self.reactor.seconds() * 1000))
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
            what.append("live bars " + ",".join(enumName(ProtoOATrendbarPeriod, p) for p in self.periods))
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
            connection = self.connection
            self._log.info(
                "Session restored on {host}:{port} (reconnect {n})",
                host=connection.host, port=connection.port, n=self.reconnects,
            )
            self._say(f"reconnected to {connection.where}; session and subscriptions restored")

    def _disconnected(self, client: Client, reason: Failure) -> None:
        if self._stopping or self._readyCount == 0:
            return
        why = reason.getErrorMessage().strip().splitlines()[0] if reason.getErrorMessage().strip() else "no reason given"
        self._log.warn("Connection lost: {why}; reconnecting", why=why)
        self._say(f"connection to {self.connection.where} lost ({why}); reconnecting")

    def _accountLost(self, client: Client, accountId: int, error: CTraderError) -> None:
        if not self.streaming:  # while starting, the failed authorization is the error reported
            return
        self._say(f"account {accountId} dropped by the server: {error}")
        if self.accountIds and accountId == self.accountIds[0] and not self._stopping:
            self._fail(StreamError(f"the market-data account {accountId} was dropped: {error}"))

    # --- events ----------------------------------------------------------------------

    def _write(self, lines: list[dict[str, Any]]) -> None:
        if not self.streaming:
            return
        for line in lines:
            text = dumpJson(line)
            if self.output is not None:
                try:
                    self.output.write(text + "\n")
                    self.output.flush()
                except OSError as error:
                    if not isBrokenPipe(error):
                        raise
                    # `... | head`: the reader has gone; not the server's fault.
                    self.outputClosed = True
                    self._finish("output closed")
                    return
            for sink in self.sinks:
                sink.publishEvent(line, text)
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


async def streamCommand(reactor: Any, args: argparse.Namespace, settings: Settings, stdout: TextIO, stderr: TextIO) -> int:
    """``ctrader-twisted stream``: run a :class:`StreamService` until it is done.

    Ctrl-C (or SIGTERM) stops the stream cleanly first.

    :returns: :data:`~ctrader_twisted.cli.status.EXIT_OK` when done (count,
        duration, interrupted), :data:`~ctrader_twisted.cli.status.EXIT_FAILURE`
        after a fatal error (reported on *stderr*),
        :data:`~ctrader_twisted.cli.status.EXIT_BROKEN_PIPE` when the reader
        of the output went away (``... | head``; nothing is said).
    :raises ~ctrader_twisted.cli.options.UsageError: a bad option value.
    """
    symbols = splitNames(args.symbols)
    trendbars = periodNames("trendbars", [args.trendbars] if args.trendbars else [])
    count = positiveNumber(int, "count", args.count)
    duration = positiveNumber(float, "duration", args.duration)
    spotInterval = positiveNumber(float, "sim-interval", args.simInterval)
    sinks = redisSinks(getattr(args, "redis", None), getattr(args, "redisMaxlen", None),
                       getattr(args, "redisPrefix", "ctrader"), reactor, stderr)
    if sinks and not args.output:
        output: TextIO | None = None  # --redis: JSON lines only with --output
    else:
        output = stdout if args.output in (None, "-") else openOutput(args.output, "a")
    service = StreamService(
        settings, symbols, output, stderr, reactor,
        trendbars=trendbars, depth=args.depth, count=count, duration=duration,
        connectTimeout=args.timeout, spotInterval=spotInterval, sinks=sinks,
    )
    trigger = reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
    service.startService()
    try:
        await service.whenDone()
        return EXIT_BROKEN_PIPE if service.outputClosed else EXIT_OK
    except StreamError as error:
        say(stderr, f"error: {error}")
        return EXIT_FAILURE
    finally:
        reactor.removeSystemEventTrigger(trigger)
        if service.running:
            await service.stopService()
        if output is not None and output is not stdout:
            output.close()
