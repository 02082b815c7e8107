"""The simulator's handler registry: declaration, the checks a route makes, the default table.

Handlers are plain functions: these tests call routes and handlers directly
on a session whose connection only records what it is given.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from ctrader_twisted.messages.OpenApiCommonMessages_pb2 import ProtoMessage
from ctrader_twisted.messages.OpenApiMessages_pb2 import (
    ProtoOAApplicationAuthReq,
    ProtoOAErrorRes,
    ProtoOANewOrderReq,
    ProtoOAReconcileReq,
    ProtoOAReconcileRes,
    ProtoOASubscribeSpotsReq,
    ProtoOATraderReq,
    ProtoOAVersionReq,
)
from ctrader_twisted.protobuf import Protobuf
from ctrader_twisted.simulator import Session, Simulator
from ctrader_twisted.simulator.accounts import Account
from ctrader_twisted.simulator.handlers import Registry, auth, defaultRegistry, marketdata, refdata, trading


class RecordingConnection:
    """A session's connection that keeps the messages written to it."""

    def __init__(self) -> None:
        self.messages: list[ProtoMessage] = []
        self.closed = False

    def writeFrame(self, data: bytes) -> None:
        self.messages.append(ProtoMessage.FromString(data))

    def writeOversizedHeader(self) -> None:
        raise AssertionError("not expected in these tests")

    def abort(self) -> None:
        self.closed = True

    def close(self) -> None:
        self.closed = True


class RegistryTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.sim = Simulator(seed=0, clock=Clock())
        self.connection = RecordingConnection()
        self.session = Session(self.sim, self.connection)
        self.accountId = self.sim.accountIds[0]
        self.calls: list[tuple[Any, ...]] = []

    def answers(self) -> list[Any]:
        return [Protobuf.extract(m) for m in self.connection.messages]

    def test_decoratorKeepsThePlainFunction(self) -> None:
        """The decorator returns the function unchanged and routes its request type to it."""
        registry = Registry()

        def version(session: Session, req: ProtoOAVersionReq, clientMsgId: str | None) -> None:
            self.calls.append((session, req, clientMsgId))

        self.assertIs(registry.handler(ProtoOAVersionReq)(version), version)
        route = registry.route(Protobuf.get_type(ProtoOAVersionReq))
        assert route is not None
        self.assertIs(route.function, version)
        self.assertIs(route.requestClass, ProtoOAVersionReq)
        self.assertIsNone(registry.route(Protobuf.get_type(ProtoOANewOrderReq)))

    def test_applicationCheck(self) -> None:
        """Before application auth a route answers CH_CLIENT_NOT_AUTHENTICATED, unless declared otherwise."""
        registry = Registry()
        registry.handler(ProtoOAVersionReq)(lambda *args: self.calls.append(args))
        registry.handler(ProtoOAApplicationAuthReq, application=False)(lambda *args: self.calls.append(args))
        version = registry.route(Protobuf.get_type(ProtoOAVersionReq))
        appAuth = registry.route(Protobuf.get_type(ProtoOAApplicationAuthReq))
        assert version is not None and appAuth is not None
        version(self.session, ProtoOAVersionReq(), "v1")
        self.assertEqual(self.calls, [])
        [error] = self.answers()
        self.assertIsInstance(error, ProtoOAErrorRes)
        self.assertEqual(error.errorCode, "CH_CLIENT_NOT_AUTHENTICATED")
        self.assertEqual(self.connection.messages[0].clientMsgId, "v1")
        req = ProtoOAApplicationAuthReq(clientId="id", clientSecret="secret")
        appAuth(self.session, req, "a1")
        self.assertEqual(self.calls, [(self.session, req, "a1")])

    def test_accountCheck(self) -> None:
        """``account=True``: an account not authorized on the connection is answered
        ACCOUNT_NOT_AUTHORIZED; an authorized one is passed to the handler."""
        registry = Registry()
        registry.handler(ProtoOAReconcileReq, account=True)(lambda *args: self.calls.append(args))
        route = registry.route(Protobuf.get_type(ProtoOAReconcileReq))
        assert route is not None
        self.session.appAuthenticated = True
        req = ProtoOAReconcileReq(ctidTraderAccountId=self.accountId)
        route(self.session, req, "r1")
        self.assertEqual(self.calls, [])
        [error] = self.answers()
        self.assertEqual((error.errorCode, error.ctidTraderAccountId), ("ACCOUNT_NOT_AUTHORIZED", self.accountId))
        self.session.accounts[self.accountId] = self.sim.accessToken
        route(self.session, req, "r2")
        [(session, account, request, clientMsgId)] = self.calls
        self.assertIs(session, self.session)
        self.assertIsInstance(account, Account)
        self.assertIs(account, self.sim.accounts[self.accountId])
        self.assertEqual((request, clientMsgId), (req, "r2"))

    def test_oneHandlerPerPayloadType(self) -> None:
        """A second handler for the same request type is refused, directly or by include."""
        first = Registry()
        first.handler(ProtoOAVersionReq)(lambda *args: None)
        self.assertRaises(ValueError, first.handler(ProtoOAVersionReq), lambda *args: None)
        second = Registry()
        second.handler(ProtoOAVersionReq)(lambda *args: None)
        self.assertRaises(ValueError, Registry, first, second)

    def test_defaultRegistry(self) -> None:
        """The simulator answers with the handlers of the four modules, with their checks."""
        self.assertIsInstance(self.sim.handlers, Registry)
        expected = [
            (ProtoOAApplicationAuthReq, auth.applicationAuth, False, False),
            (ProtoOAVersionReq, auth.version, False, True),
            (ProtoOATraderReq, refdata.trader, True, True),
            (ProtoOASubscribeSpotsReq, marketdata.subscribeSpots, True, True),
            (ProtoOANewOrderReq, trading.newOrder, True, True),
        ]
        for registry in (self.sim.handlers, defaultRegistry()):
            for requestClass, function, account, application in expected:
                route = registry.route(Protobuf.get_type(requestClass))
                assert route is not None
                self.assertIs(route.function, function)
                self.assertEqual((route.account, route.application), (account, application))

    def test_handlerCalledAlone(self) -> None:
        """A handler is a plain function of a session, an account, the request and the clientMsgId."""
        account = self.sim.accounts[self.accountId]
        trading.reconcile(self.session, account, ProtoOAReconcileReq(ctidTraderAccountId=self.accountId), "m1")
        [answer] = self.answers()
        self.assertIsInstance(answer, ProtoOAReconcileRes)
        self.assertEqual(answer.ctidTraderAccountId, self.accountId)
        self.assertEqual(self.connection.messages[0].clientMsgId, "m1")
