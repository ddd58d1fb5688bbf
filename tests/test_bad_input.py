"""Bad input: one row per case, each naming the argument and what was expected.

Every failing call runs on a fitted estimator, which must come out with the
same fitted attributes and still transform as before. The same table is in
``docs/troubleshooting.md`` (checked below).
"""

import copy
import io
import pickle
import warnings
import zipfile
from numbers import Integral
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils._param_validation import Interval, InvalidParameterError

from retune_sklearn import ReTuneRegularizer
from retune_sklearn.metrics import psnr
from retune_sklearn.operators import Blur, Identity, Inpainting
from retune_sklearn.persistence import WeightsFileError, load_weights, save_weights
from retune_sklearn.reconstruct import reconstruct
from retune_sklearn.regularizers import PnP, Tikhonov, TotalVariation, WaveletL1
from retune_sklearn.zoo import DnCNN, pretrain_denoiser
from weights_files import declaring_size, members, npy_header, rewritten, saved, zipped

RNG = np.random.default_rng(0)
Y = RNG.random((8, 16, 16))
X = Y + 0.1 * RNG.standard_normal(Y.shape)
PARAMS = dict(regularizer=WaveletL1("haar", levels=2), K=2, T=2, max_epochs=2, batch_size=4,
              random_state=0)
@pytest.fixture(scope="module")
def fitted():
    """A fitted estimator and its reconstructions of X."""
    est = ReTuneRegularizer(**PARAMS).fit(X, Y)
    return est, est.transform(X)


class AdjointIsForwardBlur(Blur):
    """A blur whose "adjoint" forgets to flip the kernel."""

    def adjoint(self, z):
        return self.forward(z)


class ScaledAdjointIdentity(Identity):
    def adjoint(self, z):
        return 2 * z


class SlightlyScaledAdjointIdentity(Identity):
    def adjoint(self, z):
        return (1 + 1e-3) * z


class InPlaceMask(Identity):
    """A correct 0/1 mask (self-adjoint) applied in place: it would change X."""

    def forward(self, x):
        return x.mul_((torch.arange(x.shape[-1]) % 2).to(x.dtype))

    adjoint = forward


class OnlyForwardAdjoint:
    """Duck-typed operator without measurement_shape, check_signal_shape, get_params."""

    def forward(self, x):
        return x

    def adjoint(self, z):
        return z


class CroppingIdentity(Identity):
    """Claims to keep the shape but crops: forward disagrees with measurement_shape."""

    def forward(self, x):
        return x[..., 1:]


def local_module():
    """A module whose class is local to a function: pickle cannot find it."""
    class Local(torch.nn.Module):
        def forward(self, x):
            return x
    return Local()


def load_crafted(make):
    """Load the bytes ``make(est)`` (a crafted weights file) with ``load_weights``."""
    return lambda est: load_weights(io.BytesIO(make(est)))


def fit_with(X_=X, Y_=Y, **params):
    return lambda est: est.set_params(**params).fit(X_, Y_)


def with_nan(a, value=np.nan):
    a = a.copy()
    a[3, 4, 5] = value
    return a


ASYMMETRIC = np.arange(1.0, 10.0).reshape(3, 3) / 45
Y_RGB = RNG.random((8, 3, 16, 16))  # colour images, channels first as expected
X_RGB = Y_RGB + 0.1 * RNG.standard_normal(Y_RGB.shape)
CHANNELS_LAST = (0, 2, 3, 1)
HUGE = 10**6
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")

CASES = [
    # --- X and y at fit
    ("fit-nan-X", fit_with(X_=with_nan(X)), ValueError, "Input X contains NaN"),
    ("fit-inf-y", fit_with(Y_=with_nan(Y, np.inf)), ValueError, "Input y contains infinity"),
    ("fit-empty", fit_with(X_=X[:0], Y_=Y[:0]), ValueError, "X is empty"),
    ("fit-n-samples-mismatch", fit_with(X_=X[:5]), ValueError,
     "X and y have different numbers of samples: 5 and 8"),
    ("fit-X-1d", fit_with(X_=X[0, 0]), ValueError, "X must have shape (n_samples"),
    ("fit-y-1d", fit_with(Y_=Y[:, 0, 0]), ValueError, "y must have shape (n_samples"),
    ("fit-X-5d", fit_with(X_=X[:, None, None]), ValueError,
     "X has samples of shape (1, 1, 16, 16), but the operator maps"),
    ("fit-y-5d", fit_with(X_=X[:, None, None], Y_=Y[:, None, None]), ValueError,
     "y must have at most 4 axes"),
    ("fit-X-shape-vs-operator", fit_with(X_=X[:, :8, :8]), ValueError,
     "X has samples of shape (8, 8), but the operator maps signals of shape (16, 16)"),
    ("fit-complex-X", fit_with(X_=X + 1j), TypeError, "X must hold real numbers"),
    ("fit-string-y", fit_with(Y_=Y.astype(str)), TypeError, "y must hold real numbers"),
    ("fit-object-X", fit_with(X_=np.full(X.shape, "a", dtype=object)), TypeError,
     "X must hold real numbers; got an object array"),
    ("fit-torch-complex-X", fit_with(X_=torch.from_numpy(X + 1j)), TypeError,
     "X must hold real numbers (float, integer or boolean); got dtype torch.complex128"),
    ("fit-torch-sparse-y", fit_with(Y_=torch.from_numpy(Y).to_sparse()), TypeError,
     "y is a sparse torch tensor; sparse input is not supported"),
    ("fit-torch-meta-X", fit_with(X_=torch.empty(X.shape, device="meta")), TypeError,
     "X is a torch tensor on the 'meta' device, which holds no values"),
    ("fit-channels-last-y", fit_with(X_=X_RGB.transpose(CHANNELS_LAST),
                                     Y_=Y_RGB.transpose(CHANNELS_LAST)), ValueError,
     "y has shape (8, 16, 16, 3): channels-last images (n, H, W, C)? Images with channels "
     "are read channels first, (n, C, H, W). Pass np.moveaxis(y, -1, 1)"),
    ("fit-channels-last-X", fit_with(X_=X_RGB.transpose(CHANNELS_LAST), Y_=Y_RGB), ValueError,
     "X looks like channels-last images (n, H, W, C); measurements are channels first, "
     "(n, C, H, W): pass np.moveaxis(X, -1, 1)"),
    # --- parameters (checked at fit, as scikit-learn does)
    ("K-zero", fit_with(K=0), InvalidParameterError, "'K' parameter"),
    ("K-negative", fit_with(K=-1), InvalidParameterError, "'K' parameter"),
    ("K-float", fit_with(K=2.5), InvalidParameterError, "'K' parameter"),
    ("T-zero", fit_with(T=0), InvalidParameterError, "'T' parameter"),
    ("implicit_solver-unknown", fit_with(implicit_solver="bicg"), InvalidParameterError,
     "'implicit_solver' parameter"),
    ("implicit_solver-cg-tv", fit_with(hypergradient="implicit", implicit_solver="cg",
                                       regularizer=TotalVariation()), ValueError,
     "implicit_solver='cg' needs a regularizer whose prox is an elementwise soft threshold"),
    ("auto_K_target-one", fit_with(K="auto", auto_K_target=1.0), InvalidParameterError,
     "'auto_K_target' parameter of ReTuneRegularizer must be a float in the range (0.0, 1.0)"),
    ("solve_tol-string", fit_with(solve_tol="fast"), InvalidParameterError,
     "'solve_tol' parameter of ReTuneRegularizer must be None, a str among {'auto'} or a "
     "float in the range (0.0, inf)"),
    ("K-bool", fit_with(K=True), InvalidParameterError,
     "'K' parameter of ReTuneRegularizer must be an int in the range [1, inf) or a str among {'auto'}, not a bool"),
    ("batch_size-bool", fit_with(batch_size=True), InvalidParameterError,
     "'batch_size' parameter of ReTuneRegularizer must be an int in the range [1, inf), "
     "not a bool"),
    ("n_threads-bool", fit_with(n_threads=True), InvalidParameterError,
     "'n_threads' parameter of ReTuneRegularizer must be None or an int in the range [1, 1024], "
     "not a bool"),
    ("K-times-T-huge", fit_with(K=HUGE, T=2), ValueError, f"K={HUGE} and T=2 ask for"),
    ("K-times-T-numpy-overflow", fit_with(K=np.int64(2**32), T=np.int64(2**32)), ValueError,
     "K=4294967296 and T=4294967296 ask for K * T = 18446744073709551616"),
    ("batch_size-zero", fit_with(batch_size=0), InvalidParameterError, "'batch_size' parameter"),
    ("batch_size-float", fit_with(batch_size=4.0), InvalidParameterError,
     "'batch_size' parameter"),
    ("max_epochs-negative", fit_with(max_epochs=-3), InvalidParameterError,
     "'max_epochs' parameter"),
    ("max_epochs-float", fit_with(max_epochs=1.5), InvalidParameterError,
     "'max_epochs' parameter"),
    ("hypergradient-unknown", fit_with(hypergradient="exact"), InvalidParameterError,
     "'hypergradient' parameter"),
    ("device-unknown", fit_with(device="gpu"), ValueError, "device='gpu' is not a valid"),
    ("device-mps", fit_with(device="mps"), ValueError,
     "device='mps' is a torch device of type 'mps', which ReTuneRegularizer does not support"),
    ("device-meta", fit_with(device=torch.device("meta")), ValueError,
     "device=device(type='meta') is a torch device of type 'meta', which ReTuneRegularizer"),
    ("device-xpu", lambda est: est.set_params(device="xpu:0").transform(X), ValueError,
     "device='xpu:0' is a torch device of type 'xpu'"),
    pytest.param("device-cuda-missing", fit_with(device="cuda"), ValueError,
                 "device='cuda' asks for CUDA", marks=NO_CUDA),
    ("dtype-unknown", fit_with(dtype="float16"), InvalidParameterError, "'dtype' parameter"),
    ("step_scale-2", fit_with(step_scale=2.0), InvalidParameterError, "'step_scale' parameter"),
    ("learning_rate-zero", fit_with(learning_rate=0), InvalidParameterError,
     "'learning_rate' parameter"),
    ("data_range-zero", fit_with(data_range=0), InvalidParameterError, "'data_range' parameter"),
    ("operator-string", fit_with(operator="blur"), InvalidParameterError,
     "'operator' parameter"),
    ("random_state-string", fit_with(random_state="seed"), InvalidParameterError,
     "'random_state' parameter"),
    ("init_weight-length", fit_with(init_weight=[0.1, 0.2]), ValueError,
     "init_weight must be a number or hold one weight per name"),
    ("init_weight-negative", fit_with(init_weight=[-1.0] * 7), ValueError,
     "init_weight must hold positive finite weights"),
    ("init_weight-underflow", fit_with(init_weight=1e-60), ValueError,
     "init_weight=1e-60 over- or underflows in dtype='float32'"),
    ("signal_shape-size", fit_with(signal_shape=(5, 5)), ValueError,
     "signal_shape=(5, 5) holds 25 entries"),
    ("signal_shape-bool", fit_with(X_=X[:, :1, :1], Y_=Y[:, :1, :1], signal_shape=(True, True)),
     ValueError, "signal_shape must be a tuple of 1 to 3 positive integers; got (True, True)"),
    ("loss-unknown", fit_with(loss="l1"), InvalidParameterError, "'loss' parameter"),
    ("validation_fraction-one", fit_with(validation_fraction=1.0), InvalidParameterError,
     "'validation_fraction' parameter"),
    ("n_iter_no_change-zero", fit_with(n_iter_no_change=0), InvalidParameterError,
     "'n_iter_no_change' parameter"),
    ("tol-negative", fit_with(tol=-1e-3), InvalidParameterError, "'tol' parameter"),
    ("n_threads-zero", fit_with(n_threads=0), InvalidParameterError, "'n_threads' parameter"),
    ("n_threads-huge", fit_with(n_threads=2**70), InvalidParameterError,
     "'n_threads' parameter of ReTuneRegularizer must be None or an int in the range [1, 1024]"),
    ("warm_start-string", fit_with(warm_start="yes"), InvalidParameterError,
     "'warm_start' parameter"),
    ("adaptive_weights-unknown", fit_with(adaptive_weights="texture"), InvalidParameterError,
     "'adaptive_weights' parameter of ReTuneRegularizer must be None or a str among"),
    ("partial_fit-adaptive_weights-changed",
     lambda est: est.set_params(adaptive_weights="detail").partial_fit(X, Y), ValueError,
     "adaptive_weights='detail', but the fitted model was learned with adaptive_weights=None"),
    ("adaptive_weights-side-of-one", fit_with(X_=X[:, :, :1], Y_=Y[:, :, :1],
                                              adaptive_weights="detail", regularizer=Tikhonov()),
     ValueError, "adaptive_weights='detail' needs signals of at least 2 entries along each "
     "spatial axis"),
    ("reconstruct-weights-rows", lambda est: reconstruct(X, None, WaveletL1("haar", levels=2),
                                                         np.ones((3, 7))), ValueError,
     "weights of shape (n_samples, n_weights) must be (8, 7) here"),
    ("fit-mask-shape", lambda est: est.fit(X, Y, mask=np.ones((8, 8, 8))), ValueError,
     "mask has shape (8, 8, 8); expected the shape of X"),
    ("fit-mask-values", lambda est: est.fit(X, Y, mask=np.full(X.shape, 0.5)), ValueError,
     "mask must contain only 0 and 1"),
    ("transform-mask-all-zero", lambda est: est.transform(X, mask=np.zeros(X.shape)),
     ValueError, "mask observes no entry"),
    # --- operator and regularizer versus the data
    ("adjoint-wrong", fit_with(operator=AdjointIsForwardBlur(kernel=ASYMMETRIC)), ValueError,
     "AdjointIsForwardBlur.adjoint is not the adjoint of AdjointIsForwardBlur.forward"),
    ("adjoint-scaled", fit_with(operator=ScaledAdjointIdentity()), ValueError,
     "ScaledAdjointIdentity.adjoint is not the adjoint"),
    ("adjoint-off-by-1e-3", fit_with(operator=SlightlyScaledAdjointIdentity()), ValueError,
     "SlightlyScaledAdjointIdentity.adjoint is not the adjoint"),
    ("operator-in-place", fit_with(operator=InPlaceMask()), ValueError,
     "InPlaceMask.forward modified its input in place"),
    ("operator-missing-methods", fit_with(operator=OnlyForwardAdjoint()), TypeError,
     "The operator OnlyForwardAdjoint lacks the method(s) measurement_shape"),
    ("forward-shape", fit_with(operator=CroppingIdentity()), ValueError,
     "CroppingIdentity.forward returned a batch of shape (2, 16, 15)"),
    ("blur-kernel-too-large", fit_with(operator=Blur(sigma=5.0)), ValueError,
     "Blur kernel of shape (31, 31) is larger than the signal's spatial shape (16, 16)"),
    ("blur-sigma-huge", fit_with(operator=Blur(sigma=1e5)), ValueError,
     "Blur kernel of shape (600001, 600001) is larger than the signal's spatial shape"),
    ("blur-size-bool", fit_with(operator=Blur(sigma=1.0, size=True)), InvalidParameterError,
     "'size' parameter of Blur must be None or an int"),
    ("blur-sigma-and-kernel", fit_with(operator=Blur(sigma=1.0, kernel=ASYMMETRIC)), ValueError,
     "Blur needs exactly one of `sigma` and `kernel`"),
    ("blur-kernel-2d-for-1d-y", fit_with(X_=X[:, 0], Y_=Y[:, 0], operator=Blur(kernel=ASYMMETRIC),
                                         regularizer=WaveletL1("haar", levels=1)),
     ValueError, "Blur `kernel` must be a finite 1-D array"),
    ("blur-boundary-unknown", fit_with(operator=Blur(sigma=1.0, boundary="mirror")),
     InvalidParameterError, "'boundary' parameter of Blur must be a str among"),
    ("mask-shape", fit_with(operator=Inpainting(mask=np.ones((8, 8)))), ValueError,
     "Inpainting `mask` has shape (8, 8)"),
    ("mask-all-zero", fit_with(operator=Inpainting(mask=np.zeros((16, 16)))), ValueError,
     "Inpainting `mask` keeps no entry"),
    ("wavelet-levels-not-divisible", fit_with(regularizer=WaveletL1("haar", levels=5)),
     ValueError, "levels=5 needs every size divisible by 2**5=32; got signal size 16 (shape "
     "(16, 16)). The transform acts on the last 2 axes: (H, W) of images (n, H, W) or channels "
     "first (n, C, H, W); for channels-last (n, H, W, C) data use np.moveaxis(a, -1, 1). Crop or "
     "pad to a multiple of 32, or lower levels."),
    ("wavelet-n_shifts-bool", fit_with(regularizer=WaveletL1("haar", 2, n_shifts=True)),
     InvalidParameterError, "'n_shifts' parameter of WaveletL1 must be an int"),
    ("tv-n_inner-bool", fit_with(regularizer=TotalVariation(n_inner=True)),
     InvalidParameterError, "'n_inner' parameter of TotalVariation must be an int"),
    ("tv-n_inner-string", fit_with(regularizer=TotalVariation(n_inner="many")),
     InvalidParameterError,
     "'n_inner' parameter of TotalVariation must be an int in the range [1, inf) or a str among {'auto'}"),
    ("tv-n_inner_warm-bool", fit_with(regularizer=TotalVariation(n_inner_warm=True)),
     InvalidParameterError, "'n_inner_warm' parameter of TotalVariation must be an int"),
    ("tv-boundary-unknown", fit_with(regularizer=TotalVariation(boundary="neumann")),
     InvalidParameterError, "'boundary' parameter of TotalVariation must be a str among"),
    ("wavelet-boundary-unknown", fit_with(regularizer=WaveletL1("haar", 2, boundary="symmetric")),
     InvalidParameterError, "'boundary' parameter of WaveletL1 must be a str among"),
    ("tv-direction-isotropic", fit_with(regularizer=TotalVariation(weights="direction")),
     ValueError, "TotalVariation(weights='direction') needs isotropic=False"),
    ("wavelet-levels-too-deep", fit_with(regularizer=WaveletL1("db4", levels=2)), ValueError,
     "levels=2 is too large for signal size 16"),
    # --- plug-and-play: PnP and the zoo
    ("pnp-not-a-module", fit_with(regularizer=PnP("denoise")), InvalidParameterError,
     "'denoiser' parameter of PnP must be an instance of 'torch.nn.modules.module.Module'"),
    ("pnp-trainable-string", fit_with(regularizer=PnP(DnCNN(2, 2), trainable="yes")),
     InvalidParameterError, "'trainable' parameter of PnP must be an instance of 'bool'"),
    ("pnp-channels-mismatch", fit_with(regularizer=PnP(DnCNN(2, 2, in_channels=3))),
     ValueError, "PnP's denoiser DnCNN failed on a batch of shape (1, 1, 16, 16) (signals of "
     "shape (16, 16))"),
    ("pnp-not-picklable", lambda est: pickle.dumps(est.set_params(
        regularizer=PnP(local_module()))), TypeError,
     "PnP's denoiser local_module.<locals>.Local cannot be pickled"),
    ("save-weights-pnp", lambda est: save_weights(est.set_params(
        regularizer=PnP(DnCNN(2, 2))), io.BytesIO()), TypeError,
     "regularizer is a PnP, which save_weights cannot describe"),
    ("pretrain-not-a-module", lambda est: pretrain_denoiser("net", Y), TypeError,
     "module must be a torch.nn.Module; got str"),
    ("pretrain-noise-negative", lambda est: pretrain_denoiser(DnCNN(2, 2), Y, noise_sigma=-0.1),
     ValueError, "noise_sigma must be a non-negative number or a (low, high) range"),
    ("pretrain-schedule-unknown", lambda est: pretrain_denoiser(DnCNN(2, 2), Y,
                                                                lr_schedule="step"),
     ValueError, "lr_schedule must be one of ('cosine', 'constant'); got 'step'"),
    ("pretrain-augment-string", lambda est: pretrain_denoiser(DnCNN(2, 2), Y, augment="yes"),
     ValueError, "augment must be True or False; got 'yes'"),
    # --- transform / predict / score
    ("transform-not-fitted", lambda est: clone(est).transform(X), NotFittedError,
     "is not fitted yet"),
    ("score-not-fitted", lambda est: clone(est).score(X, Y), NotFittedError, "is not fitted yet"),
    ("transform-nan-X", lambda est: est.transform(with_nan(X)), ValueError,
     "Input X contains NaN"),
    ("transform-X-shape", lambda est: est.transform(X[:, :8, :8]), ValueError,
     "X has samples of shape (8, 8) (64 features), but ReTuneRegularizer was fitted on"),
    ("weights_for-not-fitted", lambda est: clone(est).weights_for(X), NotFittedError,
     "is not fitted yet"),
    ("weights_for-X-shape", lambda est: est.weights_for(X[:, :8, :8]), ValueError,
     "X has samples of shape (8, 8) (64 features), but ReTuneRegularizer was fitted on"),
    ("transform-X-1d", lambda est: est.transform(X[0, 0]), ValueError,
     "X must have shape (n_samples"),
    ("predict-one-image", lambda est: est.predict(X[0]), ValueError,
     "X has 16 features, but ReTuneRegularizer is expecting 256 features as input "
     "(measurements of shape (16, 16), possibly flattened, stacked along axis 0). X looks like "
     "one measurement of shape (16, 16) without the sample axis (axis 0 indexes samples): "
     "pass X[None], of shape (1, 16, 16)."),
    ("predict-channels-last-X",
     lambda est: clone(est).fit(X_RGB, Y_RGB).predict(X_RGB.transpose(CHANNELS_LAST)),
     ValueError, "X must have shape (n_samples, 3, 16, 16). X looks like channels-last images"),
    ("transform-X-5d", lambda est: est.predict(X[:, None, None]), ValueError,
     "X has samples of shape (1, 1, 16, 16)"),
    ("transform-empty", lambda est: est.transform(X[:0]), ValueError, "X is empty"),
    ("transform-complex-X", lambda est: est.transform(X.astype(np.complex64)), TypeError,
     "X must hold real numbers"),
    ("transform-K-times-T-huge", lambda est: est.set_params(T=HUGE).transform(X), ValueError,
     f"K=2 and T={HUGE} ask for"),
    ("transform-K-times-T-numpy-overflow",
     lambda est: est.set_params(K=np.uint32(2**16), T=np.uint32(2**16)).transform(X), ValueError,
     "K=65536 and T=65536 ask for K * T = 4294967296"),
    ("score-y-shape", lambda est: est.score(X, Y[:, :8]), ValueError,
     "y has shape (8, 8, 16); expected (8, 16, 16)"),
    ("score-nan-y", lambda est: est.score(X, with_nan(Y)), ValueError, "Input y contains NaN"),
    ("score-sample_weight-length", lambda est: est.score(X, Y, sample_weight=np.ones(3)),
     ValueError, "sample_weight.shape == (3,), expected (8,)"),
    ("score-data_range-negative", lambda est: est.set_params(data_range=-1.0).score(X, Y),
     InvalidParameterError, "'data_range' parameter"),
    ("psnr-data_range-zero", lambda est: psnr(Y, Y, data_range=0), ValueError,
     "data_range must be a positive finite number"),
    # --- load_weights: damaged, inconsistent or hostile files (made from the fitted model)
    ("load-empty-file", load_crafted(lambda est: b""), WeightsFileError,
     "is not a weights file written by save_weights (BadZipFile"),
    ("load-random-bytes", load_crafted(lambda est: RNG.bytes(4096)), WeightsFileError,
     "is not a weights file written by save_weights (BadZipFile"),
    ("load-truncated", load_crafted(lambda est: saved(est)[:len(saved(est)) // 2]),
     WeightsFileError, "is not a weights file written by save_weights"),
    ("load-npy-file", load_crafted(lambda est: npy_header((2,)) + bytes(16)), WeightsFileError,
     "is not a weights file written by save_weights (BadZipFile"),
    ("load-zip-bomb", load_crafted(lambda est: declaring_size(zipped(
        {**members(saved(est)), "array0.npy": npy_header((2**29 - 16,)) + bytes(2**16)},
        zipfile.ZIP_DEFLATED), "array0.npy", 0xF0000000)), WeightsFileError,
     "member 'array0.npy' declares 4026531840 bytes uncompressed"),
    ("load-npy-header-shape", load_crafted(lambda est: zipped(
        {**members(saved(est)), "array0.npy": npy_header((2**40,)) + bytes(8)})),
     WeightsFileError, "its header declares shape (1099511627776,) of float64"),
    ("load-unexpected-member", load_crafted(lambda est: zipped(
        {**members(saved(est)), "junk.npy": b"x"})), WeightsFileError,
     "holds members that save_weights does not write: ['junk.npy']"),
    ("load-object-array", load_crafted(lambda est: rewritten(
        saved(est), lambda d, a: a.update(array0=np.array([print], dtype=object)))),
     WeightsFileError, "member 'array0.npy' holds an array of dtype object"),
    ("load-deep-nesting", load_crafted(lambda est: rewritten(saved(est), text=lambda t: t.replace(
        '"loss_curve_": [', '"loss_curve_": [' + "[" * 10**5 + "]" * 10**5 + ", "))),
     WeightsFileError, "its description is not valid JSON"),
    ("load-format-version", load_crafted(lambda est: rewritten(
        saved(est), lambda d, a: d.update(format_version=99))), WeightsFileError,
     "is not a ReTuneRegularizer weights file of format version 1"),
    ("load-unknown-class", load_crafted(lambda est: rewritten(saved(est), lambda d, a: d[
        "params"].update(regularizer={"class": "Popen", "params": {}}))), WeightsFileError,
     "names the class 'Popen', which load_weights does not build"),
    ("load-unknown-parameter", load_crafted(lambda est: rewritten(
        saved(est), lambda d, a: d["params"].update(transform=1))), WeightsFileError,
     "unexpected parameters ['transform']"),
    ("load-invalid-parameter", load_crafted(lambda est: rewritten(
        saved(est), lambda d, a: d["params"].update(K=-1))), WeightsFileError,
     "holds invalid parameters: The 'K' parameter of ReTuneRegularizer must be"),
    ("load-attribute-shadows-method", load_crafted(lambda est: rewritten(
        saved(est), lambda d, a: d["fitted"].update(transform=None))), WeightsFileError,
     "unexpected fitted attributes ['transform']"),
    ("load-missing-attribute", load_crafted(lambda est: rewritten(
        saved(est), lambda d, a: d["fitted"].pop("lipschitz_"))), WeightsFileError,
     "misses the fitted attributes ['lipschitz_']"),
    ("load-nan-weights", load_crafted(lambda est: rewritten(
        saved(est), lambda d, a: a.update(array0=np.full(7, np.nan)))), WeightsFileError,
     "weights_ must be a 1-D float array of positive finite weights"),
    ("load-negative-weights", load_crafted(lambda est: rewritten(
        saved(est), lambda d, a: a.update(array0=-a["array0"]))), WeightsFileError,
     "weights_ must be a 1-D float array of positive finite weights"),
    ("load-weights-count", load_crafted(lambda est: rewritten(
        saved(est), lambda d, a: a.update(array0=np.ones(3)))), WeightsFileError,
     "inconsistent: 3 weights for a regularizer with 7"),
    ("load-wrong-type", load_crafted(lambda est: rewritten(
        saved(est), lambda d, a: d["fitted"].update(n_iter_="2"))), WeightsFileError,
     "n_iter_ must be an integer >= 0; got '2'"),
    ("load-lipschitz-negative", load_crafted(lambda est: rewritten(
        saved(est), lambda d, a: d["fitted"].update(lipschitz_=-1.0))), WeightsFileError,
     "lipschitz_ must be a finite number > 0; got -1.0"),
    ("load-shapes-inconsistent", load_crafted(lambda est: rewritten(
        saved(est), lambda d, a: d["fitted"].update(measurement_shape_={"tuple": [8, 8]}))),
     WeightsFileError, "measurement_shape_=(8, 8), but operator_ maps signal_shape_=(16, 16) "
     "to measurements of shape (16, 16)"),
]


def _integer_parameters():
    """The parameters whose constraints declare integers."""
    return [name for name, constraints in ReTuneRegularizer._parameter_constraints.items()
            if any(isinstance(c, Interval) and c.type is Integral for c in constraints)]


@pytest.mark.parametrize("value", [True, False, np.True_])
def test_booleans_are_refused_for_every_integer_parameter(fitted, value):
    names = _integer_parameters()
    assert {"K", "T", "batch_size", "max_epochs", "n_threads", "implicit_max_iter"} <= set(names)
    for name in names:
        est = clone(fitted[0]).set_params(**{name: value})
        with pytest.raises(InvalidParameterError, match=f"'{name}' parameter .* not a bool"):
            est.fit(X, Y)
        with pytest.raises(InvalidParameterError, match=f"'{name}' parameter"):
            copy.deepcopy(fitted[0]).set_params(**{name: value}).transform(X)


def _case_id(case):
    return case.values[0] if hasattr(case, "values") else case[0]


def _fitted_state(est):
    return pickle.dumps({k: v for k, v in vars(est).items() if k.endswith("_")
                         or k == "_y_sample_shape"})


@pytest.mark.parametrize("case_id, call, error, fragment", CASES, ids=map(_case_id, CASES))
def test_bad_input_raises_and_leaves_the_fit_intact(fitted, case_id, call, error, fragment):
    est, reference = copy.deepcopy(fitted[0]), fitted[1]
    params, state = est.get_params(deep=False), _fitted_state(est)
    with pytest.raises(error) as info:
        call(est)
    assert fragment in str(info.value)
    assert _fitted_state(est) == state
    est.set_params(**params)
    np.testing.assert_array_equal(est.transform(X), reference)


def test_troubleshooting_lists_every_case():
    text = (Path(__file__).parents[1] / "docs" / "troubleshooting.md").read_text()
    missing = [_case_id(case) for case in CASES if f"`{_case_id(case)}`" not in text]
    assert not missing


# --- odd but valid input: accepted, with the result of the plain input ---------------------
def _read_only(a):
    a = a.copy()
    a.flags.writeable = False
    return a


SAME_DATA = {
    "non-contiguous": lambda a: np.asfortranarray(a)[:, ::-1][:, ::-1],
    "read-only": _read_only,
    "torch-tensor": torch.from_numpy,
    "torch-tensor-requires-grad": lambda a: torch.tensor(a, requires_grad=True),
    "object-array-of-floats": lambda a: a.astype(object),
    "python-lists": lambda a: a.tolist(),
}


@pytest.mark.parametrize("convert", SAME_DATA.values(), ids=SAME_DATA.keys())
def test_equivalent_inputs_give_identical_results(fitted, convert):
    reference_est, reference = fitted
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. torch's warning on non-writable arrays
        est = ReTuneRegularizer(**PARAMS).fit(convert(X), convert(Y))
        np.testing.assert_array_equal(est.weights_, reference_est.weights_)
        np.testing.assert_array_equal(reference_est.transform(convert(X)), reference)
        assert reference_est.score(convert(X), convert(Y)) == reference_est.score(X, Y)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float8_e4m3fn,
                                   torch.int16, torch.uint16, torch.bool])
def test_torch_tensors_of_any_real_dtype_are_accepted(fitted, dtype):
    # NumPy has no bfloat16 or float8: those become float32 (exact), as float32 X.
    X_t, Y_t = (torch.from_numpy(a * 3).to(dtype) for a in (X, Y))
    X_64, Y_64 = X_t.double().numpy(), Y_t.double().numpy()
    reference_est = ReTuneRegularizer(**PARAMS, data_range=3.0).fit(X_64, Y_64)
    est = ReTuneRegularizer(**PARAMS, data_range=3.0).fit(X_t, Y_t)
    np.testing.assert_array_equal(est.weights_, reference_est.weights_)
    out = est.transform(X_t)
    assert out.dtype == (np.float32 if dtype in (torch.bfloat16, torch.float8_e4m3fn)
                         else np.float64)
    np.testing.assert_array_equal(out, est.transform(X_64).astype(out.dtype))
    assert est.score(X_t, Y_t) == est.score(X_64, Y_64)


@pytest.mark.parametrize("dtype", [np.int64, np.uint8, bool])
def test_integer_and_boolean_input_is_converted_to_float64(dtype):
    X_int, Y_int = (np.round(a * 3).clip(0, 1).astype(dtype) for a in (X, Y))
    est = ReTuneRegularizer(**PARAMS).fit(X_int, Y_int)
    out = est.transform(X_int)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, est.transform(X_int.astype(np.float64)))


def test_one_sample_is_enough():
    # Nothing in the method needs two samples: the loss is a mean over one.
    est = ReTuneRegularizer(**PARAMS).fit(X[:1], Y[:1])
    assert est.converged_ and np.all(np.isfinite(est.weights_))
    assert est.transform(X[:1]).shape == (1, 16, 16)


def test_batch_size_above_n_samples_is_one_full_batch():
    big = ReTuneRegularizer(**{**PARAMS, "batch_size": 10**9}).fit(X, Y)
    full = ReTuneRegularizer(**{**PARAMS, "batch_size": len(X)}).fit(X, Y)
    np.testing.assert_array_equal(big.weights_, full.weights_)
    np.testing.assert_array_equal(big.transform(X), full.transform(X))
