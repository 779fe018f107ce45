"""The middleware every service shares: request id, JSON errors, metrics, one log line per request."""

from __future__ import annotations

import asyncio
import re
import time
import uuid

from aiohttp import web

from .http_errors import HTTP_MESSAGES, ApiError, DependencyUnavailable, error_response
from .logs import JsonLogger
from .metrics import Metrics

REQUEST_ID_HEADER = "X-Request-ID"
# Who answered: a service replica says X-Served-By (as the web servers do), the gateway
# replica that proxied says X-Gateway; the load test counts the spread over replicas by them.
SERVED_BY_HEADER = "X-Served-By"
GATEWAY_HEADER = "X-Gateway"
# Sent while the replica drains after SIGTERM: the gateway leaves it out at once.
DRAINING_HEADER = "X-Replica-Draining"
# The same ids the load balancer keeps (roles/frontend/templates/nginx/load-balancer.conf.j2),
# so a client's id reaches every hop's log line unchanged.
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:@=+/-]{1,128}$")
_KEEP_HEADERS = ("Allow", "Retry-After")


def request_id_of(request: web.Request) -> str:
    return request.get("request_id") or ""


def _incoming_request_id(request: web.BaseRequest) -> str:
    candidate = request.headers.get(REQUEST_ID_HEADER, "")
    if candidate and _REQUEST_ID_RE.match(candidate):
        return candidate
    return uuid.uuid4().hex


def _route_label(request: web.BaseRequest) -> str:
    try:
        resource = request.match_info.route.resource
    except AttributeError:  # pragma: no cover
        resource = None
    if resource is None:
        return "unmatched"
    return resource.canonical


def make_middleware(logger: JsonLogger, metrics: Metrics, max_body_bytes: int,
                    identity: tuple = (SERVED_BY_HEADER, "")):
    in_flight = metrics.in_flight.labels(metrics.service)
    identity_header, instance = identity

    @web.middleware
    async def middleware(request: web.Request, handler):
        started = time.perf_counter()
        request_id = _incoming_request_id(request)
        request["request_id"] = request_id
        in_flight.inc()
        status = 499
        try:
            try:
                length = request.content_length
                if length is not None and length > max_body_bytes:
                    raise ApiError(413, f"request body too large (limit {max_body_bytes} bytes)")
                response = await handler(request)
            except ApiError as exc:
                if isinstance(exc, DependencyUnavailable):
                    logger.warning("dependency unavailable", request_id=request_id,
                                   dependency=exc.dependency, detail=exc.detail)
                response = error_response(exc.status, exc.message, request_id, exc.field, exc.headers)
            except web.HTTPException as exc:
                if exc.status < 400:
                    raise
                message = HTTP_MESSAGES.get(exc.status) or exc.reason.lower()
                if exc.status == 413:
                    message = f"request body too large (limit {max_body_bytes} bytes)"
                headers = {k: v for k, v in exc.headers.items() if k in _KEEP_HEADERS}
                response = error_response(exc.status, message, request_id, None, headers)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the catch-all: log it, answer without internals
                logger.error("unhandled error", exc=exc, request_id=request_id,
                             method=request.method, path=request.path)
                response = error_response(500, "internal server error", request_id)
            response.headers[REQUEST_ID_HEADER] = request_id
            if instance:
                response.headers[identity_header] = instance
            if request.app["state"]["draining"]:
                # no new request on this connection: the caller reconnects to another replica
                response.headers[DRAINING_HEADER] = "1"
                response.force_close()
            status = response.status
            return response
        finally:
            in_flight.dec()
            elapsed = time.perf_counter() - started
            metrics.observe(request.method, _route_label(request), status, elapsed)
            logger.info("request", request_id=request_id, method=request.method, path=request.path,
                        status=status, duration_ms=round(elapsed * 1000, 2))

    return middleware
