# -*- coding: utf-8 -*-
# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Integration tests for the offline nginx image and the frontend's nginx configs.

roles/frontend/images/nginx builds a stand-in for the official
``nginx:1.30-alpine`` image from Debian's nginx; the frontend role renders
roles/frontend/templates/nginx/{load-balancer,web-server}.conf.j2 into the
containers' conf.d. These tests build the recipe, check the official
interface, run ``nginx -t`` on the load balancer config for every
load-balancing method, then run a real load balancer, two web servers and an
echo stand-in for the API gateway and check the behaviour over HTTP:
the page, round robin, the /api prefix, X-Request-ID, failover without a lost
request, graceful reload, /nginx_status.

Requirements (tests/images/conftest.py stops the run, naming what is missing):

* the Docker SDK for Python and Jinja2;
* a Docker engine on this machine (config files are bind-mounted from
  pytest's tmp dirs, the demo page from the repository);
* ``DOCKERLAB_BASE_IMAGE``: a local Debian bookworm image used as the
  ``BASE_IMAGE`` build argument (no registry is contacted; apt inside the
  build needs Debian's mirror).

Containers and the network are named ``<prefix><random>-<what>`` (prefix
``pytest-nginx-``, or ``DOCKERLAB_TEST_PREFIX``); the load balancer publishes
port 80 on 127.0.0.1 only, on a port the engine picks. The containers reach
each other by network aliases (web-server-1, web-server-2, api-gateway) on
the test's own network. Everything is removed when the module ends; the image
is tagged ``dockerlab-test/nginx:pytest`` and kept for the build cache.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import re
import tarfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import docker
import jinja2
import pytest

from docker_env import base_image, container_logs, exec_text, remove_all, wait_for  # pylint: disable=import-error  # tests/docker_env.py

REPO_ROOT = Path(__file__).resolve().parents[2]
RECIPE_DIR = REPO_ROOT / "roles" / "frontend" / "images" / "nginx"
TEMPLATES_DIR = REPO_ROOT / "roles" / "frontend" / "templates" / "nginx"
SITE_DIR = REPO_ROOT / "roles" / "frontend" / "files" / "site"
PREFIX = os.environ.get("DOCKERLAB_TEST_PREFIX", "").strip() or "pytest-nginx-"
NGINX_TAG = "dockerlab-test/nginx:pytest"
METHODS = ("round_robin", "least_conn", "ip_hash", "weighted")
RUN_ID = uuid.uuid4().hex[:8]


BASE_IMAGE = base_image()


# --------------------------------------------------------------------------
# helpers


def _name(what: str) -> str:
    return f"{PREFIX}{RUN_ID}-{what}"


def _logs(container) -> str:
    return container_logs(docker, container)


_exec = exec_text


def _wait_for(predicate, timeout: float, what: str, container=None, interval: float = 0.2):
    return wait_for(docker, predicate, timeout, what, container, interval, retry_on=(OSError, http.client.HTTPException))


def _put_files(container, directory: str, files: dict[str, str]) -> None:
    """Copy {name: text} into directory of the container (tar over the API)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, text in files.items():
            data = text.encode("utf-8")
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = int(time.time())
            tar.addfile(info, io.BytesIO(data))
    assert container.put_archive(directory, buf.getvalue()), f"could not copy into {directory}"


_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
    # as Ansible's template module renders
    trim_blocks=True,
    keep_trailing_newline=True,
    undefined=jinja2.StrictUndefined,
)


def _upstream(method: str, servers: list[dict]) -> dict:
    return {"method": method, "servers": servers, "max_fails": 3, "fail_timeout": "10s", "keepalive": 32}


def render_lb(method: str = "round_robin", monitoring: list[dict] | None = None, **extra) -> str:
    variables = {
        "frontend_lb_listen_port": 80,
        "frontend_web_upstream": _upstream(method, [
            {"host": "web-server-1", "port": 80, "weight": 1},
            {"host": "web-server-2", "port": 80, "weight": 1},
        ]),
        "frontend_api_upstream": _upstream(method, [{"host": "api-gateway", "port": 3000}]),
        "frontend_monitoring_upstream": _upstream(method, monitoring) if monitoring else None,
        "frontend_resolver": "127.0.0.11",
        # not the test network, nor the Docker gateway the host's requests come from
        "frontend_status_allow": ["192.0.2.0/24"],
    }
    variables.update(extra)
    return _ENV.get_template("load-balancer.conf.j2").render(**variables)


def render_web(name: str) -> str:
    return _ENV.get_template("web-server.conf.j2").render(frontend_web_server_name=name)


# An echo stand-in for the API gateway, served by the image under test.
ECHO_CONF = """\
server {
    listen 3000;
    location / {
        default_type application/json;
        return 200 '{"path":"$request_uri","request_id":"$http_x_request_id","method":"$request_method"}';
    }
}
"""


class HTTP:
    """Plain HTTP to the load balancer's published port on 127.0.0.1."""

    def __init__(self, port: int):
        self.port = port

    def get(self, path: str, headers: dict | None = None, timeout: float = 15):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("GET", path, headers=headers or {})
            res = conn.getresponse()
            body = res.read().decode("utf-8", "replace")
            return res.status, {k.lower(): v for k, v in res.getheaders()}, body
        finally:
            conn.close()


class Lab:
    """Containers and a network of this module; all removed at teardown."""

    def __init__(self, client, tmp: Path):
        self.client = client
        self.tmp = tmp
        self.containers = []
        self.network = None

    def conf_dir(self, what: str, files: dict[str, str]) -> Path:
        path = self.tmp / what
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o755)
        for name, text in files.items():
            (path / name).write_text(text)
            (path / name).chmod(0o644)
        return path

    def run(self, what: str, aliases=None, **kwargs):
        kwargs.setdefault("detach", True)
        if self.network is not None:
            kwargs.setdefault("network", self.network.name)
        container = self.client.containers.create(NGINX_TAG, name=_name(what), **kwargs)
        self.containers.append(container)
        if aliases and self.network is not None:
            # replace the default attachment with one that carries the aliases
            self.network.disconnect(container)
            self.network.connect(container, aliases=aliases)
        container.start()
        container.reload()
        return container

    def cleanup(self):
        remove_all(docker, self.containers, [self.network])


# --------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def client():
    cli = docker.from_env(timeout=120)
    yield cli
    cli.close()


@pytest.fixture(scope="module")
def nginx_image(client):
    try:
        image, _unused = client.images.build(
            path=str(RECIPE_DIR), tag=NGINX_TAG, buildargs={"BASE_IMAGE": BASE_IMAGE},
            pull=False, rm=True, forcerm=True,
        )
    except docker.errors.BuildError as exc:
        log = "".join(chunk.get("stream", "") for chunk in exc.build_log if isinstance(chunk, dict))
        pytest.fail(f"building {RECIPE_DIR} failed: {exc}\n{log[-4000:]}")
    return image


@pytest.fixture(scope="module")
def checker(client, nginx_image, tmp_path_factory):  # pylint: disable=redefined-outer-name,unused-argument
    """One idle container to run `nginx -t` on rendered configs; the upstream
    names resolve through /etc/hosts, as Docker's DNS would resolve them."""
    lab = Lab(client, tmp_path_factory.mktemp("checker"))
    try:
        container = lab.run(
            "checker", command=["sleep", "infinity"],
            extra_hosts={"web-server-1": "127.0.0.1", "web-server-2": "127.0.0.1",
                         "api-gateway": "127.0.0.1", "grafana": "127.0.0.1"},
        )
        yield container
    finally:
        lab.cleanup()


def _nginx_t(container, conf: str):
    _exec(container, ["sh", "-c", "rm -f /etc/nginx/conf.d/*.conf"])
    _put_files(container, "/etc/nginx/conf.d", {"site.conf": conf})
    return _exec(container, ["nginx", "-t"])


@pytest.fixture(scope="module")
def lab(client, nginx_image, tmp_path_factory):  # pylint: disable=redefined-outer-name,unused-argument
    """A load balancer, two web servers and the echo API on a network of their own."""
    stack = Lab(client, tmp_path_factory.mktemp("lab"))
    try:
        stack.network = client.networks.create(_name("net"), driver="bridge", check_duplicate=True)
        site = {"bind": "/usr/share/nginx/html", "mode": "ro"}
        webs = {}
        for n in (1, 2):
            conf = stack.conf_dir(f"web{n}", {"default.conf": render_web(f"web-server-{n}")})
            webs[n] = stack.run(
                f"web-server-{n}", aliases=[f"web-server-{n}"],
                volumes={str(conf): {"bind": "/etc/nginx/conf.d", "mode": "ro"}, str(SITE_DIR): site},
            )
        echo = stack.conf_dir("api", {"default.conf": ECHO_CONF})
        api = stack.run("api-gateway", aliases=["api-gateway"],
                        volumes={str(echo): {"bind": "/etc/nginx/conf.d", "mode": "ro"}})
        lb_conf = stack.conf_dir("lb", {"default.conf": render_lb("round_robin")})
        lb = stack.run("load-balancer", aliases=["load-balancer"],
                       volumes={str(lb_conf): {"bind": "/etc/nginx/conf.d", "mode": "ro"}},
                       ports={"80/tcp": ("127.0.0.1", None)})
        port = int(lb.attrs["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"])
        web = HTTP(port)
        _wait_for(lambda: web.get("/")[0] == 200, 30, "the load balancer to serve /", container=lb)
        yield {"lb": lb, "web1": webs[1], "web2": webs[2], "api": api, "http": web, "lb_conf": lb_conf}
    finally:
        stack.cleanup()


# --------------------------------------------------------------------------
# the image's interface


def test_image_metadata(nginx_image):  # pylint: disable=redefined-outer-name
    config = nginx_image.attrs["Config"]
    assert config["Entrypoint"] == ["/docker-entrypoint.sh"]
    assert config["Cmd"] == ["nginx", "-g", "daemon off;"]
    assert "80/tcp" in config["ExposedPorts"]
    assert config["StopSignal"] == "SIGQUIT"


def test_image_layout(checker):  # pylint: disable=redefined-outer-name
    script = r"""
set -e
test "$(id -u nginx)" = 101 && test "$(id -g nginx)" = 101
test "$(readlink /var/log/nginx/access.log)" = /dev/stdout
test "$(readlink /var/log/nginx/error.log)" = /dev/stderr
grep -Eq '^user +nginx;' /etc/nginx/nginx.conf
grep -Eq '^worker_processes +auto;' /etc/nginx/nginx.conf
grep -q 'include /etc/nginx/conf.d/\*.conf;' /etc/nginx/nginx.conf
! grep -q sites-enabled /etc/nginx/nginx.conf
test ! -e /etc/nginx/sites-enabled
test -f /usr/share/nginx/html/index.html && test -f /usr/share/nginx/html/50x.html
test -x /docker-entrypoint.sh && test -d /docker-entrypoint.d
command -v envsubst curl >/dev/null
nginx -V 2>&1 | grep -q -- --with-http_stub_status_module
echo ok
"""
    rc, out, err = _exec(checker, ["sh", "-c", script])
    assert rc == 0 and out.strip().endswith("ok"), f"{out}\n{err}"


def test_entrypoint_templates_and_scripts(client, nginx_image, tmp_path):  # pylint: disable=redefined-outer-name
    """/etc/nginx/templates/*.template -> conf.d with envsubst; executable
    /docker-entrypoint.d/*.sh run; then the command is exec'd."""
    tmp_path.chmod(0o755)
    templates = tmp_path / "templates"
    templates.mkdir(mode=0o755)
    (templates / "hello.conf.template").write_text(
        "server {\n  listen ${HELLO_PORT};\n"
        "  location / { return 200 'hello ${HELLO_NAME} $host'; }\n}\n")
    scripts = tmp_path / "scripts"
    scripts.mkdir(mode=0o755)
    marker = scripts / "90-marker.sh"
    marker.write_text("#!/bin/sh\necho custom-script-ran > /tmp/marker\n")
    marker.chmod(0o755)
    container = client.containers.run(
        NGINX_TAG, name=_name("entrypoint"), detach=True,
        environment={"HELLO_PORT": "8081", "HELLO_NAME": "pytest"},
        volumes={str(templates): {"bind": "/etc/nginx/templates", "mode": "ro"},
                 str(marker): {"bind": "/docker-entrypoint.d/90-marker.sh", "mode": "ro"}},
    )
    try:
        def answers():
            rc, out, _unused = _exec(container, ["curl", "-fsS", "http://127.0.0.1:8081/"])
            return rc == 0 and out
        out = _wait_for(answers, 20, "the templated server", container=container)
        # defined variables substituted, nginx's own $host left alone
        assert out == "hello pytest 127.0.0.1"
        rc, conf, _unused = _exec(container, ["cat", "/etc/nginx/conf.d/hello.conf"])
        assert rc == 0 and "listen 8081;" in conf and "$host" in conf
        assert _exec(container, ["cat", "/tmp/marker"])[1].strip() == "custom-script-ran"
        # master runs as root, workers as nginx
        owners = ("ps -o user= -C nginx 2>/dev/null || "
                  "for p in /proc/[0-9]*; do grep -q nginx $p/comm 2>/dev/null && stat -c %U $p; done")
        rc, out, _unused = _exec(container, ["sh", "-c", owners])
        assert {"root", "nginx"} <= set(out.split()), out
        logs = _logs(container)
        assert "20-envsubst-on-templates.sh" in logs and "Configuration complete" in logs, logs
        # the default server is still there, with the default page
        rc, out, _unused = _exec(container, ["curl", "-fsS", "http://127.0.0.1/"])
        assert rc == 0 and "Welcome to nginx!" in out
    finally:
        container.remove(force=True, v=True)


# --------------------------------------------------------------------------
# the rendered configs are valid for every method


@pytest.mark.parametrize("monitoring", [False, True], ids=["no-monitoring", "monitoring"])
@pytest.mark.parametrize("method", METHODS)
def test_lb_config_valid(checker, method, monitoring):  # pylint: disable=redefined-outer-name
    conf = render_lb(method, monitoring=[{"host": "grafana", "port": 3000}] if monitoring else None)
    if method == "weighted":
        assert "weight=1" in conf
    if method in ("least_conn", "ip_hash"):
        assert f"    {method};" in conf
    assert "backup" not in conf
    # POSTs are retried after they were sent only with an Idempotency-Key (@api_keyed)
    keyed = conf.split("location @api_keyed {", 1)[1].split("}", 1)[0]
    assert "non_idempotent" in keyed and conf.count("non_idempotent") == 1
    rc, out, err = _nginx_t(checker, conf)
    assert rc == 0, f"nginx -t failed for {method}:\n{out}{err}\n--- config ---\n{conf}"


def test_lb_config_weights_and_options(checker):  # pylint: disable=redefined-outer-name
    """weight=, per-server max_fails, no keepalive, a status allow list, ip_hash with weights."""
    up = {"method": "ip_hash", "max_fails": 2, "fail_timeout": "5s", "keepalive": 0,
          "servers": [{"host": "web-server-1", "weight": 3}, {"host": "web-server-2", "max_fails": 1}]}
    conf = render_lb(frontend_web_upstream=up, frontend_status_allow=["172.23.0.0/16", "10.0.0.1"])
    assert "server web-server-1:80 weight=3 max_fails=2 fail_timeout=5s;" in conf
    assert "server web-server-2:80 max_fails=1 fail_timeout=5s;" in conf
    assert "allow 172.23.0.0/16;" in conf and "allow 10.0.0.1;" in conf
    rc, out, err = _nginx_t(checker, conf)
    assert rc == 0, f"{out}{err}\n{conf}"


def test_lb_config_unknown_method_fails(checker):  # pylint: disable=redefined-outer-name
    rc, out, err = _nginx_t(checker, render_lb("random_pick"))
    assert rc != 0 and "unknown_load_balancing_method" in out + err


def test_web_config_valid(checker):  # pylint: disable=redefined-outer-name
    rc, out, err = _nginx_t(checker, render_web("web-server-1"))
    assert rc == 0, f"{out}{err}"


# --------------------------------------------------------------------------
# a running load balancer


def test_page_through_lb(lab):  # pylint: disable=redefined-outer-name
    status, headers, body = lab["http"].get("/")
    assert status == 200
    title = re.search(r"<title>(.*?)</title>", body, re.S)
    assert title and "E-commerce" in title.group(1)
    served = headers.get("x-served-by")
    assert served in ("web-server-1", "web-server-2")
    assert served in body, "the page does not name the server that served it"
    assert re.fullmatch(r"[0-9.]+:80", headers.get("x-upstream", "")), headers
    for asset in ("/app.js", "/style.css"):
        status, headers, _unused = lab["http"].get(asset)
        assert status == 200 and "max-age=" in headers.get("cache-control", ""), headers


def test_web_server_health(lab):  # pylint: disable=redefined-outer-name
    for n in (1, 2):
        rc, out, err = _exec(lab[f"web{n}"], ["curl", "-fsS", "-D", "-", "http://127.0.0.1/health"])
        assert rc == 0, err
        head, _unused, body = out.partition("\r\n\r\n")
        assert json.loads(body) == {"status": "healthy", "server": f"web-server-{n}"}
        assert f"X-Served-By: web-server-{n}" in head


def test_round_robin_spreads(lab):  # pylint: disable=redefined-outer-name
    counts = Counter(lab["http"].get("/")[1].get("x-served-by") for _unused in range(100))
    assert set(counts) == {"web-server-1", "web-server-2"}, counts
    assert all(40 <= c <= 60 for c in counts.values()), counts


def test_api_prefix_and_request_id(lab):  # pylint: disable=redefined-outer-name
    status, headers, body = lab["http"].get("/api/x?q=1")
    assert status == 200, body
    echoed = json.loads(body)
    assert echoed["path"] == "/x?q=1"
    generated = headers.get("x-request-id", "")
    assert re.fullmatch(r"[0-9a-f]{32}", generated), headers
    assert echoed["request_id"] == generated  # sent upstream
    # a client's id is kept
    status, headers, body = lab["http"].get("/api/orders/7", headers={"X-Request-ID": f"pytest-{RUN_ID}"})
    assert status == 200
    assert json.loads(body) == {"path": "/orders/7", "request_id": f"pytest-{RUN_ID}", "method": "GET"}
    assert headers.get("x-request-id") == f"pytest-{RUN_ID}"

    # logged, in the JSON access log
    def logged():
        for line in _logs(lab["lb"]).splitlines():
            if f'"request_id":"pytest-{RUN_ID}"' in line:
                return json.loads(line)
        return None
    entry = _wait_for(logged, 10, "the access log line")
    assert entry["status"] == 200 and entry["uri"] == "/api/orders/7"
    assert entry["upstream_addr"].endswith(":3000")
    assert isinstance(entry["request_time"], float)


def test_keyed_post_keeps_method_path_query_and_body(lab):  # pylint: disable=redefined-outer-name
    """A request with an Idempotency-Key goes through the @api_keyed location (retried even
    after it was sent): it must reach the gateway as the same request, prefix stripped."""
    conn = http.client.HTTPConnection("127.0.0.1", lab["http"].port, timeout=15)
    try:
        conn.request("POST", "/api/orders/?via=keyed", body=b'{"user_id": 1}',
                     headers={"Idempotency-Key": f"k-{RUN_ID}", "Content-Type": "application/json",
                              "X-Request-ID": f"keyed-{RUN_ID}"})
        res = conn.getresponse()
        body = res.read().decode()
    finally:
        conn.close()
    assert res.status == 200, body
    assert json.loads(body) == {"path": "/orders/?via=keyed", "request_id": f"keyed-{RUN_ID}", "method": "POST"}


def test_monitoring_off_is_json_503(lab):  # pylint: disable=redefined-outer-name
    status, headers, body = lab["http"].get("/monitoring/")
    assert status == 503 and headers["content-type"].startswith("application/json")
    assert json.loads(body)["error"] == "monitoring is not deployed"


def test_nginx_status(lab):  # pylint: disable=redefined-outer-name
    rc, out, err = _exec(lab["lb"], ["curl", "-fsS", "http://127.0.0.1/nginx_status"])
    assert rc == 0 and "Active connections" in out, err
    status, _unused, _unused = lab["http"].get("/nginx_status")
    assert status == 403


def test_graceful_reload(lab):  # pylint: disable=redefined-outer-name
    lb = lab["lb"]
    pid_before = _exec(lb, ["cat", "/run/nginx.pid"])[1].strip()
    assert pid_before == "1", "the entrypoint does not exec nginx as PID 1"
    # a changed config: monitoring now declared (its host does not exist here)
    (lab["lb_conf"] / "default.conf").write_text(
        render_lb("least_conn", monitoring=[{"host": f"grafana-missing-{RUN_ID}", "port": 3000}]))
    rc, out, err = _exec(lb, ["nginx", "-s", "reload"])
    assert rc == 0, f"{out}{err}"

    def reloaded():
        status, _unused, body = lab["http"].get("/monitoring/")
        return status == 503 and "not reachable" in body
    _wait_for(reloaded, 20, "the reloaded config", container=lb)
    assert _exec(lb, ["cat", "/run/nginx.pid"])[1].strip() == pid_before
    lb.reload()
    assert lb.status == "running"
    # still serving both web servers
    counts = Counter(lab["http"].get("/")[1].get("x-served-by") for _unused in range(20))
    assert set(counts) == {"web-server-1", "web-server-2"}, counts


def test_failover_loses_no_request(lab):  # pylint: disable=redefined-outer-name
    """web-server-1 stops during 200 sequential requests: none fails.

    The stop (SIGQUIT, graceful) starts at request 40; requests go on, paced,
    until 200 were made and at least 50 of them after the container exited."""
    web = lab["http"]
    stopped = threading.Event()

    def stop():
        lab["web1"].stop(timeout=10)
        stopped.set()

    stopper = threading.Thread(target=stop, daemon=True)
    failures, before, after = [], Counter(), Counter()
    slowest = 0.0
    i = 0
    started = time.monotonic()
    while i < 200 or sum(after.values()) < 50:
        assert time.monotonic() - started < 90, f"the stop never completed: {before} {after}"
        if i == 40:
            stopper.start()
        was_stopped = stopped.is_set()
        t0 = time.monotonic()
        try:
            status, headers, _unused = web.get("/")
        except (OSError, http.client.HTTPException) as exc:
            failures.append((i, repr(exc)))
        else:
            if status != 200:
                failures.append((i, status))
            (after if was_stopped else before)[headers.get("x-served-by")] += 1
        slowest = max(slowest, time.monotonic() - t0)
        i += 1
        time.sleep(0.01)
    stopper.join(30)
    assert not failures, f"{len(failures)} of {i} requests failed: {failures[:10]}\n{_logs(lab['lb'])[-3000:]}"
    lab["web1"].reload()
    assert lab["web1"].status == "exited"
    # before the stop both served; once it was gone only web-server-2 did
    assert before["web-server-1"] and before["web-server-2"], before
    assert set(after) == {"web-server-2"}, after
    # a retried request costs at most about proxy_connect_timeout (2s)
    assert slowest < 5, f"slowest request {slowest:.2f}s"
    print(f"{i} requests, {sum(after.values())} after the stop, slowest {slowest:.3f}s")
