# -*- test-case-name: tests.test_trading,tests.test_trading_parts,tests.test_trading_session,tests.test_units -*-
"""Market data of one account: shared server subscriptions, quotes and order books.

* :class:`SharedSubscription` holds one server subscription (spots of a
  symbol, its depth, a live bar period, PnL changes) for any number of
  holders: the first holder subscribes, the last release unsubscribes, one
  request at a time. Subscriptions go through ``Client.request``, so the
  managed session records them and restores them after every reconnection;
  one that was already in place when the first holder came (made with the
  raw API) is left to its owner and never unsubscribed here.
* :class:`Quote` keeps a symbol's last bid and ask (the server sends only
  the sides that changed) and converts wire prices to Decimals through a
  small per-symbol cache: the hot path of every spot.
* :class:`Book` keeps a symbol's order book from the incremental depth
  events (quotes by id, deleted ids).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Callable

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..errors import ConnectionLostError, NotConnectedError, OpenApiError, RequestTimeout
from ..units import WIRE_PRICE_DIGITS, priceFromWire
from .events import BookLevel, OrderBook, bookLevel

__all__ = ["SharedSubscription", "Quote", "Book", "PRICE_CACHE_SIZE"]

#: Wire prices kept converted per symbol (cleared when full).
PRICE_CACHE_SIZE = 4096

#: Errors that mean a subscription is already as wanted.
_ALREADY = frozenset({"ALREADY_SUBSCRIBED", "NOT_SUBSCRIBED_TO_SPOTS", "NOT_SUBSCRIBED"})


class SharedSubscription:
    """One server subscription shared by holders (see the module docstring).

    :param name: what it is, for logs.
    :param subscribe: sends the subscription request.
    :param unsubscribe: sends the unsubscription request.
    :param heldElsewhere: whether the subscription is in place already,
        made outside this layer (checked when the first holder comes).
    :param whenReady: a Deferred firing when the client is ready again
        (a request whose outcome was lost is tried again then).
    """

    _log = Logger()

    def __init__(
        self,
        name: str,
        subscribe: Callable[[], Deferred[Any]],
        unsubscribe: Callable[[], Deferred[Any]],
        heldElsewhere: Callable[[], bool],
        whenReady: Callable[[], Deferred[Any]],
    ) -> None:
        self.name = name
        self._subscribe = subscribe
        self._unsubscribe = unsubscribe
        self._heldElsewhere = heldElsewhere
        self._whenReady = whenReady
        self.holders = 0
        #: subscribed on the server (by this layer or by its owner)
        self.active = False
        #: subscribed by this layer (so it may unsubscribe)
        self.owned = False
        self._busy = False
        self._waiters: list[Deferred[None]] = []
        self._error: Failure | None = None
        #: released for good (the trader stopped)
        self.closed = False

    def __repr__(self) -> str:
        return f"<SharedSubscription {self.name} holders={self.holders} active={self.active}>"

    def acquire(self) -> None:
        """One more holder; the first one subscribes.

        :raises RuntimeError: the subscription was released for good.
        """
        if self.closed:
            raise RuntimeError(f"{self.name}: the trader stopped")
        if self.holders == 0 and not self.active and not self._busy and self._heldElsewhere():
            self.active, self.owned = True, False
        self.holders += 1
        self._error = None
        self._sync()

    def release(self) -> None:
        """One holder less; the last one unsubscribes (what this layer
        subscribed). After :meth:`releaseAll`, releasing does nothing."""
        if self.holders <= 0:
            if self.closed:
                return
            raise RuntimeError(f"{self.name}: released more often than acquired")
        self.holders -= 1
        self._sync()

    def releaseAll(self) -> None:
        """Drop every holder (the trader stops): unsubscribe what this layer
        subscribed, and take no holder any more."""
        self.holders = 0
        self._sync()
        self.closed = True
        self._fire(Failure(NotConnectedError(f"{self.name}: the trader stopped")))

    def whenReady(self) -> Deferred[None]:
        """A Deferred firing once subscribed (or failing with why not)."""
        if self.active and not self._busy:
            return succeed(None)
        if self._error is not None:
            return Deferred.fromCoroutine(_raise(self._error))
        waiter: Deferred[None] = Deferred()
        self._waiters.append(waiter)
        return waiter

    def _fire(self, result: Failure | None) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if result is None:
                waiter.callback(None)
            else:
                waiter.errback(result)

    def _sync(self) -> None:
        if self._busy:
            return
        want = self.holders > 0
        if want == self.active:
            if want:
                self._fire(None)
            return
        if not want and not self.owned:
            self.active = False  # someone else's subscription: leave it
            return
        self._busy = True
        d = self._subscribe() if want else self._unsubscribe()
        d.addCallbacks(self._done, self._failed, callbackArgs=(want,), errbackArgs=(want,))

    def _done(self, _: Any, want: bool) -> None:
        self._busy = False
        self.active = self.owned = want
        self._sync()

    def _failed(self, failure: Failure, want: bool) -> None:
        self._busy = False
        error = failure.value
        if isinstance(error, OpenApiError) and error.errorCode in _ALREADY:
            self.active = want
            self.owned = want and self.owned
            self._sync()
            return
        if isinstance(error, (ConnectionLostError, RequestTimeout)) and not self.closed:
            # The outcome is unknown (or it was never sent): ask again once the
            # session is back (ALREADY_SUBSCRIBED counts as success then).
            self._log.info("{name}: {error}; trying again when the client is ready", name=self.name, error=str(error))
            self._busy = True

            def again(_: Any) -> None:
                self._busy = False
                self._sync()

            def gone(f: Failure) -> None:
                self._busy = False
                self._error = f
                self._fire(f)

            self._whenReady().addCallbacks(again, gone)
            return
        self._log.warn("{name} failed: {error}", name=self.name, error=str(error))
        if want:
            self._error = failure
            self._fire(failure)


async def _raise(failure: Failure) -> None:
    failure.raiseException()


class Quote:
    """A symbol's last quote and its price conversions (the spot hot path).

    :ivar bid: the last bid, wire integer (``0`` until known).
    :ivar ask: the last ask, wire integer (``0`` until known).
    :ivar digits: the symbol's price digits (the wire's five until known).
    :ivar last: the last ``ProtoOASpotEvent`` received, or ``None``.
    """

    __slots__ = ("symbolId", "name", "digits", "bid", "ask", "last", "callbacks", "_cache")

    def __init__(self, symbolId: int, name: str, digits: int | None) -> None:
        self.symbolId = symbolId
        self.name = name
        self.bid = 0
        self.ask = 0
        self.last: Any = None
        #: the callbacks of spot subscribers filtering on this symbol
        self.callbacks: list[Callable[[Any], Any]] = []
        self._cache: dict[int, Decimal] = {}
        self.digits = WIRE_PRICE_DIGITS
        self.setDigits(digits)

    def setDigits(self, digits: int | None) -> None:
        """Use the symbol's *digits* from now on (when its details load)."""
        self.digits = WIRE_PRICE_DIGITS if digits is None else digits
        self._cache = {}

    def price(self, wire: int) -> Decimal:
        """The Decimal of a wire price with the symbol's digits (cached)."""
        cache = self._cache
        value = cache.get(wire)
        if value is None:
            if len(cache) >= PRICE_CACHE_SIZE:
                cache.clear()
            value = cache[wire] = priceFromWire(wire, self.digits)
        return value

    def prices(self) -> tuple[Decimal | None, Decimal | None]:
        """The last bid and ask as Decimals (``None`` while unknown)."""
        return (self.price(self.bid) if self.bid else None, self.price(self.ask) if self.ask else None)


class Book:
    """A symbol's order book, kept from incremental depth events."""

    __slots__ = ("symbolId", "name", "digits", "_quotes")

    def __init__(self, symbolId: int, name: str, digits: int) -> None:
        self.symbolId = symbolId
        self.name = name
        self.digits = digits
        #: quote id -> (is a bid, wire price, size in cents)
        self._quotes: dict[int, tuple[bool, int, int]] = {}

    def __len__(self) -> int:
        return len(self._quotes)

    def apply(self, event: Any) -> tuple[tuple[BookLevel, ...], tuple[int, ...]]:
        """Apply a ``ProtoOADepthEvent``: remove its deleted ids, then add
        (or replace) its new quotes.

        :returns: the levels added and the ids deleted.
        """
        quotes = self._quotes
        deleted = tuple(int(i) for i in event.deletedQuotes)
        for quoteId in deleted:
            quotes.pop(quoteId, None)
        added = []
        for quote in event.newQuotes:
            isBid = quote.HasField("bid")
            price = int(quote.bid if isBid else quote.ask)
            if price <= 0 or quote.size < 0:
                continue  # a hostile or broken quote: not a price
            quotes[int(quote.id)] = (isBid, price, int(quote.size))
            added.append(bookLevel(price, int(quote.size), int(quote.id), self.digits))
        return tuple(added), deleted

    def clear(self) -> None:
        """Forget every quote (the connection was lost: the server sends the
        book again after the subscription is restored)."""
        self._quotes.clear()

    def snapshot(self) -> OrderBook:
        """The book now, best prices first."""
        bids = sorted(((p, s, i) for i, (b, p, s) in self._quotes.items() if b), key=lambda q: (-q[0], q[2]))
        asks = sorted(((p, s, i) for i, (b, p, s) in self._quotes.items() if not b), key=lambda q: (q[0], q[2]))
        digits = self.digits
        return OrderBook(
            self.symbolId,
            self.name,
            tuple(bookLevel(p, s, i, digits) for p, s, i in bids),
            tuple(bookLevel(p, s, i, digits) for p, s, i in asks),
        )
