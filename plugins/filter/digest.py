# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The tree_digest filter: a content digest of a directory tree, for image tags.

Documentation lives in the sidecar file tree_digest.yml (that is how filters are documented).
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

IGNORED_DIRECTORIES = frozenset(['__pycache__'])
IGNORED_SUFFIXES = ('.pyc',)
_CHUNK = 1024 * 1024


def _field(digest, data):
    """Add one length-prefixed field, so that no two different trees hash the same input."""
    if isinstance(data, str):
        data = data.encode('utf-8', 'surrogateescape')
    digest.update(f'{len(data)}:'.encode('ascii'))
    digest.update(data)


def _extra_items(extra):
    if extra is None:
        return []
    if isinstance(extra, (str, bytes)):
        return [extra]
    if isinstance(extra, Mapping):
        raise AnsibleFilterError('tree_digest: extra must be a string or a list of strings, not a mapping')
    if isinstance(extra, (list, tuple)):
        items = []
        for item in extra:
            if isinstance(item, (list, tuple, Mapping)):
                raise AnsibleFilterError('tree_digest: extra must be a string or a list of strings; '
                                         f'it contains {item!r}')
            items.append('' if item is None else item if isinstance(item, (str, bytes)) else str(item))
        return items
    return [str(extra)]


def _walk_entries(root):
    """(relative posix path, absolute path) of every file and symlink below root, sorted by relative path."""
    entries = []

    def on_error(exc):
        raise exc

    for current, directories, files in os.walk(root, onerror=on_error, followlinks=False):
        # symlinks to directories are listed in directories: record them as links, never follow them
        linked = [d for d in directories if os.path.islink(os.path.join(current, d))]
        directories[:] = [d for d in directories if d not in IGNORED_DIRECTORIES and d not in linked]
        for name in files + linked:
            if name.endswith(IGNORED_SUFFIXES) or name in IGNORED_DIRECTORIES:
                continue
            absolute = os.path.join(current, name)
            entries.append((os.path.relpath(absolute, root).replace(os.sep, '/'), absolute))
    return sorted(entries)


def tree_digest(path, extra=None):
    """sha256 hex digest of every file below ``path`` (relative path, executable bit, content), plus ``extra``."""
    if not isinstance(path, (str, bytes)) or not path:
        raise AnsibleFilterError(f'tree_digest: expected a directory path, got {path!r}')
    if isinstance(path, bytes):
        path = path.decode('utf-8', 'surrogateescape')
    root = os.path.abspath(os.path.expanduser(path))
    if not os.path.isdir(root):
        reason = 'is not a directory' if os.path.exists(root) else 'does not exist'
        raise AnsibleFilterError(f"tree_digest: the directory '{path}' {reason} (resolved to '{root}')")

    digest = hashlib.sha256()
    digest.update(b'dockerlab.ecommerce.tree_digest.v1\0')
    try:
        entries = _walk_entries(root)
    except OSError as exc:
        where = getattr(exc, 'filename', None) or path
        raise AnsibleFilterError(f"tree_digest: cannot read the directory '{where}': {exc.strerror or exc}") from exc

    for relative, absolute in entries:
        try:
            info = os.lstat(absolute)
            if stat.S_ISLNK(info.st_mode):
                _field(digest, 'L')
                _field(digest, relative)
                _field(digest, os.readlink(absolute))
                continue
            if not stat.S_ISREG(info.st_mode):
                continue   # sockets, fifos, devices: not part of an image recipe
            _field(digest, 'F')
            _field(digest, relative)
            _field(digest, 'x' if info.st_mode & stat.S_IXUSR else '-')
            content = hashlib.sha256()
            with open(absolute, 'rb') as handle:
                for chunk in iter(lambda: handle.read(_CHUNK), b''):
                    content.update(chunk)
            _field(digest, content.hexdigest())
        except OSError as exc:
            raise AnsibleFilterError(f"tree_digest: cannot read '{absolute}': {exc.strerror or exc}") from exc

    for item in _extra_items(extra):
        _field(digest, 'E')
        _field(digest, item)
    return digest.hexdigest()


class FilterModule:
    """dockerlab.ecommerce digest filters."""

    def filters(self):
        return {
            'tree_digest': tree_digest,
        }
