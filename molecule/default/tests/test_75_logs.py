"""The offline log pipeline: every container's output reaches the log collector through
Docker's syslog driver, one file per container in the logs volume, and the request id of
one request through :8080 is in the load balancer's, the gateway's and the service's lines."""

import json
import time
import urllib.request
import uuid

COLLECTOR = "log-collector"
LOG_DIR = "/var/log/ecommerce"


def collected(client, pattern):
    """The log files (container names) whose lines contain ``pattern``."""
    result = client.containers.get(COLLECTOR).exec_run(["sh", "-c", f"grep -lF -- '{pattern}' {LOG_DIR}/*.log || true"])
    return {line.rsplit("/", 1)[-1][:-len(".log")] for line in result.output.decode().split()}


def lines_with(client, name, pattern):
    result = client.containers.get(COLLECTOR).exec_run(["grep", "-F", "--", pattern, f"{LOG_DIR}/{name}.log"])
    return result.output.decode().splitlines()


def test_containers_log_through_the_collector(client):
    for name in ("load-balancer", "api-gateway", "user-service", "mysql-db"):
        attrs = client.containers.get(name).attrs["HostConfig"]["LogConfig"]
        assert attrs["Type"] == "syslog", (name, attrs)
    # The collector itself keeps Docker's default driver (it cannot ship to itself).
    assert client.containers.get(COLLECTOR).attrs["HostConfig"]["LogConfig"]["Type"] == "json-file"
    files = client.containers.get(COLLECTOR).exec_run(["ls", LOG_DIR]).output.decode().split()
    assert {"load-balancer.log", "api-gateway.log", "user-service.log", "mysql-db.log"} <= set(files), files


def test_a_request_id_is_traced_through_every_hop(client):
    request_id = f"trace-{uuid.uuid4()}"
    request = urllib.request.Request("http://127.0.0.1:8080/api/users/health", headers={"X-Request-ID": request_id})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        assert response.headers["X-Request-ID"] == request_id
    hops = {"load-balancer", "api-gateway", "user-service"}
    deadline = time.monotonic() + 30
    while not hops <= collected(client, request_id) and time.monotonic() < deadline:
        time.sleep(1)
    assert hops <= collected(client, request_id), collected(client, request_id)
    # Each hop's line is its own JSON object, intact after the syslog trip.
    for name in hops:
        line = lines_with(client, name, request_id)[0]
        document = json.loads(line[line.index("{"):])
        assert document["request_id"] == request_id, (name, line)
