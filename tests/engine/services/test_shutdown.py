# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""``python -m ecommerce_app`` as a real process: SIGTERM drains requests in flight, exit 0."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys

import aiohttp
import pytest
from aiohttp import web

from conftest import APP_DIR

pytestmark = pytest.mark.asyncio


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _slow_upstream(delay):
    async def handle(request):
        await asyncio.sleep(delay)
        return web.json_response({"slow": True, "path": request.path})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, runner.addresses[0][1]


async def _spawn(port, **env):
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("MYSQL", "REDIS", "SERVICE"))}
    environment.update({"PORT": str(port), "HOST": "127.0.0.1", "PYTHONUNBUFFERED": "1",
                        "PYTHONDONTWRITEBYTECODE": "1"}, **env)
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ecommerce_app", cwd=str(APP_DIR), env=environment,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


async def _wait_listening(session, url, process, timeout=15):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if process.returncode is not None:
            raise AssertionError("the service exited: " + (await process.stderr.read()).decode())
        try:
            async with session.get(url) as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError(f"{url} never answered")


async def _get(url, **kwargs):
    """One request on a fresh connection: (status, headers, body) or the connection error."""
    async with aiohttp.ClientSession() as fresh:
        async with fresh.get(url, **kwargs) as response:
            return response.status, response.headers, await response.read()


async def test_sigterm_drains_then_closes_and_completes_in_flight_requests():
    upstream, upstream_port = await _slow_upstream(3)
    port = _free_port()
    process = await _spawn(port, SERVICE="gateway", USER_SERVICE_URL=f"http://127.0.0.1:{upstream_port}",
                           REQUEST_TIMEOUT="10", DRAIN_SECONDS="1.5", INSTANCE="api-gateway-7")
    loop = asyncio.get_running_loop()
    try:
        async with aiohttp.ClientSession() as session:
            await _wait_listening(session, f"http://127.0.0.1:{port}/health", process)
            status, headers, _body = await _get(f"http://127.0.0.1:{port}/health")
            assert status == 200 and headers["X-Gateway"] == "api-gateway-7"
            assert "X-Replica-Draining" not in headers

            async def slow_call():
                async with session.get(f"http://127.0.0.1:{port}/users/slow",
                                       headers={"X-Request-ID": "drain-me"}) as response:
                    return response.status, await response.json()

            call = asyncio.ensure_future(slow_call())
            await asyncio.sleep(0.5)  # the request is in flight upstream
            process.send_signal(signal.SIGTERM)
            signalled = loop.time()
            # draining: still answering, but telling callers to go elsewhere and closing
            # every connection after its answer
            seen_draining = None
            while loop.time() - signalled < 1.2 and seen_draining is None:
                status, headers, _body = await _get(f"http://127.0.0.1:{port}/health")
                if headers.get("X-Replica-Draining") == "1":
                    seen_draining = (status, headers)
                await asyncio.sleep(0.05)
            assert seen_draining is not None, "no answer said it was draining"
            assert seen_draining[0] == 503 and seen_draining[1].get("Connection", "").lower() == "close"
            # then the listening socket closes: new connections are refused
            refused = False
            while loop.time() - signalled < 6 and not refused:
                try:
                    await _get(f"http://127.0.0.1:{port}/health")
                except aiohttp.ClientConnectionError:
                    refused = True
                await asyncio.sleep(0.1)
            assert refused, "the socket was still open 6 s after SIGTERM"
            assert not call.done()  # still in flight while the socket is closed
            status, body = await asyncio.wait_for(call, 10)
            assert status == 200 and body == {"slow": True, "path": "/slow"}
        code = await asyncio.wait_for(process.wait(), 15)
        assert code == 0
        lines = [json.loads(line) for line in (await process.stdout.read()).decode().splitlines() if line]
        messages = [line["msg"] for line in lines]
        assert messages.index("draining: answering with Connection: close before the socket closes") < \
            messages.index("shutting down: completing requests in flight") and messages[-1] == "stopped"
        drained = [line for line in lines if line.get("request_id") == "drain-me"]
        assert drained and drained[0]["status"] == 200 and drained[0]["duration_ms"] >= 2500
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await upstream.cleanup()


async def test_bad_configuration_exits_2():
    process = await _spawn(_free_port(), SERVICE="nonsense")
    code = await asyncio.wait_for(process.wait(), 15)
    assert code == 2
    assert b"SERVICE must be one of" in await process.stderr.read()


async def test_healthcheck_script():
    port = _free_port()
    process = await _spawn(port, SERVICE="gateway")
    try:
        async with aiohttp.ClientSession() as session:
            await _wait_listening(session, f"http://127.0.0.1:{port}/health", process)
        check = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ecommerce_app.healthcheck", cwd=str(APP_DIR),
            env={**os.environ, "SERVICE": "gateway", "PORT": str(port), "PYTHONDONTWRITEBYTECODE": "1"})
        assert await check.wait() == 0
    finally:
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 15) == 0
    check = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ecommerce_app.healthcheck", cwd=str(APP_DIR),
        env={**os.environ, "SERVICE": "gateway", "PORT": str(port), "PYTHONDONTWRITEBYTECODE": "1"}, stderr=asyncio.subprocess.DEVNULL)
    assert await check.wait() == 1
