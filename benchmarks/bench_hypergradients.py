"""Hypergradient modes (jfb / unrolled / implicit) on 2-D deblurring.

Usage::

    python benchmarks/bench_hypergradients.py            # full run (~10 min, 2 CPU cores)
    python benchmarks/bench_hypergradients.py --quick    # smoke run (< 1 min)
    python benchmarks/bench_hypergradients.py --update-readme   # also refresh README table

Problem: Blur(sigma=1.5) + Gaussian noise 0.01 on 64×64 grayscale patches of
scikit-image photos (``make_image_problem``), WaveletL1() (db4, 3 levels, one
weight per subband), batch 32. For every (K, T) of the grid and every mode it
measures, in one process:

* the wall time of one outer step (forward solve + loss + backward) and its
  ratio to one no-grad solve of the same T·K iterations (same batch, same
  weights, interleaved with the step; min over repetitions for short solves);
* the bytes autograd saves for the backward pass during that step (every
  tensor handed to ``torch.autograd.graph.saved_tensors_hooks``, counted once
  per storage): exactly what backprop keeps alive, deterministic, and visible
  on CPU where tracemalloc does not see torch allocations; on CUDA also
  ``torch.cuda.max_memory_allocated`` during the step;
* the cosine and relative error of the hypergradient against the implicit
  (DEQ) hypergradient at a tightly converged equilibrium, in float64 on the
  first ``grad_samples`` samples of the batch (the reference needs thousands
  of iterations on this ill-conditioned problem, so it is kept small);

then trains the three modes for the same number of epochs at a few (K, T)
and compares test PSNR, and compares ReTune (one weight per subband, jfb)
with GridSearchCV over one scalar weight (20 values, cv=2).

All results are printed and written to ``benchmarks/output/hypergradients.md``
(and ``.json``).
"""

import argparse
import contextlib
import json
import math
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV

from retune_sklearn import ReTuneRegularizer
from retune_sklearn.datasets import make_image_problem
from retune_sklearn.metrics import psnr
from retune_sklearn.operators import Blur
from retune_sklearn.regularizers import WaveletL1
from retune_sklearn.solvers import ForwardBackward, relative_residual, restarted_solve

MODES = ("jfb", "unrolled", "implicit")
HERE = Path(__file__).resolve().parent
OUTPUT_DIR = HERE / "output"
README = HERE / "README.md"
BEGIN, END = "<!-- BEGIN RESULTS -->", "<!-- END RESULTS -->"

FULL = dict(
    patch_size=64, batch_size=32, Ks=(1, 5, 10, 20), Ts=(1, 5, 20, 50),
    blur_sigma=1.5, noise_sigma=0.01, wavelet="db4", levels=3,
    # λ of every subband where steps and gradients are measured. At 3e-3 the
    # implicit reference itself still moves by 8% between 2000 and 4000
    # iterations (adjoint capped at 20000); at 1e-2 it moves by 5e-6.
    eval_weight=1e-2,
    repeats=(3, 2), repeat_below=100,  # min of 3 timings when T·K <= 100, else of 2
    grad_samples=4, ref_iters=4000, ref_tol=1e-8, ref_max_iter=20000,
    n_train=64, n_test=32, epochs=10, learning_rate=0.1,
    train_configs=((10, 5), (5, 2)),
    grid_size=20, grid_range=(3e-5, 3e-2), cv=2, search_config=(10, 5),
)
QUICK = dict(
    FULL, patch_size=32, batch_size=4, Ks=(1, 3), Ts=(1, 4), levels=2,
    repeats=(1, 1), grad_samples=2, ref_iters=400, ref_max_iter=2000,
    n_train=8, n_test=4, epochs=2, train_configs=((3, 2),),
    grid_size=3, search_config=(3, 2),
)


# ------------------------------------------------------------------ helpers
def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class SavedTensorMeter:
    """Bytes of the tensors autograd saves for backward (once per storage)."""

    def __init__(self):
        self.storages = {}

    def pack(self, tensor):
        try:
            storage = tensor.untyped_storage()
            self.storages[(str(tensor.device), storage.data_ptr())] = storage.nbytes()
        except (RuntimeError, NotImplementedError):  # e.g. sparse or meta tensors
            self.storages[("id", id(tensor))] = tensor.numel() * tensor.element_size()
        return tensor

    @staticmethod
    def unpack(tensor):
        return tensor

    @property
    def nbytes(self):
        return sum(self.storages.values())


class Problem:
    """One batch of the deblurring problem and the solver pieces."""

    def __init__(self, X, Y, cfg, device, dtype):
        self.operator = Blur(sigma=cfg["blur_sigma"])
        self.regularizer = WaveletL1(cfg["wavelet"], levels=cfg["levels"])
        self.model = ForwardBackward(self.operator, self.regularizer)
        self.X = torch.as_tensor(X, device=device, dtype=dtype)
        self.Y = torch.as_tensor(Y, device=device, dtype=dtype)
        self.device, self.dtype = device, dtype
        lipschitz = self.model.lipschitz(tuple(Y.shape[1:]), device=device, dtype=torch.float64
                                         if device.type == "cpu" else dtype)
        self.stepsize = 1.0 / lipschitz
        n_weights = len(self.regularizer.weight_names(tuple(Y.shape[1:])))
        self.log_weights = torch.full((n_weights,), math.log(cfg["eval_weight"]),
                                      device=device, dtype=dtype, requires_grad=True)

    def step_fn(self, weights):
        def step(u):
            return self.model.step(u, self.X, weights, self.stepsize)
        return step

    def loss(self, u):
        return torch.mean((self.regularizer.synthesis(u) - self.Y) ** 2)

    def nograd_solve(self, K, T):
        with torch.no_grad():
            step = self.step_fn(self.log_weights.exp())
            u = restarted_solve(step, self.model.initial_point(self.X), K, T, "none")
            return self.loss(u)

    def outer_step(self, K, T, mode, meter=None, u0=None, implicit_tol=1e-6,
                   implicit_max_iter=200):
        """Forward solve + loss + backward; returns (grad, hit_implicit_cap)."""
        self.log_weights.grad = None
        hooks = (torch.autograd.graph.saved_tensors_hooks(meter.pack, meter.unpack)
                 if meter is not None else contextlib.nullcontext())
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            with hooks:
                step = self.step_fn(self.log_weights.exp())
                start = self.model.initial_point(self.X) if u0 is None else u0
                u = restarted_solve(step, start, K, T, mode, implicit_tol=implicit_tol,
                                    implicit_max_iter=implicit_max_iter)
                loss = self.loss(u)
            loss.backward()
        capped = any(issubclass(w.category, ConvergenceWarning) for w in caught)
        return self.log_weights.grad.detach().clone(), capped


def _timed(fn, device, repeats):
    """Min over ``repeats`` of the wall time and of the process CPU time."""
    wall, cpu, out = math.inf, math.inf, None
    for _ in range(repeats):
        _sync(device)
        start, start_cpu = time.perf_counter(), time.process_time()
        out = fn()
        _sync(device)
        wall = min(wall, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - start_cpu)
    return wall, cpu, out


def _cos_rel(g, ref):
    g, ref = g.double().cpu().numpy(), ref.double().cpu().numpy()
    norms = np.linalg.norm(g) * np.linalg.norm(ref)
    cos = float(g @ ref / norms) if norms > 0 else float("nan")
    return cos, float(np.linalg.norm(g - ref) / np.linalg.norm(ref))


# ------------------------------------------------------------------ parts
def measure_steps(problem, cfg, max_unrolled_bytes, log):
    """Time and saved-for-backward bytes of one outer step, per (K, T, mode)."""
    device = problem.device
    rows = []
    problem.nograd_solve(2, 1)  # warm-up (caches, allocator, autograd)
    for mode in MODES:
        problem.outer_step(2, 2, mode)
    per_iteration = SavedTensorMeter()
    problem.outer_step(4, 1, "unrolled", meter=per_iteration)
    bytes_per_iter = per_iteration.nbytes / 4
    for K in cfg["Ks"]:
        for T in cfg["Ts"]:
            repeats = cfg["repeats"][0 if T * K <= cfg["repeat_below"] else 1]
            nograd_time = nograd_cpu = math.inf
            results = {mode: dict(time=math.inf, cpu=math.inf) for mode in MODES}
            skip_unrolled = bytes_per_iter * T * K > max_unrolled_bytes
            for _ in range(repeats):  # interleave the baseline and the modes
                t, c, _ = _timed(lambda K=K, T=T: problem.nograd_solve(K, T), device, 1)
                nograd_time, nograd_cpu = min(nograd_time, t), min(nograd_cpu, c)
                for mode in MODES:
                    if mode == "unrolled" and skip_unrolled:
                        continue
                    meter = SavedTensorMeter()
                    if device.type == "cuda":
                        torch.cuda.reset_peak_memory_stats(device)
                        base = torch.cuda.memory_allocated(device)
                    t, c, (_, capped) = _timed(
                        lambda K=K, T=T, mode=mode, meter=meter: problem.outer_step(
                            K, T, mode, meter=meter), device, 1)
                    r = results[mode]
                    r["time"], r["cpu"] = min(r["time"], t), min(r["cpu"], c)
                    r["saved_bytes"] = meter.nbytes
                    r["implicit_capped"] = capped
                    if device.type == "cuda":
                        r["cuda_peak_bytes"] = torch.cuda.max_memory_allocated(device) - base
            for mode in MODES:
                r = results[mode]
                row = dict(K=K, T=T, TK=T * K, mode=mode, nograd_time=nograd_time,
                           nograd_cpu=nograd_cpu)
                if mode == "unrolled" and skip_unrolled:
                    row.update(skipped=f"predicted {bytes_per_iter * T * K / 1e9:.1f} GB "
                                       f"> --max-unrolled-gb")
                else:
                    # On CPU (one torch thread) the process CPU time is the cost
                    # of the step itself, robust to other load on the machine.
                    row.update(r, ratio=(r["cpu"] / nograd_cpu if device.type == "cpu"
                                         else r["time"] / nograd_time))
                rows.append(row)
                log(_format_step_row(row))
    return rows


def measure_accuracy(problem, cfg, log):
    """Hypergradients of every (K, T, mode) against a converged implicit one."""
    n_ref = cfg["ref_iters"]
    kwargs = dict(implicit_tol=cfg["ref_tol"], implicit_max_iter=cfg["ref_max_iter"])
    start = time.perf_counter()
    # Reference at n_ref/2 and n_ref iterations (shared forward solve): their
    # difference bounds how well the reference itself is converged.
    with torch.no_grad():
        step = problem.step_fn(problem.log_weights.exp())
        u_half = restarted_solve(step, problem.model.initial_point(problem.X), n_ref // 2, 1,
                                 "none")
    ref_half, capped_half = problem.outer_step(1, 1, "implicit", u0=u_half, **kwargs)
    with torch.no_grad():
        u_full = restarted_solve(step, u_half, n_ref // 2, 1, "none")
        residual = float(relative_residual(step, u_full).mean())
    ref_full, capped_full = problem.outer_step(1, 1, "implicit", u0=u_full, **kwargs)
    ref_info = dict(
        iterations=n_ref, tol=cfg["ref_tol"], max_iter=cfg["ref_max_iter"],
        fixed_point_residual=residual, capped=capped_half or capped_full,
        self_change=_cos_rel(ref_half, ref_full)[1], time=time.perf_counter() - start,
        zero_components=int((ref_full == 0).sum()), n_weights=int(ref_full.numel()),
        gradient=ref_full.cpu().numpy().tolist())
    log(f"reference: {ref_info['iterations']} iterations, residual "
        f"{residual:.1e}, change vs {n_ref // 2} iterations {ref_info['self_change']:.1e}, "
        f"adjoint capped={ref_info['capped']}, {ref_info['time']:.0f} s")
    rows = []
    for K in cfg["Ks"]:
        for T in cfg["Ts"]:
            for mode in MODES:
                grad, capped = problem.outer_step(K, T, mode)
                cos, rel = _cos_rel(grad, ref_full)
                rows.append(dict(K=K, T=T, mode=mode, cos=cos, rel_err=rel,
                                 implicit_capped=capped))
    return rows, ref_info


def _fit_timed(estimator, X, y):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        start, start_cpu = time.perf_counter(), time.process_time()
        estimator.fit(X, y)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    n_warn = sum(issubclass(w.category, ConvergenceWarning) for w in caught)
    return elapsed, cpu, n_warn


def measure_training(data, cfg, device_name, log):
    X_train, X_test, y_train, y_test = data
    rows = []
    # Warm-up: the first fit of a process pays one-off costs (Adam, autograd).
    for mode in MODES:
        _fit_timed(ReTuneRegularizer(Blur(sigma=cfg["blur_sigma"]),
                                     WaveletL1(cfg["wavelet"], levels=1), K=1, T=2,
                                     hypergradient=mode, max_epochs=1, device=device_name),
                   X_train[:2], y_train[:2])
    common = dict(max_epochs=cfg["epochs"], batch_size=cfg["batch_size"], loss="mse",
                  learning_rate=cfg["learning_rate"], random_state=0, device=device_name)
    for K, T in cfg["train_configs"]:
        initial = ReTuneRegularizer(Blur(sigma=cfg["blur_sigma"]),
                                    WaveletL1(cfg["wavelet"], levels=cfg["levels"]), K=K, T=T,
                                    learn_weights=False, **common).fit(X_train, y_train)
        start_psnr = initial.score(X_test, y_test)
        for mode in MODES:
            est = ReTuneRegularizer(Blur(sigma=cfg["blur_sigma"]),
                                    WaveletL1(cfg["wavelet"], levels=cfg["levels"]), K=K, T=T,
                                    hypergradient=mode, **common)
            elapsed, cpu, n_warn = _fit_timed(est, X_train, y_train)
            row = dict(K=K, T=T, TK=T * K, mode=mode, fit_time=elapsed, fit_cpu=cpu,
                       train_psnr=est.score(X_train, y_train),
                       test_psnr=est.score(X_test, y_test), initial_test_psnr=start_psnr,
                       test_mse_psnr=_mse_psnr(est, X_test, y_test),
                       initial_test_mse_psnr=_mse_psnr(initial, X_test, y_test),
                       implicit_capped_steps=n_warn, converged=bool(est.converged_),
                       weights=est.weights_.tolist(),
                       fixed_point_residual=float(est.fixed_point_residual_))
            rows.append(row)
            log(f"train K={K:>2} T={T:>2} {mode:<8} test PSNR {row['test_psnr']:.3f} dB "
                f"(initial {start_psnr:.3f}), fit {elapsed:.1f} s")
    return rows


def _mse_psnr(estimator, X, y):
    """PSNR of the mean squared error over all patches (the fit's criterion)."""
    return float(10 * np.log10(1.0 / np.mean((estimator.transform(X) - y) ** 2)))


def _search_scores(estimator, X, y):
    """Both selection criteria from one reconstruction of the fold."""
    reconstruction = estimator.transform(X)
    return {"psnr": psnr(y, reconstruction),
            "neg_mse": -float(np.mean((reconstruction - y) ** 2))}


def measure_search(data, cfg, device_name, training_rows, log):
    """ReTune (per-subband, jfb) vs GridSearchCV over one scalar weight.

    One search scores every fold by mean per-patch PSNR (the estimator's
    ``score``) and by MSE (the criterion ``fit`` minimizes); it is refitted at
    the MSE choice, and the PSNR choice is refitted separately (both refits
    are in the wall time).
    """
    X_train, X_test, y_train, y_test = data
    K, T = cfg["search_config"]
    scalar = ReTuneRegularizer(Blur(sigma=cfg["blur_sigma"]),
                               WaveletL1(cfg["wavelet"], levels=cfg["levels"], weights="scalar"),
                               K=K, T=T, learn_weights=False, batch_size=cfg["batch_size"],
                               loss="mse", device=device_name)
    grid = np.geomspace(*cfg["grid_range"], cfg["grid_size"])
    search = GridSearchCV(scalar, {"init_weight": list(grid)}, cv=cfg["cv"], n_jobs=1,
                          scoring=_search_scores, refit="neg_mse")
    start, start_cpu = time.perf_counter(), time.process_time()
    search.fit(X_train, y_train)
    by_psnr = float(grid[int(np.argmin(search.cv_results_["rank_test_psnr"]))])
    psnr_model = clone(scalar).set_params(init_weight=by_psnr).fit(X_train, y_train)
    search_time, search_cpu = time.perf_counter() - start, time.process_time() - start_cpu
    by_mse = float(search.best_params_["init_weight"])
    retune = next(r for r in training_rows
                  if (r["K"], r["T"], r["mode"]) == (K, T, "jfb"))
    result = dict(
        K=K, T=T, grid=grid.tolist(), cv=cfg["cv"], search_time=search_time,
        search_cpu=search_cpu,
        mse_weight=by_mse, mse_on_edge=by_mse in (grid[0], grid[-1]),
        mse_test_psnr=search.best_estimator_.score(X_test, y_test),
        mse_test_mse_psnr=_mse_psnr(search.best_estimator_, X_test, y_test),
        psnr_weight=by_psnr, psnr_on_edge=by_psnr in (grid[0], grid[-1]),
        psnr_test_psnr=psnr_model.score(X_test, y_test),
        psnr_test_mse_psnr=_mse_psnr(psnr_model, X_test, y_test),
        retune_time=retune["fit_time"], retune_cpu=retune["fit_cpu"],
        retune_test_psnr=retune["test_psnr"],
        retune_test_mse_psnr=retune["test_mse_psnr"])
    log(f"GridSearchCV ({search_time:.1f} s): by MSE λ={by_mse:.2e} test PSNR "
        f"{result['mse_test_psnr']:.3f} dB; by PSNR λ={by_psnr:.2e} test PSNR "
        f"{result['psnr_test_psnr']:.3f} dB; ReTune {result['retune_test_psnr']:.3f} dB in "
        f"{result['retune_time']:.1f} s")
    return result


# ------------------------------------------------------------------ report
def _format_step_row(row):
    head = f"K={row['K']:>2} T={row['T']:>2} {row['mode']:<8}"
    if "skipped" in row:
        return f"{head} skipped ({row['skipped']})"
    return (f"{head} step {row['time']:.3f} s wall, {row['cpu']:.3f} s CPU = "
            f"{row['ratio']:.2f}x no-grad solve ({row['nograd_time']:.3f} s wall, "
            f"{row['nograd_cpu']:.3f} s CPU), saved {row['saved_bytes'] / 1e6:.1f} MB")


def _mb(x):
    return f"{x / 1e6:.1f}"


def targets(steps, accuracy, training, search, cfg):
    """Evaluate the issue's targets as ratios measured in this run."""
    by = {(r["K"], r["T"], r["mode"]): r for r in steps}
    T_lo, T_hi = min(cfg["Ts"]), max(cfg["Ts"])
    lines = []
    # 1. jfb memory flat in T, unrolled linear in T·K.
    jfb_ratios = {K: by[K, T_hi, "jfb"]["saved_bytes"] / by[K, T_lo, "jfb"]["saved_bytes"]
                  for K in cfg["Ks"]}
    worst = max(jfb_ratios.values())
    lines.append(("jfb memory at T={} within 1.2x of T={}".format(T_hi, T_lo),
                  worst <= 1.2,
                  "max over K of mem(T={})/mem(T={}) = {:.2f}".format(T_hi, T_lo, worst)))
    unrolled = [r for r in steps if r["mode"] == "unrolled" and "skipped" not in r]
    tk = np.array([r["TK"] for r in unrolled], dtype=float)
    mem = np.array([r["saved_bytes"] for r in unrolled], dtype=float)
    slope, offset = np.polyfit(tk, mem, 1)
    r2 = 1 - np.sum((mem - (slope * tk + offset)) ** 2) / np.sum((mem - mem.mean()) ** 2)
    big = max(unrolled, key=lambda r: r["TK"])
    per_K = ", ".join(
        f"{by[K, T_hi, 'unrolled']['saved_bytes'] / by[K, T_lo, 'unrolled']['saved_bytes']:.0f}"
        for K in cfg["Ks"] if "skipped" not in by[K, T_hi, "unrolled"])
    lines.append(("unrolled memory grows ~linearly with T·K", slope > 0 and r2 >= 0.99,
                  f"least-squares fit saved = {offset / 1e6:+.1f} MB + {slope / 1e6:.2f} MB·T·K, "
                  f"R² = {r2:.5f}; mem(T={T_hi})/mem(T={T_lo}) = {per_K} for K = "
                  f"{', '.join(map(str, cfg['Ks']))} (T ratio {T_hi // T_lo}); at "
                  f"T·K={big['TK']}: {_mb(big['saved_bytes'])} MB vs jfb "
                  f"{_mb(by[big['K'], big['T'], 'jfb']['saved_bytes'])} MB"))
    # 2. jfb step time vs no-grad solve.
    jfb = [r for r in steps if r["mode"] == "jfb"]
    steps_on_cpu = "nograd_cpu" in jfb[0] and cfg.get("_device") == "cpu"
    met = [r for r in jfb if r["ratio"] <= 1.3]
    worst_T_gt1 = max((r["ratio"] for r in jfb if r["T"] > 1), default=float("nan"))
    worst_all = max(r["ratio"] for r in jfb)
    lines.append(("jfb step time <= 1.3x no-grad solve of the same T·K "
                  f"({'CPU' if steps_on_cpu else 'wall'} time)",
                  len(met) == len(jfb),
                  f"met in {len(met)}/{len(jfb)} configs; max ratio {worst_all:.2f} "
                  f"(T=1, i.e. plain unrolling of K steps), max for T>1 {worst_T_gt1:.2f}"))
    # 3. learned PSNR jfb vs implicit.
    tr = {(r["K"], r["T"], r["mode"]): r for r in training}
    diffs = {(K, T): tr[K, T, "jfb"]["test_psnr"] - tr[K, T, "implicit"]["test_psnr"]
             for K, T in cfg["train_configs"]}
    mse_diffs = {(K, T): tr[K, T, "jfb"]["test_mse_psnr"] - tr[K, T, "implicit"]["test_mse_psnr"]
                 for K, T in cfg["train_configs"]}
    ok = all(abs(d) <= 0.05 for d in diffs.values())
    lines.append(("jfb learned test PSNR within 0.05 dB of implicit (same T·K)", ok,
                  "jfb − implicit, mean per-patch PSNR: "
                  + "; ".join(f"K={K},T={T}: {d:+.3f} dB" for (K, T), d in diffs.items())
                  + " (PSNR of the mean MSE: "
                  + "; ".join(f"{d:+.3f} dB" for d in mse_diffs.values()) + ")"))
    # 4. ReTune vs scalar grid search.
    s = search
    tratio = s["retune_time"] / s["search_time"]
    cratio = s["retune_cpu"] / s["search_cpu"]
    d_mse_sel = s["retune_test_psnr"] - s["mse_test_psnr"]
    d_psnr_sel = s["retune_test_psnr"] - s["psnr_test_psnr"]
    d_mse_sel_mse = s["retune_test_mse_psnr"] - s["mse_test_mse_psnr"]
    lines.append(("ReTune beats the scalar grid search in PSNR and wall time, grid selected "
                  "by GridSearchCV's default scoring (the estimator's score: mean PSNR)",
                  d_psnr_sel > 0 and tratio < 1,
                  f"test PSNR ReTune − grid {d_psnr_sel:+.3f} dB; wall time ratio "
                  f"ReTune/grid {tratio:.2f} (CPU time {cratio:.2f})"))
    lines.append(("same, grid selected by the criterion fit minimizes (MSE)",
                  d_mse_sel > 0 and tratio < 1,
                  f"test PSNR ReTune − grid {d_mse_sel:+.3f} dB (PSNR of the mean MSE "
                  f"{d_mse_sel_mse:+.3f} dB); wall time ratio ReTune/grid {tratio:.2f} "
                  f"(CPU time {cratio:.2f})"))
    return lines


def render(cfg, meta, steps, accuracy, ref_info, training, search, target_lines):
    acc = {(r["K"], r["T"], r["mode"]): r for r in accuracy}
    cuda = any("cuda_peak_bytes" in r for r in steps)
    out = []
    out.append(f"Measured {meta['date']} on {meta['machine']}; torch {meta['torch']}, "
               f"{meta['threads']} torch thread(s), device {meta['device']}, "
               f"total run time {meta['total_time'] / 60:.1f} min"
               f"{' (--quick)' if meta['quick'] else ''}.")
    out.append("")
    out.append(f"Deblurring: Blur(sigma={cfg['blur_sigma']}), noise {cfg['noise_sigma']}, "
               f"{cfg['patch_size']}×{cfg['patch_size']} patches, batch {cfg['batch_size']}, "
               f"WaveletL1({cfg['wavelet']}, levels={cfg['levels']}), float32, all weights "
               f"λ = {cfg['eval_weight']:g}. Gradient accuracy: float64, first "
               f"{cfg['grad_samples']} samples, reference = implicit after "
               f"{ref_info['iterations']} iterations (fixed-point residual "
               f"{ref_info['fixed_point_residual']:.1e}), adjoint tol {ref_info['tol']:g} "
               f"(capped: {ref_info['capped']}); reference change vs "
               f"{ref_info['iterations'] // 2} iterations: {ref_info['self_change']:.1e}; "
               f"{ref_info['zero_components']}/{ref_info['n_weights']} reference components "
               f"are exactly 0 (subbands thresholded to zero).")
    out.append("")
    header = ["K", "T", "T·K", "mode", "step wall (s)", "step CPU (s)",
              "× no-grad solve" + (" (CPU time)" if meta["device"] == "cpu" else " (wall)"),
              "saved for backward (MB)"]
    if cuda:
        header.append("CUDA peak (MB)")
    header += ["cos vs ref", "rel. err vs ref"]
    out.append("| " + " | ".join(header) + " |")
    out.append("|" + "---|" * len(header))
    for r in steps:
        a = acc[r["K"], r["T"], r["mode"]]
        flag = " ⚠" if r.get("implicit_capped") or a["implicit_capped"] else ""
        if "skipped" in r:
            cells = [str(r["K"]), str(r["T"]), str(r["TK"]), r["mode"], "skipped", "—", "—",
                     r["skipped"]] + (["—"] if cuda else [])
        else:
            cells = [str(r["K"]), str(r["T"]), str(r["TK"]), r["mode"] + flag,
                     f"{r['time']:.3f}", f"{r['cpu']:.3f}", f"{r['ratio']:.2f}",
                     _mb(r["saved_bytes"])]
            if cuda:
                cells.append(_mb(r.get("cuda_peak_bytes", float("nan"))))
        cells += [f"{a['cos']:.4f}", f"{a['rel_err']:.2e}"]
        out.append("| " + " | ".join(cells) + " |")
    out.append("")
    out.append("⚠: the implicit adjoint iteration hit implicit_max_iter=200 before "
               "implicit_tol=1e-6 (ConvergenceWarning).")
    out.append("")
    out.append(f"Training: {cfg['n_train']} train / {cfg['n_test']} test patches (disjoint "
               f"source images), {cfg['epochs']} epochs, batch {cfg['batch_size']}, Adam lr "
               f"{cfg['learning_rate']}, init_weight='auto'. Blurred-input test PSNR "
               f"{meta['input_psnr']:.3f} dB.")
    out.append("")
    out.append("| K | T | T·K | mode | test PSNR (dB) | at initial weights | test MSE-PSNR (dB) "
               "| at initial weights | train PSNR | fit wall (CPU) s | adjoint capped steps |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in training:
        out.append(f"| {r['K']} | {r['T']} | {r['TK']} | {r['mode']} | {r['test_psnr']:.3f} | "
                   f"{r['initial_test_psnr']:.3f} | {r['test_mse_psnr']:.3f} | "
                   f"{r['initial_test_mse_psnr']:.3f} | {r['train_psnr']:.3f} | "
                   f"{r['fit_time']:.1f} ({r['fit_cpu']:.1f}) | "
                   f"{r['implicit_capped_steps'] if r['mode'] == 'implicit' else '—'} |")
    out.append("")
    out.append("test PSNR: mean over test patches of the per-patch PSNR (the estimator's "
               "`score`); test MSE-PSNR: 10·log10(1/MSE) of the MSE over all test patches "
               "(the criterion `fit` minimizes).")
    out.append("")
    s = search
    out.append(f"ReTune vs scalar grid search (K={s['K']}, T={s['T']}, same training set; "
               f"ReTune's time is its fit in the training table):")
    out.append("")
    out.append("| method | selected by | test PSNR (dB) | test MSE-PSNR (dB) "
               "| wall (CPU) time (s) |")
    out.append("|---|---|---|---|---|")
    out.append(f"| ReTune, one weight per subband (jfb, {cfg['epochs']} epochs) | train MSE "
               f"(the fit) | {s['retune_test_psnr']:.3f} | {s['retune_test_mse_psnr']:.3f} | "
               f"{s['retune_time']:.1f} ({s['retune_cpu']:.1f}) |")
    search_name = (f"GridSearchCV, one scalar λ, {len(s['grid'])} values "
                   f"{s['grid'][0]:.0e}–{s['grid'][-1]:.0e}, cv={s['cv']}")
    for key, label in (("mse", "CV MSE"), ("psnr", "CV mean PSNR")):
        edge = ", grid edge" if s[f"{key}_on_edge"] else ""
        out.append(f"| {search_name} | {label}: λ = {s[f'{key}_weight']:.2e}{edge} | "
                   f"{s[f'{key}_test_psnr']:.3f} | {s[f'{key}_test_mse_psnr']:.3f} | "
                   f"{s['search_time']:.1f} ({s['search_cpu']:.1f}), one search for both |")
    out.append("")
    out.append("Targets (ratios measured in this run):")
    out.append("")
    for name, ok, detail in target_lines:
        out.append(f"* {'MET' if ok else 'MISSED'}: {name}: {detail}")
    return "\n".join(out) + "\n"


def update_readme(table):
    text = README.read_text()
    if BEGIN not in text or END not in text:
        raise RuntimeError(f"{README} has no {BEGIN} ... {END} markers.")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    README.write_text(f"{head}{BEGIN}\n{table}{END}{tail}")


# ------------------------------------------------------------------ main
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny grid, < 1 minute (CI smoke)")
    parser.add_argument("--device", default="auto", help="auto (CUDA if present), cpu or cuda")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads on CPU (default 1; see README)")
    parser.add_argument("--max-unrolled-gb", type=float, default=8.0,
                        help="skip unrolled configs whose saved tensors would exceed this")
    parser.add_argument("--output", type=Path, default=OUTPUT_DIR,
                        help="folder of hypergradients.md / .json")
    parser.add_argument("--update-readme", action="store_true",
                        help="replace the results block of benchmarks/README.md")
    parser.add_argument("--quiet", action="store_true", help="print only the final report")
    args = parser.parse_args(argv)

    def log(message):
        if not args.quiet:
            print(message, flush=True)

    t_start = time.perf_counter()
    cfg = QUICK if args.quick else FULL
    if args.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(args.device)
    previous_threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    try:
        torch.manual_seed(0)
        data = make_image_problem(Blur(sigma=cfg["blur_sigma"]), noise_sigma=cfg["noise_sigma"],
                                  patch_size=cfg["patch_size"], n_train=cfg["n_train"],
                                  n_test=cfg["n_test"], random_state=0)
        X_train, X_test, y_train, y_test = data
        batch = slice(0, cfg["batch_size"])
        log(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}")

        problem32 = Problem(X_train[batch], y_train[batch], cfg, device, torch.float32)
        steps = measure_steps(problem32, cfg, args.max_unrolled_gb * 1e9, log)
        del problem32
        grads = slice(0, cfg["grad_samples"])
        problem64 = Problem(X_train[grads], y_train[grads], cfg, device, torch.float64)
        accuracy, ref_info = measure_accuracy(problem64, cfg, log)
        del problem64
        training = measure_training(data, cfg, str(device), log)
        search = measure_search(data, cfg, str(device), training, log)
        target_lines = targets(steps, accuracy, training, search, dict(cfg, _device=device.type))

        meta = dict(date=time.strftime("%Y-%m-%d"), torch=torch.__version__,
                    threads=torch.get_num_threads() if device.type == "cpu" else "n/a",
                    device=str(device) if device.type == "cpu"
                    else torch.cuda.get_device_name(device),
                    machine=f"{platform.machine()} Linux, {_cpu_count()} CPU cores",
                    quick=args.quick, input_psnr=psnr(y_test, X_test),
                    total_time=time.perf_counter() - t_start)
        report = render(cfg, meta, steps, accuracy, ref_info, training, search, target_lines)
        print(report)
        args.output.mkdir(parents=True, exist_ok=True)
        (args.output / "hypergradients.md").write_text(report)
        (args.output / "hypergradients.json").write_text(json.dumps(dict(
            config={k: v for k, v in cfg.items()}, meta=meta, steps=steps, accuracy=accuracy,
            reference=ref_info, training=training, search=search,
            targets=[dict(name=n, met=bool(ok), detail=d) for n, ok, d in target_lines]),
            indent=1, default=str))
        if args.update_readme and not args.quick:
            update_readme(report)
        return dict(steps=steps, accuracy=accuracy, reference=ref_info, training=training,
                    search=search, targets=target_lines, meta=meta, report=report)
    finally:
        torch.set_num_threads(previous_threads)


def _cpu_count():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count()


if __name__ == "__main__":
    main(sys.argv[1:])
