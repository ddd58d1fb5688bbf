"""Denoiser networks trained from scratch in the package, and their supervised pre-training.

:class:`DnCNN` and :class:`SmallUNet` are plain :class:`torch.nn.Module`
residual denoisers ``D(x) = x − N(x)`` (``N`` predicts the noise), to plug
into :class:`~retune_sklearn.regularizers.PnP`; :func:`pretrain_denoiser`
trains any such module on (noisy, clean) pairs drawn on the fly. Nothing is
downloaded: the networks start from torch's seeded random initialization.

Every convolution pads by reflection (``padding="reflect"``, the default
``"auto"`` without ``lipschitz``: photos are not periodic, and on the PnP
deblurring benchmark reflection scored +0.9 dB over circular padding,
``benchmarks/pnp_padding.md``) or circularly (``padding="circular"``, as the
package's periodic operators; the ``"auto"`` choice with ``lipschitz=True``) and,
with ``lipschitz=True`` (circular padding only: reflection repeats border
pixels, which can raise the norm by up to ``√2`` per axis), divides its kernel by
``max(1, √(k^ndim) ‖W‖₂)`` (``‖W‖₂``: spectral norm of the kernel reshaped to
(out, in·k^ndim), computed exactly by an SVD at every call), an upper bound
of the convolution's Lipschitz constant: the convolution is then
1-Lipschitz, ``N`` is 1-Lipschitz and ``Lip(D) ≤ 2``. That keeps
plug-and-play iterations stable (``Lip(v ↦ v + t(D(v) − v)) ≤ 1 + t``) but does
not make ``D`` non-expansive. The constraint is a plain function of the
weights inside ``forward`` rather than
``torch.nn.utils.parametrizations.spectral_norm``: parametrized modules do
not pickle, and spectral_norm's power-iteration buffers only update in
training mode, so inside :func:`torch.func.functional_call` (trainable PnP)
its normalization would lag behind the weights.
"""

import math

import numpy as np
import torch
from torch import nn
from torch.func import jvp, vjp
from torch.nn import functional as F

__all__ = ["DnCNN", "SmallUNet", "pretrain_denoiser", "lipschitz_normalized",
           "local_lipschitz"]

#: Learning-rate schedules of :func:`pretrain_denoiser`.
LR_SCHEDULES = ("cosine", "constant")


def lipschitz_normalized(weight):
    """``weight / max(1, √(k^ndim) ‖W‖₂)``: a convolution kernel whose convolution is
    1-Lipschitz (``‖W‖₂`` the spectral norm of the kernel reshaped to (out, in·k^ndim))."""
    bound = math.prod(weight.shape[2:]) ** 0.5 * torch.linalg.matrix_norm(
        weight.reshape(weight.shape[0], -1), ord=2)
    return weight / torch.clamp(bound, min=1.0)


#: Boundary handling of the zoo's convolutions: "auto", or an ``F.pad`` mode.
PADDINGS = ("auto", "circular", "reflect")


def _resolve_padding(padding, lipschitz):
    """The ``F.pad`` mode of ``padding``: "auto" is reflection, or circular padding with
    ``lipschitz=True`` (the only one under which the normalization holds)."""
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {PADDINGS}; got {padding!r}.")
    if padding == "auto":
        return "circular" if lipschitz else "reflect"
    if lipschitz and padding != "circular":
        raise ValueError("lipschitz=True needs padding='circular' (or 'auto'): with "
                         "reflection the normalized convolutions are no longer 1-Lipschitz.")
    return padding


class PaddedConv(nn.Module):
    """A 1-D or 2-D "same" convolution, padded circularly or by reflection, optionally
    1-Lipschitz.

    Parameters
    ----------
    in_channels, out_channels : int
    ndim : {1, 2}
        Spatial dimensions.
    kernel_size : int, default=3
        Odd side of the kernel.
    lipschitz : bool, default=False
        Normalize the kernel with :func:`lipschitz_normalized` at every call.
    padding : {"auto", "circular", "reflect"}, default="auto"
        "auto": reflection, or circular padding with ``lipschitz=True``.
    """

    #: What modules pickled before ``padding`` existed (as ``CircularConv``) pad with.
    padding = "circular"

    def __init__(self, in_channels, out_channels, ndim=2, kernel_size=3, lipschitz=False,
                 padding="auto"):
        super().__init__()
        if ndim not in (1, 2):
            raise ValueError(f"ndim must be 1 or 2; got {ndim!r}.")
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd; got {kernel_size!r}.")
        padding = _resolve_padding(padding, lipschitz)
        conv = (nn.Conv1d if ndim == 1 else nn.Conv2d)(in_channels, out_channels, kernel_size)
        # The weights of torch's default initialization, held here without the module.
        self.weight, self.bias = conv.weight, conv.bias
        self.ndim, self.kernel_size, self.lipschitz = ndim, kernel_size, lipschitz
        self.padding = padding

    def forward(self, x):
        weight = lipschitz_normalized(self.weight) if self.lipschitz else self.weight
        radius = self.kernel_size // 2
        if self.padding == "reflect" and min(x.shape[-self.ndim:]) <= radius:
            # F.pad's own message names neither the network nor the remedy.
            raise ValueError(f"padding='reflect' with kernel_size={self.kernel_size} needs "
                             f"signals longer than {radius} on every axis (at every level "
                             f"of a U-Net); got shape {tuple(x.shape)}. Use larger inputs or "
                             "padding='circular'.")
        x = F.pad(x, (radius,) * (2 * self.ndim), mode=self.padding)
        return (F.conv1d if self.ndim == 1 else F.conv2d)(x, weight, self.bias)


#: The class's former name, so that networks pickled before the rename still load.
CircularConv = PaddedConv


def _with_noise_map(x, sigma):
    """``x`` with the noise level as one more channel (noise-conditional networks)."""
    if sigma is None:
        raise ValueError("This network is noise-conditional: call it as D(x, sigma).")
    sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    return torch.cat([x, sigma.expand(x.shape[0], 1, *x.shape[2:])], dim=1)


class DnCNN(nn.Module):
    """DnCNN (Zhang et al., 2017) without batch normalization: ``D(x) = x − N(x)``.

    ``N`` is ``depth`` convolutions with ReLUs between them.

    Parameters
    ----------
    depth : int, default=5
        Number of convolutions (≥ 2).
    channels : int, default=32
        Channels of the hidden layers.
    in_channels : int, default=1
        Channels of the images (3 for RGB).
    ndim : {1, 2}, default=2
        1 for signals ``(N, C, L)``, 2 for images ``(N, C, H, W)``.
    kernel_size : int, default=3
    lipschitz : bool, default=False
        Make every convolution 1-Lipschitz (see the module docstring).
    noise_conditional : bool, default=False
        Take the noise level as input, ``D(x, sigma)`` (``sigma`` a number or a
        tensor broadcastable to ``(N, 1, 1, 1)``), as an extra input channel.
    padding : {"auto", "circular", "reflect"}, default="auto"
        Boundary of the convolutions: "auto" is reflection, or circular padding
        with ``lipschitz=True`` (see the module docstring).
    """

    def __init__(self, depth=5, channels=32, in_channels=1, ndim=2, kernel_size=3,
                 lipschitz=False, noise_conditional=False, padding="auto"):
        super().__init__()
        if depth < 2:
            raise ValueError(f"DnCNN depth must be at least 2; got {depth!r}.")
        self.noise_conditional = noise_conditional
        sizes = [in_channels + noise_conditional] + [channels] * (depth - 1) + [in_channels]
        self.convs = nn.ModuleList(PaddedConv(a, b, ndim, kernel_size, lipschitz, padding)
                                   for a, b in zip(sizes[:-1], sizes[1:]))

    def forward(self, x, sigma=None):
        h = _with_noise_map(x, sigma) if self.noise_conditional else x
        for i, conv in enumerate(self.convs):
            h = conv(h) if i == 0 else conv(F.relu(h))
        return x - h


class SmallUNet(nn.Module):
    """A small residual U-Net (DRUNet-like, without its residual blocks): ``D(x) = x − N(x)``.

    ``levels`` times: two convolutions, then down-sampling by 2 (channels
    doubled); at the bottom two convolutions; back up with nearest
    up-sampling, merging each skip connection by the mean ``½(skip + up)``.
    Down-sampling is ``2 ×`` average pooling and up-sampling nearest
    neighbour ``/ 2``, both of norm 1, so that with ``lipschitz=True`` ``N``
    is 1-Lipschitz. Images only, with ``H`` and ``W`` divisible by ``2**levels``
    (and, padded by reflection, at least ``2**(levels + 1)``).

    Parameters
    ----------
    channels : int, default=16
        Channels at full resolution (doubled at every level).
    levels : int, default=2
        Down-sampling steps.
    in_channels : int, default=1
    lipschitz : bool, default=False
        Make every convolution 1-Lipschitz (see the module docstring).
    noise_conditional : bool, default=False
        Take the noise level as an extra input channel, ``D(x, sigma)``.
    padding : {"auto", "circular", "reflect"}, default="auto"
        Boundary of the convolutions: "auto" is reflection, or circular padding
        with ``lipschitz=True`` (see the module docstring).
    """

    def __init__(self, channels=16, levels=2, in_channels=1, lipschitz=False,
                 noise_conditional=False, padding="auto"):
        super().__init__()
        self.levels, self.noise_conditional = levels, noise_conditional
        widths = [channels * 2 ** i for i in range(levels + 1)]

        def conv(a, b):
            return PaddedConv(a, b, 2, 3, lipschitz, padding)
        self.head = conv(in_channels + noise_conditional, widths[0])
        self.encoders = nn.ModuleList(conv(widths[i], widths[i]) for i in range(levels))
        self.downs = nn.ModuleList(conv(widths[i], widths[i + 1]) for i in range(levels))
        self.bottom = conv(widths[-1], widths[-1])
        self.ups = nn.ModuleList(conv(widths[i + 1], widths[i]) for i in range(levels))
        self.decoders = nn.ModuleList(conv(widths[i], widths[i]) for i in range(levels))
        self.tail = conv(widths[0], in_channels)

    def forward(self, x, sigma=None):
        factor = 2 ** self.levels
        if x.dim() != 4 or x.shape[-1] % factor or x.shape[-2] % factor:
            raise ValueError(f"SmallUNet(levels={self.levels}) needs images (N, C, H, W) with H "
                             f"and W divisible by {factor}; got shape {tuple(x.shape)}.")
        h = F.relu(self.head(_with_noise_map(x, sigma) if self.noise_conditional else x))
        skips = []
        for encoder, down in zip(self.encoders, self.downs):
            h = F.relu(encoder(h))
            skips.append(h)
            h = F.relu(down(2 * F.avg_pool2d(h, 2)))
        h = F.relu(self.bottom(h))
        for i in reversed(range(self.levels)):
            up = F.relu(self.ups[i](F.interpolate(h, scale_factor=2, mode="nearest") / 2))
            h = F.relu(self.decoders[i]((skips[i] + up) / 2))
        return x - self.tail(h)


def _noise_levels(noise_sigma, n, generator, dtype):
    """Per-sample noise levels: ``noise_sigma``, or uniform in the range ``(low, high)``."""
    if np.ndim(noise_sigma) == 0:
        return torch.full((n,), float(noise_sigma), dtype=dtype)
    low, high = (float(s) for s in noise_sigma)
    return low + (high - low) * torch.rand(n, generator=generator, dtype=dtype)


def _check_module(module):
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be a torch.nn.Module; got {type(module).__name__}.")


def _check_pretraining(clean, noise_sigma, epochs, batch_size, crop_size, augment,
                       lr_schedule):
    """``clean`` as float64 numpy; ValueError naming the first bad argument."""
    clean = np.asarray(clean, dtype=np.float64)
    if clean.ndim < 2 or clean.ndim > 4 or len(clean) == 0 or not np.isfinite(clean).all():
        raise ValueError("clean_patches must be a non-empty finite array (n, L), (n, H, W) or "
                         f"(n, C, H, W); got shape {clean.shape}.")
    levels = np.atleast_1d(np.asarray(noise_sigma, dtype=np.float64))
    if levels.size not in (1, 2) or not np.all(np.isfinite(levels)) or np.any(levels < 0):
        raise ValueError("noise_sigma must be a non-negative number or a (low, high) range; "
                         f"got {noise_sigma!r}.")
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer; got {value!r}.")
    if crop_size is not None and clean.ndim == 2:
        raise ValueError("crop_size applies to images (n, H, W) or (n, C, H, W); got 1-D "
                         f"signals of shape {clean.shape}.")
    if crop_size is not None and (not isinstance(crop_size, (int, np.integer))
                                  or not 1 <= crop_size <= min(clean.shape[-2:])):
        raise ValueError(f"crop_size must be None or an integer in [1, {min(clean.shape[-2:])}]"
                         f"; got {crop_size!r}.")
    if not isinstance(augment, (bool, np.bool_)):
        raise ValueError(f"augment must be True or False; got {augment!r}.")
    if lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}; got {lr_schedule!r}.")
    return clean


def _random_crops(batch, crop_size, generator):
    """One random ``crop_size`` window (same for the whole batch) of the last two axes."""
    if crop_size is None:
        return batch
    h, w = batch.shape[-2:]
    i = int(torch.randint(h - crop_size + 1, (1,), generator=generator))
    j = int(torch.randint(w - crop_size + 1, (1,), generator=generator))
    return batch[..., i:i + crop_size, j:j + crop_size]


def _random_symmetry(batch, generator):
    """The batch under one random symmetry (shared by the batch): for square images one
    of the 8 of the square (rotations by 90°, optionally mirrored), for other images a
    flip of either axis or both, for 1-D signals a reversal or not."""
    k = int(torch.randint(8, (1,), generator=generator))
    if batch.dim() == 3:
        return batch.flip(-1) if k % 2 else batch
    if batch.shape[-1] != batch.shape[-2]:
        flips = ((), (-1,), (-2,), (-2, -1))[k % 4]
        return batch.flip(flips) if flips else batch
    batch = torch.rot90(batch, k % 4, (-2, -1))
    return batch.flip(-1) if k >= 4 else batch


def pretrain_denoiser(module, clean_patches, noise_sigma=0.1, epochs=10, *, batch_size=16,
                      learning_rate=1e-3, lr_schedule="cosine", crop_size=None, augment=True,
                      noise_conditional=False, random_state=0, history=None):
    """Supervised training of a denoiser on (noisy, clean) pairs drawn on the fly.

    Each epoch visits the clean patches in a random order; every batch gets
    fresh Gaussian noise, ``noisy = clean + σ ε``, and one Adam step on the
    mean squared error ``‖D(noisy) − clean‖²``. The module is trained in place,
    on the device and in the dtype of its parameters (move it first, e.g.
    ``module.cuda()``), in training mode, and left in evaluation mode.

    Parameters
    ----------
    module : torch.nn.Module
        The denoiser ``D(x)`` (or ``D(x, sigma)`` with ``noise_conditional``),
        taking ``(N, C, H, W)`` images (or ``(N, C, L)`` signals).
    clean_patches : array-like of shape (n, L), (n, H, W) or (n, C, H, W)
        Clean training signals, e.g.
        :func:`retune_sklearn.datasets.load_image_patches`.
    noise_sigma : float or (float, float), default=0.1
        Noise level, or a range ``(low, high)`` sampled uniformly per patch
        (a blind or noise-conditional denoiser).
    epochs : int, default=10
        Passes over ``clean_patches``.
    batch_size : int, default=16
    learning_rate : float, default=1e-3
        Adam's (initial) learning rate.
    lr_schedule : {"cosine", "constant"}, default="cosine"
        ``"cosine"``: the rate decays from ``learning_rate`` to 0 over all the
        steps (:class:`torch.optim.lr_scheduler.CosineAnnealingLR`), so that
        the last steps refine the weights instead of keeping the first
        steps' noise; ``"constant"``: ``learning_rate`` throughout (chain calls
        for stages at different rates).
    crop_size : int or None, default=None
        Train on a random ``crop_size × crop_size`` window of each batch of
        images (cheaper steps; convolutional networks apply to any size).
    augment : bool, default=True
        Show each batch under a random symmetry: rotations by 90° and mirror
        images (reversal for 1-D signals). Natural images are statistically
        invariant under them, so this multiplies the training data by up to 8.
    noise_conditional : bool, default=False
        Call ``module(noisy, sigma)`` with ``sigma`` of shape ``(N, 1, 1, 1)``.
    random_state : int, default=0
        Seed of the order, the crops, the symmetries and the noise.
    history : list or None, default=None
        If given, the mean training loss of every epoch is appended to it.

    Returns
    -------
    module : torch.nn.Module
        The same module, trained.
    """
    _check_module(module)
    clean = _check_pretraining(clean_patches, noise_sigma, epochs, batch_size, crop_size,
                               augment, lr_schedule)
    reference = next(module.parameters(), None)
    if reference is None:
        raise ValueError(f"module {type(module).__name__} has no parameters to train.")
    dtype, device = reference.dtype, reference.device
    data = torch.as_tensor(clean, dtype=dtype)
    data = data[:, None] if data.dim() in (2, 3) else data  # a channel axis
    generator = torch.Generator().manual_seed(int(random_state))
    optimizer = torch.optim.Adam(module.parameters(), lr=learning_rate)
    scheduler = None
    if lr_schedule == "cosine":
        steps = epochs * math.ceil(len(data) / batch_size)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    module.train()
    for _ in range(epochs):
        total = 0.0
        for batch in torch.randperm(len(data), generator=generator).split(batch_size):
            target = _random_crops(data[batch], crop_size, generator)
            if augment:
                target = _random_symmetry(target, generator)
            sigma = _noise_levels(noise_sigma, len(target), generator, dtype)
            sigma = sigma.reshape(-1, *(1,) * (target.dim() - 1))
            noisy = target + sigma * torch.randn(target.shape, generator=generator, dtype=dtype)
            noisy, target, sigma = noisy.to(device), target.to(device), sigma.to(device)
            output = module(noisy, sigma) if noise_conditional else module(noisy)
            loss = F.mse_loss(output, target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            total += float(loss.detach()) * len(target)
        if history is not None:
            history.append(total / len(data))
    return module.eval()


def local_lipschitz(module, x, sigma=None, n_iter=30, random_state=0):
    """Spectral norm of the denoiser's Jacobian at each input, ``‖J_D(x_i)‖₂``.

    Power iteration on ``JᵀJ`` (a forward-mode then a reverse-mode product
    per iteration, :func:`torch.func.jvp` and :func:`torch.func.vjp`), one
    estimate per sample, from below (samples must not interact: put the
    module in evaluation mode). Plug-and-play forward–backward is only
    guaranteed to converge when ``D`` is non-expansive; values above 1 at
    the iterates (e.g. blurred images, where a denoiser trained to restore
    edges sharpens) mean the guarantee does not hold there: the iterations
    may stall or diverge, or still converge (both cases in
    ``benchmarks/pnp.md``).

    Parameters
    ----------
    module : torch.nn.Module
        ``D(x)``, or ``D(x, sigma)`` when ``sigma`` is given.
    x : torch.Tensor of shape (N, C, H, W) or (N, C, L)
        The points, in the module's dtype and device.
    sigma : float, torch.Tensor or None, default=None
        Noise level handed to a noise-conditional module.
    n_iter : int, default=30
        Power iterations.
    random_state : int, default=0
        Seed of the starting vectors.

    Returns
    -------
    norms : torch.Tensor of shape (N,)
    """
    _check_module(module)
    if isinstance(n_iter, bool) or not isinstance(n_iter, (int, np.integer)) or n_iter < 1:
        raise ValueError(f"n_iter must be a positive integer; got {n_iter!r}.")
    x = x.detach()

    def denoise(z):
        return module(z) if sigma is None else module(z, sigma)

    def normalized(v):
        return v / v.flatten(1).norm(dim=1).clamp_min(1e-30).reshape(-1, *(1,) * (v.dim() - 1))

    generator = torch.Generator(device=x.device).manual_seed(int(random_state))
    v = normalized(torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device))
    with torch.no_grad():  # torch.func differentiates through it; no graph on the weights
        for _ in range(n_iter):
            _, jv = jvp(denoise, (x,), (v,))
            _, pull_back = vjp(denoise, x)
            (jtjv,) = pull_back(jv)
            v = normalized(jtjv)
        _, jv = jvp(denoise, (x,), (v,))
    return jv.flatten(1).norm(dim=1)
