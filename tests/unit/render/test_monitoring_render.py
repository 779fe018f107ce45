# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The monitoring tier's rendered configuration: Prometheus' scrape jobs and alert rules,
checked by promtool and by a real Prometheus (the offline image) where one is named in
DOCKERLAB_PROMETHEUS_IMAGE (`make unit` names the one the images role built)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
import urllib.parse
import urllib.request

import pytest
import yaml

from dashboard_queries import dashboard_queries  # pylint: disable=import-error  # next to this file

PROMETHEUS_IMAGE = os.environ.get("DOCKERLAB_PROMETHEUS_IMAGE", "").strip()
needs_prometheus = pytest.mark.skipif(
    not PROMETHEUS_IMAGE, reason="DOCKERLAB_PROMETHEUS_IMAGE is not set (`make unit` sets it to the offline image)")
REQUIRED_ALERTS = {"TargetDown", "GatewayHighErrorRatio", "ContainerRestarting", "ContainerRestartingCadvisor",
                   "MySQLDown", "RedisDown", "DiskNearlyFull"}


def prometheus_config(rendered):
    return yaml.safe_load((rendered / "prometheus/etc/prometheus.yml").read_text())


def alert_rules(rendered):
    groups = yaml.safe_load((rendered / "prometheus/etc/rules/alerts.yml").read_text())["groups"]
    return {rule["alert"]: rule for group in groups for rule in group["rules"]}


def jobs(rendered):
    return {job["job_name"]: job["static_configs"][0]["targets"] for job in prometheus_config(rendered)["scrape_configs"]}


def test_offline_prometheus_scrapes_every_service_and_exporter(rendered_offline):
    assert jobs(rendered_offline) == {
        "prometheus": ["prometheus:9090"], "api-gateway": ["api-gateway:3000"], "user-service": ["user-service:3001"],
        "order-service": ["order-service:3002"], "payment-service": ["payment-service:3003"],
        "nginx": ["nginx-exporter:9113"], "mysql": ["mysqld-exporter:9104"], "redis": ["redis-exporter:9121"],
        "node": ["node-exporter:9100"]}
    config = prometheus_config(rendered_offline)
    assert config["global"]["scrape_interval"] == "15s"
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yml"]


def test_upstream_prometheus_also_scrapes_cadvisor(rendered_upstream):
    assert jobs(rendered_upstream)["cadvisor"] == ["cadvisor:8080"]


def test_validate_counts_every_target(rendered_offline, rendered_upstream):
    for rendered, count in ((rendered_offline, "9"), (rendered_upstream, "10")):
        variables = json.loads((rendered / "variables.json").read_text())
        up = [check for check in variables["monitoring_validate_checks"] if "every scrape target" in check["label"]]
        assert up[0]["json"]["data.result.0.value.1"] == count


def test_alert_rules_cover_the_issue_and_carry_the_variables(rendered_offline):
    rules = alert_rules(rendered_offline)
    assert REQUIRED_ALERTS <= set(rules)
    assert rules["TargetDown"]["expr"] == "up == 0" and rules["TargetDown"]["for"] == "1m"
    assert "> 0.05" in rules["GatewayHighErrorRatio"]["expr"] and 'status=~"5.."' in rules["GatewayHighErrorRatio"]["expr"]
    assert "< 0.1" in rules["DiskNearlyFull"]["expr"]
    # Prometheus' own templates reach the file unrendered by Ansible.
    assert "{{ $labels.instance }}" in rules["TargetDown"]["annotations"]["summary"]


def test_exporters_read_their_credentials_from_secret_files(rendered_offline):
    secrets = rendered_offline.parent / "secrets"
    my_cnf = (rendered_offline / "mysqld-exporter/secrets/my.cnf").read_text()
    assert "user=exporter" in my_cnf and "host=mysql-db" in my_cnf
    assert f"password={(secrets / 'mysql_exporter_password').read_text().strip()}" in my_cnf
    passwords = json.loads((rendered_offline / "redis-exporter/secrets/redis-passwords.json").read_text())
    assert passwords == {"redis://redis-cache:6379": (secrets / "redis_password").read_text().strip()}


def test_no_secret_appears_in_a_config_file(rendered_offline, rendered_upstream):
    for rendered in (rendered_offline, rendered_upstream):
        values = [path.read_text().strip() for path in (rendered.parent / "secrets").iterdir()]
        assert values
        for path in rendered.rglob("*"):
            if path.is_file() and "secrets" not in path.parts and path.name != "variables.json":
                text = path.read_text(errors="replace")
                assert not [value for value in values if value in text], f"{path} holds a secret"


# ---------------------------------------------------------------------------
# against the real Prometheus (offline image)
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def docker_client():
    docker = pytest.importorskip("docker")
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


@needs_prometheus
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


@needs_prometheus
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


@pytest.fixture(scope="module")
def prometheus_api(docker_client, tmp_path_factory):
    """A real Prometheus (offline image) on a random loopback port, scraping only itself."""
    etc = tmp_path_factory.mktemp("prometheus-etc")
    (etc / "prometheus.yml").write_text("global: {scrape_interval: 1s}\n"
                                        "scrape_configs: [{job_name: self, static_configs: [{targets: ['localhost:9090']}]}]\n")
    etc.chmod(0o755)
    port = free_port()
    container = docker_client.containers.run(
        PROMETHEUS_IMAGE, detach=True, ports={"9090/tcp": ("127.0.0.1", port)},
        volumes={str(etc): {"bind": "/etc/prometheus", "mode": "ro"}}, name=f"dltest-promql-{port}")
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("Prometheus did not become ready: " + container.logs().decode()[-2000:])
            time.sleep(0.5)
        yield base
    finally:
        container.remove(force=True)


def query(base, expr):
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.load(response)
    except urllib.error.HTTPError as exc:
        return json.load(exc)


@needs_prometheus
def test_every_alert_and_dashboard_query_is_valid_promql(rendered_upstream, prometheus_api):
    exprs = [(name, rule["expr"]) for name, rule in alert_rules(rendered_upstream).items()]
    exprs += dashboard_queries(rendered_upstream / "grafana/dashboards/ecommerce.json")
    assert len(exprs) > len(REQUIRED_ALERTS)
    failures = {name: result.get("error") for name, expr in exprs
                if (result := query(prometheus_api, expr))["status"] != "success"}
    assert not failures
    # And a broken one is caught, so the check above can fail.
    assert query(prometheus_api, "sum(rate(up[1m])")["status"] == "error"
