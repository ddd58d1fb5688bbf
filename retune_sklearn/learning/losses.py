"""Training losses by name: ``loss(reconstruction, target) -> scalar tensor``.

A new loss is one function and one line in :data:`LOSSES`.
"""

import torch

__all__ = ["LOSSES", "mse", "negative_psnr"]


def mse(reconstruction, target):
    """Mean squared error over every entry of the batch (the bilevel objective)."""
    return torch.mean((reconstruction - target) ** 2)


def negative_psnr(reconstruction, target):
    """``mean_i 10 log10 MSE_i``: minus the mean per-sample PSNR, up to a constant
    (the data range), i.e. the criterion ``score`` reports."""
    per_sample = (reconstruction - target).flatten(1).pow(2).mean(dim=1)
    return torch.mean(10 * torch.log10(per_sample.clamp_min(torch.finfo(per_sample.dtype).tiny)))


#: Losses by the name the estimator's ``loss`` parameter takes.
LOSSES = {"mse": mse, "psnr": negative_psnr}

#: Losses that scale with the square of the data: the training loop divides
#: them by the mean square of the targets, so that Adam (whose epsilon is an
#: absolute scale) learns alike whatever the units of X and y.
SCALE_DEPENDENT = {"mse"}
