"""Backup and restore for real (playbooks/backup.yml, playbooks/restore.yml): users, orders and
payments written through the load balancer, some while the backup runs; an encrypted backup,
verified by its restore into throwaway containers; more rows and Redis keys written after it;
the restore; and exactly the backup's rows served again. Then a damaged backup, a backup of
another stack and a wrong key, each refused with its message while the lab runs untouched (the
round trip, with the right backup and key, is their control)."""

import hashlib
import json
import shutil
import subprocess
import threading
import uuid
from pathlib import Path

import pytest
import requests

from conftest import SECRETS_DIR, STACK, image_of, poll, run_in_network, run_playbook, secret, started_at

FRONT = "http://127.0.0.1:8080"
RUN = uuid.uuid4().hex[:8]
TIMEOUT = 20


def api(method, path, **kwargs):
    kwargs.setdefault("timeout", TIMEOUT)
    return requests.request(method, FRONT + "/api" + path, **kwargs)


def create_user(tag):
    resp = api("POST", "/users/", json={"name": f"Backup {RUN} {tag}",
                                        "email": f"backup-{RUN}-{tag}-{uuid.uuid4().hex[:6]}@example.test"})
    assert resp.status_code == 201, resp.text
    return resp.json()["id"]


def create_order(user_id):
    resp = api("POST", "/orders/", json={"user_id": user_id,
                                         "items": [{"name": f"Widget {RUN}", "quantity": 1, "unit_price": "4.50"}]})
    assert resp.status_code == 201, resp.text
    return resp.json()["id"]


def pay(order_id):
    resp = api("POST", "/payments/", json={"order_id": order_id, "amount": "4.50", "method": "credit_card"})
    assert resp.status_code in (200, 201), resp.text
    return resp.json()["id"]


def redis(*commands):
    """Commands as the services' Redis user (logged in on stdin, so no password is in an argv)."""
    script = f"AUTH ecommerce {secret('redis_password')}\n" + "\n".join(commands) + "\n"
    out = subprocess.run(["docker", "exec", "-i", "redis-cache", "redis-cli", "--no-auth-warning"], input=script,
                         capture_output=True, text=True, timeout=30, check=True).stdout
    return out.splitlines()[1:]


def table_rows(client):
    """Every service table's row count, read as root in one throwaway client."""
    sql = ("SELECT CONCAT(TABLE_SCHEMA, '.', TABLE_NAME) FROM information_schema.TABLES "
           "WHERE TABLE_SCHEMA IN ('users', 'orders', 'payments') AND TABLE_TYPE = 'BASE TABLE'")
    script = (f'for t in $(mysql -h mysql-db -u root -N -B -e "{sql}"); do '
              'echo "$t $(mysql -h mysql-db -u root -N -B -e "SELECT COUNT(*) FROM $t")"; done')
    rc, out = run_in_network(client, "ecommerce-database", image_of(client, "mysql-db"), script,
                             {"MYSQL_PWD": secret("mysql_root_password")})
    assert rc == 0, out
    return {line.split()[0]: int(line.split()[1]) for line in out.splitlines() if len(line.split()) == 2}


def backup_dirs(root):
    return sorted(p for p in Path(root).iterdir() if p.name.startswith(STACK + "-"))


@pytest.fixture(scope="module")
def backup_root(tmp_path_factory):
    return tmp_path_factory.mktemp("backups")


@pytest.fixture(scope="module")
def round_trip(client, backup_root):
    """The whole story once; the tests below read what it recorded."""
    before = {"users": [create_user(f"u{n}") for n in range(3)]}
    before["orders"] = [create_order(user) for user in before["users"]]
    before["payments"] = [pay(order) for order in before["orders"]]
    assert redis(f"SET ecommerce:backup-probe-{RUN} before") == ["OK"]

    # Orders keep coming while the backup runs: the dump and the recorded checksums must agree.
    stop, during = threading.Event(), []

    def write():
        while not stop.is_set():
            during.append(create_order(before["users"][0]))

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        rc, out = run_playbook("playbooks/backup.yml", "-e", f"backup_root={backup_root}", "-e", "backup_encrypt=true",
                               "-e", "backup_keep=1")
    finally:
        stop.set()
        writer.join(timeout=60)
    assert rc == 0, out[-6000:]
    (path,) = backup_dirs(backup_root)
    manifest = json.loads((path / "manifest.json").read_text())

    after = {"user": create_user("after")}
    after["order"] = create_order(after["user"])
    after["payment"] = pay(after["order"])
    assert redis(f"SET ecommerce:backup-probe-{RUN} after", f"SET ecommerce:after-backup-{RUN} 1") == ["OK", "OK"]
    rows_before_restore = table_rows(client)

    starts = started_at(client)
    rc, restore_out = run_playbook("playbooks/restore.yml", "-e", f"backup={path}")
    assert rc == 0, restore_out[-6000:]
    return {"path": path, "manifest": manifest, "output": out, "before": before, "during": during, "after": after,
            "rows_before_restore": rows_before_restore, "starts": starts, "restore_output": restore_out,
            "starts_after": started_at(client)}


def test_the_backup_is_a_private_encrypted_directory_with_a_manifest_and_checksums(round_trip):
    path, manifest = round_trip["path"], round_trip["manifest"]
    assert path.stat().st_mode & 0o777 == 0o700
    assert manifest["stack"] == STACK and manifest["profile"] == "offline"
    # the offline MariaDB also gets a physical copy (mariadb-backup), prepared by the verification
    assert {part["name"] for part in manifest["parts"]} >= {"mysql", "mysql-accounts", "mysql-physical", "redis"}
    assert manifest["encryption"]["tool"] == "age"
    for part in manifest["parts"]:
        stored = path / (part["file"] + ".age")
        assert stored.is_file() and not (path / part["file"]).exists(), part
        assert part["bytes"] > 0 and len(part["sha256"]) == 64, part
    sums = dict(reversed(line.split("  ")) for line in (path / "SHA256SUMS").read_text().splitlines())
    for name, digest in sums.items():
        assert hashlib.sha256((path / name).read_bytes()).hexdigest() == digest, name
    assert "manifest.json" in sums
    assert json.loads((path / "verified.json").read_text())["ok"] is True
    mysql_part = next(part for part in manifest["parts"] if part["name"] == "mysql")
    assert mysql_part["engine"] == "mariadb" and mysql_part["engine_version"].startswith("10.11")


def test_no_secret_reaches_the_output_or_the_manifest(round_trip):
    key = (SECRETS_DIR / "backup_age_identity").read_text()
    secrets = [secret("mysql_root_password"), secret("redis_backup_password"), secret("redis_password"),
               [line for line in key.splitlines() if line.startswith("AGE-SECRET-KEY")][0]]
    text = round_trip["output"] + round_trip["restore_output"] + json.dumps(round_trip["manifest"])
    for value in secrets:
        assert value not in text


def test_the_manifest_holds_the_rows_of_the_backup_including_some_written_during_it(round_trip):
    tables = round_trip["manifest"]["tables"]
    assert tables["orders.orders"]["rows"] >= len(round_trip["before"]["orders"])
    # the writer thread ran before, during and after the dump: the backup has some of its orders, not all
    assert round_trip["during"], "no order was written while the backup ran"
    assert tables["orders.orders"]["rows"] < round_trip["rows_before_restore"]["orders.orders"]


def test_after_the_restore_exactly_the_rows_of_the_backup_are_there(client, round_trip, backup_root):
    recorded = round_trip["manifest"]["tables"]
    assert table_rows(client) == {name: table["rows"] for name, table in recorded.items()}
    # the same checksums, read from the live lab by a second backup (no writes in between)
    rc, out = run_playbook("playbooks/backup.yml", "-e", f"backup_root={backup_root}", "-e", "backup_verify=false",
                           "-e", "backup_keep=5")
    assert rc == 0, out[-4000:]
    second = json.loads((backup_dirs(backup_root)[-1] / "manifest.json").read_text())
    assert second["tables"] == recorded


def test_the_services_serve_the_backups_rows_and_not_the_later_ones(round_trip):
    for user in round_trip["before"]["users"]:
        assert api("GET", f"/users/{user}").status_code == 200
    for order in round_trip["before"]["orders"]:
        assert api("GET", f"/orders/{order}").status_code == 200
    assert api("GET", f"/users/{round_trip['after']['user']}").status_code == 404
    assert api("GET", f"/orders/{round_trip['after']['order']}").status_code == 404


def test_redis_holds_the_restored_keys_from_its_rebuilt_aof(round_trip):
    assert redis(f"GET ecommerce:backup-probe-{RUN}", f"EXISTS ecommerce:after-backup-{RUN}") == ["before", "0"]
    # the AOF holds them: a restart of redis-cache (which loads only the AOF) keeps them
    subprocess.run(["docker", "restart", "redis-cache"], check=True, capture_output=True, timeout=60)
    poll("redis-cache answering after a restart", lambda: redis(f"GET ecommerce:backup-probe-{RUN}"),
         done=lambda out: out == ["before"], deadline=60, retry_on=(subprocess.CalledProcessError,))


def test_the_restore_stopped_only_what_had_to_stop(round_trip):
    before, after = round_trip["starts"], round_trip["starts_after"]
    unchanged = {"mysql-db", "load-balancer", "web-server-1", "web-server-2", "api-gateway-1", "api-gateway-2"}
    for name in unchanged:
        assert before[name] == after[name], f"{name} was restarted by the restore"
    for name in ("user-service-1", "order-service-1", "payment-service-1", "redis-cache"):
        assert before[name] != after[name], f"{name} kept writing during the restore"


# -- refusals: checked before anything changes ---------------------------------------------------

def _refused(client, backup, *extra):
    starts, rows = started_at(client), table_rows(client)
    rc, out = run_playbook("playbooks/restore.yml", "-e", f"backup={backup}", *extra)
    assert rc != 0, out[-3000:]
    assert started_at(client) == starts, "a refused restore restarted something"
    assert table_rows(client) == rows, "a refused restore changed the data"
    return out


def _resum(path):
    lines = []
    for line in (path / "SHA256SUMS").read_text().splitlines():
        name = line.split("  ")[1]
        lines.append(f"{hashlib.sha256((path / name).read_bytes()).hexdigest()}  {name}")
    (path / "SHA256SUMS").write_text("\n".join(lines) + "\n")


def test_a_damaged_archive_is_refused(client, round_trip, tmp_path):
    copy = tmp_path / round_trip["path"].name
    shutil.copytree(round_trip["path"], copy)
    dump = copy / "mysql.sql.gz.age"
    data = bytearray(dump.read_bytes())
    data[len(data) // 2] ^= 0xFF
    dump.write_bytes(bytes(data))
    out = _refused(client, copy)
    assert "mysql.sql.gz.age does not match its checksum" in out, out[-3000:]
    assert "nothing was changed" in out


def test_a_backup_of_another_stack_is_refused(client, round_trip, tmp_path):
    copy = tmp_path / "other"
    shutil.copytree(round_trip["path"], copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["stack"] = "another-lab"
    (copy / "manifest.json").write_text(json.dumps(manifest))
    _resum(copy)   # a sound backup, only of another stack
    out = _refused(client, copy)
    assert "it is a backup of the stack 'another-lab', not of 'ecommerce-molecule'" in out, out[-3000:]


def test_a_wrong_key_is_refused(client, round_trip, tmp_path):
    key = tmp_path / "other.key"
    subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True)
    out = _refused(client, round_trip["path"], "-e", f"backup_age_identity={key}")
    assert "the wrong key" in out and "AGE-SECRET-KEY" not in out, out[-3000:]
