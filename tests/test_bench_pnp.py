"""Smoke tests of ``benchmarks/bench_pnp.py --quick`` and ``bench_pnp_deblur.py --quick``."""

import importlib.util
import math
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_pnp.py"


def test_quick_run_reports_both_problems_and_the_grid(tmp_path):
    pytest.importorskip("skimage")
    pytest.importorskip("threadpoolctl")
    spec = importlib.util.spec_from_file_location("bench_pnp", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    committed = BENCH.parent / "pnp.md"
    before = committed.read_bytes() if committed.exists() else None

    result = bench.main(["--quick", "--quiet", "--output", str(tmp_path)])

    report = (tmp_path / "pnp.md").read_text(encoding="utf-8")
    assert report == result["report"]
    assert "## Denoising" in report and "## Deblurring" in report
    for rows in (result["denoising"], result["deblurring"]):
        methods = [row["method"] for row in rows]
        assert any(m.startswith("ReTune TotalVariation") for m in methods)
        assert sum(m.startswith("PnP") for m in methods) >= 2
        assert all(math.isfinite(row["psnr"]) for row in rows)
    comparison = result["comparison"]
    assert math.isfinite(comparison["learned_train"]) and len(comparison["scores"]) == 1
    # A quick run never overwrites the committed report.
    assert (committed.read_bytes() if committed.exists() else None) == before


def test_quick_deblurring_run_has_tv_and_three_rows_per_denoiser():
    pytest.importorskip("skimage")
    pytest.importorskip("threadpoolctl")
    path = BENCH.parent / "bench_pnp_deblur.py"
    spec = importlib.util.spec_from_file_location("bench_pnp_deblur", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    committed = BENCH.parent / "pnp_deblur.md"
    before = committed.read_bytes() if committed.exists() else None

    rows = [line for line in bench.main(["--quick"]).splitlines() if line.startswith("| ")]

    assert rows[1].startswith("| ReTune TotalVariation()")
    pnp = [row.split(" | ") for row in rows[2:]]
    assert len(pnp) == 3 * len(bench.QUICK_DENOISERS)
    assert [row[1].split(",")[0] for row in pnp[:3]] == ["frozen", "frozen", "fine-tuned 1 epochs"]
    assert all(math.isfinite(float(row[4])) for row in pnp)
    assert (committed.read_bytes() if committed.exists() else None) == before
