# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""docs/backup_sources.yml records what a backup/restore may rely on in the pinned official images
(mysql:8.4, redis:7.4-alpine, prom/prometheus) and in Debian's mariadb-backup, each fact with the file or
page it was read from. These tests hold that file to the roles' pins, and hold the backup role
(roles/backup/templates/*, roles/backup/defaults/main.yml) to the facts it confirms: every mysqldump
option, INFO field, ACL rule, Prometheus endpoint, wget option and promtool command the backup code
uses must be one the sources confirmed. No Docker engine, no network: the role's files are read as
text (regular expressions, robust to formatting) and its defaults as YAML.
"""

from __future__ import annotations

import datetime
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SOURCES = yaml.safe_load((ROOT / "docs" / "backup_sources.yml").read_text())
ENTRIES = {entry["component"]: entry for entry in SOURCES["images"]}
MYSQL = ENTRIES["mysql"]["backup"]
REDIS = ENTRIES["redis"]["backup"]
PROMETHEUS = ENTRIES["prometheus"]["backup"]
MARIADB_BACKUP = SOURCES["debian"]["mariadb-backup"]
MARIADB_DUMP = SOURCES["debian"]["mariadb-dump"]
BACKUP_ROLE = ROOT / "roles" / "backup"

# (tier, component) of every image the backup reaches, as the roles pin it: <tier>_images.<component>.upstream
PINNED = {("data", "mysql"), ("data", "redis"), ("monitoring", "prometheus")}

# The keys each entry's `backup` needs besides source, note and facts.
REQUIRED_KEYS = {
    "mysql": {"client", "client_package", "dump_options", "connection_options", "option_file_options",
              "other_options", "completion_marker", "completion_marker_dated", "marker_suppressed_by",
              "dated_marker_suppressed_by", "removed_tools", "not_in_image", "physical", "users"},
    "redis": {"cli", "check_rdb", "binaries", "dbfilename", "appenddirname", "info_fields",
              "info_persistence_fields", "acl_rules", "acl_commands", "startup"},
    "prometheus": {"flag", "snapshot_endpoint", "snapshot_methods", "snapshot_params", "snapshot_response",
                   "snapshot_dir", "storage_path", "user", "wget", "wget_long_options", "promtool",
                   "promtool_tsdb_commands"},
}


def _is_nested_key(path, name):
    node = _defaults_tree()
    for part in path.split(".") if path else []:
        node = node.get(part, {}) if isinstance(node, dict) else {}
    return isinstance(node, dict) and name in node


def _yaml(path):
    return yaml.safe_load(path.read_text())


def _role_defaults(tier):
    return _yaml(ROOT / "roles" / tier / "defaults" / "main.yml")


# --- reading the backup code -------------------------------------------------------------------------------

def _strip_comments(text):
    """Jinja comments and whole-line shell/YAML comments (not the #! line) removed."""
    text = re.sub(r"\{#.*?#\}", " ", text, flags=re.S)
    return re.sub(r"^[ \t]*#(?!!).*$", "", text, flags=re.M)


def _drop_jinja(text):
    """Jinja expressions and statements blanked: what is left is the literal text of the template."""
    return re.sub(r"\{\{.*?\}\}|\{%.*?%\}", " ", text, flags=re.S)


def _walk(node, path="", depth=0):
    """(key path, string, depth) for every string of a YAML tree: values, and the keys of nested mappings."""
    if isinstance(node, dict):
        for key, value in node.items():
            inner = f"{path}.{key}" if path else str(key)
            if depth and isinstance(key, str):
                yield path, key, depth
            yield from _walk(value, inner, depth + 1)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value, path, depth + 1)
    elif isinstance(node, str):
        yield path, node, depth


def _backup_code():
    """{relative path: text} of every file under roles/backup/templates/ and roles/backup/defaults/main.yml."""
    if not BACKUP_ROLE.is_dir():
        pytest.fail("roles/backup does not exist: the backup role is checked against docs/backup_sources.yml")
    files = sorted(p for p in (BACKUP_ROLE / "templates").rglob("*") if p.is_file())
    defaults = BACKUP_ROLE / "defaults" / "main.yml"
    assert files, "roles/backup/templates/ holds no file"
    assert defaults.is_file(), "roles/backup/defaults/main.yml is missing"
    texts = {str(p.relative_to(BACKUP_ROLE)): p.read_text(errors="replace") for p in files}
    texts["defaults/main.yml"] = defaults.read_text()
    return texts


def _defaults_tree():
    _backup_code()
    return _yaml(BACKUP_ROLE / "defaults" / "main.yml") or {}


def _all_text():
    """The role's templates and defaults, comments removed, continuation lines joined, as one text."""
    text = "\n".join(_strip_comments(t) for t in _backup_code().values())
    return re.sub(r"\\\n", " ", text)


def _segments(text, tool):
    """What follows each invocation of `tool` up to the end of its shell command (newline, | ; & ) > < `).

    Jinja expressions inside the command are kept, their own | ( ) and the like blanked."""
    text = re.sub(r"\{\{.*?\}\}|\{%.*?%\}", lambda m: re.sub(r"[|;&()<>`]", " ", m.group(0)), text, flags=re.S)
    segments = []
    for match in re.finditer(rf"(?<![\w.-]){re.escape(tool)}(?![\w.-])", text):
        rest = text[match.end():]
        end = re.search(r"[\n|;&)<>`]", rest)
        segments.append(rest[:end.start()] if end else rest)
    return segments


def _jinja_variables(segment):
    """Values, from the role's defaults, of the variables a command segment renders ({{ name ... }})."""
    defaults = _defaults_tree()
    names = re.findall(r"\{\{-?\s*([A-Za-z_]\w*)", segment)
    return [str(defaults[name]) for name in names if name in defaults]


def _segment_options(segment):
    """Long options of a command segment, those of the default variables it renders included."""
    options = _long_options(segment)
    for value in _jinja_variables(segment):
        options |= _long_options(value)
    return options


def _long_options(text):
    """`--name` of every long option in text (`--name=value` gives `--name`)."""
    return set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*[a-z0-9]", text))


def _mysqldump_options():
    """{option: where} of the options the backup code gives mysqldump."""
    found = {}
    for segment in _segments(_all_text(), "mysqldump"):
        for option in _segment_options(segment):
            found.setdefault(option, "templates: mysqldump " + segment.strip()[:80])
    for path, value, _depth in _walk(_defaults_tree()):
        if re.search(r"mysql[_.]?dump", path):
            for option in _long_options(value):
                found.setdefault(option, f"defaults: {path}")
    return found


_SHELL_VARIABLE_BEFORE = re.compile(
    r"(?:\b(?:local|declare|typeset|readonly|export|unset)\s+(?:-\w+\s+)*(?:\w+(?:=\S*)?\s+)*"
    r"|\bfor\s+|\bread\s+(?:-\w+\s+)*(?:\w+\s+)*)$")


def _info_field_names(text):
    """Words shaped like INFO persistence fields (rdb_*/aof_*), not shell variables, shell functions nor Jinja.

    A shell variable is one assigned (name=, name[), declared (local, declare, readonly, export, unset),
    looped over (for name) or read (read name) there, or expanded ($name, ${name})."""
    text = _drop_jinja(_strip_comments(text))
    functions = set(re.findall(r"(?:^|\bfunction\s+)\s*(\w+)\s*\(\)", text, re.M))
    found = set()
    for match in re.finditer(r"(?<![\w$.{/-])(?:rdb|aof)_[a-z][a-z_]*\b", text):
        if match.group(0) in functions or text[match.end():match.end() + 1] in ("=", "["):
            continue
        if _SHELL_VARIABLE_BEFORE.search(text[max(0, match.start() - 60):match.start()]):
            continue
        found.add(match.group(0))
    return found


# --- the file itself ----------------------------------------------------------------------------------------

def test_the_file_is_dated_and_covers_the_images_the_backup_reaches():
    assert SOURCES["checked_on"] == datetime.date(2026, 12, 3)
    assert set(ENTRIES) == {component for _tier, component in PINNED}
    assert [entry["component"] for entry in SOURCES["images"]].count("mysql") == 1


@pytest.mark.parametrize(("tier", "component"), sorted(PINNED))
def test_every_reference_is_the_upstream_the_roles_pin(tier, component):
    pinned = _role_defaults(tier)[f"{tier}_images"][component]["upstream"]
    assert ENTRIES[component]["reference"] == pinned
    assert ENTRIES[component]["tier"] == tier


@pytest.mark.parametrize("component", sorted(REQUIRED_KEYS))
def test_every_entry_names_its_sources_and_has_the_keys_it_needs(component):
    backup = ENTRIES[component]["backup"]
    missing = REQUIRED_KEYS[component] - set(backup)
    assert not missing, f"{component}: missing {sorted(missing)}"
    assert isinstance(backup["source"], str) and backup["source"].strip(), component
    assert isinstance(backup["note"], str) and backup["note"].strip(), component
    assert backup["facts"], component
    for fact in backup["facts"]:
        assert set(fact) == {"fact", "source"}, fact
        assert fact["fact"].strip() and fact["source"].strip(), fact


def test_the_debian_entries_name_their_sources():
    for entry in (MARIADB_BACKUP, MARIADB_DUMP):
        assert entry["source"].strip() and entry["note"].strip()
    assert MARIADB_BACKUP["source_package"] == "mariadb"
    assert {"mariadb-server", "mariadb-client-core"} <= set(MARIADB_BACKUP["same_source_as"])
    assert {"--backup", "--prepare", "--target-dir", "--user", "--host"} <= set(MARIADB_BACKUP["options"])
    for fact in MARIADB_BACKUP["facts"]:
        assert fact["fact"].strip() and fact["source"].strip(), fact
    assert MARIADB_DUMP["system_option"] == "--system=users" and "users" in MARIADB_DUMP["system_values"]


def test_the_recorded_facts_hold_together():
    # mysql:8.4
    assert {"mysqldump", "mysql"} <= set(MYSQL["client"])
    assert set(MYSQL["dump_options"]) >= {
        "--single-transaction", "--routines", "--events", "--triggers", "--add-drop-database", "--databases",
        "--set-gtid-purged"}
    assert MYSQL["completion_marker_dated"].startswith(MYSQL["completion_marker"])
    assert MYSQL["completion_marker"] == "-- Dump completed"
    assert MYSQL["physical"] == "none"
    assert "mysqlpump" in MYSQL["removed_tools"] and "mysqlpump" not in MYSQL["client"]
    assert set(MYSQL["removed_tools"]) <= set(MYSQL["not_in_image"])
    confirmed = _confirmed_mysqldump_options()
    assert not confirmed & set(MYSQL["marker_suppressed_by"] + MYSQL["dated_marker_suppressed_by"])
    assert MYSQL["users"]["hex_variable"] == "print_identified_with_as_hex"
    # redis:7.4-alpine
    assert REDIS["cli"] in REDIS["binaries"] and REDIS["check_rdb"] in REDIS["binaries"]
    assert set(REDIS["info_fields"]) - {"loading"} <= set(REDIS["info_persistence_fields"])
    assert {"rdb_bgsave_in_progress", "rdb_last_bgsave_status", "rdb_last_save_time", "aof_rewrite_in_progress",
            "aof_last_bgrewrite_status", "loading"} <= set(REDIS["info_fields"])
    assert (REDIS["dbfilename"], REDIS["appenddirname"]) == ("dump.rdb", "appendonlydir")
    assert set(re.findall(r"\+([a-z|]+)", REDIS["acl_rules"])) == {"bgsave", "lastsave", "info"}
    assert set(re.findall(r"\+([a-z|]+)", REDIS["acl_rules"])) <= set(REDIS["acl_commands"])
    assert {"appendonly_yes_with_appendonlydir", "appendonly_yes_without_aof"} <= set(REDIS["startup"])
    # prom/prometheus
    assert PROMETHEUS["snapshot_endpoint"] == "/api/v1/admin/tsdb/snapshot"
    assert "POST" in PROMETHEUS["snapshot_methods"] and PROMETHEUS["snapshot_params"] == ["skip_head"]
    assert PROMETHEUS["snapshot_dir"] == "snapshots" and PROMETHEUS["storage_path"] == "/prometheus"
    assert PROMETHEUS["user"] == "65534" and PROMETHEUS["wget"] is True
    assert PROMETHEUS["flag"] == "--web.enable-admin-api" and PROMETHEUS["flag_default"] is False
    assert "list" in PROMETHEUS["promtool_tsdb_commands"]
    assert {"--post-data", "--post-file"} <= set(PROMETHEUS["wget_long_options"])


def test_the_facts_apply_to_the_roles_as_configured():
    # Prometheus keeps its TSDB where the image's own CMD does, so snapshots land in <storage_path>/snapshots.
    monitoring = (ROOT / "roles" / "monitoring" / "defaults" / "main.yml").read_text()
    assert f"--storage.tsdb.path={PROMETHEUS['storage_path']}" in monitoring
    # Redis runs with AOF on and the default file names: the startup facts recorded for that case apply.
    redis_conf = (ROOT / "roles" / "data" / "templates" / "redis" / "redis.conf.j2").read_text()
    assert re.search(r"^appendonly yes$", redis_conf, re.M)
    assert re.search(r"^dir /data$", redis_conf, re.M)
    assert not re.search(r"^(dbfilename|appenddirname)\s", redis_conf, re.M)
    appendfilename = re.search(r'^appendfilename "?([^"\s]+)"?$', redis_conf, re.M)
    assert not appendfilename or appendfilename.group(1) == REDIS["appendfilename"]


def _confirmed_mysqldump_options():
    return set(MYSQL["dump_options"] + MYSQL["connection_options"] + MYSQL["option_file_options"]
               + MYSQL["other_options"])


# --- the backup code against the facts ----------------------------------------------------------------------

USES = {
    "mysqldump": lambda text: bool(_segments(text, "mysqldump")),
    "mysqldump completion marker": lambda text: MYSQL["completion_marker"] in text,
    "redis-cli": lambda text: bool(_segments(text, REDIS["cli"])),
    "redis-check-rdb": lambda text: bool(_segments(text, REDIS["check_rdb"])),
}


def test_prometheus_keeps_its_admin_api_off_as_the_readme_says():
    # The backup archives Prometheus' volume instead of taking a snapshot (README "Backup and restore"):
    # the snapshot endpoint needs --web.enable-admin-api, which defaults to off and stays off here, and
    # the tests above hold any later snapshot code to the recorded facts.
    monitoring = (ROOT / "roles" / "monitoring" / "defaults" / "main.yml").read_text()
    assert PROMETHEUS["flag"] not in monitoring and PROMETHEUS["flag_default"] is False
    assert PROMETHEUS["snapshot_endpoint"] not in _all_text()


@pytest.mark.parametrize("what", sorted(USES))
def test_the_backup_code_uses_what_the_sources_confirm(what):
    # What the backup is to rely on (each checked against the sources by the tests below).
    used = USES[what](_all_text())
    assert used, f"roles/backup never uses {what}"


def test_mysqldump_is_given_only_confirmed_options():
    found = _mysqldump_options()
    unconfirmed = {option: where for option, where in found.items() if option not in _confirmed_mysqldump_options()}
    assert not unconfirmed, f"mysqldump options not confirmed in docs/backup_sources.yml: {unconfirmed}"


def test_the_dump_keeps_the_completion_marker_it_is_checked_for():
    text = _all_text()
    options = set(_mysqldump_options())
    assert not options & set(MYSQL["marker_suppressed_by"]), "these options drop the '-- Dump completed' line"
    if MYSQL["completion_marker_dated"] in text:
        assert not options & set(MYSQL["dated_marker_suppressed_by"]), "--skip-dump-date drops ' on <date>'"
    for match in re.finditer(r"-+\s*Dump\s+complete\w*", text):
        assert match.group(0) == MYSQL["completion_marker"], f"not the marker mysqldump writes: {match.group(0)!r}"


def test_no_mysql_tool_that_the_image_lacks_is_used():
    text = _drop_jinja(_all_text())
    for tool in MYSQL["not_in_image"]:
        assert not re.search(rf"(?<![\w.-]){tool}(?![\w.-])", text), f"{tool} is not in {ENTRIES['mysql']['reference']}"


def test_user_hashes_are_asked_for_with_the_confirmed_variable():
    names = set(re.findall(r"\bprint_identified\w*", _all_text()))
    assert names <= {MYSQL["users"]["hex_variable"]}, names


def test_redis_tools_are_the_images_own():
    text = _all_text()
    checks = set(re.findall(r"(?<![\w.-])redis-check-[a-z]+(?![\w.-])", text))
    assert checks <= set(REDIS["binaries"]), checks


def test_redis_info_fields_are_the_confirmed_ones():
    found = set()
    for path, text in _backup_code().items():
        if path != "defaults/main.yml":
            found |= _info_field_names(text)
    for path, value, depth in _walk(_defaults_tree()):
        if re.fullmatch(r"(?:rdb|aof)_[a-z][a-z_]*", value):
            # a list item, a value or a key of a mapping under an info/field variable: an INFO field
            if not _is_nested_key(path, value) or re.search(r"info|field", path):
                found.add(value)
        else:
            found |= _info_field_names(value)
    unconfirmed = found - set(REDIS["info_persistence_fields"]) - set(REDIS["info_fields"])
    assert not unconfirmed, f"INFO fields not in docs/backup_sources.yml: {sorted(unconfirmed)}"


def test_redis_acl_rules_name_only_confirmed_commands():
    strings = [value for _path, value, _depth in _walk(_defaults_tree())]
    strings += re.findall(r"[^\n]*-@all[^\n]*", _all_text())
    # the backup user itself is declared with the other Redis users, in the data role
    data = _role_defaults("data")
    strings += [str(value) for key, value in data.items() if re.fullmatch(r"data_redis_backup\w*_acl", key)]
    for rules in (s for s in strings if "-@all" in s):
        granted = re.findall(r"(?<![\w])\+(@?[a-z][a-z|-]*)", rules)
        assert not [g for g in granted if g.startswith("@")], f"categories granted, not confirmed needed: {rules!r}"
        unconfirmed = set(granted) - set(REDIS["acl_commands"])
        assert not unconfirmed, f"ACL commands whose categories were not read: {sorted(unconfirmed)} in {rules!r}"


def test_prometheus_snapshot_endpoint_and_directory_are_the_confirmed_ones():
    text = _all_text()
    for path in re.findall(r"/api/v1/admin/[\w/]*", text):
        assert path == PROMETHEUS["snapshot_endpoint"], f"admin endpoint other than the snapshot: {path}"
    for name in re.findall(r"\bskip.head\b", text):
        assert name in PROMETHEUS["snapshot_params"], name
    if PROMETHEUS["snapshot_endpoint"] in text:
        assert f"{PROMETHEUS['snapshot_dir']}/" in text or f"/{PROMETHEUS['snapshot_dir']}" in text, \
            "the snapshot is never looked for under snapshots/"
    # an absolute path into the container's TSDB (not a host directory that ends in /prometheus)
    storage = re.escape(PROMETHEUS["storage_path"])
    for first in re.findall(rf"(?:(?<=[\s\"'=:])|^){storage}/([\w.-]+)", text, re.M):
        assert first == PROMETHEUS["snapshot_dir"], f"{PROMETHEUS['storage_path']}/{first}: only snapshots/ is read"


def test_prometheus_is_called_with_the_images_wget_and_a_post():
    text = _all_text()
    for segment in _segments(text, "wget"):
        options = _segment_options(segment)
        unconfirmed = options - set(PROMETHEUS["wget_long_options"])
        assert not unconfirmed, f"busybox wget options not confirmed: {sorted(unconfirmed)} in {segment!r}"
        if re.search(r"snapshot", segment + " ".join(_jinja_variables(segment)), re.I):
            assert options & {"--post-data", "--post-file"}, \
                f"the snapshot endpoint takes POST/PUT only; busybox wget GETs without --post-data: {segment!r}"
    for line in text.splitlines():
        if PROMETHEUS["snapshot_endpoint"] in line:
            assert not re.search(r"(?<![\w.-])curl(?![\w.-])", line), f"the image has no curl: {line.strip()!r}"


def test_promtool_is_run_with_a_confirmed_tsdb_command():
    for command in re.findall(r"\bpromtool\s+tsdb\s+([a-z][a-z-]*)", _all_text()):
        assert command in PROMETHEUS["promtool_tsdb_commands"], command


def test_mariadb_backup_and_mariadb_dump_use_confirmed_options():
    text = _all_text()
    assert not re.search(r"(?<![\w.-])mariabackup(?![\w.-])", text), "the confirmed name is mariadb-backup"
    for segment in _segments(text, "mariadb-backup"):
        unconfirmed = _segment_options(segment) - set(MARIADB_BACKUP["options"])
        assert not unconfirmed, f"mariadb-backup options not confirmed: {sorted(unconfirmed)}"
    for values in re.findall(r"--system=([\w,]+)", text):
        assert set(values.split(",")) <= set(MARIADB_DUMP["system_values"]), values


def test_the_offline_mysql_recipe_installs_mariadb_backup_as_recorded():
    dockerfile = (ROOT / "roles" / "data" / "images" / "mysql" / "Dockerfile").read_text()
    installed = bool(re.search(r"^\s+mariadb-backup \\$", dockerfile, re.M))
    assert installed == MARIADB_BACKUP["in_offline_recipe"], "docs/backup_sources.yml: in_offline_recipe is stale"
