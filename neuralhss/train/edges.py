"""Box-edge artefacts: does a hierarchical model's error jump where its boxes meet?

A model whose boxes interact through low-rank couplings leaves steps in its predictions along the
edges of its tree's boxes. We measure them on the *error* ``e = prediction - truth``: the jump
between neighbouring grid points ``|e[i+1] - e[i]|`` (along every axis) at the edges of one level's
boxes, over the same jump between neighbours inside the leaf boxes. A model without artefacts has
ratios near 1 (a smooth error varies as much across an edge as anywhere else); the HSS layers with
weak admissibility measured 4-23 on their top levels.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["box_edge_ratios"]


def box_edge_ratios(error: torch.Tensor | np.ndarray, leaf_side: int, ndim: int | None = None,
                    ) -> dict[int, float]:
    """Ratio of the error's jumps across each level's box edges to its jumps inside leaves.

    Parameters
    ----------
    error : array, shape ``(..., n_1, ..., n_d)``
        Prediction minus truth; leading axes (samples, channels) are pooled.
    leaf_side : int
        Side of the leaf boxes in points; level ``j`` has boxes of side ``leaf_side * 2**j``.
    ndim : int, optional
        Number of grid axes ``d`` (default: all axes but the first).

    Returns
    -------
    dict
        ``{box side s: median |jump| across the edges first appearing at level s / median |jump|
        between neighbours inside a leaf}`` for every level with an edge inside the domain,
        each ratio the largest over the grid axes (jumps along axis ``k`` across edges normal to
        it). The edges of a level are the multiples of ``s`` that are not multiples of ``2 s``
        (those belong to coarser levels), except on the coarsest level, which keeps all.
    """
    e = np.asarray(error.detach().cpu() if isinstance(error, torch.Tensor) else error, dtype=np.float64)
    d = e.ndim - 1 if ndim is None else int(ndim)
    if d < 1 or e.ndim < d:
        raise ValueError(f"error of shape {e.shape} has fewer than ndim={d} axes")
    if not np.isfinite(e).all():
        raise ValueError("the error holds NaN or inf; evaluate the model on finite data first")
    grid = e.shape[-d:]
    if int(leaf_side) != leaf_side or leaf_side < 1 or any(n % leaf_side for n in grid):
        raise ValueError(f"leaf_side={leaf_side!r} must be a positive integer dividing every side of {grid}")
    ratios: dict[int, float] = {}
    for k in range(d):
        ax = e.ndim - d + k
        jumps = np.abs(np.diff(e, axis=ax))
        pos = np.arange(1, grid[k])  # jump between points pos - 1 and pos
        inside = np.take(jumps, np.nonzero(pos % leaf_side)[0], axis=ax)
        base = np.median(inside) if inside.size else np.nan
        if not base > 0:
            raise ValueError("the error does not vary inside the leaves (zero, constant, or leaves "
                             "of one point): no reference jump")
        s = leaf_side
        while s < grid[k]:
            coarsest = 2 * s >= grid[k]
            sel = (pos % s == 0) & ((pos % (2 * s) != 0) | coarsest)
            r = float(np.median(np.take(jumps, np.nonzero(sel)[0], axis=ax)) / base)
            ratios[s] = max(ratios.get(s, 0.0), r)
            s *= 2
    return dict(sorted(ratios.items()))
