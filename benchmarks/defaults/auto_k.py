"""The numbers behind K="auto"'s fallback and the README's note on ill-conditioned deblurring.

1. At the initial weights of the three problems of ``reproduce_paper.py``'s K="auto"
   section: the relative error and the cosine of jfb(K)'s hypergradient against the
   implicit one (float64, solves to 1e-7).
2. On its 2-D deblurring (ρ ≈ 0.999): test PSNR and CPU time of fits with K="auto"
   (which falls back to 10 there), K = 50 (the previous cap), K = 3, 10 and 1, with
   solve_tol="auto" or 1e-4 (25 epochs, as that section).

Run from the repository root: ``python benchmarks/defaults/auto_k.py``.
"""

import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent.parent))
import reproduce_paper  # noqa: E402

from retune_sklearn import ReTuneRegularizer  # noqa: E402

torch.set_num_threads(1)
CFG = dict(reproduce_paper.FULL)


def hypergradient_errors():
    for name in CFG["auto_problems"]:
        _, X, y, _, _, operator, regularizer = reproduce_paper._auto_problem(name, CFG)
        params = dict(regularizer=regularizer, batch_size=16, loss="mse", device="cpu",
                      random_state=0,
                      dtype="float64", T=1000, solve_tol=1e-7, implicit_tol=1e-8,
                      implicit_max_iter=2000)
        exact = ReTuneRegularizer(operator, K=1, **params).compute_hypergradient(
            X, y, hypergradient="implicit")
        cells = []
        for K in (1, 2, 3, 5, 10, 20, 50):
            g = ReTuneRegularizer(operator, K=K, **params).compute_hypergradient(
                X, y, hypergradient="jfb")
            error = np.linalg.norm(g - exact) / np.linalg.norm(exact)
            cosine = g @ exact / (np.linalg.norm(g) * np.linalg.norm(exact))
            cells.append(f"K={K}: rel {error:.3g} cos {cosine:.4f}")
        print(f"{name} | " + "; ".join(cells), flush=True)


def deblurring_fits():
    _, X_train, y_train, X_test, y_test, operator, regularizer = \
        reproduce_paper._auto_problem("deblur2d", CFG)
    for K, solve_tol in (("auto", "auto"), (50, "auto"), (3, "auto"), (10, "auto"),
                         (1, "auto"), (10, 1e-4)):
        est = ReTuneRegularizer(operator, regularizer, K=K, T=300 if K == 1 else 30,
                                solve_tol=solve_tol, max_epochs=CFG["auto_epochs"],
                                batch_size=16, learning_rate=0.1, loss="mse", device="cpu",
                                random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            start = time.process_time()
            est.fit(X_train, y_train)
            cpu = time.process_time() - start
        print(f"deblur2d K={K} solve_tol={solve_tol}: K_={est.K_} "
              f"solve_tol_={est.solve_tol_:.2g} {est.score(X_test, y_test):.3f} dB "
              f"{cpu:.1f} s CPU", flush=True)


if __name__ == "__main__":
    hypergradient_errors()
    deblurring_fits()
