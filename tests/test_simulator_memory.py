"""The simulator paired in memory (iosim) with the real request core and a Clock.

Every timer (heartbeats, idle timeout, market ticks, delayed answers, rate
windows) runs on the test's ``task.Clock``; nothing here sleeps.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.task import Clock
from twisted.test.iosim import connectedServerAndClient
from twisted.trial.unittest import SynchronousTestCase

from ctrader_twisted.errors import (
    AccessTokenInvalidError,
    AccountNotAuthorizedError,
    AlreadyAuthenticatedError,
    AlreadyLoggedInError,
    BadVolumeError,
    ClientAuthenticationError,
    IncorrectBoundariesError,
    NotAuthenticatedError,
    NotEnoughMoneyError,
    NotFoundError,
    OpenApiError,
    OutcomeUnknownError,
    RateLimitError,
    UnsupportedMessageError,
)
from ctrader_twisted.factory import Factory
from ctrader_twisted.messages.OpenApiCommonMessages_pb2 import ProtoMessage
from ctrader_twisted.messages.OpenApiMessages_pb2 import (
    ProtoOAExpectedMarginReq,
    ProtoOAAccountsTokenInvalidatedEvent,
    ProtoOAClientDisconnectEvent,
)
from ctrader_twisted.protobuf import Protobuf
from ctrader_twisted.simulator import Simulator
from ctrader_twisted.tcp import TcpProtocol

START = 1_790_000_000.0  # a realistic "now" for timestamps (2026)


class Link:
    """One in-memory client connection to the simulator."""

    def __init__(self, test: SimulatorMemoryTestCase, **factoryArgs: Any) -> None:
        args: dict[str, Any] = dict(
            heartbeatInterval=None, responseTimeout=None, requestsPerSecond=None, historicalRequestsPerSecond=None,
            retryRateLimited=False,
        )
        args.update(factoryArgs)
        self.test = test
        self.factory = Factory(TcpProtocol, test.clock, **args)
        self.received: list[Any] = []
        self.factory.addMessageCallback(self.received.append)
        self.lost: list[Any] = []
        self.factory.addDisconnectionObserver(lambda proto, reason: self.lost.append(reason))
        self.client, self.server, self.pump = connectedServerAndClient(
            lambda: test.sim.buildProtocol(None), lambda: self.factory.buildProtocol(None), clock=test.clock
        )

    def request(self, message: Any, **fields: Any) -> Any:
        d = self.factory.request(message, **fields)
        self.pump.flush()
        return d

    def ok(self, message: Any, **fields: Any) -> Any:
        return self.test.successResultOf(self.request(message, **fields))

    def fails(self, errorType: type, message: Any, **fields: Any) -> Any:
        return self.test.failureResultOf(self.request(message, **fields), errorType).value

    def advance(self, seconds: float, step: float = 1.0) -> None:
        """Advance the clock in *step* increments, moving the bytes after each."""
        left = seconds
        while left > 1e-9:
            dt = min(step, left)
            self.test.clock.advance(dt)
            self.pump.flush()
            left -= dt

    def payloads(self, name: str) -> list[Any]:
        payloadType = Protobuf.get_type(name)
        return [Protobuf.extract(m) for m in self.received if m.payloadType == payloadType]

    @property
    def connected(self) -> bool:
        return self.factory.connection is not None and not self.lost

    def appAuth(self) -> None:
        sim = self.test.sim
        self.ok("ProtoOAApplicationAuthReq", clientId=sim.clientId, clientSecret=sim.clientSecret)

    def login(self, accountId: int | None = None) -> int:
        sim = self.test.sim
        self.appAuth()
        accountId = sim.accountIds[0] if accountId is None else accountId
        self.ok("ProtoOAAccountAuthReq", ctidTraderAccountId=accountId, accessToken=sim.accessToken)
        return accountId


class SimulatorMemoryTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(START)
        self.sim = Simulator(seed=7, clock=self.clock)

    def link(self, **factoryArgs: Any) -> Link:
        return Link(self, **factoryArgs)


class AuthenticationTests(SimulatorMemoryTestCase):
    def test_nothingBeforeApplicationAuth(self) -> None:
        link = self.link()
        error = link.fails(NotAuthenticatedError, "ProtoOAVersionReq")
        self.assertEqual(error.errorCode, "CH_CLIENT_NOT_AUTHENTICATED")

    def test_badCredentialsCloseTheConnection(self) -> None:
        link = self.link()
        error = link.fails(
            ClientAuthenticationError, "ProtoOAApplicationAuthReq", clientId=self.sim.clientId, clientSecret="wrong"
        )
        self.assertEqual(error.errorCode, "CH_CLIENT_AUTH_FAILURE")
        self.assertFalse(link.connected)
        self.assertEqual(self.sim.sessions, [])

    def test_alreadyAuthenticated(self) -> None:
        link = self.link()
        link.appAuth()
        link.fails(
            AlreadyAuthenticatedError,
            "ProtoOAApplicationAuthReq",
            clientId=self.sim.clientId,
            clientSecret=self.sim.clientSecret,
        )
        self.assertTrue(link.connected)

    def test_version(self) -> None:
        link = self.link()
        link.appAuth()
        self.assertTrue(link.ok("ProtoOAVersionReq").version)

    def test_accountAuthErrors(self) -> None:
        link = self.link()
        link.appAuth()
        demo, live = self.sim.accountIds[:2]
        error = link.fails(AccessTokenInvalidError, "ProtoOAAccountAuthReq", ctidTraderAccountId=demo, accessToken="nope")
        self.assertEqual(error.errorCode, "CH_ACCESS_TOKEN_INVALID")
        other = self.sim.addAccount(grantDefaultToken=False)
        error = link.fails(
            AccountNotAuthorizedError, "ProtoOAAccountAuthReq", ctidTraderAccountId=other, accessToken=self.sim.accessToken
        )
        self.assertEqual(error.errorCode, "ACCOUNT_NOT_AUTHORIZED")
        res = link.ok("ProtoOAAccountAuthReq", ctidTraderAccountId=live, accessToken=self.sim.accessToken)
        self.assertEqual(res.ctidTraderAccountId, live)
        error = link.fails(
            AlreadyLoggedInError, "ProtoOAAccountAuthReq", ctidTraderAccountId=live, accessToken=self.sim.accessToken
        )
        self.assertEqual(error.errorCode, "ALREADY_LOGGED_IN")
        # An account request for an account not authorized on this connection.
        link.fails(AccountNotAuthorizedError, "ProtoOATraderReq", ctidTraderAccountId=demo)

    def test_accountList(self) -> None:
        link = self.link()
        link.appAuth()
        res = link.ok("ProtoOAGetAccountListByAccessTokenReq", accessToken=self.sim.accessToken)
        accounts = {a.ctidTraderAccountId: a.isLive for a in res.ctidTraderAccount}
        self.assertEqual(accounts, {self.sim.accountIds[0]: False, self.sim.accountIds[1]: True})

    def test_refreshToken(self) -> None:
        """A refresh gives new tokens, kills the old ones and ends the sessions
        that used the old access token."""
        link = self.link()
        accountId = link.login()
        res = link.ok("ProtoOARefreshTokenReq", refreshToken=self.sim.refreshToken)
        self.assertNotEqual(res.accessToken, self.sim.accessToken)
        self.assertNotEqual(res.refreshToken, self.sim.refreshToken)
        [event] = link.payloads("ProtoOAAccountsTokenInvalidatedEvent")
        self.assertEqual(list(event.ctidTraderAccountIds), [accountId])
        link.fails(AccountNotAuthorizedError, "ProtoOATraderReq", ctidTraderAccountId=accountId)
        link.fails(AccessTokenInvalidError, "ProtoOARefreshTokenReq", refreshToken=self.sim.refreshToken)
        link.fails(
            AccessTokenInvalidError, "ProtoOAAccountAuthReq", ctidTraderAccountId=accountId, accessToken=self.sim.accessToken
        )
        link.ok("ProtoOAAccountAuthReq", ctidTraderAccountId=accountId, accessToken=res.accessToken)
        self.assertEqual(link.ok("ProtoOATraderReq", ctidTraderAccountId=accountId).trader.ctidTraderAccountId, accountId)

    def test_logout(self) -> None:
        link = self.link()
        accountId = link.login()
        link.ok("ProtoOAAccountLogoutReq", ctidTraderAccountId=accountId)
        [event] = link.payloads("ProtoOAAccountDisconnectEvent")
        self.assertEqual(event.ctidTraderAccountId, accountId)
        link.fails(AccountNotAuthorizedError, "ProtoOATraderReq", ctidTraderAccountId=accountId)

    def test_tokenInvalidatedEvent(self) -> None:
        link = self.link()
        accountId = link.login()
        self.sim.sendEvent(ProtoOAAccountsTokenInvalidatedEvent(ctidTraderAccountIds=[accountId], reason="revoked"))
        link.pump.flush()
        [event] = link.payloads("ProtoOAAccountsTokenInvalidatedEvent")
        self.assertEqual(event.reason, "revoked")
        link.fails(AccountNotAuthorizedError, "ProtoOATraderReq", ctidTraderAccountId=accountId)

    def test_clientDisconnectEvent(self) -> None:
        link = self.link()
        link.login()
        self.sim.sendEvent(ProtoOAClientDisconnectEvent(reason="blocked by the administrator"))
        link.pump.flush()
        [event] = link.payloads("ProtoOAClientDisconnectEvent")
        self.assertEqual(event.reason, "blocked by the administrator")
        self.assertFalse(link.connected)


class ProtocolBehaviourTests(SimulatorMemoryTestCase):
    def test_clientMsgIdEchoed(self) -> None:
        link = self.link()
        link.appAuth()
        d = link.factory.send("ProtoOAVersionReq", clientMsgId="my-id-42")
        link.pump.flush()
        self.assertEqual(self.successResultOf(d).clientMsgId, "my-id-42")

    def test_unsupportedMessage(self) -> None:
        link = self.link()
        accountId = link.login()
        error = link.fails(UnsupportedMessageError, "ProtoOAGetDynamicLeverageByIDReq", ctidTraderAccountId=accountId, leverageId=1)
        self.assertEqual(error.errorCode, "UNSUPPORTED_MESSAGE")
        self.assertEqual(error.payload.DESCRIPTOR.name, "ProtoErrorRes")

    def test_heartbeats(self) -> None:
        link = self.link()
        link.advance(25, step=5)
        self.assertEqual(sum(1 for m in link.received if m.payloadType == 51), 2)

    def test_idleTimeout(self) -> None:
        """Idle connections close after idleTimeout; client heartbeats keep one open."""
        quiet = self.link()
        chatty = self.link(heartbeatInterval=10.0)

        def advance(seconds: int) -> None:
            for _ in range(seconds):
                self.clock.advance(1)
                quiet.pump.flush()
                chatty.pump.flush()

        advance(29)
        self.assertTrue(quiet.connected)
        advance(2)
        self.assertFalse(quiet.connected)
        advance(120)
        self.assertTrue(chatty.connected)
        self.assertEqual(len(self.sim.sessions), 1)

    def test_rateLimit(self) -> None:
        link = self.link()
        link.appAuth()  # one request in this second already
        ds = [link.factory.request("ProtoOAVersionReq") for _ in range(50)]
        link.pump.flush()
        for d in ds[:49]:
            self.successResultOf(d)
        error = self.failureResultOf(ds[49], RateLimitError).value
        self.assertEqual(error.errorCode, "REQUEST_FREQUENCY_EXCEEDED")
        link.advance(1.0)
        link.ok("ProtoOAVersionReq")

    def test_historicalRateLimit(self) -> None:
        link = self.link()
        accountId = link.login()
        link.advance(1.0)
        now = int(self.clock.seconds() * 1000)
        args = dict(ctidTraderAccountId=accountId, symbolId=1, period=9, fromTimestamp=now - 3600_000 * 3, toTimestamp=now)
        ds = [link.factory.request("ProtoOAGetTrendbarsReq", **args) for _ in range(6)]
        link.pump.flush()
        for d in ds[:5]:
            self.successResultOf(d)
        self.failureResultOf(ds[5], RateLimitError)

    def test_serverMaximumFrameSize(self) -> None:
        self.sim = Simulator(seed=1, clock=self.clock, maxMessageSize=1000)
        link = self.link()
        link.appAuth()
        d = link.request("ProtoOAGetAccountListByAccessTokenReq", accessToken="x" * 2000)
        self.failureResultOf(d, OutcomeUnknownError)
        self.assertFalse(link.connected)


class FaultTests(SimulatorMemoryTestCase):
    def test_dropNow(self) -> None:
        link = self.link()
        link.appAuth()
        self.sim.faults.dropNow()
        link.pump.flush()
        self.assertFalse(link.connected)

    def test_dropAfter(self) -> None:
        link = self.link()
        link.appAuth()
        self.sim.faults.dropAfter(2)
        link.ok("ProtoOAVersionReq")
        self.failureResultOf(link.request("ProtoOAVersionReq"), OutcomeUnknownError)
        self.assertFalse(link.connected)

    def test_delayResponses(self) -> None:
        link = self.link()
        link.appAuth()
        self.sim.faults.delayResponses(3)
        d = link.request("ProtoOAVersionReq")
        link.advance(2.5, step=0.5)
        self.assertNoResult(d)
        link.advance(0.5, step=0.5)
        self.successResultOf(d)

    def test_swallowResponses(self) -> None:
        link = self.link()
        link.appAuth()
        self.sim.faults.swallowResponses(count=1, payloadType=Protobuf.get_type("ProtoOAVersionReq"))
        first = link.request("ProtoOAVersionReq")
        self.assertNoResult(first)
        link.ok("ProtoOAVersionReq")
        first.cancel()
        self.failureResultOf(first)

    def test_malformedFrame(self) -> None:
        """The client skips a frame that is not a ProtoMessage and carries on."""
        link = self.link()
        link.appAuth()
        self.sim.faults.sendMalformedFrame()
        link.pump.flush()
        self.assertTrue(link.connected)
        link.ok("ProtoOAVersionReq")

    def test_oversizedFrame(self) -> None:
        link = self.link()
        link.appAuth()
        d = link.factory.request("ProtoOAVersionReq")
        self.sim.faults.delayResponses(1)
        self.sim.faults.sendOversizedFrame()
        link.pump.flush()
        self.assertFalse(link.connected)
        self.failureResultOf(d, OutcomeUnknownError)

    def test_refuseConnections(self) -> None:
        self.sim.faults.refuseConnections(5)
        refused = self.link()
        refused.pump.flush()
        self.assertEqual(self.sim.sessions, [])
        self.assertTrue(refused.server.transport.disconnecting)
        self.clock.advance(5)
        accepted = self.link()
        accepted.appAuth()
        self.assertEqual(len(self.sim.sessions), 1)

    def test_clear(self) -> None:
        link = self.link()
        link.appAuth()
        self.sim.faults.swallowResponses()
        self.sim.faults.clear()
        link.ok("ProtoOAVersionReq")


class ReferenceDataTests(SimulatorMemoryTestCase):
    def test_assetsClassesCategories(self) -> None:
        link = self.link()
        accountId = link.login()
        assets = {a.assetId: a.name for a in link.ok("ProtoOAAssetListReq", ctidTraderAccountId=accountId).asset}
        self.assertEqual((assets[5], assets[15], assets[17]), ("EUR", "USD", "XAU"))
        classes = link.ok("ProtoOAAssetClassListReq", ctidTraderAccountId=accountId).assetClass
        categories = link.ok("ProtoOASymbolCategoryListReq", ctidTraderAccountId=accountId).symbolCategory
        self.assertEqual({c.assetClassId for c in categories}, {c.id for c in classes})

    def test_symbols(self) -> None:
        """Light and full symbols carry the recorded EURUSD/XAUUSD/index specs."""
        link = self.link()
        accountId = link.login()
        light = {s.symbolId: s.symbolName for s in link.ok("ProtoOASymbolsListReq", ctidTraderAccountId=accountId).symbol}
        self.assertEqual(light, {1: "EURUSD", 2: "GBPUSD", 41: "XAUUSD", 275: "US100.cash", 279: "GER40.cash"})
        full = link.ok("ProtoOASymbolByIdReq", ctidTraderAccountId=accountId, symbolId=[1, 41]).symbol
        eurusd, gold = full
        self.assertEqual((eurusd.digits, eurusd.pipPosition, eurusd.lotSize), (5, 4, 10000000))
        self.assertEqual((eurusd.minVolume, eurusd.stepVolume, eurusd.maxVolume), (100000, 100000, 10000000000))
        self.assertEqual((gold.digits, gold.pipPosition, gold.lotSize, gold.minVolume), (2, 0, 10000, 100))
        self.assertEqual(len(eurusd.schedule), 5)
        error = link.fails(OpenApiError, "ProtoOASymbolByIdReq", ctidTraderAccountId=accountId, symbolId=[999])
        self.assertEqual(error.errorCode, "SYMBOL_NOT_FOUND")

    def test_conversionChain(self) -> None:
        link = self.link()
        accountId = link.login()
        res = link.ok("ProtoOASymbolsForConversionReq", ctidTraderAccountId=accountId, firstAssetId=5, lastAssetId=15)
        self.assertEqual([s.symbolName for s in res.symbol], ["EURUSD"])

    def test_trader(self) -> None:
        link = self.link()
        accountId = link.login()
        trader = link.ok("ProtoOATraderReq", ctidTraderAccountId=accountId).trader
        self.assertEqual((trader.balance, trader.moneyDigits, trader.depositAssetId), (1_000_000, 2, 15))

    def test_addSymbol(self) -> None:
        self.sim.addSymbol(2, "GBPUSD", price=127000, spread=3, baseAssetId=6)
        link = self.link()
        accountId = link.login()
        [spec] = link.ok("ProtoOASymbolByIdReq", ctidTraderAccountId=accountId, symbolId=[2]).symbol
        self.assertEqual(spec.digits, 5)


class MarketDataTests(SimulatorMemoryTestCase):
    def spots(self, seed: int, ticks: int) -> list[tuple[int, int, int]]:
        self.sim = Simulator(seed=seed, clock=self.clock)
        link = self.link(heartbeatInterval=10.0)
        accountId = link.login()
        link.ok("ProtoOASubscribeSpotsReq", ctidTraderAccountId=accountId, symbolId=[1])
        link.advance(ticks)
        events = link.payloads("ProtoOASpotEvent")
        self.sim.faults.dropNow()
        link.pump.flush()
        return [(e.bid, e.ask, e.timestamp) for e in events]

    def test_spotCadenceAndDeterminism(self) -> None:
        start = int(self.clock.seconds() * 1000)
        first = self.spots(seed=11, ticks=20)
        # The technical first event carries both sides; later ones only what changed.
        self.assertTrue(first[0][0] and first[0][1])
        self.assertEqual(first[0][2], start)
        stamps = [t for _, _, t in first[1:]]
        self.assertGreater(len(stamps), 10)
        self.assertTrue(all((t - start) % 1000 == 0 and t > start for t in stamps))
        self.assertEqual(stamps, sorted(set(stamps)))
        self.clock = Clock()
        self.clock.advance(START)
        self.assertEqual(self.spots(seed=11, ticks=20), first)

    def test_subscriptionErrors(self) -> None:
        link = self.link()
        accountId = link.login()
        link.ok("ProtoOASubscribeSpotsReq", ctidTraderAccountId=accountId, symbolId=[1])
        error = link.fails(OpenApiError, "ProtoOASubscribeSpotsReq", ctidTraderAccountId=accountId, symbolId=[1])
        self.assertEqual(error.errorCode, "ALREADY_SUBSCRIBED")
        link.ok("ProtoOAUnsubscribeSpotsReq", ctidTraderAccountId=accountId, symbolId=[1])
        error = link.fails(OpenApiError, "ProtoOAUnsubscribeSpotsReq", ctidTraderAccountId=accountId, symbolId=[1])
        self.assertEqual(error.errorCode, "NOT_SUBSCRIBED_TO_SPOTS")
        count = len(link.payloads("ProtoOASpotEvent"))
        link.advance(5)
        self.assertEqual(len(link.payloads("ProtoOASpotEvent")), count)

    def test_liveTrendbars(self) -> None:
        link = self.link(heartbeatInterval=10.0)
        accountId = link.login()
        error = link.fails(OpenApiError, "ProtoOASubscribeLiveTrendbarReq", ctidTraderAccountId=accountId, symbolId=1, period=1)
        self.assertEqual(error.errorCode, "NOT_SUBSCRIBED_TO_SPOTS")
        link.ok("ProtoOASubscribeSpotsReq", ctidTraderAccountId=accountId, symbolId=[1])
        link.ok("ProtoOASubscribeLiveTrendbarReq", ctidTraderAccountId=accountId, symbolId=1, period=1)
        link.advance(90)
        bars = [e.trendbar[0] for e in link.payloads("ProtoOASpotEvent") if e.trendbar]
        self.assertGreater(len(bars), 60)
        minutes = sorted({b.utcTimestampInMinutes for b in bars})
        self.assertEqual(len(minutes), 2)
        self.assertEqual(minutes[1] - minutes[0], 1)
        for bar in bars:
            self.assertEqual(bar.period, 1)
            self.assertGreaterEqual(bar.deltaHigh, bar.deltaOpen)
        link.ok("ProtoOAUnsubscribeLiveTrendbarReq", ctidTraderAccountId=accountId, symbolId=1, period=1)

    def test_depth(self) -> None:
        link = self.link()
        accountId = link.login()
        link.ok("ProtoOASubscribeDepthQuotesReq", ctidTraderAccountId=accountId, symbolId=[1])
        link.advance(3)
        events = link.payloads("ProtoOADepthEvent")
        self.assertGreaterEqual(len(events), 3)
        first, second = events[0], events[1]
        self.assertEqual(len(first.newQuotes), 10)
        self.assertEqual(sorted(second.deletedQuotes), sorted(q.id for q in first.newQuotes))
        bids = [q.bid for q in second.newQuotes if q.HasField("bid")]
        asks = [q.ask for q in second.newQuotes if q.HasField("ask")]
        self.assertLess(max(bids), min(asks))
        link.ok("ProtoOAUnsubscribeDepthQuotesReq", ctidTraderAccountId=accountId, symbolId=[1])

    def test_historicalTrendbars(self) -> None:
        link = self.link()
        accountId = link.login()
        now = int(self.clock.seconds() * 1000)
        args = dict(ctidTraderAccountId=accountId, symbolId=1, period=7, fromTimestamp=now - 12 * 3600_000, toTimestamp=now)
        res = link.ok("ProtoOAGetTrendbarsReq", **args)
        self.assertIn(len(res.trendbar), (48, 49))
        steps = {b.utcTimestampInMinutes - a.utcTimestampInMinutes for a, b in zip(res.trendbar, res.trendbar[1:])}
        self.assertEqual(steps, {15})
        for bar in res.trendbar:
            self.assertLessEqual(max(bar.deltaOpen, bar.deltaClose), bar.deltaHigh)
        link.advance(1)
        self.assertEqual(link.ok("ProtoOAGetTrendbarsReq", **args).trendbar, res.trendbar)
        counted = link.ok("ProtoOAGetTrendbarsReq", count=10, **args)
        self.assertEqual(list(counted.trendbar), list(res.trendbar[-10:]))
        self.assertTrue(counted.hasMore)
        args["fromTimestamp"] = now - 400 * 86400_000
        link.advance(1)
        error = link.fails(IncorrectBoundariesError, "ProtoOAGetTrendbarsReq", **args)
        self.assertEqual(error.errorCode, "INCORRECT_BOUNDARIES")

    def test_tickData(self) -> None:
        link = self.link()
        accountId = link.login()
        now = int(self.clock.seconds() * 1000)
        res = link.ok(
            "ProtoOAGetTickDataReq", ctidTraderAccountId=accountId, symbolId=1, type=1,
            fromTimestamp=now - 600_000, toTimestamp=now,
        )
        ticks = list(res.tickData)
        self.assertGreater(len(ticks), 100)
        self.assertLessEqual(ticks[0].timestamp, now)
        self.assertTrue(all(t.timestamp < 0 for t in ticks[1:]), "newest first, as deltas")
        absolute = ticks[0].timestamp + sum(t.timestamp for t in ticks[1:])
        self.assertGreaterEqual(absolute, now - 600_000)
        error = link.fails(
            IncorrectBoundariesError, "ProtoOAGetTickDataReq", ctidTraderAccountId=accountId, symbolId=1, type=1,
            fromTimestamp=now - 8 * 86400_000, toTimestamp=now,
        )
        self.assertEqual(error.errorCode, "INCORRECT_BOUNDARIES")


class TradingTests(SimulatorMemoryTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.link_ = self.link(heartbeatInterval=10.0)
        self.accountId = self.link_.login()

    def order(self, **fields: Any) -> Any:
        args = dict(ctidTraderAccountId=self.accountId, symbolId=1, orderType=1, tradeSide=1, volume=100000)
        args.update(fields)
        return self.link_.request("ProtoOANewOrderReq", **args)

    def executions(self) -> list[Any]:
        return self.link_.payloads("ProtoOAExecutionEvent")

    def test_marketOrderAcceptedThenFilled(self) -> None:
        d = self.link_.factory.send(
            "ProtoOANewOrderReq", clientMsgId="buy-1", ctidTraderAccountId=self.accountId, symbolId=1,
            orderType=1, tradeSide=1, volume=100000,
        )
        self.link_.pump.flush()
        self.assertEqual(self.successResultOf(d).clientMsgId, "buy-1")
        answers = [m for m in self.link_.received if m.payloadType == 2126]
        self.assertEqual([m.clientMsgId for m in answers], ["buy-1", "buy-1"])
        accepted, filled = (Protobuf.extract(m) for m in answers)
        self.assertEqual((accepted.executionType, filled.executionType), (2, 3))  # ACCEPTED, FILLED
        self.assertEqual(filled.position.positionStatus, 1)
        self.assertEqual(filled.deal.volume, 100000)
        self.assertEqual(filled.position.commission, -3)  # 2.50 USD per lot, 1,000 units
        price = filled.deal.executionPrice
        self.assertAlmostEqual(filled.position.usedMargin, round(1000 * price), delta=1)

    def test_badVolume(self) -> None:
        error = self.failureResultOf(self.order(volume=150000), BadVolumeError).value
        self.assertEqual(error.payload.DESCRIPTOR.name, "ProtoOAOrderErrorEvent")
        self.failureResultOf(self.order(volume=100), BadVolumeError)

    def test_notEnoughMoney(self) -> None:
        error = self.failureResultOf(self.order(volume=10_000_000_000), NotEnoughMoneyError).value
        self.assertEqual(error.errorCode, "NOT_ENOUGH_MONEY")
        self.assertEqual(self.executions(), [])

    def test_closePositionPartlyThenFully(self) -> None:
        self.successResultOf(self.order(volume=300000))
        positionId = self.executions()[-1].position.positionId
        balance = self.sim.accounts[self.accountId].balance
        self.link_.advance(3)
        self.successResultOf(
            self.link_.request("ProtoOAClosePositionReq", ctidTraderAccountId=self.accountId, positionId=positionId, volume=100000)
        )
        filled = self.executions()[-1]
        self.assertEqual(filled.executionType, 3)
        self.assertEqual(filled.position.tradeData.volume, 200000)
        detail = filled.deal.closePositionDetail
        self.assertEqual(detail.closedVolume, 100000)
        self.assertEqual(detail.balance, balance + detail.grossProfit + detail.swap + detail.commission)
        self.successResultOf(
            self.link_.request("ProtoOAClosePositionReq", ctidTraderAccountId=self.accountId, positionId=positionId, volume=200000)
        )
        self.assertEqual(self.executions()[-1].position.positionStatus, 2)  # CLOSED
        reconcile = self.link_.ok("ProtoOAReconcileReq", ctidTraderAccountId=self.accountId)
        self.assertEqual(list(reconcile.position), [])
        since = int(START * 1000)  # the account's own deals (its past, before START, is history's)
        deals = self.link_.ok("ProtoOADealListReq", ctidTraderAccountId=self.accountId, fromTimestamp=since, toTimestamp=2**50)
        self.assertEqual(len(deals.deal), 3)
        byPosition = self.link_.ok("ProtoOADealListByPositionIdReq", ctidTraderAccountId=self.accountId, positionId=positionId)
        self.assertEqual(len(byPosition.deal), 3)
        error = self.failureResultOf(
            self.link_.request("ProtoOAClosePositionReq", ctidTraderAccountId=self.accountId, positionId=positionId, volume=100000),
            NotFoundError,
        ).value
        self.assertEqual(error.errorCode, "POSITION_NOT_FOUND")

    def test_amendPositionStopLossTakeProfit(self) -> None:
        self.successResultOf(self.order())
        position = self.executions()[-1].position
        price = position.price
        self.successResultOf(
            self.link_.request(
                "ProtoOAAmendPositionSLTPReq", ctidTraderAccountId=self.accountId, positionId=position.positionId,
                stopLoss=round(price - 0.0100, 5), takeProfit=round(price + 0.0100, 5),
            )
        )
        replaced = self.executions()[-1]
        self.assertEqual(replaced.executionType, 4)  # ORDER_REPLACED
        self.assertAlmostEqual(replaced.position.stopLoss, price - 0.01, places=5)
        error = self.failureResultOf(
            self.link_.request(
                "ProtoOAAmendPositionSLTPReq", ctidTraderAccountId=self.accountId, positionId=position.positionId,
                stopLoss=round(price + 0.0100, 5),
            ),
            OpenApiError,
        ).value
        self.assertEqual(error.errorCode, "TRADING_BAD_STOPS")

    def test_takeProfitCloses(self) -> None:
        self.successResultOf(self.order(relativeTakeProfit=3))
        position = self.executions()[-1].position
        self.assertTrue(position.HasField("takeProfit"))
        for _ in range(300):
            self.link_.advance(1)
            if self.executions()[-1].position.positionStatus == 2:
                break
        closing = self.executions()[-1]
        self.assertEqual(closing.position.positionStatus, 2)
        self.assertEqual(closing.order.orderType, 4)  # STOP_LOSS_TAKE_PROFIT
        self.assertEqual(self.link_.received[-1].clientMsgId, "")

    def test_pendingOrders(self) -> None:
        """Limit orders are accepted, amended, cancelled; unknown ones are refused."""
        ask = self.sim.market.symbols[1].ask / 100000
        limit = round(ask - 0.05, 5)
        self.successResultOf(self.order(orderType=2, limitPrice=limit))
        accepted = self.executions()[-1]
        self.assertEqual((accepted.executionType, accepted.order.orderStatus), (2, 1))
        orderId = accepted.order.orderId
        self.successResultOf(
            self.link_.request("ProtoOAAmendOrderReq", ctidTraderAccountId=self.accountId, orderId=orderId, volume=200000)
        )
        self.assertEqual(self.executions()[-1].order.tradeData.volume, 200000)
        reconcile = self.link_.ok("ProtoOAReconcileReq", ctidTraderAccountId=self.accountId)
        self.assertEqual([o.orderId for o in reconcile.order], [orderId])
        self.successResultOf(self.link_.request("ProtoOACancelOrderReq", ctidTraderAccountId=self.accountId, orderId=orderId))
        cancelled = self.executions()[-1]
        self.assertEqual((cancelled.executionType, cancelled.order.orderStatus), (5, 5))
        error = self.failureResultOf(
            self.link_.request("ProtoOACancelOrderReq", ctidTraderAccountId=self.accountId, orderId=orderId), NotFoundError
        ).value
        self.assertEqual(error.payload.DESCRIPTOR.name, "ProtoOAOrderErrorEvent")
        self.assertEqual(error.orderId, orderId)
        details = self.link_.ok("ProtoOAOrderDetailsReq", ctidTraderAccountId=self.accountId, orderId=orderId)
        self.assertEqual(details.order.orderStatus, 5)
        error = self.failureResultOf(
            self.link_.request("ProtoOAOrderDetailsReq", ctidTraderAccountId=self.accountId, orderId=999), NotFoundError
        ).value
        self.assertEqual(error.payload.DESCRIPTOR.name, "ProtoOAErrorRes")
        orders = self.link_.ok(
            "ProtoOAOrderListReq", ctidTraderAccountId=self.accountId, fromTimestamp=int(START * 1000), toTimestamp=2**50
        )
        self.assertEqual([o.orderId for o in orders.order], [orderId])

    def test_limitOrderFillsWhenTouched(self) -> None:
        ask = self.sim.market.symbols[1].ask / 100000
        self.successResultOf(self.order(orderType=2, limitPrice=round(ask + 0.01, 5)))
        self.link_.advance(1)
        filled = self.executions()[-1]
        self.assertEqual(filled.executionType, 3)
        self.assertTrue(filled.isServerEvent)
        self.assertEqual(self.link_.received[-1].clientMsgId, "")

    def test_pendingOrderRejectedForMargin(self) -> None:
        poor = self.sim.addAccount(balance=100)
        self.link_.ok("ProtoOAAccountAuthReq", ctidTraderAccountId=poor, accessToken=self.sim.accessToken)
        ask = self.sim.market.symbols[1].ask / 100000
        self.successResultOf(
            self.link_.request(
                "ProtoOANewOrderReq", ctidTraderAccountId=poor, symbolId=1, orderType=3, tradeSide=1, volume=100000,
                stopPrice=round(ask - 0.01, 5),
            )
        )
        self.link_.advance(1)
        rejected = self.executions()[-1]
        self.assertEqual((rejected.executionType, rejected.errorCode), (7, "NOT_ENOUGH_MONEY"))
        self.assertEqual(rejected.order.orderStatus, 3)

    def test_unrealizedPnLAndExpectedMargin(self) -> None:
        self.successResultOf(self.order(tradeSide=2, volume=1_000_000))
        self.link_.advance(5)
        [pnl] = self.link_.ok("ProtoOAGetPositionUnrealizedPnLReq", ctidTraderAccountId=self.accountId).positionUnrealizedPnL
        position = self.sim.accounts[self.accountId].openPositions()[0]
        ask = self.sim.market.symbols[1].ask / 100000
        self.assertEqual(pnl.grossUnrealizedPnL, round((position.price - ask) * 10000 * 100))
        self.assertLess(pnl.netUnrealizedPnL, pnl.grossUnrealizedPnL)
        # A ready ProtoMessage: Protobuf.build() rejects repeated "volume" fields
        # (a bug in protobuf.validate, reported).
        request = ProtoOAExpectedMarginReq(ctidTraderAccountId=self.accountId, symbolId=1, volume=[100000])
        margins = self.link_.ok(ProtoMessage(payloadType=request.payloadType, payload=request.SerializeToString()))
        self.assertAlmostEqual(margins.margin[0].buyMargin, round(ask * 1000), delta=1)

    def test_executionEventsReachOtherConnections(self) -> None:
        other = self.link()
        other.login(self.accountId)
        self.successResultOf(self.order())
        other.pump.flush()
        events = [m for m in other.received if m.payloadType == 2126]
        self.assertEqual(len(events), 2)
        self.assertEqual({m.clientMsgId for m in events}, {""})

    def test_stopLimitNeedsStopPrice(self) -> None:
        """Stop-limit orders are simulated (tests/test_simulator_trading.py); one without a stop price is refused."""
        error = self.failureResultOf(self.order(orderType=6, slippageInPoints=5), OpenApiError).value
        self.assertEqual(error.errorCode, "TRADING_BAD_PRICES")
