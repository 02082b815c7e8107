"""Type hints that read as names, and link.

Sphinx writes an annotation it cannot evaluate, or an object it cannot name,
as it finds it; such a type links nowhere, or reads as a ``repr``. When the
build starts, this extension imports every module of the package and fixes
the three cases this project has (and again, before autodoc reads a
signature, in modules imported since):

* names imported under ``if TYPE_CHECKING:`` (to avoid import cycles) are
  imported into the module's namespace, so that ``session: Session`` is
  evaluated, and links to the right ``Session`` of the two this project has;
* a zope interface (``IFrameTransport``, Twisted's ``IReactorTime``) is an
  object, not a class, without a ``__qualname__``: it gets its name, which
  adds nothing to the interface's contract (``autointerface`` documents
  ours);
* a protobuf enum (``ProtoOATradeSide``) is an ``EnumTypeWrapper`` object:
  it gets its name and its generated module's, instead of
  ``<... object at 0x...>``.

Only the documentation build does this; the package is not changed.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import sys
from typing import Any

from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper
from sphinx.application import Sphinx
from zope.interface.interface import InterfaceClass

_seen: set[str] = set()


def _typeCheckingImports(module: Any) -> None:
    """Run the imports under ``if TYPE_CHECKING:`` of *module* in its namespace."""
    try:
        source = inspect.getsource(module)
    except (OSError, TypeError):
        return
    if "TYPE_CHECKING" not in source:
        return
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for statement in node.body:
                if isinstance(statement, (ast.Import, ast.ImportFrom)):
                    code = compile(ast.Module(body=[statement], type_ignores=[]), module.__name__, "exec")
                    namespace = dict(vars(module))
                    exec(code, namespace)
                    for alias in statement.names:
                        name = (alias.asname or alias.name).split(".")[0]
                        if name not in vars(module):
                            setattr(module, name, namespace[name])


def nameTypes(*args: Any) -> None:
    """Fix the modules imported since the last call (see the module docstring)."""
    for name, module in list(sys.modules.items()):
        if name in _seen or module is None:
            continue
        _seen.add(name)
        if name.startswith("ctrader_twisted"):
            _typeCheckingImports(module)
        for value in list(getattr(module, "__dict__", {}).values()):
            if isinstance(value, InterfaceClass) and "__qualname__" not in vars(value):
                value.__qualname__ = value.__name__
            elif isinstance(value, EnumTypeWrapper) and name.endswith("_pb2") and "__qualname__" not in vars(value):
                # named after its generated module (importers are skipped)
                value.__qualname__ = value.DESCRIPTOR.name
                value.__module__ = name


def importPackage(app: Sphinx) -> None:
    """Import every module of ``ctrader_twisted`` (those that import), then fix them."""
    import ctrader_twisted

    for info in pkgutil.walk_packages(ctrader_twisted.__path__, "ctrader_twisted."):
        if info.name.endswith("__main__"):
            continue
        try:
            importlib.import_module(info.name)
        except Exception:  # an optional extra is missing: autodoc reports what it needs
            continue
    nameTypes()


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("builder-inited", importPackage)
    app.connect("autodoc-before-process-signature", nameTypes)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
