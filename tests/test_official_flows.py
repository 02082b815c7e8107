"""The official SDK's own flows, in its call style, against the simulator.

Adapted copies of the official SDK's console sample and Jupyter notebook
(``samples/ConsoleSample/main.py`` and ``samples/jupyter/main.ipynb`` of
spotware/OpenApiPy), written here from their behaviour: the same calls, in
the same order, with the same callbacks (``setConnectedCallback``,
``setMessageReceivedCallback``, ``send`` with message objects and
``addCallbacks``/``addErrback``, ``Protobuf.extract`` on every message). What
changed is only what a test must change: the host (the simulator on
loopback, with its CA as ``trustRoot``), the credentials (the simulator's),
keyboard input (a list of commands) and the end (a Deferred instead of
``reactor.stop()``).
"""

from __future__ import annotations

import calendar
import datetime
from typing import Any, Callable

from twisted.internet import defer
from twisted.trial.unittest import TestCase

from ctrader_twisted import Client, EndPoints, Protobuf, TcpProtocol
from ctrader_twisted.messages.OpenApiCommonMessages_pb2 import ProtoHeartbeatEvent
from ctrader_twisted.messages.OpenApiMessages_pb2 import (
    ProtoOAAccountAuthReq,
    ProtoOAAccountAuthRes,
    ProtoOAAccountLogoutReq,
    ProtoOAAccountLogoutRes,
    ProtoOAApplicationAuthReq,
    ProtoOAApplicationAuthRes,
    ProtoOAAssetListReq,
    ProtoOACancelOrderReq,
    ProtoOAClosePositionReq,
    ProtoOADealOffsetListReq,
    ProtoOAGetAccountListByAccessTokenReq,
    ProtoOAGetPositionUnrealizedPnLReq,
    ProtoOAGetTickDataReq,
    ProtoOAGetTrendbarsReq,
    ProtoOAGetTrendbarsRes,
    ProtoOANewOrderReq,
    ProtoOAOrderDetailsReq,
    ProtoOAOrderListByPositionIdReq,
    ProtoOAReconcileReq,
    ProtoOASubscribeSpotsReq,
    ProtoOASpotEvent,
    ProtoOASubscribeSpotsRes,
    ProtoOASymbolsListReq,
    ProtoOASymbolsListRes,
    ProtoOATraderReq,
    ProtoOAVersionReq,
)
from ctrader_twisted.messages.OpenApiModelMessages_pb2 import (
    ProtoOAOrderType,
    ProtoOAQuoteType,
    ProtoOATradeSide,
    ProtoOATrendbarPeriod,
)
from ctrader_twisted.simulator import Simulator


class _SimulatorCase(TestCase):
    def setUp(self) -> Any:
        from twisted.internet import reactor

        self.reactor = reactor
        self.sim = Simulator(seed=3, spotInterval=0.2)
        self.listening = self.sim.listen(reactor, tlsPort=0, wsPort=None)
        self.addCleanup(self.sim.stop)
        self.credentials = {
            "ClientId": self.sim.clientId,
            "Secret": self.sim.clientSecret,
            "AccessToken": self.sim.accessToken,
            "AccountId": self.sim.accountIds[0],
            "HostType": "demo",
        }

    def officialClient(self) -> Client:
        # The samples: Client(EndPoints.PROTOBUF_DEMO_HOST, EndPoints.PROTOBUF_PORT, TcpProtocol)
        self.assertEqual(EndPoints.PROTOBUF_PORT, 5035)
        client = Client("localhost", self.listening.tlsPort, TcpProtocol, trustRoot=self.listening.caCertificate)
        self.addCleanup(client.stopService)
        return client


class NotebookFlowTests(_SimulatorCase):
    """The Jupyter notebook: application auth, account auth, the symbol list,
    50 weeks of daily bars, each step chained with ``addCallbacks``."""

    def test_dailyBarsOfASymbol(self) -> defer.Deferred[Any]:
        credentials = self.credentials
        client = self.officialClient()
        symbolName = "EURUSD"
        dailyBars: list[list[Any]] = []
        done: defer.Deferred[Any] = defer.Deferred()
        printed: list[Any] = []

        def transformTrendbar(trendbar: Any) -> list[Any]:
            openTime = datetime.datetime.fromtimestamp(trendbar.utcTimestampInMinutes * 60, datetime.timezone.utc)
            openPrice = (trendbar.low + trendbar.deltaOpen) / 100000.0
            highPrice = (trendbar.low + trendbar.deltaHigh) / 100000.0
            lowPrice = trendbar.low / 100000.0
            closePrice = (trendbar.low + trendbar.deltaClose) / 100000.0
            return [openTime, openPrice, highPrice, lowPrice, closePrice, trendbar.volume]

        def trendbarsResponseCallback(result: Any) -> None:
            trendbars = Protobuf.extract(result)
            barsData = list(map(transformTrendbar, trendbars.trendbar))
            dailyBars.clear()
            dailyBars.extend(barsData)
            done.callback(None)  # the notebook calls reactor.stop() here

        def symbolsResponseCallback(result: Any) -> None:
            symbols = Protobuf.extract(result)
            matches = list(filter(lambda symbol: symbol.symbolName == symbolName, symbols.symbol))
            if len(matches) != 1:
                raise Exception(f"{len(matches)} symbols match {symbolName}")
            symbol = matches[0]
            request = ProtoOAGetTrendbarsReq()
            request.symbolId = symbol.symbolId
            request.ctidTraderAccountId = credentials["AccountId"]
            request.period = ProtoOATrendbarPeriod.D1
            now = datetime.datetime.now(datetime.timezone.utc)
            request.fromTimestamp = int(calendar.timegm((now - datetime.timedelta(weeks=50)).utctimetuple())) * 1000
            request.toTimestamp = int(calendar.timegm(now.utctimetuple())) * 1000
            deferred = client.send(request)
            deferred.addCallbacks(trendbarsResponseCallback, onError)

        def accountAuthResponseCallback(result: Any) -> None:
            request = ProtoOASymbolsListReq()
            request.ctidTraderAccountId = credentials["AccountId"]
            request.includeArchivedSymbols = False
            deferred = client.send(request)
            deferred.addCallbacks(symbolsResponseCallback, onError)

        def applicationAuthResponseCallback(result: Any) -> None:
            request = ProtoOAAccountAuthReq()
            request.ctidTraderAccountId = credentials["AccountId"]
            request.accessToken = credentials["AccessToken"]
            deferred = client.send(request)
            deferred.addCallbacks(accountAuthResponseCallback, onError)

        def onError(failure: Any) -> None:
            if not done.called:
                done.errback(failure)

        def disconnected(client: Client, reason: Any) -> None:
            printed.append(("disconnected", reason))

        def onMessageReceived(client: Client, message: Any) -> None:
            if message.payloadType in [
                ProtoHeartbeatEvent().payloadType,
                ProtoOAAccountAuthRes().payloadType,
                ProtoOAApplicationAuthRes().payloadType,
                ProtoOASymbolsListRes().payloadType,
                ProtoOAGetTrendbarsRes().payloadType,
            ]:
                return
            printed.append(Protobuf.extract(message))

        def connected(client: Client) -> None:
            request = ProtoOAApplicationAuthReq()
            request.clientId = credentials["ClientId"]
            request.clientSecret = credentials["Secret"]
            deferred = client.send(request)
            deferred.addCallbacks(applicationAuthResponseCallback, onError)

        client.setConnectedCallback(connected)
        client.setDisconnectedCallback(disconnected)
        client.setMessageReceivedCallback(onMessageReceived)
        client.startService()

        def check(_: Any) -> None:
            self.assertGreater(len(dailyBars), 200)  # about 250 trading days in 50 weeks
            for openTime, openPrice, high, low, close, volume in dailyBars:
                self.assertTrue(low <= min(openPrice, close) <= max(openPrice, close) <= high)
                self.assertEqual(openTime.tzinfo, datetime.timezone.utc)
            self.assertEqual([p for p in printed if isinstance(p, tuple)], [])

        return done.addCallback(check)


class ConsoleFlowTests(_SimulatorCase):
    """The console sample: each command sends one message object with
    ``client.send(request, clientMsgId=...)`` and ``addErrback(onError)``;
    the message callback extracts and prints every answer, then the next
    command runs (the sample waits 3 s; here, at once)."""

    def test_everyCommandGetsItsAnswer(self) -> defer.Deferred[Any]:
        credentials = self.credentials
        accessToken = credentials["AccessToken"]
        appClientId, appClientSecret = credentials["ClientId"], credentials["Secret"]
        client = self.officialClient()
        state: dict[str, Any] = {"currentAccountId": None}
        received: list[Any] = []
        errors: list[Any] = []
        answered: set[str] = set()
        finished: defer.Deferred[Any] = defer.Deferred()

        def connected(client: Client) -> None:
            request = ProtoOAApplicationAuthReq()
            request.clientId = appClientId
            request.clientSecret = appClientSecret
            deferred = client.send(request)
            deferred.addErrback(onError)

        def onMessageReceived(client: Client, message: Any) -> None:
            if message.payloadType in [
                ProtoOASubscribeSpotsRes().payloadType,
                ProtoOAAccountLogoutRes().payloadType,
                ProtoHeartbeatEvent().payloadType,
            ]:
                return
            elif message.payloadType == ProtoOAApplicationAuthRes().payloadType:
                if state["currentAccountId"] is not None:
                    sendProtoOAAccountAuthReq()
                    return
            elif message.payloadType == ProtoOAAccountAuthRes().payloadType:
                Protobuf.extract(message)
            else:
                received.append(Protobuf.extract(message))
                if message.payloadType == ProtoOASpotEvent().payloadType:
                    # The sample moves on after every message but the
                    # subscription's answer, so the first spot event is what
                    # moves it on after a subscription. It also moves on after
                    # every later spot event, which runs commands out of order
                    # while the subscription lasts: the copy does not.
                    if not state.pop("awaitingSpot", False):
                        return
                elif not message.clientMsgId or message.clientMsgId in answered:
                    # An order brings several execution events: the copy moves
                    # on after the first message answering each command.
                    return
            answered.add(message.clientMsgId)
            self.reactor.callLater(0, executeUserCommand)

        def onError(failure: Any) -> None:
            errors.append(failure)
            self.reactor.callLater(0, executeUserCommand)

        def setAccount(accountId: str) -> None:
            if state["currentAccountId"] is not None:
                sendProtoOAAccountLogoutReq()
            state["currentAccountId"] = int(accountId)
            sendProtoOAAccountAuthReq()

        def send(request: Any, clientMsgId: Any = None, **extra: Any) -> None:
            deferred = client.send(request, clientMsgId=clientMsgId, **extra)
            deferred.addErrback(onError)

        def sendProtoOAVersionReq(clientMsgId: Any = None) -> None:
            send(ProtoOAVersionReq(), clientMsgId)

        def sendProtoOAGetAccountListByAccessTokenReq(clientMsgId: Any = None) -> None:
            request = ProtoOAGetAccountListByAccessTokenReq()
            request.accessToken = accessToken
            send(request, clientMsgId)

        def sendProtoOAAccountLogoutReq(clientMsgId: Any = None) -> None:
            request = ProtoOAAccountLogoutReq()
            request.ctidTraderAccountId = state["currentAccountId"]
            send(request, clientMsgId)

        def sendProtoOAAccountAuthReq(clientMsgId: Any = None) -> None:
            request = ProtoOAAccountAuthReq()
            request.ctidTraderAccountId = state["currentAccountId"]
            request.accessToken = accessToken
            send(request, clientMsgId)

        def accountRequest(cls: Any, **fields: Any) -> Callable[..., None]:
            def command(clientMsgId: Any = None) -> None:
                request = cls()
                request.ctidTraderAccountId = state["currentAccountId"]
                for name, value in fields.items():
                    setattr(request, name, value)
                send(request, clientMsgId)

            return command

        def sendProtoOASubscribeSpotsReq(symbolId: str, timeInSeconds: str, clientMsgId: Any = None) -> None:
            request = ProtoOASubscribeSpotsReq()
            request.ctidTraderAccountId = state["currentAccountId"]
            request.symbolId.append(int(symbolId))
            state["awaitingSpot"] = True
            send(request, clientMsgId)

        def history(cls: Any, days: int, symbolId: str, **fields: Any) -> Callable[..., None]:
            def command(clientMsgId: Any = None) -> None:
                request = cls()
                request.ctidTraderAccountId = state["currentAccountId"]
                now = datetime.datetime.now(datetime.timezone.utc)
                request.fromTimestamp = int(calendar.timegm((now - datetime.timedelta(days=days)).utctimetuple())) * 1000
                request.toTimestamp = int(calendar.timegm(now.utctimetuple())) * 1000
                request.symbolId = int(symbolId)
                for name, value in fields.items():
                    setattr(request, name, value)
                send(request, clientMsgId)

            return command

        def sendProtoOANewOrderReq(symbolId: str, orderType: str, tradeSide: str, volume: str, price: Any = None,
                                   clientMsgId: Any = None) -> None:
            request = ProtoOANewOrderReq()
            request.ctidTraderAccountId = state["currentAccountId"]
            request.symbolId = int(symbolId)
            request.orderType = ProtoOAOrderType.Value(orderType.upper())
            request.tradeSide = ProtoOATradeSide.Value(tradeSide.upper())
            request.volume = int(volume) * 100
            if request.orderType == ProtoOAOrderType.LIMIT:
                request.limitPrice = float(price)
            elif request.orderType == ProtoOAOrderType.STOP:
                request.stopPrice = float(price)
            send(request, clientMsgId)

        def sendProtoOAClosePositionReq(positionId: str, volume: str, clientMsgId: Any = None) -> None:
            request = ProtoOAClosePositionReq()
            request.ctidTraderAccountId = state["currentAccountId"]
            request.positionId = int(positionId)
            request.volume = int(volume) * 100
            send(request, clientMsgId)

        def sendProtoOACancelOrderReq(orderId: str, clientMsgId: Any = None) -> None:
            request = ProtoOACancelOrderReq()
            request.ctidTraderAccountId = state["currentAccountId"]
            request.orderId = int(orderId)
            send(request, clientMsgId)

        def sendProtoOAOrderListByPositionIdReq(positionId: str, fromTimestamp: Any = None, toTimestamp: Any = None,
                                                clientMsgId: Any = None) -> None:
            request = ProtoOAOrderListByPositionIdReq()
            request.ctidTraderAccountId = state["currentAccountId"]
            request.positionId = int(positionId)
            # the sample passes the timestamps as keywords beside the message: ignored
            send(request, clientMsgId, fromTimestamp=fromTimestamp, toTimestamp=toTimestamp)

        def lastPositionId() -> str:
            account = self.sim.accounts[state["currentAccountId"]]
            return str(max(account.positions))

        def lastOrderId() -> str:
            account = self.sim.accounts[state["currentAccountId"]]
            return str(max(account.orders))

        accountId = str(credentials["AccountId"])
        script: list[tuple[Callable[..., None], Callable[[], list[str]]]] = [
            (setAccount, lambda: [accountId]),
            (sendProtoOAVersionReq, lambda: ["v1"]),
            (sendProtoOAGetAccountListByAccessTokenReq, lambda: []),
            (accountRequest(ProtoOAAssetListReq), lambda: []),
            (accountRequest(ProtoOASymbolsListReq, includeArchivedSymbols=False), lambda: []),
            (accountRequest(ProtoOATraderReq), lambda: []),
            (sendProtoOASubscribeSpotsReq, lambda: ["1", "60"]),
            (accountRequest(ProtoOAReconcileReq), lambda: []),
            (history(ProtoOAGetTrendbarsReq, 2, "1", period=ProtoOATrendbarPeriod.Value("M1")), lambda: []),
            (history(ProtoOAGetTickDataReq, 1, "1", type=ProtoOAQuoteType.Value("BID")), lambda: []),
            (lambda *a: sendProtoOANewOrderReq("1", "MARKET", "BUY", "1000"), lambda: []),
            (lambda *a: sendProtoOANewOrderReq("1", "LIMIT", "BUY", "1000", "0.5"), lambda: []),
            (lambda *a: sendProtoOAClosePositionReq(lastPositionId(), "1000"), lambda: []),
            (lambda *a: sendProtoOACancelOrderReq(lastOrderId()), lambda: []),
            (lambda *a: sendProtoOAOrderListByPositionIdReq(lastPositionId()), lambda: []),
            (accountRequest(ProtoOADealOffsetListReq, dealId=1), lambda: []),
            (accountRequest(ProtoOAGetPositionUnrealizedPnLReq), lambda: []),
            (accountRequest(ProtoOAOrderDetailsReq, orderId=1), lambda: []),
        ]
        position = {"next": 0}

        def executeUserCommand() -> None:
            if finished.called:
                return
            if position["next"] == len(script):
                finished.callback(None)
                return
            command, parameters = script[position["next"]]
            position["next"] += 1
            command(*parameters())

        client.setConnectedCallback(connected)
        client.setMessageReceivedCallback(onMessageReceived)
        client.startService()

        def check(_: Any) -> None:
            names = [type(m).__name__ for m in received]
            for expected in (
                "ProtoOAVersionRes",
                "ProtoOAGetAccountListByAccessTokenRes",
                "ProtoOAAssetListRes",
                "ProtoOASymbolsListRes",
                "ProtoOATraderRes",
                "ProtoOASpotEvent",
                "ProtoOAReconcileRes",
                "ProtoOAGetTrendbarsRes",
                "ProtoOAGetTickDataRes",
                "ProtoOAExecutionEvent",
                "ProtoOAOrderListByPositionIdRes",
                "ProtoOAGetPositionUnrealizedPnLRes",
            ):
                self.assertIn(expected, names)
            self.assertEqual(errors, [])

        return finished.addCallback(check)
