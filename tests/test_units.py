"""Unit conversions (ctrader_twisted.units, and the typed models built on
them), checked against payloads recorded from a real server: symbols with 5
and 2 digits, lot sizes of 100,000, 100 and 1 units, money in cents."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Iterator

from twisted.trial.unittest import SynchronousTestCase

from ctrader_twisted.errors import BadVolumeError, InvalidMessageError, InvalidVolumeError
from ctrader_twisted.protobuf import Protobuf
from ctrader_twisted.trading.events import Bar, Execution
from ctrader_twisted.trading.models import Side, SymbolFacts, dealFromProto, orderFromProto, positionFromProto
from ctrader_twisted.trading.symbols import SymbolDetails
from ctrader_twisted.units import (
    checkVolume,
    distanceToPips,
    isoTime,
    lotsFromVolume,
    moneyFromWire,
    moneyToWire,
    nearestVolumes,
    pipsToDistance,
    priceFromDouble,
    priceFromWire,
    priceToWire,
    roundPrice,
    timeFromWire,
    timeToWire,
    toDecimal,
    unitsFromVolume,
    volumeFromLots,
    volumeFromUnits,
)

from .util import referenceDir


def _decode(item: dict[str, Any]) -> Any:
    return Protobuf.get(item["type"]).FromString(base64.b64decode(item["payload"]))


class Recorded:
    """The recorded payloads, decoded."""

    def __init__(self) -> None:
        folder = referenceDir("recorded")
        self.m2 = {k: [_decode(i) for i in v] for k, v in json.loads((folder / "m2_recorded.json").read_text()).items()}
        self.timelines = {
            name: json.loads((folder / name).read_text())
            for name in ("partial_close_live.json", "external_commands_live.json", "m3_execution_recorded.json",
                         "m3_stage2_recorded.json")
        }
        self.specs = {int(s.symbolId): s for s in self.m2["symbol_specs"][0].symbol}
        self.names = {int(s.symbolId): s.symbolName for s in self.m2["symbols"][0].symbol}

    def payloads(self, name: str) -> Iterator[Any]:
        """Every payload of the execution timelines of class *name*."""
        for timeline in self.timelines.values():
            for item in timeline["timeline"]:
                if "type" in item and Protobuf.get(item["type"]).DESCRIPTOR.name == name:
                    yield _decode(item)

    def facts(self, symbolId: int) -> SymbolFacts:
        spec = self.specs.get(symbolId)
        if spec is None:  # m3's BTCUSD (324) and others: not in m2's four
            return SymbolFacts(f"#{symbolId}", None, None)
        return SymbolFacts(self.names[symbolId], int(spec.digits), int(spec.lotSize))


class RecordedPriceTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.recorded = Recorded()

    def test_specsOfDifferentDigitsAndLotSizes(self) -> None:
        """The four recorded symbols: digits, pips and lots as a trader reads them."""
        details = {i: SymbolDetails.fromProto(s) for i, s in self.recorded.specs.items()}
        eurusd, gold, nasdaq, dax = details[1], details[41], details[275], details[279]
        self.assertEqual((eurusd.digits, eurusd.pipPosition, eurusd.lotSize), (5, 4, 10_000_000))
        self.assertEqual((gold.digits, gold.lotSize), (2, 10_000))
        self.assertEqual((nasdaq.digits, nasdaq.lotSize), (2, 100))
        self.assertEqual(unitsFromVolume(eurusd.lotSize), Decimal(100_000))  # units in a lot
        self.assertEqual(unitsFromVolume(gold.lotSize), Decimal(100))
        self.assertEqual(unitsFromVolume(nasdaq.lotSize), Decimal(1))
        # the smallest order of each, in lots: 0.01
        for spec in (eurusd, gold, nasdaq, dax):
            self.assertEqual(lotsFromVolume(spec.minVolume, spec.lotSize), Decimal("0.01"))
        self.assertEqual(unitsFromVolume(gold.minVolume), Decimal(1))
        self.assertEqual(unitsFromVolume(nasdaq.minVolume), Decimal("0.01"))
        self.assertEqual(volumeFromLots("0.01", eurusd.lotSize), 100_000)
        self.assertEqual(volumeFromLots("2.5", gold.lotSize), 25_000)
        self.assertEqual(pipsToDistance(20, eurusd.pipPosition), Decimal("0.0020"))
        self.assertEqual(pipsToDistance(3, gold.pipPosition), Decimal(3))

    def test_spotPricesWithEachSymbolsDigits(self) -> None:
        """Every recorded spot price converts to a Decimal with the symbol's
        digits, exactly (back to the same wire integer)."""
        counted = {1: 0, 279: 0}
        for event in self.recorded.m2["spot_events"]:
            digits = int(self.recorded.specs[int(event.symbolId)].digits)
            for name in ("bid", "ask", "sessionClose"):
                if event.HasField(name):
                    wire = int(getattr(event, name))
                    price = priceFromWire(wire, digits)
                    self.assertEqual(price.as_tuple().exponent, -digits)
                    self.assertEqual(priceToWire(price), wire)
            counted[int(event.symbolId)] += 1
        self.assertGreater(min(counted.values()), 50)
        first = self.recorded.m2["spot_events"][0]
        self.assertEqual(str(priceFromWire(first.bid, 5)), "1.14811")
        dax = next(e for e in self.recorded.m2["spot_events"] if e.symbolId == 279 and e.HasField("bid"))
        self.assertEqual(priceFromWire(dax.bid, 2), Decimal(dax.bid) / 100000)
        self.assertEqual(priceFromWire(dax.bid, 2).as_tuple().exponent, -2)

    def test_trendbarsOfGoldAndEurusd(self) -> None:
        """Historical bars (low plus deltas) of a 2-digit and a 5-digit symbol."""
        for res in self.recorded.m2["trendbars_m15"]:
            symbolId = int(res.symbolId)
            digits = int(self.recorded.specs[symbolId].digits)
            for raw in res.trendbar:
                bar = Bar.fromProto(1, symbolId, "x", digits, raw, None)
                self.assertLessEqual(bar.low, min(bar.open, bar.close))  # type: ignore[type-var]
                self.assertGreaterEqual(bar.high, max(bar.open, bar.close))  # type: ignore[type-var]
                self.assertEqual(bar.open.as_tuple().exponent, -digits)
                self.assertEqual(bar.time.tzinfo, timezone.utc)
                self.assertEqual(bar.time.minute % 15, 0)

    def test_positionsOrdersAndDealsOfTheLiveRuns(self) -> None:
        """Recorded positions, orders and deals as typed values: units, lots,
        exact average prices, money from moneyDigits, times."""
        reconcile = next(self.recorded.payloads("ProtoOAReconcileRes"))
        position = positionFromProto(reconcile.position[0], 1000001, self.recorded)
        self.assertEqual(position.symbol, "EURUSD")
        self.assertEqual((position.side, position.units, position.lots), (Side.BUY, Decimal(3000), Decimal("0.03")))
        # every digit of the average (the shortest repr of the wire's double 1.1198733333333331)
        self.assertEqual(position.entryPrice, Decimal("1.119873333333333"))
        self.assertEqual((position.stopLoss, position.takeProfit), (Decimal("1.11787"), Decimal("1.12988")))
        self.assertEqual((position.commission, position.usedMargin, position.swap), (Decimal("-0.08"), Decimal("33.60"), Decimal("0.00")))
        self.assertEqual(position.openTime, datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(milliseconds=1599999930073))
        protection = orderFromProto(reconcile.order[0], 1000001, self.recorded)
        self.assertEqual(protection.type.name, "STOP_LOSS_TAKE_PROFIT")
        self.assertFalse(protection.pending)  # the position's protection, not a pending order
        deals = [dealFromProto(d, self.recorded) for res in self.recorded.payloads("ProtoOADealListRes") for d in res.deal]
        self.assertGreater(len(deals), 5)
        for deal in deals:
            self.assertEqual(deal.commission, Decimal(int(deal.raw.commission)) / 100)
            if deal.price is not None and deal.symbolId in self.recorded.specs:
                self.assertEqual(deal.price.as_tuple().exponent, -int(self.recorded.specs[deal.symbolId].digits))

    def test_balanceChainOfClosingDeals(self) -> None:
        """Every recorded closing deal: the balance after is the balance before
        plus gross profit, swap and commission, in Decimals."""
        closing = []
        for event in self.recorded.payloads("ProtoOAExecutionEvent"):
            execution = Execution.fromProto(event, self.recorded)
            if execution.deal is not None and execution.deal.closed is not None:
                closing.append(execution)
        self.assertGreater(len(closing), 0)
        for execution in closing:
            detail = execution.deal.closed  # type: ignore[union-attr]
            self.assertEqual(execution.balance, detail.balance)
            raw = execution.raw.deal.closePositionDetail
            self.assertEqual(detail.balance, moneyFromWire(raw.balance, raw.moneyDigits))
        detail = closing[0].deal.closed  # type: ignore[union-attr]
        before = detail.balance - detail.netProfit
        self.assertEqual(moneyToWire(before), int(closing[0].raw.deal.closePositionDetail.balance) - int(
            closing[0].raw.deal.closePositionDetail.grossProfit + closing[0].raw.deal.closePositionDetail.swap
            + closing[0].raw.deal.closePositionDetail.commission))

    def test_relativeStopsOfTheRecordedOrders(self) -> None:
        """The recorded relative stop loss 200 is 0.00200 of EURUSD: 20 pips."""
        orders = [
            orderFromProto(o, 1000001, self.recorded)
            for res in self.recorded.payloads("ProtoOAOrderListByPositionIdRes")
            for o in res.order
            if o.HasField("relativeStopLoss")
        ]
        self.assertTrue(orders)
        for order in orders:
            self.assertEqual(order.relativeStopLoss, Decimal("0.00200"))
            self.assertEqual(str(distanceToPips(order.relativeStopLoss, 4)), "20")  # type: ignore[arg-type]


class UnitTests(SynchronousTestCase):
    def test_prices(self) -> None:
        self.assertEqual(priceFromWire(438906000, 2), Decimal("4389.06"))
        self.assertEqual(priceFromWire(114811, 3), Decimal("1.148"))  # half to even
        self.assertEqual(roundPrice("1.123456", 5), Decimal("1.12346"))
        self.assertEqual(roundPrice(1.1, 5), Decimal("1.10000"))
        self.assertEqual(priceFromDouble(1.11988, 5), Decimal("1.11988"))
        self.assertIsNone(priceFromDouble(float("nan"), 5))
        self.assertEqual(priceToWire(Decimal("0.0020")), 200)
        with self.assertRaises(InvalidMessageError):
            priceToWire("1.000001")

    def test_hostileNumbers(self) -> None:
        """NaN, infinities, booleans, negatives and garbage are refused, naming the value."""
        for bad in (float("nan"), float("inf"), "-inf", True, None, "abc", [1]):
            with self.assertRaises(InvalidMessageError) as raised:
                toDecimal(bad, "lots")  # type: ignore[arg-type]
            self.assertIn("lots", str(raised.exception))
        with self.assertRaises(InvalidMessageError):
            volumeFromLots("-0.1", 100)
        with self.assertRaises(InvalidMessageError):
            volumeFromUnits(0)
        with self.assertRaises(InvalidMessageError):
            volumeFromUnits("0.001")  # finer than a cent of a unit
        with self.assertRaises(InvalidMessageError):
            roundPrice(0, 5)

    def test_volumeChecksNameTheNearestValidVolumes(self) -> None:
        with self.assertRaises(InvalidVolumeError) as raised:
            checkVolume(150_000, 100_000, 10_000_000_000, 100_000, 10_000_000, "EURUSD")
        error = raised.exception
        self.assertEqual(error.nearest, (100_000, 200_000))
        self.assertIsInstance(error, BadVolumeError)  # one except clause for local and server refusals
        self.assertIsInstance(error, ValueError)
        self.assertIn("0.01 lots (1,000 units) or 0.02 lots (2,000 units)", str(error))
        self.assertIn("EURUSD", str(error))
        with self.assertRaises(InvalidVolumeError) as raised:
            checkVolume(50, 100, 1_000_000_000, 100, 10_000, "XAUUSD")
        self.assertEqual(raised.exception.nearest, (100,))
        self.assertIn("below the minimum", str(raised.exception))
        with self.assertRaises(InvalidVolumeError) as raised:
            checkVolume(200_000, 1, 100_000, 1, 100, "US100.cash")
        self.assertEqual(raised.exception.nearest, (100_000,))
        self.assertEqual(checkVolume(300_000, 100_000, 10_000_000_000, 100_000), 300_000)
        self.assertEqual(nearestVolumes(5, 10, 5, 1), ())  # limits admitting nothing

    def test_moneyAndTimes(self) -> None:
        self.assertEqual(moneyFromWire(10053099944, 8), Decimal("100.53099944"))
        self.assertEqual(moneyFromWire(-3), Decimal("-0.03"))  # cents when moneyDigits is absent
        self.assertEqual(moneyToWire("12.34"), 1234)
        with self.assertRaises(InvalidMessageError):
            moneyToWire("0.001")
        moment = timeFromWire(1_789_757_084_253)
        self.assertEqual(moment.tzinfo, timezone.utc)
        self.assertEqual(timeToWire(moment), 1_789_757_084_253)
        self.assertEqual(isoTime(1_789_757_084_253), moment.strftime("%Y-%m-%dT%H:%M:%S.253Z"))
        with self.assertRaises(InvalidMessageError):
            timeToWire(datetime(2026, 1, 1))  # naive: its zone would be a guess
        with self.assertRaises(InvalidMessageError):
            timeFromWire(10**20)
