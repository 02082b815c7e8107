#!/usr/bin/env python
"""Proof under faults: the client against the simulator, dropped at random.

Runs many requests (mostly ``ProtoOAVersionReq``, some market orders with
unique ``clientOrderId`` values) and a large spot stream through a real
client over loopback TLS (or ``wss://``), while the simulator drops the
connection every few thousand received messages. Then it counts:

* Deferreds fired exactly once (must be all) and hung requests (must be 0);
* how requests ended: answered, outcome unknown (written, connection lost),
  not sent;
* orders duplicated on the server (must be 0: nothing is re-sent);
* subscriptions restored after each reconnect (must be all);
* spot events delivered versus sent during the bursts (the simulator's
  first "current price" event after each subscription is not counted), and
  for the bursts that no drop interrupted, whether every event arrived;
* peak resident memory.

Usage::

    python tools/faultproof.py                       # 100,000 requests, 1,000,000 events, TLS TCP and wss
    python tools/faultproof.py --requests 5000 --events 50000 --transport tcp

Client and server pacing are off here (at 50 requests/s 100,000 requests
would take half an hour): this measures fault handling, not rate limits.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from twisted.internet.defer import Deferred, DeferredList, ensureDeferred  # noqa: E402
from twisted.python.failure import Failure  # noqa: E402

from ctrader_twisted import Client, TcpProtocol, WebSocketProtocol  # noqa: E402
from ctrader_twisted.errors import NotSentError, OutcomeUnknownError  # noqa: E402
from ctrader_twisted.simulator import Simulator  # noqa: E402

SYMBOL = 1  # EURUSD
PERIOD_M1 = 1


@dataclass
class Report:
    """What one run counted."""

    transport: str
    requests: int = 0
    answered: int = 0
    outcomeUnknown: int = 0
    notSent: int = 0
    otherErrors: Counter[str] = field(default_factory=Counter)
    firedOnce: int = 0
    firedTwiceOrMore: int = 0
    hung: int = 0
    ordersSent: int = 0
    ordersOnServer: int = 0
    ordersDuplicated: int = 0
    drops: int = 0
    reconnects: int = 0
    restoresComplete: int = 0
    eventsSent: int = 0
    eventsDelivered: int = 0
    cleanBursts: int = 0
    cleanBurstsComplete: int = 0
    peakRssMiB: float = 0.0
    seconds: float = 0.0

    def ok(self) -> bool:
        """Whether every invariant held."""
        return (
            self.firedTwiceOrMore == 0
            and self.hung == 0
            and self.firedOnce == self.requests
            and self.ordersDuplicated == 0
            and self.restoresComplete == self.reconnects
            and self.cleanBurstsComplete == self.cleanBursts
            and not self.otherErrors
        )

    def asDict(self) -> dict[str, Any]:
        data = asdict(self)
        data["otherErrors"] = dict(self.otherErrors)
        data["ok"] = self.ok()
        return data


def _fastRetry(attempt: int) -> float:
    return min(0.02 * attempt, 0.5)


async def run(
    reactor: Any,
    transport: str = "tcp",
    requests: int = 100_000,
    events: int = 1_000_000,
    dropEvery: tuple[int, int] = (2000, 5000),
    batch: int = 500,
    burst: int = 20_000,
    orderShare: float = 0.1,
    seed: int = 0,
) -> Report:
    """One proof run; returns its :class:`Report` (never raises for a broken invariant)."""
    rng = random.Random(seed)
    report = Report(transport)
    started = time.monotonic()
    sim = Simulator(seed=seed, clock=reactor, spotInterval=3600.0, requestsPerSecond=None,
                    historicalRequestsPerSecond=None)
    listening = sim.listen(reactor, tlsPort=0 if transport == "tcp" else None, wsPort=0 if transport == "ws" else None)
    port = listening.tlsPort if transport == "tcp" else listening.wsPort
    client = Client(
        "localhost", port, TcpProtocol if transport == "tcp" else WebSocketProtocol,
        reactor=reactor, trustRoot=listening.caCertificate, retryPolicy=_fastRetry,
        clientId=sim.clientId, clientSecret=sim.clientSecret,
        requestsPerSecond=None, historicalRequestsPerSecond=None, responseTimeout=30,
        maxQueuedRequests=batch * 4,
    )
    # An account rich enough for every order of the run (hedged: each order
    # adds margin); the default token grants it.
    account = sim.addAccount(isLive=False, balance=10**14)
    delivered = _SpotCounter()
    client.addListener("ProtoOASpotEvent", delivered)
    readyOnce = [False]

    def onDisconnect(c: Client, reason: Any) -> None:
        if c.running:  # not the final stopService
            report.drops += 1

    def onReady(c: Client) -> None:
        if not readyOnce[0]:
            readyOnce[0] = True  # the first session: nothing to restore yet
            return
        report.reconnects += 1
        live = [s for s in sim.sessions if not s.closed]
        if len(live) == 1:
            s = live[0]
            if (
                SYMBOL in s.spots.get(account, set())
                and any(t[0] == account and SYMBOL in t[1:] and PERIOD_M1 in t[1:] for t in s.trendbars)
                and SYMBOL in s.depth.get(account, set())
            ):
                report.restoresComplete += 1

    client.setDisconnectedCallback(onDisconnect)
    client.setReadyCallback(onReady)
    client.startService()
    try:
        await client.whenReady()
        await client.authorizeAccount(account, sim.accessToken)
        await client.request("ProtoOASubscribeSpotsReq", ctidTraderAccountId=account, symbolId=[SYMBOL])
        await client.request("ProtoOASubscribeLiveTrendbarReq", ctidTraderAccountId=account, symbolId=SYMBOL, period=PERIOD_M1)
        await client.request("ProtoOASubscribeDepthQuotesReq", ctidTraderAccountId=account, symbolId=[SYMBOL])
        fired: dict[int, int] = {}
        pending: list[Deferred[Any]] = []
        orderIds: list[str] = []

        def track(d: Deferred[Any], key: int) -> Deferred[Any]:
            fired[key] = 0

            def done(result: Any) -> None:
                fired[key] += 1
                if isinstance(result, Failure):
                    error = result.value
                    if isinstance(error, OutcomeUnknownError):
                        report.outcomeUnknown += 1
                    elif isinstance(error, NotSentError):
                        report.notSent += 1
                    else:
                        report.otherErrors[type(error).__name__] += 1
                else:
                    report.answered += 1

            d.addBoth(done)
            return d

        while report.requests < requests or report.eventsSent < events:
            if sim.faults.dropAfterMessages is None:  # the previous drop happened: arm the next
                sim.faults.dropAfter(rng.randint(*dropEvery))
            await client.whenReady()
            batchDeferreds = []
            for _ in range(min(batch, requests - report.requests)):
                key = report.requests
                report.requests += 1
                if rng.random() < orderShare:
                    orderId = f"proof-{seed}-{key}"
                    orderIds.append(orderId)
                    report.ordersSent += 1
                    d = client.request(
                        "ProtoOANewOrderReq", ctidTraderAccountId=account, symbolId=SYMBOL, orderType=1,
                        tradeSide=1 + (key % 2), volume=100000, clientOrderId=orderId,
                    )
                else:
                    d = client.request("ProtoOAVersionReq")
                batchDeferreds.append(track(d, key))
            pending.extend(batchDeferreds)
            if report.eventsSent < events and client.isReady:
                before = (delivered.count, report.drops)
                count = min(burst, events - report.eventsSent)
                written = await sim.burst(count, symbolId=SYMBOL)
                # Let what was written arrive before comparing.
                for _ in range(200):
                    if delivered.count - before[0] >= written or report.drops != before[1]:
                        break
                    await _sleep(reactor, 0.005)
                report.eventsSent += written
                report.eventsDelivered += delivered.count - before[0]
                if report.drops == before[1] and written:
                    report.cleanBursts += 1
                    if delivered.count - before[0] == written:
                        report.cleanBurstsComplete += 1
            await DeferredList(batchDeferreds, consumeErrors=True)
            if report.requests >= requests and report.eventsSent < events and not client.isReady:
                await client.whenReady()
        await _sleep(reactor, 0.2)
        for key, count in fired.items():
            if count == 1:
                report.firedOnce += 1
            elif count > 1:
                report.firedTwiceOrMore += 1
            else:
                report.hung += 1
        onServer = Counter(
            o.clientOrderId for a in sim.accounts.values() for o in a.orders.values() if o.clientOrderId
        )
        report.ordersOnServer = sum(onServer.values())
        report.ordersDuplicated = sum(n - 1 for n in onServer.values() if n > 1)
    finally:
        await client.stopService()
        await sim.stop()
    report.peakRssMiB = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    report.seconds = time.monotonic() - started
    return report


class _SpotCounter:
    """The user callback of the stream: reads bid and ask, counts events."""

    def __init__(self) -> None:
        self.count = 0
        self.lastBid = 0

    def __call__(self, spot: Any) -> None:
        self.lastBid = spot.bid or spot.ask
        self.count += 1


def _sleep(reactor: Any, seconds: float) -> Deferred[None]:
    d: Deferred[None] = Deferred()
    reactor.callLater(seconds, d.callback, None)
    return d


def table(reports: list[Report]) -> str:
    """The reports as a reST simple table."""
    rows = [
        ("requests", "requests"),
        ("answered", "answered"),
        ("outcome unknown (never re-sent)", "outcomeUnknown"),
        ("not sent", "notSent"),
        ("Deferreds fired exactly once", "firedOnce"),
        ("Deferreds fired more than once", "firedTwiceOrMore"),
        ("hung requests", "hung"),
        ("orders sent", "ordersSent"),
        ("orders on the server", "ordersOnServer"),
        ("orders duplicated", "ordersDuplicated"),
        ("connection drops", "drops"),
        ("reconnects", "reconnects"),
        ("subscriptions fully restored", "restoresComplete"),
        ("spot events sent", "eventsSent"),
        ("spot events delivered", "eventsDelivered"),
        ("bursts with no drop", "cleanBursts"),
        ("... every event delivered", "cleanBurstsComplete"),
        ("peak RSS (MiB)", "peakRssMiB"),
        ("seconds", "seconds"),
    ]
    width = max(len(r[0]) for r in rows)
    heads = [r.transport for r in reports]
    cols = [max(12, len(h)) for h in heads]
    line = "=" * width + "  " + "  ".join("=" * c for c in cols)
    out = [line, "figure".ljust(width) + "  " + "  ".join(h.rjust(c) for h, c in zip(heads, cols)), line]
    for label, attr in rows:
        values = []
        for r, c in zip(reports, cols):
            v = getattr(r, attr)
            values.append((f"{v:.1f}" if isinstance(v, float) else str(v)).rjust(c))
        out.append(label.ljust(width) + "  " + "  ".join(values))
    out.append("all invariants hold".ljust(width) + "  " + "  ".join(str(r.ok()).rjust(c) for r, c in zip(reports, cols)))
    out.append(line)
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Proof under faults against the simulator.")
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--drop-min", type=int, default=2000)
    parser.add_argument("--drop-max", type=int, default=5000)
    parser.add_argument("--transport", choices=["tcp", "ws", "both"], default="both")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    options = parser.parse_args(argv)
    transports = ["tcp", "ws"] if options.transport == "both" else [options.transport]
    from twisted.internet.task import react

    reports: list[Report] = []

    async def go(reactor: Any) -> None:
        for name in transports:
            reports.append(
                await run(reactor, name, options.requests, options.events,
                          (options.drop_min, options.drop_max), seed=options.seed)
            )

    try:
        react(lambda r: ensureDeferred(go(r)))
    except SystemExit as e:
        if e.code not in (0, None):
            raise
    print(table(reports))
    if options.json:
        options.json.write_text(json.dumps([r.asDict() for r in reports], indent=2))
    return 0 if all(r.ok() for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
