# -*- test-case-name: tests.test_dispatch -*-
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

    def addMessageCallback(self, callback: MessageCallback) -> None:
        """Call ``callback(protoMessage)`` for every message received."""
        self._callbacks.append(callback)

    def removeMessageCallback(self, callback: MessageCallback) -> None:
        """Stop calling a callback added with :meth:`addMessageCallback`.

        :raises ValueError: it was not added.
        """
        self._callbacks.remove(callback)

    def addListener(self, payload: Any, listener: Listener) -> None:
        """Call ``listener(decodedPayload)`` for every message of one type.

        :param payload: message class, name, short name or payload type.
        :raises UnknownMessageError: *payload* names no message with a payload type.
        """
        payloadType = Protobuf.get_type(payload)
        self._listeners.setdefault(payloadType, []).append(listener)

    def removeListener(self, payload: Any, listener: Listener) -> None:
        """Remove a listener added with :meth:`addListener`.

        :raises ValueError: it was not added.
        """
        payloadType = Protobuf.get_type(payload)
        listeners = self._listeners.get(payloadType, [])
        listeners.remove(listener)
        if not listeners:
            self._listeners.pop(payloadType, None)

    def dispatch(self, link: _Link, frames: Sequence[bytes]) -> None:
        """Decode, correlate and dispatch the frames of one read, in order.

        Only requests written on *link*'s transport are answered by them.
        Stops early if *link* is lost while a frame is handled (a listener
        may stop the client).
        """
        transport = link.transport
        pending = self._correlator.pending
        answer = self._correlator.answer
        callbacks = self._callbacks
        listenersByType = self._listeners
        log = self._log
        for data in frames:
            if link.lost:
                return
            try:
                message = _decodeEnvelope(data)
            except DecodeError as e:
                log.warn(
                    "Skipped a {length}-byte frame that is not a ProtoMessage: {error}",
                    length=len(data),
                    error=str(e),
                )
                continue
            payloadType = message.payloadType
            if not payloadType:  # missing (0 is no payload type)
                log.warn("Skipped a {length}-byte frame without a payloadType", length=len(data))
                continue
            for callback in callbacks:
                try:
                    callback(message)
                except Exception:
                    log.failure("Exception in user callback {callback!r}", callback=callback)
            listeners = listenersByType.get(payloadType)
            if listeners:
                try:
                    payload = _DECODERS[payloadType](message.payload)
                except DecodeError as e:
                    log.warn(
                        "Could not decode {name} for its listeners: {error}",
                        name=Protobuf.name(payloadType),
                        error=str(e),
                    )
                else:
                    for listener in listeners:
                        try:
                            listener(payload)
                        except Exception:
                            log.failure("Exception in user callback {callback!r}", callback=listener)
            msgId = message.clientMsgId
            if msgId:
                request = pending.get(msgId)
                if request is not None and request.connection is transport and not request.done:
                    answer(request, message)
                elif request is None and payloadType != _HEARTBEAT:
                    log.debug(
                        "{name} for clientMsgId {clientMsgId} matches no pending request",
                        name=Protobuf.name(payloadType),
                        clientMsgId=msgId,
                    )
