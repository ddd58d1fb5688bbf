"""The Adam epoch loop, with divergence, ``KeyboardInterrupt`` and early stopping.

:func:`train` takes what it runs as arguments: a batch loss, an optional
validation score and :class:`LoopOptions`; it reads no estimator.
"""

import math
import warnings
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state

from .data import batch_slices
from .progress import Progress

__all__ = ["LoopOptions", "train", "Diverged"]


@dataclass
class LoopOptions:
    """The estimator's parameters that the epoch loop uses."""

    n_epochs: int
    batch_size: int
    shuffle: bool = True
    random_state: object = None
    tol: float = 1e-4
    n_iter_no_change: int = 5
    verbose: int = 0
    weight_names: list = field(default_factory=list)
    #: Named in the divergence warning's advice.
    learning_rate: float = 0.05
    step_scale: float = 1.0
    progress_bar: bool = True


class Diverged(Exception):
    """Raised inside the training loop when a loss, gradient or weight is not finite."""


@dataclass
class _History:
    """The losses and validation scores so far, and the best epoch's parameters.

    The score of an epoch is its validation PSNR, or minus its training loss
    without validation.
    """

    best_theta: object
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


def train(batch_loss: Callable, X_t, y_t, theta, optimizer, options: LoopOptions,
          validation_score: Optional[Callable] = None):
    """Adam epochs on the learnable parameters of ``theta`` (updated in place).

    ``batch_loss(X_b, y_b)`` returns the differentiable loss of a batch
    (``X_t[i]``, ``y_t[i]`` for a tensor of indices ``i``) at the current
    ``theta``; ``validation_score()`` the validation PSNR at the current
    ``theta`` (then training stops early, see ``early_stopping``, and ends
    with the parameters of the best epoch).

    Returns the loss of each epoch, the validation score of each epoch
    (empty without validation) and whether training ended normally. On
    divergence or ``KeyboardInterrupt`` the parameters of the best epoch so
    far (the initial ones if no epoch finished) are restored, with a
    warning, and ``converged`` is False. The warnings' ``stacklevel`` points
    at the user's ``fit`` call (estimator → ``_fit`` → here).
    """
    if optimizer is None:
        return [], [], True
    history = _History(theta.detached_copy())
    progress = Progress(options.verbose, options.n_epochs, options.weight_names,
                        bar=options.progress_bar)
    try:
        _run_epochs(batch_loss, X_t, y_t, theta, optimizer, options, validation_score,
                    history, progress)
        if validation_score is not None:
            theta.restore(history.best_theta)
        return history.loss_curve, history.scores, True
    except Diverged as error:
        warnings.warn(f"ReTuneRegularizer diverged at epoch {len(history.loss_curve) + 1}: "
                      f"{error}. The weights of the best epoch so far were restored and "
                      f"converged_ is False. Lower learning_rate (now {options.learning_rate:g})"
                      f" or step_scale (now {options.step_scale:g}), or rescale X and y.",
                      ConvergenceWarning, stacklevel=4)
    except KeyboardInterrupt:
        # As skorch does: Ctrl-C ends training, not the fit, so that hours of
        # training are not thrown away.
        warnings.warn(f"ReTuneRegularizer.fit interrupted (KeyboardInterrupt) during "
                      f"epoch {len(history.loss_curve) + 1}/{options.n_epochs}; keeping the "
                      "weights of the best epoch so far (converged_ is False).",
                      UserWarning, stacklevel=4)
    finally:
        progress.close()
    theta.restore(history.best_theta)
    return history.loss_curve, history.scores, False


def _run_epochs(batch_loss, X_t, y_t, theta, optimizer, options, validation_score, history,
                progress):
    """The epochs of :func:`train`, recorded in ``history``; may raise ``Diverged``."""
    rng = check_random_state(options.random_state)
    for epoch in range(options.n_epochs):
        order = rng.permutation(len(X_t)) if options.shuffle else np.arange(len(X_t))
        epoch_loss = _train_epoch(batch_loss, X_t, y_t, theta, optimizer, order,
                                  options.batch_size)
        # Recorded before the validation solves: an interruption there still
        # counts this epoch.
        history.loss_curve.append(epoch_loss)
        score = None if validation_score is None else validation_score()
        history.record_score(-epoch_loss if score is None else score, theta, options.tol,
                             validated=score is not None)
        progress.epoch(epoch, epoch_loss, score, theta.weights.detach().tolist())
        if history.no_improvement >= options.n_iter_no_change:
            break


def _train_epoch(batch_loss, X_t, y_t, theta, optimizer, order, batch_size):
    """Adam steps over one pass of ``order``; returns the mean batch loss.

    Raises ``Diverged`` before a non-finite loss or gradient reaches the
    weights (or Adam's moments), and when a weight over- or underflows.
    """
    parameters = optimizer.param_groups[0]["params"]
    total = 0.0
    for chunk in batch_slices(len(order), batch_size):
        batch = torch.as_tensor(order[chunk], device=X_t.device)
        optimizer.zero_grad()
        loss = batch_loss(X_t[batch], y_t[batch])
        if not torch.isfinite(loss):
            raise Diverged(f"the training loss became {float(loss.detach())}")
        loss.backward()
        if not all(torch.isfinite(p.grad).all() for p in parameters):
            raise Diverged("the hypergradient became non-finite")
        _adam_step(optimizer)
        if not theta.all_finite():
            extreme = float(theta.log_weights.detach().abs().max())
            raise Diverged(f"the weights over- or underflowed (a log-weight reached "
                           f"±{extreme:.3g})")
        total += float(loss.detach()) * len(batch)
    return total / len(order)


def _adam_step(optimizer):
    """``optimizer.step()``; an overflow inside it (a huge learning rate) is a divergence."""
    try:
        optimizer.step()
    except RuntimeError as error:
        if "overflow" not in str(error):
            raise
        raise Diverged(f"the optimizer step overflowed ({error})") from None
