"""Per-host politeness across every Celery worker: one limiter in Redis.

The same rule as the local `pipeline.fetch.HostLimiter` (at most `per_host_concurrency`
requests in flight to a host, starts at least `per_host_delay` apart), held by all workers
together: each request takes a lease in a sorted set per host, decided atomically by a Lua
script on Redis's own clock (workers on several machines need one clock). A lease expires
by itself after the longest a request may take, so a worker killed mid-request cannot hold
its host forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

import redis

# KEYS: the host's leases (a sorted set, score = expiry ms), its last start (ms).
# ARGV: concurrency, delay ms, lease ms, token. Returns 0 (taken) or ms to wait.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return math.max(5, math.min(tonumber(first[2]) - now, 100))
end
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
local wait = last + tonumber(ARGV[2]) - now
if wait > 0 then return wait end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[4])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) * 2)
redis.call('SET', KEYS[2], now, 'PX', math.max(tonumber(ARGV[2]) * 2, 1000))
return 0
"""
PREFIX = "newswire:host:"


class _Lease:
    def __init__(self, limiter: RedisHostLimiter, host: str, token: str) -> None:
        self.limiter, self.host, self.token = limiter, host, token

    def release(self) -> None:
        with contextlib.suppress(redis.RedisError):  # else the lease expires by itself
            self.limiter.client.zrem(PREFIX + self.host + ":leases", self.token)


class RedisHostLimiter:
    """pipeline.fetch.Limiter over Redis: `await limiter.acquire(host)`, then `release()`."""

    def __init__(self, url: str, concurrency: int, delay: float, lease_seconds: float) -> None:
        self.client: Any = redis.Redis.from_url(url)
        self.concurrency = concurrency
        self.delay_ms = int(delay * 1000)
        self.lease_ms = int(lease_seconds * 1000)
        self._acquire = self.client.register_script(_ACQUIRE)

    async def acquire(self, host: str) -> _Lease:
        token = uuid.uuid4().hex
        keys = [PREFIX + host + ":leases", PREFIX + host + ":last"]
        while True:
            wait_ms = int(self._acquire(keys=keys, args=[self.concurrency, self.delay_ms,
                                                         self.lease_ms, token]))
            if wait_ms <= 0:
                return _Lease(self, host, token)
            await asyncio.sleep(wait_ms / 1000)  # a busy host is asked again within 0.1 s
