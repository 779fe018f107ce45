"""Prometheus metrics: one registry per application (so tests can build many apps)."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

try:  # process_* metrics where /proc exists
    from prometheus_client import ProcessCollector
except ImportError:  # pragma: no cover
    ProcessCollector = None

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self, service: str):
        self.service = service
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ["service", "method", "route", "status"]
        self.requests = Counter(
            "http_requests_total", "HTTP requests handled, by route template and status",
            labels, registry=self.registry)
        self.latency = Histogram(
            "http_request_duration_seconds", "HTTP request latency, by route template and status",
            labels, buckets=BUCKETS, registry=self.registry)
        self.in_flight = Gauge(
            "http_requests_in_flight", "HTTP requests being handled", ["service"], registry=self.registry)
        self.upstream = Counter(
            "upstream_requests_total", "Requests sent to other services, by target and outcome",
            ["service", "target", "outcome"], registry=self.registry)
        if ProcessCollector is not None:
            try:
                ProcessCollector(registry=self.registry)
            except Exception:  # pragma: no cover - no /proc
                pass

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        status_label = str(status)
        self.requests.labels(self.service, method, route, status_label).inc()
        self.latency.labels(self.service, method, route, status_label).observe(seconds)

    def render(self) -> web.Response:
        response = web.Response(body=generate_latest(self.registry))
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response
