# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The reachability matrix: TCP connects from inside each running container to the exposed
(and flow) ports of the others, one docker exec per source container, against the flow policy."""

from __future__ import annotations

from ansible_collections.dockerlab.ecommerce.plugins.module_utils.docker_client import exec_in_container
from ansible_collections.dockerlab.ecommerce.plugins.module_utils._report.common import (
    ip_key,
    parallel,
    violation,
)


# Connects one exec runs at once (bash: a subshell, timeout and bash each): well inside the
# smallest pids limit of the stack's containers (32).
PROBES_AT_ONCE = 6
# bash's connect runs in a process of its own, bounded by timeout(1): under a small CPU limit
# (an exporter's 0.25) starting it takes part of a second, which must not count as "closed"
PROCESS_START_S = 2

_REACH_PY = r'''
import os, socket, threading
t = float(os.environ['DL_T'])
n = int(os.environ['DL_N'])
out = []
def probe(target):
    h, p = target.rsplit(':', 1)
    try:
        socket.create_connection((h, int(p)), t).close()
        out.append(target + ' open')
    except Exception:
        out.append(target + ' closed')
targets = os.environ['DL_TARGETS'].split()
for i in range(0, len(targets), n):
    threads = [threading.Thread(target=probe, args=(x,)) for x in targets[i:i + n]]
    [th.start() for th in threads]
    [th.join() for th in threads]
print('\n'.join(out))
'''

_REACH_BASH = r'''
i=0
for t in $DL_TARGETS; do
  ( if timeout "$DL_TP" bash -c "exec 3<>/dev/tcp/${t%:*}/${t##*:}" 2>/dev/null; then echo "$t open"; else echo "$t closed"; fi ) &
  i=$((i + 1)); if [ $((i % DL_N)) -eq 0 ]; then wait; fi
done
wait
'''

_REACH_BUSYBOX = r'''
i=0
for t in $DL_TARGETS; do
  ( if busybox nc -z -w "${DL_T%.*}" "${t%:*}" "${t##*:}" 2>/dev/null; then echo "$t open"; else echo "$t closed"; fi ) &
  i=$((i + 1)); if [ $((i % DL_N)) -eq 0 ]; then wait; fi
done
wait
'''

_REACH_SH = r'''
if command -v python3 >/dev/null 2>&1; then exec python3 -c "$DL_PY"; fi
if command -v bash >/dev/null 2>&1 && command -v timeout >/dev/null 2>&1; then exec bash -c "$DL_BASH"; fi
if command -v busybox >/dev/null 2>&1; then exec sh -c "$DL_BB"; fi
echo "the container has none of python3, bash with timeout, or busybox (nc) to test connections" >&2
exit 127
'''


def parse_reach_output(text):
    """``{'address:port': True/False}`` from the probe script's output."""
    result = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[1] in ('open', 'closed'):
            result[fields[0]] = fields[1] == 'open'
    return result


def reach_plan(containers, records, flows):
    """``(sources, targets)``: the running declared ones of the report's ``containers``, and
    ``{name: (component, [addresses], [ports])}`` of those with a port to try: the record's
    ``expose`` and the flows' ports to its component."""
    declared = {record['name']: record for record in records}
    flow_ports = {}
    for flow in flows or []:
        if str(flow.get('port', '')).isdigit():
            flow_ports.setdefault(flow.get('to'), set()).add(int(flow['port']))
    sources, targets = [], {}
    for container in containers:
        record = declared.get(container['name'])
        if record is None:
            continue
        if container['running']:
            sources.append(container['name'])
        ports = sorted(set(record['expose']) | flow_ports.get(record['component'], set()))
        if ports:
            addresses = sorted({n['ipv4_address'] for n in container['networks'] if n['ipv4_address']}, key=ip_key)
            targets[container['name']] = (record['component'], addresses if container['running'] else [], ports)
    return sorted(sources), targets


def probe_reachability(client, containers, records, flows, timeout=1.0, workers=16):
    """The reachability matrix: ``{'cells': [...], 'skipped': [...]}``.

    ``containers`` are the report's, ``records`` the model's. One exec (through ``client``, a
    docker.DockerClient) per running source container tests all its connects concurrently
    (each bounded by ``timeout`` seconds).
    """
    declared = {record['name']: record for record in records}
    allowed = {(f.get('from'), f.get('to'), int(f['port'])) for f in flows or [] if str(f.get('port', '')).isdigit()}
    sources, targets = reach_plan(containers, records, flows)
    skipped = []
    for container in sorted(containers, key=lambda c: c['name']):
        if container['name'] in declared and not container['running']:
            what = 'not running' if container.get('present', True) else 'missing'
            skipped.append({'container': container['name'], 'reason': f'{what}, so no connection was tried from it'})

    def run(source):
        endpoints = sorted({f'{address}:{port}' for target, (_svc, addresses, ports) in targets.items()
                            if target != source for address in addresses for port in ports})
        if not endpoints:
            return source, {}, None
        # a few connects at a time: each is a process or two, and the container has a pids limit
        env = {'DL_T': f'{timeout:g}', 'DL_TP': f'{timeout + PROCESS_START_S:g}', 'DL_N': str(PROBES_AT_ONCE), 'DL_TARGETS': ' '.join(endpoints),
               'DL_PY': _REACH_PY, 'DL_BASH': _REACH_BASH, 'DL_BB': _REACH_BUSYBOX}
        try:
            code, out, err = exec_in_container(client, source, ['sh', '-c', _REACH_SH], env)
        except Exception as exc:  # noqa: BLE001 pylint: disable=broad-except
            return source, None, str(exc).strip() or type(exc).__name__
        if code == 127:
            return source, None, err.decode('utf-8', 'replace').strip()
        return source, parse_reach_output(out.decode('utf-8', 'replace')), None

    cells = []
    for source, results, error in parallel(run, sources, workers):
        if results is None:
            skipped.append({'container': source, 'reason': error})
            continue
        from_service = declared[source]['component']
        for target, (to_service, addresses, ports) in sorted(targets.items()):
            if target == source:
                continue
            for port in ports:
                via = [a for a in addresses if results.get(f'{a}:{port}')]
                expected = (from_service, to_service, port) in allowed
                observed = bool(via)
                cells.append({'from': source, 'from_service': from_service, 'to': target, 'to_service': to_service,
                              'port': port, 'expected': expected, 'observed': observed, 'via': via,
                              'violation': expected != observed})
    cells.sort(key=lambda c: (c['from'], c['to'], c['port']))
    skipped.sort(key=lambda s: s['container'])
    return {'timeout': timeout, 'cells': cells, 'skipped': skipped}


def reachability_violations(matrix, containers=()):
    running = {c['name']: c['running'] for c in containers}
    violations = []
    for cell in (matrix or {}).get('cells') or []:
        if not cell['violation']:
            continue
        flow = f"{cell['from']} -> {cell['to']}:{cell['port']}"
        if cell['observed']:
            violations.append(violation('unexpected_flow', flow,
                                        f"flow {flow} is reachable but stack_flows does not allow it "
                                        f"({cell['from_service']} -> {cell['to_service']}:{cell['port']})"))
        else:
            why = '' if running.get(cell['to'], True) else f" ({cell['to']} is not running)"
            violations.append(violation('unreachable_allowed', flow,
                                        f'flow {flow} is allowed by stack_flows but unreachable{why}'))
    return violations
