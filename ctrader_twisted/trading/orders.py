# -*- test-case-name: tests.test_trading,tests.test_trading_parts,tests.test_trading_session,tests.test_units -*-
"""Orders with typed results: place, amend, cancel, close; and what to do
when an order's outcome is unknown.

A trading request has no answer of its own: its first execution event
answers it (``ORDER_ACCEPTED``), and a market order's fills follow as more
events (``ORDER_PARTIAL_FILL``, ``ORDER_FILLED``; ``ORDER_CANCELLED`` for
what an immediate-or-cancel order could not fill). :class:`OrderTracker`
follows one order through them, by the ``clientOrderId`` the helper gives
every new order and by its order id once known, and settles it:

* a market order (or a close) with a :class:`Fill`: the volume filled, the
  average price, the deals, the position afterwards and, for a close, what
  it realized;
* a pending order (limit, stop, stop-limit) with the accepted
  :class:`~ctrader_twisted.trading.models.Order`;
* a refusal with the server's typed error
  (:class:`~ctrader_twisted.errors.NotEnoughMoneyError`,
  :class:`~ctrader_twisted.errors.BadVolumeError`,
  :class:`~ctrader_twisted.errors.MarketClosedError` ...), or
  :class:`~ctrader_twisted.errors.NotFilledError` when it was accepted and
  ended without a fill.

When the connection is lost after the request was written, or its answer
or fill is late, the order is **never sent again**: once the session is
back, it is reconciled (:func:`reconcileOrder`: the pending orders of
``ProtoOAReconcileReq``, then the orders of ``ProtoOAOrderListReq`` around
the time it was sent, by its ``clientOrderId``) and reported as filled (a
:class:`Fill` with ``reconciled=True``), as pending, or as never executed
(:class:`~ctrader_twisted.errors.NotExecutedError`: safe to send again).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..errors import (
    NotExecutedError,
    NotFilledError,
    OpenApiError,
    OutcomeUnknownError,
    RequestTimeout,
    errorFromPayload,
)
from .models import (
    ClosedDetail,
    Deal,
    ExecutionType,
    Order,
    OrderStatus,
    Position,
    Side,
    dealFromProto,
    orderFromProto,
)

if TYPE_CHECKING:
    from .events import Execution
    from .trader import Trader

__all__ = ["Fill", "OrderTracker", "newClientOrderId", "reconcileOrder", "RECONCILE_WINDOW_MS"]

#: How far around the time an order was sent its reconciliation looks, ms
#: (the client's and the server's clocks differ).
RECONCILE_WINDOW_MS = 120_000


def newClientOrderId() -> str:
    """A fresh ``clientOrderId`` (the server takes 50 characters at most)."""
    return "ctw-" + uuid.uuid4().hex[:24]


@dataclass(frozen=True)
class Fill:
    """The outcome of a market order or a close.

    :ivar requestedUnits: the volume asked for, units.
    :ivar units: the volume filled (less than asked when ``partial``).
    :ivar price: the volume-weighted average price of the deals.
    :ivar position: the position afterwards (closed or smaller after a close).
    :ivar closed: for a close: what the deals realized, summed (gross
        profit, swap, commission, the balance after the last one).
    :ivar reconciled: the outcome was learnt by reconciling after the
        connection was lost (or the answer was late); ``deals`` may then be
        empty and ``position`` ``None``.
    """

    orderId: int
    positionId: int
    symbol: str
    side: Side
    requestedUnits: Decimal
    units: Decimal
    lots: Decimal | None
    price: Decimal | None
    deals: tuple[Deal, ...]
    order: Order | None
    position: Position | None
    closed: ClosedDetail | None
    partial: bool
    reconciled: bool = False


def _average(deals: list[Deal]) -> Decimal | None:
    total = sum((d.filledUnits for d in deals), Decimal(0))
    if not total or any(d.price is None for d in deals):
        return None
    return sum((d.price * d.filledUnits for d in deals), Decimal(0)) / total  # type: ignore[operator]


def _sumClosed(deals: list[Deal]) -> ClosedDetail | None:
    closes = [d.closed for d in deals if d.closed is not None]
    if not closes:
        return None
    last = closes[-1]
    return ClosedDetail(
        entryPrice=last.entryPrice,
        closedUnits=sum((c.closedUnits for c in closes), Decimal(0)),
        grossProfit=sum((c.grossProfit for c in closes), Decimal(0)),
        swap=sum((c.swap for c in closes), Decimal(0)),
        commission=sum((c.commission for c in closes), Decimal(0)),
        pnlConversionFee=sum((c.pnlConversionFee for c in closes), Decimal(0)),
        balance=last.balance,
        balanceVersion=last.balanceVersion,
        quoteToDepositRate=last.quoteToDepositRate,
    )


class OrderTracker:
    """Follows one order from its request to its outcome (module docstring).

    :param trader: the trader it belongs to.
    :param kind: ``"market"`` (settles on the fill), ``"pending"`` (settles
        on acceptance) or ``"close"`` (settles on the fill, with what it realized).
    :param clientOrderId: the order's ``clientOrderId`` (``None`` for a close).
    :param requestedUnits: the volume asked for.
    :param timeout: seconds from acceptance to the fill before the outcome
        counts as unknown (and is reconciled).
    """

    _log = Logger()

    def __init__(
        self,
        trader: Trader,
        kind: str,
        clientOrderId: str | None,
        requestedUnits: Decimal,
        timeout: float | None,
        positionId: int | None = None,
    ) -> None:
        self.trader = trader
        self.kind = kind
        self.clientOrderId = clientOrderId
        self.requestedUnits = requestedUnits
        self.timeout = timeout
        self.positionId = positionId
        self.orderId: int | None = None
        self.deals: list[Deal] = []
        self.order: Order | None = None
        self.position: Position | None = None
        self.result: Deferred[Any] = Deferred()
        self.sentAt: int = 0
        self._timer: IDelayedCall | None = None
        self._reconciling = False

    def __repr__(self) -> str:
        return f"<OrderTracker {self.kind} order={self.orderId} clientOrderId={self.clientOrderId!r}>"

    @property
    def done(self) -> bool:
        """Whether the outcome is known (and delivered)."""
        return self.result.called

    # --- the request -------------------------------------------------------------------

    def send(self, request: Deferred[Any]) -> Deferred[Any]:
        """Follow *request* (the trading request's Deferred).

        :returns: the Deferred of the outcome.
        """
        self.sentAt = int(self.trader.client.clock.seconds() * 1000)
        request.addCallbacks(self._answered, self._refused)
        return self.result

    def _answered(self, event: Any) -> None:
        # The first execution event answered the request; listeners (and so
        # :meth:`execution`) have seen it already.
        if self.done:
            return
        execution = self.trader._execution(event)
        self.execution(execution)
        if not self.done and self.kind != "pending" and self.timeout is not None:
            self._timer = self.trader.client.clock.callLater(self.timeout, self._late)

    def _refused(self, failure: Failure) -> None:
        if self.done:
            return
        if failure.check(OutcomeUnknownError, RequestTimeout):
            self._unknown(failure.value)
            return
        self._settle(failure)

    def _late(self) -> None:
        self._timer = None
        if not self.done:
            self._unknown(RequestTimeout("the fill of the order", self.clientOrderId or str(self.orderId), self.timeout or 0.0))

    def connectionLost(self) -> None:
        """The connection was lost while the order waited for its fill: its
        outcome is unknown until reconciled."""
        if not self.done and self.orderId is not None:
            self._unknown(OutcomeUnknownError("connection lost while the order waited for its fill"))

    # --- execution events ----------------------------------------------------------------

    def matches(self, execution: Execution) -> bool:
        """Whether *execution* is about this order."""
        order = execution.order
        if order is None:
            return False
        if self.orderId is not None:
            return order.id == self.orderId
        return bool(self.clientOrderId) and order.clientOrderId == self.clientOrderId

    def execution(self, execution: Execution) -> None:
        """An execution event about this order."""
        if self.done or execution.order is None:
            return
        order = execution.order
        self.orderId = order.id
        self.order = order
        if execution.position is not None:
            self.position = execution.position
        kind = execution.type
        if execution.deal is not None and all(d.id != execution.deal.id for d in self.deals):
            self.deals.append(execution.deal)
        if kind == ExecutionType.ORDER_ACCEPTED:
            if self.kind == "pending":
                self._settle(order)
            return
        if kind == ExecutionType.ORDER_FILLED:
            self._settle(self._fill())
        elif kind in (ExecutionType.ORDER_CANCELLED, ExecutionType.ORDER_EXPIRED):
            if self.deals and self.kind != "pending":
                self._settle(self._fill())
            else:
                self._settle(Failure(NotFilledError(kind.name, f"the order ended without a fill ({kind.name})", orderId=order.id)))
        elif kind == ExecutionType.ORDER_REJECTED:
            error = errorFromPayload(execution.raw)
            error.orderId = order.id
            if not isinstance(error, OpenApiError) or type(error) is OpenApiError:
                error = NotFilledError(error.errorCode, "the order was rejected", orderId=order.id)
            self._settle(Failure(error))

    def _fill(self, reconciled: bool = False) -> Fill:
        order = self.order
        assert order is not None
        units = sum((d.filledUnits for d in self.deals), Decimal(0)) if self.deals else order.filledUnits
        lots = None
        if order.lots is not None and order.units:
            lots = order.lots * units / order.units
        return Fill(
            orderId=order.id,
            positionId=order.positionId or (self.position.id if self.position is not None else 0),
            symbol=order.symbol,
            side=order.side,
            requestedUnits=self.requestedUnits,
            units=units,
            lots=lots,
            price=_average(self.deals) if self.deals else order.executionPrice,
            deals=tuple(self.deals),
            order=order,
            position=self.position,
            closed=_sumClosed(self.deals),
            partial=units < self.requestedUnits,
            reconciled=reconciled,
        )

    def _settle(self, result: Any) -> None:
        if self.done:
            return
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        self.trader._forgetTracker(self)
        if isinstance(result, Failure):
            self.result.errback(result)
        else:
            self.result.callback(result)

    # --- unknown outcomes -----------------------------------------------------------------

    def _unknown(self, cause: BaseException) -> None:
        if self._reconciling or self.done:
            return
        self._reconciling = True
        self._log.warn(
            "The outcome of order {order} is unknown ({cause}); reconciling when the session is ready (it is not sent again)",
            order=self.clientOrderId or self.orderId,
            cause=str(cause),
        )
        d = Deferred.fromCoroutine(reconcileOrder(self, cause))
        d.addBoth(self._reconciled)

    def _reconciled(self, result: Any) -> None:
        self._reconciling = False
        if not self.done:
            self._settle(result)


async def reconcileOrder(tracker: OrderTracker, cause: BaseException) -> Any:
    """Find out from the server what became of *tracker*'s order (see the
    module docstring); never sends the order again.

    :returns: a :class:`Fill` (``reconciled=True``) or the pending
        :class:`~ctrader_twisted.trading.models.Order`.
    :raises NotExecutedError: the server has no trace of the order.
    :raises NotFilledError: it was accepted, then cancelled, expired or
        rejected without a fill.
    """
    trader = tracker.trader
    client = trader.client
    await client.whenReady()
    account = trader.accountId
    symbols = trader.symbols
    # Whatever happened to the order, the account model may have missed it.
    trader.account.reconcile().addErrback(lambda f: None)
    if tracker.kind == "close":
        return await _reconcileClose(tracker, cause)
    state = await client.request("ProtoOAReconcileReq", ctidTraderAccountId=account)
    for raw in state.order:
        if tracker.clientOrderId and raw.clientOrderId == tracker.clientOrderId or raw.orderId == tracker.orderId:
            order = orderFromProto(raw, account, symbols)
            tracker.order = order
            if tracker.kind == "pending":
                return order
            if order.filledUnits:
                return tracker._fill(reconciled=True)
            return order
    now = int(client.clock.seconds() * 1000)
    listing = await client.request(
        "ProtoOAOrderListReq",
        ctidTraderAccountId=account,
        fromTimestamp=max(0, tracker.sentAt - RECONCILE_WINDOW_MS),
        toTimestamp=now + RECONCILE_WINDOW_MS,
    )
    for raw in listing.order:
        if not (tracker.clientOrderId and raw.clientOrderId == tracker.clientOrderId or raw.orderId == tracker.orderId):
            continue
        order = orderFromProto(raw, account, symbols)
        tracker.order = order
        if order.status == OrderStatus.ACCEPTED:
            return order
        details = await client.request("ProtoOAOrderDetailsReq", ctidTraderAccountId=account, orderId=order.id)
        tracker.deals = [dealFromProto(d, symbols) for d in details.deal]
        if order.filledUnits or tracker.deals:
            positionId = order.positionId
            position = trader.account.position(positionId) if positionId else None
            tracker.position = position
            return tracker._fill(reconciled=True)
        raise NotFilledError(order.status.name if isinstance(order.status, OrderStatus) else str(order.status),
                             "the order ended without a fill", orderId=order.id)
    raise NotExecutedError(
        f"the order (clientOrderId {tracker.clientOrderId!r}) was not executed: after {cause}, the server has no "
        "trace of it; it was not sent again",
        tracker.clientOrderId or "",
        cause,
    )


async def _reconcileClose(tracker: OrderTracker, cause: BaseException) -> Any:
    """A close of unknown outcome: the position's closing deals since it was sent."""
    trader = tracker.trader
    client = trader.client
    account = trader.accountId
    now = int(client.clock.seconds() * 1000)
    res = await client.request(
        "ProtoOADealListByPositionIdReq",
        ctidTraderAccountId=account,
        positionId=tracker.positionId,
        fromTimestamp=max(0, tracker.sentAt - RECONCILE_WINDOW_MS),
        toTimestamp=now + RECONCILE_WINDOW_MS,
    )
    deals = [
        dealFromProto(d, trader.symbols)
        for d in res.deal
        if d.HasField("closePositionDetail") and int(d.executionTimestamp) >= tracker.sentAt - RECONCILE_WINDOW_MS
        and (tracker.orderId is None or int(d.orderId) == tracker.orderId)
    ]
    if not deals:
        raise NotExecutedError(
            f"the close of position {tracker.positionId} was not executed: after {cause}, the server has no closing "
            "deal for it; it was not sent again",
            "",
            cause,
        )
    deals.sort(key=lambda d: d.id)
    orderId = deals[-1].orderId
    tracker.deals = [d for d in deals if d.orderId == orderId]
    details = await client.request("ProtoOAOrderDetailsReq", ctidTraderAccountId=account, orderId=orderId)
    tracker.order = orderFromProto(details.order, account, trader.symbols)
    tracker.position = trader.account.position(tracker.positionId or 0)
    return tracker._fill(reconciled=True)
