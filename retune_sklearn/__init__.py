"""Learn regularization weights of variational reconstruction models from data.

The main entry point is :class:`ReTuneRegularizer`, a scikit-learn estimator
that learns the weights of a variational model (forward operator + weighted
regularizers) by restarted Jacobian-free bilevel gradients (ReTune,
arXiv:2506.13239).
"""

from .estimator import ReTuneRegularizer

__version__ = "0.1.0.dev0"
__all__ = ["ReTuneRegularizer"]
