"""Your own pair of torch callables as an operator: :class:`CallableOperator`."""

import numbers

import torch

from ._base import LinearOperator


class _SharedName:
    """A parameter that shares its name with a method.

    The value lives in the instance ``__dict__`` under the parameter's name,
    where ``get_params``, ``set_params``, ``clone`` and pickling find it;
    reading the attribute gives the method ``method`` that uses it
    (``op.forward(x)`` calls the ``forward`` parameter through checks).
    """

    def __init__(self, method):
        self.method = method

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, obj, objtype=None):
        return getattr(objtype if obj is None else obj, self.method)

    def __set__(self, obj, value):
        obj.__dict__[self.name] = value


class CallableOperator(LinearOperator):
    """A forward operator given as two torch callables: the way to plug in your own.

    Parameters
    ----------
    forward : callable
        ``forward(x) -> A x``: maps a torch tensor of shape
        ``(n, *signal_shape)`` to one of shape ``(n, *measurement_shape)``,
        keeping the input's device and dtype (the estimator calls it in
        float64 for its checks and in its own dtype for training, on its
        device). It must be linear and differentiable by autograd (plain torch
        operations are), or gradients will not reach the learned weights.
    adjoint : callable
        ``adjoint(z) -> Aᵀ z``: the transpose of ``forward``, from
        ``(n, *measurement_shape)`` to ``(n, *signal_shape)``. The estimator
        checks it with a dot test at ``fit`` (:func:`check_adjoint`) and
        raises a ``ValueError`` if it is wrong. If you only have
        ``forward``, ``torch.func.vjp(forward, x)[1]`` computes its adjoint.
    measurement_shape : tuple of int, callable or None, default=None
        Shape of one measurement: a fixed tuple, or a callable
        ``signal_shape -> tuple``. None means the signal's shape.

    Notes
    -----
    The parameters are readable with ``get_params()`` (``op.forward`` is the
    method that calls the ``forward`` parameter). Each callable receives a
    copy of its input, so one that works in place (``z.mul_(m)``) cannot
    change your data or the solver's iterates. Pickling (and so
    ``joblib`` parallelism in ``GridSearchCV(n_jobs>1)`` and saving a fitted
    estimator) pickles the callables by reference: use module-level
    functions (or ``functools.partial`` of them), not lambdas or nested
    functions. ``clone`` copies them with :func:`copy.deepcopy`, which keeps
    functions as they are. ``norm`` is estimated by power iteration.

    Examples
    --------
    >>> import torch
    >>> from retune_sklearn.operators import CallableOperator, check_adjoint
    >>> def crop(x):
    ...     return x[..., 2:-2]
    >>> def pad(z):
    ...     return torch.nn.functional.pad(z, (2, 2))
    >>> op = CallableOperator(crop, pad, measurement_shape=lambda s: (s[0] - 4,))
    >>> op.measurement_shape((16,))
    (12,)
    >>> check_adjoint(op, (16,)) < 1e-12
    True
    """

    _parameter_constraints = {
        "forward": [callable],
        "adjoint": [callable],
        "measurement_shape": [None, tuple, list, callable],
    }

    forward = _SharedName("_apply_forward")
    adjoint = _SharedName("_apply_adjoint")
    measurement_shape = _SharedName("_measurement_shape")

    def __init__(self, forward, adjoint, measurement_shape=None):
        self.forward = forward
        self.adjoint = adjoint
        self.measurement_shape = measurement_shape

    def _check_signal_shape(self, signal_shape):
        self._measurement_shape(signal_shape)

    def _measurement_shape(self, signal_shape):
        signal_shape = tuple(signal_shape)
        spec = self.__dict__["measurement_shape"]
        if spec is None:
            return signal_shape
        value = spec(signal_shape) if callable(spec) else spec
        try:
            shape = tuple(value)
        except TypeError:
            shape = ()
        if not shape or not all(isinstance(s, numbers.Integral) and not isinstance(s, bool)
                                and s > 0 for s in shape):
            where = "returned" if callable(spec) else "is"
            raise ValueError(f"CallableOperator `measurement_shape` must be a tuple of positive "
                             f"integers or a callable returning one; it {where} {value!r} for "
                             f"signals of shape {signal_shape}.")
        return tuple(int(s) for s in shape)

    def _call(self, name, tensor):
        function = self.__dict__[name]
        if not callable(function):
            self._validate_params()  # raises, naming the parameter
        # A copy: the callable may work in place without touching what the caller still needs.
        out = function(tensor.clone())
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"CallableOperator `{name}` must return a torch.Tensor; got "
                            f"{type(out).__name__}.")
        return out

    def _apply_forward(self, x):
        """Apply the ``forward`` callable to a batch ``x`` of shape ``(n, *signal_shape)``."""
        return self._call("forward", x)

    def _apply_adjoint(self, z):
        """Apply the ``adjoint`` callable to a batch ``z`` of shape ``(n, *measurement_shape)``."""
        return self._call("adjoint", z)

    def _adjoint_hint(self):
        return ("Check the `adjoint` callable given to CallableOperator: it must compute the "
                "transpose of `forward` (⟨forward(x), z⟩ = ⟨x, adjoint(z)⟩ for all x, z); "
                "torch.func.vjp(forward, x)[1](z) computes it.")
