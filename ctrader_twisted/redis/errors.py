"""Exceptions of :mod:`ctrader_twisted.redis` (messages are one line and never hold a password)."""

from __future__ import annotations

__all__ = ["RedisSinkError", "RedisConfigError", "RedisUnavailable", "PublisherStopped"]


class RedisSinkError(Exception):
    """Base class of the errors of :mod:`ctrader_twisted.redis`."""


class RedisConfigError(RedisSinkError, ValueError):
    """A bad URL, option or argument (NaN, infinity, negative, unknown kind...)."""


class RedisUnavailable(RedisSinkError, ConnectionError):
    """No connection to Redis now (the command was not sent, or its reply was lost)."""


class PublisherStopped(RedisSinkError):
    """The publisher was stopped before what was asked could be done."""
