"""The offline log pipeline: every container's output reaches the log collector through
Docker's syslog driver, one file per container in the logs volume, and the request id of
one request through :8080 is in the load balancer's, the gateway's and the service's lines."""

import json
import urllib.request
import uuid

from conftest import poll, replica_names

COLLECTOR = "log-collector"
LOG_DIR = "/var/log/ecommerce"


def log_files(client):
    """The files in the collector's log directory."""
    return set(client.containers.get(COLLECTOR).exec_run(["ls", LOG_DIR]).output.decode().split())


def lines_with(client, name, pattern):
    """The lines of container ``name``'s collected log that contain ``pattern`` (none yet: [])."""
    result = client.containers.get(COLLECTOR).exec_run(["grep", "-F", "--", pattern, f"{LOG_DIR}/{name}.log"])
    return result.output.decode().splitlines() if result.exit_code == 0 else []


def test_containers_log_through_the_collector(client):
    for name in ("load-balancer", "api-gateway-1", "user-service-2", "mysql-db"):
        attrs = client.containers.get(name).attrs["HostConfig"]["LogConfig"]
        assert attrs["Type"] == "syslog", (name, attrs)
    # The collector itself keeps Docker's default driver (it cannot ship to itself).
    assert client.containers.get(COLLECTOR).attrs["HostConfig"]["LogConfig"]["Type"] == "json-file"
    # A container's file appears with its first line through syslog.
    expected = {"load-balancer.log", "api-gateway-1.log", "api-gateway-2.log", "user-service-1.log",
                "user-service-2.log", "mysql-db.log"}
    poll("a log file per container in the collector", lambda: log_files(client),
         done=lambda files: expected <= files, deadline=30)


def test_a_request_id_is_traced_through_every_hop(client):
    request_id = f"trace-{uuid.uuid4()}"
    request = urllib.request.Request("http://127.0.0.1:8080/api/users/health", headers={"X-Request-ID": request_id})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        assert response.headers["X-Request-ID"] == request_id
    # one replica of the gateway and of user-service took it: every replica's file is read
    hops = {"load-balancer": ["load-balancer"], "api-gateway": replica_names("api-gateway"),
            "user-service": replica_names("user-service")}
    found = poll(f"the request id in every hop's collected log ({LOG_DIR})",
                 lambda: {hop: [line for name in names for line in lines_with(client, name, request_id)]
                          for hop, names in hops.items()},
                 done=lambda found: all(found.values()), deadline=30)
    # Each hop's line is its own JSON object, intact after the syslog trip.
    for name, lines in found.items():
        line = lines[0]
        document = json.loads(line[line.index("{"):])
        assert document["request_id"] == request_id, (name, line)
