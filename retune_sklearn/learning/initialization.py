"""One-dimensional searches of the common scale of the initial weights and of
the common exponent of adaptive weights.

Adam moves log-weights by about ``learning_rate`` per step, so a start a
decade away from the good weights costs tens of outer steps before the
per-group learning even begins (a 5-epoch fit used to end near its
initialization). Scaling all weights by one factor chosen on the training
loss of one batch puts the start at the right order of magnitude for the
price of a dozen solves without autograd. The exponents ``β`` of adaptive
weights (:mod:`retune_sklearn.learning.adaptive`) learned on denoising are
of order −3 to −6, sixty Adam steps away from their start at 0: a search of
one common ``β`` on the same batch starts them there.
"""

import math

import torch

__all__ = ["search_common_scale", "search_common_exponent"]

#: Factors tried around the initial weights: 1/16 … 64 in octaves, then the
#: half-octaves on each side of the best.
COARSE_FACTORS = tuple(2.0 ** k for k in range(-4, 7))
#: Common exponents tried (then the half-steps on each side of the best).
COARSE_EXPONENTS = tuple(float(b) for b in range(-6, 3))


def search_common_scale(loss_at, log_weights):
    """The factor ``c`` minimizing ``loss_at(log_weights + log c)``.

    ``loss_at`` maps log-weights to a (no-grad) loss; non-finite losses
    count as worst. Returns the factor and its loss.
    """
    return _coarse_then_fine(lambda factor: loss_at(log_weights + math.log(factor)),
                             COARSE_FACTORS, lambda best: (best / math.sqrt(2),
                                                           best * math.sqrt(2)))


def search_common_exponent(loss_at, exponents):
    """The value ``b`` minimizing ``loss_at(b · 1)`` (every exponent equal to
    ``b``) over :data:`COARSE_EXPONENTS`, then ``b ± 0.5``; returns it and its loss."""
    return _coarse_then_fine(lambda b: loss_at(torch.full_like(exponents, b)),
                             COARSE_EXPONENTS, lambda best: (best - 0.5, best + 0.5))


def _coarse_then_fine(loss_of, coarse, neighbours):
    """The candidate of least (no-grad) loss among ``coarse`` and the
    ``neighbours(best)`` of the best one; non-finite losses count as worst.
    Ties keep the earliest candidate."""
    def evaluate(candidate):
        with torch.no_grad():
            value = float(loss_of(candidate))
        return value if math.isfinite(value) else math.inf

    losses = {candidate: evaluate(candidate) for candidate in coarse}
    best = min(losses, key=losses.get)
    for candidate in neighbours(best):
        losses[candidate] = evaluate(candidate)
    best = min(losses, key=losses.get)
    return best, losses[best]
