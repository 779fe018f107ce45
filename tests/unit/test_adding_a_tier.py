# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What the README promises a newcomer: a tier is one role and one entry in stack_tiers.

A throwaway `cache` tier (one container) is added to a copy of the collection's tree (every
other file a link to this checkout); the roles' own playbook code loads it, prechecks it
and the model resolves it, its edge included, with nothing else changed.
"""

from __future__ import annotations

import os

import yaml

from ansible_collections.dockerlab.ecommerce.plugins.filter.model import flow_policy
from collection_path import REPO_ROOT
from conftest import _load_default_topology, default_model

CACHE_ROLE = {
    'defaults/main.yml': {
        'cache_images': {},
        'cache_services': {
            'cache': {
                'container_name': 'cache',
                'image_component': 'nginx',
                'networks': [{'network': 'frontend'}],
                'expose': [80],
                'connects_to': ['web-server'],
                'probe': {'kind': 'http', 'path': '/health'},
                'healthcheck': {'test': ['CMD', 'curl', '-fsS', '-o', '/dev/null', 'http://127.0.0.1/']},
            },
        },
    },
    'tasks/main.yml': [{'name': 'Deploy the cache tier',
                        'ansible.builtin.include_role': {'name': 'dockerlab.ecommerce.stack', 'tasks_from': 'deploy'},
                        'vars': {'stack_deploy_tier': 'cache'}}],
    'tasks/definitions.yml': [{'name': 'Tier definitions loaded', 'ansible.builtin.meta': 'noop'}],
    'meta/main.yml': {'galaxy_info': {'role_name': 'cache', 'namespace': 'dockerlab', 'author': 'x',
                                      'description': 'x', 'license': 'GPL-3.0-or-later',
                                      'min_ansible_version': '2.17'},
                      'dependencies': [{'role': 'dockerlab.ecommerce.stack'}]},
    'meta/argument_specs.yml': {'argument_specs': {'main': {'short_description': 'The cache tier.',
                                                            'options': {}}}},
}


def collection_with_a_new_tier(tmp_path):
    """``ansible_collections/dockerlab/ecommerce`` under tmp_path: this checkout plus roles/cache."""
    tree = tmp_path / 'ansible_collections' / 'dockerlab' / 'ecommerce'
    (tree / 'roles').mkdir(parents=True)
    for entry in os.listdir(REPO_ROOT):
        if entry not in ('roles', 'collections', '.git', '.venv', '.cache'):
            (tree / entry).symlink_to(os.path.join(REPO_ROOT, entry))
    for role in os.listdir(os.path.join(REPO_ROOT, 'roles')):
        (tree / 'roles' / role).symlink_to(os.path.join(REPO_ROOT, 'roles', role))
    for path, content in CACHE_ROLE.items():
        target = tree / 'roles' / 'cache' / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text('---\n' + yaml.safe_dump(content, sort_keys=False), encoding='utf-8')
    return tmp_path


def test_a_tier_is_one_role_and_one_list_entry(tmp_path):
    tiers = ['logging', 'data', 'backend', 'frontend', 'cache', 'monitoring']
    dump = _load_default_topology({'stack_tiers': tiers},
                                  collections_path=collection_with_a_new_tier(tmp_path))

    assert dump['tiers'] == tiers
    assert dump['roles'][-len(tiers):] == tiers   # its variables are validated up front too
    assert list(dump['services']['cache_services']) == ['cache']
    model = default_model('offline', defaults=dump)
    cache = [record for record in model['containers'] if record['component'] == 'cache']
    assert [(record['name'], record['tier']) for record in cache] == [('cache', 'cache')]
    # Its image comes by convention from the frontend tier's nginx entry, its edge from what
    # the web servers expose, and its mounts, labels and healthcheck like any other's.
    assert cache[0]['image'] == dump['images']['nginx']['upstream']
    assert cache[0]['connects_to'] == [{'service': 'web-server', 'port': 80}]
    assert cache[0]['labels']['dockerlab.component'] == 'cache'
    assert cache[0]['healthcheck']['interval'] == dump['healthcheck']['interval']
    assert {'from': 'cache', 'to': 'web-server', 'port': 80} in flow_policy(model)


def test_without_its_list_entry_the_tier_is_not_part_of_the_stack(tmp_path):
    dump = _load_default_topology(collections_path=collection_with_a_new_tier(tmp_path))
    assert 'cache_services' not in dump['services']
    assert 'cache' not in [record['component'] for record in default_model('offline', defaults=dump)['containers']]
