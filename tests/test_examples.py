"""The examples in docs/examples run against the simulator and say what they should."""

from __future__ import annotations

import os
import sys
from typing import Any

from twisted.internet import defer
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

from .util import ROOT

EXAMPLES = ROOT / "docs" / "examples"


class ExamplesTests(TestCase):
    timeout = 60

    @defer.inlineCallbacks
    def runExample(self, name: str, *args: str) -> Any:
        from twisted.internet import reactor

        env = dict(os.environ, PYTHONPATH=str(ROOT))
        out, err, code = yield getProcessOutputAndValue(
            sys.executable, [str(EXAMPLES / name), *args], env=env, reactor=reactor
        )
        self.assertEqual(code, 0, err.decode(errors="replace"))
        return out.decode()

    @defer.inlineCallbacks
    def test_streamSpots(self) -> Any:
        out = yield self.runExample("stream_spots.py", "--count", "3", "--symbol", "GBPUSD")
        lines = out.splitlines()
        self.assertEqual(len(lines), 3)
        for line in lines:
            self.assertRegex(line, r"^GBPUSD bid=(\d\.\d{5}|-) ask=(\d\.\d{5}|-)$")

    @defer.inlineCallbacks
    def test_placeOrder(self) -> Any:
        out = yield self.runExample("place_order.py")
        self.assertRegex(out, r"filled: order \d+ position \d+, 1000 units at \d\.\d{5}\n")
        self.assertRegex(out, r"pending: LIMIT BUY 0\.02 lot at \d\.\d{5}\n")
        self.assertIn("nearest valid: 0.01 lots (1,000 units) or 0.02 lots (2,000 units)", out)
        self.assertIn("refused: NOT_ENOUGH_MONEY", out)
        self.assertIn("not executed (and not sent again)", out)

    @defer.inlineCallbacks
    def test_strategy(self) -> Any:
        """The typed strategy: quotes, a bracketed buy, the account model, the close."""
        out = yield self.runExample("strategy.py")
        lines = out.splitlines()
        self.assertEqual(len([line for line in lines if line.startswith("EURUSD bid ")]), 3)
        bought = next(line for line in lines if line.startswith("bought "))
        self.assertRegex(bought, r"^bought 0\.1 lot at (\d\.\d{5}): stop loss (\d\.\d{5}), take profit (\d\.\d{5})$")
        self.assertTrue(any(line.startswith("equity ") for line in lines))
        self.assertRegex(out, r"closed at \d\.\d{5}: gross -?\d+\.\d\d, commission -\d+\.\d\d, balance \d+\.\d\d")
        self.assertIn("open positions: 0;", out)

    @defer.inlineCallbacks
    def test_asyncioNotebookRecipe(self) -> Any:
        """docs/asyncio.rst's recipe: asyncio code (and a notebook's running loop) drives the typed API."""
        out = yield self.runExample("asyncio_recipe.py")
        self.assertIn("asyncio task: bought 0.01 lot", out)
        self.assertIn("asyncio task: 3 quotes of EURUSD", out)
        self.assertIn("notebook cell: balance 10000.00", out)
        self.assertIn("closed; open positions: 0", out)

    @defer.inlineCallbacks
    def test_oauthTokens(self) -> Any:
        out = yield self.runExample("oauth_tokens.py")
        self.assertEqual(out.splitlines()[1:], [
            "authorized account 2000001",
            "refreshed: the kept tokens changed: True",
            "account 2000001 still authorized with the new token",
        ])
        self.assertRegex(out.splitlines()[0], r"^tokens kept; the access token expires \d{4}-\d\d-\d\d UTC$")

    @defer.inlineCallbacks
    def test_loopbackTrialExample(self) -> Any:
        """docs/examples/test_loopback.py (docs/simulator.rst) passes under trial, over loopback."""
        from twisted.internet import reactor

        env = dict(os.environ, PYTHONPATH=str(ROOT))
        out, err, code = yield getProcessOutputAndValue(
            sys.executable, ["-m", "twisted.trial", "--temp-directory", self.mktemp(), str(EXAMPLES / "test_loopback.py")],
            env=env, reactor=reactor,
        )
        self.assertEqual(code, 0, out.decode(errors="replace") + err.decode(errors="replace"))
        self.assertRegex(out.decode(), r"PASSED \(successes=1\)")


class CoverageTests(TestCase):
    def test_everyExampleHasATest(self) -> None:
        """A new docs/examples/*.py must be run by some test module (it is
        named there), or it can rot unnoticed."""
        tests = "\n".join(p.read_text() for p in (ROOT / "tests").glob("test_*.py"))
        untested = [p.name for p in sorted(EXAMPLES.glob("*.py")) if p.name not in tests]
        self.assertEqual(untested, [])


class TestingExampleTests(TestCase):
    """docs/examples/test_my_strategy.py is a test module users copy: it passes."""

    def test_exampleTestsPass(self) -> Any:
        import importlib.util
        import unittest

        from twisted.trial.reporter import TestResult

        spec = importlib.util.spec_from_file_location("test_my_strategy", EXAMPLES / "test_my_strategy.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        suite = unittest.defaultTestLoader.loadTestsFromTestCase(module.StrategyTests)
        result = TestResult()
        suite.run(result)
        self.assertEqual(result.testsRun, 3)
        self.assertTrue(result.wasSuccessful(), result.errors + result.failures)
