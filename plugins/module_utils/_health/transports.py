# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""TCP exchanges: from this host (socket_exchange) or from inside a container (container_exchange:
one ``docker exec`` of a small python3, bash ``/dev/tcp`` or busybox ``nc`` script, whichever
the container has)."""

from __future__ import annotations

import binascii
import re
import socket

from ansible_collections.dockerlab.ecommerce.plugins.module_utils.docker_client import exec_in_container

# exit codes of the scripts run in containers: timeout(1) gave up, no tool to do the job
EXIT_TIMEOUT = 124
EXIT_NO_TOOL = 127


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
    exit_code, out, err = exec_in_container(client, container, ['sh', '-c', _EXCHANGE_SH], env)
    return parse_exchange_output(exit_code, out, err, host, port, timeout)


def exchange(ctx, check, payload=b'', mode='once', complete=None):
    """Run the TCP exchange of a tcp or protocol check from this host or from its from_container."""
    if check.get('from_container'):
        return container_exchange(ctx.client, check['from_container'], check['host'], check['port'],
                                  payload, mode, check['timeout'])
    return socket_exchange(check['host'], check['port'], payload, mode, check['timeout'], complete)
