"""Tucker layers: ``W = C ×_{m} U_m`` over chosen weight modes, orthonormal factors.

* :class:`TuckerSpectralConv` — an FNO spectral convolution whose complex weight
  ``(C_in, C_out, m_1, …, m_d)`` is held in Tucker form (factors at least on the two channel
  modes, optionally on the mode axes). It is a drop-in replacement for neuraloperator's
  ``SpectralConv`` inside ``neuralop.models.FNO`` (``fno.fno_blocks.convs[i] = ...``):
  ``forward(x, output_shape=None)``, ``transform(x, output_shape=None)``, ``n_modes``.
* :class:`TuckerConv` — an ordinary convolution kernel ``(C_out, C_in, *k)`` in Tucker form
  (channel modes, optionally the spatial modes), applied as ``1×1 → core conv → 1×1``.

Factors are named ``U{mode}`` after the weight mode they act on (``U0``, ``U1``, …) and the
core ``core``; a weight mode without a factor keeps its full size in the core. Conventions
(mode products, orthonormality ``Uᴴ U = I``) are those of :mod:`neuralhss.lowrank.layers`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from .layers import (
    LowRankModule,
    _conv_geometry,
    _ConvGeometry,
    check_rank,
    check_tau,
    hosvd,
    mode_product,
    orthonormal,
)


class _TuckerBase(LowRankModule):
    core_name = "core"

    def _init_tucker(self, weight_shape: Sequence[int], modes: Sequence[int],
                     rank: int | Sequence[int] | None, max_rank: int | Sequence[int] | None, std: float,
                     dtype: torch.dtype, device) -> None:
        self.weight_shape = tuple(int(s) for s in weight_shape)
        modes = tuple(sorted(int(m) for m in modes))
        if not modes or len(set(modes)) != len(modes) or not all(0 <= m < len(weight_shape) for m in modes):
            raise ValueError(f"tucker_modes={modes!r} must list distinct weight modes in "
                             f"[0, {len(weight_shape) - 1}]")
        self.factor_modes = modes
        self.factor_names = tuple(f"U{m}" for m in modes)
        ranks = self._per_mode("rank", rank, modes, default=None)
        maxr = self._per_mode("max_rank", max_rank, modes, default=None)
        max_ranks = []
        for i, m in enumerate(modes):
            n = self.weight_shape[m]
            ranks[i] = n if ranks[i] is None else check_rank(f"rank (mode {m})", ranks[i], n)
            hi = n if maxr[i] is None else check_rank(f"max_rank (mode {m})", maxr[i], n)
            if hi < ranks[i]:
                raise ValueError(f"max_rank={hi} is below rank={ranks[i]} on mode {m}; raise max_rank")
            max_ranks.append(hi)
        self.max_ranks = tuple(max_ranks)
        core_shape = list(self.weight_shape)
        for m, r in zip(modes, ranks, strict=True):
            core_shape[m] = r
        # Energy-matched init: ||W||_F = ||core||_F (orthonormal factors) equals the Frobenius
        # norm of a dense weight with i.i.d. entries of standard deviation std.
        core_std = std * math.sqrt(math.prod(self.weight_shape) / math.prod(core_shape))
        for m, r in zip(modes, ranks, strict=True):
            setattr(self, f"U{m}", nn.Parameter(orthonormal(self.weight_shape[m], r, dtype, device)))
        self.core = nn.Parameter(core_std * torch.randn(core_shape, dtype=dtype, device=device))

    @staticmethod
    def _per_mode(name: str, v, modes: Sequence[int], default) -> list:
        if v is None:
            return [default] * len(modes)
        if isinstance(v, int):
            return [v] * len(modes)
        v = list(v)
        if len(v) != len(modes):
            raise ValueError(f"{name}={v!r} must be an int or one value per Tucker mode {tuple(modes)}")
        return v

    def _set_from_weight(self, w: torch.Tensor, rank, tau: float | None) -> None:
        if tau is not None:
            check_tau(tau)
        ranks = self._per_mode("rank", rank, self.factor_modes, default=None)
        for r, m in zip(ranks, self.factor_modes, strict=True):
            if r is not None:
                check_rank(f"rank (mode {m})", r, w.shape[m])
        core, factors = hosvd(w, self.factor_modes, ranks, tau)
        for name, u, hi in zip(self.factor_names, factors, self.max_ranks, strict=True):
            if u.shape[1] > hi:
                raise ValueError(f"the truncated rank {u.shape[1]} of {name} exceeds max_rank={hi}")
            getattr(self, name).data = u.contiguous()
        self.core.data = core.contiguous()

    def _factor(self, mode: int) -> torch.Tensor | None:
        return getattr(self, f"U{mode}") if mode in self.factor_modes else None


class TuckerSpectralConv(_TuckerBase):
    """FNO spectral convolution with a Tucker weight, compatible with neuraloperator's FNO.

    ``y = F⁻¹(W · F x) + b``: ``x (B, C_in, n_1, …, n_d)`` real (or complex with
    ``complex_data=True``); in Fourier space ``out[b, o, k] = Σ_i x̂[b, i, k] W[i, o, k]`` on the
    kept modes, with ``W (C_in, C_out, m_1, …, m_d) = C ×_{m} U_m`` complex. The kept modes
    follow neuraloperator's ``SpectralConv``: ``n_modes`` total modes per axis, centred on the
    zero frequency after ``fftshift``; along the last axis of real data the ``rfft`` half,
    ``n_modes[-1] // 2 + 1`` modes. The contraction is ``x̂ → ×U_in → core (expanded on the
    mode axes only) → ×U_out``; the dense ``W`` is never formed.

    Parameters
    ----------
    in_channels, out_channels : int
    n_modes : int or sequence of int
        Modes per spatial axis (neuraloperator's convention).
    rank : int or sequence of int, optional
        Tucker rank per factorised mode (``None``: full).
    max_rank : int or sequence of int, optional
        Bound for rank-adaptive training (default: the mode's size).
    tucker_modes : sequence of int, default (0, 1)
        Weight modes carrying a factor: 0 = C_in, 1 = C_out, 2… = the mode axes.
    bias : bool, default True
        A real bias ``(C_out, 1, …, 1)`` as in neuraloperator.
    fft_norm : str, default "forward"
    complex_data : bool, default False
        Complex inputs (full FFT on every axis, all axes centred).
    resolution_scaling_factor : float or sequence, optional
        Output grid = round(input grid · factor) when ``output_shape`` is not given.
    dtype : complex dtype, default torch.cfloat

    Notes
    -----
    For odd grid sizes or ``complex_data=True`` the inverse shift here is ``ifftshift``, the exact
    inverse of the forward shift; neuraloperator 2.0.0 applies ``fftshift`` again (and skips the
    last axis for complex data), so outputs agree with its ``SpectralConv`` on even grids of real
    data (the usual FNO setting) and differ otherwise.
    """

    def __init__(self, in_channels: int, out_channels: int, n_modes: int | Sequence[int],
                 rank: int | Sequence[int] | None = None, max_rank: int | Sequence[int] | None = None,
                 tucker_modes: Sequence[int] = (0, 1), bias: bool = True, fft_norm: str = "forward",
                 complex_data: bool = False,
                 resolution_scaling_factor: float | Sequence[float] | None = None,
                 *, dtype: torch.dtype = torch.cfloat, device=None) -> None:
        super().__init__()
        if not dtype.is_complex:
            raise ValueError(f"dtype={dtype} must be complex (spectral weights), e.g. torch.cfloat")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.complex_data = bool(complex_data)
        self.fft_norm = fft_norm
        self.n_modes = n_modes
        if any(m < 1 for m in self.n_modes):
            raise ValueError(f"n_modes={n_modes!r} must be positive")
        self.max_n_modes = list(self.n_modes)
        self.order = len(self.n_modes)
        self.separable = False
        if resolution_scaling_factor is not None and not isinstance(resolution_scaling_factor, Sequence):
            resolution_scaling_factor = [float(resolution_scaling_factor)] * self.order
        self.resolution_scaling_factor = (None if resolution_scaling_factor is None
                                          else [float(s) for s in resolution_scaling_factor])
        std = (2 / (in_channels + out_channels)) ** 0.5  # neuraloperator's "auto" init std
        self._init_tucker((self.in_channels, self.out_channels, *self.max_n_modes), tucker_modes, rank,
                          max_rank, std, dtype, device)
        self.bias = (nn.Parameter(std * torch.randn(self.out_channels, *([1] * self.order), device=device))
                     if bias else None)

    @property
    def n_modes(self) -> list[int]:
        """Kept modes per axis (last axis already halved for real data, as in neuraloperator)."""
        return self._n_modes

    @n_modes.setter
    def n_modes(self, n_modes: int | Sequence[int]) -> None:
        n_modes = [int(n_modes)] if isinstance(n_modes, int) else [int(m) for m in n_modes]
        if not self.complex_data:
            # the rfft keeps m // 2 + 1 non-negative frequencies of the last axis
            n_modes[-1] = n_modes[-1] // 2 + 1
        big = getattr(self, "max_n_modes", None)
        if big is not None and any(m > M for m, M in zip(n_modes, big, strict=True)):
            raise ValueError(f"n_modes={n_modes} exceeds the weight's modes {self.max_n_modes}")
        self._n_modes = n_modes

    @classmethod
    def from_spectral_conv(cls, conv: nn.Module, rank: int | Sequence[int] | None = None,
                           tau: float | None = None, max_rank: int | Sequence[int] | None = None,
                           tucker_modes: Sequence[int] = (0, 1)) -> TuckerSpectralConv:
        """From a neuraloperator ``SpectralConv`` (any factorisation) by truncated HOSVD."""
        if getattr(conv, "separable", False):
            raise ValueError("separable SpectralConv weights (C, modes...) have no channel pair to factorise")
        w = conv.weight if torch.is_tensor(conv.weight) else conv.weight.to_tensor()
        w = w.detach()
        layer = cls.__new__(cls)
        _TuckerBase.__init__(layer)
        layer.in_channels, layer.out_channels = int(conv.in_channels), int(conv.out_channels)
        layer.complex_data = bool(getattr(conv, "complex_data", False))
        layer.fft_norm = conv.fft_norm
        layer._n_modes = list(conv.n_modes)
        layer.max_n_modes = list(w.shape[2:])
        layer.order = len(layer.max_n_modes)
        layer.separable = False
        rsf = conv.resolution_scaling_factor
        layer.resolution_scaling_factor = None if rsf is None else [float(s) for s in rsf]
        layer._init_tucker(tuple(w.shape), tucker_modes, 1, max_rank, 1.0, w.dtype, w.device)
        layer._set_from_weight(w, rank, tau)
        layer.bias = None if conv.bias is None else nn.Parameter(conv.bias.detach().clone())
        return layer

    def _out_shape(self, in_shape: list[int], output_shape) -> list[int]:
        if output_shape is not None:
            return list(output_shape)
        if self.resolution_scaling_factor is not None:
            return [round(s * r) for s, r in zip(in_shape, self.resolution_scaling_factor, strict=True)]
        return in_shape

    def transform(self, x: torch.Tensor, output_shape=None) -> torch.Tensor:
        """Resample a skip-connection input to this layer's output grid (identity if unchanged)."""
        in_shape = list(x.shape[2:])
        out_shape = self._out_shape(in_shape, output_shape)
        if out_shape == in_shape:
            return x
        from neuralop.layers.resample import resample

        return resample(x, 1.0, list(range(2, x.ndim)), output_shape=out_shape)

    def _mode_core(self, kept: list[int]) -> torch.Tensor:
        """Core expanded on the factorised mode axes and sliced to the kept modes: (r_in, r_out, k…)."""
        t = self.core
        for a in range(self.order):
            u = self._factor(2 + a)
            if u is not None:
                t = mode_product(t, u, 2 + a)
        sl = [slice(None), slice(None)]
        for a, (k, big) in enumerate(zip(kept, self.max_n_modes, strict=True)):
            last_half = a == self.order - 1 and not self.complex_data
            start = 0 if last_half else (big - k) // 2  # centred (zero frequency at big // 2)
            sl.append(slice(start, start + k))
        return t[tuple(sl)]

    def forward(self, x: torch.Tensor, output_shape=None) -> torch.Tensor:
        b, _, *grid = x.shape
        if len(grid) != self.order:
            raise ValueError(f"input {tuple(x.shape)} has {len(grid)} spatial axes; "
                             f"this layer has {self.order}")
        dims = tuple(range(-self.order, 0))
        if self.complex_data:
            xf = torch.fft.fftn(x, dim=dims, norm=self.fft_norm)
            shift = dims
        else:
            xf = torch.fft.rfftn(x, dim=dims, norm=self.fft_norm)
            shift = dims[:-1]
        if shift:
            xf = torch.fft.fftshift(xf, dim=shift)
        fft_size = list(xf.shape[2:])
        kept = [min(f, n, M) for f, n, M in zip(fft_size, self.n_modes, self.max_n_modes, strict=True)]
        sx = [slice(None), slice(None)]
        for a, (f, k) in enumerate(zip(fft_size, kept, strict=True)):
            if a == self.order - 1 and not self.complex_data:
                sx.append(slice(0, k))
            else:
                sx.append(slice(f // 2 - k // 2, f // 2 - k // 2 + k))
        sx = tuple(sx)
        u_in, u_out = self._factor(0), self._factor(1)
        dt = xf.dtype
        t = self._mode_core(kept).to(dt)
        a = xf[sx]                                                   # (B, C_in, k…)
        if u_in is not None:
            a = torch.einsum("bi...,ip->bp...", a, u_in.to(dt))
        c = torch.einsum("bp...,pq...->bq...", a, t)                 # (B, r_out, k…)
        if u_out is not None:
            c = torch.einsum("bq...,oq->bo...", c, u_out.to(dt))
        out = xf.new_zeros(b, self.out_channels, *fft_size)
        out[sx] = c
        if shift:
            out = torch.fft.ifftshift(out, dim=shift)
        size = self._out_shape(list(grid), output_shape)
        if self.complex_data:
            y = torch.fft.ifftn(out, s=size, dim=dims, norm=self.fft_norm)
        else:
            y = torch.fft.irfftn(out, s=size, dim=dims, norm=self.fft_norm)
        return y + self.bias if self.bias is not None else y

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, n_modes={self.n_modes}, "
                f"tucker_modes={self.factor_modes}, ranks={self.ranks}, max_ranks={self.max_ranks}")


class TuckerConv(_TuckerBase, _ConvGeometry):
    """Convolution whose kernel ``(C_out, C_in, *k)`` is in Tucker form (TDLRT's conv layer).

    With factors on ``C_out`` (mode 0) and ``C_in`` (mode 1) the forward is ``1×1 conv with
    U1ᵀ → conv with the core kernel (r_out, r_in, *k) → 1×1 conv with U0``; factors on spatial
    modes (2…) are folded into the small core kernel. ``W`` is never formed.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : int or tuple
    rank : int or sequence of int, optional
        Rank per factorised mode (``None``: full).
    max_rank : int or sequence of int, optional
    tucker_modes : sequence of int, default (0, 1)
        Which kernel modes carry a factor; must include 0 and 1.
    stride, padding, dilation, padding_mode, bias, dim :
        As for ``nn.Conv{dim}d`` (``groups = 1``).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | Sequence[int],
                 rank: int | Sequence[int] | None = None, max_rank: int | Sequence[int] | None = None,
                 tucker_modes: Sequence[int] = (0, 1), stride: int | Sequence[int] = 1,
                 padding: int | Sequence[int] | str = 0, dilation: int | Sequence[int] = 1,
                 bias: bool = True, padding_mode: str = "zeros", dim: int = 2, *,
                 dtype: torch.dtype | None = None, device=None) -> None:
        super().__init__()
        self._init_geometry(dim, kernel_size, stride, padding, dilation, padding_mode)
        if 0 not in tucker_modes or 1 not in tucker_modes:
            raise ValueError(f"tucker_modes={tuple(tucker_modes)!r} must include 0 (C_out) and 1 (C_in)")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        fan_in = self.in_channels * math.prod(self.kernel_size)
        bound = 1 / math.sqrt(fan_in)
        dtype = dtype or torch.get_default_dtype()
        self._init_tucker((self.out_channels, self.in_channels, *self.kernel_size), tucker_modes, rank,
                          max_rank, bound / math.sqrt(3), dtype, device)
        self.bias = nn.Parameter(torch.empty(self.out_channels, dtype=dtype, device=device)
                                 .uniform_(-bound, bound)) if bias else None

    @classmethod
    def from_conv(cls, conv: nn.modules.conv._ConvNd, rank: int | Sequence[int] | None = None,
                  tau: float | None = None, max_rank: int | Sequence[int] | None = None,
                  tucker_modes: Sequence[int] = (0, 1)) -> TuckerConv:
        """From an ``nn.Conv{1,2,3}d`` by truncated HOSVD of its kernel."""
        geo = _conv_geometry(conv)
        w = conv.weight.detach()
        layer = cls(conv.in_channels, conv.out_channels, conv.kernel_size, 1, max_rank, tucker_modes,
                    bias=conv.bias is not None, dtype=w.dtype, device=w.device, **geo)
        layer._set_from_weight(w, rank, tau)
        if conv.bias is not None:
            layer.bias.data = conv.bias.detach().clone()
        return layer

    def kernel(self) -> torch.Tensor:
        """Dense kernel ``(C_out, C_in, *k)`` (tests and inspection only)."""
        return self.weight_tensor()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.core
        for a in range(self.dim):
            u = self._factor(2 + a)
            if u is not None:
                k = mode_product(k, u, 2 + a)
        b, c, *grid = x.shape
        z = (self.U1.mT @ x.reshape(b, c, -1)).reshape(b, self.U1.shape[1], *grid)
        z = self._conv(z, k)                                          # (B, r_out, *out)
        _, r, *out = z.shape
        y = self.U0 @ z.reshape(b, r, -1)
        if self.bias is not None:
            y = y + self.bias[:, None]
        return y.reshape(b, self.out_channels, *out)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, tucker_modes={self.factor_modes}, "
                f"ranks={self.ranks}, max_ranks={self.max_ranks}, {self._geometry_repr()}")
