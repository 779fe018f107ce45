# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""stack_health and topology_report against real containers.

Builds a small stack labelled ``dockerlab.stack=h4test`` from the locally built images
(``dockerlab/ecommerce-base``, ``dockerlab/ecommerce-redis``, ``dockerlab/ecommerce-mysql``;
no registry is contacted) with planted faults, runs both modules in-process
(patch_module_args) and checks that each fault is reported by name:

* h4-cache (redis) publishes its port on 0.0.0.0, the data says 127.0.0.1;
* h4-client is attached to h4-net-b, which it does not declare;
* h4-stopped has exited;
* h4-client reaches h4-cache:6379, which stack_flows does not allow, and cannot reach
  h4-cache:6380, which it does.

The protocol probes run against the real redis (with and without a password) and the real
MariaDB.  Everything created is named ``h4-*`` and removed at the end.

Without the Docker SDK, an engine that answers or those images, tests/engine/modules/conftest.py
stops the run, naming what is missing.  Run: ``make engine`` (after ``make images``), or
``.venv/bin/python -m pytest tests/engine/modules``.
"""

from __future__ import annotations

import json
import socket
import time

import docker
import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.dockerlab.ecommerce.plugins.module_utils._health.checks import Context
from ansible_collections.dockerlab.ecommerce.plugins.module_utils._health.runner import run_check
from ansible_collections.dockerlab.ecommerce.plugins.module_utils._health.spec import normalize_check
from ansible_collections.dockerlab.ecommerce.plugins.module_utils._topology.model import resolve
from ansible_collections.dockerlab.ecommerce.plugins.modules import stack_health, topology_report

from docker_env import unused_subnets  # pylint: disable=import-error  # tests/docker_env.py

STACK = 'h4test'
# The test's containers are started plainly (no cap_drop, writable root, root): they declare
# so, and test_stack_health_holds_a_container_to_its_hardening checks the hardening branch.
PLAIN = {'cap_drop': [], 'no_new_privileges': False, 'read_only': False, 'non_root': False}
LABELS = {'dockerlab.stack': STACK}
REDIS_PASSWORD = 'h4-s3cret pw'


def _image(client, repository, prefer=''):
    tags = sorted(tag for image in client.images.list(name=repository) for tag in image.tags)
    preferred = [tag for tag in tags if tag.split(':', 1)[1].startswith(prefer)] if prefer else []
    return (preferred or tags or [None])[0]


CLIENT = docker.from_env(timeout=30)
# conftest.py has checked that each repository has a local tag.
BASE_IMAGE = _image(CLIENT, 'dockerlab/ecommerce-base', 'bookworm')
REDIS_IMAGE = _image(CLIENT, 'dockerlab/ecommerce-redis')
MYSQL_IMAGE = _image(CLIENT, 'dockerlab/ecommerce-mysql')


def _free_port():
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def _cleanup():
    for container in CLIENT.containers.list(all=True, filters={'name': 'h4-'}):
        if container.name.startswith('h4-'):
            container.remove(force=True, v=True)
    for network in CLIENT.networks.list(names=['h4-net-a', 'h4-net-b']):
        if network.name in ('h4-net-a', 'h4-net-b'):
            network.remove()


def _health(test):
    return {'test': ['CMD-SHELL', test], 'interval': 1_000_000_000, 'timeout': 3_000_000_000, 'retries': 30,
            'start_period': 60_000_000_000}


@pytest.fixture(scope='module')
def stack():
    _cleanup()
    subnet_a, subnet_b = unused_subnets(CLIENT.api.networks(), 2)
    cache_port = _free_port()
    CLIENT.networks.create('h4-net-a', driver='bridge', labels=LABELS,
                           ipam=docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=subnet_a)]))
    CLIENT.networks.create('h4-net-b', driver='bridge',
                           ipam=docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=subnet_b)]))
    try:
        run = CLIENT.containers.run
        run(MYSQL_IMAGE, name='h4-db', detach=True, network='h4-net-a',
            labels={**LABELS, 'dockerlab.component': 'db'}, environment={'MYSQL_RANDOM_ROOT_PASSWORD': '1'},
            healthcheck=_health('mysqladmin ping -h 127.0.0.1 --silent'))
        run(REDIS_IMAGE, name='h4-cache', detach=True, network='h4-net-a',
            networking_config={'h4-net-a': CLIENT.api.create_endpoint_config(aliases=['cache'])},
            labels={**LABELS, 'dockerlab.component': 'cache'}, ports={'6379/tcp': ('0.0.0.0', cache_port)},
            healthcheck=_health('redis-cli ping | grep -q PONG'))
        run(REDIS_IMAGE, ['redis-server', '--requirepass', REDIS_PASSWORD], name='h4-redis-auth', detach=True,
            network='h4-net-b')
        client = run(BASE_IMAGE, ['sleep', 'infinity'], name='h4-client', detach=True, network='h4-net-a',
                     labels={**LABELS, 'dockerlab.component': 'client'}, init=True)
        CLIENT.networks.get('h4-net-b').connect(client)
        stopped = run(BASE_IMAGE, ['true'], name='h4-stopped', detach=True, network='h4-net-a',
                      labels={**LABELS, 'dockerlab.component': 'stopped'})
        stopped.wait(timeout=30)
        services = {'h4_services': {
            'db': {'container_name': 'h4-db', 'networks': [{'network': 'a'}], 'expose': [3306],
                   'probe': {'kind': 'mysql'}},
            'cache': {'container_name': 'h4-cache', 'networks': [{'network': 'a', 'aliases': ['cache']}],
                      'expose': [6379],
                      'ports': [{'host_port': cache_port, 'container_port': 6379, 'bind_address': '127.0.0.1'}],
                      'probe': {'kind': 'redis'}},
            'client': {'container_name': 'h4-client', 'networks': [{'network': 'a'}],
                       'connects_to': [{'service': 'cache'}]},
            'stopped': {'container_name': 'h4-stopped', 'networks': [{'network': 'a'}]},
        }}
        networks = {'a': {'name': 'h4-net-a', 'subnet': subnet_a, 'internal': False}}
        flows = [{'from': 'client', 'to': 'db', 'port': 3306},
                 {'from': 'client', 'to': 'cache', 'port': 6380}]
        yield {'services': services, 'networks': networks, 'flows': flows, 'cache_port': cache_port,
               'topology': resolve(services, networks, stack_name=STACK, security_defaults=PLAIN)}
    finally:
        _cleanup()


def _address(name, network):
    return CLIENT.api.inspect_container(name)['NetworkSettings']['Networks'][network]['IPAddress']


def run_module(module, args, check_mode=False, capsys=None):
    if check_mode:
        args = dict(args, _ansible_check_mode=True)
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exit_info:
            module.main()
    out = capsys.readouterr().out
    return exit_info.value.code, json.loads(out)


def _wait(check, seconds=60):
    return run_check(Context(CLIENT), normalize_check(check), deadline_at=time.monotonic() + seconds)


def test_redis_probe_real_server(stack):
    auth_ip = _address('h4-redis-auth', 'h4-net-b')
    noauth = _wait({'kind': 'redis', 'host': auth_ip, 'timeout': 2})
    assert noauth['passed'], noauth
    assert noauth['observed']['auth'] == 'required'
    assert 'NOAUTH' in noauth['message']

    plain = _wait({'kind': 'redis', 'host': '127.0.0.1', 'port': stack['cache_port'], 'timeout': 2})
    assert plain['passed'] and plain['observed']['auth'] == 'not required', plain

    inside = _wait({'kind': 'redis', 'from_container': 'h4-client', 'host': 'h4-redis-auth', 'timeout': 2})
    assert inside['passed'] and inside['observed']['auth'] == 'required', inside


def test_redis_probe_with_password_file(stack, tmp_path):
    good = tmp_path / 'redis_password'
    good.write_text(REDIS_PASSWORD + '\n')
    bad = tmp_path / 'wrong'
    bad.write_text('not-it')
    auth_ip = _address('h4-redis-auth', 'h4-net-b')
    ok = _wait({'kind': 'redis', 'host': auth_ip, 'password_file': str(good), 'timeout': 2})
    assert ok['passed'] and ok['observed']['auth'] == 'ok', ok
    ok_inside = _wait({'kind': 'redis', 'from_container': 'h4-client', 'host': 'h4-redis-auth',
                       'password_file': str(good), 'timeout': 2})
    assert ok_inside['passed'], ok_inside
    wrong = run_check(Context(CLIENT), normalize_check(
        {'kind': 'redis', 'host': auth_ip, 'password_file': str(bad), 'timeout': 2}))
    assert not wrong['passed']
    assert wrong['message'].startswith('expected +OK then +PONG'), wrong
    assert 'WRONGPASS' in wrong['message'] or 'invalid' in wrong['message']


def test_mysql_probe_real_server(stack):
    from_host = _wait({'kind': 'mysql', 'host': _address('h4-db', 'h4-net-a'), 'timeout': 2})
    assert from_host['passed'], from_host
    assert 'MariaDB' in from_host['observed'].get('server_version', '') or from_host['observed']['kind'] == 'error'
    inside = _wait({'kind': 'mysql', 'from_container': 'h4-client', 'host': 'h4-db', 'timeout': 2})
    assert inside['passed'], inside
    assert inside['message'].startswith('MySQL protocol 10, server ')


def test_stack_health_module(stack, capsys):
    # a healthy part of the stack: wait for it (MariaDB takes a while to start), then it validates fast
    healthy = {'h4_services': {k: v for k, v in stack['services']['h4_services'].items() if k != 'stopped'}}
    args = {'topology': resolve(healthy, stack['networks'], stack_name=STACK, security_defaults=PLAIN),
            'stack_name': STACK, 'deadline': 60,
            'delay': 0.5}
    _code, ok = run_module(stack_health, args, capsys=capsys)
    assert ok.get('failed') is not True and ok['summary'] == {'total': 6, 'passed': 6, 'failed': 0}, ok['checks']
    started = time.monotonic()
    _code, ok = run_module(stack_health, dict(args, deadline=0), capsys=capsys)
    assert time.monotonic() - started < 2
    assert ok['summary']['failed'] == 0 and all(c['attempts'] == 1 for c in ok['checks'])
    names = [c['name'] for c in ok['checks']]
    assert names == ['container h4-cache', 'redis h4-cache', 'container h4-client', 'container h4-db',
                     'mysql h4-db', 'h4-client finds h4-cache by name']

    args = {
        'topology': stack['topology'], 'stack_name': STACK, 'fail_on_error': False,
        'checks': [
            {'kind': 'dns', 'container': 'h4-client', 'name': 'h4-cache', 'expected_container': 'h4-cache'},
            {'kind': 'dns', 'container': 'h4-client', 'name': 'cache', 'expected_container': 'h4-cache'},
            {'kind': 'exec', 'container': 'h4-client', 'command': 'echo hello; exit 3', 'rc': 3,
             'output_regex': '^hello'},
            {'kind': 'tcp', 'label': 'client to db', 'from_container': 'h4-client', 'host': 'h4-db', 'port': 3306},
            {'kind': 'tcp', 'host': '127.0.0.1', 'port': stack['cache_port']},
        ],
    }
    _code, result = run_module(stack_health, args, capsys=capsys)
    by_name = {check['name']: check for check in result['checks']}
    assert result['changed'] is False
    assert not by_name['container h4-stopped']['passed']
    assert by_name['container h4-stopped']['message'].startswith('expected running, saw exited (exit code 0)')
    for name in ('container h4-db', 'container h4-cache', 'container h4-client', 'mysql h4-db', 'redis h4-cache',
                 'h4-client finds h4-cache by name', 'dns h4-cache in h4-client', 'dns cache in h4-client',
                 'exec h4-client', 'client to db',
                 f"tcp 127.0.0.1:{stack['cache_port']}"):
        assert by_name[name]['passed'], by_name[name]
    assert by_name['container h4-db']['observed']['health'] == 'healthy'
    assert by_name['mysql h4-db']['observed']['server_version']
    assert result['summary'] == {'total': 12, 'passed': 11, 'failed': 1}

    # fail_on_error: one line per failed check
    _code, failed = run_module(stack_health, dict(args, fail_on_error=True, checks=[]), capsys=capsys)
    assert failed['failed'] is True
    assert failed['msg'].splitlines() == [
        'container h4-stopped: expected running, saw exited (exit code 0)']


def test_topology_report_module(stack, tmp_path, capsys):
    paths = {f'{fmt}_path': str(tmp_path / f'report.{ext}') for fmt, ext in
             (('json', 'json'), ('markdown', 'md'), ('mermaid', 'mmd'), ('dot', 'dot'))}
    args = {'stack_name': STACK, 'topology': stack['topology'], 'networks': stack['networks'],
            'flows': stack['flows'], 'probe_reachability': True, 'secrets_dir': '/srv/h4/secrets', **paths}
    started = time.monotonic()
    _code, result = run_module(topology_report, args, capsys=capsys)
    assert time.monotonic() - started < 15
    found = {(v['kind'], v['subject']) for v in result['violations']}
    assert ('port_bound_to_all_interfaces', 'h4-cache') in found, result['violations']
    assert ('extra_attachment', 'h4-client') in found
    assert ('container_not_running', 'h4-stopped') in found
    assert ('unexpected_flow', 'h4-client -> h4-cache:6379') in found
    assert ('unreachable_allowed', 'h4-client -> h4-cache:6380') in found
    assert ('unexpected_container', 'h4-redis-auth') not in found     # not labelled: not part of the stack
    messages = {v['kind']: v['message'] for v in result['violations']}
    assert 'bound to all interfaces, should be local' in messages['port_bound_to_all_interfaces']
    assert 'h4-net-b' in messages['extra_attachment']
    cells = {(c['from'], c['to'], c['port']): c for c in result['report']['reachability']['cells']}
    allowed = cells[('h4-client', 'h4-db', 3306)]
    assert allowed['expected'] and allowed['observed'] and not allowed['violation']
    assert result['changed'] is True
    assert all(entry['changed'] for entry in result['files'].values())
    assert json.loads((tmp_path / 'report.json').read_text()) == result['report']
    markdown = (tmp_path / 'report.md').read_text()
    assert '/srv/h4/secrets' in markdown and f"http://localhost:{stack['cache_port']}/" in markdown
    assert 'h4-net-a' in (tmp_path / 'report.mmd').read_text()

    # same stack, same files: nothing changes; check mode writes nothing
    _code, again = run_module(topology_report, args, capsys=capsys)
    assert again['changed'] is False, again['files']
    (tmp_path / 'report.md').write_text('old')
    _code, checked = run_module(topology_report, args, check_mode=True, capsys=capsys)
    assert checked['changed'] is True and checked['files']['markdown']['changed'] is True
    assert (tmp_path / 'report.md').read_text() == 'old'

    # fail_on_violation names every violation
    _code, failing = run_module(topology_report, dict(args, fail_on_violation=True, probe_reachability=False),
                                capsys=capsys)
    assert failing['failed'] is True
    assert 'port_bound_to_all_interfaces: container h4-cache publishes' in failing['msg']


def test_stack_health_holds_a_container_to_its_hardening(stack, capsys):
    """h4-client runs as root with every default capability: declared hardened (the stack's
    defaults) it fails, naming what is missing; declared plain (the control) it passes."""
    client_only = {'h4_services': {'client': dict(stack['services']['h4_services']['client'], connects_to=[])}}
    hardened = resolve(client_only, stack['networks'], stack_name=STACK)
    _code, result = run_module(stack_health, {'topology': hardened, 'stack_name': STACK, 'deadline': 5},
                               capsys=capsys)
    assert result.get('failed') is True
    assert 'container h4-client: expected hardened and limited as declared, saw it does not drop every capability ' \
           '(cap_drop ALL); it may gain privileges (no no-new-privileges); its root filesystem is writable; it runs ' \
           'as root' in result['msg'], result['msg']
    plain = resolve(client_only, stack['networks'], stack_name=STACK, security_defaults=PLAIN)
    _code, result = run_module(stack_health, {'topology': plain, 'stack_name': STACK, 'deadline': 5}, capsys=capsys)
    assert result.get('failed') is not True, result['checks']
