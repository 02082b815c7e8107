# -*- test-case-name: tests.test_keepalive -*-
"""Liveness of one connection: heartbeats out, a watchdog on silence in, and
a deadline for the handshake.

* :class:`KeepAlive` writes a ``ProtoHeartbeatEvent`` every *interval*
  seconds whatever else is sent (the proxy drops a connection idle for about
  30 s) and drops the connection when nothing at all arrived for
  *silenceTimeout* seconds. Any bytes arriving count, not only complete
  frames: a large answer still arriving is not silence.
* :class:`HandshakeDeadline` fails a connection attempt whose TLS (and
  WebSocket) handshake does not finish in time, so that a server that accepts
  TCP and then says nothing cannot hold the client forever: the attempt ends
  and the reconnect loop tries again.

Everything runs on the injected clock (a ``task.Clock`` in tests).
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from .interfaces import IFrameTransport
from .messages.OpenApiCommonModelMessages_pb2 import ProtoPayloadType
from .protobuf import encodeEnvelope

__all__ = ["KeepAlive", "HandshakeDeadline", "HEARTBEAT_FRAME"]

#: The serialized heartbeat envelope, built once (``payload`` written empty,
#: exactly as the official SDK writes it).
HEARTBEAT_FRAME = encodeEnvelope(ProtoPayloadType.HEARTBEAT_EVENT, b"")


class KeepAlive:
    """Heartbeats and the silence watchdog of one connection.

    :param clock: the time source.
    :param transport: where heartbeats are written.
    :param heartbeatInterval: seconds between heartbeats (``None`` or 0: none).
    :param silenceTimeout: seconds of silence before *onSilence* is called
        (``None``: never). Checked four times per period, so the call comes
        within 1.25 periods of the last bytes received.
    :param onSilence: called once with the seconds of silence.

    :ivar reads: bumped by the receiver for every read (any bytes); the
        watchdog compares it between its checks, which is cheaper than
        reading the clock per read.
    """

    _log = Logger()

    def __init__(
        self,
        clock: IReactorTime,
        transport: IFrameTransport,
        heartbeatInterval: float | None,
        silenceTimeout: float | None,
        onSilence: Callable[[float], Any],
    ) -> None:
        self.clock = clock
        self.transport = transport
        self.heartbeatInterval = heartbeatInterval
        self.silenceTimeout = silenceTimeout
        self.reads = 0
        self._onSilence = onSilence
        self._heartbeat: LoopingCall | None = None
        self._watchdog: LoopingCall | None = None
        self._readsAtCheck = 0
        self._silentFor = 0.0

    def start(self) -> None:
        """Start the heartbeat and the watchdog (the connection is ready)."""
        if self.heartbeatInterval:
            self._heartbeat = LoopingCall(self._sendHeartbeat)
            self._heartbeat.clock = self.clock
            self._heartbeat.start(self.heartbeatInterval, now=False)
        if self.silenceTimeout:
            step = self.silenceTimeout / 4
            self._watchdog = LoopingCall(self._check, step)
            self._watchdog.clock = self.clock
            self._watchdog.start(step, now=False)

    def stop(self) -> None:
        """Stop both (the connection is gone)."""
        for loop in (self._heartbeat, self._watchdog):
            if loop is not None and loop.running:
                loop.stop()
        self._heartbeat = self._watchdog = None

    def _sendHeartbeat(self) -> None:
        try:
            self.transport.writeFrame(HEARTBEAT_FRAME)
        except Exception:
            # Never let a transport's refusal stop the LoopingCall for good.
            self._log.failure("Could not write a heartbeat")

    def _check(self, step: float) -> None:
        if self.reads != self._readsAtCheck:
            self._readsAtCheck = self.reads
            self._silentFor = 0.0
            return
        self._silentFor += step
        if self._silentFor >= (self.silenceTimeout or 0):
            self.stop()
            self._onSilence(self._silentFor)


class HandshakeDeadline:
    """A one-shot deadline for a connection's handshake.

    :param clock: the time source.
    :param seconds: the time allowed (``None``: no deadline).
    :param onExpired: called with *seconds* if :meth:`cancel` was not called in time.
    """

    def __init__(self, clock: IReactorTime, seconds: float | None, onExpired: Callable[[float], Any]) -> None:
        self._call: IDelayedCall | None = None
        if seconds is not None:
            self._call = clock.callLater(seconds, self._expired, seconds, onExpired)

    def _expired(self, seconds: float, onExpired: Callable[[float], Any]) -> None:
        self._call = None
        onExpired(seconds)

    @property
    def active(self) -> bool:
        """Whether the deadline is still running."""
        return self._call is not None

    def cancel(self) -> None:
        """The handshake finished (or the connection is gone): stop the deadline."""
        if self._call is not None:
            if self._call.active():
                self._call.cancel()
            self._call = None
