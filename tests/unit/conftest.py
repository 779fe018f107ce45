# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The unit tests: no Docker engine, no image, no deployed lab (see tests/README.md).

The collection is importable as ``ansible_collections.dockerlab.ecommerce`` through
tests/conftest.py (tests/collection_path.py), which also gives the ``collections_path``
fixture. This file holds the course's default topology the tests share, rendered from the roles'
own defaults by Ansible (never a copy of them); the test modules import it with
``from conftest import ...``.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import socket
import sys
import tempfile

import pytest

from ansible_collections.dockerlab.ecommerce.plugins.module_utils._topology.model import resolve

from docker_env import unused_subnets  # noqa: F401  pylint: disable=unused-import  # the plugins' tests import it from here

# `from conftest import ...` in the test modules: make it work whatever pytest's import mode is.
_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)


def _load_default_topology(extra_vars=None, collections_path=None):
    """The topology the roles' own defaults declare, rendered by Ansible (tests/unit/playbooks/dump_topology.yml).

    ``extra_vars`` (``{name: value}``) go to ansible-playbook as one JSON ``-e``, so their
    values keep their types (a list for stack_tiers, a number for a port).
    ``collections_path`` renders another tree of the collection instead of this checkout's
    (ANSIBLE_COLLECTIONS_PATH), e.g. one with a tier role added."""
    repo = os.path.dirname(os.path.dirname(_HERE))
    with tempfile.TemporaryDirectory(prefix='dockerlab-defaults-') as work:
        dump = os.path.join(work, 'topology.json')
        env = dict(os.environ, ANSIBLE_HOME=os.path.join(work, 'ansible-home'), ANSIBLE_STDOUT_CALLBACK='default')
        if collections_path:
            env['ANSIBLE_COLLECTIONS_PATH'] = str(collections_path)
        command = [os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'), '-i', 'localhost,',
                   os.path.join(_HERE, 'playbooks', 'dump_topology.yml'), '-e', f'dump_path={dump}',
                   '-e', f"dump_secrets_dir={os.path.join(work, 'secrets')}"]
        if extra_vars:
            command.extend(['-e', json.dumps(extra_vars)])
        done = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f'rendering the roles\' default topology failed:\n{done.stdout[-3000:]}{done.stderr[-2000:]}')
        with open(dump, encoding='utf-8') as handle:
            return json.load(handle)


DEFAULTS = _load_default_topology()
DEFAULT_NETWORKS = DEFAULTS['networks']
DEFAULT_VOLUMES = DEFAULTS['volumes']
DEFAULT_SERVICES = DEFAULTS['services']
DEFAULT_IMAGES = DEFAULTS['images']
# Every container of every profile, as the model resolves them.
DEFAULT_CONTAINERS = [record['name'] for record in resolve(DEFAULT_SERVICES, DEFAULT_NETWORKS, DEFAULT_VOLUMES,
                                                           images=DEFAULT_IMAGES)['containers']]


def default_model(profile='offline', defaults=None, **overrides):
    """The resolved default topology for ``profile`` (a fresh copy); ``defaults``: another
    dump of _load_default_topology() to resolve instead of the roles' plain defaults."""
    defaults = DEFAULTS if defaults is None else defaults
    arguments = {'images': defaults['images'], 'profile': profile, 'stack_name': defaults['stack_name'],
                 'healthcheck_defaults': defaults['healthcheck'], 'container_log': defaults['container_log'],
                 'entrypoint': 'http://127.0.0.1:8080', 'security_defaults': defaults.get('security'),
                 'resources_overrides': defaults.get('resources')}
    arguments.update(overrides)
    return resolve(copy.deepcopy(defaults['services']), defaults['networks'], defaults['volumes'], **arguments)


@pytest.fixture
def topology():
    """The course's default topology as (networks, volumes, services_by_var); a fresh deep copy per test."""
    return copy.deepcopy(DEFAULT_NETWORKS), copy.deepcopy(DEFAULT_VOLUMES), copy.deepcopy(DEFAULT_SERVICES)


@pytest.fixture
def closed_port():
    """A loopback port nothing listens on (bound, then closed)."""
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    port = sock.getsockname()[1]
    sock.close()
    return port
