"""The operator contract: :class:`LinearOperator`, the dot test and power iteration."""

import math

import torch

from .._params import ParameterObject


def power_iteration(apply_gram, shape, *, n_iter=100, tol=1e-7, device="cpu",
                    dtype=torch.float64, random_state=0):
    """Largest eigenvalue of a symmetric positive semi-definite linear map.

    Parameters
    ----------
    apply_gram : callable
        Maps a tensor of shape ``(1, *shape)`` to a tensor of the same shape,
        e.g. ``lambda x: A.adjoint(A.forward(x))``.
    shape : tuple of int
        Shape of one input (without the batch axis).
    n_iter : int, default=100
        Maximum number of iterations.
    tol : float, default=1e-7
        Stop when the relative change of the estimate falls below ``tol``.
    device, dtype : torch device and dtype of the iterate.
    random_state : int, default=0
        Seed of the random starting vector (fixed: the estimate is reproducible).

    Returns
    -------
    float
        The estimated largest eigenvalue (``‖A‖²`` for ``AᵀA``).
    """
    generator = torch.Generator().manual_seed(random_state)
    v = torch.randn((1, *shape), generator=generator, dtype=torch.float64)
    v = (v / v.norm()).to(device=device, dtype=dtype)
    estimate = 0.0
    with torch.no_grad():
        for _ in range(n_iter):
            w = apply_gram(v)
            new_estimate = float(torch.sum(v * w))
            w_norm = w.norm()
            if w_norm == 0:
                return 0.0
            v = w / w_norm
            if abs(new_estimate - estimate) <= tol * abs(new_estimate):
                return new_estimate
            estimate = new_estimate
    return estimate


#: The methods the estimator calls on an operator (checked at ``fit``), besides
#: ``get_params`` for ``clone``. :class:`LinearOperator` provides all but
#: ``forward`` and ``adjoint``.
OPERATOR_METHODS = ("forward", "adjoint", "measurement_shape", "check_signal_shape",
                    "get_params")


def _default_rtol(dtype):
    """Dot-test tolerance: 1e-6 in float64, round-off-sized in lower precisions."""
    return max(1e-6, 2000 * torch.finfo(dtype).eps)


def check_adjoint(operator, signal_shape, *, n_samples=2, rtol=None, device="cpu",
                  dtype=torch.float64, random_state=0):
    """Dot test: check that ``operator.adjoint`` is the adjoint of ``operator.forward``.

    Draws ``n_samples`` random pairs ``x`` (signals) and ``z`` (measurements)
    and compares ``⟨A x, z⟩`` with ``⟨x, Aᵀ z⟩`` for each pair. A wrong
    adjoint makes the forward–backward iterations minimize the wrong energy
    (or diverge) without any other symptom, so the estimator runs this test at
    ``fit``. It also checks that neither map modifies its input in place (the
    estimator hands them tensors that share memory with your data), and that an
    overridden ``normal`` equals ``adjoint`` after ``forward``.

    The error of a pair is ``|⟨A x, z⟩ − ⟨x, Aᵀ z⟩| / s`` with
    ``s = max(‖A x‖ ‖z‖ / √M, ‖x‖ ‖Aᵀ z‖ / √N)`` (``N``, ``M``: entries of a
    signal and of a measurement), the typical size of these inner products
    for random Gaussian ``z`` and ``x``: an adjoint wrong by a relative
    ``δ`` gives an error of about ``δ`` whatever the signal size. (Normalizing
    by ``‖A x‖ ‖z‖`` alone would hide it behind a factor ``√M``.)

    Parameters
    ----------
    operator : LinearOperator
        Any object with ``forward``, ``adjoint`` and ``measurement_shape``.
    signal_shape : tuple of int
        Shape of one signal (without the batch axis).
    n_samples : int, default=2
        Number of random pairs (one batch).
    rtol : float, default=None
        Largest accepted error of a pair. None: ``1e-6`` in float64,
        ``2000 · eps`` in lower precisions (``2.4e-4`` in float32).
    device, dtype : torch device and dtype of the test (float64 by default).
    random_state : int, default=0
        Seed of the random inputs.

    Returns
    -------
    float
        The largest error over the pairs.

    Raises
    ------
    ValueError
        If ``forward`` or ``adjoint`` returns the wrong shape or non-finite
        values, modifies its input, or if the error (or that of an overridden
        ``normal``) exceeds ``rtol``.
    """
    name = type(operator).__name__
    signal_shape = tuple(signal_shape)
    measurement_shape = tuple(operator.measurement_shape(signal_shape))
    rtol = _default_rtol(dtype) if rtol is None else rtol
    generator = torch.Generator().manual_seed(random_state)

    def draw(shape):
        return torch.randn((n_samples, *shape), generator=generator,
                           dtype=torch.float64).to(device=device, dtype=dtype)
    x, z = draw(signal_shape), draw(measurement_shape)
    x_copy, z_copy = x.clone(), z.clone()
    with torch.no_grad():
        ax, atz = operator.forward(x), operator.adjoint(z)
    for label, given, copy in (("forward", x, x_copy), ("adjoint", z, z_copy)):
        if not torch.equal(given, copy):
            raise ValueError(f"{name}.{label} modified its input in place; it must return a "
                             "new tensor (the estimator passes tensors that share memory with "
                             "your X and its iterates). Use out-of-place operations "
                             "(z * m, not z.mul_(m)).")
    for label, out, shape in (("forward", ax, measurement_shape), ("adjoint", atz, signal_shape)):
        if tuple(out.shape) != (n_samples, *shape):
            raise ValueError(f"{name}.{label} returned a batch of shape {tuple(out.shape)}; "
                             f"expected {(n_samples, *shape)} for signals of shape "
                             f"{signal_shape} (measurement_shape {measurement_shape}).")
        if not torch.isfinite(out).all():
            raise ValueError(f"{name}.{label} returned non-finite values on random "
                             f"finite inputs of shape {signal_shape}.")

    def per_sample(a, b):
        return (a * b).flatten(1).sum(dim=1).double()

    def norms(a):
        return a.flatten(1).norm(dim=1).double()
    lhs, rhs = per_sample(ax, z), per_sample(x, atz)
    scale = torch.maximum(norms(ax) * norms(z) / math.sqrt(z[0].numel()),
                          norms(x) * norms(atz) / math.sqrt(x[0].numel()))
    errors = torch.where(scale > 0, (lhs - rhs).abs() / scale.clamp_min(1e-300),
                         torch.zeros_like(scale))
    worst = int(errors.argmax())
    error = float(errors[worst])
    if not error <= rtol:
        hint = getattr(operator, "_adjoint_hint", None)
        hint = hint() if callable(hint) else "Fix the operator's adjoint."
        raise ValueError(f"{name}.adjoint is not the adjoint of {name}.forward: the dot test "
                         f"gives ⟨A x, z⟩ = {float(lhs[worst]):.6g} but ⟨x, Aᵀ z⟩ = "
                         f"{float(rhs[worst]):.6g} (relative error {error:.1e} > "
                         f"rtol={rtol:g}) on random signals of shape {signal_shape}. {hint}")
    _check_normal(operator, x, ax, rtol)
    return error


def _check_normal(operator, x, ax, rtol):
    """Check an overridden ``normal`` (``AᵀA``) against ``adjoint`` of ``ax = forward(x)``."""
    normal = getattr(type(operator), "normal", None)
    if normal is None or normal is LinearOperator.normal:
        return
    with torch.no_grad():
        expected, got = operator.adjoint(ax), operator.normal(x)
    name = type(operator).__name__
    scale = expected.flatten(1).norm(dim=1).clamp_min(torch.finfo(x.dtype).tiny)
    error = float(((got - expected).flatten(1).norm(dim=1) / scale).max())
    if not error <= rtol:
        raise ValueError(f"{name}.normal is not {name}.adjoint after {name}.forward "
                         f"(relative error {error:.1e} > rtol={rtol:g}); fix or remove "
                         "the override.")


class LinearOperator(ParameterObject):
    """Base class of forward operators.

    Subclasses implement :meth:`forward` and :meth:`adjoint` (returning new
    tensors: never modify the input in place), declare the constraints of
    their parameters in ``_parameter_constraints`` (validated by
    :meth:`check_signal_shape`), and may override :meth:`measurement_shape`
    (default: same as the signal), ``_check_signal_shape`` (checks between
    parameters and against the signal shape), :meth:`norm` (exact value
    instead of power iteration) and :meth:`normal` (a cheaper ``AᵀA``,
    checked against the two maps by :func:`check_adjoint`). To plug in an operator written as two torch
    functions without subclassing, use :class:`CallableOperator`.
    """

    def forward(self, x):
        """Apply ``A`` to a batch ``x`` of shape ``(n, *signal_shape)``."""
        raise NotImplementedError

    def adjoint(self, z):
        """Apply ``Aᵀ`` to a batch ``z`` of shape ``(n, *measurement_shape)``."""
        raise NotImplementedError

    def normal(self, x):
        """Apply ``AᵀA`` to a batch ``x`` of signals.

        The gradient step of the solvers uses it (with ``Aᵀy`` computed once
        per batch); subclasses with a cheaper product than :meth:`adjoint`
        after :meth:`forward` override it.
        """
        return self.adjoint(self.forward(x))

    def measurement_shape(self, signal_shape):
        """Shape of one measurement for a signal of shape ``signal_shape``."""
        return tuple(signal_shape)

    def norm(self, signal_shape, *, device="cpu", dtype=torch.float64):
        """Operator norm ``‖A‖`` on signals of shape ``signal_shape``.

        Estimated by power iteration on ``AᵀA``; subclasses with a closed
        form override it.
        """
        self.check_signal_shape(signal_shape)
        gram = power_iteration(self.normal,
                               tuple(signal_shape), device=device, dtype=dtype)
        return math.sqrt(max(gram, 0.0))
