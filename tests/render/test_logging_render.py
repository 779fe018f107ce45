# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The logging tier's rendered configuration. Elasticsearch, Kibana and Fluentd run only in
the upstream profile (their official images need a registry), so what they would mount is
checked here: fluent.conf (parsed by a reader of Fluentd's directive syntax),
elasticsearch.yml and kibana.yml (YAML), the secrets beside them; and the offline
collector's rsyslog.conf. The role's derived variables (the log driver every container
gets, the services' ports and environment) are read by a small playbook that loads the
role's definitions, as the deploy does."""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "logging"


# --------------------------------------------------------------------------
# helpers


def parse_fluent_conf(text: str) -> dict:
    """Fluentd's configuration syntax: ``<directive arg>`` ... ``</directive>`` sections
    (nested), ``key value`` parameters, ``#`` comment lines. Returns the root section
    ``{name, arg, params, sections}``; anything else is an error."""
    root = {"name": "ROOT", "arg": None, "params": {}, "sections": []}
    stack = [root]
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        closing = re.fullmatch(r"</\s*([\w@.]+)\s*>", line)
        if closing:
            assert stack[-1]["name"] == closing.group(1), f"line {number}: </{closing.group(1)}> closes <{stack[-1]['name']}>"
            stack.pop()
            continue
        opening = re.fullmatch(r"<\s*([\w@.]+)(?:\s+([^>]+?))?\s*>", line)
        if opening:
            section = {"name": opening.group(1), "arg": opening.group(2), "params": {}, "sections": []}
            stack[-1]["sections"].append(section)
            stack.append(section)
            continue
        param = re.fullmatch(r"([@\w]+)\s+(.+)", line)
        assert param, f"line {number} is no directive, section or parameter: {raw!r}"
        assert param.group(1) not in stack[-1]["params"], f"line {number}: {param.group(1)} given twice"
        stack[-1]["params"][param.group(1)] = param.group(2)
    assert len(stack) == 1, f"<{stack[-1]['name']}> is never closed"
    return root


def sections(section: dict, name: str, arg: str | None = None) -> list[dict]:
    return [s for s in section["sections"] if s["name"] == name and (arg is None or s["arg"] == arg)]


def only(items: list):
    assert len(items) == 1, items
    return items[0]


def non_secret_files(rendered: pathlib.Path):
    for path in sorted(rendered.rglob("*")):
        if path.is_file() and "secrets" not in path.relative_to(rendered).parts:
            yield path


def read_role_vars(work: pathlib.Path, extra_vars: dict | None = None) -> dict:
    """The logging role's derived variables in each profile, as a play that loads its
    definitions sees them: ``{profile: {name: value}}``."""
    playbook = work / "vars.yml"
    names = ["logging_container_log", "stack_container_log", "logging_services", "logging_elasticsearch_url"]
    play_vars = {"stack_secrets_dir": str(work / "secrets"), "stack_config_dir": str(work / "config"),
                 # only the variables: the precheck of every tier is not this test's business
                 "stack_precheck_done": True}
    play_vars.update(extra_vars or {})
    playbook.write_text(yaml.safe_dump([{
        "name": "Read the logging role's variables",
        "hosts": "localhost", "connection": "local", "gather_facts": False,
        "vars": play_vars,
        "tasks": [
            {"name": "Load the definitions", "ansible.builtin.include_role": {
                "name": "dockerlab.ecommerce.logging", "tasks_from": "definitions", "public": True}},
        ] + [task for profile in ("offline", "upstream") for task in (
            {"name": f"Pick {profile}", "ansible.builtin.set_fact": {"images_profile": profile}},
            {"name": f"Write {profile}", "ansible.builtin.copy": {
                "dest": str(work / f"{profile}.json"), "mode": "0644",
                "content": "{{ %s | to_json }}" % ("{" + ", ".join(f"'{n}': {n}" for n in names) + "}")}},
        )],
    }], sort_keys=False))
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false")
    command = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), str(playbook)]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    if result.returncode != 0:
        pytest.fail(f"reading the logging role's variables failed:\n{result.stdout[-4000:]}\n{result.stderr[-2000:]}")
    return {profile: json.loads((work / f"{profile}.json").read_text()) for profile in ("offline", "upstream")}


@pytest.fixture(scope="module")
def role_vars(tmp_path_factory):
    return read_role_vars(tmp_path_factory.mktemp("logging-vars"))


# --------------------------------------------------------------------------
# Fluentd


@pytest.fixture(scope="module")
def fluent_conf(rendered_upstream):
    return parse_fluent_conf((rendered_upstream / "fluentd/fluent.conf").read_text())


def test_fluentd_receives_docker_logs_on_24224(fluent_conf, role_vars):
    forward = only([s for s in sections(fluent_conf, "source") if s["params"].get("@type") == "forward"])
    assert forward["params"]["port"] == "24224"
    assert forward["params"]["bind"] == "0.0.0.0"
    fluentd = role_vars["upstream"]["logging_services"]["fluentd"]
    assert {"host_port": 24224, "container_port": 24224, "bind_address": "127.0.0.1"} in [
        {k: int(v) if k.endswith("port") else v for k, v in port.items()} for port in fluentd["ports"]]


def test_fluentd_health_is_its_monitor_agent(fluent_conf, role_vars):
    monitor = only([s for s in sections(fluent_conf, "source") if s["params"].get("@type") == "monitor_agent"])
    assert monitor["params"]["port"] == "24220"
    fluentd = role_vars["upstream"]["logging_services"]["fluentd"]
    assert "http://127.0.0.1:24220/api/plugins.json" in " ".join(fluentd["healthcheck"]["test"])
    assert fluentd["probe"] == {"kind": "http", "path": "/api/plugins.json", "port": 24220}
    # Fluentd's own output never goes through Fluentd
    assert fluentd["log"]["driver"] == "json-file"


def test_fluentd_parses_json_lines_and_keeps_the_others(fluent_conf):
    parser = only(sections(fluent_conf, "filter", "docker.**"))
    assert parser["params"]["@type"] == "parser"
    assert parser["params"]["key_name"] == "log"
    assert parser["params"]["reserve_data"] == "true"
    assert parser["params"]["emit_invalid_record_to_error"] == "false"
    assert only(sections(parser, "parse"))["params"]["@type"] == "json"


def test_fluentd_writes_to_elasticsearch_with_a_password_from_a_file(fluent_conf, role_vars):
    output = only(sections(fluent_conf, "match", "docker.**"))
    params = output["params"]
    assert params["@type"] == "elasticsearch"
    assert (params["host"], params["port"], params["scheme"]) == ("elasticsearch", "9200", "http")
    assert params["user"] == "fluentd"
    secret = only(role_vars["upstream"]["logging_services"]["fluentd"]["secrets"])
    assert secret["var"] == "logging_fluentd_es_password" and secret["owner"] == "999"
    # read from the mounted secret when Fluentd starts, not written in the file
    assert params["password"] == "\"#{File.read('%s').strip}\"" % secret["target"]
    assert params["logstash_format"] == "true" and params["logstash_prefix"] == "ecommerce-logs"
    buffer = only(sections(output, "buffer"))
    assert buffer["params"]["@type"] == "file" and buffer["params"]["retry_forever"] == "true"
    # every event the log driver sends matches this output: its tag is docker.<name>
    tag = role_vars["upstream"]["stack_container_log"]["options"]["tag"]
    assert tag == "docker.{{.Name}}"


# --------------------------------------------------------------------------
# Elasticsearch and Kibana


def test_elasticsearch_is_a_secured_single_node(rendered_upstream, role_vars):
    settings = yaml.safe_load((rendered_upstream / "elasticsearch/elasticsearch.yml").read_text())
    assert settings["discovery.type"] == "single-node"
    assert settings["xpack.security.enabled"] is True
    assert settings["cluster.name"] == "ecommerce-logging"
    assert settings["http.port"] == 9200 and settings["network.host"] == "0.0.0.0"
    # plain HTTP on purpose (local port, one host): see the template's header
    assert settings["xpack.security.http.ssl.enabled"] is False
    assert settings["ingest.geoip.downloader.enabled"] is False
    elasticsearch = role_vars["upstream"]["logging_services"]["elasticsearch"]
    assert elasticsearch["env"]["ES_JAVA_OPTS"] == "-Xms512m -Xmx512m"
    assert elasticsearch["env"]["ELASTIC_PASSWORD_FILE"] == only(elasticsearch["secrets"])["target"]
    assert elasticsearch["volumes"] == [{"volume": "es_data", "target": "/usr/share/elasticsearch/data"}]
    assert role_vars["upstream"]["logging_elasticsearch_url"] == "http://127.0.0.1:9200"


def test_kibana_logs_in_as_kibana_system(rendered_upstream, rendered_secrets):
    settings = yaml.safe_load((rendered_upstream / "kibana/secrets/kibana.yml").read_text())
    assert settings["elasticsearch.hosts"] == ["http://elasticsearch:9200"]
    assert settings["elasticsearch.username"] == "kibana_system"
    assert settings["elasticsearch.password"] == (rendered_secrets / "kibana_system_password").read_text().strip()
    key = (rendered_secrets / "kibana_encryption_key").read_text().strip()
    assert len(key) >= 32
    assert settings["xpack.encryptedSavedObjects.encryptionKey"] == key
    assert settings["server.port"] == 5601 and settings["status.allowAnonymous"] is True


def test_secrets_are_the_generated_ones(rendered_upstream, rendered_secrets):
    for rendered, kept in (("elasticsearch/secrets/elastic_password", "elastic_password"),
                           ("fluentd/secrets/es_password", "fluentd_es_password")):
        value = (rendered_upstream / rendered).read_text().strip()
        assert re.fullmatch(r"[A-Za-z0-9]{32}", value)
        assert value == (rendered_secrets / kept).read_text().strip()


def test_no_password_outside_the_secrets(rendered_upstream, rendered_secrets):
    values = [path.read_text().strip() for path in rendered_secrets.iterdir()
              if path.name in ("elastic_password", "kibana_system_password", "fluentd_es_password",
                               "kibana_encryption_key")]
    assert len(values) == 4
    for path in non_secret_files(rendered_upstream):
        text = path.read_text(errors="replace")
        assert not [value for value in values if value in text], f"a logging secret is in {path}"


def test_secrets_belong_to_the_images_users(role_vars):
    services = role_vars["upstream"]["logging_services"]
    assert only(services["elasticsearch"]["secrets"])["owner"] == "1000"
    kibana = only(services["kibana"]["secrets"])
    assert (kibana["template"], kibana["owner"], kibana["target"]) == (
        "kibana/kibana.yml.j2", "1000", "/usr/share/kibana/config/kibana.yml")
    # nothing secret in any environment (docker inspect shows it)
    for service in services.values():
        assert not [k for k in service.get("env") or {} if "PASSWORD" in k and not k.endswith("_FILE")]


def test_published_ports_are_local_by_default(role_vars):
    services = role_vars["upstream"]["logging_services"]
    for key, port in (("elasticsearch", 9200), ("kibana", 5601), ("fluentd", 24224)):
        assert [(int(p["host_port"]), p["bind_address"]) for p in services[key]["ports"]] == [(port, "127.0.0.1")]
    collector = role_vars["offline"]["logging_services"]["log-collector"]
    assert [(int(p["host_port"]), int(p["container_port"]), p["bind_address"], p["protocol"])
            for p in collector["ports"]] == [(5514, 5514, "127.0.0.1", "udp")]


# --------------------------------------------------------------------------
# which components each profile renders


def test_each_profile_renders_only_its_components(rendered_upstream, rendered_offline):
    assert not (rendered_upstream / "log-collector").exists()
    assert (rendered_offline / "log-collector/rsyslog.conf").is_file()
    for component in ("elasticsearch", "kibana", "fluentd"):
        assert (rendered_upstream / component).is_dir()
        assert not (rendered_offline / component).exists()


# --------------------------------------------------------------------------
# the offline collector and the log driver of every container


def test_rsyslog_listens_where_the_driver_sends(rendered_offline, role_vars):
    conf = (rendered_offline / "log-collector/rsyslog.conf").read_text()
    inputs = re.findall(r'input\(type="imudp" port="(\d+)"', conf)
    assert inputs == ["5514"]
    collector = role_vars["offline"]["logging_services"]["log-collector"]
    # the daemon sends straight to the collector's fixed address on the monitoring network
    network = only(collector["networks"])
    assert (network["network"], network["ipv4_address"]) == ("monitoring", "172.23.0.250")
    address = role_vars["offline"]["stack_container_log"]["options"]["syslog-address"]
    assert address == "udp://172.23.0.250:5514"
    # and the same port is published on the host's loopback, for tools there
    published = only(collector["ports"])
    assert (int(published["host_port"]), int(published["container_port"])) == (5514, 5514)
    # one file per container in the logs volume, named only by a valid container name
    assert 'string="/var/log/ecommerce/%$.file%.log"' in conf
    assert r're_extract($app-name, "^[A-Za-z0-9][A-Za-z0-9_.-]{0,200}\$", 0, 0, "_unknown")' in conf
    assert 'rotation.sizeLimit="52428800"' in conf
    # the image ships the same file (its default when run alone)
    assert conf == (ROLE / "images/rsyslog/rsyslog.conf").read_text()


def test_container_log_offline_is_syslog_to_the_collector(role_vars):
    expected = {"driver": "syslog", "options": {
        "syslog-address": "udp://172.23.0.250:5514", "syslog-format": "rfc5424micro", "tag": "{{.Name}}"}}
    assert role_vars["offline"]["logging_container_log"] == expected
    # what the stack applies to every container
    assert role_vars["offline"]["stack_container_log"] == expected
    collector = role_vars["offline"]["logging_services"]["log-collector"]
    assert collector["log"]["driver"] == "json-file"


def test_container_log_upstream_is_fluentd_async(role_vars):
    expected = {"driver": "fluentd", "options": {
        "fluentd-address": "127.0.0.1:24224", "fluentd-async": "true", "tag": "docker.{{.Name}}"}}
    assert role_vars["upstream"]["logging_container_log"] == expected
    assert role_vars["upstream"]["stack_container_log"] == expected


def test_the_render_playbook_sees_the_same_log_driver(rendered_offline, rendered_upstream, role_vars):
    for profile, rendered in (("offline", rendered_offline), ("upstream", rendered_upstream)):
        variables = json.loads((rendered / "variables.json").read_text())
        assert variables["stack_container_log"] == role_vars[profile]["logging_container_log"]


def test_parser_reads_nested_sections_and_rejects_garbage():
    conf = parse_fluent_conf("# c\n<match a.**>\n  @type x\n  <buffer>\n    path /p\n  </buffer>\n</match>\n")
    match = only(sections(conf, "match", "a.**"))
    assert match["params"] == {"@type": "x"} and only(sections(match, "buffer"))["params"] == {"path": "/p"}
    with pytest.raises(AssertionError):
        parse_fluent_conf("<source>\n  @type forward\n")
    with pytest.raises(AssertionError):
        parse_fluent_conf("<source>\n</match>\n")


# --------------------------------------------------------------------------
# tasks/es_setup.yml, against a stand-in of Elasticsearch's API


class FakeElasticsearchAPI:
    """The few endpoints tasks/es_setup.yml uses, with Elasticsearch's answers: _authenticate
    (200 or 401), a user's _password, GET/PUT role, PUT user, GET/PUT index template."""

    def __init__(self, elastic_password: str):
        self.users = {"elastic": {"password": elastic_password, "roles": ["superuser"]},
                      "kibana_system": {"password": "set-by-elasticsearch", "roles": ["kibana_system"]}}
        self.roles = {}
        self.templates = {}
        self.writes = []

    def handle(self, method: str, path: str, auth: tuple[str, str] | None, body: dict | None):
        user = self.users.get(auth[0]) if auth else None
        if not user or user["password"] != auth[1]:
            return 401, {"error": {"type": "security_exception"}}
        if path == "/_security/_authenticate" and method == "GET":
            return 200, {"username": auth[0], "roles": user["roles"]}
        if auth[0] != "elastic":
            return 403, {"error": {"type": "security_exception"}}
        if method != "GET":
            self.writes.append((method, path))
        match = re.fullmatch(r"/_security/user/([\w-]+)/_password", path)
        if match and method == "POST":
            self.users[match.group(1)]["password"] = body["password"]
            return 200, {}
        match = re.fullmatch(r"/_security/role/([\w-]+)", path)
        if match and method == "GET":
            name = match.group(1)
            return (200, {name: self.roles[name]}) if name in self.roles else (404, {})
        if match and method == "PUT":
            self.roles[match.group(1)] = {
                "cluster": body["cluster"], "run_as": [], "applications": [], "metadata": {},
                "indices": [dict(entry, allow_restricted_indices=False) for entry in body["indices"]],
                "transient_metadata": {"enabled": True}}
            return 200, {"role": {"created": True}}
        match = re.fullmatch(r"/_security/user/([\w-]+)", path)
        if match and method == "PUT":
            self.users[match.group(1)] = {"password": body["password"], "roles": body["roles"]}
            return 200, {"created": True}
        match = re.fullmatch(r"/_index_template/([\w-]+)", path)
        if match and method == "GET":
            name = match.group(1)
            if name not in self.templates:
                return 404, {"error": {"type": "resource_not_found_exception"}, "status": 404}
            return 200, {"index_templates": [{"name": name, "index_template": self.templates[name]}]}
        if match and method == "PUT":
            # as Elasticsearch shows it again: settings under index, as strings
            settings = {"index": {k: str(v) for k, v in body["template"].get("settings", {}).items()}}
            self.templates[match.group(1)] = {
                "index_patterns": body["index_patterns"], "priority": body["priority"], "composed_of": [],
                "template": {"settings": settings, "mappings": body["template"]["mappings"]}}
            return 200, {"acknowledged": True}
        return 400, {"error": f"unexpected {method} {path}"}


@pytest.fixture
def fake_elasticsearch():
    import base64  # pylint: disable=import-outside-toplevel
    import http.server  # pylint: disable=import-outside-toplevel
    import threading  # pylint: disable=import-outside-toplevel

    api = FakeElasticsearchAPI("elastic-pw-0123456789")

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self):
            header = self.headers.get("Authorization", "")
            auth = tuple(base64.b64decode(header[6:]).decode().split(":", 1)) if header.startswith("Basic ") else None
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            status, answer = api.handle(self.command, self.path, auth, body)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = _answer  # noqa: N815

        def log_message(self, *args):  # pylint: disable=arguments-differ
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    api.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield api
    server.shutdown()
    server.server_close()


def run_es_setup(tmp_path, url: str, elastic_password: str):
    playbook = tmp_path / "es_setup.yml"
    playbook.write_text(yaml.safe_dump([{
        "name": "Set up Elasticsearch", "hosts": "localhost", "connection": "local", "gather_facts": False,
        "vars": {"stack_secrets_dir": str(tmp_path / "secrets"), "stack_precheck_done": True,
                 "logging_elasticsearch_url": url, "logging_elastic_password": elastic_password,
                 "logging_kibana_system_password": "kibana-pw-0123456789", "logging_fluentd_es_password": "fluentd-pw-0123456789"},
        "tasks": [{"name": "Set up Elasticsearch", "ansible.builtin.include_role": {
            "name": "dockerlab.ecommerce.logging", "tasks_from": "es_setup"}}],
    }], sort_keys=False))
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false")
    command = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), str(playbook)]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)


def recap(output: str) -> dict:
    match = re.search(r"localhost\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)", output)
    assert match, output[-3000:]
    return {"ok": int(match.group(1)), "changed": int(match.group(2)), "failed": int(match.group(3))}


def test_elasticsearch_is_set_up_once_and_checked_first(fake_elasticsearch, tmp_path):
    api = fake_elasticsearch
    first = run_es_setup(tmp_path, api.url, "elastic-pw-0123456789")
    # the kibana_system password, Fluentd's role and user, the log indices' template
    assert (recap(first.stdout)["changed"], recap(first.stdout)["failed"]) == (4, 0), first.stdout[-3000:]
    assert api.users["kibana_system"]["password"] == "kibana-pw-0123456789"
    assert api.users["fluentd"] == {"password": "fluentd-pw-0123456789", "roles": ["ecommerce_logs_writer"]}
    assert api.roles["ecommerce_logs_writer"]["cluster"] == ["monitor"]
    assert [(e["names"], e["privileges"]) for e in api.roles["ecommerce_logs_writer"]["indices"]] == [
        (["ecommerce-logs-*"], ["create_index", "index"])]
    template = api.templates["ecommerce-logs"]
    assert template["index_patterns"] == ["ecommerce-logs-*"]
    assert template["template"]["mappings"] == {"properties": {"app": {"type": "flattened"}}}
    assert template["template"]["settings"] == {"index": {"number_of_replicas": "0"}}
    # no password in Ansible's output
    assert not [pw for pw in ("elastic-pw-0123456789", "kibana-pw-0123456789", "fluentd-pw-0123456789")
                if pw in first.stdout + first.stderr]

    # a second run logs in with each account, finds them right and writes nothing
    writes = len(api.writes)
    second = run_es_setup(tmp_path, api.url, "elastic-pw-0123456789")
    assert recap(second.stdout)["changed"] == 0 and recap(second.stdout)["failed"] == 0, second.stdout[-3000:]
    assert len(api.writes) == writes

    # a role and a template changed behind the role's back are put right, and nothing else
    api.roles["ecommerce_logs_writer"]["indices"][0]["privileges"] = ["all"]
    api.templates["ecommerce-logs"]["template"]["mappings"] = {}
    third = run_es_setup(tmp_path, api.url, "elastic-pw-0123456789")
    assert recap(third.stdout)["changed"] == 2, third.stdout[-3000:]
    assert api.roles["ecommerce_logs_writer"]["indices"][0]["privileges"] == ["create_index", "index"]
    assert api.templates["ecommerce-logs"]["template"]["mappings"] == {"properties": {"app": {"type": "flattened"}}}


def test_a_volume_with_another_elastic_password_stops_the_deploy(fake_elasticsearch, tmp_path):
    result = run_es_setup(tmp_path, fake_elasticsearch.url, "not-the-volume-password")
    assert result.returncode != 0
    assert "refused the elastic password" in result.stdout and "purge=true" in result.stdout
    assert "not-the-volume-password" not in result.stdout + result.stderr
    assert not fake_elasticsearch.writes


def test_addresses_follow_the_inventory(tmp_path):
    """The collector's address follows the monitoring subnet; a bind address other than the
    loopback or all interfaces is where the daemon and the tasks reach the ports."""
    networks = yaml.safe_load((ROOT / "roles/stack/defaults/main.yml").read_text())["stack_networks"]
    networks["monitoring"]["subnet"] = "10.99.7.0/24"
    found = read_role_vars(tmp_path, {"stack_networks": networks, "logging_bind_address": "192.0.2.10",
                                      "logging_fluentd_port": 24225})
    assert found["offline"]["logging_container_log"]["options"]["syslog-address"] == "udp://10.99.7.250:5514"
    assert only(found["offline"]["logging_services"]["log-collector"]["networks"])["ipv4_address"] == "10.99.7.250"
    assert found["upstream"]["logging_container_log"]["options"]["fluentd-address"] == "192.0.2.10:24225"
    assert found["upstream"]["logging_elasticsearch_url"] == "http://192.0.2.10:9200"
    assert [p["bind_address"] for p in found["upstream"]["logging_services"]["kibana"]["ports"]] == ["192.0.2.10"]
