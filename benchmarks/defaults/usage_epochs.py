"""The README usage example (TV deblurring) after 5 and after 30 epochs (is the
5-epoch fit within 0.2 dB of 30?), and the same with adaptive_weights="detail"
after 5 epochs.

Run from the repository root: ``python benchmarks/defaults/usage_epochs.py``.
"""

import time
import warnings

import torch

from retune_sklearn import ReTuneRegularizer
from retune_sklearn.datasets import make_image_problem
from retune_sklearn.operators import Blur
from retune_sklearn.regularizers import TotalVariation

torch.set_num_threads(1)
warnings.simplefilter("ignore")
blur = Blur(sigma=1.5, size=9)
X_train, X_test, y_train, y_test = make_image_problem(blur, noise_sigma=0.01, n_train=32,
                                                      n_test=16, random_state=0)
for adaptive, epoch_list in ((None, (5, 30)), ("detail", (5,))):
    scores = {}
    for epochs in epoch_list:
        cpu = time.process_time()
        est = ReTuneRegularizer(operator=blur, regularizer=TotalVariation(n_inner=20), K=10, T=10,
                                max_epochs=epochs, batch_size=16, n_threads=1, random_state=0,
                                adaptive_weights=adaptive).fit(X_train, y_train)
        scores[epochs] = est.score(X_test, y_test)
        print(f"adaptive_weights={adaptive!r}, {epochs} epochs: {scores[epochs]:.2f} dB, "
              f"weights {est.weights_}, exponents {est.weight_exponents_}, "
              f"{time.process_time() - cpu:.0f} s CPU", flush=True)
    if 30 in scores:
        print(f"  5 epochs − 30 epochs: {scores[5] - scores[30]:+.2f} dB", flush=True)
