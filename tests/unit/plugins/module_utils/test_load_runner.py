# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The load test's engine against a real HTTP server on 127.0.0.1 that mimics the lab (users,
orders, replicas answering in turn, a flaky route, one that hangs up, a slow one), and its pure
parts: percentiles, placeholders, the target check, the CPU/memory arithmetic, the summary.

No timing is asserted tighter than several seconds: waits poll with deadlines."""

from __future__ import annotations

import http.server
import itertools
import json
import re
import socket
import struct
import threading
import time

import pytest

from ansible_collections.dockerlab.ecommerce.plugins.module_utils._load import runner
from ansible_collections.dockerlab.ecommerce.plugins.module_utils._load.runner import (
    LoadConfig,
    LoadConfigError,
    LoadError,
    check_target,
    fill_template,
    latency_summary,
    percentile,
    run_load,
)
from ansible_collections.dockerlab.ecommerce.plugins.module_utils._load.stats import (
    StatsSampler,
    cpu_percent,
    memory_usage,
    parse_docker_time,
    parse_sample,
)
from ansible_collections.dockerlab.ecommerce.plugins.module_utils._load.summary import summary_lines, summary_text

UUID_RE = re.compile(r'^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$')


class Lab:
    """What the fake lab saw: every request (method, path, headers, body) and the ids it handed out."""

    def __init__(self):
        self.lock = threading.Lock()
        self.requests = []
        self.users = {}
        self.orders = {}
        self.next_user = itertools.count(101)
        self.next_order = itertools.count(501)
        self.replica = itertools.count()
        self.flaky = itertools.count()
        self.keyed_tries = {}

    def seen(self, method=None, prefix=''):
        with self.lock:
            return [r for r in self.requests if (method is None or r['method'] == method) and r['path'].startswith(prefix)]


class LabHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'       # keep-alive, as the lab's nginx
    disable_nagle_algorithm = True      # headers and body go out in two writes: no 40 ms delayed-ACK wait
    lab = None

    def log_message(self, *args):
        pass

    def _body(self):
        length = int(self.headers.get('Content-Length') or 0)
        return self.rfile.read(length) if length else b''

    def _record(self, body):
        with self.lab.lock:
            self.lab.requests.append({'method': self.command, 'path': self.path, 'body': body,
                                      'headers': {k.lower(): v for k, v in self.headers.items()}})

    def _send(self, status, payload, headers=None):
        data = json.dumps(payload).encode() if not isinstance(payload, bytes) else payload
        self.send_response(status)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):  # noqa: N802 - http.server's name
        raw = self._body()
        self._record(raw)
        try:
            data = json.loads(raw or b'{}')
        except ValueError:
            self._send(400, {'error': 'not JSON'})
            return
        lab = self.lab
        if self.path == '/api/users/':
            with lab.lock:
                ident = next(lab.next_user)
                lab.users[ident] = data
            self._send(201, {'id': ident, **data})
        elif self.path == '/api/orders/':
            if data.get('user_id') not in lab.users:
                self._send(422, {'error': f"no user {data.get('user_id')!r}"})
                return
            with lab.lock:
                ident = next(lab.next_order)
                lab.orders[ident] = data
            self._send(201, {'id': ident, 'user_id': data['user_id']})
        elif self.path == '/api/fail/':
            self._send(503, {'error': 'unavailable'})
        elif self.path == '/api/restarting/':
            # a database restarting: each key is refused twice with Retry-After, then created once
            key = self.headers.get('Idempotency-Key')
            with lab.lock:
                tries = lab.keyed_tries[key] = lab.keyed_tries.get(key, 0) + 1
            if tries <= 2:
                self._send(503, {'error': 'database unavailable'}, {'Retry-After': '0.05'})
            else:
                with lab.lock:
                    ident = next(lab.next_order)
                self._send(201, {'id': ident})
        else:
            self._send(404, {'error': 'no route'})

    def do_GET(self):  # noqa: N802 - http.server's name
        self._record(b'')
        lab = self.lab
        path = self.path
        user = re.fullmatch(r'/api/users/(\d+)', path)
        order = re.fullmatch(r'/api/orders/(\d+)', path)
        if user:
            if int(user.group(1)) not in lab.users:
                self._send(404, {'error': 'no such user'})
                return
            with lab.lock:
                replica = 1 + next(lab.replica) % 2
            self._send(200, {'id': int(user.group(1))},
                       {'X-Served-By': f'user-service-{replica}', 'X-Gateway': 'api-gateway-1'})
        elif order:
            status = 200 if int(order.group(1)) in lab.orders else 404
            self._send(status, {'id': int(order.group(1))}, {'X-Gateway': 'api-gateway-1'})
        elif path == '/':
            # chunked, as nginx sends a page it compresses on the fly
            self.send_response(200)
            self.send_header('Content-Type', 'text/html')
            self.send_header('Transfer-Encoding', 'chunked')
            self.send_header('X-Served-By', 'web-server-1')
            self.end_headers()
            for part in (b'<html><title>E-commerce', b'</title></html>'):
                self.wfile.write(b'%x\r\n%s\r\n' % (len(part), part))
            self.wfile.write(b'0\r\n\r\n')
        elif path == '/flaky':
            with lab.lock:
                bad = next(lab.flaky) % 3 == 0
            self._send(502 if bad else 200, b'<html>502 Bad Gateway</html>' if bad else b'{}')
        elif path == '/close':
            self.close_connection = True            # hang up without a word
        elif path == '/reset':
            # hang up with a TCP reset (SO_LINGER 0), as a process killed mid-request does
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
            self.connection.close()
            self.close_connection = True
        elif path == '/slow':
            time.sleep(5)
            self._send(200, {})
        elif path == '/once':
            # HTTP/1.1 with Connection: close: the client must reconnect for the next request
            self._send(200, {}, {'Connection': 'close'})
            self.close_connection = True
        elif path == '/eof':
            # no Content-Length: the body ends when the connection does
            self.send_response(200)
            self.send_header('Connection', 'close')
            self.end_headers()
            self.wfile.write(b'until the end')
            self.close_connection = True
        else:
            self._send(404, {'error': 'no route'})


class QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 256            # workers reconnecting at once are never left waiting for a SYN retry

    def handle_error(self, request, client_address):
        pass                # the client gave up on /slow: a broken pipe here is expected


@pytest.fixture
def lab():
    state = Lab()
    server = QuietServer(('127.0.0.1', 0), type('Handler', (LabHandler,), {'lab': state}))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state.url = f'http://127.0.0.1:{server.server_address[1]}'
    yield state
    server.shutdown()
    server.server_close()


def assert_consistent(result):
    """The counts add up, however the run went."""
    transport = sum(n for kind, n in result['errors'].items() if not kind.startswith('status_'))
    assert result['sent'] == result['completed'] + transport
    assert sum(result['status_counts'].values()) == result['completed']
    assert result['failed'] == sum(result['errors'].values())
    assert result['ok'] == result['sent'] - result['failed']
    assert sum(entry['sent'] for entry in result['by_request'].values()) == result['sent']
    assert sum(entry['failed'] for entry in result['by_request'].values()) == result['failed']
    assert sum(bucket['sent'] for bucket in result['timeline']) == result['sent']
    assert sum(bucket['failed'] for bucket in result['timeline']) == result['failed']
    assert [bucket['t'] for bucket in result['timeline']] == list(range(len(result['timeline'])))
    assert len(result['failure_samples']) == min(result['failed'], 10)


# ---------------------------------------------------------------------------------------------
# Runs against the fake lab


def test_default_mix_bounded_by_max_requests(lab):
    result = run_load(LoadConfig(base_url=lab.url, concurrency=4, duration_s=60, max_requests=200, seed=1))
    assert_consistent(result)
    assert result['sent'] == 200 and result['failed'] == 0, result['failure_samples']
    assert result['stopped_by'] == 'max_requests'
    assert result['duration_s'] < 30
    assert set(result['by_request']) == {'get_user', 'front_page', 'create_order', 'get_order'}
    assert all(result['by_request'][name]['sent'] > 0 for name in result['by_request'])
    assert result['rps'] > 0
    assert result['latency_ms']['p50'] <= result['latency_ms']['p95'] <= result['latency_ms']['p99'] \
        <= result['latency_ms']['max']
    assert result['started_at'].endswith('Z') and result['ended_at'] >= result['started_at']
    # the setup made 5 users and one order each, before the load
    assert result['setup']['users'] == 5 and result['setup']['orders'] == 5
    user_ids, order_ids = set(result['setup']['user_ids']), set(result['setup']['order_ids'])
    assert user_ids == set(lab.users) and order_ids <= set(lab.orders)
    # the placeholders are filled with those ids, in paths and in the order body (as a number)
    read_users = {int(r['path'].rsplit('/', 1)[1]) for r in lab.seen('GET', '/api/users/')}
    assert read_users and read_users <= user_ids
    read_orders = {int(r['path'].rsplit('/', 1)[1]) for r in lab.seen('GET', '/api/orders/')}
    assert read_orders and read_orders <= order_ids
    load_posts = lab.seen('POST', '/api/orders/')[len(order_ids):]
    assert len(load_posts) == result['by_request']['create_order']['sent']
    bodies = [json.loads(r['body']) for r in load_posts]
    assert all(isinstance(b['user_id'], int) and b['user_id'] in user_ids for b in bodies)
    assert bodies[0]['items'] == [{'sku': 'LT-1', 'name': 'load test', 'quantity': 1, 'unit_price': '9.99'}]
    # a fresh Idempotency-Key on every order POST of the load, none on the reads
    keys = [r['headers'].get('idempotency-key') for r in load_posts]
    assert all(key and UUID_RE.match(key) for key in keys) and len(set(keys)) == len(keys)
    assert not any('idempotency-key' in r['headers'] for r in lab.seen('GET'))
    # both replicas answered and are counted, the gateway too
    assert set(result['spread']['X-Served-By']) == {'user-service-1', 'user-service-2', 'web-server-1'}
    assert set(result['by_request']['get_user']['spread']['X-Served-By']) == {'user-service-1', 'user-service-2'}
    assert sum(result['by_request']['get_user']['spread']['X-Served-By'].values()) == \
        result['by_request']['get_user']['completed']
    assert set(result['spread']['X-Gateway']) == {'api-gateway-1'}
    # keep-alive: far fewer connections than requests
    assert result['status_counts'].get('201') == result['by_request']['create_order']['sent']


def test_duration_bounds_the_run(lab):
    started = time.monotonic()
    result = run_load({'base_url': lab.url, 'concurrency': 2, 'duration_s': 1.0, 'mix': [{'path': '/'}]})
    took = time.monotonic() - started
    assert_consistent(result)
    assert result['stopped_by'] == 'duration'
    assert result['sent'] > 0 and result['failed'] == 0
    assert 0.9 <= result['duration_s'] <= 8 and took <= 10
    assert set(result['by_request']) == {'GET /'}
    assert result['setup'] == {'users': 0, 'orders': 0, 'user_ids': [], 'order_ids': []}
    assert not lab.seen('POST')


def test_failures_are_classified_by_kind(lab):
    mix = [{'name': 'flaky', 'path': '/flaky', 'weight': 3}, {'name': 'close', 'path': '/close'},
           {'name': 'reset', 'path': '/reset'}, {'name': 'slow', 'path': '/slow'},
           {'name': 'post_fail', 'method': 'POST', 'path': '/api/fail/', 'body': {}}]
    # a 1.5 s timeout: /slow (5 s) always times out, nothing else does, even on a busy machine
    result = run_load(LoadConfig(base_url=lab.url, concurrency=6, duration_s=30, max_requests=70, timeout_s=1.5,
                                 mix=mix, seed=7))
    assert_consistent(result)
    errors = result['errors']
    assert errors.get('status_502', 0) > 0
    assert errors.get('closed', 0) == result['by_request']['close']['sent'] > 0
    assert errors.get('read_timeout', 0) == result['by_request']['slow']['sent'] > 0
    assert errors.get('reset', 0) == result['by_request']['reset']['sent'] > 0
    assert errors.get('status_503', 0) == result['by_request']['post_fail']['sent'] > 0
    assert result['by_request']['flaky']['status_counts']['200'] > 0
    assert set(errors) <= {'status_502', 'status_503', 'closed', 'reset', 'read_timeout'}
    # a POST is never sent twice: the server saw exactly the POSTs that were counted
    assert len(lab.seen('POST', '/api/fail/')) == result['by_request']['post_fail']['sent']
    sample = next(s for s in result['failure_samples'] if s['kind'] == 'status_502')
    assert sample['status'] == 502 and sample['request'] == 'flaky' and 'Bad Gateway' in sample['body']
    assert all(len(s['body']) <= 200 and s['t'] >= 0 for s in result['failure_samples'])
    timeout = next((s for s in result['failure_samples'] if s['kind'] == 'read_timeout'), None)
    assert timeout is None or timeout['status'] is None


def test_connection_refused(closed_port):
    result = run_load(LoadConfig(base_url=f'http://127.0.0.1:{closed_port}', concurrency=2, max_requests=10,
                                 duration_s=20, mix=[{'path': '/'}]))
    assert_consistent(result)
    assert result['errors'] == {'connect_refused': 10}
    assert result['completed'] == 0 and result['latency_ms']['p50'] is None
    assert result['failure_samples'][0]['kind'] == 'connect_refused' and result['failure_samples'][0]['status'] is None


def test_setup_fails_with_a_message(closed_port):
    with pytest.raises(LoadError, match=r'setup: POST http://127\.0\.0\.1:\d+/api/users/ .*connect_refused.*is the lab running'):
        run_load(LoadConfig(base_url=f'http://127.0.0.1:{closed_port}', max_requests=5))


def test_reconnects_and_reads_every_body_framing(lab):
    mix = [{'name': 'chunked', 'path': '/'}, {'name': 'close_after', 'path': '/once'}, {'name': 'to_eof', 'path': '/eof'}]
    result = run_load(LoadConfig(base_url=lab.url, concurrency=3, duration_s=30, max_requests=90, mix=mix, seed=3))
    assert_consistent(result)
    assert result['failed'] == 0, result['failure_samples']
    assert result['status_counts'] == {'200': 90}


def test_idempotency_key_only_when_asked_and_expect(lab):
    mix = [{'name': 'plain', 'method': 'POST', 'path': '/api/users/', 'body': '{"name": "x", "email": "x@example.com"}'},
           {'name': 'keyed', 'method': 'POST', 'path': '/api/fail/', 'body': None, 'idempotency_key': True,
            'expect': [503], 'headers': {'X-Test': 'yes'}}]
    result = run_load(LoadConfig(base_url=lab.url, concurrency=2, duration_s=30, max_requests=40, mix=mix, seed=5))
    assert_consistent(result)
    assert result['failed'] == 0
    plain, keyed = lab.seen('POST', '/api/users/'), lab.seen('POST', '/api/fail/')
    assert len(plain) + len(keyed) == 40
    assert not any('idempotency-key' in r['headers'] for r in plain)
    assert all(r['headers']['content-type'] == 'application/json' for r in plain)
    keys = [r['headers']['idempotency-key'] for r in keyed]
    assert len(set(keys)) == len(keys) == result['by_request']['keyed']['sent']
    assert all(r['headers']['x-test'] == 'yes' and r['headers']['content-length'] == '0' for r in keyed)


def test_a_keyed_request_answered_503_with_retry_after_is_sent_again_with_its_key(lab):
    mix = [{'name': 'write', 'method': 'POST', 'path': '/api/restarting/', 'body': {'n': 1}, 'idempotency_key': True}]
    result = run_load(LoadConfig(base_url=lab.url, concurrency=2, duration_s=30, max_requests=10, mix=mix, seed=3,
                                 retry_after_max=5, collect_ids=True))
    assert_consistent(result)
    assert result['failed'] == 0 and result['status_counts'] == {'201': 10}
    assert result['retry_after_retries'] == 20  # two refusals per key, each sent again with the same key
    assert all(tries == 3 for tries in lab.keyed_tries.values()) and len(lab.keyed_tries) == 10
    assert len(result['created']['write']) == 10
    # the control: without retry_after_max every refusal is a failure
    lab.keyed_tries.clear()
    result = run_load(LoadConfig(base_url=lab.url, concurrency=2, duration_s=30, max_requests=10, mix=mix, seed=3))
    assert result['failed'] == 10 and result['errors'] == {'status_503': 10} and result['retry_after_retries'] == 0
    assert result['created'] == {}


def test_stop_event_stops_early_from_another_thread(lab):
    stop = threading.Event()
    box = {}
    config = LoadConfig(base_url=lab.url, concurrency=2, duration_s=120, mix=[{'path': '/'}])
    thread = threading.Thread(target=lambda: box.update(result=run_load(config, stop_event=stop)), daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while len(lab.seen('GET', '/')) < 20 and time.monotonic() < deadline:
        time.sleep(0.02)
    stop.set()
    thread.join(timeout=15)
    assert not thread.is_alive()
    result = box['result']
    assert result['stopped_by'] == 'stop_event'
    assert result['sent'] >= 20 and result['duration_s'] < 60
    assert_consistent(result)


def test_sampler_runs_with_the_load(lab):
    class Sampler:
        def __init__(self):
            self.calls = []

        def start(self):
            self.calls.append('start')

        def stop(self):
            self.calls.append('stop')
            return {'stats': {'web-server-1': {'samples': 1}}}
    sampler = Sampler()
    result = run_load(LoadConfig(base_url=lab.url, max_requests=5, mix=[{'path': '/'}]), sampler=sampler)
    assert sampler.calls == ['start', 'stop'] and result['stats'] == {'web-server-1': {'samples': 1}}


# ---------------------------------------------------------------------------------------------
# Configuration and safety


@pytest.mark.parametrize('url', ['http://127.0.0.1:8080', 'http://127.9.8.7', 'http://localhost:8080/',
                                 'http://[::1]:8080', 'http://LOCALHOST:1/base'])
def test_loopback_targets_are_allowed(url):
    check_target(url)


@pytest.mark.parametrize('url', ['http://10.0.0.5:8080', 'http://example.com', 'http://0.0.0.0:8080',
                                 'http://192.168.1.10'])
def test_remote_targets_need_allow_remote(url):
    with pytest.raises(LoadConfigError, match='allow_remote'):
        LoadConfig(base_url=url)
    assert LoadConfig(base_url=url, allow_remote=True).base_url == url


@pytest.mark.parametrize('options, message', [
    ({'base_url': 'https://127.0.0.1:8443'}, 'http://'),
    ({'base_url': 'ftp://127.0.0.1'}, 'http://'),
    ({'base_url': 'http://127.0.0.1:99999'}, 'port'),
    ({'duration_s': 601}, 'at most 600'),
    ({'duration_s': 0, 'max_requests': 0}, 'bound'),
    ({'concurrency': 0}, 'between 1 and 256'),
    ({'concurrency': 257}, 'between 1 and 256'),
    ({'timeout_s': 0}, 'timeout'),
    ({'max_requests': -1}, 'max_requests'),
    ({'setup_users': 0}, 'setup_users'),
    ({'mix': []}, 'non-empty list'),
    ({'mix': [{'path': 'api'}]}, 'start with /'),
    ({'mix': [{'path': '/api/{product_id}'}]}, 'unknown placeholders {product_id}'),
    ({'mix': [{'path': '/', 'weight': 0}]}, 'add up to 0'),
    ({'mix': [{'path': '/', 'expect': ['ok']}]}, 'expect'),
    ({'mix': [{'path': '/', 'colour': 'red'}]}, 'unknown keys colour'),
    ({'mix': [{'path': '/'}, {'path': '/'}]}, 'distinct names'),
    ({'mix': [{'path': '/', 'headers': {'X-A': 'a\r\nInjected: 1'}}]}, 'not a valid header'),
    ({'colour': 'red'}, 'unknown load test settings colour'),
])
def test_config_errors_say_what_to_change(options, message):
    with pytest.raises(LoadConfigError, match=re.escape(message)):
        LoadConfig.from_dict(options)


def test_config_defaults():
    config = LoadConfig()
    assert (config.base_url, config.concurrency, config.duration_s, config.max_requests, config.timeout_s) == \
        ('http://127.0.0.1:8080', 10, 20.0, 0, 10.0)
    assert [(e.name, e.method, e.path, e.weight) for e in config.mix] == [
        ('get_user', 'GET', '/api/users/{user_id}', 60), ('front_page', 'GET', '/', 15),
        ('create_order', 'POST', '/api/orders/', 15), ('get_order', 'GET', '/api/orders/{order_id}', 10)]
    assert config.needs_users and config.needs_orders and config.mix[2].idempotency_key
    assert config.spread_headers == ['X-Served-By', 'X-Gateway']
    assert config.mix[0].accepts(200) and config.mix[0].accepts(302) and not config.mix[0].accepts(404)
    assert LoadConfig(duration_s=0, max_requests=10).time_limit_s == runner.MAX_DURATION_S


def test_expect_forms():
    entry = LoadConfig(mix=[{'path': '/', 'expect': [201, '4xx', '500-502']}]).mix[0]
    assert entry.accepts(201) and entry.accepts(409) and entry.accepts(502)
    assert not entry.accepts(200) and not entry.accepts(503)


def test_fill_template():
    ids = {'user_id': 7, 'order_id': 42}
    body = {'user_id': '{user_id}', 'note': 'order {order_id} of {user_id}', 'items': [{'ref': '{order_id}'}],
            'other': '{unknown}', 'n': 1, 'none': None}
    assert fill_template(body, ids) == {'user_id': 7, 'note': 'order 42 of 7', 'items': [{'ref': 42}],
                                        'other': '{unknown}', 'n': 1, 'none': None}
    assert fill_template('/api/users/{user_id}', ids) == '/api/users/7'


# ---------------------------------------------------------------------------------------------
# Figures


def test_percentiles_nearest_rank():
    values = [float(n) for n in range(100, 0, -1)]       # 1..100, unsorted
    assert percentile(values, 50) == 50 and percentile(values, 95) == 95 and percentile(values, 99) == 99
    assert latency_summary(values) == {'p50': 50.0, 'p95': 95.0, 'p99': 99.0, 'max': 100.0, 'mean': 50.5}
    assert percentile([5.0, 1.0, 3.0], 50) == 3.0 and percentile([5.0, 1.0, 3.0], 99) == 5.0
    assert percentile([2.0], 99) == 2.0 and percentile([], 50) is None
    assert latency_summary([]) == {'p50': None, 'p95': None, 'p99': None, 'max': None, 'mean': None}
    ten = [10, 20, 30, 40, 50, 60, 70, 80, 90, 1000]
    assert latency_summary(ten) == {'p50': 50, 'p95': 1000, 'p99': 1000, 'max': 1000, 'mean': 145.0}


def _stats(total, system=None, online=4, read=None, usage=None, detail=None, limit=None):
    stats = {'cpu_stats': {'cpu_usage': {'total_usage': total}, 'online_cpus': online}}
    if system is not None:
        stats['cpu_stats']['system_cpu_usage'] = system
    if read is not None:
        stats['read'] = read
    if usage is not None:
        stats['memory_stats'] = {'usage': usage, 'stats': detail or {}, 'limit': limit}
    return stats


def test_cpu_percent_from_two_samples():
    # 0.5 s of CPU while the host's 4 CPUs ran 2 s in all (0.5 s each): one core fully busy
    first = _stats(1_000_000_000, system=10_000_000_000)
    second = _stats(1_500_000_000, system=12_000_000_000)
    assert cpu_percent(first, second) == pytest.approx(100.0)
    assert cpu_percent(parse_sample(first), parse_sample(second)) == pytest.approx(100.0)
    # no system time: against the wall clock between the snapshots' read times (0.25 s of CPU in 1 s)
    first = _stats(1_000_000_000, read='2025-01-01T12:00:00.000000000Z')
    second = _stats(1_250_000_000, read='2025-01-01T12:00:01.000000000Z')
    assert cpu_percent(first, second) == pytest.approx(25.0)
    # or the time the sampler noted
    assert cpu_percent(parse_sample(_stats(0), wall=100.0), parse_sample(_stats(2_000_000_000), wall=101.0)) == \
        pytest.approx(200.0)
    # a restart between them (the counter went back), or no figure: no value rather than a wrong one
    assert cpu_percent(_stats(5_000, system=2), _stats(1_000, system=3)) is None
    assert cpu_percent(_stats(None, system=2), _stats(1_000, system=3)) is None
    assert parse_docker_time('2025-01-01T12:00:01.5+01:00') == parse_docker_time('2025-01-01T11:00:01.5Z')
    assert parse_docker_time('0001-01-01T00:00:00Z') is None and parse_docker_time(None) is None


def test_memory_usage_less_the_page_cache():
    mib = 1024 * 1024
    assert memory_usage(_stats(0, usage=100 * mib, detail={'inactive_file': 20 * mib})) == 80 * mib
    assert memory_usage(_stats(0, usage=100 * mib, detail={'total_inactive_file': 30 * mib, 'cache': 50 * mib})) == 70 * mib
    assert memory_usage(_stats(0, usage=100 * mib, detail={'cache': 50 * mib})) == 50 * mib
    assert memory_usage(_stats(0, usage=100 * mib)) == 100 * mib
    assert memory_usage({}) is None


class FakeContainer:
    def __init__(self, name, step):
        self.name = name
        self.step = step
        self.calls = 0

    def stats(self, stream=True, one_shot=None):
        assert stream is False and one_shot is True
        self.calls += 1
        return _stats(self.calls * self.step, system=self.calls * 1_000_000_000, online=2,
                      usage=(10 + self.calls) * 1024 * 1024, detail={'inactive_file': 1024 * 1024}, limit=256 * 1024 * 1024)


class FakeClient:
    def __init__(self, containers=None, error=None):
        self.containers = self
        self.items = containers or []
        self.error = error
        self.filters = []

    def list(self, filters=None):
        self.filters.append(filters)
        if self.error:
            raise self.error
        return self.items


def test_sampler_with_a_fake_client():
    client = FakeClient([FakeContainer('web-server-1', 250_000_000), FakeContainer('mysql-db', 50_000_000)])
    sampler = StatsSampler(client, label='dockerlab.stack=ecommerce')
    for _round in range(3):
        sampler.sample_once()
    result = sampler.result()
    assert client.filters[0] == {'label': 'dockerlab.stack=ecommerce'}
    # 0.25 s of CPU per 1 s of host CPU time on 2 CPUs: 50% of one core
    assert result == {'stats': {
        'mysql-db': {'cpu_percent_mean': 10.0, 'cpu_percent_max': 10.0, 'memory_mib_max': 12.0,
                     'memory_limit_mib': 256.0, 'samples': 3},
        'web-server-1': {'cpu_percent_mean': 50.0, 'cpu_percent_max': 50.0, 'memory_mib_max': 12.0,
                         'memory_limit_mib': 256.0, 'samples': 3}}}


class OldSDKContainer(FakeContainer):
    def stats(self, stream=True):   # pylint: disable=arguments-differ  # docker < 6.1 has no one_shot
        self.calls += 1
        return _stats(self.calls * self.step, system=self.calls * 1_000_000_000, online=1)


def test_sampler_without_one_shot():
    sampler = StatsSampler(FakeClient([OldSDKContainer('redis-cache', 100_000_000)]))
    sampler.sample_once()
    sampler.sample_once()
    assert sampler.result()['stats']['redis-cache']['cpu_percent_max'] == 10.0


def test_sampler_thread_and_errors():
    sampler = StatsSampler(FakeClient([FakeContainer('web-server-1', 1000)]), interval_s=0.05)
    sampler.start()
    deadline = time.monotonic() + 10
    while sampler.rounds < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    result = sampler.stop()
    assert result['stats']['web-server-1']['samples'] >= 3 and 'stats_error' not in result
    assert StatsSampler(FakeClient([])).stop()['stats_error'].startswith('no stats sample')
    empty = StatsSampler(FakeClient([]), label='dockerlab.stack=other')
    empty.sample_once()
    assert 'no running container is labelled dockerlab.stack=other' in empty.result()['stats_error']
    broken = StatsSampler(FakeClient(error=RuntimeError('engine gone')))
    broken.sample_once()
    assert broken.result() == {'stats': {}, 'stats_error': 'listing the containers labelled dockerlab.stack=ecommerce '
                                                           'failed: engine gone'}


# ---------------------------------------------------------------------------------------------
# Summary


def test_summary_has_the_key_figures(lab):
    mix = [{'name': 'get_user', 'path': '/api/users/{user_id}', 'weight': 4}, {'name': 'flaky', 'path': '/flaky'}]
    result = run_load(LoadConfig(base_url=lab.url, concurrency=2, duration_s=30, max_requests=50, mix=mix,
                                 setup_users=2, seed=11))
    result['stats'] = {'user-service-1': {'cpu_percent_mean': 12.5, 'cpu_percent_max': 40.0, 'memory_mib_max': 61.3,
                                          'memory_limit_mib': 256.0, 'samples': 3}}
    text = summary_text(result)
    lines = summary_lines(result)
    assert text == '\n'.join(lines)
    assert lines[0].startswith(f'Load test of {lab.url}: ') and 'stopped by max_requests' in lines[0]
    assert f"Requests: 50 sent, {result['ok']} ok, {result['failed']} failed" in text
    assert f"{result['rps']:.1f} req/s" in text
    assert 'Status codes: 200 ' in text
    if result['failed']:
        assert f"Errors: status_502 {result['errors']['status_502']}" in text and 'First failures:' in text
    assert f"p50 {result['latency_ms']['p50']:.1f}" in text and 'p95 ' in text and 'p99 ' in text
    assert 'Spread of X-Served-By: user-service-' in text and 'Spread of X-Gateway: api-gateway-1' in text
    assert re.search(r'^  get_user +\d+ +0 ', text, re.M)
    assert 'Containers (CPU in % of one core, memory in MiB):' in text
    assert re.search(r'^  user-service-1 +12\.5 +40\.0 +61\.3 +256\.0 +3$', text, re.M)


def test_summary_of_nothing_sent():
    result = runner.empty_result(LoadConfig(), msg='Check mode: no load was sent to http://127.0.0.1:8080.')
    assert summary_lines(result) == ['Check mode: no load was sent to http://127.0.0.1:8080.']
    result = {'started_at': 'x', 'url': 'u', 'stats': {}, 'stats_error': 'no engine'}
    assert summary_lines(result)[-1] == 'Container stats: not sampled (no engine)'
