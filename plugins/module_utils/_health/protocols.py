# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The wire protocols the checks speak, as pure functions of bytes.

The MySQL/MariaDB server greeting, Redis RESP replies, MongoDB OP_MSG (with a minimal
BSON codec), HTTP/1.0 requests and responses, and the output of a name lookup.
"""

from __future__ import annotations

import binascii
import ipaddress
import json
import re
import struct
from collections.abc import Mapping
from urllib.parse import urlsplit

from ansible_collections.dockerlab.ecommerce.plugins.module_utils._health.spec import (
    MISSING,
    describe_status,
    failed,
    json_path,
    parse_status,
    passed,
    shorten,
    status_matches,
    values_equal,
)


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
                return passed(f'PONG (the password was not needed: {auth[1:]})', observed)
            observed['auth'] = 'ok'
            return passed('PONG (authenticated)', observed)
        return failed('+OK then +PONG to AUTH and PING', ', '.join(replies) or 'no reply', observed)
    if not replies:
        return failed('+PONG or a NOAUTH error', 'no reply', observed)
    first = replies[0]
    if first.startswith('+PONG'):
        observed['auth'] = 'not required'
        return passed('PONG (no password required)', observed)
    if first.startswith('-NOAUTH'):
        observed['auth'] = 'required'
        return passed('alive: NOAUTH (a password is required; set password_file to check it)', observed)
    return failed('+PONG or a NOAUTH error', first, observed)


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
        return failed(describe_status(ranges), f'HTTP {status} {response.get("reason", "")}'.rstrip(), observed)
    for name, pattern in sorted((check.get('headers') or {}).items()):
        value = headers.get(str(name).lower())
        if value is None:
            return failed(f'header {name} matching /{pattern}/', f'no {name} header', observed)
        if not re.search(pattern, value):
            return failed(f'header {name} matching /{pattern}/', f'{name}: {value}', observed)
    if check.get('body_regex') is not None and not re.search(check['body_regex'], text):
        return failed(f"a body matching /{check['body_regex']}/", repr(shorten(text)), observed)
    if check.get('json'):
        try:
            document = json.loads(text)
        except ValueError:
            return failed('a JSON body', repr(shorten(text)), observed)
        for path, expected in sorted(check['json'].items()):
            actual = json_path(document, path)
            if actual is MISSING:
                return failed(f'{path} = {json.dumps(expected)}', f'no {path} in the JSON body', observed)
            if not values_equal(actual, expected):
                return failed(f'{path} = {json.dumps(expected)}', f'{path} = {json.dumps(actual)}', observed)
    return passed(f'HTTP {status}', observed)


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
