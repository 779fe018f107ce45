"""order-service: orders of an existing user, with items and a computed total."""

from __future__ import annotations

from decimal import Decimal
from typing import List

import pymysql
from aiohttp import web

from .db import TABLE_OPTIONS, Database, duplicate_key, utcnow
from .http_errors import bad_request, conflict, not_found, unprocessable
from .idempotency import REPLAYED_HEADER, check_replay, key_columns, request_key
from .idempotency import request_hash as hash_of
from .logs import utc_iso
from .middleware import request_id_of
from .peers import Peer, setup_database_service
from .validation import (CENT, money, paging, path_id, positive_int, query_int, read_json_object,
                         required_positive_int, string_field)

MAX_ITEMS = 100
MAX_QUANTITY = 1_000_000
STATUSES = ("pending", "paid")

MIGRATIONS = [
    (1, [
        "CREATE TABLE IF NOT EXISTS orders ("
        " id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,"
        " user_id BIGINT UNSIGNED NOT NULL,"
        " total DECIMAL(14,2) NOT NULL,"
        " status VARCHAR(16) NOT NULL DEFAULT 'pending',"
        " payment_id BIGINT UNSIGNED NULL,"
        " created_at DATETIME(3) NOT NULL,"
        " updated_at DATETIME(3) NOT NULL,"
        " KEY ix_orders_user (user_id)) " + TABLE_OPTIONS,
        "CREATE TABLE IF NOT EXISTS order_items ("
        " id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,"
        " order_id BIGINT UNSIGNED NOT NULL,"
        " sku VARCHAR(64) NULL,"
        " name VARCHAR(255) NULL,"
        " quantity INT UNSIGNED NOT NULL,"
        " unit_price DECIMAL(12,2) NOT NULL,"
        " line_total DECIMAL(14,2) NOT NULL,"
        " KEY ix_items_order (order_id),"
        " CONSTRAINT fk_items_order FOREIGN KEY (order_id) REFERENCES orders (id) ON DELETE CASCADE) "
        + TABLE_OPTIONS,
    ]),
    # 0.4: POST / with an Idempotency-Key creates one order however often it is sent
    (2, key_columns("orders")),
]

ORDER_COLUMNS = "id, user_id, total, status, payment_id, created_at, updated_at"


def _money(value: Decimal) -> str:
    return str(Decimal(value).quantize(CENT))


def serialize(order: dict, items: List[dict]) -> dict:
    return {
        "id": int(order["id"]),
        "user_id": int(order["user_id"]),
        "items": [{"sku": item["sku"], "name": item["name"], "quantity": int(item["quantity"]),
                   "unit_price": _money(item["unit_price"]), "line_total": _money(item["line_total"])}
                  for item in items],
        "total": _money(order["total"]),
        "status": order["status"],
        "payment_id": int(order["payment_id"]) if order["payment_id"] is not None else None,
        "created_at": utc_iso(order["created_at"]),
        "updated_at": utc_iso(order["updated_at"]),
    }


def parse_items(data: dict) -> List[dict]:
    items = data.get("items")
    if items is None:
        raise bad_request("items is required", "items")
    if not isinstance(items, list) or not items:
        raise bad_request("items must be a non-empty list", "items")
    if len(items) > MAX_ITEMS:
        raise bad_request(f"items must have at most {MAX_ITEMS} entries", "items")
    parsed = []
    for index, item in enumerate(items):
        where = f"items[{index}]"
        if not isinstance(item, dict):
            raise bad_request(f"{where} must be an object", where)
        sku = string_field(item, "sku", 64, required=False, label=f"{where}.sku")
        name = string_field(item, "name", 255, required=False, label=f"{where}.name")
        if sku is None and name is None:
            raise bad_request(f"{where} needs a sku or a name", f"{where}.sku")
        if item.get("quantity") is None:
            raise bad_request(f"{where}.quantity is required", f"{where}.quantity")
        quantity = item["quantity"]
        if isinstance(quantity, str) or (isinstance(quantity, Decimal) and quantity != int(quantity)):
            raise bad_request(f"{where}.quantity must be a positive integer", f"{where}.quantity")
        quantity = positive_int(quantity, f"{where}.quantity", MAX_QUANTITY)
        unit_price = money(item.get("unit_price"), f"{where}.unit_price")
        parsed.append({"sku": sku, "name": name, "quantity": quantity, "unit_price": unit_price,
                       "line_total": (unit_price * quantity).quantize(CENT)})
    return parsed


def _load(cursor, where: str, params: tuple) -> List[dict]:
    cursor.execute(f"SELECT {ORDER_COLUMNS} FROM orders WHERE {where}", params)
    orders = cursor.fetchall()
    if not orders:
        return []
    ids = [order["id"] for order in orders]
    placeholders = ", ".join(["%s"] * len(ids))
    cursor.execute("SELECT order_id, sku, name, quantity, unit_price, line_total FROM order_items"
                   f" WHERE order_id IN ({placeholders}) ORDER BY id", tuple(ids))
    items = {}
    for item in cursor.fetchall():
        items.setdefault(item["order_id"], []).append(item)
    return [serialize(order, items.get(order["id"], [])) for order in orders]


async def _get_order(db: Database, order_id: int) -> dict:
    found = await db.run(_load, "id = %s", (order_id,))
    if not found:
        raise not_found(f"order {order_id} not found")
    return found[0]


async def create_order(request: web.Request) -> web.Response:
    data = await read_json_object(request)
    user_id = required_positive_int(data, "user_id")
    items = parse_items(data)
    total = sum((item["line_total"] for item in items), Decimal("0")).quantize(CENT)

    users: Peer = request.app["users"]
    status, _unused = await users.call("GET", f"/{user_id}", request_id_of(request))
    if status == 404:
        raise unprocessable(f"user {user_id} does not exist", "user_id")
    if status != 200:
        raise unprocessable(f"user {user_id} could not be checked (HTTP {status})", "user_id")

    key = request_key(request)
    fields_hash = hash_of({"user_id": user_id, "items": items}) if key else None

    def insert(cursor):
        now = utcnow()
        cursor.execute("INSERT INTO orders (user_id, total, status, created_at, updated_at, idempotency_key,"
                       " request_hash) VALUES (%s, %s, 'pending', %s, %s, %s, %s)",
                       (user_id, total, now, now, key, fields_hash))
        order_id = cursor.lastrowid
        cursor.executemany(
            "INSERT INTO order_items (order_id, sku, name, quantity, unit_price, line_total)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            [(order_id, item["sku"], item["name"], item["quantity"], item["unit_price"], item["line_total"])
             for item in items])
        return _load(cursor, "id = %s", (order_id,))[0]

    try:
        order = await request.app["db"].run(insert)
    except pymysql.err.IntegrityError as exc:
        if key is None or duplicate_key(exc) != "uq_orders_idempotency_key":
            raise

        # the same request again (a retry): answer the order it created
        def select(cursor):
            cursor.execute("SELECT id, request_hash FROM orders WHERE idempotency_key = %s", (key,))
            return cursor.fetchone()

        row = await request.app["db"].run(select)
        check_replay(row["request_hash"], fields_hash)
        order = await _get_order(request.app["db"], int(row["id"]))
        return web.json_response(order, status=201, headers={"Location": f"/{order['id']}", REPLAYED_HEADER: "true"})
    return web.json_response(order, status=201, headers={"Location": f"/{order['id']}"})


async def list_orders(request: web.Request) -> web.Response:
    limit, offset = paging(request)
    user_id = query_int(request, "user_id")
    status = request.query.get("status")
    if status is not None and status not in STATUSES:
        raise bad_request(f"status must be one of {', '.join(STATUSES)}", "status")
    clauses, params = ["1 = 1"], []
    if user_id is not None:
        clauses.append("user_id = %s")
        params.append(user_id)
    if status is not None:
        clauses.append("status = %s")
        params.append(status)
    where = " AND ".join(clauses) + " ORDER BY id DESC LIMIT %s OFFSET %s"
    orders = await request.app["db"].run(_load, where, (*params, limit, offset))
    return web.json_response({"orders": orders, "count": len(orders), "limit": limit, "offset": offset})


async def get_order(request: web.Request) -> web.Response:
    return web.json_response(await _get_order(request.app["db"], path_id(request)))


async def mark_paid(request: web.Request) -> web.Response:
    """Internal: payment-service marks an order paid (idempotent for the same payment)."""
    order_id = path_id(request)
    payment_id = None
    if request.can_read_body:
        data = await read_json_object(request)
        if data.get("payment_id") is not None:
            payment_id = required_positive_int(data, "payment_id")

    def update(cursor):
        cursor.execute("SELECT status, payment_id FROM orders WHERE id = %s FOR UPDATE", (order_id,))
        row = cursor.fetchone()
        if row is None:
            return "missing"
        if row["status"] == "paid":
            if payment_id is not None and row["payment_id"] not in (None, payment_id):
                return "conflict"
            return "unchanged"
        cursor.execute("UPDATE orders SET status = 'paid', payment_id = %s, updated_at = %s WHERE id = %s",
                       (payment_id, utcnow(), order_id))
        return "paid"

    outcome = await request.app["db"].run(update)
    if outcome == "missing":
        raise not_found(f"order {order_id} not found")
    if outcome == "conflict":
        raise conflict(f"order {order_id} is already paid by another payment", "payment_id")
    return web.json_response(await _get_order(request.app["db"], order_id))


def setup(app: web.Application) -> None:
    setup_database_service(app, "order-service", MIGRATIONS,
                           {"users": ("user-service", app["config"].user_service_url)})
    app.router.add_post("/", create_order)
    app.router.add_get("/", list_orders)
    app.router.add_get("/{id}", get_order)
    app.router.add_post("/{id}/paid", mark_paid)
    app.router.add_route("PATCH", "/{id}/paid", mark_paid)
