"""Fit time of the default denoising fit: this tree against the version before the
equilibrium engine, same data, one torch thread.

Usage::

    git worktree add /tmp/first-version 9486283    # the tree before the solver layer
    python benchmarks/bench_fit_time.py --baseline-tree /tmp/first-version
    python benchmarks/bench_fit_time.py --baseline-tree /tmp/first-version --problems
    python benchmarks/bench_fit_time.py --baseline-tree /tmp/first-version --quick

Each fit runs in a fresh subprocess whose ``PYTHONPATH`` is one source tree, on
the same data (``make_image_problem(None, noise_sigma=0.1, random_state=0)``:
32 training and 32 test 64×64 patches, training and test from different
photos; one batch per epoch), after one untimed 2-sample warm-up fit (a
process's first fit pays one-off imports: ~4 s of CPU for torch._dynamo in this
tree), with ``torch.set_num_threads(1)`` in both (the
first version's ``n_threads=None`` default would leave torch's two threads,
several times slower here: that part of the speed-up is excluded). Rows:

* ``ReTuneRegularizer()``: each version's defaults (first version: WaveletL1
  per subband, ``loss="mse"``, ``K=10, T=10`` = a fixed budget of 100 plain
  steps per solve, 30 epochs; now: Neumann TV, ``loss="psnr"``,
  ``K="auto"``, solves to ``solve_tol=1e-4`` with T=100 a cap, 10 epochs);
* the first version's default *model* (``regularizer="wavelet", loss="mse",
  K=10, max_epochs=30``) in both trees: the engine alone.

Columns: test PSNR, process CPU seconds of fit + predict in the child, and
the ratio baseline CPU / this tree's CPU. The report is printed and written
to ``OUTPUT/fit_time.md``; a full run also refreshes the committed
``benchmarks/fit_time.md``.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from bench_problems import PROBLEMS, TV_AUTO_SUFFIX, publish  # noqa: E402  (shared with it)
OUTPUT_DIR = HERE / "output"
COMMITTED = HERE / "fit_time.md"

# (label, keyword arguments of ReTuneRegularizer as Python source)
FITS = [
    ("ReTuneRegularizer() (each version's defaults)", ""),
    ("first version's default model: regularizer='wavelet', loss='mse', K=10, max_epochs=30",
     "regularizer='wavelet', loss='mse', K=10, max_epochs=30"),
]

# Run in the child: one fit + predict, timed by process CPU time; prints JSON.
CHILD = """
import json, sys, time, warnings
import torch
torch.set_num_threads(1)
from retune_sklearn import ReTuneRegularizer
from retune_sklearn.datasets import make_image_problem
from retune_sklearn.metrics import psnr
n = {n}
X_train, X_test, y_train, y_test = make_image_problem(
    None, noise_sigma=0.1, patch_size=64, n_train=n, n_test=n, random_state=0)
est = ReTuneRegularizer({kwargs})
if {quick}:
    est.set_params(max_epochs=1)
warnings.simplefilter("ignore")
# Untimed warm-up: a process's first fit pays one-off imports and initialization.
ReTuneRegularizer({kwargs}).set_params(max_epochs=1).fit(X_train[:2], y_train[:2])
start = time.process_time()
est.fit(X_train, y_train)
prediction = est.predict(X_test)
cpu = time.process_time() - start
print(json.dumps(dict(psnr=psnr(y_test, prediction), cpu=cpu, K=getattr(est, "K_", est.K),
                      T=est.T,
                      epochs=est.max_epochs,
                      regularizer=type(est.regularizer_).__name__)))
"""


# Runs a tree's bench_problems.py after importing what torch imports on the first
# optimizer of a process (torch._dynamo: seconds of CPU), which would otherwise be
# charged to whichever model that run fits first (as the warm-up fit does above).
PROBLEMS_RUNNER = """
import runpy, sys
import torch._dynamo
sys.argv = ["benchmarks/bench_problems.py"] + sys.argv[1:]
runpy.run_path("benchmarks/bench_problems.py", run_name="__main__")
"""


def run_fit(tree, kwargs, n, quick):
    """The child's JSON result for one source tree."""
    env = dict(os.environ, PYTHONPATH=str(tree), OMP_NUM_THREADS="1")
    code = CHILD.format(n=n, kwargs=kwargs, quick=quick)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, check=True, cwd=tree)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _retune_rows(markdown):
    """{(problem title, ReTune model): (test PSNR, CPU s)} from a problems.md report."""
    rows, title = {}, None
    for line in markdown.splitlines():
        if line.startswith("## "):
            title = line[3:].strip()
        elif line.startswith("| ReTune"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            # This tree's labels may end with a note: " (ConvergenceWarning)".
            method = cells[0].split(" (ConvergenceWarning)")[0].split(" (diverged")[0]
            rows[title, method] = (float(cells[2]), float(cells[4]))
    return rows


def problems_table(baseline_tree, quick):
    """``bench_problems.py`` run in both trees (same models and data); a ratio table.

    One problem at a time, the two trees back to back, so that a change of the
    machine's load during the run (minutes per problem) biases few ratios.
    """
    import tempfile

    results = {"baseline": {}, "this tree": {}}
    for problem in PROBLEMS:
        for name, tree in (("baseline", baseline_tree), ("this tree", ROOT)):
            with tempfile.TemporaryDirectory() as out:
                command = [sys.executable, "-c", PROBLEMS_RUNNER, "--output", out,
                           "--problems", problem]
                subprocess.run(command + (["--quick"] if quick else []), cwd=tree, check=True,
                               env=dict(os.environ, PYTHONPATH=str(tree)), capture_output=True)
                results[name].update(_retune_rows((Path(out) / "problems.md").read_text()))
    lines = ["| problem | ReTune model | test PSNR before → now (dB) | CPU before → now (s) | "
             "CPU before / now |", "|---|---|---:|---:|---:|"]
    for (title, method), (psnr_new, cpu_new) in results["this tree"].items():
        # A TV row with n_inner="auto" is compared with the first version's TV row (its
        # 20 inner iterations, the hyperparameters otherwise the same).
        before = results["baseline"].get((title, method.removesuffix(TV_AUTO_SUFFIX)))
        if before is None:
            continue
        psnr_old, cpu_old = before
        lines.append(f"| {title.split(',')[0]} | {method} | {psnr_old:.2f} → {psnr_new:.2f} | "
                     f"{cpu_old:.1f} → {cpu_new:.1f} | {cpu_old / cpu_new:.1f}× |")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline-tree", type=Path, required=True,
                        help="a checkout of the version to compare against")
    parser.add_argument("--quick", action="store_true", help="8 patches, 1 epoch")
    parser.add_argument("--problems", action="store_true",
                        help="also run benchmarks/bench_problems.py in both trees")
    parser.add_argument("--output", type=Path, default=OUTPUT_DIR)
    args = parser.parse_args(argv)
    n = 8 if args.quick else 32
    lines = ["| fit | tree | model | test PSNR (dB) | CPU fit+predict (s) | "
             "CPU baseline / this tree |", "|---|---|---|---:|---:|---:|"]
    for label, kwargs in FITS:
        old = run_fit(args.baseline_tree.resolve(), kwargs, n, args.quick)
        new = run_fit(ROOT, kwargs, n, args.quick)
        for tree, result in (("baseline", old), ("this tree", new)):
            model = f"{result['regularizer']}, K={result['K']}, T={result['T']}, " \
                    f"{result['epochs']} epochs"
            ratio = f"{old['cpu'] / new['cpu']:.1f}×" if tree == "this tree" else "—"
            lines.append(f"| {label} | {tree} | {model} | {result['psnr']:.2f} | "
                         f"{result['cpu']:.1f} | {ratio} |")
        print(lines[-2], lines[-1], sep="\n", file=sys.stderr, flush=True)
    command = ("python benchmarks/bench_fit_time.py --baseline-tree /tmp/first-version"
               + (" --problems" if args.problems else "") + (" --quick" if args.quick else ""))
    report = "\n".join([
        "# Fit time: this tree against the version before the equilibrium engine", "",
        f"Command: `{command}` (baseline: `git worktree add /tmp/first-version 9486283`), "
        f"{n} training / {n} test 64×64 patches, denoising σ = 0.1, one torch thread in "
        f"both, {platform.machine()}, a shared 2-core machine (CPU times).", "",
        *lines, ""])
    if args.problems:
        report += "\n".join([
            "", "## The models of `benchmarks/bench_problems.py`, same data", "",
            "Each tree's own `bench_problems.py` (the same models, hyperparameters and data; "
            "this tree solves to `solve_tol=1e-4` with FISTA restarts and reuses iterates, "
            "the baseline runs the fixed budget T·K). CPU: fit on the training set + "
            "predict on the test set, as reported by each run (one problem at a time, the "
            "two trees back to back; torch's one-off import of torch._dynamo done before "
            "each run starts). Rows ending "
            f"`{TV_AUTO_SUFFIX.lstrip(', ')}`: this tree's TV with its default inner "
            "iterations (5 in these iterative solves) against the baseline's TV row (its "
            "default 20), all else equal.", "",
            *problems_table(args.baseline_tree.resolve(), args.quick), ""])
    publish(report, args.output, COMMITTED, not args.quick)
    return report


if __name__ == "__main__":
    main()
