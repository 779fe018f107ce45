"""Redis read-through cache (redis.asyncio, present since redis-py 4.2).

The cache is optional for correctness: when Redis fails, reads and writes go on against
the database, the failure is remembered for a few seconds (so a dead Redis does not cost
every request a connect attempt) and /health reports the cache as the error it is.

No stale read after an outage. An invalidation that fails (Redis down while a row is
written) is recorded in the service's database (a ``ledger``: any replica can read it)
and the cache is marked for a sweep. A replica sweeps (deletes every recorded key, then
forgets them) before it reads from the cache again when: it saw Redis fail itself, it
opened a new connection to Redis (after an outage every replica reconnects, even one that
had no request meanwhile; a read that reconnected is not trusted), or it just started.
Until a sweep succeeds, reads go to the database. No Redis permission beyond the cache's
own commands is needed.
"""

from __future__ import annotations

import asyncio
import time
from typing import Callable, List, Optional, Protocol

import redis
import redis.asyncio as aioredis

from .logs import JsonLogger

SKIP_AFTER_FAILURE_S = 3.0
SWEEP_INTERVAL_S = 1.0


class Ledger(Protocol):
    """Where failed invalidations wait (users.py keeps them in MySQL)."""

    async def record(self, key: str) -> None: ...

    async def pending(self) -> List[str]: ...

    async def forget(self, keys: List[str]) -> None: ...


def _flagging_new_connections(flag: Callable[[], None]):
    """A redis_connect_func: the usual handshake, then ``flag()``. A new connection is a
    reconnection after an outage (or a restarted Redis, which may hold entries whose
    invalidation failed meanwhile) or the pool growing: either way one sweep, one query on
    a table that is empty but after a failure, makes the cache safe to read.
    redis-py 4.3 (Debian) names the handshake on_connect, 5+ on_connect_check_health."""

    async def on_connect(connection) -> None:
        handshake = getattr(connection, "on_connect_check_health", None)
        if handshake is not None:
            await handshake(check_health=True)
        else:
            await connection.on_connect()
        flag()

    return on_connect


class Cache:
    def __init__(self, config, logger: JsonLogger, prefix: str = "ecommerce:", ledger: Optional[Ledger] = None):
        self.config = config
        self.ledger = ledger
        self.needs_sweep = ledger is not None
        self._sweep_lock = asyncio.Lock()
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
            socket_timeout=1.0, socket_connect_timeout=1.0, max_connections=64, timeout=1.0,
            redis_connect_func=_flagging_new_connections(self._connected))
        self.client = aioredis.Redis(connection_pool=pool)
        self._failed_at = 0.0
        self.last_error = ""

    def _connected(self) -> None:
        self.needs_sweep = self.ledger is not None

    async def sweep(self) -> bool:
        """Delete the keys whose invalidation failed; True when the cache may be read again."""
        if not self.needs_sweep:
            return True
        async with self._sweep_lock:
            if not self.needs_sweep:
                return True
            try:
                keys = await self.ledger.pending()
                if keys:
                    await self.client.delete(*(self.prefix + key for key in keys))
                    await self.ledger.forget(keys)
                    self.logger.info("cache swept", keys=len(keys))
            except (redis.RedisError, OSError, asyncio.TimeoutError) as exc:
                self._failed("sweep", exc)
                return False
            except Exception as exc:  # pylint: disable=broad-except  # the database: try again later
                self.logger.warning("cache sweep postponed", error=f"{exc.__class__.__name__}: {exc}")
                return False
            self.needs_sweep = False
            return True

    async def sweep_loop(self) -> None:
        """Sweep soon after an outage even when no read asks for it."""
        while True:
            await asyncio.sleep(SWEEP_INTERVAL_S)
            if self.needs_sweep and self._available():
                await self.sweep()

    def _available(self) -> bool:
        return time.monotonic() - self._failed_at > SKIP_AFTER_FAILURE_S

    def _failed(self, op: str, exc: BaseException) -> None:
        if self._available():
            self.logger.warning("cache unavailable", op=op, error=f"{exc.__class__.__name__}: {exc}")
        self._failed_at = time.monotonic()
        self.last_error = f"{exc.__class__.__name__}: {exc}"
        self.needs_sweep = self.ledger is not None

    async def get(self, key: str) -> Optional[bytes]:
        if not self._available() or not await self.sweep():
            return None
        try:
            value = await self.client.get(self.prefix + key)
        except (redis.RedisError, OSError, asyncio.TimeoutError) as exc:
            self._failed("get", exc)
            return None
        if self.needs_sweep:  # this read reconnected (or another one failed): not to be trusted
            await self.sweep()
            return None
        return value

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
        if self.ledger is not None:
            try:
                await self.ledger.record(key)
            except Exception as exc:  # pylint: disable=broad-except
                self.logger.error("cannot record a failed invalidation", key=key,
                                  error=f"{exc.__class__.__name__}: {exc}")
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
