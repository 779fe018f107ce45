#!/usr/bin/python
# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# ruff: noqa: EXE001 - ansible-test wants the module shebang and no executable bit

from __future__ import annotations

DOCUMENTATION = r"""
---
module: stack_health
short_description: Validate a running e-commerce stack with container, HTTP, TCP, DNS, exec and protocol checks
version_added: 0.1.0
description:
  - Runs health checks against the running stack and reports each one with what was expected and what was seen.
  - >-
    Checks come from the resolved topology (O(topology), O(stack_name)): for every container record a C(container)
    check, plus the service's C(probe) when it declares one; a C(dns) check for every service some container
    connects to; and the C(validate) checks the services declare. More checks can be given in O(checks).
  - Checks run concurrently in a thread pool. Each check has C(timeout), C(retries) and C(delay); with O(deadline)
    failing checks are retried until they pass or the deadline has passed, so the module can wait for a stack that
    is still starting.
  - Never changes anything; RV(ignore:changed) is always V(false).
author:
  - dockerlab.ecommerce contributors (@dockerlab)
requirements:
  - Docker SDK for Python (C(docker) >= 5.0.0), for C(container), C(dns) and C(exec) checks and every check with
    C(from_container). Checks run from the target host alone (C(http), C(tcp) and the protocol probes without
    C(from_container)) work without it.
attributes:
  check_mode:
    support: full
    details:
      - The checks only read. In check mode O(junit_path) is not written.
  diff_mode:
    support: none
extends_documentation_fragment:
  - dockerlab.ecommerce.attributes
  - dockerlab.ecommerce.docker_api
options:
  topology:
    description:
      - >-
        The resolved topology, from the dockerlab.ecommerce.stack_model filter: a dict with C(profile),
        C(containers) (one record per container, replicas included), C(skipped), C(files) and C(checks).
      - "For each container record: a C(container) check (running, healthy when it has a healthcheck, attached
        to its networks, labelled C(dockerlab.stack=<stack_name>), restarts against O(baseline) and
        O(max_restarts))."
      - >-
        When the record has a C(probe) (C({kind: mysql|redis|mongodb|http|tcp}), optionally C(port), C(path) for
        http, C(password_file) for redis, and any other option of that check kind), that probe runs inside the
        container itself against 127.0.0.1 and C(probe.port) (which the model fills from the first C(expose)
        port), else the protocol's default port (3306, 6379, 27017, 80).
      - >-
        For each service some container connects to (C(connects_to)): a C(dns) check, labelled
        C(<client> finds <service> by name), that the service's name resolves, inside the first container of the
        first client service, to the service's addresses (to some of its replicas' when it has several).
      - The C(validate) checks the services declare (C(checks)), in the syntax of O(checks).
    type: dict
    default: {}
  stack_name:
    description:
      - The stack's name; derived C(container) checks expect the label C(dockerlab.stack=<stack_name>).
      - Set it to an empty string to skip the label check.
    type: str
    default: ecommerce
  checks:
    description:
      - More checks. Each is a dict with C(kind) and the options of that kind, plus the common C(label) (the name of
        the check in the results; C(name) works too except for C(dns)), C(timeout), C(retries) and C(delay).
      - "C(kind=container): C(container); C(state) (default V(running)); C(health) (V(healthy), the default, needs
        a healthy Docker health status when the container has a healthcheck; V(any)); C(exit_code) (for a one-shot
        container expected to be C(exited)); C(max_restarts); C(baseline_restarts); C(networks) (names it must be
        attached to); C(labels)."
      - "C(kind=http): C(url); C(method) (default V(GET)); C(status) (V(200), V('200-299'), a list of two integers
        C([200, 299]) is a range, any other list is a set of codes and ranges; default 200-299); C(body_regex);
        C(json) (dotted path, for example C(data.items.0.id), to expected value); C(headers) (response header name
        to regex); C(request_headers); C(body); C(validate_certs) (default V(true)); C(from_container) (run the
        request inside that container: http URLs through python3, bash C(/dev/tcp) or busybox nc, https URLs
        through curl)."
      - "C(kind=tcp): C(host), C(port); C(from_container) to connect from inside a container."
      - "C(kind=dns): C(container) (where to resolve), C(name) (the name to resolve), C(expected) (list of
        addresses: the name resolves to exactly these) or C(expected_container) (a container: the name resolves
        to exactly its addresses on the networks it shares with C(container); a list of containers, such as the
        replicas behind one alias: the name resolves to at least one of their addresses and to no other);
        resolves with C(getent ahostsv4) (C(ahosts) for IPv6) inside the container, else python3's getaddrinfo."
      - "C(kind=exec): C(container), C(command) (a string run by C(sh -c), or a list), C(rc) (default V(0)),
        C(output_regex) (searched in stdout and stderr)."
      - "C(kind=mysql): C(host), C(port) (default V(3306)); reads the server greeting and reports the server version
        (no credentials needed; an error packet such as host-not-allowed also proves the server is alive)."
      - "C(kind=redis): C(host), C(port) (default V(6379)); sends PING, PONG or a NOAUTH error both pass and the
        result says which; C(password_file) (a file on the target) to AUTH first."
      - "C(kind=mongodb): C(host), C(port) (default V(27017)); sends an OP_MSG C({ping: 1}) and expects C(ok: 1)."
      - "C(kind=tcp), C(mysql), C(redis) and C(mongodb) take C(from_container) to run the exchange inside that
        container (C(host) then defaults to V(127.0.0.1)); python3, bash or busybox, whichever it has, is used."
    type: list
    elements: dict
    default: []
  baseline:
    description:
      - Restart counts taken earlier (container name to C(RestartCount)); a derived C(container) check fails when
        the container restarted since.
    type: dict
    default: {}
  max_restarts:
    description: The most restarts a container may have had (derived C(container) checks). Not checked when unset.
    type: int
  deadline:
    description:
      - Seconds to wait for the stack to become healthy. Failing checks are retried (after their C(delay)) until
        they pass or the deadline has passed. V(0) retries only as often as each check's C(retries).
    type: float
    default: 0
  timeout:
    description: Default C(timeout) (seconds) of each attempt of a check.
    type: float
    default: 5
  retries:
    description: Default C(retries) of a check (attempts after the first).
    type: int
    default: 0
  delay:
    description: Default C(delay) (seconds) between two attempts of a check.
    type: float
    default: 1
  workers:
    description: Checks run at the same time.
    type: int
    default: 16
  junit_path:
    description:
      - Write a JUnit XML file at this path on the target (one testcase per check; failed checks carry their message).
    type: path
  fail_on_error:
    description:
      - >-
        Fail the task when a check fails. Its RV(ignore:msg) has one line per failed check,
        C(<name>: expected <...>, saw <...>).
      - With V(false) the results are returned and the task succeeds.
    type: bool
    default: true
notes:
  - Checks without C(from_container) connect from the target host; run the module on the Docker host (or a host
    that reaches the published ports).
seealso:
  - module: dockerlab.ecommerce.topology_report
  - module: dockerlab.ecommerce.topology_precheck
"""

EXAMPLES = r"""
---
- name: Wait up to two minutes for the whole stack to be healthy
  dockerlab.ecommerce.stack_health:
    stack_name: "{{ stack_name }}"
    topology: "{{ stack_services | dockerlab.ecommerce.stack_model(stack_networks, stack_volumes) }}"
    deadline: 120
    delay: 2
    junit_path: /var/tmp/ecommerce-health.xml

- name: Extra checks
  dockerlab.ecommerce.stack_health:
    checks:
      - kind: http
        url: http://127.0.0.1:8080/health
        status: [200, 299]
        json:
          status: UP
        headers:
          content-type: ^application/json
      - kind: http
        label: api-gateway from the load balancer
        url: http://api-gateway:3000/health
        from_container: load-balancer
      - kind: redis
        host: 127.0.0.1
        port: 6379
        password_file: /srv/ecommerce/secrets/redis_password
      - kind: mysql
        from_container: user-service
        host: mysql
      - kind: dns
        container: user-service
        name: mysql
        expected_container: mysql-db
      - kind: dns
        label: the gateway finds the replicas of user-service
        container: api-gateway-1
        name: user-service
        expected_container: [user-service-1, user-service-2]
      - kind: exec
        container: mysql-db
        command: mysqladmin ping -h 127.0.0.1 --silent
        output_regex: alive
  register: health

- name: Record restart counts now
  dockerlab.ecommerce.stack_health:
    topology: "{{ stack_model }}"
  register: before

- name: Later, check that no container restarted since
  dockerlab.ecommerce.stack_health:
    topology: "{{ stack_model }}"
    baseline: >-
      {{ dict(before.checks | selectattr('kind', 'eq', 'container') | map(attribute='target')
         | zip(before.checks | selectattr('kind', 'eq', 'container') | map(attribute='observed.restart_count'))) }}
    fail_on_error: false
"""

RETURN = r"""
checks:
  description: >-
    One result per check, in this order: per container record its C(container) check and its probe, the
    C(dns) checks, the services' C(validate) checks, then O(checks).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The check's name.
      type: str
      sample: container mysql-db
    kind:
      description: The check's kind.
      type: str
      sample: container
    target:
      description: What was checked (container, URL or host:port, with C(from <container>) when run inside one).
      type: str
      sample: 127.0.0.1:3306 from mysql-db
    passed:
      description: Whether the last attempt passed.
      type: bool
      sample: true
    attempts:
      description: Attempts made.
      type: int
      sample: 1
    duration_ms:
      description: Milliseconds from the first attempt to the end of the last.
      type: int
      sample: 12
    message:
      description: What was seen when the check passed; C(expected <...>, saw <...>) when it failed.
      type: str
      sample: running, healthy, 0 restarts
    observed:
      description: >-
        What the check saw, by kind: for C(container) status, running, restarting, exit_code, health,
        health_output (the last probe's output), restart_count, networks; for C(http) status, headers, body
        (start); for C(mysql) server_version, protocol, connection_id; for C(redis) replies and auth; for
        C(dns) addresses and expected; for C(exec) rc and output.
      type: dict
      sample: {status: running, health: healthy, restart_count: 0}
summary:
  description: Counts of the checks.
  returned: always
  type: dict
  contains:
    total:
      description: Checks run.
      type: int
    passed:
      description: Checks that passed.
      type: int
    failed:
      description: Checks that failed.
      type: int
  sample: {total: 18, passed: 18, failed: 0}
junit_path:
  description: The JUnit XML file written (not in check mode).
  returned: when O(junit_path) is set and the file was written
  type: str
  sample: /var/tmp/ecommerce-health.xml
"""


from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.dockerlab.ecommerce.plugins.module_utils.files import atomic_write
from ansible_collections.dockerlab.ecommerce.plugins.module_utils.docker_client import (
    DOCKER_COMMON_ARGS,
    DOCKER_SDK_IMPORT_ERROR,
    HAS_DOCKER_SDK,
    get_client,
)
from ansible_collections.dockerlab.ecommerce.plugins.module_utils._health.checks import Context, needs_docker
from ansible_collections.dockerlab.ecommerce.plugins.module_utils._health.derive import plan_checks
from ansible_collections.dockerlab.ecommerce.plugins.module_utils._health.junit import junit_xml
from ansible_collections.dockerlab.ecommerce.plugins.module_utils._health.runner import (
    failure_lines,
    run_checks,
    summarize,
)


def run_module():
    argument_spec = {
        'topology': {'type': 'dict', 'default': {}},
        'stack_name': {'type': 'str', 'default': 'ecommerce'},
        'checks': {'type': 'list', 'elements': 'dict', 'default': []},
        'baseline': {'type': 'dict', 'default': {}},
        'max_restarts': {'type': 'int'},
        'deadline': {'type': 'float', 'default': 0},
        'timeout': {'type': 'float', 'default': 5},
        'retries': {'type': 'int', 'default': 0},
        'delay': {'type': 'float', 'default': 1},
        'workers': {'type': 'int', 'default': 16},
        'junit_path': {'type': 'path'},
        'fail_on_error': {'type': 'bool', 'default': True},
        **DOCKER_COMMON_ARGS,
    }
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    topology = params['topology']
    if topology and not isinstance(topology.get('containers'), list):
        module.fail_json(msg='topology is not a resolved topology (it has no containers list); pass the result of '
                             'the dockerlab.ecommerce.stack_model filter')
    defaults = {'timeout': params['timeout'], 'retries': params['retries'], 'delay': params['delay']}
    checks, problems = plan_checks(topology, params['checks'], defaults, params['stack_name'],
                                   params['baseline'], params['max_restarts'])
    if problems:
        module.fail_json(msg='Some checks cannot run; fix them:\n' + '\n'.join(problems),
                         checks=[], summary={'total': 0, 'passed': 0, 'failed': 0})
    if not checks:
        module.fail_json(msg='There is nothing to check: give topology (the dockerlab.ecommerce.stack_model '
                             'filter\'s result) or checks')

    client = None
    docker_checks = [check['name'] for check in checks if needs_docker(check)]
    if docker_checks:
        if not HAS_DOCKER_SDK:
            module.fail_json(msg=missing_required_lib('Docker SDK for Python: docker',
                                                      reason=f"the checks {', '.join(docker_checks[:5])}"),
                             exception=DOCKER_SDK_IMPORT_ERROR)
        client, error = get_client(params['docker_host'], params['api_timeout'], max(32, params['workers'] * 2))
        if client is None:
            module.fail_json(msg=error)

    try:
        results = run_checks(Context(client), checks, deadline=params['deadline'], workers=params['workers'])
    finally:
        if client is not None:
            client.close()
    summary = summarize(results)
    result = {'changed': False, 'checks': results, 'summary': summary}

    if params['junit_path'] and not module.check_mode:
        atomic_write(module, params['junit_path'], junit_xml(results), prefix='.stack_health-')
        result['junit_path'] = params['junit_path']

    if summary['failed'] and params['fail_on_error']:
        module.fail_json(msg='\n'.join(failure_lines(results)), **result)
    module.exit_json(**result)


def main():
    run_module()


if __name__ == '__main__':
    main()
