# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The check engine of the stack_health module.

Parts, each usable on its own (and unit-tested without Docker):

* option parsing: normalize_check(), parse_status(), json_path();
* wire protocols: the MySQL server greeting, Redis RESP replies, MongoDB OP_MSG
  (with a minimal BSON codec), HTTP/1.0 requests and responses;
* transports: a TCP exchange from this host (socket_exchange) or from inside a
  container (container_exchange: one ``docker exec`` of a small python3, bash
  ``/dev/tcp`` or busybox ``nc`` script, whichever the container has);
* the checks (container, http, tcp, dns, exec, mysql, redis, mongodb);
* the runner: retries, delay, a run deadline, a thread pool (run_checks());
* derive_checks() from the topology data, failure_lines() and junit_xml().

A check's outcome is a dict ``{'passed', 'message', 'observed'}``; a failed check's
message is ``expected <...>, saw <...>``.
"""

from __future__ import annotations

import binascii
import concurrent.futures
import http.client
import ipaddress
import json
import os
import re
import socket
import ssl
import struct
import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from urllib.parse import urlsplit

from ansible_collections.dockerlab.ecommerce.plugins.module_utils.topology import expand_containers

CHECK_KINDS = ('container', 'http', 'tcp', 'dns', 'exec', 'mysql', 'redis', 'mongodb')
PROBE_KINDS = ('mysql', 'redis', 'mongodb', 'http', 'tcp')
DEFAULT_PORTS = {'mysql': 3306, 'redis': 6379, 'mongodb': 27017, 'http': 80}
DEFAULT_STATUS = [[200, 299]]
DEFAULT_TIMEOUT = 5.0
DEFAULT_RETRIES = 0
DEFAULT_DELAY = 1.0
# the smallest pause between two attempts while waiting for the deadline
MIN_DEADLINE_PAUSE = 0.05
EXIT_TIMEOUT = 124
EXIT_NO_TOOL = 127


class CheckError(Exception):
    """A check definition that cannot be run; the message says how to fix it."""


def _passed(message, observed=None):
    return {'passed': True, 'message': message, 'observed': observed if observed is not None else {}}


def _failed(expected, saw, observed=None):
    return {'passed': False, 'message': f'expected {expected}, saw {saw}',
            'observed': observed if observed is not None else {}}


# ---------------------------------------------------------------------------
# option parsing
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


_MISSING = object()
_PATH_TOKEN_RE = re.compile(r'[^.\[\]]+|\[\d+\]')


def json_path(document, path):
    """The value at a dotted path (``data.items.0.name`` or ``data.items[0].name``); _MISSING when absent."""
    current = document
    for token in _PATH_TOKEN_RE.findall(str(path)):
        if token.startswith('['):
            token = token[1:-1]
        if isinstance(current, Mapping):
            if token not in current:
                return _MISSING
            current = current[token]
        elif isinstance(current, list):
            if not token.lstrip('-').isdigit():
                return _MISSING
            index = int(token)
            if not -len(current) <= index < len(current):
                return _MISSING
            current = current[index]
        else:
            return _MISSING
    return current


def values_equal(actual, expected):
    """Equality that forgives YAML's typing: 1 == '1', True == 'true', 1.0 == 1."""
    if actual == expected and isinstance(actual, bool) == isinstance(expected, bool):
        return True
    if isinstance(expected, str) and not isinstance(actual, str):
        return json.dumps(actual) == expected or str(actual) == expected
    return False


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
        _require(check, 'container', kind)
        # for a dns check, name is the name to resolve (label names the check)
        check['query'] = str(check['query'] if check.get('query') else _require(check, 'name', kind))
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


# ---------------------------------------------------------------------------
# wire protocols
# ---------------------------------------------------------------------------

def parse_mysql_greeting(data):
    """The MySQL/MariaDB server's first packet: ``{'kind': 'handshake', 'protocol', 'server_version',
    'connection_id'}`` or ``{'kind': 'error', 'code', 'message'}``; raises ValueError when it is neither."""
    if len(data) < 5:
        raise ValueError(f'a {len(data)}-byte answer is too short for a MySQL packet')
    length = int.from_bytes(data[0:3], 'little')
    payload = data[4:4 + length]
    if len(payload) < length:
        raise ValueError(f'the MySQL packet announces {length} bytes but only {len(payload)} arrived')
    if payload[0] == 0xff:
        code = int.from_bytes(payload[1:3], 'little') if len(payload) >= 3 else 0
        message = payload[3:]
        if message[:1] == b'#':
            message = message[6:]
        return {'kind': 'error', 'code': code, 'message': message.decode('utf-8', 'replace')}
    if payload[0] != 10:
        raise ValueError(f'protocol version {payload[0]} is not the MySQL handshake v10')
    end = payload.find(b'\x00', 1)
    if end < 0:
        raise ValueError('the server version in the greeting is not terminated')
    version = payload[1:end].decode('utf-8', 'replace')
    connection_id = int.from_bytes(payload[end + 1:end + 5], 'little') if len(payload) >= end + 5 else None
    return {'kind': 'handshake', 'protocol': 10, 'server_version': version, 'connection_id': connection_id}


def mysql_greeting_complete(data):
    return len(data) >= 4 and len(data) >= 4 + int.from_bytes(data[0:3], 'little')


def redis_command(*args):
    """A RESP array of bulk strings (safe for any password)."""
    out = [f'*{len(args)}\r\n'.encode()]
    for arg in args:
        raw = arg if isinstance(arg, bytes) else str(arg).encode('utf-8')
        out.append(f'${len(raw)}\r\n'.encode() + raw + b'\r\n')
    return b''.join(out)


def parse_redis_replies(data):
    """The simple replies (``+OK``, ``-ERR ...``, ``:1``) in ``data``, as text lines."""
    return [line for line in data.decode('utf-8', 'replace').split('\r\n') if line]


def interpret_redis(replies, authenticated):
    """Outcome of PING (with AUTH before it when ``authenticated``)."""
    observed = {'replies': replies}
    if authenticated:
        if any(r.startswith('+PONG') for r in replies):
            auth = replies[0] if replies else ''
            if auth.startswith('-'):
                observed['auth'] = auth[1:]
                return _passed(f'PONG (the password was not needed: {auth[1:]})', observed)
            observed['auth'] = 'ok'
            return _passed('PONG (authenticated)', observed)
        return _failed('+OK then +PONG to AUTH and PING', ', '.join(replies) or 'no reply', observed)
    if not replies:
        return _failed('+PONG or a NOAUTH error', 'no reply', observed)
    first = replies[0]
    if first.startswith('+PONG'):
        observed['auth'] = 'not required'
        return _passed('PONG (no password required)', observed)
    if first.startswith('-NOAUTH'):
        observed['auth'] = 'required'
        return _passed('alive: NOAUTH (a password is required; set password_file to check it)', observed)
    return _failed('+PONG or a NOAUTH error', first, observed)


# --- BSON (just enough for OP_MSG) ---

def bson_encode(document):
    """BSON bytes of a dict of str -> (dict, list, str, bool, int, float, None, bytes)."""
    body = b''.join(_bson_element(str(k), v) for k, v in document.items())
    return struct.pack('<i', len(body) + 5) + body + b'\x00'


def _cstring(text):
    raw = text.encode('utf-8')
    if b'\x00' in raw:
        raise ValueError('BSON keys cannot contain NUL')
    return raw + b'\x00'


def _bson_element(key, value):
    name = _cstring(key)
    if isinstance(value, bool):
        return b'\x08' + name + (b'\x01' if value else b'\x00')
    if isinstance(value, int):
        if -2 ** 31 <= value < 2 ** 31:
            return b'\x10' + name + struct.pack('<i', value)
        return b'\x12' + name + struct.pack('<q', value)
    if isinstance(value, float):
        return b'\x01' + name + struct.pack('<d', value)
    if isinstance(value, str):
        raw = value.encode('utf-8') + b'\x00'
        return b'\x02' + name + struct.pack('<i', len(raw)) + raw
    if value is None:
        return b'\x0a' + name
    if isinstance(value, Mapping):
        return b'\x03' + name + bson_encode(value)
    if isinstance(value, (list, tuple)):
        return b'\x04' + name + bson_encode({str(i): v for i, v in enumerate(value)})
    if isinstance(value, bytes):
        return b'\x05' + name + struct.pack('<i', len(value)) + b'\x00' + value
    raise ValueError(f'cannot encode {type(value).__name__} in BSON')


_BSON_FIXED = {0x07: 12, 0x09: 8, 0x11: 8, 0x13: 16, 0xff: 0, 0x7f: 0}


def bson_decode(data):
    """The dict in BSON bytes (types: double, string, document, array, binary, ObjectId, bool,
    datetime, null, int32, timestamp, int64, decimal128; the opaque ones as hex strings)."""
    document, end = _bson_document(data, 0)
    if end != len(data):
        raise ValueError(f'{len(data) - end} bytes follow the BSON document')
    return document


def _bson_document(data, offset):
    if len(data) < offset + 5:
        raise ValueError('truncated BSON document')
    (length,) = struct.unpack_from('<i', data, offset)
    end = offset + length
    if length < 5 or end > len(data) or data[end - 1] != 0:
        raise ValueError('malformed BSON document length')
    pos = offset + 4
    result = {}
    while pos < end - 1:
        kind = data[pos]
        name_end = data.index(b'\x00', pos + 1)
        name = data[pos + 1:name_end].decode('utf-8', 'replace')
        pos = name_end + 1
        if kind == 0x01:
            (value,) = struct.unpack_from('<d', data, pos)
            pos += 8
        elif kind in (0x02, 0x0d, 0x0e):
            (size,) = struct.unpack_from('<i', data, pos)
            value = data[pos + 4:pos + 4 + size - 1].decode('utf-8', 'replace')
            pos += 4 + size
        elif kind in (0x03, 0x04):
            value, pos = _bson_document(data, pos)
            if kind == 0x04:
                value = [value[k] for k in sorted(value, key=int)]
        elif kind == 0x05:
            (size,) = struct.unpack_from('<i', data, pos)
            value = data[pos + 5:pos + 5 + size]
            pos += 5 + size
        elif kind == 0x08:
            value = data[pos] != 0
            pos += 1
        elif kind == 0x0a:
            value = None
        elif kind == 0x10:
            (value,) = struct.unpack_from('<i', data, pos)
            pos += 4
        elif kind == 0x12:
            (value,) = struct.unpack_from('<q', data, pos)
            pos += 8
        elif kind in _BSON_FIXED:
            size = _BSON_FIXED[kind]
            value = binascii.hexlify(data[pos:pos + size]).decode()
            pos += size
        else:
            raise ValueError(f'BSON type 0x{kind:02x} is not supported')
        result[name] = value
    return result, end


OP_MSG = 2013


def mongodb_ping_message(request_id=1, database='admin'):
    """An OP_MSG (opCode 2013) with flagBits 0 and one body section {ping: 1, $db: <database>}."""
    body = struct.pack('<I', 0) + b'\x00' + bson_encode({'ping': 1, '$db': database})
    return struct.pack('<iiii', 16 + len(body), request_id, 0, OP_MSG) + body


def mongodb_reply_complete(data):
    return len(data) >= 4 and len(data) >= struct.unpack_from('<i', data, 0)[0]


def parse_mongodb_reply(data, request_id=None):
    """``(header dict, body document)`` of an OP_MSG reply; raises ValueError when malformed."""
    if len(data) < 21:
        raise ValueError(f'a {len(data)}-byte answer is too short for an OP_MSG')
    length, req_id, response_to, op_code = struct.unpack_from('<iiii', data, 0)
    if length > len(data):
        raise ValueError(f'the message announces {length} bytes but only {len(data)} arrived')
    if op_code != OP_MSG:
        raise ValueError(f'opCode {op_code} is not OP_MSG ({OP_MSG})')
    if request_id is not None and response_to != request_id:
        raise ValueError(f'responseTo {response_to} does not answer request {request_id}')
    (flags,) = struct.unpack_from('<I', data, 16)
    end = length - (4 if flags & 1 else 0)
    pos = 20
    body = None
    while pos < end:
        kind = data[pos]
        pos += 1
        if kind == 0:
            (size,) = struct.unpack_from('<i', data, pos)
            body = bson_decode(data[pos:pos + size])
            pos += size
        elif kind == 1:
            (size,) = struct.unpack_from('<i', data, pos)
            pos += size
        else:
            raise ValueError(f'OP_MSG section kind {kind} is not known')
    if body is None:
        raise ValueError('the OP_MSG has no body section')
    return {'length': length, 'request_id': req_id, 'response_to': response_to, 'flags': flags}, body


def http_request_bytes(method, url, headers=None, body=None):
    parts = urlsplit(url)
    path = parts.path or '/'
    if parts.query:
        path += '?' + parts.query
    host = parts.netloc.rsplit('@', 1)[-1]
    lines = [f'{method} {path} HTTP/1.0', f'Host: {host}', 'User-Agent: dockerlab-stack-health',
             'Accept: */*', 'Connection: close']
    for name, value in sorted((headers or {}).items()):
        lines.append(f'{name}: {value}')
    raw_body = body.encode('utf-8') if isinstance(body, str) else (body or b'')
    if raw_body:
        lines.append(f'Content-Length: {len(raw_body)}')
    return ('\r\n'.join(lines) + '\r\n\r\n').encode('latin-1') + raw_body


def _dechunk(body):
    out = b''
    while body:
        line, _sep, rest = body.partition(b'\r\n')
        try:
            size = int(line.split(b';')[0].strip() or b'0', 16)
        except ValueError:
            return out + body
        if size == 0:
            break
        out += rest[:size]
        body = rest[size + 2:]
    return out


def parse_http_response(data):
    """``{'status', 'reason', 'headers' (lower-case names), 'body' (bytes)}``; raises ValueError."""
    head, sep, body = data.partition(b'\r\n\r\n')
    if not sep:
        head, sep, body = data.partition(b'\n\n')
    lines = head.decode('latin-1').splitlines()
    # skip interim responses (100 Continue) that curl prints
    while lines and re.match(r'^HTTP/\S+\s+1\d\d', lines[0]) and (b'\r\n\r\n' in body or b'\n\n' in body):
        head, sep, body = body.partition(b'\r\n\r\n')
        lines = head.decode('latin-1').splitlines()
    if not lines:
        raise ValueError('empty answer')
    match = re.match(r'^HTTP/\S+\s+(\d{3})\s*(.*)$', lines[0])
    if not match:
        raise ValueError(f'{lines[0][:80]!r} is not an HTTP status line')
    headers = {}
    for line in lines[1:]:
        name, _sep, value = line.partition(':')
        name = name.strip().lower()
        if name:
            headers[name] = f'{headers[name]}, {value.strip()}' if name in headers else value.strip()
    if 'chunked' in headers.get('transfer-encoding', '').lower():
        body = _dechunk(body)
    return {'status': int(match.group(1)), 'reason': match.group(2).strip(), 'headers': headers, 'body': body}


def evaluate_http(check, response):
    """Outcome of an http check for a parsed response."""
    status = response['status']
    headers = response['headers']
    body = response['body']
    text = body.decode('utf-8', 'replace')
    observed = {'status': status, 'headers': headers, 'body': text[:512]}
    ranges = check.get('status_ranges') or parse_status(check.get('status'))
    if not status_matches(status, ranges):
        return _failed(describe_status(ranges), f'HTTP {status} {response.get("reason", "")}'.rstrip(), observed)
    for name, pattern in sorted((check.get('headers') or {}).items()):
        value = headers.get(str(name).lower())
        if value is None:
            return _failed(f'header {name} matching /{pattern}/', f'no {name} header', observed)
        if not re.search(pattern, value):
            return _failed(f'header {name} matching /{pattern}/', f'{name}: {value}', observed)
    if check.get('body_regex') is not None and not re.search(check['body_regex'], text):
        return _failed(f"a body matching /{check['body_regex']}/", repr(_shorten(text)), observed)
    if check.get('json'):
        try:
            document = json.loads(text)
        except ValueError:
            return _failed('a JSON body', repr(_shorten(text)), observed)
        for path, expected in sorted(check['json'].items()):
            actual = json_path(document, path)
            if actual is _MISSING:
                return _failed(f'{path} = {json.dumps(expected)}', f'no {path} in the JSON body', observed)
            if not values_equal(actual, expected):
                return _failed(f'{path} = {json.dumps(expected)}', f'{path} = {json.dumps(actual)}', observed)
    return _passed(f'HTTP {status}', observed)


def _shorten(text, limit=120):
    text = ' '.join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + '...'


# ---------------------------------------------------------------------------
# transports
# ---------------------------------------------------------------------------

class ExchangeError(Exception):
    """A TCP exchange that did not happen; the message is what was seen (for 'saw ...')."""


def socket_exchange(host, port, payload=b'', mode='once', timeout=5.0, complete=None):
    """Connect from this host, send ``payload``, read the answer.

    ``mode``: ``connect`` (read nothing), ``once`` (read until ``complete(data)`` or the first
    read when there is no ``complete``), ``eof`` (read until the peer closes).
    """
    try:
        sock = socket.create_connection((host, int(port)), timeout=timeout)
    except socket.timeout:
        raise ExchangeError(f'no connection to {host}:{port} within {timeout:g}s') from None
    except OSError as exc:
        raise ExchangeError(f'connection to {host}:{port} failed: {exc.strerror or exc}') from None
    data = b''
    try:
        sock.settimeout(timeout)
        if payload:
            sock.sendall(payload)
        while mode != 'connect':
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
            if mode == 'once' and (complete is None or complete(data)):
                break
    except socket.timeout:
        if not data:
            raise ExchangeError(f'no answer from {host}:{port} within {timeout:g}s') from None
    except OSError as exc:
        if not data:
            raise ExchangeError(f'{host}:{port} closed the connection: {exc.strerror or exc}') from None
    finally:
        sock.close()
    return data


_PY_EXCHANGE = r'''
import binascii, os, socket, sys
h, p, t, x, m = (os.environ['DL_H'], int(os.environ['DL_P']), float(os.environ['DL_T']),
                 os.environ.get('DL_X', ''), os.environ['DL_M'])
try:
    s = socket.create_connection((h, p), t)
except Exception as e:
    sys.stderr.write('connect: %s\n' % e)
    sys.exit(3)
s.settimeout(t)
d = b''
try:
    if x:
        s.sendall(binascii.unhexlify(x))
    while m != 'connect':
        c = s.recv(65536)
        if not c:
            break
        d += c
        if m == 'once':
            break
except Exception as e:
    if not d:
        sys.stderr.write('read: %s\n' % e)
        sys.exit(4)
sys.stdout.write('DL-OK ' + binascii.hexlify(d).decode() + '\n')
'''

_BASH_EXCHANGE = r'''
exec 3<>"/dev/tcp/$DL_H/$DL_P" || exit 3
if [ -n "$DL_X" ]; then printf "$(printf %s "$DL_X" | sed 's/../\\x&/g')" >&3 || exit 4; fi
case "$DL_M" in
  connect) d= ;;
  once) d=$(dd bs=65536 count=1 <&3 2>/dev/null | od -An -v -tx1) ;;
  *) d=$(cat <&3 | od -An -v -tx1) ;;
esac
echo "DL-OK $(printf %s "$d" | tr -d ' \n')"
'''

_BUSYBOX_EXCHANGE = r'''
if [ "$DL_M" = connect ]; then busybox nc -z -w "${DL_T%.*}" "$DL_H" "$DL_P" || exit 3; echo "DL-OK "; exit 0; fi
d=$(printf "$(printf %s "$DL_X" | sed 's/../\\x&/g')" | busybox nc -w "${DL_T%.*}" "$DL_H" "$DL_P" | busybox od -An -v -tx1) || exit 3
echo "DL-OK $(printf %s "$d" | tr -d ' \n')"
'''

# sh picks the first tool the container has; `timeout` bounds bash and busybox
_EXCHANGE_SH = r'''
if command -v python3 >/dev/null 2>&1; then exec python3 -c "$DL_PY"; fi
if command -v timeout >/dev/null 2>&1; then T="timeout $DL_T"; else T=; fi
if command -v bash >/dev/null 2>&1; then exec $T bash -c "$DL_BASH"; fi
if command -v busybox >/dev/null 2>&1; then exec $T sh -c "$DL_BB"; fi
echo "the container has none of python3, bash (/dev/tcp) or busybox (nc) to open a TCP connection" >&2
exit 127
'''


def exchange_environment(host, port, payload, mode, timeout):
    """The environment of the exchange script (the payload travels as hex in DL_X, not on the command line)."""
    return {
        'DL_H': str(host), 'DL_P': str(int(port)), 'DL_T': f'{max(float(timeout), 1.0):g}',
        'DL_X': binascii.hexlify(payload or b'').decode(), 'DL_M': mode,
        'DL_PY': _PY_EXCHANGE, 'DL_BASH': _BASH_EXCHANGE, 'DL_BB': _BUSYBOX_EXCHANGE,
    }


def parse_exchange_output(exit_code, stdout, stderr, host, port, timeout):
    """Bytes received by the exchange script, or ExchangeError with what happened."""
    text = stdout.decode('utf-8', 'replace') if isinstance(stdout, bytes) else str(stdout)
    error = (stderr.decode('utf-8', 'replace') if isinstance(stderr, bytes) else str(stderr)).strip()
    error = error.splitlines()[-1] if error else ''
    for line in text.splitlines():
        if line.startswith('DL-OK'):
            hexdata = line[5:].strip()
            try:
                return binascii.unhexlify(hexdata)
            except (binascii.Error, ValueError):
                raise ExchangeError(f'unreadable answer {hexdata[:40]!r}') from None
    if exit_code == EXIT_TIMEOUT:
        raise ExchangeError(f'no answer from {host}:{port} within {timeout:g}s')
    if exit_code == EXIT_NO_TOOL:
        raise ExchangeError(error or 'no tool to open a TCP connection in the container')
    if exit_code == 3:
        detail = re.sub(r'^.*?(connect|/dev/tcp/[^:]*): ', '', error) if error else 'refused or unreachable'
        raise ExchangeError(f'connection to {host}:{port} failed: {detail}')
    raise ExchangeError(f'the exchange with {host}:{port} failed (exit code {exit_code}): {error or "no output"}')


def container_exchange(client, container, host, port, payload=b'', mode='once', timeout=5.0):
    """Like socket_exchange(), from inside ``container`` (one docker exec)."""
    env = exchange_environment(host, port, payload, mode, timeout)
    exit_code, out, err = _exec(client, container, ['sh', '-c', _EXCHANGE_SH], env)
    return parse_exchange_output(exit_code, out, err, host, port, timeout)


class ContainerUnavailable(Exception):
    """The container to exec in does not exist or is not running."""


def _exec(client, container, command, environment=None):
    from ansible_collections.dockerlab.ecommerce.plugins.module_utils.docker_client import (
        exec_in_container, is_not_found)
    try:
        return exec_in_container(client, container, command, environment=environment)
    except Exception as exc:  # noqa: BLE001 pylint: disable=broad-except
        if is_not_found(exc):
            raise ContainerUnavailable(f'no container {container}') from None
        text = str(exc)
        if 'is not running' in text or 'is restarting' in text or 'is paused' in text:
            raise ContainerUnavailable(f'container {container} is not running') from None
        raise


def exchange(ctx, check, payload=b'', mode='once', complete=None):
    """Run the TCP exchange of a tcp or protocol check from this host or from its from_container."""
    if check.get('from_container'):
        return container_exchange(ctx.client, check['from_container'], check['host'], check['port'],
                                  payload, mode, check['timeout'])
    return socket_exchange(check['host'], check['port'], payload, mode, check['timeout'], complete)


# ---------------------------------------------------------------------------
# the checks
# ---------------------------------------------------------------------------

class Context:
    """What the checks share: the Docker client (may be None when no check needs one)."""

    def __init__(self, client=None):
        self.client = client

    def inspect(self, container):
        return self.client.api.inspect_container(container)


def check_container(ctx, check):
    name = check['container']
    try:
        info = ctx.inspect(name)
    except Exception as exc:  # noqa: BLE001 pylint: disable=broad-except
        from ansible_collections.dockerlab.ecommerce.plugins.module_utils.docker_client import is_not_found
        if is_not_found(exc):
            return _failed('a container named ' + name, 'no such container', {'exists': False})
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
        detail = f' (last probe: {_shorten(last_output, 200)})' if last_output else ''
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
    if expected:
        return _failed(' and '.join(expected), '; '.join(saw), observed)
    parts = [observed['status']]
    if health:
        parts.append(observed['health'])
    parts.append(f'{restarts} restarts')
    return _passed(', '.join(parts), observed)


def check_tcp(ctx, check):
    exchange(ctx, check, mode='connect')
    return _passed(f"port {check['port']} accepts connections", {'connected': True})


def check_mysql(ctx, check):
    data = exchange(ctx, check, mode='once', complete=mysql_greeting_complete)
    try:
        greeting = parse_mysql_greeting(data)
    except ValueError as exc:
        return _failed('a MySQL server greeting', f'{exc} ({data[:32]!r})', {'raw': data[:64].hex()})
    if greeting['kind'] == 'error':
        return _passed(f"alive, but it refuses this client: error {greeting['code']} {greeting['message']}",
                       greeting)
    return _passed(f"MySQL protocol {greeting['protocol']}, server {greeting['server_version']}", greeting)


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
        return _failed('an OP_MSG reply to {ping: 1}', f'{exc}', {'raw': data[:64].hex()})
    observed = {'reply': {k: v for k, v in body.items() if not isinstance(v, bytes)}}
    if body.get('ok') in (1, 1.0, True):
        return _passed('ping ok', observed)
    return _failed('ok: 1', f"ok: {body.get('ok')} {body.get('errmsg', '')}".strip(), observed)


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
        exit_code, out, err = _exec(ctx.client, check['from_container'], ['sh', '-c', _CURL_SH], env)
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


def parse_getent(text):
    """Unique addresses (first column) of ``getent`` / getaddrinfo output, sorted."""
    found = set()
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        try:
            found.add(ipaddress.ip_address(fields[0].split('%')[0]).compressed)
        except ValueError:
            continue
    return sorted(found, key=lambda a: (ipaddress.ip_address(a).version, ipaddress.ip_address(a)))


def check_dns(ctx, check):
    container = check['container']
    expected = check.get('expected')
    if expected is None:
        source = ctx.inspect(container)
        other = ctx.inspect(check['expected_container'])
        shared = set(container_addresses(source)) & set(container_addresses(other))
        expected = sorted(set(container_addresses(other, shared).values()))
        if not expected:
            return _failed(f"the addresses of {check['expected_container']} on a network shared with {container}",
                           'no shared network', {'shared_networks': []})
    db = 'ahostsv4' if all(ipaddress.ip_address(a).version == 4 for a in expected) else 'ahosts'
    exit_code, out, err = _exec(ctx.client, container, ['sh', '-c', _DNS_SH],
                                {'DL_DB': db, 'DL_NAME': check['query']})
    if exit_code == EXIT_NO_TOOL:
        raise ExchangeError(err.decode('utf-8', 'replace').strip())
    addresses = parse_getent(out.decode('utf-8', 'replace'))
    observed = {'addresses': addresses, 'expected': list(expected)}
    if sorted(set(addresses)) != sorted(set(expected)):
        saw = ', '.join(addresses) if addresses else 'no address (the name does not resolve)'
        return _failed(', '.join(sorted(set(expected))), saw, observed)
    return _passed(f"{check['query']} resolves to {', '.join(addresses)}", observed)


_EXEC_WRAP = 'if command -v timeout >/dev/null 2>&1; then exec timeout "$0" "$@"; fi; exec "$@"'


def check_exec(ctx, check):
    command = check['command']
    argv = ['sh', '-c', command] if isinstance(command, str) else [str(c) for c in command]
    exit_code, out, err = _exec(ctx.client, check['container'],
                                ['sh', '-c', _EXEC_WRAP, f"{check['timeout']:g}"] + argv)
    output = (out + err).decode('utf-8', 'replace')
    observed = {'rc': exit_code, 'output': output[-2000:]}
    if exit_code == EXIT_TIMEOUT and check['rc'] != EXIT_TIMEOUT:
        return _failed(f"exit code {check['rc']}", f"no end within {check['timeout']:g}s", observed)
    if exit_code != check['rc']:
        return _failed(f"exit code {check['rc']}", f'exit code {exit_code}: {_shorten(output)}', observed)
    if check.get('output_regex') is not None and not re.search(check['output_regex'], output):
        return _failed(f"output matching /{check['output_regex']}/", repr(_shorten(output)), observed)
    return _passed(f'exit code {exit_code}', observed)


RUNNERS = {
    'container': check_container, 'http': check_http, 'tcp': check_tcp, 'dns': check_dns, 'exec': check_exec,
    'mysql': check_mysql, 'redis': check_redis, 'mongodb': check_mongodb,
}
NEEDS_DOCKER = ('container', 'dns', 'exec')


def needs_docker(check):
    return check['kind'] in NEEDS_DOCKER or bool(check.get('from_container'))


def attempt(ctx, check, runners=None):
    """One attempt of a check: an outcome dict, never an exception."""
    runner = (runners or RUNNERS)[check['kind']]
    try:
        return runner(ctx, check)
    except ExchangeError as exc:
        return _failed(_expectation(check), str(exc), {'error': str(exc)})
    except ContainerUnavailable as exc:
        return _failed(f"a running container {check.get('from_container') or check.get('container')}",
                       str(exc), {'error': str(exc)})
    except CheckError as exc:
        return _failed('a check that can run', str(exc), {'error': str(exc)})
    except Exception as exc:  # noqa: BLE001 pylint: disable=broad-except
        detail = str(exc).strip() or type(exc).__name__
        return _failed(_expectation(check), f'an error: {detail}', {'error': detail})


def _expectation(check):
    kind = check['kind']
    status = describe_status(check.get('status_ranges') or DEFAULT_STATUS)
    return {
        'tcp': 'a TCP connection', 'mysql': 'a MySQL server greeting', 'redis': '+PONG or a NOAUTH error',
        'mongodb': 'an OP_MSG reply to {ping: 1}', 'http': status,
    }.get(kind, f'a passing {kind} check')


# ---------------------------------------------------------------------------
# the runner
# ---------------------------------------------------------------------------

def run_check(ctx, check, deadline_at=None, clock=time.monotonic, sleep=time.sleep, runners=None):
    """Attempts until the check passes, its retries are used up and the run's deadline has passed."""
    start = clock()
    attempts = 0
    while True:
        attempts += 1
        outcome = attempt(ctx, check, runners)
        if outcome['passed']:
            break
        pause = check['delay']
        if attempts <= check['retries']:
            sleep(pause)
            continue
        if deadline_at is not None:
            pause = max(pause, MIN_DEADLINE_PAUSE)
            if clock() + pause < deadline_at:
                sleep(pause)
                continue
        break
    return {
        'name': check['name'], 'kind': check['kind'], 'target': check['target'], 'passed': outcome['passed'],
        'attempts': attempts, 'duration_ms': int(round((clock() - start) * 1000)),
        'message': outcome['message'], 'observed': outcome.get('observed') or {},
    }


def run_checks(ctx, checks, deadline=0, workers=16, clock=time.monotonic, sleep=time.sleep, runners=None):
    """Results of all checks (in the given order), run concurrently; ``deadline`` in seconds (0: none)."""
    if not checks:
        return []
    deadline_at = clock() + deadline if deadline and deadline > 0 else None
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(workers, len(checks)))) as pool:
        futures = [pool.submit(run_check, ctx, check, deadline_at, clock, sleep, runners) for check in checks]
        return [future.result() for future in futures]


def summarize(results):
    passed = sum(1 for r in results if r['passed'])
    return {'total': len(results), 'passed': passed, 'failed': len(results) - passed}


def failure_lines(results):
    """``<name>: expected <...>, saw <...>``, one per failed check."""
    return [f"{r['name']}: {r['message']}" for r in results if not r['passed']]


def junit_xml(results, suite='stack_health'):
    """A JUnit XML document (bytes): one testcase per check, failed checks with their message."""
    failures = sum(1 for r in results if not r['passed'])
    total_ms = sum(r['duration_ms'] for r in results)
    root = ET.Element('testsuites', {'name': suite, 'tests': str(len(results)), 'failures': str(failures),
                                     'time': f'{total_ms / 1000:.3f}'})
    suite_el = ET.SubElement(root, 'testsuite', {'name': suite, 'tests': str(len(results)),
                                                 'failures': str(failures), 'errors': '0', 'skipped': '0',
                                                 'time': f'{total_ms / 1000:.3f}'})
    for result in results:
        case = ET.SubElement(suite_el, 'testcase', {'classname': f"{suite}.{result['kind']}",
                                                    'name': result['name'],
                                                    'time': f"{result['duration_ms'] / 1000:.3f}"})
        if not result['passed']:
            failure = ET.SubElement(case, 'failure', {'message': result['message'], 'type': result['kind']})
            failure.text = json.dumps({'target': result['target'], 'attempts': result['attempts'],
                                       'observed': result['observed']}, indent=2, sort_keys=True, default=str)
        else:
            out = ET.SubElement(case, 'system-out')
            out.text = result['message']
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding='utf-8')


# ---------------------------------------------------------------------------
# checks derived from the topology
# ---------------------------------------------------------------------------

def _first_expose(service):
    for port in service.get('expose') or []:
        try:
            return int(str(port).split('/', maxsplit=1)[0])
        except ValueError:
            continue
    return None


def derive_checks(services_by_var, networks=None, stack_name=None, baseline=None, max_restarts=None):
    """Check definitions for every container the topology expands to.

    For each container: a ``container`` check (running, healthy when it has a healthcheck,
    attached to its declared networks, labelled ``dockerlab.stack=<stack_name>``, restarts
    against ``baseline``/``max_restarts``); plus its ``probe`` (run inside the container itself,
    against 127.0.0.1 and the probe's ``port``, else its first ``expose`` port, else the
    protocol's default port).
    """
    networks = networks if isinstance(networks, Mapping) else {}
    baseline = baseline or {}
    checks = []
    for record in expand_containers(services_by_var):
        name = record['name']
        service = record['service']
        attached = []
        for entry in service.get('networks') or []:
            key = entry.get('network') if isinstance(entry, Mapping) else entry
            definition = networks.get(key)
            if isinstance(definition, Mapping) and definition.get('name'):
                attached.append(definition['name'])
        check = {'kind': 'container', 'name': f'container {name}', 'container': name, 'networks': attached}
        if stack_name:
            check['labels'] = {'dockerlab.stack': stack_name}
        if name in baseline:
            check['baseline_restarts'] = baseline[name]
        if max_restarts is not None:
            check['max_restarts'] = max_restarts
        checks.append(check)
        probe = service.get('probe')
        if not isinstance(probe, Mapping) or not probe.get('kind'):
            continue
        kind = probe['kind']
        derived = {k: v for k, v in probe.items() if k not in ('kind', 'path')}
        derived.update({'kind': kind, 'name': f'{kind} {name}', 'from_container': name})
        derived.setdefault('host', '127.0.0.1')
        port = probe.get('port') or _first_expose(service) or DEFAULT_PORTS.get(kind)
        if kind == 'http':
            derived.pop('port', None)
            derived['url'] = f"http://{derived.pop('host')}:{port}{probe.get('path') or '/'}"
        else:
            derived['port'] = port
        checks.append(derived)
    return checks
