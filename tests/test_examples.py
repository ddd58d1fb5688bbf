"""End-to-end smoke test of the example scripts (their --quick mode)."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("skimage")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
# The scripts import the package of this checkout, not another installed copy.
ENV = dict(os.environ, MPLBACKEND="Agg",
           PYTHONPATH=os.pathsep.join(filter(None, [str(EXAMPLES.parent),
                                                    os.environ.get("PYTHONPATH")])))


@pytest.mark.slow
def test_demo_denoising_quick(tmp_path):
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "demo_denoising.py"), "--quick",
         "--output", str(tmp_path)],
        capture_output=True, text=True, timeout=600, env=ENV)
    assert result.returncode == 0, result.stdout + result.stderr

    png = tmp_path / "demo_denoising.png"
    md = tmp_path / "demo_denoising.md"
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert md.is_file()

    table = [line for line in md.read_text(encoding="utf-8").splitlines()
             if line.startswith("|")]
    assert table[0].replace(" ", "") == "|method|testPSNR(dB)|walltime(s)|"
    rows = table[2:]
    assert len(rows) == 5
    methods = [row.split("|")[1].strip() for row in rows]
    assert methods[0] == "noisy input"
    assert "BayesShrink" in methods[1]
    assert "GridSearchCV" in methods[2] and "λ" in methods[2]
    assert methods[3].startswith("ReTune") and methods[4].startswith("ReTune")
    scores = [float(row.split("|")[2]) for row in rows]  # a PSNR value in every row
    # Issue 11: even the quick run's learned models end well above the noisy input.
    assert min(scores[3:]) >= scores[0] + 5.0, scores
    # The same table is printed, with the learned weights and the residual.
    assert "\n".join(table) in result.stdout
    assert "Fixed-point residual" in result.stdout
    assert "h3=" in result.stdout and "d1=" in result.stdout


def test_k_and_t_example_quick(tmp_path):
    script = EXAMPLES / "k_and_t.py"
    result = subprocess.run([sys.executable, str(script), "--quick", "--output", str(tmp_path)],
                            capture_output=True, text=True, timeout=300, env=ENV)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "k_and_t.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result.stdout.count("test PSNR") == 4  # the 2×2 grid


@pytest.mark.parametrize("name", ["demo_denoising", "digits_pipeline", "k_and_t"])
def test_examples_take_a_threads_option(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.parse_args([]).threads == 1  # one torch thread by default
    assert module.parse_args(["--threads", "0"]).threads == 0  # 0: torch's default
    with pytest.raises(SystemExit):
        module.parse_args(["--threads", "-1"])
