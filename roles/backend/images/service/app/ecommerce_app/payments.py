"""payment-service: payments of an existing order, idempotent with an ``Idempotency-Key``.

Durability and races are left to MySQL's unique keys:

* ``idempotency_key`` is UNIQUE: of two concurrent POSTs with the same key exactly one
  inserts its row; the other one waits for that row to be settled and answers the same
  payment with the same status code;
* ``active_order_id`` (the order id while a payment is processing or completed, NULL once
  it failed) is UNIQUE: an order is never charged twice, with or without keys.

A payment row is claimed as ``processing``, the order is marked paid through
order-service, then the row becomes ``completed`` (201).  When order-service cannot do
it the row becomes ``failed`` and releases both keys, so the client may retry.
"""

from __future__ import annotations

import asyncio
import re
import time
from decimal import Decimal
from typing import Optional

import pymysql
from aiohttp import web

from .db import TABLE_OPTIONS, Database, duplicate_key, utcnow
from .http_errors import ApiError, DependencyUnavailable, bad_request, conflict, not_found, unprocessable
from .idempotency import IDEMPOTENCY_HEADER, REPLAYED_HEADER, request_key
from .idempotency import request_hash as hash_of
from .logs import utc_iso
from .middleware import request_id_of
from .peers import Peer, setup_database_service
from .validation import (CENT, money, paging, path_id, query_int, read_json_object, required_positive_int,
                         string_field)

_METHOD_RE = re.compile(r"^[A-Za-z0-9_\-]{1,32}$")
POLL_INTERVAL_S = 0.05

MIGRATIONS = [
    (1, [
        "CREATE TABLE IF NOT EXISTS payments ("
        " id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,"
        " order_id BIGINT UNSIGNED NOT NULL,"
        " amount DECIMAL(14,2) NOT NULL,"
        " method VARCHAR(32) NOT NULL,"
        " status VARCHAR(16) NOT NULL,"
        " idempotency_key VARCHAR(255) NULL,"
        " request_hash CHAR(64) NULL,"
        " response_code SMALLINT NULL,"
        " active_order_id BIGINT UNSIGNED NULL,"
        " created_at DATETIME(3) NOT NULL,"
        " updated_at DATETIME(3) NOT NULL,"
        " UNIQUE KEY uq_payments_idempotency_key (idempotency_key),"
        " UNIQUE KEY uq_payments_active_order (active_order_id),"
        " KEY ix_payments_order (order_id)) " + TABLE_OPTIONS,
    ]),
]

COLUMNS = ("id, order_id, amount, method, status, idempotency_key, request_hash, response_code,"
           " created_at, updated_at")


def serialize(row: dict) -> dict:
    return {"id": int(row["id"]), "order_id": int(row["order_id"]),
            "amount": str(Decimal(row["amount"]).quantize(CENT)), "method": row["method"],
            "status": row["status"], "idempotency_key": row["idempotency_key"],
            "created_at": utc_iso(row["created_at"]), "updated_at": utc_iso(row["updated_at"])}


def _select_by(cursor, column: str, value) -> Optional[dict]:
    cursor.execute(f"SELECT {COLUMNS} FROM payments WHERE {column} = %s", (value,))
    return cursor.fetchone()


def _settle(cursor, payment_id: int, status: str, response_code: int) -> dict:
    if status == "completed":
        cursor.execute("UPDATE payments SET status = %s, response_code = %s, updated_at = %s WHERE id = %s",
                       (status, response_code, utcnow(), payment_id))
    else:  # release both unique keys: the client may try again
        cursor.execute("UPDATE payments SET status = %s, response_code = %s, updated_at = %s,"
                       " active_order_id = NULL, idempotency_key = NULL WHERE id = %s",
                       (status, response_code, utcnow(), payment_id))
    return _select_by(cursor, "id", payment_id)


class _Retry(Exception):
    """The payment holding our idempotency key failed meanwhile: start over."""


async def _replay(request: web.Request, key: str, request_hash: str) -> web.Response:
    db: Database = request.app["db"]
    deadline = time.monotonic() + request.app["config"].request_timeout
    while True:
        row = await db.run(_select_by, "idempotency_key", key)
        if row is None:
            raise _Retry()
        if row["request_hash"] != request_hash:
            raise unprocessable(f"{IDEMPOTENCY_HEADER} was already used for a different request",
                                IDEMPOTENCY_HEADER)
        if row["status"] != "processing":
            return web.json_response(serialize(row), status=row["response_code"] or 201,
                                     headers={REPLAYED_HEADER: "true"})
        if time.monotonic() > deadline:
            raise ApiError(409, f"a request with this {IDEMPOTENCY_HEADER} is still in progress",
                           IDEMPOTENCY_HEADER, {"Retry-After": "1"})
        await asyncio.sleep(POLL_INTERVAL_S)


async def _charge(request: web.Request, order_id: int, amount: Decimal, method: str,
                  key: Optional[str], request_hash: str) -> web.Response:
    db: Database = request.app["db"]
    orders: Peer = request.app["orders"]
    request_id = request_id_of(request)
    if key:
        existing = await db.run(_select_by, "idempotency_key", key)
        if existing is not None:
            return await _replay(request, key, request_hash)

    status, order = await orders.call("GET", f"/{order_id}", request_id)
    if status == 404:
        raise unprocessable(f"order {order_id} does not exist", "order_id")
    if status != 200 or not isinstance(order, dict):
        raise unprocessable(f"order {order_id} could not be checked (HTTP {status})", "order_id")
    if order.get("status") == "paid":
        # a concurrent request with our key may have paid it meanwhile
        if key and await db.run(_select_by, "idempotency_key", key) is not None:
            return await _replay(request, key, request_hash)
        raise conflict(f"order {order_id} is already paid", "order_id")
    total = Decimal(str(order.get("total"))).quantize(CENT)
    if amount != total:
        raise unprocessable(f"amount {amount} does not equal the order total {total}", "amount")

    def claim(cursor):
        now = utcnow()
        cursor.execute(
            "INSERT INTO payments (order_id, amount, method, status, idempotency_key, request_hash,"
            " active_order_id, created_at, updated_at) VALUES (%s, %s, %s, 'processing', %s, %s, %s, %s, %s)",
            (order_id, amount, method, key, request_hash, order_id, now, now))
        return cursor.lastrowid

    try:
        payment_id = await db.run(claim)
    except pymysql.err.IntegrityError as exc:
        if duplicate_key(exc) is None:
            raise
        if key and await db.run(_select_by, "idempotency_key", key) is not None:
            return await _replay(request, key, request_hash)
        raise conflict(f"order {order_id} is already paid or being paid", "order_id") from None

    try:
        status, _unused = await orders.call("POST", f"/{order_id}/paid", request_id, {"payment_id": payment_id})
    except DependencyUnavailable:
        await db.run(_settle, payment_id, "failed", 503)
        raise
    if status == 200:
        row = await db.run(_settle, payment_id, "completed", 201)
        return web.json_response(serialize(row), status=201, headers={"Location": f"/{payment_id}"})
    await db.run(_settle, payment_id, "failed", 409 if status == 409 else 422)
    if status == 409:
        raise conflict(f"order {order_id} is already paid", "order_id")
    raise unprocessable(f"order {order_id} could not be marked paid (HTTP {status})", "order_id")


async def create_payment(request: web.Request) -> web.Response:
    data = await read_json_object(request)
    order_id = required_positive_int(data, "order_id")
    amount = money(data.get("amount"), "amount", allow_zero=False)
    method = string_field(data, "method", 32)
    if not _METHOD_RE.match(method):
        raise bad_request("method must be a word of letters, digits, '_' or '-'", "method")
    key = request_key(request)
    request_hash = hash_of({"order_id": order_id, "amount": str(amount), "method": method})
    for _attempt in range(3):
        try:
            return await _charge(request, order_id, amount, method, key, request_hash)
        except _Retry:
            continue
    raise ApiError(409, f"a request with this {IDEMPOTENCY_HEADER} keeps failing; retry later",
                   IDEMPOTENCY_HEADER, {"Retry-After": "1"})


async def list_payments(request: web.Request) -> web.Response:
    limit, offset = paging(request)
    order_id = query_int(request, "order_id")

    def select(cursor):
        if order_id is not None:
            cursor.execute(f"SELECT {COLUMNS} FROM payments WHERE order_id = %s ORDER BY id DESC LIMIT %s OFFSET %s",
                           (order_id, limit, offset))
        else:
            cursor.execute(f"SELECT {COLUMNS} FROM payments ORDER BY id DESC LIMIT %s OFFSET %s", (limit, offset))
        return cursor.fetchall()

    rows = await request.app["db"].run(select)
    return web.json_response({"payments": [serialize(row) for row in rows], "count": len(rows),
                              "limit": limit, "offset": offset})


async def get_payment(request: web.Request) -> web.Response:
    payment_id = path_id(request)
    row = await request.app["db"].run(_select_by, "id", payment_id)
    if row is None:
        raise not_found(f"payment {payment_id} not found")
    return web.json_response(serialize(row))


def setup(app: web.Application) -> None:
    setup_database_service(app, "payment-service", MIGRATIONS,
                           {"orders": ("order-service", app["config"].order_service_url)})
    app.router.add_post("/", create_payment)
    app.router.add_get("/", list_payments)
    app.router.add_get("/{id}", get_payment)
