#!/usr/bin/python
# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# ruff: noqa: EXE001 - ansible-test wants the module shebang and no executable bit

from __future__ import annotations

DOCUMENTATION = r"""
---
module: backup_catalog
short_description: Seal, check, unpack, mark and prune the lab's backups on the controller
version_added: 0.6.0
description:
  - A backup is a directory C(<stack>-<UTC time>) (mode 0700) of part files, a C(manifest.json) (what each part
    is, its size and SHA-256, the tables' row counts and checksums at backup time, image references and engine
    versions) and C(SHA256SUMS) (C(sha256sum -c) format, over every stored file and the manifest).
  - O(state=sealed) hashes the parts in O(path), encrypts each with age for O(recipient) when given (the plain file
    is removed) and writes the manifest and the checksums.
  - O(state=checked) reports, changing nothing, every reason the backup in O(path) cannot be restored here (a
    checksum that does not match, a missing file, another stack, another engine or engine version, a missing or
    wrong age key). It fails with all of them in one message.
  - O(state=unpacked) writes every part's plain file into O(dest) (decrypting with O(identity)) and checks it
    against the manifest.
  - O(state=verified) compares the tables a restore into throwaway containers gave (O(restored_tables)) with the
    manifest and writes C(verified.json); it fails when they differ.
  - O(state=pruned) applies retention under O(root) (O(keep)).
author:
  - dockerlab.ecommerce contributors (@dockerlab)
requirements:
  - age and age-keygen on the controller, for encrypted backups
attributes:
  check_mode:
    support: partial
    details:
      - O(state=checked) changes nothing; O(state=pruned) reports what it would remove. The other states do nothing
        in check mode.
  diff_mode:
    support: none
extends_documentation_fragment:
  - dockerlab.ecommerce.attributes
options:
  state:
    description: What to do (see the description).
    type: str
    required: true
    choices: [sealed, checked, unpacked, verified, pruned]
  path:
    description: The backup directory (all states but O(state=pruned)).
    type: path
  stack:
    description: The stack the backup must be of (O(state=checked), O(state=pruned)).
    type: str
  manifest:
    description: The manifest to write (O(state=sealed)); C(parts) lists C({name, file, kind, ...}), files relative
      to O(path).
    type: dict
  recipient:
    description: Encrypt the parts for this age public key (O(state=sealed)). Empty for no encryption.
    type: str
  identity:
    description: The age key file to decrypt with (O(state=checked), O(state=unpacked)).
    type: path
  engines:
    description: By part name, C([engine, version]) the running lab has (O(state=checked)).
    type: dict
    default: {}
  unverified_ok:
    description: With O(state=checked), accept a backup whose verification failed (C(verified.json) says so); one
      that was never verified is accepted anyway.
    type: bool
    default: false
  dest:
    description: Where to put the plain parts (O(state=unpacked)).
    type: path
  tables:
    description: The checksum script's tab-separated output (database, table, rows, checksum) at backup time,
      recorded in the manifest as C(tables) (O(state=sealed)).
    type: str
  restored_tables:
    description: The checksum script's tab-separated output (database, table, rows, checksum) after a restore into
      throwaway containers (O(state=verified)).
    type: str
  plain:
    description: The directory of the plain parts (O(state=unpacked)'s O(dest)) whose integrity O(state=verified)
      checks (dump completion marker, archives read to their end and their entry counts).
    type: path
  checks:
    description: Other results of the verification, recorded in C(verified.json) (O(state=verified)); a C(problems)
      list in it fails the verification.
    type: dict
    default: {}
  root:
    description: The directory holding the backups (O(state=pruned)).
    type: path
  keep:
    description: How many verified backups to keep (O(state=pruned)); at least 1.
    type: int
    default: 7
"""

EXAMPLES = r"""
- name: Refuse a backup that cannot be restored here, changing nothing
  dockerlab.ecommerce.backup_catalog:
    state: checked
    path: /root/.local/share/dockerlab/ecommerce/backups/ecommerce-20261203T101500Z
    stack: ecommerce
    identity: /root/.config/dockerlab/ecommerce/secrets/backup_age_identity

- name: Keep the newest seven verified backups
  dockerlab.ecommerce.backup_catalog:
    state: pruned
    root: /root/.local/share/dockerlab/ecommerce/backups
    stack: ecommerce
    keep: 7
"""

RETURN = r"""
manifest:
  description: The backup's manifest (O(state=sealed), O(state=checked), O(state=unpacked), O(state=verified)).
  returned: success
  type: dict
problems:
  description: What is wrong with the backup (O(state=checked)); empty when it can be restored.
  returned: when state is checked
  type: list
  elements: str
verification:
  description: What C(verified.json) now says (O(state=verified)).
  returned: when state is verified
  type: dict
kept:
  description: The backups kept (O(state=pruned)), newest first.
  returned: when state is pruned
  type: list
  elements: dict
removed:
  description: The backups removed (O(state=pruned)).
  returned: when state is pruned
  type: list
  elements: dict
"""

import shutil

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dockerlab.ecommerce.plugins.module_utils._backup import catalog
from ansible_collections.dockerlab.ecommerce.plugins.module_utils._backup.catalog import BackupError


def _runner(module):
    def run(argv, data=None):
        if module.get_bin_path(argv[0]) is None:
            raise BackupError(f'{argv[0]} is not installed on the controller: install it (apt-get install age), '
                              'or set backup_encrypt: false')
        return module.run_command(argv, data=data, binary_data=True)
    return run


def _need(module, *names):
    missing = [name for name in names if module.params[name] in (None, '')]
    if missing:
        module.fail_json(msg=f'state={module.params["state"]} needs {", ".join(missing)}')


def run_module():
    module = AnsibleModule(argument_spec={
        'state': {'type': 'str', 'required': True, 'choices': ['sealed', 'checked', 'unpacked', 'verified', 'pruned']},
        'path': {'type': 'path'},
        'stack': {'type': 'str'},
        'manifest': {'type': 'dict'},
        'recipient': {'type': 'str'},
        'identity': {'type': 'path'},
        'engines': {'type': 'dict', 'default': {}},
        'dest': {'type': 'path'},
        'unverified_ok': {'type': 'bool', 'default': False},
        'tables': {'type': 'str'},
        'restored_tables': {'type': 'str'},
        'checks': {'type': 'dict', 'default': {}},
        'plain': {'type': 'path'},
        'root': {'type': 'path'},
        'keep': {'type': 'int', 'default': 7},
    }, supports_check_mode=True)
    params, state, run = module.params, module.params['state'], _runner(module)
    try:
        if state == 'pruned':
            _need(module, 'root', 'stack')
            kept, removed = catalog.retention(params['root'], params['stack'], params['keep'])
            if not module.check_mode:
                for item in removed:
                    shutil.rmtree(item['path'])
            module.exit_json(changed=bool(removed), kept=kept, removed=removed)
        _need(module, 'path')
        if state == 'checked':
            _need(module, 'stack')
            manifest, problems = catalog.check(params['path'], params['stack'], params['engines'], params['identity'],
                                               run, params['unverified_ok'])
            if problems:
                module.fail_json(msg=f'The backup {params["path"]} cannot be restored, and nothing was changed: '
                                     + '; '.join(problems) + '.', problems=problems)
            module.exit_json(changed=False, manifest=manifest, problems=[])
        if module.check_mode:
            module.exit_json(changed=False, skipped=True, msg=f'state={state} does nothing in check mode')
        if state == 'sealed':
            _need(module, 'manifest')
            manifest = catalog.seal(params['path'], params['manifest'], params['recipient'] or None, run,
                                    params['tables'])
            module.exit_json(changed=True, manifest=manifest)
        if state == 'unpacked':
            _need(module, 'dest')
            manifest = catalog.unpack(params['path'], params['dest'], params['identity'], run)
            module.exit_json(changed=True, manifest=manifest)
        # verified
        manifest = catalog.read_manifest(params['path'])
        problems = list(params['checks'].get('problems') or [])
        if params['plain']:
            problems += catalog.integrity_problems(params['plain'], manifest)
        if params['restored_tables'] is not None:
            restored = catalog.parse_tables(params['restored_tables'])
            problems += catalog.table_differences(manifest.get('tables') or {}, restored)
        result = catalog.record_verification(params['path'], dict(params['checks'], ok=not problems, problems=problems))
        if problems:
            module.fail_json(msg=f'The backup {params["path"]} did not verify (marked so in {catalog.VERIFIED}; it does '
                                 'not count for retention): ' + '; '.join(problems) + '.', verification=result)
        module.exit_json(changed=True, manifest=manifest, verification=result)
    except BackupError as exc:
        module.fail_json(msg=str(exc))


def main():
    run_module()


if __name__ == '__main__':
    main()
