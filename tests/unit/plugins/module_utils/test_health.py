# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Unit tests of plugins/module_utils/_health (no Docker needed)."""

from __future__ import annotations

import http.server
import re
import socket
import struct
import threading
import xml.etree.ElementTree as ET

import pytest
from ansible_collections.dockerlab.ecommerce.plugins.module_utils._health import checks as hc
from ansible_collections.dockerlab.ecommerce.plugins.module_utils._health import (
    derive,
    junit,
    protocols,
    runner,
    spec,
    transports,
)
from ansible_collections.dockerlab.ecommerce.plugins.module_utils._topology.model import by_component, resolve
from conftest import DEFAULT_NETWORKS, DEFAULT_VOLUMES, default_model
from fake_docker import FakeDockerClient, NotFoundError


# --- option parsing -------------------------------------------------------

@pytest.mark.parametrize('status, ranges', [
    (None, [[200, 299]]),
    (204, [[204, 204]]),
    ('301', [[301, 301]]),
    ('200-299', [[200, 299]]),
    ([200, 299], [[200, 299]]),
    ([200, 204, 301], [[200, 200], [204, 204], [301, 301]]),
    (['200', '204'], [[200, 200], [204, 204]]),
    (['300-399', 200], [[200, 200], [300, 399]]),
    ([204, 200], [[200, 200], [204, 204]]),
])
def test_parse_status(status, ranges):
    assert spec.parse_status(status) == ranges


@pytest.mark.parametrize('status', ['abc', '299-200', [], True, {'a': 1}])
def test_parse_status_rejects(status):
    with pytest.raises(spec.CheckError):
        spec.parse_status(status)


def test_status_matches_and_describe():
    ranges = spec.parse_status(['200-299', 304])
    assert spec.status_matches(204, ranges) and spec.status_matches(304, ranges) and not spec.status_matches(301, ranges)
    assert spec.describe_status(ranges) == 'HTTP 200-299 or 304'


def test_json_path():
    doc = {'data': {'items': [{'id': 1}, {'id': 2, 'tags': ['a']}]}, 'status': 'UP', 'a.b': 1}
    assert spec.json_path(doc, 'status') == 'UP'
    assert spec.json_path(doc, 'data.items.1.id') == 2
    assert spec.json_path(doc, 'data.items[1].tags[0]') == 'a'
    assert spec.json_path(doc, 'data.items.-1.id') == 2
    assert spec.json_path(doc, 'data.items.5') is spec.MISSING
    assert spec.json_path(doc, 'status.x') is spec.MISSING
    assert spec.json_path(doc, 'nope') is spec.MISSING


@pytest.mark.parametrize('actual, expected, equal', [
    (1, 1, True), (1, '1', True), (True, 'true', True), (True, 1, False), (1.0, 1, True),
    ('UP', 'UP', True), ('UP', 'DOWN', False), (None, 'null', True), ([1], '[1]', True),
])
def test_values_equal(actual, expected, equal):
    assert spec.values_equal(actual, expected) is equal


def test_normalize_check_defaults_and_names():
    check = spec.normalize_check({'kind': 'tcp', 'host': 'db', 'port': '3306'}, {'timeout': 2, 'retries': 3})
    assert check['timeout'] == 2.0 and check['retries'] == 3 and check['delay'] == 1.0 and check['port'] == 3306
    assert check['name'] == 'tcp db:3306' and check['target'] == 'db:3306'
    assert spec.normalize_check({'kind': 'mysql', 'from_container': 'api'})['name'] == 'mysql 127.0.0.1:3306 from api'
    dns = spec.normalize_check({'kind': 'dns', 'container': 'api', 'name': 'mysql', 'expected': '172.22.0.10'})
    assert dns['query'] == 'mysql' and dns['name'] == 'dns mysql in api' and dns['expected'] == ['172.22.0.10']
    labelled = spec.normalize_check({'kind': 'dns', 'container': 'api', 'name': 'mysql', 'label': 'db name',
                                     'expected_container': 'mysql-db'})
    assert labelled['name'] == 'db name'
    web = spec.normalize_check({'kind': 'http', 'url': 'http://x/health', 'name': 'web', 'status': [200, 204, 301]})
    assert web['name'] == 'web' and web['method'] == 'GET' and web['status_ranges'][-1] == [301, 301]


@pytest.mark.parametrize('raw, message', [
    ({'kind': 'ftp'}, "kind 'ftp' is not known; use one of: container, http, tcp, dns, exec, mysql, redis, mongodb"),
    ({'kind': 'tcp', 'port': 1}, 'a tcp check needs host (or from_container, to connect from inside a container)'),
    ({'kind': 'tcp', 'host': 'x', 'port': 70000}, 'port is 70000; give a TCP port number (1-65535)'),
    ({'kind': 'http', 'url': 'ftp://x'}, "url 'ftp://x' is not an http:// or https:// URL"),
    ({'kind': 'http', 'url': 'http://x', 'body_regex': '('}, None),
    ({'kind': 'dns', 'container': 'a', 'name': 'b'},
     'a dns check needs expected (a list of addresses) or expected_container'),
    ({'kind': 'dns', 'container': 'a', 'name': 'b', 'expected': ['nope']}, "expected address 'nope' is not an IP address"),
    ({'kind': 'exec', 'container': 'a'}, 'a exec check needs command'),
    ({'kind': 'container'}, 'a container check needs container'),
    ({'kind': 'tcp', 'host': 'x', 'port': 1, 'timeout': 'soon'}, "timeout is 'soon'; give a number"),
    ('tcp', "'tcp' is not a mapping; write each check as {kind: ..., ...}"),
])
def test_normalize_check_errors(raw, message):
    with pytest.raises(spec.CheckError) as error:
        spec.normalize_check(raw)
    if message:
        assert str(error.value) == message
    else:
        assert 'is not a valid regular expression' in str(error.value)


# --- wire protocols -------------------------------------------------------

def mysql_packet(payload, seq=0):
    return len(payload).to_bytes(3, 'little') + bytes([seq]) + payload


def test_mysql_greeting():
    payload = (b'\x0a' + b'5.5.5-10.11.6-MariaDB-0+deb12u1\x00' + struct.pack('<I', 42) + b'abcdefgh\x00'
               + b'\xff\xf7\x08\x02\x00')
    greeting = protocols.parse_mysql_greeting(mysql_packet(payload))
    assert greeting == {'kind': 'handshake', 'protocol': 10, 'server_version': '5.5.5-10.11.6-MariaDB-0+deb12u1',
                        'connection_id': 42}
    error = protocols.parse_mysql_greeting(mysql_packet(b'\xff\x6a\x04' + b"Host '172.17.0.1' is not allowed to connect"))
    assert error == {'kind': 'error', 'code': 1130, 'message': "Host '172.17.0.1' is not allowed to connect"}
    assert protocols.mysql_greeting_complete(mysql_packet(payload)) and not protocols.mysql_greeting_complete(mysql_packet(payload)[:10])
    for bad in (b'\x01', mysql_packet(payload)[:20], mysql_packet(b'\x09abc\x00'), mysql_packet(b'\x0aabc')):
        with pytest.raises(ValueError):
            protocols.parse_mysql_greeting(bad)


def test_redis_encoding_and_interpretation():
    assert protocols.redis_command('AUTH', 'p w\r\n') == b'*2\r\n$4\r\nAUTH\r\n$5\r\np w\r\n\r\n'
    assert protocols.parse_redis_replies(b'+OK\r\n+PONG\r\n') == ['+OK', '+PONG']
    ok = protocols.interpret_redis(['+PONG'], False)
    assert ok['passed'] and ok['message'] == 'PONG (no password required)'
    noauth = protocols.interpret_redis(['-NOAUTH Authentication required.'], False)
    assert noauth['passed'] and noauth['observed']['auth'] == 'required'
    assert protocols.interpret_redis(['+OK', '+PONG'], True)['message'] == 'PONG (authenticated)'
    wrong = protocols.interpret_redis(['-WRONGPASS invalid username-password pair', '-NOAUTH Authentication required.'], True)
    assert not wrong['passed']
    assert wrong['message'] == ('expected +OK then +PONG to AUTH and PING, saw -WRONGPASS invalid username-password '
                                'pair, -NOAUTH Authentication required.')
    loading = protocols.interpret_redis(['-LOADING Redis is loading the dataset in memory'], False)
    assert loading['message'] == 'expected +PONG or a NOAUTH error, saw -LOADING Redis is loading the dataset in memory'
    assert protocols.interpret_redis([], False)['message'] == 'expected +PONG or a NOAUTH error, saw no reply'


def test_bson_round_trip():
    doc = {'ping': 1, '$db': 'admin', 'f': 1.5, 'big': 2 ** 40, 'b': True, 'n': None, 'sub': {'a': [1, 'x']},
           'raw': b'\x01\x02'}
    assert protocols.bson_decode(protocols.bson_encode(doc)) == doc
    # {"ok": 1.0} written out per the BSON spec: int32 size, 0x01 "ok\0" double, terminator
    ok = struct.pack('<i', 17) + b'\x01ok\x00' + struct.pack('<d', 1.0) + b'\x00'
    assert protocols.bson_encode({'ok': 1.0}) == ok
    assert protocols.bson_decode(ok) == {'ok': 1.0}
    with pytest.raises(ValueError):
        protocols.bson_decode(ok + b'\x00')
    with pytest.raises(ValueError):
        protocols.bson_decode(struct.pack('<i', 8) + b'\x20a\x00\x00')


def test_mongodb_op_msg_encoding():
    # built by hand from the wire protocol spec: header (messageLength, requestID, responseTo, opCode=2013),
    # flagBits uint32 0, section kind 0, BSON {ping: int32 1, $db: "admin"}
    bson = (struct.pack('<i', 4 + 10 + 15 + 1)
            + b'\x10ping\x00' + struct.pack('<i', 1)
            + b'\x02$db\x00' + struct.pack('<i', 6) + b'admin\x00' + b'\x00')
    assert struct.unpack('<i', bson[:4])[0] == len(bson)
    body = struct.pack('<I', 0) + b'\x00' + bson
    expected = struct.pack('<iiii', 16 + len(body), 7, 0, 2013) + body
    assert protocols.mongodb_ping_message(7) == expected


def test_mongodb_reply_decoding():
    doc = struct.pack('<i', 17) + b'\x01ok\x00' + struct.pack('<d', 1.0) + b'\x00'
    body = struct.pack('<I', 0) + b'\x00' + doc
    reply = struct.pack('<iiii', 16 + len(body), 99, 7, 2013) + body
    header, parsed = protocols.parse_mongodb_reply(reply, 7)
    assert header == {'length': len(reply), 'request_id': 99, 'response_to': 7, 'flags': 0} and parsed == {'ok': 1.0}
    assert protocols.mongodb_reply_complete(reply) and not protocols.mongodb_reply_complete(reply[:-1])
    # with a checksum (flag bit 0) and a kind-1 document sequence before the body
    seq = struct.pack('<i', 4 + 5) + b'ids\x00' + b'\x00'
    body2 = struct.pack('<I', 1) + b'\x01' + seq + b'\x00' + doc + b'\xde\xad\xbe\xef'
    reply2 = struct.pack('<iiii', 16 + len(body2), 1, 7, 2013) + body2
    assert protocols.parse_mongodb_reply(reply2, 7)[1] == {'ok': 1.0}
    with pytest.raises(ValueError, match='does not answer request 8'):
        protocols.parse_mongodb_reply(reply, 8)
    with pytest.raises(ValueError, match='is not OP_MSG'):
        protocols.parse_mongodb_reply(struct.pack('<iiii', 16 + len(body), 99, 7, 1) + body)
    with pytest.raises(ValueError, match='too short'):
        protocols.parse_mongodb_reply(reply[:10])


def test_http_request_and_response_parsing():
    request = protocols.http_request_bytes('POST', 'http://api:3000/x?y=1', {'X-A': 'b'}, 'hi')
    assert request == (b'POST /x?y=1 HTTP/1.0\r\nHost: api:3000\r\nUser-Agent: dockerlab-stack-health\r\n'
                       b'Accept: */*\r\nConnection: close\r\nX-A: b\r\nContent-Length: 2\r\n\r\nhi')
    raw = (b'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Type: application/json\r\n'
           b'Set-Cookie: a\r\nSet-Cookie: b\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{"a":\r\n3\r\n 1}\r\n0\r\n\r\n')
    response = protocols.parse_http_response(raw)
    assert response['status'] == 200 and response['body'] == b'{"a": 1}'
    assert response['headers']['set-cookie'] == 'a, b'
    with pytest.raises(ValueError):
        protocols.parse_http_response(b'SSH-2.0-OpenSSH\r\n')


def test_evaluate_http():
    response = {'status': 200, 'reason': 'OK', 'headers': {'content-type': 'application/json'},
                'body': b'{"status": "UP", "checks": [{"name": "db", "up": true}]}'}

    def run(**options):
        return protocols.evaluate_http(spec.normalize_check({'kind': 'http', 'url': 'http://x/', **options}), response)
    assert run()['message'] == 'HTTP 200'
    assert run(json={'status': 'UP', 'checks.0.up': True}, headers={'Content-Type': '^application/json'},
               body_regex='UP')['passed']
    assert run(status=[300, 399])['message'] == 'expected HTTP 300-399, saw HTTP 200 OK'
    assert run(json={'status': 'DOWN'})['message'] == 'expected status = "DOWN", saw status = "UP"'
    assert run(json={'checks.3.up': True})['message'] == 'expected checks.3.up = true, saw no checks.3.up in the JSON body'
    assert run(headers={'x-id': '.'})['message'] == 'expected header x-id matching /./, saw no x-id header'
    assert run(body_regex='DOWN')['message'].startswith("expected a body matching /DOWN/, saw '{\"status\"")


def test_parse_exchange_output():
    assert transports.parse_exchange_output(0, b'DL-OK 2b504f4e470d0a\n', b'', 'r', 6379, 1) == b'+PONG\r\n'
    assert transports.parse_exchange_output(0, b'DL-OK \n', b'', 'r', 6379, 1) == b''
    cases = [
        ((124, b'', b''), 'no answer from r:6379 within 1s'),
        ((3, b'', b'bash: connect: Connection refused\nbash: line 1: /dev/tcp/r/6379: Connection refused\n'),
         'connection to r:6379 failed: Connection refused'),
        ((127, b'', b'the container has none of python3\n'), 'the container has none of python3'),
        ((1, b'', b''), 'the exchange with r:6379 failed (exit code 1): no output'),
    ]
    for (code, out, err), message in cases:
        with pytest.raises(transports.ExchangeError) as error:
            transports.parse_exchange_output(code, out, err, 'r', 6379, 1)
        assert str(error.value) == message
    env = transports.exchange_environment('r', 6379, b'PING\r\n', 'once', 0.2)
    assert env['DL_X'] == '50494e470d0a' and env['DL_T'] == '1' and env['DL_M'] == 'once'


def test_parse_getent():
    text = ('172.22.0.10     STREAM mysql\n172.22.0.10     DGRAM\n172.22.0.10     RAW\n'
            '10.0.0.2 STREAM\nfe80::1%eth0 x\n')
    assert protocols.parse_getent(text) == ['10.0.0.2', '172.22.0.10', 'fe80::1']


# --- checks against fakes and local servers ---------------------------------

class FakeCtx:
    def __init__(self, containers):
        self.containers = containers
        self.client = None

    def inspect(self, name):
        if name not in self.containers:
            raise KeyError(name)
        return self.containers[name]


def inspect_data(status='running', health=None, restarts=0, networks=('net-a',), labels=None, exit_code=0, log='ok'):
    state = {'Status': status, 'Running': status == 'running', 'Restarting': status == 'restarting',
             'ExitCode': exit_code}
    if health:
        state['Health'] = {'Status': health, 'Log': [{'Output': 'first'}, {'Output': log}]}
    return {'State': state, 'RestartCount': restarts, 'Config': {'Labels': labels or {}},
            'NetworkSettings': {'Networks': {n: {'IPAddress': '10.0.0.2'} for n in networks}}}


def container_check(**extra):
    return spec.normalize_check({'kind': 'container', 'container': 'c', **extra})


def test_container_check_outcomes():
    def run(data, **extra):
        return runner.attempt(FakeCtx({'c': data}), container_check(**extra))
    assert run(inspect_data(health='healthy'))['message'] == 'running, healthy, 0 restarts'
    failed = run(inspect_data(health='unhealthy', log='connection refused\n'))
    assert failed['message'] == 'expected healthy, saw unhealthy (last probe: connection refused)'
    assert failed['observed']['health_output'] == 'connection refused'
    assert run(inspect_data(status='exited', exit_code=1))['message'] == 'expected running, saw exited (exit code 1)'
    assert run(inspect_data(status='restarting', restarts=5, exit_code=2), max_restarts=3)['message'] == (
        'expected running and at most 3 restarts, saw restarting (exit code 2, 5 restarts); 5 restarts')
    assert run(inspect_data(restarts=2), baseline_restarts=1)['message'] == (
        'expected no restarts since the baseline (1), saw 2 restarts')
    assert run(inspect_data(), networks=['net-a', 'net-b'], labels={'dockerlab.stack': 's'})['message'] == (
        'expected attached to net-b and label dockerlab.stack=s, saw attached to net-a; no dockerlab.stack label')
    assert run(inspect_data(status='exited', exit_code=0), state='exited', exit_code=0)['passed']
    assert run(inspect_data(health='starting'), health='any')['passed']


def test_derive_checks_from_topology():
    database = [{'network': 'database'}]
    services = {
        'data_services': {
            'mysql-db': {'container_name': 'mysql-db', 'networks': database, 'expose': [3306],
                         'probe': {'kind': 'mysql'}},
            'redis-cache': {'container_name': 'redis-cache', 'networks': database,
                            'probe': {'kind': 'redis', 'password_file': '/run/pw'}},
            'mongodb': {'container_name': 'mongodb', 'networks': database},
        },
        'web_services': {'web': {'container_name': 'web', 'replicas': 2, 'expose': [8080],
                                 'probe': {'kind': 'http', 'path': '/health', 'status': 200}}},
    }
    topology = resolve(services, DEFAULT_NETWORKS, DEFAULT_VOLUMES)
    checks = derive.derive_checks(topology, 'ecommerce', baseline={'mysql-db': 0}, max_restarts=5)
    names = [c['name'] for c in checks]
    assert names == ['container mongodb', 'container mysql-db', 'mysql mysql-db', 'container redis-cache',
                     'redis redis-cache', 'container web-1', 'http web-1', 'container web-2', 'http web-2']
    mysql_container = dict(checks[1])
    # held to its declared hardening: the stack's defaults here (no service security)
    assert mysql_container.pop('hardening') == {'security': topology['containers'][1]['security'], 'resources': {}}
    assert topology['containers'][1]['security']['cap_drop'] == ['ALL']
    assert mysql_container == {'kind': 'container', 'name': 'container mysql-db', 'container': 'mysql-db',
                               'networks': ['ecommerce-database'], 'labels': {'dockerlab.stack': 'ecommerce'},
                               'baseline_restarts': 0, 'max_restarts': 5}
    assert checks[2] == {'kind': 'mysql', 'name': 'mysql mysql-db', 'from_container': 'mysql-db',
                         'host': '127.0.0.1', 'port': 3306}
    assert checks[4]['port'] == 6379 and checks[4]['password_file'] == '/run/pw'
    assert checks[6] == {'kind': 'http', 'name': 'http web-1', 'from_container': 'web-1', 'status': 200,
                         'url': 'http://127.0.0.1:8080/health'}
    for check in checks:
        spec.normalize_check(check)
    assert derive.derive_checks({}) == []


def edge_topology():
    """A gateway (two replicas) calling two services, which call the data tier."""
    backend = 'backend_services'
    services = {
        backend: {
            'api-gateway': {'container_name': 'api-gateway', 'replicas': 2, 'networks': ['backend'], 'expose': [3000],
                            'connects_to': [{'service': 'user-service'}, {'service': 'order-service'}],
                            'validate': [{'kind': 'http', 'label': 'gateway status',
                                          'url': 'http://127.0.0.1:8080/api/system/status'}]},
            'user-service': {'container_name': 'user-service', 'replicas': 2, 'networks': ['backend', 'database'],
                             'expose': [3001], 'connects_to': [{'service': 'mysql-db'}]},
            'order-service': {'container_name': 'order-service', 'networks': ['backend', 'database'],
                              'expose': [3002],
                              'connects_to': [{'service': 'mysql-db', 'port': 3306}, {'service': 'redis-cache'},
                                              {'service': 'mongodb'}]},
        },
        'data_services': {
            'mysql-db': {'container_name': 'mysql-db', 'networks': ['database'], 'expose': [3306]},
            'redis-cache': {'container_name': 'redis-cache', 'networks': ['database'], 'expose': [6379]},
            'mongodb': {'container_name': 'mongodb', 'enabled': False, 'networks': ['database'], 'expose': [27017]},
        },
    }
    return resolve(services, DEFAULT_NETWORKS, DEFAULT_VOLUMES)


def test_the_default_topology_gives_checks_that_run():
    for profile in ('upstream', 'offline'):
        model = default_model(profile)
        checks, problems = derive.plan_checks(model, stack_name='ecommerce')
        assert problems == []
        names = [check['name'] for check in checks]
        assert len(names) == len(set(names)), profile
        assert 'api-gateway-1 finds user-service by name' in names and 'system status' in names
        assert sum(1 for check in checks if check['kind'] == 'container') == len(model['containers'])


def test_dns_checks_from_the_edges():
    checks = derive.derive_checks(edge_topology())
    dns = [c for c in checks if c['kind'] == 'dns']
    # one per target (mongodb is not deployed, so its edge is gone), from the first client's first container
    assert dns == [
        {'kind': 'dns', 'label': 'order-service finds mysql-db by name', 'container': 'order-service',
         'name': 'mysql-db', 'expected_container': 'mysql-db'},
        {'kind': 'dns', 'label': 'api-gateway-1 finds order-service by name', 'container': 'api-gateway-1',
         'name': 'order-service', 'expected_container': 'order-service'},
        {'kind': 'dns', 'label': 'order-service finds redis-cache by name', 'container': 'order-service',
         'name': 'redis-cache', 'expected_container': 'redis-cache'},
        {'kind': 'dns', 'label': 'api-gateway-1 finds user-service by name', 'container': 'api-gateway-1',
         'name': 'user-service', 'expected_container': ['user-service-1', 'user-service-2']},
    ]
    # the validate checks the services declare come last, without their component
    assert checks[-1] == {'kind': 'http', 'label': 'gateway status', 'url': 'http://127.0.0.1:8080/api/system/status'}
    names = [spec.normalize_check(check)['name'] for check in checks]
    assert names.count('api-gateway-1 finds user-service by name') == 1 and names[-1] == 'gateway status'


def test_the_name_replicas_answer_to():
    records = by_component(edge_topology())
    assert {record['dns_name'] for record in records['user-service']} == {'user-service'}
    assert records['mysql-db'][0]['dns_name'] == 'mysql-db'
    assert all('user-service' in network['aliases'] for r in records['user-service'] for network in r['networks'])


def test_plan_checks_names_where_a_bad_check_comes_from():
    topology = edge_topology()
    topology['checks'] = [{'kind': 'http', 'component': 'api-gateway'}, {'kind': 'tcp', 'component': 'api-gateway'}]
    checks, problems = derive.plan_checks(topology, [{'kind': 'exec', 'container': 'x'}], {'timeout': 2})
    assert problems == [
        "backend_services['api-gateway'].validate[0]: a http check needs url",
        "backend_services['api-gateway'].validate[1]: a tcp check needs host (or from_container, to connect from "
        'inside a container)',
        'checks[0]: a exec check needs command',
    ]
    assert checks and all(check['timeout'] == 2.0 for check in checks)


# --- dns checks against a fake Docker client ---------------------------------

def getent_answer(resolves):
    """An exec answer: ``getent`` output for the names in ``resolves`` (name -> addresses), exit 2 for others."""
    def answer(_container, environment):
        name = environment['DL_NAME']
        lines = ''.join(f'{address}     STREAM {name}\n' for address in resolves.get(name, []))
        return (0 if lines else 2), lines.encode(), b''
    return answer


def on(**networks):
    return {'NetworkSettings': {'Networks': {net: {'IPAddress': ip} for net, ip in networks.items()}}}


def dns_run(resolves, expected_container, containers=None):
    containers = containers if containers is not None else {
        'api-gateway-1': on(backend='10.0.1.2'),
        'user-service-1': on(backend='10.0.1.11', database='10.0.2.11'),
        'user-service-2': on(backend='10.0.1.12', database='10.0.2.12'),
    }
    ctx = hc.Context(FakeDockerClient(containers, getent_answer(resolves)))
    check = spec.normalize_check({'kind': 'dns', 'container': 'api-gateway-1', 'name': 'user-service',
                                  'expected_container': expected_container})
    return runner.attempt(ctx, check), ctx.client.api


REPLICAS = ['user-service-1', 'user-service-2']


def test_dns_expected_container_list():
    ok, api = dns_run({'user-service': ['10.0.1.12', '10.0.1.11']}, REPLICAS)
    assert ok['passed'] and ok['message'] == 'user-service resolves to 10.0.1.11, 10.0.1.12'
    assert ok['observed']['expected'] == ['10.0.1.11', '10.0.1.12']   # only the addresses on shared networks
    assert api.execs[0][0] == 'api-gateway-1' and api.execs[0][2]['DL_DB'] == 'ahostsv4'
    # one replica is enough (the other may be stopped, or not yet in the DNS)
    assert dns_run({'user-service': ['10.0.1.12']}, REPLICAS)[0]['passed']
    stray = dns_run({'user-service': ['10.0.1.12', '10.0.1.99']}, REPLICAS)[0]
    assert stray['message'] == 'expected addresses among 10.0.1.11, 10.0.1.12, saw 10.0.1.12, 10.0.1.99'
    nothing = dns_run({}, REPLICAS)[0]
    assert nothing['message'] == ('expected addresses among 10.0.1.11, 10.0.1.12, '
                                  'saw no address (the name does not resolve)')


def test_dns_expected_container_list_with_a_missing_replica():
    containers = {'api-gateway-1': on(backend='10.0.1.2'), 'user-service-2': on(backend='10.0.1.12')}
    assert dns_run({'user-service': ['10.0.1.12']}, REPLICAS, containers)[0]['passed']
    alone = {'api-gateway-1': on(backend='10.0.1.2'), 'user-service-1': on(database='10.0.2.11')}
    unshared = dns_run({'user-service': ['10.0.2.11']}, REPLICAS, alone)[0]
    assert unshared['message'] == ('expected the addresses of user-service-1, user-service-2 on a network shared '
                                   'with api-gateway-1, saw no shared network')


def test_dns_expected_single_container_is_one_of_its_shared_addresses_and_no_other():
    assert dns_run({'user-service': ['10.0.1.11']}, 'user-service-1')[0]['passed']
    both = dns_run({'user-service': ['10.0.1.11', '10.0.1.12']}, 'user-service-1')[0]
    assert both['message'] == 'expected addresses among 10.0.1.11, saw 10.0.1.11, 10.0.1.12'
    missing = dns_run({'user-service': ['10.0.1.11']}, 'user-service-9')[0]
    assert not missing['passed'] and 'No such container: user-service-9' in missing['message']


def test_checks_inside_containers_use_docker_exec():
    def answer(container, environment):
        if container == 'gone':
            raise NotFoundError(f'No such container: {container}')
        if 'DL_H' in environment:   # the TCP exchange script
            return 0, b'DL-OK \n', b''
        return 3, b'hello\n', b''
    ctx = hc.Context(FakeDockerClient({}, answer))
    tcp = runner.attempt(ctx, spec.normalize_check({'kind': 'tcp', 'from_container': 'api', 'host': 'db', 'port': 3306}))
    assert tcp['message'] == 'port 3306 accepts connections'
    env = ctx.client.api.execs[0][2]
    assert (env['DL_H'], env['DL_P'], env['DL_M']) == ('db', '3306', 'connect')
    ran = runner.attempt(ctx, spec.normalize_check({'kind': 'exec', 'container': 'api', 'command': 'x', 'rc': 3}))
    assert ran['passed'] and ran['observed'] == {'rc': 3, 'output': 'hello\n'}
    gone = runner.attempt(ctx, spec.normalize_check({'kind': 'exec', 'container': 'gone', 'command': 'x'}))
    assert gone['message'] == 'expected a running container gone, saw no container gone'


@pytest.mark.parametrize('expected_container, message', [
    (['a', ''], 'expected_container is a list with an entry that is not a container name'),
    ({'a': 1}, "expected_container {'a': 1} is not a container name or a list of them"),
])
def test_dns_expected_container_must_be_names(expected_container, message):
    with pytest.raises(spec.CheckError, match=re.escape(message)):
        spec.normalize_check({'kind': 'dns', 'container': 'c', 'name': 'n', 'expected_container': expected_container})


@pytest.fixture
def greeting_server():
    """A TCP server on 127.0.0.1 that sends a MySQL greeting to each client."""
    listener = socket.socket()
    listener.bind(('127.0.0.1', 0))
    listener.listen(8)
    payload = b'\x0a8.4.0\x00' + struct.pack('<I', 7) + b'x' * 20

    def serve():
        while True:
            try:
                conn, _addr = listener.accept()
            except OSError:
                return
            try:
                conn.sendall(mysql_packet(payload)[:6])
                conn.sendall(mysql_packet(payload)[6:])
            except OSError:
                pass
            conn.close()
    threading.Thread(target=serve, daemon=True).start()
    yield listener.getsockname()[1]
    listener.close()


def test_mysql_and_tcp_checks_from_this_host(greeting_server):
    ctx = hc.Context()
    result = runner.run_check(ctx, spec.normalize_check({'kind': 'mysql', 'host': '127.0.0.1', 'port': greeting_server}))
    assert result['passed'] and result['message'] == 'MySQL protocol 10, server 8.4.0'
    assert result['observed']['connection_id'] == 7
    assert runner.run_check(ctx, spec.normalize_check({'kind': 'tcp', 'host': '127.0.0.1', 'port': greeting_server}))['passed']
    closed = socket.socket()
    closed.bind(('127.0.0.1', 0))
    port = closed.getsockname()[1]
    closed.close()
    refused = runner.run_check(ctx, spec.normalize_check({'kind': 'redis', 'host': '127.0.0.1', 'port': port}))
    assert refused['message'] == f'expected +PONG or a NOAUTH error, saw connection to 127.0.0.1:{port} failed: Connection refused'


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        body = b'{"status": "UP"}' if self.path == '/health' else b'nope'
        self.send_response(200 if self.path == '/health' else 503)
        self.send_header('Content-Type', 'application/json')
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server():
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f'http://127.0.0.1:{server.server_address[1]}'
    server.shutdown()
    server.server_close()


def test_http_check_from_this_host(http_server):
    ctx = hc.Context()
    ok = runner.run_check(ctx, spec.normalize_check({'kind': 'http', 'url': http_server + '/health', 'json': {'status': 'UP'}}))
    assert ok['passed'] and ok['observed']['status'] == 200
    bad = runner.run_check(ctx, spec.normalize_check({'kind': 'http', 'url': http_server + '/down'}))
    assert bad['message'] == 'expected HTTP 200-299, saw HTTP 503 Service Unavailable'


# --- the runner -------------------------------------------------------------

class FakeClock:
    def __init__(self):
        self.now = 100.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def flaky(passes_on):
    calls = []

    def fake(_ctx, check):
        calls.append(check['name'])
        if len(calls) >= passes_on:
            return spec.passed('up')
        return spec.failed('up', f'down (try {len(calls)})')
    return fake, calls


def test_retries_then_pass():
    clock = FakeClock()
    fake, calls = flaky(3)
    check = spec.normalize_check({'kind': 'tcp', 'host': 'x', 'port': 1, 'retries': 5, 'delay': 2})
    result = runner.run_check(None, check, clock=clock, sleep=clock.sleep, runners={'tcp': fake})
    assert result == {'name': 'tcp x:1', 'kind': 'tcp', 'target': 'x:1', 'passed': True, 'attempts': 3,
                      'duration_ms': 4000, 'message': 'up', 'observed': {}}
    assert clock.sleeps == [2, 2]


def test_retries_used_up():
    clock = FakeClock()
    fake, _calls = flaky(10)
    check = spec.normalize_check({'kind': 'tcp', 'host': 'x', 'port': 1, 'retries': 2, 'delay': 0.5})
    result = runner.run_check(None, check, clock=clock, sleep=clock.sleep, runners={'tcp': fake})
    assert not result['passed'] and result['attempts'] == 3 and result['message'] == 'expected up, saw down (try 3)'


def test_deadline_keeps_retrying_until_it_passes():
    clock = FakeClock()
    fake, _calls = flaky(100)
    check = spec.normalize_check({'kind': 'tcp', 'host': 'x', 'port': 1, 'delay': 1})
    result = runner.run_check(None, check, deadline_at=clock() + 10, clock=clock, sleep=clock.sleep,
                              runners={'tcp': fake})
    assert not result['passed'] and result['attempts'] == 10 and sum(clock.sleeps) == 9
    clock = FakeClock()
    fake, _calls = flaky(4)
    result = runner.run_check(None, check, deadline_at=clock() + 10, clock=clock, sleep=clock.sleep,
                              runners={'tcp': fake})
    assert result['passed'] and result['attempts'] == 4


def test_no_sleep_on_success_and_exceptions_become_failures():
    clock = FakeClock()

    def boom(_ctx, _check):
        raise RuntimeError('socket exploded')
    check = spec.normalize_check({'kind': 'tcp', 'host': 'x', 'port': 1})
    result = runner.run_check(None, check, clock=clock, sleep=clock.sleep, runners={'tcp': boom})
    assert result['message'] == 'expected a TCP connection, saw an error: socket exploded' and clock.sleeps == []
    ok = runner.run_check(None, check, clock=clock, sleep=clock.sleep, runners={'tcp': lambda c, k: spec.passed('up')})
    assert ok['passed'] and clock.sleeps == []


def test_run_checks_concurrently_in_order():
    barrier = threading.Barrier(4, timeout=5)

    def fake(_ctx, check):
        barrier.wait()   # only passes when all four run at the same time
        return spec.passed(check['name'])
    checks = [spec.normalize_check({'kind': 'tcp', 'host': f'h{i}', 'port': 1}) for i in range(4)]
    results = runner.run_checks(None, checks, workers=4, runners={'tcp': fake})
    assert [r['name'] for r in results] == ['tcp h0:1', 'tcp h1:1', 'tcp h2:1', 'tcp h3:1']
    assert runner.summarize(results) == {'total': 4, 'passed': 4, 'failed': 0}
    assert runner.run_checks(None, []) == []


def test_failure_lines_and_junit():
    results = [
        {'name': 'container a', 'kind': 'container', 'target': 'a', 'passed': True, 'attempts': 1,
         'duration_ms': 3, 'message': 'running', 'observed': {}},
        {'name': 'http b', 'kind': 'http', 'target': 'http://b/', 'passed': False, 'attempts': 2,
         'duration_ms': 1500, 'message': 'expected HTTP 200-299, saw HTTP 503', 'observed': {'status': 503}},
    ]
    assert runner.failure_lines(results) == ['http b: expected HTTP 200-299, saw HTTP 503']
    root = ET.fromstring(junit.junit_xml(results))
    suite = root.find('testsuite')
    assert suite.get('tests') == '2' and suite.get('failures') == '1'
    cases = suite.findall('testcase')
    assert [c.get('name') for c in cases] == ['container a', 'http b']
    assert cases[0].find('failure') is None
    failure = cases[1].find('failure')
    assert failure.get('message') == 'expected HTTP 200-299, saw HTTP 503' and '"status": 503' in failure.text
    assert cases[1].get('time') == '1.500'


def test_dns_a_container_on_two_shared_networks_answers_on_one():
    # Docker's DNS gives one address per container although client and target share two
    # networks (user-service finds order-service on the backend network only).
    containers = {'api-gateway-1': on(backend='10.0.1.2', database='10.0.2.2'),
                  'user-service-1': on(backend='10.0.1.11', database='10.0.2.11')}
    assert dns_run({'user-service': ['10.0.1.11']}, 'user-service-1', containers)[0]['passed']
    stray = dns_run({'user-service': ['10.0.1.11', '10.0.9.9']}, 'user-service-1', containers)[0]
    assert not stray['passed']
