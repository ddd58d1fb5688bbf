"""Forward operators ``A`` of the reconstruction model ``X = A(y) + noise``.

Operators: :class:`Identity` (denoising), :class:`Blur` (circular
convolution), :class:`Inpainting` (pixel mask), :class:`Downsampling`
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

:func:`check_adjoint` runs the dot test ``⟨A x, z⟩ = ⟨x, Aᵀ z⟩`` on any
operator; the estimator runs it at ``fit``.

Tensors derived from the parameters (FFT of a blur kernel, a random mask)
are built lazily for the shape, device and dtype of the input and cached;
the cache is not pickled.
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
