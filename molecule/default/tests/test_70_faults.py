"""Injected faults are each reported by name: validate.yml fails on them, and report.yml
lists them as violations. Every fault is undone at the end and the stack validates again.
Runs before the persistence tests, which rebuild the stack."""

import html

from conftest import REPO, run_playbook, wait_healthy


def report(*extra):
    return run_playbook("playbooks/report.yml", "-e", "fail_on_violation=true", *extra)


def test_a_stopped_container_fails_validation_by_name(client, undo):
    client.containers.get("order-service-2").stop(timeout=5)
    undo(lambda: (client.containers.get("order-service-2").start(), wait_healthy(client, "order-service-2")))
    rc, out = run_playbook("playbooks/validate.yml", "-e", "deadline=5")
    assert rc != 0, out[-3000:]
    assert "order-service-2" in out and "running" in out, out[-3000:]
    rc, out = report("-e", "probe_reachability=false")
    assert rc != 0
    assert "container order-service-2 is exited" in out, out[-3000:]


def test_a_container_on_a_network_it_must_not_be_on(client, undo):
    net = client.networks.get("ecommerce-backend")
    net.connect("web-server-1")
    undo(lambda: net.disconnect("web-server-1"))
    rc, out = report()
    assert rc != 0
    assert "container web-server-1 is attached to network ecommerce-backend, which it does not declare" in out, \
        out[-3000:]


def test_a_port_on_all_interfaces_that_should_be_local(client):
    # The load balancer runs on 0.0.0.0:8080; declare it local and the report must object.
    rc, out = report("-e", "probe_reachability=false", "-e", "frontend_bind_address=127.0.0.1")
    assert rc != 0
    assert "container load-balancer publishes 8080/tcp on 0.0.0.0: bound to all interfaces, should be local" in out, \
        out[-3000:]


def test_a_forbidden_flow_that_turns_out_reachable(client, undo):
    # The database tier is never reachable from the load balancer.
    net = client.networks.get("ecommerce-database")
    net.connect("load-balancer")
    undo(lambda: net.disconnect("load-balancer"))
    rc, out = report()
    assert rc != 0
    assert "flow load-balancer -> mysql-db:3306 is reachable but stack_flows does not allow it" in out, out[-3000:]


def test_the_stack_is_whole_again(client):
    rc, out = run_playbook("playbooks/validate.yml")
    assert rc == 0, out[-3000:]
    rc, out = report()
    assert rc == 0, out[-3000:]
    assert "No violations." in out
    # make test installs graphviz, so the report also renders its SVG.
    svg = html.unescape((REPO / "reports" / "topology.svg").read_text())
    assert "<svg" in svg and "ecommerce-database" in svg and "mysql-db" in svg
