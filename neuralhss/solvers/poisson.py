"""Poisson equation −Δu = f on a box, second-order finite differences, fast exact solves.

Discretisation
--------------
The standard (2d+1)-point stencil in d = 1, 2, 3 dimensions::

    (−Δ_h u)_i = Σ_k (2 u_i − u_{i−e_k} − u_{i+e_k}) / h_k²

on the package grid (neuralhss.grid): a homogeneous-Dirichlet axis of length L with n unknowns
uses the interior nodes x_i = i·L/(n+1), i = 1..n, spacing h = L/(n+1) (the boundary values
u = 0 are not stored); a periodic axis uses x_i = i·L/n, i = 0..n−1, spacing h = L/n.
Boundary conditions may differ per axis.

The discrete system is solved exactly (to round-off, ~1e-15 relative) by diagonalisation:
a type-I discrete sine transform (DST-I) on Dirichlet axes and a real FFT on periodic axes.
Cost O(N log N) for N grid points.

Validated accuracy: the discrete solution converges to the continuous one at second order,
observed orders 1.97–2.06 in 1-D/2-D/3-D for Dirichlet and periodic problems
(``tests/test_poisson.py``, manufactured solutions, max-norm error over three refinements).

Speed: ``benchmarks/bench_poisson.py`` compares :func:`solve` with a bare
``scipy.fft.dstn``/``idstn`` solve of the same 128³ system in the same run. DST-I of length
n runs an FFT of length 2(n+1), so n + 1 should have small prime factors: n = 256 is an order
of magnitude slower than n = 255 (257 is prime; the same benchmark's
"grid_size_sensitivity", timings in ``benchmarks/results/bench_poisson.json``). Resolutions
n = 2^k − 1 are the fast ones.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.fft as sfft
import scipy.sparse as sp

from . import _stencils as st

__all__ = ["solve", "laplacian", "eigenvalues", "symbol"]

#: Relative tolerance of the zero-mean test for fully periodic sources whose data is float64
#: (float32 data gets ``1000·eps(float32)`` instead, since subtracting the mean in single
#: precision leaves a residual mean of that order).
ZERO_MEAN_RTOL = 1e-10


def eigenvalues(n: int, length: float = 1.0, bc: str = "dirichlet") -> np.ndarray:
    """Eigenvalues of the 1-D negative second difference on ``n`` nodes, in transform order.

    Dirichlet: λ_k = (4/h²)·sin²(πk/(2(n+1))), k = 1..n, h = L/(n+1) (DST-I order).
    Periodic: λ_k = (4/h²)·sin²(πk/n), k = 0..n−1, h = L/n (FFT order; λ_0 = 0).
    """
    (bc,) = st.normalize_bc(bc, 1)
    (length,) = st.normalize_lengths(length, 1)
    h = st.spacing(n, length, bc)
    if bc == "dirichlet":
        k = np.arange(1, n + 1)
        return (4.0 / h**2) * np.sin(np.pi * k / (2 * (n + 1))) ** 2
    k = np.arange(n)
    return (4.0 / h**2) * np.sin(np.pi * k / n) ** 2


def _eigen_sum(shape: tuple[int, ...], lengths: tuple[float, ...],
               bcs: tuple[str, ...]) -> np.ndarray:
    periodic_axes = [k for k, bc in enumerate(bcs) if bc == "periodic"]
    last_periodic = periodic_axes[-1] if periodic_axes else None
    lam = np.zeros((1,) * len(shape))
    for k, (n, length, bc) in enumerate(zip(shape, lengths, bcs, strict=True)):
        lam_k = eigenvalues(n, length, bc)
        if k == last_periodic:
            lam_k = lam_k[: n // 2 + 1]  # rfftn keeps the non-negative half on its last axis
        lam = lam + lam_k.reshape((-1,) + (1,) * (len(shape) - k - 1))
    return lam


@functools.lru_cache(maxsize=4)
def _inverse_symbol(shape: tuple[int, ...], lengths: tuple[float, ...],
                    bcs: tuple[str, ...]) -> np.ndarray:
    # Cached because building the n^d reciprocal costs ~10 % of a 128^3 solve and datasets
    # solve thousands of systems on one grid.
    periodic_axes = [k for k, bc in enumerate(bcs) if bc == "periodic"]
    lam = _eigen_sum(shape, lengths, bcs)
    with np.errstate(divide="ignore"):
        inv = 1.0 / lam
    if len(periodic_axes) == len(shape):
        # The constant mode is the kernel of the fully periodic operator; projecting it out
        # picks the zero-mean solution.
        inv[(0,) * len(shape)] = 0.0
    inv.setflags(write=False)
    return inv


def _grid_shape(shape: int | Sequence[int]) -> tuple[tuple[int, ...], int]:
    """``shape`` (an int for 1-D, or 1..3 ints) checked, and its dimension."""
    shape_t = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    if not shape_t or not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool)
                              for n in shape_t):
        raise ValueError(f"shape must be an int or a sequence of 1..3 ints; got {shape!r}.")
    d = st.check_dim(len(shape_t), None, "shape")
    return st.check_spatial_shape(shape_t, "shape"), d


def symbol(shape: int | Sequence[int], lengths: float | Sequence[float] = 1.0,
           bc: str | Sequence[str] = "dirichlet", *, inverse: bool = False) -> np.ndarray:
    """Eigenvalues λ of the d-D (2d+1)-point −Δ_h, in the order of the transforms that diagonalise it.

    The one implementation of the discrete Laplacian's symbol, used by :func:`solve`,
    :mod:`~neuralhss.solvers.navier_stokes` (streamfunction) and
    :mod:`~neuralhss.solvers.gray_scott` (implicit diffusion).

    Parameters
    ----------
    shape : int or sequence of d ints
        Spatial grid shape (n_x[, n_y[, n_z]]), d = 1..3, axis 0 first.
    lengths, bc
        As in :func:`solve`, in axis order.
    inverse : bool, default False
        Return 1/λ instead, with 0 for the constant mode when every axis is periodic (the
        pseudo-inverse that :func:`solve` applies: it picks the zero-mean solution).

    Returns
    -------
    ndarray, float64
        λ = Σ_k λ_k(i_k) with λ_k the 1-D :func:`eigenvalues` of axis k (units 1/length²),
        shape (n_1, ..., n_d) except that the last periodic axis keeps n//2 + 1 entries (the
        order of ``scipy.fft.rfftn`` over the periodic axes, DST-I order on Dirichlet axes).
        ``inverse=True`` returns a cached read-only array (units length²); otherwise a new one.
    """
    shape_t, d = _grid_shape(shape)
    lens, bcs = st.normalize_lengths(lengths, d), st.normalize_bc(bc, d)
    if inverse:
        return _inverse_symbol(shape_t, lens, bcs)
    return _eigen_sum(shape_t, lens, bcs)


def _check_zero_mean(f: np.ndarray, dim: int, eps: float) -> None:
    axes = tuple(range(-dim, 0))
    mean = f.mean(axis=axes)
    scale = np.abs(f).max(axis=axes)
    rtol = max(ZERO_MEAN_RTOL, 1000.0 * eps)
    bad = np.abs(mean) > rtol * scale
    if np.any(bad):
        worst = float(np.max(np.abs(mean) / np.where(scale > 0, scale, 1.0)))
        raise ValueError(
            f"f must have zero mean over the grid for a fully periodic problem (the system is "
            f"singular otherwise); |mean|/max|f| = {worst:.3g} > {rtol:.0e} in "
            f"{int(np.count_nonzero(bad))} sample(s): pass f - f.mean(axis=spatial axes).")


@st.call_shape(3, ("dim",))
def solve(f: Any, lengths: float | Sequence[float] = 1.0, bc: str | Sequence[str] = "dirichlet", *,
          dim: int | None = None, workers: int | None = None) -> Any:
    """Solve −Δ_h u = f exactly for the (2d+1)-point Laplacian, d = 1, 2 or 3.

    Fields and physical parameters are positional, numerical options keyword-only (the
    package's ``solve`` shape). Until 0.2 the options ``dim`` are still accepted by position,
    with a ``DeprecationWarning``.

    Parameters
    ----------
    f : array_like or torch.Tensor, shape (..., n_1, ..., n_d)
        Source at the grid nodes; the last ``dim`` axes are spatial, leading axes are a batch
        (each sample solved independently).
    lengths : float or sequence of d floats, default 1.0
        Domain length along each spatial axis (a scalar applies to every axis). The discrete
        operator scales as 1/h², so u has the units of f·length².
    bc : {"dirichlet", "periodic"} or sequence of d of them, default "dirichlet"
        Homogeneous Dirichlet: interior nodes x_i = i·L/(n+1), i = 1..n, u = 0 on the
        boundary. Periodic: nodes x_i = i·L/n, i = 0..n−1. Axes may mix the two.
    dim : int, optional
        Number of trailing spatial axes (1..3); default ``f.ndim``.
    workers : int, optional
        Threads for ``scipy.fft``; default: all available cores for grids of at least 2^15
        nodes, one thread below. Pass 1 inside a process pool that already uses every core.

    Returns
    -------
    u : same kind as f, shape (..., n_1, ..., n_d)
        The discrete solution: a float64 NumPy array for array input, a tensor on f's device
        with f's floating dtype for torch input (computed in float64 on the CPU). If every
        axis is periodic, the zero-mean solution.

    Raises
    ------
    ValueError
        Bad ``dim``, ``lengths``, ``bc`` or ``workers``; NaN/Inf in f; a fully periodic source
        whose mean is not zero (relative to max|f|: 1e-10 for float64 data, 1000·eps for lower
        precision) — subtract the mean first.

    Notes
    -----
    Dirichlet axes are diagonalised by DST-I (``scipy.fft.dstn``, exact inverse ``idstn``),
    periodic axes by ``rfftn``; the eigenvalues are (4/h²)·sin²(πk/(2(n+1))) and
    (4/h²)·sin²(πk/n) summed over axes. Second-order accurate (observed orders 1.97–2.06,
    ``tests/test_poisson.py``).
    """
    eps = st.input_eps(f)
    arr, back = st.to_numpy(f, "f")
    d = st.check_dim(arr.ndim, dim, "f")
    shape = st.check_spatial_shape(arr.shape[arr.ndim - d:], "f")
    lens = st.normalize_lengths(lengths, d)
    bcs = st.normalize_bc(bc, d)
    nworkers = st.fft_workers(math.prod(shape), workers)
    st.check_finite(arr, "f")
    if arr.size == 0:
        u = np.zeros(arr.shape)
        return back(u) if back else u
    if all(b == "periodic" for b in bcs):
        _check_zero_mean(arr, d, eps)

    inv = _inverse_symbol(shape, lens, bcs)
    axes = [arr.ndim - d + k for k in range(d)]
    dst_axes = [ax for ax, b in zip(axes, bcs, strict=True) if b == "dirichlet"]
    fft_axes = [ax for ax, b in zip(axes, bcs, strict=True) if b == "periodic"]

    if dst_axes:
        g = sfft.dstn(arr, type=1, axes=dst_axes, workers=nworkers)
    else:
        g = arr  # rfftn below does not write to its input
    if fft_axes:
        gh = sfft.rfftn(g, axes=fft_axes, workers=nworkers)
        gh *= inv
        g = sfft.irfftn(gh, s=[arr.shape[ax] for ax in fft_axes], axes=fft_axes,
                        workers=nworkers, overwrite_x=True)
    else:
        g *= inv
    if dst_axes:
        g = sfft.idstn(g, type=1, axes=dst_axes, workers=nworkers, overwrite_x=True)
    return back(g) if back else g


def laplacian(shape: int | Sequence[int], lengths: float | Sequence[float] = 1.0,
              bc: str | Sequence[str] = "dirichlet") -> sp.csr_matrix:
    """Sparse matrix of the (2d+1)-point negative Laplacian −Δ_h that :func:`solve` inverts.

    Parameters
    ----------
    shape : int or sequence of d ints
        Spatial grid shape (n_1, ..., n_d), d = 1..3; an int means 1-D.
    lengths, bc
        As in :func:`solve`.

    Returns
    -------
    scipy.sparse.csr_matrix, shape (N, N), N = n_1·…·n_d
        Unknowns in row-major order (``u.ravel()``, last axis fastest). Symmetric; positive
        definite unless every axis is periodic (then positive semi-definite, kernel = constants).
    """
    shape_t, d = _grid_shape(shape)
    return st.kron_sum_laplacian(shape_t, st.normalize_lengths(lengths, d), st.normalize_bc(bc, d))
