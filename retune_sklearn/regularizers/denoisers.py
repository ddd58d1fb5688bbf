"""Plug-and-play: :class:`LearnedDenoiser`, a small CNN in place of the prox."""

import torch

from .._params import positive_int
from ..zoo import lipschitz_normalized
from ._base import Regularizer, scalar_weight


class LearnedDenoiser(Regularizer):
    """Plug-and-play forward–backward with a small residual CNN as the prox.

    The prox step is replaced by ``D(v) = v − t · N(v)`` where ``t = τ λ``
    (step size times the learned "strength" weight) and ``N`` is a small
    convolutional network (``n_layers`` convolutions with ReLUs, circular
    padding) whose weights are learned by ReTune from scratch together with
    ``λ`` (and the step size if ``learn_step_size``). For small ``t``, ``D``
    is a gradient step on a learned regularizer whose gradient is ``N``.
    Nothing is downloaded: the network starts from a seeded random
    initialization (``random_state`` of the estimator).

    Parameters
    ----------
    n_layers : int, default=3
        Number of convolutions.
    n_channels : int, default=16
        Channels of the hidden layers.
    kernel_size : int, default=3
        Odd side of the convolution kernels.
    lipschitz_bound : bool, default=True
        Rescale each convolution so that ``√(k^ndim) · ‖W‖₂ ≤ 1`` (``‖W‖₂``:
        spectral norm of the kernel reshaped to (out, in·k^ndim)), an upper
        bound of the convolution's Lipschitz constant; then ``Lip(N) ≤ 1`` and
        ``Lip(D) ≤ 1 + t``. This keeps the iteration stable (a contraction
        when ``A`` is well conditioned and ``t`` small) but does not make ``D``
        non-expansive by itself.

    Notes
    -----
    Works on 1-D signals (conv1d) and on ``(H, W)`` or ``(C, H, W)`` images
    (conv2d, ``C`` input channels). There is no explicit penalty, so
    :meth:`penalty` is not defined. Use a smaller ``learning_rate`` (e.g.
    0.01) than for classical weights, and a larger ``init_weight`` (e.g. 1).
    """

    _parameter_constraints = {
        "n_layers": [positive_int()],
        "n_channels": [positive_int()],
        "kernel_size": [positive_int()],
        "lipschitz_bound": ["boolean"],
    }

    def __init__(self, n_layers=3, n_channels=16, kernel_size=3, lipschitz_bound=True):
        self.n_layers = n_layers
        self.n_channels = n_channels
        self.kernel_size = kernel_size
        self.lipschitz_bound = lipschitz_bound

    def _check_signal_shape(self, signal_shape):
        if self.kernel_size % 2 == 0:
            raise ValueError(f"LearnedDenoiser `kernel_size` must be odd; got {self.kernel_size}.")

    def weight_names(self, signal_shape):
        self.check_signal_shape(signal_shape)
        return ["strength"]

    @staticmethod
    def _layout(signal_shape):
        """(input channels, spatial ndim) of a signal shape."""
        if len(signal_shape) == 1:
            return 1, 1
        return (signal_shape[0] if len(signal_shape) == 3 else 1), 2

    def init_parameters(self, signal_shape, generator):
        self.check_signal_shape(signal_shape)
        channels, ndim = self._layout(tuple(signal_shape))
        sizes = [channels] + [self.n_channels] * (self.n_layers - 1) + [channels]
        params = {}
        for i, (c_in, c_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            fan_in = c_in * self.kernel_size ** ndim
            shape = (c_out, c_in) + (self.kernel_size,) * ndim
            # He initialization; the last layer starts small so D ≈ identity.
            scale = (2.0 / fan_in) ** 0.5 * (0.1 if i == self.n_layers - 1 else 1.0)
            params[f"conv{i}.weight"] = scale * torch.randn(shape, generator=generator,
                                                            dtype=torch.float64)
            params[f"conv{i}.bias"] = torch.zeros(c_out, dtype=torch.float64)
        return params

    def _network(self, v, network):
        """``N(v)`` for a batch of signals ``v``."""
        signal_shape = tuple(v.shape[1:])
        channels, ndim = self._layout(signal_shape)
        conv = torch.nn.functional.conv1d if ndim == 1 else torch.nn.functional.conv2d
        h = v.reshape(v.shape[0], channels, *signal_shape[-ndim:])
        pad = (self.kernel_size // 2,) * (2 * ndim)
        for i in range(self.n_layers):
            weight = network[f"conv{i}.weight"]
            if self.lipschitz_bound:
                weight = lipschitz_normalized(weight)
            h = conv(torch.nn.functional.pad(h, pad, mode="circular"), weight,
                     network[f"conv{i}.bias"])
            if i < self.n_layers - 1:
                h = torch.relu(h)
        return h.reshape(v.shape)

    def prox(self, u, thresholds, network=None):
        if not network:
            raise ValueError("LearnedDenoiser needs its network tensors (from "
                             "init_parameters or a fitted estimator's regularizer_params_).")
        return u - scalar_weight(thresholds, u) * self._network(u, network)

    def penalty(self, u, weights):
        raise NotImplementedError("LearnedDenoiser has no explicit penalty (plug-and-play).")
