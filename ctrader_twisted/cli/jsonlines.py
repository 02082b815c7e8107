# -*- test-case-name: tests.test_jsonlines -*-
"""Events as JSON lines: exact decimal prices, ISO times, compact JSON.

:class:`EventFormatter` turns decoded Open API events into JSON-ready dicts
and :func:`dumpJson` writes one as a line. One line per event, for example::

    {"event":"spot","time":"2026-01-05T10:15:02.250Z","timeMs":1767608102250,"account":2000001,"symbol":"EURUSD","symbolId":1,"bid":1.08123,"ask":1.08125,"simulated":true}

Prices are JSON numbers written exactly with the symbol's digits (from the
wire's integers in 1/100000 of a unit, through :class:`decimal.Decimal`);
volumes are in units (the wire's cents / 100); times are ISO 8601 UTC with
milliseconds, each with its milliseconds since the epoch beside it under the
same key plus ``Ms`` (``time`` and ``timeMs``, ``barTime`` and
``barTimeMs``: jq's ``fromdate`` rejects fractional seconds). Prices and
stops the server left unset or sent as zero (which means "none" for a
price) are left out. The ``bars`` command's CSV uses the same prices and times.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable

from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper

from ..messages.OpenApiModelMessages_pb2 import (
    ProtoOAExecutionType,
    ProtoOAOrderStatus,
    ProtoOAOrderType,
    ProtoOAPositionStatus,
    ProtoOATradeSide,
    ProtoOATrendbarPeriod,
)
from ..units import WIRE_PRICE_DIGITS, isoTime, moneyFromWire, priceFromDouble, priceFromWire, unitsFromVolume

__all__ = ["EventFormatter", "SymbolInfo", "dumpJson", "decimalPrice", "isoTime", "stamp", "enumName",
           "WIRE_PRICE_DIGITS"]

#: A wire price as a Decimal with the symbol's digits (:func:`ctrader_twisted.units.priceFromWire`).
decimalPrice = priceFromWire


def _doublePrice(value: float, digits: int | None) -> Decimal | None:
    """A price sent as a double (execution events), rounded to *digits* when
    known, written without a trailing ``.0`` when it is whole; ``None`` for
    a NaN or an infinity."""
    number = priceFromDouble(value, digits)
    if number is not None and digits is None and number == number.to_integral_value():
        return number.normalize()
    return number


def _setPrice(line: dict[str, Any], key: str, message: Any, field: str, digits: int | None) -> None:
    """``line[key]`` = the double price *field* of *message*, unless the
    server left it unset or sent zero (no price), or it is not finite."""
    if not message.HasField(field):
        return
    value = float(getattr(message, field))
    if value == 0.0:
        return
    price = _doublePrice(value, digits)
    if price is not None:
        line[key] = price


def dumpJson(value: Any) -> str:
    """Compact JSON in which :class:`~decimal.Decimal` values are exact numbers.

    ``json`` cannot write a Decimal as a number without going through float;
    this writes ``str``-formatted Decimals as they are (``1.10000`` stays
    ``1.10000``).
    """
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"cannot write {value} as JSON")
        return format(value, "f")
    if isinstance(value, dict):
        return "{" + ",".join(json.dumps(str(k)) + ":" + dumpJson(v) for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(dumpJson(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


def stamp(line: dict[str, Any], key: str, ms: int) -> None:
    """Set ``line[key]`` to the ISO time of *ms* and ``line[key + "Ms"]`` to *ms*."""
    line[key] = isoTime(ms)
    line[key + "Ms"] = ms


def enumName(enum: EnumTypeWrapper, number: int) -> str:
    """The name of *number* in a generated enum (``ProtoOATradeSide``...), or
    the number itself when the enum has no such value (a newer server)."""
    try:
        return str(enum.Name(number))
    except ValueError:
        return str(number)


@dataclass(frozen=True)
class SymbolInfo:
    """What the formatter needs to know of a symbol."""

    symbolId: int
    name: str
    digits: int | None = None

    @property
    def priceDigits(self) -> int:
        """Digits to write prices with: the symbol's, else all the wire has."""
        return self.digits if self.digits is not None else WIRE_PRICE_DIGITS


class EventFormatter:
    """Turns decoded Open API events into JSON-ready dicts.

    Spot events carry only the side(s) that changed; the formatter carries
    the other side over from the previous event of the same symbol, so every
    ``spot`` line has both ``bid`` and ``ask``.

    :param symbols: account id to symbol id to :class:`SymbolInfo`.
    :param simulated: value of the ``simulated`` field of every line.
    :param now: current time in milliseconds (events without a server
        timestamp get the time they were received).
    """

    def __init__(
        self,
        symbols: dict[int, dict[int, SymbolInfo]],
        simulated: bool,
        now: Callable[[], int],
    ) -> None:
        self.symbols = symbols
        self.simulated = simulated
        self.now = now
        self._quotes: dict[tuple[int, int], tuple[int | None, int | None]] = {}

    def _symbol(self, accountId: int, symbolId: int) -> SymbolInfo:
        info = self.symbols.get(accountId, {}).get(symbolId)
        return info if info is not None else SymbolInfo(symbolId, str(symbolId))

    def _price(self, value: int, info: SymbolInfo) -> Decimal:
        return decimalPrice(value, info.priceDigits)

    def spot(self, event: Any) -> list[dict[str, Any]]:
        """``ProtoOASpotEvent``: a ``spot`` line, then a ``trendbar`` line per live bar."""
        accountId, symbolId = int(event.ctidTraderAccountId), int(event.symbolId)
        info = self._symbol(accountId, symbolId)
        ms = int(event.timestamp) if event.HasField("timestamp") else self.now()
        previous = self._quotes.get((accountId, symbolId), (None, None))
        bid = int(event.bid) if event.HasField("bid") else previous[0]
        ask = int(event.ask) if event.HasField("ask") else previous[1]
        self._quotes[(accountId, symbolId)] = (bid, ask)
        line: dict[str, Any] = {"event": "spot"}
        stamp(line, "time", ms)
        line.update({
            "account": accountId,
            "symbol": info.name,
            "symbolId": symbolId,
            "bid": None if bid is None else self._price(bid, info),
            "ask": None if ask is None else self._price(ask, info),
        })
        if event.HasField("sessionClose"):
            line["sessionClose"] = self._price(int(event.sessionClose), info)
        line["simulated"] = self.simulated
        lines = [line]
        for bar in event.trendbar:
            lines.append(self.trendbar(accountId, info, bar, ms, bid))
        return lines

    def trendbar(self, accountId: int, info: SymbolInfo, bar: Any, ms: int, bid: int | None = None) -> dict[str, Any]:
        """One live ``ProtoOATrendbar`` (low plus deltas) as a ``trendbar`` line.

        Live bars carried by spot events have no ``deltaClose``: their close
        is the current bid (*bid*).
        """
        low = int(bar.low)
        if bar.HasField("deltaClose"):
            close: Decimal | None = self._price(low + int(bar.deltaClose), info)
        else:
            close = None if bid is None else self._price(bid, info)
        line: dict[str, Any] = {"event": "trendbar"}
        stamp(line, "time", ms)
        line.update({
            "account": accountId,
            "symbol": info.name,
            "symbolId": info.symbolId,
            "period": enumName(ProtoOATrendbarPeriod, bar.period),
        })
        stamp(line, "barTime", int(bar.utcTimestampInMinutes) * 60_000)
        line.update({
            "open": self._price(low + int(bar.deltaOpen), info),
            "high": self._price(low + int(bar.deltaHigh), info),
            "low": self._price(low, info),
            "close": close,
            "volume": int(bar.volume),
            "simulated": self.simulated,
        })
        return line

    def depth(self, event: Any) -> dict[str, Any]:
        """``ProtoOADepthEvent``: new quotes (id, side, price, size in units) and deleted ids."""
        accountId, symbolId = int(event.ctidTraderAccountId), int(event.symbolId)
        info = self._symbol(accountId, symbolId)
        quotes = []
        for quote in event.newQuotes:
            side, price = ("bid", quote.bid) if quote.HasField("bid") else ("ask", quote.ask)
            quotes.append(
                {"id": int(quote.id), "side": side, "price": self._price(int(price), info), "size": unitsFromVolume(int(quote.size))}
            )
        line: dict[str, Any] = {"event": "depth"}
        stamp(line, "time", self.now())
        line.update({
            "account": accountId,
            "symbol": info.name,
            "symbolId": symbolId,
            "quotes": quotes,
            "deleted": [int(i) for i in event.deletedQuotes],
            "simulated": self.simulated,
        })
        return line

    def execution(self, event: Any) -> dict[str, Any]:
        """``ProtoOAExecutionEvent``: order, position and deal ids, side, volume, prices."""
        accountId = int(event.ctidTraderAccountId)
        line: dict[str, Any] = {"event": "execution", "time": None, "timeMs": None, "account": accountId,
                                "type": enumName(ProtoOAExecutionType, event.executionType)}
        ms: int | None = None
        order = event.order if event.HasField("order") else None
        position = event.position if event.HasField("position") else None
        deal = event.deal if event.HasField("deal") else None
        trade = order.tradeData if order is not None else position.tradeData if position is not None else None
        symbolId = int(deal.symbolId) if deal is not None else int(trade.symbolId) if trade is not None else None
        info = self._symbol(accountId, symbolId) if symbolId is not None else None
        digits = info.digits if info is not None else None
        if info is not None:
            line["symbol"] = info.name
            line["symbolId"] = info.symbolId
        if trade is not None:
            line["side"] = enumName(ProtoOATradeSide, trade.tradeSide)
            line["volume"] = unitsFromVolume(int(trade.volume))
        if order is not None:
            line["orderId"] = int(order.orderId)
            line["orderType"] = enumName(ProtoOAOrderType, order.orderType)
            line["orderStatus"] = enumName(ProtoOAOrderStatus, order.orderStatus)
            for name in ("limitPrice", "stopPrice", "executionPrice"):
                _setPrice(line, name, order, name, digits)
            if order.HasField("clientOrderId"):
                line["clientOrderId"] = order.clientOrderId
            if order.HasField("utcLastUpdateTimestamp"):
                ms = int(order.utcLastUpdateTimestamp)
        if position is not None:
            line["positionId"] = int(position.positionId)
            line["positionStatus"] = enumName(ProtoOAPositionStatus, position.positionStatus)
            # An order just accepted has a position record without a price
            # yet: a zero price is "none", never a price.
            _setPrice(line, "positionPrice", position, "price", digits)
            for name in ("stopLoss", "takeProfit"):
                _setPrice(line, name, position, name, digits)
            if ms is None and position.HasField("utcLastUpdateTimestamp"):
                ms = int(position.utcLastUpdateTimestamp)
        if deal is not None:
            line["dealId"] = int(deal.dealId)
            line["filledVolume"] = unitsFromVolume(int(deal.filledVolume))
            _setPrice(line, "dealPrice", deal, "executionPrice", digits)
            if deal.HasField("commission"):
                moneyDigits = int(deal.moneyDigits) if deal.HasField("moneyDigits") else None
                line["commission"] = moneyFromWire(int(deal.commission), moneyDigits)
            ms = int(deal.executionTimestamp)
        if event.HasField("errorCode"):
            line["errorCode"] = event.errorCode
        stamp(line, "time", ms if ms is not None else self.now())
        line["simulated"] = self.simulated
        return line

    def orderError(self, event: Any) -> dict[str, Any]:
        """``ProtoOAOrderErrorEvent``: error code and description."""
        line: dict[str, Any] = {"event": "order_error"}
        stamp(line, "time", self.now())
        line.update({"account": int(event.ctidTraderAccountId), "errorCode": event.errorCode})
        for name in ("orderId", "positionId", "description"):
            if event.HasField(name):
                line[name] = getattr(event, name)
        line["simulated"] = self.simulated
        return line
