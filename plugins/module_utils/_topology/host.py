# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The declared topology against a Docker host: subnets of other networks, busy host ports."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from ansible_collections.dockerlab.ecommerce.plugins.module_utils._topology.model import (
    DEFAULT_BIND_ADDRESS,
    DEFAULT_PROTOCOL,
    as_int,
    sorted_keys,
)
from ansible_collections.dockerlab.ecommerce.plugins.module_utils._topology.validation import DEFAULT_NETWORKS_VAR
from ansible_collections.dockerlab.ecommerce.plugins.module_utils._topology.values import (
    Errors,
    binds_collide,
    index,
    is_blank,
    parse_address,
    parse_subnet,
)

# Networks the Docker engine creates itself (they cannot be removed to free a subnet).
DOCKER_BUILTIN_NETWORKS = ('bridge', 'docker_gwbridge', 'host', 'none')


def docker_networks_summary(api_networks):
    """``[{name, subnets, labels}]`` from the Docker API's network list (``GET /networks``)."""
    summary = []
    for network in api_networks or []:
        ipam = network.get('IPAM') or {}
        subnets = [config.get('Subnet') for config in (ipam.get('Config') or []) if config.get('Subnet')]
        summary.append({'name': network.get('Name'), 'subnets': subnets, 'labels': dict(network.get('Labels') or {})})
    return sorted(summary, key=lambda item: str(item['name']))


def _parse_existing(existing):
    """(name, [networks], labels) per existing Docker network, sorted by name; unparsable subnets skipped."""
    parsed = []
    for item in sorted(existing or [], key=lambda entry: str(entry.get('name'))):
        subnets = []
        for subnet in item.get('subnets') or []:
            try:
                subnets.append(ipaddress.ip_network(str(subnet), strict=False))
            except ValueError:
                continue
        parsed.append((item.get('name'), subnets, item.get('labels') or {}))
    return parsed


def check_subnet_conflicts(networks, existing, networks_var=DEFAULT_NETWORKS_VAR):
    """Declared subnets that overlap a subnet of an existing Docker network with another name.

    ``existing`` is a list of ``{'name', 'subnets', 'labels'}`` (see docker_networks_summary()).
    A Docker network with the same name as the declared one is the network itself and is
    not a conflict.  Invalid declared subnets are skipped (validate_topology() reports them).
    """
    errors = Errors()
    if not isinstance(networks, Mapping):
        return list(errors)
    parsed = _parse_existing(existing)
    for key in sorted_keys(networks):
        definition = networks[key]
        if not isinstance(definition, Mapping) or is_blank(definition.get('subnet')):
            continue
        net, problem = parse_subnet(definition.get('subnet'))
        if problem:
            continue
        name = definition.get('name')
        declared = f'{networks_var}{index(key)}'
        for other_name, other_subnets, labels in parsed:
            if other_name == name:
                continue
            overlapping = [other for other in other_subnets if other.version == net.version and other.overlaps(net)]
            if not overlapping:
                continue
            origin = ''
            project = labels.get('com.docker.compose.project')
            if project:
                origin = f" (created by the Docker Compose project '{project}')"
            if other_name in DOCKER_BUILTIN_NETWORKS:
                fix = (f'choose another subnet for {declared} (Docker creates {other_name} itself; its range comes '
                       'from bip or default-address-pools in /etc/docker/daemon.json)')
            else:
                fix = f'remove that network (docker network rm {other_name}) or choose another subnet for {declared}'
            errors.add(f'{declared}.subnet',
                       f"{net.with_prefixlen} of network '{name}' overlaps {overlapping[0].with_prefixlen}, the "
                       f"subnet of the existing Docker network '{other_name}'{origin}; {fix}")
    return list(errors)


def port_owners_from_containers(api_containers):
    """``{(bind_address, host_port, protocol): container name}`` from the Docker API's container list.

    ``api_containers`` is the output of ``GET /containers/json`` (docker.APIClient.containers()):
    running containers with their ``Names`` and ``Ports``.
    """
    owners = {}
    for container in api_containers or []:
        names = [name.lstrip('/') for name in (container.get('Names') or []) if name.count('/') <= 1]
        name = min(names) if names else str(container.get('Id', ''))[:12]
        for port in container.get('Ports') or []:
            public = as_int(port.get('PublicPort'))
            if not public:
                continue
            address = parse_address(port.get('IP') or DEFAULT_BIND_ADDRESS) or DEFAULT_BIND_ADDRESS
            protocol = str(port.get('Type') or DEFAULT_PROTOCOL).lower()
            owners[(address, public, protocol)] = name
    return owners


def _normalize_owners(owners):
    """List of (bind address, port, protocol, name) from tuple keys or 'address/port/protocol' strings."""
    normalized = []
    for key, name in (owners or {}).items():
        parts = key.rsplit('/', 2) if isinstance(key, str) else key
        if not isinstance(parts, (tuple, list)) or len(parts) != 3:
            continue
        address = parse_address(str(parts[0])) or str(parts[0])
        port = as_int(parts[1])
        if port is None:
            continue
        normalized.append((address, port, str(parts[2]).lower(), str(name)))
    return normalized


def host_port_conflicts(port_records, probe, owners):
    """Declared published ports that are busy on the host.

    ``port_records`` are published_ports() records.  ``probe(bind_address, port, protocol)``
    returns True when the port can be bound right now and False when it is in use; it may
    raise OSError when binding fails for another reason (e.g. the address is not on this
    host).  ``owners`` maps ``(bind_address, port, protocol)`` (or the string
    ``'bind_address/port/protocol'``) to the name of the container publishing it.

    A port held by the very container that declares it is fine (the stack is already up).
    A port held by another container, or that cannot be bound, is an error naming the holder.
    """
    errors = Errors()
    known_owners = _normalize_owners(owners)
    for record in port_records or []:
        bind_address = record['bind_address']
        port = record['host_port']
        protocol = record['protocol']
        variable = record['variable']
        what = f'host port {port}/{protocol} ({variable})'
        holders = sorted({name for (address, number, proto, name) in known_owners
                          if number == port and proto == protocol and binds_collide(bind_address, address)})
        others = [holder for holder in holders if holder != record.get('container')]
        if others:
            errors.add(variable, f"{what} is already in use by container '{others[0]}'; stop or remove that "
                                 f'container (docker rm -f {others[0]}), or set another host_port')
            continue
        if holders:
            continue   # published by the declaring container itself
        try:
            free = probe(bind_address, port, protocol)
        except OSError as exc:
            errors.add(variable, f'{what} cannot be bound on {bind_address}: {exc.strerror or exc}; set '
                                 'bind_address to 0.0.0.0 or to an address of this host')
            continue
        if not free:
            errors.add(variable, f'{what} is already in use by another program; free the port (ss -lntup shows who '
                                 'listens on it) or set another host_port')
    return list(errors)
