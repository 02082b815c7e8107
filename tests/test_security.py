"""Secrets never appear in logs, reprs or exceptions, over a full session.

A real client talks to the simulator over loopback TLS: application auth,
account auth, a token refresh, a refused application secret and a refused
access token. Every log event of the process (the simulator's included) and
every exception text is then searched for each secret.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import TestCase

from ctrader_twisted import Client
from ctrader_twisted.errors import AccessTokenInvalidError, ClientAuthenticationError
from ctrader_twisted.simulator import Simulator


class SecretsTests(TestCase):
    @defer.inlineCallbacks
    def test_fullSessionLeaksNoSecret(self) -> Any:
        from twisted.internet import reactor

        events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        sim = Simulator(seed=3, clientSecret="app-secret-5f1c9e")
        listening = sim.listen(reactor, tlsPort=0, wsPort=None)
        self.addCleanup(sim.stop)
        secrets = [sim.clientSecret, sim.accessToken, sim.refreshToken, "wrong-secret-77aa", "bad-token-99bb"]
        texts: list[str] = []

        def make(secret: str) -> Client:
            client = Client("localhost", listening.tlsPort, reactor=reactor, trustRoot=listening.caCertificate,
                            clientId=sim.clientId, clientSecret=secret)
            self.addCleanup(client.stopService)
            texts.append(repr(client) + repr(client.session) + repr(client.factory))
            return client

        client = make(sim.clientSecret)
        refreshed: list[Any] = []
        client.setTokenRefresher(sim.refreshToken, lambda c, res: refreshed.append(res))
        client.startService()
        yield client.whenReady()
        account = sim.accountIds[0]
        yield client.authorizeAccount(account, sim.accessToken)
        res = yield client.refreshAccessToken()
        secrets += [res.accessToken, res.refreshToken]
        self.assertEqual(len(refreshed), 1)
        texts.append(repr(client) + repr(client.session) + repr(client.session.state.applicationStep()))

        try:
            yield client.authorizeAccount(sim.accountIds[1], "bad-token-99bb")
        except AccessTokenInvalidError as e:
            texts += [str(e), repr(e), repr(e.payload)]
        else:
            self.fail("a bad access token was accepted")

        bad = make("wrong-secret-77aa")
        bad.startService()
        try:
            yield bad.whenReady()
        except ClientAuthenticationError as e:
            texts += [str(e), repr(e)]
        else:
            self.fail("a bad client secret was accepted")
        yield client.stopService()

        self.assertTrue(len(events) > 5)
        for event in events:
            texts.append(formatEvent(event))
            texts.append(repr(event))
            failure = event.get("log_failure")
            if failure is not None:
                texts.append(failure.getTraceback())
        everything = "\n".join(texts)
        for secret in secrets:
            self.assertNotIn(secret, everything)
        self.flushLoggedErrors()
