# -*- coding: utf-8 -*-
# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Integration tests for the offline data images of dockerlab.ecommerce.

roles/data/images/mysql and roles/data/images/redis build stand-ins for the
official ``mysql:8.4`` and ``redis:7.4-alpine`` images from Debian packages.
The roles never branch on which image they run, so these tests build both
recipes and check the *official interface* against real containers:
environment variables, init scripts, config mounts, volumes, users, the
healthcheck command, persistence across container recreation.

Requirements (tests/images/conftest.py stops the run, naming what is missing):

* the Docker SDK for Python (``import docker``);
* a Docker engine that answers, on this machine (files are bind-mounted
  from pytest's tmp dirs, as the roles bind-mount theirs);
* ``DOCKERLAB_BASE_IMAGE``: a local Debian bookworm image used as the
  ``BASE_IMAGE`` build argument (no registry is contacted; apt inside the
  build needs Debian's mirror).

Containers are named ``pytest-img-<random>-<what>``, publish no ports (the
tests talk to them with ``docker exec``, over the socket or over the
container's own address on the default bridge) and are removed, with their
volumes, when each fixture ends. The images are tagged
``dockerlab-test/mysql:pytest`` and ``dockerlab-test/redis:pytest`` and kept,
so a second run reuses the build cache.
"""

from __future__ import annotations

import gzip
import re
import uuid
from pathlib import Path

import docker
import pytest
import yaml

from docker_env import base_image, container_logs, exec_text, remove_all, wait_for  # pylint: disable=import-error  # tests/docker_env.py
from rendering import rendered_offline  # noqa: F401  pylint: disable=unused-import,import-error  # fixture, tests/rendering.py

REPO_ROOT = Path(__file__).resolve().parents[2]
IMAGES_DIR = REPO_ROOT / "roles" / "data" / "images"
MYSQL_TAG = "dockerlab-test/mysql:pytest"
REDIS_TAG = "dockerlab-test/redis:pytest"
PREFIX = "pytest-img-"

ROOT_PW = "r00t-Pw'with\"quotes"
APP_DB = "shop_db"
APP_USER = "app"
APP_PW = "app-Pw-123"
REDIS_PW = "s3cret-redis-pw"


BASE_IMAGE = base_image()


# --------------------------------------------------------------------------
# helpers


def _name(what: str) -> str:
    return f"{PREFIX}{uuid.uuid4().hex[:10]}-{what}"


def _logs(container) -> str:
    return container_logs(docker, container)


_exec = exec_text


def _wait_for(predicate, timeout: float, what: str, container=None, interval: float = 0.3):
    return wait_for(docker, predicate, timeout, what, container, interval)


def _ip(container) -> str:
    container.reload()
    ip = container.attrs["NetworkSettings"]["IPAddress"]
    assert ip, f"{container.name} has no address on the default bridge"
    return ip


def _proc1_uid(container) -> int:
    rc, out, err = _exec(container, ["cat", "/proc/1/status"])
    assert rc == 0, err
    uid_line = next(line for line in out.splitlines() if line.startswith("Uid:"))
    uids = {int(x) for x in uid_line.split()[1:]}
    assert len(uids) == 1, uid_line  # real, effective, saved, fs all equal
    return uids.pop()


def _write(path: Path, content, mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o755)  # the containers' uid 999 must read the mounts
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    path.chmod(mode)
    return path


class Docker:
    """Creates containers and volumes and removes them all at teardown."""

    def __init__(self, client):
        self.client = client
        self.containers = []
        self.volumes = []

    def volume(self, what: str) -> str:
        vol = self.client.volumes.create(name=_name(what))
        self.volumes.append(vol)
        return vol.name

    def run(self, image: str, what: str, **kwargs):
        kwargs.setdefault("detach", True)
        container = self.client.containers.run(image, name=_name(what), **kwargs)
        self.containers.append(container)
        return container

    def remove(self, container, graceful: bool = True):
        if graceful:
            container.stop(timeout=30)
        container.remove(force=True, v=True)
        self.containers.remove(container)

    def cleanup(self):
        try:
            remove_all(docker, self.containers, volumes=self.volumes)
        finally:
            self.containers.clear()
            self.volumes.clear()


# --------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def client():
    c = docker.from_env(timeout=300)
    try:
        c.images.get(BASE_IMAGE)
    except docker.errors.ImageNotFound:
        c.close()
        pytest.fail(
            f"DOCKERLAB_BASE_IMAGE={BASE_IMAGE!r} is not a local image "
            "(this machine cannot pull it)"
        )
    yield c
    c.close()


def _build(client, recipe: str, tag: str) -> str:
    path = IMAGES_DIR / recipe
    assert (path / "Dockerfile").is_file(), f"missing recipe {path}/Dockerfile"
    try:
        client.images.build(
            path=str(path),
            tag=tag,
            buildargs={"BASE_IMAGE": BASE_IMAGE},
            rm=True,
            forcerm=True,
            pull=False,
        )
    except docker.errors.BuildError as exc:
        log = "".join(
            chunk.get("stream", "") or chunk.get("error", "") for chunk in exc.build_log
        )
        pytest.fail(f"building {recipe} failed: {exc.msg}\n{log[-6000:]}")
    return tag


@pytest.fixture(scope="module")
def mysql_image(client):
    return _build(client, "mysql", MYSQL_TAG)


@pytest.fixture(scope="module")
def redis_image(client):
    return _build(client, "redis", REDIS_TAG)


@pytest.fixture(scope="module")
def dk(client):
    tracker = Docker(client)
    yield tracker
    tracker.cleanup()


@pytest.fixture()
def dk_fn(client):
    tracker = Docker(client)
    yield tracker
    tracker.cleanup()


# --- mysql helpers ---------------------------------------------------------


def mysql(container, sql, user="root", password=None, host=None, database=None):
    """Run one SQL string with the image's `mysql` client (batch, no headers)."""
    cmd = ["mysql", "-N", "-B", f"-u{user}"]
    if host:
        cmd.append(f"-h{host}")
    if database:
        cmd.append(database)
    cmd += ["-e", sql]
    env = {"MYSQL_PWD": password} if password is not None else None
    return _exec(container, cmd, env=env)


def mysql_ok(container, sql, **kwargs) -> str:
    rc, out, err = mysql(container, sql, **kwargs)
    assert rc == 0, f"query {sql!r} failed ({rc}): {err}"
    return out.strip()


def tcp_ping(container, password=None):
    cmd = ["mysqladmin", "ping", "-h", "127.0.0.1", "--connect-timeout=2"]
    env = {"MYSQL_PWD": password} if password is not None else None
    return _exec(container, cmd, env=env)[0] == 0


def wait_mysql_ready(container, timeout=120):
    """Ready = the healthcheck used by the roles succeeds (TCP ping)."""
    _wait_for(lambda: tcp_ping(container), timeout, "mysqladmin ping -h 127.0.0.1", container)


# Init scripts: .sql, .sql.gz, a sourced .sh (uses the entrypoint's helpers)
# and an executable .sh (separate process; uses the exported env), then a
# gate that holds the temporary server up until the test releases it, so the
# test can observe that TCP is closed during initialisation.
INITDB = {
    "01-schema.sql": (
        "CREATE TABLE init_log (id INT AUTO_INCREMENT PRIMARY KEY, what VARCHAR(20));\n"
        "INSERT INTO init_log (what) VALUES ('sql');\n"
        "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(50));\n"
        "INSERT INTO items VALUES (1, 'seeded-by-initdb');\n",
        0o644,
    ),
    "02-more.sql.gz": (gzip.compress(b"INSERT INTO init_log (what) VALUES ('sql.gz');\n"), 0o644),
    "03-sourced.sh": (
        '#!/bin/bash\n'
        'mysql_note "sourced init script running"\n'
        'docker_process_sql <<<"INSERT INTO init_log (what) VALUES (\'sh-sourced\')"\n',
        0o644,
    ),
    "04-executable.sh": (
        "#!/bin/bash\n"
        "set -e\n"
        'MYSQL_PWD="$MYSQL_ROOT_PASSWORD" mysql -uroot "$MYSQL_DATABASE" '
        "-e \"INSERT INTO init_log (what) VALUES ('sh-exec')\"\n",
        0o755,
    ),
    "05-gate.sh": (
        "echo 'PYTEST-GATE waiting'\n"
        "for _i in $(seq 1 600); do [ -e /tmp/pytest-release ] && break; sleep 0.1; done\n"
        "echo 'PYTEST-GATE released'\n",
        0o644,
    ),
    "README.txt": ("ignored by the entrypoint\n", 0o644),
}

CONF_D = {
    # a server variable, and one that overrides what the image itself ships
    # (Debian's 50-server.cnf sets utf8mb4_general_ci)
    "pytest.cnf": "[mysqld]\nmax_connections = 77\ncollation-server = utf8mb4_unicode_ci\n",
}


@pytest.fixture(scope="module")
def mysql_main(mysql_image, dk, tmp_path_factory):
    """A fully configured server: root password, db, user, init scripts, conf.d."""
    base = tmp_path_factory.mktemp("mysql-main")
    for fname, (content, mode) in INITDB.items():
        _write(base / "initdb" / fname, content, mode)
    for fname, content in CONF_D.items():
        _write(base / "conf.d" / fname, content)
    container = dk.run(
        mysql_image,
        "mysql-main",
        environment={
            "MYSQL_ROOT_PASSWORD": ROOT_PW,
            "MYSQL_DATABASE": APP_DB,
            "MYSQL_USER": APP_USER,
            "MYSQL_PASSWORD": APP_PW,
        },
        volumes={
            str(base / "initdb"): {"bind": "/docker-entrypoint-initdb.d", "mode": "ro"},
            str(base / "conf.d"): {"bind": "/etc/mysql/conf.d", "mode": "ro"},
        },
    )
    # the temporary server is up and the init scripts have run up to the gate
    _wait_for(lambda: "PYTEST-GATE waiting" in _logs(container), 120, "init scripts to reach the gate", container)
    observed = {
        "socket_ping_during_init": _exec(container, ["mysqladmin", "ping", "--connect-timeout=2"])[0] == 0,
        "tcp_ping_during_init": tcp_ping(container),
    }
    rc, _out, err = _exec(container, ["touch", "/tmp/pytest-release"])
    assert rc == 0, err
    wait_mysql_ready(container)
    return {"container": container, "observed": observed}


def test_mariadb_backup_is_the_servers_own_version(mysql_main):
    """The backup role's physical copy: mariadb-backup must be built from the server's source (same version)."""
    c = mysql_main["container"]
    rc, server, err = _exec(c, ["mysqld", "--version"])
    assert rc == 0, err
    rc, tool, err = _exec(c, ["sh", "-c", "mariadb-backup --version 2>&1"])
    assert rc == 0, err
    version = re.search(r"Ver\s+(\S+)", server).group(1)
    assert version.split("-")[0] in tool, (server, tool)


def test_mysql_image_interface(mysql_main):
    c = mysql_main["container"]
    for cmd in ("mysql", "mysqladmin", "mysqld", "mysqldump", "gosu"):
        rc, _out, err = _exec(c, ["sh", "-c", f"command -v {cmd}"])
        assert rc == 0, f"{cmd} missing: {err}"
    attrs = c.client.images.get(MYSQL_TAG).attrs["Config"]
    assert attrs["Cmd"] == ["mysqld"]
    assert attrs["Entrypoint"] == ["docker-entrypoint.sh"]
    assert "/var/lib/mysql" in (attrs.get("Volumes") or {})
    assert "3306/tcp" in (attrs.get("ExposedPorts") or {})
    rc, out, _err = _exec(c, ["id", "mysql"])
    assert rc == 0 and "uid=999(mysql)" in out and "gid=999(mysql)" in out, out


def test_mysql_healthcheck_closed_during_init_then_open(mysql_main):
    observed = mysql_main["observed"]
    # the temporary server answers on the socket only ...
    assert observed["socket_ping_during_init"] is True
    assert observed["tcp_ping_during_init"] is False, "TCP answered during initialisation"
    # ... and the real server on TCP, with or without credentials
    c = mysql_main["container"]
    assert tcp_ping(c)
    assert tcp_ping(c, password=ROOT_PW)
    logs = _logs(c)
    assert "port: 0" in logs and "port: 3306" in logs
    assert logs.index("port: 0") < logs.index("port: 3306")


def test_mysql_runs_as_uid_999_and_logs_to_stdout(mysql_main):
    c = mysql_main["container"]
    assert _proc1_uid(c) == 999
    rc, out, _err = _exec(c, ["cat", "/proc/1/comm"])
    assert out.strip() in ("mysqld", "mariadbd")
    rc, out, _err = _exec(c, ["stat", "-c", "%u", "/var/lib/mysql/ibdata1"])
    assert out.strip() == "999"
    assert "ready for connections" in _logs(c)


def test_mysql_root_password(mysql_main):
    c = mysql_main["container"]
    ip = _ip(c)
    # socket and TCP over the bridge address (i.e. root@'%' exists and the
    # server listens on all interfaces, not only 127.0.0.1)
    assert mysql_ok(c, "SELECT CURRENT_USER()", password=ROOT_PW) == "root@localhost"
    assert mysql_ok(c, "SELECT CURRENT_USER()", password=ROOT_PW, host=ip) == "root@%"
    # empty or wrong password refused, on the socket and over TCP
    for host in (None, ip):
        for pw in (None, "", "wrong"):
            rc, _out, err = mysql(c, "SELECT 1", password=pw, host=host)
            assert rc != 0 and "Access denied" in err, (host, pw, err)
    # no anonymous users, no other root accounts, no test database
    users = mysql_ok(c, "SELECT CONCAT(User, '@', Host) FROM mysql.user ORDER BY 1", password=ROOT_PW)
    assert not [u for u in users.splitlines() if u.startswith("@")], users
    assert sorted(u for u in users.splitlines() if u.startswith("root@")) == ["root@%", "root@localhost"]
    dbs = mysql_ok(c, "SHOW DATABASES", password=ROOT_PW).splitlines()
    assert "test" not in dbs


def test_mysql_database_and_user(mysql_main):
    c = mysql_main["container"]
    ip = _ip(c)
    as_app = dict(user=APP_USER, password=APP_PW, host=ip)
    assert mysql_ok(c, "SELECT name FROM items WHERE id = 1", database=APP_DB, **as_app) == "seeded-by-initdb"
    mysql_ok(c, "CREATE TABLE app_made (x INT); INSERT INTO app_made VALUES (1)", database=APP_DB, **as_app)
    visible = set(mysql_ok(c, "SHOW DATABASES", **as_app).splitlines())
    assert visible == {"information_schema", APP_DB}, visible
    for sql in ("CREATE DATABASE pytest_other", "SELECT COUNT(*) FROM mysql.user", "USE mysql"):
        rc, _out, err = mysql(c, sql, **as_app)
        assert rc != 0 and "denied" in err, (sql, err)
    rc, _out, err = mysql(c, "SELECT 1", user=APP_USER, password="wrong", host=ip)
    assert rc != 0 and "Access denied" in err


def test_mysql_initdb_scripts_ran_in_order(mysql_main):
    c = mysql_main["container"]
    rows = mysql_ok(c, "SELECT what FROM init_log ORDER BY id", password=ROOT_PW, database=APP_DB)
    assert rows.splitlines() == ["sql", "sql.gz", "sh-sourced", "sh-exec"]
    logs = _logs(c)
    assert "sourced init script running" in logs
    assert "ignoring /docker-entrypoint-initdb.d/README.txt" in logs


def test_mysql_conf_d_is_read_and_overrides_image_defaults(mysql_main):
    c = mysql_main["container"]
    out = mysql_ok(c, "SELECT @@max_connections, @@collation_server, @@bind_address", password=ROOT_PW)
    assert out.split("\t") == ["77", "utf8mb4_unicode_ci", "0.0.0.0"]


def test_mysql_password_file_and_mysqld_arguments(mysql_image, dk_fn, tmp_path):
    secrets = tmp_path / "secrets"
    _write(secrets / "root", "pw-from-file\n", 0o644)  # trailing newline is stripped
    _write(secrets / "user", "user-pw-from-file", 0o644)
    c = dk_fn.run(
        mysql_image,
        "mysql-file",
        environment={
            "MYSQL_ROOT_PASSWORD_FILE": "/run/secrets/root",
            "MYSQL_USER": "fileuser",
            "MYSQL_PASSWORD_FILE": "/run/secrets/user",
            "MYSQL_DATABASE": "filedb",
            "MYSQL_INITDB_SKIP_TZINFO": "1",
        },
        volumes={str(secrets): {"bind": "/run/secrets", "mode": "ro"}},
        # like `docker run image --opt=value`: the entrypoint prepends mysqld
        command=["--max-connections=55", "--character-set-server=utf8mb4"],
    )
    wait_mysql_ready(c)
    assert mysql_ok(c, "SELECT @@max_connections", password="pw-from-file") == "55"
    assert mysql_ok(c, "SELECT DATABASE()", user="fileuser", password="user-pw-from-file",
                    host=_ip(c), database="filedb") == "filedb"
    rc, _out, err = mysql(c, "SELECT 1", password=None)
    assert rc != 0 and "Access denied" in err
    rc, out, _err = _exec(c, ["cat", "/proc/1/cmdline"])
    assert out.split("\0")[:2] == ["mysqld", "--max-connections=55"]


def test_mysql_random_root_password_and_root_host(mysql_image, dk_fn):
    c = dk_fn.run(
        mysql_image,
        "mysql-random",
        environment={
            "MYSQL_RANDOM_ROOT_PASSWORD": "yes",
            "MYSQL_ROOT_HOST": "localhost",
            "MYSQL_INITDB_SKIP_TZINFO": "1",
        },
    )
    wait_mysql_ready(c)
    generated = [
        line.split("GENERATED ROOT PASSWORD:", 1)[1].strip()
        for line in _logs(c).splitlines()
        if "GENERATED ROOT PASSWORD:" in line
    ]
    assert len(generated) == 1 and len(generated[0]) >= 16
    assert mysql_ok(c, "SELECT CURRENT_USER()", password=generated[0]) == "root@localhost"
    # MYSQL_ROOT_HOST=localhost: no remote root account (no account at all
    # matches the bridge address, hence "not allowed to connect")
    rc, _out, err = mysql(c, "SELECT 1", password=generated[0], host=_ip(c))
    assert rc != 0 and "is not allowed to connect" in err, err
    # the TCP healthcheck still reports the live server, as mysql:8.4's does
    assert tcp_ping(c)


def test_mysql_refuses_to_start_without_root_password_option(mysql_image, dk_fn):
    c = dk_fn.run(mysql_image, "mysql-nopw", environment={"MYSQL_DATABASE": "x"})
    result = c.wait(timeout=120)
    assert result["StatusCode"] != 0
    logs = _logs(c)
    assert "Database is uninitialized and password option is not specified" in logs
    for var in ("MYSQL_ROOT_PASSWORD", "MYSQL_ALLOW_EMPTY_PASSWORD", "MYSQL_RANDOM_ROOT_PASSWORD"):
        assert var in logs


def test_mysql_data_survives_recreation_and_init_runs_once(mysql_image, dk_fn, tmp_path):
    initdb = tmp_path / "initdb"
    _write(initdb / "01-count.sql", "CREATE TABLE runs (n INT); INSERT INTO runs VALUES (1);\n")
    vol = dk_fn.volume("mysql-data")
    spec = dict(
        volumes={
            vol: {"bind": "/var/lib/mysql", "mode": "rw"},
            str(initdb): {"bind": "/docker-entrypoint-initdb.d", "mode": "ro"},
        },
    )
    env = {"MYSQL_ROOT_PASSWORD": "first-pw", "MYSQL_DATABASE": "keep", "MYSQL_INITDB_SKIP_TZINFO": "1"}
    first = dk_fn.run(mysql_image, "mysql-persist-1", environment=env, **spec)
    wait_mysql_ready(first)
    mysql_ok(first, "CREATE TABLE t (v VARCHAR(40)); INSERT INTO t VALUES ('survives')",
             password="first-pw", database="keep")
    dk_fn.remove(first)

    # a different root password on an initialised datadir is ignored (as upstream)
    env2 = dict(env, MYSQL_ROOT_PASSWORD="second-pw")
    second = dk_fn.run(mysql_image, "mysql-persist-2", environment=env2, **spec)
    wait_mysql_ready(second)
    assert mysql_ok(second, "SELECT v FROM t", password="first-pw", database="keep") == "survives"
    assert mysql_ok(second, "SELECT COUNT(*) FROM runs", password="first-pw", database="keep") == "1"
    logs = _logs(second)
    assert "/docker-entrypoint-initdb.d/" not in logs
    assert "Initializing database files" not in logs
    assert _proc1_uid(second) == 999


# --- redis -----------------------------------------------------------------


def redis_cli(container, *args, password=None):
    env = {"REDISCLI_AUTH": password} if password else None
    return _exec(container, ["redis-cli", *args], env=env)


def wait_redis_ready(container, password=None, timeout=60):
    _wait_for(
        lambda: redis_cli(container, "PING", password=password)[1].strip() == "PONG",
        timeout, "redis PONG", container,
    )


def test_redis_defaults_without_config(redis_image, dk_fn):
    c = dk_fn.run(redis_image, "redis-default")
    wait_redis_ready(c)
    # listens on all interfaces with protected mode off, like the official
    # image: a client that is not on loopback gets an answer
    assert redis_cli(c, "-h", _ip(c), "PING")[1].strip() == "PONG"
    assert redis_cli(c, "CONFIG", "GET", "protected-mode")[1].split() == ["protected-mode", "no"]
    # no config file applied (Debian's /etc/redis/redis.conf would bind
    # 127.0.0.1 and log to a file)
    info = redis_cli(c, "INFO", "server")[1]
    assert "config_file:\r\n" in info or "config_file:\n" in info, info
    assert redis_cli(c, "CONFIG", "GET", "logfile")[1].split() == ["logfile"]
    assert redis_cli(c, "CONFIG", "GET", "dir")[1].split() == ["dir", "/data"]
    assert "Ready to accept connections" in _logs(c)
    assert _proc1_uid(c) == 999
    rc, out, _err = _exec(c, ["id", "redis"])
    assert "uid=999(redis)" in out
    for cmd in ("redis-server", "redis-cli", "redis-sentinel", "gosu"):
        rc, _out, err = _exec(c, ["sh", "-c", f"command -v {cmd}"])
        assert rc == 0, f"{cmd} missing: {err}"
    attrs = c.client.images.get(REDIS_TAG).attrs["Config"]
    assert attrs["Cmd"] == ["redis-server"]
    assert attrs["WorkingDir"] == "/data"
    assert "/data" in (attrs.get("Volumes") or {})
    assert "6379/tcp" in (attrs.get("ExposedPorts") or {})


def test_redis_option_arguments_get_redis_server_prepended(redis_image, dk_fn):
    c = dk_fn.run(redis_image, "redis-args", command=["--maxmemory", "12mb", "--protected-mode", "yes"])
    wait_redis_ready(c)
    assert redis_cli(c, "CONFIG", "GET", "maxmemory")[1].split() == ["maxmemory", str(12 * 1024 * 1024)]
    # an explicit choice is respected
    assert redis_cli(c, "CONFIG", "GET", "protected-mode")[1].split() == ["protected-mode", "yes"]
    assert _proc1_uid(c) == 999


def test_redis_mounted_config_auth_aof_and_persistence(redis_image, dk_fn, tmp_path):
    conf = _write(tmp_path / "redis.conf", f"requirepass {REDIS_PW}\nappendonly yes\n")
    vol = dk_fn.volume("redis-data")
    volumes = {
        str(conf): {"bind": "/usr/local/etc/redis/redis.conf", "mode": "ro"},
        vol: {"bind": "/data", "mode": "rw"},
    }
    first = dk_fn.run(redis_image, "redis-conf-1", volumes=volumes,
                      command=["redis-server", "/usr/local/etc/redis/redis.conf"])
    wait_redis_ready(first, password=REDIS_PW)
    rc, out, err = redis_cli(first, "PING")
    assert "NOAUTH" in out + err, (rc, out, err)
    rc, out, err = redis_cli(first, "SET", "k", "v")
    assert "NOAUTH" in out + err
    assert redis_cli(first, "CONFIG", "GET", "appendonly", password=REDIS_PW)[1].split() == ["appendonly", "yes"]
    info = redis_cli(first, "INFO", "server", password=REDIS_PW)[1]
    assert "config_file:/usr/local/etc/redis/redis.conf" in info
    assert redis_cli(first, "SET", "survivor", "still-here", password=REDIS_PW)[1].strip() == "OK"
    rc, out, _err = _exec(first, ["sh", "-c", "find /data -mindepth 1 \\! -uid 999 | wc -l; ls /data"])
    assert out.split()[0] == "0" and "appendonlydir" in out, out
    # umask 0077 from the entrypoint: files the server writes are private
    rc, out, _err = _exec(first, ["sh", "-c", "stat -c %a /data/appendonlydir /data/appendonlydir/*"])
    assert rc == 0 and set(out.split()) == {"700", "600"}, out
    dk_fn.remove(first)  # graceful stop: redis flushes the AOF

    # the official shortcut: a first argument ending in .conf
    second = dk_fn.run(redis_image, "redis-conf-2", volumes=volumes,
                       command=["/usr/local/etc/redis/redis.conf"])
    wait_redis_ready(second, password=REDIS_PW)
    assert redis_cli(second, "GET", "survivor", password=REDIS_PW)[1].strip() == "still-here"
    assert _proc1_uid(second) == 999


def test_redis_entrypoint_chowns_data_when_root(redis_image, dk_fn):
    vol = dk_fn.volume("redis-chown")
    # leave a root-owned file in the volume, then start the server on it
    seeder = dk_fn.run(redis_image, "redis-seed", entrypoint=["sh", "-c", "touch /data/root-file"],
                       volumes={vol: {"bind": "/data", "mode": "rw"}}, detach=True)
    assert seeder.wait(timeout=60)["StatusCode"] == 0
    c = dk_fn.run(redis_image, "redis-chown", volumes={vol: {"bind": "/data", "mode": "rw"}})
    wait_redis_ready(c)
    rc, out, _err = _exec(c, ["stat", "-c", "%u", "/data/root-file"])
    assert out.strip() == "999"


# --- redis with the data role's rendered configuration (ACL users) ---------


def _redis_healthcheck():
    """The redis-cache healthcheck command the data role declares."""
    defaults = yaml.safe_load((REPO_ROOT / "roles/data/defaults/main.yml").read_text())
    test = defaults["data_services"]["redis-cache"]["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL", test
    return test[1]


@pytest.fixture()
def redis_rendered(redis_image, dk_fn, rendered_offline):  # pylint: disable=redefined-outer-name
    """The offline Redis image (7.0) with the redis.conf and users.acl the data role renders
    (tests/render/render.yml), mounted where the role mounts them."""
    conf_dir = rendered_offline / "redis-cache"
    secrets = rendered_offline.parent / "secrets"
    volumes = {
        str(conf_dir / "redis.conf"): {"bind": "/usr/local/etc/redis/redis.conf", "mode": "ro"},
        str(conf_dir / "secrets/users.acl"): {"bind": "/usr/local/etc/redis/users.acl", "mode": "ro"},
        dk_fn.volume("redis-acl"): {"bind": "/data", "mode": "rw"},
    }
    c = dk_fn.run(redis_image, "redis-acl", volumes=volumes,
                  command=["redis-server", "/usr/local/etc/redis/redis.conf"])
    wait_redis_ready(c)
    return {"container": c, "ip": _ip(c),
            "app_pw": (secrets / "redis_password").read_text().strip(),
            "exporter_pw": (secrets / "redis_exporter_password").read_text().strip()}


def _as(redis, user, password, *args):
    """redis-cli over the container's address (not loopback) as ``user``; its output."""
    rc, out, err = _exec(redis["container"], ["redis-cli", "-h", redis["ip"], "--user", user, "--no-auth-warning",
                                              *args], env={"REDISCLI_AUTH": password})
    assert rc == 0, err
    return out.strip()


def _wrong_password(redis, user, password):
    """AUTH as ``user`` with ``password`` is refused (redis-cli says so on stderr, then goes on
    as the default user, whose GET is refused too)."""
    _rc, out, err = _exec(redis["container"], ["redis-cli", "-h", redis["ip"], "--user", user, "--no-auth-warning",
                                               "get", "ecommerce:user:1"], env={"REDISCLI_AUTH": password})
    return "WRONGPASS" in err and out.startswith("NOPERM")


def test_redis_acl_default_user_may_only_ping(redis_rendered):
    c = redis_rendered["container"]
    # the course's commands: `docker exec redis-cache redis-cli ping` / `... get x`
    assert redis_cli(c, "ping")[1].strip() == "PONG"
    rc, out, err = redis_cli(c, "get", "x")
    assert out.startswith("NOPERM") and "'get'" in out, (rc, out, err)
    # not only on loopback: protected mode is off, the ACL does the refusing
    assert redis_cli(c, "-h", redis_rendered["ip"], "PING")[1].strip() == "PONG"
    for command in (["set", "x", "1"], ["config", "get", "*"], ["keys", "*"], ["flushall"], ["acl", "list"]):
        out = redis_cli(c, "-h", redis_rendered["ip"], *command)[1]
        assert out.startswith("NOPERM"), (command, out)
    # the role's healthcheck needs no secret
    assert _exec(c, ["sh", "-c", _redis_healthcheck()])[0] == 0


def test_redis_acl_app_user_reads_and_writes_the_cache_keys_only(redis_rendered):
    r, pw = redis_rendered, redis_rendered["app_pw"]
    assert _as(r, "ecommerce", pw, "set", "ecommerce:user:1", '{"id": 1}', "ex", "60") == "OK"
    assert _as(r, "ecommerce", pw, "get", "ecommerce:user:1") == '{"id": 1}'
    assert _as(r, "ecommerce", pw, "exists", "ecommerce:user:1") == "1"
    assert _as(r, "ecommerce", pw, "ping") == "PONG"
    assert _as(r, "ecommerce", pw, "del", "ecommerce:user:1") == "1"
    assert _as(r, "ecommerce", pw, "get", "ecommerce:user:1") == ""
    assert _as(r, "ecommerce", pw, "get", "other:key").startswith("NOPERM")  # outside its key prefix
    for command in (["flushall"], ["config", "get", "*"], ["info"], ["keys", "*"], ["acl", "list"]):
        assert _as(r, "ecommerce", pw, *command).startswith("NOPERM"), command
    assert _wrong_password(r, "ecommerce", "not-" + pw)


def test_redis_acl_exporter_user_reads_statistics_not_keys(redis_rendered):
    r, pw = redis_rendered, redis_rendered["exporter_pw"]
    assert _as(r, "ecommerce", r["app_pw"], "set", "ecommerce:user:2", "secret-value") == "OK"
    assert _as(r, "redis_exporter", pw, "get", "ecommerce:user:2").startswith("NOPERM")
    assert _as(r, "redis_exporter", pw, "set", "ecommerce:user:2", "x").startswith("NOPERM")
    assert "redis_version:7." in _as(r, "redis_exporter", pw, "info", "server")
    # what redis_exporter sends in a scrape
    assert _as(r, "redis_exporter", pw, "client", "setname", "redis_exporter") == "OK"
    assert _as(r, "redis_exporter", pw, "config", "get", "maxmemory").split() == ["maxmemory", str(256 * 1024 * 1024)]
    for command in (["slowlog", "len"], ["slowlog", "get", "1"], ["latency", "latest"], ["latency", "histogram"],
                    ["ping"]):
        assert not _as(r, "redis_exporter", pw, *command).startswith(("NOPERM", "ERR")), command
    for command in (["config", "set", "maxmemory", "1"], ["client", "list"], ["flushall"], ["scan", "0"]):
        assert _as(r, "redis_exporter", pw, *command).startswith("NOPERM"), command
    # the services' password is not the exporter's
    assert _wrong_password(r, "redis_exporter", r["app_pw"])
