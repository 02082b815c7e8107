# -*- test-case-name: tests.test_redis_streams,tests.test_redis_faults -*-
"""One connection to Redis, through txredisapi: :class:`RedisLink`.

txredisapi gives the protocol (Deferreds, pipelining: every command is
written at once and its reply fires its Deferred in order) and the
reconnecting pool (a ``ClientService`` with backoff). This module adds what
the publisher, the consumer and the leases need on top:

* a parsed, validated URL whose password never shows (:class:`RedisURL`);
* observers told when a connection becomes usable and when it is lost, so a
  publisher can resynchronize after every reconnect;
* :meth:`RedisLink.execute`: any command, by name and arguments (Streams
  commands such as ``XADD`` with explicit ids, ``XREADGROUP``,
  ``XAUTOCLAIM`` and ``XINFO`` go through it; txredisapi has no helpers for
  them), failing at once with :class:`~ctrader_twisted.redis.errors.RedisUnavailable` while there is no
  connection instead of waiting for one.

txredisapi imports the global reactor when it is imported: it is imported
here only when a link starts, so importing this module installs nothing
(twistd installs its reactor first).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import unquote, urlsplit

from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import Logger

from .errors import RedisConfigError, RedisUnavailable

__all__ = ["RedisURL", "RedisLink", "parseRedisURL"]


@dataclass(frozen=True)
class RedisURL:
    """Where Redis is: ``redis://[[user]:password@]host[:port][/db]`` or ``rediss://`` (TLS).

    The password is never part of ``repr`` or :attr:`safe`.
    """

    host: str
    port: int = 6379
    db: int = 0
    tls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def safe(self) -> str:
        """The URL with the password replaced by ``***`` (for logs and status lines)."""
        scheme = "rediss" if self.tls else "redis"
        auth = ""
        if self.username or self.password:
            auth = f"{self.username or ''}{':***' if self.password else ''}@"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{auth}{host}:{self.port}/{self.db}"


def parseRedisURL(url: str) -> RedisURL:
    """Parse and check a Redis URL.

    :raises RedisConfigError: a one-line reason, without the password.
    """
    if not isinstance(url, str) or not url.strip():
        raise RedisConfigError("--redis needs a URL such as redis://127.0.0.1:6379/0")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise RedisConfigError("--redis: the port must be an integer from 1 to 65535") from None
    if parts.scheme not in ("redis", "rediss"):
        raise RedisConfigError("--redis: the URL must start with redis:// or rediss://")
    if not parts.hostname:
        raise RedisConfigError("--redis: the URL has no host (redis://HOST:PORT/DB)")
    if port is not None and not 0 < port < 65536:
        raise RedisConfigError("--redis: the port must be an integer from 1 to 65535")
    path = parts.path.strip("/")
    if path:
        if not path.isdigit():
            raise RedisConfigError("--redis: the database must be a non-negative integer (redis://HOST:PORT/0)")
        db = int(path)
    else:
        db = 0
    return RedisURL(
        host=parts.hostname,
        port=port or 6379,
        db=db,
        tls=parts.scheme == "rediss",
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )


class RedisLink:
    """A reconnecting connection to Redis (one txredisapi connection).

    :param url: a URL (see :class:`RedisURL`) or a parsed one.
    :param reactor: the reactor (connecting, TLS); under twistd the global one.
    :param connectTimeout: seconds allowed for each connection attempt.
    :param replyTimeout: seconds allowed for a reply before the connection is
        dropped and re-made (``None``: wait; a paused server is then only
        slow, not gone).
    :param retryInitial: first delay between connection attempts, seconds.
    :param retryMax: longest delay between connection attempts, seconds.
    """

    _log = Logger()

    def __init__(
        self,
        url: str | RedisURL,
        reactor: Any,
        *,
        connectTimeout: float = 5.0,
        replyTimeout: float | None = None,
        retryInitial: float = 0.1,
        retryMax: float = 2.0,
    ) -> None:
        self.url = url if isinstance(url, RedisURL) else parseRedisURL(url)
        self.reactor = reactor
        self.connectTimeout = connectTimeout
        self.replyTimeout = replyTimeout
        self.retryInitial = retryInitial
        self.retryMax = retryMax
        self._factory: Any = None
        self._protocol: Any = None
        self._readyObservers: list[Callable[[], Any]] = []
        self._lostObservers: list[Callable[[], Any]] = []
        self._waiting: list[Deferred[None]] = []
        #: connections made so far (1 after the first, +1 per reconnect)
        self.connections = 0
        self._stopped = False

    def __repr__(self) -> str:
        state = "connected" if self.connected else "not connected"
        return f"<RedisLink {self.url.safe} {state}>"

    @property
    def connected(self) -> bool:
        """Whether a usable connection is up now."""
        return self._protocol is not None and bool(self._protocol.connected)

    def addReadyObserver(self, observer: Callable[[], Any]) -> None:
        """Call *observer* with no argument each time a connection becomes usable."""
        self._readyObservers.append(observer)

    def addLostObserver(self, observer: Callable[[], Any]) -> None:
        """Call *observer* with no argument each time the usable connection is lost."""
        self._lostObservers.append(observer)

    def whenConnected(self) -> Deferred[None]:
        """A Deferred firing when a usable connection is up (at once if it is)."""
        if self.connected:
            return succeed(None)
        d: Deferred[None] = Deferred(lambda d: self._waiting.remove(d) if d in self._waiting else None)
        self._waiting.append(d)
        return d

    def start(self) -> None:
        """Start connecting (and reconnecting after every loss until :meth:`stop`)."""
        if self._factory is not None:
            return
        import txredisapi  # the global reactor is installed by now (see the module docstring)
        from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
        from twisted.internet.ssl import optionsForClientTLS

        link = self

        class Factory(txredisapi.RedisFactory):  # type: ignore[misc]
            def addConnection(self, conn: Any) -> None:
                super().addConnection(conn)
                if conn in self.pool:
                    link._connectionUp(conn)

            def delConnection(self, conn: Any) -> None:
                super().delConnection(conn)
                link._connectionDown(conn)

        url = self.url
        factory = Factory(
            f"{url.host}:{url.port}", url.db, 1, isLazy=True, charset="utf-8",
            password=url.password, replyTimeout=self.replyTimeout, convertNumbers=False, username=url.username,
        )
        factory.initialDelay = self.retryInitial
        factory.maxDelay = self.retryMax
        factory.deferred.addErrback(self._refused)
        endpoint: Any = HostnameEndpoint(self.reactor, url.host, url.port, timeout=self.connectTimeout)
        if url.tls:
            endpoint = wrapClientTLS(optionsForClientTLS(url.host), endpoint)
        self._factory = factory
        factory.startConnecting(endpoint)

    def _refused(self, failure: Any) -> None:
        # txredisapi says "could not auth: <server's reason>" (never the password).
        self._log.error("Redis {url} refused the connection: {why}", url=self.url.safe, why=failure.getErrorMessage())

    def _connectionUp(self, conn: Any) -> None:
        self._protocol = conn
        self.connections += 1
        self._log.info("Connected to Redis {url}", url=self.url.safe)
        for observer in list(self._readyObservers):
            observer()
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.callback(None)

    def _connectionDown(self, conn: Any) -> None:
        if conn is not self._protocol:
            return
        self._protocol = None
        if not self._stopped:
            self._log.warn("Lost the connection to Redis {url}; reconnecting", url=self.url.safe)
        for observer in list(self._lostObservers):
            observer()

    def execute(self, *args: Any) -> Deferred[Any]:
        """Send one command (``"XADD", key, ...``); its Deferred fires with the reply.

        Commands are pipelined: each is written at once, replies come in order.
        Fails with :class:`~ctrader_twisted.redis.errors.RedisUnavailable` at once while not connected (or
        when the connection is lost before the reply), with txredisapi's
        ``ResponseError`` when Redis answers with an error.
        """
        protocol = self._protocol
        if protocol is None or not protocol.connected:
            return fail(RedisUnavailable(f"not connected to Redis {self.url.safe}"))
        try:
            d: Deferred[Any] = protocol.execute_command(*args)
        except Exception as error:  # txredisapi raises ConnectionError("Not connected") synchronously
            return fail(RedisUnavailable(f"Redis {self.url.safe}: {error}"))

        def lost(failure: Any) -> Any:
            import txredisapi

            if failure.check(txredisapi.ConnectionError) and not failure.check(txredisapi.ResponseError):
                raise RedisUnavailable(f"Redis {self.url.safe}: {failure.getErrorMessage()}")
            return failure

        return d.addErrback(lost)

    def stop(self) -> Deferred[None]:
        """Stop reconnecting and close the connection."""
        self._stopped = True
        factory, self._factory = self._factory, None
        waiting, self._waiting = self._waiting, []
        for waiter in waiting:
            waiter.errback(RedisUnavailable(f"the link to Redis {self.url.safe} was stopped"))
        if factory is None:
            return succeed(None)
        closing: Deferred[Any] = factory.disconnect()
        return closing.addCallback(lambda _: None)
