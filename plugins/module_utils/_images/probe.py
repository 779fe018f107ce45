# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Ask every registry and package mirror the upstream profile needs whether it answers, all at
once: the slowest one bounds the wait, not their sum. Any HTTP answer counts (a registry's
/v2/ says 401 to an anonymous client); a refused connection, a timeout, a name that does not
resolve or a TLS failure does not."""

from __future__ import annotations

import socket
import ssl
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor


def _reason(exc):
    """A short, readable cause of a failed request."""
    cause = getattr(exc, 'reason', exc)
    if isinstance(cause, socket.timeout) or isinstance(exc, TimeoutError):
        return 'no answer (timed out)'
    if isinstance(cause, socket.gaierror):
        return 'the name does not resolve'
    if isinstance(cause, ssl.SSLError):
        return f'TLS failed ({cause.reason or cause})'
    if isinstance(cause, ConnectionRefusedError):
        return 'connection refused'
    return ' '.join(str(cause).split()) or cause.__class__.__name__


def probe_url(url, timeout, opener=None):
    """``{url, answered, status, error, seconds}`` for one GET of ``url``."""
    opener = opener or urllib.request.build_opener(urllib.request.ProxyHandler())
    started = time.monotonic()
    result = {'url': url, 'answered': False, 'status': None, 'error': None}
    try:
        with opener.open(urllib.request.Request(url, method='GET'), timeout=timeout) as response:
            result.update(answered=True, status=response.status)
    except urllib.error.HTTPError as exc:   # an HTTP answer, even 401 or 404: someone is there
        result.update(answered=True, status=exc.code)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        result['error'] = _reason(exc)
    result['seconds'] = round(time.monotonic() - started, 3)
    return result


def probe_sources(urls, timeout):
    """``{source: probe_url(...)}`` for ``urls`` (``{source: url}``), asked in parallel."""
    if not urls:
        return {}
    names = sorted(urls)
    with ThreadPoolExecutor(max_workers=min(len(names), 16)) as pool:
        results = pool.map(lambda name: probe_url(urls[name], timeout), names)
        return dict(zip(names, results))
