# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Database's connect loop against tests/mysql_handshake.py, a fake MySQL 8 server that makes
the client take caching_sha2_password's full authentication (bug B1): a failure that is no
pymysql MySQLError must be retried and reported, not end the loop."""

from __future__ import annotations

import pytest

from conftest import Logs, service_config, wait_for
from ecommerce_app.db import Database
from ecommerce_app.logs import JsonLogger
from mysql_handshake import FakeMySQLServer  # pylint: disable=import-error  # tests/mysql_handshake.py

USER = "shop"
PASSWORD = "h3s-sha2-pw"


def _database(server, logs):
    config = service_config("user", mysql_host="127.0.0.1", mysql_port=server.port, mysql_user=USER,
                            mysql_password=PASSWORD, mysql_database="users")
    return Database(config, JsonLogger(config.service_name, "DEBUG", stream=logs), [], "user")


def _retries(logs):
    return [record for record in logs.records() if record["msg"] == "database not ready, retrying"]


@pytest.mark.asyncio
async def test_connect_loop_keeps_retrying_on_a_non_mysql_error():
    logs = Logs()
    with FakeMySQLServer(user=USER, password=PASSWORD, bad_public_key=True) as server:
        database = _database(server, logs)
        database.start()
        try:
            # backoff 0.5 s, 1 s, 2 s: a third attempt within a few seconds
            assert await wait_for(lambda: len(_retries(logs)) >= 3, timeout=15), logs.getvalue()
            assert not database.ready
            assert database.last_error.startswith("ValueError: "), database.last_error
            assert (await database.check()).startswith("error: ValueError: ")
            records = _retries(logs)
            assert [record["attempt"] for record in records[:3]] == [1, 2, 3]
            assert [record["retry_in_s"] for record in records[:3]] == [0.5, 1.0, 2.0]
            assert all(record["error"].startswith("ValueError: ") for record in records)
            assert server.snapshot()["public_key_requests"] >= 3  # every attempt reached the RSA step
        finally:
            await database.close()


@pytest.mark.asyncio
async def test_connect_loop_full_authentication_gets_ready():
    logs = Logs()
    with FakeMySQLServer(user=USER, password=PASSWORD) as server:
        database = _database(server, logs)
        database.start()
        try:
            await database.wait_ready(15)
            assert database.last_error == "" and _retries(logs) == []
            stats = server.snapshot()
            assert stats["public_key_requests"] >= 1 and stats["full_auth_ok"] >= 1 and stats["full_auth_failed"] == 0
            assert server.errors == []
        finally:
            await database.close()
