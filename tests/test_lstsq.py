"""Convex least squares with early stopping (the linear fits of the H² path)."""

import pytest
import torch

from neuralhss.hss import _lstsq
from neuralhss.hss._lstsq import direct_least_squares, lbfgs_least_squares
from neuralhss.models.neural_h2 import NeuralH2


def _noisy_regression(seed: int = 0):
    """More unknowns than samples, noisy targets: the full least-squares fit overfits."""
    g = torch.Generator().manual_seed(seed)
    n, nv, d = 20, 200, 60
    decay = torch.arange(1, d + 1, dtype=torch.float64) ** -1.5  # ill-conditioned design
    truth = torch.randn(d, 1, generator=g, dtype=torch.float64)
    x = torch.randn(n, d, generator=g, dtype=torch.float64) * decay
    xv = torch.randn(nv, d, generator=g, dtype=torch.float64) * decay
    y = x @ truth + 0.3 * torch.randn(n, 1, generator=g, dtype=torch.float64)
    yv = xv @ truth
    return x, y, xv, yv


def test_early_stopping_keeps_the_best_checked_iterate_and_stops_once_it_has_doubled():
    x, y, xv, yv = _noisy_regression()
    w = torch.zeros(x.shape[1], 1, dtype=torch.float64, requires_grad=True)

    def validate() -> float:
        with torch.no_grad():
            return float((xv @ w - yv).norm() / yv.norm())

    fit = lbfgs_least_squares(lambda a: a @ w, [w], x, y, max_iter=2000, validate=validate,
                              check_every=5)
    errors = dict(fit.history)
    assert fit.validation == min(errors.values()) == errors[fit.iterations]
    assert validate() == pytest.approx(fit.validation, rel=1e-12)  # the best iterate is restored
    last = fit.history[-1][0]
    assert last < 2000 and last <= 2 * max(fit.iterations, 5) + 5  # stopped by the doubling rule
    # early stopping regularises: better on held-out data than the converged fit
    w_full = torch.zeros_like(w, requires_grad=True)
    lbfgs_least_squares(lambda a: a @ w_full, [w_full], x, y, max_iter=2000)
    with torch.no_grad():
        full = float((xv @ w_full - yv).norm() / yv.norm())
    assert fit.validation < 0.9 * full


def test_without_validation_the_fit_converges_and_reports_its_iterations():
    x, y, _, _ = _noisy_regression(1)
    w = torch.zeros(x.shape[1], 1, dtype=torch.float64, requires_grad=True)
    fit = lbfgs_least_squares(lambda a: a @ w, [w], x, y, max_iter=500)
    assert fit.validation is None and fit.history == () and 0 < fit.iterations <= 500
    assert fit.misfit < 1e-8  # more unknowns than samples: it interpolates


def test_linear_path_validation_error_is_the_paths_mean_relative_error():
    torch.manual_seed(0)
    model = NeuralH2(grid_shape=(16, 16), n_layers=0).double()
    x = torch.randn(6, 1, 16, 16, dtype=torch.float64)
    y = torch.roll(x, 1, dims=-1) + 0.1 * x.square()
    xv, yv = x[4:], y[4:]
    fit = model.fit_linear_path(x[:4], y[:4], max_iter=60, center=True, validation=(xv, yv),
                                check_every=10)
    with torch.no_grad():
        pred = model.linear_part(xv)
    rel = ((pred - yv).flatten(1).norm(dim=1) / yv.flatten(1).norm(dim=1)).mean()
    assert fit.validation == pytest.approx(float(rel), rel=1e-10)
    assert fit.iterations == min(fit.history, key=lambda h: h[1])[0]
    with pytest.raises(ValueError, match="validation pairs"):
        model.fit_linear_path(x[:4], y[:4], validation=(xv, yv[:, :, :8]))
    with pytest.raises(ValueError, match="NaN"):
        model.fit_linear_path(x[:4], y[:4], validation=(xv, yv.clone().fill_(float("nan"))))
    with pytest.raises(ValueError, match="check_every"):
        model.fit_linear_path(x[:4], y[:4], validation=(xv, yv), check_every=0)


def test_the_iteration_count_not_the_evaluation_budget_ends_a_fit():
    # an ill-conditioned design that L-BFGS does not finish in 300 iterations: the fit runs
    # all of them, where torch's default budget of 1.25 evaluations per iteration stops it
    # sooner (its line searches take more than one evaluation now and then)
    g = torch.Generator().manual_seed(0)
    d = 60
    x = torch.randn(400, d, generator=g, dtype=torch.float64) * torch.arange(1, d + 1.0) ** -4
    y = x @ torch.randn(d, 1, generator=g, dtype=torch.float64)
    iterations = {}
    for evals in (1.25, _lstsq.MAX_LINE_SEARCH):
        w = torch.zeros(d, 1, dtype=torch.float64, requires_grad=True)
        iterations[evals] = lbfgs_least_squares(lambda a, w=w: a @ w, [w], x, y, max_iter=300,
                                                evals_per_iter=evals).iterations
    assert iterations[_lstsq.MAX_LINE_SEARCH] == 300 > iterations[1.25]


def test_direct_solve_is_the_exact_least_squares_minimiser():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(50, 12, generator=g, dtype=torch.float64)
    y = torch.randn(50, 3, generator=g, dtype=torch.float64)
    # two parameter tensors, one redundant column: the minimum-norm solution
    a = torch.zeros(12, 2, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(12, 1, dtype=torch.float64, requires_grad=True)

    def apply(t: torch.Tensor) -> torch.Tensor:
        return torch.cat([t @ a, t @ b + t @ a[:, :1]], 1)

    checked = []
    fit = direct_least_squares(apply, [a, b], x, y, validate=lambda: checked.append(1) or 0.5)
    assert fit.iterations == 0 and fit.validation == 0.5 and checked == [1]
    with torch.no_grad():
        r = apply(x) - y
        # the normal equations hold: the objective's gradient vanishes
        grads = torch.autograd.functional.vjp(lambda a_, b_: torch.cat(
            [x @ a_, x @ b_ + x @ a_[:, :1]], 1), (a, b), r)[1]
    assert all(float(gr.abs().max()) < 1e-10 for gr in grads)
    assert fit.misfit == pytest.approx(float(r.square().sum() / y.square().sum()), rel=1e-12)
    # with a ridge: the closed form of one block
    w = torch.zeros(12, 3, dtype=torch.float64, requires_grad=True)
    direct_least_squares(lambda t: t @ w, [w], x, y, ridge=0.1)
    lam = 0.1 * float(y.square().sum())
    exact = torch.linalg.solve(x.T @ x + lam * torch.eye(12, dtype=torch.float64), x.T @ y)
    assert torch.allclose(w.detach(), exact, atol=1e-10)


def test_direct_solve_refuses_a_jacobian_over_its_memory_limit(monkeypatch):
    monkeypatch.setattr(_lstsq, "DIRECT_BLOCK_BYTES", 500)
    w = torch.zeros(12, 3, dtype=torch.float64, requires_grad=True)
    x = torch.randn(4, 12, dtype=torch.float64)
    with pytest.raises(ValueError, match="use the iterative fit"):
        direct_least_squares(lambda t: t @ w, [w], x, x[:, :3])


def test_tied_entries_solve_a_symmetrised_problem_with_fewer_columns():
    """Where ``apply`` sees the parameters only through their average over a group, a solve
    over one value per orbit (``tied``) is the full solve: with a ridge both are unique and
    equal (the ridge puts the full solution on the symmetric subspace)."""
    g = torch.Generator().manual_seed(5)
    x = torch.randn(40, 6, generator=g, dtype=torch.float64)
    y = torch.randn(40, 2, generator=g, dtype=torch.float64)
    swap = torch.tensor([1, 0, 3, 2, 4, 5])  # entries 0<->1 and 2<->3 are one orbit each

    def make():
        w = torch.zeros(6, 2, dtype=torch.float64, requires_grad=True)
        return w, (lambda t: t @ ((w + w[swap]) / 2))

    (w_full, f_full), (w_tied, f_tied) = make(), make()
    labels = torch.minimum(torch.arange(6), swap)[:, None].expand(6, 2) * 2 + torch.arange(2)
    full = direct_least_squares(f_full, [w_full], x, y, ridge=0.05)
    tied = direct_least_squares(f_tied, [w_tied], x, y, ridge=0.05, tied=[labels])
    assert tied.misfit == pytest.approx(full.misfit, rel=1e-10)
    assert torch.allclose(w_tied.detach(), w_full.detach(), atol=1e-10)
    assert torch.equal(w_tied.detach()[0], w_tied.detach()[1])
    with pytest.raises(ValueError, match="tied labels of shape"):
        direct_least_squares(f_tied, [w_tied], x, y, tied=[labels[:3]])


def test_symmetric_operator_solves_over_its_orbits_where_the_full_jacobian_is_refused(monkeypatch):
    """A symmetric stationary 3-D far field: the exact fit over its kernels' orbits under the
    cube's 48 symmetries fits in a Jacobian block the per-entry solve is refused."""
    from neuralhss.hss.h2 import H2Operator

    op = H2Operator((8, 8, 8), 1, degree=2, far="stationary", symmetric=True, grid_radius=2,
                    boundary="dirichlet", dtype=torch.float64)
    n_par = sum(p.numel() for p in op.linear_parameters())
    n_orbits = sum(len(torch.unique(t)) if t is not None else p.numel()
                   for t, p in zip(op._orbit_labels(), op.linear_parameters(), strict=True))
    assert n_orbits * 20 < n_par
    g = torch.Generator().manual_seed(0)
    truth = H2Operator((8, 8, 8), 1, degree=2, far="stationary", symmetric=True, grid_radius=2,
                       boundary="dirichlet", dtype=torch.float64)
    truth.reset_parameters(g)
    x = torch.randn(3, 1, 8, 8, 8, generator=g, dtype=torch.float64)
    with torch.no_grad():
        y = truth(x)
    monkeypatch.setattr(_lstsq, "DIRECT_BLOCK_BYTES", 8**3 * 8 * (n_orbits + 1))
    with pytest.raises(ValueError, match="use the iterative fit"):
        direct_least_squares(op, op.linear_parameters(), x, y)
    fit = op.fit_linear(x, y, solver="lstsq")
    assert fit.misfit < 1e-20
    with torch.no_grad():
        torch.testing.assert_close(op(x), y, rtol=1e-9, atol=1e-9)
