# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The monitoring tier's rendered configuration (tests/render/render.yml) against the
offline Prometheus image named in DOCKERLAB_PROMETHEUS_IMAGE (`make engine` names the one
the images role built): promtool accepts the config and the rules and refuses a broken
rule, every alert and dashboard query is valid PromQL to a real Prometheus, and the
deploy's reload command says whether Prometheus loaded a new config or refused it. What needs
no engine is in tests/render/test_monitoring_render.py."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import time
import urllib.error
import urllib.parse
import urllib.request

import docker
import pytest

from dashboard_queries import dashboard_queries  # pylint: disable=import-error  # tests/dashboard_queries.py
from rendering import REQUIRED_ALERTS, alert_rules  # pylint: disable=import-error  # tests/rendering.py
from role_defaults import unit_defaults  # pylint: disable=import-error  # tests/role_defaults.py

PROMETHEUS_IMAGE = os.environ.get("DOCKERLAB_PROMETHEUS_IMAGE", "").strip()  # conftest.py has checked it


@pytest.fixture(scope="module")
def docker_client():
    client = docker.from_env(timeout=60)
    yield client
    client.close()


def promtool(client, etc_dir, *args):
    """Run promtool of the Prometheus image on a copy of ``etc_dir`` mounted at /etc/prometheus."""
    container = client.containers.run(
        PROMETHEUS_IMAGE, entrypoint=["promtool", *args], detach=True,
        volumes={str(etc_dir): {"bind": "/etc/prometheus", "mode": "ro"}})
    try:
        code = container.wait(timeout=60)["StatusCode"]
        return code, container.logs().decode("utf-8", "replace")
    finally:
        container.remove(force=True)


@pytest.mark.parametrize("profile", ["offline", "upstream"])
def test_promtool_accepts_the_config_and_the_rules(profile, request, docker_client, tmp_path):
    rendered = request.getfixturevalue(f"rendered_{profile}")
    etc = tmp_path / "etc"
    shutil.copytree(rendered / "prometheus/etc", etc)
    etc.chmod(0o755)
    code, output = promtool(docker_client, etc, "check", "config", "/etc/prometheus/prometheus.yml")
    assert code == 0, output
    assert "SUCCESS" in output and "alerts.yml" in output
    code, output = promtool(docker_client, etc, "check", "rules", "/etc/prometheus/rules/alerts.yml")
    assert code == 0, output


def test_promtool_refuses_a_broken_rule(rendered_offline, docker_client, tmp_path):
    etc = tmp_path / "etc"
    shutil.copytree(rendered_offline / "prometheus/etc", etc)
    rules = etc / "rules/alerts.yml"
    rules.write_text(rules.read_text().replace("expr: up == 0", "expr: up == == 0"))
    code, output = promtool(docker_client, etc, "check", "rules", "/etc/prometheus/rules/alerts.yml")
    assert code != 0 and "parse error" in output


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_prometheus(client, etc, name):
    """A real Prometheus (offline image) on ``etc`` (mounted at /etc/prometheus) and a random
    loopback port, ready: ``(container, base URL)``; removed afterwards."""
    port = free_port()
    container = client.containers.run(
        PROMETHEUS_IMAGE, detach=True, ports={"9090/tcp": ("127.0.0.1", port)},
        volumes={str(etc): {"bind": "/etc/prometheus", "mode": "ro"}}, name=f"{name}-{port}")
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(base, container)
        yield container, base
    finally:
        container.remove(force=True)


def wait_ready(base, container, deadline_s=60):
    """Poll Prometheus' /-/ready until it answers 200 (start-up is asynchronous)."""
    deadline = time.monotonic() + deadline_s
    while not _answers(f"{base}/-/ready"):
        if time.monotonic() > deadline:
            pytest.fail("Prometheus did not become ready: " + container.logs().decode()[-2000:])
        time.sleep(0.5)


@pytest.fixture(scope="module")
def prometheus_api(docker_client, tmp_path_factory):
    """A real Prometheus (offline image) on a random loopback port, scraping only itself."""
    etc = tmp_path_factory.mktemp("prometheus-etc")
    (etc / "prometheus.yml").write_text("global: {scrape_interval: 1s}\n"
                                        "scrape_configs: [{job_name: self, static_configs: [{targets: ['localhost:9090']}]}]\n")
    etc.chmod(0o755)
    with running_prometheus(docker_client, etc, "dltest-promql") as (_container, base):
        yield base


def query(base, expr):
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.load(response)
    except urllib.error.HTTPError as exc:
        return json.load(exc)


def test_every_alert_and_dashboard_query_is_valid_promql(rendered_upstream, prometheus_api):
    exprs = [(name, rule["expr"]) for name, rule in alert_rules(rendered_upstream).items()]
    exprs += dashboard_queries(rendered_upstream / "grafana/dashboards/ecommerce.json")
    assert len(exprs) > len(REQUIRED_ALERTS)
    failures = {name: result.get("error") for name, expr in exprs
                if (result := query(prometheus_api, expr))["status"] != "success"}
    assert not failures
    # And a broken one is caught, so the check above can fail.
    assert query(prometheus_api, "sum(rate(up[1m])")["status"] == "error"


def _reload_command():
    """The prometheus service's reload command, as the roles' defaults declare it."""
    return unit_defaults()["services"]["monitoring_services"]["prometheus"]["reload"]["command"]


def test_the_reload_command_tells_a_loaded_config_from_a_refused_one(docker_client, tmp_path):
    """The files change on the host (as the deploy writes them; promtool is not asked here):
    a valid config is loaded (exit 0, the new job scraped); one Prometheus itself refuses (a
    job name twice) fails with the command's message while Prometheus keeps serving."""
    etc = tmp_path / "etc"
    etc.mkdir()
    etc.chmod(0o755)
    config = etc / "prometheus.yml"

    def write(jobs):
        config.write_text("global: {scrape_interval: 1s}\nscrape_configs:\n" + "".join(
            f"  - {{job_name: {job}, static_configs: [{{targets: ['localhost:9090']}}]}}\n" for job in jobs))
        config.chmod(0o644)

    write(["self"])
    with running_prometheus(docker_client, etc, "dltest-reload") as (container, base):
        command = _reload_command()
        write(["self", "again"])
        code, output = container.exec_run(command)
        assert code == 0, output.decode()
        # its targets follow once discovery has passed them on (asynchronous: polled)
        deadline = time.monotonic() + 30
        while (jobs := {t["labels"]["job"] for t in _json(f"{base}/api/v1/targets")["data"]["activeTargets"]}) \
                != {"self", "again"}:
            assert time.monotonic() < deadline, f"the new job is not scraped: {jobs}"
            time.sleep(0.5)
        # the control: a config Prometheus refuses (the same job twice) is not taken for loaded
        write(["self", "self"])
        code, output = container.exec_run(command)
        assert code == 1, output.decode()
        assert "Prometheus refused the new config and keeps the previous one" in output.decode()
        assert _answers(f"{base}/-/ready")
        assert _json(f"{base}/api/v1/status/runtimeinfo")["data"]["reloadConfigSuccess"] is False


def _answers(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _json(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)
