"""Run the whole benchmark suite and print one table: ``python -m bench``.

Every figure is measured over loopback against the project's simulator
(:mod:`bench.server` runs it in a child process), each client run in a fresh process of
its own (:mod:`bench.client_ours`; :mod:`bench.official_client` in the
official SDK's virtual environment), so that client CPU time and resident
memory are the client's alone; the server's CPU over each measurement is
reported beside the client's. In-process ceilings come from
:mod:`bench.ceiling`, each in a fresh process too. The rounds alternate: each
round runs every figure once (A B A B ...), ``--rounds`` rounds; the table
shows the median and the spread (min..max), the JSON file under
``bench/results/`` keeps every run and the versions of everything involved.

Benchmarks never assert timings. ``--quick`` is a short run of every figure
(under a minute); ``--smoke`` runs tiny counts (the CI smoke test uses it to
keep this code working).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
from typing import Any, Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench import typed  # noqa: E402
from bench.common import summarize  # noqa: E402

MiB = 2**20
OFFICIAL_VENV = os.path.join(ROOT, "bench", ".venv-official")


def options(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description="ctrader-twisted benchmark suite")
    p.add_argument("--quick", action="store_true",
                   help="a short run of every figure (under a minute): 3 rounds of smaller counts")
    p.add_argument("--smoke", action="store_true", help="tiny counts, one round, no official SDK (the CI smoke test)")
    p.add_argument("--rounds", type=int, default=3, help="runs of every figure (median and spread reported)")
    p.add_argument("--events", type=int, default=2_000_000, help="spot events per run, our client")
    p.add_argument("--official-events", type=int, default=1_000_000, help="spot events per run, official SDK")
    p.add_argument("--requests", type=int, default=2000, help="one-at-a-time requests per run (ours)")
    p.add_argument("--inflight-requests", type=int, default=100_000, help="requests with 100 in flight (ours)")
    p.add_argument("--sizes", default=f"{MiB},{4 * MiB},{14 * MiB}",
                   help="large response sizes in bytes (15 MiB is over the 15,000,000-byte frame limit)")
    p.add_argument("--chunk", type=int, default=65536,
                   help="bytes per simulator write of a large response (TLS carries them in 16 KiB records)")
    p.add_argument("--reassembly-read", type=int, default=4096,
                   help="read size of the in-process reassembly rows (ours against Twisted's Int32StringReceiver)")
    p.add_argument("--official", default=os.path.join(OFFICIAL_VENV, "bin", "python"),
                   help="python of the official SDK's venv (pip install ctrader-open-api)")
    p.add_argument("--no-official", action="store_true", help="skip the official SDK")
    p.add_argument("--official-figures", default="stream,latency,inflight,large",
                   help="the figures the official SDK runs (its one-second send tick makes the request "
                        "figures slow)")
    p.add_argument("--output", default=os.path.join(ROOT, "bench", "results"), help="directory for the JSON file")
    p.add_argument("--only", default="", help="comma-separated subset: ceiling,stream,latency,inflight,large,history "
                   "(redis: bench.redis_publish, only when named)")
    args = p.parse_args(argv)
    if args.smoke:
        args.rounds = 1
        args.events = args.official_events = 3000
        args.requests = 50
        args.inflight_requests = 500
        args.sizes = f"{64 * 1024},{256 * 1024}"
        args.no_official = True
    elif args.quick:
        args.rounds = 3
        args.events = 300_000
        args.official_events = 50_000
        args.requests = 200
        args.inflight_requests = 20_000
        args.sizes = f"{MiB},{14 * MiB}"
        args.official_figures = "stream"
    return args


# --- processes -----------------------------------------------------------------------


class Server:
    """The bench server child process (``python -m bench.server``: the simulator)."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.server"], cwd=ROOT,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        line = self.process.stdout.readline()  # type: ignore[union-attr]
        if not line:
            raise RuntimeError("the bench server did not start")
        info = json.loads(line)
        self.tcp, self.ws, self.control = info["tcp"], info["ws"], info["control"]
        fd, self.ca = tempfile.mkstemp(prefix="bench-ca-", suffix=".pem")
        with os.fdopen(fd, "w") as f:
            f.write(info["ca"])
        # The simulator's credentials go to the clients in a private file
        # (mkstemp: mode 0600), not on their command lines.
        fd, self.credentials = tempfile.mkstemp(prefix="bench-credentials-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump({k: info[k] for k in ("clientId", "clientSecret", "accessToken", "accountId")}, f)

    def close(self) -> None:
        self.process.stdin.close()  # type: ignore[union-attr]  # the server stops on EOF
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.unlink(self.ca)
        os.unlink(self.credentials)


def runProcess(command: list[str], timeout: float = 900) -> dict[str, Any]:
    """Run one benchmark process and return its ``RESULT`` (``{"error": ...}`` on failure)."""
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])  # type: ignore[no-any-return]
    return {"error": f"exit {done.returncode}: {done.stderr[-2000:]}"}


def runClient(python: str, module: str, server: Server, mode: str, port: int, *extra: str) -> dict[str, Any]:
    """Run one client process against *server*."""
    return runProcess([python, "-W", "ignore", "-m", module, mode, "--port", str(port),
                       "--control", str(server.control), "--ca", server.ca,
                       "--credentials", server.credentials, *extra])


def runCeiling(*args: Any) -> dict[str, Any]:
    """Run one in-process figure of :mod:`bench.ceiling` in a fresh process."""
    return runProcess([sys.executable, "-m", "bench.ceiling", *map(str, args)])


def progress(message: str) -> None:
    sys.stderr.write(f"[bench {datetime.datetime.now():%H:%M:%S}] {message}\n")
    sys.stderr.flush()


def alternate(rounds: int, jobs: list[tuple[str, str, Callable[[], dict[str, Any]]]]) -> dict[str, list[dict[str, Any]]]:
    """Run every job once per round, in order, round after round (A B A B ...),
    so that the noise of a shared machine falls on all of them alike."""
    runs: dict[str, list[dict[str, Any]]] = {key: [] for key, _, _ in jobs}
    for i in range(rounds):
        for key, label, function in jobs:
            progress(f"round {i + 1}/{rounds}: {label}")
            result = function()
            if "error" in result:
                progress(f"{label} failed: {result['error'][-500:]}")
            runs[key].append(result)
    return runs


# --- versions ------------------------------------------------------------------------


def versions() -> dict[str, Any]:
    import autobahn
    import cryptography
    import google.protobuf
    import OpenSSL
    import twisted
    from google.protobuf.internal import api_implementation
    from OpenSSL.SSL import OPENSSL_VERSION, SSLeay_version

    import ctrader_twisted

    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "twisted": twisted.__version__,
        "protobuf": google.protobuf.__version__,
        "protobuf_backend": api_implementation.Type(),
        "openssl": SSLeay_version(OPENSSL_VERSION).decode(),
        "pyopenssl": OpenSSL.__version__,
        "cryptography": cryptography.__version__,
        "autobahn": autobahn.__version__,
        "ctrader_twisted": ctrader_twisted.__version__,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
    }


OFFICIAL_VERSIONS = """
import json, platform, twisted, google.protobuf, OpenSSL
from google.protobuf.internal import api_implementation
from OpenSSL.SSL import OPENSSL_VERSION, SSLeay_version
from importlib.metadata import version
print(json.dumps({"python": platform.python_version(), "twisted": twisted.__version__,
    "protobuf": google.protobuf.__version__, "protobuf_backend": api_implementation.Type(),
    "openssl": SSLeay_version(OPENSSL_VERSION).decode(), "pyopenssl": OpenSSL.__version__,
    "ctrader_open_api": version("ctrader-open-api")}))
"""


def officialVersions(python: str) -> dict[str, Any] | None:
    try:
        out = subprocess.run([python, "-W", "ignore", "-c", OFFICIAL_VERSIONS], capture_output=True, text=True,
                             timeout=60, cwd=ROOT)
        return json.loads(out.stdout) if out.returncode == 0 else None
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None


# --- the suite -----------------------------------------------------------------------


def collect(args: argparse.Namespace) -> dict[str, Any]:
    only = set(filter(None, args.only.split(",")))

    def wanted(name: str) -> bool:
        return not only or name in only

    official = None if args.no_official else officialVersions(args.official)
    officialFigures = set(args.official_figures.split(","))
    if not args.no_official and official is None:
        progress(f"official SDK not runnable with {args.official}: skipped "
                 f"(python -m venv bench/.venv-official && bench/.venv-official/bin/pip install ctrader-open-api)")
    report: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "settings": {k: v for k, v in vars(args).items() if k not in ("output",)},
        "versions": {"ours": versions(), "official": official},
    }
    sizes = args.sizes
    rounds = args.rounds
    ceilingCount = max(20_000, min(args.events, 1_000_000))
    if "redis" in only:  # needs a redis-server: run only when asked for (see bench/redis_publish.py)
        from bench import redis_publish

        report["runs"] = {"redis_publish": redis_publish.main(["--rounds", str(rounds), "--events", str(args.events)])}
        if only == {"redis"}:
            return report
    server = Server()
    ours = (sys.executable, "bench.client_ours")
    theirs = (args.official, "bench.official_client")
    warm = str(max(1000, args.events // 20))
    jobs: list[tuple[str, str, Callable[[], dict[str, Any]]]] = []

    def job(key: str, label: str, function: Callable[[], dict[str, Any]]) -> None:
        jobs.append((key, label, function))

    if wanted("ceiling") or wanted("stream"):
        job("ceiling_parse", "parsing ceiling", lambda: runCeiling("parse", ceilingCount))
    if wanted("stream"):
        job("ours_stream_tcp", "ours: spot stream, TLS TCP", lambda: runClient(
            *ours, server, "stream", server.tcp, "--count", str(args.events), "--warmup", warm))
        if official and "stream" in officialFigures:
            job("official_stream_tcp", "official: spot stream, TLS TCP", lambda: runClient(
                *theirs, server, "stream", server.tcp, "--count", str(args.official_events),
                "--warmup", str(max(1000, args.official_events // 20))))
        job("ours_stream_ws", "ours: spot stream, wss://", lambda: runClient(
            *ours, server, "stream", server.ws, "--transport", "ws", "--count", str(args.events), "--warmup", warm))
    if wanted("ceiling"):
        job("ceiling_core", "core in process", lambda: runCeiling("core", ceilingCount))
        job("ceiling_raw", "raw protobuf", lambda: runCeiling("raw", ceilingCount))
        job("typed_spot", "typed layer per spot", lambda: typed.typedOverhead(min(ceilingCount, 200_000), 3))
        for size in sizes.split(","):
            job(f"reassembly_{size}", f"reassembly {size} B", lambda s=size: runCeiling("reassembly", s, args.reassembly_read))
    if wanted("latency"):
        job("ours_latency", "ours: one request at a time", lambda: runClient(
            *ours, server, "latency", server.tcp, "--count", str(args.requests),
            "--warmup", str(max(10, args.requests // 10))))
        if official and "latency" in officialFigures:
            # One request at a time waits for the SDK's one-second send tick:
            # a few requests already show it, 1000 would take 17 minutes.
            job("official_latency", "official: one request at a time", lambda: runClient(
                *theirs, server, "latency", server.tcp, "--count", "10", "--warmup", "1"))
    if wanted("inflight"):
        job("ours_inflight", "ours: 100 requests in flight", lambda: runClient(
            *ours, server, "inflight", server.tcp, "--count", str(args.inflight_requests),
            "--window", "100", "--warmup", str(max(100, args.inflight_requests // 10))))
        if official and "inflight" in officialFigures:
            job("official_inflight", "official: 100 requests in flight", lambda: runClient(
                *theirs, server, "inflight", server.tcp, "--count", "1000", "--window", "100",
                "--rate", "100", "--warmup", "100"))
    if wanted("large"):
        job("ours_large", "ours: large responses", lambda: runClient(
            *ours, server, "large", server.tcp, "--sizes", sizes, "--chunk", str(args.chunk)))
        if official and "large" in officialFigures:
            job("official_large", "official: large responses", lambda: runClient(
                *theirs, server, "large", server.tcp, "--sizes", sizes, "--chunk", str(args.chunk)))
    try:
        runs = report["runs"] = alternate(rounds, jobs)
        if wanted("inflight") and official and "inflight" in officialFigures:
            progress("official: 100,000 requests (memory), once")
            runs["official_requests_memory"] = [runClient(
                *theirs, server, "inflight", server.tcp, "--count", "100000", "--window", "5000",
                "--rate", "5000", "--warmup", "10000")]
    finally:
        server.close()
    if wanted("history"):  # bench/history.py: downloads against the simulator's real rate limits
        from bench import history

        report["history"] = history.collect(args.quick, rounds, progress)
    report["figures"] = figures(runs, sizes)
    return report


# --- figures and table --------------------------------------------------------------


def _values(runs: list[dict[str, Any]] | None, key: str) -> list[float]:
    return [r[key] for r in runs or [] if key in r]


def _largeValues(runs: list[dict[str, Any]] | None, size: str, key: str) -> list[float]:
    out = []
    for r in runs or []:
        for one in r.get("sizes", {}).get(size, []):
            out.append(one[key] / one["bytes"] * MiB if key == "ms_per_mib" else one[key])
    return out


def _largeMsPerMiB(runs: list[dict[str, Any]] | None, size: str) -> list[float]:
    return [one["ms"] / (one["bytes"] / MiB) for r in runs or [] for one in r.get("sizes", {}).get(size, [])]


def figures(runs: dict[str, Any], sizes: str) -> dict[str, Any]:
    """Median and spread of every figure (the rows of the table)."""
    f: dict[str, Any] = {}

    def add(name: str, values: list[float]) -> None:
        f[name] = summarize(values)

    for who in ("ours", "official"):
        add(f"{who}_stream_tcp_events_per_s", _values(runs.get(f"{who}_stream_tcp"), "events_per_s"))
        add(f"{who}_stream_tcp_cpu_s_per_million", _values(runs.get(f"{who}_stream_tcp"), "cpu_s_per_million"))
        add(f"{who}_stream_tcp_server_cpu_s_per_million",
            _values(runs.get(f"{who}_stream_tcp"), "server_cpu_s_per_million"))
        add(f"{who}_inflight_cpu_us_per_request", _values(runs.get(f"{who}_inflight"), "cpu_us_per_request"))
        add(f"{who}_inflight_server_cpu_us_per_request",
            _values(runs.get(f"{who}_inflight"), "server_cpu_us_per_request"))
        add(f"{who}_stream_peak_rss_mib", _values(runs.get(f"{who}_stream_tcp"), "peak_rss_mib"))
        add(f"{who}_stream_rss_growth_mib", _values(runs.get(f"{who}_stream_tcp"), "rss_growth_mib"))
        for key in ("p50_ms", "p99_ms", "max_ms"):
            add(f"{who}_latency_{key}", _values(runs.get(f"{who}_latency"), key))
            add(f"{who}_inflight_{key}", _values(runs.get(f"{who}_inflight"), key))
        add(f"{who}_inflight_requests_per_s", _values(runs.get(f"{who}_inflight"), "requests_per_s"))
        for size in sizes.split(","):
            add(f"{who}_large_{size}_ms", _largeValues(runs.get(f"{who}_large"), size, "ms"))
            add(f"{who}_large_{size}_ms_per_mib", _largeMsPerMiB(runs.get(f"{who}_large"), size))
    add("ours_stream_ws_events_per_s", _values(runs.get("ours_stream_ws"), "events_per_s"))
    add("ours_stream_ws_cpu_s_per_million", _values(runs.get("ours_stream_ws"), "cpu_s_per_million"))
    add("ours_stream_ws_server_cpu_s_per_million", _values(runs.get("ours_stream_ws"), "server_cpu_s_per_million"))
    add("ours_stream_ws_rss_growth_mib", _values(runs.get("ours_stream_ws"), "rss_growth_mib"))
    add("ours_requests_rss_growth_mib", _values(runs.get("ours_inflight"), "rss_growth_mib"))
    add("official_requests_rss_growth_mib", _values(runs.get("official_requests_memory"), "rss_growth_mib"))
    for name in ("parse", "core", "raw"):
        add(f"ceiling_{name}_events_per_s", _values(runs.get(f"ceiling_{name}"), "events_per_s"))
        add(f"ceiling_{name}_cpu_s_per_million", _values(runs.get(f"ceiling_{name}"), "cpu_s_per_million"))
    add("typed_overhead_us_per_event", _values(runs.get("typed_spot"), "typed_overhead_us_per_event"))
    for size in sizes.split(","):
        add(f"reassembly_{size}_ours_ms", _values(runs.get(f"reassembly_{size}"), "ours_ms"))
        add(f"reassembly_{size}_stock_ms", _values(runs.get(f"reassembly_{size}"), "stock_ms"))
    # The stream against the ceiling measured in the same round (alternated).
    pairs = zip(runs.get("ours_stream_tcp", []), runs.get("ceiling_parse", []))
    add("ours_tcp_fraction_of_ceiling", [a["events_per_s"] / b["events_per_s"] for a, b in pairs
                                         if "events_per_s" in a and "events_per_s" in b])
    # Official SDK's CPU per event over ours, round by round.
    pairs = zip(runs.get("ours_stream_tcp", []), runs.get("official_stream_tcp", []))
    add("stream_tcp_cpu_ratio", [b["cpu_s_per_million"] / a["cpu_s_per_million"] for a, b in pairs
                                 if "cpu_s_per_million" in a and "cpu_s_per_million" in b])
    return f


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if abs(value) >= 10_000:
        text = f"{value:,.0f}"
    elif abs(value) >= 100:
        text = f"{value:.0f}"
    elif abs(value) >= 1:
        text = f"{value:.2f}"
    else:
        text = f"{value:.3f}"
    return text + unit


def _cell(s: dict[str, Any]) -> str:
    if s.get("median") is None:
        return "-"
    if len(s["runs"]) == 1:
        return _fmt(s["median"])
    return f"{_fmt(s['median'])} (±{s['spread_pct'] / 2:.0f}%)"


def _ratio(ours: dict[str, Any], theirs: dict[str, Any], higherBetter: bool) -> str:
    a, b = ours.get("median"), theirs.get("median")
    if not a or not b:
        return "-"
    r = a / b if higherBetter else b / a
    return f"{r:.1f}x"


def table(report: dict[str, Any]) -> str:
    """The one table printed on stdout."""
    f = report["figures"]
    sizes = report["settings"]["sizes"].split(",")
    rows: list[tuple[str, str, str, str]] = []

    def pair(label: str, key: str, higherBetter: bool) -> None:
        o, t = f.get(f"ours_{key}", {}), f.get(f"official_{key}", {})
        rows.append((label, _cell(o), _cell(t), _ratio(o, t, higherBetter)))

    def single(label: str, key: str, note: str = "") -> None:
        rows.append((label, _cell(f.get(key, {})), "", note))

    pair("spot stream TLS TCP, events/s", "stream_tcp_events_per_s", True)
    pair("  client CPU s per 1M events", "stream_tcp_cpu_s_per_million", False)
    ratio = f.get("stream_tcp_cpu_ratio", {})
    if ratio.get("median") is not None:
        rows.append(("  official / ours CPU, round by round", "", "", f"{_fmt(ratio['median'])}x "
                     f"[{_fmt(ratio['min'])}..{_fmt(ratio['max'])}]"))
    pair("  server CPU s per 1M events", "stream_tcp_server_cpu_s_per_million", False)
    single("spot stream wss://, events/s", "ours_stream_ws_events_per_s")
    single("  client CPU s per 1M events", "ours_stream_ws_cpu_s_per_million")
    single("  server CPU s per 1M events", "ours_stream_ws_server_cpu_s_per_million")
    single("parsing ceiling (split+2 decodes+callback), ev/s", "ceiling_parse_events_per_s")
    single("  TLS TCP stream / ceiling, round by round", "ours_tcp_fraction_of_ceiling")
    single("core in process (no TLS, no reactor), ev/s", "ceiling_core_events_per_s")
    single("typed layer's cost per spot over a raw listener, us", "typed_overhead_us_per_event", "target <= 1")
    single("raw protobuf decode only, ev/s", "ceiling_raw_events_per_s")
    pair("latency 1 at a time p50 ms", "latency_p50_ms", False)
    pair("latency 1 at a time p99 ms", "latency_p99_ms", False)
    pair("latency 1 at a time max ms", "latency_max_ms", False)
    pair("latency 100 in flight p50 ms", "inflight_p50_ms", False)
    pair("latency 100 in flight p99 ms", "inflight_p99_ms", False)
    pair("latency 100 in flight max ms", "inflight_max_ms", False)
    pair("requests/s, 100 in flight", "inflight_requests_per_s", True)
    pair("  client CPU us per request", "inflight_cpu_us_per_request", False)
    pair("  server CPU us per request", "inflight_server_cpu_us_per_request", False)
    for size in sizes:
        mib = int(size) / MiB
        pair(f"large response {mib:g} MiB, ms", f"large_{size}_ms", False)
        pair("  ms per MiB", f"large_{size}_ms_per_mib", False)
    for size in sizes:
        mib = int(size) / MiB
        o, s = f.get(f"reassembly_{size}_ours_ms", {}), f.get(f"reassembly_{size}_stock_ms", {})
        rows.append((f"reassemble {mib:g} MiB in {report['settings']['reassembly_read']} B reads, ms",
                     _cell(o), f"stock {_cell(s)}", _ratio(o, s, False)))
    pair("peak RSS while streaming, MiB", "stream_peak_rss_mib", False)

    def growth(s: dict[str, Any]) -> str:  # near zero: show the range, not a relative spread
        if s.get("median") is None:
            return "-"
        if len(s["runs"]) == 1:
            return f"{s['median']:+.3f}"
        return f"{s['median']:+.3f} [{s['min']:+.3f}..{s['max']:+.3f}]"

    rows.append(("RSS growth over a stream run, MiB", growth(f.get("ours_stream_rss_growth_mib", {})),
                 growth(f.get("official_stream_rss_growth_mib", {})), ""))
    rows.append(("RSS growth over a wss:// stream run, MiB", growth(f.get("ours_stream_ws_rss_growth_mib", {})),
                 "", ""))
    rows.append(("RSS growth over the requests run, MiB", growth(f.get("ours_requests_rss_growth_mib", {})),
                 growth(f.get("official_requests_rss_growth_mib", {})), ""))

    widths = [max(len(r[i]) for r in rows + [("figure", "ours", "official SDK", "ours vs SDK")]) for i in range(4)]
    lines = []
    header = ("figure", "ours", "official SDK", "ours vs SDK")
    lines.append("  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths))))
    lines.append("  ".join("-" * w for w in widths))
    for r in rows:
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
    s = report["settings"]
    v = report["versions"]["ours"]
    lines.append("")
    lines.append(f"median of {s['rounds']} run(s) (± half the min..max spread); {s['events']:,} events per run "
                 f"(official: {s['official_events']:,}); {s['requests']:,} serial and {s['inflight_requests']:,} "
                 f"in-flight requests (official: 10 serial, 1,000 in flight, memory over 100,000)")
    lines.append(f"ours: Python {v['python']}, Twisted {v['twisted']}, protobuf {v['protobuf']} "
                 f"({v['protobuf_backend']}), {v['openssl']}, autobahn {v['autobahn']}; {v['machine']}")
    o = report["versions"].get("official")
    if o:
        lines.append(f"official: ctrader-open-api {o['ctrader_open_api']}, Twisted {o['twisted']}, protobuf "
                     f"{o['protobuf']} ({o['protobuf_backend']}), {o['openssl']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = options(argv)
    report = collect(args)
    os.makedirs(args.output, exist_ok=True)
    path = os.path.join(args.output, f"{datetime.datetime.now():%Y%m%d-%H%M%S}.json")
    with open(path, "w") as out:
        json.dump(report, out, indent=1)
    report["path"] = path
    if "figures" in report:  # not with --only redis, which printed its own
        print(table(report))
    if "history" in report:
        from bench import history

        print("\n" + history.table(report["history"]))
    print(f"\nall figures: {path}")
    return report


if __name__ == "__main__":
    main()
