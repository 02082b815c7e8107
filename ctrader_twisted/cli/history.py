# -*- test-case-name: tests.test_history_cli -*-
"""``ctrader-twisted bars|ticks|deals|cashflow``: history to a file, safely.

Each command resolves what it downloads (symbol, account) first, then reads
a :mod:`ctrader_twisted.history` download and writes the rows **as they
arrive** (CSV by default, JSON lines, or Parquet with the ``parquet`` extra)
to ``FILE.part`` beside the target; only a complete download is renamed to
``FILE``. So an error, an unknown symbol or Ctrl-C never touches an existing
``FILE``: what was downloaded stays in ``FILE.part``, and ``--resume``
continues from its last row (or from the last row of ``FILE``, to extend it).

While it runs, progress goes to stderr (windows done/total, rows, rate,
ETA) when stderr is a terminal or with ``-v``; ``-q`` silences it. Exit
status: 0 done (a range without data warns), 1 a failure (what was kept is
said), 2 bad usage, 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Callable, Sequence, TextIO

from twisted.internet.defer import CancelledError, Deferred, ensureDeferred
from twisted.internet.task import LoopingCall

from .. import history as _history
from ..history import MAX_TIMESTAMP_MS, PERIOD_MS, Download
from ..messages.OpenApiModelMessages_pb2 import ProtoOATrendbarPeriod
from .commands import connectOneShot
from .connect import Connection
from .jsonlines import dumpJson
from .options import UsageError, periodOption
from .status import EXIT_BROKEN_PIPE, EXIT_FAILURE, EXIT_OK, isBrokenPipe, say

try:  # POSIX advisory locks: two downloads never write one file
    import fcntl
except ImportError:  # pragma: no cover (Windows)
    fcntl = None  # type: ignore[assignment]

__all__ = ["bars", "ticks", "deals", "cashflow", "parseTime", "EXIT_INTERRUPTED", "FORMATS", "addHistoryParsers"]

#: Exit status after Ctrl-C (128 + SIGINT), as shells report it.
EXIT_INTERRUPTED = 130

#: Output formats; Parquet needs the ``parquet`` extra (pyarrow).
FORMATS = ("csv", "jsonl", "parquet")

#: Seconds between progress lines: on a terminal (one line rewritten), and with -v.
_TERMINAL_EVERY = 0.5
_VERBOSE_EVERY = 5.0

#: Rows back from ``--to`` when ``bars`` has no ``--from``; span for the others.
_DEFAULT_BARS = 100
_DEFAULT_SPAN_MS = {"ticks": 3_600_000, "deals": 30 * 86_400_000, "cashflow": 30 * 86_400_000}


def parseTime(text: str, option: str) -> int:
    """An ISO 8601 date or date-time (UTC unless an offset is given) in ms.

    :raises UsageError: not ISO 8601, or outside 1970..2038 (the message names *option*).
    """
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"{option} must be an ISO 8601 date or date-time, e.g. 2026-01-05T10:00:00Z") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    ms = int(moment.timestamp() * 1000)
    if not 0 <= ms <= MAX_TIMESTAMP_MS:
        raise UsageError(f"{option} must lie between 1970-01-01 and 2038-01-19")
    return ms


def _iso(ms: int) -> str:
    seconds, millis = divmod(int(ms), 1000)
    t = time.gmtime(seconds)
    return "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec, millis)


def _parseIso(text: str) -> int:
    moment = datetime.fromisoformat(text.strip())
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return round(moment.timestamp() * 1000)


# --- what each command writes ---------------------------------------------------------


@dataclass(frozen=True)
class _Column:
    name: str
    kind: str  # time, text, int, price, money, double


@dataclass
class _Table:
    """The columns of one kind of row, and how a row fills them."""

    noun: str
    columns: list[_Column]
    cells: Callable[[Any], list[Any]]
    #: Whether the last row held may be incomplete (a bar still forming): a
    #: resume asks for it again instead of skipping it.
    refetchLast: bool = False
    #: Decimal places of prices (Parquet's decimal type), when known.
    digits: int = 5


def _barTable(digits: int) -> _Table:
    return _Table(
        "bars",
        [_Column("time", "time"), *(_Column(n, "price") for n in ("open", "high", "low", "close")),
         _Column("volume", "int")],
        lambda b: [b.timestamp, b.open, b.high, b.low, b.close, b.volume],
        refetchLast=True,
        digits=digits,
    )


def _tickTable(digits: int) -> _Table:
    return _Table(
        "ticks",
        [_Column("time", "time"), _Column("side", "text"), _Column("price", "price")],
        lambda t: [t.timestamp, t.side, t.price],
        digits=digits,
    )


_DEAL_MONEY = ("commission", "grossProfit", "swap", "closeCommission", "balance", "pnlConversionFee")


def _dealTable(names: dict[int, str]) -> _Table:
    columns = [
        _Column("time", "time"), _Column("deal", "int"), _Column("order", "int"), _Column("position", "int"),
        _Column("symbolId", "int"), _Column("symbol", "text"), _Column("side", "text"), _Column("volume", "money"),
        _Column("price", "double"), _Column("status", "text"), _Column("commission", "money"),
        _Column("closedVolume", "money"), _Column("entryPrice", "double"), _Column("grossProfit", "money"),
        _Column("swap", "money"), _Column("closeCommission", "money"), _Column("balance", "money"),
        _Column("pnlConversionFee", "money"),
    ]

    def cells(d: Any) -> list[Any]:
        return [
            d.timestamp, d.dealId, d.orderId, d.positionId, d.symbolId, names.get(d.symbolId, ""), d.side, d.volume,
            d.price, d.status, d.commission, d.closedVolume, d.entryPrice, d.grossProfit, d.swap,
            d.closeCommission, d.balance, d.pnlConversionFee,
        ]

    return _Table("deals", columns, cells)


def _cashFlowTable() -> _Table:
    return _Table(
        "balance operations",
        [_Column("time", "time"), _Column("id", "int"), _Column("type", "text"), _Column("delta", "money"),
         _Column("balance", "money"), _Column("equity", "money"), _Column("note", "text")],
        lambda c: [c.timestamp, c.balanceHistoryId, c.type, c.delta, c.balance, c.equity, c.note],
    )


# --- writers -------------------------------------------------------------------------------


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


class _Writer:
    """Writes rows to one file (or stdout); knows the last row of a file it continues."""

    binary = False

    def __init__(self, table: _Table) -> None:
        self.table = table
        self.names = [c.name for c in table.columns]

    def start(self, stream: Any, fresh: bool) -> None:
        raise NotImplementedError

    def write(self, rows: Sequence[Any]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def tail(self, path: str) -> tuple[int, int, int, int] | None:
        """``(rows, lastTimestamp, rowsAtLast, keepBytes)`` of an existing file,
        *keepBytes* being where its last complete row ends (``None``: no rows).

        :raises UsageError: the file is not one this command wrote.
        """
        raise NotImplementedError


class _CsvWriter(_Writer):
    def start(self, stream: TextIO, fresh: bool) -> None:
        self.stream = stream
        self.csv = csv.writer(stream, lineterminator="\n")
        if fresh:
            self.csv.writerow(self.names)
            stream.flush()

    def write(self, rows: Sequence[Any]) -> None:
        cells = self.table.cells
        self.csv.writerows([_iso(c[0]), *map(_text, c[1:])] for c in map(cells, rows))
        self.stream.flush()

    def close(self) -> None:
        self.stream.flush()

    def header(self, line: str) -> bool:
        return next(csv.reader([line]), []) == self.names

    def parseTime(self, line: str) -> int:
        return _parseIso(line.split(",", 1)[0])

    def tail(self, path: str) -> tuple[int, int, int, int] | None:
        return _textTail(path, self)


class _JsonLinesWriter(_Writer):
    def start(self, stream: TextIO, fresh: bool) -> None:
        self.stream = stream

    def write(self, rows: Sequence[Any]) -> None:
        # The first column is the time: ISO 8601 under "time", and beside it
        # the milliseconds since the epoch under "timeMs" (as in the stream's
        # JSON lines; jq's fromdate rejects fractional seconds).
        names, cells = self.names[1:], self.table.cells
        out = []
        for row in rows:
            values = cells(row)
            ms = int(values[0])
            record: dict[str, Any] = {"time": _iso(ms), "timeMs": ms}
            record.update(zip(names, values[1:]))
            out.append(dumpJson(record))
        out.append("")
        self.stream.write("\n".join(out))
        self.stream.flush()

    def close(self) -> None:
        self.stream.flush()

    def header(self, line: str) -> bool:
        return self.parseTime(line) >= 0

    def parseTime(self, line: str) -> int:
        record = json.loads(line)
        # Files written before "timeMs" existed resume as well.
        if not isinstance(record, dict) or [k for k in record if k != "timeMs"] != self.names:
            raise ValueError("not a row of this command")
        return _parseIso(record["time"])

    def tail(self, path: str) -> tuple[int, int, int, int] | None:
        return _textTail(path, self)


def _textTail(path: str, writer: Any) -> tuple[int, int, int, int] | None:
    """The tail of a CSV or JSON lines file: complete lines only (a line cut
    by a kill is dropped), the header checked."""
    headerLines = 1 if isinstance(writer, _CsvWriter) else 0
    with open(path, "rb") as f:
        data = f.read()
    end = data.rfind(b"\n") + 1  # everything after the last newline is a torn row
    lines = data[:end].decode("utf-8", "replace").splitlines()
    if headerLines:
        if not lines or not writer.header(lines[0]):
            raise UsageError(f"cannot resume from {path}: its header is not {','.join(writer.names)}")
    rows = lines[headerLines:]
    if not rows:
        return None
    try:
        last = writer.parseTime(rows[-1])
        atLast = 0
        keep = end
        for line in reversed(rows):
            if writer.parseTime(line) != last:
                break
            atLast += 1
    except (ValueError, KeyError, TypeError):
        raise UsageError(f"cannot resume from {path}: its last rows are not rows of this command") from None
    return len(rows), last, atLast, keep


def _arrow() -> Any:
    """pyarrow, or a usage error saying how to get it."""
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise UsageError(
            "--format parquet needs pyarrow: pip install 'ctrader-twisted[parquet]' (or use --format csv/jsonl)"
        ) from None
    return pyarrow


class _ParquetWriter(_Writer):
    binary = True

    def __init__(self, table: _Table) -> None:
        super().__init__(table)
        pa = self.pa = _arrow()
        types = {
            "time": pa.timestamp("ms", tz="UTC"),
            "text": pa.string(),
            "int": pa.int64(),
            "price": pa.decimal128(24, table.digits),
            "money": pa.decimal128(38, 8),
            "double": pa.float64(),
        }
        self.schema = pa.schema([pa.field(c.name, types[c.kind]) for c in table.columns])

    def start(self, stream: Any, fresh: bool) -> None:
        import pyarrow.parquet as pq

        self.parquet = pq.ParquetWriter(stream, self.schema)

    def write(self, rows: Sequence[Any]) -> None:
        pa, cells = self.pa, self.table.cells
        columns = list(zip(*map(cells, rows)))
        arrays = []
        for column, field in zip(columns, self.schema):
            values = [float(v) if v is not None and pa.types.is_floating(field.type) else v for v in column]
            arrays.append(pa.array(values, type=field.type))
        self.parquet.write_batch(pa.record_batch(arrays, schema=self.schema))

    def copy(self, path: str, dropLast: bool) -> None:
        """Write every row of the Parquet file *path* (but its last one with *dropLast*)."""
        import pyarrow.parquet as pq

        source = pq.ParquetFile(path)
        left = source.metadata.num_rows - (1 if dropLast else 0)
        for batch in source.iter_batches(batch_size=65536):
            if left <= 0:
                break
            if batch.num_rows > left:
                batch = batch.slice(0, left)
            left -= batch.num_rows
            self.parquet.write_batch(batch.cast(self.schema) if batch.schema != self.schema else batch)

    def close(self) -> None:
        self.parquet.close()

    def tail(self, path: str) -> tuple[int, int, int, int] | None:
        import pyarrow.parquet as pq

        try:
            source = pq.ParquetFile(path)
        except Exception:  # pyarrow raises ArrowInvalid and OSError for a torn file
            raise UsageError(
                f"cannot resume from {path}: it is not a complete Parquet file (the download was killed?); "
                "remove it and start again"
            ) from None
        if source.schema_arrow.names != self.names:
            raise UsageError(f"cannot resume from {path}: its columns are not {','.join(self.names)}")
        rows = source.metadata.num_rows
        if not rows:
            return None
        times: list[int] = []
        for group in reversed(range(source.num_row_groups)):
            column = source.read_row_group(group, columns=["time"]).column(0)
            values = [int(v.value) for v in column if v.is_valid]
            times[:0] = values
            if values and values[0] != times[-1]:
                break
        last = times[-1]
        atLast = sum(1 for t in times if t == last)
        return rows, last, atLast, 0


_WRITERS: dict[str, type[_Writer]] = {"csv": _CsvWriter, "jsonl": _JsonLinesWriter, "parquet": _ParquetWriter}


def _formatOf(args: argparse.Namespace) -> str:
    if args.format:
        return str(args.format)
    path = (args.output or "").lower()
    if path.endswith((".parquet", ".pq")):
        return "parquet"
    if path.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    return "csv"


# --- the output file ---------------------------------------------------------------------


class _Output:
    """The target file and ``FILE.part`` beside it (see the module docstring)."""

    def __init__(self, path: str | None, writer: _Writer, stdout: TextIO, stderr: TextIO, quiet: bool) -> None:
        self.path = path
        self.part = f"{path}.part" if path else None
        self.writer = writer
        self.stdout = stdout
        self.stderr = stderr
        self.quiet = quiet
        #: rows in the file before this run (resuming), rows written by it
        self.resumedRows = 0
        self.written = 0
        self.lastTimestamp: int | None = None
        self._lock: int | None = None
        self._stream: Any = None
        self._working: str | None = None

    def check(self) -> None:
        """Before connecting: the target's folder must be writable.

        :raises UsageError: it is not.
        """
        if self.path is None:
            if self.writer.binary:
                raise UsageError("--format parquet needs -o FILE (it cannot go to stdout)")
            return
        folder = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(folder):
            raise UsageError(f"cannot write {self.path}: no folder {folder}")
        if not os.access(folder, os.W_OK):
            raise UsageError(f"cannot write {self.path}: the folder is not writable")
        if os.path.isdir(self.path):
            raise UsageError(f"cannot write {self.path}: it is a folder")

    def resumePoint(self, resume: bool) -> tuple[int, int] | None:
        """Open ``FILE.part`` (locked) and, with *resume*, find where to go on.

        :returns: ``(timestamp, rowsAtItToSkip)`` to resume from, or ``None`` to start afresh.
        :raises UsageError: another download writes it, or it cannot be continued.
        """
        if self.path is None or self.part is None:
            if resume:
                raise UsageError("--resume needs -o FILE")
            return None
        part, path = self.part, self.path
        existed = os.path.exists(part)
        if resume and not existed and os.path.exists(path):
            shutil.copyfile(path, part)  # extend FILE: never write to it before the end
            existed = True
            say(self.stderr, f"resuming from the last row of {path} (copied to {part})")
        elif resume and existed:
            say(self.stderr, f"resuming the download in {part}")
        elif resume:
            say(self.stderr, f"nothing to resume ({part} and {path} do not exist): starting afresh")
        elif existed:
            say(self.stderr, f"replacing the unfinished download {part} (--resume would have continued it)")
        try:
            self._lock = os.open(part, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise UsageError(f"cannot write {part}: {error.strerror or error}") from None
        if fcntl is not None:
            try:
                fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(self._lock)
                self._lock = None
                raise UsageError(f"{part} is being written by another download; wait for it or stop it") from None
        point: tuple[int, int] | None = None
        tail = self.writer.tail(part) if resume and existed and os.path.getsize(part) else None
        working = part
        if tail is None:
            os.ftruncate(self._lock, 0)
            fresh = True
        else:
            rows, last, atLast, keep = tail
            fresh = False
            refetch = self.writer.table.refetchLast
            self.resumedRows = rows - (1 if refetch else 0)
            point = (last, 0 if refetch else atLast)
            if isinstance(self.writer, _ParquetWriter):
                working = part + ".new"
            else:
                if refetch:  # the last bar may have been forming: ask for it again
                    keep = _lineStart(part, keep)
                os.ftruncate(self._lock, keep)
        self._working = working
        if isinstance(self.writer, _ParquetWriter):
            self._stream = open(working, "wb")
            self.writer.start(self._stream, fresh)
            if not fresh:
                self.writer.copy(part, dropLast=self.writer.table.refetchLast)
        else:
            self._stream = io.open(working, "a", encoding="utf-8", newline="")
            self.writer.start(self._stream, fresh)
        return point

    def startStdout(self) -> None:
        self._stream = self.stdout
        self.writer.start(self.stdout, True)

    def write(self, rows: Sequence[Any]) -> None:
        self.writer.write(rows)
        self.written += len(rows)
        self.lastTimestamp = self.table.cells(rows[-1])[0]

    @property
    def table(self) -> _Table:
        return self.writer.table

    @property
    def held(self) -> int:
        """Rows in the output now (resumed and written)."""
        return self.resumedRows + self.written

    def finish(self) -> None:
        """Complete: close ``FILE.part``, on disk, and rename it to ``FILE``
        (which keeps its permissions if it existed)."""
        self.writer.close()
        if self.path is None:
            return
        stream = self._stream
        if stream is not None:
            stream.flush()
            os.fsync(stream.fileno())
        self._closeStream()
        assert self.part is not None and self._working is not None
        if self._working != self.part:
            os.replace(self._working, self.part)
        if os.path.exists(self.path):
            shutil.copymode(self.path, self.part)
        os.replace(self.part, self.path)
        self._unlock()

    def keep(self) -> str:
        """Incomplete: close ``FILE.part`` as it is (or remove it when it holds
        no row) and say what was kept."""
        try:
            self.writer.close()
        except Exception:  # a writer that failed half-way: the text is flushed anyway
            pass
        if self.path is None:
            return f"{self.written} {self.table.noun} were written to stdout"
        self._closeStream()
        assert self.part is not None and self._working is not None
        if self._working != self.part:
            os.replace(self._working, self.part)
        self._unlock()
        if not self.held:
            os.unlink(self.part)
            return f"nothing was downloaded; {self.path} is untouched"
        until = f" up to {_iso(self.lastTimestamp)}" if self.lastTimestamp is not None else ""
        return (
            f"kept {self.held:,} {self.table.noun}{until} in {self.part} ({self.path} is untouched); "
            "run the same command with --resume to continue"
        )

    def abandon(self) -> None:
        """Nothing was written (a file that cannot be resumed): let ``FILE.part`` be."""
        self._closeStream()
        self._unlock()

    def _closeStream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None and stream is not self.stdout:
            stream.close()

    def _unlock(self) -> None:
        lock, self._lock = self._lock, None
        if lock is not None:
            os.close(lock)


def _lineStart(path: str, end: int) -> int:
    """Where the line that ends at *end* (after its newline) starts."""
    with open(path, "rb") as f:
        f.seek(max(0, end - 65536))
        chunk = f.read(end - max(0, end - 65536))
    return max(0, end - 65536) + chunk.rstrip(b"\n").rfind(b"\n") + 1


# --- progress ---------------------------------------------------------------------------


class _ProgressReport:
    """Progress lines on stderr: one line rewritten on a terminal, a line every
    few seconds with ``-v``, nothing with ``-q``."""

    def __init__(self, reactor: Any, stderr: TextIO, what: str, verbose: int, quiet: bool) -> None:
        self.reactor = reactor
        self.stderr = stderr
        self.what = what
        try:
            self.terminal = bool(stderr.isatty())
        except (AttributeError, ValueError):
            self.terminal = False
        self.enabled = not quiet and (self.terminal or verbose > 0)
        self.download: Download[Any] | None = None
        self.base = 0
        self._loop: LoopingCall | None = None
        self._shown = False

    def start(self, download: Download[Any], base: int) -> None:
        self.download, self.base = download, base
        if not self.enabled:
            return
        self._loop = LoopingCall(self.show)
        self._loop.clock = self.reactor
        self._loop.start(_TERMINAL_EVERY if self.terminal else _VERBOSE_EVERY, now=False)

    def line(self) -> str:
        assert self.download is not None
        p = self.download.progress
        now = self.reactor.seconds()
        eta = p.eta(now)
        text = (
            f"{self.what}: {p.windowsDone}/{p.windowsTotal} windows, {self.base + p.rows:,} rows, "
            f"{p.rowsPerSecond(now):,.0f} rows/s, {p.fetchedFraction * 100:.0f}%"
        )
        if eta is not None:
            text += f", ETA {_duration(eta)}"
        if p.retries or p.rateLimitRetries:
            text += f", {p.retries + p.rateLimitRetries} retries"
        return text

    def show(self) -> None:
        try:
            if self.terminal:
                self.stderr.write("\r" + self.line() + "\x1b[K")
                self.stderr.flush()
                self._shown = True
            else:
                say(self.stderr, self.line())
        except (OSError, ValueError):
            pass

    def stop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
        if self._shown:
            try:
                self.stderr.write("\r\x1b[K")
                self.stderr.flush()
            except (OSError, ValueError):
                pass
            self._shown = False


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


# --- the commands -------------------------------------------------------------------------


@dataclass
class _Plan:
    """What a command downloads, once resolved."""

    what: str  # e.g. "M1 bars of EURUSD"
    table: _Table
    make: Callable[[int, int, int], Download[Any]]  # (start, end, skip) -> download


async def bars(connection: Connection, args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    """``ctrader-twisted bars NAME``: trend bars of ``[--from, --to)``.

    :raises UsageError: a bad period, time, range, format or output (checked
        before connecting).
    """
    period = periodOption("period", args.period)
    periodName = ProtoOATrendbarPeriod.Name(period)

    async def plan(client: Any) -> _Plan:
        accountId = await connection.firstAccount()
        resolved, _ = await connection.resolveSymbols(accountId, [args.name])
        info = resolved[0]
        digits = info.priceDigits
        return _Plan(
            f"{periodName} bars of {info.name}",
            _barTable(digits),
            lambda a, b, skip: _history.trendbars(client, accountId, info.symbolId, period, a, b, digits=digits,
                                                  skip=skip),
        )

    return await _download(connection, args, stdout, stderr, plan, lambda: _barTable(5),
                           defaultSpan=_DEFAULT_BARS * PERIOD_MS[period])


async def ticks(connection: Connection, args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    """``ctrader-twisted ticks NAME``: historical ticks of ``[--from, --to)``.

    :raises UsageError: a bad side, time, range, format or output.
    """
    side = args.side

    async def plan(client: Any) -> _Plan:
        accountId = await connection.firstAccount()
        resolved, _ = await connection.resolveSymbols(accountId, [args.name])
        info = resolved[0]
        digits = info.priceDigits
        sides = "bid and ask" if side == "both" else side
        return _Plan(
            f"{sides} ticks of {info.name}",
            _tickTable(digits),
            lambda a, b, skip: _history.ticks(client, accountId, info.symbolId, a, b, side=side, digits=digits,
                                              skip=skip),
        )

    return await _download(connection, args, stdout, stderr, plan, lambda: _tickTable(5),
                           defaultSpan=_DEFAULT_SPAN_MS["ticks"])


async def deals(connection: Connection, args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    """``ctrader-twisted deals [ACCOUNT]``: the deals of an account in ``[--from, --to)``.

    :raises UsageError: a bad account, time, range, format or output.
    """

    async def plan(client: Any) -> _Plan:
        accountId = await _account(connection, args)
        listing = await client.request("ProtoOASymbolsListReq", ctidTraderAccountId=accountId)
        names = {int(s.symbolId): s.symbolName for s in listing.symbol}
        return _Plan(
            f"deals of account {accountId}",
            _dealTable(names),
            lambda a, b, skip: _history.deals(client, accountId, a, b, skip=skip),
        )

    return await _download(connection, args, stdout, stderr, plan, lambda: _dealTable({}),
                           defaultSpan=_DEFAULT_SPAN_MS["deals"])


async def cashflow(connection: Connection, args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    """``ctrader-twisted cashflow [ACCOUNT]``: deposits, withdrawals and other
    balance operations of an account in ``[--from, --to)``.

    :raises UsageError: a bad account, time, range, format or output.
    """

    async def plan(client: Any) -> _Plan:
        accountId = await _account(connection, args)
        return _Plan(
            f"balance operations of account {accountId}",
            _cashFlowTable(),
            lambda a, b, skip: _history.cashFlow(client, accountId, a, b, skip=skip),
        )

    return await _download(connection, args, stdout, stderr, plan, _cashFlowTable,
                           defaultSpan=_DEFAULT_SPAN_MS["cashflow"])


async def _account(connection: Connection, args: argparse.Namespace) -> int:
    if args.account is None:
        return await connection.firstAccount()
    ids = await connection.authorizeAccounts([args.account])
    return ids[0]


def _accountId(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"an account id is a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"an account id is a positive integer, got {text!r}")
    return value


async def _download(
    connection: Connection,
    args: argparse.Namespace,
    stdout: TextIO,
    stderr: TextIO,
    plan: Callable[[Any], Any],
    provisional: Callable[[], _Table],
    defaultSpan: int,
) -> int:
    """The steps every history command shares (see the module docstring)."""
    reactor = connection.reactor
    now = int(reactor.seconds() * 1000)
    end = parseTime(args.end, "--to") if args.end else now
    start = parseTime(args.start, "--from") if args.start else max(0, end - defaultSpan)
    if start >= end:
        raise UsageError("--from must be before --to")
    quiet = bool(args.quiet)
    if args.resume and not args.output:
        raise UsageError("--resume needs -o FILE")
    formatName = _formatOf(args)
    writerClass = _WRITERS[formatName]
    # Usage problems show before anything is asked of the server.
    _Output(args.output, writerClass(provisional()), stdout, stderr, quiet).check()
    if start >= now:
        say(stderr, f"warning: the range starts in the future ({_iso(start)}; now is {_iso(now)}): "
                    "nothing to download")
        return EXIT_OK
    if end > now:
        if not quiet:
            say(stderr, f"note: --to is in the future; downloading up to now ({_iso(now)})")
        end = now

    state: dict[str, Any] = {"interrupted": False, "download": None, "waiting": None}
    finished: Deferred[None] = Deferred()

    def interrupt() -> Deferred[None]:
        # Ctrl-C (the reactor is shutting down): stop, keep what arrived, then let it stop.
        state["interrupted"] = True
        if state["download"] is not None:
            state["download"].cancel()
        elif state["waiting"] is not None:
            state["waiting"].cancel()
        return finished

    trigger = reactor.addSystemEventTrigger("before", "shutdown", interrupt)
    output: _Output | None = None
    report: _ProgressReport | None = None
    try:
        try:
            waiting = state["waiting"] = ensureDeferred(connectOneShot(connection, stderr))
            client = await waiting
            waiting = state["waiting"] = ensureDeferred(plan(client))
            planned = await waiting
            state["waiting"] = None
            output = _Output(args.output, writerClass(planned.table), stdout, stderr, quiet)
            if output.path is None:
                point = None
                if args.resume:
                    raise UsageError("--resume needs -o FILE")
                output.startStdout()
            else:
                point = output.resumePoint(bool(args.resume))
            skip = 0
            if point is not None:
                resumeAt, skip = point
                if resumeAt > start:
                    start = resumeAt
                if start >= end:
                    output.finish()
                    say(stderr, f"{output.path} already holds {planned.what} up to {_iso(end)}: nothing to add")
                    return EXIT_OK
            download = planned.make(start, end, skip)
            state["download"] = download
            report = _ProgressReport(reactor, stderr, planned.what, args.verbose, quiet)
            report.start(download, output.resumedRows)
            async for batch in download.batches():
                output.write(batch)
        except CancelledError:
            return await _interrupted(connection, output, report, stderr)
        except UsageError:
            if output is not None:
                output.abandon()
            raise
        except Exception as error:
            if report is not None:
                report.stop()
            if state["interrupted"]:
                return await _interrupted(connection, output, report, stderr)
            if isBrokenPipe(error) and output is not None and output.path is None:
                return EXIT_BROKEN_PIPE  # `... | head`: the reader of stdout has gone; nothing to say
            say(stderr, f"error: {connection.describe(error)}")
            if output is not None:
                say(stderr, output.keep())
            return EXIT_FAILURE
        if report is not None:
            report.stop()
        output.finish()
        p = download.progress
        where = output.path or "stdout"
        if not output.held:
            say(stderr, f"warning: no {planned.what} between {_iso(start)} and {_iso(end)} "
                        "(market closed, or nothing happened then?); check --from and --to")
        elif not quiet:
            rate = f", {p.rateLimitRetries} rate-limit retries" if p.rateLimitRetries else ""
            say(stderr, f"{output.written:,} {planned.what} from {_iso(start)} to {_iso(end)} written to {where} "
                        f"({output.held:,} in all; {p.requests} requests in {p.elapsed(reactor.seconds()):.1f} s"
                        f"{rate})")
        return EXIT_OK
    finally:
        if report is not None:
            report.stop()
        reactor.removeSystemEventTrigger(trigger)
        if not finished.called:
            # On the next turn: the command has returned its status by then.
            reactor.callLater(0, finished.callback, None)


async def _interrupted(connection: Connection, output: _Output | None, report: _ProgressReport | None,
                       stderr: TextIO) -> int:
    """Ctrl-C: keep what arrived, say so, close the connection while the reactor still runs."""
    if report is not None:
        report.stop()
    kept = output.keep() if output is not None else "nothing was downloaded"
    say(stderr, f"interrupted: {kept}")
    await connection.close()
    return EXIT_INTERRUPTED


# --- the parsers ----------------------------------------------------------------------------


def addHistoryParsers(sub: Any, common: Any) -> None:
    """Add ``bars``, ``ticks``, ``deals`` and ``cashflow`` to the subparsers *sub*
    (each with the connection options of *common*)."""
    history = argparse.ArgumentParser(add_help=False)
    group = history.add_argument_group("history")
    group.add_argument("--from", dest="start", metavar="ISO",
                       help="start, ISO 8601 (UTC when no offset is given)")
    group.add_argument("--to", dest="end", metavar="ISO", help="end, excluded, ISO 8601 (default: now)")
    group.add_argument("--output", "-o", metavar="FILE",
                       help="write to FILE (through FILE.part, renamed when complete; default stdout)")
    group.add_argument("--format", choices=FORMATS,
                       help="csv (default), jsonl, or parquet (pip install 'ctrader-twisted[parquet]'); "
                            "default from FILE's extension")
    group.add_argument("--resume", action="store_true",
                       help="continue an interrupted download (FILE.part), or extend FILE, from its last row")
    group.add_argument("-q", "--quiet", action="store_true", help="no progress and no summary (errors and warnings only)")

    parents = [common, history]
    bars = sub.add_parser("bars", parents=parents, help="historical trend bars (CSV, JSON lines, Parquet)",
                          description="Download the trend bars of [--from, --to): time,open,high,low,close,volume.")
    bars.add_argument("name", metavar="SYMBOL")
    bars.add_argument("--period", default="H1", help="M1, M5, M15, H1, H4, D1, W1, MN1... (default H1)")
    ticks = sub.add_parser("ticks", parents=parents, help="historical ticks (bid and ask)",
                           description="Download the ticks of [--from, --to): time,side,price (default: the last hour).")
    ticks.add_argument("name", metavar="SYMBOL")
    ticks.add_argument("--side", choices=("bid", "ask", "both"), default="both", help="which prices (default both)")
    deals = sub.add_parser("deals", parents=parents, help="the deals of an account",
                           description="Download the deals executed in [--from, --to) (default: the last 30 days).")
    deals.add_argument("account", metavar="ACCOUNT", nargs="?", type=_accountId,
                       help="account id (default: --account, else the first of the token)")
    cash = sub.add_parser("cashflow", parents=parents, help="the deposits and withdrawals of an account",
                          description="Download the balance operations of [--from, --to) (default: the last 30 days).")
    cash.add_argument("account", metavar="ACCOUNT", nargs="?", type=_accountId,
                      help="account id (default: --account, else the first of the token)")

