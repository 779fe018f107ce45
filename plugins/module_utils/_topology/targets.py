# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Targets: what one engine needs, made from the model's records (model.py).

``containers`` (one Docker host): the arguments of community.docker.docker_container.
A second engine (Docker Swarm: docker_swarm_service) adds its function here, beside this
one, without touching the model.
"""

from __future__ import annotations

CONFIG_HASH_LABEL = 'dockerlab.config-hash'


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
        'memory_reservation': resources.get('memory_reservation'),
        'cpus': resources.get('cpus'),
        'pids_limit': resources.get('pids'),
    }
    return args


def containers_target(model, tier=None, components=None, exclude=None, config_hashes=None, missing_paths=None):
    """The containers target for one tier (or every tier): ``{'create': [...], 'skipped': [...],
    'wait': [...], 'left_out_mounts': [...]}``. ``create`` holds docker_container's arguments per
    container, in start order, each with ``component`` and ``reload`` for the deploy's reload
    step; ``wait`` names the containers with a healthcheck. ``components``/``exclude`` pick part
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
    return {
        'create': create,
        'skipped': [entry for entry in model['skipped'] if wanted(entry)],
        'wait': [record['name'] for record in records if record['healthcheck']],
        'left_out_mounts': [mount for record in records for mount in _mounts(record, missing_paths)[1]],
    }
