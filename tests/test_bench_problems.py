"""Smoke test of ``benchmarks/bench_problems.py --quick`` (a few seconds)."""

import importlib.util
import math
import re
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_problems.py"


def _load_benchmark():
    spec = importlib.util.spec_from_file_location("bench_problems", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tables(report):
    """Markdown tables of the report: lists of rows, each a list of cells."""
    tables, current = [], None
    for line in report.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if current is None:
                current = []
                tables.append(current)
            current.append(cells)
        else:
            current = None
    return tables


def test_quick_run_has_one_table_per_problem(tmp_path):
    pytest.importorskip("skimage")
    pytest.importorskip("threadpoolctl")
    bench = _load_benchmark()
    committed = BENCH.parent / "problems.md"
    before = committed.read_bytes() if committed.exists() else None

    result = bench.main(["--quick", "--quiet", "--output", str(tmp_path)])

    report = (tmp_path / "problems.md").read_text(encoding="utf-8")
    assert report == result["report"]
    # One section and one table per problem, in order.
    titles = re.findall(r"^## (.+)$", report, flags=re.MULTILINE)
    assert titles == [bench.TITLES[p] for p in bench.PROBLEMS]
    tables = _tables(report)
    assert len(tables) == len(bench.PROBLEMS)
    for problem, table in zip(bench.PROBLEMS, tables):
        header, body = table[0], table[2:]
        assert header[:3] == ["method", "hyperparameters", "test PSNR (dB)"]
        psnr_column = header.index("test PSNR (dB)")
        methods = [row[0] for row in body]
        # Every problem has at least one baseline and one ReTune row per model.
        assert sum(m.startswith("ReTune") for m in methods) == len(bench.MODELS[problem])
        assert any(not m.startswith("ReTune") for m in methods)
        for row in body:
            assert math.isfinite(float(row[psnr_column])), (problem, row)
        # ReTune rows report their residual, finite and non-negative.
        for row in body:
            if row[0].startswith("ReTune"):
                assert float(row[-1]) >= 0
    for problem in bench.PROBLEMS:
        for row in result["results"][problem]["rows"]:
            assert math.isfinite(row["psnr"])
            if row["kind"] == "retune":
                assert row["wall"] > 0 and math.isfinite(row["residual"])
    assert "Verdict" in report
    # A quick run never overwrites the committed table.
    after = committed.read_bytes() if committed.exists() else None
    assert after == before


def test_problem_subset_and_bad_name(tmp_path, capsys):
    pytest.importorskip("skimage")
    bench = _load_benchmark()
    result = bench.main(["--quick", "--quiet", "--problems", "compressed-sensing",
                         "--output", str(tmp_path)])
    assert list(result["results"]) == ["compressed-sensing"]
    assert len(_tables((tmp_path / "problems.md").read_text(encoding="utf-8"))) == 1
    with pytest.raises(SystemExit):
        bench.main(["--quick", "--problems", "denoising,nope", "--output", str(tmp_path)])
    assert "nope" in capsys.readouterr().err
