# -*- test-case-name: tests.test_units -*-
"""The Open API's units, in one place: prices, volumes, money and times.

The wire carries numbers in several scales, and every helper of the library
(the typed trading layer, the command line's JSON lines) converts them here:

========================  ==================================================  =======================
what                      on the wire                                         here
========================  ==================================================  =======================
spot, bar, depth prices   integers in 1/100000 of a unit                      :class:`~decimal.Decimal`
relative SL/TP            integers in 1/100000 of a unit                      :class:`~decimal.Decimal`
order and deal prices     doubles                                             :class:`~decimal.Decimal`
volumes                   integers in 1/100 of a unit ("cents")               units or lots (Decimal)
money                     integers scaled by the message's ``moneyDigits``    :class:`~decimal.Decimal`
times                     integers, milliseconds since the epoch (UTC)        aware UTC ``datetime``
========================  ==================================================  =======================

Prices are rounded to a symbol's ``digits``; lots use the symbol's
``lotSize`` (itself in cents: EURUSD's 10,000,000 is 100,000 units); a
volume is checked against ``minVolume``, ``maxVolume`` and ``stepVolume``
by :func:`checkVolume`, whose error names the nearest valid volumes.

Numbers from users and from the wire are hostile: every helper that takes a
user's number rejects NaN, infinities, booleans and (where it makes no sense)
negative values with an :class:`~ctrader_twisted.errors.InvalidMessageError`
naming the value.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Union

from .errors import InvalidMessageError, InvalidVolumeError

__all__ = [
    "WIRE_PRICE_DIGITS",
    "DEFAULT_MONEY_DIGITS",
    "Number",
    "toDecimal",
    "priceFromWire",
    "priceToWire",
    "priceFromDouble",
    "roundPrice",
    "pipSize",
    "pointSize",
    "pipsToDistance",
    "distanceToPips",
    "unitsFromVolume",
    "volumeFromUnits",
    "lotsFromVolume",
    "volumeFromLots",
    "nearestVolumes",
    "checkVolume",
    "moneyFromWire",
    "moneyToWire",
    "roundMoney",
    "ceilMoney",
    "floorMoney",
    "timeFromWire",
    "timeToWire",
    "isoTime",
]

#: Wire prices (spots, bars, depth, relative stops) are integers in 1/100000 of a unit.
WIRE_PRICE_DIGITS = 5
#: ``moneyDigits`` when a message leaves it out (cents, as the recordings show).
DEFAULT_MONEY_DIGITS = 2
#: The largest ``moneyDigits`` or price ``digits`` accepted from the wire.
MAX_DIGITS = 18

#: What a user may give where a number is expected.
Number = Union[Decimal, int, float, str]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_QUANTA = [Decimal(1).scaleb(-d) for d in range(MAX_DIGITS + 1)]
_CENTS_PER_UNIT = 100


def _digits(digits: int, what: str = "digits") -> int:
    if isinstance(digits, bool) or not isinstance(digits, int) or not 0 <= digits <= MAX_DIGITS:
        raise InvalidMessageError(f"{what} must be an integer from 0 to {MAX_DIGITS}, got {digits!r}")
    return digits


def toDecimal(value: Number, name: str = "value", *, positive: bool = False, nonNegative: bool = False) -> Decimal:
    """*value* as a finite :class:`~decimal.Decimal`.

    Floats are taken by their shortest ``repr`` (``0.1`` is ``Decimal("0.1")``,
    not the binary fraction); strings are parsed as decimals.

    :param name: what the value is, for the error message.
    :param positive: refuse zero and negative values.
    :param nonNegative: refuse negative values.
    :raises InvalidMessageError: a bool, NaN, an infinity, an unparsable
        string, another type, or a value the flags refuse.
    """
    if isinstance(value, bool) or not isinstance(value, (Decimal, int, float, str)):
        raise InvalidMessageError(f"{name} must be a number (Decimal, int, float or str), got {value!r}")
    try:
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except (InvalidOperation, ValueError):
        raise InvalidMessageError(f"{name} is not a number: {value!r}") from None
    if not number.is_finite():
        raise InvalidMessageError(f"{name} must be finite, got {value!r}")
    if positive and number <= 0:
        raise InvalidMessageError(f"{name} must be positive, got {value!r}")
    if nonNegative and number < 0:
        raise InvalidMessageError(f"{name} must not be negative, got {value!r}")
    return number


# --- prices ----------------------------------------------------------------------------


def priceFromWire(value: int, digits: int = WIRE_PRICE_DIGITS) -> Decimal:
    """A wire price (integer, 1/100000 of a unit) as a Decimal with *digits* places.

    ``priceFromWire(114811, 5)`` is ``Decimal("1.14811")``;
    ``priceFromWire(438906000, 2)`` is ``Decimal("4389.06")``.
    """
    return Decimal(value).scaleb(-WIRE_PRICE_DIGITS).quantize(_QUANTA[_digits(digits)], ROUND_HALF_EVEN)


def priceToWire(price: Number, name: str = "price", *, positive: bool = True) -> int:
    """A price or a price distance as the wire's integer in 1/100000 of a unit.

    :raises InvalidMessageError: not a finite number, not positive (unless
        *positive* is false: then only negative values are refused), or
        finer than 1/100000.
    """
    number = toDecimal(price, name, positive=positive, nonNegative=not positive)
    scaled = number.scaleb(WIRE_PRICE_DIGITS)
    if scaled != scaled.to_integral_value():
        raise InvalidMessageError(f"{name} {number} is finer than the wire's 1/100000")
    return int(scaled)


def priceFromDouble(value: float, digits: int | None = None) -> Decimal | None:
    """A price sent as a double (orders, positions, deals) as a Decimal.

    :param digits: round to the symbol's digits; ``None`` keeps every digit
        of the double's shortest ``repr`` (a position's average entry price
        has more digits than the symbol's: rounding it would change its
        profit).
    :returns: ``None`` for a NaN or an infinity (a hostile peer's value).
    """
    number = float(value)
    if not math.isfinite(number):
        return None
    exact = Decimal(repr(number))
    if digits is None:
        return exact
    return exact.quantize(_QUANTA[_digits(digits)], ROUND_HALF_EVEN)


def roundPrice(price: Number, digits: int, name: str = "price") -> Decimal:
    """A user's price rounded to a symbol's *digits* (half to even).

    :raises InvalidMessageError: not a finite positive number.
    """
    return toDecimal(price, name, positive=True).quantize(_QUANTA[_digits(digits)], ROUND_HALF_EVEN)


def pipSize(pipPosition: int) -> Decimal:
    """The size of a pip: ``10 ** -pipPosition`` (EURUSD, pip position 4: 0.0001)."""
    return _QUANTA[_digits(pipPosition, "pipPosition")]


def pointSize(digits: int) -> Decimal:
    """The smallest price step of a symbol: ``10 ** -digits``."""
    return _QUANTA[_digits(digits)]


def pipsToDistance(pips: Number, pipPosition: int, name: str = "pips") -> Decimal:
    """A distance in pips as a price distance (20 pips of EURUSD: 0.0020).

    :raises InvalidMessageError: not a finite positive number.
    """
    return toDecimal(pips, name, positive=True) * pipSize(pipPosition)


def distanceToPips(distance: Decimal, pipPosition: int) -> Decimal:
    """A price distance in pips (0.0020 of EURUSD: 20)."""
    pips = distance / pipSize(pipPosition)
    return pips.quantize(_QUANTA[0]) if pips == pips.to_integral_value() else pips.normalize()


# --- volumes ---------------------------------------------------------------------------


def unitsFromVolume(volume: int) -> Decimal:
    """A wire volume (cents of a unit) in units: 100000 is ``Decimal("1000")``."""
    units = Decimal(int(volume)).scaleb(-2)
    return units.quantize(_QUANTA[0]) if volume % _CENTS_PER_UNIT == 0 else units


def volumeFromUnits(units: Number, name: str = "units") -> int:
    """Units as the wire's volume in cents.

    :raises InvalidMessageError: not a positive finite number, or finer than
        a cent of a unit.
    """
    cents = toDecimal(units, name, positive=True).scaleb(2)
    if cents != cents.to_integral_value():
        raise InvalidMessageError(f"{name} {units} is finer than the wire's 0.01 of a unit")
    return int(cents)


def lotsFromVolume(volume: int, lotSize: int) -> Decimal:
    """A wire volume in lots of *lotSize* (both in cents); exact, normalized."""
    if lotSize <= 0:
        raise InvalidMessageError(f"lotSize must be positive, got {lotSize!r}")
    lots = Decimal(int(volume)) / Decimal(int(lotSize))
    return lots.quantize(_QUANTA[0]) if lots == lots.to_integral_value() else lots.normalize()


def volumeFromLots(lots: Number, lotSize: int, name: str = "lots") -> int:
    """Lots of *lotSize* (in cents) as the wire's volume in cents.

    :raises InvalidMessageError: not a positive finite number, or a fraction
        of a lot finer than a cent of a unit.
    """
    if lotSize <= 0:
        raise InvalidMessageError(f"lotSize must be positive, got {lotSize!r}")
    cents = toDecimal(lots, name, positive=True) * int(lotSize)
    if cents != cents.to_integral_value():
        raise InvalidMessageError(f"{name} {lots} is finer than the wire's 0.01 of a unit (lot size {lotSize})")
    return int(cents)


def _validRange(minVolume: int, maxVolume: int, stepVolume: int) -> tuple[int, int]:
    """The smallest and largest multiples of the step within the limits."""
    low = -(-minVolume // stepVolume) * stepVolume
    high = maxVolume // stepVolume * stepVolume
    return low, high


def nearestVolumes(volume: int, minVolume: int, maxVolume: int, stepVolume: int) -> tuple[int, ...]:
    """The valid volumes nearest to *volume*: itself when valid, else the
    multiples of the step on either side within the limits (one volume when
    *volume* lies outside them). All in cents; empty when no volume is valid.
    """
    step = max(1, int(stepVolume))
    low, high = _validRange(int(minVolume), int(maxVolume), step)
    if low > high:
        return ()
    if volume <= low:
        return (low,)
    if volume >= high:
        return (high,)
    below = volume // step * step
    if below == volume:
        return (volume,)
    return (below, below + step)


def checkVolume(
    volume: int,
    minVolume: int,
    maxVolume: int,
    stepVolume: int,
    lotSize: int | None = None,
    symbol: str = "the symbol",
) -> int:
    """Check a wire volume against a symbol's limits and step.

    :returns: *volume*, when valid.
    :raises InvalidVolumeError: outside ``[minVolume, maxVolume]`` or not a
        multiple of ``stepVolume``; the error names the nearest valid volumes
        (in lots when *lotSize* is known, and in units).
    """
    step = max(1, int(stepVolume))
    low, high = _validRange(int(minVolume), int(maxVolume), step)
    if low <= volume <= high and volume % step == 0:
        return volume

    def text(cents: int) -> str:
        units = f"{unitsFromVolume(cents):,f} units"
        return f"{lotsFromVolume(cents, lotSize):f} lots ({units})" if lotSize else units

    if volume < minVolume:
        why = f"is below the minimum of {text(minVolume)}"
    elif volume > maxVolume:
        why = f"is above the maximum of {text(maxVolume)}"
    else:
        why = f"is not a multiple of the step of {text(step)}"
    nearest = nearestVolumes(volume, minVolume, maxVolume, step)
    suggestion = " or ".join(text(v) for v in nearest) if nearest else "none (the limits admit no volume)"
    raise InvalidVolumeError(
        f"volume {text(volume)} {why} for {symbol}; nearest valid: {suggestion}",
        volume=volume,
        nearest=nearest,
        minVolume=minVolume,
        maxVolume=maxVolume,
        stepVolume=step,
    )


# --- money -----------------------------------------------------------------------------


def moneyFromWire(value: int, moneyDigits: int | None = None) -> Decimal:
    """A wire amount of money (an integer in 1/10^moneyDigits) as a Decimal.

    :param moneyDigits: the message's ``moneyDigits``; 2 when it has none.
    """
    digits = DEFAULT_MONEY_DIGITS if moneyDigits is None else _digits(int(moneyDigits), "moneyDigits")
    return Decimal(int(value)).scaleb(-digits)


def moneyToWire(amount: Number, moneyDigits: int = DEFAULT_MONEY_DIGITS, name: str = "amount") -> int:
    """An amount of money as the wire's integer in 1/10^moneyDigits.

    :raises InvalidMessageError: not a finite number, or finer than the
        account's money digits.
    """
    scaled = toDecimal(amount, name).scaleb(_digits(moneyDigits, "moneyDigits"))
    if scaled != scaled.to_integral_value():
        raise InvalidMessageError(f"{name} {amount} is finer than {moneyDigits} decimal places")
    return int(scaled)


def roundMoney(amount: Decimal, moneyDigits: int = DEFAULT_MONEY_DIGITS) -> Decimal:
    """*amount* rounded (half to even) to *moneyDigits* places, as the server's
    integers of money are."""
    return amount.quantize(_QUANTA[_digits(moneyDigits, "moneyDigits")], ROUND_HALF_EVEN)


def ceilMoney(amount: Decimal, moneyDigits: int = DEFAULT_MONEY_DIGITS) -> Decimal:
    """*amount* rounded up to *moneyDigits* places."""
    return amount.quantize(_QUANTA[_digits(moneyDigits, "moneyDigits")], ROUND_CEILING)


def floorMoney(amount: Decimal, moneyDigits: int = DEFAULT_MONEY_DIGITS) -> Decimal:
    """*amount* rounded down to *moneyDigits* places."""
    return amount.quantize(_QUANTA[_digits(moneyDigits, "moneyDigits")], ROUND_FLOOR)


# --- times -----------------------------------------------------------------------------


def timeFromWire(milliseconds: int) -> datetime:
    """Milliseconds since the epoch as an aware UTC ``datetime`` (exact to the ms).

    :raises InvalidMessageError: outside what ``datetime`` can hold.
    """
    try:
        return _EPOCH + timedelta(milliseconds=int(milliseconds))
    except OverflowError:
        raise InvalidMessageError(f"timestamp {milliseconds} ms is out of range") from None


def timeToWire(moment: datetime, name: str = "time") -> int:
    """An aware ``datetime`` as milliseconds since the epoch.

    :raises InvalidMessageError: not a ``datetime``, or a naive one (whose
        zone would be a guess).
    """
    if not isinstance(moment, datetime):
        raise InvalidMessageError(f"{name} must be a datetime, got {moment!r}")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidMessageError(f"{name} must be an aware datetime (give it a tzinfo, e.g. timezone.utc): {moment!r}")
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def isoTime(milliseconds: int) -> str:
    """ISO 8601 UTC with milliseconds, e.g. ``2026-01-05T10:15:02.250Z``."""
    seconds, ms = divmod(int(milliseconds), 1000)
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") + f".{ms:03d}Z"
