"""docs/examples/redis_recorder.py against the simulator and a real Redis."""

from __future__ import annotations

import csv
import io
import os
import sys
from typing import Any

from twisted.internet import reactor
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

from ctrader_twisted.cli import run as runCommand

from .redisutil import run, startServer
from .util import ROOT


class RecorderExampleTests(TestCase):
    timeout = 60

    def test_recorder(self) -> Any:
        """The simulator streams into Redis; the recorder writes those spots to CSV,
        and a second run adds the rest without repeating a row."""

        async def go() -> None:
            server = startServer(self)
            code = await runCommand(reactor, ["stream", "EURUSD,GBPUSD", "--redis", server.url, "--count", "30",
                                              "--sim-interval", "0.02"], io.StringIO(), io.StringIO())
            self.assertEqual(code, 0)
            path = os.path.abspath(self.mktemp())
            env = dict(os.environ, PYTHONPATH=str(ROOT))
            example = str(ROOT / "docs" / "examples" / "redis_recorder.py")
            for count, expected in (("12", 12), ("30", 30)):
                out, err, status = await getProcessOutputAndValue(
                    sys.executable, [example, "--redis", server.url, "--csv", path, "--count", count],
                    env=env, reactor=reactor)
                self.assertEqual(status, 0, err.decode(errors="replace"))
                with open(path, newline="") as f:
                    rows = list(csv.DictReader(f))
                self.assertGreaterEqual(len(rows), expected)
            self.assertEqual(len(rows), 30)
            self.assertEqual(len({r["key"] for r in rows}), 30)
            self.assertEqual({r["symbol"] for r in rows}, {"EURUSD", "GBPUSD"})
            self.assertRegex(rows[0]["bid"], r"^\d\.\d{5}$")
            self.assertIn(b"spots recorded to", out)

        return run(go())
