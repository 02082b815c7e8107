# -*- test-case-name: tests.test_cli -*-
"""The ``ctrader-twisted`` console command.

Subcommands::

    ctrader-twisted stream EURUSD XAUUSD [--trendbars M1] [--depth] [--count N]
    ctrader-twisted accounts
    ctrader-twisted symbols
    ctrader-twisted symbol EURUSD
    ctrader-twisted bars EURUSD --period M15 --from 2026-01-05 --to 2026-01-06 -o eurusd.csv
    ctrader-twisted ticks EURUSD --from 2026-01-05T10:00 --to 2026-01-05T11:00 --format jsonl
    ctrader-twisted deals [ACCOUNT] --from 2026-01-01 -o deals.parquet
    ctrader-twisted cashflow [ACCOUNT] --from 2026-01-01
    ctrader-twisted login
    ctrader-twisted simulator
    ctrader-twisted consume --redis URL --group NAME --account ID

With no ``--host`` (option, ``CTRADER_HOST`` or config file) every command
runs against the bundled simulator, in-process, and says so on stderr.
See the "Command line" page of the documentation (``docs/cli.rst``; its
address is in the package metadata, and ``--help`` shows it).

Exit status: 0 success, 1 a runtime failure (unreachable host, refused
credentials, certificate failure, unknown symbol, server error), 2 bad usage
or configuration, 130 a history download interrupted by Ctrl-C, 141 the
reader of stdout went away (``... | head``; nothing is said).

:func:`main` is the console entry point (it runs the reactor with
``twisted.internet.task.react``); :func:`run` does the same work on a running
reactor and returns a Deferred exit status (tests, embedding).

This module holds the argument parser and the dispatch; the rest of the
package:

* :mod:`~ctrader_twisted.cli.config`: settings and credentials from options,
  environment and config file;
* :mod:`~ctrader_twisted.cli.options`: checks of option values, shared with
  the twistd plugin;
* :mod:`~ctrader_twisted.cli.connect`: the simulator or a remote host, one
  connection path for every command;
* :mod:`~ctrader_twisted.cli.stream`: the ``stream`` command and its service;
* :mod:`~ctrader_twisted.cli.commands`: ``accounts``, ``symbols``, ``symbol``
  (tables or ``--json``), ``simulator`` (and the ``ctrader-simulator`` script);
* :mod:`~ctrader_twisted.cli.specs`: a symbol's specification in the units
  people use (``symbol``);
* :mod:`~ctrader_twisted.cli.history`: ``bars``, ``ticks``, ``deals``, ``cashflow``;
* :mod:`~ctrader_twisted.cli.login`: ``login`` (OAuth in the browser, tokens
  kept in the token file);
* :mod:`~ctrader_twisted.cli.jsonlines`: JSON lines, prices and times;
* :mod:`~ctrader_twisted.cli.status`: status lines, error descriptions, exit
  statuses;
* :mod:`~ctrader_twisted.cli.tap`: the ``twistd ctrader`` plugin.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Awaitable, Callable, NoReturn, Sequence, TextIO

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.logger import Logger

from .._version import __version__
from ..errors import CTraderError
from . import commands, history, login
from .config import ConfigError, Settings, loadSettings
from .connect import SIMULATOR_SPOT_INTERVAL, Connection
from .options import UsageError, portNumber, positiveNumber
from .scaleout import addConsumeParser, addRedisOptions, consumeCommand
from .status import (
    EXIT_BROKEN_PIPE,
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    PROG,
    StreamError,
    docsUrl,
    isBrokenPipe,
    say,
)
from .stream import streamCommand

__all__ = ["main", "simulatorMain", "run", "buildParser", "EXIT_OK", "EXIT_FAILURE", "EXIT_USAGE", "EXIT_BROKEN_PIPE"]

_log = Logger()


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` that raises instead of exiting when embedded (:func:`run`)."""

    embedded = False

    def error(self, message: str) -> NoReturn:
        if self.embedded:
            raise UsageError(f"{self.prog}: {message}")
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
    secrets.add_argument("--token-file", dest="tokenFile", metavar="PATH",
                         help="where `login` and refreshes keep the tokens (env CTRADER_TOKEN_FILE; "
                         "default ~/.config/ctrader-twisted/tokens.json)")
    common.add_argument("-v", "--verbose", action="count", default=0, help="log steps to stderr (-vv: debug)")
    return common


def buildParser() -> argparse.ArgumentParser:
    """The ``ctrader-twisted`` argument parser."""
    parser = _Parser(
        prog=PROG,
        description="Stream cTrader Open API market data and account events as JSON lines, "
        "and small one-shot commands. Without --host everything runs against the bundled simulator.",
        epilog=f"Documentation: {docsUrl('cli')}",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    common: Any = _connectionOptions()
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser)

    stream = sub.add_parser("stream", parents=[common], help="stream spots (and bars, depth, executions) as JSON lines",
                            description="Stream every event as one JSON object per line "
                            f"(format: {docsUrl('cli', 'output-format')}).")
    stream.add_argument("symbols", nargs="+", metavar="SYMBOL", help="symbol names, e.g. EURUSD (commas allowed)")
    stream.add_argument("--trendbars", metavar="PERIOD[,PERIOD...]", help="also live trend bars, e.g. M1 or M1,H1")
    stream.add_argument("--depth", action="store_true", help="also depth-of-market quotes")
    stream.add_argument("--output", "-o", metavar="FILE", help="append the JSON lines to FILE (default stdout)")
    stream.add_argument("--count", type=int, metavar="N", help="stop after N lines")
    stream.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    stream.add_argument("--sim-interval", dest="simInterval", type=float, default=SIMULATOR_SPOT_INTERVAL, metavar="S",
                        help=f"simulator only: seconds between price ticks ({SIMULATOR_SPOT_INTERVAL})")
    addRedisOptions(stream)

    jsonHelp = f"one JSON document instead of a table (keys: {docsUrl('cli', 'one-shot-json')})"
    accounts = sub.add_parser("accounts", parents=[common], help="list the accounts of the access token")
    accounts.add_argument("--json", action="store_true", help=jsonHelp)
    symbols = sub.add_parser("symbols", parents=[common], help="list the symbols of an account")
    symbols.add_argument("--json", action="store_true", help=jsonHelp)
    symbol = sub.add_parser("symbol", parents=[common], help="show one symbol's specification")
    symbol.add_argument("name", metavar="NAME")
    symbol.add_argument("--json", action="store_true", help=jsonHelp)

    history.addHistoryParsers(sub, common)

    login.addParser(sub, common)
    addConsumeParser(sub)

    simulator = sub.add_parser("simulator", help="run the bundled simulator as a local server",
                               description=_SIMULATOR_DESCRIPTION, epilog=f"Documentation: {docsUrl('simulator')}")
    _addSimulatorOptions(simulator)
    return parser


_SIMULATOR_DESCRIPTION = (
    "Run a local cTrader Open API simulator: TLS TCP and wss:// listeners with real semantics "
    "(auth, symbols, spots, trend bars, trading) for offline development and tests. It prints its "
    "ports, the CA file to trust and its own credentials. Ports: 0 picks a free port, 'none' disables one."
)


def _addSimulatorOptions(parser: argparse.ArgumentParser) -> None:
    commands.addSimulatorArguments(parser)
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log to stderr (-vv: debug)")


def buildSimulatorParser(prog: str = "ctrader-simulator") -> argparse.ArgumentParser:
    """The parser of the ``ctrader-simulator`` script (the options of
    ``ctrader-twisted simulator``, and ``--version``)."""
    parser = _Parser(prog=prog, description=_SIMULATOR_DESCRIPTION, epilog=f"Documentation: {docsUrl('simulator')}")
    _addSimulatorOptions(parser)
    return parser


def _settings(args: argparse.Namespace, environ: Any) -> Settings:
    return loadSettings(_options(args), environ, args.config)


def _options(args: argparse.Namespace) -> dict[str, Any]:
    options = {name: getattr(args, name, None) for name in (
        "host", "websocket", "caFile", "clientId", "clientSecret", "accessToken", "refreshToken", "accounts",
        "tokenFile")}
    options["port"] = portNumber(args.port)
    return options


_Handler = Callable[[Connection, argparse.Namespace, TextIO, TextIO], Awaitable[int]]

#: The one-shot commands: they connect, answer and disconnect.
_ONE_SHOT: dict[str, _Handler] = {
    "accounts": commands.accounts,
    "symbols": commands.symbols,
    "symbol": commands.symbol,
    "bars": history.bars,
    "ticks": history.ticks,
    "deals": history.deals,
    "cashflow": history.cashflow,
}


async def _execute(reactor: Any, args: argparse.Namespace, stdout: TextIO, stderr: TextIO, environ: Any) -> int:
    """Run a parsed command line; every error is one line on *stderr*."""
    try:
        if args.command == "simulator":
            return await commands.simulator(reactor, args, stdout, stderr)
        if args.command == "login":
            return await login.login(reactor, args, _options(args), environ, stdout, stderr)
        if args.command == "consume":
            return await consumeCommand(reactor, args, stdout, stderr)
        settings = _settings(args, environ)
        for warning in settings.warnings:
            say(stderr, f"warning: {warning}")
        timeout = positiveNumber(float, "timeout", args.timeout)
        if args.command == "stream":
            return await streamCommand(reactor, args, settings, stdout, stderr)
        return await _oneShot(Connection(reactor, settings, timeout=timeout, status=stderr), args, stdout, stderr)
    except (UsageError, ConfigError) as error:
        say(stderr, f"error: {error}")
        return EXIT_USAGE


async def _oneShot(connection: Connection, args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    try:
        return await _ONE_SHOT[args.command](connection, args, stdout, stderr)
    except (UsageError, ConfigError):
        raise
    except Exception as error:
        if isBrokenPipe(error):
            return EXIT_BROKEN_PIPE  # `... | head`: the reader has gone; not the server's fault
        if not isinstance(error, (StreamError, CTraderError, ConnectionError)):
            # Twisted connection errors, TLS errors: one line, no traceback.
            _log.debug("Command failed: {error!r}", error=error)
        say(stderr, f"error: {connection.describe(error)}")
        return EXIT_FAILURE
    finally:
        await connection.close()


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
        try:
            args = parser.parse_args(list(argv))
        except UsageError as error:
            stderr.write(f"{error}\n")
            return EXIT_USAGE
        except SystemExit as exit:  # --help, --version
            return int(exit.code or 0)
        return await _execute(reactor, args, stdout, stderr, environ)

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
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = buildParser()
    args = parser.parse_args(argv)  # exits with status 2 and a one-line message on bad usage
    _runMain(args)


def simulatorMain(argv: Sequence[str] | None = None) -> NoReturn:
    """The ``ctrader-simulator`` script: ``ctrader-twisted simulator`` under
    its own name (same options, same messages)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = buildSimulatorParser().parse_args(argv)
    args.command = "simulator"
    try:
        commands.simulatorOptions(args)  # bad values: before the reactor starts
    except UsageError as error:
        say(sys.stderr, f"error: {error}")
        raise SystemExit(EXIT_USAGE) from None
    _runMain(args)


def _runMain(args: argparse.Namespace) -> NoReturn:
    from twisted.internet.task import react

    _beginLogging(args.verbose, sys.stderr)

    async def go(reactor: Any) -> None:
        status = await _execute(reactor, args, sys.stdout, sys.stderr, os.environ)
        if status == EXIT_BROKEN_PIPE:
            _silenceStdout()
        raise SystemExit(status)

    react(go)


def _silenceStdout() -> None:
    """Point stdout at /dev/null: its reader has gone, and the interpreter's
    last flush would otherwise print an ``Exception ignored`` message."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass

