"""The learnable parameters θ of a model, and the Adam optimizer over them."""

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from sklearn.utils import check_random_state

__all__ = ["Theta", "initial_theta", "theta_from_values", "make_optimizer", "optimizer_state",
           "learnable_key", "noise_scale"]


def step_logit(step_scale):
    """``logit(step_scale / 2)`` in float64: a step scale within 1e-8 of 2 (or
    of 0) would round to the boundary in float32."""
    p = torch.tensor(float(step_scale) / 2, dtype=torch.float64)
    return torch.log(p) - torch.log1p(-p)


@dataclass
class Theta:
    """The learnable parameters θ of one model, as torch tensors.

    ``log_weights``: log of the regularization weights λ_g; ``step_logit``:
    ``logit(step_scale / 2)`` (keeps the step scale in (0, 2)), a float64
    scalar; ``network``: the regularizer's own tensors (e.g. a denoiser's
    convolutions), empty for classical regularizers; ``exponents``: the
    powers ``β`` of an adaptive model's statistic (shape ``(G,)`` or ``(1,)``,
    see :mod:`retune_sklearn.learning.adaptive`), None for fixed weights.
    """

    log_weights: torch.Tensor
    step_logit: torch.Tensor
    network: dict
    exponents: Optional[torch.Tensor] = None

    @property
    def weights(self):
        """λ_g in natural units (differentiable)."""
        return self.log_weights.exp()

    @property
    def step_scale(self):
        """The step scale in (0, 2) (differentiable, float64)."""
        return 2 * torch.sigmoid(self.step_logit)

    def stepsize(self, lipschitz, dtype):
        """``τ = step_scale / L`` in ``dtype``: the one step-size formula."""
        return (self.step_scale / lipschitz).to(dtype)

    def learnable(self, learn_weights, learn_step_size):
        """Tensors to optimize: the weights (with the exponents and network) and/or the step."""
        tensors = [self.log_weights, *self._exponent_list(), *self.network.values()] \
            if learn_weights else []
        return tensors + ([self.step_logit] if learn_step_size else [])

    def _exponent_list(self):
        return [] if self.exponents is None else [self.exponents]

    def detached_copy(self):
        return Theta(self.log_weights.detach().clone(), self.step_logit.detach().clone(),
                     {k: v.detach().clone() for k, v in self.network.items()},
                     None if self.exponents is None else self.exponents.detach().clone())

    def restore(self, other):
        """Copy ``other``'s values into these tensors, in place."""
        with torch.no_grad():
            self.log_weights.copy_(other.log_weights)
            self.step_logit.copy_(other.step_logit)
            if self.exponents is not None:
                self.exponents.copy_(other.exponents)
            for name, value in self.network.items():
                value.copy_(other.network[name])

    def all_finite(self):
        weights = self.log_weights.detach().exp()
        tensors = [weights, self.step_logit, *self._exponent_list(), *self.network.values()]
        return all(bool(torch.isfinite(t).all()) for t in tensors) and bool((weights > 0).all())


def theta_from_values(weights, step_scale, network, exponents=None, *, device, dtype):
    """θ from natural-unit values (numpy or numbers), e.g. a fitted estimator's."""
    def tensor(value):
        return torch.as_tensor(value, dtype=dtype, device=device)
    return Theta(tensor(np.log(weights)), step_logit(step_scale).to(device),
                 {k: tensor(v) for k, v in network.items()},
                 None if exponents is None else tensor(np.array(exponents, dtype=np.float64)))


def initial_theta(weights, step_scale, regularizer, signal_shape, random_state, exponents=None,
                  *, device, dtype):
    """Initial θ (fresh leaf tensors): the given positive ``weights``, the
    regularizer's network initialized from ``random_state``, the initial
    ``exponents`` of an adaptive model (None: fixed weights)."""
    log_weights = torch.as_tensor(np.log(weights), dtype=dtype, device=device)
    natural = log_weights.exp()
    if not (torch.isfinite(natural).all() and (natural > 0).all()):
        raise OverflowError("the initial weights over- or underflow in this dtype")
    generator = torch.Generator().manual_seed(
        int(check_random_state(random_state).randint(2**31 - 1)))
    network = regularizer.init_parameters(signal_shape, generator)
    network = {k: v.to(dtype=dtype, device=device) for k, v in network.items()}
    if exponents is not None:
        exponents = torch.as_tensor(np.array(exponents, dtype=np.float64), dtype=dtype,
                                    device=device)
    return Theta(log_weights.clone(), step_logit(step_scale).to(device), network, exponents)


def noise_scale(X_t, y_t, operator):
    """Standard deviation of ``X − A y`` (observed entries only), with a floor."""
    with torch.no_grad():
        residual = X_t.values - operator.forward(y_t)
        if X_t.mask is not None:  # the noise of the observed entries only
            residual = residual[X_t.mask > 0]
        noise_std = float(residual.std()) if residual.numel() > 1 else 0.0
    return noise_std if noise_std > 0 else 1e-3 * max(float(y_t.std()), 1e-3)


# ------------------------------------------------------------------------- optimizer
def learnable_key(learn_weights, learn_step_size, parameters):
    """What an Adam state belongs to: which tensors, of which shapes."""
    return (learn_weights, learn_step_size, tuple(tuple(p.shape) for p in parameters))


def make_optimizer(parameters, learning_rate, key, stored=None):
    """Adam on ``parameters`` (None if empty), from the ``stored`` state if its key is ``key``."""
    if not parameters:
        return None
    for p in parameters:
        p.requires_grad_(True)
    optimizer = torch.optim.Adam(parameters, lr=learning_rate)
    if stored is not None and stored["key"] == key:
        optimizer.load_state_dict(stored["state"])  # moves the moments to the device
        for group in optimizer.param_groups:  # a changed learning_rate applies
            group["lr"] = learning_rate
    return optimizer


def optimizer_state(optimizer, key):
    """Adam's state with CPU tensors (picklable and device-free), or None."""
    if optimizer is None:
        return None
    state = optimizer.state_dict()
    state["state"] = {i: {k: v.detach().cpu().clone() if torch.is_tensor(v) else v
                          for k, v in moments.items()}
                      for i, moments in state["state"].items()}
    return {"key": key, "state": state}
