"""MySQL/MariaDB access: PyMySQL (synchronous) in a thread pool, with a small connection pool.

Only parameterized SQL goes through :meth:`Database.run`.  Connecting is retried with a
backoff until the server answers, then the service's migrations are applied (idempotent,
under a named lock so replicas starting together do not race).
"""

from __future__ import annotations

import asyncio
import queue
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Callable, List, Optional, Sequence, Tuple

import pymysql
import pymysql.cursors

from .http_errors import DependencyUnavailable
from .logs import JsonLogger

ER_DUP_ENTRY = 1062
ER_BAD_DB_ERROR = 1049
IDLE_PING_SECONDS = 10.0

# (version, [statements]) applied in order and recorded in schema_migrations
Migrations = Sequence[Tuple[int, Sequence[str]]]

TABLE_OPTIONS = "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci"


def utcnow() -> datetime:
    """Naive UTC with millisecond precision, as stored in DATETIME(3) columns."""
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def describe(exc: BaseException) -> str:
    """``"<ExceptionClass>: <message>"``: what /health and the logs say about a failure."""
    return f"{exc.__class__.__name__}: {exc}"


def duplicate_key(exc: BaseException) -> Optional[str]:
    """The unique key a duplicate-entry IntegrityError names, else None."""
    if isinstance(exc, pymysql.err.IntegrityError) and exc.args and exc.args[0] == ER_DUP_ENTRY:
        message = str(exc.args[1]) if len(exc.args) > 1 else ""
        marker = "for key '"
        if marker in message:
            key = message.split(marker, 1)[1].rstrip("'")
            return key.rsplit(".", 1)[-1]  # MySQL 8 says 'table.key'
        return ""
    return None


class Database:
    def __init__(self, config, logger: JsonLogger, migrations: Migrations, name: str):
        self.config = config
        self.logger = logger
        self.migrations = migrations
        self.name = name  # migration namespace: the service
        self._pool: "queue.LifoQueue" = queue.LifoQueue()
        self._executor = ThreadPoolExecutor(max_workers=config.db_pool_size, thread_name_prefix="db")
        self._ready = asyncio.Event()
        self._task: Optional[asyncio.Task] = None
        self.last_error = "not connected yet"
        self._closed = False

    # connections -----------------------------------------------------------------------------
    def _connect(self, database: Optional[str] = "default"):
        cfg = self.config
        return pymysql.connect(
            host=cfg.mysql_host, port=cfg.mysql_port, user=cfg.mysql_user, password=cfg.mysql_password,
            database=cfg.mysql_database if database == "default" else database,
            charset="utf8mb4", init_command="SET NAMES utf8mb4 COLLATE utf8mb4_unicode_ci",
            autocommit=False, connect_timeout=3, read_timeout=30, write_timeout=30,
            cursorclass=pymysql.cursors.DictCursor)

    def _acquire(self):
        while True:
            try:
                conn, last_used = self._pool.get_nowait()
            except queue.Empty:
                return self._connect()
            if time.monotonic() - last_used > IDLE_PING_SECONDS:
                try:
                    conn.ping(reconnect=True)
                except Exception:  # a reconnect authenticates again: not only MySQLError (see _call)
                    self._close_quietly(conn)
                    continue
            return conn

    def _release(self, conn) -> None:
        if self._closed or self._pool.qsize() >= self.config.db_pool_size:
            self._close_quietly(conn)
        else:
            self._pool.put((conn, time.monotonic()))

    @staticmethod
    def _close_quietly(conn) -> None:
        try:
            conn.close()
        except Exception:
            pass

    def _call(self, fn: Callable, args: tuple):
        try:
            conn = self._acquire()
        except Exception as exc:  # pylint: disable=broad-except
            # Connecting fails with more than MySQLError: e.g. RuntimeError when
            # caching_sha2_password's full authentication needs the missing `cryptography`
            # package, ValueError when the server's RSA public key does not parse.
            self.last_error = describe(exc)
            raise DependencyUnavailable("database", self.last_error) from None
        try:
            with conn.cursor() as cursor:
                result = fn(cursor, *args)
            conn.commit()
        except (pymysql.err.OperationalError, pymysql.err.InterfaceError) as exc:
            self._close_quietly(conn)
            self.last_error = str(exc)
            raise DependencyUnavailable("database", str(exc)) from None
        except BaseException:
            try:
                conn.rollback()
            except pymysql.err.MySQLError:
                self._close_quietly(conn)
                raise
            self._release(conn)
            raise
        self._release(conn)
        return result

    async def run(self, fn: Callable, *args):
        """Run ``fn(cursor, *args)`` in a transaction on a pooled connection, in the thread pool."""
        if not self._ready.is_set():
            raise DependencyUnavailable("database", "not ready: " + self.last_error)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._call, fn, args)

    # start-up --------------------------------------------------------------------------------
    def _migrate(self) -> List[int]:
        try:
            conn = self._connect()
        except pymysql.err.OperationalError as exc:
            if exc.args and exc.args[0] == ER_BAD_DB_ERROR:  # try to create it (needs the privilege)
                bootstrap = self._connect(database=None)
                try:
                    with bootstrap.cursor() as cursor:
                        cursor.execute(
                            "CREATE DATABASE IF NOT EXISTS `%s` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
                            % self.config.mysql_database.replace("`", "``"))
                finally:
                    bootstrap.close()
                conn = self._connect()
            else:
                raise
        applied_now = []
        try:
            with conn.cursor() as cursor:
                cursor.execute("SELECT GET_LOCK(%s, 60) AS got", ("ecommerce_migrate_" + self.name,))
                try:
                    cursor.execute(
                        "CREATE TABLE IF NOT EXISTS schema_migrations ("
                        " service VARCHAR(32) NOT NULL, version INT NOT NULL,"
                        " applied_at DATETIME(3) NOT NULL, PRIMARY KEY (service, version)) " + TABLE_OPTIONS)
                    conn.commit()
                    cursor.execute("SELECT version FROM schema_migrations WHERE service = %s", (self.name,))
                    done = {row["version"] for row in cursor.fetchall()}
                    for version, statements in self.migrations:
                        if version in done:
                            continue
                        for statement in statements:
                            cursor.execute(statement)
                        cursor.execute(
                            "INSERT INTO schema_migrations (service, version, applied_at) VALUES (%s, %s, %s)",
                            (self.name, version, utcnow()))
                        conn.commit()
                        applied_now.append(version)
                finally:
                    cursor.execute("SELECT RELEASE_LOCK(%s)", ("ecommerce_migrate_" + self.name,))
        finally:
            conn.close()
        return applied_now

    async def _connect_loop(self) -> None:
        loop = asyncio.get_running_loop()
        delay = 0.5
        attempt = 0
        while not self._closed:
            attempt += 1
            try:
                applied = await loop.run_in_executor(self._executor, self._migrate)
            except Exception as exc:  # pylint: disable=broad-except
                # Any failure to connect or migrate is retried, not only MySQLError: PyMySQL
                # raises RuntimeError when caching_sha2_password's full authentication (a
                # mysql:8.4 account with no cached login) needs `cryptography` and it is
                # missing, ValueError on a bad server public key. Letting those escape ended
                # this task and left /health at 503 for good (bug B1). CancelledError is a
                # BaseException: close() still stops the loop.
                self.last_error = describe(exc)
                self.logger.warning("database not ready, retrying", attempt=attempt,
                                    retry_in_s=delay, error=self.last_error)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            self.last_error = ""
            self._ready.set()
            self.logger.info("database ready", database=self.config.mysql_database,
                             migrations_applied=applied)
            return

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._connect_loop())

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    async def wait_ready(self, timeout: Optional[float] = None) -> None:
        await asyncio.wait_for(self._ready.wait(), timeout)

    async def check(self) -> str:
        if not self.ready:
            return "error: " + (self.last_error or "not ready")
        try:
            await asyncio.wait_for(self.run(lambda cursor: cursor.execute("SELECT 1")), 2.0)
        except DependencyUnavailable as exc:
            return "error: " + (exc.detail or "unavailable")
        except asyncio.TimeoutError:
            return "error: timeout"
        return "ok"

    async def close(self) -> None:
        self._closed = True
        if self._task is not None and not self._task.done():
            self._task.cancel()
            try:
                await self._task
            except BaseException:
                pass
        while True:
            try:
                conn, _unused = self._pool.get_nowait()
            except queue.Empty:
                break
            self._close_quietly(conn)
        self._executor.shutdown(wait=False)
