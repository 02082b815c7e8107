# -*- test-case-name: tests.test_cli -*-
"""``ctrader-twisted bars``: historical trend bars as CSV.

The range ``[--from, --to)`` is cut into the longest windows the server
accepts for the period (:data:`TRENDBAR_WINDOW_MS`) and fetched oldest first
(:func:`fetchTrendbars`); each bar is written as ``time,open,high,low,close,volume``
with the prices and times of :mod:`ctrader_twisted.cli.jsonlines`.
"""

from __future__ import annotations

import argparse
import csv
from datetime import datetime, timezone
from typing import Any, TextIO

from ..client import Client
from ..messages.OpenApiModelMessages_pb2 import ProtoOATrendbarPeriod
from .commands import connectOneShot
from .connect import Connection
from .jsonlines import decimalPrice, isoTime
from .options import UsageError, openOutput, periodOption
from .status import EXIT_OK, say

__all__ = ["bars", "fetchTrendbars", "parseTime", "TRENDBAR_WINDOW_MS"]

_P = ProtoOATrendbarPeriod

#: Longest window of one ``ProtoOAGetTrendbarsReq`` per period, ms (the server
#: answers INCORRECT_BOUNDARIES beyond; values of the official .NET SDK).
TRENDBAR_WINDOW_MS: dict[int, int] = {
    **dict.fromkeys((_P.M1, _P.M2, _P.M3, _P.M4, _P.M5), 302_400_000),  # 3.5 days
    **dict.fromkeys((_P.M10, _P.M15, _P.M30, _P.H1), 21_168_000_000),  # 245 days
    **dict.fromkeys((_P.H4, _P.H12, _P.D1), 31_622_400_000),  # 366 days
    **dict.fromkeys((_P.W1, _P.MN1), 158_112_000_000),  # 1830 days
}

#: Minutes per period (W1 and MN1 approximate: used for defaults only).
_PERIOD_MINUTES: dict[int, int] = {
    _P.M1: 1, _P.M2: 2, _P.M3: 3, _P.M4: 4, _P.M5: 5, _P.M10: 10, _P.M15: 15, _P.M30: 30,
    _P.H1: 60, _P.H4: 240, _P.H12: 720, _P.D1: 1440, _P.W1: 10080, _P.MN1: 43200,
}

#: Bars back from ``--to`` when no ``--from`` is given.
_DEFAULT_BARS = 100


def parseTime(text: str, option: str) -> int:
    """An ISO 8601 date or date-time (UTC unless an offset is given) in ms.

    :raises UsageError: not ISO 8601 (the message names *option*).
    """
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"{option} must be an ISO 8601 date or date-time, e.g. 2026-01-05T10:00:00Z") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1000)


async def bars(connection: Connection, args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    """``ctrader-twisted bars NAME``: trend bars of ``[--from, --to)`` as CSV.

    :raises UsageError: a bad period, time or range, or an output file that
        cannot be opened (checked before connecting).
    """
    period = periodOption("period", args.period)
    end = parseTime(args.end, "--to") if args.end else int(connection.reactor.seconds() * 1000)
    start = parseTime(args.start, "--from") if args.start else end - _DEFAULT_BARS * _PERIOD_MINUTES[period] * 60_000
    if start >= end:
        raise UsageError("--from must be before --to")
    output = openOutput(args.output, "w", newline="") if args.output else stdout
    try:
        client = await connectOneShot(connection, stderr)
        accountId = await connection.firstAccount()
        resolved, _ = await connection.resolveSymbols(accountId, [args.name])
        info = resolved[0]
        found = await fetchTrendbars(client, accountId, info.symbolId, period, start, end)
        digits = info.priceDigits
        writer = csv.writer(output, lineterminator="\n")
        writer.writerow(["time", "open", "high", "low", "close", "volume"])
        for bar in found:
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
        say(stderr, f"{len(found)} {name} bars of {info.name} from {isoTime(start)} to {isoTime(end)}")
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
