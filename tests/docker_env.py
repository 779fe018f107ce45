"""Docker helpers of the trees that use an engine (tests/images, tests/engine), and
``unused_subnets`` (pure: the unit tests use it too).

What a tree needs before it runs (the SDK, an engine that answers, the images) is checked
by its conftest through tests/prerequisites.py, which stops the run with a message when
something is missing; by the time a test module is imported, it is there."""

from __future__ import annotations

import ipaddress
import os

import pytest
from polling import poll_until


def base_image() -> str:
    """The Debian base image the image tests build on (DOCKERLAB_BASE_IMAGE; tests/images/conftest.py
    has checked that it is set and on the engine)."""
    return os.environ["DOCKERLAB_BASE_IMAGE"].strip()


def unused_subnets(existing_networks, count):
    """``count`` /24 subnets that overlap no network of the Docker engine (``existing_networks``:
    the engine's network list, as the API returns it, or None)."""
    taken = []
    for network in existing_networks or []:
        for config in (network.get('IPAM') or {}).get('Config') or []:
            if config.get('Subnet'):
                taken.append(ipaddress.ip_network(config['Subnet'], strict=False))
    found = []
    for candidate in ipaddress.ip_network('10.231.0.0/16').subnets(new_prefix=24):
        if not any(candidate.version == other.version and candidate.overlaps(other) for other in taken):
            found.append(str(candidate))
            if len(found) == count:
                return found
    pytest.fail(f'the tests need {count} unused /24 subnets in 10.231.0.0/16 and found {len(found)}: '
                'remove the Docker networks that take that range (docker network ls)')
    return found  # not reached


def container_logs(docker, container) -> str:
    """A container's output, or a note when it is already gone (for assertion messages)."""
    try:
        return container.logs(stdout=True, stderr=True).decode("utf-8", "replace")
    except docker.errors.NotFound:
        return "<container gone>"


def remove_all(docker, containers=(), networks=(), volumes=()):
    """Remove what a test made: containers newest first (with their anonymous volumes), then
    networks and volumes. Keeps going past a failure and raises one RuntimeError naming each
    object it could not remove; what is already gone is fine."""
    errors = []

    def attempt(obj, remove):
        try:
            remove()
        except docker.errors.NotFound:
            pass
        except Exception as exc:  # pylint: disable=broad-exception-caught  # keep cleaning, report at the end
            errors.append(f"{obj.name}: {exc}")

    for container in reversed(list(containers)):
        attempt(container, lambda container=container: container.remove(force=True, v=True))
    for network in networks:
        if network is not None:
            attempt(network, network.remove)
    for volume in volumes:
        attempt(volume, lambda volume=volume: volume.remove(force=True))
    if errors:
        raise RuntimeError("cleanup failed: " + "; ".join(errors))


def exec_text(container, cmd, env=None):
    """Run cmd in the container (as the image's user); return (exit_code, stdout, stderr) as text."""
    res = container.exec_run(cmd, environment=env or {}, demux=True)
    out, err = res.output if res.output else (b"", b"")
    return (
        res.exit_code,
        (out or b"").decode("utf-8", "replace"),
        (err or b"").decode("utf-8", "replace"),
    )


def wait_for(docker, predicate, timeout: float, what: str, container=None, interval: float = 0.3, retry_on=()):
    """Poll predicate() until it returns a truthy value or the deadline passes.

    Exceptions of the types in ``retry_on`` count as "not yet"; any other propagates. Fails
    early (with the container's logs) when the container stopped.
    """
    def stopped():
        if container is not None:
            container.reload()
            if container.status in ("exited", "dead"):
                pytest.fail(f"{container.name} stopped while waiting for {what}:\n{container_logs(docker, container)}")

    ok, last = poll_until(predicate, deadline=timeout, interval=interval, retry_on=retry_on, between=stopped)
    if not ok:
        logs = container_logs(docker, container) if container is not None else ""
        pytest.fail(f"timed out after {timeout}s waiting for {what} (last: {last!r})\n{logs}")
    return last
