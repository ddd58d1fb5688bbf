"""How fast the package's solvers reach the equilibrium, and what learning there buys.

Part 1 (``--part iterations``): forward–backward iterations until every
sample's relative residual ``‖φ(u) − u‖ / ‖u‖`` is below 1e-4 and 1e-5,
plain forward–backward against FISTA with gradient restart (the package's
default ``solver``), at the same weights, on the four ill-conditioned
problems of the DESIGN notes; and the CPU cost of one FISTA iteration over
one plain one.

Part 3 (``--part tv``): TotalVariation's warm dual (``n_inner_warm``):
CPU per restarted step, and CPU and iterations of a whole solve
(``restarted_solve``, K=10, to 1e-4 and 1e-5, last block included) against
the cold prox (20 FGP iterations from zero per step), batch 32, 64×64;
and the distance of each equilibrium to the exact minimizer (a step with a
2000-iteration cold prox: its relative fixed-point residual).

Part 2 (``--part learning``): the same model learned with a fixed budget
(``solve_tol=None``, plain forward–backward, the first version's setting)
and at equilibrium (the defaults: ``solve_tol=1e-4``, FISTA, iterates
reused across epochs); test PSNR with the training solve and with a 10×
longer one, and CPU fit time.

Part 4 (``--part tv-step``): CPU per TV step alone, cold prox at 20 and 5 inner
steps and the one-iteration warm step.

    python benchmarks/bench_equilibrium.py [--part iterations|tv|tv-step|learning|all] [--quick]

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
from retune_sklearn.operators import Blur, Identity, Inpainting
from retune_sklearn.reconstruct import build_problem, reconstruct
from retune_sklearn.regularizers import TotalVariation, WaveletL1
from retune_sklearn.hypergradients import SolveReport, restarted_solve
from retune_sklearn.solvers import (SOLVERS, AndersonAcceleration, FISTARestart, PlainIteration,
                                    StepParameters, relative_residual)

HERE = Path(__file__).resolve().parent
CAP = 3000
#: Plain FB's cap: large enough that its iterations to 1e-5 on the TI frame are
#: counted, so that the FB/FISTA ratio is measured rather than bounded by CAP.
FB_CAP = 20000
CHECK_EVERY = 5


def problems():
    """(name, operator, regularizer, weight): the DESIGN notes' four problems."""
    wavelets = WaveletL1(penalize_approximation=False)
    frame = WaveletL1(penalize_approximation=False, translation_invariant=True, n_shifts=2)
    tv = TotalVariation(boundary="periodic", n_inner=20)  # the committed tables' settings
    return [
        ("deblur σ=1.5, wavelets", Blur(sigma=1.5), wavelets, 0.004),
        ("deblur σ=1.5, TV", Blur(sigma=1.5), tv, 0.004),
        ("inpaint 50 %, TV", Inpainting(keep_prob=0.5, random_state=0), tv, 0.01),
        ("inpaint 50 %, 4-shift frame", Inpainting(keep_prob=0.5, random_state=0), frame, 0.004),
    ]


def iterations_to(solver, phi, u0, tolerances, final=None, cap=CAP):
    """Iterations (to CHECK_EVERY) until the largest residual is below each tolerance,
    None past ``cap`` (``final`` receives the last state and the iteration count)."""
    found, state, n = {}, solver.init_state(u0), 0
    with torch.no_grad():
        while n < cap and len(found) < len(tolerances):
            state = solver.run(state, phi, CHECK_EVERY)
            n += CHECK_EVERY
            residual = float(relative_residual(phi, state["u"]).max())
            for tol in tolerances:
                if residual <= tol and tol not in found:
                    found[tol] = n
    if final is not None:
        final.update(state, n=n)
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
               f"checked every {CHECK_EVERY} iterations, cap {CAP} (plain FB: {FB_CAP}).\n")
    out.append("| problem | λ | FB to 1e-4 | FISTA to 1e-4 | Anderson to 1e-4 | FB to 1e-5 | "
               "FISTA to 1e-5 | Anderson to 1e-5 | FB/FISTA at 1e-5 | FB/Anderson at 1e-5 | "
               "FISTA/FB CPU per iteration | Anderson/FB CPU per iteration | Anderson steps "
               "rejected |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
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
        fb = iterations_to(PlainIteration(), phi, u0, tolerances, cap=FB_CAP)
        fista = iterations_to(FISTARestart(), phi, u0, tolerances)
        anderson_state = {}
        anderson = iterations_to(AndersonAcceleration(), phi, u0, tolerances, anderson_state)
        rejected = anderson_state["n_rejected"] / (anderson_state["n"] * len(u0))
        fb_cost = cost_per_iteration(PlainIteration(), phi, u0)
        cost = cost_per_iteration(FISTARestart(), phi, u0) / fb_cost
        anderson_cost = cost_per_iteration(AndersonAcceleration(), phi, u0) / fb_cost

        def show(v, cap=CAP):
            return f">{cap}" if v is None else str(v)

        def ratio(a, b):
            return f"{(a or FB_CAP) / b:.1f}×" + ("+" if a is None else "") if b else "—"
        out.append(f"| {name} | {weight:g} | {show(fb[0], FB_CAP)} | {show(fista[0])} | "
                   f"{show(anderson[0])} | {show(fb[1], FB_CAP)} | {show(fista[1])} | "
                   f"{show(anderson[1])} | {ratio(fb[1], fista[1])} | "
                   f"{ratio(fb[1], anderson[1])} | {cost:.2f} | {anderson_cost:.2f} | "
                   f"{rejected:.0%} |")
        print(out[-1], flush=True)
    out.append("")


def _tv_step_cost(phi, u0, warm, n=20):
    """CPU seconds of one restarted step (the warm step when ``warm``)."""
    with torch.no_grad():
        u, inner = phi.warm(u0, None) if warm else (phi(u0), None)
        start = time.process_time()
        for _ in range(n):
            u, inner = phi.warm(u, inner) if warm else (phi(u), None)
    return (time.process_time() - start) / n


def _tv_cases():
    """(name, operator, weight) of the TotalVariation parts."""
    return [("deblur σ=1.5", Blur(sigma=1.5), 0.004),
            ("inpaint 50 %", Inpainting(keep_prob=0.5, random_state=0), 0.01),
            ("denoise σ=0.1 (strong λ)", Identity(), 0.1)]


def _tv_test_batch(operator, n_samples):
    """``n_samples`` float32 test measurements of ``operator`` (noise 0.1 when denoising,
    else 0.01)."""
    noise = 0.1 if isinstance(operator, Identity) else 0.01
    _, X, _, _ = make_image_problem(operator, n_train=1, n_test=n_samples,
                                    noise_sigma=noise, random_state=0)
    return torch.as_tensor(X, dtype=torch.float32)


def part_tv(n_samples, out):
    out.append("## TotalVariation: warm dual against the cold prox\n")
    out.append(f"{n_samples} test patches 64×64, float32, one torch thread. *Cold*: every step "
               "runs `n_inner=20` FGP iterations from zero (the default when this table was "
               "made). *Warm k*: "
               "`TotalVariation(n_inner_warm=k)`, k dual iterations per restarted step from the "
               "previous step's dual; the last block (10 steps) runs 20 from the dual reached. "
               "Solve = `restarted_solve(K=10, T≤300, tol)` with the residual checked once per "
               "block, as in `fit`/`transform`; CPU of the whole solve, ratio = cold FISTA "
               "(today's default) / row. *Off the minimizer*: relative fixed-point residual, "
               "at the 1e-5 solution, of a step whose prox is 2000 cold FGP iterations.\n")
    out.append("| problem | λ | prox | solver | CPU per step (ms) | step ratio | iterations to "
               "1e-4 | CPU to 1e-4 (s) | ratio | iterations to 1e-5 | CPU to 1e-5 (s) | ratio | "
               "off the minimizer |")
    out.append("|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    variants = [("cold", None, "fista"), ("cold", None, "fb"), ("warm 1", 1, "fb"),
                ("warm 1", 1, "fista"), ("warm 2", 2, "fista"), ("warm 3", 3, "fista"),
                ("warm 2", 2, "anderson")]
    for name, operator, weight in _tv_cases():
        X_t = _tv_test_batch(operator, n_samples)
        exact = _tv_map(operator, TotalVariation(n_inner=2000, boundary="periodic"), X_t,
                        weight)[0]
        base_step = base = None
        for label, k, solver in variants:
            tv = TotalVariation(n_inner=20, n_inner_warm=k, boundary="periodic")
            phi, u0 = _tv_map(operator, tv, X_t, weight)
            step = _tv_step_cost(phi, u0, warm=k is not None)
            base_step = base_step or step
            cells = []
            for tol in (1e-4, 1e-5):
                report = SolveReport()
                start = time.process_time()
                with torch.no_grad():
                    u = restarted_solve(phi, u0, 10, 300, "none", tol=tol,
                                        solver=SOLVERS[solver](), report=report)
                cpu = time.process_time() - start
                base = base or {}
                base.setdefault(tol, cpu)
                capped = "+" if report.n_capped else ""
                cells += [f"{report.iterations[-1]}{capped}", f"{cpu:.2f}",
                          f"{base[tol] / cpu:.2f}×"]
            off = float(relative_residual(exact, u).max())
            out.append(f"| {name} | {weight:g} | {label} | {solver} | {1e3 * step:.2f} | "
                       f"{base_step / step:.1f}× | " + " | ".join(cells) + f" | {off:.1e} |")
            print(out[-1], flush=True)
    out.append("")


def part_tv_step(n_samples, out):
    """CPU per TV step only: the cold prox at 20 inner steps (the previous default) and at
    5 (``n_inner="auto"`` in iterative solves), and the one-iteration warm step."""
    out.append("## TotalVariation: CPU per step\n")
    out.append(f"{n_samples} test patches 64×64, float32, one torch thread, Neumann boundary "
               "(the default), mean of 20 steps after one untimed step. Target of issue 10: "
               "3 ms.\n")
    out.append("| problem | λ | cold, n_inner=20 (ms) | cold, n_inner=5 (ms) | warm 1 (ms) | "
               "20 / 5 | 20 / warm 1 |")
    out.append("|---|---:|---:|---:|---:|---:|---:|")
    for name, operator, weight in _tv_cases():
        X_t = _tv_test_batch(operator, n_samples)
        costs = []
        for n_inner, warm in ((20, None), (5, None), (20, 1)):
            tv = TotalVariation(n_inner=n_inner, n_inner_warm=warm)
            phi, u0 = _tv_map(operator, tv, X_t, weight)
            costs.append(_tv_step_cost(phi, u0, warm=warm is not None))
        out.append(f"| {name} | {weight:g} | " + " | ".join(f"{1e3 * c:.2f}" for c in costs)
                   + f" | {costs[0] / costs[1]:.1f}× | {costs[0] / costs[2]:.1f}× |")
        print(out[-1], flush=True)
    out.append("")


def _tv_map(operator, regularizer, X_t, weight):
    problem = build_problem(operator, regularizer, X_t.shape[1:], X_t.shape[1:], "cpu",
                            "float32")
    params = StepParameters(X_t, torch.full((1,), weight), torch.tensor(
        1.0 / problem.lipschitz, dtype=torch.float32), {},
        back_projection=problem.model.back_projection(X_t))  # as a fit's steps
    return problem.model.step_map(params), problem.model.initial_point(X_t)


def _learning_problems():
    tv = TotalVariation(boundary="periodic", n_inner=20)  # the committed tables' settings
    return [
        ("deblurring, wavelets", Blur(sigma=1.5), WaveletL1(penalize_approximation=False),
         dict(K=10, T=5, max_epochs=8, learning_rate=0.1)),
        ("deblurring, TV", Blur(sigma=1.5), tv,
         dict(K=10, T=10, max_epochs=5, learning_rate=0.1)),
        ("inpainting, TV", Inpainting(keep_prob=0.5, random_state=0), tv,
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
    parser.add_argument("--part", choices=("iterations", "tv", "tv-step", "learning", "all"),
                        default="all")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = [f"# Equilibrium: iterations and learning\n\n`python benchmarks/bench_equilibrium.py "
           f"--part {args.part}`: torch {torch.__version__}, one torch thread, CPU times.\n"]
    if args.part in ("iterations", "all"):
        part_iterations(2 if args.quick else 8, out)
    if args.part in ("tv", "all"):
        part_tv(2 if args.quick else 32, out)
    if args.part in ("tv-step", "all"):
        part_tv_step(2 if args.quick else 32, out)
    if args.part in ("learning", "all"):
        part_learning(*((4, 2) if args.quick else (48, 24)), out)
    text = "\n".join(out)
    print(text)
    if not args.quick:
        part = args.part.replace("-", "_")
        name = "equilibrium.md" if part == "all" else f"equilibrium_{part}.md"
        (HERE / name).write_text(text + "\n")


if __name__ == "__main__":
    main()
