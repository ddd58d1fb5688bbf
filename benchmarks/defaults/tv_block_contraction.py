"""Contraction of TotalVariation's step on the README usage example (deblurring), at a
fixed weight 0.003: periodic / Neumann boundary, n_inner 10 / 20 / 50, step_scale 0.5.

Run from the repository root: ``PYTHONPATH=. python benchmarks/defaults/tv_block_contraction.py``.
"""

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
for boundary, n_inner, step_scale in (("periodic", 20, 1.0), ("periodic", 50, 1.0),
                                      ("reflect", 20, 1.0), ("reflect", 50, 1.0),
                                      ("reflect", 10, 1.0), ("reflect", 20, 0.5)):
    est = ReTuneRegularizer(operator=blur,
                            regularizer=TotalVariation(n_inner=n_inner, boundary=boundary),
                            step_scale=step_scale, K=10, T=10, max_epochs=2, batch_size=16,
                            learn_weights=False, init_weight=0.003,
                            random_state=0).fit(X_train, y_train)
    print(f"{boundary:8s} n_inner={n_inner:2d} step_scale={step_scale}: step "
          f"{est.contraction_factor_:.3f}, block {est.block_contraction_:.3f}, test "
          f"{est.score(X_test, y_test):.2f} dB", flush=True)
