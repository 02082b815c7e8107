# -*- test-case-name: tests.test_status -*-
"""What the user reads on stderr: status lines, error descriptions, exit statuses.

Every status line of the console command, the stream service and the twistd
plugin goes through :func:`say` and starts with :data:`PREFIX`. Errors are
one line each (:func:`describeError`): they name what failed, where the bad
value came from (an option, an environment variable or the config file) and
what to check, never a secret. Messages that send the user to the
documentation give its address (:func:`docsUrl`), read from the installed
package's metadata: an installed user has no ``docs/`` folder.
"""

from __future__ import annotations

import errno
from typing import Mapping, TextIO

from twisted.internet.error import ConnectError, ConnectionRefusedError, DNSLookupError, TimeoutError as ConnectTimeoutError

from ..errors import (
    AccessTokenInvalidError,
    AccountNotAuthorizedError,
    ClientAuthenticationError,
    CTraderError,
    OpenApiError,
)

__all__ = [
    "PROG",
    "PREFIX",
    "say",
    "StreamError",
    "describeError",
    "tlsProblem",
    "isExpected",
    "isBrokenPipe",
    "docsUrl",
    "DOCS_URL",
    "EXIT_OK",
    "EXIT_FAILURE",
    "EXIT_USAGE",
    "EXIT_BROKEN_PIPE",
]

#: The command's name, as the user types it.
PROG = "ctrader-twisted"
#: Start of every status line.
PREFIX = f"{PROG}: "

EXIT_OK = 0
#: unreachable host, refused credentials, certificate failure, unknown symbol, server error
EXIT_FAILURE = 1
#: bad arguments or configuration
EXIT_USAGE = 2
#: the reader of stdout went away (``... | head``): the status of a process
#: that a ``SIGPIPE`` ended, as shells report it (128 + 13), without a message
EXIT_BROKEN_PIPE = 141

#: The documentation's address when the package metadata does not give one
#: (running from a source tree that was never installed).
DOCS_URL = "https://ctrader-twisted.readthedocs.io/en/latest/"

_DISTRIBUTION = "ctrader-twisted"


def _documentationBase() -> str:
    """The ``Documentation`` project URL of the installed package, else :data:`DOCS_URL`."""
    from importlib.metadata import PackageNotFoundError, metadata

    try:
        urls = metadata(_DISTRIBUTION).get_all("Project-URL") or []
    except PackageNotFoundError:
        return DOCS_URL
    for entry in urls:
        label, _, url = str(entry).partition(",")
        url = url.strip()
        if label.strip().lower() == "documentation" and url.startswith(("https://", "http://")):
            return url if url.endswith("/") else url + "/"
    return DOCS_URL


def docsUrl(page: str = "", anchor: str = "") -> str:
    """The address of a documentation page, e.g. ``docsUrl("cli")``.

    The base is the package metadata's ``Documentation`` project URL
    (``setup.cfg``: ``project_urls``), so it follows wherever the package
    says its documentation lives; :data:`DOCS_URL` when the package is not
    installed.

    :param page: the page's name without suffix (``"cli"``, ``"credentials"``);
        empty for the documentation's front page.
    :param anchor: a section id on the page (``"errors-and-exit-status"``).
    :returns: an absolute ``https://`` address.
    """
    url = _documentationBase() + (f"{page}.html" if page else "")
    return f"{url}#{anchor}" if anchor else url


def say(stream: TextIO, text: str) -> None:
    """Write ``ctrader-twisted: <text>`` as one line on *stream* and flush it.

    A closed or broken *stream* is ignored: a status line is never worth
    failing for.
    """
    try:
        stream.write(PREFIX + text + "\n")
        stream.flush()
    except (OSError, ValueError):
        pass


class StreamError(Exception):
    """A one-line, user-facing reason why streaming (or a command) cannot go
    on: unknown symbol, refused credentials, unreachable host, certificate
    failure. Never holds a secret."""


#: Where a setting may come from, when the caller does not know which one it
#: came from (see :func:`describeError`'s *sources*).
_ANY_SOURCE = {
    "clientId": "--client-id, CTRADER_CLIENT_ID or client_id in the config file",
    "clientSecret": "--client-secret, CTRADER_CLIENT_SECRET or client_secret in the config file",
    "accessToken": "the token file, --access-token, CTRADER_ACCESS_TOKEN or access_token in the config file",
}


def describeError(error: BaseException, host: str, port: int, sources: Mapping[str, str] | None = None) -> str:
    """A one-line explanation of *error* for the user (never a secret).

    :param sources: where each setting came from, by setting name
        (:attr:`~ctrader_twisted.cli.config.Settings.sources`: ``"--account"``,
        ``"CTRADER_ACCOUNT_ID"``, ``"accounts in config file PATH"``...), so
        that a refused value is traced to the place the user can fix;
        without it the message names every place it may have come from.
    """
    where = f"{host}:{port}"
    known = sources or {}

    def source(name: str) -> str:
        return known.get(name) or _ANY_SOURCE[name]

    if isinstance(error, StreamError):
        return str(error)
    if isinstance(error, ClientAuthenticationError):
        if "clientId" in known and "clientSecret" in known:
            given = f"the client id from {known['clientId']} and the secret from {known['clientSecret']}"
        else:
            given = "the client id and secret"
        return f"{where} refused the application credentials ({error}): check {given}"
    if isinstance(error, AccessTokenInvalidError):
        return (
            f"{where} refused the access token from {source('accessToken')} ({error}): "
            "run `ctrader-twisted login` for new tokens, or give a refresh token"
        )
    if isinstance(error, AccountNotAuthorizedError):
        account = f"account {error.ctidTraderAccountId}" if error.ctidTraderAccountId else "this account"
        server = error.errorCode + (f": {error.description}" if error.description else "")
        if "accounts" in known:
            return (
                f"the access token does not grant {account}, given by {known['accounts']} ({server}): "
                f"fix {known['accounts']}; `ctrader-twisted accounts` lists the accounts the token grants"
            )
        return (
            f"the access token does not grant {account} ({server}): "
            "`ctrader-twisted accounts` lists the accounts it grants"
        )
    if isinstance(error, OpenApiError):
        return f"{where} answered with an error: {error}"
    if isinstance(error, DNSLookupError):
        return f"cannot resolve host name {host!r}"
    if isinstance(error, ConnectTimeoutError):
        return f"timed out connecting to {where}"
    if isinstance(error, ConnectionRefusedError):
        return f"cannot connect to {where}: connection refused (is the server running? check the host and port)"
    if isinstance(error, ConnectError):
        detail = error.osError if isinstance(getattr(error, "osError", None), str) else None
        text = type(error).__doc__ or "connection failed"
        text = text.strip().splitlines()[0].rstrip(".").lower()
        if isinstance(error.args, tuple) and error.args and isinstance(error.args[0], str) and error.args[0]:
            detail = error.args[0]
        return f"cannot connect to {where}: {text}" + (f" ({detail})" if detail else "")
    tls = tlsProblem(error)
    if tls is not None:
        return f"TLS certificate verification failed for {where}: {tls}"
    if isinstance(error, CTraderError):
        return f"{where}: {error}"
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{where}: {type(error).__name__}" + (f": {text}" if text else "")


def isBrokenPipe(error: BaseException) -> bool:
    """Whether *error* is a write to a pipe whose reader has gone (``... | head``)."""
    return isinstance(error, BrokenPipeError) or (isinstance(error, OSError) and error.errno == errno.EPIPE)


def tlsProblem(error: BaseException) -> str | None:
    """The reason of a TLS failure (OpenSSL or service_identity), or ``None``."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        module = type(current).__module__
        mismatches = getattr(current, "errors", None)
        if module.startswith("service_identity") and mismatches:
            # A host name mismatch: say which names the certificate was
            # checked for (service_identity's errors name them).
            names = ", ".join(_idText(getattr(e, "mismatched_id", e)) for e in mismatches)
            return (
                f"the server's certificate is not issued for the host name ({names}): "
                "check the host name, or the certificate the server presents"
            )
        if module.startswith("OpenSSL") or module.startswith("service_identity"):
            reasons = []
            for arg in current.args:
                if isinstance(arg, list):
                    for item in arg:
                        if isinstance(item, tuple) and item:
                            reasons.append(str(item[-1]))
                elif isinstance(arg, str):
                    reasons.append(arg)
            return "; ".join(r for r in reasons if r) or type(current).__name__
        current = current.__cause__ or current.__context__
    return None


def _idText(identity: object) -> str:
    """A service_identity id (``DNS_ID(hostname=b'host')``) as the name it checks."""
    for attribute in ("hostname", "ip", "uri"):
        value = getattr(identity, attribute, None)
        if value is not None:
            return value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)
    return str(identity)


#: Errors :func:`describeError` explains without a traceback being useful.
_EXPECTED = (StreamError, CTraderError, ConnectError, DNSLookupError, ConnectTimeoutError, ConnectionError)


def isExpected(error: BaseException) -> bool:
    """Whether *error* is one the user can act on from its one-line
    description (a bad setting, an unreachable host, a TLS failure), as
    opposed to a bug whose traceback is worth logging."""
    return isinstance(error, _EXPECTED) or tlsProblem(error) is not None
