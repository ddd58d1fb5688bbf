"""The last iterate of each training sample, to start its next solve from.

The weights change little from one outer step to the next, so the
equilibrium of a sample moves little: starting its solve where the previous
one ended leaves a few blocks to run instead of a full solve. Only valid
when solves run to a tolerance (then the start changes the cost, not the
result); the estimator uses it only with ``tol``.
"""

import copy

import torch

__all__ = ["IterateBank", "NearestStarts"]


class IterateBank:
    """Coefficients of ``n_samples`` samples, filled as the solves run.

    ``start(index, cold)`` returns the stored iterates of the samples
    ``index`` where there are some, and ``cold`` (the back-projection)
    elsewhere; ``store(index, u)`` keeps the new ones. With a warm inner
    solver (``TotalVariation(n_inner_warm=k)``) the bank also keeps each
    sample's inner state (the dual), ``store(index, u, inner)`` and
    :meth:`start_inner`: zeros, the cold start, where none is stored.
    """

    def __init__(self, n_samples):
        self.n_samples = n_samples
        self._iterates = None
        self._filled = None
        self._inner = None

    def start(self, index, cold):
        if self._iterates is None or self._iterates.shape[1:] != cold.shape[1:]:
            return cold
        filled = self._filled[index]
        if not bool(filled.any()):
            return cold
        kept = self._iterates[index].to(device=cold.device, dtype=cold.dtype)
        return torch.where(filled.reshape((-1,) + (1,) * (cold.dim() - 1)), kept, cold)

    def start_inner(self, index, like):
        """The stored inner states of ``index`` in ``like``'s dtype and device (zeros,
        the cold start, for samples without one), or None when none is stored."""
        if self._inner is None or not bool(self._filled[index].any()):
            return None
        return self._inner[index].to(device=like.device, dtype=like.dtype)

    def store(self, index, u, inner=None):
        u = u.detach()
        if self._iterates is None or self._iterates.shape[1:] != u.shape[1:]:
            self._iterates = u.new_zeros((self.n_samples, *u.shape[1:]))
            self._filled = torch.zeros(self.n_samples, dtype=torch.bool, device=u.device)
            self._inner = None
        self._iterates[index] = u.to(self._iterates.dtype)
        self._filled[index] = True
        if inner is not None:
            inner = inner.detach()
            if self._inner is None or self._inner.shape[1:] != inner.shape[1:]:
                self._inner = inner.new_zeros((self.n_samples, *inner.shape[1:]))
            self._inner[index] = inner.to(self._inner.dtype)


class NearestStarts:
    """Iterate banks of the points a search evaluated, to start each new solve
    from the solutions at the nearest point evaluated before.

    The searches of the initial weights (:mod:`.initialization`) solve one batch
    at a dozen weight vectors a factor √2–2 apart; starting each solve from its
    neighbour's equilibrium instead of the back-projection cuts its restarted
    blocks, not its result (solves run to a tolerance).
    """

    def __init__(self, n_samples):
        self.n_samples = n_samples
        self._banks = []  # (point, IterateBank)

    def bank_near(self, point):
        """A bank holding the solutions at the evaluated point nearest to ``point``
        (max-norm distance; an empty bank at first); it is kept as ``point``'s and
        receives that solve's solutions."""
        point = point.detach().clone()
        if self._banks:
            nearest = min(self._banks, key=lambda pb: float((pb[0] - point).abs().max()))[1]
            bank = copy.deepcopy(nearest)
        else:
            bank = IterateBank(self.n_samples)
        self._banks.append((point, bank))
        return bank
