"""A bench-only experiment: a faster receive path for the request core.

Not used by default. ``python -m bench.experiment`` profiles the in-process
core (:func:`bench.ceiling.coreInProcess`) with cProfile, then measures it
before and after :func:`apply`, which monkeypatches
:meth:`ctrader_twisted.factory.Factory.frameReceived` with the change proposed
for the library: decode the payload through a payload-type -> ``FromString``
table instead of :meth:`Protobuf.extract` (whose ``get_class`` walks
``isinstance`` checks per message), and call listeners and message callbacks
inside one ``try`` per call instead of through ``_safely``.
``python -m bench.client_ours ... --patched`` applies it in a client run, so
the whole stack can be compared over TLS too.

Behaviour is unchanged: same correlation, same logging on bad frames, same
isolation of listener exceptions.
"""

from __future__ import annotations

import cProfile
import os
import pstats
import sys
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def apply() -> None:
    """Monkeypatch ``Factory.frameReceived`` with the proposed fast path."""
    from google.protobuf.message import DecodeError

    from ctrader_twisted import factory as core
    from ctrader_twisted.errors import InvalidMessageError
    from ctrader_twisted.protobuf import Protobuf

    decoders = {t: cls.FromString for t, cls in Protobuf.payloadTypes().items()}
    fromString = core.ProtoMessage.FromString
    heartbeat = core._HEARTBEAT_TYPE

    def frameReceived(self: Any, connection: Any, data: bytes) -> None:
        if connection is not self.connection:
            return
        self.activity += 1
        try:
            message = fromString(data)
        except DecodeError as e:
            self._log.warn("Skipped a {length}-byte frame that is not a ProtoMessage: {error}",
                           length=len(data), error=str(e))
            return
        if not message.HasField("payloadType"):
            self._log.warn("Skipped a {length}-byte frame without a payloadType", length=len(data))
            return
        payloadType = message.payloadType
        if message.clientMsgId:
            request = self._pending.get(message.clientMsgId)
            if request is not None and request.sent and not request.done:
                self._answer(request, message)
            elif request is None and payloadType != heartbeat:
                self._log.debug("{name} for clientMsgId {clientMsgId} matches no pending request",
                                name=Protobuf.name(payloadType), clientMsgId=message.clientMsgId)
        for callback in self._messageCallbacks:
            try:
                callback(message)
            except Exception:
                self._log.failure("Exception in user callback {callback!r}", callback=callback)
        listeners = self._listeners.get(payloadType)
        if listeners:
            decode = decoders.get(payloadType)
            try:
                if decode is None:
                    payload = Protobuf.extract(message)  # raises the usual UnknownMessageError
                else:
                    payload = decode(message.payload)
            except DecodeError as e:
                error = InvalidMessageError(f"payload of type {payloadType} does not decode: {e}")
                self._log.warn("Could not decode {name} for its listeners: {error}",
                               name=Protobuf.name(payloadType), error=str(error))
                return
            except core.CTraderError as e:
                self._log.warn("Could not decode {name} for its listeners: {error}",
                               name=Protobuf.name(payloadType), error=str(e))
                return
            for listener in listeners:
                try:
                    listener(payload)
                except Exception:
                    self._log.failure("Exception in user callback {callback!r}", callback=listener)

    core.Factory.frameReceived = frameReceived  # type: ignore[method-assign]


def main() -> None:
    from bench import ceiling

    count = int(sys.argv[1]) if len(sys.argv) > 1 else 500_000
    profile = cProfile.Profile()
    profile.runcall(ceiling.coreInProcess, count // 5)
    pstats.Stats(profile).sort_stats("tottime").print_stats(12)
    before = [ceiling.coreInProcess(count)["events_per_s"] for _ in range(5)]
    apply()
    after = [ceiling.coreInProcess(count)["events_per_s"] for _ in range(5)]
    ceilings = [ceiling.parsingCeiling(count)["events_per_s"] for _ in range(5)]

    def med(values: list[float]) -> float:
        return sorted(values)[len(values) // 2]

    print(f"core in process, events/s: before {med(before):,.0f} {[round(v) for v in before]}")
    print(f"core in process, events/s: after  {med(after):,.0f} {[round(v) for v in after]}")
    print(f"parsing ceiling, events/s:        {med(ceilings):,.0f}")


if __name__ == "__main__":
    main()
