"""Tests for the wire definitions: ``proto/`` and ``ctrader_twisted.messages``.

* conformance with the published release-91 ``.proto`` files, field by field;
* the committed generated modules are up to date with ``proto/``;
* every payload recorded from a real server decodes through the registry and
  re-encodes byte for byte, unknown fields included;
* frames built by our stack equal those the official SDK wrote;
* our private descriptor pool coexists with the default pool the official
  SDK uses;
* the protobuf runtime is 7.x.

Tests that need ``../shared/reference`` skip when it is absent.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import importlib.util
import io
import json
import os
import pickle
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any, Iterator, Mapping

from google.protobuf import descriptor_pool, unknown_fields
from google.protobuf.descriptor_pb2 import (
    DescriptorProto,
    EnumDescriptorProto,
    FieldDescriptorProto,
    FileDescriptorProto,
    FileDescriptorSet,
)
from google.protobuf.message import Message
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from ctrader_twisted.factory import HEARTBEAT_FRAME, Factory
from ctrader_twisted.messages import (
    OpenApiCommonMessages_pb2,
    OpenApiCommonModelMessages_pb2,
    OpenApiMessages_pb2,
    OpenApiModelMessages_pb2,
    _pool,
)
from ctrader_twisted.messages.OpenApiCommonMessages_pb2 import ProtoMessage
from ctrader_twisted.protobuf import Protobuf, payloadTypeOf
from ctrader_twisted.tcp import TcpProtocol, frame

from .util import ROOT, referenceDir

MODULES: tuple[ModuleType, ...] = (
    OpenApiCommonModelMessages_pb2,
    OpenApiCommonMessages_pb2,
    OpenApiModelMessages_pb2,
    OpenApiMessages_pb2,
)
FILE_NAMES = tuple(m.DESCRIPTOR.name for m in MODULES)


def _grpcTools() -> Any:
    try:
        from grpc_tools import protoc
    except ImportError:  # pragma: no cover - grpcio-tools is a test dependency
        raise SkipTest("grpcio-tools is not installed (pip install .[test])")
    return protoc


def _protocInclude() -> Path:
    import grpc_tools

    return Path(grpc_tools.__file__).parent / "_proto"


# --- descriptor comparison ---------------------------------------------------


def ourFileSet() -> dict[str, FileDescriptorProto]:
    """Our four files as registered in the private pool, by file name."""
    files = {}
    for module in MODULES:
        proto = FileDescriptorProto.FromString(module.DESCRIPTOR.serialized_pb)
        files[proto.name] = proto
    return files


_referenceCache: dict[str, dict[str, FileDescriptorProto]] = {}


def referenceFileSet() -> dict[str, FileDescriptorProto]:
    """The published ``.proto`` files compiled by protoc, by file name."""
    source = referenceDir("openapi-proto")
    key = str(source)
    if key not in _referenceCache:
        protoc = _grpcTools()
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "reference.pb"
            args = [
                "protoc",
                f"-I{source}",
                f"-I{_protocInclude()}",
                "--include_imports",
                f"--descriptor_set_out={out}",
                *sorted(str(p) for p in source.glob("*.proto")),
            ]
            if protoc.main(args) != 0:
                raise AssertionError(f"protoc rejected the reference files in {source}")
            fileSet = FileDescriptorSet.FromString(out.read_bytes())
        _referenceCache[key] = {f.name: f for f in fileSet.file}
    return copy.deepcopy(_referenceCache[key])


def _fieldType(value: int) -> str:
    return FieldDescriptorProto.Type.Name(value)


def _fieldLabel(value: int) -> str:
    return FieldDescriptorProto.Label.Name(value)


def _differ(problems: list[str], where: str, what: str, expected: Any, actual: Any) -> None:
    if expected != actual:
        problems.append(f"{where}: {what} is {actual!r}, the reference has {expected!r}")


def _compareNames(problems: list[str], where: str, kind: str, expected: Mapping[str, Any],
                  actual: Mapping[str, Any]) -> list[str]:
    for name in sorted(set(expected) - set(actual)):
        problems.append(f"{where}: {kind} {name} is missing")
    for name in sorted(set(actual) - set(expected)):
        problems.append(f"{where}: {kind} {name} is not in the reference")
    return sorted(set(expected) & set(actual))


def _compareField(problems: list[str], where: str, expected: FieldDescriptorProto,
                  actual: FieldDescriptorProto) -> None:
    _differ(problems, where, "number", expected.number, actual.number)
    _differ(problems, where, "type", _fieldType(expected.type), _fieldType(actual.type))
    _differ(problems, where, "type_name", expected.type_name, actual.type_name)
    _differ(problems, where, "label", _fieldLabel(expected.label), _fieldLabel(actual.label))
    _differ(problems, where, "default_value",
            expected.default_value if expected.HasField("default_value") else None,
            actual.default_value if actual.HasField("default_value") else None)
    _differ(problems, where, "extendee", expected.extendee, actual.extendee)
    _differ(problems, where, "oneof_index",
            expected.oneof_index if expected.HasField("oneof_index") else None,
            actual.oneof_index if actual.HasField("oneof_index") else None)
    # proto2: a field is packed only when it says so; absent means not packed.
    _differ(problems, where, "packed", expected.options.packed, actual.options.packed)
    _differ(problems, where, "deprecated", expected.options.deprecated, actual.options.deprecated)


def _compareEnum(problems: list[str], where: str, expected: EnumDescriptorProto,
                 actual: EnumDescriptorProto) -> None:
    _differ(problems, where, "allow_alias", expected.options.allow_alias, actual.options.allow_alias)
    _differ(problems, where, "deprecated", expected.options.deprecated, actual.options.deprecated)
    ev = {v.name: v for v in expected.value}
    av = {v.name: v for v in actual.value}
    for name in _compareNames(problems, where, "value", ev, av):
        _differ(problems, f"{where} value {name}", "number", ev[name].number, av[name].number)
        _differ(problems, f"{where} value {name}", "deprecated",
                ev[name].options.deprecated, av[name].options.deprecated)


def _compareMessage(problems: list[str], where: str, expected: DescriptorProto,
                    actual: DescriptorProto) -> None:
    _differ(problems, where, "deprecated", expected.options.deprecated, actual.options.deprecated)
    _differ(problems, where, "oneofs", [o.name for o in expected.oneof_decl],
            [o.name for o in actual.oneof_decl])
    _differ(problems, where, "extension ranges",
            [(r.start, r.end) for r in expected.extension_range],
            [(r.start, r.end) for r in actual.extension_range])
    ef = {f.name: f for f in expected.field}
    af = {f.name: f for f in actual.field}
    for name in _compareNames(problems, where, "field", ef, af):
        _compareField(problems, f"{where} field {name}", ef[name], af[name])
    _compareContainers(problems, where, expected.nested_type, actual.nested_type,
                       expected.enum_type, actual.enum_type)


def _compareContainers(problems: list[str], where: str, expectedMessages: Any, actualMessages: Any,
                       expectedEnums: Any, actualEnums: Any) -> None:
    em = {m.name: m for m in expectedMessages}
    am = {m.name: m for m in actualMessages}
    for name in _compareNames(problems, where, "message", em, am):
        _compareMessage(problems, f"{where} message {name}", em[name], am[name])
    ee = {e.name: e for e in expectedEnums}
    ae = {e.name: e for e in actualEnums}
    for name in _compareNames(problems, where, "enum", ee, ae):
        _compareEnum(problems, f"{where} enum {name}", ee[name], ae[name])


def compareFileSets(expected: Mapping[str, FileDescriptorProto],
                    actual: Mapping[str, FileDescriptorProto]) -> list[str]:
    """Every wire-relevant difference between two sets of files, one line each.

    File names, packages, dependencies, messages (nested too), and for each
    field its name, number, type, type name, label, default, oneof, packed
    and deprecated options; enums and their values.
    """
    problems: list[str] = []
    for name in _compareNames(problems, "file set", "file", expected, actual):
        e, a = expected[name], actual[name]
        _differ(problems, name, "package", e.package, a.package)
        _differ(problems, name, "syntax", e.syntax or "proto2", a.syntax or "proto2")
        _differ(problems, name, "dependencies", sorted(e.dependency), sorted(a.dependency))
        _differ(problems, name, "extensions", [x.name for x in e.extension],
                [x.name for x in a.extension])
        _compareContainers(problems, name, e.message_type, a.message_type, e.enum_type, a.enum_type)
    return problems


def _find(files: Mapping[str, FileDescriptorProto], message: str) -> DescriptorProto:
    for f in files.values():
        for m in f.message_type:
            if m.name == message:
                return m
    raise KeyError(message)


def _field(message: DescriptorProto, name: str) -> FieldDescriptorProto:
    return next(f for f in message.field if f.name == name)


class ConformanceTests(SynchronousTestCase):
    """``proto/`` is wire-identical to the published release-91 files."""

    def test_ourFilesAreTheFourModules(self) -> None:
        """Each generated module holds one of the four files, in the private pool."""
        self.assertEqual(
            sorted(FILE_NAMES),
            ["OpenApiCommonMessages.proto", "OpenApiCommonModelMessages.proto",
             "OpenApiMessages.proto", "OpenApiModelMessages.proto"],
        )
        for module in MODULES:
            self.assertIs(_pool.POOL.FindFileByName(module.DESCRIPTOR.name), module.DESCRIPTOR)
            self.assertIs(module.DESCRIPTOR.pool, _pool.POOL)

    def test_matchesReference(self) -> None:
        """Our descriptors equal protoc's compilation of the published files."""
        reference = referenceFileSet()
        ours = ourFileSet()
        problems = compareFileSets(reference, ours)
        self.assertEqual(problems, [], "\n".join(problems))
        # The comparison looked at something substantial.
        messages = sum(len(f.message_type) for f in reference.values())
        fields = sum(len(m.field) for f in reference.values() for m in f.message_type)
        self.assertGreater(messages, 100)
        self.assertGreater(fields, 500)

    def test_copyToProtoAgrees(self) -> None:
        """The pool's live descriptors (``CopyToProto``) say the same as the
        serialized files, so the comparison is about what is actually loaded."""
        reference = referenceFileSet()
        live = {}
        for module in MODULES:
            proto = FileDescriptorProto()
            module.DESCRIPTOR.CopyToProto(proto)
            live[proto.name] = proto
        problems = compareFileSets(reference, live)
        self.assertEqual(problems, [], "\n".join(problems))


class ComparisonDetectsChangesTests(SynchronousTestCase):
    """The comparison itself catches each kind of difference, precisely.

    These use our own descriptors as the baseline, so they run without
    ``../shared``.
    """

    def setUp(self) -> None:
        self.baseline = ourFileSet()
        self.altered = copy.deepcopy(self.baseline)
        self.assertEqual(compareFileSets(self.baseline, self.altered), [])

    def assertProblems(self, *expected: str) -> None:
        self.assertEqual(compareFileSets(self.baseline, self.altered), list(expected))

    def spotField(self, name: str) -> FieldDescriptorProto:
        return _field(_find(self.altered, "ProtoOASpotEvent"), name)

    def test_number(self) -> None:
        self.spotField("bid").number = 40
        self.assertProblems(
            "OpenApiMessages.proto message ProtoOASpotEvent field bid: number is 40, the reference has 4"
        )

    def test_type(self) -> None:
        self.spotField("bid").type = FieldDescriptorProto.TYPE_INT64
        self.assertProblems(
            "OpenApiMessages.proto message ProtoOASpotEvent field bid: "
            "type is 'TYPE_INT64', the reference has 'TYPE_UINT64'"
        )

    def test_typeName(self) -> None:
        self.spotField("trendbar").type_name = ".ProtoOATickData"
        self.assertProblems(
            "OpenApiMessages.proto message ProtoOASpotEvent field trendbar: "
            "type_name is '.ProtoOATickData', the reference has '.ProtoOATrendbar'"
        )

    def test_label(self) -> None:
        self.spotField("symbolId").label = FieldDescriptorProto.LABEL_OPTIONAL
        self.assertProblems(
            "OpenApiMessages.proto message ProtoOASpotEvent field symbolId: "
            "label is 'LABEL_OPTIONAL', the reference has 'LABEL_REQUIRED'"
        )

    def test_default(self) -> None:
        self.spotField("payloadType").default_value = "PROTO_OA_DEPTH_EVENT"
        self.assertProblems(
            "OpenApiMessages.proto message ProtoOASpotEvent field payloadType: "
            "default_value is 'PROTO_OA_DEPTH_EVENT', the reference has 'PROTO_OA_SPOT_EVENT'"
        )

    def test_defaultRemoved(self) -> None:
        self.spotField("payloadType").ClearField("default_value")
        self.assertProblems(
            "OpenApiMessages.proto message ProtoOASpotEvent field payloadType: "
            "default_value is None, the reference has 'PROTO_OA_SPOT_EVENT'"
        )

    def test_packed(self) -> None:
        _field(_find(self.altered, "ProtoOADepthEvent"), "deletedQuotes").options.ClearField("packed")
        self.assertProblems(
            "OpenApiMessages.proto message ProtoOADepthEvent field deletedQuotes: "
            "packed is False, the reference has True"
        )

    def test_deprecated(self) -> None:
        _field(_find(self.altered, "ProtoOAGetTrendbarsRes"), "timestamp").options.ClearField("deprecated")
        self.assertProblems(
            "OpenApiMessages.proto message ProtoOAGetTrendbarsRes field timestamp: "
            "deprecated is False, the reference has True"
        )

    def test_fieldRenamed(self) -> None:
        self.spotField("ask").name = "offer"
        self.assertProblems(
            "OpenApiMessages.proto message ProtoOASpotEvent: field ask is missing",
            "OpenApiMessages.proto message ProtoOASpotEvent: field offer is not in the reference",
        )

    def test_messageRemoved(self) -> None:
        files = self.altered["OpenApiMessages.proto"]
        index = [m.name for m in files.message_type].index("ProtoOAVersionReq")
        del files.message_type[index]
        self.assertProblems("OpenApiMessages.proto: message ProtoOAVersionReq is missing")

    def test_enumValueNumber(self) -> None:
        enum = next(e for e in self.altered["OpenApiModelMessages.proto"].enum_type
                    if e.name == "ProtoOAOrderType")
        next(v for v in enum.value if v.name == "LIMIT").number = 99
        self.assertProblems(
            "OpenApiModelMessages.proto enum ProtoOAOrderType value LIMIT: "
            "number is 99, the reference has 2"
        )

    def test_enumValueAdded(self) -> None:
        enum = next(e for e in self.altered["OpenApiModelMessages.proto"].enum_type
                    if e.name == "ProtoOATradeSide")
        enum.value.add(name="HOLD", number=3)
        self.assertProblems(
            "OpenApiModelMessages.proto enum ProtoOATradeSide: value HOLD is not in the reference"
        )

    def test_fileMissing(self) -> None:
        del self.altered["OpenApiCommonMessages.proto"]
        self.assertProblems("file set: file OpenApiCommonMessages.proto is missing")

    def test_severalAtOnce(self) -> None:
        """Every difference is reported, not just the first."""
        self.spotField("bid").number = 40
        self.spotField("ask").type = FieldDescriptorProto.TYPE_DOUBLE
        self.assertEqual(len(compareFileSets(self.baseline, self.altered)), 2)


# --- regeneration --------------------------------------------------------------


def loadRegenerator() -> ModuleType:
    """A fresh copy of ``tools/regenerate_messages.py`` (so patches stay local)."""
    _grpcTools()
    path = ROOT / "tools" / "regenerate_messages.py"
    spec = importlib.util.spec_from_file_location("_regenerate_messages_under_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*_pb2.py*"))}


class RegenerationTests(SynchronousTestCase):
    """The committed modules are what ``tools/regenerate_messages.py`` makes."""

    def setUp(self) -> None:
        self.regen = loadRegenerator()
        self.tmp = Path(self.mktemp()).resolve()
        self.tmp.mkdir()

    def test_committedModulesAreCurrent(self) -> None:
        """Fails when ``proto/`` was edited without regenerating the modules."""
        before = _digests(self.regen.OUT_DIR)
        stale = self.regen.stale_files()
        self.assertEqual(
            stale, [], f"out of date: {stale}; run python tools/regenerate_messages.py"
        )
        self.assertEqual(_digests(self.regen.OUT_DIR), before, "the check must not write")
        self.assertEqual(len(before), 8)  # four .py and four .pyi

    def test_changedProtoDetected(self) -> None:
        """A change to a ``.proto`` file makes its module (and stub) stale."""
        protoDir = self.tmp / "proto"
        shutil.copytree(self.regen.PROTO_DIR, protoDir)
        target = protoDir / "OpenApiMessages.proto"
        target.write_text(
            target.read_text() + "\nmessage ProtoOAStaleProbe {\n    optional int32 probe = 1;\n}\n"
        )
        self.patch(self.regen, "PROTO_DIR", protoDir)
        self.assertEqual(
            sorted(self.regen.stale_files()), ["OpenApiMessages_pb2.py", "OpenApiMessages_pb2.pyi"]
        )

    def test_editedOrMissingModuleDetected(self) -> None:
        """A hand-edited or deleted generated file is reported too."""
        outDir = self.tmp / "messages"
        shutil.copytree(self.regen.OUT_DIR, outDir)
        edited = outDir / "OpenApiModelMessages_pb2.py"
        edited.write_text(edited.read_text() + "\n# edited by hand\n")
        (outDir / "OpenApiCommonMessages_pb2.pyi").unlink()
        self.patch(self.regen, "OUT_DIR", outDir)
        self.assertEqual(
            sorted(self.regen.stale_files()),
            ["OpenApiCommonMessages_pb2.pyi", "OpenApiModelMessages_pb2.py"],
        )

    def test_checkExitStatus(self) -> None:
        """``--check`` exits 1 when stale, 0 when current, and writes nothing."""
        outDir = self.tmp / "messages"
        shutil.copytree(self.regen.OUT_DIR, outDir)
        self.patch(self.regen, "OUT_DIR", outDir)
        output = io.StringIO()
        with contextlib.redirect_stdout(output):
            self.assertEqual(self.regen.main(["--check"]), 0)
        self.assertEqual(output.getvalue(), "")
        (outDir / "OpenApiMessages_pb2.py").write_text("# stale\n")
        with contextlib.redirect_stdout(output):
            self.assertEqual(self.regen.main(["--check"]), 1)
        self.assertEqual(output.getvalue(), "out of date: ctrader_twisted/messages/OpenApiMessages_pb2.py\n")
        self.assertEqual((outDir / "OpenApiMessages_pb2.py").read_text(), "# stale\n")


# --- recorded payloads ----------------------------------------------------------

TIMELINE_FILES = (
    "m3_execution_recorded.json",
    "m3_stage2_recorded.json",
    "partial_close_live.json",
    "external_commands_live.json",
)


def iterRecordedPayloads(folder: Path) -> Iterator[tuple[str, int, bytes]]:
    """``(where, payloadType, payload bytes)`` for every payload recorded in *folder*."""
    m2 = json.loads((folder / "m2_recorded.json").read_text())
    for key, items in m2.items():
        for i, item in enumerate(items):
            yield f"m2_recorded.json {key}[{i}]", item["type"], base64.b64decode(item["payload"], validate=True)
    for name in TIMELINE_FILES:
        data = json.loads((folder / name).read_text())
        for i, entry in enumerate(data["timeline"]):
            if "payload" in entry:
                yield (f"{name} timeline[{i}] ({entry['kind']}: {entry['note']})", entry["type"],
                       base64.b64decode(entry["payload"], validate=True))
        for key, items in data["closing"].items():
            for i, item in enumerate(items):
                yield f"{name} closing.{key}[{i}]", item["type"], base64.b64decode(item["payload"], validate=True)
    frames = json.loads((folder / "differential_frames.json").read_text())
    for f in frames["frames"]:
        yield (f"differential_frames.json {f['name']}", f["payload_type"],
               base64.b64decode(f["payload_bytes"], validate=True))


def countRecordedEntries(folder: Path) -> int:
    """How many payload-carrying entries the files hold, counted independently
    of :func:`iterRecordedPayloads` (every ``type`` key anywhere)."""

    def count(node: Any) -> int:
        if isinstance(node, dict):
            own = 1 if ("type" in node or "payload_type" in node) else 0
            return own + sum(count(v) for v in node.values())
        if isinstance(node, list):
            return sum(count(v) for v in node)
        return 0

    names = ("m2_recorded.json", *TIMELINE_FILES, "differential_frames.json")
    return sum(count(json.loads((folder / n).read_text())) for n in names)


def roundTrip(payloadType: int, payload: bytes) -> Message:
    """Decode through the registry; fail unless it re-encodes to *payload*."""
    message = Protobuf.extract(ProtoMessage(payloadType=payloadType, payload=payload))
    if payloadTypeOf(message) != payloadType:
        raise AssertionError(f"{payloadType} decoded as {message.DESCRIPTOR.name}")
    again = message.SerializeToString()
    if again != payload:
        raise AssertionError(
            f"{message.DESCRIPTOR.name} re-encodes to {len(again)} bytes "
            f"({again[:24].hex()}...), recorded {len(payload)} ({payload[:24].hex()}...)"
        )
    return message


def collectUnknownFields(message: Message, path: str = "") -> list[tuple[str, int, int, Any]]:
    """``(path, field number, wire type, data)`` of every unknown field in *message*, nested too."""
    path = path or message.DESCRIPTOR.name
    found = [(path, f.field_number, f.wire_type, f.data)
             for f in unknown_fields.UnknownFieldSet(message)]
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        if field.is_repeated:
            for i, item in enumerate(value):
                found += collectUnknownFields(item, f"{path}.{field.name}[{i}]")
        else:
            found += collectUnknownFields(value, f"{path}.{field.name}")
    return found


_VARINT = 0


class RecordedPayloadTests(SynchronousTestCase):
    """Payloads recorded from a real server decode and re-encode byte for byte."""

    def setUp(self) -> None:
        self.folder = referenceDir("recorded")

    def test_everyPayloadRoundTrips(self) -> None:
        failures = []
        decoded = 0
        byFile: dict[str, int] = {}
        for where, payloadType, payload in iterRecordedPayloads(self.folder):
            try:
                roundTrip(payloadType, payload)
            except Exception as e:  # collect all, report all
                failures.append(f"{where} (payloadType {payloadType}): {type(e).__name__}: {e}")
            else:
                decoded += 1
                fileName = where.split()[0]
                byFile[fileName] = byFile.get(fileName, 0) + 1
        self.assertEqual(failures, [], "\n".join(failures))
        self.assertEqual(decoded, countRecordedEntries(self.folder))
        # m2: 1+1+1+1+1+1+4+4+275 responses.
        self.assertEqual(byFile["m2_recorded.json"], 289)
        self.assertEqual(byFile["differential_frames.json"], 6)
        self.assertEqual(set(byFile), {"m2_recorded.json", "differential_frames.json", *TIMELINE_FILES})

    def test_payloadTypesSeen(self) -> None:
        """The recordings cover the main message kinds (so the round trip above
        exercised more than one class)."""
        seen = {Protobuf.name(t) for _, t, _ in iterRecordedPayloads(self.folder)}
        for name in ("ProtoOASpotEvent", "ProtoOAExecutionEvent", "ProtoOASymbolByIdRes",
                     "ProtoOAGetTrendbarsRes", "ProtoOAReconcileRes", "ProtoOATraderRes",
                     "ProtoOAOrderErrorEvent", "ProtoOAErrorRes", "ProtoOADealListRes",
                     "ProtoOAApplicationAuthRes", "ProtoHeartbeatEvent"):
            self.assertIn(name, seen)

    def test_unknownFieldsKept(self) -> None:
        """The server's fields newer than the spec are kept: ``ProtoOATrader``
        field 23 and field 41 on every ``ProtoOASymbol`` in m2, nothing else."""
        found = []
        for where, payloadType, payload in iterRecordedPayloads(self.folder):
            message = roundTrip(payloadType, payload)
            found += [(where, *u) for u in collectUnknownFields(message)]
        trader = [u for u in found if u[1] == "ProtoOATraderRes.trader"]
        self.assertEqual(trader, [("m2_recorded.json trader[0]", "ProtoOATraderRes.trader", 23, _VARINT, 4)])
        symbolSpecs = json.loads((self.folder / "m2_recorded.json").read_text())["symbol_specs"]
        symbolCount = sum(
            len(roundTrip(i["type"], base64.b64decode(i["payload"])).symbol) for i in symbolSpecs
        )
        self.assertEqual(symbolCount, 4)
        symbols = [u for u in found if u[1].startswith("ProtoOASymbolByIdRes.symbol[")]
        self.assertEqual(len(symbols), symbolCount)
        self.assertEqual({(u[0].split()[0], u[2], u[3], u[4]) for u in symbols},
                         {("m2_recorded.json", 41, _VARINT, 1)})
        self.assertEqual(len(found), 1 + symbolCount, found)

    def test_unknownFieldsSurviveCopies(self) -> None:
        """Copying a decoded message (as callers do) keeps its unknown fields on the wire."""
        m2 = json.loads((self.folder / "m2_recorded.json").read_text())
        payload = base64.b64decode(m2["trader"][0]["payload"])
        message = Protobuf.extract(ProtoMessage(payloadType=2122, payload=payload))
        clone = type(message)()
        clone.CopyFrom(message)
        self.assertEqual(clone.SerializeToString(), payload)
        merged = type(message)()
        merged.MergeFromString(payload)
        self.assertEqual(merged.SerializeToString(), payload)
        self.assertIn(b"\xb8\x01\x04", payload)  # field 23, varint 4 in the raw bytes


class DifferentialFrameTests(SynchronousTestCase):
    """Frames our stack writes equal those the official SDK wrote."""

    def setUp(self) -> None:
        data = json.loads((referenceDir("recorded") / "differential_frames.json").read_text())
        self.frames = data["frames"]
        self.assertEqual(len(self.frames), 6)
        for f in self.frames:
            f["payload"] = base64.b64decode(f["payload_bytes"], validate=True)
            f["wire"] = base64.b64decode(f["frame"], validate=True)

    def connect(self) -> tuple[Factory, StringTransport, Clock, list[ProtoMessage]]:
        clock = Clock()
        factory = Factory(clock=clock, heartbeatInterval=10, requestsPerSecond=None,
                          historicalRequestsPerSecond=None)
        received: list[ProtoMessage] = []
        factory.addMessageCallback(received.append)
        proto = factory.buildProtocol(None)
        self.assertIsInstance(proto, TcpProtocol)
        transport = StringTransport()
        proto.makeConnection(transport)
        return factory, transport, clock, received

    def test_frameFunction(self) -> None:
        """``frame(ProtoMessage(...).SerializeToString())`` is the SDK's frame."""
        for f in self.frames:
            if f["client_msg_id"] is None:
                built = frame(HEARTBEAT_FRAME)
            else:
                envelope = ProtoMessage(payloadType=f["payload_type"], payload=f["payload"],
                                        clientMsgId=f["client_msg_id"])
                built = frame(envelope.SerializeToString())
            self.assertEqual(built, f["wire"], f["name"])
        self.assertEqual(frame(HEARTBEAT_FRAME), bytes.fromhex("0000000408331200"))

    def test_sendWritesSdkFrames(self) -> None:
        """``Factory.send`` of the decoded payloads writes exactly the SDK's bytes."""
        factory, transport, clock, _ = self.connect()
        expected = b""
        for f in self.frames:
            if f["client_msg_id"] is None:
                continue
            payload = Protobuf.extract(ProtoMessage(payloadType=f["payload_type"], payload=f["payload"]))
            self.assertEqual(payload.DESCRIPTOR.name, f["payload_class"])
            d = factory.send(payload, clientMsgId=f["client_msg_id"], responseTimeoutInSeconds=None)
            d.addErrback(lambda _: None)  # answered by nobody; dropped at teardown
            clock.advance(0)
            expected += f["wire"]
            self.assertEqual(transport.value(), expected, f["name"])

    def test_heartbeatIsSdkFrame(self) -> None:
        """The heartbeat the core sends is the SDK's heartbeat frame."""
        _, transport, clock, _ = self.connect()
        heartbeat = next(f for f in self.frames if f["client_msg_id"] is None)
        self.assertEqual(heartbeat["payload_class"], "ProtoHeartbeatEvent")
        clock.advance(10)
        self.assertEqual(transport.value(), heartbeat["wire"])

    def test_decodeSdkFrames(self) -> None:
        """The SDK's frames, fed one byte at a time, come out whole and right."""
        for f in self.frames:
            (length,) = struct.unpack("!I", f["wire"][:4])
            self.assertEqual(length, len(f["wire"]) - 4, f["name"])
        for chunk in (None, 1):
            factory, _, _, received = self.connect()
            connection = factory.connection
            assert connection is not None
            stream = b"".join(f["wire"] for f in self.frames)
            if chunk is None:
                connection.dataReceived(stream)
            else:
                for i in range(len(stream)):
                    connection.dataReceived(stream[i : i + 1])
            self.assertEqual(len(received), len(self.frames))
            for f, message in zip(self.frames, received):
                self.assertEqual(message.payloadType, f["payload_type"], f["name"])
                self.assertEqual(message.payload, f["payload"], f["name"])
                if f["client_msg_id"] is None:
                    self.assertFalse(message.HasField("clientMsgId"), f["name"])
                else:
                    self.assertEqual(message.clientMsgId, f["client_msg_id"], f["name"])
                self.assertEqual(Protobuf.extract(message).DESCRIPTOR.name, f["payload_class"])


# --- coexistence with the default pool (official SDK) -------------------------------

_COEXIST_SCRIPT = r"""
import json, sys
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.descriptor_pb2 import FileDescriptorSet

mode, order, source = sys.argv[1], sys.argv[2], sys.argv[3]

def registerTheirs():
    if mode == "files":
        fileSet = FileDescriptorSet.FromString(open(source, "rb").read())
        for proto in fileSet.file:
            descriptor_pool.Default().Add(proto)
        def cls(name):
            return message_factory.GetMessageClass(
                descriptor_pool.Default().FindMessageTypeByName(name))
    else:  # modules generated by plain protoc, as the official package ships them
        sys.path.insert(0, source)
        import OpenApiCommonModelMessages_pb2, OpenApiCommonMessages_pb2
        import OpenApiModelMessages_pb2, OpenApiMessages_pb2
        mods = (OpenApiCommonMessages_pb2, OpenApiMessages_pb2, OpenApiModelMessages_pb2)
        def cls(name):
            return next(getattr(m, name) for m in mods if hasattr(m, name))
    return cls

def importOurs():
    from ctrader_twisted.messages import (OpenApiCommonMessages_pb2, OpenApiMessages_pb2,
                                          OpenApiModelMessages_pb2, _pool)
    mods = (OpenApiCommonMessages_pb2, OpenApiMessages_pb2, OpenApiModelMessages_pb2)
    def cls(name):
        return next(getattr(m, name) for m in mods if hasattr(m, name))
    return cls, _pool.POOL

result = {}
if order == "theirs-first":
    theirs = registerTheirs()
    ours, pool = importOurs()
else:
    ours, pool = importOurs()
    try:
        descriptor_pool.Default().FindFileByName("OpenApiMessages.proto")
        result["oursInDefaultPool"] = True
    except KeyError:
        result["oursInDefaultPool"] = False
    theirs = registerTheirs()

result["distinctPools"] = pool is not descriptor_pool.Default()
result["distinctClasses"] = ours("ProtoOASpotEvent") is not theirs("ProtoOASpotEvent")
result["theirPool"] = theirs("ProtoOASpotEvent").DESCRIPTOR.file.pool is descriptor_pool.Default()

cases = [
    ("ProtoOAApplicationAuthReq", {"clientId": "client-id", "clientSecret": "client-secret"}),
    ("ProtoOASubscribeSpotsReq", {"ctidTraderAccountId": 1234567, "symbolId": [1, 22, 333]}),
    ("ProtoOANewOrderReq", {"ctidTraderAccountId": 1, "symbolId": 1, "orderType": 2,
                             "tradeSide": 2, "volume": 100000, "limitPrice": 1.0987,
                             "timeInForce": 3, "expirationTimestamp": 1700000000000,
                             "comment": "x\u00e9", "trailingStopLoss": True,
                             "relativeStopLoss": -5}),
    ("ProtoOADepthEvent", {"ctidTraderAccountId": 1, "symbolId": 2**63 + 5,
                            "newQuotes": [{"id": 1, "size": 2, "bid": 3}],
                            "deletedQuotes": [7, 8, 9]}),
    ("ProtoMessage", {"payloadType": 51, "payload": b"", "clientMsgId": "m"}),
    ("ProtoErrorRes", {"errorCode": "CH_CLIENT_AUTH_FAILURE", "description": "d"}),
]
outcome = []
for name, fields in cases:
    a = ours(name)(**fields).SerializeToString()
    b = theirs(name)(**fields).SerializeToString()
    # and each side parses the other's bytes back to the same bytes
    c = theirs(name).FromString(a).SerializeToString()
    d = ours(name).FromString(b).SerializeToString()
    outcome.append([name, a.hex(), b.hex(), c.hex(), d.hex()])
result["cases"] = outcome
print(json.dumps(result))
"""


class CoexistenceTests(SynchronousTestCase):
    """Our private pool lives beside the default pool the official SDK fills."""

    def runScript(self, mode: str, order: str, source: Path) -> dict[str, Any]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        done = subprocess.run(
            [sys.executable, "-c", _COEXIST_SCRIPT, mode, order, str(source)],
            capture_output=True, text=True, cwd=str(ROOT), env=env, timeout=120,
        )
        self.assertEqual(done.returncode, 0, done.stderr)
        return json.loads(done.stdout)

    def checkResult(self, result: dict[str, Any]) -> None:
        self.assertTrue(result["distinctPools"])
        self.assertTrue(result["distinctClasses"])
        self.assertTrue(result["theirPool"])
        self.assertEqual(len(result["cases"]), 6)
        for name, ours, theirs, theirsFromOurs, oursFromTheirs in result["cases"]:
            self.assertTrue(ours, name)
            self.assertEqual(ours, theirs, name)
            self.assertEqual(theirsFromOurs, ours, name)
            self.assertEqual(oursFromTheirs, ours, name)

    def fileSetPath(self) -> Path:
        path = Path(self.mktemp()).resolve()
        fileSet = FileDescriptorSet()
        for module in MODULES:  # dependency order
            fileSet.file.add().CopyFrom(FileDescriptorProto.FromString(module.DESCRIPTOR.serialized_pb))
        path.write_bytes(fileSet.SerializeToString())
        return path

    def officialStyleModules(self) -> Path:
        """Plain protoc output (default pool, absolute imports), as the official
        package ships: from the reference files when present, else ``proto/``."""
        protoc = _grpcTools()
        try:
            source = referenceDir("openapi-proto")
        except SkipTest:
            source = ROOT / "proto"
        out = Path(self.mktemp()).resolve()
        out.mkdir()
        args = ["protoc", f"-I{source}", f"-I{_protocInclude()}", f"--python_out={out}",
                *sorted(str(p) for p in source.glob("*.proto"))]
        self.assertEqual(protoc.main(args), 0)
        return out

    def test_defaultPoolFilesFirst(self) -> None:
        """The same four files already in the default pool: ours still import."""
        self.checkResult(self.runScript("files", "theirs-first", self.fileSetPath()))

    def test_oursFirstLeaveDefaultPoolFree(self) -> None:
        """Importing ours registers nothing in the default pool, so the
        official package can be imported afterwards."""
        result = self.runScript("files", "ours-first", self.fileSetPath())
        self.assertFalse(result["oursInDefaultPool"])
        self.checkResult(result)

    def test_officialStyleModules(self) -> None:
        """With protoc's default-pool modules (what the official SDK ships)
        imported first, ours import and encode identically."""
        self.checkResult(self.runScript("modules", "theirs-first", self.officialStyleModules()))

    def test_realOfficialPackage(self) -> None:
        """With the real ``ctrader_open_api`` package, when it is installed."""
        if importlib.util.find_spec("ctrader_open_api") is None:
            raise SkipTest("ctrader_open_api is not installed")
        script = (
            "from ctrader_open_api.messages.OpenApiMessages_pb2 import ProtoOASubscribeSpotsReq as T\n"
            "from ctrader_twisted.messages.OpenApiMessages_pb2 import ProtoOASubscribeSpotsReq as O\n"
            "f = dict(ctidTraderAccountId=1234567, symbolId=[1, 22, 333])\n"
            "assert T is not O\n"
            "print(T(**f).SerializeToString().hex(), O(**f).SerializeToString().hex())\n"
        )
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                              cwd=str(ROOT), timeout=120)
        if done.returncode != 0 and "ctrader_open_api" in done.stderr and "ctrader_twisted" not in done.stderr:
            raise SkipTest(f"ctrader_open_api does not import here: {done.stderr.strip().splitlines()[-1]}")
        self.assertEqual(done.returncode, 0, done.stderr)
        theirs, ours = done.stdout.split()
        self.assertEqual(theirs, ours)

    def test_privatePoolInProcess(self) -> None:
        """In this process too: our files are not in the default pool."""
        self.assertIsNot(_pool.POOL, descriptor_pool.Default())
        for name in FILE_NAMES:
            self.assertIs(_pool.POOL.FindFileByName(name).pool, _pool.POOL)


# --- runtime ----------------------------------------------------------------------


class RuntimeTests(SynchronousTestCase):
    """We run on protobuf 7 and its upb backend (and still work on pure Python)."""

    def test_protobufSeven(self) -> None:
        import google.protobuf

        major = int(google.protobuf.__version__.split(".")[0])
        self.assertGreaterEqual(major, 7, google.protobuf.__version__)

    def test_backend(self) -> None:
        """The backend in use is a known one; with upb, descriptors are C ones."""
        from google.protobuf import descriptor
        from google.protobuf.internal import api_implementation

        backend = api_implementation.Type()
        self.assertIn(backend, ("upb", "python"))
        self.assertEqual(descriptor._USE_C_DESCRIPTORS, backend != "python")

    def test_pythonBackendRoundTrip(self) -> None:
        """Every recorded payload also round-trips on the pure-Python backend
        (a fresh interpreter with ``PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python``)."""
        folder = referenceDir("recorded")
        script = (
            "import sys\n"
            "from google.protobuf.internal import api_implementation\n"
            "assert api_implementation.Type() == 'python', api_implementation.Type()\n"
            "from pathlib import Path\n"
            "from tests.test_messages import iterRecordedPayloads, roundTrip, collectUnknownFields\n"
            "n = u = 0\n"
            "for where, t, p in iterRecordedPayloads(Path(sys.argv[1])):\n"
            "    u += len(collectUnknownFields(roundTrip(t, p)))\n"
            "    n += 1\n"
            "print(n, u)\n"
        )
        env = dict(os.environ, PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION="python")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        done = subprocess.run([sys.executable, "-c", script, str(folder)], capture_output=True,
                              text=True, cwd=str(ROOT), env=env, timeout=300)
        self.assertEqual(done.returncode, 0, done.stderr)
        count, unknown = map(int, done.stdout.split())
        self.assertEqual(count, countRecordedEntries(folder))
        self.assertEqual(unknown, 5)  # the trader's field 23 and four symbols' field 41

    def test_messagesPickle(self) -> None:
        """Messages survive pickling (multiprocessing, caches): their classes
        must be importable under the name they report."""
        from ctrader_twisted.messages.OpenApiMessages_pb2 import ProtoOASpotEvent

        event = ProtoOASpotEvent(ctidTraderAccountId=1, symbolId=2, bid=110000)
        self.assertEqual(pickle.loads(pickle.dumps(event)), event)
