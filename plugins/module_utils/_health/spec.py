# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What a check is: normalize_check() of its definition, HTTP status ranges, JSON paths, outcomes.

A check's outcome is a dict ``{'passed', 'message', 'observed'}``; a failed check's
message is ``expected <...>, saw <...>``.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from urllib.parse import urlsplit

CHECK_KINDS = ('container', 'http', 'tcp', 'dns', 'exec', 'mysql', 'redis', 'mongodb')
DEFAULT_PORTS = {'mysql': 3306, 'redis': 6379, 'mongodb': 27017, 'http': 80}
DEFAULT_STATUS = [[200, 299]]
DEFAULT_TIMEOUT = 5.0
DEFAULT_RETRIES = 0
DEFAULT_DELAY = 1.0


class CheckError(Exception):
    """A check definition that cannot be run; the message says how to fix it."""


def passed(message, observed=None):
    return {'passed': True, 'message': message, 'observed': observed if observed is not None else {}}


def failed(expected, saw, observed=None):
    return {'passed': False, 'message': f'expected {expected}, saw {saw}',
            'observed': observed if observed is not None else {}}


def shorten(text, limit=120):
    text = ' '.join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + '...'


# ---------------------------------------------------------------------------
# HTTP status ranges and JSON paths
# ---------------------------------------------------------------------------

_RANGE_RE = re.compile(r'^\s*([0-9]{3})\s*(?:-\s*([0-9]{3})\s*)?$')


def parse_status(spec):
    """Accepted HTTP status codes as a sorted list of inclusive ``[low, high]`` ranges.

    ``200``, ``'200'``, ``'200-299'``; a list of exactly two integers ``[200, 299]`` is the
    range 200..299; any other list (``[200, 204, 301]``, ``['200', '204']``,
    ``['200-299', 304]``) is a set of codes and ranges.  None gives 200-299.
    """
    if spec is None:
        return [list(r) for r in DEFAULT_STATUS]
    if isinstance(spec, bool):
        raise CheckError(f'status {spec!r} is not an HTTP status; write 200, "200-299" or [200, 299]')
    if isinstance(spec, int):
        return [[spec, spec]]
    if isinstance(spec, str):
        match = _RANGE_RE.match(spec)
        if not match:
            raise CheckError(f'status {spec!r} is not an HTTP status or range; write 200, "200-299" or [200, 299]')
        low = int(match.group(1))
        high = int(match.group(2) or low)
        if high < low:
            raise CheckError(f'status range {spec!r} ends before it starts; write it low-high, like "200-299"')
        return [[low, high]]
    if isinstance(spec, (list, tuple)):
        if not spec:
            raise CheckError('status is an empty list; give at least one code, like [200, 299]')
        if (len(spec) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in spec)
                and spec[0] < spec[1]):
            return [[spec[0], spec[1]]]
        ranges = []
        for item in spec:
            ranges.extend(parse_status(item))
        return sorted(ranges)
    raise CheckError(f'status {spec!r} is not an HTTP status; write 200, "200-299" or [200, 299]')


def status_matches(code, ranges):
    return any(low <= code <= high for low, high in ranges)


def describe_status(ranges):
    parts = [str(low) if low == high else f'{low}-{high}' for low, high in ranges]
    return 'HTTP ' + ' or '.join(parts)


MISSING = object()
_PATH_TOKEN_RE = re.compile(r'[^.\[\]]+|\[\d+\]')


def json_path(document, path):
    """The value at a dotted path (``data.items.0.name`` or ``data.items[0].name``); MISSING when absent."""
    current = document
    for token in _PATH_TOKEN_RE.findall(str(path)):
        if token.startswith('['):
            token = token[1:-1]
        if isinstance(current, Mapping):
            if token not in current:
                return MISSING
            current = current[token]
        elif isinstance(current, list):
            if not token.lstrip('-').isdigit():
                return MISSING
            index = int(token)
            if not -len(current) <= index < len(current):
                return MISSING
            current = current[index]
        else:
            return MISSING
    return current


def values_equal(actual, expected):
    """Equality that forgives YAML's typing: 1 == '1', True == 'true', 1.0 == 1."""
    if actual == expected and isinstance(actual, bool) == isinstance(expected, bool):
        return True
    if isinstance(expected, str) and not isinstance(actual, str):
        return json.dumps(actual) == expected or str(actual) == expected
    return False


# ---------------------------------------------------------------------------
# normalisation of a check definition
# ---------------------------------------------------------------------------

def _number(value, what, minimum=0.0):
    if isinstance(value, bool):
        raise CheckError(f'{what} is {value!r}; give a number')
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise CheckError(f'{what} is {value!r}; give a number') from None
    if number < minimum:
        raise CheckError(f'{what} is {value!r}; it must be at least {minimum:g}')
    return number


def _port(value, what='port'):
    if isinstance(value, bool):
        raise CheckError(f'{what} is {value!r}; give a TCP port number (1-65535)')
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise CheckError(f'{what} is {value!r}; give a TCP port number (1-65535)') from None
    if not 1 <= port <= 65535:
        raise CheckError(f'{what} is {value!r}; give a TCP port number (1-65535)')
    return port


def _require(check, key, kind):
    value = check.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise CheckError(f'a {kind} check needs {key}')
    return value


def _compile(pattern, what):
    try:
        return re.compile(pattern)
    except (re.error, TypeError) as exc:
        raise CheckError(f'{what} {pattern!r} is not a valid regular expression ({exc})') from None


def _target(check):
    kind = check['kind']
    via = f" from {check['from_container']}" if check.get('from_container') else ''
    if kind == 'container':
        return check['container']
    if kind == 'http':
        return check['url'] + via
    if kind == 'dns':
        return f"{check['query']} in {check['container']}"
    if kind == 'exec':
        return check['container']
    return f"{check['host']}:{check['port']}{via}"


def _normalize_dns(check):
    _require(check, 'container', 'dns')
    # for a dns check, name is the name to resolve (label names the check)
    check['query'] = str(check['query'] if check.get('query') else _require(check, 'name', 'dns'))
    check.pop('name', None)
    if check.get('expected') is None and not check.get('expected_container'):
        raise CheckError('a dns check needs expected (a list of addresses) or expected_container')
    if check.get('expected') is not None:
        expected = check['expected']
        expected = [expected] if isinstance(expected, str) else list(expected)
        for address in expected:
            try:
                ipaddress.ip_address(str(address))
            except ValueError:
                raise CheckError(f'expected address {address!r} is not an IP address') from None
        check['expected'] = sorted({ipaddress.ip_address(str(a)).compressed for a in expected})
    elif isinstance(check['expected_container'], (list, tuple)):
        # several containers answering to one name (replicas): the name resolves to some of theirs
        if not all(isinstance(name, str) and name.strip() for name in check['expected_container']):
            raise CheckError('expected_container is a list with an entry that is not a container name')
        check['expected_container'] = [str(name) for name in check['expected_container']]
    elif not isinstance(check['expected_container'], str):
        raise CheckError(f"expected_container {check['expected_container']!r} is not a container name "
                         'or a list of them')


def normalize_check(raw, defaults=None):
    """A validated copy of one check definition, with defaults filled in; raises CheckError."""
    defaults = defaults or {}
    if not isinstance(raw, Mapping):
        raise CheckError(f'{raw!r} is not a mapping; write each check as {{kind: ..., ...}}')
    check = dict(raw)
    kind = check.get('kind')
    if kind not in CHECK_KINDS:
        raise CheckError(f"kind {kind!r} is not known; use one of: {', '.join(CHECK_KINDS)}")
    check['timeout'] = _number(check.get('timeout', defaults.get('timeout', DEFAULT_TIMEOUT)), 'timeout', 0.1)
    check['retries'] = int(_number(check.get('retries', defaults.get('retries', DEFAULT_RETRIES)), 'retries'))
    check['delay'] = _number(check.get('delay', defaults.get('delay', DEFAULT_DELAY)), 'delay')

    if kind == 'container':
        _require(check, 'container', kind)
        check.setdefault('state', 'running')
        check.setdefault('health', 'healthy')
        if check['health'] not in ('healthy', 'any'):
            raise CheckError(f"health {check['health']!r} is not known; use healthy or any")
        for key in ('max_restarts', 'baseline_restarts', 'exit_code'):
            if check.get(key) is not None:
                check[key] = int(_number(check[key], key))
    elif kind == 'http':
        url = _require(check, 'url', kind)
        parts = urlsplit(url)
        if parts.scheme not in ('http', 'https') or not parts.hostname:
            raise CheckError(f'url {url!r} is not an http:// or https:// URL')
        check['method'] = str(check.get('method') or 'GET').upper()
        check['status_ranges'] = parse_status(check.get('status'))
        if check.get('body_regex') is not None:
            _compile(check['body_regex'], 'body_regex')
        for name, pattern in (check.get('headers') or {}).items():
            _compile(pattern, f'headers.{name}')
        if check.get('json') is not None and not isinstance(check['json'], Mapping):
            raise CheckError('json must be a mapping of dotted path to expected value, like {status: UP}')
        check.setdefault('validate_certs', True)
    elif kind == 'dns':
        _normalize_dns(check)
    elif kind == 'exec':
        _require(check, 'container', kind)
        command = _require(check, 'command', kind)
        if not isinstance(command, (str, list)):
            raise CheckError('command must be a string (run by sh -c) or a list (argv)')
        check['rc'] = int(_number(check.get('rc', 0), 'rc'))
        if check.get('output_regex') is not None:
            _compile(check['output_regex'], 'output_regex')
    else:   # tcp and the protocol probes
        check['host'] = str(check.get('host') or ('127.0.0.1' if check.get('from_container') else ''))
        if not check['host']:
            raise CheckError(f'a {kind} check needs host (or from_container, to connect from inside a container)')
        if check.get('port') is None and kind in DEFAULT_PORTS:
            check['port'] = DEFAULT_PORTS[kind]
        check['port'] = _port(check.get('port'))
    check['target'] = _target(check)
    check['name'] = str(check.get('label') or check.get('name') or f"{kind} {check['target']}")
    return check
