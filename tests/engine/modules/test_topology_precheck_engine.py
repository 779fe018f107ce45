# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""topology_precheck against the real Docker engine of this machine.

The module runs in-process (patch_module_args) on the roles' default topology, moved to
subnets and host ports that are free here, and compares it with the engine: its networks'
subnets and the containers that publish ports. It only reads from the engine (the network
and container lists); nothing is created. tests/engine/modules/conftest.py stops the run
when no engine answers, so nothing here is skipped. The runs without an engine are in
tests/unit/plugins/modules/test_topology_precheck.py.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import os
import socket

import docker
import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.dockerlab.ecommerce.plugins.modules import topology_precheck

from docker_env import unused_subnets  # pylint: disable=import-error  # tests/docker_env.py
from role_defaults import unit_defaults  # pylint: disable=import-error  # tests/role_defaults.py
from topology_edit import free_host_ports, move_network, move_networks  # pylint: disable=import-error  # tests/topology_edit.py

DOCKER_HOST = os.environ.get('DOCKER_HOST') or 'unix:///var/run/docker.sock'


DEFAULTS = unit_defaults()


@pytest.fixture(name='engine_networks')
def fixture_engine_networks():
    """The engine's networks, as the Docker API lists them (the conftest has checked that an engine answers)."""
    client = docker.APIClient(base_url=DOCKER_HOST, version='auto', timeout=15)
    try:
        return client.networks()
    finally:
        client.close()


@pytest.fixture(autouse=True)
def module_side(monkeypatch):
    """Run the module as on a target host (see the unit tests' fixture of the same name)."""
    from ansible.module_utils import _internal as module_internal  # pylint: disable=import-outside-toplevel
    from ansible.module_utils.common import warnings as module_warnings  # pylint: disable=import-outside-toplevel
    if hasattr(module_internal, 'is_controller'):
        monkeypatch.setattr(module_internal, 'is_controller', False)
    store = getattr(module_warnings, '_global_warnings', None)
    if store is not None:
        store.clear()


def _free_port():
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def host_safe_topology(existing_networks):
    """The default topology on subnets no engine network uses and on host ports free here
    (each its own, on 127.0.0.1); fixed addresses keep their place in their subnet."""
    networks = copy.deepcopy(DEFAULTS['networks'])
    services = copy.deepcopy(DEFAULTS['services'])
    move_networks(networks, services, unused_subnets(existing_networks, len(networks)), 'dockerlab-engine-')
    free_host_ports(services, _free_port)
    return networks, copy.deepcopy(DEFAULTS['volumes']), services


def run_module(capsys, topology, **extra):
    """Run the module in-process against the engine; return (failed, result dict)."""
    networks, volumes, services = topology
    args = {'networks': networks, 'volumes': volumes, 'services': services, 'images': DEFAULTS['images'],
            'docker_host': DOCKER_HOST, **extra}
    with patch_module_args(args), pytest.raises(SystemExit) as exit_info:
        topology_precheck.main()
    return exit_info.value.code != 0, json.loads(capsys.readouterr().out)


def test_success_against_docker(capsys, engine_networks):
    failed, result = run_module(capsys, host_safe_topology(engine_networks))
    assert not failed, result.get('msg')
    assert result['errors'] == []
    assert result['changed'] is False
    assert result['checked'][-3:] == ['docker_network_subnets', 'host_port_availability', 'host_port_owners']
    assert 'warnings' not in result


def test_failure_against_docker(capsys, engine_networks, busy_port):
    bridge = [n for n in engine_networks if n['Name'] == 'bridge' and (n.get('IPAM') or {}).get('Config')]
    if not bridge:
        pytest.fail("the Docker engine has no default 'bridge' network with a subnet, which this test overlaps")
    existing_subnet = str(ipaddress.ip_network(bridge[0]['IPAM']['Config'][0]['Subnet'], strict=False))

    networks, volumes, services = host_safe_topology(engine_networks)
    move_network(networks, services, 'frontend', existing_subnet)
    services['frontend_services']['load-balancer']['networks'][0].pop('ipv4_address', None)
    services['frontend_services']['load-balancer']['ports'][0]['host_port'] = busy_port
    failed, result = run_module(capsys, (networks, volumes, services), _ansible_check_mode=True)
    assert failed
    lb_var = "frontend_services['load-balancer'].ports[0].host_port"
    assert result['errors'] == [
        {'variable': "stack_networks['frontend'].subnet",
         'message': f"{existing_subnet} of network 'dockerlab-engine-frontend' overlaps {existing_subnet}, the "
                    "subnet of the existing Docker network 'bridge'; choose another subnet for "
                    "stack_networks['frontend'] (Docker creates bridge itself; its range comes from bip or "
                    "default-address-pools in /etc/docker/daemon.json)"},
        {'variable': lb_var,
         'message': f'host port {busy_port}/tcp ({lb_var}) is already in use by another program; free the port '
                    '(ss -lntup shows who listens on it) or set another host_port'},
    ]
    assert result['msg'].startswith('The topology has 2 problem(s); nothing was changed:\n'
                                    "- stack_networks['frontend'].subnet: ")
    assert result['msg'].splitlines()[2] == f"- {lb_var}: {result['errors'][1]['message']}"
