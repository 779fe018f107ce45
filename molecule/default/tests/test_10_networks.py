"""The four segmented networks and the volumes, as the course names them."""

from conftest import NETWORKS, STACK
from course import COURSE_ADDRESSES  # pylint: disable=import-error  # tests/course.py


def test_networks_have_their_subnets_and_internal_flag(client):
    for name, (subnet, internal) in NETWORKS.items():
        net = client.networks.get(name)
        assert [c["Subnet"] for c in net.attrs["IPAM"]["Config"]] == [subnet], name
        assert net.attrs["Internal"] is internal, name
        assert net.attrs["Labels"]["dockerlab.stack"] == STACK


def test_volumes_exist_with_the_stack_label(client):
    names = {v.name for v in client.volumes.list(filters={"label": "dockerlab.stack=" + STACK})}
    assert {"ecommerce-molecule-db-data", "ecommerce-molecule-cache-data", "ecommerce-molecule-logs",
            "ecommerce-molecule-config"} <= names


# The course's addresses (tests/course.py), by Docker network name, of what runs offline.
OFFLINE_ADDRESSES = {name: {f"ecommerce-{key}": address for key, address in by_key.items()}
                     for name, by_key in COURSE_ADDRESSES.items()
                     if name not in ("mongodb", "grafana", "cadvisor", "elasticsearch", "kibana", "fluentd")}


def test_containers_have_the_courses_addresses(client):
    for name, expected in OFFLINE_ADDRESSES.items():
        networks = client.containers.get(name).attrs["NetworkSettings"]["Networks"]
        assert {net: networks[net]["IPAddress"] for net in expected} == expected, name


def test_dynamic_addresses_come_from_the_ip_range(client):
    for name, (subnet, _internal) in NETWORKS.items():
        config = client.networks.get(name).attrs["IPAM"]["Config"][0]
        assert config.get("IPRange") == subnet.replace(".0.0/16", ".128.0/17"), name
    # the exporters have no course address: theirs is dynamic, inside the range
    networks = client.containers.get("node-exporter").attrs["NetworkSettings"]["Networks"]
    assert networks["ecommerce-monitoring"]["IPAddress"].startswith("172.23.") and \
        int(networks["ecommerce-monitoring"]["IPAddress"].split(".")[2]) >= 128
