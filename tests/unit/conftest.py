# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Make ``ansible_collections.dockerlab.ecommerce`` importable for ``python -m pytest tests/unit``.

Under ``ansible-test units`` the collection is already importable and nothing is done.
Otherwise a temporary directory holding ``ansible_collections/dockerlab/ecommerce`` (a
symlink to this checkout) is put first on ``sys.path``.  ``ansible_collections`` and
``ansible_collections.dockerlab`` stay implicit namespace packages, so they merge with
any other ``ansible_collections`` directory on ``sys.path`` (e.g. the ``ansible``
package's), and this checkout wins over any installed copy of the collection.
"""

from __future__ import annotations

import atexit
import copy
import importlib
import ipaddress
import importlib.util
import os
import shutil
import sys
import tempfile

import pytest

REPO_ROOT = os.path.realpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..'))
COLLECTION = 'ansible_collections.dockerlab.ecommerce'


def _already_importable():
    try:
        spec = importlib.util.find_spec(COLLECTION)
    except ImportError:
        return False
    if spec is None:
        return False
    locations = list(spec.submodule_search_locations or [])
    return any(os.path.realpath(location) == REPO_ROOT for location in locations)


def _make_collection_importable():
    if _already_importable():
        return None
    base = tempfile.mkdtemp(prefix='dockerlab-ecommerce-units-')
    atexit.register(shutil.rmtree, base, True)
    namespace_dir = os.path.join(base, 'ansible_collections', 'dockerlab')
    os.makedirs(namespace_dir)
    os.symlink(REPO_ROOT, os.path.join(namespace_dir, 'ecommerce'))
    sys.path.insert(0, base)
    # forget any other copy of the collection imported before us
    for name in list(sys.modules):
        if name == 'ansible_collections.dockerlab' or name.startswith('ansible_collections.dockerlab.'):
            del sys.modules[name]
    importlib.invalidate_caches()
    importlib.import_module(COLLECTION + '.plugins.module_utils.topology')
    return base


COLLECTIONS_BASE = _make_collection_importable()

# The test modules import the shared topology data below with `from conftest import ...`;
# make that work whatever pytest's import mode is.
_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)


@pytest.fixture
def collections_path(tmp_path):
    """A directory for ANSIBLE_COLLECTIONS_PATH holding ansible_collections/dockerlab/ecommerce -> this checkout."""
    namespace_dir = tmp_path / 'collections' / 'ansible_collections' / 'dockerlab'
    namespace_dir.mkdir(parents=True)
    (namespace_dir / 'ecommerce').symlink_to(REPO_ROOT, target_is_directory=True)
    return str(tmp_path / 'collections')


DEFAULT_NETWORKS = {
    'frontend': {'name': 'ecommerce-frontend', 'subnet': '172.20.0.0/16', 'internal': False},
    'backend': {'name': 'ecommerce-backend', 'subnet': '172.21.0.0/16', 'internal': False},
    'database': {'name': 'ecommerce-database', 'subnet': '172.22.0.0/16', 'internal': True},
    'monitoring': {'name': 'ecommerce-monitoring', 'subnet': '172.23.0.0/16', 'internal': False},
}

DEFAULT_VOLUMES = {
    'db_data': 'ecommerce-db-data',
    'cache_data': 'ecommerce-cache-data',
    'logs': 'ecommerce-logs',
    'config': 'ecommerce-config',
}


def _net(network, *aliases, **extra):
    entry = {'network': network, 'aliases': list(aliases)}
    entry.update(extra)
    return entry


DEFAULT_SERVICES = {
    'frontend_services': {
        'load-balancer': {
            'enabled': True, 'container_name': 'load-balancer', 'image': 'nginx:1.27-alpine',
            'networks': [_net('frontend', 'lb', ipv4_address='172.20.0.10')],
            'ports': [{'host_port': 8080, 'container_port': 80, 'bind_address': '0.0.0.0', 'protocol': 'tcp'}],
            'volumes': [{'volume': 'logs', 'target': '/var/log/nginx'},
                        {'volume': 'config', 'target': '/etc/nginx/conf.d', 'read_only': True}],
            'profiles': ['upstream', 'offline'],
        },
        'web-server': {
            'container_name': 'web-server', 'replicas': 2, 'image': 'nginx:1.27-alpine',
            'networks': [_net('frontend', 'web'), _net('backend')],
        },
    },
    'backend_services': {
        'api-gateway': {
            'container_name': 'api-gateway', 'image': 'dockerlab/api-gateway:1.0',
            'networks': [_net('frontend', 'api'), _net('backend', 'gateway', ipv4_address='172.21.0.10')],
            'ports': [{'container_port': 3000}],
        },
        'user-service': {
            'container_name': 'user-service', 'image': 'dockerlab/user-service:1.0',
            'networks': [_net('backend', 'users'), _net('database')],
        },
        'order-service': {
            'container_name': 'order-service', 'image': 'dockerlab/order-service:1.0',
            'networks': [_net('backend', 'orders'), _net('database')],
        },
        'payment-service': {
            'container_name': 'payment-service', 'image': 'dockerlab/payment-service:1.0',
            'networks': [_net('backend', 'payments'), _net('database')],
        },
    },
    'data_services': {
        'mysql-db': {
            'enabled': True, 'container_name': 'mysql-db', 'replicas': 1, 'image': 'mysql:8.4',
            'networks': [_net('database', 'mysql', ipv4_address='172.22.0.10')],
            'volumes': [{'volume': 'db_data', 'target': '/var/lib/mysql'}],
            'profiles': ['upstream', 'offline'],
        },
        'redis-cache': {
            'container_name': 'redis-cache', 'image': 'redis:7-alpine',
            'networks': [_net('database', 'redis', ipv4_address='172.22.0.11')],
            'volumes': [{'volume': 'cache_data', 'target': '/data'}],
        },
        'mongodb': {
            'container_name': 'mongodb', 'image': 'mongo:7',
            'networks': [_net('database', 'mongo', ipv4_address='172.22.0.12')],
        },
    },
    'monitoring_services': {
        'prometheus': {
            'container_name': 'prometheus', 'image': 'prom/prometheus:v2.53.0',
            'networks': [_net('monitoring', 'prometheus'), _net('backend')],
            'ports': [{'host_port': 9090, 'container_port': 9090}],
            'volumes': [{'source': '/srv/ecommerce/prometheus', 'target': '/etc/prometheus', 'read_only': True}],
        },
        'grafana': {
            'container_name': 'grafana', 'image': 'grafana/grafana:11.1.0',
            'networks': [_net('monitoring', 'grafana')],
            'ports': [{'host_port': 3000, 'container_port': 3000}],
        },
        'cadvisor': {
            'container_name': 'cadvisor', 'image': 'gcr.io/cadvisor/cadvisor:v0.49.1',
            'networks': [_net('monitoring', 'cadvisor')],
            'ports': [{'host_port': 8081, 'container_port': 8080}],
        },
    },
    'logging_services': {
        'elasticsearch': {
            'container_name': 'elasticsearch', 'image': 'elasticsearch:8.14.3',
            'networks': [_net('monitoring', 'elasticsearch')],
            'ports': [{'host_port': 9200, 'container_port': 9200}],
        },
        'kibana': {
            'container_name': 'kibana', 'image': 'kibana:8.14.3',
            'networks': [_net('monitoring', 'kibana')],
            'ports': [{'host_port': 5601, 'container_port': 5601}],
        },
        'fluentd': {
            'container_name': 'fluentd', 'image': 'fluent/fluentd:v1.17-1',
            'networks': [_net('monitoring', 'fluentd'), _net('backend')],
            'ports': [{'host_port': 24224, 'container_port': 24224},
                      {'host_port': 24224, 'container_port': 24224, 'protocol': 'udp'}],
            'volumes': [{'volume': 'logs', 'target': '/fluentd/log'}],
        },
    },
}

DEFAULT_CONTAINERS = [
    'load-balancer', 'web-server-1', 'web-server-2', 'api-gateway', 'user-service', 'order-service',
    'payment-service', 'mysql-db', 'redis-cache', 'mongodb', 'prometheus', 'grafana', 'cadvisor',
    'elasticsearch', 'kibana', 'fluentd',
]


@pytest.fixture
def topology():
    """The course's default topology as (networks, volumes, services_by_var); a fresh deep copy per test."""
    return copy.deepcopy(DEFAULT_NETWORKS), copy.deepcopy(DEFAULT_VOLUMES), copy.deepcopy(DEFAULT_SERVICES)


def unused_subnets(existing_networks, count):
    """``count`` /24 subnets that overlap no network of the Docker engine."""
    taken = []
    for network in existing_networks or []:
        for config in (network.get('IPAM') or {}).get('Config') or []:
            if config.get('Subnet'):
                taken.append(ipaddress.ip_network(config['Subnet'], strict=False))
    found = []
    for candidate in ipaddress.ip_network('10.231.0.0/16').subnets(new_prefix=24):
        if not any(candidate.version == other.version and candidate.overlaps(other) for other in taken):
            found.append(str(candidate))
            if len(found) == count:
                return found
    pytest.skip('no unused test subnet in 10.231.0.0/16')
