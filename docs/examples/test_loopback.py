"""Testing your own code against the simulator over loopback, with trial.

The simulator listens on free ports of 127.0.0.1 (TLS TCP with its own CA,
which the client trusts); the test talks to it through a real ``Client``
and stops both in its cleanup. Run it with trial from the repository root::

    python -m twisted.trial docs/examples/test_loopback.py

For code that waits on time (heartbeats, retries, rate limits), prefer the
in-memory pattern of ``test_my_strategy.py``: no socket, a Clock you move.
"""

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from ctrader_twisted import Client
from ctrader_twisted.errors import NotEnoughMoneyError
from ctrader_twisted.messages.OpenApiModelMessages_pb2 import ProtoOAExecutionType
from ctrader_twisted.simulator import Simulator


class MyTests(TestCase):
    def setUp(self):
        self.sim = Simulator(seed=1, spotInterval=0.05)
        self.listening = self.sim.listen(reactor)          # tlsPort, wsPort, caCertificate
        self.addCleanup(self.sim.stop)
        self.client = Client("localhost", self.listening.tlsPort,
                             trustRoot=self.listening.caCertificate, reactor=reactor)
        self.client.startService()
        self.addCleanup(self.client.stopService)           # runs before sim.stop

    async def test_buy(self):
        sim, client = self.sim, self.client
        await client.request("ApplicationAuthReq", clientId=sim.clientId, clientSecret=sim.clientSecret)
        account = sim.accountIds[0]
        await client.request("AccountAuthReq", ctidTraderAccountId=account, accessToken=sim.accessToken)
        accepted = await client.request("NewOrderReq", ctidTraderAccountId=account, symbolId=1,
                                        orderType="MARKET", tradeSide="BUY", volume=100000)
        self.assertEqual(accepted.executionType, ProtoOAExecutionType.ORDER_ACCEPTED)
        with self.assertRaises(NotEnoughMoneyError):
            await client.request("NewOrderReq", ctidTraderAccountId=account, symbolId=1,
                                 orderType="MARKET", tradeSide="BUY", volume=10_000_000_000)
