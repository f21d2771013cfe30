"""GeoLoRA: rank-adaptive low-rank adapters trained by a one-backward parallel BUG step.

Fine-tuning a pretrained model (GeoLoRA, Schotthöfer et al. 2025): every targeted layer keeps its weight ``W``
frozen and learns an update ``ΔW = U S Vᴴ`` on its matricised weight ``W (n, m)``, with ``U (n, r)``
and ``V (m, r)`` orthonormal and a full core ``S (r, r)``; the rank ``r`` of each adapter adapts
during training::

    model = add_adapters(pretrained, targets=("linear", "conv", "pointwise", "spectral"),
                         init_rank=8, max_rank=32, tau=0.15)
    geo = GeoLoRA(model, lambda ps: torch.optim.Adam(ps, lr=1e-3))
    for x, y in loader:
        geo.zero_grad()
        loss_fn(model(x), y).backward()
        geo.step()
    plain = geo.merge()            # the adapters folded into ordinary weights

**Layers and matricisations** (``kind``):

* ``"linear"`` — ``nn.Linear``, ``W (out, in)``;
* ``"pointwise"`` — Neural-HSS's :class:`~neuralhss.models.neural_hss.Pointwise` channel
  mixers, ``W (C_out, C_in)``;
* ``"conv"`` — ``nn.Conv1d/2d/3d`` with ``groups=1`` (FNO's lifting, projection, channel MLPs
  and skips are kernel-1 ``Conv1d``), ``W (C_out, C_in·∏k)`` as in peft's LoRA for convolutions;
* ``"spectral"`` — neuraloperator's ``SpectralConv`` with a dense complex weight
  ``(C_in, C_out, m_1, …, m_d)`` (peft cannot wrap it). The adapter is on the *channel
  matricisation* ``W (C_out, C_in·m_1⋯m_d)``: a spectral convolution is a convolution whose
  kernel lives on the kept modes, and this is the matricisation of a convolution kernel above
  (output channels against input channels × kernel). ``U``, ``S``, ``V`` are complex
  (``Uᴴ U = I``); a rank-one term is an output-channel profile times a joint (input channel,
  mode) profile. Factorised spectral weights (TFNO) are not supported.

The kinds are those of the shared registry :mod:`~neuralhss.lowrank.kinds` that have a
``"geolora"`` handler (an :class:`Adapter` class); registering a kind there with one makes
:func:`add_adapters` wrap it.

**Tangent probes.** A layer computes ``(W + U S Vᴴ + K Vᴴ + U Lᴴ)·x`` with ``K (n, r)`` and
``L (m, r)`` zero-valued parameters that the forward adds exactly (``K = L = 0``, so the value is
``(W + U S Vᴴ)·x``). ``δW = U δS Vᴴ + δK Vᴴ + U δLᴴ`` parametrises the tangent space of the rank-``r``
matrices at ``ΔW``, so the user's single backward gives all three GeoLoRA gradients at once,

    ``G_S = Uᴴ G_W V``,  ``G_K = G_W V`` (the K-step direction),  ``G_L = G_Wᴴ U`` (the L-step),

without inverting ``S`` (recovering ``G_W V`` from the gradient of the factor ``U`` would need
``S⁻¹`` and fails at the initial ``S = 0``). For real linear and pointwise layers a custom
autograd function computes ``U S Vᵀ x`` and these gradients at the cost of a rank-``r`` LoRA
(forward ``Vᵀx``, ``(US)·``; backward ``w = Uᵀg``, ``∂x = V Sᵀ w``, ``G_K = Σ g zᵀ``,
``G_L = Σ x wᵀ``); convolutions (and complex layers) use the autograd
form ``[US + K | U] · [V | L]ᴴ x``, a LoRA of rank ``2r``. The probes are zero by construction
(created so, reset after every step, never handed to an optimizer) and the fast path does not
read their values. The dense ``ΔW`` is never formed, except for spectral layers, whose forward
calls neuraloperator's ``SpectralConv`` with the weight ``W + ΔW`` (so that the FFT and mode
slicing are neuraloperator's own; the cost of forming ``ΔW`` is ``C_out·C_in·∏modes·2r``).

**The step** (:meth:`GeoLoRA.step`, after ``loss.backward()``), per adapter:

1. Augment: ``Û = [U | Ũ] = orth([U | G_K])``, ``V̂ = [V | Ṽ] = orth([V | G_L])`` (Householder QR,
   :func:`~neuralhss.lowrank.integrator.augment_basis`; ``2r`` columns, fewer for small layers).
2. Core gradient on the augmented basis, all from the same backward::

       Ĝ = [[G_S,       (Ṽᴴ G_L)ᴴ],      (= Ûᴴ P_T(G_W) V̂, P_T the projection on the tangent
            [Ũᴴ G_K,    0        ]]        space at ΔW: the parallel BUG / GeoLoRA core)

   and ``S`` zero-padded to ``2r × 2r`` (``Û Ŝ V̂ᴴ = ΔW`` exactly).
3. One step of the wrapped optimizer on every padded core (``Ŝ ← Ŝ − λĜ`` for SGD); its state
   is transported (padded now, projected at truncation) as in :class:`~neuralhss.lowrank.DLRT`.
4. Truncate: ``Ŝ = P Σ Qᴴ``; per layer keep the smallest ``r₁`` with ``‖σ_{r₁+1:}‖ ≤ τ‖σ‖``
   (:func:`~neuralhss.lowrank.layers.truncation_rank`), clamped to ``[min_rank, max_rank]``; with
   a ``budget``, then drop the globally smallest kept singular values (of ``ΔW`` itself, in the
   layer's units) until the adapters' parameters fit the budget. ``U ← orth(Û P_{r₁})``,
   ``V ← orth(V̂ Q_{r₁})``, ``S ← Σ_{r₁}`` (the ``R`` factors of the re-orthonormalising QR are
   absorbed into ``S``, so rounding never accumulates in ``Uᴴ U = I``).

With SGD the step moves ``ΔW`` by ``−λ P_T(G_W)`` before truncation: a Riemannian gradient step
on the rank-``r`` manifold whose rank can then grow to ``2r`` or shrink (tests check this
identity). ``S`` starts at 0 (the adapted model equals the base model) with Haar-random
orthonormal ``U``, ``V``; there is no separate LoRA scale ``α/r`` (it would be folded into ``S``,
so ranks can change without rescaling).

**Optimizer and rank adaptivity.** The τ rule reads the spectrum of the updated core. SGD (with
or without momentum) is rotation-equivariant, so that spectrum is the projected gradient's;
Adam normalises each entry of the core in its arbitrary basis — its first step is ``±lr`` on every
entry of the augmented core, a flat full-rank spectrum — and as nothing shrinks directions the
loss does not use, the relative τ rule then tends to keep the rank the first steps created.
Measured in ``examples/finetune_geolora.py``: with SGD + momentum, FNO adapters settle at a size
independent of the initial rank; with Adam they keep a size that grows with it (on a rank-k
teacher, both settle at k). For a rank that reflects the data, prefer SGD/momentum on the cores,
or set a ``budget``.

Parameter count of an adapter: ``r(n + m) + r²`` real scalars (twice that for complex
spectral adapters): ``U``, ``V`` and the full core. The probes ``K``, ``L`` hold no information (always
zero) and are not counted.
"""

from __future__ import annotations

import copy
import math
import re
import warnings
from collections.abc import Callable, Iterable, Sequence

import torch
from torch import nn

from . import kinds as _kinds
from .integrator import _abs2, augment_basis, install_parameter, transport_state, wrap_optimizer, zero_grads
from .layers import check_tau, orthonormal, truncation_rank

#: Families of the built-in kinds add_adapters() wraps (:mod:`neuralhss.lowrank.kinds`; kinds
#: registered later with a ``"geolora"`` handler are accepted too).
KINDS = ("linear", "conv", "pointwise", "spectral")


# --------------------------------------------------------------------------- adapters


class _TangentLowRank(torch.autograd.Function):
    """``ΔW x = U S Vᵀ x`` for real layers, with the gradients of the zero probes ``K``, ``L``.

    Layouts: ``channels_first=False``: ``x (..., m) -> (..., n)`` (rows, ``nn.Linear``);
    ``True``: ``x (B, m, N) -> (B, n, N)`` (channel mixers). With ``z = Vᵀx`` and ``w = Uᵀg`` (``g``
    the output gradient), ``G_K = G_W V = Σ g zᵀ``, ``G_L = G_Wᵀ U = Σ x wᵀ``, ``G_S = Uᵀ G_K`` and
    ``∂x = V Sᵀ w``: forward and backward cost what a rank-``r`` LoRA costs (the autograd form
    ``[US + K | U][V | L]ᵀ x`` costs a rank-``2r`` one). The probes' values are not read.
    """

    @staticmethod
    def forward(ctx, x, u, s, v, k, l, channels_first: bool):
        if channels_first:
            z = v.mT @ x
            y = (u @ s) @ z
        else:
            z = x @ v
            y = z @ (u @ s).mT
        ctx.channels_first = channels_first
        ctx.save_for_backward(x, u, s, v, z)
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):
        x, u, s, v, z = ctx.saved_tensors
        need_x, _, need_s, _, need_k, need_l, _ = ctx.needs_input_grad
        gx = gk = gl = None
        if ctx.channels_first:
            w = u.mT @ g
            if need_x:
                gx = v @ (s.mT @ w)
            if need_k or need_s:
                gk = (g @ z.mT).sum(0)
            if need_l:
                gl = (x @ w.mT).sum(0)
        else:
            w = g @ u
            if need_x:
                gx = (w @ s) @ v.mT
            if need_k or need_s:
                gk = g.reshape(-1, g.shape[-1]).mT @ z.reshape(-1, z.shape[-1])
            if need_l:
                gl = x.reshape(-1, x.shape[-1]).mT @ w.reshape(-1, w.shape[-1])
        gs = u.mT @ gk if need_s else None
        return gx, None, gs, None, gk if need_k else None, gl, None


class Adapter(nn.Module):
    """A frozen layer ``base`` plus the update ``ΔW = U S Vᴴ`` of its matricised weight ``(n, m)``.

    Subclasses implement :meth:`forward` and the layout maps :meth:`weight_matrix` /
    :meth:`to_weight` between the base weight and its ``(n, m)`` matricisation.

    Attributes
    ----------
    base : nn.Module
        The original layer (its parameters frozen by :func:`add_adapters`).
    U : (n, r) buffer, V : (m, r) buffer
        Orthonormal bases (moved only by :class:`GeoLoRA`, never by an optimizer).
    S : (r, r) Parameter
        The core, trained by the wrapped optimizer.
    K : (n, r) Parameter, L : (m, r) Parameter
        Zero-valued tangent probes: their gradients are ``G_W V`` and ``G_Wᴴ U``.
    max_rank : int
    tau : float
        Default truncation tolerance of this adapter.
    """

    kind = ""

    def _init_adapter(self, base: nn.Module, n: int, m: int, rank: int, max_rank: int, tau: float,
                      dtype: torch.dtype, device) -> None:
        self.base = base
        self.n, self.m = int(n), int(m)
        hi = min(self.n, self.m)
        for name, v in (("init_rank", rank), ("max_rank", max_rank)):
            if isinstance(v, bool) or int(v) != v or v < 1:
                raise ValueError(f"{name}={v!r} must be a positive integer")
        self.max_rank = min(int(max_rank), hi)
        r = min(int(rank), self.max_rank)
        self.tau = check_tau(tau)
        self.register_buffer("U", orthonormal(self.n, r, dtype, device))
        self.register_buffer("V", orthonormal(self.m, r, dtype, device))
        self.S = nn.Parameter(torch.zeros(r, r, dtype=dtype, device=device))
        self.K = nn.Parameter(torch.zeros(self.n, r, dtype=dtype, device=device))
        self.L = nn.Parameter(torch.zeros(self.m, r, dtype=dtype, device=device))

    def __getattr__(self, name: str):
        # Attributes of the wrapped layer (``out_channels``, ``kernel_size``, …) read through, as
        # host models inspect their layers (neuraloperator's FNO reads ``out_channels``).
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "base" or "base" not in self._modules:
                raise
            return getattr(self._modules["base"], name)

    # ---------------------------------------------------------------- inspection

    @property
    def rank(self) -> int:
        """Current rank ``r``."""
        return int(self.S.shape[0])

    def factor_size(self, rank: int | None = None) -> int:
        """Real scalars of the factors ``U, S, V`` at ``rank`` (default: the current one):
        ``r(n+m) + r²``, doubled for complex weights. What a GeoLoRA budget bounds; a rank the
        adapter does not have yet can be priced before it is kept."""
        r = self.rank if rank is None else int(rank)
        return (2 if self.S.is_complex() else 1) * (r * (self.n + self.m) + r * r)

    def num_parameters(self, rank: int | None = None) -> int:
        """Deprecated alias of :meth:`factor_size` (removed in 0.2)."""
        warnings.warn("Adapter.num_parameters() is deprecated; use factor_size()",
                      DeprecationWarning, stacklevel=2)
        return self.factor_size(rank)

    def factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(A, B)`` with ``ΔW = A Bᴴ``: ``A = [U S + K | U]``, ``B = [V | L]`` (rank ``2r``)."""
        return torch.cat([self.U @ self.S + self.K, self.U], 1), torch.cat([self.V, self.L], 1)

    def delta(self) -> torch.Tensor:
        """The matricised update ``ΔW (n, m)`` (dense; merge and inspection)."""
        a, b = self.factors()
        return a @ b.mH

    def _apply_delta(self, x: torch.Tensor, channels_first: bool) -> torch.Tensor:
        """``ΔW`` applied to ``x`` (``(..., m)``, or ``(B, m, N)`` channels first) with the probes'
        gradients (the fast function for real dtypes, the autograd form for complex)."""
        if not self.S.is_complex():
            return _TangentLowRank.apply(x, self.U, self.S, self.V, self.K, self.L, channels_first)
        a, b = self.factors()
        return a @ (b.mH @ x) if channels_first else (x @ b.conj()) @ a.mT

    def weight_matrix(self) -> torch.Tensor:  # pragma: no cover - abstract
        """The base weight matricised to ``(n, m)``."""
        raise NotImplementedError

    def to_weight(self, mat: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """An ``(n, m)`` matrix in the base weight's layout."""
        raise NotImplementedError

    def _weight_param(self) -> nn.Parameter:
        return self.base.weight

    def merged_weight(self) -> torch.Tensor:
        """``W + ΔW`` in the base weight's layout."""
        return self._weight_param() + self.to_weight(self.delta())

    def merge(self) -> nn.Module:
        """Fold ``ΔW`` into the base weight (in place) and return the base layer."""
        with torch.no_grad():
            w = self.merged_weight()
            self._weight_param().copy_(w)
        return self.base

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Ranks change during training: resize to the stored shapes before loading.
        for name in ("U", "V", "S", "K", "L"):
            key = prefix + name
            t = getattr(self, name)
            if key in state_dict and tuple(state_dict[key].shape) != tuple(t.shape):
                new = torch.empty(state_dict[key].shape, dtype=t.dtype, device=t.device)
                if isinstance(t, nn.Parameter):
                    t.data = new
                else:
                    setattr(self, name, new)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, n={self.n}, m={self.m}, rank={self.rank}, max_rank={self.max_rank}"


class LinearAdapter(Adapter):
    """Adapter on ``nn.Linear``: ``y = base(x) + ((x B̄) Aᵀ)``, ``ΔW = A Bᴴ`` (``W (out, in)``)."""

    kind = "linear"

    def __init__(self, base: nn.Linear, rank: int, max_rank: int, tau: float) -> None:
        super().__init__()
        w = base.weight
        self._init_adapter(base, w.shape[0], w.shape[1], rank, max_rank, tau, w.dtype, w.device)

    def weight_matrix(self) -> torch.Tensor:
        return self.base.weight

    def to_weight(self, mat: torch.Tensor) -> torch.Tensor:
        return mat

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self._apply_delta(x, channels_first=False)


class PointwiseAdapter(LinearAdapter):
    """Adapter on Neural-HSS's ``Pointwise`` channel mixer (``W (C_out, C_in)``, channel dim 1)."""

    kind = "pointwise"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, *grid = x.shape
        y = self._apply_delta(x.reshape(b, self.m, -1), channels_first=True)
        return self.base(x) + y.reshape(b, self.n, *grid)


class ConvAdapter(Adapter):
    """Adapter on ``nn.Conv{1,2,3}d`` (``groups=1``), kernel matricised as ``(C_out, C_in·∏k)``.

    Forward: the base convolution plus a convolution with the ``2r`` kernels ``Bᴴ`` (reshaped to
    ``(2r, C_in, *k)``, same stride/padding/dilation/padding mode) followed by the ``1×1`` map ``A``.
    """

    kind = "conv"

    def __init__(self, base: nn.modules.conv._ConvNd, rank: int, max_rank: int, tau: float) -> None:
        super().__init__()
        w = base.weight
        self._init_adapter(base, w.shape[0], w[0].numel(), rank, max_rank, tau, w.dtype, w.device)

    def weight_matrix(self) -> torch.Tensor:
        return self.base.weight.reshape(self.n, self.m)

    def to_weight(self, mat: torch.Tensor) -> torch.Tensor:
        return mat.reshape(self.base.weight.shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.factors()
        k = b.conj().mT.reshape(b.shape[1], *self.base.weight.shape[1:])
        z = self.base._conv_forward(x, k, None)
        return self.base(x) + torch.einsum("or,br...->bo...", a, z)


class SpectralAdapter(Adapter):
    """Adapter on neuraloperator's ``SpectralConv`` (dense weight), channel matricisation.

    ``W (C_in, C_out, *modes)`` is matricised as ``(C_out, C_in·∏modes)`` (module docstring). The
    forward is the base layer's own forward with its weight replaced by ``W + ΔW``
    (``torch.func.functional_call``), so FFTs, mode selection and bias are neuraloperator's, and
    :meth:`merge` reproduces the adapted output bit for bit. ``transform`` and ``n_modes``
    forward to the base layer (FNO blocks call them).
    """

    kind = "spectral"

    def __init__(self, base: nn.Module, rank: int, max_rank: int, tau: float) -> None:
        super().__init__()
        names = [n for n, _ in base.named_parameters() if n.startswith("weight")]
        if getattr(base, "separable", False):
            raise ValueError("separable SpectralConv weights (C, *modes) have no channel pair; "
                             "not supported by GeoLoRA adapters")
        if names not in (["weight"], ["weight.tensor"]):
            raise ValueError(f"SpectralConv weight parameters {names}: only dense weights are supported "
                             "(factorised TFNO weights are not)")
        self._wkey = names[0]
        w = base.get_parameter(self._wkey)
        self._wshape = tuple(w.shape)
        self._init_adapter(base, w.shape[1], w.shape[0] * math.prod(w.shape[2:]), rank, max_rank, tau,
                           w.dtype, w.device)

    def _weight_param(self) -> nn.Parameter:
        return self.base.get_parameter(self._wkey)

    def weight_matrix(self) -> torch.Tensor:
        return self._weight_param().transpose(0, 1).reshape(self.n, self.m)

    def to_weight(self, mat: torch.Tensor) -> torch.Tensor:
        c_in, c_out, *modes = self._wshape
        return mat.reshape(c_out, c_in, *modes).transpose(0, 1)

    @property
    def n_modes(self):
        return self.base.n_modes

    @n_modes.setter
    def n_modes(self, n_modes) -> None:
        self.base.n_modes = n_modes

    def transform(self, x: torch.Tensor, output_shape=None) -> torch.Tensor:
        return self.base.transform(x, output_shape=output_shape)

    def forward(self, x: torch.Tensor, output_shape=None) -> torch.Tensor:
        return torch.func.functional_call(self.base, {self._wkey: self.merged_weight()}, (x,),
                                          {"output_shape": output_shape})


# --------------------------------------------------------------------------- wrapping


# The kinds add_adapters() accepts (neuralhss.lowrank.kinds): an adapter class
# ``(module, rank, max_rank, tau) -> Adapter`` per kind. Factorised and separable spectral
# convolutions are kinds of their own without a GeoLoRA handler (SpectralAdapter needs a dense
# weight parameter).
_kinds.set_handlers("geolora", {"linear": LinearAdapter, "pointwise": PointwiseAdapter,
                                "conv": ConvAdapter, "spectral": SpectralAdapter})


def adapters(model: nn.Module) -> dict[str, Adapter]:
    """The adapters of ``model`` by module name."""
    return {name: m for name, m in model.named_modules() if isinstance(m, Adapter)}


def add_adapters(model: nn.Module, targets: Sequence[str] | None = None, init_rank: int = 8,
                 max_rank: int = 32, tau: float = 0.15, freeze: bool = True) -> nn.Module:
    """Wrap the targeted layers of ``model`` (in place) with GeoLoRA adapters ``ΔW = U S Vᴴ``.

    Parameters
    ----------
    model : nn.Module
    targets : sequence of str, optional
        Kinds in ``("linear", "conv", "pointwise", "spectral")`` (module docstring) or registered
        with a ``"geolora"`` handler (:mod:`~neuralhss.lowrank.kinds`), and/or regular
        expressions searched in module names (``"fno_blocks"``, ``r"^project\\."``). A supported
        layer is wrapped when its kind is listed or its name matches a pattern. Default: every
        supported kind.
    init_rank, max_rank : int
        Initial and largest rank per adapter (capped by ``min(n, m)`` of each layer).
    tau : float in [0, 1)
        Default truncation tolerance of these adapters (:class:`GeoLoRA` may override it).
    freeze : bool, default True
        Set ``requires_grad=False`` on every parameter of ``model`` before wrapping (the
        pretrained weights; unfreeze e.g. a head afterwards to train it along).

    Returns
    -------
    The same ``model``, with ``S = 0`` in every adapter: it computes the same function.

    Raises
    ------
    ValueError
        No supported layer matches ``targets``, or bad ranks/tolerance.
    """
    known = _kinds.families("geolora")
    targets = known if targets is None else (targets,) if isinstance(targets, str) else tuple(targets)
    kinds = {t for t in targets if t in known}
    patterns = [re.compile(t) for t in targets if t not in known]
    check_tau(tau)
    if freeze:
        for p in model.parameters():
            p.requires_grad_(False)
    existing = list(adapters(model))
    chosen = []
    for name, module in model.named_modules():
        if isinstance(module, Adapter) or any(name == e or name.startswith(e + ".") for e in existing):
            continue
        found = _kinds.match(module, "geolora")
        if found is not None and (found[0].family in kinds or any(p.search(name) for p in patterns)):
            chosen.append((name, module, found[1]))
    if not chosen:
        raise ValueError(f"no supported layer (kinds {known}) matches targets={targets!r} in "
                         f"{type(model).__name__}")
    for name, module, adapter_cls in chosen:
        new = adapter_cls(module, init_rank, max_rank, tau)
        new.train(module.training)
        parent, _, attr = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, attr, new)
    return model


def merge(model: nn.Module, inplace: bool = True) -> nn.Module:
    """Replace every adapter of ``model`` by its base layer with the weight ``W + ΔW``.

    The merged model computes the adapted model's function (bit for bit for spectral layers, to
    rounding for the others, whose adapted forward is factored). Base parameters keep their
    ``requires_grad`` flags (frozen after :func:`add_adapters`). ``inplace=False`` merges a copy.
    """
    out = model if inplace else copy.deepcopy(model)
    for name, a in adapters(out).items():
        if any(name.startswith(o + ".") for o in adapters(out) if o != name):
            continue  # pragma: no cover - adapters are never nested
        base = a.merge()
        base.train(a.training)
        parent, _, attr = name.rpartition(".")
        setattr(out.get_submodule(parent) if parent else out, attr, base)
    return out


# --------------------------------------------------------------------------- training


class GeoLoRA:
    """Train the adapters of ``model`` by the one-backward GeoLoRA step (module docstring).

    Parameters
    ----------
    model : nn.Module
        With adapters (:func:`add_adapters`).
    optimizer : callable or torch.optim.Optimizer
        ``params -> Optimizer``, called with every adapter core ``S`` and every other parameter
        of ``model`` that requires a gradient (none after :func:`add_adapters` unless unfrozen);
        or an optimizer built over such parameters (the probes ``K``, ``L`` are removed from it).
    tau : float in [0, 1), optional
        Relative truncation tolerance for every adapter (default: each adapter's own ``tau``).
    budget : int, optional
        Largest total of adapter parameters (real scalars, :meth:`Adapter.factor_size`); ranks
        are then cut globally, smallest singular values of ``ΔW`` first. ``tau=0`` makes the
        budget the only criterion.
    min_rank : int, default 1

    Raises
    ------
    ValueError
        No adapters, a budget below ``min_rank`` everywhere, or an optimizer without the cores.
    """

    def __init__(self, model: nn.Module,
                 optimizer: torch.optim.Optimizer | Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer],
                 tau: float | None = None, budget: int | None = None, min_rank: int = 1) -> None:
        self.model = model
        self.adapters = adapters(model)
        if not self.adapters:
            raise ValueError("model has no adapters; call neuralhss.lowrank.geolora.add_adapters first")
        self.tau = None if tau is None else check_tau(tau)
        if isinstance(min_rank, bool) or int(min_rank) != min_rank or min_rank < 1:
            raise ValueError(f"min_rank={min_rank!r} must be an integer >= 1")
        self.min_rank = int(min_rank)
        if budget is not None:
            floor = sum(a.factor_size(min(self.min_rank, a.max_rank)) for a in self.adapters.values())
            if isinstance(budget, bool) or int(budget) != budget or budget < floor:
                raise ValueError(f"budget={budget!r} must be an integer >= {floor} (every adapter at "
                                 f"min_rank={self.min_rank})")
            budget = int(budget)
        self.budget = budget
        self.optimizer = wrap_optimizer(
            optimizer, model, (p for a in self.adapters.values() for p in (a.K, a.L)),
            {f"adapter {name}": a.S for name, a in self.adapters.items()})

    # ---------------------------------------------------------------- public API

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients of every model parameter (probes included)."""
        zero_grads(self.model, set_to_none)

    def ranks(self) -> dict[str, int]:
        """Current rank per adapter."""
        return {name: a.rank for name, a in self.adapters.items()}

    def adapter_size(self) -> int:
        """Real scalars in the factors of every adapter (:meth:`Adapter.factor_size`), the
        quantity bounded by ``budget``."""
        return sum(a.factor_size() for a in self.adapters.values())

    def adapter_parameters(self) -> int:
        """Deprecated alias of :meth:`adapter_size` (removed in 0.2)."""
        warnings.warn("GeoLoRA.adapter_parameters() is deprecated; use adapter_size()",
                      DeprecationWarning, stacklevel=2)
        return self.adapter_size()

    def trainable_parameters(self) -> int:
        """:meth:`adapter_size` plus every other parameter the optimizer trains (real scalars)."""
        cores = {id(a.S) for a in self.adapters.values()}
        other = sum(p.numel() * (2 if p.is_complex() else 1)
                    for g in self.optimizer.param_groups for p in g["params"] if id(p) not in cores)
        return self.adapter_size() + other

    def merge(self, inplace: bool = True) -> nn.Module:
        """:func:`merge` the model (in place by default; this trainer is then spent)."""
        return merge(self.model, inplace=inplace)

    def state_dict(self) -> dict:
        """The wrapped optimizer's state (the model's state dict holds U, S, V and the ranks)."""
        return self.optimizer.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state)

    def step(self) -> None:
        """One GeoLoRA step after ``loss.backward()`` (module docstring, "The step").

        Notes
        -----
        ``S``, ``K`` and ``L`` are replaced by *new* Parameters whenever ranks change (the
        optimizer's entries and state move along), as in :meth:`neuralhss.lowrank.DLRT.step`: do
        not keep references to them across steps.
        """
        with torch.no_grad():
            if all(a.S.grad is None and a.K.grad is None and a.L.grad is None
                   for a in self.adapters.values()):
                raise ValueError("no gradients on the adapters: call loss.backward() before step()")
            bases = {name: self._augment(a) for name, a in self.adapters.items()}
            self.optimizer.step()
            svds = {name: torch.linalg.svd(a.S.data, full_matrices=False)
                    for name, a in self.adapters.items()}
            ranks = self._choose_ranks({name: s for name, (_, s, _) in svds.items()})
            for name, a in self.adapters.items():
                self._truncate(a, *bases[name], svds[name], ranks[name])

    # ---------------------------------------------------------------- internals

    def _augment(self, a: Adapter) -> tuple[torch.Tensor, torch.Tensor]:
        u, v, s = a.U, a.V, a.S.data
        r = s.shape[0]
        g_k, g_l, g_s = a.K.grad, a.L.grad, a.S.grad
        if g_s is None:
            g_s = u.mH @ g_k if g_k is not None else torch.zeros_like(s)
        u_hat, v_hat = augment_basis(u, g_k), augment_basis(v, g_l)
        ru, rv = u_hat.shape[1], v_hat.shape[1]
        g_hat = s.new_zeros(ru, rv)
        g_hat[:r, :r] = g_s
        if ru > r:
            g_hat[r:, :r] = u_hat[:, r:].mH @ g_k
        if rv > r:
            g_hat[:r, r:] = (v_hat[:, r:].mH @ g_l).mH

        def pad(t: torch.Tensor) -> torch.Tensor:
            out = t.new_zeros(ru, rv)
            out[:r, :r] = t
            return out

        transport_state(self.optimizer, a.S, pad, pad)
        install_parameter(a, "S", pad(s), self.optimizer).grad = g_hat
        a.K.grad = a.L.grad = None
        return u_hat, v_hat

    def _choose_ranks(self, sigmas: dict[str, torch.Tensor]) -> dict[str, int]:
        ranks, lows = {}, {}
        for name, s in sigmas.items():
            a = self.adapters[name]
            hi = min(a.max_rank, len(s))
            lows[name] = min(self.min_rank, hi)
            tau = a.tau if self.tau is None else self.tau
            ranks[name] = truncation_rank(s, tau, lows[name], hi)
        if self.budget is None:
            return ranks
        total = sum(self.adapters[n].factor_size(r) for n, r in ranks.items())
        while total > self.budget:
            # drop the globally smallest kept singular value among layers above their floor
            cands = [(float(sigmas[n][r - 1]), n) for n, r in ranks.items() if r > lows[n]]
            if not cands:  # pragma: no cover - the constructor checks the floor
                break
            _, n = min(cands)
            a = self.adapters[n]
            total -= a.factor_size(ranks[n]) - a.factor_size(ranks[n] - 1)
            ranks[n] -= 1
        return ranks

    def _truncate(self, a: Adapter, u_hat: torch.Tensor, v_hat: torch.Tensor, svd, r: int) -> None:
        p, _, qh = svd
        pr, qr = p[:, :r], qh[:r].mH
        # Re-orthonormalise (R ≈ diag(±1) is absorbed into S: ΔW unchanged, no drift in Uᴴ U).
        u, ru = torch.linalg.qr(u_hat @ pr)
        v, rv = torch.linalg.qr(v_hat @ qr)
        left, right = ru @ pr.mH, qr @ rv.mH          # S_new = left Ŝ right = R_u Σ_r R_vᴴ

        left2, right2 = _abs2(left), _abs2(right)

        def linear(t: torch.Tensor) -> torch.Tensor:
            return left @ t @ right

        def quadratic(t: torch.Tensor) -> torch.Tensor:
            return left2.to(t.dtype) @ t @ right2.to(t.dtype)

        s_new = linear(a.S.data)
        transport_state(self.optimizer, a.S, linear, quadratic)
        install_parameter(a, "S", s_new, self.optimizer)
        a.U, a.V = u.contiguous(), v.contiguous()
        for name, f in (("K", u), ("L", v)):
            probe = getattr(a, name)
            if probe.shape == f.shape:
                probe.grad = None
                probe.data.zero_()
            else:
                install_parameter(a, name, torch.zeros_like(f))
merge_adapters = merge
