"""Fault injection: what a test can make the simulator do wrong on purpose.

:class:`Faults` is reachable as ``Simulator.faults``. Every setting holds
until :meth:`Faults.clear` (or until a counted fault is used up) and applies
to every connection, current and future.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .server import Simulator

__all__ = ["Faults", "MALFORMED_PAYLOAD"]

#: A frame body that does not decode as a ``ProtoMessage`` (a length-delimited
#: field whose length runs past the end).
MALFORMED_PAYLOAD = b"\x12\x7f\x01"


class Faults:
    """Fault injection for tests (see the module docstring)."""

    def __init__(self, simulator: Simulator) -> None:
        self._simulator = simulator
        self.clear()

    def clear(self) -> None:
        """Turn every fault off."""
        #: Messages still to be received before every connection drops, or ``None``.
        self.dropAfterMessages: int | None = None
        #: Seconds every answer is held before it is written.
        self.responseDelay: float = 0.0
        #: Answers still to swallow (``None``: all) while :attr:`swallowing`.
        self.swallowCount: int | None = None
        self.swallowing = False
        self.swallowPayloadType: int | None = None
        #: Clock time until which new connections are dropped at once.
        self.refuseUntil: float | None = None

    # --- connections ----------------------------------------------------------------

    def dropNow(self) -> None:
        """Abort every live connection now (no close handshake, no goodbye)."""
        for session in list(self._simulator.sessions):
            session.connection.abort()

    def dropAfter(self, nMessages: int) -> None:
        """Abort the connection that receives the *nMessages*-th next message.

        Messages are counted across all connections, heartbeats included; the
        message that reaches the count is not processed, so the request it
        carries is never answered (its outcome is unknown to the client).
        """
        if nMessages < 1:
            raise ValueError(f"nMessages must be at least 1, got {nMessages}")
        self.dropAfterMessages = nMessages

    def refuseConnections(self, seconds: float) -> None:
        """Drop every new connection at once for *seconds* of the simulator's clock."""
        self.refuseUntil = self._simulator.clock.seconds() + seconds

    def refusing(self) -> bool:
        """Whether new connections are being refused now."""
        return self.refuseUntil is not None and self._simulator.clock.seconds() < self.refuseUntil

    # --- answers ----------------------------------------------------------------------

    def delayResponses(self, seconds: float) -> None:
        """Hold every answer (a message carrying a ``clientMsgId``) for *seconds*."""
        if seconds < 0:
            raise ValueError(f"seconds must not be negative, got {seconds}")
        self.responseDelay = seconds

    def swallowResponses(self, count: int | None = None, payloadType: int | None = None) -> None:
        """Never write the next *count* answers (all of them when ``None``).

        :param payloadType: only answers to requests of this payload type, or
            answers of this payload type, are swallowed.
        """
        self.swallowing = True
        self.swallowCount = count
        self.swallowPayloadType = payloadType

    def shouldSwallow(self, requestType: int | None, answerType: int) -> bool:
        """Whether the answer *answerType* to a *requestType* request is to be dropped
        (and count it)."""
        if not self.swallowing:
            return False
        if self.swallowPayloadType is not None and self.swallowPayloadType not in (requestType, answerType):
            return False
        if self.swallowCount is not None:
            self.swallowCount -= 1
            if self.swallowCount <= 0:
                self.swallowing = False
        return True

    def countReceived(self) -> bool:
        """Count one received message; true when the connection must drop now."""
        if self.dropAfterMessages is None:
            return False
        self.dropAfterMessages -= 1
        if self.dropAfterMessages <= 0:
            self.dropAfterMessages = None
            return True
        return False

    # --- bad frames -----------------------------------------------------------------------

    def sendMalformedFrame(self) -> None:
        """Write, to every connection, a frame that is not a ``ProtoMessage``."""
        for session in list(self._simulator.sessions):
            session.connection.writeFrame(MALFORMED_PAYLOAD)

    def sendOversizedFrame(self) -> None:
        """Write, to every connection, the header of a frame larger than any
        client accepts (a 4 GiB - 1 length prefix over TCP, a 2**40-byte
        binary frame header over WebSocket); no body follows."""
        for session in list(self._simulator.sessions):
            session.connection.writeOversizedHeader()


def oversizedTcpHeader() -> bytes:
    """A TCP length prefix of 2**32 - 1 bytes."""
    return struct.pack("!I", 0xFFFFFFFF)


def oversizedWebSocketHeader() -> bytes:
    """An unmasked final binary WebSocket frame header announcing 2**40 bytes."""
    return b"\x82\x7f" + struct.pack("!Q", 1 << 40)

