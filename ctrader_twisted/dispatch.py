# -*- test-case-name: tests.test_fastpath,tests.test_factory -*-
"""Dispatch: every received frame to its request, its callbacks and its listeners.

This is the hot path of every spot event. :class:`Dispatcher` decodes each
``ProtoMessage`` of a read, then, in this order:

* calls the **message callbacks** (``callback(protoMessage)``, every
  message, answers included: the official SDK's ``setMessageReceivedCallback``);
* calls the **listeners** of the message's payload type
  (``listener(decodedPayload)``), decoding the payload once for all of them
  through a table built once;
* hands an answer to the correlator (:mod:`ctrader_twisted.requests`),
  which fires its request's Deferred.

So callbacks and listeners see an answer before the code waiting on the
request does (the official SDK's order), and a request's callback sees the
state its answer brought (an execution already applied to an account model,
say).

User code is isolated: an exception in a callback or listener is logged and
goes no further (it never reaches the transport, which would drop the
connection). A frame that is not a ``ProtoMessage`` is logged and skipped.

The fast path. Nearly every frame of a stream is a plain event: its
``ProtoMessage`` holds a ``payloadType`` and a ``payload`` and nothing else,
so its bytes are a small fixed header (``0x08``, the payload type as a
varint, ``0x12``, the payload's length as a varint) followed by the payload
up to the end of the frame. While no message callback is registered (only
they need the envelope object), such a frame is recognised from its first
bytes and its payload goes to the listeners' decoder straight from the
frame, without decoding the envelope. Every other frame (a message callback
present, a ``clientMsgId``, unknown or repeated fields, fields in another
order, a non-canonical payload type, a payload type below 128, a length that
does not end the frame) takes the general path. Both deliver exactly the
same calls (``tests/test_fastpath.py`` checks it on random frames).
"""

from __future__ import annotations

from typing import Any, Callable, Protocol as TypingProtocol, Sequence

from google.protobuf.message import DecodeError
from twisted.logger import Logger

from .messages.OpenApiCommonMessages_pb2 import ProtoMessage
from .messages.OpenApiCommonModelMessages_pb2 import ProtoPayloadType
from .protobuf import Protobuf
from .requests import Correlator

__all__ = ["Dispatcher", "MessageCallback", "Listener"]

MessageCallback = Callable[[ProtoMessage], Any]
Listener = Callable[[Any], Any]

_HEARTBEAT = ProtoPayloadType.HEARTBEAT_EVENT
_decodeEnvelope = ProtoMessage.FromString
#: payload type -> the message class's ``FromString``, built once.
_DECODERS = {payloadType: cls.FromString for payloadType, cls in Protobuf.payloadTypes().items()}
#: The first 4 bytes of a plain event's envelope -> its payload type: field 1
#: (varint tag 0x08), the payload type as a canonical two-byte varint (every
#: Open API message from 128 to 16383), then field 2's tag (0x12).
_PLAIN_HEADERS = {
    bytes((0x08, 0x80 | payloadType & 0x7F, payloadType >> 7, 0x12)): payloadType
    for payloadType in _DECODERS
    if 0x80 <= payloadType < 0x4000
}

#: A route: how the frames starting with one 5-byte header are dispatched,
#: ``(size, payloadType, decode, listeners)``. ``size`` is the length of a
#: plain event with that header and a one-byte payload length (its payload
#: starts at byte 5); :data:`_LONG` when the payload length takes more bytes;
#: :data:`_GENERAL`'s -1 (no frame has it) for every other header. ``decode``
#: is the payload type's ``FromString``; ``listeners`` its live list of
#: listeners, or ``None``.
_Route = tuple[int, int, Any, "list[Listener] | None"]
_GENERAL: _Route = (-1, 0, None, None)
_LONG = -2
#: From this size on a payload is decoded through a memoryview of its frame
#: rather than a copy (upb reads a buffer without keeping it): a 14 MiB
#: response is not copied (and its pages faulted in) once more for nothing.
_VIEW_FROM = 1 << 16


def _payloadStart(data: bytes, size: int) -> int:
    """Where the payload of *data* (*size* bytes, starting with a plain
    event's 4-byte header) begins if its length varint, at byte 4, ends the
    frame exactly; 0 otherwise."""
    length = 0
    shift = 0
    for index in range(4, 9):  # a length of at most 5 varint bytes (2**35 > any frame)
        if index >= size:
            return 0
        byte = data[index]
        length |= (byte & 0x7F) << shift
        if byte < 0x80:
            return index + 1 if index + 1 + length == size else 0
        shift += 7
    return 0


def _largePlainStart(data: bytes) -> int:
    """Where the payload of *data* begins if it is a frame of :data:`_VIEW_FROM`
    bytes or more shaped like a plain event (its payload then equals the
    envelope's); 0 otherwise."""
    size = len(data)
    if size < _VIEW_FROM or data[:4] not in _PLAIN_HEADERS:
        return 0
    return _payloadStart(data, size)


class _Link(TypingProtocol):
    #: the transport the frames came from
    transport: Any
    #: set once the connection is gone
    lost: bool


class Dispatcher:
    """Message callbacks and per-payload-type listeners, and the receive loop.

    :param correlator: where answers go.
    """

    _log = Logger()

    def __init__(self, correlator: Correlator) -> None:
        self._correlator = correlator
        self._callbacks: list[MessageCallback] = []
        self._listeners: dict[int, list[Listener]] = {}
        # 5-byte frame header -> route (see _Route), filled as headers are
        # first seen, while no message callback is registered; emptied in
        # place whenever callbacks or listeners change. Only plain events'
        # headers are kept: at most 94 types x 256 entries.
        self._routes: dict[bytes, _Route] = {}

    def addMessageCallback(self, callback: MessageCallback) -> None:
        """Call ``callback(protoMessage)`` for every message received."""
        self._callbacks.append(callback)
        self._routes.clear()

    def removeMessageCallback(self, callback: MessageCallback) -> None:
        """Stop calling a callback added with :meth:`addMessageCallback`.

        :raises ValueError: it was not added.
        """
        self._callbacks.remove(callback)
        self._routes.clear()

    def addListener(self, payload: Any, listener: Listener) -> None:
        """Call ``listener(decodedPayload)`` for every message of one type.

        :param payload: message class, name, short name or payload type.
        :raises UnknownMessageError: *payload* names no message with a payload type.
        """
        payloadType = Protobuf.get_type(payload)
        self._listeners.setdefault(payloadType, []).append(listener)
        self._routes.clear()

    def removeListener(self, payload: Any, listener: Listener) -> None:
        """Remove a listener added with :meth:`addListener`.

        :raises ValueError: it was not added.
        """
        payloadType = Protobuf.get_type(payload)
        listeners = self._listeners.get(payloadType, [])
        listeners.remove(listener)
        if not listeners:
            self._listeners.pop(payloadType, None)
        self._routes.clear()

    def _route(self, header: bytes) -> _Route:
        """The route of the frames starting with *header* (their first 5
        bytes, or fewer for a shorter frame); kept if it is a plain event's."""
        payloadType = _PLAIN_HEADERS.get(header[:4])
        if payloadType is None or len(header) < 5 or self._callbacks:
            return _GENERAL
        length = header[4]
        route = (
            5 + length if length < 0x80 else _LONG,
            payloadType,
            _DECODERS[payloadType],
            self._listeners.get(payloadType),
        )
        self._routes[header] = route
        return route

    def dispatch(self, link: _Link, frames: Sequence[bytes]) -> None:
        """Decode, correlate and dispatch the frames of one read, in order.

        Only requests written on *link*'s transport are answered by them.
        Stops early if *link* is lost while a frame is handled (a listener
        may stop the client). Plain events take the fast path (see the
        module docstring) while no message callback is registered.
        """
        routeOf = self._routes.get
        newRoute = self._route
        general = self._general
        listenersByType = self._listeners
        payload: bytes | memoryview
        for data in frames:
            if link.lost:
                return
            header = data[:5]
            size, payloadType, decode, listeners = routeOf(header) or newRoute(header)
            message = None
            if size == len(data):  # a plain event
                if not listeners:
                    continue
                payload = data[5:]
            else:
                start = _payloadStart(data, len(data)) if size == _LONG else 0
                if start:  # a plain event with a payload of 128 bytes or more
                    if not listeners:
                        continue
                    payload = data[start:] if len(data) < _VIEW_FROM else memoryview(data)[start:]
                else:
                    message = general(data)
                    if message is None:
                        continue
                    payloadType = message.payloadType
                    listeners = listenersByType.get(payloadType)
                    if listeners:
                        decode = _DECODERS[payloadType]
                        start = _largePlainStart(data)
                        payload = memoryview(data)[start:] if start else message.payload
            if listeners:
                try:
                    event = decode(payload)
                except DecodeError as e:
                    self._log.warn(
                        "Could not decode {name} for its listeners: {error}",
                        name=Protobuf.name(payloadType),
                        error=str(e),
                    )
                else:
                    for listener in listeners:
                        try:
                            listener(event)
                        except Exception:
                            self._log.failure("Exception in user callback {callback!r}", callback=listener)
            if message is not None and message.clientMsgId:
                self._answer(link.transport, message)

    def _general(self, data: bytes) -> ProtoMessage | None:
        """The general path of one frame: decode its envelope and call the
        message callbacks. Returns the envelope, or ``None`` for a frame that
        is skipped (logged)."""
        # self._log is a descriptor making a new Logger on every access: it is
        # read only where something is logged.
        try:
            message = _decodeEnvelope(data)
        except DecodeError as e:
            self._log.warn(
                "Skipped a {length}-byte frame that is not a ProtoMessage: {error}",
                length=len(data),
                error=str(e),
            )
            return None
        if not message.payloadType:  # missing (0 is no payload type)
            self._log.warn("Skipped a {length}-byte frame without a payloadType", length=len(data))
            return None
        for callback in self._callbacks:
            try:
                callback(message)
            except Exception:
                self._log.failure("Exception in user callback {callback!r}", callback=callback)
        return message

    def _answer(self, transport: Any, message: ProtoMessage) -> None:
        """Hand *message* to the request it answers, if one written on
        *transport* is waiting for it (after its callbacks and listeners)."""
        msgId = message.clientMsgId
        request = self._correlator.pending.get(msgId)
        if request is not None and request.connection is transport and not request.done:
            self._correlator.answer(request, message)
        elif request is None and message.payloadType != _HEARTBEAT:
            self._log.debug(
                "{name} for clientMsgId {clientMsgId} matches no pending request",
                name=Protobuf.name(message.payloadType),
                clientMsgId=msgId,
            )
