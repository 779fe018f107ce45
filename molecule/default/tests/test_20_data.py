"""The data tier for real: health, per-service accounts, Redis password and AOF."""

import pytest

from conftest import ACCOUNTS, image_of, run_in_network, secret, wait_healthy


@pytest.mark.parametrize("name", ["mysql-db", "redis-cache"])
def test_container_is_healthy_on_the_database_network_only(client, name):
    wait_healthy(client, name, deadline=60)
    attrs = client.containers.get(name).attrs
    assert set(attrs["NetworkSettings"]["Networks"]) == {"ecommerce-database"}
    assert not any(attrs["HostConfig"]["PortBindings"] or {}), "the data tier publishes no port"


def test_mongodb_is_left_out_of_the_offline_profile(client):
    assert not client.containers.list(all=True, filters={"name": "^mongodb$"})


def test_each_account_reaches_only_its_own_database(client):
    script = []
    for user, own in ACCOUNTS.items():
        pw_var = "PW_" + user.upper()
        script.append(
            f'MYSQL_PWD="${pw_var}" mysql -h mysql-db -u {user} {own} -N -e '
            f'"CREATE TABLE IF NOT EXISTS probe (id INT PRIMARY KEY); REPLACE INTO probe VALUES (1); '
            f'SELECT CONCAT(\'OWN {user} \', COUNT(*)) FROM probe"'
        )
        for other in set(ACCOUNTS.values()) - {own}:
            script.append(
                f'MYSQL_PWD="${pw_var}" mysql -h mysql-db -u {user} -N -e "SELECT COUNT(*) FROM {other}.probe" '
                f'>/dev/null 2>&1 && echo "LEAK {user} {other}" || echo "DENIED {user} {other}"'
            )
    script.append('MYSQL_PWD=wrong mysql -h mysql-db -u root -e "SELECT 1" >/dev/null 2>&1 '
                  '&& echo "ROOT_WITH_WRONG_PASSWORD" || echo "ROOT_REFUSED"')
    env = {"PW_" + u.upper(): secret("mysql_" + u) for u in ACCOUNTS}
    # Create every table first, then check the denials (the other tables must exist).
    rc, out = run_in_network(client, "ecommerce-database", image_of(client, "mysql-db"),
                             "; ".join(s for s in script if "OWN" in s or "CREATE" in s), env)
    assert rc == 0, out
    rc, out = run_in_network(client, "ecommerce-database", image_of(client, "mysql-db"), "; ".join(script), env)
    assert rc == 0, out
    for user in ACCOUNTS:
        assert "OWN %s 1" % user in out, out
    assert "LEAK" not in out, out
    assert out.count("DENIED") == 6, out
    assert "ROOT_REFUSED" in out, out


def test_redis_requires_the_password_and_keeps_an_aof(client):
    script = (
        'redis-cli -h redis-cache ping; '
        'REDISCLI_AUTH="$PW" redis-cli -h redis-cache ping; '
        'REDISCLI_AUTH="$PW" redis-cli -h redis-cache config get appendonly'
    )
    rc, out = run_in_network(client, "ecommerce-database", image_of(client, "redis-cache"), script,
                             {"PW": secret("redis_password")})
    assert rc == 0, out
    lines = out.split()
    assert "NOAUTH" in out.split("\n")[0], out
    assert "PONG" in lines, out
    assert out.strip().endswith("appendonly\nyes"), out


def test_database_tier_is_not_reachable_from_the_frontend_network(client):
    rc, out = run_in_network(client, "ecommerce-frontend", image_of(client, "redis-cache"),
                             "getent hosts mysql-db redis-cache || echo UNRESOLVED")
    assert "UNRESOLVED" in out, out
