"""Plug-and-play with a torch module (``PnP``) and the zoo's networks.

Truths: dense linear algebra (a linear denoiser makes the fixed point a
linear system), finite differences (the hypergradient of the strength),
the module's own forward pass (the learned tensors loaded into a copy of the
module), pairwise distances (Lipschitz bounds).
"""

import copy
import pickle
from functools import partial

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from torch import nn

from retune_sklearn import ReTuneRegularizer
from retune_sklearn.datasets import make_image_problem
from retune_sklearn.operators import Blur, MatrixOperator
from retune_sklearn.reconstruct import build_problem, reconstruct
from retune_sklearn.regularizers import PnP
from retune_sklearn.zoo import (DnCNN, SmallUNet, _random_symmetry, local_lipschitz,
                                pretrain_denoiser)


class UserDenoiser(nn.Module):
    """A user's own module (module level, so that it pickles): x − conv(relu(conv(x)))."""

    def __init__(self, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.first = nn.Conv2d(1, 4, 3, padding=1, padding_mode="circular")
        self.second = nn.Conv2d(4, 1, 3, padding=1, padding_mode="circular")
        with torch.no_grad():
            self.second.weight.mul_(0.1)

    def forward(self, x):
        return x - self.second(torch.relu(self.first(x)))


class Scaling(nn.Module):
    """D(v) = a v."""

    def __init__(self, a):
        super().__init__()
        self.a = a

    def forward(self, x):
        return self.a * x


class TikhonovDenoiser(nn.Module):
    """D(v, σ) = v / (1 + σ²), the prox of σ² ½‖·‖²."""

    def forward(self, x, sigma):
        return x / (1 + sigma ** 2)


BLUR = Blur(sigma=1.0, size=5)
X, X_TEST, Y, Y_TEST = make_image_problem(BLUR, noise_sigma=0.05, patch_size=16, n_train=6,
                                          n_test=3, random_state=0)
FIT = dict(operator=BLUR, K=3, T=10, max_epochs=2, batch_size=3, init_weight=1.0,
           learning_rate=0.05, learn_step_size=True, random_state=0)


def state(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def fit_pnp(trainable, **params):
    module = UserDenoiser()
    est = ReTuneRegularizer(regularizer=PnP(module, trainable=trainable), **{**FIT, **params})
    return module, est.fit(X, Y)


@pytest.fixture(scope="module")
def frozen():
    module = UserDenoiser()
    before = state(module)
    return module, before, ReTuneRegularizer(regularizer=PnP(module), **FIT).fit(X, Y)


@pytest.fixture(scope="module")
def trainable():
    module = UserDenoiser()
    before = state(module)
    return module, before, ReTuneRegularizer(regularizer=PnP(module, trainable=True),
                                             **FIT).fit(X, Y)


def test_frozen_module_keeps_its_parameters_and_only_strength_and_step_are_learned(frozen):
    module, before, est = frozen
    assert all(torch.equal(before[k], v) for k, v in module.state_dict().items())
    assert all(torch.equal(before[k], v)
               for k, v in est.regularizer_.denoiser.state_dict().items())
    assert est.regularizer_.denoiser is not module  # a copy (clone), not the user's object
    assert est.regularizer_params_ == {}
    assert est.weight_names_ == ["strength"]
    assert est.weights_[0] != 1.0 and est.step_scale_ != 1.0


def test_trainable_module_parameters_are_learned_and_drive_transform(trainable):
    module, before, est = trainable
    assert all(torch.equal(before[k], v) for k, v in module.state_dict().items())
    names = {name for name, _ in module.named_parameters()}
    assert set(est.regularizer_params_) == names
    assert all(isinstance(v, np.ndarray) for v in est.regularizer_params_.values())
    changed = [not np.allclose(est.regularizer_params_[k], before[k].numpy()) for k in names]
    assert all(changed)
    # Truth: the user's module itself, with the learned tensors loaded, frozen.
    learned = UserDenoiser()
    learned.load_state_dict({k: torch.as_tensor(v) for k, v in
                             est.regularizer_params_.items()})
    expected = reconstruct(X_TEST, BLUR, PnP(learned), est.weights_, step_scale=est.step_scale_,
                           K=est.K_, T=est.T, tol=est.solve_tol)
    np.testing.assert_allclose(est.transform(X_TEST), expected, rtol=1e-5, atol=1e-5)
    assert not np.allclose(est.transform(X_TEST), ReTuneRegularizer(
        regularizer=PnP(UserDenoiser()), **FIT).set_params(
        learn_weights=False, learn_step_size=False, init_weight=est.weights_[0],
        step_scale=est.step_scale_).fit(X, Y).transform(X_TEST), atol=1e-4)


@pytest.mark.parametrize("which", ["frozen", "trainable"])
def test_pickle_round_trip_and_clone(which, request):
    module, _, est = request.getfixturevalue(which)
    out = est.transform(X_TEST)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(est)).transform(X_TEST), out)
    copied = clone(est)
    assert copied.regularizer.denoiser is not est.regularizer.denoiser
    assert all(torch.equal(a, b) for a, b in zip(copied.regularizer.denoiser.parameters(),
                                                   module.parameters()))
    assert copied.regularizer.trainable == (which == "trainable")


def test_grid_search_over_a_pnp_model():
    search = GridSearchCV(ReTuneRegularizer(regularizer=PnP(UserDenoiser()),
                                            **{**FIT, "max_epochs": 1}),
                          {"regularizer__trainable": [False, True]}, cv=2).fit(X, Y)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.best_estimator_.transform(X_TEST).shape == Y_TEST.shape


def _dense_problem(seed=0, m=12, d=10):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((m, d)) / np.sqrt(m)
    X_ = rng.standard_normal((3, m))
    return A, X_


def test_linear_denoiser_fixed_point_solves_the_dense_linear_system():
    # D(v) = a v mixed with strength t = τλ: prox(v) = c v, c = 1 − t(1 − a); the fixed
    # point of u = c(u − τAᵀ(Au − X)) solves (I − c(I − τAᵀA)) u = cτAᵀX.
    A, X_ = _dense_problem()
    a, lam, step_scale = 0.6, 0.3, 0.8
    # τ = step_scale / L with the L the solve uses (a power-iteration estimate of ‖A‖²).
    L = build_problem(MatrixOperator(A), PnP(Scaling(a)), (A.shape[1],), (A.shape[0],),
                      "cpu", "float64").lipschitz
    tau = step_scale / L
    c = 1 - tau * lam * (1 - a)
    M = np.eye(A.shape[1]) - c * (np.eye(A.shape[1]) - tau * A.T @ A)
    expected = np.linalg.solve(M, c * tau * A.T @ X_.T).T
    got = reconstruct(X_, MatrixOperator(A), PnP(Scaling(a)), [lam], step_scale=step_scale,
                      signal_shape=(A.shape[1],), K=10, T=2000, tol=1e-12, solver="fb",
                      dtype="float64")
    np.testing.assert_allclose(got, expected, rtol=1e-8, atol=1e-10)


def test_noise_conditional_denoiser_at_sqrt_tau_lambda_is_tikhonov():
    # D(v, σ) = v / (1 + σ²) at σ = √(τλ) is the prox of τλ ½‖·‖²: the fixed point is
    # the ridge solution (AᵀA + λI)⁻¹AᵀX, whatever the step.
    A, X_ = _dense_problem(1)
    lam = 0.2
    expected = np.linalg.solve(A.T @ A + lam * np.eye(A.shape[1]), A.T @ X_.T).T
    for step_scale in (0.5, 1.5):
        got = reconstruct(X_, MatrixOperator(A), PnP(TikhonovDenoiser(), noise_conditional=True),
                          [lam], step_scale=step_scale, signal_shape=(A.shape[1],), K=10,
                          T=2000, tol=1e-12, solver="fb", dtype="float64")
        np.testing.assert_allclose(got, expected, rtol=1e-8, atol=1e-10)


def test_strength_hypergradient_matches_finite_differences():
    # A well-conditioned operator (I + small noise) and a small strength: the step is a
    # contraction, the solves converge to 1e-11 and the implicit hypergradient is the
    # derivative of the fixed point.
    rng = np.random.default_rng(2)
    A = np.eye(16) + 0.1 * rng.standard_normal((16, 16))
    Y_ = rng.random((3, 16))
    X_ = Y_ @ A.T + 0.1 * rng.standard_normal(Y_.shape)
    torch.manual_seed(0)
    denoiser = DnCNN(depth=2, channels=3, ndim=1, lipschitz=True)
    solve = dict(K=10, T=100, dtype="float64")
    est = ReTuneRegularizer(operator=MatrixOperator(A), regularizer=PnP(denoiser),
                            solve_tol=1e-11, init_weight=0.3, loss="mse", **solve)
    gradient = est.compute_hypergradient(X_, Y_, hypergradient="implicit")[0]

    def loss(log_lam):
        x_hat = reconstruct(X_, MatrixOperator(A), PnP(denoiser), [np.exp(log_lam)], tol=1e-11,
                            **solve)
        return np.mean((x_hat - Y_) ** 2)
    h = 1e-4
    finite_difference = (loss(np.log(0.3) + h) - loss(np.log(0.3) - h)) / (2 * h)
    assert abs(finite_difference) > 1e-5  # the strength matters here
    assert gradient == pytest.approx(finite_difference, rel=1e-4)


@pytest.mark.parametrize("make, shape", [
    (lambda lip: DnCNN(depth=3, channels=4, lipschitz=lip), (1, 16, 16)),
    (lambda lip: DnCNN(depth=3, channels=4, ndim=1, kernel_size=5, lipschitz=lip), (1, 32)),
    (lambda lip: SmallUNet(channels=4, levels=2, in_channels=3, lipschitz=lip), (3, 16, 16)),
])
def test_lipschitz_networks_have_a_1_lipschitz_residual(make, shape):
    torch.manual_seed(0)
    bounded, free = make(True).double(), make(False).double()
    with torch.no_grad():
        for name, p in bounded.named_parameters():
            if name.endswith("weight"):
                p.mul_(20)  # far beyond the bound, so that the normalization is active
            else:
                p.zero_()  # biases would dominate the shrunk signals and kill the ReLUs
        free.load_state_dict(bounded.state_dict())
        a, b = torch.randn(2, 8, *shape, dtype=torch.float64)

        def ratios(net):  # of the residual N = I − D
            residual = (a - net(a)) - (b - net(b))
            return residual.flatten(1).norm(dim=1) / (a - b).flatten(1).norm(dim=1)
        assert torch.all(ratios(bounded) <= 1 + 1e-9) and torch.all(ratios(bounded) > 0)
        assert torch.all(ratios(free) > 10)  # the same weights without the bound


@pytest.mark.parametrize("padding", ["circular", "reflect"])
@pytest.mark.parametrize("ndim", [1, 2])
def test_zoo_padding_is_torchs_conv_padding_mode(padding, ndim):
    """A 2-layer DnCNN against the same weights in torch's own ``ConvNd(padding_mode=...)``."""
    torch.manual_seed(0)
    net = DnCNN(depth=2, channels=3, ndim=ndim, padding=padding).double()
    conv_type = nn.Conv1d if ndim == 1 else nn.Conv2d
    first, second = (conv_type(a, b, 3, padding=1, padding_mode=padding).double()
                     for a, b in ((1, 3), (3, 1)))
    with torch.no_grad():
        for ours, theirs in zip(net.convs, (first, second)):
            theirs.weight.copy_(ours.weight)
            theirs.bias.copy_(ours.bias)
        x = torch.randn(2, 1, *(8,) * ndim, dtype=torch.float64)
        torch.testing.assert_close(net(x), x - second(torch.relu(first(x))), rtol=0, atol=1e-12)


def test_zoo_networks_pickled_before_the_padding_option_still_load():
    # Such pickles name retune_sklearn.zoo.CircularConv and hold no `padding` attribute.
    from retune_sklearn import zoo

    torch.manual_seed(0)
    net, x = DnCNN(depth=2, channels=2, padding="circular"), torch.randn(1, 1, 8, 8)
    expected = net(x)
    for conv in net.convs:
        del conv.__dict__["padding"]
    old = pickle.loads(pickle.dumps(net))
    assert zoo.CircularConv is zoo.PaddedConv and old.convs[0].padding == "circular"
    torch.testing.assert_close(old(x), expected)


@pytest.mark.parametrize("lipschitz, mode", [(False, "reflect"), (True, "circular")])
@pytest.mark.parametrize("network", [DnCNN, SmallUNet])
def test_zoo_auto_padding_is_reflection_unless_lipschitz(network, lipschitz, mode):
    x = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    auto = network(lipschitz=lipschitz)
    torch.manual_seed(0)
    explicit = network(lipschitz=lipschitz, padding=mode)
    torch.testing.assert_close(auto(x), explicit(x), rtol=0, atol=0)


@pytest.mark.parametrize("network, shape", [(partial(DnCNN, ndim=1), (1, 1, 1)),
                                            (SmallUNet, (1, 1, 4, 4))])
def test_zoo_reflection_on_too_small_inputs_names_the_remedy(network, shape):
    # SmallUNet's coarsest level of a 4×4 image is 1×1: nothing to reflect.
    with pytest.raises(ValueError, match="padding='circular'"):
        network()(torch.zeros(shape))
    assert network(padding="circular")(torch.zeros(shape)).shape == shape


def test_zoo_padding_is_validated():
    with pytest.raises(ValueError, match="padding must be one of"):
        DnCNN(padding="zeros")
    with pytest.raises(ValueError, match="lipschitz=True needs padding='circular'"):
        SmallUNet(lipschitz=True, padding="reflect")


def test_pretraining_denoises_better_than_the_noisy_input():
    torch.manual_seed(0)
    net = DnCNN(depth=3, channels=8)
    clean = Y.repeat(4, axis=0)  # 24 patches 16×16
    history = []
    pretrain_denoiser(net, clean, noise_sigma=0.1, epochs=30, batch_size=8, learning_rate=3e-3,
                      random_state=0, history=history)
    assert len(history) == 30 and history[-1] < 0.5 * history[0]
    rng = np.random.default_rng(1)
    noisy = Y_TEST + 0.1 * rng.standard_normal(Y_TEST.shape)
    with torch.no_grad():
        out = net(torch.as_tensor(noisy[:, None], dtype=torch.float32))[:, 0].numpy()
    assert np.mean((out - Y_TEST) ** 2) < 0.7 * np.mean((noisy - Y_TEST) ** 2)


@pytest.mark.parametrize("shape, count", [((1, 1, 3, 3), 8), ((1, 1, 2, 3), 4), ((1, 1, 3), 2)])
def test_pretraining_symmetries_are_those_of_the_domain(shape, count):
    # An input with no symmetry of its own: its images under the group are all distinct.
    batch = torch.arange(float(np.prod(shape))).reshape(shape) ** 2
    generator = torch.Generator().manual_seed(0)
    images = {tuple(_random_symmetry(batch, generator).flatten().tolist()) for _ in range(200)}
    assert len(images) == count  # 8 of the square, 4 flips of a rectangle, 2 of a segment
    assert all(sorted(image) == sorted(batch.flatten().tolist()) for image in images)


def test_local_lipschitz_of_a_linear_denoiser_is_its_spectral_norm():
    # A linear map x ↦ W x per sample: its Jacobian is W everywhere, ‖W‖₂ from an SVD.
    class Linear(nn.Module):
        def __init__(self, matrix):
            super().__init__()
            self.matrix = nn.Parameter(matrix)

        def forward(self, x, sigma):
            return sigma * (x.flatten(1) @ self.matrix.T).reshape(x.shape)

    matrix = torch.randn(16, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x = torch.randn(3, 1, 4, 4, dtype=torch.float64)
    norms = local_lipschitz(Linear(matrix), x, sigma=2.0, n_iter=200)
    expected = 2.0 * torch.linalg.matrix_norm(matrix, ord=2)
    torch.testing.assert_close(norms, expected.expand(3), rtol=1e-6, atol=0)


def test_noise_conditional_pretraining_and_pnp_fit():
    torch.manual_seed(0)
    net = SmallUNet(channels=4, levels=1, noise_conditional=True)
    pretrain_denoiser(net, Y, noise_sigma=(0.0, 0.2), epochs=2, batch_size=3,
                      noise_conditional=True, crop_size=8)
    est = ReTuneRegularizer(regularizer=PnP(net, trainable=True, noise_conditional=True),
                            **{**FIT, "init_weight": 0.01, "max_epochs": 1}).fit(X, Y)
    assert est.transform(X_TEST).shape == Y_TEST.shape and np.isfinite(est.weights_).all()


def test_dtype_and_device_copies_leave_the_user_module_alone():
    module = UserDenoiser()
    before = state(module)
    reg = PnP(module, trainable=True)
    u = torch.randn(2, 16, 16, dtype=torch.float64)
    network = reg.init_parameters((16, 16), torch.Generator())
    assert all(v.dtype == torch.float64 for v in network.values())
    out64 = reg.prox(u, torch.tensor([0.5], dtype=torch.float64), network)
    out32 = reg.prox(u.float(), torch.tensor([0.5]), {k: v.float() for k, v in network.items()})
    assert out64.dtype == torch.float64 and out32.dtype == torch.float32
    torch.testing.assert_close(out32.double(), out64, rtol=1e-5, atol=1e-5)
    assert all(p.dtype == torch.float32 for p in module.parameters())
    assert all(torch.equal(before[k], v) for k, v in module.state_dict().items())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("trainable", [False, True])
def test_pnp_fits_on_cuda_with_device_auto(trainable):
    cpu = fit_pnp(trainable, device="cpu")[1]
    gpu = fit_pnp(trainable, device="auto")[1]
    np.testing.assert_allclose(gpu.weights_, cpu.weights_, rtol=1e-3)
    np.testing.assert_allclose(gpu.transform(X_TEST), cpu.transform(X_TEST), atol=1e-3)
    moved = pickle.loads(pickle.dumps(gpu)).set_params(device="cpu")
    np.testing.assert_allclose(moved.transform(X_TEST), gpu.transform(X_TEST), atol=1e-4)


def test_module_that_cannot_be_pickled_gets_a_clear_error():
    class Local(nn.Module):  # defined inside a function: pickle cannot find the class
        def forward(self, x):
            return x

    reg = PnP(Local())
    with pytest.raises(TypeError, match="PnP's denoiser .*Local cannot be pickled"):
        pickle.dumps(reg)
    assert isinstance(copy.deepcopy(reg).denoiser, Local)  # clone and deepcopy still work
    assert isinstance(clone(reg).denoiser, Local)
