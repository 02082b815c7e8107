"""The benchmark server: the project's simulator in a child process, plus a control port.

``python -m bench.server`` (started by :mod:`bench.run`) runs a
:class:`ctrader_twisted.simulator.Simulator` listening on 127.0.0.1 with TLS
TCP and TLS WebSocket (``wss://``) and the CA it mints, opens a plain-text
control port, then prints one JSON line::

    {"tcp": port, "ws": port, "control": port, "ca": pem,
     "clientId": ..., "clientSecret": ..., "accessToken": ..., "accountId": ...}

(the simulator's own credentials and its first, demo, trading account; the
runner hands them to the clients in a file, never on a command line).

Every Open API request is answered by the simulator itself (application and
account authentication, ``ProtoOASubscribeSpotsReq`` with its first
"current price" spot event, ``ProtoOAVersionReq``, heartbeats...). It runs
with market ticks an hour apart (so no tick interleaves with a measurement),
no request rate limits and no idle timeout. The control port takes one
command per line:

``burst N``
    :meth:`Simulator.burst`: stream ``N`` ``ProtoOASpotEvent`` messages of
    symbol 1 (EURUSD) to every connection subscribed to it, as fast as each
    transport takes them (a pull producer writing pre-serialized frames).
    Replies ``ok WRITTEN`` once all are written (``WRITTEN`` is summed over
    the subscribed connections).
``prep SIZE``
    build (and keep) the big message of ``big SIZE`` ahead of time, so that
    building it is not timed. Replies ``ok BYTES``.
``big SIZE CHUNK``
    build (unless prepared) one ``ProtoOASymbolsListRes`` of about ``SIZE``
    bytes and write it to every connection with
    :meth:`Simulator.writeToAll` in ``CHUNK``-byte writes (one binary message
    on WebSocket connections). Replies ``ok BYTES`` (the size of the
    serialized ``ProtoMessage``) once written.
``cpu``
    Replies ``ok SECONDS``: the CPU time (user + system) this server process
    has used so far, so that a client can report the server's CPU over its
    measurement beside its own (the server must not be the bottleneck).

The server runs in its own process so that the client's CPU time is measured
alone. It stops when its standard input is closed.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import txaio  # noqa: E402

txaio.use_twisted()

from ctrader_twisted.messages.OpenApiCommonMessages_pb2 import ProtoMessage  # noqa: E402
from ctrader_twisted.messages import OpenApiMessages_pb2 as M  # noqa: E402
from ctrader_twisted.messages.OpenApiModelMessages_pb2 import ProtoOALightSymbol  # noqa: E402

#: The symbol every benchmark streams (EURUSD in the simulator).
SYMBOL = 1


def spotMessages(count: int = 16) -> list[bytes]:
    """Serialized ``ProtoMessage`` envelopes like those of the simulator's bursts.

    The same fields and values as :meth:`Simulator.burst` writes for symbol 1
    of a ``seed=0`` simulator and its demo account (a pool of *count* prices
    around the current bid, spread added), for the in-process ceilings of
    :mod:`bench.ceiling`.
    """
    from twisted.internet.task import Clock

    from ctrader_twisted.simulator import Simulator

    clock = Clock()
    clock.advance(1_763_000_000)
    sim = Simulator(seed=0, clock=clock)
    state = sim.market.symbols[SYMBOL]
    accountId, now = sim.accountIds[0], sim.nowMs()
    out = []
    for i in range(count):
        bid = state.round(state.bid + (i % 8 - 4) * state.tick)
        event = M.ProtoOASpotEvent(
            ctidTraderAccountId=accountId, symbolId=SYMBOL, bid=bid, ask=bid + state.spread, timestamp=now + i,
        )
        out.append(ProtoMessage(payloadType=event.payloadType, payload=event.SerializeToString()).SerializeToString())
    return out


def symbolsList(size: int, accountId: int) -> bytes:
    """A serialized ``ProtoMessage`` with a ``ProtoOASymbolsListRes`` of about *size* bytes."""
    one = ProtoOALightSymbol(
        symbolId=100_000, symbolName="EURUSD.100000", enabled=True, baseAssetId=1, quoteAssetId=2,
        symbolCategoryId=3, description="Euro vs US Dollar, bench symbol 100000",
    ).ByteSize() + 3
    count = max(1, size // one)
    for _ in range(2):  # the second pass corrects the size estimate
        res = M.ProtoOASymbolsListRes(ctidTraderAccountId=accountId)
        for i in range(count):
            n = 100_000 + i % 900_000
            res.symbol.add(
                symbolId=n, symbolName=f"EURUSD.{n}", enabled=True, baseAssetId=1, quoteAssetId=2,
                symbolCategoryId=3, description=f"Euro vs US Dollar, bench symbol {n}",
            )
        count = max(1, count * size // res.ByteSize())
    return ProtoMessage(payloadType=res.payloadType, payload=res.SerializeToString()).SerializeToString()


def main() -> None:
    from twisted.internet import reactor, stdio
    from twisted.internet.endpoints import TCP4ServerEndpoint
    from twisted.internet.protocol import Factory, Protocol
    from twisted.protocols.basic import LineReceiver

    from ctrader_twisted.simulator import Simulator

    sim = Simulator(
        seed=0,
        clock=reactor,  # type: ignore[arg-type]
        spotInterval=3600,
        idleTimeout=None,
        requestsPerSecond=None,
        historicalRequestsPerSecond=None,
    )
    accountId = sim.accountIds[0]
    listening = sim.listen(reactor, tlsPort=0, wsPort=0)
    prepared: dict[int, bytes] = {}

    class ControlServer(LineReceiver):
        delimiter = b"\n"

        def lineReceived(self, line: bytes) -> None:
            words = line.decode().split()
            try:
                if words[0] == "burst":
                    sim.burst(int(words[1]), SYMBOL).addCallbacks(
                        lambda written: self.sendLine(f"ok {written}".encode()),
                        lambda failure: self.sendLine(f"error {failure.getErrorMessage()}".encode()),
                    )
                elif words[0] == "prep":
                    size = int(words[1])
                    prepared[size] = symbolsList(size, accountId)
                    self.sendLine(f"ok {len(prepared[size])}".encode())
                elif words[0] == "big":
                    size, chunk = int(words[1]), int(words[2])
                    data = prepared.get(size) or symbolsList(size, accountId)
                    sim.writeToAll(data, chunk)
                    self.sendLine(f"ok {len(data)}".encode())
                elif words[0] == "cpu":
                    self.sendLine(f"ok {time.process_time()!r}".encode())
                else:
                    self.sendLine(b"error unknown command")
            except (IndexError, ValueError, RuntimeError) as e:
                self.sendLine(f"error {e}".encode())

    def started(port: Any) -> None:
        print(json.dumps({
            "tcp": listening.tlsPort, "ws": listening.wsPort, "control": port.getHost().port,
            "ca": listening.caPEM.decode(),
            "clientId": sim.clientId, "clientSecret": sim.clientSecret,
            "accessToken": sim.accessToken, "accountId": accountId,
        }), flush=True)

    TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(Factory.forProtocol(ControlServer)).addCallback(started)

    class StopOnEOF(Protocol):
        """The parent closes our stdin when it is done: stop then."""

        def connectionLost(self, reason: Any) -> None:
            if reactor.running:  # type: ignore[attr-defined]
                sim.stop().addBoth(lambda _: reactor.stop())  # type: ignore[attr-defined]

    stdio.StandardIO(StopOnEOF())
    reactor.run()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
