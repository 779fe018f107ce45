"""The backup catalog (module_utils/_backup/catalog.py) on real files, with the real age for encryption."""

import datetime
import gzip
import io
import json
import os
import shutil
import subprocess
import tarfile

import pytest

from ansible_collections.dockerlab.ecommerce.plugins.module_utils._backup import catalog
from ansible_collections.dockerlab.ecommerce.plugins.module_utils._backup.catalog import BackupError

STACK = "lab"
TABLES = "users\tusers\t2\t123\norders\torders\t5\t456\n"


def run(argv, data=None):
    proc = subprocess.run(argv, input=data, capture_output=True, check=False)
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode()


@pytest.fixture(scope="module")
def age_key(tmp_path_factory):
    if shutil.which("age") is None:
        pytest.fail("age is not installed: make tools installs it (apt-get install age)")
    key = tmp_path_factory.mktemp("key") / "identity"
    subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True)
    return key, catalog.recipient_of(str(key), run)


def make_parts(path, dump_complete=True):
    path.mkdir(parents=True, exist_ok=True)
    with gzip.open(path / "mysql.sql.gz", "wb") as handle:
        handle.write(b"CREATE DATABASE users;\n" + (b"-- Dump completed on 2026-12-03\n" if dump_complete else b""))
    (path / "redis.rdb").write_bytes(b"REDIS0009" + os.urandom(64))
    with tarfile.open(path / "volume-logs.tar.gz", "w:gz") as archive:
        for name in ("a.log", "b.log"):
            info = tarfile.TarInfo(name)
            info.size = 3
            archive.addfile(info, io.BytesIO(b"log"))
    return {
        "stack": STACK,
        "parts": [
            {"name": "mysql", "file": "mysql.sql.gz", "kind": "mysql-dump", "engine": "mariadb",
             "engine_version": "10.11.6-MariaDB"},
            {"name": "redis", "file": "redis.rdb", "kind": "redis-rdb", "engine": "redis", "engine_version": "7.0.15"},
            {"name": "volume logs", "file": "volume-logs.tar.gz", "kind": "volume-archive", "volume": "logs"},
        ],
    }


def sealed(tmp_path, recipient=None, name="lab-20261203T101500Z"):
    path = tmp_path / name
    catalog.seal(str(path), make_parts(path), recipient, run, TABLES)
    return path


def test_a_sealed_backup_checks_clean_and_records_what_each_part_is(tmp_path):
    path = sealed(tmp_path)
    manifest, problems = catalog.check(str(path), STACK, {"mysql": ["mariadb", "10.11.14-MariaDB"]})
    assert problems == []
    assert oct(path.stat().st_mode & 0o777) == "0o700"
    assert manifest["tables"] == {"users.users": {"rows": 2, "checksum": "123"},
                                  "orders.orders": {"rows": 5, "checksum": "456"}}
    volume = next(part for part in manifest["parts"] if part["kind"] == "volume-archive")
    assert volume["entries"] == 2 and volume["bytes"] > 0 and len(volume["sha256"]) == 64
    sums = (path / catalog.SUMS).read_text()
    assert "manifest.json" in sums and "redis.rdb" in sums
    # the format sha256sum -c reads
    assert subprocess.run(["sha256sum", "-c", "--quiet", catalog.SUMS], cwd=path, check=False).returncode == 0


def test_a_changed_or_missing_file_is_named(tmp_path):
    path = sealed(tmp_path)
    (path / "redis.rdb").write_bytes(b"changed")
    (path / "volume-logs.tar.gz").unlink()
    _manifest, problems = catalog.check(str(path), STACK)
    assert "redis.rdb does not match its checksum (damaged or changed since the backup)" in problems
    assert "volume-logs.tar.gz is missing" in problems


def test_another_stack_and_another_engine_are_refused(tmp_path):
    path = sealed(tmp_path)
    _manifest, problems = catalog.check(str(path), "other", {"mysql": ["mysql", "8.4.3"], "redis": ["redis", "7.4.1"]})
    assert any("backup of the stack 'lab', not of 'other'" in p for p in problems)
    assert any("part mysql was made by mariadb 10.11.6-MariaDB, but the lab runs mysql 8.4.3" in p for p in problems)
    assert any("part redis was made by redis 7.0.15, but the lab runs redis 7.4.1" in p for p in problems)


def test_the_same_engine_takes_a_newer_patch_release_only():
    assert catalog.same_engine(("mariadb", "10.11.14-MariaDB"), ("mariadb", "10.11.6-MariaDB-0+deb12u1"))
    assert not catalog.same_engine(("mariadb", "11.4.2"), ("mariadb", "10.11.6"))
    assert not catalog.same_engine(("mysql", "10.11.6"), ("mariadb", "10.11.6"))


def test_no_directory_or_no_manifest_says_so(tmp_path):
    with pytest.raises(BackupError, match="is no directory"):
        catalog.read_manifest(str(tmp_path / "nothing"))
    with pytest.raises(BackupError, match="holds no manifest.json"):
        catalog.read_manifest(str(tmp_path))
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(BackupError, match="cannot be read as JSON"):
        catalog.read_manifest(str(tmp_path))


def test_encrypted_parts_unpack_with_the_right_key_only(tmp_path, age_key):
    key, recipient = age_key
    path = sealed(tmp_path, recipient)
    assert sorted(p.name for p in path.iterdir() if p.suffix == ".age") == [
        "mysql.sql.gz.age", "redis.rdb.age", "volume-logs.tar.gz.age"]
    assert not (path / "redis.rdb").exists()
    manifest, problems = catalog.check(str(path), STACK, identity=str(key), run=run)
    assert problems == [] and manifest["encryption"] == {"tool": "age", "recipient": recipient}
    catalog.unpack(str(path), str(tmp_path / "plain"), str(key), run)
    assert catalog.integrity_problems(str(tmp_path / "plain"), manifest) == []

    other = tmp_path / "other.key"
    subprocess.run(["age-keygen", "-o", str(other)], check=True, capture_output=True)
    _manifest, problems = catalog.check(str(path), STACK, identity=str(other), run=run)
    assert len(problems) == 1 and "the wrong key" in problems[0] and recipient in problems[0]
    _manifest, problems = catalog.check(str(path), STACK, identity=str(tmp_path / "absent"), run=run)
    assert "does not exist (backup_age_identity)" in problems[0]


def test_unpack_refuses_a_damaged_backup_before_decrypting(tmp_path):
    path = sealed(tmp_path)
    (path / "mysql.sql.gz").write_bytes(b"x")
    with pytest.raises(BackupError, match="mysql.sql.gz does not match its checksum"):
        catalog.unpack(str(path), str(tmp_path / "plain"))
    assert not (tmp_path / "plain").exists()


def test_integrity_finds_a_dump_cut_short_and_an_archive_that_does_not_read(tmp_path):
    plain = tmp_path / "plain"
    manifest = make_parts(plain, dump_complete=False)
    manifest["parts"][2]["entries"] = 3
    problems = catalog.integrity_problems(str(plain), manifest)
    assert "mysql.sql.gz ends without mysqldump's completion marker: the dump is cut short" in problems
    assert "volume-logs.tar.gz holds 2 entries, the manifest records 3" in problems
    (plain / "volume-logs.tar.gz").write_bytes((plain / "volume-logs.tar.gz").read_bytes()[:20])
    assert any("volume-logs.tar.gz cannot be read to its end" in p for p in catalog.integrity_problems(str(plain), manifest))


def test_table_differences_name_each_table():
    recorded = catalog.parse_tables(TABLES)
    assert catalog.table_differences(recorded, recorded) == []
    restored = catalog.parse_tables("users\tusers\t2\t999\nextra\tt\t1\t1\n")
    assert catalog.table_differences(recorded, restored) == [
        "extra.t appears after the restore but is not in the manifest",
        "orders.orders is missing after the restore",
        "users.users has its 2 rows but their checksum differs from the manifest's",
    ]


def _backup(root, minutes, ok):
    when = datetime.datetime(2026, 12, 3, 10, 0, tzinfo=datetime.timezone.utc) + datetime.timedelta(minutes=minutes)
    path = root / catalog.backup_name(STACK, when)
    path.mkdir()
    if ok is not None:
        (path / catalog.VERIFIED).write_text(json.dumps({"ok": ok}))
    return path.name


def test_retention_keeps_the_newest_verified_and_never_counts_a_failed_one(tmp_path):
    names = [_backup(tmp_path, minute, ok) for minute, ok in
             [(0, True), (1, True), (2, False), (3, True), (4, None), (5, False)]]
    (tmp_path / "other-20261203T100000Z").mkdir()    # another stack's: never touched
    (tmp_path / "notes").mkdir()
    kept, removed = catalog.retention(str(tmp_path), STACK, 2)
    # the two newest verified (minutes 3 and 1) and everything newer than the older of them stay
    assert [item["name"] for item in removed] == [names[0]]
    assert [item["name"] for item in kept] == names[:0:-1]
    # one verified backup and keep=1: it stays, whatever failed after it
    for name in names[:4]:
        shutil.rmtree(tmp_path / name)
    kept, removed = catalog.retention(str(tmp_path), STACK, 1)
    assert removed == []
    with pytest.raises(BackupError, match="keep at least 1"):
        catalog.retention(str(tmp_path), STACK, 0)


def test_a_backup_name_carries_its_utc_time():
    when = datetime.datetime(2026, 12, 3, 10, 15, tzinfo=datetime.timezone.utc)
    assert catalog.backup_name("lab", when) == "lab-20261203T101500Z"
    assert catalog.name_time("lab", "lab-20261203T101500Z") == when
    assert catalog.name_time("lab", "lab-molecule-20261203T101500Z") is None


def test_a_backup_that_did_not_verify_is_refused_unless_asked_for(tmp_path):
    path = sealed(tmp_path)
    assert catalog.check(str(path), STACK)[1] == []          # never verified: restorable
    catalog.record_verification(str(path), {"ok": False, "problems": ["orders.orders has 4 rows after the restore"]})
    problems = catalog.check(str(path), STACK)[1]
    assert problems == ["it did not verify when it was taken (orders.orders has 4 rows after the restore): restore "
                        "another backup, or this one anyway with -e backup_restore_unverified=true"]
    assert catalog.check(str(path), STACK, unverified_ok=True)[1] == []
    catalog.record_verification(str(path), {"ok": True, "problems": []})
    assert catalog.check(str(path), STACK)[1] == []
