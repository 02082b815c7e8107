"""Sphinx configuration: ``sphinx-build -E -W -n -b html docs docs/_build/html``.

The build is strict (warnings are errors, every cross-reference must
resolve) and offline: no intersphinx inventories are downloaded, so names of
other projects (Twisted, Autobahn, protobuf, zope, the standard library...)
that docstrings mention are listed in ``nitpick_ignore_regex`` instead of
linked. Names of this project are never listed there: a reference to one
that does not resolve is a broken reference, fixed where it is written.

Local extensions (``docs/_ext``):

* ``typenames``: type hints read and link as names (imports under
  ``TYPE_CHECKING``, zope interfaces, protobuf enums); ``autointerface``
  (from ``repoze.sphinx.autointerface``) documents the interfaces;
* ``refnames``: a reference by the name Python code would use
  (``ctrader_twisted.Client``, or ``TcpProtocol`` in a module that imports
  it) resolves to where the object is documented;
* ``simsymbols``: the ``simulator-symbols`` directive, the simulator's symbol
  table rendered from its data at build time.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Generic

if TYPE_CHECKING:
    from sphinx.application import Sphinx

sys.path.insert(0, os.path.abspath(".."))
sys.path.insert(0, os.path.abspath("_ext"))

from ctrader_twisted import __version__  # noqa: E402

project = "ctrader-twisted"
author = "the ctrader-twisted developers"
copyright = "2026, the ctrader-twisted developers"
release = __version__
version = ".".join(__version__.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
    "repoze.sphinx.autointerface",
    "typenames",
    "refnames",
    "simsymbols",
]
exclude_patterns = ["_build"]
templates_path: list[str] = []
html_theme = "furo"
html_title = f"ctrader-twisted {release}"
html_static_path = ["_static"]
html_css_files = ["custom.css"]
pygments_style = "sphinx"
pygments_dark_style = "monokai"

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_inherit_docstrings = True
# Defaults as written (``protocol=TcpProtocol``, not the class repr).
autodoc_preserve_defaults = True
# Long signatures (``Client``) one parameter per line.
python_maximum_signature_line_length = 88
# Defaults as written (``protocol=TcpProtocol``, not the class repr).
autodoc_preserve_defaults = True
# Long signatures (``Client``) one parameter per line.
python_maximum_signature_line_length = 88

nitpicky = True
nitpick_ignore_regex = [
    # Other projects' names (no intersphinx: the build is offline).
    (r"py:.*", r"(twisted|zope|autobahn|txaio|google|treq|txredisapi|OpenSSL|service_identity|cryptography|pyarrow)(\..*)?"),
    (r"py:.*", r"(Deferred(\[.*\])?|Failure|IReactorTime|IDelayedCall|IStreamClientEndpoint|IProtocol|IAddress)"),
    (r"py:.*", r"(ClientService|ClientFactory|Int32StringReceiver|Protocol|LoopingCall|Clock|Logger)"),
    (r"py:.*", r"(WebSocketClientProtocol|WebSocketServerProtocol|WebSocketClientFactory|WebSocketServerFactory)"),
    (r"py:.*", r"(Message|ProtoMessage|Proto[A-Za-z0-9]+|DecodeError|EnumTypeWrapper)"),
    (r"py:.*", r"(Certificate|PrivateCertificate|IOpenSSLTrustRoot|IListeningPort|IPullProducer|ConnectionRequest)"),
    (r"py:.*", r"(Interface|Attribute|IService|MultiService|Service|IReactorTCP|IOPump|usage\.Options|Options)"),
    # Standard library and typing names in annotations.
    (r"py:.*", r"(datetime|decimal|pathlib|collections|typing|asyncio|argparse|io|enum|os|ssl|socket)\..*"),
    (r"py:.*", r"(datetime|date|timedelta|timezone|Decimal|Path|TextIO|Sequence|Iterable|Iterator|Mapping|Callable|Awaitable|AsyncIterator|NamedTuple|TypeVar|Protocol)"),
    (r"py:class", r"(_[A-Za-z0-9_]+|.*\._[A-Za-z0-9_]+)"),
    # The generated protobuf modules are not documented page by page (see messages).
    (r"py:.*", r"ctrader_twisted\.messages\..*"),
]


def dropGenericBases(app: Sphinx, name: str, obj: object, options: object, bases: list[object]) -> None:
    """``Bases: Generic[T]`` says nothing to a reader: show the real bases only."""
    bases[:] = [base for base in bases if getattr(base, "__origin__", None) is not Generic]


def setup(app: Sphinx) -> None:
    app.connect("autodoc-process-bases", dropGenericBases)
