# -*- test-case-name: tests.test_redis_stream -*-
"""The ``--redis`` sink of the ``stream`` command and the twistd plugin.

:class:`RedisSink` owns a :class:`~ctrader_twisted.redis.link.RedisLink` and
a :class:`~ctrader_twisted.redis.publisher.StreamPublisher`; the stream
service hands it every event it formats (the dict and its JSON line).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from .link import RedisLink, RedisURL
from .publisher import StreamPublisher

__all__ = ["RedisSink"]


class RedisSink:
    """Publish stream events to Redis Streams.

    :param url: the Redis URL (its password never shows).
    :param reactor: the reactor.
    :param say: where the user's one-line status messages go.
    :param publisherOptions: more :class:`~ctrader_twisted.redis.publisher.StreamPublisher` keyword arguments
        (``prefix``, ``maxlen``...).
    """

    _log = Logger()

    def __init__(self, url: str | RedisURL, reactor: Any, say: Callable[[str], Any] | None = None,
                 **publisherOptions: Any) -> None:
        self.link = RedisLink(url, reactor)
        self.publisher = StreamPublisher(self.link, reactor, say=say, **publisherOptions)
        self.say = say or (lambda text: None)

    def __repr__(self) -> str:
        return f"<RedisSink {self.link.url.safe}>"

    def start(self) -> None:
        """Connect (events published before that wait in the buffer)."""
        self.say(f"publishing to Redis {self.link.url.safe} (streams {self.publisher.prefix}:{{<account>}}:<kind>)")
        self.link.start()

    def publishEvent(self, event: Mapping[str, Any], line: str) -> None:
        """One formatted event and its JSON line."""
        self.publisher.publishEvent(event, line)

    def stop(self, timeout: float = 5.0) -> Deferred[None]:
        """Deliver what is pending (at most *timeout* seconds), then disconnect."""

        def stopped(left: int) -> Deferred[None]:
            if left:
                self.say(f"stopped with {left} events not delivered to Redis")
            return self.link.stop()

        return self.publisher.stop(timeout).addCallback(stopped)
