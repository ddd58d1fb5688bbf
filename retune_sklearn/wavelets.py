"""Orthonormal periodized discrete wavelet transform in torch.

Why hand-written: ptwt's "periodic" mode pads the signal and returns more
coefficients than samples, so it is not orthonormal.  Here the transform is
exactly orthonormal (critically sampled, perfect reconstruction, inverse ==
adjoint), so the prox of ``lam * ||W x||_1`` in synthesis form is an exact
soft-threshold of the coefficients.

Coefficients match ``pywt.wavedec`` / ``pywt.wavedec2`` with
``mode="periodization"`` exactly (same filters, shift and detail signs), packed
like ``pywt.coeffs_to_array``.  Filters are taken from PyWavelets, never typed.

Speed: each level is one stride-1 conv between the polyphase parts of the
signal and the subbands, in both directions, and gradients are computed as
the adjoint transform rather than by backpropagating through the convs.
"""

import pywt
import torch
import torch.nn.functional as F

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
        self.check_shape(x.shape[x.dim() - self.ndim:])

    # --- cached constants --------------------------------------------------------
    def _weights(self, device, dtype):
        """Conv weights for (device, dtype): (2, 1, F) in 1-D, (4, 1, F, F) in 2-D.

        conv is cross-correlation, so the filters are flipped; channels are
        [lo, hi] in 1-D and [aa, da(h), ad(v), dd] in 2-D (axis -2 first).
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
        return self._cache[key]

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

    # --- one level ---------------------------------------------------------------
    # Two exact implementations of the same linear map.  Index-based: wrap
    # with index_select, strided conv; its adjoint (stride-2 conv_transpose +
    # index_add fold) is several times slower (db4: ~5x) on CPU.  Polyphase
    # (default): both directions are one stride-1 conv between the 2 or 4
    # phases (pixel_(un)shuffle) and the bands, as fast as the analysis.  It
    # pads the half-size axes circularly by h-1, which torch only allows when
    # it wraps at most once (h-1 <= n/2).  The maximum level implies that from
    # level 2 on, so only one-level transforms of signals shorter than about
    # the filter use the index-based path.  ``_use_polyphase = False`` forces
    # it (benchmarks, tests).
    _use_polyphase = True

    def _fast(self, half_sizes):
        """Whether the polyphase path applies to half-size axes `half_sizes`."""
        h = self.filter_len // 2
        return self._use_polyphase and all(h - 1 <= n for n in half_sizes)

    def _analysis_step(self, x):
        """One level on (B, n) or (B, H, W): returns (B, 2, n/2) or (B, 4, H/2, W/2)."""
        if self._fast([n // 2 for n in x.shape[1:]]):
            return self._analysis_polyphase(x)
        w = self._weights(x.device, x.dtype)
        if self.ndim == 1:
            xp = x.index_select(-1, self._wrap_index(x.shape[-1], x.device))
            return F.conv1d(xp[:, None], w, stride=2)
        xp = x.index_select(-2, self._wrap_index(x.shape[-2], x.device))
        xp = xp.index_select(-1, self._wrap_index(x.shape[-1], x.device))
        return F.conv2d(xp[:, None], w, stride=2)

    def _synthesis_step(self, c):
        """Exact adjoint (= inverse) of `_analysis_step`: (B, 2|4, ...) -> signal.

        Index-based path: transposed conv, then fold the wrap.
        """
        if self._fast(c.shape[2:]):
            return self._synthesis_polyphase(c)
        w = self._weights(c.device, c.dtype)
        if self.ndim == 1:
            n = 2 * c.shape[-1]
            y = F.conv_transpose1d(c, w, stride=2)[:, 0]
            idx = self._wrap_index(n, c.device)
            # adjoint of index_select: add every wrapped sample back to its source
            return y.new_zeros(y.shape[0], n).index_add(-1, idx, y)
        n0, n1 = 2 * c.shape[-2], 2 * c.shape[-1]
        y = F.conv_transpose2d(c, w, stride=2)[:, 0]
        y = y.new_zeros(y.shape[0], n0, y.shape[-1]).index_add(
            -2, self._wrap_index(n0, c.device), y)
        return y.new_zeros(y.shape[0], n0, n1).index_add(
            -1, self._wrap_index(n1, c.device), y)

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

    # --- batching helpers --------------------------------------------------------
    def _flatten(self, x):
        self._check_input(x)
        lead = x.shape[:x.dim() - self.ndim]
        return x.reshape(-1, *x.shape[x.dim() - self.ndim:]), lead

    # --- multilevel transforms on flattened batches -------------------------------
    def _analysis(self, xb):
        """`forward` on ``(B, n)`` or ``(B, H, W)``, without input checks."""
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
        if self._adjoint_grad:
            out = _AdjointGrad.apply(self, tb, inverse)
        else:
            out = self._synthesis(tb) if inverse else self._analysis(tb)
        return out.reshape(*lead, *out.shape[1:])

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
    ``jvp(W)(t) = W t``.  Backward calls ``apply`` again, so higher-order
    derivatives work too.  Inputs are flattened ``(B, ...)`` batches.
    """

    generate_vmap_rule = True  # forward is plain torch ops, so torch.func.vmap works

    @staticmethod
    def forward(transform, t, inverse):
        return transform._synthesis(t) if inverse else transform._analysis(t)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.transform, _, ctx.inverse = inputs

    @staticmethod
    def backward(ctx, grad):
        return None, _AdjointGrad.apply(ctx.transform, grad, not ctx.inverse), None

    @staticmethod
    def jvp(ctx, _, tangent, __):
        return _AdjointGrad.apply(ctx.transform, tangent, ctx.inverse)
