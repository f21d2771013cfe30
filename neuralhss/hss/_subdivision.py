"""Nested coarse grids by B-spline subdivision: the restriction and prolongation of a
multilevel (nested-grid) far field.

The B-spline of degree ``p`` on a grid of spacing ``2 h`` is a combination of the B-splines of
spacing ``h`` with the binomial weights ``binom(p + 1, k) / 2**p`` (the refinement relation of
subdivision). Prolongation ``P`` maps the coefficients of a coarse grid to the next finer one by
those weights (interpolation: it reproduces constants), restriction is its transpose
``R = P^T``, so ``P_j K R_j`` with ``P_j = P ... P`` (``j`` times) is a symmetric sandwich of a
coarse-grid kernel ``K`` between the level-``j`` B-spline bases. For even ``p`` the coarse
points lie between two fine points (cell-centred: coarse point ``i`` at fine position
``2 i + 1/2``), for odd ``p`` on every other fine point (``2 i``); the cell-centred grids of an
even-sized grid are mirror-symmetric about its centre on every level.

Arrays are ``(B, C, *spatial)``; every map acts on the last ``d`` axes, each axis separately
and every channel alike. A fine axis of ``m`` points (``m`` even) has ``m / 2`` coarse points.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["subdivision_mask", "restrict", "prolong", "wrap"]


def subdivision_mask(degree: int) -> torch.Tensor:
    """Refinement weights of the degree-``degree`` B-spline, ``binom(degree + 1, k) / 2**degree``
    for ``k = 0 .. degree + 1`` (they sum to 2: each fine point takes weights summing to one
    from the coarse points of its two parities), float64."""
    if int(degree) != degree or degree < 1:
        raise ValueError(f"degree={degree!r}: the B-spline degree of the nested grids must be a "
                         "positive integer")
    return torch.tensor([math.comb(degree + 1, k) / 2**degree for k in range(degree + 2)],
                        dtype=torch.float64)


def wrap(t: torch.Tensor, axis: int, pad: int) -> torch.Tensor:
    """Periodic padding of one axis of ``t`` by ``pad`` points on each side (``pad`` at most
    the axis' length)."""
    if pad == 0:
        return t
    n = t.shape[axis]
    if pad > n:
        raise ValueError(f"cannot wrap {pad} points around an axis of {n}")
    return torch.cat([t.narrow(axis, n - pad, pad), t, t.narrow(axis, 0, pad)], axis)


def _pad_of(mask: torch.Tensor) -> int:
    # fine points past each end that the first and last coarse points take: degree p has
    # p + 2 taps, centred between two fine points (p even) or on one (p odd)
    return (len(mask) - 1) // 2


def _take(t: torch.Tensor, axis: int, start: int, count: int) -> tuple[slice, ...]:
    # index of every other point along one axis: start, start + 2, ... (count of them)
    idx = [slice(None)] * t.ndim
    idx[axis] = slice(start, start + 2 * count - 1, 2)
    return tuple(idx)


def restrict(t: torch.Tensor, mask: torch.Tensor, d: int, periodic: bool = False) -> torch.Tensor:
    """One level of restriction of the last ``d`` axes of ``t`` (each even): ``m -> m / 2``
    points per axis, coarse value = mask-weighted sum of the fine values around it (zeros past
    the ends, or the other end's values if ``periodic``)."""
    if any(n % 2 for n in t.shape[-d:]):
        raise ValueError(f"restriction needs even sides; got {tuple(t.shape[-d:])}")
    pad, w = _pad_of(mask), mask.tolist()
    # a strided sum of shifted slices per axis: a handful of fused passes, where a
    # one-channel strided convolution is slow on the CPU
    for axis in range(t.ndim - d, t.ndim):
        m = t.shape[axis]
        if periodic:
            u = wrap(t, axis, pad)
        else:
            u = F.pad(t, [0, 0] * (t.ndim - 1 - axis) + [pad, pad])
        t = sum(wk * u[_take(u, axis, k, m // 2)] for k, wk in enumerate(w))
    return t


def prolong(t: torch.Tensor, mask: torch.Tensor, d: int, periodic: bool = False) -> torch.Tensor:
    """The transpose of :func:`restrict`: ``m / 2 -> m`` points per axis (subdivision)."""
    pad, w = _pad_of(mask), mask.tolist()
    # fine point 2 i + phase takes coarse point i + (phase + pad - k) / 2 with weight w[k], for
    # the taps k of its parity: two sums of shifted slices, interleaved
    taps = [[(k, (phase + pad - k) // 2) for k in range(len(w)) if (phase + pad - k) % 2 == 0]
            for phase in (0, 1)]
    reach = max(abs(s) for tp in taps for _, s in tp)
    for axis in range(t.ndim - d, t.ndim):
        half = t.shape[axis]
        if periodic:
            u = wrap(t, axis, reach)
        else:
            u = F.pad(t, [0, 0] * (t.ndim - 1 - axis) + [reach, reach])
        phases = [sum(w[k] * u.narrow(axis, reach + s, half) for k, s in tp) for tp in taps]
        t = torch.stack(phases, axis + 1).flatten(axis, axis + 1)
    return t
