"""Torch's lazily imported machinery, imported once where Ctrl-C cannot break it.

Building the first optimizer of a process makes torch import
``torch._dynamo`` (``torch._compile`` wraps ``Optimizer.add_param_group``
with a lazy import), which imports sympy: seconds of imports. A
``KeyboardInterrupt`` in the middle leaves half-initialized modules in
``sys.modules`` (sympy without its ``core`` attribute), and every later
fit of the process fails. :func:`import_lazy_modules` imports them ahead,
with SIGINT deferred until the import is complete.
"""

import importlib
import signal
import sys
import threading
from contextlib import contextmanager

#: Modules that torch imports on first use of an optimizer (its construction,
#: then its first ``step``).
LAZY_MODULES = ("torch._dynamo", "torch.profiler._cupti_monitor")


@contextmanager
def deferred_sigint():
    """Run a block with SIGINT (Ctrl-C) held back, then deliver it.

    Only the main thread receives Python's signals; elsewhere (or when the
    handler was not set from Python) the block runs as it is.
    """
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or previous is None:
        yield
        return
    received = []
    signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received:  # the interrupt that arrived meanwhile, to the previous handler
            signal.raise_signal(signal.SIGINT)


def import_lazy_modules():
    """Import :data:`LAZY_MODULES` (once per process) without letting Ctrl-C cut it."""
    missing = [name for name in LAZY_MODULES if name not in sys.modules]
    if not missing:
        return
    with deferred_sigint():
        for name in missing:
            try:
                importlib.import_module(name)
            except ImportError:  # a torch without it: nothing to import ahead
                pass
