# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Make ``ansible_collections.dockerlab.ecommerce`` importable from this checkout.

Called once by tests/conftest.py, so every tree under tests/ gets it. Under
``ansible-test units`` the collection is already importable and nothing is done.
Otherwise a temporary directory holding ``ansible_collections/dockerlab/ecommerce`` (a
symlink to this checkout) is put first on ``sys.path``.  ``ansible_collections`` and
``ansible_collections.dockerlab`` stay implicit namespace packages, so they merge with
any other ``ansible_collections`` directory on ``sys.path`` (e.g. the ``ansible``
package's), and this checkout wins over any installed copy of the collection.
"""

from __future__ import annotations

import atexit
import importlib
import importlib.util
import os
import shutil
import sys
import tempfile

REPO_ROOT = os.path.realpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
COLLECTION = 'ansible_collections.dockerlab.ecommerce'


def already_importable():
    """Whether ``COLLECTION`` already resolves to this checkout."""
    try:
        spec = importlib.util.find_spec(COLLECTION)
    except ImportError:
        return False
    if spec is None:
        return False
    locations = list(spec.submodule_search_locations or [])
    return any(os.path.realpath(location) == REPO_ROOT for location in locations)


def make_importable():
    """Make ``COLLECTION`` import from this checkout; return the directory put on sys.path (or None)."""
    if already_importable():
        return None
    base = tempfile.mkdtemp(prefix='dockerlab-ecommerce-tests-')
    atexit.register(shutil.rmtree, base, True)
    namespace_dir = os.path.join(base, 'ansible_collections', 'dockerlab')
    os.makedirs(namespace_dir)
    os.symlink(REPO_ROOT, os.path.join(namespace_dir, 'ecommerce'))
    sys.path.insert(0, base)
    # forget any other copy of the collection imported before us
    for name in list(sys.modules):
        if name == 'ansible_collections.dockerlab' or name.startswith('ansible_collections.dockerlab.'):
            del sys.modules[name]
    importlib.invalidate_caches()
    importlib.import_module(COLLECTION + '.plugins.module_utils._topology.model')
    return base


def collections_dir(parent):
    """Make ``parent/collections/ansible_collections/dockerlab/ecommerce`` -> this checkout; return
    ``parent/collections`` (a value for ANSIBLE_COLLECTIONS_PATH)."""
    namespace_dir = os.path.join(str(parent), 'collections', 'ansible_collections', 'dockerlab')
    os.makedirs(namespace_dir)
    os.symlink(REPO_ROOT, os.path.join(namespace_dir, 'ecommerce'), target_is_directory=True)
    return os.path.join(str(parent), 'collections')
