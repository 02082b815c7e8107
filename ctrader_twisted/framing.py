# -*- test-case-name: tests.test_framing -*-
"""The Open API's TCP framing, as pure functions of bytes (no Twisted).

Every message on a TLS TCP connection is a 4-byte big-endian length followed
by that many bytes of a serialized ``ProtoMessage``. :class:`FrameSplitter`
turns the reads of a stream into complete frames; :func:`frame` adds the
prefix. Both the client (:class:`~ctrader_twisted.tcp.TcpProtocol`) and the
simulator's server protocol use them, so there is one splitting loop.

The splitter costs time linear in the bytes received, however the frames are
cut into reads:

* a frame that lies whole inside one read is sliced out of it (one copy);
* the rest of a read that ends mid-frame is kept as it is, and the frame is
  completed from the start of the next read(s) and joined once, so a large
  response arriving in thousands of small reads is copied twice in all, not
  once per read (Twisted's ``IntNStringReceiver`` re-copies its whole buffer
  on every read: Twisted issue #6358).
"""

from __future__ import annotations

import struct

__all__ = ["DEFAULT_MAX_MESSAGE_SIZE", "FrameSplitter", "frame", "HEADER_SIZE"]

#: Default largest frame accepted, in bytes (the official SDK's limit).
DEFAULT_MAX_MESSAGE_SIZE = 15_000_000

#: Bytes of the length prefix.
HEADER_SIZE = 4

_LENGTH = struct.Struct("!I")
_unpackLength = _LENGTH.unpack_from
_packLength = _LENGTH.pack


def frame(data: bytes) -> bytes:
    """Prefix *data* with its 4-byte big-endian length."""
    return _packLength(len(data)) + data


class FrameSplitter:
    """Split a byte stream into the frames of the Open API's TCP framing.

    Feed it every read with :meth:`feed`; it returns the frames the read
    completed, in order. After a length prefix over *maxLength* it stops:
    :attr:`tooLarge` holds the announced length, the frames before that
    prefix are still returned, and later reads give nothing.

    :param maxLength: the largest frame accepted, in bytes (the length prefix
        not counted).
    """

    __slots__ = ("maxLength", "tooLarge", "_header", "_chunks", "_missing")

    def __init__(self, maxLength: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        if maxLength < 0:
            raise ValueError(f"maxLength must not be negative, got {maxLength}")
        self.maxLength = maxLength
        #: The length announced by a prefix over *maxLength*, or ``None``.
        self.tooLarge: int | None = None
        # Bytes of a length prefix cut by the end of a read (fewer than 4).
        self._header = b""
        # The received bytes of a frame body cut by the end of a read, and
        # how many bytes it still misses (0: no frame body is incomplete).
        self._chunks: list[bytes] = []
        self._missing = 0

    def __repr__(self) -> str:
        return f"<FrameSplitter max={self.maxLength} buffered={self.buffered}>"

    @property
    def buffered(self) -> int:
        """Bytes of the stream received but not yet returned as a frame (an
        incomplete prefix, or the prefix and received part of a frame)."""
        if self._missing:
            return HEADER_SIZE + sum(len(chunk) for chunk in self._chunks)
        return len(self._header)

    @property
    def missing(self) -> int:
        """Bytes still missing from the frame body being received (0: none)."""
        return self._missing

    def clear(self) -> None:
        """Forget any incomplete frame (the connection is gone)."""
        self._header = b""
        self._chunks = []
        self._missing = 0

    def feed(self, data: bytes) -> list[bytes]:
        """The frames completed by *data*, in order (each without its prefix)."""
        if self.tooLarge is not None:
            return []
        frames: list[bytes] = []
        size = len(data)
        offset = 0
        if self._missing:
            # Complete the frame body carried over from earlier reads.
            missing = self._missing
            if size < missing:
                if size:
                    self._chunks.append(data)
                    self._missing = missing - size
                return frames
            chunks = self._chunks
            chunks.append(data[:missing] if missing < size else data)
            frames.append(b"".join(chunks))
            self._chunks = []
            self._missing = 0
            offset = missing
        elif self._header:
            # Complete the length prefix cut by the end of the last read.
            need = HEADER_SIZE - len(self._header)
            header = self._header + data[:need]
            if len(header) < HEADER_SIZE:
                self._header = header
                return frames
            self._header = b""
            (length,) = _unpackLength(header)
            if length > self.maxLength:
                self.tooLarge = length
                return frames
            offset = need
            end = offset + length
            if end > size:
                if offset < size:
                    self._chunks = [data[offset:]]
                self._missing = end - size
                return frames
            frames.append(data[offset:end])
            offset = end
        limit = self.maxLength
        append = frames.append
        start = offset + HEADER_SIZE
        while start <= size:
            (length,) = _unpackLength(data, offset)
            end = start + length
            if end > size or length > limit:
                if length > limit:
                    self.tooLarge = length
                    return frames
                if start < size:
                    self._chunks = [data[start:]]
                self._missing = end - size
                return frames
            append(data[start:end])
            offset = end
            start = end + HEADER_SIZE
        if offset < size:
            self._header = data[offset:]
        return frames
