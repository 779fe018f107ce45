"""Bad input fails before anything changes, with a message that names the variable and
the fix, and the running containers stay as they were."""

import json

import pytest

from conftest import STACK, run_playbook, started_at

OVERLAPPING = {
    "stack_networks": {
        "frontend": {"name": "ecommerce-frontend", "subnet": "172.20.0.0/16", "internal": False},
        "backend": {"name": "ecommerce-backend", "subnet": "172.20.128.0/17", "internal": False},
        "database": {"name": "ecommerce-database", "subnet": "172.22.0.0/16", "internal": True},
        "monitoring": {"name": "ecommerce-monitoring", "subnet": "172.23.0.0/16", "internal": False},
    }
}
MALFORMED = {
    "stack_networks": dict(OVERLAPPING["stack_networks"],
                           backend={"name": "ecommerce-backend", "subnet": "172.21.0.0/33", "internal": False})
}


@pytest.mark.parametrize("extra_vars, expected", [
    (OVERLAPPING, ["stack_networks", "overlap", "172.20.128.0/17"]),
    (MALFORMED, ["stack_networks['backend'].subnet", "172.21.0.0/33"]),
    ({"image_source": "cloud"}, ["images_source", "cloud", "auto, upstream, offline"]),
    ({"data_redis_maxmemory_policy": "sometimes"}, ["data_redis_maxmemory_policy", "sometimes"]),
    ({"frontend_web_method": "fastest"}, ["frontend_web_method", "fastest", "round_robin, least_conn, ip_hash, weighted"]),
    ({"frontend_web_method": "weighted", "frontend_web_weights": [3, 0]},
     ["frontend_web_weights: weight 0 for web-server-2 (position 2) must be a whole number of at least 1"]),
    ({"frontend_web_weights": [1, 1, 1]},
     ["frontend_web_weights: 3 weights are given for 2 web-server containers; give one weight per container"]),
    ({"monitoring_prometheus_retention": "15 days"}, ["monitoring_prometheus_retention", "15 days", "Prometheus needs a duration"]),
    ({"monitoring_scrape_timeout": "30s"}, ["monitoring_scrape_timeout (30s) is longer than monitoring_scrape_interval"]),
    ({"logging_elasticsearch_heap": "lots"}, ["logging_elasticsearch_heap is lots"]),
], ids=["overlapping-subnets", "malformed-subnet", "unknown-image-source", "bad-choice", "unknown-lb-method",
        "zero-weight", "too-many-weights", "bad-retention", "scrape-timeout", "bad-heap"])
def test_bad_inventory_fails_first_and_touches_nothing(client, extra_vars, expected):
    networks_before = {n.name: n.id for n in client.networks.list(filters={"label": "dockerlab.stack=" + STACK})}
    before = started_at(client)
    rc, out = run_playbook("site.yml", "-e", json.dumps(extra_vars))
    assert rc != 0, out[-3000:]
    for text in expected:
        assert text in out, (text, out[-3000:])
    assert "Traceback" not in out, out[-3000:]
    assert started_at(client) == before
    assert {n.name: n.id for n in client.networks.list(filters={"label": "dockerlab.stack=" + STACK})} == networks_before
