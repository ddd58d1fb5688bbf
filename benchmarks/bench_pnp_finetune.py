"""How far longer ReTune fine-tuning takes PnP deblurring (issue 12's missing row).

Usage::

    python benchmarks/bench_pnp_finetune.py            # ~20 min on one core

Same data, denoiser and frozen fit as the deblurring part of
``bench_pnp.py`` (``Blur(sigma=1.5)`` + noise 0.01, 96 / 48 patches 64×64 of
the benchmark split; ``DnCNN(6, 32)`` pre-trained by ``bench_pnp.pretrain``;
(step, strength) learned frozen on the first 16 training patches), then the
trainable ``PnP`` fine-tuned from that point by ReTune (JFB through the
deblurring iterations) with more training patches, epochs and a larger rate
than ``bench_pnp.py`` uses (32 patches, 2 epochs, rate 1e-4, its first row).
Prints a table (test PSNR, CPU of each fine-tuning) and writes it to
``benchmarks/pnp_finetune.md`` (keeping its hand-written "Reading" section);
the ReTune TV rows to compare with are those of ``benchmarks/pnp.md`` (same
data, same split).
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench_pnp as bp  # noqa: E402  (same data, denoiser and helpers)

#: (training patches after the 16 of the frozen fit, epochs, learning rate)
FINETUNINGS = ((32, 2, 1e-4), (80, 4, 1e-4), (80, 4, 3e-4), (80, 10, 3e-4), (80, 10, 1e-3))


def main():
    from retune_sklearn.operators import Blur

    cfg = bp.FULL
    lines = []
    with bp._single_thread():
        net, pretrain_cpu = bp.pretrain("dncnn", cfg, print)
        operator = Blur(sigma=bp.BLUR_SIGMA)
        X, X_test, y, y_test = bp._data(operator, bp.NOISE_SIGMA, cfg)
        select = slice(0, cfg["n_select"])
        frozen, frozen_db, frozen_cpu = bp._fit_and_test(
            bp.frozen_deblurring_estimator(operator, net, cfg), X[select], y[select], X_test,
            y_test)
        lines.append(f"| frozen, ReTune (step, strength) | 16 | {cfg['epochs']['frozen']} | 0.1 "
                     f"| {frozen_db:.2f} | {frozen_cpu:.0f} |")
        print(lines[-1], flush=True)
        for n_patches, epochs, rate in FINETUNINGS:
            tune = slice(cfg["n_select"], cfg["n_select"] + n_patches)
            _, tuned_db, tuned_cpu = bp._fit_and_test(
                bp.finetuning_estimator(operator, net, frozen, cfg, epochs, rate),
                X[tune], y[tune], X_test, y_test)
            lines.append(f"| fine-tuned (trainable=True) | {n_patches} | {epochs} | {rate:g} | "
                         f"{tuned_db:.2f} | {tuned_cpu:.0f} |")
            print(lines[-1], flush=True)
    text = "\n".join([
        "# PnP deblurring: longer ReTune fine-tuning", "",
        f"Command: `python benchmarks/bench_pnp_finetune.py` (one torch thread; "
        f"{bp._describe(cfg['denoisers']['dncnn'])} pre-trained in {pretrain_cpu:.0f} s CPU; "
        f"solves {bp.PNP_SOLVE}). Test PSNR on the 48 test patches of `benchmarks/pnp.md`.",
        "", "| PnP(DnCNN) | training patches | epochs | rate | test PSNR (dB) | CPU (s) |",
        "|---|---:|---:|---:|---:|---:|", *lines, ""])
    bp.write_report(HERE / "pnp_finetune.md", text)


if __name__ == "__main__":
    main()
