"""Place orders with the typed API; refusals are typed errors, and an order
whose outcome a lost connection made unknown is reconciled, never sent twice.

Runs against the bundled simulator::

    python docs/examples/place_order.py
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from twisted.internet.defer import ensureDeferred
from twisted.internet.task import react

from ctrader_twisted import Client
from ctrader_twisted.errors import BadVolumeError, NotEnoughMoneyError, NotExecutedError
from ctrader_twisted.trading import Side, Trader


async def main(reactor: Any) -> None:
    from ctrader_twisted.simulator import Simulator

    sim = Simulator()
    listening = sim.listen(reactor, tlsPort=0, wsPort=None)
    client = Client("localhost", listening.tlsPort, reactor=reactor, trustRoot=listening.caCertificate,
                    clientId=sim.clientId, clientSecret=sim.clientSecret)
    client.startService()
    try:
        trader = Trader(client, sim.accountIds[0], sim.accessToken)
        await trader.start()
        fill = await trader.buy("EURUSD", lots=Decimal("0.01"))
        print(f"filled: order {fill.orderId} position {fill.positionId}, {fill.units} units at {fill.price}")
        eurusd = await trader.symbols.get("EURUSD")
        order = await trader.limitOrder("EURUSD", Side.BUY, fill.price - 100 * eurusd.pipSize, lots=Decimal("0.02"))
        print(f"pending: {order.type.name} {order.side.name} {order.lots} lot at {order.price}")
        await trader.cancelOrder(order.id)
        try:
            await trader.buy("EURUSD", lots=Decimal("0.015"))
        except BadVolumeError as e:  # checked before sending; names the nearest valid volumes
            print("refused:", e)
        try:
            await trader.buy("EURUSD", lots=Decimal("100"))
        except NotEnoughMoneyError as e:  # the server's refusal, typed
            print("refused:", e.errorCode)
        # The connection drops right after the order is written: the client
        # reconnects, asks the server what became of the order, and says.
        sim.faults.dropAfter(1)
        try:
            await trader.buy("EURUSD", lots=Decimal("0.01"))
        except NotExecutedError:
            print("not executed (and not sent again): safe to send again")
        trader.stop()
    finally:
        await client.stopService()
        await sim.stop()


if __name__ == "__main__":
    react(lambda reactor: ensureDeferred(main(reactor)))
