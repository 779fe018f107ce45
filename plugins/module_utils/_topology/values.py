# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Small helpers of the topology checks: showing an offending value, parsing addresses and subnets."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping

WILDCARD_ADDRESSES = ('0.0.0.0', '::')


class Errors(list):
    """Problems found, each ``{variable, message}``."""

    def add(self, variable, message):
        self.append({'variable': variable, 'message': message})


def index(key):
    """``['mysql-db']`` for a mapping key."""
    return f'[{str(key)!r}]'


def show(value):
    """Show an offending value the way it would be written in YAML."""
    if isinstance(value, str):
        return f"'{value}'"
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if value is None:
        return 'null'
    if isinstance(value, (int, float)):
        return str(value)
    try:
        return json.dumps(value, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return repr(value)


def kind_of(value):
    if isinstance(value, str):
        return 'a string'
    if isinstance(value, bool):
        return 'a boolean'
    if value is None:
        return 'null'
    if isinstance(value, (int, float)):
        return 'a number'
    if isinstance(value, Mapping):
        return 'a mapping'
    if isinstance(value, (list, tuple)):
        return 'a list'
    return f'a {type(value).__name__}'


def describe(value):
    """``a string ('x')``: kind and value, for type errors."""
    if value is None:
        return 'null'
    return f'{kind_of(value)} ({show(value)})'


def is_blank(value):
    return value is None or (isinstance(value, str) and not value.strip())


def parse_address(value):
    """Compressed text form of an IP address, or None when it is not one."""
    if not isinstance(value, str):
        return None
    try:
        return ipaddress.ip_address(value.strip()).compressed
    except ValueError:
        return None


def binds_collide(address_a, address_b):
    """True when two bind addresses would fight for the same port (equal, or either is a wildcard)."""
    return address_a == address_b or address_a in WILDCARD_ADDRESSES or address_b in WILDCARD_ADDRESSES


def host_number(value):
    """An address written as its host number within the subnet (10: the subnet's 10th
    address, as ansible.utils.nthhost counts), as an int; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def resolve_address(value, subnet):
    """The IPv4 address a service's ``ipv4_address`` names: as written, or the host
    number's address within ``subnet`` (a validated CIDR string)."""
    number = host_number(value)
    if number is None:
        return str(value).strip()
    return str(ipaddress.ip_network(str(subnet).strip())[number])


def parse_subnet(value):
    """Return ``(network, None)`` or ``(None, problem message)``."""
    if not isinstance(value, str):
        return None, (f'is {describe(value)}, not a network in CIDR notation; '
                      'write it as a string like 172.30.0.0/16')
    text = value.strip()
    if '/' not in text:
        return None, (f"'{value}' has no prefix length; "
                      f"write it in CIDR notation, like {text or '172.30.0.0'}/16")
    try:
        return ipaddress.ip_network(text, strict=True), None
    except ValueError:
        pass
    try:
        loose = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None, (f"'{value}' is not a valid IPv4 or IPv6 network in CIDR notation; "
                      'write it like 172.30.0.0/16')
    return None, (f"'{value}' has host bits set: its network address is {loose.with_prefixlen}; "
                  f'set subnet: {loose.with_prefixlen}')


def choices(keys):
    return ', '.join(sorted(str(k) for k in keys))
