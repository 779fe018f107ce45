#!/usr/bin/python
# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: stack_files
short_description: Write a component's rendered config files and secrets in one call
version_added: 0.1.0
description:
  - Usually called through the C(dockerlab.ecommerce.stack_files) action, which renders each entry's template or
    reads its file on the controller first (see the stack role's deploy tasks).
  - Writes a list of files on the Docker host, each only when its content, owner or mode differs, creating
    missing parent directories. One call per tier replaces a template or copy task per file, which matters
    because a no-op run of the whole stack would otherwise spend most of its time starting modules.
  - Writes are atomic (a temporary file in the same directory, then a rename), so a container that mounts the
    directory never sees half a file.
  - With O(backup=true) the previous version of each changed file is kept beside it and its path returned, so a
    caller can put it back when the service rejects the new config.
author:
  - dockerlab.ecommerce contributors (@dockerlab)
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - Entries of O(secrets) are never shown in a diff.
extends_documentation_fragment:
  - dockerlab.ecommerce.attributes
options:
  files:
    description: The files to write.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute path on the target.
        type: path
        required: true
      content:
        description:
          - The file's content. Exactly one of O(files[].content), O(files[].template), O(files[].file) and
            O(files[].var) is given; the action resolves the other three into O(files[].content) on the controller.
        type: str
      template:
        description: A template under O(templates_dir), rendered on the controller with the task's variables.
        type: str
      file:
        description: A file under O(files_dir), copied as it is.
        type: str
      var:
        description: The name of a variable holding the content (the action puts such entries in O(secrets)).
        type: str
      owner:
        description: Owner, a user name or a numeric uid (a container's user need not exist on the host).
        type: str
        default: root
      mode:
        description: Permissions, octal as a string.
        type: str
        default: "0644"
  secrets:
    description:
      - Like O(files), for secrets; their content is masked in the task's invocation and scrubbed from all
        output, and they are never shown in a diff.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute path on the target.
        type: path
        required: true
      content:
        description: The secret. Exactly one of O(secrets[].content), O(secrets[].template) and O(secrets[].var).
        type: str
      template:
        description: A template under O(templates_dir) that renders the secret.
        type: str
      file:
        description: A file under O(files_dir) holding the secret.
        type: str
      var:
        description: The name of a variable holding the secret.
        type: str
      owner:
        description: Owner, a user name or a numeric uid.
        type: str
        default: root
      mode:
        description: Permissions, octal as a string.
        type: str
        default: "0400"
  templates_dir:
    description: Directory on the controller where O(files[].template) is looked up.
    type: path
  files_dir:
    description: Directory on the controller where O(files[].file) is looked up.
    type: path
  directory_mode:
    description: Mode of the parent directories this module creates. A directory named C(secrets) gets C(0700).
    type: str
    default: "0755"
  backup:
    description: Keep the previous version of each changed file (C(<path>.<timestamp>~)) and return its path.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Write redis-cache's config and password file
  dockerlab.ecommerce.stack_files:
    files:
      - path: /opt/dockerlab/ecommerce/redis-cache/redis.conf
        content: "{{ lookup('ansible.builtin.template', 'redis/redis.conf.j2') }}"
      - path: /opt/dockerlab/ecommerce/redis-cache/secrets/auth.conf
        content: "requirepass {{ data_redis_password }}\n"
        owner: "999"
        mode: "0400"
        secret: true
  no_log: true
"""

RETURN = r"""
files:
  description: One entry per file, in the order given (O(files) first, then O(secrets)).
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The file's path.
      type: str
    changed:
      description: Whether the file was (or, in check mode, would be) written or its owner or mode changed.
      type: bool
    checksum:
      description: SHA-1 of the desired content.
      type: str
    backup_file:
      description: Where the previous version was kept, when O(backup=true) and the content changed.
      type: str
created_directories:
  description: The parent directories the module created.
  returned: always
  type: list
  elements: str
"""

import grp  # noqa: E402
import hashlib  # noqa: E402
import os  # noqa: E402
import pwd  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.common.text.converters import to_bytes, to_native  # noqa: E402


def _uid(owner):
    if owner.isdigit():
        return int(owner)
    return pwd.getpwnam(owner).pw_uid


def _gid(owner, uid):
    if owner.isdigit():
        return uid
    try:
        return pwd.getpwnam(owner).pw_gid
    except KeyError:
        return grp.getgrnam(owner).gr_gid


def _ensure_dirs(module, path, mode, created):
    parent = os.path.dirname(path)
    missing = []
    while parent and not os.path.isdir(parent):
        missing.append(parent)
        parent = os.path.dirname(parent)
    for directory in reversed(missing):
        dir_mode = 0o700 if os.path.basename(directory) == "secrets" else int(mode, 8)
        if not module.check_mode:
            os.mkdir(directory, dir_mode)
            os.chmod(directory, dir_mode)
        created.append(directory)


def _write(module, spec, directory_mode, backup, created_dirs):
    path = spec["path"]
    data = to_bytes(spec["content"], errors="surrogate_or_strict")
    checksum = hashlib.sha1(data).hexdigest()
    mode = int(spec["mode"], 8)
    uid = _uid(spec["owner"])
    gid = _gid(spec["owner"], uid)
    result = {"path": path, "changed": False, "checksum": checksum}
    before = None
    if os.path.exists(path):
        with open(path, "rb") as handle:
            before = handle.read()
        stat = os.stat(path)
        same_content = before == data
        same_meta = (stat.st_mode & 0o7777) == mode and stat.st_uid == uid and stat.st_gid == gid
    else:
        same_content = same_meta = False
    if same_content and same_meta:
        return result, None
    result["changed"] = True
    diff = None
    if module._diff and not spec["secret"] and not same_content:
        diff = {"before_header": path, "after_header": path,
                "before": to_native(before or b"", errors="surrogate_or_replace"),
                "after": to_native(data, errors="surrogate_or_replace")}
    if module.check_mode:
        return result, diff
    _ensure_dirs(module, path, directory_mode, created_dirs)
    if not same_content:
        if backup and before is not None:
            result["backup_file"] = "%s.%s~" % (path, time.strftime("%Y%m%d%H%M%S"))
            with open(result["backup_file"], "wb") as handle:
                handle.write(before)
            os.chmod(result["backup_file"], mode)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".stack_files.")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.chmod(tmp, mode)
            os.chown(tmp, uid, gid)
            os.rename(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
    else:
        os.chmod(path, mode)
        os.chown(path, uid, gid)
    return result, diff


def main():
    def file_options(secret):
        return dict(
            path=dict(type="path", required=True),
            # Secrets are masked in the invocation and scrubbed from all output.
            content=dict(type="str", no_log=secret),
            template=dict(type="str"),
            file=dict(type="str"),
            var=dict(type="str"),
            owner=dict(type="str", default="root"),
            mode=dict(type="str", default="0400" if secret else "0644"),
        )

    module = AnsibleModule(
        argument_spec=dict(
            files=dict(type="list", elements="dict", default=[], options=file_options(False)),
            secrets=dict(type="list", elements="dict", default=[], no_log=False, options=file_options(True)),
            templates_dir=dict(type="path"),
            files_dir=dict(type="path"),
            directory_mode=dict(type="str", default="0755"),
            backup=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    for spec in module.params["files"]:
        spec["secret"] = False
    for spec in module.params["secrets"]:
        spec["secret"] = True
    entries = module.params["files"] + module.params["secrets"]
    for spec in entries:
        if spec["content"] is None:
            module.fail_json(msg="files: %s has no content; give template, file or var through the "
                                 "dockerlab.ecommerce.stack_files action, or content" % spec["path"])
        if not os.path.isabs(spec["path"]):
            module.fail_json(msg="files: path %r is not absolute; give the full path on the Docker host" % spec["path"])
        try:
            int(spec["mode"], 8)
        except ValueError:
            module.fail_json(msg="files: mode %r of %s is not an octal mode such as '0644'" % (spec["mode"], spec["path"]))
        try:
            _uid(spec["owner"])
        except KeyError:
            module.fail_json(msg="files: owner %r of %s is no user on this host; give a user name or a numeric uid"
                             % (spec["owner"], spec["path"]))
    results, diffs, created = [], [], []
    for spec in entries:
        try:
            result, diff = _write(module, spec, module.params["directory_mode"], module.params["backup"], created)
        except OSError as exc:
            module.fail_json(msg="Could not write %s: %s" % (spec["path"], to_native(exc)), files=results)
        results.append(result)
        if diff:
            diffs.append(diff)
    changed = any(r["changed"] for r in results) or bool(created)
    module.exit_json(changed=changed, files=results, created_directories=created, diff=diffs)


if __name__ == "__main__":
    main()
