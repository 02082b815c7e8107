"""Tests for ctrader_twisted.cli.jsonlines: prices, times, JSON text, and
decoded events to JSON-ready dicts (in memory)."""

from __future__ import annotations

import json
from decimal import Decimal

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from ctrader_twisted.cli.jsonlines import EventFormatter, SymbolInfo, decimalPrice, dumpJson, isoTime
from ctrader_twisted.messages.OpenApiMessages_pb2 import (
    ProtoOADepthEvent,
    ProtoOAExecutionEvent,
    ProtoOAOrderErrorEvent,
    ProtoOASpotEvent,
)
from ctrader_twisted.messages.OpenApiModelMessages_pb2 import (
    ProtoOADeal,
    ProtoOADealStatus,
    ProtoOADepthQuote,
    ProtoOAExecutionType,
    ProtoOAOrder,
    ProtoOAOrderStatus,
    ProtoOAOrderType,
    ProtoOAPosition,
    ProtoOAPositionStatus,
    ProtoOATradeData,
    ProtoOATradeSide,
    ProtoOATrendbar,
    ProtoOATrendbarPeriod,
)


class FormattingTests(SynchronousTestCase):
    """Prices, times and JSON text."""

    def test_decimalPrice(self) -> None:
        """Wire prices (1/100000) with the symbol's digits, trailing zeros kept."""
        self.assertEqual(str(decimalPrice(108123, 5)), "1.08123")
        self.assertEqual(str(decimalPrice(110000, 5)), "1.10000")
        self.assertEqual(str(decimalPrice(437637000, 2)), "4376.37")
        self.assertEqual(str(decimalPrice(2000000000, 1)), "20000.0")

    def test_isoTime(self) -> None:
        """Milliseconds since the epoch as ISO 8601 UTC with milliseconds."""
        self.assertEqual(isoTime(0), "1970-01-01T00:00:00.000Z")
        self.assertEqual(isoTime(1_767_607_502_250), "2026-01-05T10:05:02.250Z")

    def test_dumpJsonKeepsDecimalDigits(self) -> None:
        text = dumpJson({"a": Decimal("1.10000"), "b": [1, "x\u00e9", None, True], "c": {"d": Decimal("2.5")}})
        self.assertEqual(text, '{"a":1.10000,"b":[1,"x\u00e9",null,true],"c":{"d":2.5}}')
        self.assertEqual(json.loads(text, parse_float=Decimal)["a"], Decimal("1.10000"))

    def test_dumpJsonRefusesNonFinite(self) -> None:
        self.assertRaises(ValueError, dumpJson, Decimal("NaN"))


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
                "event": "spot", "time": "1970-01-01T00:00:01.000Z", "timeMs": 1000, "account": 7, "symbol": "EURUSD", "symbolId": 1,
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
        bar = ProtoOATrendbar(volume=3, period=ProtoOATrendbarPeriod.M1, low=108100, deltaOpen=10, deltaHigh=40,
                              utcTimestampInMinutes=29460125)
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
        bar = ProtoOATrendbar(volume=1, period=ProtoOATrendbarPeriod.H1, low=100, deltaClose=5, utcTimestampInMinutes=60)
        line = self.formatter.trendbar(7, SymbolInfo(1, "EURUSD", 5), bar, 0, bid=999)
        self.assertEqual(line["close"], Decimal("0.00105"))
        self.assertEqual(line["period"], "H1")

    def test_unknownSymbolFallsBackToItsId(self) -> None:
        [line] = self.formatter.spot(ProtoOASpotEvent(ctidTraderAccountId=8, symbolId=5, bid=12345, ask=12346))
        self.assertEqual(line["symbol"], "5")
        self.assertEqual(str(line["bid"]), "0.12345")

    def test_depth(self) -> None:
        """Depth quotes: side, price, size in units; and the ids deleted."""
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
        """An ORDER_FILLED event: ids, side, volume in units, exact prices and commission, the deal's time."""
        trade = ProtoOATradeData(symbolId=1, volume=100000, tradeSide=ProtoOATradeSide.BUY)
        event = ProtoOAExecutionEvent(
            ctidTraderAccountId=7,
            executionType=ProtoOAExecutionType.ORDER_FILLED,
            order=ProtoOAOrder(orderId=11, tradeData=trade, orderType=ProtoOAOrderType.MARKET,
                               orderStatus=ProtoOAOrderStatus.ORDER_STATUS_FILLED, executionPrice=1.08124,
                               utcLastUpdateTimestamp=3000, clientOrderId="mine"),
            position=ProtoOAPosition(positionId=21, tradeData=trade, swap=0, price=1.08124,
                                     positionStatus=ProtoOAPositionStatus.POSITION_STATUS_OPEN),
            deal=ProtoOADeal(dealId=31, orderId=11, positionId=21, volume=100000, filledVolume=100000, symbolId=1,
                             createTimestamp=2000, executionTimestamp=4000, executionPrice=1.08124,
                             tradeSide=ProtoOATradeSide.BUY, dealStatus=ProtoOADealStatus.FILLED, commission=-250,
                             moneyDigits=2),
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
        """An order error: its code, and the ids and description sent."""
        line = self.formatter.orderError(
            ProtoOAOrderErrorEvent(ctidTraderAccountId=7, errorCode="NOT_ENOUGH_MONEY", orderId=3, description="no")
        )
        self.assertEqual(
            (line["event"], line["errorCode"], line["orderId"], line["description"]),
            ("order_error", "NOT_ENOUGH_MONEY", 3, "no"),
        )


class EpochMillisecondsTests(SynchronousTestCase):
    """Every ISO time has its milliseconds since the epoch beside it (``<key>Ms``)."""

    def setUp(self) -> None:
        clock = Clock()
        clock.advance(1_767_607_502.25)
        self.formatter = EventFormatter({7: {1: SymbolInfo(1, "EURUSD", 5)}}, False, lambda: int(clock.seconds() * 1000))

    def assertStamps(self, line: dict[str, object]) -> None:
        from datetime import datetime

        times = [k for k in line if k in ("time", "barTime")]
        self.assertTrue(times, line)
        for key in times:
            ms = line[key + "Ms"]
            self.assertIsInstance(ms, int)
            parsed = datetime.fromisoformat(str(line[key]).replace("Z", "+00:00"))
            self.assertEqual(round(parsed.timestamp() * 1000), ms)
            keys = list(line)
            self.assertEqual(keys.index(key + "Ms"), keys.index(key) + 1, "the Ms field follows its ISO time")

    def test_everyEventKind(self) -> None:
        """spot, trendbar, depth, execution and order_error lines: ``time``/``timeMs``, ``barTime``/``barTimeMs``."""
        bar = ProtoOATrendbar(volume=3, period=ProtoOATrendbarPeriod.M1, low=108100, deltaOpen=10, deltaHigh=40,
                              utcTimestampInMinutes=29460125)
        lines = self.formatter.spot(
            ProtoOASpotEvent(ctidTraderAccountId=7, symbolId=1, bid=108120, ask=108122, trendbar=[bar], timestamp=1_767_607_502_251)
        )
        lines.append(self.formatter.depth(ProtoOADepthEvent(ctidTraderAccountId=7, symbolId=1)))
        lines.append(self.formatter.execution(ProtoOAExecutionEvent(
            ctidTraderAccountId=7, executionType=ProtoOAExecutionType.ORDER_ACCEPTED)))
        lines.append(self.formatter.orderError(ProtoOAOrderErrorEvent(ctidTraderAccountId=7, errorCode="X")))
        self.assertEqual([line["event"] for line in lines], ["spot", "trendbar", "depth", "execution", "order_error"])
        for line in lines:
            self.assertStamps(line)
        self.assertEqual(lines[0]["timeMs"], 1_767_607_502_251)
        self.assertEqual(lines[1]["barTimeMs"], 29460125 * 60_000)
        self.assertEqual(lines[2]["timeMs"], 1_767_607_502_250)  # no server time: the clock's


class AbsentPricesTests(SynchronousTestCase):
    """Prices the server left at zero (no price yet) are left out, never written as 0."""

    def setUp(self) -> None:
        self.formatter = EventFormatter({7: {1: SymbolInfo(1, "EURUSD", 5)}}, False, lambda: 0)

    def test_orderAcceptedHasNoPositionPrice(self) -> None:
        """ORDER_ACCEPTED of a market order: the new position's price is 0 on the wire; no ``positionPrice``."""
        trade = ProtoOATradeData(symbolId=1, volume=100000, tradeSide=ProtoOATradeSide.BUY)
        event = ProtoOAExecutionEvent(
            ctidTraderAccountId=7,
            executionType=ProtoOAExecutionType.ORDER_ACCEPTED,
            order=ProtoOAOrder(orderId=11, tradeData=trade, orderType=ProtoOAOrderType.MARKET,
                               orderStatus=ProtoOAOrderStatus.ORDER_STATUS_ACCEPTED, executionPrice=0.0,
                               utcLastUpdateTimestamp=3000),
            position=ProtoOAPosition(positionId=21, tradeData=trade, swap=0, price=0.0, stopLoss=0.0, takeProfit=0.0,
                                     positionStatus=ProtoOAPositionStatus.POSITION_STATUS_CREATED),
        )
        line = self.formatter.execution(event)
        self.assertEqual(line["type"], "ORDER_ACCEPTED")
        for key in ("positionPrice", "executionPrice", "stopLoss", "takeProfit", "dealPrice"):
            self.assertNotIn(key, line)
        self.assertNotIn(":0,", dumpJson(line).replace('"swap":0,', ""))
        self.assertEqual((line["orderId"], line["positionId"], line["timeMs"]), (11, 21, 3000))

    def test_nonFinitePricesAreLeftOut(self) -> None:
        """A NaN or an infinity from the wire is no price either (and never breaks the JSON)."""
        trade = ProtoOATradeData(symbolId=1, volume=100000, tradeSide=ProtoOATradeSide.SELL)
        event = ProtoOAExecutionEvent(
            ctidTraderAccountId=7, executionType=ProtoOAExecutionType.ORDER_ACCEPTED,
            order=ProtoOAOrder(orderId=1, tradeData=trade, limitPrice=float("nan"), stopPrice=float("inf")),
        )
        line = self.formatter.execution(event)
        self.assertNotIn("limitPrice", line)
        self.assertNotIn("stopPrice", line)
        json.loads(dumpJson(line))

    def test_realPricesAreKept(self) -> None:
        """A filled position's price and its stops are written with the symbol's digits."""
        trade = ProtoOATradeData(symbolId=1, volume=100000, tradeSide=ProtoOATradeSide.BUY)
        event = ProtoOAExecutionEvent(
            ctidTraderAccountId=7, executionType=ProtoOAExecutionType.ORDER_FILLED,
            position=ProtoOAPosition(positionId=2, tradeData=trade, swap=0, price=1.08124, stopLoss=1.07,
                                     positionStatus=ProtoOAPositionStatus.POSITION_STATUS_OPEN),
        )
        line = self.formatter.execution(event)
        self.assertEqual((line["positionPrice"], line["stopLoss"]), (Decimal("1.08124"), Decimal("1.07000")))
