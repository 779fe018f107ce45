# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Grafana: the provisioned Prometheus data source, the dashboard provider and the stack dashboard.

Grafana cannot run here (no registry for its image), so its inputs are checked instead:
the files the monitoring role renders for the upstream profile (``rendered_upstream``),
the mounts ``monitoring_services.grafana`` declares, and the static dashboard JSON, whose
queries are checked against the metrics the stack really exports (the services' own
``Metrics`` class, and the exporters' metric names). The queries themselves are run
against a live Prometheus by the Molecule verifier, through ``dashboard_queries``.
"""

from __future__ import annotations

import json
import os
import re
import sys
from itertools import combinations
from pathlib import Path

import jinja2
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "monitoring"
DASHBOARD_FILE = ROLE / "files" / "grafana" / "dashboards" / "ecommerce.json"
APP_DIR = ROOT / "roles" / "backend" / "images" / "service" / "app"

if str(APP_DIR) not in sys.path:
    sys.path.insert(0, str(APP_DIR))

from dashboard_queries import dashboard_queries, iter_panels, substitute  # noqa: E402  pylint: disable=import-error  # tests/

# Where the rendered files are, relative to the render directory (<key>/<dest>).
DATASOURCES = "grafana/provisioning/datasources/prometheus.yml"
PROVIDERS = "grafana/provisioning/dashboards/ecommerce.yml"
DASHBOARD = "grafana/dashboards/ecommerce.json"

EXPORTER_METRICS = {
    # Prometheus itself
    "up", "ALERTS",
    # nginx-prometheus-exporter
    "nginx_up", "nginx_connections_active", "nginx_http_requests_total",
    # mysqld_exporter
    "mysql_up", "mysql_global_status_threads_connected", "mysql_global_status_queries",
    "mysql_global_status_slow_queries",
    # redis_exporter
    "redis_up", "redis_connected_clients", "redis_memory_used_bytes", "redis_keyspace_hits_total",
    "redis_keyspace_misses_total", "redis_commands_processed_total",
    # cAdvisor (upstream profile only)
    "container_cpu_usage_seconds_total", "container_memory_working_set_bytes",
    # node_exporter
    "node_filesystem_avail_bytes", "node_filesystem_size_bytes", "node_load1",
}

PROMQL_FUNCTIONS = {
    # aggregations
    "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile",
    "count_values", "group",
    # functions used on counters, gauges and histograms
    "rate", "irate", "increase", "delta", "idelta", "deriv", "histogram_quantile", "vector",
    "scalar", "clamp", "clamp_min", "clamp_max", "abs", "absent", "absent_over_time", "label_replace",
    "label_join", "time", "timestamp", "changes", "resets", "round", "ceil", "floor",
    "avg_over_time", "min_over_time", "max_over_time", "sum_over_time", "count_over_time",
    "last_over_time", "quantile_over_time",
}
PROMQL_KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
                   "group_left", "group_right", "inf", "nan"}


# ----------------------------------------------------------------------------- helpers

def load_dashboard(path: Path = DASHBOARD_FILE) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def query_panels(dashboard: dict) -> list:
    """Every panel that is not a row."""
    return [p for p in iter_panels(dashboard["panels"]) if p.get("type") != "row"]


def exprs(dashboard: dict):
    """(panel, target, expr) for every query target."""
    for panel in query_panels(dashboard):
        for target in panel.get("targets", []):
            yield panel, target, target.get("expr", "")


def strip_strings(expr: str) -> str:
    return re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)


def metric_names(expr: str) -> set:
    """The metric names an expression selects (functions, keywords, labels and durations left out)."""
    text = strip_strings(expr)
    text = re.sub(r"\{[^{}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # range and subquery durations
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.$])[A-Za-z_:][\w:]*", text):
        name = match.group(0)
        if name.lower() in PROMQL_KEYWORDS or re.match(r"\s*\(", text[match.end():]):
            continue
        names.add(name)
    return names


def function_names(expr: str) -> set:
    text = strip_strings(expr)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(", "(", text)
    return {m.group(1) for m in re.finditer(r"(?<![\w.$])([A-Za-z_][\w]*)\s*\(", text)} - PROMQL_KEYWORDS


def balanced(expr: str) -> bool:
    pairs = {")": "(", "]": "[", "}": "{"}
    stack = []
    for char in strip_strings(expr):
        if char in "([{":
            stack.append(char)
        elif char in pairs:
            if not stack or stack.pop() != pairs[char]:
                return False
    return not stack and expr.count('"') % 2 == 0


def service_metrics() -> tuple:
    """The sample names the services export, and the status label they give a 503."""
    from ecommerce_app.metrics import Metrics

    metrics = Metrics("api-gateway")
    metrics.observe("GET", "/api/users", 503, 0.02)
    metrics.upstream.labels("api-gateway", "user-service", "timeout").inc()
    metrics.in_flight.labels("api-gateway").inc()
    names, statuses = set(), set()
    for family in metrics.registry.collect():
        for sample in family.samples:
            names.add(sample.name)
            if "status" in sample.labels:
                statuses.add(sample.labels["status"])
    return names, statuses


def defaults() -> dict:
    return yaml.safe_load((ROLE / "defaults" / "main.yml").read_text(encoding="utf-8"))


def resolve(value, variables: dict):
    """A defaults value with its (simple) Jinja references to other defaults resolved."""
    for depth in range(5):  # nested references, a few levels deep
        if not isinstance(value, str) or "{{" not in value:
            break
        value = jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(value).render(**variables)
    return value


def grafana_mounts() -> dict:
    """dest -> container target of every config file monitoring_services.grafana declares."""
    variables = defaults()
    files = variables["monitoring_services"]["grafana"]["config_files"]
    return {entry["dest"]: resolve(entry["target"], variables) for entry in files}


# ----------------------------------------------------------------------------- the static dashboard

def test_dashboard_is_a_provisionable_grafana_12_dashboard():
    dashboard = load_dashboard()
    assert dashboard["uid"] == "ecommerce-lab"
    assert dashboard["title"] == "E-commerce lab"
    assert dashboard["id"] is None  # provisioning assigns it
    assert dashboard["schemaVersion"] >= 41  # Grafana 12.0's; Grafana migrates anything older
    assert dashboard["refresh"] == "10s"
    assert dashboard["time"] == {"from": "now-30m", "to": "now"}
    assert dashboard["tags"] and all(isinstance(tag, str) for tag in dashboard["tags"])
    assert dashboard["refresh"] in dashboard["timepicker"]["refresh_intervals"]


def test_the_dashboard_file_is_static_json_not_a_template():
    """Legend formats use {{service}}: the file must be copied, never rendered by Jinja."""
    text = DASHBOARD_FILE.read_text(encoding="utf-8")
    assert "{{service}}" in text
    assert "{%" not in text and "{{ " not in text


def test_service_variable_lists_the_services_multi_and_all():
    dashboard = load_dashboard()
    (variable,) = [v for v in dashboard["templating"]["list"] if v["name"] == "service"]
    assert variable["type"] == "query"
    assert variable["multi"] is True and variable["includeAll"] is True
    assert variable["allValue"] == ".*"
    assert variable["datasource"] == {"type": "prometheus", "uid": "prometheus"}
    query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
    assert re.fullmatch(r"label_values\(\s*http_requests_total\s*,\s*service\s*\)", query)
    assert variable["definition"] == query
    assert variable["refresh"] in (1, 2)  # on load / on time range change, never "never"


def test_panel_ids_are_unique_and_titles_set():
    panels = list(iter_panels(load_dashboard()["panels"]))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), ids
    assert all(isinstance(i, int) and i > 0 for i in ids)
    titles = [p["title"] for p in panels]
    assert all(titles)
    assert len(titles) == len(set(titles)), "panel titles are what the verifier reports: keep them unique"


def test_grid_positions_fit_the_24_columns_and_never_overlap():
    panels = list(iter_panels(load_dashboard()["panels"]))
    boxes = []
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["y"] >= 0 and grid["w"] > 0 and grid["h"] > 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        boxes.append((panel["title"], grid))
    for (title_a, a), (title_b, b) in combinations(boxes, 2):
        overlap = (a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"]
                   and a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"])
        assert not overlap, f"{title_a!r} {a} overlaps {title_b!r} {b}"


def test_rows_are_in_order_and_hold_their_panels():
    dashboard = load_dashboard()
    rows = [p for p in dashboard["panels"] if p["type"] == "row"]
    assert [r["title"] for r in rows] == ["Overview", "Request path", "Database and cache", "Containers"]
    assert all(not r["collapsed"] and r["gridPos"]["w"] == 24 for r in rows)
    # Grafana files a panel under the nearest row above it: the panel list must be in y order.
    ys = [(p["gridPos"]["y"], p["gridPos"]["x"]) for p in dashboard["panels"]]
    assert ys == sorted(ys)


def test_every_panel_and_target_uses_the_prometheus_datasource():
    for panel in query_panels(load_dashboard()):
        assert panel["datasource"] == {"type": "prometheus", "uid": "prometheus"}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"], panel["title"]


def test_every_target_has_an_expr_and_a_unique_ref_id():
    for panel in query_panels(load_dashboard()):
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target.get("expr", "").strip(), panel["title"]


def test_every_expr_is_balanced():
    for panel, _target, expr in exprs(load_dashboard()):
        assert balanced(expr), f"{panel['title']}: unbalanced brackets or quotes in {expr!r}"


def test_balance_check_catches_mistakes():
    assert balanced('sum by (a) (rate(x{a=~"(b|c)"}[1m]))')
    assert not balanced("sum(rate(x[1m])")
    assert not balanced('x{a="b}')
    assert not balanced("sum(x])")


def test_every_metric_name_is_one_the_stack_exports():
    known_services, _statuses = service_metrics()
    known = EXPORTER_METRICS | known_services
    used = set()
    for panel, _target, expr in exprs(load_dashboard()):
        names = metric_names(expr)
        assert names, f"{panel['title']}: no metric in {expr!r}"
        unknown = names - known
        assert not unknown, f"{panel['title']}: unknown metric(s) {sorted(unknown)} in {expr!r}"
        used |= names
    assert {"http_requests_total", "http_request_duration_seconds_bucket", "http_requests_in_flight",
            "upstream_requests_total"} <= used


def test_every_function_is_a_promql_function():
    for panel, _target, expr in exprs(load_dashboard()):
        unknown = function_names(expr) - PROMQL_FUNCTIONS
        assert not unknown, f"{panel['title']}: not PromQL functions: {sorted(unknown)} in {expr!r}"


def test_metric_name_extraction():
    expr = ('histogram_quantile(0.95, sum by (service, le) (rate(http_request_duration_seconds_bucket'
            '{service=~"$service", route!="/metrics"}[$__rate_interval]))) or on (service) vector(0)')
    assert metric_names(expr) == {"http_request_duration_seconds_bucket"}
    assert metric_names('count(up == 0) or vector(0)') == {"up"}
    assert metric_names("a_total / ignoring (le) b_total unless c") == {"a_total", "b_total", "c"}
    assert function_names(expr) == {"histogram_quantile", "sum", "rate", "vector"}


def test_rate_windows_are_the_rate_interval():
    for panel, _target, expr in exprs(load_dashboard()):
        for window in re.findall(r"\[([^\]]*)\]", strip_strings(expr)):
            assert window == "$__rate_interval", f"{panel['title']}: window [{window}] in {expr!r}"


def test_the_required_topics_are_covered():
    dashboard = load_dashboard()
    _names, statuses = service_metrics()
    found = {topic: [] for topic in ("error ratio", "latency", "request rate", "mysql", "redis",
                                     "container cpu", "container memory", "targets up", "alerts firing",
                                     "in flight", "nginx", "disk free")}
    for panel, _target, expr in exprs(dashboard):
        title, unit = panel["title"], panel["fieldConfig"]["defaults"].get("unit")
        status_matchers = re.findall(r'status\s*=~\s*"([^"]*)"', expr)
        if "http_requests_total" in expr and status_matchers:
            # the matcher must select the label the services really write (e.g. "503"), and no 2xx/4xx
            assert all(re.fullmatch(m, s) for m in status_matchers for s in statuses), (title, statuses)
            assert not any(re.fullmatch(m, s) for m in status_matchers for s in ("200", "404", "499"))
            assert unit == "percentunit", title
            found["error ratio"].append(title)
        if re.search(r"histogram_quantile\(\s*0?\.\d+\s*,", expr) and "http_request_duration_seconds_bucket" in expr:
            assert re.search(r"by \(service, le\)", expr), f"{title}: quantiles need the le label: {expr!r}"
            assert unit == "s", title
            found["latency"].append(title)
        if re.search(r"sum by \(service\) \(rate\(http_requests_total\{[^}]*\}\[", expr) and "/" not in expr:
            assert unit == "reqps", title
            found["request rate"].append(title)
        if "mysql_" in expr:
            found["mysql"].append(title)
        if "redis_" in expr:
            found["redis"].append(title)
            if "redis_memory_used_bytes" in expr:
                assert unit == "bytes", title
        if "container_cpu_usage_seconds_total" in expr:
            found["container cpu"].append(title)
        if "container_memory_working_set_bytes" in expr:
            assert unit == "bytes", title
            found["container memory"].append(title)
        if "container_" in expr:
            assert 'name=~".+"' in expr, f"{title}: cAdvisor also reports cgroups without a container name"
            assert "offline profile" in panel["description"], title
        if metric_names(expr) == {"up"}:
            found["targets up"].append(title)
        if re.search(r'ALERTS\{alertstate="firing"\}', expr):
            found["alerts firing"].append(title)
        if "http_requests_in_flight" in expr:
            found["in flight"].append(title)
        if "nginx_" in expr:
            found["nginx"].append(title)
        if "node_filesystem_avail_bytes" in expr:
            found["disk free"].append(title)
    assert all(found.values()), {topic: titles for topic, titles in found.items() if not titles}
    assert len(found["latency"]) == 3  # p50, p95, p99
    quantiles = sorted(float(re.search(r"histogram_quantile\(([\d.]+)", e).group(1))
                       for p, _t, e in exprs(dashboard) if p["title"] in found["latency"])
    assert quantiles == [0.5, 0.95, 0.99]


def test_service_panels_follow_the_service_variable():
    for panel, _target, expr in exprs(load_dashboard()):
        for name in metric_names(expr) & {"http_requests_total", "http_request_duration_seconds_bucket",
                                          "http_requests_in_flight", "upstream_requests_total"}:
            selectors = re.findall(rf"\b{name}(\{{[^}}]*\}})?", expr)
            assert selectors and all('service=~"$service"' in s for s in selectors), f"{panel['title']}: {expr!r}"


# ----------------------------------------------------------------------------- dashboard_queries

def test_dashboard_queries_are_plain_promql():
    queries = dashboard_queries(DASHBOARD_FILE)
    assert len(queries) == len(list(exprs(load_dashboard())))
    for title, expr in queries:
        assert title and expr
        assert "$" not in expr and "[[" not in expr, (title, expr)
        assert balanced(expr), (title, expr)
    by_title = dict(queries)
    assert by_title["Request rate per service"] == \
        'sum by (service) (rate(http_requests_total{service=~".*"}[1m]))'


def test_substitute_handles_every_variable_form():
    variables = {"service"}
    assert substitute('x{a=~"${service:regex}|b"}[$__rate_interval]', variables) == 'x{a=~".*|b"}[1m]'
    assert substitute('rate(x{a=~"[[service]]"}[${__rate_interval}])', variables) == 'rate(x{a=~".*"}[1m])'
    assert substitute('x{a!~"$service"}', variables) == 'x{a!~".*"}'
    # "$1" in label_replace is not a variable
    assert substitute('label_replace(up, "a", "$1", "job", "(.*)")', variables) == \
        'label_replace(up, "a", "$1", "job", "(.*)")'
    with pytest.raises(ValueError, match="outside a regex label matcher"):
        substitute('x{service="$service"}', variables)


def test_dashboard_queries_walks_collapsed_rows(tmp_path):
    dashboard = {"templating": {"list": [{"name": "service"}]}, "panels": [
        {"type": "row", "title": "R", "collapsed": True, "panels": [
            {"type": "timeseries", "title": "inner",
             "targets": [{"expr": 'rate(x{service=~"$service"}[$__rate_interval])'}, {"expr": ""}]}]},
        {"type": "stat", "title": "outer", "targets": [{"expr": "up"}]}]}
    path = tmp_path / "d.json"
    path.write_text(json.dumps(dashboard))
    assert dashboard_queries(path) == [("inner", 'rate(x{service=~".*"}[1m])'), ("outer", "up")]


# ----------------------------------------------------------------------------- the mounts

def test_grafana_mounts_the_three_files_where_grafana_reads_them():
    mounts = grafana_mounts()
    assert mounts["provisioning/datasources/prometheus.yml"] == "/etc/grafana/provisioning/datasources/prometheus.yml"
    assert mounts["provisioning/dashboards/ecommerce.yml"] == "/etc/grafana/provisioning/dashboards/ecommerce.yml"
    assert mounts["dashboards/ecommerce.json"] == "/etc/grafana/dashboards/ecommerce.json"
    (dashboard_entry,) = [e for e in defaults()["monitoring_services"]["grafana"]["config_files"]
                          if e["dest"] == "dashboards/ecommerce.json"]
    # copied, not templated: {{service}} in the legends would be eaten by Jinja
    assert "src" not in dashboard_entry and (ROLE / "files" / dashboard_entry["file"]) == DASHBOARD_FILE


# ----------------------------------------------------------------------------- the rendered files

@pytest.fixture(scope="module")
def datasources(rendered_upstream) -> dict:
    return yaml.safe_load((rendered_upstream / DATASOURCES).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def providers(rendered_upstream) -> dict:
    return yaml.safe_load((rendered_upstream / PROVIDERS).read_text(encoding="utf-8"))


def test_rendered_provisioning_files_pass_yamllint(rendered_upstream):
    from yamllint import config as yamllint_config, linter  # pylint: disable=import-outside-toplevel
    config = yamllint_config.YamlLintConfig(file=str(ROOT / ".yamllint"))
    for name in (DATASOURCES, PROVIDERS):
        problems = list(linter.run((rendered_upstream / name).read_text(encoding="utf-8"), config))
        assert not problems, f"{name}: {[str(p) for p in problems]}"


def test_datasource_is_the_default_read_only_prometheus(datasources):
    variables = defaults()
    assert datasources["apiVersion"] == 1
    # Grafana >= 11.1 deletes provisioned data sources that leave the files
    assert datasources["prune"] is True
    assert "deleteDatasources" not in datasources
    (source,) = datasources["datasources"]
    assert source["name"] == "Prometheus"
    assert source["uid"] == "prometheus"
    assert source["type"] == "prometheus"
    assert source["access"] == "proxy"
    assert source["url"] == f"http://prometheus:{variables['monitoring_prometheus_port']}"
    assert source["isDefault"] is True
    assert source["editable"] is False
    assert source["jsonData"]["timeInterval"] == str(variables["monitoring_scrape_interval"])
    assert re.fullmatch(r"\d+[smh]", source["jsonData"]["timeInterval"])


def test_datasource_url_follows_the_prometheus_port(tmp_path):
    template = jinja2.Environment(loader=jinja2.FileSystemLoader(str(ROLE / "templates")),
                                  undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    text = template.get_template("grafana/datasources.yml.j2").render(
        monitoring_prometheus_port=9191, monitoring_scrape_interval="30s")
    (source,) = yaml.safe_load(text)["datasources"]
    assert source["url"] == "http://prometheus:9191"
    assert source["jsonData"]["timeInterval"] == "30s"


def test_provider_loads_the_mounted_dashboard_directory(providers):
    assert providers["apiVersion"] == 1
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    assert provider["folder"] == "E-commerce lab"
    assert provider["allowUiUpdates"] is False
    assert provider["options"]["foldersFromFilesStructure"] is False
    assert 10 <= provider["updateIntervalSeconds"] <= 300
    assert provider["options"]["path"] == os.path.dirname(grafana_mounts()["dashboards/ecommerce.json"])


def test_rendered_dashboard_is_the_static_file_and_uses_the_provisioned_uid(rendered_upstream, datasources):
    rendered = rendered_upstream / DASHBOARD
    assert rendered.read_bytes() == DASHBOARD_FILE.read_bytes()
    uids = {source["uid"] for source in datasources["datasources"]}
    dashboard = load_dashboard(rendered)
    for panel in query_panels(dashboard):
        assert panel["datasource"]["uid"] in uids, panel["title"]
        assert all(t["datasource"]["uid"] in uids for t in panel["targets"]), panel["title"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            assert variable["datasource"]["uid"] in uids, variable["name"]
