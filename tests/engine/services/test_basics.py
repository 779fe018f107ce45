# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Configuration and the shared middleware (catch-all 500, JSON errors)."""

from __future__ import annotations

import pytest

from conftest import Logs
from ecommerce_app.app import base_app
from ecommerce_app.config import Config, ConfigError
from ecommerce_app.logs import JsonLogger


def test_defaults_per_service():
    user = Config.from_env({"SERVICE": "user"})
    assert (user.port, user.host, user.mysql_host, user.mysql_port, user.mysql_database) == \
        (3001, "0.0.0.0", "mysql-db", 3306, "users")
    assert (user.redis_host, user.redis_port, user.cache_ttl) == ("redis-cache", 6379, 60)
    assert (user.request_timeout, user.status_timeout, user.max_body_bytes) == (5.0, 2.0, 65536)
    assert Config.from_env({"SERVICE": "order"}).port == 3002
    assert Config.from_env({"SERVICE": "payment-service"}).port == 3003
    gateway = Config.from_env({"SERVICE": "gateway"})
    assert gateway.port == 3000 and gateway.service_name == "api-gateway"
    assert (gateway.user_service_url, gateway.order_service_url, gateway.payment_service_url) == (
        "http://user-service:3001", "http://order-service:3002", "http://payment-service:3003")


def test_password_files_win(tmp_path):
    (tmp_path / "db").write_text("s3cret\n")
    (tmp_path / "redis").write_text("r3dis")
    config = Config.from_env({"SERVICE": "user", "MYSQL_PASSWORD_FILE": str(tmp_path / "db"),
                              "MYSQL_PASSWORD": "ignored", "REDIS_PASSWORD_FILE": str(tmp_path / "redis")})
    assert config.mysql_password == "s3cret" and config.redis_password == "r3dis"
    assert "s3cret" not in repr(config)
    assert Config.from_env({"SERVICE": "user", "MYSQL_PASSWORD": "plain"}).mysql_password == "plain"
    with pytest.raises(ConfigError, match="MYSQL_PASSWORD_FILE"):
        Config.from_env({"SERVICE": "user", "MYSQL_PASSWORD_FILE": str(tmp_path / "missing")})


def test_redis_user():
    # a Redis ACL user (the data role's data_redis_user); empty: AUTH <password> as the default user
    assert Config.from_env({"SERVICE": "user"}).redis_user == ""
    assert Config.from_env({"SERVICE": "user", "REDIS_USER": " ecommerce "}).redis_user == "ecommerce"


@pytest.mark.parametrize("env, message", [
    ({}, "SERVICE"),
    ({"SERVICE": "user", "PORT": "x"}, "PORT"),
    ({"SERVICE": "user", "REQUEST_TIMEOUT": "0"}, "REQUEST_TIMEOUT"),
    ({"SERVICE": "user", "MAX_BODY_BYTES": "0"}, "MAX_BODY_BYTES"),
])
def test_bad_values(env, message):
    with pytest.raises(ConfigError, match=message):
        Config.from_env(env)


@pytest.mark.asyncio
async def test_unexpected_error_is_a_json_500_without_internals(aiohttp_client):
    # no real route raises unexpectedly: this one does, to reach the catch-all
    logs = Logs()
    config = Config.from_env({"SERVICE": "gateway"})
    app = base_app(config, JsonLogger("api-gateway", "INFO", stream=logs))

    async def boom(request):
        raise RuntimeError("secret internal detail")

    app.router.add_get("/boom", boom)
    client = await aiohttp_client(app)
    response = await client.get("/boom", headers={"X-Request-ID": "boom-1"})
    assert response.status == 500
    assert await response.json() == {"error": "internal server error", "request_id": "boom-1"}
    assert "secret" not in await response.text()
    records = logs.records()
    failure = [r for r in records if r["msg"] == "unhandled error"][0]
    assert "RuntimeError: secret internal detail" in failure["error"] and "Traceback" in failure["traceback"]
    assert [r["status"] for r in records if r["msg"] == "request"] == [500]
    response = await client.get("/boom", headers={"X-Request-ID": "bad id with spaces"})
    assert len(response.headers["X-Request-ID"]) == 32  # not echoed: replaced by a fresh id
