# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""docs/upstream_sources.yml lists every pinned upstream image and build input with the source
it was checked against. These tests fail when the roles pin something the list does not hold
(or the list holds what the roles no longer use), when a recipe built in the upstream profile
installs a package or gem the list does not name, and when image_source=auto would not ask a
registry or mirror the upstream profile needs. The upstream images cannot run here; where the
roles rely on a fact of an official image read from its source, a test below holds the roles
to it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from ansible_collections.dockerlab.ecommerce.plugins.module_utils._images.sources import image_host
from conftest import DEFAULT_IMAGES, DEFAULT_SERVICES

ROOT = Path(__file__).resolve().parents[2]
SOURCES = yaml.safe_load((ROOT / "docs" / "upstream_sources.yml").read_text())
IMAGES_DEFAULTS = yaml.safe_load((ROOT / "roles" / "images" / "defaults" / "main.yml").read_text())
LISTED_IMAGES = {entry["reference"]: entry for entry in SOURCES["images"]}
INPUTS = SOURCES["build_inputs"]


def _recipes_built_upstream():
    """Recipe directory -> the image it builds FROM in the upstream profile."""
    recipes = {}
    for spec in DEFAULT_IMAGES.values():
        if not (spec.get("upstream_recipe") or spec.get("recipe")):
            continue
        tier = next(path.parent.parent.name for path in ROOT.glob("roles/*/images/*")
                    if path.name == (spec.get("upstream_recipe") or spec.get("recipe")))
        if spec.get("upstream_recipe"):
            recipes[ROOT / "roles" / tier / "images" / spec["upstream_recipe"]] = spec["upstream"]
        elif spec.get("recipe") and not spec.get("upstream") and "upstream" in (spec.get("profiles") or ["upstream"]):
            recipes[ROOT / "roles" / tier / "images" / spec["recipe"]] = IMAGES_DEFAULTS["images_upstream_base"]
    return recipes


RECIPES = _recipes_built_upstream()


def test_every_pinned_image_is_listed_with_its_source():
    pinned = {spec["upstream"] for spec in DEFAULT_IMAGES.values() if spec.get("upstream")}
    assert pinned - set(LISTED_IMAGES) == set(), "pinned in the roles, missing from docs/upstream_sources.yml"
    assert set(LISTED_IMAGES) - pinned == set(), "listed, but no role pins it any more"
    for reference, entry in LISTED_IMAGES.items():
        assert entry["source"].startswith("https://") and entry["evidence"].strip(), reference
        assert entry["registry"] == image_host(reference), reference


def test_the_recipes_built_upstream_are_the_ones_expected():
    # the service image on Debian's official image, Fluentd on the official fluent/fluentd one
    assert sorted(path.name for path in RECIPES) == ["fluentd", "service"]


def test_every_base_image_of_an_upstream_build_is_listed():
    listed = {entry["name"] for entry in INPUTS if entry["kind"] == "base-image"}
    for recipe, base in RECIPES.items():
        assert base in listed, recipe
        # the recipe's own default (for a plain `docker build`) is the same image
        default = re.search(r"^ARG BASE_IMAGE=(\S+)$", (recipe / "Dockerfile").read_text(), re.M).group(1)
        assert default == base, recipe


def test_every_gem_an_upstream_build_installs_is_listed_at_its_version():
    gems = {(entry["name"], entry["version"]) for entry in INPUTS if entry["kind"] == "gem"}
    found = set()
    for recipe in RECIPES:
        text = (recipe / "Dockerfile").read_text()
        args = dict(re.findall(r"^ARG (\w+)=(\S+)$", text, re.M))
        for name, variable in re.findall(r'gem install [^;]*?(\S+) -v "\$\{(\w+)\}"', text):
            found.add((name, args[variable]))
    assert found == gems


def test_every_package_an_upstream_build_installs_is_listed():
    listed = {name for entry in INPUTS if entry["kind"] == "apt" for name in entry["name"].split()}
    installed = set()
    for recipe in RECIPES:
        text = (recipe / "Dockerfile").read_text().replace("\\\n", " ")
        for block in re.findall(r"apt-get install [^;]*", text):
            installed.update(word for word in block.split()[2:] if not word.startswith(("-", "$")))
        for deps in re.findall(r'buildDeps="([^"]+)"', text):
            installed.update(deps.split())
    assert "python3-cryptography" in installed   # caching_sha2_password (mysql:8.4), see the service Dockerfile
    assert installed - listed == set(), "installed by an upstream build, missing from docs/upstream_sources.yml"


def test_auto_asks_every_source_the_upstream_profile_needs():
    probes = IMAGES_DEFAULTS["images_source_probes"]
    needed = {image_host(reference) for reference in LISTED_IMAGES} | {image_host(IMAGES_DEFAULTS["images_upstream_base"])}
    needed |= set(IMAGES_DEFAULTS["images_recipe_sources"])
    needed |= {source for spec in DEFAULT_IMAGES.values() for source in spec.get("build_sources") or []}
    assert needed - set(probes) == set()
    documented = {entry["probe"]: entry["probe_url"] for entry in SOURCES["registries"] if entry.get("probe")}
    assert documented == probes
    assert IMAGES_DEFAULTS["images_primary_source"] in probes


# --------------------------------------------------------------------------- the official images' interfaces

def _service(key):
    return next(tier[key] for tier in DEFAULT_SERVICES.values() if key in tier)


def test_mongodb_is_healthy_only_when_the_real_server_answers_on_its_address():
    # mongo 8.0's entrypoint runs the init scripts against a temporary mongod bound to
    # 127.0.0.1 only (docs/upstream_sources.yml, mongo:8.0): a localhost ping would pass then.
    assert any("--bind_ip 127.0.0.1" in line for line in LISTED_IMAGES["mongo:8.0"]["interface"])
    test = " ".join(_service("mongodb")["healthcheck"]["test"])
    assert "mongosh" in test and '--host "$(hostname -i' in test
    assert "127.0.0.1" not in test and "localhost" not in test


def test_cadvisor_runs_its_documented_mounts_and_dev_disk_only_where_the_host_has_it():
    mounts = {mount["target"]: mount for mount in _service("cadvisor")["volumes"]}
    assert set(mounts) == {"/rootfs", "/var/run", "/sys", "/var/lib/docker", "/dev/disk"}
    assert all(mount["read_only"] for mount in mounts.values())
    assert [target for target, mount in mounts.items() if mount.get("optional")] == ["/dev/disk"]
    assert _service("cadvisor")["expose"] == [8080]   # its --port default (docs: cmd/cadvisor.go)


def test_the_cadvisor_tag_is_on_ghcr_and_reads_the_containerd_image_store():
    reference = DEFAULT_IMAGES["cadvisor"]["upstream"]
    repository, tag = reference.rsplit(":", 1)
    assert repository == "ghcr.io/google/cadvisor"
    # v-prefixed tags exist on ghcr.io from v0.57.0; containerd image store support from v0.54
    assert tuple(int(part) for part in tag.lstrip("v").split(".")) >= (0, 57, 0)


@pytest.mark.parametrize("component, user", [("mysql", "999"), ("redis", "999"), ("mongodb", "999")])
def test_the_data_images_secrets_are_owned_by_the_images_user(component, user):
    # mysql, redis and mongo run as uid 999 (docs/upstream_sources.yml), which must read the secrets
    assert any(f"uid {user}" in line or f"uid/gid {user}" in line or f"-u {user}" in line
               for line in next(e for e in SOURCES["images"] if e["component"] == component)["interface"])
    service = next(s for tier in DEFAULT_SERVICES.values() for s in tier.values()
                   if s.get("image_component") == component)
    assert {secret.get("owner") for secret in service.get("secrets") or []} <= {user}
