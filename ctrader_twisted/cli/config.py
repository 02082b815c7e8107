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

Secrets (client secret, access and refresh tokens) are never part of a
``repr``, a log event or an error message: errors name the setting and where
it came from, never its value.
"""

from __future__ import annotations

import os
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..endpoints import EndPoints

__all__ = [
    "ConfigError",
    "Credentials",
    "Settings",
    "loadSettings",
    "defaultConfigPath",
    "parseAccountIds",
    "resolveHost",
    "ENVIRONMENT",
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
}

_SECRETS = frozenset({"clientSecret", "accessToken", "refreshToken"})

#: Host aliases accepted wherever a host is.
HOST_ALIASES: dict[str, str] = {
    "demo": EndPoints.PROTOBUF_DEMO_HOST,
    "live": EndPoints.PROTOBUF_LIVE_HOST,
}


@dataclass(frozen=True)
class Credentials:
    """Application credentials and the access token of the trading accounts."""

    clientId: str
    clientSecret: str = field(repr=False)
    accessToken: str = field(repr=False)
    refreshToken: str | None = field(default=None, repr=False)


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
    """

    host: str | None
    port: int = EndPoints.PROTOBUF_PORT
    websocket: bool = False
    caFile: str | None = None
    credentials: Credentials | None = None
    accountIds: tuple[int, ...] = ()
    configPath: str | None = None
    warnings: tuple[str, ...] = ()

    @property
    def simulated(self) -> bool:
        """Whether the bundled simulator is the server."""
        return self.host is None


def defaultConfigPath(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CONFIG_HOME/ctrader-twisted/config.toml`` (``~/.config`` by default)."""
    environ = os.environ if environ is None else environ
    base = environ.get("XDG_CONFIG_HOME") or os.path.join(environ.get("HOME") or str(Path.home()), ".config")
    return Path(base) / "ctrader-twisted" / "config.toml"


def resolveHost(host: str) -> str:
    """Expand the ``demo`` and ``live`` aliases."""
    return HOST_ALIASES.get(host.lower(), host)


def parseAccountIds(value: Any, source: str) -> tuple[int, ...]:
    """Account ids from an int, a list of ints or a comma-separated string.

    :raises ConfigError: not positive integers.
    """
    if isinstance(value, bool):
        raise ConfigError(f"{source}: account ids must be positive integers")
    if isinstance(value, int):
        items: list[Any] = [value]
    elif isinstance(value, str):
        items = [part.strip() for part in value.split(",") if part.strip()]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise ConfigError(f"{source}: account ids must be positive integers")
    ids = []
    for item in items:
        if isinstance(item, bool):
            raise ConfigError(f"{source}: account ids must be positive integers")
        try:
            number = int(item)
        except (TypeError, ValueError):
            raise ConfigError(f"{source}: account ids must be positive integers") from None
        if number <= 0:
            raise ConfigError(f"{source}: account ids must be positive integers")
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
        where = f"config file {path}: {key!r}"
        if name == "port":
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{where} must be an integer")
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


def loadSettings(
    options: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    configPath: str | os.PathLike[str] | None = None,
) -> Settings:
    """Merge options, environment and config file into :class:`Settings`.

    :param options: setting name (``host``, ``port``, ``websocket``,
        ``caFile``, ``clientId``, ``clientSecret``, ``accessToken``,
        ``refreshToken``, ``accounts``) to value; ``None`` values are ignored.
    :param environ: environment variables (``os.environ`` by default).
    :param configPath: config file to read (it must exist); by default
        ``CTRADER_CONFIG`` or :func:`defaultConfigPath` when it exists.
    :raises ConfigError: malformed or incomplete settings.
    """
    environ = os.environ if environ is None else environ
    options = {k: v for k, v in (options or {}).items() if v is not None}
    path: Path | None
    if configPath is None and environ.get("CTRADER_CONFIG"):
        configPath = environ["CTRADER_CONFIG"]
    if configPath is not None:
        path = Path(configPath).expanduser()
        fileSettings, warnings = _readConfig(path)
    else:
        path = defaultConfigPath(environ)
        if path.is_file():
            fileSettings, warnings = _readConfig(path)
        else:
            path, fileSettings, warnings = None, {}, []

    envSettings: dict[str, Any] = {}
    for name, variable in ENVIRONMENT.items():
        value = environ.get(variable)
        if value:
            envSettings[name] = value

    def pick(name: str) -> tuple[Any, str]:
        if name in options:
            return options[name], "option"
        if name in envSettings:
            return envSettings[name], ENVIRONMENT[name]
        if name in fileSettings:
            return fileSettings[name], f"config file {path}"
        return None, ""

    host, _ = pick("host")
    portValue, portSource = pick("port")
    port = EndPoints.PROTOBUF_PORT
    if portValue is not None:
        try:
            port = int(portValue)
        except (TypeError, ValueError):
            raise ConfigError(f"port ({portSource}) must be an integer from 1 to 65535") from None
        if not 0 < port < 65536:
            raise ConfigError(f"port ({portSource}) must be an integer from 1 to 65535")
    websocket, _ = pick("websocket")
    caFile, caSource = pick("caFile")
    if caFile is not None:
        caFile = str(Path(caFile).expanduser())
        if not os.path.isfile(caFile):
            raise ConfigError(f"CA file {caFile} ({caSource}) does not exist")
    accountsValue, accountsSource = pick("accounts")
    accountIds = () if accountsValue is None else parseAccountIds(accountsValue, accountsSource)

    if host is None:
        return Settings(
            host=None,
            websocket=bool(websocket),
            accountIds=accountIds,
            configPath=str(path) if path else None,
            warnings=tuple(warnings),
        )
    host = resolveHost(str(host))
    values = {}
    for name, what in (
        ("clientId", "client id"),
        ("clientSecret", "client secret"),
        ("accessToken", "access token"),
    ):
        value, _ = pick(name)
        if not value:
            variable = ENVIRONMENT[name]
            key = next(k for k, v in _FILE_KEYS.items() if v == name)
            raise ConfigError(
                f"no {what} for {host}: set {variable} or {key} in the config file (see docs/cli.rst)"
            )
        values[name] = str(value)
    refreshToken, _ = pick("refreshToken")
    return Settings(
        host=host,
        port=port,
        websocket=bool(websocket),
        caFile=caFile,
        credentials=Credentials(refreshToken=str(refreshToken) if refreshToken else None, **values),
        accountIds=accountIds,
        configPath=str(path) if path else None,
        warnings=tuple(warnings),
    )
