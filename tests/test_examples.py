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
        self.assertRegex(out, r"execution: ORDER_ACCEPTED order \d+ position \d+")
        self.assertIn("refused: NOT_ENOUGH_MONEY", out)

    @defer.inlineCallbacks
    def test_oauthTokens(self) -> Any:
        out = yield self.runExample("oauth_tokens.py")
        self.assertEqual(out.splitlines()[1:], [
            "authorized account 2000001",
            "refreshed: the kept tokens changed: True",
            "account 2000001 still authorized with the new token",
        ])
        self.assertRegex(out.splitlines()[0], r"^tokens kept; the access token expires \d{4}-\d\d-\d\d UTC$")

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
        self.assertEqual(result.testsRun, 2)
        self.assertTrue(result.wasSuccessful(), result.errors + result.failures)
