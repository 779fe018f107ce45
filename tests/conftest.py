# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What every tree under tests/ shares (see tests/README.md for which tree needs what).

pytest imports this file before any tree's own conftest and, tests/ holding no
``__init__.py``, puts tests/ on ``sys.path`` to do so: the helpers beside this file
(``collection_path``, ``prerequisites``, ``docker_env``, ``rendering``, ``dashboard_queries``)
are imported by name from any tree. It also makes the collection importable as
``ansible_collections.dockerlab.ecommerce`` (collection_path.py).
"""

from __future__ import annotations

import socket

import pytest

from collection_path import collections_dir, make_importable

COLLECTIONS_BASE = make_importable()


@pytest.fixture
def collections_path(tmp_path):
    """A directory for ANSIBLE_COLLECTIONS_PATH holding ansible_collections/dockerlab/ecommerce -> this checkout."""
    return collections_dir(tmp_path)


@pytest.fixture(name='busy_port')
def fixture_busy_port():
    """A TCP port on 127.0.0.1 that a listener holds for the test's duration."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(('127.0.0.1', 0))
    listener.listen(1)
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()
