# -*- test-case-name: tests.test_cli -*-
"""The one-shot commands ``accounts``, ``symbols``, ``symbol`` and ``simulator``.

Each command handler takes the :class:`~ctrader_twisted.cli.connect.Connection`
(not yet started), the parsed arguments and the output streams, and returns
the exit status; connection errors propagate to
:func:`ctrader_twisted.cli.run`, which reports them as one line. The
``bars`` command is in :mod:`ctrader_twisted.cli.history`, ``stream`` in
:mod:`ctrader_twisted.cli.stream`.
"""

from __future__ import annotations

import argparse
import contextlib
from typing import Any, Sequence, TextIO

from twisted.internet.defer import Deferred

from ..client import Client
from .connect import Connection
from .status import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, PROG, say

__all__ = ["connectOneShot", "accounts", "symbols", "symbol", "simulator"]


async def connectOneShot(connection: Connection, stderr: TextIO) -> Client:
    """Connect for a one-shot command, first saying so on *stderr* when the
    data comes from the bundled simulator."""
    connection.start()
    if connection.simulated:
        say(stderr, f"SIMULATED DATA: no --host given, using the bundled simulator on {connection.where}")
    return await connection.connect()


async def accounts(connection: Connection, args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    """``ctrader-twisted accounts``: the accounts of the access token, as a table."""
    await connectOneShot(connection, stderr)
    rows = [("account", "live", "login", "broker")]
    for account in await connection.listAccounts():
        rows.append((
            str(account.ctidTraderAccountId),
            "yes" if account.isLive else "no",
            str(account.traderLogin) if account.HasField("traderLogin") else "",
            account.brokerTitleShort,
        ))
    _table(stdout, rows)
    return EXIT_OK


async def symbols(connection: Connection, args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    """``ctrader-twisted symbols``: the symbols of the first account, as a table sorted by name."""
    client = await connectOneShot(connection, stderr)
    accountId = await connection.firstAccount()
    listing = await client.request("ProtoOASymbolsListReq", ctidTraderAccountId=accountId)
    rows = [("id", "name", "enabled", "description")]
    for symbol in sorted(listing.symbol, key=lambda s: s.symbolName):
        rows.append((str(symbol.symbolId), symbol.symbolName, "yes" if symbol.enabled else "no", symbol.description))
    _table(stdout, rows)
    return EXIT_OK


#: ProtoOASymbol fields in cents of a unit (shown in units).
_VOLUME_FIELDS = frozenset({"maxVolume", "minVolume", "stepVolume", "maxExposure", "lotSize"})


async def symbol(connection: Connection, args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    """``ctrader-twisted symbol NAME``: one symbol's specification, one field a line."""
    client = await connectOneShot(connection, stderr)
    accountId = await connection.firstAccount()
    listing = await client.request("ProtoOASymbolsListReq", ctidTraderAccountId=accountId)
    resolved, _ = await connection.resolveSymbols(accountId, [args.name])
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


def _table(stream: TextIO, rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        stream.write("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() + "\n")
    stream.flush()


def _unitsText(cents: int) -> str:
    return str(cents // 100) if cents % 100 == 0 else f"{cents / 100:.2f}"


def _fieldText(descriptor: Any, value: Any) -> str:
    if descriptor.enum_type is not None:
        return str(descriptor.enum_type.values_by_number[value].name if value in descriptor.enum_type.values_by_number else value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


async def simulator(reactor: Any, argv: Sequence[str], stdout: TextIO, stderr: TextIO) -> int:
    """``ctrader-twisted simulator ARGS``: the simulator's own entry point, on a
    running reactor, until the reactor stops."""
    from twisted.python import usage

    from ..simulator.tap import Options as SimulatorOptions, SimulatorService, describe

    options = SimulatorOptions()
    try:
        with contextlib.redirect_stdout(stdout):  # usage.Options prints --help there
            options.parseOptions(list(argv))
    except usage.UsageError as error:
        stderr.write(f"{options}\n{PROG} simulator: error: {error}\n")
        return EXIT_USAGE
    except SystemExit as exit:  # --help
        return int(exit.code or 0)
    service = SimulatorService(options, reactor)
    try:
        service.startService()
    except Exception as error:  # CannotListenError, unreadable certificate files
        say(stderr, f"error: cannot start the simulator: {error}")
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
