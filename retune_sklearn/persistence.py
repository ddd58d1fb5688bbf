"""Saving fitted models without pickle: :func:`save_weights` and :func:`load_weights`.

A fitted :class:`~retune_sklearn.ReTuneRegularizer` pickles (``pickle``,
``joblib.dump``): its fitted state is NumPy arrays and CPU tensors, so a
model fitted on a GPU loads on a CPU-only machine. But unpickling runs
arbitrary code: **never unpickle (or ``joblib.load``) a file from a source
you do not trust.**

:func:`save_weights` writes a ``.npz`` file instead: the fitted arrays,
and a JSON description of the estimator's parameters and fitted attributes
in which operators and regularizers are a class name plus parameters.
:func:`load_weights` reads it without pickle (numeric arrays only) and
builds only this package's operator and regularizer classes: loading
executes no code from the file. It treats the file as untrusted: only the
members the description refers to are read, after their declared sizes
are checked, every value is checked against the schema of a fitted
estimator, and every refusal is a :class:`WeightsFileError`. What cannot be described that way
(:class:`~retune_sklearn.operators.CallableOperator`,
:class:`~retune_sklearn.regularizers.PnP` (a torch module), your own subclasses,
sparse matrices, a ``RandomState`` instance as ``random_state``) is refused
at save time with a ``TypeError``: pickle such models. The Adam state kept
for :meth:`~retune_sklearn.ReTuneRegularizer.partial_fit` is not saved: a
``partial_fit`` after :func:`load_weights` starts a fresh Adam state.
"""

import json
import math
import os
import zipfile
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted

from . import operators, regularizers
from ._params import ParameterObject
from ._validation import check_device, check_integer_parameters, check_iterations
from .estimator import ReTuneRegularizer

__all__ = ["save_weights", "load_weights", "WeightsFileError"]

_FORMAT = "retune_sklearn.weights"
_FORMAT_VERSION = 1


def _component_classes():
    """The classes :func:`load_weights` may build, by name: this package's
    operators and regularizers, except :class:`CallableOperator` and :class:`PnP`
    (they hold code: callables, a torch module) and the base classes."""
    excluded = (operators.CallableOperator, regularizers.PnP, operators.LinearOperator,
                regularizers.Regularizer)
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


class WeightsFileError(ValueError):
    """A file that :func:`load_weights` refuses: not written by :func:`save_weights`,
    damaged (truncated, empty), hostile (a zip bomb, a class or attribute
    outside the schema) or inconsistent."""


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
        raise WeightsFileError(f"The file names the class {value.get('class')!r}, which "
                               f"load_weights does not build (allowed: "
                               f"{', '.join(sorted(classes))}).")
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

    Only the members that the file's description refers to are read, each
    after its declared size has been checked (the zip directory's
    uncompressed size against its compressed size, the ``.npy`` header's
    shape against the member's size), and every parameter and fitted
    attribute is checked against the schema of a fitted estimator (names,
    types, shapes, finiteness, positivity, consistency with the operator
    and regularizer) before the estimator is built.

    Parameters
    ----------
    file : str, path-like or file-like
        A file written by :func:`save_weights` (a file object must be
        seekable and opened in binary mode).

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
    WeightsFileError
        A ``ValueError``: the file is not a ReTuneRegularizer weights file
        of a known format version (empty, truncated, random bytes, another
        zip or ``.npy`` file), holds members it does not describe, a member
        whose declared size exceeds :data:`MAX_COMPRESSION_RATIO` times its
        compressed size (a zip bomb; refused unread), an object array, a
        class outside this package's operators and regularizers, or
        parameters or fitted attributes that are missing, unexpected,
        invalid or inconsistent.
    OSError
        If ``file`` is a path that cannot be opened.
    """
    where = repr(os.fspath(file)) if isinstance(file, (str, os.PathLike)) else "the file"
    handle = open(file, "rb") if isinstance(file, (str, os.PathLike)) else file
    try:
        description, arrays = _read_weights_file(handle, where)
    except WeightsFileError:
        raise
    except Exception as error:  # BadZipFile, EOFError, zlib.error, ... of a damaged file
        raise WeightsFileError(f"{where} is not a weights file written by save_weights "
                               f"({type(error).__name__}: {error}).") from error
    finally:
        if handle is not file:
            handle.close()
    return _build_estimator(description, arrays, where)


#: Largest ratio of a member's declared uncompressed size to its compressed size
#: that :func:`load_weights` reads (save_weights stores members uncompressed).
MAX_COMPRESSION_RATIO = 100
#: Members up to this size (bytes) are read whatever their compression.
_SMALL_MEMBER = 2**20
_DESCRIPTION = "description.npy"


def _read_weights_file(handle, where):
    """The description (a dict) and the arrays it refers to, read defensively."""
    file_size = handle.seek(0, os.SEEK_END)
    handle.seek(0)
    with zipfile.ZipFile(handle) as archive:
        members = {info.filename: info for info in archive.infolist()}
        if _DESCRIPTION not in members:
            raise WeightsFileError(f"{where} is not a weights file written by save_weights "
                                   f"(it has no {_DESCRIPTION}; members: "
                                   f"{sorted(members)[:5]}).")
        text = _read_member(archive, members[_DESCRIPTION], file_size, where, kinds="U")
        if text.shape != ():
            raise WeightsFileError(f"{where}: {_DESCRIPTION} must hold one string; got an "
                                   f"array of shape {text.shape}.")
        description = _parse_description(str(text[()]), where)
        keys = _array_references(description, where)
        expected = {_DESCRIPTION} | {f"{key}.npy" for key in keys}
        unexpected, missing = sorted(set(members) - expected), sorted(expected - set(members))
        if unexpected:
            raise WeightsFileError(f"{where} holds members that save_weights does not write: "
                                   f"{unexpected[:5]}; they are not read.")
        if missing:
            raise WeightsFileError(f"{where} misses the members {missing[:5]} that its "
                                   "description refers to.")
        arrays = {key: _read_member(archive, members[f"{key}.npy"], file_size, where,
                                    kinds="biuf")
                  for key in sorted(keys)}
    return description, arrays


def _read_member(archive, info, file_size, where, *, kinds):
    """The ``.npy`` array of member ``info``, of a dtype kind in ``kinds``.

    Its sizes are checked before anything is allocated or decompressed: the
    zip directory's (uncompressed against compressed, compressed against
    the file) and then the ``.npy`` header's (shape times item size against
    the member's size).
    """
    name = info.filename
    if info.compress_size > file_size:
        raise WeightsFileError(f"{where}: member {name!r} declares {info.compress_size} "
                               f"compressed bytes, more than the file's {file_size}.")
    if info.file_size > max(_SMALL_MEMBER, MAX_COMPRESSION_RATIO * info.compress_size):
        raise WeightsFileError(
            f"{where}: member {name!r} declares {info.file_size} bytes uncompressed from "
            f"{info.compress_size} compressed, a ratio above {MAX_COMPRESSION_RATIO} (a zip "
            "bomb?); it was not read. save_weights stores members uncompressed.")
    with archive.open(info) as stream:
        version = np.lib.format.read_magic(stream)
        if version not in ((1, 0), (2, 0)):
            raise WeightsFileError(f"{where}: member {name!r} is a .npy file of version "
                                   f"{version}, which load_weights does not read.")
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, fortran_order, dtype = read_header(stream)
        header_size = stream.tell()
        if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None \
                or dtype.kind not in kinds:
            raise WeightsFileError(
                f"{where}: member {name!r} holds an array of dtype {dtype}, which load_weights "
                "does not read (object arrays need pickle; the file is read as with "
                "allow_pickle=False).")
        n_bytes = math.prod(shape) * dtype.itemsize
        if any(n < 0 for n in shape) or header_size + n_bytes != info.file_size:
            raise WeightsFileError(
                f"{where}: member {name!r} is inconsistent: its header declares shape "
                f"{shape} of {dtype} ({n_bytes} bytes), but the member holds "
                f"{info.file_size - header_size} bytes of data.")
        buffer = bytearray(n_bytes)
        done = 0
        while done < n_bytes:
            chunk = stream.read(min(n_bytes - done, _SMALL_MEMBER))
            if not chunk:
                raise WeightsFileError(f"{where}: member {name!r} is truncated.")
            buffer[done:done + len(chunk)] = chunk
            done += len(chunk)
        stream.read(1)  # reaches the end: zipfile checks the CRC
    return np.frombuffer(buffer, dtype=dtype).reshape(shape, order="F" if fortran_order else "C")


def _parse_description(text, where):
    """The JSON description, with its format checked."""
    try:
        description = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise WeightsFileError(f"{where}: its description is not valid JSON "
                               f"({type(error).__name__}: {error}).") from None
    if not isinstance(description, dict) or description.get("format") != _FORMAT \
            or description.get("format_version") != _FORMAT_VERSION:
        found = description if not isinstance(description, dict) else description.get("format")
        version = description.get("format_version") if isinstance(description, dict) else None
        raise WeightsFileError(f"{where} is not a ReTuneRegularizer weights file of format "
                               f"version {_FORMAT_VERSION} (found {str(found)[:80]!r}, "
                               f"version {version!r}).")
    for part in ("params", "fitted"):
        if not isinstance(description.get(part), dict):
            raise WeightsFileError(f"{where}: its description has no {part!r} mapping.")
    return description


def _array_references(description, where):
    """The array keys (``"array3"``) that the description refers to."""
    keys, stack = set(), [description["params"], description["fitted"]]
    while stack:
        value = stack.pop()
        if isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, dict):
            if "array" in value:
                key = value["array"]
                if not (isinstance(key, str) and key.startswith("array")
                        and key[5:].isdigit()):
                    raise WeightsFileError(f"{where}: its description refers to the array "
                                           f"{str(key)[:40]!r}; save_weights names them "
                                           "'array0', 'array1', ...")
                keys.add(key)
            else:
                stack.extend(value.values())
    return keys


def _build_estimator(description, arrays, where):
    """The fitted estimator of a description whose every field is checked."""
    classes = _component_classes()
    try:
        params, fitted = ({k: _decode(v, arrays, classes) for k, v in description[part].items()}
                          for part in ("params", "fitted"))
    except WeightsFileError:
        raise
    except Exception as error:  # e.g. a constructor refusing the file's parameters
        raise WeightsFileError(f"{where} describes values that load_weights cannot build "
                               f"({type(error).__name__}: {error}).") from error
    unknown = sorted(set(params) - set(ReTuneRegularizer().get_params(deep=False)))
    if unknown:
        raise WeightsFileError(f"{where} holds unexpected parameters {unknown[:5]} (not "
                               "parameters of ReTuneRegularizer).")
    estimator = ReTuneRegularizer(**params)
    try:
        check_integer_parameters(estimator)
        estimator._validate_params()
        check_iterations(estimator.K, estimator.T)
        if estimator.device != "auto":  # "cuda" loads where there is none (set_params)
            check_device(estimator.device)
    except ValueError as error:
        raise WeightsFileError(f"{where} holds invalid parameters: {error}") from error
    _check_fitted(fitted, where)
    vars(estimator).update(fitted)
    return estimator


# ------------------------------------------------------------------- fitted schema
def _is_real(value):
    return isinstance(value, Real) and not isinstance(value, (bool, np.bool_))


def _is_integer(value):
    return isinstance(value, Integral) and not isinstance(value, (bool, np.bool_))


def _real(low, high=math.inf, *, low_closed=False, finite=True, nan=False):
    lower = f">= {low}" if low_closed else f"> {low}"
    expected = (f"a {'finite ' if finite else ''}number {lower}"
                + (f" and < {high}" if high < math.inf else "") + (" (or NaN)" if nan else ""))

    def check(value):
        if _is_real(value) and math.isnan(value):
            return None if nan else expected
        ok = (_is_real(value) and (value >= low if low_closed else value > low)
              and value < high and (math.isfinite(value) or not finite))
        return None if ok else expected
    return check


def _integer(low):
    def check(value):
        return None if _is_integer(value) and value >= low else f"an integer >= {low}"
    return check


def _optional(check):
    def optional(value):
        problem = None if value is None else check(value)
        return None if problem is None else f"None or {problem}"
    return optional


def _list_of(check, what):
    def list_check(value):
        ok = isinstance(value, list) and all(check(v) is None for v in value)
        return None if ok else f"a list of {what}"
    return list_check


def _shape(max_ndim=None):
    expected = f"a tuple of {f'1 to {max_ndim}' if max_ndim else 'one or more'} positive integers"

    def check(value):
        ok = (isinstance(value, tuple) and 1 <= len(value) <= (max_ndim or math.inf)
              and all(_is_integer(n) and n > 0 for n in value))
        return None if ok else expected
    return check


def _instance(cls):
    def check(value):
        return None if isinstance(value, cls) else f"a {cls.__name__} of this package"
    return check


def _weights(value):
    ok = (isinstance(value, np.ndarray) and value.dtype.kind == "f" and value.ndim == 1
          and value.size >= 1 and bool(np.all(np.isfinite(value) & (value > 0))))
    return None if ok else "a 1-D float array of positive finite weights"


def _network(value):
    ok = isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, np.ndarray) and v.dtype.kind == "f"
        and bool(np.all(np.isfinite(v))) for k, v in value.items())
    return None if ok else "a dict of finite float arrays"


#: Every fitted attribute of a ReTuneRegularizer (those save_weights writes) and
#: the check of its value: None if valid, else what was expected.
_FITTED_SCHEMA = {
    "operator_": _instance(operators.LinearOperator),
    "regularizer_": _instance(regularizers.Regularizer),
    "weights_": _weights,
    "regularizer_params_": _network,
    "weight_names_": _list_of(lambda v: None if isinstance(v, str) else "", "strings"),
    "step_scale_": _real(0, 2),
    "lipschitz_": _real(0),
    "stepsize_": _real(0),
    "loss_curve_": _list_of(_real(-math.inf), "finite numbers"),
    "n_iter_": _integer(0),
    "converged_": lambda v: None if isinstance(v, bool) else "a bool",
    "validation_scores_": _optional(_list_of(_real(-math.inf, finite=False), "numbers")),
    "best_validation_score_": _optional(_real(-math.inf, finite=False)),
    "signal_shape_": _shape(3),
    "measurement_shape_": _shape(),
    "n_features_in_": _integer(1),
    "_y_sample_shape": _shape(),
    "fixed_point_residual_": _real(0, low_closed=True, finite=False, nan=True),
    "n_solve_iter_": _integer(1),
    "training_solve_iter_": _optional(_real(0, low_closed=True)),
    "init_scale_": _real(0),
    "K_": _integer(1),
    "K_selection_": _optional(lambda v: None if isinstance(v, dict) else "a dict"),
    "solve_tol_": _optional(_real(0)),
    "solve_tol_selection_": _optional(lambda v: None if isinstance(v, dict) else "a dict"),
    "contraction_factor_": _optional(_real(0, low_closed=True)),
    "block_contraction_": _optional(_real(0, low_closed=True)),
    "contraction_status_": lambda v: None if isinstance(v, str) else "a string",
}


def _check_fitted(fitted, where):
    """Raise ``WeightsFileError`` unless ``fitted`` holds exactly the fitted
    attributes of the schema, each valid and all consistent."""
    unexpected = sorted(set(fitted) - set(_FITTED_SCHEMA))
    missing = sorted(set(_FITTED_SCHEMA) - set(fitted))
    if unexpected:
        raise WeightsFileError(f"{where} holds unexpected fitted attributes {unexpected[:5]}; "
                               "a fitted ReTuneRegularizer has only "
                               f"{', '.join(_FITTED_SCHEMA)}.")
    if missing:
        raise WeightsFileError(f"{where} misses the fitted attributes {missing}.")
    for name, check in _FITTED_SCHEMA.items():
        expected = check(fitted[name])
        if expected is not None:
            raise WeightsFileError(f"{where}: {name} must be {expected}; got "
                                   f"{_shown(fitted[name])}.")
    try:
        _check_consistent(fitted, where)
    except WeightsFileError:
        raise
    except Exception as error:  # the operator or regularizer refusing the shapes
        raise WeightsFileError(f"{where} is inconsistent: {type(error).__name__}: "
                               f"{error}") from error


def _check_consistent(fitted, where):
    """The fitted attributes agree with each other, the operator and the regularizer."""
    shape, operator, regularizer = (fitted[k] for k in ("signal_shape_", "operator_",
                                                        "regularizer_"))
    operator.check_signal_shape(shape)
    regularizer.check_signal_shape(shape)
    measurement_shape = tuple(operator.measurement_shape(shape))
    if fitted["measurement_shape_"] != measurement_shape:
        raise WeightsFileError(f"{where} is inconsistent: measurement_shape_="
                               f"{fitted['measurement_shape_']}, but operator_ maps "
                               f"signal_shape_={shape} to measurements of shape "
                               f"{measurement_shape}.")
    if fitted["n_features_in_"] != math.prod(measurement_shape):
        raise WeightsFileError(f"{where} is inconsistent: n_features_in_="
                               f"{fitted['n_features_in_']} for measurements of shape "
                               f"{measurement_shape}.")
    if math.prod(fitted["_y_sample_shape"]) != math.prod(shape):
        raise WeightsFileError(f"{where} is inconsistent: signals of shape "
                               f"{fitted['_y_sample_shape']} do not hold signal_shape_={shape}.")
    names = regularizer.weight_names(shape)
    if len(fitted["weights_"]) != len(names) or fitted["weight_names_"] != list(names):
        raise WeightsFileError(f"{where} is inconsistent: {len(fitted['weights_'])} weights for "
                               f"a regularizer with {len(names)} ({names}); the file names "
                               f"{fitted['weight_names_'][:10]}.")
    network = {k: tuple(v.shape) for k, v in
               regularizer.init_parameters(shape, torch.Generator().manual_seed(0)).items()}
    saved = {k: tuple(v.shape) for k, v in fitted["regularizer_params_"].items()}
    if saved != network:
        raise WeightsFileError(f"{where} is inconsistent: regularizer_params_ has the tensors "
                               f"{saved}, but regularizer_ needs {network}.")
    if not math.isclose(fitted["stepsize_"], fitted["step_scale_"] / fitted["lipschitz_"],
                        rel_tol=1e-9):
        raise WeightsFileError(f"{where} is inconsistent: stepsize_={fitted['stepsize_']} is not "
                               f"step_scale_ / lipschitz_.")
    if fitted["n_iter_"] != len(fitted["loss_curve_"]):
        raise WeightsFileError(f"{where} is inconsistent: n_iter_={fitted['n_iter_']} for "
                               f"{len(fitted['loss_curve_'])} epochs in loss_curve_.")


def _shown(value):
    """A short description of ``value`` for messages."""
    if isinstance(value, np.ndarray):
        return f"an array of dtype {value.dtype} and shape {value.shape}: {str(value)[:60]}"
    return repr(value)[:80]
