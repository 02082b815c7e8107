"""Reconnect and restore: the managed session, in memory with a Clock."""

from __future__ import annotations

from typing import Any

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from ctrader_twisted import Client
from ctrader_twisted.errors import (
    AccessTokenInvalidError,
    ClientAuthenticationError,
    NotConnectedError,
    NotSentError,
    OutcomeUnknownError,
)
from ctrader_twisted.messages.OpenApiCommonMessages_pb2 import ProtoErrorRes
from ctrader_twisted.messages.OpenApiMessages_pb2 import (
    ProtoOAAccountAuthRes,
    ProtoOAAccountsTokenInvalidatedEvent,
    ProtoOAApplicationAuthRes,
    ProtoOAClientDisconnectEvent,
    ProtoOAErrorRes,
    ProtoOARefreshTokenRes,
    ProtoOASubscribeDepthQuotesRes,
    ProtoOASubscribeLiveTrendbarRes,
    ProtoOASubscribeSpotsRes,
    ProtoOAUnsubscribeSpotsRes,
    ProtoOAv1PnLChangeSubscribeRes,
    ProtoOAVersionRes,
)
from ctrader_twisted.session import SessionState

from ctrader_twisted.testing import MemoryEndpoint, ScriptedServer

NAMES = {
    2100: "app",
    2102: "account",
    2127: "spots",
    2129: "unspots",
    2135: "trendbar",
    2156: "depth",
    2104: "version",
    2173: "refresh",
    2190: "pnl",
}


def fixed(attempt: int) -> float:
    """Retry policy for tests: 2 s times the attempt number, no jitter."""
    return 2.0 * attempt


class FakeProxy:
    """Auto-answers for each new in-memory server: a tiny stateful proxy."""

    def __init__(self) -> None:
        self.appError: str | None = None
        self.tokenValid = {"token-1": True, "token-2": True, "new-token": True}
        self.silent = False
        self.maintenanceEnd: int | None = None

    def setUp(self, server: ScriptedServer) -> None:
        if self.silent:
            return
        server.auto[2100] = self.app
        server.auto[2102] = self.account
        server.auto[2127] = lambda r: ProtoOASubscribeSpotsRes(ctidTraderAccountId=r.ctidTraderAccountId)
        server.auto[2129] = lambda r: ProtoOAUnsubscribeSpotsRes(ctidTraderAccountId=r.ctidTraderAccountId)
        server.auto[2135] = lambda r: ProtoOASubscribeLiveTrendbarRes(ctidTraderAccountId=r.ctidTraderAccountId)
        server.auto[2156] = lambda r: ProtoOASubscribeDepthQuotesRes(ctidTraderAccountId=r.ctidTraderAccountId)
        server.auto[2190] = lambda r: ProtoOAv1PnLChangeSubscribeRes(ctidTraderAccountId=r.ctidTraderAccountId)
        server.auto[2104] = lambda r: ProtoOAVersionRes(version="91")
        server.auto[2173] = lambda r: ProtoOARefreshTokenRes(
            accessToken="new-token", tokenType="bearer", expiresIn=2628000, refreshToken="refresh-2"
        )

    def app(self, request: Any) -> Any:
        if self.maintenanceEnd is not None:
            return ProtoErrorRes(errorCode="SERVER_IS_UNDER_MAINTENANCE", maintenanceEndTimestamp=self.maintenanceEnd)
        if self.appError:
            return ProtoOAErrorRes(errorCode=self.appError, description="clientId or clientSecret is incorrect")
        return ProtoOAApplicationAuthRes()

    def account(self, request: Any) -> Any:
        if not self.tokenValid.get(request.accessToken):
            return ProtoOAErrorRes(errorCode="CH_ACCESS_TOKEN_INVALID", description="Access token expired")
        return ProtoOAAccountAuthRes(ctidTraderAccountId=request.ctidTraderAccountId)


class ManagedSessionTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_700_000_000)  # a realistic epoch for maintenance times
        self.proxy = FakeProxy()
        self.endpoint = MemoryEndpoint(self.clock)
        self.endpoint.onServer = self.proxy.setUp
        self.client = Client(
            "localhost", 5035, clock=self.clock, endpoint=self.endpoint, retryPolicy=fixed,
            clientId="cid", clientSecret="app-secret", silenceTimeout=None,
        )
        self.ready: list[Any] = []
        self.client.setReadyCallback(self.ready.append)
        self.addCleanup(self.stop)

    def stop(self) -> None:
        self.client.stopService()
        self.endpoint.flush()

    def flush(self) -> None:
        for _ in range(5):
            self.endpoint.flush()

    @property
    def server(self) -> ScriptedServer:
        return self.endpoint.servers[-1]

    def sequence(self, server: ScriptedServer | None = None) -> list[str]:
        server = server or self.server
        return [NAMES.get(m.payloadType, str(m.payloadType)) for m in server.requests()]

    def drop(self) -> None:
        self.endpoint.pumps[-1].clientIO.loseConnection()  # type: ignore[attr-defined]
        self.flush()

    def start(self) -> None:
        self.client.startService()
        self.flush()

    def subscribeEverything(self) -> None:
        c = self.client
        ds = [
            c.authorizeAccount(11, "token-1"),
            c.authorizeAccount(22, "token-2"),
        ]
        self.flush()
        for d in ds:
            self.successResultOf(d)
        ds = [
            c.request("SubscribeSpotsReq", ctidTraderAccountId=11, symbolId=[1, 2]),
            c.request("SubscribeSpotsReq", ctidTraderAccountId=11, symbolId=[3], subscribeToSpotTimestamp=True),
            c.request("UnsubscribeSpotsReq", ctidTraderAccountId=11, symbolId=[2]),
            c.request("SubscribeLiveTrendbarReq", ctidTraderAccountId=22, symbolId=1, period=1),
            c.request("SubscribeDepthQuotesReq", ctidTraderAccountId=22, symbolId=[5]),
            c.request("ProtoOAv1PnLChangeSubscribeReq", ctidTraderAccountId=11),
        ]
        self.flush()
        for d in ds:
            self.successResultOf(d)

    def test_readyAfterApplicationAuth(self) -> None:
        self.client.startService()
        d = self.client.whenReady()
        self.assertNoResult(d)
        self.flush()
        self.assertIs(self.successResultOf(d), self.client)
        self.assertEqual(self.sequence(), ["app"])
        self.assertEqual(self.ready, [self.client])
        self.assertTrue(self.client.isReady)

    def test_restoreOrderAfterReconnect(self) -> None:
        self.start()
        self.subscribeEverything()
        self.drop()
        self.assertFalse(self.client.isReady)
        self.clock.advance(2)
        self.flush()
        self.assertEqual(len(self.endpoint.servers), 2)
        self.assertEqual(
            self.sequence(),
            ["app", "account", "account", "spots", "spots", "pnl", "trendbar", "depth"],
        )
        restored = self.server.requests()
        spots = [m for m in restored if m.payloadType == 2127]
        from ctrader_twisted.protobuf import Protobuf

        decoded = [Protobuf.extract(m) for m in spots]
        self.assertEqual([list(d.symbolId) for d in decoded], [[1], [3]])
        self.assertEqual([d.subscribeToSpotTimestamp for d in decoded], [False, True])
        self.assertEqual(len(self.ready), 2)

    def test_userTrafficWaitsForTheRestore(self) -> None:
        self.start()
        self.subscribeEverything()
        self.drop()
        d = self.client.request("VersionReq")
        self.clock.advance(2)
        self.flush()
        self.assertEqual(self.sequence()[-1], "version")
        self.assertEqual(self.successResultOf(d).version, "91")

    def test_sentRequestsAreNeverResent(self) -> None:
        self.start()
        self.server.auto.pop(2104)  # the server will not answer
        d = self.client.send("NewOrderReq", ctidTraderAccountId=11, symbolId=1, orderType=1, tradeSide=1, volume=1000)
        self.flush()
        self.drop()
        self.failureResultOf(d, OutcomeUnknownError)
        self.clock.advance(2)
        self.flush()
        self.assertNotIn("2106", self.sequence())

    def test_badApplicationCredentialsStopForGood(self) -> None:
        self.proxy.appError = "CH_CLIENT_AUTH_FAILURE"
        self.client.startService()
        waiter = self.client.whenReady()
        queued = self.client.request("VersionReq")
        self.flush()
        error = self.failureResultOf(waiter, ClientAuthenticationError).value
        self.assertEqual(error.errorCode, "CH_CLIENT_AUTH_FAILURE")
        self.failureResultOf(queued, NotSentError)
        self.assertFalse(self.client.running)
        self.clock.advance(600)
        self.flush()
        self.assertEqual(len(self.endpoint.servers), 1)  # no retry loop
        self.failureResultOf(self.client.whenReady(), ClientAuthenticationError)

    def test_transientRestoreFailuresBackOff(self) -> None:
        self.proxy.silent = True  # nothing is answered: app auth times out
        self.start()
        starts = []
        for _ in range(4):
            self.clock.advance(5)  # response timeout
            self.flush()
            starts.append(len(self.endpoint.servers))
            self.clock.advance(self.client._retryDelay(1))
            self.flush()
        self.assertEqual(self.client.restoreFailures, 4)
        # The delay grows with consecutive restore failures even though
        # every TCP connection succeeded (ClientService resets its count).
        self.assertEqual(self.client._retryDelay(1), 2.0 * 4)

    def test_maintenanceWaitsUntilItsEnd(self) -> None:
        end = int((self.clock.seconds() + 300) * 1000)
        self.proxy.maintenanceEnd = end
        self.start()
        self.assertEqual(len(self.endpoint.servers), 1)
        self.proxy.maintenanceEnd = None
        self.clock.advance(250)
        self.flush()
        self.assertEqual(len(self.endpoint.servers), 1)
        self.clock.advance(51)
        self.flush()
        self.assertEqual(len(self.endpoint.servers), 2)
        self.assertTrue(self.client.isReady)

    def test_clientDisconnectEventReconnects(self) -> None:
        self.start()
        first = self.server
        first.push(ProtoOAClientDisconnectEvent(reason="blocked by administrator"))
        self.flush()
        self.assertTrue(first.lost)
        self.clock.advance(2)
        self.flush()
        self.assertEqual(len(self.endpoint.servers), 2)
        self.assertTrue(self.client.isReady)

    def test_refusedTokenDropsTheAccount(self) -> None:
        lost: list[Any] = []
        self.client.setAccountLostCallback(lambda c, account, error: lost.append((account, type(error))))
        self.start()
        self.subscribeEverything()
        self.proxy.tokenValid["token-2"] = False
        self.drop()
        self.clock.advance(2)
        self.flush()
        self.assertTrue(self.client.isReady)
        self.assertEqual(lost, [(22, AccessTokenInvalidError)])
        self.assertEqual(sorted(self.client.session.accounts), [11])
        self.assertNotIn("trendbar", self.sequence())

    def test_tokenRefresherRenewsAndReauthorizes(self) -> None:
        stored: list[Any] = []
        self.client.setTokenRefresher(
            "refresh-1", lambda c, res: stored.append((res.accessToken, res.refreshToken)), accessToken="token-1"
        )
        self.start()
        self.subscribeEverything()
        self.server.push(ProtoOAAccountsTokenInvalidatedEvent(ctidTraderAccountIds=[11], reason="Access token expired"))
        self.proxy.tokenValid["token-1"] = False
        self.flush()
        self.assertEqual(stored, [("new-token", "refresh-2")])
        names = self.sequence()
        self.assertIn("refresh", names)
        self.assertEqual(names[names.index("refresh") + 1], "account")
        last = [m for m in self.server.requests() if m.payloadType == 2102][-1]
        from ctrader_twisted.protobuf import Protobuf

        self.assertEqual(Protobuf.extract(last).accessToken, "new-token")
        self.assertEqual(self.client.session.accounts[11].accessToken, "new-token")

    def test_stoppedClientFailsWaiters(self) -> None:
        self.endpoint.refuse = True
        self.client.startService()
        waiter = self.client.whenReady()
        self.client.stopService()
        self.failureResultOf(waiter, NotConnectedError)

    def test_authorizeAccountNeedsTheApplication(self) -> None:
        plain = Client("localhost", 5035, clock=self.clock, endpoint=self.endpoint)
        self.failureResultOf(plain.authorizeAccount(1, "t"), NotConnectedError)

    def test_everyDeferredFiresOnce(self) -> None:
        self.start()
        self.subscribeEverything()
        self.server.auto.pop(2104)
        deferreds = [self.client.request("VersionReq", responseTimeoutInSeconds=None) for _ in range(5)]
        self.flush()
        self.drop()
        for d in deferreds:
            self.failureResultOf(d, OutcomeUnknownError)
        self.clock.advance(2)
        self.flush()
        # Deferred.callback would raise AlreadyCalledError on a second firing;
        # nothing was logged, and nothing is pending.
        self.assertEqual(self.client.factory.pendingCount(), 0)


class SessionStateTests(SynchronousTestCase):
    def test_reprHasNoSecrets(self) -> None:
        state = SessionState()
        state.setApplication("cid", "app-secret")
        state.addAccount(1, "access-secret")
        text = repr(state) + repr(state.applicationStep()) + repr([state.accountStep(a) for a in state.accounts.values()])
        self.assertNotIn("app-secret", text)
        self.assertNotIn("access-secret", text)

    def test_badArguments(self) -> None:
        state = SessionState()
        self.assertRaises(ValueError, state.setApplication, "", "x")
        self.assertRaises(ValueError, state.addAccount, -1, "t")
        self.assertRaises(ValueError, state.addAccount, 1, "")
