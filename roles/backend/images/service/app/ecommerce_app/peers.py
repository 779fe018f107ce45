"""Calls from one service to another (order -> user, payment -> order)."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any, Optional, Tuple

import aiohttp
from aiohttp import web

from .db import Database
from .http_errors import DependencyUnavailable
from .middleware import REQUEST_ID_HEADER


def make_session(limit: int = 100) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit, ttl_dns_cache=10,
                                     keepalive_timeout=30)
    return aiohttp.ClientSession(connector=connector, auto_decompress=False,
                                 json_serialize=lambda obj: json.dumps(obj, default=str))


class Peer:
    """A peer service at ``base_url``; every failure to get an answer is a 503 dependency error."""

    def __init__(self, name: str, base_url: str, session: aiohttp.ClientSession, timeout: float,
                 metrics=None, service: str = ""):
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.session = session
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.metrics = metrics
        self.service = service

    def _count(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.upstream.labels(self.service, self.name, outcome).inc()

    async def call(self, method: str, path: str, request_id: str, body: Optional[dict] = None
                   ) -> Tuple[int, Any]:
        headers = {REQUEST_ID_HEADER: request_id, "Accept": "application/json"}
        try:
            async with self.session.request(method, self.base_url + path, json=body, headers=headers,
                                            timeout=self.timeout) as response:
                raw = await response.read()
                status = response.status
        except asyncio.TimeoutError:
            self._count("timeout")
            raise DependencyUnavailable(self.name, "timeout") from None
        except aiohttp.ClientError as exc:
            self._count("error")
            raise DependencyUnavailable(self.name, f"{exc.__class__.__name__}: {exc}") from None
        if status >= 500:
            self._count(str(status))
            raise DependencyUnavailable(self.name, f"HTTP {status}")
        self._count(str(status))
        try:
            data = json.loads(raw, parse_float=Decimal) if raw else None
        except ValueError:
            raise DependencyUnavailable(self.name, "invalid JSON answer") from None
        return status, data


def setup_database_service(app: web.Application, name: str, migrations, peers: dict) -> None:
    """What order- and payment-service share: their own database (health-checked) and a
    client for each peer they call, opened and closed with the app.

    ``peers`` maps an app key to ``(peer service name, its URL)``, e.g.
    ``{"users": ("user-service", config.user_service_url)}``.
    """
    config = app["config"]
    db = Database(config, app["logger"], migrations, name)
    app["db"] = db
    app["health_checks"]["database"] = db.check

    async def lifecycle(app):
        session = make_session()
        for key, (peer, url) in peers.items():
            app[key] = Peer(peer, url, session, config.request_timeout, app["metrics"], config.service_name)
        db.start()
        yield
        await session.close()
        await db.close()

    app.cleanup_ctx.append(lifecycle)
