"""Whether ``adaptive_weights="detail"`` should join the defaults: 4-fold cross-validation
of ``ReTuneRegularizer(operator=A, random_state=0)`` with and without it on the training
patches of denoising, deblurring and inpainting (the data of bench_problems.py; patch i in
fold i mod 4), one torch thread. The test photos are not used.

Run from the repository root: ``PYTHONPATH=. python benchmarks/defaults/adaptive_cv.py``.
"""

import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.model_selection import PredefinedSplit, cross_val_score

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import bench_problems as P  # noqa: E402  (the benchmark split and its operators)

from retune_sklearn import ReTuneRegularizer  # noqa: E402

torch.set_num_threads(1)
warnings.simplefilter("ignore")
FOLDS = 4
print(f"| problem | adaptive_weights | {' | '.join(f'fold {k}' for k in range(FOLDS))} | mean |\n"
      f"|---|---|{'---:|' * (FOLDS + 1)}")
for problem in ("denoising", "deblurring", "inpainting"):
    (X, _, y, _), operator, _ = P.BUILDERS[problem][0](P.FULL)
    folds = PredefinedSplit(np.arange(len(X)) % FOLDS)
    for adaptive in (None, "detail"):
        model = ReTuneRegularizer(operator=operator, adaptive_weights=adaptive, random_state=0)
        scores = cross_val_score(model, X, y, cv=folds, error_score="raise")  # mean PSNR
        print(f"| {problem} | {adaptive} | {' | '.join(f'{s:.2f}' for s in scores)} | "
              f"{scores.mean():.2f} |", flush=True)
