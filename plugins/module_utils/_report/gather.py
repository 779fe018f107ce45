# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The stack as the Docker API sees it: gather() inspects it, container_record() and
network_record() turn inspect data into the report's canonical (sorted, id- and time-free) records."""

from __future__ import annotations

from collections.abc import Mapping

from ansible_collections.dockerlab.ecommerce.plugins.module_utils.docker_client import is_not_found
from ansible_collections.dockerlab.ecommerce.plugins.module_utils._report.common import ip_key, parallel
from ansible_collections.dockerlab.ecommerce.plugins.module_utils._topology.hardening import actual_hardening

STACK_LABEL = 'dockerlab.stack'
COMPONENT_LABEL = 'dockerlab.component'


def _inspect_or_none(inspect, ident):
    try:
        return inspect(ident)
    except Exception as exc:  # noqa: BLE001 pylint: disable=broad-except
        if is_not_found(exc):
            return None
        raise


def declared_network_names(networks):
    """``{docker network name: key}`` of the declared networks."""
    names = {}
    for key, definition in sorted((networks or {}).items(), key=lambda kv: str(kv[0])):
        if isinstance(definition, Mapping) and isinstance(definition.get('name'), str):
            names[definition['name']] = key
    return names


def gather(api, stack_name, container_names=(), network_names=(), volume_names=(), workers=16):
    """Raw inspect data: ``{'networks': [...], 'containers': [...], 'volumes': [...], 'image_users': {id: USER}}``.

    ``api`` is a docker.APIClient (``client.api``).  Objects labelled ``dockerlab.stack=<stack_name>``
    plus the declared names; each network and container is inspected (the list calls leave out
    members and details), in parallel.
    """
    label = f'{STACK_LABEL}={stack_name}'
    network_ids = {n['Id'] for n in api.networks(filters={'label': label})}
    wanted_networks = set(network_names)
    if wanted_networks:
        for network in api.networks(names=sorted(wanted_networks)):
            if network.get('Name') in wanted_networks:
                network_ids.add(network['Id'])
    container_ids = {c['Id'] for c in api.containers(all=True, filters={'label': label})}
    idents = sorted(container_ids) + sorted(set(container_names))
    inspected = parallel(lambda ident: _inspect_or_none(api.inspect_container, ident), idents, workers)
    containers = {}
    for info in inspected:
        if info:
            containers[info['Id']] = info
    # the USER of the images of containers that set none: what they run as
    image_ids = sorted({info.get('Image') for info in containers.values()
                        if info.get('Image') and not (info.get('Config') or {}).get('User')})
    images = parallel(lambda ident: _inspect_or_none(api.inspect_image, ident), image_ids, workers)
    image_users = {ident: ((image or {}).get('Config') or {}).get('User') or '' for ident, image in zip(image_ids, images)}
    networks = parallel(lambda ident: _inspect_or_none(api.inspect_network, ident), sorted(network_ids), workers)
    volume_list = (api.volumes(filters={'label': label}) or {}).get('Volumes') or []
    volumes = {v['Name']: v for v in volume_list}
    for name in sorted(set(volume_names) - set(volumes)):
        info = _inspect_or_none(api.inspect_volume, name)
        if info:
            volumes[name] = info
    return {'networks': [n for n in networks if n], 'containers': list(containers.values()),
            'volumes': list(volumes.values()), 'image_users': image_users}


def _container_name(info):
    return str(info.get('Name') or '').lstrip('/')


def _ports_of(info):
    """Published ports ``[{container_port, protocol, host_ip, host_port}]`` (runtime bindings when running)."""
    running = bool((info.get('State') or {}).get('Running'))
    bindings = ((info.get('NetworkSettings') or {}).get('Ports') if running else None) \
        or (info.get('HostConfig') or {}).get('PortBindings') or {}
    ports = set()
    for spec, entries in bindings.items():
        if not entries:
            continue
        number, _sep, protocol = spec.partition('/')
        for entry in entries:
            host_port = str(entry.get('HostPort') or '')
            if not host_port.isdigit():
                continue
            host_ip = entry.get('HostIp') or '0.0.0.0'
            ports.add((int(number), protocol or 'tcp', host_ip, int(host_port)))
    return [{'container_port': c, 'protocol': p, 'host_ip': ip, 'host_port': h}
            for c, p, ip, h in sorted(ports, key=lambda t: (t[3], t[1], t[0], ip_key(t[2])))]


def _mounts_of(info):
    mounts = []
    for mount in info.get('Mounts') or []:
        kind = mount.get('Type') or 'volume'
        source = mount.get('Name') if kind == 'volume' else mount.get('Source')
        mounts.append({'type': kind, 'source': source or '', 'destination': mount.get('Destination') or '',
                       'read_only': not mount.get('RW', True)})
    return sorted(mounts, key=lambda m: (m['destination'], m['source']))


def container_record(info, declared_by_name, network_keys, image_users=None):
    """The report's record of an inspected container; ``declared_by_name`` maps container names
    to the model's records, ``network_keys`` Docker network names to their keys, ``image_users``
    image ids to their USER (what a container that sets none runs as)."""
    name = _container_name(info)
    state = info.get('State') or {}
    labels = (info.get('Config') or {}).get('Labels') or {}
    declared = declared_by_name.get(name)
    short_id = str(info.get('Id') or '')[:12]
    networks = []
    for net_name, settings in sorted(((info.get('NetworkSettings') or {}).get('Networks') or {}).items()):
        aliases = sorted({a for a in (settings.get('Aliases') or []) if a not in (name, short_id)})
        networks.append({'name': net_name, 'key': network_keys.get(net_name),
                         'ipv4_address': settings.get('IPAddress') or None, 'aliases': aliases})
    health = (state.get('Health') or {}).get('Status') or 'none'
    return {
        'name': name,
        'service': declared['component'] if declared else labels.get(COMPONENT_LABEL),
        'declared': declared is not None,
        'present': True,
        'state': state.get('Status') or 'unknown',
        'running': bool(state.get('Running')),
        'exit_code': state.get('ExitCode'),
        'health': health,
        'restart_count': info.get('RestartCount', 0),
        'image': (info.get('Config') or {}).get('Image') or '',
        'networks': networks,
        'ports': _ports_of(info),
        'mounts': _mounts_of(info),
        'hardening': actual_hardening(info, (image_users or {}).get(info.get('Image'), '')),
    }


def network_record(info, network_keys):
    name = info.get('Name')
    configs = (info.get('IPAM') or {}).get('Config') or []
    members = []
    for _cid, member in sorted((info.get('Containers') or {}).items()):
        address = str(member.get('IPv4Address') or '').split('/', maxsplit=1)[0] or None
        members.append({'container': member.get('Name'), 'ipv4_address': address})
    return {
        'name': name,
        'key': network_keys.get(name),
        'declared': name in network_keys,
        'present': True,
        'driver': info.get('Driver'),
        'internal': bool(info.get('Internal')),
        'subnets': sorted({c['Subnet'] for c in configs if c.get('Subnet')}),
        'gateways': sorted({c['Gateway'] for c in configs if c.get('Gateway')}),
        'members': sorted(members, key=lambda m: str(m['container'])),
    }
