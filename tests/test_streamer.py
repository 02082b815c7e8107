"""Tests for ctrader_twisted.streamer: JSON formatting (in memory) and the
streaming service against the simulator over loopback TLS and wss."""

from __future__ import annotations

import io
import json
from decimal import Decimal
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.defer import ensureDeferred
from twisted.internet.protocol import Factory
from twisted.internet.task import Clock, deferLater
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase

from ctrader_twisted.config import Credentials, Settings
from ctrader_twisted.messages.OpenApiMessages_pb2 import (
    ProtoOADepthEvent,
    ProtoOAExecutionEvent,
    ProtoOAOrderErrorEvent,
    ProtoOASpotEvent,
)
from ctrader_twisted.messages.OpenApiModelMessages_pb2 import (
    ProtoOADeal,
    ProtoOADepthQuote,
    ProtoOAOrder,
    ProtoOAPosition,
    ProtoOATradeData,
    ProtoOATrendbar,
)
from ctrader_twisted.simulator import Simulator
from ctrader_twisted.streamer import (
    EventFormatter,
    StreamError,
    StreamService,
    SymbolInfo,
    decimalPrice,
    dumpJson,
    isoTime,
    parsePeriod,
)

FAST = 0.05  # simulator tick for tests, seconds


def lines(output: io.StringIO) -> list[dict[str, Any]]:
    """Parse JSON lines, keeping numbers exact."""
    return [json.loads(line, parse_float=Decimal) for line in output.getvalue().splitlines()]


def waitFor(predicate: Any, timeout: float = 10.0, step: float = 0.02) -> Deferred[None]:
    """Poll *predicate* on the reactor (loopback tests only)."""

    async def poll() -> None:
        waited = 0.0
        while not predicate():
            if waited > timeout:
                raise AssertionError("condition not reached in time")
            await deferLater(reactor, step, lambda: None)
            waited += step

    return ensureDeferred(poll())


class FormattingTests(SynchronousTestCase):
    """Prices, times and JSON text."""

    def test_decimalPrice(self) -> None:
        self.assertEqual(str(decimalPrice(108123, 5)), "1.08123")
        self.assertEqual(str(decimalPrice(110000, 5)), "1.10000")
        self.assertEqual(str(decimalPrice(437637000, 2)), "4376.37")
        self.assertEqual(str(decimalPrice(2000000000, 1)), "20000.0")

    def test_isoTime(self) -> None:
        self.assertEqual(isoTime(0), "1970-01-01T00:00:00.000Z")
        self.assertEqual(isoTime(1_767_607_502_250), "2026-01-05T10:05:02.250Z")

    def test_dumpJsonKeepsDecimalDigits(self) -> None:
        text = dumpJson({"a": Decimal("1.10000"), "b": [1, "x\u00e9", None, True], "c": {"d": Decimal("2.5")}})
        self.assertEqual(text, '{"a":1.10000,"b":[1,"x\u00e9",null,true],"c":{"d":2.5}}')
        self.assertEqual(json.loads(text, parse_float=Decimal)["a"], Decimal("1.10000"))

    def test_dumpJsonRefusesNonFinite(self) -> None:
        self.assertRaises(ValueError, dumpJson, Decimal("NaN"))

    def test_parsePeriod(self) -> None:
        self.assertEqual(parsePeriod("M1"), 1)
        self.assertEqual(parsePeriod("m15"), 7)
        self.assertEqual(parsePeriod("MN1"), 14)
        with self.assertRaises(ValueError) as raised:
            parsePeriod("M7")
        self.assertIn("M15", str(raised.exception))


class EventFormatterTests(SynchronousTestCase):
    """Decoded events to JSON-ready dicts."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_767_607_502.25)
        symbols = {7: {1: SymbolInfo(1, "EURUSD", 5), 41: SymbolInfo(41, "XAUUSD", 2), 99: SymbolInfo(99, "OTHER")}}
        self.formatter = EventFormatter(symbols, True, lambda: int(self.clock.seconds() * 1000))

    def test_spotCarriesTheUnchangedSide(self) -> None:
        first = self.formatter.spot(
            ProtoOASpotEvent(ctidTraderAccountId=7, symbolId=1, bid=108123, ask=108125, sessionClose=108000, timestamp=1000)
        )
        self.assertEqual(
            first,
            [{
                "event": "spot", "time": "1970-01-01T00:00:01.000Z", "account": 7, "symbol": "EURUSD", "symbolId": 1,
                "bid": Decimal("1.08123"), "ask": Decimal("1.08125"), "sessionClose": Decimal("1.08000"), "simulated": True,
            }],
        )
        second = self.formatter.spot(ProtoOASpotEvent(ctidTraderAccountId=7, symbolId=1, ask=108130, timestamp=2000))
        self.assertEqual((second[0]["bid"], second[0]["ask"]), (Decimal("1.08123"), Decimal("1.08130")))
        self.assertNotIn("sessionClose", second[0])

    def test_spotWithoutTimestampUsesTheClock(self) -> None:
        [line] = self.formatter.spot(ProtoOASpotEvent(ctidTraderAccountId=7, symbolId=41, bid=437637000, ask=437657000))
        self.assertEqual(line["time"], "2026-01-05T10:05:02.250Z")
        self.assertEqual(str(line["bid"]), "4376.37")

    def test_liveTrendbarCloseIsTheBid(self) -> None:
        bar = ProtoOATrendbar(volume=3, period=1, low=108100, deltaOpen=10, deltaHigh=40, utcTimestampInMinutes=29460125)
        spot, trendbar = self.formatter.spot(
            ProtoOASpotEvent(ctidTraderAccountId=7, symbolId=1, bid=108120, ask=108122, trendbar=[bar], timestamp=5)
        )
        self.assertEqual(spot["event"], "spot")
        self.assertEqual(trendbar["event"], "trendbar")
        self.assertEqual(trendbar["period"], "M1")
        self.assertEqual(trendbar["barTime"], isoTime(29460125 * 60_000))
        self.assertEqual(
            [trendbar[k] for k in ("open", "high", "low", "close", "volume")],
            [Decimal("1.08110"), Decimal("1.08140"), Decimal("1.08100"), Decimal("1.08120"), 3],
        )

    def test_trendbarWithDeltaClose(self) -> None:
        bar = ProtoOATrendbar(volume=1, period=9, low=100, deltaClose=5, utcTimestampInMinutes=60)
        line = self.formatter.trendbar(7, SymbolInfo(1, "EURUSD", 5), bar, 0, bid=999)
        self.assertEqual(line["close"], Decimal("0.00105"))
        self.assertEqual(line["period"], "H1")

    def test_unknownSymbolFallsBackToItsId(self) -> None:
        [line] = self.formatter.spot(ProtoOASpotEvent(ctidTraderAccountId=8, symbolId=5, bid=12345, ask=12346))
        self.assertEqual(line["symbol"], "5")
        self.assertEqual(str(line["bid"]), "0.12345")

    def test_depth(self) -> None:
        event = ProtoOADepthEvent(
            ctidTraderAccountId=7, symbolId=41,
            newQuotes=[ProtoOADepthQuote(id=1, size=250, bid=437600000), ProtoOADepthQuote(id=2, size=100000, ask=437700000)],
            deletedQuotes=[9],
        )
        line = self.formatter.depth(event)
        self.assertEqual(
            line["quotes"],
            [
                {"id": 1, "side": "bid", "price": Decimal("4376.00"), "size": Decimal("2.50")},
                {"id": 2, "side": "ask", "price": Decimal("4377.00"), "size": Decimal("1000")},
            ],
        )
        self.assertEqual(line["deleted"], [9])
        self.assertEqual(line["symbol"], "XAUUSD")

    def test_execution(self) -> None:
        trade = ProtoOATradeData(symbolId=1, volume=100000, tradeSide=1)
        event = ProtoOAExecutionEvent(
            ctidTraderAccountId=7,
            executionType=3,  # ORDER_FILLED
            order=ProtoOAOrder(orderId=11, tradeData=trade, orderType=1, orderStatus=2, executionPrice=1.08124,
                               utcLastUpdateTimestamp=3000, clientOrderId="mine"),
            position=ProtoOAPosition(positionId=21, tradeData=trade, positionStatus=1, swap=0, price=1.08124),
            deal=ProtoOADeal(dealId=31, orderId=11, positionId=21, volume=100000, filledVolume=100000, symbolId=1,
                             createTimestamp=2000, executionTimestamp=4000, executionPrice=1.08124, tradeSide=1,
                             dealStatus=2, commission=-250, moneyDigits=2),
        )
        line = self.formatter.execution(event)
        self.assertEqual(line["type"], "ORDER_FILLED")
        self.assertEqual(line["symbol"], "EURUSD")
        self.assertEqual(line["side"], "BUY")
        self.assertEqual(line["volume"], Decimal("1000"))
        self.assertEqual(line["executionPrice"], Decimal("1.08124"))
        self.assertEqual(line["dealPrice"], Decimal("1.08124"))
        self.assertEqual(line["commission"], Decimal("-2.50"))
        self.assertEqual((line["orderId"], line["positionId"], line["dealId"]), (11, 21, 31))
        self.assertEqual(line["time"], isoTime(4000))
        self.assertEqual(line["clientOrderId"], "mine")
        self.assertIs(line["simulated"], True)

    def test_orderError(self) -> None:
        line = self.formatter.orderError(
            ProtoOAOrderErrorEvent(ctidTraderAccountId=7, errorCode="NOT_ENOUGH_MONEY", orderId=3, description="no")
        )
        self.assertEqual(
            (line["event"], line["errorCode"], line["orderId"], line["description"]),
            ("order_error", "NOT_ENOUGH_MONEY", 3, "no"),
        )


def checkStream(test: TestCase, records: list[dict[str, Any]], symbols: dict[str, int], simulated: bool) -> None:
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
    def test_keepsStreamingAcrossAForcedDisconnect(self) -> Any:
        service, output, status = self.service(["EURUSD", "XAUUSD"])
        service.startService()
        yield waitFor(lambda: service.written >= 6)
        before = service.written
        service.simulator.faults.dropNow()
        yield waitFor(lambda: service.reconnects == 1 and service.written >= before + 8)
        yield service.stopService()
        records = lines(output)
        checkStream(self, records, {"EURUSD": 5, "XAUUSD": 2}, simulated=True)
        after = records[before:]
        self.assertEqual({r["symbol"] for r in after}, {"EURUSD", "XAUUSD"})
        text = status.getvalue()
        self.assertIn("lost", text)
        self.assertIn("reconnected", text)
        # The subscription was restored by the client, not made twice by the service.
        self.assertEqual(len(service.client.session.accounts[service.accountIds[0]].spots), 2)

    @inlineCallbacks
    def test_websocket(self) -> Any:
        service, output, status = self.service(["EURUSD"], count=3, settings=Settings(host=None, websocket=True))
        service.startService()
        yield service.whenDone()
        self.assertEqual(len(lines(output)), 3)
        self.assertIn("WebSocket", status.getvalue())

    @inlineCallbacks
    def test_durationEndsTheStream(self) -> Any:
        service, output, _ = self.service(["EURUSD"], duration=0.5)
        service.startService()
        yield service.whenDone()
        self.assertFalse(service.streaming)
        count = service.written
        yield deferLater(reactor, 0.2, lambda: None)
        self.assertEqual(service.written, count)

    @inlineCallbacks
    def test_unknownSymbol(self) -> Any:
        service, output, _ = self.service(["EURUSD", "NOPE"])
        service.startService()
        error = yield self.assertFailure(service.whenDone(), StreamError)
        self.assertIn("unknown symbol 'NOPE'", str(error))
        self.assertNotIn("\n", str(error))
        self.assertEqual(output.getvalue(), "")

    @inlineCallbacks
    def test_accountSelection(self) -> Any:
        service, output, status = self.service(["EURUSD"], count=2, settings=Settings(host=None, accountIds=(2000002,)))
        service.startService()
        yield service.whenDone()
        self.assertEqual(service.accountIds, [2000002])
        self.assertEqual({r["account"] for r in lines(output)}, {2000002})

    @inlineCallbacks
    def test_brokenOutputEndsTheStream(self) -> Any:
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
        service, output, status = self.start(self.settings(), count=3)
        yield service.whenDone()
        records = lines(output)
        checkStream(self, records, {"EURUSD": 5}, simulated=False)
        self.assertNotIn("SIMULATED", status.getvalue())
        self.assertEqual(service.accountIds, self.sim.accountIds)

    @inlineCallbacks
    def test_badClientSecret(self) -> Any:
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
        service, _, _ = self.start(self.settings(token="not-a-token"))
        error = yield self.assertFailure(service.whenDone(), StreamError)
        self.assertIn("refused the access token", str(error))
        self.assertNotIn("not-a-token", str(error))

    @inlineCallbacks
    def test_certificateFailure(self) -> Any:
        service, _, _ = self.start(self.settings(caFile=None))
        error = yield self.assertFailure(service.whenDone(), StreamError)
        self.assertIn("TLS certificate verification failed", str(error))

    @inlineCallbacks
    def test_unreachableHost(self) -> Any:
        port = reactor.listenTCP(0, Factory(), interface="127.0.0.1")
        free = port.getHost().port
        yield port.stopListening()
        service, _, _ = self.start(self.settings(port=free))
        error = yield self.assertFailure(service.whenDone(), StreamError)
        self.assertIn(f"cannot connect to localhost:{free}", str(error))
