"""Checks of the data and parameters of :class:`~retune_sklearn.ReTuneRegularizer`.

Plain functions that take what they check and raise ``ValueError`` or
``TypeError`` with messages that name the argument and what was expected.
"""

import warnings
from contextlib import contextmanager
from numbers import Integral, Real

import numpy as np
import scipy.sparse
import torch
from sklearn.base import clone
from sklearn.utils._param_validation import Interval, InvalidParameterError, make_constraint
from sklearn.utils.validation import check_array

from ._params import check_component
from .operators import OPERATOR_METHODS, Identity
from .regularizers import REGULARIZER_METHODS, TotalVariation, WaveletL1

#: Cap on ``K * T``, the iterations of one solve: above it a solve of even a
#: small batch takes hours, which is almost certainly a typo (K=10**6).
MAX_ITERATIONS = 10**6


class NotRealError(TypeError, ValueError):
    """Non-real data. A ``TypeError`` (the dtype is wrong) that is also the
    ``ValueError`` scikit-learn raises for complex data, so code written for
    either convention catches it."""


def check_data(data, name, *, ensure_2d=True):
    """``check_array`` with errors that name the argument and what was expected.

    Real numbers (float, integer, boolean, object arrays of numbers) are
    accepted; integers and booleans become float64. Torch tensors on any
    device are converted with ``.detach().cpu().numpy()``, those of a dtype
    NumPy lacks (bfloat16, float8) to float32 first.
    """
    if scipy.sparse.issparse(data):
        raise TypeError(f"{name} is a sparse matrix; sparse input is not supported (signals "
                        f"and measurements are dense arrays). Convert it with {name}.toarray().")
    if torch.is_tensor(data):
        data = _tensor_to_numpy(data, name)
    array = _real_array(np.asarray(data), name)
    if array.ndim < 1 + ensure_2d:
        raise ValueError(f"{name} must have shape (n_samples, n_features) or (n_samples, "
                         f"*shape): the first axis indexes samples. Got a {array.ndim}-D "
                         f"array of shape {array.shape}. Reshape your data: one sample is "
                         f"{name}[None].")
    if array.size == 0:
        # Worded as check_array's messages, which scikit-learn's checks expect.
        empty = "sample(s)" if len(array) == 0 else "feature(s)"
        raise ValueError(f"{name} is empty: 0 {empty} (shape={array.shape}) while a minimum "
                         "of 1 is required.")
    return check_array(array, allow_nd=True, ensure_2d=ensure_2d, copy=False,
                       dtype=[np.float64, np.float32], input_name=name)


def _tensor_to_numpy(tensor, name):
    """A torch tensor of any device and real dtype as a NumPy array on the CPU.

    The dtypes NumPy lacks become float32, which holds them exactly
    (bfloat16, float8) or the dequantized values (quantized tensors).
    """
    if tensor.layout != torch.strided:
        raise TypeError(f"{name} is a sparse torch tensor; sparse input is not supported "
                        f"(signals and measurements are dense arrays). Convert it with "
                        f"{name}.to_dense().")
    if tensor.device.type == "meta":
        raise TypeError(f"{name} is a torch tensor on the 'meta' device, which holds no "
                        "values.")
    if tensor.is_complex():
        raise NotRealError(_not_real_message(name, tensor.dtype, complex_=True))
    tensor = tensor.detach().cpu().resolve_neg()
    if tensor.is_quantized:
        tensor = tensor.dequantize()
    try:
        return tensor.numpy()
    except TypeError:  # a dtype NumPy lacks: bfloat16, float8
        if not tensor.is_floating_point():
            raise TypeError(f"{name} is a torch tensor of dtype {tensor.dtype}, which has "
                            "no NumPy equivalent; convert it to a float tensor.") from None
        return tensor.float().numpy()


def _not_real_message(name, dtype, *, complex_):
    complex_note = " Complex data not supported." if complex_ else ""
    return (f"{name} must hold real numbers (float, integer or boolean); got dtype "
            f"{dtype}.{complex_note} Pass the real part, magnitude or decoded values "
            "explicitly.")


def _real_array(array, name):
    """``array`` if it holds real numbers, object arrays of numbers as float64."""
    if array.dtype.kind == "O":
        try:
            array = array.astype(np.float64)
        except (TypeError, ValueError) as error:
            raise TypeError(f"{name} must hold real numbers; got an object array with "
                            f"non-numeric entries ({error}).") from None
    if array.dtype.kind not in "biuf":
        raise NotRealError(_not_real_message(name, array.dtype,
                                             complex_=array.dtype.kind == "c"))
    return array


def check_mask(mask, X):
    """Validate per-sample 0/1 masks against measurements ``X`` (None passes)."""
    if mask is None:
        return None
    mask = check_data(mask, "mask")
    if mask.shape != X.shape:
        if mask.ndim == 2 and mask.shape[0] == X.shape[0] and mask.shape[1] == X[0].size:
            mask = mask.reshape(X.shape)
        else:
            raise ValueError(f"mask has shape {mask.shape}; expected the shape of X "
                             f"{X.shape} (one 0/1 mask per measurement), or flat "
                             f"({X.shape[0]}, {X[0].size}).")
    if not np.all((mask == 0) | (mask == 1)):
        raise ValueError("mask must contain only 0 and 1 (or booleans): 1 where an entry "
                         "of X is observed.")
    if not mask.any():
        raise ValueError("mask observes no entry (all zeros).")
    return mask


def check_iterations(K, T):
    """Refuse ``K * T`` above :data:`MAX_ITERATIONS`.

    The product is taken in Python integers: numpy integers (``np.int64(2**32)``,
    ``np.uint8(200)``) would overflow and slip under the cap. ``K="auto"``
    counts as its largest choice.
    """
    from .contraction import AUTO_K_MAX  # (contraction imports solvers, which import this)
    K, T = int(AUTO_K_MAX if isinstance(K, str) and K == "auto" else K), int(T)
    if K * T > MAX_ITERATIONS:
        raise ValueError(f"K={K} and T={T} ask for K * T = {K * T} "
                         f"iterations per solve; at most {MAX_ITERATIONS:.0e} are allowed "
                         "(such a solve would take hours). Lower K or T.")


def integer_parameters(estimator):
    """Names of the parameters of ``estimator`` that its ``_parameter_constraints``
    declare integers (an ``Interval`` of ``Integral``), and not also booleans."""
    return [name for name, constraints in estimator._parameter_constraints.items()
            if any(isinstance(c, Interval) and c.type is Integral for c in constraints)
            and not {"boolean", "verbose"} & {c for c in constraints if isinstance(c, str)}]


def check_integer_parameters(estimator):
    """Refuse booleans for the integer parameters of ``estimator``, all at once.

    ``bool`` is an ``Integral`` and scikit-learn's ``Interval(Integral, ...)``
    takes ``True`` for 1 (``K=True`` would run one iteration), or refuses
    ``np.True_`` with a message that does not say why.
    """
    for name in integer_parameters(estimator):
        value = getattr(estimator, name)
        if isinstance(value, (bool, np.bool_)):
            constraints = [str(make_constraint(c))
                           for c in estimator._parameter_constraints[name]]
            expected = (f"{', '.join(constraints[:-1])} or {constraints[-1]}"
                        if len(constraints) > 1 else constraints[0])
            raise InvalidParameterError(
                f"The {name!r} parameter of {type(estimator).__name__} must be {expected}, "
                f"not a bool. Got {value!r} instead.")


@contextmanager
def python_integers(estimator):
    """Run a block with the numpy-integer parameters of ``estimator`` as Python ints.

    Everything that computes with them (``T * K`` in the solves,
    ``range(max_epochs)``, chunk sizes) then works in Python integers, which
    do not overflow (``np.uint8(16) * np.uint8(16)`` is 0). The values given
    are restored afterwards, so that ``get_params`` is not changed by a call.
    """
    given = {name: getattr(estimator, name) for name in integer_parameters(estimator)}
    converted = {name: int(value) for name, value in given.items()
                 if isinstance(value, np.integer)}
    vars(estimator).update(converted)
    try:
        yield
    finally:
        vars(estimator).update({name: given[name] for name in converted})


def check_fit_data(X, y):
    """Check training measurements ``X`` and signals ``y`` of the same length."""
    if y is None:  # worded as scikit-learn's own message
        raise ValueError("ReTuneRegularizer requires y to be passed, but the target y is "
                         "None: y holds the clean signals paired with X.")
    X = check_data(X, "X")
    y = check_data(y, "y", ensure_2d=False)
    if y.ndim < 2:
        raise ValueError(f"y must have shape (n_samples, n_features) or (n_samples, "
                         f"*signal_shape); got a {y.ndim}-D array of shape {y.shape}.")
    if X.shape[0] != y.shape[0]:
        raise ValueError(f"X and y have different numbers of samples: {X.shape[0]} "
                         f"and {y.shape[0]}.")
    if y.ndim > 4:
        raise ValueError(f"y must have at most 4 axes (n, C, H, W); got shape {y.shape}.")
    if y.ndim == 4 and y.shape[-1] in (1, 3, 4) and y.shape[1] > 4:
        # Read as (n, C, H, W), this would be y.shape[1] channels of H×C images.
        raise ValueError(f"y has shape {y.shape}: channels-last images (n, H, W, C)? "
                         "Images with channels are read channels first, (n, C, H, W). "
                         "Pass np.moveaxis(y, -1, 1) (and the same for X, when it holds "
                         "images too).")
    return X, y


def check_fitted_signals(y, y_sample_shape):
    """Refuse signals ``y`` of another sample shape than the fitted one."""
    if y.shape[1:] != y_sample_shape:
        raise ValueError(f"y has samples of shape {y.shape[1:]}, but "
                         f"ReTuneRegularizer was fitted on y of sample shape "
                         f"{y_sample_shape}.")


def check_score_signals(y, expected, data_range=None):
    """Check the signals ``y`` passed to ``score``: shape ``expected``; warn (see
    :func:`check_data_range`) if they span far more than ``data_range``."""
    y = check_data(y, "y", ensure_2d=False)
    if y.shape != expected:
        raise ValueError(f"y has shape {y.shape}; expected {expected} (one signal per "
                         "sample of X, in the layout of y in fit).")
    if data_range is not None:
        check_data_range(y, data_range)
    return y


def check_data_range(y, data_range):
    """Warn (once per call) when the signals ``y`` span more than twice ``data_range``.

    ``data_range`` is the peak-to-peak range the PSNR assumes; 8-bit images
    (0 to 255) with the default ``data_range=1`` score about 48 dB too low,
    around -28 dB, which looks like a broken model rather than a unit
    mismatch. A ``data_range`` that is not a positive number is left to the
    parameter validation.
    """
    if not (isinstance(data_range, Real) and not isinstance(data_range, bool)
            and 0 < data_range < np.inf):
        return
    low, high = float(np.min(y)), float(np.max(y))
    spread = high - low
    if spread > 2 * data_range:
        warnings.warn(f"y spans [{low:.4g}, {high:.4g}] (peak-to-peak {spread:.4g}), far more "
                      f"than data_range={float(data_range)!r}, the peak-to-peak range the "
                      f"PSNR assumes: scores are {20 * np.log10(spread / data_range):.1f} dB "
                      f"lower than with data_range={spread:.4g}. Set data_range to the range "
                      "of the signals (e.g. data_range=255 for 8-bit images) or rescale y.",
                      UserWarning, stacklevel=4)


def resolve_signal_shape(signal_shape, y):
    """Shape of one signal: ``signal_shape`` if given, else y's sample shape."""
    if signal_shape is None:
        return y.shape[1:]
    shape = tuple(signal_shape)
    if (not all(isinstance(s, Integral) and not isinstance(s, bool) and s > 0 for s in shape)
            or not 1 <= len(shape) <= 3):
        raise ValueError("signal_shape must be a tuple of 1 to 3 positive integers; "
                         f"got {signal_shape!r}.")
    if int(np.prod(shape)) != int(np.prod(y.shape[1:])):
        raise ValueError(f"signal_shape={shape} holds {int(np.prod(shape))} entries "
                         f"but each y sample has {int(np.prod(y.shape[1:]))}.")
    return shape


def _layout_hint(shape, expected):
    """How to turn X of ``shape`` into a stack of measurements of shape ``expected``.

    Recognizes one measurement without its sample axis and channels-last
    images; an empty string when neither applies.
    """
    shape, expected = tuple(shape), tuple(expected)
    if shape == expected:
        return (f" X looks like one measurement of shape {expected} without the sample "
                f"axis (axis 0 indexes samples): pass X[None], of shape {(1, *expected)}.")
    if len(expected) == 3 and shape[1:] == expected[1:] + expected[:1]:
        return (" X looks like channels-last images (n, H, W, C); measurements are "
                "channels first, (n, C, H, W): pass np.moveaxis(X, -1, 1).")
    return ""


def check_measurements(X, measurement_shape, n_features_in):
    """Check measurements against the fitted layout; flat ones are reshaped."""
    X = check_data(X, "X")
    if X.shape[1:] == measurement_shape:
        return X
    if X.ndim == 2 and X.shape[1] == n_features_in:
        return X.reshape(len(X), *measurement_shape)
    hint = _layout_hint(X.shape, measurement_shape)
    if X.ndim == 2:  # flat X: the number of features is what matters
        raise ValueError(f"X has {X.shape[1]} features, but ReTuneRegularizer is "
                         f"expecting {n_features_in} features as input "
                         f"(measurements of shape {measurement_shape}, possibly flattened, "
                         f"stacked along axis 0).{hint}")
    raise ValueError(f"X has samples of shape {X.shape[1:]} ({int(np.prod(X.shape[1:]))} "
                     f"features), but ReTuneRegularizer was fitted on measurements of "
                     f"shape {measurement_shape} ({n_features_in} features): X must have "
                     f"shape (n_samples, {', '.join(map(str, measurement_shape))}).{hint}")


def check_measurement_shape(X_shape, signal_shape, measurement_shape):
    """Refuse samples of ``X`` that the operator does not produce (flat ones pass)."""
    flat = (int(np.prod(measurement_shape)),)
    if tuple(X_shape) not in (measurement_shape, flat):
        hint = _layout_hint((None, *X_shape), measurement_shape)  # X of n samples
        raise ValueError(f"X has samples of shape {tuple(X_shape)}, but the operator maps "
                         f"signals of shape {signal_shape} (from y) to measurements of "
                         f"shape {measurement_shape}.{hint}")


def resolve_components(operator, regularizer):
    """Fresh copies of the operator and regularizer, with the defaults resolved.

    Raises ``TypeError`` if either lacks a method the estimator calls
    (``OPERATOR_METHODS``, ``REGULARIZER_METHODS``).
    """
    operator = Identity() if operator in (None, "identity") else operator
    if regularizer is None:
        regularizer = TotalVariation()
    elif regularizer == "wavelet":
        regularizer = WaveletL1()
    check_component(operator, OPERATOR_METHODS, "operator")
    check_component(regularizer, REGULARIZER_METHODS, "regularizer")
    return clone(operator), clone(regularizer)


def check_implicit_solver(implicit_solver, hypergradient, regularizer):
    """``implicit_solver="cg"`` needs a soft-threshold prox (its step's Jacobian is a
    0/1 mask times a symmetric matrix); raise ``ValueError`` otherwise."""
    if (implicit_solver == "cg" and hypergradient == "implicit"
            and not getattr(regularizer, "soft_threshold_prox", False)):
        raise ValueError(
            f"implicit_solver='cg' needs a regularizer whose prox is an elementwise soft "
            f"threshold (L1Norm, or WaveletL1 without channels='group'), where the adjoint "
            f"system is symmetric on the active set; got {regularizer!r}. Use "
            f"implicit_solver='gmres'.")


#: The torch device types the computations run on (and are tested on).
DEVICE_TYPES = ("cpu", "cuda")


def check_device(device):
    """The torch device named by ``device`` (not "auto"), if of a supported type;
    whether it is available here is not checked."""
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"device={device!r} is not a valid torch device "
                         "('auto', 'cpu', 'cuda', 'cuda:1', ...).") from error
    if resolved.type not in DEVICE_TYPES:
        raise ValueError(f"device={device!r} is a torch device of type {resolved.type!r}, "
                         "which ReTuneRegularizer does not support: use 'auto', 'cpu' or "
                         "'cuda' ('cuda:1', ...).")
    return resolved


def resolve_device(device):
    """The torch device of the ``device`` parameter; "auto" prefers CUDA.

    Only CPU and CUDA devices are accepted: on others (``"mps"``, ``"xpu"``,
    ``"meta"``, ...) the solves fail deep inside torch, if torch was built
    with them at all.
    """
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = check_device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} asks for CUDA, but torch sees no CUDA "
                         "device here; use device='auto' or 'cpu'. A model fitted on a "
                         "GPU predicts on the CPU after est.set_params(device='cpu').")
    if resolved.type == "cuda" and (resolved.index or 0) >= torch.cuda.device_count():
        raise ValueError(f"device={device!r}: torch sees only "
                         f"{torch.cuda.device_count()} CUDA device(s).")
    return resolved


def check_init_weight(init_weight, names, name="init_weight"):
    """Explicit weights (``init_weight``) as one positive finite weight per name."""
    n_weights = len(names)
    init = np.asarray(init_weight, dtype=np.float64)
    if init.ndim > 1 or init.size not in (1, n_weights):
        raise ValueError(f"{name} must be a number or hold one weight per name "
                         f"in weight_names_ ({n_weights}: {names}); got shape "
                         f"{init.shape}.")
    init = np.broadcast_to(init, (n_weights,))
    if not np.all(np.isfinite(init) & (init > 0)):
        raise ValueError(f"{name} must hold positive finite weights; got {init}.")
    return init


def check_weights(weights, names, n_samples, name="weights"):
    """Weights shared by the samples (as :func:`check_init_weight`) or one row of
    positive finite weights per sample, shape ``(n_samples, n_weights)``."""
    array = np.asarray(weights, dtype=np.float64)
    if array.ndim != 2:
        return check_init_weight(weights, names, name=name)
    if array.shape != (n_samples, len(names)):
        raise ValueError(f"{name} of shape (n_samples, n_weights) must be ({n_samples}, "
                         f"{len(names)}) here (one row per sample of X, one column per "
                         f"name in {names}); got shape {array.shape}.")
    if not np.all(np.isfinite(array) & (array > 0)):
        raise ValueError(f"{name} must hold positive finite weights; got {array}.")
    return array


def check_continuable(fitted_names, fitted_shapes, names, shapes):
    """Refuse to continue a fit whose weights or network differ from the current ones."""
    if names != fitted_names or shapes != fitted_shapes:
        raise ValueError(f"warm_start=True: the fitted model has the weights "
                         f"{fitted_names} (network tensors {fitted_shapes}), but the "
                         f"current regularizer and data give {names} ({shapes}); they "
                         "cannot be continued. Set warm_start=False to start afresh.")


def check_continuable_adaptation(fitted_statistic, statistic):
    """Refuse to continue a fit whose adaptive statistic differs from ``adaptive_weights``."""
    if fitted_statistic != statistic:
        raise ValueError(f"adaptive_weights={statistic!r}, but the fitted model was learned "
                         f"with adaptive_weights={fitted_statistic!r}: its weights cannot be "
                         "continued (partial_fit, warm_start=True). Set adaptive_weights back, "
                         "or fit afresh with warm_start=False.")
