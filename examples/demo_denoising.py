"""Learn per-subband wavelet thresholds for image denoising, and compare.

The package's main demo. It builds grayscale 64×64 patches from images that
ship with scikit-image (training and test patches come from *different*
photos), adds Gaussian noise of σ = 0.1, and compares on the test patches:

* the noisy input;
* scikit-image's ``denoise_wavelet`` with BayesShrink (db4, 3 levels, σ
  known), an adaptive per-image, per-subband threshold;
* the best single threshold λ of the same variational model
  (``WaveletL1(weights="scalar")``), chosen by ``GridSearchCV`` on the
  training set (20 values on a log grid, 3-fold CV, PSNR score);
* ``ReTuneRegularizer``: one threshold per subband (db4, 3 levels, 9
  weights), learned from the training pairs by restarted Jacobian-free
  bilevel gradients;
* the same on a translation-invariant (4-shift cycle-spun) wavelet frame.

Every wavelet model leaves the coarse approximation band unpenalized (the
learned models drive its weight to ~0 anyway, so a scalar model that had to
shrink it would be an unfair baseline), and the learned models are trained
on ``loss="psnr"``, the mean per-patch PSNR that the table reports.

It prints one markdown table (test PSNR and wall time), then the learned
weights, fixed-point residuals and training losses of both learned models,
and writes ``demo_denoising.md`` and ``demo_denoising.png`` (example test
patches with the translation-invariant model's reconstructions; weights and
loss curves of both learned models) to the output directory.

Run::

    python examples/demo_denoising.py               # full demo, ~45 s on 2 cores
    python examples/demo_denoising.py --quick       # tiny sizes, for CI
    python examples/demo_denoising.py --output DIR  # default examples/output
    python examples/demo_denoising.py --threads 0   # torch's default thread count

By default torch runs on one thread here: the solves are many small
operations on 64×64 patches, which gain little from more threads, and on a
machine whose cores are busy with other work, OpenMP threads that wait for
each other made the demo ten times slower (6 minutes instead of 40 s).

Note: the model is a *fixed* set of thresholds on an orthonormal
(decimated) wavelet basis, applied identically to every image, while
BayesShrink re-estimates its thresholds for every image and subband. On
test photos unlike the training ones, BayesShrink can therefore win; the
numbers printed are what they are.
"""

import argparse
import os
import sys
import time

import numpy as np

SIGMA = 0.1
WAVELET, LEVELS = "db4", 3
# With the identity operator and an orthonormal wavelet, one forward-backward
# step with step size 1 is the exact minimizer; T = 2 blocks still exercise
# the restart (one no-grad block, then the differentiated one).
K, T = 5, 2
# The redundant frame makes the solve iterative (sublinear convergence).
K_TI, T_TI = 10, 3
SEED = 0

CONFIGS = {
    # n_train/n_test patches, patch side, Adam epochs, grid size.
    "full": dict(n_train=128, n_test=64, patch_size=64, max_epochs=40, ti_epochs=12,
                 n_grid=20, learning_rate=0.05, n_examples=3),
    "quick": dict(n_train=12, n_test=4, patch_size=64, max_epochs=3, ti_epochs=1,
                  n_grid=20, learning_rate=0.05, n_examples=2),
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes and few epochs (a smoke test, < 30 s)")
    parser.add_argument("--output", default=os.path.join("examples", "output"),
                        help="directory of demo_denoising.png and demo_denoising.md "
                             "(default: examples/output)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (default 1; 0 keeps torch's default)")
    args = parser.parse_args(argv)
    if args.threads < 0:
        parser.error(f"--threads must be >= 0, got {args.threads}")
    return args


def markdown_table(rows):
    """Rows of (method, psnr, seconds) as a markdown table (seconds may be None)."""
    lines = ["| method | test PSNR (dB) | wall time (s) |", "|---|---:|---:|"]
    for method, value, seconds in rows:
        shown = "—" if seconds is None else f"{seconds:.2f}"
        lines.append(f"| {method} | {value:.2f} | {shown} |")
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    config = CONFIGS["quick" if args.quick else "full"]

    import matplotlib
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.model_selection import GridSearchCV

    from retune_sklearn import ReTuneRegularizer
    from retune_sklearn.baselines import bayes_shrink
    from retune_sklearn.datasets import make_denoising_problem
    from retune_sklearn.metrics import psnr
    from retune_sklearn.plotting import plot_examples, plot_loss_curve, plot_weights
    from retune_sklearn.regularizers import WaveletL1

    start_all = time.perf_counter()
    os.makedirs(args.output, exist_ok=True)

    # 1. Data: train and test patches from disjoint source photos.
    X_train, X_test, y_train, y_test = make_denoising_problem(
        noise_sigma=SIGMA, n_train=config["n_train"], n_test=config["n_test"],
        patch_size=config["patch_size"], random_state=SEED)
    print(f"Denoising, σ = {SIGMA}: {len(X_train)} training and {len(X_test)} test patches "
          f"of {X_train.shape[1]}×{X_train.shape[2]} (different source images)\n")
    rows = [("noisy input", psnr(y_test, X_test), None)]

    # 2. BayesShrink, same wavelet and levels, noise level known.
    tic = time.perf_counter()
    X_bayes = bayes_shrink(X_test, SIGMA, wavelet=WAVELET, levels=LEVELS)
    rows.append((f"skimage denoise_wavelet BayesShrink ({WAVELET}, {LEVELS} levels, σ known)",
                 psnr(y_test, X_bayes), time.perf_counter() - tic))

    # 3. Best single λ of the same model, by grid search on the training set.
    tic = time.perf_counter()
    scalar = ReTuneRegularizer(
        regularizer=WaveletL1(WAVELET, LEVELS, weights="scalar", penalize_approximation=False),
        learn_weights=False,
        K=K, T=T, random_state=SEED)
    grid = GridSearchCV(scalar, {"init_weight": np.geomspace(1e-3, 0.5, config["n_grid"])},
                        cv=3).fit(X_train, y_train)
    scalar_psnr = grid.score(X_test, y_test)
    best_lambda = grid.best_params_["init_weight"]
    rows.append((f"best scalar λ = {best_lambda:.4f} (GridSearchCV, "
                 f"{config['n_grid']} values, cv=3)", scalar_psnr, time.perf_counter() - tic))

    # 4. ReTune: one weight per subband, learned.
    tic = time.perf_counter()
    retune = ReTuneRegularizer(
        regularizer=WaveletL1(WAVELET, LEVELS, penalize_approximation=False), K=K, T=T,
        loss="psnr", learning_rate=config["learning_rate"], max_epochs=config["max_epochs"],
        random_state=SEED).fit(X_train, y_train)
    rows.append((f"ReTune (learned per-subband weights, K={K}, T={T})",
                 retune.score(X_test, y_test), time.perf_counter() - tic))

    # 5. The same on a translation-invariant frame (4 shifts).
    tic = time.perf_counter()
    invariant = ReTuneRegularizer(
        regularizer=WaveletL1(WAVELET, LEVELS, penalize_approximation=False,
                              translation_invariant=True, n_shifts=2),
        K=K_TI, T=T_TI, loss="psnr", learning_rate=2 * config["learning_rate"],
        max_epochs=config["ti_epochs"], random_state=SEED).fit(X_train, y_train)
    rows.append((f"ReTune, translation-invariant frame (4 shifts, K={K_TI}, T={T_TI})",
                 invariant.score(X_test, y_test), time.perf_counter() - tic))

    table = markdown_table(rows)
    print(table)
    print("\nWall times: baselines on the test set; grid search and ReTune include "
          "fitting on the training set and denoising the test set.")
    # The two learned models, named as in the table, the console and the figure.
    models = {f"ReTune (K={K}, T={T})": retune,
              f"ReTune, translation-invariant frame (K={K_TI}, T={T_TI})": invariant}
    width = max(map(len, models))
    print("\nLearned weights per subband (λ):")
    for name, model in models.items():
        print(f"  {name:{width}s}  " + "  ".join(
            f"{group}={value:.4g}" for group, value in zip(model.weight_names_, model.weights_)))
    print("Fixed-point residual ‖φ(u) − u‖/‖u‖ at the end of a solve:")
    for name, model in models.items():
        print(f"  {name:{width}s}  {model.fixed_point_residual_:.2e} "
              f"after K·T = {model.K * model.T} iterations")
    print("Training loss (loss='psnr': mean 10·log10 MSE per patch, lower is better):")
    for name, model in models.items():
        curve = model.loss_curve_
        change = f" (last-epoch change {curve[-1] - curve[-2]:+.4f})" if len(curve) >= 2 else ""
        print(f"  {name:{width}s}  first epoch {curve[0]:.3f}, last {curve[-1]:.3f}{change} "
              f"after {model.n_iter_} epochs; converged_={model.converged_}")

    md_path = os.path.join(args.output, "demo_denoising.md")
    with open(md_path, "w", encoding="utf-8") as handle:
        handle.write(f"Denoising σ = {SIGMA}, {len(X_train)} train / {len(X_test)} test "
                     f"patches {X_train.shape[1]}×{X_train.shape[2]} (different source "
                     "images).\n\n")
        handle.write(table + "\n")

    # 6. Figure: examples (the better learned model), the weights and loss curves of both.
    X_retune = invariant.transform(X_test)
    fig = plt.figure(figsize=(11, 5.0 + 2.3 * config["n_examples"]), layout="constrained")
    fig.suptitle(f"Denoising, Gaussian noise σ = {SIGMA}: test patches from photos not seen "
                 "in training (PSNR against the clean patch)")
    top, bottom = fig.subfigures(2, 1, height_ratios=[2.3 * config["n_examples"], 4.2])
    plot_examples({"clean": y_test, "noisy": X_test, "BayesShrink": X_bayes,
                   "ReTune, translation-\ninvariant frame": X_retune},
                  n=config["n_examples"], reference="clean", fig=top)
    ax_weights, ax_loss = bottom.subplots(1, 2)
    for (name, model), color, offset in zip(models.items(), ("C0", "C1"), (-0.2, 0.2)):
        plot_weights(model, ax=ax_weights, color=color, label=name, width=0.4, offset=offset)
        plot_loss_curve(model, ax=ax_loss, color=color, label=name)
    ax_weights.set_title("Learned weights (approximation band not penalized)")
    ax_loss.set_title("Training loss")
    bottom.legend(*ax_loss.get_legend_handles_labels(), loc="outside lower center", ncols=2)
    png_path = os.path.join(args.output, "demo_denoising.png")
    fig.savefig(png_path, dpi=100)
    plt.close(fig)

    print(f"\nWrote {png_path} and {md_path} "
          f"(total {time.perf_counter() - start_all:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
