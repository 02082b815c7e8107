# -*- test-case-name: tests.test_redis_workers -*-
"""A worker of a group sharing accounts: :class:`SharedAccountsService`.

What ``twistd -n ctrader --symbols ... --redis URL --group NAME`` runs. The
worker keeps one Open API connection per endpoint (with ``--host demo`` or
``live``: demo accounts through the demo host, live accounts through the
live host; with any other host, everything through it), each paced to that
connection's rate limits. It joins the group through
:class:`~ctrader_twisted.redis.leases.AccountLeases`, and for each account
it holds: authorizes it, resolves the symbols on it, subscribes to its spots
(and live bars, depth), backfills the deals of the handover window (from the
last execution event in the account's ``exec`` stream, read before the
account is authorized here, or from two lease periods ago when there is
none, through ``ProtoOADealListReq``), and publishes its events to the
account's streams.
An account handed over or lost is unsubscribed and logged out. Lease
changes are published to the account's ``account`` stream
(``{"event":"lease","state":"acquired"|"released",...}``).
"""

from __future__ import annotations

import json
from datetime import datetime
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence, TextIO

from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, DeferredList, ensureDeferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..cli.connect import Connection
from ..cli.jsonlines import EventFormatter, isoTime
from ..cli.options import parsePeriod
from ..cli.status import StreamError, describeError, say
from ..endpoints import EndPoints
from ..messages.OpenApiMessages_pb2 import ProtoOAExecutionEvent
from ..messages.OpenApiModelMessages_pb2 import ProtoOAExecutionType
from .leases import AccountLeases
from .sink import RedisSink
from .streams import streamName

if TYPE_CHECKING:
    from ..cli.config import Settings

__all__ = ["SharedAccountsService"]


class SharedAccountsService(MultiService):
    """Stream the accounts this worker holds in its group to Redis.

    :param settings: where to connect and as whom (its ``accountIds``: the
        accounts the group shares; empty: every account of the token).
    :param symbols: symbol names to stream on every account.
    :param redisURL: the Redis URL.
    :param group: the group's name.
    :param status: where the one-line status messages go.
    :param reactor: the reactor.
    :param lease: lease time, seconds.
    :param trendbars: live trend bar periods (``M1``...).
    :param depth: also depth quotes.
    :param publisherOptions: more :class:`~ctrader_twisted.redis.publisher.StreamPublisher` options.
    :param workerId: this worker's id (default: host, pid, random).
    :param endpoints: ``(host, port)`` for demo (``False``) and live
        (``True``) accounts; by default the official demo and live hosts when
        *settings* names one of them, else the configured host for all.
    """

    _log = Logger()

    def __init__(
        self,
        settings: Settings,
        symbols: Sequence[str],
        redisURL: str,
        group: str,
        status: TextIO,
        reactor: Any,
        *,
        lease: float = 10.0,
        trendbars: Sequence[str] = (),
        depth: bool = False,
        connectTimeout: float | None = 30.0,
        publisherOptions: dict[str, Any] | None = None,
        workerId: str | None = None,
        endpoints: Mapping[bool, tuple[str, int]] | None = None,
    ) -> None:
        super().__init__()
        if not symbols:
            raise ValueError("give at least one symbol")
        self.settings = settings
        self.symbolNames = list(symbols)
        self.periods = [parsePeriod(p) for p in trendbars]
        self.depth = depth
        self.status = status
        self.reactor = reactor
        self.group = group
        self.lease = lease
        self.workerId = workerId
        self.sink = RedisSink(redisURL, reactor, self._say, **(publisherOptions or {}))
        self.publisher = self.sink.publisher
        #: the first connection (the configured host): lists the accounts
        self.connection = Connection(reactor, settings, timeout=connectTimeout)
        if endpoints is None and settings.host in (EndPoints.PROTOBUF_DEMO_HOST, EndPoints.PROTOBUF_LIVE_HOST):
            endpoints = {False: (EndPoints.PROTOBUF_DEMO_HOST, settings.port),
                         True: (EndPoints.PROTOBUF_LIVE_HOST, settings.port)}
        self.endpoints = dict(endpoints or {})
        self.connectTimeout = connectTimeout
        #: open connections by (host, port)
        self.connections: dict[tuple[str, int], Connection] = {}
        self.live: dict[int, bool] = {}
        self._opening: dict[tuple[str, int], Deferred[Connection]] = {}
        self.leases: AccountLeases | None = None
        self.formatter: EventFormatter | None = None
        self.subscribed: dict[int, list[int]] = {}
        self._error: Failure | None = None
        self._done: list[Deferred[None]] = []

    def _say(self, text: str) -> None:
        say(self.status, text)

    def whenDone(self) -> Deferred[None]:
        """Fires when the service has stopped; fails with ``StreamError`` (a one-line reason) after a fatal error."""
        if self._error is not None:
            d: Deferred[None] = Deferred()
            d.errback(self._error)
            return d
        d = Deferred()
        self._done.append(d)
        return d

    def startService(self) -> None:
        """Connect to Redis and the Open API, then join the group."""
        super().startService()
        self.sink.start()
        ensureDeferred(self._start()).addErrback(self._startFailed)

    def _startFailed(self, failure: Failure) -> None:
        if not self.running:
            return
        error = StreamError(describeError(failure.value, self.connection.host, self.connection.port))
        self._log.error("Worker failed to start: {error}", error=str(error))
        self._error = Failure(error)
        waiting, self._done = self._done, []
        for d in waiting:
            d.errback(error)

    async def _start(self) -> None:
        connection = self.connection
        self.formatter = EventFormatter({}, self.settings.simulated, lambda: int(self.reactor.seconds() * 1000))
        await self._open(connection)
        notice = await connection.simulatorNotice()
        if notice:
            # A standalone simulator: its events are marked as the stream command marks them.
            self.formatter.simulated = True
            self._say(notice + '; every event has "simulated": true')
        listed = await connection.listAccounts()
        self.live = {int(a.ctidTraderAccountId): bool(a.isLive) for a in listed}
        accounts = list(self.settings.accountIds) or list(self.live)
        if not accounts:
            raise StreamError("the access token grants no trading account")
        self.leases = AccountLeases(self.sink.link, self.reactor, self.group, accounts, self._acquire, self._release,
                                    lease=self.lease, workerId=self.workerId, prefix=self.publisher.prefix)
        self._say(f"worker {self.leases.workerId} joined group {self.group} sharing {len(accounts)} accounts "
                  f"(lease {self.lease:g} s)")
        self.leases.start()

    async def _open(self, connection: Connection) -> Connection:
        """Start *connection*, listen to its events, wait for its session."""
        client = connection.start()
        for payload, format in _FORMATS.items():
            client.addListener(payload, partial(self._onEvent, format))
        self.connections[(connection.host, connection.port)] = connection
        self.addService(client)
        self._say(f"worker connecting to {connection.where} over {connection.transport}")
        await connection.connect()
        return connection

    async def _connectionFor(self, account: int) -> Connection:
        """The connection of *account*'s endpoint (opened on first use)."""
        where = self.endpoints.get(self.live.get(account, False))
        if where is None or where == (self.connection.host, self.connection.port):
            return self.connection
        if where in self.connections:
            return self.connections[where]
        opening = self._opening.get(where)
        if opening is None:
            settings = replace(self.settings, host=where[0], port=where[1])
            connection = Connection(self.reactor, settings, timeout=self.connectTimeout)
            opening = self._opening[where] = ensureDeferred(self._open(connection))
            opening.addBoth(lambda result: (self._opening.pop(where, None), result)[1])
        return await opening

    def stopService(self) -> Deferred[None]:
        """Give the leases back (the others take over at once), then stop."""
        leases = self.leases
        d = leases.stop(release=True) if leases is not None else succeed(None)
        d.addErrback(lambda f: self._log.failure("Releasing the leases failed", f))
        d.addCallback(lambda _: super(SharedAccountsService, self).stopService())
        d.addCallback(lambda _: DeferredList([ensureDeferred(c.close()) for c in list(self.connections.values())]))
        d.addCallback(lambda _: self.sink.stop())

        def stopped(_: Any) -> None:
            waiting, self._done = self._done, []
            for w in waiting:
                w.callback(None)

        return d.addCallback(stopped)

    # --- accounts ----------------------------------------------------------------------

    def _held(self, account: int) -> bool:
        return self.leases is not None and account in self.leases.held

    async def _acquire(self, account: int) -> None:
        connection = await self._connectionFor(account)
        client = connection.client
        assert client is not None and self.formatter is not None
        # Where the handover window starts, read before the account is
        # authorized here: from then on this worker publishes its live
        # executions, and the newest entry would no longer be the last one
        # the previous holder published.
        since = await self._lastExecutionTime(account)
        if since is None:
            # Nothing published for the account yet: the previous holder, if
            # any, died at most about two lease periods ago.
            since = int((self.reactor.seconds() - 2 * self.lease - 1) * 1000)
        await client.authorizeAccount(account, connection.accessToken)
        resolved, byId = await connection.resolveSymbols(account, self.symbolNames)
        self.formatter.symbols[account] = byId
        await self._backfill(account, connection, since)
        ids = [s.symbolId for s in resolved]
        await client.request("ProtoOASubscribeSpotsReq", ctidTraderAccountId=account, symbolId=ids,
                             subscribeToSpotTimestamp=True)
        for period in self.periods:
            for symbolId in ids:
                await client.request("ProtoOASubscribeLiveTrendbarReq", ctidTraderAccountId=account,
                                     symbolId=symbolId, period=period)
        if self.depth:
            await client.request("ProtoOASubscribeDepthQuotesReq", ctidTraderAccountId=account, symbolId=ids)
        self.subscribed[account] = ids
        self._leaseEvent(account, "acquired", None)
        self._say(f"streaming account {account} ({', '.join(s.name for s in resolved)}) through {connection.where}")

    async def _backfill(self, account: int, connection: Connection, since: int) -> None:
        """Publish the deals made since *since* (UTC ms: the last execution
        event in the stream before this worker took the account), the
        handover window; consumers may see some twice (at least once)."""
        client = connection.client
        assert client is not None and self.formatter is not None
        now = int(self.reactor.seconds() * 1000)
        res = await client.request("ProtoOADealListReq", ctidTraderAccountId=account, fromTimestamp=since - 1000,
                                   toTimestamp=now + 1000)
        count = 0
        for deal in sorted(res.deal, key=lambda d: (d.executionTimestamp, d.dealId)):
            event = ProtoOAExecutionEvent(ctidTraderAccountId=account, executionType=ProtoOAExecutionType.ORDER_FILLED)
            event.deal.CopyFrom(deal)
            line = self.formatter.execution(event)
            line["backfilled"] = True
            self.publisher.publishEvent(line)
            count += 1
        if count:
            self._log.info("Backfilled {n} deals of account {account}", n=count, account=account)

    async def _lastExecutionTime(self, account: int) -> int | None:
        entries = await self.sink.link.execute("XREVRANGE", streamName(account, "exec", self.publisher.prefix), "+", "-",
                                               "COUNT", 1)
        if not entries:
            return None
        fields = entries[0][1]
        values = dict(zip(fields[0::2], fields[1::2]))
        times = []
        for line in str(values.get("e", "")).split("\n"):
            try:
                when = json.loads(line).get("time")
                times.append(int(datetime.fromisoformat(when.replace("Z", "+00:00")).timestamp() * 1000))
            except (ValueError, AttributeError, TypeError):
                continue
        return max(times) if times else None

    async def _release(self, account: int, reason: str) -> None:
        ids = self.subscribed.pop(account, None)
        client = (await self._connectionFor(account)).client
        self._leaseEvent(account, "released", reason)
        self._say(f"account {account} no longer streamed here ({reason})")
        if client is None or not client.isReady:
            return
        try:
            if ids:
                await client.request("ProtoOAUnsubscribeSpotsReq", ctidTraderAccountId=account, symbolId=ids)
            await client.logoutAccount(account)
        except Exception as error:  # the account goes either way; the server may have dropped it first
            self._log.info("Logging account {account} out: {error}", account=account, error=str(error))

    def _leaseEvent(self, account: int, state: str, reason: str | None) -> None:
        assert self.leases is not None
        event: dict[str, Any] = {"event": "lease", "time": isoTime(int(self.reactor.seconds() * 1000)),
                                 "account": account, "state": state, "worker": self.leases.workerId,
                                 "group": self.group}
        if reason:
            event["reason"] = reason
        self.publisher.publishEvent(event)

    # --- events ------------------------------------------------------------------------

    def _onEvent(self, format: Callable[[EventFormatter, Any], list[dict[str, Any]]], event: Any) -> None:
        """An Open API event of an account held here: publish its lines."""
        if self._held(int(event.ctidTraderAccountId)):
            assert self.formatter is not None
            for line in format(self.formatter, event):
                self.publisher.publishEvent(line)


#: The events published, and how each becomes lines.
_FORMATS: dict[str, Callable[[EventFormatter, Any], list[dict[str, Any]]]] = {
    "ProtoOASpotEvent": lambda f, e: f.spot(e),
    "ProtoOADepthEvent": lambda f, e: [f.depth(e)],
    "ProtoOAExecutionEvent": lambda f, e: [f.execution(e)],
    "ProtoOAOrderErrorEvent": lambda f, e: [f.orderError(e)],
}
