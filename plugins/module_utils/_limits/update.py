# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Resource limits changed in place: what ``docker update`` can change on a running container
without recreating or restarting it (memory, swap, reservation, CPUs, pids).

community.docker.docker_container updates memory in place but recreates a container for a
change of ``cpus`` or ``pids_limit``; the Docker API's container update takes all five, so the
deploy applies them here first and docker_container then finds nothing to change.
"""

from __future__ import annotations

from ansible_collections.dockerlab.ecommerce.plugins.module_utils._topology.hardening import (
    parse_count,
    parse_cpus,
    parse_size,
)


def _nano_cpus(value):
    cpus = parse_cpus(value)
    return None if cpus is None else int(round(cpus * 1e9))


# docker_container's option -> (the API's HostConfig field, parser)
FIELDS = {
    'memory': ('Memory', parse_size),
    'memory_swap': ('MemorySwap', parse_size),
    'memory_reservation': ('MemoryReservation', parse_size),
    'cpus': ('NanoCpus', _nano_cpus),
    'pids_limit': ('PidsLimit', parse_count),
}


def wanted_limits(args):
    """``{API field: value}`` of the limits a container's docker_container arguments set.
    A limit that is not set is left alone: removing one needs the container recreated (Docker's
    update reads 0 as "unchanged")."""
    wanted = {}
    for option, (field, parse) in FIELDS.items():
        value = args.get(option)
        if value in (None, ''):
            continue
        parsed = parse(value)
        if parsed is None:
            raise ValueError(f"{args.get('name')}: {option} {value!r} is not a valid value")
        wanted[field] = parsed
    return wanted


def limit_changes(host_config, wanted):
    """``{field: (current, wanted)}`` for each wanted limit the container does not have."""
    changes = {}
    for field, value in wanted.items():
        current = host_config.get(field)
        # an unset limit reads 0 or null (PidsLimit: 0, -1 or null all mean unlimited)
        current = 0 if current in (None, -1) else current
        if current != value:
            changes[field] = (current, value)
    return changes


def update_body(changes):
    """The body of ``POST /containers/{id}/update``: every changed limit in one request, so a
    raise of memory above the current swap limit goes with the swap limit."""
    return {field: new for field, (_old, new) in sorted(changes.items())}
