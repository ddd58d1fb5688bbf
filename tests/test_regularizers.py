"""Regularizers: frames, proxes against their definition, closed forms."""

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from retune_sklearn import ReTuneRegularizer
from retune_sklearn.operators import Blur, Identity
from retune_sklearn.regularizers import Tikhonov, TotalVariation, WaveletL1, soft_threshold


@pytest.mark.parametrize("shape", [(3, 32), (3, 16, 16), (2, 3, 16, 16)])
@pytest.mark.parametrize("n_shifts", [2, 3])
def test_translation_invariant_frame_is_parseval(shape, n_shifts):
    reg = WaveletL1("db2", levels=2, translation_invariant=True, n_shifts=n_shifts)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=gen, dtype=torch.float64)
    u = reg.analysis(x)
    assert u.shape == (shape[0], n_shifts ** (1 if len(shape) == 2 else 2), *shape[1:])
    torch.testing.assert_close(reg.synthesis(u), x)  # W* W = I
    torch.testing.assert_close(u.norm(), x.norm())  # ‖W x‖ = ‖x‖
    v = torch.randn(u.shape, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(torch.sum(u * v), torch.sum(x * reg.synthesis(v)))  # adjoint


def test_translation_invariant_frame_commutes_with_its_shifts():
    """Cycle spinning: shifting by a frame shift only permutes the copies."""
    reg = WaveletL1("haar", levels=1, translation_invariant=True, n_shifts=2)
    x = torch.randn((1, 8, 8), dtype=torch.float64)
    u, u_shifted = reg.analysis(x), reg.analysis(torch.roll(x, 1, -1))
    assert torch.allclose(u_shifted[:, 0], u[:, 1])  # copy (0,0) of shifted = copy (0,1)


def brute_force_prox(penalty, v, **kwargs):
    """argmin_z ½‖z − v‖² + penalty(z) by a generic optimizer (independent truth)."""
    def objective(z):
        return 0.5 * np.sum((z - v) ** 2) + penalty(z)
    return minimize(objective, v, **kwargs).x


def test_soft_threshold_is_the_l1_prox():
    rng = np.random.default_rng(0)
    v = rng.standard_normal(6)
    reference = brute_force_prox(lambda z: 0.3 * np.abs(z).sum(), v, method="Powell",
                                 options={"xtol": 1e-10, "ftol": 1e-14})
    got = soft_threshold(torch.as_tensor(v), torch.tensor(0.3)).numpy()
    np.testing.assert_allclose(got, reference, atol=1e-6)


@pytest.mark.parametrize("order", [0, 1])
def test_tikhonov_prox_matches_dense_solve(order):
    rng = np.random.default_rng(0)
    v = rng.standard_normal((2, 6, 5))
    lam = 0.7
    D = np.eye(30) if order == 0 else np.vstack([_periodic_difference(6, 5, axis) for axis in (0, 1)])
    expected = np.linalg.solve(np.eye(30) + lam * D.T @ D, v.reshape(2, -1).T).T.reshape(v.shape)
    got = Tikhonov(order, boundary="periodic").prox(torch.as_tensor(v),
                                                    torch.tensor([lam], dtype=torch.float64))
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-12)


def _periodic_difference(h, w, axis):
    """Dense matrix of the periodic forward difference along one image axis."""
    eye = np.eye(h * w).reshape(h * w, h, w)
    return (np.roll(eye, -1, axis=axis + 1) - eye).reshape(h * w, h * w)


def test_tikhonov_fit_reaches_closed_form_solution():
    """Blur + order-1 Tikhonov: x* = (AᵀA + λ DᵀD)⁻¹ Aᵀ y."""
    rng = np.random.default_rng(0)
    h = w = 8
    kernel = np.full((3, 3), 0.2 / 9)
    kernel[1, 1] += 0.8
    operator = Blur(kernel=kernel)
    y = rng.random((3, h, w))
    X = operator.forward(torch.as_tensor(y)).numpy() + 0.05 * rng.standard_normal(y.shape)
    lam = 0.3
    est = ReTuneRegularizer(operator=operator, regularizer=Tikhonov(order=1, boundary="periodic"),
                            init_weight=lam,
                            learn_weights=False, K=50, T=6, dtype="float64").fit(X, y)
    A = operator.forward(torch.eye(h * w, dtype=torch.float64).reshape(-1, h, w)).reshape(
        h * w, -1).T.numpy()
    D = np.vstack([_periodic_difference(h, w, axis) for axis in (0, 1)])
    expected = np.linalg.solve(A.T @ A + lam * D.T @ D, A.T @ X.reshape(3, -1).T).T
    np.testing.assert_allclose(est.transform(X).reshape(3, -1), expected, atol=1e-8)


def _tv_qp_reference(v, lam):
    """Anisotropic TV prox as a smooth QP in (z, t): min ½‖z−v‖² + Σ λ t, |Dz| ≤ t."""
    n = v.size
    D = np.vstack([_periodic_difference(*v.shape, axis) for axis in (0, 1)]) if v.ndim == 2 \
        else np.roll(np.eye(n), -1, axis=1) - np.eye(n)
    m = D.shape[0]
    weights = np.repeat(lam, m // len(lam))

    def objective(p):
        return 0.5 * np.sum((p[:n] - v.ravel()) ** 2) + weights @ p[n:]
    constraints = [{"type": "ineq", "fun": lambda p: p[n:] - D @ p[:n]},
                   {"type": "ineq", "fun": lambda p: p[n:] + D @ p[:n]}]
    start = np.concatenate([v.ravel(), np.abs(D @ v.ravel()) + 1])
    result = minimize(objective, start, constraints=constraints, method="SLSQP",
                      options={"ftol": 1e-14, "maxiter": 2000})
    return result.x[:n].reshape(v.shape)


@pytest.mark.parametrize("shape, weights, lam", [((10,), "scalar", [0.4]),
                                                  ((5, 6), "scalar", [0.3]),
                                                  ((5, 6), "direction", [0.2, 0.5])])
def test_anisotropic_tv_prox_matches_qp(shape, weights, lam):
    rng = np.random.default_rng(1)
    v = rng.standard_normal(shape)
    reg = TotalVariation(weights=weights, isotropic=False, n_inner=3000, boundary="periodic")
    got = reg.prox(torch.as_tensor(v[None]), torch.tensor(lam, dtype=torch.float64))[0]
    np.testing.assert_allclose(got.numpy(), _tv_qp_reference(v, np.array(lam)), atol=1e-4)


def test_isotropic_tv_prox_minimizes_its_objective():
    rng = np.random.default_rng(2)
    v = torch.as_tensor(rng.standard_normal((1, 6, 6)))
    lam = torch.tensor([0.3], dtype=torch.float64)
    reg = TotalVariation(n_inner=3000)
    z = reg.prox(v, lam)

    def objective(x):
        return float(0.5 * (x - v).pow(2).sum() + reg.penalty(x, lam).sum())
    reference = brute_force_prox(lambda x: float(reg.penalty(torch.as_tensor(x.reshape(1, 6, 6)),
                                                             lam)), v.numpy().ravel(),
                                 method="Powell", options={"xtol": 1e-8, "ftol": 1e-12,
                                                           "maxfev": 200000})
    assert objective(z) <= objective(torch.as_tensor(reference.reshape(1, 6, 6))) + 1e-6


def test_tv_inexact_prox_improves_with_inner_iterations():
    v = torch.as_tensor(np.random.default_rng(3).standard_normal((1, 8, 8)))
    lam = torch.tensor([0.5], dtype=torch.float64)
    exact = TotalVariation(n_inner=5000).prox(v, lam)
    errors = [float((TotalVariation(n_inner=n).prox(v, lam) - exact).norm()) for n in (5, 20, 80)]
    assert errors[0] > errors[1] > errors[2]


def test_tv_auto_inner_iterations_follow_the_model():
    """n_inner="auto": 20 dual steps where one step is the whole solve (denoising), 5 in
    iterative solves (blur) on the fitted copy; the user's object stays "auto", an int
    is kept, and a prox called on its own runs 20."""
    v = torch.as_tensor(np.random.default_rng(4).standard_normal((2, 8, 8)))
    lam = torch.tensor([0.3], dtype=torch.float64)
    torch.testing.assert_close(TotalVariation().prox(v, lam),
                               TotalVariation(n_inner=20).prox(v, lam), rtol=0, atol=0)
    y = np.random.default_rng(5).random((4, 8, 8))
    for operator, regularizer, expected in ((Identity(), TotalVariation(), 20),
                                            (Blur(sigma=1.0, size=5), TotalVariation(), 5),
                                            (Blur(sigma=1.0, size=5), TotalVariation(n_inner=7),
                                             7)):
        est = ReTuneRegularizer(operator, regularizer, K=2, T=2, max_epochs=1,
                                batch_size=4).fit(y, y)  # X = y: both keep the shape
        assert est.regularizer_.n_inner == expected
        assert est.regularizer.n_inner == regularizer.n_inner


@pytest.mark.parametrize("regularizer", [
    Tikhonov(order=1), TotalVariation(), TotalVariation(weights="direction", isotropic=False),
    WaveletL1("db2", 2, translation_invariant=True)], ids=repr)
def test_fit_improves_psnr_for_each_regularizer(regularizer):
    from retune_sklearn.datasets import load_image_patches
    from retune_sklearn.metrics import psnr

    rng = np.random.default_rng(0)
    y = load_image_patches("train", patch_size=32, n_patches=16, random_state=0)
    X = y + 0.1 * rng.standard_normal(y.shape)
    init = ReTuneRegularizer(regularizer=regularizer, K=5, T=2, learn_weights=False).fit(X, y)
    est = ReTuneRegularizer(regularizer=regularizer, K=5, T=2, max_epochs=8, batch_size=8,
                            learning_rate=0.2, random_state=0).fit(X, y)
    assert est.score(X, y) > init.score(X, y) + 0.5
    assert est.score(X, y) > psnr(y, X) + 3.0


def test_learned_denoiser_trains_from_scratch_and_pickles():
    import pickle

    from retune_sklearn.datasets import load_image_patches
    from retune_sklearn.regularizers import LearnedDenoiser

    rng = np.random.default_rng(0)
    y = load_image_patches("train", patch_size=16, n_patches=16, random_state=0)
    X = y + 0.1 * rng.standard_normal(y.shape)
    params = dict(regularizer=LearnedDenoiser(n_layers=2, n_channels=8), K=1, T=2,
                  init_weight=1.0, batch_size=8, random_state=0)
    untrained = ReTuneRegularizer(learn_weights=False, **params).fit(X, y)
    est = ReTuneRegularizer(max_epochs=10, learning_rate=0.02, **params).fit(X, y)
    assert est.score(X, y) > untrained.score(X, y) + 1.0
    assert set(est.regularizer_params_) == {"conv0.weight", "conv0.bias", "conv1.weight",
                                            "conv1.bias"}
    assert not np.array_equal(est.regularizer_params_["conv0.weight"],
                              untrained.regularizer_params_["conv0.weight"])
    restored = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(restored.transform(X), est.transform(X))


def test_learned_denoiser_lipschitz_bound_holds():
    from retune_sklearn.regularizers import LearnedDenoiser

    reg = LearnedDenoiser(n_layers=3, n_channels=4)
    network = reg.init_parameters((8, 8), torch.Generator().manual_seed(0))
    network = {k: 10 * v for k, v in network.items()}  # far beyond the bound
    gen = torch.Generator().manual_seed(1)
    a, b = (torch.randn((1, 8, 8), generator=gen, dtype=torch.float64) for _ in range(2))
    ratio = (reg._network(a, network) - reg._network(b, network)).norm() / (a - b).norm()
    assert ratio <= 1.0 + 1e-9


def test_l1norm_solve_matches_sklearn_lasso():
    """½‖Ax − y‖² + λ‖x‖₁ is scikit-learn's Lasso with alpha = λ / m."""
    from sklearn.linear_model import Lasso

    from retune_sklearn.operators import MatrixOperator
    from retune_sklearn.regularizers import L1Norm

    rng = np.random.default_rng(0)
    m, d, lam = 20, 30, 0.05
    A = rng.standard_normal((m, d)) / np.sqrt(m)
    y = np.zeros((3, d))
    y[:, :4] = rng.standard_normal((3, 4))
    X = y @ A.T + 0.01 * rng.standard_normal((3, m))
    est = ReTuneRegularizer(operator=MatrixOperator(A), regularizer=L1Norm(), init_weight=lam,
                            learn_weights=False, K=500, T=20, dtype="float64").fit(X, y)
    lasso = [Lasso(alpha=lam / m, fit_intercept=False, tol=1e-12, max_iter=100000).fit(A, x).coef_
             for x in X]
    np.testing.assert_allclose(est.transform(X), np.array(lasso), atol=1e-6)


def test_group_wavelet_prox_matches_brute_force():
    """channels="group": prox of λ Σ_p ‖u_{:,p}‖₂ (colours of a coefficient coupled)."""
    rng = np.random.default_rng(4)
    reg = WaveletL1("haar", levels=1, weights="scalar", channels="group")
    u = rng.standard_normal((1, 3, 2, 2))
    lam = 0.8
    got = reg.prox(torch.as_tensor(u), torch.tensor([lam], dtype=torch.float64)).numpy()
    reference = brute_force_prox(
        lambda z: lam * np.linalg.norm(z.reshape(3, 4), axis=0).sum(), u.ravel(),
        method="Powell", options={"xtol": 1e-10, "ftol": 1e-14, "maxfev": 100000})
    np.testing.assert_allclose(got.ravel(), reference, atol=1e-5)
    # Some colour vectors are zeroed as a whole, the others shrunk along themselves.
    norms = np.linalg.norm(u[0].reshape(3, 4), axis=0)
    kept = norms > lam
    assert not kept.all() and kept.any()
    np.testing.assert_allclose(got[0].reshape(3, 4)[:, kept],
                               u[0].reshape(3, 4)[:, kept] * (1 - lam / norms[kept]))


def test_separate_channel_weights():
    reg = WaveletL1("haar", levels=1, channels="separate")
    assert reg.weight_names((3, 8, 8)) == [f"c{c}:{n}" for c in range(3)
                                           for n in ("a1", "h1", "v1", "d1")]
    assert reg.weight_names((8, 8)) == ["a1", "h1", "v1", "d1"]  # no channel axis
    u = torch.ones((1, 3, 8, 8), dtype=torch.float64)
    thresholds = torch.zeros(12, dtype=torch.float64)
    thresholds[4:8] = 2.0  # only channel 1 is thresholded (to zero)
    out = reg.prox(u, thresholds)
    assert torch.all(out[:, 1] == 0) and torch.all(out[:, [0, 2]] == 1)


@pytest.mark.parametrize("channels", ["separate", "group"])
def test_color_fit_improves_psnr(channels):
    from retune_sklearn.datasets import load_image_patches
    from retune_sklearn.metrics import psnr

    rng = np.random.default_rng(0)
    y = load_image_patches("train", patch_size=16, n_patches=8, color=True, random_state=0)
    X = y + 0.1 * rng.standard_normal(y.shape)
    est = ReTuneRegularizer(regularizer=WaveletL1("haar", 2, channels=channels), K=1, T=2,
                            max_epochs=15, batch_size=4, learning_rate=0.2,
                            random_state=0).fit(X, y)
    assert est.transform(X).shape == y.shape
    assert est.score(X, y) > psnr(y, X) + 3.0


@pytest.mark.parametrize("regularizer", [TotalVariation(), WaveletL1("haar", 1, channels="group")],
                         ids=repr)
def test_prox_gradients_are_finite_on_constant_images(regularizer):
    """Norms of zero vectors (flat regions) must not give NaN derivatives."""
    u = torch.ones((1, 3, 8, 8), dtype=torch.float64, requires_grad=True)
    n_weights = len(regularizer.weight_names((3, 8, 8)))
    thresholds = torch.full((n_weights,), 0.1, dtype=torch.float64, requires_grad=True)
    regularizer.prox(u, thresholds).sum().backward()
    assert torch.isfinite(u.grad).all() and torch.isfinite(thresholds.grad).all()
