"""Convex least squares for operators that are linear in their free parameters."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class LeastSquaresFit:
    """The outcome of :func:`lbfgs_least_squares`.

    ``misfit``: relative squared training misfit ``||A x - y||^2 / ||y||^2`` at the returned
    parameters; ``iterations``: L-BFGS iterations that led to them; ``validation``: the
    ``validate()`` value there (None without one); ``history``: ``(iterations, validate())`` at
    every check, in order.
    """

    misfit: float
    iterations: int
    validation: float | None = None
    history: tuple[tuple[int, float], ...] = ()


def lbfgs_least_squares(apply: Callable[[torch.Tensor], torch.Tensor], params: Sequence[torch.Tensor],
                        x: torch.Tensor, y: torch.Tensor, ridge: float = 0.0, max_iter: int = 300,
                        tolerance_grad: float = 1e-12, tolerance_change: float = 1e-14,
                        validate: Callable[[], float] | None = None, check_every: int = 25,
                        ) -> LeastSquaresFit:
    """Minimise ``||apply(x) - y||^2 / ||y||^2 + ridge * sum ||p||^2`` over ``params`` by L-BFGS
    (strong Wolfe line search, history 50), in place; ``apply`` must be linear in ``params``, so
    the problem is a convex quadratic.

    With ``validate`` (a function of no arguments returning an error of the current parameters
    on held-out data), the fit stops early: ``validate()`` is called every ``check_every``
    iterations, the run ends once the best count so far has doubled without improving on it
    (or at ``max_iter``), and the parameters of the best check are restored. Stopping a
    minimiser of a least-squares problem early is a regulariser (it leaves the directions of
    the weakest singular values unfitted); its best count depends on the operator, the grid
    and the number of samples, hence chosen on held-out pairs rather than fixed.
    """
    params = list(params)
    scale = y.square().sum()
    opt = torch.optim.LBFGS(params, lr=1, max_iter=max_iter, history_size=50,
                            tolerance_grad=tolerance_grad, tolerance_change=tolerance_change,
                            line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = (apply(x) - y).square().sum() / scale
        if ridge > 0:
            loss = loss + ridge * sum(p.square().sum() for p in params)
        loss.backward()
        return loss

    def misfit() -> float:
        with torch.no_grad():
            return float((apply(x) - y).square().sum() / scale)

    if validate is None:
        opt.step(closure)
        return LeastSquaresFit(misfit(), int(opt.state[params[0]].get("n_iter", 0)))
    if check_every < 1:
        raise ValueError(f"check_every={check_every}; use a positive number of iterations")

    def checked() -> float:
        with torch.no_grad():
            return float(validate())

    history = [(0, checked())]
    best_it, best, best_params = 0, history[0][1], [p.detach().clone() for p in params]
    done = 0
    while done < max_iter and done < 2 * max(best_it, check_every):
        chunk = min(check_every, max_iter - done)
        # L-BFGS keeps its history in opt.state between the calls, so the chunks make one run
        opt.param_groups[0].update(max_iter=chunk, max_eval=chunk * 5 // 4)
        opt.step(closure)
        reached = int(opt.state[params[0]].get("n_iter", 0))
        if reached == done:  # converged: L-BFGS's tolerances stop it before a step
            break
        done = reached
        history.append((done, checked()))
        if history[-1][1] < best:
            best_it, best = history[-1]
            best_params = [p.detach().clone() for p in params]
    with torch.no_grad():
        for p, q in zip(params, best_params, strict=True):
            p.copy_(q)
    return LeastSquaresFit(misfit(), best_it, best, tuple(history))
