"""A one-dimensional search of the common scale of the initial weights.

Adam moves log-weights by about ``learning_rate`` per step, so a start a
decade away from the good weights costs tens of outer steps before the
per-group learning even begins (a 5-epoch fit used to end near its
initialization). Scaling all weights by one factor chosen on the training
loss of one batch puts the start at the right order of magnitude for the
price of a dozen solves without autograd.
"""

import math

import torch

__all__ = ["search_common_scale"]

#: Factors tried around the initial weights: 1/16 … 64 in octaves, then the
#: half-octaves on each side of the best.
COARSE_FACTORS = tuple(2.0 ** k for k in range(-4, 7))


def search_common_scale(loss_at, log_weights):
    """The factor ``c`` minimizing ``loss_at(log_weights + log c)``.

    ``loss_at`` maps log-weights to a (no-grad) loss; non-finite losses
    count as worst. Returns the factor and its loss.
    """
    def evaluate(factor):
        with torch.no_grad():
            value = float(loss_at(log_weights + math.log(factor)))
        return value if math.isfinite(value) else math.inf

    losses = {factor: evaluate(factor) for factor in COARSE_FACTORS}
    best = min(losses, key=losses.get)
    for factor in (best / math.sqrt(2), best * math.sqrt(2)):
        losses[factor] = evaluate(factor)
    best = min(losses, key=losses.get)
    return best, losses[best]
