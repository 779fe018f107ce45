# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Static checks of the topology data, before anything is resolved or created.

The data is ``stack_networks`` (network key -> definition), ``stack_volumes`` (volume key
-> Docker volume name) and one services dict per tier (``data_services`` ...). Errors are
dicts ``{'variable': <exact variable path>, 'message': <sentence>}``; every message says
what is wrong (with the offending value) and how to fix it. Iteration is sorted, so the
same data gives the same errors in the same order. The fields' meanings (enabled,
replicas, ports ...) come from the model (model.py), so a value validated here is read the
same way when it is resolved.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
from collections.abc import Mapping

from ansible_collections.dockerlab.ecommerce.plugins.module_utils._topology.values import (
    Errors,
    binds_collide,
    choices,
    describe,
    host_number,
    index,
    is_blank,
    parse_address,
    parse_subnet,
    show,
)
from ansible_collections.dockerlab.ecommerce.plugins.module_utils._topology.hardening import (
    check_resources,
    check_security,
)
from ansible_collections.dockerlab.ecommerce.plugins.module_utils._topology.model import (
    DEFAULT_BIND_ADDRESS,
    DEFAULT_PROTOCOL,
    as_bool,
    as_int,
    container_names,
    service_variable,
    sorted_keys,
)

DEFAULT_NETWORKS_VAR = 'stack_networks'
DEFAULT_VOLUMES_VAR = 'stack_volumes'

PROTOCOLS = ('tcp', 'udp', 'sctp')

# Names of the checks validate_topology() performs, in the order it performs them.
TOPOLOGY_CHECKS = (
    'network_definitions',
    'subnets',
    'subnet_overlaps',
    'volume_definitions',
    'required_fields',
    'container_names',
    'network_references',
    'ipv4_addresses',
    'host_ports',
    'volume_references',
    'resources',
    'hardening',
)


# What Docker accepts as a container name.
_CONTAINER_NAME_RE = re.compile(r'^[a-zA-Z0-9][a-zA-Z0-9_.-]+$')
_NO_NETWORKS = '(no networks are declared yet)'


def _network_label(networks_var, key, info):
    label = f'{networks_var}{index(key)}'
    if info.get('name'):
        label += f" ({info['name']})"
    return label


def _usable_range(net, gateway):
    """First and last address a container may get in a network (for hints)."""
    if net.num_addresses < 4:
        return net[0], net[-1]
    low = net[1]
    if gateway is None or gateway == net[1]:
        low = net[2]
    return low, net[-2]


def _check_networks(networks, networks_var, errors):
    """Validate the network definitions; return key -> {'name', 'net', 'gateway', 'has_subnet', 'ip_range'}."""
    info_by_key = {}
    if networks is None:
        return info_by_key
    if not isinstance(networks, Mapping):
        errors.add(networks_var, f'is {describe(networks)}, but must be a mapping of network key to definition, '
                                 'e.g. frontend: {name: ecommerce-frontend, subnet: 172.20.0.0/16}')
        return info_by_key

    names_seen = {}
    for key in sorted_keys(networks):
        path = f'{networks_var}{index(key)}'
        definition = networks[key]
        info = {'name': None, 'net': None, 'gateway': None, 'has_subnet': False, 'ip_range': None}
        info_by_key[key] = info
        if not isinstance(definition, Mapping):
            errors.add(path, f'is {describe(definition)}, but must be a mapping with name and subnet, '
                             f'e.g. {{name: ecommerce-{key}, subnet: 172.30.0.0/16}}')
            continue

        name = definition.get('name')
        if is_blank(name):
            errors.add(f'{path}.name', f'is missing; set it to the Docker network name, e.g. name: ecommerce-{key}')
        elif not isinstance(name, str):
            errors.add(f'{path}.name', f'is {describe(name)}; set it to a string, the Docker network name')
        else:
            info['name'] = name
            if name in names_seen:
                errors.add(f'{path}.name',
                           f"'{name}' is also the name of {names_seen[name]}; give each network its own name")
            else:
                names_seen[name] = path

        subnet = definition.get('subnet')
        if not is_blank(subnet):
            info['has_subnet'] = True
            net, problem = parse_subnet(subnet)
            if problem:
                errors.add(f'{path}.subnet', problem)
            else:
                info['net'] = net

        gateway = definition.get('gateway')
        if not is_blank(gateway):
            address = parse_address(gateway)
            if address is None:
                errors.add(f'{path}.gateway', f'{show(gateway)} is not a valid IP address; write it like 172.30.0.1')
            elif info['net'] is not None and ipaddress.ip_address(address) not in info['net']:
                errors.add(f'{path}.gateway', f"{address} is outside {info['net'].with_prefixlen}, the subnet of this "
                                              'network; pick an address inside it')
            else:
                info['gateway'] = ipaddress.ip_address(address)

        # Docker hands out dynamic addresses from ip_range only, so a fixed address kept
        # outside it can never be taken by a container that started first.
        ip_range = definition.get('ip_range')
        if not is_blank(ip_range):
            pool, problem = parse_subnet(ip_range)
            if problem:
                errors.add(f'{path}.ip_range', problem.replace('set subnet:', 'set ip_range:'))
            elif info['net'] is None:
                if not info['has_subnet']:
                    errors.add(f'{path}.ip_range', f'{pool.with_prefixlen} needs a subnet to lie in; add a subnet '
                                                   'to this network or remove ip_range')
            elif pool.version != info['net'].version or not pool.subnet_of(info['net']):
                errors.add(f'{path}.ip_range', f"{pool.with_prefixlen} is not inside {info['net'].with_prefixlen}, "
                                               'the subnet of this network; pick a range inside it, e.g. its '
                                               'upper half')
            else:
                info['ip_range'] = pool

    # overlapping subnets, each pair once, reported on the later key
    keys = [k for k in sorted_keys(networks) if info_by_key[k]['net'] is not None]
    for later_pos, later in enumerate(keys):
        later_net = info_by_key[later]['net']
        for earlier in keys[:later_pos]:
            earlier_net = info_by_key[earlier]['net']
            if earlier_net.version == later_net.version and earlier_net.overlaps(later_net):
                earlier_label = _network_label(networks_var, earlier, info_by_key[earlier])
                errors.add(f'{networks_var}{index(later)}.subnet',
                           f'{later_net.with_prefixlen} overlaps {earlier_net.with_prefixlen}, the subnet of '
                           f'{earlier_label}; give each network its own non-overlapping subnet')
    return info_by_key


def _check_volumes(volumes, volumes_var, errors):
    """Validate the volume declarations; return the declared keys."""
    if volumes is None:
        return set()
    if not isinstance(volumes, Mapping):
        errors.add(volumes_var, f'is {describe(volumes)}, but must be a mapping of volume key to Docker volume '
                                'name, e.g. db_data: ecommerce-db-data')
        return set()
    for key in sorted_keys(volumes):
        value = volumes[key]
        name = value.get('name') if isinstance(value, Mapping) else value
        if not isinstance(name, str) or not name.strip():
            example = str(key).replace('_', '-')
            errors.add(f'{volumes_var}{index(key)}',
                       f'is {describe(value)}; set it to the Docker volume name, e.g. {key}: ecommerce-{example}')
    return set(volumes)


class _State:
    """What earlier services claimed, to find clashes with later ones."""

    def __init__(self, networks_var, volumes_var, network_info, volume_keys):
        self.networks_var = networks_var
        self.volumes_var = volumes_var
        self.network_info = network_info
        self.volume_keys = volume_keys
        self.container_names = {}   # name -> (service path, description)
        self.addresses = {}         # (network key, address) -> variable path
        self.ports = []             # (bind address, port, protocol, variable path)
        self.resources = {}         # stack_resources
        self.security = {}          # stack_security


def _check_service(var, key, service, state, errors):
    path = service_variable(var, key)
    if not isinstance(service, Mapping):
        errors.add(path, f'is {describe(service)}, but must be a mapping with at least container_name and image_component (or image)')
        return

    enabled = service.get('enabled', True)
    if enabled is not None:
        try:
            enabled = as_bool(enabled)
        except ValueError:
            errors.add(f'{path}.enabled', f'{show(enabled)} is not a boolean; set enabled to true or false')
            enabled = True
    if enabled is False:
        return

    # required fields
    name = service.get('container_name')
    name_ok = False
    if is_blank(name):
        errors.add(f'{path}.container_name', f'is missing; every enabled service needs one, e.g. container_name: {key}')
    elif not isinstance(name, str):
        errors.add(f'{path}.container_name', f'is {describe(name)}; set it to a string such as {key}')
    elif not _CONTAINER_NAME_RE.match(name):
        errors.add(f'{path}.container_name',
                   f"'{name}' is not a valid container name; use at least 2 characters from letters, digits, '_', "
                   "'.' and '-', starting with a letter or digit")
    else:
        name_ok = True

    image = service.get('image')
    if is_blank(image) and is_blank(service.get('image_component')):
        errors.add(f'{path}.image', 'is missing; every enabled service needs the image to run: name the image '
                                    'component of its tier (image_component: nginx) or a reference (image: nginx:1.27)')
    elif not is_blank(image) and not isinstance(image, str):
        errors.add(f'{path}.image', f'is {describe(image)}; set it to an image reference string such as nginx:1.27')

    # Where a profile or skip reason is decided: on the image entry, never on the service.
    for moved in ('profiles', 'skip_reason'):
        if moved in service:
            errors.add(f'{path}.{moved}', f'is not read on a service: the image profiles a component runs in, and '
                                          f'why it is left out, are set on its image entry (<tier>_images.<component>.'
                                          f'{moved}); move it there and name the component with image_component')

    replicas = 1
    raw_replicas = service.get('replicas')
    if raw_replicas is not None:
        count = as_int(raw_replicas)
        if count is None or count < 0:
            errors.add(f'{path}.replicas',
                       f'{show(raw_replicas)} is not a whole number of containers; set replicas to 1 or more '
                       '(0 runs none), or set enabled: false to leave the service out')
        else:
            replicas = count

    # container names, unique across all tiers after replica expansion
    if name_ok:
        expanded = [(container, f"'{container}'" if replica is None else
                     f"'{container}' (replica {replica} of {replicas})")
                    for container, replica in container_names({'container_name': name, 'replicas': replicas})]
        for container_name, description in expanded:
            if container_name in state.container_names:
                other_path, other_description = state.container_names[container_name]
                errors.add(f'{path}.container_name',
                           f'container {description} clashes with container {other_description} of {other_path}; '
                           'container names must be unique across all tiers, so rename one of them')
            else:
                state.container_names[container_name] = (path, description)

    _check_service_networks(path, service, replicas, state, errors)
    _check_service_ports(path, service, replicas, state, errors)
    _check_service_volumes(path, service, state, errors)
    check_resources(key, service, path, state.resources, errors)
    check_security(key, service, path, state.security, errors)


def _check_service_networks(path, service, replicas, state, errors):
    networks_var = state.networks_var
    entries = service.get('networks')
    if entries is None:
        return
    if not isinstance(entries, list):
        errors.add(f'{path}.networks',
                   f'is {describe(entries)}, but must be a list of entries like {{network: backend}}')
        return
    declared = state.network_info
    if declared:
        fix = f'declare it in {networks_var} or use one of: {choices(declared)}'
    else:
        fix = f'declare it in {networks_var} {_NO_NETWORKS}'
    key_choices = choices(declared) or _NO_NETWORKS

    listed = {}
    for position, entry in enumerate(entries):
        entry_path = f'{path}.networks[{position}]'
        if isinstance(entry, str):
            entry = {'network': entry}
        if not isinstance(entry, Mapping):
            errors.add(entry_path,
                       f'is {describe(entry)}, but must be a mapping like {{network: backend, aliases: [api]}}')
            continue
        network_key = entry.get('network')
        if is_blank(network_key):
            errors.add(f'{entry_path}.network', f'is missing; set it to a key of {networks_var}: {key_choices}')
            continue
        if not isinstance(network_key, (str, int)) or isinstance(network_key, bool):
            errors.add(f'{entry_path}.network',
                       f'is {describe(network_key)}; set it to a key of {networks_var}: {key_choices}')
            continue
        known = network_key in declared
        if not known:
            errors.add(f'{entry_path}.network', f'{show(network_key)} is not declared in {networks_var}; {fix}')
        if network_key in listed:
            errors.add(f'{entry_path}.network',
                       f'{show(network_key)} is already listed at {listed[network_key]}; list each network once '
                       'per service (put extra aliases on that entry)')
        else:
            listed[network_key] = entry_path

        address = entry.get('ipv4_address')
        if is_blank(address):
            continue
        if isinstance(address, list):
            # one address per replica, in replica order; replicas past the list get dynamic ones
            if len(address) > max(replicas, 1):
                errors.add(f'{entry_path}.ipv4_address',
                           f'lists {len(address)} addresses for {replicas} replica(s); list at most one per replica')
            for position, each in enumerate(address[:max(replicas, 1)]):
                _check_address(f'{entry_path}.ipv4_address[{position}]', each, network_key if known else None, 1,
                               state, errors, enabled=replicas > 0)
            continue
        _check_address(f'{entry_path}.ipv4_address', address, network_key if known else None, replicas, state,
                       errors)


def _parse_ipv4(value):
    """An IPv4Address, or None when the value is not one."""
    if not isinstance(value, str):
        return None
    try:
        return ipaddress.IPv4Address(value.strip())
    except ValueError:
        return None


def _check_address(address_path, address, network_key, replicas, state, errors, enabled=True):
    number = host_number(address)
    ip = address if number is not None else _parse_ipv4(address)
    if ip is None:
        errors.add(address_path, f'{show(address)} is not a valid IPv4 address; write it like 172.22.0.10, or as '
                                 'the host number within the subnet (10 for 172.22.0.10 in 172.22.0.0/16)')
        return
    if network_key is None:
        return   # the undeclared network is reported already
    info = state.network_info[network_key]
    label = _network_label(state.networks_var, network_key, info)
    net = info['net']
    if net is None:
        if not info['has_subnet']:
            errors.add(address_path, f'{ip} needs a subnet on {label}, which declares none; add a subnet to that '
                                     'network or remove ipv4_address')
        return   # an invalid subnet is reported already
    subnet = net.with_prefixlen
    if net.version != 4:
        errors.add(address_path, f'{ip} cannot be used on {label}, whose subnet {subnet} is IPv6; use a network '
                                 'with an IPv4 subnet or remove ipv4_address')
        return
    if number is not None:
        if not 0 < number < net.num_addresses - 1:
            errors.add(address_path, f'host number {number} is outside {subnet}, the subnet of {label}, which has '
                                     f'hosts 1 to {net.num_addresses - 2}; pick one of those')
            return
        ip = net[number]
    gateway = info['gateway']
    if gateway is None and net.num_addresses >= 4:
        gateway = net[1]   # Docker's default gateway: the first host address
    low, high = _usable_range(net, info['gateway'])
    hint = f'pick an unused address from {low} to {high}'
    if ip not in net:
        errors.add(address_path, f'{ip} is outside {subnet}, the subnet of {label}; {hint}')
        return
    if net.num_addresses >= 4 and ip in (net.network_address, net.broadcast_address):
        which = 'network' if ip == net.network_address else 'broadcast'
        errors.add(address_path, f'{ip} is the {which} address of {subnet} (the subnet of {label}) and cannot be '
                                 f'given to a container; {hint}')
        return
    if gateway is not None and ip == gateway:
        errors.add(address_path, f'{ip} is the gateway of {subnet} (the subnet of {label}), which Docker keeps for '
                                 f'the bridge; {hint}')
        return
    if info.get('ip_range') is not None and ip in info['ip_range']:
        errors.add(address_path, f"{ip} is inside {info['ip_range'].with_prefixlen}, the ip_range of {label} from "
                                 'which Docker hands out dynamic addresses, so another container could take it '
                                 'first; pick an address outside that range')
        return
    if replicas > 1:
        errors.add(address_path, f'{ip} would be given to each of the {replicas} replicas of this service, but an '
                                 'address can belong to only one container; list one address per replica '
                                 f'(ipv4_address: [{ip}, ...]) or remove ipv4_address')
        return
    if replicas < 1 or not enabled:
        return
    claim = (network_key, str(ip))
    if claim in state.addresses:
        errors.add(address_path, f'{ip} is already given to {state.addresses[claim]} on {label}; give each '
                                 'container its own address')
    else:
        state.addresses[claim] = address_path


def _check_port_entry(entry_path, entry, errors):
    """Check the fields of one ports entry; return (protocol, bind address), None where invalid."""
    container_port = entry.get('container_port')
    if is_blank(container_port):
        errors.add(f'{entry_path}.container_port', 'is missing; set the port the service listens on inside the '
                                                   'container, e.g. container_port: 80')
    else:
        number = as_int(container_port)
        if number is None or not 1 <= number <= 65535:
            errors.add(f'{entry_path}.container_port',
                       f'{show(container_port)} is not a port number; use a whole number from 1 to 65535')

    protocol = entry.get('protocol')
    protocol = DEFAULT_PROTOCOL if protocol is None else protocol
    if not isinstance(protocol, str) or protocol.strip().lower() not in PROTOCOLS:
        errors.add(f'{entry_path}.protocol',
                   f'{show(protocol)} is not a protocol Docker can publish; use tcp, udp or sctp')
        protocol = None
    else:
        protocol = protocol.strip().lower()

    bind_raw = entry.get('bind_address')
    bind_raw = DEFAULT_BIND_ADDRESS if bind_raw is None else bind_raw
    bind_address = parse_address(bind_raw)
    if bind_address is None:
        errors.add(f'{entry_path}.bind_address',
                   f'{show(bind_raw)} is not an IP address; use an address of the Docker host such as 127.0.0.1, '
                   'or 0.0.0.0 for all of its addresses')
    return protocol, bind_address


def _check_service_ports(path, service, replicas, state, errors):
    entries = service.get('ports')
    if entries is None:
        return
    if not isinstance(entries, list):
        errors.add(f'{path}.ports', f'is {describe(entries)}, but must be a list of entries like '
                                    '{host_port: 8080, container_port: 80}')
        return
    for position, entry in enumerate(entries):
        entry_path = f'{path}.ports[{position}]'
        if not isinstance(entry, Mapping):
            errors.add(entry_path, f'is {describe(entry)}, but must be a mapping like '
                                   '{host_port: 8080, container_port: 80}')
            continue
        protocol, bind_address = _check_port_entry(entry_path, entry, errors)

        host_raw = entry.get('host_port')
        if is_blank(host_raw):
            continue   # not published
        host_port = as_int(host_raw)
        host_path = f'{entry_path}.host_port'
        if host_port is None:
            errors.add(host_path, f'{show(host_raw)} is not a whole number; set a host port from 1 to 65535 '
                                  '(or leave host_port out to keep the port unpublished)')
            continue
        if not 1 <= host_port <= 65535:
            errors.add(host_path, f'{host_port} is outside the valid range 1-65535; set a host port from 1 to 65535')
            continue
        if protocol is None or bind_address is None:
            continue
        if replicas > 1:
            errors.add(host_path, f'host port {host_port}/{protocol} would be published by each of the {replicas} '
                                  'replicas of this service, but only one container can hold it; remove host_port '
                                  '(reach the replicas through the load balancer) or set replicas to 1')
            continue
        if replicas < 1:
            continue
        for other_bind, other_port, other_protocol, other_path in state.ports:
            if other_port == host_port and other_protocol == protocol and binds_collide(bind_address, other_bind):
                errors.add(host_path, f'host port {host_port}/{protocol} on {bind_address} is already published by '
                                      f'{other_path} (on {other_bind}); give each published port its own '
                                      'host_port, or bind them to different addresses')
                break
        else:
            state.ports.append((bind_address, host_port, protocol, host_path))


def _check_service_volumes(path, service, state, errors):
    entries = service.get('volumes')
    if entries is None:
        return
    volumes_var = state.volumes_var
    if not isinstance(entries, list):
        errors.add(f'{path}.volumes', f'is {describe(entries)}, but must be a list of entries like '
                                      '{volume: db_data, target: /data}')
        return
    if state.volume_keys:
        fix = f'declare it in {volumes_var} or use one of: {choices(state.volume_keys)}'
    else:
        fix = f'declare it in {volumes_var} (no volumes are declared yet)'
    targets = {}
    for position, entry in enumerate(entries):
        entry_path = f'{path}.volumes[{position}]'
        if not isinstance(entry, Mapping):
            errors.add(entry_path, f'is {describe(entry)}, but must be a mapping like '
                                   '{volume: db_data, target: /data} or {source: /srv/data, target: /data}')
            continue
        volume = entry.get('volume')
        source = entry.get('source')
        if not is_blank(volume) and not is_blank(source):
            errors.add(entry_path, f'sets both volume ({show(volume)}) and source ({show(source)}); use volume '
                                   'for a named volume or source for a bind mount, not both')
        elif not is_blank(volume):
            if not isinstance(volume, (str, int)) or isinstance(volume, bool) or volume not in state.volume_keys:
                errors.add(f'{entry_path}.volume', f'{show(volume)} is not declared in {volumes_var}; {fix}')
        elif not is_blank(source):
            if not isinstance(source, str) or not source.startswith('/'):
                errors.add(f'{entry_path}.source', f'{show(source)} is not an absolute path; a bind mount needs an '
                                                   'absolute host path such as /srv/ecommerce/config')
        else:
            volume_choices = choices(state.volume_keys) or 'none declared yet'
            errors.add(entry_path, f'has neither volume nor source; set volume to a key of {volumes_var} '
                                   f'({volume_choices}) or source to an absolute host path')

        target = entry.get('target')
        if is_blank(target):
            errors.add(f'{entry_path}.target',
                       'is missing; set the absolute path inside the container, e.g. target: /data')
        elif not isinstance(target, str) or not target.startswith('/'):
            errors.add(f'{entry_path}.target',
                       f'{show(target)} is not an absolute path; write the path inside the container like /data')
        else:
            normalized = posixpath.normpath(target)
            if normalized in targets:
                errors.add(f'{entry_path}.target',
                           f"'{target}' is already mounted by {targets[normalized]}; mount one volume per target")
            else:
                targets[normalized] = entry_path


def validate_topology(networks, volumes, services_by_var,
                      networks_var=DEFAULT_NETWORKS_VAR, volumes_var=DEFAULT_VOLUMES_VAR, resources=None, security=None):
    """Check the topology data without looking at any host.

    ``networks`` is ``stack_networks`` (key -> {name, subnet, internal, gateway?}),
    ``volumes`` is ``stack_volumes`` (key -> volume name) and ``services_by_var`` maps each
    services variable name to its dict.  ``networks_var`` and ``volumes_var`` are the
    variable names used in messages; ``resources`` (``stack_resources``) and ``security``
    (``stack_security``) are laid over and under each service's own (hardening.py).  Returns a list of ``{'variable', 'message'}`` dicts,
    empty when the topology is sound.
    """
    errors = Errors()
    network_info = _check_networks(networks, networks_var, errors)
    volume_keys = _check_volumes(volumes, volumes_var, errors)
    state = _State(networks_var, volumes_var, network_info, volume_keys)
    state.resources = resources if isinstance(resources, Mapping) else {}
    state.security = security if isinstance(security, Mapping) else {}

    if services_by_var is None:
        return list(errors)
    if not isinstance(services_by_var, Mapping):
        errors.add('services', f'is {describe(services_by_var)}, but must be a mapping of variable name to '
                               'services dict, e.g. {data_services: {...}}')
        return list(errors)
    for var in sorted_keys(services_by_var):
        services = services_by_var[var]
        if services is None:
            continue
        if not isinstance(services, Mapping):
            errors.add(str(var),
                       f'is {describe(services)}, but must be a mapping of component id to service definition')
            continue
        for key in sorted_keys(services):
            _check_service(var, key, services[key], state, errors)
    return list(errors)


def format_error_report(errors):
    """The message modules fail with: a count line, then ``- <variable>: <message>`` per error."""
    lines = [f'The topology has {len(errors)} problem(s); nothing was changed:']
    lines.extend(f"- {error['variable']}: {error['message']}" for error in errors)
    return '\n'.join(lines)
