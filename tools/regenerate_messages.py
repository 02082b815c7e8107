#!/usr/bin/env python
"""Regenerate ``ctrader_twisted/messages/*_pb2.py`` (and ``.pyi`` stubs) from ``proto/``.

Usage::

    python tools/regenerate_messages.py          # rewrite the committed modules
    python tools/regenerate_messages.py --check  # exit 1 if they are out of date

It needs ``grpcio-tools`` (the ``dev`` and ``test`` extras install it), whose
bundled ``protoc`` matches the protobuf runtime we require.

Two rewrites make the generated code fit the package:

* imports between the modules become package-relative, so they resolve
  inside ``ctrader_twisted.messages`` (the official SDK once shipped absolute
  imports that failed);
* the files are registered in a private descriptor pool
  (``ctrader_twisted.messages._pool.POOL``) instead of protobuf's default pool,
  so they can be imported in the same process as the official
  ``ctrader_open_api`` package, whose modules register the same file and
  message names in the default pool.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
OUT_DIR = ROOT / "ctrader_twisted" / "messages"
MODULES = (
    "OpenApiCommonModelMessages",
    "OpenApiCommonMessages",
    "OpenApiModelMessages",
    "OpenApiMessages",
)
_IMPORT = re.compile(r"^import (OpenApi\w+_pb2) as (\w+)$", re.MULTILINE)
_DEFAULT_POOL = "_descriptor_pool.Default().AddSerializedFile("


def _rewrite_py(text: str) -> str:
    text = _IMPORT.sub(r"from . import \1 as \2", text)
    if _DEFAULT_POOL not in text:
        raise RuntimeError("protoc output changed shape: no default-pool registration found")
    text = text.replace(_DEFAULT_POOL, "_POOL.AddSerializedFile(")
    # Classes get the package module name (pickling, reprs), not the bare one.
    text = re.sub(
        r"BuildTopDescriptorsAndMessages\(DESCRIPTOR, '\w+_pb2', _globals\)",
        "BuildTopDescriptorsAndMessages(DESCRIPTOR, __name__, _globals)",
        text,
    )
    return text.replace(
        "# @@protoc_insertion_point(imports)",
        "from ._pool import POOL as _POOL\n# @@protoc_insertion_point(imports)",
        1,
    )


def _rewrite_pyi(text: str) -> str:
    return _IMPORT.sub(r"from . import \1 as \2", text)


def generate() -> dict[str, str]:
    """Run protoc on ``proto/`` and return {file name: rewritten content}."""
    from grpc_tools import protoc  # imported here: only this script needs it
    import grpc_tools

    include = Path(grpc_tools.__file__).parent / "_proto"
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            "protoc",
            f"-I{PROTO_DIR}",
            f"-I{include}",
            f"--python_out={tmp}",
            f"--pyi_out={tmp}",
            *(str(PROTO_DIR / f"{m}.proto") for m in MODULES),
        ]
        if protoc.main(args) != 0:
            raise RuntimeError("protoc failed on proto/")
        out: dict[str, str] = {}
        for m in MODULES:
            out[f"{m}_pb2.py"] = _rewrite_py((Path(tmp) / f"{m}_pb2.py").read_text())
            out[f"{m}_pb2.pyi"] = _rewrite_pyi((Path(tmp) / f"{m}_pb2.pyi").read_text())
    return out


def stale_files() -> list[str]:
    """Names of committed generated files that differ from a fresh generation."""
    stale = []
    for name, content in generate().items():
        path = OUT_DIR / name
        if not path.exists() or path.read_text() != content:
            stale.append(name)
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale modules")
    options = parser.parse_args(argv)
    if options.check:
        stale = stale_files()
        for name in stale:
            print(f"out of date: ctrader_twisted/messages/{name}")
        return 1 if stale else 0
    for name, content in generate().items():
        (OUT_DIR / name).write_text(content)
    print(f"regenerated {len(MODULES)} modules in {OUT_DIR.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
