# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""payment-service against real MariaDB and real user- and order-services."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from conftest import sql, unique_email

pytestmark = [pytest.mark.asyncio, pytest.mark.needs_infra]


async def _stack(start):
    users = await start("user")
    orders = await start("order", user_service_url=users.base_url)
    payments = await start("payment", order_service_url=orders.base_url)
    return users, orders, payments


async def _order(users, orders, total="25.50"):
    response = await users.post("/", json={"name": "Payer", "email": unique_email()})
    user_id = (await response.json())["id"]
    response = await orders.post("/", json={"user_id": user_id, "items": [
        {"sku": "X", "quantity": 1, "unit_price": total}]})
    assert response.status == 201
    return await response.json()


async def test_payment_marks_order_paid(start, infra):
    users, orders, payments = await _stack(start)
    order = await _order(users, orders)
    response = await payments.post("/", json={"order_id": order["id"], "amount": 25.5, "method": "card"})
    assert response.status == 201, await response.text()
    payment = await response.json()
    assert payment["status"] == "completed" and payment["amount"] == "25.50"
    assert payment["order_id"] == order["id"] and payment["method"] == "card"
    assert payment["idempotency_key"] is None

    response = await orders.get(f"/{order['id']}")
    paid = await response.json()
    assert paid["status"] == "paid" and paid["payment_id"] == payment["id"]

    response = await payments.get(f"/{payment['id']}")
    assert response.status == 200 and await response.json() == payment
    response = await payments.get("/", params={"order_id": str(order["id"])})
    assert [p["id"] for p in (await response.json())["payments"]] == [payment["id"]]
    response = await payments.get("/")
    assert any(p["id"] == payment["id"] for p in (await response.json())["payments"])

    # an order is never charged twice
    response = await payments.post("/", json={"order_id": order["id"], "amount": "25.50", "method": "card"})
    assert response.status == 409
    assert (await response.json())["field"] == "order_id"
    rows = sql(infra, "payments", "SELECT COUNT(*) AS n FROM payments WHERE order_id = %s AND status = 'completed'",
               (order["id"],))
    assert rows[0]["n"] == 1


async def test_amount_mismatch_and_missing_order(start):
    users, orders, payments = await _stack(start)
    order = await _order(users, orders, "10.00")
    response = await payments.post("/", json={"order_id": order["id"], "amount": "9.99", "method": "card"})
    assert response.status == 422
    error = await response.json()
    assert error["field"] == "amount" and "10.00" in error["error"]
    response = await orders.get(f"/{order['id']}")
    assert (await response.json())["status"] == "pending"

    response = await payments.post("/", json={"order_id": 99999999, "amount": "1.00", "method": "card"})
    assert response.status == 422
    assert (await response.json())["field"] == "order_id"

    response = await payments.get("/99999999")
    assert response.status == 404


@pytest.mark.parametrize("body, field", [
    ({"amount": "1.00", "method": "card"}, "order_id"),
    ({"order_id": 1, "method": "card"}, "amount"),
    ({"order_id": 1, "amount": "0", "method": "card"}, "amount"),
    ({"order_id": 1, "amount": "-3", "method": "card"}, "amount"),
    ({"order_id": 1, "amount": "1.00"}, "method"),
    ({"order_id": 1, "amount": "1.00", "method": "c a r d"}, "method"),
])
async def test_validation_names_the_field(start, body, field):
    payments = await start("payment", order_service_url="http://127.0.0.1:1")
    response = await payments.post("/", json=body)
    assert response.status == 400
    assert (await response.json())["field"] == field
    response = await payments.post("/", data=b"not json", headers={"Content-Type": "application/json"})
    assert response.status == 400 and (await response.json())["field"] == "body"


async def test_order_service_down_is_503(start):
    payments = await start("payment", order_service_url="http://127.0.0.1:1")
    response = await payments.post("/", json={"order_id": 1, "amount": "1.00", "method": "card"})
    assert response.status == 503
    assert (await response.json())["error"] == "order-service unavailable"


async def test_idempotency_key_replays_the_first_result(start, infra):
    users, orders, payments = await _stack(start)
    order = await _order(users, orders, "12.34")
    key = "key-" + uuid.uuid4().hex
    body = {"order_id": order["id"], "amount": "12.34", "method": "paypal"}
    first = await payments.post("/", json=body, headers={"Idempotency-Key": key})
    assert first.status == 201
    second = await payments.post("/", json=body, headers={"Idempotency-Key": key})
    assert second.status == 201
    assert second.headers["Idempotent-Replayed"] == "true"
    assert await second.json() == await first.json()
    rows = sql(infra, "payments", "SELECT COUNT(*) AS n FROM payments WHERE idempotency_key = %s", (key,))
    assert rows[0]["n"] == 1
    rows = sql(infra, "payments", "SELECT COUNT(*) AS n FROM payments WHERE order_id = %s", (order["id"],))
    assert rows[0]["n"] == 1

    # the same key for another request is refused
    response = await payments.post("/", json={**body, "method": "card"}, headers={"Idempotency-Key": key})
    assert response.status == 422
    assert (await response.json())["field"] == "Idempotency-Key"


async def test_concurrent_identical_posts_charge_once(start, infra):
    users, orders, payments = await _stack(start)
    for _round in range(3):
        order = await _order(users, orders, "7.00")
        key = "conc-" + uuid.uuid4().hex
        body = {"order_id": order["id"], "amount": "7.00", "method": "card"}
        responses = await asyncio.gather(*(payments.post("/", json=body, headers={"Idempotency-Key": key})
                                           for _unused in range(2)))
        assert [r.status for r in responses] == [201, 201]
        results = [await r.json() for r in responses]
        assert results[0]["id"] == results[1]["id"]
        rows = sql(infra, "payments", "SELECT COUNT(*) AS n FROM payments WHERE order_id = %s", (order["id"],))
        assert rows[0]["n"] == 1


async def test_concurrent_posts_without_key_charge_once(start, infra):
    users, orders, payments = await _stack(start)
    order = await _order(users, orders, "3.00")
    body = {"order_id": order["id"], "amount": "3.00", "method": "card"}
    responses = await asyncio.gather(*(payments.post("/", json=body) for _unused in range(3)))
    assert sorted(r.status for r in responses) == [201, 409, 409]
    rows = sql(infra, "payments", "SELECT COUNT(*) AS n FROM payments WHERE order_id = %s AND status = 'completed'",
               (order["id"],))
    assert rows[0]["n"] == 1
