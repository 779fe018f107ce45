# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The fault table of `make bench`: every fault of issue 11 under the course's load, on the
default lab (two replicas of the gateway, each service and the web servers) and, side by
side in the same run, on a plain one-replica deploy of the same stack (the control: the
same faults must fail requests there, or the table proves nothing).

For each fault: requests sent, failed (by kind), p99 of the run around the fault, and the
time from the fault until every container of the stack is healthy again. The load is the
load_test module's engine (plugins/module_utils/_load), eight clients through :8080.

    python3 bench/faults.py [inventory]   (bench/inventory by default)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import docker

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "collections"))
from ansible_collections.dockerlab.ecommerce.plugins.module_utils._load.runner import (  # noqa: E402
    LoadConfig, run_load)

INVENTORY = sys.argv[1] if len(sys.argv) > 1 else str(REPO / "bench" / "inventory")
STACK = os.environ.get("BENCH_STACK", "ecommerce-bench")
URL = "http://127.0.0.1:8080"
ORDER = {"user_id": "{user_id}", "items": [{"sku": "BENCH-1", "quantity": 1, "unit_price": "1.00"}]}
MIX = [
    {"name": "get_user", "method": "GET", "path": "/api/users/{user_id}", "weight": 6},
    {"name": "front_page", "method": "GET", "path": "/", "weight": 1},
    {"name": "create_order", "method": "POST", "path": "/api/orders/", "weight": 2, "body": ORDER,
     "idempotency_key": True},
]
ONE_REPLICA = {"api_gateway_replicas": 1, "user_service_replicas": 1, "order_service_replicas": 1,
               "payment_service_replicas": 1, "web_servers": 1}
CLIENT = docker.from_env(timeout=60)


def playbook(*args, extra=None):
    cmd = ["ansible-playbook", "-i", INVENTORY, *args]
    if extra:
        cmd += ["-e", json.dumps(extra)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-2000:])
        raise SystemExit(f"bench/faults.py: {' '.join(args)} failed")
    return proc.stdout


def first(component):
    containers = sorted(CLIENT.containers.list(all=True, filters={"label": [f"dockerlab.stack={STACK}",
                                                                            f"dockerlab.component={component}"]}),
                        key=lambda c: c.name)
    if not containers:
        raise SystemExit(f"bench/faults.py: no {component} container in stack {STACK}")
    return containers[0]


def all_healthy():
    for container in CLIENT.containers.list(all=True, filters={"label": f"dockerlab.stack={STACK}"}):
        health = container.attrs["State"].get("Health", {}).get("Status")
        if container.status != "running" or health not in (None, "healthy"):
            return False
    return True


def wait_all_healthy(deadline_s=180):
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if all_healthy():
            return True
        time.sleep(0.5)
    return False


class Load:
    def __init__(self, **options):
        self.config = LoadConfig(base_url=URL, concurrency=8, duration_s=300, timeout_s=15, mix=MIX, setup_users=5,
                                 seed=7, **options)
        self.stop = threading.Event()
        self.result = None
        self.thread = threading.Thread(target=lambda: setattr(self, "result", run_load(self.config, self.stop)),
                                       daemon=True)

    def __enter__(self):
        self.thread.start()
        time.sleep(3)
        return self

    def __exit__(self, *exc):
        time.sleep(2)
        self.stop.set()
        self.thread.join(60)


# Each fault: inject it, undo it (or let the deploy do it); the timer runs from the injection
# until every container of the stack is healthy again.
def gateway_restart():
    first("api-gateway").restart(timeout=10)


def down_then_up(component, kill=False, down_s=5):
    container = first(component)
    if kill:
        container.kill()
    else:
        container.stop(timeout=10)
    time.sleep(down_s)
    container.start()


def service_kill():
    down_then_up("user-service", kill=True)


def web_server_stop():
    down_then_up("web-server")


def rolling_update():
    playbook("site.yml", extra=dict(CURRENT, backend_log_level="DEBUG"))


def redis_restart():
    down_then_up("redis-cache", down_s=3)


def mysql_restart():
    first("mysql-db").restart(timeout=30)


FAULTS = [
    ("gateway replica restarted", gateway_restart, {}),
    ("service replica killed, started again", service_kill, {}),
    ("web server stopped, started again", web_server_stop, {}),
    ("rolling update (env of every app service)", rolling_update, {}),
    ("redis-cache stopped and started", redis_restart, {}),
    ("mysql-db restarted (client honours Retry-After)", mysql_restart, {"retry_after_max": 20}),
]
CURRENT = {}


def measure(variant, extra):
    global CURRENT  # pylint: disable=global-statement
    CURRENT = dict(extra)
    playbook("site.yml", extra=extra or None)
    rows = []
    for name, inject, options in FAULTS:
        if not wait_all_healthy():
            raise SystemExit(f"bench/faults.py: the {variant} lab is not healthy before '{name}'")
        with Load(**options) as load:
            started = time.monotonic()
            inject()
            healthy = wait_all_healthy()
            recovered = time.monotonic() - started if healthy else None
        result = load.result
        rows.append({"variant": variant, "fault": name, "sent": result["sent"], "failed": result["failed"],
                     "errors": result["errors"], "p99_ms": result["latency_ms"]["p99"],
                     "healthy_after_s": round(recovered, 1) if recovered is not None else None})
        if inject is rolling_update:
            playbook("site.yml", extra=extra or None)  # back to the variant's own settings
        row = rows[-1]
        print(f"  {variant:<13} {name:<48} {row['sent']:>7} {row['failed']:>7} {row['p99_ms'] or 0:>9.1f} "
              f"{row['healthy_after_s'] if row['healthy_after_s'] is not None else 'never':>9}", flush=True)
    return rows


def main():
    print(f"  {'lab':<13} {'fault':<48} {'sent':>7} {'failed':>7} {'p99 ms':>9} {'healthy':>9}")
    rows = measure("2 replicas", {}) + measure("1 replica", ONE_REPLICA)
    playbook("site.yml")  # the bench stack back to the defaults
    default = [row for row in rows if row["variant"] == "2 replicas"]
    control = [row for row in rows if row["variant"] == "1 replica"]
    ok = all(row["failed"] == 0 for row in default)
    print()
    print(f"  default lab, 0 failed requests in every fault: {'yes' if ok else 'NO'}")
    for row in default:
        if row["failed"]:
            print(f"    {row['fault']}: {row['failed']} failed {row['errors']}")
    shown = [row["fault"] for row in control if row["failed"]]
    print(f"  one-replica control, faults that failed requests: {len(shown)} of {len(control)}"
          f"{' (' + '; '.join(shown) + ')' if shown else ''}")
    for row in control:
        if not row["failed"]:
            print(f"    {row['fault']}: no failure on one replica either (a fault only redundancy can hide "
                  "shows here; one that the retries hide does not)")
    out = REPO / "bench" / "results" / f"faults-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(rows, indent=2))
    print(f"  written: {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
