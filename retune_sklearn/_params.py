"""Base class of the operator and regularizer parameter objects, their
shared shape convention, and the check of the methods the estimator calls."""

from functools import lru_cache
from numbers import Integral

from sklearn.base import BaseEstimator
from sklearn.utils._param_validation import Interval


def spatial_ndim(signal_shape):
    """Axes an operator or regularizer acts on: the last axis of 1-D signals,
    the last two of ``(H, W)`` and ``(C, H, W)`` images (channels alike)."""
    return 1 if len(signal_shape) == 1 else 2


class StrictInterval(Interval):
    """scikit-learn's :class:`~sklearn.utils._param_validation.Interval`, without booleans.

    ``Interval(Integral, 1, None)`` accepts ``True`` (``bool`` is an
    ``Integral`` subclass), so ``n_inner=True`` would mean one iteration.
    """

    def is_satisfied_by(self, val):
        return not isinstance(val, bool) and super().is_satisfied_by(val)


def positive_int():
    """Constraint: an integer ≥ 1, not a bool."""
    return StrictInterval(Integral, 1, None, closed="left")


@lru_cache(maxsize=None)
def _param_names(cls):
    return frozenset(cls._get_param_names())


class ParameterObject(BaseEstimator):
    """A scikit-learn style parameter object with a cache of derived tensors.

    ``get_params``/``set_params``/``clone`` come from
    :class:`~sklearn.base.BaseEstimator`. Subclasses declare
    ``_parameter_constraints`` (scikit-learn's constraint language: ``Interval``,
    ``StrOptions``, ``"boolean"``, ``"array-like"``, ``None``, ...);
    :meth:`check_signal_shape` validates them, then runs the subclass's
    cross-parameter and shape checks (:meth:`_check_signal_shape`).

    Tensors derived from the parameters (kernels, masks, index maps) depend
    on the signal shape, device and dtype only known at use time: they are
    built on first use (the parameters are validated then) and memoized.
    Assigning a constructor parameter (``op.sigma = 3.0`` or
    ``set_params``) drops the cache; mutating a parameter in place (an
    array's entries) does not: assign a new value instead. The cache is
    dropped when pickling and is never copied by ``clone``.
    """

    _parameter_constraints: dict = {}

    def check_signal_shape(self, signal_shape):
        """Raise ``ValueError`` if a parameter is invalid or the object cannot act
        on signals of shape ``signal_shape``."""
        self._validate_params()
        self._check_signal_shape(tuple(signal_shape))

    def _check_signal_shape(self, signal_shape):
        """Checks beyond ``_parameter_constraints``: between parameters, against the shape."""

    def _cached(self, key, build):
        """Return ``build()``, memoized under ``key``."""
        cache = self.__dict__.get("_cache")
        if cache is None:  # first use since construction or a parameter change
            self._validate_params()
            cache = self.__dict__.setdefault("_cache", {})
        if key not in cache:
            cache[key] = build()
        return cache[key]

    def __setattr__(self, name, value):
        if name in _param_names(type(self)):
            self.__dict__.pop("_cache", None)  # derived tensors depend on the params
        super().__setattr__(name, value)

    def get_params(self, deep=True):
        """Get the parameters of this object.

        Parameters
        ----------
        deep : bool, default=True
            Also return the parameters of parameters that have ``get_params``.

        Returns
        -------
        dict
        """
        # As BaseEstimator's, but a parameter is read from the instance dict first:
        # it may share its name with a method (CallableOperator's forward/adjoint).
        out = {}
        for key in self._get_param_names():
            value = self.__dict__[key] if key in self.__dict__ else getattr(self, key)
            if deep and hasattr(value, "get_params") and not isinstance(value, type):
                out.update((f"{key}__{k}", v) for k, v in value.get_params().items())
            out[key] = value
        return out

    def __getstate__(self):
        # A copy: on Python >= 3.11 the base class may hand back __dict__ itself.
        state = dict(super().__getstate__())
        state.pop("_cache", None)
        return state


_BASES = {"operator": "retune_sklearn.operators.LinearOperator",
          "regularizer": "retune_sklearn.regularizers.Regularizer"}


def check_component(obj, methods, kind):
    """Raise ``TypeError`` unless ``obj`` has every method in ``methods``.

    Parameters
    ----------
    obj : object
        The operator or regularizer given to the estimator.
    methods : tuple of str
        The methods the estimator calls (``OPERATOR_METHODS`` or
        ``REGULARIZER_METHODS``).
    kind : {"operator", "regularizer"}
        What ``obj`` is, for the message.
    """
    missing = [name for name in methods if not callable(getattr(obj, name, None))]
    if missing:
        base = _BASES.get(kind, "the package's base class")
        raise TypeError(f"The {kind} {type(obj).__name__} lacks the method(s) "
                        f"{', '.join(missing)}, which the estimator calls (the {kind} interface "
                        f"is {', '.join(methods)}). Subclass {base}: it provides defaults "
                        "and get_params/set_params.")
