# Copyright: dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Turn a tier's services dict into the container specs the deploy tasks apply."""

from __future__ import annotations

import hashlib
import re

from ansible.errors import AnsibleFilterError

from ansible_collections.dockerlab.ecommerce.plugins.module_utils.topology import expand_containers


def _port_spec(port):
    bind = port.get("bind_address", "0.0.0.0")
    proto = port.get("protocol", "tcp")
    return "%s:%s:%s/%s" % (bind, port["host_port"], port["container_port"], proto)


def stack_containers(services, networks, volumes, stack_name, profile, config_dir, config_hashes=None,
                     healthcheck_defaults=None, container_log=None):
    """Expand ``services`` (one tier's ``<role>_services``) into container specs.

    Network and volume keys are resolved to the declared names, replicas are expanded,
    config files and secrets become read-only bind mounts from ``config_dir``, and a
    service whose ``profiles`` leave out ``profile`` is returned with ``skip`` set to the
    reason, so the caller can say why it is not deployed. A service's ``healthcheck`` is
    laid over ``healthcheck_defaults`` (interval, timeout, retries, start_period).
    ``container_log`` (``{driver, options}``, from the logging tier) is how Docker ships each
    container's output; a service's own ``log`` replaces it (the log collector itself).
    """
    if not isinstance(services, dict):
        raise AnsibleFilterError("stack_containers expects a services dict, got %s" % type(services).__name__)
    config_hashes = config_hashes or {}
    specs = []
    for record in expand_containers({"services": services}):
        key, svc = record["key"], record["service"]
        profiles = svc.get("profiles") or ["upstream", "offline"]
        skip = None
        if profile not in profiles:
            skip = svc.get("skip_reason") or (
                "%s runs only in the %s image profile" % (record["name"], " or ".join(profiles)))
        try:
            nets = [
                {
                    "name": networks[n["network"]]["name"],
                    "aliases": list(n.get("aliases") or []),
                    **({"ipv4_address": n["ipv4_address"]} if n.get("ipv4_address") else {}),
                }
                for n in svc.get("networks") or []
            ]
        except KeyError as exc:
            raise AnsibleFilterError(
                "%s uses network %s, which stack_networks does not declare" % (record["name"], exc))
        mounts = []
        for vol in svc.get("volumes") or []:
            if "volume" in vol:
                if vol["volume"] not in volumes:
                    raise AnsibleFilterError(
                        "%s uses volume %r, which stack_volumes does not declare" % (record["name"], vol["volume"]))
                mounts.append({"type": "volume", "source": volumes[vol["volume"]], "target": vol["target"],
                               "read_only": bool(vol.get("read_only", False))})
            else:
                mounts.append({"type": "bind", "source": vol["source"], "target": vol["target"],
                               "read_only": bool(vol.get("read_only", False))})
        for item in svc.get("config_files") or []:
            if item.get("target"):
                mounts.append({"type": "bind", "source": "%s/%s/%s" % (config_dir, key, item["dest"]),
                               "target": item["target"], "read_only": True})
        # Whole directories: a file rewritten in place (new inode) shows in the container,
        # which a reloadable service (nginx) needs; a single-file mount would keep the old one.
        for item in svc.get("config_dirs") or []:
            mounts.append({"type": "bind", "source": "%s/%s/%s" % (config_dir, key, item["dest"]),
                           "target": item["target"], "read_only": True})
        for item in svc.get("secrets") or []:
            mounts.append({"type": "bind", "source": "%s/%s/secrets/%s" % (config_dir, key, item["name"]),
                           "target": item["target"], "read_only": True})
        labels = {"dockerlab.stack": stack_name, "dockerlab.component": key}
        # A reloadable service takes config changes with a reload, so its hash is no label
        # (a changed label would recreate the container).
        if key in config_hashes and not svc.get("reload"):
            labels["dockerlab.config-hash"] = config_hashes[key]
        log = svc.get("log") or container_log or {"driver": "json-file", "options": {}}
        specs.append({
            "name": record["name"],
            "component": key,
            "skip": skip,
            "image": svc.get("image"),
            "command": svc.get("command"),
            "env": {k: str(v) for k, v in (svc.get("env") or {}).items()},
            "networks": nets,
            "published_ports": [_port_spec(p) for p in svc.get("ports") or []],
            "mounts": mounts,
            "healthcheck": dict(healthcheck_defaults or {}, **svc["healthcheck"]) if svc.get("healthcheck") else None,
            "labels": labels,
            "user": svc.get("user"),
            "hostname": record["name"],
            "order": int(svc.get("order", 50)),
            "reload": svc.get("reload"),
            "log_driver": log.get("driver") or "json-file",
            "log_options": {k: str(v) for k, v in (log.get("options") or {}).items()},
        })
    # Start order: lower `order` first (nginx needs its upstreams to resolve), then by name.
    return sorted(specs, key=lambda spec: (spec["order"], spec["name"]))


def stack_config_files(services, config_dir, profile):
    """List the config files and secrets of the services that run in ``profile``.

    Each entry carries its path on the Docker host, so the caller can render it and hash
    it into the component's config-hash label.
    """
    files = []
    for key in sorted(services):
        svc = services[key]
        if not svc.get("enabled", True) or profile not in (svc.get("profiles") or ["upstream", "offline"]):
            continue
        for item in svc.get("config_files") or []:
            source = {"template": item["src"]} if item.get("src") else {"file": item["file"]}
            files.append(dict(source, component=key, kind="config", path="%s/%s/%s" % (config_dir, key, item["dest"]),
                              owner=str(item.get("owner", "root")), mode=item.get("mode", "0644")))
        for item in svc.get("secrets") or []:
            # Only the name of the variable (or template) holding the secret travels here, so
            # no fact, loop label or module argument ever carries the value itself.
            if bool(item.get("var")) == bool(item.get("template")):
                raise AnsibleFilterError(
                    "secret %r of %s needs exactly one of 'var' (a variable holding the secret) or "
                    "'template' (a template that renders it)" % (item.get("name"), key))
            source = {"var": item["var"]} if item.get("var") else {"template": item["template"]}
            files.append(dict(source, component=key, kind="secret", secret=True,
                              path="%s/%s/secrets/%s" % (config_dir, key, item["name"]),
                              owner=str(item.get("owner", "root")), mode=item.get("mode", "0400")))
    return files


def upstream_servers(services, key, port, weights=None, weights_var="weights"):
    """The containers of service ``key`` as load-balancer upstream servers.

    Returns ``[{host, port, weight}]`` in replica order; ``weights`` gives each replica's
    weight by position (missing ones are 1). A weight that is not a positive integer is an
    error naming ``weights_var`` (the variable it came from), so a bad inventory fails in
    the precheck, before anything changes.
    """
    weights = list(weights or [])
    names = [r["name"] for r in expand_containers({"services": {key: services[key]}})] if key in services else []
    servers = []
    for index, name in enumerate(names):
        weight = weights[index] if index < len(weights) else 1
        if isinstance(weight, bool) or not str(weight).isdigit() or int(weight) < 1:
            raise AnsibleFilterError(
                "%s: weight %r for %s (position %d) must be a whole number of at least 1"
                % (weights_var, weight, name, index + 1))
        servers.append({"host": name, "port": int(port), "weight": int(weight)})
    if len(weights) > len(names):
        raise AnsibleFilterError(
            "%s: %d weights are given for %d %s containers; give one weight per container"
            % (weights_var, len(weights), len(names), key))
    return servers


def expand_flows(flows):
    """``stack_flows`` with list-valued ``from`` (or ``to``) entries expanded to one flow each."""
    expanded = []
    for flow in flows or []:
        sources = flow["from"] if isinstance(flow["from"], list) else [flow["from"]]
        targets = flow["to"] if isinstance(flow["to"], list) else [flow["to"]]
        for source in sources:
            for target in targets:
                expanded.append({"from": source, "to": target, "port": int(flow["port"])})
    return expanded


def active_flows(flows, services_by_var):
    """``stack_flows`` expanded, keeping the flows whose two ends are deployed services
    (a flow to MongoDB means nothing in the offline profile, where it is left out)."""
    deployed = {key for services in (services_by_var or {}).values() for key in (services or {})}
    return [flow for flow in expand_flows(flows) if flow["from"] in deployed and flow["to"] in deployed]


def network_peer_flows(services_by_var):
    """The flows the declared networks allow: every service may reach the ``expose`` ports
    of every service it shares a network with (Docker cannot tell them apart within a
    network). Added to ``stack_flows`` for the report, so that what the probe flags is a
    connection that crosses the declared segmentation."""
    members = {}
    for services in (services_by_var or {}).values():
        for key, svc in (services or {}).items():
            members[key] = ({n["network"] for n in svc.get("networks") or []},
                            [int(port) for port in svc.get("expose") or []])
    flows = []
    for source in sorted(members):
        for target in sorted(members):
            if members[source][0] & members[target][0]:
                flows.extend({"from": source, "to": target, "port": port} for port in members[target][1])
    return flows


def scrape_jobs(jobs, services, profile):
    """Prometheus scrape jobs with their targets: each job names a service key and a port;
    its targets are that service's containers (every replica) as ``name:port``. A job whose
    service is not deployed in ``profile`` (cAdvisor offline) is left out."""
    result = []
    for job in jobs or []:
        svc = (services or {}).get(job["service"])
        if not svc or not svc.get("enabled", True) or profile not in (svc.get("profiles") or ["upstream", "offline"]):
            continue
        names = [record["name"] for record in expand_containers({"services": {job["service"]: svc}})]
        result.append({"job": job.get("job") or job["service"], "metrics_path": job.get("path") or "/metrics",
                       "targets": ["%s:%s" % (name, int(job["port"])) for name in names]})
    return result


_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def prometheus_seconds(duration):
    """Seconds in a Prometheus duration (``1h30m``, ``15s``, ``500ms``)."""
    text = str(duration).strip()
    parts = re.findall(r"([0-9]+)(ms|s|m|h|d|w|y)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise AnsibleFilterError("%r is not a Prometheus duration such as 30s, 5m, 15d or 1h30m" % (duration,))
    return sum(int(number) * _DURATION_UNITS[unit] for number, unit in parts)


def active_services(services_by_var, profile):
    """Drop the services that do not run in ``profile`` (and disabled ones): what is really deployed."""
    active = {}
    for var, services in (services_by_var or {}).items():
        active[var] = {
            key: svc for key, svc in (services or {}).items()
            if svc.get("enabled", True) and profile in (svc.get("profiles") or ["upstream", "offline"])
        }
    return active


def container_health(host_containers, names):
    """Health of each named container from one ``docker_host_info`` container listing.

    Returns ``{name: state}`` where state is ``healthy``, ``starting`` (still worth
    waiting for), ``unhealthy``, ``exited``/``restarting``/``dead`` (crashed: no point
    waiting) or ``missing``. The listing's ``Status`` text ends in ``(healthy)``,
    ``(unhealthy)`` or ``(health: starting)`` for containers with a healthcheck.
    """
    by_name = {}
    for container in host_containers or []:
        for name in container.get("Names") or []:
            by_name[name.lstrip("/")] = container
    health = {}
    for name in names:
        container = by_name.get(name)
        if container is None:
            health[name] = "missing"
        elif container.get("State") in ("exited", "restarting", "dead"):
            health[name] = container["State"]
        elif "(healthy)" in (container.get("Status") or ""):
            health[name] = "healthy"
        elif "(unhealthy)" in (container.get("Status") or ""):
            health[name] = "unhealthy"
        else:
            health[name] = "starting"
    return health


def matching_networks(existing, networks, stack_name, driver="bridge"):
    """Keys of ``stack_networks`` whose Docker network already exists exactly as declared
    (driver, subnet, internal flag, labels), from a verbose ``docker_host_info`` listing."""
    by_name = {net.get("Name"): net for net in existing or []}
    matching = []
    for key, spec in (networks or {}).items():
        net = by_name.get(spec["name"])
        if not net:
            continue
        subnets = [cfg.get("Subnet") for cfg in ((net.get("IPAM") or {}).get("Config") or [])]
        labels = net.get("Labels") or {}
        if (net.get("Driver") == driver and subnets == [spec["subnet"]]
                and bool(net.get("Internal")) == bool(spec.get("internal", False))
                and labels.get("dockerlab.stack") == stack_name and labels.get("dockerlab.network") == key):
            matching.append(key)
    return matching


def matching_volumes(existing, volumes, stack_name):
    """Keys of ``stack_volumes`` whose Docker volume already exists with the stack's labels."""
    by_name = {vol.get("Name"): vol for vol in existing or []}
    matching = []
    for key, name in (volumes or {}).items():
        labels = (by_name.get(name) or {}).get("Labels") or {}
        if labels.get("dockerlab.stack") == stack_name and labels.get("dockerlab.volume") == key:
            matching.append(key)
    return matching


def config_hashes(files, written):
    """``{component: sha256}`` over the checksums of its written files (stack_files results,
    matched by path): the config-hash label that recreates a changed component."""
    by_path = {result["path"]: result for result in written}
    sums = {}
    for spec in files:
        sums.setdefault(spec["component"], []).append(by_path[spec["path"]]["checksum"])
    return {component: hashlib.sha256(",".join(sorted(values)).encode()).hexdigest()
            for component, values in sums.items()}


def changed_components(files, written):
    """Components with at least one file the last stack_files call changed."""
    changed = {result["path"] for result in written if result.get("changed")}
    return sorted({spec["component"] for spec in files if spec["path"] in changed})


class FilterModule:
    def filters(self):
        return {"stack_containers": stack_containers, "stack_config_files": stack_config_files,
                "upstream_servers": upstream_servers, "expand_flows": expand_flows,
                "active_services": active_services, "active_flows": active_flows,
                "network_peer_flows": network_peer_flows, "scrape_jobs": scrape_jobs,
                "prometheus_seconds": prometheus_seconds, "container_health": container_health,
                "matching_networks": matching_networks, "matching_volumes": matching_volumes,
                "config_hashes": config_hashes, "changed_components": changed_components}
