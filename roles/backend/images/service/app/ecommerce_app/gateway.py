"""api-gateway: /users, /orders, /payments proxied to the services, /system/status.

One shared aiohttp ClientSession (a keep-alive connection pool) serves every upstream.
Each upstream host name (the course's name, a DNS alias of every replica) is resolved
here to all of its addresses, cached DNS_TTL seconds, so replicas added or removed are
seen within seconds. A request goes to one address, round robin, with the original
``Host`` header. Passive health, as nginx's max_fails/fail_timeout: an address that
refused, timed out, dropped the connection or said it is draining (X-Replica-Draining)
is left out for EJECT_SECONDS (all of them are tried when every one is out).

Retries go to another address, at most one per other replica (3 attempts in all):
* idempotent requests (GET, HEAD, OPTIONS, PUT, DELETE) and POST/PATCH with an
  ``Idempotency-Key`` (the services deduplicate by it) are retried after a refused or
  dropped connection, a timeout, or a 502/503 answer;
* a POST/PATCH without a key is never sent twice: it moves on only when its connection
  could not be opened (nothing was sent), otherwise the failure is answered.
"""

from __future__ import annotations

import asyncio
import time
from typing import Optional

import aiohttp
from aiohttp import web

from .endpoints import Resolver, ResolverHook, Upstream
from .http_errors import ApiError
from .idempotency import IDEMPOTENCY_HEADER
from .logs import utc_iso
from .middleware import DRAINING_HEADER, REQUEST_ID_HEADER, request_id_of

ROUTES = {
    "users": ("user-service", "user_service_url"),
    "orders": ("order-service", "order_service_url"),
    "payments": ("payment-service", "payment_service_url"),
}
HOP_BY_HOP = frozenset(h.lower() for h in (
    "Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "TE", "Trailer", "Trailers",
    "Transfer-Encoding", "Upgrade", "Host", "Content-Length", "X-Request-ID"))
IDEMPOTENT = frozenset(("GET", "HEAD", "OPTIONS", "PUT", "DELETE"))
RETRY_STATUSES = frozenset((502, 503))
MAX_ATTEMPTS = 3


class Gateway:
    def __init__(self, app: web.Application, resolver: Resolver):
        config = app["config"]
        self.config = config
        self.logger = app["logger"]
        self.metrics = app["metrics"]
        self.resolver = resolver
        self.eject_seconds = config.eject_seconds
        self.upstreams = {prefix: Upstream(name, getattr(config, attr)) for prefix, (name, attr) in ROUTES.items()}
        self.timeout = aiohttp.ClientTimeout(total=config.request_timeout,
                                             sock_connect=min(config.request_timeout, 2.0))
        self.status_timeout = aiohttp.ClientTimeout(total=config.status_timeout)
        self.session: Optional[aiohttp.ClientSession] = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=512, limit_per_host=256, keepalive_timeout=30,
                                         enable_cleanup_closed=False)
        self.session = aiohttp.ClientSession(connector=connector, auto_decompress=False,
                                             cookie_jar=aiohttp.DummyCookieJar())

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    def _count(self, upstream: Upstream, outcome: str) -> None:
        self.metrics.upstream.labels(self.metrics.service, upstream.name, outcome).inc()

    # proxy -------------------------------------------------------------------------------------
    def _headers(self, request: web.Request, upstream: Upstream) -> dict:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        headers["Host"] = upstream.host_header
        headers[REQUEST_ID_HEADER] = request_id_of(request)
        forwarded_for = request.headers.get("X-Forwarded-For")
        remote = request.remote or ""
        headers["X-Forwarded-For"] = f"{forwarded_for}, {remote}" if forwarded_for else remote
        headers.setdefault("X-Forwarded-Proto", request.scheme)
        headers.setdefault("X-Forwarded-Host", request.host)
        return headers

    def _eject(self, upstream: Upstream, address: str, reason: str, request: web.Request) -> None:
        if upstream.eject(address, self.eject_seconds):
            self._count(upstream, "ejected")
            self.logger.warning("replica left out", request_id=request_id_of(request), upstream=upstream.name,
                                address=address, reason=reason, seconds=self.eject_seconds)

    async def proxy(self, request: web.Request, prefix: str) -> web.Response:
        upstream = self.upstreams[prefix]
        raw_path = request.rel_url.raw_path[len(prefix) + 1:] or "/"
        if not raw_path.startswith("/"):
            raw_path = "/" + raw_path
        body = await request.read() if request.body_exists else None
        if body == b"" and request.method in IDEMPOTENT:
            body = None
        headers = self._headers(request, upstream)
        try:
            addresses = await self.resolver.resolve(upstream.host, upstream.port)
        except OSError as exc:
            self._count(upstream, "resolve_error")
            raise ApiError(502, f"{upstream.name} unavailable (cannot resolve {upstream.host})") from exc
        attempts = upstream.order(addresses)[:MAX_ATTEMPTS]
        # a request the service may receive twice: idempotent, or deduplicated by its key
        repeatable = request.method in IDEMPOTENT or bool(request.headers.get(IDEMPOTENCY_HEADER))
        failure: ApiError = ApiError(502, f"{upstream.name} unavailable")
        for index, address in enumerate(attempts):
            more = index < len(attempts) - 1
            url = upstream.target(address, raw_path, request.rel_url.raw_query_string)
            log = {"request_id": request_id_of(request), "upstream": upstream.name, "address": address}
            try:
                async with self.session.request(request.method, url, headers=headers, data=body,
                                                timeout=self.timeout, allow_redirects=False) as response:
                    payload = await response.read()
                    if response.headers.get(DRAINING_HEADER):
                        self._eject(upstream, address, "draining", request)
                    if response.status in RETRY_STATUSES and repeatable and more:
                        self._count(upstream, "retry")
                        self.logger.warning("upstream failed, retrying on another replica",
                                            status=response.status, **log)
                        continue
                    self._count(upstream, str(response.status))
                    out = {k: v for k, v in response.headers.items()
                           if k.lower() not in HOP_BY_HOP and k != DRAINING_HEADER}
                    return web.Response(body=payload, status=response.status, headers=out)
            except aiohttp.ClientConnectorError as exc:
                # nothing was sent: any request may go on to another replica
                self._eject(upstream, address, f"connect: {exc.__class__.__name__}", request)
                failure = ApiError(502, f"{upstream.name} unavailable")
                outcome = "error"
            except (aiohttp.ServerTimeoutError, asyncio.TimeoutError) as exc:
                connect = "onnect" in str(exc)
                self._eject(upstream, address, "connect timeout" if connect else "timeout", request)
                failure = ApiError(502 if connect else 504,
                                   f"{upstream.name} unavailable" if connect else f"{upstream.name} timed out")
                outcome = "timeout"
                if not (connect or repeatable):
                    self._count(upstream, outcome)
                    raise failure from None
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
                # the request may have reached the replica: only a repeatable one goes on
                self._eject(upstream, address, exc.__class__.__name__, request)
                failure = ApiError(502, f"{upstream.name} unavailable")
                outcome = "error"
                if not repeatable:
                    self._count(upstream, outcome)
                    raise failure from None
            except aiohttp.ClientError:
                self._count(upstream, "error")
                raise ApiError(502, f"{upstream.name} unavailable") from None
            if more:
                self._count(upstream, "retry")
                self.logger.warning("upstream unreachable, retrying on another replica", error=outcome, **log)
                continue
            self._count(upstream, outcome)
            raise failure from None
        raise failure  # pragma: no cover  (attempts is never empty)

    def handler(self, prefix: str):
        async def handle(request: web.Request) -> web.Response:
            return await self.proxy(request, prefix)
        return handle

    # status ------------------------------------------------------------------------------------
    async def probe(self, upstream: Upstream, request_id: str) -> dict:
        started = time.perf_counter()
        result: dict = {}
        try:
            async with self.session.get(upstream.url + "/health", headers={REQUEST_ID_HEADER: request_id},
                                        timeout=self.status_timeout) as response:
                try:
                    data = await response.json(content_type=None)
                except ValueError:
                    data = None
                data = data if isinstance(data, dict) else {}
                if response.status == 200:
                    status = data.get("status") or "healthy"
                elif response.status == 503:
                    status = data.get("status") if data.get("status") not in (None, "healthy") else "degraded"
                else:
                    status = "unhealthy"
                result = {"status": status, "http_status": response.status}
                if isinstance(data.get("checks"), dict):
                    result["checks"] = data["checks"]
        except asyncio.TimeoutError:
            result = {"status": "down", "error": "timeout"}
        except aiohttp.ClientError as exc:
            result = {"status": "down", "error": f"{exc.__class__.__name__}"}
        except OSError as exc:
            result = {"status": "down", "error": f"{exc.__class__.__name__}"}
        result["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
        return result

    async def system_status(self, request: web.Request) -> web.Response:
        upstreams = list(self.upstreams.values())
        results = await asyncio.gather(*(self.probe(u, request_id_of(request)) for u in upstreams))
        services = {u.name: result for u, result in zip(upstreams, results)}
        overall = "healthy" if all(r["status"] == "healthy" for r in results) else "degraded"
        return web.json_response({"timestamp": utc_iso(), "gateway": "healthy", "status": overall,
                                  "services": services})


def setup(app: web.Application, resolver: Optional[ResolverHook] = None) -> None:
    gateway = Gateway(app, Resolver(resolver, app["config"].dns_ttl))
    app["gateway"] = gateway

    async def lifecycle(app):
        await gateway.start()
        yield
        await gateway.close()

    app.cleanup_ctx.append(lifecycle)
    app.router.add_get("/system/status", gateway.system_status)
    for prefix in ROUTES:
        handle = gateway.handler(prefix)
        app.router.add_route("*", f"/{prefix}", handle)
        app.router.add_route("*", "/%s/{tail:.*}" % prefix, handle)
