"""restarted_solve: block structure and the implicit backward pass."""

import torch

from retune_sklearn.solvers import restarted_solve


def affine_contraction():
    """φ(u) = a·u + b·θ: fixed point u* = bθ / (1 − a), du*/dθ = b / (1 − a)."""
    theta = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
    a, b = 0.5, 1.0

    def step(u):
        return a * u + b * theta
    return theta, step, b / (1 - a)


def test_implicit_gradient_is_exact_and_repeatable():
    theta, step, exact = affine_contraction()
    u = restarted_solve(step, torch.zeros((), dtype=torch.float64), K=10, T=10,
                        hypergradient="implicit", implicit_tol=1e-14)
    first, = torch.autograd.grad(u, theta, retain_graph=True)
    second, = torch.autograd.grad(u, theta)
    assert torch.isclose(first, torch.tensor(exact, dtype=torch.float64), rtol=1e-10)
    assert torch.equal(first, second)  # a retained graph gives the same answer twice


def test_jfb_differentiates_only_the_last_block():
    """Through K steps of φ the derivative is b Σ_{k<K} a^k, whatever T."""
    theta, step, _ = affine_contraction()
    for T in (1, 3):
        u = restarted_solve(step, torch.zeros((), dtype=torch.float64), K=3, T=T)
        grad, = torch.autograd.grad(u, theta)
        assert torch.isclose(grad, torch.tensor(1 + 0.5 + 0.25, dtype=torch.float64))
    u = restarted_solve(step, torch.zeros((), dtype=torch.float64), K=3, T=3,
                        hypergradient="unrolled")
    grad, = torch.autograd.grad(u, theta)
    assert torch.isclose(grad, torch.tensor(sum(0.5 ** k for k in range(9)),
                                            dtype=torch.float64))
