# -*- test-case-name: tests.test_options -*-
"""Option values shared by the console command and the twistd plugin.

argparse (:mod:`ctrader_twisted.cli`) converts ``--count`` and the like to
numbers itself; twistd (:mod:`ctrader_twisted.cli.tap`) hands over strings.
Both then check the values here, so both accept the same values and explain
a bad one in the same words: every check raises :class:`UsageError` with a
one-line message naming the option. Account ids, hosts and ports from the
environment and the config file are checked by :mod:`ctrader_twisted.cli.config`.
"""

from __future__ import annotations

import math
from typing import Iterable, Literal, TextIO, TypeVar, overload

from ..messages.OpenApiModelMessages_pb2 import ProtoOATrendbarPeriod

__all__ = ["UsageError", "positiveNumber", "portNumber", "splitNames", "parsePeriod", "periodOption", "periodNames",
           "openOutput"]

_Number = TypeVar("_Number", int, float)


class UsageError(ValueError):
    """A bad option value (exit status 2): the message is one line naming the option."""


@overload
def positiveNumber(kind: type[_Number], option: str, value: None) -> None: ...
@overload
def positiveNumber(kind: type[_Number], option: str, value: str | _Number) -> _Number: ...
def positiveNumber(kind: type[_Number], option: str, value: str | _Number | None) -> _Number | None:
    """*value* (text or number) as a positive *kind*, or ``None`` when not given.

    :raises UsageError: ``--<option> must be a positive number``.
    """
    if value is None:
        return None
    try:
        number = kind(value)
    except ValueError:
        raise UsageError(f"--{option} must be a positive number") from None
    if not math.isfinite(number) or number <= 0:
        raise UsageError(f"--{option} must be a positive number")
    return number


def portNumber(value: str | int | None) -> int | None:
    """``--port`` (text or number) as a port number, or ``None`` when not given.

    :raises UsageError: not an integer from 1 to 65535.
    """
    if value is None:
        return None
    try:
        port = int(value)
    except ValueError:
        raise UsageError("--port must be an integer from 1 to 65535") from None
    if not 0 < port < 65536:
        raise UsageError("--port must be an integer from 1 to 65535")
    return port


def splitNames(values: Iterable[str]) -> list[str]:
    """Names given as separate values and/or comma-separated, blanks dropped."""
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


def parsePeriod(name: str) -> int:
    """A trend bar period name (``M1``, ``m15``, ``H1``, ``D1``, ``W1``, ``MN1``) as its wire value.

    :raises ValueError: unknown name (the message lists the valid ones).
    """
    try:
        return int(ProtoOATrendbarPeriod.Value(name.strip().upper()))
    except ValueError:
        valid = ", ".join(ProtoOATrendbarPeriod.keys())
        raise ValueError(f"unknown trend bar period {name!r} (valid: {valid})") from None


def periodOption(option: str, name: str) -> int:
    """The trend bar period *name* given to ``--<option>``, as its wire value.

    :raises UsageError: ``--<option>: unknown trend bar period ...``.
    """
    try:
        return parsePeriod(name)
    except ValueError as error:
        raise UsageError(f"--{option}: {error}") from None


def periodNames(option: str, values: Iterable[str]) -> list[str]:
    """The period names given to ``--<option>`` (comma-separated), each checked.

    :raises UsageError: ``--<option>: unknown trend bar period ...``.
    """
    names = splitNames(values)
    for name in names:
        periodOption(option, name)
    return names


def openOutput(path: str, mode: Literal["a", "w"], newline: str | None = None) -> TextIO:
    """Open the ``--output`` file *path* to append or write (UTF-8; line-buffered when appending).

    :raises UsageError: ``cannot open <path>: <reason>``.
    """
    try:
        return open(path, mode, encoding="utf-8", buffering=1 if mode == "a" else -1, newline=newline)
    except OSError as error:
        raise UsageError(f"cannot open {path}: {error.strerror or error}") from None
