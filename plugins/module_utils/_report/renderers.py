# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The renderings of a report: JSON, Markdown access information, Mermaid and Graphviz DOT.
Pure functions of the report, sorted, so an unchanged stack gives unchanged files."""

from __future__ import annotations

import json
import re

from ansible_collections.dockerlab.ecommerce.plugins.module_utils._topology.hardening import show_size
from ansible_collections.dockerlab.ecommerce.plugins.module_utils._report.common import is_wildcard


def render_json(report):
    return json.dumps(report, indent=2, sort_keys=True) + '\n'


def _md(text):
    return str(text).replace('|', '\\|')


def _published(report):
    """``[(container, port record)]`` of all published ports, sorted."""
    rows = []
    for container in report['containers']:
        for port in container['ports']:
            rows.append((container['name'], port))
    rows.sort(key=lambda r: (r[1]['host_port'], r[1]['protocol'], r[0], str(r[1]['host_ip'])))
    return rows


def _url(port):
    host = port['host_ip']
    if is_wildcard(host):
        host = 'localhost'
    elif ':' in host:
        host = f'[{host}]'
    if port['protocol'] != 'tcp':
        return f"{port['protocol']}://{host}:{port['host_port']}"
    scheme = 'https' if port['container_port'] in (443, 8443) else 'http'
    return f"{scheme}://{host}:{port['host_port']}/"


def render_markdown(report):
    out = [f"# Stack {report['stack_name']}: access information", '']
    summary = report['summary']
    out.append(f"{summary['containers']} containers ({summary['running']} running) on {summary['networks']} "
               f"networks; {summary['violations']} violation(s).")
    out += ['', '## Published ports', '']
    rows = _published(report)
    if rows:
        out += ['| URL | Container | Bound on | Container port |', '| --- | --- | --- | --- |']
        for name, port in rows:
            bind = f"{port['host_ip']}:{port['host_port']}"
            if is_wildcard(port['host_ip']):
                bind += ' (all interfaces)'
            out.append(f"| {_url(port)} | {_md(name)} | {bind} | {port['container_port']}/{port['protocol']} |")
    else:
        out.append('No container publishes a port.')
    out += ['', '## Credentials', '']
    if report.get('secrets_dir'):
        out.append(f"The credentials (database passwords and the like) are kept in `{report['secrets_dir']}` on the "
                   'Docker host, one file per secret. Read them there; they are not copied into this report.')
    else:
        out.append('No secrets directory was given; the credentials are not described here.')
    out += ['', '## Networks', '']
    for net in report['networks']:
        flags = []
        if net['key']:
            flags.append(f"key `{net['key']}`")
        flags.append(', '.join(net['subnets']) or 'no subnet')
        flags.append('internal' if net['internal'] else 'not internal')
        if not net['present']:
            flags.append('**missing**')
        out.append(f"### {net['name']}")
        out += ['', '; '.join(flags), '']
        if net['members']:
            out += ['| Container | Address | Aliases |', '| --- | --- | --- |']
            for member in net['members']:
                out.append(f"| {_md(member['container'])} | {member['ipv4_address'] or '-'} | "
                           f"{_md(', '.join(member['aliases'])) or '-'} |")
        else:
            out.append('No members.')
        out.append('')
    out += ['## Containers', '', '| Container | Service | State | Health | Networks | Image |',
            '| --- | --- | --- | --- | --- | --- |']
    for container in report['containers']:
        nets = ', '.join(f"{n['name']} ({n['ipv4_address'] or '-'})" for n in container['networks']) or '-'
        out.append(f"| {_md(container['name'])} | {_md(container['service'] or '-')} | {container['state']} | "
                   f"{container['health']} | {_md(nets)} | {_md(container['image'] or '-')} |")
    hardened = [c for c in report['containers'] if c.get('hardening')]
    if hardened:
        out += ['', '## Hardening and limits', '',
                '| Container | User | Capabilities added | Dropped | Read-only root | No new privileges | Memory | CPUs '
                '| Pids |', '| --- | --- | --- | --- | --- | --- | --- | --- | --- |']
        for container in hardened:
            found, limits = container['hardening'], container['hardening']['limits']
            memory = show_size(limits['memory']) if limits['memory'] else 'none'
            out.append(f"| {_md(container['name'])} | {_md(found['user'])} | {', '.join(found['cap_add']) or '-'} | "
                       f"{', '.join(found['cap_drop']) or '-'} | {'yes' if found['read_only'] else 'no'} | "
                       f"{'yes' if found['no_new_privileges'] else 'no'} | {memory} | {limits['cpus'] or 'none'} | "
                       f"{limits['pids'] or 'none'} |")
    out += ['', '## Volumes', '']
    if report['volumes']:
        out += ['| Volume | Key | Present | Mounted by |', '| --- | --- | --- | --- |']
        for volume in report['volumes']:
            out.append(f"| {_md(volume['name'])} | {_md(volume['key'] or '-')} | "
                       f"{'yes' if volume['present'] else 'no'} | {_md(', '.join(volume['mounted_by']) or '-')} |")
    else:
        out.append('No volumes.')
    mounts = [(c['name'], m) for c in report['containers'] for m in c['mounts']]
    if mounts:
        out += ['', '| Container | Mount | Source | Mode |', '| --- | --- | --- | --- |']
        for name, mount in mounts:
            out.append(f"| {_md(name)} | {_md(mount['destination'])} | {mount['type']} {_md(mount['source'])} | "
                       f"{'ro' if mount['read_only'] else 'rw'} |")
    out += ['', '## Flows', '']
    if report['flows']:
        out += ['| From | To | Port |', '| --- | --- | --- |']
        for flow in report['flows']:
            out.append(f"| {_md(flow['from'])} | {_md(flow['to'])} | {flow['port']} |")
    else:
        out.append('No flows are declared.')
    matrix = report.get('reachability')
    if matrix:
        out += ['', '## Reachability', '',
                f"TCP connects from inside each running container (timeout {matrix['timeout']:g}s).", '',
                '| From | To | Port | Allowed | Reachable | Violation |', '| --- | --- | --- | --- | --- | --- |']
        for cell in matrix['cells']:
            out.append(f"| {_md(cell['from'])} | {_md(cell['to'])} | {cell['port']} | "
                       f"{'yes' if cell['expected'] else 'no'} | {'yes' if cell['observed'] else 'no'} | "
                       f"{'**yes**' if cell['violation'] else 'no'} |")
        for skipped in matrix['skipped']:
            out.append(f"\nNot tested from {skipped['container']}: {skipped['reason']}")
    out += ['', '## Violations', '']
    if report['violations']:
        for violation in report['violations']:
            out.append(f"- **{violation['kind']}** {_md(violation['subject'])}: {_md(violation['message'])}")
    else:
        out.append('None.')
    return '\n'.join(out) + '\n'


def _mermaid_id(prefix, name):
    return prefix + re.sub(r'[^A-Za-z0-9_]', '_', str(name))


def _mermaid_text(text):
    return str(text).replace('"', '#quot;')


def render_mermaid(report):
    out = ['%% topology of the stack ' + report['stack_name'] + ' (dockerlab.ecommerce.topology_report)',
           'graph LR', '  host(("Docker host"))']
    for net in report['networks']:
        label = f"{net['name']}<br/>{', '.join(net['subnets']) or 'no subnet'}"
        if net['internal']:
            label += '<br/>internal'
        out.append(f"  {_mermaid_id('net_', net['name'])}[(\"{_mermaid_text(label)}\")]")
    for container in report['containers']:
        label = f"{container['name']}<br/>{container['state']}"
        if container['health'] != 'none':
            label += f", {container['health']}"
        out.append(f"  {_mermaid_id('ctr_', container['name'])}[\"{_mermaid_text(label)}\"]")
    for container in report['containers']:
        for net in container['networks']:
            out.append(f"  {_mermaid_id('ctr_', container['name'])} ---|\"{net['ipv4_address'] or 'no address'}\"| "
                       f"{_mermaid_id('net_', net['name'])}")
    for name, port in _published(report):
        out.append(f"  host -->|\"{port['host_ip']}:{port['host_port']} to {port['container_port']}/"
                   f"{port['protocol']}\"| {_mermaid_id('ctr_', name)}")
    for cell in ((report.get('reachability') or {}).get('cells') or []):
        if cell['violation']:
            what = 'not allowed' if cell['observed'] else 'unreachable'
            out.append(f"  {_mermaid_id('ctr_', cell['from'])} -.->|\"{cell['port']} {what}\"| "
                       f"{_mermaid_id('ctr_', cell['to'])}")
    out.append('  classDef network fill:#dbeafe,stroke:#1d4ed8')
    out.append('  classDef stopped fill:#fee2e2,stroke:#b91c1c')
    if report['networks']:
        out.append('  class ' + ','.join(_mermaid_id('net_', n['name']) for n in report['networks']) + ' network')
    stopped = [c for c in report['containers'] if not c['running']]
    if stopped:
        out.append('  class ' + ','.join(_mermaid_id('ctr_', c['name']) for c in stopped) + ' stopped')
    return '\n'.join(out) + '\n'


def _dot(text):
    return '"' + str(text).replace('\\', '\\\\').replace('"', '\\"').replace('\n', '\\n') + '"'


def render_dot(report):
    out = [f"digraph {_dot(report['stack_name'])} {{",
           f"  graph [rankdir=LR, fontname=\"Helvetica\", label={_dot('stack ' + report['stack_name'])}];",
           '  node [fontname="Helvetica", fontsize=10];',
           '  edge [fontname="Helvetica", fontsize=9];',
           '  "host" [shape=house, label="Docker host"];']
    for net in report['networks']:
        label = f"{net['name']}\n{', '.join(net['subnets']) or 'no subnet'}"
        if net['internal']:
            label += '\ninternal'
        style = 'filled' if net['present'] else 'filled,dashed'
        out.append(f"  {_dot('net:' + net['name'])} [shape=ellipse, style={_dot(style)}, fillcolor=\"#dbeafe\", "
                   f"label={_dot(label)}];")
    for container in report['containers']:
        label = f"{container['name']}\n{container['state']}"
        if container['health'] != 'none':
            label += f", {container['health']}"
        color = '#dcfce7' if container['running'] else '#fee2e2'
        out.append(f"  {_dot('ctr:' + container['name'])} [shape=box, style=filled, fillcolor={_dot(color)}, "
                   f"label={_dot(label)}];")
    for container in report['containers']:
        for net in container['networks']:
            out.append(f"  {_dot('ctr:' + container['name'])} -> {_dot('net:' + net['name'])} "
                       f"[dir=none, label={_dot(net['ipv4_address'] or 'no address')}];")
    for name, port in _published(report):
        label = f"{port['host_ip']}:{port['host_port']} to {port['container_port']}/{port['protocol']}"
        out.append(f"  \"host\" -> {_dot('ctr:' + name)} [color=\"#b45309\", label={_dot(label)}];")
    for cell in ((report.get('reachability') or {}).get('cells') or []):
        if cell['violation']:
            what = 'not allowed' if cell['observed'] else 'unreachable'
            out.append(f"  {_dot('ctr:' + cell['from'])} -> {_dot('ctr:' + cell['to'])} "
                       f"[style=dashed, color=\"#b91c1c\", label={_dot(str(cell['port']) + ' ' + what)}];")
    out.append('}')
    return '\n'.join(out) + '\n'
