"""The defaults' K and epochs on the benchmark split of bench_problems.py: K="auto"
against K=10 on denoising, and 5 / 10 / 30 epochs on denoising, deblurring and
inpainting (test PSNR, process CPU seconds of fit + predict, one thread).

Run from the repository root: ``PYTHONPATH=. python benchmarks/defaults/default_epochs.py``.
"""

import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import bench_problems as P  # noqa: E402  (the benchmark split and its operators)

from retune_sklearn import ReTuneRegularizer  # noqa: E402
from retune_sklearn.metrics import psnr  # noqa: E402
from retune_sklearn.regularizers import TotalVariation  # noqa: E402

torch.set_num_threads(1)
warnings.simplefilter("ignore")
RUNS = {"denoising": [dict(K=10, max_epochs=30), dict(max_epochs=30), dict(max_epochs=10),
                      dict(max_epochs=5)],
        "deblurring": [dict(max_epochs=30), dict(max_epochs=10), dict(max_epochs=5)],
        "inpainting": [dict(max_epochs=30), dict(max_epochs=10), dict(max_epochs=5)]}
for problem, runs in RUNS.items():
    (X_train, X_test, y_train, y_test), operator, _ = P.BUILDERS[problem][0](P.FULL)
    for params in runs:
        cpu = time.process_time()
        # n_inner=20: the default when these numbers were measured (now "auto").
        est = ReTuneRegularizer(operator=operator, regularizer=TotalVariation(n_inner=20),
                                random_state=0, **params).fit(X_train, y_train)
        score = psnr(y_test, est.predict(X_test))
        print(f"{problem:10s} {params}: K_={est.K_}, {score:.2f} dB, "
              f"{time.process_time() - cpu:.1f} s CPU", flush=True)
