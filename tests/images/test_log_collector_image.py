# -*- coding: utf-8 -*-
# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Integration tests for the offline log collector (roles/logging/images/rsyslog).

In the offline profile every container of the lab logs through Docker's syslog log
driver (UDP to the collector's fixed address on the monitoring network, RFC 5424 with
microseconds, the container's name as tag) to the ``log-collector`` container, Debian's rsyslog, which
writes one file per container into the logs volume. These tests build the recipe, run
it with the role's rendered rsyslog.conf on a volume of their own, and send it real
containers' output through the Docker daemon, with the log options the role gives
every container:

* each container's lines land, whole and in order, in ``<name>.log``, after a
  timestamp (JSON lines with a request id, tabs, quotes, non-ASCII, a 10 kB line);
* a tag that is no container name (``../x``, ``/abs``) cannot name a file outside the
  directory (it goes to ``_unknown.log``);
* the healthcheck sends a message through the collector's own UDP port and passes;
* a container starts and runs while the collector is down (UDP: nothing to refuse), and
  one that runs across the collector's restart is heard again after it;
* a file is rotated at its size limit; the collector runs as uid 999; a config rsyslog
  rejects stops the container with the reason.

Requirements (tests/images/conftest.py stops the run, naming what is missing): the Docker
SDK for Python, PyYAML and Jinja2; a Docker engine on this machine (the rendered config
is bind-mounted from pytest's tmp dirs; the daemon sends to addresses on this machine);
``DOCKERLAB_BASE_IMAGE``, a local Debian bookworm image (apt inside the build needs
Debian's mirror; no registry is contacted).

Containers, networks and volumes are named ``dltest-log-<random>-<what>``. As the role
runs it, the collector has a fixed address (.250) on a network of its own (a subnet Docker
finds free), where the daemon sends; its UDP port is also published on 127.0.0.1 only, on a
port picked free for the test, the role's other way in. Everything is removed when the
module ends; the image is tagged ``dockerlab-test/log-collector:pytest`` and kept for the
build cache.
"""

from __future__ import annotations

import re
import socket
import time
import uuid
from pathlib import Path

import docker
import jinja2
import pytest
import yaml

from docker_env import base_image, container_logs, exec_text, remove_all, wait_for  # pylint: disable=import-error  # tests/docker_env.py

REPO_ROOT = Path(__file__).resolve().parents[2]
ROLE_DIR = REPO_ROOT / "roles" / "logging"
RECIPE_DIR = ROLE_DIR / "images" / "rsyslog"
TAG = "dockerlab-test/log-collector:pytest"
RUN_ID = uuid.uuid4().hex[:8]
PREFIX = f"dltest-log-{RUN_ID}-"
LOG_DIR = "/var/log/ecommerce"
CONTAINER_PORT = 5514
# A line as the load balancer writes it (access log, escape=json) and as our services do.
TIMESTAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(?:Z|[+-]\d\d:\d\d)"

BASE_IMAGE = base_image()


# --------------------------------------------------------------------------
# helpers


def _name(what: str) -> str:
    return f"{PREFIX}{what}"


class _DefaultsLoader(yaml.SafeLoader):  # pylint: disable=too-many-ancestors
    """PyYAML's safe loader that reads Ansible's !unsafe strings as plain strings."""


_DefaultsLoader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))


def _role_defaults() -> dict:
    return yaml.load((ROLE_DIR / "defaults" / "main.yml").read_text(), Loader=_DefaultsLoader)  # nosec B506


def render_rsyslog_conf(**overrides) -> str:
    """roles/logging/templates/rsyslog/rsyslog.conf.j2 with the role's defaults (as the role renders it)."""
    defaults = _role_defaults()
    variables = {key: defaults[key] for key in (
        "logging_collector_port", "logging_collector_max_message_size", "logging_collector_receive_buffer",
        "logging_collector_max_file_mb", "logging_collector_max_files")}
    variables.update(overrides)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(ROLE_DIR / "templates")), trim_blocks=True,
                             keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
    return env.get_template("rsyslog/rsyslog.conf.j2").render(**variables)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


_exec = exec_text


def log_config(address: str, tag: str = "{{.Name}}"):
    """The syslog driver options the logging role gives every container in the offline
    profile, sending to ``address`` (udp://host:port)."""
    defaults = _role_defaults()["logging_container_log_offline"]
    options = dict(defaults["options"])
    options["syslog-address"] = address
    options["tag"] = tag
    return docker.types.LogConfig(type=defaults["driver"], config=options)


class Lab:
    """The collector, its volume and the containers that log to it; all removed at the end."""

    def __init__(self, client, tmp: Path):
        self.client = client
        self.tmp = tmp
        self.containers = []
        self.volumes = []
        self.network = None
        self.fixed_ip = None
        self.collector = None
        # where the daemon sends: the collector's fixed address on its network (the role's
        # default), or the port published on 127.0.0.1 (the other way the role allows)
        self.address = None
        self.loopback = None

    def volume(self, what: str):
        vol = self.client.volumes.create(_name(what))
        self.volumes.append(vol)
        return vol

    def start_collector(self, volume, conf: str | None = None, what: str = "collector"):
        """The collector as the role runs it: a fixed address (.250) on a network of its own
        (Docker picks a free subnet), its UDP port also published on 127.0.0.1."""
        if self.network is None:
            # a fixed address needs a subnet given by the user: take one Docker finds free
            probe = self.client.networks.create(_name(f"{what}-probe"), driver="bridge", check_duplicate=True)
            probe.reload()
            subnet = probe.attrs["IPAM"]["Config"][0]["Subnet"]
            probe.remove()
            assert int(subnet.split("/")[1]) <= 24, subnet
            self.network = self.client.networks.create(
                _name(f"{what}-net"), driver="bridge", check_duplicate=True,
                ipam=docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=subnet)]))
            self.fixed_ip = ".".join(subnet.split("/")[0].split(".")[:3] + ["250"])
        conf_dir = self.tmp / what
        conf_dir.mkdir(parents=True, exist_ok=True)
        conf_dir.chmod(0o755)
        (conf_dir / "rsyslog.conf").write_text(conf if conf is not None else render_rsyslog_conf())
        (conf_dir / "rsyslog.conf").chmod(0o644)
        port = free_udp_port()
        container = self.client.containers.create(
            TAG, name=_name(what),
            ports={f"{CONTAINER_PORT}/udp": ("127.0.0.1", port)},
            volumes={volume.name: {"bind": LOG_DIR, "mode": "rw"},
                     str(conf_dir / "rsyslog.conf"): {"bind": "/etc/rsyslog.conf", "mode": "ro"}},
            environment={"COLLECTOR_PORT": str(CONTAINER_PORT)},
            # as the role runs it, with short timings for the test
            healthcheck={"test": ["CMD", "/usr/local/bin/collector-healthcheck"], "interval": 1_000_000_000,
                         "timeout": 5_000_000_000, "retries": 3, "start_period": 5_000_000_000},
            network=self.network.name,
        )
        self.containers.append(container)
        self.network.disconnect(container)
        self.network.connect(container, ipv4_address=self.fixed_ip)
        container.start()
        self.collector = container
        self.address = f"udp://{self.fixed_ip}:{CONTAINER_PORT}"
        self.loopback = f"udp://127.0.0.1:{port}"
        return container

    def log_lines(self, what: str, lines: list[str], tag: str = "{{.Name}}", address: str | None = None):
        """A short-lived container that prints ``lines`` (passed through the environment, so
        printed byte for byte) through the syslog driver; returns it once it has exited."""
        return self.log_output(what, 'printf "%s\\n" "$LINES"', {"LINES": "\n".join(lines)}, tag, address)

    def log_output(self, what: str, script: str, env: dict | None = None, tag: str = "{{.Name}}",
                   address: str | None = None):
        """A short-lived container whose output (``sh -c script``) goes through the syslog
        driver with the role's options; returns it once it has exited."""
        container = self.client.containers.run(
            BASE_IMAGE, ["sh", "-c", script], name=_name(what), detach=True, environment=env or {},
            log_config=log_config(address or self.address, tag), network_mode="none",
        )
        self.containers.append(container)
        result = container.wait(timeout=60)
        assert result["StatusCode"] == 0, f"{container.name} failed: {container_logs(docker, container)}"
        return container

    def read(self, path: str) -> str | None:
        rc, out, _err = _exec(self.collector, ["cat", path])
        return out if rc == 0 else None

    def listing(self, directory: str = LOG_DIR) -> list[str]:
        rc, out, err = _exec(self.collector, ["ls", "-1A", directory])
        assert rc == 0, err
        return sorted(out.split())

    def cleanup(self):
        remove_all(docker, self.containers, [self.network], self.volumes)


def wait_healthy(container, timeout: float = 30):
    def healthy():
        container.reload()
        return container.attrs["State"].get("Health", {}).get("Status") == "healthy"
    wait_for(docker, healthy, timeout, f"{container.name} to be healthy", container=container)


def wait_lines(lab: Lab, path: str, count: int, timeout: float = 15) -> list[str]:
    def enough():
        text = lab.read(path)
        lines = text.splitlines() if text else []
        return lines if len(lines) >= count else None
    return wait_for(docker, enough, timeout, f"{count} lines in {path}", container=lab.collector)


def split_line(line: str) -> tuple[str, str]:
    match = re.match(rf"^({TIMESTAMP}) (.*)$", line, re.S)
    assert match, f"no timestamp prefix in {line!r}"
    return match.group(1), match.group(2)


# --------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def client():
    cli = docker.from_env(timeout=120)
    yield cli
    cli.close()


@pytest.fixture(scope="module")
def image(client):  # pylint: disable=redefined-outer-name
    try:
        built, _unused = client.images.build(path=str(RECIPE_DIR), tag=TAG, buildargs={"BASE_IMAGE": BASE_IMAGE},
                                             pull=False, rm=True, forcerm=True)
    except docker.errors.BuildError as exc:
        log = "".join(chunk.get("stream", "") for chunk in exc.build_log if isinstance(chunk, dict))
        pytest.fail(f"building {RECIPE_DIR} failed: {exc}\n{log[-4000:]}")
    return built


@pytest.fixture(scope="module")
def lab(client, image, tmp_path_factory):  # pylint: disable=redefined-outer-name,unused-argument
    stack = Lab(client, tmp_path_factory.mktemp("log-collector"))
    try:
        stack.start_collector(stack.volume("logs"))
        wait_healthy(stack.collector)
        yield stack
    finally:
        stack.cleanup()


# --------------------------------------------------------------------------
# the image and the role's config


def test_image_ships_the_role_config(image):  # pylint: disable=redefined-outer-name,unused-argument
    """The image's own /etc/rsyslog.conf is the role's template with the role's defaults."""
    assert (RECIPE_DIR / "rsyslog.conf").read_text() == render_rsyslog_conf()
    config = image.attrs["Config"]
    assert config["User"] == "rsyslog"
    assert f"{CONTAINER_PORT}/udp" in config["ExposedPorts"]
    assert LOG_DIR in (config.get("Volumes") or {})


def test_runs_unprivileged_and_owns_its_files(lab):  # pylint: disable=redefined-outer-name
    rc, out, _err = _exec(lab.collector, ["sh", "-c", "grep '^Uid:' /proc/1/status; stat -c '%u %a' " + LOG_DIR])
    assert rc == 0
    uid_line, dir_stat = out.strip().splitlines()
    assert uid_line.split()[1:] == ["999"] * 4, uid_line
    # an empty named volume took the image's ownership of the mount point
    assert dir_stat == "999 755"


def test_healthcheck_proves_the_path(lab):  # pylint: disable=redefined-outer-name
    lab.collector.reload()
    health = lab.collector.attrs["State"]["Health"]
    assert health["Status"] == "healthy"
    rc, out, err = _exec(lab.collector, ["/usr/local/bin/collector-healthcheck"])
    assert rc == 0, out + err
    # the probe's lines stay out of the logs volume
    probe = lab.read("/run/rsyslog/healthcheck.log")
    assert probe and "healthcheck-" in probe
    assert not [name for name in lab.listing() if "healthcheck" in name]


# --------------------------------------------------------------------------
# containers' output through the Docker daemon


def test_each_container_gets_its_own_file_with_lines_intact(lab):  # pylint: disable=redefined-outer-name
    request_id = uuid.uuid4().hex
    long_field = "x" * 10_000
    first = [
        '{"time":"2025-01-01T00:00:00+00:00","request_id":"%s","method":"GET","uri":"/api/users","status":200}' % request_id,
        '{"ts":"2025-01-01T00:00:00.001Z","level":"info","service":"api-gateway","msg":"request",'
        '"request_id":"%s","note":"tab\there, quote \\" backslash \\\\ and caf\u00e9"}' % request_id,
        "   plain text with leading spaces and trailing spaces   ",
        '{"long":"%s"}' % long_field,
    ]
    second = ['{"service":"user-service","request_id":"%s","n":%d}' % (request_id, n) for n in range(20)]
    one = lab.log_lines("web-a", first)
    two = lab.log_lines("web-b", second)

    got_one = wait_lines(lab, f"{LOG_DIR}/{one.name}.log", len(first))
    got_two = wait_lines(lab, f"{LOG_DIR}/{two.name}.log", len(second))
    assert [split_line(line)[1] for line in got_one] == first
    assert [split_line(line)[1] for line in got_two] == second
    # the request id can be followed across both containers' files with one grep
    rc, out, _err = _exec(lab.collector, ["grep", "-rlF", request_id, LOG_DIR])
    assert rc == 0 and sorted(out.split()) == sorted([f"{LOG_DIR}/{one.name}.log", f"{LOG_DIR}/{two.name}.log"])
    # files carry the collector's uid and are readable by the host's tools
    rc, out, _err = _exec(lab.collector, ["stat", "-c", "%u %a", f"{LOG_DIR}/{one.name}.log"])
    assert out.strip() == "999 644"


def test_a_tag_cannot_name_a_file_outside_the_directory(lab):  # pylint: disable=redefined-outer-name
    """Docker's names cannot hold a slash, but a container's tag option can hold anything."""
    marker = uuid.uuid4().hex
    for what, tag in (("dots", "../escaped-" + marker), ("abs", "/tmp/escaped-" + marker),
                      ("dot", "."), ("hidden", ".hidden-" + marker)):
        # through the port published on 127.0.0.1, the role's other way in
        lab.log_lines(f"hostile-{what}", [f"{what} {marker}"], tag=tag, address=lab.loopback)
    lines = wait_lines(lab, f"{LOG_DIR}/_unknown.log", 4)
    assert sorted(split_line(line)[1] for line in lines if marker in line) == sorted(
        f"{what} {marker}" for what in ("dots", "abs", "dot", "hidden"))
    look = f"find / -xdev -name '*escaped-{marker}*' 2>/dev/null; ls -A /var/log; ls -A {LOG_DIR}"
    rc, out, _err = _exec(lab.collector, ["sh", "-c", look])
    assert rc == 0
    assert "escaped-" not in out and ".hidden-" not in out, out
    assert sorted(n for n in lab.listing() if not n.startswith(PREFIX)) == ["_unknown.log"]


def test_rotation_caps_a_file(client, image, tmp_path_factory):  # pylint: disable=redefined-outer-name,unused-argument
    """At logging_collector_max_file_mb a file becomes <name>.log.1 and a new one starts."""
    small = Lab(client, tmp_path_factory.mktemp("rotation"))
    try:
        small.start_collector(small.volume("rotation-logs"), render_rsyslog_conf(
            logging_collector_max_file_mb=1, logging_collector_max_files=1), what="rotation-collector")
        wait_healthy(small.collector)
        # about 1.6 MiB: one rotation, and a newer file with the rest; paced, so that no burst
        # outgrows the socket's receive buffer (UDP drops what does not fit)
        writer = small.log_output(
            "rotating", 'i=0; while [ $i -lt 1600 ]; do printf "%05d %s\\n" $i "$PAD"; i=$((i+1));'
                        ' [ $((i % 100)) -ne 0 ] || sleep 0.05; done', {"PAD": "r" * 1000})
        path = f"{LOG_DIR}/{writer.name}.log"

        def rotated():
            return small.read(path + ".1") is not None and small.read(path) is not None
        wait_for(docker, rotated, 20, f"{path} to be rotated", container=small.collector)
        rc, out, _err = _exec(small.collector, ["sh", "-c", f"stat -c '%n %s' {path}*"])
        sizes = {name: int(size) for name, size in (entry.split() for entry in out.strip().splitlines())}
        assert rc == 0 and set(sizes) == {path, path + ".1"}, sizes
        # the limit is not exact (a batch is finished first), but close
        assert all(size < 1048576 + 64 * 1024 for size in sizes.values()), sizes
        # lines are whole in both files, and the newer file holds the later ones
        old, new = (small.read(p).splitlines() for p in (path + ".1", path))
        assert all(len(split_line(entry)[1]) == 1006 for entry in old + new)
        assert split_line(old[-1])[1] < split_line(new[0])[1]
    finally:
        small.cleanup()


def test_containers_start_while_the_collector_is_down(lab):  # pylint: disable=redefined-outer-name
    """UDP: the daemon has nothing to connect to, so it neither waits nor refuses to start a
    container; and a container that runs across the collector's restart is heard again after it."""
    ticker = lab.client.containers.run(
        BASE_IMAGE, ["sh", "-c", 'i=0; while true; do echo "tick $i"; i=$((i+1)); sleep 0.2; done'],
        name=_name("ticker"), detach=True, log_config=log_config(lab.address), network_mode="none")
    lab.containers.append(ticker)
    ticks = f"{LOG_DIR}/{ticker.name}.log"
    last_before = int(split_line(wait_lines(lab, ticks, 3)[-1])[1].split()[1])
    lab.collector.stop(timeout=5)
    try:
        started = time.monotonic()
        quiet = lab.log_lines("while-down", ["lost while the collector is down"])
        assert time.monotonic() - started < 30
        quiet.reload()
        assert quiet.attrs["State"]["ExitCode"] == 0
        # Docker keeps a local copy next to the remote driver (dual logging)
        assert "lost while the collector is down" in container_logs(docker, quiet)
    finally:
        lab.collector.start()
    wait_healthy(lab.collector)
    after = lab.log_lines("after-restart", ["back again"])
    lines = wait_lines(lab, f"{LOG_DIR}/{after.name}.log", 1)
    assert split_line(lines[0])[1] == "back again"

    def ticking_again():
        text = lab.read(ticks) or ""
        numbers = [int(split_line(line)[1].split()[1]) for line in text.splitlines()]
        return numbers and numbers[-1] > last_before + 10
    wait_for(docker, ticking_again, 20, f"{ticker.name}'s lines after the collector's restart", container=lab.collector)
    ticker.remove(force=True)


def test_a_config_rsyslog_rejects_stops_the_container(client, image, tmp_path_factory):  # pylint: disable=redefined-outer-name,unused-argument
    broken = Lab(client, tmp_path_factory.mktemp("broken"))
    try:
        container = broken.start_collector(broken.volume("broken-logs"), "module(load=\"imudp\")\ninput(type=\"imudp\" port=)\n",
                                           what="broken-collector")
        result = container.wait(timeout=30)
        assert result["StatusCode"] == 1
        assert "rsyslog rejects /etc/rsyslog.conf" in container_logs(docker, container)
    finally:
        broken.cleanup()
