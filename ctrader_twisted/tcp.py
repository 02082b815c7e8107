# -*- test-case-name: tests.test_tcp -*-
"""TLS TCP transport: a 4-byte big-endian length, then one serialized ``ProtoMessage``.

:class:`TcpProtocol` knows bytes and frames only. It splits reads into frames
with :class:`~ctrader_twisted.framing.FrameSplitter` (linear in the bytes
received, 15,000,000-byte frames by default) and hands each read's frames to
its receiver, the request core, in one call; it writes the frames the core
gives it. It is an :class:`~twisted.protocols.basic.Int32StringReceiver`,
so ``sendString`` and ``MAX_LENGTH`` are the familiar ones.

Over TLS it reports itself ready only once the handshake has verified the
server, and it gives the handshake a deadline: a server that accepts TCP and
then never completes the handshake fails the attempt with
:class:`~ctrader_twisted.errors.HandshakeTimeoutError` instead of holding the
client forever.

It keeps the official SDK's ``send(message, instant, clientMsgId,
isCanceled)`` and ``heartbeat()`` for code that writes through the protocol
directly; both write at once.
"""

from __future__ import annotations

from typing import Any, Callable

from google.protobuf.message import Message
from twisted.internet.interfaces import IHandshakeListener, ISSLTransport
from twisted.logger import Logger
from twisted.protocols.basic import Int32StringReceiver
from twisted.python.failure import Failure
from zope.interface import implementer, provider

from .errors import FrameTooLargeError, HandshakeTimeoutError, InvalidMessageError, NotConnectedError
from .framing import DEFAULT_MAX_MESSAGE_SIZE, FrameSplitter, frame
from .interfaces import IFrameReceiver, IFrameTransport, ITransportFactory, TransportSettings
from .keepalive import HEARTBEAT_FRAME, HandshakeDeadline
from .messages.OpenApiCommonMessages_pb2 import ProtoMessage
from .protobuf import encodeEnvelope, payloadTypeOf

__all__ = ["TcpProtocol", "DEFAULT_MAX_MESSAGE_SIZE", "frame"]


@implementer(IHandshakeListener, IFrameTransport)
@provider(ITransportFactory)
class TcpProtocol(Int32StringReceiver):
    """The TCP framing protocol of the Open API.

    Built by the core through :meth:`buildTransport`; all state is per
    instance (nothing is shared between connections or clients).
    """

    _log = Logger()
    MAX_LENGTH = DEFAULT_MAX_MESSAGE_SIZE

    def __init__(self) -> None:
        #: the request core this protocol reports to
        self.receiver: IFrameReceiver | None = None
        self.factory: Any = None
        self.settings: TransportSettings | None = None
        self._splitter = FrameSplitter(self.MAX_LENGTH)
        self._deliver: Callable[[Any, list[bytes]], None] | None = None
        self._deadline: HandshakeDeadline | None = None
        self._timedOut: HandshakeTimeoutError | None = None
        self._failed = False
        self._lost = False

    @classmethod
    def buildTransport(cls, receiver: IFrameReceiver, settings: TransportSettings) -> TcpProtocol:
        """A protocol for one connection attempt, reporting to *receiver*."""
        proto = cls()
        proto.receiver = proto.factory = receiver
        proto.settings = settings
        proto.MAX_LENGTH = settings.maxMessageSize
        proto._splitter = FrameSplitter(settings.maxMessageSize)
        if cls.stringReceived is TcpProtocol.stringReceived:
            # The frames of each read go to the core in one call.
            proto._deliver = receiver.framesReceived
        return proto

    # --- connection life ---------------------------------------------------

    def connectionMade(self) -> None:
        # Over TLS, wait for the handshake (and so the certificate check):
        # until then nothing is really sent, and a refused certificate must
        # not look like a connection that was made.
        if ISSLTransport.providedBy(self.transport):
            if self.settings is not None:
                self._deadline = HandshakeDeadline(
                    self.settings.clock, self.settings.handshakeTimeout, self._handshakeTimedOut
                )
        elif self.receiver is not None:
            self.receiver.connectionReady(self)

    def handshakeCompleted(self) -> None:
        """The TLS handshake succeeded: the peer is verified, the link is ready."""
        if self._deadline is not None:
            self._deadline.cancel()
        if self.receiver is not None and not self._lost:
            self.receiver.connectionReady(self)

    def _handshakeTimedOut(self, seconds: float) -> None:
        self._timedOut = HandshakeTimeoutError(seconds)
        self._log.warn("{error}; dropping the connection", error=str(self._timedOut))
        self.abort()

    def connectionLost(self, reason: Failure = Failure(ConnectionError())) -> None:
        self._lost = True
        if self._deadline is not None:
            self._deadline.cancel()
        self._splitter.clear()
        if self._timedOut is not None:
            reason = Failure(self._timedOut)
        if self.receiver is not None:
            self.receiver.connectionLost(self, reason)

    # --- receiving ------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        """Split *data* into frames and hand them on, all of this read at once."""
        if self._failed:
            return
        splitter = self._splitter
        frames = splitter.feed(data)
        deliver = self._deliver
        if deliver is not None:
            deliver(self, frames)
        else:
            for one in frames:
                if self._failed or self._lost:
                    return
                self.stringReceived(one)
        if splitter.tooLarge is not None and not self._lost:
            self.lengthLimitExceeded(splitter.tooLarge)

    def stringReceived(self, data: bytes) -> None:
        """One complete frame (used only by subclasses that override it; the
        core otherwise gets each read's frames in one call)."""
        if self.receiver is not None:
            self.receiver.framesReceived(self, (data,))

    def lengthLimitExceeded(self, length: int) -> None:
        """A length prefix over the maximum: report it once; the core aborts."""
        if self._failed:
            return
        self._failed = True
        error = FrameTooLargeError(length, self.MAX_LENGTH)
        if self.receiver is not None:
            self.receiver.protocolFailed(self, error)
        else:
            self.abort()

    # --- the core's transport interface ------------------------------------------

    def writeFrame(self, data: bytes) -> None:
        """Write one serialized ``ProtoMessage`` with its length prefix, now.

        :raises NotConnectedError: the connection is gone.
        """
        if self._lost or self.transport is None:
            raise NotConnectedError("the TCP connection is closed")
        self.transport.write(frame(data))

    def abort(self) -> None:
        """Drop the connection at once (used after a protocol error)."""
        self._failed = True
        if not self._lost and self.transport is not None:
            self.transport.abortConnection()  # type: ignore[attr-defined]

    def close(self) -> None:
        """Close the connection cleanly after pending writes."""
        if not self._lost and self.transport is not None:
            self.transport.loseConnection()

    # --- the official SDK's protocol methods -------------------------------------

    def send(
        self,
        message: Any,
        instant: bool = False,
        clientMsgId: str | None = None,
        isCanceled: Callable[[], bool] | None = None,
    ) -> None:
        """Write *message* now (the official SDK's signature).

        :param message: a message object (wrapped in a ``ProtoMessage`` with
            its payload type and *clientMsgId*), a ready ``ProtoMessage``
            (written as it is), or serialized ``ProtoMessage`` bytes.
        :param instant: accepted for compatibility: every write is instant
            here (the official SDK otherwise waits up to a second).
        :param isCanceled: when given and it returns true, nothing is written.
        :raises InvalidMessageError: *message* is a message without a payload type.
        :raises NotConnectedError: the connection is gone.
        """
        if isCanceled is not None and isCanceled():
            return
        if isinstance(message, (bytes, bytearray)):
            data = bytes(message)
        elif isinstance(message, ProtoMessage):
            data = message.SerializeToString()
        elif isinstance(message, Message):
            payloadType = payloadTypeOf(message)
            if payloadType is None:
                raise InvalidMessageError(f"{message.DESCRIPTOR.name} has no payloadType: it cannot be sent")
            data = encodeEnvelope(payloadType, message.SerializeToString(), clientMsgId)
        else:
            raise InvalidMessageError(f"cannot send a {type(message).__name__}: give a message or bytes")
        self.writeFrame(data)

    def heartbeat(self) -> None:
        """Write a ``ProtoHeartbeatEvent`` now."""
        self.writeFrame(HEARTBEAT_FRAME)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} max={self.MAX_LENGTH}>"
