"""The model-building steps of :class:`~retune_sklearn.ReTuneRegularizer`.

A mixin that turns the estimator's parameters into the explicit arguments
of the layers below (problem, θ, solve options, warm-start iterates) and
holds the overridable steps the training loop calls through closures:
``_build_problem``, ``_solve``, ``_batch_loss``, ``_validation_score``
(subclasses and tests replace them).
"""

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from ._validation import (check_continuable, check_continuable_adaptation, check_data_range,
                          check_fit_data, check_fitted_signals, check_implicit_solver,
                          check_init_weight, check_mask,
                          check_measurements, resolve_components, resolve_signal_shape)
from .contraction import (AUTO_DISTANCE, AUTO_K_MAX, auto_block_size_message,
                          choose_block_size, choose_solve_tol, estimate_contraction)
from .hypergradients import SolveOptions
from .learning.data import batch_slices, to_measurements, to_tensor
from .learning.adaptive import WeightAdaptation, reference_statistic
from .learning.losses import LOSSES
from .learning.initialization import search_common_exponent, search_common_scale
from .learning.parameters import Theta, initial_theta, noise_scale, theta_from_values
from .learning.warm_start import IterateBank, NearestStarts
from .metrics import psnr_per_sample
from .reconstruct import build_problem, solve_batch
from .solvers import make_solver, relative_residual

__all__ = []

#: Lanczos iterations of the contraction estimates of a fit (each one ``Jv`` + ``Jᵀw``).
CONTRACTION_ITER = 20
#: ``K`` and ``solve_tol`` of the solve that measures the contraction for ``"auto"``.
PROVISIONAL_K, PROVISIONAL_SOLVE_TOL = 10, 1e-4


@dataclass(frozen=True)
class SolveChoices:
    """``K`` and ``solve_tol`` of one fit (``"auto"`` resolved), and what the
    ``"auto"`` rules measured (None for a value given by the user)."""

    K: int
    tol: Optional[float]
    K_selection: Optional[dict] = None
    tol_selection: Optional[dict] = None


class ModelSteps:
    """Parameters → problem, θ and solves (mixed into the estimator)."""

    def _prepare_data(self, X, y, mask=None, *, fitted_layout=False):
        """Validate the data and build the problem; return arrays, problem and tensors.

        ``X`` is returned in the operator's measurement shape and ``y`` as
        given; the tensors hold (indexed) measurements and structured
        signals. With ``fitted_layout``, the data must have the fitted
        layout and the fitted problem is used (``partial_fit``).
        """
        X, y = check_fit_data(X, y)
        check_data_range(y, self.data_range)
        if fitted_layout:
            X = check_measurements(X, self.measurement_shape_, self.n_features_in_)
            check_fitted_signals(y, self._y_sample_shape)
            problem = self._fitted_problem()
        else:
            problem = self._build_problem(resolve_signal_shape(self.signal_shape, y),
                                          X.shape[1:])
        # Flat layouts are allowed; the model works on the structured shapes.
        X = X.reshape(len(X), *problem.measurement_shape)
        mask = check_mask(mask, X)
        y_signals = y.reshape(len(y), *problem.signal_shape)
        X_t = to_measurements(X, mask, problem.device, problem.dtype, indexed=True)
        return X, y, problem, X_t, to_tensor(y_signals, problem.device, problem.dtype)

    def _fitted_problem(self):
        """The problem of the fitted estimator, on the current ``device``."""
        return build_problem(self.operator_, self.regularizer_, self.signal_shape_,
                             self.measurement_shape_, self.device, self.dtype,
                             lipschitz=self.lipschitz_, adaptation=self._fitted_adaptation())

    def _fitted_adaptation(self):
        """The fitted statistic and reference of an adaptive model (None: fixed weights)."""
        statistic = getattr(self, "adaptive_statistic_", None)
        return None if statistic is None else WeightAdaptation(statistic,
                                                               self.statistic_reference_)

    def _adapt_problem(self, problem, X_t, continued):
        """Set ``problem.adaptation`` for a fit: ``adaptive_weights`` with the median
        statistic of ``X_t`` as reference, or the fitted one when the fit continues."""
        if continued:
            check_continuable_adaptation(getattr(self, "adaptive_statistic_", None),
                                         self.adaptive_weights)
            problem.adaptation = self._fitted_adaptation()
        elif self.adaptive_weights is not None:
            problem.adaptation = WeightAdaptation(self.adaptive_weights, reference_statistic(
                self.adaptive_weights, X_t, problem.model.operator, problem.signal_shape,
                self.batch_size))
        return problem

    def _fitted_theta(self, problem):
        return theta_from_values(self.weights_, self.step_scale_, self.regularizer_params_,
                                 getattr(self, "weight_exponents_", None),
                                 device=problem.device, dtype=problem.dtype)

    def _initial_exponents(self, n_weights):
        """β at the start of a fit (before the scale search): 0, the fixed-weight
        model, one per weight; None without ``adaptive_weights``."""
        return None if self.adaptive_weights is None else np.zeros(n_weights)

    def _initial_theta(self, X_t, y_t, problem):
        """θ at the start of a fit: ``init_weight`` (or "auto") and a fresh network."""
        regularizer = problem.model.regularizer
        names = regularizer.weight_names(problem.signal_shape)
        if isinstance(self.init_weight, str):  # "auto"
            init = np.full(len(names), 0.1 * noise_scale(X_t, y_t, problem.model.operator))
        else:
            init = check_init_weight(self.init_weight, names)
        try:
            return initial_theta(init, self.step_scale, regularizer, problem.signal_shape,
                                 self.random_state, self._initial_exponents(len(names)),
                                 device=problem.device, dtype=problem.dtype)
        except OverflowError:
            raise ValueError(f"init_weight={self.init_weight!r} over- or underflows in "
                             f"dtype={self.dtype!r}; rescale X and y or use float64.") from None

    def _search_initial_scale(self, theta, X_t, y_t, problem):
        """Multiply θ's weights, in place, by the common factor with the lowest
        training loss on one batch (evenly spaced samples), then (adaptive
        weights) set every exponent to the common value of lowest loss there;
        return the factor."""
        # At most len(X_t) points: batch_size may be far larger than the data.
        size = min(self.batch_size, len(X_t))
        batch = torch.as_tensor(np.unique(np.linspace(0, len(X_t) - 1, size).astype(int)),
                                device=X_t.device)
        X_b, y_b = X_t[batch], y_t[batch]
        # Each solve starts from the solutions at the nearest point evaluated (valid only
        # for solves to a tolerance, as the iterate bank of training).
        starts = (NearestStarts(int(X_b.index.max()) + 1)
                  if self._reuses_iterates() and X_b.index is not None else None)

        def loss_at(log_weights, exponents=theta.exponents):
            trial = Theta(log_weights, theta.step_logit, theta.network, exponents)
            point = log_weights if exponents is None else torch.cat([log_weights, exponents])
            bank = None if starts is None else starts.bank_near(point)
            return self._batch_loss(X_b, y_b, problem, trial, "none", bank=bank)
        factor, _ = search_common_scale(loss_at, theta.log_weights.detach())
        with torch.no_grad():
            theta.log_weights.add_(math.log(factor))
        if theta.exponents is not None:
            exponent, _ = search_common_exponent(
                lambda exponents: loss_at(theta.log_weights.detach(), exponents),
                theta.exponents.detach())
            with torch.no_grad():
                theta.exponents.fill_(exponent)
        return factor

    def _continued_theta(self, problem, initial):
        """The fitted θ, checked against the ``initial`` one of ``problem``."""
        check_continuable(self.weight_names_,
                          {k: v.shape for k, v in self.regularizer_params_.items()},
                          problem.model.regularizer.weight_names(problem.signal_shape),
                          {k: tuple(v.shape) for k, v in initial.network.items()})
        return self._fitted_theta(problem)

    def _solve_options(self, K=None):
        choices = self._solve_choices()
        return self._options(choices.K if K is None else K, choices.tol)

    def _options(self, K, tol):
        return SolveOptions(int(K), int(self.T), tol, make_solver(self.solver),
                            self.implicit_tol, int(self.implicit_max_iter),
                            self.implicit_solver)

    def _solve_choices(self):
        """``K`` and ``solve_tol``, resolved: an ``"auto"`` one reads the choice of the
        running fit (or ``compute_hypergradient`` call), else the fitted one."""
        if self.K != "auto" and self.solve_tol != "auto":
            return SolveChoices(int(self.K), self.solve_tol)
        running = getattr(getattr(self, "_session", None), "choices", None)
        running = running or getattr(self, "_choices", None)
        if running is None:
            if not hasattr(self, "K_"):
                raise RuntimeError("K='auto' and solve_tol='auto' are resolved by fit; this "
                                   "estimator is not fitted.")
            running = SolveChoices(self.K_, self.solve_tol_)
        return SolveChoices(running.K if self.K == "auto" else int(self.K),
                            running.tol if self.solve_tol == "auto" else self.solve_tol)

    def _fitted_choices(self):
        """The fitted :class:`SolveChoices` that ``partial_fit`` keeps, or None if an
        ``"auto"`` setting has no fitted choice (it is measured anew)."""
        auto_K, auto_tol = self.K == "auto", self.solve_tol == "auto"
        K_selection = getattr(self, "K_selection_", None) if auto_K else None
        tol_selection = getattr(self, "solve_tol_selection_", None) if auto_tol else None
        if (auto_K and K_selection is None) or (auto_tol and tol_selection is None):
            return None
        return SolveChoices(self.K_ if auto_K else int(self.K),
                            self.solve_tol_ if auto_tol else self.solve_tol,
                            K_selection, tol_selection)

    def _choose_solve_settings(self, X_t, problem, theta):
        """:class:`SolveChoices` of this fit: ``K`` and ``solve_tol``, with what
        their ``"auto"`` rules measured.

        Both rules read the contraction factor ``ρ`` of one step at the
        initial weights, at the end of a solve of up to ``batch_size``
        training samples (restarted blocks of a provisional ``K = 10``, to
        ``solve_tol`` or a provisional 1e-4). ``K="auto"``: the smallest
        ``K`` with ``ρ^K ≤ auto_K_target``, in ``[1, AUTO_K_MAX]`` (else
        ``AUTO_K_FALLBACK``, the default 10).
        ``solve_tol="auto"``: ``AUTO_DISTANCE · (1 − ρ)``, the residual at
        which the solves are within ``AUTO_DISTANCE`` of the equilibrium.
        """
        auto_K, auto_tol = self.K == "auto", self.solve_tol == "auto"
        K = PROVISIONAL_K if auto_K else int(self.K)
        tol = PROVISIONAL_SOLVE_TOL if auto_tol else self.solve_tol
        if not (auto_K or auto_tol):
            return SolveChoices(K, tol)
        _, estimate = self._equilibrium_diagnostics(X_t[: self.batch_size], problem, theta,
                                                    self._options(K, tol), None, block=False)
        rho, K_selection, tol_selection = estimate.step, None, None
        if auto_K:
            K = choose_block_size(rho, self.auto_K_target, AUTO_K_MAX)
            K_selection = {"initial_contraction": rho, "target": self.auto_K_target, "K": K,
                           "bound": None if rho is None else rho ** K,
                           "status": estimate.status}
            K_selection["fallback"] = auto_block_size_message(K_selection)
        if auto_tol:
            tol, distance = choose_solve_tol(rho, problem.dtype)
            tol_selection = {"initial_contraction": rho, "target_distance": AUTO_DISTANCE,
                             "solve_tol": tol, "guaranteed_distance": distance,
                             "status": estimate.status}
        return SolveChoices(K, tol, K_selection, tol_selection)

    def _equilibrium_diagnostics(self, X_b, problem, theta, options, report, block=True):
        """Per-sample relative residual at the end of a (no-grad) solve of ``X_b``,
        and the :class:`~retune_sklearn.contraction.ContractionEstimate` there (of
        one step only with ``block=False``: the K-block's estimate costs about as
        much again)."""
        with torch.no_grad():
            u, phi = solve_batch(X_b, problem, theta, options, report=report, return_map=True)
        residual = relative_residual(phi, u)
        return residual, estimate_contraction(phi, u, options.K if block else 1,
                                              n_iter=CONTRACTION_ITER)

    def _reuses_iterates(self):
        """Whether solves may start from earlier solutions: only solves to a
        tolerance reach the same equilibrium from any start."""
        return bool(self.reuse_iterates) and self.solve_tol is not None

    def _iterate_bank_for(self, n_samples, proceed):
        """The warm-start iterates of this fit: kept by ``partial_fit``, new for ``fit``;
        None without ``reuse_iterates`` or ``solve_tol`` (a fixed-budget solve
        must start from the back-projection every time)."""
        if not self._reuses_iterates():
            return None
        bank = getattr(self, "_iterate_bank", None) if proceed else None
        return bank if bank is not None and bank.n_samples == n_samples else IterateBank(n_samples)

    # Overridable steps: subclasses (and tests) replace these methods.
    def _build_problem(self, y_shape, X_shape):
        """Resolve components, shapes, device and the Lipschitz constant."""
        operator, regularizer = resolve_components(self.operator, self.regularizer)
        check_implicit_solver(self.implicit_solver, self.hypergradient, regularizer)
        return build_problem(operator, regularizer, y_shape, X_shape, self.device, self.dtype)

    def _solve(self, X_b, problem, theta, hypergradient, bank=None):
        """Reconstruct a batch (see ``K``, ``T``, ``solve_tol``), then ``W* u``; the
        solves start from ``bank``, or in training from the fit's iterate bank."""
        session = getattr(self, "_session", None)
        if bank is None and session is not None and hypergradient != "none":
            bank = session.bank
        u = solve_batch(X_b, problem, theta, self._solve_options(), hypergradient,
                        report=None if session is None else session.report, bank=bank)
        return problem.model.regularizer.synthesis(u)

    def _batch_loss(self, X_b, y_b, problem, theta, hypergradient, bank=None):
        """Training loss of a batch (see ``loss``), divided by the loss scale of the fit."""
        session = getattr(self, "_session", None)
        scale = 1.0 if session is None else session.loss_scale
        return LOSSES[self.loss](self._solve(X_b, problem, theta, hypergradient, bank),
                                 y_b) / scale

    def _validation_score(self, X_val, y_val, problem, theta):
        """Mean PSNR (dB) of the reconstructions of the held-out samples."""
        with torch.no_grad():
            reconstructions = torch.cat([self._solve(X_val[chunk], problem, theta, "none")
                                         for chunk in batch_slices(len(X_val), self.batch_size)])
        return float(np.mean(psnr_per_sample(y_val.cpu().numpy(), reconstructions.cpu().numpy(),
                                             data_range=self.data_range)))
