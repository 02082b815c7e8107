"""Stream a few spot prices with the typed API: a managed session, a trader, a stream.

Run against the bundled simulator (no account, no network)::

    python docs/examples/stream_spots.py

or against a real proxy, with credentials in the environment::

    CTRADER_CLIENT_ID=... CTRADER_CLIENT_SECRET=... CTRADER_ACCESS_TOKEN=... \\
        python docs/examples/stream_spots.py --host demo.ctraderapi.com --account 1234567
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from twisted.internet.defer import ensureDeferred
from twisted.internet.task import react

from ctrader_twisted import Client, EndPoints
from ctrader_twisted.trading import Trader


async def stream(reactor: Any, host: str | None, account: int | None, symbolName: str, count: int) -> None:
    if host is None:
        from ctrader_twisted.simulator import Simulator

        sim = Simulator(spotInterval=0.2)
        listening = sim.listen(reactor, tlsPort=0, wsPort=None)
        client = Client("localhost", listening.tlsPort, reactor=reactor, trustRoot=listening.caCertificate,
                        clientId=sim.clientId, clientSecret=sim.clientSecret)
        token, account = sim.accessToken, sim.accountIds[0]
    else:
        sim = None
        client = Client(host, EndPoints.PROTOBUF_PORT, reactor=reactor,
                        clientId=os.environ["CTRADER_CLIENT_ID"], clientSecret=os.environ["CTRADER_CLIENT_SECRET"])
        token = os.environ["CTRADER_ACCESS_TOKEN"]
    assert account is not None, "--account is required with --host"
    client.startService()
    try:
        trader = Trader(client, account, token)
        await trader.start()
        # Subscribed on first use, unsubscribed when the block ends; prices
        # are Decimals with the symbol's digits, both sides always present
        # once known (the server sends only the side that changed).
        async with trader.spots(symbolName) as spots:
            seen = 0
            async for spot in spots:
                print(f"{spot.symbol} bid={spot.bid if spot.bid is not None else '-'} "
                      f"ask={spot.ask if spot.ask is not None else '-'}")
                seen += 1
                if seen == count:
                    break
        trader.stop()
    finally:
        await client.stopService()
        if sim is not None:
            await sim.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", help="proxy host (default: the bundled simulator)")
    parser.add_argument("--account", type=int, help="ctidTraderAccountId (real proxy only)")
    parser.add_argument("--symbol", default="EURUSD")
    parser.add_argument("--count", type=int, default=5)
    options = parser.parse_args()
    react(lambda reactor: ensureDeferred(stream(reactor, options.host, options.account, options.symbol, options.count)))


if __name__ == "__main__":
    main()
