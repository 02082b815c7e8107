# -*- test-case-name: tests.test_trading,tests.test_trading_parts,tests.test_trading_session,tests.test_units -*-
"""The symbol catalogue of one account: names, assets, categories and specifications.

:class:`SymbolCatalogue` loads the light list once (``ProtoOASymbolsListReq``,
with the assets, asset classes and categories it refers to, resolved to
names), fetches a symbol's full specification (``ProtoOASymbolByIdReq``) the
first time it is needed and keeps it, and refreshes what it holds when the
server sends ``ProtoOASymbolChangedEvent``. Names resolve case-insensitively
(``"eurusd"``, ``"EUR/USD"``); an unknown name fails with
:class:`~ctrader_twisted.errors.UnknownSymbolError` naming the closest ones
(``"EURSUD"``: did you mean EURUSD?).

A :class:`Symbol` with its :class:`SymbolDetails` does the unit conversions
of :mod:`ctrader_twisted.units` with its own digits, pip position, lot size
and volume limits.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping, Sequence

from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..errors import InvalidMessageError, UnknownSymbolError
from ..units import (
    Number,
    checkVolume,
    distanceToPips,
    lotsFromVolume,
    pipSize,
    pipsToDistance,
    pointSize,
    priceFromWire,
    roundPrice,
    unitsFromVolume,
    volumeFromLots,
    volumeFromUnits,
)
from ._shared import Shared, failed, gather
from .models import SymbolFacts

if TYPE_CHECKING:
    from ..client import Client

__all__ = ["Asset", "Category", "SymbolDetails", "Symbol", "SymbolCatalogue", "suggest", "normalizeName"]

#: Symbols asked for in one ``ProtoOASymbolByIdReq`` at most.
DETAILS_BATCH = 100


@dataclass(frozen=True)
class Asset:
    """An asset (``ProtoOAAsset``): a currency, a metal, an index..."""

    id: int
    name: str
    displayName: str
    digits: int | None


@dataclass(frozen=True)
class Category:
    """A symbol category and its asset class, by name."""

    id: int
    name: str
    assetClass: str | None


@dataclass(frozen=True)
class SymbolDetails:
    """A symbol's full specification (``ProtoOASymbol``), in the wire's scales
    where they are exact integers (volumes in cents of a unit).

    :ivar schedule: trading intervals, seconds from Sunday 00:00 in
        ``scheduleTimeZone`` (UTC when the server names none).
    :ivar swapTime: minutes after 00:00 UTC of the first swap charge.
    :ivar raw: the ``ProtoOASymbol``.
    """

    digits: int
    pipPosition: int
    lotSize: int
    minVolume: int
    maxVolume: int
    stepVolume: int
    maxExposure: int | None
    commissionType: int | None
    preciseTradingCommissionRate: int
    swapLong: Decimal
    swapShort: Decimal
    swapRollover3Days: int
    swapTime: int | None
    swapPeriod: int | None
    chargeSwapAtWeekends: bool
    tradingMode: int
    enableShortSelling: bool
    slDistance: int
    tpDistance: int
    distanceSetIn: int
    schedule: tuple[tuple[int, int], ...]
    scheduleTimeZone: str
    measurementUnits: str
    raw: Any = field(repr=False, compare=False)

    @classmethod
    def fromProto(cls, spec: Any) -> SymbolDetails:
        """Build it from a decoded ``ProtoOASymbol``.

        :raises InvalidMessageError: digits or pip position out of range, a
            lot size or volume step that is not positive (nothing could be
            converted with them).
        """
        digits, pipPosition = int(spec.digits), int(spec.pipPosition)
        if not 0 <= digits <= 10 or not 0 <= pipPosition <= 10:
            raise InvalidMessageError(f"symbol {spec.symbolId}: digits {digits} / pipPosition {pipPosition} out of range")
        lotSize = int(spec.lotSize) if spec.HasField("lotSize") else 0
        stepVolume = int(spec.stepVolume) if spec.HasField("stepVolume") else 1
        if lotSize <= 0 or stepVolume <= 0:
            raise InvalidMessageError(f"symbol {spec.symbolId}: lot size {lotSize} / step {stepVolume} must be positive")
        return cls(
            digits=digits,
            pipPosition=pipPosition,
            lotSize=lotSize,
            minVolume=max(0, int(spec.minVolume)),
            maxVolume=int(spec.maxVolume) if spec.HasField("maxVolume") else 2**62,
            stepVolume=stepVolume,
            maxExposure=int(spec.maxExposure) if spec.HasField("maxExposure") else None,
            commissionType=int(spec.commissionType) if spec.HasField("commissionType") else None,
            preciseTradingCommissionRate=int(spec.preciseTradingCommissionRate),
            swapLong=Decimal(repr(float(spec.swapLong))),
            swapShort=Decimal(repr(float(spec.swapShort))),
            swapRollover3Days=int(spec.swapRollover3Days),
            swapTime=int(spec.swapTime) if spec.HasField("swapTime") else None,
            swapPeriod=int(spec.swapPeriod) if spec.HasField("swapPeriod") else None,
            chargeSwapAtWeekends=bool(spec.chargeSwapAtWeekends),
            tradingMode=int(spec.tradingMode),
            enableShortSelling=bool(spec.enableShortSelling) if spec.HasField("enableShortSelling") else True,
            slDistance=int(spec.slDistance),
            tpDistance=int(spec.tpDistance),
            distanceSetIn=int(spec.distanceSetIn),
            schedule=tuple((int(i.startSecond), int(i.endSecond)) for i in spec.schedule),
            scheduleTimeZone=str(spec.scheduleTimeZone),
            measurementUnits=str(spec.measurementUnits),
            raw=spec,
        )


@dataclass(frozen=True)
class Symbol:
    """A symbol of the account, with its assets and category by name.

    :ivar details: the full specification, ``None`` until loaded
        (:meth:`SymbolCatalogue.get` loads it; :meth:`SymbolCatalogue.find`
        does not).
    :ivar raw: the ``ProtoOALightSymbol``.
    """

    id: int
    name: str
    description: str
    enabled: bool
    baseAsset: Asset | None
    quoteAsset: Asset | None
    category: Category | None
    details: SymbolDetails | None = None
    raw: Any = field(default=None, repr=False, compare=False)

    @property
    def spec(self) -> SymbolDetails:
        """The details, which every conversion needs.

        :raises LookupError: not loaded yet.
        """
        if self.details is None:
            raise LookupError(f"{self.name}: its specification is not loaded; use SymbolCatalogue.get({self.name!r})")
        return self.details

    @property
    def digits(self) -> int:
        """Price digits."""
        return self.spec.digits

    @property
    def pipSize(self) -> Decimal:
        """One pip as a price distance (EURUSD: 0.0001)."""
        return pipSize(self.spec.pipPosition)

    @property
    def pointSize(self) -> Decimal:
        """The smallest price step (EURUSD: 0.00001)."""
        return pointSize(self.spec.digits)

    @property
    def lotUnits(self) -> Decimal:
        """Units in one lot (EURUSD: 100000)."""
        return unitsFromVolume(self.spec.lotSize)

    def price(self, wire: int) -> Decimal:
        """A wire price (1/100000 of a unit) with this symbol's digits."""
        return priceFromWire(wire, self.spec.digits)

    def roundPrice(self, price: Number, name: str = "price") -> Decimal:
        """A user's price, rounded to this symbol's digits.

        :raises InvalidMessageError: not a finite positive number.
        """
        return roundPrice(price, self.spec.digits, name)

    def pips(self, distance: Decimal) -> Decimal:
        """A price distance in pips."""
        return distanceToPips(distance, self.spec.pipPosition)

    def distance(self, pips: Number) -> Decimal:
        """A number of pips as a price distance, rounded to this symbol's digits."""
        return roundPrice(pipsToDistance(pips, self.spec.pipPosition), self.spec.digits, "pips")

    def units(self, volume: int) -> Decimal:
        """A wire volume in units."""
        return unitsFromVolume(volume)

    def lots(self, volume: int) -> Decimal:
        """A wire volume in lots."""
        return lotsFromVolume(volume, self.spec.lotSize)

    def volume(self, *, lots: Number | None = None, units: Number | None = None) -> int:
        """The wire volume (cents) of *lots* or *units* (give one), checked
        against the symbol's limits and step.

        :raises InvalidMessageError: neither or both given, or not a positive
            finite number.
        :raises InvalidVolumeError: outside the limits or off the step; it
            names the nearest valid volumes.
        """
        if (lots is None) == (units is None):
            raise InvalidMessageError(f"give the volume of {self.name} in lots or in units (one of them)")
        spec = self.spec
        volume = volumeFromLots(lots, spec.lotSize) if lots is not None else volumeFromUnits(units)  # type: ignore[arg-type]
        return checkVolume(volume, spec.minVolume, spec.maxVolume, spec.stepVolume, spec.lotSize, self.name)

    def isOpen(self, moment: datetime) -> bool:
        """Whether *moment* (an aware datetime) lies in a trading interval of
        the schedule. Schedules in a named time zone are read in it; without a
        schedule the market is taken as always open."""
        spec = self.spec
        if not spec.schedule:
            return True
        zone: Any = timezone.utc
        if spec.scheduleTimeZone:
            try:
                from zoneinfo import ZoneInfo

                zone = ZoneInfo(spec.scheduleTimeZone)
            except Exception:  # an unknown zone name: UTC, as the simulator serves
                zone = timezone.utc
        local = moment.astimezone(zone)
        second = ((local.weekday() + 1) % 7) * 86400 + local.hour * 3600 + local.minute * 60 + local.second
        return any(start <= second < end for start, end in spec.schedule)

    def facts(self) -> SymbolFacts:
        """Name, digits and lot size, for the converters of :mod:`.models`."""
        details = self.details
        return SymbolFacts(self.name, details.digits if details else None, details.lotSize if details else None)


def normalizeName(name: str) -> str:
    """A symbol name folded for lookups: case-insensitive, without the
    separators people type (``"EUR/USD"``, ``"eur-usd"``, ``"eur usd"``)."""
    return "".join(c for c in name.casefold() if c not in "/-_ ")


def suggest(name: str, names: Iterable[str], count: int = 3) -> tuple[str, ...]:
    """The names closest to *name* (case and separators ignored), best first."""
    byKey: dict[str, str] = {}
    for candidate in names:
        byKey.setdefault(normalizeName(candidate), candidate)
    close = difflib.get_close_matches(normalizeName(name), list(byKey), n=count, cutoff=0.6)
    return tuple(byKey[key] for key in close)


class SymbolCatalogue:
    """The symbols of one account (see the module docstring).

    :param client: a :class:`~ctrader_twisted.Client` on which the account is
        authorized.
    :param accountId: the ``ctidTraderAccountId``.
    :param onChange: called with the ids of the symbols refreshed after a
        ``ProtoOASymbolChangedEvent``.
    """

    _log = Logger()

    def __init__(self, client: Client, accountId: int) -> None:
        self._client = client
        self.accountId = accountId
        self._symbols: dict[int, Symbol] = {}
        self._byName: dict[str, int] = {}
        self._byFolded: dict[str, int] = {}
        self._byNormal: dict[str, int | None] = {}
        self.assets: dict[int, Asset] = {}
        self.categories: dict[int, Category] = {}
        self._loading: Shared[SymbolCatalogue] | None = None
        self._fetching: dict[int, list[Deferred[Symbol]]] = {}
        self._chains: dict[tuple[int, int], Shared[tuple[Symbol, ...]]] = {}
        self.loaded = False

    def __repr__(self) -> str:
        return f"<SymbolCatalogue account={self.accountId} symbols={len(self._symbols)} loaded={self.loaded}>"

    def __len__(self) -> int:
        return len(self._symbols)

    def __iter__(self) -> Iterator[Symbol]:
        return iter(list(self._symbols.values()))

    def __contains__(self, name: object) -> bool:
        try:
            self.find(name)  # type: ignore[arg-type]
        except (UnknownSymbolError, TypeError):
            return False
        return True

    # --- loading ---------------------------------------------------------------------

    def load(self) -> Deferred[SymbolCatalogue]:
        """Load the assets, asset classes, categories and the light symbol list
        (once; later calls share the first load).

        :returns: a Deferred firing with this catalogue, or failing with the
            first request's error.
        """
        if self.loaded:
            return succeed(self)
        if self._loading is None or self._loading.failed:  # a failed load is tried again
            self._loading = Shared(Deferred.fromCoroutine(self._load()))
        return self._loading.wait()

    async def _load(self) -> SymbolCatalogue:
        request = self._client.request
        account = self.accountId
        results = await DeferredList(
            [
                request("ProtoOAAssetListReq", ctidTraderAccountId=account),
                request("ProtoOAAssetClassListReq", ctidTraderAccountId=account),
                request("ProtoOASymbolCategoryListReq", ctidTraderAccountId=account),
                request("ProtoOASymbolsListReq", ctidTraderAccountId=account),
            ],
            consumeErrors=True,
        )
        for ok, result in results:
            if not ok:
                result.raiseException()
        assets, classes, categories, listing = (result for _, result in results)
        self.assets = {
            int(a.assetId): Asset(int(a.assetId), str(a.name), str(a.displayName or a.name), int(a.digits) if a.HasField("digits") else None)
            for a in assets.asset
        }
        classNames = {int(c.id): str(c.name) for c in classes.assetClass}
        self.categories = {
            int(c.id): Category(int(c.id), str(c.name), classNames.get(int(c.assetClassId)))
            for c in categories.symbolCategory
        }
        self._symbols = {}
        for light in listing.symbol:
            self._add(self._light(light))
        self.loaded = True
        self._log.info(
            "Account {account}: {count} symbols, {assets} assets", account=account, count=len(self._symbols), assets=len(self.assets)
        )
        return self

    def _light(self, light: Any, details: SymbolDetails | None = None) -> Symbol:
        return Symbol(
            id=int(light.symbolId),
            name=str(light.symbolName) or f"#{light.symbolId}",
            description=str(light.description),
            enabled=bool(light.enabled) if light.HasField("enabled") else True,
            baseAsset=self.assets.get(int(light.baseAssetId)) if light.HasField("baseAssetId") else None,
            quoteAsset=self.assets.get(int(light.quoteAssetId)) if light.HasField("quoteAssetId") else None,
            category=self.categories.get(int(light.symbolCategoryId)) if light.HasField("symbolCategoryId") else None,
            details=details,
            raw=light,
        )

    def _add(self, symbol: Symbol) -> None:
        self._symbols[symbol.id] = symbol
        self._byName.setdefault(symbol.name, symbol.id)
        self._byFolded.setdefault(symbol.name.casefold(), symbol.id)
        key = normalizeName(symbol.name)
        existing = self._byNormal.get(key, symbol.id)
        # Two names folding alike (EURUSD and EUR/USD): neither by that key.
        self._byNormal[key] = symbol.id if existing == symbol.id else None

    # --- looking up ----------------------------------------------------------------------

    def find(self, symbol: str | int | Symbol) -> Symbol:
        """The symbol of a name (exact, else case-insensitive, else without
        separators) or id, as loaded so far (details maybe not loaded).

        :raises UnknownSymbolError: no such symbol; it names the closest ones.
        :raises TypeError: *symbol* is neither a name, an id nor a Symbol.
        """
        if isinstance(symbol, Symbol):
            symbol = symbol.id
        if isinstance(symbol, bool) or not isinstance(symbol, (str, int)):
            raise TypeError(f"a symbol is a name or an id, got {symbol!r}")
        if isinstance(symbol, int):
            found = self._symbols.get(symbol)
            if found is None:
                raise UnknownSymbolError(symbol, (), self.accountId)
            return found
        symbolId = self._byName.get(symbol)
        if symbolId is None:
            symbolId = self._byFolded.get(symbol.casefold())
        if symbolId is None:
            symbolId = self._byNormal.get(normalizeName(symbol))
        if symbolId is None:
            raise UnknownSymbolError(symbol, suggest(symbol, (s.name for s in self._symbols.values())), self.accountId)
        return self._symbols[symbolId]

    def lookup(self, symbolId: int) -> Symbol | None:
        """The symbol of an id as loaded so far, or ``None`` (no error, no suggestion)."""
        return self._symbols.get(symbolId)

    def facts(self, symbolId: int) -> SymbolFacts:
        """Name, digits and lot size of *symbolId* (``#id`` when unknown)."""
        symbol = self._symbols.get(symbolId)
        if symbol is None:
            return SymbolFacts(f"#{symbolId}", None, None)
        return symbol.facts()

    def get(self, symbol: str | int | Symbol) -> Deferred[Symbol]:
        """The symbol with its details, fetched the first time and kept.

        :returns: a Deferred firing with the :class:`Symbol`, failing with
            :class:`~ctrader_twisted.errors.UnknownSymbolError` for an unknown
            name or the request's error.
        """
        return self.getMany([symbol]).addCallback(lambda symbols: symbols[0])

    def getMany(self, symbols: Sequence[str | int | Symbol]) -> Deferred[list[Symbol]]:
        """Several symbols with their details; the missing ones are fetched in
        requests of at most 100 symbols each (``DETAILS_BATCH``).

        :returns: a Deferred firing with the symbols in the order asked.
        """
        try:
            wanted = [self.find(s) for s in symbols]
        except (UnknownSymbolError, TypeError) as e:
            return failed(e)
        missing = [s.id for s in wanted if s.details is None and s.id not in self._fetching]
        waits: list[Deferred[Any]] = []
        for start in range(0, len(missing), DETAILS_BATCH):
            batch = missing[start : start + DETAILS_BATCH]
            for symbolId in batch:
                self._fetching[symbolId] = []
            d = self._client.request("ProtoOASymbolByIdReq", ctidTraderAccountId=self.accountId, symbolId=batch)
            d.addBoth(self._fetched, batch)
        for s in wanted:
            if s.id in self._fetching:
                waiter: Deferred[Symbol] = Deferred()
                self._fetching[s.id].append(waiter)
                waits.append(waiter)
        if not waits:
            return succeed([self._symbols[s.id] for s in wanted])

        def done(_: Any) -> list[Symbol]:
            return [self._symbols[s.id] for s in wanted]

        return gather(waits).addCallback(done)

    def _fetched(self, result: Any, batch: list[int]) -> None:
        waiters = {symbolId: self._fetching.pop(symbolId, []) for symbolId in batch}
        if isinstance(result, Failure):
            for symbolId in batch:
                for waiter in waiters[symbolId]:
                    waiter.errback(result)
            return
        received = set()
        for spec in result.symbol:
            symbolId = int(spec.symbolId)
            current = self._symbols.get(symbolId)
            if current is None:
                continue
            try:
                details = SymbolDetails.fromProto(spec)
            except InvalidMessageError as e:
                for waiter in waiters.get(symbolId, []):
                    waiter.errback(e)
                received.add(symbolId)
                continue
            self._symbols[symbolId] = replace(current, details=details)
            received.add(symbolId)
            for waiter in waiters.get(symbolId, []):
                waiter.callback(self._symbols[symbolId])
        for symbolId in batch:
            if symbolId not in received:
                error = UnknownSymbolError(symbolId, (), self.accountId)
                for waiter in waiters[symbolId]:
                    waiter.errback(error)

    def conversionChain(self, fromAsset: int, toAsset: int) -> Deferred[tuple[Symbol, ...]]:
        """The symbols that convert *fromAsset* into *toAsset*
        (``ProtoOASymbolsForConversionReq``), with their details; empty when
        the assets are the same. Kept once asked.
        """
        if fromAsset == toAsset:
            return succeed(())
        key = (fromAsset, toAsset)
        chain = self._chains.get(key)
        if chain is None or chain.failed:  # a failed look-up is tried again
            d = self._client.request(
                "ProtoOASymbolsForConversionReq", ctidTraderAccountId=self.accountId, firstAssetId=fromAsset, lastAssetId=toAsset
            )

            def loaded(res: Any) -> Deferred[list[Symbol]]:
                return self.getMany([int(s.symbolId) for s in res.symbol])

            chain = self._chains[key] = Shared(d.addCallback(loaded).addCallback(tuple))
        return chain.wait()

    # --- changes ----------------------------------------------------------------------

    def refresh(self, symbolIds: Iterable[int]) -> Deferred[list[int]]:
        """Fetch the light list again, and the details of those of *symbolIds*
        whose details were loaded (after ``ProtoOASymbolChangedEvent``).

        :returns: a Deferred firing with the ids refreshed.
        """
        return Deferred.fromCoroutine(self._refresh(list(symbolIds)))

    async def _refresh(self, symbolIds: list[int]) -> list[int]:
        listing = await self._client.request("ProtoOASymbolsListReq", ctidTraderAccountId=self.accountId)
        previous = self._symbols
        self._symbols, self._byName, self._byFolded, self._byNormal = {}, {}, {}, {}
        for light in listing.symbol:
            old = previous.get(int(light.symbolId))
            self._add(self._light(light, old.details if old is not None else None))
        reload = [i for i in symbolIds if i in self._symbols and self._symbols[i].details is not None]
        for symbolId in reload:
            self._symbols[symbolId] = replace(self._symbols[symbolId], details=None)
        if reload:
            await self.getMany(reload)
        return [i for i in symbolIds if i in self._symbols]

    @property
    def symbols(self) -> Mapping[int, Symbol]:
        """Every symbol by id (a copy)."""
        return dict(self._symbols)
