# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Fixtures of the ecommerce_app tests (tests/engine/services: needs a Docker engine and the
offline MariaDB and Redis images; `make engine` runs it after `make images`).

The package lives in roles/backend/images/service/app (it is copied into the service
image); it is put on sys.path here.  The main path runs against REAL MariaDB and Redis:
session-scoped containers from the local ``dockerlab/ecommerce-mysql:*`` and
``dockerlab/ecommerce-redis:*`` images on a private ``h3s-`` network, reached from the host
by their container addresses.  Without an engine or those images the run stops before
the first test, naming what is missing (tests/prerequisites.py).  Services run in-process
(aiohttp's test server) or, for the SIGTERM test, as a real ``python -m ecommerce_app``
subprocess.
"""

from __future__ import annotations

import asyncio
import io
import json
import sys
import time
import uuid
from pathlib import Path

import docker
import pytest

from prerequisites import engine_and_images, latest_local_image, require  # pylint: disable=import-error  # tests/

REPO_ROOT = Path(__file__).resolve().parents[3]
APP_DIR = REPO_ROOT / "roles" / "backend" / "images" / "service" / "app"
# no __pycache__ in the image's build context (app/ is copied as is)
sys.dont_write_bytecode = True
if str(APP_DIR) not in sys.path:
    sys.path.insert(0, str(APP_DIR))


from ecommerce_app.app import create_app  # noqa: E402
from ecommerce_app.config import Config  # noqa: E402
from ecommerce_app.logs import JsonLogger  # noqa: E402

MYSQL_REPOSITORY = "dockerlab/ecommerce-mysql"
REDIS_REPOSITORY = "dockerlab/ecommerce-redis"
PREFIX = "h3s-"
ROOT_PW = "h3s-root-pw"
APP_USER = "shop"
APP_PW = "h3s-app-pw"
REDIS_PW = "h3s-redis-pw"
DATABASES = ("users", "orders", "payments")


# ---------------------------------------------------------------------------------------------
# Docker: MariaDB + Redis containers
# ---------------------------------------------------------------------------------------------
def _container_ip(container, network):
    container.reload()
    return container.attrs["NetworkSettings"]["Networks"][network]["IPAddress"]


@pytest.fixture(scope="session")
def infra():
    """Real MariaDB and Redis; yields their addresses and accounts."""
    client = docker.from_env(timeout=30)
    mysql_image = latest_local_image(MYSQL_REPOSITORY)
    redis_image = latest_local_image(REDIS_REPOSITORY)
    import pymysql

    suffix = uuid.uuid4().hex[:8]
    network = client.networks.create(f"{PREFIX}unit-{suffix}", driver="bridge")
    containers = []
    try:
        mysql = client.containers.run(
            mysql_image, name=f"{PREFIX}unit-mysql-{suffix}", detach=True, network=network.name,
            environment={"MYSQL_ROOT_PASSWORD": ROOT_PW, "MYSQL_DATABASE": "users",
                         "MYSQL_USER": APP_USER, "MYSQL_PASSWORD": APP_PW},
            labels={"h3s.test": "unit"})
        containers.append(mysql)
        redis = client.containers.run(
            redis_image, ["redis-server", "--requirepass", REDIS_PW, "--save", ""],
            name=f"{PREFIX}unit-redis-{suffix}", detach=True, network=network.name,
            labels={"h3s.test": "unit"})
        containers.append(redis)
        mysql_ip = _container_ip(mysql, network.name)
        redis_ip = _container_ip(redis, network.name)
        deadline = time.monotonic() + 120
        while True:
            try:
                conn = pymysql.connect(host=mysql_ip, user="root", password=ROOT_PW, connect_timeout=2)
                break
            except pymysql.err.MySQLError as exc:
                mysql.reload()
                if mysql.status == "exited" or time.monotonic() > deadline:
                    logs = mysql.logs(tail=30).decode(errors="replace")
                    pytest.fail(f"MariaDB did not start ({exc}):\n{logs}")
                time.sleep(0.5)
        with conn.cursor() as cursor:
            for name in DATABASES:
                cursor.execute(f"CREATE DATABASE IF NOT EXISTS `{name}` "
                               "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
                cursor.execute(f"GRANT ALL PRIVILEGES ON `{name}`.* TO %s@'%%'", (APP_USER,))
        conn.commit()
        conn.close()
        yield {"mysql_host": mysql_ip, "redis_host": redis_ip, "mysql_root_password": ROOT_PW,
               "network": network.name, "client": client, "redis": redis, "mysql": mysql}
    finally:
        for container in containers:
            try:
                container.remove(force=True, v=True)
            except Exception:
                pass
        try:
            network.remove()
        except Exception:
            pass
        client.close()


def sql(infra, database, statement, params=()):
    """Run one statement as root (for assertions on rows)."""
    import pymysql
    conn = pymysql.connect(host=infra["mysql_host"], user="root", password=infra["mysql_root_password"],
                           database=database, cursorclass=pymysql.cursors.DictCursor)
    try:
        with conn.cursor() as cursor:
            cursor.execute(statement, params)
            rows = cursor.fetchall()
        conn.commit()
        return rows
    finally:
        conn.close()


def service_config(service, infra=None, **overrides):
    env = {"SERVICE": service, "REQUEST_TIMEOUT": "3", "STATUS_TIMEOUT": "1", "CACHE_TTL": "30",
           "LOG_LEVEL": "DEBUG"}
    if infra is not None:
        env.update({"MYSQL_HOST": infra["mysql_host"], "MYSQL_USER": APP_USER, "MYSQL_PASSWORD": APP_PW,
                    "REDIS_HOST": infra["redis_host"], "REDIS_PASSWORD": REDIS_PW})
    env.update({key.upper(): str(value) for key, value in overrides.items()})
    return Config.from_env(env)


class Logs(io.StringIO):
    """A JSON-lines stream a test can read back."""

    def records(self):
        return [json.loads(line) for line in self.getvalue().splitlines() if line.strip()]


@pytest.fixture
def start(aiohttp_client, infra_or_none):
    """``await start(service, **env) -> (client, logs)``: an in-process service, DB ready."""

    async def _start(service, use_infra=True, options=None, wait_db=True, **env):
        infra = infra_or_none if use_infra else None
        config = service_config(service, infra, **env)
        logs = Logs()
        app = create_app(config, JsonLogger(config.service_name, config.log_level, stream=logs), **(options or {}))
        client = await aiohttp_client(app)
        if wait_db and "db" in app:
            await app["db"].wait_ready(60)
        client.logs = logs
        client.base_url = str(client.server.make_url("")).rstrip("/")
        return client

    return _start


@pytest.fixture
def infra_or_none(request):
    """The infra fixture for tests that need it (marked ``needs_infra``), else None."""
    if request.node.get_closest_marker("needs_infra"):
        return request.getfixturevalue("infra")
    return None


def pytest_collectstart(collector):
    require(collector, __file__, "make engine", lambda: engine_and_images(MYSQL_REPOSITORY, REDIS_REPOSITORY))


def pytest_configure(config):
    config.addinivalue_line("markers", "needs_infra: the test runs against the MariaDB/Redis containers")
    # the package keeps str application keys (aiohttp 3.8 has no web.AppKey)
    try:
        from aiohttp.web_exceptions import NotAppKeyWarning  # noqa: F401
        config.addinivalue_line("filterwarnings", "ignore::aiohttp.web_exceptions.NotAppKeyWarning")
    except ImportError:
        pass


def unique_email():
    return f"u-{uuid.uuid4().hex[:12]}@example.test"


async def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.02)
    return predicate()
