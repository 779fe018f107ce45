"""What every image test needs before it can run: the Docker SDK, an engine that answers,
and the Debian base image to build on (DOCKERLAB_BASE_IMAGE). Each test module calls
``require_engine_and_base(...)`` at import time and is skipped, with the reason, when
something is missing."""

from __future__ import annotations

import os
import time

import pytest


def engine_problem(docker) -> str | None:
    """Why no Docker engine can be used, or None."""
    try:
        client = docker.from_env(timeout=15)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:  # pylint: disable=broad-exception-caught  # any failure means: no usable engine
        return f"no Docker engine answers ({exc.__class__.__name__}: {exc})"
    return None


def require_engine_and_base(docker, what: str) -> str:
    """Skip the calling module unless an engine answers and a base image is named; return it."""
    base = os.environ.get("DOCKERLAB_BASE_IMAGE", "").strip()
    if not base:
        pytest.skip(f"DOCKERLAB_BASE_IMAGE is not set: it must name a local Debian bookworm image to build {what} from",
                    allow_module_level=True)
    problem = engine_problem(docker)
    if problem:
        pytest.skip(problem, allow_module_level=True)
    return base


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
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = predicate()
        except retry_on as exc:  # pylint: disable=catching-non-exception  # a tuple of exception types
            last = exc
        else:
            if last:
                return last
        if container is not None:
            container.reload()
            if container.status in ("exited", "dead"):
                pytest.fail(f"{container.name} stopped while waiting for {what}:\n{container_logs(docker, container)}")
        if time.monotonic() > deadline:
            logs = container_logs(docker, container) if container is not None else ""
            pytest.fail(f"timed out after {timeout}s waiting for {what} (last: {last!r})\n{logs}")
        time.sleep(interval)
