# -*- test-case-name: tests.test_simulator_memory -*-
"""Market-data requests: spots, live trend bars, depth, trend-bar and tick history.

Subscriptions are kept per connection and per account by the
:class:`~ctrader_twisted.simulator.session.Session`; prices come from the
:class:`~ctrader_twisted.simulator.market.Market`. The events of the
subscriptions are streamed on every market tick by
:mod:`ctrader_twisted.simulator.ticker`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Sequence

from ...messages.OpenApiMessages_pb2 import (
    ProtoOADepthEvent,
    ProtoOAGetTickDataReq,
    ProtoOAGetTickDataRes,
    ProtoOAGetTrendbarsReq,
    ProtoOAGetTrendbarsRes,
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
from ...messages.OpenApiModelMessages_pb2 import ProtoOATickData
from ...history import TICK_WINDOW_MS
from ..market import MAX_WINDOW_MS, PERIOD_MINUTES
from .registry import Registry, describeIds, distinctIds

if TYPE_CHECKING:
    from ..accounts import Account
    from ..session import Session

__all__ = ["HANDLERS", "MAX_TRENDBARS", "MAX_TICKS", "MAX_TICK_WINDOW_MS"]

#: Most bars in one ``ProtoOAGetTrendbarsRes`` (``hasMore`` tells there are more).
MAX_TRENDBARS = 5000
#: Most ticks in one ``ProtoOAGetTickDataRes``.
MAX_TICKS = 5000
#: Longest tick-data window, ms (one week; the library's table).
MAX_TICK_WINDOW_MS = TICK_WINDOW_MS

#: The handlers of this module.
HANDLERS = Registry()


def _knownSymbols(session: Session, ids: Iterable[int], accountId: int, clientMsgId: str | None) -> bool:
    """Whether every symbol of *ids* exists; if not, ``SYMBOL_NOT_FOUND`` is answered."""
    symbols = session.simulator.market.symbols
    unknown = [i for i in ids if i not in symbols]
    if unknown:
        session.oaError("SYMBOL_NOT_FOUND", f"Symbol(s) not found: {describeIds(unknown)}", clientMsgId, accountId)
        return False
    return True


def _subscribe(
    session: Session,
    subscriptions: dict[int, set[int]],
    what: str,
    accountId: int,
    symbolIds: Sequence[int],
    clientMsgId: str | None,
) -> list[int] | None:
    """Add *symbolIds* to the account's *subscriptions* (the session's ``spots``
    or ``depth``) and return them, each once; ``None`` once
    ``INVALID_REQUEST`` (too many), ``SYMBOL_NOT_FOUND`` or
    ``ALREADY_SUBSCRIBED`` has been answered."""
    ids = distinctIds(session, symbolIds, "symbolId", clientMsgId)
    if ids is None or not _knownSymbols(session, ids, accountId, clientMsgId):
        return None
    subscribed = subscriptions.setdefault(accountId, set())
    already = [i for i in ids if i in subscribed]
    if already:
        session.oaError(
            "ALREADY_SUBSCRIBED", f"Already subscribed to {what} of {describeIds(already)}", clientMsgId, accountId
        )
        return None
    subscribed.update(ids)
    return ids


def _unsubscribe(
    session: Session,
    subscriptions: dict[int, set[int]],
    what: str,
    accountId: int,
    symbolIds: Sequence[int],
    clientMsgId: str | None,
) -> bool:
    """Remove *symbolIds* from the account's *subscriptions*; false once
    ``INVALID_REQUEST`` (too many) or ``NOT_SUBSCRIBED_TO_SPOTS`` (one is not
    subscribed) has been answered."""
    ids = distinctIds(session, symbolIds, "symbolId", clientMsgId)
    if ids is None:
        return False
    subscribed = subscriptions.get(accountId, set())
    missing = [i for i in ids if i not in subscribed]
    if missing:
        session.oaError(
            "NOT_SUBSCRIBED_TO_SPOTS", f"Not subscribed to {what} of {describeIds(missing)}", clientMsgId, accountId
        )
        return False
    subscribed.difference_update(ids)
    return True


@HANDLERS.handler(ProtoOASubscribeSpotsReq, account=True)
def subscribeSpots(session: Session, account: Account, req: ProtoOASubscribeSpotsReq, clientMsgId: str | None) -> None:
    """Subscribe to spots; the answer is followed by one event per symbol with
    the current prices and the session close."""
    accountId = account.ctidTraderAccountId
    ids = _subscribe(session, session.spots, "spots", accountId, req.symbolId, clientMsgId)
    if ids is None:
        return
    session.send(ProtoOASubscribeSpotsRes(ctidTraderAccountId=accountId), clientMsgId)
    # The "technical" first event with the current prices, as the real server sends.
    sim = session.simulator
    now = sim.nowMs()
    for symbolId in ids:
        session.send(sim.market.symbols[symbolId].spotEvent(accountId, now, sessionClose=True))


@HANDLERS.handler(ProtoOAUnsubscribeSpotsReq, account=True)
def unsubscribeSpots(
    session: Session, account: Account, req: ProtoOAUnsubscribeSpotsReq, clientMsgId: str | None
) -> None:
    """Unsubscribe from spots, and from the live trend bars of those symbols."""
    accountId = account.ctidTraderAccountId
    if not _unsubscribe(session, session.spots, "spots", accountId, req.symbolId, clientMsgId):
        return
    session.trendbars = {t for t in session.trendbars if not (t[0] == accountId and t[1] in req.symbolId)}
    session.send(ProtoOAUnsubscribeSpotsRes(ctidTraderAccountId=accountId), clientMsgId)


@HANDLERS.handler(ProtoOASubscribeLiveTrendbarReq, account=True)
def subscribeLiveTrendbar(
    session: Session, account: Account, req: ProtoOASubscribeLiveTrendbarReq, clientMsgId: str | None
) -> None:
    """Add the live bar of a period to a symbol's spot events (spots first)."""
    accountId = account.ctidTraderAccountId
    if not _knownSymbols(session, [req.symbolId], accountId, clientMsgId):
        return
    if req.symbolId not in session.spots.get(accountId, ()):
        session.oaError(
            "NOT_SUBSCRIBED_TO_SPOTS", "Subscribe to the symbol's spots before its live trend bars", clientMsgId, accountId
        )
        return
    session.trendbars.add((accountId, req.symbolId, req.period))
    session.send(ProtoOASubscribeLiveTrendbarRes(ctidTraderAccountId=accountId), clientMsgId)


@HANDLERS.handler(ProtoOAUnsubscribeLiveTrendbarReq, account=True)
def unsubscribeLiveTrendbar(
    session: Session, account: Account, req: ProtoOAUnsubscribeLiveTrendbarReq, clientMsgId: str | None
) -> None:
    """Stop a live trend-bar subscription."""
    accountId = account.ctidTraderAccountId
    key = (accountId, req.symbolId, req.period)
    if key not in session.trendbars:
        session.oaError("NOT_SUBSCRIBED_TO_SPOTS", "Not subscribed to these live trend bars", clientMsgId, accountId)
        return
    session.trendbars.discard(key)
    session.send(ProtoOAUnsubscribeLiveTrendbarRes(ctidTraderAccountId=accountId), clientMsgId)


@HANDLERS.handler(ProtoOASubscribeDepthQuotesReq, account=True)
def subscribeDepth(
    session: Session, account: Account, req: ProtoOASubscribeDepthQuotesReq, clientMsgId: str | None
) -> None:
    """Subscribe to depth of market; a symbol whose book exists gets it at once."""
    accountId = account.ctidTraderAccountId
    ids = _subscribe(session, session.depth, "depth", accountId, req.symbolId, clientMsgId)
    if ids is None:
        return
    session.send(ProtoOASubscribeDepthQuotesRes(ctidTraderAccountId=accountId), clientMsgId)
    market = session.simulator.market
    for symbolId in ids:
        state = market.symbols[symbolId]
        if state.book:
            session.send(ProtoOADepthEvent(ctidTraderAccountId=accountId, symbolId=symbolId, newQuotes=state.book))


@HANDLERS.handler(ProtoOAUnsubscribeDepthQuotesReq, account=True)
def unsubscribeDepth(
    session: Session, account: Account, req: ProtoOAUnsubscribeDepthQuotesReq, clientMsgId: str | None
) -> None:
    """Stop depth subscriptions."""
    accountId = account.ctidTraderAccountId
    if not _unsubscribe(session, session.depth, "depth", accountId, req.symbolId, clientMsgId):
        return
    session.send(ProtoOAUnsubscribeDepthQuotesRes(ctidTraderAccountId=accountId), clientMsgId)


@HANDLERS.handler(ProtoOAGetTrendbarsReq, account=True)
def getTrendbars(session: Session, account: Account, req: ProtoOAGetTrendbarsReq, clientMsgId: str | None) -> None:
    """Complete historical bars whose open time lies in ``[fromTimestamp,
    toTimestamp)``, oldest first: the newest :data:`MAX_TRENDBARS` (or
    ``count``), with ``hasMore`` when the window holds more."""
    accountId = account.ctidTraderAccountId
    if not _knownSymbols(session, [req.symbolId], accountId, clientMsgId):
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


@HANDLERS.handler(ProtoOAGetTickDataReq, account=True)
def getTickData(session: Session, account: Account, req: ProtoOAGetTickDataReq, clientMsgId: str | None) -> None:
    """Historical ticks of ``[fromTimestamp, toTimestamp]`` (both included), the
    newest :data:`MAX_TICKS` first, each after the first as its difference to
    the one before (``hasMore`` when the window holds more)."""
    accountId = account.ctidTraderAccountId
    if not _knownSymbols(session, [req.symbolId], accountId, clientMsgId):
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
