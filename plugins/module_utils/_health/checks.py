# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The checks: container, http, tcp, dns, exec, mysql, redis, mongodb.

Each is ``check_<kind>(ctx, check)`` for a normalised check, returning an outcome dict
(see spec); a transport that fails raises ExchangeError, which the runner turns into a
failed outcome.
"""

from __future__ import annotations

import http.client
import ipaddress
import os
import re
import socket
import ssl
import struct
import time
from urllib.parse import urlsplit

from ansible_collections.dockerlab.ecommerce.plugins.module_utils.docker_client import (
    exec_in_container,
    is_not_found,
)
from ansible_collections.dockerlab.ecommerce.plugins.module_utils._health.protocols import (
    evaluate_http,
    http_request_bytes,
    interpret_redis,
    mongodb_ping_message,
    mongodb_reply_complete,
    mysql_greeting_complete,
    parse_getent,
    parse_http_response,
    parse_mongodb_reply,
    parse_mysql_greeting,
    parse_redis_replies,
    redis_command,
)
from ansible_collections.dockerlab.ecommerce.plugins.module_utils._topology.hardening import (
    actual_hardening,
    hardening_problems,
)
from ansible_collections.dockerlab.ecommerce.plugins.module_utils._health.spec import (
    CheckError,
    failed,
    passed,
    shorten,
)
from ansible_collections.dockerlab.ecommerce.plugins.module_utils._health.transports import (
    EXIT_NO_TOOL,
    EXIT_TIMEOUT,
    ExchangeError,
    container_exchange,
    exchange,
)


class Context:
    """What the checks share: the Docker client (may be None when no check needs one)."""

    def __init__(self, client=None):
        self.client = client
        self._image_users = {}   # an image's USER does not change: asked once per run

    def inspect(self, container):
        return self.client.api.inspect_container(container)

    def image_user(self, image):
        """The USER of an image (by id), which a container that sets none runs as; the
        container checks are retried until their deadline, the image is inspected once."""
        if image not in self._image_users:
            try:
                info = self.client.api.inspect_image(image) or {}
            except Exception as exc:  # noqa: BLE001 pylint: disable=broad-except
                if not is_not_found(exc):
                    raise
                info = {}
            self._image_users[image] = (info.get('Config') or {}).get('User') or ''
        return self._image_users[image]


def check_container(ctx, check):
    name = check['container']
    try:
        info = ctx.inspect(name)
    except Exception as exc:  # noqa: BLE001 pylint: disable=broad-except
        if is_not_found(exc):
            return failed('a container named ' + name, 'no such container', {'exists': False})
        raise
    state = info.get('State') or {}
    health = state.get('Health') or {}
    log = health.get('Log') or []
    last_output = (log[-1].get('Output') or '').strip() if log else ''
    observed = {
        'exists': True,
        'status': state.get('Status'),
        'running': bool(state.get('Running')),
        'restarting': bool(state.get('Restarting')),
        'exit_code': state.get('ExitCode'),
        'health': health.get('Status') or 'none',
        'health_output': last_output[-500:],
        'restart_count': info.get('RestartCount', 0),
        'networks': sorted(((info.get('NetworkSettings') or {}).get('Networks') or {}).keys()),
    }
    expected, saw = [], []
    want_state = check.get('state', 'running')
    if state.get('Restarting'):
        expected.append(want_state)
        saw.append(f"restarting (exit code {state.get('ExitCode')}, {observed['restart_count']} restarts)")
    elif observed['status'] != want_state:
        expected.append(want_state)
        extra = f" (exit code {state.get('ExitCode')})" if observed['status'] in ('exited', 'dead') else ''
        error = f": {state.get('Error')}" if state.get('Error') else ''
        saw.append(f"{observed['status']}{extra}{error}")
    if check.get('exit_code') is not None and observed['exit_code'] != check['exit_code'] and \
            observed['status'] == 'exited':
        expected.append(f"exit code {check['exit_code']}")
        saw.append(f"exit code {observed['exit_code']}")
    if check.get('health') == 'healthy' and health and observed['status'] == 'running' and \
            observed['health'] != 'healthy':
        expected.append('healthy')
        detail = f' (last probe: {shorten(last_output, 200)})' if last_output else ''
        saw.append(f"{observed['health']}{detail}")
    restarts = observed['restart_count'] or 0
    if check.get('baseline_restarts') is not None and restarts > check['baseline_restarts']:
        expected.append(f"no restarts since the baseline ({check['baseline_restarts']})")
        saw.append(f'{restarts} restarts')
    if check.get('max_restarts') is not None and restarts > check['max_restarts']:
        expected.append(f"at most {check['max_restarts']} restarts")
        saw.append(f'{restarts} restarts')
    missing = sorted(set(check.get('networks') or []) - set(observed['networks']))
    if missing:
        expected.append('attached to ' + ', '.join(missing))
        saw.append('attached to ' + (', '.join(observed['networks']) or 'no network'))
    for label, value in sorted((check.get('labels') or {}).items()):
        actual = ((info.get('Config') or {}).get('Labels') or {}).get(label)
        if actual != value:
            expected.append(f'label {label}={value}')
            saw.append(f'{label}={actual}' if actual is not None else f'no {label} label')
    declared = check.get('hardening')
    if declared:
        image_user = '' if (info.get('Config') or {}).get('User') else ctx.image_user(info.get('Image'))
        actual = actual_hardening(info, image_user)
        observed['hardening'] = actual
        problems = hardening_problems(actual, declared['security'], declared.get('resources') or {})
        if problems:
            expected.append('hardened and limited as declared')
            saw.append('; '.join(problems))
    if expected:
        return failed(' and '.join(expected), '; '.join(saw), observed)
    parts = [observed['status']]
    if health:
        parts.append(observed['health'])
    parts.append(f'{restarts} restarts')
    return passed(', '.join(parts), observed)


def check_tcp(ctx, check):
    exchange(ctx, check, mode='connect')
    return passed(f"port {check['port']} accepts connections", {'connected': True})


def check_mysql(ctx, check):
    data = exchange(ctx, check, mode='once', complete=mysql_greeting_complete)
    try:
        greeting = parse_mysql_greeting(data)
    except ValueError as exc:
        return failed('a MySQL server greeting', f'{exc} ({data[:32]!r})', {'raw': data[:64].hex()})
    if greeting['kind'] == 'error':
        return passed(f"alive, but it refuses this client: error {greeting['code']} {greeting['message']}",
                      greeting)
    return passed(f"MySQL protocol {greeting['protocol']}, server {greeting['server_version']}", greeting)


def read_password_file(path):
    try:
        with open(os.path.expanduser(path), 'rb') as handle:
            return handle.read().strip().decode('utf-8')
    except OSError as exc:
        raise CheckError(f'password_file {path} cannot be read on the target: {exc.strerror or exc}') from None


def check_redis(ctx, check):
    password = None
    if check.get('password_file'):
        password = read_password_file(check['password_file'])
    payload = (redis_command('AUTH', password) if password else b'') + redis_command('PING')
    wanted = 2 if password else 1
    data = exchange(ctx, check, payload, mode='once',
                    complete=lambda d: d.count(b'\r\n') >= wanted or d.startswith(b'-NOAUTH'))
    return interpret_redis(parse_redis_replies(data), bool(password))


def check_mongodb(ctx, check):
    request_id = int(time.time() * 1000) % 2 ** 31
    data = exchange(ctx, check, mongodb_ping_message(request_id), mode='once', complete=mongodb_reply_complete)
    try:
        _header, body = parse_mongodb_reply(data, request_id)
    except (ValueError, struct.error) as exc:
        return failed('an OP_MSG reply to {ping: 1}', f'{exc}', {'raw': data[:64].hex()})
    observed = {'reply': {k: v for k, v in body.items() if not isinstance(v, bytes)}}
    if body.get('ok') in (1, 1.0, True):
        return passed('ping ok', observed)
    return failed('ok: 1', f"ok: {body.get('ok')} {body.get('errmsg', '')}".strip(), observed)


def check_http(ctx, check):
    if check.get('from_container'):
        response = _http_from_container(ctx, check)
    else:
        response = _http_from_host(check)
    return evaluate_http(check, response)


def _http_from_host(check):
    parts = urlsplit(check['url'])
    path = parts.path or '/'
    if parts.query:
        path += '?' + parts.query
    if parts.scheme == 'https':
        context = ssl.create_default_context()
        if not check.get('validate_certs', True):
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        conn = http.client.HTTPSConnection(parts.hostname, parts.port or 443, timeout=check['timeout'],
                                           context=context)
    else:
        conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=check['timeout'])
    body = check.get('body')
    try:
        conn.request(check['method'], path, body=body.encode('utf-8') if isinstance(body, str) else body,
                     headers=dict(check.get('request_headers') or {}))
        resp = conn.getresponse()
        data = resp.read()
        headers = {}
        for name, value in resp.getheaders():
            name = name.lower()
            headers[name] = f'{headers[name]}, {value}' if name in headers else value
        return {'status': resp.status, 'reason': resp.reason, 'headers': headers, 'body': data}
    except socket.timeout:
        raise ExchangeError(f"no answer from {check['url']} within {check['timeout']:g}s") from None
    except (OSError, http.client.HTTPException) as exc:
        raise ExchangeError(f"request to {check['url']} failed: {getattr(exc, 'strerror', None) or exc}") from None
    finally:
        conn.close()


_CURL_SH = r'''
command -v curl >/dev/null 2>&1 || { echo "the container has no curl for an https request" >&2; exit 127; }
set -- -sS -i --max-time "$DL_T" -X "$DL_METHOD"
[ "$DL_INSECURE" = 1 ] && set -- "$@" -k
exec curl "$@" "$DL_URL"
'''


def _http_from_container(ctx, check):
    url = check['url']
    parts = urlsplit(url)
    if parts.scheme == 'http':
        payload = http_request_bytes(check['method'], url, check.get('request_headers'), check.get('body'))
        host = parts.hostname
        port = parts.port or 80
        data = container_exchange(ctx.client, check['from_container'], host, port, payload, 'eof', check['timeout'])
    else:
        env = {'DL_T': f"{check['timeout']:g}", 'DL_METHOD': check['method'], 'DL_URL': url,
               'DL_INSECURE': '0' if check.get('validate_certs', True) else '1'}
        exit_code, out, err = exec_in_container(ctx.client, check['from_container'], ['sh', '-c', _CURL_SH], env)
        if exit_code != 0:
            detail = err.decode('utf-8', 'replace').strip() or f'exit code {exit_code}'
            raise ExchangeError(f'request to {url} failed: {detail}')
        data = out
    if not data:
        raise ExchangeError(f'{url} closed the connection without an answer')
    try:
        return parse_http_response(data)
    except ValueError as exc:
        raise ExchangeError(f'{url} did not answer HTTP: {exc}') from None


_DNS_SH = r'''
if command -v getent >/dev/null 2>&1; then getent "$DL_DB" "$DL_NAME"; exit $?; fi
if command -v python3 >/dev/null 2>&1; then
  exec python3 -c 'import os, socket
fam = socket.AF_INET if os.environ["DL_DB"] == "ahostsv4" else 0
try:
    infos = socket.getaddrinfo(os.environ["DL_NAME"], None, fam)
except socket.gaierror:
    raise SystemExit(2)
for info in infos: print(info[4][0])'
fi
echo "the container has neither getent nor python3 to resolve names" >&2
exit 127
'''


def container_addresses(info, networks=None):
    """``{network name: IPv4 address}`` of an inspected container (only ``networks`` when given)."""
    result = {}
    for name, settings in ((info.get('NetworkSettings') or {}).get('Networks') or {}).items():
        if networks is not None and name not in networks:
            continue
        if settings.get('IPAddress'):
            result[name] = settings['IPAddress']
        if settings.get('GlobalIPv6Address'):
            result[name + ' (IPv6)'] = settings['GlobalIPv6Address']
    return result


def _expected_addresses(ctx, check):
    """The addresses ``expected_container`` has on the networks it shares with the check's container.

    For a list of containers (replicas answering to one name): the addresses of every one of
    them that exists (a missing replica is the business of its container check).
    """
    container = check['container']
    names = check['expected_container']
    several = isinstance(names, list)
    source_networks = set(container_addresses(ctx.inspect(container)))
    expected = set()
    for name in names if several else [names]:
        try:
            other = ctx.inspect(name)
        except Exception as exc:  # noqa: BLE001 pylint: disable=broad-except
            if several and is_not_found(exc):
                continue
            raise
        expected.update(container_addresses(other, source_networks).values())
    return sorted(expected)


def check_dns(ctx, check):
    """The name resolves, inside ``container``, to the expected addresses: exactly those of
    ``expected``; for ``expected_container`` (one or a list), to at least one address and
    only to addresses those containers have on the networks they share with ``container``."""
    container = check['container']
    expected = check.get('expected')
    several = isinstance(check.get('expected_container'), list) and expected is None
    if expected is None:
        expected = _expected_addresses(ctx, check)
        if not expected:
            names = ', '.join(check['expected_container']) if several else check['expected_container']
            return failed(f'the addresses of {names} on a network shared with {container}',
                          'no shared network', {'shared_networks': []})
    db = 'ahostsv4' if all(ipaddress.ip_address(a).version == 4 for a in expected) else 'ahosts'
    exit_code, out, err = exec_in_container(ctx.client, container, ['sh', '-c', _DNS_SH],
                                            {'DL_DB': db, 'DL_NAME': check['query']})
    if exit_code == EXIT_NO_TOOL:
        raise ExchangeError(err.decode('utf-8', 'replace').strip())
    addresses = parse_getent(out.decode('utf-8', 'replace'))
    observed = {'addresses': addresses, 'expected': list(expected)}
    saw = ', '.join(addresses) if addresses else 'no address (the name does not resolve)'
    if several or 'expected' not in check or check.get('expected') is None:
        # A container on several networks it shares with the client answers on one of them
        # (Docker's DNS gives one address per container): any of its addresses, none other.
        if not addresses or not set(addresses) <= set(expected):
            return failed(f"addresses among {', '.join(expected)}", saw, observed)
    elif sorted(set(addresses)) != sorted(set(expected)):
        return failed(', '.join(sorted(set(expected))), saw, observed)
    return passed(f"{check['query']} resolves to {', '.join(addresses)}", observed)


_EXEC_WRAP = 'if command -v timeout >/dev/null 2>&1; then exec timeout "$0" "$@"; fi; exec "$@"'


def check_exec(ctx, check):
    command = check['command']
    argv = ['sh', '-c', command] if isinstance(command, str) else [str(c) for c in command]
    exit_code, out, err = exec_in_container(ctx.client, check['container'],
                                            ['sh', '-c', _EXEC_WRAP, f"{check['timeout']:g}"] + argv)
    output = (out + err).decode('utf-8', 'replace')
    observed = {'rc': exit_code, 'output': output[-2000:]}
    if exit_code == EXIT_TIMEOUT and check['rc'] != EXIT_TIMEOUT:
        return failed(f"exit code {check['rc']}", f"no end within {check['timeout']:g}s", observed)
    if exit_code != check['rc']:
        return failed(f"exit code {check['rc']}", f'exit code {exit_code}: {shorten(output)}', observed)
    if check.get('output_regex') is not None and not re.search(check['output_regex'], output):
        return failed(f"output matching /{check['output_regex']}/", repr(shorten(output)), observed)
    return passed(f'exit code {exit_code}', observed)


RUNNERS = {
    'container': check_container, 'http': check_http, 'tcp': check_tcp, 'dns': check_dns, 'exec': check_exec,
    'mysql': check_mysql, 'redis': check_redis, 'mongodb': check_mongodb,
}
NEEDS_DOCKER = ('container', 'dns', 'exec')


def needs_docker(check):
    return check['kind'] in NEEDS_DOCKER or bool(check.get('from_container'))
