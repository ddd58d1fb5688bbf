"""Orthonormal periodized discrete wavelet transform in torch.

Why hand-written: ptwt's "periodic" mode pads the signal and returns more
coefficients than samples, so it is not orthonormal.  Here the transform is
exactly orthonormal (critically sampled, perfect reconstruction, inverse ==
adjoint), so the prox of ``lam * ||W x||_1`` in synthesis form is an exact
soft-threshold of the coefficients.

Coefficients match ``pywt.wavedec`` / ``pywt.wavedec2`` with
``mode="periodization"`` exactly (same filters, shift and detail signs), packed
like ``pywt.coeffs_to_array``.  Filters are taken from PyWavelets, never typed.

Speed: along each axis one level is an orthonormal matrix, so a 2-D level is
two dense matrix products on the approximation block, written back in place
(a few aten calls per level).  The translation-invariant (cycle-spun) frame
folds its circular shifts into the level-1 matrices (`frame_forward`,
`frame_inverse`).  Gradients are computed as the adjoint transform rather
than by backpropagating through the products.  Large signals, where dense
products cost more than convolutions, use polyphase stride-1 convs.
"""

import itertools
import math
import numbers

import pywt
import torch
import torch.nn.functional as F

try:  # what Function.apply does first outside functorch transforms (see _AdjointGrad.apply)
    from torch._functorch.utils import unwrap_dead_wrappers as _unwrap_dead_wrappers
except ImportError:  # pragma: no cover
    def _unwrap_dead_wrappers(args):
        return args

__all__ = ["WaveletTransform"]

# Only these families are orthogonal with exact FIR filters (dmey is an FIR
# approximation and the bior/rbio families are biorthogonal).
_ORTHOGONAL_FAMILIES = ("haar", "db", "sym", "coif")


def _load_wavelet(name):
    """Return ``pywt.Wavelet(name)``, rejecting unknown or non-orthogonal ones."""
    examples = ["haar", "db2", "db4", "sym4", "sym8", "coif1"]
    try:
        wav = pywt.Wavelet(name)
    except (ValueError, TypeError) as exc:
        raise ValueError(
            f"Unknown wavelet {name!r}; use an orthogonal discrete wavelet, "
            f"e.g. {', '.join(examples)} (see pywt.wavelist(kind='discrete'))."
        ) from exc
    if wav.short_family_name not in _ORTHOGONAL_FAMILIES or not wav.orthogonal:
        raise ValueError(
            f"Wavelet {name!r} is not orthogonal; only the families "
            f"{', '.join(_ORTHOGONAL_FAMILIES)} are allowed (e.g. "
            f"{', '.join(examples)})."
        )
    return wav


def _max_level(size, filter_len):
    """Deepest allowed level for one axis, as ``pywt.dwt_max_level``.

    Periodization needs no boundary samples, so one level is always allowed
    when ``size`` is even, even if the filter is longer than the signal.
    """
    level = pywt.dwt_max_level(size, filter_len)
    return max(level, 1) if size % 2 == 0 else level


def _conv(y, w):
    """Stride-1 conv (1-D or 2-D) of polyphase parts ``y`` with weights ``w``.

    With one tap per phase (haar) it is a plain channel mix, done by einsum:
    oneDNN picks a very slow kernel for 1x1 convs with 4 channels on CPU
    (~30x slower than einsum at 32x32).
    """
    if w.shape[2:].numel() == 1:
        return torch.einsum("oc,bc...->bo...", w.flatten(1), y)
    return F.conv1d(y, w) if y.dim() == 3 else F.conv2d(y, w)


class WaveletTransform:
    """Orthonormal periodized DWT acting on the last `ndim` axes (ndim 1 or 2); leading axes are batch axes.

    Parameters
    ----------
    wavelet : str, default="db4"
        Name of an orthogonal PyWavelets wavelet (haar, dbN, symN, coifN).
    levels : int, default=3
        Number of decomposition levels ``L`` (>= 1).
    ndim : int, default=2
        Number of trailing axes transformed (1 for signals, 2 for images).

    Notes
    -----
    Packed layout (same shape as the input, as ``pywt.coeffs_to_array``):

    * 1-D: ``[a_L, d_L, d_{L-1}, ..., d_1]``.
    * 2-D: ``a_L`` in the top-left ``(H/2**L, W/2**L)`` block; at level ``j``
      with block size ``(h, w) = (H/2**j, W/2**j)`` the lower-resolution part
      is ``[:h, :w]``, ``v_j`` is top-right ``[:h, w:2w]``, ``h_j`` is
      bottom-left ``[h:2h, :w]`` and ``d_j`` is ``[h:2h, w:2w]``.  ``h_j``,
      ``v_j``, ``d_j`` are pywt's ``cH``, ``cV``, ``cD`` (dwtn keys ``'da'``,
      ``'ad'``, ``'dd'``; ``h`` = detail along the rows axis).

    Examples
    --------
    >>> W = WaveletTransform("db4", levels=3)
    >>> x = torch.randn(8, 1, 64, 64)
    >>> c = W.forward(x)
    >>> torch.allclose(W.inverse(c), x, atol=1e-5)
    True
    """

    def __init__(self, wavelet: str = "db4", levels: int = 3, ndim: int = 2):
        if ndim not in (1, 2):
            raise ValueError(f"ndim must be 1 or 2, got {ndim!r}.")
        if isinstance(levels, bool) or not isinstance(levels, int) or levels < 1:
            raise ValueError(f"levels must be an integer >= 1, got levels={levels!r}.")
        wav = _load_wavelet(wavelet)
        self.wavelet = wavelet
        self.levels = levels
        self.ndim = ndim
        self.filter_len = wav.dec_len
        self._cache = {}

    # --- pickling: the cache holds device tensors; rebuild it lazily ----------
    def __getstate__(self):
        state = self.__dict__.copy()
        state["_cache"] = {}
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._cache = {}

    def __repr__(self):
        return (f"WaveletTransform(wavelet={self.wavelet!r}, "
                f"levels={self.levels}, ndim={self.ndim})")

    # --- validation ------------------------------------------------------------
    def check_shape(self, shape) -> None:
        """Check that the trailing `ndim` sizes allow `levels` levels.

        Parameters
        ----------
        shape : tuple of int
            The last `ndim` sizes, e.g. ``(64, 64)`` or ``(128,)``.

        Raises
        ------
        ValueError
            If the length is not `ndim`, a size is not divisible by
            ``2**levels``, or `levels` exceeds the maximum level for a size.
        """
        shape = tuple(int(s) for s in shape)
        if len(shape) != self.ndim:
            raise ValueError(f"Expected {self.ndim} trailing sizes, got shape {shape}.")
        for size in shape:
            if size % 2 ** self.levels != 0:
                layout = ("(d,) of 1-D signals (n, d)" if self.ndim == 1 else
                          "(H, W) of images (n, H, W) or channels first (n, C, H, W); "
                          "for channels-last (n, H, W, C) data use np.moveaxis(a, -1, 1)")
                raise ValueError(
                    f"levels={self.levels} needs every size divisible by "
                    f"2**{self.levels}={2 ** self.levels}; got signal size "
                    f"{size} (shape {shape}). The transform acts on the last "
                    f"{self.ndim} axes: {layout}. Crop or pad to a multiple of "
                    f"{2 ** self.levels}, or lower levels.")
            max_level = _max_level(size, self.filter_len)
            if self.levels > max_level:
                raise ValueError(
                    f"levels={self.levels} is too large for signal size {size} "
                    f"with wavelet {self.wavelet!r} (filter length "
                    f"{self.filter_len}); the maximum level is {max_level}.")

    def _check_input(self, x):
        if not torch.is_tensor(x) or not x.is_floating_point():
            raise TypeError("Expected a real floating-point torch.Tensor.")
        if x.dim() < self.ndim:
            raise ValueError(
                f"Expected at least {self.ndim} dims, got shape {tuple(x.shape)}.")
        self._check_spatial(x.shape[x.dim() - self.ndim:])

    def _check_spatial(self, shape):
        """`check_shape`, remembered per shape (it costs more than a small transform)."""
        key = ("valid", tuple(shape))
        if key not in self._cache:
            self.check_shape(shape)
            self._cache[key] = True

    # --- cached constants --------------------------------------------------------
    def _weights(self, device, dtype):
        """Conv weights for (device, dtype): (2, 1, F) in 1-D, (4, 1, F, F) in 2-D.

        conv is cross-correlation, so the filters are flipped; channels are
        [lo, hi] in 1-D and [aa, da(h), ad(v), dd] in 2-D (axis -2 first).
        Built together with the flipped 1-D filters (`_taps`), which the
        matrix path uses: all constants come from one place per device.
        """
        key = ("w", device, dtype)
        if key not in self._cache:
            wav = pywt.Wavelet(self.wavelet)
            lo = torch.tensor(wav.dec_lo[::-1], dtype=dtype, device=device)
            hi = torch.tensor(wav.dec_hi[::-1], dtype=dtype, device=device)
            if self.ndim == 1:
                w = torch.stack([lo, hi])[:, None, :]
            else:
                pairs = [(lo, lo), (hi, lo), (lo, hi), (hi, hi)]
                w = torch.stack([torch.outer(r, c) for r, c in pairs])[:, None]
            self._cache[key] = w
            self._cache[("taps", device, dtype)] = (lo, hi)
        return self._cache[key]

    def _taps(self, device, dtype):
        """Flipped 1-D analysis filters ``(lo, hi)`` (cross-correlation order)."""
        self._weights(device, dtype)
        return self._cache[("taps", device, dtype)]

    def _wrap_index(self, n, device):
        """Circular indices of length ``n + F - 2`` for a size-``n`` axis.

        The offset ``1 - F/2`` reproduces pywt's periodization convention
        ``c[i] = sum_k h[k] x[(2i + F/2 - k) mod n]``; the modulo makes it work
        when the filter is longer than the signal.
        """
        key = ("idx", device, n)
        if key not in self._cache:
            flen = self.filter_len
            start = 1 - flen // 2
            self._cache[key] = torch.arange(start, start + n + flen - 2, device=device) % n
        return self._cache[key]

    def _polyphase_weights(self, device, dtype):
        """Polyphase conv weights ``(analysis, synthesis)`` for (device, dtype).

        Tap ``k = 2p + q`` of a filter is tap ``p`` of phase ``q``, so a
        stride-2 filter of length ``F`` becomes a stride-1 filter of length
        ``h = F/2`` over the 2 (1-D) or 4 (2-D, phase ``2*q_row + q_col`` as
        ``pixel_unshuffle``) phases.  Analysis: (bands, phases, h[, h]);
        synthesis is its adjoint: bands and phases swapped, taps reversed.
        """
        key = ("poly", device, dtype)
        if key not in self._cache:
            w = self._weights(device, dtype)[:, 0]
            h = self.filter_len // 2
            if self.ndim == 1:
                wa = w.reshape(2, h, 2).permute(0, 2, 1)                  # (band, q, p)
                ws = wa.transpose(0, 1).flip(-1)
            else:
                wa = w.reshape(4, h, 2, h, 2).permute(0, 2, 4, 1, 3).reshape(4, 4, h, h)
                ws = wa.transpose(0, 1).flip(-1, -2)
            self._cache[key] = (wa.contiguous(), ws.contiguous())
        return self._cache[key]

    # --- one level, by convolutions ------------------------------------------------
    # Two exact conv implementations of one level (the default is the matrix
    # path below).  Index-based: wrap with index_select, strided conv, one
    # axis at a time (2F taps per output, so float32 round-off matches the
    # matrix path; a 2-D F x F conv sums F^2 terms and errs up to ~3x more); its
    # adjoint (stride-2 conv_transpose + index_add fold) is several times
    # slower (db4: ~5x) on CPU.  Polyphase: both directions are one stride-1
    # conv between the 2 or 4 phases (pixel_(un)shuffle) and the bands, as
    # fast as the analysis.  It pads the half-size axes circularly by h-1,
    # which torch only allows when it wraps at most once (h-1 <= n/2).  The
    # maximum level implies that from level 2 on, so only one-level
    # transforms of signals shorter than about the filter use the
    # index-based path.  ``_use_polyphase = False`` forces it (benchmarks,
    # tests) and also disables the matrix path.
    _use_polyphase = True

    def _fast(self, half_sizes):
        """Whether the polyphase path applies to half-size axes `half_sizes`."""
        h = self.filter_len // 2
        return self._use_polyphase and all(h - 1 <= n for n in half_sizes)

    def _analysis_step(self, x):
        """One level on (B, n) or (B, H, W): returns (B, 2, n/2) or (B, 4, H/2, W/2)."""
        if self._fast([n // 2 for n in x.shape[1:]]):
            return self._analysis_polyphase(x)
        if self.ndim == 1:
            return self._analysis_index(x)
        # Separable: along the last axis, then along the rows (2F taps per
        # output instead of F^2: float32 round-off like the matrix path's).
        b, n0, n1 = x.shape
        y = self._analysis_index(x.reshape(b * n0, n1))        # (B*H, band_c, W/2)
        y = y.reshape(b, n0, n1).transpose(1, 2).reshape(b * n1, n0)
        z = self._analysis_index(y).reshape(b, 2, n1 // 2, 2, n0 // 2)  # (B, c, j, r, i)
        return z.permute(0, 1, 3, 4, 2).reshape(b, 4, n0 // 2, n1 // 2)  # channel r + 2c

    def _synthesis_step(self, c):
        """Exact adjoint (= inverse) of `_analysis_step`: (B, 2|4, ...) -> signal.

        Index-based path: transposed conv, then fold the wrap (per axis in 2-D).
        """
        if self._fast(c.shape[2:]):
            return self._synthesis_polyphase(c)
        if self.ndim == 1:
            return self._synthesis_index(c)
        b, h0, h1 = c.shape[0], c.shape[2], c.shape[3]
        z = c.reshape(b, 2, 2, h0, h1).permute(0, 1, 4, 2, 3)  # (B, c, j, r, i)
        y = self._synthesis_index(z.reshape(b * 2 * h1, 2, h0))  # (B*W, H)
        y = y.reshape(b, 2 * h1, 2 * h0).transpose(1, 2).reshape(b * 2 * h0, 2, h1)
        return self._synthesis_index(y).reshape(b, 2 * h0, 2 * h1)

    def _filters_1d(self, device, dtype):
        """Conv weights (2, 1, F) of the 1-D analysis filters [lo, hi] (flipped)."""
        if self.ndim == 1:
            return self._weights(device, dtype)
        return self._const(("w1", device, dtype),
                           lambda: torch.stack(self._taps(device, dtype))[:, None])

    def _analysis_index(self, x):
        """One 1-D level on (M, n) by wrap + strided conv: (M, 2, n/2)."""
        xp = x.index_select(-1, self._wrap_index(x.shape[-1], x.device))
        return F.conv1d(xp[:, None], self._filters_1d(x.device, x.dtype), stride=2)

    def _synthesis_index(self, c):
        """Adjoint of `_analysis_index`: (M, 2, n/2) -> (M, n)."""
        n = 2 * c.shape[-1]
        y = F.conv_transpose1d(c, self._filters_1d(c.device, c.dtype), stride=2)[:, 0]
        # adjoint of index_select: add every wrapped sample back to its source
        return y.new_zeros(y.shape[0], n).index_add(-1, self._wrap_index(n, c.device), y)

    def _analysis_polyphase(self, x):
        """`_analysis_step` as a stride-1 circular conv over the polyphase parts.

        With ``s = h - 1``, ``c[i] = sum_k w[k] x[(2i + k - s) mod n]`` (see
        `_wrap_index`); after rolling ``x`` by ``s`` this is
        ``sum_{p,q} w[2p+q] y_q[(i + p) mod n/2]`` with ``y_q[j] = y[2j + q]``:
        a correlation with right circular padding by ``s``.
        """
        wa, _ = self._polyphase_weights(x.device, x.dtype)
        s = self.filter_len // 2 - 1
        if self.ndim == 1:
            y = x.roll(s, -1).unflatten(-1, (-1, 2)).transpose(1, 2)  # (B, 2, n/2)
            return _conv(F.pad(y, (0, s), mode="circular"), wa)
        y = F.pixel_unshuffle(x.roll((s, s), (-2, -1))[:, None], 2)  # (B, 4, H/2, W/2)
        return _conv(F.pad(y, (0, s, 0, s), mode="circular"), wa)

    def _synthesis_polyphase(self, c):
        """Adjoint of `_analysis_polyphase`.

        Left circular padding and reversed taps (adjoint of the correlation),
        phases interleaved back (adjoint of the split), then the roll undone.
        """
        _, ws = self._polyphase_weights(c.device, c.dtype)
        s = self.filter_len // 2 - 1
        if self.ndim == 1:
            y = _conv(F.pad(c, (s, 0), mode="circular"), ws)  # (B, 2, n/2)
            return y.transpose(1, 2).flatten(1).roll(-s, -1)
        y = _conv(F.pad(c, (s, 0, s, 0), mode="circular"), ws)
        return F.pixel_shuffle(y, 2)[:, 0].roll((-s, -s), (-2, -1))

    # --- dense matrix path (default) ----------------------------------------------
    # One level along an axis of length n is an orthonormal n x n matrix D:
    # low-pass rows, then high-pass rows, as pywt's periodization orders them.
    # A 2-D level on the approximation block X is then D_h X D_w^T, written
    # back in place (the packed layout is exactly the in-place result), and
    # its inverse D_h^T Y D_w: two matrix products per level, against the
    # polyphase path's roll/pad/pixel_(un)shuffle/conv/cat/stack per level.
    # Dense products cost O(n) multiply-adds per sample and axis where the
    # convs cost O(F), so the path is used up to `_matrix_max_size` samples
    # per axis, by default ``32 * max(F, 4)`` (haar, db2: 128; db4: 256;
    # sym8: 512: the measured crossover with the polyphase convs, 1-D and
    # 2-D, benchmarks/bench_kernels.py), and where the polyphase criterion
    # holds at every level (it fails only for one-level transforms of signals
    # shorter than about the filter, which take the index-based path).
    # ``_use_matrix = False`` selects the conv paths (benchmarks, tests).
    _use_matrix = True
    _matrix_max_size = None

    def _matrix_path(self, size):
        """Whether the matrix path applies to signals of trailing shape `size`."""
        limit = self._matrix_max_size or 32 * max(self.filter_len, 4)
        return (self._use_matrix and max(size) <= limit
                and self._fast([n >> self.levels for n in size]))

    def _const(self, key, build):
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]

    def _level_matrix(self, n, device, dtype):
        """One analysis level along a length-`n` axis, an (n, n) matrix.

        Row ``r < n/2`` holds the low-pass filter and row ``n/2 + r`` the
        high-pass one, at columns ``(2r + m + 1 - F/2) mod n`` for tap ``m``
        of the flipped filter (the `_wrap_index` convention; taps that wrap
        onto the same column add up).
        """
        def build():
            lo, hi = self._taps(device, dtype)
            flen, half = self.filter_len, n // 2
            rows = torch.arange(n, device=device)[:, None].expand(n, flen)
            cols = (2 * torch.arange(half, device=device)[:, None]
                    + torch.arange(flen, device=device) + 1 - flen // 2) % n
            values = torch.cat([lo.expand(half, flen), hi.expand(half, flen)])
            d = torch.zeros(n, n, dtype=dtype, device=device)
            return d.index_put_((rows, cols.repeat(2, 1)), values, accumulate=True)
        return self._const(("D", n, device, dtype), build)

    def _levels_plan(self, size, batch, device, dtype):
        """Per level ``j = 1..L``: ``(block sizes, matrices)`` for a batch of `batch` signals.

        1-D: ``(D, D^T)``.  2-D: ``(D_h, D_h^T, D_w, D_w^T)`` expanded (no
        copy) to the batch for `torch.bmm`, then ``D_w, D_w^T`` plain for the
        level-1 `torch.mm` over all rows.  Built once per shape, batch size,
        device and dtype: the per-call loop does no lookups.
        """
        def build():
            plan = []
            for j in range(self.levels):
                sizes = tuple(n >> j for n in size)
                mats = [self._level_matrix(n, device, dtype) for n in sizes]
                if self.ndim == 1:
                    plan.append((sizes, (mats[0], mats[0].mT)))
                    continue
                dh, dw = mats
                batched = tuple(m.expand(batch, *m.shape) for m in (dh, dh.mT, dw, dw.mT))
                plan.append((sizes, batched + (dw, dw.mT)))
            return tuple(plan)
        return self._const(("plan", tuple(size), batch, device, dtype), build)

    @staticmethod
    def _block(t, sizes):
        """View of the leading `sizes` corner of each signal of the batch `t`."""
        if torch._C._are_functorch_transforms_active():  # vmap: plain slicing
            return t[(slice(None),) + tuple(slice(0, n) for n in sizes)]
        return t.as_strided((t.shape[0], *sizes), t.stride())  # one aten call

    def _analysis_levels(self, out, plan):
        """Levels 2..L in place on the approximation blocks of `out` (level 1 done)."""
        for sizes, mats in plan[1:]:
            block = self._block(out, sizes)
            if self.ndim == 1:
                block.copy_(torch.mm(block, mats[1]))
            else:
                block.copy_(torch.bmm(torch.bmm(mats[0], block), mats[3]))
        return out

    def _synthesis_levels(self, c, plan):
        """Inverse levels L..2 in place on the blocks of `c`."""
        for sizes, mats in plan[:0:-1]:
            block = self._block(c, sizes)
            if self.ndim == 1:
                block.copy_(torch.mm(block, mats[0]))
            else:
                block.copy_(torch.bmm(torch.bmm(mats[1], block), mats[2]))
        return c

    def _analysis_matrix(self, xb):
        """`_analysis` as matrix products: level 1 into a new tensor, then in place."""
        plan = self._levels_plan(xb.shape[1:], xb.shape[0], xb.device, xb.dtype)
        mats = plan[0][1]
        if self.ndim == 1:
            out = torch.mm(xb, mats[1])
        else:
            b, n0, n1 = xb.shape
            rows = torch.mm(xb.reshape(b * n0, n1), mats[5])  # all rows at once
            out = torch.bmm(mats[0], rows.view(b, n0, n1))
        return self._analysis_levels(out, plan)

    def _synthesis_matrix(self, cb):
        """`_synthesis` as matrix products: levels L..2 in place on a copy, then level 1."""
        plan = self._levels_plan(cb.shape[1:], cb.shape[0], cb.device, cb.dtype)
        if self.levels > 1:
            cb = self._synthesis_levels(cb.clone(memory_format=torch.contiguous_format), plan)
        mats = plan[0][1]
        if self.ndim == 1:
            return torch.mm(cb, mats[0])
        b, n0, n1 = cb.shape
        rows = torch.mm(cb.reshape(b * n0, n1), mats[4])
        return torch.bmm(mats[1], rows.view(b, n0, n1))

    # --- translation-invariant (cycle-spun) Parseval frame -------------------------
    # Shifting by s is a permutation P_s, so level 1 of a shifted signal is
    # (D P_s) x: the level-1 matrices of all shifts, stacked, analyse every
    # shift of an axis in one product; the 1/sqrt(S) scale is folded in too.
    # Levels 2..L then run in place on all S copies.  The synthesis is the
    # adjoint: levels L..2 on a copy, then sum_s (D P_s)^T per axis.

    def frame_shifts(self, n_shifts=2):
        """The circular shifts of the frame, in the order of its copies.

        Parameters
        ----------
        n_shifts : int, default=2
            Shifts ``0 .. n_shifts - 1`` per axis.

        Returns
        -------
        list of tuple of int
            ``n_shifts ** ndim`` shifts, one entry per axis, the first axis
            varying slowest (``torch.cartesian_prod`` order).
        """
        self._check_n_shifts(n_shifts)
        return list(itertools.product(range(n_shifts), repeat=self.ndim))

    def _frame_plan(self, size, batch, n_shifts, device, dtype):
        """Level-1 frame matrices for `batch` signals (2-D: ``batch`` = signals x channels).

        1-D: ``(G, G^T)`` with ``G`` the ``S`` matrices ``D P_s / sqrt(S)``
        stacked, ``(S n, n)``.  2-D: ``G_h`` (rows, scaled) and ``G^T_h``
        expanded to the batch, ``G_w^T`` plain (unscaled) and the ``n_shifts``
        blocks ``D_w P_b`` expanded to ``batch * n_shifts``.
        """
        def build():
            scale = float(n_shifts) ** (-self.ndim / 2)

            def stacked(n):
                d = self._level_matrix(n, device, dtype)
                return torch.cat([torch.roll(d, -s, 1) for s in range(n_shifts)])
            if self.ndim == 1:
                g = stacked(size[0]) * scale
                return g, g.mT
            gh, gw = stacked(size[0]) * scale, stacked(size[1])
            blocks = tuple(b.expand(batch * n_shifts, *b.shape) for b in gw.split(size[1]))
            return (gh.expand(batch, *gh.shape), gh.mT.expand(batch, *gh.mT.shape), gw.mT, blocks)
        return self._const(("frame", tuple(size), batch, n_shifts, device, dtype), build)

    def _frame_analysis(self, x, n_shifts):
        """`frame_forward` without input checks: (N, *mid, *spatial) -> (N, S, *mid, *spatial)."""
        split = x.dim() - self.ndim
        spatial, mid = tuple(x.shape[split:]), tuple(x.shape[1:split])
        n, c, s = x.shape[0], math.prod(mid), n_shifts ** self.ndim
        if not self._matrix_path(spatial):
            return self._frame_analysis_rolls(x, n_shifts)
        plan = self._frame_plan(spatial, n * c, n_shifts, x.device, x.dtype)
        if self.ndim == 1:
            out = torch.mm(x.reshape(n * c, *spatial), plan[1])  # (N C, S n)
            if c > 1:  # channels after the copies
                out = out.new_empty(n, s, c, *spatial).copy_(out.view(n, c, s, -1).transpose(1, 2))
        else:
            n0, n1 = spatial
            rows = torch.bmm(plan[0], x.reshape(n * c, n0, n1))       # (N C, a n0, n1)
            both = torch.mm(rows.view(-1, n1), plan[2])               # (N C a n0, b n1)
            out = both.new_empty(n, n_shifts, n_shifts, c, n0, n1)    # copies (a, b) first
            out.copy_(both.view(n, c, n_shifts, n0, n_shifts, n1).permute(0, 2, 4, 1, 3, 5))
        out = out.view(n * s * c, *spatial)
        if self.levels > 1:
            self._analysis_levels(out, self._levels_plan(spatial, n * s * c, x.device, x.dtype))
        return out.view(n, s, *mid, *spatial)

    def _frame_synthesis(self, u, n_shifts):
        """`frame_inverse` without input checks: (N, S, *mid, *spatial) -> (N, *mid, *spatial)."""
        split = u.dim() - self.ndim
        spatial, mid = tuple(u.shape[split:]), tuple(u.shape[2:split])
        n, s, c = u.shape[0], u.shape[1], math.prod(mid)
        if not self._matrix_path(spatial):
            return self._frame_synthesis_rolls(u, n_shifts)
        plan = self._frame_plan(spatial, n * c, n_shifts, u.device, u.dtype)
        y = u.reshape(n, s, c, *spatial)
        if self.levels > 1 or c > 1:
            # One copy, channels first: levels L..2 run in place on it.
            y = y.new_empty(n, c, s, *spatial).copy_(y.transpose(1, 2))
            if self.levels > 1:
                self._synthesis_levels(y.view(n * c * s, *spatial),
                                       self._levels_plan(spatial, n * c * s, u.device, u.dtype))
        if self.ndim == 1:
            x = torch.mm(y.reshape(n * c, s * spatial[0]), plan[0])
        else:
            n0, n1 = spatial
            y = y.reshape(n * c * n_shifts, n_shifts, n0, n1)         # (N C a, b, n0, n1)
            t = torch.bmm(y[:, 0], plan[3][0])                          # sum_b Y_ab D_w P_b
            in_place = not torch._C._are_functorch_transforms_active()  # vmap: no baddbmm_ rule
            for b in range(1, n_shifts):
                t = t.baddbmm_(y[:, b], plan[3][b]) if in_place else t.baddbmm(y[:, b], plan[3][b])
            x = torch.bmm(plan[1], t.view(n * c, n_shifts * n0, n1))    # sum_a (D_h P_a)^T t_a
        return x.view(n, *mid, *spatial)

    def _frame_analysis_rolls(self, x, n_shifts):
        """Reference frame analysis: transform of each rolled copy, scaled."""
        axes = tuple(range(-self.ndim, 0))
        shifts = self.frame_shifts(n_shifts)
        shifted = torch.stack([torch.roll(x, sh, axes) for sh in shifts], dim=1)
        out = self._analysis(shifted.reshape(-1, *shifted.shape[shifted.dim() - self.ndim:]))
        return out.view(shifted.shape) / len(shifts) ** 0.5

    def _frame_synthesis_rolls(self, u, n_shifts):
        """Reference frame synthesis: inverse of each copy, rolled back, summed, scaled."""
        axes = tuple(range(-self.ndim, 0))
        shifts = self.frame_shifts(n_shifts)
        copies = self._synthesis(u.reshape(-1, *u.shape[u.dim() - self.ndim:])).view(u.shape)
        unshifted = [torch.roll(copies[:, i], tuple(-v for v in sh), axes)
                     for i, sh in enumerate(shifts)]
        return torch.stack(unshifted).sum(dim=0) / len(shifts) ** 0.5

    # --- batching helpers --------------------------------------------------------
    def _flatten(self, x):
        self._check_input(x)
        lead = x.shape[:x.dim() - self.ndim]
        return x.reshape(-1, *x.shape[x.dim() - self.ndim:]), lead

    # --- multilevel transforms on flattened batches -------------------------------
    def _analysis(self, xb):
        """`forward` on ``(B, n)`` or ``(B, H, W)``, without input checks."""
        if self._matrix_path(xb.shape[1:]):
            return self._analysis_matrix(xb)
        details = []  # finest first
        a = xb
        for _ in range(self.levels):
            out = self._analysis_step(a)
            a, details = out[:, 0], details + [out[:, 1:]]
        packed = a
        for det in reversed(details):  # coarsest to finest
            if self.ndim == 1:
                packed = torch.cat([packed, det[:, 0]], dim=-1)
            else:
                top = torch.cat([packed, det[:, 1]], dim=-1)   # [a | v]
                bottom = torch.cat([det[:, 0], det[:, 2]], dim=-1)  # [h | d]
                packed = torch.cat([top, bottom], dim=-2)
        return packed

    def _synthesis(self, cb):
        """`inverse` on ``(B, n)`` or ``(B, H, W)``, without input checks."""
        if self._matrix_path(cb.shape[1:]):
            return self._synthesis_matrix(cb)
        size = cb.shape[1:]
        coarse = [s >> self.levels for s in size]
        if self.ndim == 1:
            a = cb[:, :coarse[0]]
        else:
            a = cb[:, :coarse[0], :coarse[1]]
        for j in range(self.levels, 0, -1):  # coarsest to finest
            if self.ndim == 1:
                n = size[0] >> j
                stack = torch.stack([a, cb[:, n:2 * n]], dim=1)
            else:
                h, w = size[0] >> j, size[1] >> j
                stack = torch.stack([a, cb[:, h:2 * h, :w], cb[:, :h, w:2 * w],
                                     cb[:, h:2 * h, w:2 * w]], dim=1)
            a = self._synthesis_step(stack)
        return a

    # Backpropagating through the convs is slow on CPU (convolution_backward
    # costs ~3x a forward conv, and autograd keeps the intermediates).  The
    # transform is orthonormal, so the vector-Jacobian product of `forward`
    # is exactly `inverse` and vice versa: `_AdjointGrad` uses that instead.
    # ``_adjoint_grad = False`` differentiates through the ops (benchmarks).
    _adjoint_grad = True

    def _transform(self, t, inverse):
        tb, lead = self._flatten(t)
        out = self._linear(tb, inverse, 0)
        return out.reshape(*lead, *out.shape[1:])

    def _linear(self, t, inverse, n_shifts):
        """Basis (``n_shifts = 0``) or frame analysis/synthesis, adjoint gradient or not."""
        if self._adjoint_grad:
            return _AdjointGrad.apply(self, t, inverse, n_shifts)
        return self._compute(t, inverse, n_shifts)

    def _compute(self, t, inverse, n_shifts):
        if n_shifts:
            return self._frame_synthesis(t, n_shifts) if inverse else self._frame_analysis(t, n_shifts)
        return self._synthesis(t) if inverse else self._analysis(t)

    # --- public transforms -------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Analysis ``W x`` in the packed Mallat layout.

        Parameters
        ----------
        x : torch.Tensor
            Real float tensor of shape ``(*batch, n)`` or ``(*batch, H, W)``.

        Returns
        -------
        torch.Tensor
            Coefficients, same shape, dtype and device as `x`.
        """
        return self._transform(x, inverse=False)

    def inverse(self, c: torch.Tensor) -> torch.Tensor:
        """Synthesis ``W* c``: exact inverse and exact adjoint of `forward`.

        Parameters
        ----------
        c : torch.Tensor
            Packed coefficients of shape ``(*batch, n)`` or ``(*batch, H, W)``.

        Returns
        -------
        torch.Tensor
            Signal, same shape, dtype and device as `c`.
        """
        return self._transform(c, inverse=True)

    def frame_forward(self, x: torch.Tensor, n_shifts: int = 2) -> torch.Tensor:
        """Analysis by the cycle-spun (translation-invariant) Parseval frame.

        The transforms of the ``S = n_shifts ** ndim`` circular shifts
        ``torch.roll(x, s, axes)`` of `x` (`frame_shifts` order), stacked on a
        new axis 1 and scaled by ``1 / sqrt(S)``, so that
        ``frame_inverse(frame_forward(x)) == x`` and the norm is kept.  On the
        matrix path the shifts are folded into the level-1 matrices (no roll
        is computed); elsewhere the rolled copies are transformed.

        Parameters
        ----------
        x : torch.Tensor
            Real float tensor ``(N, *spatial)`` or ``(N, *channels, *spatial)``
            (e.g. ``(N, C, H, W)`` with ``ndim=2``).
        n_shifts : int, default=2
            Shifts ``0 .. n_shifts - 1`` per axis.

        Returns
        -------
        torch.Tensor
            Contiguous coefficients ``(N, S, *channels, *spatial)``; each copy
            in the packed layout of `forward`.
        """
        self._check_frame_input(x, n_shifts, inverse=False)
        return self._linear(x, False, n_shifts)

    def frame_inverse(self, u: torch.Tensor, n_shifts: int = 2) -> torch.Tensor:
        """Synthesis by the frame: exact adjoint of `frame_forward`.

        Each copy is inverted, shifted back and the copies are summed, times
        ``1 / sqrt(S)``: ``frame_inverse(frame_forward(x)) == x`` (a Parseval
        frame; the other composition is a projection, not the identity).

        Parameters
        ----------
        u : torch.Tensor
            Coefficients ``(N, S, *channels, *spatial)``, ``S = n_shifts ** ndim``.
        n_shifts : int, default=2
            As given to `frame_forward`.

        Returns
        -------
        torch.Tensor
            Signal ``(N, *channels, *spatial)``.
        """
        self._check_frame_input(u, n_shifts, inverse=True)
        return self._linear(u, True, n_shifts)

    def _check_n_shifts(self, n_shifts):
        if isinstance(n_shifts, bool) or not isinstance(n_shifts, numbers.Integral) or n_shifts < 1:
            raise ValueError(f"n_shifts must be a positive integer, got {n_shifts!r}.")

    def _check_frame_input(self, t, n_shifts, inverse):
        self._check_n_shifts(n_shifts)
        if not torch.is_tensor(t) or not t.is_floating_point():
            raise TypeError("Expected a real floating-point torch.Tensor.")
        lead = 2 if inverse else 1
        what = "(N, S, [channels,] " if inverse else "(N, [channels,] "
        if t.dim() < self.ndim + lead:
            raise ValueError(f"Expected {what}{'n' if self.ndim == 1 else 'H, W'}), got "
                             f"shape {tuple(t.shape)}.")
        if inverse and t.shape[1] != n_shifts ** self.ndim:
            raise ValueError(f"Expected S = n_shifts**{self.ndim} = {n_shifts ** self.ndim} "
                             f"copies on axis 1, got shape {tuple(t.shape)}.")
        self._check_spatial(t.shape[t.dim() - self.ndim:])

    # --- subband bookkeeping -----------------------------------------------------
    def subband_names(self) -> list:
        """Subband names: ``"a{L}"`` then, from level L down to 1, ``"h{j}", "v{j}", "d{j}"`` (2-D) or ``"d{j}"`` (1-D)."""
        kinds = ("h", "v", "d") if self.ndim == 2 else ("d",)
        names = [f"a{self.levels}"]
        for j in range(self.levels, 0, -1):
            names += [f"{k}{j}" for k in kinds]
        return names

    def subband_levels(self) -> list:
        """Level of each subband, aligned with `subband_names`.

        Detail subbands get their level ``j`` (1 = finest, L = coarsest).  The
        approximation gets ``L + 1``: it is a separate group and levels then
        increase with coarseness.  Group "per level" by equal values.

        Returns
        -------
        list of int
            E.g. ``[4, 3, 3, 3, 2, 2, 2, 1, 1, 1]`` for 2-D, ``L = 3``.
        """
        per_level = 3 if self.ndim == 2 else 1
        levels = [self.levels + 1]
        for j in range(self.levels, 0, -1):
            levels += [j] * per_level
        return levels

    def subband_index(self, shape):
        """Label map of the packed layout.

        Parameters
        ----------
        shape : tuple of int
            The last `ndim` sizes, e.g. ``(64, 64)``.

        Returns
        -------
        index : torch.LongTensor
            Tensor of `shape`; entry = position of its subband in `names`.
        names : list of str
            `subband_names()`; see `subband_levels` for their levels.
        """
        self.check_shape(shape)
        shape = tuple(int(s) for s in shape)
        index = torch.zeros(shape, dtype=torch.long)  # approximation = 0
        label = 1
        for j in range(self.levels, 0, -1):
            if self.ndim == 1:
                n = shape[0] >> j
                index[n:2 * n] = label
                label += 1
                continue
            h, w = shape[0] >> j, shape[1] >> j
            index[h:2 * h, :w] = label          # h_j (pywt cH), bottom-left
            index[:h, w:2 * w] = label + 1      # v_j (pywt cV), top-right
            index[h:2 * h, w:2 * w] = label + 2  # d_j (pywt cD)
            label += 3
        return index, self.subband_names()


class _AdjointGrad(torch.autograd.Function):
    """`WaveletTransform` analysis or synthesis with the adjoint as derivative.

    For the orthonormal ``W``: ``vjp(W)(g) = W* g = W^{-1} g`` and
    ``jvp(W)(t) = W t``; for the frame (``n_shifts > 0``) the vjp of the
    analysis is the frame synthesis (its adjoint) and vice versa.  Backward
    calls ``apply`` again, so higher-order derivatives work too.  Basis
    inputs are flattened ``(B, ...)`` batches.
    """

    generate_vmap_rule = True  # forward is plain torch ops, so torch.func.vmap works

    @classmethod
    def apply(cls, transform, t, inverse, n_shifts):
        # Function.apply binds the arguments with inspect.signature (~45 us a
        # call, more than a small transform) before this same dispatch; the
        # arguments here are always all given positionally.
        if torch._C._are_functorch_transforms_active():
            return super().apply(transform, t, inverse, n_shifts)
        return super(torch.autograd.Function, cls).apply(
            *_unwrap_dead_wrappers((transform, t, inverse, n_shifts)))

    @staticmethod
    def forward(transform, t, inverse, n_shifts):
        return transform._compute(t, inverse, n_shifts)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.transform, _, ctx.inverse, ctx.n_shifts = inputs

    @staticmethod
    def backward(ctx, grad):
        return None, _AdjointGrad.apply(ctx.transform, grad, not ctx.inverse, ctx.n_shifts), None, None

    @staticmethod
    def jvp(ctx, _, tangent, __, ___):
        return _AdjointGrad.apply(ctx.transform, tangent, ctx.inverse, ctx.n_shifts)
