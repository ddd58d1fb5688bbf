"""Optional dependencies (scikit-image, matplotlib), imported when used."""

import importlib


def import_optional(module, package, *, feature="This function"):
    """Import ``module``, or raise an ImportError that says what to install.

    Parameters
    ----------
    module : str
        Dotted module name, e.g. ``"skimage.restoration"``.
    package : str
        The pip package that provides it, e.g. ``"scikit-image"``.
    feature : str, default="This function"
        What needs it, for the message.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"{feature} needs {package}: pip install {package}") from exc
