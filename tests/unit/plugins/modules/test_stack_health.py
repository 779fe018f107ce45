# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The stack_health module, run in-process (patch_module_args) with checks that need no Docker,
and with a fake Docker client for the container checks."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import xml.etree.ElementTree as ET

import pytest
from ansible_collections.dockerlab.ecommerce.plugins.module_utils._topology.hardening import parse_size
from ansible.module_utils.testing import patch_module_args
from ansible_collections.dockerlab.ecommerce.plugins.module_utils._topology.model import resolve
from ansible_collections.dockerlab.ecommerce.plugins.modules import stack_health
from conftest import default_model
from test_topology_precheck import module_side  # noqa: F401  pylint: disable=unused-import


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        ok = self.path == '/health'
        self.send_response(200 if ok else 500)
        self.send_header('Content-Type', 'application/json')
        self.end_headers()
        self.wfile.write(b'{"status": "UP"}' if ok else b'{"status": "DOWN"}')

    def log_message(self, *args):
        pass


@pytest.fixture
def web():
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f'http://127.0.0.1:{server.server_address[1]}'
    server.shutdown()
    server.server_close()


def run_module(capsys, args):
    with patch_module_args(args), pytest.raises(SystemExit) as exit_info:
        stack_health.main()
    return exit_info.value.code != 0, json.loads(capsys.readouterr().out)


def test_passing_checks(capsys, web, tmp_path):
    junit = tmp_path / 'health.xml'
    failed, result = run_module(capsys, {
        'checks': [{'kind': 'http', 'url': web + '/health', 'json': {'status': 'UP'}, 'status': [200, 299]},
                   {'kind': 'tcp', 'host': '127.0.0.1', 'port': int(web.rsplit(':', 1)[1]), 'label': 'web port'}],
        'junit_path': str(junit),
    })
    assert not failed
    assert result['changed'] is False
    assert result['summary'] == {'total': 2, 'passed': 2, 'failed': 0}
    assert [c['name'] for c in result['checks']] == [f'http {web}/health', 'web port']
    assert set(result['checks'][0]) == {'name', 'kind', 'target', 'passed', 'attempts', 'duration_ms', 'message',
                                        'observed'}
    assert result['junit_path'] == str(junit)
    assert ET.parse(junit).getroot().find('testsuite').get('tests') == '2'


def test_failures_one_line_each(capsys, web, closed_port, tmp_path):
    junit = tmp_path / 'health.xml'
    failed, result = run_module(capsys, {
        'checks': [{'kind': 'http', 'url': web + '/health'},
                   {'kind': 'http', 'url': web + '/down', 'label': 'down page', 'retries': 1, 'delay': 0},
                   {'kind': 'redis', 'host': '127.0.0.1', 'port': closed_port, 'label': 'cache'}],
        'junit_path': str(junit),
    })
    assert failed and result['failed'] is True
    assert result['msg'].splitlines() == [
        'down page: expected HTTP 200-299, saw HTTP 500 Internal Server Error',
        f'cache: expected +PONG or a NOAUTH error, saw connection to 127.0.0.1:{closed_port} failed: Connection refused',
    ]
    assert result['summary'] == {'total': 3, 'passed': 1, 'failed': 2}
    assert result['checks'][1]['attempts'] == 2
    failures = ET.parse(junit).getroot().findall('.//failure')
    assert [f.get('message') for f in failures][0] == 'expected HTTP 200-299, saw HTTP 500 Internal Server Error'


def test_fail_on_error_false_and_check_mode(capsys, web, tmp_path):
    junit = tmp_path / 'health.xml'
    failed, result = run_module(capsys, {'checks': [{'kind': 'http', 'url': web + '/down'}], 'fail_on_error': False,
                                         'junit_path': str(junit), '_ansible_check_mode': True})
    assert not failed and result['summary']['failed'] == 1
    assert not junit.exists() and 'junit_path' not in result


def test_deadline_waits_for_a_port(capsys, closed_port):
    listener = socket.socket()

    def open_later():
        listener.bind(('127.0.0.1', closed_port))
        listener.listen(1)
    timer = threading.Timer(0.3, open_later)
    timer.start()
    try:
        failed, result = run_module(capsys, {'checks': [{'kind': 'tcp', 'host': '127.0.0.1', 'port': closed_port}],
                                             'deadline': 5, 'delay': 0.1})
    finally:
        timer.join()
        listener.close()
    assert not failed, result
    assert result['checks'][0]['attempts'] > 1


@pytest.mark.parametrize('args, message', [
    ({}, "There is nothing to check: give topology (the dockerlab.ecommerce.stack_model filter's result) or checks"),
    ({'topology': {'data_services': {}}}, 'topology is not a resolved topology (it has no containers list); pass the '
                                          'result of the dockerlab.ecommerce.stack_model filter'),
    ({'checks': [{'kind': 'http'}]}, 'Some checks cannot run; fix them:\nchecks[0]: a http check needs url'),
    ({'checks': [{'kind': 'tcp', 'host': 'x', 'port': 1}, {'kind': 'dns', 'container': 'c', 'name': 'n'}]},
     'Some checks cannot run; fix them:\nchecks[1]: a dns check needs expected (a list of addresses) or '
     'expected_container'),
])
def test_bad_definitions(capsys, args, message):
    failed, result = run_module(capsys, args)
    assert failed and result['msg'] == message


def test_no_docker_engine(capsys, tmp_path):
    failed, result = run_module(capsys, {'checks': [{'kind': 'container', 'container': 'mysql-db'}],
                                         'docker_host': f'unix://{tmp_path}/no.sock'})
    assert failed
    assert result['msg'].startswith(f'No Docker engine answered at unix://{tmp_path}/no.sock (')
    assert 'Traceback' not in result['msg']


def hardened_host(record):
    """The HostConfig of a container deployed as its record declares."""
    security, resources = record['security'], record['resources']
    return {'CapDrop': security['cap_drop'], 'CapAdd': security['cap_add'] or None,
            'SecurityOpt': ['no-new-privileges'] if security['no_new_privileges'] else None,
            'ReadonlyRootfs': security['read_only'], 'Memory': parse_size(resources.get('memory')) or 0,
            'NanoCpus': int(float(resources.get('cpus') or 0) * 1e9), 'PidsLimit': int(resources.get('pids') or 0)}


class FakeAPI:
    def __init__(self, containers):
        self.containers = containers

    def inspect_image(self, _image):
        return {'Config': {'User': ''}}

    def inspect_container(self, name):
        if name not in self.containers:
            import docker.errors
            raise docker.errors.NotFound(f'No such container: {name}')
        return self.containers[name]


class FakeClient:
    def __init__(self, containers):
        self.api = FakeAPI(containers)

    def close(self):
        pass


def test_derived_container_checks(capsys, monkeypatch):
    pytest.importorskip('docker')
    model = default_model('upstream')
    # the data tier's containers, without their probes (they need docker exec): the container checks
    model['containers'] = [dict(record, probe=None) for record in model['containers'] if record['tier'] == 'data']
    model['checks'] = []
    records = {record['name']: record for record in model['containers']}

    def running(name, **changes):
        return {'State': {'Status': 'running', 'Running': True, 'ExitCode': 0,
                          'Health': {'Status': 'healthy', 'Log': [{'Output': 'ok'}]}},
                'RestartCount': 0, 'Image': 'sha256:1',
                'Config': {'Labels': {'dockerlab.stack': 'ecommerce'}, 'User': records[name]['user']},
                'HostConfig': dict(hardened_host(records[name]), **changes),
                'NetworkSettings': {'Networks': {'ecommerce-database': {'IPAddress': '172.22.0.10'}}}}

    fake = FakeClient({'mysql-db': running('mysql-db'), 'redis-cache': dict(running('redis-cache'), RestartCount=3)})
    monkeypatch.setattr(stack_health, 'get_client', lambda *args: (fake, None))
    failed, result = run_module(capsys, {'topology': model, 'baseline': {'redis-cache': 1}})
    assert failed
    assert result['msg'].splitlines() == [
        'container mongodb: expected a container named mongodb, saw no such container',
        'container redis-cache: expected no restarts since the baseline (1), saw 3 restarts',
    ]
    assert result['checks'][1]['message'] == 'running, healthy, 0 restarts'
    # a container given an extra capability and no pids limit fails its check, naming both
    fake.api.containers['mysql-db'] = running('mysql-db', CapAdd=['SYS_ADMIN'], PidsLimit=0)
    fake.api.containers['redis-cache'] = running('redis-cache')
    _failed, result = run_module(capsys, {'topology': model})
    assert result['msg'].splitlines()[1] == (
        'container mysql-db: expected hardened and limited as declared, saw it has capabilities SYS_ADMIN beyond the '
        'declared (none); it has no pids limit (declared 264)')


def test_derived_dns_and_validate_checks(capsys, monkeypatch):
    """The edges give dns checks, the services' validate checks run; a bad one names its variable."""
    services = {'backend_services': {
        'api-gateway': {'container_name': 'api-gateway', 'networks': ['backend'], 'expose': [3000],
                        'connects_to': [{'service': 'user-service'}],
                        'validate': [{'kind': 'tcp', 'label': 'closed', 'host': '127.0.0.1', 'port': 1}]},
        'user-service': {'container_name': 'user-service', 'replicas': 2, 'networks': ['backend'], 'expose': [3001]},
    }}
    model = resolve(services, {'backend': {'name': 'ecommerce-backend'}})
    planned = []

    def fake_run_checks(ctx, checks, **kwargs):
        planned.extend(checks)
        return [{'name': c['name'], 'kind': c['kind'], 'target': c['target'], 'passed': True, 'attempts': 1,
                 'duration_ms': 0, 'message': 'ok', 'observed': {}} for c in checks]
    monkeypatch.setattr(stack_health, 'get_client', lambda *args: (FakeClient({}), None))
    monkeypatch.setattr(stack_health, 'run_checks', fake_run_checks)
    failed, result = run_module(capsys, {'topology': model})
    assert not failed, result
    assert [c['name'] for c in planned] == ['container api-gateway', 'container user-service-1',
                                            'container user-service-2', 'api-gateway finds user-service by name',
                                            'closed']
    dns = planned[3]
    assert (dns['container'], dns['query'], dns['expected_container']) == (
        'api-gateway', 'user-service', ['user-service-1', 'user-service-2'])

    model['checks'][0].pop('host')
    failed, result = run_module(capsys, {'topology': model})
    assert failed and result['msg'] == ("Some checks cannot run; fix them:\nbackend_services['api-gateway'].validate[0]: "
                                        'a tcp check needs host (or from_container, to connect from inside a container)')
