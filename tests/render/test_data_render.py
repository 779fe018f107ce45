# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The data tier's rendered Redis configuration: ACL users in the secret users.acl (the
default user may only PING, the services', the backups' and the exporter's users with hashed passwords),
redis.conf loading it. The same files in the offline Redis image:
tests/images/test_offline_data_images.py."""

from __future__ import annotations

import hashlib
import stat

import pytest


def _acl(rendered):
    """users.acl as {user: rules after the name}."""
    lines = (rendered / "redis-cache/secrets/users.acl").read_text().splitlines()
    users = {}
    for line in lines:
        if not line.strip():
            continue
        keyword, name, *rules = line.split()
        assert keyword == "user", f"an ACL file holds only user lines, not {line!r}"
        users[name] = rules
    return users


@pytest.mark.parametrize("profile", ["offline", "upstream"])
def test_redis_users_and_their_rules(request, profile):
    rendered = request.getfixturevalue(f"rendered_{profile}")
    secrets = rendered.parent / "secrets"
    users = _acl(rendered)
    assert list(users) == ["default", "ecommerce", "backup", "redis_exporter"]
    # no login: PING only
    assert users["default"] == ["reset", "on", "nopass", "+ping"]
    for user, secret in (("ecommerce", "redis_password"), ("backup", "redis_backup_password"),
                         ("redis_exporter", "redis_exporter_password")):
        rules = users[user]
        assert rules[:2] == ["reset", "on"]
        password = (secrets / secret).read_text().strip()
        assert rules[2] == "#" + hashlib.sha256(password.encode()).hexdigest(), user
        assert "-@all" in rules and "nopass" not in rules and "+@all" not in rules and "allkeys" not in rules
        assert not [rule for rule in rules if rule.startswith(">")], "cleartext password rule"
    assert users["ecommerce"][3:] == ["~ecommerce:*", "-@all", "+get", "+set", "+del", "+exists", "+ping", "+select"]
    # backups: BGSAVE and what shows it finished, no key
    assert users["backup"][3:] == ["-@all", "+ping", "+bgsave", "+lastsave", "+info"]
    exporter = users["redis_exporter"][3:]
    assert {"+info", "+config|get", "+slowlog|get", "+latency|latest"} <= set(exporter)
    assert not [rule for rule in exporter if rule.startswith(("~", "%"))], "the exporter reads no key"
    mode = (rendered / "redis-cache/secrets/users.acl").stat().st_mode
    assert stat.S_IMODE(mode) == 0o400


def test_redis_conf_loads_the_acl_file(rendered_offline):
    conf = (rendered_offline / "redis-cache/redis.conf").read_text()
    directives = [line.split(None, 1) for line in conf.splitlines() if line.strip() and not line.startswith("#")]
    settings = dict(directives)
    assert settings["aclfile"] == "/usr/local/etc/redis/users.acl"
    # the default user is nopass (PING only): protected mode would refuse every remote client
    assert settings["protected-mode"] == "no"
    assert "requirepass" not in settings and "include" not in settings and "user" not in settings
