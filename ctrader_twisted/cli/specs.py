# -*- test-case-name: tests.test_cli_specs -*-
"""A symbol's specification as people read it, for ``ctrader-twisted symbol``.

:func:`symbolSpec` turns a :class:`~ctrader_twisted.trading.symbols.Symbol`
(the light entry with its assets and category resolved to names, and its
``ProtoOASymbol`` details) into one ordered list of :class:`Field`: a stable
JSON key, a JSON value in the documented unit, and the text the table
shows. The text form and the ``--json`` form are the same fields, so they
cannot disagree.

Units (see ``docs/cli.rst``, "symbol"): volumes in units of the base asset
(the wire's cents / 100) and in lots; prices and distances as decimals;
commissions as amounts (``preciseTradingCommissionRate`` / 10^8, or a
percentage: / 10^5); the PnL conversion fee in percent; swap times in UTC.
Fields whose scale the protocol does not document (``gslCharge``,
``rolloverCommission``) are shown as sent. Numbers from the wire are not
trusted: a NaN or an infinity is shown as absent (``null``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ..messages.OpenApiModelMessages_pb2 import (
    ProtoOACommissionType,
    ProtoOADayOfWeek,
    ProtoOAMinCommissionType,
    ProtoOASwapCalculationType,
    ProtoOASymbolDistanceType,
    ProtoOATradingMode,
)
from ..units import lotsFromVolume, pipSize, unitsFromVolume
from .jsonlines import enumName

if TYPE_CHECKING:  # the typed layer is loaded only when `symbol` runs
    from ..trading.symbols import Symbol

__all__ = ["Field", "symbolSpec", "specDocument", "specText"]

#: ``preciseTradingCommissionRate`` and ``preciseMinCommission`` are amounts times 10^8 ...
_PRECISE_AMOUNT = 8
#: ... except a percentage of value, times 10^5.
_PRECISE_PERCENT = 5
_DAYS = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat")
_WEEK_SECONDS = 7 * 86_400


@dataclass(frozen=True)
class Field:
    """One line of the specification.

    :ivar key: the JSON key (stable: documented in ``docs/cli.rst``).
    :ivar value: the JSON value (Decimal, int, str, bool, list or ``None``).
    :ivar text: what the table shows.
    """

    key: str
    value: Any
    text: str


def _number(value: Decimal | int) -> str:
    """*value* with thousands separators and no exponent (``100,000``, ``0.01``)."""
    if isinstance(value, Decimal):
        value = value.normalize()
        if value == value.to_integral_value():
            return f"{int(value):,}"
        whole, _, fraction = format(value, "f").partition(".")
        return f"{int(whole):,}.{fraction}" if whole not in ("-0", "0") else format(value, "f")
    return f"{value:,}"


def _double(value: float) -> Decimal | None:
    """A double from the wire as the Decimal it was meant to be, or ``None``
    for a NaN or an infinity."""
    if not math.isfinite(value):
        return None
    return Decimal(repr(float(value)))


def _weekTime(second: int) -> str:
    """Seconds from Sunday 00:00 as ``Mon 09:30`` (the end of the week as ``Sun 24:00``)."""
    second = max(0, min(int(second), _WEEK_SECONDS))
    if second == _WEEK_SECONDS:
        return "Sat 24:00"
    day, rest = divmod(second, 86_400)
    return f"{_DAYS[day]} {rest // 3600:02d}:{rest % 3600 // 60:02d}"


def symbolSpec(symbol: Symbol, accountId: int) -> list[Field]:
    """The specification of *symbol* (details loaded) on *accountId*, in order.

    :raises LookupError: the symbol's details are not loaded.
    """
    spec = symbol.spec
    raw = spec.raw
    fields: list[Field] = []

    def add(key: str, value: Any, text: str | None = None) -> None:
        if text is None:
            text = "" if value is None else ("yes" if value is True else "no" if value is False else
                                             _number(value) if isinstance(value, (int, Decimal)) else str(value))
        fields.append(Field(key, value, text))

    def volume(key: str, cents: int | None) -> None:
        if cents is None:
            add(key, None, "")
            return
        units = unitsFromVolume(cents)
        lots = lotsFromVolume(cents, spec.lotSize)
        add(key, units, f"{_number(units)} units ({_number(lots)} lots)")

    base = symbol.baseAsset
    quote = symbol.quoteAsset
    category = symbol.category
    add("name", symbol.name)
    add("symbolId", symbol.id, str(symbol.id))
    add("description", symbol.description)
    add("account", accountId, str(accountId))
    add("enabled", symbol.enabled)
    add("baseAsset", base.name if base else None)
    add("quoteAsset", quote.name if quote else None)
    add("category", category.name if category else None)
    add("assetClass", category.assetClass if category else None)
    add("measurementUnits", spec.measurementUnits or None)
    add("digits", spec.digits, str(spec.digits))
    pip = pipSize(spec.pipPosition)
    add("pipPosition", spec.pipPosition, f"{spec.pipPosition} (a pip is {format(pip, 'f')})")
    add("pipSize", pip, format(pip, "f"))
    units = unitsFromVolume(spec.lotSize)
    add("lotSize", units, f"{_number(units)} units")
    volume("minVolume", spec.minVolume)
    volume("maxVolume", spec.maxVolume if raw.HasField("maxVolume") else None)
    volume("stepVolume", spec.stepVolume)
    volume("maxExposure", spec.maxExposure)
    add("tradingMode", enumName(ProtoOATradingMode, spec.tradingMode))
    add("enableShortSelling", spec.enableShortSelling)
    add("guaranteedStopLoss", bool(raw.guaranteedStopLoss))

    # Commissions: the precise fields (the plain ones are deprecated).
    commissionType = int(raw.commissionType)
    add("commissionType", enumName(ProtoOACommissionType, commissionType))
    if raw.HasField("preciseTradingCommissionRate"):
        percent = commissionType == ProtoOACommissionType.PERCENTAGE_OF_VALUE
        rate = Decimal(int(raw.preciseTradingCommissionRate)).scaleb(-(_PRECISE_PERCENT if percent else _PRECISE_AMOUNT))
        unit = {
            int(ProtoOACommissionType.USD_PER_MILLION_USD): "USD per million USD",
            int(ProtoOACommissionType.USD_PER_LOT): "USD per lot",
            int(ProtoOACommissionType.PERCENTAGE_OF_VALUE): "% of the value",
            int(ProtoOACommissionType.QUOTE_CCY_PER_LOT): f"{quote.name if quote else 'quote currency'} per lot",
        }.get(commissionType, "")
        add("commission", rate.normalize(), f"{_number(rate)} {unit}".strip())
    if raw.HasField("preciseMinCommission"):
        minimum = Decimal(int(raw.preciseMinCommission)).scaleb(-_PRECISE_AMOUNT)
        asset = raw.minCommissionAsset if raw.minCommissionType == ProtoOAMinCommissionType.CURRENCY else (
            quote.name if quote else "quote currency")
        add("minCommission", minimum.normalize(), f"{_number(minimum)} {asset}".strip())
    add("minCommissionType", enumName(ProtoOAMinCommissionType, int(raw.minCommissionType)))
    add("minCommissionAsset", str(raw.minCommissionAsset) or None)
    if raw.HasField("pnlConversionFeeRate"):
        fee = Decimal(int(raw.pnlConversionFeeRate)).scaleb(-2)  # 1 = 0.01 %
        add("pnlConversionFeePercent", fee, f"{format(fee, 'f')} % of the gross profit")

    # Swaps.
    swapType = int(raw.swapCalculationType)
    swapUnit = {int(ProtoOASwapCalculationType.PIPS): "pips", int(ProtoOASwapCalculationType.PERCENTAGE): "% a year",
                int(ProtoOASwapCalculationType.POINTS): "points"}.get(swapType, "")
    add("swapCalculationType", enumName(ProtoOASwapCalculationType, swapType))
    for key in ("swapLong", "swapShort"):
        value = _double(getattr(raw, key))
        add(key, value, "" if value is None else f"{format(value, 'f')} {swapUnit}".strip())
    add("swapRollover3Days", enumName(ProtoOADayOfWeek, int(raw.swapRollover3Days)))
    if spec.swapPeriod is not None:
        add("swapPeriodHours", spec.swapPeriod, f"every {spec.swapPeriod} h")
    if spec.swapTime is not None:
        minutes = max(0, min(spec.swapTime, 24 * 60 - 1))
        add("swapTime", f"{minutes // 60:02d}:{minutes % 60:02d}", f"{minutes // 60:02d}:{minutes % 60:02d} UTC")
    if raw.HasField("skipSWAPPeriods"):
        add("skipSwapPeriods", int(raw.skipSWAPPeriods))
    add("chargeSwapAtWeekends", spec.chargeSwapAtWeekends)
    if raw.HasField("rolloverCommission"):
        add("rolloverCommission", int(raw.rolloverCommission), f"{int(raw.rolloverCommission):,} (as sent)")
    add("rolloverCommission3Days", enumName(ProtoOADayOfWeek, int(raw.rolloverCommission3Days)))
    if raw.HasField("skipRolloverDays"):
        add("skipRolloverDays", int(raw.skipRolloverDays))

    # Stop distances.
    distanceType = int(raw.distanceSetIn)
    distanceUnit = {int(ProtoOASymbolDistanceType.SYMBOL_DISTANCE_IN_POINTS): "points",
                    int(ProtoOASymbolDistanceType.SYMBOL_DISTANCE_IN_PERCENTAGE): "%"}.get(distanceType, "")
    add("distanceSetIn", enumName(ProtoOASymbolDistanceType, distanceType))
    for key in ("slDistance", "tpDistance", "gslDistance"):
        distance = int(getattr(raw, key))
        add(key, distance, f"{distance:,} {distanceUnit}".strip())
    if raw.HasField("gslCharge"):
        add("gslCharge", int(raw.gslCharge), f"{int(raw.gslCharge):,} (as sent)")
    if raw.HasField("leverageId"):
        add("leverageId", int(raw.leverageId), str(int(raw.leverageId)))

    # When it trades.
    zone = spec.scheduleTimeZone or "UTC"
    add("scheduleTimeZone", zone)
    intervals = [{"start": _weekTime(start), "end": _weekTime(end)} for start, end in spec.schedule]
    add("schedule", intervals, ", ".join(f"{i['start']}-{i['end']}" for i in intervals) or "always open")
    holidays = [
        {"name": str(h.name), "date": _isoDate(int(h.holidayDate)), "recurring": bool(h.isRecurring)}
        for h in raw.holiday
    ]
    add("holidays", holidays, ", ".join(f"{h['name']} {h['date']}" for h in holidays) or "none")
    return fields


def _isoDate(days: int) -> str | None:
    """Days since 1970-01-01 as an ISO date, or ``None`` out of range."""
    from datetime import date, timedelta

    try:
        return (date(1970, 1, 1) + timedelta(days=days)).isoformat()
    except OverflowError:
        return None


def specDocument(fields: list[Field]) -> dict[str, Any]:
    """The fields as one JSON object (key order kept)."""
    return {f.key: f.value for f in fields}


def specText(fields: list[Field]) -> str:
    """The fields as aligned ``key  text`` lines (with a final newline)."""
    width = max(len(f.key) for f in fields)
    return "".join(f"{f.key.ljust(width)}  {f.text}".rstrip() + "\n" for f in fields)
