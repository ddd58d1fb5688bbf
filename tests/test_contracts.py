"""Contract tests: every operator and regularizer of the package through the same checks.

ONE registry per kind (``OPERATORS``, ``REGULARIZERS``): an entry is a
factory, the signal shape it is tested on and what the contract may expect
of it. A new component is one class plus one registry line; the last tests
check that every public component class has a line.
"""

import pickle
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import pytest
import scipy.sparse
import scipy.sparse.linalg
import torch
from sklearn.base import clone
from sklearn.utils._param_validation import InvalidParameterError

from retune_sklearn import operators, regularizers
from retune_sklearn._params import ParameterObject
from retune_sklearn.operators import (Blur, CallableOperator, Downsampling, Identity, Inpainting,
                                      MatrixOperator, check_adjoint, power_iteration)
from retune_sklearn.regularizers import (L1Norm, LearnedDenoiser, PnP, Tikhonov, TotalVariation,
                                         WaveletL1)
from retune_sklearn.zoo import DnCNN, SmallUNet


@dataclass(frozen=True)
class Entry:
    """One component variant of a registry."""

    id: str
    factory: Callable
    shape: tuple
    #: A parameter that must be an int (set to True, it must be refused).
    int_param: Optional[str] = None
    #: Regularizers: the prox is the prox of a convex penalty (non-expansive, has a penalty).
    convex: bool = True
    #: Regularizers: the prox is exact (checked as the minimizer of its objective).
    exact_prox: bool = True

    def __repr__(self):
        return self.id


def params(registry):
    return [pytest.param(entry, id=entry.id) for entry in registry]


def generator(seed=0):
    return torch.Generator().manual_seed(seed)


def randn(shape, seed=0):
    return torch.randn(shape, generator=generator(seed), dtype=torch.float64)


def round_trips(component):
    """The component, a clone and a pickled copy (all three used once before)."""
    return {"clone": clone(component), "pickle": pickle.loads(pickle.dumps(component))}


# --------------------------------------------------------------------- operators
def crop_forward(x):  # module level, so that CallableOperator pickles
    return x[..., 1:-2]


def crop_adjoint(z):
    return torch.nn.functional.pad(z, (1, 2))


def crop_shape(signal_shape):
    return (*signal_shape[:-1], signal_shape[-1] - 3)


def _matrix(kind, m=7, d=11):
    rng = np.random.default_rng(0)
    dense = rng.standard_normal((m, d))
    sparse = scipy.sparse.random(m, d, density=0.3, format="csr", random_state=0)
    return {"dense": dense, "csr": sparse,
            "linop": scipy.sparse.linalg.aslinearoperator(dense)}[kind]


ASYMMETRIC = np.arange(1.0, 10.0).reshape(3, 3) / 45
OPERATORS = [
    Entry("identity", Identity, (8, 8)),
    Entry("blur-gaussian", lambda: Blur(sigma=1.0), (12, 10)),
    Entry("blur-gaussian-1d", lambda: Blur(sigma=0.8, size=5), (16,), int_param="size"),
    Entry("blur-kernel-color", lambda: Blur(kernel=ASYMMETRIC), (2, 8, 8)),
    Entry("inpainting-random", lambda: Inpainting(keep_prob=0.6, random_state=1), (8, 8)),
    Entry("inpainting-shared-mask",
          lambda: Inpainting(mask=np.random.default_rng(0).random((8, 8)) < 0.5), (3, 8, 8)),
    Entry("downsampling-gaussian", lambda: Downsampling(2), (8, 8), int_param="factor"),
    Entry("downsampling-box-color", lambda: Downsampling(3, filter="box"), (2, 9, 6)),
    Entry("downsampling-none-1d", lambda: Downsampling(2, filter="none"), (16,)),
    Entry("downsampling-kernel", lambda: Downsampling(2, filter=ASYMMETRIC), (8, 6)),
    Entry("blur-gaussian-reflect", lambda: Blur(sigma=1.0, boundary="reflect"), (12, 10)),
    Entry("blur-reflect-1d", lambda: Blur(sigma=0.8, size=5, boundary="reflect"), (16,)),
    Entry("blur-kernel-reflect-color", lambda: Blur(kernel=ASYMMETRIC, boundary="reflect"),
          (2, 8, 8)),
    Entry("blur-even-kernel-reflect", lambda: Blur(kernel=np.ones((2, 4)) / 8, boundary="reflect"),
          (7, 9)),
    Entry("downsampling-gaussian-reflect", lambda: Downsampling(2, boundary="reflect"), (8, 8)),
    Entry("downsampling-box-reflect-1d",
          lambda: Downsampling(3, filter="box", boundary="reflect"), (12,)),
    Entry("downsampling-kernel-reflect",
          lambda: Downsampling(2, filter=ASYMMETRIC, boundary="reflect"), (8, 6)),
    Entry("matrix-dense", lambda: MatrixOperator(_matrix("dense")), (11,)),
    Entry("matrix-sparse", lambda: MatrixOperator(_matrix("csr")), (11,)),
    Entry("matrix-linop", lambda: MatrixOperator(_matrix("linop")), (11,)),
    Entry("callable", lambda: CallableOperator(crop_forward, crop_adjoint, crop_shape), (2, 12)),
]


def dense_matrix(operator, shape):
    """The operator's matrix, one basis vector at a time (independent of its adjoint)."""
    d = int(np.prod(shape))
    basis = torch.eye(d, dtype=torch.float64).reshape(d, *shape)
    return operator.forward(basis).reshape(d, -1).T.numpy()


@pytest.mark.parametrize("entry", params(OPERATORS))
def test_operator_passes_the_dot_test(entry):
    operator = entry.factory()
    operator.check_signal_shape(entry.shape)
    assert check_adjoint(operator, entry.shape, n_samples=4, random_state=1) < 1e-12
    matrix = dense_matrix(operator, entry.shape)
    z = randn((2, *operator.measurement_shape(entry.shape)))
    np.testing.assert_allclose(operator.adjoint(z).reshape(2, -1).numpy(),
                               z.reshape(2, -1).numpy() @ matrix, atol=1e-12)


@pytest.mark.parametrize("entry", params(OPERATORS))
def test_operator_shapes_and_dtypes(entry):
    operator = entry.factory()
    measurement_shape = tuple(operator.measurement_shape(entry.shape))
    for dtype in (torch.float32, torch.float64):
        x = randn((3, *entry.shape)).to(dtype)
        ax = operator.forward(x)
        assert ax.shape == (3, *measurement_shape) and ax.dtype == dtype
        atz = operator.adjoint(ax)
        assert atz.shape == x.shape and atz.dtype == dtype


@pytest.mark.parametrize("entry", params(OPERATORS))
def test_operator_norm_matches_power_iteration_and_svd(entry):
    operator = entry.factory()
    exact = np.linalg.norm(dense_matrix(operator, entry.shape), ord=2)
    assert operator.norm(entry.shape) == pytest.approx(exact, rel=1e-2)
    gram = power_iteration(lambda x: operator.adjoint(operator.forward(x)), entry.shape)
    assert np.sqrt(gram) == pytest.approx(exact, rel=1e-2)


@pytest.mark.parametrize("entry", params(OPERATORS))
def test_operator_clone_and_pickle_give_identical_outputs(entry):
    operator = entry.factory()
    x = randn((2, *entry.shape))
    ax = operator.forward(x)
    atz = operator.adjoint(ax)
    for how, copy in round_trips(operator).items():
        assert type(copy) is type(operator), how
        assert torch.equal(copy.forward(x), ax), how
        assert torch.equal(copy.adjoint(ax), atz), how


@pytest.mark.parametrize("entry", params([e for e in OPERATORS if e.int_param]))
def test_operator_refuses_a_bool_for_an_int(entry):
    operator = entry.factory().set_params(**{entry.int_param: True})
    with pytest.raises(InvalidParameterError, match=f"'{entry.int_param}' parameter"):
        operator.check_signal_shape(entry.shape)


# ------------------------------------------------------------------ regularizers
def seeded(make, *args, **kwargs):
    """A torch module built from a fixed seed (the registry's factories are called often)."""
    def factory():
        torch.manual_seed(0)
        return make(*args, **kwargs)
    return factory


REGULARIZERS = [
    Entry("l1", L1Norm, (16,)),
    Entry("wavelet-subband", lambda: WaveletL1("haar", 2), (8, 8), int_param="levels"),
    Entry("wavelet-level-1d", lambda: WaveletL1("db2", 2, weights="level"), (16,)),
    Entry("wavelet-scalar-unpenalized-approx",
          lambda: WaveletL1("haar", 2, weights="scalar", penalize_approximation=False), (8, 8)),
    Entry("wavelet-shared-color", lambda: WaveletL1("haar", 1), (3, 8, 8)),
    Entry("wavelet-separate", lambda: WaveletL1("haar", 1, channels="separate"), (3, 8, 8)),
    Entry("wavelet-group", lambda: WaveletL1("haar", 1, channels="group"), (3, 8, 8)),
    Entry("wavelet-ti", lambda: WaveletL1("db2", 1, translation_invariant=True), (8, 8),
          int_param="n_shifts"),
    Entry("wavelet-ti-separate",
          lambda: WaveletL1("haar", 1, translation_invariant=True, n_shifts=3,
                            channels="separate"), (2, 8, 8)),
    Entry("wavelet-ti-group-1d",
          lambda: WaveletL1("haar", 1, translation_invariant=True, channels="group"), (16,)),
    Entry("tikhonov-0", Tikhonov, (8, 8), int_param="order"),
    Entry("tikhonov-1", lambda: Tikhonov(order=1, boundary="periodic"), (2, 8, 6)),
    Entry("tikhonov-1-1d", lambda: Tikhonov(order=1, boundary="periodic"), (16,)),
    Entry("tikhonov-1-reflect", lambda: Tikhonov(order=1, boundary="reflect"), (2, 8, 6)),
    Entry("tikhonov-1-reflect-1d", lambda: Tikhonov(order=1, boundary="reflect"), (16,)),
    # FGP with n_inner steps is an approximate prox: optimality is checked with many steps.
    # "tv-iso" and "tv-iso-color" use the class default (boundary="reflect"); the other
    # TV and Tikhonov entries pass their boundary.
    Entry("tv-iso", TotalVariation, (8, 8), int_param="n_inner", exact_prox=False),
    Entry("tv-iso-exact", lambda: TotalVariation(n_inner=800, boundary="periodic"), (4, 5)),
    Entry("tv-aniso-1d", lambda: TotalVariation(isotropic=False, boundary="periodic"), (16,),
          exact_prox=False),
    Entry("tv-aniso-exact",
          lambda: TotalVariation(isotropic=False, n_inner=800, boundary="periodic"), (4, 5)),
    Entry("tv-direction", lambda: TotalVariation(weights="direction", isotropic=False,
                                                 boundary="periodic"),
          (8, 8), exact_prox=False),
    Entry("tv-iso-color", TotalVariation, (2, 8, 8), exact_prox=False),
    Entry("tv-iso-periodic", lambda: TotalVariation(boundary="periodic"), (8, 8),
          exact_prox=False),
    Entry("tv-iso-reflect-exact", lambda: TotalVariation(n_inner=800, boundary="reflect"), (4, 5)),
    Entry("tv-aniso-reflect-1d", lambda: TotalVariation(isotropic=False, boundary="reflect"),
          (16,), exact_prox=False),
    Entry("wavelet-reflect", lambda: WaveletL1("haar", 2, boundary="reflect"), (8, 8)),
    Entry("wavelet-reflect-1d", lambda: WaveletL1("db2", 2, weights="level", boundary="reflect"),
          (12,)),
    Entry("wavelet-reflect-ti-group",
          lambda: WaveletL1("db2", 1, translation_invariant=True, channels="group",
                            boundary="reflect"), (3, 8, 8)),
    # Plug-and-play: no penalty, not a prox of a convex function (declared, not skipped silently).
    Entry("denoiser", lambda: LearnedDenoiser(n_layers=2, n_channels=4), (8, 8),
          int_param="n_layers", convex=False, exact_prox=False),
    Entry("denoiser-1d", lambda: LearnedDenoiser(n_layers=2, n_channels=3, kernel_size=5),
          (16,), int_param="kernel_size", convex=False, exact_prox=False),
    Entry("denoiser-color", lambda: LearnedDenoiser(n_layers=3, n_channels=4), (3, 8, 8),
          convex=False, exact_prox=False),
    # Plug-and-play around torch modules: frozen, trainable (θ's tensors), noise-conditional.
    Entry("pnp-frozen", lambda: PnP(seeded(DnCNN, 2, 4)()), (8, 8), convex=False,
          exact_prox=False),
    Entry("pnp-trainable-1d", lambda: PnP(seeded(DnCNN, 2, 3, ndim=1)(), trainable=True),
          (16,), convex=False, exact_prox=False),
    Entry("pnp-conditional-color",
          lambda: PnP(seeded(SmallUNet, 2, 1, in_channels=3, noise_conditional=True)(),
                      trainable=True, noise_conditional=True), (3, 8, 8), convex=False,
          exact_prox=False),
]
N = 3  # batch size of the checks


def setup(entry, seed=0):
    """(regularizer, coefficients u of N random signals, network, number of weights)."""
    reg = entry.factory()
    reg.check_signal_shape(entry.shape)
    network = reg.init_parameters(entry.shape, generator(seed))
    return reg, reg.analysis(randn((N, *entry.shape), seed)), network, \
        len(reg.weight_names(entry.shape))


def thresholds(n_weights, *batch, seed=1):
    """Positive random thresholds of shape (*batch, n_weights), away from 0."""
    return 0.05 + 0.5 * torch.rand((*batch, n_weights), generator=generator(seed),
                                   dtype=torch.float64)


@pytest.mark.parametrize("entry", params(REGULARIZERS))
def test_per_sample_weights_equal_a_loop_over_samples(entry):
    reg, u, network, n_weights = setup(entry)
    per_sample = thresholds(n_weights, N)
    batched = reg.prox(u, per_sample, network)
    looped = torch.cat([reg.prox(u[i:i + 1], per_sample[i], network) for i in range(N)])
    torch.testing.assert_close(batched, looped, rtol=1e-13, atol=1e-13)
    shared = thresholds(n_weights)  # (G,) and its (N, G) expansion agree too
    torch.testing.assert_close(reg.prox(u, shared, network),
                               reg.prox(u, shared.expand(N, -1).clone(), network),
                               rtol=1e-13, atol=1e-13)
    if entry.convex:
        penalties = reg.penalty(u, per_sample)
        assert penalties.shape == (N,)
        looped = torch.cat([reg.penalty(u[i:i + 1], per_sample[i]) for i in range(N)])
        torch.testing.assert_close(penalties, looped, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("entry", params(REGULARIZERS[:2]))
def test_weights_of_another_shape_are_refused(entry):
    reg, u, network, n_weights = setup(entry)
    with pytest.raises(ValueError, match=r"must have shape \(G,\) or \(n_samples, G\)"):
        reg.prox(u, thresholds(n_weights, N + 1), network)


@pytest.mark.parametrize("entry", params([e for e in REGULARIZERS if e.int_param]))
def test_regularizer_refuses_a_bool_for_an_int(entry):
    reg = entry.factory().set_params(**{entry.int_param: True})
    with pytest.raises(InvalidParameterError, match=f"'{entry.int_param}' parameter"):
        reg.check_signal_shape(entry.shape)


@pytest.mark.parametrize("entry", params(REGULARIZERS))
def test_synthesis_inverts_analysis(entry):
    reg = entry.factory()
    x = randn((N, *entry.shape))
    torch.testing.assert_close(reg.synthesis(reg.analysis(x)), x, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("entry", params([e for e in REGULARIZERS if e.convex]))
def test_prox_is_non_expansive(entry):
    reg, a, network, n_weights = setup(entry, seed=0)
    b = setup(entry, seed=1)[1]
    t = thresholds(n_weights)
    moved = (reg.prox(a, t, network) - reg.prox(b, t, network)).flatten(1).norm(dim=1)
    assert torch.all(moved <= (a - b).flatten(1).norm(dim=1) * (1 + 1e-9))


@pytest.mark.parametrize("entry", params([e for e in REGULARIZERS if e.exact_prox]))
def test_prox_minimizes_its_objective(entry):
    """prox_t(v) = argmin ½‖z − v‖² + penalty_t(z): no perturbation does better.

    (Against independent minimizers: tests/test_regularizers.py.)"""
    reg, v, network, n_weights = setup(entry)
    t = thresholds(n_weights, N)
    z = reg.prox(v, t, network)

    def objective(w):
        return 0.5 * (w - v).flatten(1).pow(2).sum(dim=1) + reg.penalty(w, t)
    best = objective(z)
    for seed, scale in enumerate([1e-1, 1e-2, 1e-4] * 4):
        other = objective(z + scale * randn(z.shape, seed=seed))
        assert torch.all(best <= other + 1e-12 * (1 + other.abs())), (scale, best, other)


@pytest.mark.parametrize("entry", params(REGULARIZERS))
def test_prox_gradcheck_in_the_thresholds(entry):
    reg, u, network, n_weights = setup(entry)
    # Entries of u at distance >= 0.05 from the thresholds' kinks (|u| = t) almost surely.
    t = thresholds(n_weights, N).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda w: reg.prox(u, w, network), (t,), eps=1e-7,
                                    atol=1e-6, fast_mode=True)


@pytest.mark.parametrize("entry", params(REGULARIZERS))
def test_regularizer_clone_and_pickle_give_identical_outputs(entry):
    reg, u, network, n_weights = setup(entry)
    t = thresholds(n_weights)
    prox, x = reg.prox(u, t, network), reg.synthesis(u)
    for how, copy in round_trips(reg).items():
        assert type(copy) is type(reg), how
        assert copy.weight_names(entry.shape) == reg.weight_names(entry.shape), how
        assert torch.equal(copy.prox(u, t, network), prox), how
        assert torch.equal(copy.synthesis(u), x), how


# ------------------------------------------------------------------- completeness
@pytest.mark.parametrize("module, registry", [(operators, OPERATORS),
                                              (regularizers, REGULARIZERS)])
def test_every_public_component_has_a_registry_line(module, registry):
    bases = (operators.LinearOperator, regularizers.Regularizer)
    public = {name for name in module.__all__ if isinstance(getattr(module, name), type)
              and issubclass(getattr(module, name), ParameterObject)
              and getattr(module, name) not in bases}
    registered = {type(entry.factory()).__name__ for entry in registry}
    assert public <= registered, public - registered
