# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""api-gateway: proxying, request ids, /system/status, 502/504, retry on another replica.

The upstreams are real aiohttp servers on loopback addresses (no database needed), except
the request-id test that goes through a real user-service.
"""

from __future__ import annotations

import asyncio
import socket

import pytest
from aiohttp import web

from conftest import unique_email

pytestmark = pytest.mark.asyncio


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _echo_app(name="echo", status=200, delay=0.0):
    seen = []

    async def handle(request):
        body = await request.read()
        seen.append({"method": request.method, "path": request.path_qs, "body": body,
                     "headers": dict(request.headers)})
        if delay:
            await asyncio.sleep(delay)
        return web.json_response({"name": name, "path": request.path_qs,
                                  "status": "healthy"}, status=status, headers={"X-Upstream": name})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    app["seen"] = seen
    return app


async def _serve(app, host="127.0.0.1", port=0):
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    port = runner.addresses[0][1]
    return runner, port


async def test_prefix_stripping_query_body_and_headers(start):
    echo = _echo_app()
    runner, port = await _serve(echo)
    try:
        url = f"http://127.0.0.1:{port}"
        gateway = await start("gateway", use_infra=False, user_service_url=url, order_service_url=url,
                              payment_service_url=url)
        cases = [("/users/health", "/health"), ("/users/5", "/5"), ("/users", "/"), ("/users/", "/"),
                 ("/orders/?user_id=3&x=a%20b", "/?user_id=3&x=a%20b"), ("/payments/7", "/7")]
        for path, expected in cases:
            response = await gateway.get(path)
            assert response.status == 200
            assert (await response.json())["path"] == expected, path
            assert echo["seen"][-1]["path"] == expected
        response = await gateway.post("/payments", json={"order_id": 1},
                                      headers={"Idempotency-Key": "abc-1", "X-Request-ID": "rid-42"})
        assert response.status == 200
        assert response.headers["X-Request-ID"] == "rid-42"
        assert response.headers["X-Upstream"] == "echo"
        seen = echo["seen"][-1]
        assert seen["method"] == "POST" and seen["body"] == b'{"order_id": 1}'
        assert seen["headers"]["Idempotency-Key"] == "abc-1"
        assert seen["headers"]["X-Request-ID"] == "rid-42"
        assert seen["headers"]["Host"] == f"127.0.0.1:{port}"
        assert seen["headers"]["X-Forwarded-For"] == "127.0.0.1"
        # generated when absent: uuid4 hex, the same on both hops
        response = await gateway.get("/users/1")
        generated = response.headers["X-Request-ID"]
        assert len(generated) == 32 and echo["seen"][-1]["headers"]["X-Request-ID"] == generated
        response = await gateway.get("/usersx")
        assert response.status == 404
    finally:
        await runner.cleanup()


@pytest.mark.needs_infra
async def test_request_id_reaches_the_service_log(start):
    users = await start("user")
    gateway = await start("gateway", use_infra=False, user_service_url=users.base_url)
    response = await gateway.post("/users", json={"name": "Via Gateway", "email": unique_email()},
                                  headers={"X-Request-ID": "gw-trace-7"})
    assert response.status == 201
    user = await response.json()
    response = await gateway.get(f"/users/{user['id']}", headers={"X-Request-ID": "gw-trace-8"})
    assert response.status == 200 and response.headers["X-Cache"] == "MISS"
    assert response.headers["X-Request-ID"] == "gw-trace-8"
    response = await gateway.get(f"/users/{user['id']}")
    assert response.headers["X-Cache"] == "HIT"
    service_lines = {r["request_id"]: r for r in users.logs.records() if r.get("msg") == "request"}
    assert service_lines["gw-trace-7"]["path"] == "/" and service_lines["gw-trace-7"]["status"] == 201
    assert service_lines["gw-trace-8"]["path"] == f"/{user['id']}"
    gateway_lines = {r["request_id"]: r for r in gateway.logs.records() if r.get("msg") == "request"}
    assert gateway_lines["gw-trace-8"]["path"] == f"/users/{user['id']}"
    assert gateway_lines["gw-trace-8"]["service"] == "api-gateway"


async def test_system_status_with_one_service_down(start):
    healthy = _echo_app("ok")
    degraded = _echo_app("degraded", status=503)
    runner1, port1 = await _serve(healthy)
    runner2, port2 = await _serve(degraded)
    try:
        gateway = await start("gateway", use_infra=False, user_service_url=f"http://127.0.0.1:{port1}",
                              order_service_url=f"http://127.0.0.1:{port2}",
                              payment_service_url=f"http://127.0.0.1:{_free_port()}")
        response = await gateway.get("/system/status")
        assert response.status == 200
        status = await response.json()
        assert status["gateway"] == "healthy" and status["timestamp"].endswith("Z")
        services = status["services"]
        assert services["user-service"]["status"] == "healthy"
        assert services["order-service"]["status"] == "degraded"
        assert services["order-service"]["http_status"] == 503
        assert services["payment-service"]["status"] == "down"
        assert all(isinstance(s["latency_ms"], float) for s in services.values())
        assert status["status"] == "degraded"
        response = await gateway.get("/health")
        assert response.status == 200
        assert (await response.json())["service"] == "api-gateway"
    finally:
        await runner1.cleanup()
        await runner2.cleanup()


async def test_system_status_probe_timeout(start):
    slow = _echo_app("slow", delay=3)
    runner, port = await _serve(slow)
    try:
        url = f"http://127.0.0.1:{port}"
        gateway = await start("gateway", use_infra=False, user_service_url=url, order_service_url=url,
                              payment_service_url=url, status_timeout="0.3")
        loop = asyncio.get_running_loop()
        began = loop.time()
        response = await gateway.get("/system/status")
        assert loop.time() - began < 2  # probed concurrently, each bounded
        assert response.status == 200
        services = (await response.json())["services"]
        assert {s["status"] for s in services.values()} == {"down"}
        assert services["user-service"]["error"] == "timeout"
    finally:
        await runner.cleanup()


async def test_502_when_refused_and_504_when_slow(start):
    slow = _echo_app("slow", delay=2)
    runner, port = await _serve(slow)
    try:
        gateway = await start("gateway", use_infra=False, request_timeout="0.5",
                              user_service_url=f"http://127.0.0.1:{_free_port()}",
                              order_service_url=f"http://127.0.0.1:{port}",
                              payment_service_url="http://no-such-host.invalid:3003")
        response = await gateway.get("/users/1")
        assert response.status == 502
        error = await response.json()
        assert error["error"] == "user-service unavailable" and error["request_id"]
        response = await gateway.get("/orders/1")
        assert response.status == 504
        assert (await response.json())["error"] == "order-service timed out"
        response = await gateway.get("/payments/1")
        assert response.status == 502
        response = await gateway.get("/metrics")
        text = await response.text()
        assert 'route="/users/{tail}"' in text and 'status="502"' in text and 'status="504"' in text
    finally:
        await runner.cleanup()


async def _replicas(first_app, second_app=None):
    """Servers on 127.0.0.1 and 127.0.0.2, same port; the second one may stay down."""
    port = _free_port()
    runners = [(await _serve(first_app, "127.0.0.1", port))[0]]
    if second_app is not None:
        runners.append((await _serve(second_app, "127.0.0.2", port))[0])
    return port, runners


async def test_retry_on_another_replica(start):
    good = _echo_app("good")
    bad = _echo_app("bad", status=503)
    port, runners = await _replicas(good, bad)
    resolved = []

    async def resolver(host, port_):
        resolved.append((host, port_))
        return ["127.0.0.2", "127.0.0.1"]

    try:
        gateway = await start("gateway", use_infra=False, options={"resolver": resolver},
                              user_service_url=f"http://users.test:{port}",
                              order_service_url=f"http://orders.test:{port}")
        names = []
        for _unused in range(4):
            response = await gateway.get("/users/1")
            assert response.status == 200
            names.append((await response.json())["name"])
        assert names == ["good"] * 4
        assert len(bad["seen"]) == 2  # round robin: every other request tried the bad one first
        assert good["seen"][-1]["headers"]["Host"] == f"users.test:{port}"
        assert resolved[0] == ("users.test", port)
        # a POST is not retried: the failing replica's answer is returned
        statuses = [(await gateway.post("/users", json={})).status for _unused in range(2)]
        assert sorted(statuses) == [200, 503]
    finally:
        for runner in runners:
            await runner.cleanup()


async def test_retry_when_a_replica_refuses(start):
    good = _echo_app("good")
    port, runners = await _replicas(good)  # nothing on 127.0.0.2

    async def resolver(host, port_):
        return ["127.0.0.2", "127.0.0.1"]

    try:
        gateway = await start("gateway", use_infra=False, options={"resolver": resolver},
                              user_service_url=f"http://users.test:{port}")
        for _unused in range(3):
            response = await gateway.get("/users/")
            assert response.status == 200
        assert len(good["seen"]) == 3
    finally:
        for runner in runners:
            await runner.cleanup()


def _dropping_app():
    """A replica that takes the request and drops the connection without an answer (as a
    replica killed mid-request does)."""
    seen = []

    async def handle(request):
        seen.append({"method": request.method, "path": request.path_qs,
                     "key": request.headers.get("Idempotency-Key")})
        request.transport.close()
        await asyncio.sleep(1)
        return web.Response(status=599)  # never reaches the client

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    app["seen"] = seen
    return app


def _two_replicas():
    async def resolver(host, port_):
        return ["127.0.0.2", "127.0.0.1"]
    return {"resolver": resolver}


async def test_a_failed_replica_is_left_out_for_eject_seconds_and_the_control_without(start):
    good, bad = _echo_app("good"), _dropping_app()
    port, runners = await _replicas(good, bad)
    try:
        for eject_seconds in ("30", "0"):
            bad["seen"].clear()
            gateway = await start("gateway", use_infra=False, options=_two_replicas(),
                                  eject_seconds=eject_seconds, user_service_url=f"http://users.test:{port}")
            assert (await gateway.get("/users/1")).status == 200  # dropped by the bad one, then the good one
            after_first = len(bad["seen"])
            statuses = [(await gateway.get("/users/1")).status for _unused in range(6)]
            assert after_first >= 1 and statuses == [200] * 6
            if eject_seconds == "30":
                # ejected: left out after its failure
                assert len(bad["seen"]) == after_first
                logged = [r for r in gateway.logs.records() if r["msg"] == "replica left out"]
                assert len(logged) == 1 and logged[0]["address"] == "127.0.0.2"
            else:
                # the control: without ejection every other request tries the bad replica again
                assert len(bad["seen"]) >= after_first + 3
    finally:
        for runner in runners:
            await runner.cleanup()


async def test_post_retried_with_an_idempotency_key_and_never_without(start):
    good, bad = _echo_app("good"), _dropping_app()
    port, runners = await _replicas(good, bad)
    try:
        gateway = await start("gateway", use_infra=False, options=_two_replicas(), eject_seconds="0",
                              user_service_url=f"http://users.test:{port}")
        # round robin: the first request goes to 127.0.0.2 (the dropping replica)
        response = await gateway.post("/users/", json={"n": 1}, headers={"Idempotency-Key": "k-1"})
        assert response.status == 200 and (await response.json())["name"] == "good"
        assert [s["key"] for s in bad["seen"]] == ["k-1"]
        assert good["seen"][-1]["headers"]["Idempotency-Key"] == "k-1"
        await gateway.get("/users/1")  # the good one: the next POST starts on the bad one again
        before = len(good["seen"])
        response = await gateway.post("/users/", json={"n": 2})
        assert response.status == 502  # it may have been applied: not sent again
        assert len(bad["seen"]) == 2 and len(good["seen"]) == before
    finally:
        for runner in runners:
            await runner.cleanup()


async def test_a_draining_replica_is_left_out_at_once(start):
    good = _echo_app("good")
    draining_seen = []

    async def draining(request):
        draining_seen.append(request.path_qs)
        return web.json_response({"name": "draining"}, headers={"X-Replica-Draining": "1"})

    bad = web.Application()
    bad.router.add_route("*", "/{tail:.*}", draining)
    port, runners = await _replicas(good, bad)
    try:
        gateway = await start("gateway", use_infra=False, options=_two_replicas(),
                              user_service_url=f"http://users.test:{port}")
        names = []
        for _unused in range(5):
            response = await gateway.get("/users/1")
            assert "X-Replica-Draining" not in response.headers  # not passed on to the load balancer
            names.append((await response.json())["name"])
        assert names == ["draining", "good", "good", "good", "good"]  # answered, then left out
        assert len(draining_seen) == 1
    finally:
        for runner in runners:
            await runner.cleanup()


async def test_service_names_are_resolved_again_after_dns_ttl(start):
    first, second = _echo_app("first"), _echo_app("second")
    port, runners = await _replicas(first, second)
    answers = {"now": ["127.0.0.1"]}
    calls = []

    async def resolver(host, port_):
        calls.append(host)
        return list(answers["now"])

    try:
        gateway = await start("gateway", use_infra=False, options={"resolver": resolver}, dns_ttl="0.3",
                              user_service_url=f"http://users.test:{port}")
        assert (await (await gateway.get("/users/1")).json())["name"] == "first"
        answers["now"] = ["127.0.0.2"]  # the replica was replaced by one with another address
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        name = "first"
        while loop.time() < deadline and name != "second":
            name = (await (await gateway.get("/users/1")).json())["name"]
            await asyncio.sleep(0.05)
        assert name == "second"
        assert len(calls) >= 2
    finally:
        for runner in runners:
            await runner.cleanup()


@pytest.mark.needs_infra
async def test_answers_name_the_gateway_and_the_service_replica(start):
    user = await start("user", instance="user-service-2")
    gateway = await start("gateway", use_infra=False, instance="api-gateway-1",
                          user_service_url=user.base_url)
    response = await gateway.get("/users/health")
    assert response.status == 200
    assert response.headers["X-Gateway"] == "api-gateway-1"
    assert response.headers["X-Served-By"] == "user-service-2"
