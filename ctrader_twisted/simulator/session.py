# -*- test-case-name: tests.test_simulator_memory -*-
"""One client connection's session: the Open API's rules above framing.

A :class:`Session` is transport-neutral: the TCP and WebSocket server
protocols (:mod:`.protocol`) hand it complete frames and give it a
:class:`ServerConnection`. It keeps the connection's state (application
authentication, authorized accounts, subscriptions), enforces the
per-connection rate limits (with :class:`ctrader_twisted.ratelimit.RateLimiter`),
heartbeats and the idle timeout, decodes every request and hands it to its
handler in the simulator's :class:`~.handlers.Registry`, and writes the
answers with the request's ``clientMsgId``, subject to the response faults.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol as TypingProtocol

from google.protobuf.message import DecodeError, Message
from twisted.internet.interfaces import IDelayedCall, IPullProducer
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from ..messages.OpenApiCommonMessages_pb2 import ProtoErrorRes, ProtoHeartbeatEvent, ProtoMessage
from ..messages.OpenApiCommonModelMessages_pb2 import ProtoPayloadType
from ..messages.OpenApiMessages_pb2 import ProtoOAErrorRes, ProtoOAOrderErrorEvent
from ..messages.OpenApiModelMessages_pb2 import ProtoOATrendbarPeriod
from ..protobuf import Protobuf
from ..ratelimit import RateLimiter

if TYPE_CHECKING:
    from .server import Simulator

__all__ = ["Session", "ServerConnection"]

_HEARTBEAT = ProtoPayloadType.HEARTBEAT_EVENT
_HEARTBEAT_FRAME = ProtoMessage(
    payloadType=_HEARTBEAT, payload=ProtoHeartbeatEvent().SerializeToString()
).SerializeToString()


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
        clientMsgId = message.clientMsgId if message.HasField("clientMsgId") else None
        self._requestType = payloadType
        try:
            self._dispatch(payloadType, message.payload, clientMsgId)
        finally:
            self._requestType = None

    def _dispatch(self, payloadType: int, body: bytes, clientMsgId: str | None) -> None:
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
        route(self, request, clientMsgId)

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
        if not self.closed:
            self.written += 1
            self.connection.writeFrame(data)

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
