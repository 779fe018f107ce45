#!/usr/bin/python
# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# ruff: noqa: EXE001 - ansible-test wants the module shebang and no executable bit

from __future__ import annotations

DOCUMENTATION = r"""
---
module: topology_report
short_description: Report the running e-commerce stack's topology and compare it with the declared one
version_added: 0.1.0
description:
  - Gathers the stack's networks (subnets, internal, members), containers (addresses and aliases per network,
    published ports with their bind address, mounts, state and health) and volumes from the Docker API. Objects
    labelled C(dockerlab.stack=<stack_name>) are gathered, plus the declared names; every network and container
    is inspected.
  - "Compares them with the declared topology and reports violations: missing or unexpected networks and
    containers, containers not running, missing or extra network attachments, unexpected or missing published
    ports, a port bound to all interfaces that is declared local, missing volumes, flows naming unknown services,
    and a container below its declared hardening (C(below_hardening): capabilities beyond the declared, cap_drop
    ALL, no-new-privileges, read-only root, root user, privileged, or a memory, CPU or pids limit missing or above
    the declared)."
  - With O(probe_reachability=true) it builds a reachability matrix by connecting from inside each running
    container to the C(expose) ports (and the O(flows) ports) of the other containers, and compares it with
    O(flows).
  - "Writes the report as JSON (O(json_path)), Markdown access information (O(markdown_path)), Mermaid
    (O(mermaid_path)), Graphviz DOT (O(dot_path)) and SVG (O(svg_path)), on the target. The renderings are sorted
    and hold no ids or times, so an unchanged stack gives unchanged files."
author:
  - dockerlab.ecommerce contributors (@dockerlab)
requirements:
  - Docker SDK for Python (C(docker) >= 5.0.0).
  - Graphviz's C(dot) on the target for O(svg_path).
attributes:
  check_mode:
    support: full
    details:
      - In check mode no file is written; RV(ignore:changed) says whether one would change.
  diff_mode:
    support: none
extends_documentation_fragment:
  - dockerlab.ecommerce.attributes
  - dockerlab.ecommerce.docker_api
options:
  stack_name:
    description: The value of the C(dockerlab.stack) label of the stack's objects.
    type: str
    default: ecommerce
  topology:
    description:
      - >-
        The resolved topology, from the dockerlab.ecommerce.stack_model filter: a dict with C(profile),
        C(containers) (one record per container, replicas included), C(skipped), C(files) and C(checks).
      - Uses the C(name), C(component), C(variable), C(image), C(networks), C(ports) and C(expose) of each
        container record.
    type: dict
    default: {}
  security:
    description:
      - The stack's hardening (O(security=stack_security)). A container that carries the stack's label but that no
        service declares (one started by hand) is held to it, and to having a memory limit.
      - A declared container is held to its record's C(security) and C(resources).
    type: dict
    default: {}
  networks:
    description: The declared networks (O(networks=stack_networks)); key to C({name, subnet, internal}).
    type: dict
    default: {}
  volumes:
    description: The declared named volumes (O(volumes=stack_volumes)); key to Docker volume name.
    type: dict
    default: {}
  flows:
    description:
      - The flow policy (O(flows=stack_flows)), a list of C({from, to, port}) where C(from) and C(to) are service
        keys. Only these TCP connections should be possible between the stack's containers.
    type: list
    elements: dict
    default: []
  probe_reachability:
    description:
      - Test which connections are possible, from inside every running declared container to every port in the
        C(expose) list (and the O(flows) ports) of every other declared container, on each of its addresses.
      - One C(docker exec) per source container runs all its connects at once, with python3, bash C(/dev/tcp)
        (with C(timeout)) or busybox C(nc -z), whichever the container has.
      - A reachable connection the policy does not allow is an C(unexpected_flow) violation; an allowed one that
        is not reachable is an C(unreachable_allowed) violation.
    type: bool
    default: false
  connect_timeout:
    description: Seconds each connect of O(probe_reachability) may take.
    type: float
    default: 1
  json_path:
    description: Write the JSON report here (on the target).
    type: path
  markdown_path:
    description:
      - >-
        Write the Markdown access information here (on the target): URLs of the published ports, where the
        credentials are kept, networks with their members and addresses, containers, volumes, flows,
        reachability and violations.
    type: path
  mermaid_path:
    description: Write a Mermaid flowchart here (networks and containers as nodes, published ports from the host).
    type: path
  dot_path:
    description: Write a Graphviz DOT graph here (same content as the Mermaid one).
    type: path
  svg_path:
    description:
      - Render the DOT graph to SVG here with Graphviz's C(dot) on the target. When C(dot) is not installed the
        file is not written and a warning says so.
    type: path
  secrets_dir:
    description:
      - The directory where the stack's credentials are kept. The Markdown names it; no secret is read or printed.
    type: path
  fail_on_violation:
    description: Fail the task when there is a violation (after writing the files). Its message lists them.
    type: bool
    default: false
  workers:
    description: Docker API calls and reachability probes run at the same time.
    type: int
    default: 16
notes:
  - Run the module on the Docker host; the files are written there.
seealso:
  - module: dockerlab.ecommerce.stack_health
  - module: dockerlab.ecommerce.topology_precheck
"""

EXAMPLES = r"""
---
- name: Report the stack and write the access information
  dockerlab.ecommerce.topology_report:
    stack_name: "{{ stack_name }}"
    networks: "{{ stack_networks }}"
    volumes: "{{ stack_volumes }}"
    flows: "{{ stack_flows }}"
    topology: "{{ stack_services | dockerlab.ecommerce.stack_model(stack_networks, stack_volumes) }}"
    probe_reachability: true
    secrets_dir: /srv/ecommerce/secrets
    json_path: /srv/ecommerce/report/topology.json
    markdown_path: /srv/ecommerce/report/access-info.md
    mermaid_path: /srv/ecommerce/report/topology.mmd
    dot_path: /srv/ecommerce/report/topology.dot
    svg_path: /srv/ecommerce/report/topology.svg
  register: topo

- name: Show the violations
  ansible.builtin.debug:
    var: topo.violations

- name: Gate a pipeline on the flow policy
  dockerlab.ecommerce.topology_report:
    networks: "{{ stack_networks }}"
    flows: "{{ stack_flows }}"
    topology: "{{ stack_model }}"
    probe_reachability: true
    fail_on_violation: true
"""

RETURN = r"""
report:
  description:
    - The JSON report (C(schema_version) 1), the content of O(json_path).
    - "Keys: C(schema_version), C(stack_name), C(secrets_dir), C(networks) (name, key, declared, present, driver,
      internal, subnets, gateways, members with container, ipv4_address and aliases), C(containers) (name, service,
      declared, present, state, running, exit_code, health, restart_count, image, networks with name, key,
      ipv4_address and aliases, ports with container_port, protocol, host_ip and host_port, mounts with type,
      source, destination and read_only, hardening with user, runs_as_root, cap_add, cap_drop, no_new_privileges,
      read_only, privileged and limits (memory, memory_reservation, cpus, pids)), C(volumes) (name, key, declared, present, driver, mounted_by), C(flows),
      C(reachability) (null, or timeout, cells with from, from_service, to, to_service, port, expected, observed,
      via, violation, and skipped), C(violations) and C(summary) (networks, containers, running, violations)."
  returned: always
  type: dict
  sample:
    schema_version: 1
    stack_name: ecommerce
    summary: {networks: 4, containers: 16, running: 16, violations: 0}
violations:
  description:
    - The violations, sorted by subject.
    - "C(kind) is one of: missing_network, network_mismatch, unexpected_network, missing_container,
      container_not_running, unexpected_container, missing_attachment, extra_attachment, unexpected_port,
      missing_port, port_bound_to_all_interfaces, port_bind_mismatch, missing_volume, invalid_flow,
      unexpected_flow, unreachable_allowed, below_hardening."
  returned: always
  type: list
  elements: dict
  contains:
    kind:
      description: The kind of violation.
      type: str
      sample: port_bound_to_all_interfaces
    subject:
      description: The container, network, volume or flow (C(from -> to:port)) concerned.
      type: str
      sample: load-balancer
    message:
      description: What is wrong.
      type: str
      sample: >-
        container load-balancer publishes 8080/tcp on 0.0.0.0: bound to all interfaces, should be local
        (declared bind_address 127.0.0.1)
files:
  description: The files asked for, by format (json, markdown, mermaid, dot, svg), each with its path and whether it changed.
  returned: always
  type: dict
  sample:
    markdown: {path: /srv/ecommerce/report/access-info.md, changed: true}
"""


from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.common.text.converters import to_bytes, to_native
from ansible_collections.dockerlab.ecommerce.plugins.module_utils.files import atomic_write
from ansible_collections.dockerlab.ecommerce.plugins.module_utils.docker_client import (
    DOCKER_COMMON_ARGS,
    DOCKER_SDK_IMPORT_ERROR,
    HAS_DOCKER_SDK,
    get_client,
)
from ansible_collections.dockerlab.ecommerce.plugins.module_utils._report.build import add_reachability, build_report
from ansible_collections.dockerlab.ecommerce.plugins.module_utils._report.gather import declared_network_names, gather
from ansible_collections.dockerlab.ecommerce.plugins.module_utils._report.reachability import probe_reachability
from ansible_collections.dockerlab.ecommerce.plugins.module_utils._report.renderers import (
    render_dot,
    render_json,
    render_markdown,
    render_mermaid,
)

RENDERERS = (
    ('json', 'json_path', render_json),
    ('markdown', 'markdown_path', render_markdown),
    ('mermaid', 'mermaid_path', render_mermaid),
    ('dot', 'dot_path', render_dot),
)


def read_bytes(path):
    try:
        with open(path, 'rb') as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def put_file(module, path, content):
    """Write ``content`` unless the file already holds it (nothing in check mode); True when it changes."""
    try:
        current = read_bytes(path)
    except OSError as exc:
        module.fail_json(msg=f'Cannot read {path}: {to_native(exc.strerror or exc)}; check its permissions')
    if current == content:
        return False
    if module.check_mode:
        return True
    atomic_write(module, path, content, prefix='.topology_report-')
    return True


def run_module():
    argument_spec = {
        'stack_name': {'type': 'str', 'default': 'ecommerce'},
        'topology': {'type': 'dict', 'default': {}},
        'security': {'type': 'dict', 'default': {}},
        'networks': {'type': 'dict', 'default': {}},
        'volumes': {'type': 'dict', 'default': {}},
        'flows': {'type': 'list', 'elements': 'dict', 'default': []},
        'probe_reachability': {'type': 'bool', 'default': False},
        'connect_timeout': {'type': 'float', 'default': 1},
        'json_path': {'type': 'path'},
        'markdown_path': {'type': 'path'},
        'mermaid_path': {'type': 'path'},
        'dot_path': {'type': 'path'},
        'svg_path': {'type': 'path'},
        'secrets_dir': {'type': 'path'},
        'fail_on_violation': {'type': 'bool', 'default': False},
        'workers': {'type': 'int', 'default': 16},
        **DOCKER_COMMON_ARGS,
    }
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    topology = params['topology']
    if topology and not isinstance(topology.get('containers'), list):
        module.fail_json(msg='topology is not a resolved topology (it has no containers list); pass the result of '
                             'the dockerlab.ecommerce.stack_model filter')
    records = topology.get('containers') or []
    if not HAS_DOCKER_SDK:
        module.fail_json(msg=missing_required_lib('Docker SDK for Python: docker', reason='reading the stack'),
                         exception=DOCKER_SDK_IMPORT_ERROR)
    client, error = get_client(params['docker_host'], params['api_timeout'], max(32, params['workers'] * 2))
    if client is None:
        module.fail_json(msg=error)

    try:
        raw = gather(client.api, params['stack_name'],
                     container_names=[record['name'] for record in records],
                     network_names=list(declared_network_names(params['networks'])),
                     volume_names=[str(v) for v in params['volumes'].values()],
                     workers=params['workers'])
        report = build_report(raw, params['stack_name'], records, params['networks'], params['volumes'],
                              params['flows'], params['secrets_dir'], params['security'])
        if params['probe_reachability']:
            matrix = probe_reachability(client, report['containers'], records, params['flows'],
                                        timeout=params['connect_timeout'], workers=params['workers'])
            add_reachability(report, matrix)
    # the Docker API failing mid-way (engine stopped, permission denied) is reported, never a traceback
    except Exception as exc:  # noqa: BLE001 pylint: disable=broad-except
        module.fail_json(msg=f"Reading the stack from the Docker engine at {params['docker_host']} failed: "
                             f"{to_native(exc).strip() or type(exc).__name__}")
    finally:
        client.close()

    files = {}
    changed = False
    for fmt, option, renderer in RENDERERS:
        path = params[option]
        if path:
            file_changed = put_file(module, path, to_bytes(renderer(report)))
            files[fmt] = {'path': path, 'changed': file_changed}
            changed = changed or file_changed
    if params['svg_path']:
        dot_bin = module.get_bin_path('dot')
        if dot_bin is None:
            module.warn(f"svg_path is set but Graphviz's dot is not installed on the target, so "
                        f"{params['svg_path']} was not written; install graphviz (apt-get install graphviz) "
                        'or render the DOT file elsewhere')
        else:
            rc, svg, err = module.run_command([dot_bin, '-Tsvg'], data=render_dot(report), binary_data=True,
                                              encoding=None)
            if rc != 0:
                module.fail_json(msg=f"Graphviz's dot could not render the SVG (exit code {rc}): "
                                     f"{to_native(err).strip()}")
            file_changed = put_file(module, params['svg_path'], svg)
            files['svg'] = {'path': params['svg_path'], 'changed': file_changed}
            changed = changed or file_changed

    result = {'changed': changed, 'report': report, 'violations': report['violations'], 'files': files}
    if report['violations'] and params['fail_on_violation']:
        lines = [f"{v['kind']}: {v['message']}" for v in report['violations']]
        module.fail_json(msg=f"The stack has {len(lines)} violation(s):\n" + '\n'.join(lines), **result)
    module.exit_json(**result)


def main():
    run_module()


if __name__ == '__main__':
    main()
