# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What a test tree needs before it can run, checked once, failing loudly.

A tree that needs something besides Python (a Docker engine, an image, a variable naming
one, a browser) says so in its conftest::

    def pytest_collectstart(collector):
        require(collector, __file__, "make engine", lambda: engine_and_images("dockerlab/ecommerce-mysql"))

Before the tree's first test module is imported (so under ``--collect-only`` too), the
check runs once; when it names anything missing, the whole run stops with
``pytest.UsageError`` (exit code 4) listing each thing and how to get it. Nothing is
skipped: a stage whose prerequisite is missing fails instead of passing with nothing run.
"""

from __future__ import annotations

import functools
import importlib
import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
IMAGES_HINT = "`make images` builds the offline images (and records them in /opt/dockerlab/ecommerce/images.json)"
_RESULTS: dict = {}


def require(collector, conftest_file, stage, check):
    """Call from a tree's ``pytest_collectstart``: stop the run unless ``check()`` (a list of
    what is missing, each with how to get it) comes back empty. ``stage`` is the make target
    that runs the tree with everything it needs."""
    if not isinstance(collector, pytest.Module):
        return
    tree = Path(conftest_file).resolve().parent
    if tree not in _RESULTS:
        _RESULTS[tree] = [problem for problem in check() if problem]
    missing = _RESULTS[tree]
    if missing:
        try:
            name = tree.relative_to(REPO_ROOT)
        except ValueError:
            name = tree
        raise pytest.UsageError(
            f"{name}/ cannot run, it needs what is missing here (`{stage}` runs it with all it needs):\n  - "
            + "\n  - ".join(missing))


def env_var(name, meaning):
    """The problem with environment variable ``name`` (unset or empty), or None."""
    if os.environ.get(name, "").strip():
        return None
    return f"{name} is not set: it must name {meaning}"


def python_module(name, how):
    """The problem importing ``name``, or None."""
    try:
        importlib.import_module(name)
    except ImportError as exc:
        return f"the Python module {name} cannot be imported ({exc}): {how}"
    return None


def executable(path, what, how):
    """The problem with an executable file, or None."""
    if os.path.isfile(path) and os.access(path, os.X_OK):
        return None
    return f"{what} is not at {path}: {how}"


@functools.lru_cache(maxsize=None)
def engine_problem():
    """Why no Docker engine can be used (no SDK, nothing answers), or None."""
    try:
        import docker  # pylint: disable=import-outside-toplevel
    except ImportError as exc:
        return f"the Docker SDK for Python cannot be imported ({exc}): `make venv` installs requirements.txt"
    try:
        client = docker.from_env(timeout=15)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:  # pylint: disable=broad-exception-caught  # any failure means: no usable engine
        return (f"no Docker engine answers ({exc.__class__.__name__}: {exc}): `make host` installs and starts one "
                "(DOCKER_HOST names another)")
    return None


def _client():
    import docker  # pylint: disable=import-outside-toplevel
    return docker.from_env(timeout=30)


def latest_local_image(repository):
    """The newest local tag of ``repository`` (e.g. dockerlab/ecommerce-mysql), or None."""
    client = _client()
    try:
        images = [image for image in client.images.list(name=repository) if image.tags]
    finally:
        client.close()
    images.sort(key=lambda image: image.attrs.get("Created", ""), reverse=True)
    return images[0].tags[0] if images else None


def image_problem(ref):
    """The problem with image ``ref`` on the engine (absent), or None."""
    import docker  # pylint: disable=import-outside-toplevel
    client = _client()
    try:
        client.images.get(ref)
    except docker.errors.ImageNotFound:
        return f"the image {ref} is not on this Docker engine: {IMAGES_HINT}"
    finally:
        client.close()
    return None


def engine_and_images(*repositories, refs=()):
    """What is missing of: an engine, a local tag of each of ``repositories``, each image of ``refs``."""
    problem = engine_problem()
    if problem:
        return [problem]
    missing = [f"no local {repository}:* image: {IMAGES_HINT}"
               for repository in repositories if latest_local_image(repository) is None]
    return missing + [image_problem(ref) for ref in refs]
