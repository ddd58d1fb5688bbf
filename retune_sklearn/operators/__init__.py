"""Forward operators ``A`` of the reconstruction model ``X = A(y) + noise``.

Operators: :class:`Identity` (denoising), :class:`Blur` (convolution,
periodic or reflective boundary), :class:`Inpainting` (pixel mask), :class:`Downsampling`
(anti-aliasing blur then decimation: super-resolution),
:class:`MatrixOperator` (a dense or sparse matrix, or a
:class:`scipy.sparse.linalg.LinearOperator`, acting on 1-D signals:
compressed sensing) and :class:`CallableOperator` (your own pair of torch
callables).

Every operator is a small parameter object (``get_params``/``set_params``
come from :class:`sklearn.base.BaseEstimator`, so ``clone`` and grid search
over ``operator__<param>`` work) with three torch methods acting on batches
of shape ``(n_samples, *signal_shape)``:

* ``forward(x)`` returns ``A x`` of shape ``(n_samples, *measurement_shape)``;
* ``adjoint(z)`` returns ``Aᵀ z``;
* ``norm(signal_shape)`` returns ``‖A‖`` (largest singular value).

The estimator also calls ``measurement_shape(signal_shape)`` and
``check_signal_shape(signal_shape)`` (which validates the parameters against
the class's ``_parameter_constraints``, then the shape); at ``fit`` it refuses
an object lacking one of :data:`OPERATOR_METHODS`, and runs
:func:`check_adjoint`, the dot test ``⟨A x, z⟩ = ⟨x, Aᵀ z⟩``.

Tensors derived from the parameters (FFT of a blur kernel, a random mask)
are built lazily for the shape, device and dtype of the input and cached;
assigning a parameter drops them; the cache is not pickled.

One module per family: ``_base`` (the contract), ``masks``, ``convolution``,
``matrix``, ``callable``.
"""

from ._base import OPERATOR_METHODS, LinearOperator, check_adjoint, power_iteration
from .callable import CallableOperator
from .convolution import Blur, Downsampling, gaussian_kernel
from .masks import Identity, Inpainting
from .matrix import MatrixOperator

__all__ = [
    "Blur",
    "CallableOperator",
    "Downsampling",
    "Identity",
    "Inpainting",
    "LinearOperator",
    "MatrixOperator",
    "OPERATOR_METHODS",
    "check_adjoint",
    "gaussian_kernel",
    "power_iteration",
]
