# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Unit tests of plugins/module_utils/_report: comparison, reachability, renderers (golden files).

Regenerate the golden files with ``UPDATE_GOLDEN=1 python -m pytest tests/unit/plugins/module_utils/test_report.py``
(never in CI) and review the diff.
"""

from __future__ import annotations

import copy
import json
import os
import random
from pathlib import Path

import pytest
from ansible_collections.dockerlab.ecommerce.plugins.module_utils._report import (
    build,
    compare,
    reachability,
    renderers,
)
from ansible_collections.dockerlab.ecommerce.plugins.module_utils._topology.model import resolve
from fake_docker import FakeDockerClient

GOLDEN = Path(__file__).parent / 'golden'
UPDATE = os.environ.get('UPDATE_GOLDEN') == '1'

NETWORKS = {
    'frontend': {'name': 'shop-frontend', 'subnet': '172.30.0.0/24', 'internal': False},
    'database': {'name': 'shop-database', 'subnet': '172.31.0.0/24', 'internal': True},
}
VOLUMES = {'db_data': 'shop-db-data'}
SERVICES = {
    'frontend_services': {
        'web': {'container_name': 'web', 'networks': [{'network': 'frontend', 'aliases': ['www']}],
                'expose': [80],
                'ports': [{'host_port': 8080, 'container_port': 80, 'bind_address': '127.0.0.1'}]},
        'api': {'container_name': 'api', 'networks': [{'network': 'frontend'}, {'network': 'database'}],
                'expose': [3000]},
    },
    'data_services': {
        'db': {'container_name': 'db', 'networks': [{'network': 'database', 'aliases': ['mysql']}],
               'expose': [3306], 'volumes': [{'volume': 'db_data', 'target': '/var/lib/mysql'}]},
        'cache': {'container_name': 'cache', 'networks': [{'network': 'database'}], 'expose': [6379]},
    },
}
FLOWS = [{'from': 'web', 'to': 'api', 'port': 3000}, {'from': 'api', 'to': 'db', 'port': 3306},
         {'from': 'api', 'to': 'cache', 'port': 6379}]


def topology(services=None):
    """The resolved topology of SERVICES (or of ``services``)."""
    return resolve(services or SERVICES, NETWORKS, VOLUMES, stack_name='shop')


RECORDS = topology()['containers']


# What a container started by the deploy has: every capability dropped, no-new-privileges,
# a read-only root, a non-root user and a memory limit (what the stack's defaults ask).
HARDENED = {'CapDrop': ['ALL'], 'SecurityOpt': ['no-new-privileges'], 'ReadonlyRootfs': True, 'Memory': 64 * 2 ** 20}


def _container(name, ident, networks, running=True, ports=None, mounts=None, labels=None, health=None, host=None):
    state = {'Status': 'running' if running else 'exited', 'Running': running, 'ExitCode': 0 if running else 137}
    if health:
        state['Health'] = {'Status': health, 'Log': [{'Output': 'ok'}]}
    return {
        'Id': ident * 8, 'Name': '/' + name, 'RestartCount': 0, 'State': state,
        'Image': f'sha256:{ident}', 'Config': {'Image': f'shop/{name}:1', 'User': '1000',
                                               'Labels': {'dockerlab.stack': 'shop', **(labels or {})}},
        'NetworkSettings': {'Networks': {net: {'IPAddress': ip if running else '', 'Aliases': aliases + [name, (ident * 8)[:12]]}
                                         for net, ip, aliases in networks},
                            'Ports': ports or {}},
        'HostConfig': {'PortBindings': ports or {}, **(HARDENED if host is None else host)},
        'Mounts': mounts or [],
    }


def _network(name, subnet, internal, members):
    return {'Name': name, 'Id': name * 2, 'Driver': 'bridge', 'Internal': internal,
            'IPAM': {'Config': [{'Subnet': subnet, 'Gateway': subnet.replace('0/24', '1')}]},
            'Containers': {f'id{i}': {'Name': n, 'IPv4Address': f'{ip}/24'} for i, (n, ip) in enumerate(members)}}


def raw_stack():
    """The inspect data of a stack with faults: web bound on 0.0.0.0, cache stopped, api missing,
    db on an extra network, an unlabelled-but-stack 'debug' container, a published port nobody declared."""
    containers = [
        _container('web', 'aaaa', [('shop-frontend', '172.30.0.10', ['www'])],
                   ports={'80/tcp': [{'HostIp': '0.0.0.0', 'HostPort': '8080'}, {'HostIp': '::', 'HostPort': '8080'}]},
                   labels={'dockerlab.component': 'web'}, health='healthy'),
        _container('db', 'bbbb', [('shop-database', '172.31.0.10', ['mysql']), ('shop-frontend', '172.30.0.11', [])],
                   ports={'3306/tcp': [{'HostIp': '127.0.0.1', 'HostPort': '3306'}]},
                   mounts=[{'Type': 'volume', 'Name': 'shop-db-data', 'Destination': '/var/lib/mysql', 'RW': True}],
                   labels={'dockerlab.component': 'db'}),
        _container('cache', 'cccc', [('shop-database', '', [])], running=False, labels={'dockerlab.component': 'cache'}),
        _container('debug', 'dddd', [('shop-frontend', '172.30.0.99', [])], labels={'dockerlab.component': 'debug'}),
    ]
    networks = [
        _network('shop-frontend', '172.30.0.0/24', False,
                 [('web', '172.30.0.10'), ('db', '172.30.0.11'), ('debug', '172.30.0.99')]),
        _network('shop-database', '172.31.0.0/24', False, [('db', '172.31.0.10')]),
    ]
    volumes = [{'Name': 'shop-db-data', 'Driver': 'local'}]
    return {'networks': networks, 'containers': containers, 'volumes': volumes}


def build_shop():
    return build.build_report(raw_stack(), 'shop', RECORDS, NETWORKS, VOLUMES, FLOWS, '/srv/shop/secrets')


def kinds(report):
    return sorted((v['kind'], v['subject']) for v in report['violations'])


def test_compare_reports_every_fault_by_name():
    report = build_shop()
    assert kinds(report) == sorted([
        ('missing_container', 'api'),
        ('container_not_running', 'cache'),
        ('extra_attachment', 'db'),
        ('unexpected_port', 'db'),
        ('unexpected_container', 'debug'),
        ('network_mismatch', 'shop-database'),
        ('port_bound_to_all_interfaces', 'web'),
    ])
    found = {(v['kind'], v['subject']): v['message'] for v in report['violations']}
    assert found[('port_bound_to_all_interfaces', 'web')] == (
        'container web publishes 8080/tcp on 0.0.0.0: bound to all interfaces, should be local '
        '(declared bind_address 127.0.0.1)')
    assert found[('extra_attachment', 'db')] == 'container db is attached to network shop-frontend, which it does not declare'
    assert found[('missing_container', 'api')] == "container api (frontend_services['api']) does not exist"
    assert found[('container_not_running', 'cache')] == 'container cache is exited (exit code 137), not running'
    assert found[('unexpected_port', 'db')].startswith('container db publishes 3306/tcp on 127.0.0.1')
    assert found[('network_mismatch', 'shop-database')] == 'network shop-database is not internal, declared internal: true'
    assert found[('unexpected_container', 'debug')].startswith('container debug carries the stack label')
    assert set(found) == {('missing_container', 'api'), ('container_not_running', 'cache'), ('extra_attachment', 'db'),
                          ('unexpected_port', 'db'), ('unexpected_container', 'debug'),
                          ('network_mismatch', 'shop-database'), ('port_bound_to_all_interfaces', 'web')}
    assert all(v['kind'] in compare.VIOLATION_KINDS for v in report['violations'])


def test_a_container_below_its_hardening_is_reported():
    raw = raw_stack()
    # db recreated by hand with an extra capability, a writable root and no limits; and a
    # container started by hand beside the stack, as root, with nothing dropped
    db = next(c for c in raw['containers'] if c['Name'] == '/db')
    db['HostConfig'].update(CapAdd=['NET_ADMIN'], ReadonlyRootfs=False, SecurityOpt=None)
    rogue = _container('rogue', 'eeee', [('shop-frontend', '172.30.0.98', [])], host={'CapAdd': ['SYS_ADMIN']})
    rogue['Config']['User'] = ''
    raw['containers'].append(rogue)
    report = build.build_report(raw, 'shop', RECORDS, NETWORKS, VOLUMES, FLOWS, security={})
    found = {(v['kind'], v['subject']): v['message'] for v in report['violations'] if v['kind'] == 'below_hardening'}
    assert set(found) == {('below_hardening', 'db'), ('below_hardening', 'rogue')}
    assert found[('below_hardening', 'db')] == (
        "container db is below its declared hardening (data_services['db'].security/resources): it has capabilities "
        'NET_ADMIN beyond the declared (none); it may gain privileges (no no-new-privileges); its root filesystem is '
        'writable')
    assert found[('below_hardening', 'rogue')] == (
        'container rogue is below its declared hardening (stack_security): it does not drop every capability '
        '(cap_drop ALL); it has capabilities SYS_ADMIN beyond the declared (none); it may gain privileges (no '
        'no-new-privileges); its root filesystem is writable; it runs as root; it has no memory limit')
    shown = next(c for c in report['containers'] if c['name'] == 'rogue')['hardening']
    assert shown['user'] == 'root' and shown['cap_add'] == ['SYS_ADMIN'] and shown['limits']['memory'] is None
    # the control: the same stack without the changes has no such violation
    assert not [v for v in build_shop()['violations'] if v['kind'] == 'below_hardening']


def test_limits_above_the_declared_and_the_image_user():
    services = copy.deepcopy(SERVICES)
    services['data_services']['db']['resources'] = {'memory': '64m', 'cpus': 0.5, 'pids': 100}
    records = topology(services)['containers']
    raw = raw_stack()
    db = next(c for c in raw['containers'] if c['Name'] == '/db')
    db['Config']['User'] = ''
    db['HostConfig'].update(Memory=128 * 2 ** 20, NanoCpus=500000000)
    raw['image_users'] = {db['Image']: 'mysql'}
    report = build.build_report(raw, 'shop', records, NETWORKS, VOLUMES, FLOWS)
    found = {v['subject']: v['message'] for v in report['violations'] if v['kind'] == 'below_hardening'}
    assert found == {'db': "container db is below its declared hardening (data_services['db'].security/resources): "
                           'its memory limit 128m is above the declared 64m; it has no pids limit (declared 100)'}
    assert next(c for c in report['containers'] if c['name'] == 'db')['hardening']['user'] == 'mysql'


def test_missing_things_and_bad_flows():
    raw = raw_stack()
    raw['networks'] = raw['networks'][:1]
    raw['volumes'] = []
    flows = FLOWS + [{'from': 'web', 'to': 'nosuch', 'port': 80}]
    services = copy.deepcopy(SERVICES)
    services['frontend_services']['web']['ports'].append({'host_port': 8443, 'container_port': 443,
                                                          'bind_address': '127.0.0.1'})
    services['data_services']['db']['ports'] = [{'host_port': 3306, 'container_port': 3306,
                                                 'bind_address': '10.0.0.1'}]
    report = build.build_report(raw, 'shop', topology(services)['containers'], NETWORKS, VOLUMES, flows)
    found = {(v['kind'], v['subject']): v['message'] for v in report['violations']}
    assert found[('missing_network', 'shop-database')] == "network shop-database (stack_networks['database']) does not exist"
    assert ('missing_volume', 'shop-db-data') in found
    assert found[('invalid_flow', 'stack_flows[3]')] == "stack_flows[3]: to 'nosuch' is not a declared service"
    assert found[('missing_port', 'web')] == 'container web does not publish 8443/tcp on 127.0.0.1, as declared'
    assert found[('port_bind_mismatch', 'db')] == 'container db publishes 3306/tcp on 127.0.0.1, declared bind_address 10.0.0.1'
    missing = [n for n in report['networks'] if n['name'] == 'shop-database'][0]
    assert missing['present'] is False and missing['subnets'] == ['172.31.0.0/24']


def test_report_is_canonical_and_order_independent():
    first = build_shop()
    raw = raw_stack()
    random.Random(4).shuffle(raw['containers'])
    raw['networks'].reverse()
    second = build.build_report(raw, 'shop', RECORDS, NETWORKS, VOLUMES, list(reversed(FLOWS)), '/srv/shop/secrets')
    assert renderers.render_json(first) == renderers.render_json(second)
    assert first['schema_version'] == 1
    web = [c for c in first['containers'] if c['name'] == 'web'][0]
    assert web['networks'] == [{'name': 'shop-frontend', 'key': 'frontend', 'ipv4_address': '172.30.0.10',
                                'aliases': ['www']}]
    assert [p['host_ip'] for p in web['ports']] == ['0.0.0.0', '::']
    assert first['volumes'] == [{'name': 'shop-db-data', 'key': 'db_data', 'declared': True, 'present': True,
                                 'driver': 'local', 'mounted_by': ['db']}]
    assert 'Id' not in json.dumps(first)


def reach_client(open_endpoints):
    """A client whose reachability exec finds ``(container, 'address:port')`` open, the rest closed."""
    def answer(container, environment):
        lines = [f"{t} {'open' if (container, t) in open_endpoints else 'closed'}"
                 for t in environment['DL_TARGETS'].split()]
        return 0, ('\n'.join(lines) + '\n').encode(), b''
    return FakeDockerClient(answer=answer)


def test_reachability_matrix_and_violations():
    report = build_shop()
    client = reach_client({('web', '172.31.0.10:3306'), ('db', '172.30.0.10:80')})
    matrix = reachability.probe_reachability(client, report['containers'], RECORDS, FLOWS, timeout=1)
    # one exec per running declared source (db, web), none from the stopped cache or the undeclared debug
    calls = {container: environment for container, _command, environment in client.api.execs}
    assert sorted(calls) == ['db', 'web'] and len(client.api.execs) == 2
    assert calls['web']['DL_TARGETS'].split() == ['172.30.0.11:3306', '172.31.0.10:3306']
    assert calls['web']['DL_T'] == '1'
    assert matrix['skipped'] == [{'container': 'api', 'reason': 'missing, so no connection was tried from it'},
                                 {'container': 'cache', 'reason': 'not running, so no connection was tried from it'}]
    cells = {(c['from'], c['to'], c['port']): c for c in matrix['cells']}
    assert cells[('web', 'db', 3306)] == {'from': 'web', 'from_service': 'web', 'to': 'db', 'to_service': 'db',
                                          'port': 3306, 'expected': False, 'observed': True,
                                          'via': ['172.31.0.10'], 'violation': True}
    assert cells[('db', 'web', 80)]['violation'] is True
    assert cells[('db', 'cache', 6379)] == {'from': 'db', 'from_service': 'db', 'to': 'cache', 'to_service': 'cache',
                                            'port': 6379, 'expected': False, 'observed': False, 'via': [],
                                            'violation': False}
    build.add_reachability(report, matrix)
    found = {(v['kind'], v['subject']): v['message'] for v in report['violations']}
    assert found[('unexpected_flow', 'web -> db:3306')] == (
        'flow web -> db:3306 is reachable but stack_flows does not allow it (web -> db:3306)')
    assert ('unexpected_flow', 'db -> web:80') in found


def test_unreachable_allowed_flow():
    report = build_shop()
    flows = [{'from': 'web', 'to': 'db', 'port': 3306}, {'from': 'db', 'to': 'cache', 'port': 6379}]
    matrix = reachability.probe_reachability(reach_client(set()), report['containers'], RECORDS, flows)
    violations = reachability.reachability_violations(matrix, report['containers'])
    assert {(v['kind'], v['subject']): v['message'] for v in violations} == {
        ('unreachable_allowed', 'web -> db:3306'): 'flow web -> db:3306 is allowed by stack_flows but unreachable',
        ('unreachable_allowed', 'db -> cache:6379'):
            'flow db -> cache:6379 is allowed by stack_flows but unreachable (cache is not running)',
    }


def test_reachability_exec_failures_are_skipped():
    report = build_shop()

    def answer(container, _environment):
        if container == 'web':
            return 127, b'', b'the container has none of python3, bash with timeout, or busybox (nc)\n'
        raise RuntimeError('409 Client Error: Conflict (Container bbbb is restarting, wait until the container '
                           'is running)')
    matrix = reachability.probe_reachability(FakeDockerClient(answer=answer), report['containers'], RECORDS, FLOWS)
    assert matrix['cells'] == []
    assert [s['container'] for s in matrix['skipped']] == ['api', 'cache', 'db', 'web']
    assert 'busybox' in matrix['skipped'][3]['reason']
    assert matrix['skipped'][2]['reason'] == 'container db is not running'


def test_parse_reach_output():
    assert reachability.parse_reach_output('1.2.3.4:80 open\n1.2.3.4:81 closed\ngarbage\n') == {
        '1.2.3.4:80': True, '1.2.3.4:81': False}


# --- golden files ---------------------------------------------------------

FIXED_REPORT = {
    'schema_version': 1,
    'stack_name': 'shop',
    'secrets_dir': '/srv/shop/secrets',
    'networks': [
        {'name': 'shop-database', 'key': 'database', 'declared': True, 'present': True, 'driver': 'bridge',
         'internal': True, 'subnets': ['172.31.0.0/24'], 'gateways': ['172.31.0.1'],
         'members': [{'container': 'db', 'ipv4_address': '172.31.0.10', 'aliases': ['mysql']}]},
        {'name': 'shop-frontend', 'key': 'frontend', 'declared': True, 'present': True, 'driver': 'bridge',
         'internal': False, 'subnets': ['172.30.0.0/24'], 'gateways': ['172.30.0.1'],
         'members': [{'container': 'db', 'ipv4_address': '172.30.0.11', 'aliases': []},
                     {'container': 'web', 'ipv4_address': '172.30.0.10', 'aliases': ['www']}]},
    ],
    'containers': [
        {'name': 'cache', 'service': 'cache', 'declared': True, 'present': True, 'state': 'exited', 'running': False,
         'exit_code': 137, 'health': 'none', 'restart_count': 0, 'image': 'shop/cache:1',
         'networks': [{'name': 'shop-database', 'key': 'database', 'ipv4_address': None, 'aliases': []}],
         'ports': [], 'mounts': []},
        {'name': 'db', 'service': 'db', 'declared': True, 'present': True, 'state': 'running', 'running': True,
         'exit_code': 0, 'health': 'none', 'restart_count': 0, 'image': 'shop/db:1',
         'networks': [{'name': 'shop-database', 'key': 'database', 'ipv4_address': '172.31.0.10', 'aliases': ['mysql']},
                      {'name': 'shop-frontend', 'key': 'frontend', 'ipv4_address': '172.30.0.11', 'aliases': []}],
         'ports': [],
         'mounts': [{'type': 'volume', 'source': 'shop-db-data', 'destination': '/var/lib/mysql', 'read_only': False}],
         'hardening': {'user': '999:999', 'runs_as_root': False, 'cap_add': [], 'cap_drop': ['ALL'],
                       'no_new_privileges': True, 'read_only': True, 'privileged': False,
                       'limits': {'memory': 536870912, 'memory_reservation': None, 'cpus': 1.0, 'pids': 264}}},
        {'name': 'web', 'service': 'web', 'declared': True, 'present': True, 'state': 'running', 'running': True,
         'exit_code': 0, 'health': 'healthy', 'restart_count': 0, 'image': 'shop/web:1',
         'networks': [{'name': 'shop-frontend', 'key': 'frontend', 'ipv4_address': '172.30.0.10', 'aliases': ['www']}],
         'ports': [{'container_port': 80, 'protocol': 'tcp', 'host_ip': '0.0.0.0', 'host_port': 8080},
                   {'container_port': 53, 'protocol': 'udp', 'host_ip': '127.0.0.1', 'host_port': 5353}],
         'mounts': [{'type': 'bind', 'source': '/srv/shop/nginx', 'destination': '/etc/nginx/conf.d',
                     'read_only': True}],
         'hardening': {'user': 'root', 'runs_as_root': True, 'cap_add': ['CHOWN', 'SETGID', 'SETUID'], 'cap_drop': [],
                       'no_new_privileges': False, 'read_only': False, 'privileged': False,
                       'limits': {'memory': None, 'memory_reservation': None, 'cpus': None, 'pids': None}}},
    ],
    'volumes': [{'name': 'shop-db-data', 'key': 'db_data', 'declared': True, 'present': True, 'driver': 'local',
                 'mounted_by': ['db']}],
    'flows': [{'from': 'web', 'to': 'db', 'port': 3306}],
    'reachability': {
        'timeout': 1.0,
        'cells': [
            {'from': 'db', 'from_service': 'db', 'to': 'web', 'to_service': 'web', 'port': 80, 'expected': False,
             'observed': True, 'via': ['172.30.0.10'], 'violation': True},
            {'from': 'web', 'from_service': 'web', 'to': 'db', 'to_service': 'db', 'port': 3306, 'expected': True,
             'observed': False, 'via': [], 'violation': True},
        ],
        'skipped': [{'container': 'cache', 'reason': 'not running, so no connection was tried from it'}],
    },
    'violations': [
        {'kind': 'container_not_running', 'subject': 'cache',
         'message': 'container cache is exited (exit code 137), not running'},
        {'kind': 'unexpected_flow', 'subject': 'db -> web:80',
         'message': 'flow db -> web:80 is reachable but stack_flows does not allow it (db -> web:80)'},
        {'kind': 'port_bound_to_all_interfaces', 'subject': 'web',
         'message': 'container web publishes 8080/tcp on 0.0.0.0: bound to all interfaces, should be local '
                    '(declared bind_address 127.0.0.1)'},
        {'kind': 'unreachable_allowed', 'subject': 'web -> db:3306',
         'message': 'flow web -> db:3306 is allowed by stack_flows but unreachable'},
    ],
    'summary': {'networks': 2, 'containers': 3, 'running': 2, 'violations': 4},
}


@pytest.mark.parametrize('renderer, filename', [
    (renderers.render_markdown, 'report.md'),
    (renderers.render_mermaid, 'report.mmd'),
    (renderers.render_dot, 'report.dot'),
    (renderers.render_json, 'report.json'),
])
def test_golden(renderer, filename):
    rendered = renderer(copy.deepcopy(FIXED_REPORT))
    path = GOLDEN / filename
    if UPDATE:
        path.write_text(rendered, encoding='utf-8')
    assert path.exists(), f'{path} is missing; create it with UPDATE_GOLDEN=1'
    assert rendered == path.read_text(encoding='utf-8'), f'{filename} differs; review, then UPDATE_GOLDEN=1'
    assert renderer(copy.deepcopy(FIXED_REPORT)) == rendered   # deterministic


def test_markdown_never_prints_secrets_and_handles_empty_report():
    empty = {'schema_version': 1, 'stack_name': 'x', 'secrets_dir': None, 'networks': [], 'containers': [],
             'volumes': [], 'flows': [], 'reachability': None, 'violations': [],
             'summary': {'networks': 0, 'containers': 0, 'running': 0, 'violations': 0}}
    text = renderers.render_markdown(empty)
    assert 'No container publishes a port.' in text and 'None.' in text
    assert renderers.render_mermaid(empty).startswith('%% topology of the stack x')
    assert renderers.render_dot(empty).rstrip().endswith('}')


def test_dot_escapes_quotes():
    tricky = copy.deepcopy(FIXED_REPORT)
    tricky['stack_name'] = 'a "quoted" \\ name'
    assert 'digraph "a \\"quoted\\" \\\\ name" {' in renderers.render_dot(tricky)
