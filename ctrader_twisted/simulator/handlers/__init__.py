# -*- test-case-name: tests.test_simulator_handlers -*-
"""The simulator's request handlers, one module per concern.

* ``handlers.auth``: application and account authentication, tokens, account
  lists, the cTID profile, token refresh, the server version;
* ``handlers.refdata``: assets, asset classes, symbol categories, symbols,
  conversion chains, the trader;
* ``handlers.marketdata``: spot, live trend-bar and depth subscriptions, trend-bar
  and tick history;
* ``handlers.trading``: orders, positions, reconcile, deal and order lists,
  details, unrealized profit, expected margin, cash flow.

Each module declares its handlers on its own
:class:`~.registry.Registry`, ``HANDLERS``; :func:`defaultRegistry` joins
them into the table a :class:`~ctrader_twisted.simulator.Simulator` answers
requests with.
"""

from __future__ import annotations

from . import auth, marketdata, refdata, trading
from .registry import Registry, Route

__all__ = ["Registry", "Route", "defaultRegistry"]


def defaultRegistry() -> Registry:
    """A new table of every handler of ``handlers.auth``, ``handlers.refdata``,
    ``handlers.marketdata`` and ``handlers.trading``."""
    return Registry(auth.HANDLERS, refdata.HANDLERS, marketdata.HANDLERS, trading.HANDLERS)
