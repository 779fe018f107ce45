# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The resolved topology: one record per container, from the tiers' services dicts.

This is the only place where ``enabled``, ``profiles``, ``replicas``, ``expose``, ports,
image components and edges are interpreted. Everything that needs to know what runs
where (the deploy target, upstream servers, scrape jobs, flows, stack_health's derived
checks, topology_report's declared side, topology_precheck) reads what resolve() returns.
Plain Python: no Ansible and no Docker import, so filters and modules share it.

resolve() returns ``{'profile', 'containers', 'skipped', 'files', 'checks', 'disabled'}``:

``containers``: one record per replica, in start order (``order``, then name)::

    name         container name (<container_name>-N for replicas > 1)
    dns_name     the name every replica answers to: the service's container_name
    component    the service's key (mysql-db); tier: its tier (data); variable: data_services['mysql-db']
    replica      1..N, or None for a single container; replicas: N
    image        the image reference; image_component: the tier image it comes from (or None)
    command, user, hostname, env (str -> str), labels (dockerlab.stack, dockerlab.component)
    networks     [{key, name, aliases, ipv4_address?}]  (a replicated service's container_name is an alias;
                 a service's ipv4_address list gives replica N its Nth address)
    ports        published: [{host_port (int or None), container_port, bind_address, protocol}]
    mounts       [{type: volume|bind, source, target, read_only, optional?}] (config files, dirs, secrets
                 included; optional: a host path the target leaves out where the host lacks it)
    healthcheck  Docker's healthcheck (stack defaults laid under the service's), or None
    resources    {memory, memory_reservation, cpus, pids} where the service (or stack_resources) sets them
    security     {cap_drop, cap_add, capabilities (name: why), no_new_privileges, read_only, tmpfs (path:
                 options), non_root, why}: the service's hardening over the stack's (hardening.py)
    reload       {check, command} for services that reload their config in place, or None
    log          {driver, options}: how Docker ships its output
    order        start order (lower first)
    expose       the ports it serves (ints, sorted)
    metrics      {job, port, path} when Prometheus scrapes it, else None
    connects_to  [{service, port}]: whom it opens connections to (deployed targets only)
    probe        what stack_health checks inside it ({kind, port, path?, ...}), or None

``skipped``: ``[{tier, component, name, reason}]``: services the image profile leaves out.
``files``: the config files and secrets of the deployed components (see _component_files).
``checks``: the extra validation checks the services declare (``validate``), each with its component.
``disabled``: the keys of the services with ``enabled: false``.

A service names whom it connects to (``connects_to: [{service: user-service}]``, port
defaulting to every port the target exposes), what metrics it serves (``metrics: {path}``,
port defaulting to its first exposed port) and what validation probes (``probe``,
``validate``). ``scrapes_metrics: true`` (Prometheus) connects to every service with metrics.
A port is written once, in the service that serves it; every edge derives from it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping

from ansible_collections.dockerlab.ecommerce.plugins.module_utils._topology.hardening import resources_of, security_of
from ansible_collections.dockerlab.ecommerce.plugins.module_utils._topology.values import resolve_address

# The image profiles a component runs in unless its image entry says otherwise.
DEFAULT_PROFILES = ('upstream', 'offline')
PROFILES = DEFAULT_PROFILES

DEFAULT_BIND_ADDRESS = '0.0.0.0'
DEFAULT_PROTOCOL = 'tcp'
DEFAULT_ORDER = 50
DEFAULT_METRICS_PATH = '/metrics'
DEFAULT_LOG = {'driver': 'json-file', 'options': {}}
SERVICES_SUFFIX = '_services'

_INT_RE = re.compile(r'^[+-]?[0-9]+$')
_TRUE_STRINGS = ('true', 'yes', 'on', '1')
_FALSE_STRINGS = ('false', 'no', 'off', '0')


class TopologyError(ValueError):
    """Data the model cannot resolve; the message names the variable and how to fix it."""


# ---------------------------------------------------------------------------
# parsing: the one definition of each field's meaning
# ---------------------------------------------------------------------------

def sorted_keys(mapping):
    """Keys of a mapping in a stable order, whatever their types."""
    return sorted(mapping, key=lambda k: (not isinstance(k, str), str(k)))


def service_variable(var, key):
    """Variable path of one service, e.g. ``data_services['mysql-db']``."""
    return f'{var}[{str(key)!r}]'


def tier_of(var):
    """``data`` for ``data_services``."""
    return var[:-len(SERVICES_SUFFIX)] if str(var).endswith(SERVICES_SUFFIX) else str(var)


def as_int(value):
    """An int from an int or a string of digits; None for anything else (bools included)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _INT_RE.match(value.strip()):
        return int(value.strip())
    return None


def as_bool(value):
    """Ansible-style boolean; raises ValueError when the value is not one."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE_STRINGS:
            return True
        if lowered in _FALSE_STRINGS:
            return False
    raise ValueError(value)


def is_enabled(service):
    """``enabled`` of a service (default true). An invalid value counts as enabled here;
    validation reports it."""
    value = service.get('enabled', True)
    if value is None:
        return True
    try:
        return as_bool(value)
    except ValueError:
        return True


def replica_count(service):
    """Number of containers of a service (default 1); an invalid value counts as 1 (validation reports it)."""
    value = service.get('replicas', 1)
    if value is None:
        return 1
    count = as_int(value)
    if count is None or count < 0:
        return 1
    return count


def container_names(service):
    """The containers' names: ``container_name`` alone, or ``-1`` .. ``-N`` for replicas > 1."""
    base = service.get('container_name')
    if not isinstance(base, str) or not base.strip():
        return []
    count = replica_count(service)
    if count == 1:
        return [(base, None)]
    return [(f'{base}-{index}', index) for index in range(1, count + 1)]


def parse_port(value):
    """``3001`` from 3001, '3001' or '3001/tcp'; None when it is not a port number."""
    number = as_int(str(value).split('/', maxsplit=1)[0]) if value is not None else None
    return number if number is not None and 1 <= number <= 65535 else None


def normalize_address(value):
    """Compressed text form of an IP address; the text itself when it is not one (validation reports it)."""
    text = str(value).strip()
    try:
        return ipaddress.ip_address(text).compressed
    except ValueError:
        return text


def exposed_ports(service):
    """The ports a service serves (``expose``), as sorted ints; invalid entries are left out."""
    ports = {parse_port(port) for port in service.get('expose') or []}
    return sorted(port for port in ports if port is not None)


def image_profiles(image_spec):
    """The image profiles a component's image entry runs in."""
    profiles = (image_spec or {}).get('profiles')
    return list(profiles) if profiles else list(DEFAULT_PROFILES)


def image_action(component, image_spec, profile):
    """How ``profile`` gets a component's image: ``(action, reason)`` with action pull, build
    (a recipe, or an upstream_recipe on the official image) or none (with the reason)."""
    spec = image_spec or {}
    if profile not in image_profiles(spec):
        reason = f'{component} is not used in the {profile} profile'
    elif profile == 'upstream' and spec.get('upstream') and spec.get('upstream_recipe'):
        return 'build', None
    elif profile == 'upstream' and spec.get('upstream'):
        return 'pull', None
    elif spec.get('recipe'):
        return 'build', None
    elif profile == 'offline' and spec.get('upstream'):
        reason = (f"{component} runs only in the upstream profile ({spec['upstream']}): it has no offline recipe "
                  '(Debian does not package it)')
    elif profile == 'offline':
        reason = f'{component} has no offline recipe'
    else:
        reason = f'{component} has no upstream image'
    if spec.get('skip_reason'):
        reason = f"{reason}: {' '.join(str(spec['skip_reason']).split())}"
    return 'none', reason


# ---------------------------------------------------------------------------
# resolution
# ---------------------------------------------------------------------------

def _network_entries(service, networks, where, name, replicated, replica=None):
    entries = []
    base = service.get('container_name')
    for entry in service.get('networks') or []:
        if isinstance(entry, str):
            entry = {'network': entry}
        key = entry.get('network')
        definition = networks.get(key) if isinstance(networks, Mapping) else None
        if not isinstance(definition, Mapping) or not definition.get('name'):
            raise TopologyError(f'{where}.networks: {name} uses network {key!r}, which stack_networks does not '
                                'declare; declare it there or use one of: ' + ', '.join(sorted_keys(networks or {})))
        aliases = [str(alias) for alias in entry.get('aliases') or []]
        # Replicas answer together to the course's name (user-service resolves to every one).
        if replicated and base not in aliases:
            aliases.append(base)
        resolved = {'key': key, 'name': definition['name'], 'aliases': aliases}
        address = entry.get('ipv4_address')
        if isinstance(address, list):
            # one fixed address per replica; those past the list get a dynamic one (ip_range)
            position = (replica or 1) - 1
            address = address[position] if position < len(address) else None
        if address not in (None, ''):
            try:
                resolved['ipv4_address'] = resolve_address(address, definition.get('subnet'))
            except (ValueError, IndexError, TypeError):
                # A host number on a subnet that cannot hold it: the precheck names the subnet
                # (the model is resolved before it, for the roles' argument specs).
                pass
        entries.append(resolved)
    return entries


def _published(service):
    ports = []
    for entry in service.get('ports') or []:
        host_port = entry.get('host_port')
        ports.append({
            'host_port': None if host_port in (None, '') else as_int(host_port),
            'container_port': as_int(entry.get('container_port')),
            'bind_address': normalize_address(entry.get('bind_address') or DEFAULT_BIND_ADDRESS),
            'protocol': str(entry.get('protocol') or DEFAULT_PROTOCOL).strip().lower(),
        })
    return ports


def _mounts(key, service, volumes, config_dir, where, name):
    mounts = []
    for vol in service.get('volumes') or []:
        read_only = bool(vol.get('read_only', False))
        if vol.get('volume') is not None:
            if vol['volume'] not in (volumes or {}):
                raise TopologyError(f"{where}.volumes: {name} uses volume {vol['volume']!r}, which stack_volumes "
                                    'does not declare; declare it there')
            source = volumes[vol['volume']]
            source = source.get('name') if isinstance(source, Mapping) else source
            mounts.append({'type': 'volume', 'source': source, 'target': vol['target'], 'read_only': read_only})
        else:
            mount = {'type': 'bind', 'source': vol['source'], 'target': vol['target'], 'read_only': read_only}
            if vol.get('optional'):
                mount['optional'] = True   # left out by the target where the host has no such path
            mounts.append(mount)
    for item in service.get('config_files') or []:
        if item.get('target'):
            mounts.append({'type': 'bind', 'source': f"{config_dir}/{key}/{item['dest']}",
                           'target': item['target'], 'read_only': True})
    # Whole directories: a file rewritten in place (new inode) shows in the container, which
    # a reloadable service (nginx) needs; a single-file mount would keep the old one.
    for item in service.get('config_dirs') or []:
        mounts.append({'type': 'bind', 'source': f"{config_dir}/{key}/{item['dest']}",
                       'target': item['target'], 'read_only': True})
    for item in service.get('secrets') or []:
        mounts.append({'type': 'bind', 'source': f"{config_dir}/{key}/secrets/{item['name']}",
                       'target': item['target'], 'read_only': True})
    return mounts


def _component_files(tier, key, service, config_dir, where):
    """The config files and secrets of one component, each with its path on the Docker host,
    so the caller can render it and hash it into the component's config-hash label. Only
    the name of the variable (or template) holding a secret travels here, never its value."""
    files = []
    for item in service.get('config_files') or []:
        source = {'template': item['src']} if item.get('src') else {'file': item['file']}
        files.append(dict(source, tier=tier, component=key, kind='config', path=f"{config_dir}/{key}/{item['dest']}",
                          owner=str(item.get('owner', 'root')), mode=item.get('mode', '0644')))
    for item in service.get('secrets') or []:
        if bool(item.get('var')) == bool(item.get('template')):
            raise TopologyError(f"{where}.secrets: secret {item.get('name')!r} needs exactly one of 'var' (a variable "
                                "holding the secret) or 'template' (a template that renders it)")
        source = {'var': item['var']} if item.get('var') else {'template': item['template']}
        files.append(dict(source, tier=tier, component=key, kind='secret', secret=True,
                          path=f"{config_dir}/{key}/secrets/{item['name']}",
                          owner=str(item.get('owner', 'root')), mode=item.get('mode', '0400')))
    return files


def _metrics(key, service, expose, where):
    metrics = service.get('metrics')
    if not metrics:
        return None
    if metrics is True:
        metrics = {}
    if not isinstance(metrics, Mapping):
        raise TopologyError(f'{where}.metrics: {metrics!r} is neither true nor a mapping; write metrics: true, or '
                            'metrics: {port: 9100, path: /metrics, job: node}')
    port = parse_port(metrics.get('port')) if metrics.get('port') is not None else (expose[0] if expose else None)
    if port is None:
        raise TopologyError(f'{where}.metrics: give the port its metrics are served on (metrics.port), or list '
                            'it in expose')
    return {'job': str(metrics.get('job') or key), 'port': port, 'path': str(metrics.get('path') or DEFAULT_METRICS_PATH)}


def _probe(service, expose):
    probe = service.get('probe')
    if not isinstance(probe, Mapping) or not probe.get('kind'):
        return None
    resolved = dict(probe)
    port = parse_port(probe.get('port')) if probe.get('port') is not None else None
    resolved['port'] = port or (expose[0] if expose else None)
    if resolved['port'] is None:
        resolved.pop('port')
    return resolved


def _validate_check(check, component, entrypoint):
    """A check a service declares; a ``path`` is a URL under the stack's entrypoint."""
    resolved = dict(check, component=component)
    if 'path' in resolved and 'url' not in resolved:
        resolved['url'] = f"{str(entrypoint or 'http://127.0.0.1').rstrip('/')}{resolved.pop('path')}"
    return resolved


def _image(key, service, images, refs, profile, where):
    """``(reference, component, skip reason)`` of a service's image."""
    component = service.get('image_component')
    if component is None:
        return service.get('image'), None, None
    spec = images.get(component)
    if spec is None:
        raise TopologyError(f'{where}.image_component: {component!r} is not an image of any tier '
                            f"(<tier>_images); use one of: {', '.join(sorted(images))}")
    reason = None
    if profile is not None:
        action, reason = image_action(component, spec, profile)
        if action != 'none':
            reason = None
    ref = service.get('image') or refs.get(component) or spec.get('upstream')
    return ref, component, reason


def resolve(services_by_var, networks, volumes=None, images=None, refs=None, profile=None, stack_name='ecommerce',
            config_dir='/opt/dockerlab/ecommerce', healthcheck_defaults=None, container_log=None, entrypoint=None,
            left_out=None, security_defaults=None, resources_overrides=None):
    """Resolve the tiers' services into container records (see the module's docstring).

    ``services_by_var``: ``{'<tier>_services': {key: service}}``, in the tiers' order.
    ``images``: every tier's image entries merged (``{component: {upstream, recipe, profiles, ...}}``);
    ``refs``: the references the images role settled (``images_refs``); ``profile``: the image
    profile, or None to keep every service (the precheck, before the profile is known).
    ``entrypoint``: the stack's URL (the load balancer's), which a ``validate`` check's ``path`` is under.
    ``left_out``: image component to the reason the images role left it out (a silent source,
    ``images_left_out``); its services are skipped with that reason.
    ``security_defaults``: the stack's hardening (``stack_security``) laid under each service's
    ``security``; ``resources_overrides``: ``stack_resources``, by component, laid over each
    service's ``resources`` (see hardening.py).
    Raises TopologyError on data that validation (validate_topology) would have refused.
    """
    if profile is not None and profile not in PROFILES:
        raise TopologyError(f"images_profile: {profile!r} is not an image profile; use one of {', '.join(PROFILES)}")
    images = images or {}
    refs = refs or {}
    containers, skipped, files, checks, disabled = [], [], [], [], []
    for var in list(services_by_var or {}):
        tier = tier_of(var)
        services = services_by_var[var] or {}
        for key in sorted_keys(services):
            service = services[key] or {}
            if not is_enabled(service):
                disabled.append(key)
                continue
            where = service_variable(var, key)
            names = container_names(service)
            image, component, reason = _image(key, service, images, refs, profile, where)
            if not reason and profile is not None and component in (left_out or {}):
                reason = left_out[component]
            if not names:
                continue   # replicas: 0 runs nothing, renders nothing and checks nothing
            if reason:
                skipped.extend({'tier': tier, 'component': key, 'name': name, 'reason': reason} for name, _replica in names)
                continue
            files.extend(_component_files(tier, key, service, config_dir, where))
            checks.extend(_validate_check(check, key, entrypoint) for check in service.get('validate') or [])
            expose = exposed_ports(service)
            log = service.get('log') or container_log or DEFAULT_LOG
            healthcheck = service.get('healthcheck')
            shared = {
                'component': key, 'tier': tier, 'variable': where, 'replicas': len(names),
                'dns_name': service['container_name'],
                'image': image, 'image_component': component,
                'command': service.get('command'), 'user': service.get('user'),
                'env': {str(k): str(v) for k, v in (service.get('env') or {}).items()},
                'ports': _published(service),
                'mounts': _mounts(key, service, volumes, config_dir, where, key),
                'healthcheck': dict(healthcheck_defaults or {}, **healthcheck) if healthcheck else None,
                'resources': resources_of(key, service, resources_overrides),
                'security': security_of(service, security_defaults),
                'reload': service.get('reload') or None,
                'log': {'driver': log.get('driver') or 'json-file',
                        'options': {str(k): str(v) for k, v in (log.get('options') or {}).items()}},
                'order': DEFAULT_ORDER if as_int(service.get('order')) is None else as_int(service['order']),
                'expose': expose,
                'metrics': _metrics(key, service, expose, where),
                'connects_to': list(service.get('connects_to') or []),
                'scrapes_metrics': bool(service.get('scrapes_metrics', False)),
                'probe': _probe(service, expose),
            }
            for name, replica in names:
                record = dict(shared, name=name, replica=replica, hostname=name,
                              networks=_network_entries(service, networks, where, name, len(names) > 1, replica),
                              labels={'dockerlab.stack': stack_name, 'dockerlab.component': key})
                containers.append(record)
    known = {key for var in services_by_var or {} for key in (services_by_var[var] or {})}
    # A tier that is not part of the play (an empty dict) may hold an edge's target.
    complete = all(services_by_var[var] for var in services_by_var or {})
    _resolve_edges(containers, known, complete)
    containers.sort(key=lambda record: (record['order'], record['name']))
    return {'profile': profile, 'containers': containers, 'skipped': skipped, 'files': files, 'checks': checks,
            'disabled': disabled}


def _resolve_edges(containers, known, complete=True):
    """Fill each record's ``connects_to`` with ports: a target's exposed ports unless the edge
    names one; edges to a service that is not deployed are dropped (MongoDB offline), and an
    edge to a service no tier declares is an error (a misspelt name) when every tier is there."""
    served = {}
    metrics = {}
    for record in containers:
        served.setdefault(record['component'], record['expose'])
        if record['metrics']:
            metrics.setdefault(record['component'], record['metrics']['port'])
    for record in containers:
        edges = set()
        for edge in record['connects_to']:
            if isinstance(edge, str):
                edge = {'service': edge}
            target = edge.get('service')
            if target not in known and complete:
                raise TopologyError(f"{record['variable']}.connects_to: {target!r} is not a service of any tier; "
                                    f"use one of: {', '.join(sorted(known))}")
            if target not in served:
                continue
            if edge.get('port') is not None:
                edges.add((target, parse_port(edge['port'])))
            else:
                edges.update((target, port) for port in served[target])
        if record.pop('scrapes_metrics'):
            edges.update(metrics.items())
        edges.discard((record['component'], None))
        record['connects_to'] = [{'service': service, 'port': port}
                                 for service, port in sorted(edges) if port is not None and service != record['component']]


# ---------------------------------------------------------------------------
# what the model derives
# ---------------------------------------------------------------------------

def by_component(model):
    """``{component: [records]}`` in replica order."""
    grouped = {}
    for record in sorted(model['containers'], key=lambda r: (r['replica'] or 0)):
        grouped.setdefault(record['component'], []).append(record)
    return grouped


def flows(model):
    """The flow policy the services declare: ``[{from, to, port}]``, one per component edge."""
    found = set()
    for record in model['containers']:
        for edge in record['connects_to']:
            found.add((record['component'], edge['service'], edge['port']))
    return [{'from': source, 'to': target, 'port': port} for source, target, port in sorted(found)]


def scrape_jobs(model):
    """Prometheus' scrape jobs: one per component with ``metrics``, every replica a target."""
    jobs = {}
    for component, records in sorted(by_component(model).items()):
        metrics = records[0]['metrics']
        if metrics:
            jobs.setdefault(metrics['job'], {'job': metrics['job'], 'metrics_path': metrics['path'], 'targets': []})
            jobs[metrics['job']]['targets'].extend(f"{r['name']}:{metrics['port']}" for r in records)
    return sorted(jobs.values(), key=lambda job: job['job'])


def network_peer_flows(model):
    """The flows the declared networks allow: every container may reach the exposed ports of
    every component it shares a network with (Docker cannot separate them inside a network)."""
    members = {}
    for record in model['containers']:
        members.setdefault(record['component'], ({n['key'] for n in record['networks']}, record['expose']))
    peers = []
    for source in sorted(members):
        for target in sorted(members):
            if members[source][0] & members[target][0]:
                peers.extend({'from': source, 'to': target, 'port': port} for port in members[target][1])
    return peers


def published_ports(model):
    """Published host ports with a host port: ``[{variable, component, container, host_port,
    container_port, bind_address, protocol}]`` (``variable`` is the host_port's path)."""
    records = []
    for record in model['containers']:
        for position, port in enumerate(record['ports']):
            if port['host_port'] is None:
                continue
            records.append(dict(port, variable=f"{record['variable']}.ports[{position}].host_port",
                                component=record['component'], container=record['name']))
    return records
