"""Reflective (symmetric / Neumann) against periodic boundaries, on realistic data.

Usage::

    python benchmarks/bench_boundary.py   # committed run
    python benchmarks/bench_boundary.py --quick                        # smoke run
    python benchmarks/bench_boundary.py --output DIR                   # default benchmarks/output

The same ReTune model (operator and regularizer) is fitted twice, once with
``boundary="periodic"`` on every component and once with
``boundary="reflect"``, on four problems of ``bench_problems.py``: denoising
(σ = 0.1), deblurring (Gaussian σ = 1.5, noise 0.01), inpainting (half the
pixels, noise 0.01) and super-resolution ×2 (Gaussian σ = 1 then
decimation, noise 0.01), with the estimator parameters of
``bench_problems.MODELS`` (TotalVariation and the orthonormal WaveletL1;
denoising uses K=10, T=2 for both wavelet models, as the mirrored frame is
redundant and no longer exact in one step).

Realistic data: neither model gets its own boundary for free. For
deblurring and super-resolution the clean photo patch is cut LARGER
(64 + 2·8 pixels), blurred by ``scipy.ndimage.gaussian_filter`` (and
decimated) there, and the central 64×64 of the truth and the matching
measurement are kept: the measured border depends on pixels outside the
crop, as with a camera. Noise is added after the crop. Inpainting and
denoising need no margin (the operator is pointwise).

Train and test patches come from different photos (``TRAIN_IMAGES`` /
``TEST_IMAGES``); ``N_TRAIN`` = 48 training patches (half of
``bench_problems``' 96, to keep the run near 10 CPU minutes on one thread)
and ``N_TEST`` = 48 test patches. PSNR is the mean over test patches of
``10 log10(1 / MSE)``, over the whole patch, over the 4-pixel border band
and over the interior separately. CPU: process seconds of fit + predict.
"""

import argparse
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]  # this checkout's package, then bench_problems
import bench_problems as P  # noqa: E402  (the problems' constants, models and helpers)

COMMITTED = HERE / "boundary.md"
N_TRAIN, N_TEST, PATCH, MARGIN, BAND = 48, 48, 64, 8, 4
BOUNDARIES = ("periodic", "reflect")
NOTES = "<!-- reading: kept by reruns -->"
PROBLEMS = ("denoising", "deblurring", "inpainting", "super-resolution")


# ------------------------------------------------------------------- data
def _patches(size, n_train, n_test):
    from retune_sklearn.datasets import load_image_patches

    return (load_image_patches("train", size, n_train, random_state=P.SEED),
            load_image_patches("test", size, n_test, random_state=P.SEED + 1))


def _noisy(x, sigma, seed):
    return x + sigma * np.random.default_rng(seed).standard_normal(x.shape)


def _camera(y_big, factor, blur_sigma):
    """Blur (and decimate) the large patches, then crop the central PATCH pixels of both."""
    from scipy import ndimage

    radius = MARGIN  # a multiple of factor: the crop stays on the decimation grid
    blurred = np.stack([ndimage.gaussian_filter(y, blur_sigma, mode="reflect", truncate=3.0)
                        for y in y_big])
    X = blurred[:, ::factor, ::factor]
    keep = slice(radius // factor, (radius + PATCH) // factor)
    return X[:, keep, keep], y_big[:, radius:radius + PATCH, radius:radius + PATCH]


def problem_data(name, n_train, n_test):
    """(X_train, X_test, y_train, y_test), operator factory (boundary -> operator)."""
    from retune_sklearn.operators import Blur, Downsampling, Identity, Inpainting

    if name in ("denoising", "inpainting"):
        y_train, y_test = _patches(PATCH, n_train, n_test)
        sigma = P.DENOISE_SIGMA if name == "denoising" else P.NOISE_SIGMA
        if name == "denoising":
            def factory(boundary):
                return Identity()
            clean = (y_train, y_test)
        else:
            mask = Inpainting(keep_prob=P.KEEP_PROB).mask_array((PATCH, PATCH))

            def factory(boundary):
                return Inpainting(mask=mask)
            clean = (y_train * mask, y_test * mask)
        X = [_noisy(c, sigma, seed) * (1 if name == "denoising" else mask)
             for c, seed in zip(clean, (1, 2))]
        return (X[0], X[1], y_train, y_test), factory
    big_train, big_test = _patches(PATCH + 2 * MARGIN, n_train, n_test)
    if name == "deblurring":
        factor, blur_sigma = 1, P.BLUR_SIGMA

        def factory(boundary):
            return Blur(sigma=P.BLUR_SIGMA, boundary=boundary)
    else:
        factor, blur_sigma = P.SR_FACTOR, P.SR_FACTOR / 2  # Downsampling's default filter

        def factory(boundary):
            return Downsampling(factor=P.SR_FACTOR, boundary=boundary)
    (X_train, y_train), (X_test, y_test) = (_camera(b, factor, blur_sigma)
                                            for b in (big_train, big_test))
    X_train, X_test = _noisy(X_train, P.NOISE_SIGMA, 1), _noisy(X_test, P.NOISE_SIGMA, 2)
    return (X_train, X_test, y_train, y_test), factory


# ----------------------------------------------------------------- models
def models(name):
    """(label, regularizer class name, keyword arguments, estimator parameters)."""
    chosen = {label: (spec, params) for label, spec, params in P.MODELS[name]}
    out = []
    for label in ("ReTune TotalVariation", "ReTune WaveletL1 orthonormal"):
        spec, params = chosen[label]
        params = dict(params)
        if name == "denoising" and spec[0] == "WaveletL1":
            params.update(K=10, T=2)  # the mirrored frame is redundant: not exact in one step
        out.append((label.replace("ReTune ", "").replace(" orthonormal", " db4"), spec[0],
                    dict(spec[1]), params))
    return out


def band_masks(shape):
    border = np.zeros(shape, dtype=bool)
    border[:BAND], border[-BAND:], border[:, :BAND], border[:, -BAND:] = True, True, True, True
    return border, ~border


def region_psnr(y, pred, region=None):
    """Mean over samples of 10 log10(1 / MSE) on ``region`` (a boolean map; None: all)."""
    err = (np.clip(pred, -1e3, 1e3) - y) ** 2
    mse = err.reshape(len(y), -1).mean(1) if region is None else err[:, region].mean(1)
    return float(np.mean(10 * np.log10(1 / np.maximum(mse, 1e-20))))


def fit_one(name, reg_name, reg_kwargs, params, boundary, data, factory, quick):
    from sklearn.exceptions import ConvergenceWarning

    from retune_sklearn import ReTuneRegularizer, regularizers

    X_train, X_test, y_train, y_test = data
    kwargs = dict(reg_kwargs, boundary=boundary)
    if reg_name == "WaveletL1":
        kwargs.setdefault("levels", 3)
    params = dict(params)
    if quick:
        params.update(K=min(params["K"], 3), T=min(params["T"], 2), max_epochs=1)
    est = ReTuneRegularizer(factory(boundary), getattr(regularizers, reg_name)(**kwargs),
                            device="cpu", random_state=P.SEED).set_params(**params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # reported by the residual column
        cpu0 = time.process_time()
        est.fit(X_train, y_train)
        pred = est.predict(X_test)
        cpu = time.process_time() - cpu0
    border, interior = band_masks(y_test.shape[1:])
    return dict(all=region_psnr(y_test, pred), border=region_psnr(y_test, pred, border),
                interior=region_psnr(y_test, pred, interior), cpu=cpu,
                residual=est.fixed_point_residual_, params=P._describe(params))


# ----------------------------------------------------------------- report
def table(name, data, rows):
    X_test, y_test = data[1], data[3]
    border, interior = band_masks(y_test.shape[1:])
    lines = [f"## {name}", "",
             "| model | boundary | test PSNR | border band (4 px) | interior | CPU s | residual |",
             "|---|---|---:|---:|---:|---:|---:|"]
    if X_test.shape == y_test.shape:
        lines.append(f"| input | — | {region_psnr(y_test, X_test):.2f} | "
                     f"{region_psnr(y_test, X_test, border):.2f} | "
                     f"{region_psnr(y_test, X_test, interior):.2f} | — | — |")
    for label, by_boundary in rows:
        for boundary in BOUNDARIES:
            r = by_boundary[boundary]
            lines.append(f"| {label} ({r['params']}) | {boundary} | {r['all']:.2f} | "
                         f"{r['border']:.2f} | {r['interior']:.2f} | {r['cpu']:.1f} | "
                         f"{r['residual']:.1e} |")
        p, q = by_boundary["periodic"], by_boundary["reflect"]
        lines.append(f"| {label}: reflect − periodic | | **{q['all'] - p['all']:+.2f}** | "
                     f"{q['border'] - p['border']:+.2f} | {q['interior'] - p['interior']:+.2f} | "
                     f"×{q['cpu'] / p['cpu']:.2f} | |")
    return "\n".join(lines + [""])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny smoke run")
    parser.add_argument("--output", type=Path, default=P.OUTPUT_DIR)
    parser.add_argument("--problems", default=",".join(PROBLEMS))
    args = parser.parse_args(argv)
    n_train, n_test = (8, 6) if args.quick else (N_TRAIN, N_TEST)
    problems = args.problems.split(",")
    sections = []
    start = time.process_time()
    with P._single_thread():
        for name in problems:
            data, factory = problem_data(name, n_train, n_test)
            rows = []
            for label, reg_name, reg_kwargs, params in models(name):
                rows.append((label, {b: fit_one(name, reg_name, reg_kwargs, params, b, data,
                                                factory, args.quick) for b in BOUNDARIES}))
            sections.append(table(name, data, rows))
            print(sections[-1], flush=True)
    import torch

    header = ["# Reflective vs periodic boundaries", "",
              f"Command: `python benchmarks/bench_boundary.py`"
              f"{' --quick' if args.quick else ''}; {n_train} training and {n_test} test "
              f"{PATCH}×{PATCH} patches (train and test from different photos); "
              f"torch {torch.__version__}, one thread, {platform.machine()}; total CPU "
              f"{time.process_time() - start:.0f} s.", ""]
    report = "\n".join(header) + "\n" + "\n".join(sections)
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "boundary.md").write_text(report)
    if not args.quick and problems == list(PROBLEMS):
        # Keep the hand-written reading of the committed file (after NOTES).
        old = COMMITTED.read_text() if COMMITTED.exists() else ""
        COMMITTED.write_text(report + (old[old.index(NOTES):] if NOTES in old else ""))


if __name__ == "__main__":
    main()
