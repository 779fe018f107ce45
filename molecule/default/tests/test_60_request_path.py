"""The request path for real, through the load balancer on 127.0.0.1:8080: the demo page,
the gateway and the three services, their rows in MySQL, the Redis cache, round robin,
load, losing a web server under load, network segmentation, bad input and request ids.

Runs against the Molecule stack by default; DOCKERLAB_TEST_STACK=ecommerce points it at
the lab deployed with `make up` (same container names, its own secrets directory)."""

import json
import os
import re
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

import conftest
import pytest
import requests

from conftest import REPLICATED, image_of, poll, replica_names, run_in_network, wait_healthy

FRONT = "http://127.0.0.1:8080"
STACK = os.environ.get("DOCKERLAB_TEST_STACK", conftest.STACK)
SECRETS_DIR = Path.home() / ".config" / "dockerlab" / STACK / "secrets"
RUN = uuid.uuid4().hex[:10]
TIMEOUT = 10  # seconds, for one HTTP request
SERVICES = {"users": "user-service", "orders": "order-service", "payments": "payment-service"}
MISSING_ID = 2 ** 62


def stack_secret(name):
    return (SECRETS_DIR / name).read_text().strip()


def _email(tag):
    return f"verify-{RUN}-{tag}-{uuid.uuid4().hex[:6]}@example.test"


def api(method, path, **kwargs):
    kwargs.setdefault("timeout", TIMEOUT)
    return requests.request(method, FRONT + "/api" + path, **kwargs)


def create_user(tag="user"):
    resp = api("POST", "/users/", json={"name": f"Verify {RUN} {tag}", "email": _email(tag)})
    assert resp.status_code == 201, resp.text
    return resp.json()


def create_order(user_id, quantity=2, unit_price="9.99"):
    resp = api("POST", "/orders/", json={
        "user_id": user_id, "items": [{"name": f"Widget {RUN}", "quantity": quantity, "unit_price": unit_price}]})
    assert resp.status_code == 201, resp.text
    return resp.json()


def pay(order_id, amount, key=None, method="credit_card"):
    headers = {"Idempotency-Key": key} if key else {}
    return api("POST", "/payments/", json={"order_id": order_id, "amount": amount, "method": method},
               headers=headers)


def mysql(client, queries):
    """Run {account: sql} in one throwaway container on the database network, each as the
    service's own account in its own database; return {account: [rows of columns]}."""
    script = []
    for account, sql in queries.items():
        database = conftest.ACCOUNTS[account]
        script.append(f'echo "== {account}"; MYSQL_PWD="$PW_{account.upper()}" '
                      f'mysql -h mysql-db -u {account} {database} -N -B -e "{sql}" || echo "FAILED {account}"')
    env = {"PW_" + a.upper(): stack_secret("mysql_" + a) for a in queries}
    rc, out = run_in_network(client, "ecommerce-database", image_of(client, "mysql-db"), "; ".join(script), env)
    assert rc == 0 and "FAILED" not in out, out
    rows, current = {}, None
    for line in out.splitlines():
        if line.startswith("== "):
            current = line[3:].strip()
            rows[current] = []
        elif current and line.strip():
            rows[current].append(line.split("\t"))
    return rows


def assert_json_error(resp, status, field=None):
    assert resp.status_code == status, (resp.status_code, resp.text[:500])
    assert resp.headers.get("Content-Type", "").startswith("application/json"), resp.headers
    body = resp.json()
    assert isinstance(body.get("error"), str) and body["error"], body
    assert body.get("request_id"), body
    if field is not None:
        assert body.get("field") == field, body
    return body


def served_by(resp):
    return resp.headers.get("X-Served-By")


def web_servers(client):
    return sorted(c.name for c in client.containers.list(filters={"label": "dockerlab.stack=" + STACK})
                  if re.fullmatch(r"web-server-\d+", c.name))


def request_id_headers(resp):
    return resp.raw.headers.getlist("X-Request-ID")


# -- the stack under test ------------------------------------------------------------------------

def test_the_stack_under_test_is_running(client):
    names = {"load-balancer", "web-server-1", "web-server-2", "mysql-db", "redis-cache",
             *(name for component in REPLICATED for name in replica_names(component))}
    running = {c.name: c for c in client.containers.list(filters={"label": "dockerlab.stack=" + STACK})}
    assert names <= set(running), "not running in stack %s: %s" % (STACK, sorted(names - set(running)))
    assert SECRETS_DIR.is_dir(), SECRETS_DIR


# -- 1-3: the page and health --------------------------------------------------------------------

def test_front_page_title_and_headers():
    resp = requests.get(FRONT + "/", timeout=TIMEOUT)
    assert resp.status_code == 200
    title = re.search(r"<title>(.*?)</title>", resp.text, re.S | re.I)
    assert title and "E-commerce" in title.group(1), resp.text[:500]
    assert re.fullmatch(r"web-server-\d+", served_by(resp) or ""), resp.headers
    assert resp.headers.get("X-Upstream"), resp.headers


def test_system_status_is_healthy_everywhere():
    resp = api("GET", "/system/status")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["gateway"] == "healthy", body
    assert body["status"] == "healthy", body
    assert body["timestamp"], body
    assert set(body["services"]) == set(SERVICES.values()), body
    for name, service in body["services"].items():
        assert service["status"] == "healthy", (name, service)


@pytest.mark.parametrize("kind", sorted(SERVICES))
def test_each_service_health_through_the_gateway(kind):
    resp = api("GET", f"/{kind}/health")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["service"] == SERVICES[kind], body
    assert body["status"] == "healthy", body
    assert body["timestamp"] and body["uptime"] >= 0, body
    assert body["checks"] and all(v == "ok" for v in body["checks"].values()), body


# -- 4: a user, an order, a payment, and their rows ----------------------------------------------

def test_user_order_payment_end_to_end_and_rows_in_mysql(client):
    user = create_user("e2e")
    assert isinstance(user["id"], int) and user["email"].startswith(f"verify-{RUN}-e2e-"), user

    order = create_order(user["id"], quantity=3, unit_price="4.25")
    assert order["status"] == "pending", order
    assert order["total"] == "12.75", order
    assert order["user_id"] == user["id"], order

    key = f"verify-{RUN}-e2e"
    resp = pay(order["id"], order["total"], key)
    assert resp.status_code == 201, resp.text
    payment = resp.json()
    assert payment["order_id"] == order["id"] and payment["amount"] == "12.75", payment
    assert payment["status"] == "completed", payment

    resp = api("GET", f"/orders/{order['id']}")
    assert resp.status_code == 200, resp.text
    paid = resp.json()
    assert paid["status"] == "paid" and paid["payment_id"] == payment["id"], paid

    rows = mysql(client, {
        "user_service": f"SELECT id, email FROM users WHERE id = {user['id']}",
        "order_service": f"SELECT o.id, o.user_id, o.total, o.status, o.payment_id, COUNT(i.id) FROM orders o "
                         f"JOIN order_items i ON i.order_id = o.id WHERE o.id = {order['id']} GROUP BY o.id",
        "payment_service": f"SELECT id, order_id, amount, status, idempotency_key FROM payments "
                           f"WHERE id = {payment['id']}",
    })
    assert rows["user_service"] == [[str(user["id"]), user["email"]]], rows
    assert rows["order_service"] == [
        [str(order["id"]), str(user["id"]), "12.75", "paid", str(payment["id"]), "1"]], rows
    assert rows["payment_service"] == [[str(payment["id"]), str(order["id"]), "12.75", "completed", key]], rows


# -- 5: the Redis cache --------------------------------------------------------------------------

def test_second_read_is_a_cache_hit_and_a_write_invalidates_it(client):
    user = create_user("cache")
    path = f"/users/{user['id']}"
    first, second = api("GET", path), api("GET", path)
    assert (first.status_code, first.headers.get("X-Cache")) == (200, "MISS"), first.headers
    assert (second.status_code, second.headers.get("X-Cache")) == (200, "HIT"), second.headers
    assert first.json() == second.json() == user

    # the entry is in Redis, under the service's prefix
    rc, out = run_in_network(client, "ecommerce-database", image_of(client, "redis-cache"),
                             f'REDISCLI_AUTH="$PW" redis-cli --no-auth-warning -h redis-cache --user ecommerce '
                             f'exists ecommerce:user:{user["id"]}',
                             {"PW": stack_secret("redis_password")})
    assert rc == 0 and out.strip() == "1", out

    renamed = f"Verify {RUN} renamed"
    resp = api("PATCH", path, json={"name": renamed})
    assert resp.status_code == 200 and resp.json()["name"] == renamed, resp.text
    after = api("GET", path)
    assert (after.headers.get("X-Cache"), after.json()["name"]) == ("MISS", renamed), after.text
    again = api("GET", path)
    assert (again.headers.get("X-Cache"), again.json()["name"]) == ("HIT", renamed), again.text

    resp = api("DELETE", path)
    assert resp.status_code == 204, resp.text
    assert_json_error(api("GET", path), 404)


# -- 6-8: load balancing -------------------------------------------------------------------------

def test_round_robin_spreads_requests_evenly(client):
    servers = web_servers(client)
    assert len(servers) >= 2, servers
    counts = dict.fromkeys(servers, 0)
    with requests.Session() as session:
        for _unused in range(100):
            resp = session.get(FRONT + "/", timeout=TIMEOUT)
            assert resp.status_code == 200
            counts[served_by(resp)] = counts.get(served_by(resp), 0) + 1
    assert set(counts) == set(servers), counts
    share = 100 / len(servers)
    for name, count in counts.items():
        assert abs(count - share) <= 0.2 * share, counts


def test_150_concurrent_requests_all_succeed():
    workers = 150
    barrier = threading.Barrier(workers, timeout=20)
    paths = ["/", "/api/users/health"]

    def worker(index):
        barrier.wait()
        statuses = []
        for path in paths[index % 2:] + paths[:index % 2]:
            try:
                resp = requests.get(FRONT + path, timeout=20)
                statuses.append((path, resp.status_code) + (() if resp.ok else (resp.text[:300],)))
            except requests.RequestException as exc:
                statuses.append((path, repr(exc)))
        return statuses

    started = time.monotonic()
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        futures = [pool.submit(worker, i) for i in range(workers)]
        done, pending = wait(futures, timeout=45)
    finally:
        barrier.abort()  # releases anyone still waiting if something went wrong
        pool.shutdown(wait=False, cancel_futures=True)
    assert not pending, "%d of %d workers unfinished after 45 s" % (len(pending), workers)
    results = [r for f in done for r in f.result()]
    assert len(results) == 2 * workers
    failed = [r for r in results if r[1] != 200]
    assert not failed, "%d of %d failed: %s" % (len(failed), len(results), failed[:3])
    assert time.monotonic() - started < 45


def test_stopping_a_web_server_under_load_loses_no_request(client):
    total, results = 300, []
    deadline = time.monotonic() + 60

    def load():
        with requests.Session() as session:
            for _unused in range(total):
                if time.monotonic() > deadline:
                    return
                sent = time.monotonic()
                try:
                    resp = session.get(FRONT + "/", timeout=TIMEOUT)
                    results.append((sent, resp.status_code, served_by(resp)))
                except requests.RequestException as exc:
                    results.append((sent, repr(exc), None))
                time.sleep(0.02)

    thread = threading.Thread(target=load, daemon=True)
    victim = client.containers.get("web-server-1")
    thread.start()
    try:
        end = time.monotonic() + 20
        while len(results) < 50 and time.monotonic() < end:
            time.sleep(0.01)
        assert len(results) >= 50, "the load never got going: %s" % results[-3:]
        victim.stop(timeout=1)
        stopped = time.monotonic()
        thread.join(timeout=max(1, deadline - time.monotonic()))
        assert not thread.is_alive(), "the load did not finish within 60 s"
    finally:
        victim.start()
        wait_healthy(client, "web-server-1", deadline=60)

    failed = [r for r in results if r[1] != 200]
    assert not failed, failed[:10]
    assert len(results) == total, len(results)
    after = [r for r in results if r[0] > stopped]
    assert len(after) >= 50, "only %d requests were sent after the stop" % len(after)
    assert {r[2] for r in after} == {"web-server-2"}, {r[2] for r in after}

    # ... and once it is back, the load balancer sends it requests again
    seen = set()
    with requests.Session() as session:
        def served():
            seen.add(served_by(session.get(FRONT + "/", timeout=TIMEOUT)))
            return seen
        poll("the restarted web-server-1 (now at %s) getting a request again" % (
            client.containers.get("web-server-1").attrs["NetworkSettings"]["Networks"]
            .get("ecommerce-frontend", {}).get("IPAddress")),
            served, done=lambda seen: "web-server-1" in seen, deadline=20, interval=0.1)


# -- 9: segmentation -----------------------------------------------------------------------------

PROBE = (
    'getent hosts mysql-db >/dev/null && echo RESOLVES || echo UNRESOLVED; '
    "timeout 3 bash -c 'exec 3<>/dev/tcp/mysql-db/3306' 2>/dev/null && echo OPEN_BY_NAME || echo CLOSED_BY_NAME; "
    "timeout 3 bash -c 'exec 3<>/dev/tcp/$DB_IP/3306' 2>/dev/null && echo OPEN_BY_IP || echo CLOSED_BY_IP"
)


def _probe(client, name, db_ip):
    rc, out = client.containers.get(name).exec_run(["bash", "-c", PROBE], environment={"DB_IP": db_ip})
    return out.decode().split()


def test_frontend_containers_cannot_reach_mysql(client):
    db_ip = client.containers.get("mysql-db").attrs["NetworkSettings"]["Networks"]["ecommerce-database"]["IPAddress"]
    names = ["load-balancer", "web-server-1", "api-gateway-1", "api-gateway-2", "user-service-1"]
    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        outcome = dict(zip(names, pool.map(lambda n: _probe(client, n, db_ip), names)))
    # the probe itself works: user-service is on the database network
    assert outcome["user-service-1"] == ["RESOLVES", "OPEN_BY_NAME", "OPEN_BY_IP"], outcome
    for name in names[:-1]:
        assert outcome[name] == ["UNRESOLVED", "CLOSED_BY_NAME", "CLOSED_BY_IP"], (name, outcome)


# -- 10: bad input -------------------------------------------------------------------------------

def test_invalid_json_is_a_400_naming_the_body():
    resp = api("POST", "/users/", data=b'{"name": "x", "email": ', headers={"Content-Type": "application/json"})
    assert_json_error(resp, 400, "body")


@pytest.mark.parametrize("path, payload, field", [
    ("/users/", {"name": "No Email"}, "email"),
    ("/users/", {"email": "no-name@example.test"}, "name"),
    ("/orders/", {"user_id": 1}, "items"),
    ("/orders/", {"items": [{"name": "x", "quantity": 1, "unit_price": "1.00"}]}, "user_id"),
    ("/payments/", {"order_id": 1, "method": "credit_card"}, "amount"),
], ids=["user-email", "user-name", "order-items", "order-user_id", "payment-amount"])
def test_missing_field_is_a_400_naming_it(path, payload, field):
    assert_json_error(api("POST", path, json=payload), 400, field)


@pytest.mark.parametrize("kind", sorted(SERVICES))
def test_unknown_id_is_a_404(kind):
    assert_json_error(api("GET", f"/{kind}/{MISSING_ID}"), 404)


def test_body_over_the_service_limit_is_a_413():
    body = json.dumps({"name": "x" * 100_000, "email": _email("big")}).encode()
    assert 65536 < len(body) < 1024 * 1024  # under the load balancer's limit, over the service's
    resp = api("POST", "/users/", data=body, headers={"Content-Type": "application/json"})
    assert_json_error(resp, 413)


def test_order_for_a_missing_user_is_refused():
    resp = api("POST", "/orders/", json={"user_id": MISSING_ID,
                                         "items": [{"name": "x", "quantity": 1, "unit_price": "1.00"}]})
    assert 400 <= resp.status_code < 500
    assert_json_error(resp, resp.status_code, "user_id")


def test_payment_with_the_wrong_amount_is_refused_and_the_order_stays_pending():
    order = create_order(create_user("amount")["id"])
    resp = pay(order["id"], "0.01")
    assert 400 <= resp.status_code < 500
    assert_json_error(resp, resp.status_code, "amount")
    assert api("GET", f"/orders/{order['id']}").json()["status"] == "pending"


def test_the_same_idempotency_key_twice_makes_one_payment(client):
    order = create_order(create_user("idem")["id"])
    key = f"verify-{RUN}-idem"
    first, second = pay(order["id"], order["total"], key), pay(order["id"], order["total"], key)
    assert first.status_code == 201, first.text
    assert second.status_code == 201, second.text
    assert second.json()["id"] == first.json()["id"], (first.text, second.text)
    assert second.headers.get("Idempotent-Replayed") == "true", second.headers
    # the same key for another request is refused, naming the header
    other = pay(order["id"], order["total"], key, method="paypal")
    assert_json_error(other, 422, "Idempotency-Key")
    rows = mysql(client, {"payment_service": f"SELECT COUNT(*) FROM payments WHERE order_id = {order['id']} "
                                             f"OR idempotency_key = '{key}'"})
    assert rows["payment_service"] == [["1"]], rows


# -- 11: request ids -----------------------------------------------------------------------------

@pytest.mark.parametrize("method, path", [
    ("GET", "/"), ("GET", "/style.css"), ("GET", "/no-such-page"), ("GET", "/api/system/status"),
    ("GET", "/api/users/health"), ("GET", f"/api/orders/{MISSING_ID}"), ("POST", "/api/payments/"),
    ("GET", "/monitoring/"),
])
def test_every_response_carries_a_request_id(method, path):
    resp = requests.request(method, FRONT + path, timeout=TIMEOUT)
    ids = request_id_headers(resp)
    assert ids and all(ids), (resp.status_code, resp.headers)


def _log_records(client, name, since, needle=None):
    """Container ``name``'s log lines since ``since`` (those containing ``needle``, when given)
    as JSON objects; a line that is not one is kept as ``{"unparsed": line}``."""
    records = []
    for line in client.containers.get(name).logs(since=since, stdout=True, stderr=True).decode().splitlines():
        if needle is not None and needle not in line:
            continue
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        records.append(record if isinstance(record, dict) else {"unparsed": line})
    return records


# Two ids the load balancer keeps as they are ([A-Za-z0-9._:@=+/-]{1,128}): every hop behind
# it must log the same id.
CLIENT_IDS = {"plain": "verify-{}-{}", "lb-charset": "verify@{}+{}=a/b"}


@pytest.mark.parametrize("shape", sorted(CLIENT_IDS))
def test_the_client_request_id_comes_back_and_is_logged_along_the_path(client, shape):
    user = create_user("rid")
    request_id = CLIENT_IDS[shape].format(RUN, uuid.uuid4().hex[:8])
    since = int(time.time()) - 2
    resp = api("POST", "/orders/", headers={"X-Request-ID": request_id},
               json={"user_id": user["id"], "items": [{"name": "x", "quantity": 1, "unit_price": "1.00"}]})
    assert resp.status_code == 201, resp.text
    assert set(request_id_headers(resp)) == {request_id}, request_id_headers(resp)

    front = requests.get(FRONT + "/", headers={"X-Request-ID": request_id}, timeout=TIMEOUT)
    assert request_id_headers(front) == [request_id], front.headers

    expected = {
        "api-gateway": "/orders/",
        "order-service": "/",
        "user-service": f"/{user['id']}",  # order-service checks the user, passing the id on
    }
    lb_expected = {("/api/orders/", request_id), ("/", request_id)}

    def logged():
        # one replica of each component took the request: read them all
        found = {name: [(r.get("path"), r.get("status"))
                        for replica in replica_names(name) for r in _log_records(client, replica, since)
                        if r.get("msg") == "request" and r.get("request_id") == request_id]
                 for name in expected}
        # every load balancer line with the id, each parsed (an unparsable one fails the check below)
        found["load-balancer"] = {("unparsed", r["unparsed"]) if "unparsed" in r else (r.get("uri"), r.get("request_id"))
                                  for r in _log_records(client, "load-balancer", since, request_id)}
        return found

    # Each hop writes its line after answering, and the engine delivers it later still.
    found = poll(f"a request line with the id {request_id!r} from every hop", logged,
                 done=lambda found: all(found.values()) and lb_expected <= found["load-balancer"],
                 deadline=30, interval=0.5)
    for name, path in expected.items():
        assert found[name] in ([(path, 201)], [(path, 200)]), (
            "%s has no single request line for %s with the id %r: %s" % (name, path, request_id, found))
    assert found["load-balancer"] == lb_expected, found["load-balancer"]


@pytest.mark.parametrize("shape", sorted(CLIENT_IDS))
def test_an_api_response_carries_the_client_request_id_exactly_once(shape):
    request_id = CLIENT_IDS[shape].format(RUN, "once")
    resp = api("GET", "/users/health", headers={"X-Request-ID": request_id})
    assert resp.status_code == 200
    assert request_id_headers(resp) == [request_id]
