"""ctrader-twisted: a Twisted client for the cTrader Open API.

A drop-in replacement for Spotware's ``ctrader_open_api`` package (change the
imports) with verified TLS, no send batching, typed errors, rate-limit pacing
and a WebSocket transport. Importing this package never imports the global
reactor, and never Autobahn or treq: :class:`WebSocketProtocol` and
:class:`Auth` (OAuth over HTTP) are loaded on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__
from .client import Client
from .endpoints import EndPoints
from .factory import Factory
from .protobuf import Protobuf
from .tcp import TcpProtocol

if TYPE_CHECKING:
    from .auth import Auth
    from .trading import Trader
    from .websocket import WebSocketProtocol

__all__ = [
    "__version__",
    "Auth",
    "Client",
    "EndPoints",
    "Factory",
    "Protobuf",
    "TcpProtocol",
    "Trader",
    "WebSocketProtocol",
]


def __getattr__(name: str) -> Any:
    # WebSocketProtocol needs Autobahn (and txaio.use_twisted()): load it only
    # when someone asks for it.
    if name == "WebSocketProtocol":
        from .websocket import WebSocketProtocol

        return WebSocketProtocol
    if name == "Auth":
        from .auth import Auth

        return Auth
    if name == "Trader":  # the typed layer on top of Client: loaded on first use
        from .trading import Trader

        return Trader
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
