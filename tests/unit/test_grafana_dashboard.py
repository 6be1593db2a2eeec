"""The Grafana dashboard (`deploy/grafana/audience-webhooks.json`, issue 23): a dashboard
Grafana can import, with a panel for each thing an operator watches, whose PromQL names only
metrics the code defines (the integration test `test_operations` checks them against a real
worker's `/metrics` too)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from app.transport import metrics
from tests.support.dashboard import exposed_names, exprs, used_metrics

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "audience-webhooks.json"


def dashboard() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return doc


def test_every_metric_the_dashboard_uses_is_one_the_code_defines() -> None:
    defined = exposed_names(metrics.exposition().decode())
    used = used_metrics(dashboard())
    assert used, "the dashboard names no metric"
    assert used <= defined, f"not defined by app/transport/metrics.py: {sorted(used - defined)}"


def test_the_dashboard_has_a_panel_for_each_thing_an_operator_watches() -> None:
    titles = {p["title"] for p in dashboard()["panels"] if p["type"] != "row"}
    wanted = {
        "Input lag",
        "Routed / s",
        "Delivered events / s per job",
        "Omitted events / s per job (dead-lettered)",
        "Failed requests / s per job",
        "Retries / s per job",
        "Job states",
        "Request latency",
        "Backlog per job",
        "Workers alive",
    }
    assert wanted <= titles, sorted(wanted - titles)
    latency = next(p for p in dashboard()["panels"] if p["title"] == "Request latency")
    assert any("histogram_quantile" in t["expr"] for t in latency["targets"])


def test_panels_are_well_formed_for_grafana() -> None:
    doc = dashboard()
    assert doc["uid"] and doc["title"] and doc["schemaVersion"] >= 36
    panels = doc["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    for p in panels:
        grid = p["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, p["title"]
        if p["type"] != "row":
            assert p["targets"] and all(t.get("expr") for t in p["targets"]), p["title"]
            assert p["datasource"]["uid"] == "${datasource}", p["title"]
    names = {v["name"] for v in doc["templating"]["list"]}
    assert {"datasource", "job"} <= names
    assert all("$job" in e or "job_id" not in e for e in exprs(doc) if "label_values" not in e)


def test_exposed_names_reads_type_lines() -> None:
    text = "# HELP a_total x\n# TYPE a_total counter\na_total 1.0\n# TYPE h histogram\n"
    assert exposed_names(text) == {"a_total", "h", "h_bucket", "h_sum", "h_count"}
