"""GET /health and GET /metrics, the same on every service."""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from .logs import utc_iso


async def health(request: web.Request) -> web.Response:
    app = request.app
    checks = app["health_checks"]
    names = list(checks)
    results = await asyncio.gather(*(checks[name]() for name in names), return_exceptions=True)
    report = {}
    for name, result in zip(names, results):
        if isinstance(result, BaseException):
            result = f"error: {result.__class__.__name__}"
        report[name] = result
    healthy = all(value == "ok" for value in report.values())
    status = "healthy" if healthy else "degraded"
    if app["state"]["draining"]:
        healthy, status = False, "draining"
    body = {
        "service": app["config"].service_name,
        "status": status,
        "timestamp": utc_iso(),
        "uptime": round(time.monotonic() - app["started"], 3),
        "checks": report,
    }
    return web.json_response(body, status=200 if healthy else 503)


async def metrics(request: web.Request) -> web.Response:
    return request.app["metrics"].render()


def add_routes(app: web.Application) -> None:
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
