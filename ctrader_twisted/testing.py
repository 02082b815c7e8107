# -*- test-case-name: tests.test_client,tests.test_transports,tests.test_websocket -*-
"""Helpers for testing code that uses ctrader-twisted, with no network and no sleeps.

In the spirit of ``treq.testing`` and ``autobahn.twisted.testing``: a real
:class:`~ctrader_twisted.Client` talks to a real peer through in-memory
transports (``twisted.test.iosim``), and every timer runs on a
:class:`~twisted.internet.task.Clock` that the test moves.

* :class:`SimulatedServer` is the bundled simulator in memory: a Clock, a
  :class:`~ctrader_twisted.simulator.Simulator` on it, and clients connected
  to it. Use it to test your strategy or recorder against realistic answers::

      from ctrader_twisted.testing import SimulatedServer

      class MyTests(SynchronousTestCase):
          def test_streams(self):
              server = SimulatedServer()
              client = server.connect(server.client(clientId=server.simulator.clientId,
                                                   clientSecret=server.simulator.clientSecret))
              ...
              server.advance(5)      # five seconds of market, heartbeats, answers

* :class:`ScriptedServer` (TCP) and :class:`ScriptedWebSocketServer` are peers
  the test scripts byte for byte: they record every ``ProtoMessage`` they
  receive and send what the test tells them, for the behaviour no honest
  server shows (garbage, silence, odd errors).
* :class:`MemoryEndpoint` is the ``IStreamClientEndpoint`` both use: each
  connection attempt gets a fresh server in memory (or is refused).
* :func:`advance` moves a Clock in steps and the bytes after each step.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

import txaio

txaio.use_twisted()

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol  # noqa: E402
from autobahn.websocket.types import ConnectionRequest  # noqa: E402
from twisted.internet.defer import Deferred, fail, succeed  # noqa: E402
from twisted.internet.error import ConnectionDone, ConnectionRefusedError  # noqa: E402
from twisted.internet.interfaces import IProtocol, IStreamClientEndpoint  # noqa: E402
from twisted.internet.task import Clock  # noqa: E402
from twisted.protocols.basic import Int32StringReceiver  # noqa: E402
from twisted.python.failure import Failure  # noqa: E402
from twisted.test import iosim  # noqa: E402
from zope.interface import implementer  # noqa: E402

from .client import Client  # noqa: E402
from .messages.OpenApiCommonMessages_pb2 import ProtoMessage  # noqa: E402
from .messages.OpenApiCommonModelMessages_pb2 import ProtoPayloadType  # noqa: E402
from .protobuf import Protobuf, payloadTypeOf  # noqa: E402
from .tcp import TcpProtocol  # noqa: E402
from .websocket import WebSocketProtocol  # noqa: E402

__all__ = [
    "ScriptedPeer",
    "ScriptedServer",
    "ScriptedWebSocketServer",
    "MemoryEndpoint",
    "SimulatedServer",
    "advance",
    "connectInMemory",
]

#: A realistic "now" for a test Clock (2026-09-21), so that timestamps,
#: maintenance times and history windows look like the real ones.
REALISTIC_START = 1_790_000_000.0


def advance(clock: Clock, pumps: Iterable[iosim.IOPump], seconds: float, step: float = 0.1) -> None:
    """Move *clock* by *seconds* in steps of at most *step*, moving the bytes
    of every pump after each step (so answers arrive before the next timer)."""
    pumps = list(pumps)
    for pump in pumps:
        pump.flush()
    left = seconds
    while left > 1e-9:
        dt = min(step, left)
        clock.advance(dt)
        for pump in pumps:
            pump.flush()
        left -= dt


# --- scripted peers -------------------------------------------------------------


class ScriptedPeer:
    """The transport-neutral half of a scripted Open API peer.

    It records every ``ProtoMessage`` received, answers automatically where
    told (``auto``), and sends what the test asks. Subclasses call
    :meth:`messageReceived` with each received message's bytes and implement
    :meth:`pushRaw` (one frame out).

    :ivar received: every message received, heartbeats included.
    :ivar lost: whether the connection is gone.
    :ivar auto: payload type -> ``function(requestPayload)`` returning the
        answer payload (or ``None`` for no answer).
    """

    def __init__(self) -> None:
        self.received: list[ProtoMessage] = []
        self.lost = False
        self.auto: dict[int, Callable[[Any], Any]] = {}

    def messageReceived(self, data: bytes) -> None:
        """Record one received frame; answer it if ``auto`` says how."""
        message = ProtoMessage.FromString(data)
        self.received.append(message)
        handler = self.auto.get(message.payloadType)
        if handler is not None:
            answer = handler(Protobuf.extract(message))
            if answer is not None:
                self.reply(message, answer)

    def requests(self) -> list[ProtoMessage]:
        """Received messages other than heartbeats."""
        return [m for m in self.received if m.payloadType != ProtoPayloadType.HEARTBEAT_EVENT]

    def reply(self, request: ProtoMessage, payload: Any, clientMsgId: str | None = None) -> None:
        """Answer *request* with *payload* (echoing its clientMsgId)."""
        self.push(payload, request.clientMsgId if clientMsgId is None else clientMsgId)

    def push(self, payload: Any, clientMsgId: str | None = None) -> None:
        """Send *payload* wrapped in a ProtoMessage."""
        envelope = ProtoMessage(payloadType=payloadTypeOf(payload), payload=payload.SerializeToString())
        if clientMsgId:
            envelope.clientMsgId = clientMsgId
        self.pushRaw(envelope.SerializeToString())

    def pushRaw(self, data: bytes) -> None:
        """Send *data* as one frame, whatever it is."""
        raise NotImplementedError("a scripted peer's transport half sends frames")


class ScriptedServer(ScriptedPeer, Int32StringReceiver):
    """A scripted peer over the TCP framing.

    It speaks the framing with Twisted's own ``Int32StringReceiver``, not
    ctrader-twisted's, so the client's framing is checked against an
    independent implementation.
    """

    MAX_LENGTH = 50_000_000

    def stringReceived(self, data: bytes) -> None:
        """One frame from the client."""
        self.messageReceived(data)

    def connectionLost(self, reason: Failure = Failure(ConnectionDone())) -> None:
        """Remember that the connection is gone."""
        self.lost = True

    def pushRaw(self, data: bytes) -> None:
        """Send *data* as one length-prefixed frame."""
        self.sendString(data)


class ScriptedWebSocketServer(ScriptedPeer, WebSocketServerProtocol):  # type: ignore[misc]
    """A scripted peer over WebSocket (binary messages).

    :ivar handshake: the client's opening-handshake request.
    :ivar answerPings: reply to WebSocket pings.
    :ivar holdHandshake: a Deferred that delays the handshake answer, if set.
    :ivar closes: ``(wasClean, code, reason)`` of each close seen.
    """

    def __init__(self) -> None:
        ScriptedPeer.__init__(self)
        WebSocketServerProtocol.__init__(self)
        self.closes: list[tuple[bool, Any, Any]] = []
        self.handshake: ConnectionRequest | None = None
        self.answerPings = True
        self.holdHandshake: Deferred[None] | None = None

    def onConnect(self, request: ConnectionRequest) -> Any:
        """Record the handshake; hold it if told to."""
        self.handshake = request
        return self.holdHandshake

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        """One message from the client (the Open API sends binary only)."""
        if not isBinary:
            raise AssertionError("the client must send binary messages only")
        self.messageReceived(payload)

    def onPing(self, payload: bytes) -> None:
        """Answer pings unless told not to."""
        if self.answerPings:
            super().onPing(payload)

    def onClose(self, wasClean: bool, code: Any, reason: Any) -> None:
        """Record the close."""
        self.closes.append((wasClean, code, reason))

    def connectionLost(self, reason: Failure = Failure(ConnectionDone())) -> None:
        """Remember that the connection is gone."""
        self.lost = True
        super().connectionLost(reason)

    def pushRaw(self, data: bytes) -> None:
        """Send *data* as one binary message, whatever it is."""
        self.sendMessage(data, isBinary=True)

    def pushText(self, text: str) -> None:
        """Send a text message (never valid in the Open API)."""
        self.sendMessage(text.encode("utf-8"), isBinary=False)

    @classmethod
    def serverFactory(cls) -> WebSocketServerFactory:
        """An Autobahn server factory for these servers: no size limit and no
        server-side timers (the client's timers are under test)."""
        factory = WebSocketServerFactory("ws://localhost:5035")
        factory.protocol = cls
        factory.setProtocolOptions(openHandshakeTimeout=0, closeHandshakeTimeout=0, autoPingInterval=0)
        return factory


# --- connecting in memory ------------------------------------------------------------


def connectInMemory(
    clientFactory: Any, clock: Clock, server: IProtocol | None = None, flush: bool = True
) -> tuple[Any, Any, iosim.IOPump]:
    """Connect a protocol built by *clientFactory* (a
    :class:`~ctrader_twisted.factory.Factory`, say) to *server* in memory.

    :param server: the server protocol; a new :class:`ScriptedServer` when omitted.
    :param flush: move the first bytes (handshakes) before returning.
    :returns: ``(clientProtocol, server, pump)``.
    """
    if server is None:
        server = ScriptedServer()
    elif isinstance(server, WebSocketServerProtocol) and getattr(server, "factory", None) is None:
        server.factory = ScriptedWebSocketServer.serverFactory()
    clientProto = clientFactory.buildProtocol(None)
    pump = iosim.connect(
        server,
        iosim.makeFakeServer(server),
        clientProto,
        iosim.makeFakeClient(clientProto),
        greet=False,
        clock=clock,
    )
    if flush:
        pump.flush()
    return clientProto, server, pump


@implementer(IStreamClientEndpoint)
class MemoryEndpoint:
    """An endpoint whose connection attempts reach fresh servers in memory.

    :param clock: the Clock of the test.
    :param makeServer: builds the server protocol of each attempt
        (a :class:`ScriptedServer` by default).

    :ivar servers: every server made, in order.
    :ivar pumps: their pumps.
    :ivar refuse: while true, attempts fail with ``ConnectionRefusedError``.
    :ivar onServer: called with each new server before it is connected (set
        :class:`ScriptedPeer`'s ``auto`` answers there).
    """

    def __init__(self, clock: Clock, makeServer: Callable[[], IProtocol] | None = None) -> None:
        self.clock = clock
        self.makeServer: Callable[[], IProtocol] = makeServer or ScriptedServer
        self.servers: list[Any] = []
        self.pumps: list[iosim.IOPump] = []
        self.refuse = False
        self.onServer: Callable[[Any], Any] | None = None

    def connect(self, protocolFactory: Any) -> Deferred[Any]:
        """Connect one attempt in memory (``IStreamClientEndpoint``)."""
        if self.refuse:
            return fail(ConnectionRefusedError("refused by the test's MemoryEndpoint"))
        server = self.makeServer()
        if self.onServer is not None:
            self.onServer(server)
        # No bytes move yet: the caller (ClientService) must first learn
        # that the attempt connected.
        clientProto, _, pump = connectInMemory(protocolFactory, self.clock, server, flush=False)
        self.servers.append(server)
        self.pumps.append(pump)
        return succeed(clientProto)

    def flush(self) -> None:
        """Move the bytes of every connection made."""
        for pump in self.pumps:
            pump.flush()

    def advance(self, seconds: float, step: float = 0.1) -> None:
        """Move the clock by *seconds*, moving bytes after each *step*."""
        advance(self.clock, self.pumps, seconds, step)


class SimulatedServer:
    """The bundled simulator in memory, on a Clock.

    :param simulator: a :class:`~ctrader_twisted.simulator.Simulator` built
        on *clock*; a new one (seed 0, default accounts) when omitted.
    :param clock: the Clock everything runs on; a new one set to a
        realistic date when omitted.
    :param transport: ``"tcp"`` (length-prefixed frames, the default) or
        ``"ws"`` (WebSocket messages): what the simulator serves, and the
        protocol :meth:`client` uses unless told otherwise. Both run every
        timer on *clock*.
    :param simulatorOptions: passed to ``Simulator`` when it is made here.

    :ivar endpoint: the :class:`MemoryEndpoint` clients connect through.
    :raises ValueError: *transport* is neither.
    """

    def __init__(
        self, simulator: Any = None, clock: Clock | None = None, transport: str = "tcp", **simulatorOptions: Any
    ) -> None:
        if transport not in ("tcp", "ws"):
            raise ValueError(f"transport must be 'tcp' or 'ws', not {transport!r}")
        if clock is None:
            clock = Clock()
            clock.advance(REALISTIC_START)
        if simulator is None:
            from .simulator import Simulator

            simulator = Simulator(clock=clock, **simulatorOptions)
        elif simulatorOptions:
            raise TypeError("give a ready simulator or its options, not both")
        self.clock = clock
        self.simulator = simulator
        self.transport = transport
        serverFactory = simulator.serverFactory(transport)
        self.endpoint = MemoryEndpoint(clock, lambda: serverFactory.buildProtocol(None))

    def client(self, **options: Any) -> Client:
        """A :class:`~ctrader_twisted.Client` that connects to this simulator
        (not started). *options* go to ``Client``; its host is ``localhost``,
        its protocol the one of the simulator's transport."""
        options.setdefault("protocol", TcpProtocol if self.transport == "tcp" else WebSocketProtocol)
        return Client("localhost", 5035, clock=self.clock, endpoint=self.endpoint, **options)

    def managedClient(self, **options: Any) -> Client:
        """A client with this simulator's application credentials (a managed
        session: it authenticates and restores itself on every connection)."""
        return self.client(clientId=self.simulator.clientId, clientSecret=self.simulator.clientSecret, **options)

    def connect(self, client: Client, within: float = 10.0) -> Client:
        """Start *client* and move time until it is ready.

        :raises AssertionError: it is not ready within *within* seconds (of
            the Clock), with the reason when it failed.
        """
        ready = client.whenReady() if client.running else None
        if ready is None:
            client.startService()
            ready = client.whenReady()
        outcome: list[Any] = []
        ready.addBoth(outcome.append)
        step = 0.05
        waited = 0.0
        self.flush()
        while not outcome and waited < within:
            self.advance(step)
            waited += step
        if not outcome:
            raise AssertionError(f"{client!r} was not ready within {within} s")
        if isinstance(outcome[0], Failure):
            raise AssertionError(f"{client!r} failed to become ready: {outcome[0].value}")
        return client

    def flush(self) -> None:
        """Move every byte waiting on every connection."""
        self.endpoint.flush()

    def advance(self, seconds: float, step: float = 0.1) -> None:
        """Move the clock by *seconds* (market ticks, heartbeats, timeouts),
        moving bytes after each *step*."""
        self.endpoint.advance(seconds, step)

    def resultOf(self, d: Deferred[Any], within: float = 10.0) -> Any:
        """Move time until *d* fires; return its result or raise its failure.

        :raises AssertionError: it did not fire within *within* seconds.
        """
        outcome: list[Any] = []
        d.addBoth(outcome.append)
        waited = 0.0
        self.flush()
        while not outcome and waited < within:
            self.advance(0.05)
            waited += 0.05
        if not outcome:
            raise AssertionError(f"{d!r} did not fire within {within} s")
        result = outcome[0]
        if isinstance(result, Failure):
            result.raiseException()
        return result
