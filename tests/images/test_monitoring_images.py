# -*- coding: utf-8 -*-
# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Integration tests for the offline monitoring images of dockerlab.ecommerce.

roles/monitoring/images/prometheus is one multi-stage recipe with one final
stage per component (``docker build --target <name>``): stand-ins for
``prom/prometheus:v3``, ``prom/node-exporter``, ``prom/mysqld-exporter``,
``oliver006/redis_exporter`` and ``nginx/nginx-prometheus-exporter``, built
from Debian bookworm's packages. The roles pass the same command (flags only)
to either profile, so these tests check the *official interface* against
real containers: entrypoints, users, paths, the flags the roles use, the
credentials passed as files (never in the environment or on the command
line), the ``wget`` healthchecks, and Prometheus itself (readiness, targets,
promtool, reload on SIGHUP, alerts going pending then firing). The exporters
scrape real MariaDB, Redis and nginx containers built from the data and
frontend roles' offline recipes.

Requirements (tests/images/conftest.py stops the run, naming what is missing):

* the Docker SDK for Python (``import docker``);
* a Docker engine that answers, on this machine (files are bind-mounted
  from pytest's tmp dirs, ``/`` read-only for the node exporter);
* ``DOCKERLAB_BASE_IMAGE``: a local Debian bookworm image used as the
  ``BASE_IMAGE`` build argument (no registry is contacted; apt inside the
  build needs Debian's mirror).

Everything runs on a network of its own; containers and the network are
named ``dltest-mon-<random>-<what>``, publish no ports (the tests talk to
them with ``docker exec`` + ``wget``, the healthcheck's own tool) and are
removed, with their anonymous volumes, when the module ends. The images are
tagged ``dockerlab-test/monitoring-<target>:test`` (and
``dockerlab-test/monitoring-dep-<recipe>:test`` for MariaDB, Redis and
nginx) and kept, so a second run reuses the build cache.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
import time
import urllib.parse
import uuid
from datetime import datetime, timezone
from pathlib import Path

import docker
import pytest
import yaml

from docker_env import base_image, container_logs, exec_text, remove_all, wait_for  # pylint: disable=import-error  # tests/docker_env.py

REPO_ROOT = Path(__file__).resolve().parents[2]
RECIPE_DIR = REPO_ROOT / "roles" / "monitoring" / "images" / "prometheus"
DEP_RECIPES = {
    "mysql": REPO_ROOT / "roles" / "data" / "images" / "mysql",
    "redis": REPO_ROOT / "roles" / "data" / "images" / "redis",
    "nginx": REPO_ROOT / "roles" / "frontend" / "images" / "nginx",
}
PREFIX = "dltest-mon-"
RUN_ID = uuid.uuid4().hex[:8]

MYSQL_ROOT_PW = "r00t-monitoring-pw"
EXPORTER_DB_PW = "Exp0rter-db_pw.1"
REDIS_PW = "s3cret-redis-pw-for-exporter"
REDIS_EXPORTER_USER = "redis_exporter"
REDIS_ADMIN_PW = "test-only-admin-pw"  # a test-only user that may read the ACL LOG

SECOND = 1_000_000_000  # Docker's healthcheck durations are in nanoseconds

# What each final stage must look like: the official image's interface.
TARGETS = {
    "prometheus": {
        "entrypoint": ["/bin/prometheus"],
        "cmd": ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"],
        "user": "nobody", "uid": 65534, "port": 9090,
        "workdir": "/prometheus", "volumes": ["/prometheus"],
        "binary": "/usr/bin/prometheus", "health": "/-/ready",
    },
    "node-exporter": {
        "entrypoint": ["/bin/node_exporter"], "cmd": None,
        "user": "nobody", "uid": 65534, "port": 9100,
        "binary": "/usr/bin/prometheus-node-exporter", "health": "/metrics",
    },
    "mysqld-exporter": {
        "entrypoint": ["/bin/mysqld_exporter"], "cmd": None,
        "user": "nobody", "uid": 65534, "port": 9104,
        "binary": "/usr/bin/prometheus-mysqld-exporter", "health": "/metrics",
    },
    "redis-exporter": {
        "entrypoint": ["/redis_exporter"], "cmd": None,
        "user": "59000:59000", "uid": 59000, "port": 9121,
        "binary": "/usr/bin/prometheus-redis-exporter", "health": "/health",
    },
    "nginx-exporter": {
        "entrypoint": ["/usr/bin/nginx-prometheus-exporter"], "cmd": None,
        "user": "1001:1001", "uid": 1001, "port": 9113,
        "binary": "/usr/bin/prometheus-nginx-exporter", "health": "/metrics",
    },
}


BASE_IMAGE = base_image()


# --------------------------------------------------------------------------
# helpers


def _name(what: str) -> str:
    return f"{PREFIX}{RUN_ID}-{what}"


def _tag(target: str) -> str:
    return f"dockerlab-test/monitoring-{target}:test"


def _logs(container) -> str:
    return container_logs(docker, container)


_exec = exec_text


def _wait_for(predicate, timeout: float, what: str, container=None, interval: float = 0.3):
    return wait_for(docker, predicate, timeout, what, container, interval, retry_on=(ValueError, KeyError))


def _proc1_uid(container) -> int:
    rc, out, err = _exec(container, ["cat", "/proc/1/status"])
    assert rc == 0, err
    uid_line = next(line for line in out.splitlines() if line.startswith("Uid:"))
    uids = {int(x) for x in uid_line.split()[1:]}
    assert len(uids) == 1, uid_line  # real, effective, saved, fs all equal
    return uids.pop()


def _write(path: Path, content: str, mode: int = 0o644) -> Path:
    """A file the containers' non-root users can read (their uids differ from ours)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o755)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(content)
    tmp.chmod(mode)
    tmp.replace(path)  # atomic, as Ansible's copy/template: needs a directory mount to be seen
    return path


def wget(container, port: int, path: str, query: dict | None = None):
    """GET http://127.0.0.1:port/path inside the container; (exit code, body)."""
    url = f"http://127.0.0.1:{port}{path}"
    if query:
        url += "?" + urllib.parse.urlencode(query)
    rc, out, _err = _exec(container, ["wget", "-q", "-O", "-", url])
    return rc, out


def healthcheck_cmd(port: int, path: str) -> list[str]:
    """The healthcheck the roles give these containers (works with busybox wget too)."""
    return ["wget", "-q", "-O", "/dev/null", f"http://127.0.0.1:{port}{path}"]


def healthcheck(port: int, path: str) -> dict:
    return {
        "test": ["CMD", *healthcheck_cmd(port, path)],
        "interval": 1 * SECOND, "timeout": 5 * SECOND, "retries": 5, "start_period": 2 * SECOND,
    }


def metrics(container, port: int) -> dict[str, list[tuple[str, float]]]:
    """The exporter's /metrics as {name: [(labels, value), ...]}."""
    rc, body = wget(container, port, "/metrics")
    if rc != 0:
        raise ValueError(f"/metrics answered with wget exit code {rc}")
    found: dict[str, list[tuple[str, float]]] = {}
    for line in body.splitlines():
        if not line or line.startswith("#"):
            continue
        series, _sep, value = line.rpartition(" ")
        name, _brace, labels = series.partition("{")
        found.setdefault(name, []).append(("{" + labels if labels else "", float(value)))
    return found


def metric_value(container, port: int, name: str, labels_contain: str = "") -> float | None:
    for labels, value in metrics(container, port).get(name, []):
        if labels_contain in labels:
            return value
    return None


def prom_api(container, path: str, **query):
    """A Prometheus HTTP API call from inside its container; the decoded 'data'."""
    rc, body = wget(container, 9090, path, query or None)
    if rc != 0:
        raise ValueError(f"{path} answered with wget exit code {rc}")
    doc = json.loads(body)
    if doc.get("status") != "success":
        raise ValueError(f"{path}: {doc}")
    return doc["data"]


def active_targets(container) -> dict[str, list[dict]]:
    targets: dict[str, list[dict]] = {}
    for target in prom_api(container, "/api/v1/targets", state="active")["activeTargets"]:
        targets.setdefault(target["labels"]["job"], []).append(target)
    return targets


def job_up(container, job: str):
    """The job's targets when all of them are up, else None."""
    targets = active_targets(container).get(job)
    if targets and all(t["health"] == "up" for t in targets):
        return targets
    return None


def promql(container, expr: str) -> list[dict]:
    return prom_api(container, "/api/v1/query", query=expr)["result"]


def assert_secret_hidden(container, secret: str) -> None:
    """The secret is neither in the environment nor on the command line (docker inspect)."""
    container.reload()
    inspected = json.dumps(container.attrs)
    assert secret not in inspected, "the password shows in `docker inspect`"
    rc, out, _err = _exec(container, ["cat", "/proc/1/cmdline", "/proc/1/environ"])
    assert rc == 0 and secret not in out, "the password shows in the process' command line or environment"


def _put(container, directory: str, fname: str, content: str) -> None:
    """Copy one text file into a running container (tar over the API), readable by everyone."""
    data = content.encode("utf-8")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(fname)
        info.size = len(data)
        info.mode = 0o644
        info.mtime = int(time.time())
        tar.addfile(info, io.BytesIO(data))
    assert container.put_archive(directory, buf.getvalue()), f"could not copy {fname} into {directory}"


class Lab:
    """The module's network, containers and volumes; all removed at teardown."""

    def __init__(self, client):
        self.client = client
        self.containers = []
        self.network = client.networks.create(_name("net"), driver="bridge", check_duplicate=True)

    def run(self, image: str, what: str, aliases=None, **kwargs):
        kwargs.setdefault("detach", True)
        container = self.client.containers.create(image, name=_name(what), network=self.network.name, **kwargs)
        self.containers.append(container)
        if aliases:
            # replace the default attachment with one that carries the aliases
            self.network.disconnect(container)
            self.network.connect(container, aliases=aliases)
        container.start()
        container.reload()
        return container

    def run_to_end(self, image: str, what: str, timeout: float = 60, **kwargs):
        """Run a short-lived container; return (exit code, output)."""
        container = self.run(image, what, **kwargs)
        try:
            code = container.wait(timeout=timeout)["StatusCode"]
            return code, _logs(container)
        finally:
            self.remove(container)

    def remove(self, container):
        container.remove(force=True, v=True)
        self.containers.remove(container)

    def cleanup(self):
        try:
            remove_all(docker, self.containers, [self.network])  # with the anonymous /prometheus volumes
        finally:
            self.containers.clear()


# --------------------------------------------------------------------------
# fixtures: images (once per session), then the module's lab


@pytest.fixture(scope="session")
def client():
    c = docker.from_env(timeout=600)
    try:
        c.images.get(BASE_IMAGE)
    except docker.errors.ImageNotFound:
        c.close()
        pytest.fail(f"DOCKERLAB_BASE_IMAGE={BASE_IMAGE!r} is not a local image (this machine cannot pull it)")
    yield c
    c.close()


def _build(client, path: Path, tag: str, target: str | None = None) -> str:  # pylint: disable=redefined-outer-name
    assert (path / "Dockerfile").is_file(), f"missing recipe {path}/Dockerfile"
    try:
        client.images.build(
            path=str(path), tag=tag, target=target,
            buildargs={"BASE_IMAGE": BASE_IMAGE},
            rm=True, forcerm=True, pull=False,
        )
    except docker.errors.BuildError as exc:
        log = "".join(chunk.get("stream", "") or chunk.get("error", "") for chunk in exc.build_log)
        pytest.fail(f"building {path.name} (target {target}) failed: {exc.msg}\n{log[-6000:]}")
    return tag


@pytest.fixture(scope="session")
def images(client):  # pylint: disable=redefined-outer-name
    """Every monitoring target, built one after the other (the first build does the apt layer)."""
    return {target: _build(client, RECIPE_DIR, _tag(target), target) for target in TARGETS}


@pytest.fixture(scope="session")
def dep_images(client):  # pylint: disable=redefined-outer-name
    """The data and frontend roles' offline images the exporters scrape."""
    return {name: _build(client, path, f"dockerlab-test/monitoring-dep-{name}:test") for name, path in DEP_RECIPES.items()}


@pytest.fixture(scope="module")
def lab(client):  # pylint: disable=redefined-outer-name
    stack = Lab(client)
    yield stack
    stack.cleanup()


NGINX_STATUS_CONF = """\
server {
    listen 80;
    location = /nginx_status {
        stub_status;
        access_log off;
    }
    location / {
        default_type text/plain;
        return 200 "ok\\n";
    }
}
"""

EXPORTER_GRANTS = f"""\
CREATE USER 'exporter'@'%' IDENTIFIED BY '{EXPORTER_DB_PW}' WITH MAX_USER_CONNECTIONS 3;
GRANT PROCESS, REPLICATION CLIENT ON *.* TO 'exporter'@'%';
GRANT SELECT ON performance_schema.* TO 'exporter'@'%';
"""


@pytest.fixture(scope="module")
def backends(lab, dep_images, tmp_path_factory):  # pylint: disable=redefined-outer-name
    """MariaDB, Redis (with a password) and nginx (stub_status), started together, not yet waited for.

    Requested by the prometheus fixture, so MariaDB initialises while the Prometheus tests run.
    """
    base = tmp_path_factory.mktemp("backends")
    initdb = base / "initdb"
    _write(initdb / "10-exporter.sql", EXPORTER_GRANTS)
    # Redis as the data role configures it: the default user may only PING, the exporter
    # logs in as its own user with the role's rules (data_redis_exporter_acl), plus a
    # test-only admin that reads the ACL LOG (which commands were refused).
    exporter_acl = yaml.safe_load((REPO_ROOT / "roles/data/defaults/main.yml").read_text())["data_redis_exporter_acl"]
    _write(base / "redis" / "users.acl",
           "user default reset on nopass +ping\n"
           f"user {REDIS_EXPORTER_USER} reset on >{REDIS_PW} {exporter_acl}\n"
           f"user admin reset on >{REDIS_ADMIN_PW} ~* &* +@all\n")
    redis_conf = _write(base / "redis" / "redis.conf",
                        "protected-mode no\naclfile /usr/local/etc/redis/users.acl\n")
    nginx_conf = base / "nginx-conf.d"
    _write(nginx_conf / "default.conf", NGINX_STATUS_CONF)
    return {
        "mysql": lab.run(
            dep_images["mysql"], "mysql", aliases=["mysql-db"],
            environment={"MYSQL_ROOT_PASSWORD": MYSQL_ROOT_PW, "MYSQL_INITDB_SKIP_TZINFO": "1"},
            volumes={str(initdb): {"bind": "/docker-entrypoint-initdb.d", "mode": "ro"}},
        ),
        "redis": lab.run(
            dep_images["redis"], "redis", aliases=["redis-cache"],
            volumes={str(redis_conf.parent): {"bind": "/usr/local/etc/redis", "mode": "ro"}},
            command=["redis-server", "/usr/local/etc/redis/redis.conf"],
        ),
        "nginx": lab.run(
            dep_images["nginx"], "nginx", aliases=["load-balancer-under-test"],
            volumes={str(nginx_conf): {"bind": "/etc/nginx/conf.d", "mode": "ro"}},
        ),
    }


def _wait_healthy(container, timeout: float = 60):
    def healthy():
        container.reload()
        return container.attrs["State"].get("Health", {}).get("Status") == "healthy"
    _wait_for(healthy, timeout, f"{container.name} to report healthy", container)


# --- Prometheus -------------------------------------------------------------

MAIN_PROMETHEUS_YML = """\
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ["localhost:9090"]
  - job_name: node
    static_configs:
      - targets: ["node-exporter:9100"]
  - job_name: mysqld
    static_configs:
      - targets: ["mysqld-exporter:9104"]
  - job_name: redis
    static_configs:
      - targets: ["redis-exporter:9121"]
  - job_name: nginx
    static_configs:
      - targets: ["nginx-exporter:9113"]
"""

RELOADED_JOB = """\
  - job_name: added-by-reload
    static_configs:
      - targets: ["localhost:9090"]
"""


@pytest.fixture(scope="module")
def prometheus(lab, images, backends, tmp_path_factory):  # pylint: disable=redefined-outer-name,unused-argument
    """Prometheus with the roles' layout: the config directory mounted read-only, data in the image's volume."""
    conf_dir = tmp_path_factory.mktemp("prometheus-etc")
    conf_dir.chmod(0o755)
    _write(conf_dir / "prometheus.yml", MAIN_PROMETHEUS_YML)
    container = lab.run(
        images["prometheus"], "prometheus", aliases=["prometheus-under-test"],
        # the flags the monitoring role passes (2.42 and v3 both know them)
        command=["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus",
                 "--storage.tsdb.retention.time=15d", "--storage.tsdb.retention.size=1GB",
                 "--web.listen-address=:9090"],
        volumes={str(conf_dir): {"bind": "/etc/prometheus", "mode": "ro"}},
        healthcheck=healthcheck(9090, "/-/ready"),
    )
    _wait_for(lambda: wget(container, 9090, "/-/ready")[0] == 0, 60, "/-/ready", container)
    return {"container": container, "conf_dir": conf_dir}


def test_prometheus_default_config_scrapes_itself(lab, images):  # pylint: disable=redefined-outer-name
    """`docker run <image>` with no arguments: the image's own config, data in /prometheus."""
    c = lab.run(images["prometheus"], "prometheus-default")
    try:
        _wait_for(lambda: wget(c, 9090, "/-/ready")[0] == 0, 60, "/-/ready", c)
        targets = _wait_for(lambda: job_up(c, "prometheus"), 30, "the self-scrape target up", c)
        assert [t["scrapeUrl"] for t in targets] == ["http://localhost:9090/metrics"]
        assert _proc1_uid(c) == 65534
        rc, out, _err = _exec(c, ["cat", "/proc/1/cmdline"])
        assert out.split("\0")[:3] == ["/bin/prometheus", *TARGETS["prometheus"]["cmd"]]
        # the TSDB is written to the volume, by nobody
        rc, out, _err = _exec(c, ["sh", "-c", "pwd; ls /prometheus; stat -c %U /prometheus /prometheus/wal"])
        assert rc == 0 and out.split()[0] == "/prometheus" and "wal" in out.split(), out
        assert out.split()[-2:] == ["nobody", "nobody"], out
        c.reload()
        assert any(m["Destination"] == "/prometheus" and m["Type"] == "volume" for m in c.attrs["Mounts"])
    finally:
        lab.remove(c)


def test_prometheus_ready_and_targets(prometheus):  # pylint: disable=redefined-outer-name
    c = prometheus["container"]
    _wait_for(lambda: job_up(c, "prometheus"), 30, "the self-scrape target up", c)
    assert _proc1_uid(c) == 65534
    targets = active_targets(c)
    assert {"prometheus", "node", "mysqld", "redis", "nginx"} <= set(targets), sorted(targets)
    assert promql(c, 'up{job="prometheus"}')[0]["value"][1] == "1"
    rc, _out = wget(c, 9090, "/-/healthy")
    assert rc == 0


def test_prometheus_web_ui_assets(prometheus):  # pylint: disable=redefined-outer-name
    """Debian's classic UI loads; every asset it references is served (the recipe trims unused JS data)."""
    c = prometheus["container"]
    rc, page = wget(c, 9090, "/graph")
    assert rc == 0 and "<html" in page.lower(), page[:300]
    assets = sorted({part.split('"', 1)[0] for part in page.split('="')[1:] if part.startswith("/classic/static/")})
    assert any("moment-timezone" in a for a in assets), assets
    for asset in assets:
        rc, _out, err = _exec(c, ["wget", "-q", "-O", "/dev/null", f"http://127.0.0.1:9090{asset}"])
        assert rc == 0, f"{asset}: {err}"


PROMTOOL_CASES = {
    "good.yml": ("config", MAIN_PROMETHEUS_YML.replace("global:", "rule_files: [/tmp/promtool/rules-good.yml]\nglobal:"), None),
    "bad-duration.yml": ("config", "global:\n  scrape_interval: banana\n", "banana"),
    "bad-yaml.yml": ("config", "scrape_configs:\n  - job_name: [unclosed\n", "FAILED"),
    "rules-good.yml": ("rules", """\
groups:
  - name: dltest
    rules:
      - alert: TargetDown
        expr: up == 0
        for: 3s
        labels: {severity: warning}
        annotations: {summary: "{{ $labels.instance }} is down"}
      - record: job:up:sum
        expr: sum by (job) (up)
""", None),
    "rules-bad-expr.yml": ("rules", """\
groups:
  - name: dltest
    rules:
      - alert: Broken
        expr: up ==
""", "parse error"),
    "rules-bad-for.yml": ("rules", """\
groups:
  - name: dltest
    rules:
      - alert: Broken
        expr: up == 0
        for: soon
""", "soon"),
}


def test_promtool_checks_config_and_rules(prometheus):  # pylint: disable=redefined-outer-name
    c = prometheus["container"]
    rc, out, err = _exec(c, ["sh", "-c", "command -v promtool; readlink -f /bin/promtool"])
    assert rc == 0 and out.split() == ["/usr/bin/promtool", "/usr/bin/promtool"], out + err
    rc, _out, err = _exec(c, ["mkdir", "-p", "/tmp/promtool"])
    assert rc == 0, err
    # put the files into the running container (tmp is writable by nobody)
    for fname, (_kind, content, _want) in PROMTOOL_CASES.items():
        _put(c, "/tmp/promtool", fname, content)
    for fname, (kind, _content, want_error) in PROMTOOL_CASES.items():
        rc, out, err = _exec(c, ["/bin/promtool", "check", kind, f"/tmp/promtool/{fname}"])
        text = out + err
        if want_error is None:
            assert rc == 0, f"promtool check {kind} {fname} failed:\n{text}"
            assert "SUCCESS" in text, text
        else:
            assert rc != 0, f"promtool check {kind} {fname} passed:\n{text}"
            assert "FAILED" in text and want_error in text, text
    # the mounted config itself
    rc, out, err = _exec(c, ["promtool", "check", "config", "/etc/prometheus/prometheus.yml"])
    assert rc == 0, out + err


def test_prometheus_reloads_on_sighup(prometheus):  # pylint: disable=redefined-outer-name
    c, conf = prometheus["container"], prometheus["conf_dir"] / "prometheus.yml"
    started_at = c.attrs["State"]["StartedAt"]
    _wait_for(lambda: job_up(c, "prometheus"), 30, "the self-scrape target up", c)
    assert "added-by-reload" not in active_targets(c)
    try:
        # a broken config is refused: the old one stays in force, the metric says so
        _write(conf, MAIN_PROMETHEUS_YML + "  - job_name: [broken\n")
        rc, _out, err = _exec(c, ["sh", "-c", "kill -HUP 1"])
        assert rc == 0, err
        _wait_for(lambda: promql(c, "prometheus_config_last_reload_successful")[0]["value"][1] == "0",
                  30, "the failed reload to be reported", c)
        assert job_up(c, "prometheus")
        # a good one is applied
        _write(conf, MAIN_PROMETHEUS_YML + RELOADED_JOB)
        rc, _out, err = _exec(c, ["sh", "-c", "kill -HUP 1"])
        assert rc == 0, err
        _wait_for(lambda: job_up(c, "added-by-reload"), 30, "the job added by the reload to be up", c)
        assert promql(c, "prometheus_config_last_reload_successful")[0]["value"][1] == "1"
    finally:
        _write(conf, MAIN_PROMETHEUS_YML)
        _exec(c, ["sh", "-c", "kill -HUP 1"])
    c.reload()
    assert c.attrs["State"]["StartedAt"] == started_at and c.attrs["State"]["Running"], "prometheus restarted"
    assert "Completed loading of configuration file" in _logs(c)


ALERT_PROMETHEUS_YML = """\
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - /etc/prometheus/rules.yml
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ["localhost:9090"]
  - job_name: unreachable
    scrape_timeout: 500ms
    static_configs:
      - targets: ["127.0.0.1:9"]
"""

ALERT_RULES_YML = """\
groups:
  - name: dltest
    rules:
      - alert: DltestTargetDown
        expr: up{job="unreachable"} == 0
        for: 3s
        labels:
          severity: warning
        annotations:
          summary: "{{ $labels.instance }} is down"
"""


def test_prometheus_alert_goes_pending_then_firing(lab, images, tmp_path):  # pylint: disable=redefined-outer-name
    conf_dir = tmp_path / "etc"
    _write(conf_dir / "prometheus.yml", ALERT_PROMETHEUS_YML)
    _write(conf_dir / "rules.yml", ALERT_RULES_YML)
    c = lab.run(images["prometheus"], "prometheus-alerts",
                volumes={str(conf_dir): {"bind": "/etc/prometheus", "mode": "ro"}})
    try:
        _wait_for(lambda: wget(c, 9090, "/-/ready")[0] == 0, 60, "/-/ready", c)
        seen: list[tuple[float, str, str]] = []  # (host time, state, activeAt)

        def firing():
            for alert in prom_api(c, "/api/v1/alerts")["alerts"]:
                if alert["labels"].get("alertname") == "DltestTargetDown":
                    seen.append((time.time(), alert["state"], alert["activeAt"]))
                    return alert["state"] == "firing"
            return False

        _wait_for(firing, 45, "the alert to fire", c, interval=0.2)
        states = [state for _t, state, _a in seen]
        assert states[0] == "pending", f"the first state observed was {states[0]} (states: {states})"
        assert states[-1] == "firing" and states.index("firing") > 0
        # firing no sooner than `for: 3s` after the alert became active
        fired_at, _state, active_at = seen[-1]
        active_epoch = datetime.strptime(active_at[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc).timestamp()
        assert fired_at - active_epoch >= 3 - 1, (fired_at, active_at)  # 1s: activeAt's fraction was cut
        alert = [a for a in prom_api(c, "/api/v1/alerts")["alerts"] if a["labels"]["alertname"] == "DltestTargetDown"][0]
        assert alert["labels"]["severity"] == "warning"
        assert alert["annotations"]["summary"] == "127.0.0.1:9 is down"
        # and the rule is loaded from the mounted file
        groups = prom_api(c, "/api/v1/rules")["groups"]
        assert [g["file"] for g in groups] == ["/etc/prometheus/rules.yml"]
    finally:
        lab.remove(c)


# --- exporters --------------------------------------------------------------


@pytest.fixture(scope="module")
def node_exporter(lab, images):  # pylint: disable=redefined-outer-name
    # The host's / read-only at /host, as the monitoring role runs it (rslave
    # propagation, as upstream suggests, needs / to be a shared mount; plain
    # read-only works everywhere). Debian's build enables the systemd
    # collector by default (upstream does not): without D-Bus it only logs an
    # error per scrape, so the roles switch it off, a flag both versions know.
    container = lab.run(
        images["node-exporter"], "node-exporter", aliases=["node-exporter"],
        command=["--path.rootfs=/host", "--path.procfs=/host/proc", "--path.sysfs=/host/sys", "--no-collector.systemd"],
        volumes={"/": {"bind": "/host", "mode": "ro"}},
        healthcheck=healthcheck(9100, "/metrics"),
    )
    _wait_for(lambda: wget(container, 9100, "/metrics")[0] == 0, 30, "node exporter /metrics", container)
    return container


def test_node_exporter_filesystem_metrics(node_exporter):  # pylint: disable=redefined-outer-name
    c = node_exporter
    assert _proc1_uid(c) == 65534
    found = metrics(c, 9100)
    root = [value for labels, value in found["node_filesystem_avail_bytes"] if 'mountpoint="/"' in labels]
    assert root and root[0] > 0, found["node_filesystem_avail_bytes"]
    assert "node_cpu_seconds_total" in found and "node_memory_MemAvailable_bytes" in found
    collectors = {labels for labels, _v in found["node_scrape_collector_success"]}
    assert not any('"systemd"' in labels for labels in collectors), "--no-collector.systemd was ignored"
    assert "name=systemd" not in _logs(c)


@pytest.fixture(scope="module")
def mysqld_exporter(lab, images, backends, tmp_path_factory):  # pylint: disable=redefined-outer-name
    secrets = tmp_path_factory.mktemp("mysqld-exporter-secrets")
    # what the role renders: a [client] section, readable by the exporter's uid (nobody)
    _write(secrets / "my.cnf",
           f"# credentials of the exporter\n[client]\nuser=exporter\npassword={EXPORTER_DB_PW}\nhost=mysql-db\nport=3306\n")
    mysql = backends["mysql"]

    def mysql_ready():
        return _exec(mysql, ["mysqladmin", "ping", "-h", "127.0.0.1", "--connect-timeout=2"])[0] == 0
    _wait_for(mysql_ready, 180, "MariaDB to accept TCP connections", mysql, interval=1)
    container = lab.run(
        images["mysqld-exporter"], "mysqld-exporter", aliases=["mysqld-exporter"],
        # MariaDB >= 10.5.9 no longer lets REPLICATION CLIENT run SHOW SLAVE
        # STATUS (it wants SLAVE MONITOR, which MySQL 8.4 does not know): the
        # lab has no replicas, so that collector is off, a flag both versions know
        command=["--config.my-cnf=/run/secrets/my.cnf", "--no-collect.slave_status"],
        volumes={str(secrets / "my.cnf"): {"bind": "/run/secrets/my.cnf", "mode": "ro"}},
        healthcheck=healthcheck(9104, "/metrics"),
    )
    _wait_for(lambda: wget(container, 9104, "/metrics")[0] == 0, 30, "mysqld exporter /metrics", container)
    return container


def test_mysqld_exporter_reads_my_cnf(mysqld_exporter):  # pylint: disable=redefined-outer-name
    c = mysqld_exporter
    assert _proc1_uid(c) == 65534
    _wait_for(lambda: metric_value(c, 9104, "mysql_up") == 1, 30, "mysql_up 1", c)
    found = metrics(c, 9104)
    assert found["mysql_global_status_uptime"][0][1] > 0
    version = [labels for labels, _v in found["mysql_version_info"]]
    assert version and "MariaDB" in version[0], version
    # the grants are enough for every collector that runs
    assert found["mysql_exporter_last_scrape_error"] == [("", 0.0)], found["mysql_exporter_last_scrape_error"]
    assert not [labels for labels, v in found.get("mysql_exporter_scrape_errors_total", []) if v], found
    assert "Error from scraper" not in _logs(c)
    assert_secret_hidden(c, EXPORTER_DB_PW)


@pytest.fixture(scope="module")
def redis_exporter(lab, images, backends, tmp_path_factory):  # pylint: disable=redefined-outer-name
    secrets = tmp_path_factory.mktemp("redis-exporter-secrets")
    # redis_exporter's password file: a JSON map from the exact --redis.addr
    # (with its redis:// scheme) to the password; readable by uid 59000
    _write(secrets / "redis-exporter.json", json.dumps({"redis://redis-cache:6379": REDIS_PW}))
    redis = backends["redis"]
    _wait_for(lambda: _exec(redis, ["redis-cli", "PING"])[1].strip() == "PONG", 60, "redis PONG", redis)
    container = lab.run(
        images["redis-exporter"], "redis-exporter", aliases=["redis-exporter"],
        # the flags the monitoring role passes (--redis.user: its own ACL user)
        command=["--redis.addr=redis://redis-cache:6379",
                 "--redis.password-file=/run/secrets/redis-exporter.json", f"--redis.user={REDIS_EXPORTER_USER}"],
        volumes={str(secrets / "redis-exporter.json"): {"bind": "/run/secrets/redis-exporter.json", "mode": "ro"}},
        healthcheck=healthcheck(9121, "/health"),
    )
    _wait_for(lambda: wget(container, 9121, "/metrics")[0] == 0, 30, "redis exporter /metrics", container)
    return container


def _acl_log_users(redis):
    """The users of the ACL LOG's entries (commands or keys Redis refused)."""
    rc, out, err = _exec(redis, ["redis-cli", "--user", "admin", "--no-auth-warning", "ACL", "LOG"],
                         env={"REDISCLI_AUTH": REDIS_ADMIN_PW})
    assert rc == 0 and not out.startswith(("NOPERM", "ERR")), (out, err)
    lines = out.splitlines()
    return [lines[i + 1] for i, line in enumerate(lines[:-1]) if line == "username"]


def test_redis_exporter_password_file(redis_exporter, backends):  # pylint: disable=redefined-outer-name
    c = redis_exporter
    # without a login the server answers PING only
    rc, out, err = _exec(backends["redis"], ["redis-cli", "INFO"])
    assert out.startswith("NOPERM"), (rc, out, err)
    assert _proc1_uid(c) == 59000
    _wait_for(lambda: metric_value(c, 9121, "redis_up") == 1, 30, "redis_up 1", c)
    found = metrics(c, 9121)
    assert found["redis_uptime_in_seconds"][0][1] >= 0
    assert any("redis_version" in labels for labels, _v in found["redis_instance_info"])
    assert_secret_hidden(c, REDIS_PW)
    # the role's exporter rules cover every command of a scrape (two scrapes by now)
    assert REDIS_EXPORTER_USER not in _acl_log_users(backends["redis"])
    assert "Couldn't set client name" not in _logs(c)


def test_redis_exporter_without_password_reports_down(lab, images, backends):  # pylint: disable=redefined-outer-name,unused-argument
    """Control: the same flags minus the password file give redis_up 0 (so the file is what works)."""
    c = lab.run(images["redis-exporter"], "redis-exporter-nopw", command=["--redis.addr=redis://redis-cache:6379"])
    try:
        _wait_for(lambda: metric_value(c, 9121, "redis_up") == 0, 30, "redis_up 0", c)
    finally:
        lab.remove(c)


@pytest.fixture(scope="module")
def nginx_exporter(lab, images, backends):  # pylint: disable=redefined-outer-name
    nginx = backends["nginx"]
    _wait_for(lambda: _exec(nginx, ["curl", "-fsS", "http://127.0.0.1/nginx_status"])[0] == 0,
              60, "nginx stub_status", nginx)
    container = lab.run(
        images["nginx-exporter"], "nginx-exporter", aliases=["nginx-exporter"],
        # the double-dash form: upstream 1.x (kingpin) wants it, Debian's 0.11 (Go's flag) accepts it
        command=["--nginx.scrape-uri=http://load-balancer-under-test/nginx_status"],
        healthcheck=healthcheck(9113, "/metrics"),
    )
    _wait_for(lambda: wget(container, 9113, "/metrics")[0] == 0, 30, "nginx exporter /metrics", container)
    return container


def test_nginx_exporter_stub_status(nginx_exporter):  # pylint: disable=redefined-outer-name
    c = nginx_exporter
    assert _proc1_uid(c) == 1001
    _wait_for(lambda: metric_value(c, 9113, "nginx_up") == 1, 30, "nginx_up 1", c)
    found = metrics(c, 9113)
    # the exporter's own request is an active connection while nginx answers it
    assert found["nginx_connections_active"][0][1] >= 1
    assert found["nginx_http_requests_total"][0][1] >= 1


# --- all together -------------------------------------------------------------


def test_prometheus_scrapes_every_exporter(prometheus, node_exporter, mysqld_exporter, redis_exporter,
                                           nginx_exporter):  # pylint: disable=redefined-outer-name,unused-argument
    c = prometheus["container"]
    for job in ("node", "mysqld", "redis", "nginx"):
        _wait_for(lambda job=job: job_up(c, job), 30, f"the {job} job up in Prometheus", c)
    for expr in ("mysql_up", "redis_up", "nginx_up"):
        _wait_for(lambda expr=expr: [r["value"][1] for r in promql(c, expr)] == ["1"], 30, f"{expr} == 1", c)
    assert promql(c, 'node_filesystem_avail_bytes{mountpoint="/"}')


def test_healthchecks_pass(prometheus, node_exporter, mysqld_exporter, redis_exporter,
                           nginx_exporter):  # pylint: disable=redefined-outer-name
    """The roles' healthcheck shape, as Docker runs it and by hand; and it fails when nothing answers.

    (The official nginx exporter image is FROM scratch, so the roles give it no healthcheck;
    the offline one could run it all the same.)
    """
    containers = {
        "prometheus": prometheus["container"], "node-exporter": node_exporter,
        "mysqld-exporter": mysqld_exporter, "redis-exporter": redis_exporter, "nginx-exporter": nginx_exporter,
    }
    for target, c in containers.items():
        spec = TARGETS[target]
        _wait_healthy(c)
        rc, out, err = _exec(c, healthcheck_cmd(spec["port"], spec["health"]))
        assert rc == 0 and out == "" and err == "", (target, rc, out, err)
        rc, _out, _err = _exec(c, healthcheck_cmd(spec["port"] + 1000, spec["health"]))
        assert rc != 0, f"{target}: wget succeeded against a closed port"
    rc, _out, _err = _exec(containers["prometheus"], healthcheck_cmd(9090, "/no-such-page"))
    assert rc != 0, "wget -q succeeded on a 404"


# --- the images' interface ----------------------------------------------------


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_image_interface(client, images, lab, target):  # pylint: disable=redefined-outer-name
    spec = TARGETS[target]
    config = client.images.get(images[target]).attrs["Config"]
    assert config["Entrypoint"] == spec["entrypoint"]
    assert config["Cmd"] == spec["cmd"]
    assert config["User"] == spec["user"]
    assert f"{spec['port']}/tcp" in (config.get("ExposedPorts") or {})
    if "workdir" in spec:
        assert config["WorkingDir"] == spec["workdir"]
    assert sorted(config.get("Volumes") or {}) == spec.get("volumes", [])
    labels = config.get("Labels") or {}
    for key in ("title", "description", "licenses", "url"):
        assert labels.get(f"org.opencontainers.image.{key}"), f"label org.opencontainers.image.{key} missing"
    assert "offline" in labels["org.opencontainers.image.title"]
    assert config.get("Healthcheck") is None  # as upstream: the roles set it
    # the entrypoint is Debian's binary, and it answers --version
    code, out = lab.run_to_end(images[target], f"{target}-version", command=["--version"])
    assert code == 0, out
    assert re.search(r"\b\d+\.\d+\.\d+", out), out
    code, out = lab.run_to_end(images[target], f"{target}-paths",
                               entrypoint=["sh", "-c", f"readlink -f {spec['entrypoint'][0]}; id -u; command -v wget"])
    assert code == 0 and out.split() == [spec["binary"], str(spec["uid"]), "/usr/bin/wget"], out
