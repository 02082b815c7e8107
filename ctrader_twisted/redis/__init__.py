"""Scale-out through Redis Streams (the optional ``redis`` extra: ``pip install 'ctrader-twisted[redis]'``).

* :mod:`~ctrader_twisted.redis.streams`: stream names, entry format, ids,
  idempotency keys and gap markers;
* :class:`~ctrader_twisted.redis.publisher.StreamPublisher`: batched,
  pipelined, at-least-once publishing with bounded memory;
* :class:`~ctrader_twisted.redis.consumer.StreamConsumer`: consumer groups,
  pending entries first, claiming a dead consumer's entries, acknowledging
  after the callback, dropping duplicates by key;
* :class:`~ctrader_twisted.redis.leases.AccountLeases`: accounts shared by
  workers through leases in Redis;
* :class:`~ctrader_twisted.redis.link.RedisLink`: the connection (txredisapi);
* :mod:`~ctrader_twisted.redis.server`: a throwaway ``redis-server`` for tests
  and benchmarks.

See ``docs/scaling.rst``.
"""

from .consumer import StreamConsumer
from .errors import PublisherStopped, RedisConfigError, RedisSinkError, RedisUnavailable
from .leases import AccountLeases
from .link import RedisLink, RedisURL, parseRedisURL
from .publisher import PublisherStats, StreamPublisher
from .streams import KINDS, Event, eventKey, kindOf, streamName

__all__ = [
    "RedisLink",
    "RedisURL",
    "parseRedisURL",
    "StreamPublisher",
    "PublisherStats",
    "StreamConsumer",
    "AccountLeases",
    "Event",
    "KINDS",
    "streamName",
    "eventKey",
    "kindOf",
    "RedisSinkError",
    "RedisConfigError",
    "RedisUnavailable",
    "PublisherStopped",
]
