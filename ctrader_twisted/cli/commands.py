# -*- test-case-name: tests.test_cli -*-
"""The one-shot commands ``accounts``, ``symbols``, ``symbol`` and ``simulator``.

Each command handler takes the :class:`~ctrader_twisted.cli.connect.Connection`
(not yet started), the parsed arguments and the output streams, and returns
the exit status; connection errors propagate to
:func:`ctrader_twisted.cli.run`, which reports them as one line. The
``bars`` command is in :mod:`ctrader_twisted.cli.history`, ``stream`` in
:mod:`ctrader_twisted.cli.stream`.

``accounts``, ``symbols`` and ``symbol`` print a table, or with ``--json``
one JSON document (stable keys, documented in ``docs/cli.rst``) that says
whether the data is simulated. ``symbol`` resolves asset and category
names and shows volumes, commissions and times in the units people use
(:mod:`ctrader_twisted.cli.specs`).

``ctrader-twisted simulator`` and ``ctrader-simulator`` take the options of
the simulator's twistd plugin (:class:`ctrader_twisted.simulator.tap.Options`,
the one table of them), as argparse options like every other command.
"""

from __future__ import annotations

import argparse
import errno
from typing import Any, Sequence, TextIO

from twisted.internet.defer import Deferred
from twisted.internet.error import CannotListenError

from ..client import Client
from ..errors import UnknownSymbolError
from .connect import Connection
from .jsonlines import dumpJson
from .options import UsageError
from .specs import specDocument, specText, symbolSpec
from .status import EXIT_FAILURE, EXIT_OK, StreamError, say

__all__ = ["connectOneShot", "accounts", "symbols", "symbol", "simulator", "addSimulatorArguments",
           "simulatorOptions"]


async def connectOneShot(connection: Connection, stderr: TextIO) -> Client:
    """Connect for a one-shot command, saying so on *stderr* when the data
    comes from the bundled simulator or from a ctrader-twisted simulator
    started separately (:meth:`~ctrader_twisted.cli.connect.Connection.identify`)."""
    connection.start()
    if connection.inProcess:
        say(stderr, f"SIMULATED DATA: no --host given, using the bundled simulator on {connection.where}")
    client = await connection.connect()
    notice = await connection.simulatorNotice()
    if notice:
        say(stderr, notice)
    return client


def _writeJson(stdout: TextIO, document: dict[str, Any]) -> None:
    stdout.write(dumpJson(document) + "\n")
    stdout.flush()


async def accounts(connection: Connection, args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    """``ctrader-twisted accounts [--json]``: the accounts of the access token."""
    await connectOneShot(connection, stderr)
    listed = await connection.listAccounts()
    if getattr(args, "json", False):
        _writeJson(stdout, {
            "simulated": connection.simulated,
            "accounts": [
                {
                    "account": int(a.ctidTraderAccountId),
                    "live": bool(a.isLive),
                    "login": int(a.traderLogin) if a.HasField("traderLogin") else None,
                    "broker": str(a.brokerTitleShort),
                }
                for a in listed
            ],
        })
        return EXIT_OK
    rows = [("account", "live", "login", "broker")]
    for account in listed:
        rows.append((
            str(account.ctidTraderAccountId),
            "yes" if account.isLive else "no",
            str(account.traderLogin) if account.HasField("traderLogin") else "",
            account.brokerTitleShort,
        ))
    _table(stdout, rows)
    return EXIT_OK


async def _catalogue(connection: Connection, client: Client) -> Any:
    """The symbol catalogue of the first account (assets and categories by name)."""
    from ..trading.symbols import SymbolCatalogue

    accountId = await connection.firstAccount()
    return await SymbolCatalogue(client, accountId).load()


async def symbols(connection: Connection, args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    """``ctrader-twisted symbols [--json]``: the symbols of the first account, sorted by name."""
    client = await connectOneShot(connection, stderr)
    catalogue = await _catalogue(connection, client)
    listed = sorted(catalogue, key=lambda s: s.name)
    if getattr(args, "json", False):
        _writeJson(stdout, {
            "simulated": connection.simulated,
            "account": catalogue.accountId,
            "symbols": [
                {
                    "symbolId": s.id,
                    "name": s.name,
                    "enabled": s.enabled,
                    "description": s.description,
                    "baseAsset": s.baseAsset.name if s.baseAsset else None,
                    "quoteAsset": s.quoteAsset.name if s.quoteAsset else None,
                    "category": s.category.name if s.category else None,
                }
                for s in listed
            ],
        })
        return EXIT_OK
    rows = [("id", "name", "enabled", "base", "quote", "description")]
    for s in listed:
        rows.append((str(s.id), s.name, "yes" if s.enabled else "no", s.baseAsset.name if s.baseAsset else "",
                     s.quoteAsset.name if s.quoteAsset else "", s.description))
    _table(stdout, rows)
    return EXIT_OK


async def symbol(connection: Connection, args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    """``ctrader-twisted symbol NAME [--json]``: one symbol's specification,
    with asset names and the units people use (:mod:`~ctrader_twisted.cli.specs`)."""
    client = await connectOneShot(connection, stderr)
    catalogue = await _catalogue(connection, client)
    try:
        found = await catalogue.get(args.name)
    except UnknownSymbolError as error:
        raise StreamError(f"{error} ({len(catalogue)} symbols; `ctrader-twisted symbols` lists them)") from None
    fields = symbolSpec(found, catalogue.accountId)
    if getattr(args, "json", False):
        _writeJson(stdout, {"simulated": connection.simulated, "symbol": specDocument(fields)})
    else:
        stdout.write(specText(fields))
        stdout.flush()
    return EXIT_OK


def _table(stream: TextIO, rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        stream.write("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() + "\n")
    stream.flush()


#: Placeholders of the simulator's option values in ``--help``.
_SIMULATOR_METAVARS = {
    "interface": "ADDRESS", "cert-dir": "DIR", "hostname": "NAMES", "certificate": "PEM", "private-key": "PEM", "ca": "PEM",
    "seed": "N", "spot-interval": "S", "idle-timeout": "S", "client-id": "ID",
}


def addSimulatorArguments(parser: argparse.ArgumentParser) -> None:
    """Add the simulator's options to *parser*: the same table as the twistd
    plugin's (:class:`ctrader_twisted.simulator.tap.Options`), in argparse
    style, with ``--version`` printing ctrader-twisted's version."""
    from .._version import __version__
    from ..simulator.tap import Options as SimulatorOptions

    package = "" if parser.prog.startswith("ctrader-twisted") else " (ctrader-twisted)"
    parser.add_argument("--version", action="version", version=f"%(prog)s{package} {__version__}")
    table: list[list[Any]] = list(SimulatorOptions.optParameters)  # type: ignore[arg-type]
    for name, short, default, text, *_ in table:
        flags = [f"--{name}"] + ([f"-{short}"] if short else [])
        text = text.rstrip(".")
        if text[:1].isupper() and text[1:2].islower():
            text = text[0].lower() + text[1:]
        shown = f" (default {default})" if default is not None else ""
        parser.add_argument(*flags, dest=name.replace("-", "_"), default=None,
                            metavar=_SIMULATOR_METAVARS.get(name, "PORT"), help=f"{text}{shown}".replace("%", "%%"))


def simulatorOptions(args: argparse.Namespace) -> Any:
    """The simulator's :class:`~ctrader_twisted.simulator.tap.Options` from
    parsed arguments, checked as twistd checks them.

    :raises UsageError: a bad value (the message names the option).
    """
    from twisted.python import usage

    from ..simulator.tap import Options as SimulatorOptions

    options = SimulatorOptions()
    argv: list[str] = []
    table: list[list[Any]] = list(SimulatorOptions.optParameters)  # type: ignore[arg-type]
    for name, *_ in table:
        value = getattr(args, name.replace("-", "_"), None)
        if value is not None:
            argv += [f"--{name}", str(value)]
    try:
        options.parseOptions(argv)
    except usage.UsageError as error:
        raise UsageError(str(error)) from None
    return options


def _startProblem(error: Exception, options: Any) -> str:
    """Why the simulator could not start, in one line: a port already in use
    (naming the option), unreadable certificate files, an unwritable
    ``--cert-dir``."""
    if isinstance(error, CannotListenError):
        port = int(error.port)
        names = [n for n in ("tls-port", "ws-port", "plain-port", "http-port") if options[n] == port]
        option = f" (--{names[0]})" if names else ""
        reason = error.socketError
        if getattr(reason, "errno", None) == errno.EADDRINUSE:
            return (
                f"cannot start the simulator: port {port}{option} on {error.interface or 'every interface'} is "
                "already in use: stop what listens there, or choose another port (0 picks a free one)"
            )
        text = getattr(reason, "strerror", None) or str(reason)
        return f"cannot start the simulator: cannot listen on port {port}{option} of {error.interface}: {text}"
    if isinstance(error, OSError):
        where = f" {error.filename}" if error.filename else ""
        return f"cannot start the simulator: cannot use{where}: {error.strerror or error}"
    return f"cannot start the simulator: {error}"


async def simulator(reactor: Any, args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    """``ctrader-twisted simulator [options]`` (and ``ctrader-simulator``):
    run the simulator until the reactor stops.

    :raises UsageError: a bad option value.
    """
    from ..simulator.tap import SimulatorService, describe

    options = simulatorOptions(args)
    service = SimulatorService(options, reactor)
    try:
        service.startService()
    except (CannotListenError, OSError, ValueError) as error:
        if service.simulator is not None:
            await service.simulator.stop()
        say(stderr, f"error: {_startProblem(error, options)}")
        return EXIT_FAILURE
    certDir = None if options["certificate"] else options["cert-dir"]
    stdout.write(describe(service.simulator, service.listening, certDir) + "\n")
    stdout.write(f"  (credentials also in {options['cert-dir']}/credentials.json; "
                 "they work only here; Ctrl-C stops)\n")
    stdout.flush()
    stopped: Deferred[None] = Deferred()

    def stop() -> Deferred[None]:
        return service.stopService().addBoth(lambda _: stopped.callback(None) if not stopped.called else None)

    reactor.addSystemEventTrigger("before", "shutdown", stop)
    await stopped
    return EXIT_OK
