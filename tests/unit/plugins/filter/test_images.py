# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""images_plan: which component images are pulled or built, and their tags."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.dockerlab.ecommerce.plugins.filter.images import images_plan
from ansible_collections.dockerlab.ecommerce.plugins.module_utils._images.sources import image_host

TIERS = {"data": {"mysql": {"upstream": "mysql:8.4", "recipe": "mysql"}, "mongodb": {"upstream": "mongo:8.0"}},
         "backend": {"service": {"recipe": "service"}}}


@pytest.fixture
def roles_dir(tmp_path):
    for tier, recipe in (("data", "mysql"), ("backend", "service")):
        path = tmp_path / tier / "images" / recipe
        path.mkdir(parents=True)
        (path / "Dockerfile").write_text("FROM ${BASE_IMAGE}\n")
    return tmp_path


def plan(roles_dir, profile, base="base:1"):
    return {e["component"]: e for e in images_plan(TIERS, profile, str(roles_dir), "dl/ecommerce", base)}


def test_offline_builds_recipes_and_leaves_out_the_rest(roles_dir):
    result = plan(roles_dir, "offline")
    assert result["mysql"]["action"] == "build" and result["mysql"]["ref"].startswith("dl/ecommerce-mysql:")
    assert result["service"]["action"] == "build"
    assert result["mongodb"]["action"] == "none" and result["mongodb"]["ref"] is None
    assert "no offline recipe" in result["mongodb"]["reason"]


def test_upstream_pulls_official_images_and_builds_our_own(roles_dir):
    result = plan(roles_dir, "upstream")
    assert (result["mysql"]["action"], result["mysql"]["ref"]) == ("pull", "mysql:8.4")
    assert (result["mongodb"]["action"], result["mongodb"]["ref"]) == ("pull", "mongo:8.0")
    assert result["service"]["action"] == "build"


def test_tag_follows_the_recipe_and_the_base(roles_dir):
    first = plan(roles_dir, "offline")["mysql"]["ref"]
    assert plan(roles_dir, "offline")["mysql"]["ref"] == first
    assert plan(roles_dir, "offline", base="base:2")["mysql"]["ref"] != first
    (roles_dir / "data" / "images" / "mysql" / "Dockerfile").write_text("FROM ${BASE_IMAGE}\nRUN true\n")
    assert plan(roles_dir, "offline")["mysql"]["ref"] != first


def test_unknown_profile_is_refused(roles_dir):
    with pytest.raises(AnsibleFilterError, match="profile must be one of upstream, offline, got .auto."):
        images_plan(TIERS, "auto", str(roles_dir), "dl/ecommerce", "base:1")


def test_stages_of_one_recipe_get_their_own_tags(roles_dir):
    tiers = {"monitoring": {"prometheus": {"recipe": "prom", "target": "prometheus"},
                            "node-exporter": {"recipe": "prom", "target": "node-exporter"}}}
    path = roles_dir / "monitoring" / "images" / "prom"
    path.mkdir(parents=True)
    (path / "Dockerfile").write_text("FROM ${BASE_IMAGE} AS prometheus\nFROM ${BASE_IMAGE} AS node-exporter\n")
    result = {e["component"]: e for e in images_plan(tiers, "offline", str(roles_dir), "dl/ecommerce", "base:1")}
    assert result["prometheus"]["target"] == "prometheus"
    assert result["node-exporter"]["target"] == "node-exporter"
    assert result["prometheus"]["ref"].split(":")[1] != result["node-exporter"]["ref"].split(":")[1]
    assert result["prometheus"]["base"] == "base:1"


def test_upstream_recipe_builds_on_the_official_image_and_only_upstream(roles_dir):
    tiers = {"logging": {"fluentd": {"upstream": "fluent/fluentd:v1", "upstream_recipe": "fluentd"}}}
    path = roles_dir / "logging" / "images" / "fluentd"
    path.mkdir(parents=True)
    (path / "Dockerfile").write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n")
    upstream = images_plan(tiers, "upstream", str(roles_dir), "dl/ecommerce", "base:1")[0]
    assert upstream["action"] == "build" and upstream["base"] == "fluent/fluentd:v1"
    assert upstream["from_image"] == "fluent/fluentd:v1"
    assert upstream["ref"].startswith("dl/ecommerce-fluentd:")
    offline = images_plan(tiers, "offline", str(roles_dir), "dl/ecommerce", "base:1")[0]
    assert offline["action"] == "none"


def test_a_component_limited_to_one_profile_is_left_out_of_the_other(roles_dir):
    tiers = {"data": {"mysql": {"upstream": "mysql:8.4", "recipe": "mysql", "profiles": ["offline"]}}}
    assert images_plan(tiers, "offline", str(roles_dir), "dl/ecommerce", "base:1")[0]["action"] == "build"
    upstream = images_plan(tiers, "upstream", str(roles_dir), "dl/ecommerce", "base:1")[0]
    assert upstream["action"] == "none" and "not used in the upstream profile" in upstream["reason"]


def test_the_reason_ends_with_the_entry_skip_reason(roles_dir):
    tiers = {"logging": {"collector": {"recipe": "rsyslog", "profiles": ["offline"],
                                       "skip_reason": "upstream,   Fluentd\n collects"},
                         "search": {"upstream": "elasticsearch:8", "skip_reason": "files instead"}}}
    (roles_dir / "logging" / "images" / "rsyslog").mkdir(parents=True)
    (roles_dir / "logging" / "images" / "rsyslog" / "Dockerfile").write_text("FROM ${BASE_IMAGE}\n")
    upstream = {e["component"]: e for e in images_plan(tiers, "upstream", str(roles_dir), "dl/ecommerce", "base:1")}
    assert upstream["collector"]["reason"] == "collector is not used in the upstream profile: upstream, Fluentd collects"
    assert upstream["search"]["action"] == "pull" and "reason" not in upstream["search"]
    offline = {e["component"]: e for e in images_plan(tiers, "offline", str(roles_dir), "dl/ecommerce", "base:1")}
    assert offline["search"]["action"] == "none" and offline["search"]["reason"].endswith(": files instead")
    assert offline["collector"]["action"] == "build"


# --------------------------------------------------------------------------- image_source=auto, per component

MIXED = {"data": {"mysql": {"upstream": "mysql:8.4", "recipe": "mysql"}, "mongodb": {"upstream": "mongo:8.0"}},
         "backend": {"service": {"recipe": "service"}},
         "monitoring": {"cadvisor": {"upstream": "ghcr.io/google/cadvisor:v0.60.5"}},
         "logging": {"fluentd": {"upstream": "fluent/fluentd:v1.19.1-debian-2.0", "upstream_recipe": "fluentd",
                                 "build_sources": ["deb.debian.org", "rubygems.org"]}}}


def mixed(roles_dir, unreachable, profile="upstream"):
    recipe = roles_dir / "logging" / "images" / "fluentd"
    recipe.mkdir(parents=True, exist_ok=True)
    (recipe / "Dockerfile").write_text("FROM ${BASE_IMAGE}\n")
    entries = images_plan(MIXED, profile, str(roles_dir), "dl/ecommerce", "debian:bookworm-slim", unreachable,
                          ["deb.debian.org"])
    return {e["component"]: e for e in entries}


def test_each_component_lists_the_sources_it_needs(roles_dir):
    result = mixed(roles_dir, [])
    assert result["mysql"]["sources"] == ["docker.io"]
    assert result["cadvisor"]["sources"] == ["ghcr.io"]
    assert result["service"]["sources"] == ["docker.io", "deb.debian.org"]
    assert result["fluentd"]["sources"] == ["docker.io", "deb.debian.org", "rubygems.org"]
    assert all(entry["sources"] == [] for entry in mixed(roles_dir, [], "offline").values())
    assert not any(entry.get("left_out") or entry.get("fallback") for entry in result.values())


def test_a_silent_registry_leaves_out_only_what_it_serves(roles_dir):
    result = mixed(roles_dir, ["ghcr.io"])
    assert result["cadvisor"]["action"] == "none" and result["cadvisor"]["left_out"] is True
    assert result["cadvisor"]["reason"] == ("cadvisor needs ghcr.io, which did not answer from the Docker host and "
                                            "it has no recipe to build instead")
    assert [name for name, entry in result.items() if entry["action"] == "none"] == ["cadvisor"]


def test_a_silent_mirror_leaves_out_the_builds_that_need_it(roles_dir):
    result = mixed(roles_dir, ["rubygems.org"])
    assert result["fluentd"]["action"] == "none"
    assert result["fluentd"]["reason"].startswith("fluentd needs rubygems.org, which did not answer")
    assert result["service"]["action"] == "build" and result["mysql"]["action"] == "pull"


def test_a_component_with_a_recipe_is_built_when_its_registry_is_silent(roles_dir):
    tiers = {"data": {"redis": {"upstream": "quay.example/redis:7", "recipe": "mysql"}}}
    entry = images_plan(tiers, "upstream", str(roles_dir), "dl/ecommerce", "debian:bookworm-slim",
                        ["quay.example"], ["deb.debian.org"])[0]
    assert entry["action"] == "build" and entry["ref"].startswith("dl/ecommerce-redis:")
    assert entry["base"] == "debian:bookworm-slim" and entry["sources"] == ["docker.io", "deb.debian.org"]
    assert entry["fallback"] == ("redis needs quay.example, which did not answer from the Docker host: built from its "
                                 "recipe instead")
    # ... but not when the recipe's own sources are silent too
    entry = images_plan(tiers, "upstream", str(roles_dir), "dl/ecommerce", "debian:bookworm-slim",
                        ["quay.example", "deb.debian.org"], ["deb.debian.org"])[0]
    assert entry["action"] == "none" and entry["left_out"] is True


@pytest.mark.parametrize("reference, host", [
    ("mysql:8.4", "docker.io"), ("prom/prometheus:v3.5.0", "docker.io"), ("ghcr.io/google/cadvisor:v0.60.5", "ghcr.io"),
    ("localhost/x:1", "localhost"), ("127.0.0.1:5000/lab/app:1", "127.0.0.1:5000"), ("docker.io/library/redis", "docker.io"),
])
def test_image_host(reference, host):
    assert image_host(reference) == host
