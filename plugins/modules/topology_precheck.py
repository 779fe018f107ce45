#!/usr/bin/python
# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# ruff: noqa: EXE001 - ansible-test wants the module shebang and no executable bit

from __future__ import annotations

DOCUMENTATION = r"""
---
module: topology_precheck
short_description: Validate the e-commerce stack's topology before anything is created
version_added: 0.1.0
description:
  - Checks the stack's topology data (networks, volumes and the services of every tier) and reports every problem
    at once, each naming the exact variable, the offending value and how to fix it.
  - "Static checks: malformed subnets (or subnets with host bits set), overlapping subnets, networks and volumes
    referenced by a service but not declared, C(ipv4_address) values that are malformed, outside their network's
    subnet, the network, broadcast or gateway address, or used twice, duplicate container names (after C(replicas)
    expansion, across all tiers), duplicate or out-of-range host ports, and missing C(container_name) or C(image)."
  - >-
    With O(check_host=true) it also compares the topology with the target host (which should be the Docker host):
    existing Docker networks whose subnets overlap a declared subnet, and declared published host ports that are
    already in use (and by which container, when Docker can tell).
  - Never changes anything; RV(ignore:changed) is always V(false).
  - Services with C(enabled=false) are ignored by every check.
author:
  - dockerlab.ecommerce contributors (@dockerlab)
requirements:
  - Docker SDK for Python (C(docker) >= 5.0.0) for the Docker part of O(check_host). Without it, or when no Docker
    engine answers, that part is skipped with a warning.
options:
  networks:
    description:
      - The declared networks, usually O(networks=stack_networks).
      - Maps a network key (what services refer to) to a definition with C(name) (the Docker network name),
        C(subnet) (CIDR), optionally C(gateway) and C(internal).
    type: dict
    required: true
  volumes:
    description:
      - The declared named volumes, usually O(volumes=stack_volumes).
      - Maps a volume key (what services refer to) to the Docker volume name.
    type: dict
    default: {}
  services:
    description:
      - >-
        The services of every tier, keyed by the variable that holds them, for example
        C({data_services: "{{ data_services }}", backend_services: "{{ backend_services }}"}).
      - >-
        Each services dict maps a component id to a definition with C(container_name) and C(image_component)
        (or C(image)) (required),
        and optionally C(enabled), C(replicas), C(networks) (list of C({network, aliases, ipv4_address})),
        C(ports) (list of C({host_port, container_port, bind_address, protocol})), C(volumes) (list of
        C({volume, target}) or C({source, target, read_only})). The image profiles a component runs in are set on its
        image entry (O(images)), not on the service: a service that sets C(profiles) or C(skip_reason) is refused.
      - >-
        The variable names are used in error messages, for example C(data_services['mysql-db'].networks[0].network).
    type: dict
    required: true
  images:
    description:
      - Every tier's image entries merged (C(stack_images)), so that a service's C(image_component) can be
        checked; the services are then resolved into the model (every image profile) for the host checks.
    type: dict
    default: {}
  resources:
    description:
      - Resource limits by service key (C(stack_resources)), laid over each service's C(resources).
      - Each of C(memory), C(memory_reservation), C(cpus) and C(pids) must be a valid value, and none may be below
        the service's C(resources_minimum) (what it needs to start, with C(why)); a reservation above the memory
        limit is refused too. The message names C(stack_resources[<key>].<name>), the minimum and the reason.
    type: dict
    default: {}
  security:
    description:
      - The stack's hardening (C(stack_security)), laid under each service's C(security).
      - A service declared C(non_root) needs a C(user) other than root; a C(tmpfs) path must be absolute.
    type: dict
    default: {}
  networks_var:
    description: Name of the networks variable, used in error messages.
    type: str
    default: stack_networks
  volumes_var:
    description: Name of the volumes variable, used in error messages.
    type: str
    default: stack_volumes
  check_host:
    description:
      - Also compare the topology with the target host.
      - Lists the existing Docker networks and reports any whose subnet overlaps a declared subnet (a Docker network
        with the same name as a declared one is that network and is not a conflict).
      - Tries to bind every declared published host port on its bind address (a socket with C(SO_REUSEADDR),
        closed at once). When that fails, looks up which running container publishes the port. A port held by the
        container that declares it is fine (the stack is already up).
      - When the Docker SDK for Python is missing or no Docker engine answers at O(docker_host), the Docker part is
        skipped, a busy port is reported as held by another program, and RV(ignore:warnings) says what was skipped.
    type: bool
    default: true
notes:
  - Host ports are probed on the target host. Run the module on the Docker host (for example with
    C(delegate_to) the host that runs the stack) for that check to mean anything.
  - Ports below 1024 can only be probed as root; when the probe is not allowed the port is not checked and a warning
    says so.
extends_documentation_fragment:
  - dockerlab.ecommerce.attributes
  - dockerlab.ecommerce.attributes.read_only
  - dockerlab.ecommerce.docker_api
seealso:
  - module: community.docker.docker_network
  - module: community.docker.docker_container
"""

EXAMPLES = r"""
---
- name: Check the topology before creating networks, volumes and containers
  dockerlab.ecommerce.topology_precheck:
    networks: "{{ stack_networks }}"
    volumes: "{{ stack_volumes }}"
    services:
      frontend_services: "{{ frontend_services }}"
      backend_services: "{{ backend_services }}"
      data_services: "{{ data_services }}"
      monitoring_services: "{{ monitoring_services }}"
      logging_services: "{{ logging_services }}"

- name: Only the static checks (no Docker host needed, e.g. in CI)
  dockerlab.ecommerce.topology_precheck:
    networks: "{{ stack_networks }}"
    volumes: "{{ stack_volumes }}"
    services:
      data_services: "{{ data_services }}"
    check_host: false
  register: precheck

- name: Show the containers the topology expands to
  ansible.builtin.debug:
    var: precheck.containers
"""

RETURN = r"""
errors:
  description:
    - The problems found, in a stable order. Empty on success.
    - >-
      On failure the module also fails with a RV(ignore:msg) whose first line gives the number of problems and says
      that nothing was changed, followed by one line C(- <variable>: <message>) per problem.
  returned: always
  type: list
  elements: dict
  contains:
    variable:
      description: Exact path of the offending variable.
      type: str
      sample: data_services['mysql-db'].networks[0].network
    message:
      description: What is wrong, with the offending value, and how to fix it.
      type: str
      sample: >-
        'db' is not declared in stack_networks; declare it in stack_networks or use one of:
        backend, database, frontend, monitoring
  sample:
    - variable: data_services['mysql-db'].networks[0].network
      message: >-
        'db' is not declared in stack_networks; declare it in stack_networks or use one of:
        backend, database, frontend, monitoring
containers:
  description: Names of the containers the enabled services expand to (after C(replicas)), sorted by variable and component id.
  returned: always
  type: list
  elements: str
  sample: [web-server-1, web-server-2, mysql-db]
checked:
  description: Names of the checks that were run.
  returned: always
  type: list
  elements: str
  sample:
    - network_definitions
    - subnets
    - subnet_overlaps
    - volume_definitions
    - required_fields
    - container_names
    - network_references
    - ipv4_addresses
    - host_ports
    - volume_references
    - resources
    - hardening
    - model
    - docker_network_subnets
    - host_port_availability
    - host_port_owners
"""

import errno
import socket
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.dockerlab.ecommerce.plugins.module_utils.docker_client import DOCKER_COMMON_ARGS
from ansible_collections.dockerlab.ecommerce.plugins.module_utils._topology.host import (
    check_subnet_conflicts,
    docker_networks_summary,
    host_port_conflicts,
    port_owners_from_containers,
)
from ansible_collections.dockerlab.ecommerce.plugins.module_utils._topology.model import (
    TopologyError,
    published_ports,
    resolve,
)
from ansible_collections.dockerlab.ecommerce.plugins.module_utils._topology.validation import (
    TOPOLOGY_CHECKS,
    format_error_report,
    validate_topology,
)

try:
    import docker
    HAS_DOCKER_SDK = True
    DOCKER_SDK_IMPORT_ERROR = None
except ImportError:
    docker = None
    HAS_DOCKER_SDK = False
    DOCKER_SDK_IMPORT_ERROR = traceback.format_exc()

SKIPPED_DOCKER_PART = ('Skipped comparing the declared subnets with the existing Docker networks and looking up '
                       'which container holds a busy host port')
BUSY_MEANS_PROGRAM = 'Busy host ports are reported as held by another program.'


def make_port_probe(warn):
    """A probe(bind_address, port, protocol) that binds a socket with SO_REUSEADDR and closes it at once.

    Returns True when the port can be bound, False when it is in use; raises OSError when the
    address is not one of this host's.  When the test itself is impossible (no permission for
    a privileged port, no IPv6 or SCTP support) it calls ``warn`` and returns True.
    """

    def probe(bind_address, port, protocol):
        family = socket.AF_INET6 if ':' in bind_address else socket.AF_INET
        if protocol == 'udp':
            kind, proto = socket.SOCK_DGRAM, 0
        elif protocol == 'sctp':
            kind, proto = socket.SOCK_STREAM, getattr(socket, 'IPPROTO_SCTP', 132)
        else:
            kind, proto = socket.SOCK_STREAM, 0
        what = f'host port {port}/{protocol} on {bind_address}'
        try:
            sock = socket.socket(family, kind, proto)
        except OSError as exc:
            warn(f'Could not test {what}: {exc.strerror or exc}; it was not checked.')
            return True
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((bind_address, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            if exc.errno == errno.EADDRNOTAVAIL:
                raise
            if exc.errno == errno.EACCES:
                warn(f'Could not test {what}: permission denied (ports below 1024 need root or '
                     'CAP_NET_BIND_SERVICE); it was not checked.')
            else:
                warn(f'Could not test {what}: {exc.strerror or exc}; it was not checked.')
            return True
        finally:
            sock.close()
        return True

    return probe


def read_docker_state(module):
    """``(networks summary, port owners)`` from the Docker engine, or None (with a warning) when unavailable."""
    if not HAS_DOCKER_SDK:
        reason = missing_required_lib('Docker SDK for Python: docker',
                                      reason='comparing the topology with the Docker host')
        module.warn(f'{SKIPPED_DOCKER_PART}: {reason} {BUSY_MEANS_PROGRAM}')
        return None
    docker_host = module.params['docker_host']
    try:
        client = docker.APIClient(base_url=docker_host, version='auto', timeout=module.params['api_timeout'])
        try:
            api_networks = client.networks()
            api_containers = client.containers()
        finally:
            client.close()
    # The Docker part is optional: whatever stops it (DockerException, a connection error from
    # requests, OSError, a bad URL, ...) means "skip it with a warning", never a traceback.
    except Exception as exc:  # noqa: BLE001 pylint: disable=broad-except
        detail = str(exc).strip() or type(exc).__name__
        module.warn(f'{SKIPPED_DOCKER_PART}: no Docker engine answered at {docker_host} ({detail}). '
                    f'{BUSY_MEANS_PROGRAM}')
        return None
    return docker_networks_summary(api_networks), port_owners_from_containers(api_containers)


def run_module():
    argument_spec = {
        'networks': {'type': 'dict', 'required': True},
        'volumes': {'type': 'dict', 'default': {}},
        'services': {'type': 'dict', 'required': True},
        'images': {'type': 'dict', 'default': {}},
        'networks_var': {'type': 'str', 'default': 'stack_networks'},
        'volumes_var': {'type': 'str', 'default': 'stack_volumes'},
        'check_host': {'type': 'bool', 'default': True},
        'resources': {'type': 'dict', 'default': {}},
        'security': {'type': 'dict', 'default': {}},
        **DOCKER_COMMON_ARGS,
    }
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params

    networks = params['networks']
    volumes = params['volumes'] or {}
    services = params['services']

    errors = validate_topology(networks, volumes, services,
                               networks_var=params['networks_var'], volumes_var=params['volumes_var'],
                               resources=params['resources'], security=params['security'])
    checked = list(TOPOLOGY_CHECKS)
    # Sound data resolves into the model (every profile: the profile is not settled yet).
    model = {'containers': []}
    if not errors:
        try:
            model = resolve(services, networks, volumes, images=params['images'],
                            security_defaults=params['security'], resources_overrides=params['resources'])
        except TopologyError as exc:
            variable, _sep, message = str(exc).partition(': ')
            errors.append({'variable': variable, 'message': message})
        checked.append('model')
    containers = [record['name'] for record in sorted(model['containers'], key=lambda r: (r['variable'], r['replica'] or 0))]

    if params['check_host']:
        state = read_docker_state(module)
        owners = {}
        if state is not None:
            existing_networks, owners = state
            errors.extend(check_subnet_conflicts(networks, existing_networks, networks_var=params['networks_var']))
            checked.append('docker_network_subnets')
        errors.extend(host_port_conflicts(published_ports(model), make_port_probe(module.warn), owners))
        checked.append('host_port_availability')
        if state is not None:
            checked.append('host_port_owners')

    result = {'changed': False, 'errors': errors, 'containers': containers, 'checked': checked}
    if errors:
        module.fail_json(msg=format_error_report(errors), **result)
    module.exit_json(**result)


def main():
    run_module()


if __name__ == '__main__':
    main()
