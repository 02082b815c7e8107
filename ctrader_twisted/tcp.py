# -*- test-case-name: tests.test_tcp -*-
"""TLS TCP transport: 4-byte big-endian length, then one serialized ``ProtoMessage``.

:class:`TcpProtocol` knows bytes and frames only. It hands every complete
frame to its factory (the request core, :class:`ctrader_twisted.factory.Factory`)
and writes the frames the core gives it. It is an
:class:`~twisted.protocols.basic.Int32StringReceiver` (so the framing and
``sendString`` are the familiar ones), with two changes:

* the maximum frame size is 15,000,000 bytes by default (Twisted's default of
  99,999 is too small for symbol lists and history) and configurable through
  the factory's ``maxMessageSize``;
* received bytes go through a ``bytearray`` buffer, so one large frame that
  arrives in many small reads costs time linear in its size (Twisted's
  ``IntNStringReceiver`` re-copies the partial frame on every read: Twisted
  issue #6358).
"""

from __future__ import annotations

import struct
from functools import partial
from typing import TYPE_CHECKING, Any, Callable

from twisted.internet.interfaces import IAddress, IHandshakeListener, ISSLTransport
from twisted.logger import Logger
from twisted.protocols.basic import Int32StringReceiver
from twisted.python.failure import Failure
from zope.interface import implementer

from .errors import FrameTooLargeError

if TYPE_CHECKING:
    from .factory import Factory

__all__ = ["TcpProtocol", "DEFAULT_MAX_MESSAGE_SIZE", "frame"]

#: Default largest frame accepted, in bytes (the official SDK's limit).
DEFAULT_MAX_MESSAGE_SIZE = 15_000_000

_LENGTH = struct.Struct("!I")
_unpackLength = _LENGTH.unpack_from
_packLength = _LENGTH.pack


def frame(data: bytes) -> bytes:
    """Prefix *data* with its 4-byte big-endian length."""
    return _packLength(len(data)) + data


@implementer(IHandshakeListener)
class TcpProtocol(Int32StringReceiver):
    """The TCP framing protocol of the Open API.

    Built by :class:`~ctrader_twisted.factory.Factory` (through
    :meth:`forFactory`); all state is per instance.
    """

    _log = Logger()
    MAX_LENGTH = DEFAULT_MAX_MESSAGE_SIZE

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._failed = False
        self._lost = False
        self.factory: Factory | None = None
        #: where the complete frames of a read go in one call (the core's
        #: ``framesReceived``, bound by :meth:`forFactory`), or ``None`` for
        #: one :meth:`stringReceived` call per frame
        self._receiveMany: Callable[[list[bytes]], None] | None = None

    @classmethod
    def forFactory(cls, factory: Factory, addr: IAddress | None) -> TcpProtocol:
        """Build a protocol bound to *factory* (the request core)."""
        proto = cls()
        proto.factory = factory
        proto.MAX_LENGTH = factory.maxMessageSize
        if cls.stringReceived is TcpProtocol.stringReceived:
            # The frames of each read go straight to the core, in one call.
            proto._receiveMany = partial(factory.framesReceived, proto)
        return proto

    # --- connection life ---------------------------------------------------

    def connectionMade(self) -> None:
        # Over TLS, wait for the handshake (and so the certificate check):
        # until then nothing is really sent, and a refused certificate must
        # not look like a connection that was made.
        if not ISSLTransport.providedBy(self.transport):
            assert self.factory is not None
            self.factory.connectionReady(self)

    def handshakeCompleted(self) -> None:
        """The TLS handshake succeeded: the peer is verified, the link is ready."""
        if self.factory is not None and not self._lost:
            self.factory.connectionReady(self)

    def connectionLost(self, reason: Failure = Failure(ConnectionError())) -> None:
        self._lost = True
        self._buffer = bytearray()
        if self.factory is not None:
            self.factory.connectionLost(self, reason)

    # --- receiving ------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        """Split *data* into frames; linear in the bytes received."""
        if self._failed:
            return
        buf = self._buffer
        if buf:
            buf += data
            source: Any = memoryview(buf)
        else:
            source = data  # fast path: frames straight from the read
        if self._receiveMany is not None and not self.paused:
            self._splitAndDeliver(data, buf, source)
        else:
            self._deliverEach(data, buf, source)

    def _splitAndDeliver(self, data: bytes, buf: bytearray, source: Any) -> None:
        # All complete frames of this read go to the core in one call.
        size = len(source)
        offset = 0
        limit = self.MAX_LENGTH
        frames: list[bytes] = []
        append = frames.append
        tooLong = None
        try:
            while size - offset >= 4:
                (length,) = _unpackLength(source, offset)
                if length > limit:
                    tooLong = length
                    break
                end = offset + 4 + length
                if end > size:
                    break
                append(bytes(source[offset + 4 : end]))
                offset = end
        finally:
            if source is not data:
                source.release()
        if tooLong is not None:
            self._buffer = bytearray()
        elif source is not data:
            if offset:
                del buf[:offset]
        elif offset < size:
            buf += data[offset:] if offset else data
        if frames:
            self._receiveMany(frames)  # type: ignore[misc]
        if tooLong is not None and not self._lost:
            self.lengthLimitExceeded(tooLong)

    def _deliverEach(self, data: bytes, buf: bytearray, source: Any) -> None:
        # One stringReceived call per frame (subclasses that override it,
        # such as the simulator's server protocol, and paused transports).
        size = len(source)
        offset = 0
        limit = self.MAX_LENGTH
        receive = self.stringReceived
        try:
            while size - offset >= 4:
                (length,) = _unpackLength(source, offset)
                if length > limit:
                    self._buffer = bytearray()
                    self.lengthLimitExceeded(length)
                    return
                end = offset + 4 + length
                if end > size:
                    break
                receive(bytes(source[offset + 4 : end]))
                offset = end
                if self._failed or self._lost or self.paused:
                    break
        finally:
            if source is not data:
                source.release()
        if self._failed or self._lost:
            return
        if source is not data:
            if offset:
                del buf[:offset]
        elif offset < size:
            buf += data[offset:] if offset else data

    def stringReceived(self, data: bytes) -> None:
        """One complete frame: hand it to the core."""
        assert self.factory is not None
        self.factory.frameReceived(self, data)

    def lengthLimitExceeded(self, length: int) -> None:
        """A length prefix over the maximum: report it once and abort."""
        if self._failed:
            return
        self._failed = True
        error = FrameTooLargeError(length, self.MAX_LENGTH)
        if self.factory is not None:
            self.factory.protocolFailed(self, error)
        else:  # pragma: no cover - a protocol is always built by a factory
            self.abort()

    # --- sending ----------------------------------------------------------------

    def writeFrame(self, data: bytes) -> None:
        """Write one serialized ``ProtoMessage`` with its length prefix, now."""
        self.transport.write(_packLength(len(data)) + data)  # type: ignore[union-attr]

    def abort(self) -> None:
        """Drop the connection at once (used after a protocol error)."""
        self._failed = True
        if not self._lost and self.transport is not None:
            self.transport.abortConnection()  # type: ignore[attr-defined]

    def close(self) -> None:
        """Close the connection cleanly after pending writes."""
        if not self._lost and self.transport is not None:
            self.transport.loseConnection()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} max={self.MAX_LENGTH}>"
