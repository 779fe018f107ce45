# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The data role's MySQL volume check (roles/data/tasks/mysql_volume.yml) on real volumes: one
initialised by the offline MariaDB image is refused to MySQL 8.4 (the upstream profile) with
a message naming the way out, and left untouched; the same volume passes for MariaDB, and an
empty one passes for either."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import uuid

import docker
import pytest
import yaml

from polling import poll_until  # pylint: disable=import-error  # tests/polling.py

ROOT = pathlib.Path(__file__).resolve().parents[3]
PLAYBOOK = pathlib.Path(__file__).with_name("playbooks") / "mysql_volume.yml"


def _latest(client, repository):
    images = sorted((i for i in client.images.list(name=repository) if i.tags),
                    key=lambda i: i.attrs.get("Created", ""), reverse=True)
    if not images:
        pytest.fail(f"no local {repository}:* image: `make images` builds it")
    return images[0].tags[0]


def _check(volumes, engine, profile):
    # the stack's volumes, these two replaced (the data role's dependencies read them all)
    stack_volumes = dict(yaml.safe_load((ROOT / "roles/stack/defaults/main.yml").read_text())["stack_volumes"], **volumes)
    command = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), str(PLAYBOOK),
               "-e", json.dumps({"stack_volumes": stack_volumes, "data_mysql_engine": engine, "images_profile": profile,
                                 "stack_precheck_deferred": True})]
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false")
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture(scope="module")
def volumes():
    client = docker.from_env(timeout=120)
    suffix = uuid.uuid4().hex[:6]
    names = {"db_data": f"dlguard-mysql-{suffix}", "db_data_mariadb": f"dlguard-mariadb-{suffix}"}
    made = [client.volumes.create(name) for name in names.values()]
    server = client.containers.run(
        _latest(client, "dockerlab/ecommerce-mysql"), name=f"dlguard-init-{suffix}", detach=True,
        environment={"MYSQL_ROOT_PASSWORD": "dlguard-Root-pw"},
        volumes={names["db_data"]: {"bind": "/var/lib/mysql", "mode": "rw"}}, network_mode="none")
    try:
        # MariaDB's own files in the datadir, as a lab made offline by an earlier version leaves them
        # the real server answers over TCP only once initialisation is over (the entrypoint's
        # temporary one has no networking); then stop it, as a lab torn down leaves the volume
        ready, _last = poll_until(
            lambda: server.exec_run(["mysqladmin", "--protocol=tcp", "-h", "127.0.0.1", "-uroot", "ping"],
                                    environment={"MYSQL_PWD": "dlguard-Root-pw"}).exit_code == 0, deadline=120)
        if not ready:
            pytest.fail("MariaDB never finished initialising its datadir:\n" + server.logs(tail=30).decode(errors="replace"))
        server.stop(timeout=30)
        yield client, names
    finally:
        server.remove(force=True)
        for volume in made:
            volume.remove(force=True)
        client.close()


def _files(client, volume):
    output = client.containers.run(_latest(client, "dockerlab/ecommerce-base"), ["ls", "-A", "/data"], remove=True,
                                   network_mode="none", volumes={volume: {"bind": "/data", "mode": "ro"}})
    return sorted(output.decode().split())


def test_a_mariadb_datadir_is_refused_to_mysql(volumes):
    client, names = volumes
    before = _files(client, names["db_data"])
    result = _check(names, "mysql", "upstream")
    assert result.returncode != 0
    output = " ".join(result.stdout.split())
    assert (f"{names['db_data']} holds a mariadb datadir, but the upstream profile runs mysql, which cannot start on it "
            "(data_mysql_volumes.mysql is db_data). Nothing was changed") in output, output[-3000:]
    assert "image_source=offline" in output and f"docker volume rm {names['db_data']}" in output
    assert _files(client, names["db_data"]) == before and "aria_log_control" in before


def test_the_control_the_same_volume_passes_for_mariadb_and_an_empty_one_for_mysql(volumes):
    _client, names = volumes
    # MariaDB on its own datadir: fine
    mariadb_on_it = dict(names, db_data_mariadb=names["db_data"])
    result = _check(mariadb_on_it, "mariadb", "offline")
    assert result.returncode == 0, result.stdout[-3000:]
    # MySQL on an empty volume: fine
    fresh = dict(names, db_data=names["db_data_mariadb"])
    result = _check(fresh, "mysql", "upstream")
    assert result.returncode == 0, result.stdout[-3000:]


def test_starting_afresh_while_another_volume_holds_this_engines_data_is_refused(volumes):
    # a 0.2 lab: MariaDB's data in the course's volume, MariaDB's own volume new and empty
    client, names = volumes
    result = _check(names, "mariadb", "offline")
    assert result.returncode != 0
    output = " ".join(result.stdout.split())
    assert (f"{names['db_data_mariadb']} (data_mysql_volumes.mariadb) holds no datadir yet, but {names['db_data']} "
            "holds a mariadb datadir") in output, output[-3000:]
    assert "set data_mysql_volumes.mariadb to db_data" in output, output[-3000:]
    assert _files(client, names["db_data_mariadb"]) == []
