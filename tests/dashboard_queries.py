# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The PromQL of a Grafana dashboard, made runnable against Prometheus's HTTP API.

``dashboard_queries(path)`` returns ``[(panel_title, expr), ...]`` for every query target
of every panel (rows' nested panels included), in dashboard order, with Grafana's macros
replaced by plain PromQL:

* ``$__rate_interval`` and ``$__interval`` (also ``${...}``) become ``1m``, ``$__range`` ``30m``;
* a dashboard template variable (``$service``, ``${service}``, ``${service:regex}``,
  ``[[service]]``) becomes ``.*``, which is what the variable's "All" means. That is only
  valid inside a regex label matcher (``=~`` / ``!~``), so a variable anywhere else raises
  ``ValueError`` instead of producing a query that silently means something different.

Standard library only: the Molecule verifier can copy this file next to the dashboard and
run ``python3 dashboard_queries.py ecommerce.json`` to get the queries as JSON.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Iterator, List, Tuple, Union

BUILTIN_INTERVALS = {"__rate_interval": "1m", "__interval": "1m", "__range": "30m"}
ALL_VALUE = ".*"

# $name, ${name}, ${name:format}, [[name]] (the legacy form)
_VARIABLE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\$(\w+)|\[\[(\w+)(?::[^\]]*)?\]\]")
# a regex label matcher and its double-quoted value
_REGEX_MATCHER = re.compile(r'(=~|!~)(\s*)"((?:[^"\\]|\\.)*)"')


def iter_panels(panels: list) -> Iterator[dict]:
    """Every panel, depth first: a row's nested ``panels`` (collapsed rows) included."""
    for panel in panels or []:
        yield panel
        yield from iter_panels(panel.get("panels") or [])


def _variable_name(match: "re.Match[str]") -> str:
    return next(group for group in match.groups() if group)


def substitute(expr: str, variables: "set[str] | None" = None) -> str:
    """``expr`` with Grafana's interval macros and template variables replaced (see the module doc).

    ``variables`` are the dashboard's template variable names; ``None`` means any ``$name``
    that does not start with a digit (``"$1"`` in ``label_replace`` is not a variable).
    """

    def is_variable(name: str) -> bool:
        if name in BUILTIN_INTERVALS:
            return False
        return name in variables if variables is not None else not name[0].isdigit()

    def interval(match: "re.Match[str]") -> str:
        return BUILTIN_INTERVALS.get(_variable_name(match), match.group(0))

    def all_value(match: "re.Match[str]") -> str:
        return ALL_VALUE if is_variable(_variable_name(match)) else match.group(0)

    def in_matcher(match: "re.Match[str]") -> str:
        return f'{match.group(1)}{match.group(2)}"{_VARIABLE.sub(all_value, match.group(3))}"'

    expr = _REGEX_MATCHER.sub(in_matcher, _VARIABLE.sub(interval, expr))
    left = [name for name in map(_variable_name, _VARIABLE.finditer(expr)) if is_variable(name)]
    if left:
        raise ValueError(
            f"template variable(s) {left} outside a regex label matcher in {expr!r}: only "
            f"label=~\"$var\" can be given the All value {ALL_VALUE!r}")
    return expr


def dashboard_queries(path: Union[str, Path]) -> List[Tuple[str, str]]:
    """``[(panel_title, expr)]`` for every target with an ``expr``, runnable as plain PromQL."""
    dashboard = json.loads(Path(path).read_text(encoding="utf-8"))
    variables = {v.get("name") for v in (dashboard.get("templating") or {}).get("list", [])}
    queries = []
    for panel in iter_panels(dashboard.get("panels") or []):
        for target in panel.get("targets") or []:
            expr = target.get("expr")
            if expr:
                queries.append((panel.get("title", ""), substitute(expr, variables)))
    return queries


def main(argv: List[str]) -> int:
    if len(argv) != 2:
        print(f"usage: {argv[0]} DASHBOARD.json", file=sys.stderr)
        return 2
    print(json.dumps([{"panel": title, "expr": expr} for title, expr in dashboard_queries(argv[1])], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
