# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""order-service against real MariaDB and a real user-service."""

from __future__ import annotations

import pytest

from conftest import sql, unique_email

pytestmark = [pytest.mark.asyncio, pytest.mark.needs_infra]


async def _services(start):
    users = await start("user")
    orders = await start("order", user_service_url=users.base_url)
    response = await users.post("/", json={"name": "Buyer", "email": unique_email()})
    return users, orders, (await response.json())["id"]


async def test_create_get_list_with_computed_total(start):
    users, orders, user_id = await _services(start)
    body = {"user_id": user_id, "items": [
        {"sku": "BOOK-1", "quantity": 2, "unit_price": 9.99},
        {"name": "Sticker", "quantity": 3, "unit_price": "0.10"},
        {"sku": "FREE", "quantity": 1, "unit_price": 0},
    ]}
    response = await orders.post("/", json=body, headers={"X-Request-ID": "order-trace-1"})
    assert response.status == 201, await response.text()
    order = await response.json()
    assert order["total"] == "20.28"
    assert order["status"] == "pending" and order["user_id"] == user_id and order["payment_id"] is None
    assert [item["line_total"] for item in order["items"]] == ["19.98", "0.30", "0.00"]
    assert order["items"][1] == {"sku": None, "name": "Sticker", "quantity": 3, "unit_price": "0.10",
                                 "line_total": "0.30"}
    # the user check went to user-service with the same request id
    assert any(r.get("request_id") == "order-trace-1" and r.get("path") == f"/{user_id}"
               for r in users.logs.records())

    response = await orders.get(f"/{order['id']}")
    assert response.status == 200
    assert await response.json() == order

    response = await orders.get("/", params={"user_id": str(user_id)})
    listing = await response.json()
    assert [o["id"] for o in listing["orders"]] == [order["id"]]
    response = await orders.get("/")
    assert any(o["id"] == order["id"] for o in (await response.json())["orders"])
    response = await orders.get("/", params={"user_id": "x"})
    assert response.status == 400 and (await response.json())["field"] == "user_id"


async def test_order_for_missing_user(start):
    users, orders, _unused = await _services(start)
    response = await orders.post("/", json={"user_id": 99999999, "items": [
        {"sku": "A", "quantity": 1, "unit_price": "1.00"}]})
    assert response.status == 422
    error = await response.json()
    assert error["field"] == "user_id" and "99999999" in error["error"]


async def test_user_service_down_is_503(start):
    orders = await start("order", user_service_url="http://127.0.0.1:1")
    response = await orders.post("/", json={"user_id": 1, "items": [
        {"sku": "A", "quantity": 1, "unit_price": "1.00"}]})
    assert response.status == 503
    error = await response.json()
    assert error["error"] == "user-service unavailable"
    assert response.headers["Retry-After"] == "1"


@pytest.mark.parametrize("body, field", [
    ({"items": [{"sku": "A", "quantity": 1, "unit_price": 1}]}, "user_id"),
    ({"user_id": "7", "items": [{"sku": "A", "quantity": 1, "unit_price": 1}]}, "user_id"),
    ({"user_id": 0, "items": [{"sku": "A", "quantity": 1, "unit_price": 1}]}, "user_id"),
    ({"user_id": 1}, "items"),
    ({"user_id": 1, "items": []}, "items"),
    ({"user_id": 1, "items": ["A"]}, "items[0]"),
    ({"user_id": 1, "items": [{"quantity": 1, "unit_price": 1}]}, "items[0].sku"),
    ({"user_id": 1, "items": [{"sku": "A", "unit_price": 1}]}, "items[0].quantity"),
    ({"user_id": 1, "items": [{"sku": "A", "quantity": 0, "unit_price": 1}]}, "items[0].quantity"),
    ({"user_id": 1, "items": [{"sku": "A", "quantity": 1.5, "unit_price": 1}]}, "items[0].quantity"),
    ({"user_id": 1, "items": [{"sku": "A", "quantity": True, "unit_price": 1}]}, "items[0].quantity"),
    ({"user_id": 1, "items": [{"sku": "A", "quantity": 1, "unit_price": 1},
                              {"sku": "B", "quantity": 1, "unit_price": -1}]}, "items[1].unit_price"),
    ({"user_id": 1, "items": [{"sku": "A", "quantity": 1, "unit_price": "abc"}]}, "items[0].unit_price"),
    ({"user_id": 1, "items": [{"sku": "A", "quantity": 1, "unit_price": 1.234}]}, "items[0].unit_price"),
    ({"user_id": 1, "items": [{"sku": "A", "quantity": 1}]}, "items[0].unit_price"),
])
async def test_validation_names_the_field(start, body, field):
    orders = await start("order", user_service_url="http://127.0.0.1:1")
    response = await orders.post("/", json=body)
    assert response.status == 400, await response.text()
    assert (await response.json())["field"] == field


async def test_not_found_and_mark_paid(start):
    users, orders, user_id = await _services(start)
    response = await orders.get("/987654321")
    assert response.status == 404
    response = await orders.post("/987654321/paid", json={"payment_id": 1})
    assert response.status == 404

    response = await orders.post("/", json={"user_id": user_id, "items": [
        {"sku": "A", "quantity": 1, "unit_price": "5.00"}]})
    order = await response.json()
    response = await orders.post(f"/{order['id']}/paid", json={"payment_id": 41})
    assert response.status == 200
    paid = await response.json()
    assert paid["status"] == "paid" and paid["payment_id"] == 41
    # idempotent for the same payment, a conflict for another one
    assert (await orders.post(f"/{order['id']}/paid", json={"payment_id": 41})).status == 200
    response = await orders.post(f"/{order['id']}/paid", json={"payment_id": 42})
    assert response.status == 409
    assert (await response.json())["field"] == "payment_id"
    response = await orders.get("/", params={"user_id": str(user_id), "status": "paid"})
    assert [o["id"] for o in (await response.json())["orders"]] == [order["id"]]


async def test_health(start):
    orders = await start("order", user_service_url="http://127.0.0.1:1")
    response = await orders.get("/health")
    assert response.status == 200
    health = await response.json()
    assert health["service"] == "order-service" and health["checks"] == {"database": "ok"}


async def test_an_idempotency_key_creates_one_order_however_often_it_is_sent(start, infra):
    _users, orders, user_id = await _services(start)
    body = {"user_id": user_id, "items": [{"sku": "KEYED-1", "quantity": 1, "unit_price": "5.00"}]}
    key = {"Idempotency-Key": f"order-key-{unique_email()}"}
    first = await orders.post("/", json=body, headers=key)
    assert first.status == 201 and "Idempotent-Replayed" not in first.headers
    created = await first.json()
    again = await orders.post("/", json=body, headers=key)  # a retry, e.g. by the gateway on another replica
    assert again.status == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert (await again.json())["id"] == created["id"]
    rows = sql(infra, "orders", "SELECT COUNT(*) AS n FROM orders WHERE idempotency_key = %s",
               (key["Idempotency-Key"],))
    assert rows[0]["n"] == 1
    # the same key for another request is refused, and creates nothing
    other = dict(body, items=[{"sku": "KEYED-2", "quantity": 2, "unit_price": "5.00"}])
    refused = await orders.post("/", json=other, headers=key)
    assert refused.status == 422 and (await refused.json())["field"] == "Idempotency-Key"
    # the control: without a key, the same body twice is two orders
    plain = [(await (await orders.post("/", json=body)).json())["id"] for _unused in range(2)]
    assert plain[0] != plain[1]
