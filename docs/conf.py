"""Sphinx configuration: ``sphinx-build -W -n docs docs/_build/html``.

The build is strict (warnings are errors, every cross-reference must
resolve) and offline: no intersphinx inventories are downloaded, so names of
other projects (Twisted, Autobahn, protobuf, the standard library) that
docstrings mention are listed in ``nitpick_ignore_regex`` instead of linked.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.abspath(".."))

from ctrader_twisted import __version__  # noqa: E402

project = "ctrader-twisted"
author = "the ctrader-twisted developers"
copyright = "2026, the ctrader-twisted developers"
release = __version__
version = ".".join(__version__.split(".")[:2])

extensions = ["sphinx.ext.autodoc", "sphinx.ext.viewcode"]
exclude_patterns = ["_build"]
html_theme = "furo"
html_title = f"ctrader-twisted {release}"
pygments_style = "sphinx"

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_default_options = {"members": True, "show-inheritance": True}

nitpicky = True
nitpick_ignore_regex = [
    # Other projects' names (no intersphinx: the build is offline).
    (r"py:.*", r"(twisted|zope|autobahn|txaio|google|treq|txredisapi|OpenSSL|service_identity)\..*"),
    (r"py:.*", r"(Deferred|Failure|IReactorTime|IDelayedCall|IStreamClientEndpoint|IProtocol|IAddress)"),
    (r"py:.*", r"(ClientService|ClientFactory|Int32StringReceiver|Protocol|LoopingCall|Clock|Logger)"),
    (r"py:.*", r"(WebSocketClientProtocol|WebSocketServerProtocol|WebSocketClientFactory|WebSocketServerFactory)"),
    (r"py:.*", r"(Message|ProtoMessage|Proto[A-Za-z0-9]+|DecodeError|EnumTypeWrapper)"),
    (r"py:.*", r"(Certificate|PrivateCertificate|IOpenSSLTrustRoot|IListeningPort|IPullProducer|ConnectionRequest)"),
    (r"py:.*", r"(Interface|Attribute|IService|MultiService|Service|IReactorTCP|IOPump|usage\.Options|Options)"),
    # Standard library and typing names in annotations.
    (r"py:.*", r"(datetime|decimal|pathlib|collections|typing|asyncio|argparse|io|enum)\..*"),
    (r"py:.*", r"(Decimal|Path|TextIO|Sequence|Iterable|Iterator|Mapping|Callable|Awaitable|AsyncIterator|NamedTuple|TypeVar|Protocol)"),
    (r"py:class", r"(_[A-Za-z0-9_]+|.*\._[A-Za-z0-9_]+)"),
    # zope interfaces in annotations render as their repr.
    (r"py:class", r"<InterfaceClass .*"),
    # The generated protobuf modules are not documented page by page (see messages).
    (r"py:.*", r"ctrader_twisted\.messages\..*"),
]
