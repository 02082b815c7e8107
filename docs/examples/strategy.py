"""A short strategy with the typed API: watch prices, buy with a bracket,
follow the account, close.

Runs against the bundled simulator (no account, no network)::

    python docs/examples/strategy.py

The strategy waits for three quotes of EURUSD, buys 0.1 lot with a stop
loss 20 pips under the fill and a take profit 40 pips over it, prints the
account model (equity, margin, the position's unrealized profit) as the
price moves, and closes the position after a few seconds.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from twisted.internet.defer import ensureDeferred
from twisted.internet.task import deferLater, react

from ctrader_twisted import Client
from ctrader_twisted.trading import AccountChanged, Spot, Trader


async def strategy(reactor: Any, trader: Trader) -> None:
    # 1. Prices: subscribe on first use, unsubscribe when the block ends.
    async with trader.stream(Spot, symbol="eurusd") as spots:  # names are case-insensitive
        seen = 0
        async for spot in spots:
            print(f"{spot.symbol} bid {spot.bid} ask {spot.ask} spread {spot.spread}")
            seen += 1
            if seen == 3:
                break

    # 2. A bracketed market order: lots, stops in pips.
    fill = await trader.buy("EURUSD", lots=Decimal("0.1"), stopLossPips=20, takeProfitPips=40, label="example")
    position = trader.account.position(fill.positionId)
    assert position is not None
    print(f"bought {fill.lots} lot at {fill.price}: stop loss {position.stopLoss}, take profit {position.takeProfit}")

    # 3. The live account model, kept current from executions and quotes.
    def show(change: AccountChanged) -> None:
        pnl = trader.account.unrealized(fill.positionId)
        if pnl is not None:
            print(f"equity {trader.account.equity} margin {trader.account.margin} unrealized {pnl.gross}")

    watching = trader.on(AccountChanged, show)
    await deferLater(reactor, 1.0, lambda: None)
    watching.cancel()

    # 4. Close; what the close realized is in the fill.
    if trader.account.position(fill.positionId) is not None:
        closed = await trader.closePosition(fill.positionId)
        assert closed.closed is not None
        print(f"closed at {closed.price}: gross {closed.closed.grossProfit}, commission {closed.closed.commission}, "
              f"balance {closed.closed.balance}")
    print(f"open positions: {len(trader.account.positions)}; balance {trader.account.balance} {trader.account.depositAsset}")


async def main(reactor: Any) -> None:
    from ctrader_twisted.simulator import Simulator

    sim = Simulator(spotInterval=0.1)
    listening = sim.listen(reactor, tlsPort=0, wsPort=None)
    client = Client("localhost", listening.tlsPort, reactor=reactor, trustRoot=listening.caCertificate,
                    clientId=sim.clientId, clientSecret=sim.clientSecret)
    client.startService()
    try:
        trader = Trader(client, sim.accountIds[0], sim.accessToken)
        await trader.start()
        await strategy(reactor, trader)
        trader.stop()
    finally:
        await client.stopService()
        await sim.stop()


if __name__ == "__main__":
    react(lambda reactor: ensureDeferred(main(reactor)))
