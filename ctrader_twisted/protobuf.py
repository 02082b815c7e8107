# -*- test-case-name: tests.test_protobuf -*-
"""The message registry: find Open API message classes by name or payload type.

:class:`Protobuf` keeps the official SDK's interface (``get``, ``get_type``,
``extract``) so ported code works unchanged, and adds strict building
(:meth:`Protobuf.build`) with errors that name the problem. Every lookup table
is built once, when this module is imported.
"""

from __future__ import annotations

import difflib
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError, Message

from .errors import InvalidMessageError, UnknownMessageError
from .messages import (
    OpenApiCommonMessages_pb2,
    OpenApiCommonModelMessages_pb2,
    OpenApiMessages_pb2,
    OpenApiModelMessages_pb2,
)
from .messages.OpenApiCommonMessages_pb2 import ProtoMessage

__all__ = ["Protobuf", "MessageKey", "SECRET_FIELDS", "redact", "encodeEnvelope"]

#: What identifies a message type: a class, a full name (``"ProtoOAVersionReq"``),
#: a short name (``"VersionReq"``) or a payload type number (``2104``).
MessageKey = type[Message] | str | int

_TYPE_NAMES = {
    value: key[len("TYPE_"):].lower() for key, value in vars(FieldDescriptor).items() if key.startswith("TYPE_")
}

#: Field names whose values are secrets: never logged, never shown in reprs.
SECRET_FIELDS = frozenset({"clientSecret", "accessToken", "refreshToken"})


def _collect() -> tuple[dict[int, type[Message]], dict[str, type[Message]], dict[str, type[Message]]]:
    byType: dict[int, type[Message]] = {}
    byName: dict[str, type[Message]] = {}
    byShort: dict[str, type[Message]] = {}
    # ProtoOA* messages are listed last so that, where a short name is shared
    # (``ErrorRes``), the Open API message wins, as in the official SDK.
    for module in (OpenApiCommonMessages_pb2, OpenApiMessages_pb2):
        for name, descriptor in module.DESCRIPTOR.message_types_by_name.items():
            cls = getattr(module, name)
            byName[name] = cls
            field = descriptor.fields_by_name.get("payloadType")
            if field is not None and field.has_default_value and name != "ProtoMessage":
                byType[int(field.default_value)] = cls
    for name, cls in byName.items():
        if name.startswith("ProtoOA"):
            byShort[name[len("ProtoOA"):]] = cls
    for name, cls in byName.items():
        if not name.startswith("ProtoOA") and name.startswith("Proto"):
            byShort.setdefault(name[len("Proto"):], cls)
    return byType, byName, byShort


_BY_TYPE, _BY_NAME, _BY_SHORT = _collect()
# Model messages (ProtoOASymbol, ProtoOAOrder, ...) have no payload type but
# can still be looked up by name.
for _module in (OpenApiModelMessages_pb2,):
    for _name in _module.DESCRIPTOR.message_types_by_name:
        _BY_NAME.setdefault(_name, getattr(_module, _name))
_PAYLOAD_TYPE_NAMES: dict[int, str] = {t: cls.DESCRIPTOR.name for t, cls in _BY_TYPE.items()}
_ENUM_PAYLOAD_NAMES = {
    v.number: v.name
    for enum in (
        OpenApiCommonModelMessages_pb2.ProtoPayloadType,
        OpenApiModelMessages_pb2.ProtoOAPayloadType,
    )
    for v in enum.DESCRIPTOR.values
}


def _suggest(key: str) -> str:
    close = difflib.get_close_matches(key, list(_BY_NAME) + list(_BY_SHORT), n=3, cutoff=0.6)
    return f"; did you mean {', '.join(close)}?" if close else ""


class Protobuf:
    """Registry of the Open API messages (class methods only, as in the official SDK)."""

    @staticmethod
    def get_class(payload: Any) -> type[Message]:
        """Return the message class for *payload*.

        :param payload: a message class, a full name (``"ProtoOAVersionReq"``),
            a short name without the ``ProtoOA``/``Proto`` prefix
            (``"VersionReq"``) or a payload type number (``2104``).
        :raises UnknownMessageError: for anything that is not an Open API message.
        """
        if isinstance(payload, type) and issubclass(payload, Message):
            return payload
        if isinstance(payload, bool):
            raise UnknownMessageError(f"not a message name or payload type: {payload!r}")
        if isinstance(payload, int):
            if payload == 0:
                return ProtoMessage  # the envelope's payload type is 0, as in the official SDK
            try:
                return _BY_TYPE[payload]
            except KeyError:
                known = _ENUM_PAYLOAD_NAMES.get(payload)
                hint = f" ({known} has no message)" if known else ""
                raise UnknownMessageError(f"unknown payload type {payload}{hint}") from None
        if isinstance(payload, str):
            cls = _BY_NAME.get(payload) or _BY_SHORT.get(payload)
            if cls is None:
                raise UnknownMessageError(f"unknown message name {payload!r}{_suggest(payload)}")
            return cls
        raise UnknownMessageError(
            f"expected a message class, name or payload type, not {type(payload).__name__}"
        )

    @classmethod
    def get(cls, payload: Any, fail: bool = True, **params: Any) -> Any:
        """Build a message (official-SDK compatible).

        :param payload: class, name, short name or payload type (see :meth:`get_class`).
        :param fail: when false, return ``None`` for an unknown message instead of raising.
        :param params: field values.
        :raises UnknownMessageError: unknown message (when *fail* is true).
        :raises InvalidMessageError: a field does not exist or has a bad value.
        """
        try:
            msgClass = cls.get_class(payload)
        except UnknownMessageError:
            if fail:
                raise
            return None
        return _construct(msgClass, params)

    @classmethod
    def build(cls, payload: Any, **params: Any) -> Message:
        """Build a message and check it is complete.

        Like :meth:`get`, and also fails when a required field is missing or a
        volume is not positive, so that a bad request never reaches the wire.

        :raises UnknownMessageError: unknown message.
        :raises InvalidMessageError: unknown field, bad value, missing required
            field or non-positive volume; the message names the problem.
        """
        if isinstance(payload, Message):
            if params:
                raise InvalidMessageError("give either a message object or fields, not both")
            message = payload
        else:
            message = _construct(cls.get_class(payload), params)
        validate(message)
        return message

    @classmethod
    def populate(cls) -> dict[int, type[Message]]:
        """The payload type to message class table (the official SDK's name;
        the tables here are built once, at import). It includes the envelope,
        ``ProtoMessage``, as payload type 0, as the official table does."""
        table: dict[int, type[Message]] = {0: ProtoMessage}
        table.update(_BY_TYPE)
        return table

    @classmethod
    def get_type(cls, payload: Any, **params: Any) -> int:
        """Return the payload type number of *payload* (official-SDK compatible;
        ``ProtoMessage`` gives 0)."""
        msgClass = cls.get_class(payload)
        if msgClass is ProtoMessage:
            return 0
        payloadType = payloadTypeOf(msgClass)
        if payloadType is None:
            raise UnknownMessageError(f"{msgClass.DESCRIPTOR.name} has no payload type")
        return payloadType

    @classmethod
    def extract(cls, message: ProtoMessage) -> Any:
        """Decode the payload of a ``ProtoMessage`` into its message class.

        Unknown fields (sent by servers newer than the spec) are kept.

        :raises UnknownMessageError: the payload type is not known.
        :raises InvalidMessageError: the payload bytes do not decode.
        """
        msgClass = _BY_TYPE.get(message.payloadType) or cls.get_class(message.payloadType)
        try:
            return msgClass.FromString(message.payload)
        except DecodeError as e:
            raise InvalidMessageError(
                f"payload of type {message.payloadType} does not decode as "
                f"{msgClass.DESCRIPTOR.name}: {e}"
            ) from None

    @staticmethod
    def name(payloadType: int) -> str:
        """A readable name for *payloadType*, known or not (for logs and errors)."""
        return _PAYLOAD_TYPE_NAMES.get(payloadType) or _ENUM_PAYLOAD_NAMES.get(
            payloadType, f"payloadType {payloadType}"
        )

    @staticmethod
    def payloadTypes() -> dict[int, type[Message]]:
        """A copy of the payload type to message class table."""
        return dict(_BY_TYPE)


def encodeEnvelope(payloadType: int, payload: bytes, clientMsgId: str | None = None) -> bytes:
    """The serialized ``ProtoMessage`` wrapping an already serialized *payload*
    (``payload`` is written even when empty, as the official SDK writes it)."""
    return _ProtoMessage(payloadType=payloadType, payload=payload, clientMsgId=clientMsgId).SerializeToString()


_ProtoMessage = ProtoMessage


def payloadTypeOf(msgClass: type[Message] | Message) -> int | None:
    """The payload type number of a message class or instance, or ``None``."""
    field = msgClass.DESCRIPTOR.fields_by_name.get("payloadType")
    if field is None or not field.has_default_value:
        return None
    return int(field.default_value)


def _expected(field: Any) -> str:
    if field.message_type is not None:
        kind = field.message_type.name
    elif field.enum_type is not None:
        kind = field.enum_type.name
    else:
        kind = _TYPE_NAMES.get(field.type, "value")
    return f"repeated {kind}" if field.is_repeated else kind


def _construct(msgClass: type[Message], params: dict[str, Any]) -> Message:
    try:
        return msgClass(**params)
    except (ValueError, TypeError):
        pass
    fields = msgClass.DESCRIPTOR.fields_by_name
    name = msgClass.DESCRIPTOR.name
    for key in params:
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=2)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise InvalidMessageError(f"{name} has no field {key!r}{hint}")
    for key, value in params.items():
        try:
            msgClass(**{key: value})
        except (ValueError, TypeError):
            # Never echo the value: it may be a secret.
            raise InvalidMessageError(
                f"bad value for {name}.{key}: expected {_expected(fields[key])}, "
                f"got a {type(value).__name__} that does not fit"
            ) from None
    raise InvalidMessageError(f"bad field values for {name}")  # pragma: no cover - each alone fits


#: Fields that must be strictly positive when set (volumes in cents).
_POSITIVE_FIELDS = frozenset({"volume"})


def validate(message: Message) -> None:
    """Check that *message* is complete and sane before it is sent.

    :raises InvalidMessageError: a required field is missing, or a volume is
        not positive.
    """
    if not message.IsInitialized():
        missing = ", ".join(message.FindInitializationErrors())  # type: ignore[attr-defined]
        raise InvalidMessageError(f"{message.DESCRIPTOR.name} is missing required field(s): {missing}")
    fields = message.DESCRIPTOR.fields_by_name
    for field in _POSITIVE_FIELDS:
        descriptor = fields.get(field)
        if descriptor is None:
            continue
        if descriptor.is_repeated:
            values = list(getattr(message, field))
        elif message.HasField(field):
            values = [getattr(message, field)]
        else:
            continue
        for value in values:
            if value <= 0:
                raise InvalidMessageError(
                    f"{message.DESCRIPTOR.name}.{field} must be positive (in cents), got {value}"
                )


def redact(message: Message) -> str:
    """A one-line text form of *message* with every secret field masked.

    Use it wherever a message is logged or shown; ``str(message)`` would print
    client secrets and tokens.
    """
    parts = []
    for field, value in message.ListFields():
        if field.name in SECRET_FIELDS:
            parts.append(f"{field.name}: <redacted>")
        elif field.message_type is not None:
            if field.is_repeated:
                parts.append(f"{field.name}: [{len(value)} item(s)]")
            else:
                parts.append(f"{field.name}: {{{redact(value)}}}")
        elif field.is_repeated:
            shown = list(value[:8])
            more = f", ... {len(value) - 8} more" if len(value) > 8 else ""
            parts.append(f"{field.name}: {shown}{more}")
        else:
            parts.append(f"{field.name}: {value!r}")
    return f"{message.DESCRIPTOR.name}({', '.join(parts)})"
