"""A scripted Open API peer for in-memory tests.

:class:`ScriptedServer` speaks the TCP framing with Twisted's own
``Int32StringReceiver`` (deliberately not our ``TcpProtocol``, so the client's
framing is checked against an independent implementation), records every
``ProtoMessage`` it receives and lets the test answer.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import succeed
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.protocol import Factory as ServerFactory
from twisted.protocols.basic import Int32StringReceiver
from twisted.test import iosim
from zope.interface import implementer

from ctrader_twisted.messages.OpenApiCommonMessages_pb2 import ProtoMessage
from ctrader_twisted.protobuf import Protobuf, payloadTypeOf


class ScriptedPeer:
    """Transport-neutral half of a scripted peer: records every ProtoMessage,
    answers automatically where told, and sends answers and pushes.

    Subclasses call :meth:`messageReceived` with each received message's bytes
    and implement :meth:`pushRaw` (one frame out).
    """

    def __init__(self) -> None:
        self.received: list[ProtoMessage] = []
        self.lost = False
        #: Optional automatic answers: payloadType -> function(request payload) -> reply payload.
        self.auto: dict[int, Any] = {}

    def messageReceived(self, data: bytes) -> None:
        message = ProtoMessage.FromString(data)
        self.received.append(message)
        handler = self.auto.get(message.payloadType)
        if handler is not None:
            answer = handler(Protobuf.extract(message))
            if answer is not None:
                self.reply(message, answer)

    def requests(self) -> list[ProtoMessage]:
        """Received messages other than heartbeats."""
        return [m for m in self.received if m.payloadType != 51]

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
        raise NotImplementedError


class ScriptedServer(ScriptedPeer, Int32StringReceiver):
    """Records requests; the test calls :meth:`reply` / :meth:`push`."""

    MAX_LENGTH = 50_000_000

    def stringReceived(self, data: bytes) -> None:
        self.messageReceived(data)

    def connectionLost(self, reason: Any = None) -> None:
        self.lost = True

    def pushRaw(self, data: bytes) -> None:
        self.sendString(data)


def connectInMemory(clientFactory: Any, clock: Any) -> tuple[Any, ScriptedServer, iosim.IOPump]:
    """Connect a client factory to a fresh :class:`ScriptedServer` in memory."""
    server = ScriptedServer()
    client, serverProto, pump = iosim.connectedServerAndClient(
        lambda: server,
        lambda: clientFactory.buildProtocol(None),
        clock=clock,
        greet=False,
    )
    pump.flush()
    return client, server, pump


@implementer(IStreamClientEndpoint)
class MemoryEndpoint:
    """An endpoint whose connections go to new :class:`ScriptedServer` instances in memory.

    :ivar servers: every server made, in order; :ivar pumps: their pumps.
    """

    def __init__(self, clock: Any) -> None:
        self.clock = clock
        self.servers: list[ScriptedServer] = []
        self.pumps: list[iosim.IOPump] = []
        self.refuse = False
        #: called with each new server before it is connected (set auto-answers here)
        self.onServer: Any = None

    def connect(self, factory: Any) -> Any:
        if self.refuse:
            from twisted.internet.defer import fail
            from twisted.internet.error import ConnectionRefusedError

            return fail(ConnectionRefusedError())
        server = ScriptedServer()
        if self.onServer is not None:
            self.onServer(server)
        serverFactory = ServerFactory.forProtocol(lambda: server)
        clientProto = factory.buildProtocol(None)
        serverProto = serverFactory.buildProtocol(None)
        serverTransport = iosim.makeFakeServer(serverProto)
        clientTransport = iosim.makeFakeClient(clientProto)
        pump = iosim.connect(serverProto, serverTransport, clientProto, clientTransport, greet=False, clock=self.clock)
        self.servers.append(server)
        self.pumps.append(pump)
        return succeed(clientProto)

    def flush(self) -> None:
        for pump in self.pumps:
            pump.flush()
