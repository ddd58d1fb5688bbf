"""One forward–backward iteration: the package against a minimal hand-written torch loop.

Usage (from the repository root; ``PYTHONPATH=.`` makes sure the checkout's
package is imported, not an installed copy)::

    PYTHONPATH=. python benchmarks/bench_kernels.py                 # full run (table below)
    PYTHONPATH=. python benchmarks/bench_kernels.py --quick         # smoke run
    PYTHONPATH=. python benchmarks/bench_kernels.py --output benchmarks/kernels.md

Problems, batch 32 of 64x64 float32 images, db4 with 3 levels, no grad, one
torch thread, step size 1 (``L = 1`` for all three), one weight per subband:

* denoise: ``u <- soft(u - tau W(W* u - y))``;
* deblur: the same with ``A`` a circular Gaussian blur (sigma 1.5) by FFT;
  every variant applies ``AᵀA`` (one FFT pair with ``|OTF|²``) to ``W* u`` and
  subtracts ``Aᵀy`` computed once, as the package's solvers do;
* inpaint + TI frame: ``A`` a 50 % pixel mask and ``W`` the cycle-spun
  Parseval frame with 2 shifts per axis (4 copies).

Variants, all timed in the same process, interleaved, on the same data:

* package: ``ForwardBackward(operator, WaveletL1(...)).step``, the code a fit
  runs, with the conv transforms (``old``: ``_use_matrix = False``, the
  transform code path before the matrix products; the rest of the step, the
  frame methods and the clamp soft threshold, is today's) or the matrix
  products (``new``); ``new, Aᵀ(Ax−y)``: the same step with the gradient as
  ``Aᵀ(A x − y)``, without ``Aᵀy`` precomputed (the step before ``normal``);
* transforms only: the hand-written loop below with its wavelet transform
  replaced by the package's (`forward`/`inverse` or the frame methods);
* hand-written: dense matrices per level and axis built from pywt
  (``D X D^T``, written back into the approximation block), the frame's
  shifts folded into the level-1 matrices, FFT blur with a precomputed
  transfer function, soft threshold as ``v - clamp(v, -t, t)``.

Times are CPU time of the calling thread (``time.thread_time``) per
iteration: the minimum over many interleaved repeats of the mean of a few
iterations (the minimum is the least disturbed by other load on a shared
machine).  Ratios are between numbers of the same run.  ``aten ops`` counts
every ``aten::`` event the profiler records in one step, nested ones
included.  ``max |du|`` is the largest difference to the hand-written iterate
after 10 iterations from the same start: the variants compute the same
thing.

A second table justifies the size limit of the matrix path: ``inverse(forward
(x))`` with matrix products and with the polyphase convs, 2 levels, for
images of side ``n`` (batch ``32 * 64**2 / n**2``, at least 1, so that every
row transforms the same number of pixels).
"""

import argparse
import ctypes
import math
import os
import time

import numpy as np
import pywt
import torch
from torch.profiler import profile

import retune_sklearn
from retune_sklearn.operators import Blur, Identity, Inpainting
from retune_sklearn.regularizers import WaveletL1
from retune_sklearn.solvers import ForwardBackward
from retune_sklearn.wavelets import WaveletTransform

BATCH, SIZE, WAVELET, LEVELS, N_SHIFTS, SIGMA = 32, 64, "db4", 3, 2, 1.5
TAU = 1.0


def _steady_malloc():
    """Keep glibc from returning 0.1-1 MB buffers to the OS between calls (see bench_wavelets.py)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.mallopt(-3, 1 << 28)  # M_MMAP_THRESHOLD
    libc.mallopt(-1, 1 << 28)  # M_TRIM_THRESHOLD


# --- the hand-written loop ----------------------------------------------------------

def _dwt_matrix(n, dtype):
    """One periodized analysis level as an (n, n) matrix: pywt.dwt of the unit vectors."""
    cols = [np.concatenate(pywt.dwt(e, WAVELET, mode="periodization")) for e in np.eye(n)]
    return torch.tensor(np.stack(cols, axis=1), dtype=dtype)


class HandWritten:
    """Dense per-level, per-axis matrices; optional frame with the shifts folded into level 1."""

    def __init__(self, dtype, n_shifts=None):
        self.mats = [_dwt_matrix(SIZE >> j, dtype) for j in range(LEVELS)]  # square: D_h = D_w
        if n_shifts:
            d1, s = self.mats[0], n_shifts ** 2
            self.g = torch.cat([torch.roll(d1, -a, 1) for a in range(n_shifts)])  # (2n, n)
            self.gh = self.g / math.sqrt(s)
            self.n_shifts = n_shifts

    def _levels(self, c):
        for d in self.mats[1:]:
            n = d.shape[0]
            c[:, :n, :n] = d @ c[:, :n, :n] @ d.T

    def _levels_inverse(self, c):
        for d in self.mats[:0:-1]:
            n = d.shape[0]
            c[:, :n, :n] = d.T @ c[:, :n, :n] @ d

    def analysis(self, x):
        d = self.mats[0]
        c = d @ x @ d.T
        self._levels(c)
        return c

    def synthesis(self, c):
        c = c.clone()
        self._levels_inverse(c)
        d = self.mats[0]
        return d.T @ c @ d

    def frame_analysis(self, x):  # (B, n, n) -> (B, S, n, n)
        b, n, k = x.shape[0], SIZE, self.n_shifts
        t = self.gh @ x @ self.g.T                                 # (B, k n, k n): blocks (a, b)
        c = t.view(b, k, n, k, n).transpose(2, 3).reshape(b * k * k, n, n)
        self._levels(c)
        return c.view(b, k * k, n, n)

    def frame_synthesis(self, u):
        b, n, k = u.shape[0], SIZE, self.n_shifts
        c = u.reshape(b * k * k, n, n).clone()
        self._levels_inverse(c)
        t = c.view(b, k, k, n, n).transpose(2, 3).reshape(b, k * n, k * n)
        return self.gh.T @ t @ self.g


def _soft(v, t):
    return v - v.clamp(-t, t)


# --- problems -------------------------------------------------------------------------

def _problem(name, dtype):
    """Operator, measurements and a hand-written (A^T, A^T A) for one problem."""
    gen = torch.Generator().manual_seed(0)
    shape = (BATCH, SIZE, SIZE)
    x_true = torch.rand(shape, generator=gen, dtype=dtype)
    if name == "denoise":
        operator = Identity()
        hand = (lambda r: r), (lambda x: x)
    elif name == "deblur":
        operator = Blur(sigma=SIGMA)
        otf = torch.fft.rfft2(torch.as_tensor(operator.padded_kernel((SIZE, SIZE)), dtype=dtype))
        otf_c, otf_gram = otf.conj(), otf.abs().square()
        hand = ((lambda r: torch.fft.irfft2(torch.fft.rfft2(r) * otf_c, s=(SIZE, SIZE))),
                (lambda x: torch.fft.irfft2(torch.fft.rfft2(x) * otf_gram, s=(SIZE, SIZE))))
    else:
        operator = Inpainting(keep_prob=0.5, random_state=0)
        mask = torch.as_tensor(operator.mask_array((SIZE, SIZE)), dtype=dtype)
        hand = (lambda r: r * mask), (lambda x: x * mask)
    y = operator.forward(x_true) + 0.02 * torch.randn(shape, generator=gen, dtype=dtype)
    return operator, y, hand


def _variants(name, dtype):
    """``{label: step}`` for one problem, plus the start point and the threshold map."""
    operator, y, (adj, gram) = _problem(name, dtype)
    back_projection = adj(y)
    frame = name == "inpaint + TI frame"
    reg_kw = dict(wavelet=WAVELET, levels=LEVELS, weights="subband",
                  translation_invariant=frame, n_shifts=N_SHIFTS)
    n_weights = 3 * LEVELS + 1
    weights = torch.linspace(0.01, 0.05, n_weights, dtype=dtype)
    index, _ = WaveletTransform(WAVELET, LEVELS).subband_index((SIZE, SIZE))
    thresholds = TAU * weights[index]                                # (n, n) map

    steps = {}
    regs = {"package old": WaveletL1(**reg_kw), "package new": WaveletL1(**reg_kw)}
    for label, reg in regs.items():
        reg._transform(2)._use_matrix = label != "package old"
        fb = ForwardBackward(operator, reg)
        aty = fb.back_projection(y)  # as in a fit: once per batch
        steps[label] = (lambda fb, aty: lambda u: fb.step(u, y, weights, TAU,
                                                          back_projection=aty))(fb, aty)
    # Today's step with the gradient as Aᵀ(A x − y) (A, then Aᵀ: two FFT pairs when deblurring).
    steps["package new, Aᵀ(Ax−y)"] = (lambda fb: lambda u: fb.step(u, y, weights, TAU))(fb)

    def loop(analysis, synthesis):
        def step(u):
            v = u - TAU * analysis(gram(synthesis(u)) - back_projection)
            return _soft(v, thresholds)
        return step

    for label, use_matrix in (("transforms old", False), ("transforms new", True)):
        W = WaveletTransform(WAVELET, LEVELS)
        W._use_matrix = use_matrix
        if frame:
            steps[label] = loop(lambda x, W=W: W.frame_forward(x, N_SHIFTS),
                                lambda u, W=W: W.frame_inverse(u, N_SHIFTS))
        else:
            steps[label] = loop(W.forward, W.inverse)
    hand = HandWritten(dtype, N_SHIFTS if frame else None)
    steps["hand-written"] = (loop(hand.frame_analysis, hand.frame_synthesis) if frame
                             else loop(hand.analysis, hand.synthesis))
    u0 = (hand.frame_analysis if frame else hand.analysis)(adj(y))
    return steps, u0


def _time_step(step, u0, number):
    u = u0
    t0 = time.thread_time()
    for _ in range(number):
        u = step(u)
    return (time.thread_time() - t0) / number


def _aten_ops(step, u0):
    with profile() as prof:
        step(u0)
    return sum(1 for e in prof.events() if e.name.startswith("aten::"))


def run(quick=False):
    number, repeat = (2, 3) if quick else (5, 30)
    dtype = torch.float32
    rows = []
    for name in ("denoise", "deblur", "inpaint + TI frame"):
        steps, u0 = _variants(name, dtype)
        with torch.no_grad():
            finals = {}
            for label, step in steps.items():
                u = u0
                for _ in range(10):
                    u = step(u)
                finals[label] = u
            best = dict.fromkeys(steps, float("inf"))
            for _ in range(repeat):  # interleaved, so load drift hits all variants alike
                for label, step in steps.items():
                    best[label] = min(best[label], _time_step(step, u0, number))
            ops = {label: _aten_ops(step, u0) for label, step in steps.items()}
        ref = finals["hand-written"]
        diff = {label: float((u - ref).abs().max()) for label, u in finals.items()}
        rows.append((name, best, ops, diff))
    return rows


CROSSOVER = (("haar", (64, 128, 256)), ("db4", (128, 256, 512)), ("sym8", (256, 512)))


def crossover(quick=False):
    """CPU ms of forward + inverse, matrix vs polyphase, per wavelet and image side."""
    number, repeat = (1, 2) if quick else (2, 8)
    rows = []
    for wavelet, sides in CROSSOVER:
        for n in sides:
            x = torch.randn(max(1, BATCH * SIZE ** 2 // n ** 2), n, n)
            transforms = {}
            for label, use_matrix in (("matrix", True), ("polyphase", False)):
                W = WaveletTransform(wavelet, 2)
                W._use_matrix, W._matrix_max_size = use_matrix, 10 ** 6
                transforms[label] = (lambda W: lambda u: W.inverse(W.forward(u)))(W)
            best = dict.fromkeys(transforms, float("inf"))
            with torch.no_grad():
                for _ in range(repeat):
                    for label, fn in transforms.items():
                        best[label] = min(best[label], _time_step(fn, x, number))
            default = "matrix" if WaveletTransform(wavelet, 2)._matrix_path((n, n)) else "polyphase"
            rows.append((wavelet, n, x.shape[0], best, default))
    return rows


def crossover_markdown(rows):
    lines = ["", "Matrix path against the polyphase convs, CPU ms of `inverse(forward(x))`, "
             "2 levels:", "",
             "| wavelet | side | batch | matrix | polyphase | polyphase/matrix | default |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for wavelet, n, batch, best, default in rows:
        lines.append(f"| {wavelet} | {n} | {batch} | {1e3 * best['matrix']:.2f} | "
                     f"{1e3 * best['polyphase']:.2f} | "
                     f"{best['polyphase'] / best['matrix']:.2f} | {default} |")
    return "\n".join(lines) + "\n"


def markdown(rows, command):
    lines = [f"`{command}`", "",
             f"torch {torch.__version__}, 1 thread, batch {BATCH}, {SIZE}x{SIZE} float32, "
             f"{WAVELET} {LEVELS} levels, frame {N_SHIFTS}x{N_SHIFTS} shifts; package from "
             f"`{retune_sklearn.__file__}`.", "",
             "CPU ms per iteration, and ratio to the hand-written loop (same run):", ""]
    labels = list(rows[-1][1])
    lines.append("| problem | " + " | ".join(labels) + " |")
    lines.append("|---|" + "---:|" * len(labels))
    for name, best, _, _ in rows:
        hand = best["hand-written"]
        cells = [f"{1e3 * best[k]:.2f} ({best[k] / hand:.2f}x)" if k in best else "—"
                 for k in labels]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "aten ops per iteration (profiler events, nested included):", ""]
    lines.append("| problem | " + " | ".join(labels) + " |")
    lines.append("|---|" + "---:|" * len(labels))
    for name, _, ops, _ in rows:
        lines.append(f"| {name} | " + " | ".join(str(ops[k]) if k in ops else "—"
                                                  for k in labels) + " |")
    lines += ["", "max |du| against the hand-written iterate after 10 iterations:", ""]
    lines.append("| problem | " + " | ".join(labels) + " |")
    lines.append("|---|" + "---:|" * len(labels))
    for name, _, _, diff in rows:
        lines.append(f"| {name} | " + " | ".join(f"{diff[k]:.1e}" if k in diff else "—"
                                                  for k in labels) + " |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (smoke run)")
    parser.add_argument("--output", help="also write the markdown table to this file")
    args = parser.parse_args()
    _steady_malloc()
    torch.set_num_threads(1)
    command = "PYTHONPATH=. python benchmarks/bench_kernels.py" + (" --quick" if args.quick else "")
    if args.output:
        command += f" --output {args.output}"
    load_before = os.getloadavg()[0]
    text = markdown(run(args.quick), command) + crossover_markdown(crossover(args.quick))
    text += (f"\nLoad average (1 min) {load_before:.1f} before, {os.getloadavg()[0]:.1f} after, "
             f"on {os.cpu_count()} cores: absolute times are inflated by other jobs; read "
             "the ratios, which come from interleaved repeats.\n")
    print(text)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
