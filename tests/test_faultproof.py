"""A small run of the proof-under-faults suite (``tools/faultproof.py``).

The full run (100,000 requests, 1,000,000 spot events) is reported in
``docs/faults.rst``; this one keeps the suite from rotting and checks the
same invariants on both transports over real loopback TLS.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Any

from twisted.internet import defer
from twisted.trial.unittest import TestCase

from .util import ROOT


def _load() -> Any:
    spec = importlib.util.spec_from_file_location("faultproof", ROOT / "tools" / "faultproof.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


faultproof = _load()


class FaultProofTests(TestCase):
    timeout = 120

    @defer.inlineCallbacks
    def check(self, transport: str) -> Any:
        from twisted.internet import reactor

        report = yield defer.Deferred.fromCoroutine(
            faultproof.run(reactor, transport, requests=3000, events=40_000, dropEvery=(300, 900), seed=7)
        )
        self.assertEqual(report.requests, 3000)
        self.assertEqual(report.firedOnce, report.requests)
        self.assertEqual(report.firedTwiceOrMore, 0)
        self.assertEqual(report.hung, 0)
        self.assertEqual(report.answered + report.outcomeUnknown + report.notSent, report.requests)
        self.assertEqual(dict(report.otherErrors), {})
        self.assertEqual(report.ordersDuplicated, 0)
        self.assertLessEqual(report.ordersOnServer, report.ordersSent)
        # Faults really happened (drops are armed by message counts, not by
        # time). How many requests each drop catches in flight is left to
        # timing, so it is reported, not asserted.
        self.assertGreater(report.drops, 0)
        self.assertEqual(report.restoresComplete, report.reconnects)
        self.assertGreater(report.reconnects, 0)
        self.assertEqual(report.eventsSent, 40_000)
        self.assertLessEqual(report.eventsDelivered, report.eventsSent)
        self.assertEqual(report.cleanBurstsComplete, report.cleanBursts)
        self.assertTrue(report.ok())

    def test_tlsTcp(self) -> Any:
        return self.check("tcp")

    def test_webSocket(self) -> Any:
        return self.check("ws")
