"""Calls from one service to another (order -> user, payment -> order).

The peer's name is resolved to all of its replicas (endpoints.py); a call goes to one,
round robin, and moves on to another when the connection cannot be opened, drops or
times out, leaving that replica out for a while. Every call made here may be sent twice:
GET, and POST /{id}/paid, which order-service applies once per payment.
"""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any, Optional, Tuple

import aiohttp
from aiohttp import web

from .db import Database
from .endpoints import Resolver, Upstream
from .http_errors import DependencyUnavailable
from .middleware import DRAINING_HEADER, REQUEST_ID_HEADER


MAX_ATTEMPTS = 2


def make_session(limit: int = 100) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit, keepalive_timeout=30)
    return aiohttp.ClientSession(connector=connector, auto_decompress=False,
                                 json_serialize=lambda obj: json.dumps(obj, default=str))


class Peer:
    """A peer service at ``base_url``; every failure to get an answer is a 503 dependency error."""

    def __init__(self, name: str, base_url: str, session: aiohttp.ClientSession, timeout: float,
                 metrics=None, service: str = "", resolver: Optional[Resolver] = None, eject_seconds: float = 10.0):
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.upstream = Upstream(name, self.base_url)
        self.resolver = resolver or Resolver()
        self.eject_seconds = eject_seconds
        self.session = session
        self.timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=min(timeout, 1.0))
        self.metrics = metrics
        self.service = service

    def _count(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.upstream.labels(self.service, self.name, outcome).inc()

    async def _send(self, method: str, path: str, headers: dict, body: Optional[dict]) -> Tuple[int, bytes]:
        try:
            addresses = await self.resolver.resolve(self.upstream.host, self.upstream.port)
        except OSError:
            self._count("error")
            raise DependencyUnavailable(self.name, f"cannot resolve {self.upstream.host}") from None
        attempts = self.upstream.order(addresses)[:MAX_ATTEMPTS]
        for index, address in enumerate(attempts):
            url = self.upstream.target(address, path, "")
            try:
                async with self.session.request(method, url, json=body, headers=headers,
                                                timeout=self.timeout) as response:
                    raw = await response.read()
                    if response.headers.get(DRAINING_HEADER):
                        self.upstream.eject(address, self.eject_seconds)
                    return response.status, raw
            except (asyncio.TimeoutError, aiohttp.ClientError) as exc:
                self.upstream.eject(address, self.eject_seconds)
                if index == len(attempts) - 1:
                    if isinstance(exc, asyncio.TimeoutError):
                        self._count("timeout")
                        raise DependencyUnavailable(self.name, "timeout") from None
                    self._count("error")
                    raise DependencyUnavailable(self.name, f"{exc.__class__.__name__}: {exc}") from None
                self._count("retry")
        raise DependencyUnavailable(self.name, "no address")  # pragma: no cover

    async def call(self, method: str, path: str, request_id: str, body: Optional[dict] = None
                   ) -> Tuple[int, Any]:
        headers = {REQUEST_ID_HEADER: request_id, "Accept": "application/json", "Host": self.upstream.host_header}
        status, raw = await self._send(method, path, headers, body)
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
        resolver = Resolver(ttl=config.dns_ttl)
        for key, (peer, url) in peers.items():
            app[key] = Peer(peer, url, session, config.request_timeout, app["metrics"], config.service_name,
                            resolver, config.eject_seconds)
        db.start()
        yield
        await session.close()
        await db.close()

    app.cleanup_ctx.append(lifecycle)
