"""The four segmented networks and the volumes, as the course names them."""

from conftest import NETWORKS, STACK


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
