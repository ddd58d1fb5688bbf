"""Base class of the operator and regularizer parameter objects, and their
shared shape convention."""

from sklearn.base import BaseEstimator


def spatial_ndim(signal_shape):
    """Axes an operator or regularizer acts on: the last axis of 1-D signals,
    the last two of ``(H, W)`` and ``(C, H, W)`` images (channels alike)."""
    return 1 if len(signal_shape) == 1 else 2


class ParameterObject(BaseEstimator):
    """A scikit-learn style parameter object with a cache of derived tensors.

    ``get_params``/``set_params``/``clone`` come from
    :class:`~sklearn.base.BaseEstimator`. Tensors derived from the parameters
    (kernels, masks, index maps) depend on the signal shape, device and dtype
    only known at use time: they are built on first use and memoized. The
    cache is dropped when pickling and is never copied by ``clone``.
    """

    def _cached(self, key, build):
        """Return ``build()``, memoized under ``key``."""
        cache = self.__dict__.setdefault("_cache", {})
        if key not in cache:
            cache[key] = build()
        return cache[key]

    def set_params(self, **params):
        self.__dict__.pop("_cache", None)  # derived tensors depend on the params
        return super().set_params(**params)

    def __getstate__(self):
        # A copy: on Python >= 3.11 the base class may hand back __dict__ itself.
        state = dict(super().__getstate__())
        state.pop("_cache", None)
        return state
