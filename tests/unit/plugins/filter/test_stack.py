# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""stack_containers and stack_config_files: a services dict becomes container specs."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.dockerlab.ecommerce.plugins.filter.stack import (
    prometheus_seconds, scrape_jobs, stack_config_files, stack_containers)

NETWORKS = {"database": {"name": "ecommerce-database", "subnet": "172.22.0.0/16"},
            "frontend": {"name": "ecommerce-frontend", "subnet": "172.20.0.0/16"}}
VOLUMES = {"db_data": "ecommerce-db-data"}


def services():
    return {
        "mysql-db": {
            "container_name": "mysql-db", "image": "mysql:8.4",
            "networks": [{"network": "database", "aliases": ["mysql"], "ipv4_address": "172.22.0.10"}],
            "volumes": [{"volume": "db_data", "target": "/var/lib/mysql"},
                        {"source": "/srv/x", "target": "/x", "read_only": True}],
            "config_files": [{"src": "my.cnf.j2", "dest": "conf.d/my.cnf", "target": "/etc/mysql/conf.d/my.cnf"}],
            "secrets": [{"name": "root_password", "var": "data_mysql_root_password", "target": "/run/secrets/pw",
                         "owner": "999"}],
            "env": {"PORT": 3306},
            "healthcheck": {"test": ["CMD", "true"], "retries": 3},
        },
        "load-balancer": {
            "container_name": "load-balancer", "image": "nginx", "order": 90,
            "networks": [{"network": "frontend"}],
            "ports": [{"host_port": 8080, "container_port": 80}],
            "config_files": [{"src": "lb.conf.j2", "dest": "conf.d/default.conf"}],
            "config_dirs": [{"dest": "conf.d", "target": "/etc/nginx/conf.d"}],
            "reload": {"check": ["nginx", "-t"], "command": ["nginx", "-s", "reload"]},
        },
        "web-server": {"container_name": "web-server", "image": "nginx", "replicas": 2, "order": 10,
                       "networks": [{"network": "frontend", "aliases": ["web"]}]},
        "mongodb": {"container_name": "mongodb", "image": "mongo:8.0", "profiles": ["upstream"],
                    "skip_reason": "no Debian package"},
        "off": {"container_name": "off", "image": "x", "enabled": False},
    }


def specs(profile="offline", hashes=None):
    return stack_containers(services(), NETWORKS, VOLUMES, "ecommerce", profile, "/opt/dl",
                            hashes or {"mysql-db": "h1", "load-balancer": "h2"}, {"interval": "5s", "retries": 10})


def by_name(result):
    return {spec["name"]: spec for spec in result}


def test_order_replicas_and_disabled():
    assert [s["name"] for s in specs()] == ["web-server-1", "web-server-2", "mongodb", "mysql-db", "load-balancer"]


def test_networks_volumes_and_mounts_are_resolved():
    mysql = by_name(specs())["mysql-db"]
    assert mysql["networks"] == [{"name": "ecommerce-database", "aliases": ["mysql"], "ipv4_address": "172.22.0.10"}]
    assert mysql["mounts"] == [
        {"type": "volume", "source": "ecommerce-db-data", "target": "/var/lib/mysql", "read_only": False},
        {"type": "bind", "source": "/srv/x", "target": "/x", "read_only": True},
        {"type": "bind", "source": "/opt/dl/mysql-db/conf.d/my.cnf", "target": "/etc/mysql/conf.d/my.cnf",
         "read_only": True},
        {"type": "bind", "source": "/opt/dl/mysql-db/secrets/root_password", "target": "/run/secrets/pw",
         "read_only": True},
    ]
    assert mysql["env"] == {"PORT": "3306"}
    assert mysql["hostname"] == "mysql-db"


def test_healthcheck_is_laid_over_the_defaults():
    assert by_name(specs())["mysql-db"]["healthcheck"] == {"test": ["CMD", "true"], "interval": "5s", "retries": 3}
    assert by_name(specs())["web-server-1"]["healthcheck"] is None


def test_config_hash_label_except_for_reloadable_services():
    result = by_name(specs())
    assert result["mysql-db"]["labels"] == {
        "dockerlab.stack": "ecommerce", "dockerlab.component": "mysql-db", "dockerlab.config-hash": "h1"}
    assert "dockerlab.config-hash" not in result["load-balancer"]["labels"]
    assert result["load-balancer"]["mounts"] == [
        {"type": "bind", "source": "/opt/dl/load-balancer/conf.d", "target": "/etc/nginx/conf.d", "read_only": True}]
    assert result["load-balancer"]["published_ports"] == ["0.0.0.0:8080:80/tcp"]


def test_profile_skips_with_the_service_reason():
    assert by_name(specs("offline"))["mongodb"]["skip"] == "no Debian package"
    assert by_name(specs("upstream"))["mongodb"]["skip"] is None
    assert by_name(specs("offline"))["mysql-db"]["skip"] is None


def test_undeclared_network_or_volume_is_a_clear_error():
    bad = services()
    bad["mysql-db"]["networks"][0]["network"] = "db"
    with pytest.raises(AnsibleFilterError, match="mysql-db uses network 'db'"):
        stack_containers(bad, NETWORKS, VOLUMES, "e", "offline", "/opt/dl")
    bad = services()
    bad["mysql-db"]["volumes"][0]["volume"] = "nope"
    with pytest.raises(AnsibleFilterError, match="volume 'nope'"):
        stack_containers(bad, NETWORKS, VOLUMES, "e", "offline", "/opt/dl")


def test_config_files_carry_no_secret_value():
    files = stack_config_files(services(), "/opt/dl", "offline")
    assert [(f["kind"], f["path"]) for f in files] == [
        ("config", "/opt/dl/load-balancer/conf.d/default.conf"),
        ("config", "/opt/dl/mysql-db/conf.d/my.cnf"),
        ("secret", "/opt/dl/mysql-db/secrets/root_password"),
    ]
    assert files[0]["template"] == "lb.conf.j2"
    secret = files[-1]
    assert secret["var"] == "data_mysql_root_password" and "value" not in secret and "content" not in secret
    assert secret["owner"] == "999" and secret["mode"] == "0400" and secret["secret"] is True


def test_hashes_and_changed_components_follow_the_written_files():
    from ansible_collections.dockerlab.ecommerce.plugins.filter.stack import changed_components, config_hashes
    files = stack_config_files(services(), "/opt/dl", "offline")
    # The module returns secrets after the other files: results are matched by path.
    order = ((2, "c", False), (0, "a", False), (1, "b", True))
    written = [{"path": files[i]["path"], "checksum": c, "changed": ch} for i, c, ch in order]
    hashes = config_hashes(files, written)
    assert set(hashes) == {"load-balancer", "mysql-db"}
    other = [dict(w, checksum="x") if w["path"] == files[1]["path"] else w for w in written]
    assert hashes["mysql-db"] != config_hashes(files, other)["mysql-db"]
    assert hashes["load-balancer"] == config_hashes(files, other)["load-balancer"]
    assert changed_components(files, written) == ["mysql-db"]


def test_container_health_reads_the_listing():
    from ansible_collections.dockerlab.ecommerce.plugins.filter.stack import container_health
    listing = [
        {"Names": ["/a"], "State": "running", "Status": "Up 5 seconds (healthy)"},
        {"Names": ["/b"], "State": "running", "Status": "Up 2 seconds (health: starting)"},
        {"Names": ["/c"], "State": "restarting", "Status": "Restarting (2) 1 second ago"},
        {"Names": ["/d"], "State": "running", "Status": "Up 1 minute (unhealthy)"},
    ]
    assert container_health(listing, ["a", "b", "c", "d", "e"]) == {
        "a": "healthy", "b": "starting", "c": "restarting", "d": "unhealthy", "e": "missing"}


def test_matching_networks_and_volumes_need_the_exact_declaration():
    from ansible_collections.dockerlab.ecommerce.plugins.filter.stack import matching_networks, matching_volumes
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


def test_a_secret_needs_exactly_one_source():
    bad = services()
    bad["mysql-db"]["secrets"][0]["template"] = "x.j2"
    with pytest.raises(AnsibleFilterError, match="exactly one of 'var'"):
        stack_config_files(bad, "/opt/dl", "offline")


def test_upstream_servers_follow_the_replicas_and_weights():
    from ansible_collections.dockerlab.ecommerce.plugins.filter.stack import upstream_servers
    assert upstream_servers(services(), "web-server", 80, [3]) == [
        {"host": "web-server-1", "port": 80, "weight": 3}, {"host": "web-server-2", "port": 80, "weight": 1}]
    assert upstream_servers(services(), "mysql-db", 3306) == [{"host": "mysql-db", "port": 3306, "weight": 1}]
    assert upstream_servers(services(), "absent", 80) == []


@pytest.mark.parametrize("weights, message", [
    ([0], "w: weight 0 for web-server-1"),
    (["heavy"], "w: weight 'heavy' for web-server-1"),
    ([1, 1, 1], "w: 3 weights are given for 2 web-server containers"),
])
def test_bad_weights_are_refused_by_name(weights, message):
    from ansible_collections.dockerlab.ecommerce.plugins.filter.stack import upstream_servers
    with pytest.raises(AnsibleFilterError, match=message):
        upstream_servers(services(), "web-server", 80, weights, "w")


def test_flows_with_lists_expand_to_single_flows():
    from ansible_collections.dockerlab.ecommerce.plugins.filter.stack import expand_flows
    assert expand_flows([{"from": ["a", "b"], "to": "c", "port": "80"}, {"from": "d", "to": ["e"], "port": 1}]) == [
        {"from": "a", "to": "c", "port": 80}, {"from": "b", "to": "c", "port": 80}, {"from": "d", "to": "e", "port": 1}]


def test_active_services_follow_the_profile():
    from ansible_collections.dockerlab.ecommerce.plugins.filter.stack import active_services
    assert sorted(active_services({"data_services": services()}, "offline")["data_services"]) == [
        "load-balancer", "mysql-db", "web-server"]
    assert "mongodb" in active_services({"data_services": services()}, "upstream")["data_services"]


def test_active_flows_keep_only_deployed_ends():
    from ansible_collections.dockerlab.ecommerce.plugins.filter.stack import active_flows
    deployed = {"data_services": {"mysql-db": {}, "redis-cache": {}}, "backend_services": {"user-service": {}}}
    flows = [{"from": ["user-service", "mongodb"], "to": "mysql-db", "port": 3306},
             {"from": "user-service", "to": "mongodb", "port": 27017}]
    assert active_flows(flows, deployed) == [{"from": "user-service", "to": "mysql-db", "port": 3306}]


def test_network_peer_flows_follow_shared_networks():
    from ansible_collections.dockerlab.ecommerce.plugins.filter.stack import network_peer_flows
    svcs = {"frontend_services": {"lb": {"networks": [{"network": "frontend"}], "expose": [80]},
                                  "gw": {"networks": [{"network": "frontend"}, {"network": "backend"}], "expose": [3000]}},
            "data_services": {"db": {"networks": [{"network": "database"}], "expose": [3306]}}}
    assert network_peer_flows(svcs) == [
        {"from": "db", "to": "db", "port": 3306}, {"from": "gw", "to": "gw", "port": 3000}, {"from": "gw", "to": "lb", "port": 80},
        {"from": "lb", "to": "gw", "port": 3000}, {"from": "lb", "to": "lb", "port": 80}]


def test_container_log_applies_to_all_but_services_with_their_own():
    svcs = services()
    svcs["web-server"]["log"] = {"driver": "json-file"}
    log = {"driver": "syslog", "options": {"syslog-address": "udp://127.0.0.1:5140", "tag": "{{.Name}}"}}
    result = by_name(stack_containers(svcs, NETWORKS, VOLUMES, "ecommerce", "offline", "/opt/dl", {}, {}, log))
    assert result["mysql-db"]["log_driver"] == "syslog"
    assert result["mysql-db"]["log_options"] == {"syslog-address": "udp://127.0.0.1:5140", "tag": "{{.Name}}"}
    assert (result["web-server-1"]["log_driver"], result["web-server-1"]["log_options"]) == ("json-file", {})
    # Without a logging tier, Docker's default driver.
    assert by_name(specs())["mysql-db"]["log_driver"] == "json-file"


def test_scrape_jobs_list_every_replica_and_skip_what_the_profile_leaves_out():
    svcs = services()
    jobs = [{"job": "web", "service": "web-server", "port": 9113}, {"service": "mongodb", "port": 9216},
            {"service": "off", "port": 1}, {"service": "nothing-like-it", "port": 1}]
    assert scrape_jobs(jobs, svcs, "offline") == [
        {"job": "web", "metrics_path": "/metrics", "targets": ["web-server-1:9113", "web-server-2:9113"]}]
    upstream = scrape_jobs(jobs, svcs, "upstream")
    assert [job["job"] for job in upstream] == ["web", "mongodb"]
    assert upstream[1]["targets"] == ["mongodb:9216"]


@pytest.mark.parametrize("text, seconds", [("15s", 15), ("1m", 60), ("1h30m", 5400), ("500ms", 0.5), ("15d", 1296000)])
def test_prometheus_durations(text, seconds):
    assert prometheus_seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "15", "1.5m", "15 s", "m5", "5mins"])
def test_bad_prometheus_durations_are_refused(text):
    with pytest.raises(AnsibleFilterError, match="not a Prometheus duration"):
        prometheus_seconds(text)
