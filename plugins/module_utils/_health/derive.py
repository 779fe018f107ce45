# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The checks the resolved topology implies (the dict model.resolve() returns).

For each container record: a ``container`` check, and its ``probe`` run inside it. For each
service some container connects to: a ``dns`` check that its name resolves from a client.
Then the ``validate`` checks the services declare (``topology['checks']``).
"""

from __future__ import annotations

from ansible_collections.dockerlab.ecommerce.plugins.module_utils._health.spec import (
    DEFAULT_PORTS,
    CheckError,
    normalize_check,
)
from ansible_collections.dockerlab.ecommerce.plugins.module_utils._topology.model import by_component


def _container_check(record, stack_name, baseline, max_restarts):
    name = record['name']
    check = {'kind': 'container', 'name': f'container {name}', 'container': name,
             'networks': [network['name'] for network in record['networks']],
             # what it must at least be: its declared hardening and limits
             'hardening': {'security': record['security'], 'resources': record['resources']}}
    if stack_name:
        check['labels'] = {'dockerlab.stack': stack_name}
    if name in baseline:
        check['baseline_restarts'] = baseline[name]
    if max_restarts is not None:
        check['max_restarts'] = max_restarts
    return check


def _probe_check(record):
    """The record's probe, run inside the container against 127.0.0.1 and its port (which the
    model fills from ``expose``), else the protocol's default port."""
    probe = record['probe']
    kind = probe['kind']
    name = record['name']
    derived = {k: v for k, v in probe.items() if k not in ('kind', 'path')}
    derived.update({'kind': kind, 'name': f'{kind} {name}', 'from_container': name})
    derived.setdefault('host', '127.0.0.1')
    port = probe.get('port') or DEFAULT_PORTS.get(kind)
    if kind == 'http':
        derived.pop('port', None)
        derived['url'] = f"http://{derived.pop('host')}:{port}{probe.get('path') or '/'}"
    else:
        derived['port'] = port
    return derived


def _dns_checks(components):
    """``(source, check)`` per service some container connects to: resolved by name from the
    first container of the first client (by component), to that service's containers."""
    clients = {}
    for component, records in components.items():
        for edge in records[0]['connects_to']:
            clients.setdefault(edge['service'], set()).add(component)
    for target in sorted(clients):
        client = components[sorted(clients[target])[0]][0]
        records = components[target]
        name = records[0]['dns_name']
        expected = records[0]['name'] if len(records) == 1 else [record['name'] for record in records]
        yield f"{client['variable']}.connects_to ({target})", {
            'kind': 'dns', 'label': f"{client['name']} finds {name} by name", 'container': client['name'],
            'name': name, 'expected_container': expected}


def _derive(topology, stack_name=None, baseline=None, max_restarts=None):
    """``(source, check definition)`` of every derived check; source names where it comes from."""
    if not topology:
        return
    baseline = baseline or {}
    for record in topology['containers']:
        check = _container_check(record, stack_name, baseline, max_restarts)
        yield check['name'], check
        if record['probe']:
            probe = _probe_check(record)
            yield f"the probe of {record['variable']} ({probe['name']})", probe
    components = by_component(topology)
    yield from _dns_checks(components)
    positions = {}
    for check in topology.get('checks') or []:
        component = check.get('component')
        position = positions[component] = positions.get(component, -1) + 1
        where = components[component][0]['variable'] if component in components else str(component)
        yield f'{where}.validate[{position}]', {k: v for k, v in check.items() if k != 'component'}


def derive_checks(topology, stack_name=None, baseline=None, max_restarts=None):
    """Check definitions for every container record of ``topology`` (model.resolve()'s result).

    For each container: a ``container`` check (running, healthy when it has a healthcheck,
    attached to its networks, labelled ``dockerlab.stack=<stack_name>``, restarts against
    ``baseline``/``max_restarts``), plus its ``probe``; one ``dns`` check per service some
    container connects to; the services' ``validate`` checks.
    """
    return [check for _source, check in _derive(topology, stack_name, baseline, max_restarts)]


def plan_checks(topology, checks=(), defaults=None, stack_name=None, baseline=None, max_restarts=None):
    """``(normalised checks, problems)``: the derived checks then ``checks``, each normalised;
    a problem is ``<where the check comes from>: <what to fix>``."""
    sources = list(_derive(topology, stack_name, baseline, max_restarts))
    sources.extend((f'checks[{position}]', raw) for position, raw in enumerate(checks or []))
    normalised, problems = [], []
    for source, raw in sources:
        try:
            normalised.append(normalize_check(raw, defaults))
        except CheckError as exc:
            problems.append(f'{source}: {exc}')
    return normalised, problems
