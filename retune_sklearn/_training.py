"""Training machinery of :class:`~retune_sklearn.ReTuneRegularizer`.

The learnable parameters (:class:`Theta`), the resolved problem
(:class:`Problem`), batched solves and the Adam epoch loop with its
divergence, ``KeyboardInterrupt`` and early-stopping handling. Functions
that need several hyperparameters receive the estimator; the loop calls
its ``_solve``, ``_batch_loss`` and ``_validation_score`` methods through
it, so that subclasses (and tests) can replace them.
"""

import logging
import math
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state

from ._validation import (check_continuable, check_fit_data, check_fitted_signals,
                          check_init_weight, check_mask, check_measurement_shape,
                          check_measurements, resolve_device, resolve_signal_shape)
from .metrics import psnr_per_sample
from .operators import check_adjoint
from .solvers import ForwardBackward, relative_residual, restarted_solve

try:  # progress bars are optional: without tqdm, verbose=1 prints plain lines
    from tqdm.auto import tqdm
except ImportError:  # pragma: no cover - exercised by monkeypatching tqdm to None
    tqdm = None

DTYPES = {"float32": torch.float32, "float64": torch.float64}

_LOGGER = logging.getLogger("retune_sklearn")


@contextmanager
def torch_threads(n_threads):
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


class Progress:
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
            self._log(epoch, loss, validation_psnr, weights)

    def _log(self, epoch, loss, validation_psnr, weights):
        validation = "" if validation_psnr is None else f" validation_psnr={validation_psnr:.4f}"
        shown = ", ".join(f"{n}={w:.4g}" for n, w in zip(self.weight_names, weights))
        _LOGGER.info("epoch %d/%d loss=%.6g%s weights: %s", epoch + 1, self.n_epochs, loss,
                     validation, shown)

    def close(self):
        if self.bar is not None:
            self.bar.close()


@dataclass
class Theta:
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
        return Theta(self.log_weights.detach().clone(), self.step_logit.detach().clone(),
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


class Diverged(Exception):
    """Raised inside the training loop when a loss, gradient or weight is not finite."""


@dataclass
class Measurements:
    """A batch of measurements and, if given, their per-sample 0/1 masks.

    Indexing along the sample axis slices both, so the training loop handles
    masked and unmasked data alike.
    """

    values: torch.Tensor
    mask: Optional[torch.Tensor] = None

    def __len__(self):
        return len(self.values)

    def __getitem__(self, index):
        return Measurements(self.values[index], None if self.mask is None else self.mask[index])

    @property
    def device(self):
        return self.values.device


@dataclass
class Problem:
    """Everything a solve needs, resolved from the parameters and the data."""

    model: ForwardBackward
    signal_shape: tuple
    measurement_shape: tuple
    device: torch.device
    dtype: torch.dtype
    lipschitz: float


# ----------------------------------------------------------------- problem and data
def build_problem(operator, regularizer, signal_shape, X_shape, device, dtype):
    """Check the components on the shapes; resolve the device and the Lipschitz constant.

    ``device`` and ``dtype`` are the estimator's parameters ("auto",
    "float32", ...).
    """
    signal_shape = tuple(signal_shape)
    operator.check_signal_shape(signal_shape)
    regularizer.check_signal_shape(signal_shape)
    measurement_shape = tuple(operator.measurement_shape(signal_shape))
    check_measurement_shape(X_shape, signal_shape, measurement_shape)
    model = ForwardBackward(operator, regularizer)
    device, dtype = resolve_device(device), DTYPES[dtype]
    check_dtype = torch.float64 if device.type == "cpu" else dtype
    check_adjoint(operator, signal_shape, device=device, dtype=check_dtype)
    lipschitz = model.lipschitz(signal_shape, device=device, dtype=check_dtype)
    if not lipschitz > 0:
        raise ValueError("The operator is zero on these signals (‖A‖ = 0): nothing "
                         "can be reconstructed.")
    return Problem(model, signal_shape, measurement_shape, device, dtype, lipschitz)


def fitted_problem(est):
    """The problem of the fitted estimator ``est``, on its current device."""
    model = ForwardBackward(est.operator_, est.regularizer_)
    return Problem(model, est.signal_shape_, est.measurement_shape_,
                   resolve_device(est.device), DTYPES[est.dtype], est.lipschitz_)


def to_tensor(array, problem):
    # torch wants writable memory (it warns on read-only arrays): copy those.
    array = np.require(array, requirements=["C", "W"])
    return torch.as_tensor(array, device=problem.device).to(problem.dtype)


def to_measurements(X, mask, problem):
    """Measurements (and masks, possibly None) as tensors of the problem."""
    return Measurements(to_tensor(X, problem), None if mask is None else to_tensor(mask, problem))


def prepare_data(est, X, y, mask=None, *, fitted_layout=False):
    """Validate the data and build the problem; return arrays, problem and tensors.

    ``X`` is returned in the operator's measurement shape and ``y`` as
    given; the tensors hold measurements and structured signals. With
    ``fitted_layout``, the data must have the fitted layout and the
    fitted problem is used (``partial_fit`` on a fitted estimator).
    The problem is built by ``est._build_problem``.
    """
    X, y = check_fit_data(X, y)
    if fitted_layout:
        X = check_measurements(X, est.measurement_shape_, est.n_features_in_)
        check_fitted_signals(y, est._y_sample_shape)
        problem = fitted_problem(est)
    else:
        problem = est._build_problem(resolve_signal_shape(est.signal_shape, y), X.shape[1:])
    # Flat layouts are allowed; the model works on the structured shapes.
    X = X.reshape(len(X), *problem.measurement_shape)
    mask = check_mask(mask, X)
    y_signals = y.reshape(len(y), *problem.signal_shape)
    return X, y, problem, to_measurements(X, mask, problem), to_tensor(y_signals, problem)


def batch_slices(n_samples, batch_size):
    """Consecutive slices of at most ``batch_size`` covering ``range(n_samples)``."""
    return [slice(start, start + batch_size) for start in range(0, n_samples, batch_size)]


def validation_split(n_samples, validation_fraction, random_state):
    """Indices of the training and validation samples (``early_stopping``)."""
    try:
        return train_test_split(np.arange(n_samples), test_size=validation_fraction,
                                random_state=random_state)
    except ValueError as error:
        raise ValueError(f"early_stopping=True cannot hold out validation_fraction="
                         f"{validation_fraction} of {n_samples} samples: {error}") from None


# ------------------------------------------------------------------------ parameters
def step_logit(step_scale, problem):
    p = torch.tensor(step_scale / 2, dtype=problem.dtype, device=problem.device)
    return torch.log(p) - torch.log1p(-p)


def fitted_theta(est, problem):
    """The fitted parameters of ``est`` as tensors on the problem's device and dtype."""
    def tensor(value):
        return torch.as_tensor(value, dtype=problem.dtype, device=problem.device)
    return Theta(tensor(np.log(est.weights_)), step_logit(est.step_scale_, problem),
                 {k: tensor(v) for k, v in est.regularizer_params_.items()})


def initial_theta(est, X_t, y_t, problem):
    """Initial parameters θ (leaf tensors) from ``est.init_weight`` and ``est.random_state``."""
    names = problem.model.regularizer.weight_names(problem.signal_shape)
    if isinstance(est.init_weight, str):  # "auto"
        init = np.full(len(names), 0.1 * _noise_scale(X_t, y_t, problem))
    else:
        init = check_init_weight(est.init_weight, names)
    log_weights = torch.as_tensor(np.log(init), dtype=problem.dtype, device=problem.device)
    weights = log_weights.exp()
    if not (torch.isfinite(weights).all() and (weights > 0).all()):
        raise ValueError(f"init_weight={est.init_weight!r} over- or underflows in "
                         f"dtype={est.dtype!r}; rescale X and y or use float64.")
    generator = torch.Generator().manual_seed(
        int(check_random_state(est.random_state).randint(2**31 - 1)))
    network = problem.model.regularizer.init_parameters(problem.signal_shape, generator)
    network = {k: v.to(dtype=problem.dtype, device=problem.device) for k, v in network.items()}
    return Theta(log_weights.clone(), step_logit(est.step_scale, problem), network)


def _noise_scale(X_t, y_t, problem):
    """Standard deviation of ``X − A y`` (observed entries only), with a floor."""
    with torch.no_grad():
        residual = X_t.values - problem.model.operator.forward(y_t)
        if X_t.mask is not None:  # the noise of the observed entries only
            residual = residual[X_t.mask > 0]
        noise_std = float(residual.std()) if residual.numel() > 1 else 0.0
    return noise_std if noise_std > 0 else 1e-3 * max(float(y_t.std()), 1e-3)


def continued_theta(est, problem, initial):
    """The fitted parameters of ``est``, checked against the ``initial`` ones of ``problem``."""
    check_continuable(est.weight_names_, {k: v.shape for k, v in est.regularizer_params_.items()},
                      problem.model.regularizer.weight_names(problem.signal_shape),
                      {k: tuple(v.shape) for k, v in initial.network.items()})
    return fitted_theta(est, problem)


# ------------------------------------------------------------------------- optimizer
def learnable_key(learn_weights, learn_step_size, parameters):
    """What an Adam state belongs to: which tensors, of which shapes."""
    return (learn_weights, learn_step_size, tuple(tuple(p.shape) for p in parameters))


def make_optimizer(parameters, learning_rate, key, stored=None):
    """Adam on ``parameters`` (None if empty), from the ``stored`` state if its key is ``key``."""
    if not parameters:
        return None
    for p in parameters:
        p.requires_grad_(True)
    optimizer = torch.optim.Adam(parameters, lr=learning_rate)
    if stored is not None and stored["key"] == key:
        optimizer.load_state_dict(stored["state"])  # moves the moments to the device
        for group in optimizer.param_groups:  # a changed learning_rate applies
            group["lr"] = learning_rate
    return optimizer


def optimizer_state(optimizer, key):
    """Adam's state with CPU tensors (picklable and device-free), or None."""
    if optimizer is None:
        return None
    state = optimizer.state_dict()
    state["state"] = {i: {k: v.detach().cpu().clone() if torch.is_tensor(v) else v
                          for k, v in moments.items()}
                      for i, moments in state["state"].items()}
    return {"key": key, "state": state}


# ---------------------------------------------------------------------------- solves
def step_map(X_b, problem, theta):
    """The map ``u -> φ_θ(u)`` for the measurements ``X_b``."""
    model = problem.model
    weights = theta.log_weights.exp()
    stepsize = 2 * torch.sigmoid(theta.step_logit) / problem.lipschitz

    def step(u):
        return model.step(u, X_b.values, weights, stepsize, theta.network, X_b.mask)
    return step


def solve(est, X_b, problem, theta, hypergradient):
    """Reconstruct a batch: ``est.T`` blocks of ``est.K`` steps, then ``W* u``."""
    model = problem.model
    u = restarted_solve(step_map(X_b, problem, theta), model.initial_point(X_b.values, X_b.mask),
                        est.K, est.T, hypergradient, implicit_tol=est.implicit_tol,
                        implicit_max_iter=est.implicit_max_iter)
    return model.regularizer.synthesis(u)


def batch_loss(reconstruction, y_b, loss):
    """The training loss ``loss`` ("mse" or "psnr") of a batch of reconstructions."""
    if loss == "mse":
        return torch.mean((reconstruction - y_b) ** 2)
    per_sample = (reconstruction - y_b).flatten(1).pow(2).mean(dim=1)
    # 10 log10 MSE_i is minus the PSNR up to a constant (the data range).
    return torch.mean(10 * torch.log10(per_sample.clamp_min(torch.finfo(per_sample.dtype).tiny)))


def fixed_point_residual(X_t, problem, theta, K, T):
    """Mean relative fixed-point residual after ``T * K`` steps."""
    with torch.no_grad():
        step = step_map(X_t, problem, theta)
        u = restarted_solve(step, problem.model.initial_point(X_t.values, X_t.mask), K, T,
                            "none")
        return float(relative_residual(step, u).mean())


def reconstruct(est, X, mask, problem, theta, out):
    """Fill ``out`` with the reconstructions of ``X``; return how many are non-finite.

    Chunk by chunk (tensors and all) so that memory beyond the output is
    bounded by ``est.batch_size``, whatever ``len(X)``.
    """
    n_bad = 0
    with torch.no_grad():
        for chunk in batch_slices(len(X), est.batch_size):
            batch = to_measurements(X[chunk], None if mask is None else mask[chunk], problem)
            x_hat = est._solve(batch, problem, theta, "none")
            n_bad += int((~torch.isfinite(x_hat.flatten(1)).all(dim=1)).sum())
            out[chunk] = x_hat.cpu().numpy().reshape(out[chunk].shape)
    return n_bad


def validation_psnr(est, X_val, y_val, problem, theta):
    """Mean PSNR (dB) of the reconstructions of the held-out samples."""
    with torch.no_grad():
        reconstructions = torch.cat([est._solve(X_val[chunk], problem, theta, "none")
                                     for chunk in batch_slices(len(X_val), est.batch_size)])
    return float(np.mean(psnr_per_sample(y_val.cpu().numpy(), reconstructions.cpu().numpy(),
                                         data_range=est.data_range)))


def accumulate_hypergradient(est, X_t, y_t, problem, theta, hypergradient):
    """Backpropagate the loss averaged over all samples, chunk by chunk, into ``theta``."""
    for chunk in batch_slices(len(X_t), est.batch_size):
        loss = est._batch_loss(X_t[chunk], y_t[chunk], problem, theta, hypergradient)
        (loss * len(X_t[chunk]) / len(X_t)).backward()


# ---------------------------------------------------------------------------- epochs
@dataclass
class _History:
    """The losses and validation scores so far, and the best epoch's parameters.

    The score of an epoch is its validation PSNR, or minus its training loss
    without validation.
    """

    best_theta: Theta
    best_score: float = -math.inf
    loss_curve: list = field(default_factory=list)
    scores: list = field(default_factory=list)
    no_improvement: int = 0

    def record_score(self, score, theta, tol, validated):
        if validated:
            self.scores.append(score)
            self.no_improvement = self.no_improvement + 1 if score < self.best_score + tol else 0
        if score > self.best_score:
            self.best_score, self.best_theta = score, theta.detached_copy()


def train(est, X_t, y_t, problem, theta, optimizer, n_epochs, validation=None, *, bar=True):
    """Adam epochs on the learnable parameters of ``theta`` (updated in place).

    Returns the loss of each epoch, the validation PSNR of each epoch
    (empty without ``validation``) and whether training ended normally.
    With ``validation = (X_val, y_val)``, training stops early (see
    ``early_stopping``) and ends with the parameters of the best epoch.
    On divergence or ``KeyboardInterrupt`` the parameters of the best
    epoch so far (the initial ones if no epoch finished) are restored,
    with a warning, and ``converged`` is False.

    Called by ``est.fit``/``est.partial_fit`` through ``est._fit``: the
    warnings' ``stacklevel`` points at the user's call.
    """
    if optimizer is None:
        return [], [], True
    history = _History(theta.detached_copy())
    progress = Progress(est.verbose, n_epochs,
                        problem.model.regularizer.weight_names(problem.signal_shape), bar=bar)
    try:
        _run_epochs(est, X_t, y_t, problem, theta, optimizer, n_epochs, validation, history,
                    progress)
        if validation is not None:
            theta.restore(history.best_theta)
        return history.loss_curve, history.scores, True
    except Diverged as error:
        warnings.warn(f"ReTuneRegularizer diverged at epoch {len(history.loss_curve) + 1}: "
                      f"{error}. The weights of the best epoch so far were restored and "
                      f"converged_ is False. Lower learning_rate (now {est.learning_rate:g}) or "
                      f"step_scale (now {est.step_scale:g}), or rescale X and y.",
                      ConvergenceWarning, stacklevel=4)
    except KeyboardInterrupt:
        # As skorch does: Ctrl-C ends training, not the fit, so that hours of
        # training are not thrown away.
        warnings.warn(f"ReTuneRegularizer.fit interrupted (KeyboardInterrupt) during "
                      f"epoch {len(history.loss_curve) + 1}/{n_epochs}; keeping the "
                      "weights of the best epoch so far (converged_ is False).",
                      UserWarning, stacklevel=4)
    finally:
        progress.close()
    theta.restore(history.best_theta)
    return history.loss_curve, history.scores, False


def _run_epochs(est, X_t, y_t, problem, theta, optimizer, n_epochs, validation, history,
                progress):
    """The epochs of :func:`train`, recorded in ``history``; may raise ``Diverged``."""
    rng = check_random_state(est.random_state)
    for epoch in range(n_epochs):
        order = rng.permutation(len(X_t)) if est.shuffle else np.arange(len(X_t))
        epoch_loss = _train_epoch(est, X_t, y_t, problem, theta, optimizer, order)
        # Recorded before the validation solves: an interruption there still
        # counts this epoch.
        history.loss_curve.append(epoch_loss)
        validation_score = (None if validation is None
                            else est._validation_score(*validation, problem, theta))
        history.record_score(-epoch_loss if validation is None else validation_score, theta,
                             est.tol, validated=validation is not None)
        progress.epoch(epoch, epoch_loss, validation_score,
                       theta.log_weights.detach().exp().tolist())
        if history.no_improvement >= est.n_iter_no_change:
            break


def _train_epoch(est, X_t, y_t, problem, theta, optimizer, order):
    """Adam steps over one pass of ``order``; returns the mean batch loss.

    Raises ``Diverged`` before a non-finite loss or gradient reaches the
    weights (or Adam's moments), and when a weight over- or underflows.
    """
    parameters = optimizer.param_groups[0]["params"]
    total = 0.0
    for chunk in batch_slices(len(order), est.batch_size):
        batch = torch.as_tensor(order[chunk], device=X_t.device)
        optimizer.zero_grad()
        loss = est._batch_loss(X_t[batch], y_t[batch], problem, theta, est.hypergradient)
        if not torch.isfinite(loss):
            raise Diverged(f"the training loss became {float(loss.detach())}")
        loss.backward()
        if not all(torch.isfinite(p.grad).all() for p in parameters):
            raise Diverged("the hypergradient became non-finite")
        optimizer.step()
        if not theta.all_finite():
            extreme = float(theta.log_weights.detach().abs().max())
            raise Diverged(f"the weights over- or underflowed (a log-weight reached "
                           f"±{extreme:.3g})")
        total += float(loss.detach()) * len(batch)
    return total / len(order)
