"""Smoke test of the benchmark suite (``python -m bench --smoke``).

Benchmarks never assert timings: this only keeps ``bench/`` from rotting, by
running every figure once with tiny counts (a few seconds, against the
simulator in a child process) and checking that each one produced a number
and the JSON report was written (into trial's temporary directory). The official
SDK's part is skipped (``--smoke`` implies ``--no-official``): it needs its
own virtual environment.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from twisted.trial.unittest import TestCase

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class QuickBenchTests(TestCase):
    def test_smokeRunReportsEveryFigure(self) -> None:
        """``python -m bench --smoke`` prints the table and writes every figure to JSON."""
        output = os.path.abspath(self.mktemp())  # under _trial_temp, not in the repository
        # No bytecode caches written into bench/ either.
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        done = subprocess.run(
            [sys.executable, "-m", "bench", "--smoke", "--output", output],
            cwd=ROOT, capture_output=True, text=True, timeout=120, env=env,
        )
        self.assertEqual(done.returncode, 0, done.stderr[-3000:])
        self.assertIn("spot stream TLS TCP, events/s", done.stdout)
        files = os.listdir(output)
        self.assertEqual(len(files), 1)
        with open(os.path.join(output, files[0])) as f:
            report = json.load(f)

        for name, runs in report["runs"].items():
            for run in runs:
                self.assertNotIn("error", run, f"{name}: {run.get('error')}")
        figures = report["figures"]
        for key in (
            "ours_stream_tcp_events_per_s",
            "ours_stream_tcp_cpu_s_per_million",
            "ours_stream_ws_events_per_s",
            "ceiling_parse_events_per_s",
            "ceiling_core_events_per_s",
            "ceiling_raw_events_per_s",
            "ours_latency_p50_ms",
            "ours_latency_p99_ms",
            "ours_inflight_p50_ms",
            "ours_inflight_requests_per_s",
            "ours_stream_peak_rss_mib",
        ):
            self.assertGreater(figures[key]["median"], 0, key)
        self.assertIsNotNone(figures["typed_overhead_us_per_event"]["median"])
        self.assertIsNotNone(figures["ours_stream_rss_growth_mib"]["median"])
        self.assertIsNotNone(figures["ours_requests_rss_growth_mib"]["median"])
        for size in report["settings"]["sizes"].split(","):
            self.assertGreater(figures[f"ours_large_{size}_ms"]["median"], 0)
            self.assertGreater(figures[f"reassembly_{size}_stock_ms"]["median"], 0)
        # Every symbol of each large response was decoded.
        for run in report["runs"]["ours_large"]:
            for size, received in run["sizes"].items():
                self.assertGreater(received[0]["symbols"], 0)
                self.assertGreater(received[0]["bytes"], int(size) * 0.9)
        versions = report["versions"]["ours"]
        for key in ("python", "twisted", "protobuf", "protobuf_backend", "openssl", "autobahn"):
            self.assertTrue(versions[key], key)
        self.assertIsNone(report["versions"]["official"])
