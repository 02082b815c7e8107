"""``ctrader-twisted accounts|symbols|symbol --json`` and the symbol
specification in the units people use (ctrader_twisted.cli.specs), against
the simulator, a standalone simulator, and recorded specifications."""

from __future__ import annotations

import base64
import io
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.trial.unittest import SynchronousTestCase, TestCase

from ctrader_twisted import cli
from ctrader_twisted.cli.specs import specDocument, specText, symbolSpec
from ctrader_twisted.messages.OpenApiMessages_pb2 import ProtoOASymbolByIdRes
from ctrader_twisted.messages.OpenApiModelMessages_pb2 import (
    ProtoOACommissionType,
    ProtoOAHoliday,
    ProtoOAInterval,
    ProtoOASymbol,
)
from ctrader_twisted.simulator import Simulator
from ctrader_twisted.trading.symbols import Asset, Category, Symbol, SymbolDetails

from .util import referenceDir

#: The keys of ``symbol --json``'s "symbol" object for the simulator's EURUSD, in order.
EURUSD_KEYS = [
    "name", "symbolId", "description", "account", "enabled", "baseAsset", "quoteAsset", "category", "assetClass",
    "measurementUnits", "digits", "pipPosition", "pipSize", "lotSize", "minVolume", "maxVolume", "stepVolume",
    "maxExposure", "tradingMode", "enableShortSelling", "guaranteedStopLoss", "commissionType", "commission",
    "minCommission", "minCommissionType", "minCommissionAsset", "pnlConversionFeePercent", "swapCalculationType",
    "swapLong", "swapShort", "swapRollover3Days", "swapPeriodHours", "swapTime", "skipSwapPeriods",
    "chargeSwapAtWeekends", "rolloverCommission", "rolloverCommission3Days", "skipRolloverDays", "distanceSetIn",
    "slDistance", "tpDistance", "gslDistance", "gslCharge", "leverageId", "scheduleTimeZone", "schedule", "holidays",
]


class JsonCommandTests(TestCase):
    def setUp(self) -> None:
        home = Path(self.mktemp())
        home.mkdir()
        self.environ = {"HOME": str(home)}

    async def json(self, *argv: str, environ: dict[str, str] | None = None) -> Any:
        stdout, stderr = io.StringIO(), io.StringIO()
        code = await cli.run(reactor, [*argv, "--json"], stdout, stderr, self.environ if environ is None else environ)
        self.assertEqual(code, 0, stderr.getvalue())
        self.assertEqual(stdout.getvalue().count("\n"), 1, "one JSON document, one line")
        return json.loads(stdout.getvalue(), parse_float=Decimal)

    async def test_accounts(self) -> None:
        document = await self.json("accounts")
        self.assertEqual(document, {"simulated": True, "accounts": [
            {"account": 2000001, "live": False, "login": 3000001, "broker": "Simulator"},
            {"account": 2000002, "live": True, "login": 3000002, "broker": "Simulator"},
        ]})

    async def test_symbols(self) -> None:
        document = await self.json("symbols")
        self.assertEqual(list(document), ["simulated", "account", "symbols"])
        self.assertEqual((document["simulated"], document["account"]), (True, 2000001))
        names = [s["name"] for s in document["symbols"]]
        self.assertEqual(names, sorted(names))
        eurusd = next(s for s in document["symbols"] if s["name"] == "EURUSD")
        self.assertEqual(eurusd, {"symbolId": 1, "name": "EURUSD", "enabled": True,
                                  "description": "Euro vs United States Dollar", "baseAsset": "EUR",
                                  "quoteAsset": "USD", "category": "Major"})

    async def test_symbol(self) -> None:
        """Asset names and units, not raw integers; stable keys."""
        document = await self.json("symbol", "eurusd")
        self.assertEqual(list(document), ["simulated", "symbol"])
        spec = document["symbol"]
        self.assertEqual(list(spec), EURUSD_KEYS)
        self.assertEqual((spec["baseAsset"], spec["quoteAsset"], spec["assetClass"]), ("EUR", "USD", "Forex"))
        self.assertEqual((spec["lotSize"], spec["minVolume"], spec["stepVolume"]), (100000, 1000, 1000))
        self.assertEqual((spec["commissionType"], spec["commission"]), ("USD_PER_LOT", Decimal("2.5")))
        self.assertEqual((spec["pipSize"], spec["pnlConversionFeePercent"]), (Decimal("0.0001"), Decimal("0.70")))
        self.assertEqual((spec["swapTime"], spec["swapRollover3Days"]), ("20:59", "WEDNESDAY"))
        self.assertEqual(spec["schedule"][0], {"start": "Mon 00:05", "end": "Mon 23:55"})

    async def test_symbolUnknown(self) -> None:
        stdout, stderr = io.StringIO(), io.StringIO()
        code = await cli.run(reactor, ["symbol", "EURSUD", "--json"], stdout, stderr, self.environ)
        self.assertEqual((code, stdout.getvalue()), (cli.EXIT_FAILURE, ""))
        self.assertIn("error: unknown symbol 'EURSUD' on account 2000001; did you mean EURUSD?", stderr.getvalue())

    async def test_standaloneSimulatorAndRealServer(self) -> None:
        """A simulator reached as a host says what it is: ``"simulated": true``; a server whose
        version answer is a plain number (a real one): ``false``."""
        from ctrader_twisted.simulator.handlers import auth

        sim = Simulator(seed=1, clock=reactor)
        listening = sim.listen(reactor, tlsPort=0, wsPort=None)
        self.addCleanup(sim.stop)
        ca = Path(self.mktemp())
        ca.write_bytes(listening.caPEM)
        environ = dict(self.environ, CTRADER_HOST="localhost", CTRADER_PORT=str(listening.tlsPort),
                       CTRADER_CLIENT_ID=sim.clientId, CTRADER_CLIENT_SECRET=sim.clientSecret,
                       CTRADER_ACCESS_TOKEN=sim.accessToken)
        document = await self.json("accounts", "--ca-file", str(ca), environ=environ)
        self.assertIs(document["simulated"], True)
        self.patch(auth, "SERVER_VERSION", "91")
        document = await self.json("accounts", "--ca-file", str(ca), environ=environ)
        self.assertIs(document["simulated"], False)

    def test_markerNotInARealVersion(self) -> None:
        """The marker names this project; the versions real servers send are protocol numbers."""
        from ctrader_twisted.simulator.handlers.auth import SERVER_VERSION, SIMULATOR_MARKER

        self.assertIn(SIMULATOR_MARKER, SERVER_VERSION)
        for real in ("91", "99", "100", "v99.1"):
            self.assertNotIn(SIMULATOR_MARKER, real)


def _symbol(spec: ProtoOASymbol, **light: Any) -> Symbol:
    return Symbol(
        id=int(spec.symbolId), name=light.get("name", "X"), description="", enabled=True,
        baseAsset=light.get("base"), quoteAsset=light.get("quote"), category=light.get("category"),
        details=SymbolDetails.fromProto(spec),
    )


class SpecTests(SynchronousTestCase):
    """The specification's units, from recorded and hostile ``ProtoOASymbol``s."""

    def recorded(self, symbolId: int) -> ProtoOASymbol:
        data = json.loads((referenceDir("recorded") / "m2_recorded.json").read_text())
        for item in data["symbol_specs"]:
            answer = ProtoOASymbolByIdRes()
            answer.ParseFromString(base64.b64decode(item["payload"]))
            for spec in answer.symbol:
                if spec.symbolId == symbolId:
                    return spec
        raise AssertionError(f"symbol {symbolId} not recorded")

    def test_recordedGoldPercentageCommission(self) -> None:
        """XAUUSD as a broker sent it: lot of 100 units, a commission in percent of the value (rate / 10^5)."""
        gold = _symbol(self.recorded(41), name="XAUUSD", base=Asset(1, "XAU", "Gold", 2), quote=Asset(2, "USD", "USD", 2),
                       category=Category(3, "Metals", "Metals"))
        document = specDocument(symbolSpec(gold, 1000001))
        self.assertEqual((document["lotSize"], document["minVolume"], document["maxVolume"]),
                         (Decimal("100"), Decimal("1"), Decimal("10000000")))
        self.assertEqual((document["commissionType"], document["commission"]),
                         ("PERCENTAGE_OF_VALUE", Decimal("0.0007")))
        self.assertEqual((document["baseAsset"], document["quoteAsset"], document["assetClass"]), ("XAU", "USD", "Metals"))
        self.assertEqual(document["measurementUnits"], "Contracts")
        text = specText(symbolSpec(gold, 1000001))
        self.assertIn("minVolume", text)
        self.assertIn("1 units (0.01 lots)", text)
        self.assertIn("0.0007 % of the value", text)

    def test_hostileNumbers(self) -> None:
        """NaN swaps are absent (null), out-of-range times are clamped, holidays have dates."""
        spec = ProtoOASymbol(
            symbolId=9, digits=3, pipPosition=2, lotSize=100, stepVolume=1, swapLong=float("nan"),
            swapShort=float("inf"), swapTime=99_999, commissionType=ProtoOACommissionType.QUOTE_CCY_PER_LOT,
            preciseTradingCommissionRate=1_500_000_000,
            schedule=[ProtoOAInterval(startSecond=0, endSecond=10**9)],
            holiday=[ProtoOAHoliday(holidayId=1, name="New Year", scheduleTimeZone="UTC", holidayDate=20454,
                                    isRecurring=True)],
        )
        fields = symbolSpec(_symbol(spec, quote=Asset(2, "EUR", "EUR", 2)), 7)
        document = specDocument(fields)
        self.assertIsNone(document["swapLong"])
        self.assertIsNone(document["swapShort"])
        self.assertEqual(document["swapTime"], "23:59")
        self.assertEqual(document["schedule"], [{"start": "Sun 00:00", "end": "Sat 24:00"}])
        self.assertEqual(document["holidays"], [{"name": "New Year", "date": "2026-01-01", "recurring": True}])
        self.assertEqual(document["commission"], Decimal("15"))
        self.assertIn("commission               15 EUR per lot", specText(fields))
        self.assertNotIn("maxVolume", [f.key for f in fields if f.value is not None])
        json.loads(cli.jsonlines.dumpJson(document))
