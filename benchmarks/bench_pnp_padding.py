"""PnP deblurring with the zoo's DnCNN padded circularly or by reflection, against ReTune TV.

Usage::

    python benchmarks/bench_pnp_padding.py            # ~8 min on one core

Same data, pre-training recipe, frozen fit and solves as the deblurring part of
``bench_pnp.py`` (``Blur(sigma=1.5)`` + noise 0.01, 96 / 48 patches 64×64 of the
benchmark split, ``DnCNN(6, 32)``; (step, strength) learned frozen on the first
16 training patches), for each ``padding`` of the network's convolutions; then
the trainable ``PnP`` fine-tuned from that point on the next 32 patches for 2
epochs (``bench_pnp.py``'s fine-tuning) and on the next 80 for 4 epochs (the
best row of ``benchmarks/pnp_finetune.md``, which was picked on these test
patches: read that row as optimistic). ReTune TV is fitted in the same run on
the same training set: the default ``TotalVariation()`` (Neumann boundary, 5
inner steps here) and the 20-inner-step Neumann TV of ``bench_pnp.py``. Writes
``benchmarks/pnp_padding.md`` (keeping its hand-written "Reading" section).
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench_pnp as bp  # noqa: E402  (same data, denoiser recipe and helpers)

PADDINGS = ("circular", "reflect")
#: (training patches after the 16 of the frozen fit, epochs), rate 1e-4.
FINETUNINGS = ((32, 2), (80, 4))


def _tv_rows(operator, X, y, X_test, y_test):
    from retune_sklearn.regularizers import TotalVariation

    rows = []
    for label, regularizer in (("TotalVariation() (the default: Neumann, n_inner='auto')",
                                TotalVariation()),
                               ("TotalVariation(n_inner=20) (Neumann, as bench_pnp.py)",
                                TotalVariation(n_inner=20))):
        _, score, cpu = bp._fit_and_test(bp._estimator(
            operator, regularizer, **bp.TV_DEBLUR, max_epochs=bp.FULL["epochs"]["tv_deblur"]),
            X, y, X_test, y_test)
        rows.append(f"| ReTune {label} | all 96 | {score:.2f} | {cpu:.0f} |")
        print(rows[-1], flush=True)
    return rows


def _pnp_rows(padding, operator, X, y, X_test, y_test):
    cfg = bp.FULL
    spec = dict(cfg["denoisers"]["dncnn"])
    spec["args"] = {**spec["args"], "padding": padding}
    net, pretrain_cpu = bp.pretrain("dncnn", {**cfg, "denoisers": {"dncnn": spec}}, print)
    name = bp._describe(spec)
    select = slice(0, cfg["n_select"])
    frozen, frozen_db, frozen_cpu = bp._fit_and_test(
        bp.frozen_deblurring_estimator(operator, net, cfg), X[select], y[select], X_test,
        y_test)
    rows = [f"| PnP({name}) frozen, ReTune (step, strength) | 16 | {frozen_db:.2f} | "
            f"{pretrain_cpu + frozen_cpu:.0f} |"]
    print(rows[-1], flush=True)
    for n_patches, epochs in FINETUNINGS:
        tune = slice(cfg["n_select"], cfg["n_select"] + n_patches)
        _, tuned_db, tuned_cpu = bp._fit_and_test(
            bp.finetuning_estimator(operator, net, frozen, cfg, epochs), X[tune], y[tune],
            X_test, y_test)
        rows.append(f"| PnP({name}) fine-tuned, {epochs} epochs | 16 + {n_patches} | "
                    f"{tuned_db:.2f} | {pretrain_cpu + frozen_cpu + tuned_cpu:.0f} |")
        print(rows[-1], flush=True)
    return rows


def main():
    import torch

    from retune_sklearn.operators import Blur

    operator = Blur(sigma=bp.BLUR_SIGMA)
    with bp._single_thread():
        X, X_test, y, y_test = bp._data(operator, bp.NOISE_SIGMA, bp.FULL)
        lines = _tv_rows(operator, X, y, X_test, y_test)
        for padding in PADDINGS:
            lines += _pnp_rows(padding, operator, X, y, X_test, y_test)
    text = "\n".join([
        "# PnP deblurring: circular against reflect padding of the zoo's DnCNN", "",
        f"Command: `python benchmarks/bench_pnp_padding.py` (torch {torch.__version__}, one "
        f"thread; Blur(sigma={bp.BLUR_SIGMA}) + noise {bp.NOISE_SIGMA}; PnP solves "
        f"{bp.PNP_SOLVE}, fine-tuning rate 1e-4). Test PSNR on the 48 test patches of "
        "`benchmarks/pnp.md`; CPU: training, pre-training included for PnP.", "",
        "| model | training patches | test PSNR (dB) | training CPU (s) |",
        "|---|---:|---:|---:|", *lines, ""])
    bp.write_report(HERE / "pnp_padding.md", text)


if __name__ == "__main__":
    main()
