"""Saving fitted models without pickle: :func:`save_weights` and :func:`load_weights`.

A fitted :class:`~retune_sklearn.ReTuneRegularizer` pickles (``pickle``,
``joblib.dump``): its fitted state is NumPy arrays and CPU tensors, so a
model fitted on a GPU loads on a CPU-only machine. But unpickling runs
arbitrary code: **never unpickle (or ``joblib.load``) a file from a source
you do not trust.**

:func:`save_weights` writes a ``.npz`` file instead: the fitted arrays,
and a JSON description of the estimator's parameters and fitted attributes
in which operators and regularizers are a class name plus parameters.
:func:`load_weights` reads it with ``numpy.load(allow_pickle=False)`` and
builds only this package's operator and regularizer classes: loading
executes no code from the file. What cannot be described that way
(:class:`~retune_sklearn.operators.CallableOperator`, your own subclasses,
sparse matrices, a ``RandomState`` instance as ``random_state``) is refused
at save time with a ``TypeError``: pickle such models. The Adam state kept
for :meth:`~retune_sklearn.ReTuneRegularizer.partial_fit` is not saved: a
``partial_fit`` after :func:`load_weights` starts a fresh Adam state.
"""

import json
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted

from . import operators, regularizers
from ._params import ParameterObject
from .estimator import ReTuneRegularizer

__all__ = ["save_weights", "load_weights"]

_FORMAT = "retune_sklearn.weights"
_FORMAT_VERSION = 1


def _component_classes():
    """The classes :func:`load_weights` may build, by name: this package's
    operators and regularizers, except :class:`CallableOperator` (it holds code)
    and the base classes."""
    excluded = (operators.CallableOperator, operators.LinearOperator, regularizers.Regularizer)
    classes = {}
    for module in (operators, regularizers):
        for name in module.__all__:
            obj = getattr(module, name)
            if isinstance(obj, type) and issubclass(obj, ParameterObject) and obj not in excluded:
                classes[name] = obj
    return classes


def _fitted_attributes(estimator):
    """The fitted attributes to save (all but the Adam state)."""
    return {k: v for k, v in vars(estimator).items()
            if k.endswith("_") and not k.startswith("__") or k == "_y_sample_shape"}


class _Encoder:
    """Turns values into JSON-able descriptions; arrays are collected apart."""

    def __init__(self):
        self.arrays, self.classes = {}, _component_classes()

    def __call__(self, value, where):
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, np.bool_):
            return bool(value)
        if isinstance(value, Integral):
            return int(value)
        if isinstance(value, Real):
            return float(value)
        if isinstance(value, torch.device):
            return str(value)
        if isinstance(value, (list, tuple)):
            items = [self(v, f"{where}[{i}]") for i, v in enumerate(value)]
            return {"tuple": items} if isinstance(value, tuple) else items
        if isinstance(value, dict) and all(isinstance(k, str) for k in value):
            return {"dict": {k: self(v, f"{where}[{k!r}]") for k, v in value.items()}}
        if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
            key = f"array{len(self.arrays)}"
            self.arrays[key] = value
            return {"array": key}
        if isinstance(value, ParameterObject):
            name = type(value).__name__
            if self.classes.get(name) is not type(value):
                raise TypeError(f"{where} is a {name}, which save_weights cannot describe: "
                                "it saves only this package's operators and regularizers "
                                f"({', '.join(sorted(self.classes))}). Pickle this model "
                                "instead (from a trusted source only).")
            params = value.get_params(deep=False)
            return {"class": name,
                    "params": {k: self(v, f"{where}.{k}") for k, v in params.items()}}
        raise TypeError(f"{where}={value!r} cannot be saved without pickle (save_weights "
                        "stores numbers, strings, tuples, numeric arrays and this package's "
                        "operators and regularizers). Set a plain value, or pickle the model.")


def _decode(value, arrays, classes):
    """Inverse of :class:`_Encoder`; builds only the classes in ``classes``."""
    if isinstance(value, list):
        return [_decode(v, arrays, classes) for v in value]
    if not isinstance(value, dict):
        return value
    if "tuple" in value:
        return tuple(_decode(v, arrays, classes) for v in value["tuple"])
    if "dict" in value:
        return {k: _decode(v, arrays, classes) for k, v in value["dict"].items()}
    if "array" in value:
        return arrays[value["array"]]
    if value.get("class") not in classes:
        raise ValueError(f"The file names the class {value.get('class')!r}, which load_weights "
                         f"does not build (allowed: {', '.join(sorted(classes))}).")
    params = {k: _decode(v, arrays, classes) for k, v in value["params"].items()}
    return classes[value["class"]](**params)


def _check_operator_reproduced(fitted, rebuilt, signal_shape):
    """Raise if the rebuilt operator differs from the fitted one on a random signal.

    Parameters can hide randomness (``Inpainting(random_state=None)`` draws
    a new mask at each construction): saving would then silently change the
    model.
    """
    x = torch.randn((1, *signal_shape), generator=torch.Generator().manual_seed(0),
                    dtype=torch.float64)
    with torch.no_grad():
        same = torch.allclose(fitted.forward(x), rebuilt.forward(x), rtol=1e-12, atol=0)
    if not same:
        raise ValueError(f"operator_={fitted!r} is not reproduced by its parameters (e.g. a "
                         "random Inpainting mask drawn with random_state=None): give the "
                         "operator explicit arrays (e.g. Inpainting(mask=...)) or an integer "
                         "random_state, and refit.")


def save_weights(estimator, file):
    """Save a fitted ReTuneRegularizer to a ``.npz`` file, without pickle.

    Parameters
    ----------
    estimator : ReTuneRegularizer
        A fitted estimator.
    file : str, path-like or file-like
        Destination. As with :func:`numpy.savez`, ``".npz"`` is appended to a
        path that does not end with it.

    Raises
    ------
    TypeError
        If a parameter or fitted attribute cannot be described without
        pickle (see the module docstring).
    ValueError
        If the fitted operator is not reproduced by its parameters.

    See Also
    --------
    load_weights : Load the file back.
    """
    from . import __version__  # not at import time: the package may import this module

    check_is_fitted(estimator)
    if type(estimator) is not ReTuneRegularizer:
        raise TypeError(f"save_weights saves ReTuneRegularizer models; got "
                        f"{type(estimator).__name__}. Pickle subclasses instead.")
    encode = _Encoder()
    description = {
        "format": _FORMAT, "format_version": _FORMAT_VERSION, "package_version": __version__,
        "params": {k: encode(v, k) for k, v in estimator.get_params(deep=False).items()},
        "fitted": {k: encode(v, k) for k, v in _fitted_attributes(estimator).items()},
    }
    rebuilt = _decode(description["fitted"]["operator_"], encode.arrays, encode.classes)
    _check_operator_reproduced(estimator.operator_, rebuilt, estimator.signal_shape_)
    np.savez(file, description=np.array(json.dumps(description)), **encode.arrays)


def load_weights(file):
    """Load a model saved by :func:`save_weights`; no code from the file is executed.

    Parameters
    ----------
    file : str, path-like or file-like
        A file written by :func:`save_weights`.

    Returns
    -------
    ReTuneRegularizer
        The fitted estimator: ``transform``, ``predict`` and ``score`` give
        the outputs of the saved one (``device="auto"`` runs on the CPU
        when there is no GPU; a model saved with ``device="cuda"`` needs
        ``set_params(device="cpu")`` there). ``partial_fit`` continues from
        the saved weights with a fresh Adam state.

    Raises
    ------
    ValueError
        If the file is not a ReTuneRegularizer weights file of a known
        format version, names a class outside this package's operators and
        regularizers, or is inconsistent.
    """
    with np.load(file, allow_pickle=False) as content:
        arrays = {k: content[k] for k in content.files}
    try:
        description = json.loads(str(arrays.pop("description")))
    except (KeyError, ValueError) as error:
        raise ValueError(f"{file!r} is not a file written by save_weights ({error}).") from None
    if description.get("format") != _FORMAT or description.get("format_version") != _FORMAT_VERSION:
        raise ValueError(f"{file!r} is not a ReTuneRegularizer weights file of format version "
                         f"{_FORMAT_VERSION} (found {description.get('format')!r}, version "
                         f"{description.get('format_version')!r}).")
    classes = _component_classes()
    try:
        params, fitted = ({k: _decode(v, arrays, classes) for k, v in description[part].items()}
                          for part in ("params", "fitted"))
        estimator = ReTuneRegularizer(**params)
        names = fitted["regularizer_"].weight_names(fitted["signal_shape_"])
    except (KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"{file!r} is an inconsistent weights file: {error!r}.") from None
    if len(names) != len(fitted["weights_"]):
        raise ValueError(f"{file!r} is inconsistent: {len(fitted['weights_'])} weights for a "
                         f"regularizer with {len(names)} ({names}).")
    vars(estimator).update(fitted)
    return estimator
