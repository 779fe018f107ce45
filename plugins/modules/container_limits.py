#!/usr/bin/python
# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# ruff: noqa: EXE001 - ansible-test wants the module shebang and no executable bit

from __future__ import annotations

DOCUMENTATION = r"""
---
module: container_limits
short_description: Change the resource limits of existing containers in place, without recreating them
version_added: 0.5.0
description:
  - For each container of O(containers) that exists, compares its memory, swap, memory reservation, CPU and pids
    limits with the wanted ones and changes those that differ with the Docker API's container update (what
    C(docker update) does). The container keeps running; nothing is recreated or restarted.
  - M(community.docker.docker_container) recreates a container for a changed O(containers[].cpus) or
    O(containers[].pids_limit); run this module first and docker_container then finds them as wanted.
  - A container that does not exist yet is left to docker_container. A limit that is not given (null) is not
    touched; removing a limit needs the container recreated.
author:
  - dockerlab.ecommerce contributors (@dockerlab)
requirements:
  - Docker SDK for Python (C(docker) >= 5.0.0)
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
extends_documentation_fragment:
  - dockerlab.ecommerce.attributes
  - dockerlab.ecommerce.docker_api
options:
  containers:
    description:
      - The containers and their wanted limits, with the option names of M(community.docker.docker_container) (the
        P(dockerlab.ecommerce.stack_target#filter) filter's C(create) entries can be passed as they are; other keys
        are ignored).
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: The container's name.
        type: str
        required: true
      memory:
        description: Memory limit, in Docker's notation (C(128m), C(1g)).
        type: str
      memory_swap:
        description: Memory plus swap limit (equal to O(containers[].memory) for no swap).
        type: str
      memory_reservation:
        description: Soft memory limit.
        type: str
      cpus:
        description: CPUs, for example C(0.5).
        type: float
      pids_limit:
        description: Most processes and threads at once.
        type: int
"""

EXAMPLES = r"""
- name: Apply changed limits in place
  dockerlab.ecommerce.container_limits:
    containers:
      - name: mysql-db
        memory: 768m
        memory_swap: 768m
        cpus: 1.5
        pids_limit: 300
"""

RETURN = r"""
updated:
  description: The containers whose limits were changed (or would be, in check mode).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The container's name.
      type: str
    changes:
      description: Docker's field name (C(Memory), C(MemorySwap), C(MemoryReservation), C(NanoCpus), C(PidsLimit))
        to C([before, after]).
      type: dict
  sample:
    - name: mysql-db
      changes:
        PidsLimit: [264, 300]
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.dockerlab.ecommerce.plugins.module_utils._limits.update import (
    limit_changes,
    update_body,
    wanted_limits,
)
from ansible_collections.dockerlab.ecommerce.plugins.module_utils.docker_client import (
    DOCKER_COMMON_ARGS,
    DOCKER_SDK_IMPORT_ERROR,
    HAS_DOCKER_SDK,
    get_client,
    is_not_found,
)


def _update(api, name, body):
    """POST /containers/{name}/update; the engine's message on a refusal."""
    url = f'{api.base_url}/v{api.api_version}/containers/{name}/update'
    response = api.post(url, json=body)
    if response.status_code >= 400:
        try:
            message = response.json().get('message')
        except ValueError:
            message = response.text
        return message or f'HTTP {response.status_code}'
    return None


def run_module():
    argument_spec = {
        'containers': {'type': 'list', 'elements': 'dict', 'required': True, 'options': {
            'name': {'type': 'str', 'required': True},
            'memory': {'type': 'str'},
            'memory_swap': {'type': 'str'},
            'memory_reservation': {'type': 'str'},
            'cpus': {'type': 'float'},
            'pids_limit': {'type': 'int'},
        }},
        **DOCKER_COMMON_ARGS,
    }
    # the stack_target entries carry docker_container's other options too
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    if not HAS_DOCKER_SDK:
        module.fail_json(msg=missing_required_lib('docker'), exception=DOCKER_SDK_IMPORT_ERROR)
    client, problem = get_client(module.params['docker_host'], module.params['api_timeout'])
    if client is None:
        module.fail_json(msg=problem)
    api = client.api
    updated, before, after = [], {}, {}
    for args in module.params['containers']:
        name = args['name']
        try:
            wanted = wanted_limits(args)
        except ValueError as exc:
            module.fail_json(msg=f'{exc}; nothing was changed for it', updated=updated)
        try:
            info = api.inspect_container(name)
        except Exception as exc:  # noqa: BLE001 pylint: disable=broad-except
            if is_not_found(exc):
                continue
            module.fail_json(msg=f'Could not inspect container {name}: {exc}', updated=updated)
        changes = limit_changes(info.get('HostConfig') or {}, wanted)
        if not changes:
            continue
        if not module.check_mode:
            problem = _update(api, name, update_body(changes))
            if problem:
                module.fail_json(msg=f'Docker refused the new limits of {name} ({problem}); its limits are as they '
                                     'were. Fix the limit in stack_resources, or remove the container to recreate it.',
                                 updated=updated)
        updated.append({'name': name, 'changes': {field: list(pair) for field, pair in changes.items()}})
        before[name] = {field: pair[0] for field, pair in changes.items()}
        after[name] = {field: pair[1] for field, pair in changes.items()}
    result = {'changed': bool(updated), 'updated': updated}
    if module._diff:
        result['diff'] = {'before': before, 'after': after}
    module.exit_json(**result)


def main():
    run_module()


if __name__ == '__main__':
    main()
