# -*- test-case-name: tests.test_status -*-
"""What the user reads on stderr: status lines, error descriptions, exit statuses.

Every status line of the console command, the stream service and the twistd
plugin goes through :func:`say` and starts with :data:`PREFIX`. Errors are
one line each (:func:`describeError`): they name what failed and what to
check, never a secret.
"""

from __future__ import annotations

from typing import TextIO

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
    "EXIT_OK",
    "EXIT_FAILURE",
    "EXIT_USAGE",
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


def describeError(error: BaseException, host: str, port: int) -> str:
    """A one-line explanation of *error* for the user (never a secret)."""
    where = f"{host}:{port}"
    if isinstance(error, StreamError):
        return str(error)
    if isinstance(error, ClientAuthenticationError):
        return (
            f"{where} refused the application credentials ({error}): "
            "check the client id and secret (CTRADER_CLIENT_ID, CTRADER_CLIENT_SECRET)"
        )
    if isinstance(error, AccessTokenInvalidError):
        return f"{where} refused the access token ({error}): check CTRADER_ACCESS_TOKEN or refresh it"
    if isinstance(error, AccountNotAuthorizedError):
        return f"the access token does not grant this account ({error}): check CTRADER_ACCOUNT_ID"
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


def tlsProblem(error: BaseException) -> str | None:
    """The reason of a TLS failure (OpenSSL or service_identity), or ``None``."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        module = type(current).__module__
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


#: Errors :func:`describeError` explains without a traceback being useful.
_EXPECTED = (StreamError, CTraderError, ConnectError, DNSLookupError, ConnectTimeoutError, ConnectionError)


def isExpected(error: BaseException) -> bool:
    """Whether *error* is one the user can act on from its one-line
    description (a bad setting, an unreachable host, a TLS failure), as
    opposed to a bug whose traceback is worth logging."""
    return isinstance(error, _EXPECTED) or tlsProblem(error) is not None
