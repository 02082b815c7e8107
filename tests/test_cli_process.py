"""The installed commands as the user runs them, in subprocesses (issue 17):
``... | head`` (a broken pipe), ``twistd -n ctrader`` (each status line
once; one-line usage errors), ``ctrader-simulator`` (help style, version,
a port already in use). Each process is bounded by a timeout."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from ctrader_twisted import __version__

ROOT = Path(__file__).resolve().parent.parent
#: A status line, or the start of a log line (twistd's timestamped format).
STATUS = re.compile(r"^ctrader-twisted: ")
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")


class ProcessTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.home = Path(self.mktemp()).resolve()
        self.home.mkdir()
        self.env = {"PATH": os.environ.get("PATH", ""), "HOME": str(self.home), "PYTHONPATH": str(ROOT)}

    def run_(self, argv: list[str], stdout: int | None = subprocess.PIPE, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, *argv], stdout=stdout, stderr=subprocess.PIPE, text=True,
                              env=self.env, cwd=str(ROOT), timeout=timeout)

    def withClosedStdout(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        """Run *argv* with a stdout whose reader has already gone (``... | head`` after head exits)."""
        read, write = os.pipe()
        os.close(read)
        try:
            return self.run_(argv, stdout=write)
        finally:
            os.close(write)


class BrokenPipeTests(ProcessTestCase):
    """``... | head``: a broken pipe on stdout ends quietly with status 141 (128 + SIGPIPE)."""

    def assertQuiet(self, done: subprocess.CompletedProcess[str]) -> None:
        self.assertEqual(done.returncode, 141, done.stderr)
        for marker in ("Traceback", "error", "Exception ignored", "BrokenPipe", "Broken pipe"):
            self.assertNotIn(marker, done.stderr)

    def test_stream(self) -> None:
        """``stream`` (no --count: only the closed pipe ends it)."""
        self.assertQuiet(self.withClosedStdout(["-m", "ctrader_twisted.cli", "stream", "EURUSD", "--sim-interval", "0.05"]))

    def test_oneShot(self) -> None:
        self.assertQuiet(self.withClosedStdout(["-m", "ctrader_twisted.cli", "symbols"]))

    def test_history(self) -> None:
        done = self.withClosedStdout(["-m", "ctrader_twisted.cli", "bars", "EURUSD", "--period", "H1",
                                      "--from", "2026-01-05", "--to", "2026-01-07"])
        self.assertQuiet(done)

    def test_twistd(self) -> None:
        done = self.withClosedStdout(["-c", "from twisted.scripts.twistd import run; run()", "-n", "--pidfile=",
                                      "ctrader", "--symbols", "EURUSD"])
        self.assertQuiet(done)


class TwistdTests(ProcessTestCase):
    """``twistd -n ctrader``: status lines once each, no log lines repeating them; one-line usage errors."""

    twistd = ["-c", "from twisted.scripts.twistd import run; run()"]

    def test_eachStatusLineOnce(self) -> None:
        done = self.run_([*self.twistd, "-n", "--pidfile=", "ctrader", "--symbols", "EURUSD", "--count", "3"])
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(len([json.loads(line) for line in done.stdout.splitlines()]), 3)
        lines = done.stderr.splitlines()
        self.assertTrue(lines)
        self.assertEqual([line for line in lines if not STATUS.match(line)], [], "only status lines on stderr")
        self.assertEqual(len(lines), len(set(lines)), "no line twice")
        for fragment in ("SIMULATED DATA", "connecting to", "streaming EURUSD", "stopped (3 lines written)"):
            self.assertEqual(sum(fragment in line for line in lines), 1, fragment)

    def test_verboseAddsTheLog(self) -> None:
        """``-v`` asks for the log as well (info), as the console command's ``-v`` does."""
        done = self.run_([*self.twistd, "-n", "--pidfile=", "ctrader", "--symbols", "EURUSD", "--count", "1", "-v"])
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertTrue(any(LOG_LINE.match(line) for line in done.stderr.splitlines()), done.stderr)

    def test_usageErrorIsOneLine(self) -> None:
        done = self.run_([*self.twistd, "-n", "--pidfile=", "ctrader", "--symbols", "EURUSD", "--count", "0"])
        self.assertEqual(done.returncode, 2)
        self.assertEqual(done.stderr.splitlines(), [
            "ctrader-twisted: error: --count must be a positive number (`twistd ctrader --help` lists the options)"
        ])
        self.assertEqual(done.stdout, "")

    def test_versions(self) -> None:
        for plugin in ("ctrader", "ctrader-simulator"):
            done = self.run_([*self.twistd, plugin, "--version"])
            self.assertEqual(done.returncode, 0, done.stderr)
            self.assertEqual(done.stdout, f"twistd {plugin} (ctrader-twisted) {__version__}\n")


class SimulatorScriptTests(ProcessTestCase):
    """``ctrader-simulator`` (``python -m ctrader_twisted.simulator``)."""

    def test_helpInTheStyleOfTheOtherCommands(self) -> None:
        done = self.run_(["-m", "ctrader_twisted.simulator", "--help"])
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertTrue(done.stdout.startswith("usage: ctrader-simulator [-h] [--version]"), done.stdout)
        self.assertIn("\noptions:\n", done.stdout)
        self.assertIn("--tls-port PORT", done.stdout)
        self.assertNotIn("Twisted", done.stdout)

    def test_version(self) -> None:
        for argv, expected in (
            (["-m", "ctrader_twisted.simulator", "--version"], f"ctrader-simulator (ctrader-twisted) {__version__}\n"),
            (["-m", "ctrader_twisted.cli", "simulator", "--version"], f"ctrader-twisted simulator {__version__}\n"),
        ):
            done = self.run_(argv)
            self.assertEqual((done.returncode, done.stdout), (0, expected), done.stderr)

    def test_portInUse(self) -> None:
        s = socket.socket()
        self.addCleanup(s.close)
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        done = self.run_(["-m", "ctrader_twisted.simulator", "--tls-port", str(port), "--ws-port", "none",
                          "--cert-dir", str(self.home / "certs")])
        self.assertEqual(done.returncode, 1)
        self.assertEqual(done.stderr.splitlines(), [
            f"ctrader-twisted: error: cannot start the simulator: port {port} (--tls-port) on 127.0.0.1 is already "
            "in use: stop what listens there, or choose another port (0 picks a free one)"
        ])
