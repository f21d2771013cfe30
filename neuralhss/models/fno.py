"""Fourier-operator baselines from the neuraloperator package (never re-implemented here).

``fno`` is ``neuralop.models.FNO``; ``tfno`` is the same model with Tucker-factorised
spectral weights (neuraloperator's TFNO: fixed rank, no orthonormality); ``uno`` is
``neuralop.models.UNO``, the U-shaped multiscale operator (Fourier blocks that coarsen the grid
and refine it again, with skip connections between the matching levels).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence

from torch import nn

from .registry import register, register_defaults


def _fno(in_channels: int, out_channels: int, n_modes: Sequence[int], hidden_channels: int,
         n_layers: int, **kwargs) -> nn.Module:
    from neuralop.models import FNO

    if not n_modes or any(int(m) < 1 for m in n_modes):
        raise ValueError(f"n_modes={n_modes!r} must list a positive mode count per spatial axis")
    return FNO(n_modes=tuple(int(m) for m in n_modes), in_channels=in_channels,
               out_channels=out_channels, hidden_channels=hidden_channels, n_layers=n_layers,
               **kwargs)


@register("fno")
def fno(in_channels: int = 1, out_channels: int = 1, n_modes: Sequence[int] = (16, 16),
        hidden_channels: int = 32, n_layers: int = 4, **kwargs) -> nn.Module:
    """neuraloperator's FNO.

    Parameters
    ----------
    in_channels, out_channels : int
        Data channels (the grid coordinates are appended by FNO's own positional embedding).
    n_modes : sequence of int
        Fourier modes kept per spatial axis; its length is the spatial dimension.
    hidden_channels : int
        Width of the FNO blocks.
    n_layers : int
        Number of FNO blocks.
    **kwargs
        Passed to ``neuralop.models.FNO`` (e.g. ``domain_padding``, ``norm``).
    """
    return _fno(in_channels, out_channels, n_modes, hidden_channels, n_layers, **kwargs)


@register("tfno")
def tfno(in_channels: int = 1, out_channels: int = 1, n_modes: Sequence[int] = (16, 16),
         hidden_channels: int = 32, n_layers: int = 4, rank: float = 0.05,
         **kwargs) -> nn.Module:
    """neuraloperator's TFNO: FNO with Tucker-factorised spectral weights.

    ``rank`` is neuraloperator's: a fraction of the full weight's parameters (float < 1) or a
    Tucker rank. Other arguments as for :func:`fno`.
    """
    return _fno(in_channels, out_channels, n_modes, hidden_channels, n_layers,
                factorization="tucker", rank=rank, **kwargs)


@register("uno")
def uno(in_channels: int = 1, out_channels: int = 1, n_modes: Sequence[int] = (16, 16),
        hidden_channels: int = 32, **kwargs) -> nn.Module:
    """neuraloperator's UNO with five Fourier blocks in a U: full grid, half grid (three
    blocks, half the modes, twice the width), full grid again, skips between matching levels.

    Parameters
    ----------
    in_channels, out_channels : int
        Data channels (grid coordinates are appended by UNO's positional embedding).
    n_modes : sequence of int
        Fourier modes per spatial axis on the full grid (halved on the coarse one).
    hidden_channels : int
        Width of the outer blocks; the coarse blocks have twice as many channels.
    **kwargs
        Passed to ``neuralop.models.UNO`` (overriding the U described above).
    """
    from neuralop.models import UNO

    if not n_modes or any(int(m) < 2 for m in n_modes):
        raise ValueError(f"n_modes={n_modes!r} must list at least 2 modes per spatial axis")
    full = [int(m) for m in n_modes]
    half = [max(1, m // 2) for m in full]
    d, w = len(full), int(hidden_channels)
    config = dict(uno_out_channels=[w, 2 * w, 2 * w, 2 * w, w],
                  uno_n_modes=[full, half, half, half, full],
                  uno_scalings=[[1.0] * d, [0.5] * d, [1.0] * d, [2.0] * d, [1.0] * d],
                  n_layers=5, lifting_channels=2 * w, projection_channels=2 * w,
                  # soft gating needs equal widths, which the U's blocks do not have
                  channel_mlp_skip="linear")
    config.update(kwargs)
    with contextlib.redirect_stdout(io.StringIO()):  # UNO prints its skip settings
        return UNO(in_channels=in_channels, out_channels=out_channels, hidden_channels=w,
                   **config)


@register_defaults("fno")
@register_defaults("tfno")
def _defaults(in_channels: int, out_channels: int, grid_shape: tuple[int, ...]) -> dict:
    # 16 modes per axis and width 32 in 1-D/2-D; in 3-D 8 modes and width 16, which keeps a
    # 128³ training step within one CPU's memory (every 3-D comparison in docs/ used it).
    # Never more modes than the grid holds.
    modes, width = (16, 32) if len(grid_shape) < 3 else (8, 16)
    return {"in_channels": in_channels, "out_channels": out_channels,
            "n_modes": [min(modes, n // 2) for n in grid_shape], "hidden_channels": width,
            "n_layers": 4}


@register_defaults("uno")
def _uno_defaults(in_channels: int, out_channels: int, grid_shape: tuple[int, ...]) -> dict:
    cfg = _defaults(in_channels, out_channels, grid_shape)
    del cfg["n_layers"]  # the U fixes its five blocks
    return cfg
