"""The load balancer's methods shown by their effect through :8080, not by their rendering:
round robin spreads evenly, weighted follows the weights, ip_hash keeps a client on one
server, least_conn sends new requests to the idle server while the other holds requests,
frontend_api_method does the same for the gateways, and a web server answering 503 is
taken out like a stopped one with no failed request.

Each method is deployed with `site.yml --tags frontend -e ...` (a graceful reload: the load
balancer is not restarted); the module ends on the defaults again, and a full no-op run is
test_99's (the idempotence of the defaults is test_00's)."""

import json
import sys
import threading
import time
from collections import Counter

import requests

from conftest import REPO, poll, recap_changed, run_playbook

sys.path.insert(0, str(REPO / "collections"))  # ansible_collections.dockerlab.ecommerce (a link to the checkout)
from ansible_collections.dockerlab.ecommerce.plugins.module_utils._load.runner import (  # noqa: E402  pylint: disable=wrong-import-position
    LoadConfig, run_load)

URL = "http://127.0.0.1:8080"
FRONTEND = ("site.yml", "--tags", "frontend")
WEB = ("web-server-1", "web-server-2")


def deploy(**frontend_vars):
    """Apply the frontend tier with these variables (the defaults when none)."""
    args = list(FRONTEND) + (["-e", json.dumps(frontend_vars)] if frontend_vars else [])
    rc, out = run_playbook(*args)
    assert rc == 0, out[-3000:]
    return out


def served_by(count, path="/whoami", header="X-Served-By", session=None):
    """Who answered each of ``count`` sequential requests."""
    session = session or requests.Session()
    seen = Counter()
    for _request in range(count):
        response = session.get(URL + path, timeout=10)
        assert response.status_code == 200, (response.status_code, response.text[:200])
        seen[response.headers.get(header)] += 1
    return seen


def started(client, name="load-balancer"):
    return client.containers.get(name).attrs["State"]["StartedAt"]


def test_round_robin_spreads_evenly(client):
    web = served_by(200)
    assert set(web) == set(WEB), web
    assert abs(web["web-server-1"] - web["web-server-2"]) <= 4, web
    gateways = served_by(100, "/api/users/health", "X-Gateway")
    assert set(gateways) == {"api-gateway-1", "api-gateway-2"}, gateways
    assert abs(gateways["api-gateway-1"] - gateways["api-gateway-2"]) <= 4, gateways


def test_weighted_follows_the_weights(client):
    before = started(client)
    try:
        deploy(frontend_web_method="weighted", frontend_web_weights=[3, 1])
        web = served_by(400)
        share = web["web-server-1"] / sum(web.values())
        assert 0.70 <= share <= 0.80, web   # 3:1 is 0.75
        assert started(client) == before    # reloaded, not restarted
    finally:
        deploy()
    # the control: back on round robin, the same servers share evenly again
    web = served_by(200)
    assert abs(web["web-server-1"] - web["web-server-2"]) <= 4, web


def test_ip_hash_keeps_a_client_on_one_server_web_and_api(client):
    try:
        deploy(frontend_web_method="ip_hash", frontend_api_method="ip_hash")
        web = served_by(60)
        assert len(web) == 1 and next(iter(web)) in WEB, web
        # a new connection each time: the client's address, not its connection, picks the server
        fresh = Counter()
        for _attempt in range(20):
            fresh += served_by(1, session=requests.Session())
        assert fresh == Counter({next(iter(web)): 20}), fresh
        gateways = served_by(40, "/api/users/health", "X-Gateway")
        assert len(gateways) == 1, gateways
    finally:
        deploy()
    gateways = served_by(40, "/api/users/health", "X-Gateway")
    assert len(gateways) == 2, gateways   # the control: round robin uses both again


def test_least_conn_sends_new_requests_to_the_idle_server(client):
    """web-server-1 is frozen (docker pause): the requests it gets stay open. With least_conn
    the load balancer then sends every new request to web-server-2, the server without open
    requests; the held ones complete once web-server-1 thaws."""
    held, results = [], []
    try:
        deploy(frontend_web_method="least_conn")
        # the control, before the freeze: least_conn with no open request alternates
        assert set(served_by(20)) == set(WEB)
        client.containers.get("web-server-1").pause()

        def slow_request():
            response = requests.get(URL + "/whoami", timeout=60)
            results.append((response.status_code, response.headers.get("X-Served-By")))

        # requests until one is held by the frozen server (every other is answered by web-server-2)
        for _slow in range(4):
            thread = threading.Thread(target=slow_request, daemon=True)
            thread.start()
            held.append(thread)
        poll("web-server-2 answers the requests web-server-1 does not hold", lambda: len(results),
             done=lambda n: n >= 1, deadline=10, interval=0.2)
        time.sleep(1)
        assert len(results) < len(held), f"no request is held by the frozen web-server-1: {results}"
        # every new request goes to the idle server
        assert served_by(30) == Counter({"web-server-2": 30})
    finally:
        if client.containers.get("web-server-1").status == "paused":
            client.containers.get("web-server-1").unpause()
        for thread in held:
            thread.join(30)
        deploy()
    # the held requests completed, served by web-server-1, once it thawed
    assert all(status == 200 for status, _server in results), results
    assert ("web-server-1" in {server for _status, server in results}), results


def test_a_web_server_answering_503_is_taken_out_without_a_failed_request(client):
    """Maintenance (frontend_maintenance_file) makes web-server-1 answer 503 to everything; the
    load balancer retries those requests on web-server-2 and then leaves web-server-1 out
    (max_fails), as it does a stopped server. Under load, not one request fails."""
    server = client.containers.get("web-server-1")
    config = LoadConfig(base_url=URL, concurrency=4, duration_s=60, timeout_s=10,
                        mix=[{"name": "front_page", "method": "GET", "path": "/whoami", "weight": 1}], seed=3)
    stop, box = threading.Event(), {}
    thread = threading.Thread(target=lambda: box.setdefault("result", run_load(config, stop_event=stop)), daemon=True)
    try:
        assert server.exec_run(["touch", "/run/maintenance"]).exit_code == 0
        # the control: the fault is real, web-server-1 itself answers 503
        direct = server.exec_run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1/whoami"])
        assert direct.output.decode() == "503", direct
        thread.start()
        time.sleep(8)
    finally:
        stop.set()
        thread.join(60)
        server.exec_run(["rm", "-f", "/run/maintenance"])
    result = box["result"]
    summary = f"sent {result['sent']}, failed {result['failed']}, status {result['status_counts']}, " \
              f"spread {result['spread']}"
    assert result["sent"] >= 100 and result["failed"] == 0, summary
    assert result["spread"]["X-Served-By"] == {"web-server-2": result["sent"]}, summary
    # out of maintenance, web-server-1 serves again (after fail_timeout)
    poll("web-server-1 serves again", lambda: served_by(4), done=lambda seen: "web-server-1" in seen, deadline=30)


def test_the_defaults_again_change_nothing(client):
    rc, out = run_playbook(*FRONTEND)
    assert rc == 0 and recap_changed(out) == 0, out[-3000:]
