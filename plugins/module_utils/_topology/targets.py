# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Targets: what one engine needs, made from the model's records (model.py).

``containers`` (one Docker host): the arguments of community.docker.docker_container.
A second engine (Docker Swarm: docker_swarm_service) adds its function here, beside this
one, without touching the model.
"""

from __future__ import annotations

from ansible_collections.dockerlab.ecommerce.plugins.module_utils._topology.hardening import NO_NEW_PRIVILEGES

CONFIG_HASH_LABEL = 'dockerlab.config-hash'
LIMIT_OPTIONS = ('name', 'memory', 'memory_swap', 'memory_reservation', 'cpus', 'pids_limit')


def published_port_spec(port):
    """``bind:host:container/protocol`` (``bind::container/protocol`` for a random host port)."""
    host = '' if port['host_port'] is None else port['host_port']
    bind = f"[{port['bind_address']}]" if ':' in port['bind_address'] else port['bind_address']
    return f"{bind}:{host}:{port['container_port']}/{port['protocol']}"


def _mounts(record, missing_paths):
    """The record's mounts as docker_container takes them, without the optional host paths
    the Docker host lacks (``missing_paths``), and those left out."""
    kept, left_out = [], []
    for mount in record['mounts']:
        if mount.get('optional') and mount['source'] in missing_paths:
            left_out.append({'name': record['name'], 'source': mount['source'], 'target': mount['target']})
            continue
        kept.append({key: value for key, value in mount.items() if key != 'optional'})
    return kept, left_out


def docker_container_args(record, config_hash=None, missing_paths=()):
    """docker_container's arguments for one record. ``config_hash`` (of the component's
    rendered files) becomes a label, so a config change recreates the container; a
    reloadable service takes its config changes with a reload instead, so it gets no label.
    ``missing_paths``: host paths the Docker host lacks; optional mounts of them are left out."""
    labels = dict(record['labels'])
    if config_hash and not record['reload']:
        labels[CONFIG_HASH_LABEL] = config_hash
    resources = record['resources']
    security = record['security']
    args = {
        'name': record['name'],
        'image': record['image'],
        'command': record['command'],
        'hostname': record['hostname'],
        'user': record['user'],
        'env': record['env'],
        'labels': labels,
        'networks': [dict({'name': net['name'], 'aliases': net['aliases']},
                          **({'ipv4_address': net['ipv4_address']} if net.get('ipv4_address') else {}))
                     for net in record['networks']],
        'network_mode': record['networks'][0]['name'] if record['networks'] else 'none',
        'published_ports': [published_port_spec(port) for port in record['ports']],
        'mounts': _mounts(record, missing_paths)[0],
        'healthcheck': record['healthcheck'],
        'log_driver': record['log']['driver'],
        'log_options': record['log']['options'],
        'memory': resources.get('memory'),
        # no swap beyond the limit: the limit is what the container gets, and Docker's default
        # (swap = twice the memory) would make a later in-place raise of memory fail
        'memory_swap': resources.get('memory'),
        'memory_reservation': resources.get('memory_reservation'),
        'cpus': resources.get('cpus'),
        'pids_limit': resources.get('pids'),
        'cap_drop': security['cap_drop'],
        'capabilities': security['cap_add'],
        'security_opts': [NO_NEW_PRIVILEGES] if security['no_new_privileges'] else [],
        'read_only': security['read_only'],
        'tmpfs': [f'{path}:{options}' if options else path for path, options in security['tmpfs'].items()],
    }
    return args


def _existing(host_containers):
    """``{name: {component, addresses}}`` of the stack's containers from a verbose
    docker_host_info listing (the fixed and current IPv4 addresses on every network)."""
    found = {}
    for container in host_containers or []:
        names = [name.lstrip('/') for name in container.get('Names') or []]
        if not names:
            continue
        addresses = set()
        for network in ((container.get('NetworkSettings') or {}).get('Networks') or {}).values():
            network = network or {}
            for address in (network.get('IPAddress'), (network.get('IPAMConfig') or {}).get('IPv4Address')):
                if address:
                    addresses.add(address)
        found[names[0]] = {'component': (container.get('Labels') or {}).get('dockerlab.component'),
                           'addresses': addresses}
    return found


def rollout_steps(model, records, create, host_containers=None):
    """The order in which a tier's containers are applied: one step per slot (replica N of
    every service of the tier together; single containers in the last slot, after every
    replica they may proxy to exists: nginx resolves its upstreams when it starts), so while slot N is
    replaced the other slots serve. A container of the tier that is no longer wanted (scaled
    down, or renamed by a change of replicas between 1 and more) is removed: just before the
    step that needs one of its fixed addresses (and such steps go last, after the new
    replicas that need nothing are healthy), else after every step.

    Each step: ``{'slot', 'create': [args], 'remove': [names], 'single': [names of
    single-instance containers], 'reload_after': [{name, component, reload}]}`` (create in start
    order within the slot): the containers (any tier) whose ``reload`` says
    ``resolves_at_reload`` (nginx resolves its upstream names only then) and whose edges lead
    to a component of the step, reloaded after it to reach the replaced containers' addresses
    (none after a step that removed containers: a config naming them would be refused). The
    last step, that only removes (``slot`` None), comes after the tier's config reloads."""
    existing = _existing(host_containers)
    components = {record['component'] for record in records}
    wanted = {args['name'] for args in create}
    stale = {name: entry for name, entry in existing.items()
             if entry['component'] in components and name not in wanted}
    last = max([record['replica'] or 1 for record in records] or [1])
    by_slot = {}
    for record, args in zip(records, create):
        by_slot.setdefault(record['replica'] or last, []).append((record, args))
    steps, conflicted = [], []
    for slot in sorted(by_slot):
        pairs = by_slot[slot]
        fixed = {net['ipv4_address'] for record, _args in pairs for net in record['networks'] if net.get('ipv4_address')}
        remove = sorted(name for name, entry in stale.items() if entry['addresses'] & fixed)
        for name in remove:
            stale.pop(name)
        step_components = sorted({record['component'] for record, _args in pairs})
        step = {
            'slot': slot,
            'create': [args for _record, args in pairs],
            'remove': remove,
            # single instances that run now: replacing one leaves a gap the deploy reports
            'single': [record['name'] for record, _args in pairs if record['replicas'] == 1 and record['name'] in existing],
            # not after a step that removed a container: the dependent's config may still name it
            # (nginx -t fails on a name that no longer resolves); its own tier renders it anew
            'reload_after': [] if remove else [
                {'name': other['name'], 'component': other['component'], 'reload': other['reload']}
                for other in model['containers']
                if (other['reload'] or {}).get('resolves_at_reload') and other['component'] not in step_components
                and any(edge['service'] in step_components for edge in other['connects_to'])],
        }
        (conflicted if remove else steps).append(step)
    steps.extend(conflicted)
    if stale:
        steps.append({'slot': None, 'create': [], 'remove': sorted(stale), 'single': [], 'reload_after': []})
    return steps


def containers_target(model, tier=None, components=None, exclude=None, config_hashes=None, missing_paths=None,
                      host_containers=None):
    """The containers target for one tier (or every tier): ``{'create': [...], 'skipped': [...],
    'wait': [...], 'left_out_mounts': [...]}``. ``create`` holds docker_container's arguments per
    container, in start order, each with ``component`` and ``reload`` for the deploy's reload
    step, and ``limits``, its limits for container_limits; ``wait`` names the containers with a healthcheck. ``components``/``exclude`` pick part
    of a tier (a tier that deploys in several passes). ``missing_paths``: host paths the Docker
    host lacks; the optional mounts of them are left out and listed in ``left_out_mounts``."""
    def wanted(entry):
        return ((tier is None or entry['tier'] == tier)
                and (components is None or entry['component'] in components)
                and entry['component'] not in (exclude or ()))

    config_hashes = config_hashes or {}
    records = [record for record in model['containers'] if wanted(record)]
    missing_paths = set(missing_paths or ())
    create = [dict(docker_container_args(record, config_hashes.get(record['component']), missing_paths),
                   component=record['component'], reload=record['reload']) for record in records]
    for args in create:
        # what container_limits changes in place before docker_container runs
        args['limits'] = {key: args[key] for key in LIMIT_OPTIONS}
    return {
        'create': create,
        'steps': rollout_steps(model, records, create, host_containers),
        'skipped': [entry for entry in model['skipped'] if wanted(entry)],
        'wait': [record['name'] for record in records if record['healthcheck']],
        'left_out_mounts': [mount for record in records for mount in _mounts(record, missing_paths)[1]],
    }
