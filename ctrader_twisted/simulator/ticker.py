# -*- test-case-name: tests.test_simulator_memory -*-
"""The market clock: one market step every ``spotInterval`` while anyone is connected.

A step (:meth:`Ticker.tick`) walks every symbol's price, rolls the live
trend bars the connections subscribe to, refreshes the books of the symbols
whose depth is subscribed, streams the changes to the subscribed
connections (:func:`publish`), lets every account with orders or
positions react to the move (:func:`.execution.processTick`), and sends the
PnL subscriptions their changes (:func:`publishPnL`). A symbol whose market
is closed (``marketHours``) stays still.

One bad state never stops the market: publishing to each connection,
processing each account and the PnL of each connection are contained apart.
A failure is logged with its traceback once (and its recovery once), the
step goes on for everyone else, and the next step tries again.

A connection whose client does not read is paused by its transport
(:class:`~.session.Session` is its producer): its spot and depth events are
coalesced, and :func:`publishCoalesced` sends the latest state when it
resumes.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any, Callable

from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from ..messages.OpenApiMessages_pb2 import ProtoOADepthEvent, ProtoOASpotEvent, ProtoOAv1PnLChangeEvent
from ..messages.OpenApiModelMessages_pb2 import ProtoOATrendbarPeriod
from .execution import processTick, unrealizedTotals

if TYPE_CHECKING:
    from .server import Simulator
    from .session import Session

__all__ = ["Ticker", "publish", "publishCoalesced", "publishPnL"]

_log = Logger()


class _Containment:
    """Runs one part of a market step for one party (a connection, an
    account), so that its failure stays its own.

    The first failure of a party is logged with its traceback; while it keeps
    failing nothing more is logged, and its first success after that is.
    Parties are held weakly (a closed connection is forgotten).
    """

    def __init__(self) -> None:
        self._failing: weakref.WeakSet[Any] = weakref.WeakSet()

    def run(self, party: Any, what: str, function: Callable[..., None], *args: Any) -> None:
        try:
            function(*args)
        except Exception:
            if party not in self._failing:
                self._failing.add(party)
                _log.failure(
                    "Market step: {what} failed for {party}; contained (the market goes on for everyone "
                    "else; logged once until it recovers)",
                    what=what,
                    party=party,
                )
        else:
            if party in self._failing:
                self._failing.discard(party)
                _log.info("Market step: {what} works again for {party}", what=what, party=party)


class Ticker:
    """Runs the market steps of one simulator on its clock.

    The simulator starts it when a connection opens and stops it when the
    last one closes; the first step comes ``spotInterval`` after a start.
    """

    def __init__(self, simulator: Simulator) -> None:
        self.simulator = simulator
        self._loop: LoopingCall | None = None
        self._contained = _Containment()

    def start(self) -> None:
        """Take a step every ``spotInterval`` from now on (nothing if running)."""
        if self._loop is None:
            self._loop = LoopingCall(self.tick)
            self._loop.clock = self.simulator.clock
            self._loop.start(self.simulator.spotInterval, now=False)

    def stop(self) -> None:
        """Take no more steps (nothing if stopped)."""
        if self._loop is not None:
            if self._loop.running:
                self._loop.stop()
            self._loop = None

    def tick(self) -> None:
        """One market step: walk prices, roll bars, refresh books, publish, trade.

        Never raises: a failure in the market itself is logged and the step
        skipped; one connection's or one account's failure is contained (see
        the module docstring).
        """
        self._contained.run(self.simulator.market, "the market", self._step)

    def _step(self) -> None:
        sim = self.simulator
        market = sim.market
        minute = int(sim.clock.seconds()) // 60
        periods: dict[int, set[ProtoOATrendbarPeriod]] = {}
        depthSymbols: set[int] = set()
        for session in sim.sessions:
            for _, symbolId, period in session.trendbars:
                periods.setdefault(symbolId, set()).add(period)
            for symbolIds in session.depth.values():
                depthSymbols.update(symbolIds)
        changed: dict[int, tuple[bool, bool]] = {}
        newBooks: dict[int, list[int]] = {}
        for symbolId, state in market.symbols.items():
            bid, ask = state.bid, state.ask
            if not sim.marketOpen(symbolId):
                changed[symbolId] = (False, False)  # a closed market stays still
                continue
            state.walk(market.rng)
            state.updateBars(minute, periods.get(symbolId, set()))
            changed[symbolId] = (state.bid != bid, state.ask != ask)
            if symbolId in depthSymbols:
                newBooks[symbolId] = market.refreshBook(state)
            elif state.book:
                state.book = []
        publish(sim, changed, newBooks, self._contained.run)
        for account in list(sim.accounts.values()):
            if account.orders or account.positions:
                self._contained.run(account, "order and position processing", processTick, sim, account)
        publishPnL(sim, self._contained.run)


def publishPnL(simulator: Simulator, run: Callable[..., None] | None = None) -> None:
    """Send ``ProtoOAv1PnLChangeEvent`` to the PnL subscriptions whose
    account's unrealized profit changed since the last one they got.

    :param run: runs the PnL of one connection, as for :func:`publish`.
    """
    for session in list(simulator.sessions):
        (run or _run)(session, "PnL changes", _publishPnLTo, simulator, session)


def _publishPnLTo(simulator: Simulator, session: Session) -> None:
    for accountId, last in list(session.pnl.items()):
        account = simulator.accounts.get(accountId)
        if account is None:
            continue
        totals = unrealizedTotals(simulator, account)
        if totals == last:
            continue
        session.pnl[accountId] = totals
        session.send(
            ProtoOAv1PnLChangeEvent(
                ctidTraderAccountId=accountId, grossUnrealizedPnL=totals[0], netUnrealizedPnL=totals[1], moneyDigits=2
            )
        )


def _run(party: Any, what: str, function: Callable[..., None], *args: Any) -> None:
    function(*args)


def publish(
    simulator: Simulator,
    changed: dict[int, tuple[bool, bool]],
    newBooks: dict[int, list[int]],
    run: Callable[..., None] = _run,
) -> None:
    """Stream one market step to the subscribed connections.

    A spot subscription gets an event when its bid or ask changed or when it
    has live trend bars (carried in the event); a depth subscription gets
    the new book and the ids of the quotes it replaced. A paused connection
    (its client does not read) gets neither: they are coalesced.

    :param changed: symbol id to ``(bidChanged, askChanged)``.
    :param newBooks: symbol id to the ids of the quotes the new book replaced.
    :param run: runs the publishing of one connection,
        ``run(session, what, function, *args)`` (the ticker contains failures
        there); by default it just calls *function*.
    """
    now = simulator.nowMs()
    for session in list(simulator.sessions):
        run(session, "publishing", _publishTo, simulator, session, now, changed, newBooks)


def _publishTo(
    simulator: Simulator,
    session: Session,
    now: int,
    changed: dict[int, tuple[bool, bool]],
    newBooks: dict[int, list[int]],
) -> None:
    """One market step's events for one connection."""
    market = simulator.market
    for accountId, symbolIds in list(session.spots.items()):
        for symbolId in list(symbolIds):
            bid, ask = changed.get(symbolId, (False, False))
            periods = _livePeriods(session, accountId, symbolId)
            if not (bid or ask or periods):
                continue
            if session.paused:
                session.coalesceSpot(accountId, symbolId)
                continue
            session.send(spotEvent(simulator, session, accountId, symbolId, now, bid, ask, periods))
    for accountId, symbolIds in list(session.depth.items()):
        for symbolId in list(symbolIds):
            if symbolId not in newBooks:
                continue
            if session.paused:
                session.coalesceDepth(accountId, symbolId, newBooks[symbolId])
                continue
            state = market.symbols[symbolId]
            session.send(
                ProtoOADepthEvent(
                    ctidTraderAccountId=accountId,
                    symbolId=symbolId,
                    newQuotes=state.book,
                    deletedQuotes=newBooks[symbolId],
                )
            )


def _livePeriods(session: Session, accountId: int, symbolId: int) -> list[ProtoOATrendbarPeriod]:
    """The periods of the live trend bars *session* subscribes to for one symbol of one account."""
    return [p for (a, s, p) in session.trendbars if a == accountId and s == symbolId]


def spotEvent(
    simulator: Simulator,
    session: Session,
    accountId: int,
    symbolId: int,
    now: int,
    bid: bool,
    ask: bool,
    periods: list[ProtoOATrendbarPeriod] | None = None,
) -> ProtoOASpotEvent:
    """The spot event of one subscription: the prices asked for, and the live
    trend bars *session* subscribes to for the symbol.

    :param periods: those bars' periods, if the caller has them already.
    """
    state = simulator.market.symbols[symbolId]
    event = state.spotEvent(accountId, now, bid, ask)
    if periods is None:
        periods = _livePeriods(session, accountId, symbolId)
    for period in sorted(periods):
        bar = state.liveBars.get(period)
        if bar is not None:
            event.trendbar.append(bar.toProto())
    return event


def publishCoalesced(simulator: Simulator, session: Session) -> None:
    """*session*'s transport resumed: send the latest state of every
    subscription whose events were coalesced while it was paused.

    A spot event carries both prices (the client missed the changes); a depth
    event carries the whole book and deletes every quote the client held. If
    the transport pauses again meanwhile, the rest stays coalesced.
    """
    spots, depth = session.takeCoalesced()
    now = simulator.nowMs()
    market = simulator.market
    for accountId, symbolId in sorted(spots):
        if symbolId not in session.spots.get(accountId, ()):
            continue
        if session.paused:
            session.coalesceSpot(accountId, symbolId)
            continue
        session.send(spotEvent(simulator, session, accountId, symbolId, now, True, True))
    for (accountId, symbolId), held in sorted(depth.items()):
        if symbolId not in session.depth.get(accountId, ()):
            continue
        if session.paused:
            session.coalesceDepth(accountId, symbolId, held)
            continue
        state = market.symbols[symbolId]
        session.send(
            ProtoOADepthEvent(
                ctidTraderAccountId=accountId, symbolId=symbolId, newQuotes=state.book, deletedQuotes=held
            )
        )
