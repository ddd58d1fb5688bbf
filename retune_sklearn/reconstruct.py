"""Reconstructions without an estimator: the problem, batched solves, and
:func:`reconstruct`, the public functional core the estimator, the
benchmarks and the tests share.
"""

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from ._validation import (check_data, check_mask, check_measurement_shape, check_weights,
                          resolve_components, resolve_device)
from .hypergradients import SolveOptions, restarted_solve
from .learning.adaptive import WeightAdaptation, adapted_weights
from .learning.data import batch_slices, to_measurements
from .learning.parameters import Theta, theta_from_values
from .operators import check_adjoint
from .solvers import ForwardBackward, StepParameters, make_solver

__all__ = ["Problem", "build_problem", "solve_batch", "reconstruct", "DTYPES"]

DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass
class Problem:
    """Everything a solve needs, resolved from the components and the data shapes.

    ``adaptation`` (None: fixed weights) makes the weights of each sample
    depend on its measurement (:mod:`retune_sklearn.learning.adaptive`).
    """

    model: ForwardBackward
    signal_shape: tuple
    measurement_shape: tuple
    device: torch.device
    dtype: torch.dtype
    lipschitz: float
    adaptation: Optional[WeightAdaptation] = None


def build_problem(operator, regularizer, signal_shape, X_shape, device="auto", dtype="float32",
                  *, lipschitz=None, adaptation=None):
    """Check the components on the shapes; resolve the device and ``L = ‖A W*‖²``.

    ``device`` and ``dtype`` take the estimator's values ("auto",
    "float32", ...). The adjoint dot test and the power iteration run
    unless ``lipschitz`` is given (a fitted model's).
    """
    signal_shape = tuple(signal_shape)
    operator.check_signal_shape(signal_shape)
    regularizer.check_signal_shape(signal_shape)
    measurement_shape = tuple(operator.measurement_shape(signal_shape))
    check_measurement_shape(X_shape, signal_shape, measurement_shape)
    model = ForwardBackward(operator, regularizer)
    device, dtype = resolve_device(device), DTYPES[dtype]
    check_dtype = torch.float64 if device.type == "cpu" else dtype
    if lipschitz is None:
        check_adjoint(operator, signal_shape, device=device, dtype=check_dtype)
    identity_gram = model.check_identity_gram(signal_shape, device=device, dtype=check_dtype)
    # Settings that depend on the model (TotalVariation(n_inner="auto")), on this copy.
    resolve_auto = getattr(regularizer, "resolve_auto", None)
    if resolve_auto is not None:
        resolve_auto(one_step=identity_gram)
    if lipschitz is None:
        # ‖A W*‖² = 1 exactly for an isometry (the power iteration's rounding would
        # make τ = 1 − 4e-16 and lose the one-step solve of StepMap.is_constant).
        lipschitz = 1.0 if identity_gram else model.lipschitz(signal_shape, device=device,
                                                              dtype=check_dtype)
        if not lipschitz > 0:
            raise ValueError("The operator is zero on these signals (‖A‖ = 0): nothing "
                             "can be reconstructed.")
    return Problem(model, signal_shape, measurement_shape, device, dtype, lipschitz,
                   adaptation)


def batch_weights(X_b, problem, theta):
    """The weights of the batch ``X_b``: θ's ``(G,)`` weights, or with an adaptive
    problem the ``(n, G)`` weights ``exp(θ_g) (s_i / s_ref)^{β_g}``."""
    if problem.adaptation is None or theta.exponents is None:
        return theta.weights
    log_ratio = problem.adaptation.log_ratio(X_b, problem.model.operator, problem.signal_shape)
    return adapted_weights(theta.log_weights, theta.exponents, log_ratio.to(problem.dtype))


def step_parameters(X_b, problem, theta):
    """θ and the batch ``X_b`` as the :class:`StepParameters` of ``φ_θ``."""
    return StepParameters(X_b.values, batch_weights(X_b, problem, theta),
                          theta.stepsize(problem.lipschitz, problem.dtype),
                          theta.network, X_b.mask,
                          problem.model.back_projection(X_b.values, X_b.mask))


def solve_batch(X_b, problem, theta, options, hypergradient="none", *, report=None,
                bank=None, return_map=False):
    """Coefficients of the solve of one batch (see :func:`restarted_solve`; with
    ``return_map``, also the map its last block iterated).

    With a ``bank`` (:class:`~retune_sklearn.learning.warm_start.IterateBank`)
    and indexed measurements, the solve starts from each sample's previous
    iterate (and inner state: TotalVariation's warm dual) and stores the new ones.
    """
    model = problem.model
    params = step_parameters(X_b, problem, theta)
    phi = model.step_map(params)
    start = model.initial_point(X_b.values, X_b.mask, params.back_projection)
    # A constant map's solve does not depend on its start: nothing to keep.
    use_bank = bank is not None and X_b.index is not None and not phi.is_constant
    inner = None
    if use_bank:
        start = bank.start(X_b.index, start)
        inner = bank.start_inner(X_b.index, start)
    u, last_map = restarted_solve(phi, start, options.K, options.T, hypergradient,
                                  tol=options.tol, solver=options.solver,
                                  implicit_tol=options.implicit_tol,
                                  implicit_max_iter=options.implicit_max_iter,
                                  implicit_solver=options.implicit_solver, report=report,
                                  return_map=True, inner=inner)
    if use_bank:  # the iterate, and the inner state the last block started from
        bank.store(X_b.index, u, getattr(last_map, "inner", None))
    return (u, last_map) if return_map else u


def reconstruct_into(out, X, mask, problem, solve, batch_size):
    """Fill ``out`` with ``solve(batch, chunk)`` (reconstructions of the samples
    ``chunk``, a slice) over chunks of ``X``; return how many samples are non-finite.

    Chunk by chunk (tensors and all) so that memory beyond the output is
    bounded by ``batch_size``, whatever ``len(X)``.
    """
    n_bad = 0
    with torch.no_grad():
        for chunk in batch_slices(len(X), batch_size):
            batch = to_measurements(X[chunk], None if mask is None else mask[chunk],
                                    problem.device, problem.dtype)
            x_hat = solve(batch, chunk)
            n_bad += int((~torch.isfinite(x_hat.flatten(1)).all(dim=1)).sum())
            out[chunk] = x_hat.cpu().numpy().reshape(out[chunk].shape)
    return n_bad


def reconstruct(X, operator, regularizer, weights, *, step_scale=1.0, network=None,
                signal_shape=None, mask=None, K=10, T=100, tol=1e-4, solver="fista",
                batch_size=32, device="cpu", dtype="float32", report=None):
    """Solve ``min_x ½‖A x − X_i‖² + Σ_g λ_g R_g(x)`` for every measurement ``X_i``.

    The same solve as :meth:`ReTuneRegularizer.transform`, with the weights
    given instead of learned.

    Parameters
    ----------
    X : array-like of shape (n_samples, *measurement_shape)
        Measurements.
    operator, regularizer : components or None
        As in :class:`~retune_sklearn.ReTuneRegularizer` (None: ``Identity()``
        and ``TotalVariation()``).
    weights : array-like of shape (n_weights,) or (n_samples, n_weights)
        The weights λ_g, in the order of ``regularizer.weight_names(signal_shape)``:
        shared by every sample, or one row per sample (e.g. per-image levels),
        read by the proxes as an ``(n, G)`` tensor without copies per sample.
    step_scale : float in (0, 2), default=1.0
        ``τ = step_scale / ‖A W*‖²``.
    network : dict of arrays or None
        The regularizer's own tensors (e.g. a fitted estimator's
        ``regularizer_params_``), for learned regularizers.
    signal_shape : tuple of int or None
        Shape of one signal; None means the shape of one measurement.
    mask : array-like of X's shape or None
        Per-sample 0/1 masks of the observed entries.
    K, T, tol, solver : see :class:`~retune_sklearn.ReTuneRegularizer`.
    batch_size : int, default=32
        Samples per solve.
    device, dtype : see :class:`~retune_sklearn.ReTuneRegularizer`.
    report : SolveReport or None
        If given, receives the iterations and residuals of each batch's solve.

    Returns
    -------
    ndarray of shape (n_samples, *signal_shape)
        The reconstructions, float32 for float32 ``X``, else float64.

    Examples
    --------
    >>> import numpy as np
    >>> from retune_sklearn.reconstruct import reconstruct
    >>> from retune_sklearn.regularizers import TotalVariation
    >>> X = np.random.default_rng(0).random((2, 16, 16))
    >>> reconstruct(X, "identity", TotalVariation(), [0.1]).shape
    (2, 16, 16)
    """
    X = check_data(X, "X")
    operator, regularizer = resolve_components(operator, regularizer)
    signal_shape = tuple(X.shape[1:]) if signal_shape is None else tuple(signal_shape)
    problem = build_problem(operator, regularizer, signal_shape, X.shape[1:], device, dtype)
    X = X.reshape(len(X), *problem.measurement_shape)
    mask = check_mask(mask, X)
    weights = check_weights(weights, regularizer.weight_names(problem.signal_shape), len(X))
    if network is None:
        network = regularizer.init_parameters(problem.signal_shape, torch.Generator())
    theta = theta_from_values(weights, step_scale, network, device=problem.device,
                              dtype=problem.dtype)
    options = SolveOptions(K, T, tol, make_solver(solver))
    out = np.empty((len(X), *problem.signal_shape),
                   dtype=X.dtype if X.dtype == np.float32 else np.float64)
    def solve(batch, chunk):
        rows = theta if theta.log_weights.dim() == 1 else Theta(
            theta.log_weights[chunk], theta.step_logit, theta.network)
        u = solve_batch(batch, problem, rows, options, report=report)
        return problem.model.regularizer.synthesis(u)
    n_bad = reconstruct_into(out, X, mask, problem, solve, batch_size)
    if n_bad:
        raise ValueError(f"{n_bad} of {len(X)} reconstructions are non-finite: check the "
                         "scale of X and of the weights, or use dtype='float64'.")
    return out
