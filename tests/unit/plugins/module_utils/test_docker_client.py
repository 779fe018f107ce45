# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Unit tests of plugins/module_utils/docker_client.py: the shared options and docker exec (no engine)."""

from __future__ import annotations

import pytest
import yaml
from ansible_collections.dockerlab.ecommerce.plugins.doc_fragments.docker_api import ModuleDocFragment
from ansible_collections.dockerlab.ecommerce.plugins.module_utils import docker_client as dc
from fake_docker import FakeDockerClient, NotFoundError


def test_the_doc_fragment_documents_the_spec():
    documented = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)['options']
    assert set(documented) == set(dc.DOCKER_COMMON_ARGS)
    for name, spec in dc.DOCKER_COMMON_ARGS.items():
        doc = documented[name]
        assert (doc['type'], doc.get('default'), doc.get('aliases', [])) == \
            (spec['type'], spec.get('default'), spec.get('aliases', [])), name
    assert 'DOCKER_HOST' in ' '.join(documented['docker_host']['description'])
    assert dc.DOCKER_COMMON_ARGS['docker_host']['fallback'][1] == ['DOCKER_HOST']


def test_exec_in_container():
    client = FakeDockerClient(answer=lambda container, environment: (3, b'out', None))
    assert dc.exec_in_container(client, 'web', ['true'], {'A': '1'}) == (3, b'out', b'')
    assert client.api.execs == [('web', ['true'], {'A': '1'})]


@pytest.mark.parametrize('error, message', [
    (NotFoundError('No such container: web'), 'no container web'),
    (RuntimeError('409 Client Error: Conflict (Container 1234 is not running)'), 'container web is not running'),
    (RuntimeError('409 Client Error: Conflict (Container 1234 is paused, unpause the container first)'),
     'container web is not running'),
])
def test_exec_in_an_unavailable_container(error, message):
    def answer(_container, _environment):
        raise error
    with pytest.raises(dc.ContainerUnavailable, match=message):
        dc.exec_in_container(FakeDockerClient(answer=answer), 'web', ['true'])


def test_other_exec_errors_pass_through():
    def answer(_container, _environment):
        raise RuntimeError('500 Server Error')
    with pytest.raises(RuntimeError, match='500 Server Error'):
        dc.exec_in_container(FakeDockerClient(answer=answer), 'web', ['true'])


def test_is_not_found():
    assert dc.is_not_found(NotFoundError('x')) and not dc.is_not_found(RuntimeError('x'))
