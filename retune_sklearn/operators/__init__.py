"""Forward operators (moved into a subpackage; split into families next)."""

from .convolution import (Blur, CallableOperator, Downsampling, Identity, Inpainting,
                          LinearOperator, MatrixOperator, __all__, check_adjoint,
                          gaussian_kernel, power_iteration)
