# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""stack_files writes real files: only what differs, atomically, with owner and mode,
backups on request, secrets never in the result or a diff."""

from __future__ import annotations

import json
import os
import stat

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.dockerlab.ecommerce.plugins.modules import stack_files
from test_topology_precheck import module_side  # noqa: F401  pylint: disable=unused-import

OWNER = str(os.getuid())


def run(capsys, files, **extra):
    """Run the module as the action calls it: entries marked secret go to `secrets`."""
    plain = [{k: v for k, v in f.items() if k != "secret"} for f in files if not f.get("secret")]
    secret = [{k: v for k, v in f.items() if k != "secret"} for f in files if f.get("secret")]
    args = {"files": plain, "secrets": secret, **extra}
    with patch_module_args(args), pytest.raises(SystemExit) as exit_info:
        stack_files.main()
    return exit_info.value.code != 0, json.loads(capsys.readouterr().out)


def entry(path, content, **extra):
    return {"path": str(path), "content": content, "owner": OWNER, **extra}


def test_writes_creates_parents_then_changes_nothing(capsys, tmp_path):
    conf = tmp_path / "redis-cache" / "redis.conf"
    secret = tmp_path / "redis-cache" / "secrets" / "auth.conf"
    files = [entry(conf, "port 6379\n"), entry(secret, "requirepass s3cr3t\n", mode="0400", secret=True)]
    failed, result = run(capsys, files)
    assert not failed and result["changed"]
    assert conf.read_text() == "port 6379\n" and secret.read_text() == "requirepass s3cr3t\n"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o400
    assert stat.S_IMODE(secret.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(conf.parent.stat().st_mode) == 0o755
    assert "s3cr3t" not in json.dumps(result)
    failed, again = run(capsys, files)
    assert not failed and not again["changed"]
    assert [f["changed"] for f in again["files"]] == [False, False]
    assert again["files"][0]["checksum"] == result["files"][0]["checksum"]


def test_mode_drift_is_repaired_without_rewriting(capsys, tmp_path):
    conf = tmp_path / "a.conf"
    run(capsys, [entry(conf, "x\n")])
    inode = conf.stat().st_ino
    conf.chmod(0o600)
    failed, result = run(capsys, [entry(conf, "x\n")])
    assert not failed and result["changed"]
    assert stat.S_IMODE(conf.stat().st_mode) == 0o644 and conf.stat().st_ino == inode


def test_backup_keeps_the_previous_version(capsys, tmp_path):
    conf = tmp_path / "default.conf"
    run(capsys, [entry(conf, "old\n")])
    failed, result = run(capsys, [entry(conf, "new\n")], backup=True)
    assert not failed
    backup = result["files"][0]["backup_file"]
    assert open(backup).read() == "old\n" and conf.read_text() == "new\n"


def test_check_mode_writes_nothing_and_diff_hides_secrets(capsys, tmp_path):
    conf, secret = tmp_path / "c.conf", tmp_path / "s"
    files = [entry(conf, "a\n"), entry(secret, "pw\n", secret=True)]
    failed, result = run(capsys, files, _ansible_check_mode=True, _ansible_diff=True)
    assert not failed and result["changed"]
    assert not conf.exists() and not secret.exists()
    assert [d["after"] for d in result["diff"]] == ["a\n"]


@pytest.mark.parametrize("bad, message", [
    ({"path": "relative.conf"}, "is not absolute"),
    ({"mode": "rw-r--r--"}, "is not an octal mode"),
    ({"owner": "no-such-user-here"}, "is no user on this host"),
    ({"content": None}, "has no content"),
])
def test_bad_entries_fail_with_a_message_before_writing(capsys, tmp_path, bad, message):
    good = entry(tmp_path / "first.conf", "x\n")
    failed, result = run(capsys, [good, dict(entry(tmp_path / "b.conf", "y\n"), **bad)])
    assert failed and message in result["msg"]
    assert not (tmp_path / "first.conf").exists()
