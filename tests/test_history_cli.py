"""Tests for ``ctrader-twisted bars|ticks|deals|cashflow`` (:mod:`ctrader_twisted.cli.history`).

Commands run in-process with :func:`ctrader_twisted.cli.run` on the real
reactor, against the bundled simulator or a simulator of the test's own
(``--host``), so pacing is real time: ranges are kept to a few windows.
Ctrl-C and a killed download run the real entry point in a subprocess. The
simulator's deterministic history is the oracle: a file must hold exactly
its rows, once each, whatever happened on the way.
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import os
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable

from twisted.internet import reactor
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import Clock, deferLater
from twisted.trial.unittest import SkipTest, SynchronousTestCase, TestCase

from ctrader_twisted import cli, history
from ctrader_twisted.cli import history as clihistory
from ctrader_twisted.messages.OpenApiMessages_pb2 import ProtoOAGetTrendbarsReq
from ctrader_twisted.messages.OpenApiModelMessages_pb2 import ProtoOAQuoteType, ProtoOATrendbarPeriod
from ctrader_twisted.simulator import Simulator
from ctrader_twisted.simulator.accounthistory import pastOf
from ctrader_twisted.simulator.market import Market

from .test_history import withHandler
from .util import ROOT

DAY = 86_400_000
#: 2026-09-14, a Monday, 00:00 UTC.
MONDAY = 1_789_344_000_000
M1 = ProtoOATrendbarPeriod.M1
HEADER = "time,open,high,low,close,volume"


def iso(ms: int) -> str:
    return clihistory._iso(ms)


def oracleBars(start: int, end: int, symbolId: int = 1, period: int = M1) -> list[str]:
    """The CSV rows of the simulator's bars of ``[start, end)``."""
    state = Market(0).symbols[symbolId]
    rows = history.decodeTrendbars(list(state.historicalBars(period, start, end)), state.digits)
    return [",".join([iso(b.timestamp), *(format(v, "f") for v in b[1:5]), str(b.volume)]) for b in rows]


def lines(path: str | Path) -> list[str]:
    return Path(path).read_text().splitlines()


class HistoryCommandTestCase(TestCase):
    def setUp(self) -> None:
        home = Path(self.mktemp())
        home.mkdir()
        self.environ = {"HOME": str(home)}
        self.folder = Path(self.mktemp())
        self.folder.mkdir()

    def call(self, *argv: str, environ: dict[str, str] | None = None, stderr: Any = None) -> Deferred[Any]:
        stdout, err = io.StringIO(), stderr if stderr is not None else io.StringIO()

        async def go() -> tuple[int, str, str]:
            code = await cli.run(reactor, list(argv), stdout, err, self.environ if environ is None else environ)
            return code, stdout.getvalue(), err.getvalue()

        return ensureDeferred(go())

    def own(self, seed: int = 0) -> tuple[Simulator, dict[str, str], str]:
        """A simulator of the test's own over loopback TLS: it, the environment and the CA file."""
        sim = Simulator(seed=seed, clock=reactor)
        listening = sim.listen(reactor, tlsPort=0, wsPort=None)
        self.addCleanup(sim.stop)
        ca = str(self.folder / "ca.pem")
        Path(ca).write_bytes(listening.caPEM)
        environ = dict(
            self.environ, CTRADER_HOST="localhost", CTRADER_PORT=str(listening.tlsPort),
            CTRADER_CLIENT_ID=sim.clientId, CTRADER_CLIENT_SECRET=sim.clientSecret,
            CTRADER_ACCESS_TOKEN=sim.accessToken,
        )
        return sim, environ, ca

    def refuseTrendbars(self, sim: Simulator, after: int, code: str = "INCORRECT_BOUNDARIES") -> list[int]:
        """From the *after*-th on, answer trend-bar requests with *code* (a permanent error)."""
        count = [0]

        def wrap(handler: Callable[..., None]) -> Callable[..., None]:
            def refusing(session: Any, account: Any, req: Any, clientMsgId: Any) -> None:
                count[0] += 1
                if count[0] >= after:
                    session.oaError(code, "refused by the test", clientMsgId, account.ctidTraderAccountId)
                    return
                handler(session, account, req, clientMsgId)
            return refusing

        withHandler(sim, ProtoOAGetTrendbarsReq, wrap)
        return count

    async def waitFor(self, condition: Callable[[], bool], seconds: float = 20.0) -> None:
        waited = 0.0
        while not condition():
            if waited > seconds:
                self.fail(f"not within {seconds} s")
            await deferLater(reactor, 0.05, lambda: None)
            waited += 0.05


class FileTests(HistoryCommandTestCase):
    async def test_barsToFile(self) -> None:
        """Every bar of the range, exactly, through FILE.part renamed when complete."""
        path = self.folder / "eurusd.csv"
        start, end = MONDAY, MONDAY + 2 * DAY
        code, out, err = await self.call("bars", "EURUSD", "--period", "M1", "--from", iso(start), "--to", iso(end),
                                         "-o", str(path))
        self.assertEqual(code, 0, err)
        self.assertEqual(out, "")
        self.assertEqual(lines(path), [HEADER, *oracleBars(start, end)])
        self.assertFalse(Path(f"{path}.part").exists())
        self.assertIn("M1 bars of EURUSD", err)
        self.assertIn("written to", err)

    async def test_unknownSymbolLeavesTheFile(self) -> None:
        """An unknown symbol: exit 1, one error line, the existing file untouched, no FILE.part."""
        path = self.folder / "keep.csv"
        path.write_text("precious\n")
        code, _, err = await self.call("bars", "NOSUCH", "--from", "2026-09-14", "--to", "2026-09-15", "-o", str(path))
        self.assertEqual(code, cli.EXIT_FAILURE)
        self.assertIn("unknown symbol 'NOSUCH'", err)
        self.assertNotIn("Traceback", err)
        self.assertEqual(path.read_text(), "precious\n")
        self.assertFalse(Path(f"{path}.part").exists())

    async def test_failureKeepsThePartThenResumes(self) -> None:
        """The server fails for good mid-download: exit 1, FILE untouched, the rows so far
        kept in FILE.part; --resume then completes it without a gap or a doubled row."""
        sim, environ, ca = self.own()
        count = self.refuseTrendbars(sim, after=3)
        path = self.folder / "bars.csv"
        path.write_text("precious\n")
        start, end = MONDAY - 3 * DAY, MONDAY + 6 * DAY
        argv = ["bars", "EURUSD", "--period", "M1", "--from", iso(start), "--to", iso(end), "-o", str(path),
                "--ca-file", ca]
        code, _, err = await self.call(*argv, environ=environ)
        self.assertEqual(code, cli.EXIT_FAILURE, err)
        self.assertIn("INCORRECT_BOUNDARIES", err)
        self.assertIn("--resume", err)
        self.assertEqual(path.read_text(), "precious\n")
        part = lines(f"{path}.part")
        expected = oracleBars(start, end)
        self.assertGreater(len(part), 1)
        self.assertEqual(part, [HEADER, *expected[: len(part) - 1]])
        count[0] = -10**9  # the server answers again
        code, _, err = await self.call(*argv, "--resume", environ=environ)
        self.assertEqual(code, 0, err)
        self.assertEqual(lines(path), [HEADER, *expected])
        self.assertFalse(Path(f"{path}.part").exists())

    async def test_interruptedInProcess(self) -> None:
        """Cancelled mid-download (what Ctrl-C does): 130, FILE untouched, the rows kept; --resume completes."""
        path = self.folder / "bars.csv"
        path.write_text("precious\n")
        part = Path(f"{path}.part")
        start, end = MONDAY - 20 * DAY, MONDAY
        argv = ["bars", "EURUSD", "--period", "M1", "--from", iso(start), "--to", iso(end), "-o", str(path)]
        running = self.call(*argv)
        await self.waitFor(lambda: part.exists() and len(part.read_bytes().splitlines()) > 1)
        running.cancel()
        code, _, err = await running
        self.assertEqual(code, clihistory.EXIT_INTERRUPTED, err)
        self.assertIn("interrupted: kept", err)
        self.assertEqual(path.read_text(), "precious\n")
        kept = lines(part)
        expected = oracleBars(start, end)
        self.assertLess(len(kept) - 1, len(expected))
        self.assertEqual(kept, [HEADER, *expected[: len(kept) - 1]])
        code, _, err = await self.call(*argv, "--resume")
        self.assertEqual(code, 0, err)
        self.assertEqual(lines(path), [HEADER, *expected])

    async def test_extendAnExistingFile(self) -> None:
        """--resume on a complete FILE extends it (through FILE.part), from its last row."""
        path = self.folder / "bars.csv"
        start = MONDAY
        code, _, err = await self.call("bars", "EURUSD", "--period", "H1", "--from", iso(start), "--to", iso(start + DAY),
                                       "-o", str(path))
        self.assertEqual(code, 0, err)
        code, _, err = await self.call("bars", "EURUSD", "--period", "H1", "--from", iso(start), "--to",
                                       iso(start + 3 * DAY), "-o", str(path), "--resume")
        self.assertEqual(code, 0, err)
        self.assertEqual(lines(path), [HEADER, *oracleBars(start, start + 3 * DAY, period=ProtoOATrendbarPeriod.H1)])
        self.assertIn("resuming from the last row", err)

    async def test_futureAndEmptyRanges(self) -> None:
        """A range in the future warns and writes nothing; a range without data warns and
        writes the header only (exit 0 both)."""
        path = self.folder / "none.csv"
        code, _, err = await self.call("bars", "EURUSD", "--from", "2037-01-01", "--to", "2037-02-01", "-o", str(path))
        self.assertEqual(code, 0, err)
        self.assertIn("warning: the range starts in the future", err)
        self.assertFalse(path.exists())
        saturday = MONDAY - 2 * DAY
        code, _, err = await self.call("bars", "EURUSD", "--period", "M1", "--from", iso(saturday), "--to",
                                       iso(saturday + DAY), "-o", str(path))
        self.assertEqual(code, 0, err)
        self.assertIn("warning: no M1 bars of EURUSD", err)
        self.assertEqual(lines(path), [HEADER])

    async def test_usage(self) -> None:
        """Bad combinations exit 2 with a message naming the problem, before connecting."""
        for argv, fragment in (
            (["bars", "EURUSD", "--resume"], "--resume needs -o FILE"),
            (["bars", "EURUSD", "--format", "parquet"], "needs -o FILE"),
            (["bars", "EURUSD", "-o", str(self.folder / "no" / "such.csv")], "no folder"),
            (["bars", "EURUSD", "--from", "1960-01-01"], "1970"),
            (["deals", "abc"], "account id"),
            (["ticks", "EURUSD", "--side", "mid"], "invalid choice"),
        ):
            code, _, err = await self.call(*argv)
            self.assertEqual(code, cli.EXIT_USAGE, (argv, err))
            self.assertIn(fragment, err, argv)

    async def test_anotherDownloadHoldsThePart(self) -> None:
        path = self.folder / "bars.csv"
        handle = open(f"{path}.part", "w")
        self.addCleanup(handle.close)
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        code, _, err = await self.call("bars", "EURUSD", "--from", iso(MONDAY), "--to", iso(MONDAY + DAY),
                                       "-o", str(path))
        self.assertEqual(code, cli.EXIT_USAGE, err)
        self.assertIn("being written by another download", err)


class FormatTests(HistoryCommandTestCase):
    async def test_jsonLines(self) -> None:
        path = self.folder / "bars.jsonl"
        start, end = MONDAY, MONDAY + DAY
        code, _, err = await self.call("bars", "EURUSD", "--period", "M5", "--from", iso(start), "--to", iso(end),
                                       "-o", str(path))
        self.assertEqual(code, 0, err)
        records = [json.loads(line, parse_float=Decimal) for line in lines(path)]
        expected = oracleBars(start, end, period=ProtoOATrendbarPeriod.M5)
        self.assertEqual(len(records), len(expected))
        for record, row in zip(records, expected):
            self.assertEqual(list(record), ["time", "timeMs", "open", "high", "low", "close", "volume"])
            self.assertEqual(record["timeMs"], clihistory._parseIso(record["time"]))
            self.assertEqual(",".join([record["time"], *(format(record[k], "f") for k in ("open", "high", "low", "close")),
                                       str(record["volume"])]), row)

    async def test_jsonLinesWrittenBeforeTimeMsResume(self) -> None:
        """A JSON lines file written before ``timeMs`` existed is extended by --resume; new rows carry it."""
        path = self.folder / "bars.jsonl"
        start = MONDAY
        code, _, err = await self.call("bars", "EURUSD", "--period", "H1", "--from", iso(start), "--to", iso(start + DAY),
                                       "-o", str(path))
        self.assertEqual(code, 0, err)
        old = [json.loads(line) for line in lines(path)]
        for record in old:
            del record["timeMs"]
        path.write_text("".join(json.dumps(record) + "\n" for record in old))
        code, _, err = await self.call("bars", "EURUSD", "--period", "H1", "--from", iso(start), "--to",
                                       iso(start + 2 * DAY), "-o", str(path), "--resume")
        self.assertEqual(code, 0, err)
        records = [json.loads(line) for line in lines(path)]
        self.assertEqual(len(records), len(oracleBars(start, start + 2 * DAY, period=ProtoOATrendbarPeriod.H1)))
        self.assertEqual(sum("timeMs" in r for r in records), len(records) - len(old) + 1)  # the last old bar is fetched again

    def arrow(self) -> Any:
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise SkipTest("pyarrow is not installed (pip install 'ctrader-twisted[parquet]')")
        return pq

    async def test_parquetInterruptedThenResumed(self) -> None:
        """Parquet: a valid file even when interrupted; --resume rewrites it and goes on."""
        pq = self.arrow()
        path = self.folder / "bars.parquet"
        part = Path(f"{path}.part")
        start, end = MONDAY - 12 * DAY, MONDAY
        argv = ["bars", "EURUSD", "--period", "M1", "--from", iso(start), "--to", iso(end), "-o", str(path)]
        running = self.call(*argv)
        await self.waitFor(lambda: part.exists() and part.stat().st_size > 10_000)
        running.cancel()
        code, _, err = await running
        self.assertEqual(code, clihistory.EXIT_INTERRUPTED, err)
        self.assertLess(pq.read_table(part).num_rows, len(oracleBars(start, end)))
        code, _, err = await self.call(*argv, "--resume")
        self.assertEqual(code, 0, err)
        table = pq.read_table(path)
        self.assertEqual(table.schema.field("open").type.scale, 5)
        got = [
            ",".join([iso(int(t.value)), *(format(o.as_py(), "f") for o in ohlc), str(v.as_py())])
            for t, *ohlc, v in zip(*(table.column(n) for n in ("time", "open", "high", "low", "close", "volume")))
        ]
        self.assertEqual(got, oracleBars(start, end))

    async def test_parquetWithoutPyarrow(self) -> None:
        """Without pyarrow, --format parquet says how to get it (exit 2, nothing written)."""
        for name in ("pyarrow", "pyarrow.parquet"):  # an import of either fails
            self.addCleanup(sys.modules.__setitem__, name, sys.modules[name]) if name in sys.modules else \
                self.addCleanup(sys.modules.pop, name, None)
            sys.modules[name] = None  # type: ignore[assignment]
        path = self.folder / "bars.parquet"
        code, _, err = await self.call("bars", "EURUSD", "--from", iso(MONDAY), "--to", iso(MONDAY + DAY),
                                       "-o", str(path))
        self.assertEqual(code, cli.EXIT_USAGE)
        self.assertIn("pip install 'ctrader-twisted[parquet]'", err)
        self.assertFalse(path.exists())


class KindsTests(HistoryCommandTestCase):
    async def test_ticks(self) -> None:
        start, end = MONDAY + 10 * 3_600_000, MONDAY + 11 * 3_600_000
        code, out, err = await self.call("ticks", "EURUSD", "--side", "bid", "--from", iso(start), "--to", iso(end))
        self.assertEqual(code, 0, err)
        rows = list(csv.reader(io.StringIO(out)))
        self.assertEqual(rows[0], ["time", "side", "price"])
        state = Market(0).symbols[1]
        expected = [[iso(t), "bid", format(history.wirePrice(p, 5), "f")]
                    for t, p in reversed(list(state.historicalTicks(ProtoOAQuoteType.BID, start, end - 1)))]
        self.assertEqual(rows[1:], expected)

    async def test_dealsAndCashFlow(self) -> None:
        sim, environ, ca = self.own()
        account = sim.accounts[sim.accountIds[0]]
        past = pastOf(sim, account)
        start, end = account.registrationTimestamp - 40 * DAY, account.registrationTimestamp
        path = self.folder / "deals.csv"
        code, _, err = await self.call("deals", str(account.ctidTraderAccountId), "--from", iso(start), "--to",
                                       iso(end), "-o", str(path), "--ca-file", ca, environ=environ)
        self.assertEqual(code, 0, err)
        rows = list(csv.DictReader(path.open()))
        expected = [d for d in past.deals if start <= d.executionTimestamp < end]
        self.assertEqual([int(r["deal"]) for r in rows], [d.dealId for d in expected])
        self.assertTrue(all(r["symbol"] in ("EURUSD", "GBPUSD", "XAUUSD", "US100.cash") for r in rows))
        closing = [r for r in rows if r["balance"]]
        self.assertTrue(closing)
        start = account.registrationTimestamp - 60 * DAY
        code, out, err = await self.call("cashflow", "--from", iso(start), "--to", iso(end), "--ca-file", ca,
                                         "--format", "jsonl", environ=environ)
        self.assertEqual(code, 0, err)
        records = [json.loads(line, parse_float=Decimal) for line in out.splitlines()]
        expected = [(t, delta, after) for t, delta, after in past.cashFlow if start <= t < end]
        self.assertEqual([(r["balance"], r["delta"], r["type"]) for r in records],
                         [(Decimal(after).scaleb(-2), Decimal(abs(delta)).scaleb(-2),
                           "BALANCE_DEPOSIT" if delta >= 0 else "BALANCE_WITHDRAW") for _, delta, after in expected])
        self.assertEqual(records[-1]["balance"], 0, "the past ends with the balance withdrawn")


class ProgressTests(SynchronousTestCase):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    def download(self, clock: Clock) -> Any:
        client = type("C", (), {"clock": clock})()
        download = history.deals(client, 1, 0, 10 * DAY)  # type: ignore[arg-type]
        p = download.progress
        p.startedAt, p.windowsDone, p.windowsTotal, p.rows, p.coveredUntil = 0.0, 4, 10, 12_000, 4 * DAY
        return download

    def test_terminal(self) -> None:
        """On a terminal: one line rewritten in place (windows, rows, rate, ETA), cleared at the end."""
        clock = Clock()
        clock.advance(8)
        stderr = self.Terminal()
        report = clihistory._ProgressReport(clock, stderr, "deals of account 1", verbose=0, quiet=False)
        report.start(self.download(clock), 0)
        clock.advance(0.5)
        report.stop()
        text = stderr.getvalue()
        # 8.5 s in: 12,000 rows at 1,412 rows/s, 40 % of the range, 12.75 s to go.
        self.assertIn("\rdeals of account 1: 4/10 windows, 12,000 rows, 1,412 rows/s, 40%, ETA 0:13", text)
        self.assertTrue(text.endswith("\r\x1b[K"))

    def test_verboseAndQuiet(self) -> None:
        """Not a terminal: progress lines only with -v, every few seconds; never with -q."""
        clock = Clock()
        for verbose, quiet, expected in ((0, False, 0), (1, False, 2), (1, True, 0)):
            stderr = io.StringIO()
            report = clihistory._ProgressReport(clock, stderr, "x", verbose=verbose, quiet=quiet)
            report.start(self.download(clock), 0)
            clock.advance(clihistory._VERBOSE_EVERY)
            clock.advance(clihistory._VERBOSE_EVERY)
            report.stop()
            self.assertEqual(stderr.getvalue().count("windows"), expected, (verbose, quiet))


class EntryPointTests(TestCase):
    """The real entry point in a subprocess: Ctrl-C and kill."""

    def spawn(self, path: Path, days: int) -> subprocess.Popen[bytes]:
        home = Path(self.mktemp())
        home.mkdir()
        env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "PYTHONPATH": str(ROOT)}
        start, end = MONDAY - days * DAY, MONDAY
        process = subprocess.Popen(
            [sys.executable, "-m", "ctrader_twisted.cli", "bars", "EURUSD", "--period", "M1", "--from", iso(start),
             "--to", iso(end), "-o", str(path)],
            env=env, cwd=str(ROOT), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        self.addCleanup(lambda: process.poll() is None and process.kill())
        return process

    async def rowsIn(self, part: Path, process: subprocess.Popen[bytes], seconds: float = 30.0) -> None:
        waited = 0.0
        while not (part.exists() and part.read_bytes().count(b"\n") > 1):
            if process.poll() is not None or waited > seconds:
                self.fail(f"no rows in {part} (exit {process.poll()}): {process.stderr.read()!r}")  # type: ignore[union-attr]
            await deferLater(reactor, 0.05, lambda: None)
            waited += 0.05

    async def finished(self, process: subprocess.Popen[bytes], seconds: float = 20.0) -> int:
        waited = 0.0
        while process.poll() is None:
            if waited > seconds:
                self.fail(f"still running after {seconds} s")
            await deferLater(reactor, 0.05, lambda: None)
            waited += 0.05
        return process.returncode

    async def test_ctrlC(self) -> None:
        """SIGINT mid-download: exit 130, says what was kept, the existing file untouched."""
        folder = Path(self.mktemp()).resolve()
        folder.mkdir()
        path = folder / "year.csv"
        path.write_text("precious\n")
        process = self.spawn(path, 365)
        part = Path(f"{path}.part")
        await self.rowsIn(part, process)
        process.send_signal(signal.SIGINT)
        code = await self.finished(process)
        err = process.stderr.read().decode()  # type: ignore[union-attr]
        self.assertEqual(code, 130, err)
        self.assertIn("interrupted: kept", err)
        self.assertNotIn("Traceback", err)
        self.assertEqual(path.read_text(), "precious\n")
        kept = lines(part)
        last = clihistory._parseIso(kept[-1].split(",")[0])
        self.assertEqual(kept, [HEADER, *oracleBars(MONDAY - 365 * DAY, last + 60_000)])

    async def test_killedThenResumed(self) -> None:
        """SIGKILL mid-download (a torn last line, maybe), then --resume: the file is exact."""
        folder = Path(self.mktemp()).resolve()
        folder.mkdir()
        path = folder / "bars.csv"
        process = self.spawn(path, 20)
        await self.rowsIn(Path(f"{path}.part"), process)
        process.kill()
        await self.finished(process)
        self.assertFalse(path.exists())
        stdout, stderr = io.StringIO(), io.StringIO()
        home = Path(self.mktemp())
        home.mkdir()
        code = await cli.run(reactor, ["bars", "EURUSD", "--period", "M1", "--from", iso(MONDAY - 20 * DAY), "--to",
                                       iso(MONDAY), "-o", str(path), "--resume"], stdout, stderr, {"HOME": str(home)})
        self.assertEqual(code, 0, stderr.getvalue())
        self.assertEqual(lines(path), [HEADER, *oracleBars(MONDAY - 20 * DAY, MONDAY)])


class ExampleAndBenchTests(TestCase):
    """docs/examples/download_history.py and ``python -m bench.history --quick`` run and say what they should."""

    def run_(self, *argv: str) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONDONTWRITEBYTECODE="1")
        return subprocess.run([sys.executable, *argv], cwd=str(ROOT), env=env, capture_output=True, text=True,
                              timeout=120)

    def test_example(self) -> None:
        done = self.run_(str(ROOT / "docs" / "examples" / "download_history.py"))
        self.assertEqual(done.returncode, 0, done.stderr[-2000:])
        self.assertRegex(done.stdout, r"1430 M5 bars of EURUSD, highest 1\.\d{5}, \d+ requests in \d windows")
        self.assertRegex(done.stdout, r"\d+ deals in 30 days, \d+ closing, gross profit -?\d+\.\d\d")

    def test_benchQuick(self) -> None:
        output = os.path.abspath(self.mktemp())
        done = self.run_("-m", "bench.history", "--quick", "--output", output)
        self.assertEqual(done.returncode, 0, done.stderr[-2000:])
        report = json.loads(Path(output).read_text())
        for name, runs in report["runs"].items():
            for one in runs:
                self.assertNotIn("error", one, name)
                self.assertGreater(one["rows"], 0, name)
                self.assertEqual(one["server_refusals"], 0, name)
        self.assertIn("M1 bars, 8 days", done.stdout)
