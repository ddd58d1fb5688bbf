"""Regularizers (moved into a subpackage; split into families next)."""

from .sparsity import (L1Norm, LearnedDenoiser, Regularizer, Tikhonov, TotalVariation,
                       WaveletL1, __all__, soft_threshold)
