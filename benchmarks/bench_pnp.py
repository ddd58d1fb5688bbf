"""Plug-and-play (``PnP`` + a zoo denoiser) against ReTune TV, and learned (step, strength)
against a grid.

Usage::

    python benchmarks/bench_pnp.py       # full run (~9 min CPU)
    python benchmarks/bench_pnp.py --quick                            # smoke run (seconds)
    python benchmarks/bench_pnp.py --output DIR                       # default benchmarks/output

Data: the benchmark split of ``bench_problems.py`` (``make_image_problem``,
``random_state=0``, 64×64 patches, training patches from
``datasets.TRAIN_IMAGES``, test patches from the disjoint ``TEST_IMAGES``):
denoising σ = 0.1 and deblurring ``Blur(sigma=1.5)`` + noise 0.01. The
denoiser is pre-trained from scratch on other patches of the *training*
photos (``load_image_patches("train", random_state=1)``), never on test
photos.

Steps, each timed in process CPU seconds on one thread:

1. pre-train ``DnCNN(depth, channels, noise_conditional=True)`` on (noisy,
   clean) pairs with σ uniform in [0, 0.15] (one network for both problems);
2. denoising: ReTune TV (the model of ``bench_problems.py``); ``PnP`` frozen
   (ReTune learns the noise level σ = √(τλ) only); ``PnP`` trainable
   (the network fine-tuned by ReTune inside the solve, from the frozen fit's
   strength);
3. deblurring: ReTune TV (as in ``bench_problems.py``); frozen ``PnP``: ReTune
   learns (step, strength) on a subset of the training set, and a grid over
   (step_scale, σ) is scored by the same criterion (mean training PSNR) on the
   same subset; then the trainable ``PnP`` fine-tunes the network, from the
   learned (step, strength), on another subset.

CPU seconds are those of the fits (and of the grid's solves), not of the
test predictions. The report is printed and written to ``OUTPUT/pnp.md``; a
full run also refreshes the tables of the committed ``benchmarks/pnp.md``
(its closing "Reading" section is written by hand: update it after a run).
"""

import argparse
import platform
import sys
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
if str(HERE.parent) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(HERE.parent))
from bench_problems import _Clock, _single_thread  # noqa: E402  (shared helpers)

OUTPUT_DIR = HERE / "output"
COMMITTED = HERE / "pnp.md"
SEED = 0
DENOISE_SIGMA, BLUR_SIGMA, NOISE_SIGMA = 0.1, 1.5, 0.01

FULL = dict(n_train=96, n_test=48, patch_size=64, pretrain_patches=384, pretrain_crop=32,
            pretrain_epochs=(30, 10), depth=6, channels=32, n_select=16, n_finetune=32,
            epochs=dict(tv_denoise=20, tv_deblur=5, frozen=4, finetune=2),
            steps=(0.6, 1.0, 1.4, 1.8), sigmas=(0.01, 0.017, 0.03, 0.05, 0.08), solve={})
QUICK = dict(n_train=4, n_test=2, patch_size=32, pretrain_patches=8, pretrain_crop=16,
             pretrain_epochs=(1, 1), depth=2, channels=4, n_select=2, n_finetune=2,
             epochs=dict(tv_denoise=1, tv_deblur=1, frozen=1, finetune=1),
             steps=(1.0,), sigmas=(0.03,), solve=dict(K=2, T=2))
#: Solves of the deblurring PnP models (training, grid, test alike); ``cfg["solve"]``
#: overrides K and T of every deblurring model (quick runs).
PNP_SOLVE = dict(K=5, T=20, solve_tol=1e-3)
#: As the ReTune TotalVariation rows of bench_problems.py (benchmarks/problems.md).
TV_DENOISE = dict(K=1, T=1, learning_rate=0.1, batch_size=8, loss="psnr",
                  regularizer__n_inner=50)
TV_DEBLUR = dict(K=10, T=10, learning_rate=0.1, batch_size=8, loss="psnr")


def _estimator(operator, regularizer, **params):
    from retune_sklearn import ReTuneRegularizer

    return ReTuneRegularizer(operator, regularizer, device="cpu",
                             random_state=SEED).set_params(**params)


def _fit_and_test(est, X_train, y_train, X_test, y_test):
    """Fit, then score on test; (estimator, test PSNR, CPU seconds of the fit)."""
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings(), _Clock() as clock:
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X_train, y_train)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        score = est.score(X_test, y_test)
    return est, score, clock.cpu


def pretrain(cfg, log):
    """The zoo denoiser, pre-trained from scratch; (network, CPU seconds)."""
    import torch

    from retune_sklearn.datasets import load_image_patches
    from retune_sklearn.zoo import DnCNN, pretrain_denoiser

    clean = load_image_patches("train", cfg["patch_size"], cfg["pretrain_patches"],
                               random_state=1)
    torch.manual_seed(SEED)
    net = DnCNN(cfg["depth"], cfg["channels"], noise_conditional=True)
    history = []
    with _Clock() as clock:
        for lr, epochs in zip((2e-3, 5e-4), cfg["pretrain_epochs"]):  # then a lower rate
            pretrain_denoiser(net, clean, (0.0, 0.15), epochs, batch_size=16,
                              learning_rate=lr, crop_size=cfg["pretrain_crop"],
                              noise_conditional=True, random_state=len(history),
                              history=history)
    log(f"pre-training: {clock.cpu:.0f} s CPU, last epoch MSE {history[-1]:.2e}")
    return net, clock.cpu


def _data(operator, noise, cfg):
    from retune_sklearn.datasets import make_image_problem

    return make_image_problem(operator, noise_sigma=noise, patch_size=cfg["patch_size"],
                              n_train=cfg["n_train"], n_test=cfg["n_test"], random_state=SEED)


def _row(method, learned, psnr_db, cpu, tv_cpu, note=""):
    return dict(method=method, learned=learned, psnr=psnr_db, cpu=cpu,
                ratio=None if cpu is None else cpu / tv_cpu, note=note)


def denoising(net, pretrain_cpu, cfg, log):
    from retune_sklearn.metrics import psnr
    from retune_sklearn.regularizers import PnP, TotalVariation

    X, X_test, y, y_test = _data(None, DENOISE_SIGMA, cfg)
    epochs = cfg["epochs"]
    # TV periodic: the boundary of the committed table (benchmarks/pnp.md).
    _, tv, tv_cpu = _fit_and_test(_estimator(None, TotalVariation(boundary="periodic"),
                                             **TV_DENOISE,
                                             max_epochs=epochs["tv_denoise"]), X, y, X_test,
                                  y_test)
    log(f"denoising TV {tv:.2f} dB")
    # Identity operator, step 1: one step u = D(X, √λ) is the fixed point (K = T = 1).
    one_step = dict(K=1, T=1, batch_size=8, loss="psnr")
    frozen, frozen_db, frozen_cpu = _fit_and_test(_estimator(
        None, PnP(net, noise_conditional=True), **one_step, learning_rate=0.1,
        max_epochs=epochs["frozen"]), X, y, X_test, y_test)
    log(f"denoising PnP frozen {frozen_db:.2f} dB")
    tuned, tuned_db, tuned_cpu = _fit_and_test(_estimator(
        None, PnP(net, trainable=True, noise_conditional=True), **one_step,
        init_weight=frozen.weights_[0], learning_rate=1e-4, scale_search=False,
        max_epochs=epochs["finetune"] + 1), X, y, X_test, y_test)
    log(f"denoising PnP fine-tuned {tuned_db:.2f} dB")
    sigma = float(np.sqrt(frozen.stepsize_ * frozen.weights_[0]))
    tuned_sigma = float(np.sqrt(tuned.stepsize_ * tuned.weights_[0]))
    return [
        _row("noisy input", "—", psnr(y_test, X_test), None, tv_cpu),
        _row("ReTune TotalVariation (as bench_problems)", "λ (one weight)", tv, tv_cpu, tv_cpu),
        _row("PnP(DnCNN) frozen, pre-trained", f"σ={sigma:.4f}", frozen_db,
             pretrain_cpu + frozen_cpu, tv_cpu, f"{frozen_cpu:.1f} s after pre-training"),
        _row("PnP(DnCNN) pre-trained, then ReTune fine-tuned (trainable=True)",
             f"σ={tuned_sigma:.4f} + network", tuned_db,
             pretrain_cpu + frozen_cpu + tuned_cpu, tv_cpu,
             f"{frozen_cpu + tuned_cpu:.1f} s after pre-training"),
    ]


def _pnp_solve(cfg):
    return {**PNP_SOLVE, **cfg["solve"]}


def _grid(net, operator, X, y, cfg):
    """Mean PSNR on (X, y) of frozen PnP at every (step_scale, σ) of the grid."""
    from sklearn.exceptions import ConvergenceWarning

    from retune_sklearn.metrics import psnr
    from retune_sklearn.reconstruct import build_problem, reconstruct
    from retune_sklearn.regularizers import PnP

    regularizer = PnP(net, noise_conditional=True)
    L = build_problem(operator, regularizer, X.shape[1:], X.shape[1:], "cpu").lipschitz
    scores = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for step in cfg["steps"]:
            for sigma in cfg["sigmas"]:
                lam = sigma ** 2 * L / step  # σ = √(τλ), τ = step / L
                solve = _pnp_solve(cfg)
                x_hat = reconstruct(X, operator, regularizer, [lam], step_scale=step,
                                    K=solve["K"], T=solve["T"], tol=solve["solve_tol"],
                                    batch_size=8)
                scores[step, sigma] = psnr(y, x_hat)
    return scores


def deblurring(net, pretrain_cpu, cfg, log):
    from retune_sklearn.metrics import psnr
    from retune_sklearn.operators import Blur
    from retune_sklearn.regularizers import PnP, TotalVariation

    operator = Blur(sigma=BLUR_SIGMA)
    X, X_test, y, y_test = _data(operator, NOISE_SIGMA, cfg)
    epochs = cfg["epochs"]
    _, tv, tv_cpu = _fit_and_test(_estimator(operator, TotalVariation(boundary="periodic"),
                                             **{**TV_DEBLUR, **cfg["solve"]},
                                             max_epochs=epochs["tv_deblur"]),
                                  X, y, X_test, y_test)
    log(f"deblurring TV {tv:.2f} dB")
    select = slice(0, cfg["n_select"])
    X_sel, y_sel = X[select], y[select]
    # Frozen: (step, strength) learned on the selection subset, from σ = 0.03, step 1.
    frozen, frozen_db, frozen_cpu = _fit_and_test(_estimator(
        operator, PnP(net, noise_conditional=True), **_pnp_solve(cfg), init_weight=0.03 ** 2,
        learn_step_size=True, learning_rate=0.1, batch_size=8, loss="psnr",
        max_epochs=epochs["frozen"]), X_sel, y_sel, X_test, y_test)
    learned_train = frozen.score(X_sel, y_sel)
    sigma = float(np.sqrt(frozen.stepsize_ * frozen.weights_[0]))
    log(f"deblurring PnP frozen {frozen_db:.2f} dB (train {learned_train:.2f})")
    with _Clock() as grid_clock:
        scores = _grid(net, operator, X_sel, y_sel, cfg)
    (best_step, best_sigma), best_train = max(scores.items(), key=lambda kv: kv[1])
    L = frozen.lipschitz_
    grid_est = _estimator(operator, PnP(net, noise_conditional=True), **_pnp_solve(cfg),
                          init_weight=best_sigma ** 2 * L / best_step, step_scale=best_step,
                          learn_weights=False, max_epochs=1)
    _, grid_db, _ = _fit_and_test(grid_est, X_sel[:1], y_sel[:1], X_test, y_test)
    log(f"deblurring grid best {grid_db:.2f} dB (train {best_train:.2f})")
    # Trainable: fine-tune the network from the learned (step, strength), other samples.
    tune = slice(cfg["n_select"], cfg["n_select"] + cfg["n_finetune"])
    tuned, tuned_db, tuned_cpu = _fit_and_test(_estimator(
        operator, PnP(net, trainable=True, noise_conditional=True), **_pnp_solve(cfg),
        init_weight=frozen.weights_[0], step_scale=frozen.step_scale_, learning_rate=1e-4,
        batch_size=8, loss="psnr", max_epochs=epochs["finetune"]), X[tune], y[tune], X_test,
        y_test)
    log(f"deblurring PnP fine-tuned {tuned_db:.2f} dB")
    grid_text = (f"{len(cfg['steps'])}×{len(cfg['sigmas'])} grid, step_scale ∈ "
                 f"{list(cfg['steps'])}, σ ∈ {list(cfg['sigmas'])}")
    rows = [
        _row("blurred noisy input", "—", psnr(y_test, X_test), None, tv_cpu),
        _row("ReTune TotalVariation (as bench_problems)", "λ (one weight)", tv, tv_cpu, tv_cpu),
        _row("PnP(DnCNN) frozen, ReTune (step, strength)",
             f"step_scale={frozen.step_scale_:.3f}, σ={sigma:.4f}", frozen_db,
             pretrain_cpu + frozen_cpu, tv_cpu, f"{frozen_cpu:.1f} s after pre-training"),
        _row("PnP(DnCNN) frozen, best grid point", f"step_scale={best_step}, σ={best_sigma}",
             grid_db, pretrain_cpu + grid_clock.cpu, tv_cpu,
             f"{grid_clock.cpu:.1f} s after pre-training"),
        _row("PnP(DnCNN) pre-trained, then ReTune fine-tuned (trainable=True)",
             "network (step, σ of the frozen fit)", tuned_db,
             pretrain_cpu + frozen_cpu + tuned_cpu, tv_cpu,
             f"{frozen_cpu + tuned_cpu:.1f} s after pre-training"),
    ]
    comparison = dict(learned_train=learned_train, best_train=best_train,
                      learned_cpu=frozen_cpu, grid_cpu=grid_clock.cpu, grid=grid_text,
                      n_select=cfg["n_select"], scores=scores)
    return rows, comparison


def _table(rows):
    lines = ["| method | learned | test PSNR (dB) | training CPU s (incl. pre-training) "
             "| CPU / TV's | note |", "|---|---|---:|---:|---:|---|"]
    for r in rows:
        cpu = "—" if r["cpu"] is None else f"{r['cpu']:.1f}"
        ratio = "—" if r["ratio"] is None else f"{r['ratio']:.1f}×"
        lines.append(f"| {r['method']} | {r['learned']} | {r['psnr']:.2f} | {cpu} | {ratio} | "
                     f"{r['note']} |")
    return lines


def report(cfg, pretrain_cpu, denoise_rows, deblur_rows, comparison, command):
    import torch

    gap = comparison["learned_train"] - comparison["best_train"]
    lines = [
        "# Plug-and-play: a zoo denoiser in ReTune against ReTune TV", "",
        f"Command: `{command}` (torch {torch.__version__}, Python "
        f"{platform.python_version()}, one thread). Sizes: {cfg['n_train']} training / "
        f"{cfg['n_test']} test patches {cfg['patch_size']}×{cfg['patch_size']} (test photos "
        f"never used for training or choosing). Pre-training: DnCNN(depth={cfg['depth']}, "
        f"channels={cfg['channels']}, noise_conditional=True) on "
        f"{cfg['pretrain_patches']} other patches of the training photos, "
        f"{cfg['pretrain_crop']}×{cfg['pretrain_crop']} crops, σ uniform in [0, 0.15], "
        f"{sum(cfg['pretrain_epochs'])} epochs (Adam 2e-3 then 5e-4): "
        f"{pretrain_cpu:.0f} s CPU, counted in every PnP row. PnP uses σ = √(τλ).", "",
        f"## Denoising, σ = {DENOISE_SIGMA}", "", *_table(denoise_rows), "",
        f"## Deblurring, Blur(sigma={BLUR_SIGMA}) + noise {NOISE_SIGMA}", "",
        *_table(deblur_rows), "",
        f"PnP deblurring solves: {PNP_SOLVE} (FISTA restarts). The frozen fit learns on "
        f"the first {comparison['n_select']} training patches; the fine-tuning runs on the "
        f"next {cfg['n_finetune']}.", "",
        "## Frozen denoiser: learned (step, strength) against a grid", "",
        "| | mean training PSNR (dB), criterion | CPU s |", "|---|---:|---:|",
        f"| ReTune, learn_step_size=True | {comparison['learned_train']:.2f} | "
        f"{comparison['learned_cpu']:.1f} |",
        f"| best of the {comparison['grid']} | {comparison['best_train']:.2f} | "
        f"{comparison['grid_cpu']:.1f} |", "",
        f"Learned − grid best: {gap:+.2f} dB on the criterion (target: within 0.05 dB), at "
        f"{comparison['learned_cpu'] / comparison['grid_cpu']:.2f}× the grid's CPU time.", "",
        "Grid scores (step_scale, σ): " + ", ".join(
            f"({s}, {g}): {v:.2f}" for (s, g), v in comparison["scores"].items()), "",
    ]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke run)")
    parser.add_argument("--output", type=Path, default=OUTPUT_DIR)
    parser.add_argument("--quiet", action="store_true", help="print only the report")
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else FULL

    def log(message):
        if not args.quiet:
            print(message, flush=True)

    command = "python benchmarks/bench_pnp.py" + (" --quick" if args.quick else "")
    with _single_thread():
        net, pretrain_cpu = pretrain(cfg, log)
        denoise_rows = denoising(net, pretrain_cpu, cfg, log)
        deblur_rows, comparison = deblurring(net, pretrain_cpu, cfg, log)
    text = report(cfg, pretrain_cpu, denoise_rows, deblur_rows, comparison, command)
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "pnp.md").write_text(text, encoding="utf-8")
    if not args.quick:
        COMMITTED.write_text(text, encoding="utf-8")
    print(text)
    return dict(report=text, denoising=denoise_rows, deblurring=deblur_rows,
                comparison=comparison)


if __name__ == "__main__":
    main()
