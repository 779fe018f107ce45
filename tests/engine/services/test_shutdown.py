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


async def test_sigterm_drains_in_flight_requests():
    upstream, upstream_port = await _slow_upstream(1.5)
    port = _free_port()
    process = await _spawn(port, SERVICE="gateway", USER_SERVICE_URL=f"http://127.0.0.1:{upstream_port}",
                           REQUEST_TIMEOUT="10")
    try:
        async with aiohttp.ClientSession() as session:
            await _wait_listening(session, f"http://127.0.0.1:{port}/health", process)

            async def slow_call():
                async with session.get(f"http://127.0.0.1:{port}/users/slow",
                                       headers={"X-Request-ID": "drain-me"}) as response:
                    return response.status, await response.json()

            call = asyncio.ensure_future(slow_call())
            await asyncio.sleep(0.5)  # the request is in flight upstream
            process.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.3)
            # no new connections while draining
            with pytest.raises(aiohttp.ClientConnectionError):
                async with aiohttp.ClientSession() as fresh:
                    async with fresh.get(f"http://127.0.0.1:{port}/health") as response:
                        await response.read()
            status, body = await asyncio.wait_for(call, 10)
            assert status == 200 and body == {"slow": True, "path": "/slow"}
        code = await asyncio.wait_for(process.wait(), 15)
        assert code == 0
        lines = [json.loads(line) for line in (await process.stdout.read()).decode().splitlines() if line]
        messages = [line["msg"] for line in lines]
        assert "shutting down: draining requests in flight" in messages and messages[-1] == "stopped"
        drained = [line for line in lines if line.get("request_id") == "drain-me"]
        assert drained and drained[0]["status"] == 200 and drained[0]["duration_ms"] >= 1000
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
