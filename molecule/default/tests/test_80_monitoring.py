"""The monitoring tier in the offline profile: Prometheus ready with every target up, the
exporters reporting their stores, a request through :8080 raising the gateway's counter, a
stopped service's alert going pending then firing, and the dashboard's queries valid
against the live Prometheus."""

import json
import sys
import urllib.error
import urllib.parse
import urllib.request
import uuid

import pytest

from conftest import REPO, poll, wait_healthy

sys.path.insert(0, str(REPO / "tests"))  # tests/dashboard_queries.py
from dashboard_queries import dashboard_queries  # noqa: E402  pylint: disable=import-error,wrong-import-position

PROMETHEUS = "http://127.0.0.1:9090"
APP = "http://127.0.0.1:8080"
# The offline profile's jobs: no cAdvisor (upstream only).
JOBS = {"prometheus", "api-gateway", "user-service", "order-service", "payment-service",
        "nginx", "mysql", "redis", "node"}


def api(path, **params):
    url = PROMETHEUS + path + ("?" + urllib.parse.urlencode(params) if params else "")
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def value(expr):
    """The single value of an instant query, or None when it has no result."""
    result = api("/api/v1/query", query=expr)["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def through_the_lb(path="/api/users/health"):
    """One request through :8080 (the gateway counts it)."""
    request = urllib.request.Request(APP + path, headers={"X-Request-ID": f"monitoring-{uuid.uuid4()}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        return response.status


def test_prometheus_is_ready_and_every_target_is_up():
    def ready():
        with urllib.request.urlopen(PROMETHEUS + "/-/ready", timeout=10) as response:
            return response.status == 200
    poll("Prometheus ready", ready, deadline=60, retry_on=(urllib.error.URLError, ConnectionError))

    def all_up():
        targets = api("/api/v1/targets")["data"]["activeTargets"]
        down = [(t["labels"]["job"], t["lastError"]) for t in targets if t["health"] != "up"]
        jobs = {t["labels"]["job"] for t in targets}
        return jobs == JOBS and not down and targets
    targets = poll("every target up", all_up, deadline=60)
    # one target per replica: the gateway and the three services run two each
    assert len(targets) == len(JOBS) + 4


@pytest.mark.parametrize("expr", ['mysql_up{job="mysql"}', 'redis_up{job="redis"}', 'nginx_up{job="nginx"}'])
def test_the_exporters_report_their_stores(expr):
    # the exporter's next scrape after its store answers
    poll(f"{expr} == 1", lambda: value(expr), done=lambda v: v == 1, deadline=60)


def test_the_node_exporter_reports_the_filesystems():
    expr = 'max(node_filesystem_size_bytes{job="node"})'
    poll(f"{expr} > 0", lambda: value(expr), done=lambda v: v is not None and v > 0, deadline=60)


def test_a_request_through_the_load_balancer_raises_the_gateways_counter():
    expr = 'sum(http_requests_total{job="api-gateway", route=~".*users.*"})'
    before = poll("a gateway request counter", lambda: value(expr), done=lambda v: v is not None, deadline=30)
    for _attempt in range(5):
        through_the_lb()
    after = poll("the counter to rise by 5", lambda: value(expr) or 0, done=lambda v: v >= before + 5, deadline=30)
    assert after >= before + 5


def test_a_stopped_service_alert_goes_pending_then_firing(client, undo):
    # one replica of two: the alert is per target (instance)
    container = client.containers.get("payment-service-1")
    container.stop(timeout=5)
    undo(lambda: (client.containers.get("payment-service-1").start(), wait_healthy(client, "payment-service-1")))
    seen = []

    def state():
        alerts = [a for a in api("/api/v1/alerts")["data"]["alerts"]
                  if a["labels"].get("alertname") == "TargetDown" and a["labels"].get("job") == "payment-service"]
        if alerts and (not seen or seen[-1] != alerts[0]["state"]):
            seen.append(alerts[0]["state"])
        return "firing" in seen
    poll("TargetDown{job=payment-service} to fire", state, deadline=90, interval=0.5)
    assert seen[0] == "pending", seen
    assert seen[-1] == "firing", seen


def test_the_target_comes_back_after_the_restart():
    # (after the previous test's undo) Prometheus sees payment-service again.
    poll("every payment-service replica up again", lambda: value('min(up{job="payment-service"})') == 1, deadline=60)


def test_every_dashboard_query_is_valid_against_the_live_prometheus():
    queries = dashboard_queries(REPO / "roles/monitoring/files/grafana/dashboards/ecommerce.json")
    assert queries
    failed = {}
    for title, expr in queries:
        answer = api("/api/v1/query", query=expr)
        if answer["status"] != "success":
            failed[title] = answer
    assert not failed
    # The request-path panels have data here (cAdvisor's are empty offline): a rate needs two
    # scrapes with requests between them, so keep requests coming while polling.
    expr = "sum(rate(http_requests_total[1m]))"
    poll(f"{expr} > 0", lambda: through_the_lb() and value(expr), done=lambda v: v is not None and v > 0,
         deadline=90, interval=2.0)


def test_only_the_load_balancer_listens_on_all_interfaces(client):
    for container in client.containers.list(filters={"label": "dockerlab.stack=ecommerce-molecule"}):
        for port, bindings in (container.attrs["HostConfig"]["PortBindings"] or {}).items():
            for binding in bindings or []:
                expected = "0.0.0.0" if container.name == "load-balancer" else "127.0.0.1"
                host_ip = binding["HostIp"] or "0.0.0.0"
                assert host_ip == expected, f"{container.name} {port} is published on {host_ip}"
