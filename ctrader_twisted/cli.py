# -*- test-case-name: tests.test_cli -*-
"""The ``ctrader-twisted`` console command.

Subcommands::

    ctrader-twisted stream EURUSD XAUUSD [--trendbars M1] [--depth] [--count N]
    ctrader-twisted accounts
    ctrader-twisted symbols
    ctrader-twisted symbol EURUSD
    ctrader-twisted bars EURUSD --period M15 --from 2026-01-05 --to 2026-01-06
    ctrader-twisted simulator

With no ``--host`` (option, ``CTRADER_HOST`` or config file) every command
runs against the bundled simulator, in-process, and says so on stderr.
See ``docs/cli.rst``.

Exit status: 0 success, 1 a runtime failure (unreachable host, refused
credentials, certificate failure, unknown symbol, server error), 2 bad usage
or configuration.

:func:`main` is the console entry point (it runs the reactor with
``twisted.internet.task.react``); :func:`run` does the same work on a running
reactor and returns a Deferred exit status (tests, embedding).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import sys
from datetime import datetime, timezone
from typing import Any, NoReturn, Sequence, TextIO

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.logger import Logger

from ._version import __version__
from .client import Client
from .config import ConfigError, Credentials, Settings, loadSettings
from .errors import CTraderError
from .messages.OpenApiModelMessages_pb2 import ProtoOATrendbarPeriod
from .streamer import (
    SIMULATOR_SPOT_INTERVAL,
    StreamError,
    StreamService,
    authorizeAccounts,
    buildClient,
    connectClient,
    decimalPrice,
    describeError,
    isoTime,
    listAccounts,
    parsePeriod,
    resolveSymbols,
    startSimulator,
)

__all__ = ["main", "run", "buildParser", "TRENDBAR_WINDOW_MS", "EXIT_OK", "EXIT_FAILURE", "EXIT_USAGE"]

EXIT_OK = 0
#: unreachable host, refused credentials, certificate failure, unknown symbol, server error
EXIT_FAILURE = 1
#: bad arguments or configuration
EXIT_USAGE = 2

#: Longest window of one ``ProtoOAGetTrendbarsReq`` per period, ms (the server
#: answers INCORRECT_BOUNDARIES beyond; values of the official .NET SDK).
TRENDBAR_WINDOW_MS: dict[int, int] = {
    **{p: 302_400_000 for p in (1, 2, 3, 4, 5)},  # M1..M5: 3.5 days
    **{p: 21_168_000_000 for p in (6, 7, 8, 9)},  # M10..H1: 245 days
    **{p: 31_622_400_000 for p in (10, 11, 12)},  # H4, H12, D1: 366 days
    **{p: 158_112_000_000 for p in (13, 14)},  # W1, MN1: 1830 days
}
#: Minutes per period (W1 and MN1 approximate: used for defaults only).
_PERIOD_MINUTES = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 10, 7: 15, 8: 30, 9: 60, 10: 240, 11: 720, 12: 1440, 13: 10080, 14: 43200}

_log = Logger()


class _UsageError(Exception):
    """Bad arguments found after parsing (exit status 2)."""


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` that raises instead of exiting when embedded (:func:`run`)."""

    embedded = False

    def error(self, message: str) -> NoReturn:
        if self.embedded:
            raise _UsageError(f"{self.prog}: {message}")
        super().error(message)


def _connectionOptions() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    group = common.add_argument_group("connection (default: the bundled simulator, in-process)")
    group.add_argument("--host", help="server host, or 'demo' / 'live' (env CTRADER_HOST); no host: the simulator")
    group.add_argument("--port", type=int, help="server port (default 5035; env CTRADER_PORT)")
    group.add_argument("--websocket", action="store_true", default=None, help="use wss:// instead of TLS TCP")
    group.add_argument("--ca-file", dest="caFile", metavar="PEM", help="trust these CA certificates instead of the system's")
    group.add_argument("--config", metavar="PATH", help="TOML config file (default ~/.config/ctrader-twisted/config.toml)")
    group.add_argument("--account", dest="accounts", metavar="ID[,ID...]",
                       help="account id(s) (env CTRADER_ACCOUNT_ID; default: every account of the token)")
    group.add_argument("--timeout", type=float, default=30.0, metavar="S", help="seconds allowed to connect (30)")
    secrets = common.add_argument_group(
        "credentials (prefer the environment or the config file: options show in `ps` and shell history)"
    )
    secrets.add_argument("--client-id", dest="clientId", metavar="ID", help="env CTRADER_CLIENT_ID")
    secrets.add_argument("--client-secret", dest="clientSecret", metavar="SECRET", help="env CTRADER_CLIENT_SECRET")
    secrets.add_argument("--access-token", dest="accessToken", metavar="TOKEN", help="env CTRADER_ACCESS_TOKEN")
    secrets.add_argument("--refresh-token", dest="refreshToken", metavar="TOKEN", help="env CTRADER_REFRESH_TOKEN")
    common.add_argument("-v", "--verbose", action="count", default=0, help="log steps to stderr (-vv: debug)")
    return common


def buildParser() -> argparse.ArgumentParser:
    """The ``ctrader-twisted`` argument parser."""
    parser = _Parser(
        prog="ctrader-twisted",
        description="Stream cTrader Open API market data and account events as JSON lines, "
        "and small one-shot commands. Without --host everything runs against the bundled simulator.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    common: Any = _connectionOptions()
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser)

    stream = sub.add_parser("stream", parents=[common], help="stream spots (and bars, depth, executions) as JSON lines",
                            description="Stream every event as one JSON object per line (see docs/cli.rst).")
    stream.add_argument("symbols", nargs="+", metavar="SYMBOL", help="symbol names, e.g. EURUSD (commas allowed)")
    stream.add_argument("--trendbars", metavar="PERIOD[,PERIOD...]", help="also live trend bars, e.g. M1 or M1,H1")
    stream.add_argument("--depth", action="store_true", help="also depth-of-market quotes")
    stream.add_argument("--output", "-o", metavar="FILE", help="append the JSON lines to FILE (default stdout)")
    stream.add_argument("--count", type=int, metavar="N", help="stop after N lines")
    stream.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    stream.add_argument("--sim-interval", dest="simInterval", type=float, default=SIMULATOR_SPOT_INTERVAL, metavar="S",
                        help=f"simulator only: seconds between price ticks ({SIMULATOR_SPOT_INTERVAL})")

    sub.add_parser("accounts", parents=[common], help="list the accounts of the access token")
    sub.add_parser("symbols", parents=[common], help="list the symbols of an account")
    symbol = sub.add_parser("symbol", parents=[common], help="show one symbol's specification")
    symbol.add_argument("name", metavar="NAME")

    bars = sub.add_parser("bars", parents=[common], help="historical trend bars as CSV",
                          description="Fetch trend bars of [--from, --to) as CSV (time,open,high,low,close,volume); "
                          "long ranges are split into the windows the server allows.")
    bars.add_argument("name", metavar="NAME")
    bars.add_argument("--period", default="H1", help="M1, M5, M15, H1, H4, D1, W1, MN1... (default H1)")
    bars.add_argument("--from", dest="start", metavar="ISO", help="start, ISO 8601 (UTC when no offset; default: 100 bars back)")
    bars.add_argument("--to", dest="end", metavar="ISO", help="end, ISO 8601 (default now)")
    bars.add_argument("--output", "-o", metavar="FILE", help="write the CSV to FILE (default stdout)")

    # Everything after "simulator" goes to the simulator's own options
    # (python -m ctrader_twisted.simulator); this entry is for --help.
    sub.add_parser("simulator", add_help=False, help="run the bundled simulator as a local server "
                   "(options: ctrader-twisted simulator --help)")
    return parser


def _settings(args: argparse.Namespace, environ: Any) -> Settings:
    options = {name: getattr(args, name, None) for name in (
        "host", "port", "websocket", "caFile", "clientId", "clientSecret", "accessToken", "refreshToken", "accounts")}
    return loadSettings(options, environ, args.config)


def _say(stream: TextIO, text: str) -> None:
    stream.write(f"ctrader-twisted: {text}\n")
    stream.flush()


def _splitNames(values: Sequence[str]) -> list[str]:
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


def _parseTime(text: str, what: str) -> int:
    """ISO 8601 date or date-time (UTC unless an offset is given) in ms."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise _UsageError(f"{what} must be an ISO 8601 date or date-time, e.g. 2026-01-05T10:00:00Z") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1000)


class _Session:
    """A connected client for a one-shot command (and the simulator behind it)."""

    def __init__(self, reactor: Any, settings: Settings, stderr: TextIO, timeout: float) -> None:
        self.reactor = reactor
        self.settings = settings
        self.stderr = stderr
        self.timeout = timeout
        self.simulator: Any = None
        self.client: Client | None = None
        self.host = settings.host or "localhost"
        self.port = settings.port
        self.credentials = settings.credentials

    async def open(self) -> Client:
        settings = self.settings
        trustRoot: Any = settings.caFile
        if settings.simulated:
            self.simulator, listening = startSimulator(self.reactor, settings.websocket)
            self.host = listening.host
            self.port = listening.wsPort if settings.websocket else listening.tlsPort
            trustRoot = listening.caPEM
            sim = self.simulator
            self.credentials = Credentials(sim.clientId, sim.clientSecret, sim.accessToken)
            _say(self.stderr, f"SIMULATED DATA: no --host given, using the bundled simulator on {self.host}:{self.port}")
        assert self.credentials is not None
        self.client = buildClient(
            self.reactor, self.host, self.port, self.credentials, websocket=settings.websocket, trustRoot=trustRoot
        )
        await connectClient(self.client, self.reactor, self.timeout)
        return self.client

    async def close(self) -> None:
        if self.client is not None:
            await self.client.stopService()
        if self.simulator is not None:
            await self.simulator.stop()


async def _stream(reactor: Any, args: argparse.Namespace, settings: Settings, stdout: TextIO, stderr: TextIO) -> int:
    symbols = _splitNames(args.symbols)
    trendbars = _splitNames([args.trendbars]) if args.trendbars else []
    for period in trendbars:
        try:
            parsePeriod(period)
        except ValueError as error:
            raise _UsageError(f"--trendbars: {error}") from None
    if args.count is not None and args.count < 1:
        raise _UsageError("--count must be at least 1")
    if args.duration is not None and args.duration <= 0:
        raise _UsageError("--duration must be positive")
    if args.simInterval <= 0:
        raise _UsageError("--sim-interval must be positive")
    output: TextIO = stdout
    if args.output:
        try:
            output = open(args.output, "a", encoding="utf-8", buffering=1)
        except OSError as error:
            raise _UsageError(f"cannot open {args.output}: {error.strerror or error}") from None
    service = StreamService(
        settings, symbols, output, stderr, reactor,
        trendbars=trendbars, depth=args.depth, count=args.count, duration=args.duration,
        connectTimeout=args.timeout, spotInterval=args.simInterval,
    )
    # Ctrl-C (or SIGTERM) stops the reactor: stop the stream cleanly first.
    trigger = reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
    service.startService()
    try:
        await service.whenDone()
        return EXIT_OK
    except StreamError as error:
        _say(stderr, f"error: {error}")
        return EXIT_FAILURE
    finally:
        reactor.removeSystemEventTrigger(trigger)
        if service.running:
            await service.stopService()
        if output is not stdout:
            output.close()


async def _accounts(session: _Session, args: argparse.Namespace, stdout: TextIO) -> int:
    client = await session.open()
    assert session.credentials is not None
    accounts = await listAccounts(client, session.credentials.accessToken)
    rows = [("account", "live", "login", "broker")]
    for account in accounts:
        rows.append((
            str(account.ctidTraderAccountId),
            "yes" if account.isLive else "no",
            str(account.traderLogin) if account.HasField("traderLogin") else "",
            account.brokerTitleShort,
        ))
    _table(stdout, rows)
    return EXIT_OK


def _table(stream: TextIO, rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        stream.write("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() + "\n")
    stream.flush()


async def _firstAccount(session: _Session, client: Client) -> int:
    assert session.credentials is not None
    ids = await authorizeAccounts(client, session.credentials.accessToken, session.settings.accountIds[:1])
    return ids[0]


async def _symbols(session: _Session, args: argparse.Namespace, stdout: TextIO) -> int:
    client = await session.open()
    accountId = await _firstAccount(session, client)
    listing = await client.request("ProtoOASymbolsListReq", ctidTraderAccountId=accountId)
    rows = [("id", "name", "enabled", "description")]
    for symbol in sorted(listing.symbol, key=lambda s: s.symbolName):
        rows.append((str(symbol.symbolId), symbol.symbolName, "yes" if symbol.enabled else "no", symbol.description))
    _table(stdout, rows)
    return EXIT_OK


#: ProtoOASymbol fields in cents of a unit (shown in units).
_VOLUME_FIELDS = frozenset({"maxVolume", "minVolume", "stepVolume", "maxExposure", "lotSize"})


async def _symbol(session: _Session, args: argparse.Namespace, stdout: TextIO) -> int:
    client = await session.open()
    accountId = await _firstAccount(session, client)
    listing = await client.request("ProtoOASymbolsListReq", ctidTraderAccountId=accountId)
    resolved, _ = await resolveSymbols(client, accountId, [args.name])
    info = resolved[0]
    light = next(s for s in listing.symbol if s.symbolId == info.symbolId)
    full = await client.request("ProtoOASymbolByIdReq", ctidTraderAccountId=accountId, symbolId=[info.symbolId])
    spec = full.symbol[0]
    lines = [("name", light.symbolName), ("description", light.description), ("account", str(accountId))]
    for descriptor, value in light.ListFields():
        if descriptor.name not in ("symbolName", "description"):
            lines.append((descriptor.name, _fieldText(descriptor, value)))
    for descriptor, value in spec.ListFields():
        if descriptor.name == "symbolId":
            continue
        if descriptor.name in _VOLUME_FIELDS:
            lines.append((descriptor.name, f"{_unitsText(int(value))} units"))
        elif descriptor.is_repeated and descriptor.message_type is not None:
            lines.append((descriptor.name, f"{len(value)} entries"))
        else:
            lines.append((descriptor.name, _fieldText(descriptor, value)))
    width = max(len(name) for name, _ in lines)
    for name, text in lines:
        stdout.write(f"{name.ljust(width)}  {text}\n")
    stdout.flush()
    return EXIT_OK


def _unitsText(cents: int) -> str:
    return str(cents // 100) if cents % 100 == 0 else f"{cents / 100:.2f}"


def _fieldText(descriptor: Any, value: Any) -> str:
    if descriptor.enum_type is not None:
        return str(descriptor.enum_type.values_by_number[value].name if value in descriptor.enum_type.values_by_number else value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


async def _bars(session: _Session, args: argparse.Namespace, stdout: TextIO) -> int:
    try:
        period = parsePeriod(args.period)
    except ValueError as error:
        raise _UsageError(f"--period: {error}") from None
    end = _parseTime(args.end, "--to") if args.end else int(session.reactor.seconds() * 1000)
    start = _parseTime(args.start, "--from") if args.start else end - 100 * _PERIOD_MINUTES[period] * 60_000
    if start >= end:
        raise _UsageError("--from must be before --to")
    output: TextIO = stdout
    if args.output:
        try:
            output = open(args.output, "w", encoding="utf-8", newline="")
        except OSError as error:
            raise _UsageError(f"cannot open {args.output}: {error.strerror or error}") from None
    try:
        client = await session.open()
        accountId = await _firstAccount(session, client)
        resolved, _ = await resolveSymbols(client, accountId, [args.name])
        info = resolved[0]
        bars = await fetchTrendbars(client, accountId, info.symbolId, period, start, end)
        digits = info.digits if info.digits is not None else 5
        writer = csv.writer(output, lineterminator="\n")
        writer.writerow(["time", "open", "high", "low", "close", "volume"])
        for bar in bars:
            low = int(bar.low)
            writer.writerow([
                isoTime(int(bar.utcTimestampInMinutes) * 60_000),
                decimalPrice(low + int(bar.deltaOpen), digits),
                decimalPrice(low + int(bar.deltaHigh), digits),
                decimalPrice(low, digits),
                decimalPrice(low + int(bar.deltaClose), digits),
                int(bar.volume),
            ])
        output.flush()
        name = ProtoOATrendbarPeriod.Name(period)
        _say(session.stderr, f"{len(bars)} {name} bars of {info.name} from {isoTime(start)} to {isoTime(end)}")
    finally:
        if output is not stdout:
            output.close()
    return EXIT_OK


async def fetchTrendbars(client: Client, accountId: int, symbolId: int, period: int, start: int, end: int) -> list[Any]:
    """Every trend bar of [*start*, *end*) (ms), oldest first.

    The range is cut into the longest windows the server accepts for
    *period* (:data:`TRENDBAR_WINDOW_MS`); a window answered with ``hasMore``
    is asked again for the part before its oldest bar. The client paces the
    requests at the historical rate limit.
    """
    window = TRENDBAR_WINDOW_MS[period]
    found: dict[int, Any] = {}
    chunkStart = start
    while chunkStart < end:
        chunkEnd = min(end, chunkStart + window)
        upper = chunkEnd
        while upper > chunkStart:
            res = await client.request(
                "ProtoOAGetTrendbarsReq", ctidTraderAccountId=accountId, symbolId=symbolId, period=period,
                fromTimestamp=chunkStart, toTimestamp=upper,
            )
            times = [int(bar.utcTimestampInMinutes) * 60_000 for bar in res.trendbar]
            for bar, ms in zip(res.trendbar, times):
                if start <= ms < end:
                    found[ms] = bar
            if not (res.hasMore and times) or min(times) >= upper:
                break
            upper = min(times)
        chunkStart = chunkEnd
    return [found[ms] for ms in sorted(found)]


async def _simulator(reactor: Any, argv: Sequence[str], stdout: TextIO, stderr: TextIO) -> int:
    """``ctrader-twisted simulator ARGS``: the simulator's own entry point, on a
    running reactor, until the reactor stops."""
    from twisted.python import usage

    from .simulator.tap import Options as SimulatorOptions, SimulatorService, describe

    options = SimulatorOptions()
    try:
        with contextlib.redirect_stdout(stdout):  # usage.Options prints --help there
            options.parseOptions(list(argv))
    except usage.UsageError as error:
        stderr.write(f"{options}\nctrader-twisted simulator: error: {error}\n")
        return EXIT_USAGE
    except SystemExit as exit:  # --help
        return int(exit.code or 0)
    service = SimulatorService(options, reactor)
    try:
        service.startService()
    except Exception as error:  # CannotListenError, unreadable certificate files
        _say(stderr, f"error: cannot start the simulator: {error}")
        return EXIT_FAILURE
    certDir = None if options["certificate"] else options["cert-dir"]
    stdout.write(describe(service.simulator, service.listening, certDir) + "\n")
    stdout.write("  (simulator credentials: they work only here; Ctrl-C stops)\n")
    stdout.flush()
    stopped: Deferred[None] = Deferred()

    def stop() -> Deferred[None]:
        return service.stopService().addBoth(lambda _: stopped.callback(None) if not stopped.called else None)

    reactor.addSystemEventTrigger("before", "shutdown", stop)
    await stopped
    return EXIT_OK


async def _execute(
    reactor: Any, args: argparse.Namespace, stdout: TextIO, stderr: TextIO, environ: Any
) -> int:
    settings = _settings(args, environ)
    for warning in settings.warnings:
        _say(stderr, f"warning: {warning}")
    if args.timeout <= 0:
        raise _UsageError("--timeout must be positive")
    if args.command == "stream":
        return await _stream(reactor, args, settings, stdout, stderr)
    session = _Session(reactor, settings, stderr, args.timeout)
    handlers = {"accounts": _accounts, "symbols": _symbols, "symbol": _symbol, "bars": _bars}
    try:
        return await handlers[args.command](session, args, stdout)
    except (_UsageError, ConfigError):
        raise
    except (StreamError, CTraderError, ConnectionError) as error:
        _say(stderr, f"error: {describeError(error, session.host, session.port)}")
        return EXIT_FAILURE
    except Exception as error:
        # Twisted connection errors, TLS errors: one line, no traceback.
        _log.debug("Command failed: {error!r}", error=error)
        _say(stderr, f"error: {describeError(error, session.host, session.port)}")
        return EXIT_FAILURE
    finally:
        await session.close()


def run(
    reactor: Any,
    argv: Sequence[str],
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    environ: Any = None,
) -> Deferred[int]:
    """Run a ``ctrader-twisted`` command line on a running reactor.

    :returns: a Deferred firing with the exit status; every error is reported
        on *stderr* as one line.
    """
    stdout = sys.stdout if stdout is None else stdout
    stderr = sys.stderr if stderr is None else stderr
    environ = os.environ if environ is None else environ
    parser = buildParser()
    _embed(parser)

    async def go() -> int:
        if list(argv[:1]) == ["simulator"]:
            return await _simulator(reactor, argv[1:], stdout, stderr)
        try:
            args = parser.parse_args(list(argv))
        except _UsageError as error:
            stderr.write(f"{error}\n")
            return EXIT_USAGE
        except SystemExit as exit:  # --help, --version
            return int(exit.code or 0)
        try:
            return await _execute(reactor, args, stdout, stderr, environ)
        except (_UsageError, ConfigError) as error:
            _say(stderr, f"error: {error}")
            return EXIT_USAGE

    return ensureDeferred(go())


def _embed(parser: argparse.ArgumentParser) -> None:
    """Make *parser* and its subparsers raise instead of exiting."""
    if isinstance(parser, _Parser):
        parser.embedded = True
    for action in parser._actions:  # noqa: SLF001 (argparse keeps subparsers there)
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _embed(child)


def _beginLogging(verbosity: int, stream: TextIO) -> None:
    from twisted.logger import (
        FilteringLogObserver,
        LogLevel,
        LogLevelFilterPredicate,
        globalLogBeginner,
        textFileLogObserver,
    )

    level = {0: LogLevel.critical, 1: LogLevel.info}.get(verbosity, LogLevel.debug)
    observer = FilteringLogObserver(textFileLogObserver(stream), [LogLevelFilterPredicate(defaultLogLevel=level)])
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Console entry point: parse *argv* (``sys.argv[1:]``), run, exit with the status."""
    from twisted.internet.task import react

    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["simulator"]:
        from .simulator.__main__ import main as simulatorMain

        simulatorMain(argv[1:])
        raise SystemExit(EXIT_OK)
    parser = buildParser()
    args = parser.parse_args(argv)  # exits with status 2 and a one-line message on bad usage
    _beginLogging(args.verbose, sys.stderr)

    async def go(reactor: Any) -> None:
        try:
            code = await _execute(reactor, args, sys.stdout, sys.stderr, os.environ)
        except (_UsageError, ConfigError) as error:
            _say(sys.stderr, f"error: {error}")
            code = EXIT_USAGE
        raise SystemExit(code)

    react(go)


if __name__ == "__main__":
    main()
