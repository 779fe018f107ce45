# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rendered configuration of every tier, in each image profile, written by the roles'
own file tasks (tests/render/render.yml): what the upstream-only components would mount.

Shared by tests/render (parses it; no engine) and tests/engine/prometheus (feeds it to the
offline Prometheus image); their conftests import the fixtures below."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]


# The alerts the monitoring tier must define (tests/render and tests/engine/prometheus check them).
REQUIRED_ALERTS = {"TargetDown", "GatewayHighErrorRatio", "ContainerRestarting", "ContainerRestartingCadvisor",
                   "MySQLDown", "RedisDown", "DiskNearlyFull"}


def alert_rules(rendered: pathlib.Path) -> dict:
    """The rendered alert rules, by alert name."""
    groups = yaml.safe_load((rendered / "prometheus/etc/rules/alerts.yml").read_text())["groups"]
    return {rule["alert"]: rule for group in groups for rule in group["rules"]}


def render(profile: str, workdir: pathlib.Path, *extra: str) -> pathlib.Path:
    """Run the render playbook for ``profile`` into ``workdir/config``; return that directory."""
    config_dir = workdir / "config"
    command = [
        os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), str(ROOT / "tests/render/render.yml"),
        "-e", f"render_dir={config_dir}", "-e", f"render_secrets_dir={workdir / 'secrets'}",
        "-e", f"images_profile={profile}", *extra,
    ]
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false")
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    if result.returncode != 0:
        pytest.fail(f"rendering the {profile} profile failed:\n{result.stdout[-4000:]}\n{result.stderr[-2000:]}")
    return config_dir


@pytest.fixture(scope="session")
def rendered_upstream(tmp_path_factory) -> pathlib.Path:
    return render("upstream", tmp_path_factory.mktemp("render-upstream"))


@pytest.fixture(scope="session")
def rendered_offline(tmp_path_factory) -> pathlib.Path:
    return render("offline", tmp_path_factory.mktemp("render-offline"))


@pytest.fixture(scope="session")
def rendered_secrets(rendered_upstream) -> pathlib.Path:  # pylint: disable=redefined-outer-name
    """Where the upstream render kept its generated secrets (the stack_secrets_dir)."""
    return rendered_upstream.parent / "secrets"
