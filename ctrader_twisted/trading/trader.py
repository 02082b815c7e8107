# -*- test-case-name: tests.test_trading,tests.test_trading_parts,tests.test_trading_session,tests.test_units -*-
"""The typed trading API of one account: :class:`Trader`.

A layer on top of :class:`~ctrader_twisted.Client`: it sends with
``Client.request`` and listens with ``Client.addListener`` (so the managed
session records its subscriptions and restores them after a reconnection),
and changes nothing of the raw API, which stays usable beside it.

::

    trader = Trader(client, accountId, accessToken)
    await trader.start()
    eurusd = await trader.symbols.get("EURUSD")
    fill = await trader.buy("EURUSD", lots=Decimal("0.1"), stopLossPips=20, takeProfitPips=40)
    print(fill.price, trader.account.position(fill.positionId))
    async with trader.stream(Spot, symbol="EURUSD") as spots:
        async for spot in spots:
            ...
"""

from __future__ import annotations

import weakref
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Callable, TypeVar, overload

from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..errors import InvalidMessageError, NotConnectedError
from ..units import Number, checkVolume, priceToWire, timeToWire, toDecimal, unitsFromVolume, volumeFromLots, volumeFromUnits
from ._shared import Shared
from .account import Account
from .events import (
    EVENT_TYPES,
    AccountChanged,
    AccountLogout,
    Bar,
    Depth,
    Execution,
    MarginCall,
    MarginChanged,
    OrderBook,
    OrderRejection,
    PnLChanged,
    Spot,
    SymbolChanged,
    TokenInvalidated,
    TraderUpdated,
    TrailingStop,
    newSpot,
)
from .market import Book, Quote, SharedSubscription
from .models import Order, OrderType, Period, Position, Side, TimeInForce, orderFromProto, positionFromProto
from .orders import Fill, OrderTracker, newClientOrderId
from .streams import EventStream, Subscription
from .symbols import Symbol, SymbolCatalogue

if TYPE_CHECKING:
    from ..client import Client

__all__ = ["Trader", "UNCHANGED"]

_E = TypeVar("_E")

#: ``amendPosition``'s default: keep the level as it is.
UNCHANGED: Any = type("Unchanged", (), {"__repr__": lambda self: "UNCHANGED"})()

#: Filters each event type accepts in :meth:`Trader.on` (besides ``symbol``
#: resolved to ``symbolId``).
_FILTERS: dict[type, frozenset[str]] = {
    Spot: frozenset({"symbol"}),
    Bar: frozenset({"symbol", "period"}),
    Depth: frozenset({"symbol"}),
    Execution: frozenset({"symbol", "orderId", "positionId", "type"}),
    OrderRejection: frozenset({"orderId", "positionId"}),
    MarginChanged: frozenset({"positionId"}),
    TrailingStop: frozenset({"positionId"}),
    AccountChanged: frozenset({"positionId", "orderId", "reason"}),
}

_LABEL_MAX, _COMMENT_MAX, _CLIENT_ORDER_ID_MAX = 100, 512, 50


class _Subscriber:
    __slots__ = ("callback", "filters")

    def __init__(self, callback: Callable[[Any], Any], filters: tuple[tuple[str, Any], ...]) -> None:
        self.callback = callback
        self.filters = filters


class Trader:
    """The typed API of one trading account (see the module docstring).

    :param client: a running :class:`~ctrader_twisted.Client` with a managed
        session (``clientId``/``clientSecret``): the session restores the
        account and its subscriptions after a reconnection.
    :param accountId: the ``ctidTraderAccountId``.
    :param accessToken: authorizes the account in :meth:`start`; without
        it, the account must already be authorized with
        ``client.authorizeAccount``.
    :param timeout: seconds an order may wait for its fill after its
        acceptance before its outcome counts as unknown (and is reconciled).

    Orders, symbol filters and streams need :meth:`start` first (before it,
    and after :meth:`stop`, they fail with
    :class:`~ctrader_twisted.errors.NotConnectedError` saying so).

    :ivar symbols: the account's :class:`~ctrader_twisted.trading.symbols.SymbolCatalogue`.
    :ivar account: the live :class:`~ctrader_twisted.trading.account.Account` model.
    """

    _log = Logger()

    def __init__(self, client: Client, accountId: int, accessToken: str | None = None, *, timeout: float = 30.0) -> None:
        if isinstance(accountId, bool) or not isinstance(accountId, int) or accountId <= 0:
            raise ValueError(f"accountId must be a positive integer, got {accountId!r}")
        if accessToken is not None and (not isinstance(accessToken, str) or not accessToken):
            raise ValueError("accessToken must be a non-empty string or None")
        self.client = client
        self.accountId = accountId
        self._accessToken = accessToken
        self.timeout = float(toDecimal(timeout, "timeout", positive=True))
        self.symbols = SymbolCatalogue(client, accountId)
        self.account = Account(self)
        self._quotes: dict[int, Quote] = {}
        self._books: dict[int, Book] = {}
        self._spotSubscriptions: dict[int, SharedSubscription] = {}
        self._depthSubscriptions: dict[int, SharedSubscription] = {}
        self._barSubscriptions: dict[tuple[int, int], SharedSubscription] = {}
        self._pnlSubscription: dict[None, SharedSubscription] = {}
        self._spotAny: list[Callable[[Any], Any]] = []
        self._subscribers: dict[type, list[_Subscriber]] = {}
        #: whether spot events have more to do than Spot callbacks (bars, account notifications)
        self._watchSpots = False
        self._trackers: set[OrderTracker] = set()
        self._streams: weakref.WeakSet[EventStream[Any]] = weakref.WeakSet()
        self._listening = False
        self.started = False
        self._starting: Shared[Trader] | None = None

    def __repr__(self) -> str:
        state = "started" if self.started else "stopped"
        return f"<Trader account={self.accountId} {state} symbols={len(self.symbols)}>"

    # --- life -----------------------------------------------------------------------------

    def start(self) -> Deferred[Trader]:
        """Authorize the account (when a token was given), load the symbol
        catalogue and the account's snapshot, and start following it.

        :returns: a Deferred firing with this trader, or failing with
            :class:`~ctrader_twisted.errors.NotConnectedError` (no managed
            session, or the account not authorized and no token given) or
            the failing request's error.
        """
        if self.started:
            return succeed(self)
        if self._starting is None or self._starting.done:
            self._starting = Shared(Deferred.fromCoroutine(self._start()))
        return self._starting.wait()

    async def _start(self) -> Trader:
        client = self.client
        if not client.session.managed:
            raise NotConnectedError(
                "the typed API needs a managed session: pass clientId and clientSecret to Client "
                "(or call authorizeApplication) so that reconnections restore the account and its subscriptions"
            )
        self._listen()
        try:
            if self._accessToken is not None:
                await client.authorizeAccount(self.accountId, self._accessToken)
            elif self.accountId not in client.session.accounts:
                raise NotConnectedError(
                    f"account {self.accountId} is not authorized on this client: give Trader its access token "
                    "or call client.authorizeAccount first"
                )
            else:
                await client.whenReady()
            await self.symbols.load()
            await self.account.reconcile()
        except BaseException:
            self._unlisten()
            raise
        self.started = True
        return self

    def stop(self) -> None:
        """Stop following the account: listeners removed, streams ended (a
        consumer awaiting one sees the end of the iteration), server
        subscriptions this trader made released, its ``Subscription`` s
        inert. Orders in flight still settle (by reconciliation, since their
        events are no longer followed)."""
        self.started = False
        self.account.releaseAll()
        self._subscribers.clear()
        self._watchSpots = False
        self._spotAny.clear()
        for quote in self._quotes.values():
            quote.callbacks.clear()
        for stream in list(self._streams):
            stream.close()
        for subscription in self._allSubscriptions():
            subscription.releaseAll()
        self._spotSubscriptions.clear()
        self._depthSubscriptions.clear()
        self._barSubscriptions.clear()
        self._pnlSubscription.clear()
        self._unlisten()

    def _notStarted(self) -> NotConnectedError | None:
        """Why the trader cannot act yet (not started, or stopped), or ``None``."""
        if self.started:
            return None
        return NotConnectedError(f"the trader of account {self.accountId} is not started: await trader.start() first")

    def _allSubscriptions(self) -> list[SharedSubscription]:
        return [
            *self._barSubscriptions.values(),
            *self._depthSubscriptions.values(),
            *self._spotSubscriptions.values(),
            *self._pnlSubscription.values(),
        ]

    _LISTENERS = (
        ("ProtoOASpotEvent", "_onSpot"),
        ("ProtoOADepthEvent", "_onDepth"),
        ("ProtoOAExecutionEvent", "_onExecution"),
        ("ProtoOAOrderErrorEvent", "_onOrderError"),
        ("ProtoOAMarginChangedEvent", "_onMarginChanged"),
        ("ProtoOAv1PnLChangeEvent", "_onPnL"),
        ("ProtoOATraderUpdatedEvent", "_onTraderUpdated"),
        ("ProtoOATrailingSLChangedEvent", "_onTrailingStop"),
        ("ProtoOAMarginCallTriggerEvent", "_onMarginCallTriggered"),
        ("ProtoOAMarginCallUpdateEvent", "_onMarginCallUpdated"),
        ("ProtoOASymbolChangedEvent", "_onSymbolChanged"),
        ("ProtoOAAccountDisconnectEvent", "_onAccountLogout"),
        ("ProtoOAAccountsTokenInvalidatedEvent", "_onTokenInvalidated"),
        ("ProtoOAAccountAuthRes", "_onAccountAuthorized"),
    )

    def _listen(self) -> None:
        if self._listening:
            return
        self._listening = True
        for payload, method in self._LISTENERS:
            self.client.addListener(payload, getattr(self, method))
        self.client.factory.addDisconnectionObserver(self._disconnected)

    def _unlisten(self) -> None:
        if not self._listening:
            return
        self._listening = False
        for payload, method in self._LISTENERS:
            self.client.removeListener(payload, getattr(self, method))
        self.client.factory.removeDisconnectionObserver(self._disconnected)

    def _disconnected(self, connection: Any, reason: Failure) -> None:
        self.account.disconnected()
        for book in self._books.values():
            book.clear()
        for tracker in list(self._trackers):
            tracker.connectionLost()

    # --- subscribing --------------------------------------------------------------------------

    @overload
    def on(self, eventType: type[_E], callback: Callable[[_E], Any], **filters: Any) -> Subscription: ...

    @overload
    def on(self, eventType: type[_E], callback: None = None, **filters: Any) -> Callable[[Callable[[_E], Any]], Subscription]: ...

    def on(self, eventType: type[_E], callback: Callable[[_E], Any] | None = None, **filters: Any) -> Any:
        """Call *callback* with every event of *eventType* that passes *filters*.

        Filters by event type: :class:`Spot` and :class:`Depth`: ``symbol``;
        :class:`Bar`: ``symbol`` and ``period`` (both required);
        :class:`Execution`: ``symbol``, ``orderId``, ``positionId``, ``type``;
        :class:`OrderRejection`: ``orderId``, ``positionId``;
        :class:`MarginChanged` and :class:`TrailingStop`: ``positionId``;
        :class:`AccountChanged`: ``positionId``, ``orderId``, ``reason``.
        ``symbol`` is a name (case-insensitive) or an id.

        Market data subscribes as needed and is released by
        :meth:`Subscription.cancel`: ``on(Spot, f, symbol=...)`` holds the
        symbol's spots, ``on(Depth, ...)`` its depth, ``on(Bar, ...)`` its
        live bars of that period, ``on(PnLChanged, ...)`` the PnL events.
        ``on(Spot, f)`` without a symbol gets the spots of every symbol
        subscribed, and holds none.

        Without *callback*, returns a decorator.

        :returns: a :class:`~ctrader_twisted.trading.streams.Subscription`.
        :raises UnknownSymbolError: an unknown symbol (with suggestions).
        :raises NotConnectedError: a symbol filter before :meth:`start`.
        :raises ValueError: an unknown event type or filter.
        """
        if callback is None:

            def decorate(function: Callable[[_E], Any]) -> Subscription:
                return self.on(eventType, function, **filters)

            return decorate
        if eventType not in EVENT_TYPES:
            raise ValueError(f"{eventType!r} is not an event type of the typed API")
        allowed = _FILTERS.get(eventType, frozenset())
        unknown = set(filters) - allowed
        if unknown:
            raise ValueError(
                f"{eventType.__name__} cannot be filtered by {', '.join(sorted(unknown))}"
                + (f" (its filters: {', '.join(sorted(allowed))})" if allowed else " (it has no filters)")
            )
        symbolId: int | None = None
        if "symbol" in filters:
            problem = self._notStarted()
            if problem is not None:
                raise problem
            symbolId = self.symbols.find(filters.pop("symbol")).id
        if eventType is Bar:
            if symbolId is None or "period" not in filters:
                raise ValueError("Bar subscriptions need a symbol and a period")
            filters["period"] = Period(filters["period"]) if not isinstance(filters["period"], str) else Period[filters["period"]]
        holds: list[SharedSubscription] = []
        if eventType is Spot:
            if symbolId is not None:
                holds.append(self._spotSubscription(symbolId))
                quote = self._quote(symbolId)
                quote.callbacks.append(callback)

                def remove() -> None:
                    _discard(quote.callbacks, callback)

            else:
                self._spotAny.append(callback)

                def remove() -> None:
                    _discard(self._spotAny, callback)

        else:
            if symbolId is not None:
                filters["symbolId"] = symbolId
            if eventType is Depth and symbolId is not None:
                holds.append(self._depthSubscription(symbolId))
            elif eventType is Bar:
                holds.append(self._spotSubscription(symbolId))  # type: ignore[arg-type]
                holds.append(self._barSubscription(symbolId, filters["period"]))  # type: ignore[arg-type]
            elif eventType is PnLChanged:
                holds.append(self._pnl())
            subscriber = _Subscriber(callback, tuple(sorted(filters.items())))
            subscribers = self._subscribers.setdefault(eventType, [])
            subscribers.append(subscriber)
            self._watchSpots = bool(self._subscribers.get(Bar) or self._subscribers.get(AccountChanged))

            def remove() -> None:
                _discard(subscribers, subscriber)
                if not subscribers and self._subscribers.get(eventType) is subscribers:
                    del self._subscribers[eventType]
                self._watchSpots = bool(self._subscribers.get(Bar) or self._subscribers.get(AccountChanged))

        for hold in holds:
            hold.acquire()

        def cancel() -> None:
            remove()
            for hold in reversed(holds):
                hold.release()

        def ready() -> Deferred[None]:
            from ._shared import gather

            return gather([hold.whenReady() for hold in holds]).addCallback(lambda _: None)

        return Subscription(cancel, ready)

    def stream(self, eventType: type[_E], *, maxQueued: int = 10_000, **filters: Any) -> EventStream[_E]:
        """An async iterator of the events :meth:`on` would deliver; it
        subscribes on first use and releases when closed.

        :raises UnknownSymbolError: an unknown symbol (checked at once).
        """
        if "symbol" in filters:
            problem = self._notStarted()
            if problem is not None:
                raise problem
            filters["symbol"] = self.symbols.find(filters["symbol"]).id

        def start(push: Callable[[Any], None]) -> Subscription:
            return self.on(eventType, push, **filters)

        stream: EventStream[_E] = EventStream(start, maxQueued)
        self._streams.add(stream)
        return stream

    def spots(self, symbol: str | int, *, maxQueued: int = 10_000) -> EventStream[Spot]:
        """``stream(Spot, symbol=symbol)``: ``async for spot in trader.spots("EURUSD")``."""
        return self.stream(Spot, symbol=symbol, maxQueued=maxQueued)

    def book(self, symbol: str | int) -> OrderBook:
        """The order book of a symbol as last received (empty without a depth
        subscription: hold one with ``on(Depth, ..., symbol=...)``)."""
        found = self.symbols.find(symbol)
        book = self._books.get(found.id)
        if book is None:
            return OrderBook(found.id, found.name, (), ())
        return book.snapshot()

    def quote(self, symbol: str | int) -> Spot | None:
        """The last quote of a symbol (``None`` before one arrived)."""
        found = self.symbols.find(symbol)
        quote = self._quotes.get(found.id)
        if quote is None or not (quote.bid or quote.ask):
            return None
        bid, ask = quote.prices()
        return newSpot(self.accountId, found.id, found.name, bid, ask, quote.last)

    def _quote(self, symbolId: int) -> Quote:
        quote = self._quotes.get(symbolId)
        if quote is None:
            facts = self.symbols.facts(symbolId)
            quote = self._quotes[symbolId] = Quote(symbolId, facts.name, facts.digits)
            if facts.digits is None and self.symbols.lookup(symbolId) is not None:
                self.symbols.get(symbolId).addCallbacks(lambda s: quote.setDigits(s.digits), lambda f: None)
        return quote

    def _shared(
        self,
        table: dict[Any, SharedSubscription],
        key: Any,
        what: str,
        request: tuple[str, dict[str, Any]],
        unrequest: tuple[str, dict[str, Any]],
        inSession: Callable[[Any], bool],
    ) -> SharedSubscription:
        """The shared subscription of *table* at *key*, made on first use:
        *request* and *unrequest* are ``(message name, fields)``;
        *inSession* tells, from the session's record of the account, whether
        it is in place already (made with the raw API)."""
        sub = table.get(key)
        if sub is None:
            request_ = self.client.request

            def held() -> bool:
                state = self.client.session.accounts.get(self.accountId)
                return state is not None and inSession(state)

            sub = table[key] = SharedSubscription(
                f"{what} on account {self.accountId}",
                lambda: request_(request[0], ctidTraderAccountId=self.accountId, **request[1]),
                lambda: request_(unrequest[0], ctidTraderAccountId=self.accountId, **unrequest[1]),
                held,
                self.client.whenReady,
            )
        return sub

    def _spotSubscription(self, symbolId: int) -> SharedSubscription:
        self._quote(symbolId)
        return self._shared(
            self._spotSubscriptions, symbolId, f"spots of {self.symbols.facts(symbolId).name}",
            ("ProtoOASubscribeSpotsReq", {"symbolId": [symbolId], "subscribeToSpotTimestamp": True}),
            ("ProtoOAUnsubscribeSpotsReq", {"symbolId": [symbolId]}),
            lambda state: symbolId in state.spots,
        )

    def _holdSpots(self, symbolId: int) -> None:
        self._spotSubscription(symbolId).acquire()

    def _releaseSpots(self, symbolId: int) -> None:
        sub = self._spotSubscriptions.get(symbolId)
        if sub is not None and sub.holders:
            sub.release()

    def _depthSubscription(self, symbolId: int) -> SharedSubscription:
        return self._shared(
            self._depthSubscriptions, symbolId, f"depth of {self.symbols.facts(symbolId).name}",
            ("ProtoOASubscribeDepthQuotesReq", {"symbolId": [symbolId]}),
            ("ProtoOAUnsubscribeDepthQuotesReq", {"symbolId": [symbolId]}),
            lambda state: symbolId in state.depth,
        )

    def _barSubscription(self, symbolId: int, period: int) -> SharedSubscription:
        key = (symbolId, int(period))
        fields = {"symbolId": symbolId, "period": int(period)}
        return self._shared(
            self._barSubscriptions, key, f"{Period(period).name} bars of {self.symbols.facts(symbolId).name}",
            ("ProtoOASubscribeLiveTrendbarReq", fields),
            ("ProtoOAUnsubscribeLiveTrendbarReq", fields),
            lambda state: key in state.trendbars,
        )

    def _pnl(self) -> SharedSubscription:
        return self._shared(
            self._pnlSubscription, None, "PnL changes",
            ("ProtoOAv1PnLChangeSubscribeReq", {}),
            ("ProtoOAv1PnLChangeUnSubscribeReq", {}),
            lambda state: bool(state.pnl),
        )

    # --- dispatching -------------------------------------------------------------------------

    def _emit(self, event: Any) -> None:
        """Deliver *event* to the subscribers of its type whose filters pass."""
        subscribers = self._subscribers.get(type(event))
        if not subscribers:
            return
        for subscriber in list(subscribers):
            for name, value in subscriber.filters:
                if getattr(event, name) != value:
                    break
            else:
                try:
                    subscriber.callback(event)
                except Exception:
                    self._log.failure("Exception in a {event} callback", event=type(event).__name__)

    def _onSpot(self, event: Any) -> None:
        # The hot path: one spot event, no more work than needed (a missing
        # side reads as 0: no price is 0).
        accountId = self.accountId
        if event.ctidTraderAccountId != accountId:
            return
        symbolId = event.symbolId
        quote = self._quotes.get(symbolId)
        if quote is None:
            quote = self._quote(symbolId)
        bid = event.bid
        if bid:
            quote.bid = bid
        else:
            bid = quote.bid
        ask = event.ask
        if ask:
            quote.ask = ask
        else:
            ask = quote.ask
        quote.last = event
        callbacks = quote.callbacks
        anyCallbacks = self._spotAny
        if callbacks or anyCallbacks:
            cache = quote._cache
            bidPrice = cache.get(bid) if bid else None
            if bidPrice is None and bid:
                bidPrice = quote.price(bid)
            askPrice = cache.get(ask) if ask else None
            if askPrice is None and ask:
                askPrice = quote.price(ask)
            spot = newSpot(accountId, symbolId, quote.name, bidPrice, askPrice, event)
            for callback in callbacks:
                try:
                    callback(spot)
                except Exception:
                    self._log.failure("Exception in a Spot callback")
            for callback in anyCallbacks:
                try:
                    callback(spot)
                except Exception:
                    self._log.failure("Exception in a Spot callback")
        if self._watchSpots:
            self._spotExtras(event, quote, bid)

    def _spotExtras(self, event: Any, quote: Quote, bid: int) -> None:
        """Live bars and account-model notifications of a spot event (only
        when someone subscribed to them)."""
        if Bar in self._subscribers and event.trendbar:
            for raw in event.trendbar:
                self._emit(Bar.fromProto(self.accountId, quote.symbolId, quote.name, quote.digits, raw, bid or None))
        if AccountChanged in self._subscribers and quote.symbolId in self.account._held:
            self._emit(AccountChanged(self.accountId, "quotes"))

    def _onDepth(self, event: Any) -> None:
        if event.ctidTraderAccountId != self.accountId:
            return
        symbolId = int(event.symbolId)
        book = self._books.get(symbolId)
        if book is None:
            quote = self._quote(symbolId)
            book = self._books[symbolId] = Book(symbolId, quote.name, quote.digits)
        added, deleted = book.apply(event)
        if Depth in self._subscribers:
            self._emit(Depth(self.accountId, symbolId, book.name, book.snapshot(), added, deleted, event))

    def _execution(self, event: Any) -> Execution:
        return Execution.fromProto(event, self.symbols)

    def _onExecution(self, event: Any) -> None:
        if event.ctidTraderAccountId != self.accountId:
            return
        execution = self._execution(event)
        changed = self.account.applyExecution(execution)
        for tracker in list(self._trackers):
            if tracker.matches(execution):
                tracker.execution(execution)
        self._emit(execution)
        if changed:
            self._emit(AccountChanged(self.accountId, "execution", execution.positionId, execution.orderId))

    def _onOrderError(self, event: Any) -> None:
        if event.ctidTraderAccountId == self.accountId:
            self._emit(OrderRejection.fromProto(event))

    def _deliver(self, typed: Any, changed: bool, reason: str, positionId: int | None = None) -> None:
        """Tell of a model change (when *changed*), then deliver *typed*."""
        if changed:
            self._emit(AccountChanged(self.accountId, reason, positionId))
        self._emit(typed)

    def _onMarginChanged(self, event: Any) -> None:
        if event.ctidTraderAccountId == self.accountId:
            typed = MarginChanged.fromProto(event)
            self._deliver(typed, self.account.applyMargin(typed), "margin", typed.positionId)

    def _onPnL(self, event: Any) -> None:
        if event.ctidTraderAccountId == self.accountId:
            self._emit(PnLChanged.fromProto(event))

    def _onTraderUpdated(self, event: Any) -> None:
        if event.ctidTraderAccountId == self.accountId:
            typed = TraderUpdated.fromProto(event)
            self._deliver(typed, self.account.applyTrader(typed), "balance")

    def _onTrailingStop(self, event: Any) -> None:
        if event.ctidTraderAccountId != self.accountId:
            return
        position = self.account.position(int(event.positionId))
        digits = self.symbols.facts(position.symbolId).digits if position is not None else None
        typed = TrailingStop.fromProto(event, digits)
        self._deliver(typed, self.account.applyTrailingStop(typed), "trailing", typed.positionId)

    def _onMarginCallTriggered(self, event: Any) -> None:
        if event.ctidTraderAccountId == self.accountId:
            self._emit(MarginCall.fromProto(event, True))

    def _onMarginCallUpdated(self, event: Any) -> None:
        if event.ctidTraderAccountId == self.accountId:
            self._emit(MarginCall.fromProto(event, False))

    def _onSymbolChanged(self, event: Any) -> None:
        if event.ctidTraderAccountId != self.accountId:
            return
        ids = tuple(int(i) for i in event.symbolId)

        def refreshed(_: Any) -> None:
            for symbolId in ids:
                quote = self._quotes.get(symbolId)
                if quote is not None:
                    facts = self.symbols.facts(symbolId)
                    quote.name = facts.name
                    quote.setDigits(facts.digits)
            self._emit(SymbolChanged(self.accountId, ids, event))

        def failed(failure: Failure) -> None:
            self._log.warn("Refreshing symbols {ids} failed: {error}", ids=ids, error=str(failure.value))

        self.symbols.refresh(ids).addCallbacks(refreshed, failed)

    def _onAccountLogout(self, event: Any) -> None:
        if event.ctidTraderAccountId == self.accountId:
            self.account.disconnected()
            self._emit(AccountLogout(self.accountId, event))

    def _onTokenInvalidated(self, event: Any) -> None:
        ids = tuple(int(i) for i in event.ctidTraderAccountIds)
        if self.accountId in ids:
            self.account.disconnected()
            self._emit(TokenInvalidated(ids, str(event.reason), event))

    def _onAccountAuthorized(self, event: Any) -> None:
        # Every (re)authorization of the account (a reconnection's restore, a
        # re-authorization after an account event): rebuild the model, since
        # executions may have been missed meanwhile.
        if event.ctidTraderAccountId != self.accountId or not self.started:
            return

        def failed(failure: Failure) -> None:
            self._log.warn("Reconciling account {account} failed: {error}", account=self.accountId, error=str(failure.value))

        self.account.reconcile().addErrback(failed)

    # --- orders ---------------------------------------------------------------------------------

    def _forgetTracker(self, tracker: OrderTracker) -> None:
        self._trackers.discard(tracker)

    def buy(self, symbol: str | int, **options: Any) -> Deferred[Fill]:
        """A market buy: :meth:`placeOrder` with ``side=Side.BUY``."""
        return self.placeOrder(symbol, Side.BUY, OrderType.MARKET, **options)

    def sell(self, symbol: str | int, **options: Any) -> Deferred[Fill]:
        """A market sell: :meth:`placeOrder` with ``side=Side.SELL``."""
        return self.placeOrder(symbol, Side.SELL, OrderType.MARKET, **options)

    def limitOrder(self, symbol: str | int, side: Side, price: Number, **options: Any) -> Deferred[Order]:
        """A limit order at *price*: :meth:`placeOrder`."""
        return self.placeOrder(symbol, side, OrderType.LIMIT, price=price, **options)

    def stopOrder(self, symbol: str | int, side: Side, price: Number, **options: Any) -> Deferred[Order]:
        """A stop order at *price*: :meth:`placeOrder`."""
        return self.placeOrder(symbol, side, OrderType.STOP, price=price, **options)

    def stopLimitOrder(self, symbol: str | int, side: Side, price: Number, limitPrice: Number, **options: Any) -> Deferred[Order]:
        """A stop-limit order: triggered at *price*, filled no worse than
        *limitPrice* (:meth:`placeOrder`)."""
        return self.placeOrder(symbol, side, OrderType.STOP_LIMIT, price=price, limitPrice=limitPrice, **options)

    def placeOrder(
        self,
        symbol: str | int,
        side: Side,
        type: OrderType = OrderType.MARKET,
        *,
        lots: Number | None = None,
        units: Number | None = None,
        price: Number | None = None,
        limitPrice: Number | None = None,
        stopLoss: Number | None = None,
        takeProfit: Number | None = None,
        stopLossPips: Number | None = None,
        takeProfitPips: Number | None = None,
        stopLossDistance: Number | None = None,
        takeProfitDistance: Number | None = None,
        trailingStopLoss: bool = False,
        timeInForce: TimeInForce | None = None,
        expiration: datetime | None = None,
        label: str | None = None,
        comment: str | None = None,
        clientOrderId: str | None = None,
        timeout: float | None = None,
    ) -> Deferred[Any]:
        """Place an order; the volume in *lots* or *units* (one of them).

        Protection: an absolute ``stopLoss``/``takeProfit`` price, or a
        distance from the entry in pips (``stopLossPips``) or as a price
        (``stopLossDistance``). A market order's absolute levels are sent as
        distances from the current quote (the server applies them from the
        fill price, as the Open API takes only relative levels on market
        orders).

        :param type: ``MARKET``, ``LIMIT``, ``STOP`` or ``STOP_LIMIT``.
        :param price: the limit price of a limit order, the stop price of a
            stop or stop-limit order.
        :param limitPrice: the worst price a stop-limit order fills at.
        :param expiration: an aware datetime: good till then (pending orders).
        :param clientOrderId: at most 50 characters; a unique one is made
            when omitted (the order is reconciled by it if its outcome is
            ever unknown).
        :param timeout: seconds from acceptance to the fill (the trader's by default).
        :returns: a Deferred firing with a
            :class:`~ctrader_twisted.trading.orders.Fill` (market orders) or
            the accepted :class:`~ctrader_twisted.trading.models.Order`
            (pending orders); failing with the server's typed error, with
            :class:`~ctrader_twisted.errors.InvalidVolumeError` (naming the
            nearest valid volumes), :class:`~ctrader_twisted.errors.UnknownSymbolError`
            or :class:`~ctrader_twisted.errors.InvalidMessageError` before
            anything is sent, or with
            :class:`~ctrader_twisted.errors.NotExecutedError` when an order of
            unknown outcome proved not executed (it is never sent twice).
        """
        arguments = dict(locals())
        del arguments["self"]
        problem = self._notStarted()
        if problem is not None:
            return fail(problem)
        return Deferred.fromCoroutine(self._placeOrder(**arguments))

    async def _placeOrder(self, symbol: str | int, side: Side, type: OrderType, **o: Any) -> Any:
        found = await self.symbols.get(symbol)
        try:
            side = Side(side)
            type = OrderType(type)
        except ValueError as e:
            raise InvalidMessageError(str(e)) from None
        if type not in (OrderType.MARKET, OrderType.LIMIT, OrderType.STOP, OrderType.STOP_LIMIT):
            raise InvalidMessageError(f"placeOrder takes MARKET, LIMIT, STOP or STOP_LIMIT orders, not {type.name}")
        volume = found.volume(lots=o["lots"], units=o["units"])
        fields: dict[str, Any] = {
            "ctidTraderAccountId": self.accountId,
            "symbolId": found.id,
            "orderType": int(type),
            "tradeSide": int(side),
            "volume": volume,
        }
        clientOrderId = o["clientOrderId"] if o["clientOrderId"] is not None else newClientOrderId()
        _text(clientOrderId, "clientOrderId", _CLIENT_ORDER_ID_MAX)
        fields["clientOrderId"] = clientOrderId
        for name, limit in (("label", _LABEL_MAX), ("comment", _COMMENT_MAX)):
            if o[name] is not None:
                fields[name] = _text(o[name], name, limit)
        pending = type != OrderType.MARKET
        if pending:
            if o["price"] is None:
                raise InvalidMessageError(f"a {type.name} order needs its price")
            entry: Decimal | None = found.roundPrice(o["price"])
            assert entry is not None
            fields["limitPrice" if type == OrderType.LIMIT else "stopPrice"] = float(entry)
            if type == OrderType.STOP_LIMIT:
                if o["limitPrice"] is None:
                    raise InvalidMessageError("a STOP_LIMIT order needs its limitPrice (the worst price it fills at)")
                worst = found.roundPrice(o["limitPrice"], "limitPrice")
                slippage = (worst - entry) * side.sign
                if slippage < 0:
                    raise InvalidMessageError(
                        f"the limit price {worst} of a {side.name} stop-limit must not be "
                        f"{'below' if side is Side.BUY else 'above'} its stop price {entry}"
                    )
                fields["slippageInPoints"] = int(slippage / found.pointSize)
            elif o["limitPrice"] is not None:
                raise InvalidMessageError("limitPrice is for STOP_LIMIT orders (give a LIMIT order's price as price)")
        else:
            if o["price"] is not None or o["limitPrice"] is not None:
                raise InvalidMessageError("a MARKET order takes no price")
            quote = self._quotes.get(found.id)
            wire = (quote.ask if side is Side.BUY else quote.bid) if quote is not None else 0
            entry = found.price(wire) if wire else None
        self._protection(found, side, entry, pending, o, fields)
        if o["trailingStopLoss"]:
            if "stopLoss" not in fields and "relativeStopLoss" not in fields:
                raise InvalidMessageError("a trailing stop loss needs a stop loss")
            fields["trailingStopLoss"] = True
        if o["timeInForce"] is not None:
            fields["timeInForce"] = int(TimeInForce(o["timeInForce"]))
        if o["expiration"] is not None:
            if not pending:
                raise InvalidMessageError("an expiration is for pending orders")
            expires = timeToWire(o["expiration"], "expiration")
            if expires <= int(self.client.clock.seconds() * 1000):
                raise InvalidMessageError(f"the expiration {o['expiration']} is in the past")
            fields["expirationTimestamp"] = expires
            fields["timeInForce"] = int(TimeInForce.GOOD_TILL_DATE)
        timeout = self.timeout if o["timeout"] is None else float(toDecimal(o["timeout"], "timeout", positive=True))
        tracker = OrderTracker(self, "pending" if pending else "market", clientOrderId, unitsFromVolume(volume), timeout)
        self._trackers.add(tracker)
        return await tracker.send(self.client.request("ProtoOANewOrderReq", **fields))

    def _protection(self, symbol: Symbol, side: Side, entry: Decimal | None, pending: bool, o: dict[str, Any],
                    fields: dict[str, Any]) -> None:
        """Put the stop loss and take profit of an order in *fields*, checked."""
        for kind, sign in (("stopLoss", -1), ("takeProfit", 1)):
            absolute, pips, distance = o[kind], o[f"{kind}Pips"], o[f"{kind}Distance"]
            given = [v for v in (absolute, pips, distance) if v is not None]
            if len(given) > 1:
                raise InvalidMessageError(f"give one of {kind}, {kind}Pips and {kind}Distance")
            if not given:
                continue
            if absolute is not None:
                level = symbol.roundPrice(absolute, kind)
                if entry is not None and (level - entry) * side.sign * sign <= 0:
                    where = "below" if side.sign * sign > 0 else "above"
                    raise InvalidMessageError(f"the {kind} {level} of a {side.name} must be {where} its entry price {entry}")
                if pending:
                    fields[kind] = float(level)
                    continue
                if entry is None:
                    raise InvalidMessageError(
                        f"an absolute {kind} on a market order needs a quote of {symbol.name}: "
                        f"subscribe to its spots first, or give {kind}Pips or {kind}Distance"
                    )
                span = abs(level - entry)
            elif pips is not None:
                span = symbol.distance(pips)
            else:
                span = symbol.roundPrice(distance, f"{kind}Distance")
            relative = priceToWire(span, f"{kind} distance")
            fields["relativeStopLoss" if kind == "stopLoss" else "relativeTakeProfit"] = relative

    def amendOrder(
        self,
        orderId: int,
        *,
        price: Number | None = None,
        limitPrice: Number | None = None,
        lots: Number | None = None,
        units: Number | None = None,
        stopLoss: Number | None = None,
        takeProfit: Number | None = None,
        expiration: datetime | None = None,
        trailingStopLoss: bool | None = None,
    ) -> Deferred[Order]:
        """Change a pending order; what is not given stays.

        :returns: a Deferred firing with the order as replaced, or failing
            with the server's typed error (``ORDER_NOT_FOUND``: a
            :class:`~ctrader_twisted.errors.NotFoundError`), or with an
            error naming a bad argument before anything is sent.
        """
        arguments = dict(locals())
        del arguments["self"]
        problem = self._notStarted()
        if problem is not None:
            return fail(problem)
        return Deferred.fromCoroutine(self._amendOrder(**arguments))

    async def _amendOrder(self, orderId: int, **o: Any) -> Order:
        order = self.account.order(orderId)
        if order is None:
            raise InvalidMessageError(f"order {orderId} is not a pending order of account {self.accountId}")
        symbol = await self.symbols.get(order.symbolId)
        fields: dict[str, Any] = {"ctidTraderAccountId": self.accountId, "orderId": orderId}
        if o["lots"] is not None or o["units"] is not None:
            fields["volume"] = symbol.volume(lots=o["lots"], units=o["units"])
        if o["price"] is not None:
            fields["limitPrice" if order.type == OrderType.LIMIT else "stopPrice"] = float(symbol.roundPrice(o["price"]))
        if o["limitPrice"] is not None:
            if order.type != OrderType.STOP_LIMIT:
                raise InvalidMessageError("limitPrice is for stop-limit orders")
            stop = symbol.roundPrice(o["price"]) if o["price"] is not None else order.stopPrice
            limit = symbol.roundPrice(o["limitPrice"], "limitPrice")
            fields["slippageInPoints"] = int(abs(limit - stop) / symbol.pointSize)  # type: ignore[operator]
        for name in ("stopLoss", "takeProfit"):
            if o[name] is not None:
                fields[name] = float(symbol.roundPrice(o[name], name))
        if o["expiration"] is not None:
            fields["expirationTimestamp"] = timeToWire(o["expiration"], "expiration")
        if o["trailingStopLoss"] is not None:
            fields["trailingStopLoss"] = bool(o["trailingStopLoss"])
        event = await self.client.request("ProtoOAAmendOrderReq", **fields)
        return orderFromProto(event.order, self.accountId, self.symbols)

    def cancelOrder(self, orderId: int) -> Deferred[Order]:
        """Cancel a pending order.

        :returns: a Deferred firing with the cancelled order, or failing
            with the server's typed error (``ORDER_NOT_FOUND``...).
        """

        def cancelled(event: Any) -> Order:
            return orderFromProto(event.order, self.accountId, self.symbols)

        problem = self._notStarted()
        if problem is not None:
            return fail(problem)
        return self.client.request("ProtoOACancelOrderReq", ctidTraderAccountId=self.accountId, orderId=orderId).addCallback(
            cancelled
        )

    def amendPosition(
        self,
        positionId: int,
        *,
        stopLoss: Number | None = UNCHANGED,
        takeProfit: Number | None = UNCHANGED,
        trailingStopLoss: bool | None = None,
    ) -> Deferred[Position]:
        """Set a position's stop loss and take profit: a price, ``None`` to
        remove it, or leave it out to keep it (the server removes a level a
        request leaves out: the helper sends the current one).

        :returns: a Deferred firing with the position as amended.
        """
        problem = self._notStarted()
        if problem is not None:
            return fail(problem)
        return Deferred.fromCoroutine(self._amendPosition(positionId, stopLoss, takeProfit, trailingStopLoss))

    async def _amendPosition(self, positionId: int, stopLoss: Any, takeProfit: Any, trailingStopLoss: bool | None) -> Position:
        position = self.account.position(positionId)
        if position is None:
            raise InvalidMessageError(f"position {positionId} is not an open position of account {self.accountId}")
        symbol = await self.symbols.get(position.symbolId)
        fields: dict[str, Any] = {"ctidTraderAccountId": self.accountId, "positionId": positionId}
        for name, value, current in (("stopLoss", stopLoss, position.stopLoss), ("takeProfit", takeProfit, position.takeProfit)):
            level = current if value is UNCHANGED else None if value is None else symbol.roundPrice(value, name)
            if level is not None:
                fields[name] = float(level)
        if trailingStopLoss is not None:
            fields["trailingStopLoss"] = bool(trailingStopLoss)
        event = await self.client.request("ProtoOAAmendPositionSLTPReq", **fields)
        return positionFromProto(event.position, self.accountId, self.symbols)

    def closePosition(self, positionId: int, *, lots: Number | None = None, units: Number | None = None,
                      timeout: float | None = None) -> Deferred[Fill]:
        """Close a position, in full (no volume given) or in part.

        :returns: a Deferred firing with the :class:`~ctrader_twisted.trading.orders.Fill`
            of the closing order (``closed``: what it realized), or failing
            with the server's typed error; an outcome made unknown by a lost
            connection is reconciled from the position's deals.
        """
        problem = self._notStarted()
        if problem is not None:
            return fail(problem)
        return Deferred.fromCoroutine(self._closePosition(positionId, lots, units, timeout))

    async def _closePosition(self, positionId: int, lots: Any, units: Any, timeout: float | None) -> Fill:
        position = self.account.position(positionId)
        if position is None:
            raise InvalidMessageError(f"position {positionId} is not an open position of account {self.accountId}")
        symbol = await self.symbols.get(position.symbolId)
        held = volumeFromUnits(position.units)
        if lots is None and units is None:
            volume = held
        else:
            volume = volumeFromLots(lots, symbol.spec.lotSize) if lots is not None else volumeFromUnits(units)
            if volume > held:
                raise InvalidMessageError(f"cannot close {unitsFromVolume(volume)} units of a position of {position.units}")
            if volume != held:
                spec = symbol.spec
                checkVolume(volume, spec.minVolume, spec.maxVolume, spec.stepVolume, spec.lotSize, symbol.name)
        limit = self.timeout if timeout is None else float(toDecimal(timeout, "timeout", positive=True))
        tracker = OrderTracker(self, "close", None, unitsFromVolume(volume), limit, positionId=positionId)
        self._trackers.add(tracker)
        request = self.client.request("ProtoOAClosePositionReq", ctidTraderAccountId=self.accountId, positionId=positionId,
                                      volume=volume)
        return await tracker.send(request)  # type: ignore[no-any-return]


def _discard(items: list[Any], item: Any) -> None:
    try:
        items.remove(item)
    except ValueError:
        pass


def _text(value: Any, name: str, limit: int) -> str:
    if not isinstance(value, str):
        raise InvalidMessageError(f"{name} must be a string, got {value!r}")
    if len(value) > limit:
        raise InvalidMessageError(f"{name} is {len(value)} characters long; the server takes {limit} at most")
    return value

