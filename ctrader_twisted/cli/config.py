# -*- test-case-name: tests.test_config -*-
"""Connection settings and credentials for the command line and the twistd plugin.

Every setting comes from the first of these that has it:

1. a command-line option;
2. an environment variable (``CTRADER_HOST``, ``CTRADER_PORT``,
   ``CTRADER_CLIENT_ID``, ``CTRADER_CLIENT_SECRET``, ``CTRADER_ACCESS_TOKEN``,
   ``CTRADER_REFRESH_TOKEN``, ``CTRADER_ACCOUNT_ID``);
3. a TOML config file: the one given with ``--config`` (or
   ``CTRADER_CONFIG``), else ``$XDG_CONFIG_HOME/ctrader-twisted/config.toml``
   (``~/.config/...``) when it exists.

With no host anywhere the command runs against the bundled simulator.

Tokens have one more source: the token file (``--token-file``,
``CTRADER_TOKEN_FILE``, ``token_file``; by default ``tokens.json`` beside the
default config file), written by ``ctrader-twisted login`` and after every
refresh (:mod:`ctrader_twisted.tokens`). Its tokens win over the configured
ones when nothing is configured, or when they replace the configured ones
(a refresh or a login since); configured tokens the file has never seen
are newer (pasted from the playground, say) and win.

Secrets (client secret, access and refresh tokens) are never part of a
``repr``, a log event or an error message: errors name the setting and where
it came from (:attr:`Settings.sources`: ``--port``, ``CTRADER_PORT`` or
``port in config file PATH``), never its value.
"""

from __future__ import annotations

import os
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..endpoints import EndPoints
from ..tokens import FileTokenStore, TokenStoreError, Tokens, configDirectory, defaultTokenPath, preferStored
from .status import docsUrl

__all__ = [
    "ConfigError",
    "Credentials",
    "Settings",
    "Application",
    "loadSettings",
    "loadApplication",
    "defaultConfigPath",
    "parseAccountIds",
    "resolveHost",
    "checkCaFile",
    "ENVIRONMENT",
    "OPTIONS",
]


class ConfigError(Exception):
    """Bad settings: the message is one line, meant for the user, and never
    holds a secret."""


#: Setting name to environment variable.
ENVIRONMENT: dict[str, str] = {
    "host": "CTRADER_HOST",
    "port": "CTRADER_PORT",
    "clientId": "CTRADER_CLIENT_ID",
    "clientSecret": "CTRADER_CLIENT_SECRET",
    "accessToken": "CTRADER_ACCESS_TOKEN",
    "refreshToken": "CTRADER_REFRESH_TOKEN",
    "accounts": "CTRADER_ACCOUNT_ID",
    "tokenFile": "CTRADER_TOKEN_FILE",
}

#: Config-file key to (setting name, expected type description).
_FILE_KEYS: dict[str, str] = {
    "host": "host",
    "port": "port",
    "websocket": "websocket",
    "ca_file": "caFile",
    "client_id": "clientId",
    "client_secret": "clientSecret",
    "access_token": "accessToken",
    "refresh_token": "refreshToken",
    "accounts": "accounts",
    "token_file": "tokenFile",
}

#: Setting name to its config-file key (the inverse of ``_FILE_KEYS``).
_FILE_KEY_OF: dict[str, str] = {name: key for key, name in _FILE_KEYS.items()}

_SECRETS = frozenset({"clientSecret", "accessToken", "refreshToken"})

#: Setting name to the command-line option (the console command and the twistd plugin spell them alike).
OPTIONS: dict[str, str] = {
    "host": "--host",
    "port": "--port",
    "websocket": "--websocket",
    "caFile": "--ca-file",
    "clientId": "--client-id",
    "clientSecret": "--client-secret",
    "accessToken": "--access-token",
    "refreshToken": "--refresh-token",
    "accounts": "--account",
    "tokenFile": "--token-file",
}

#: Host aliases accepted wherever a host is.
HOST_ALIASES: dict[str, str] = {
    "demo": EndPoints.PROTOBUF_DEMO_HOST,
    "live": EndPoints.PROTOBUF_LIVE_HOST,
}


@dataclass(frozen=True)
class Credentials:
    """Application credentials and the access token of the trading accounts.

    :ivar stored: the tokens come from the token file (:attr:`tokens`).
    :ivar tokens: the token file's record when :attr:`stored`, else ``None``.
    """

    clientId: str
    clientSecret: str = field(repr=False)
    accessToken: str = field(repr=False)
    refreshToken: str | None = field(default=None, repr=False)
    stored: bool = False
    tokens: Tokens | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Settings:
    """Where to connect and as whom.

    :ivar host: server host, or ``None`` for the bundled simulator.
    :ivar port: server port.
    :ivar websocket: use ``wss://`` instead of TLS TCP.
    :ivar caFile: PEM file of the CA(s) to trust instead of the platform's.
    :ivar credentials: ``None`` for the simulator (it has its own).
    :ivar accountIds: accounts to authorize; empty means every account of the
        access token.
    :ivar configPath: the config file read, if any.
    :ivar warnings: one-line warnings for the user (for example a config file
        holding secrets that other users can read).
    :ivar tokenFile: the token file (read and written for a remote host).
    :ivar sources: where each setting given came from, by setting name, as
        the user would name it: ``"--account"``, ``"CTRADER_ACCOUNT_ID"``,
        ``"accounts in config file PATH"``, ``"the token file PATH"``.
    """

    host: str | None
    port: int = EndPoints.PROTOBUF_PORT
    websocket: bool = False
    caFile: str | None = None
    credentials: Credentials | None = None
    accountIds: tuple[int, ...] = ()
    configPath: str | None = None
    warnings: tuple[str, ...] = ()
    tokenFile: str | None = None
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    @property
    def simulated(self) -> bool:
        """Whether the bundled simulator is the server."""
        return self.host is None

    def tokenStore(self) -> FileTokenStore | None:
        """The token file's store for these credentials (``None`` for the simulator)."""
        if self.credentials is None or self.tokenFile is None:
            return None
        return FileTokenStore(self.tokenFile, key=self.credentials.clientId)


@dataclass(frozen=True)
class Application:
    """What ``ctrader-twisted login`` needs: the application, where its tokens
    go, and the tokens configured now (the new ones replace them).

    :ivar host: the configured host (to list the accounts of the new tokens),
        or ``None``.
    """

    clientId: str
    clientSecret: str = field(repr=False)
    tokenFile: str
    accessToken: str | None = field(default=None, repr=False)
    refreshToken: str | None = field(default=None, repr=False)
    host: str | None = None
    port: int = EndPoints.PROTOBUF_PORT
    websocket: bool = False
    caFile: str | None = None
    configPath: str | None = None
    warnings: tuple[str, ...] = ()


def defaultConfigPath(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CONFIG_HOME/ctrader-twisted/config.toml`` (``~/.config`` by default)."""
    return configDirectory(environ) / "config.toml"


def resolveHost(host: str) -> str:
    """Expand the ``demo`` and ``live`` aliases."""
    return HOST_ALIASES.get(host.lower(), host)


def parseAccountIds(value: Any, source: str) -> tuple[int, ...]:
    """Account ids from an int, a list of ints or a comma-separated string.

    :param source: where *value* came from, as the user names it
        (``"--account"``, ``"CTRADER_ACCOUNT_ID"``...): the error starts with it.
    :raises ConfigError: not positive integers.
    """

    def bad(item: Any) -> ConfigError:
        return ConfigError(f"{source} must list account ids (positive integers, comma-separated), not {item!r}")

    if isinstance(value, bool):
        raise bad(value)
    if isinstance(value, int):
        items: list[Any] = [value]
    elif isinstance(value, str):
        items = [part.strip() for part in value.split(",") if part.strip()]
        if not items:
            raise bad(value)
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise bad(value)
    ids = []
    for item in items:
        if isinstance(item, bool) or isinstance(item, float):
            raise bad(item)
        try:
            number = int(item)
        except (TypeError, ValueError):
            raise bad(item) from None
        if number <= 0:
            raise bad(item)
        ids.append(number)
    return tuple(dict.fromkeys(ids))


def _readConfig(path: Path) -> tuple[dict[str, Any], list[str]]:
    """The settings of a TOML file, by setting name, and warnings."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except OSError as error:
        raise ConfigError(f"cannot read config file {path}: {error.strerror or error}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"malformed config file {path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as error:
        # The message gives the position only (line and column), never the text.
        raise ConfigError(f"malformed config file {path}: {error}") from None
    section = data.get("ctrader", data)
    if not isinstance(section, dict):
        raise ConfigError(f"malformed config file {path}: [ctrader] must be a table")
    settings: dict[str, Any] = {}
    for key, value in section.items():
        name = _FILE_KEYS.get(key)
        if name is None:
            known = ", ".join(sorted(_FILE_KEYS))
            raise ConfigError(f"config file {path}: unknown key {key!r} (known keys: {known})")
        where = f"{key} in config file {path}"
        if name == "port":
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{where} must be an integer from 1 to 65535")
        elif name == "websocket":
            if not isinstance(value, bool):
                raise ConfigError(f"{where} must be true or false")
        elif name == "accounts":
            value = parseAccountIds(value, where)
        elif not isinstance(value, str) or not value:
            raise ConfigError(f"{where} must be a non-empty string")
        settings[name] = value
    warnings = []
    if any(name in _SECRETS for name in settings):
        try:
            mode = path.stat().st_mode
        except OSError:
            mode = 0
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            warnings.append(f"config file {path} holds secrets and other users can read it: chmod 600 it")
    return settings, warnings


class _Sources:
    """The settings of the options, the environment and the config file,
    looked up in that order (see the module docs)."""

    def __init__(
        self,
        options: Mapping[str, Any] | None,
        environ: Mapping[str, str] | None,
        configPath: str | os.PathLike[str] | None,
    ) -> None:
        environ = os.environ if environ is None else environ
        self.environ = environ
        self.options = {k: v for k, v in (options or {}).items() if v is not None}
        path: Path | None
        if configPath is None and environ.get("CTRADER_CONFIG"):
            configPath = environ["CTRADER_CONFIG"]
        if configPath is not None:
            path = Path(configPath).expanduser()
            self.file, warnings = _readConfig(path)
        else:
            path = defaultConfigPath(environ)
            if path.is_file():
                self.file, warnings = _readConfig(path)
            else:
                path, self.file, warnings = None, {}, []
        self.path = path
        self.warnings = tuple(warnings)
        self.env: dict[str, Any] = {}
        for name, variable in ENVIRONMENT.items():
            value = environ.get(variable)
            if value:
                self.env[name] = value

    def pick(self, name: str) -> tuple[Any, str]:
        """The value of setting *name* and where it came from, as the user
        names it (``--port``, ``CTRADER_PORT``, ``port in config file PATH``);
        ``None, ""`` if unset."""
        if name in self.options:
            return self.options[name], OPTIONS[name]
        if name in self.env:
            return self.env[name], ENVIRONMENT[name]
        if name in self.file:
            return self.file[name], f"{_FILE_KEY_OF[name]} in config file {self.path}"
        return None, ""

    def sources(self) -> dict[str, str]:
        """Where each setting given came from (:attr:`Settings.sources`)."""
        found = {}
        for name in OPTIONS:
            _, source = self.pick(name)
            if source:
                found[name] = source
        return found

    def port(self) -> int:
        value, source = self.pick("port")
        if value is None:
            return EndPoints.PROTOBUF_PORT
        try:
            port = int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{source} must be an integer from 1 to 65535, not {value!r}") from None
        if not 0 < port < 65536:
            raise ConfigError(f"{source} must be an integer from 1 to 65535, not {value!r}")
        return port

    def caFile(self) -> str | None:
        caFile, source = self.pick("caFile")
        if caFile is None:
            return None
        caFile = str(Path(caFile).expanduser())
        checkCaFile(caFile, source)
        return caFile

    def tokenFile(self) -> str:
        value, _ = self.pick("tokenFile")
        return str(Path(value).expanduser()) if value else str(defaultTokenPath(self.environ))

    def required(self, name: str, what: str, forWhat: str) -> str:
        value, _ = self.pick(name)
        if not value:
            variable = ENVIRONMENT[name]
            key = _FILE_KEY_OF[name]
            raise ConfigError(
                f"no {what} for {forWhat}: set {variable}, or {key} in the config file "
                f"(see {docsUrl('cli', 'credentials-and-configuration')})"
            )
        return str(value)

    def optional(self, name: str) -> str | None:
        value, _ = self.pick(name)
        return str(value) if value else None


def loadSettings(
    options: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    configPath: str | os.PathLike[str] | None = None,
) -> Settings:
    """Merge options, environment, config file and token file into :class:`Settings`.

    :param options: setting name (``host``, ``port``, ``websocket``,
        ``caFile``, ``clientId``, ``clientSecret``, ``accessToken``,
        ``refreshToken``, ``accounts``, ``tokenFile``) to value; ``None``
        values are ignored.
    :param environ: environment variables (``os.environ`` by default).
    :param configPath: config file to read (it must exist); by default
        ``CTRADER_CONFIG`` or :func:`defaultConfigPath` when it exists.
    :raises ConfigError: malformed or incomplete settings, or an unreadable
        token file.
    """
    sources = _Sources(options, environ, configPath)
    host, _ = sources.pick("host")
    port = sources.port()
    websocket, _ = sources.pick("websocket")
    caFile = sources.caFile()
    accountsValue, accountsSource = sources.pick("accounts")
    accountIds = () if accountsValue is None else parseAccountIds(accountsValue, accountsSource)
    path = sources.path
    tokenFile = sources.tokenFile()

    if host is None:
        return Settings(
            host=None,
            websocket=bool(websocket),
            accountIds=accountIds,
            configPath=str(path) if path else None,
            warnings=sources.warnings,
            tokenFile=tokenFile,
            sources=sources.sources(),
        )
    host = resolveHost(str(host))
    clientId = sources.required("clientId", "client id", host)
    clientSecret = sources.required("clientSecret", "client secret", host)
    accessToken = sources.optional("accessToken")
    refreshToken = sources.optional("refreshToken")
    try:
        stored = FileTokenStore(tokenFile, key=clientId).load()
    except TokenStoreError as error:
        raise ConfigError(str(error)) from None
    if stored is not None and preferStored(stored, accessToken, refreshToken):
        credentials = Credentials(clientId, clientSecret, stored.accessToken, stored.refreshToken, True, stored)
    else:
        if accessToken is None:
            raise ConfigError(
                f"no access token for {host}: run `ctrader-twisted login` (tokens go to {tokenFile}), or set "
                f"CTRADER_ACCESS_TOKEN, or access_token in the config file (see {docsUrl('credentials')})"
            )
        credentials = Credentials(clientId, clientSecret, accessToken, refreshToken)
    given = sources.sources()
    if credentials.stored:
        given["accessToken"] = given["refreshToken"] = f"the token file {tokenFile}"
    return Settings(
        host=host,
        port=port,
        websocket=bool(websocket),
        caFile=caFile,
        credentials=credentials,
        accountIds=accountIds,
        configPath=str(path) if path else None,
        warnings=sources.warnings,
        tokenFile=tokenFile,
        sources=given,
    )


def checkCaFile(path: str, source: str) -> None:
    """Check that the CA file *path* (given by *source*) holds at least one
    PEM certificate, as a TLS context will need.

    :raises ConfigError: missing, unreadable, or without a certificate; the
        message names the file and where it was given.
    """
    from cryptography.x509 import load_pem_x509_certificates

    given = f"the CA file {path} (from {source})"
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{given} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"{given} is a directory: give a PEM file of CA certificates") from None
    except OSError as error:
        raise ConfigError(f"cannot read {given}: {error.strerror or error}") from None
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise ConfigError(
            f"{given} holds no PEM certificate (no '-----BEGIN CERTIFICATE-----' block): "
            "give the CA certificate(s) of the server in PEM format"
        )
    try:
        load_pem_x509_certificates(data)
    except ValueError:
        raise ConfigError(f"{given} holds a malformed PEM certificate: give the server's CA certificate(s)") from None


def loadApplication(
    options: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    configPath: str | os.PathLike[str] | None = None,
) -> Application:
    """The settings ``ctrader-twisted login`` needs (same sources as :func:`loadSettings`).

    :raises ConfigError: no client id or secret, or malformed settings.
    """
    sources = _Sources(options, environ, configPath)
    host, _ = sources.pick("host")
    websocket, _ = sources.pick("websocket")
    return Application(
        clientId=sources.required("clientId", "client id", "the authorization"),
        clientSecret=sources.required("clientSecret", "client secret", "the authorization"),
        tokenFile=sources.tokenFile(),
        accessToken=sources.optional("accessToken"),
        refreshToken=sources.optional("refreshToken"),
        host=resolveHost(str(host)) if host else None,
        port=sources.port(),
        websocket=bool(websocket),
        caFile=sources.caFile(),
        configPath=str(sources.path) if sources.path else None,
        warnings=sources.warnings,
    )
