"""Secrets are generated once, kept with mode 0600 outside the repository, and never
shown: not in Ansible's output, not in `docker inspect`."""

import json
import stat

from conftest import ACCOUNTS, REPO, SECRETS_DIR, STACK, recap_changed, run_playbook, secret

SECRET_FILES = (["mysql_root_password", "redis_password", "redis_exporter_password", "redis_backup_password"]
                + ["mysql_" + u for u in ACCOUNTS])


def test_secret_files_are_private_and_outside_the_repository():
    assert not str(SECRETS_DIR.resolve()).startswith(str(REPO.resolve()))
    assert stat.S_IMODE(SECRETS_DIR.stat().st_mode) == 0o700
    for name in SECRET_FILES:
        path = SECRETS_DIR / name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, name
        assert len(secret(name)) == 32 and secret(name).isalnum(), name


def test_no_secret_in_docker_inspect(client):
    dump = json.dumps([c.attrs for c in client.containers.list(filters={"label": "dockerlab.stack=" + STACK})])
    for name in SECRET_FILES:
        assert secret(name) not in dump, name


def test_a_rerun_changes_nothing_and_prints_no_secret():
    rc, out = run_playbook("site.yml", "-vvv", "--diff")
    assert rc == 0, out[-3000:]
    assert recap_changed(out) == 0, out[-3000:]
    for name in SECRET_FILES:
        assert secret(name) not in out, name
