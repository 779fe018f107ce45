"""The idempotence run (a second converge) must restart no container: State.StartedAt of
every container is still what it was right after the first converge."""

import os

from conftest import load_json, started_at


def test_no_container_restarted_by_the_second_run(client):
    baseline = load_json(os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "started_at.json"))
    assert {"mysql-db", "redis-cache"} <= set(baseline), baseline
    assert started_at(client) == baseline
