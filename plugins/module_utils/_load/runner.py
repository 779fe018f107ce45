# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The load engine: concurrent HTTP/1.1 requests against the lab, bounded in time and count.

Pure standard library (it runs on the managed host): asyncio and a minimal HTTP/1.1 client
over asyncio streams, with keep-alive, Content-Length and chunked bodies. Each worker holds one
connection and opens a new one when the server closes it (or says ``Connection: close``).

A request that fails is counted by kind: ``status_<code>`` for an unexpected status, and for a
transport error ``connect_refused``, ``connect_timeout``, ``read_timeout``, ``reset``, ``closed``
(the server closed the connection before a whole answer) or ``other:<ExceptionClass>``. Nothing
is retried, with one exception real HTTP clients make too: a GET or HEAD that finds a kept-alive
connection already closed by the server, before any byte of an answer, is sent once more on a
new connection (counted in ``stale_retries``). A POST is never sent twice.

``run_load(config, stop_event=None)`` runs a load test synchronously (it may run in a thread
while a test injects a fault; setting the ``threading.Event`` stops it early);
``run_load_async(config)`` is the coroutine.
"""

from __future__ import annotations

import asyncio
import bisect
import copy
import ipaddress
import json
import math
import random
import re
import time
import uuid
from datetime import datetime, timezone
from urllib.parse import urlsplit

DEFAULT_URL = 'http://127.0.0.1:8080'
DEFAULT_CONCURRENCY = 10
DEFAULT_DURATION_S = 20.0
DEFAULT_TIMEOUT_S = 10.0
DEFAULT_SETUP_USERS = 5
DEFAULT_SPREAD_HEADERS = ('X-Served-By', 'X-Gateway')
MAX_DURATION_S = 600.0
MAX_CONCURRENCY = 256
MAX_TIMEOUT_S = 120.0
MAX_SETUP_USERS = 1000
MAX_FAILURE_SAMPLES = 10
EXCERPT_CHARS = 200
# In-flight requests at the end of a run get this long (at most their timeout) to finish.
END_GRACE_S = 2.0
PLACEHOLDERS = ('user_id', 'order_id')
IDEMPOTENT_METHODS = ('GET', 'HEAD')
TRANSPORT_KINDS = ('connect_refused', 'connect_timeout', 'read_timeout', 'reset', 'closed')
USER_AGENT = 'dockerlab-load-test/1'
# What a body read until the connection closes may keep in memory.
MAX_BODY_BYTES = 1024 * 1024
MAX_HEADER_LINES = 128

ORDER_ITEMS = [{'sku': 'LT-1', 'name': 'load test', 'quantity': 1, 'unit_price': '9.99'}]

# The course's mix: mostly cached reads, some pages, order writes with an Idempotency-Key.
DEFAULT_MIX = [
    {'name': 'get_user', 'method': 'GET', 'path': '/api/users/{user_id}', 'weight': 60},
    {'name': 'front_page', 'method': 'GET', 'path': '/', 'weight': 15},
    {'name': 'create_order', 'method': 'POST', 'path': '/api/orders/', 'weight': 15,
     'body': {'user_id': '{user_id}', 'items': ORDER_ITEMS}, 'idempotency_key': True},
    {'name': 'get_order', 'method': 'GET', 'path': '/api/orders/{order_id}', 'weight': 10},
]

_PLACEHOLDER_RE = re.compile(r'\{([A-Za-z_][A-Za-z0-9_]*)\}')
_TOKEN_RE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


class LoadConfigError(ValueError):
    """The configuration cannot run; the message says what to change."""


class LoadError(RuntimeError):
    """The run could not start (the setup step failed); the message says why."""


class TransportError(Exception):
    """A request got no complete answer; ``kind`` is one of TRANSPORT_KINDS or ``other:<Class>``.
    ``stale``: it failed on a reused connection before any byte of an answer arrived."""

    def __init__(self, kind, detail='', stale=False):
        super().__init__(f'{kind}: {detail}' if detail else kind)
        self.kind = kind
        self.detail = detail
        self.stale = stale


class BadResponse(Exception):
    """The server's answer is not HTTP/1.x."""


# ---------------------------------------------------------------------------------------------
# Configuration


def _number(value, name, kind=float):
    if isinstance(value, bool):
        raise LoadConfigError(f'{name} must be a number, got {value!r}')
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise LoadConfigError(f'{name} must be a number, got {value!r}') from None


def check_target(url, allow_remote=False):
    """``(host, port, base_path)`` of ``url``; raises LoadConfigError for a URL the load test will
    not target: not http://, or not loopback (127.0.0.0/8, ::1, localhost) without ``allow_remote``."""
    if not isinstance(url, str) or not url.strip():
        raise LoadConfigError(f'url must be an http:// URL such as {DEFAULT_URL}, got {url!r}')
    parts = urlsplit(url.strip())
    if parts.scheme != 'http':
        raise LoadConfigError(f'url must start with http:// (the load test speaks plain HTTP/1.1), got {url!r}')
    try:
        host, port = parts.hostname, parts.port or 80
    except ValueError:
        raise LoadConfigError(f'url has an invalid port: {url!r}') from None
    if not host:
        raise LoadConfigError(f'url has no host: {url!r}; use one such as {DEFAULT_URL}')
    if parts.query or parts.fragment:
        raise LoadConfigError(f'url must be a base URL without a query or fragment, got {url!r}; '
                              'put paths and queries in the mix')
    if not allow_remote and not is_loopback(host):
        raise LoadConfigError(f'url {url} is not on this host (loopback: 127.0.0.0/8, ::1, localhost); '
                              'the load test only targets loopback unless allow_remote is true. Set allow_remote: '
                              'true to load a remote host you are allowed to load')
    return host, port, parts.path.rstrip('/')


def is_loopback(host):
    """Whether ``host`` (a name or address) is this host's loopback; names other than localhost are not."""
    host = host.strip('[]').lower()
    if host == 'localhost' or host.endswith('.localhost'):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _parse_expect(value, where):
    """A frozenset of acceptable statuses, or None (any 2xx or 3xx)."""
    if value is None or value == []:
        return None
    if not isinstance(value, (list, tuple)):
        value = [value]
    statuses = set()
    for item in value:
        text = str(item).strip().lower()
        if re.fullmatch(r'[1-5]xx', text):
            base = int(text[0]) * 100
            statuses.update(range(base, base + 100))
            continue
        span = re.fullmatch(r'(\d{3})\s*-\s*(\d{3})', text)
        if span:
            statuses.update(range(int(span.group(1)), int(span.group(2)) + 1))
            continue
        if isinstance(item, bool) or not re.fullmatch(r'\d{3}', text) or not 100 <= int(text) <= 599:
            raise LoadConfigError(f'{where}: expect must list HTTP statuses (200, "2xx", "200-299"), got {item!r}')
        statuses.add(int(text))
    return frozenset(statuses)


def _placeholders_in(value):
    """The placeholder names used in ``value`` (a str, or JSON-like data)."""
    found = set()
    if isinstance(value, str):
        found.update(_PLACEHOLDER_RE.findall(value))
    elif isinstance(value, dict):
        for key, item in value.items():
            found |= _placeholders_in(key) | _placeholders_in(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            found |= _placeholders_in(item)
    return found & set(PLACEHOLDERS)


def fill_template(value, ids):
    """``value`` with ``{user_id}``/``{order_id}`` filled from ``ids``: in a str, textually; in JSON-like
    data, in every string, and a string that is exactly one placeholder becomes the id itself (an int)."""
    if isinstance(value, str):
        whole = _PLACEHOLDER_RE.fullmatch(value)
        if whole and whole.group(1) in ids:
            return ids[whole.group(1)]
        return _PLACEHOLDER_RE.sub(lambda m: str(ids[m.group(1)]) if m.group(1) in ids else m.group(0), value)
    if isinstance(value, dict):
        return {fill_text(key, ids): fill_template(item, ids) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [fill_template(item, ids) for item in value]
    return value


def fill_text(text, ids):
    """``text`` with the known placeholders replaced by their ids (always a str)."""
    return _PLACEHOLDER_RE.sub(lambda m: str(ids[m.group(1)]) if m.group(1) in ids else m.group(0), text)


class MixEntry:
    """One kind of request of the mix, validated."""

    def __init__(self, raw, index):
        if not isinstance(raw, dict):
            raise LoadConfigError(f'mix[{index}] must be a dict with name, method, path, weight ..., got {raw!r}')
        unknown = sorted(set(raw) - {'name', 'method', 'path', 'weight', 'body', 'idempotency_key', 'headers', 'expect'})
        if unknown:
            raise LoadConfigError(f"mix[{index}] has unknown keys {', '.join(unknown)}; known: name, method, path, "
                                  'weight, body, idempotency_key, headers, expect')
        self.method = str(raw.get('method') or 'GET').upper()
        self.path = raw.get('path')
        where = f'mix[{index}]'
        if not isinstance(self.path, str) or not self.path.startswith('/'):
            raise LoadConfigError(f'{where}: path must start with /, got {self.path!r}')
        if any(c in self.path for c in ' \r\n\t'):
            raise LoadConfigError(f'{where}: path must not contain spaces or line breaks, got {self.path!r}')
        self.name = str(raw.get('name') or f'{self.method} {self.path}')
        where = f'mix entry {self.name}'
        if not _TOKEN_RE.match(self.method):
            raise LoadConfigError(f'{where}: method must be an HTTP method such as GET or POST, got {self.method!r}')
        unknown = sorted(set(_PLACEHOLDER_RE.findall(self.path)) - set(PLACEHOLDERS))
        if unknown:
            raise LoadConfigError(f"{where}: path has unknown placeholders {', '.join('{%s}' % u for u in unknown)}; "
                                  'only {user_id} and {order_id} are filled')
        self.weight = _number(1 if raw.get('weight') is None else raw['weight'], f'{where}: weight')
        if self.weight < 0 or math.isnan(self.weight) or math.isinf(self.weight):
            raise LoadConfigError(f'{where}: weight must be 0 or more, got {raw.get("weight")!r}')
        self.body = raw.get('body')
        if self.body is not None and not isinstance(self.body, (dict, list, str)):
            raise LoadConfigError(f'{where}: body must be a JSON object (a dict), a list, a JSON text or null, '
                                  f'got {self.body!r}')
        if isinstance(self.body, (dict, list)):
            try:
                json.dumps(self.body)
            except (TypeError, ValueError) as exc:
                raise LoadConfigError(f'{where}: body cannot be sent as JSON ({exc})') from None
        self.idempotency_key = bool(raw.get('idempotency_key', False))
        headers = raw.get('headers') or {}
        if not isinstance(headers, dict):
            raise LoadConfigError(f'{where}: headers must be a dict of header name to value, got {headers!r}')
        self.headers = {}
        for key, value in headers.items():
            key, value = str(key), '' if value is None else str(value)
            if not _TOKEN_RE.match(key) or any(c in value for c in '\r\n'):
                raise LoadConfigError(f'{where}: header {key!r} is not a valid header name and value')
            self.headers[key] = value
        self.expect = _parse_expect(raw.get('expect'), where)
        self.placeholders = _placeholders_in(self.path) | _placeholders_in(self.body)

    def accepts(self, status):
        return 200 <= status < 400 if self.expect is None else status in self.expect

    def as_dict(self):
        return {'name': self.name, 'method': self.method, 'path': self.path, 'weight': self.weight, 'body': self.body,
                'idempotency_key': self.idempotency_key, 'headers': dict(self.headers),
                'expect': sorted(self.expect) if self.expect is not None else None}


class LoadConfig:
    """A load test's input, validated; ``LoadConfig(**options)`` raises LoadConfigError with what to change.

    ``base_url`` (loopback unless ``allow_remote``), ``concurrency`` (workers, one connection each,
    1-256), ``duration_s`` (0 < d <= 600; 0 means "until max_requests", still capped at 600),
    ``max_requests`` (0: no bound by count), ``timeout_s`` per request, ``mix`` (list of dicts:
    name, method, path, weight, body, idempotency_key, headers, expect; None: DEFAULT_MIX),
    ``setup_users`` (users, and one order each, created first for ``{user_id}``/``{order_id}``),
    ``spread_headers`` (response headers whose values are counted), ``seed`` (for the choice of
    requests and ids; None: random).
    """

    def __init__(self, base_url=DEFAULT_URL, concurrency=DEFAULT_CONCURRENCY, duration_s=DEFAULT_DURATION_S,
                 max_requests=0, timeout_s=DEFAULT_TIMEOUT_S, mix=None, setup_users=DEFAULT_SETUP_USERS,
                 spread_headers=DEFAULT_SPREAD_HEADERS, allow_remote=False, seed=None, retry_after_max=0,
                 collect_ids=False):
        self.base_url = (base_url or DEFAULT_URL).strip().rstrip('/')
        self.allow_remote = bool(allow_remote)
        self.host, self.port, self.base_path = check_target(self.base_url, self.allow_remote)
        self.concurrency = int(_number(concurrency, 'concurrency'))
        if not 1 <= self.concurrency <= MAX_CONCURRENCY:
            raise LoadConfigError(f'concurrency must be between 1 and {MAX_CONCURRENCY}, got {concurrency}')
        self.max_requests = int(_number(max_requests or 0, 'max_requests'))
        if self.max_requests < 0:
            raise LoadConfigError(f'max_requests must be 0 (no bound by count) or more, got {max_requests}')
        self.duration_s = _number(duration_s or 0, 'duration')
        if self.duration_s < 0 or math.isnan(self.duration_s):
            raise LoadConfigError(f'duration must be 0 or more seconds, got {duration_s}')
        if self.duration_s > MAX_DURATION_S:
            raise LoadConfigError(f'duration must be at most {MAX_DURATION_S:g} seconds, got {duration_s}; '
                                  'run several shorter load tests instead')
        if not self.duration_s and not self.max_requests:
            raise LoadConfigError('give the load test a bound: duration (seconds) or max_requests (or both)')
        # duration always bounds a run, max_requests or not
        self.time_limit_s = self.duration_s or MAX_DURATION_S
        self.timeout_s = _number(timeout_s, 'timeout')
        if not 0 < self.timeout_s <= MAX_TIMEOUT_S:
            raise LoadConfigError(f'timeout must be more than 0 and at most {MAX_TIMEOUT_S:g} seconds, got {timeout_s}')
        self.setup_users = int(_number(setup_users or 0, 'setup_users'))
        if not 0 <= self.setup_users <= MAX_SETUP_USERS:
            raise LoadConfigError(f'setup_users must be between 0 and {MAX_SETUP_USERS}, got {setup_users}')
        if isinstance(spread_headers, str):
            spread_headers = [spread_headers]
        self.spread_headers = [str(h) for h in (spread_headers or [])]
        self.seed = seed
        # A request with an Idempotency-Key answered 503 with Retry-After may be sent again, with
        # the same key, after the delay (at most 2 s each): as a well-behaved client does while a
        # database restarts. 0: never (every such answer counts as failed).
        self.retry_after_max = int(_number(retry_after_max or 0, 'retry_after_max'))
        if not 0 <= self.retry_after_max <= 20:
            raise LoadConfigError(f'retry_after_max must be between 0 and 20, got {retry_after_max}')
        # Keep the ids of what was created (the `id` of each 2xx JSON answer to a POST), by request
        # name, so a test can check that no acknowledged write was lost.
        self.collect_ids = bool(collect_ids)
        raw_mix = DEFAULT_MIX if mix is None else mix
        if not isinstance(raw_mix, (list, tuple)) or not raw_mix:
            raise LoadConfigError('mix must be a non-empty list of requests (name, method, path, weight ...); '
                                  'leave it out for the course\'s mix')
        self.mix = [MixEntry(raw, index) for index, raw in enumerate(raw_mix)]
        names = [entry.name for entry in self.mix]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise LoadConfigError(f"mix entries need distinct names; repeated: {', '.join(duplicates)}")
        if not sum(entry.weight for entry in self.mix) > 0:
            raise LoadConfigError('the weights of the mix add up to 0; give at least one request a weight above 0')
        needed = set().union(*(entry.placeholders for entry in self.mix if entry.weight > 0))
        if needed and not self.setup_users:
            raise LoadConfigError(f"the mix uses {', '.join('{%s}' % n for n in sorted(needed))}, which the setup "
                                  'step fills with the users (and orders) it creates; set setup_users to 1 or more')
        self.needs_users = bool(needed)
        self.needs_orders = 'order_id' in needed

    @classmethod
    def from_dict(cls, options):
        """A LoadConfig from a dict of the constructor's arguments (unknown keys are an error)."""
        known = set(cls.__init__.__code__.co_varnames[1:cls.__init__.__code__.co_argcount])
        unknown = sorted(set(options) - known)
        if unknown:
            raise LoadConfigError(f"unknown load test settings {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**dict(options))

    def host_header(self):
        host = f'[{self.host}]' if ':' in self.host else self.host
        return host if self.port == 80 else f'{host}:{self.port}'

    def as_dict(self):
        return {'url': self.base_url, 'concurrency': self.concurrency, 'duration_s': self.duration_s,
                'max_requests': self.max_requests, 'timeout_s': self.timeout_s, 'setup_users': self.setup_users,
                'spread_headers': list(self.spread_headers), 'allow_remote': self.allow_remote,
                'retry_after_max': self.retry_after_max, 'collect_ids': self.collect_ids,
                'mix': [entry.as_dict() for entry in self.mix]}


# ---------------------------------------------------------------------------------------------
# HTTP/1.1 over asyncio streams


class Response:
    """An HTTP answer: ``status``, ``reason``, ``headers`` (lower-case name -> value; repeated
    headers joined with ', '), ``body`` (bytes)."""

    def __init__(self, status, reason, headers, body):
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body

    def header(self, name):
        return self.headers.get(name.lower())

    def json(self):
        return json.loads(self.body.decode('utf-8'))


def request_bytes(method, target, host_header, headers=None, body=None):
    """The request head and body, as bytes. ``headers`` may replace Host, User-Agent and Accept."""
    merged = {'host': ('Host', host_header), 'user-agent': ('User-Agent', USER_AGENT), 'accept': ('Accept', '*/*')}
    for name, value in (headers or {}).items():
        merged[name.lower()] = (name, value)
    if body is not None or method in ('POST', 'PUT', 'PATCH'):
        merged['content-length'] = ('Content-Length', str(len(body or b'')))
    merged.pop('transfer-encoding', None)
    lines = [f'{method} {target} HTTP/1.1'] + [f'{name}: {value}' for name, value in merged.values()]
    return ('\r\n'.join(lines) + '\r\n\r\n').encode('latin-1', 'replace') + (body or b'')


def classify(exc):
    """The failure kind of a transport exception (anything but TransportError, which knows its own)."""
    if isinstance(exc, TransportError):
        return exc.kind
    if isinstance(exc, asyncio.TimeoutError):
        return 'read_timeout'
    if isinstance(exc, ConnectionRefusedError):
        return 'connect_refused'
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
        return 'reset'
    if isinstance(exc, asyncio.IncompleteReadError):
        return 'closed'
    return f'other:{type(exc).__name__}'


class Connection:
    """One kept-alive HTTP/1.1 connection to ``host:port``; reconnects when the last answer closed it."""

    def __init__(self, host, port, host_header):
        self.host = host
        self.port = port
        self.host_header = host_header
        self.reader = None
        self.writer = None
        self.answered = 0          # answers read on the current connection
        self.connects = 0

    def close(self):
        if self.writer is not None:
            transport = self.writer.transport
            try:
                transport.abort()
            except Exception:  # noqa: BLE001 pylint: disable=broad-except  # closing a broken socket
                pass
        self.reader = self.writer = None
        self.answered = 0

    async def _connect(self, timeout):
        try:
            self.reader, self.writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port), timeout)
        except (asyncio.TimeoutError, TimeoutError):
            raise TransportError('connect_timeout', f'no connection to {self.host}:{self.port} within {timeout:g} s') from None
        except ConnectionRefusedError:
            raise TransportError('connect_refused', f'nothing listens on {self.host}:{self.port}') from None
        except (ConnectionResetError, ConnectionAbortedError) as exc:
            raise TransportError('reset', str(exc)) from None
        except OSError as exc:
            raise TransportError(f'other:{type(exc).__name__}', str(exc) or type(exc).__name__) from None
        self.answered = 0
        self.connects += 1

    async def request(self, method, target, headers=None, body=None, timeout=DEFAULT_TIMEOUT_S):
        """Send one request and read its answer within ``timeout`` seconds: a Response, or TransportError."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if self.writer is None:
            await self._connect(timeout)
        reused = self.answered > 0
        progress = {'bytes': False}
        try:
            response, keep_alive = await asyncio.wait_for(
                self._exchange(method, target, headers, body, progress), max(deadline - loop.time(), 0.001))
        except asyncio.CancelledError:
            self.close()
            raise
        except asyncio.TimeoutError:
            self.close()
            raise TransportError('read_timeout', f'no whole answer within {timeout:g} s') from None
        except TransportError as exc:
            self.close()
            exc.stale = reused and not progress['bytes'] and exc.kind in ('closed', 'reset')
            raise
        except Exception as exc:  # noqa: BLE001 pylint: disable=broad-except  # every failure is counted by kind
            self.close()
            kind = classify(exc)
            raise TransportError(kind, str(exc) or type(exc).__name__,
                                 stale=reused and not progress['bytes'] and kind in ('closed', 'reset')) from None
        if keep_alive:
            self.answered += 1
        else:
            self.close()
        return response

    async def _exchange(self, method, target, headers, body, progress):
        self.writer.write(request_bytes(method, target, self.host_header, headers, body))
        await self.writer.drain()
        reader = self.reader
        while True:
            line = await reader.readline()
            if not line:
                raise TransportError('closed', 'the server closed the connection before answering')
            progress['bytes'] = True
            version, status, reason = _parse_status_line(line)
            headers_in = await _read_headers(reader)
            if 100 <= status < 200 and status != 101:
                continue            # 100 Continue and other interim answers: the real one follows
            break
        tokens = {t.strip().lower() for t in headers_in.get('connection', '').split(',')}
        keep_alive = 'close' not in tokens if version == 'HTTP/1.1' else 'keep-alive' in tokens
        if method == 'HEAD' or status in (204, 304) or 100 <= status < 200:
            data = b''
        elif 'chunked' in headers_in.get('transfer-encoding', '').lower():
            data = await _read_chunked(reader)
        elif 'content-length' in headers_in:
            try:
                length = int(headers_in['content-length'].split(',')[0].strip())
            except ValueError:
                raise BadResponse(f"invalid Content-Length {headers_in['content-length']!r}") from None
            data = await reader.readexactly(length)
        else:
            data = await _read_to_eof(reader)
            keep_alive = False
        return Response(status, reason, headers_in, data), keep_alive


def _parse_status_line(line):
    text = line.decode('latin-1').rstrip('\r\n')
    parts = text.split(' ', 2)
    if len(parts) < 2 or not parts[0].startswith('HTTP/1.') or not parts[1].isdigit():
        if not line.endswith(b'\n'):
            raise TransportError('closed', 'the server closed the connection in the middle of its answer')
        raise BadResponse(f'not an HTTP/1.x status line: {text[:80]!r}')
    return parts[0], int(parts[1]), parts[2] if len(parts) > 2 else ''


async def _read_headers(reader):
    headers = {}
    for _line in range(MAX_HEADER_LINES):
        line = await reader.readline()
        if not line.endswith(b'\n'):
            raise TransportError('closed', 'the server closed the connection in the middle of its headers')
        if line in (b'\r\n', b'\n'):
            return headers
        name, sep, value = line.decode('latin-1').partition(':')
        if not sep:
            raise BadResponse(f'not a header line: {line[:80]!r}')
        name, value = name.strip().lower(), value.strip()
        headers[name] = f'{headers[name]}, {value}' if name in headers else value
    raise BadResponse(f'more than {MAX_HEADER_LINES} header lines')


async def _read_chunked(reader):
    chunks = []
    while True:
        line = await reader.readline()
        if not line.endswith(b'\n'):
            raise TransportError('closed', 'the server closed the connection in the middle of a chunked body')
        size_text = line.split(b';', 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise BadResponse(f'invalid chunk size {size_text[:20]!r}') from None
        if size == 0:
            await _read_headers(reader)          # trailers, then the blank line
            return b''.join(chunks)
        chunks.append(await reader.readexactly(size))
        if await reader.readexactly(2) != b'\r\n':
            raise BadResponse('a chunk does not end with CRLF')


async def _read_to_eof(reader):
    kept, size = [], 0
    while True:
        data = await reader.read(65536)
        if not data:
            return b''.join(kept)
        if size < MAX_BODY_BYTES:
            kept.append(data[:MAX_BODY_BYTES - size])
        size += len(data)


# ---------------------------------------------------------------------------------------------
# Figures


def percentile(values, pct, presorted=False):
    """The ``pct`` percentile of ``values`` by the nearest-rank method (the smallest value with at
    least pct% of the values at or below it); None for no values."""
    if not values:
        return None
    ordered = values if presorted else sorted(values)
    rank = max(1, math.ceil(pct / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def latency_summary(values):
    """``{p50, p95, p99, max, mean}`` (milliseconds, 3 decimals) of ``values``; all None when empty."""
    if not values:
        return {'p50': None, 'p95': None, 'p99': None, 'max': None, 'mean': None}
    ordered = sorted(values)
    return {'p50': round(percentile(ordered, 50, True), 3), 'p95': round(percentile(ordered, 95, True), 3),
            'p99': round(percentile(ordered, 99, True), 3), 'max': round(ordered[-1], 3),
            'mean': round(sum(ordered) / len(ordered), 3)}


def _excerpt(data):
    text = data.decode('utf-8', 'replace') if isinstance(data, bytes) else str(data or '')
    text = ' '.join(text.split())
    return text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS - 3] + '...'


def _utc_iso(epoch):
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec='milliseconds').replace('+00:00', 'Z')


class _Tally:
    """Counts of one set of requests (all of them, or one mix entry)."""

    def __init__(self, spread_headers):
        self.sent = self.completed = self.failed = 0
        self.status_counts = {}
        self.errors = {}
        self.latencies = []
        self.spread = {header: {} for header in spread_headers}

    def add(self, status, kind, latency_ms, response):
        self.sent += 1
        if status is not None:
            self.completed += 1
            self.status_counts[str(status)] = self.status_counts.get(str(status), 0) + 1
            self.latencies.append(latency_ms)
            for header, counts in self.spread.items():
                value = response.header(header)
                if value is not None:
                    counts[value] = counts.get(value, 0) + 1
        if kind is not None:
            self.failed += 1
            self.errors[kind] = self.errors.get(kind, 0) + 1

    def as_dict(self):
        return {'sent': self.sent, 'completed': self.completed, 'failed': self.failed,
                'ok': self.sent - self.failed, 'status_counts': dict(sorted(self.status_counts.items())),
                'errors': dict(sorted(self.errors.items(), key=lambda kv: (-kv[1], kv[0]))),
                'latency_ms': latency_summary(self.latencies),
                'spread': {h: dict(sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))) for h, c in self.spread.items()}}


class _Run:
    """The state a run's workers share (all in one event loop: no locks)."""

    def __init__(self, config, ids):
        self.config = config
        self.ids = ids
        self.random = random.Random(config.seed)
        self.entries = [entry for entry in config.mix if entry.weight > 0]
        total, self.cumulative = 0.0, []
        for entry in self.entries:
            total += entry.weight
            self.cumulative.append(total)
        self.total_weight = total
        self.all = _Tally(config.spread_headers)
        self.by_request = {entry.name: _Tally(config.spread_headers) for entry in config.mix}
        self.timeline = {}
        self.samples = []
        self.issued = 0
        self.in_flight = 0
        self.stale_retries = 0
        self.retry_after_retries = 0
        self.created = {}
        self.last_done = None
        self.stop_reason = None
        self.stop_time = None
        self.t0 = None
        self.deadline = None

    def stop(self, reason, now):
        if self.stop_reason is None:
            self.stop_reason, self.stop_time = reason, now

    def reserve(self, now):
        """Whether a worker may send one more request now (and count it as issued)."""
        if self.stop_reason is not None:
            return False
        if now >= self.deadline:
            self.stop('duration', now)
            return False
        if self.config.max_requests and self.issued >= self.config.max_requests:
            self.stop('max_requests', now)
            return False
        self.issued += 1
        return True

    def pick(self):
        point = self.random.random() * self.total_weight
        return self.entries[min(bisect.bisect_right(self.cumulative, point), len(self.entries) - 1)]

    def pick_ids(self):
        ids = {}
        if self.ids.get('user_ids'):
            index = self.random.randrange(len(self.ids['user_ids']))
            ids['user_id'] = self.ids['user_ids'][index]
            if self.ids.get('order_ids'):
                ids['order_id'] = self.ids['order_ids'][index % len(self.ids['order_ids'])]
        return ids

    def record(self, entry, started, done, status=None, kind=None, response=None, detail=''):
        """Count one request of ``entry`` sent at ``started`` and over at ``done`` (loop times): with an
        answer (``status``, ``response``), and ``kind`` when it failed."""
        self.last_done = max(self.last_done or done, done)
        latency_ms = (done - started) * 1000.0 if status is not None else None
        second = int(max(started - self.t0, 0))
        bucket = self.timeline.setdefault(second, [0, 0])
        bucket[0] += 1
        if kind is not None:
            bucket[1] += 1
            if len(self.samples) < MAX_FAILURE_SAMPLES:
                self.samples.append({'t': round(started - self.t0, 3), 'request': entry.name, 'kind': kind,
                                     'status': status,
                                     'body': _excerpt(response.body) if response is not None else _excerpt(detail)})
        self.all.add(status, kind, latency_ms, response)
        self.by_request[entry.name].add(status, kind, latency_ms, response)


def _build(entry, ids, config):
    """``(target, headers, body_bytes)`` of one request of ``entry`` with ``ids`` filled in."""
    target = config.base_path + fill_text(entry.path, ids)
    headers = dict(entry.headers)
    body = None
    if entry.body is not None:
        if isinstance(entry.body, str):
            body = fill_text(entry.body, ids).encode('utf-8')
        else:
            body = json.dumps(fill_template(entry.body, ids), separators=(',', ':')).encode('utf-8')
        if not any(name.lower() == 'content-type' for name in headers):
            headers['Content-Type'] = 'application/json'
    if entry.idempotency_key:
        headers['Idempotency-Key'] = str(uuid.uuid4())
    return target, headers, body


async def _send(run, conn, entry):
    """Send one request of ``entry`` and record its outcome."""
    loop = asyncio.get_running_loop()
    config = run.config
    target, headers, body = _build(entry, run.pick_ids(), config)
    started = loop.time()
    response = None
    retries_left = config.retry_after_max if entry.idempotency_key else 0
    try:
        while True:
            try:
                response = await conn.request(entry.method, target, headers, body, config.timeout_s)
            except TransportError as exc:
                # a kept-alive connection the server had closed (nginx closes idle ones when it
                # reloads): once more, anew, for a request that may be sent twice (idempotent,
                # or deduplicated by its Idempotency-Key), as an HTTP client does
                if not (exc.stale and (entry.method in IDEMPOTENT_METHODS or entry.idempotency_key)):
                    raise
                run.stale_retries += 1
                response = await conn.request(entry.method, target, headers, body, config.timeout_s)
            delay = _retry_after(response)
            if response.status != 503 or delay is None or retries_left <= 0 or entry.accepts(503):
                break
            retries_left -= 1
            run.retry_after_retries += 1        # the same request, the same key: applied at most once
            await asyncio.sleep(delay)
    except TransportError as exc:
        run.record(entry, started, loop.time(), kind=exc.kind, detail=exc.detail)
        return
    kind = None if entry.accepts(response.status) else f'status_{response.status}'
    run.record(entry, started, loop.time(), status=response.status, kind=kind, response=response)
    if config.collect_ids and kind is None and entry.method == 'POST' and 200 <= response.status < 300:
        created = _created_id(response)
        if created is not None:
            run.created.setdefault(entry.name, []).append(created)


def _retry_after(response):
    """The delay a 503's Retry-After asks for (seconds, capped at 2), or None without one."""
    value = response.header('Retry-After')
    if value is None:
        return None
    try:
        return min(max(float(value), 0.05), 2.0)
    except ValueError:
        return 1.0  # an HTTP date: wait a second


def _created_id(response):
    try:
        data = json.loads(response.body or b'null')
    except ValueError:
        return None
    return data.get('id') if isinstance(data, dict) else None


async def _worker(run):
    loop = asyncio.get_running_loop()
    conn = Connection(run.config.host, run.config.port, run.config.host_header())
    try:
        while run.reserve(loop.time()):
            entry = run.pick()
            run.in_flight += 1
            await _send(run, conn, entry)
            run.in_flight -= 1
    finally:
        conn.close()


# ---------------------------------------------------------------------------------------------
# Setup: the users and orders the mix's placeholders are filled from


async def _setup_post(conn, config, path, payload, what):
    target = config.base_path + path
    body = json.dumps(payload).encode('utf-8')
    try:
        response = await conn.request('POST', target, {'Content-Type': 'application/json'}, body, config.timeout_s)
    except TransportError as exc:
        raise LoadError(f'setup: POST {config.base_url}{path} (to create {what}) failed: {exc.kind} ({exc.detail}); '
                        f'is the lab running and answering at {config.base_url}?') from None
    if not 200 <= response.status < 300:
        raise LoadError(f'setup: POST {config.base_url}{path} (to create {what}) answered HTTP {response.status}: '
                        f'{_excerpt(response.body)}; the mix\'s placeholders need {what} (setup_users): is {config.base_url} the lab\'s '
                        'entry point, and is the service behind it up?')
    try:
        ident = response.json()['id']
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise LoadError(f'setup: POST {config.base_url}{path} (to create {what}) answered HTTP {response.status} '
                        f'without a JSON object with an id: {_excerpt(response.body)}') from None
    return ident


async def run_setup(config):
    """``{'user_ids': [...], 'order_ids': [...]}``: the users (and one order per user) the mix needs."""
    ids = {'user_ids': [], 'order_ids': []}
    if not config.needs_users:
        return ids
    conn = Connection(config.host, config.port, config.host_header())
    tag = uuid.uuid4().hex[:12]
    try:
        for number in range(1, config.setup_users + 1):
            ids['user_ids'].append(await _setup_post(
                conn, config, '/api/users/',
                {'name': f'Load Test User {number}', 'email': f'load-test-{tag}-{number}@example.com'}, 'users'))
        if config.needs_orders:
            for user_id in ids['user_ids']:
                ids['order_ids'].append(await _setup_post(
                    conn, config, '/api/orders/', {'user_id': user_id, 'items': copy.deepcopy(ORDER_ITEMS)}, 'orders'))
    finally:
        conn.close()
    return ids


# ---------------------------------------------------------------------------------------------
# The run


def empty_result(config, msg=None):
    """The result of a run that sent nothing (check mode), with every key of a real one."""
    result = {'url': config.base_url, 'config': config.as_dict(), 'sent': 0, 'completed': 0, 'failed': 0, 'ok': 0,
              'unfinished': 0, 'stale_retries': 0, 'retry_after_retries': 0, 'created': {}, 'status_counts': {},
              'errors': {},
              'latency_ms': latency_summary([]), 'by_request': {}, 'spread': {h: {} for h in config.spread_headers},
              'duration_s': 0.0, 'rps': 0.0, 'started_at': None, 'ended_at': None, 'stopped_by': None,
              'timeline': [], 'failure_samples': [], 'setup': {'users': 0, 'orders': 0, 'user_ids': [], 'order_ids': []}}
    if msg:
        result['msg'] = msg
    return result


async def run_load_async(config, stop_event=None, sampler=None):
    """Run the load test of ``config`` (a LoadConfig, or a dict of its arguments); return the result dict.

    ``stop_event`` (a threading.Event or asyncio.Event) stops it early; ``sampler`` (an object with
    ``start()`` and ``stop() -> dict``, such as stats.StatsSampler) runs while the load runs and its
    dict is merged into the result. Raises LoadConfigError or LoadError with a readable message."""
    if not isinstance(config, LoadConfig):
        config = LoadConfig.from_dict(config)
    loop = asyncio.get_running_loop()
    ids = await run_setup(config)
    run = _Run(config, ids)
    started_epoch = time.time()
    run.t0 = loop.time()
    run.deadline = run.t0 + config.time_limit_s
    grace = min(config.timeout_s, END_GRACE_S)
    if sampler is not None:
        sampler.start()
    sampled = {}
    workers = [asyncio.ensure_future(_worker(run)) for _worker_number in range(config.concurrency)]
    pending = set(workers)
    unfinished = 0
    try:
        while pending:
            pending = (await asyncio.wait(pending, timeout=0.05))[1]
            now = loop.time()
            if stop_event is not None and stop_event.is_set():
                run.stop('stop_event', now)
            elif now >= run.deadline:
                run.stop('duration', now)
            if pending and run.stop_reason is not None and now >= run.stop_time + grace:
                unfinished = run.in_flight
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
                break
        for task in workers:
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise task.exception()
    finally:
        for task in workers:
            task.cancel()
        ended = loop.time()
        if sampler is not None:
            sampled = sampler.stop() or {}
    if run.stop_reason is None:
        run.stop('max_requests' if config.max_requests and run.issued >= config.max_requests else 'duration', ended)
    # The run lasts until its last request was over (or it was stopped, whichever is later); the
    # grace given to in-flight requests that never finished does not count.
    over = max(run.last_done or run.t0, run.stop_time or run.t0)
    elapsed = max(min(over, ended) - run.t0, 1e-9)
    totals = run.all.as_dict()
    last_second = max(run.timeline) if run.timeline else -1
    result = empty_result(config)
    result.update(
        sent=totals['sent'], completed=totals['completed'], failed=totals['failed'], ok=totals['ok'],
        unfinished=unfinished, stale_retries=run.stale_retries, retry_after_retries=run.retry_after_retries,
        status_counts=totals['status_counts'],
        errors=totals['errors'], latency_ms=totals['latency_ms'], spread=totals['spread'],
        by_request={name: tally.as_dict() for name, tally in run.by_request.items()},
        duration_s=round(elapsed, 3), rps=round(totals['sent'] / elapsed, 2),
        started_at=_utc_iso(started_epoch), ended_at=_utc_iso(started_epoch + elapsed), stopped_by=run.stop_reason,
        timeline=[{'t': second, 'sent': run.timeline.get(second, [0, 0])[0], 'failed': run.timeline.get(second, [0, 0])[1]}
                  for second in range(last_second + 1)],
        failure_samples=run.samples,
        created=run.created if config.collect_ids else {},
        setup={'users': len(ids['user_ids']), 'orders': len(ids['order_ids']),
               'user_ids': ids['user_ids'], 'order_ids': ids['order_ids']})
    result.update(sampled)
    return result


def run_load(config, stop_event=None, sampler=None):
    """run_load_async() in a new event loop of this thread (so it can run in a background thread);
    ``stop_event`` (a threading.Event) stops the run early."""
    if not isinstance(config, LoadConfig):
        config = LoadConfig.from_dict(config)
    return asyncio.run(run_load_async(config, stop_event=stop_event, sampler=sampler))
