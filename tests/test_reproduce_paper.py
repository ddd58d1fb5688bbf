"""Smoke test of ``benchmarks/reproduce_paper.py --quick`` (figures, report, JSON)."""

import importlib.util
import json
import warnings
from pathlib import Path

import pytest
from sklearn.exceptions import ConvergenceWarning

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "reproduce_paper.py"


def _load():
    spec = importlib.util.spec_from_file_location("reproduce_paper", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_run_writes_three_figures_and_the_report(tmp_path):
    pytest.importorskip("matplotlib")
    pytest.importorskip("skimage")
    paper = _load()
    committed = [paper.DOCS / name for name in (*paper.FIGURES.values(), paper.REPORT)]
    before = {p: p.stat().st_mtime_ns for p in committed if p.exists()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        result = paper.main(["--quick", "--quiet", "--output", str(tmp_path)])

    for name in paper.FIGURES.values():
        assert (tmp_path / name).stat().st_size > 1000, name
    report = (tmp_path / paper.REPORT).read_text(encoding="utf-8")
    assert report == result["report"]
    for heading in ("## (i)", "## (ii)", "## (iii)", "## K=\"auto\"", "## Verdicts"):
        assert heading in report
    assert json.loads((tmp_path / "paper_claims.json").read_text())["jfb"]["rho"] > 0

    # (i): the error shrinks with K; ρ is the measured contraction factor.
    rows = result["jfb"]["rows"]
    assert 0.5 < result["jfb"]["rho"] < 0.9
    assert all(b["restarted"] < a["restarted"] for a, b in zip(rows, rows[1:]))
    # (iii): deterministic bytes: jfb flat in T, unrolled growing.
    memory = {(r["T"], r["mode"]): r["megabytes"] for r in result["memory"]["rows"]}
    Ts = sorted({T for T, _ in memory})
    assert memory[Ts[-1], "jfb"] == memory[Ts[0], "jfb"]
    assert memory[Ts[-1], "unrolled"] > 2 * memory[Ts[0], "unrolled"]
    # K="auto": the choice is recorded and the grid is complete.
    (problem,) = result["auto"]
    assert problem["auto"]["K_"] == problem["auto"]["selection"]["K"]
    assert len(problem["cells"]) == len(paper.QUICK["auto_Ks"]) * len(paper.QUICK["auto_Ts"]) + 1
    # A quick run never touches the committed figures and report.
    assert {p: p.stat().st_mtime_ns for p in committed if p.exists()} == before
