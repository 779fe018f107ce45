"""Shared helpers for the verifier: the Docker API, the test inventory's secrets, running
the project's playbooks the way a user does, and ``poll``: what arrives asynchronously
(logs, metrics, Prometheus state, a container's health) is read through it, never once."""

import json
import os
import subprocess
import sys
from pathlib import Path

import docker
import pytest

REPO = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).resolve().parents[3]))
sys.path.insert(0, str(REPO / "tests"))  # tests/polling.py
from polling import poll_until  # noqa: E402  pylint: disable=import-error,wrong-import-position
INVENTORY = REPO / "molecule" / "default" / "inventory"
STACK = "ecommerce-molecule"
SECRETS_DIR = Path.home() / ".config" / "dockerlab" / STACK / "secrets"
NETWORKS = {
    "ecommerce-frontend": ("172.20.0.0/16", False),
    "ecommerce-backend": ("172.21.0.0/16", False),
    "ecommerce-database": ("172.22.0.0/16", True),
    "ecommerce-monitoring": ("172.23.0.0/16", False),
}
ACCOUNTS = {"user_service": "users", "order_service": "orders", "payment_service": "payments"}


@pytest.fixture(scope="session")
def client():
    return docker.from_env()


@pytest.fixture
def undo():
    """Undo steps of a fault (``undo(callable)``), run in reverse even when the test fails."""
    steps = []
    yield steps.append
    for step in reversed(steps):
        step()


def secret(name):
    return (SECRETS_DIR / name).read_text().strip()


def run_playbook(*args, timeout=900):
    """Run a playbook of the project against the test inventory; return (rc, output)."""
    env = dict(os.environ)
    env.update(
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        ANSIBLE_COLLECTIONS_PATH=str(REPO / "collections"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
    )
    cmd = [str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(INVENTORY), *args]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def recap_changed(output):
    """The `changed=` count of the localhost line in the play recap."""
    for line in output.splitlines()[::-1]:
        if line.startswith("localhost") and "changed=" in line:
            return int(line.split("changed=")[1].split()[0])
    raise AssertionError("no play recap in the output:\n" + output[-3000:])


def started_at(client):
    return {
        c.name: c.attrs["State"]["StartedAt"]
        for c in client.containers.list(all=True, filters={"label": "dockerlab.stack=" + STACK})
    }


def poll(what, probe, done=bool, deadline=60, interval=1.0, retry_on=()):
    """Call ``probe()`` until ``done(value)`` holds for the value it returns; return that value.

    Exceptions of the types in ``retry_on`` count as "not yet" (e.g. a service that is still
    starting). Past ``deadline`` seconds, fail naming ``what`` and the last value (or
    exception), so the message shows how far it got."""
    ok, last = poll_until(probe, done=done, deadline=deadline, interval=interval, retry_on=retry_on)
    if not ok:
        raise AssertionError(f"{what}: not within {deadline}s; last: {last!r}")
    return last


def wait_healthy(client, name, deadline=180):
    """Wait until container ``name`` runs and its healthcheck says healthy."""
    def state():
        container = client.containers.get(name)
        return container.status, container.attrs["State"].get("Health", {}).get("Status")
    poll(f"{name} running and healthy", state, done=lambda s: s == ("running", "healthy"), deadline=deadline)


# The stateless services run two replicas by default (<name>-1, -2; the course's name is their
# DNS alias); the first replica has the course's addresses.
REPLICATED = ("api-gateway", "user-service", "order-service", "payment-service")
REPLICAS = 2


def replica_names(component, count=REPLICAS):
    return [f"{component}-{n}" for n in range(1, count + 1)]


def component_containers(client, component):
    """The running containers of one component (every replica), by the model's label."""
    return sorted(client.containers.list(filters={"label": [f"dockerlab.stack={STACK}",
                                                            f"dockerlab.component={component}"]}),
                  key=lambda c: c.name)


def image_of(client, name):
    return client.containers.get(name).attrs["Config"]["Image"]


def run_in_network(client, network, image, script, env=None):
    """Run a shell script in a throwaway container on one of the stack's networks."""
    container = client.containers.run(
        image, [script], entrypoint=["sh", "-c"], network=network, environment=env or {},
        detach=True, labels={"dockerlab.test": "verify"},
    )
    try:
        result = container.wait(timeout=120)
        return result["StatusCode"], container.logs().decode()
    finally:
        container.remove(force=True)


def load_json(path):
    return json.loads(Path(path).read_text())
