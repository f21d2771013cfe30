"""Adversarial stress tests of neural operators: PGD, low-rank PGD and random noise.

Every attack takes a model ``G`` and input fields ``x (B, C, *grid)`` and returns
``(delta, amplification)``: the perturbation (same shape as ``x``, detached) and, per sample,
the **error amplification**

    ``a_b = (‖G(x_b + δ_b) − G(x_b)‖ / ‖G(x_b)‖) ÷ (‖δ_b‖ / ‖x_b‖)``

(norms over all channels and grid points of one sample), the relative output change per
relative input change. For a linear ``G`` (a matrix ``A`` acting on the flattened field) it is
``(‖Aδ‖/‖δ‖)·(‖x‖/‖Ax‖)``, whose maximum over ``δ`` is ``σ_max(A)·‖x‖/‖Ax‖``.

Budget. With ``relative=True`` (default) the radius of sample ``b`` is ``ρ_b = ε‖x_b‖₂``
for the l2 ball and ``ρ_b = ε‖x_b‖_∞`` for the l∞ box; with ``relative=False`` it is ``ε``.

Objective (maximised, per sample): without ``target`` the squared relative deviation
``‖G(x+δ) − G(x)‖² / ‖G(x)‖²``; with ``target`` (same shape as ``G(x)``) the squared relative
error ``‖G(x+δ) − target‖² / ‖target‖²``. Each attack returns, per sample, the best iterate
it visited. The model is put in ``eval()`` mode for the attack and restored afterwards; only
gradients with respect to ``δ`` are taken (parameter ``.grad`` fields are left untouched).

Methods
-------
* :func:`pgd` — projected gradient ascent. l2: normalised-gradient steps
  ``δ ← Π(δ + α ρ g/‖g‖)`` from a random point of the sphere, ``Π`` the projection onto the
  ball; l∞: signed steps ``δ ← clip(δ + α ρ sign g)`` from a uniform random start.
* :func:`lowrank_pgd` — the same l2 ascent restricted to perturbations whose every channel has
  rank ``≤ r`` (Savostianova, Zangrando & Tudisco 2024). **Choice made here:** rather than the
  factorised ``δ_c = U_c V_cᵀ`` parametrisation, every step is followed by the exact projection
  onto the constraint set, a per-channel truncated SVD (Eckart–Young) of the updated
  perturbation rescaled onto the sphere ``‖δ_b‖ = ρ_b``. For a linear operator this is a
  truncated power iteration. The SVD costs ``O(HW min(H, W))`` per channel, small next to a
  forward/backward pass of an operator. 3-D fields ``(B, C, D, H, W)``: the constraint is the
  multilinear (Tucker) rank ``≤ (r, r, r)`` per channel, projected by truncated HOSVD (which is
  quasi-optimal, within ``√3`` of the best approximation, not exact). 1-D fields have no
  meaningful rank and are refused.
* :func:`random_noise` — Gaussian noise of the same norm (optionally of rank ``≤ r``): the
  baseline every attack must beat.

:func:`attack_table` runs them all over a list of budgets (``neuralhss attack``).

Helpers: :func:`amplification`, :func:`project_rank`, :func:`field_rank`, :class:`InDataUnits`
(wrap a model trained on normalised data so that the attack works in the data's own units).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from .._checks import check_number

__all__ = ["InDataUnits", "amplification", "attack_methods", "attack_table", "field_rank",
           "lowrank_pgd", "pgd", "project_rank", "random_noise"]

_TINY = 1e-30


# --------------------------------------------------------------------------- validation


def _check_x(x: torch.Tensor) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"x must be a torch.Tensor of shape (B, C, *grid), got {type(x).__name__}")
    if x.ndim < 3:
        raise ValueError(f"x has shape {tuple(x.shape)}; expected fields (B, C, *grid) with at "
                         "least one spatial axis (add axes with x[None] / x[:, None])")
    if not x.is_floating_point():
        raise ValueError(f"x has dtype {x.dtype}; attacks need a real floating-point input")
    if x.shape[0] < 1 or x[0].numel() == 0:
        raise ValueError(f"x of shape {tuple(x.shape)} is empty")
    if not torch.isfinite(x).all():
        raise ValueError("x contains NaN or infinite values")
    return x.detach()


def _check_eps(eps: float) -> float:
    return check_number(eps, "eps", hint=" (the perturbation budget)")


def _check_steps(steps: int) -> int:
    if isinstance(steps, bool) or int(steps) != steps or steps < 1:
        raise ValueError(f"steps={steps!r} must be a positive integer")
    return int(steps)


def _check_rank(rank: int, x: torch.Tensor) -> int:
    grid = tuple(x.shape[2:])
    if len(grid) == 1:
        raise ValueError(f"x has one spatial axis {grid}: a rank constraint needs 2-D fields "
                         "(B, C, H, W) or 3-D fields (B, C, D, H, W); use pgd() for 1-D data")
    if len(grid) > 3:
        raise ValueError(f"x has {len(grid)} spatial axes; low-rank perturbations support 2-D and 3-D")
    hi = min(grid)
    if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or not 1 <= rank <= hi:
        raise ValueError(f"rank={rank!r} must be an integer in [1, {hi}] (the smallest grid side "
                         f"of {grid})")
    return int(rank)


def _sample_norm(t: torch.Tensor, p: float = 2.0) -> torch.Tensor:
    return torch.linalg.vector_norm(t.flatten(1), ord=p, dim=1)


def _bshape(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.reshape(-1, *([1] * (like.ndim - 1)))


def _radius(x: torch.Tensor, eps: float, relative: bool, norm: str) -> torch.Tensor:
    p = 2.0 if norm == "l2" else math.inf
    if not relative:
        return torch.full((x.shape[0],), eps, dtype=x.dtype, device=x.device)
    nx = _sample_norm(x, p)
    if (nx == 0).any():
        raise ValueError(f"samples {torch.nonzero(nx == 0).flatten().tolist()} of x are zero: a "
                         "relative budget eps*||x|| is empty; use relative=False")
    return eps * nx


@contextlib.contextmanager
def _attack_mode(model: nn.Module) -> Iterator[None]:
    was = model.training
    model.eval()
    try:
        with torch.enable_grad():
            yield
    finally:
        model.train(was)


def _generator(seed: int | None, device) -> torch.Generator | None:
    if seed is None:
        return None
    g = torch.Generator(device=device)
    g.manual_seed(int(seed))
    return g


def _randn_like(x: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
    return torch.randn(x.shape, dtype=x.dtype, device=x.device, generator=gen)


# --------------------------------------------------------------------------- rank tools


def project_rank(delta: torch.Tensor, rank: int) -> torch.Tensor:
    """Best approximation of every channel of ``delta`` with rank ``≤ rank``.

    2-D fields ``(B, C, H, W)``: per-channel truncated SVD (the exact Frobenius projection onto
    rank ``≤ r``). 3-D fields ``(B, C, D, H, W)``: truncated HOSVD to multilinear rank
    ``(r, r, r)`` (quasi-optimal).
    """
    delta = _check_x(delta)
    rank = _check_rank(rank, delta)
    work = delta.double()
    if delta.ndim == 4:
        u, s, vh = torch.linalg.svd(work, full_matrices=False)
        out = (u[..., :rank] * s[..., None, :rank]) @ vh[..., :rank, :]
        return out.to(delta.dtype)
    out = work
    for axis in (2, 3, 4):
        u, _, _ = torch.linalg.svd(_unfold(work, axis), full_matrices=False)
        p = u[..., :rank] @ u[..., :rank].mT                       # (B, C, n, n) projector
        out = torch.movedim(torch.einsum("bcij,bcj...->bci...", p, out.movedim(axis, 2)), 2, axis)
    return out.to(delta.dtype)


def _unfold(t: torch.Tensor, axis: int) -> torch.Tensor:
    """Mode unfolding of every ``(b, c)`` tensor: ``(B, C, n_axis, prod(other spatial))``."""
    return t.movedim(axis, 2).flatten(3)


def field_rank(delta: torch.Tensor, tol: float = 1e-6) -> torch.Tensor:
    """Numerical rank per sample and channel, ``(B, C)`` (3-D: the largest multilinear rank).

    Counts singular values above ``tol`` times the largest one of that channel (0 for a zero
    channel).
    """
    delta = _check_x(delta)
    if delta.ndim not in (4, 5):
        raise ValueError(f"delta has shape {tuple(delta.shape)}; field_rank needs 2-D or 3-D fields")
    work = delta.double()
    mats = [work] if delta.ndim == 4 else [_unfold(work, a) for a in (2, 3, 4)]
    ranks = []
    for m in mats:
        s = torch.linalg.svdvals(m)
        ranks.append((s > tol * s[..., :1].clamp_min(_TINY)).sum(-1) * (s[..., 0] > 0))
    return torch.stack(ranks).amax(0)


# --------------------------------------------------------------------------- objective


def amplification(model: nn.Module, x: torch.Tensor, delta: torch.Tensor,
                  y0: torch.Tensor | None = None) -> torch.Tensor:
    """Per-sample ``(‖G(x+δ) − G(x)‖/‖G(x)‖) ÷ (‖δ‖/‖x‖)`` (module docstring), shape ``(B,)``.

    ``y0`` is ``G(x)`` when already computed. A zero ``δ_b`` gives NaN.
    """
    x = _check_x(x)
    if delta.shape != x.shape:
        raise ValueError(f"delta {tuple(delta.shape)} and x {tuple(x.shape)} differ in shape")
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            y0 = model(x) if y0 is None else y0
            y1 = model(x + delta.to(x.dtype))
    finally:
        model.train(was)
    num = _sample_norm(y1 - y0) / _sample_norm(y0).clamp_min(_TINY)
    den = _sample_norm(delta) / _sample_norm(x).clamp_min(_TINY)
    return torch.where(den > 0, num / den.clamp_min(_TINY), torch.full_like(num, float("nan")))


class _Objective:
    """Per-sample squared relative deviation (or error against ``target``) and its δ-gradient."""

    def __init__(self, model: nn.Module, x: torch.Tensor, target: torch.Tensor | None) -> None:
        self.model, self.x = model, x
        with torch.no_grad():
            self.y0 = model(x)
        if target is not None:
            if not isinstance(target, torch.Tensor) or target.shape != self.y0.shape:
                got = tuple(target.shape) if isinstance(target, torch.Tensor) else type(target).__name__
                raise ValueError(f"target {got} must have the model's output shape {tuple(self.y0.shape)}")
            self.ref = target.detach().to(self.y0.dtype)
        else:
            self.ref = self.y0
        self.scale = _sample_norm(self.ref).square().clamp_min(_TINY)

    def __call__(self, delta: torch.Tensor, grad: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        if not grad:
            with torch.no_grad():
                return _sample_norm(self.model(self.x + delta) - self.ref).square() / self.scale, None
        d = delta.detach().requires_grad_(True)
        j = _sample_norm(self.model(self.x + d) - self.ref).square() / self.scale
        (g,) = torch.autograd.grad(j.sum(), d)
        return j.detach(), g


class _Best:
    def __init__(self, delta: torch.Tensor) -> None:
        self.delta = delta.clone()
        self.value = torch.full((delta.shape[0],), -math.inf, dtype=torch.float64, device=delta.device)

    def update(self, delta: torch.Tensor, value: torch.Tensor) -> None:
        better = value.double() > self.value
        self.value = torch.where(better, value.double(), self.value)
        self.delta[better] = delta[better]


def _unit(g: torch.Tensor, gen: torch.Generator | None, rank: int | None = None) -> torch.Tensor:
    """``g / ‖g‖`` per sample; a random direction (of rank ≤ ``rank``) where ``g = 0``."""
    n = _sample_norm(g)
    dead = ~(n > 0)
    if dead.any():
        r = _randn_like(g, gen)
        if rank is not None:
            r = project_rank(r, rank)
        g = torch.where(_bshape(dead, g), r, g)
        n = _sample_norm(g)
    return g / _bshape(n, g)


def _onto_sphere(d: torch.Tensor, radius: torch.Tensor) -> torch.Tensor:
    return d * _bshape(radius / _sample_norm(d).clamp_min(_TINY), d)


def _into_ball(d: torch.Tensor, radius: torch.Tensor) -> torch.Tensor:
    n = _sample_norm(d)
    return d * _bshape(torch.where(n > radius, radius / n.clamp_min(_TINY), torch.ones_like(n)), d)


# --------------------------------------------------------------------------- attacks


def _check_restarts(restarts: int) -> int:
    if isinstance(restarts, bool) or int(restarts) != restarts or restarts < 1:
        raise ValueError(f"restarts={restarts!r} must be a positive integer")
    return int(restarts)


def _ascend(obj: _Objective, best: _Best, delta: torch.Tensor, steps: int, step) -> None:
    """``steps`` ascent steps ``delta <- step(delta, grad)`` from ``delta``, recording the best."""
    for _ in range(steps):
        j, g = obj(delta)
        best.update(delta, j)
        delta = step(delta, g)
    best.update(delta, obj(delta, grad=False)[0])


def pgd(model: nn.Module, x: torch.Tensor, eps: float, steps: int = 20, norm: str = "l2",
        relative: bool = True, target: torch.Tensor | None = None, step_size: float | None = None,
        restarts: int = 1, seed: int | None = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Projected gradient ascent on the output deviation (or error against ``target``).

    Parameters
    ----------
    model : nn.Module
        The operator ``G``: ``(B, C, *grid) -> (B, C_out, *grid_out)``.
    x : Tensor ``(B, C, *grid)``
        Inputs (any number of spatial axes).
    eps : float > 0
        Budget: ``‖δ_b‖ ≤ ε‖x_b‖`` (module docstring for the norms and ``relative``).
    steps : int >= 1
        Gradient steps per restart (one forward and backward each, plus one final forward).
    norm : {"l2", "linf"}
    relative : bool, default True
    target : Tensor, optional
        Maximise the relative error against it instead of the deviation from ``G(x)``.
    step_size : float, optional
        Step length as a fraction of the radius ``ρ_b``; default 1.0 for l2 (large steps turn
        the ascent into a shifted power iteration for near-linear operators) and ``2.5/steps``
        for linf.
    restarts : int, default 1
        Independent random starts; the best result per sample is kept.
    seed : int or None, default 0
        Seeds the random starts (None: the global generator).

    Returns
    -------
    delta : Tensor like ``x``
        The best perturbation found per sample (``‖δ_b‖ ≤ ρ_b``).
    amplification : Tensor ``(B,)``
        See :func:`amplification`.
    """
    x = _check_x(x)
    eps, steps, restarts = _check_eps(eps), _check_steps(steps), _check_restarts(restarts)
    if norm not in ("l2", "linf"):
        raise ValueError(f"norm={norm!r}; use 'l2' or 'linf'")
    alpha = (1.0 if norm == "l2" else 2.5 / steps) if step_size is None else float(step_size)
    if not alpha > 0:
        raise ValueError(f"step_size={step_size!r} must be > 0")
    radius = _radius(x, eps, relative, norm)
    rb = _bshape(radius, x)
    gen = _generator(seed, x.device)

    def step(delta: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        if norm == "l2":
            return _into_ball(delta + alpha * rb * _unit(g, gen), radius)
        return torch.clamp(delta + alpha * rb * torch.sign(g), -rb, rb)

    with _attack_mode(model):
        obj = _Objective(model, x, target)
        best = _Best(torch.zeros_like(x))
        for _ in range(restarts):
            if norm == "l2":
                delta = _onto_sphere(_randn_like(x, gen), radius)
            else:
                delta = (torch.rand(x.shape, dtype=x.dtype, device=x.device, generator=gen) * 2 - 1) * rb
            _ascend(obj, best, delta, steps, step)
        amp = amplification(model, x, best.delta, obj.y0)
    return best.delta, amp


def lowrank_pgd(model: nn.Module, x: torch.Tensor, eps: float, rank: int, steps: int = 20,
                init: str = "zero", relative: bool = True, target: torch.Tensor | None = None,
                step_size: float = 2.0, warm_steps: int = 1, restarts: int = 1,
                seed: int | None = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """l2 PGD over perturbations of rank ``≤ rank`` per channel, on the sphere ``‖δ_b‖ = ρ_b``.

    Each step ``δ ← P(δ + α ρ g/‖g‖)`` with ``P`` the per-channel truncated SVD followed by the
    rescaling onto the sphere (module docstring; 3-D fields: truncated HOSVD, multilinear rank).
    Like every rank-constrained Rayleigh-quotient ascent it can stop at a local maximum or
    converge slowly: on linear test operators whose constrained maximum is known, one random
    start came within 1 % of it in about 93 % of the cases with 20 steps and 97 % with 50;
    ``restarts`` and the ``"pgd"`` warm start with a few ``warm_steps`` (5: every case) fix that.

    Parameters
    ----------
    model, x, eps, relative, target, seed :
        As for :func:`pgd` (the norm is l2). ``x`` must be 2-D ``(B, C, H, W)`` or 3-D
        ``(B, C, D, H, W)`` fields.
    rank : int
        ``1 ≤ rank ≤ min(grid)``.
    steps : int >= 1
        Projected steps per restart.
    init : {"zero", "pgd"}
        ``"zero"``: start at ``δ = 0``; the first step follows the gradient there (the rank-r
        part of a one-step attack). Without ``target`` the deviation is stationary at ``δ = 0``
        (zero gradient), and the first step takes a random rank-r direction instead.
        ``"pgd"``: warm start from the truncated SVD of a full l2 PGD of ``warm_steps`` steps
        from a random point of the sphere (``warm_steps`` extra forward/backward passes).
    step_size : float, default 2.0
        Step length as a fraction of ``ρ_b`` (on linear test operators 2 reached the constrained
        maximum from more random starts than 1 or 0.5: 97 % against 89 % and 83 % at rank 1).
    warm_steps : int, default 1
        Steps of the full PGD warm start (``init="pgd"`` only; one step as in the paper).
    restarts : int, default 1
        Restarts after the first run, each from a random rank-r point of the sphere; the best
        result per sample is kept.

    Returns
    -------
    (delta, amplification) as for :func:`pgd`; every channel of ``delta`` has rank ``≤ rank``.
    """
    x = _check_x(x)
    eps, steps, rank = _check_eps(eps), _check_steps(steps), _check_rank(rank, x)
    restarts = _check_restarts(restarts)
    if init not in ("zero", "pgd"):
        raise ValueError(f"init={init!r}; use 'zero' or 'pgd'")
    warm_steps = _check_steps(warm_steps)
    alpha = float(step_size)
    if not alpha > 0:
        raise ValueError(f"step_size={step_size!r} must be > 0")
    radius = _radius(x, eps, relative, "l2")
    rb = _bshape(radius, x)
    gen = _generator(seed, x.device)

    def step(delta: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return _onto_sphere(project_rank(delta + alpha * rb * _unit(g, gen, rank), rank), radius)

    with _attack_mode(model):
        obj = _Objective(model, x, target)
        best = _Best(torch.zeros_like(x))
        for k in range(restarts):
            if k > 0:
                delta = _onto_sphere(project_rank(_randn_like(x, gen), rank), radius)
            elif init == "zero":
                # without a target the deviation is stationary at 0: skip the wasted gradient
                g = obj(torch.zeros_like(x))[1] if target is not None else torch.zeros_like(x)
                delta = _onto_sphere(project_rank(_unit(g, gen, rank), rank), radius)
            else:
                full = _onto_sphere(_randn_like(x, gen), radius)
                for _ in range(warm_steps):
                    _, g = obj(full)
                    full = _into_ball(full + rb * _unit(g, gen), radius)
                delta = _onto_sphere(project_rank(full, rank), radius)
            _ascend(obj, best, delta, steps, step)
        amp = amplification(model, x, best.delta, obj.y0)
    return best.delta, amp


def random_noise(model: nn.Module, x: torch.Tensor, eps: float, relative: bool = True,
                 norm: str = "l2", rank: int | None = None,
                 seed: int | None = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian noise on the sphere of the attack budget: the baseline of equal norm.

    l2: ``δ_b = ρ_b ξ/‖ξ‖`` with ``ξ`` standard Gaussian (per-channel rank ``≤ rank`` when given,
    by truncated SVD/HOSVD before the rescaling); linf: ``δ = ρ_b·sign(ξ)`` (a vertex of the box).
    Returns ``(delta, amplification)`` as the attacks do.
    """
    x = _check_x(x)
    eps = _check_eps(eps)
    if norm not in ("l2", "linf"):
        raise ValueError(f"norm={norm!r}; use 'l2' or 'linf'")
    if rank is not None:
        rank = _check_rank(rank, x)
        if norm != "l2":
            raise ValueError("rank-constrained noise is defined for norm='l2' only")
    radius = _radius(x, eps, relative, norm)
    xi = _randn_like(x, _generator(seed, x.device))
    if norm == "linf":
        delta = torch.sign(xi) * _bshape(radius, x)
    else:
        delta = _onto_sphere(project_rank(xi, rank) if rank is not None else xi, radius)
    return delta, amplification(model, x, delta)


# --------------------------------------------------------------------------- data units


class InDataUnits(nn.Module):
    """``x ↦ decode_y(model(encode_x(x)))``: a model trained on normalised data, in data units.

    ``normalizer`` is a :class:`neuralhss.datasets.Normalizer` (per-channel ``(v − mean)/std``
    of inputs and outputs), so that attack budgets and amplifications refer to the physical
    fields, as :func:`neuralhss.train.evaluate` errors do.
    """

    def __init__(self, model: nn.Module, normalizer) -> None:
        super().__init__()
        self.model = model
        for name in ("x_mean", "x_std", "y_mean", "y_std"):
            self.register_buffer(name, torch.as_tensor(np.asarray(getattr(normalizer, name)),
                                                       dtype=torch.float32), persistent=False)

    @staticmethod
    def _shape(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return v.to(like.dtype).reshape(1, -1, *([1] * (like.ndim - 2)))

    def encode_x(self, x: torch.Tensor) -> torch.Tensor:
        """Physical inputs to the model's normalised inputs."""
        return (x - self._shape(self.x_mean, x)) / self._shape(self.x_std, x)

    def decode_x(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised inputs (as :class:`~neuralhss.datasets.PDEDataset` yields) to physical ones."""
        return x * self._shape(self.x_std, x) + self._shape(self.x_mean, x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.model(self.encode_x(x))
        return y * self._shape(self.y_std, y) + self._shape(self.y_mean, y)


# --------------------------------------------------------------------------- the stress table


def attack_methods(model: nn.Module, x: torch.Tensor, rank: int = 4, steps: int = 20,
                   seed: int = 0) -> dict[str, Callable[[float], tuple[torch.Tensor, torch.Tensor]]]:
    """The attacks of :func:`attack_table` by name: ``eps -> (delta, amplification)``.

    ``random`` (:func:`random_noise`) and ``pgd`` (l2 :func:`pgd`) always; ``lowrank_r<rank>``
    (:func:`lowrank_pgd`) for 2-D and 3-D fields only.

    Raises
    ------
    ValueError
        ``rank`` or ``steps`` below 1, or ``rank`` above the smallest grid side.
    """
    if rank < 1:
        raise ValueError(f"rank {rank} must be >= 1")
    _check_steps(steps)
    grid = tuple(x.shape[2:])
    methods = {"random": lambda e: random_noise(model, x, e, seed=seed),
               "pgd": lambda e: pgd(model, x, e, steps=steps, seed=seed)}
    if len(grid) in (2, 3):
        if rank > min(grid):
            raise ValueError(f"rank {rank} exceeds the smallest grid side {min(grid)} of {grid}")
        methods[f"lowrank_r{rank}"] = lambda e: lowrank_pgd(model, x, e, rank, steps=steps, seed=seed)
    return methods


def attack_table(model: nn.Module, x: torch.Tensor, eps: Sequence[float], rank: int = 4,
                 steps: int = 20, seed: int = 0,
                 on_row: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Error amplification of ``model`` at ``x`` under every attack of :func:`attack_methods`,
    one row per budget ``eps`` (relative, l2).

    Each row is ``{"eps": e, name: {"mean", "max", "seconds", "per_sample"}, ...}``;
    ``on_row(row)`` is called as each row is done (to print it). ``torch.manual_seed(seed)`` is
    set first (the attacks also take ``seed``).
    """
    for e in eps:
        if not e > 0:
            raise ValueError(f"eps {e}: every budget must be > 0")
    methods = attack_methods(model, x, rank, steps, seed)
    torch.manual_seed(seed)
    rows = []
    for e in eps:
        row: dict[str, Any] = {"eps": e}
        for name, fn in methods.items():
            t0 = time.perf_counter()
            _, amp = fn(e)
            row[name] = {"mean": float(amp.mean()), "max": float(amp.max()),
                         "seconds": time.perf_counter() - t0, "per_sample": amp.tolist()}
        if on_row is not None:
            on_row(row)
        rows.append(row)
    return rows
