# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Writing the modules' output files (JUnit, reports) atomically."""

from __future__ import annotations

import os
import tempfile

from ansible.module_utils.common.text.converters import to_native


def atomic_write(module, path, content, prefix='.dockerlab-'):
    """Write ``content`` (bytes) at ``path`` through a temporary file and an atomic move;
    fail the module with a sentence naming the path when it cannot."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        module.fail_json(msg=f'Cannot write {path}: the directory {directory} does not exist; create it first')
    try:
        handle, tmp = tempfile.mkstemp(dir=directory, prefix=prefix)
        with os.fdopen(handle, 'wb') as out:
            out.write(content)
    except OSError as exc:
        module.fail_json(msg=f'Cannot write {path}: {to_native(exc.strerror or exc)}; check the directory permissions')
    module.atomic_move(tmp, path)
