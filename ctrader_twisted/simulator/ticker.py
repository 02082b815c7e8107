# -*- test-case-name: tests.test_simulator_memory -*-
"""The market clock: one market step every ``spotInterval`` while anyone is connected.

A step (:meth:`Ticker.tick`) walks every symbol's price, rolls the live
trend bars the connections subscribe to, refreshes the books of the symbols
whose depth is subscribed, streams the changes to the subscribed
connections (:func:`publish`), lets every account with orders or
positions react to the move (:func:`.execution.processTick`), and sends the
PnL subscriptions their changes (:func:`publishPnL`). A symbol whose market
is closed (``marketHours``) stays still.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.internet.task import LoopingCall

from ..messages.OpenApiMessages_pb2 import ProtoOADepthEvent, ProtoOAv1PnLChangeEvent
from ..messages.OpenApiModelMessages_pb2 import ProtoOATrendbarPeriod
from .execution import processTick, unrealizedTotals

if TYPE_CHECKING:
    from .server import Simulator

__all__ = ["Ticker", "publish", "publishPnL"]


class Ticker:
    """Runs the market steps of one simulator on its clock.

    The simulator starts it when a connection opens and stops it when the
    last one closes; the first step comes ``spotInterval`` after a start.
    """

    def __init__(self, simulator: Simulator) -> None:
        self.simulator = simulator
        self._loop: LoopingCall | None = None

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
        """One market step: walk prices, roll bars, refresh books, publish, trade."""
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
        publish(sim, changed, newBooks)
        for account in sim.accounts.values():
            if account.orders or account.positions:
                processTick(sim, account)
        publishPnL(sim)


def publishPnL(simulator: Simulator) -> None:
    """Send ``ProtoOAv1PnLChangeEvent`` to the PnL subscriptions whose
    account's unrealized profit changed since the last one they got."""
    for session in list(simulator.sessions):
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


def publish(simulator: Simulator, changed: dict[int, tuple[bool, bool]], newBooks: dict[int, list[int]]) -> None:
    """Stream one market step to the subscribed connections.

    A spot subscription gets an event when its bid or ask changed or when it
    has live trend bars (carried in the event); a depth subscription gets
    the new book and the ids of the quotes it replaced.

    :param changed: symbol id to ``(bidChanged, askChanged)``.
    :param newBooks: symbol id to the ids of the quotes the new book replaced.
    """
    now = simulator.nowMs()
    market = simulator.market
    for session in list(simulator.sessions):
        for accountId, symbolIds in session.spots.items():
            for symbolId in symbolIds:
                bid, ask = changed.get(symbolId, (False, False))
                periods = [p for (a, s, p) in session.trendbars if a == accountId and s == symbolId]
                if not (bid or ask or periods):
                    continue
                state = market.symbols[symbolId]
                event = state.spotEvent(accountId, now, bid, ask)
                for period in sorted(periods):
                    bar = state.liveBars.get(period)
                    if bar is not None:
                        event.trendbar.append(bar.toProto())
                session.send(event)
        for accountId, symbolIds in session.depth.items():
            for symbolId in symbolIds:
                if symbolId in newBooks:
                    state = market.symbols[symbolId]
                    session.send(
                        ProtoOADepthEvent(
                            ctidTraderAccountId=accountId,
                            symbolId=symbolId,
                            newQuotes=state.book,
                            deletedQuotes=newBooks[symbolId],
                        )
                    )
