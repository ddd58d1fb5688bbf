"""``ReTuneRegularizer(operator=A)``, nothing else set, against the tools a user would pick.

Usage::

    python benchmarks/bench_defaults.py            # full run (~25 min CPU, one thread)
    python benchmarks/bench_defaults.py --quick    # smoke run (tiny sizes, 1 epoch)
    python benchmarks/bench_defaults.py --output DIR   # default benchmarks/output

Data and baselines: those of ``bench_problems.py`` (``FULL``: 96 training and
48 test 64×64 grayscale patches, training and test cut from *different*
scikit-image photos, ``make_image_problem(random_state=0)``) on denoising
(σ = 0.1), deblurring (Gaussian blur σ = 1.5, noise 0.01) and inpainting
(half the pixels kept, noise 0.01). The baselines get the same knowledge
(noise level, kernel, mask); those with a free parameter choose it on the
training pairs.

ReTune rows: the estimator with only ``operator=`` (and ``random_state=0``)
set, i.e. the package's defaults at the time of the run; the first version's
defaults spelled out (``regularizer="wavelet", loss="mse", K=10``); and the
defaults plus ``adaptive_weights="detail"``. Columns: test PSNR, its margin
over the best non-ReTune method of the table, and process CPU seconds of fit
(on the training set) + predict (on the test set), one torch thread on a
shared 2-core machine (compare ratios, not seconds).

The report is printed and written to ``OUTPUT/defaults.md``; a full run also
refreshes the committed ``benchmarks/defaults.md``.
"""

import argparse
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench_problems as P  # noqa: E402  (data, baselines and helpers of the benchmark split)

OUTPUT_DIR = HERE / "output"
COMMITTED = HERE / "defaults.md"
PROBLEMS = ("denoising", "deblurring", "inpainting")

# (label, parameters beyond operator= and random_state=)
MODELS = [
    ("ReTuneRegularizer(operator=A) (the defaults)", {}),
    ("first version's defaults: regularizer='wavelet', loss='mse', K=10",
     dict(regularizer="wavelet", loss="mse", K=10)),
    ("defaults + adaptive_weights='detail'", dict(adaptive_weights="detail")),
]


def _describe(est):
    keys = ("K_", "T", "max_epochs", "batch_size", "loss", "solve_tol")
    text = ", ".join(f"{k}={getattr(est, k)}" for k in keys)
    text = f"{type(est.regularizer_).__name__}; {text}; λ={np.round(est.weights_, 4).tolist()}"
    if est.weight_exponents_ is not None:
        text += f"; β={np.round(est.weight_exponents_, 2).tolist()}"
    return text


def retune_rows(operator, data, quick, log):
    from retune_sklearn import ReTuneRegularizer
    from retune_sklearn.metrics import psnr

    X_train, X_test, y_train, y_test = data
    rows = []
    for label, params in MODELS:
        est = ReTuneRegularizer(operator=operator, random_state=P.SEED, **params)
        if quick:
            est.set_params(max_epochs=1, T=3)
        with warnings.catch_warnings(), P._Clock() as clock:
            warnings.simplefilter("ignore")
            est.fit(X_train, y_train)
            prediction = est.predict(X_test)
        rows.append(dict(method=label, psnr=psnr(y_test, prediction), cpu=clock.cpu,
                         kind="retune", params=_describe(est)))
        log(f"  {label}: {rows[-1]['psnr']:.2f} dB ({clock.cpu:.1f} s CPU)")
    return rows


def markdown(rows):
    best = max(r["psnr"] for r in rows if r["kind"] in ("baseline", "reference"))
    lines = ["| method | hyperparameters | test PSNR (dB) | vs best other method (dB) | "
             "CPU fit+predict (s) |", "|---|---|---:|---:|---:|"]
    for r in rows:
        cpu = "—" if r.get("cpu") is None else f"{r['cpu']:.1f}"
        margin = "—" if r["kind"] == "input" else f"{r['psnr'] - best:+.2f}"
        method = r["method"] + (" *(reference)*" if r["kind"] == "reference" else "")
        lines.append(f"| {method} | {r['params']} | {r['psnr']:.2f} | {margin} | {cpu} |")
    return "\n".join(lines)


def verdict(rows):
    others = [r for r in rows if r["kind"] in ("baseline", "reference")]
    best = max(others, key=lambda r: r["psnr"])
    default, first = (next(r for r in rows if r["method"] == label) for label, _ in MODELS[:2])
    beaten = sum(default["psnr"] > r["psnr"] for r in others)
    return (f"The defaults score {default['psnr']:.2f} dB: {beaten} of {len(others)} other "
            f"methods beaten; best other method {best['method']} ({best['psnr']:.2f} dB, "
            f"margin {default['psnr'] - best['psnr']:+.2f} dB). The first version's defaults: "
            f"{first['psnr']:.2f} dB; CPU defaults / first version "
            f"{default['cpu'] / first['cpu']:.1f}×.")


def run_problem(problem, cfg, quick, log):
    data, operator, context = P.BUILDERS[problem][0](cfg)
    rows = P.BUILDERS[problem][1](data, operator, context, cfg)
    rows += retune_rows(operator, data, quick, log)
    sizes = P._sizes(problem, cfg)
    return "\n".join([f"## {P.TITLES[problem]}", "", sizes, "", markdown(rows), "",
                      verdict(rows), ""])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 1 epoch (smoke run)")
    parser.add_argument("--output", type=Path, default=OUTPUT_DIR)
    args = parser.parse_args(argv)
    cfg = P.QUICK if args.quick else P.FULL

    def log(message):
        print(message, file=sys.stderr, flush=True)

    import torch

    t0 = time.process_time()
    sections = []
    with P._single_thread():
        for problem in PROBLEMS:
            log(problem)
            sections.append(run_problem(problem, cfg, args.quick, log))
    command = "python benchmarks/bench_defaults.py" + (" --quick" if args.quick else "")
    report = "\n".join([
        "# The defaults against the tools a user would pick instead", "",
        f"Command: `{command}` (one torch thread, torch {torch.__version__}, "
        f"{platform.machine()}, a shared 2-core machine; {time.process_time() - t0:.0f} s "
        "CPU in all). Baselines as in `benchmarks/problems.md` (same data, same rows); "
        "*(reference)* rows are stronger or criterion-matched variants.", "",
        *sections])
    P.publish(report, args.output, COMMITTED, not args.quick)
    return report


if __name__ == "__main__":
    main()
