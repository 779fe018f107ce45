"""A load-balancer config change is checked with `nginx -t` inside the container and
applied with a graceful reload (same container, same nginx master); a config nginx
rejects is put back and the running load balancer keeps serving."""

import requests

from conftest import recap_changed, run_playbook

CONF = "/etc/nginx/conf.d/default.conf"


def _master_pid(client):
    return client.containers.get("load-balancer").exec_run(["cat", "/var/run/nginx.pid"]).output.decode().strip()


def _conf(client):
    return client.containers.get("load-balancer").exec_run(["cat", CONF]).output.decode()


def test_a_method_change_reloads_nginx_without_a_restart(client):
    started = client.containers.get("load-balancer").attrs["State"]["StartedAt"]
    pid = _master_pid(client)
    try:
        rc, out = run_playbook("site.yml", "-e", "frontend_web_method=least_conn")
        assert rc == 0, out[-3000:]
        assert "Reload gracefully: load-balancer" in out
        assert "least_conn;" in _conf(client)
        assert client.containers.get("load-balancer").attrs["State"]["StartedAt"] == started
        assert _master_pid(client) == pid
        assert requests.get("http://127.0.0.1:8080/", timeout=5).status_code == 200
    finally:
        rc, out = run_playbook("site.yml")
        assert rc == 0, out[-3000:]
    assert "least_conn;" not in _conf(client)
    rc, out = run_playbook("site.yml")
    assert rc == 0 and recap_changed(out) == 0, out[-3000:]


def test_a_config_nginx_rejects_is_put_back(client):
    before = _conf(client)
    pid = _master_pid(client)
    rc, out = run_playbook("site.yml", "-e", "frontend_client_max_body_size=1q")
    assert rc != 0, out[-3000:]
    assert "was rejected by" in out and "the previous one was put back" in out, out[-3000:]
    assert _conf(client) == before
    assert _master_pid(client) == pid
    assert requests.get("http://127.0.0.1:8080/", timeout=5).status_code == 200
