"""Convex least squares for operators that are linear in their free parameters."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch


def lbfgs_least_squares(apply: Callable[[torch.Tensor], torch.Tensor], params: Sequence[torch.Tensor],
                        x: torch.Tensor, y: torch.Tensor, ridge: float = 0.0, max_iter: int = 300,
                        tolerance_grad: float = 1e-12, tolerance_change: float = 1e-14) -> float:
    """Minimise ``||apply(x) - y||^2 / ||y||^2 + ridge * sum ||p||^2`` over ``params`` by L-BFGS
    (strong Wolfe line search), in place; ``apply`` must be linear in ``params``, so the problem
    is a convex quadratic. Returns the final relative squared misfit (without the ridge term)."""
    scale = y.square().sum()
    opt = torch.optim.LBFGS(list(params), lr=1, max_iter=max_iter, history_size=50,
                            tolerance_grad=tolerance_grad, tolerance_change=tolerance_change,
                            line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = (apply(x) - y).square().sum() / scale
        if ridge > 0:
            loss = loss + ridge * sum(p.square().sum() for p in params)
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return float((apply(x) - y).square().sum() / scale)
