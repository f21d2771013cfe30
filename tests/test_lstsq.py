"""Convex least squares with early stopping (the linear fits of the H² path)."""

import pytest
import torch

from neuralhss.hss._lstsq import lbfgs_least_squares
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
