# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The resolved topology (module_utils/_topology/model.py): resolve() on small services dicts
and on the roles' defaults, and what the model derives (flows, scrape jobs, network peers,
published ports); last, the roles' defaults with every port variable changed."""

from __future__ import annotations

import copy
import ipaddress
import re

import pytest
from ansible_collections.dockerlab.ecommerce.plugins.filter.model import upstream_servers
from ansible_collections.dockerlab.ecommerce.plugins.module_utils._topology import model as topology
from ansible_collections.dockerlab.ecommerce.plugins.module_utils._topology.model import TopologyError, resolve
from ansible_collections.dockerlab.ecommerce.plugins.module_utils._topology.validation import validate_topology
from conftest import DEFAULT_IMAGES, DEFAULT_SERVICES, DEFAULTS, _load_default_topology, default_model
from course import COURSE_ADDRESSES  # pylint: disable=import-error  # tests/course.py

NETWORKS = {
    'front': {'name': 'shop-front', 'subnet': '172.30.0.0/24'},
    'back': {'name': 'shop-back', 'subnet': '172.31.0.0/24'},
    'data': {'name': 'shop-data', 'subnet': '172.32.0.0/24'},
}
VOLUMES = {'db_data': 'shop-db-data', 'logs': {'name': 'shop-logs'}}
IMAGES = {
    'nginx': {'upstream': 'nginx:1.27', 'recipe': 'nginx'},
    'mysql': {'upstream': 'mysql:8.4', 'recipe': 'mysql'},
    'app': {'recipe': 'app'},
    'search': {'upstream': 'elasticsearch:8', 'skip_reason': 'the collector writes files   instead'},
    'collector': {'recipe': 'rsyslog', 'profiles': ['offline'], 'skip_reason': 'upstream, Fluentd collects'},
}


def shop():
    """A small stack: a load balancer, three replicated web servers, an app, a database, a
    search engine (upstream only), a log collector (offline only) and a metrics scraper."""
    return {
        'front_services': {
            'lb': {'container_name': 'lb', 'image_component': 'nginx', 'order': 90,
                   'networks': [{'network': 'front'}], 'expose': [80],
                   'ports': [{'host_port': 8080, 'container_port': 80}],
                   'connects_to': ['web', {'service': 'app'}, 'search']},
            'web': {'container_name': 'web', 'image_component': 'nginx', 'replicas': 3, 'order': 20,
                    'networks': [{'network': 'front', 'aliases': ['www']}], 'expose': ['80/tcp']},
        },
        'back_services': {
            'app': {'container_name': 'app', 'image_component': 'app', 'order': 60,
                    'networks': ['front', {'network': 'back'}, {'network': 'data'}],
                    'expose': ['3001', 9464], 'metrics': {'port': 9464},
                    'connects_to': [{'service': 'db'}, {'service': 'search', 'port': 9300}, 'collector']},
        },
        'data_services': {
            'db': {'container_name': 'db', 'image_component': 'mysql',
                   'networks': [{'network': 'data', 'aliases': ['mysql'], 'ipv4_address': '172.32.0.10'}],
                   'expose': [3306]},
            'search': {'container_name': 'search', 'image_component': 'search', 'replicas': 2,
                       'networks': [{'network': 'data'}], 'expose': [9200, 9300], 'metrics': True},
            'collector': {'container_name': 'collector', 'image_component': 'collector', 'order': 10,
                          'networks': [{'network': 'back'}], 'expose': [514]},
        },
        'monitoring_services': {
            'scraper': {'container_name': 'scraper', 'image': 'prom/prometheus:v3', 'order': 80,
                        'networks': [{'network': 'back'}, {'network': 'data'}], 'expose': [9090],
                        'metrics': {'job': 'self'}, 'scrapes_metrics': True},
        },
    }


def shop_model(profile=None, services=None, **arguments):
    return resolve(shop() if services is None else services, NETWORKS, VOLUMES, images=IMAGES, profile=profile,
                   **arguments)


def records(model, component):
    return [record for record in model['containers'] if record['component'] == component]


def record(model, name):
    found = [entry for entry in model['containers'] if entry['name'] == name]
    assert len(found) == 1, [entry['name'] for entry in model['containers']]
    return found[0]


def one_service(service, key='svc', var='test_services', **arguments):
    """The model of one service (image 'x' unless it names one), on NETWORKS and VOLUMES."""
    service = dict({'container_name': key, 'image': 'x', 'networks': ['front']}, **service)
    return resolve({var: {key: service}}, NETWORKS, VOLUMES, **arguments)


# --------------------------------------------------------------------------- containers

def test_one_record_per_replica():
    model = shop_model()
    webs = records(model, 'web')
    assert [(r['name'], r['replica'], r['replicas'], r['hostname']) for r in webs] == [
        ('web-1', 1, 3, 'web-1'), ('web-2', 2, 3, 'web-2'), ('web-3', 3, 3, 'web-3')]
    assert {r['variable'] for r in webs} == {"front_services['web']"}
    assert {r['tier'] for r in webs} == {'front'}
    # Replicas answer together to the base name; a single container is not given its own name.
    assert [r['networks'] for r in webs] == 3 * [[{'key': 'front', 'name': 'shop-front', 'aliases': ['www', 'web']}]]
    db = record(model, 'db')
    assert (db['replica'], db['replicas']) == (None, 1)
    assert db['networks'] == [{'key': 'data', 'name': 'shop-data', 'aliases': ['mysql'], 'ipv4_address': '172.32.0.10'}]
    assert record(model, 'lb')['networks'] == [{'key': 'front', 'name': 'shop-front', 'aliases': []}]
    assert db['labels'] == {'dockerlab.stack': 'ecommerce', 'dockerlab.component': 'db'}
    assert shop_model(stack_name='lab')['containers'][0]['labels']['dockerlab.stack'] == 'lab'


def test_an_alias_that_is_the_base_name_is_not_repeated():
    model = one_service({'replicas': 2, 'networks': [{'network': 'front', 'aliases': ['svc', 'other']}]})
    assert [r['networks'][0]['aliases'] for r in model['containers']] == [['svc', 'other'], ['svc', 'other']]


def test_network_entries_keep_their_order():
    app = record(shop_model(), 'app')
    assert [(n['key'], n['name']) for n in app['networks']] == [
        ('front', 'shop-front'), ('back', 'shop-back'), ('data', 'shop-data')]


def test_records_come_in_start_order():
    names = [r['name'] for r in shop_model()['containers']]
    # order first (collector 10, web 20, default 50, app 60, scraper 80, lb 90), then name.
    assert names == ['collector', 'web-1', 'web-2', 'web-3', 'db', 'search-1', 'search-2', 'app', 'scraper', 'lb']


def test_replica_order_is_numeric_in_by_component():
    model = one_service({'replicas': 11})
    assert [r['replica'] for r in topology.by_component(model)['svc']] == list(range(1, 12))


@pytest.mark.parametrize('value', [False, 'false', 'False', 'no', 'off', 0, '0'])
def test_a_disabled_service_has_no_record(value):
    services = shop()
    services['data_services']['db']['enabled'] = value
    model = shop_model(services=services)
    assert records(model, 'db') == []
    assert 'db' not in [entry['component'] for entry in model['skipped']]
    # The edge to it goes too.
    assert 'db' not in [edge['service'] for edge in record(model, 'app')['connects_to']]
    # Validation reads it the same way: a disabled service is not checked at all.
    services['data_services']['db']['networks'] = [{'network': 'nowhere'}]
    assert validate_topology(NETWORKS, VOLUMES, services) == []


@pytest.mark.parametrize('value', [True, 'true', 'yes', 'on', 1, None, 'maybe', 2])
def test_an_enabled_or_invalid_value_keeps_the_service(value):
    services = shop()
    services['data_services']['db']['enabled'] = value
    assert [r['name'] for r in records(shop_model(services=services), 'db')] == ['db']
    errors = validate_topology(NETWORKS, VOLUMES, services)
    if value in ('maybe', 2):
        # Validation reports what the model reads as enabled.
        assert [e['variable'] for e in errors] == ["data_services['db'].enabled"]
    else:
        assert errors == []


def test_replicas_zero_runs_nothing_and_strings_count():
    services = shop()
    services['data_services']['db']['replicas'] = 0
    services['front_services']['web']['replicas'] = '2'
    model = shop_model(services=services)
    assert records(model, 'db') == []
    assert 'db' not in [entry['component'] for entry in model['skipped']]
    assert 'db' not in [edge['service'] for edge in record(model, 'app')['connects_to']]
    assert [r['name'] for r in records(model, 'web')] == ['web-1', 'web-2']


def test_replicas_zero_has_no_files_and_no_checks():
    model = one_service({'replicas': 0, 'config_files': [{'src': 'a.j2', 'dest': 'a.conf'}],
                         'validate': [{'label': 'up', 'kind': 'http', 'path': '/health'}]})
    assert model['containers'] == []
    assert model['files'] == []
    assert model['checks'] == []


# --------------------------------------------------------------------------- images and profiles

def test_an_image_component_takes_its_reference_from_refs_else_upstream():
    refs = {'nginx': 'dockerlab/ecommerce-nginx:0123456789ab', 'app': 'dockerlab/ecommerce-app:fedcba987654'}
    model = shop_model('offline', refs=refs)
    assert {(r['image'], r['image_component']) for r in records(model, 'web')} == {
        ('dockerlab/ecommerce-nginx:0123456789ab', 'nginx')}
    assert record(model, 'app')['image'] == 'dockerlab/ecommerce-app:fedcba987654'
    # Without a settled reference: the image entry's upstream.
    assert record(model, 'db')['image'] == 'mysql:8.4'
    # A service that names its image keeps it, with no image component.
    assert (record(model, 'scraper')['image'], record(model, 'scraper')['image_component']) == (
        'prom/prometheus:v3', None)


def test_an_explicit_image_wins_over_the_component():
    model = one_service({'image_component': 'nginx', 'image': 'nginx:custom'}, images=IMAGES,
                        refs={'nginx': 'built:1'}, profile='offline')
    assert (model['containers'][0]['image'], model['containers'][0]['image_component']) == ('nginx:custom', 'nginx')


def test_offline_leaves_out_what_has_no_offline_image_with_its_reason():
    model = shop_model('offline')
    assert model['profile'] == 'offline'
    assert records(model, 'search') == []
    assert model['skipped'] == [
        {'tier': 'data', 'component': 'search', 'name': 'search-1', 'reason': model['skipped'][0]['reason']},
        {'tier': 'data', 'component': 'search', 'name': 'search-2', 'reason': model['skipped'][0]['reason']},
    ]
    reason = model['skipped'][0]['reason']
    # The image entry's reason, its whitespace folded, ends the sentence.
    assert reason.startswith('search ') and reason.endswith(': the collector writes files instead')
    assert [r['name'] for r in records(model, 'collector')] == ['collector']


def test_upstream_leaves_out_the_offline_only_collector():
    model = shop_model('upstream')
    assert [(entry['component'], entry['name']) for entry in model['skipped']] == [('collector', 'collector')]
    reason = model['skipped'][0]['reason']
    assert 'not used in the upstream profile' in reason and reason.endswith(': upstream, Fluentd collects')
    assert [r['name'] for r in records(model, 'search')] == ['search-1', 'search-2']


def test_no_profile_keeps_everything():
    model = shop_model(None)
    assert model['skipped'] == []
    assert {r['component'] for r in model['containers']} == {
        'lb', 'web', 'app', 'db', 'search', 'collector', 'scraper'}
    # The collector has only a recipe and no settled reference yet.
    assert record(model, 'collector')['image'] is None


def test_a_service_profile_key_is_not_read():
    # Profiles live on the image entries only.
    services = shop()
    services['data_services']['db']['profiles'] = ['upstream']
    services['data_services']['db']['skip_reason'] = 'not here'
    assert [r['name'] for r in records(shop_model('offline', services=services), 'db')] == ['db']


def test_what_is_left_out_has_no_files_checks_or_edges():
    services = shop()
    services['data_services']['search'].update(
        config_files=[{'src': 'search.yml.j2', 'dest': 'search.yml', 'target': '/etc/search.yml'}],
        validate=[{'label': 'search', 'kind': 'http', 'path': '/search'}])
    offline = shop_model('offline', services=services)
    assert 'search' not in {entry['component'] for entry in offline['files']}
    assert 'search' not in {check['component'] for check in offline['checks']}
    assert 'search' not in {edge['service'] for r in offline['containers'] for edge in r['connects_to']}
    upstream = shop_model('upstream', services=services)
    assert [entry['path'] for entry in upstream['files']] == ['/opt/dockerlab/ecommerce/search/search.yml']
    assert [check['component'] for check in upstream['checks']] == ['search']


def test_an_unknown_profile_is_refused():
    with pytest.raises(TopologyError, match=r"^images_profile: 'auto' is not an image profile"):
        shop_model('auto')


# --------------------------------------------------------------------------- errors

def test_an_unknown_image_component_names_the_variable():
    services = shop()
    services['data_services']['db']['image_component'] = 'mariadb'
    with pytest.raises(TopologyError) as error:
        shop_model(services=services)
    assert str(error.value) == (
        "data_services['db'].image_component: 'mariadb' is not an image of any tier (<tier>_images); use one of: "
        'app, collector, mysql, nginx, search')


def test_an_undeclared_network_names_the_variable():
    services = shop()
    services['data_services']['db']['networks'][0]['network'] = 'database'
    with pytest.raises(TopologyError, match=re.escape(
            "data_services['db'].networks: db uses network 'database', which stack_networks does not declare; "
            'declare it there or use one of: back, data, front')):
        shop_model(services=services)


def test_an_undeclared_volume_names_the_variable():
    with pytest.raises(TopologyError, match=re.escape(
            "test_services['svc'].volumes: svc uses volume 'nope', which stack_volumes does not declare")):
        one_service({'volumes': [{'volume': 'nope', 'target': '/data'}]})


@pytest.mark.parametrize('secret', [
    {'name': 'pw', 'target': '/run/secrets/pw'},
    {'name': 'pw', 'target': '/run/secrets/pw', 'var': 'some_password', 'template': 'pw.j2'},
])
def test_a_secret_needs_exactly_one_source(secret):
    with pytest.raises(TopologyError, match=re.escape(
            "test_services['svc'].secrets: secret 'pw' needs exactly one of 'var' (a variable holding the secret) "
            "or 'template' (a template that renders it)")):
        one_service({'secrets': [secret]})


def test_metrics_without_a_port_names_the_variable():
    with pytest.raises(TopologyError, match=re.escape("test_services['svc'].metrics: give the port")):
        one_service({'metrics': True})


def test_metrics_that_is_no_mapping_names_the_variable():
    with pytest.raises(TopologyError, match=re.escape("test_services['svc'].metrics")):
        one_service({'expose': [9100], 'metrics': 9100})


def test_connects_to_an_unknown_service_names_the_variable():
    services = shop()
    services['back_services']['app']['connects_to'].append('dbb')
    with pytest.raises(TopologyError, match=re.escape("back_services['app'].connects_to")):
        shop_model('offline', services=services)


# --------------------------------------------------------------------------- mounts and files

def test_mounts_of_volumes_binds_config_files_dirs_and_secrets():
    model = one_service({
        'volumes': [{'volume': 'db_data', 'target': '/var/lib/mysql'}, {'volume': 'logs', 'target': '/logs'},
                    {'source': '/srv/x', 'target': '/x', 'read_only': True}],
        'config_files': [{'src': 'my.cnf.j2', 'dest': 'conf.d/my.cnf', 'target': '/etc/mysql/conf.d/my.cnf'},
                         {'file': 'site/index.html', 'dest': 'html/index.html'}],
        'config_dirs': [{'dest': 'html', 'target': '/usr/share/nginx/html'}],
        'secrets': [{'name': 'root_password', 'var': 'data_mysql_root_password', 'target': '/run/secrets/pw',
                     'owner': '999'}],
    }, config_dir='/opt/dl')
    assert model['containers'][0]['mounts'] == [
        {'type': 'volume', 'source': 'shop-db-data', 'target': '/var/lib/mysql', 'read_only': False},
        {'type': 'volume', 'source': 'shop-logs', 'target': '/logs', 'read_only': False},
        {'type': 'bind', 'source': '/srv/x', 'target': '/x', 'read_only': True},
        {'type': 'bind', 'source': '/opt/dl/svc/conf.d/my.cnf', 'target': '/etc/mysql/conf.d/my.cnf',
         'read_only': True},
        {'type': 'bind', 'source': '/opt/dl/svc/html', 'target': '/usr/share/nginx/html', 'read_only': True},
        {'type': 'bind', 'source': '/opt/dl/svc/secrets/root_password', 'target': '/run/secrets/pw',
         'read_only': True},
    ]
    # Every file is rendered, a file without a target too (it lives in a mounted directory).
    assert model['files'] == [
        {'template': 'my.cnf.j2', 'tier': 'test', 'component': 'svc', 'kind': 'config',
         'path': '/opt/dl/svc/conf.d/my.cnf', 'owner': 'root', 'mode': '0644'},
        {'file': 'site/index.html', 'tier': 'test', 'component': 'svc', 'kind': 'config',
         'path': '/opt/dl/svc/html/index.html', 'owner': 'root', 'mode': '0644'},
        {'var': 'data_mysql_root_password', 'tier': 'test', 'component': 'svc', 'kind': 'secret', 'secret': True,
         'path': '/opt/dl/svc/secrets/root_password', 'owner': '999', 'mode': '0400'},
    ]


def test_a_secret_template_and_its_owner():
    files = one_service({'secrets': [{'name': 'auth.conf', 'template': 'redis/auth.conf.j2', 'target': '/a',
                                      'owner': 999, 'mode': '0440'}]})['files']
    assert files == [{'template': 'redis/auth.conf.j2', 'tier': 'test', 'component': 'svc', 'kind': 'secret',
                      'secret': True, 'path': '/opt/dockerlab/ecommerce/svc/secrets/auth.conf', 'owner': '999',
                      'mode': '0440'}]


def test_the_default_topology_carries_no_secret_value():
    model = default_model('upstream')
    secrets = [entry for entry in model['files'] if entry['kind'] == 'secret']
    assert len(secrets) > 5
    for entry in secrets:
        assert set(entry) & {'var', 'template'} and not set(entry) & {'value', 'content'}, entry
        assert entry['mode'] == '0400' and entry['path'].startswith('/opt/dockerlab/ecommerce/')


# --------------------------------------------------------------------------- healthcheck, log, env, resources

def test_healthcheck_defaults_are_laid_under():
    defaults = {'interval': '5s', 'retries': 10}
    model = one_service({'healthcheck': {'test': ['CMD', 'true'], 'retries': 3}}, healthcheck_defaults=defaults)
    assert model['containers'][0]['healthcheck'] == {'test': ['CMD', 'true'], 'interval': '5s', 'retries': 3}
    assert one_service({}, healthcheck_defaults=defaults)['containers'][0]['healthcheck'] is None


def test_container_log_applies_to_all_but_services_with_their_own():
    log = {'driver': 'syslog', 'options': {'syslog-address': 'udp://127.0.0.1:5140', 'tag': '{{.Name}}'}}
    assert one_service({}, container_log=log)['containers'][0]['log'] == log
    own = one_service({'log': {'driver': 'json-file', 'options': {'max-file': 3}}}, container_log=log)
    assert own['containers'][0]['log'] == {'driver': 'json-file', 'options': {'max-file': '3'}}
    # Without a logging tier: Docker's json-file driver.
    assert one_service({})['containers'][0]['log'] == {'driver': 'json-file', 'options': {}}


def test_env_command_user_resources_and_reload():
    reload = {'check': ['nginx', '-t'], 'command': ['nginx', '-s', 'reload']}
    model = one_service({'env': {'PORT': 3306, 'DEBUG': 'false'}, 'command': ['run', '--fast'], 'user': '10001',
                         'resources': {'memory': '256m', 'cpus': 0.5, 'pids': 100, 'other': 'x'}, 'reload': reload})
    container = model['containers'][0]
    assert container['env'] == {'PORT': '3306', 'DEBUG': 'false'}
    assert (container['command'], container['user']) == (['run', '--fast'], '10001')
    assert container['resources'] == {'memory': '256m', 'cpus': 0.5, 'pids': 100}
    assert container['reload'] == reload
    bare = one_service({})['containers'][0]
    assert (bare['env'], bare['resources'], bare['reload'], bare['command']) == ({}, {}, None, None)


def test_published_ports_are_parsed():
    model = one_service({'ports': [{'host_port': '8080', 'container_port': '80'},
                                   {'container_port': 9000, 'bind_address': ' 127.0.0.1 '},
                                   {'host_port': 5514, 'container_port': 5514, 'protocol': 'UDP',
                                    'bind_address': '0:0:0:0:0:0:0:1'}]})
    assert model['containers'][0]['ports'] == [
        {'host_port': 8080, 'container_port': 80, 'bind_address': '0.0.0.0', 'protocol': 'tcp'},
        {'host_port': None, 'container_port': 9000, 'bind_address': '127.0.0.1', 'protocol': 'tcp'},
        {'host_port': 5514, 'container_port': 5514, 'bind_address': '::1', 'protocol': 'udp'},
    ]


# --------------------------------------------------------------------------- expose, metrics, probe

def test_expose_is_parsed_once():
    model = one_service({'expose': ['3001/tcp', 80, '8080', 'http', 0, 80]})
    assert model['containers'][0]['expose'] == [80, 3001, 8080]


def test_metrics_default_to_the_first_exposed_port_and_the_key():
    model = shop_model()
    assert record(model, 'search-1')['metrics'] == {'job': 'search', 'port': 9200, 'path': '/metrics'}
    assert record(model, 'app')['metrics'] == {'job': 'app', 'port': 9464, 'path': '/metrics'}
    assert record(model, 'scraper')['metrics'] == {'job': 'self', 'port': 9090, 'path': '/metrics'}
    assert record(model, 'db')['metrics'] is None
    explicit = one_service({'expose': [80], 'metrics': {'port': '9113/tcp', 'path': '/stats', 'job': 'nginx'}})
    assert explicit['containers'][0]['metrics'] == {'job': 'nginx', 'port': 9113, 'path': '/stats'}


def test_the_probe_port_defaults_to_the_first_exposed_port():
    model = one_service({'expose': [8080, 9200], 'probe': {'kind': 'http', 'path': '/health'}})
    assert model['containers'][0]['probe'] == {'kind': 'http', 'path': '/health', 'port': 8080}
    explicit = one_service({'expose': [24224, 24220], 'probe': {'kind': 'http', 'port': '24220', 'status': 401}})
    assert explicit['containers'][0]['probe'] == {'kind': 'http', 'port': 24220, 'status': 401}
    assert one_service({'probe': {'kind': 'mysql'}})['containers'][0]['probe'] == {'kind': 'mysql'}
    assert one_service({'expose': [80]})['containers'][0]['probe'] is None
    assert one_service({'expose': [80], 'probe': {'path': '/'}})['containers'][0]['probe'] is None


# --------------------------------------------------------------------------- edges

def test_connects_to_takes_the_ports_the_target_exposes():
    model = shop_model('upstream')
    assert record(model, 'lb')['connects_to'] == [
        {'service': 'app', 'port': 3001}, {'service': 'app', 'port': 9464},
        {'service': 'search', 'port': 9200}, {'service': 'search', 'port': 9300},
        {'service': 'web', 'port': 80}]
    # An explicit port is kept as it is; the collector is not deployed upstream.
    assert record(model, 'app')['connects_to'] == [{'service': 'db', 'port': 3306}, {'service': 'search', 'port': 9300}]
    # Every replica has the same edges.
    assert record(model, 'web-2')['connects_to'] == record(model, 'web-1')['connects_to'] == []


def test_edges_to_what_is_not_deployed_are_dropped():
    offline = shop_model('offline')
    assert record(offline, 'lb')['connects_to'] == [
        {'service': 'app', 'port': 3001}, {'service': 'app', 'port': 9464}, {'service': 'web', 'port': 80}]
    assert record(offline, 'app')['connects_to'] == [{'service': 'collector', 'port': 514},
                                                     {'service': 'db', 'port': 3306}]
    # A tier that is not part of the play (an empty services dict) may hold the target.
    partial = resolve({'test_services': {'svc': {'container_name': 'svc', 'image': 'x', 'expose': [80],
                                                 'connects_to': ['nothing', {'service': 'svc'}]}},
                       'other_services': {}}, {}, {})
    assert partial['containers'][0]['connects_to'] == []


def test_scrapes_metrics_connects_to_every_metrics_port():
    assert record(shop_model('upstream'), 'scraper')['connects_to'] == [
        {'service': 'app', 'port': 9464}, {'service': 'search', 'port': 9200}]
    assert record(shop_model('offline'), 'scraper')['connects_to'] == [{'service': 'app', 'port': 9464}]


def test_validate_checks_are_under_the_entrypoint():
    services = shop()
    services['front_services']['lb']['validate'] = [
        {'label': 'front page', 'kind': 'http', 'path': '/', 'body_regex': 'shop'},
        {'label': 'elsewhere', 'kind': 'http', 'url': 'http://127.0.0.1:9090/-/ready'}]
    model = shop_model(services=services, entrypoint='http://127.0.0.1:8080/')
    assert model['checks'] == [
        {'label': 'front page', 'kind': 'http', 'body_regex': 'shop', 'component': 'lb',
         'url': 'http://127.0.0.1:8080/'},
        {'label': 'elsewhere', 'kind': 'http', 'url': 'http://127.0.0.1:9090/-/ready', 'component': 'lb'}]
    assert shop_model(services=services)['checks'][0]['url'] == 'http://127.0.0.1/'


# --------------------------------------------------------------------------- what the model derives

def test_flows_are_one_per_component_edge():
    assert topology.flows(shop_model('upstream')) == [
        {'from': 'app', 'to': 'db', 'port': 3306},
        {'from': 'app', 'to': 'search', 'port': 9300},
        {'from': 'lb', 'to': 'app', 'port': 3001},
        {'from': 'lb', 'to': 'app', 'port': 9464},
        {'from': 'lb', 'to': 'search', 'port': 9200},
        {'from': 'lb', 'to': 'search', 'port': 9300},
        {'from': 'lb', 'to': 'web', 'port': 80},
        {'from': 'scraper', 'to': 'app', 'port': 9464},
        {'from': 'scraper', 'to': 'search', 'port': 9200},
    ]


def test_scrape_jobs_list_every_replica():
    assert topology.scrape_jobs(shop_model('upstream')) == [
        {'job': 'app', 'metrics_path': '/metrics', 'targets': ['app:9464']},
        {'job': 'search', 'metrics_path': '/metrics', 'targets': ['search-1:9200', 'search-2:9200']},
        {'job': 'self', 'metrics_path': '/metrics', 'targets': ['scraper:9090']},
    ]
    assert [job['job'] for job in topology.scrape_jobs(shop_model('offline'))] == ['app', 'self']


def test_network_peer_flows_follow_shared_networks():
    services = {'frontend_services': {
        'lb': {'container_name': 'lb', 'image': 'x', 'networks': [{'network': 'front'}], 'expose': [80]},
        'gw': {'container_name': 'gw', 'image': 'x', 'replicas': 2, 'networks': ['front', 'back'], 'expose': [3000]}},
        'data_services': {
            'db': {'container_name': 'db', 'image': 'x', 'networks': [{'network': 'data'}], 'expose': [3306]}}}
    assert topology.network_peer_flows(resolve(services, NETWORKS)) == [
        {'from': 'db', 'to': 'db', 'port': 3306}, {'from': 'gw', 'to': 'gw', 'port': 3000},
        {'from': 'gw', 'to': 'lb', 'port': 80}, {'from': 'lb', 'to': 'gw', 'port': 3000},
        {'from': 'lb', 'to': 'lb', 'port': 80}]


def test_published_ports_name_the_host_port_variable():
    services = shop()
    services['data_services']['db']['ports'] = [{'container_port': 3306},
                                                {'host_port': 13306, 'container_port': 3306, 'bind_address': '127.0.0.1'}]
    assert topology.published_ports(shop_model(services=services)) == [
        {'host_port': 13306, 'container_port': 3306, 'bind_address': '127.0.0.1', 'protocol': 'tcp',
         'variable': "data_services['db'].ports[1].host_port", 'component': 'db', 'container': 'db'},
        {'host_port': 8080, 'container_port': 80, 'bind_address': '0.0.0.0', 'protocol': 'tcp',
         'variable': "front_services['lb'].ports[0].host_port", 'component': 'lb', 'container': 'lb'},
    ]


# --------------------------------------------------------------------------- the roles' defaults

OFFLINE_LEFT_OUT = {'mongodb', 'grafana', 'cadvisor', 'elasticsearch', 'kibana', 'fluentd'}


def test_each_profile_leaves_out_what_its_image_entries_say():
    offline = default_model('offline')
    assert {entry['component'] for entry in offline['skipped']} == OFFLINE_LEFT_OUT
    upstream = default_model('upstream')
    assert [entry['component'] for entry in upstream['skipped']] == ['log-collector']
    for entry in offline['skipped'] + upstream['skipped']:
        image = DEFAULT_IMAGES[entry['component']]
        assert entry['name'] == entry['component'] and entry['reason'].startswith(f"{entry['component']} ")
        if image.get('skip_reason'):
            assert entry['reason'].endswith(f": {' '.join(image['skip_reason'].split())}"), entry
    deployed = {r['component'] for r in offline['containers']}
    assert not deployed & OFFLINE_LEFT_OUT and 'log-collector' in deployed
    assert OFFLINE_LEFT_OUT <= {r['component'] for r in upstream['containers']}
    every = default_model(None)
    assert every['skipped'] == []
    assert len(every['containers']) == len(offline['containers']) + len(offline['skipped']) == 25


def test_the_default_web_servers_and_their_load_balancer():
    model = default_model('upstream')
    webs = records(model, 'web-server')
    assert [(r['name'], r['replica']) for r in webs] == [('web-server-1', 1), ('web-server-2', 2)]
    assert all('web-server' in r['networks'][0]['aliases'] for r in webs)
    lb = record(model, 'load-balancer')
    assert lb['connects_to'] == [{'service': 'api-gateway', 'port': 3000}, {'service': 'grafana', 'port': 3000},
                                 {'service': 'web-server', 'port': 80}]
    assert lb['reload'] and lb['ports'][0]['host_port'] == 8080
    offline_lb = record(default_model('offline'), 'load-balancer')
    assert 'grafana' not in [edge['service'] for edge in offline_lb['connects_to']]


def test_the_default_prometheus_scrapes_every_metrics_port():
    for profile in ('offline', 'upstream'):
        model = default_model(profile)
        with_metrics = {r['component']: r['metrics']['port'] for r in model['containers']
                        if r['metrics'] and r['component'] != 'prometheus'}
        assert record(model, 'prometheus')['connects_to'] == [
            {'service': service, 'port': port} for service, port in sorted(with_metrics.items())]
        targets = {target for job in topology.scrape_jobs(model) for target in job['targets']}
        assert targets == {f"{r['name']}:{r['metrics']['port']}" for r in model['containers'] if r['metrics']}
    assert 'cadvisor' in with_metrics


def test_the_default_checks_are_under_the_entrypoint():
    checks = default_model('offline')['checks']
    assert {check['component'] for check in checks} == {
        'api-gateway', 'user-service', 'order-service', 'payment-service', 'load-balancer'}
    assert all(check['url'].startswith('http://127.0.0.1:8080/') and 'path' not in check for check in checks)


# --------------------------------------------------------------------------- every port variable changed

CHANGED_PORTS = {
    'backend_gateway_port': 4000, 'backend_user_service_port': 4001, 'backend_order_service_port': 4002,
    'backend_payment_service_port': 4003, 'monitoring_prometheus_port': 9191, 'monitoring_grafana_http_port': 3300,
}
OLD_PORTS = {3000, 3001, 3002, 3003, 9090}
# The host port of Grafana (monitoring_grafana_port) is not changed: it stays 3000.


@pytest.fixture(scope='module', name='moved')
def fixture_moved():
    """The roles' defaults rendered with every port variable changed (``-e name=value``)."""
    return _load_default_topology(CHANGED_PORTS)


def old_ports_in(value):
    """The old port numbers anywhere in ``value``: ints, and ``:port`` in strings."""
    found = set()
    if isinstance(value, bool):
        return found
    if isinstance(value, int):
        return {value} & OLD_PORTS
    if isinstance(value, str):
        return {int(number) for number in re.findall(r'(?<![0-9])([0-9]{4})(?![0-9])', value)} & OLD_PORTS
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        for item in value:
            found |= old_ports_in(item)
    return found


def test_the_changed_defaults_are_valid(moved):
    assert validate_topology(moved['networks'], moved['volumes'], moved['services']) == []
    assert moved['services'] != DEFAULT_SERVICES


def test_flows_follow_every_port_variable(moved):
    upstream = topology.flows(default_model('upstream', defaults=moved))
    for flow in ({'from': 'load-balancer', 'to': 'api-gateway', 'port': 4000},
                 {'from': 'api-gateway', 'to': 'user-service', 'port': 4001},
                 {'from': 'api-gateway', 'to': 'order-service', 'port': 4002},
                 {'from': 'api-gateway', 'to': 'payment-service', 'port': 4003},
                 {'from': 'prometheus', 'to': 'user-service', 'port': 4001},
                 {'from': 'grafana', 'to': 'prometheus', 'port': 9191},
                 {'from': 'load-balancer', 'to': 'grafana', 'port': 3300}):
        assert flow in upstream
    assert old_ports_in([flow['port'] for flow in upstream]) == set()
    offline = topology.flows(default_model('offline', defaults=moved))
    assert {'from': 'prometheus', 'to': 'api-gateway', 'port': 4000} in offline
    assert old_ports_in([flow['port'] for flow in offline]) == set()


def test_scrape_targets_follow_every_port_variable(moved):
    jobs = {job['job']: job['targets'] for job in topology.scrape_jobs(default_model('upstream', defaults=moved))}
    # every replica is a target (two by default)
    assert jobs['api-gateway'] == ['api-gateway-1:4000', 'api-gateway-2:4000']
    assert jobs['user-service'] == ['user-service-1:4001', 'user-service-2:4001']
    assert jobs['order-service'] == ['order-service-1:4002', 'order-service-2:4002']
    assert jobs['payment-service'] == ['payment-service-1:4003', 'payment-service-2:4003']
    assert jobs['prometheus'] == ['prometheus:9191']
    assert old_ports_in(jobs) == set()


def test_probes_follow_every_port_variable(moved):
    model = default_model('upstream', defaults=moved)
    probes = {r['component']: r['probe']['port'] for r in model['containers'] if r['probe'] and 'port' in r['probe']}
    assert {key: probes[key] for key in ('api-gateway', 'user-service', 'order-service', 'payment-service',
                                         'prometheus', 'grafana')} == {
        'api-gateway': 4000, 'user-service': 4001, 'order-service': 4002, 'payment-service': 4003,
        'prometheus': 9191, 'grafana': 3300}
    assert old_ports_in(probes) == set()


def test_grafana_and_prometheus_listen_where_their_variables_say(moved):
    model = default_model('upstream', defaults=moved)
    grafana = record(model, 'grafana')
    assert grafana['expose'] == [3300]
    assert grafana['env']['GF_SERVER_HTTP_PORT'] == '3300'
    assert 'http://127.0.0.1:3300/' in ' '.join(grafana['healthcheck']['test'])
    assert [(p['host_port'], p['container_port']) for p in grafana['ports']] == [(3000, 3300)]
    assert old_ports_in([grafana['expose'], grafana['healthcheck']['test'], grafana['env']['GF_SERVER_HTTP_PORT']]) == set()
    prometheus = record(model, 'prometheus')
    assert prometheus['expose'] == [9191]
    assert [(p['host_port'], p['container_port']) for p in prometheus['ports']] == [(9191, 9191)]
    assert '--web.listen-address=:9191' in prometheus['command']
    assert old_ports_in([prometheus['healthcheck']['test'], prometheus['command']]) == set()
    gateway = record(model, 'api-gateway-1')
    assert gateway['env']['PORT'] == '4000' and gateway['env']['USER_SERVICE_URL'] == 'http://user-service:4001'
    assert old_ports_in(gateway['env']) == set()


def test_the_load_balancer_upstreams_follow_every_port_variable(moved):
    model = default_model('upstream', defaults=moved)
    assert upstream_servers(model, 'api-gateway') == [{'host': 'api-gateway-1', 'port': 4000, 'weight': 1},
                                                      {'host': 'api-gateway-2', 'port': 4000, 'weight': 1}]
    assert upstream_servers(model, 'grafana') == [{'host': 'grafana', 'port': 3300, 'weight': 1}]
    assert upstream_servers(model, 'web-server') == [{'host': 'web-server-1', 'port': 80, 'weight': 1},
                                                     {'host': 'web-server-2', 'port': 80, 'weight': 1}]
    assert old_ports_in(upstream_servers(model, 'api-gateway') + upstream_servers(model, 'grafana')) == set()


def test_the_unchanged_defaults_still_use_the_course_ports():
    # The test above can fail: without the extra variables, the old ports are there.
    model = default_model('upstream')
    assert old_ports_in(topology.flows(model)) == OLD_PORTS
    assert upstream_servers(model, 'api-gateway') == [{'host': 'api-gateway-1', 'port': 3000, 'weight': 1},
                                                      {'host': 'api-gateway-2', 'port': 3000, 'weight': 1}]


def _addresses(model):
    return {rec['name']: {net['key']: net['ipv4_address'] for net in rec['networks'] if net.get('ipv4_address')}
            for rec in model['containers']}


def test_the_defaults_give_the_course_addresses():
    addresses = _addresses(default_model('upstream'))
    assert {name: addresses[name] for name in COURSE_ADDRESSES} == COURSE_ADDRESSES
    offline = _addresses(default_model('offline'))
    assert offline['log-collector'] == {'monitoring': '172.23.0.250'}
    # every fixed address lies outside its network's dynamic range
    networks = DEFAULTS['networks']
    for name, by_network in list(addresses.items()) + list(offline.items()):
        for key, address in by_network.items():
            assert ipaddress.ip_address(address) in ipaddress.ip_network(networks[key]['subnet']), (name, key)
            assert ipaddress.ip_address(address) not in ipaddress.ip_network(networks[key]['ip_range']), (name, key)


def test_replicas_past_the_course_addresses_take_dynamic_ones():
    defaults = copy.deepcopy(DEFAULTS)
    defaults['services']['backend_services']['user-service']['replicas'] = 3
    defaults['services']['frontend_services']['web-server']['replicas'] = 3
    addresses = _addresses(default_model('offline', defaults=defaults))
    assert addresses['user-service-1'] == {'backend': '172.21.0.11', 'database': '172.22.0.21'}
    assert addresses['user-service-2'] == {} and addresses['user-service-3'] == {}
    # two by default: the second one is dynamic too
    assert _addresses(default_model('offline'))['user-service-2'] == {}
    assert [addresses[f'web-server-{n}'] for n in (1, 2, 3)] == [
        {'frontend': '172.20.0.11'}, {'frontend': '172.20.0.12'}, {}]
    assert validate_topology(defaults['networks'], defaults['volumes'], defaults['services']) == []


def test_a_component_the_images_role_left_out_is_skipped_with_its_reason():
    reason = 'cadvisor needs ghcr.io, which did not answer from the Docker host and it has no recipe to build instead'
    model = default_model('upstream', left_out={'cadvisor': reason})
    assert 'cadvisor' not in [rec['name'] for rec in model['containers']]
    assert {'tier': 'monitoring', 'component': 'cadvisor', 'name': 'cadvisor', 'reason': reason} in model['skipped']
    assert 'cadvisor' not in {job['job'] for job in topology.scrape_jobs(model)}
    # the control: without it, cAdvisor runs upstream
    assert 'cadvisor' in [rec['name'] for rec in default_model('upstream')['containers']]
    # before the profile is known (the precheck), nothing is left out
    assert 'cadvisor' in [rec['name'] for rec in default_model(None, left_out={'cadvisor': reason})['containers']]


@pytest.mark.parametrize('subnet', ['172.21.0.0/33', None, '172.21.0.0/30'])
def test_a_host_number_on_a_bad_subnet_resolves_without_it_and_validation_names_the_subnet(subnet):
    # The roles' argument specs resolve the model before the precheck reports: it must not fail there.
    defaults = copy.deepcopy(DEFAULTS)
    defaults['networks']['backend']['subnet'] = subnet
    gateway = next(rec for rec in default_model('offline', defaults=defaults)['containers'] if rec['name'] == 'api-gateway-1')
    assert [net.get('ipv4_address') for net in gateway['networks']] == ['172.20.0.20', None]
    errors = validate_topology(defaults['networks'], defaults['volumes'], defaults['services'])
    assert any(error['variable'].startswith("stack_networks['backend']") for error in errors), errors
