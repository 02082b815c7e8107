"""Download a week of M5 bars with ctrader_twisted.history, row by row, and a summary of the deals.

Run against the bundled simulator (no account, no network)::

    python docs/examples/download_history.py

or against a real proxy, with credentials in the environment::

    CTRADER_CLIENT_ID=... CTRADER_CLIENT_SECRET=... CTRADER_ACCESS_TOKEN=... \\
        python docs/examples/download_history.py --host demo.ctraderapi.com --account 1234567
"""

from __future__ import annotations

import argparse
import os
from datetime import datetime, timedelta, timezone
from typing import Any

from twisted.internet.defer import ensureDeferred
from twisted.internet.task import react

from ctrader_twisted import Client, EndPoints, history


async def download(reactor: Any, host: str | None, account: int | None, symbolName: str, end: datetime) -> None:
    if host is None:
        from ctrader_twisted.simulator import Simulator

        sim = Simulator()
        listening = sim.listen(reactor, tlsPort=0, wsPort=None)
        client = Client("localhost", listening.tlsPort, reactor=reactor, trustRoot=listening.caCertificate,
                        clientId=sim.clientId, clientSecret=sim.clientSecret)
        token, account = sim.accessToken, sim.accountIds[0]
    else:
        sim = None
        client = Client(host, EndPoints.PROTOBUF_PORT, reactor=reactor,
                        clientId=os.environ["CTRADER_CLIENT_ID"], clientSecret=os.environ["CTRADER_CLIENT_SECRET"])
        token = os.environ["CTRADER_ACCESS_TOKEN"]
    assert account is not None
    client.startService()
    try:
        await client.whenReady()
        await client.authorizeAccount(account, token)
        symbols = await client.request("ProtoOASymbolsListReq", ctidTraderAccountId=account)
        symbolId = next(s.symbolId for s in symbols.symbol if s.symbolName == symbolName)

        # Rows arrive in time order, window by window; the whole range is never in memory.
        bars = history.trendbars(client, account, symbolId, "M5", end - timedelta(days=7), end)
        count, high = 0, None
        async for bar in bars:
            count += 1
            high = bar.high if high is None else max(high, bar.high)
        p = bars.progress
        print(f"{count} M5 bars of {symbolName}, highest {high}, {p.requests} requests in {p.windowsDone} windows")

        # The callback form: a Deferred that fires with the final progress.
        deals: list[history.Deal] = []
        progress = await history.deals(client, account, end - timedelta(days=30), end).each(deals.append)
        closed = [d for d in deals if d.grossProfit is not None]
        profit = sum((d.grossProfit for d in closed if d.grossProfit is not None), start=0)
        print(f"{progress.rows} deals in 30 days, {len(closed)} closing, gross profit {profit}")
    finally:
        await client.stopService()
        if sim is not None:
            await sim.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", help="proxy host (default: the bundled simulator)")
    parser.add_argument("--account", type=int, help="ctidTraderAccountId (real proxy only)")
    parser.add_argument("--symbol", default="EURUSD")
    parser.add_argument("--end", default="2026-09-19", help="end of the week, ISO date (UTC)")
    options = parser.parse_args()
    end = datetime.fromisoformat(options.end).replace(tzinfo=timezone.utc)
    react(lambda reactor: ensureDeferred(download(reactor, options.host, options.account, options.symbol, end)))


if __name__ == "__main__":
    main()
