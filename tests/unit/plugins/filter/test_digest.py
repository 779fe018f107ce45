# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.dockerlab.ecommerce.plugins.filter.digest import (
    FilterModule,
    tree_digest,
)


@pytest.fixture
def recipe(tmp_path):
    """A small image recipe directory."""
    root = tmp_path / 'recipe'
    (root / 'conf.d').mkdir(parents=True)
    (root / 'Dockerfile').write_text('FROM nginx:1.27-alpine\nCOPY conf.d /etc/nginx/conf.d\n')
    (root / 'conf.d' / 'default.conf').write_text('server { listen 80; }\n')
    (root / 'entrypoint.sh').write_text('#!/bin/sh\nexec nginx -g "daemon off;"\n')
    os.chmod(str(root / 'entrypoint.sh'), 0o755)
    os.chmod(str(root / 'Dockerfile'), 0o644)
    return root


def test_is_a_sha256_hex_digest(recipe):
    assert re.match(r'^[0-9a-f]{64}$', tree_digest(str(recipe)))


def test_is_registered_as_tree_digest():
    assert FilterModule().filters()['tree_digest'] is tree_digest


def test_stable_when_nothing_changes(recipe):
    first = tree_digest(str(recipe))
    os.utime(str(recipe / 'Dockerfile'), (0, 0))                 # timestamps do not count
    os.chmod(str(recipe / 'Dockerfile'), 0o600)                    # neither do non-executable mode bits
    (recipe / 'empty').mkdir()                                     # nor empty directories
    assert tree_digest(str(recipe)) == first
    assert tree_digest(str(recipe) + '/') == first


def test_same_content_elsewhere_gives_same_digest(recipe, tmp_path):
    copy = tmp_path / 'copy'
    shutil.copytree(str(recipe), str(copy))
    assert tree_digest(str(copy)) == tree_digest(str(recipe))


def test_changes_with_content(recipe):
    before = tree_digest(str(recipe))
    (recipe / 'conf.d' / 'default.conf').write_text('server { listen 8080; }\n')
    assert tree_digest(str(recipe)) != before


def test_changes_with_name(recipe):
    before = tree_digest(str(recipe))
    os.rename(str(recipe / 'conf.d' / 'default.conf'), str(recipe / 'conf.d' / 'site.conf'))
    assert tree_digest(str(recipe)) != before


def test_changes_with_directory_of_a_file(recipe):
    before = tree_digest(str(recipe))
    os.rename(str(recipe / 'conf.d' / 'default.conf'), str(recipe / 'default.conf'))
    assert tree_digest(str(recipe)) != before


def test_changes_with_executable_bit(recipe):
    before = tree_digest(str(recipe))
    script = recipe / 'entrypoint.sh'
    os.chmod(str(script), 0o644)
    without_x = tree_digest(str(recipe))
    assert without_x != before
    os.chmod(str(script), 0o755)
    assert tree_digest(str(recipe)) == before


def test_changes_with_added_or_removed_file(recipe):
    before = tree_digest(str(recipe))
    (recipe / 'new.txt').write_text('')
    added = tree_digest(str(recipe))
    assert added != before
    (recipe / 'new.txt').unlink()
    assert tree_digest(str(recipe)) == before


def test_moving_bytes_between_files_changes_the_digest(tmp_path):
    one, two = tmp_path / 'one', tmp_path / 'two'
    one.mkdir()
    two.mkdir()
    (one / 'a').write_text('xy')
    (one / 'b').write_text('z')
    (two / 'a').write_text('x')
    (two / 'b').write_text('yz')
    assert tree_digest(str(one)) != tree_digest(str(two))


def test_ignores_python_caches(recipe):
    before = tree_digest(str(recipe))
    (recipe / '__pycache__').mkdir()
    (recipe / '__pycache__' / 'x.cpython-311.pyc').write_bytes(b'\0cache')
    (recipe / 'conf.d' / 'helper.pyc').write_bytes(b'\0cache')
    assert tree_digest(str(recipe)) == before


def test_symlinks_are_not_followed_but_count(recipe, tmp_path):
    outside = tmp_path / 'outside'
    outside.mkdir()
    (outside / 'big').write_text('data')
    before = tree_digest(str(recipe))
    os.symlink(str(outside), str(recipe / 'linked-dir'))
    with_link = tree_digest(str(recipe))
    assert with_link != before
    (outside / 'big').write_text('other data')          # the link target's content is not read
    assert tree_digest(str(recipe)) == with_link


def test_extra_is_mixed_in(recipe):
    plain = tree_digest(str(recipe))
    with_id = tree_digest(str(recipe), extra='sha256:1111')
    assert with_id != plain
    assert tree_digest(str(recipe), extra='sha256:1111') == with_id
    assert tree_digest(str(recipe), extra='sha256:2222') != with_id
    assert tree_digest(str(recipe), extra=['sha256:1111']) == with_id
    assert tree_digest(str(recipe), extra=['sha256:1111', 'arg']) != with_id
    assert tree_digest(str(recipe), extra=['ab', 'c']) != tree_digest(str(recipe), extra=['a', 'bc'])
    assert tree_digest(str(recipe), extra=[]) == plain
    assert tree_digest(str(recipe), extra=None) == plain


def test_extra_rejects_mappings(recipe):
    with pytest.raises(AnsibleFilterError, match='extra must be a string or a list of strings'):
        tree_digest(str(recipe), extra={'a': 1})


def test_missing_directory_names_the_path(tmp_path):
    missing = str(tmp_path / 'no-such-recipe')
    with pytest.raises(AnsibleFilterError) as error:
        tree_digest(missing)
    assert missing in str(error.value)
    assert 'does not exist' in str(error.value)


def test_file_instead_of_directory(recipe):
    path = str(recipe / 'Dockerfile')
    with pytest.raises(AnsibleFilterError, match='is not a directory') as error:
        tree_digest(path)
    assert path in str(error.value)


def test_unreadable_file_names_the_file(recipe, monkeypatch):
    secret = recipe / 'secret'
    secret.write_text('x')
    os.chmod(str(secret), 0)
    if os.geteuid() == 0:
        # Root reads a mode-0 file anyway, so the refusal a user meets is made here.
        real_open = open

        def refusing_open(path, *args, **kwargs):
            if os.path.abspath(str(path)) == str(secret):
                raise PermissionError(13, 'Permission denied', str(path))
            return real_open(path, *args, **kwargs)
        monkeypatch.setattr('builtins.open', refusing_open)
    try:
        with pytest.raises(AnsibleFilterError, match=re.escape(str(secret))):
            tree_digest(str(recipe))
    finally:
        os.chmod(str(secret), stat.S_IRUSR | stat.S_IWUSR)


def run_adhoc_debug(tmp_path, collections_path, expression, variables):
    """Render ``expression`` with ansible-core's real templar, via ``ansible localhost -m debug``."""
    executable = os.path.join(os.path.dirname(sys.executable), 'ansible')
    if not os.path.exists(executable):
        executable = shutil.which('ansible')
    if not executable:
        pytest.fail('ansible is not installed: make venv installs it (requirements.txt)')
    env = dict(os.environ)
    env.update({
        'ANSIBLE_COLLECTIONS_PATH': collections_path,
        'ANSIBLE_LOCAL_TEMP': str(tmp_path / 'local-tmp'),
        'ANSIBLE_HOME': str(tmp_path / 'ansible-home'),
        'ANSIBLE_NOCOLOR': '1',
        'ANSIBLE_LOAD_CALLBACK_PLUGINS': '0',
    })
    env.pop('ANSIBLE_CONFIG', None)
    variables = dict(variables, ansible_python_interpreter=sys.executable)
    process = subprocess.run(
        [executable, 'localhost', '-i', 'localhost,', '-c', 'local', '-m', 'ansible.builtin.debug',
         '-a', f'msg={{{{ {expression} }}}}', '-e', json.dumps(variables)],
        cwd=str(tmp_path), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=300, check=False)
    return process.returncode, process.stdout


def test_through_ansible(recipe, tmp_path, collections_path):
    """The filter as a playbook uses it: found by its FQCN and run by ansible-core's templar."""
    rc, output = run_adhoc_debug(tmp_path, collections_path, 'recipe | dockerlab.ecommerce.tree_digest(extra="base")',
                                 {'recipe': str(recipe)})
    assert rc == 0, output
    assert '"msg": "{}"'.format(tree_digest(str(recipe), extra='base')) in output

    missing = str(tmp_path / 'gone')
    rc, output = run_adhoc_debug(tmp_path, collections_path, 'recipe | dockerlab.ecommerce.tree_digest',
                                 {'recipe': missing})
    assert rc != 0
    assert f"tree_digest: the directory '{missing}' does not exist" in output
