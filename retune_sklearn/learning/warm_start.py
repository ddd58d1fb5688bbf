"""The last iterate of each training sample, to start its next solve from.

The weights change little from one outer step to the next, so the
equilibrium of a sample moves little: starting its solve where the previous
one ended leaves a few blocks to run instead of a full solve. Only valid
when solves run to a tolerance (then the start changes the cost, not the
result); the estimator uses it only with ``tol``.
"""

import torch

__all__ = ["IterateBank"]


class IterateBank:
    """Coefficients of ``n_samples`` samples, filled as the solves run.

    ``start(index, cold)`` returns the stored iterates of the samples
    ``index`` where there are some, and ``cold`` (the back-projection)
    elsewhere; ``store(index, u)`` keeps the new ones.
    """

    def __init__(self, n_samples):
        self.n_samples = n_samples
        self._iterates = None
        self._filled = None

    def start(self, index, cold):
        if self._iterates is None or self._iterates.shape[1:] != cold.shape[1:]:
            return cold
        filled = self._filled[index]
        if not bool(filled.any()):
            return cold
        kept = self._iterates[index].to(device=cold.device, dtype=cold.dtype)
        return torch.where(filled.reshape((-1,) + (1,) * (cold.dim() - 1)), kept, cold)

    def store(self, index, u):
        u = u.detach()
        if self._iterates is None or self._iterates.shape[1:] != u.shape[1:]:
            self._iterates = u.new_zeros((self.n_samples, *u.shape[1:]))
            self._filled = torch.zeros(self.n_samples, dtype=torch.bool, device=u.device)
        self._iterates[index] = u.to(self._iterates.dtype)
        self._filled[index] = True
