"""Test problems shared by several test files."""

import numpy as np
import torch

from retune_sklearn.operators import Blur, gaussian_kernel


def blur1d(n_signals, noise_std=0.05, length=32):
    """Smooth-plus-step 1-D signals blurred by ``0.6 δ + 0.4 g``, plus Gaussian noise.

    The blur is a strongly convex data term (``‖A‖ = 1``, ``σ_min ≈ 0.61``):
    forward–backward contracts with factor ≈ 0.63. ``noise_std`` is one
    standard deviation or one per signal. Returns ``(X, y, operator)``.
    """
    t = np.linspace(0.0, 1.0, length, endpoint=False)
    y = np.stack([0.5 * np.sin(2 * np.pi * (k + 1) * t) + (t > 0.3 + 0.1 * k)
                  for k in range(n_signals)])
    kernel = 0.6 * np.eye(1, 5, 2)[0] + 0.4 * gaussian_kernel(1.0, 5, 1)
    operator = Blur(kernel=kernel)
    X = operator.forward(torch.as_tensor(y)).numpy()
    noise = np.random.default_rng(0).standard_normal(y.shape)
    return X + noise * np.reshape(noise_std, (-1, 1)), y, operator
