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
from conftest import DEFAULT_IMAGES, DEFAULT_SERVICES, default_model

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


# --------------------------------------------------------------------------- the official images' hardening

HARDENING_KEYS = {"user", "starts_as_root", "runs_as_user", "capabilities", "writes", "read_only_root", "source"}


def _upstream_containers():
    """(record, listed image) for every container of the upstream profile that runs a listed image:
    its `image` is the entry's reference, or it is a recipe built FROM that image (image_component)."""
    pairs = []
    for record in default_model("upstream")["containers"]:
        entry = LISTED_IMAGES.get(record.get("image"))
        spec = DEFAULT_IMAGES.get(record.get("image_component")) or {}
        if entry is None and spec.get("upstream_recipe"):
            entry = LISTED_IMAGES.get(spec.get("upstream"))
        if entry is not None:
            pairs.append((record, entry))
    return pairs


UPSTREAM_CONTAINERS = _upstream_containers()


def _uid(user):
    return str(user).split(":", 1)[0] if user not in (None, "") else None


def _resolved(path, symlinks):
    """``path`` through the image's symlinks (e.g. /var/run -> /run), without a trailing slash."""
    path = path.rstrip("/") or "/"
    for link, target in (symlinks or {}).items():
        link = link.rstrip("/")
        if path == link or path.startswith(link + "/"):
            return target.rstrip("/") + path[len(link):]
    return path


def _covered(path, mounts):
    return any(path == mount or path.startswith(mount.rstrip("/") + "/") for mount in mounts)


def test_every_listed_image_has_its_hardening_facts():
    for reference, entry in LISTED_IMAGES.items():
        facts = entry.get("hardening")
        assert isinstance(facts, dict), f"{reference}: hardening is missing"
        missing = sorted(HARDENING_KEYS - set(facts))
        assert missing == [], f"{reference}: hardening lacks {missing}"
        assert set(facts) - HARDENING_KEYS - {"symlinks", "note"} == set(), f"{reference}: hardening has unknown keys"
        assert isinstance(facts["user"], str) and re.fullmatch(r"\d+(:\d+)?", facts["user"]), \
            f"{reference}: hardening.user is a uid or uid:gid string"
        for key in ("starts_as_root", "runs_as_user", "read_only_root"):
            assert isinstance(facts[key], bool), f"{reference}: hardening.{key} is a bool"
        assert isinstance(facts["capabilities"], list) and all(
            re.fullmatch(r"[A-Z_]+", cap) and not cap.startswith("CAP_") for cap in facts["capabilities"]), \
            f"{reference}: hardening.capabilities is a list of capability names without CAP_"
        assert isinstance(facts["writes"], list) and all(path.startswith("/") for path in facts["writes"]), \
            f"{reference}: hardening.writes is a list of absolute paths"
        assert all(link.startswith("/") and target.startswith("/")
                   for link, target in (facts.get("symlinks") or {}).items()), f"{reference}: hardening.symlinks"
        assert isinstance(facts["source"], str) and facts["source"].strip(), f"{reference}: hardening.source"
        assert isinstance(facts.get("note", ""), str), f"{reference}: hardening.note is a string"
        if _uid(facts["user"]) == "0":
            # root all along: there is nothing to drop to, nor a user to start as
            assert not facts["starts_as_root"], f"{reference}: hardening.starts_as_root with user 0"
            assert not facts["runs_as_user"], f"{reference}: hardening.runs_as_user with user 0"


def test_every_listed_image_runs_in_the_upstream_profile():
    # the contract below holds nothing if no container matched an image
    assert {entry["reference"] for _record, entry in UPSTREAM_CONTAINERS} == set(LISTED_IMAGES)


@pytest.mark.parametrize("record, entry", UPSTREAM_CONTAINERS,
                         ids=[record["name"] for record, _entry in UPSTREAM_CONTAINERS])
def test_the_roles_run_each_official_image_as_its_source_says(record, entry):
    image, facts, security = entry["reference"], entry["hardening"], record["security"]
    where = f"{image} ({record['name']})"
    listed_uid = _uid(facts["user"])

    # user: the image's own uid; an image that starts as root and drops is started as that
    # uid (its entrypoint skips the drop), and only an image that needs root runs as root
    if listed_uid == "0":
        assert _uid(record["user"]) in (None, "0"), f"{where}: user must be root (hardening.user 0)"
        assert security["non_root"] is False, f"{where}: security.non_root must be false (hardening.user 0)"
        assert security["why"], f"{where}: security.why must say why it runs as root"
    else:
        how = "the uid its entrypoint drops to" if facts["starts_as_root"] else "the uid it runs as"
        assert _uid(record["user"]) == listed_uid, \
            f"{where}: user {record['user']!r} is not {listed_uid}, {how} (hardening.user)"
        assert facts["runs_as_user"], f"{where}: hardening.runs_as_user: the roles start it as uid {listed_uid}"
        assert security["non_root"] is True, f"{where}: security.non_root must be true (hardening.user {facts['user']})"

    # capabilities: every capability is dropped, and only what the image needs is added back
    assert "ALL" in security["cap_drop"], f"{where}: security.cap_drop must hold ALL"
    extra = set(security["cap_add"]) - set(facts["capabilities"])
    assert extra == set(), f"{where}: security.cap_add {sorted(extra)} beyond hardening.capabilities"

    # a read-only root needs a tmpfs (the path or a parent) for every path the image writes
    if security["read_only"]:
        symlinks = facts.get("symlinks")
        mounts = {_resolved(path, symlinks) for path in security["tmpfs"]}
        missing = [path for path in facts["writes"] if not _covered(_resolved(path, symlinks), mounts)]
        assert missing == [], f"{where}: security.tmpfs does not cover {missing} (hardening.writes)"
    else:
        assert security["why"], f"{where}: security.why must say why the root stays writable"
    if not facts["read_only_root"]:
        assert not security["read_only"], f"{where}: security.read_only, but hardening.read_only_root is false"
