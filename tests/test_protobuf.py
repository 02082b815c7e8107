"""Tests for :mod:`ctrader_twisted.protobuf`, the message registry."""

from __future__ import annotations

from typing import Any

from google.protobuf.message import Message
from twisted.trial.unittest import SynchronousTestCase

from ctrader_twisted import protobuf
from ctrader_twisted.errors import CTraderError, InvalidMessageError, UnknownMessageError
from ctrader_twisted.messages import (
    OpenApiCommonMessages_pb2,
    OpenApiCommonModelMessages_pb2,
    OpenApiMessages_pb2,
    OpenApiModelMessages_pb2,
)
from ctrader_twisted.messages.OpenApiCommonMessages_pb2 import (
    ProtoErrorRes,
    ProtoHeartbeatEvent,
    ProtoMessage,
)
from ctrader_twisted.messages.OpenApiMessages_pb2 import (
    ProtoOAErrorRes,
    ProtoOANewOrderReq,
    ProtoOASpotEvent,
    ProtoOAVersionReq,
)
from ctrader_twisted.messages.OpenApiModelMessages_pb2 import ProtoOASymbol
from ctrader_twisted.protobuf import Protobuf, payloadTypeOf, redact, validate

SECRET = "s3cr3t-VALUE-that-must-not-leak"


class LookupTests(SynchronousTestCase):
    """``get_class``/``get``/``get_type`` find messages by every kind of key."""

    def test_byFullName(self) -> None:
        self.assertIs(Protobuf.get_class("ProtoOAVersionReq"), ProtoOAVersionReq)
        self.assertIs(Protobuf.get_class("ProtoHeartbeatEvent"), ProtoHeartbeatEvent)

    def test_byShortName(self) -> None:
        self.assertIs(Protobuf.get_class("VersionReq"), ProtoOAVersionReq)
        self.assertIs(Protobuf.get_class("HeartbeatEvent"), ProtoHeartbeatEvent)
        self.assertIs(Protobuf.get_class("SpotEvent"), ProtoOASpotEvent)

    def test_byPayloadType(self) -> None:
        self.assertIs(Protobuf.get_class(2104), ProtoOAVersionReq)
        self.assertIs(Protobuf.get_class(51), ProtoHeartbeatEvent)
        self.assertIs(Protobuf.get_class(2131), ProtoOASpotEvent)

    def test_byClass(self) -> None:
        self.assertIs(Protobuf.get_class(ProtoOASpotEvent), ProtoOASpotEvent)

    def test_modelMessagesByName(self) -> None:
        """Model messages have no payload type but are found by full name."""
        self.assertIs(Protobuf.get_class("ProtoOASymbol"), ProtoOASymbol)
        self.assertIsNone(payloadTypeOf(ProtoOASymbol))

    def test_errorResIsOpenApi(self) -> None:
        """``ErrorRes`` means ``ProtoOAErrorRes`` (as in the official SDK);
        the common ``ProtoErrorRes`` is still reachable by full name."""
        self.assertIs(Protobuf.get_class("ErrorRes"), ProtoOAErrorRes)
        self.assertIs(Protobuf.get_class("ProtoErrorRes"), ProtoErrorRes)
        self.assertIs(Protobuf.get_class("ProtoOAErrorRes"), ProtoOAErrorRes)
        self.assertIs(Protobuf.get_class(50), ProtoErrorRes)
        self.assertIs(Protobuf.get_class(2142), ProtoOAErrorRes)

    def test_getBuilds(self) -> None:
        """``get`` with a name, a short name, a type or a class builds the same message."""
        fields = dict(ctidTraderAccountId=7, symbolId=[1, 2])
        built = [Protobuf.get(key, **fields) for key in
                 ("ProtoOASubscribeSpotsReq", "SubscribeSpotsReq", 2127,
                  OpenApiMessages_pb2.ProtoOASubscribeSpotsReq)]
        for message in built:
            self.assertIsInstance(message, OpenApiMessages_pb2.ProtoOASubscribeSpotsReq)
            self.assertEqual(message, built[0])
        self.assertEqual(list(built[0].symbolId), [1, 2])

    def test_getType(self) -> None:
        self.assertEqual(Protobuf.get_type("ProtoOAVersionReq"), 2104)
        self.assertEqual(Protobuf.get_type("VersionReq"), 2104)
        self.assertEqual(Protobuf.get_type(ProtoOAVersionReq), 2104)
        self.assertEqual(Protobuf.get_type(2104), 2104)
        self.assertEqual(Protobuf.get_type("HeartbeatEvent"), 51)

    def test_getTypeOfModelMessage(self) -> None:
        error = self.assertRaises(UnknownMessageError, Protobuf.get_type, "ProtoOASymbol")
        self.assertIn("ProtoOASymbol has no payload type", str(error))

    def test_everyPayloadTypeRegistered(self) -> None:
        """Each message whose ``payloadType`` has a default is registered under
        that number, and every registered number is a payload type enum value."""
        expected: dict[int, type[Message]] = {}
        for module in (OpenApiCommonMessages_pb2, OpenApiMessages_pb2):
            for name, descriptor in module.DESCRIPTOR.message_types_by_name.items():
                field = descriptor.fields_by_name.get("payloadType")
                if name != "ProtoMessage" and field is not None and field.has_default_value:
                    expected[field.default_value] = getattr(module, name)
        table = Protobuf.payloadTypes()
        self.assertEqual(table, expected)
        # Every message of the two message files but the envelope is a payload.
        self.assertEqual(len(table), len(OpenApiMessages_pb2.DESCRIPTOR.message_types_by_name)
                         + len(OpenApiCommonMessages_pb2.DESCRIPTOR.message_types_by_name) - 1)
        enumNumbers = {v.number for e in (OpenApiCommonModelMessages_pb2.ProtoPayloadType,
                                          OpenApiModelMessages_pb2.ProtoOAPayloadType)
                       for v in e.DESCRIPTOR.values}
        self.assertLessEqual(set(table), enumNumbers)
        for number, cls in table.items():
            self.assertEqual(Protobuf.get_type(cls), number)
            self.assertIs(Protobuf.get_class(number), cls)
            self.assertIs(Protobuf.get_class(cls.DESCRIPTOR.name), cls)

    def test_envelopeHasNoPayloadType(self) -> None:
        """``ProtoMessage`` is the envelope, not a payload."""
        self.assertNotIn(ProtoMessage, Protobuf.payloadTypes().values())

    def test_name(self) -> None:
        self.assertEqual(Protobuf.name(2131), "ProtoOASpotEvent")
        self.assertEqual(Protobuf.name(51), "ProtoHeartbeatEvent")
        self.assertEqual(Protobuf.name(987654), "payloadType 987654")


class UnknownMessageTests(SynchronousTestCase):
    """Anything that is not a message fails clearly."""

    def test_unknownName(self) -> None:
        error = self.assertRaises(UnknownMessageError, Protobuf.get, "NewOrdrReq")
        self.assertIn("'NewOrdrReq'", str(error))
        self.assertIn("did you mean", str(error))
        self.assertIn("NewOrderReq", str(error))

    def test_unknownFullName(self) -> None:
        error = self.assertRaises(UnknownMessageError, Protobuf.get_class, "ProtoOASpotEvnt")
        self.assertIn("did you mean ProtoOASpotEvent", str(error))

    def test_noSuggestionForNonsense(self) -> None:
        error = self.assertRaises(UnknownMessageError, Protobuf.get_class, "zzzzqqqq")
        self.assertEqual(str(error), "unknown message name 'zzzzqqqq'")

    def test_indexErrorCompatible(self) -> None:
        """The official SDK raised ``IndexError``; ported ``except`` clauses keep working."""
        self.assertTrue(issubclass(UnknownMessageError, IndexError))
        self.assertTrue(issubclass(UnknownMessageError, CTraderError))
        with self.assertRaises(IndexError):
            Protobuf.get("Nope")

    def test_unknownPayloadType(self) -> None:
        error = self.assertRaises(UnknownMessageError, Protobuf.get, 987654)
        self.assertEqual(str(error), "unknown payload type 987654")
        self.assertRaises(UnknownMessageError, Protobuf.get_type, 987654)

    def test_payloadTypeWithoutMessage(self) -> None:
        """An enum value with no message class is named in the error rather
        than called unknown (release 91 has none, so one is removed here)."""
        reduced = {k: v for k, v in protobuf._BY_TYPE.items() if k != 2131}
        self.patch(protobuf, "_BY_TYPE", reduced)
        error = self.assertRaises(UnknownMessageError, Protobuf.get_class, 2131)
        self.assertEqual(str(error), "unknown payload type 2131 (PROTO_OA_SPOT_EVENT has no message)")

    def test_wrongKeyType(self) -> None:
        for key in (None, 3.5, True, b"ProtoOAVersionReq", object()):
            error = self.assertRaises(UnknownMessageError, Protobuf.get_class, key)
            self.assertTrue(str(error))

    def test_failFalse(self) -> None:
        self.assertIsNone(Protobuf.get("Nope", fail=False))
        self.assertIsNone(Protobuf.get(987654, fail=False))
        self.assertIsInstance(Protobuf.get("VersionReq", fail=False), ProtoOAVersionReq)

    def test_failFalseStillChecksFields(self) -> None:
        """``fail=False`` is about unknown messages, not bad fields."""
        self.assertRaises(InvalidMessageError, Protobuf.get, "VersionReq", fail=False, nope=1)


class InvalidFieldTests(SynchronousTestCase):
    """Bad fields fail with ``InvalidMessageError`` naming the problem, never the value."""

    def test_unknownField(self) -> None:
        error = self.assertRaises(InvalidMessageError, Protobuf.get, "NewOrderReq", volum=100)
        self.assertEqual(str(error), "ProtoOANewOrderReq has no field 'volum'; did you mean volume?")

    def test_unknownFieldNoSuggestion(self) -> None:
        error = self.assertRaises(InvalidMessageError, Protobuf.get, "VersionReq", zzzz=1)
        self.assertEqual(str(error), "ProtoOAVersionReq has no field 'zzzz'")

    def assertNoEcho(self, error: Exception) -> None:
        text = f"{error} {error!r} {error.args!r}"
        self.assertNotIn(SECRET, text)
        self.assertNotIn("s3cr3t", text)

    def test_wrongTypeDoesNotEchoValue(self) -> None:
        """A secret in the wrong field never ends up in the exception text."""
        cases: list[tuple[str, dict[str, Any]]] = [
            ("NewOrderReq", dict(ctidTraderAccountId=SECRET)),          # str for int64
            ("NewOrderReq", dict(limitPrice=SECRET)),                   # str for double
            ("NewOrderReq", dict(trailingStopLoss=[SECRET])),           # list for bool
            ("ApplicationAuthReq", dict(clientSecret=[SECRET])),        # list for string
            ("ApplicationAuthReq", dict(clientSecret=SECRET.encode() + b"\xff")),  # bad UTF-8
            ("SubscribeSpotsReq", dict(symbolId=[1, SECRET])),           # in a repeated field
            ("ProtoOASymbol", dict(schedule=[{"startSecond": SECRET}])),  # nested message
            ("ProtoOASymbol", dict(symbolId=1, holiday=SECRET)),        # str for message list
        ]
        for name, fields in cases:
            error = self.assertRaises(InvalidMessageError, Protobuf.get, name, **fields)
            self.assertNoEcho(error)
            self.assertIn(Protobuf.get_class(name).DESCRIPTOR.name, str(error))
            # Not chained to protobuf's own exception, which does echo the value.
            self.assertIsNone(error.__cause__)
            self.assertTrue(error.__suppress_context__)

    def test_wrongTypeNamesField(self) -> None:
        error = self.assertRaises(InvalidMessageError, Protobuf.get, "NewOrderReq",
                                  symbolId=1, ctidTraderAccountId="abc")
        self.assertIn("ctidTraderAccountId", str(error))


    def test_outOfRangeDoesNotEcho(self) -> None:
        value = 2**70 + 123456789
        error = self.assertRaises(InvalidMessageError, Protobuf.get, "NewOrderReq",
                                  ctidTraderAccountId=value)
        self.assertNotIn(str(value), str(error))


    def test_buildMissingRequired(self) -> None:
        error = self.assertRaises(InvalidMessageError, Protobuf.build, "NewOrderReq",
                                  ctidTraderAccountId=1, symbolId=1, tradeSide=1)
        self.assertEqual(str(error),
                         "ProtoOANewOrderReq is missing required field(s): orderType, volume")

    def test_buildMissingNestedRequired(self) -> None:
        """A nested message's missing field is named with its path."""
        error = self.assertRaises(
            InvalidMessageError, Protobuf.build, "ProtoOASymbol",
            symbolId=1, schedule=[{"startSecond": 0}],
        )
        self.assertIn("schedule[0].endSecond", str(error))

    def test_getDoesNotValidate(self) -> None:
        """``get`` builds partial messages (official behaviour); ``build`` checks."""
        partial = Protobuf.get("NewOrderReq", ctidTraderAccountId=1)
        self.assertFalse(partial.IsInitialized())
        self.assertRaises(InvalidMessageError, validate, partial)

    def test_volumeMustBePositive(self) -> None:
        complete = dict(ctidTraderAccountId=1, symbolId=1, orderType=1, tradeSide=1)
        for volume in (0, -100):
            error = self.assertRaises(InvalidMessageError, Protobuf.build, "NewOrderReq",
                                      volume=volume, **complete)
            self.assertEqual(str(error),
                             f"ProtoOANewOrderReq.volume must be positive (in cents), got {volume}")
        message = Protobuf.build("NewOrderReq", volume=100000, **complete)
        self.assertEqual(message.volume, 100000)
        closing = dict(ctidTraderAccountId=1, positionId=5)
        self.assertRaises(InvalidMessageError, Protobuf.build, "ClosePositionReq", volume=0, **closing)
        self.assertEqual(Protobuf.build("ClosePositionReq", volume=1, **closing).volume, 1)

    def test_buildReadyMessage(self) -> None:
        ready = ProtoOAVersionReq()
        self.assertIs(Protobuf.build(ready), ready)
        self.assertRaises(InvalidMessageError, Protobuf.build, ProtoOANewOrderReq(ctidTraderAccountId=1))
        error = self.assertRaises(InvalidMessageError, Protobuf.build, ready, clientMsgId="x")
        self.assertIn("not both", str(error))


class ExtractTests(SynchronousTestCase):
    """``extract`` decodes a ``ProtoMessage``'s payload into its class."""

    def test_extract(self) -> None:
        event = ProtoOASpotEvent(ctidTraderAccountId=1, symbolId=22, bid=110001, ask=110003)
        envelope = ProtoMessage(payloadType=2131, payload=event.SerializeToString(), clientMsgId="c")
        decoded = Protobuf.extract(envelope)
        self.assertIsInstance(decoded, ProtoOASpotEvent)
        self.assertEqual(decoded, event)

    def test_extractEmptyPayload(self) -> None:
        decoded = Protobuf.extract(ProtoMessage(payloadType=51))
        self.assertIsInstance(decoded, ProtoHeartbeatEvent)

    def test_extractUnknownType(self) -> None:
        error = self.assertRaises(UnknownMessageError, Protobuf.extract,
                                  ProtoMessage(payloadType=987654, payload=b"\x08\x01"))
        self.assertIn("987654", str(error))

    def test_extractGarbage(self) -> None:
        error = self.assertRaises(InvalidMessageError, Protobuf.extract,
                                  ProtoMessage(payloadType=2131, payload=b"\xff\xff\xff"))
        self.assertIn("ProtoOASpotEvent", str(error))
        self.assertIn("2131", str(error))

    def test_extractKeepsUnknownFields(self) -> None:
        """A field newer than our spec is kept and written back as received."""
        known = ProtoOASpotEvent(ctidTraderAccountId=1, symbolId=22).SerializeToString()
        extra = _varint(99 << 3) + b"\x07"
        payload = known + extra
        decoded = Protobuf.extract(ProtoMessage(payloadType=2131, payload=payload))
        self.assertEqual(decoded.symbolId, 22)
        self.assertEqual(decoded.SerializeToString(), payload)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


class RedactTests(SynchronousTestCase):
    """``redact`` gives log-safe text."""

    def test_secretsMasked(self) -> None:
        for name, fields in (
            ("ApplicationAuthReq", dict(clientId="the-id", clientSecret=SECRET)),
            ("AccountAuthReq", dict(ctidTraderAccountId=5, accessToken=SECRET)),
            ("RefreshTokenReq", dict(refreshToken=SECRET)),
            ("RefreshTokenRes", dict(accessToken=SECRET, tokenType="bearer", expiresIn=3600,
                                     refreshToken=SECRET + "2")),
            ("GetAccountListByAccessTokenReq", dict(accessToken=SECRET)),
        ):
            text = redact(Protobuf.get(name, **fields))
            self.assertNotIn("s3cr3t", text, name)
            self.assertIn("<redacted>", text)
        text = redact(Protobuf.get("ApplicationAuthReq", clientId="the-id", clientSecret=SECRET))
        self.assertEqual(text, "ProtoOAApplicationAuthReq(clientId: 'the-id', clientSecret: <redacted>)")

    def test_secretFieldsList(self) -> None:
        self.assertEqual(protobuf.SECRET_FIELDS, {"clientSecret", "accessToken", "refreshToken"})

    def test_nestedAndRepeated(self) -> None:
        text = redact(Protobuf.get("SpotEvent", ctidTraderAccountId=1, symbolId=2,
                                   trendbar=[{"volume": 1}, {"volume": 2}]))
        self.assertIn("trendbar: [2 item(s)]", text)
        text = redact(Protobuf.get("SubscribeSpotsReq", ctidTraderAccountId=1, symbolId=list(range(10))))
        self.assertIn("symbolId: [0, 1, 2, 3, 4, 5, 6, 7], ... 2 more", text)
        text = redact(Protobuf.get("OrderDetailsRes", ctidTraderAccountId=1,
                                   order={"orderId": 9, "tradeData": {"symbolId": 3, "volume": 5,
                                                                      "tradeSide": 1}}))
        self.assertIn("order: {ProtoOAOrder(orderId: 9, tradeData: {ProtoOATradeData(", text)


class BuiltOnceTests(SynchronousTestCase):
    """The lookup tables are built at import, never per call."""

    def test_noRebuildPerCall(self) -> None:
        tables = (protobuf._BY_TYPE, protobuf._BY_NAME, protobuf._BY_SHORT)
        sizes = tuple(len(t) for t in tables)

        def rebuilt() -> Any:
            raise AssertionError("the registry was rebuilt during a lookup")

        self.patch(protobuf, "_collect", rebuilt)
        for key in ("ProtoOAVersionReq", "VersionReq", 2104, ProtoOAVersionReq, "ProtoOASymbol"):
            Protobuf.get_class(key)
            Protobuf.get(key)
        Protobuf.get_type("SpotEvent")
        Protobuf.extract(ProtoMessage(payloadType=51))
        Protobuf.build("VersionReq")
        Protobuf.get("Nope", fail=False)
        self.assertEqual(Protobuf.name(2131), "ProtoOASpotEvent")
        self.assertEqual((protobuf._BY_TYPE, protobuf._BY_NAME, protobuf._BY_SHORT), tables)
        for before, table in zip(tables, (protobuf._BY_TYPE, protobuf._BY_NAME, protobuf._BY_SHORT)):
            self.assertIs(before, table)
        self.assertEqual(tuple(len(t) for t in tables), sizes)

    def test_payloadTypesIsACopy(self) -> None:
        """Callers cannot corrupt the shared table."""
        copy = Protobuf.payloadTypes()
        copy.clear()
        self.assertIs(Protobuf.get_class(2131), ProtoOASpotEvent)
        self.assertEqual(len(Protobuf.payloadTypes()), len(protobuf._BY_TYPE))
