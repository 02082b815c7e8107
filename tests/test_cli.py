"""Tests for the ``ctrader-twisted`` console command.

Commands run in-process with :func:`ctrader_twisted.cli.run` against the
simulator over loopback; one subprocess test runs the real entry point.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

from ctrader_twisted import cli
from ctrader_twisted.client import Client
from ctrader_twisted.history import TRENDBAR_WINDOW_MS
from ctrader_twisted.messages.OpenApiModelMessages_pb2 import ProtoOATrendbarPeriod
from ctrader_twisted.simulator import Simulator

ROOT = Path(__file__).resolve().parent.parent


class CommandTests(TestCase):
    """``ctrader-twisted`` commands in-process (offline default: the simulator)."""

    def setUp(self) -> None:
        home = Path(self.mktemp())
        home.mkdir()
        self.environ = {"HOME": str(home)}

    @inlineCallbacks
    def call(self, *argv: str, environ: dict[str, str] | None = None) -> Any:
        stdout, stderr = io.StringIO(), io.StringIO()
        code = yield cli.run(reactor, list(argv), stdout, stderr, self.environ if environ is None else environ)
        return code, stdout.getvalue(), stderr.getvalue()

    def assertOneLineError(self, stderr: str, fragment: str) -> None:
        errors = [line for line in stderr.splitlines() if "error" in line]
        self.assertEqual(len(errors), 1, stderr)
        self.assertIn(fragment, errors[0])
        self.assertNotIn("Traceback", stderr)

    @inlineCallbacks
    def test_stream(self) -> Any:
        """Without a host, ``stream`` reads the in-process simulator and says so; every line is marked simulated."""
        code, out, err = yield self.call("stream", "EURUSD,XAUUSD", "--count", "6", "--sim-interval", "0.05")
        self.assertEqual(code, cli.EXIT_OK)
        records = [json.loads(line, parse_float=Decimal) for line in out.splitlines()]
        self.assertEqual(len(records), 6)
        self.assertTrue(all(r["simulated"] is True and r["event"] == "spot" for r in records))
        self.assertIn("SIMULATED DATA", err)

    @inlineCallbacks
    def test_streamToFile(self) -> Any:
        """``-o FILE`` appends the lines to FILE; stdout stays empty."""
        path = self.mktemp()
        code, out, _ = yield self.call("stream", "EURUSD", "--count", "2", "--sim-interval", "0.05", "-o", path)
        self.assertEqual((code, out), (0, ""))
        self.assertEqual(len(Path(path).read_text().splitlines()), 2)

    @inlineCallbacks
    def test_streamUnknownSymbol(self) -> Any:
        """An unknown symbol: exit 1, one error line, no output."""
        code, out, err = yield self.call("stream", "EURUSD", "GBPJPY")
        self.assertEqual(code, cli.EXIT_FAILURE)
        self.assertEqual(out, "")
        self.assertOneLineError(err, "unknown symbol 'GBPJPY'")

    @inlineCallbacks
    def test_unknownSymbolSuggestsTheClosest(self) -> Any:
        """A misspelt symbol: the error names the closest ones."""
        code, out, err = yield self.call("stream", "EURSUD")
        self.assertEqual(code, cli.EXIT_FAILURE)
        self.assertOneLineError(err, "did you mean EURUSD?")

    @inlineCallbacks
    def test_usageErrors(self) -> Any:
        """Bad option values: exit 2 and a one-line message, never a traceback."""
        for argv, fragment in (
            (["stream", "EURUSD", "--trendbars", "M7"], "unknown trend bar period"),
            (["stream", "EURUSD", "--count", "0"], "--count"),
            (["stream", "EURUSD", "--duration", "nan"], "--duration"),
            (["stream", "EURUSD", "--sim-interval", "nan"], "--sim-interval"),
            (["stream", "EURUSD", "--sim-interval", "inf"], "--sim-interval"),
            (["accounts", "--timeout", "nan"], "--timeout"),
            (["accounts", "--timeout", "-inf"], "--timeout"),
            (["bars", "EURUSD", "--from", "yesterday"], "ISO 8601"),
            (["bars", "EURUSD", "--from", "2026-01-02", "--to", "2026-01-01"], "before"),
            (["frobnicate"], "invalid choice"),
        ):
            code, _, err = yield self.call(*argv)
            self.assertEqual(code, cli.EXIT_USAGE, argv)
            self.assertIn(fragment, err)
            self.assertNotIn("Traceback", err)

    @inlineCallbacks
    def test_malformedConfig(self) -> Any:
        """A malformed config file is a configuration error: exit 2, one line."""
        path = Path(self.mktemp())
        path.write_text("host = [\n")
        code, _, err = yield self.call("stream", "EURUSD", "--config", str(path))
        self.assertEqual(code, cli.EXIT_USAGE)
        self.assertOneLineError(err, "malformed config file")

    @inlineCallbacks
    def test_accounts(self) -> Any:
        """``accounts`` lists the two accounts of the simulator's token as a table."""
        code, out, _ = yield self.call("accounts")
        self.assertEqual(code, 0)
        rows = [line.split() for line in out.splitlines()]
        self.assertEqual(rows[0], ["account", "live", "login", "broker"])
        self.assertEqual([r[:2] for r in rows[1:]], [["2000001", "no"], ["2000002", "yes"]])

    @inlineCallbacks
    def test_symbols(self) -> Any:
        """``symbols`` lists the symbols of the first account, sorted by name."""
        code, out, _ = yield self.call("symbols")
        self.assertEqual(code, 0)
        names = [line.split()[1] for line in out.splitlines()[1:]]
        self.assertIn("EURUSD", names)
        self.assertEqual(names, sorted(names))

    @inlineCallbacks
    def test_symbol(self) -> Any:
        """``symbol`` matches the name case-insensitively and shows volumes in units."""
        code, out, _ = yield self.call("symbol", "eurusd")
        self.assertEqual(code, 0)
        fields = dict((line.split(None, 1) + [""])[:2] for line in out.splitlines())
        self.assertEqual(fields["name"], "EURUSD")
        self.assertEqual(fields["digits"], "5")
        self.assertEqual(fields["lotSize"], "100,000 units")
        self.assertEqual((fields["baseAsset"], fields["quoteAsset"]), ("EUR", "USD"))
        self.assertEqual(fields["minVolume"], "1,000 units (0.01 lots)")

    @inlineCallbacks
    def test_bars(self) -> Any:
        """``bars`` writes the bars of [from, to) as CSV, oldest first, prices with the symbol's digits."""
        code, out, err = yield self.call("bars", "XAUUSD", "--period", "M15", "--from", "2026-01-06T08:00:00Z",
                                         "--to", "2026-01-06T14:00:00+00:00")
        self.assertEqual(code, 0, err)
        rows = list(csv.reader(io.StringIO(out)))
        self.assertEqual(rows[0], ["time", "open", "high", "low", "close", "volume"])
        times = [r[0] for r in rows[1:]]
        self.assertEqual(len(times), 24)
        self.assertEqual(times[0], "2026-01-06T08:00:00.000Z")
        self.assertEqual(times, sorted(times))
        for row in rows[1:]:
            o, h, l, c = (Decimal(x) for x in row[1:5])
            self.assertEqual(-o.as_tuple().exponent, 2)
            self.assertLessEqual(l, min(o, c))
            self.assertGreaterEqual(h, max(o, c))

    @inlineCallbacks
    def test_barsAcrossSeveralWindows(self) -> Any:
        """A range longer than the server allows per request is fetched in windows, without duplicates."""
        # M5 bars over 8 days: three windows of at most 3.5 days.
        requests = []
        original = Client.request

        def counting(client: Any, message: Any, *args: Any, **kwargs: Any) -> Any:
            if message == "ProtoOAGetTrendbarsReq":
                requests.append((kwargs["fromTimestamp"], kwargs["toTimestamp"]))
            return original(client, message, *args, **kwargs)

        self.patch(Client, "request", counting)
        code, out, err = yield self.call("bars", "EURUSD", "--period", "M5", "--from", "2025-12-01", "--to", "2025-12-09")
        self.assertEqual(code, 0, err)
        self.assertEqual(len(requests), 3)
        for start, end in requests:
            self.assertLessEqual(end - start, TRENDBAR_WINDOW_MS[ProtoOATrendbarPeriod.M5])
        times = [line.split(",")[0] for line in out.splitlines()[1:]]
        self.assertEqual(len(times), len(set(times)))
        self.assertEqual(times, sorted(times))
        self.assertGreater(len(times), 1000)

    @inlineCallbacks
    def test_remoteAgainstSimulatorWithEnvironmentCredentials(self) -> Any:
        """With a host: credentials from the environment, never shown; TLS and credential failures are one line."""
        sim = Simulator(seed=5, clock=reactor, spotInterval=0.05)
        listening = sim.listen(reactor, tlsPort=0, wsPort=None)
        self.addCleanup(sim.stop)
        ca = self.mktemp()
        Path(ca).write_bytes(listening.caPEM)
        environ = dict(
            self.environ, CTRADER_HOST="localhost", CTRADER_PORT=str(listening.tlsPort),
            CTRADER_CLIENT_ID=sim.clientId, CTRADER_CLIENT_SECRET=sim.clientSecret,
            CTRADER_ACCESS_TOKEN=sim.accessToken, CTRADER_ACCOUNT_ID="2000002",
        )
        code, out, err = yield self.call("stream", "EURUSD", "--count", "2", "--ca-file", ca, environ=environ)
        self.assertEqual(code, 0, err)
        records = [json.loads(line) for line in out.splitlines()]
        # A ctrader-twisted simulator started separately: its version answer says so.
        self.assertEqual({(r["account"], r["simulated"]) for r in records}, {(2000002, True)})
        self.assertIn(f"SIMULATED DATA: localhost:{listening.tlsPort} is a ctrader-twisted simulator", err)
        self.assertNotIn(sim.clientSecret, err)
        self.assertNotIn(sim.accessToken, err)
        code, _, err = yield self.call("accounts", environ=environ)
        self.assertEqual(code, cli.EXIT_FAILURE)
        self.assertOneLineError(err, "TLS certificate verification failed")
        code, _, err = yield self.call("accounts", "--ca-file", ca, "--client-secret", "nope", environ=environ)
        self.assertEqual(code, cli.EXIT_FAILURE)
        self.assertOneLineError(err, "refused the application credentials")

    def test_simulatorHelp(self) -> None:
        """``simulator --help`` prints the simulator's own options, argparse style like every command."""
        out = io.StringIO()
        self.patch(sys, "stdout", out)
        code = self.successResultOf(cli.run(reactor, ["simulator", "--help"], out, io.StringIO(), self.environ))
        self.assertEqual(code, 0)
        text = out.getvalue()
        self.assertTrue(text.startswith("usage: ctrader-twisted simulator [-h] [--version]"), text)
        self.assertIn("--tls-port PORT", text)
        self.assertIn("options:", text)

    @inlineCallbacks
    def test_simulatorBadOption(self) -> Any:
        """A bad simulator option exits 2 and names the option."""
        code, _, err = yield self.call("simulator", "--tls-port", "bogus")
        self.assertEqual(code, cli.EXIT_USAGE)
        self.assertIn("--tls-port", err)


class EntryPointTests(TestCase):
    """The real console entry point, in a subprocess (one fast smoke test)."""

    @inlineCallbacks
    def test_streamCount(self) -> Any:
        """``python -m ctrader_twisted.cli stream --count N`` writes N lines and exits 0."""
        home = self.mktemp()
        os.mkdir(home)
        env = {"PATH": os.environ.get("PATH", ""), "HOME": home, "PYTHONPATH": str(ROOT)}
        out, err, code = yield getProcessOutputAndValue(
            sys.executable,
            ["-m", "ctrader_twisted.cli", "stream", "EURUSD", "--count", "5", "--sim-interval", "0.05"],
            env=env,
            path=str(ROOT),
        )
        self.assertEqual(code, 0, err)
        records = [json.loads(line) for line in out.decode().splitlines()]
        self.assertEqual(len(records), 5)
        self.assertTrue(all(r["simulated"] for r in records))
        self.assertIn(b"SIMULATED DATA", err)
        self.assertNotIn(b"Traceback", err)

    @inlineCallbacks
    def test_usageErrorExitsTwo(self) -> Any:
        out, err, code = yield getProcessOutputAndValue(
            sys.executable, ["-m", "ctrader_twisted.cli", "stream"], env={"PYTHONPATH": str(ROOT)}, path=str(ROOT)
        )
        self.assertEqual(code, 2)
        self.assertIn(b"the following arguments are required: SYMBOL", err)
