"""Neural-HSS: an FNO-like operator whose global layers are HSS matrices.

``x -> lift -> [v <- sigma(HSS(v) + W v + b)] * n_layers -> project``, the skeleton of an FNO
block with the spectral convolution replaced by :class:`neuralhss.hss.HSSOperator`
(``docs/neural_hss.md``). No activation follows the last block (as in FNO), so
``n_layers=1, hidden_channels=1, activation="identity", positional=False`` is an affine map whose linear
part is one HSS matrix: the pure linear Green's-function learner.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
from torch import nn

from ..hss import HSSOperator
from ..hss.tree import build_tree
from .registry import register, register_defaults

ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU, "tanh": nn.Tanh, "silu": nn.SiLU,
               "identity": nn.Identity}


def hidden_width(hidden_channels: int, width: int | None, model: str) -> int:
    """``hidden_channels``, or the deprecated ``width`` that named it before (removed in 0.2)."""
    if width is None:
        return hidden_channels
    warnings.warn(f"{model}(width=...) is deprecated; use hidden_channels= (the name "
                  "neuraloperator's models use)", DeprecationWarning, stacklevel=3)
    return width


def _dense_grad(grad: torch.Tensor) -> torch.Tensor:
    # einsum's weight gradient of a (1, C) or (C, 1) weight comes with the size-1 axis strided
    # like a transpose; DistributedDataParallel's gradient buckets expect the parameter's own
    # strides (otherwise it copies and warns "Grad strides do not match bucket view strides")
    return grad.clone(memory_format=torch.contiguous_format) if 1 in grad.shape else grad


class Pointwise(nn.Module):
    """Channel mixing at every grid point: ``(B, C_in, *grid) -> (B, C_out, *grid)``."""

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)  # nn.Linear's default
        self.weight.register_hook(_dense_grad)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim < 2 or x.shape[1] != self.weight.shape[1]:
            raise ValueError(f"input shape {tuple(x.shape)}; expected (batch, "
                             f"{self.weight.shape[1]}, *grid)")
        # One batched product (B, C_out, C_in) x (B, C_in, points), the bias fused in: the
        # output is laid out as it is returned (an einsum's needs a permuting copy), and on the
        # CPU it ran forward+backward 1.0-2x faster than a 1x1 convolution (slow_conv3d in 3-D).
        b = x.shape[0]
        flat = x.reshape(b, x.shape[1], -1)
        w = self.weight.expand(b, -1, -1)
        y = torch.bmm(w, flat) if self.bias is None else \
            torch.baddbmm(self.bias.view(1, -1, 1), w, flat)
        return y.view(b, -1, *x.shape[2:])


class NeuralHSS(nn.Module):
    """Neural-HSS operator ``(B, in_channels, *grid_shape) -> (B, out_channels, *grid_shape)``.

    Parameters
    ----------
    in_channels, out_channels : int
        Data channels.
    grid_shape : sequence of int
        The grid the HSS layers are built for (each side the leaf side times a power of two).
        Unlike FNO, the model is tied to this grid.
    hidden_channels : int, default 16
        Channels of the hidden blocks (``width=`` is a deprecated alias, removed in 0.2).
    n_layers : int, default 4
        Number of blocks ``v <- sigma(HSS(v) + W v + b)``.
    leaf_size : int or sequence of int, default 16
        Points per HSS leaf (a 4x4 box in 2-D) or the leaf box per axis.
    rank : int or sequence of int, default 8
        HSS rank (per level if a sequence, root's children first).
    share : {"none", "level"}, default "level"
        Generator sharing (see :class:`~neuralhss.hss.HSSOperator`).
    untie_top : int, default 3
        With ``share="level"``, give the top ``untie_top`` levels per-node generators: the
        few large boxes near the root feel the boundary (``docs/neural_hss.md``).
    activation : {"gelu", "relu", "tanh", "silu", "identity"}, default "gelu"
    positional : bool, default True
        Append the grid coordinates (in [0, 1] per axis) as input channels.
    projection_channels : int, optional
        Hidden channels of the two-layer pointwise projection (default ``2 * hidden_channels``).
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 1,
                 grid_shape: Sequence[int] = (64, 64), hidden_channels: int = 16,
                 n_layers: int = 4, leaf_size: int | Sequence[int] = 16,
                 rank: int | Sequence[int] = 8, share: str = "level", untie_top: int = 3,
                 activation: str = "gelu", positional: bool = True,
                 projection_channels: int | None = None, *, width: int | None = None) -> None:
        super().__init__()
        width = hidden_width(hidden_channels, width, "NeuralHSS")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation={activation!r}; use one of {sorted(ACTIVATIONS)}")
        for name, v in (("in_channels", in_channels), ("out_channels", out_channels),
                        ("hidden_channels", width), ("n_layers", n_layers)):
            if int(v) != v or v < 1:
                raise ValueError(f"{name}={v!r} must be a positive integer")
        self.grid_shape = tuple(int(n) for n in grid_shape)
        n_levels = build_tree(self.grid_shape, leaf_size).n_levels
        untie_top = min(int(untie_top), n_levels) if share == "level" else 0
        self.positional = bool(positional)
        d = len(self.grid_shape)
        if self.positional:
            axes = [torch.linspace(0, 1, n) for n in self.grid_shape]
            self.register_buffer("coords", torch.stack(torch.meshgrid(*axes, indexing="ij")),
                                 persistent=False)
        self.lift = Pointwise(in_channels + (d if self.positional else 0), width)
        self.hss = nn.ModuleList(
            HSSOperator(width, width, grid_shape=self.grid_shape, leaf_size=leaf_size, rank=rank,
                        share=share,
                        untie_top=untie_top) for _ in range(n_layers))
        self.local = nn.ModuleList(Pointwise(width, width) for _ in range(n_layers))
        self.act = ACTIVATIONS[activation]()
        hidden = projection_channels or 2 * width
        self.project = nn.Sequential(Pointwise(width, hidden), ACTIVATIONS[activation](),
                                     Pointwise(hidden, out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != len(self.grid_shape) + 2 or tuple(x.shape[2:]) != self.grid_shape:
            raise ValueError(f"input shape {tuple(x.shape)} does not match this model's grid "
                             f"{self.grid_shape}; Neural-HSS is built for one grid (rebuild it "
                             "with grid_shape= for other data)")
        if self.positional:
            x = torch.cat([x, self.coords.to(x.dtype).expand(x.shape[0], *self.coords.shape)], 1)
        v = self.lift(x)
        last = len(self.hss) - 1
        for k, (hss, local) in enumerate(zip(self.hss, self.local, strict=True)):
            v = hss(v) + local(v)
            if k < last:
                v = self.act(v)
        return self.project(v)


@register("neural_hss")
def neural_hss(**config) -> NeuralHSS:
    """Build :class:`NeuralHSS` from keyword arguments."""
    return NeuralHSS(**config)


@register_defaults("neural_hss")
def _defaults(in_channels: int, out_channels: int, grid_shape: tuple[int, ...]) -> dict:
    leaf = {1: 16, 2: 16, 3: 64}[len(grid_shape)]
    return {"in_channels": in_channels, "out_channels": out_channels,
            "grid_shape": list(grid_shape), "hidden_channels": 16, "n_layers": 4, "leaf_size": leaf,
            "rank": 8, "share": "level", "untie_top": 3}
