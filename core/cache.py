"""The default cache when REDIS_URL is set: Redis, or this process's memory while Redis
is unreachable.

What the cache holds can be lost or kept per process for a while without harm: the
API's rate counters, failed-login counters, the webhook subscriptions (10 s). So when
Redis does not answer, `FallbackRedisCache` serves every call from a local memory cache
instead of failing the request, and tries Redis again after RETRY_SECONDS (it does not
pay a connection timeout per call meanwhile). While it falls back, each process counts
on its own: a client may get up to the rate per web process, not per installation.
"""

import logging
import time

import redis
from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache

logger = logging.getLogger(__name__)

RETRY_SECONDS = 5
# Fail fast: a request waits at most this long for a Redis that does not answer.
SOCKET_TIMEOUT_SECONDS = 0.5
UNREACHABLE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)


def _fallback(name: str):
    def method(self, *args, **kwargs):
        if time.monotonic() >= self._redis_down_until:
            try:
                return getattr(super(FallbackRedisCache, self), name)(*args, **kwargs)
            except UNREACHABLE as exc:
                self._redis_down_until = time.monotonic() + RETRY_SECONDS
                logger.warning("cache: Redis unreachable (%s); using this process's memory for %d s", exc,
                               RETRY_SECONDS)
        return getattr(self._local, name)(*args, **kwargs)

    method.__name__ = name
    return method


class FallbackRedisCache(RedisCache):
    def __init__(self, server, params):
        options = {"socket_connect_timeout": SOCKET_TIMEOUT_SECONDS, "socket_timeout": SOCKET_TIMEOUT_SECONDS,
                   **params.get("OPTIONS", {})}
        super().__init__(server, {**params, "OPTIONS": options})
        self._local = LocMemCache(f"redis-fallback-{id(self)}", {"TIMEOUT": params.get("TIMEOUT", 300)})
        self._redis_down_until = 0.0

    add = _fallback("add")
    get = _fallback("get")
    set = _fallback("set")
    touch = _fallback("touch")
    delete = _fallback("delete")
    get_many = _fallback("get_many")
    has_key = _fallback("has_key")
    incr = _fallback("incr")
    set_many = _fallback("set_many")
    delete_many = _fallback("delete_many")
    clear = _fallback("clear")
