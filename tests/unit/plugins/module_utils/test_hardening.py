# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Resources and hardening as service fields: parsing, the stack's defaults under a service's
own, what the precheck refuses, what docker_container gets, and the default lab's budget."""

from __future__ import annotations

import copy

import pytest
from ansible_collections.dockerlab.ecommerce.plugins.module_utils._limits.update import (
    limit_changes,
    update_body,
    wanted_limits,
)
from ansible_collections.dockerlab.ecommerce.plugins.module_utils._topology import hardening
from ansible_collections.dockerlab.ecommerce.plugins.module_utils._topology.targets import containers_target
from ansible_collections.dockerlab.ecommerce.plugins.module_utils._topology.validation import validate_topology
from conftest import DEFAULTS, default_model

GIB = 2 ** 30


@pytest.mark.parametrize('text, number', [
    ('96m', 96 * 2 ** 20), ('1g', GIB), ('512mb', 512 * 2 ** 20), ('128M', 128 * 2 ** 20), (1024, 1024),
    ('1.5g', int(1.5 * GIB)), (['128M', '96m'], 224 * 2 ** 20),
])
def test_sizes(text, number):
    assert hardening.parse_size(text) == number


@pytest.mark.parametrize('bad', ['lots', '-1m', True, None, '', ['1m', 'x']])
def test_bad_sizes(bad):
    assert hardening.parse_size(bad) is None


def test_security_defaults_under_the_service():
    service = {'security': {'capabilities': {'cap_setuid': 'workers', 'CHOWN': 'temp dirs'}, 'read_only': False,
                            'why': ' writes  config ', 'tmpfs': {'/run': 'uid=101'}}}
    security = hardening.security_of(service, {'cap_drop': ['ALL'], 'no_new_privileges': True, 'read_only': True})
    assert security == {'cap_drop': ['ALL'], 'cap_add': ['CHOWN', 'SETUID'],
                        'capabilities': {'CHOWN': 'temp dirs', 'SETUID': 'workers'}, 'no_new_privileges': True,
                        'read_only': False, 'tmpfs': {'/run': 'uid=101'}, 'non_root': True, 'why': 'writes config'}


def test_stack_resources_override_one_component():
    service = {'resources': {'memory': '128m', 'cpus': 1.0, 'pids': 64}}
    assert hardening.resources_of('a', service, {'a': {'memory': '1g'}, 'b': {'memory': '2g'}}) == {
        'memory': '1g', 'cpus': 1.0, 'pids': 64}


def _errors(services, resources=None):
    networks, volumes = copy.deepcopy(DEFAULTS['networks']), copy.deepcopy(DEFAULTS['volumes'])
    return validate_topology(networks, volumes, services, resources=resources, security=DEFAULTS['security'])


def test_the_precheck_refuses_a_limit_below_what_starts():
    services = copy.deepcopy(DEFAULTS['services'])
    assert _errors(services) == []
    errors = _errors(services, {'mysql-db': {'memory': '128m', 'pids': 50}, 'redis-cache': {'memory': '200m'}})
    found = {error['variable']: error['message'] for error in errors}
    assert set(found) == {"stack_resources['mysql-db'].memory", "stack_resources['mysql-db'].pids",
                          "stack_resources['mysql-db'].memory_reservation", "stack_resources['redis-cache'].memory"}
    assert found["stack_resources['mysql-db'].memory_reservation"].startswith("192m is above mysql-db's memory limit")
    assert found["stack_resources['mysql-db'].memory"].startswith(
        '128m is below the 224m mysql-db needs to start (the InnoDB buffer pool (data_mysql_innodb_buffer_pool_size) '
        'plus about 96m of its own')
    assert found["stack_resources['mysql-db'].memory"].endswith(
        "set stack_resources['mysql-db'].memory (or data_services['mysql-db'].resources.memory) to at least 224m")
    assert found["stack_resources['mysql-db'].pids"].startswith('50 is below the 232 mysql-db needs to start')
    assert found["stack_resources['redis-cache'].memory"].startswith('200m is below the 288m redis-cache needs')


def test_the_precheck_refuses_values_that_are_no_limits():
    services = copy.deepcopy(DEFAULTS['services'])
    services['backend_services']['user-service']['security'] = {'tmpfs': {'tmp': ''}, 'capabilities': ['net admin']}
    errors = _errors(services, {'api-gateway': {'memory': 'lots', 'cpus': 'two', 'memory_reservation': '1g'}})
    found = {error['variable']: error['message'] for error in errors}
    assert found["stack_resources['api-gateway'].memory"] == (
        "'lots' is not a valid memory for api-gateway: write a size such as 256m or 1g")
    assert found["stack_resources['api-gateway'].cpus"].endswith('write a number of CPUs such as 0.5')
    assert found["backend_services['user-service'].security.tmpfs"] == (
        "'tmp' is not an absolute path inside the container")
    assert "'NET ADMIN' is not a Linux capability name" in found["backend_services['user-service'].security.capabilities"]


def test_docker_container_gets_the_hardening_and_the_limits():
    model = default_model('offline')
    create = {args['name']: args for args in containers_target(model)['create']}
    balancer, database = create['load-balancer'], create['mysql-db']
    assert balancer['cap_drop'] == ['ALL'] and balancer['capabilities'] == ['CHOWN', 'SETGID', 'SETUID']
    assert balancer['security_opts'] == ['no-new-privileges'] and balancer['read_only'] is True
    assert sorted(balancer['tmpfs']) == ['/run', '/var/cache/nginx', '/var/lib/nginx']
    assert balancer['user'] is None   # root, as the official image: its declared why says so
    assert database['user'] == '999:999' and database['capabilities'] == []
    assert '/run/mysqld:uid=999,gid=999' in database['tmpfs']
    assert database['memory'] == database['memory_swap'] == '512m'
    assert database['limits'] == {'name': 'mysql-db', 'memory': '512m', 'memory_swap': '512m',
                                  'memory_reservation': '192m', 'cpus': 1.0, 'pids_limit': 264}


@pytest.mark.parametrize('profile', ['offline', 'upstream'])
def test_every_container_is_hardened_and_limited(profile):
    for record in default_model(profile)['containers']:
        security = record['security']
        assert security['cap_drop'] == ['ALL'] and security['no_new_privileges'], record['name']
        assert hardening.parse_size(record['resources'].get('memory')), record['name']
        assert record['resources'].get('cpus') and record['resources'].get('pids'), record['name']
        # each capability added back, and each default lowered, says why
        assert all(security['capabilities'].values()), record['name']
        if not security['read_only'] or not security['non_root']:
            assert security['why'], record['name']
        if security['non_root']:
            assert str(record['user'] or '').split(':', maxsplit=1)[0] not in ('', '0', 'root'), record['name']


def test_the_default_lab_fits_a_4_gb_host():
    """The offline lab (what runs without a registry) leaves a GB of a 4 GB host free at its
    limits; its reservations are far below; no container may take both cores."""
    records = default_model('offline')['containers']
    total, unlimited = hardening.total_memory(records)
    assert unlimited == []
    assert total <= 3 * GIB, hardening.show_size(total)
    assert sum(hardening.parse_size(r['resources']['memory_reservation']) for r in records) <= GIB
    assert all(float(r['resources']['cpus']) < 2 for r in records)


def test_limits_changed_in_place():
    wanted = wanted_limits({'name': 'db', 'memory': '512m', 'memory_swap': '512m', 'memory_reservation': None,
                            'cpus': 1.5, 'pids_limit': '300'})
    assert wanted == {'Memory': 512 * 2 ** 20, 'MemorySwap': 512 * 2 ** 20, 'NanoCpus': 1500000000, 'PidsLimit': 300}
    host = {'Memory': 256 * 2 ** 20, 'MemorySwap': 256 * 2 ** 20, 'NanoCpus': 1500000000, 'PidsLimit': -1}
    changes = limit_changes(host, wanted)
    assert changes == {'Memory': (256 * 2 ** 20, 512 * 2 ** 20), 'MemorySwap': (256 * 2 ** 20, 512 * 2 ** 20),
                       'PidsLimit': (0, 300)}
    assert update_body(changes) == {'Memory': 512 * 2 ** 20, 'MemorySwap': 512 * 2 ** 20, 'PidsLimit': 300}
    assert limit_changes(dict(host, Memory=512 * 2 ** 20, MemorySwap=512 * 2 ** 20, PidsLimit=300), wanted) == {}
    with pytest.raises(ValueError, match="db: cpus 'two' is not a valid value"):
        wanted_limits({'name': 'db', 'cpus': 'two'})


def test_the_precheck_refuses_fields_that_are_no_mappings():
    services = copy.deepcopy(DEFAULTS['services'])
    services['data_services']['redis-cache']['resources'] = '256m'
    services['data_services']['redis-cache']['security'] = ['ALL']
    found = {error['variable']: error['message'] for error in _errors(services, {'mysql-db': '1g'})}
    assert found["data_services['redis-cache'].resources"].startswith("'256m' is not a mapping")
    assert found["data_services['redis-cache'].security"].startswith("['ALL'] is not a mapping")
    assert found["stack_resources['mysql-db']"] == "'1g' is not a mapping; write {memory: 1g}"
