# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The rollout plan (targets.rollout_steps): slot by slot, stale containers removed where
their fixed address is needed, the load balancer reloaded after what it proxies to."""

from __future__ import annotations

import copy

from ansible_collections.dockerlab.ecommerce.plugins.module_utils._topology.targets import containers_target
from conftest import DEFAULTS, default_model


def _host(name, component, *addresses):
    """One container as a verbose docker_host_info listing shows it."""
    return {'Names': [f'/{name}'], 'Labels': {'dockerlab.stack': 'ecommerce', 'dockerlab.component': component},
            'NetworkSettings': {'Networks': {f'net{n}': {'IPAddress': address, 'IPAMConfig': None}
                                             for n, address in enumerate(addresses)}}}


def _plan(model, tier, host=None):
    return [(step['slot'], [c['name'] for c in step['create']], step['remove'])
            for step in containers_target(model, tier, host_containers=host)['steps']]


def _with_replicas(**replicas):
    defaults = copy.deepcopy(DEFAULTS)
    for key, count in replicas.items():
        defaults['services']['backend_services'][key.replace('_', '-')]['replicas'] = count
    return default_model('offline', defaults=defaults)


def test_a_fresh_tier_rolls_out_one_slot_after_the_other():
    steps = _plan(default_model('offline'), 'backend')
    assert steps == [
        (1, ['user-service-1', 'order-service-1', 'payment-service-1', 'api-gateway-1'], []),
        (2, ['user-service-2', 'order-service-2', 'payment-service-2', 'api-gateway-2'], []),
    ]


def test_single_containers_come_in_the_last_slot_after_every_replica_they_proxy_to():
    steps = _plan(default_model('offline'), 'frontend')
    assert steps == [(1, ['web-server-1'], []), (2, ['web-server-2', 'load-balancer'], [])]
    # a single instance that runs now is one whose replacement leaves a gap (reported)
    plan = containers_target(default_model('offline'), 'frontend',
                             host_containers=[_host('load-balancer', 'load-balancer', '172.20.0.10')])['steps']
    assert plan[1]['single'] == ['load-balancer'] and plan[0]['single'] == []
    assert containers_target(default_model('offline'), 'frontend')['steps'][1]['single'] == []  # first deploy


def test_scaling_up_from_one_first_adds_the_new_replica_then_replaces_the_old_name():
    # user-service ran as one container under the course's name, with the first replica's addresses
    host = [_host('user-service', 'user-service', '172.21.0.11', '172.22.0.21')]
    steps = _plan(_with_replicas(user_service=2), 'backend', host)
    # slot 2 needs nothing the old container holds: it goes first; slot 1 takes the old one's place
    assert steps[0][0] == 2 and 'user-service-2' in steps[0][1] and steps[0][2] == []
    assert steps[1][0] == 1 and 'user-service-1' in steps[1][1] and steps[1][2] == ['user-service']
    assert len(steps) == 2
    # the load balancer is reloaded after the step that only adds, not after the one that removes
    # (its config may still name the removed container: nginx -t would refuse it)
    plan = containers_target(_with_replicas(user_service=2), 'backend', host_containers=host)['steps']
    assert [bool(step['reload_after']) for step in plan] == [True, False]


def test_scaling_down_to_one_replaces_the_first_replica_then_removes_the_rest():
    host = [_host('user-service-1', 'user-service', '172.21.0.11', '172.22.0.21'),
            _host('user-service-2', 'user-service', '172.21.128.2', '172.22.128.2')]
    steps = _plan(_with_replicas(user_service=1), 'backend', host)
    single = [step for step in steps if 'user-service' in step[1]]
    assert single and single[0][2] == ['user-service-1']
    assert steps[-1] == (None, [], ['user-service-2'])  # removed once the new one is healthy


def test_scaling_down_removes_the_extra_replicas_last_and_leaves_the_others_alone():
    host = [_host(f'order-service-{n}', 'order-service', f'172.21.128.{n}') for n in (1, 2, 3)]
    steps = _plan(_with_replicas(order_service=2), 'backend', host)
    assert steps[-1] == (None, [], ['order-service-3'])
    assert all(step[2] == [] for step in steps[:-1])
    # the control: nothing to remove when the host has what the model wants
    assert all(step[2] == [] for step in _plan(_with_replicas(order_service=3), 'backend', host))


def test_containers_of_other_tiers_and_stacks_are_never_removed():
    host = [_host('mysql-db', 'mysql-db', '172.22.0.10'), _host('something-else', None, '172.21.0.11')]
    assert all(step[2] == [] for step in _plan(default_model('offline'), 'backend', host))


def test_the_load_balancer_is_reloaded_after_each_slot_of_what_it_proxies_to():
    plan = containers_target(default_model('offline'), 'backend')['steps']
    for step in plan:
        assert [entry['name'] for entry in step['reload_after']] == ['load-balancer']
        assert step['reload_after'][0]['reload']['command'] == ['nginx', '-s', 'reload']
    # within its own tier too (web servers), but never after its own slot for itself
    frontend = containers_target(default_model('offline'), 'frontend')['steps']
    assert [entry['name'] for entry in frontend[0]['reload_after']] == ['load-balancer']
    assert frontend[1]['reload_after'] == []  # the load balancer is in that slot itself
    # Prometheus also has edges to every service, but resolves names at each scrape: not reloaded
    assert 'prometheus' not in {entry['name'] for step in plan for entry in step['reload_after']}
