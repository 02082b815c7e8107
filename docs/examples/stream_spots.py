"""Stream a few spot prices: the managed session, a listener, a subscription.

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

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import react

from ctrader_twisted import Client, EndPoints


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
    client.startService()
    try:
        await client.whenReady()
        await client.authorizeAccount(account, token)
        symbols = await client.request("ProtoOASymbolsListReq", ctidTraderAccountId=account)
        symbolId = next(s.symbolId for s in symbols.symbol if s.symbolName == symbolName)
        spec = (await client.request("ProtoOASymbolByIdReq", ctidTraderAccountId=account, symbolId=[symbolId])).symbol[0]

        done: Deferred[None] = Deferred()
        seen = [0]

        def onSpot(spot: Any) -> None:
            if spot.symbolId != symbolId:
                return
            bid = spot.bid / 100_000 if spot.HasField("bid") else None
            ask = spot.ask / 100_000 if spot.HasField("ask") else None
            print(f"{symbolName} bid={bid:.{spec.digits}f}" if bid else f"{symbolName} bid=-",
                  f"ask={ask:.{spec.digits}f}" if ask else "ask=-")
            seen[0] += 1
            if seen[0] == count and not done.called:
                done.callback(None)

        client.addListener("ProtoOASpotEvent", onSpot)
        await client.request("ProtoOASubscribeSpotsReq", ctidTraderAccountId=account, symbolId=[symbolId])
        await done
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
