"""TotalVariation's warm dual against the cold prox, and kept in the iterate bank
across epochs against dropped.

Usage::

    PYTHONPATH=. python benchmarks/bench_warm_dual.py

Deblurring (``Blur(sigma=1.5)`` + noise 0.01, 32 training / 16 test 64×64
patches of the benchmark split), ``TotalVariation(n_inner=20, n_inner_warm=k)`` with the
defaults otherwise (``reuse_iterates=True``, ``solve_tol=1e-4``, FISTA
restarts), 5 epochs, one torch thread. "cold": the default ``n_inner_warm=None``
(every step a 20-iteration prox from zero). "dropped": the same warm fit with the
bank's dual withheld (each solve starts the dual from zero). Prints a table:
test PSNR, mean forward–backward iterations per training solve
(``training_solve_iter_``) and process CPU seconds of the fit, with ratios.
"""

import contextlib
import time
import warnings
from unittest import mock

import torch
from sklearn.exceptions import ConvergenceWarning

from retune_sklearn import ReTuneRegularizer
from retune_sklearn.datasets import make_image_problem
from retune_sklearn.learning.warm_start import IterateBank
from retune_sklearn.operators import Blur
from retune_sklearn.regularizers import TotalVariation


def fit(k, keep_dual, data):
    X, X_test, y, y_test = data
    est = ReTuneRegularizer(Blur(sigma=1.5), TotalVariation(n_inner=20, n_inner_warm=k),
                            max_epochs=5, random_state=0, n_threads=1)
    patch = mock.patch.object(IterateBank, "start_inner", lambda self, index, like: None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with contextlib.nullcontext() if keep_dual else patch:
            cpu = time.process_time()
            est.fit(X, y)
            cpu = time.process_time() - cpu
        return est.score(X_test, y_test), est.training_solve_iter_, cpu


def main():
    torch.set_num_threads(1)
    data = make_image_problem(Blur(sigma=1.5), noise_sigma=0.01, n_train=32, n_test=16,
                              random_state=0)
    print("| n_inner_warm | dual | test PSNR (dB) | iterations per training solve | fit CPU (s) "
          "| CPU cold / row | CPU dropped / kept |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    cold = fit(None, True, data)
    print(f"| None (cold) | — | {cold[0]:.2f} | {cold[1]:.1f} | {cold[2]:.1f} | 1.00× | — |")
    for k in (1, 2):
        kept, dropped = fit(k, True, data), fit(k, False, data)
        for label, (score, iterations, cpu) in (("kept", kept), ("dropped", dropped)):
            ratio = f"{dropped[2] / kept[2]:.2f}×" if label == "kept" else "—"
            print(f"| {k} | {label} | {score:.2f} | {iterations:.1f} | {cpu:.1f} | "
                  f"{cold[2] / cpu:.2f}× | {ratio} |", flush=True)


if __name__ == "__main__":
    main()
