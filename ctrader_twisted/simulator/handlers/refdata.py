# -*- test-case-name: tests.test_simulator_memory -*-
"""Reference-data requests: assets, asset classes, symbol categories, symbols,
conversion chains and the trader.

Every request here names an account that must be authorized on the
connection. The data comes from the
:class:`~ctrader_twisted.simulator.Simulator` (its assets, classes and
categories, initially those of :mod:`..data`) and its market's symbols.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...messages.OpenApiMessages_pb2 import (
    ProtoOAAssetClassListReq,
    ProtoOAAssetClassListRes,
    ProtoOAAssetListReq,
    ProtoOAAssetListRes,
    ProtoOASymbolByIdReq,
    ProtoOASymbolByIdRes,
    ProtoOASymbolCategoryListReq,
    ProtoOASymbolCategoryListRes,
    ProtoOASymbolsForConversionReq,
    ProtoOASymbolsForConversionRes,
    ProtoOASymbolsListReq,
    ProtoOASymbolsListRes,
    ProtoOATraderReq,
    ProtoOATraderRes,
)
from ...messages.OpenApiModelMessages_pb2 import (
    ProtoOAAsset,
    ProtoOAAssetClass,
    ProtoOAInterval,
    ProtoOALightSymbol,
    ProtoOASymbol,
    ProtoOASymbolCategory,
)
from .registry import Registry, describeIds, distinctIds

if TYPE_CHECKING:
    from ..accounts import Account
    from ..session import Session

__all__ = ["HANDLERS", "lightSymbol", "fullSymbol"]

#: The handlers of this module.
HANDLERS = Registry()


def lightSymbol(symbolId: int, spec: dict[str, Any]) -> ProtoOALightSymbol:
    """The ``ProtoOALightSymbol`` of a symbol definition."""
    return ProtoOALightSymbol(symbolId=symbolId, **spec["light"])


def fullSymbol(symbolId: int, spec: dict[str, Any]) -> ProtoOASymbol:
    """The ``ProtoOASymbol`` of a symbol definition."""
    schedule = [ProtoOAInterval(startSecond=a, endSecond=b) for a, b in spec["schedule"]]
    return ProtoOASymbol(symbolId=symbolId, schedule=schedule, **spec["spec"])


@HANDLERS.handler(ProtoOAAssetListReq, account=True)
def assetList(session: Session, account: Account, req: ProtoOAAssetListReq, clientMsgId: str | None) -> None:
    """Every asset."""
    assets = [
        ProtoOAAsset(assetId=a, name=n, displayName=d, digits=g) for a, n, d, g in session.simulator.assets
    ]
    session.send(ProtoOAAssetListRes(ctidTraderAccountId=account.ctidTraderAccountId, asset=assets), clientMsgId)


@HANDLERS.handler(ProtoOAAssetClassListReq, account=True)
def assetClassList(session: Session, account: Account, req: ProtoOAAssetClassListReq, clientMsgId: str | None) -> None:
    """Every asset class."""
    classes = [ProtoOAAssetClass(id=i, name=n, sortingNumber=s) for i, n, s in session.simulator.assetClasses]
    session.send(
        ProtoOAAssetClassListRes(ctidTraderAccountId=account.ctidTraderAccountId, assetClass=classes), clientMsgId
    )


@HANDLERS.handler(ProtoOASymbolCategoryListReq, account=True)
def symbolCategoryList(
    session: Session, account: Account, req: ProtoOASymbolCategoryListReq, clientMsgId: str | None
) -> None:
    """Every symbol category."""
    categories = [
        ProtoOASymbolCategory(id=i, assetClassId=c, name=n, sortingNumber=s)
        for i, c, n, s in session.simulator.symbolCategories
    ]
    session.send(
        ProtoOASymbolCategoryListRes(ctidTraderAccountId=account.ctidTraderAccountId, symbolCategory=categories),
        clientMsgId,
    )


@HANDLERS.handler(ProtoOASymbolsListReq, account=True)
def symbolsList(session: Session, account: Account, req: ProtoOASymbolsListReq, clientMsgId: str | None) -> None:
    """Every symbol, in its light form."""
    symbols = [lightSymbol(i, s.spec) for i, s in session.simulator.market.symbols.items()]
    session.send(ProtoOASymbolsListRes(ctidTraderAccountId=account.ctidTraderAccountId, symbol=symbols), clientMsgId)


@HANDLERS.handler(ProtoOASymbolByIdReq, account=True)
def symbolById(session: Session, account: Account, req: ProtoOASymbolByIdReq, clientMsgId: str | None) -> None:
    """The full form of the symbols asked for, each once (``SYMBOL_NOT_FOUND``
    if one is unknown; ``INVALID_REQUEST`` for a list over
    :data:`~.registry.MAX_IDS` entries)."""
    accountId = account.ctidTraderAccountId
    symbols = session.simulator.market.symbols
    ids = distinctIds(session, req.symbolId, "symbolId", clientMsgId)
    if ids is None:
        return
    unknown = [i for i in ids if i not in symbols]
    if unknown:
        session.oaError("SYMBOL_NOT_FOUND", f"Symbol(s) not found: {describeIds(unknown)}", clientMsgId, accountId)
        return
    session.send(
        ProtoOASymbolByIdRes(ctidTraderAccountId=accountId, symbol=[fullSymbol(i, symbols[i].spec) for i in ids]),
        clientMsgId,
    )


@HANDLERS.handler(ProtoOASymbolsForConversionReq, account=True)
def symbolsForConversion(
    session: Session, account: Account, req: ProtoOASymbolsForConversionReq, clientMsgId: str | None
) -> None:
    """The symbols that convert the first asset into the last: one, or two
    through a middle asset."""
    accountId = account.ctidTraderAccountId
    symbols = session.simulator.market.symbols
    edges = {}
    for symbolId, state in symbols.items():
        light = state.spec["light"]
        edges[(light["baseAssetId"], light["quoteAssetId"])] = symbolId
        edges[(light["quoteAssetId"], light["baseAssetId"])] = symbolId
    first, last = req.firstAssetId, req.lastAssetId
    chain: list[int] | None = None
    if (first, last) in edges:
        chain = [edges[(first, last)]]
    else:
        for (a, middle), symbolId in edges.items():
            if a == first and (middle, last) in edges:
                chain = [symbolId, edges[(middle, last)]]
                break
    if chain is None:
        session.oaError("SYMBOL_NOT_FOUND", "No conversion chain between these assets", clientMsgId, accountId)
        return
    session.send(
        ProtoOASymbolsForConversionRes(ctidTraderAccountId=accountId, symbol=[lightSymbol(i, symbols[i].spec) for i in chain]),
        clientMsgId,
    )


@HANDLERS.handler(ProtoOATraderReq, account=True)
def trader(session: Session, account: Account, req: ProtoOATraderReq, clientMsgId: str | None) -> None:
    """The account's trader record."""
    session.send(ProtoOATraderRes(ctidTraderAccountId=account.ctidTraderAccountId, trader=account.toTrader()), clientMsgId)
