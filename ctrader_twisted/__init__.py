"""ctrader-twisted: a Twisted client for the cTrader Open API.

A drop-in replacement for Spotware's ``ctrader_open_api`` package (change the
imports) with verified TLS, no send batching, typed errors, rate-limit pacing
and a WebSocket transport. Importing this package never imports the global
reactor.
"""

from ._version import __version__
from .client import Client
from .endpoints import EndPoints
from .factory import Factory
from .protobuf import Protobuf
from .tcp import TcpProtocol
from .websocket import WebSocketProtocol

__all__ = ["__version__", "Client", "EndPoints", "Factory", "Protobuf", "TcpProtocol", "WebSocketProtocol"]
