"""The official SDK's module name for the TCP transport.

``from ctrader_twisted.tcpProtocol import TcpProtocol`` is
``from ctrader_twisted.tcp import TcpProtocol``: the same class.
"""

from .tcp import TcpProtocol

__all__ = ["TcpProtocol"]
