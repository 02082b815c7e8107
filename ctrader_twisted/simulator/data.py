"""Reference data the simulator serves: assets, asset classes, categories, symbols.

The values are modelled on real payloads recorded from a cTrader broker
(``ProtoOAAssetListRes``, ``ProtoOASymbolsListRes`` and ``ProtoOASymbolByIdRes``
for EURUSD, XAUUSD, US100.cash and GER40.cash; GBPUSD is added with EURUSD's
specification and its own price): symbol ids, digits, pip
positions, lot sizes, volume limits, commissions, schedules and the price
levels at the time of the recording. They are plain Python literals so the
simulator needs no data file at run time.

Asset-class and category *names* were not part of the recording and are
invented; their ids match the recorded ``symbolCategoryId`` values.
"""

from __future__ import annotations

from typing import Any

from ..messages.OpenApiModelMessages_pb2 import (
    ProtoOACommissionType,
    ProtoOADayOfWeek,
    ProtoOAMinCommissionType,
    ProtoOASymbolDistanceType,
    ProtoOATradingMode,
)

__all__ = ["ASSETS", "ASSET_CLASSES", "SYMBOL_CATEGORIES", "SYMBOLS", "DEPOSIT_ASSET_ID"]

#: USD, the deposit asset of the default accounts (as recorded).
DEPOSIT_ASSET_ID = 15

#: ``(assetId, name, displayName, digits)``: the first recorded currencies
#: plus the assets of the symbols below.
ASSETS: list[tuple[int, str, str, int]] = [
    (1, "AUD", "AUD", 2),
    (2, "CAD", "CAD", 2),
    (3, "CHF", "CHF", 2),
    (4, "DKK", "DKK", 2),
    (5, "EUR", "EUR", 2),
    (6, "GBP", "GBP", 2),
    (7, "HUF", "HUF", 2),
    (8, "JPY", "JPY", 0),
    (9, "MXN", "MXN", 2),
    (10, "NOK", "NOK", 2),
    (11, "NZD", "NZD", 2),
    (12, "PLN", "PLN", 2),
    (13, "SEK", "SEK", 2),
    (14, "SGD", "SGD", 2),
    (15, "USD", "USD", 2),
    (16, "XAG", "XAG", 2),
    (17, "XAU", "XAU", 2),
    (18, "TRY", "TRY", 2),
    (20, "CZK", "CZK", 2),
    (21, "CNH", "CNH", 2),
    (22, "ZAR", "ZAR", 2),
    (23, "HKD", "HKD", 2),
    (24, "ILS", "ILS", 2),
    (1257, "GER30.cash", "German 30 Index", 2),
    (1261, "US100.cash", "US Tech 100 Index", 2),
]

#: ``(id, name, sortingNumber)``.
ASSET_CLASSES: list[tuple[int, str, float]] = [
    (1, "Forex", 1.0),
    (2, "Metals", 2.0),
    (3, "Indices", 3.0),
]

#: ``(id, assetClassId, name, sortingNumber)``; ids as recorded.
SYMBOL_CATEGORIES: list[tuple[int, int, str, float]] = [
    (9, 2, "Metals", 3.0),
    (11, 1, "Major", 1.0),
    (13, 3, "Indices", 4.0),
]

# Trading sessions in seconds from Sunday 00:00 (as recorded).
_FX_SCHEDULE = [(86700, 172500), (173100, 258900), (259500, 345300), (345900, 431700), (432300, 518100)]
_CFD_SCHEDULE = [(90300, 172200), (176700, 258600), (263100, 345000), (349500, 431400), (435900, 517800)]
_GER_SCHEDULE = _CFD_SCHEDULE[:-1] + [(435900, 514200)]

#: Symbol definitions, keyed by symbol id. ``light`` holds the
#: ``ProtoOALightSymbol`` fields, ``spec`` the ``ProtoOASymbol`` fields,
#: ``schedule`` the trading intervals, and ``price``/``spread`` the bid and
#: spread (in 1/100000 of a unit) the recording showed.
SYMBOLS: dict[int, dict[str, Any]] = {
    1: {
        "light": {
            "symbolName": "EURUSD",
            "enabled": True,
            "baseAssetId": 5,
            "quoteAssetId": 15,
            "symbolCategoryId": 11,
            "description": "Euro vs United States Dollar",
            "sortingNumber": 7.0,
        },
        "spec": {
            "digits": 5,
            "pipPosition": 4,
            "enableShortSelling": True,
            "guaranteedStopLoss": False,
            "swapRollover3Days": ProtoOADayOfWeek.WEDNESDAY,
            "swapLong": -1.106,
            "swapShort": 0.059,
            "maxVolume": 10000000000,
            "minVolume": 100000,
            "stepVolume": 100000,
            "maxExposure": 10000000000,
            "commission": 250,
            "commissionType": ProtoOACommissionType.USD_PER_LOT,
            "slDistance": 0,
            "tpDistance": 0,
            "gslDistance": 0,
            "gslCharge": 0,
            "distanceSetIn": ProtoOASymbolDistanceType.SYMBOL_DISTANCE_IN_POINTS,
            "minCommission": 0,
            "minCommissionType": ProtoOAMinCommissionType.CURRENCY,
            "minCommissionAsset": "USD",
            "rolloverCommission": 0,
            "skipRolloverDays": 3,
            "tradingMode": ProtoOATradingMode.ENABLED,
            "rolloverCommission3Days": ProtoOADayOfWeek.WEDNESDAY,
            "lotSize": 10000000,
            "preciseTradingCommissionRate": 250000000,
            "preciseMinCommission": 0,
            "pnlConversionFeeRate": 70,
            "leverageId": 1020,
            "swapPeriod": 24,
            "swapTime": 1259,
            "skipSWAPPeriods": 0,
            "chargeSwapAtWeekends": False,
            "measurementUnits": "",
        },
        "schedule": _FX_SCHEDULE,
        "price": 114811,
        "spread": 2,
    },
    # Not in the recording: a second major, with EURUSD's trading
    # specification, so that the usual two-symbol examples work offline.
    2: {
        "light": {
            "symbolName": "GBPUSD",
            "enabled": True,
            "baseAssetId": 6,
            "quoteAssetId": 15,
            "symbolCategoryId": 11,
            "description": "British Pound vs United States Dollar",
            "sortingNumber": 8.0,
        },
        "spec": None,  # filled from EURUSD below
        "schedule": _FX_SCHEDULE,
        "price": 131524,
        "spread": 3,
    },
    41: {
        "light": {
            "symbolName": "XAUUSD",
            "enabled": True,
            "baseAssetId": 17,
            "quoteAssetId": 15,
            "symbolCategoryId": 9,
            "description": "Gold vs US Dollar, Spot CFD",
            "sortingNumber": 3.0,
        },
        "spec": {
            "digits": 2,
            "pipPosition": 0,
            "enableShortSelling": True,
            "guaranteedStopLoss": False,
            "swapRollover3Days": ProtoOADayOfWeek.WEDNESDAY,
            "swapLong": -0.83,
            "swapShort": -0.083,
            "maxVolume": 1000000000,
            "minVolume": 100,
            "stepVolume": 100,
            "maxExposure": 3000000000,
            "commission": 70,
            "commissionType": ProtoOACommissionType.PERCENTAGE_OF_VALUE,
            "slDistance": 0,
            "tpDistance": 0,
            "gslDistance": 0,
            "gslCharge": 0,
            "distanceSetIn": ProtoOASymbolDistanceType.SYMBOL_DISTANCE_IN_POINTS,
            "minCommission": 0,
            "minCommissionType": ProtoOAMinCommissionType.CURRENCY,
            "minCommissionAsset": "USD",
            "rolloverCommission": 0,
            "skipRolloverDays": 3,
            "tradingMode": ProtoOATradingMode.ENABLED,
            "rolloverCommission3Days": ProtoOADayOfWeek.WEDNESDAY,
            "lotSize": 10000,
            "preciseTradingCommissionRate": 70,
            "preciseMinCommission": 0,
            "pnlConversionFeeRate": 70,
            "leverageId": 1031,
            "swapPeriod": 24,
            "swapTime": 1259,
            "skipSWAPPeriods": 0,
            "chargeSwapAtWeekends": False,
            "measurementUnits": "Contracts",
        },
        "schedule": _CFD_SCHEDULE,
        "price": 438906000,
        "spread": 20000,
    },
    275: {
        "light": {
            "symbolName": "US100.cash",
            "enabled": True,
            "baseAssetId": 1261,
            "quoteAssetId": 15,
            "symbolCategoryId": 13,
            "description": "NASDAQ 100 Index, Spot CFD",
            "sortingNumber": 4.0,
        },
        "spec": {
            "digits": 2,
            "pipPosition": 0,
            "enableShortSelling": True,
            "guaranteedStopLoss": False,
            "swapRollover3Days": ProtoOADayOfWeek.FRIDAY,
            "swapLong": -6.3431,
            "swapShort": 0.2737,
            "maxVolume": 100000,
            "minVolume": 1,
            "stepVolume": 1,
            "maxExposure": 10000000000000,
            "commission": 0,
            "commissionType": ProtoOACommissionType.USD_PER_LOT,
            "slDistance": 0,
            "tpDistance": 0,
            "gslDistance": 0,
            "gslCharge": 0,
            "distanceSetIn": ProtoOASymbolDistanceType.SYMBOL_DISTANCE_IN_POINTS,
            "minCommission": 0,
            "minCommissionType": ProtoOAMinCommissionType.CURRENCY,
            "minCommissionAsset": "USD",
            "rolloverCommission": 0,
            "skipRolloverDays": 3,
            "tradingMode": ProtoOATradingMode.ENABLED,
            "rolloverCommission3Days": ProtoOADayOfWeek.WEDNESDAY,
            "lotSize": 100,
            "preciseTradingCommissionRate": 0,
            "preciseMinCommission": 0,
            "pnlConversionFeeRate": 70,
            "leverageId": 1011,
            "swapPeriod": 24,
            "swapTime": 1259,
            "skipSWAPPeriods": 0,
            "chargeSwapAtWeekends": False,
            "measurementUnits": "Contracts",
        },
        "schedule": _CFD_SCHEDULE,
        "price": 2946273000,
        "spread": 100000,
    },
    279: {
        "light": {
            "symbolName": "GER40.cash",
            "enabled": True,
            "baseAssetId": 1257,
            "quoteAssetId": 5,
            "symbolCategoryId": 13,
            "description": "German 40 Index, Spot CFD",
            "sortingNumber": 6.0,
        },
        "spec": {
            "digits": 2,
            "pipPosition": 0,
            "enableShortSelling": True,
            "guaranteedStopLoss": False,
            "swapRollover3Days": ProtoOADayOfWeek.FRIDAY,
            "swapLong": -4.3289,
            "swapShort": -0.2763,
            "maxVolume": 100000,
            "minVolume": 1,
            "stepVolume": 1,
            "maxExposure": 10000000000000,
            "commission": 0,
            "commissionType": ProtoOACommissionType.USD_PER_LOT,
            "slDistance": 0,
            "tpDistance": 0,
            "gslDistance": 0,
            "gslCharge": 0,
            "distanceSetIn": ProtoOASymbolDistanceType.SYMBOL_DISTANCE_IN_POINTS,
            "minCommission": 0,
            "minCommissionType": ProtoOAMinCommissionType.CURRENCY,
            "minCommissionAsset": "USD",
            "rolloverCommission": 0,
            "skipRolloverDays": 3,
            "tradingMode": ProtoOATradingMode.ENABLED,
            "rolloverCommission3Days": ProtoOADayOfWeek.WEDNESDAY,
            "lotSize": 100,
            "preciseTradingCommissionRate": 0,
            "preciseMinCommission": 0,
            "pnlConversionFeeRate": 70,
            "leverageId": 1011,
            "swapPeriod": 24,
            "swapTime": 1259,
            "skipSWAPPeriods": 0,
            "chargeSwapAtWeekends": False,
            "measurementUnits": "Contracts",
        },
        "schedule": _GER_SCHEDULE,
        "price": 2528384000,
        "spread": 133000,
    },
}

SYMBOLS[2]["spec"] = dict(SYMBOLS[1]["spec"], swapLong=-0.754, swapShort=-0.211)
