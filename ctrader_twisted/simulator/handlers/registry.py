# -*- test-case-name: tests.test_simulator_handlers -*-
"""The table of request handlers, and the decorator that fills it.

Each handler module (``handlers.auth``, ``handlers.refdata``, ``handlers.marketdata``,
``handlers.trading``) keeps its own :class:`Registry`, ``HANDLERS``, and declares
every handler on it::

    HANDLERS = Registry()

    @HANDLERS.handler(ProtoOAReconcileReq, account=True)
    def reconcile(session, account, req, clientMsgId): ...

The decorator records the handler and returns the function unchanged, so a
handler stays a plain function that a test can call alone. The simulator's
table is the union of the modules' tables, built explicitly by
:func:`ctrader_twisted.simulator.handlers.defaultRegistry`.

A :class:`Route` runs one handler. The session decodes the request and
checks its required fields; the route then performs the checks the handler's
declaration asks for, in this order, and answers the request itself when one
fails (the handler is not called):

* ``application=True`` (the default): the connection must have passed
  ``ProtoOAApplicationAuthReq``, or the answer is
  ``CH_CLIENT_NOT_AUTHENTICATED``;
* ``account=True``: the request's ``ctidTraderAccountId`` must be authorized
  on the connection, or the answer is ``ACCOUNT_NOT_AUTHORIZED``. The
  handler gets the :class:`~ctrader_twisted.simulator.accounts.Account`
  after the session: ``handler(session, account, request, clientMsgId)``;
  without ``account`` the signature is ``handler(session, request, clientMsgId)``.

A handler that raises is contained by the session: it logs the traceback and
answers ``UNKNOWN_ERROR`` (see :mod:`~ctrader_twisted.simulator.session`).

Lists in requests are hostile input: :func:`distinctIds` bounds a list of
ids to :data:`MAX_IDS` entries and removes repeats, and :func:`describeIds`
names a few of many ids in an error's description.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence, TypeVar

from google.protobuf.message import Message

from ...protobuf import Protobuf

if TYPE_CHECKING:
    from ..session import Session

__all__ = ["Registry", "Route", "MAX_IDS", "distinctIds", "describeIds"]

#: Most entries in one list of a request (symbol ids, volumes). The real
#: server's bound is not documented; this one is far above any broker's
#: symbol count and far below what makes a frame's answer explode.
MAX_IDS = 10_000

_F = TypeVar("_F", bound=Callable[..., None])


@dataclass(frozen=True)
class Route:
    """How one request type is handled.

    :ivar requestClass: the request message class (its payload type is the key).
    :ivar function: the handler: ``function(session, request, clientMsgId)``,
        or ``function(session, account, request, clientMsgId)`` with ``account``.
    :ivar account: whether the request names an account that must be
        authorized on the connection (the handler then gets the account).
    :ivar application: whether the connection must have authenticated its
        application first.
    """

    requestClass: type[Message]
    function: Callable[..., None]
    account: bool = False
    application: bool = True

    @property
    def payloadType(self) -> int:
        """The payload type of ``requestClass``."""
        return Protobuf.get_type(self.requestClass)

    def __call__(self, session: Session, request: Any, clientMsgId: str | None) -> None:
        """Handle *request* (decoded and complete) that arrived on *session*."""
        if self.application and not session.appAuthenticated:
            session.oaError("CH_CLIENT_NOT_AUTHENTICATED", "Client is not authorized", clientMsgId)
            return
        if not self.account:
            self.function(session, request, clientMsgId)
            return
        accountId = request.ctidTraderAccountId
        if accountId not in session.accounts:
            session.oaError("ACCOUNT_NOT_AUTHORIZED", "Trading account is not authorized", clientMsgId, accountId)
            return
        self.function(session, session.simulator.accounts[accountId], request, clientMsgId)


class Registry:
    """Payload types to the :class:`Route` that handles them.

    :param registries: tables whose routes this one starts with (see
        :meth:`include`).
    """

    def __init__(self, *registries: Registry) -> None:
        self._routes: dict[int, Route] = {}
        for registry in registries:
            self.include(registry)

    def __repr__(self) -> str:
        return f"<Registry of {len(self._routes)} handlers>"

    def handler(
        self, requestClass: type[Message], *, account: bool = False, application: bool = True
    ) -> Callable[[_F], _F]:
        """Declare the decorated function the handler of *requestClass* in this table.

        :param account: check that the request's account is authorized on the
            connection and pass the account to the handler (see the module
            docstring).
        :param application: refuse the request until the connection has
            authenticated its application (``CH_CLIENT_NOT_AUTHENTICATED``);
            false only for the application authentication itself.
        :returns: a decorator that returns the function unchanged.
        """

        def declare(function: _F) -> _F:
            self.add(Route(requestClass, function, account, application))
            return function

        return declare

    def add(self, route: Route) -> None:
        """Add *route*; a payload type has one handler only.

        :raises ValueError: a route for the same payload type is already there.
        """
        payloadType = route.payloadType
        existing = self._routes.get(payloadType)
        if existing is not None:
            raise ValueError(
                f"{route.requestClass.DESCRIPTOR.name} is already handled by {existing.function.__qualname__}"
            )
        self._routes[payloadType] = route

    def include(self, registry: Registry) -> None:
        """Add every route of *registry* (see :meth:`add`)."""
        for route in registry._routes.values():
            self.add(route)

    def route(self, payloadType: int) -> Route | None:
        """The route of *payloadType*, or ``None`` when no handler takes it."""
        return self._routes.get(payloadType)


def distinctIds(session: Session, ids: Sequence[int], field: str, clientMsgId: str | None) -> list[int] | None:
    """The ids of a request's list *field*, each once, in their first order;
    or ``None`` once the list has been refused (over :data:`MAX_IDS` entries:
    ``INVALID_REQUEST``).

    Repeats are dropped rather than refused, so that an answer or a stream
    never carries the same symbol twice for one request.
    """
    if len(ids) > MAX_IDS:
        session.commonError(
            "INVALID_REQUEST", f"{field} has {len(ids)} entries; at most {MAX_IDS} are accepted", clientMsgId
        )
        return None
    return list(dict.fromkeys(ids))


def describeIds(ids: Iterable[int], shown: int = 10) -> str:
    """*ids* for an error's description: the first *shown*, then how many more."""
    ids = list(ids)
    text = ", ".join(str(i) for i in ids[:shown])
    if len(ids) > shown:
        text += f" and {len(ids) - shown} more"
    return f"[{text}]"
