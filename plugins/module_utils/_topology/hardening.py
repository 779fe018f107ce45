# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Resources and hardening of a service: what model.resolve() puts into each record, and
what the precheck refuses (a limit below what the component needs to start).

A service declares::

    resources:          {memory: 96m, memory_reservation: 32m, cpus: 0.5, pids: 64}
    resources_minimum:  {memory: 16m, pids: 16, why: "..."}   # the least it starts with
    security:
      capabilities:     {SETUID: why, ...}   # added back after cap_drop (name: reason)
      read_only: true                        # root filesystem
      tmpfs:            {/run: "uid=101"}    # writable paths of a read-only root (path: mount options)
      non_root: true                         # runs as a user other than root (its ``user``)
      why: "..."                             # the reason for anything below the stack's defaults

``stack_security`` (the stack role) is laid under every service's ``security`` (cap_drop ALL,
no-new-privileges, read-only root, non-root), and ``stack_resources[<component>]`` over its
``resources``, so a user changes one component's limits in one place.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

RESOURCE_KEYS = ('memory', 'memory_reservation', 'cpus', 'pids')
DEFAULT_SECURITY = {'cap_drop': ['ALL'], 'no_new_privileges': True, 'read_only': True, 'non_root': True}
NO_NEW_PRIVILEGES = 'no-new-privileges'
RESOURCES_VAR = 'stack_resources'
ROOT_USERS = ('', '0', 'root')

_CAP_RE = re.compile(r'^[A-Z][A-Z0-9_]+$')
_SIZE_RE = re.compile(r'^\s*([0-9]+(?:\.[0-9]+)?)\s*([bkmgt]?)b?\s*$', re.IGNORECASE)
_UNITS = {'': 1, 'b': 1, 'k': 1024, 'm': 1024 ** 2, 'g': 1024 ** 3, 't': 1024 ** 4}


def _cap_name(value):
    name = str(value).strip().upper()
    return name[4:] if name.startswith('CAP_') else name


def parse_size(value):
    """Bytes from Docker's size notation (``96m``, ``1g``, ``512mb``, ``134217728``), or the sum
    of a list of them (a minimum written as its parts); None when it is not one."""
    if isinstance(value, (list, tuple)):
        parts = [parse_size(part) for part in value]
        return None if not parts or None in parts else sum(parts)
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    match = _SIZE_RE.match(str(value))
    if not match:
        return None
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def parse_cpus(value):
    """CPUs as a float (``0.5``, ``'1.5'``); None when it is not a positive number."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        cpus = float(value)
    except (TypeError, ValueError):
        return None
    return cpus if cpus > 0 else None


def parse_count(value):
    """A whole number of at least 1 (``pids``); None otherwise."""
    if isinstance(value, bool):
        return None
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return number if number >= 1 else None


PARSERS = {'memory': parse_size, 'memory_reservation': parse_size, 'cpus': parse_cpus, 'pids': parse_count}


def show_size(number):
    """``96m`` for 100663296: the shortest exact binary unit."""
    for unit in ('g', 'm', 'k'):
        if number and number % _UNITS[unit] == 0:
            return f'{number // _UNITS[unit]}{unit}'
    return str(number)


def resources_of(key, service, overrides=None):
    """The service's ``resources`` with ``stack_resources[key]`` laid over them (known keys only)."""
    own = service.get('resources')
    merged = dict(own) if isinstance(own, Mapping) else {}
    override = (overrides if isinstance(overrides, Mapping) else {}).get(key)
    if isinstance(override, Mapping):
        merged.update(override)
    return {name: merged[name] for name in RESOURCE_KEYS if merged.get(name) not in (None, '')}


def security_of(service, defaults=None):
    """The service's ``security`` laid over the stack's (``stack_security``), normalised:
    ``{cap_drop, cap_add, capabilities, no_new_privileges, read_only, tmpfs, non_root, why}``."""
    merged = dict(DEFAULT_SECURITY)
    for layer in (defaults, service.get('security')):
        if isinstance(layer, Mapping):
            merged.update({k: v for k, v in layer.items() if v is not None})
    capabilities = merged.get('capabilities') or {}
    if not isinstance(capabilities, Mapping):
        # a list of names is accepted; the reasons then live in comments only
        capabilities = {str(name): '' for name in capabilities}
    capabilities = {_cap_name(name): str(why or '').strip()
                    for name, why in capabilities.items()}
    tmpfs = merged.get('tmpfs') or {}
    if not isinstance(tmpfs, Mapping):
        tmpfs = {str(path): '' for path in tmpfs}
    return {
        'cap_drop': sorted(_cap_name(c) for c in merged.get('cap_drop') or []),
        'cap_add': sorted(capabilities),
        'capabilities': dict(sorted(capabilities.items())),
        'no_new_privileges': bool(merged.get('no_new_privileges')),
        'read_only': bool(merged.get('read_only')),
        'tmpfs': {str(path): str(options or '') for path, options in sorted(tmpfs.items())},
        'non_root': bool(merged.get('non_root')),
        'why': ' '.join(str(merged.get('why') or '').split()),
    }


def _resource_variable(key, name):
    return f'{RESOURCES_VAR}[{key!r}].{name}'


def check_resources(key, service, where, overrides, errors):
    """Add to ``errors`` (a values.Errors) each resource that is no valid value, and each below
    the service's ``resources_minimum`` (what it needs to start, and why)."""
    for field, value in (('resources', service.get('resources')), ('resources_minimum', service.get('resources_minimum'))):
        if value is not None and not isinstance(value, Mapping):
            errors.add(f'{where}.{field}', f'{value!r} is not a mapping; write {{memory: 256m, cpus: 0.5, pids: 64}}')
    override = (overrides if isinstance(overrides, Mapping) else {}).get(key)
    if override is not None and not isinstance(override, Mapping):
        errors.add(f'{RESOURCES_VAR}[{key!r}]', f'{override!r} is not a mapping; write {{memory: 1g}}')
    resources = resources_of(key, service, overrides)
    for name, value in resources.items():
        if PARSERS[name](value) is None:
            errors.add(_resource_variable(key, name),
                       f'{value!r} is not a valid {name} for {key}: write '
                       + ('a size such as 256m or 1g' if name.startswith('memory')
                          else 'a number of CPUs such as 0.5' if name == 'cpus' else 'a whole number such as 128'))
    minimum = service.get('resources_minimum') if isinstance(service.get('resources_minimum'), Mapping) else {}
    why = ' '.join(str(minimum.get('why') or '').split())
    for name in RESOURCE_KEYS:
        if name not in minimum or name not in resources:
            continue
        have, need = PARSERS[name](resources[name]), PARSERS[name](minimum[name])
        if have is None or need is None or have >= need:
            continue
        shown = show_size(need) if name.startswith('memory') else minimum[name]
        errors.add(_resource_variable(key, name),
                   f'{resources[name]} is below the {shown} {key} needs to start'
                   + (f' ({why})' if why else '')
                   + f'; set {_resource_variable(key, name)} (or {where}.resources.{name}) to at least {shown}')
    memory = parse_size(resources.get('memory'))
    reservation = parse_size(resources.get('memory_reservation'))
    if memory is not None and reservation is not None and reservation > memory:
        errors.add(_resource_variable(key, 'memory_reservation'),
                   f"{resources['memory_reservation']} is above {key}'s memory limit {resources['memory']}: "
                   'Docker refuses a reservation above the limit; lower it or raise memory')


def check_security(key, service, where, defaults, errors):
    """Add to ``errors`` what a service's hardening cannot mean: a tmpfs path that is not
    absolute, a capability that is no capability name. (Whether it really runs as non-root is
    for the report: the user may come from its image.)"""
    if service.get('security') is not None and not isinstance(service.get('security'), Mapping):
        errors.add(f'{where}.security', f"{service['security']!r} is not a mapping; write {{read_only: true, "
                                        "capabilities: {NAME: why}, tmpfs: {/path: options}}")
    security = security_of(service, defaults)
    for path in security['tmpfs']:
        if not str(path).startswith('/'):
            errors.add(f'{where}.security.tmpfs', f'{path!r} is not an absolute path inside the container')
    for name in security['cap_add'] + security['cap_drop']:
        if not _CAP_RE.match(name):
            errors.add(f'{where}.security.capabilities',
                       f'{name!r} is not a Linux capability name (such as NET_BIND_SERVICE, or ALL for cap_drop)')


def total_memory(records):
    """Sum of the memory limits of the records (bytes), and the names without one."""
    total, unlimited = 0, []
    for record in records:
        memory = parse_size(record['resources'].get('memory'))
        if memory is None:
            unlimited.append(record['name'])
        else:
            total += memory
    return total, unlimited


# ---------------------------------------------------------------------------
# what a container has, against what it declares (stack_health, topology_report)
# ---------------------------------------------------------------------------

def _user_name(user):
    return str(user or '').split(':', maxsplit=1)[0].strip()


def actual_hardening(info, image_user=''):
    """A container's hardening and limits from ``docker inspect`` data: ``{user, runs_as_root,
    cap_add, cap_drop, no_new_privileges, read_only, privileged, limits: {memory, memory_reservation,
    cpus, pids}}`` (a limit Docker does not set is null). ``image_user`` is its image's USER, which
    applies when the container sets none."""
    host = info.get('HostConfig') or {}
    user = (info.get('Config') or {}).get('User') or image_user or ''
    security_opts = [str(opt).replace('=', ':') for opt in host.get('SecurityOpt') or []]
    nano = host.get('NanoCpus') or 0
    quota, period = host.get('CpuQuota') or 0, host.get('CpuPeriod') or 0
    cpus = nano / 1e9 if nano else (quota / period if quota > 0 and period > 0 else None)
    pids = host.get('PidsLimit')
    return {
        'user': user or 'root',
        'runs_as_root': _user_name(user) in ROOT_USERS,
        'cap_add': sorted(_cap_name(c) for c in host.get('CapAdd') or []),
        'cap_drop': sorted(_cap_name(c) for c in host.get('CapDrop') or []),
        'no_new_privileges': any(opt in (NO_NEW_PRIVILEGES, f'{NO_NEW_PRIVILEGES}:true') for opt in security_opts),
        'read_only': bool(host.get('ReadonlyRootfs')),
        'privileged': bool(host.get('Privileged')),
        'limits': {
            'memory': host.get('Memory') or None,
            'memory_reservation': host.get('MemoryReservation') or None,
            'cpus': round(cpus, 3) if cpus else None,
            'pids': pids if pids and pids > 0 else None,
        },
    }


def _shown(name, value):
    return show_size(value) if name.startswith('memory') else str(value)


def hardening_problems(actual, security, resources=None):
    """What makes a container less hardened or limited than declared: a list of phrases (empty
    when it is as declared). ``security`` is a record's (security_of()), ``resources`` its
    resources; ``resources`` None (a container no service declares) asks for a memory limit."""
    problems = []
    if actual['privileged']:
        problems.append('it runs privileged')
    if 'ALL' in security['cap_drop'] and 'ALL' not in actual['cap_drop']:
        problems.append('it does not drop every capability (cap_drop ALL)')
    extra = sorted(set(actual['cap_add']) - set(security['cap_add']))
    if extra:
        problems.append(f"it has capabilities {', '.join(extra)} beyond the declared "
                        f"({', '.join(security['cap_add']) or 'none'})")
    if security['no_new_privileges'] and not actual['no_new_privileges']:
        problems.append('it may gain privileges (no no-new-privileges)')
    if security['read_only'] and not actual['read_only']:
        problems.append('its root filesystem is writable')
    if security['non_root'] and actual['runs_as_root']:
        problems.append('it runs as root')
    if resources is None:
        if not actual['limits']['memory']:
            problems.append('it has no memory limit')
        return problems
    for name in ('memory', 'cpus', 'pids'):
        declared = PARSERS[name](resources.get(name)) if resources.get(name) is not None else None
        if declared is None:
            continue
        have = actual['limits'][name]
        if not have:
            problems.append(f'it has no {name} limit (declared {_shown(name, declared)})')
        elif have > declared + (0.001 if name == 'cpus' else 0):
            problems.append(f'its {name} limit {_shown(name, have)} is above the declared {_shown(name, declared)}')
    return problems
