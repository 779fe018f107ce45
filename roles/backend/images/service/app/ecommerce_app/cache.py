"""Redis read-through cache (redis.asyncio, present since redis-py 4.2).

The cache is optional for correctness: when Redis fails, reads and writes go on against
the database, the failure is remembered for a few seconds (so a dead Redis does not cost
every request a connect attempt) and /health reports the cache as the error it is.
"""

from __future__ import annotations

import asyncio
import time
from typing import Optional

import redis
import redis.asyncio as aioredis

from .logs import JsonLogger

SKIP_AFTER_FAILURE_S = 3.0


class Cache:
    def __init__(self, config, logger: JsonLogger, prefix: str = "ecommerce:"):
        self.config = config
        self.logger = logger
        self.prefix = prefix
        self.ttl = config.cache_ttl
        # A blocking pool: under a burst, a request waits briefly for a free connection
        # instead of failing with "Too many connections" (and marking the service degraded).
        # With a user (REDIS_USER), redis-py logs in with AUTH <user> <password> (a Redis ACL
        # user); without one, with AUTH <password> (the default user, requirepass).
        pool = aioredis.BlockingConnectionPool(
            host=config.redis_host, port=config.redis_port, db=config.redis_db,
            username=config.redis_user or None, password=config.redis_password or None,
            socket_timeout=1.0, socket_connect_timeout=1.0, max_connections=64, timeout=1.0)
        self.client = aioredis.Redis(connection_pool=pool)
        self._failed_at = 0.0
        self.last_error = ""

    def _available(self) -> bool:
        return time.monotonic() - self._failed_at > SKIP_AFTER_FAILURE_S

    def _failed(self, op: str, exc: BaseException) -> None:
        if self._available():
            self.logger.warning("cache unavailable", op=op, error=f"{exc.__class__.__name__}: {exc}")
        self._failed_at = time.monotonic()
        self.last_error = f"{exc.__class__.__name__}: {exc}"

    async def get(self, key: str) -> Optional[bytes]:
        if not self._available():
            return None
        try:
            return await self.client.get(self.prefix + key)
        except (redis.RedisError, OSError, asyncio.TimeoutError) as exc:
            self._failed("get", exc)
            return None

    async def set(self, key: str, value: bytes) -> None:
        if not self._available():
            return
        try:
            await self.client.set(self.prefix + key, value, ex=self.ttl)
        except (redis.RedisError, OSError, asyncio.TimeoutError) as exc:
            self._failed("set", exc)

    async def delete(self, key: str) -> bool:
        """Invalidate; tried even while the cache is marked failed (a stale entry is worse)."""
        try:
            await self.client.delete(self.prefix + key)
            return True
        except (redis.RedisError, OSError, asyncio.TimeoutError) as exc:
            self._failed("delete", exc)
            return False

    async def check(self) -> str:
        try:
            await self.client.ping()
        except (redis.RedisError, OSError, asyncio.TimeoutError) as exc:
            self._failed("ping", exc)
            return f"error: {exc.__class__.__name__}: {exc}"
        self._failed_at = 0.0
        return "ok"

    async def close(self) -> None:
        closer = getattr(self.client, "aclose", None) or self.client.close
        try:
            await closer()
            await self.client.connection_pool.disconnect()
        except Exception:  # pragma: no cover
            pass
