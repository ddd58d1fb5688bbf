"""WaveletTransform: matrix path (default) vs the polyphase and index-based conv paths.

Usage::

    PYTHONPATH=. python benchmarks/bench_wavelets.py            # full run
    PYTHONPATH=. python benchmarks/bench_wavelets.py --quick    # smoke run

CPU times, in ms per call, ``forward``, ``inverse`` and ``forward + inverse +
backward`` on a (32, 1, 64, 64) float32 batch with 3 levels, for db4 and haar,
for five variants selected with private class flags, all timed in the same
process, interleaved, on the same input:

* index: index-based wrap + strided conv / conv_transpose, autograd through
  them (``_use_polyphase = False, _adjoint_grad = False``);
* polyphase: polyphase convs, autograd through them (``_use_matrix = False,
  _adjoint_grad = False``);
* poly+adj: polyphase convs, gradient = the adjoint transform
  (``_use_matrix = False``: the default before the matrix path);
* matrix: dense matrix products, autograd through them (``_adjoint_grad =
  False``): is the custom gradient still worth it?
* new (default): matrix products, gradient = the adjoint transform.

Each time is the minimum over many repeats of the mean of 3 calls: the minimum
is the least disturbed by other load on a shared machine.  On glibc the
allocator is pinned first (see `_steady_malloc`).

``torch.set_num_threads(1)``: the tensors are tiny (32 x 64 x 64), so intra-op
threads only add synchronization overhead and make timings noisy on a shared
machine; it also matches the test suite and the single-threaded solves this
transform is used in.
"""

import argparse
import ctypes
import time

import torch

from retune_sklearn.wavelets import WaveletTransform

SHAPE = (32, 1, 64, 64)
LEVELS = 3
WAVELETS = ("db4", "haar")


def _steady_malloc():
    """Keep glibc from returning 0.1-1 MB buffers to the OS between calls.

    Otherwise glibc's dynamic mmap threshold decides, from the allocation
    history, whether such buffers are fresh mmaps that page-fault on first
    touch; the same forward then took 0.9 or 2.5 ms depending on what ran
    before it.  Same as MALLOC_MMAP_THRESHOLD_/MALLOC_TRIM_THRESHOLD_.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: nothing to pin
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    libc.mallopt(m_mmap_threshold, 1 << 28)
    libc.mallopt(m_trim_threshold, 1 << 28)


def _ops(W, x):
    """The three timed closures for one transform and input."""
    c = W.forward(x)
    xg = x.clone().requires_grad_()

    def fwd_inv_bwd():
        W.inverse(W.forward(xg)).square().sum().backward()

    return {"forward": lambda: W.forward(x), "inverse": lambda: W.inverse(c),
            "fwd+inv+bwd": fwd_inv_bwd}


def _time_ms(fn, number, repeat):
    """Min over `repeat` of the mean CPU time of `number` calls, in ms.

    CPU time of the calling thread: with one torch thread it is the cost of
    the work, where the wall time also counts other jobs on a shared machine.
    """
    fn()  # warm up (caches, allocator)
    times = []
    for _ in range(repeat):
        t0 = time.thread_time()
        for _ in range(number):
            fn()
        times.append((time.thread_time() - t0) / number)
    return 1e3 * min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    args = parser.parse_args()
    number, repeat = (1, 5) if args.quick else (3, 40)
    _steady_malloc()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    x = torch.randn(SHAPE)

    variants = {"index": dict(_use_polyphase=False, _adjoint_grad=False),
                "polyphase": dict(_use_matrix=False, _adjoint_grad=False),
                "poly+adj": dict(_use_matrix=False), "matrix": dict(_adjoint_grad=False),
                "new": {}}
    print(f"shape {SHAPE} float32, levels={LEVELS}, 1 thread, "
          f"torch {torch.__version__}; CPU ms per call\n")
    print("| wavelet | op | " + " | ".join(variants) + " | poly+adj/new |")
    print("|---|---|" + "---:|" * (len(variants) + 1))
    for name in WAVELETS:
        ops, ref = {}, None
        for label, flags in variants.items():
            W = WaveletTransform(name, LEVELS)
            W.__dict__.update(flags)  # private flags select the variant
            ref = W.forward(x) if ref is None else ref
            torch.testing.assert_close(W.forward(x), ref)  # same map
            ops[label] = _ops(W, x)
        for op in ops["new"]:
            best = dict.fromkeys(variants, float("inf"))
            for _ in range(2):  # interleave so load drift hits all variants alike
                for label in variants:
                    best[label] = min(best[label], _time_ms(ops[label][op], number, repeat))
            cells = " | ".join(f"{best[label]:.2f}" for label in variants)
            print(f"| {name} | {op} | {cells} | {best['poly+adj'] / best['new']:.1f}x |")


if __name__ == "__main__":
    main()
