# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The monitoring tier's rendered configuration: Prometheus' scrape jobs and alert rules,
the exporters' credential files, no secret in a config file. The same files through
promtool and a real Prometheus (the offline image): tests/engine/prometheus."""

from __future__ import annotations

import json

import yaml

from rendering import REQUIRED_ALERTS, alert_rules  # pylint: disable=import-error  # tests/rendering.py


def prometheus_config(rendered):
    return yaml.safe_load((rendered / "prometheus/etc/prometheus.yml").read_text())


def jobs(rendered):
    return {job["job_name"]: job["static_configs"][0]["targets"] for job in prometheus_config(rendered)["scrape_configs"]}


def test_offline_prometheus_scrapes_every_service_and_exporter(rendered_offline):
    assert jobs(rendered_offline) == {
        # every replica is a target (two of the gateway and of each service by default)
        "prometheus": ["prometheus:9090"], "api-gateway": ["api-gateway-1:3000", "api-gateway-2:3000"],
        "user-service": ["user-service-1:3001", "user-service-2:3001"],
        "order-service": ["order-service-1:3002", "order-service-2:3002"],
        "payment-service": ["payment-service-1:3003", "payment-service-2:3003"],
        "nginx": ["nginx-exporter:9113"], "mysql": ["mysqld-exporter:9104"], "redis": ["redis-exporter:9121"],
        "node": ["node-exporter:9100"]}
    config = prometheus_config(rendered_offline)
    assert config["global"]["scrape_interval"] == "15s"
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yml"]


def test_upstream_prometheus_also_scrapes_cadvisor(rendered_upstream):
    assert jobs(rendered_upstream)["cadvisor"] == ["cadvisor:8080"]


def test_validate_counts_every_target(rendered_offline, rendered_upstream):
    # 9 jobs offline (10 upstream: cAdvisor), four of them with two targets
    for rendered, count in ((rendered_offline, "13"), (rendered_upstream, "14")):
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
    # the exporter's own Redis user (data_redis_exporter_user), not the services' password
    assert passwords == {"redis://redis-cache:6379": (secrets / "redis_exporter_password").read_text().strip()}


def test_no_secret_appears_in_a_config_file(rendered_offline, rendered_upstream):
    for rendered in (rendered_offline, rendered_upstream):
        values = [path.read_text().strip() for path in (rendered.parent / "secrets").iterdir()]
        assert values
        for path in rendered.rglob("*"):
            if path.is_file() and "secrets" not in path.parts and path.name != "variables.json":
                text = path.read_text(errors="replace")
                assert not [value for value in values if value in text], f"{path} holds a secret"
