"""The scikit-learn face of the package: :class:`ReTuneRegularizer`.

Data and parameter checks live in :mod:`retune_sklearn._validation`; the
steps that turn the parameters into problems, θ and solves in
:mod:`retune_sklearn._model_steps`; solves in :mod:`retune_sklearn.reconstruct`
and :mod:`retune_sklearn.hypergradients`; the epoch loop in
:mod:`retune_sklearn.learning.loop`.
"""

import warnings
from contextlib import ExitStack
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Optional

import numpy as np
import torch
from sklearn.base import (BaseEstimator, ClassNamePrefixFeaturesOutMixin, RegressorMixin,
                          TransformerMixin)
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import _check_sample_weight, check_is_fitted

from ._lazy_imports import import_lazy_modules
from ._model_steps import ModelSteps, SolveChoices
from ._runtime import torch_threads
from ._validation import MAX_ITERATIONS  # noqa: F401 (public here: the Notes cite it)
from ._validation import (check_integer_parameters, check_iterations, check_mask,
                          check_measurements, check_score_signals, python_integers)
from .contraction import expansive_block_message
from .hypergradients import HYPERGRADIENTS, SolveReport
from .learning.adaptive import STATISTICS
from .learning.data import batch_slices, validation_split
from .learning.losses import LOSSES, SCALE_DEPENDENT
from .learning.loop import LoopOptions, train
from .learning.parameters import learnable_key, make_optimizer, optimizer_state
from .learning.warm_start import IterateBank
from .metrics import psnr_per_sample
from .reconstruct import DTYPES, batch_weights, reconstruct_into
from .solvers import SOLVERS

__all__ = ["ReTuneRegularizer"]


@dataclass
class _TrainingSession:
    """What the solves of one ``fit`` share: their report, the warm-start
    iterates, the scale the loss is divided by, and ``K`` and ``solve_tol``."""

    report: SolveReport
    bank: Optional[IterateBank]
    loss_scale: float
    choices: Optional[SolveChoices] = None


class ReTuneRegularizer(ModelSteps, ClassNamePrefixFeaturesOutMixin, TransformerMixin,
                        RegressorMixin, BaseEstimator):
    """Learn the weights of a variational reconstruction model from data.

    The reconstruction of a measurement ``X_i`` is the (approximate) solution
    of ``min_x ½‖A x − X_i‖² + Σ_g λ_g R_g(x)``, computed by ``T`` blocks of
    ``K`` forward–backward iterations. ``fit`` learns the weights ``λ_g`` (in
    the log domain, with Adam) by minimizing minus the mean PSNR (or the
    mean squared error, see ``loss``) of the reconstructions against the
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
        None means ``TotalVariation()`` (isotropic, Neumann boundary, one
        weight): it beat the tools a user would pick instead on denoising,
        deblurring and inpainting (``benchmarks/defaults.md``). "wavelet"
        means ``WaveletL1()`` (db4, 3 levels, one weight per subband: the
        paper's first experiment, and the first version's default).
    K : int or "auto", default="auto"
        Forward–backward iterations per block: the depth that automatic
        differentiation sees with ``hypergradient="jfb"``. Every solve ends
        with one block of ``K`` plain forward–backward steps. ``"auto"``
        chooses it at the start of ``fit`` from the measured contraction:
        the factor ``ρ`` of one step (``‖∂φ/∂u‖₂``, see
        ``contraction_factor_``) at the initial weights, at the end of a
        solve of up to ``batch_size`` training samples, gives the smallest
        ``K`` in ``[1, 50]`` with ``ρ^K ≤ auto_K_target``, the bound on
        JFB's relative hypergradient error (``K_``, ``K_selection_``). If
        no such ``K`` exists (ρ ≥ 1 on inpainting, ρ ≈ 0.999 on
        ill-conditioned deblurring), the bound guides nothing: ``K_ = 10``,
        and ``K_selection_["fallback"]`` says why (no warning: it is the
        usual case of those problems). Denoising gets ``K_ = 1`` (one step
        of size 1 is the minimizer), 7× less CPU than ``K = 10`` at the same
        test PSNR.
    auto_K_target : float in (0, 1), default=1e-2
        Target of ``K="auto"`` for the bound ``ρ^K`` (ignored otherwise).
    T : int, default=100
        Largest number of blocks per solve: the first ``T − 1`` are
        *restarted* blocks of ``solver`` (no autograd with ``"jfb"``), the
        last one the plain block above. With ``solve_tol``, ``T`` is a cap;
        with ``solve_tol=None`` every solve runs exactly ``T * K``
        iterations.
    solve_tol : float, "auto" or None, default=1e-4
        Stop the restarted blocks of a solve (training and ``transform``
        alike) as soon as every sample's relative fixed-point residual
        ``‖φ(u) − u‖ / ‖u‖`` is at most ``solve_tol``: the model is learned
        and used *at its equilibrium*, whatever the solver. ``"auto"``
        chooses it at the start of ``fit`` from the same measured ``ρ`` as
        ``K="auto"``: ``1e-3 · (1 − ρ)`` (at least 100 machine epsilons),
        the residual that bounds the relative distance to the equilibrium
        by 1e-3 (``‖u − u*‖ ≤ ‖φ(u) − u‖ / (1 − ρ)``); the floor when the
        step is not contractive (``solve_tol_``, ``solve_tol_selection_``). None
        gives a fixed budget of ``T * K`` iterations (a truncated "unrolled
        network": the learned weights then depend on that budget).
    solver : {"fista", "fb", "anderson"}, default="fista"
        Algorithm of the restarted blocks: FISTA with per-sample gradient
        restart (O'Donoghue–Candès; several times fewer iterations on
        ill-conditioned problems), plain forward–backward, or safeguarded
        Anderson acceleration (memory 5; it needed more iterations than FISTA
        on the benchmark problems). All converge to the same fixed point; the differentiated block is always plain
        forward–backward, so JFB's error bounds hold.
    reuse_iterates : bool, default=True
        With ``solve_tol``, start each training sample's solve from where its
        previous solve ended (the weights move little between outer steps,
        so few blocks remain to run). Kept by :meth:`partial_fit`, dropped by
        :meth:`fit`, not pickled. Ignored with ``solve_tol=None``.
    hypergradient : {"jfb", "unrolled", "implicit"}, default="jfb"
        ``"jfb"``: backpropagate through the last block only (memory O(K));
        ``"unrolled"``: through every iteration (memory O(T·K));
        ``"implicit"``: the implicit-function theorem at the last iterate,
        the adjoint system solved by GMRES (the exact deep-equilibrium
        gradient, up to ``implicit_tol``).
    implicit_tol : float, default=1e-6
        Relative residual of the adjoint solve (``"implicit"``).
    implicit_max_iter : int, default=200
        Most vector–Jacobian products of that solve; one
        ``ConvergenceWarning`` per fit says how many solves missed
        ``implicit_tol``.
    implicit_solver : {"gmres", "cg"}, default="gmres"
        Krylov method of that solve. ``"cg"``: conjugate gradient on the
        active set, valid for soft-threshold regularizers (``L1Norm``,
        ``WaveletL1`` without ``channels="group"``) with the quadratic data
        term, where the system is symmetric there (refused otherwise); about
        as many vector–Jacobian products as GMRES, less CPU per product
        (benchmarks/adjoint.md). ``"gmres"`` is valid for every model.
    init_weight : "auto", float or array-like, default="auto"
        Initial weights. "auto" uses ``0.1 * σ̂`` for every weight, with
        ``σ̂`` the standard deviation of ``X − A y`` on the training data (a
        small start keeps every subband's hypergradient non-zero).
    scale_search : bool, default=True
        With ``init_weight="auto"`` and ``learn_weights``, multiply the
        initial weights by the common factor (1/16 … 64, half-octave
        resolution) with the lowest training loss on one batch, before the
        first Adam step: short fits then start at the right order of
        magnitude (``init_scale_``); with ``adaptive_weights``, then the
        common exponent of the statistic. With ``reuse_iterates`` (and a
        ``solve_tol``) each of the search's solves starts from the
        solutions at the nearest factor already tried.
    adaptive_weights : {None, "noise", "detail"}, default=None
        Per-sample weights that follow a statistic ``s`` of each measurement:
        ``λ_g(X_i) = weights_[g] · (s(X_i) / statistic_reference_)^β_g``,
        with ``β_g`` (``weight_exponents_``) learned with the weights by the
        same hypergradients and the reference the median of ``s`` over the
        training measurements. The exponents start at 0, or with
        ``scale_search`` at the common value (−6 … 2 in half steps) of lowest
        training loss on the search batch. ``"noise"``: the noise level
        ``median(|HH₁|) / 0.6745`` of the finest diagonal Haar details;
        ``"detail"``: the root-mean-square of all finest Haar details (noise
        and texture). Computed on ``X`` itself for denoising, on the
        back-projection ``Aᵀ X`` (masked entries zero) for other operators
        (see :mod:`retune_sklearn.learning.adaptive`). The weights depend on
        the measurement only: every solve stays convex. None: one set of
        weights for every sample. The statistics need signals of at least 2
        entries per spatial axis. "detail" won a 4-fold cross-validation of
        the default model on the 96 training patches of the benchmark
        problems (``benchmarks/defaults/adaptive_cv.md``), but it is not the
        default: fitted on 8 patches it extrapolated to test images smoother
        than any training one and lost up to 7.6 dB
        (``benchmarks/defaults/adaptive_small_data.py``).
    learn_weights : bool, default=True
        If False, the weights stay at ``init_weight`` (a classical model with
        hand-set weights, e.g. for grid search over ``init_weight``).
    learn_step_size : bool, default=False
        Also learn ``step_scale`` (kept in (0, 2) through a sigmoid).
    step_scale : float in (0, 2), default=1.0
        Step size ``τ = step_scale / L`` with ``L = ‖A W*‖²``.
    loss : {"mse", "psnr"}, default="psnr"
        Training loss: ``"psnr"``, minus the mean per-sample PSNR
        (``mean_i 10 log10 MSE_i``), i.e. exactly the criterion :meth:`score`
        reports; ``"mse"``, the mean squared error over all entries of a
        batch (the bilevel objective of the DESIGN notes). "mse" favours the
        samples with the largest errors (textured images), "psnr" weighs
        every sample alike (+0.6 dB of mean PSNR on denoising).
    learning_rate : float, default=0.05
        Adam learning rate on the log-weights.
    max_epochs : int, default=10
        Passes over the training set. With ``scale_search`` the defaults
        converge in 5–10: on the problems of ``benchmarks/defaults.md`` 10
        epochs scored within 0.07 dB of 30 at 0.4–0.6× the CPU
        (``benchmarks/defaults/default_epochs.py``).
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
    n_threads : int or None, default=1
        Torch intra-op threads during ``fit``, ``partial_fit``, ``transform``
        (and ``predict``, ``score``): ``torch.set_num_threads(n_threads)`` for
        the call, restored afterwards. None leaves torch's setting alone. The
        solves are many operations on small tensors. Measured on a 2-core
        machine (64×64 deblurring, batch 16): idle, torch's default of 2
        threads was 1.4× faster in wall time for 1.4× the CPU time; loaded
        by other jobs, it was ~10× slower than one thread (OpenMP threads
        spin-wait for busy cores). One thread is the safe default; raise it
        on an idle machine or for large images. The setting is
        process-wide; see Notes on parallel searches.
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
        With ``adaptive_weights``, the weights of a measurement whose
        statistic equals ``statistic_reference_`` (:meth:`weights_for` gives
        each measurement's own).
    weight_names_ : list of str
        Name of each weight (e.g. wavelet subbands "a3", "h3", ..., "d1").
    adaptive_statistic_ : str or None
        The ``adaptive_weights`` the model was fitted with (``transform``
        uses it whatever ``adaptive_weights`` is set to afterwards).
    statistic_reference_ : float or None
        ``s_ref``, the median statistic of the training measurements (None
        for fixed weights).
    weight_exponents_ : ndarray of shape (n_weights,) or None
        The learned powers ``β_g`` of the statistic (None for fixed weights).
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
        Mean training loss of each epoch (continued by ``partial_fit``): the
        MSE with ``loss="mse"``, ``mean_i 10 log10 MSE_i`` (minus the PSNR up
        to a constant) with ``loss="psnr"``.
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
        Mean relative residual ``‖φ(u) − u‖ / ‖u‖`` at the end of a solve
        (as ``transform`` runs it, from the back-projection) of (up to
        ``batch_size``) training samples with the learned weights: how far
        the solves stop from the equilibrium. A ``ConvergenceWarning`` says
        when that solve stopped at the cap ``T`` above ``solve_tol``. Zero up
        to rounding when one step is the fixed point (``W Aᵀ A W* = I``, no mask and
        ``τ = 1``, e.g. denoising with the default step: the step does not
        depend on its input), where solves to a tolerance run one step.
    init_scale_ : float
        The factor ``scale_search`` applied to the initial weights (1.0
        without the search).
    n_solve_iter_ : int
        Forward–backward iterations of that solve.
    training_solve_iter_ : float or None
        Mean iterations per training solve during the last ``fit`` or
        ``partial_fit`` call (smaller than ``n_solve_iter_`` with
        ``reuse_iterates``); None if nothing was trained.
    K_ : int
        Block size used by the fit and by ``transform``: ``K``, or the value
        chosen by ``K="auto"``.
    K_selection_ : dict or None
        What ``K="auto"`` measured (None for an integer ``K``):
        ``initial_contraction`` (``ρ`` at the initial weights), ``target``
        (``auto_K_target``), ``K``, ``bound`` (``ρ^K``), ``status`` and
        ``fallback`` (None, or why no ``K`` met the target and ``K_`` is 10).
    solve_tol_ : float or None
        Tolerance of the solves of the fit and of ``transform``:
        ``solve_tol``, or the value chosen by ``solve_tol="auto"``.
    solve_tol_selection_ : dict or None
        What ``solve_tol="auto"`` measured (None otherwise):
        ``initial_contraction``, ``target_distance`` (1e-3), ``solve_tol``,
        ``guaranteed_distance`` (``solve_tol_ / (1 − ρ)``; None when the
        step is not contractive and no bound holds) and ``status``.
    contraction_factor_ : float or None
        Estimated contraction factor of one step at the learned weights:
        the largest over (up to ``batch_size``) training samples of the
        spectral norm ``‖∂φ/∂u‖₂`` of the step's Jacobian at the end of
        their solve (the equilibrium with ``solve_tol``), by Lanczos on
        ``JᵀJ`` with vector–Jacobian products (20 iterations at most; a
        lower bound that converges from below). Below 1 the step is a
        contraction there and JFB's hypergradient error decays like
        ``block_contraction_``. None if it could not be estimated (see
        ``contraction_status_``).
    block_contraction_ : float or None
        The same for a block of ``K_`` steps, ``‖∂Φ_K/∂u‖₂ ≤ ρ^K``: the
        factor of JFB's hypergradient error bound.
    contraction_status_ : str
        Of one step: ``"contractive"`` (factor < 1 − 1e-3),
        ``"non-expansive"`` (factor within 1e-3 of 1: inpainting, redundant
        frames and nearly singular operators, where the iteration converges
        but the ``ρ^K`` bound says nothing), ``"expansive"`` (factor
        > 1 + 1e-3, e.g. ``TotalVariation``'s inexact inner prox), or
        ``"not estimated: <reason>"``. A ``ConvergenceWarning`` naming the
        factors and what to change is raised only when the K-block itself
        is expansive (``block_contraction_ > 1 + 1e-3``): JFB's bound is
        ``C ‖J^K‖``, so an expansive step whose K-block contracts keeps it,
        and a non-expansive model is not warned about.
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
        "K": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "auto_K_target": [Interval(Real, 0, 1, closed="neither")],
        "T": [Interval(Integral, 1, None, closed="left")],
        "solve_tol": [None, StrOptions({"auto"}), Interval(Real, 0, None, closed="neither")],
        "solver": [StrOptions(set(SOLVERS))],
        "reuse_iterates": ["boolean"],
        "hypergradient": [StrOptions(set(HYPERGRADIENTS))],
        "implicit_tol": [Interval(Real, 0, None, closed="neither")],
        "implicit_max_iter": [Interval(Integral, 1, None, closed="left")],
        "implicit_solver": [StrOptions({"gmres", "cg"})],
        "init_weight": [StrOptions({"auto"}), Interval(Real, 0, None, closed="neither"),
                        "array-like"],
        "scale_search": ["boolean"],
        "adaptive_weights": [None, StrOptions(set(STATISTICS))],
        "learn_weights": ["boolean"],
        "learn_step_size": ["boolean"],
        "step_scale": [Interval(Real, 0, 2, closed="neither")],
        "loss": [StrOptions(set(LOSSES))],
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
        "dtype": [StrOptions(set(DTYPES))],
        "n_threads": [None, Interval(Integral, 1, 1024, closed="both")],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(self, operator=None, regularizer=None, *, K="auto", auto_K_target=1e-2, T=100,
                 solve_tol=1e-4,
                 solver="fista", reuse_iterates=True, hypergradient="jfb", implicit_tol=1e-6,
                 implicit_max_iter=200, implicit_solver="gmres", init_weight="auto",
                 scale_search=True, adaptive_weights=None, learn_weights=True,
                 learn_step_size=False, step_scale=1.0, loss="psnr", learning_rate=0.05,
                 max_epochs=10, batch_size=32, shuffle=True, early_stopping=False,
                 validation_fraction=0.1, n_iter_no_change=5, tol=1e-4, warm_start=False,
                 signal_shape=None, data_range=1.0, device="auto", dtype="float32",
                 n_threads=1, random_state=None, verbose=0):
        self.operator = operator
        self.regularizer = regularizer
        self.K = K
        self.auto_K_target = auto_K_target
        self.T = T
        self.solve_tol = solve_tol
        self.solver = solver
        self.reuse_iterates = reuse_iterates
        self.hypergradient = hypergradient
        self.implicit_tol = implicit_tol
        self.implicit_max_iter = implicit_max_iter
        self.implicit_solver = implicit_solver
        self.init_weight = init_weight
        self.scale_search = scale_search
        self.adaptive_weights = adaptive_weights
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
            If training diverged (it stopped with the best epoch's weights),
            if the solves at the learned weights stop at the cap ``T`` above
            ``solve_tol``, if implicit backward passes missed
            ``implicit_tol``, if the differentiated K-block is expansive at
            the learned weights (``block_contraction_ > 1``); one warning
            per kind.
        UserWarning
            If training was interrupted by ``KeyboardInterrupt``: ``fit``
            returns normally with the best epoch's weights.
        """
        with self._compute_context():
            return self._fit(X, y, mask, incremental=False)

    def partial_fit(self, X, y, mask=None):
        """One pass of Adam steps over ``(X, y)`` in mini-batches of ``batch_size``.

        The first call (on an unfitted estimator) initializes the model as
        :meth:`fit` does; later calls continue from the fitted weights, the
        Adam state of the previous call (or of ``fit``) and, with
        ``reuse_iterates``, the last iterate of each sample (sample ``i`` of
        this call starts where sample ``i`` of the previous call ended: a
        different sample there only costs iterations), on data of the fitted
        layout. ``early_stopping`` and ``max_epochs`` are ignored;
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
        """Validate the parameters, then run torch with ``n_threads`` threads and the
        numpy-integer parameters as Python ints (restored afterwards)."""
        check_integer_parameters(self)  # first: scikit-learn takes True for 1
        self._validate_params()
        check_iterations(self.K, self.T)
        import_lazy_modules()  # before training, where Ctrl-C cannot cut it in half
        context = ExitStack()
        context.enter_context(python_integers(self))
        context.enter_context(torch_threads(self.n_threads))
        return context

    def _fit(self, X, y, mask, *, incremental):
        """``fit`` (``incremental=False``) and ``partial_fit``."""
        proceed = incremental and hasattr(self, "weights_")
        X, y, problem, X_t, y_t = self._prepare_data(X, y, mask, fitted_layout=proceed)
        theta = self._initial_theta(X_t, y_t, problem)
        continued = proceed or (self.warm_start and hasattr(self, "weights_"))
        if continued:
            theta = self._continued_theta(problem, theta)
        self._adapt_problem(problem, X_t, continued)
        X_train, y_train, X_val, y_val = X_t, y_t, None, None
        if self.early_stopping and not incremental:
            train, held_out = (torch.as_tensor(i, device=X_t.device) for i in
                               validation_split(len(X_t), self.validation_fraction,
                                                self.random_state))
            X_train, y_train, X_val, y_val = X_t[train], y_t[train], X_t[held_out], y_t[held_out]

        choices = self._fitted_choices() if proceed else None
        if choices is None:
            choices = self._choose_solve_settings(X_train, problem, theta)
        K = choices.K
        init_scale = 1.0
        if (not continued and self.scale_search and self.learn_weights
                and isinstance(self.init_weight, str)):
            self._choices = choices  # the solves of the search use this fit's choices
            try:
                init_scale = self._search_initial_scale(theta, X_train, y_train, problem)
            finally:
                del self._choices
        parameters = theta.learnable(self.learn_weights, self.learn_step_size)
        key = learnable_key(self.learn_weights, self.learn_step_size, parameters)
        optimizer = make_optimizer(parameters, self.learning_rate, key,
                                   getattr(self, "_optimizer_state", None) if proceed else None)
        session = _TrainingSession(
            report=SolveReport(), bank=self._iterate_bank_for(len(X_t), proceed),
            loss_scale=float(y_t.pow(2).mean()) if self.loss in SCALE_DEPENDENT else 1.0,
            choices=choices)
        loss_curve, scores, converged = self._train(X_train, y_train, X_val, y_val, problem,
                                                    theta, optimizer, session, incremental)

        # Everything is computed first and assigned at once, so that a failure
        # (or Ctrl-C) before this point leaves a previous fit intact.
        theta = theta.detached_copy()
        check = SolveReport()
        options = self._options(K, choices.tol)
        residual, contraction = self._equilibrium_diagnostics(
            X_t[: self.batch_size], problem, theta, options, check)
        self._set_fitted(
            problem, theta, X.shape[1:], y.shape[1:],
            loss_curve=self.loss_curve_ + loss_curve if proceed else loss_curve,
            validation_scores=scores if X_val is not None else None,
            converged=converged, residual=residual, check=check, session=session,
            optimizer_state=optimizer_state(optimizer, key),
            init_scale=init_scale if not proceed else self.init_scale_)
        vars(self).update(K_=K, K_selection_=choices.K_selection, solve_tol_=choices.tol,
                          solve_tol_selection_=choices.tol_selection,
                          contraction_factor_=contraction.step,
                          block_contraction_=contraction.block,
                          contraction_status_=contraction.status)
        message = expansive_block_message(contraction, self.step_scale_)
        if message:
            warnings.warn(message, ConvergenceWarning, stacklevel=3)
        check.warn_if_needed(options, stacklevel=3)
        # Training solves that hit the cap are not reported: warm starts make
        # them shorter, and the check solve above is what transform runs.
        session.report.warn_if_needed(options, stacklevel=3, capped=False)
        return self

    def _train(self, X_train, y_train, X_val, y_val, problem, theta, optimizer, session,
               incremental):
        """The epoch loop on the training split; returns losses, scores, converged."""
        def batch_loss(X_b, y_b):
            return self._batch_loss(X_b, y_b, problem, theta, self.hypergradient)

        def validation_score():
            return self._validation_score(X_val, y_val, problem, theta)

        options = LoopOptions(
            n_epochs=1 if incremental else self.max_epochs, batch_size=self.batch_size,
            shuffle=self.shuffle, random_state=self.random_state, tol=self.tol,
            n_iter_no_change=self.n_iter_no_change, verbose=self.verbose,
            weight_names=problem.model.regularizer.weight_names(problem.signal_shape),
            learning_rate=self.learning_rate, step_scale=self.step_scale,
            progress_bar=not incremental)
        self._session = session
        try:
            loss_curve, scores, converged = train(
                batch_loss, X_train, y_train, theta, optimizer, options,
                None if X_val is None else validation_score)
        finally:
            del self._session
        return [loss * session.loss_scale for loss in loss_curve], scores, converged

    def _set_fitted(self, problem, theta, measurement_sample_shape, y_sample_shape, *,
                    loss_curve, validation_scores, converged, residual, check, session,
                    optimizer_state, init_scale):
        """Assign all fitted attributes at once (``theta`` detached)."""
        step_scale = float(theta.step_scale)
        training_iterations = session.report.iterations
        adaptation = problem.adaptation
        vars(self).update(
            adaptive_statistic_=None if adaptation is None else adaptation.statistic,
            statistic_reference_=None if adaptation is None else adaptation.reference,
            weight_exponents_=(None if theta.exponents is None
                               else theta.exponents.cpu().numpy().astype(np.float64)),
            operator_=problem.model.operator,
            regularizer_=problem.model.regularizer,
            weights_=theta.weights.cpu().numpy().astype(np.float64),
            # numpy, not tensors: a model fitted on a GPU unpickles anywhere.
            regularizer_params_={k: v.cpu().numpy() for k, v in theta.network.items()},
            weight_names_=problem.model.regularizer.weight_names(problem.signal_shape),
            step_scale_=step_scale,
            lipschitz_=problem.lipschitz,
            stepsize_=step_scale / problem.lipschitz,
            loss_curve_=loss_curve,
            n_iter_=len(loss_curve),
            converged_=converged,
            validation_scores_=validation_scores,
            best_validation_score_=(None if validation_scores is None
                                    else max(validation_scores, default=None)),
            signal_shape_=problem.signal_shape,
            measurement_shape_=problem.measurement_shape,
            n_features_in_=int(np.prod(measurement_sample_shape)),
            _y_sample_shape=y_sample_shape,  # transform returns y's layout
            fixed_point_residual_=float(residual.mean()),
            n_solve_iter_=int(check.iterations[-1]),
            training_solve_iter_=(float(np.mean(training_iterations)) if training_iterations
                                  else None),
            init_scale_=init_scale,
            _optimizer_state=optimizer_state,
            _iterate_bank=session.bank,
        )

    def __getstate__(self):
        # The warm-start iterates are a cache of the last fit (as large as the
        # training set): not pickled; partial_fit after unpickling starts cold.
        state = dict(super().__getstate__())
        state.pop("_iterate_bank", None)
        return state

    def compute_hypergradient(self, X, y, hypergradient=None, mask=None):
        """Gradient of the training loss with respect to the log-weights.

        No optimizer step is taken and the estimator is not modified. The
        gradient is taken at the fitted weights if the estimator is fitted,
        else at the initial weights ``fit`` would start from. Every solve
        starts from the back-projection.

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
            ``loss``, in the units of ``loss_curve_``) averaged over all
            samples of ``X`` (computed in chunks of ``batch_size``). With
            ``adaptive_weights``, the derivatives with respect to the
            log-weights of the reference (``weights_``); the exponents'
            gradient is not returned.
        """
        hypergradient = self.hypergradient if hypergradient is None else hypergradient
        if hypergradient not in HYPERGRADIENTS:
            raise ValueError(f"hypergradient must be one of {tuple(HYPERGRADIENTS)}; "
                             f"got {hypergradient!r}.")
        with self._compute_context():
            _, _, problem, X_t, y_t = self._prepare_data(X, y, mask)
            if hasattr(self, "weights_"):
                theta = self._fitted_theta(problem)
                problem.adaptation = self._fitted_adaptation()
                choices = self._solve_choices()
            else:
                theta = self._initial_theta(X_t, y_t, problem)
                self._adapt_problem(problem, X_t, continued=False)
                choices = self._choose_solve_settings(X_t, problem, theta)
            theta.log_weights.requires_grad_(True)
            self._choices = choices
            try:
                for chunk in batch_slices(len(X_t), self.batch_size):
                    loss = self._batch_loss(X_t[chunk], y_t[chunk], problem, theta,
                                            hypergradient)
                    (loss * len(X_t[chunk]) / len(X_t)).backward()
            finally:
                del self._choices
            return theta.log_weights.grad.cpu().numpy().astype(np.float64)

    # ------------------------------------------------------------ inference
    def transform(self, X, mask=None):
        """Reconstruct signals from measurements (the same solve as in training).

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

    def _fitted_inputs(self, X, mask):
        """Validated measurements and mask, with the fitted problem and θ."""
        X = check_measurements(X, self.measurement_shape_, self.n_features_in_)
        mask = check_mask(mask, X)
        problem = self._fitted_problem()
        return X, mask, problem, self._fitted_theta(problem)

    def _transform(self, X, mask):
        X, mask, problem, theta = self._fitted_inputs(X, mask)
        out_dtype = X.dtype if X.dtype in (np.float32, np.float64) else np.float64
        out = np.empty((len(X), *self._y_sample_shape), dtype=out_dtype)
        n_bad = reconstruct_into(out, X, mask, problem,
                                 lambda batch, _: self._solve(batch, problem, theta, "none"),
                                 self.batch_size)
        if n_bad:
            raise ValueError(f"transform produced non-finite reconstructions for {n_bad} of "
                             f"{len(X)} samples (weights_={self.weights_}). Check that X is "
                             f"of a moderate scale for dtype={self.dtype!r}, or refit.")
        return out

    def weights_for(self, X, mask=None):
        """The weights ``λ_g(X_i)`` that :meth:`transform` solves each measurement with.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_measurements) or (n_samples, *measurement_shape)
            Measurements, as in :meth:`transform`.
        mask : array-like of X's shape, default=None
            Per-sample 0/1 masks of the observed entries, as in :meth:`transform`.

        Returns
        -------
        ndarray of shape (n_samples, n_weights)
            ``weights_`` on every row for fixed weights; with adaptive weights
            ``weights_ · (s(X_i) / statistic_reference_) ** weight_exponents_``
            (the ratio clamped to ``[2**-10, 2**10]``).
            ``reconstruct(X, operator_, regularizer_, weights_for(X), ...)``
            with the fitted solve settings is then :meth:`transform`.
        """
        check_is_fitted(self)
        with self._compute_context():
            X, mask, problem, theta = self._fitted_inputs(X, mask)
            out = np.empty((len(X), len(self.weights_)))
            # The chunked loop of transform, filling one row of weights per sample.
            reconstruct_into(out, X, mask, problem, lambda batch, _: batch_weights(
                batch, problem, theta).expand(len(batch.values), -1), self.batch_size)
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
        n_samples = len(check_measurements(X, self.measurement_shape_, self.n_features_in_))
        y = check_score_signals(y, (n_samples, *self._y_sample_shape), self.data_range)
        sample_weight = _check_sample_weight(sample_weight, y, ensure_non_negative=True)
        reconstruction = self.transform(X, mask=mask)
        return float(np.average(psnr_per_sample(y, reconstruction, data_range=self.data_range),
                                weights=sample_weight))

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
