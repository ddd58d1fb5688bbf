"""Vector–Jacobian products of the implicit mode's adjoint solve: CG on the active set
against GMRES.

The adjoint system ``(I − Jᵀ) w = g`` of the implicit (DEQ) hypergradient at
an equilibrium ``u*`` (solved to a relative residual of 1e-9), for the MSE
loss against the clean patches; products counted until the relative
residual of the full system is below ``implicit_tol``. CG applies where
the step's Jacobian is ``S(I − τH)`` (wavelet ℓ1 + quadratic data); TV is
shown with GMRES only (its Jacobian is not of that form).

    python benchmarks/bench_adjoint.py [--quick]

float64, one torch thread. Writes ``benchmarks/adjoint.md`` unless ``--quick``.
"""

import argparse
import time
from pathlib import Path

import torch

from retune_sklearn.datasets import make_image_problem
from retune_sklearn.hypergradients import SolveReport, restarted_solve
from retune_sklearn.operators import Blur, Inpainting
from retune_sklearn.reconstruct import build_problem
from retune_sklearn.regularizers import TotalVariation, WaveletL1
from retune_sklearn.solvers import FISTARestart, StepParameters

HERE = Path(__file__).resolve().parent


def cases():
    wavelets = WaveletL1(penalize_approximation=False)
    return [("deblur σ=1.5, wavelets", Blur(sigma=1.5), wavelets, 0.004, ("gmres", "cg")),
            ("deblur σ=1.5, wavelets", Blur(sigma=1.5), wavelets, 0.02, ("gmres", "cg")),
            ("inpaint 50 %, wavelets", Inpainting(keep_prob=0.5, random_state=0), wavelets,
             0.004, ("gmres", "cg")),
            ("deblur σ=1.5, TV", Blur(sigma=1.5),
             TotalVariation(boundary="periodic", n_inner=20), 0.004, ("gmres",))]


def adjoint_cost(operator, regularizer, weight, n, tol, method):
    _, X, _, y = make_image_problem(operator, n_train=1, n_test=n, noise_sigma=0.01,
                                    random_state=0)
    problem = build_problem(operator, regularizer, X.shape[1:], X.shape[1:], "cpu", "float64")
    X_t, y_t = torch.as_tensor(X), torch.as_tensor(y)
    G = len(regularizer.weight_names(problem.signal_shape))
    log_w = torch.full((G,), float(torch.log(torch.tensor(weight))), dtype=torch.float64,
                       requires_grad=True)
    params = StepParameters(X_t, log_w.exp(), torch.tensor(1.0 / problem.lipschitz,
                                                           dtype=torch.float64), {})
    phi = problem.model.step_map(params)
    report = SolveReport()
    u = restarted_solve(phi, problem.model.initial_point(X_t), 10, 1000, "implicit", tol=1e-9,
                        solver=FISTARestart(), implicit_tol=tol, implicit_max_iter=2000,
                        implicit_solver=method, report=report)
    loss = torch.mean((regularizer.synthesis(u) - y_t) ** 2)
    start = time.process_time()
    grad, = torch.autograd.grad(loss, log_w)
    cpu = time.process_time() - start
    failed = report.adjoint_failures > 0
    return report.adjoint_products[-1], cpu, failed, grad


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    n = 1 if args.quick else 4
    out = [f"# Implicit adjoint: CG on the active set vs GMRES\n\n`python benchmarks/"
           f"bench_adjoint.py`: torch {torch.__version__}, one thread, float64, {n} test patches "
           "64×64 in one batch (one adjoint system), noise 0.01. Products = vector–Jacobian "
           "products to the tolerance (CG: one per iteration plus the final `w = g + Jᵀz`; "
           "GMRES: restart 100). Gradient difference: relative, CG vs GMRES at 1e-10.\n",
           "| problem | λ | solver | products to 1e-6 | CPU (s) | products to 1e-10 | "
           "CPU (s) | gradient difference |", "|---|---:|---|---:|---:|---:|---:|---:|"]
    for name, operator, regularizer, weight, methods in cases():
        grads = {}
        for method in methods:
            cells = []
            for tol in (1e-6, 1e-10):
                products, cpu, failed, grad = adjoint_cost(operator, regularizer, weight, n,
                                                           tol, method)
                cells += [f"{products}{' (missed)' if failed else ''}", f"{cpu:.2f}"]
            grads[method] = grad
            diff = "" if method == "gmres" else (
                f"{float((grad - grads['gmres']).norm() / grads['gmres'].norm()):.1e}")
            out.append(f"| {name} | {weight:g} | {method} | " + " | ".join(cells) +
                       f" | {diff} |")
            print(out[-1], flush=True)
    text = "\n".join(out) + "\n"
    print(text)
    if not args.quick:
        (HERE / "adjoint.md").write_text(text)


if __name__ == "__main__":
    main()
