# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The filters over the resolved topology (plugins/filter/model.py): stack_model, stack_target,
stack_tier_files, upstream_servers, flow_policy and scrape_jobs."""

from __future__ import annotations

import re

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.dockerlab.ecommerce.plugins.filter.model import (
    FilterModule,
    flow_policy,
    scrape_jobs,
    stack_model,
    stack_target,
    stack_tier_files,
    upstream_servers,
)
from conftest import default_model

NETWORKS = {'database': {'name': 'ecommerce-database', 'subnet': '172.22.0.0/16'},
            'frontend': {'name': 'ecommerce-frontend', 'subnet': '172.20.0.0/16'}}
VOLUMES = {'db_data': 'ecommerce-db-data'}
IMAGES = {'mysql': {'upstream': 'mysql:8.4', 'recipe': 'mysql'}, 'nginx': {'upstream': 'nginx:1.27', 'recipe': 'nginx'},
          'mongodb': {'upstream': 'mongo:8.0', 'skip_reason': 'no Debian package'}}
HEALTHCHECK = {'interval': '5s', 'retries': 10}


def services():
    return {
        'data_services': {
            'mysql-db': {
                'container_name': 'mysql-db', 'image_component': 'mysql', 'expose': [3306],
                'networks': [{'network': 'database', 'aliases': ['mysql'], 'ipv4_address': '172.22.0.10'}],
                'volumes': [{'volume': 'db_data', 'target': '/var/lib/mysql'}],
                'config_files': [{'src': 'my.cnf.j2', 'dest': 'conf.d/my.cnf', 'target': '/etc/mysql/conf.d/my.cnf'}],
                'secrets': [{'name': 'root_password', 'var': 'data_mysql_root_password', 'target': '/run/secrets/pw'}],
                'env': {'PORT': 3306},
                'resources': {'memory': '512m', 'memory_reservation': '256m', 'cpus': 1.5, 'pids': 200},
                'healthcheck': {'test': ['CMD', 'true'], 'retries': 3},
            },
            'mongodb': {'container_name': 'mongodb', 'image_component': 'mongodb', 'expose': [27017],
                        'networks': [{'network': 'database'}],
                        'config_files': [{'src': 'mongod.conf.j2', 'dest': 'mongod.conf', 'target': '/etc/mongod.conf'}]},
        },
        'frontend_services': {
            'load-balancer': {
                'container_name': 'load-balancer', 'image_component': 'nginx', 'order': 90, 'expose': [80],
                'networks': [{'network': 'frontend'}],
                'ports': [{'host_port': 8080, 'container_port': 80},
                          {'container_port': 8443, 'bind_address': '127.0.0.1'},
                          {'host_port': 5514, 'container_port': 514, 'protocol': 'udp', 'bind_address': '127.0.0.1'}],
                'config_files': [{'src': 'lb.conf.j2', 'dest': 'conf.d/default.conf'}],
                'config_dirs': [{'dest': 'conf.d', 'target': '/etc/nginx/conf.d'}],
                'reload': {'check': ['nginx', '-t'], 'command': ['nginx', '-s', 'reload']},
                'healthcheck': {'test': ['CMD', 'curl', '-f', 'http://127.0.0.1/']},
                'connects_to': ['web-server'],
            },
            'web-server': {'container_name': 'web-server', 'image_component': 'nginx', 'replicas': 3, 'order': 10,
                           'networks': [{'network': 'frontend', 'aliases': ['web']}], 'expose': [8080, 80],
                           'metrics': {'port': 9113, 'job': 'web'}, 'connects_to': ['mongodb', 'mysql-db']},
            'isolated': {'container_name': 'isolated', 'image': 'busybox', 'order': 5},
        },
    }


def model(profile='offline', **arguments):
    return stack_model(services(), NETWORKS, VOLUMES, IMAGES, {'mysql': 'dl/mysql:abc'}, profile,
                       'ecommerce', '/opt/dl', HEALTHCHECK, **arguments)


def by_name(target):
    return {entry['name']: entry for entry in target['create']}


# --------------------------------------------------------------------------- stack_model

def test_the_filters_are_registered():
    assert set(FilterModule().filters()) == {'stack_model', 'stack_target', 'stack_tier_files', 'upstream_servers',
                                             'flow_policy', 'scrape_jobs'}


def test_stack_model_takes_the_role_arguments_in_their_order():
    log = {'driver': 'syslog', 'options': {'tag': '{{.Name}}'}}
    resolved = stack_model(services(), NETWORKS, VOLUMES, IMAGES, {'mysql': 'dl/mysql:abc'}, 'upstream', 'lab',
                           '/srv/conf', HEALTHCHECK, log, 'http://127.0.0.1:9999')
    mysql = next(r for r in resolved['containers'] if r['name'] == 'mysql-db')
    assert resolved['profile'] == 'upstream'
    assert mysql['image'] == 'dl/mysql:abc'
    assert mysql['labels']['dockerlab.stack'] == 'lab'
    assert mysql['mounts'][1]['source'] == '/srv/conf/mysql-db/conf.d/my.cnf'
    assert mysql['healthcheck'] == {'test': ['CMD', 'true'], 'interval': '5s', 'retries': 3}
    assert mysql['log'] == log
    assert 'mongodb' in {r['component'] for r in resolved['containers']}


@pytest.mark.parametrize('change, message', [
    (lambda s: s['data_services']['mysql-db']['networks'][0].update(network='db'),
     "data_services['mysql-db'].networks: mysql-db uses network 'db', which stack_networks does not declare"),
    (lambda s: s['data_services']['mysql-db']['volumes'][0].update(volume='nope'),
     "data_services['mysql-db'].volumes: mysql-db uses volume 'nope'"),
    (lambda s: s['data_services']['mysql-db'].update(image_component='mariadb'),
     "data_services['mysql-db'].image_component: 'mariadb' is not an image of any tier"),
    (lambda s: s['data_services']['mysql-db']['secrets'][0].update(template='pw.j2'),
     "data_services['mysql-db'].secrets: secret 'root_password' needs exactly one of 'var'"),
])
def test_a_topology_error_is_a_filter_error(change, message):
    broken = services()
    change(broken)
    with pytest.raises(AnsibleFilterError, match=f'^{re.escape(message)}'):
        stack_model(broken, NETWORKS, VOLUMES, IMAGES, {}, 'offline')


# --------------------------------------------------------------------------- stack_target

def test_target_creates_in_start_order_and_skips_what_the_profile_leaves_out():
    target = stack_target(model('offline'))
    assert [entry['name'] for entry in target['create']] == [
        'isolated', 'web-server-1', 'web-server-2', 'web-server-3', 'mysql-db', 'load-balancer']
    assert [(entry['component'], entry['name']) for entry in target['skipped']] == [('mongodb', 'mongodb')]
    assert target['skipped'][0]['reason'].endswith(': no Debian package')
    # Only containers with a healthcheck are waited for.
    assert target['wait'] == ['mysql-db', 'load-balancer']
    upstream = stack_target(model('upstream'))
    assert 'mongodb' in by_name(upstream) and upstream['skipped'] == []


def test_target_of_one_tier_or_part_of_it():
    resolved = model('offline')
    data = stack_target(resolved, 'data')
    assert [entry['name'] for entry in data['create']] == ['mysql-db']
    assert [entry['name'] for entry in data['skipped']] == ['mongodb']
    frontend = stack_target(resolved, 'frontend', ['web-server'])
    assert [entry['name'] for entry in frontend['create']] == ['web-server-1', 'web-server-2', 'web-server-3']
    assert frontend['wait'] == [] and frontend['skipped'] == []
    rest = stack_target(resolved, 'frontend', exclude=['web-server'])
    assert [entry['name'] for entry in rest['create']] == ['isolated', 'load-balancer']
    assert stack_target(resolved, 'data', exclude=['mongodb'])['skipped'] == []
    assert stack_target(resolved, 'monitoring') == {'create': [], 'steps': [], 'skipped': [], 'wait': [], 'left_out_mounts': []}


def test_optional_mounts_are_left_out_where_the_host_lacks_them():
    resolved = default_model('upstream')
    cadvisor = next(record for record in resolved['containers'] if record['name'] == 'cadvisor')
    assert {'type': 'bind', 'source': '/dev/disk', 'target': '/dev/disk', 'read_only': True,
            'optional': True} in cadvisor['mounts']
    present = by_name(stack_target(resolved, 'monitoring'))['cadvisor']['mounts']
    assert {'type': 'bind', 'source': '/dev/disk', 'target': '/dev/disk', 'read_only': True} in present
    assert all('optional' not in mount for mount in present)   # docker_container knows no such key
    target = stack_target(resolved, 'monitoring', missing_paths=['/dev/disk', '/nowhere'])
    assert [mount['source'] for mount in by_name(target)['cadvisor']['mounts']] == [
        '/', '/var/run', '/sys', '/var/lib/docker']
    assert target['left_out_mounts'] == [{'name': 'cadvisor', 'source': '/dev/disk', 'target': '/dev/disk'}]
    # a mount that is not optional stays, missing or not: Docker's error then names it
    assert '/sys' in [m['source'] for m in by_name(stack_target(resolved, 'monitoring', missing_paths=['/sys']))
                      ['cadvisor']['mounts']]


def test_config_hash_label_except_for_reloadable_components():
    target = by_name(stack_target(model(), config_hashes={'mysql-db': 'h1', 'load-balancer': 'h2'}))
    assert target['mysql-db']['labels'] == {
        'dockerlab.stack': 'ecommerce', 'dockerlab.component': 'mysql-db', 'dockerlab.config-hash': 'h1'}
    assert target['load-balancer']['labels'] == {'dockerlab.stack': 'ecommerce', 'dockerlab.component': 'load-balancer'}
    assert target['load-balancer']['reload'] == {'check': ['nginx', '-t'], 'command': ['nginx', '-s', 'reload']}
    # A component without a hash gets no label.
    assert 'dockerlab.config-hash' not in target['web-server-1']['labels']
    assert 'dockerlab.config-hash' not in by_name(stack_target(model()))['mysql-db']['labels']


def test_docker_container_arguments():
    target = by_name(stack_target(model()))
    mysql = target['mysql-db']
    assert {key: mysql[key] for key in ('name', 'image', 'hostname', 'command', 'user', 'env', 'component')} == {
        'name': 'mysql-db', 'image': 'dl/mysql:abc', 'hostname': 'mysql-db', 'command': None, 'user': None,
        'env': {'PORT': '3306'}, 'component': 'mysql-db'}
    assert mysql['networks'] == [{'name': 'ecommerce-database', 'aliases': ['mysql'], 'ipv4_address': '172.22.0.10'}]
    assert mysql['network_mode'] == 'ecommerce-database'
    assert mysql['mounts'] == [
        {'type': 'volume', 'source': 'ecommerce-db-data', 'target': '/var/lib/mysql', 'read_only': False},
        {'type': 'bind', 'source': '/opt/dl/mysql-db/conf.d/my.cnf', 'target': '/etc/mysql/conf.d/my.cnf',
         'read_only': True},
        {'type': 'bind', 'source': '/opt/dl/mysql-db/secrets/root_password', 'target': '/run/secrets/pw',
         'read_only': True}]
    assert mysql['healthcheck'] == {'test': ['CMD', 'true'], 'interval': '5s', 'retries': 3}
    assert (mysql['memory'], mysql['memory_reservation'], mysql['cpus'], mysql['pids_limit']) == ('512m', '256m', 1.5, 200)
    assert (mysql['log_driver'], mysql['log_options']) == ('json-file', {})
    assert mysql['published_ports'] == []
    web = target['web-server-2']
    assert web['networks'] == [{'name': 'ecommerce-frontend', 'aliases': ['web', 'web-server']}]
    assert (web['memory'], web['memory_reservation'], web['cpus'], web['pids_limit']) == (None, None, None, None)
    assert web['image'] == 'nginx:1.27' and web['healthcheck'] is None
    assert target['isolated']['network_mode'] == 'none' and target['isolated']['networks'] == []


def test_published_ports_are_docker_container_specs():
    lb = by_name(stack_target(model()))['load-balancer']
    # A published port without a host port gets a random one: 'bind::container/proto'.
    assert lb['published_ports'] == ['0.0.0.0:8080:80/tcp', '127.0.0.1::8443/tcp', '127.0.0.1:5514:514/udp']


def test_an_ipv6_bind_address_is_bracketed():
    broken = services()
    ipv6 = {'host_port': 8080, 'container_port': 80, 'bind_address': '::1'}
    broken['frontend_services']['load-balancer']['ports'] = [ipv6]
    resolved = stack_model(broken, NETWORKS, VOLUMES, IMAGES, {}, 'offline')
    assert by_name(stack_target(resolved))['load-balancer']['published_ports'] == ['[::1]:8080:80/tcp']


def test_log_settings_reach_the_arguments():
    log = {'driver': 'fluentd', 'options': {'fluentd-address': '127.0.0.1:24224', 'fluentd-async': 'true'}}
    mysql = by_name(stack_target(model(container_log=log)))['mysql-db']
    assert (mysql['log_driver'], mysql['log_options']) == ('fluentd', log['options'])


def test_the_default_topology_target_covers_every_deployed_container():
    resolved = default_model('offline')
    every = stack_target(resolved)
    assert [entry['name'] for entry in every['create']] == [r['name'] for r in resolved['containers']]
    by_tier = [entry['name'] for tier in ('logging', 'data', 'backend', 'frontend', 'monitoring')
               for entry in stack_target(resolved, tier)['create']]
    assert sorted(by_tier) == sorted(entry['name'] for entry in every['create'])
    assert {entry['component'] for entry in stack_target(resolved, 'logging')['skipped']} == {
        'elasticsearch', 'kibana', 'fluentd'}


# --------------------------------------------------------------------------- stack_tier_files

def test_tier_files_of_the_deployed_components():
    resolved = model('offline')
    assert [(f['component'], f['kind'], f['path']) for f in stack_tier_files(resolved, 'data')] == [
        ('mysql-db', 'config', '/opt/dl/mysql-db/conf.d/my.cnf'),
        ('mysql-db', 'secret', '/opt/dl/mysql-db/secrets/root_password')]
    assert [f['component'] for f in stack_tier_files(model('upstream'), 'data')] == ['mongodb', 'mysql-db', 'mysql-db']
    assert [f['path'] for f in stack_tier_files(resolved, 'frontend')] == ['/opt/dl/load-balancer/conf.d/default.conf']
    assert stack_tier_files(resolved, 'frontend', exclude=['load-balancer']) == []
    assert stack_tier_files(resolved, 'data', components=['load-balancer']) == []
    assert [f['kind'] for f in stack_tier_files(resolved, 'data', components=['mysql-db'])] == ['config', 'secret']
    secret = stack_tier_files(resolved, 'data')[1]
    assert secret['var'] == 'data_mysql_root_password' and not {'value', 'content'} & set(secret)


# --------------------------------------------------------------------------- upstream_servers

def test_upstream_servers_follow_the_replicas_and_weights():
    resolved = model()
    assert upstream_servers(resolved, 'web-server', [3, '2']) == [
        {'host': 'web-server-1', 'port': 80, 'weight': 3}, {'host': 'web-server-2', 'port': 80, 'weight': 2},
        {'host': 'web-server-3', 'port': 80, 'weight': 1}]
    assert upstream_servers(resolved, 'mysql-db') == [{'host': 'mysql-db', 'port': 3306, 'weight': 1}]
    assert upstream_servers(resolved, 'absent') == []
    # Left out by the profile: no servers (the load balancer answers that it is not deployed).
    assert upstream_servers(resolved, 'mongodb') == []


def test_upstream_servers_in_replica_order_past_nine():
    many = services()
    many['frontend_services']['web-server']['replicas'] = 11
    resolved = stack_model(many, NETWORKS, VOLUMES, IMAGES, {}, 'offline')
    assert [server['host'] for server in upstream_servers(resolved, 'web-server')] == [
        f'web-server-{index}' for index in range(1, 12)]


@pytest.mark.parametrize('weights, message', [
    ([0], 'w: weight 0 for web-server-1 (position 1) must be a whole number of at least 1'),
    ([1, 'heavy'], "w: weight 'heavy' for web-server-2 (position 2) must be a whole number of at least 1"),
    ([1, 1, True], 'w: weight True for web-server-3 (position 3)'),
    ([2.5], 'w: weight 2.5 for web-server-1'),
    ([-1], 'w: weight -1 for web-server-1'),
    ([1, 1, 1, 1], 'w: 4 weights are given for 3 web-server containers; give one weight per container'),
])
def test_bad_weights_are_refused_by_name(weights, message):
    with pytest.raises(AnsibleFilterError, match=f'^{re.escape(message)}'):
        upstream_servers(model(), 'web-server', weights, 'w')


def test_a_server_without_expose_is_refused_by_name():
    with pytest.raises(AnsibleFilterError, match=re.escape("frontend_services['isolated']: list the port it serves")):
        upstream_servers(model(), 'isolated')


def test_the_default_load_balancer_upstreams():
    resolved = default_model('upstream')
    assert upstream_servers(resolved, 'web-server', [], 'frontend_web_weights') == [
        {'host': 'web-server-1', 'port': 80, 'weight': 1}, {'host': 'web-server-2', 'port': 80, 'weight': 1}]
    assert upstream_servers(resolved, 'api-gateway') == [{'host': 'api-gateway-1', 'port': 3000, 'weight': 1},
                                                         {'host': 'api-gateway-2', 'port': 3000, 'weight': 1}]
    assert upstream_servers(resolved, 'grafana') == [{'host': 'grafana', 'port': 3000, 'weight': 1}]
    assert upstream_servers(default_model('offline'), 'grafana') == []
    with pytest.raises(AnsibleFilterError, match='^frontend_web_weights: 3 weights are given for 2 web-server'):
        upstream_servers(resolved, 'web-server', [1, 1, 1], 'frontend_web_weights')


# --------------------------------------------------------------------------- flow_policy

def test_flow_policy_holds_the_declared_edges():
    assert flow_policy(model('upstream')) == [
        {'from': 'load-balancer', 'to': 'web-server', 'port': 80},
        {'from': 'load-balancer', 'to': 'web-server', 'port': 8080},
        {'from': 'web-server', 'to': 'mongodb', 'port': 27017},
        {'from': 'web-server', 'to': 'mysql-db', 'port': 3306}]
    assert {'from': 'web-server', 'to': 'mongodb', 'port': 27017} not in flow_policy(model('offline'))


def test_extra_flows_with_list_ends_keep_what_is_deployed():
    extra = [{'from': ['load-balancer', 'web-server'], 'to': 'mysql-db', 'port': '3307'},
             {'from': 'mysql-db', 'to': ['mongodb', 'web-server'], 'port': 9999},
             {'from': 'web-server', 'to': 'mysql-db', 'port': 3306}]
    policy = flow_policy(model('offline'), extra)
    assert {'from': 'load-balancer', 'to': 'mysql-db', 'port': 3307} in policy
    assert {'from': 'web-server', 'to': 'mysql-db', 'port': 3307} in policy
    assert {'from': 'mysql-db', 'to': 'web-server', 'port': 9999} in policy
    # MongoDB is not deployed offline; a flow the services declare already is listed once.
    assert not [flow for flow in policy if 'mongodb' in (flow['from'], flow['to'])]
    assert policy.count({'from': 'web-server', 'to': 'mysql-db', 'port': 3306}) == 1
    assert policy == sorted(policy, key=lambda flow: (flow['from'], flow['to'], flow['port']))
    assert {'from': 'mysql-db', 'to': 'mongodb', 'port': 9999} in flow_policy(model('upstream'), extra)


def test_network_peers_add_what_the_networks_allow():
    resolved = model('offline')
    declared = flow_policy(resolved)
    peers = flow_policy(resolved, network_peers=True)
    assert set(map(tuple, map(dict.items, declared))) < set(map(tuple, map(dict.items, peers)))
    assert {'from': 'web-server', 'to': 'load-balancer', 'port': 80} in peers
    assert {'from': 'mysql-db', 'to': 'mysql-db', 'port': 3306} in peers
    # No shared network: no peer flow.
    assert not [flow for flow in peers if {flow['from'], flow['to']} == {'mysql-db', 'load-balancer'}]
    assert not [flow for flow in peers if 'isolated' in (flow['from'], flow['to'])]


@pytest.mark.parametrize('flows, message', [
    ([{'from': 'web-server', 'to': 'mysql-dbb', 'port': 3306}], "stack_flows[0]: 'mysql-dbb' is not a service"),
    ([{'from': 'web-server', 'to': 'mysql-db', 'port': 3306}, {'from': 'web-server', 'to': 'mysql-db', 'port': 'http'}],
     "stack_flows[1]: port 'http' is not a port number"),
    ([{'from': 'web-server', 'to': 'mysql-db'}], 'stack_flows[0]: '),
    (['web-server -> mysql-db'], 'stack_flows[0]: '),
])
def test_bad_extra_flows_are_refused_by_name(flows, message):
    with pytest.raises(AnsibleFilterError, match=f'^{re.escape(message)}'):
        flow_policy(model('offline'), flows)


def test_an_extra_flow_to_a_service_left_out_is_no_error():
    assert flow_policy(model('offline'), [{'from': 'web-server', 'to': 'mongodb', 'port': 27017}]) == flow_policy(
        model('offline'))


def test_the_default_flow_policy():
    policy = flow_policy(default_model('upstream'))
    assert {'from': 'load-balancer', 'to': 'api-gateway', 'port': 3000} in policy
    assert {'from': 'prometheus', 'to': 'user-service', 'port': 3001} in policy
    assert {'from': 'grafana', 'to': 'prometheus', 'port': 9090} in policy
    assert not [flow for flow in flow_policy(default_model('offline')) if 'mongodb' in (flow['from'], flow['to'])]


# --------------------------------------------------------------------------- scrape_jobs

def test_scrape_jobs_list_every_replica_and_skip_what_the_profile_leaves_out():
    assert scrape_jobs(model('offline')) == [
        {'job': 'web', 'metrics_path': '/metrics', 'targets': ['web-server-1:9113', 'web-server-2:9113',
                                                               'web-server-3:9113']}]
    with_mongo = services()
    with_mongo['data_services']['mongodb']['metrics'] = {'port': 9216}
    upstream = scrape_jobs(stack_model(with_mongo, NETWORKS, VOLUMES, IMAGES, {}, 'upstream'))
    assert [job['job'] for job in upstream] == ['mongodb', 'web']
    assert upstream[0]['targets'] == ['mongodb:9216']
    offline = scrape_jobs(stack_model(with_mongo, NETWORKS, VOLUMES, IMAGES, {}, 'offline'))
    assert [job['job'] for job in offline] == ['web']
