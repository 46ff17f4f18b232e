#!/usr/bin/env python3
"""Checks deploy/grafana/manifold.json beyond "it is JSON": every panel query is PromQL that
promtool parses (Grafana's variables replaced by values of the right kind), every variable a
query uses is defined, panel ids are unique and panels do not overlap on the 24-column grid.
Which metric names the queries use is checked against a live /metrics by
tests/e2e/monitoring.rs.

Usage: python3 deploy/grafana/check_dashboard.py [PROMTOOL]   (exit 0 or 1)
"""

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

DASHBOARD = Path(__file__).resolve().parent / "manifold.json"
# Grafana's own variables, by what they stand for.
BUILTIN = {"__rate_interval": "1m", "__interval": "1m", "__range": "1h"}
VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)(?::\w+)?\}")


def panels(dashboard):
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def substitute(expr, defined, problems, where):
    def value(match):
        name = match.group(1) or match.group(2)
        if name in BUILTIN:
            return BUILTIN[name]
        if name not in defined:
            problems.append(f"{where}: ${name} is not a dashboard variable")
        # Dashboard variables stand in label matchers (multi-value: a regex).
        return ".*"
    return VARIABLE.sub(value, expr)


def overlaps(a, b):
    return (a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"]
            and a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"])


def main():
    promtool = sys.argv[1] if len(sys.argv) > 1 else "promtool"
    dashboard = json.loads(DASHBOARD.read_text())
    defined = {v["name"] for v in dashboard["templating"]["list"]}
    problems, rules, ids, placed = [], [], set(), []
    for panel in panels(dashboard):
        where = f"panel {panel.get('id')} ({panel.get('title')!r})"
        if panel.get("id") in ids:
            problems.append(f"{where}: id used twice")
        ids.add(panel.get("id"))
        grid = panel["gridPos"]
        if grid["x"] + grid["w"] > 24:
            problems.append(f"{where}: wider than the grid")
        for other_where, other in placed:
            if overlaps(grid, other):
                problems.append(f"{where} overlaps {other_where}")
        placed.append((where, grid))
        if panel["type"] == "row":
            continue
        if panel.get("datasource", {}).get("uid") != "${datasource}":
            problems.append(f"{where}: not on the $datasource variable")
        if not panel.get("targets"):
            problems.append(f"{where}: no query")
        for target in panel.get("targets", []):
            expr = substitute(target["expr"], defined, problems, where)
            rules.append({"record": f"dashboard:panel{panel['id']}:{target['refId']}",
                          "expr": expr})
    with tempfile.NamedTemporaryFile("w", suffix=".yml") as f:
        # promtool reads YAML; JSON is YAML.
        json.dump({"groups": [{"name": "dashboard", "rules": rules}]}, f)
        f.flush()
        checked = subprocess.run([promtool, "check", "rules", f.name],
                                 capture_output=True, text=True)
        if checked.returncode != 0:
            problems.append("promtool check rules on the panel queries:\n"
                            + checked.stdout + checked.stderr)
    for problem in problems:
        print(f"FAIL: {problem}", file=sys.stderr)
    print(f"dashboard: {len(rules)} queries in {len(ids)} panels, "
          + ("ok" if not problems else f"{len(problems)} problems"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
