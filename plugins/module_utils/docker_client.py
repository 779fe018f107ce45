# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A Docker client for the modules, and ``docker exec`` helpers.

Uses the Docker SDK for Python (``docker``), imported in try/except: callers check
``HAS_DOCKER_SDK`` and report ``DOCKER_SDK_IMPORT_ERROR`` through missing_required_lib().
Nothing here raises for an unreachable engine: get_client() returns ``(None, message)``
with a sentence a person can act on.
"""

from __future__ import annotations

import traceback

try:
    import docker
    from docker.errors import NotFound
    HAS_DOCKER_SDK = True
    DOCKER_SDK_IMPORT_ERROR = None
except ImportError:
    docker = None
    NotFound = Exception
    HAS_DOCKER_SDK = False
    DOCKER_SDK_IMPORT_ERROR = traceback.format_exc()

DEFAULT_DOCKER_HOST = 'unix:///var/run/docker.sock'
# Enough connections for the thread pools of the modules (the SDK's default is 10).
DEFAULT_POOL_SIZE = 32


def get_client(docker_host=None, timeout=30, pool_size=DEFAULT_POOL_SIZE):
    """``(docker.DockerClient, None)``, or ``(None, message)`` when there is no engine to talk to."""
    if not HAS_DOCKER_SDK:
        return None, 'The Docker SDK for Python is not installed; install it with: pip install docker'
    base_url = docker_host or DEFAULT_DOCKER_HOST
    try:
        client = docker.DockerClient(base_url=base_url, version='auto', timeout=timeout, max_pool_size=pool_size)
    # anything that stops the client (DockerException, a requests error, a bad URL) is reported, never raised
    except Exception as exc:  # noqa: BLE001 pylint: disable=broad-except
        detail = str(exc).strip() or type(exc).__name__
        return None, (f'No Docker engine answered at {base_url} ({detail}); start Docker, or set docker_host '
                      '(or DOCKER_HOST) to the engine\'s socket or URL')
    return client, None


def is_not_found(exc):
    """True when ``exc`` is the SDK's 404."""
    return HAS_DOCKER_SDK and isinstance(exc, NotFound)


def exec_in_container(client, container, command, environment=None, user=None):
    """Run ``command`` (argv list) in a running container: ``(exit_code, stdout_bytes, stderr_bytes)``.

    The command must bound its own run time (wrap it in ``timeout``): Docker has no exec timeout.
    Raises the SDK's exceptions (NotFound, APIError) to the caller.
    """
    api = client.api
    created = api.exec_create(container, command, stdout=True, stderr=True, environment=environment or None,
                              user=user or '')
    stdout, stderr = api.exec_start(created['Id'], demux=True)
    exit_code = api.exec_inspect(created['Id']).get('ExitCode')
    return exit_code, stdout or b'', stderr or b''


TOOLS = ('python3', 'bash', 'curl', 'wget', 'busybox', 'getent', 'timeout')
_DETECT = 'for b in ' + ' '.join(TOOLS) + '; do command -v "$b" >/dev/null 2>&1 && echo "$b"; done; exit 0'


def detect_tools(client, container):
    """The helper programs (python3, bash, curl, wget, busybox, getent, timeout) a container has."""
    code, out, _err = exec_in_container(client, container, ['sh', '-c', _DETECT])
    if code not in (0, None):
        return set()
    return set(out.decode('utf-8', 'replace').split())
