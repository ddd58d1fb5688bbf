"""Candidate defaults of ReTuneRegularizer on denoising σ = 0.1 (only the listed
parameters set; everything else the package default).

Run from the repository root (one torch thread)::

    python benchmarks/defaults/denoising_defaults.py

Data: the benchmark split of bench_problems.py (96 training / 48 test 64×64
patches, training and test patches from different photos). Prints test PSNR
after 5 and 30 epochs (two fits: the epochs are the default's
``max_epochs`` choice), the process CPU time of the 30-epoch fit, and the
baselines the defaults must beat (BayesShrink, cycle-spun BayesShrink).
"""

import time
import warnings

import torch

from retune_sklearn import ReTuneRegularizer
from retune_sklearn.baselines import bayes_shrink, cycle_spin_bayes_shrink
from retune_sklearn.datasets import make_image_problem
from retune_sklearn.metrics import psnr
from retune_sklearn.regularizers import TotalVariation, WaveletL1

torch.set_num_threads(1)
warnings.simplefilter("ignore")
X_train, X_test, y_train, y_test = make_image_problem(None, noise_sigma=0.1, n_train=96,
                                                      n_test=48, random_state=0)
print(f"noisy {psnr(y_test, X_test):.2f} dB; BayesShrink {psnr(y_test, bayes_shrink(X_test, 0.1)):.2f}"
      f" dB; cycle-spun BayesShrink {psnr(y_test, cycle_spin_bayes_shrink(X_test, 0.1)):.2f} dB")
CANDIDATES = {
    "ReTuneRegularizer() (WaveletL1, loss='mse')": dict(),
    "WaveletL1, loss='psnr'": dict(loss="psnr"),
    "WaveletL1, loss='psnr', adaptive_weights='detail'": dict(loss="psnr",
                                                              adaptive_weights="detail"),
    "TotalVariation(), loss='mse'": dict(regularizer=TotalVariation()),
    "TotalVariation(), loss='psnr'": dict(regularizer=TotalVariation(), loss="psnr"),
    "TotalVariation(), loss='psnr', adaptive_weights='detail'": dict(
        regularizer=TotalVariation(), loss="psnr", adaptive_weights="detail"),
    "TotalVariation(), loss='psnr', adaptive_weights='noise'": dict(
        regularizer=TotalVariation(), loss="psnr", adaptive_weights="noise"),
}
for name, params in CANDIDATES.items():
    scores = []
    for epochs in (5, 30):
        params = {**params, "regularizer": params.get("regularizer", WaveletL1())}
        cpu = time.process_time()
        est = ReTuneRegularizer(max_epochs=epochs, random_state=0, **params).fit(X_train, y_train)
        scores.append(f"{est.score(X_test, y_test):.2f}")
        cpu = time.process_time() - cpu
    print(f"{name}: {' / '.join(scores)} dB after 5 / 30 epochs; 30-epoch fit "
          f"{cpu:.0f} s CPU", flush=True)
