# -*- coding: utf-8 -*-
# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Integration test of the service image (roles/backend/images/service).

Builds the Dockerfile from ``DOCKERLAB_BASE_IMAGE`` (a local Debian bookworm image, so the
code runs on Debian's python3-aiohttp 3.8 / python3-pymysql 1.0 / python3-redis 4.3 /
python3-prometheus-client 0.16), starts the four services with the local
``dockerlab/ecommerce-mysql:*`` and ``dockerlab/ecommerce-redis:*`` images on a private
``h3s-`` network, waits for the image's healthcheck script to pass in every service, then
runs user -> order -> payment through the gateway, from the host, over the gateway
container's address.  Everything it creates is removed at the end except the image
``h3s-ecommerce-service:pytest`` (kept so that a second run reuses the build cache).

The caching_sha2_password tests (bug B1) run the image against tests/mysql_handshake.py, a
fake MySQL 8 server on the host's 127.0.0.1 that forces the full authentication (RSA public
key over plain TCP), with ``network_mode: host`` so that the container reaches it.

Skipped, with the reason, without DOCKERLAB_BASE_IMAGE, a Docker engine or the data images.
"""

from __future__ import annotations

import json
import socket
import time
import uuid
from pathlib import Path

import docker
import pytest
import requests
import yaml

from docker_env import base_image  # pylint: disable=import-error  # tests/docker_env.py
from mysql_handshake import FakeMySQLServer  # pylint: disable=import-error  # tests/mysql_handshake.py
from polling import poll_until  # pylint: disable=import-error  # tests/polling.py

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVICE_DIR = REPO_ROOT / "roles" / "backend" / "images" / "service"
TAG = "h3s-ecommerce-service:pytest"
PREFIX = "h3s-int-"
ROOT_PW = "h3s-Root-pw"
APP_USER = "shop"
APP_PW = "h3s-App-pw"
REDIS_PW = "h3s-Redis-pw"
REDIS_USER = "ecommerce"
REDIS_ADMIN_PW = "h3s-Redis-admin-pw"  # a test-only user that reads the ACL LOG and CLIENT LIST

INIT_SQL = f"""
CREATE DATABASE IF NOT EXISTS orders CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE DATABASE IF NOT EXISTS payments CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
GRANT ALL PRIVILEGES ON users.* TO '{APP_USER}'@'%';
GRANT ALL PRIVILEGES ON orders.* TO '{APP_USER}'@'%';
GRANT ALL PRIVILEGES ON payments.* TO '{APP_USER}'@'%';
FLUSH PRIVILEGES;
"""

BASE_IMAGE = base_image()


def _client():
    return docker.from_env(timeout=120)


def _latest_tag(client, repository):
    images = [image for image in client.images.list(name=repository) if image.tags]
    images.sort(key=lambda image: image.attrs.get("Created", ""), reverse=True)
    return images[0].tags[0] if images else None


def _ip(container, network):
    container.reload()
    return container.attrs["NetworkSettings"]["Networks"][network]["IPAddress"]


@pytest.fixture(scope="module")
def service_image():
    """The image built from the recipe, and how long the build took."""
    client = _client()
    try:
        started = time.monotonic()
        image, _logs = client.images.build(path=str(SERVICE_DIR), tag=TAG, buildargs={"BASE_IMAGE": BASE_IMAGE},
                                           rm=True, forcerm=True, pull=False)
        yield {"image": image, "build_seconds": time.monotonic() - started}
    finally:
        client.close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory, service_image):
    client = _client()
    mysql_image = _latest_tag(client, "dockerlab/ecommerce-mysql")
    redis_image = _latest_tag(client, "dockerlab/ecommerce-redis")
    if not mysql_image or not redis_image:
        pytest.fail("no local dockerlab/ecommerce-mysql:* or dockerlab/ecommerce-redis:* image (the service runs "
                    "against them): `make images` builds them")
    image = service_image["image"]
    build_seconds = service_image["build_seconds"]

    suffix = uuid.uuid4().hex[:6]
    files = tmp_path_factory.mktemp("h3s-service-image")
    files.chmod(0o755)
    initdb = files / "initdb"
    initdb.mkdir(mode=0o755)
    (initdb / "10-databases.sql").write_text(INIT_SQL)
    (initdb / "10-databases.sql").chmod(0o644)
    secrets = files / "secrets"
    secrets.mkdir(mode=0o755)
    for name, value in (("mysql_password", APP_PW), ("redis_password", REDIS_PW)):
        (secrets / name).write_text(value + "\n")
        (secrets / name).chmod(0o644)
    # Redis as the data role configures it: PING only without a login, the services' user
    # with the role's rules (data_redis_user_acl); plus a test-only admin.
    app_acl = yaml.safe_load((REPO_ROOT / "roles/data/defaults/main.yml").read_text())["data_redis_user_acl"]
    redis_etc = files / "redis"
    redis_etc.mkdir(mode=0o755)
    (redis_etc / "users.acl").write_text(
        "user default reset on nopass +ping\n"
        f"user {REDIS_USER} reset on >{REDIS_PW} {app_acl}\n"
        f"user admin reset on >{REDIS_ADMIN_PW} ~* &* +@all\n")
    (redis_etc / "redis.conf").write_text("protected-mode no\nsave \"\"\naclfile /usr/local/etc/redis/users.acl\n")
    for name in ("users.acl", "redis.conf"):
        (redis_etc / name).chmod(0o644)

    network = client.networks.create(f"{PREFIX}{suffix}", driver="bridge")
    containers = {}
    try:
        containers["mysql"] = client.containers.run(
            mysql_image, name=f"{PREFIX}mysql-{suffix}", detach=True, network=network.name,
            environment={"MYSQL_ROOT_PASSWORD": ROOT_PW, "MYSQL_DATABASE": "users",
                         "MYSQL_USER": APP_USER, "MYSQL_PASSWORD": APP_PW},
            volumes={str(initdb): {"bind": "/docker-entrypoint-initdb.d", "mode": "ro"}})
        containers["redis"] = client.containers.run(
            redis_image, ["redis-server", "/usr/local/etc/redis/redis.conf"],
            name=f"{PREFIX}redis-{suffix}", detach=True, network=network.name,
            volumes={str(redis_etc): {"bind": "/usr/local/etc/redis", "mode": "ro"}})
        names = {service: f"{PREFIX}{service}-{suffix}" for service in ("user", "order", "payment", "gateway")}
        common = {
            "MYSQL_HOST": containers["mysql"].name, "MYSQL_USER": APP_USER,
            "MYSQL_PASSWORD_FILE": "/run/secrets/mysql_password",
            "REDIS_HOST": containers["redis"].name, "REDIS_USER": REDIS_USER,
            "REDIS_PASSWORD_FILE": "/run/secrets/redis_password",
            "USER_SERVICE_URL": f"http://{names['user']}:3001",
            "ORDER_SERVICE_URL": f"http://{names['order']}:3002",
            "PAYMENT_SERVICE_URL": f"http://{names['payment']}:3003",
            "CACHE_TTL": "30",
        }
        # started before MySQL is ready on purpose: they must wait for it
        for service, database in (("user", "users"), ("order", "orders"), ("payment", "payments"),
                                  ("gateway", None)):
            environment = dict(common, SERVICE=service)
            if database:
                environment["MYSQL_DATABASE"] = database
            containers[service] = client.containers.run(
                TAG, name=names[service], detach=True, network=network.name, environment=environment,
                volumes={str(secrets): {"bind": "/run/secrets", "mode": "ro"}})

        deadline = time.monotonic() + 120
        pending = ["user", "order", "payment", "gateway"]
        while pending:
            service = pending[0]
            result = containers[service].exec_run(["python3", "-m", "ecommerce_app.healthcheck"])
            if result.exit_code == 0:
                pending.pop(0)
                continue
            containers[service].reload()
            if containers[service].status != "running" or time.monotonic() > deadline:
                logs = containers[service].logs(tail=40).decode(errors="replace")
                pytest.fail(f"{service} never became healthy ({containers[service].status}):\n{logs}")
            time.sleep(0.5)
        yield {"client": client, "network": network.name, "containers": containers, "image": image,
               "gateway": f"http://{_ip(containers['gateway'], network.name)}:3000",
               "build_seconds": build_seconds}
    finally:
        for container in containers.values():
            try:
                container.remove(force=True, v=True)
            except Exception:
                pass
        try:
            network.remove()
        except Exception:
            pass
        client.close()


def test_image_interface(lab):
    config = lab["image"].attrs["Config"]
    assert config["User"] == "app"
    assert config["Cmd"] == ["python3", "-m", "ecommerce_app"]
    assert config["Healthcheck"]["Test"] == ["CMD", "python3", "-m", "ecommerce_app.healthcheck"]
    assert config["StopSignal"] == "SIGTERM" and config["WorkingDir"] == "/opt/ecommerce"
    assert "PYTHONUNBUFFERED=1" in config["Env"]
    versions = lab["containers"]["user"].exec_run(
        ["python3", "-c", "import aiohttp, pymysql, redis; print(aiohttp.__version__, pymysql.__version__, "
         "redis.__version__)"]).output.decode().split()
    assert versions[0].startswith("3.8.") and versions[1].startswith("1.0.") and versions[2].startswith("4.3.")
    # caching_sha2_password's full authentication (mysql:8.4) needs it: bug B1
    assert lab["containers"]["user"].exec_run(["python3", "-c", "import cryptography"]).exit_code == 0
    assert lab["containers"]["user"].exec_run(["id", "-u"]).output.decode().strip() == "10001"


def test_user_order_payment_flow_through_the_gateway(lab):
    base = lab["gateway"]
    http = requests.Session()
    status = http.get(f"{base}/system/status", timeout=10).json()
    assert {name: s["status"] for name, s in status["services"].items()} == {
        "user-service": "healthy", "order-service": "healthy", "payment-service": "healthy"}

    email = f"flow-{uuid.uuid4().hex[:8]}@example.test"
    response = http.post(f"{base}/users", json={"name": "Flow Tester", "email": email},
                         headers={"X-Request-ID": "h3s-flow-1"}, timeout=10)
    assert response.status_code == 201, response.text
    assert response.headers["X-Request-ID"] == "h3s-flow-1"
    user = response.json()
    first = http.get(f"{base}/users/{user['id']}", timeout=10)
    second = http.get(f"{base}/users/{user['id']}", timeout=10)
    assert (first.headers["X-Cache"], second.headers["X-Cache"]) == ("MISS", "HIT")
    assert http.get(f"{base}/users/health", timeout=10).json()["checks"] == {"database": "ok", "cache": "ok"}

    response = http.post(f"{base}/orders", json={"user_id": user["id"], "items": [
        {"sku": "MUG", "quantity": 2, "unit_price": "7.25"}, {"name": "Tea", "quantity": 1, "unit_price": 3.5}]},
        timeout=10)
    assert response.status_code == 201, response.text
    order = response.json()
    assert order["total"] == "18.00" and order["status"] == "pending"
    response = http.post(f"{base}/orders", json={"user_id": 99999999, "items": [
        {"sku": "MUG", "quantity": 1, "unit_price": "1.00"}]}, timeout=10)
    assert response.status_code == 422 and response.json()["field"] == "user_id"

    response = http.post(f"{base}/payments", json={"order_id": order["id"], "amount": "17.99", "method": "card"},
                         timeout=10)
    assert response.status_code == 422 and response.json()["field"] == "amount"
    key = uuid.uuid4().hex
    payment = http.post(f"{base}/payments", json={"order_id": order["id"], "amount": "18.00", "method": "card"},
                        headers={"Idempotency-Key": key}, timeout=10)
    assert payment.status_code == 201, payment.text
    again = http.post(f"{base}/payments", json={"order_id": order["id"], "amount": "18.00", "method": "card"},
                      headers={"Idempotency-Key": key}, timeout=10)
    assert again.status_code == 201 and again.json()["id"] == payment.json()["id"]
    assert http.get(f"{base}/orders/{order['id']}", timeout=10).json()["status"] == "paid"
    assert [p["id"] for p in http.get(f"{base}/payments/", params={"order_id": order["id"]},
                                      timeout=10).json()["payments"]] == [payment.json()["id"]]

    metrics = http.get(f"{base}/metrics", timeout=10).text
    assert 'route="/payments/{tail}"' in metrics
    logs = lab["containers"]["user"].logs().decode()
    assert '"request_id":"h3s-flow-1"' in logs


def _redis_admin(lab, *args):
    result = lab["containers"]["redis"].exec_run(["redis-cli", "--user", "admin", "--no-auth-warning", *args],
                                                 environment={"REDISCLI_AUTH": REDIS_ADMIN_PW})
    assert result.exit_code == 0, result.output
    return result.output.decode()


def test_the_cache_logs_in_as_its_acl_user_and_needs_no_more(lab):
    """Debian's redis-py logs in as REDIS_USER, and the data role's rules for that user
    (data_redis_user_acl) cover everything the services sent (the flow above ran first)."""
    base = lab["gateway"]
    user = requests.post(f"{base}/users", json={"name": "Cache ACL", "email": f"acl-{uuid.uuid4().hex[:8]}@example.test"},
                         timeout=10).json()
    assert requests.get(f"{base}/users/{user['id']}", timeout=10).headers["X-Cache"] == "MISS"
    assert requests.get(f"{base}/users/{user['id']}", timeout=10).headers["X-Cache"] == "HIT"
    assert requests.patch(f"{base}/users/{user['id']}", json={"name": "Cache ACL 2"}, timeout=10).status_code == 200
    assert requests.get(f"{base}/users/{user['id']}", timeout=10).headers["X-Cache"] == "MISS"
    clients = _redis_admin(lab, "CLIENT", "LIST")
    assert f"user={REDIS_USER} " in clients, clients
    assert "user=default " not in clients, clients  # no service logs in as the default user
    log = _redis_admin(lab, "ACL", "LOG").splitlines()
    refused = [log[i + 1] for i, line in enumerate(log[:-1]) if line == "username"]
    assert REDIS_USER not in refused, "\n".join(log)


def test_sigterm_exits_zero(lab):
    container = lab["containers"]["gateway"]
    container.stop(timeout=20)
    container.reload()
    assert container.attrs["State"]["ExitCode"] == 0
    assert '"msg":"stopped"' in container.logs().decode()


# ---------------------------------------------------------------------------------------------
# caching_sha2_password full authentication (bug B1), against tests/mysql_handshake.py
# ---------------------------------------------------------------------------------------------
FAKE_USER = "shop"
FAKE_PW = "h3s-Sha2-pw"

# The service's own connect (Database._connect: same arguments as in production), once.
CONNECT_SCRIPT = """
import sys
import pymysql
from ecommerce_app.config import Config
from ecommerce_app.db import Database
from ecommerce_app.logs import JsonLogger
config = Config.from_env()
database = Database(config, JsonLogger(config.service_name), [], config.service)
try:
    conn = database._connect()
except pymysql.err.OperationalError as exc:
    print("OperationalError", exc.args[0], exc.args[1:])
    sys.exit(3)
except Exception as exc:
    print("FAILED", exc.__class__.__name__ + ":", exc)
    sys.exit(2)
with conn.cursor() as cursor:
    cursor.execute("SELECT 1")
conn.close()
print("CONNECTED")
"""


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _sha2_env(server, password):
    return {"SERVICE": "user", "MYSQL_HOST": "127.0.0.1", "MYSQL_PORT": str(server.port),
            "MYSQL_USER": FAKE_USER, "MYSQL_PASSWORD": password, "MYSQL_DATABASE": "users"}


def _connect_once(image, server, password):
    """Run CONNECT_SCRIPT in a throwaway container of ``image`` on the host's network."""
    client = _client()
    container = client.containers.run(image, ["python3", "-c", CONNECT_SCRIPT], detach=True, network_mode="host",
                                      environment=_sha2_env(server, password),
                                      name=f"{PREFIX}sha2-{uuid.uuid4().hex[:6]}")
    try:
        exit_code = container.wait(timeout=60)["StatusCode"]
        return exit_code, container.logs().decode(errors="replace")
    finally:
        container.remove(force=True)
        client.close()


@pytest.fixture
def fake_mysql():
    with FakeMySQLServer(user=FAKE_USER, password=FAKE_PW) as server:
        yield server


@pytest.fixture
def fake_mysql_bad_key():
    """Sends a malformed PEM as its public key: the client's cryptography raises ValueError."""
    with FakeMySQLServer(user=FAKE_USER, password=FAKE_PW, bad_public_key=True) as server:
        yield server


def test_caching_sha2_full_authentication_from_the_image(service_image, fake_mysql):
    exit_code, output = _connect_once(TAG, fake_mysql, FAKE_PW)
    assert (exit_code, output.strip()) == (0, "CONNECTED"), output
    stats = fake_mysql.snapshot()
    # the full path: public key requested, RSA-OAEP payload decrypted and the password matched
    assert stats["public_key_requests"] == 1 and stats["full_auth_ok"] == 1, stats
    assert fake_mysql.logins == [(FAKE_USER, "users")] and fake_mysql.errors == []


def test_caching_sha2_wrong_password_is_access_denied(service_image, fake_mysql):
    exit_code, output = _connect_once(TAG, fake_mysql, "not-" + FAKE_PW)
    assert exit_code == 3 and output.startswith("OperationalError 1045 "), output
    stats = fake_mysql.snapshot()
    assert stats["public_key_requests"] == 1 and stats["full_auth_failed"] == 1 and stats["full_auth_ok"] == 0


def test_connect_loop_survives_a_non_mysql_error(service_image, fake_mysql_bad_key):
    """A ValueError while connecting (a malformed server key) must not end the connect loop:
    /health says what failed and the service keeps retrying."""
    client = _client()
    port = _free_port()
    environment = dict(_sha2_env(fake_mysql_bad_key, FAKE_PW), HOST="127.0.0.1", PORT=str(port),
                       REDIS_HOST="127.0.0.1", REDIS_PORT=str(_free_port()))
    container = client.containers.run(TAG, detach=True, network_mode="host", environment=environment,
                                      name=f"{PREFIX}sha2-loop-{uuid.uuid4().hex[:6]}")
    retry_line = '"msg":"database not ready, retrying"'

    def probe():
        response = requests.get(f"http://127.0.0.1:{port}/health", timeout=3)
        return response.status_code, response.json(), container.logs().decode(errors="replace").count(retry_line)

    def still_running():
        container.reload()
        if container.status != "running":
            pytest.fail(f"the service exited ({container.status}):\n"
                        + container.logs(tail=40).decode(errors="replace"))

    try:
        ok, last = poll_until(
            probe, lambda value: value[0] == 503 and "ValueError" in value[1]["checks"]["database"]
            and value[2] >= 2, deadline=60, interval=0.5, retry_on=(requests.RequestException, ValueError),
            between=still_running)
        assert ok, f"/health and the retry log lines never showed the ValueError: {last}\n" + \
            container.logs(tail=40).decode(errors="replace")
        status, body, _retries = last
        assert status == 503 and body["status"] == "degraded"
        assert body["checks"]["database"].startswith("error: ValueError: "), body
        records = [json.loads(line) for line in container.logs().decode(errors="replace").splitlines()
                   if retry_line in line]
        assert [record["attempt"] for record in records[:2]] == [1, 2]
        assert all(record["error"].startswith("ValueError: ") and record["retry_in_s"] > 0 for record in records)
        assert fake_mysql_bad_key.snapshot()["public_key_requests"] >= 2  # every attempt took the full path
    finally:
        container.remove(force=True)
        client.close()
