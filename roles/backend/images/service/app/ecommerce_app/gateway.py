"""api-gateway: /users, /orders, /payments proxied to the services, /system/status.

One shared aiohttp ClientSession (a keep-alive connection pool) serves every upstream.
Each upstream host name is resolved here (getaddrinfo, cached a few seconds) and the
request is sent to one address, round robin, with the original ``Host`` header: so when a
name stands for several replicas, a failed idempotent request (connect error, 502 or 503)
is retried once on another address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from typing import Awaitable, Callable, Dict, List, Optional
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from yarl import URL

from .http_errors import ApiError
from .logs import utc_iso
from .middleware import REQUEST_ID_HEADER, request_id_of

ROUTES = {
    "users": ("user-service", "user_service_url"),
    "orders": ("order-service", "order_service_url"),
    "payments": ("payment-service", "payment_service_url"),
}
HOP_BY_HOP = frozenset(h.lower() for h in (
    "Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "TE", "Trailer", "Trailers",
    "Transfer-Encoding", "Upgrade", "Host", "Content-Length", "X-Request-ID"))
IDEMPOTENT = frozenset(("GET", "HEAD", "OPTIONS"))
RETRY_STATUSES = frozenset((502, 503))
DNS_TTL_S = 5.0

ResolverHook = Callable[[str, int], Awaitable[List[str]]]


class Resolver:
    """Host name -> list of IP addresses, cached ``ttl`` seconds; ``hook`` replaces getaddrinfo."""

    def __init__(self, hook: Optional[ResolverHook] = None, ttl: float = DNS_TTL_S):
        self.hook = hook
        self.ttl = ttl
        self._cache: Dict[tuple, tuple] = {}

    async def resolve(self, host: str, port: int) -> List[str]:
        try:
            ipaddress.ip_address(host)
            return [host]
        except ValueError:
            pass
        key = (host, port)
        cached = self._cache.get(key)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        if self.hook is not None:
            addresses = list(await self.hook(host, port))
        else:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
            addresses = []
            for _family, _type, _proto, _name, sockaddr in infos:
                if sockaddr[0] not in addresses:
                    addresses.append(sockaddr[0])
        if not addresses:
            raise OSError(f"{host} has no address")
        self._cache[key] = (now + self.ttl, addresses)
        return addresses


class Upstream:
    def __init__(self, name: str, url: str):
        parts = urlsplit(url)
        self.name = name
        self.scheme = parts.scheme or "http"
        self.host = parts.hostname or name
        self.port = parts.port or (443 if self.scheme == "https" else 80)
        self.base_path = parts.path.rstrip("/")
        default_port = (self.scheme == "http" and self.port == 80) or (self.scheme == "https" and self.port == 443)
        self.host_header = self.host if default_port else f"{self.host}:{self.port}"
        self.url = url.rstrip("/")
        self._next = 0

    def order(self, addresses: List[str]) -> List[str]:
        """The addresses to try, rotated round robin."""
        start = self._next % len(addresses)
        self._next += 1
        return addresses[start:] + addresses[:start]

    def target(self, address: str, raw_path: str, raw_query: str) -> URL:
        host = f"[{address}]" if ":" in address else address
        url = f"{self.scheme}://{host}:{self.port}{self.base_path}{raw_path}"
        if raw_query:
            url += "?" + raw_query
        return URL(url, encoded=True)


class Gateway:
    def __init__(self, app: web.Application, resolver: Resolver):
        config = app["config"]
        self.config = config
        self.logger = app["logger"]
        self.metrics = app["metrics"]
        self.resolver = resolver
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
        addresses = upstream.order(addresses)
        retryable = request.method in IDEMPOTENT and len(addresses) > 1
        attempts = addresses[:2] if retryable else addresses[:1]
        for index, address in enumerate(attempts):
            last = index == len(attempts) - 1
            url = upstream.target(address, raw_path, request.rel_url.raw_query_string)
            try:
                async with self.session.request(request.method, url, headers=headers, data=body,
                                                timeout=self.timeout, allow_redirects=False) as response:
                    payload = await response.read()
                    if response.status in RETRY_STATUSES and not last:
                        self._count(upstream, "retry")
                        self.logger.warning("upstream failed, retrying on another replica",
                                            request_id=request_id_of(request), upstream=upstream.name,
                                            address=address, status=response.status)
                        continue
                    self._count(upstream, str(response.status))
                    out = {k: v for k, v in response.headers.items() if k.lower() not in HOP_BY_HOP}
                    return web.Response(body=payload, status=response.status, headers=out)
            except (aiohttp.ClientConnectorError, aiohttp.ServerDisconnectedError,
                    aiohttp.ServerTimeoutError) as exc:
                connect_failed = not isinstance(exc, aiohttp.ServerTimeoutError) or "onnect" in str(exc)
                if connect_failed and not last:
                    self._count(upstream, "retry")
                    self.logger.warning("upstream unreachable, retrying on another replica",
                                        request_id=request_id_of(request), upstream=upstream.name,
                                        address=address, error=f"{exc.__class__.__name__}: {exc}")
                    continue
                if not connect_failed:
                    self._count(upstream, "timeout")
                    raise ApiError(504, f"{upstream.name} timed out") from None
                self._count(upstream, "error")
                raise ApiError(502, f"{upstream.name} unavailable") from None
            except asyncio.TimeoutError:
                self._count(upstream, "timeout")
                raise ApiError(504, f"{upstream.name} timed out") from None
            except aiohttp.ClientError:
                self._count(upstream, "error")
                raise ApiError(502, f"{upstream.name} unavailable") from None
        raise ApiError(502, f"{upstream.name} unavailable")  # pragma: no cover

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
    gateway = Gateway(app, Resolver(resolver))
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
