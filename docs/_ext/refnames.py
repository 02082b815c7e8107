"""Resolve references by the names Python code would use.

Docstrings name things the way the code around them does: ``ctrader_twisted.Client``
(what users import; the class is defined, and documented, in
``ctrader_twisted.client``), or :class:`TcpProtocol` in ``client.py``, which
imports it from ``ctrader_twisted.tcp``. Sphinx alone looks such a name up
only where it is written. When it finds nothing, this extension looks the
name up as Python would, in the namespace of the module (and class) where
the reference is written, or by importing a dotted name, and retries with
the documented name of the object found (its ``__module__`` and
``__qualname__``). A name that Python cannot find, or whose object is not
documented, stays unresolved and the strict build reports it.

It is what ``:canonical:`` does, without writing a second description of
each re-exported name.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from docutils import nodes
from sphinx.addnodes import pending_xref
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment

_MISSING = object()


def _import(dotted: str) -> tuple[Any, list[str]]:
    """The longest importable module prefix of *dotted*, and the rest."""
    parts = dotted.split(".")
    for index in range(len(parts), 0, -1):
        try:
            return importlib.import_module(".".join(parts[:index])), parts[index:]
        except Exception:
            continue
    return _MISSING, parts


def _home(obj: Any) -> str | None:
    """Where *obj* is defined, when it is a class or a function."""
    if not (inspect.isclass(obj) or inspect.isfunction(obj) or inspect.ismethod(obj)):
        return None
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str) or "<locals>" in qualname:
        return None
    return f"{module}.{qualname}"


def _walk(obj: Any, names: list[str]) -> str | None:
    """The documented name of ``obj.names...``."""
    home = None if obj is _MISSING else _home(obj)
    if home is None:
        return None
    for index, name in enumerate(names):
        member = inspect.getattr_static(obj, name, _MISSING)
        if member is _MISSING:
            return None
        if isinstance(member, (staticmethod, classmethod)):
            member = member.__func__
        memberHome = _home(member)
        if memberHome is None:  # an attribute or property: named under its owner
            return ".".join([home, *names[index:]])
        obj, home = member, memberHome
    return home


def _inModule(module: Any, names: list[str]) -> str | None:
    """The documented name of ``module.names...`` (a module itself when *names* is empty)."""
    found, left = _import(".".join([module.__name__, *names]))
    if found is _MISSING:
        return None
    if not left:
        return found.__name__
    return _walk(getattr(found, left[0], _MISSING), left[1:])


def documentedName(target: str, module: str | None, cls: str | None) -> str | None:
    """The documented name of *target* written in *module* (and class *cls*),
    or ``None`` when Python finds nothing under that name."""
    head, *rest = target.split(".")
    scopes: list[Any] = []
    if module:
        moduleObj, left = _import(module)
        if moduleObj is not _MISSING and not left:
            owner: Any = moduleObj
            for part in (cls or "").split(".") if cls else ():
                owner = getattr(owner, part, _MISSING)
            if cls and owner is not _MISSING:
                scopes.append(owner)
            scopes.append(moduleObj)
    for scope in scopes:
        obj = getattr(scope, head, _MISSING)
        if obj is not _MISSING:
            return _inModule(obj, rest) if inspect.ismodule(obj) else _walk(obj, rest)
    found, left = _import(target)
    if found is not _MISSING and left:
        return _inModule(found, left)
    return None


def resolve(app: Sphinx, env: BuildEnvironment, node: pending_xref, contnode: nodes.TextElement) -> Any:
    """``missing-reference`` handler: retry a Python reference under its documented name."""
    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "")
    name = documentedName(target, node.get("py:module"), node.get("py:class"))
    if name is None or name == target:
        return None
    return env.get_domain("py").resolve_xref(env, node["refdoc"], app.builder, node["reftype"], name, node, contnode)


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("missing-reference", resolve)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
