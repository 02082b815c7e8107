"""Testing your own code against the simulator, in memory, on a Clock.

Run it with trial (``python -m twisted.trial docs/examples/test_my_strategy.py``
from the repository root) or copy the pattern into your own test suite. No
socket is opened and nothing sleeps: ``SimulatedServer`` moves the Clock.
"""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from ctrader_twisted.errors import NotEnoughMoneyError
from ctrader_twisted.messages.OpenApiModelMessages_pb2 import ProtoOAExecutionType, ProtoOAOrderType, ProtoOATradeSide
from ctrader_twisted.testing import SimulatedServer


class SpotCounter:
    """The code under test: counts the spots of one symbol."""

    def __init__(self, client: Any, account: int, symbolId: int) -> None:
        self.client, self.account, self.symbolId = client, account, symbolId
        self.count = 0

    def start(self) -> Any:
        self.client.addListener("ProtoOASpotEvent", self.onSpot)
        return self.client.request("SubscribeSpotsReq", ctidTraderAccountId=self.account, symbolId=[self.symbolId])

    def onSpot(self, spot: Any) -> None:
        if spot.symbolId == self.symbolId:
            self.count += 1


class StrategyTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.server = SimulatedServer(seed=1, spotInterval=0.5)
        self.client = self.server.connect(self.server.managedClient())  # authenticated and ready
        self.addCleanup(self.client.stopService)
        sim = self.server.simulator
        self.account = sim.accountIds[0]
        self.server.resultOf(self.client.authorizeAccount(self.account, sim.accessToken))

    def test_countsSpots(self) -> None:
        counter = SpotCounter(self.client, self.account, symbolId=1)
        self.server.resultOf(counter.start())
        self.server.advance(5)  # ten market ticks, in no time
        self.assertGreater(counter.count, 5)

    def test_ordersAndRefusals(self) -> None:
        accepted = self.server.resultOf(
            self.client.request(
                "NewOrderReq", ctidTraderAccountId=self.account, symbolId=1,
                orderType=ProtoOAOrderType.MARKET, tradeSide=ProtoOATradeSide.BUY, volume=100_000,
            )
        )
        self.assertEqual(accepted.executionType, ProtoOAExecutionType.ORDER_ACCEPTED)
        with self.assertRaises(NotEnoughMoneyError):
            self.server.resultOf(
                self.client.request(
                    "NewOrderReq", ctidTraderAccountId=self.account, symbolId=1,
                    orderType=ProtoOAOrderType.MARKET, tradeSide=ProtoOATradeSide.BUY, volume=10_000_000_000,
                )
            )

    def test_typedBracketOrder(self) -> None:
        """The same with the typed API: a bracketed buy, checked on the account model."""
        from decimal import Decimal

        from ctrader_twisted.trading import Trader

        trader = Trader(self.client, self.account)  # the account is authorized already
        self.server.resultOf(trader.start())
        fill = self.server.resultOf(trader.buy("EURUSD", lots=Decimal("0.01"), stopLossPips=20, takeProfitPips=20))
        position = trader.account.position(fill.positionId)
        assert position is not None and fill.price is not None
        self.assertEqual(position.stopLoss, fill.price - Decimal("0.0020"))
        self.server.advance(5)
        self.assertIsNotNone(trader.account.equity)
        trader.stop()
