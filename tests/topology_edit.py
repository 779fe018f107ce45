# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Edits of a topology (stack_networks and the tiers' services) the tests make to put the
default lab somewhere else: on other subnets, on free host ports."""

from __future__ import annotations

import ipaddress


def move_network(networks, services_by_var, key, subnet):
    """Give network ``key`` another subnet. Its ip_range moves to the new subnet's second
    quarter (away from the fixed addresses: .10-.30 and the log collector's .250), and
    addresses written out in full keep their host part; host numbers follow by themselves."""
    old = ipaddress.ip_network(networks[key]['subnet'])
    new = ipaddress.ip_network(subnet)
    networks[key]['subnet'] = subnet
    if networks[key].get('ip_range'):
        networks[key]['ip_range'] = str(list(new.subnets(prefixlen_diff=2))[1])
    for services in services_by_var.values():
        for service in services.values():
            for entry in service.get('networks') or []:
                address = entry.get('ipv4_address') if isinstance(entry, dict) and entry.get('network') == key else None
                if isinstance(address, str) and '.' in address:
                    offset = int(ipaddress.ip_address(address)) - int(old.network_address)
                    entry['ipv4_address'] = str(new.network_address + offset)


def move_networks(networks, services_by_var, subnets, name_prefix):
    """Every network, by sorted key, onto the next of ``subnets``, renamed ``<name_prefix><key>``
    (never the names a real run creates)."""
    for key, subnet in zip(sorted(networks), subnets):
        move_network(networks, services_by_var, key, subnet)
        networks[key]['name'] = f'{name_prefix}{key}'


def free_host_ports(services_by_var, free_port):
    """Every published port on its own free port of 127.0.0.1 (``free_port()`` finds one)."""
    taken = set()
    for services in services_by_var.values():
        for service in services.values():
            for port in service.get('ports') or []:
                if port.get('host_port') is not None:
                    # A port just freed can come back from the next call: keep them distinct.
                    port['host_port'] = next(p for p in iter(free_port, None) if p not in taken)
                    taken.add(port['host_port'])
                    port['bind_address'] = '127.0.0.1'
