# -*- test-case-name: tests.test_tap -*-
"""The ``twistd ctrader`` plugin: options and service.

::

    twistd -n ctrader --symbols EURUSD,XAUUSD [--host demo] [--websocket]
        [--account ID[,ID]] [--trendbars M1] [--depth] [--output FILE]
        [--ca-file PEM] [--config PATH] [--token-file PATH] [--count N] [--duration S]
        [--redis URL [--redis-maxlen KIND=N,...] [--group NAME [--lease S]]] [-v]

Without a host it streams from the bundled simulator, in-process. With a
host, tokens come from the token file when it holds newer ones than the
configuration (``ctrader-twisted login`` writes it), and refreshed tokens are
written back to it. JSON lines
go to stdout (or ``--output``); status lines to stderr.

Who writes what on stderr: the status lines (:func:`~ctrader_twisted.cli.status.say`)
tell the user what happens, once each. When twistd would log to stdout
(``-n`` without ``--logfile``), its log goes to stderr instead
(:func:`stderrLogObserver`), so stdout stays pure JSON lines, and it shows
only critical events (tracebacks of bugs) unless ``-v`` (info) or ``-vv``
(debug) asks for more, as the console command does: the log would otherwise
repeat every status line. ``--logfile FILE`` gets the whole log.

A bad option is one line (``ctrader-twisted: error: ...``, with a hint to
``twistd ctrader --help``) and exit status 2, not twistd's whole usage text;
``twistd ctrader --version`` prints ctrader-twisted's version.

twistd has no way for a service to choose the exit status: on a fatal error
(unknown symbol, refused credentials, unreachable host, certificate failure)
the service prints one line, stops the reactor, and the process exits with
status 1 once twistd has finished (see :func:`_exitStatusAtExit`).
"""

from __future__ import annotations

import atexit
import os
import sys
from typing import Any, Callable, TextIO

from twisted.application.service import IService
from twisted.internet.error import ReactorNotRunning
from twisted.logger import (
    FilteringLogObserver,
    ILogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    textFileLogObserver,
)
from twisted.python import usage
from twisted.python.failure import Failure

from .._version import __version__
from .config import ConfigError, Settings, loadSettings
from .options import UsageError, openOutput, periodNames, portNumber, positiveNumber, splitNames
from .scaleout import checkRedisOptions, redisSinks
from .status import EXIT_BROKEN_PIPE, EXIT_FAILURE, EXIT_USAGE, docsUrl, say
from .stream import StreamService

__all__ = ["Options", "makeService", "stopWhenDone", "stderrLogObserver"]


#: ``-v`` given how many times to the last :class:`Options` parsed (twistd
#: builds its log observer from a name, without arguments).
_verbosity: list[int] = [0]


def stderrLogObserver() -> ILogObserver:
    """twistd ``--logger`` factory: log to stderr (keeps stdout for JSON lines).

    Critical events only (tracebacks of bugs), since the status lines already
    say what happens; info with ``-v``, debug with ``-vv``.
    """
    level = {0: LogLevel.critical, 1: LogLevel.info}.get(_verbosity[0], LogLevel.debug)
    return FilteringLogObserver(
        textFileLogObserver(sys.__stderr__ or sys.stderr), [LogLevelFilterPredicate(defaultLogLevel=level)]
    )


class Options(usage.Options):
    """Options of ``twistd ctrader`` (validated in :meth:`postOptions`)."""

    synopsis = "--symbols EURUSD[,XAUUSD...] [options]"
    longdesc = (
        "Stream cTrader Open API spot prices (and optionally live trend bars and depth) and the "
        "execution events of the accounts as JSON lines. Without --host (or CTRADER_HOST, or host "
        "in the config file) the data comes from the bundled simulator and every line says "
        '"simulated": true. Credentials: prefer the environment (CTRADER_CLIENT_ID, '
        "CTRADER_CLIENT_SECRET, CTRADER_ACCESS_TOKEN, CTRADER_REFRESH_TOKEN, CTRADER_ACCOUNT_ID) or "
        f"the config file (~/.config/ctrader-twisted/config.toml): see {docsUrl('cli', 'twistd-plugin')}."
    )
    optParameters = [
        ["symbols", "s", None, "Comma-separated symbol names (required), e.g. EURUSD,XAUUSD."],
        ["host", None, None, "Server host, or 'demo' / 'live'. Default: the bundled simulator."],
        ["port", None, None, "Server port (5035)."],
        ["account", None, None, "Comma-separated account ids (default: every account of the token)."],
        ["trendbars", None, None, "Comma-separated live trend bar periods, e.g. M1,H1."],
        ["output", "o", None, "Append the JSON lines to this file (default: stdout)."],
        ["ca-file", None, None, "PEM file of CA certificates to trust instead of the system's."],
        ["config", None, None, "TOML config file (default ~/.config/ctrader-twisted/config.toml)."],
        ["count", None, None, "Stop after this many lines."],
        ["duration", None, None, "Stop after this many seconds."],
        ["timeout", None, "30", "Seconds allowed for the first connection."],
        ["client-id", None, None, "Application client id (prefer CTRADER_CLIENT_ID)."],
        ["client-secret", None, None, "Application client secret (prefer CTRADER_CLIENT_SECRET)."],
        ["access-token", None, None, "Access token (prefer CTRADER_ACCESS_TOKEN)."],
        ["refresh-token", None, None, "Refresh token (prefer CTRADER_REFRESH_TOKEN)."],
        ["token-file", None, None,
         "Token file: read at start, rewritten after each refresh (default ~/.config/ctrader-twisted/tokens.json)."],
        ["redis", None, None, "Publish every event to Redis Streams at this URL (JSON lines then only with --output)."],
        ["redis-maxlen", None, None, "MAXLEN ~ per stream kind in entries, e.g. spot=100000,exec=0."],
        ["redis-prefix", None, "ctrader", "First part of the Redis key names."],
        ["group", None, None, "With --redis: share the accounts with the other workers of this group."],
        ["lease", None, "10", "With --group: account lease time, seconds."],
    ]
    optFlags = [
        ["websocket", None, "Connect with wss:// instead of TLS TCP."],
        ["depth", None, "Also stream depth-of-market quotes."],
    ]

    #: environment used by :meth:`postOptions` (tests replace it)
    environ: Any = None
    #: where a usage error is said under twistd (tests replace it)
    stderr: TextIO | None = None

    def __init__(self) -> None:
        super().__init__()
        self["verbose"] = 0

    def opt_verbose(self) -> None:
        """Log to stderr too: info (-vv: debug). Without it, only the status lines."""
        self["verbose"] += 1

    opt_v = opt_verbose

    def opt_version(self) -> None:
        """Print ctrader-twisted's version and exit."""
        print(f"twistd ctrader (ctrader-twisted) {__version__}")
        sys.exit(0)

    def parseOptions(self, options: Any = None) -> None:
        """Parse and check; under twistd a usage error is one line and exit status 2.

        twistd prints its whole usage text before an error; the options of a
        stream are better explained by the one line that names the problem,
        and ``--help`` lists them all. Outside twistd (no parent) the
        ``UsageError`` is raised as usual.
        """
        try:
            super().parseOptions(options)
        except usage.UsageError as error:
            if self.parent is None:
                raise
            say(self.stderr or sys.stderr, f"error: {error} (`twistd ctrader --help` lists the options)")
            raise SystemExit(EXIT_USAGE) from None

    def postOptions(self) -> None:
        """Check everything now: twistd prints a ``UsageError`` as one line,
        while an error raised later in ``makeService`` shows a traceback."""
        try:
            self._check()
            if self["output"] is not None:
                self["outputFile"] = openOutput(self["output"], "a")
        except (UsageError, ConfigError) as error:
            raise usage.UsageError(str(error)) from None
        _verbosity[0] = self["verbose"]
        parent = self.parent
        if self["output"] is None and parent is not None and not self["redis"]:
            if not parent.get("nodaemon"):
                raise usage.UsageError(
                    "a daemon has no stdout: run with twistd -n, or give --output FILE"
                )
            if parent.get("logger") is None and not parent.get("logfile") and not parent.get("syslog"):
                # twistd -n logs to stdout by default: send its log to stderr
                # so that stdout carries nothing but JSON lines.
                parent["logger"] = f"{__name__}.stderrLogObserver"

    def _check(self) -> None:
        """The option values, checked as the console command checks them."""
        symbols = splitNames([self["symbols"] or ""])
        if not symbols:
            raise UsageError("give the symbols to stream: --symbols EURUSD[,XAUUSD...]")
        self["symbolList"] = symbols
        self["periodList"] = periodNames("trendbars", [self["trendbars"] or ""])
        self["count"] = positiveNumber(int, "count", self["count"])
        self["duration"] = positiveNumber(float, "duration", self["duration"])
        self["timeout"] = positiveNumber(float, "timeout", self["timeout"])
        options = {
            "host": self["host"],
            "port": portNumber(self["port"]),
            "websocket": True if self["websocket"] else None,
            "caFile": self["ca-file"],
            "accounts": self["account"],
            "clientId": self["client-id"],
            "clientSecret": self["client-secret"],
            "accessToken": self["access-token"],
            "refreshToken": self["refresh-token"],
            "tokenFile": self["token-file"],
        }
        self.settings: Settings = loadSettings(options, self.environ, self["config"])
        self["leaseSeconds"] = positiveNumber(float, "lease", self["lease"])
        if self["group"] is not None and not self["redis"]:
            raise UsageError("--group needs --redis")
        if self["group"] is not None and (self["output"] or self["count"] or self["duration"]):
            raise UsageError("--group publishes to Redis only: --output, --count and --duration do not apply")
        checkRedisOptions(self["redis"], self["redis-maxlen"], self["redis-prefix"])


def makeService(options: Options, reactor: Any = None, stdout: TextIO | None = None, stderr: TextIO | None = None) -> IService:
    """The streaming service for *options*.

    Called by twistd with *options* only: the service then uses the global
    reactor (twistd installed it), stops it when streaming ends, and makes
    the process exit with status 1 after a fatal error. Given a *reactor*
    (tests, embedding), it leaves the reactor and the process alone.

    :param stdout: where JSON lines go without ``--output`` (the process's stdout).
    :param stderr: where status lines go (the process's stderr).
    """
    underTwistd = reactor is None
    if reactor is None:
        from twisted.internet import reactor as globalReactor

        reactor = globalReactor
    # The streams as they are now: twistd later replaces sys.stdout/stderr
    # with log-redirecting files.
    output = options.get("outputFile") or (None if options["redis"] else stdout or sys.stdout)
    status = stderr or sys.stderr
    if options["group"]:
        from ..redis.streams import parseMaxlen
        from ..redis.workers import SharedAccountsService

        worker = SharedAccountsService(
            options.settings, options["symbolList"], options["redis"], options["group"], status, reactor,
            lease=options["leaseSeconds"], trendbars=options["periodList"], depth=bool(options["depth"]),
            connectTimeout=options["timeout"],
            publisherOptions={"prefix": options["redis-prefix"], "maxlen": parseMaxlen(options["redis-maxlen"] or "")},
        )
        if underTwistd:
            stopWhenDone(worker, reactor, status, _exitStatusAtExit)
        return worker
    service = StreamService(
        options.settings,
        options["symbolList"],
        output,
        status,
        reactor,
        trendbars=options["periodList"],
        depth=bool(options["depth"]),
        count=options["count"],
        duration=options["duration"],
        connectTimeout=options["timeout"],
        sinks=redisSinks(options["redis"], options["redis-maxlen"], options["redis-prefix"], reactor, status),
    )
    if underTwistd:
        stopWhenDone(service, reactor, status, _exitStatusAtExit)
    return service


def stopWhenDone(service: Any, reactor: Any, status: TextIO, setExitStatus: Callable[[int], None]) -> None:
    """When *service* (with a ``whenDone()``) is done, stop *reactor*; after a fatal error, print it
    as one line on *status* and call ``setExitStatus(1)``
    (:data:`~ctrader_twisted.cli.status.EXIT_FAILURE`); when the reader of
    the output went away, ``setExitStatus(141)``
    (:data:`~ctrader_twisted.cli.status.EXIT_BROKEN_PIPE`), quietly."""

    def ended(result: Any) -> None:
        if isinstance(result, Failure):
            say(status, f"error: {result.getErrorMessage()}")
            setExitStatus(EXIT_FAILURE)
        elif getattr(service, "outputClosed", False):
            setExitStatus(EXIT_BROKEN_PIPE)  # `twistd -n ctrader ... | head`: quietly
        try:
            reactor.stop()
        except ReactorNotRunning:  # already stopping (Ctrl-C, SIGTERM)
            pass

    service.whenDone().addBoth(ended)


_exitStatus: list[int] = []


def _exitStatusAtExit(code: int) -> None:
    """Make the process exit with *code* once twistd is done.

    twistd always exits 0 after its reactor stops. An ``atexit`` hook runs
    after twistd has cleaned up (pid file, log) and ends the process with
    *code* after flushing the standard streams.
    """
    if _exitStatus:
        return
    _exitStatus.append(code)

    def exitNow() -> None:
        for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
            try:
                if stream is not None:
                    stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)

    atexit.register(exitNow)
