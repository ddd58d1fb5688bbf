"""End-to-end runs of the scikit-learn integration examples (their --quick mode).

``digits_pipeline.py`` (a frozen ReTune front end in a classifier pipeline),
``streaming_memmap.py`` (``partial_fit`` over memmaps) and
``search_on_dask.py`` (GridSearchCV on a local Dask cluster; skipped
without dask), each in a subprocess, as a user would run them.
"""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

pytestmark = pytest.mark.slow


def run_example(name, output, *extra):
    """Run ``examples/<name> --quick --output <output>``; return its stdout."""
    # PYTHONPATH: the scripts import the package of this checkout, not another installed copy.
    env = dict(os.environ, MPLBACKEND="Agg",
               PYTHONPATH=os.pathsep.join(filter(None, [str(EXAMPLES.parent),
                                                        os.environ.get("PYTHONPATH")])))
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), "--quick", "--output", str(output), *extra],
        check=False, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def read_table(path):
    """The markdown table of ``path``: header cells and the cells of each row."""
    lines = [line for line in path.read_text(encoding="utf-8").splitlines()
             if line.startswith("|")]
    assert len(lines) >= 3, lines
    assert set(lines[1].replace("|", "").replace("-", "").replace(":", "").strip()) == set()

    def cells(line):
        return [cell.strip() for cell in line.strip().strip("|").split("|")]
    return cells(lines[0]), [cells(line) for line in lines[2:]], "\n".join(lines)


def check_outputs(tmp_path, stem, stdout):
    png, md = tmp_path / f"{stem}.png", tmp_path / f"{stem}.md"
    assert png.is_file() and png.read_bytes()[:8] == PNG_MAGIC
    assert md.is_file()
    header, rows, table = read_table(md)
    assert table in stdout  # the same table is printed
    return header, rows


def test_digits_pipeline_quick(tmp_path):
    stdout = run_example("digits_pipeline.py", tmp_path)
    header, rows = check_outputs(tmp_path, "digits_pipeline", stdout)
    assert header == ["test images", "classifier trained on", "test accuracy",
                      "test PSNR (dB)"]
    assert len(rows) == 4
    images = [row[0] for row in rows]
    training = [row[1] for row in rows]
    accuracy = [float(row[2]) for row in rows]
    assert images[0] == "degraded" and training[0] == "degraded training images"
    assert images[-1] == "clean" and training[-1] == "clean training images"
    for name, trained_on in zip(images[1:3], training[1:3]):
        assert name.startswith("restored, ReTune") and "front end" in name
        assert "degraded training images" in trained_on and "frozen ReTune" in trained_on
    assert "Tikhonov" in images[1] and "TotalVariation" in images[2]
    degraded, restored, clean = accuracy[0], accuracy[1:3], accuracy[3]
    # The restoration front end helps the classifier (about +5 points with the
    # example's seeds), and the clean images remain the upper bound.
    for value in restored:
        assert value > degraded + 0.01, (degraded, restored)
        assert value < clean
    assert clean > 0.9 and degraded < 0.8  # the degradation hurts clearly
    # Restored images are closer to the clean ones than the degraded ones.
    psnrs = [float(row[3]) for row in rows[:3]]
    assert psnrs[1] > psnrs[0] and psnrs[2] > psnrs[0]
    assert rows[3][3] == "—"
    assert "tikhonov=" in stdout and "tv=" in stdout


def test_streaming_memmap_quick(tmp_path):
    data_dir = tmp_path / "data"
    stdout = run_example("streaming_memmap.py", tmp_path, "--data-dir", str(data_dir))
    header, rows = check_outputs(tmp_path, "streaming_memmap", stdout)
    assert header == ["pass", "pairs seen", "mean training loss", "test PSNR (dB)",
                      "wall time (s)"]
    assert [int(row[0]) for row in rows] == [1, 2]
    assert [int(row[1]) for row in rows] == [256, 512]
    # The memmaps were kept (--data-dir): two float32 files of 256 64×64 patches.
    for name in ("X.float32", "y.float32"):
        assert (data_dir / name).stat().st_size == 256 * 64 * 64 * 4
    noisy = float(stdout.split("Noisy input: ")[1].split(" dB")[0])
    psnrs = [float(row[3]) for row in rows]
    assert psnrs[-1] > noisy + 1  # denoising works after two streamed passes
    assert stdout.count("partial_fit calls") == 2


def test_streaming_memmap_removes_its_temporary_files(tmp_path):
    # Without --data-dir the memmaps go to a temporary directory, deleted at the end.
    stdout = run_example("streaming_memmap.py", tmp_path, "--chunk", "128")
    memmap_path = Path(stdout.split(" to ")[1].split(" and ")[0])
    assert memmap_path.name == "X.float32"
    assert not memmap_path.parent.exists()
    assert "2 partial_fit calls" in stdout  # 256 pairs in chunks of 128


@pytest.mark.skipif(any(importlib.util.find_spec(name) is None
                        for name in ("dask", "distributed")),
                    reason="needs dask and distributed")
def test_search_on_dask_quick(tmp_path):
    stdout = run_example("search_on_dask.py", tmp_path)
    header, rows = check_outputs(tmp_path, "search_on_dask", stdout)
    assert header == ["K", "T", "mean test PSNR, dask (dB)", "mean test PSNR, n_jobs=1 (dB)",
                      "rank"]
    assert [(int(row[0]), int(row[1])) for row in rows] == [(2, 1), (2, 2), (5, 1), (5, 2)]
    for row in rows:
        assert row[2] == row[3]  # dask and sequential agree
    assert sorted(int(row[4]) for row in rows) == [1, 2, 3, 4]
    assert "Same best_params_: True; identical mean_test_score: True" in stdout
    assert "LocalCluster of 2 worker processes" in stdout
