# -*- test-case-name: tests.test_simulator_memory -*-
"""One client connection's session: the Open API's rules above framing.

A :class:`Session` is transport-neutral: the TCP and WebSocket server
protocols (:mod:`~ctrader_twisted.simulator.protocol`) hand it complete frames and give it a
:class:`ServerConnection`. It keeps the connection's state (application
authentication, authorized accounts, subscriptions), enforces the
per-connection rate limits (with :class:`ctrader_twisted.ratelimit.RateLimiter`),
heartbeats and the idle timeout, decodes every request and hands it to its
handler in the simulator's :class:`~.handlers.Registry`, and writes the
answers with the request's ``clientMsgId``, subject to the response faults.

A session is contained: a request it cannot read (not a ``ProtoMessage``,
a payload that does not decode, text that is not UTF-8) is answered with
``INVALID_REQUEST``, and a handler that raises is logged with its traceback
and answered with ``UNKNOWN_ERROR``; the connection and every other session
go on.

A session is also the streaming producer of its connection's transport
(``IPushProducer``): when the client does not read and the transport's
buffer passes its high-water mark, the transport pauses the session. While
paused, the market's spot and depth events are coalesced (the latest state
of each subscription is kept, and sent when the transport resumes), and
any other frame written is counted; past the simulator's
``maxBufferedBytes`` the connection is dropped with a log line, as a real
proxy drops a consumer that does not read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol as TypingProtocol

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError, Message
from twisted.internet.interfaces import IDelayedCall, IPullProducer, IPushProducer
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from zope.interface import implementer  # type: ignore[import-untyped]

from ..messages.OpenApiCommonMessages_pb2 import ProtoErrorRes, ProtoHeartbeatEvent, ProtoMessage
from ..messages.OpenApiCommonModelMessages_pb2 import ProtoPayloadType
from ..messages.OpenApiMessages_pb2 import ProtoOAErrorRes, ProtoOAOrderErrorEvent
from ..messages.OpenApiModelMessages_pb2 import ProtoOATrendbarPeriod
from ..protobuf import Protobuf
from ..ratelimit import RateLimiter
from .ticker import publishCoalesced

if TYPE_CHECKING:
    from .server import Simulator

__all__ = ["Session", "ServerConnection", "invalidText"]

_HEARTBEAT = ProtoPayloadType.HEARTBEAT_EVENT
_HEARTBEAT_FRAME = ProtoMessage(
    payloadType=_HEARTBEAT, payload=ProtoHeartbeatEvent().SerializeToString()
).SerializeToString()


def invalidText(message: Message) -> str | None:
    """The name of the first string field of *message* (nested messages
    included) whose bytes are not UTF-8, or ``None``.

    The protobuf runtime parses such a field without complaint and hands
    back the raw ``bytes`` instead of a ``str``; anything that later copies
    it into a message raises.
    """
    for field, value in message.ListFields():
        if field.type == FieldDescriptor.TYPE_STRING:
            values = value if field.is_repeated else (value,)
            if any(isinstance(v, bytes) for v in values):
                return field.name
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            for item in value if field.is_repeated else (value,):
                inner = invalidText(item)
                if inner is not None:
                    return f"{field.name}.{inner}"
    return None


class ServerConnection(TypingProtocol):
    """What a session needs from its transport protocol."""

    def writeFrame(self, data: bytes) -> None:
        """Write one serialized ``ProtoMessage``."""

    def writeOversizedHeader(self) -> None:
        """Write the header of a frame larger than any client accepts (fault injection)."""

    def abort(self) -> None:
        """Drop the connection at once."""

    def close(self) -> None:
        """Close the connection cleanly."""


@implementer(IPushProducer)
class Session:
    """The state of one connection (see the module docstring).

    :ivar appAuthenticated: whether ``ProtoOAApplicationAuthReq`` succeeded.
    :ivar accounts: account id to the access token that authorized it.
    :ivar spots: account id to the symbol ids it receives spots for.
    :ivar trendbars: ``(accountId, symbolId, period)`` live bar subscriptions.
    :ivar depth: account id to the symbol ids it receives depth for.
    :ivar pnl: account id to the last PnL change sent, for the accounts
        subscribed to PnL changes.
    :ivar burst: the producer of a running :meth:`Simulator.burst
        <ctrader_twisted.simulator.Simulator.burst>` on this connection, or ``None``.
    :ivar received: frames received (heartbeats included).
    :ivar written: frames written (heartbeats included).
    :ivar paused: whether the transport has paused this session (its
        client is not reading).
    :ivar coalesced: spot and depth events not written because the
        transport was paused (the latest state of each went out later).
    """

    _log = Logger()

    def __init__(self, simulator: Simulator, connection: ServerConnection, transport: str = "tcp") -> None:
        self.simulator = simulator
        self.connection = connection
        self.transport = transport
        self.appAuthenticated = False
        self.accounts: dict[int, str] = {}
        self.spots: dict[int, set[int]] = {}
        self.trendbars: set[tuple[int, int, ProtoOATrendbarPeriod]] = set()
        self.depth: dict[int, set[int]] = {}
        #: account id -> the last (gross, net) PnL sent to its PnL subscription
        self.pnl: dict[int, tuple[int, int] | None] = {}
        self.burst: IPullProducer | None = None
        self.closed = False
        self.received = 0
        self.written = 0
        self.paused = False
        self.coalesced = 0
        # While paused: the bytes written anyway (answers, execution events),
        # the (accountId, symbolId) whose spots changed, and for each depth
        # subscription the ids of the quotes the client still holds.
        self._backlog = 0
        self._staleSpots: set[tuple[int, int]] = set()
        self._staleDepth: dict[tuple[int, int], list[int]] = {}
        self._dropping = False
        self._clock = simulator.clock
        # The server counts arrivals exactly: no margin.
        self._limits = RateLimiter(
            self._clock, simulator.requestsPerSecond, simulator.historicalRequestsPerSecond, margin=0
        )
        self._heartbeat: LoopingCall | None = None
        self._idle: IDelayedCall | None = None
        self._delayed: set[IDelayedCall] = set()
        self._requestType: int | None = None

    def __repr__(self) -> str:
        return (
            f"<Session {self.transport} app={'yes' if self.appAuthenticated else 'no'} "
            f"accounts={sorted(self.accounts)}>"
        )

    # --- life -----------------------------------------------------------------------

    def start(self) -> None:
        """The connection is ready: start heartbeats and the idle timer."""
        sim = self.simulator
        if sim.heartbeatInterval:
            self._heartbeat = LoopingCall(self._write, _HEARTBEAT_FRAME)
            self._heartbeat.clock = self._clock
            self._heartbeat.start(sim.heartbeatInterval, now=False)
        if sim.idleTimeout:
            self._idle = self._clock.callLater(sim.idleTimeout, self._idleTimedOut)

    def stop(self) -> None:
        """The connection is gone: stop every timer and forget the session."""
        if self.closed:
            return
        self.closed = True
        if self._heartbeat is not None and self._heartbeat.running:
            self._heartbeat.stop()
        self._heartbeat = None
        if self._idle is not None and self._idle.active():
            self._idle.cancel()
        self._idle = None
        for call in self._delayed:
            if call.active():
                call.cancel()
        self._delayed.clear()
        self.simulator.sessionClosed(self)

    def _idleTimedOut(self) -> None:
        self._idle = None
        self._log.info(
            "Closing {session}: nothing received for {timeout} s", session=self, timeout=self.simulator.idleTimeout
        )
        self.connection.close()

    # --- receiving ----------------------------------------------------------------------

    def frameReceived(self, data: bytes) -> None:
        """One complete frame (a serialized ``ProtoMessage``) arrived."""
        if self.closed:
            return
        self.received += 1
        idleTimeout = self.simulator.idleTimeout
        if self._idle is not None and self._idle.active() and idleTimeout:
            self._idle.reset(idleTimeout)
        if self.simulator.faults.countReceived():
            self._log.info("Fault injection: dropping {session}", session=self)
            self.connection.abort()
            return
        try:
            message = ProtoMessage.FromString(data)
        except DecodeError:
            self.commonError("INVALID_REQUEST", "frame is not a ProtoMessage", None)
            self.connection.close()
            return
        payloadType = message.payloadType
        if payloadType == _HEARTBEAT:
            return
        # A clientMsgId that is not UTF-8 comes back from the parser as bytes.
        clientMsgId: str | bytes | None = message.clientMsgId if message.HasField("clientMsgId") else None
        self._requestType = payloadType
        try:
            self._dispatch(payloadType, message.payload, clientMsgId)
        finally:
            self._requestType = None

    def _dispatch(self, payloadType: int, body: bytes, rawClientMsgId: str | bytes | None) -> None:
        # An id that is not UTF-8 cannot be echoed (the answer's is a string
        # too): such a request is refused without one.
        clientMsgId = None if isinstance(rawClientMsgId, bytes) else rawClientMsgId
        # Every request that arrives counts against the rate limits, unless
        # it is refused for exceeding them.
        if self._limits.wait(payloadType) > 0:
            self.oaError(
                "REQUEST_FREQUENCY_EXCEEDED",
                f"request frequency exceeded for {Protobuf.name(payloadType)}",
                clientMsgId,
            )
            return
        self._limits.record(payloadType)
        if isinstance(rawClientMsgId, bytes):
            self.commonError("INVALID_REQUEST", "clientMsgId is not valid UTF-8", None)
            return
        route = self.simulator.handlers.route(payloadType)
        if route is None:
            self.commonError("UNSUPPORTED_MESSAGE", f"{Protobuf.name(payloadType)} is not supported", clientMsgId)
            return
        requestClass = route.requestClass
        try:
            request = requestClass.FromString(body)
        except DecodeError:
            self.commonError("INVALID_REQUEST", f"payload does not decode as {requestClass.DESCRIPTOR.name}", clientMsgId)
            return
        if not request.IsInitialized():
            missing = ", ".join(request.FindInitializationErrors())  # type: ignore[attr-defined]
            self.commonError("INVALID_REQUEST", f"missing required field(s): {missing}", clientMsgId)
            return
        badText = invalidText(request)
        if badText is not None:
            self.commonError("INVALID_REQUEST", f"field {badText} is not valid UTF-8", clientMsgId)
            return
        try:
            route(self, request, clientMsgId)
        except Exception:
            # A bug or a state the simulator cannot describe: contained to
            # this request; the connection and the other sessions go on.
            self._log.failure(
                "The handler of {name} failed on {session}; answering UNKNOWN_ERROR",
                name=requestClass.DESCRIPTOR.name,
                session=self,
            )
            self.commonError("UNKNOWN_ERROR", f"internal server error handling {requestClass.DESCRIPTOR.name}", clientMsgId)

    # --- sending ----------------------------------------------------------------------------

    def send(self, payload: Message, clientMsgId: str | None = None) -> None:
        """Write *payload*; with a *clientMsgId* it is an answer, subject to the
        response faults (delay, swallow)."""
        if self.closed:
            return
        payloadType: int = payload.payloadType  # type: ignore[attr-defined]
        envelope = ProtoMessage(payloadType=payloadType, payload=payload.SerializeToString())
        if clientMsgId is not None:
            envelope.clientMsgId = clientMsgId
            faults = self.simulator.faults
            if faults.shouldSwallow(self._requestType, payloadType):
                self._log.debug("Fault injection: swallowed {name}", name=Protobuf.name(payloadType))
                return
            if faults.responseDelay > 0:
                data = envelope.SerializeToString()
                call = self._clock.callLater(faults.responseDelay, self._writeDelayed, data)
                self._delayed.add(call)
                return
        self._write(envelope.SerializeToString())

    def _writeDelayed(self, data: bytes) -> None:
        self._delayed = {c for c in self._delayed if c.active()}
        self._write(data)

    def _write(self, data: bytes) -> None:
        if self.closed or self._dropping:
            return
        if self.paused:
            self._backlog += len(data)
            limit = self.simulator.maxBufferedBytes
            if self._backlog > limit:
                self._log.warn(
                    "Dropping {session}: its client does not read ({backlog} bytes waiting beyond the "
                    "transport's buffer, limit {limit})",
                    session=self,
                    backlog=self._backlog,
                    limit=limit,
                )
                self._dropping = True
                self.connection.abort()
                return
        self.written += 1
        self.connection.writeFrame(data)

    # --- flow control (IPushProducer) ---------------------------------------------------

    def pauseProducing(self) -> None:
        """The transport's buffer is over its high-water mark: coalesce the
        market's events until :meth:`resumeProducing`."""
        if not self.paused:
            self.paused = True
            self._backlog = 0
            self._log.debug("{session}: client not reading, coalescing spots and depth", session=self)

    def resumeProducing(self) -> None:
        """The transport drained its buffer: send the latest state of what was
        coalesced (every spot with both prices, every book in full)."""
        if not self.paused or self.closed:
            return
        self.paused = False
        self._backlog = 0
        publishCoalesced(self.simulator, self)

    def stopProducing(self) -> None:
        """The transport is gone; :meth:`stop` follows from the protocol."""

    def coalesceSpot(self, accountId: int, symbolId: int) -> None:
        """While paused: remember that a spot subscription has news, instead
        of writing its event."""
        self.coalesced += 1
        self._staleSpots.add((accountId, symbolId))

    def coalesceDepth(self, accountId: int, symbolId: int, replaced: list[int]) -> None:
        """While paused: remember a depth subscription whose book was
        replaced; *replaced* are the ids of the quotes the book replaced (those
        the client holds, the first time)."""
        self.coalesced += 1
        self._staleDepth.setdefault((accountId, symbolId), replaced)

    def takeCoalesced(self) -> tuple[set[tuple[int, int]], dict[tuple[int, int], list[int]]]:
        """What was coalesced since the last call: the spot subscriptions with
        news, and the depth subscriptions with the quote ids their client holds."""
        spots, depth = self._staleSpots, self._staleDepth
        self._staleSpots, self._staleDepth = set(), {}
        return spots, depth

    def commonError(self, errorCode: str, description: str, clientMsgId: str | None) -> None:
        """Answer with a ``ProtoErrorRes`` (common error codes)."""
        self.send(ProtoErrorRes(errorCode=errorCode, description=description), clientMsgId)

    def oaError(
        self, errorCode: str, description: str, clientMsgId: str | None, ctidTraderAccountId: int | None = None
    ) -> None:
        """Answer with a ``ProtoOAErrorRes`` (Open API error codes)."""
        error = ProtoOAErrorRes(errorCode=errorCode, description=description)
        if ctidTraderAccountId is not None:
            error.ctidTraderAccountId = ctidTraderAccountId
        self.send(error, clientMsgId)

    def orderError(
        self,
        errorCode: str,
        description: str,
        clientMsgId: str | None,
        ctidTraderAccountId: int,
        orderId: int | None = None,
        positionId: int | None = None,
    ) -> None:
        """Answer with a ``ProtoOAOrderErrorEvent`` (refused trading request)."""
        error = ProtoOAOrderErrorEvent(
            errorCode=errorCode, description=description, ctidTraderAccountId=ctidTraderAccountId
        )
        if orderId:
            error.orderId = orderId
        if positionId:
            error.positionId = positionId
        self.send(error, clientMsgId)

    def forgetAccount(self, accountId: int) -> None:
        """Drop an account's authorization and subscriptions on this connection."""
        self.accounts.pop(accountId, None)
        self.spots.pop(accountId, None)
        self.depth.pop(accountId, None)
        self.pnl.pop(accountId, None)
        self.trendbars = {t for t in self.trendbars if t[0] != accountId}
        self._staleSpots = {k for k in self._staleSpots if k[0] != accountId}
        self._staleDepth = {k: v for k, v in self._staleDepth.items() if k[0] != accountId}
