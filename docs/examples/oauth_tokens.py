"""OAuth without blocking the reactor, and tokens kept across refreshes.

Against the bundled simulator's OAuth pages (no account, no network)::

    python docs/examples/oauth_tokens.py

The script plays the user's browser itself: it asks the consent page for a
code (the simulator grants it at once), exchanges the code for tokens with
``Auth.requestToken``, keeps them in a token file, authorizes an account
with them, then refreshes them over the connection; the refresh callback
writes the new pair to the token file before anything uses it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from twisted.internet.defer import ensureDeferred
from twisted.internet.task import react

from ctrader_twisted import Auth, Client
from ctrader_twisted.tokens import FileTokenStore, Tokens


async def browse(reactor: Any, url: str, caPEM: bytes) -> str:
    """What the user's browser does: open the consent page, come back with ``?code=``."""
    from treq.client import HTTPClient
    from twisted.web.client import Agent, BrowserLikePolicyForHTTPS, HTTPConnectionPool

    from ctrader_twisted.endpoints import loadTrustRoot

    agent = Agent(reactor, BrowserLikePolicyForHTTPS(loadTrustRoot(caPEM)), pool=HTTPConnectionPool(reactor, False))
    response = await HTTPClient(agent).get(url, allow_redirects=False)
    await response.content()
    location = response.headers.getRawHeaders(b"location")[0].decode()
    return parse_qs(urlsplit(location).query)["code"][0]


async def main(reactor: Any) -> None:
    from ctrader_twisted.simulator import Simulator

    sim = Simulator(clock=reactor)
    listening = sim.listen(reactor, tlsPort=0, wsPort=None, httpPort=0)
    assert listening.authUri is not None and listening.tokenUri is not None
    store = FileTokenStore(Path(tempfile.mkdtemp()) / "tokens.json", key=sim.clientId)
    client = None
    try:
        auth = Auth(sim.clientId, sim.clientSecret, "http://localhost:8080/redirect",
                    reactor=reactor, trustRoot=listening.caPEM)
        code = await browse(reactor, auth.getAuthUri("trading", baseUri=listening.authUri), listening.caPEM)
        tokens = await auth.requestToken(code, baseUri=listening.tokenUri)
        store.save(tokens)
        print(f"tokens kept; the access token expires {tokens.expiresAt:%Y-%m-%d} UTC")

        kept = store.load()
        assert kept is not None
        client = Client("localhost", listening.tlsPort, reactor=reactor, trustRoot=listening.caCertificate,
                        clientId=sim.clientId, clientSecret=sim.clientSecret)

        def refreshed(client: Client, res: Any) -> None:
            store.save(Tokens.fromRefreshRes(res, reactor.seconds()))  # before anything uses them

        client.setTokenRefresher(kept.refreshToken, refreshed, accessToken=kept.accessToken)
        client.startService()
        await client.whenReady()
        account = sim.accountIds[0]
        await client.authorizeAccount(account, kept.accessToken)
        print(f"authorized account {account}")

        await client.refreshAccessToken()  # what the client does when the token is refused
        renewed = store.load()
        assert renewed is not None
        print(f"refreshed: the kept tokens changed: {renewed.accessToken != kept.accessToken}")
        # The server ends the account sessions of the old token; authorizing
        # with the new one now (ALREADY_LOGGED_IN counts as success) makes
        # sure the account is back before the next request.
        await client.authorizeAccount(account, renewed.accessToken)
        trader = await client.request("ProtoOATraderReq", ctidTraderAccountId=account)
        print(f"account {trader.trader.ctidTraderAccountId} still authorized with the new token")
    finally:
        if client is not None:
            await client.stopService()
        await sim.stop()


if __name__ == "__main__":
    react(lambda reactor: ensureDeferred(main(reactor)))
