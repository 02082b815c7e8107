# -*- test-case-name: tests.test_promises,tests.test_protobuf -*-
"""Every exception ctrader-twisted raises or errbacks with.

Two families:

* :class:`OpenApiError` and its subclasses: the server answered a request with
  an error (``ProtoErrorRes``, ``ProtoOAErrorRes`` or ``ProtoOAOrderErrorEvent``).
  They carry the server's ``errorCode``, ``description`` and every other field
  of the error message. :func:`errorFromPayload` picks the subclass from the
  error code.
* local errors: timeouts, connection loss (with whether the request was
  already written, so callers know when an outcome is unknown), frame-level
  problems and bad arguments.

No exception here ever includes a client secret or token: error messages are
built from error codes, descriptions and identifiers only.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.message import Message
from twisted.internet import defer

from .messages.OpenApiCommonModelMessages_pb2 import ProtoPayloadType
from .messages.OpenApiModelMessages_pb2 import ProtoOAPayloadType

__all__ = [
    "CTraderError",
    "OpenApiError",
    "ClientAuthenticationError",
    "NotAuthenticatedError",
    "AlreadyAuthenticatedError",
    "AccessTokenInvalidError",
    "AccountNotAuthorizedError",
    "AlreadyLoggedInError",
    "RateLimitError",
    "BlockedPayloadTypeError",
    "MaintenanceError",
    "UnsupportedMessageError",
    "InvalidRequestError",
    "NotFoundError",
    "MarketClosedError",
    "NotEnoughMoneyError",
    "BadVolumeError",
    "IncorrectBoundariesError",
    "OrderError",
    "InvalidVolumeError",
    "UnknownSymbolError",
    "NotFilledError",
    "NotExecutedError",
    "RequestTimeout",
    "ConnectionLostError",
    "OutcomeUnknownError",
    "NotSentError",
    "NotSentTimeout",
    "NotConnectedError",
    "NotReadyError",
    "AccountLostError",
    "SilentConnectionError",
    "HandshakeTimeoutError",
    "ServerDisconnectError",
    "QueueFullError",
    "FrameError",
    "FrameTooLargeError",
    "MalformedFrameError",
    "UnknownMessageError",
    "InvalidMessageError",
    "DuplicateClientMsgIdError",
    "errorFromPayload",
    "wireText",
    "ERROR_PAYLOAD_TYPES",
]


class CTraderError(Exception):
    """Base class of every ctrader-twisted exception."""


# --- server-reported errors -------------------------------------------------


class OpenApiError(CTraderError):
    """The server answered a request with an error.

    :ivar errorCode: the server's error code name, e.g. ``"CH_CLIENT_AUTH_FAILURE"``.
    :ivar description: the server's human-readable description, or ``""``.
    :ivar payload: the decoded error message (``ProtoErrorRes``,
        ``ProtoOAErrorRes`` or ``ProtoOAOrderErrorEvent``); unknown fields kept.
    :ivar ctidTraderAccountId: the account the error concerns, or ``None``.
    :ivar maintenanceEndTimestamp: when maintenance ends, as sent, or ``None``
        (milliseconds for ``ProtoErrorRes``; the spec says seconds for
        ``ProtoOAErrorRes``).
    :ivar retryAfter: seconds before the payload type is unblocked, or ``None``.
    :ivar orderId: order concerned (order errors), or ``None``.
    :ivar positionId: position concerned (order errors), or ``None``.
    :ivar clientMsgId: the request id the error answered, or ``None``.
    """

    #: Error codes this class stands for (used to build the lookup table).
    codes: tuple[str, ...] = ()

    def __init__(
        self,
        errorCode: str,
        description: str = "",
        *,
        payload: Message | None = None,
        ctidTraderAccountId: int | None = None,
        maintenanceEndTimestamp: int | None = None,
        retryAfter: int | None = None,
        orderId: int | None = None,
        positionId: int | None = None,
        clientMsgId: str | None = None,
    ) -> None:
        self.errorCode = errorCode
        self.description = description
        self.payload = payload
        self.ctidTraderAccountId = ctidTraderAccountId
        self.maintenanceEndTimestamp = maintenanceEndTimestamp
        self.retryAfter = retryAfter
        self.orderId = orderId
        self.positionId = positionId
        self.clientMsgId = clientMsgId
        super().__init__(errorCode, description)

    def __str__(self) -> str:
        text = self.errorCode
        if self.description:
            text += f": {self.description}"
        extras = []
        if self.ctidTraderAccountId is not None:
            extras.append(f"account {self.ctidTraderAccountId}")
        if self.retryAfter is not None:
            extras.append(f"retry after {self.retryAfter} s")
        if self.maintenanceEndTimestamp is not None:
            extras.append(f"maintenance ends at {self.maintenanceEndTimestamp}")
        if self.orderId is not None:
            extras.append(f"order {self.orderId}")
        if self.positionId is not None:
            extras.append(f"position {self.positionId}")
        if extras:
            text += " (" + ", ".join(extras) + ")"
        return text

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.errorCode!r}, {self.description!r})"


class ClientAuthenticationError(OpenApiError):
    """Application credentials (client id or secret) were refused. Permanent:
    retrying with the same credentials cannot succeed."""

    codes = ("CH_CLIENT_AUTH_FAILURE", "CH_OA_CLIENT_NOT_FOUND")


class NotAuthenticatedError(OpenApiError):
    """A request was sent before the application was authenticated."""

    codes = ("CH_CLIENT_NOT_AUTHENTICATED",)


class AlreadyAuthenticatedError(OpenApiError):
    """The application is already authenticated on this connection."""

    codes = ("CH_CLIENT_ALREADY_AUTHENTICATED",)


class AccessTokenInvalidError(OpenApiError):
    """The access token is invalid, expired or revoked."""

    codes = ("CH_ACCESS_TOKEN_INVALID", "OA_AUTH_TOKEN_EXPIRED")


class AccountNotAuthorizedError(OpenApiError):
    """The trading account is not authorized on this connection, or the token
    does not grant access to it."""

    codes = (
        "ACCOUNT_NOT_AUTHORIZED",
        "CH_CTID_TRADER_ACCOUNT_NOT_FOUND",
        "RET_NO_SUCH_LOGIN",
        "RET_ACCOUNT_DISABLED",
    )


class AlreadyLoggedInError(OpenApiError):
    """The trading account is already authorized on this connection."""

    codes = ("ALREADY_LOGGED_IN",)


class RateLimitError(OpenApiError):
    """The server refused the request because of its rate limits."""

    codes = ("REQUEST_FREQUENCY_EXCEEDED",)


class BlockedPayloadTypeError(RateLimitError):
    """The payload type is blocked for ``retryAfter`` seconds (see
    :class:`OpenApiError`)."""

    codes = ("BLOCKED_PAYLOAD_TYPE",)


class MaintenanceError(OpenApiError):
    """The server is under maintenance until ``maintenanceEndTimestamp``
    (see :class:`OpenApiError`)."""

    codes = ("SERVER_IS_UNDER_MAINTENANCE",)


class UnsupportedMessageError(OpenApiError):
    """The server does not support this message."""

    codes = ("UNSUPPORTED_MESSAGE",)


class InvalidRequestError(OpenApiError):
    """The server found a value in the request invalid."""

    codes = ("INVALID_REQUEST", "TRADING_BAD_STOPS", "TRADING_BAD_PRICES")


class NotFoundError(OpenApiError):
    """The entity (symbol, order, position, ...) does not exist."""

    codes = (
        "ENTITY_NOT_FOUND",
        "SYMBOL_NOT_FOUND",
        "UNKNOWN_SYMBOL",
        "ORDER_NOT_FOUND",
        "POSITION_NOT_FOUND",
    )


class MarketClosedError(OpenApiError):
    """The market for the symbol is closed."""

    codes = ("MARKET_CLOSED", "SYMBOL_HAS_HOLIDAY")


class NotEnoughMoneyError(OpenApiError):
    """The account has not enough free margin for the order."""

    codes = ("NOT_ENOUGH_MONEY",)


class BadVolumeError(OpenApiError):
    """The order volume is outside the symbol's limits or step."""

    codes = ("TRADING_BAD_VOLUME",)


class IncorrectBoundariesError(OpenApiError):
    """The requested time range is invalid or too long for the request."""

    codes = ("INCORRECT_BOUNDARIES",)


class OrderError(OpenApiError):
    """An order was refused after validation (``ProtoOAOrderErrorEvent``).

    Errors carried by a ``ProtoOAOrderErrorEvent`` whose code has a more
    specific class (for example :class:`NotEnoughMoneyError`) use that class;
    this one stands for the rest.
    """


class NotFilledError(OrderError):
    """An order was accepted and then ended without any fill: cancelled
    (an immediate-or-cancel order that found no liquidity), expired or
    rejected by an ``ORDER_REJECTED`` execution event whose code has no more
    specific class. ``errorCode`` is the event's code, or the execution
    type (``ORDER_CANCELLED``, ``ORDER_EXPIRED``) when it has none."""


_BY_CODE: dict[str, type[OpenApiError]] = {}
for _cls in list(globals().values()):
    if isinstance(_cls, type) and issubclass(_cls, OpenApiError):
        for _code in _cls.codes:
            _BY_CODE[_code] = _cls

#: Payload types whose messages are error answers: ``ProtoErrorRes``,
#: ``ProtoOAOrderErrorEvent`` and ``ProtoOAErrorRes``.
ERROR_PAYLOAD_TYPES: frozenset[int] = frozenset(
    {
        ProtoPayloadType.ERROR_RES,
        ProtoOAPayloadType.PROTO_OA_ORDER_ERROR_EVENT,
        ProtoOAPayloadType.PROTO_OA_ERROR_RES,
    }
)


def _optional(payload: Message, field: str) -> Any:
    try:
        return getattr(payload, field) if payload.HasField(field) else None
    except ValueError:  # the message has no such field
        return None


def wireText(value: Any) -> str:
    """A string field from the wire as text. The protobuf runtime hands out
    ``bytes`` for a string that is not valid UTF-8; those bytes are decoded
    with replacement characters, so that no text from a peer can break
    formatting, logging or ``str()`` of an error."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    return value if isinstance(value, str) else str(value)


def errorFromPayload(payload: Message, clientMsgId: str | None = None) -> OpenApiError:
    """Build the typed exception for a decoded error message.

    :param payload: a decoded ``ProtoErrorRes``, ``ProtoOAErrorRes`` or
        ``ProtoOAOrderErrorEvent``.
    :param clientMsgId: the id of the request it answered, if any.
    :returns: an instance of the :class:`OpenApiError` subclass registered for
        the error code (:class:`OrderError` for other order errors,
        :class:`OpenApiError` otherwise).
    """
    code = wireText(getattr(payload, "errorCode", "")) or "UNKNOWN_ERROR"
    isOrderError = payload.DESCRIPTOR.name == "ProtoOAOrderErrorEvent"
    cls = _BY_CODE.get(code, OrderError if isOrderError else OpenApiError)
    return cls(
        code,
        wireText(getattr(payload, "description", "")),
        payload=payload,
        ctidTraderAccountId=_optional(payload, "ctidTraderAccountId"),
        maintenanceEndTimestamp=_optional(payload, "maintenanceEndTimestamp"),
        retryAfter=_optional(payload, "retryAfter"),
        orderId=_optional(payload, "orderId") or None,
        positionId=_optional(payload, "positionId") or None,
        clientMsgId=clientMsgId,
    )


# --- local errors -------------------------------------------------------------


class RequestTimeout(CTraderError, defer.TimeoutError, TimeoutError):
    """No answer arrived within the response timeout, counted from the moment
    the request was written. For trading requests the outcome is unknown:
    reconcile (``ProtoOAReconcileReq``) before acting again.

    It is also :class:`twisted.internet.defer.TimeoutError` (what the official
    SDK's timeouts raise) and the built-in :class:`TimeoutError`.
    """

    def __init__(self, payloadName: str, clientMsgId: str, timeout: float) -> None:
        self.payloadName = payloadName
        self.clientMsgId = clientMsgId
        self.timeout = timeout
        super().__init__(
            f"no answer to {payloadName} (clientMsgId {clientMsgId!r}) within {timeout:g} s"
        )


class ConnectionLostError(CTraderError, ConnectionError):
    """The connection ended while a request was pending.

    :ivar sent: whether the request had been written to the transport.
    :ivar reason: the :class:`~twisted.python.failure.Failure` or exception
        that ended the connection, when known.
    """

    sent = False

    def __init__(self, message: str, reason: object = None) -> None:
        self.reason = reason
        super().__init__(message)


class OutcomeUnknownError(ConnectionLostError):
    """The request was written but the connection ended before its answer.

    The server may or may not have acted on it; it is never re-sent
    automatically. For orders, reconcile (``ProtoOAReconcileReq`` or the
    order/deal lists) before sending again.
    """

    sent = True


class NotSentError(ConnectionLostError):
    """The request was never written: the connection ended (or could not be
    made) while it waited. It is safe to send again."""


class NotSentTimeout(NotSentError, defer.TimeoutError, TimeoutError):
    """The request waited its whole timeout without being written (the
    client was disconnected, reconnecting, or restoring its session). It was
    never sent: safe to send again.

    It is also :class:`twisted.internet.defer.TimeoutError`, like
    :class:`RequestTimeout`.
    """

    def __init__(self, payloadName: str, clientMsgId: str, timeout: float) -> None:
        self.payloadName = payloadName
        self.clientMsgId = clientMsgId
        self.timeout = timeout
        super().__init__(
            f"{payloadName} (clientMsgId {clientMsgId!r}) was not written within {timeout:g} s "
            "(no ready connection); it was never sent"
        )


class SilentConnectionError(CTraderError):
    """Nothing at all arrived for too long (the proxy sends heartbeats): the
    link is taken as dead and dropped so that a reconnect can begin."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        super().__init__(f"nothing received for {seconds:g} s; the connection is taken as dead")


class HandshakeTimeoutError(CTraderError):
    """The TLS (or WebSocket) handshake did not finish in time after the TCP
    connection was made: the attempt is abandoned and the next one begins."""

    def __init__(self, seconds: float, what: str = "TLS handshake") -> None:
        self.seconds = seconds
        super().__init__(f"the {what} did not finish within {seconds:g} s")


class ServerDisconnectError(CTraderError):
    """The server ended the application's session (``ProtoOAClientDisconnectEvent``)."""


class NotConnectedError(CTraderError):
    """The client is not running or has no connection to send on."""


class NotReadyError(NotConnectedError, defer.TimeoutError):
    """The client did not become ready in the time given to
    ``Client.whenReady(timeout)``.

    :ivar lastFailure: why the last connection attempt failed, when one did
        (its text is in the message).
    """

    def __init__(self, seconds: float, lastFailure: BaseException | None = None) -> None:
        self.seconds = seconds
        self.lastFailure = lastFailure
        why = f"; the last attempt failed: {lastFailure}" if lastFailure is not None else ""
        super().__init__(f"the client was not ready within {seconds:g} s{why}")


class AccountLostError(CTraderError):
    """Accounts were dropped for good while the session was restored (their
    tokens were refused and could not be renewed): ``whenReady()`` reports
    them; the session is ready without them.

    :ivar accounts: ``ctidTraderAccountId`` -> the error that dropped it.
    """

    def __init__(self, accounts: dict[int, CTraderError]) -> None:
        self.accounts = dict(accounts)
        parts = "; ".join(f"account {a}: {e}" for a, e in sorted(self.accounts.items()))
        super().__init__(f"{len(self.accounts)} account(s) dropped while restoring the session ({parts})")


class QueueFullError(CTraderError):
    """Too many requests are waiting to be written (the send queue is bounded)."""


class FrameError(CTraderError):
    """Base class of errors about a received frame."""


class FrameTooLargeError(FrameError):
    """A frame (or WebSocket message) was larger than the configured maximum."""

    def __init__(self, length: int, limit: int) -> None:
        self.length = length
        self.limit = limit
        super().__init__(f"frame of {length} bytes exceeds the limit of {limit} bytes")


class MalformedFrameError(FrameError):
    """A frame did not decode as a ``ProtoMessage`` (or a WebSocket text frame
    arrived where only binary frames are allowed)."""


class UnknownMessageError(CTraderError, IndexError):
    """A message name or payload type is not part of the protocol.

    It is an :class:`IndexError` because the official SDK raises that for an
    unknown payload, so ported ``except IndexError`` clauses keep working."""


class InvalidMessageError(CTraderError, ValueError):
    """A message could not be built from the given fields (unknown field,
    wrong type, missing required field or out-of-range value)."""


class InvalidVolumeError(BadVolumeError, InvalidMessageError):
    """A volume outside a symbol's limits or step, found before anything was
    sent. It is also a :class:`BadVolumeError` (the server's
    ``TRADING_BAD_VOLUME``), so one ``except`` clause covers both.

    :ivar volume: the volume refused, in cents of a unit (the wire's scale).
    :ivar nearest: the nearest valid volumes, in cents (empty when the
        symbol's limits admit none).
    :ivar minVolume: the symbol's ``minVolume``, cents.
    :ivar maxVolume: the symbol's ``maxVolume``, cents.
    :ivar stepVolume: the symbol's ``stepVolume``, cents.
    """

    codes = ()  # type: ignore[assignment]  # local: never built from a server's error code

    def __init__(
        self,
        message: str,
        *,
        volume: int,
        nearest: tuple[int, ...],
        minVolume: int,
        maxVolume: int,
        stepVolume: int,
    ) -> None:
        super().__init__("TRADING_BAD_VOLUME", message)
        self.volume = volume
        self.nearest = nearest
        self.minVolume = minVolume
        self.maxVolume = maxVolume
        self.stepVolume = stepVolume

    def __str__(self) -> str:
        return self.description


class UnknownSymbolError(CTraderError, LookupError):
    """No symbol of the account has this name (or id).

    :ivar name: the name asked for.
    :ivar suggestions: the closest names the account has, best first.
    """

    def __init__(self, name: object, suggestions: tuple[str, ...] = (), accountId: int | None = None) -> None:
        self.name = name
        self.suggestions = tuple(suggestions)
        self.accountId = accountId
        where = f" on account {accountId}" if accountId is not None else ""
        hint = f"; did you mean {' or '.join(self.suggestions)}?" if self.suggestions else ""
        super().__init__(f"unknown symbol {name!r}{where}{hint}")

    def __str__(self) -> str:
        return str(self.args[0])


class NotExecutedError(ConnectionLostError):
    """An order whose outcome was unknown (the connection was lost, or the
    answer was late, after it was written) was reconciled with the server,
    and the server has no trace of it: no order, position or deal carries
    its ``clientOrderId``. It was not executed and was not sent again:
    sending it again is safe.

    :ivar clientOrderId: the id the order was sent with.
    """

    sent = True

    def __init__(self, message: str, clientOrderId: str, reason: object = None) -> None:
        self.clientOrderId = clientOrderId
        super().__init__(message, reason)


class DuplicateClientMsgIdError(CTraderError, ValueError):
    """A caller-supplied ``clientMsgId`` is already in use by a pending request."""
