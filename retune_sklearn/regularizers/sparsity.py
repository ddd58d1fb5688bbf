"""Regularizers ``Σ_g λ_g R_g`` with one learnable weight per group ``g``.

A regularizer defines the variable ``u`` that the forward–backward solver
iterates on (synthesis form: the signal is ``x = synthesis(u)``) and the
proximal map of its weighted penalty. The weights themselves are owned by
the estimator (learned in the log domain); the regularizer only says how
many there are and what they are called, for a given signal shape.

Interface used by :mod:`retune_sklearn.solvers`:

* ``check_signal_shape(signal_shape)``: raise ``ValueError`` if unsupported;
* ``weight_names(signal_shape)``: one name per learnable weight;
* ``analysis(x)`` / ``synthesis(u)``: ``W x`` and ``W* u``
  (``synthesis(analysis(x)) == x``);
* ``prox(u, thresholds, network)``: prox of ``Σ_g thresholds[g] R_g`` at
  ``u`` (or, for learned regularizers, the map that stands in for it);
* ``penalty(u, weights)``: ``Σ_g weights[g] R_g(u)`` per sample;
* ``init_parameters(signal_shape, generator)``: the regularizer's own
  learnable tensors (``network``), e.g. a denoiser's convolutions; empty
  for classical regularizers.
"""

import math
import numbers

import torch

from .._params import ParameterObject, spatial_ndim
from ..wavelets import WaveletTransform

__all__ = ["Regularizer", "L1Norm", "WaveletL1", "Tikhonov", "TotalVariation", "LearnedDenoiser",
           "soft_threshold"]


def _norm(x, dim, keepdim=False):
    """Euclidean norm along ``dim`` whose derivative is 0, not NaN, at 0.

    sqrt'(0) is infinite: zero vectors (flat image regions, all-zero colour
    coefficients) would give NaN hypergradients. Clamping the squared norm
    at the smallest normal number zeroes the derivative there and changes
    no value that matters (``torch.linalg.vector_norm`` does the same but
    its backward is about 4× slower on CPU).
    """
    return x.pow(2).sum(dim=dim, keepdim=keepdim).clamp_min(torch.finfo(x.dtype).tiny).sqrt()


def soft_threshold(u, threshold):
    """Prox of ``threshold * |.|`` (elementwise), differentiable in both."""
    return torch.sign(u) * torch.relu(u.abs() - threshold)


class Regularizer(ParameterObject):
    """Base class of regularizers (see the module docstring for the interface)."""

    def check_signal_shape(self, signal_shape):
        """Raise ``ValueError`` if the regularizer cannot act on ``signal_shape``."""

    def weight_names(self, signal_shape):
        raise NotImplementedError

    def analysis(self, x):
        return x

    def synthesis(self, u):
        return u

    def prox(self, u, thresholds, network=None):
        raise NotImplementedError

    def penalty(self, u, weights):
        raise NotImplementedError

    def init_parameters(self, signal_shape, generator):
        """Initial learnable tensors besides the weights (none by default)."""
        return {}


class L1Norm(Regularizer):
    """``λ ‖x‖₁``: sparsity of the signal itself (one learnable weight).

    The model of the Lasso; its prox is an exact soft-thresholding. Use it for
    signals that are sparse in the canonical basis (spikes), e.g. compressed
    sensing with :class:`~retune_sklearn.operators.MatrixOperator`.
    """

    def weight_names(self, signal_shape):
        return ["l1"]

    def prox(self, u, thresholds, network=None):
        return soft_threshold(u, thresholds[0])

    def penalty(self, u, weights):
        return weights[0] * u.abs().flatten(1).sum(dim=1)


_WEIGHT_MODES = ("scalar", "level", "subband")


class WaveletL1(Regularizer):
    """Weighted ℓ1 norm of wavelet coefficients (synthesis form).

    ``R(x) = Σ_g λ_g ‖u_g‖₁`` with ``x = W* u``, where ``W`` is an orthonormal
    periodized discrete wavelet transform (2-D on the last two axes of
    images, 1-D for 1-D signals; channels of ``(C, H, W)`` images share the
    weights) and the groups ``g`` are set by ``weights``. Its prox in the
    coefficient domain is an exact soft-thresholding.

    With ``translation_invariant=True``, ``W`` stacks the transforms of the
    ``n_shifts ** ndim`` circular shifts of the signal (cycle spinning),
    scaled by ``1/√S``: a Parseval frame (``W* W = I``), redundant by ``S``.
    The forward–backward iteration is then no longer exact after one step
    for denoising, and its contraction factor on the coefficients is 1
    (the synthesis data term is not strongly convex in ``u``): convergence
    is sublinear, so use a larger ``K·T``.

    Parameters
    ----------
    wavelet : str, default="db4"
        Name of an orthogonal PyWavelets wavelet (haar, dbN, symN, coifN).
    levels : int, default=3
        Number of decomposition levels. The signal's sides must be divisible
        by ``2**levels``.
    weights : {"scalar", "level", "subband"}, default="subband"
        One weight for all coefficients; one for the approximation plus one
        per level; or one per subband (``3 * levels + 1`` in 2-D,
        ``levels + 1`` in 1-D).
    penalize_approximation : bool, default=True
        If False, the coarse approximation band is not penalized and gets no
        weight.
    translation_invariant : bool, default=False
        Use the cycle-spun Parseval frame instead of the orthonormal basis.
    n_shifts : int, default=2
        Shifts per axis of the translation-invariant frame (``0 .. n_shifts-1``
        pixels); the frame has ``n_shifts ** ndim`` copies.
    channels : {"shared", "separate", "group"}, default="shared"
        For ``(C, H, W)`` images: the channels share the weights
        (``"shared"``), each channel has its own (``"separate"``: ``C`` times
        as many weights, named ``"c0:h3"``, ...), or the channels are coupled
        by a group ℓ1,2 norm, ``λ_g Σ_p ‖(u_{1,p}, …, u_{C,p})‖₂`` whose prox
        is a group soft-thresholding (``"group"``: the colors of a
        coefficient are kept or shrunk together). Ignored without a channel
        axis.
    """

    def __init__(self, wavelet="db4", levels=3, weights="subband", penalize_approximation=True,
                 translation_invariant=False, n_shifts=2, channels="shared"):
        self.wavelet = wavelet
        self.levels = levels
        self.weights = weights
        self.penalize_approximation = penalize_approximation
        self.translation_invariant = translation_invariant
        self.n_shifts = n_shifts
        self.channels = channels

    def _transform(self, ndim):
        if self.weights not in _WEIGHT_MODES:
            raise ValueError(f"WaveletL1 `weights` must be one of {_WEIGHT_MODES}; "
                             f"got {self.weights!r}.")
        if not isinstance(self.levels, numbers.Integral) or isinstance(self.levels, bool):
            raise TypeError(f"WaveletL1 `levels` must be an integer; got {self.levels!r}.")
        return self._cached(("transform", ndim),
                            lambda: WaveletTransform(self.wavelet, int(self.levels), ndim))

    def check_signal_shape(self, signal_shape):
        if self.channels not in ("shared", "separate", "group"):
            raise ValueError("WaveletL1 `channels` must be 'shared', 'separate' or 'group'; "
                             f"got {self.channels!r}.")
        ndim = spatial_ndim(signal_shape)
        self._transform(ndim).check_shape(tuple(signal_shape[-ndim:]))

    def _groups(self, spatial_shape):
        """Map each coefficient position to a weight index (-1: unpenalized).

        Returns the index map (LongTensor of ``spatial_shape``) and the names
        of the weights.
        """
        def build():
            transform = self._transform(len(spatial_shape))
            index, subbands = transform.subband_index(spatial_shape)
            if self.weights == "subband":
                group_of, names = list(range(len(subbands))), list(subbands)
            elif self.weights == "level":
                # The approximation has level `levels + 1`: group 0, then details coarsest first.
                levels = transform.subband_levels()
                distinct = sorted(set(levels), reverse=True)
                group_of = [distinct.index(level) for level in levels]
                names = ["approximation"] + [f"level{j}" for j in distinct[1:]]
            else:
                group_of, names = [0] * len(subbands), ["all"]
            if not self.penalize_approximation:
                # The approximation is subband 0 and group 0 in every mode.
                group_of = _renumber([-1] + group_of[1:])
                if self.weights != "scalar":
                    names = names[1:]
            lookup = torch.as_tensor(group_of, dtype=torch.long)
            return lookup[index], names
        return self._cached(("groups", tuple(spatial_shape)), build)

    def weight_names(self, signal_shape):
        self.check_signal_shape(signal_shape)
        ndim = spatial_ndim(signal_shape)
        names = list(self._groups(tuple(signal_shape[-ndim:]))[1])
        if self.channels == "separate" and len(signal_shape) == 3:
            return [f"c{c}:{name}" for c in range(signal_shape[0]) for name in names]
        return names

    def _shifts(self, ndim):
        """The circular shifts of the translation-invariant frame."""
        if not isinstance(self.n_shifts, numbers.Integral) or self.n_shifts < 1:
            raise ValueError(f"WaveletL1 `n_shifts` must be a positive integer; "
                             f"got {self.n_shifts!r}.")
        grid = torch.cartesian_prod(*[torch.arange(self.n_shifts)] * ndim).reshape(-1, ndim)
        return [tuple(int(v) for v in shift) for shift in grid]

    def _signal_shape_of(self, u):
        """Shape of the signal behind coefficients ``u`` (one sample)."""
        return u.shape[2:] if self.translation_invariant else u.shape[1:]

    def _signal_ndim(self, u):
        """Spatial axes of the signal behind coefficients ``u``."""
        return spatial_ndim(self._signal_shape_of(u))

    def _has_channels(self, u):
        return len(self._signal_shape_of(u)) == 3

    def analysis(self, x):
        ndim = spatial_ndim(x.shape[1:])
        transform = self._transform(ndim)
        if not self.translation_invariant:
            return transform.forward(x)
        axes = tuple(range(-ndim, 0))
        shifted = torch.stack([torch.roll(x, s, axes) for s in self._shifts(ndim)], dim=1)
        return transform.forward(shifted) / len(self._shifts(ndim)) ** 0.5

    def synthesis(self, u):
        ndim = self._signal_ndim(u)
        transform = self._transform(ndim)
        if not self.translation_invariant:
            return transform.inverse(u)
        axes = tuple(range(-ndim, 0))
        shifts = self._shifts(ndim)
        copies = transform.inverse(u)
        unshifted = [torch.roll(copies[:, i], tuple(-v for v in s), axes)
                     for i, s in enumerate(shifts)]
        return torch.stack(unshifted).sum(dim=0) / len(shifts) ** 0.5

    def _coefficient_weights(self, u, weights):
        """Broadcast per-group ``weights`` to a map of ``u``'s spatial shape.

        With ``channels="separate"`` the map also has the channel axis.
        """
        ndim = self._signal_ndim(u)
        index, _ = self._groups(tuple(u.shape[-ndim:]))
        index = self._cached(("index", index.shape, str(u.device)), lambda: index.to(u.device))
        if self.channels == "separate" and self._has_channels(u):
            per_channel = weights.reshape(u.shape[-3], -1)
            padded = torch.cat([per_channel, per_channel.new_zeros(len(per_channel), 1)], dim=1)
            return padded[:, index]  # index -1 -> the appended zero weight
        padded = torch.cat([weights, weights.new_zeros(1)])
        return padded[index]

    def _grouped(self, u):
        """Whether the channel axis (-3) of ``u`` is a group of the ℓ1,2 norm."""
        return self.channels == "group" and self._has_channels(u)

    def prox(self, u, thresholds, network=None):
        threshold = self._coefficient_weights(u, thresholds)
        if not self._grouped(u):
            return soft_threshold(u, threshold)
        norms = _norm(u, dim=-3, keepdim=True)
        # Group soft-thresholding: shrink the colour vector of each coefficient.
        return u * torch.relu(1 - threshold / norms.clamp_min(torch.finfo(u.dtype).tiny))

    def penalty(self, u, weights):
        magnitude = _norm(u, dim=-3) if self._grouped(u) else u.abs()
        return (self._coefficient_weights(u, weights) * magnitude).flatten(1).sum(dim=1)


def _renumber(group_of):
    """Renumber non-negative group ids to 0..G-1, keeping their order."""
    kept = sorted({g for g in group_of if g >= 0})
    return [kept.index(g) if g >= 0 else -1 for g in group_of]


def _difference_axes(x):
    """Axes of the finite differences of a batch ``x`` of signals."""
    return tuple(range(-spatial_ndim(x.shape[1:]), 0))


def _gradient(x, axes):
    """Forward differences with periodic boundary, stacked on a new axis 1."""
    return torch.stack([torch.roll(x, -1, axis) - x for axis in axes], dim=1)


def _gradient_adjoint(q, axes):
    """Adjoint of :func:`_gradient` (minus a periodic divergence)."""
    return sum(torch.roll(q[:, i], 1, axis) - q[:, i] for i, axis in enumerate(axes))


class Tikhonov(Regularizer):
    """Quadratic regularizer ``λ/2 ‖D x‖²`` with one learnable weight.

    Parameters
    ----------
    order : {0, 1}, default=0
        0: ``D = I`` (ridge on the signal); 1: ``D`` = periodic forward
        differences along the signal's axes (smoothness).

    Notes
    -----
    Smooth and strongly convex for ``order=0`` (or for ``order=1`` when ``A``
    keeps constants), so forward–backward contracts and the minimizer has the
    closed form ``(AᵀA + λ DᵀD)⁻¹ Aᵀ y``. The prox is exact: a division in
    the Fourier domain, where periodic ``DᵀD`` is diagonal.
    """

    def __init__(self, order=0):
        self.order = order

    def check_signal_shape(self, signal_shape):
        if self.order not in (0, 1):
            raise ValueError(f"Tikhonov `order` must be 0 or 1; got {self.order!r}.")

    def weight_names(self, signal_shape):
        self.check_signal_shape(signal_shape)
        return ["tikhonov"]

    def _laplacian_symbol(self, x):
        """Eigenvalues of periodic ``DᵀD`` on the rFFT grid of ``x``."""
        axes = _difference_axes(x)
        shape = tuple(x.shape[a] for a in axes)

        def build():
            symbol = 0
            for i, n in enumerate(shape):
                last = i == len(shape) - 1  # rfftn halves the last axis only
                freq = (torch.fft.rfftfreq if last else torch.fft.fftfreq)(n, dtype=torch.float64)
                eig = 2 - 2 * torch.cos(2 * torch.pi * freq)
                symbol = symbol + eig.reshape((-1,) + (1,) * (len(shape) - 1 - i))
            return symbol
        return self._cached(("symbol", shape), build).to(device=x.device, dtype=x.dtype), axes

    def prox(self, u, thresholds, network=None):
        if self.order == 0:
            return u / (1 + thresholds[0])
        symbol, axes = self._laplacian_symbol(u)
        spectrum = torch.fft.rfftn(u, dim=axes) / (1 + thresholds[0] * symbol)
        return torch.fft.irfftn(spectrum, s=tuple(u.shape[a] for a in axes), dim=axes)

    def penalty(self, u, weights):
        if self.order == 0:
            return 0.5 * weights[0] * u.flatten(1).pow(2).sum(dim=1)
        axes = _difference_axes(u)
        return 0.5 * weights[0] * _gradient(u, axes).flatten(1).pow(2).sum(dim=1)


class TotalVariation(Regularizer):
    """Total variation ``Σ_g λ_g TV_g(x)`` with periodic boundary.

    Parameters
    ----------
    weights : {"scalar", "direction"}, default="scalar"
        One weight, or one per axis (horizontal/vertical; anisotropic only).
    isotropic : bool, default=True
        Isotropic TV ``λ Σ_p ‖(∇x)_p‖₂`` or anisotropic ``Σ_axis λ_axis ‖∇_axis x‖₁``.
    n_inner : int, default=20
        Iterations of the inner prox solver.

    Notes
    -----
    The prox has no closed form. It is computed by ``n_inner`` steps of
    accelerated projected gradient on the dual (Beck & Teboulle's FGP, step
    ``1/‖D‖²``), started
    from zero at every call, so one forward–backward step is a fixed,
    differentiable map of its input. The inner solve is inexact: the map is
    then only approximately firmly non-expansive, and contraction of the
    outer iteration comes from the data term alone (strongly convex
    ``½‖Ax − y‖²``, e.g. denoising, contracts with factor ``|1 − τμ|``).
    Increase ``n_inner`` for a more exact prox.
    """

    def __init__(self, weights="scalar", isotropic=True, n_inner=20):
        self.weights = weights
        self.isotropic = isotropic
        self.n_inner = n_inner

    def check_signal_shape(self, signal_shape):
        if self.weights not in ("scalar", "direction"):
            raise ValueError("TotalVariation `weights` must be 'scalar' or 'direction'; "
                             f"got {self.weights!r}.")
        if self.weights == "direction" and (self.isotropic or len(signal_shape) == 1):
            raise ValueError("TotalVariation(weights='direction') needs isotropic=False "
                             "and 2-D images.")
        if not isinstance(self.n_inner, numbers.Integral) or self.n_inner < 1:
            raise ValueError(f"TotalVariation `n_inner` must be a positive integer; "
                             f"got {self.n_inner!r}.")

    def weight_names(self, signal_shape):
        self.check_signal_shape(signal_shape)
        return ["horizontal", "vertical"] if self.weights == "direction" else ["tv"]

    def _radii(self, thresholds, q):
        """Per-axis bound of the dual variable, broadcast to ``q``."""
        radii = thresholds if self.weights == "direction" else thresholds.expand(q.shape[1])
        return radii.reshape((1, -1) + (1,) * (q.dim() - 2))

    def _project(self, q, radii):
        if not self.isotropic:
            return torch.maximum(torch.minimum(q, radii), -radii)
        norm = _norm(q, dim=1, keepdim=True)
        return q * (radii / torch.maximum(norm, radii))

    def prox(self, u, thresholds, network=None):
        axes = _difference_axes(u)
        step = 1.0 / (4 * len(axes))  # 1 / ‖D‖², ‖D‖² ≤ 4 per axis
        q = torch.zeros((u.shape[0], len(axes), *u.shape[1:]), dtype=u.dtype, device=u.device)
        radii = self._radii(thresholds, q)
        extrapolated, t = q, 1.0
        for _ in range(self.n_inner):  # FISTA on the dual (Beck & Teboulle's FGP)
            q_next = self._project(
                extrapolated + step * _gradient(u - _gradient_adjoint(extrapolated, axes), axes),
                radii)
            t_next = (1 + math.sqrt(1 + 4 * t * t)) / 2
            extrapolated = q_next + ((t - 1) / t_next) * (q_next - q)
            q, t = q_next, t_next
        return u - _gradient_adjoint(q, axes)

    def penalty(self, u, weights):
        axes = _difference_axes(u)
        grad = _gradient(u, axes)
        if self.isotropic:
            return weights[0] * _norm(grad, dim=1).flatten(1).sum(dim=1)
        return (self._radii(weights, grad) * grad.abs()).flatten(1).sum(dim=1)


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

    def __init__(self, n_layers=3, n_channels=16, kernel_size=3, lipschitz_bound=True):
        self.n_layers = n_layers
        self.n_channels = n_channels
        self.kernel_size = kernel_size
        self.lipschitz_bound = lipschitz_bound

    def check_signal_shape(self, signal_shape):
        for name in ("n_layers", "n_channels", "kernel_size"):
            value = getattr(self, name)
            if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
                raise ValueError(f"LearnedDenoiser `{name}` must be a positive integer; "
                                 f"got {value!r}.")
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
                bound = self.kernel_size ** (ndim / 2) * torch.linalg.matrix_norm(
                    weight.reshape(weight.shape[0], -1), ord=2)
                weight = weight / torch.clamp(bound, min=1.0)
            h = conv(torch.nn.functional.pad(h, pad, mode="circular"), weight,
                     network[f"conv{i}.bias"])
            if i < self.n_layers - 1:
                h = torch.relu(h)
        return h.reshape(v.shape)

    def prox(self, u, thresholds, network=None):
        if not network:
            raise ValueError("LearnedDenoiser needs its network tensors (from "
                             "init_parameters or a fitted estimator's regularizer_params_).")
        return u - thresholds[0] * self._network(u, network)

    def penalty(self, u, weights):
        raise NotImplementedError("LearnedDenoiser has no explicit penalty (plug-and-play).")
