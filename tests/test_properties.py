"""Property-based tests: operators are adjoint-consistent and bounded, prox is firm."""

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from retune_sklearn.operators import Blur, Identity, Inpainting, check_adjoint
from retune_sklearn.regularizers import WaveletL1

SETTINGS = settings(max_examples=25, deadline=None)
seeds = st.integers(0, 2**32 - 1)


@st.composite
def signal_shapes(draw, min_side=1):
    """(n,), (H, W) or (C, H, W) signal shapes with sides in [min_side, 24]."""
    side = st.integers(min_side, 24)
    ndim = draw(st.sampled_from([1, 2, 3]))
    if ndim == 1:
        return (draw(st.integers(min_side, 64)),)
    spatial = (draw(side), draw(side))
    return (draw(st.integers(1, 3)), *spatial) if ndim == 3 else spatial


@st.composite
def blurs(draw):
    """A Gaussian or a random (asymmetric) kernel, with a signal shape it fits in."""
    shape = draw(signal_shapes(min_side=3))
    ndim = 1 if len(shape) == 1 else 2
    size = draw(st.integers(0, (min(shape[-ndim:]) - 1) // 2)) * 2 + 1
    if draw(st.booleans()):
        return Blur(sigma=draw(st.floats(0.1, 5.0)), size=size), shape
    kernel = np.random.default_rng(draw(seeds)).random((size,) * ndim)
    return Blur(kernel=kernel), shape


@st.composite
def inpaintings(draw):
    """A random 0/1 mask of the signal's shape, or of its trailing axes (shared)."""
    shape = draw(signal_shapes())
    rng = np.random.default_rng(draw(seeds))
    mask_shape = shape[-draw(st.integers(1, len(shape))):]
    mask = rng.random(mask_shape) < draw(st.floats(0.05, 1.0))
    mask.flat[rng.integers(mask.size)] = True  # keep at least one entry
    return Inpainting(mask=mask), shape


operators = st.one_of(signal_shapes().map(lambda shape: (Identity(), shape)), blurs(),
                      inpaintings())


@SETTINGS
@given(operators, seeds)
def test_operators_pass_the_dot_test(operator_and_shape, seed):
    operator, shape = operator_and_shape
    assert check_adjoint(operator, shape, n_samples=3, random_state=seed % 2**31) < 1e-10


@SETTINGS
@given(operators, seeds)
def test_operator_norm_bounds_every_output(operator_and_shape, seed):
    operator, shape = operator_and_shape
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn((4, *shape), generator=generator, dtype=torch.float64)
    norm = operator.norm(shape)
    ratios = operator.forward(x).flatten(1).norm(dim=1) / x.flatten(1).norm(dim=1)
    assert (ratios <= norm * (1 + 1e-6)).all()


@st.composite
def prox_problems(draw):
    """WaveletL1, two coefficient batches of a compatible shape, positive thresholds."""
    levels = draw(st.integers(1, 3))
    weights = draw(st.sampled_from(["scalar", "level", "subband"]))
    regularizer = WaveletL1("haar", levels=levels, weights=weights,
                            penalize_approximation=draw(st.booleans()))
    side = st.integers(1, 3).map(lambda k: k * 2**levels)
    shape = draw(st.sampled_from([(draw(side),), (draw(side), draw(side)),
                                  (2, draw(side), draw(side))]))
    n_weights = len(regularizer.weight_names(shape))
    thresholds = draw(st.lists(st.floats(1e-3, 10.0), min_size=n_weights,
                               max_size=n_weights))
    rng = np.random.default_rng(draw(seeds))
    scale = draw(st.floats(0.01, 100.0))
    a, b = (torch.as_tensor(scale * rng.standard_normal((3, *shape))) for _ in range(2))
    return regularizer, a, b, torch.tensor(thresholds, dtype=torch.float64)


def assert_firmly_nonexpansive(prox, a, b):
    """‖p(a) − p(b)‖² ≤ ⟨p(a) − p(b), a − b⟩ (per sample), to round-off."""
    difference = (prox(a) - prox(b)).flatten(1)
    inner = (difference * (a - b).flatten(1)).sum(dim=1)
    tolerance = 1e-10 * (a - b).flatten(1).pow(2).sum(dim=1)
    assert (difference.pow(2).sum(dim=1) <= inner + tolerance).all()


@SETTINGS
@given(prox_problems())
def test_wavelet_prox_is_firmly_nonexpansive(problem):
    regularizer, a, b, thresholds = problem
    assert_firmly_nonexpansive(lambda u: regularizer.prox(u, thresholds), a, b)
    # In the signal domain too: W* prox W, with W orthonormal.
    assert_firmly_nonexpansive(
        lambda x: regularizer.synthesis(regularizer.prox(regularizer.analysis(x), thresholds)),
        a, b)
