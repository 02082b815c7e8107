"""Tests for ctrader_twisted.cli.stream: the streaming service against the
simulator, in memory with a Clock (timing, reconnection) and over loopback
TLS and wss (the real transports, the in-process simulator, errors)."""

from __future__ import annotations

import io
import json
from decimal import Decimal
from typing import Any, Callable

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks, succeed
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.protocol import Factory
from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import formatEvent, globalLogPublisher
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import implementer

from ctrader_twisted.cli.config import Credentials, Settings
from ctrader_twisted.cli.status import StreamError
from ctrader_twisted.cli.stream import StreamService
from ctrader_twisted.simulator import Simulator

FAST = 0.05  # simulator tick for tests, seconds


def lines(output: io.StringIO) -> list[dict[str, Any]]:
    """Parse JSON lines, keeping numbers exact."""
    return [json.loads(line, parse_float=Decimal) for line in output.getvalue().splitlines()]


def checkStream(test: SynchronousTestCase, records: list[dict[str, Any]], symbols: dict[str, int], simulated: bool) -> None:
    """Every line well formed; prices with the symbol's digits; times ordered per symbol."""
    last: dict[str, str] = {}
    for record in records:
        test.assertIn(record["event"], ("spot", "trendbar", "depth", "execution"))
        test.assertIs(record["simulated"], simulated)
        test.assertRegex(record["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        test.assertIsInstance(record["account"], int)
        if record["event"] == "spot":
            name = record["symbol"]
            test.assertIn(name, symbols)
            for side in ("bid", "ask"):
                test.assertIsInstance(record[side], Decimal)
                test.assertEqual(-record[side].as_tuple().exponent, symbols[name])
            test.assertLess(record["bid"], record["ask"])
            test.assertGreaterEqual(record["time"], last.get(name, ""))
            last[name] = record["time"]


@implementer(IStreamClientEndpoint)
class SimulatorEndpoint:
    """Client connections to *simulator* in memory (iosim), one pump each."""

    def __init__(self, simulator: Simulator, clock: Clock) -> None:
        self.serverFactory = simulator.serverFactory("tcp")
        self.clock = clock
        self.pumps: list[iosim.IOPump] = []

    def connect(self, factory: Any) -> Any:
        client = factory.buildProtocol(None)
        server = self.serverFactory.buildProtocol(None)
        self.pumps.append(iosim.connect(
            server, iosim.makeFakeServer(server), client, iosim.makeFakeClient(client), greet=False, clock=self.clock
        ))
        return succeed(client)

    def flush(self) -> None:
        for pump in self.pumps:
            pump.flush()


class ClockStreamTests(SynchronousTestCase):
    """The service against a simulator in memory; time is a Clock's."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_767_607_200)  # 2026-01-05T10:00:00Z
        self.sim = Simulator(seed=3, clock=self.clock, spotInterval=FAST)
        self.endpoint = SimulatorEndpoint(self.sim, self.clock)

    def start(self, symbols: list[str], **kwargs: Any) -> tuple[StreamService, io.StringIO, io.StringIO]:
        sim = self.sim
        settings = Settings(host="localhost", credentials=Credentials(sim.clientId, sim.clientSecret, sim.accessToken))
        output, status = io.StringIO(), io.StringIO()
        service = StreamService(
            settings, symbols, output, status, self.clock,
            clientOptions={"endpoint": self.endpoint, "retryPolicy": lambda attempt: FAST}, **kwargs,
        )
        self.addCleanup(self.stop, service)
        service.startService()
        self.endpoint.flush()
        return service, output, status

    def stop(self, service: StreamService) -> None:
        stopped = service.stopService() if service.running else succeed(None)
        self.endpoint.flush()
        self.successResultOf(stopped)
        self.successResultOf(self.sim.stop())

    def advance(self, seconds: float) -> None:
        """Let *seconds* pass, tick by tick, moving the bytes after each tick."""
        for _ in range(round(seconds / FAST)):
            self.clock.advance(FAST)
            self.endpoint.flush()

    def advanceUntil(self, condition: Callable[[], bool], limit: float = 10.0) -> None:
        """Let time pass until *condition* holds (at most *limit* seconds)."""
        for _ in range(round(limit / FAST)):
            if condition():
                return
            self.advance(FAST)
        self.fail(f"not reached within {limit:g} s")

    def test_durationEndsTheStream(self) -> None:
        """Lines are written until ``duration`` has elapsed, and none after."""
        service, output, _ = self.start(["EURUSD"], duration=2.0)
        done = service.whenDone()
        self.advance(1.9)
        self.assertNoResult(done)
        self.assertGreater(service.written, 0)
        self.advance(0.2)
        self.assertIsNone(self.successResultOf(done))
        self.assertFalse(service.streaming)
        count = service.written
        self.advance(1.0)
        self.assertEqual(service.written, count)
        self.assertEqual(len(lines(output)), count)

    def test_keepsStreamingAcrossAForcedDisconnect(self) -> None:
        """After a dropped connection the client restores the session and lines keep coming for every symbol."""
        service, output, status = self.start(["EURUSD", "XAUUSD"])
        self.advanceUntil(lambda: service.written >= 6)
        before = service.written
        self.sim.faults.dropNow()
        self.advanceUntil(lambda: service.reconnects == 1 and service.written >= before + 8)
        self.stop(service)
        records = lines(output)
        # The simulator says it is one in its version answer: the lines say so.
        checkStream(self, records, {"EURUSD": 5, "XAUUSD": 2}, simulated=True)
        after = records[before:]
        self.assertEqual({r["symbol"] for r in after}, {"EURUSD", "XAUUSD"})
        text = status.getvalue()
        self.assertIn("lost", text)
        self.assertIn("reconnected", text)
        # The subscription was restored by the client, not made twice by the service.
        assert service.client is not None
        self.assertEqual(len(service.client.session.accounts[service.accountIds[0]].spots), 2)


class StreamServiceTests(TestCase):
    """The service against the in-process simulator (offline default)."""

    def service(self, symbols: list[str], **kwargs: Any) -> tuple[StreamService, io.StringIO, io.StringIO]:
        output, status = io.StringIO(), io.StringIO()
        settings = kwargs.pop("settings", Settings(host=None))
        kwargs.setdefault("spotInterval", FAST)
        kwargs.setdefault("clientOptions", {"retryPolicy": lambda attempt: 0.05})
        service = StreamService(settings, symbols, output, status, reactor, **kwargs)
        self.addCleanup(lambda: service.stopService() if service.running else None)
        return service, output, status

    @inlineCallbacks
    def test_streamsSimulatedSpots(self) -> Any:
        """N spot lines from the in-process simulator, and four status lines (simulated ... stopped)."""
        service, output, status = self.service(["EURUSD", "xauusd"], count=12)
        service.startService()
        yield service.whenDone()
        yield service.stopService()
        records = lines(output)
        self.assertEqual(len(records), 12)
        checkStream(self, records, {"EURUSD": 5, "XAUUSD": 2}, simulated=True)
        self.assertEqual({r["symbol"] for r in records}, {"EURUSD", "XAUUSD"})
        self.assertEqual({r["account"] for r in records}, {service.accountIds[0]})
        # The first event of each symbol is the server's full quote (with the session close).
        self.assertIn("sessionClose", records[0])
        text = status.getvalue()
        self.assertIn("SIMULATED DATA", text)
        self.assertIn("streaming EURUSD, XAUUSD", text)
        self.assertIn("stopped (12 lines written)", text)
        self.assertEqual(len(text.splitlines()), 4)
        self.assertIsNone(service.simulator)  # stopped with the service

    @inlineCallbacks
    def test_trendbarsAndDepth(self) -> Any:
        """Live trend bars and depth quotes come as well-formed lines of their own."""
        service, output, _ = self.service(["EURUSD"], trendbars=["M1"], depth=True, count=30)
        service.startService()
        yield service.whenDone()
        records = lines(output)
        kinds = {r["event"] for r in records}
        self.assertEqual(kinds, {"spot", "trendbar", "depth"})
        checkStream(self, records, {"EURUSD": 5}, simulated=True)
        for bar in (r for r in records if r["event"] == "trendbar"):
            self.assertEqual(bar["period"], "M1")
            self.assertLessEqual(bar["low"], min(bar["open"], bar["close"]))
            self.assertGreaterEqual(bar["high"], max(bar["open"], bar["close"]))
        depth = next(r for r in records if r["event"] == "depth")
        self.assertEqual({q["side"] for q in depth["quotes"]}, {"bid", "ask"})

    @inlineCallbacks
    def test_websocket(self) -> Any:
        """The same stream over ``wss://``."""
        service, output, status = self.service(["EURUSD"], count=3, settings=Settings(host=None, websocket=True))
        service.startService()
        yield service.whenDone()
        self.assertEqual(len(lines(output)), 3)
        self.assertIn("WebSocket", status.getvalue())

    @inlineCallbacks
    def test_unknownSymbol(self) -> Any:
        """An unknown symbol fails :meth:`whenDone` with one line, before any output."""
        service, output, _ = self.service(["EURUSD", "NOPE"])
        service.startService()
        error = yield self.assertFailure(service.whenDone(), StreamError)
        self.assertIn("unknown symbol 'NOPE'", str(error))
        self.assertNotIn("\n", str(error))
        self.assertEqual(output.getvalue(), "")

    @inlineCallbacks
    def test_accountSelection(self) -> Any:
        """Market data comes through the selected account."""
        service, output, status = self.service(["EURUSD"], count=2, settings=Settings(host=None, accountIds=(2000002,)))
        service.startService()
        yield service.whenDone()
        self.assertEqual(service.accountIds, [2000002])
        self.assertEqual({r["account"] for r in lines(output)}, {2000002})

    @inlineCallbacks
    def test_brokenOutputEndsTheStream(self) -> Any:
        """A closed output (broken pipe) ends the stream quietly."""
        class Broken(io.StringIO):
            def write(self, text: str) -> int:
                raise BrokenPipeError()

        status = io.StringIO()
        service = StreamService(Settings(host=None), ["EURUSD"], Broken(), status, reactor, spotInterval=FAST)
        self.addCleanup(lambda: service.stopService() if service.running else None)
        service.startService()
        yield service.whenDone()
        self.assertEqual(service.written, 0)


class RemoteStreamTests(TestCase):
    """The service against a separately started simulator, as a remote server."""

    def setUp(self) -> None:
        self.sim = Simulator(seed=3, clock=reactor, spotInterval=FAST)
        self.listening = self.sim.listen(reactor, tlsPort=0, wsPort=0)
        self.addCleanup(self.sim.stop)
        self.caFile = self.mktemp()
        with open(self.caFile, "wb") as f:
            f.write(self.listening.caPEM)

    def settings(self, secret: str | None = None, token: str | None = None, caFile: Any = True, port: int | None = None) -> Settings:
        return Settings(
            host="localhost",
            port=port or self.listening.tlsPort,
            caFile=self.caFile if caFile is True else caFile,
            credentials=Credentials(self.sim.clientId, secret or self.sim.clientSecret, token or self.sim.accessToken),
        )

    def start(self, settings: Settings, **kwargs: Any) -> tuple[StreamService, io.StringIO, io.StringIO]:
        output, status = io.StringIO(), io.StringIO()
        service = StreamService(settings, ["EURUSD"], output, status, reactor, connectTimeout=10, **kwargs)
        self.addCleanup(lambda: service.stopService() if service.running else None)
        service.startService()
        return service, output, status

    @inlineCallbacks
    def test_realServerLinesAreNotSimulated(self) -> Any:
        """Against a real server (its version answer is a number), lines say
        ``"simulated": false``; every account of the token is authorized."""
        from ctrader_twisted.simulator.handlers import auth

        self.patch(auth, "SERVER_VERSION", "91")
        service, output, status = self.start(self.settings(), count=3)
        yield service.whenDone()
        records = lines(output)
        checkStream(self, records, {"EURUSD": 5}, simulated=False)
        self.assertNotIn("SIMULATED", status.getvalue())
        self.assertEqual(service.accountIds, self.sim.accountIds)

    @inlineCallbacks
    def test_standaloneSimulatorLinesAreSimulated(self) -> Any:
        """A simulator started separately (a host, not in-process) says what it is in its
        version answer: the lines say ``"simulated": true`` and a status line says why."""
        service, output, status = self.start(self.settings(), count=3)
        yield service.whenDone()
        checkStream(self, lines(output), {"EURUSD": 5}, simulated=True)
        self.assertIn("is a ctrader-twisted simulator", status.getvalue())
        self.assertEqual(service.connection.serverVersion, "91-ctrader-twisted-simulator")

    @inlineCallbacks
    def test_badClientSecret(self) -> Any:
        """A refused client secret: one line with the error code; the secret is never shown or logged."""
        observer = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        secret = "wrong-secret-that-must-not-show"
        service, output, status = self.start(self.settings(secret=secret))
        error = yield self.assertFailure(service.whenDone(), StreamError)
        self.assertIn("refused the application credentials", str(error))
        self.assertIn("CH_CLIENT_AUTH_FAILURE", str(error))
        yield service.stopService()
        logged = " ".join(formatEvent(e) for e in observer) + repr([dict(e) for e in observer])
        for text in (str(error), status.getvalue(), logged):
            self.assertNotIn(secret, text)
        self.flushLoggedErrors()

    @inlineCallbacks
    def test_badAccessToken(self) -> Any:
        """A refused access token: one line, without the token."""
        service, _, _ = self.start(self.settings(token="not-a-token"))
        error = yield self.assertFailure(service.whenDone(), StreamError)
        self.assertIn("refused the access token", str(error))
        self.assertNotIn("not-a-token", str(error))

    @inlineCallbacks
    def test_certificateFailure(self) -> Any:
        """A server certificate not signed by a trusted CA: one line, not a retry loop."""
        service, _, _ = self.start(self.settings(caFile=None))
        error = yield self.assertFailure(service.whenDone(), StreamError)
        self.assertIn("TLS certificate verification failed", str(error))

    @inlineCallbacks
    def test_unreachableHost(self) -> Any:
        """Nothing listening: one line naming host and port, not a retry loop."""
        port = reactor.listenTCP(0, Factory(), interface="127.0.0.1")
        free = port.getHost().port
        yield port.stopListening()
        service, _, _ = self.start(self.settings(port=free))
        error = yield self.assertFailure(service.whenDone(), StreamError)
        self.assertIn(f"cannot connect to localhost:{free}", str(error))
