"""Convex least squares for operators that are linear in their free parameters."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

#: Most objective evaluations of one strong-Wolfe line search (torch's ``max_ls``).
MAX_LINE_SEARCH = 25

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
                        evals_per_iter: float = MAX_LINE_SEARCH,
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

    ``max_iter`` counts L-BFGS iterations; ``evals_per_iter`` bounds the objective evaluations
    at that many per iteration. The default, the line search's own bound, lets the iteration
    count decide, so that a count chosen by early stopping is the count a later fit runs (at
    torch's default of 1.25 evaluations per iteration, a fit of 1000 iterations stopped after
    676 on 2-D Poisson, with a misfit 14 times that of the validated run's half of the pairs).
    """
    params = list(params)
    scale = y.square().sum()
    opt = torch.optim.LBFGS(params, lr=1, max_iter=max_iter, history_size=50,
                            max_eval=max(1, int(max_iter * evals_per_iter)),
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
        opt.param_groups[0].update(max_iter=chunk, max_eval=max(1, int(chunk * evals_per_iter)))
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


#: Most bytes of one block of the Jacobian :func:`direct_least_squares` holds at once.
DIRECT_BLOCK_BYTES = 512 * 2**20


def direct_least_squares(apply: Callable[[torch.Tensor], torch.Tensor],
                         params: Sequence[torch.Tensor], x: torch.Tensor, y: torch.Tensor,
                         ridge: float = 0.0, rcond: float = 1e-12,
                         validate: Callable[[], float] | None = None,
                         tied: Sequence[torch.Tensor | None] | None = None) -> LeastSquaresFit:
    """Minimise the objective of :func:`lbfgs_least_squares` exactly, in place.

    ``apply`` is linear in ``params`` (``P`` scalars in all), so ``apply(x)`` is ``J θ`` for
    the Jacobian ``J`` (rows: every output value of every pair), whose column ``k`` is
    ``apply(x)`` with ``θ = e_k``: ``P`` evaluations per block of pairs. The blocks are folded
    into the triangular factor ``R`` of ``J``'s QR factorisation (no normal equations, whose
    condition number is the square of ``J``'s), and ``R θ = Qᵀ y`` is solved through the SVD of
    ``R``, singular values below ``rcond`` times the largest dropped (the minimum-norm solution
    where the parametrisation is redundant, e.g. a kernel symmetrised over a group). Where an
    iterative fit stalls on an ill-conditioned ``J`` (on 2-D Poisson 32² with 64 pairs L-BFGS
    stopped at a relative error of 5e-4 after 4000 iterations; this solve reaches 2e-6), this
    one does not. ``validate``: reported in the result (no early stopping: nothing iterates).
    Raises ``ValueError`` when one pair's block of ``J`` needs more than
    ``DIRECT_BLOCK_BYTES`` (use the iterative fit there). Returns the
    :class:`LeastSquaresFit` (``iterations`` 0).

    ``tied``: for each parameter ``None`` or an integer tensor of its shape labelling entries
    that move together. The solve is then over one value per label (the columns of ``J`` are
    ``apply`` with a label's entries set to 1), which finds the same minimum wherever ``apply``
    depends on the parameters only through their average over a group whose orbits the labels
    are (a symmetrised kernel: 48 symmetries of the cube make the Jacobian of a 3-D stationary
    far field about 30 times narrower).
    """
    params = list(params)
    tied = [None] * len(params) if tied is None else list(tied)
    if len(tied) != len(params):
        raise ValueError(f"tied has {len(tied)} entries for {len(params)} parameters")
    # per parameter: the label of every entry (0..m-1) and how many entries each label holds
    groups = []
    for p, t in zip(params, tied, strict=True):
        if t is None:
            groups.append((torch.arange(p.numel(), device=p.device),
                           torch.ones(p.numel(), dtype=torch.long)))
            continue
        if t.shape != p.shape:
            raise ValueError(f"tied labels of shape {tuple(t.shape)} for a parameter of shape "
                             f"{tuple(p.shape)}")
        _, inverse, counts = torch.unique(t.reshape(-1), return_inverse=True, return_counts=True)
        groups.append((inverse.to(p.device), counts))
    n_par = sum(len(c) for _, c in groups)
    # the flat indices of each label's entries, label by label
    entries = [torch.argsort(label, stable=True).split(counts.tolist()) for label, counts in groups]
    per_pair = y[0].numel() * n_par * y.element_size()
    if per_pair > DIRECT_BLOCK_BYTES:
        raise ValueError(f"a direct least-squares fit of {n_par} parameters holds "
                         f"{per_pair / 2**20:.0f} MiB of Jacobian per pair (limit "
                         f"{DIRECT_BLOCK_BYTES / 2**20:.0f} MiB); use the iterative fit (L-BFGS)")
    block = max(1, DIRECT_BLOCK_BYTES // per_pair)
    scale = y.square().sum()
    dtype = y.dtype
    r = torch.zeros(0, n_par, dtype=dtype, device=y.device)
    z = torch.zeros(0, dtype=dtype, device=y.device)
    if ridge > 0:  # ridge * scale * ||θ||² as extra rows of the system
        # a label's value enters ||θ||² once per entry it holds
        weight = torch.cat([c for _, c in groups]).to(dtype=dtype, device=y.device).sqrt()
        r = torch.diag(weight) * (ridge * scale).sqrt()
        z = torch.zeros(n_par, dtype=dtype, device=y.device)
    with torch.no_grad():
        saved = [p.detach().clone() for p in params]
        for p in params:
            p.zero_()
        for start in range(0, len(x), block):
            xb, yb = x[start:start + block], y[start:start + block]
            cols = []
            for p, members in zip(params, entries, strict=True):
                flat = p.view(-1)
                for idx in members:
                    flat[idx] = 1.0
                    cols.append(apply(xb).reshape(-1).to(dtype))
                    flat[idx] = 0.0
            q, r = torch.linalg.qr(torch.cat([r, torch.stack(cols, 1)]))
            z = q.T @ torch.cat([z, yb.reshape(-1).to(dtype)])
        u, s, vh = torch.linalg.svd(r, full_matrices=False)
        keep = s > rcond * s[0] if len(s) and s[0] > 0 else torch.zeros_like(s, dtype=torch.bool)
        theta = vh[keep].T @ ((u[:, keep].T @ z) / s[keep])
        if not torch.isfinite(theta).all():
            for p, q0 in zip(params, saved, strict=True):
                p.copy_(q0)
            raise ValueError("the direct least-squares solve gave NaN or inf; check the data")
        offset = 0
        for p, (label, counts) in zip(params, groups, strict=True):
            values = theta[offset:offset + len(counts)]
            p.copy_(values[label].view_as(p).to(p.dtype))
            offset += len(counts)
        misfit = float((apply(x) - y).square().sum() / scale)
        checked = float(validate()) if validate is not None else None
    return LeastSquaresFit(misfit, 0, checked, ((0, checked),) if checked is not None else ())
