"""How fast the package's solvers reach the equilibrium, and what learning there buys.

Part 1 (``--part iterations``): forward–backward iterations until every
sample's relative residual ``‖φ(u) − u‖ / ‖u‖`` is below 1e-4 and 1e-5,
plain forward–backward against FISTA with gradient restart (the package's
default ``solver``), at the same weights, on the four ill-conditioned
problems of the DESIGN notes; and the CPU cost of one FISTA iteration over
one plain one.

Part 2 (``--part learning``): the same model learned with a fixed budget
(``solve_tol=None``, plain forward–backward, the first version's setting)
and at equilibrium (the defaults: ``solve_tol=1e-4``, FISTA, iterates
reused across epochs); test PSNR with the training solve and with a 10×
longer one, and CPU fit time.

    python benchmarks/bench_equilibrium.py [--part iterations|learning|all] [--quick]

One torch thread; CPU times (``time.process_time``) because the machine is
shared. Writes ``benchmarks/equilibrium.md`` unless ``--quick``.
"""

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning

from retune_sklearn import ReTuneRegularizer
from retune_sklearn.datasets import make_image_problem
from retune_sklearn.operators import Blur, Inpainting
from retune_sklearn.reconstruct import build_problem, reconstruct
from retune_sklearn.regularizers import TotalVariation, WaveletL1
from retune_sklearn.solvers import (FISTARestart, PlainIteration, StepParameters,
                                    relative_residual)

HERE = Path(__file__).resolve().parent
CAP = 3000
CHECK_EVERY = 5


def problems():
    """(name, operator, regularizer, weight): the DESIGN notes' four problems."""
    wavelets = WaveletL1(penalize_approximation=False)
    frame = WaveletL1(penalize_approximation=False, translation_invariant=True, n_shifts=2)
    return [
        ("deblur σ=1.5, wavelets", Blur(sigma=1.5), wavelets, 0.004),
        ("deblur σ=1.5, TV", Blur(sigma=1.5), TotalVariation(), 0.004),
        ("inpaint 50 %, TV", Inpainting(keep_prob=0.5, random_state=0), TotalVariation(), 0.01),
        ("inpaint 50 %, 4-shift frame", Inpainting(keep_prob=0.5, random_state=0), frame, 0.004),
    ]


def iterations_to(solver, phi, u0, tolerances):
    """Iterations (to CHECK_EVERY) until the largest residual is below each tolerance."""
    found, state, n = {}, solver.init_state(u0), 0
    with torch.no_grad():
        while n < CAP and len(found) < len(tolerances):
            state = solver.run(state, phi, CHECK_EVERY)
            n += CHECK_EVERY
            residual = float(relative_residual(phi, state["u"]).max())
            for tol in tolerances:
                if residual <= tol and tol not in found:
                    found[tol] = n
    return [found.get(tol) for tol in tolerances]


def cost_per_iteration(solver, phi, u0, n=30):
    state = solver.init_state(u0)
    with torch.no_grad():
        solver.run(state, phi, 3)  # warm-up
        start = time.process_time()
        solver.run(state, phi, n)
    return (time.process_time() - start) / n


def part_iterations(n_samples, out):
    tolerances = (1e-4, 1e-5)
    out.append("## Iterations to a relative residual (largest over the batch)\n")
    out.append(f"{n_samples} test patches 64×64, float32, same weights for both solvers; "
               f"checked every {CHECK_EVERY} iterations, cap {CAP}.\n")
    out.append("| problem | λ | FB to 1e-4 | FISTA to 1e-4 | ratio | FB to 1e-5 | FISTA to 1e-5 "
               "| ratio | FISTA/FB CPU per iteration |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, operator, regularizer, weight in problems():
        _, X, _, _ = make_image_problem(operator, n_train=1, n_test=n_samples,
                                        noise_sigma=0.01, random_state=0)
        problem = build_problem(operator, regularizer, X.shape[1:], X.shape[1:], "cpu",
                                "float32")
        X_t = torch.as_tensor(X, dtype=torch.float32)
        G = len(regularizer.weight_names(problem.signal_shape))
        params = StepParameters(X_t, torch.full((G,), weight), torch.tensor(
            1.0 / problem.lipschitz, dtype=torch.float32), {})
        phi = problem.model.step_map(params)
        u0 = problem.model.initial_point(X_t)
        fb = iterations_to(PlainIteration(), phi, u0, tolerances)
        fista = iterations_to(FISTARestart(), phi, u0, tolerances)
        cost = cost_per_iteration(FISTARestart(), phi, u0) / cost_per_iteration(
            PlainIteration(), phi, u0)

        def show(v):
            return f">{CAP}" if v is None else str(v)

        def ratio(a, b):
            return f"{(a or CAP) / b:.1f}×" + ("+" if a is None else "") if b else "—"
        out.append(f"| {name} | {weight:g} | {show(fb[0])} | {show(fista[0])} | "
                   f"{ratio(fb[0], fista[0])} | {show(fb[1])} | {show(fista[1])} | "
                   f"{ratio(fb[1], fista[1])} | {cost:.2f} |")
        print(out[-1], flush=True)
    out.append("")


def _learning_problems():
    return [
        ("deblurring, wavelets", Blur(sigma=1.5), WaveletL1(penalize_approximation=False),
         dict(K=10, T=5, max_epochs=8, learning_rate=0.1)),
        ("deblurring, TV", Blur(sigma=1.5), TotalVariation(),
         dict(K=10, T=10, max_epochs=5, learning_rate=0.1)),
        ("inpainting, TV", Inpainting(keep_prob=0.5, random_state=0), TotalVariation(),
         dict(K=10, T=20, max_epochs=5, learning_rate=0.2)),
    ]


def _psnr(y, x):
    return float(np.mean(10 * np.log10(1 / np.mean((y - x) ** 2, axis=(1, 2)))))


def part_learning(n_train, n_test, out):
    out.append("## Learned with a fixed budget vs at equilibrium\n")
    out.append(f"{n_train} train / {n_test} test patches 64×64 (different photos), noise 0.01, "
               "batch 8, loss='psnr', the first version's tuned K, T, epochs and learning "
               "rate (benchmarks/problems.md). *Fixed budget*: `solve_tol=None, solver='fb'`"
               " (T·K iterations, as before). *Equilibrium*: the new defaults "
               "(`solve_tol=1e-4`, `solver='fista'`, `reuse_iterates=True`, T=100 cap). "
               "*10× longer*: the learned weights solved with a fixed budget of 10× the "
               "iterations of the model's own solve (plain FB).\n")
    out.append("| problem | solve | test PSNR (dB) | same weights, 10× longer | difference | "
               "iterations per test solve | fit CPU (s) |")
    out.append("|---|---|---:|---:|---:|---:|---:|")
    for name, operator, regularizer, params in _learning_problems():
        X_train, X_test, y_train, y_test = make_image_problem(
            operator, n_train=n_train, n_test=n_test, noise_sigma=0.01, random_state=0)
        for label, extra in (("fixed budget", dict(solve_tol=None, solver="fb")),
                             ("equilibrium", dict(T=100))):
            est = ReTuneRegularizer(operator, regularizer, batch_size=8, loss="psnr",
                                    random_state=0, **{**params, **extra})
            start = time.process_time()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                est.fit(X_train, y_train)
            fit_cpu = time.process_time() - start
            report_solve = est.transform(X_test)
            n_iter = est.n_solve_iter_
            longer = reconstruct(X_test, est.operator_, est.regularizer_, est.weights_,
                                 K=est.K, T=10 * max(n_iter // est.K, 1), tol=None, solver="fb")
            a, b = _psnr(y_test, report_solve), _psnr(y_test, longer)
            out.append(f"| {name} | {label} | {a:.2f} | {b:.2f} | {b - a:+.2f} | {n_iter} | "
                       f"{fit_cpu:.1f} |")
            print(out[-1], flush=True)
    out.append("")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("iterations", "learning", "all"), default="all")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = [f"# Equilibrium: iterations and learning\n\n`python benchmarks/bench_equilibrium.py "
           f"--part {args.part}`: torch {torch.__version__}, one torch thread, CPU times.\n"]
    if args.part in ("iterations", "all"):
        part_iterations(2 if args.quick else 8, out)
    if args.part in ("learning", "all"):
        part_learning(*((4, 2) if args.quick else (48, 24)), out)
    text = "\n".join(out)
    print(text)
    if not args.quick:
        name = "equilibrium.md" if args.part == "all" else f"equilibrium_{args.part}.md"
        (HERE / name).write_text(text + "\n")


if __name__ == "__main__":
    main()
