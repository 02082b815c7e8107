"""The typed layer's parts alone: shared subscriptions, streams, books, quotes."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from twisted.internet.defer import Deferred, ensureDeferred, fail, succeed
from twisted.trial.unittest import SynchronousTestCase

from ctrader_twisted.errors import NotFoundError, OpenApiError, OutcomeUnknownError
from ctrader_twisted.messages.OpenApiMessages_pb2 import ProtoOADepthEvent
from ctrader_twisted.messages.OpenApiModelMessages_pb2 import ProtoOADepthQuote
from ctrader_twisted.trading.market import PRICE_CACHE_SIZE, Book, Quote, SharedSubscription
from ctrader_twisted.trading.streams import EventStream, Subscription


class Server:
    """Answers the subscription requests as told."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.answers: list[Any] = []
        self.ready: list[Deferred[Any]] = []

    def answer(self, what: str) -> Deferred[Any]:
        self.calls.append(what)
        result = self.answers.pop(0) if self.answers else None
        if isinstance(result, Deferred):
            return result
        if isinstance(result, Exception):
            return fail(result)
        return succeed(result)

    def whenReady(self) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.ready.append(d)
        return d

    def shared(self, heldElsewhere: bool = False) -> SharedSubscription:
        return SharedSubscription(
            "test", lambda: self.answer("subscribe"), lambda: self.answer("unsubscribe"), lambda: heldElsewhere,
            self.whenReady,
        )


class SharedSubscriptionTests(SynchronousTestCase):
    def test_firstSubscribesLastUnsubscribes(self) -> None:
        server = Server()
        sub = server.shared()
        sub.acquire()
        sub.acquire()
        self.assertIsNone(self.successResultOf(sub.whenReady()))
        sub.release()
        self.assertEqual(server.calls, ["subscribe"])
        sub.release()
        self.assertEqual(server.calls, ["subscribe", "unsubscribe"])
        self.assertRaises(RuntimeError, sub.release)

    def test_oneRequestAtATime(self) -> None:
        """A release while the subscription is in flight unsubscribes after it;
        an acquire meanwhile subscribes again after that."""
        server = Server()
        pending: Deferred[Any] = Deferred()
        server.answers = [pending]
        sub = server.shared()
        sub.acquire()
        ready = sub.whenReady()
        sub.release()
        sub.acquire()
        self.assertEqual(server.calls, ["subscribe"])
        pending.callback(None)
        self.assertEqual(server.calls, ["subscribe"])  # wanted and in place
        self.successResultOf(ready)
        sub.release()
        self.assertEqual(server.calls, ["subscribe", "unsubscribe"])

    def test_alreadySubscribedIsSuccess(self) -> None:
        server = Server()
        server.answers = [OpenApiError("ALREADY_SUBSCRIBED")]
        sub = server.shared()
        sub.acquire()
        self.successResultOf(sub.whenReady())
        sub.release()
        self.assertEqual(server.calls, ["subscribe"])  # not ours: not unsubscribed

    def test_heldElsewhereIsLeftAlone(self) -> None:
        server = Server()
        sub = server.shared(heldElsewhere=True)
        sub.acquire()
        self.successResultOf(sub.whenReady())
        sub.release()
        self.assertEqual(server.calls, [])

    def test_lostOutcomeIsAskedAgainWhenReady(self) -> None:
        server = Server()
        server.answers = [OutcomeUnknownError("lost")]
        sub = server.shared()
        sub.acquire()
        ready = sub.whenReady()
        self.assertNoResult(ready)
        self.assertEqual(len(server.ready), 1)
        server.ready[0].callback(None)
        self.assertEqual(server.calls, ["subscribe", "subscribe"])
        self.successResultOf(ready)

    def test_refusalFailsTheWaiters(self) -> None:
        server = Server()
        server.answers = [NotFoundError("SYMBOL_NOT_FOUND")]
        sub = server.shared()
        sub.acquire()
        self.failureResultOf(sub.whenReady(), NotFoundError)
        sub.release()
        sub.acquire()  # asked again by a new holder
        self.assertEqual(server.calls, ["subscribe", "subscribe"])

    def test_releaseAll(self) -> None:
        server = Server()
        sub = server.shared()
        sub.acquire()
        sub.acquire()
        sub.releaseAll()
        self.assertEqual(server.calls, ["subscribe", "unsubscribe"])
        sub.release()  # a holder's late cancel: nothing
        self.assertRaises(RuntimeError, sub.acquire)


class StreamTests(SynchronousTestCase):
    def stream(self, maxQueued: int = 3) -> tuple[EventStream[int], list[Any], list[str]]:
        pushes: list[Any] = []
        log: list[str] = []

        def start(push: Any) -> Subscription:
            pushes.append(push)
            log.append("started")
            return Subscription(lambda: log.append("cancelled"), lambda: succeed(None))

        return EventStream(start, maxQueued), pushes, log

    def test_startsOnFirstUseAndDropsTheOldest(self) -> None:
        stream, pushes, log = self.stream()
        self.assertEqual(log, [])
        first = stream.__anext__().deferred
        self.assertEqual(log, ["started"])
        for value in range(6):
            pushes[0](value)
        self.assertEqual(self.successResultOf(first), 0)
        got = [self.successResultOf(stream.__anext__().deferred) for _ in range(3)]
        self.assertEqual(got, [3, 4, 5])
        self.assertEqual(stream.dropped, 2)
        stream.close()
        stream.close()
        self.assertEqual(log, ["started", "cancelled"])
        self.failureResultOf(stream.__anext__().deferred, StopAsyncIteration)

    def test_closeEndsAWaitingConsumer(self) -> None:
        stream, pushes, log = self.stream()
        got: list[int] = []

        async def consume() -> None:
            async for value in stream:
                got.append(value)

        d = ensureDeferred(consume())
        pushes[0](7)
        stream.close()
        self.successResultOf(d)
        self.assertEqual(got, [7])

    def test_garbageCollectionReleases(self) -> None:
        stream, pushes, log = self.stream()
        stream.whenReady()
        del stream
        import gc

        gc.collect()
        self.assertEqual(log, ["started", "cancelled"])

    def test_badQueueSize(self) -> None:
        self.assertRaises(ValueError, EventStream, lambda push: None, 0)


class BookAndQuoteTests(SynchronousTestCase):
    def test_incrementalBook(self) -> None:
        book = Book(1, "EURUSD", 5)
        book.apply(ProtoOADepthEvent(ctidTraderAccountId=1, symbolId=1, newQuotes=[
            ProtoOADepthQuote(id=1, size=100_000, bid=114800), ProtoOADepthQuote(id=2, size=200_000, bid=114810),
            ProtoOADepthQuote(id=3, size=300_000, ask=114820)]))
        added, deleted = book.apply(ProtoOADepthEvent(ctidTraderAccountId=1, symbolId=1, deletedQuotes=[2], newQuotes=[
            ProtoOADepthQuote(id=4, size=50_000, ask=114815)]))
        self.assertEqual(deleted, (2,))
        self.assertEqual([level.quoteId for level in added], [4])
        snapshot = book.snapshot()
        self.assertEqual([(b.price, b.units) for b in snapshot.bids], [(Decimal("1.14800"), Decimal(1000))])
        self.assertEqual([a.price for a in snapshot.asks], [Decimal("1.14815"), Decimal("1.14820")])
        self.assertEqual(snapshot.spread, Decimal("0.00015"))
        self.assertEqual(snapshot.units("asks"), Decimal(3500))
        self.assertRaises(ValueError, snapshot.units, "both")
        book.clear()
        self.assertEqual(book.snapshot().bids, ())

    def test_priceCacheIsBounded(self) -> None:
        quote = Quote(1, "EURUSD", 5)
        for wire in range(100_000, 100_000 + PRICE_CACHE_SIZE + 10):
            self.assertEqual(quote.price(wire), Decimal(wire) / 100000)
        self.assertLessEqual(len(quote._cache), PRICE_CACHE_SIZE)
        quote.setDigits(2)
        self.assertEqual(quote.price(438906000), Decimal("4389.06"))
