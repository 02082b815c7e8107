"""Tests for ctrader_twisted.cli.options: the option checks shared by the
console command and the twistd plugin."""

from __future__ import annotations

from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from ctrader_twisted.cli.options import (
    UsageError,
    openOutput,
    parsePeriod,
    periodNames,
    periodOption,
    portNumber,
    positiveNumber,
    splitNames,
)
from ctrader_twisted.messages.OpenApiModelMessages_pb2 import ProtoOATrendbarPeriod


class PeriodTests(SynchronousTestCase):
    """Trend bar period names."""

    def test_parsePeriod(self) -> None:
        self.assertEqual(parsePeriod("M1"), ProtoOATrendbarPeriod.M1)
        self.assertEqual(parsePeriod("m15"), ProtoOATrendbarPeriod.M15)
        self.assertEqual(parsePeriod("MN1"), ProtoOATrendbarPeriod.MN1)
        with self.assertRaises(ValueError) as raised:
            parsePeriod("M7")
        self.assertIn("M15", str(raised.exception))

    def test_periodOptionNamesTheOption(self) -> None:
        self.assertEqual(periodOption("period", " h4 "), ProtoOATrendbarPeriod.H4)
        with self.assertRaises(UsageError) as raised:
            periodOption("period", "M7")
        self.assertTrue(str(raised.exception).startswith("--period: unknown trend bar period 'M7'"))

    def test_periodNamesKeepsTheNamesAsGiven(self) -> None:
        """Names are checked, not rewritten: the stream service parses them again."""
        self.assertEqual(periodNames("trendbars", ["M1, h1", ""]), ["M1", "h1"])
        self.assertEqual(periodNames("trendbars", []), [])
        self.assertRaises(UsageError, periodNames, "trendbars", ["M1,M7"])


class NumberTests(SynchronousTestCase):
    """Numbers as argparse gives them (converted) and as twistd gives them (text)."""

    def test_positiveNumber(self) -> None:
        self.assertEqual(positiveNumber(int, "count", "5"), 5)
        self.assertEqual(positiveNumber(int, "count", 5), 5)
        self.assertEqual(positiveNumber(float, "duration", "2.5"), 2.5)
        self.assertIsNone(positiveNumber(float, "duration", None))

    def test_positiveNumberRefusals(self) -> None:
        for kind, value in (
            (int, "x"), (int, "2.5"), (int, 0), (float, "-1"), (float, 0.0),
            (float, "nan"), (float, "inf"), (float, "-inf"), (float, float("nan")), (int, "inf"),
        ):
            with self.assertRaises(UsageError) as raised:
                positiveNumber(kind, "count", value)  # type: ignore[type-var]
            self.assertEqual(str(raised.exception), "--count must be a positive number")

    def test_portNumber(self) -> None:
        self.assertEqual(portNumber("5035"), 5035)
        self.assertEqual(portNumber(1), 1)
        self.assertIsNone(portNumber(None))
        for bad in ("x", "0", 65536, -1):
            with self.assertRaises(UsageError) as raised:
                portNumber(bad)
            self.assertEqual(str(raised.exception), "--port must be an integer from 1 to 65535")


class NamesAndFilesTests(SynchronousTestCase):
    def test_splitNames(self) -> None:
        """Separate values and comma-separated lists mix; blanks are dropped."""
        self.assertEqual(splitNames(["EURUSD,XAUUSD", " US100.cash ", ","]), ["EURUSD", "XAUUSD", "US100.cash"])

    def test_openOutputAppends(self) -> None:
        path = Path(self.mktemp())
        path.write_text("before\n")
        with openOutput(str(path), "a") as output:
            output.write("after\n")
        self.assertEqual(path.read_text(), "before\nafter\n")

    def test_openOutputRefusal(self) -> None:
        """An unopenable file is a usage error naming the file and the reason."""
        with self.assertRaises(UsageError) as raised:
            openOutput("/nonexistent/dir/out.csv", "w")
        self.assertEqual(str(raised.exception), "cannot open /nonexistent/dir/out.csv: No such file or directory")
