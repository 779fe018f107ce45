# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The topology report: gathering from Docker, comparison with the declared topology, renderers.

* gather(): the stack's networks, containers and volumes from the Docker API, as the
  canonical (sorted, id- and time-free) records of the report;
* compare(): declared (services_by_var, networks, volumes, flows) against those records,
  giving violations ``{'kind', 'subject', 'message'}``;
* probe_reachability(): TCP connects from inside each running container to the ``expose``
  ports of the others (one docker exec per source container), as matrix cells;
* build_report(): the JSON report (``schema_version: 1``);
* render_markdown(), render_mermaid(), render_dot(): pure functions of the report.
"""

from __future__ import annotations

import concurrent.futures
import ipaddress
import json
import re
from collections.abc import Mapping

from ansible_collections.dockerlab.ecommerce.plugins.module_utils.topology import (
    WILDCARD_ADDRESSES,
    expand_containers,
    published_ports,
)

SCHEMA_VERSION = 1
STACK_LABEL = 'dockerlab.stack'
COMPONENT_LABEL = 'dockerlab.component'

VIOLATION_KINDS = (
    'missing_network', 'network_mismatch', 'unexpected_network',
    'missing_container', 'container_not_running', 'unexpected_container',
    'missing_attachment', 'extra_attachment',
    'unexpected_port', 'missing_port', 'port_bound_to_all_interfaces', 'port_bind_mismatch',
    'missing_volume', 'invalid_flow', 'unexpected_flow', 'unreachable_allowed',
)


def _violation(kind, subject, message):
    return {'kind': kind, 'subject': subject, 'message': message}


def _sort_violations(violations):
    return sorted(violations, key=lambda v: (v['subject'], v['kind'], v['message']))


def _is_wildcard(address):
    return address in ('', None) or address in WILDCARD_ADDRESSES


def _ip_key(address):
    try:
        parsed = ipaddress.ip_address(address)
        return (parsed.version, int(parsed), '')
    except ValueError:
        return (99, 0, str(address))


# ---------------------------------------------------------------------------
# gathering
# ---------------------------------------------------------------------------

def _parallel(function, items, workers=16):
    items = list(items)
    if not items:
        return []
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(workers, len(items)))) as pool:
        return list(pool.map(function, items))


def _not_found(exc):
    return getattr(getattr(exc, 'response', None), 'status_code', None) == 404 or \
        type(exc).__name__ == 'NotFound'


def _inspect_or_none(inspect, ident):
    try:
        return inspect(ident)
    except Exception as exc:  # noqa: BLE001 pylint: disable=broad-except
        if _not_found(exc):
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
    """Raw inspect data: ``{'networks': [...], 'containers': [...], 'volumes': [...]}``.

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
    inspected = _parallel(lambda ident: _inspect_or_none(api.inspect_container, ident), idents, workers)
    containers = {}
    for info in inspected:
        if info:
            containers[info['Id']] = info
    networks = _parallel(lambda ident: _inspect_or_none(api.inspect_network, ident), sorted(network_ids), workers)
    volume_list = (api.volumes(filters={'label': label}) or {}).get('Volumes') or []
    volumes = {v['Name']: v for v in volume_list}
    for name in sorted(set(volume_names) - set(volumes)):
        info = _inspect_or_none(api.inspect_volume, name)
        if info:
            volumes[name] = info
    return {'networks': [n for n in networks if n], 'containers': list(containers.values()),
            'volumes': list(volumes.values())}


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
            for c, p, ip, h in sorted(ports, key=lambda t: (t[3], t[1], t[0], _ip_key(t[2])))]


def _mounts_of(info):
    mounts = []
    for mount in info.get('Mounts') or []:
        kind = mount.get('Type') or 'volume'
        source = mount.get('Name') if kind == 'volume' else mount.get('Source')
        mounts.append({'type': kind, 'source': source or '', 'destination': mount.get('Destination') or '',
                       'read_only': not mount.get('RW', True)})
    return sorted(mounts, key=lambda m: (m['destination'], m['source']))


def container_record(info, declared_by_name, network_keys):
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
        'service': declared['key'] if declared else labels.get(COMPONENT_LABEL),
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


# ---------------------------------------------------------------------------
# comparison
# ---------------------------------------------------------------------------

def _canonical_net(value):
    try:
        return str(ipaddress.ip_network(str(value).strip(), strict=False))
    except ValueError:
        return str(value)


def _declared_containers(services_by_var):
    return {record['name']: record for record in expand_containers(services_by_var)}


def _expose_ports(service):
    ports = []
    for port in service.get('expose') or []:
        try:
            ports.append(int(str(port).split('/', maxsplit=1)[0]))
        except ValueError:
            continue
    return sorted(set(ports))


def compare(actual, services_by_var, networks, volumes=None, flows=None):
    """Violations of the actual records (``{'networks', 'containers', 'volumes'}``) against the declared data."""
    violations = []
    network_keys = declared_network_names(networks)
    declared = _declared_containers(services_by_var)
    actual_networks = {n['name']: n for n in actual['networks']}
    actual_containers = {c['name']: c for c in actual['containers']}

    for key, definition in sorted((networks or {}).items(), key=lambda kv: str(kv[0])):
        if not isinstance(definition, Mapping) or not definition.get('name'):
            continue
        name = definition['name']
        found = actual_networks.get(name)
        if found is None or not found.get('present', True):
            violations.append(_violation('missing_network', name,
                                         f'network {name} (stack_networks[{key!r}]) does not exist'))
            continue
        subnet = definition.get('subnet')
        if subnet and found['subnets'] and _canonical_net(subnet) not in [_canonical_net(s) for s in found['subnets']]:
            violations.append(_violation('network_mismatch', name,
                                         f"network {name} has subnet {', '.join(found['subnets'])}, "
                                         f'declared {subnet}'))
        internal = bool(definition.get('internal', False))
        if internal != found['internal']:
            violations.append(_violation('network_mismatch', name,
                                         f"network {name} is {'internal' if found['internal'] else 'not internal'}, "
                                         f"declared internal: {str(internal).lower()}"))
    for name, found in sorted(actual_networks.items()):
        if name not in network_keys:
            violations.append(_violation('unexpected_network', name,
                                         f'network {name} carries the stack label but is not in stack_networks'))

    declared_ports = {}
    for record in published_ports(services_by_var):
        declared_ports.setdefault(record['container'], []).append(record)

    for name, record in sorted(declared.items()):
        container = actual_containers.get(name)
        service = record['service']
        if container is None:
            violations.append(_violation('missing_container', name,
                                         f"container {name} ({record['var']}[{record['key']!r}]) does not exist"))
            continue
        if not container['running']:
            violations.append(_violation('container_not_running', name,
                                         f"container {name} is {container['state']} "
                                         f"(exit code {container['exit_code']}), not running"))
        want = set()
        for entry in service.get('networks') or []:
            key = entry.get('network') if isinstance(entry, Mapping) else entry
            definition = (networks or {}).get(key)
            if isinstance(definition, Mapping) and definition.get('name'):
                want.add(definition['name'])
        have = {n['name'] for n in container['networks']}
        for net in sorted(want - have):
            violations.append(_violation('missing_attachment', name,
                                         f'container {name} is not attached to network {net}, as declared'))
        for net in sorted(have - want):
            violations.append(_violation('extra_attachment', name,
                                         f'container {name} is attached to network {net}, which it does not declare'))
        violations.extend(_port_violations(name, container, service, declared_ports.get(name, [])))

    for name, container in sorted(actual_containers.items()):
        if name not in declared:
            violations.append(_violation('unexpected_container', name,
                                         f'container {name} carries the stack label but no service declares it'))

    for key, volume in sorted((volumes or {}).items(), key=lambda kv: str(kv[0])):
        if not any(v['name'] == volume and v.get('present', True) for v in actual.get('volumes') or []):
            violations.append(_violation('missing_volume', str(volume),
                                         f'volume {volume} (stack_volumes[{key!r}]) does not exist'))

    services = {record['key'] for record in declared.values()}
    for position, flow in enumerate(flows or []):
        problems = [f"{end} {flow.get(end)!r} is not a declared service" for end in ('from', 'to')
                    if flow.get(end) not in services]
        if not problems and not str(flow.get('port', '')).isdigit():
            problems.append(f"port {flow.get('port')!r} is not a port number")
        if problems:
            violations.append(_violation('invalid_flow', f'stack_flows[{position}]',
                                         f"stack_flows[{position}]: {'; '.join(problems)}"))
    return violations


def _port_violations(name, container, service, declared):
    violations = []
    random_ports = set()
    for entry in service.get('ports') or []:
        if isinstance(entry, Mapping) and entry.get('host_port') is None and entry.get('container_port'):
            random_ports.add((int(entry['container_port']), str(entry.get('protocol') or 'tcp').lower()))
    by_port = {}
    for port in container['ports']:
        by_port.setdefault((port['host_port'], port['protocol']), []).append(port)
    wanted = {(r['host_port'], r['protocol']): r for r in declared}
    for (host_port, protocol), bound in sorted(by_port.items()):
        record = wanted.get((host_port, protocol))
        addresses = sorted({p['host_ip'] for p in bound}, key=_ip_key)
        shown = ', '.join(addresses)
        if record is None:
            if (bound[0]['container_port'], protocol) in random_ports:
                continue
            violations.append(_violation('unexpected_port', name,
                                         f'container {name} publishes {host_port}/{protocol} on {shown} '
                                         f"(to {bound[0]['container_port']}/{protocol}), which is not declared"))
            continue
        if _is_wildcard(record['bind_address']):
            continue
        if any(_is_wildcard(a) for a in addresses):
            violations.append(_violation('port_bound_to_all_interfaces', name,
                                         f'container {name} publishes {host_port}/{protocol} on '
                                         f"{[a for a in addresses if _is_wildcard(a)][0]}: bound to all interfaces, "
                                         f"should be local (declared bind_address {record['bind_address']})"))
        elif record['bind_address'] not in addresses:
            violations.append(_violation('port_bind_mismatch', name,
                                         f'container {name} publishes {host_port}/{protocol} on {shown}, '
                                         f"declared bind_address {record['bind_address']}"))
    if container['running']:
        for (host_port, protocol), record in sorted(wanted.items()):
            if (host_port, protocol) not in by_port:
                violations.append(_violation('missing_port', name,
                                             f'container {name} does not publish {host_port}/{protocol} '
                                             f"on {record['bind_address']}, as declared"))
    return violations


# ---------------------------------------------------------------------------
# reachability
# ---------------------------------------------------------------------------

_REACH_PY = r'''
import os, socket, threading
t = float(os.environ['DL_T'])
out = []
def probe(target):
    h, p = target.rsplit(':', 1)
    try:
        socket.create_connection((h, int(p)), t).close()
        out.append(target + ' open')
    except Exception:
        out.append(target + ' closed')
threads = [threading.Thread(target=probe, args=(x,)) for x in os.environ['DL_TARGETS'].split()]
[th.start() for th in threads]
[th.join() for th in threads]
print('\n'.join(out))
'''

_REACH_BASH = r'''
for t in $DL_TARGETS; do
  ( if timeout "$DL_T" bash -c "exec 3<>/dev/tcp/${t%:*}/${t##*:}" 2>/dev/null; then echo "$t open"; else echo "$t closed"; fi ) &
done
wait
'''

_REACH_BUSYBOX = r'''
for t in $DL_TARGETS; do
  ( if busybox nc -z -w "${DL_T%.*}" "${t%:*}" "${t##*:}" 2>/dev/null; then echo "$t open"; else echo "$t closed"; fi ) &
done
wait
'''

_REACH_SH = r'''
if command -v python3 >/dev/null 2>&1; then exec python3 -c "$DL_PY"; fi
if command -v bash >/dev/null 2>&1 && command -v timeout >/dev/null 2>&1; then exec bash -c "$DL_BASH"; fi
if command -v busybox >/dev/null 2>&1; then exec sh -c "$DL_BB"; fi
echo "the container has none of python3, bash with timeout, or busybox (nc) to test connections" >&2
exit 127
'''


def parse_reach_output(text):
    """``{'address:port': True/False}`` from the probe script's output."""
    result = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[1] in ('open', 'closed'):
            result[fields[0]] = fields[1] == 'open'
    return result


def reach_plan(containers, services_by_var, flows):
    """``(sources, targets)``: running declared containers, and ``{name: (service, [addresses], [ports])}``."""
    declared = _declared_containers(services_by_var)
    flow_ports = {}
    for flow in flows or []:
        if str(flow.get('port', '')).isdigit():
            flow_ports.setdefault(flow.get('to'), set()).add(int(flow['port']))
    sources, targets = [], {}
    for container in containers:
        record = declared.get(container['name'])
        if record is None:
            continue
        if container['running']:
            sources.append(container['name'])
        ports = sorted(set(_expose_ports(record['service'])) | flow_ports.get(record['key'], set()))
        if ports:
            addresses = sorted({n['ipv4_address'] for n in container['networks'] if n['ipv4_address']}, key=_ip_key)
            targets[container['name']] = (record['key'], addresses if container['running'] else [], ports)
    return sorted(sources), targets


def probe_reachability(exec_fn, containers, services_by_var, flows, timeout=1.0, workers=16):
    """The reachability matrix: ``{'cells': [...], 'skipped': [...]}``.

    ``exec_fn(container, argv, environment)`` runs a command in a container and returns
    ``(exit_code, stdout_bytes, stderr_bytes)``.  One exec per source container tests all its
    connects concurrently (each bounded by ``timeout`` seconds).
    """
    declared = _declared_containers(services_by_var)
    allowed = {(f.get('from'), f.get('to'), int(f['port'])) for f in flows or [] if str(f.get('port', '')).isdigit()}
    sources, targets = reach_plan(containers, services_by_var, flows)
    skipped = []
    for container in sorted(containers, key=lambda c: c['name']):
        if container['name'] in declared and not container['running']:
            what = 'not running' if container.get('present', True) else 'missing'
            skipped.append({'container': container['name'], 'reason': f'{what}, so no connection was tried from it'})

    def run(source):
        endpoints = sorted({f'{address}:{port}' for target, (_svc, addresses, ports) in targets.items()
                            if target != source for address in addresses for port in ports})
        if not endpoints:
            return source, {}, None
        env = {'DL_T': f'{timeout:g}', 'DL_TARGETS': ' '.join(endpoints),
               'DL_PY': _REACH_PY, 'DL_BASH': _REACH_BASH, 'DL_BB': _REACH_BUSYBOX}
        try:
            code, out, err = exec_fn(source, ['sh', '-c', _REACH_SH], env)
        except Exception as exc:  # noqa: BLE001 pylint: disable=broad-except
            return source, None, str(exc).strip() or type(exc).__name__
        if code == 127:
            return source, None, err.decode('utf-8', 'replace').strip()
        return source, parse_reach_output(out.decode('utf-8', 'replace')), None

    cells = []
    for source, results, error in _parallel(run, sources, workers):
        if results is None:
            skipped.append({'container': source, 'reason': error})
            continue
        from_service = declared[source]['key']
        for target, (to_service, addresses, ports) in sorted(targets.items()):
            if target == source:
                continue
            for port in ports:
                via = [a for a in addresses if results.get(f'{a}:{port}')]
                expected = (from_service, to_service, port) in allowed
                observed = bool(via)
                cells.append({'from': source, 'from_service': from_service, 'to': target, 'to_service': to_service,
                              'port': port, 'expected': expected, 'observed': observed, 'via': via,
                              'violation': expected != observed})
    cells.sort(key=lambda c: (c['from'], c['to'], c['port']))
    skipped.sort(key=lambda s: s['container'])
    return {'timeout': timeout, 'cells': cells, 'skipped': skipped}


def reachability_violations(matrix, containers=()):
    running = {c['name']: c['running'] for c in containers}
    violations = []
    for cell in (matrix or {}).get('cells') or []:
        if not cell['violation']:
            continue
        flow = f"{cell['from']} -> {cell['to']}:{cell['port']}"
        if cell['observed']:
            violations.append(_violation('unexpected_flow', flow,
                                         f"flow {flow} is reachable but stack_flows does not allow it "
                                         f"({cell['from_service']} -> {cell['to_service']}:{cell['port']})"))
        else:
            why = '' if running.get(cell['to'], True) else f" ({cell['to']} is not running)"
            violations.append(_violation('unreachable_allowed', flow,
                                         f'flow {flow} is allowed by stack_flows but unreachable{why}'))
    return violations


# ---------------------------------------------------------------------------
# the report
# ---------------------------------------------------------------------------

def build_report(raw, stack_name, services_by_var, networks, volumes=None, flows=None, secrets_dir=None):
    """The canonical JSON report from gather()'s raw data (without reachability; see add_reachability())."""
    network_keys = declared_network_names(networks)
    declared = _declared_containers(services_by_var)
    containers = sorted((container_record(info, declared, network_keys) for info in raw['containers']),
                        key=lambda c: c['name'])
    present = {c['name'] for c in containers}
    for name, record in sorted(declared.items()):
        if name not in present:
            containers.append({'name': name, 'service': record['key'], 'declared': True, 'present': False,
                               'state': 'missing', 'running': False, 'exit_code': None, 'health': 'none',
                               'restart_count': 0, 'image': str(record['service'].get('image') or ''),
                               'networks': [], 'ports': [], 'mounts': []})
    containers.sort(key=lambda c: c['name'])

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
    nets.sort(key=lambda n: n['name'])

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

    report = {
        'schema_version': SCHEMA_VERSION,
        'stack_name': stack_name,
        'secrets_dir': secrets_dir,
        'networks': nets,
        'containers': containers,
        'volumes': sorted(vols.values(), key=lambda v: v['name']),
        'flows': sorted(({'from': f.get('from'), 'to': f.get('to'), 'port': f.get('port')} for f in flows or []),
                        key=lambda f: (str(f['from']), str(f['to']), str(f['port']))),
        'reachability': None,
    }
    actual = {'networks': [n for n in nets if n['present']], 'containers': [c for c in containers if c['present']],
              'volumes': [v for v in report['volumes'] if v['present']]}
    report['violations'] = _sort_violations(compare(actual, services_by_var, networks, volumes, flows))
    report['summary'] = _summary(report)
    return report


def add_reachability(report, matrix):
    """Put the reachability matrix and its violations into the report (in place) and return it."""
    report['reachability'] = matrix
    report['violations'] = _sort_violations(report['violations'] +
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


def render_json(report):
    return json.dumps(report, indent=2, sort_keys=True) + '\n'


# ---------------------------------------------------------------------------
# renderers (pure functions of the report)
# ---------------------------------------------------------------------------

def _md(text):
    return str(text).replace('|', '\\|')


def _published(report):
    """``[(container, port record)]`` of all published ports, sorted."""
    rows = []
    for container in report['containers']:
        for port in container['ports']:
            rows.append((container['name'], port))
    rows.sort(key=lambda r: (r[1]['host_port'], r[1]['protocol'], r[0], str(r[1]['host_ip'])))
    return rows


def _url(port):
    host = port['host_ip']
    if _is_wildcard(host):
        host = 'localhost'
    elif ':' in host:
        host = f'[{host}]'
    if port['protocol'] != 'tcp':
        return f"{port['protocol']}://{host}:{port['host_port']}"
    scheme = 'https' if port['container_port'] in (443, 8443) else 'http'
    return f"{scheme}://{host}:{port['host_port']}/"


def render_markdown(report):
    out = [f"# Stack {report['stack_name']}: access information", '']
    summary = report['summary']
    out.append(f"{summary['containers']} containers ({summary['running']} running) on {summary['networks']} "
               f"networks; {summary['violations']} violation(s).")
    out += ['', '## Published ports', '']
    rows = _published(report)
    if rows:
        out += ['| URL | Container | Bound on | Container port |', '| --- | --- | --- | --- |']
        for name, port in rows:
            bind = f"{port['host_ip']}:{port['host_port']}"
            if _is_wildcard(port['host_ip']):
                bind += ' (all interfaces)'
            out.append(f"| {_url(port)} | {_md(name)} | {bind} | {port['container_port']}/{port['protocol']} |")
    else:
        out.append('No container publishes a port.')
    out += ['', '## Credentials', '']
    if report.get('secrets_dir'):
        out.append(f"The credentials (database passwords and the like) are kept in `{report['secrets_dir']}` on the "
                   'Docker host, one file per secret. Read them there; they are not copied into this report.')
    else:
        out.append('No secrets directory was given; the credentials are not described here.')
    out += ['', '## Networks', '']
    for net in report['networks']:
        flags = []
        if net['key']:
            flags.append(f"key `{net['key']}`")
        flags.append(', '.join(net['subnets']) or 'no subnet')
        flags.append('internal' if net['internal'] else 'not internal')
        if not net['present']:
            flags.append('**missing**')
        out.append(f"### {net['name']}")
        out += ['', '; '.join(flags), '']
        if net['members']:
            out += ['| Container | Address | Aliases |', '| --- | --- | --- |']
            for member in net['members']:
                out.append(f"| {_md(member['container'])} | {member['ipv4_address'] or '-'} | "
                           f"{_md(', '.join(member['aliases'])) or '-'} |")
        else:
            out.append('No members.')
        out.append('')
    out += ['## Containers', '', '| Container | Service | State | Health | Networks | Image |',
            '| --- | --- | --- | --- | --- | --- |']
    for container in report['containers']:
        nets = ', '.join(f"{n['name']} ({n['ipv4_address'] or '-'})" for n in container['networks']) or '-'
        out.append(f"| {_md(container['name'])} | {_md(container['service'] or '-')} | {container['state']} | "
                   f"{container['health']} | {_md(nets)} | {_md(container['image'] or '-')} |")
    out += ['', '## Volumes', '']
    if report['volumes']:
        out += ['| Volume | Key | Present | Mounted by |', '| --- | --- | --- | --- |']
        for volume in report['volumes']:
            out.append(f"| {_md(volume['name'])} | {_md(volume['key'] or '-')} | "
                       f"{'yes' if volume['present'] else 'no'} | {_md(', '.join(volume['mounted_by']) or '-')} |")
    else:
        out.append('No volumes.')
    mounts = [(c['name'], m) for c in report['containers'] for m in c['mounts']]
    if mounts:
        out += ['', '| Container | Mount | Source | Mode |', '| --- | --- | --- | --- |']
        for name, mount in mounts:
            out.append(f"| {_md(name)} | {_md(mount['destination'])} | {mount['type']} {_md(mount['source'])} | "
                       f"{'ro' if mount['read_only'] else 'rw'} |")
    out += ['', '## Flows', '']
    if report['flows']:
        out += ['| From | To | Port |', '| --- | --- | --- |']
        for flow in report['flows']:
            out.append(f"| {_md(flow['from'])} | {_md(flow['to'])} | {flow['port']} |")
    else:
        out.append('No flows are declared.')
    matrix = report.get('reachability')
    if matrix:
        out += ['', '## Reachability', '',
                f"TCP connects from inside each running container (timeout {matrix['timeout']:g}s).", '',
                '| From | To | Port | Allowed | Reachable | Violation |', '| --- | --- | --- | --- | --- | --- |']
        for cell in matrix['cells']:
            out.append(f"| {_md(cell['from'])} | {_md(cell['to'])} | {cell['port']} | "
                       f"{'yes' if cell['expected'] else 'no'} | {'yes' if cell['observed'] else 'no'} | "
                       f"{'**yes**' if cell['violation'] else 'no'} |")
        for skipped in matrix['skipped']:
            out.append(f"\nNot tested from {skipped['container']}: {skipped['reason']}")
    out += ['', '## Violations', '']
    if report['violations']:
        for violation in report['violations']:
            out.append(f"- **{violation['kind']}** {_md(violation['subject'])}: {_md(violation['message'])}")
    else:
        out.append('None.')
    return '\n'.join(out) + '\n'


def _mermaid_id(prefix, name):
    return prefix + re.sub(r'[^A-Za-z0-9_]', '_', str(name))


def _mermaid_text(text):
    return str(text).replace('"', '#quot;')


def render_mermaid(report):
    out = ['%% topology of the stack ' + report['stack_name'] + ' (dockerlab.ecommerce.topology_report)',
           'graph LR', '  host(("Docker host"))']
    for net in report['networks']:
        label = f"{net['name']}<br/>{', '.join(net['subnets']) or 'no subnet'}"
        if net['internal']:
            label += '<br/>internal'
        out.append(f"  {_mermaid_id('net_', net['name'])}[(\"{_mermaid_text(label)}\")]")
    for container in report['containers']:
        label = f"{container['name']}<br/>{container['state']}"
        if container['health'] != 'none':
            label += f", {container['health']}"
        out.append(f"  {_mermaid_id('ctr_', container['name'])}[\"{_mermaid_text(label)}\"]")
    for container in report['containers']:
        for net in container['networks']:
            out.append(f"  {_mermaid_id('ctr_', container['name'])} ---|\"{net['ipv4_address'] or 'no address'}\"| "
                       f"{_mermaid_id('net_', net['name'])}")
    for name, port in _published(report):
        out.append(f"  host -->|\"{port['host_ip']}:{port['host_port']} to {port['container_port']}/"
                   f"{port['protocol']}\"| {_mermaid_id('ctr_', name)}")
    for cell in ((report.get('reachability') or {}).get('cells') or []):
        if cell['violation']:
            what = 'not allowed' if cell['observed'] else 'unreachable'
            out.append(f"  {_mermaid_id('ctr_', cell['from'])} -.->|\"{cell['port']} {what}\"| "
                       f"{_mermaid_id('ctr_', cell['to'])}")
    out.append('  classDef network fill:#dbeafe,stroke:#1d4ed8')
    out.append('  classDef stopped fill:#fee2e2,stroke:#b91c1c')
    if report['networks']:
        out.append('  class ' + ','.join(_mermaid_id('net_', n['name']) for n in report['networks']) + ' network')
    stopped = [c for c in report['containers'] if not c['running']]
    if stopped:
        out.append('  class ' + ','.join(_mermaid_id('ctr_', c['name']) for c in stopped) + ' stopped')
    return '\n'.join(out) + '\n'


def _dot(text):
    return '"' + str(text).replace('\\', '\\\\').replace('"', '\\"').replace('\n', '\\n') + '"'


def render_dot(report):
    out = [f"digraph {_dot(report['stack_name'])} {{",
           f"  graph [rankdir=LR, fontname=\"Helvetica\", label={_dot('stack ' + report['stack_name'])}];",
           '  node [fontname="Helvetica", fontsize=10];',
           '  edge [fontname="Helvetica", fontsize=9];',
           '  "host" [shape=house, label="Docker host"];']
    for net in report['networks']:
        label = f"{net['name']}\n{', '.join(net['subnets']) or 'no subnet'}"
        if net['internal']:
            label += '\ninternal'
        style = 'filled' if net['present'] else 'filled,dashed'
        out.append(f"  {_dot('net:' + net['name'])} [shape=ellipse, style={_dot(style)}, fillcolor=\"#dbeafe\", "
                   f"label={_dot(label)}];")
    for container in report['containers']:
        label = f"{container['name']}\n{container['state']}"
        if container['health'] != 'none':
            label += f", {container['health']}"
        color = '#dcfce7' if container['running'] else '#fee2e2'
        out.append(f"  {_dot('ctr:' + container['name'])} [shape=box, style=filled, fillcolor={_dot(color)}, "
                   f"label={_dot(label)}];")
    for container in report['containers']:
        for net in container['networks']:
            out.append(f"  {_dot('ctr:' + container['name'])} -> {_dot('net:' + net['name'])} "
                       f"[dir=none, label={_dot(net['ipv4_address'] or 'no address')}];")
    for name, port in _published(report):
        label = f"{port['host_ip']}:{port['host_port']} to {port['container_port']}/{port['protocol']}"
        out.append(f"  \"host\" -> {_dot('ctr:' + name)} [color=\"#b45309\", label={_dot(label)}];")
    for cell in ((report.get('reachability') or {}).get('cells') or []):
        if cell['violation']:
            what = 'not allowed' if cell['observed'] else 'unreachable'
            out.append(f"  {_dot('ctr:' + cell['from'])} -> {_dot('ctr:' + cell['to'])} "
                       f"[style=dashed, color=\"#b91c1c\", label={_dot(str(cell['port']) + ' ' + what)}];")
    out.append('}')
    return '\n'.join(out) + '\n'
