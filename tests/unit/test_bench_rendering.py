"""The pure parts of bench/rendering.py: the generated repository and the docs table."""

from __future__ import annotations

import json
from pathlib import Path

from bench import rendering

RESULTS = json.loads((Path(__file__).resolve().parents[2]
                      / "bench/results/2026-12-07-rendering.json").read_text())


def test_the_generated_repository_has_10_charts_and_31_applications(tmp_path: Path) -> None:
    root = rendering._charts(tmp_path)
    charts = sorted(p.parent.name for p in root.glob("charts/*/Chart.yaml"))
    assert charts == [f"service-{i:02d}" for i in range(10)]
    templates = {p.name for p in (root / "charts/service-00/templates").iterdir()}
    assert templates == {"_helpers.tpl", "deployment.yaml", "service.yaml", "configmap.yaml",
                         "hpa.yaml", "networkpolicy.yaml", "serviceaccount.yaml"}
    apps = [json.loads(p.read_text()) for p in sorted((root / "argocd").glob("*.yaml"))]
    assert len(apps) == 31
    inputs = [json.dumps([a["spec"]["source"], a["spec"]["destination"]], sort_keys=True)
              for a in apps]
    assert len(set(inputs)) == 30  # the mirror repeats one Application's exact inputs


def test_markdown_has_a_row_per_repository_with_its_load_average() -> None:
    table = rendering.markdown(RESULTS).splitlines()
    assert len(table) == 2 + len(RESULTS["repositories"])
    assert table[0].count("|") == table[1].count("|") == table[2].count("|")
    charts = next(row for row in table if row.startswith("| charts-10x3 |"))
    entry = next(e for e in RESULTS["repositories"] if e["repository"] == "charts-10x3")
    assert f"{entry['median_serial_s']:.3f}" in charts
    assert f"{min(entry['load_1m']):.2f} to {max(entry['load_1m']):.2f}" in charts
