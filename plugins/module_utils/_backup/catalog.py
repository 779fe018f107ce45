# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A backup directory on the controller: its manifest, checksums, encryption, checks and retention.

A backup is a directory ``<stack>-<YYYYmmddTHHMMSSZ>`` (mode 0700) holding its parts (a MySQL dump, a
Redis RDB, volume archives; ``<file>.age`` when encrypted), ``manifest.json`` (what each part is, its
size and SHA-256 before encryption, the tables' row counts and checksums at backup time, the image
references and engine versions) and ``SHA256SUMS`` (``sha256sum -c`` format, over every stored file and
the manifest). ``verified.json`` says whether restoring it into throwaway containers gave back what the
manifest records; it is written after the checksums, so it is not covered by them.

Everything here is pure Python on paths; age (the encryption) is called through ``run``, a function
``run(argv, data=None) -> (rc, stdout, stderr)`` the module passes in.
"""

from __future__ import annotations

import datetime
import gzip
import hashlib
import json
import os
import re
import shutil
import tarfile

MANIFEST = 'manifest.json'
SUMS = 'SHA256SUMS'
VERIFIED = 'verified.json'
FORMAT = 1
NAME_TIME = '%Y%m%dT%H%M%SZ'
AGE_SUFFIX = '.age'
CHUNK = 1 << 20


class BackupError(Exception):
    """A backup cannot be sealed, read or used; the message says what is wrong and what to do."""


def backup_name(stack, when):
    """The directory name of a backup of ``stack`` taken at ``when`` (an aware UTC datetime)."""
    return f'{stack}-{when.strftime(NAME_TIME)}'


def name_time(stack, name):
    """The UTC time in a backup's directory name, or None when ``name`` is no backup of ``stack``."""
    match = re.fullmatch(re.escape(stack) + r'-(\d{8}T\d{6}Z)', name)
    if not match:
        return None
    return datetime.datetime.strptime(match.group(1), NAME_TIME).replace(tzinfo=datetime.timezone.utc)


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, 'rb') as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b''):
            digest.update(chunk)
    return digest.hexdigest()


def archive_entries(path):
    with tarfile.open(path, 'r:gz') as archive:
        return sum(1 for _member in archive)


def _write_private(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'w', encoding='utf-8') as handle:
        handle.write(text)


def read_manifest(path):
    """The manifest of the backup at ``path``; BackupError when there is none or it is no manifest."""
    file = os.path.join(path, MANIFEST)
    if not os.path.isdir(path):
        raise BackupError(f'{path} is no directory: pass -e backup=<a backup directory> (make backup lists where they are)')
    try:
        with open(file, encoding='utf-8') as handle:
            manifest = json.load(handle)
    except FileNotFoundError as exc:
        raise BackupError(f'{path} holds no {MANIFEST}: it is not a backup made by playbooks/backup.yml') from exc
    except (OSError, ValueError) as exc:
        raise BackupError(f'{file} cannot be read as JSON ({exc}): the backup is damaged; choose another one') from exc
    if not isinstance(manifest, dict) or manifest.get('format') != FORMAT or not isinstance(manifest.get('parts'), list):
        raise BackupError(f'{file} is not a manifest of format {FORMAT}: the backup was made by another version or is damaged')
    return manifest


def stored_file(part):
    return part['file'] + (AGE_SUFFIX if part.get('encrypted') else '')


def seal(path, manifest, recipient=None, run=None, tables=None):
    """Hash every part, encrypt it for ``recipient`` (age) when given, write manifest.json and SHA256SUMS.

    ``manifest['parts']`` lists ``{name, file, kind, ...}`` with ``file`` relative to ``path``.
    Returns the manifest as written.
    """
    os.chmod(path, 0o700)
    if tables is not None:
        manifest['tables'] = parse_tables(tables)
    for part in manifest['parts']:
        plain = os.path.join(path, part['file'])
        if not os.path.isfile(plain):
            raise BackupError(f'part {part["name"]} ({part["file"]}) was not written to {path}; the backup is incomplete')
        part['bytes'] = os.path.getsize(plain)
        part['sha256'] = sha256_of(plain)
        if part.get('kind') == 'volume-archive':
            part['entries'] = archive_entries(plain)
        part['encrypted'] = bool(recipient)
        if recipient:
            rc, _out, err = run(['age', '--encrypt', '--recipient', recipient, '--output', plain + AGE_SUFFIX, plain])
            if rc != 0:
                raise BackupError(f'age could not encrypt {part["file"]}: {err.strip()}')
            os.remove(plain)
        os.chmod(os.path.join(path, stored_file(part)), 0o600)
    manifest['format'] = FORMAT
    manifest['encryption'] = {'tool': 'age', 'recipient': recipient} if recipient else None
    _write_private(os.path.join(path, MANIFEST), json.dumps(manifest, indent=2, sort_keys=True) + '\n')
    files = [stored_file(part) for part in manifest['parts']] + [MANIFEST]
    _write_private(os.path.join(path, SUMS), ''.join(f'{sha256_of(os.path.join(path, f))}  {f}\n' for f in files))
    return manifest


def checksum_problems(path):
    """What SHA256SUMS says is wrong with the stored files (missing, changed, unlisted), as sentences."""
    sums = os.path.join(path, SUMS)
    try:
        with open(sums, encoding='utf-8') as handle:
            lines = [line.rstrip('\n') for line in handle if line.strip()]
    except OSError:
        return [f'{SUMS} is missing: the backup is incomplete']
    problems = []
    listed = set()
    for line in lines:
        match = re.fullmatch(r'([0-9a-f]{64}) [ *](\S+)', line)
        if not match:
            problems.append(f'{SUMS} has a line that is no checksum ({line[:40]!r})')
            continue
        digest, name = match.groups()
        listed.add(name)
        file = os.path.join(path, name)
        if not os.path.isfile(file):
            problems.append(f'{name} is missing')
        elif sha256_of(file) != digest:
            problems.append(f'{name} does not match its checksum (damaged or changed since the backup)')
    if MANIFEST not in listed:
        problems.append(f'{SUMS} does not cover {MANIFEST}')
    return problems


def recipient_of(identity, run):
    """The age public key of the identity file at ``identity``; BackupError when there is none."""
    if not os.path.isfile(identity):
        raise BackupError(f'the age key {identity} does not exist (backup_age_identity): the backup is encrypted, '
                          'so restoring it needs the key it was made with')
    rc, out, err = run(['age-keygen', '-y', identity])
    if rc != 0:
        raise BackupError(f'{identity} is no age key ({err.strip() or out.strip()}); set backup_age_identity to the '
                          'key the backup was made with')
    return out.strip()


def verification(path):
    """What verified.json says (``{"ok": bool, "problems": [...]}``), or None for a backup never verified."""
    try:
        with open(os.path.join(path, VERIFIED), encoding='utf-8') as handle:
            result = json.load(handle)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {'ok': False, 'problems': [f'{VERIFIED} cannot be read']}
    return result if isinstance(result, dict) else {'ok': False, 'problems': [f'{VERIFIED} is no mapping']}


def check(path, stack, engines=None, identity=None, run=None, unverified_ok=False):
    """Everything that can be known about a backup before restoring it, as ``(manifest, problems)``.

    ``engines``: ``{part name: (kind, version)}`` the running lab has; a part whose engine differs is a
    problem. ``identity``: the age key to decrypt with (checked against the manifest's recipient). A
    backup whose verification failed is a problem unless ``unverified_ok``; one never verified is not.
    """
    manifest = read_manifest(path)
    problems = checksum_problems(path)
    result = verification(path)
    if result is not None and not result.get('ok') and not unverified_ok:
        problems.append('it did not verify when it was taken (' + '; '.join(result.get('problems') or ['no reason recorded'])
                        + '): restore another backup, or this one anyway with -e backup_restore_unverified=true')
    if manifest.get('stack') != stack:
        problems.append(f'it is a backup of the stack {manifest.get("stack")!r}, not of {stack!r} (stack_name): '
                        'restore a backup of this stack')
    for part in manifest['parts']:
        want = (engines or {}).get(part['name'])
        have = (part.get('engine'), part.get('engine_version'))
        if want and part.get('engine') and not same_engine(want, have):
            problems.append(f'part {part["name"]} was made by {have[0]} {have[1]}, but the lab runs {want[0]} {want[1]}: '
                            'restore it with the image profile and images it was made with (manifest.json: images)')
    encryption = manifest.get('encryption')
    if encryption:
        try:
            key = recipient_of(identity, run)
        except BackupError as exc:
            problems.append(str(exc))
        else:
            if key != encryption.get('recipient'):
                problems.append(f'it was encrypted for the age key {encryption.get("recipient")}, but {identity} is '
                                f'{key}: the wrong key; set backup_age_identity to the key the backup was made with')
    return manifest, problems


def same_engine(want, have):
    """True when ``(engine, version)`` ``have`` can be restored where ``want`` runs: the same engine and the same
    major.minor version (a dump of MariaDB 10.11.6 loads into 10.11.14, not into 11.4 or MySQL 8.4)."""
    def release(version):
        return tuple(re.findall(r'\d+', str(version or ''))[:2])
    return want[0] == have[0] and release(want[1]) == release(have[1])


def unpack(path, dest, identity=None, run=None):
    """Put every part's plain file into ``dest`` (decrypting with ``identity``), each checked against the manifest.

    The stored files are checked against SHA256SUMS first, so a damaged backup is refused before anything is
    decrypted."""
    manifest = read_manifest(path)
    problems = checksum_problems(path)
    if problems:
        raise BackupError(f'the backup {path} is damaged: ' + '; '.join(problems))
    os.makedirs(dest, mode=0o700, exist_ok=True)
    for part in manifest['parts']:
        target = os.path.join(dest, part['file'])
        os.makedirs(os.path.dirname(target), mode=0o700, exist_ok=True)
        if part.get('encrypted'):
            rc, _out, err = run(['age', '--decrypt', '--identity', identity, '--output', target,
                                 os.path.join(path, stored_file(part))])
            if rc != 0:
                raise BackupError(f'age could not decrypt {stored_file(part)} with {identity}: {err.strip()}')
        else:
            shutil.copyfile(os.path.join(path, part['file']), target)
        os.chmod(target, 0o600)
        if sha256_of(target) != part['sha256']:
            raise BackupError(f'{part["file"]} does not match the manifest\'s checksum once decrypted: the backup is damaged')
    return manifest


def integrity_problems(dest, manifest):
    """What is wrong inside the plain parts in ``dest``: a dump without mysqldump's completion marker, a gzip or
    tar archive that does not read to its end, an archive with another number of entries than recorded."""
    problems = []
    for part in manifest['parts']:
        file = os.path.join(dest, part['file'])
        try:
            if part['kind'] == 'mysql-dump':
                last = b''
                with gzip.open(file, 'rb') as handle:
                    for line in handle:
                        if line.strip():
                            last = line
                if not last.startswith(b'-- Dump completed'):
                    problems.append(f'{part["file"]} ends without mysqldump\'s completion marker: the dump is cut short')
            elif part['kind'] == 'volume-archive':
                entries = archive_entries(file)
                if part.get('entries') is not None and entries != part['entries']:
                    problems.append(f'{part["file"]} holds {entries} entries, the manifest records {part["entries"]}')
        except (OSError, EOFError, tarfile.TarError, gzip.BadGzipFile) as exc:
            problems.append(f'{part["file"]} cannot be read to its end ({exc})')
    return problems


def parse_tables(text):
    """``{"db.table": {"rows": n, "checksum": "hex"}}`` from the checksum script's tab-separated lines."""
    tables = {}
    for line in text.splitlines():
        fields = line.split('\t')
        if len(fields) != 4:
            continue
        database, table, rows, checksum = fields
        tables[f'{database}.{table}'] = {'rows': int(rows), 'checksum': checksum}
    return tables


def table_differences(recorded, restored):
    """Sentences naming every table whose rows or checksum differ between the manifest and a restore."""
    out = []
    for name in sorted(set(recorded) | set(restored)):
        want, got = recorded.get(name), restored.get(name)
        if got is None:
            out.append(f'{name} is missing after the restore')
        elif want is None:
            out.append(f'{name} appears after the restore but is not in the manifest')
        elif want['rows'] != got['rows']:
            out.append(f'{name} has {got["rows"]} rows after the restore, the manifest records {want["rows"]}')
        elif str(want['checksum']) != str(got['checksum']):
            out.append(f'{name} has its {got["rows"]} rows but their checksum differs from the manifest\'s')
    return out


def record_verification(path, result):
    """Write verified.json (``{"ok": bool, "at": iso time, "problems": [...], ...}``)."""
    result = dict(result, at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'))
    _write_private(os.path.join(path, VERIFIED), json.dumps(result, indent=2, sort_keys=True) + '\n')
    return result


def verified(path):
    return bool((verification(path) or {}).get('ok'))


def backups(root, stack):
    """This stack's backups under ``root``, newest first: ``[{name, path, time, verified}]``."""
    found = []
    if not os.path.isdir(root):
        return found
    for name in os.listdir(root):
        when = name_time(stack, name)
        path = os.path.join(root, name)
        if when and os.path.isdir(path):
            found.append({'name': name, 'path': path, 'time': when.isoformat(), 'verified': verified(path)})
    return sorted(found, key=lambda item: item['time'], reverse=True)


def retention(root, stack, keep):
    """``(kept, removed)``: the newest ``keep`` verified backups are kept, and every unverified one newer
    than the oldest of them (a failed or running backup is kept for a look until enough verified ones
    follow); everything older goes. The newest verified backup is never removed. Only directories named
    like this stack's backups are considered.
    """
    if keep < 1:
        raise BackupError(f'backup_keep is {keep}: keep at least 1 (the newest verified backup is never removed)')
    found = backups(root, stack)
    good = [item for item in found if item['verified']]
    if len(good) <= keep:
        return found, []
    oldest_kept = good[keep - 1]['time']
    kept = [item for item in found if item['time'] >= oldest_kept]
    return kept, [item for item in found if item['time'] < oldest_kept]
