"""Dynamical low-rank training (DLRT/TDLRT) as an optimizer wrapper for ordinary loops.

``DLRT(model, optimizer, tau=...)`` drives every :class:`~neuralhss.lowrank.layers.LowRankModule`
of ``model`` (matrix layers ``W = U S Vᵀ`` and Tucker layers ``W = C ×_m U_m``) by a
rank-adaptive basis-update & Galerkin step, and the wrapped optimizer for every other
parameter and for the cores::

    integ = DLRT(model, lambda ps: torch.optim.AdamW(ps, lr=1e-3), tau=0.1)
    for x, y in loader:
        integ.zero_grad()
        loss = loss_fn(model(x), y) + integ.penalty()
        loss.backward()
        integ.step()

The scheme (Schotthöfer et al. 2022; Zangrando et al. 2023), for a layer with core ``C`` and
factors ``U_i`` (matrix: ``C = S``, ``U_0 = U``, ``U_1 = V``), one step:

1. **Gradients.** ``mode="augmented"``/``"fixed"``: the user's single backward gives ``G_C``
   and ``G_{U_i} = M_i C_(i)ᴴ`` with ``M_i = (G_W ×_{j≠i} U_jᴴ)_(i)`` (matrix:
   ``G_U = G_W V Sᵀ``, ``G_V = G_Wᵀ U S``). ``mode="kls"``: one extra forward/backward per
   factor in the K-form ``U_i ← K_i = U_i Rᴴ``, core ``← Qᴴ`` (``C_(i)ᴴ = Q R``), the same ``W``,
   so the factor's gradient is the exact K-step direction ``M_i Q`` (matrix: ``G_W V`` and
   ``G_Wᵀ U``, the classical K- and L-steps).
2. **Augment.** ``Û_i = [U_i | Ũ_i] = orth([U_i | G])`` by Householder QR (``G = G_{U_i}`` or
   the K-gradient; their spans agree when ``C_(i)`` has full row rank). The first block is
   ``U_i`` itself, so the projected core ``Ĉ₀ = C ×_i Û_iᴴ U_i`` is ``C`` padded with zeros and
   ``Ĉ₀ ×_i Û_i = W`` exactly.
3. **Core gradient** on the augmented basis, ``Ĝ = G_W ×_i Û_iᴴ``, at the same ``W``:

   * with a ``closure`` (and always in ``"kls"``): recomputed exactly by one more
     forward/backward in the augmented representation — the rank-adaptive BUG of
     Ceruti–Kusch–Lubich used by DLRT;
   * without (one backward per step): the *parallel* BUG core (the parallel rank-adaptive
     integrator of Ceruti, Kusch & Lubich, "A parallel rank-adaptive integrator for dynamical
     low-rank approximation", in the one-backward form of GeoLoRA: Schotthöfer, Zangrando,
     Ceruti, Tudisco & Kusch, "GeoLoRA: Geometric integration for parameter efficient
     fine-tuning", ICLR 2025): the block ``(old, …, old)`` is ``G_C``, the block with mode
     ``i`` new and the others old is ``Ũ_iᴴ M_i P_i = Ũ_iᴴ G_{U_i} (C_(i)ᴴ)⁺`` (``P_i`` the
     projector on the row space of ``C_(i)``; matrix: ``Ũᵀ G_W V`` and ``Uᵀ G_W Ṽ``), blocks
     with two or more new modes are 0. ``Ĉ₀ − λĜ`` is then ``W − λ P_T(G_W)`` with ``P_T``
     the projection on the tangent space of the fixed-(Tucker-)rank manifold at ``W``: a
     Riemannian gradient step from one backward (only ``.grad`` is read, so gradient
     accumulation and clipping work as usual). The pseudo-inverse drops singular values below
     ``rcond·σ₁`` (those directions are left out of the step, which stays a descent
     direction). Its conditioning is controlled: when the τ rule sets the rank (not
     ``min_rank`` or ``"fixed"``), the kept ``σ_r`` satisfies
     ``√r̂ σ_r ≥ ‖σ_{r:}‖ > τ‖σ‖``, so ``κ(C_(i)) ≤ √r̂/τ`` (``r̂`` the augmented rank); and
     ``kappa_max`` bounds it explicitly.

   The closure variant moves ``W`` by ``λ P_Û G_W P_V̂`` (matrix), the one-pass variant by
   ``λ P_T(G_W)``; they differ only in the block ``Ũᴴ G_W Ṽ`` normal to the manifold. At full
   rank (``U_i`` square, or rank ``= min(n, m)`` for a matrix) both are the dense step
   ``W − λ G_W`` exactly (tests check all three identities to 1e-10 in float64).
4. **Update** the augmented core with the wrapped optimizer (one step, bases fixed).
5. **Truncate** each adaptive mode by the SVD of the core unfolding (matrix: one SVD; Tucker:
   HOSVD, relative error ≤ τ√d over d modes): keep the smallest ``r`` with
   ``‖σ_{r+1:}‖ ≤ τ‖σ‖`` in ``[min_rank, max_rank]`` (``"fixed"``: back to the rank before
   the step). ``U_i ← Û_i P_i``; the new factors are
   re-orthonormalised by QR (``R`` absorbed into the core, ``W`` unchanged) so that rounding
   never accumulates.
6. **Robust** (``kappa_max``): clamp the singular values of the core so that
   ``κ(S) ≤ kappa_max``, the condition-number control of CondLR (Savostianova, Zangrando,
   Ceruti & Tudisco, "Robust low-rank training via approximate orthonormal constraints",
   NeurIPS 2023). With orthonormal factors the nonzero singular values of ``W = U S Vᴴ`` are
   those of ``S``, so ``κ(W) = κ(S)`` on the range of ``W``. For Tucker
   cores each adaptive unfolding is clamped in turn; the bound is then guaranteed for the
   last mode only (clamping one unfolding perturbs the others).

Optimizer state of a core (its shape changes every step): first-moment-like buffers
(``exp_avg``, ``momentum_buffer``, …) are coordinates of a matrix in the current basis and are
*transported* exactly: zero-padded on augmentation, projected ``m ×_i A_i`` on truncation.
Second-moment buffers (key containing ``sq``/``square``, or ``sum``) are transformed with the
squared moduli ``v ×_i |A_i|²`` (exact for permutations, the diagonal of the rotated
covariance for independent entries); new directions start at zero like a fresh Adam state.
The factors are not in the wrapped optimizer (they move only by the steps above).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from torch import nn

from .._checks import check_number
from .layers import LowRankModule, check_tau, fold, mode_product, truncation_rank, unfold

MODES = ("augmented", "fixed", "kls")
KAPPA_RULES = ("floor", "mean")


def augment_basis(u: torch.Tensor, g: torch.Tensor | None) -> torch.Tensor:
    """``[u | ũ]`` with orthonormal columns spanning ``span([u, g])`` (``min(n, 2r)`` columns).

    Householder QR keeps the result orthonormal to rounding even when ``g`` is (nearly) in
    ``span(u)``; extra columns are then arbitrary directions of the complement, harmless to the
    Galerkin step. The first block is ``u`` itself, not its QR copy, so cores pad exactly.
    """
    n, r = u.shape
    if g is None or r >= n:
        return u
    q, _ = torch.linalg.qr(torch.cat([u, g.to(u.dtype)], 1))
    return torch.cat([u, q[:, r:]], 1)


def qr_phase(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """QR ``a = Q R`` with ``diag(R)`` real and ``>= 0`` (phases moved into ``Q``).

    For ``a`` with orthonormal columns up to rounding, ``R = I + O(eps)``: absorbing ``R`` into
    a core keeps the product exact while ``Q`` is orthonormal to rounding.
    """
    q, rr = torch.linalg.qr(a)
    d = rr.diagonal()
    ph = torch.where(d.abs() > 0, d / d.abs(), torch.ones_like(d))
    return q * ph, rr * ph.conj()[:, None]


def transport_state(optimizer: torch.optim.Optimizer, p: nn.Parameter, linear: Callable,
                    quadratic: Callable) -> None:
    """Map the optimizer state of ``p`` to a new basis (module docstring, last paragraph).

    Buffers shaped like ``p`` go through ``linear`` (first moments, momentum) or, for keys of
    second moments (``sq``/``square``/``sum``), ``quadratic`` (the squared-moduli map); for complex
    second moments the real and imaginary slots are summed, mapped and split evenly.
    """
    state = optimizer.state.get(p)
    if not state:
        return
    for key, v in list(state.items()):
        if torch.is_tensor(v) and v.ndim > 0 and v.shape == p.shape:
            if _is_quadratic(key):
                if v.is_complex():
                    # torch stores the second moments of the real and imaginary parts in the
                    # real and imaginary slots; transport their sum and split it evenly.
                    s = quadratic(v.real + v.imag) / 2
                    state[key] = torch.complex(s, s)
                else:
                    state[key] = quadratic(v)
            else:
                state[key] = linear(v)


def install_parameter(module: nn.Module, name: str, value: torch.Tensor,
                      optimizer: torch.optim.Optimizer | None = None) -> nn.Parameter:
    """Put ``value`` into a *new* Parameter ``module.<name>`` (same ``requires_grad``).

    With ``optimizer``, the old parameter's group entry and state move to the new one. A new
    object (not ``.data`` of another shape) keeps autograd graphs alive elsewhere valid
    (:meth:`DLRT.step`, Notes).
    """
    old = getattr(module, name)
    new = nn.Parameter(value.detach().contiguous(), requires_grad=old.requires_grad)
    setattr(module, name, new)
    if optimizer is not None:
        for group in optimizer.param_groups:
            group["params"] = [new if p is old else p for p in group["params"]]
        if old in optimizer.state:
            optimizer.state[new] = optimizer.state.pop(old)
    return new


def wrap_optimizer(optimizer: torch.optim.Optimizer | Callable, model: nn.Module,
                   excluded: Iterable[nn.Parameter], cores: dict[str, nn.Parameter]) -> torch.optim.Optimizer:
    """The optimizer of an integrator: it must hold the ``cores`` and none of ``excluded``.

    A ready optimizer has the excluded parameters (factors the integrator updates itself)
    removed from its groups and state; a factory receives the cores first, then every other
    trainable parameter of ``model``.
    """
    excluded_ids = {id(p) for p in excluded}
    if isinstance(optimizer, torch.optim.Optimizer):
        for group in optimizer.param_groups:
            group["params"] = [p for p in group["params"] if id(p) not in excluded_ids]
        for p in [p for p in optimizer.state if id(p) in excluded_ids]:
            del optimizer.state[p]
    elif callable(optimizer):
        core_ids = {id(p) for p in cores.values()}
        others = [p for p in model.parameters()
                  if p.requires_grad and id(p) not in excluded_ids and id(p) not in core_ids]
        optimizer = optimizer(list(cores.values()) + others)
    else:
        raise ValueError("optimizer must be a torch.optim.Optimizer or a factory params -> Optimizer")
    held = {id(p) for g in optimizer.param_groups for p in g["params"]}
    for name, core in cores.items():
        if id(core) not in held:
            raise ValueError(f"the optimizer does not hold the core of {name!r}; pass a factory or "
                             "build it over the model's parameters")
    return optimizer


def zero_grads(model: nn.Module, set_to_none: bool = True) -> None:
    """Clear the gradients of every parameter of ``model`` (factors and probes included)."""
    for p in model.parameters():
        if set_to_none:
            p.grad = None
        elif p.grad is not None:
            p.grad.zero_()


def _is_quadratic(key: str) -> bool:
    return "sq" in key or "square" in key or key == "sum"


def _abs2(a: torch.Tensor) -> torch.Tensor:
    return a.real.square() + a.imag.square() if a.is_complex() else a.square()


class DLRT:
    """Rank-adaptive dynamical low-rank training of a model's low-rank layers.

    Parameters
    ----------
    model : nn.Module
        Holds at least one :class:`~neuralhss.lowrank.layers.LowRankModule` (build one with
        the layers here or :func:`neuralhss.lowrank.compress`).
    optimizer : callable or torch.optim.Optimizer
        ``params -> Optimizer`` (called with every parameter except the low-rank factors), or an
        optimizer built over ``model.parameters()`` (the factors are removed from its groups). It
        updates the cores and all other parameters; schedulers and ``lr`` apply as usual.
    tau : float in [0, 1), default 0.1
        Relative truncation tolerance of the singular values of each core (unfolding).
    mode : {"augmented", "fixed", "kls"}
        ``"augmented"``: rank-adaptive step from one backward (module docstring), or two with a
        ``closure``; ``"fixed"``: the same step truncated back to the current rank;
        ``"kls"``: the three-pass (K, L, S; one per factor + 1 for Tucker) rank-adaptive DLRT
        step of the original paper, ``step(closure)`` required.
    min_rank, max_rank : int
        Rank bounds per factor (``max_rank`` further capped by each layer's ``max_ranks``).
    kappa_max : float, optional
        Bound on the condition number of every core (robust training, CondLR).
    kappa_rule : {"floor", "mean"}
        ``"floor"``: ``σ_i ← max(σ_i, σ_1/κ_max)``; ``"mean"``: clamp into ``[s̄ − e, s̄ + e]``,
        ``s̄`` the mean singular value and ``e = s̄ (κ_max − 1)/(κ_max + 1)``, the half-width
        for which ``(s̄ + e)/(s̄ − e) = κ_max``.
    beta : float, default 0
        Weight of :meth:`penalty`.
    rcond : float, optional
        Relative cut-off of the pseudo-inverse in the one-pass core (default ``√eps``).

    Raises
    ------
    ValueError
        No low-rank layer in ``model``, or an argument out of range.
    """

    def __init__(self, model: nn.Module,
                 optimizer: torch.optim.Optimizer | Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer],
                 tau: float = 0.1, mode: str = "augmented", min_rank: int = 1, max_rank: int | None = None,
                 kappa_max: float | None = None, kappa_rule: str = "floor", beta: float = 0.0,
                 rcond: float | None = None) -> None:
        self.tau = check_tau(tau)
        if mode not in MODES:
            raise ValueError(f"mode={mode!r}; use one of {MODES}")
        if isinstance(min_rank, bool) or int(min_rank) != min_rank or min_rank < 1:
            raise ValueError(f"min_rank={min_rank!r} must be an integer >= 1")
        if max_rank is not None and (int(max_rank) != max_rank or max_rank < min_rank):
            raise ValueError(f"max_rank={max_rank!r} must be an integer >= min_rank={min_rank}")
        if kappa_max is not None:
            check_number(kappa_max, "kappa_max", minimum=1, strict=False, hint=" (or None)")
        if kappa_rule not in KAPPA_RULES:
            raise ValueError(f"kappa_rule={kappa_rule!r}; use one of {KAPPA_RULES}")
        check_number(beta, "beta", strict=False)
        self.model, self.mode = model, mode
        self.min_rank, self.max_rank = int(min_rank), None if max_rank is None else int(max_rank)
        self.kappa_max, self.kappa_rule, self.beta = kappa_max, kappa_rule, float(beta)
        self.rcond = rcond
        self.layers: dict[str, LowRankModule] = {
            name: m for name, m in model.named_modules() if isinstance(m, LowRankModule)}
        if not self.layers:
            raise ValueError("model has no low-rank layers; convert it first with "
                             "neuralhss.lowrank.compress(model, tau=...) or build it from LowRank* layers")
        self.optimizer = wrap_optimizer(
            optimizer, model, (p for layer in self.layers.values() for p in layer.lowrank_factors()),
            {name: layer.lowrank_core() for name, layer in self.layers.items()})

    # ------------------------------------------------------------------ public API

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients of every model parameter (factors included)."""
        zero_grads(self.model, set_to_none)

    def ranks(self) -> dict[str, int | tuple[int, ...]]:
        """Current rank per layer (an int for matrix layers, a tuple per factor for Tucker)."""
        return {n: (layer.ranks[0] if _is_matrix(layer) else layer.ranks) for n, layer in self.layers.items()}

    def condition_numbers(self) -> dict[str, float]:
        """``κ(S)`` per matrix layer; for Tucker the largest ``κ`` of the core's adaptive unfoldings."""
        out = {}
        for name, layer in self.layers.items():
            c = layer.lowrank_core().detach()
            ks = []
            for m in ((0,) if _is_matrix(layer) else layer.factor_modes):
                s = torch.linalg.svdvals(unfold(c, m))
                ks.append(float(s[0] / s[-1]) if s[-1] > 0 else math.inf)
            out[name] = max(ks)
        return out

    def penalty(self) -> torch.Tensor:
        """``β Σ ‖C_(i) C_(i)ᴴ − (‖C‖²/r_i) I‖_F`` over layers and adaptive modes (matrix:
        ``β ‖S Sᴴ − (‖S‖_F²/r) I‖_F``); add it to the loss before ``backward()``. Zero if ``β = 0``."""
        if self.beta == 0:
            return torch.zeros(())
        total = 0.0
        for layer in self.layers.values():
            c = layer.lowrank_core()
            norm2 = _abs2(c).sum()
            for m in ((0,) if _is_matrix(layer) else layer.factor_modes):
                u = unfold(c, m)
                gram = u @ u.mH
                eye = torch.eye(len(gram), dtype=gram.dtype, device=gram.device)
                total = total + torch.linalg.matrix_norm(gram - norm2 / len(gram) * eye)
        return self.beta * total

    def state_dict(self) -> dict:
        """The wrapped optimizer's state (the model's state dict holds the factors and ranks)."""
        return self.optimizer.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state)

    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        """One DLRT step after ``loss.backward()`` (see the module docstring).

        Parameters
        ----------
        closure : callable, optional
            Recomputes the loss of the same batch and calls ``backward()`` (no ``zero_grad``
            needed: the integrator clears gradients before each call). Required for
            ``mode="kls"``; with ``"augmented"``/``"fixed"`` it makes the core gradient exact.

        Returns
        -------
        The closure's first loss (detached), or ``None`` without a closure.

        Notes
        -----
        The factors and cores are re-created (below), so ``DistributedDataParallel``, which
        registers parameters once, is not supported with changing ranks.

        Whenever a factor or core changes shape, the layer receives a *new* ``nn.Parameter``
        (the wrapped optimizer's group entry and state move to it). Re-assigning ``.data`` with
        another shape would break the next backward while any graph built on the old parameter
        is alive (autograd caches the leaf's shape), e.g. the ``loss`` of the previous
        iteration. Do not keep references to the low-rank parameters across steps; query
        ``model.parameters()`` when needed.
        """
        if self.mode == "kls" and closure is None:
            raise ValueError("mode='kls' recomputes the loss in several passes: call step(closure)")
        loss = None
        with torch.no_grad():
            before = {name: layer.ranks for name, layer in self.layers.items()}
            if self.mode == "kls":
                span, loss = self._k_passes(closure)
            else:
                no_grads = all(la.lowrank_core().grad is None for la in self.layers.values())
                if no_grads and closure is None:
                    raise ValueError("no gradients on the low-rank cores: call loss.backward() before "
                                     "step() (or pass a closure)")
                if no_grads:
                    loss = self._run(closure)
                span = {name: [f.grad for f in layer.lowrank_factors()]
                        for name, layer in self.layers.items()}
            bases = {name: self._augment(layer, span[name], one_pass=closure is None)
                     for name, layer in self.layers.items()}
            if closure is not None:
                last = self._run(closure)
                loss = last if loss is None else loss
            self.optimizer.step()
            for name, layer in self.layers.items():
                self._truncate(layer, bases[name], before[name])
                if self.kappa_max is not None:
                    self._clamp(layer)
            for layer in self.layers.values():
                for p in (*layer.lowrank_factors(), layer.lowrank_core()):
                    p.grad = None
        return loss

    # ------------------------------------------------------------------ internals

    def _transport(self, p: nn.Parameter, linear: Callable, quadratic: Callable) -> None:
        transport_state(self.optimizer, p, linear, quadratic)

    def _install(self, layer: LowRankModule, name: str, value: torch.Tensor,
                 move_state: bool = False) -> nn.Parameter:
        """Put ``value`` into a *new* Parameter ``layer.<name>`` (see :meth:`step`, Notes)."""
        return install_parameter(layer, name, value, self.optimizer if move_state else None)

    def _augment(self, layer: LowRankModule, grads: list, one_pass: bool) -> list[torch.Tensor]:
        factors, core = layer.lowrank_factors(), layer.lowrank_core()
        modes = layer.factor_modes
        c = core.data
        bases = [augment_basis(f.data, g) for f, g in zip(factors, grads, strict=True)]
        shape = list(c.shape)
        for u, m in zip(bases, modes, strict=True):
            shape[m] = u.shape[1]
        old = tuple(slice(0, s) for s in c.shape)

        def pad(t: torch.Tensor) -> torch.Tensor:
            out = t.new_zeros(shape)
            out[old] = t
            return out

        g_hat = None
        if one_pass:
            g_hat = pad(core.grad if core.grad is not None else torch.zeros_like(c))
            rcond = self.rcond if self.rcond is not None else torch.finfo(c.dtype).eps ** 0.5
            for f, g, u, m in zip(factors, grads, bases, modes, strict=True):
                r = f.shape[1]
                if g is None or u.shape[1] == r:
                    continue
                # New-direction block U~^H G_U (C_(m)^H)^+ = U~^H M P_row (module docstring, step 3).
                block = u[:, r:].mH @ g.to(c.dtype) @ torch.linalg.pinv(unfold(c, m).mH, rtol=rcond)
                bshape = list(c.shape)
                bshape[m] = u.shape[1] - r
                sl = list(old)
                sl[m] = slice(r, u.shape[1])
                g_hat[tuple(sl)] = fold(block, m, bshape)
        self._transport(core, pad, pad)
        for name, u in zip(layer.factor_names, bases, strict=True):
            self._install(layer, name, u)
        self._install(layer, layer.core_name, pad(c), move_state=True).grad = g_hat
        return bases

    def _bounds(self, layer: LowRankModule, shape: list[int], i: int) -> tuple[int, int]:
        m = layer.factor_modes[i]
        others = math.prod(s for k, s in enumerate(shape) if k != m)
        hi = min(layer.max_ranks[i], shape[m], others)
        if self.max_rank is not None:
            hi = min(hi, self.max_rank)
        return min(self.min_rank, hi), hi

    def _truncate(self, layer: LowRankModule, bases: list[torch.Tensor], before: tuple[int, ...]) -> None:
        core = layer.lowrank_core()
        modes = layer.factor_modes
        c = core.data
        shape = list(c.shape)
        fixed = self.mode == "fixed"
        if _is_matrix(layer):
            p, s, qh = torch.linalg.svd(c, full_matrices=False)
            (lo0, hi0), (lo1, hi1) = self._bounds(layer, shape, 0), self._bounds(layer, shape, 1)
            hi = min(hi0, hi1)
            r = min(before[0], len(s)) if fixed else truncation_rank(s, self.tau, min(lo0, lo1, hi), hi)
            # C = P diag(s) Q^H = C x_0 P_r^H x_1 conj(Q_r)^H  ->  A_0 = P_r^H, A_1 = Q_r^T
            maps = [p[:, :r].mH, qh[:r].conj()]
        else:
            maps = []
            for i, m in enumerate(modes):
                p, s, _ = torch.linalg.svd(unfold(c, m), full_matrices=False)
                lo, hi = self._bounds(layer, shape, i)
                r = min(before[i], len(s)) if fixed else truncation_rank(s, self.tau, lo, hi)
                maps.append(p[:, :r].mH)
        new_c = c
        new_u = []
        for i, (u, a, m) in enumerate(zip(bases, maps, modes, strict=True)):
            q, rr = qr_phase(u @ a.mH)
            # R ~ I + O(eps): absorbing it keeps W exact and the factor orthonormal to rounding.
            maps[i] = rr @ a
            new_u.append(q)
            new_c = mode_product(new_c, maps[i], m)

        def linear(t: torch.Tensor) -> torch.Tensor:
            for a, m in zip(maps, modes, strict=True):
                t = mode_product(t, a, m)
            return t

        def quadratic(t: torch.Tensor) -> torch.Tensor:
            for a, m in zip(maps, modes, strict=True):
                t = mode_product(t, _abs2(a).to(t.dtype), m)
            return t

        self._transport(core, linear, quadratic)
        for name, u in zip(layer.factor_names, new_u, strict=True):
            self._install(layer, name, u)
        self._install(layer, layer.core_name, new_c, move_state=True)

    def _clamp(self, layer: LowRankModule) -> None:
        core = layer.lowrank_core()
        c = core.data
        kappa = self.kappa_max
        for m in ((0,) if _is_matrix(layer) else layer.factor_modes):
            p, s, qh = torch.linalg.svd(unfold(c, m), full_matrices=False)
            if s[0] <= 0 or s[0] <= kappa * s[-1]:
                continue
            if self.kappa_rule == "floor":
                s = s.clamp(min=float(s[0]) / kappa)
            else:
                mean = s.mean()
                e = mean * (kappa - 1) / (kappa + 1)
                s = s.clamp(min=float(mean - e), max=float(mean + e))
            c = fold((p * s.to(p.dtype)) @ qh, m, list(c.shape))
        core.copy_(c)  # same shape: in place

    def _run(self, closure: Callable[[], torch.Tensor]) -> torch.Tensor | None:
        self.zero_grad()
        with torch.enable_grad():
            value = closure()
        # detached: a live graph would pin the parameters' cached shapes (step, Notes)
        return value.detach() if torch.is_tensor(value) else value

    def _k_passes(self, closure: Callable[[], torch.Tensor]) -> tuple[dict[str, list], torch.Tensor]:
        """K-step gradients: one forward/backward per factor index in the K-form (same W)."""
        grads = {name: [None] * len(layer.factor_modes) for name, layer in self.layers.items()}
        loss = None
        for k in range(max(len(layer.factor_modes) for layer in self.layers.values())):
            saved = {}
            for name, layer in self.layers.items():
                if k >= len(layer.factor_modes):
                    continue
                fname, m = layer.factor_names[k], layer.factor_modes[k]
                f, core = getattr(layer, fname), layer.lowrank_core()
                q, rr = torch.linalg.qr(unfold(core, m).mH)       # C_(m)^H = Q R
                saved[name] = (f, core)
                shape = list(core.shape)
                shape[m] = q.shape[1]
                # Temporary parameters (the optimizer keeps the originals): K = U R^H, core Q^H.
                self._install(layer, fname, f @ rr.mH)
                self._install(layer, layer.core_name, fold(q.mH, m, shape))
            value = self._run(closure)
            loss = value if loss is None else loss
            for name, (f, core) in saved.items():
                layer = self.layers[name]
                fname = layer.factor_names[k]
                grads[name][k] = getattr(layer, fname).grad
                setattr(layer, fname, f)
                setattr(layer, layer.core_name, core)
        self.zero_grad()
        return grads, loss


def _is_matrix(layer: LowRankModule) -> bool:
    return layer.lowrank_core().ndim == 2 and tuple(layer.factor_modes) == (0, 1)
