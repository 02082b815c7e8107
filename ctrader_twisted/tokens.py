# -*- test-case-name: tests.test_tokens -*-
"""OAuth tokens and where they are kept between runs.

A refresh token works once: after a refresh, only the new pair is valid. A
program that renews its tokens must therefore keep the new pair before the
old one is gone for good, or the next run cannot authenticate. This module
holds the pieces for that:

* :class:`Tokens`: an access token, its refresh token and when it expires
  (secrets never in a ``repr``);
* :class:`ITokenStore`: where tokens are kept, with two implementations:
  :class:`FileTokenStore` (a JSON file, mode 0600, replaced atomically; by
  default ``~/.config/ctrader-twisted/tokens.json``) and
  :class:`MemoryTokenStore`.

Stores are synchronous on purpose: ``save`` returns once the tokens are on
disk, so a caller that saves in a refresh callback never uses a new token the
store has not kept. A store backed by a slow service should keep a local copy
first.

Each saved pair records fingerprints (SHA-256, never the tokens themselves) of
the tokens it replaces (``replaces`` of :class:`Tokens`). That is how the command line
tells whether stored tokens are newer than the ones in a config file or the
environment (see :func:`preferStored`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import tempfile
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Mapping

from twisted.logger import Logger
from zope.interface import Interface, implementer

from .errors import CTraderError

__all__ = [
    "Tokens",
    "ITokenStore",
    "FileTokenStore",
    "MemoryTokenStore",
    "TokenStoreError",
    "configDirectory",
    "defaultTokenPath",
    "fingerprint",
    "preferStored",
    "MAX_TOKEN_LENGTH",
    "MAX_EXPIRES_IN",
]

_log = Logger()

#: Longest token accepted from a token service or a token file (characters).
MAX_TOKEN_LENGTH = 4096
#: Largest ``expiresIn`` accepted (seconds; ten years). The real service
#: issues access tokens for 2,628,000 s (about 30 days).
MAX_EXPIRES_IN = 10 * 366 * 86400
#: How many replaced-token fingerprints a stored pair keeps (oldest dropped).
MAX_REPLACED = 32
#: Largest token file read (bytes).
MAX_FILE_SIZE = 1 << 20

_FORMAT = "ctrader-twisted tokens"
_VERSION = 1

#: Token-answer keys, camelCase (the cTrader service) to snake_case (OAuth 2.0).
ALIASES: dict[str, str] = {
    "accessToken": "access_token",
    "refreshToken": "refresh_token",
    "tokenType": "token_type",
    "expiresIn": "expires_in",
}


class TokenStoreError(CTraderError):
    """A token store cannot read or write its tokens. The message names the
    file and the reason, never a token."""


def fingerprint(token: str) -> str:
    """A SHA-256 fingerprint of *token* (hex, 32 characters): lets a store
    recognise a token it replaced without keeping it."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _token(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string")
    if len(value) > MAX_TOKEN_LENGTH:
        raise ValueError(f"{name} is longer than {MAX_TOKEN_LENGTH} characters")
    if not value.isprintable() or any(c.isspace() for c in value):
        raise ValueError(f"{name} holds spaces or control characters")
    return value


def _expiresIn(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("expiresIn must be a number of seconds")
    if isinstance(value, float) and (not math.isfinite(value) or value != int(value)):
        raise ValueError("expiresIn must be a whole number of seconds")
    if not 0 < value <= MAX_EXPIRES_IN:
        raise ValueError(f"expiresIn must be between 1 and {MAX_EXPIRES_IN} seconds")
    return int(value)


@dataclass(frozen=True)
class Tokens:
    """An access token, its refresh token and their lifetime.

    Build one with :meth:`fromAnswer` (a token service's JSON answer),
    :meth:`fromRefreshRes` (a ``ProtoOARefreshTokenRes``) or
    :meth:`fromJson` (a stored record). The tokens are secrets: they are not
    part of the ``repr``.

    :ivar accessToken: authorizes trading accounts (``ProtoOAAccountAuthReq``).
    :ivar refreshToken: renews the pair, once.
    :ivar expiresIn: the access token's lifetime as sent, in seconds.
    :ivar expiresAt: when the access token expires (aware, UTC).
    :ivar tokenType: as sent (``"bearer"``).
    :ivar replaces: fingerprints (:func:`fingerprint`) of the tokens this pair
        replaces, newest last.
    """

    accessToken: str = field(repr=False)
    refreshToken: str = field(repr=False)
    expiresIn: int
    expiresAt: datetime
    tokenType: str = "bearer"
    replaces: tuple[str, ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        _token(self.accessToken, "accessToken")
        _token(self.refreshToken, "refreshToken")
        _expiresIn(self.expiresIn)
        if not isinstance(self.expiresAt, datetime) or self.expiresAt.tzinfo is None:
            raise ValueError("expiresAt must be an aware datetime")
        if not isinstance(self.tokenType, str) or len(self.tokenType) > 64:
            raise ValueError("tokenType must be a short string")

    # --- construction ------------------------------------------------------------------

    @classmethod
    def fromAnswer(cls, answer: Mapping[str, Any], now: float) -> Tokens:
        """The tokens of a token service's successful JSON answer.

        Both spellings are accepted: ``accessToken``/``refreshToken``/
        ``tokenType``/``expiresIn`` (the cTrader service) and their
        snake_case forms.

        :param now: the time of the answer (POSIX seconds) for ``expiresAt``.
        :raises ValueError: a field is missing or out of bounds (the message
            names the field, never its value).
        """

        def get(name: str) -> Any:
            value = answer.get(name)
            return answer.get(ALIASES[name]) if value is None else value

        expiresIn = _expiresIn(get("expiresIn"))
        tokenType = get("tokenType")
        return cls(
            accessToken=_token(get("accessToken"), "accessToken"),
            refreshToken=_token(get("refreshToken"), "refreshToken"),
            expiresIn=expiresIn,
            expiresAt=_utc(now + expiresIn),
            tokenType=tokenType if isinstance(tokenType, str) and tokenType else "bearer",
        )

    @classmethod
    def fromRefreshRes(cls, res: Any, now: float) -> Tokens:
        """The tokens of a ``ProtoOARefreshTokenRes`` received at *now* (POSIX seconds).

        :raises ValueError: a field is out of bounds.
        """
        return cls.fromAnswer(
            {
                "accessToken": res.accessToken,
                "refreshToken": res.refreshToken,
                "tokenType": res.tokenType,
                "expiresIn": res.expiresIn,
            },
            now,
        )

    @classmethod
    def fromJson(cls, record: Any) -> Tokens:
        """The tokens of a record written by :meth:`toJson`.

        :raises ValueError: the record is malformed (the message never holds a token).
        """
        if not isinstance(record, dict):
            raise ValueError("a token record must be an object")
        expiresAt = record.get("expiresAt")
        try:
            when = datetime.fromisoformat(expiresAt) if isinstance(expiresAt, str) else None
        except ValueError:
            when = None
        if when is None or when.tzinfo is None:
            raise ValueError("expiresAt must be an ISO 8601 time with an offset")
        replaces = record.get("replaces", [])
        if not isinstance(replaces, list) or not all(isinstance(r, str) and len(r) <= 128 for r in replaces):
            raise ValueError("replaces must be a list of fingerprints")
        tokenType = record.get("tokenType", "bearer")
        return cls(
            accessToken=_token(record.get("accessToken"), "accessToken"),
            refreshToken=_token(record.get("refreshToken"), "refreshToken"),
            expiresIn=_expiresIn(record.get("expiresIn")),
            expiresAt=when.astimezone(timezone.utc),
            tokenType=tokenType if isinstance(tokenType, str) else "bearer",
            replaces=tuple(replaces[-MAX_REPLACED:]),
        )

    def toJson(self) -> dict[str, Any]:
        """A JSON-ready record (it holds the tokens: keep it private)."""
        return {
            "accessToken": self.accessToken,
            "refreshToken": self.refreshToken,
            "tokenType": self.tokenType,
            "expiresIn": self.expiresIn,
            "expiresAt": self.expiresAt.astimezone(timezone.utc).isoformat(),
            "replaces": list(self.replaces),
        }

    # --- lineage ------------------------------------------------------------------------

    def replacing(self, *tokens: str | None) -> Tokens:
        """A copy that also records *tokens* (access or refresh tokens; ``None``
        ignored) as replaced by this pair."""
        marks = list(self.replaces)
        for token in tokens:
            if token:
                mark = fingerprint(token)
                if mark not in marks:
                    marks.append(mark)
        return replace(self, replaces=tuple(marks[-MAX_REPLACED:]))

    def succeeds(self, token: str) -> bool:
        """Whether this pair replaces *token* (directly or through earlier refreshes)."""
        return fingerprint(token) in self.replaces

    def expired(self, now: float) -> bool:
        """Whether the access token has expired at *now* (POSIX seconds)."""
        return now >= self.expiresAt.timestamp()


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, timezone.utc)


def preferStored(stored: Tokens | None, accessToken: str | None, refreshToken: str | None) -> bool:
    """Whether *stored* tokens win over configured ones (an option, the
    environment or a config file).

    They win when nothing is configured, when they are the configured tokens,
    or when they replace them (a refresh or ``ctrader-twisted login`` after
    the configuration was written). Configured tokens the store has never seen
    are newer (say, pasted from the playground): they win.
    """
    if stored is None:
        return False
    configured = [t for t in (accessToken, refreshToken) if t]
    if not configured:
        return True
    return any(t in (stored.accessToken, stored.refreshToken) or stored.succeeds(t) for t in configured)


# --- stores -------------------------------------------------------------------------------


class ITokenStore(Interface):
    """Where an application's tokens are kept between runs.

    Both methods are synchronous: :meth:`save` returns once the tokens are
    kept, so the caller may then use them.
    """

    def load() -> Tokens | None:
        """The kept tokens, or ``None`` when there are none.

        :raises TokenStoreError: the tokens cannot be read.
        """

    def save(tokens: Tokens) -> None:
        """Keep *tokens* in place of the previous ones.

        :raises TokenStoreError: they could not be kept (the previous ones
            are then unchanged).
        """


@implementer(ITokenStore)
class MemoryTokenStore:
    """Keeps tokens in memory (tests, or a program that stores them itself).

    :ivar tokens: the kept tokens, or ``None``.
    :ivar saves: how many times :meth:`save` was called.
    """

    def __init__(self, tokens: Tokens | None = None) -> None:
        self.tokens = tokens
        self.saves = 0

    def __repr__(self) -> str:
        return f"<MemoryTokenStore {'holding tokens' if self.tokens else 'empty'}>"

    def load(self) -> Tokens | None:
        """The kept tokens, or ``None``."""
        return self.tokens

    def save(self, tokens: Tokens) -> None:
        """Keep *tokens*."""
        if not isinstance(tokens, Tokens):
            raise TypeError(f"save() takes Tokens, not {type(tokens).__name__}")
        self.tokens = tokens
        self.saves += 1


def configDirectory(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CONFIG_HOME/ctrader-twisted`` (``~/.config/ctrader-twisted`` by default)."""
    environ = os.environ if environ is None else environ
    base = environ.get("XDG_CONFIG_HOME") or os.path.join(environ.get("HOME") or str(Path.home()), ".config")
    return Path(base) / "ctrader-twisted"


def defaultTokenPath(environ: Mapping[str, str] | None = None) -> Path:
    """``tokens.json`` in :func:`configDirectory`, beside the command line's config file."""
    return configDirectory(environ) / "tokens.json"


@implementer(ITokenStore)
class FileTokenStore:
    """Keeps tokens in a JSON file, one entry per application (client id).

    Writes are atomic: the new content goes to a temporary file in the same
    directory (mode 0600, flushed to disk), which then replaces the old file
    (``os.replace``); a failed write leaves the old file as it was. The
    directory is created with mode 0700 when missing. Writers of the same
    file are serialized with a lock file (POSIX ``flock``) so that two
    programs saving tokens of different applications keep both.

    :param path: the file (``~`` expanded); :func:`defaultTokenPath` when ``None``.
    :param key: the entry of this store in the file: the application's client id.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, key: str = "default") -> None:
        if not isinstance(key, str) or not key:
            raise ValueError("key must be a non-empty string")
        self.path = Path(path).expanduser() if path is not None else defaultTokenPath()
        self.key = key

    def __repr__(self) -> str:
        return f"<FileTokenStore {str(self.path)!r} key={self.key!r}>"

    def load(self) -> Tokens | None:
        """The tokens kept for the store's *key*, or ``None`` (no file, or no entry).

        :raises TokenStoreError: the file cannot be read or is malformed.
        """
        entries = self._read()
        if entries is None or self.key not in entries:
            return None
        try:
            return Tokens.fromJson(entries[self.key])
        except ValueError as error:
            raise TokenStoreError(f"token file {self.path}: the entry of {self.key!r} is malformed ({error})") from None

    def save(self, tokens: Tokens) -> None:
        """Keep *tokens* for the store's *key*; other applications' entries are kept.

        A malformed existing file is moved aside to ``<name>.bad`` (and a
        warning logged) rather than blocking the save: the new tokens may be
        the only valid ones left.

        :raises TokenStoreError: the file could not be written (the old one
            is unchanged).
        """
        if not isinstance(tokens, Tokens):
            raise TypeError(f"save() takes Tokens, not {type(tokens).__name__}")
        directory = self.path.parent
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as error:
            raise TokenStoreError(f"cannot create {directory}: {error.strerror or error}") from None
        with self._locked():
            try:
                entries = self._read() or {}
            except TokenStoreError as error:
                aside = self.path.with_name(self.path.name + ".bad")
                _log.warn("{error}; moved aside to {aside}", error=str(error), aside=str(aside))
                try:
                    os.replace(self.path, aside)
                except OSError as moveError:
                    raise TokenStoreError(
                        f"{error}; cannot move it aside: {moveError.strerror or moveError}"
                    ) from None
                entries = {}
            entries[self.key] = tokens.toJson()
            document = {"format": _FORMAT, "version": _VERSION, "applications": entries}
            self._write(json.dumps(document, indent=2, sort_keys=True).encode("utf-8") + b"\n")

    # --- file handling ----------------------------------------------------------------

    def _read(self) -> dict[str, Any] | None:
        path = self.path
        try:
            with open(path, "rb") as f:
                raw = f.read(MAX_FILE_SIZE + 1)
        except (FileNotFoundError, NotADirectoryError):  # no such file (save() says why it cannot write one)
            return None
        except OSError as error:
            raise TokenStoreError(f"cannot read token file {path}: {error.strerror or error}") from None
        if len(raw) > MAX_FILE_SIZE:
            raise TokenStoreError(f"token file {path} is larger than {MAX_FILE_SIZE} bytes")
        try:
            document = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            # The message never quotes the content: it holds secrets.
            raise TokenStoreError(f"token file {path} is malformed (not UTF-8 JSON)") from None
        if (
            not isinstance(document, dict)
            or document.get("format") != _FORMAT
            or not isinstance(document.get("applications"), dict)
        ):
            raise TokenStoreError(f"token file {path} is malformed (not a ctrader-twisted token file)")
        if document.get("version") != _VERSION:
            raise TokenStoreError(f"token file {path} has unsupported version {document.get('version')!r}")
        return document["applications"]

    def _write(self, data: bytes) -> None:
        directory = self.path.parent
        fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{self.path.name}.", suffix=".tmp")
        try:
            try:
                os.fchmod(fd, 0o600)
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temporary, self.path)
        except OSError as error:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise TokenStoreError(f"cannot write token file {self.path}: {error.strerror or error}") from None
        _syncDirectory(directory)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock
            yield
            return
        lockPath = self.path.with_name(self.path.name + ".lock")
        try:
            fd = os.open(lockPath, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as error:
            raise TokenStoreError(f"cannot open lock file {lockPath}: {error.strerror or error}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock


def _syncDirectory(directory: Path) -> None:
    """Flush the directory entry of a replaced file to disk (best effort)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
