"""deploy/grafana/ovbench.json: an importable Grafana dashboard whose every query names only
series that the app's /metrics really has (after real jobs ran), and that PromQL accepts."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.api.conftest import running_settings
from tests.api.test_metrics import PROMTOOL_INSTALL, metrics_of_real_jobs

DASHBOARD = Path(__file__).resolve().parent.parent / "deploy" / "grafana" / "ovbench.json"
DATASOURCE = "${DS_PROMETHEUS}"
# The series the dashboard is built on (issue 12): each has a panel.
REQUIRED = {
    "ovbench_jobs",
    "ovbench_queue_depth",
    "ovbench_worker_up",
    "ovbench_worker_busy",
    "ovbench_job_duration_seconds_bucket",
    "ovbench_jobs_finished_total",
    "ovbench_job_failures_total",
    "ovbench_last_throughput_fps",
    "ovbench_last_latency_seconds",
    "ovbench_last_result_timestamp_seconds",
    "ovbench_sweeps",
    "ovbench_hosts",
    "ovbench_host_up",
    "ovbench_host_queue_depth",
}
# PromQL words that read like metric names: binary operators, modifiers, grouping keywords.
KEYWORDS = {
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "inf",
    "nan",
}
IDENTIFIER = re.compile(r"(?<![\w.$])[a-zA-Z_:][a-zA-Z0-9_:]*")


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    body: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return body


def all_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside collapsed rows too."""
    for panel in panels:
        yield panel
        yield from all_panels(panel.get("panels", []))


def exprs(dashboard: dict[str, Any]) -> list[str]:
    return [
        target["expr"]
        for panel in all_panels(dashboard["panels"])
        for target in panel.get("targets", [])
    ]


def variable_queries(dashboard: dict[str, Any]) -> list[str]:
    """The metric selector of each `label_values(<selector>, <label>)` variable."""
    selectors = []
    for variable in dashboard["templating"]["list"]:
        query = variable["query"]["query"]
        found = re.fullmatch(r"label_values\((.+),\s*\w+\)", query)
        assert found, f"variable {variable['name']}: {query}"
        selectors.append(found.group(1))
    return selectors


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects: identifiers that are not inside strings,
    label matchers, ranges or grouping label lists, not a function or aggregation (followed
    by an opening parenthesis) and not a keyword."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^{}]*\}", " ", text)
    text = re.sub(r"\[[^\[\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", " ", text)
    names = set()
    for found in IDENTIFIER.finditer(text):
        if text[found.end() :].lstrip().startswith("(") or found.group() in KEYWORDS:
            continue
        names.add(found.group())
    return names


def test_metric_names_are_read_from_promql_as_a_parser_would() -> None:
    expr = (
        '60 * sum by (status, le) (rate(ovbench_jobs_finished_total{status=~"fail|by"}[5m])) '
        "/ on (job) group_left (instance) max(up) or time() - ovbench_x_seconds offset 5m"
    )
    assert metric_names(expr) == {"ovbench_jobs_finished_total", "up", "ovbench_x_seconds"}
    assert metric_names("histogram_quantile(0.9, sum(rate(a_bucket[5m])) by (le))") == {"a_bucket"}


def test_the_dashboard_is_a_grafana_import_with_a_prometheus_input(
    dashboard: dict[str, Any],
) -> None:
    assert dashboard["title"] == "ovbench" and dashboard["uid"] == "ovbench"
    assert isinstance(dashboard["schemaVersion"], int) and dashboard["schemaVersion"] >= 36
    assert dashboard["id"] is None  # Grafana assigns it on import
    [source] = dashboard["__inputs"]
    assert (source["name"], source["type"], source["pluginId"]) == (
        "DS_PROMETHEUS",
        "datasource",
        "prometheus",
    )
    users = [
        *all_panels(dashboard["panels"]),
        *dashboard["templating"]["list"],
    ]
    for user in users:
        if user.get("type") == "row":
            continue
        assert user["datasource"] == {"type": "prometheus", "uid": DATASOURCE}, user["title"]
        for target in user.get("targets", []):
            assert target["datasource"]["uid"] == DATASOURCE and target["refId"]
    required = {r["id"] for r in dashboard["__requires"]}
    kinds = {p["type"] for p in all_panels(dashboard["panels"]) if p["type"] != "row"}
    assert {"grafana", "prometheus"} | kinds <= required


def test_panels_have_unique_ids_and_places_that_do_not_overlap(
    dashboard: dict[str, Any],
) -> None:
    panels = list(all_panels(dashboard["panels"]))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)) and all(isinstance(i, int) for i in ids)
    cells: dict[tuple[int, int], str] = {}
    for panel in panels:
        grid = panel["gridPos"]
        assert set(grid) == {"x", "y", "w", "h"}, panel["title"]
        assert grid["w"] > 0 and grid["h"] > 0 and grid["x"] >= 0 and grid["y"] >= 0
        assert grid["x"] + grid["w"] <= 24, panel["title"]  # Grafana's grid is 24 wide
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]
        if panel["type"] != "row":
            assert panel["title"] and panel["targets"], panel["title"]


def test_every_query_names_only_series_of_a_real_metrics_output(
    dashboard: dict[str, Any], tiny_model: Path, tmp_path: Path
) -> None:
    """Sample names (`_total`, `_bucket` included, as Prometheus stores them) of the app's
    /metrics after real jobs: a query of a name the app does not expose would draw nothing."""
    settings = running_settings(tmp_path, {"CPU": 1.0, "UNKNOWN": 1.0})
    text = metrics_of_real_jobs(settings, tiny_model, tmp_path)
    exposed = {
        sample.name for family in text_string_to_metric_families(text) for sample in family.samples
    }
    used: set[str] = set()
    for expr in exprs(dashboard) + variable_queries(dashboard):
        names = metric_names(expr)
        assert names, f"no metric in {expr!r}"
        assert names <= exposed, f"{expr!r} names {sorted(names - exposed)}, not in /metrics"
        used |= names
    assert used >= REQUIRED, f"no panel for {sorted(REQUIRED - used)}"


def test_promql_accepts_every_query(dashboard: dict[str, Any], tmp_path: Path) -> None:
    """Each query as a recording rule, parsed by promtool (Prometheus's own PromQL parser)."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail(f"promtool is missing; the setup installs it: {PROMTOOL_INSTALL}")
    queries = exprs(dashboard) + variable_queries(dashboard)
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query_{i}", "expr": query}
                    for i, query in enumerate(queries)
                ],
            }
        ]
    }
    path = tmp_path / "rules.json"  # JSON is YAML
    path.write_text(json.dumps(rules), encoding="utf-8")
    checked = subprocess.run(
        [promtool, "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(queries)} rules found" in checked.stdout + checked.stderr
