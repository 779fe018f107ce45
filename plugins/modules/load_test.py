#!/usr/bin/python
# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# ruff: noqa: EXE001 - ansible-test wants the module shebang and no executable bit

from __future__ import annotations

DOCUMENTATION = r"""
---
module: load_test
short_description: Send the course's load test to the lab and report throughput, latency, failures and spread
version_added: 0.4.0
description:
  - >-
    Sends HTTP/1.1 requests from the target host to O(url) with O(concurrency) workers (one kept-alive connection
    each) for O(duration) seconds or O(max_requests) requests, whichever comes first, and reports what came back:
    requests sent and failed, requests per second, status codes, errors by kind, latency percentiles, which
    replica answered (O(spread_headers)), a per-second timeline and the first failures.
  - >-
    The default O(mix) is the course's: 60% C(GET /api/users/{user_id}) (a cached read), 15% C(GET /),
    15% C(POST /api/orders/) with an C(Idempotency-Key), 10% C(GET /api/orders/{order_id}). Before the load,
    a setup step creates O(setup_users) users (C(POST /api/users/)) and one order per user
    (C(POST /api/orders/)), whose ids fill C({user_id}) and C({order_id}) in paths and bodies.
  - >-
    A request fails when its status is not one of its C(expect) statuses (counted as C(status_<code>)) or
    when no whole answer came: C(connect_refused), C(connect_timeout), C(read_timeout), C(reset), C(closed)
    (the server closed the connection before answering) or C(other:<ExceptionClass>). The load test retries
    nothing (a POST without an Idempotency-Key is never sent twice); only a GET or HEAD, or a request with
    O(mix[].idempotency_key), that finds a kept-alive connection already closed by the server (as nginx closes
    idle ones when it reloads) is sent once more on a new connection, as HTTP clients do (counted in
    RV(stale_retries)).
  - >-
    With O(sample_stats), the CPU and memory of the stack's containers (label C(dockerlab.stack=<stack_name>))
    are sampled every O(stats_interval) seconds during the load, like C(docker stats).
  - >-
    Only loopback targets (C(127.0.0.0/8), C(::1), C(localhost)) are loaded unless O(allow_remote=true).
    Runs are bounded: O(duration) is at most 600 seconds and O(concurrency) at most 256.
  - >-
    Deploys and configures nothing, so RV(ignore:changed) is always V(false); but the setup step and the mix's
    POSTs do create users and orders in the lab's databases.
author:
  - dockerlab.ecommerce contributors (@dockerlab)
requirements:
  - Docker SDK for Python (C(docker)), for O(sample_stats) only. Without it, or without an engine, the load test
    still runs and RV(stats_error) says why there are no stats.
attributes:
  check_mode:
    support: full
    details:
      - In check mode the options are checked but no request is sent; the result has zero counts and a RV(msg).
  diff_mode:
    support: none
extends_documentation_fragment:
  - dockerlab.ecommerce.attributes
  - dockerlab.ecommerce.docker_api
options:
  url:
    description:
      - The base URL of the lab (the load balancer's published port); the mix's paths are appended to it.
      - Plain C(http://) only.
    type: str
    default: http://127.0.0.1:8080
  allow_remote:
    description:
      - Allow a O(url) that is not this host's loopback. Load only hosts you are allowed to load.
    type: bool
    default: false
  concurrency:
    description: Workers sending requests at the same time, each over its own connection (1 to 256).
    type: int
    default: 10
  duration:
    description:
      - Seconds to send requests for (at most 600). V(0) sends until O(max_requests), still for at most 600 seconds.
      - Requests still unanswered when the time is up get up to 2 seconds more, then count as RV(unfinished).
    type: float
    default: 20
  max_requests:
    description: Stop after sending this many requests. V(0) bounds the run by O(duration) only.
    type: int
    default: 0
  timeout:
    description: Seconds each request may take, connecting included, before it counts as a timeout.
    type: float
    default: 10
  mix:
    description:
      - The kinds of request to send, each chosen at random in proportion to its C(weight).
      - Leave it out for the course's mix (see the description).
    type: list
    elements: dict
    suboptions:
      name:
        description: The request's name in RV(by_request) and the failures. Defaults to C(<method> <path>).
        type: str
      method:
        description: The HTTP method.
        type: str
        default: GET
      path:
        description:
          - The path, appended to O(url), starting with C(/). C({user_id}) and C({order_id}) are filled with an id
            the setup step created, picked at random for each request.
        type: str
        required: true
      weight:
        description: The request's share of the mix, relative to the other weights (V(0) leaves it out).
        type: float
        default: 1
      body:
        description:
          - "A JSON body (a dict or a list), sent with C(Content-Type: application/json), or a JSON text."
          - C({user_id}) and C({order_id}) are filled in its strings; a string that is only a placeholder, such as
            C("{user_id}"), becomes the number itself.
        type: raw
      idempotency_key:
        description: Send a fresh C(Idempotency-Key) header (a random UUID) with each request.
        type: bool
        default: false
      headers:
        description: More request headers (name to value).
        type: dict
      expect:
        description:
          - The statuses that count as success, as numbers (V(200)), classes (V(2xx)) or ranges (V(200-299)).
          - By default any 2xx or 3xx status.
        type: list
        elements: raw
  retry_after_max:
    description:
      - How often a request with an Idempotency-Key that is answered 503 with C(Retry-After) is sent again, with the
        same key, after the delay it asks for (at most 2 s), as a well-behaved client does while the database
        restarts. The answer that ends the retries is the one counted.
      - 0 sends nothing twice (every such answer counts as failed).
    type: int
    default: 0
  setup_users:
    description:
      - Users (and one order each, when the mix uses C({order_id})) to create before the load, to fill the
        placeholders. Nothing is created when the mix uses no placeholder.
    type: int
    default: 5
  spread_headers:
    description:
      - Response headers whose values are counted in RV(spread), to see how the load spread over replicas.
    type: list
    elements: str
    default: [X-Served-By, X-Gateway]
  sample_stats:
    description:
      - Sample the CPU and memory of the stack's containers during the load (needs the Docker SDK and engine).
    type: bool
    default: true
  stack_name:
    description: The stack whose containers are sampled (label C(dockerlab.stack=<stack_name>)).
    type: str
    default: ecommerce
  stats_interval:
    description: Seconds between two samples of the containers' stats.
    type: float
    default: 1.0
  max_failed:
    description:
      - Fail the task when more requests than this failed; the result is returned all the same.
      - V(-1) never fails because of failed requests.
    type: int
    default: -1
notes:
  - Run it on the Docker host (or a host that reaches O(url)); the requests are sent from the target.
  - The engine uses only the Python standard library (asyncio), so the target needs no extra package for the load.
seealso:
  - module: dockerlab.ecommerce.stack_health
"""

EXAMPLES = r"""
---
- name: The course's load test, 20 seconds, 10 workers
  dockerlab.ecommerce.load_test:
  register: load

- name: Show the summary
  ansible.builtin.debug:
    msg: "{{ load.summary_lines }}"

- name: A short burst that must not fail, without container stats
  dockerlab.ecommerce.load_test:
    url: http://127.0.0.1:8080
    concurrency: 32
    duration: 10
    max_requests: 5000
    sample_stats: false
    max_failed: 0

- name: Only payments, each with its own Idempotency-Key, 409 counted as success
  dockerlab.ecommerce.load_test:
    duration: 30
    setup_users: 10
    mix:
      - name: pay
        method: POST
        path: /api/payments/
        body: {order_id: "{order_id}", amount: "9.99", method: card}
        idempotency_key: true
        expect: [2xx, 409]
      - name: read_order
        path: /api/orders/{order_id}
        weight: 3
"""

RETURN = r"""
url:
  description: The base URL loaded.
  returned: always
  type: str
  sample: http://127.0.0.1:8080
config:
  description: The settings the run used (concurrency, duration_s, max_requests, timeout_s, setup_users, mix ...).
  returned: always
  type: dict
sent:
  description: Requests sent and over (answered or failed); RV(sent) = RV(completed) + the transport errors.
  returned: always
  type: int
  sample: 4012
completed:
  description: Requests that got a whole HTTP answer, whatever its status.
  returned: always
  type: int
  sample: 4008
failed:
  description: Requests that failed (unexpected status or no answer); the sum of RV(errors).
  returned: always
  type: int
  sample: 12
ok:
  description: Requests answered with an expected status (RV(sent) - RV(failed)).
  returned: always
  type: int
  sample: 4000
unfinished:
  description: Requests still in flight when the run ended, abandoned and counted nowhere else.
  returned: always
  type: int
  sample: 0
stale_retries:
  description: GETs (and requests with an Idempotency-Key) sent once more because the server had closed their kept-alive connection before answering.
  returned: always
  type: int
  sample: 0
created:
  description: Empty unless the engine was asked to keep the ids of what the POSTs created (tests use it).
  returned: always
  type: dict
  sample: {}
retry_after_retries:
  description: Requests with an Idempotency-Key sent again, with the same key, after a 503 with Retry-After (O(retry_after_max)).
  returned: always
  type: int
  sample: 0
status_counts:
  description: Answers per HTTP status.
  returned: always
  type: dict
  sample: {"200": 3390, "201": 610, "502": 8}
errors:
  description: Failed requests per kind (C(status_<code>), C(connect_refused), C(connect_timeout), C(read_timeout), C(reset), C(closed), C(other:<Class>)).
  returned: always
  type: dict
  sample: {status_502: 8, read_timeout: 4}
latency_ms:
  description: Latency of the completed requests in milliseconds (nearest-rank percentiles); null values when none completed.
  returned: always
  type: dict
  contains:
    p50:
      description: Median.
      type: float
    p95:
      description: 95th percentile.
      type: float
    p99:
      description: 99th percentile.
      type: float
    max:
      description: Slowest.
      type: float
    mean:
      description: Mean.
      type: float
  sample: {p50: 3.1, p95: 12.0, p99: 25.3, max: 120.4, mean: 4.5}
by_request:
  description: Per entry of the mix (by name) its own sent, completed, failed, ok, status_counts, errors, latency_ms and spread.
  returned: always
  type: dict
spread:
  description: For each header of O(spread_headers), the answers per header value (which web server, service or gateway replica answered).
  returned: always
  type: dict
  sample: {X-Served-By: {user-service-1: 1203, user-service-2: 1197}, X-Gateway: {api-gateway-1: 2400}}
duration_s:
  description: Seconds from the first request to the end of the run.
  returned: always
  type: float
  sample: 20.01
rps:
  description: Requests sent per second.
  returned: always
  type: float
  sample: 200.5
started_at:
  description: When the load started (UTC, ISO 8601); null in check mode.
  returned: always
  type: str
  sample: "2025-01-01T12:00:00.000Z"
ended_at:
  description: When the load ended (UTC, ISO 8601); null in check mode.
  returned: always
  type: str
  sample: "2025-01-01T12:00:20.010Z"
stopped_by:
  description: What ended the run, V(duration), V(max_requests) or V(stop_event); null in check mode.
  returned: always
  type: str
  sample: duration
timeline:
  description: One bucket per second since the start (by the time each request was sent), to see where a fault hit.
  returned: always
  type: list
  elements: dict
  sample: [{t: 0, sent: 201, failed: 0}, {t: 1, sent: 187, failed: 12}]
failure_samples:
  description:
    - The first failures (up to 10), each with C(t) (seconds since the start), C(request), C(kind), C(status)
      and C(body) (the answer's or the error's first 200 characters).
  returned: always
  type: list
  elements: dict
  sample: [{t: 1.204, request: get_user, kind: status_502, status: 502, body: "Bad Gateway"}]
setup:
  description: What the setup step created, C(users), C(orders) (counts), C(user_ids) and C(order_ids).
  returned: always
  type: dict
  sample: {users: 5, orders: 5, user_ids: [1, 2, 3, 4, 5], order_ids: [1, 2, 3, 4, 5]}
stats:
  description: Per container, C(cpu_percent_mean), C(cpu_percent_max) (% of one core), C(memory_mib_max), C(memory_limit_mib) and C(samples).
  returned: when O(sample_stats) is true
  type: dict
  sample: {user-service-1: {cpu_percent_mean: 23.5, cpu_percent_max: 41.2, memory_mib_max: 61.3, memory_limit_mib: 256.0, samples: 20}}
stats_error:
  description: Why no (or not all) container stats were sampled; the load test itself still ran.
  returned: when O(sample_stats) is true and sampling failed
  type: str
  sample: The Docker SDK for Python is not installed; install it with pip install docker
summary:
  description: A readable summary of the run (RV(summary_lines) joined).
  returned: always
  type: str
summary_lines:
  description: The summary, one line per item, for ansible.builtin.debug.
  returned: always
  type: list
  elements: str
  sample: ["Load test of http://127.0.0.1:8080: 20.0 s, 10 workers, stopped by duration ...", "Requests: 4012 sent, 4000 ok, 12 failed (0.3%), 200.5 req/s"]
msg:
  description: In check mode, that no load was sent; when the task fails, why.
  returned: in check mode, and on failure
  type: str
"""

import traceback  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.dockerlab.ecommerce.plugins.module_utils.docker_client import DOCKER_COMMON_ARGS  # noqa: E402
from ansible_collections.dockerlab.ecommerce.plugins.module_utils._load.runner import (  # noqa: E402
    DEFAULT_SPREAD_HEADERS,
    DEFAULT_URL,
    LoadConfig,
    LoadConfigError,
    LoadError,
    empty_result,
    run_load,
)
from ansible_collections.dockerlab.ecommerce.plugins.module_utils._load.stats import make_sampler  # noqa: E402
from ansible_collections.dockerlab.ecommerce.plugins.module_utils._load.summary import (  # noqa: E402
    summary_lines,
    top_errors,
)

MIX_SPEC = {
    'name': {'type': 'str'},
    'method': {'type': 'str', 'default': 'GET'},
    'path': {'type': 'str', 'required': True},
    'weight': {'type': 'float', 'default': 1},
    'body': {'type': 'raw'},
    'idempotency_key': {'type': 'bool', 'default': False},
    'headers': {'type': 'dict'},
    'expect': {'type': 'list', 'elements': 'raw'},
}


def _config(params):
    return LoadConfig(base_url=params['url'], allow_remote=params['allow_remote'], concurrency=params['concurrency'],
                      duration_s=params['duration'], max_requests=params['max_requests'], timeout_s=params['timeout'],
                      mix=params['mix'], setup_users=params['setup_users'], spread_headers=params['spread_headers'],
                      retry_after_max=params['retry_after_max'])


def _with_summary(result):
    lines = summary_lines(result)
    result.update(summary='\n'.join(lines), summary_lines=lines)
    return result


def run_module():
    argument_spec = {
        'url': {'type': 'str', 'default': DEFAULT_URL},
        'allow_remote': {'type': 'bool', 'default': False},
        'concurrency': {'type': 'int', 'default': 10},
        'duration': {'type': 'float', 'default': 20},
        'max_requests': {'type': 'int', 'default': 0},
        'timeout': {'type': 'float', 'default': 10},
        'mix': {'type': 'list', 'elements': 'dict', 'options': MIX_SPEC},
        'setup_users': {'type': 'int', 'default': 5},
        'retry_after_max': {'type': 'int', 'default': 0},
        'spread_headers': {'type': 'list', 'elements': 'str', 'default': list(DEFAULT_SPREAD_HEADERS)},
        'sample_stats': {'type': 'bool', 'default': True},
        'stack_name': {'type': 'str', 'default': 'ecommerce'},
        'stats_interval': {'type': 'float', 'default': 1.0},
        'max_failed': {'type': 'int', 'default': -1},
        **DOCKER_COMMON_ARGS,
    }
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    try:
        config = _config(params)
    except LoadConfigError as exc:
        module.fail_json(msg=str(exc))
    if params['stats_interval'] <= 0:
        module.fail_json(msg=f"stats_interval must be more than 0 seconds, got {params['stats_interval']:g}")

    if module.check_mode:
        result = empty_result(config, msg=f'Check mode: no load was sent to {config.base_url}.')
        module.exit_json(changed=False, skipped=True, **_with_summary(result))

    sampler, stats_error = None, None
    if params['sample_stats']:
        sampler, stats_error = make_sampler(params['docker_host'], params['api_timeout'], params['stack_name'],
                                            params['stats_interval'])
    try:
        result = run_load(config, sampler=sampler)
    except (LoadConfigError, LoadError) as exc:
        module.fail_json(msg=str(exc))
    # the load test must end in a message, never a traceback
    except Exception as exc:  # noqa: BLE001 pylint: disable=broad-except
        module.fail_json(msg=f'The load test stopped on an unexpected error: {type(exc).__name__}: {exc}',
                         exception=traceback.format_exc())
    if stats_error is not None:
        result.update(stats={}, stats_error=stats_error)
    _with_summary(result)

    max_failed = params['max_failed']
    if 0 <= max_failed < result['failed']:
        module.fail_json(msg=f"{result['failed']} of {result['sent']} requests failed, more than max_failed="
                             f"{max_failed}; most frequent: {top_errors(result)}", changed=False, **result)
    module.exit_json(changed=False, **result)


def main():
    run_module()


if __name__ == '__main__':
    main()
