"""The README's account of the shipped model quotes the numbers shipped beside it (update both together)."""

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
METRICS = ROOT / "dive_pyro" / "pretrained" / "tiny-cpu" / "metrics.json"


def _demo_paragraph() -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(r"\*\*What the demo shows\.\*\*(.*?)\n\n", text, re.S)
    assert match, "README lost its 'What the demo shows' paragraph"
    return " ".join(match.group(1).split())


def test_readme_quotes_the_shipped_metrics():
    metrics = json.loads(METRICS.read_text())
    model = next(v for k, v in metrics.items() if k.startswith("DIVE tiny-cpu"))
    copy, zeros = metrics["copy-last"], metrics["zeros"]
    text = _demo_paragraph()
    quoted = (
        f"Rec-missing MSE is {model['rec_missing']['mse']:.1f} against {copy['rec_missing']['mse']:.1f} for copy-last "
        f"and {zeros['rec_missing']['mse']:.1f} for zeros",
        f"Pred MSE {model['pred']['mse']:.1f} against {copy['pred']['mse']:.1f} for copy-last and "
        f"{zeros['pred']['mse']:.1f} for zeros",
    )
    for phrase in quoted:
        assert phrase in text, phrase
    assert model["rec_missing"]["mse"] < copy["rec_missing"]["mse"]  # "imputes" is only said while true


def test_readme_quotes_the_calibrated_models_metrics():
    path = ROOT / "dive_pyro" / "pretrained" / "tiny-cpu-calibrated" / "metrics.json"
    model = next(v for k, v in json.loads(path.read_text()).items() if k.startswith("DIVE tiny-cpu-calibrated"))
    text = " ".join((ROOT / "README.md").read_text().split())
    assert f"Rec-missing / Pred MSE {model['rec_missing']['mse']:.2f} / {model['pred']['mse']:.2f}" in text


def test_readme_quotes_the_committed_table1_at_cpu_scale():
    """The README's Table-1 section holds the table `collect` wrote (benchmarks/results/table1/readme_table.md,
    made from table1.json), and that table has every finished scenario's DIVE and DDPAE MSE."""
    results = ROOT / "benchmarks" / "results" / "table1"
    table = json.loads((results / "table1.json").read_text())
    quoted = (results / "readme_table.md").read_text().strip()
    text = (ROOT / "README.md").read_text()
    match = re.search(r"### Table 1 at CPU scale(.*?)\n## ", text, re.S)
    assert match, "README lost its 'Table 1 at CPU scale' section"
    assert quoted in match.group(1), "README's Table-1 table differs from readme_table.md: paste it again"
    for scenario, data in table.items():
        columns = data.get("columns") or {}
        dive = next((v for k, v in columns.items() if k.startswith("DIVE (n=")), None)
        ddpae = next((v for k, v in columns.items() if k.startswith("DDPAE (n=")), None)
        if dive is None or ddpae is None:
            continue
        for g in ("rec", "rec_missing", "pred"):
            for c in (dive, ddpae):
                assert f"{c[f'{g}_mse']['mean']:.2f}" in quoted, (scenario, g)
