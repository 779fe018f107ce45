# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Filters over what the Docker host reports: health, existing networks and volumes, config hashes.

Each filter's documentation lives in its sidecar file (prometheus_seconds.yml ...).
"""

from __future__ import annotations

import hashlib
import re

from ansible.errors import AnsibleFilterError


_DURATION_UNITS = {'ms': 0.001, 's': 1, 'm': 60, 'h': 3600, 'd': 86400, 'w': 604800, 'y': 31536000}


def prometheus_seconds(duration):
    """Seconds in a Prometheus duration (``1h30m``, ``15s``, ``500ms``)."""
    text = str(duration).strip()
    parts = re.findall(r'([0-9]+)(ms|s|m|h|d|w|y)', text)
    if not parts or ''.join(n + u for n, u in parts) != text:
        raise AnsibleFilterError(f'{duration!r} is not a Prometheus duration such as 30s, 5m, 15d or 1h30m')
    return sum(int(number) * _DURATION_UNITS[unit] for number, unit in parts)


def container_health(host_containers, names):
    """Health of each named container from one ``docker_host_info`` container listing.

    Returns ``{name: state}`` where state is ``healthy``, ``starting`` (still worth
    waiting for), ``unhealthy``, ``exited``/``restarting``/``dead`` (crashed: no point
    waiting) or ``missing``. The listing's ``Status`` text ends in ``(healthy)``,
    ``(unhealthy)`` or ``(health: starting)`` for containers with a healthcheck.
    """
    by_name = {}
    for container in host_containers or []:
        for name in container.get('Names') or []:
            by_name[name.lstrip('/')] = container
    health = {}
    for name in names:
        container = by_name.get(name)
        if container is None:
            health[name] = 'missing'
        elif container.get('State') in ('exited', 'restarting', 'dead'):
            health[name] = container['State']
        elif '(healthy)' in (container.get('Status') or ''):
            health[name] = 'healthy'
        elif '(unhealthy)' in (container.get('Status') or ''):
            health[name] = 'unhealthy'
        else:
            health[name] = 'starting'
    return health


def matching_networks(existing, networks, stack_name, driver='bridge'):
    """Keys of ``stack_networks`` whose Docker network already exists exactly as declared
    (driver, subnet and ip_range, internal flag, labels), from a verbose ``docker_host_info`` listing."""
    by_name = {net.get('Name'): net for net in existing or []}
    matching = []
    for key, spec in (networks or {}).items():
        net = by_name.get(spec['name'])
        if not net:
            continue
        pools = [(cfg.get('Subnet'), cfg.get('IPRange') or None) for cfg in ((net.get('IPAM') or {}).get('Config') or [])]
        labels = net.get('Labels') or {}
        if (net.get('Driver') == driver and pools == [(spec['subnet'], spec.get('ip_range') or None)]
                and bool(net.get('Internal')) == bool(spec.get('internal', False))
                and labels.get('dockerlab.stack') == stack_name and labels.get('dockerlab.network') == key):
            matching.append(key)
    return matching


def matching_volumes(existing, volumes, stack_name):
    """Keys of ``stack_volumes`` whose Docker volume already exists with the stack's labels."""
    by_name = {vol.get('Name'): vol for vol in existing or []}
    matching = []
    for key, name in (volumes or {}).items():
        labels = (by_name.get(name) or {}).get('Labels') or {}
        if labels.get('dockerlab.stack') == stack_name and labels.get('dockerlab.volume') == key:
            matching.append(key)
    return matching


def config_hashes(files, written):
    """``{component: sha256}`` over the checksums of its written files (stack_files results,
    matched by path): the config-hash label that recreates a changed component."""
    by_path = {result['path']: result for result in written}
    sums = {}
    for spec in files:
        sums.setdefault(spec['component'], []).append(by_path[spec['path']]['checksum'])
    return {component: hashlib.sha256(','.join(sorted(values)).encode()).hexdigest()
            for component, values in sums.items()}


def changed_components(files, written):
    """Components with at least one file the last stack_files call changed."""
    changed = {result['path'] for result in written if result.get('changed')}
    return sorted({spec['component'] for spec in files if spec['path'] in changed})


class FilterModule:
    """dockerlab.ecommerce filters over what the Docker host reports."""

    def filters(self):
        return {
            'prometheus_seconds': prometheus_seconds,
            'container_health': container_health,
            'matching_networks': matching_networks,
            'matching_volumes': matching_volumes,
            'config_hashes': config_hashes,
            'changed_components': changed_components,
        }
