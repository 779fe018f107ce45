# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The filters over what the Docker host reports: health, existing networks and volumes, config
hashes, Prometheus durations. The filters over the model are tested in test_model.py."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.dockerlab.ecommerce.plugins.filter.stack import (
    changed_components, config_hashes, container_health, matching_networks, matching_volumes, prometheus_seconds)
from ansible_collections.dockerlab.ecommerce.plugins.module_utils._topology.model import resolve

NETWORKS = {"database": {"name": "ecommerce-database", "subnet": "172.22.0.0/16"},
            "frontend": {"name": "ecommerce-frontend", "subnet": "172.20.0.0/16"}}


def model_files():
    """The files of a small model: the load balancer's config, then MySQL's config and secret."""
    services = {
        "mysql-db": {
            "container_name": "mysql-db", "image": "mysql:8.4", "networks": [{"network": "database"}],
            "config_files": [{"src": "my.cnf.j2", "dest": "conf.d/my.cnf", "target": "/etc/mysql/conf.d/my.cnf"}],
            "secrets": [{"name": "root_password", "var": "data_mysql_root_password", "target": "/run/secrets/pw"}],
        },
        "load-balancer": {"container_name": "load-balancer", "image": "nginx", "networks": [{"network": "frontend"}],
                          "config_files": [{"src": "lb.conf.j2", "dest": "conf.d/default.conf"}]},
    }
    return resolve({"data_services": services}, NETWORKS, {}, config_dir="/opt/dl")["files"]


def test_hashes_and_changed_components_follow_the_written_files():
    files = model_files()
    assert [f["path"] for f in files] == ["/opt/dl/load-balancer/conf.d/default.conf", "/opt/dl/mysql-db/conf.d/my.cnf",
                                          "/opt/dl/mysql-db/secrets/root_password"]
    # The module returns secrets after the other files: results are matched by path.
    order = ((2, "c", False), (0, "a", False), (1, "b", True))
    written = [{"path": files[i]["path"], "checksum": c, "changed": ch} for i, c, ch in order]
    hashes = config_hashes(files, written)
    assert set(hashes) == {"load-balancer", "mysql-db"}
    assert hashes["mysql-db"] != hashes["load-balancer"]
    other = [dict(w, checksum="x") if w["path"] == files[1]["path"] else w for w in written]
    assert hashes["mysql-db"] != config_hashes(files, other)["mysql-db"]
    assert hashes["load-balancer"] == config_hashes(files, other)["load-balancer"]
    # The order of the results does not matter, only their checksums.
    assert config_hashes(files, list(reversed(written))) == hashes
    assert changed_components(files, written) == ["mysql-db"]
    assert changed_components(files, [dict(w, changed=False) for w in written]) == []


def test_container_health_reads_the_listing():
    listing = [
        {"Names": ["/a"], "State": "running", "Status": "Up 5 seconds (healthy)"},
        {"Names": ["/b"], "State": "running", "Status": "Up 2 seconds (health: starting)"},
        {"Names": ["/c"], "State": "restarting", "Status": "Restarting (2) 1 second ago"},
        {"Names": ["/d"], "State": "running", "Status": "Up 1 minute (unhealthy)"},
    ]
    assert container_health(listing, ["a", "b", "c", "d", "e"]) == {
        "a": "healthy", "b": "starting", "c": "restarting", "d": "unhealthy", "e": "missing"}


def test_matching_networks_and_volumes_need_the_exact_declaration():
    existing = [{"Name": "ecommerce-database", "Driver": "bridge", "Internal": True,
                 "IPAM": {"Config": [{"Subnet": "172.22.0.0/16"}]},
                 "Labels": {"dockerlab.stack": "ecommerce", "dockerlab.network": "database"}},
                {"Name": "ecommerce-frontend", "Driver": "bridge", "Internal": True,
                 "IPAM": {"Config": [{"Subnet": "172.20.0.0/16"}]},
                 "Labels": {"dockerlab.stack": "ecommerce", "dockerlab.network": "frontend"}}]
    networks = {"database": {"name": "ecommerce-database", "subnet": "172.22.0.0/16", "internal": True},
                "frontend": {"name": "ecommerce-frontend", "subnet": "172.20.0.0/16", "internal": False},
                "backend": {"name": "ecommerce-backend", "subnet": "172.21.0.0/16"}}
    assert matching_networks(existing, networks, "ecommerce") == ["database"]
    assert matching_networks(existing, networks, "other") == []
    volumes = [{"Name": "v1", "Labels": {"dockerlab.stack": "ecommerce", "dockerlab.volume": "db_data"}},
               {"Name": "v2", "Labels": None}]
    assert matching_volumes(volumes, {"db_data": "v1", "logs": "v2", "x": "v3"}, "ecommerce") == ["db_data"]


@pytest.mark.parametrize("text, seconds", [("15s", 15), ("1m", 60), ("1h30m", 5400), ("500ms", 0.5), ("15d", 1296000)])
def test_prometheus_durations(text, seconds):
    assert prometheus_seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "15", "1.5m", "15 s", "m5", "5mins"])
def test_bad_prometheus_durations_are_refused(text):
    with pytest.raises(AnsibleFilterError, match="not a Prometheus duration"):
        prometheus_seconds(text)
