"""Data survives recreating mysql-db and a teardown; only purge=true removes it.
These tests rebuild the stack, so they run last."""

from conftest import image_of, recap_changed, run_in_network, run_playbook, secret, wait_healthy

MARK = "survives-recreation"


def _mysql(client, sql):
    env = {"MYSQL_PWD": secret("mysql_user_service")}
    return run_in_network(client, "ecommerce-database", image_of(client, "mysql-db"),
                          'mysql -h mysql-db -u user_service users -N -e "%s"' % sql, env)


def test_mysql_db_runs_on_the_volume_of_its_engine(client):
    mounts = {m["Destination"]: m.get("Name") for m in client.containers.get("mysql-db").attrs["Mounts"]}
    assert mounts["/var/lib/mysql"] == "ecommerce-molecule-db-data-mariadb"


def test_a_row_survives_recreating_mysql_db(client):
    rc, out = _mysql(client, "CREATE TABLE IF NOT EXISTS persist (v VARCHAR(64)); "
                             "DELETE FROM persist; INSERT INTO persist VALUES ('%s')" % MARK)
    assert rc == 0, out
    client.containers.get("mysql-db").remove(force=True)
    rc, out = run_playbook("site.yml")
    assert rc == 0, out[-3000:]
    assert recap_changed(out) >= 1
    wait_healthy(client, "mysql-db")
    rc, out = _mysql(client, "SELECT v FROM persist")
    assert rc == 0 and out.strip() == MARK, out


def test_teardown_keeps_the_volumes_and_a_redeploy_finds_the_data(client):
    rc, out = run_playbook("playbooks/teardown.yml")
    assert rc == 0, out[-3000:]
    assert not client.containers.list(all=True, filters={"label": "dockerlab.stack=ecommerce-molecule"})
    assert not client.networks.list(filters={"label": "dockerlab.stack=ecommerce-molecule"})
    # offline, MariaDB keeps its data in its own volume (data_mysql_volumes); MySQL's stays
    assert client.volumes.get("ecommerce-molecule-db-data-mariadb")
    assert client.volumes.get("ecommerce-molecule-db-data")
    rc, out = run_playbook("site.yml")
    assert rc == 0, out[-3000:]
    rc, out = _mysql(client, "SELECT v FROM persist")
    assert rc == 0 and out.strip() == MARK, out


def test_purge_removes_the_volumes(client):
    rc, out = run_playbook("playbooks/teardown.yml", "-e", "purge=true")
    assert rc == 0, out[-3000:]
    assert not client.volumes.list(filters={"label": "dockerlab.stack=ecommerce-molecule"})
