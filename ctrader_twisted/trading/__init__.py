"""The typed trading API: symbols, Decimal prices, typed events, orders and a live account.

A layer on top of :class:`~ctrader_twisted.Client` (the core never imports
it; the raw API stays as it is, and usable beside it). Start with
:class:`Trader`::

    from ctrader_twisted.trading import Trader, Spot

    trader = Trader(client, accountId, accessToken)
    await trader.start()
    fill = await trader.buy("EURUSD", lots="0.1", stopLossPips=20)

Where things live:

* :mod:`.trader`: :class:`Trader`, the facade of one account (subscriptions,
  order helpers, event routing);
* :mod:`.symbols`: the symbol catalogue (:class:`SymbolCatalogue`, :class:`Symbol`);
* :mod:`.models`: enums and the typed orders, positions and deals;
* :mod:`.events`: the typed events;
* :mod:`.market`: shared server subscriptions, quotes, order books;
* :mod:`.streams`: subscriptions and async iterators;
* :mod:`.orders`: order tracking, fills and reconciliation of unknown outcomes;
* :mod:`.account`: the live account model;
* :mod:`ctrader_twisted.units`: every unit conversion.
"""

from .account import Account
from .events import (
    AccountChanged,
    AccountLogout,
    Bar,
    BookLevel,
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
)
from .models import (
    ClosedDetail,
    Deal,
    DealStatus,
    ExecutionType,
    Order,
    OrderStatus,
    OrderType,
    Period,
    PnL,
    Position,
    PositionStatus,
    Side,
    TimeInForce,
)
from .orders import Fill
from .streams import EventStream, Subscription, awaitable
from .symbols import Asset, Category, Symbol, SymbolCatalogue, SymbolDetails
from .trader import UNCHANGED, Trader

__all__ = [
    "Trader",
    "UNCHANGED",
    "Account",
    "SymbolCatalogue",
    "Symbol",
    "SymbolDetails",
    "Asset",
    "Category",
    "Side",
    "OrderType",
    "OrderStatus",
    "TimeInForce",
    "ExecutionType",
    "PositionStatus",
    "DealStatus",
    "Period",
    "Order",
    "Position",
    "Deal",
    "ClosedDetail",
    "PnL",
    "Fill",
    "Spot",
    "Bar",
    "BookLevel",
    "OrderBook",
    "Depth",
    "Execution",
    "OrderRejection",
    "MarginChanged",
    "PnLChanged",
    "TraderUpdated",
    "TrailingStop",
    "MarginCall",
    "SymbolChanged",
    "AccountLogout",
    "TokenInvalidated",
    "AccountChanged",
    "Subscription",
    "EventStream",
    "awaitable",
]
