# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""build_report(): the canonical JSON report (``schema_version: 1``) from the gathered data
and the declared topology; add_reachability() puts the reachability matrix into it."""

from __future__ import annotations

from ansible_collections.dockerlab.ecommerce.plugins.module_utils._report.common import sort_violations
from ansible_collections.dockerlab.ecommerce.plugins.module_utils._report.compare import compare
from ansible_collections.dockerlab.ecommerce.plugins.module_utils._report.gather import (
    container_record,
    declared_network_names,
    network_record,
)
from ansible_collections.dockerlab.ecommerce.plugins.module_utils._report.reachability import reachability_violations

SCHEMA_VERSION = 1


def build_report(raw, stack_name, records, networks, volumes=None, flows=None, secrets_dir=None, security=None):
    """The canonical JSON report from gather()'s raw data and the model's container ``records``
    (``topology['containers']``), without reachability (see add_reachability()). ``security``
    (``stack_security``) is what a container no service declares is held to."""
    network_keys = declared_network_names(networks)
    containers = _containers(raw, records, network_keys)
    report = {
        'schema_version': SCHEMA_VERSION,
        'stack_name': stack_name,
        'secrets_dir': secrets_dir,
        'networks': _networks(raw, networks, network_keys, containers),
        'containers': containers,
        'volumes': _volumes(raw, volumes, containers),
        'flows': sorted(({'from': f.get('from'), 'to': f.get('to'), 'port': f.get('port')} for f in flows or []),
                        key=lambda f: (str(f['from']), str(f['to']), str(f['port']))),
        'reachability': None,
    }
    actual = {kind: [item for item in report[kind] if item['present']]
              for kind in ('networks', 'containers', 'volumes')}
    report['violations'] = sort_violations(compare(actual, records, networks, volumes, flows, security))
    report['summary'] = _summary(report)
    return report


def _containers(raw, records, network_keys):
    """The gathered containers, and the declared ones that do not exist (``present: false``)."""
    declared = {record['name']: record for record in records}
    containers = [container_record(info, declared, network_keys, raw.get('image_users'))
                  for info in raw['containers']]
    present = {c['name'] for c in containers}
    for name, record in sorted(declared.items()):
        if name not in present:
            containers.append({'name': name, 'service': record['component'], 'declared': True, 'present': False,
                               'state': 'missing', 'running': False, 'exit_code': None, 'health': 'none',
                               'restart_count': 0, 'image': str(record['image'] or ''),
                               'networks': [], 'ports': [], 'mounts': [], 'hardening': None})
    return sorted(containers, key=lambda c: c['name'])


def _networks(raw, networks, network_keys, containers):
    """The gathered networks, and the declared ones that do not exist; members with their aliases."""
    nets = [network_record(info, network_keys) for info in raw['networks']]
    found = {n['name'] for n in nets}
    for name, key in sorted(network_keys.items()):
        if name not in found:
            definition = networks[key]
            nets.append({'name': name, 'key': key, 'declared': True, 'present': False, 'driver': None,
                         'internal': bool(definition.get('internal', False)),
                         'subnets': [str(definition['subnet'])] if definition.get('subnet') else [],
                         'gateways': [], 'members': []})
    # members with their aliases, from the containers' side
    aliases = {(n['name'], c['name']): n['aliases'] for c in containers for n in c['networks']}
    for net in nets:
        for member in net['members']:
            member['aliases'] = aliases.get((net['name'], member['container']), [])
    return sorted(nets, key=lambda n: n['name'])


def _volumes(raw, volumes, containers):
    """The gathered and the declared volumes, each with the containers that mount it."""
    volume_keys = {v: k for k, v in (volumes or {}).items()}
    mounted = {}
    for container in containers:
        for mount in container['mounts']:
            if mount['type'] == 'volume':
                mounted.setdefault(mount['source'], set()).add(container['name'])
    vols = {}
    for info in raw.get('volumes') or []:
        vols[info['Name']] = {'name': info['Name'], 'key': volume_keys.get(info['Name']),
                              'declared': info['Name'] in volume_keys, 'present': True,
                              'driver': info.get('Driver')}
    for name, key in volume_keys.items():
        vols.setdefault(name, {'name': name, 'key': key, 'declared': True, 'present': False, 'driver': None})
    for volume in vols.values():
        volume['mounted_by'] = sorted(mounted.get(volume['name'], ()))
    return sorted(vols.values(), key=lambda v: v['name'])


def add_reachability(report, matrix):
    """Put the reachability matrix and its violations into the report (in place) and return it."""
    report['reachability'] = matrix
    report['violations'] = sort_violations(report['violations'] +
                                           reachability_violations(matrix, report['containers']))
    report['summary'] = _summary(report)
    return report


def _summary(report):
    return {
        'networks': len([n for n in report['networks'] if n['present']]),
        'containers': len([c for c in report['containers'] if c['present']]),
        'running': len([c for c in report['containers'] if c['running']]),
        'violations': len(report['violations']),
    }
