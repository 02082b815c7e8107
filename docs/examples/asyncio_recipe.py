"""The typed API from asyncio code, and from a Jupyter notebook.

Runs against the bundled simulator::

    python docs/examples/asyncio_recipe.py

Twisted runs on asyncio's own loop (``asyncioreactor``), installed on the loop
that is already running, as in a notebook (whose cells run in a loop that is
already running, so ``reactor.run()`` is never called: ``startRunning`` marks
the reactor as running instead). Deferreds become asyncio futures with
``Deferred.asFuture(loop)`` (or :func:`ctrader_twisted.trading.awaitable`,
which works in both worlds), and the typed API's async iterators work in
asyncio tasks as they are.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any


def installReactor(loop: asyncio.AbstractEventLoop) -> Any:
    """Run Twisted on *loop*, which is already running (a notebook's, or
    ``asyncio.run``'s): install the asyncio reactor on it, before anything
    imports ``twisted.internet.reactor``, and mark it running."""
    from twisted.internet import asyncioreactor

    asyncioreactor.install(loop)
    from twisted.internet import reactor

    reactor.startRunning(installSignalHandlers=False)  # type: ignore[attr-defined]
    return reactor


async def main() -> None:
    loop = asyncio.get_running_loop()
    reactor = installReactor(loop)

    from ctrader_twisted import Client
    from ctrader_twisted.simulator import Simulator
    from ctrader_twisted.trading import Trader, awaitable

    sim = Simulator(spotInterval=0.1)
    listening = sim.listen(reactor, tlsPort=0, wsPort=None)
    client = Client("localhost", listening.tlsPort, reactor=reactor, trustRoot=listening.caCertificate,
                    clientId=sim.clientId, clientSecret=sim.clientSecret)
    client.startService()
    trader = Trader(client, sim.accountIds[0], sim.accessToken)
    await trader.start().asFuture(loop)  # a Deferred, awaited from asyncio

    async def buyAndWatch() -> int:
        """An ordinary asyncio task using the typed API."""
        fill = await awaitable(trader.buy("EURUSD", lots=Decimal("0.01")))
        print(f"asyncio task: bought {fill.lots} lot at {fill.price}")
        quotes = 0
        async with trader.spots("EURUSD") as spots:  # async iterators work in asyncio tasks as they are
            async for spot in spots:
                quotes += 1
                if quotes == 3:
                    break
        print(f"asyncio task: {quotes} quotes of {spot.symbol}, last bid {spot.bid}")
        return fill.positionId

    positionId = await asyncio.create_task(buyAndWatch())

    # What a notebook cell does: top-level ``await`` in the running loop.
    print(f"notebook cell: balance {trader.account.balance}, equity {trader.account.equity}")
    await trader.closePosition(positionId).asFuture(loop)
    print(f"closed; open positions: {len(trader.account.positions)}")

    trader.stop()
    await client.stopService().asFuture(loop)
    await sim.stop().asFuture(loop)
    # The end of a script (a notebook's kernel lives on): the reactor never
    # ran its shutdown, so stop its thread pool (host name resolution) here.
    reactor.getThreadPool().stop()


if __name__ == "__main__":
    asyncio.run(main())
