"""Hostile clients against the simulator (issue 12, the simulator's items).

Most of these speak raw bytes over real loopback TLS (:class:`RawClient`, not
the library's client): crafted frames, lists of 300,000 ids, text that is not
UTF-8, a client that stops reading. Time-driven behaviour (pending orders
that trigger, WebSocket deadlines) runs in memory on a ``task.Clock``.

What each hostile input gets is tabled in ``docs/faults.rst`` ("Hostile
inputs").
"""

from __future__ import annotations

import io
import socket
import struct
import sys
from typing import Any, Callable, cast

from google.protobuf.message import Message
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import SSL4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.ssl import optionsForClientTLS
from twisted.internet.task import Clock, deferLater
from twisted.logger import globalLogPublisher
from twisted.python import usage
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from twisted.test.iosim import connectedServerAndClient
from twisted.trial.unittest import SynchronousTestCase, TestCase

from ctrader_twisted.framing import FrameSplitter
from ctrader_twisted.messages.OpenApiCommonMessages_pb2 import ProtoHeartbeatEvent, ProtoMessage
from ctrader_twisted.messages.OpenApiMessages_pb2 import (
    ProtoOAAccountAuthReq,
    ProtoOAAmendOrderReq,
    ProtoOAApplicationAuthReq,
    ProtoOAExpectedMarginReq,
    ProtoOANewOrderReq,
    ProtoOAReconcileReq,
    ProtoOASubscribeDepthQuotesReq,
    ProtoOASubscribeSpotsReq,
    ProtoOASymbolByIdReq,
    ProtoOASymbolsListReq,
    ProtoOAUnsubscribeSpotsReq,
    ProtoOAVersionReq,
)
from ctrader_twisted.messages.OpenApiModelMessages_pb2 import (
    ProtoOAExecutionType,
    ProtoOAOrderType,
    ProtoOAPositionStatus,
    ProtoOATradeSide,
)
from ctrader_twisted.protobuf import Protobuf
from ctrader_twisted.simulator import Simulator
from ctrader_twisted.simulator.__main__ import main as simulatorMain
from ctrader_twisted.simulator.handlers import Registry
from ctrader_twisted.simulator.handlers.registry import MAX_IDS
from ctrader_twisted.simulator.tap import Options
from ctrader_twisted.testing import REALISTIC_START, SimulatedServer

_EXECUTION = "ProtoOAExecutionEvent"
_SPOT = "ProtoOASpotEvent"
_DEPTH = "ProtoOADepthEvent"


def name(message: ProtoMessage) -> str:
    return Protobuf.name(message.payloadType)


class RawClient(Protocol):
    """A hostile client that speaks bytes: it writes whatever frames it is
    told to, records every frame it receives, and knows nothing of the Open
    API beyond the envelope."""

    def __init__(self, maxFrame: int = 16 * 1024 * 1024) -> None:
        self.splitter = FrameSplitter(maxFrame)
        self.messages: list[ProtoMessage] = []
        self._answers: dict[str, list[ProtoMessage]] = {}
        self.oversized: int | None = None
        self.lostReason: Failure | None = None
        self._waiters: list[tuple[Callable[[], bool], Deferred[None]]] = []

    # --- receiving -------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        for received in self.splitter.feed(data):
            message = ProtoMessage.FromString(received)
            self.messages.append(message)
            if message.HasField("clientMsgId"):
                self._answers.setdefault(message.clientMsgId, []).append(message)
        if self.splitter.tooLarge is not None and self.oversized is None:
            self.oversized = self.splitter.tooLarge
            self.transport.abortConnection()  # type: ignore[union-attr]
        self._check()

    def connectionLost(self, reason: Failure = Failure(ConnectionError())) -> None:
        self.lostReason = reason
        self._check()

    def _check(self) -> None:
        for entry in list(self._waiters):
            if entry[0]():
                self._waiters.remove(entry)
                entry[1].callback(None)

    def until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> Deferred[None]:
        """Fires once *predicate* holds after something arrived (or the
        connection ended); fails with ``TimeoutError`` after *timeout* s."""
        d: Deferred[None] = Deferred()
        if predicate():
            d.callback(None)
            return d
        self._waiters.append((predicate, d))
        d.addTimeout(timeout, reactor)
        return d

    def answers(self, clientMsgId: str) -> list[ProtoMessage]:
        return self._answers.get(clientMsgId, [])

    def named(self, payloadName: str) -> list[Any]:
        return [Protobuf.extract(m) for m in self.messages if name(m) == payloadName]

    # --- sending ---------------------------------------------------------------------

    def writeFrame(self, data: bytes) -> None:
        self.transport.write(struct.pack(">I", len(data)) + data)  # type: ignore[union-attr]

    def write(self, payload: Message, clientMsgId: str | None = None) -> None:
        envelope = ProtoMessage(payloadType=payload.payloadType, payload=payload.SerializeToString())  # type: ignore[attr-defined]
        if clientMsgId is not None:
            envelope.clientMsgId = clientMsgId
        self.writeFrame(envelope.SerializeToString())

    async def request(self, payload: Message, clientMsgId: str, count: int = 1, timeout: float = 10.0) -> list[Any]:
        """Write *payload* and wait for *count* answers carrying *clientMsgId*;
        returns them decoded."""
        self.write(payload, clientMsgId)
        await self.until(lambda: len(self.answers(clientMsgId)) >= count or self.lostReason is not None, timeout)
        if self.lostReason is not None and len(self.answers(clientMsgId)) < count:
            raise AssertionError(f"connection lost waiting for {clientMsgId}: {self.lostReason.value!r}")
        return [Protobuf.extract(m) for m in self.answers(clientMsgId)]


def tcpSocket(transport: Any) -> socket.socket:
    """The socket under a TLS transport."""
    return transport.transport.getHandle()  # type: ignore[no-any-return]


def bufferedBytes(session: Any) -> int:
    """What the simulator holds for one connection in user space: the TCP
    transport's write buffer (under TLS, if any)."""
    transport = session.connection.transport
    tcp = getattr(transport, "transport", None) or transport
    return len(tcp.dataBuffer) - tcp.offset + tcp._tempDataLen


async def poll(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "a condition") -> None:
    """Wait (on the real reactor) until *predicate* holds, checking every 10 ms."""
    waited = 0.0
    while not predicate():
        if waited >= timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await deferLater(reactor, 0.01, lambda: None)
        waited += 0.01


class LoopbackTestCase(TestCase):
    """A simulator listening on loopback TLS, and raw clients connected to it."""

    timeout = 30

    def simulator(self, **options: Any) -> Simulator:
        options.setdefault("seed", 12)
        self.sim = Simulator(**options)
        self.listening = self.sim.listen(reactor, wsPort=None)
        self.addCleanup(self.sim.stop)
        return self.sim

    async def connect(self, receiveBuffer: int | None = None) -> RawClient:
        """A raw client over TLS; with *receiveBuffer*, its socket's receive
        buffer is set to that many bytes before it connects (a small window
        from the first byte on)."""
        client = RawClient()
        tls = optionsForClientTLS("localhost", trustRoot=self.listening.caCertificate)
        if receiveBuffer is None:
            endpoint = SSL4ClientEndpoint(reactor, "127.0.0.1", self.listening.tlsPort, tls)
            await connectProtocol(endpoint, client)
        else:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receiveBuffer)
            sock.connect(("127.0.0.1", self.listening.tlsPort))  # loopback: at once
            sock.setblocking(False)
            made: Deferred[None] = Deferred()
            client.connectionMade = lambda: made.callback(None)  # type: ignore[method-assign]
            factory = TLSMemoryBIOFactory(tls, True, Factory.forProtocol(lambda: client))
            cast(Any, reactor).adoptStreamConnection(sock.fileno(), socket.AF_INET, factory)
            sock.close()  # the reactor holds its own descriptor
            await made

        def close() -> None:
            if client.lostReason is None and client.transport is not None:
                client.transport.abortConnection()  # type: ignore[attr-defined]

        self.addCleanup(close)
        return client

    async def login(self, client: RawClient, accountId: int | None = None) -> int:
        sim = self.sim
        [auth] = await client.request(ProtoOAApplicationAuthReq(clientId=sim.clientId, clientSecret=sim.clientSecret), "app")
        self.assertEqual(auth.DESCRIPTOR.name, "ProtoOAApplicationAuthRes")
        accountId = sim.accountIds[0] if accountId is None else accountId
        [res] = await client.request(
            ProtoOAAccountAuthReq(ctidTraderAccountId=accountId, accessToken=sim.accessToken), "account"
        )
        self.assertEqual(res.DESCRIPTOR.name, "ProtoOAAccountAuthRes")
        return accountId

    async def traderAndWatcher(self) -> tuple[RawClient, RawClient, int]:
        """Two logged-in connections: one to act, one watching the spots of
        symbol 1 (to show the market goes on); and the account."""
        trader, watcher = await self.connect(), await self.connect()
        accountId = await self.login(trader)
        await self.login(watcher)
        await watcher.request(ProtoOASubscribeSpotsReq(ctidTraderAccountId=accountId, symbolId=[1]), "spots")
        return trader, watcher, accountId

    async def buy(self, trader: RawClient, accountId: int) -> Any:
        """A filled market buy of 1,000 EURUSD: its ORDER_FILLED event."""
        _, filled = await trader.request(
            ProtoOANewOrderReq(
                ctidTraderAccountId=accountId, symbolId=1, orderType=ProtoOAOrderType.MARKET,
                tradeSide=ProtoOATradeSide.BUY, volume=100000,
            ),
            "buy",
            count=2,
        )
        return filled

    async def stillServes(self, client: RawClient, tag: str) -> None:
        """The connection is alive and answers."""
        [version] = await client.request(ProtoOAVersionReq(), tag)
        self.assertEqual(version.DESCRIPTOR.name, "ProtoOAVersionRes")

    async def spotsKeepComing(self, client: RawClient, more: int = 10) -> None:
        before = len(client.named(_SPOT))
        await client.until(lambda: len(client.named(_SPOT)) >= before + more, timeout=10)


# --- 6. one client can stop the market for everyone ------------------------------------------------


class ClosingOrderTests(LoopbackTestCase):
    async def test_amendOverThePositionVolumeIsRefusedAndTheMarketGoesOn(self) -> None:
        """Amending a pending closing order to more than its position holds is
        refused with TRADING_BAD_VOLUME; when the order then fills, it closes
        exactly the position, and spots flow to everyone."""
        self.simulator(spotInterval=0.02)
        trader, watcher, accountId = await self.traderAndWatcher()
        filled = await self.buy(trader, accountId)
        positionId = filled.position.positionId
        [accepted] = await trader.request(
            ProtoOANewOrderReq(
                ctidTraderAccountId=accountId, symbolId=1, orderType=ProtoOAOrderType.LIMIT,
                tradeSide=ProtoOATradeSide.SELL, volume=100000, limitPrice=50.0, positionId=positionId,
            ),
            "close-later",
        )
        orderId = accepted.order.orderId
        [refusal] = await trader.request(
            ProtoOAAmendOrderReq(ctidTraderAccountId=accountId, orderId=orderId, volume=200000), "amend-over"
        )
        self.assertEqual(refusal.DESCRIPTOR.name, "ProtoOAOrderErrorEvent")
        self.assertEqual(refusal.errorCode, "TRADING_BAD_VOLUME")
        self.assertIn("exceeds the position's 100000", refusal.description)

        # Let it fill: the order still closes 100000, the position exactly.
        [replaced] = await trader.request(
            ProtoOAAmendOrderReq(ctidTraderAccountId=accountId, orderId=orderId, limitPrice=0.5), "fill-now"
        )
        self.assertEqual(replaced.executionType, ProtoOAExecutionType.ORDER_REPLACED)
        self.assertEqual(replaced.order.tradeData.volume, 100000)

        def fills() -> list[Any]:
            return [
                e for e in trader.named(_EXECUTION)
                if e.executionType == ProtoOAExecutionType.ORDER_FILLED and e.order.orderId == orderId
            ]

        await trader.until(lambda: bool(fills()))
        [fill] = fills()
        self.assertEqual(fill.deal.closePositionDetail.closedVolume, 100000)
        self.assertEqual(fill.position.positionStatus, ProtoOAPositionStatus.POSITION_STATUS_CLOSED)
        self.assertEqual((fill.position.tradeData.volume, fill.position.usedMargin), (0, 0))
        [reconcile] = await trader.request(ProtoOAReconcileReq(ctidTraderAccountId=accountId), "reconcile")
        self.assertEqual((list(reconcile.position), list(reconcile.order)), ([], []))
        await self.spotsKeepComing(watcher)


class ContainmentTests(LoopbackTestCase):
    async def test_aBadAccountStateIsContainedPerTickAndPerRequest(self) -> None:
        """An account whose state cannot be processed or described (here made
        so by hand) does not stop the ticker: the other connections keep
        their spots, its reconcile is answered UNKNOWN_ERROR on a connection
        that stays up, and each failure is logged once with its traceback."""
        sim = self.simulator(spotInterval=0.02)
        trader, watcher, accountId = await self.traderAndWatcher()
        filled = await self.buy(trader, accountId)
        [pending] = await trader.request(
            ProtoOANewOrderReq(
                ctidTraderAccountId=accountId, symbolId=1, orderType=ProtoOAOrderType.LIMIT,
                tradeSide=ProtoOATradeSide.BUY, volume=100000, limitPrice=0.01,
            ),
            "pending",
        )
        account = sim.accounts[accountId]
        # What the unvalidated amend used to leave behind: margin below zero
        # (ProtoOAPosition.usedMargin is unsigned) and an order whose position
        # is gone.
        account.positions[filled.position.positionId].usedMargin = -1
        del account.positions[pending.order.positionId]

        await self.spotsKeepComing(watcher, more=20)
        [error] = await trader.request(ProtoOAReconcileReq(ctidTraderAccountId=accountId), "reconcile")
        self.assertEqual(error.DESCRIPTOR.name, "ProtoErrorRes")
        self.assertEqual(error.errorCode, "UNKNOWN_ERROR")
        await self.stillServes(trader, "after-reconcile")
        self.assertTrue(sim.ticker._loop is not None and sim.ticker._loop.running)
        self.assertEqual(len(self.flushLoggedErrors(KeyError)), 1)  # the tick, logged once
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)  # the reconcile

    async def test_aHandlerThatRaisesIsAnsweredAndContained(self) -> None:
        """A handler that raises gets its request answered UNKNOWN_ERROR, with
        the traceback logged; the connection and the others go on."""
        sim = self.simulator(spotInterval=0.02)
        registry = Registry()

        @registry.handler(ProtoOAVersionReq, application=False)
        def broken(session: Any, request: Any, clientMsgId: str | None) -> None:
            raise RuntimeError("a bug in a handler")

        registry.include(_without(sim.handlers, ProtoOAVersionReq))
        sim.handlers = registry
        client, other, accountId = await self.traderAndWatcher()
        for tag in ("first", "second"):
            [error] = await client.request(ProtoOAVersionReq(), tag)
            self.assertEqual((error.DESCRIPTOR.name, error.errorCode), ("ProtoErrorRes", "UNKNOWN_ERROR"))
        [symbols] = await client.request(ProtoOASymbolsListReq(ctidTraderAccountId=accountId), "symbols")
        self.assertTrue(symbols.symbol)
        await self.spotsKeepComing(other)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 2)


def _without(registry: Registry, requestClass: type[Message]) -> Registry:
    """A copy of *registry* without the route of *requestClass*."""
    copy = Registry()
    payloadType = Protobuf.get_type(requestClass)
    for route in registry._routes.values():
        if route.payloadType != payloadType:
            copy.add(route)
    return copy


class ExecutionGuardTests(SynchronousTestCase):
    """Closing orders that trigger after their position changed (Clock-driven,
    in memory)."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(REALISTIC_START)
        self.sim = Simulator(seed=3, clock=self.clock, spotInterval=1.0)
        self.client, _, self.pump = connectedServerAndClient(
            lambda: self.sim.buildProtocol(None), RawClient, clock=self.clock
        )
        sim = self.sim
        self.accountId = sim.accountIds[0]
        self.client.write(ProtoOAApplicationAuthReq(clientId=sim.clientId, clientSecret=sim.clientSecret), "app")
        self.client.write(ProtoOAAccountAuthReq(ctidTraderAccountId=self.accountId, accessToken=sim.accessToken), "acc")
        self.pump.flush()

    def order(self, tag: str, **fields: Any) -> list[Any]:
        args: dict[str, Any] = dict(ctidTraderAccountId=self.accountId, symbolId=1)
        args.update(fields)
        self.client.write(ProtoOANewOrderReq(**args), tag)
        self.pump.flush()
        return [Protobuf.extract(m) for m in self.client.answers(tag)]

    def twoClosingOrders(self, opened: int, closing: int) -> tuple[int, list[Any]]:
        _, filled = self.order("open", orderType=ProtoOAOrderType.MARKET, tradeSide=ProtoOATradeSide.BUY, volume=opened)
        positionId = filled.position.positionId
        for tag in ("close-1", "close-2"):
            [accepted] = self.order(
                tag, orderType=ProtoOAOrderType.LIMIT, tradeSide=ProtoOATradeSide.SELL, volume=closing,
                limitPrice=0.5, positionId=positionId,
            )
            self.assertEqual(accepted.executionType, ProtoOAExecutionType.ORDER_ACCEPTED)
        self.clock.advance(1.0)  # one market step: both trigger
        self.pump.flush()
        events = [e for e in self.client.named(_EXECUTION) if e.isServerEvent]
        return positionId, events

    def test_secondClosingOrderOverTheRestIsRejected(self) -> None:
        positionId, events = self.twoClosingOrders(300000, 200000)
        self.assertEqual(
            [(e.executionType, e.errorCode) for e in events],
            [(ProtoOAExecutionType.ORDER_FILLED, ""), (ProtoOAExecutionType.ORDER_REJECTED, "TRADING_BAD_VOLUME")],
        )
        position = self.sim.accounts[self.accountId].positions[positionId]
        self.assertEqual((position.volume, position.status), (100000, ProtoOAPositionStatus.POSITION_STATUS_OPEN))
        self.assertGreater(position.usedMargin, 0)

    def test_closingOrderOfAClosedPositionIsRejected(self) -> None:
        positionId, events = self.twoClosingOrders(100000, 100000)
        self.assertEqual(
            [(e.executionType, e.errorCode) for e in events],
            [(ProtoOAExecutionType.ORDER_FILLED, ""), (ProtoOAExecutionType.ORDER_REJECTED, "POSITION_NOT_OPEN")],
        )
        position = self.sim.accounts[self.accountId].positions[positionId]
        self.assertEqual((position.volume, position.status), (0, ProtoOAPositionStatus.POSITION_STATUS_CLOSED))
        self.client.write(ProtoOAReconcileReq(ctidTraderAccountId=self.accountId), "reconcile")
        self.pump.flush()
        [reconcile] = [Protobuf.extract(m) for m in self.client.answers("reconcile")]
        self.assertEqual(list(reconcile.position), [])


# --- 7. a client that never reads ------------------------------------------------------------------------


class BackpressureTests(LoopbackTestCase):
    SYMBOLS = 100

    def busyMarket(self, **options: Any) -> list[int]:
        """A simulator with many symbols (lots of spot and depth bytes per tick)."""
        sim = self.simulator(**options)
        for i in range(self.SYMBOLS):
            sim.addSymbol(10_000 + i, f"SIM{i}", price=100_000 + 10 * i, spread=2)
        return list(sim.market.symbols)

    async def reader(self) -> RawClient:
        """A raw client whose receive window is small (so that the simulator
        feels it stop reading within a fraction of a second)."""
        return await self.connect(receiveBuffer=8192)

    def stopReading(self, client: RawClient) -> Any:
        """*client* stops reading; the simulator's send buffer for it is made
        small too. Returns its session."""
        session: Any = self.sim.sessions[-1]
        client.transport.pauseProducing()  # type: ignore[union-attr]
        tcpSocket(session.connection.transport).setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
        return session

    def startReading(self, client: RawClient) -> None:
        """*client* reads again."""
        client.transport.resumeProducing()  # type: ignore[union-attr]

    async def test_neverReadingClientIsBoundedAndCoalesced(self) -> None:
        """A client that subscribes to everything and stops reading: the
        simulator's buffer for it stays at the transport's high-water mark
        (spot and depth events are coalesced); when it reads again, it gets
        the latest prices and books, which match the market exactly."""
        ids = self.busyMarket(spotInterval=0.02)
        client = await self.reader()
        accountId = await self.login(client)
        await client.request(ProtoOASubscribeSpotsReq(ctidTraderAccountId=accountId, symbolId=ids), "spots")
        await client.request(ProtoOASubscribeDepthQuotesReq(ctidTraderAccountId=accountId, symbolId=ids), "depth")
        session = self.stopReading(client)
        await poll(lambda: bufferedBytes(session) > 0, what="the simulator to start buffering")
        samples = []
        for _ in range(30):  # 0.3 s: about 15 market steps of ~30 KiB each
            await deferLater(reactor, 0.01, lambda: None)
            samples.append(bufferedBytes(session))
        # Twisted's high-water mark (64 KiB), plus the frame that crossed it
        # and the TLS record around it.
        self.assertLess(max(samples), 96 * 1024, samples)
        self.assertGreater(session.coalesced, 0)
        self.assertTrue(session.paused)

        self.startReading(client)
        await poll(lambda: not session.paused, what="the transport to resume the session")
        self.sim.ticker.stop()
        await poll(lambda: not session.paused, what="the last coalesced events to go out")
        await client.request(ProtoOAVersionReq(), "drained", timeout=20)
        prices: dict[int, list[int]] = {}
        books: dict[int, set[int]] = {}
        for message in client.messages:
            if name(message) == _SPOT:
                spot = Protobuf.extract(message)
                price = prices.setdefault(spot.symbolId, [0, 0])
                if spot.HasField("bid"):
                    price[0] = spot.bid
                if spot.HasField("ask"):
                    price[1] = spot.ask
            elif name(message) == _DEPTH:
                depth = Protobuf.extract(message)
                book = books.setdefault(depth.symbolId, set())
                book.difference_update(depth.deletedQuotes)
                book.update(q.id for q in depth.newQuotes)
        market = self.sim.market.symbols
        self.assertEqual(prices, {i: [market[i].bid, market[i].ask] for i in ids})
        self.assertEqual(books, {i: {q.id for q in market[i].book} for i in ids})

    async def test_clientThatNeverReadsAnswersIsDropped(self) -> None:
        """Answers are never coalesced: a client that keeps asking and never
        reads is dropped past maxBufferedBytes, with a log line, and the
        others are not."""
        self.busyMarket(spotInterval=0.05, maxBufferedBytes=256 * 1024, requestsPerSecond=None)
        events: list[dict[str, Any]] = []
        observer: Any = events.append
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        other = await self.connect()
        await self.login(other)
        client = await self.reader()
        accountId = await self.login(client)
        session = self.stopReading(client)
        request = ProtoOASymbolsListReq(ctidTraderAccountId=accountId)  # ~12 KB answers
        for i in range(400):
            client.write(request, f"list-{i}")
        await poll(lambda: session.closed, what="the simulator to drop the client")
        self.assertLess(bufferedBytes(session), 256 * 1024 + 128 * 1024)
        self.assertTrue(any("does not read" in str(e.get("log_format", "")) for e in events))
        await self.stillServes(other, "other")
        self.startReading(client)
        await client.until(lambda: client.lostReason is not None)


# --- 8. amplification -------------------------------------------------------------------------------------------


class AmplificationTests(LoopbackTestCase):
    async def test_repeatedSymbolIdsAreAnsweredOnce(self) -> None:
        self.simulator()
        client = await self.connect()
        accountId = await self.login(client)
        [answer] = await client.request(
            ProtoOASymbolByIdReq(ctidTraderAccountId=accountId, symbolId=[1] * 5000 + [41, 1, 41]), "by-id"
        )
        self.assertEqual([s.symbolId for s in answer.symbol], [1, 41])
        [subscribed] = await client.request(
            ProtoOASubscribeSpotsReq(ctidTraderAccountId=accountId, symbolId=[1] * 5000), "spots"
        )
        self.assertEqual(subscribed.DESCRIPTOR.name, "ProtoOASubscribeSpotsRes")
        await self.stillServes(client, "after")  # everything the subscription sent came before
        self.assertEqual([s.symbolId for s in client.named(_SPOT) if s.HasField("sessionClose")], [1])
        [unsubscribed] = await client.request(
            ProtoOAUnsubscribeSpotsReq(ctidTraderAccountId=accountId, symbolId=[1] * 5000), "unsub"
        )
        self.assertEqual(unsubscribed.DESCRIPTOR.name, "ProtoOAUnsubscribeSpotsRes")

    async def test_hugeListsAreRefused(self) -> None:
        """300,000 ids (a 585 KiB frame) are refused with INVALID_REQUEST at
        once; the connection stays up."""
        self.simulator()
        client = await self.connect()
        accountId = await self.login(client)
        huge = [1] * 300_000
        for tag, request in [
            ("by-id", ProtoOASymbolByIdReq(ctidTraderAccountId=accountId, symbolId=huge)),
            ("spots", ProtoOASubscribeSpotsReq(ctidTraderAccountId=accountId, symbolId=huge)),
            ("depth", ProtoOASubscribeDepthQuotesReq(ctidTraderAccountId=accountId, symbolId=huge)),
            ("margin", ProtoOAExpectedMarginReq(ctidTraderAccountId=accountId, symbolId=1, volume=huge)),
        ]:
            [error] = await client.request(request, tag)
            self.assertEqual((error.DESCRIPTOR.name, error.errorCode), ("ProtoErrorRes", "INVALID_REQUEST"), tag)
            self.assertIn(f"at most {MAX_IDS}", error.description)
        self.assertIsNone(client.oversized)
        self.assertEqual(client.named(_SPOT), [])
        await self.stillServes(client, "after")

    async def test_unknownIdsAreNamedBriefly(self) -> None:
        self.simulator()
        client = await self.connect()
        accountId = await self.login(client)
        unknown = list(range(100_000, 100_000 + MAX_IDS))
        [error] = await client.request(ProtoOASymbolByIdReq(ctidTraderAccountId=accountId, symbolId=unknown), "by-id")
        self.assertEqual(error.errorCode, "SYMBOL_NOT_FOUND")
        self.assertLess(len(error.description), 200)
        self.assertIn(f"and {MAX_IDS - 10} more", error.description)


# --- 9. text that is not UTF-8 --------------------------------------------------------------------------------------


class TextTests(LoopbackTestCase):
    async def test_clientMsgIdNotUtf8(self) -> None:
        """Answered INVALID_REQUEST (without the id, which cannot be echoed);
        the connection stays up."""
        self.simulator()
        client = await self.connect()
        await self.login(client)
        before = len(client.messages)
        envelope = ProtoMessage(payloadType=Protobuf.get_type(ProtoOAVersionReq), payload=b"").SerializeToString()
        client.writeFrame(envelope + b"\x1a\x02\xff\xfe")  # field 3 (clientMsgId), 2 bytes
        await client.until(lambda: len(client.messages) > before)
        [error] = [Protobuf.extract(m) for m in client.messages[before:]]
        self.assertFalse(client.messages[before].HasField("clientMsgId"))
        self.assertEqual((error.DESCRIPTOR.name, error.errorCode), ("ProtoErrorRes", "INVALID_REQUEST"))
        self.assertIn("clientMsgId is not valid UTF-8", error.description)
        client.write(ProtoHeartbeatEvent())
        await self.stillServes(client, "after")

    async def test_requestTextNotUtf8(self) -> None:
        """A string field of a request that is not UTF-8 (an order's label)
        is answered INVALID_REQUEST naming the field; nothing is traded."""
        sim = self.simulator()
        client = await self.connect()
        accountId = await self.login(client)
        order = ProtoOANewOrderReq(
            ctidTraderAccountId=accountId, symbolId=1, orderType=ProtoOAOrderType.MARKET,
            tradeSide=ProtoOATradeSide.BUY, volume=100000,
        )
        self.assertEqual(ProtoOANewOrderReq.DESCRIPTOR.fields_by_name["label"].number, 16)
        labelTag = b"\x82\x01"  # field 16, length-delimited
        payload = order.SerializeToString() + labelTag + b"\x02\xc3\x28"
        envelope = ProtoMessage(payloadType=Protobuf.get_type(ProtoOANewOrderReq), payload=payload, clientMsgId="bad")
        client.writeFrame(envelope.SerializeToString())
        await client.until(lambda: bool(client.answers("bad")))
        [error] = [Protobuf.extract(m) for m in client.answers("bad")]
        self.assertEqual((error.DESCRIPTOR.name, error.errorCode), ("ProtoErrorRes", "INVALID_REQUEST"))
        self.assertIn("label", error.description)
        self.assertEqual(sim.accounts[accountId].orders, {})
        await self.stillServes(client, "after")


# --- 10. start-up options -------------------------------------------------------------------------------------------


class StartupTests(SynchronousTestCase):
    def test_optionsRejectNonFiniteAndNegativeTimes(self) -> None:
        for argv, option in [
            (["--idle-timeout", "-1"], "--idle-timeout"),
            (["--idle-timeout", "nan"], "--idle-timeout"),
            (["--idle-timeout", "inf"], "--idle-timeout"),
            (["--spot-interval", "nan"], "--spot-interval"),
            (["--spot-interval", "inf"], "--spot-interval"),
            (["--spot-interval", "0"], "--spot-interval"),
        ]:
            with self.assertRaises(usage.UsageError, msg=argv) as caught:
                Options().parseOptions(argv)
            self.assertIn(option, str(caught.exception))
        options = Options()
        options.parseOptions(["--idle-timeout", "0", "--spot-interval", "0.01"])
        self.assertEqual((options["idle-timeout"], options["spot-interval"]), (0.0, 0.01))

    def test_commandLineExitsWithUsageError(self) -> None:
        stderr = io.StringIO()
        self.patch(sys, "stderr", stderr)
        with self.assertRaises(SystemExit) as caught:
            simulatorMain(["--spot-interval", "nan", "--tls-port", "none", "--ws-port", "0"])
        self.assertEqual(caught.exception.code, 2)
        self.assertIn("error: --spot-interval must be a positive number of seconds, not nan", stderr.getvalue())

    def test_simulatorRejectsNonFiniteAndNegativeTimes(self) -> None:
        clock = Clock()
        cases: list[dict[str, Any]] = [
            dict(spotInterval=float("nan")),
            dict(spotInterval=float("inf")),
            dict(idleTimeout=-1.0),
            dict(idleTimeout=float("nan")),
            dict(heartbeatInterval=float("inf")),
            dict(requestsPerSecond=-1),
            dict(maxBufferedBytes=0),
        ]
        for options in cases:
            with self.assertRaises(ValueError, msg=options) as caught:
                Simulator(clock=clock, **options)
            self.assertIn(next(iter(options)), str(caught.exception))
        Simulator(clock=clock, idleTimeout=0, heartbeatInterval=None, requestsPerSecond=0)


class RawBytes(Protocol):
    """A client that records the bytes it receives and answers nothing."""

    def __init__(self) -> None:
        self.received = b""
        self.lostReason: Failure | None = None

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Failure = Failure(ConnectionError())) -> None:
        self.lostReason = reason


# --- the WebSocket server on the simulator's clock -----------------------------------------------------------------


class WebSocketClockTests(SynchronousTestCase):
    """The simulator's WebSocket server keeps every timer on its clock, so it
    runs in memory with a ``task.Clock``."""

    def setUp(self) -> None:
        self.globalCalls = set(reactor.getDelayedCalls())

    def assertNoGlobalTimers(self) -> None:
        self.assertEqual(set(reactor.getDelayedCalls()) - self.globalCalls, set())

    def test_simulatedServerOverWebSocket(self) -> None:
        server = SimulatedServer(transport="ws", spotInterval=0.5)
        client = server.connect(server.managedClient())
        self.assertEqual(type(client.factory.connection).__name__, "WebSocketProtocol")  # type: ignore[union-attr]
        sim = server.simulator
        accountId = sim.accountIds[0]
        server.resultOf(client.authorizeAccount(accountId, sim.accessToken))
        spots: list[Any] = []
        client.addListener(_SPOT, spots.append)
        server.resultOf(client.request("ProtoOASubscribeSpotsReq", ctidTraderAccountId=accountId, symbolId=[1]))
        server.advance(5)
        self.assertGreaterEqual(len(spots), 6)
        self.assertEqual([s.transport for s in sim.sessions], ["ws"])
        self.assertNoGlobalTimers()
        server.resultOf(client.stopService())
        self.assertNoGlobalTimers()

    def test_simulatedServerRefusesUnknownTransport(self) -> None:
        with self.assertRaises(ValueError):
            SimulatedServer(transport="udp")

    def rawConnection(self, **options: Any) -> tuple[Clock, Simulator, RawBytes, Any]:
        clock = Clock()
        sim = Simulator(clock=clock, **options)
        factory = sim.serverFactory("ws")
        client, server, pump = connectedServerAndClient(lambda: factory.buildProtocol(None), RawBytes, clock=clock)
        return clock, sim, client, pump

    def test_openingHandshakeDeadline(self) -> None:
        """A client that connects and never upgrades is dropped after
        ``openHandshakeTimeoutSeconds`` of the simulator's clock."""
        clock, sim, client, pump = self.rawConnection()
        clock.advance(9.9)
        pump.flush()
        self.assertIsNone(client.lostReason)
        clock.advance(0.2)
        pump.flush()
        self.assertIsNotNone(client.lostReason)
        self.assertEqual(sim.sessions, [])
        self.assertNoGlobalTimers()

    def test_closingHandshakeDeadline(self) -> None:
        """The simulator closes an idle connection; a client that never
        answers the close is dropped ``closeHandshakeTimeoutSeconds`` later."""
        clock, sim, client, pump = self.rawConnection(idleTimeout=5.0, heartbeatInterval=None)
        client.transport.write(  # type: ignore[union-attr]
            b"GET / HTTP/1.1\r\nHost: localhost:5036\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        pump.flush()
        self.assertTrue(client.received.startswith(b"HTTP/1.1 101 "), client.received)
        self.assertEqual(len(sim.sessions), 1)
        clock.advance(5.0)  # idle: the simulator sends its close
        pump.flush()
        self.assertEqual(client.received[-4:], b"\x88\x02\x03\xe8")  # a close frame, code 1000
        self.assertIsNone(client.lostReason)
        clock.advance(1.0)  # no answer: dropped
        pump.flush()
        self.assertIsNotNone(client.lostReason)
        self.assertEqual(sim.sessions, [])
        self.assertNoGlobalTimers()
