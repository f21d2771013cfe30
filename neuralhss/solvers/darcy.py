"""Darcy flow −∇·(a∇u) = f with homogeneous Dirichlet data, second-order finite volumes.

Discretisation
--------------
a, f and u live on the interior nodes of the package grid (neuralhss.grid), the same grid as
:mod:`neuralhss.solvers.poisson` with Dirichlet axes: x_i = i·L/(n+1), i = 1..n, spacing
h = L/(n+1) per axis; u = 0 on the boundary (not stored). The flux form::

    (A u)_i = Σ_k [ a_{i+½e_k} (u_i − u_{i+e_k}) + a_{i−½e_k} (u_i − u_{i−e_k}) ] / h_k²

uses on each cell face between two interior nodes the harmonic mean 2 a_i a_j / (a_i + a_j)
of the two node values (the exact face coefficient of a 1-D layered medium, and the right
average for the piecewise-constant coefficients of the classic benchmark). A face between
an interior node and the boundary takes the value of its interior neighbour, since a is not
known on the boundary; this is a first-order coefficient error confined to one layer of
nodes, which leaves the global error second order (validated below) but, where a varies
steeply at the boundary, enlarges the error constant and delays the asymptotic regime
(for a = 1 + ½ sin(2π Σx_k/L_k + 0.3) on [0,1]×[0,2] the observed orders are 1.73, 1.87,
1.93 for n = 15→127, against 1.96–1.99 with exact boundary-face values). A is symmetric
positive definite (an M-matrix) for a > 0. With a ≡ 1 it is exactly the Poisson operator.

Validated accuracy: observed orders 1.91–1.99 in 1-D, 2-D and 3-D for a smoothly varying
a(x) = 1 + ½ sin(π Σx_k/L_k + 1) (``tests/test_darcy.py``, manufactured solutions, max-norm
error, four grids).

Solvers: sparse direct (SuperLU) for small systems; conjugate gradients preconditioned by
one algebraic-multigrid V-cycle (pyamg) for large ones; or conjugate gradients
preconditioned by the constant-coefficient Poisson solve (DST, "spectral"), whose iteration
count depends only on the contrast max a / min a, not on the grid. The relative residual
‖f − A u‖₂/‖f‖₂ is computed after every solve and reported. Speed
(``benchmarks/bench_darcy.py``): 2-D 256² and 3-D 64³ against plain CG on the same system.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as sla

from . import _stencils as st
from . import poisson

__all__ = ["SolveInfo", "solve", "operator"]

METHODS = ("auto", "direct", "amg", "spectral")

#: ``method="auto"`` uses the sparse direct solver up to this many unknowns in 2-D and up to
#: ``AUTO_DIRECT_MAX_3D`` in 3-D (where fill-in grows faster), AMG-CG above; 1-D systems are
#: tridiagonal and always solved directly. The crossovers are where the measured times of
#: the two (thresholded-GRF coefficient, rtol 1e-10, set-up included; ``benchmarks/
#: bench_darcy.py``) cross: between 96² and 128² in 2-D, between 12³ and 16³ in 3-D.
AUTO_DIRECT_MAX_2D = 10_000
AUTO_DIRECT_MAX_3D = 2_000

#: In 3-D, ``method="auto"`` uses the spectral preconditioner when max(a)/min(a) is at most
#: this, AMG above: CG iterations grow like the square root of the contrast (24 at contrast 4,
#: 97 at 100 for 64³) while the AMG set-up in 3-D is costly. At 64³ the spectral
#: preconditioner is several times faster at contrast 4 and the two are about even at contrast
#: 100 (``benchmarks/bench_darcy.py``). In 2-D the AMG set-up is cheap and AMG-CG wins at every
#: contrast.
AUTO_SPECTRAL_MAX_CONTRAST = 30.0

#: Iteration cap of preconditioned CG. AMG needs 10-20 iterations; the spectral
#: preconditioner at most ½·sqrt(max a / min a)·ln(2/rtol) by the CG bound, and in practice
#: far fewer (measured at rtol 1e-10: 24 at contrast 4, 71-97 at 100, 129-197 at 1e4).
PCG_MAXITER = 1000


@dataclasses.dataclass(frozen=True)
class SolveInfo:
    """What a Darcy solve did.

    Attributes
    ----------
    method : str
        ``"direct"``, ``"amg"`` or ``"spectral"``: the method actually used (``"auto"``
        resolved); methods of a batch that used several are joined by ``"+"``.
    iterations : int
        CG iterations (0 for the direct solver); the maximum over a batch.
    residual : float
        Relative residual ‖f − A u‖₂/‖f‖₂ recomputed from the returned u (0 when f = 0); the
        maximum over a batch.
    seconds : float
        Wall time of the whole call, assembly and set-up included.
    """

    method: str
    iterations: int
    residual: float
    seconds: float


def _check_coefficient(a: np.ndarray, name: str = "a") -> None:
    st.check_finite(a, name)
    if a.size and not (a.min() > 0):
        raise ValueError(f"{name} must be strictly positive everywhere (min {a.min():.3g}); "
                         f"clip or transform it, e.g. a = exp(field) or np.maximum(a, a_min).")


def _assemble(a: np.ndarray, lengths: Sequence[float]) -> sp.csr_matrix:
    """Sparse SPD matrix for one coefficient array ``a`` of spatial shape (n_1, ..., n_d)."""
    shape = a.shape
    d = a.ndim
    n = a.size
    index = np.arange(n, dtype=np.int64).reshape(shape)
    diag = np.zeros(shape)
    rows, cols, vals = [], [], []
    for k in range(d):
        w = 1.0 / st.spacing(shape[k], lengths[k], "dirichlet") ** 2
        lo = (slice(None),) * k + (slice(None, -1),)
        hi = (slice(None),) * k + (slice(1, None),)
        a_lo, a_hi = a[lo], a[hi]
        # Written as 2·a_lo·(a_hi/(a_lo + a_hi)) so that huge coefficients do not overflow.
        face = (2.0 * w) * a_lo * (a_hi / (a_lo + a_hi))
        diag[lo] += face
        diag[hi] += face
        first = (slice(None),) * k + (slice(0, 1),)
        last = (slice(None),) * k + (slice(-1, None),)
        diag[first] += w * a[first]
        diag[last] += w * a[last]
        i_lo, i_hi, v = index[lo].ravel(), index[hi].ravel(), -face.ravel()
        rows += [i_lo, i_hi]
        cols += [i_hi, i_lo]
        vals += [v, v]
    rows.append(index.ravel())
    cols.append(index.ravel())
    vals.append(diag.ravel())
    idx_dtype = np.int32 if n < 2**31 - 1 else np.int64
    mat = sp.coo_matrix((np.concatenate(vals),
                         (np.concatenate(rows).astype(idx_dtype),
                          np.concatenate(cols).astype(idx_dtype))), shape=(n, n)).tocsr()
    mat.sort_indices()
    return mat


def operator(a: Any, lengths: float | Sequence[float] = 1.0) -> sp.csr_matrix:
    """Sparse matrix A of −∇·(a∇·) that :func:`solve` inverts.

    Parameters
    ----------
    a : array_like or torch.Tensor, shape (n_1, ..., n_d), d = 1..3, no batch axes
        Strictly positive coefficient at the interior nodes x_i = i·L/(n+1).
    lengths : float or sequence of d floats, default 1.0
        Domain length per axis.

    Returns
    -------
    scipy.sparse.csr_matrix, shape (N, N), N = n_1·…·n_d
        Symmetric positive definite; unknowns in row-major order (``u.ravel()``).
    """
    arr, _ = st.to_numpy(a, "a")
    d = st.check_dim(arr.ndim, None, "a")
    st.check_spatial_shape(arr.shape, "a")
    lens = st.normalize_lengths(lengths, d)
    _check_coefficient(arr)
    return _assemble(arr, lens)


def _resolve_method(method: str, a: np.ndarray) -> str:
    if method != "auto":
        return method
    if a.ndim == 1:
        return "direct"
    limit = AUTO_DIRECT_MAX_3D if a.ndim >= 3 else AUTO_DIRECT_MAX_2D
    if a.size <= limit:
        return "direct"
    if a.ndim >= 3 and a.max() <= AUTO_SPECTRAL_MAX_CONTRAST * a.min():
        return "spectral"
    return "amg"


class _Factorised:
    """One operator, prepared once and applied to every right-hand side that shares it."""

    def __init__(self, a: np.ndarray, lengths: Sequence[float], method: str,
                 rtol: float, workers: int | None = None) -> None:
        self.mat = _assemble(a, lengths)
        self.method = _resolve_method(method, a)
        self.rtol = rtol
        self.abs_mat: sp.csr_matrix | None = None
        if self.method == "direct":
            # Natural-order SuperLU would fill in badly; COLAMD is SuperLU's best generic choice
            # for these grid matrices.
            self.lu = sla.splu(self.mat.tocsc(), permc_spec="COLAMD")
        elif self.method == "amg":
            import pyamg

            # Classical Ruge-Stüben AMG needs fewer CG iterations than smoothed aggregation
            # on these M-matrices, and set-up + solve time was a tie at 256² and 64³
            # (thresholded-GRF coefficient).
            self.ml = pyamg.ruge_stuben_solver(self.mat)
            self.precond = self._vcycle
        else:
            # Every face coefficient lies in [min a, max a], so the Rayleigh quotients of A and
            # of the Laplacian differ by a factor in that range: κ(M⁻¹A) ≤ max a / min a,
            # independent of the grid. The geometric mean centres the spectrum on 1.
            shape, lens = a.shape, tuple(lengths)
            scale = 1.0 / math.sqrt(float(a.max()) * float(a.min()))

            def precond(r: np.ndarray) -> np.ndarray:
                return poisson.solve(r.reshape(shape), lengths=lens, workers=workers).ravel() * scale

            self.precond = precond

    def _vcycle(self, b: np.ndarray, lvl: int = 0) -> np.ndarray:
        """One V(1,1)-cycle from a zero initial guess: the (symmetric) preconditioner M⁻¹b."""
        # pyamg's own preconditioner wraps this cycle in residual-norm bookkeeping that goes
        # through threaded BLAS; the cycle itself is sparse products and C++ smoothers only.
        levels = self.ml.levels
        level = levels[lvl]
        if lvl == len(levels) - 1:
            return np.asarray(self.ml.coarse_solver(level.A, b)).reshape(b.shape)
        x = np.zeros_like(b)
        level.presmoother(level.A, x, b)
        x += level.P @ self._vcycle(level.R @ (b - level.A @ x), lvl + 1)
        level.postsmoother(level.A, x, b)
        return x

    def _pcg(self, b: np.ndarray, x: np.ndarray, tol: float) -> tuple[np.ndarray, int]:
        """Preconditioned CG until ‖r‖₂ ≤ tol (recursively updated residual)."""
        r = b - self.mat @ x
        rr = _dot(r, r)
        if math.sqrt(rr) <= tol:
            return x, 0
        z = self.precond(r)
        p = z.copy()
        rz = _dot(r, z)
        for it in range(1, PCG_MAXITER + 1):
            ap = self.mat @ p
            alpha = rz / _dot(p, ap)
            x += alpha * p
            r -= alpha * ap
            if math.sqrt(_dot(r, r)) <= tol:
                return x, it
            z = self.precond(r)
            rz_new = _dot(r, z)
            p *= rz_new / rz
            p += z
            rz = rz_new
        return x, PCG_MAXITER

    def _residual(self, b: np.ndarray, x: np.ndarray, bnorm: float) -> tuple[float, float]:
        """True relative residual, and the round-off floor below which it cannot be resolved."""
        res = _norm(b - self.mat @ x) / bnorm
        # Forming b − A x in floating point has an error of about eps·(|A| |x|) per entry, so a
        # residual below this is noise; fine grids (large ‖A‖) reach it before a tight rtol.
        if self.abs_mat is None:
            self.abs_mat = abs(self.mat)
        floor = 16.0 * np.finfo(float).eps * _norm(self.abs_mat @ np.abs(x)) / bnorm
        return res, floor

    def solve(self, b: np.ndarray) -> tuple[np.ndarray, int, float]:
        bnorm = _norm(b)
        if bnorm == 0.0:
            return np.zeros_like(b), 0, 0.0
        if self.method == "direct":
            x = self.lu.solve(b)
            if _norm(b - self.mat @ x) > self.rtol * bnorm:
                # One step of iterative refinement recovers full accuracy when pivoting
                # growth cost a few digits (very high-contrast coefficients).
                x += self.lu.solve(b - self.mat @ x)
            iterations = 0
        else:
            # Aim below rtol: the recursively updated residual drifts from the true one by a
            # few ulps·cond(A), and the reported figure is the true residual.
            x, iterations = self._pcg(b, np.zeros_like(b), 0.5 * self.rtol * bnorm)
            if _norm(b - self.mat @ x) > self.rtol * bnorm:
                x, more = self._pcg(b, x, 0.1 * self.rtol * bnorm)
                iterations += more
        res, floor = self._residual(b, x, bnorm)
        if res > max(self.rtol, floor):
            raise RuntimeError(
                f"{self.method} solve stopped at relative residual {res:.3g} > rtol={self.rtol:g} "
                f"(round-off floor {floor:.1g}, {iterations} iterations); try "
                f"method='amg' (high contrast), method='direct' (small grids) or a larger rtol.")
        return x, iterations, res


def _dot(x: np.ndarray, y: np.ndarray) -> float:
    # einsum's own loop instead of BLAS: multithreaded BLAS on vectors of this size gains
    # nothing and, when several solver processes share the cores (dataset generation with
    # workers), thread contention made each dot ~80x slower (measured 1.8 ms vs 23 us at 65k).
    return float(np.einsum("i,i->", x, y))


def _norm(x: np.ndarray) -> float:
    return math.sqrt(_dot(x, x))


@st.call_shape(3, ("dim", "method", "rtol", "return_info"))
def solve(a: Any, f: Any, lengths: float | Sequence[float] = 1.0, *, dim: int | None = None,
          method: str = "auto", rtol: float = 1e-10, return_info: bool = False,
          workers: int | None = None) -> Any:
    """Solve −∇·(a∇u) = f with u = 0 on the boundary, d = 1, 2 or 3.

    Fields and physical parameters are positional, numerical options keyword-only (the
    package's ``solve`` shape). Until 0.2 the options after ``lengths`` are still accepted by position,
    with a ``DeprecationWarning``.

    Parameters
    ----------
    a : array_like or torch.Tensor, shape (..., n_1, ..., n_d)
        Strictly positive, finite coefficient (permeability) at the interior nodes
        x_i = i·L/(n+1), i = 1..n, of every axis. Leading axes are a batch.
    f : array_like, torch.Tensor or float, shape (..., n_1, ..., n_d)
        Source at the same nodes, or a scalar for a constant source (the classic benchmark
        uses f = 1). The batch axes of a and f broadcast against each other.
    lengths : float or sequence of d floats, default 1.0
        Domain length per axis. u has the units of f·length²/a.
    dim : int, optional
        Number of trailing spatial axes (1..3); default ``a.ndim``.
    method : {"auto", "direct", "amg", "spectral"}, default "auto"
        "direct": sparse LU (SuperLU, COLAMD ordering). "amg": conjugate gradients
        preconditioned by a Ruge–Stüben AMG V-cycle (pyamg). "spectral": conjugate gradients
        preconditioned by the Poisson solve (DST-I), κ ≤ max a / min a, so its iterations
        grow like sqrt(contrast) and do not grow with the grid. "auto": always direct in 1-D,
        direct up to ``AUTO_DIRECT_MAX_2D`` (10 000) unknowns in 2-D and
        ``AUTO_DIRECT_MAX_3D`` (2 000) in 3-D; above, AMG-CG in 2-D, and in 3-D spectral
        when max a ≤ ``AUTO_SPECTRAL_MAX_CONTRAST`` (30) · min a, else AMG-CG (crossovers
        from ``benchmarks/bench_darcy.py``).
    rtol : float, default 1e-10
        Required relative residual ‖f − A u‖₂/‖f‖₂, in (0, 1).
    return_info : bool, default False
        Also return a :class:`SolveInfo`.
    workers : int, optional
        Threads for the ``scipy.fft`` transforms of the "spectral" preconditioner (default as
        in :func:`neuralhss.solvers.poisson.solve`); the other methods do not use threads.

    Returns
    -------
    u : same kind as a (or f if only f is a tensor), shape (..., n_1, ..., n_d)
        float64 NumPy array, or a tensor on the input's device and floating dtype.
    info : SolveInfo
        Only with ``return_info=True``; residual and iterations are the worst over a batch.

    Raises
    ------
    ValueError
        Spatial shapes of a and f differ, batch axes do not broadcast, bad ``dim``,
        ``lengths``, ``method``, ``rtol`` or ``workers``, NaN/Inf in a or f, a ≤ 0 anywhere.
    RuntimeError
        CG hit its iteration cap, or the residual stayed above both ``rtol`` and its round-off
        floor 16·eps·‖|A||u|‖/‖f‖ (not seen in practice; on very fine grids the floor, which is what
        ``info.residual`` then reports, can exceed a tight rtol such as 1e-12).

    Notes
    -----
    Harmonic-mean face coefficients; faces on the boundary use the interior node's value.
    Second-order accurate for smooth a (observed orders 1.91–1.99 in 1-D/2-D/3-D,
    ``tests/test_darcy.py``). With a batch of f and a single a, the operator is assembled and
    factorised (or its AMG hierarchy built) once. The CG loops take their inner products
    without BLAS, so that several solver processes sharing the cores do not stall on BLAS
    thread contention.
    """
    t0 = time.perf_counter()
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}.")
    if isinstance(rtol, bool) or not isinstance(rtol, (int, float, np.floating)) \
            or not (0.0 < float(rtol) < 1.0):
        raise ValueError(f"rtol must be a number in (0, 1), e.g. 1e-10; got {rtol!r}.")
    rtol = float(rtol)

    a_arr, back_a = st.to_numpy(a, "a")
    d = st.check_dim(a_arr.ndim, dim, "a")
    shape = st.check_spatial_shape(a_arr.shape[a_arr.ndim - d:], "a")
    lens = st.normalize_lengths(lengths, d)
    st.fft_workers(math.prod(shape), workers)  # refuse a bad value whatever the method

    f_arr, back_f = st.to_numpy(f, "f")
    back: Callable[[np.ndarray], Any] | None = back_a if back_a is not None else back_f
    st.check_finite(f_arr, "f")
    if f_arr.ndim == 0:
        f_arr = np.broadcast_to(f_arr, shape)
    elif f_arr.ndim < d or f_arr.shape[f_arr.ndim - d:] != shape:
        raise ValueError(f"f must be a scalar or have the spatial shape of a {shape} in its "
                         f"last {d} axes; got shape {f_arr.shape}.")
    _check_coefficient(a_arr)

    iterations, residual = 0, 0.0
    used: set[str] = set()

    def prepare(a_field: np.ndarray) -> _Factorised:
        prepared = _Factorised(a_field, lens, method, rtol, workers)
        used.add(prepared.method)
        return prepared

    def solve(prepared: _Factorised, rhs: np.ndarray) -> np.ndarray:
        nonlocal iterations, residual
        x, it, res = prepared.solve(np.ascontiguousarray(rhs))
        iterations, residual = max(iterations, it), max(residual, res)
        return x

    u = st.solve_per_coefficient(a_arr, f_arr, d, prepare, solve, ("a", "f"))
    out = back(u) if back is not None else u
    if return_info:
        # An empty batch solved nothing; report what a constant coefficient would have used.
        chosen = "+".join(sorted(used)) if used else _resolve_method(method, np.ones(shape))
        return out, SolveInfo(chosen, iterations, residual, time.perf_counter() - t0)
    return out
