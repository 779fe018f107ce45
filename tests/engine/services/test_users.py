# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""user-service against real MariaDB and Redis."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from conftest import sql, unique_email

pytestmark = [pytest.mark.asyncio, pytest.mark.needs_infra]


async def test_create_get_list(start):
    client = await start("user")
    email = unique_email()
    response = await client.post("/", json={"name": "  Ada Lovelace ", "email": email.upper()})
    assert response.status == 201, await response.text()
    user = await response.json()
    assert user["name"] == "Ada Lovelace" and user["email"] == email
    assert isinstance(user["id"], int) and user["created_at"].endswith("Z")
    assert response.headers["Location"] == f"/{user['id']}"
    assert len(response.headers["X-Request-ID"]) == 32

    response = await client.get(f"/{user['id']}")
    assert response.status == 200
    assert (await response.json())["email"] == email

    response = await client.get("/", params={"limit": "1000"})
    assert response.status == 200
    listing = await response.json()
    assert any(item["id"] == user["id"] for item in listing["users"])
    assert listing["count"] == len(listing["users"])


async def test_cache_miss_hit_and_invalidation(start, infra):
    client = await start("user")
    response = await client.post("/", json={"name": "Grace", "email": unique_email()})
    user = await response.json()

    first = await client.get(f"/{user['id']}")
    assert first.headers["X-Cache"] == "MISS"
    second = await client.get(f"/{user['id']}")
    assert second.headers["X-Cache"] == "HIT"
    assert await second.json() == await first.json()
    # really in Redis, with the TTL
    ttl = infra["redis"].exec_run(["redis-cli", "--no-auth-warning", "-a", "h3s-redis-pw", "TTL",
                                   f"ecommerce:user:{user['id']}"]).output.decode().strip()
    assert 0 < int(ttl) <= 30

    response = await client.patch(f"/{user['id']}", json={"name": "Grace Hopper"})
    assert response.status == 200
    assert (await response.json())["name"] == "Grace Hopper"
    third = await client.get(f"/{user['id']}")
    assert third.headers["X-Cache"] == "MISS"
    assert (await third.json())["name"] == "Grace Hopper"
    fourth = await client.get(f"/{user['id']}")
    assert fourth.headers["X-Cache"] == "HIT"

    response = await client.delete(f"/{user['id']}")
    assert response.status == 204
    response = await client.get(f"/{user['id']}")
    assert response.status == 404


@pytest.mark.parametrize("body, field", [
    ({"email": "a@b.example"}, "name"),
    ({"name": "", "email": "a@b.example"}, "name"),
    ({"name": 5, "email": "a@b.example"}, "name"),
    ({"name": "x" * 256, "email": "a@b.example"}, "name"),
    ({"name": "A"}, "email"),
    ({"name": "A", "email": "not-an-email"}, "email"),
    ([1, 2], "body"),
])
async def test_validation_names_the_field(start, body, field):
    client = await start("user")
    response = await client.post("/", json=body)
    assert response.status == 400
    error = await response.json()
    assert error["field"] == field
    assert error["request_id"] == response.headers["X-Request-ID"]
    assert error["error"]


async def test_invalid_json_and_too_large(start):
    client = await start("user", max_body_bytes=1024)
    response = await client.post("/", data=b'{"name": "A", ', headers={"Content-Type": "application/json"})
    assert response.status == 400
    assert (await response.json())["field"] == "body"

    response = await client.post("/", data=b'{"name": "' + b"x" * 2000 + b'"}',
                                 headers={"Content-Type": "application/json"})
    assert response.status == 413
    error = await response.json()
    assert "too large" in error["error"] and error["request_id"]

    async def chunks():  # no Content-Length: aiohttp's own limit answers
        yield b'{"name": "'
        yield b"y" * 3000
        yield b'"}'

    response = await client.post("/", data=chunks(), headers={"Content-Type": "application/json"})
    assert response.status == 413
    assert "too large" in (await response.json())["error"]


async def test_not_found_and_bad_id(start):
    client = await start("user")
    response = await client.get("/987654321")
    assert response.status == 404
    assert (await response.json())["error"]
    response = await client.get("/abc")
    assert response.status == 400
    assert (await response.json())["field"] == "id"
    response = await client.get("/nope/deeper")
    assert response.status == 404
    assert "request_id" in await response.json()
    response = await client.delete("/")
    assert response.status == 405
    assert (await response.json())["error"] == "method not allowed"


async def test_duplicate_email_conflict(start, infra):
    client = await start("user")
    email = unique_email()
    assert (await client.post("/", json={"name": "A", "email": email})).status == 201
    response = await client.post("/", json={"name": "B", "email": email})
    assert response.status == 409
    assert (await response.json())["field"] == "email"
    rows = sql(infra, "users", "SELECT COUNT(*) AS n FROM users WHERE email = %s", (email,))
    assert rows[0]["n"] == 1


async def test_health_metrics_and_log_line(start):
    client = await start("user")
    response = await client.get("/health")
    assert response.status == 200
    health = await response.json()
    assert health["service"] == "user-service" and health["status"] == "healthy"
    assert health["checks"] == {"database": "ok", "cache": "ok"}
    assert health["timestamp"].endswith("Z") and health["uptime"] >= 0

    await client.get("/123456789", headers={"X-Request-ID": "trace-abc-1"})
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    text = await response.text()
    assert 'http_requests_total{method="GET",route="/{id}",service="user-service",status="404"} 1.0' in text
    assert 'http_request_duration_seconds_bucket{' in text

    line = [r for r in client.logs.records() if r.get("request_id") == "trace-abc-1"][0]
    assert line["service"] == "user-service" and line["level"] == "info"
    assert line["method"] == "GET" and line["path"] == "/123456789" and line["status"] == 404
    assert isinstance(line["duration_ms"], float) and line["ts"].endswith("Z")


async def test_redis_down_degrades_but_serves(start):
    client = await start("user", redis_port=1)  # nothing listens there
    response = await client.post("/", json={"name": "NoCache", "email": unique_email()})
    assert response.status == 201
    user = await response.json()
    response = await client.get(f"/{user['id']}")
    assert response.status == 200 and response.headers["X-Cache"] == "MISS"
    response = await client.get("/health")
    assert response.status == 503
    health = await response.json()
    assert health["status"] == "degraded"
    assert health["checks"]["database"] == "ok"
    assert health["checks"]["cache"].startswith("error: ")


async def test_database_down_answers_503(start):
    client = await start("user", use_infra=False, wait_db=False, mysql_host="127.0.0.1", mysql_port=1,
                         redis_host="127.0.0.1", redis_port=1)
    response = await client.get("/1")
    assert response.status == 503
    error = await response.json()
    assert error["error"] == "database unavailable" and error["request_id"]
    response = await client.get("/health")
    assert response.status == 503
    assert (await response.json())["checks"]["database"].startswith("error: ")


@pytest.fixture
def persistent_redis(infra):
    """A Redis of its own with an append-only file, as the lab's (redis.conf: appendonly yes):
    it comes back from a stop with the entries it held, stale ones included."""
    client = infra["client"]
    container = client.containers.run(
        infra["redis"].image.id, ["redis-server", "--requirepass", "h3s-redis-pw", "--appendonly", "yes"],
        name=f"h3s-unit-redis-aof-{uuid.uuid4().hex[:8]}", detach=True, network=infra["network"],
        labels={"h3s.test": "unit"})
    try:
        container.reload()
        yield container, container.attrs["NetworkSettings"]["Networks"][infra["network"]]["IPAddress"]
    finally:
        container.remove(force=True, v=True)


def _redis_cli(container, *argv):
    return container.exec_run(["redis-cli", "--no-auth-warning", "-a", "h3s-redis-pw", *argv]).output.decode().strip()


def _wait_for_redis(container, deadline_s=30):
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        container.reload()
        if container.status == "running" and _redis_cli(container, "PING") == "PONG":
            return
        time.sleep(0.1)
    raise AssertionError("Redis did not answer PING again")


async def test_no_stale_read_after_a_write_while_redis_was_down(start, infra, persistent_redis):
    container, redis_ip = persistent_redis
    writer = await start("user", redis_host=redis_ip)   # the replica that takes the write
    reader = await start("user", redis_host=redis_ip)   # a replica idle during the outage
    user = await (await writer.post("/", json={"name": "Before", "email": unique_email()})).json()
    assert (await reader.get(f"/{user['id']}")).headers["X-Cache"] == "MISS"
    assert (await reader.get(f"/{user['id']}")).headers["X-Cache"] == "HIT"

    container.stop(timeout=10)  # Redis writes its append-only file and exits
    response = await writer.patch(f"/{user['id']}", json={"name": "During the outage"})
    assert response.status == 200  # the write is done; its invalidation failed
    await writer.close()  # the writer is gone too: only the database remembers the failed invalidation
    container.start()
    _wait_for_redis(container)
    # the control: Redis came back holding the entry from before the write
    stale = _redis_cli(container, "GET", f"ecommerce:user:{user['id']}")
    assert '"Before"' in stale

    # every read from now on is the new row; the stale entry is swept within seconds
    deadline = time.monotonic() + 15
    swept = False
    while not swept and time.monotonic() < deadline:
        response = await reader.get(f"/{user['id']}")
        assert response.status == 200 and (await response.json())["name"] == "During the outage"
        swept = "Before" not in _redis_cli(container, "GET", f"ecommerce:user:{user['id']}")
        await asyncio.sleep(0.2)
    assert swept, "the stale entry is still in Redis 15 s after it came back"
    assert any(r["msg"] == "cache swept" and r["keys"] == 1 for r in reader.logs.records())
    assert sql(infra, "users", "SELECT cache_key FROM cache_invalidations WHERE cache_key = %s",
               (f"user:{user['id']}",)) == ()
