# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import errno
import ipaddress
import socket

import pytest
from ansible_collections.dockerlab.ecommerce.plugins.module_utils._topology.host import (
    check_subnet_conflicts,
    docker_networks_summary,
    host_port_conflicts,
    port_owners_from_containers,
)
from ansible_collections.dockerlab.ecommerce.plugins.module_utils._topology.model import (
    container_names,
    published_ports,
    resolve,
)
from ansible_collections.dockerlab.ecommerce.plugins.module_utils._topology.validation import (
    TOPOLOGY_CHECKS,
    format_error_report,
    validate_topology,
)
from ansible_collections.dockerlab.ecommerce.plugins.module_utils._topology.values import binds_collide
from conftest import DEFAULT_IMAGES
from topology_edit import move_network  # pylint: disable=import-error  # tests/topology_edit.py


def resolved(topology, **arguments):
    """The model of a (networks, volumes, services) topology, every image profile kept."""
    networks, volumes, services = topology
    return resolve(services, networks, volumes, images=DEFAULT_IMAGES, **arguments)


def errors_for(topology):
    networks, volumes, services = topology
    return validate_topology(networks, volumes, services)


def only(errors):
    assert len(errors) == 1, errors
    return errors[0]


def variables(errors):
    return [error['variable'] for error in errors]


def set_subnet(topology, key, subnet):
    """Give network ``key`` another subnet, its fixed addresses and ip_range following it."""
    move_network(topology[0], topology[2], key, subnet)


# --------------------------------------------------------------------------- default topology

def test_default_topology_has_no_errors(topology):
    assert errors_for(topology) == []


def test_default_topology_expands_to_the_course_containers(topology):
    # Every image profile: the precheck runs before the profile is settled.
    names = [record['name'] for record in resolved(topology)['containers']]
    assert sorted(names) == sorted([
        'api-gateway-1', 'api-gateway-2', 'cadvisor', 'elasticsearch', 'fluentd', 'grafana', 'kibana',
        'load-balancer', 'log-collector', 'mongodb', 'mysql-db', 'mysqld-exporter', 'nginx-exporter', 'node-exporter',
        'order-service-1', 'order-service-2', 'payment-service-1', 'payment-service-2', 'prometheus', 'redis-cache',
        'redis-exporter', 'user-service-1', 'user-service-2', 'web-server-1', 'web-server-2'])
    assert len(names) == len(set(names)) == 25


def test_default_topology_publishes_the_course_ports(topology):
    ports = sorted((r['host_port'], r['protocol']) for r in published_ports(resolved(topology)))
    assert ports == [(3000, 'tcp'), (5514, 'udp'), (5601, 'tcp'), (8080, 'tcp'), (8081, 'tcp'), (9090, 'tcp'),
                     (9200, 'tcp'), (24224, 'tcp')]


def test_checks_are_named():
    assert 'subnet_overlaps' in TOPOLOGY_CHECKS and 'host_ports' in TOPOLOGY_CHECKS


# --------------------------------------------------------------------------- containers of the model

def test_the_model_honours_enabled_and_replicas():
    services = {
        'b_services': {
            'web': {'container_name': 'web', 'image': 'nginx', 'replicas': 3},
            'off': {'container_name': 'off', 'image': 'nginx', 'enabled': False},
            'off-string': {'container_name': 'off2', 'image': 'nginx', 'enabled': 'no'},
            'none': {'container_name': 'none', 'image': 'nginx', 'replicas': 0},
        },
        'a_services': {'db': {'container_name': 'db', 'image': 'mysql', 'replicas': 1}},
    }
    records = resolve(services, {})['containers']
    assert [(r['tier'], r['component'], r['name'], r['replica']) for r in records] == [
        ('a', 'db', 'db', None),
        ('b', 'web', 'web-1', 1),
        ('b', 'web', 'web-2', 2),
        ('b', 'web', 'web-3', 3),
    ]
    assert records[1]['variable'] == "b_services['web']"


def test_container_names_tolerate_bad_data():
    assert resolve(None, {})['containers'] == []
    assert resolve({'x_services': None}, {})['containers'] == []
    assert container_names({'image': 'no name'}) == []
    assert container_names({'container_name': '  ', 'replicas': 2}) == []
    assert container_names({'container_name': 5}) == []
    assert container_names({'container_name': 'web', 'replicas': 'two'}) == [('web', None)]


# --------------------------------------------------------------------------- subnets

def test_malformed_subnet(topology):
    topology[0]['backend']['subnet'] = '172.21.0.0/33'
    assert only(errors_for(topology)) == {
        'variable': "stack_networks['backend'].subnet",
        'message': "'172.21.0.0/33' is not a valid IPv4 or IPv6 network in CIDR notation; write it like 172.30.0.0/16",
    }


def test_subnet_with_host_bits_names_the_network_address(topology):
    topology[0]['backend']['subnet'] = '172.21.3.7/16'
    assert only(errors_for(topology)) == {
        'variable': "stack_networks['backend'].subnet",
        'message': "'172.21.3.7/16' has host bits set: its network address is 172.21.0.0/16; set subnet: 172.21.0.0/16",
    }


def test_subnet_without_prefix_and_non_string(topology):
    topology[0]['backend']['subnet'] = '172.21.0.0'
    topology[0]['monitoring']['subnet'] = 17
    errors = errors_for(topology)
    assert variables(errors) == ["stack_networks['backend'].subnet", "stack_networks['monitoring'].subnet"]
    assert errors[0]['message'] == "'172.21.0.0' has no prefix length; write it in CIDR notation, like 172.21.0.0/16"
    assert errors[1]['message'].startswith('is a number (17), not a network in CIDR notation')


def test_ipv6_subnet_is_valid(topology):
    topology[0]['v6'] = {'name': 'ecommerce-v6', 'subnet': 'fd00:dead:beef::/48'}
    assert errors_for(topology) == []


def test_overlapping_subnets(topology):
    set_subnet(topology, 'monitoring', '172.20.128.0/17')
    assert only(errors_for(topology)) == {
        'variable': "stack_networks['monitoring'].subnet",
        'message': "172.20.128.0/17 overlaps 172.20.0.0/16, the subnet of stack_networks['frontend'] "
                   "(ecommerce-frontend); give each network its own non-overlapping subnet",
    }


def test_adjacent_subnets_do_not_overlap(topology):
    set_subnet(topology, 'frontend', '172.20.0.0/17')
    set_subnet(topology, 'monitoring', '172.20.128.0/17')
    topology[2]['frontend_services']['load-balancer']['networks'][0]['ipv4_address'] = '172.20.0.10'
    assert errors_for(topology) == []


def test_network_definition_problems(topology):
    topology[0]['extra'] = 'ecommerce-extra'
    topology[0]['copy'] = {'name': 'ecommerce-frontend', 'subnet': '10.9.0.0/24'}
    topology[0]['nameless'] = {'subnet': '10.8.0.0/24'}
    errors = errors_for(topology)
    assert variables(errors) == ["stack_networks['extra']", "stack_networks['frontend'].name",
                                 "stack_networks['nameless'].name"]
    assert errors[0]['message'] == ("is a string ('ecommerce-extra'), but must be a mapping with name and subnet, "
                                    "e.g. {name: ecommerce-extra, subnet: 172.30.0.0/16}")
    assert errors[1]['message'] == ("'ecommerce-frontend' is also the name of stack_networks['copy']; "
                                    "give each network its own name")
    assert errors[2]['message'] == 'is missing; set it to the Docker network name, e.g. name: ecommerce-nameless'


def test_networks_var_is_used_in_messages(topology):
    topology[0]['backend']['subnet'] = 'nonsense/8'
    errors = validate_topology(topology[0], topology[1], topology[2], networks_var='lab_networks')
    assert variables(errors) == ["lab_networks['backend'].subnet"]


# --------------------------------------------------------------------------- network references

def test_undeclared_network_key(topology):
    topology[2]['data_services']['mysql-db']['networks'][0]['network'] = 'db'
    assert only(errors_for(topology)) == {
        'variable': "data_services['mysql-db'].networks[0].network",
        'message': "'db' is not declared in stack_networks; declare it in stack_networks or use one of: "
                   "backend, database, frontend, monitoring",
    }


def test_network_listed_twice_and_missing_key(topology):
    services = topology[2]['backend_services']
    services['user-service']['networks'].append({'network': 'backend'})
    services['order-service']['networks'].append({'aliases': ['x']})
    errors = errors_for(topology)
    assert variables(errors) == ["backend_services['order-service'].networks[2].network",
                                 "backend_services['user-service'].networks[2].network"]
    assert errors[0]['message'] == ('is missing; set it to a key of stack_networks: '
                                    'backend, database, frontend, monitoring')
    assert errors[1]['message'] == ("'backend' is already listed at backend_services['user-service'].networks[0]; "
                                    "list each network once per service (put extra aliases on that entry)")


def test_network_entries_may_be_plain_keys(topology):
    topology[2]['backend_services']['user-service']['networks'] = ['backend', 'database']
    assert errors_for(topology) == []


# --------------------------------------------------------------------------- ipv4 addresses

def set_mysql_address(topology, address):
    topology[2]['data_services']['mysql-db']['networks'][0]['ipv4_address'] = address
    return errors_for(topology)


ADDRESS_PATH = "data_services['mysql-db'].networks[0].ipv4_address"


NOT_AN_ADDRESS = ("is not a valid IPv4 address; write it like 172.22.0.10, or as the host number within the subnet "
                  "(10 for 172.22.0.10 in 172.22.0.0/16)")


@pytest.mark.parametrize('address, message', [
    ('172.22.0.300', f"'172.22.0.300' {NOT_AN_ADDRESS}"),
    ('fd00::10', f"'fd00::10' {NOT_AN_ADDRESS}"),
    (12.5, f'12.5 {NOT_AN_ADDRESS}'),
    (70000, ("host number 70000 is outside 172.22.0.0/16, the subnet of stack_networks['database'] "
             "(ecommerce-database), which has hosts 1 to 65534; pick one of those")),
    (1, ("172.22.0.1 is the gateway of 172.22.0.0/16 (the subnet of stack_networks['database'] "
         "(ecommerce-database)), which Docker keeps for the bridge; pick an unused address from "
         "172.22.0.2 to 172.22.255.254")),
    ('172.21.0.10', ("172.21.0.10 is outside 172.22.0.0/16, the subnet of stack_networks['database'] "
                     "(ecommerce-database); pick an unused address from 172.22.0.2 to 172.22.255.254")),
    ('172.22.0.0', ("172.22.0.0 is the network address of 172.22.0.0/16 (the subnet of stack_networks['database'] "
                    "(ecommerce-database)) and cannot be given to a container; pick an unused address from "
                    "172.22.0.2 to 172.22.255.254")),
    ('172.22.255.255', ("172.22.255.255 is the broadcast address of 172.22.0.0/16 (the subnet of "
                        "stack_networks['database'] (ecommerce-database)) and cannot be given to a container; pick "
                        "an unused address from 172.22.0.2 to 172.22.255.254")),
    ('172.22.0.1', ("172.22.0.1 is the gateway of 172.22.0.0/16 (the subnet of stack_networks['database'] "
                    "(ecommerce-database)), which Docker keeps for the bridge; pick an unused address from "
                    "172.22.0.2 to 172.22.255.254")),
])
def test_bad_ipv4_address(topology, address, message):
    assert only(set_mysql_address(topology, address)) == {'variable': ADDRESS_PATH, 'message': message}


@pytest.mark.parametrize('address', ['172.22.0.2', '172.22.127.254', '172.22.0.200', 200, '99'])
def test_good_ipv4_address(topology, address):
    assert set_mysql_address(topology, address) == []


def test_declared_gateway_is_honoured(topology):
    topology[0]['database']['gateway'] = '172.22.0.254'
    assert set_mysql_address(topology, '172.22.0.1') == []
    error = only(set_mysql_address(topology, '172.22.0.254'))
    assert error['message'].startswith('172.22.0.254 is the gateway of 172.22.0.0/16')
    assert error['message'].endswith('pick an unused address from 172.22.0.1 to 172.22.255.254')


def test_ipv4_address_used_twice(topology):
    topology[2]['data_services']['redis-cache']['networks'][0]['ipv4_address'] = '172.22.0.11'
    assert only(set_mysql_address(topology, '172.22.0.11')) == {
        'variable': "data_services['redis-cache'].networks[0].ipv4_address",
        'message': "172.22.0.11 is already given to data_services['mysql-db'].networks[0].ipv4_address on "
                   "stack_networks['database'] (ecommerce-database); give each container its own address",
    }


def test_same_address_on_different_networks_is_fine(topology):
    topology[2]['backend_services']['user-service']['networks'][0]['ipv4_address'] = [50]
    topology[2]['backend_services']['user-service']['networks'][1]['ipv4_address'] = [50]
    topology[2]['frontend_services']['load-balancer']['networks'][0]['ipv4_address'] = 50
    assert errors_for(topology) == []


def test_ipv4_address_on_replicated_service(topology):
    topology[2]['frontend_services']['web-server']['networks'][0]['ipv4_address'] = '172.20.0.20'
    error = only(errors_for(topology))
    assert error['variable'] == "frontend_services['web-server'].networks[0].ipv4_address"
    assert error['message'] == ('172.20.0.20 would be given to each of the 2 replicas of this service, but an address '
                                'can belong to only one container; list one address per replica '
                                '(ipv4_address: [172.20.0.20, ...]) or remove ipv4_address')


def test_one_address_per_replica(topology):
    topology[2]['frontend_services']['web-server']['networks'][0]['ipv4_address'] = [21, '172.20.0.22']
    assert errors_for(topology) == []
    topology[2]['frontend_services']['web-server']['networks'][0]['ipv4_address'] = [21, 22, 23]
    error = only(errors_for(topology))
    assert error == {'variable': "frontend_services['web-server'].networks[0].ipv4_address",
                     'message': 'lists 3 addresses for 2 replica(s); list at most one per replica'}
    topology[2]['frontend_services']['web-server']['networks'][0]['ipv4_address'] = [21, 21]
    error = only(errors_for(topology))
    assert error['variable'] == "frontend_services['web-server'].networks[0].ipv4_address[1]"
    assert error['message'].startswith('172.20.0.21 is already given to')


def test_fixed_address_inside_the_dynamic_range_is_refused(topology):
    topology[0]['database']['ip_range'] = '172.22.128.0/17'
    assert set_mysql_address(topology, 10) == []
    error = only(set_mysql_address(topology, '172.22.200.1'))
    assert error == {'variable': ADDRESS_PATH, 'message': (
        "172.22.200.1 is inside 172.22.128.0/17, the ip_range of stack_networks['database'] (ecommerce-database) "
        'from which Docker hands out dynamic addresses, so another container could take it first; pick an address '
        'outside that range')}


@pytest.mark.parametrize('ip_range, message', [
    ('172.23.0.0/24', '172.23.0.0/24 is not inside 172.22.0.0/16, the subnet of this network; pick a range inside '
                      'it, e.g. its upper half'),
    ('172.22.0.1/24', "'172.22.0.1/24' has host bits set: its network address is 172.22.0.0/24; "
                      'set ip_range: 172.22.0.0/24'),
])
def test_bad_ip_range(topology, ip_range, message):
    topology[0]['database']['ip_range'] = ip_range
    assert only(errors_for(topology)) == {'variable': "stack_networks['database'].ip_range", 'message': message}


def test_ipv4_address_needs_a_subnet(topology):
    for key, address in (('mongodb', '172.22.0.12'), ('mysql-db', '172.22.0.10'), ('redis-cache', '172.22.0.11')):
        topology[2]['data_services'][key]['networks'][0]['ipv4_address'] = address
    del topology[0]['database']['subnet']
    errors = {error['variable']: error['message'] for error in errors_for(topology)}
    assert [f"data_services['{key}'].networks[0].ipv4_address" for key in ('mongodb', 'mysql-db', 'redis-cache')
            if f"data_services['{key}'].networks[0].ipv4_address" in errors] == [
        f"data_services['{key}'].networks[0].ipv4_address" for key in ('mongodb', 'mysql-db', 'redis-cache')]
    assert errors["data_services['mysql-db'].networks[0].ipv4_address"] == (
        "172.22.0.10 needs a subnet on stack_networks['database'] (ecommerce-database), "
        "which declares none; add a subnet to that network or remove ipv4_address")
    assert errors["stack_networks['database'].ip_range"] == (
        '172.22.128.0/17 needs a subnet to lie in; add a subnet to this network or remove ip_range')


def test_ipv4_address_on_undeclared_or_invalid_network_is_reported_once(topology):
    topology[2]['data_services']['mysql-db']['networks'][0]['ipv4_address'] = '172.22.0.10'
    topology[2]['backend_services']['user-service']['networks'][0]['network'] = 'nowhere'
    topology[2]['backend_services']['user-service']['networks'][0]['ipv4_address'] = '172.21.0.10'
    topology[0]['database']['subnet'] = 'bogus'
    errors = errors_for(topology)
    assert variables(errors) == ["stack_networks['database'].subnet",
                                 "backend_services['user-service'].networks[0].network"]


# --------------------------------------------------------------------------- container names and required fields

def test_duplicate_container_name_across_tiers(topology):
    topology[2]['backend_services']['cache'] = {'container_name': 'redis-cache', 'image': 'redis:7'}
    assert only(errors_for(topology)) == {
        'variable': "data_services['redis-cache'].container_name",
        'message': "container 'redis-cache' clashes with container 'redis-cache' of backend_services['cache']; "
                   "container names must be unique across all tiers, so rename one of them",
    }


def test_duplicate_container_name_after_replica_expansion(topology):
    topology[2]['backend_services']['web-server-2'] = {'container_name': 'web-server-2', 'image': 'nginx'}
    assert only(errors_for(topology)) == {
        'variable': "frontend_services['web-server'].container_name",
        'message': "container 'web-server-2' (replica 2 of 2) clashes with container 'web-server-2' of "
                   "backend_services['web-server-2']; container names must be unique across all tiers, so rename "
                   "one of them",
    }


def test_replica_names_do_not_clash_with_the_base_name(topology):
    topology[2]['backend_services']['web-server'] = {'container_name': 'web-server', 'image': 'nginx'}
    assert errors_for(topology) == []


def test_missing_required_fields(topology):
    topology[2]['data_services']['broken'] = {'image': ''}
    errors = errors_for(topology)
    assert errors == [
        {'variable': "data_services['broken'].container_name",
         'message': 'is missing; every enabled service needs one, e.g. container_name: broken'},
        {'variable': "data_services['broken'].image",
         'message': 'is missing; every enabled service needs the image to run: name the image component of its '
                    'tier (image_component: nginx) or a reference (image: nginx:1.27)'},
    ]


@pytest.mark.parametrize('image', [{'image_component': 'nginx'}, {'image': 'nginx:1.27'},
                                   {'image_component': 'nginx', 'image': 'nginx:1.27'}])
def test_an_image_component_or_a_reference_is_enough(topology, image):
    topology[2]['data_services']['extra'] = dict({'container_name': 'extra'}, **image)
    assert errors_for(topology) == []


def test_an_image_that_is_not_a_string(topology):
    topology[2]['data_services']['extra'] = {'container_name': 'extra', 'image': ['nginx']}
    assert only(errors_for(topology)) == {
        'variable': "data_services['extra'].image",
        'message': 'is a list (["nginx"]); set it to an image reference string such as nginx:1.27'}


def test_invalid_container_name_and_service_shape(topology):
    topology[2]['data_services']['spaced'] = {'container_name': 'my db', 'image': 'x'}
    topology[2]['data_services']['listed'] = ['not', 'a', 'mapping']
    errors = errors_for(topology)
    assert variables(errors) == ["data_services['listed']", "data_services['spaced'].container_name"]
    assert errors[0]['message'] == ('is a list (["not", "a", "mapping"]), but must be a mapping with at least '
                                    'container_name and image_component (or image)')
    assert errors[1]['message'].startswith("'my db' is not a valid container name")


def test_bad_replicas_and_enabled(topology):
    topology[2]['data_services']['mongodb']['replicas'] = 'two'
    topology[2]['data_services']['mysql-db']['enabled'] = 'maybe'
    errors = errors_for(topology)
    assert errors == [
        {'variable': "data_services['mongodb'].replicas",
         'message': "'two' is not a whole number of containers; set replicas to 1 or more (0 runs none), or set "
                    "enabled: false to leave the service out"},
        {'variable': "data_services['mysql-db'].enabled",
         'message': "'maybe' is not a boolean; set enabled to true or false"},
    ]


def test_disabled_services_are_ignored(topology):
    topology[2]['data_services']['legacy'] = {
        'enabled': False, 'container_name': 'mysql-db', 'image': '',
        'networks': [{'network': 'nowhere', 'ipv4_address': '172.22.0.10'}],
        'ports': [{'host_port': 9090, 'container_port': 'x'}], 'volumes': [{'volume': 'nothing', 'target': 'rel'}],
    }
    assert errors_for(topology) == []
    records = resolved(topology)['containers']
    assert [r['component'] for r in records if r['name'] == 'mysql-db'] == ['mysql-db']
    assert 'legacy' not in [r['component'] for r in records]


# --------------------------------------------------------------------------- host ports

def add_port(topology, var, key, **port):
    topology[2][var][key].setdefault('ports', []).append(port)


def test_duplicate_host_port(topology):
    add_port(topology, 'monitoring_services', 'grafana', host_port=8080, container_port=80)
    assert only(errors_for(topology)) == {
        'variable': "monitoring_services['grafana'].ports[1].host_port",
        'message': "host port 8080/tcp on 0.0.0.0 is already published by "
                   "frontend_services['load-balancer'].ports[0].host_port (on 0.0.0.0); give each published port its "
                   "own host_port, or bind them to different addresses",
    }


@pytest.mark.parametrize('first, second, clash', [
    ('127.0.0.1', '127.0.0.1', True),
    ('127.0.0.1', '0.0.0.0', True),
    ('::', '127.0.0.1', True),
    ('::1', '0:0:0:0:0:0:0:1', True),
    ('127.0.0.1', '127.0.0.2', False),
    ('127.0.0.1', '::1', False),
])
def test_host_port_bind_address_collisions(topology, first, second, clash):
    add_port(topology, 'data_services', 'mongodb', host_port=27017, container_port=27017, bind_address=first)
    add_port(topology, 'data_services', 'mysql-db', host_port=27017, container_port=3306, bind_address=second)
    errors = errors_for(topology)
    assert variables(errors) == (["data_services['mysql-db'].ports[0].host_port"] if clash else [])
    assert binds_collide(ipaddress.ip_address(first).compressed, ipaddress.ip_address(second).compressed) is clash


def test_same_port_different_protocols_is_fine(topology):
    # prometheus already publishes 9090/tcp
    add_port(topology, 'data_services', 'mongodb', host_port=9090, container_port=9090, protocol='udp')
    assert errors_for(topology) == []


NOT_A_PORT = (' is not a whole number; set a host port from 1 to 65535 (or leave host_port out to keep the port '
              'unpublished)')


@pytest.mark.parametrize('value, message', [
    (0, '0 is outside the valid range 1-65535; set a host port from 1 to 65535'),
    (65536, '65536 is outside the valid range 1-65535; set a host port from 1 to 65535'),
    (-1, '-1 is outside the valid range 1-65535; set a host port from 1 to 65535'),
    ('80a', "'80a'" + NOT_A_PORT),
    (80.5, '80.5' + NOT_A_PORT),
    (True, 'true' + NOT_A_PORT),
])
def test_bad_host_port(topology, value, message):
    add_port(topology, 'data_services', 'mongodb', host_port=value, container_port=27017)
    assert only(errors_for(topology)) == {'variable': "data_services['mongodb'].ports[0].host_port", 'message': message}


@pytest.mark.parametrize('value', [1, 65535, '27017'])
def test_good_host_port(topology, value):
    add_port(topology, 'data_services', 'mongodb', host_port=value, container_port=27017)
    assert errors_for(topology) == []


def test_other_port_fields(topology):
    add_port(topology, 'data_services', 'mongodb', host_port=27017, container_port='mongo', protocol='http',
             bind_address='localhost')
    add_port(topology, 'data_services', 'redis-cache', host_port=6379)
    errors = errors_for(topology)
    assert errors == [
        {'variable': "data_services['mongodb'].ports[0].container_port",
         'message': "'mongo' is not a port number; use a whole number from 1 to 65535"},
        {'variable': "data_services['mongodb'].ports[0].protocol",
         'message': "'http' is not a protocol Docker can publish; use tcp, udp or sctp"},
        {'variable': "data_services['mongodb'].ports[0].bind_address",
         'message': "'localhost' is not an IP address; use an address of the Docker host such as 127.0.0.1, or "
                    "0.0.0.0 for all of its addresses"},
        {'variable': "data_services['redis-cache'].ports[0].container_port",
         'message': 'is missing; set the port the service listens on inside the container, e.g. container_port: 80'},
    ]


def test_host_port_on_replicated_service(topology):
    add_port(topology, 'frontend_services', 'web-server', host_port=8088, container_port=80)
    assert only(errors_for(topology))['message'] == (
        'host port 8088/tcp would be published by each of the 2 replicas of this service, but only one container can '
        'hold it; remove host_port (reach the replicas through the load balancer) or set replicas to 1')


# --------------------------------------------------------------------------- volumes

def test_undeclared_volume_key(topology):
    topology[2]['data_services']['mysql-db']['volumes'][0]['volume'] = 'mysql_data'
    assert only(errors_for(topology)) == {
        'variable': "data_services['mysql-db'].volumes[0].volume",
        'message': "'mysql_data' is not declared in stack_volumes; declare it in stack_volumes or use one of: "
                   "cache_data, config, db_data, db_data_mariadb, es_data, grafana_data, logs, mongo_data, prometheus_data",
    }


def test_volume_entry_problems(topology):
    topology[2]['data_services']['mongodb']['volumes'] = [
        {'source': 'data/mongo', 'target': '/data/db'},
        {'volume': 'db_data', 'source': '/srv/x', 'target': '/data/configdb'},
        {'target': '/x'},
        {'volume': 'logs', 'target': 'relative'},
        {'volume': 'logs', 'target': '/data/db/'},
    ]
    errors = errors_for(topology)
    assert errors == [
        {'variable': "data_services['mongodb'].volumes[0].source",
         'message': "'data/mongo' is not an absolute path; a bind mount needs an absolute host path such as "
                    "/srv/ecommerce/config"},
        {'variable': "data_services['mongodb'].volumes[1]",
         'message': "sets both volume ('db_data') and source ('/srv/x'); use volume for a named volume or source for "
                    "a bind mount, not both"},
        {'variable': "data_services['mongodb'].volumes[2]",
         'message': 'has neither volume nor source; set volume to a key of stack_volumes (cache_data, config, '
                    'db_data, db_data_mariadb, es_data, grafana_data, logs, mongo_data, prometheus_data) or source to an '
                    'absolute host path'},
        {'variable': "data_services['mongodb'].volumes[3].target",
         'message': "'relative' is not an absolute path; write the path inside the container like /data"},
        {'variable': "data_services['mongodb'].volumes[4].target",
         'message': "'/data/db/' is already mounted by data_services['mongodb'].volumes[0]; mount one volume per target"},
    ]


def test_volume_declarations(topology):
    topology[1]['broken'] = ''
    topology[1]['as_dict'] = {'name': 'ecommerce-as-dict'}
    assert only(errors_for(topology)) == {
        'variable': "stack_volumes['broken']",
        'message': "is a string (''); set it to the Docker volume name, e.g. broken: ecommerce-broken",
    }


# --------------------------------------------------------------------------- shapes and determinism

def test_top_level_shapes():
    errors = validate_topology(['x'], 'y', {'data_services': 'z', 'empty_services': None})
    assert variables(errors) == ['stack_networks', 'stack_volumes', 'data_services']


def test_messages_are_deterministic(topology):
    networks, volumes, services = topology
    services['data_services']['mysql-db']['networks'][0]['network'] = 'db'
    services['backend_services']['cache'] = {'container_name': 'redis-cache', 'image': 'redis:7'}
    set_subnet(topology, 'monitoring', '172.20.0.0/24')
    first = validate_topology(networks, volumes, services)
    reversed_services = {var: dict(reversed(list(tier.items()))) for var, tier in reversed(list(services.items()))}
    second = validate_topology(dict(reversed(list(networks.items()))), volumes, reversed_services)
    assert first == second
    assert variables(first) == ["stack_networks['monitoring'].subnet",
                                "data_services['mysql-db'].networks[0].network",
                                "data_services['redis-cache'].container_name"]


def test_format_error_report():
    report = format_error_report([
        {'variable': "stack_networks['backend'].subnet", 'message': 'is bad; fix it'},
        {'variable': "data_services['mysql-db'].image", 'message': 'is missing; set it'},
    ])
    assert report == ("The topology has 2 problem(s); nothing was changed:\n"
                      "- stack_networks['backend'].subnet: is bad; fix it\n"
                      "- data_services['mysql-db'].image: is missing; set it")


# --------------------------------------------------------------------------- Docker network subnets

EXISTING = [
    {'name': 'bridge', 'subnets': ['172.17.0.0/16'], 'labels': {}},
    {'name': 'ecommerce-frontend', 'subnets': ['172.20.0.0/16'], 'labels': {}},
    {'name': 'host', 'subnets': [], 'labels': {}},
]


def test_no_subnet_conflicts_with_unrelated_or_same_named_networks(topology):
    assert check_subnet_conflicts(topology[0], EXISTING) == []


def test_subnet_conflict_names_both_networks(topology):
    existing = EXISTING + [{'name': 'shop_default', 'subnets': ['172.21.5.0/24', 'fd00::/64'],
                            'labels': {'com.docker.compose.project': 'shop'}}]
    assert check_subnet_conflicts(topology[0], existing) == [{
        'variable': "stack_networks['backend'].subnet",
        'message': "172.21.0.0/16 of network 'ecommerce-backend' overlaps 172.21.5.0/24, the subnet of the existing "
                   "Docker network 'shop_default' (created by the Docker Compose project 'shop'); remove that network "
                   "(docker network rm shop_default) or choose another subnet for stack_networks['backend']",
    }]


def test_subnet_conflict_with_differently_named_network(topology):
    topology[0]['frontend']['name'] = 'shop-frontend'
    errors = check_subnet_conflicts(topology[0], EXISTING)
    assert variables(errors) == ["stack_networks['frontend'].subnet"]
    assert "the existing Docker network 'ecommerce-frontend'" in errors[0]['message']


def test_subnet_conflicts_skip_invalid_data(topology):
    topology[0]['backend']['subnet'] = 'bogus'
    existing = [{'name': 'weird', 'subnets': ['not-a-subnet', '172.21.0.0/16']}]
    assert check_subnet_conflicts(topology[0], existing) == []


def test_docker_networks_summary():
    api = [{'Name': 'b', 'IPAM': {'Config': [{'Subnet': '10.1.0.0/16', 'Gateway': '10.1.0.1'}]}, 'Labels': None},
           {'Name': 'a', 'IPAM': {'Config': None}, 'Labels': {'x': 'y'}}]
    assert docker_networks_summary(api) == [{'name': 'a', 'subnets': [], 'labels': {'x': 'y'}},
                                            {'name': 'b', 'subnets': ['10.1.0.0/16'], 'labels': {}}]


# --------------------------------------------------------------------------- host ports on the host

def socket_probe(bind_address, port, protocol):
    """A real probe: bind a socket with SO_REUSEADDR and close it."""
    kind = socket.SOCK_DGRAM if protocol == 'udp' else socket.SOCK_STREAM
    sock = socket.socket(socket.AF_INET6 if ':' in bind_address else socket.AF_INET, kind)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((bind_address, port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return False
        raise
    finally:
        sock.close()
    return True


def lb_with_port(topology, port, bind_address='127.0.0.1'):
    services = topology[2]
    services['frontend_services']['load-balancer']['ports'] = [
        {'host_port': port, 'container_port': 80, 'bind_address': bind_address}]
    return [r for r in published_ports(resolved(topology)) if r['container'] == 'load-balancer']


LB_VAR = "frontend_services['load-balancer'].ports[0].host_port"


def test_busy_port_held_by_another_program(topology, busy_port):
    records = lb_with_port(topology, busy_port)
    assert host_port_conflicts(records, socket_probe, {}) == [{
        'variable': LB_VAR,
        'message': f'host port {busy_port}/tcp ({LB_VAR}) is already in use by another program; free the port '
                   '(ss -lntup shows who listens on it) or set another host_port',
    }]


def test_busy_port_on_wildcard_declaration(topology, busy_port):
    records = lb_with_port(topology, busy_port, bind_address='0.0.0.0')
    assert variables(host_port_conflicts(records, socket_probe, {})) == [LB_VAR]


def test_busy_port_held_by_a_container(topology, busy_port):
    records = lb_with_port(topology, busy_port)
    owners = {('0.0.0.0', busy_port, 'tcp'): 'old-nginx'}
    assert host_port_conflicts(records, socket_probe, owners) == [{
        'variable': LB_VAR,
        'message': f"host port {busy_port}/tcp ({LB_VAR}) is already in use by container 'old-nginx'; stop or "
                   "remove that container (docker rm -f old-nginx), or set another host_port",
    }]


def test_busy_port_held_by_the_declaring_container(topology, busy_port):
    records = lb_with_port(topology, busy_port)
    owners = {f'127.0.0.1/{busy_port}/tcp': 'load-balancer', f'::/{busy_port}/tcp': 'load-balancer'}
    assert host_port_conflicts(records, socket_probe, owners) == []


def test_free_port_is_fine(topology):
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    port = sock.getsockname()[1]
    sock.close()
    records = lb_with_port(topology, port)
    assert host_port_conflicts(records, socket_probe, {('127.0.0.1', port, 'udp'): 'other-protocol'}) == []


def test_unbindable_address(topology):
    records = lb_with_port(topology, 8080, bind_address='192.0.2.1')   # TEST-NET-1, not on this host

    def probe(bind_address, port, protocol):
        raise OSError(errno.EADDRNOTAVAIL, 'Cannot assign requested address')

    assert host_port_conflicts(records, probe, {}) == [{
        'variable': LB_VAR,
        'message': f'host port 8080/tcp ({LB_VAR}) cannot be bound on 192.0.2.1: Cannot assign requested address; set '
                   'bind_address to 0.0.0.0 or to an address of this host',
    }]


def test_port_owners_from_containers():
    api = [
        {'Id': 'abc', 'Names': ['/grafana'], 'Ports': [
            {'IP': '0.0.0.0', 'PrivatePort': 3000, 'PublicPort': 3000, 'Type': 'tcp'},
            {'IP': '::', 'PrivatePort': 3000, 'PublicPort': 3000, 'Type': 'tcp'},
            {'PrivatePort': 9999, 'Type': 'tcp'}]},
        {'Id': 'def0123456789', 'Names': [], 'Ports': [{'IP': '127.0.0.1', 'PublicPort': 53, 'Type': 'udp'}]},
    ]
    assert port_owners_from_containers(api) == {
        ('0.0.0.0', 3000, 'tcp'): 'grafana',
        ('::', 3000, 'tcp'): 'grafana',
        ('127.0.0.1', 53, 'udp'): 'def012345678',
    }


def test_subnet_conflict_with_docker_default_bridge(topology):
    topology[0]['backend']['subnet'] = '172.17.0.0/16'
    assert check_subnet_conflicts(topology[0], EXISTING) == [{
        'variable': "stack_networks['backend'].subnet",
        'message': "172.17.0.0/16 of network 'ecommerce-backend' overlaps 172.17.0.0/16, the subnet of the existing "
                   "Docker network 'bridge'; choose another subnet for stack_networks['backend'] (Docker creates "
                   "bridge itself; its range comes from bip or default-address-pools in /etc/docker/daemon.json)",
    }]
