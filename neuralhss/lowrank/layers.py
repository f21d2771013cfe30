"""Low-rank matrix layers ``W = U S Vᵀ`` whose forward never forms ``W``.

Every layer here, and every Tucker layer of :mod:`neuralhss.lowrank.tucker`, is a
:class:`LowRankModule`: its weight tensor (in the layer's own layout) is held in Tucker form

    ``W = C ×_{m_1} U_1 ×_{m_2} U_2 …``,   ``(C ×_m A)[…, a, …] = Σ_p A[a, p] C[…, p, …]``

with orthonormal factors (``U_iᴴ U_i = I``; no conjugation in the products) and a full core
``C``. A matrix layer is the order-2 case: ``W = S ×₀ U ×₁ V = U S Vᵀ`` with ``U (n, r)``,
``S (r, r)``, ``V (m, r)``. The integrator (:class:`neuralhss.lowrank.DLRT`) works on this one
interface, so matrix and Tucker layers share one update scheme.

Storage: the factors and the core are ``nn.Parameter`` sized by the *current* rank. When the
rank changes, the integrator installs new ``Parameter`` objects (and moves the optimizer state
of the core to them, see :meth:`neuralhss.lowrank.DLRT.step`). ``load_state_dict`` resizes
them to the stored shapes, so a checkpoint of a rank-adapted model loads into a freshly built
one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

# --------------------------------------------------------------------------- tensor helpers


def unfold(t: torch.Tensor, mode: int) -> torch.Tensor:
    """Mode-``mode`` unfolding: ``(n_mode, prod(other dims))``, other dims in their order."""
    return t.movedim(mode, 0).reshape(t.shape[mode], -1)


def fold(mat: torch.Tensor, mode: int, shape: Sequence[int]) -> torch.Tensor:
    """Inverse of :func:`unfold`: ``mat`` of shape ``(shape[mode], prod(others))`` to ``shape``."""
    others = [s for i, s in enumerate(shape) if i != mode]
    return mat.reshape(mat.shape[0], *others).movedim(0, mode)


def mode_product(t: torch.Tensor, a: torch.Tensor, mode: int) -> torch.Tensor:
    """``t ×_mode a``: contract dim ``mode`` of ``t`` (size p) with the columns of ``a (n, p)``."""
    return torch.tensordot(a, t, dims=([1], [mode])).movedim(0, mode)


def orthonormal(n: int, r: int, dtype: torch.dtype | None = None,
                device: torch.device | str | None = None) -> torch.Tensor:
    """Haar-random ``(n, r)`` matrix with orthonormal columns (complex for a complex dtype)."""
    a = torch.randn(n, r, dtype=dtype, device=device)
    q, rr = torch.linalg.qr(a)
    d = rr.diagonal()
    # The sign/phase fix makes Q Haar-distributed instead of biased by the QR convention.
    return q * torch.where(d.abs() > 0, d / d.abs(), torch.ones_like(d))


def truncation_rank(sigma: torch.Tensor, tau: float, lo: int = 1, hi: int | None = None) -> int:
    """Smallest ``r`` with ``‖σ_{r+1:}‖₂ ≤ τ ‖σ‖₂`` (``σ`` descending), clamped to ``[lo, hi]``.

    ``τ = 0`` keeps every non-zero singular value.
    """
    hi = len(sigma) if hi is None else min(int(hi), len(sigma))
    s2 = sigma.detach().double().square()
    total = float(s2.sum())
    # tail[r] = ||sigma_{r:}||^2 for r = 0..n (tail[n] = 0)
    tail = torch.flip(torch.cumsum(torch.flip(s2, [0]), 0), [0]).tolist() + [0.0]
    r = next(k for k, t in enumerate(tail) if t <= tau * tau * total)
    return max(min(r, hi), min(lo, hi))


def check_tau(tau: float) -> float:
    """Validate the relative truncation tolerance ``τ ∈ [0, 1)``."""
    if not (isinstance(tau, (int, float)) and 0 <= tau < 1):
        raise ValueError(f"tau={tau!r} must lie in [0, 1) (relative tail of the singular values)")
    return float(tau)


def check_rank(name: str, r: int, hi: int) -> int:
    """Validate an integer rank in ``[1, hi]``."""
    if isinstance(r, bool) or int(r) != r or not 1 <= r <= hi:
        raise ValueError(f"{name}={r!r} must be an integer in [1, {hi}] (min of the weight's dims)")
    return int(r)


def hosvd(w: torch.Tensor, modes: Sequence[int], ranks: Sequence[int | None] | None = None,
          tau: float | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Truncated higher-order SVD ``w ≈ C ×_{m} U_m`` over ``modes``.

    Per mode, the rank is the τ rule on the unfolding's singular values (``τ = None``: full
    rank), capped by ``ranks[i]`` when given (without ``τ``, ``ranks[i]`` itself). For an order-2
    tensor and ``modes=(0, 1)`` this is the truncated SVD ``w ≈ U S Vᵀ`` with ``S`` diagonal.
    Returns ``(core, factors)``.
    """

    def pick(s: torch.Tensor, i: int) -> int:
        r = truncation_rank(s, tau) if tau is not None else len(s)
        return r if ranks is None or ranks[i] is None else min(r, int(ranks[i]))

    if w.ndim == 2 and tuple(modes) == (0, 1):
        p, s, qh = torch.linalg.svd(w, full_matrices=False)
        r = pick(s, 0)
        core = torch.diag(s[:r]).to(w.dtype)
        return core, [p[:, :r], qh[:r].mT]
    factors = []
    for i, m in enumerate(modes):
        p, s, _ = torch.linalg.svd(unfold(w, m), full_matrices=False)
        factors.append(p[:, :pick(s, i)])
    core = w
    for u, m in zip(factors, modes, strict=True):
        core = mode_product(core, u.mH, m)
    return core, factors


# --------------------------------------------------------------------------- base class


class LowRankModule(nn.Module):
    """Base of layers holding their weight as ``W = C ×_{m} U_m`` (see the module docstring).

    Subclasses set ``factor_names`` (one per factorised weight mode), ``factor_modes`` (the
    weight/core dimension each factor acts on), ``core_name`` and ``max_ranks`` (one per
    factor), and implement ``forward`` from the factors without forming ``W``.
    """

    factor_names: tuple[str, ...] = ()
    factor_modes: tuple[int, ...] = ()
    core_name: str = "core"
    max_ranks: tuple[int, ...] = ()

    def lowrank_factors(self) -> list[nn.Parameter]:
        """The orthonormal factors ``U_i`` (``(n_i, r_i)``), in ``factor_modes`` order."""
        return [getattr(self, n) for n in self.factor_names]

    def lowrank_core(self) -> nn.Parameter:
        """The core tensor (``S`` for a matrix layer)."""
        return getattr(self, self.core_name)

    @property
    def ranks(self) -> tuple[int, ...]:
        """Current rank per factor."""
        return tuple(int(u.shape[1]) for u in self.lowrank_factors())

    def weight_tensor(self) -> torch.Tensor:
        """The dense weight ``C ×_m U_m`` in the core's layout (for tests and inspection only)."""
        w = self.lowrank_core()
        for u, m in zip(self.lowrank_factors(), self.factor_modes, strict=True):
            w = mode_product(w, u, m)
        return w

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Ranks change during training: resize factors/core to the stored shapes before loading.
        for name in (*self.factor_names, self.core_name):
            key = prefix + name
            p = getattr(self, name)
            if key in state_dict and tuple(state_dict[key].shape) != tuple(p.shape):
                p.data = torch.empty(state_dict[key].shape, dtype=p.dtype, device=p.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class _MatrixLowRank(LowRankModule):
    """``W (n, m) = U S Vᵀ``: ``U (n, r)``, ``S (r, r)``, ``V (m, r)`` orthonormal ``U``, ``V``."""

    factor_names = ("U", "V")
    factor_modes = (0, 1)
    core_name = "S"

    def _init_factors(self, n: int, m: int, rank: int, max_rank: int | None, std: float,
                      dtype: torch.dtype | None, device) -> None:
        hi = min(n, m)
        rank = check_rank("rank", rank, hi)
        max_rank = hi if max_rank is None else check_rank("max_rank", max_rank, hi)
        if max_rank < rank:
            raise ValueError(f"max_rank={max_rank} is below rank={rank}; raise max_rank or lower rank")
        self.max_ranks = (max_rank, max_rank)
        # sigma = std * sqrt(max(n, m)) is the typical singular value of an (n, m) matrix with
        # i.i.d. entries of standard deviation std (the dense layer's init): same scale, kappa = 1.
        sigma = std * math.sqrt(max(n, m))
        self.U = nn.Parameter(orthonormal(n, rank, dtype, device))
        self.V = nn.Parameter(orthonormal(m, rank, dtype, device))
        self.S = nn.Parameter(sigma * torch.eye(rank, dtype=self.U.dtype, device=self.U.device))

    @property
    def rank(self) -> int:
        """Current rank ``r``."""
        return int(self.S.shape[0])

    def weight_matrix(self) -> torch.Tensor:
        """Dense ``U S Vᵀ`` of shape ``(n, m)`` (tests and inspection only; never used in forward)."""
        return self.U @ self.S @ self.V.mT

    def _set_from_matrix(self, w: torch.Tensor, rank: int | None, tau: float | None) -> None:
        hi = min(w.shape)
        if rank is not None:
            rank = check_rank("rank", rank, hi)
        if tau is not None:
            check_tau(tau)
        core, (u, v) = hosvd(w, (0, 1), [rank] if rank is not None else None, tau)
        self.U.data, self.S.data, self.V.data = u.contiguous(), core.contiguous(), v.contiguous()


class LowRankLinear(_MatrixLowRank):
    """Linear layer ``y = x Wᵀ + b`` with ``W (out_features, in_features) = U S Vᵀ``.

    The forward computes ``((x V) Sᵀ) Uᵀ`` at cost ``O(r (n + m))`` per sample.

    Parameters
    ----------
    in_features, out_features : int
        ``m`` and ``n``.
    rank : int
        Initial rank ``r ∈ [1, min(n, m)]``.
    max_rank : int, optional
        Upper bound for rank-adaptive training (default ``min(n, m)``).
    bias : bool, default True
    dtype, device : optional
        A complex dtype gives a complex layer (orthonormality ``Uᴴ U = I``).

    Attributes
    ----------
    U : (out_features, r), S : (r, r), V : (in_features, r)
        Initialised as Haar-random orthonormal ``U``, ``V`` and ``S = σ I`` at the spectral scale
        of ``nn.Linear``'s initialisation; ``bias`` as in ``nn.Linear``.
    """

    def __init__(self, in_features: int, out_features: int, rank: int, max_rank: int | None = None,
                 bias: bool = True, *, dtype: torch.dtype | None = None, device=None) -> None:
        super().__init__()
        self.in_features, self.out_features = int(in_features), int(out_features)
        bound = 1 / math.sqrt(self.in_features)
        self._init_factors(self.out_features, self.in_features, rank, max_rank, bound / math.sqrt(3),
                           dtype, device)
        self.bias = nn.Parameter(torch.empty(self.out_features, dtype=self.U.dtype, device=self.U.device)
                                 .uniform_(-bound, bound)) if bias else None

    @classmethod
    def from_dense(cls, weight: torch.Tensor, bias: torch.Tensor | None = None, rank: int | None = None,
                   tau: float | None = None, max_rank: int | None = None) -> LowRankLinear:
        """From a dense ``weight (n, m)`` by truncated SVD (``rank``, else the τ rule, else full)."""
        n, m = weight.shape
        layer = cls(m, n, 1, max_rank, bias is not None, dtype=weight.dtype, device=weight.device)
        layer._set_from_matrix(weight.detach(), rank, tau)
        if layer.max_ranks[0] < layer.rank:
            raise ValueError(f"max_rank={max_rank} is below the truncated rank {layer.rank}")
        if bias is not None:
            layer.bias.data = bias.detach().clone()
        return layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = ((x @ self.V) @ self.S.mT) @ self.U.mT
        return y + self.bias if self.bias is not None else y

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, rank={self.rank}, "
                f"max_rank={self.max_ranks[0]}, bias={self.bias is not None}")


class LowRankPointwise(LowRankLinear):
    """Channel mixing ``(B, C_in, *grid) -> (B, C_out, *grid)`` with ``W = U S Vᵀ``.

    The low-rank counterpart of :class:`neuralhss.models.neural_hss.Pointwise` (same
    arguments as :class:`LowRankLinear`, features = channels).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, *grid = x.shape
        z = self.V.mT @ x.reshape(b, c, -1)          # (B, r, N)
        y = (self.U @ self.S) @ z                    # (B, n, N), contiguous
        if self.bias is not None:
            y = y + self.bias[:, None]
        return y.reshape(b, self.out_features, *grid)


_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def _tuple(v: int | Sequence[int], d: int, name: str) -> tuple[int, ...]:
    t = (int(v),) * d if isinstance(v, int) else tuple(int(a) for a in v)
    if len(t) != d:
        raise ValueError(f"{name}={v!r} must be an int or a sequence of {d} ints")
    return t


class _ConvGeometry:
    """Stride/padding/dilation handling shared by the low-rank and Tucker convolutions."""

    def _init_geometry(self, dim: int, kernel_size, stride, padding, dilation, padding_mode: str) -> None:
        if dim not in _CONV:
            raise ValueError(f"dim={dim!r} must be 1, 2 or 3 (spatial dimensions of the convolution)")
        self.dim = dim
        self.kernel_size = _tuple(kernel_size, dim, "kernel_size")
        self.stride = _tuple(stride, dim, "stride")
        self.dilation = _tuple(dilation, dim, "dilation")
        if padding_mode not in ("zeros", "reflect", "replicate", "circular"):
            raise ValueError(f"padding_mode={padding_mode!r}; use 'zeros', 'reflect', 'replicate' "
                             "or 'circular'")
        self.padding_mode = padding_mode
        if isinstance(padding, str):
            if padding not in ("valid", "same") or (padding == "same" and padding_mode != "zeros"):
                raise ValueError(f"padding={padding!r}: use 'valid', 'same' (zeros mode only) or ints")
            self.padding = padding
        else:
            self.padding = _tuple(padding, dim, "padding")

    def _conv(self, x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
        conv = _CONV[self.dim]
        if self.padding_mode != "zeros" and not isinstance(self.padding, str):
            # F.pad wants (last-dim left, last-dim right, ...): reversed, each repeated twice.
            pad = [p for p in reversed(self.padding) for _ in range(2)]
            return conv(F.pad(x, pad, mode=self.padding_mode), kernel, None, self.stride, 0, self.dilation)
        return conv(x, kernel, None, self.stride, self.padding, self.dilation)

    def _geometry_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, padding_mode={self.padding_mode!r}")


def _conv_geometry(conv: nn.modules.conv._ConvNd) -> dict:
    if conv.groups != 1:
        raise ValueError(f"groups={conv.groups}: only groups=1 convolutions have a low-rank form here")
    if isinstance(conv, nn.modules.conv._ConvTransposeNd):
        raise ValueError("transposed convolutions are not supported; convert nn.Conv{1,2,3}d only")
    return {"stride": conv.stride, "padding": conv.padding, "dilation": conv.dilation,
            "padding_mode": conv.padding_mode, "dim": len(conv.kernel_size)}


class LowRankConv(_MatrixLowRank, _ConvGeometry):
    """Convolution (d = 1, 2, 3) with the kernel matricised as ``W (C_out, C_in·∏k) = U S Vᵀ``.

    Forward: a convolution with the ``r`` kernels ``Vᵀ`` reshaped to ``(r, C_in, *k)``,
    then the ``1×1`` channel map ``U S``; ``W`` is never formed. Cost ``O(r (C_in ∏k + C_out))``
    per output point instead of ``O(C_out C_in ∏k)``.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : int or tuple
    rank : int
        Initial rank in ``[1, min(C_out, C_in ∏k)]``.
    max_rank : int, optional
        Default ``min(C_out, C_in ∏k)``.
    stride, padding, dilation, padding_mode :
        As for ``nn.Conv{d}d`` (``groups = 1`` only).
    bias : bool, default True
    dim : {1, 2, 3}, default 2
        Spatial dimension.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | Sequence[int], rank: int,
                 max_rank: int | None = None, stride: int | Sequence[int] = 1,
                 padding: int | Sequence[int] | str = 0, dilation: int | Sequence[int] = 1,
                 bias: bool = True, padding_mode: str = "zeros", dim: int = 2, *,
                 dtype: torch.dtype | None = None, device=None) -> None:
        super().__init__()
        self._init_geometry(dim, kernel_size, stride, padding, dilation, padding_mode)
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        fan_in = self.in_channels * math.prod(self.kernel_size)
        bound = 1 / math.sqrt(fan_in)
        self._init_factors(self.out_channels, fan_in, rank, max_rank, bound / math.sqrt(3), dtype, device)
        self.bias = nn.Parameter(torch.empty(self.out_channels, dtype=self.U.dtype, device=self.U.device)
                                 .uniform_(-bound, bound)) if bias else None

    @classmethod
    def from_conv(cls, conv: nn.modules.conv._ConvNd, rank: int | None = None, tau: float | None = None,
                  max_rank: int | None = None) -> LowRankConv:
        """From an ``nn.Conv{1,2,3}d`` by truncated SVD of its matricised kernel."""
        geo = _conv_geometry(conv)
        w = conv.weight.detach()
        layer = cls(conv.in_channels, conv.out_channels, conv.kernel_size, 1, max_rank,
                    bias=conv.bias is not None, dtype=w.dtype, device=w.device, **geo)
        layer._set_from_matrix(w.reshape(w.shape[0], -1), rank, tau)
        if layer.max_ranks[0] < layer.rank:
            raise ValueError(f"max_rank={max_rank} is below the truncated rank {layer.rank}")
        if conv.bias is not None:
            layer.bias.data = conv.bias.detach().clone()
        return layer

    def kernel(self) -> torch.Tensor:
        """Dense kernel ``(C_out, C_in, *k)`` (tests and inspection only)."""
        return self.weight_matrix().reshape(self.out_channels, self.in_channels, *self.kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.V.mT.reshape(self.V.shape[1], self.in_channels, *self.kernel_size)
        z = self._conv(x, k)                              # (B, r, *out)
        b, r, *out = z.shape
        y = (self.U @ self.S) @ z.reshape(b, r, -1)       # (B, C_out, N), contiguous
        if self.bias is not None:
            y = y + self.bias[:, None]
        return y.reshape(b, self.out_channels, *out)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, rank={self.rank}, max_rank={self.max_ranks[0]}, "
                f"{self._geometry_repr()}, bias={self.bias is not None}")
