"""user-service: users (name, unique email, created_at); GET /{id} is cached in Redis."""

from __future__ import annotations

import asyncio
import json

import pymysql
from aiohttp import web

from .cache import Cache
from .db import TABLE_OPTIONS, Database, duplicate_key, utcnow
from .http_errors import ApiError, bad_request, conflict, not_found
from .idempotency import REPLAYED_HEADER, check_replay, key_columns, request_key
from .idempotency import request_hash as hash_of
from .logs import utc_iso
from .validation import email_field, paging, path_id, read_json_object, string_field

MIGRATIONS = [
    (1, [
        "CREATE TABLE IF NOT EXISTS users ("
        " id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,"
        " name VARCHAR(255) NOT NULL,"
        " email VARCHAR(254) NOT NULL,"
        " created_at DATETIME(3) NOT NULL,"
        " updated_at DATETIME(3) NOT NULL,"
        " UNIQUE KEY uq_users_email (email)) " + TABLE_OPTIONS,
    ]),
    # 0.4: POST / with an Idempotency-Key creates one user however often it is sent
    (2, key_columns("users")),
    # 0.4: invalidations that failed while Redis was down, done when it is back (cache.py)
    (3, ["CREATE TABLE IF NOT EXISTS cache_invalidations ("
         " cache_key VARCHAR(255) NOT NULL PRIMARY KEY,"
         " failed_at DATETIME(3) NOT NULL) " + TABLE_OPTIONS]),
]

COLUMNS = "id, name, email, created_at, updated_at"


def serialize(row: dict) -> dict:
    return {"id": int(row["id"]), "name": row["name"], "email": row["email"],
            "created_at": utc_iso(row["created_at"]), "updated_at": utc_iso(row["updated_at"])}


def _dumps(data) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


def _json(data, status: int = 200, headers=None) -> web.Response:
    return web.Response(body=_dumps(data), status=status, content_type="application/json", headers=headers)


def _duplicate_email(exc: pymysql.err.IntegrityError) -> ApiError:
    if duplicate_key(exc) is not None:
        return conflict("a user with this email already exists", "email")
    return bad_request("invalid user", None)


def _cache_key(user_id: int) -> str:
    return f"user:{user_id}"


async def create_user(request: web.Request) -> web.Response:
    data = await read_json_object(request)
    name = string_field(data, "name")
    email = email_field(data)
    key = request_key(request)
    fields_hash = hash_of({"name": name, "email": email}) if key else None

    def insert(cursor):
        now = utcnow()
        cursor.execute("INSERT INTO users (name, email, created_at, updated_at, idempotency_key, request_hash)"
                       " VALUES (%s, %s, %s, %s, %s, %s)", (name, email, now, now, key, fields_hash))
        return {"id": cursor.lastrowid, "name": name, "email": email, "created_at": now, "updated_at": now}

    def by_key(cursor):
        cursor.execute(f"SELECT {COLUMNS}, request_hash FROM users WHERE idempotency_key = %s", (key,))
        return cursor.fetchone()

    try:
        row = await request.app["db"].run(insert)
    except pymysql.err.IntegrityError as exc:
        # the same request again (a retry) may collide on the email first: look for the key
        replayed = await request.app["db"].run(by_key) if key else None
        if replayed is None:
            raise _duplicate_email(exc) from None
        check_replay(replayed["request_hash"], fields_hash)
        user = serialize(replayed)
        return _json(user, 201, {"Location": f"/{user['id']}", REPLAYED_HEADER: "true"})
    user = serialize(row)
    # a stale entry may survive a database reset in a persistent Redis
    await request.app["cache"].delete(_cache_key(user["id"]))
    return _json(user, 201, {"Location": f"/{user['id']}"})


async def list_users(request: web.Request) -> web.Response:
    limit, offset = paging(request)
    email = request.query.get("email")

    def select(cursor):
        if email:
            cursor.execute(f"SELECT {COLUMNS} FROM users WHERE email = %s", (email.strip().lower(),))
        else:
            cursor.execute(f"SELECT {COLUMNS} FROM users ORDER BY id DESC LIMIT %s OFFSET %s", (limit, offset))
        return cursor.fetchall()

    rows = await request.app["db"].run(select)
    return _json({"users": [serialize(row) for row in rows], "count": len(rows),
                  "limit": limit, "offset": offset})


async def _fetch(db: Database, user_id: int):
    def select(cursor):
        cursor.execute(f"SELECT {COLUMNS} FROM users WHERE id = %s", (user_id,))
        return cursor.fetchone()

    return await db.run(select)


async def get_user(request: web.Request) -> web.Response:
    user_id = path_id(request)
    cache: Cache = request.app["cache"]
    cached = await cache.get(_cache_key(user_id))
    if cached is not None:
        return web.Response(body=cached, content_type="application/json", headers={"X-Cache": "HIT"})
    row = await _fetch(request.app["db"], user_id)
    if row is None:
        raise not_found(f"user {user_id} not found")
    body = _dumps(serialize(row))
    await cache.set(_cache_key(user_id), body)
    return web.Response(body=body, content_type="application/json", headers={"X-Cache": "MISS"})


async def update_user(request: web.Request) -> web.Response:
    user_id = path_id(request)
    data = await read_json_object(request)
    changes = {}
    if "name" in data:
        changes["name"] = string_field(data, "name")
    if "email" in data:
        changes["email"] = email_field(data)
    if not changes:
        raise bad_request("nothing to update: give name and/or email", "name")

    def update(cursor):
        cursor.execute("SELECT id FROM users WHERE id = %s FOR UPDATE", (user_id,))
        if cursor.fetchone() is None:
            return None
        assignments = ", ".join(f"{column} = %s" for column in changes)  # column names are ours
        cursor.execute(f"UPDATE users SET {assignments}, updated_at = %s WHERE id = %s",
                       (*changes.values(), utcnow(), user_id))
        cursor.execute(f"SELECT {COLUMNS} FROM users WHERE id = %s", (user_id,))
        return cursor.fetchone()

    try:
        row = await request.app["db"].run(update)
    except pymysql.err.IntegrityError as exc:
        raise _duplicate_email(exc) from None
    await request.app["cache"].delete(_cache_key(user_id))
    if row is None:
        raise not_found(f"user {user_id} not found")
    return _json(serialize(row))


async def delete_user(request: web.Request) -> web.Response:
    user_id = path_id(request)

    def delete(cursor):
        return cursor.execute("DELETE FROM users WHERE id = %s", (user_id,))

    deleted = await request.app["db"].run(delete)
    await request.app["cache"].delete(_cache_key(user_id))
    if not deleted:
        raise not_found(f"user {user_id} not found")
    return web.Response(status=204)


class InvalidationLedger:
    """Failed cache invalidations, kept in the users database until a sweep (cache.py)."""

    def __init__(self, db: Database):
        self.db = db

    async def record(self, key: str) -> None:
        def insert(cursor):
            cursor.execute("INSERT INTO cache_invalidations (cache_key, failed_at) VALUES (%s, %s)"
                           " ON DUPLICATE KEY UPDATE failed_at = VALUES(failed_at)", (key, utcnow()))

        await self.db.run(insert)

    async def pending(self) -> list:
        def select(cursor):
            cursor.execute("SELECT cache_key FROM cache_invalidations ORDER BY failed_at LIMIT 1000")
            return [row["cache_key"] for row in cursor.fetchall()]

        return await self.db.run(select)

    async def forget(self, keys: list) -> None:
        def delete(cursor):
            cursor.executemany("DELETE FROM cache_invalidations WHERE cache_key = %s", [(key,) for key in keys])

        await self.db.run(delete)


def setup(app: web.Application) -> None:
    config = app["config"]
    db = Database(config, app["logger"], MIGRATIONS, "user-service")
    cache = Cache(config, app["logger"], ledger=InvalidationLedger(db))
    app["db"] = db
    app["cache"] = cache
    app["health_checks"].update(database=db.check, cache=cache.check)

    async def lifecycle(app):
        db.start()
        sweeper = asyncio.ensure_future(cache.sweep_loop())
        yield
        sweeper.cancel()
        await cache.close()
        await db.close()

    app.cleanup_ctx.append(lifecycle)
    app.router.add_post("/", create_user)
    app.router.add_get("/", list_users)
    app.router.add_get("/{id}", get_user)
    app.router.add_route("PATCH", "/{id}", update_user)
    app.router.add_put("/{id}", update_user)
    app.router.add_delete("/{id}", delete_user)
