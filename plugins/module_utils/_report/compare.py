# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""compare(): the declared topology (container records, networks, volumes, flows) against
the gathered records, giving violations ``{'kind', 'subject', 'message'}``."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from ansible_collections.dockerlab.ecommerce.plugins.module_utils._report.common import (
    ip_key,
    is_wildcard,
    violation,
)
from ansible_collections.dockerlab.ecommerce.plugins.module_utils._report.gather import declared_network_names
from ansible_collections.dockerlab.ecommerce.plugins.module_utils._topology.hardening import hardening_problems, security_of

VIOLATION_KINDS = (
    'missing_network', 'network_mismatch', 'unexpected_network',
    'missing_container', 'container_not_running', 'unexpected_container',
    'missing_attachment', 'extra_attachment',
    'unexpected_port', 'missing_port', 'port_bound_to_all_interfaces', 'port_bind_mismatch',
    'missing_volume', 'invalid_flow', 'unexpected_flow', 'unreachable_allowed', 'below_hardening',
)


def _canonical_net(value):
    try:
        return str(ipaddress.ip_network(str(value).strip(), strict=False))
    except ValueError:
        return str(value)


def compare(actual, containers, networks, volumes=None, flows=None, security=None):
    """Violations of the actual records (``{'networks', 'containers', 'volumes'}``) against the declared
    data: the model's container records, the network definitions, the volumes and the flows;
    ``security`` (``stack_security``) for a container no service declares."""
    declared = {record['name']: record for record in containers}
    return (_network_violations(actual, networks) + _container_violations(actual, declared)
            + _hardening_violations(actual, declared, security)
            + _volume_violations(actual, volumes)
            + _flow_violations(flows, {record['component'] for record in containers}))


def _network_violations(actual, networks):
    violations = []
    network_keys = declared_network_names(networks)
    actual_networks = {n['name']: n for n in actual['networks']}
    for key, definition in sorted((networks or {}).items(), key=lambda kv: str(kv[0])):
        if not isinstance(definition, Mapping) or not definition.get('name'):
            continue
        name = definition['name']
        found = actual_networks.get(name)
        if found is None or not found.get('present', True):
            violations.append(violation('missing_network', name,
                                        f'network {name} (stack_networks[{key!r}]) does not exist'))
            continue
        subnet = definition.get('subnet')
        if subnet and found['subnets'] and _canonical_net(subnet) not in [_canonical_net(s) for s in found['subnets']]:
            violations.append(violation('network_mismatch', name,
                                        f"network {name} has subnet {', '.join(found['subnets'])}, "
                                        f'declared {subnet}'))
        internal = bool(definition.get('internal', False))
        if internal != found['internal']:
            violations.append(violation('network_mismatch', name,
                                        f"network {name} is {'internal' if found['internal'] else 'not internal'}, "
                                        f"declared internal: {str(internal).lower()}"))
    for name in sorted(actual_networks):
        if name not in network_keys:
            violations.append(violation('unexpected_network', name,
                                        f'network {name} carries the stack label but is not in stack_networks'))
    return violations


def _container_violations(actual, declared):
    violations = []
    actual_containers = {c['name']: c for c in actual['containers']}
    for name, record in sorted(declared.items()):
        container = actual_containers.get(name)
        if container is None:
            violations.append(violation('missing_container', name,
                                        f"container {name} ({record['variable']}) does not exist"))
            continue
        if not container['running']:
            violations.append(violation('container_not_running', name,
                                        f"container {name} is {container['state']} "
                                        f"(exit code {container['exit_code']}), not running"))
        want = {network['name'] for network in record['networks']}
        have = {n['name'] for n in container['networks']}
        for net in sorted(want - have):
            violations.append(violation('missing_attachment', name,
                                        f'container {name} is not attached to network {net}, as declared'))
        for net in sorted(have - want):
            violations.append(violation('extra_attachment', name,
                                        f'container {name} is attached to network {net}, which it does not declare'))
        violations.extend(_port_violations(name, container, record['ports']))
    for name in sorted(actual_containers):
        if name not in declared:
            violations.append(violation('unexpected_container', name,
                                        f'container {name} carries the stack label but no service declares it'))
    return violations


def _hardening_violations(actual, declared, security):
    """A container less hardened or limited than its service declares (one that no service
    declares: than the stack's hardening, with a memory limit)."""
    violations = []
    for container in actual['containers']:
        if not container.get('hardening'):
            continue
        record = declared.get(container['name'])
        if record is not None:
            problems = hardening_problems(container['hardening'], record['security'], record['resources'])
            reference = f"{record['variable']}.security/resources"
        else:
            problems = hardening_problems(container['hardening'], security_of({}, security), None)
            reference = 'stack_security'
        if problems:
            violations.append(violation('below_hardening', container['name'],
                                        f"container {container['name']} is below its declared hardening "
                                        f"({reference}): {'; '.join(problems)}"))
    return violations


def _volume_violations(actual, volumes):
    violations = []
    for key, volume in sorted((volumes or {}).items(), key=lambda kv: str(kv[0])):
        if not any(v['name'] == volume and v.get('present', True) for v in actual.get('volumes') or []):
            violations.append(violation('missing_volume', str(volume),
                                        f'volume {volume} (stack_volumes[{key!r}]) does not exist'))
    return violations


def _flow_violations(flows, components):
    violations = []
    for position, flow in enumerate(flows or []):
        problems = [f"{end} {flow.get(end)!r} is not a declared service" for end in ('from', 'to')
                    if flow.get(end) not in components]
        if not problems and not str(flow.get('port', '')).isdigit():
            problems.append(f"port {flow.get('port')!r} is not a port number")
        if problems:
            violations.append(violation('invalid_flow', f'stack_flows[{position}]',
                                        f"stack_flows[{position}]: {'; '.join(problems)}"))
    return violations


def _port_violations(name, container, ports):
    """Violations of a container's published ports against the record's ``ports``: a declared host
    port must be bound on its bind_address; a port published on a random host port is declared too."""
    violations = []
    random_ports = {(port['container_port'], port['protocol']) for port in ports if port['host_port'] is None}
    by_port = {}
    for port in container['ports']:
        by_port.setdefault((port['host_port'], port['protocol']), []).append(port)
    wanted = {(port['host_port'], port['protocol']): port for port in ports if port['host_port'] is not None}
    for (host_port, protocol), bound in sorted(by_port.items()):
        record = wanted.get((host_port, protocol))
        addresses = sorted({p['host_ip'] for p in bound}, key=ip_key)
        shown = ', '.join(addresses)
        if record is None:
            if (bound[0]['container_port'], protocol) in random_ports:
                continue
            violations.append(violation('unexpected_port', name,
                                        f'container {name} publishes {host_port}/{protocol} on {shown} '
                                        f"(to {bound[0]['container_port']}/{protocol}), which is not declared"))
            continue
        if is_wildcard(record['bind_address']):
            continue
        if any(is_wildcard(a) for a in addresses):
            violations.append(violation('port_bound_to_all_interfaces', name,
                                        f'container {name} publishes {host_port}/{protocol} on '
                                        f"{[a for a in addresses if is_wildcard(a)][0]}: bound to all interfaces, "
                                        f"should be local (declared bind_address {record['bind_address']})"))
        elif record['bind_address'] not in addresses:
            violations.append(violation('port_bind_mismatch', name,
                                        f'container {name} publishes {host_port}/{protocol} on {shown}, '
                                        f"declared bind_address {record['bind_address']}"))
    if container['running']:
        for (host_port, protocol), record in sorted(wanted.items()):
            if (host_port, protocol) not in by_port:
                violations.append(violation('missing_port', name,
                                            f'container {name} does not publish {host_port}/{protocol} '
                                            f"on {record['bind_address']}, as declared"))
    return violations
