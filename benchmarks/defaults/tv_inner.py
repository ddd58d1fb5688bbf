"""TotalVariation's inner prox iterations (``n_inner``) in the default model, chosen on
a validation split: ``ReTuneRegularizer(operator=A, regularizer=TotalVariation(n_inner=n))``
on denoising, deblurring and inpainting (the data of bench_problems.py), fitted on the
first 75 % of the training patches and scored on the last 25 % (validation PSNR), with
the test PSNR for information, the block contraction and process CPU seconds of the fit
(one thread). ``--cv`` instead scores the fastest candidates by 4-fold cross-validation
on the training patches of the two iterative problems, because a single 24-patch
validation split cannot separate differences of a tenth of a dB.

Run from the repository root: ``PYTHONPATH=. python benchmarks/defaults/tv_inner.py``
(``--cv`` for the cross-validation table).
"""

import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.model_selection import PredefinedSplit, cross_val_score

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import bench_problems as P  # noqa: E402  (the benchmark split and its operators)

from retune_sklearn import ReTuneRegularizer  # noqa: E402
from retune_sklearn.metrics import psnr  # noqa: E402
from retune_sklearn.regularizers import TotalVariation  # noqa: E402

torch.set_num_threads(1)
warnings.simplefilter("ignore")
N_INNER = (20, 10, 5, 3, 2)
CV_N_INNER, CV_FOLDS = (5, 3, 2), 4


def default_model(operator, n_inner):
    """The default model with ``n_inner`` inner iterations (unfitted)."""
    return ReTuneRegularizer(operator=operator, regularizer=TotalVariation(n_inner=n_inner),
                             random_state=0)


def cross_validate():
    """Print each candidate's validation PSNR (``score``) on every fold and their mean."""
    print(f"| problem | n_inner | {' | '.join(f'fold {k}' for k in range(CV_FOLDS))} | mean |\n"
          f"|---|---:|{'---:|' * (CV_FOLDS + 1)}")
    for problem in ("deblurring", "inpainting"):
        (X_train, _, y_train, _), operator, _ = P.BUILDERS[problem][0](P.FULL)
        folds = PredefinedSplit(np.arange(len(X_train)) % CV_FOLDS)  # patch i in fold i mod 4
        for n_inner in CV_N_INNER:
            scores = cross_val_score(default_model(operator, n_inner), X_train, y_train,
                                     cv=folds, error_score="raise")
            print(f"| {problem} | {n_inner} | {' | '.join(f'{s:.2f}' for s in scores)} | "
                  f"{scores.mean():.2f} |", flush=True)


if "--cv" in sys.argv:
    cross_validate()
    sys.exit()
print("| problem | n_inner | validation PSNR (dB) | test PSNR (dB) | λ | block_contraction_ | "
      "iterations per solve | fit CPU (s) |\n|---|---:|---:|---:|---:|---:|---:|---:|")
for problem in ("denoising", "deblurring", "inpainting"):
    (X_train, X_test, y_train, y_test), operator, _ = P.BUILDERS[problem][0](P.FULL)
    n_fit = int(0.75 * len(X_train))
    for n_inner in N_INNER:
        cpu = time.process_time()
        est = default_model(operator, n_inner).fit(X_train[:n_fit], y_train[:n_fit])
        cpu = time.process_time() - cpu
        validation = psnr(y_train[n_fit:], est.predict(X_train[n_fit:]))
        test = psnr(y_test, est.predict(X_test))
        print(f"| {problem} | {n_inner} | {validation:.2f} | {test:.2f} | {est.weights_[0]:.4f} | "
              f"{est.block_contraction_:.3f} | {est.n_solve_iter_} | {cpu:.1f} |", flush=True)
