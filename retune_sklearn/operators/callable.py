"""Your own pair of torch callables as an operator: :class:`CallableOperator`."""

import numbers

import torch

from ._base import LinearOperator


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
    method that calls the ``forward`` parameter). Pickling (and so
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

    _PARAMS = ("forward", "adjoint", "measurement_shape")

    def __init__(self, forward, adjoint, measurement_shape=None):
        # Stored under private names: `forward`, `adjoint` and `measurement_shape`
        # are the operator's methods (get_params/set_params below map the names).
        self._forward_fn = forward
        self._adjoint_fn = adjoint
        self._measurement_shape_spec = measurement_shape

    def _param_values(self):
        return {"forward": self._forward_fn, "adjoint": self._adjoint_fn,
                "measurement_shape": self._measurement_shape_spec}

    def get_params(self, deep=True):
        """Get the parameters ``forward``, ``adjoint`` and ``measurement_shape``.

        Parameters
        ----------
        deep : bool, default=True
            Also return the parameters of parameters that have ``get_params``.

        Returns
        -------
        dict
        """
        out = {}
        for key, value in self._param_values().items():
            if deep and hasattr(value, "get_params") and not isinstance(value, type):
                out.update((f"{key}__{k}", v) for k, v in value.get_params().items())
            out[key] = value
        return out

    def set_params(self, **params):
        """Set the parameters ``forward``, ``adjoint`` and ``measurement_shape``.

        Returns
        -------
        self : CallableOperator
        """
        attributes = {"forward": "_forward_fn", "adjoint": "_adjoint_fn",
                      "measurement_shape": "_measurement_shape_spec"}
        nested = {}
        for key, value in params.items():
            name, delim, sub_key = key.partition("__")
            if name not in attributes:
                raise ValueError(f"Invalid parameter {name!r} for estimator {self}. Valid "
                                 f"parameters are: {list(self._PARAMS)!r}.")
            if delim:
                nested.setdefault(name, {})[sub_key] = value
            else:
                setattr(self, attributes[name], value)
        for name, sub_params in nested.items():
            getattr(self, attributes[name]).set_params(**sub_params)
        self.__dict__.pop("_cache", None)
        return self

    def _callable(self, name):
        function = self._param_values()[name]
        if not callable(function):
            raise TypeError(f"CallableOperator `{name}` must be a callable mapping torch "
                            f"tensors to torch tensors; got {type(function).__name__}.")
        return function

    def check_signal_shape(self, signal_shape):
        self._callable("forward")
        self._callable("adjoint")
        self.measurement_shape(signal_shape)

    def measurement_shape(self, signal_shape):
        signal_shape = tuple(signal_shape)
        spec = self._measurement_shape_spec
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
        out = self._callable(name)(tensor)
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"CallableOperator `{name}` must return a torch.Tensor; got "
                            f"{type(out).__name__}.")
        return out

    def forward(self, x):
        return self._call("forward", x)

    def adjoint(self, z):
        return self._call("adjoint", z)

    def _adjoint_hint(self):
        return ("Check the `adjoint` callable given to CallableOperator: it must compute the "
                "transpose of `forward` (⟨forward(x), z⟩ = ⟨x, adjoint(z)⟩ for all x, z); "
                "torch.func.vjp(forward, x)[1](z) computes it.")
