"""Every container hardened and limited as its service declares, seen in `docker inspect`;
a limit changed in place (nothing restarted); a limit below what a component needs refused
before anything changes; a container below its declared hardening failing validate.yml and
reported by report.yml, and one started by hand with extra capabilities reported."""

import json

from conftest import STACK, poll, run_playbook

# nginx's master runs as root, as in the official image; these are what it keeps (the
# frontend role's frontend_nginx_security says why)
NGINX_CAPABILITIES = {"CHOWN", "SETUID", "SETGID"}
BASE_IMAGE_PREFIX = "dockerlab/ecommerce-base:"


def stack_containers(client):
    return client.containers.list(all=True, filters={"label": f"dockerlab.stack={STACK}"})


def report(*extra):
    return run_playbook("playbooks/report.yml", "-e", "fail_on_violation=true", "-e", "probe_reachability=false", *extra)


def test_every_container_is_hardened_and_limited(client):
    containers = stack_containers(client)
    assert len(containers) >= 15
    for container in containers:
        host, config = container.attrs["HostConfig"], container.attrs["Config"]
        name = container.name
        assert host["CapDrop"] == ["ALL"], name
        assert "no-new-privileges" in (host["SecurityOpt"] or []), name
        assert host["ReadonlyRootfs"] is True, name   # every offline image runs read-only
        assert host["Memory"] > 0 and host["MemorySwap"] == host["Memory"], name
        assert host["NanoCpus"] > 0 and host["PidsLimit"] > 0, name
        assert not host.get("Privileged"), name
        if container.labels.get("dockerlab.component") in ("load-balancer", "web-server"):
            assert set(host["CapAdd"] or []) == NGINX_CAPABILITIES, name
        else:
            assert not host["CapAdd"], name
            assert config["User"] and config["User"].split(":", maxsplit=1)[0] not in ("0", "root"), name


def test_a_limit_change_is_applied_in_place(client):
    before = client.containers.get("redis-cache").attrs
    try:
        rc, out = run_playbook("site.yml", "--tags", "data",
                               "-e", json.dumps({"stack_resources": {"redis-cache": {"pids": 48, "cpus": 0.75,
                                                                                     "memory": "448m"}}}))
        assert rc == 0, out[-3000:]
        after = client.containers.get("redis-cache").attrs
        assert after["Id"] == before["Id"] and after["State"]["StartedAt"] == before["State"]["StartedAt"]
        assert (after["HostConfig"]["PidsLimit"], after["HostConfig"]["NanoCpus"], after["HostConfig"]["Memory"]) == \
            (48, 750000000, 448 * 2 ** 20)
    finally:
        rc, out = run_playbook("site.yml", "--tags", "data")
        assert rc == 0, out[-3000:]
    restored = client.containers.get("redis-cache").attrs
    assert restored["State"]["StartedAt"] == before["State"]["StartedAt"]
    assert restored["HostConfig"]["PidsLimit"] == before["HostConfig"]["PidsLimit"]


def test_a_limit_below_what_a_component_needs_is_refused(client):
    before = client.containers.get("mysql-db").attrs
    rc, out = run_playbook("site.yml", "-e", json.dumps({"stack_resources": {"mysql-db": {"memory": "64m"}}}))
    assert rc != 0, out[-3000:]
    assert "stack_resources['mysql-db'].memory: 64m is below the 224m mysql-db needs to start" in out, out[-3000:]
    assert "nothing was changed" in out
    after = client.containers.get("mysql-db").attrs
    assert after["HostConfig"]["Memory"] == before["HostConfig"]["Memory"]
    assert after["State"]["StartedAt"] == before["State"]["StartedAt"]


def test_a_container_above_its_limits_fails_validation_and_is_repaired(client, undo):
    """web-server-2 given a higher memory limit by hand (docker update, in place): validate.yml
    and report.yml name it; the next deploy puts its limit back without restarting it."""
    server = client.containers.get("web-server-2")
    declared = server.attrs["HostConfig"]["Memory"]
    started = server.attrs["State"]["StartedAt"]
    server.update(mem_limit="256m", memswap_limit="256m")
    undo(lambda: client.containers.get("web-server-2").update(mem_limit=declared, memswap_limit=declared))
    rc, out = run_playbook("playbooks/validate.yml", "-e", "deadline=5")
    assert rc != 0, out[-3000:]
    assert "container web-server-2: expected hardened and limited as declared, saw its memory limit 256m is above " \
           "the declared 48m" in out, out[-3000:]
    rc, out = report()
    assert rc != 0 and "container web-server-2 is below its declared hardening" in out, out[-3000:]
    # the control: a deploy repairs it in place, and validation passes again
    rc, out = run_playbook("site.yml", "--tags", "frontend")
    assert rc == 0, out[-3000:]
    repaired = client.containers.get("web-server-2").attrs
    assert repaired["HostConfig"]["Memory"] == declared and repaired["State"]["StartedAt"] == started
    rc, out = run_playbook("playbooks/validate.yml")
    assert rc == 0, out[-3000:]


def test_a_container_started_by_hand_with_extra_capabilities_is_reported(client, undo):
    base = next(tag for image in client.images.list() for tag in image.tags if tag.startswith(BASE_IMAGE_PREFIX))
    rogue = client.containers.run(base, ["sleep", "300"], name="debug-by-hand", detach=True,
                                  labels={"dockerlab.stack": STACK}, cap_add=["NET_ADMIN", "SYS_PTRACE"],
                                  network="ecommerce-frontend")
    undo(lambda: [c.remove(force=True) for c in client.containers.list(all=True, filters={"name": "^debug-by-hand$"})])
    poll("the container started by hand runs", lambda: client.containers.get("debug-by-hand").status,
         done=lambda status: status == "running", deadline=30)
    rc, out = report()
    assert rc != 0, out[-3000:]
    assert "container debug-by-hand is below its declared hardening (stack_security): it does not drop every " \
           "capability (cap_drop ALL); it has capabilities NET_ADMIN, SYS_PTRACE beyond the declared (none)" in out, \
        out[-3000:]
    assert "it runs as root; it has no memory limit" in out
    # the control: without it, the report has no such violation
    rogue.remove(force=True)
    rc, out = report()
    assert rc == 0 and "below its declared hardening" not in out, out[-3000:]
