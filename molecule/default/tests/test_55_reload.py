"""A config change of a running reloadable service is checked inside the container and
applied with a graceful reload: the new configuration is served (a header only it has)
while the container is not restarted (State.StartedAt) and the requests in flight complete.
A config nginx or promtool refuses fails the run with their message, and the previous
config is put back while the service keeps serving."""

import json
import secrets
import sys
import threading

import requests

from conftest import REPO, recap_changed, run_playbook

sys.path.insert(0, str(REPO / "collections"))  # ansible_collections.dockerlab.ecommerce (a link to the checkout)
from ansible_collections.dockerlab.ecommerce.plugins.module_utils._load.runner import (  # noqa: E402  pylint: disable=wrong-import-position
    LoadConfig, run_load)

URL = "http://127.0.0.1:8080"
HEADER = "X-Lab-Config"


def _started(client, name):
    return client.containers.get(name).attrs["State"]["StartedAt"]


def _file(client, name, path):
    return client.containers.get(name).exec_run(["cat", path]).output.decode()


class Load:
    """GETs through the load balancer in a thread while a deploy runs."""

    def __init__(self):
        self.config = LoadConfig(base_url=URL, concurrency=4, duration_s=120, timeout_s=10, seed=5,
                                 mix=[{"name": "front_page", "method": "GET", "path": "/whoami", "weight": 1}])
        self.stop = threading.Event()
        self.result = {}
        self.thread = threading.Thread(target=lambda: self.result.update(run_load(self.config, stop_event=self.stop)),
                                       daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc_info):
        self.stop.set()
        self.thread.join(60)


def test_a_reload_serves_the_new_config_without_a_restart(client):
    token = secrets.token_hex(8)
    started = _started(client, "load-balancer")
    assert HEADER not in requests.get(URL + "/", timeout=5).headers
    try:
        with Load() as load:
            rc, out = run_playbook("site.yml", "--tags", "frontend",
                                   "-e", json.dumps({"frontend_response_headers": {HEADER: token}}))
        assert rc == 0, out[-3000:]
        assert "Reload gracefully: load-balancer" in out
        # only the new config has this header
        assert requests.get(URL + "/", timeout=5).headers.get(HEADER) == token
        assert _started(client, "load-balancer") == started
        result = load.result
        assert result["sent"] >= 50 and result["failed"] == 0 and result["unfinished"] == 0, \
            f"sent {result.get('sent')}, failed {result.get('failed')}, errors {result.get('errors')}"
    finally:
        rc, out = run_playbook("site.yml", "--tags", "frontend")
        assert rc == 0, out[-3000:]
    assert HEADER not in requests.get(URL + "/", timeout=5).headers   # reloaded back
    assert _started(client, "load-balancer") == started
    rc, out = run_playbook("site.yml", "--tags", "frontend")
    assert rc == 0 and recap_changed(out) == 0, out[-3000:]


def test_a_config_nginx_refuses_fails_the_run_and_is_put_back(client):
    conf = "/etc/nginx/conf.d/default.conf"
    before, started = _file(client, "load-balancer", conf), _started(client, "load-balancer")
    rc, out = run_playbook("site.yml", "--tags", "frontend", "-e", "frontend_client_max_body_size=1q")
    assert rc != 0, out[-3000:]
    assert "load-balancer refused its config: `nginx -t -q` exited with 1" in out, out[-3000:]
    assert '"client_max_body_size" directive invalid value' in out, out[-3000:]   # nginx's own message
    assert "The previous config was put back" in out
    assert _file(client, "load-balancer", conf) == before
    assert _started(client, "load-balancer") == started
    assert requests.get(URL + "/", timeout=5).status_code == 200


def test_a_config_promtool_refuses_fails_the_run_and_is_put_back(client):
    # The precheck takes 30s1m for a duration (digits and units); Prometheus wants the units
    # largest first, so promtool refuses the rule file that uses it.
    rules = "/etc/prometheus/rules/alerts.yml"
    before, started = _file(client, "prometheus", rules), _started(client, "prometheus")
    rc, out = run_playbook("site.yml", "--tags", "monitoring", "-e", "monitoring_alert_target_down_for=30s1m")
    assert rc != 0, out[-3000:]
    assert "prometheus refused its config: `promtool check config /etc/prometheus/prometheus.yml` exited with 1" \
        in out, out[-3000:]
    assert "30s1m" in out.split("prometheus refused its config", 1)[1], out[-3000:]   # promtool's own message
    assert _file(client, "prometheus", rules) == before
    assert _started(client, "prometheus") == started
    assert requests.get("http://127.0.0.1:9090/-/ready", timeout=5).status_code == 200
