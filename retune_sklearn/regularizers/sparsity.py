"""Sparsity: :class:`L1Norm` (of the signal) and :class:`WaveletL1` (of wavelet coefficients)."""

import torch
from sklearn.utils._param_validation import StrOptions

from .._boundary import boundary_constraint, mirror_extend, mirror_fold
from .._params import positive_int, spatial_ndim
from ..wavelets import WaveletTransform
from ._base import (Regularizer, batch_view, group_weights, safe_norm, scalar_weight,
                    soft_threshold)


class L1Norm(Regularizer):
    """``λ ‖x‖₁``: sparsity of the signal itself (one learnable weight).

    The model of the Lasso; its prox is an exact soft-thresholding. Use it for
    signals that are sparse in the canonical basis (spikes), e.g. compressed
    sensing with :class:`~retune_sklearn.operators.MatrixOperator`.
    """

    soft_threshold_prox = True

    def weight_names(self, signal_shape):
        return ["l1"]

    def prox(self, u, thresholds, network=None):
        return soft_threshold(u, scalar_weight(thresholds, u))

    def penalty(self, u, weights):
        return group_weights(weights, len(u))[:, 0] * u.abs().flatten(1).sum(dim=1)


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
    boundary : {"periodic", "reflect"}, default="periodic"
        ``"periodic"``: the periodized transform of the signal (its edges
        wrap around). ``"reflect"``: the transform of the signal's even
        symmetric extension (``N → 2N`` per axis, mirrored about the edges,
        scaled by ``1/√2`` per axis), so no wavelet straddles an artificial
        jump between opposite edges. ``W`` is then a Parseval frame
        (``W* W = I``, ``‖W‖ = 1``; ``W*`` folds the mirrored halves back)
        with ``2**ndim`` times as many coefficients (4× in 2-D, times the
        shifts of ``translation_invariant``), and the signal's sides need
        only be divisible by ``2**(levels - 1)``. As with the
        translation-invariant frame, forward–backward on the redundant
        coefficients converges sublinearly.
    """

    _parameter_constraints = {
        "wavelet": [str],
        "levels": [positive_int()],
        "weights": [StrOptions(set(_WEIGHT_MODES))],
        "penalize_approximation": ["boolean"],
        "translation_invariant": ["boolean"],
        "n_shifts": [positive_int()],
        "channels": [StrOptions({"shared", "separate", "group"})],
        "boundary": boundary_constraint(),
    }

    def __init__(self, wavelet="db4", levels=3, weights="subband", penalize_approximation=True,
                 translation_invariant=False, n_shifts=2, channels="shared",
                 boundary="periodic"):
        self.wavelet = wavelet
        self.levels = levels
        self.weights = weights
        self.penalize_approximation = penalize_approximation
        self.translation_invariant = translation_invariant
        self.n_shifts = n_shifts
        self.channels = channels
        self.boundary = boundary

    def _transform(self, ndim):
        return self._cached(("transform", ndim),
                            lambda: WaveletTransform(self.wavelet, int(self.levels), ndim))

    def _coefficient_spatial_shape(self, signal_shape):
        """Spatial shape that the transform acts on: the signal's, doubled by ``"reflect"``."""
        ndim = spatial_ndim(signal_shape)
        factor = 2 if self.boundary == "reflect" else 1
        return tuple(factor * s for s in signal_shape[-ndim:])

    def _check_signal_shape(self, signal_shape):
        ndim = spatial_ndim(signal_shape)
        try:
            self._transform(ndim).check_shape(self._coefficient_spatial_shape(signal_shape))
        except ValueError as error:
            if self.boundary != "reflect":
                raise
            raise ValueError(f"{error} (With boundary='reflect' the transform acts on the "
                             "mirrored signal, twice the signal's sides.)") from error

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
        names = list(self._groups(self._coefficient_spatial_shape(signal_shape))[1])
        if self.channels == "separate" and len(signal_shape) == 3:
            return [f"c{c}:{name}" for c in range(signal_shape[0]) for name in names]
        return names

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
        if self.boundary == "reflect":
            x = mirror_extend(x, ndim)
        if not self.translation_invariant:
            return transform.forward(x)
        # The shifts are folded into the level-1 matrices (no torch.roll copies).
        return transform.frame_forward(x, self.n_shifts)

    def synthesis(self, u):
        ndim = self._signal_ndim(u)
        transform = self._transform(ndim)
        if not self.translation_invariant:
            x = transform.inverse(u)
        else:
            x = transform.frame_inverse(u, self.n_shifts)
        return mirror_fold(x, ndim) if self.boundary == "reflect" else x

    def _coefficient_weights(self, u, weights, rank):
        """Per-group ``weights`` as a map of ``u``'s spatial shape, viewed with ``rank`` axes.

        The map has a batch axis (of length 1 for weights shared by the batch)
        and, with ``channels="separate"``, the channel axis.
        """
        ndim = self._signal_ndim(u)
        index, _ = self._groups(tuple(u.shape[-ndim:]))
        index = self._cached(("index", index.shape, str(u.device)), lambda: index.to(u.device))
        rows = group_weights(weights, len(u))
        if weights.dim() == 1:
            rows = rows[:1]  # shared by the batch: one map, broadcast over the samples
        if self.channels == "separate" and self._has_channels(u):
            rows = rows.reshape(len(rows), u.shape[-3], -1)
        padded = torch.cat([rows, rows.new_zeros(*rows.shape[:-1], 1)], dim=-1)
        return batch_view(padded[..., index], rank)  # index -1 -> the appended zero weight

    @property
    def soft_threshold_prox(self):
        """Elementwise soft threshold unless colour channels are grouped (ℓ1,2)."""
        return self.channels != "group"

    def _grouped(self, u):
        """Whether the channel axis (-3) of ``u`` is a group of the ℓ1,2 norm."""
        return self.channels == "group" and self._has_channels(u)

    def prox(self, u, thresholds, network=None):
        threshold = self._coefficient_weights(u, thresholds, u.dim())
        if not self._grouped(u):
            return soft_threshold(u, threshold)
        norms = safe_norm(u, dim=-3, keepdim=True)
        # Group soft-thresholding: shrink the colour vector of each coefficient.
        return u * torch.relu(1 - threshold / norms.clamp_min(torch.finfo(u.dtype).tiny))

    def penalty(self, u, weights):
        magnitude = safe_norm(u, dim=-3) if self._grouped(u) else u.abs()
        weight_map = self._coefficient_weights(u, weights, magnitude.dim())
        return (weight_map * magnitude).flatten(1).sum(dim=1)


def _renumber(group_of):
    """Renumber non-negative group ids to 0..G-1, keeping their order."""
    kept = sorted({g for g in group_of if g >= 0})
    return [kept.index(g) if g >= 0 else -1 for g in group_of]
