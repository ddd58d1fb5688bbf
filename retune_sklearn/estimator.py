"""The scikit-learn face of the package: :class:`ReTuneRegularizer`."""

import logging
import math
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Optional
from numbers import Integral, Real

import numpy as np
import scipy.sparse
import torch
from sklearn.base import (BaseEstimator, ClassNamePrefixFeaturesOutMixin, RegressorMixin,
                          TransformerMixin, clone)
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import _check_sample_weight, check_array, check_is_fitted

from .metrics import psnr_per_sample
from .operators import Identity, check_adjoint
from .regularizers import WaveletL1
from .solvers import HYPERGRADIENTS, ForwardBackward, relative_residual, restarted_solve

try:  # progress bars are optional: without tqdm, verbose=1 prints plain lines
    from tqdm.auto import tqdm
except ImportError:  # pragma: no cover - exercised by monkeypatching tqdm to None
    tqdm = None

__all__ = ["ReTuneRegularizer"]

_DTYPES = {"float32": torch.float32, "float64": torch.float64}

#: Cap on ``K * T``, the iterations of one solve: above it a solve of even a
#: small batch takes hours, which is almost certainly a typo (K=10**6).
MAX_ITERATIONS = 10**6

_LOGGER = logging.getLogger("retune_sklearn")


@contextmanager
def _torch_threads(n_threads):
    """Run a block with ``torch.set_num_threads(n_threads)``, then restore the setting.

    ``None`` leaves torch's setting alone. The setting is process-wide: do
    not change it from several threads at once.
    """
    if n_threads is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class _Progress:
    """Per-epoch reports of a training run, by verbosity.

    ``verbose >= 1``: a tqdm bar over the epochs showing the loss (plain
    printed lines when tqdm is missing or ``bar=False``); ``verbose >= 2``:
    also an INFO record per epoch on the ``"retune_sklearn"`` logger, with
    the loss, the validation PSNR and the weights.
    """

    def __init__(self, verbose, n_epochs, weight_names, *, bar=True):
        self.verbose, self.n_epochs, self.weight_names = verbose, n_epochs, weight_names
        self.bar = (tqdm(total=n_epochs, desc="ReTuneRegularizer", unit="epoch")
                    if verbose and bar and tqdm is not None else None)

    def epoch(self, epoch, loss, validation_psnr, weights):
        if not self.verbose:
            return
        values = {"loss": f"{loss:.6g}"}
        if validation_psnr is not None:
            values["val_psnr"] = f"{validation_psnr:.4f}"
        if self.bar is not None:
            self.bar.set_postfix(values, refresh=False)
            self.bar.update()
        else:
            shown = " ".join(f"{k}={v}" for k, v in values.items())
            print(f"[ReTuneRegularizer] epoch {epoch + 1}/{self.n_epochs} {shown}", flush=True)
        if self.verbose >= 2:
            validation = ("" if validation_psnr is None
                          else f" validation_psnr={validation_psnr:.4f}")
            shown = ", ".join(f"{n}={w:.4g}" for n, w in zip(self.weight_names, weights))
            _LOGGER.info("epoch %d/%d loss=%.6g%s weights: %s", epoch + 1, self.n_epochs, loss,
                         validation, shown)

    def close(self):
        if self.bar is not None:
            self.bar.close()


@dataclass
class _Theta:
    """The learnable parameters θ of one model, as torch tensors.

    ``log_weights``: log of the regularization weights λ_g; ``step_logit``:
    ``logit(step_scale / 2)`` (keeps the step scale in (0, 2));
    ``network``: the regularizer's own tensors (e.g. a denoiser's
    convolutions), empty for classical regularizers.
    """

    log_weights: torch.Tensor
    step_logit: torch.Tensor
    network: dict

    def learnable(self, learn_weights, learn_step_size):
        """Tensors to optimize: the weights (and network) and/or the step."""
        tensors = [self.log_weights, *self.network.values()] if learn_weights else []
        return tensors + ([self.step_logit] if learn_step_size else [])

    def detached_copy(self):
        return _Theta(self.log_weights.detach().clone(), self.step_logit.detach().clone(),
                      {k: v.detach().clone() for k, v in self.network.items()})

    def restore(self, other):
        """Copy ``other``'s values into these tensors, in place."""
        with torch.no_grad():
            self.log_weights.copy_(other.log_weights)
            self.step_logit.copy_(other.step_logit)
            for name, value in self.network.items():
                value.copy_(other.network[name])

    def all_finite(self):
        tensors = [self.log_weights.detach().exp(), self.step_logit, *self.network.values()]
        return all(bool(torch.isfinite(t).all()) for t in tensors) and bool(
            (self.log_weights.detach().exp() > 0).all())


class _Diverged(Exception):
    """Raised inside the training loop when a loss, gradient or weight is not finite."""


class _NotRealError(TypeError, ValueError):
    """Non-real data. A ``TypeError`` (the dtype is wrong) that is also the
    ``ValueError`` scikit-learn raises for complex data, so code written for
    either convention catches it."""


def _check_data(data, name, *, ensure_2d=True):
    """``check_array`` with errors that name the argument and what was expected.

    Real numbers (float, integer, boolean, object arrays of numbers) are
    accepted; integers and booleans become float64. Torch tensors on any
    device are converted with ``.detach().cpu().numpy()``.
    """
    if scipy.sparse.issparse(data):
        raise TypeError(f"{name} is a sparse matrix; sparse input is not supported (signals "
                        f"and measurements are dense arrays). Convert it with {name}.toarray().")
    if torch.is_tensor(data):
        data = data.detach().cpu().numpy()
    array = np.asarray(data)
    if array.dtype.kind == "O":
        try:
            array = array.astype(np.float64)
        except (TypeError, ValueError) as error:
            raise TypeError(f"{name} must hold real numbers; got an object array with "
                            f"non-numeric entries ({error}).") from None
    if array.dtype.kind not in "biuf":
        complex_note = " Complex data not supported." if array.dtype.kind == "c" else ""
        raise _NotRealError(f"{name} must hold real numbers (float, integer or boolean); got "
                            f"dtype {array.dtype}.{complex_note} Pass the real part, magnitude "
                            "or decoded values explicitly.")
    if array.ndim < 1 + ensure_2d:
        raise ValueError(f"{name} must have shape (n_samples, n_features) or (n_samples, "
                         f"*shape): the first axis indexes samples. Got a {array.ndim}-D "
                         f"array of shape {array.shape}. Reshape your data: one sample is "
                         f"{name}[None].")
    if array.size == 0:
        # Worded as check_array's messages, which scikit-learn's checks expect.
        empty = "sample(s)" if len(array) == 0 else "feature(s)"
        raise ValueError(f"{name} is empty: 0 {empty} (shape={array.shape}) while a minimum "
                         "of 1 is required.")
    return check_array(array, allow_nd=True, ensure_2d=ensure_2d, copy=False,
                       dtype=[np.float64, np.float32], input_name=name)


@dataclass
class _Measurements:
    """A batch of measurements and, if given, their per-sample 0/1 masks.

    Indexing along the sample axis slices both, so the training loop handles
    masked and unmasked data alike.
    """

    values: torch.Tensor
    mask: Optional[torch.Tensor] = None

    def __len__(self):
        return len(self.values)

    def __getitem__(self, index):
        return _Measurements(self.values[index], None if self.mask is None else self.mask[index])

    @property
    def device(self):
        return self.values.device


def _check_mask(mask, X):
    """Validate per-sample 0/1 masks against measurements ``X`` (None passes)."""
    if mask is None:
        return None
    mask = _check_data(mask, "mask")
    if mask.shape != X.shape:
        if mask.ndim == 2 and mask.shape[0] == X.shape[0] and mask.shape[1] == X[0].size:
            mask = mask.reshape(X.shape)
        else:
            raise ValueError(f"mask has shape {mask.shape}; expected the shape of X "
                             f"{X.shape} (one 0/1 mask per measurement), or flat "
                             f"({X.shape[0]}, {X[0].size}).")
    if not np.all((mask == 0) | (mask == 1)):
        raise ValueError("mask must contain only 0 and 1 (or booleans): 1 where an entry "
                         "of X is observed.")
    if not mask.any():
        raise ValueError("mask observes no entry (all zeros).")
    return mask


@dataclass
class _Problem:
    """Everything a solve needs, resolved from the parameters and the data."""

    model: ForwardBackward
    signal_shape: tuple
    measurement_shape: tuple
    device: torch.device
    dtype: torch.dtype
    lipschitz: float


class ReTuneRegularizer(ClassNamePrefixFeaturesOutMixin, TransformerMixin, RegressorMixin,
                        BaseEstimator):
    """Learn the weights of a variational reconstruction model from data.

    The reconstruction of a measurement ``X_i`` is the (approximate) solution
    of ``min_x ½‖A x − X_i‖² + Σ_g λ_g R_g(x)``, computed by ``T`` blocks of
    ``K`` forward–backward iterations. ``fit`` learns the weights ``λ_g`` (in
    the log domain, with Adam) by minimizing the mean squared error (or
    minus the mean PSNR, see ``loss``) between the reconstructions and the
    clean signals ``y``; gradients are taken
    through the last block only (ReTune: restarted Jacobian-free bilevel
    gradients, arXiv:2506.13239), or as set by ``hypergradient``.

    Parameters
    ----------
    operator : LinearOperator, "identity" or None, default=None
        The forward operator ``A`` (see :mod:`retune_sklearn.operators`).
        None or "identity" means :class:`~retune_sklearn.operators.Identity`.
    regularizer : Regularizer, "wavelet" or None, default=None
        The weighted regularizer (see :mod:`retune_sklearn.regularizers`).
        None or "wavelet" means ``WaveletL1()`` (db4, 3 levels, one weight per
        subband).
    K : int, default=10
        Forward–backward iterations per block: the depth that automatic
        differentiation sees with ``hypergradient="jfb"``.
    T : int, default=10
        Number of blocks; every solve (training and ``transform``) runs
        ``T * K`` iterations.
    hypergradient : {"jfb", "unrolled", "implicit"}, default="jfb"
        ``"jfb"``: backpropagate through the last block only (memory O(K));
        ``"unrolled"``: through all ``T * K`` iterations (memory O(T·K));
        ``"implicit"``: implicit differentiation at the last iterate.
    implicit_tol : float, default=1e-6
        Relative tolerance of the adjoint fixed-point iteration (``"implicit"``).
    implicit_max_iter : int, default=200
        Iteration cap of that iteration; a ``ConvergenceWarning`` is raised
        when it is hit.
    init_weight : "auto", float or array-like, default="auto"
        Initial weights. "auto" uses ``0.1 * σ̂`` for every weight, with
        ``σ̂`` the standard deviation of ``X − A y`` on the training data (a
        small start keeps every subband's hypergradient non-zero).
    learn_weights : bool, default=True
        If False, the weights stay at ``init_weight`` (a classical model with
        hand-set weights, e.g. for grid search over ``init_weight``).
    learn_step_size : bool, default=False
        Also learn ``step_scale`` (kept in (0, 2) through a sigmoid).
    step_scale : float in (0, 2), default=1.0
        Step size ``τ = step_scale / L`` with ``L = ‖A W*‖²``.
    loss : {"mse", "psnr"}, default="mse"
        Training loss: ``"mse"``, the mean squared error over all entries of
        a batch (the bilevel objective of the DESIGN notes); ``"psnr"``, minus
        the mean per-sample PSNR (``mean_i 10 log10 MSE_i``), i.e. exactly the
        criterion :meth:`score` reports. "mse" favours the samples with the
        largest errors (textured images), "psnr" weighs every sample alike.
    learning_rate : float, default=0.05
        Adam learning rate on the log-weights.
    max_epochs : int, default=30
        Passes over the training set.
    batch_size : int, default=32
        Samples per outer step; also the chunk size of ``transform``.
    shuffle : bool, default=True
        Shuffle the samples at each epoch.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the training samples (split with
        ``random_state``), compute their mean PSNR after every epoch, stop
        when it has not improved by at least ``tol`` for ``n_iter_no_change``
        epochs, and keep the weights of the best epoch (as scikit-learn's
        ``MLPRegressor``). Ignored by :meth:`partial_fit`.
    validation_fraction : float in (0, 1), default=0.1
        Share of the samples held out when ``early_stopping``.
    n_iter_no_change : int, default=5
        Epochs without improvement before early stopping.
    tol : float, default=1e-4
        Smallest validation-PSNR gain (dB) that counts as an improvement.
    warm_start : bool, default=False
        If True and the estimator is fitted, ``fit`` starts from the fitted
        weights (and network) instead of ``init_weight``, with a fresh Adam
        state. The regularizer must then have the same weights as the fitted
        one.
    signal_shape : tuple of int or None, default=None
        Shape of one clean signal when ``y`` is given flat as
        ``(n_samples, n_features)``, e.g. ``(8, 8)`` for digits. By default a
        2-D ``y`` holds 1-D signals, a 3-D one ``(H, W)`` images and a 4-D one
        ``(C, H, W)`` images.
    data_range : float, default=1.0
        Peak-to-peak range of the signals, used by :meth:`score` (PSNR).
    device : str or torch.device, default="auto"
        "auto" uses CUDA when available, else the CPU.
    dtype : {"float32", "float64"}, default="float32"
        Precision of the computations. Outputs have the dtype of ``X``.
    n_threads : int or None, default=None
        Torch intra-op threads during ``fit``, ``partial_fit``, ``transform``
        (and ``predict``, ``score``): ``torch.set_num_threads(n_threads)`` for
        the call, restored afterwards. None leaves torch's setting alone. The
        setting is process-wide; see Notes on parallel searches.
    random_state : int, RandomState instance or None, default=None
        Seed of the mini-batch shuffling, of the validation split and of the
        initialization of learned networks.
    verbose : int, default=0
        0: silent. 1: a tqdm progress bar over the epochs with the current
        loss (plain printed lines if tqdm is not installed). 2 or more: also
        one INFO record per epoch (loss, validation PSNR, weights) on the
        ``logging.getLogger("retune_sklearn")`` logger; configure logging to
        see them, e.g. ``logging.basicConfig(level=logging.INFO)``.

    Attributes
    ----------
    weights_ : ndarray of shape (n_weights,)
        Learned weights ``λ_g`` in natural units.
    weight_names_ : list of str
        Name of each weight (e.g. wavelet subbands "a3", "h3", ..., "d1").
    step_scale_ : float
        Step scale used (learned if ``learn_step_size``).
    stepsize_ : float
        Step size ``τ = step_scale_ / lipschitz_``.
    lipschitz_ : float
        ``L = ‖A W*‖²`` estimated by power iteration.
    n_iter_ : int
        Number of epochs run by the last ``fit`` (plus one per later
        :meth:`partial_fit` call).
    loss_curve_ : list of float
        Mean training loss (MSE) of each epoch (continued by ``partial_fit``).
    validation_scores_ : list of float or None
        Mean validation PSNR (dB) after each epoch; None unless
        ``early_stopping``.
    best_validation_score_ : float or None
        Best of ``validation_scores_``: the weights are those of that epoch.
    converged_ : bool
        False if the fit stopped early: it diverged (non-finite loss,
        hypergradient or weights; a ``ConvergenceWarning`` says so) or was
        interrupted (``KeyboardInterrupt``; a ``UserWarning`` says so). The
        weights are then those of the best epoch so far.
    fixed_point_residual_ : float
        Mean relative residual ``‖φ(u) − u‖ / ‖u‖`` after ``T * K``
        iterations on (up to ``batch_size``) training samples with the learned
        weights: how far the solves stop from the equilibrium.
    signal_shape_ : tuple of int
        Shape of one signal as the model sees it.
    measurement_shape_ : tuple of int
        Shape of one measurement as the operator produces it.
    n_features_in_ : int
        Number of entries of one measurement ``X_i``.
    operator_, regularizer_ : fitted copies of ``operator`` and ``regularizer``.

    See Also
    --------
    retune_sklearn.persistence.save_weights : Save a fitted model without pickle.
    retune_sklearn.persistence.load_weights : Load it back, executing no code.

    Notes
    -----
    Input checks (see ``docs/troubleshooting.md``): ``X`` and ``y`` must be
    finite real arrays with the samples on axis 0; integer and boolean arrays
    are converted to float64, complex, string and non-numeric object arrays
    raise ``TypeError``. Torch tensors are accepted (copied to the CPU).
    Inputs are never modified. ``K * T`` is capped at ``MAX_ITERATIONS``
    (10**6). The operator's adjoint is checked by a dot test
    (:func:`~retune_sklearn.operators.check_adjoint`) at ``fit``. Invalid
    input raises before any fitted attribute changes.

    Faults: a non-finite loss, hypergradient or weight (over/underflow of the
    log-weights) stops the fit, restores the weights of the best epoch so far
    and sets ``converged_ = False`` with a ``ConvergenceWarning``.
    ``KeyboardInterrupt`` during training does the same with a
    ``UserWarning`` and ``fit`` returns normally (inside a search, Ctrl-C
    therefore ends only the current fit). ``transform`` raises
    ``ValueError`` rather than return non-finite reconstructions.

    Reproducibility: on the CPU, the same ``random_state`` (an int) and the
    same data give bitwise identical ``weights_`` and outputs, for the same
    torch version and thread count. On CUDA, ``index_add`` (wavelet
    synthesis) and the backward of the convolutions accumulate with atomic
    additions in an unspecified order, and cuFFT may choose different
    algorithms, so results agree only to round-off; set
    ``torch.use_deterministic_algorithms(True)`` (and
    ``CUBLAS_WORKSPACE_CONFIG=:4096:8``) for run-to-run determinism on one
    GPU, at some speed cost. Results differ between CPU and GPU and between
    GPU models.

    Persistence: the fitted state is held in NumPy arrays and CPU tensors,
    so a pickled model fitted on a GPU loads and predicts on a CPU-only
    machine with ``device="auto"`` (or after ``set_params(device="cpu")``
    when it was fitted with ``device="cuda"``). Unpickling runs arbitrary
    code: never load pickles (or joblib files) from untrusted sources; use
    :func:`~retune_sklearn.persistence.save_weights` and
    :func:`~retune_sklearn.persistence.load_weights` for that.

    Output containers: ``get_feature_names_out`` names the entries of a
    (flattened) reconstruction ``retuneregularizer0``, ``retuneregularizer1``,
    ...; ``set_output(transform="pandas")`` needs 2-D outputs, so fit on flat
    ``y`` (with ``signal_shape`` for images) to get DataFrames.

    Parallel searches: joblib's default (loky) backend starts its workers
    with ``OMP_NUM_THREADS`` (and the BLAS variables) set to
    ``n_cpus // n_jobs``; torch reads ``OMP_NUM_THREADS`` at start-up, so
    ``GridSearchCV(..., n_jobs=k)`` does not oversubscribe torch's intra-op
    threads. With the threading backend, or for tiny problems where thread
    start-up dominates, use ``n_threads=1`` in the estimator.

    Examples
    --------
    >>> import numpy as np
    >>> from retune_sklearn import ReTuneRegularizer
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat(np.repeat(rng.random((20, 4, 4)), 4, axis=1), 4, axis=2)
    >>> X = y + 0.1 * rng.standard_normal(y.shape)
    >>> from retune_sklearn.metrics import psnr
    >>> from retune_sklearn.regularizers import WaveletL1
    >>> est = ReTuneRegularizer(regularizer=WaveletL1("haar", levels=2), K=5, T=2,
    ...                         max_epochs=5, random_state=0).fit(X, y)
    >>> est.transform(X).shape
    (20, 16, 16)
    >>> bool(est.score(X, y) > psnr(y, X))  # better than the noisy input
    True
    """

    _parameter_constraints = {
        "operator": [None, StrOptions({"identity"}), HasMethods(["forward", "adjoint"])],
        "regularizer": [None, StrOptions({"wavelet"}),
                        HasMethods(["analysis", "synthesis", "prox", "weight_names"])],
        "K": [Interval(Integral, 1, None, closed="left")],
        "T": [Interval(Integral, 1, None, closed="left")],
        "hypergradient": [StrOptions(set(HYPERGRADIENTS))],
        "implicit_tol": [Interval(Real, 0, None, closed="neither")],
        "implicit_max_iter": [Interval(Integral, 1, None, closed="left")],
        "init_weight": [StrOptions({"auto"}), Interval(Real, 0, None, closed="neither"),
                        "array-like"],
        "learn_weights": ["boolean"],
        "learn_step_size": ["boolean"],
        "step_scale": [Interval(Real, 0, 2, closed="neither")],
        "loss": [StrOptions({"mse", "psnr"})],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "warm_start": ["boolean"],
        "signal_shape": [None, tuple],
        "data_range": [Interval(Real, 0, None, closed="neither")],
        "device": [str, torch.device],
        "dtype": [StrOptions(set(_DTYPES))],
        "n_threads": [None, Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(self, operator=None, regularizer=None, *, K=10, T=10, hypergradient="jfb",
                 implicit_tol=1e-6, implicit_max_iter=200, init_weight="auto",
                 learn_weights=True, learn_step_size=False, step_scale=1.0, loss="mse",
                 learning_rate=0.05, max_epochs=30, batch_size=32, shuffle=True,
                 early_stopping=False, validation_fraction=0.1, n_iter_no_change=5, tol=1e-4,
                 warm_start=False, signal_shape=None, data_range=1.0, device="auto",
                 dtype="float32", n_threads=None, random_state=None, verbose=0):
        self.operator = operator
        self.regularizer = regularizer
        self.K = K
        self.T = T
        self.hypergradient = hypergradient
        self.implicit_tol = implicit_tol
        self.implicit_max_iter = implicit_max_iter
        self.init_weight = init_weight
        self.learn_weights = learn_weights
        self.learn_step_size = learn_step_size
        self.step_scale = step_scale
        self.loss = loss
        self.learning_rate = learning_rate
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.warm_start = warm_start
        self.signal_shape = signal_shape
        self.data_range = data_range
        self.device = device
        self.dtype = dtype
        self.n_threads = n_threads
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ fit
    def fit(self, X, y, mask=None):
        """Learn the regularization weights from degraded/clean pairs.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_measurements) or (n_samples, *measurement_shape)
            Degraded measurements.
        y : array-like of shape (n_samples, n_features) or (n_samples, *signal_shape)
            Clean signals; ``transform`` returns arrays of this layout.
        mask : array-like of X's shape, default=None
            Per-sample 0/1 masks of the observed measurement entries (e.g.
            per-image inpainting masks): sample ``i`` is then modelled as
            ``mask_i ⊙ A y_i``. Routed by scikit-learn's metadata routing
            (``set_fit_request(mask=True)``) through ``Pipeline`` and
            ``GridSearchCV``, which split it per fold.

        Returns
        -------
        self : ReTuneRegularizer
            The fitted estimator.

        Raises
        ------
        ValueError, TypeError
            On invalid parameters or data (see ``docs/troubleshooting.md``),
            before any fitted attribute changes.

        Warns
        -----
        ConvergenceWarning
            If training diverged: it stopped with the best epoch's weights.
        UserWarning
            If training was interrupted by ``KeyboardInterrupt``: ``fit``
            returns normally with the best epoch's weights.
        """
        with self._compute_context():
            return self._fit(X, y, mask, incremental=False)

    def partial_fit(self, X, y, mask=None):
        """One pass of Adam steps over ``(X, y)`` in mini-batches of ``batch_size``.

        The first call (on an unfitted estimator) initializes the model as
        :meth:`fit` does; later calls continue from the fitted weights and
        the Adam state of the previous call (or of ``fit``), on data of the
        fitted layout. ``early_stopping`` and ``max_epochs`` are ignored;
        ``loss_curve_`` and ``n_iter_`` are continued.

        Parameters
        ----------
        X, y, mask : array-like
            Measurements, clean signals and optional masks, as in :meth:`fit`.

        Returns
        -------
        self : ReTuneRegularizer
            The updated estimator.

        Raises
        ------
        ValueError, TypeError
            On invalid parameters or data (including data of another layout
            than the fitted one), before any fitted attribute changes.
        """
        with self._compute_context():
            return self._fit(X, y, mask, incremental=True)

    def _compute_context(self):
        """Validate the parameters, then run torch with ``n_threads`` threads."""
        self._check_params()
        return _torch_threads(self.n_threads)

    def _fit(self, X, y, mask, *, incremental):
        """``fit`` (``incremental=False``) and ``partial_fit``."""
        proceed = incremental and hasattr(self, "weights_")
        X, y, problem, X_t, y_t = self._prepare_fit(X, y, mask, fitted_layout=proceed)
        theta = self._initial_parameters(X_t, y_t, problem)
        if proceed or (self.warm_start and hasattr(self, "weights_")):
            theta = self._continued_theta(problem, theta)
        X_train, y_train, validation = X_t, y_t, None
        if self.early_stopping and not incremental:
            train, held_out = (torch.as_tensor(i, device=X_t.device)
                               for i in self._validation_split(len(X_t)))
            X_train, y_train, validation = X_t[train], y_t[train], (X_t[held_out], y_t[held_out])

        parameters = theta.learnable(self.learn_weights, self.learn_step_size)
        optimizer = self._optimizer(parameters, resume=proceed)
        loss_curve, scores, converged = self._train(
            X_train, y_train, problem, theta, optimizer,
            1 if incremental else self.max_epochs, validation, bar=not incremental)

        # Everything is computed first and assigned at once, so that a failure
        # (or Ctrl-C) before this point leaves a previous fit intact.
        theta = theta.detached_copy()
        step_scale = float(2 * torch.sigmoid(theta.step_logit))
        residual = self._residual(X_t[: self.batch_size], problem, theta)
        if proceed:
            loss_curve = self.loss_curve_ + loss_curve
        vars(self).update(
            operator_=problem.model.operator,
            regularizer_=problem.model.regularizer,
            weights_=theta.log_weights.exp().cpu().numpy().astype(np.float64),
            # numpy, not tensors: a model fitted on a GPU unpickles anywhere.
            regularizer_params_={k: v.cpu().numpy() for k, v in theta.network.items()},
            weight_names_=problem.model.regularizer.weight_names(problem.signal_shape),
            step_scale_=step_scale,
            lipschitz_=problem.lipschitz,
            stepsize_=step_scale / problem.lipschitz,
            loss_curve_=loss_curve,
            n_iter_=len(loss_curve),
            converged_=converged,
            validation_scores_=scores if validation is not None else None,
            best_validation_score_=max(scores, default=None) if validation is not None else None,
            signal_shape_=problem.signal_shape,
            measurement_shape_=problem.measurement_shape,
            n_features_in_=int(np.prod(X.shape[1:])),
            _y_sample_shape=y.shape[1:],  # transform returns y's layout
            fixed_point_residual_=residual,
            _optimizer_state=self._optimizer_state_dict(optimizer, parameters),
        )
        return self

    def _continued_theta(self, problem, initial):
        """The fitted parameters, checked against the ``initial`` ones of ``problem``."""
        names = problem.model.regularizer.weight_names(problem.signal_shape)
        shapes = {k: tuple(v.shape) for k, v in initial.network.items()}
        fitted_shapes = {k: v.shape for k, v in self.regularizer_params_.items()}
        if names != self.weight_names_ or shapes != fitted_shapes:
            raise ValueError(f"warm_start=True: the fitted model has the weights "
                             f"{self.weight_names_} (network tensors {fitted_shapes}), but the "
                             f"current regularizer and data give {names} ({shapes}); they "
                             "cannot be continued. Set warm_start=False to start afresh.")
        return self._fitted_theta(problem)

    def _validation_split(self, n_samples):
        """Indices of the training and validation samples (``early_stopping``)."""
        try:
            return train_test_split(np.arange(n_samples), test_size=self.validation_fraction,
                                    random_state=self.random_state)
        except ValueError as error:
            raise ValueError(f"early_stopping=True cannot hold out validation_fraction="
                             f"{self.validation_fraction} of {n_samples} samples: {error}") from None

    def _optimizer(self, parameters, *, resume):
        """Adam on ``parameters``; with ``resume``, from the stored Adam state if it fits."""
        if not parameters:
            return None
        for p in parameters:
            p.requires_grad_(True)
        optimizer = torch.optim.Adam(parameters, lr=self.learning_rate)
        state = getattr(self, "_optimizer_state", None)
        if resume and state is not None and state["key"] == self._learnable_key(parameters):
            optimizer.load_state_dict(state["state"])  # moves the moments to the device
            for group in optimizer.param_groups:  # a changed learning_rate applies
                group["lr"] = self.learning_rate
        return optimizer

    def _learnable_key(self, parameters):
        """What the Adam state belongs to: which tensors, of which shapes."""
        return (self.learn_weights, self.learn_step_size, tuple(tuple(p.shape) for p in parameters))

    def _optimizer_state_dict(self, optimizer, parameters):
        """Adam's state with CPU tensors (picklable and device-free), or None."""
        if optimizer is None:
            return None
        state = optimizer.state_dict()
        state["state"] = {i: {k: v.detach().cpu().clone() if torch.is_tensor(v) else v
                              for k, v in moments.items()}
                          for i, moments in state["state"].items()}
        return {"key": self._learnable_key(parameters), "state": state}

    def _train(self, X_t, y_t, problem, theta, optimizer, n_epochs, validation=None, *,
               bar=True):
        """Adam epochs on the learnable parameters of ``theta`` (updated in place).

        Returns the loss of each epoch, the validation PSNR of each epoch
        (empty without ``validation``) and whether training ended normally.
        With ``validation = (X_val, y_val)``, training stops early (see
        ``early_stopping``) and ends with the parameters of the best epoch.
        On divergence or ``KeyboardInterrupt`` the parameters of the best
        epoch so far (the initial ones if no epoch finished) are restored,
        with a warning, and ``converged`` is False.
        """
        if optimizer is None:
            return [], [], True
        rng = check_random_state(self.random_state)
        # best = (score, parameters); the score is the validation PSNR, or
        # minus the training loss without validation.
        best = (-math.inf, theta.detached_copy())
        loss_curve, scores, no_improvement = [], [], 0
        progress = _Progress(self.verbose, n_epochs,
                             problem.model.regularizer.weight_names(problem.signal_shape), bar=bar)
        try:
            for epoch in range(n_epochs):
                order = rng.permutation(len(X_t)) if self.shuffle else np.arange(len(X_t))
                epoch_loss = self._train_epoch(X_t, y_t, problem, theta, optimizer, order)
                loss_curve.append(epoch_loss)
                score = -epoch_loss
                if validation is not None:
                    score = self._validation_score(*validation, problem, theta)
                    scores.append(score)
                    no_improvement = no_improvement + 1 if score < best[0] + self.tol else 0
                if score > best[0]:
                    best = (score, theta.detached_copy())
                progress.epoch(epoch, epoch_loss, score if validation is not None else None,
                               theta.log_weights.detach().exp().tolist())
                if no_improvement >= self.n_iter_no_change:
                    break
            if validation is not None:
                theta.restore(best[1])
            return loss_curve, scores, True
        except _Diverged as error:
            warnings.warn(f"ReTuneRegularizer diverged at epoch {len(loss_curve) + 1}: {error}. "
                          "The weights of the best epoch so far were restored and converged_ "
                          f"is False. Lower learning_rate (now {self.learning_rate:g}) or "
                          f"step_scale (now {self.step_scale:g}), or rescale X and y.",
                          ConvergenceWarning, stacklevel=4)
        except KeyboardInterrupt:
            # As skorch does: Ctrl-C ends training, not the fit, so that hours of
            # training are not thrown away.
            warnings.warn(f"ReTuneRegularizer.fit interrupted (KeyboardInterrupt) during "
                          f"epoch {len(loss_curve) + 1}/{n_epochs}; keeping the "
                          "weights of the best epoch so far (converged_ is False).",
                          UserWarning, stacklevel=4)
        finally:
            progress.close()
        theta.restore(best[1])
        return loss_curve, scores, False

    def _validation_score(self, X_val, y_val, problem, theta):
        """Mean PSNR (dB) of the reconstructions of the held-out samples."""
        with torch.no_grad():
            reconstructions = torch.cat([
                self._solve(X_val[start:start + self.batch_size], problem, theta, "none")
                for start in range(0, len(X_val), self.batch_size)])
        return float(np.mean(psnr_per_sample(y_val.cpu().numpy(), reconstructions.cpu().numpy(),
                                             data_range=self.data_range)))

    def _train_epoch(self, X_t, y_t, problem, theta, optimizer, order):
        """Adam steps over one pass of ``order``; returns the mean batch loss.

        Raises ``_Diverged`` before a non-finite loss or gradient reaches the
        weights (or Adam's moments), and when a weight over- or underflows.
        """
        parameters = optimizer.param_groups[0]["params"]
        total = 0.0
        for start in range(0, len(order), self.batch_size):
            batch = torch.as_tensor(order[start:start + self.batch_size], device=X_t.device)
            optimizer.zero_grad()
            loss = self._batch_loss(X_t[batch], y_t[batch], problem, theta, self.hypergradient)
            if not torch.isfinite(loss):
                raise _Diverged(f"the training loss became {float(loss.detach())}")
            loss.backward()
            if not all(torch.isfinite(p.grad).all() for p in parameters):
                raise _Diverged("the hypergradient became non-finite")
            optimizer.step()
            if not theta.all_finite():
                extreme = float(theta.log_weights.detach().abs().max())
                raise _Diverged(f"the weights over- or underflowed (a log-weight reached "
                                f"±{extreme:.3g})")
            total += float(loss.detach()) * len(batch)
        return total / len(order)

    def _batch_loss(self, X_b, y_b, problem, theta, hypergradient):
        reconstruction = self._solve(X_b, problem, theta, hypergradient)
        if self.loss == "mse":
            return torch.mean((reconstruction - y_b) ** 2)
        per_sample = (reconstruction - y_b).flatten(1).pow(2).mean(dim=1)
        # 10 log10 MSE_i is minus the PSNR up to a constant (the data range).
        return torch.mean(10 * torch.log10(per_sample.clamp_min(torch.finfo(per_sample.dtype).tiny)))

    @staticmethod
    def _step(X_b, problem, theta):
        """The map ``u -> φ_θ(u)`` for the measurements ``X_b``."""
        model = problem.model
        weights = theta.log_weights.exp()
        stepsize = 2 * torch.sigmoid(theta.step_logit) / problem.lipschitz

        def step(u):
            return model.step(u, X_b.values, weights, stepsize, theta.network, X_b.mask)
        return step

    def _solve(self, X_b, problem, theta, hypergradient):
        """Reconstruct a batch: ``T`` blocks of ``K`` steps, then ``W* u``."""
        model = problem.model
        step = self._step(X_b, problem, theta)
        u = restarted_solve(step, model.initial_point(X_b.values, X_b.mask), self.K, self.T,
                            hypergradient,
                            implicit_tol=self.implicit_tol,
                            implicit_max_iter=self.implicit_max_iter)
        return model.regularizer.synthesis(u)

    def compute_hypergradient(self, X, y, hypergradient=None, mask=None):
        """Gradient of the training loss with respect to the log-weights.

        No optimizer step is taken and the estimator is not modified. The
        gradient is taken at the fitted weights if the estimator is fitted,
        else at the initial weights ``fit`` would start from.

        Parameters
        ----------
        X, y : array-like
            Measurements and clean signals, as in :meth:`fit`.
        hypergradient : {"jfb", "unrolled", "implicit"} or None, default=None
            How to differentiate the solve; None uses ``self.hypergradient``.
        mask : array-like of X's shape, default=None
            Per-sample masks, as in :meth:`fit`.

        Returns
        -------
        ndarray of shape (n_weights,)
            ``∂ loss / ∂ log λ_g`` where ``loss`` is the training loss (see
            ``loss``) averaged over all samples of ``X`` (computed in chunks
            of ``batch_size``).
        """
        hypergradient = self.hypergradient if hypergradient is None else hypergradient
        if hypergradient not in HYPERGRADIENTS:
            raise ValueError(f"hypergradient must be one of {HYPERGRADIENTS}; "
                             f"got {hypergradient!r}.")
        with self._compute_context():
            _, _, problem, X_t, y_t = self._prepare_fit(X, y, mask)
            if hasattr(self, "weights_"):
                theta = self._fitted_theta(problem)
            else:
                theta = self._initial_parameters(X_t, y_t, problem)
            theta.log_weights.requires_grad_(True)
            for start in range(0, len(X_t), self.batch_size):
                chunk = slice(start, start + self.batch_size)
                loss = self._batch_loss(X_t[chunk], y_t[chunk], problem, theta, hypergradient)
                (loss * len(X_t[chunk]) / len(X_t)).backward()
            return theta.log_weights.grad.cpu().numpy().astype(np.float64)

    # ------------------------------------------------------------ inference
    def transform(self, X, mask=None):
        """Reconstruct signals from measurements (``T * K`` iterations).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_measurements) or (n_samples, *measurement_shape)
            Degraded measurements, of the layout seen in ``fit``.
        mask : array-like of X's shape, default=None
            Per-sample 0/1 masks of the observed entries, as in :meth:`fit`
            (routed with ``set_transform_request(mask=True)``).

        Returns
        -------
        ndarray of the layout of ``y`` in ``fit``
            Reconstructions, with the dtype of ``X`` (float64 for non-float X).
        """
        check_is_fitted(self)
        with self._compute_context():
            return self._transform(X, mask)

    def fit_transform(self, X, y, mask=None):
        """``fit(X, y, mask)`` then ``transform(X, mask)``."""
        return self.fit(X, y, mask=mask).transform(X, mask=mask)

    def _transform(self, X, mask):
        X = self._check_measurements(X)
        mask = _check_mask(mask, X)
        problem = self._fitted_problem()
        theta = self._fitted_theta(problem)
        out_dtype = X.dtype if X.dtype in (np.float32, np.float64) else np.float64
        out = np.empty((len(X), *self._y_sample_shape), dtype=out_dtype)
        # Chunk by chunk (tensors and all) so that memory beyond the output is
        # bounded by batch_size, whatever len(X).
        n_bad = 0
        with torch.no_grad():
            for start in range(0, len(X), self.batch_size):
                chunk = slice(start, start + self.batch_size)
                batch = _Measurements(self._to_tensor(X[chunk], problem),
                                      None if mask is None else self._to_tensor(mask[chunk], problem))
                x_hat = self._solve(batch, problem, theta, "none")
                n_bad += int((~torch.isfinite(x_hat.flatten(1)).all(dim=1)).sum())
                out[chunk] = x_hat.cpu().numpy().reshape(out[chunk].shape)
        if n_bad:
            raise ValueError(f"transform produced non-finite reconstructions for {n_bad} of "
                             f"{len(X)} samples (weights_={self.weights_}). Check that X is "
                             f"of a moderate scale for dtype={self.dtype!r}, or refit.")
        return out

    def predict(self, X, mask=None):
        """Alias of :meth:`transform` (reconstructions)."""
        return self.transform(X, mask=mask)

    def score(self, X, y, sample_weight=None, mask=None):
        """Mean PSNR (dB) of the reconstructions of ``X`` against ``y``.

        Parameters
        ----------
        X : array-like
            Degraded measurements.
        y : array-like
            Clean signals, of the layout seen in ``fit``.
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the per-sample PSNRs.
        mask : array-like of X's shape, default=None
            Per-sample masks, as in :meth:`fit` (routed with
            ``set_score_request(mask=True)``).

        Returns
        -------
        float
            Mean peak signal-to-noise ratio in dB (higher is better), with
            ``data_range`` as the peak.
        """
        check_is_fitted(self)
        # Cheap checks of y first, so that a wrong y fails before the solves.
        n_samples = len(self._check_measurements(X))
        y = _check_data(y, "y", ensure_2d=False)
        expected = (n_samples, *self._y_sample_shape)
        if y.shape != expected:
            raise ValueError(f"y has shape {y.shape}; expected {expected} (one signal per "
                             "sample of X, in the layout of y in fit).")
        sample_weight = _check_sample_weight(sample_weight, y, ensure_non_negative=True)
        reconstruction = self.transform(X, mask=mask)
        return float(np.average(psnr_per_sample(y, reconstruction, data_range=self.data_range),
                                weights=sample_weight))

    # ---------------------------------------------------------- validation
    def _prepare_fit(self, X, y, mask=None, *, fitted_layout=False):
        """Validate the data and build the problem; return arrays, problem and tensors.

        ``X`` is returned in the operator's measurement shape and ``y`` as
        given; the tensors hold measurements and structured signals. With
        ``fitted_layout``, the data must have the fitted layout and the
        fitted problem is used (``partial_fit`` on a fitted estimator).
        """
        X, y = self._check_fit_data(X, y)
        if fitted_layout:
            X = self._check_measurements(X)
            if y.shape[1:] != self._y_sample_shape:
                raise ValueError(f"y has samples of shape {y.shape[1:]}, but "
                                 f"ReTuneRegularizer was fitted on y of sample shape "
                                 f"{self._y_sample_shape}.")
            problem = self._fitted_problem()
        else:
            problem = self._build_problem(self._signal_shape(y), X.shape[1:])
        # Flat layouts are allowed; the model works on the structured shapes.
        X = X.reshape(len(X), *problem.measurement_shape)
        mask = _check_mask(mask, X)
        y_signals = y.reshape(len(y), *problem.signal_shape)
        X_t = _Measurements(self._to_tensor(X, problem),
                            None if mask is None else self._to_tensor(mask, problem))
        return X, y, problem, X_t, self._to_tensor(y_signals, problem)

    def _check_params(self):
        """``_validate_params`` plus the constraints that involve several parameters."""
        self._validate_params()
        if self.K * self.T > MAX_ITERATIONS:
            raise ValueError(f"K={self.K} and T={self.T} ask for K * T = {self.K * self.T} "
                             f"iterations per solve; at most {MAX_ITERATIONS:.0e} are allowed "
                             "(such a solve would take hours). Lower K or T.")

    def _check_fit_data(self, X, y):
        if y is None:  # worded as scikit-learn's own message
            raise ValueError("ReTuneRegularizer requires y to be passed, but the target y is "
                             "None: y holds the clean signals paired with X.")
        X = _check_data(X, "X")
        y = _check_data(y, "y", ensure_2d=False)
        if y.ndim < 2:
            raise ValueError(f"y must have shape (n_samples, n_features) or (n_samples, "
                             f"*signal_shape); got a {y.ndim}-D array of shape {y.shape}.")
        if X.shape[0] != y.shape[0]:
            raise ValueError(f"X and y have different numbers of samples: {X.shape[0]} "
                             f"and {y.shape[0]}.")
        if y.ndim > 4:
            raise ValueError(f"y must have at most 4 axes (n, C, H, W); got shape {y.shape}.")
        return X, y

    def _signal_shape(self, y):
        """Shape of one signal: ``signal_shape`` if given, else y's sample shape."""
        if self.signal_shape is None:
            return y.shape[1:]
        shape = tuple(self.signal_shape)
        if not all(isinstance(s, Integral) and s > 0 for s in shape) or not 1 <= len(shape) <= 3:
            raise ValueError("signal_shape must be a tuple of 1 to 3 positive integers; "
                             f"got {self.signal_shape!r}.")
        if int(np.prod(shape)) != int(np.prod(y.shape[1:])):
            raise ValueError(f"signal_shape={shape} holds {int(np.prod(shape))} entries "
                             f"but each y sample has {int(np.prod(y.shape[1:]))}.")
        return shape

    def _check_measurements(self, X):
        X = _check_data(X, "X")
        expected = self.measurement_shape_
        if X.shape[1:] != expected:
            if X.ndim == 2 and X.shape[1] == self.n_features_in_:
                return X.reshape(len(X), *expected)
            if X.ndim == 2:  # flat X: the number of features is what matters
                raise ValueError(f"X has {X.shape[1]} features, but ReTuneRegularizer is "
                                 f"expecting {self.n_features_in_} features as input "
                                 f"(measurements of shape {expected}, possibly flattened).")
            raise ValueError(f"X has samples of shape {X.shape[1:]} ({int(np.prod(X.shape[1:]))} "
                             f"features), but ReTuneRegularizer was fitted on measurements of "
                             f"shape {expected} ({self.n_features_in_} features).")
        return X

    def _resolve_components(self):
        operator = Identity() if self.operator in (None, "identity") else clone(self.operator)
        regularizer = (WaveletL1() if self.regularizer in (None, "wavelet")
                       else clone(self.regularizer))
        return operator, regularizer

    def _resolve_device(self):
        if isinstance(self.device, str) and self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        try:
            device = torch.device(self.device)
        except RuntimeError as error:
            raise ValueError(f"device={self.device!r} is not a valid torch device "
                             "('auto', 'cpu', 'cuda', 'cuda:1', ...).") from error
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device={self.device!r} asks for CUDA, but torch sees no CUDA "
                             "device here; use device='auto' or 'cpu'. A model fitted on a "
                             "GPU predicts on the CPU after est.set_params(device='cpu').")
        if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
            raise ValueError(f"device={self.device!r}: torch sees only "
                             f"{torch.cuda.device_count()} CUDA device(s).")
        return device

    def _build_problem(self, y_shape, X_shape):
        """Resolve components, shapes, device and the Lipschitz constant."""
        operator, regularizer = self._resolve_components()
        signal_shape = tuple(y_shape)
        operator.check_signal_shape(signal_shape)
        regularizer.check_signal_shape(signal_shape)
        measurement_shape = tuple(operator.measurement_shape(signal_shape))
        flat = (int(np.prod(measurement_shape)),)
        if tuple(X_shape) not in (measurement_shape, flat):
            raise ValueError(f"X has samples of shape {tuple(X_shape)}, but the operator maps "
                             f"signals of shape {signal_shape} (from y) to measurements of "
                             f"shape {measurement_shape}.")
        model = ForwardBackward(operator, regularizer)
        device, dtype = self._resolve_device(), _DTYPES[self.dtype]
        check_dtype = torch.float64 if device.type == "cpu" else dtype
        check_adjoint(operator, signal_shape, device=device, dtype=check_dtype)
        lipschitz = model.lipschitz(signal_shape, device=device, dtype=check_dtype)
        if not lipschitz > 0:
            raise ValueError("The operator is zero on these signals (‖A‖ = 0): nothing "
                             "can be reconstructed.")
        return _Problem(model, signal_shape, measurement_shape, device, dtype, lipschitz)

    def _fitted_problem(self):
        model = ForwardBackward(self.operator_, self.regularizer_)
        return _Problem(model, self.signal_shape_, self.measurement_shape_,
                        self._resolve_device(), _DTYPES[self.dtype], self.lipschitz_)

    def _fitted_theta(self, problem):
        """The fitted parameters as tensors on the problem's device and dtype."""
        def tensor(value):
            return torch.as_tensor(value, dtype=problem.dtype, device=problem.device)
        return _Theta(tensor(np.log(self.weights_)), self._step_logit(self.step_scale_, problem),
                      {k: tensor(v) for k, v in self.regularizer_params_.items()})

    @staticmethod
    def _to_tensor(array, problem):
        # torch wants writable memory (it warns on read-only arrays): copy those.
        array = np.require(array, requirements=["C", "W"])
        return torch.as_tensor(array, device=problem.device).to(problem.dtype)

    @staticmethod
    def _step_logit(step_scale, problem):
        p = torch.tensor(step_scale / 2, dtype=problem.dtype, device=problem.device)
        return torch.log(p) - torch.log1p(-p)

    def _initial_parameters(self, X_t, y_t, problem):
        """Initial parameters θ (leaf tensors)."""
        names = problem.model.regularizer.weight_names(problem.signal_shape)
        n_weights = len(names)
        if isinstance(self.init_weight, str):  # "auto"
            with torch.no_grad():
                residual = X_t.values - problem.model.operator.forward(y_t)
                if X_t.mask is not None:  # the noise of the observed entries only
                    residual = residual[X_t.mask > 0]
                noise_std = float(residual.std()) if residual.numel() > 1 else 0.0
            scale = noise_std if noise_std > 0 else 1e-3 * max(float(y_t.std()), 1e-3)
            init = np.full(n_weights, 0.1 * scale)
        else:
            init = np.asarray(self.init_weight, dtype=np.float64)
            if init.ndim > 1 or init.size not in (1, n_weights):
                raise ValueError(f"init_weight must be a number or hold one weight per name "
                                 f"in weight_names_ ({n_weights}: {names}); got shape "
                                 f"{init.shape}.")
            init = np.broadcast_to(init, (n_weights,))
            if not np.all(np.isfinite(init) & (init > 0)):
                raise ValueError(f"init_weight must hold positive finite weights; got {init}.")
        log_weights = torch.as_tensor(np.log(init), dtype=problem.dtype, device=problem.device)
        weights = log_weights.exp()
        if not (torch.isfinite(weights).all() and (weights > 0).all()):
            raise ValueError(f"init_weight={self.init_weight!r} over- or underflows in "
                             f"dtype={self.dtype!r}; rescale X and y or use float64.")
        generator = torch.Generator().manual_seed(
            int(check_random_state(self.random_state).randint(2**31 - 1)))
        network = problem.model.regularizer.init_parameters(problem.signal_shape, generator)
        network = {k: v.to(dtype=problem.dtype, device=problem.device)
                   for k, v in network.items()}
        return _Theta(log_weights.clone(), self._step_logit(self.step_scale, problem), network)

    def _residual(self, X_t, problem, theta):
        """Mean relative fixed-point residual after ``T * K`` steps."""
        with torch.no_grad():
            step = self._step(X_t, problem, theta)
            u = restarted_solve(step, problem.model.initial_point(X_t.values, X_t.mask), self.K,
                                self.T, "none")
            return float(relative_residual(step, u).mean())

    @property
    def _n_features_out(self):
        """Entries of one reconstruction (names from ``get_feature_names_out``)."""
        return int(np.prod(self._y_sample_shape))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        # y holds one signal (1-D or more) per sample: a 1-D y is refused.
        tags.target_tags.single_output = False
        tags.target_tags.multi_output = True
        tags.input_tags.two_d_array = True
        tags.input_tags.three_d_array = True
        tags.input_tags.sparse = False
        tags.input_tags.allow_nan = False
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        # CUDA kernels accumulate in an unspecified order (see Notes).
        tags.non_deterministic = str(self.device).startswith("cuda") or (
            self.device == "auto" and torch.cuda.is_available())
        return tags
