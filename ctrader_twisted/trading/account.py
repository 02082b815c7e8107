# -*- test-case-name: tests.test_trading,tests.test_trading_parts,tests.test_trading_session,tests.test_units -*-
"""A live model of one trading account: positions, orders and money.

:class:`Account` is built from the server's snapshot (``ProtoOATraderReq``
and ``ProtoOAReconcileReq``), kept current from every execution event
(fills, partial fills, closes, amendments, cancellations, swaps, deposits),
margin and trailing-stop events and the quotes of the symbols it needs, and
rebuilt from a fresh snapshot after every (re)connection and
re-authorization of the account: nothing missed while disconnected stays
missed.

Money follows the server's rules, in the deposit currency and to the
account's ``moneyDigits``:

* a position's gross unrealized profit is ``(closing price - entry price) x
  direction x units x rate``, rounded half to even to the account's money
  digits; the closing price is the bid for a buy and the ask for a sell, and
  *rate* converts the symbol's quote asset into the deposit asset through
  the chain the server names (``ProtoOASymbolsForConversionReq``): a symbol
  quoted as base/quote multiplies by its bid, one quoted the other way
  divides by its ask;
* equity is the balance plus every position's gross profit, swap and
  commission charged so far; margin is the sum of the positions' used
  margin; free margin is equity minus margin; the margin level is equity
  over margin, in percent.

The model subscribes (through the shared subscriptions) to the spots of the
symbols of its open positions and of their conversion chains, and releases
them when the positions close.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any, Mapping

from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..units import DEFAULT_MONEY_DIGITS, moneyFromWire, roundMoney
from ._shared import Shared
from .events import AccountChanged, Execution, MarginChanged, TraderUpdated, TrailingStop
from .models import (
    ExecutionType,
    Order,
    PnL,
    Position,
    PositionStatus,
    isProtection,
    orderFromProto,
    positionFromProto,
)

if TYPE_CHECKING:
    from .symbols import Symbol
    from .trader import Trader

__all__ = ["Account"]

_WIRE = Decimal(100000)


class Account:
    """The live model of one account (see the module docstring).

    Built by :class:`~ctrader_twisted.trading.Trader`; read it as
    ``trader.account``.

    :ivar balance: the balance, deposit currency (``None`` before the first snapshot).
    :ivar balanceVersion: the server's version of that balance.
    :ivar moneyDigits: the account's money digits.
    :ivar depositAssetId: the deposit currency's asset id.
    :ivar leverage: the account's leverage (100 for 1:100).
    :ivar reconciled: whether the model holds a snapshot of the current
        connection (false from a disconnection to the next snapshot).
    """

    _log = Logger()

    def __init__(self, trader: Trader) -> None:
        self._trader = trader
        self.accountId = trader.accountId
        self.balance: Decimal | None = None
        self.balanceVersion: int | None = None
        self.moneyDigits = DEFAULT_MONEY_DIGITS
        self.depositAssetId: int | None = None
        self.depositAsset: str | None = None
        self.leverage: Decimal | None = None
        self.reconciled = False
        self._positions: dict[int, Position] = {}
        self._orders: dict[int, Order] = {}
        #: quote asset id -> the conversion chain to the deposit asset (loaded)
        self._chains: dict[int, tuple[Symbol, ...]] = {}
        self._chainsAsked: set[int] = set()
        #: symbol ids whose spots the model holds
        self._held: set[int] = set()
        self._reconciling: Shared[Account] | None = None
        self._again = False

    def __repr__(self) -> str:
        return (
            f"<Account {self.accountId} balance={self.balance} positions={len(self._positions)} "
            f"orders={len(self._orders)} reconciled={self.reconciled}>"
        )

    # --- reading ------------------------------------------------------------------------

    @property
    def positions(self) -> Mapping[int, Position]:
        """Open positions by id (a copy)."""
        return dict(self._positions)

    @property
    def orders(self) -> Mapping[int, Order]:
        """Pending orders by id (a copy); the protection orders of positions
        (their stop loss and take profit) are not listed: they are the
        positions' ``stopLoss`` and ``takeProfit``."""
        return dict(self._orders)

    def position(self, positionId: int) -> Position | None:
        """An open position, or ``None``."""
        return self._positions.get(positionId)

    def order(self, orderId: int) -> Order | None:
        """A pending order, or ``None``."""
        return self._orders.get(orderId)

    def _rate(self, symbolId: int) -> Decimal | None:
        """Deposit currency per unit of *symbolId*'s quote asset, from the
        current quotes; ``None`` while a quote it needs is unknown."""
        symbol = self._trader.symbols.lookup(symbolId)
        if symbol is None or symbol.quoteAsset is None or self.depositAssetId is None:
            return None
        asset = symbol.quoteAsset.id
        if asset == self.depositAssetId:
            return Decimal(1)
        chain = self._chains.get(asset)
        if chain is None:
            return None
        rate = Decimal(1)
        quotes = self._trader._quotes
        for link in chain:
            quote = quotes.get(link.id)
            if quote is None or link.baseAsset is None or link.quoteAsset is None:
                return None
            if link.baseAsset.id == asset:
                if not quote.bid:
                    return None
                rate = rate * quote.bid / _WIRE
                asset = link.quoteAsset.id
            elif link.quoteAsset.id == asset:
                if not quote.ask:
                    return None
                rate = rate * _WIRE / quote.ask
                asset = link.baseAsset.id
            else:
                return None
        return rate if asset == self.depositAssetId else None

    def unrealized(self, positionId: int) -> PnL | None:
        """The unrealized profit of an open position at the current quotes;
        ``None`` for an unknown position or while a quote it needs is unknown."""
        position = self._positions.get(positionId)
        if position is None or position.entryPrice is None:
            return None
        quote = self._trader._quotes.get(position.symbolId)
        if quote is None:
            return None
        closing = quote.bid if position.side.sign > 0 else quote.ask
        rate = self._rate(position.symbolId)
        if not closing or rate is None:
            return None
        move = (Decimal(closing) / _WIRE - position.entryPrice) * position.side.sign
        gross = roundMoney(move * position.units * rate, self.moneyDigits)  # the simulator's grossProfit, step by step
        return PnL(gross, position.swap, position.commission)

    @property
    def pnl(self) -> PnL | None:
        """Every open position's unrealized profit summed; ``None`` while a
        quote is missing."""
        gross = swap = commission = Decimal(0)
        for positionId in self._positions:
            one = self.unrealized(positionId)
            if one is None:
                return None
            gross, swap, commission = gross + one.gross, swap + one.swap, commission + one.commission
        return PnL(gross, swap, commission)

    @property
    def equity(self) -> Decimal | None:
        """Balance plus :attr:`pnl`'s net; ``None`` while unknown."""
        pnl = self.pnl
        if pnl is None or self.balance is None:
            return None
        return self.balance + pnl.net

    @property
    def margin(self) -> Decimal:
        """Margin used by the open positions."""
        return sum((p.usedMargin for p in self._positions.values()), Decimal(0))

    @property
    def freeMargin(self) -> Decimal | None:
        """Equity minus margin; ``None`` while the equity is unknown."""
        equity = self.equity
        return None if equity is None else equity - self.margin

    @property
    def marginLevel(self) -> Decimal | None:
        """Equity over margin, percent; ``None`` without margin or equity."""
        equity, margin = self.equity, self.margin
        if equity is None or not margin:
            return None
        return equity / margin * 100

    # --- reconciling ------------------------------------------------------------------------

    def whenReconciled(self) -> Deferred[Account]:
        """A Deferred firing with this model once it holds a snapshot of the
        current connection (at once when it does)."""
        if self.reconciled and self._reconciling is None:
            return succeed(self)
        if self._reconciling is None:
            return self.reconcile()
        return self._reconciling.wait()

    def reconcile(self) -> Deferred[Account]:
        """Rebuild the model from the server (``ProtoOATraderReq`` and
        ``ProtoOAReconcileReq``); one at a time: a call during one makes it
        run again when it ends.

        :returns: a Deferred firing with this model.
        """
        if self._reconciling is not None:
            self._again = True
            return self._reconciling.wait()
        self._reconciling = Shared(Deferred.fromCoroutine(self._reconcile()))
        return self._reconciling.wait()

    async def _reconcile(self) -> Account:
        try:
            while True:
                self._again = False
                request = self._trader.client.request
                account = self.accountId
                trader = request("ProtoOATraderReq", ctidTraderAccountId=account).addCallback(self._applyTrader)
                state = request("ProtoOAReconcileReq", ctidTraderAccountId=account).addCallback(self._applySnapshot)
                await gatherResults([trader, state], consumeErrors=True).addErrback(_first)
                if not self._again:
                    break
            self.reconciled = True
            await self._loadFacts()
            self._trader._emit(AccountChanged(self.accountId, "reconciled"))
            return self
        finally:
            self._reconciling = None

    def _applyTrader(self, res: Any) -> None:
        trader = res.trader
        digits = int(trader.moneyDigits) if trader.HasField("moneyDigits") else DEFAULT_MONEY_DIGITS
        self.moneyDigits = digits
        self.depositAssetId = int(trader.depositAssetId)
        asset = self._trader.symbols.assets.get(self.depositAssetId)
        self.depositAsset = asset.name if asset is not None else None
        if trader.HasField("leverageInCents"):
            self.leverage = Decimal(int(trader.leverageInCents)).scaleb(-2)
        version = int(trader.balanceVersion) if trader.HasField("balanceVersion") else None
        self._setBalance(moneyFromWire(int(trader.balance), digits), version)

    def _applySnapshot(self, res: Any) -> None:
        symbols = self._trader.symbols
        account = self.accountId
        self._positions = {}
        for raw in res.position:
            if raw.positionStatus == PositionStatus.OPEN:
                position = positionFromProto(raw, account, symbols)
                self._positions[position.id] = position
        self._orders = {}
        for raw in res.order:
            if not isProtection(raw):
                order = orderFromProto(raw, account, symbols)
                if order.pending:
                    self._orders[order.id] = order
        self._watch()

    def _setBalance(self, balance: Decimal, version: int | None) -> bool:
        if version is not None and self.balanceVersion is not None and version < self.balanceVersion:
            return False  # an older balance than the one held
        self.balance = balance
        if version is not None:
            self.balanceVersion = version
        return True

    def disconnected(self) -> None:
        """The connection was lost: the model waits for its next snapshot."""
        self.reconciled = False

    async def _loadFacts(self) -> None:
        """Load the details of the symbols of the positions and orders held,
        and rebuild them with their digits and lot sizes."""
        ids = {p.symbolId for p in self._positions.values()} | {o.symbolId for o in self._orders.values()}
        catalogue = self._trader.symbols
        missing = [i for i in ids if (s := catalogue.lookup(i)) is not None and s.details is None]
        if not missing:
            return
        await self._trader.symbols.getMany(missing)
        symbols = self._trader.symbols
        for positionId, position in list(self._positions.items()):
            self._positions[positionId] = positionFromProto(position.raw, self.accountId, symbols)
        for orderId, order in list(self._orders.items()):
            self._orders[orderId] = orderFromProto(order.raw, self.accountId, symbols)

    # --- keeping current -------------------------------------------------------------------

    def applyExecution(self, execution: Execution) -> bool:
        """Apply an execution event; whether the model changed."""
        changed = False
        position = execution.position
        if position is not None:
            if position.status == PositionStatus.OPEN:
                self._positions[position.id] = position
                changed = True
            elif self._positions.pop(position.id, None) is not None:
                changed = True
        order = execution.order
        if order is not None and not isProtection(order.raw):
            if order.pending and execution.type not in _ORDER_ENDS:
                self._orders[order.id] = order
                changed = True
            elif self._orders.pop(order.id, None) is not None:
                changed = True
        if execution.balance is not None:
            deal = execution.deal
            version = deal.closed.balanceVersion if deal is not None and deal.closed is not None else None
            if version is None and execution.raw.HasField("depositWithdraw"):
                cash = execution.raw.depositWithdraw
                version = int(cash.balanceVersion) if cash.HasField("balanceVersion") else None
            changed = self._setBalance(execution.balance, version) or changed
        if changed and position is not None:
            self._watch()
        return changed

    def applyMargin(self, event: MarginChanged) -> bool:
        """Apply a margin change of a position; whether the model changed."""
        position = self._positions.get(event.positionId)
        if position is None:
            return False
        self._positions[event.positionId] = _replace(position, usedMargin=event.usedMargin)
        return True

    def applyTrailingStop(self, event: TrailingStop) -> bool:
        """Apply a trailing stop's move; whether the model changed."""
        position = self._positions.get(event.positionId)
        if position is None or event.stopPrice is None:
            return False
        self._positions[event.positionId] = _replace(position, stopLoss=event.stopPrice)
        return True

    def applyTrader(self, event: TraderUpdated) -> bool:
        """Apply a trader update; whether the model changed."""
        if event.leverage is not None:
            self.leverage = event.leverage
        return self._setBalance(event.balance, event.balanceVersion)

    def watchedSymbols(self) -> set[int]:
        """The symbols whose quotes the model needs now."""
        return set(self._held)

    def _watch(self) -> None:
        """Hold the spots of the open positions' symbols and conversion chains;
        release the others."""
        if self.depositAssetId is None:
            return
        wanted: set[int] = set()
        catalogue = self._trader.symbols
        for position in self._positions.values():
            wanted.add(position.symbolId)
            symbol = catalogue.lookup(position.symbolId)
            if symbol is None or symbol.quoteAsset is None:
                continue
            asset = symbol.quoteAsset.id
            if asset == self.depositAssetId:
                continue
            chain = self._chains.get(asset)
            if chain is not None:
                wanted.update(link.id for link in chain)
            elif asset not in self._chainsAsked:
                self._chainsAsked.add(asset)
                d = self._trader.symbols.conversionChain(asset, self.depositAssetId)
                d.addCallbacks(self._chainLoaded, self._chainFailed, callbackArgs=(asset,), errbackArgs=(asset,))
        trader = self._trader
        for symbolId in wanted - self._held:
            trader._holdSpots(symbolId)
        for symbolId in self._held - wanted:
            trader._releaseSpots(symbolId)
        self._held = wanted

    def _chainLoaded(self, chain: tuple[Symbol, ...], asset: int) -> None:
        self._chains[asset] = chain
        self._watch()

    def _chainFailed(self, failure: Failure, asset: int) -> None:
        self._chainsAsked.discard(asset)
        self._log.warn(
            "Account {account}: no conversion of asset {asset} to the deposit currency: {error}",
            account=self.accountId,
            asset=asset,
            error=str(failure.value),
        )

    def releaseAll(self) -> None:
        """Release every spot subscription the model holds (the trader stops)."""
        for symbolId in self._held:
            self._trader._releaseSpots(symbolId)
        self._held = set()


_ORDER_ENDS = (ExecutionType.ORDER_FILLED, ExecutionType.ORDER_CANCELLED, ExecutionType.ORDER_EXPIRED, ExecutionType.ORDER_REJECTED)


def _replace(position: Position, **changes: Any) -> Position:
    from dataclasses import replace

    return replace(position, **changes)


def _first(failure: Failure) -> Failure:
    from twisted.internet.defer import FirstError

    if failure.check(FirstError):
        return failure.value.subFailure  # type: ignore[no-any-return]
    return failure
