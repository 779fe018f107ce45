"""Faults under load: each one happens while the course's load test (the load_test module's
engine) runs through :8080, and not one request fails.

The load is a mix of cached user reads, front pages and order writes with an
Idempotency-Key, eight clients, bounded by a stop event and 150 s. Each test says what it
sent, so a run that sent (almost) nothing cannot pass. The control (the same faults on a
one-replica lab fail requests) is measured side by side by `make bench`, not here: this
module runs on the default lab only. Every fault is undone before the next test.
"""

import json
import sys
import threading
import time
import urllib.request

import pytest

from conftest import REPO, component_containers, poll, recap_changed, run_playbook, secret, wait_healthy

sys.path.insert(0, str(REPO / "collections"))  # ansible_collections.dockerlab.ecommerce (a link to the checkout)
from ansible_collections.dockerlab.ecommerce.plugins.module_utils._load.runner import (  # noqa: E402  pylint: disable=wrong-import-position
    LoadConfig, run_load)

URL = "http://127.0.0.1:8080"
ORDER = {"user_id": "{user_id}", "items": [{"sku": "HA-1", "name": "availability", "quantity": 1,
                                            "unit_price": "1.00"}]}
MIX = [
    {"name": "get_user", "method": "GET", "path": "/api/users/{user_id}", "weight": 6},
    {"name": "front_page", "method": "GET", "path": "/", "weight": 1},
    {"name": "create_order", "method": "POST", "path": "/api/orders/", "weight": 2, "body": ORDER,
     "idempotency_key": True},
]
APP_SERVICES = ("api-gateway", "user-service", "order-service", "payment-service")
# The deploys under load apply the backend tier only (site.yml --tags backend: the same tasks
# as a full run for that tier, a quarter of the time); the last test runs all of site.yml.
BACKEND = ("site.yml", "--tags", "backend")


class Load:
    """The load test in a background thread: ``with Load() as load: <fault>``; then ``load.result``."""

    def __init__(self, **options):
        self.config = LoadConfig(base_url=URL, concurrency=8, duration_s=150, timeout_s=15, mix=MIX,
                                 setup_users=5, seed=11, **options)
        self.stop = threading.Event()
        self.result = None
        self.error = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        try:
            self.result = run_load(self.config, stop_event=self.stop)
        except Exception as exc:  # pylint: disable=broad-except  # reported by the test, not lost in the thread
            self.error = exc

    def __enter__(self):
        self.thread.start()
        time.sleep(3)  # setup done, the load running, every user read cached
        return self

    def __exit__(self, *exc_info):
        time.sleep(3)  # go on a little after the fault was undone
        self.stop.set()
        self.thread.join(60)
        assert not self.thread.is_alive(), "the load test did not stop"
        assert self.error is None, f"the load test could not run: {self.error}"


def assert_no_failed_request(load, fault, minimum=200):
    result = load.result
    summary = (f"{fault}: sent {result['sent']}, failed {result['failed']}, errors {result['errors']}, "
               f"status {result['status_counts']}, p99 {result['latency_ms']['p99']} ms, "
               f"sent again after a 503 with Retry-After: {result['retry_after_retries']}; "
               f"first failures: {result['failure_samples'][:5]}")
    print(summary)
    assert result["sent"] >= minimum, summary   # the load really ran through the fault
    assert result["failed"] == 0 and result["unfinished"] == 0, summary
    return result


def started(client, names):
    return {name: client.containers.get(name).attrs["State"]["StartedAt"] for name in names}


def test_every_stateless_service_runs_two_replicas_behind_its_name(client):
    for component in APP_SERVICES + ("web-server",):
        names = [c.name for c in component_containers(client, component)]
        assert len(names) == 2, (component, names)


def test_a_gateway_replica_restarted_under_load(client):
    with Load() as load:
        client.containers.get("api-gateway-1").restart(timeout=10)
        wait_healthy(client, "api-gateway-1", deadline=60)
    result = assert_no_failed_request(load, "docker restart api-gateway-1")
    assert set(result["spread"]["X-Gateway"]) == {"api-gateway-1", "api-gateway-2"}, result["spread"]


def test_a_service_replica_killed_under_load_then_brought_back_by_the_deploy(client):
    before = started(client, ["user-service-2", "order-service-1", "api-gateway-1"])
    with Load() as load:
        client.containers.get("user-service-1").kill()
        time.sleep(8)
        rc, out = run_playbook(*BACKEND)
        assert rc == 0, out[-3000:]
        wait_healthy(client, "user-service-1", deadline=60)
    assert_no_failed_request(load, "docker kill user-service-1, then site.yml --tags backend")
    # the deploy started the killed one again and touched nothing else
    assert started(client, list(before)) == before


def test_a_web_server_stopped_under_load(client):
    with Load() as load:
        client.containers.get("web-server-1").stop(timeout=10)
        time.sleep(5)
        client.containers.get("web-server-1").start()
        wait_healthy(client, "web-server-1", deadline=60)
    result = assert_no_failed_request(load, "docker stop web-server-1")
    assert result["by_request"]["front_page"]["sent"] > 20, result["by_request"]


def test_a_rolling_update_of_every_app_service_under_load(client):
    names = [c.name for component in APP_SERVICES for c in component_containers(client, component)]
    others = ["mysql-db", "redis-cache", "load-balancer", "web-server-1", "web-server-2"]
    before = started(client, names + others)
    with Load() as load:
        rc, out = run_playbook(*BACKEND, "-e", "backend_log_level=DEBUG")
        assert rc == 0, out[-3000:]
    try:
        assert_no_failed_request(load, "site.yml with an env change of every app service")
        after = started(client, names + others)
        assert all(after[name] != before[name] for name in names), "every app container was replaced"
        assert {name: after[name] for name in others} == {name: before[name] for name in others}
        # slot by slot: every slot-1 container was healthy before any slot-2 container stopped
        assert "Wait until the slot is healthy: slot 1" in out and "slot 2" in out
        assert max(after[f"{c}-1"] for c in APP_SERVICES) < min(after[f"{c}-2"] for c in APP_SERVICES), after
        assert "(a single instance) was unavailable" not in out  # no single instance was touched
    finally:
        rc, out = run_playbook(*BACKEND)  # back to the defaults
        assert rc == 0, out[-3000:]


def test_scaling_a_service_up_and_down_under_load_touches_nothing_else(client):
    others = [c.name for component in APP_SERVICES for c in component_containers(client, component)]
    before = started(client, others)
    with Load() as up:
        rc, out = run_playbook(*BACKEND, "-e", "order_service_replicas=3")
        assert rc == 0, out[-3000:]
    assert_no_failed_request(up, "order-service scaled from 2 to 3")
    assert [c.name for c in component_containers(client, "order-service")] == [
        "order-service-1", "order-service-2", "order-service-3"]
    assert started(client, others) == before  # the new replica was added, nothing else restarted
    with Load() as down:
        rc, out = run_playbook(*BACKEND)
        assert rc == 0, out[-3000:]
    assert_no_failed_request(down, "order-service scaled from 3 back to 2")
    assert [c.name for c in component_containers(client, "order-service")] == ["order-service-1", "order-service-2"]
    assert started(client, others) == before


def _api(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(URL + "/api" + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=15) as response:
        return response.status, json.loads(response.read() or b"null")


def test_redis_stopped_and_started_under_load_serves_no_stale_read(client):
    status, user = _api("POST", "/users/", {"name": "Before Redis stops", "email": f"ha-{time.time_ns()}@example.test"})
    assert status == 201
    for _replica in range(4):  # cached on every user-service replica's path
        _api("GET", f"/users/{user['id']}")
    with Load() as load:
        client.containers.get("redis-cache").stop(timeout=10)
        status, _body = _api("PATCH", f"/users/{user['id']}", {"name": "Written while Redis was down"})
        assert status == 200
        client.containers.get("redis-cache").start()
        wait_healthy(client, "redis-cache", deadline=60)
        # right after: every read, whichever replica takes it, is the row as written
        names = {_api("GET", f"/users/{user['id']}")[1]["name"] for _read in range(20)}
        assert names == {"Written while Redis was down"}, names
    assert_no_failed_request(load, "redis-cache stopped and started")


def _orders_present(client, ids):
    query = "SELECT COUNT(*) FROM orders WHERE id IN (%s)" % ",".join(str(int(i)) for i in ids)
    result = client.containers.get("mysql-db").exec_run(
        ["mysql", "-u", "order_service", "orders", "-N", "-e", query],
        environment={"MYSQL_PWD": secret("mysql_order_service")})
    assert result.exit_code == 0, result.output
    return int(result.output.decode().split()[-1])


def test_mysql_restarted_under_load_reads_go_on_and_no_acknowledged_write_is_lost(client):
    # A client that honours Retry-After sends a refused write again with its key: it is applied once.
    with Load(retry_after_max=20, collect_ids=True) as load:
        client.containers.get("mysql-db").restart(timeout=30)
        wait_healthy(client, "mysql-db", deadline=120)
        # the services' health comes back by itself (their pools reconnect)
        for component in APP_SERVICES:
            for container in component_containers(client, component):
                wait_healthy(client, container.name, deadline=60)
    result = assert_no_failed_request(load, "mysql-db restarted")
    assert result["retry_after_retries"] > 0, "no write met the restart: the fault was not felt"
    created = result["created"].get("create_order", [])
    assert created, result["by_request"]
    assert len(set(created)) == len(created)  # a retried write was not applied twice
    assert poll("every acknowledged order in MySQL", lambda: _orders_present(client, created),
                done=lambda n: n == len(created), deadline=30) == len(created)


def test_the_control_a_client_that_ignores_retry_after_sees_the_mysql_restart(client):
    """The load test does see failures: the same restart, without honouring Retry-After, fails
    writes with 503 (and only writes: the cached reads go on)."""
    with Load() as load:
        client.containers.get("mysql-db").restart(timeout=30)
        wait_healthy(client, "mysql-db", deadline=120)
    result = load.result
    assert result["errors"].get("status_503", 0) > 0, result["errors"]
    assert set(result["errors"]) == {"status_503"}, result["errors"]
    assert result["by_request"]["get_user"]["failed"] == 0, result["by_request"]["get_user"]
    assert result["by_request"]["create_order"]["failed"] == result["failed"]


@pytest.mark.parametrize("component", APP_SERVICES + ("web-server", "mysql-db", "redis-cache"))
def test_the_lab_is_whole_again(client, component):
    for container in component_containers(client, component):
        wait_healthy(client, container.name, deadline=60)


def test_after_every_fault_a_run_of_site_yml_changes_nothing():
    rc, out = run_playbook("site.yml")
    assert rc == 0 and recap_changed(out) == 0, out[-3000:]
