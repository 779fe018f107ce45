# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What the parts of the topology report share: violations, address helpers, a thread pool."""

from __future__ import annotations

import concurrent.futures
import ipaddress

from ansible_collections.dockerlab.ecommerce.plugins.module_utils._topology.values import WILDCARD_ADDRESSES


def violation(kind, subject, message):
    return {'kind': kind, 'subject': subject, 'message': message}


def sort_violations(violations):
    return sorted(violations, key=lambda v: (v['subject'], v['kind'], v['message']))


def is_wildcard(address):
    return address in ('', None) or address in WILDCARD_ADDRESSES


def ip_key(address):
    try:
        parsed = ipaddress.ip_address(address)
        return (parsed.version, int(parsed), '')
    except ValueError:
        return (99, 0, str(address))


def parallel(function, items, workers=16):
    items = list(items)
    if not items:
        return []
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(workers, len(items)))) as pool:
        return list(pool.map(function, items))
