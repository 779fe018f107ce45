# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Filters over the resolved topology: resolve it once, then derive what tasks apply and check.

Each filter's documentation lives in its sidecar file (stack_model.yml ...).
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.dockerlab.ecommerce.plugins.module_utils._topology import model as topology
from ansible_collections.dockerlab.ecommerce.plugins.module_utils._topology.targets import containers_target


def stack_model(services_by_var, networks, volumes, images=None, refs=None, profile=None, stack_name='ecommerce',
                config_dir='/opt/dockerlab/ecommerce', healthcheck=None, container_log=None, entrypoint=None,
                left_out=None, security=None, resources=None):
    """The resolved topology (see module_utils/_topology/model.py): one record per container."""
    try:
        return topology.resolve(services_by_var, networks, volumes, images=images, refs=refs, profile=profile,
                                stack_name=stack_name, config_dir=config_dir, healthcheck_defaults=healthcheck,
                                container_log=container_log, entrypoint=entrypoint, left_out=left_out,
                                security_defaults=security, resources_overrides=resources)
    except topology.TopologyError as exc:
        raise AnsibleFilterError(str(exc)) from None


def stack_target(model, tier=None, components=None, exclude=None, config_hashes=None, missing_paths=None,
                 host_containers=None):
    """What the containers target applies for one tier: ``{create, steps, skipped, wait, left_out_mounts}``."""
    return containers_target(model, tier=tier, components=components, exclude=exclude, config_hashes=config_hashes,
                             missing_paths=missing_paths, host_containers=host_containers)


def stack_tier_files(model, tier, components=None, exclude=None):
    """The config files and secrets of one tier's deployed components (optionally some of them)."""
    return [entry for entry in model['files']
            if (tier is None or entry['tier'] == tier) and (components is None or entry['component'] in components)
            and entry['component'] not in (exclude or ())]


def upstream_servers(model, component, weights=None, weights_var='weights'):
    """The containers of ``component`` as load-balancer upstream servers: ``[{host, port, weight}]``
    in replica order, the port being the first one it exposes. ``weights`` gives each replica's
    weight by position (missing ones are 1); a weight that is not a whole number of at least 1,
    or more weights than containers, is an error naming ``weights_var``."""
    records = topology.by_component(model).get(component, [])
    weights = list(weights or [])
    servers = []
    for position, record in enumerate(records):
        weight = weights[position] if position < len(weights) else 1
        if isinstance(weight, bool) or not str(weight).isdigit() or int(weight) < 1:
            raise AnsibleFilterError(
                f"{weights_var}: weight {weight!r} for {record['name']} (position {position + 1}) must be a whole "
                'number of at least 1')
        if not record['expose']:
            raise AnsibleFilterError(f"{record['variable']}: list the port it serves in expose, so the load "
                                     'balancer knows where to send requests')
        servers.append({'host': record['name'], 'port': record['expose'][0], 'weight': int(weight)})
    if len(weights) > len(records):
        raise AnsibleFilterError(
            f'{weights_var}: {len(weights)} weights are given for {len(records)} {component} containers; give one '
            'weight per container')
    return servers


def _listed(value):
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _extra_flows(model, extra_flows, flows_var):
    """The user's own flows, one per pair of ends, keeping those whose two ends are deployed
    (a flow to MongoDB means nothing offline); an end that is no service at all, or a port
    that is no port, is an error naming the entry."""
    deployed = set(topology.by_component(model))
    known = deployed | {entry['component'] for entry in model['skipped']} | set(model.get('disabled') or [])
    flows = []
    for position, flow in enumerate(extra_flows or []):
        where = f'{flows_var}[{position}]'
        if not isinstance(flow, dict) or not all(key in flow for key in ('from', 'to', 'port')):
            raise AnsibleFilterError(f'{where}: {flow!r} must be a mapping with from, to and port, e.g. '
                                     '{from: [api-gateway], to: user-service, port: 3001}')
        port = topology.parse_port(flow['port'])
        if port is None:
            raise AnsibleFilterError(f"{where}: port {flow['port']!r} is not a port number (1-65535)")
        ends = _listed(flow['from']) + _listed(flow['to'])
        unknown = [end for end in ends if end not in known]
        if unknown:
            raise AnsibleFilterError(f"{where}: {', '.join(map(repr, unknown))} is not a service of any tier; "
                                     f"use one of: {', '.join(sorted(known))}")
        flows.extend({'from': source, 'to': target, 'port': port}
                     for source in _listed(flow['from']) for target in _listed(flow['to'])
                     if source in deployed and target in deployed)
    return flows


def flow_policy(model, extra_flows=None, network_peers=False, flows_var='stack_flows'):
    """Who may connect to whom: the edges the services declare (``connects_to``), the user's
    own ``extra_flows`` (``{from, to, port}``, ``from``/``to`` may be lists) whose two ends are
    deployed, and with ``network_peers`` what the declared networks allow anyway."""
    policy = topology.flows(model) + _extra_flows(model, extra_flows, flows_var)
    if network_peers:
        policy.extend(topology.network_peer_flows(model))
    unique = {(flow['from'], flow['to'], flow['port']) for flow in policy}
    return [{'from': source, 'to': target, 'port': port} for source, target, port in sorted(unique)]


def scrape_jobs(model):
    """Prometheus' scrape jobs: one per service with ``metrics``, every replica a target."""
    return topology.scrape_jobs(model)


class FilterModule:
    """dockerlab.ecommerce filters over the resolved topology."""

    def filters(self):
        return {
            'stack_model': stack_model,
            'stack_target': stack_target,
            'stack_tier_files': stack_tier_files,
            'upstream_servers': upstream_servers,
            'flow_policy': flow_policy,
            'scrape_jobs': scrape_jobs,
        }
