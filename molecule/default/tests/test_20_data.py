"""The data tier for real: health, per-service accounts, Redis users (ACLs) and AOF."""

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


def test_redis_answers_the_courses_ping_and_refuses_get_without_a_login(client):
    """The course's commands as it runs them: PING needs no login (the default user may PING
    and nothing else), GET does."""
    redis = client.containers.get("redis-cache")
    ping = redis.exec_run(["redis-cli", "ping"]).output.decode()
    assert ping.strip() == "PONG", ping
    get = redis.exec_run(["redis-cli", "get", "x"]).output.decode()
    assert get.startswith("NOPERM"), get


def test_redis_users_are_limited_to_their_commands_and_an_aof_is_kept(client):
    cli = 'redis-cli --no-auth-warning -h redis-cache'
    steps = {
        "remote ping": f'{cli} ping',
        "remote get": f'{cli} get x',
        "app set": f'REDISCLI_AUTH="$PW" {cli} --user ecommerce set ecommerce:verify:1 v ex 30',
        "app get": f'REDISCLI_AUTH="$PW" {cli} --user ecommerce get ecommerce:verify:1',
        "app config": f'REDISCLI_AUTH="$PW" {cli} --user ecommerce config get appendonly',
        "exporter get": f'REDISCLI_AUTH="$XPW" {cli} --user redis_exporter get ecommerce:verify:1',
        "exporter config": f'REDISCLI_AUTH="$XPW" {cli} --user redis_exporter config get appendonly',
    }
    script = "; ".join(f'echo "== {name}"; {command}' for name, command in steps.items())
    rc, out = run_in_network(client, "ecommerce-database", image_of(client, "redis-cache"), script,
                             {"PW": secret("redis_password"), "XPW": secret("redis_exporter_password")})
    assert rc == 0, out
    replies = {}
    for block in out.split("== ")[1:]:
        name, _newline, reply = block.partition("\n")
        replies[name] = reply.split()
    assert replies["remote ping"] == ["PONG"], out  # not only on loopback: the ACL guards, not protected mode
    assert replies["remote get"][:1] == ["NOPERM"], out
    assert (replies["app set"], replies["app get"]) == (["OK"], ["v"]), out
    assert replies["app config"][:1] == ["NOPERM"], out
    assert replies["exporter get"][:1] == ["NOPERM"], out
    assert replies["exporter config"] == ["appendonly", "yes"], out


def test_database_tier_is_not_reachable_from_the_frontend_network(client):
    rc, out = run_in_network(client, "ecommerce-frontend", image_of(client, "redis-cache"),
                             "getent hosts mysql-db redis-cache || echo UNRESOLVED")
    assert "UNRESOLVED" in out, out


def test_the_courses_mysql_command_works_with_a_generated_account(client):
    """`docker exec mysql-db mysql ...` as the course prints it, with an account the lab made
    (the password from the secrets directory, passed as MYSQL_PWD: never on a command line)."""
    result = client.containers.get("mysql-db").exec_run(
        ["mysql", "-u", "user_service", "users", "-N", "-e", "SELECT CONCAT('ME ', CURRENT_USER())"],
        environment={"MYSQL_PWD": secret("mysql_user_service")})
    assert result.exit_code == 0 and result.output.decode().split() == ["ME", "user_service@%"], result.output
    refused = client.containers.get("mysql-db").exec_run(["mysql", "-u", "user_service", "-N", "-e", "SELECT 1"],
                                                         environment={"MYSQL_PWD": "wrong"})
    assert refused.exit_code != 0, refused.output
