# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""End-to-end tests of the topology_precheck module.

The module runs in-process through ansible-core's patch_module_args (its real argument
parsing, exit_json and fail_json), and once through ansible-playbook as a subprocess. No
Docker engine is used: the host checks run against an address where none answers, or
without the Docker SDK; the runs against a real engine are in
tests/engine/modules/test_topology_precheck_engine.py.
"""

from __future__ import annotations

import copy
import importlib
import json
import os
import shutil
import socket
import subprocess
import sys

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.dockerlab.ecommerce.plugins.modules import topology_precheck
from conftest import (
    unused_subnets,
    DEFAULT_CONTAINERS,
    DEFAULT_IMAGES,
    DEFAULT_NETWORKS,
    DEFAULT_SERVICES,
    DEFAULT_VOLUMES,
)
from topology_edit import free_host_ports, move_networks  # pylint: disable=import-error  # tests/topology_edit.py


def busy_message(port, variable):
    return (f'host port {port}/tcp ({variable}) is already in use by another program; free the port '
            '(ss -lntup shows who listens on it) or set another host_port')


def free_port():
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def host_safe_topology(existing_networks=None):
    """The default topology with subnets and host ports that are free on this machine (each
    published port its own, on 127.0.0.1)."""
    networks = copy.deepcopy(DEFAULT_NETWORKS)
    services = copy.deepcopy(DEFAULT_SERVICES)
    move_networks(networks, services, unused_subnets(existing_networks, len(networks)), 'dockerlab-unit-')
    free_host_ports(services, free_port)
    return networks, copy.deepcopy(DEFAULT_VOLUMES), services


@pytest.fixture(autouse=True)
def module_side(monkeypatch):
    """Run the module as on a target host.

    Importing controller code (ansible.errors, the filter tests do) marks the whole process as
    the controller, and module warnings then go to the controller's display instead of the
    result; modules never run that way.  In-process runs also share one global warning list.
    """
    from ansible.module_utils import _internal as module_internal
    from ansible.module_utils.common import warnings as module_warnings
    if hasattr(module_internal, 'is_controller'):
        monkeypatch.setattr(module_internal, 'is_controller', False)
    store = getattr(module_warnings, '_global_warnings', None)
    if store is not None:
        store.clear()
    yield


def warning_texts(result):
    """Warning messages of a module result (plain strings, or 2.19's serialized WarningSummary)."""
    texts = []
    for warning in result.get('warnings', []):
        if isinstance(warning, dict):
            warning = (warning.get('event') or {}).get('msg', warning)
        texts.append(warning)
    return texts


def run_module(capsys, args):
    """Run the module in-process; return (failed, result dict)."""
    with patch_module_args(args), pytest.raises(SystemExit) as exit_info:
        topology_precheck.main()
    result = json.loads(capsys.readouterr().out)
    return exit_info.value.code != 0, result


def module_args(topology, **extra):
    networks, volumes, services = topology
    args = {'networks': networks, 'volumes': volumes, 'services': services, 'images': DEFAULT_IMAGES}
    args.update(extra)
    return args


# --------------------------------------------------------------------------- static checks only

def test_success_without_host_checks(capsys, topology):
    failed, result = run_module(capsys, module_args(topology, check_host=False))
    assert not failed
    assert result['changed'] is False
    assert result['errors'] == []
    assert sorted(result['containers']) == sorted(DEFAULT_CONTAINERS)
    # Every image profile: the profile is not settled yet when the precheck runs.
    assert {'mongodb', 'log-collector', 'fluentd', 'grafana'} <= set(result['containers'])
    assert result['checked'] == [*topology_precheck.TOPOLOGY_CHECKS, 'model']
    assert 'warnings' not in result


def test_containers_are_listed_by_variable_then_replica(capsys, topology):
    topology[2]['backend_services']['user-service']['replicas'] = 3
    failed, result = run_module(capsys, module_args(topology, check_host=False))
    assert not failed, result.get('msg')
    containers = result['containers']
    position = containers.index('user-service-1')
    assert containers[position:position + 3] == ['user-service-1', 'user-service-2', 'user-service-3']
    assert 'user-service' not in containers
    # backend_services comes before frontend_services, whatever the start order says.
    assert containers.index('api-gateway-1') < containers.index('web-server-1') < containers.index('web-server-2')


def test_failure_message_lists_every_problem(capsys, topology):
    services = topology[2]
    services['data_services']['mysql-db']['networks'][0]['network'] = 'db'
    services['monitoring_services']['grafana']['ports'][0]['host_port'] = 8080
    failed, result = run_module(capsys, module_args(topology, check_host=False, _ansible_check_mode=True))
    assert failed
    assert result['failed'] is True
    assert result['changed'] is False
    assert result['msg'] == (
        "The topology has 2 problem(s); nothing was changed:\n"
        "- data_services['mysql-db'].networks[0].network: 'db' is not declared in stack_networks; declare it in "
        "stack_networks or use one of: backend, database, frontend, monitoring\n"
        "- monitoring_services['grafana'].ports[0].host_port: host port 8080/tcp on 127.0.0.1 is already published by "
        "frontend_services['load-balancer'].ports[0].host_port (on 0.0.0.0); give each published port its own "
        "host_port, or bind them to different addresses"
    )
    assert [e['variable'] for e in result['errors']] == [
        "data_services['mysql-db'].networks[0].network", "monitoring_services['grafana'].ports[0].host_port"]
    # Data that validation refuses is not resolved into the model.
    assert 'model' not in result['checked']
    assert 'Traceback' not in result['msg'] and 'exception' not in result


def test_a_model_error_is_an_error_naming_the_variable(capsys, topology):
    # Validation has nothing against the name; only the model knows the tiers' images.
    topology[2]['frontend_services']['web-server']['image_component'] = 'nginks'
    failed, result = run_module(capsys, module_args(topology, check_host=False))
    assert failed
    assert result['errors'] == [{
        'variable': "frontend_services['web-server'].image_component",
        'message': "'nginks' is not an image of any tier (<tier>_images); use one of: " + ', '.join(sorted(DEFAULT_IMAGES)),
    }]
    assert result['checked'][-1] == 'model'
    assert result['msg'].startswith('The topology has 1 problem(s); nothing was changed:\n'
                                    "- frontend_services['web-server'].image_component: 'nginks' is not an image")
    assert 'Traceback' not in result['msg'] and 'exception' not in result


def test_a_secret_the_model_refuses_is_an_error(capsys, topology):
    topology[2]['data_services']['mysql-db']['secrets'][0]['template'] = 'mysql/root.j2'
    failed, result = run_module(capsys, module_args(topology, check_host=False))
    assert failed
    assert result['errors'] == [{
        'variable': "data_services['mysql-db'].secrets",
        'message': "secret 'root_password' needs exactly one of 'var' (a variable holding the secret) or 'template' "
                   '(a template that renders it)',
    }]


def test_image_components_need_the_images(capsys, topology):
    args = module_args(topology, check_host=False)
    del args['images']
    failed, result = run_module(capsys, args)
    assert failed
    assert len(result['errors']) == 1
    assert result['errors'][0]['variable'].endswith('.image_component')
    assert 'is not an image of any tier (<tier>_images)' in result['errors'][0]['message']
    # A service named by its image reference needs no image entry.
    services = {'data_services': {'cache': {'container_name': 'cache', 'image': 'redis:7.4',
                                            'networks': [{'network': 'database'}]}}}
    failed, result = run_module(capsys, {'networks': topology[0], 'services': services, 'check_host': False})
    assert not failed, result.get('msg')
    assert result['containers'] == ['cache']


def test_variable_names_are_configurable(capsys, topology):
    networks, _volumes, services = topology
    networks['backend']['subnet'] = '172.21.0.1/16'
    services['data_services']['mysql-db']['volumes'][0]['volume'] = 'mysql'
    failed, result = run_module(capsys, module_args(topology, check_host=False, networks_var='lab_networks',
                                                    volumes_var='lab_volumes'))
    assert failed
    assert [e['variable'] for e in result['errors']] == ["lab_networks['backend'].subnet",
                                                         "data_services['mysql-db'].volumes[0].volume"]
    assert "is not declared in lab_volumes; declare it in lab_volumes" in result['errors'][1]['message']


def test_bad_option_type_fails_cleanly(capsys, topology):
    failed, result = run_module(capsys, {'networks': 'nope', 'services': {}})
    assert failed
    assert 'networks' in result['msg'] and 'Traceback' not in result['msg']


# --------------------------------------------------------------------------- host checks without an engine

def test_unreachable_engine_is_a_warning(capsys, busy_port, tmp_path):
    networks, volumes, services = host_safe_topology()
    services['frontend_services']['load-balancer']['ports'][0]['host_port'] = busy_port
    failed, result = run_module(capsys, module_args((networks, volumes, services),
                                                    docker_host=f'unix://{tmp_path}/no-docker.sock'))
    assert failed
    assert [e['variable'] for e in result['errors']] == ["frontend_services['load-balancer'].ports[0].host_port"]
    assert 'by another program' in result['errors'][0]['message']
    assert 'docker_network_subnets' not in result['checked']
    assert result['checked'][-1] == 'host_port_availability'
    assert len(warning_texts(result)) == 1
    assert warning_texts(result)[0].startswith(
        'Skipped comparing the declared subnets with the existing Docker networks and looking up which container '
        f'holds a busy host port: no Docker engine answered at unix://{tmp_path}/no-docker.sock (')


@pytest.fixture
def module_without_docker_sdk(monkeypatch):
    """The module as imported on a host without the Docker SDK for Python."""
    monkeypatch.setitem(sys.modules, 'docker', None)   # makes `import docker` raise ImportError
    module = importlib.reload(topology_precheck)
    try:
        yield module
    finally:
        monkeypatch.undo()
        importlib.reload(topology_precheck)


def test_missing_docker_sdk_is_a_warning(capsys, module_without_docker_sdk, busy_port):
    assert module_without_docker_sdk.HAS_DOCKER_SDK is False
    networks, volumes, services = host_safe_topology()
    services['monitoring_services']['grafana']['ports'][0]['host_port'] = busy_port
    with patch_module_args(module_args((networks, volumes, services))), pytest.raises(SystemExit):
        module_without_docker_sdk.main()
    result = json.loads(capsys.readouterr().out)
    assert result['failed'] is True
    grafana_var = "monitoring_services['grafana'].ports[0].host_port"
    assert result['errors'] == [{'variable': grafana_var, 'message': busy_message(busy_port, grafana_var)}]
    assert 'host_port_owners' not in result['checked'] and 'docker_network_subnets' not in result['checked']
    assert len(warning_texts(result)) == 1
    warning = warning_texts(result)[0]
    assert warning.startswith('Skipped comparing the declared subnets with the existing Docker networks')
    assert 'Failed to import the required Python library (Docker SDK for Python: docker)' in warning
    assert warning.endswith('Busy host ports are reported as held by another program.')


def test_docker_sdk_is_back_after_the_mock():
    assert topology_precheck.HAS_DOCKER_SDK is True


# --------------------------------------------------------------------------- the module's port probe

def test_port_probe_with_real_sockets(busy_port):
    warnings = []
    probe = topology_precheck.make_port_probe(warnings.append)
    assert probe('127.0.0.1', busy_port, 'tcp') is False
    assert probe('0.0.0.0', busy_port, 'tcp') is False
    assert probe('127.0.0.1', free_port(), 'tcp') is True
    with pytest.raises(OSError):
        probe('192.0.2.1', free_port(), 'tcp')   # TEST-NET-1: not an address of this host
    assert warnings == []


def test_port_probe_udp():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(('127.0.0.1', 0))
    try:
        probe = topology_precheck.make_port_probe([].append)
        assert probe('127.0.0.1', sock.getsockname()[1], 'udp') is False
    finally:
        sock.close()


# --------------------------------------------------------------------------- through ansible-playbook

PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: A sound topology
      dockerlab.ecommerce.topology_precheck:
        networks: "{{ good.networks }}"
        volumes: "{{ good.volumes }}"
        services: "{{ good.services }}"
        images: "{{ good.images }}"
        check_host: false
      register: good_result

    - name: A broken topology
      dockerlab.ecommerce.topology_precheck:
        networks: "{{ good.networks }}"
        volumes: "{{ good.volumes }}"
        services:
          data_services:
            mysql-db:
              container_name: mysql-db
              image: mysql:8.4
              networks:
                - network: db
        check_host: false
      register: bad_result
      ignore_errors: true

    - name: Save the results
      ansible.builtin.copy:
        content: "{{ {'good': good_result, 'bad': bad_result} | to_json }}"
        dest: "{{ results_file }}"
        mode: "0600"
"""


def test_through_ansible_playbook(tmp_path, collections_path, topology):
    executable = os.path.join(os.path.dirname(sys.executable), 'ansible-playbook')
    if not os.path.exists(executable):
        executable = shutil.which('ansible-playbook')
    if not executable:
        pytest.skip('ansible-playbook is not installed')
    networks, volumes, services = topology
    (tmp_path / 'vars.json').write_text(json.dumps({
        'good': {'networks': networks, 'volumes': volumes, 'services': services, 'images': DEFAULT_IMAGES},
        'results_file': str(tmp_path / 'results.json'),
        'ansible_python_interpreter': sys.executable,
    }))
    (tmp_path / 'playbook.yml').write_text(PLAYBOOK)
    env = dict(os.environ)
    env.update({
        'ANSIBLE_COLLECTIONS_PATH': collections_path,
        'ANSIBLE_LOCAL_TEMP': str(tmp_path / 'local-tmp'),
        'ANSIBLE_REMOTE_TEMP': str(tmp_path / 'remote-tmp'),
        'ANSIBLE_HOME': str(tmp_path / 'ansible-home'),
        'ANSIBLE_NOCOLOR': '1',
        'ANSIBLE_RETRY_FILES_ENABLED': '0',
    })
    env.pop('ANSIBLE_CONFIG', None)
    process = subprocess.run(
        [executable, '-i', 'localhost,', '-c', 'local', '-e', '@' + str(tmp_path / 'vars.json'),
         str(tmp_path / 'playbook.yml')],
        cwd=str(tmp_path), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=300, check=False)
    assert process.returncode == 0, process.stdout
    results = json.loads((tmp_path / 'results.json').read_text())
    good, bad = results['good'], results['bad']
    assert good['changed'] is False and not good.get('failed')
    assert good['errors'] == []
    assert sorted(good['containers']) == sorted(DEFAULT_CONTAINERS)
    assert bad['failed'] is True
    assert bad['msg'] == (
        "The topology has 1 problem(s); nothing was changed:\n"
        "- data_services['mysql-db'].networks[0].network: 'db' is not declared in stack_networks; declare it in "
        "stack_networks or use one of: backend, database, frontend, monitoring")
    assert bad['errors'][0]['variable'] == "data_services['mysql-db'].networks[0].network"
