# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Controller side of stack_files: render templates, read files and resolve secret
variables, then write them all on the Docker host with one module call."""

from __future__ import annotations

import os

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase

try:  # ansible-core 2.19+: template sources read from disk must be trusted explicitly
    from ansible.template import trust_as_template
except ImportError:  # pragma: no cover - older ansible-core trusts every string
    def trust_as_template(value):
        return value


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = False

    def _source(self, entry, templates_dir, files_dir):
        """The content of one entry: exactly one of content, template, file or var."""
        given = [key for key in ("content", "template", "file", "var") if entry.get(key) is not None]
        if len(given) != 1:
            raise AnsibleActionFail("stack_files: %s needs exactly one of content, template, file or var (got %s)"
                                    % (entry.get("path"), ", ".join(given) or "none"))
        kind = given[0]
        if kind == "content":
            return to_text(entry["content"])
        if kind == "var":
            return to_text(self._templar.template(trust_as_template("{{ %s }}" % entry["var"])))
        base = templates_dir if kind == "template" else files_dir
        source = os.path.join(base, entry[kind])
        if not os.path.isfile(source):
            raise AnsibleActionFail("stack_files: %s %r of %s is not at %s" % (kind, entry[kind], entry["path"], source))
        data = self._loader.get_text_file_contents(source) if hasattr(self._loader, "get_text_file_contents") \
            else to_text(self._loader._get_file_contents(source)[0])
        if kind == "file":
            return data
        return to_text(self._templar.template(trust_as_template(data), escape_backslashes=False))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = dict(self._task.args)
        templates_dir = args.get("templates_dir") or ""
        files_dir = args.get("files_dir") or ""
        files, secrets = [], []
        for entry in list(args.get("files") or []) + list(args.get("secrets") or []):
            secret = bool(entry.get("secret", entry.get("var") is not None)) or entry in (args.get("secrets") or [])
            (secrets if secret else files).append({
                "path": entry["path"],
                "content": self._source(entry, templates_dir, files_dir),
                "owner": str(entry.get("owner", "root")),
                "mode": str(entry.get("mode", "0400" if secret else "0644")),
            })
        args["files"], args["secrets"] = files, secrets
        result.update(self._execute_module(module_name="dockerlab.ecommerce.stack_files", module_args=args,
                                           task_vars=task_vars))
        return result
