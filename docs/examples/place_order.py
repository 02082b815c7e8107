"""Place a market order and reconcile when its outcome is unknown.

Runs against the bundled simulator::

    python docs/examples/place_order.py
"""

from __future__ import annotations

import uuid
from typing import Any

from twisted.internet.defer import ensureDeferred
from twisted.internet.task import react

from ctrader_twisted import Client
from ctrader_twisted.errors import NotEnoughMoneyError, OutcomeUnknownError, RequestTimeout
from ctrader_twisted.messages.OpenApiModelMessages_pb2 import ProtoOAExecutionType


async def placeOrder(client: Client, account: int, symbolId: int, volume: int) -> Any:
    """Send a market order; if the connection drops or the answer is late,
    find out from the server whether it was executed (never send it twice blindly)."""
    clientOrderId = uuid.uuid4().hex[:20]
    try:
        return await client.request("ProtoOANewOrderReq", ctidTraderAccountId=account, symbolId=symbolId,
                                    orderType=1, tradeSide=1, volume=volume, clientOrderId=clientOrderId,
                                    label=clientOrderId)
    except (OutcomeUnknownError, RequestTimeout):
        await client.whenReady()
        state = await client.request("ProtoOAReconcileReq", ctidTraderAccountId=account)
        for position in state.position:
            if position.tradeData.label == clientOrderId:
                print("the order was executed before the connection dropped")
                return position
        for order in state.order:
            if order.clientOrderId == clientOrderId:
                print("the order reached the server and is still working")
                return order
        raise


async def main(reactor: Any) -> None:
    from ctrader_twisted.simulator import Simulator

    sim = Simulator()
    listening = sim.listen(reactor, tlsPort=0, wsPort=None)
    client = Client("localhost", listening.tlsPort, reactor=reactor, trustRoot=listening.caCertificate,
                    clientId=sim.clientId, clientSecret=sim.clientSecret)
    client.startService()
    try:
        await client.whenReady()
        account = sim.accountIds[0]
        await client.authorizeAccount(account, sim.accessToken)
        event = await placeOrder(client, account, symbolId=1, volume=100_000)  # 1,000.00 EUR
        # The first execution event answers the request (ORDER_ACCEPTED); the
        # fill follows as another event with the same clientMsgId.
        print("execution:", ProtoOAExecutionType.Name(event.executionType), "order", event.order.orderId,
              "position", event.position.positionId)
        try:
            await placeOrder(client, account, symbolId=1, volume=10_000_000_000)
        except NotEnoughMoneyError as e:
            print("refused:", e.errorCode)
    finally:
        await client.stopService()
        await sim.stop()


if __name__ == "__main__":
    react(lambda reactor: ensureDeferred(main(reactor)))
