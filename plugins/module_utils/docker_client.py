# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The Docker client of the modules: their connection options, the client, and ``docker exec``.

Uses the Docker SDK for Python (``docker``), imported in try/except: callers check
``HAS_DOCKER_SDK`` and report ``DOCKER_SDK_IMPORT_ERROR`` through missing_required_lib().
Nothing here raises for an unreachable engine: get_client() returns ``(None, message)``
with a sentence a person can act on.
"""

from __future__ import annotations

import traceback

from ansible.module_utils.basic import env_fallback

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
DEFAULT_API_TIMEOUT = 30
# Enough connections for the thread pools of the modules (the SDK's default is 10).
DEFAULT_POOL_SIZE = 32

# The connection options of every module that talks to the Docker API, for its argument_spec
# (``{**DOCKER_COMMON_ARGS, ...}``). Their documentation is the dockerlab.ecommerce.docker_api
# doc fragment (plugins/doc_fragments/docker_api.py): change both together.
DOCKER_COMMON_ARGS = {
    'docker_host': {'type': 'str', 'default': DEFAULT_DOCKER_HOST, 'aliases': ['docker_url'],
                    'fallback': (env_fallback, ['DOCKER_HOST'])},
    'api_timeout': {'type': 'int', 'default': DEFAULT_API_TIMEOUT},
}


class ContainerUnavailable(Exception):
    """The container to exec in does not exist or is not running."""


def get_client(docker_host=None, timeout=DEFAULT_API_TIMEOUT, pool_size=DEFAULT_POOL_SIZE):
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
    """True when ``exc`` is the Docker API's 404 (the SDK's NotFound, or any error with a 404 response)."""
    if getattr(getattr(exc, 'response', None), 'status_code', None) == 404:
        return True
    return HAS_DOCKER_SDK and isinstance(exc, NotFound)


def exec_in_container(client, container, command, environment=None):
    """Run ``command`` (argv list) in a running container: ``(exit_code, stdout_bytes, stderr_bytes)``.

    The command must bound its own run time (wrap it in ``timeout``): Docker has no exec timeout.
    Raises ContainerUnavailable when the container does not exist or is not running, and the
    SDK's other exceptions (APIError) to the caller.
    """
    api = client.api
    try:
        created = api.exec_create(container, command, stdout=True, stderr=True, environment=environment or None)
        stdout, stderr = api.exec_start(created['Id'], demux=True)
        exit_code = api.exec_inspect(created['Id']).get('ExitCode')
    except Exception as exc:  # noqa: BLE001 pylint: disable=broad-except
        if is_not_found(exc):
            raise ContainerUnavailable(f'no container {container}') from None
        text = str(exc)
        if 'is not running' in text or 'is restarting' in text or 'is paused' in text:
            raise ContainerUnavailable(f'container {container} is not running') from None
        raise
    return exit_code, stdout or b'', stderr or b''
