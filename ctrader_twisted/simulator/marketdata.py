# -*- test-case-name: tests.test_simulator -*-
"""Market-data requests: spots, live trend bars, depth, history.

Subscriptions are per connection and per account (:class:`.session.Session`);
prices come from :class:`.market.Market`. :func:`publish` is called by the
simulator on every market tick to stream the subscribed events.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

from ..messages.OpenApiMessages_pb2 import (
    ProtoOADepthEvent,
    ProtoOAGetTickDataReq,
    ProtoOAGetTickDataRes,
    ProtoOAGetTrendbarsReq,
    ProtoOAGetTrendbarsRes,
    ProtoOASpotEvent,
    ProtoOASubscribeDepthQuotesReq,
    ProtoOASubscribeDepthQuotesRes,
    ProtoOASubscribeLiveTrendbarReq,
    ProtoOASubscribeLiveTrendbarRes,
    ProtoOASubscribeSpotsReq,
    ProtoOASubscribeSpotsRes,
    ProtoOAUnsubscribeDepthQuotesReq,
    ProtoOAUnsubscribeDepthQuotesRes,
    ProtoOAUnsubscribeLiveTrendbarReq,
    ProtoOAUnsubscribeLiveTrendbarRes,
    ProtoOAUnsubscribeSpotsReq,
    ProtoOAUnsubscribeSpotsRes,
)
from ..messages.OpenApiModelMessages_pb2 import ProtoOATickData
from .market import MAX_WINDOW_MS, PERIOD_MINUTES, SymbolState
from .session import Session, handles

if TYPE_CHECKING:
    from .server import Simulator

__all__ = ["publish", "spotEvent", "MAX_TRENDBARS", "MAX_TICKS", "MAX_TICK_WINDOW_MS"]

#: Most bars in one ``ProtoOAGetTrendbarsRes`` (``hasMore`` tells there are more).
MAX_TRENDBARS = 5000
#: Most ticks in one ``ProtoOAGetTickDataRes``.
MAX_TICKS = 5000
#: Longest tick-data window, ms (one week).
MAX_TICK_WINDOW_MS = 604_800_000


def spotEvent(
    accountId: int, state: SymbolState, timestamp: int, bid: bool = True, ask: bool = True, sessionClose: bool = False
) -> ProtoOASpotEvent:
    """A spot event for *state*'s current prices (only the sides asked for)."""
    event = ProtoOASpotEvent(ctidTraderAccountId=accountId, symbolId=state.symbolId, timestamp=timestamp)
    if bid:
        event.bid = state.bid
    if ask:
        event.ask = state.ask
    if sessionClose:
        event.sessionClose = state.sessionClose
    return event


def _symbols(session: Session, ids: Iterable[int], accountId: int, clientMsgId: str | None) -> bool:
    symbols = session.simulator.market.symbols
    unknown = [i for i in ids if i not in symbols]
    if unknown:
        session.oaError("SYMBOL_NOT_FOUND", f"Symbol(s) not found: {unknown}", clientMsgId, accountId)
        return False
    return True


@handles(ProtoOASubscribeSpotsReq)
def subscribeSpots(session: Session, req: ProtoOASubscribeSpotsReq, clientMsgId: str | None) -> None:
    accountId = req.ctidTraderAccountId
    if session.account(req, clientMsgId) is None or not _symbols(session, req.symbolId, accountId, clientMsgId):
        return
    subscribed = session.spots.setdefault(accountId, set())
    already = [i for i in req.symbolId if i in subscribed]
    if already:
        session.oaError("ALREADY_SUBSCRIBED", f"Already subscribed to spots of {already}", clientMsgId, accountId)
        return
    subscribed.update(req.symbolId)
    session.send(ProtoOASubscribeSpotsRes(ctidTraderAccountId=accountId), clientMsgId)
    # The "technical" first event with the current prices, as the real server sends.
    sim = session.simulator
    now = sim.nowMs()
    for symbolId in req.symbolId:
        session.send(spotEvent(accountId, sim.market.symbols[symbolId], now, sessionClose=True))


@handles(ProtoOAUnsubscribeSpotsReq)
def unsubscribeSpots(session: Session, req: ProtoOAUnsubscribeSpotsReq, clientMsgId: str | None) -> None:
    accountId = req.ctidTraderAccountId
    if session.account(req, clientMsgId) is None:
        return
    subscribed = session.spots.get(accountId, set())
    missing = [i for i in req.symbolId if i not in subscribed]
    if missing:
        session.oaError("NOT_SUBSCRIBED_TO_SPOTS", f"Not subscribed to spots of {missing}", clientMsgId, accountId)
        return
    subscribed.difference_update(req.symbolId)
    session.trendbars = {t for t in session.trendbars if not (t[0] == accountId and t[1] in req.symbolId)}
    session.send(ProtoOAUnsubscribeSpotsRes(ctidTraderAccountId=accountId), clientMsgId)


@handles(ProtoOASubscribeLiveTrendbarReq)
def subscribeLiveTrendbar(session: Session, req: ProtoOASubscribeLiveTrendbarReq, clientMsgId: str | None) -> None:
    accountId = req.ctidTraderAccountId
    if session.account(req, clientMsgId) is None or not _symbols(session, [req.symbolId], accountId, clientMsgId):
        return
    if req.symbolId not in session.spots.get(accountId, ()):
        session.oaError(
            "NOT_SUBSCRIBED_TO_SPOTS", "Subscribe to the symbol's spots before its live trend bars", clientMsgId, accountId
        )
        return
    session.trendbars.add((accountId, req.symbolId, req.period))
    session.send(ProtoOASubscribeLiveTrendbarRes(ctidTraderAccountId=accountId), clientMsgId)


@handles(ProtoOAUnsubscribeLiveTrendbarReq)
def unsubscribeLiveTrendbar(session: Session, req: ProtoOAUnsubscribeLiveTrendbarReq, clientMsgId: str | None) -> None:
    accountId = req.ctidTraderAccountId
    if session.account(req, clientMsgId) is None:
        return
    key = (accountId, req.symbolId, req.period)
    if key not in session.trendbars:
        session.oaError("NOT_SUBSCRIBED_TO_SPOTS", "Not subscribed to these live trend bars", clientMsgId, accountId)
        return
    session.trendbars.discard(key)
    session.send(ProtoOAUnsubscribeLiveTrendbarRes(ctidTraderAccountId=accountId), clientMsgId)


@handles(ProtoOASubscribeDepthQuotesReq)
def subscribeDepth(session: Session, req: ProtoOASubscribeDepthQuotesReq, clientMsgId: str | None) -> None:
    accountId = req.ctidTraderAccountId
    if session.account(req, clientMsgId) is None or not _symbols(session, req.symbolId, accountId, clientMsgId):
        return
    subscribed = session.depth.setdefault(accountId, set())
    already = [i for i in req.symbolId if i in subscribed]
    if already:
        session.oaError("ALREADY_SUBSCRIBED", f"Already subscribed to depth of {already}", clientMsgId, accountId)
        return
    subscribed.update(req.symbolId)
    session.send(ProtoOASubscribeDepthQuotesRes(ctidTraderAccountId=accountId), clientMsgId)
    market = session.simulator.market
    for symbolId in req.symbolId:
        state = market.symbols[symbolId]
        if state.book:
            session.send(ProtoOADepthEvent(ctidTraderAccountId=accountId, symbolId=symbolId, newQuotes=state.book))


@handles(ProtoOAUnsubscribeDepthQuotesReq)
def unsubscribeDepth(session: Session, req: ProtoOAUnsubscribeDepthQuotesReq, clientMsgId: str | None) -> None:
    accountId = req.ctidTraderAccountId
    if session.account(req, clientMsgId) is None:
        return
    subscribed = session.depth.get(accountId, set())
    missing = [i for i in req.symbolId if i not in subscribed]
    if missing:
        session.oaError("NOT_SUBSCRIBED_TO_SPOTS", f"Not subscribed to depth of {missing}", clientMsgId, accountId)
        return
    subscribed.difference_update(req.symbolId)
    session.send(ProtoOAUnsubscribeDepthQuotesRes(ctidTraderAccountId=accountId), clientMsgId)


@handles(ProtoOAGetTrendbarsReq)
def getTrendbars(session: Session, req: ProtoOAGetTrendbarsReq, clientMsgId: str | None) -> None:
    accountId = req.ctidTraderAccountId
    if session.account(req, clientMsgId) is None or not _symbols(session, [req.symbolId], accountId, clientMsgId):
        return
    if req.period not in PERIOD_MINUTES:
        session.commonError("INVALID_REQUEST", f"unknown trend bar period {req.period}", clientMsgId)
        return
    sim = session.simulator
    now = sim.nowMs()
    toMs = req.toTimestamp if req.HasField("toTimestamp") else now
    fromMs = req.fromTimestamp if req.HasField("fromTimestamp") else toMs - MAX_WINDOW_MS[req.period]
    if fromMs < 0 or toMs <= fromMs or toMs - fromMs > MAX_WINDOW_MS[req.period]:
        session.oaError(
            "INCORRECT_BOUNDARIES",
            f"the window must be positive and at most {MAX_WINDOW_MS[req.period]} ms for this period",
            clientMsgId,
            accountId,
        )
        return
    limit = min(req.count, MAX_TRENDBARS) if req.HasField("count") and req.count > 0 else MAX_TRENDBARS
    state = sim.market.symbols[req.symbolId]
    # The newest bars win when the window holds more than the limit.
    bars = list(state.historicalBars(req.period, fromMs, min(toMs, now + 1)))
    hasMore = len(bars) > limit
    bars = bars[-limit:]
    session.send(
        ProtoOAGetTrendbarsRes(
            ctidTraderAccountId=accountId,
            period=req.period,
            timestamp=now,
            trendbar=bars,
            symbolId=req.symbolId,
            hasMore=hasMore,
        ),
        clientMsgId,
    )


@handles(ProtoOAGetTickDataReq)
def getTickData(session: Session, req: ProtoOAGetTickDataReq, clientMsgId: str | None) -> None:
    accountId = req.ctidTraderAccountId
    if session.account(req, clientMsgId) is None or not _symbols(session, [req.symbolId], accountId, clientMsgId):
        return
    fromMs, toMs = req.fromTimestamp, req.toTimestamp
    if fromMs < 0 or toMs <= fromMs or toMs - fromMs > MAX_TICK_WINDOW_MS:
        session.oaError(
            "INCORRECT_BOUNDARIES",
            f"the window must be positive and at most {MAX_TICK_WINDOW_MS} ms",
            clientMsgId,
            accountId,
        )
        return
    sim = session.simulator
    state = sim.market.symbols[req.symbolId]
    ticks: list[ProtoOATickData] = []
    previous: tuple[int, int] | None = None
    hasMore = False
    for timestamp, price in state.historicalTicks(req.type, fromMs, min(toMs, sim.nowMs())):
        if len(ticks) == MAX_TICKS:
            hasMore = True
            break
        if previous is None:
            ticks.append(ProtoOATickData(timestamp=timestamp, tick=price))
        else:  # newest first, then differences to the previous tick
            ticks.append(ProtoOATickData(timestamp=timestamp - previous[0], tick=price - previous[1]))
        previous = (timestamp, price)
    session.send(ProtoOAGetTickDataRes(ctidTraderAccountId=accountId, tickData=ticks, hasMore=hasMore), clientMsgId)


def publish(simulator: Simulator, changed: dict[int, tuple[bool, bool]], newBooks: dict[int, list[int]]) -> None:
    """Stream one market tick to the subscribed connections.

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
                event = spotEvent(accountId, state, now, bid, ask)
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

