"""Plug-and-play (``PnP`` + zoo denoisers) against ReTune TV, and learned (step, strength)
against a fine grid.

Usage::

    python benchmarks/bench_pnp.py       # full run (~30 min CPU, one thread)
    python benchmarks/bench_pnp.py --quick                            # smoke run (seconds)
    python benchmarks/bench_pnp.py --output DIR                       # default benchmarks/output

Data: the benchmark split of ``bench_problems.py`` (``make_image_problem``,
``random_state=0``, 64×64 patches, training patches from
``datasets.TRAIN_IMAGES``, test patches from the disjoint ``TEST_IMAGES``):
denoising σ = 0.1 and deblurring ``Blur(sigma=1.5)`` + noise 0.01. The
denoisers are pre-trained from scratch on other patches of the *training*
photos (``load_image_patches("train", random_state=1)``), never on test
photos.

Steps, each timed in process CPU seconds on one thread:

1. pre-train two noise-conditional zoo denoisers on (noisy, clean) pairs
   with σ uniform in [0, 0.15]: ``SmallUNet`` (the stronger denoiser, with
   ``pretrain_denoiser``'s random symmetries and cosine rate) and a small
   ``DnCNN`` (the previous report's recipe, which keeps plug-and-play
   deblurring stable, see step 4);
2. denoising: ReTune TV with periodic and Neumann boundaries (the settings of
   ``bench_problems.py``); ``PnP(SmallUNet)`` frozen (ReTune learns the
   noise level σ = √(τλ) only), then trainable (the network fine-tuned by
   ReTune inside the solve, from the frozen fit's strength);
3. deblurring: the same two TVs; frozen ``PnP(DnCNN)``: ReTune learns
   (step, strength) on a subset of the training set, and a fine grid over
   (step_scale, σ) is scored by the same criterion (mean training PSNR) on
   the same subset; then the trainable ``PnP`` fine-tunes the network, from
   the learned (step, strength), on another subset;
4. stability: the spectral norm of each network's Jacobian at the blurred
   test patches (``zoo.local_lipschitz``) and the frozen ``PnP(SmallUNet)``
   deblurring at the DnCNN's learned (step, σ), with FISTA restarts and
   plain forward–backward.

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
PRETRAIN_SIGMAS = (0.0, 0.15)

#: The zoo denoisers and their pre-training: patches of 64×64 cut from the training
#: photos, ``crop`` × ``crop`` windows, batches of 16, Adam at each (rate, epochs) stage.
#: The DnCNN keeps the recipe of the previous report (no symmetries, two constant rates):
#: in exploratory runs (not committed), the same network trained on 3000 patches with
#: symmetries and a cosine rate made PnP deblurring diverge at low σ, as the SmallUNet
#: fails below.
FULL_DENOISERS = dict(
    unet=dict(cls="SmallUNet", args=dict(channels=24, levels=3), patches=3000, crop=40,
              stages=((1e-3, 8),), augment=True, lr_schedule="cosine"),
    dncnn=dict(cls="DnCNN", args=dict(depth=6, channels=32), patches=384, crop=32,
               stages=((2e-3, 30), (5e-4, 10)), augment=False, lr_schedule="constant"),
)
QUICK_DENOISERS = dict(
    unet=dict(cls="SmallUNet", args=dict(channels=4, levels=1), patches=8, crop=16,
              stages=((1e-3, 1),), augment=True, lr_schedule="cosine"),
    dncnn=dict(cls="DnCNN", args=dict(depth=2, channels=4), patches=8, crop=16,
               stages=((2e-3, 1), (5e-4, 1)), augment=False, lr_schedule="constant"),
)
FULL = dict(n_train=96, n_test=48, patch_size=64, denoisers=FULL_DENOISERS, n_select=16,
            n_finetune=32, epochs=dict(tv_denoise=20, tv_deblur=5, frozen=4, finetune=2,
                                       finetune_denoise=3),
            steps=(0.8, 1.0, 1.2, 1.4, 1.6),
            sigmas=(0.015, 0.02, 0.025, 0.03, 0.035, 0.04, 0.05), n_power=30, solve={})
QUICK = dict(n_train=4, n_test=2, patch_size=32, denoisers=QUICK_DENOISERS, n_select=2,
             n_finetune=2, epochs=dict(tv_denoise=1, tv_deblur=1, frozen=1, finetune=1,
                                       finetune_denoise=1),
             steps=(1.0,), sigmas=(0.03,), n_power=2, solve=dict(K=2, T=2))
#: Solves of the deblurring PnP models (training, grid, test alike); ``cfg["solve"]``
#: overrides K and T of every deblurring model (quick runs).
PNP_SOLVE = dict(K=5, T=20, solve_tol=1e-3)
#: As the ReTune TotalVariation rows of bench_problems.py (benchmarks/problems.md).
TV_DENOISE = dict(K=1, T=1, learning_rate=0.1, batch_size=8, loss="psnr",
                  regularizer__n_inner=50)
TV_DEBLUR = dict(K=10, T=10, learning_rate=0.1, batch_size=8, loss="psnr")
TV_BOUNDARIES = (("periodic", "as bench_problems"), ("reflect", "Neumann: the default"))


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


def _describe(spec):
    args = ", ".join(f"{k}={v}" for k, v in spec["args"].items())
    return f"{spec['cls']}({args})"


def pretrain(name, cfg, log):
    """A zoo denoiser, pre-trained from scratch; (network, CPU seconds)."""
    import torch

    from retune_sklearn import zoo
    from retune_sklearn.datasets import load_image_patches

    spec = cfg["denoisers"][name]
    clean = load_image_patches("train", cfg["patch_size"], spec["patches"], random_state=1)
    torch.manual_seed(SEED)
    net = getattr(zoo, spec["cls"])(**spec["args"], noise_conditional=True)
    history = []
    with _Clock() as clock:
        for learning_rate, epochs in spec["stages"]:
            zoo.pretrain_denoiser(net, clean, PRETRAIN_SIGMAS, epochs, batch_size=16,
                                  learning_rate=learning_rate, crop_size=spec["crop"],
                                  augment=spec["augment"], lr_schedule=spec["lr_schedule"],
                                  noise_conditional=True, random_state=len(history),
                                  history=history)
    log(f"pre-training {_describe(spec)}: {clock.cpu:.0f} s CPU, last epoch MSE "
        f"{history[-1]:.2e}")
    return net, clock.cpu


def _data(operator, noise, cfg):
    from retune_sklearn.datasets import make_image_problem

    return make_image_problem(operator, noise_sigma=noise, patch_size=cfg["patch_size"],
                              n_train=cfg["n_train"], n_test=cfg["n_test"], random_state=SEED)


def _row(method, learned, psnr_db, cpu, tv_cpu, note=""):
    return dict(method=method, learned=learned, psnr=psnr_db, cpu=cpu,
                ratio=None if cpu is None else cpu / tv_cpu, note=note)


def _tv_rows(operator, settings, epochs, data):
    """ReTune TV with each boundary fitted on ``data = (X, y, X_test, y_test)``: rows, and
    the periodic fit's CPU seconds (the unit of the CPU ratios)."""
    from retune_sklearn.regularizers import TotalVariation

    fits = [(boundary, label, *_fit_and_test(
        _estimator(operator, TotalVariation(boundary=boundary, n_inner=20), **settings,
                   max_epochs=epochs),
        *data)[1:]) for boundary, label in TV_BOUNDARIES]
    unit = fits[0][3]
    return [_row(f"ReTune TotalVariation(boundary={boundary!r}) ({label})", "λ (one weight)",
                 score, cpu, unit) for boundary, label, score, cpu in fits], unit


def denoising(net, pretrain_cpu, cfg, log):
    from retune_sklearn.metrics import psnr
    from retune_sklearn.regularizers import PnP

    X, X_test, y, y_test = _data(None, DENOISE_SIGMA, cfg)
    data = X, y, X_test, y_test
    epochs = cfg["epochs"]
    tv_rows, tv_cpu = _tv_rows(None, TV_DENOISE, epochs["tv_denoise"], data)
    log("denoising TV " + ", ".join(f"{r['psnr']:.2f}" for r in tv_rows) + " dB")
    # Identity operator, step 1: one step u = D(X, √λ) is the fixed point (K = T = 1).
    one_step = dict(K=1, T=1, batch_size=8, loss="psnr")
    frozen, frozen_db, frozen_cpu = _fit_and_test(_estimator(
        None, PnP(net, noise_conditional=True), **one_step, learning_rate=0.1,
        max_epochs=epochs["frozen"]), *data)
    log(f"denoising PnP frozen {frozen_db:.2f} dB")
    tuned, tuned_db, tuned_cpu = _fit_and_test(_estimator(
        None, PnP(net, trainable=True, noise_conditional=True), **one_step,
        init_weight=frozen.weights_[0], learning_rate=1e-4, scale_search=False,
        max_epochs=epochs["finetune_denoise"]), *data)
    log(f"denoising PnP fine-tuned {tuned_db:.2f} dB")
    sigma = float(np.sqrt(frozen.stepsize_ * frozen.weights_[0]))
    tuned_sigma = float(np.sqrt(tuned.stepsize_ * tuned.weights_[0]))
    name = _describe(cfg["denoisers"]["unet"])
    return [
        _row("noisy input", "—", psnr(y_test, X_test), None, tv_cpu),
        *tv_rows,
        _row(f"PnP({name}) frozen, pre-trained", f"σ={sigma:.4f}", frozen_db,
             pretrain_cpu + frozen_cpu, tv_cpu, f"{frozen_cpu:.1f} s after pre-training"),
        _row(f"PnP({name}) pre-trained, then ReTune fine-tuned (trainable=True)",
             f"σ={tuned_sigma:.4f} + network", tuned_db,
             pretrain_cpu + frozen_cpu + tuned_cpu, tv_cpu,
             f"{frozen_cpu + tuned_cpu:.1f} s after pre-training"),
    ]


def _pnp_solve(cfg):
    return {**PNP_SOLVE, **cfg["solve"]}


def frozen_deblurring_estimator(operator, net, cfg):
    """PnP(net) frozen: (step, strength) learned from σ = 0.03, step 1 (unfitted)."""
    from retune_sklearn.regularizers import PnP

    return _estimator(operator, PnP(net, noise_conditional=True), **_pnp_solve(cfg),
                      init_weight=0.03 ** 2, learn_step_size=True, learning_rate=0.1,
                      batch_size=8, loss="psnr", max_epochs=cfg["epochs"]["frozen"])


def finetuning_estimator(operator, net, frozen, cfg, epochs, learning_rate=1e-4):
    """PnP(net) trainable, from the (step, strength) of the fitted ``frozen`` (unfitted)."""
    from retune_sklearn.regularizers import PnP

    return _estimator(operator, PnP(net, trainable=True, noise_conditional=True),
                      **_pnp_solve(cfg), init_weight=frozen.weights_[0],
                      step_scale=frozen.step_scale_, learning_rate=learning_rate,
                      batch_size=8, loss="psnr", max_epochs=epochs)


def _frozen_lambda(sigma, step, lipschitz):
    """The strength λ of noise level σ = √(τλ) at τ = step / L."""
    return sigma ** 2 * lipschitz / step


def _frozen_psnr(net, operator, X, y, step, sigma, cfg, solver="fista"):
    """Mean PSNR on (X, y) of the frozen PnP(net) at (step_scale, σ)."""
    from sklearn.exceptions import ConvergenceWarning

    from retune_sklearn.metrics import psnr
    from retune_sklearn.reconstruct import build_problem, reconstruct
    from retune_sklearn.regularizers import PnP

    regularizer = PnP(net, noise_conditional=True)
    L = build_problem(operator, regularizer, X.shape[1:], X.shape[1:], "cpu").lipschitz
    solve = _pnp_solve(cfg)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", ConvergenceWarning)
        x_hat = reconstruct(X, operator, regularizer, [_frozen_lambda(sigma, step, L)],
                            step_scale=step, K=solve["K"], T=solve["T"], tol=solve["solve_tol"],
                            solver=solver, batch_size=8)
    return psnr(y, x_hat) if np.isfinite(x_hat).all() else float("-inf")


def _grid(net, operator, X, y, cfg):
    """Mean PSNR on (X, y) of frozen PnP at every (step_scale, σ) of the grid."""
    return {(step, sigma): _frozen_psnr(net, operator, X, y, step, sigma, cfg)
            for step in cfg["steps"] for sigma in cfg["sigmas"]}


def deblurring(net, pretrain_cpu, cfg, log):
    from retune_sklearn.metrics import psnr
    from retune_sklearn.operators import Blur
    from retune_sklearn.regularizers import PnP

    operator = Blur(sigma=BLUR_SIGMA)
    X, X_test, y, y_test = _data(operator, NOISE_SIGMA, cfg)
    data = X, y, X_test, y_test
    epochs = cfg["epochs"]
    tv_rows, tv_cpu = _tv_rows(operator, {**TV_DEBLUR, **cfg["solve"]}, epochs["tv_deblur"],
                               data)
    log("deblurring TV " + ", ".join(f"{r['psnr']:.2f}" for r in tv_rows) + " dB")
    select = slice(0, cfg["n_select"])
    X_sel, y_sel = X[select], y[select]
    # Frozen: (step, strength) learned on the selection subset, from σ = 0.03, step 1.
    frozen, frozen_db, frozen_cpu = _fit_and_test(
        frozen_deblurring_estimator(operator, net, cfg), X_sel, y_sel, X_test, y_test)
    learned_train = frozen.score(X_sel, y_sel)
    sigma = float(np.sqrt(frozen.stepsize_ * frozen.weights_[0]))
    log(f"deblurring PnP frozen {frozen_db:.2f} dB (train {learned_train:.2f})")
    with _Clock() as grid_clock:
        scores = _grid(net, operator, X_sel, y_sel, cfg)
    (best_step, best_sigma), best_train = max(scores.items(), key=lambda kv: kv[1])
    grid_est = _estimator(operator, PnP(net, noise_conditional=True), **_pnp_solve(cfg),
                          init_weight=_frozen_lambda(best_sigma, best_step, frozen.lipschitz_),
                          step_scale=best_step, learn_weights=False, max_epochs=1)
    _, grid_db, _ = _fit_and_test(grid_est, X_sel[:1], y_sel[:1], X_test, y_test)
    log(f"deblurring grid best {grid_db:.2f} dB (train {best_train:.2f})")
    # Trainable: fine-tune the network from the learned (step, strength), other samples.
    tune = slice(cfg["n_select"], cfg["n_select"] + cfg["n_finetune"])
    tuned, tuned_db, tuned_cpu = _fit_and_test(
        finetuning_estimator(operator, net, frozen, cfg, epochs["finetune"]), X[tune], y[tune],
        X_test, y_test)
    log(f"deblurring PnP fine-tuned {tuned_db:.2f} dB")
    grid_text = (f"{len(cfg['steps'])}×{len(cfg['sigmas'])} grid, step_scale ∈ "
                 f"{list(cfg['steps'])}, σ ∈ {list(cfg['sigmas'])}")
    name = _describe(cfg["denoisers"]["dncnn"])
    rows = [
        _row("blurred noisy input", "—", psnr(y_test, X_test), None, tv_cpu),
        *tv_rows,
        _row(f"PnP({name}) frozen, ReTune (step, strength)",
             f"step_scale={frozen.step_scale_:.3f}, σ={sigma:.4f}", frozen_db,
             pretrain_cpu + frozen_cpu, tv_cpu, f"{frozen_cpu:.1f} s after pre-training"),
        _row(f"PnP({name}) frozen, best grid point", f"step_scale={best_step}, σ={best_sigma}",
             grid_db, pretrain_cpu + grid_clock.cpu, tv_cpu,
             f"{grid_clock.cpu:.1f} s after pre-training"),
        _row(f"PnP({name}) pre-trained, then ReTune fine-tuned (trainable=True)",
             "network (step, σ of the frozen fit)", tuned_db,
             pretrain_cpu + frozen_cpu + tuned_cpu, tv_cpu,
             f"{frozen_cpu + tuned_cpu:.1f} s after pre-training"),
    ]
    comparison = dict(learned_train=learned_train, best_train=best_train,
                      learned_cpu=frozen_cpu, grid_cpu=grid_clock.cpu, grid=grid_text,
                      n_select=cfg["n_select"], scores=scores,
                      learned_point=(frozen.step_scale_, sigma))
    return rows, comparison


def stability(nets, comparison, cfg, log):
    """Per network: ‖J_D‖₂ at the blurred test patches (min, median, max), and the frozen
    deblurring test PSNR at the DnCNN's learned (step, σ) with FISTA and with plain FB."""
    import torch

    from retune_sklearn.operators import Blur
    from retune_sklearn.zoo import local_lipschitz

    operator = Blur(sigma=BLUR_SIGMA)
    _, X_test, _, y_test = _data(operator, NOISE_SIGMA, cfg)
    step, sigma = comparison["learned_point"]
    rows = []
    for name, net in nets.items():
        norms = local_lipschitz(net, torch.as_tensor(X_test[:, None], dtype=torch.float32),
                                sigma=sigma, n_iter=cfg["n_power"])
        scores = {solver: _frozen_psnr(net, operator, X_test, y_test, step, sigma, cfg, solver)
                  for solver in ("fista", "fb")}
        rows.append(dict(name=_describe(cfg["denoisers"][name]),
                         norms=np.quantile(norms.numpy(), [0, 0.5, 1]), **scores))
        log(f"stability {name}: ‖J‖ median {rows[-1]['norms'][1]:.3f}, FISTA "
            f"{scores['fista']:.2f} dB, FB {scores['fb']:.2f} dB")
    return rows


def _table(rows):
    lines = ["| method | learned | test PSNR (dB) | training CPU s (incl. pre-training) "
             "| CPU / TV's | note |", "|---|---|---:|---:|---:|---|"]
    for r in rows:
        cpu = "—" if r["cpu"] is None else f"{r['cpu']:.1f}"
        ratio = "—" if r["ratio"] is None else f"{r['ratio']:.1f}×"
        lines.append(f"| {r['method']} | {r['learned']} | {r['psnr']:.2f} | {cpu} | {ratio} | "
                     f"{r['note']} |")
    return lines


def _pretraining_text(cfg, pretrain_cpu):
    def stages(spec):
        text = " then ".join(f"{epochs} epochs at {rate:g}" for rate, epochs in spec["stages"])
        return (f"Adam, {text}" + (" (cosine decay)" if spec["lr_schedule"] == "cosine" else "")
                + (", random symmetries" if spec["augment"] else ", no symmetries"))
    return "; ".join(
        f"{_describe(spec)}: {spec['patches']} patches, {spec['crop']}×{spec['crop']} crops, "
        f"{stages(spec)}, {pretrain_cpu[name]:.0f} s CPU"
        for name, spec in cfg["denoisers"].items())


def report(cfg, pretrain_cpu, denoise_rows, deblur_rows, comparison, stability_rows, command):
    import torch

    gap = comparison["learned_train"] - comparison["best_train"]
    lines = [
        "# Plug-and-play: zoo denoisers in ReTune against ReTune TV", "",
        f"Command: `{command}` (torch {torch.__version__}, Python "
        f"{platform.python_version()}, one thread). Sizes: {cfg['n_train']} training / "
        f"{cfg['n_test']} test patches {cfg['patch_size']}×{cfg['patch_size']} (test photos "
        "never used for training or choosing). Pre-training (noise-conditional, σ uniform "
        f"in {list(PRETRAIN_SIGMAS)}, other patches of the training photos): "
        f"{_pretraining_text(cfg, pretrain_cpu)}. Each PnP row counts its "
        "network's pre-training. PnP uses σ = √(τλ). CPU / TV's: against the periodic TV fit.",
        "", f"## Denoising, σ = {DENOISE_SIGMA}", "", *_table(denoise_rows), "",
        f"## Deblurring, Blur(sigma={BLUR_SIGMA}) + noise {NOISE_SIGMA}", "",
        *_table(deblur_rows), "",
        f"PnP deblurring solves: {PNP_SOLVE} (FISTA restarts). The frozen fit learns on "
        f"the first {comparison['n_select']} training patches; the fine-tuning runs on the "
        f"next {cfg['n_finetune']}.", "",
        "## Frozen denoiser: learned (step, strength) against a fine grid", "",
        "| | mean training PSNR (dB), criterion | CPU s |", "|---|---:|---:|",
        f"| ReTune, learn_step_size=True | {comparison['learned_train']:.2f} | "
        f"{comparison['learned_cpu']:.1f} |",
        f"| best of the {comparison['grid']} | {comparison['best_train']:.2f} | "
        f"{comparison['grid_cpu']:.1f} |", "",
        f"Learned − grid best: {gap:+.2f} dB on the criterion (target: within 0.05 dB), at "
        f"{comparison['learned_cpu'] / comparison['grid_cpu']:.2f}× the grid's CPU time.", "",
        "Grid scores (step_scale, σ): " + ", ".join(
            f"({s}, {g}): {v:.2f}" for (s, g), v in comparison["scores"].items()), "",
        "## Stability of plug-and-play deblurring", "",
        "‖J_D‖₂: spectral norm of the denoiser's Jacobian at the blurred noisy test patches "
        "(`zoo.local_lipschitz`, power iteration), at the frozen DnCNN's learned σ; PnP-FB "
        "converges when D is non-expansive (≤ 1). Test PSNR of frozen PnP at the DnCNN's "
        "learned (step, σ), the solve above, with FISTA restarts (the default) and plain "
        "forward–backward (−inf: the iterates overflowed).", "",
        "| denoiser | ‖J_D‖₂ min / median / max | deblurring test PSNR, FISTA | plain FB |",
        "|---|---:|---:|---:|",
        *(f"| {r['name']} | {r['norms'][0]:.3f} / {r['norms'][1]:.3f} / {r['norms'][2]:.3f} "
          f"| {r['fista']:.2f} | {r['fb']:.2f} |" for r in stability_rows), "",
    ]
    return "\n".join(lines)


def _hand_written(path):
    """The committed report's closing "Reading" section (written by hand), or ''."""
    if not path.exists():
        return ""
    text = path.read_text(encoding="utf-8")
    start = text.find("\n## Reading")
    return "" if start < 0 else text[start:]


def write_report(path, text):
    """Write ``text`` to ``path``, keeping the hand-written "Reading" section there; print it."""
    path.write_text(text + _hand_written(path), encoding="utf-8")
    print(text)


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
        nets, pretrain_cpu = {}, {}
        for name in cfg["denoisers"]:
            nets[name], pretrain_cpu[name] = pretrain(name, cfg, log)
        denoise_rows = denoising(nets["unet"], pretrain_cpu["unet"], cfg, log)
        deblur_rows, comparison = deblurring(nets["dncnn"], pretrain_cpu["dncnn"], cfg, log)
        stability_rows = stability(nets, comparison, cfg, log)
    text = report(cfg, pretrain_cpu, denoise_rows, deblur_rows, comparison, stability_rows,
                  command)
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "pnp.md").write_text(text, encoding="utf-8")
    if not args.quick:
        COMMITTED.write_text(text + _hand_written(COMMITTED), encoding="utf-8")
    print(text)
    return dict(report=text, denoising=denoise_rows, deblurring=deblur_rows,
                comparison=comparison, stability=stability_rows)


if __name__ == "__main__":
    main()
