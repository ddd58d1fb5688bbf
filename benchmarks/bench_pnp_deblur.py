"""PnP deblurring with stronger reflect-padded zoo denoisers, against ReTune TV.

Usage::

    python benchmarks/bench_pnp_deblur.py            # ~30 min on one core
    python benchmarks/bench_pnp_deblur.py --quick    # smoke run (seconds)

Same data and PnP fits as the deblurring part of ``bench_pnp.py``
(``Blur(sigma=1.5)`` + noise 0.01, 96 / 48 patches 64×64 of the benchmark split;
(step, strength) learned frozen on the first 16 training patches, then the
trainable ``PnP`` fine-tuned from there on the other 80 for 4 epochs at rate 1e-4),
for three reflect-padded denoisers: the ``DnCNN(6, 32)`` of ``bench_pnp.py``'s
short recipe, the same DnCNN and the ``SmallUNet(24, 3)`` with ``bench_pnp.py``'s
long recipe (3000 patches, random symmetries, cosine rate). The frozen fit is run
with FISTA restarts and with plain forward–backward; the solver with the better
*training* score (the 16 selection patches) is kept for the fine-tuning, so no
choice looks at the test patches. The default ReTune ``TotalVariation()`` is
fitted in the same run on all 96 training patches. Writes
``benchmarks/pnp_deblur.md`` (keeping its hand-written "Reading" section).
"""

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench_pnp as bp  # noqa: E402  (same data, denoiser recipes and helpers)

LONG_RECIPE = dict(patches=3000, crop=40, stages=((1e-3, 8),), augment=True,
                   lr_schedule="cosine")
FULL_DENOISERS = dict(
    dncnn_short={**bp.FULL_DENOISERS["dncnn"],
                 "args": dict(depth=6, channels=32, padding="reflect")},
    dncnn_long=dict(cls="DnCNN", args=dict(depth=6, channels=32, padding="reflect"),
                    **LONG_RECIPE),
    unet_long={**bp.FULL_DENOISERS["unet"],
               "args": dict(channels=24, levels=3, padding="reflect")},
)
QUICK_DENOISERS = {name: {**spec, "args": {**spec["args"], "padding": "reflect"}}
                   for name, spec in bp.QUICK_DENOISERS.items()}
#: (training patches after the 16 of the frozen fit, epochs) of the fine-tuning.
FINETUNING = dict(full=(80, 4), quick=(2, 1))
SOLVERS = ("fista", "fb")


def _recipe(spec):
    return (f"{spec['patches']} patches, {spec['crop']}×{spec['crop']} crops, "
            + ", ".join(f"{epochs} epochs at {rate:g}" for rate, epochs in spec["stages"])
            + (", symmetries, cosine" if spec["augment"] else ", constant rates"))


def _tv_row(operator, data, cfg):
    from retune_sklearn.regularizers import TotalVariation

    _, score, cpu = bp._fit_and_test(bp._estimator(
        operator, TotalVariation(), **{**bp.TV_DEBLUR, **cfg["solve"]},
        max_epochs=cfg["epochs"]["tv_deblur"]), *data)
    return f"| ReTune TotalVariation() (the default) | — | all | — | {score:.2f} | {cpu:.0f} |"


def _pnp_rows(name, operator, data, cfg, finetuning):
    X, y, X_test, y_test = data
    net, pretrain_cpu = bp.pretrain(name, cfg, print)
    spec = cfg["denoisers"][name]
    label = f"PnP({bp._describe(spec)}), {_recipe(spec)}"
    select = slice(0, cfg["n_select"])
    frozen_fits = {}
    for solver in SOLVERS:
        solver_cfg = {**cfg, "solve": {**cfg["solve"], "solver": solver}}
        est, test_db, cpu = bp._fit_and_test(bp.frozen_deblurring_estimator(
            operator, net, solver_cfg), X[select], y[select], X_test, y_test)
        frozen_fits[solver] = (est, est.score(X[select], y[select]), test_db, cpu, solver_cfg)
    rows = [f"| {label} | frozen, {solver} | {cfg['n_select']} | {train_db:.2f} | "
            f"{test_db:.2f} | {pretrain_cpu + cpu:.0f} |"
            for solver, (_, train_db, test_db, cpu, _) in frozen_fits.items()]
    print(*rows, sep="\n", flush=True)
    solver = max(frozen_fits, key=lambda s: frozen_fits[s][1])
    frozen, _, _, frozen_cpu, solver_cfg = frozen_fits[solver]
    n_patches, epochs = finetuning
    tune = slice(cfg["n_select"], cfg["n_select"] + n_patches)
    _, tuned_db, tuned_cpu = bp._fit_and_test(
        bp.finetuning_estimator(operator, net, frozen, solver_cfg, epochs),
        X[tune], y[tune], X_test, y_test)
    rows.append(f"| {label} | fine-tuned {epochs} epochs, {solver} | {cfg['n_select']} + "
                f"{n_patches} | — | {tuned_db:.2f} | {pretrain_cpu + frozen_cpu + tuned_cpu:.0f} |")
    print(rows[-1], flush=True)
    return rows


def main(argv=None):
    import torch

    from retune_sklearn.operators import Blur

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke run)")
    args = parser.parse_args(argv)
    cfg = {**(bp.QUICK if args.quick else bp.FULL),
           "denoisers": QUICK_DENOISERS if args.quick else FULL_DENOISERS}
    finetuning = FINETUNING["quick" if args.quick else "full"]
    operator = Blur(sigma=bp.BLUR_SIGMA)
    with bp._single_thread():
        X, X_test, y, y_test = bp._data(operator, bp.NOISE_SIGMA, cfg)
        data = X, y, X_test, y_test
        lines = [_tv_row(operator, data, cfg)]
        print(lines[-1], flush=True)
        for name in cfg["denoisers"]:
            lines += _pnp_rows(name, operator, data, cfg, finetuning)
    text = "\n".join([
        "# PnP deblurring: stronger reflect-padded denoisers against ReTune TV", "",
        f"Command: `python benchmarks/bench_pnp_deblur.py{' --quick' if args.quick else ''}` "
        f"(torch {torch.__version__}, one thread; Blur(sigma={bp.BLUR_SIGMA}) + noise "
        f"{bp.NOISE_SIGMA}; PnP solves {bp._pnp_solve(cfg)}, fine-tuning rate 1e-4). "
        f"{cfg['n_train']} training / {cfg['n_test']} test patches of `benchmarks/pnp.md`. "
        "Training PSNR: mean over the frozen fit's selection patches (the criterion that "
        "picks the fine-tuning's solver). CPU: training, pre-training included.", "",
        "| model | fit, solver | training patches | training PSNR (dB) | test PSNR (dB) | "
        "training CPU (s) |", "|---|---|---:|---:|---:|---:|", *lines, ""])
    if args.quick:
        print(text)
    else:
        bp.write_report(HERE / "pnp_deblur.md", text)
    return text


if __name__ == "__main__":
    main()
