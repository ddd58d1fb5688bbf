"""The forward–backward model and the fixed-point algorithms that solve it.

* :class:`ForwardBackward`: the model's elementary operator ``φ_θ``;
* algorithms (:class:`~._base.FixedPointAlgorithm` subclasses) iterating
  towards its fixed point, registered in :data:`SOLVERS` by name:
  ``"fb"`` (plain iteration), ``"fista"`` (accelerated, gradient restart) and
  ``"anderson"`` (safeguarded Anderson acceleration).

A new algorithm is one file with one class, plus one line in :data:`SOLVERS`.
"""

from ._base import FixedPointAlgorithm, relative_residual
from .anderson import AndersonAcceleration
from .fista import FISTARestart
from .forward_backward import ForwardBackward, PlainIteration, StepParameters

__all__ = ["FixedPointAlgorithm", "ForwardBackward", "PlainIteration", "FISTARestart",
           "AndersonAcceleration",
           "StepParameters", "SOLVERS", "make_solver", "relative_residual", "restarted_solve",
           "HYPERGRADIENTS"]

#: Algorithms by the name the estimator's ``solver`` parameter takes.
SOLVERS = {cls.name: cls for cls in (PlainIteration, FISTARestart, AndersonAcceleration)}


def make_solver(solver):
    """The algorithm named ``solver`` (or ``solver`` itself if it is one)."""
    if isinstance(solver, FixedPointAlgorithm):
        return solver
    try:
        return SOLVERS[solver]()
    except (KeyError, TypeError):
        raise ValueError(f"solver must be one of {sorted(SOLVERS)} or a FixedPointAlgorithm; "
                         f"got {solver!r}.") from None


def __getattr__(name):
    # restarted_solve and HYPERGRADIENTS moved to retune_sklearn.hypergradients
    # (which imports this package); kept reachable here for older imports.
    if name in ("restarted_solve", "HYPERGRADIENTS"):
        from .. import hypergradients
        return getattr(hypergradients, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
