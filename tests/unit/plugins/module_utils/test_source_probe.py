# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""source_probe's logic against real HTTP servers on 127.0.0.1: what counts as an answer, and
that the sources are asked together (a server that answers only once every request has
arrived proves it without timing anything)."""

from __future__ import annotations

import http.server
import socket
import threading

import pytest

from ansible_collections.dockerlab.ecommerce.plugins.module_utils._images.probe import probe_sources, probe_url


class _Handler(http.server.BaseHTTPRequestHandler):
    status = 401
    barrier = None

    def do_GET(self):  # noqa: N802 - http.server's name
        if self.barrier is not None:
            self.barrier.wait(timeout=10)   # raises BrokenBarrierError unless all requests are in flight
        self.send_response(self.status)
        self.send_header('Content-Length', '0')
        self.end_headers()

    def log_message(self, *args):
        pass


def _serve(status, barrier=None):
    handler = type('Handler', (_Handler,), {'status': status, 'barrier': barrier})
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    server.daemon_threads, server.block_on_close = True, False   # a handler still at the barrier is not waited for
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def servers():
    started = []

    def start(status, barrier=None):
        server = _serve(status, barrier)
        started.append(server)
        return f'http://127.0.0.1:{server.server_address[1]}/v2/'
    yield start
    for server in started:
        server.shutdown()
        server.server_close()


def _closed_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _silent_server():
    """A socket that accepts connections (the kernel's backlog) but never answers."""
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    sock.listen(8)
    return sock


@pytest.mark.parametrize('status', [200, 401, 404, 503])
def test_any_http_answer_counts(servers, status):
    result = probe_url(servers(status), timeout=5)
    assert (result['answered'], result['status'], result['error']) == (True, status, None)


def test_refused_silent_and_unresolvable_sources_do_not(servers):
    silent = _silent_server()
    try:
        results = probe_sources({
            'refused': f'http://127.0.0.1:{_closed_port()}/v2/',
            'silent': f'http://127.0.0.1:{silent.getsockname()[1]}/v2/',
            'nowhere': 'http://registry.invalid/v2/',
            'hub': servers(401),
        }, timeout=1)
    finally:
        silent.close()
    assert {name: r['answered'] for name, r in results.items()} == {
        'hub': True, 'nowhere': False, 'refused': False, 'silent': False}
    assert results['refused']['error'] == 'connection refused'
    assert results['silent']['error'] == 'no answer (timed out)'
    assert results['nowhere']['error']   # resolver-dependent wording, but always a reason


def test_the_sources_are_asked_together(servers):
    barrier = threading.Barrier(3)
    urls = {name: servers(401, barrier) for name in ('a', 'b', 'c')}
    results = probe_sources(urls, timeout=10)
    assert all(result['answered'] for result in results.values()), results
    assert not barrier.broken


def test_the_control_one_at_a_time_would_not_get_an_answer(servers):
    # The same servers asked one by one: the first request waits at the barrier alone and
    # the barrier breaks, so the test above can fail.
    barrier = threading.Barrier(3)
    urls = [servers(401, barrier) for _number in range(3)]
    first = probe_url(urls[0], timeout=2)
    assert first['answered'] is False or barrier.broken
