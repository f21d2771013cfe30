"""FNO baselines from the neuraloperator package (never re-implemented here).

``fno`` is ``neuralop.models.FNO``; ``tfno`` is the same model with Tucker-factorised
spectral weights (neuraloperator's TFNO: fixed rank, no orthonormality).
"""

from __future__ import annotations

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


@register_defaults("fno")
@register_defaults("tfno")
def _defaults(in_channels: int, out_channels: int, grid_shape: tuple[int, ...]) -> dict:
    # 16 modes per axis (12 in 3-D, as in the FNO paper) unless the grid holds fewer.
    modes = 16 if len(grid_shape) < 3 else 12
    return {"in_channels": in_channels, "out_channels": out_channels,
            "n_modes": [min(modes, n // 2) for n in grid_shape], "hidden_channels": 32,
            "n_layers": 4}
