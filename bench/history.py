"""History downloads against the simulator with its real rate limits: ``python -m bench.history``.

What a user runs, measured: ``ctrader-twisted bars EURUSD --period M1`` over
a year and ``ctrader-twisted ticks EURUSD`` (bid and ask) over a week, each
in a fresh process writing CSV, against the simulator in another process
(``python -m bench.history serve``: real limits of 50 requests/s and 5
historical requests/s per connection, counted as requests arrive, and the
real windows). For every run:

* wall time of the command, and the **floor** the 5/s limit sets: the
  number of requests it made / 5 s (the ratio is the figure to watch: 1.10 is
  10 % above the floor);
* requests made, against the fewest the data allows (windows for bars, full
  pages for ticks);
* peak resident memory of the command's process (``wait4``), for two range
  lengths: it should not grow with the range;
* rate-limit refusals the server sent (counted by the server), and the
  requests the client wrote again after one.

``--quick`` runs tiny ranges (the smoke test). Used by :mod:`bench.run`
(``--only history``) and on its own; the table goes to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

#: The historical rate limit the floor is computed with (requests per second).
LIMIT = 5

_SUMMARY = re.compile(r"\(([\d,]+) in all; (\d+) requests in ([\d.]+) s(?:, (\d+) rate-limit retries)?\)")


def serve() -> None:
    """The simulator with its real limits, in this process, until stdin closes.

    Prints one JSON line (port, CA, credentials); each line ``refusals`` on
    stdin is answered with the number of rate-limit refusals sent so far.
    """
    from twisted.internet import reactor, stdio
    from twisted.protocols.basic import LineReceiver

    from ctrader_twisted.simulator import Simulator
    from ctrader_twisted.simulator.session import Session

    refusals = [0]
    original = Session.oaError

    def counting(self: Session, errorCode: str, *args: Any, **kwargs: Any) -> None:
        if errorCode in ("REQUEST_FREQUENCY_EXCEEDED", "BLOCKED_PAYLOAD_TYPE"):
            refusals[0] += 1
        original(self, errorCode, *args, **kwargs)

    Session.oaError = counting  # type: ignore[method-assign]
    sim = Simulator(seed=0, clock=reactor, spotInterval=3600, idleTimeout=None)  # type: ignore[arg-type]
    listening = sim.listen(reactor, tlsPort=0, wsPort=None)
    print(json.dumps({
        "port": listening.tlsPort, "ca": listening.caPEM.decode(),
        "clientId": sim.clientId, "clientSecret": sim.clientSecret, "accessToken": sim.accessToken,
    }), flush=True)

    class Control(LineReceiver):
        delimiter = b"\n"

        def lineReceived(self, line: bytes) -> None:
            self.sendLine(str(refusals[0]).encode())

        def connectionLost(self, reason: Any = None) -> None:
            if reactor.running:  # type: ignore[attr-defined]
                sim.stop().addBoth(lambda _: reactor.stop())  # type: ignore[attr-defined]

    stdio.StandardIO(Control())
    reactor.run()  # type: ignore[attr-defined]


class Server:
    """``python -m bench.history serve`` as a child process."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.history", "serve"], cwd=ROOT,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        line = self.process.stdout.readline()  # type: ignore[union-attr]
        if not line:
            raise RuntimeError("the history bench server did not start")
        self.info = json.loads(line)
        fd, self.ca = tempfile.mkstemp(prefix="bench-history-ca-", suffix=".pem")
        with os.fdopen(fd, "w") as f:
            f.write(self.info["ca"])

    def refusals(self) -> int:
        self.process.stdin.write("refusals\n")  # type: ignore[union-attr]
        self.process.stdin.flush()  # type: ignore[union-attr]
        return int(self.process.stdout.readline())  # type: ignore[union-attr]

    def environment(self) -> dict[str, str]:
        """The command's environment: the simulator's credentials (never on a command line)."""
        env = dict(os.environ)
        env.update(
            CTRADER_CLIENT_ID=self.info["clientId"], CTRADER_CLIENT_SECRET=self.info["clientSecret"],
            CTRADER_ACCESS_TOKEN=self.info["accessToken"], HOME=tempfile.gettempdir(),
        )
        env.pop("CTRADER_REFRESH_TOKEN", None)
        return env

    def close(self) -> None:
        from bench.common import stopChild

        stopChild(self.process)
        os.unlink(self.ca)


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))


def download(server: Server, argv: list[str], seconds: int, timeout: float = 900) -> dict[str, Any]:
    """Run ``ctrader-twisted ARGV --from (now - seconds) --to now -o TMP`` once; its figures."""
    now = int(time.time()) * 1000
    with tempfile.TemporaryDirectory(prefix="bench-history-") as folder:
        output = os.path.join(folder, "out.csv")
        command = [
            sys.executable, "-W", "ignore", "-m", "ctrader_twisted.cli", *argv,
            "--host", "127.0.0.1", "--port", str(server.info["port"]), "--ca-file", server.ca,
            "--from", _iso(now - seconds * 1000), "--to", _iso(now), "-o", output,
        ]
        before = server.refusals()
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=folder, env=server.environment(),
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            _, status, usage = os.wait4(process.pid, 0)
        except KeyboardInterrupt:
            process.kill()
            raise
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        stderr = process.stderr.read() if process.stderr is not None else ""  # type: ignore[union-attr]
        refusals = server.refusals() - before
        lines = sum(1 for _ in open(output)) - 1 if os.path.exists(output) else 0
    found = _SUMMARY.search(stderr)
    if process.returncode != 0 or found is None:
        return {"error": f"exit {process.returncode}: {stderr[-1500:]}"}
    requests = int(found.group(2))
    return {
        "rows": lines,
        "requests": requests,
        "wall_s": wall,
        "download_s": float(found.group(3)),
        "floor_s": requests / LIMIT,
        "vs_floor": float(found.group(3)) / (requests / LIMIT),
        "peak_rss_mib": usage.ru_maxrss / 1024,
        "server_refusals": refusals,
        "client_rate_limit_retries": int(found.group(4) or 0),
    }


#: (name, command line, seconds of range, fewest requests the data allows: f(rows, seconds))
Case = tuple[str, list[str], int, Callable[[int, int], int]]


def cases(quick: bool) -> list[Case]:
    day = 86400
    bars: Callable[[int, int], int] = lambda rows, seconds: -(-seconds * 1000 // 302_400_000)  # noqa: E731
    ticks: Callable[[int, int], int] = lambda rows, seconds: 2 * -(-rows // 10_000)  # noqa: E731
    m1 = ["bars", "EURUSD", "--period", "M1"]
    both = ["ticks", "EURUSD", "--side", "both"]
    if quick:
        return [("bars_m1_short", m1, 4 * day, bars), ("bars_m1_long", m1, 8 * day, bars),
                ("ticks_short", both, 3600, ticks), ("ticks_long", both, 3 * 3600, ticks)]
    return [("bars_m1_long", m1, 365 * day, bars), ("bars_m1_short", m1, 30 * day, bars),
            ("ticks_long", both, 7 * day, ticks), ("ticks_short", both, 1 * day, ticks)]


def collect(quick: bool = False, rounds: int = 1, progress: Callable[[str], None] | None = None,
            only: set[str] | None = None) -> dict[str, Any]:
    """Run every case (or those named in *only*) *rounds* times against one server; the runs and their medians."""
    from bench.common import summarize

    say = progress or (lambda message: None)
    server = Server()
    runs: dict[str, list[dict[str, Any]]] = {}
    try:
        for name, argv, seconds, fewest in cases(quick):
            if only and name not in only:
                continue
            for i in range(rounds):
                say(f"history: {name} ({i + 1}/{rounds})")
                run = download(server, argv, seconds)
                if "error" not in run:
                    run["fewest_requests"] = fewest(run["rows"], seconds)
                else:
                    say(f"history: {name} failed: {run['error'][-300:]}")
                runs.setdefault(name, []).append(run)
    finally:
        server.close()
    figures: dict[str, Any] = {}
    for name, results in runs.items():
        for key in ("download_s", "floor_s", "vs_floor", "requests", "fewest_requests", "rows", "peak_rss_mib",
                    "server_refusals", "client_rate_limit_retries"):
            figures[f"{name}_{key}"] = summarize([r[key] for r in results if key in r])
    return {"runs": runs, "figures": figures, "quick": quick}


def table(report: dict[str, Any]) -> str:
    """The history table (medians; the JSON keeps every run)."""
    f = report["figures"]

    def cell(key: str, fmt: str = "{:.2f}") -> str:
        value = f.get(key, {}).get("median")
        return "-" if value is None else fmt.format(value)

    labels = {
        "bars_m1_long": "M1 bars, 8 days" if report["quick"] else "M1 bars, 1 year",
        "bars_m1_short": "M1 bars, 4 days" if report["quick"] else "M1 bars, 30 days",
        "ticks_long": "ticks bid+ask, 3 hours" if report["quick"] else "ticks bid+ask, 1 week",
        "ticks_short": "ticks bid+ask, 1 hour" if report["quick"] else "ticks bid+ask, 1 day",
    }
    header = ("history download (CLI, CSV)", "rows", "requests", "fewest", "time s", "floor s", "vs floor",
              "peak RSS MiB", "refused")
    rows = [header]
    for name, label in labels.items():
        rows.append((
            label, cell(f"{name}_rows", "{:,.0f}"), cell(f"{name}_requests", "{:.0f}"),
            cell(f"{name}_fewest_requests", "{:.0f}"), cell(f"{name}_download_s", "{:.1f}"),
            cell(f"{name}_floor_s", "{:.1f}"), cell(f"{name}_vs_floor", "{:.3f}"),
            cell(f"{name}_peak_rss_mib", "{:.0f}"), cell(f"{name}_server_refusals", "{:.0f}"),
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append("floor = requests / 5 s (the historical limit); refused = rate-limit refusals the server sent")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="python -m bench.history", description=__doc__.splitlines()[0])
    p.add_argument("mode", nargs="?", default="run", choices=["run", "serve"])
    p.add_argument("--quick", action="store_true", help="tiny ranges (smoke test)")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--output", help="also write the JSON report to this file")
    p.add_argument("--cases", default="", help="comma-separated subset: bars_m1_long,bars_m1_short,ticks_long,ticks_short")
    args = p.parse_args(argv)
    if args.mode == "serve":
        serve()
        return {}
    report = collect(args.quick, args.rounds, lambda m: print(f"[bench] {m}", file=sys.stderr, flush=True),
                     set(filter(None, args.cases.split(","))))
    if args.output:
        with open(args.output, "w") as f:
            json.dump(report, f, indent=1)
    print(table(report))
    return report


if __name__ == "__main__":
    main()
