"""2-D incompressible Navier–Stokes in vorticity–streamfunction form on a periodic box.

Equations and sign convention
-----------------------------
::

    ∂t w + J(ψ, w) = ν Δw + f,      −Δψ = w,      u = ∂yψ,  v = −∂xψ,

with w = ∂x v − ∂y u the vorticity (positive for counter-clockwise rotation in the (x, y)
plane), (u, v) the velocity along (x, y) and

    J(ψ, w) = ∂yψ ∂xw − ∂xψ ∂yw = u·∇w = −∂(ψ, w)/∂(x, y),

the advection term (minus the Jacobian determinant ∂(ψ, w)/∂(x, y) of Arakawa's paper).

Grid
----
Fully periodic rectangle [0, Lx) × [0, Ly) on the package grid (neuralhss.grid): nodes
x_i = i·Lx/nx, i = 0..nx−1 and y_j = j·Ly/ny, j = 0..ny−1, spacings hx = Lx/nx, hy = Ly/ny.
Arrays are ``(..., nx, ny)`` in the package's axis convention: axis −2 is x, axis −1 is y
(``w[..., i, j]`` is the value at (x_i, y_j)), leading axes are a batch. ``lengths`` is ``L``
(both axes) or ``(Lx, Ly)`` in axis order.

Discretisation
--------------
* Advection: Arakawa's (1966) Jacobian J_A = (J⁺⁺ + J⁺ˣ + Jˣ⁺)/3, the average of the
  centred 9-point discretisations of the three analytically equal forms ψ_y w_x − ψ_x w_y,
  ∂x(w ψ_y) − ∂y(w ψ_x) and ∂y(ψ w_x) − ∂x(ψ w_y). It is second-order accurate and, for
  every periodic ψ and w, satisfies Σ J_A = Σ ψ J_A = Σ w J_A = 0 exactly (to round-off), so
  the semi-discrete inviscid, unforced flow conserves the mean vorticity, the energy
  E = ½ Σ ψ w hx hy and the enstrophy Z = ½ Σ w² hx hy.
* Diffusion: the 5-point Laplacian Δ_h.
* Streamfunction: ψ = (−Δ_h)⁻¹ w, the exact inverse of the same 5-point Laplacian, by a real
  2-D FFT (eigenvalues (4/hx²) sin²(πk/nx) + (4/hy²) sin²(πl/ny)); its mean mode is set to 0.
  Hence E = ½ Σ ψ (−Δ_h ψ) hx hy = ½ Σ (|D⁺x ψ|² + |D⁺y ψ|²) hx hy (forward differences).
* Time: the three-stage, third-order strong-stability-preserving Runge–Kutta method of Shu
  and Osher (SSP-RK3). Its stability region contains the diamond |Re z|/2.513 + |Im z|/√3 ≤ 1
  (2.513: real root of 1 + z + z²/2 + z³/6 = −1; checked numerically), and the
  frozen-coefficient spectrum of the Arakawa/5-point operator times dt lies inside it when

      S = C/√3 + D/2.513 ≤ 1,   C = dt·max(|u|/hx + |v|/hy),   D = dt·4ν(1/hx² + 1/hy²)

  (C the Courant number, u, v central differences of ψ; D the diffusion number). The
  adaptive step (``dt=None``) is dt = cfl·dt_S with dt_S the step at which S = 1, recomputed
  every step from the state at its start, separately for each sample of a batch (so a
  sample's result does not depend on the batch it was solved in), capped with forcing so
  that the velocity gained in one step has Courant number ≤ cfl, and shortened to equal
  steps that land exactly on the snapshot times. A fixed ``dt`` is checked against S ≤ 1
  for w0 (ValueError) and at every step (FloatingPointError if the flow has sped up).

Validated accuracy (``tests/test_navier_stokes.py``, box Lx × Ly = 2 × 1)
------------------------------------------------------------------------
* Taylor–Green vortex: J = 0 in the continuum, and J_A of the discrete fields vanishes to
  round-off (3e-17 relative) because ψ_h is a multiple of w_h (an eigenvector of −Δ_h). The
  discrete mode therefore decays exactly by the SSP-RK3 factor R(−νλ_h dt) per step, i.e. as
  exp(−νλ_h t) up to the time error, with λ_h = Σ (4/h²) sin²(kh/2) → Σ k² at second order.
  Max-norm error against the exact solution at T = 1 (ν = 0.01, dt = 0.005), 16²/32²/64²:
  6.3e-3, 1.6e-3, 4.0e-4 relative, observed orders 2.00 and 2.00.
* Arakawa Jacobian against the analytic J for smooth non-trivial ψ, w, 32²/64²/128²: orders
  1.95 and 1.99; velocity and energy of Taylor–Green: orders 2.00.
* Σ J_A, Σ ψ J_A and Σ w J_A vanish to ~1e-17 relative for random fields. With ν = 0, f = 0
  energy and enstrophy drift only by the SSP-RK3 time error (a loss), which falls at third
  order in dt (observed 2.94–3.00); ~1e-8 (energy) and ~1e-7 (enstrophy) relative over 32
  steps at cfl = 0.1.
* At the default cfl = 0.5 the time error is ~1/100 of the space error: 9.4e-4 vs 0.13 at
  32², 1.3e-4 vs 0.03 at 64² (forced, ν = 1e-3, peak |w| ≈ 15, T = 0.5; space error against
  128²). For a typical FNO-benchmark sample (64², ν = 1e-3, T = 10) the step is
  diffusion-limited and the time error is 3e-8.

Speed (``benchmarks/bench_navier_stokes.py``, 2 shared cores under load, medians): one
SSP-RK3 step takes 1.4 ms at 64² and 17 ms at 256², half the time of the same scheme written
with ``np.roll`` copies; the three stages' FFTs are ~20 % of it. A typical sample (64²,
ν = 1e-3, Li et al. forcing, T = 10, default cfl) takes ~380 steps, 0.8 s.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.fft as sfft

from .._checks import check_number
from ..grid import Grid
from . import _stencils as st
from . import poisson

__all__ = ["SolveInfo", "solve", "jacobian", "streamfunction", "velocity", "energy", "enstrophy",
           "taylor_green", "li_forcing", "FORCINGS"]

#: Named forcings accepted by :func:`solve` (see :func:`li_forcing`).
FORCINGS = ("li",)

#: Default fraction of the SSP-RK3 stability limit taken by the adaptive step (module docstring):
#: Courant number 0.87 when advection limits the step, diffusion number 1.26 when diffusion does.
DEFAULT_CFL = 0.5

#: SSP-RK3 stability limits: along the imaginary axis √3, along the negative real axis the real
#: root of 1 + z + z²/2 + z³/6 = −1.
RK3_IMAG_LIMIT = math.sqrt(3.0)
RK3_REAL_LIMIT = 2.5127453266183286

#: Relative tolerance of the zero-mean test of w0 and f (float64 data; lower precision gets
#: 1000·eps of its dtype), the same as for the periodic Poisson solve.
ZERO_MEAN_RTOL = poisson.ZERO_MEAN_RTOL


@dataclasses.dataclass(frozen=True)
class SolveInfo:
    """What a Navier–Stokes solve did.

    Attributes
    ----------
    times : ndarray, shape (n_snapshots,)
        Snapshot times t_k = k·T/n_snapshots, k = 1..n_snapshots.
    steps : ndarray of int, shape (...)
        Number of SSP-RK3 steps per sample (batch shape of w0; 0-d for a single field).
    dt_min, dt_max : float
        Smallest and largest step taken over the batch (the fixed step if ``dt`` was given;
        the last step before a snapshot may be shorter with adaptive stepping).
    fixed_dt : bool
        Whether the caller fixed ``dt``.
    energy0, enstrophy0 : ndarray, shape (...)
        Energy and enstrophy (:func:`energy`, :func:`enstrophy`) of w0.
    energy, enstrophy : ndarray, shape (..., n_snapshots)
        The same at every snapshot.
    seconds : float
        Wall time of the call.
    """

    times: np.ndarray
    steps: np.ndarray
    dt_min: float
    dt_max: float
    fixed_dt: bool
    energy0: np.ndarray
    enstrophy0: np.ndarray
    energy: np.ndarray
    enstrophy: np.ndarray
    seconds: float


# ---------------------------------------------------------------------------------------------
# grid helpers


def _check_field(w: np.ndarray, name: str) -> tuple[int, int]:
    if w.ndim < 2:
        raise ValueError(f"{name} must have at least 2 axes (..., nx, ny); got shape {w.shape}.")
    nx, ny = w.shape[-2:]
    if nx < 3 or ny < 3:
        raise ValueError(f"{name} needs at least 3 nodes per spatial axis; got spatial shape "
                         f"{(nx, ny)}.")
    return nx, ny


def _spacings(shape: tuple[int, int], lengths: Any) -> tuple[float, float, tuple[float, float]]:
    lens = st.normalize_lengths(lengths, 2)
    return lens[0] / shape[0], lens[1] / shape[1], (lens[0], lens[1])


def _pad(a: np.ndarray) -> np.ndarray:
    """Periodic extension by one node on each side of the last two axes."""
    nx, ny = a.shape[-2:]
    p = np.empty(a.shape[:-2] + (nx + 2, ny + 2))
    p[..., 1:-1, 1:-1] = a
    p[..., 0, 1:-1] = a[..., -1, :]
    p[..., -1, 1:-1] = a[..., 0, :]
    p[..., :, 0] = p[..., :, -2]
    p[..., :, -1] = p[..., :, 1]
    return p


def _psi(w: np.ndarray, lens: tuple[float, float], workers: int) -> np.ndarray:
    inv = poisson.symbol(w.shape[-2:], lens, "periodic", inverse=True)
    wh = sfft.rfft2(w, workers=workers)
    wh *= inv
    return sfft.irfft2(wh, s=w.shape[-2:], workers=workers, overwrite_x=True)


def _arakawa(P: np.ndarray, Q: np.ndarray, hx: float, hy: float,
             want_rate: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Arakawa's J(ψ, w) = ψ_y w_x − ψ_x w_y from the periodically padded ψ (P) and w (Q).

    x is axis −2, y axis −1. Returns it and, if ``want_rate``, max(|u|/hx + |v|/hy) over the
    last two axes (central differences of ψ), the Courant rate.
    """
    c = slice(1, -1)
    dyp = P[..., :, 2:] - P[..., :, :-2]  # 2hy·ψ_y on rows i = −1..nx
    dxp = P[..., 2:, :] - P[..., :-2, :]  # 2hx·ψ_x on columns j = −1..ny
    dyw = Q[..., :, 2:] - Q[..., :, :-2]
    dxw = Q[..., 2:, :] - Q[..., :-2, :]
    rate = None
    if want_rate:
        speed = np.abs(dyp[..., c, :])
        speed += np.abs(dxp[..., :, c])
        rate = speed.max(axis=(-2, -1)) / (2.0 * hy * hx)
    # J⁺⁺: ψ_y w_x − ψ_x w_y
    j = dyp[..., c, :] * dxw[..., :, c]
    j -= dxp[..., :, c] * dyw[..., c, :]
    # J⁺ˣ: ∂x(w ψ_y) − ∂y(w ψ_x)
    j += Q[..., 2:, c] * dyp[..., 2:, :]
    j -= Q[..., :-2, c] * dyp[..., :-2, :]
    j -= Q[..., c, 2:] * dxp[..., :, 2:]
    j += Q[..., c, :-2] * dxp[..., :, :-2]
    # Jˣ⁺: ∂y(ψ w_x) − ∂x(ψ w_y)
    j += P[..., c, 2:] * dxw[..., :, 2:]
    j -= P[..., c, :-2] * dxw[..., :, :-2]
    j -= P[..., 2:, c] * dyw[..., 2:, :]
    j += P[..., :-2, c] * dyw[..., :-2, :]
    j *= 1.0 / (12.0 * hy * hx)
    return j, rate


def _courant_rate(psi: np.ndarray, hx: float, hy: float) -> np.ndarray:
    """max(|u|/hx + |v|/hy) over the last two axes, u, v by central differences of ψ."""
    P = _pad(psi)
    speed = np.abs(P[..., 1:-1, 2:] - P[..., 1:-1, :-2])
    speed += np.abs(P[..., 2:, 1:-1] - P[..., :-2, 1:-1])
    return speed.max(axis=(-2, -1)) / (2.0 * hy * hx)


def _check_zero_mean(a: np.ndarray, name: str, eps: float, fix: str) -> None:
    mean = a.mean(axis=(-2, -1))
    scale = np.abs(a).max(axis=(-2, -1))
    rtol = max(ZERO_MEAN_RTOL, 1000.0 * eps)
    bad = np.abs(mean) > rtol * scale
    if np.any(bad):
        worst = float(np.max(np.abs(mean) / np.where(scale > 0, scale, 1.0)))
        raise ValueError(f"{name} must have zero mean over the periodic grid ({fix}); "
                         f"|mean|/max|{name}| = {worst:.3g} > {rtol:.0e} in "
                         f"{int(np.count_nonzero(bad))} sample(s): pass "
                         f"{name} - {name}.mean(axis=(-2, -1), keepdims=True).")


# ---------------------------------------------------------------------------------------------
# public diagnostics


def _vorticity_input(w: Any, lengths: Any):
    """Validated float64 vorticity, its converter back, and (hx, hy, (Lx, Ly)) of its grid."""
    arr, back = st.to_numpy(w, "w")
    shape = _check_field(arr, "w")
    st.check_finite(arr, "w")
    return arr, back, _spacings(shape, lengths)


def jacobian(psi: Any, w: Any, lengths: float | Sequence[float] = 1.0) -> Any:
    """Arakawa's energy- and enstrophy-conserving discretisation of J(ψ, w) = u·∇w.

    Parameters
    ----------
    psi, w : array_like or torch.Tensor, shape (..., nx, ny)
        Periodic fields at the grid nodes (axis −2 is x, axis −1 is y); leading axes
        broadcast.
    lengths : float or (Lx, Ly), default 1.0
        Domain lengths in axis order.

    Returns
    -------
    J : same kind as w, shape broadcast(psi, w).shape
        J_A(ψ, w) ≈ ∂yψ ∂xw − ∂xψ ∂yw = u·∇w, the term that :func:`solve` has on the
        left-hand side (−∂(ψ, w)/∂(x, y) in Arakawa's notation). Second-order accurate; for every ψ, w
        Σ J = Σ ψ J = Σ w J = 0 to round-off.
    """
    p, _ = st.to_numpy(psi, "psi")
    q, back = st.to_numpy(w, "w")
    _check_field(p, "psi")
    _check_field(q, "w")
    if p.shape[-2:] != q.shape[-2:]:
        raise ValueError(f"psi and w must share the spatial shape; got {p.shape} and {q.shape}.")
    p, q = np.broadcast_arrays(p, q)
    hx, hy, _ = _spacings(q.shape[-2:], lengths)
    j, _ = _arakawa(_pad(p), _pad(q), hx, hy, want_rate=False)
    return back(j) if back else j


def streamfunction(w: Any, lengths: float | Sequence[float] = 1.0, *,
                   workers: int | None = None) -> Any:
    """ψ = (−Δ_h)⁻¹ w with the 5-point Laplacian, zero-mean (the mean of w is ignored).

    Parameters
    ----------
    w : array_like or torch.Tensor, shape (..., nx, ny)
        Vorticity at the periodic grid nodes (axis −2 is x).
    lengths : float or (Lx, Ly), default 1.0
        Domain lengths in axis order.
    workers : int, optional
        Threads for ``scipy.fft`` (default as in :func:`neuralhss.solvers.poisson.solve`).

    Returns
    -------
    psi : same kind as w, shape (..., nx, ny)
        Units of w·length².
    """
    arr, back, (_, _, lens) = _vorticity_input(w, lengths)
    psi = _psi(arr, lens, st.fft_workers(math.prod(arr.shape[-2:]), workers))
    return back(psi) if back else psi


def velocity(w: Any, lengths: float | Sequence[float] = 1.0) -> tuple[Any, Any]:
    """Velocity (u, v) = (∂yψ, −∂xψ) of a vorticity field, central differences of ψ.

    Parameters
    ----------
    w : array_like or torch.Tensor, shape (..., nx, ny)
        Vorticity at the periodic grid nodes (axis −2 is x). Its mean induces no velocity on a
        periodic domain and is ignored.
    lengths : float or (Lx, Ly), default 1.0
        Domain lengths in axis order.

    Returns
    -------
    u, v : same kind as w, shape (..., nx, ny) each
        x-component (along axis −2) and y-component (along axis −1), units of w·length.
        Second-order accurate; these are the velocities the adaptive time step's Courant
        number is measured with.
    """
    arr, back, (hx, hy, lens) = _vorticity_input(w, lengths)
    P = _pad(_psi(arr, lens, st.fft_workers(math.prod(arr.shape[-2:]), None)))
    u = (P[..., 1:-1, 2:] - P[..., 1:-1, :-2]) / (2.0 * hy)
    v = (P[..., :-2, 1:-1] - P[..., 2:, 1:-1]) / (2.0 * hx)
    return (back(u), back(v)) if back else (u, v)


def energy(w: Any, lengths: float | Sequence[float] = 1.0) -> float | np.ndarray:
    """Discrete kinetic energy E = ½ Σ ψ w hx hy = ½ Σ (|D⁺x ψ|² + |D⁺y ψ|²) hx hy.

    The quantity the semi-discrete Arakawa scheme conserves when ν = 0 and f = 0; it
    approximates ½ ∫ |u|² dx dy at second order.

    Parameters
    ----------
    w : array_like or torch.Tensor, shape (..., nx, ny)
        Vorticity (axis −2 is x); its mean is ignored (ψ has zero mean).
    lengths : float or (Lx, Ly), default 1.0
        Domain lengths in axis order.

    Returns
    -------
    float or ndarray, shape (...)
        Units of w²·length⁴.
    """
    arr, _, (hx, hy, lens) = _vorticity_input(w, lengths)
    psi = _psi(arr, lens, st.fft_workers(math.prod(arr.shape[-2:]), None))
    e = 0.5 * hy * hx * np.einsum("...ij,...ij->...", psi, arr)
    return float(e) if e.ndim == 0 else e


def enstrophy(w: Any, lengths: float | Sequence[float] = 1.0) -> float | np.ndarray:
    """Discrete enstrophy Z = ½ Σ w² hx hy, conserved by the Arakawa scheme when ν = 0, f = 0.

    Parameters
    ----------
    w : array_like or torch.Tensor, shape (..., nx, ny)
        Vorticity (axis −2 is x).
    lengths : float or (Lx, Ly), default 1.0
        Domain lengths in axis order.

    Returns
    -------
    float or ndarray, shape (...)
        Units of w²·length².
    """
    arr, _, (hx, hy, _) = _vorticity_input(w, lengths)
    z = 0.5 * hy * hx * np.einsum("...ij,...ij->...", arr, arr)
    return float(z) if z.ndim == 0 else z


def _nodes(shape: Sequence[int], lengths: Any) -> tuple[np.ndarray, np.ndarray, float, float]:
    if (len(shape) != 2 or not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool)
                                   for n in shape) or min(shape) < 1):
        raise ValueError(f"shape must be two positive ints (nx, ny); got {shape!r}.")
    grid = Grid(tuple(shape), lengths, "periodic")
    x, y = grid.meshgrid()
    return x, y, grid.lengths[0], grid.lengths[1]


def taylor_green(shape: Sequence[int], lengths: float | Sequence[float] = 1.0, t: float = 0.0,
                 nu: float = 0.0) -> np.ndarray:
    """Exact vorticity of the decaying Taylor–Green vortex at the grid nodes.

    ψ = sin(kx x) sin(ky y) e^{−ν(kx²+ky²)t}/ky and w = −Δψ = (kx² + ky²) ψ with
    kx = 2π/Lx, ky = 2π/Ly, so that u = ∂yψ = sin(kx x) cos(ky y) e^{−ν(kx²+ky²)t} (peak
    speed 1 at t = 0). J(ψ, w) = 0 because w is a multiple of ψ, so this is an exact solution
    of the forced-free Navier–Stokes equations (and the Euler equations for ν = 0).

    Parameters
    ----------
    shape : (nx, ny)
        Grid shape; axis 0 is x.
    lengths : float or (Lx, Ly), default 1.0
        Domain lengths in axis order.
    t : float, default 0
        Time.
    nu : float, default 0
        Kinematic viscosity.

    Returns
    -------
    ndarray, shape (nx, ny)
    """
    x, y, lx, ly = _nodes(shape, lengths)
    kx, ky = 2.0 * np.pi / lx, 2.0 * np.pi / ly
    return ((kx**2 + ky**2) / ky * math.exp(-nu * (kx**2 + ky**2) * t)) * (np.sin(kx * x)
                                                                            * np.sin(ky * y))


def li_forcing(shape: Sequence[int], lengths: float | Sequence[float] = 1.0) -> np.ndarray:
    """Forcing of the FNO Navier–Stokes benchmark: f = 0.1(sin 2π(x+y) + cos 2π(x+y)).

    Li et al. (2021, "Fourier neural operator for parametric PDEs") use it on the unit square
    with ν = 1e-3..1e-5. On a Lx × Ly box the phase is 2π(x/Lx + y/Ly), so that f stays
    periodic (and equals the benchmark's on the unit square). Zero mean on every grid.

    Parameters
    ----------
    shape : (nx, ny)
        Grid shape; axis 0 is x.
    lengths : float or (Lx, Ly), default 1.0
        Domain lengths in axis order.

    Returns
    -------
    ndarray, shape (nx, ny)
    """
    x, y, lx, ly = _nodes(shape, lengths)
    phase = 2.0 * np.pi * (x / lx + y / ly)
    return 0.1 * (np.sin(phase) + np.cos(phase))


# ---------------------------------------------------------------------------------------------
# time stepping


class _Model:
    """Right-hand side −J_A(ψ, w) + ν Δ_h w + f on one grid."""

    def __init__(self, shape: tuple[int, int], lens: tuple[float, float], nu: float,
                 workers: int):
        self.hx, self.hy = lens[0] / shape[0], lens[1] / shape[1]
        self.lens = lens
        self.nu = nu
        self.workers = workers
        self.cx = nu / self.hx**2
        self.cy = nu / self.hy**2
        #: dt·diff_rate is the diffusion number.
        self.diff_rate = 4.0 * (self.cy + self.cx)

    def rhs(self, w: np.ndarray, f: np.ndarray | None,
            want_rate: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        P = _pad(_psi(w, self.lens, self.workers))
        Q = _pad(w)
        r, rate = _arakawa(P, Q, self.hx, self.hy, want_rate)
        r = np.negative(r, out=r)  # −J(ψ, w) = −u·∇w
        if self.nu > 0:
            c = slice(1, -1)
            lap_y = Q[..., c, 2:] + Q[..., c, :-2]
            lap_y -= 2.0 * w
            lap_y *= self.cy
            r += lap_y
            lap_x = Q[..., 2:, c] + Q[..., :-2, c]
            lap_x -= 2.0 * w
            lap_x *= self.cx
            r += lap_x
        if f is not None:
            r += f
        return r, rate

    def stability(self, dt: np.ndarray | float, rate: np.ndarray) -> np.ndarray:
        """C/√3 + D/2.513 of a step: ≤ 1 keeps it in SSP-RK3's stability region."""
        return dt * (rate / RK3_IMAG_LIMIT + self.diff_rate / RK3_REAL_LIMIT)

    def stable_dt(self, rate: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return 1.0 / (rate / RK3_IMAG_LIMIT + self.diff_rate / RK3_REAL_LIMIT)


def _step(model: _Model, w: np.ndarray, f: np.ndarray | None, dt: np.ndarray | float,
          k1: np.ndarray) -> np.ndarray:
    """One SSP-RK3 (Shu–Osher) step given the first-stage slope ``k1 = L(w)``."""
    w1 = k1
    w1 *= dt
    w1 += w
    k2, _ = model.rhs(w1, f)
    k2 *= dt
    w1 += k2
    w1 *= 0.25
    w2 = w1
    w2 += 0.75 * w
    k3, _ = model.rhs(w2, f)
    k3 *= dt
    w2 += k3
    w2 *= 2.0 / 3.0
    w2 += w / 3.0
    return w2


def _blowup(t: float) -> FloatingPointError:
    return FloatingPointError(
        f"navier_stokes.solve: the vorticity became NaN/Inf near t = {t:.6g}; the integration "
        f"is unstable for these inputs: lower cfl or dt, or check w0, forcing and nu.")


def _integrate_fixed(model: _Model, w: np.ndarray, f: np.ndarray | None, times: np.ndarray,
                     dt: float, steps: np.ndarray, out: np.ndarray) -> int:
    t = 0.0
    n = 0
    for k, m in enumerate(steps):
        for _ in range(int(m)):
            k1, rate = model.rhs(w, f, want_rate=True)
            if not np.all(np.isfinite(rate)):
                raise _blowup(t)
            s = float(np.max(model.stability(dt, rate)))
            if s > 1.0:
                limit = float(np.min(model.stable_dt(rate)))
                raise FloatingPointError(
                    f"navier_stokes.solve: the fixed dt = {dt:.4g} exceeds the SSP-RK3 stability "
                    f"limit {limit:.4g} at t = {t:.6g} (the flow sped up since t = 0); pass a "
                    f"smaller dt or dt=None for adaptive steps.")
            w = _step(model, w, f, dt, k1)
            n += 1
            t += dt
        t = float(times[k])
        if not np.isfinite(w.sum()):
            raise _blowup(t)
        out[:, k] = w
    return n


def _integrate_adaptive(model: _Model, w: np.ndarray, f: np.ndarray | None, times: np.ndarray,
                        cfl: float, dt_force: np.ndarray,
                        out: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Per-sample adaptive steps: each sample's step sequence depends on that sample alone."""
    nb = w.shape[0]
    t = np.zeros(nb)
    nsteps = np.zeros(nb, dtype=np.int64)
    dt_min, dt_max = math.inf, 0.0
    per_sample_f = f is not None and f.shape[0] == nb and nb > 1
    for k, tk in enumerate(times):
        active = np.arange(nb)
        while active.size:
            whole = active.size == nb
            wa = w if whole else w[active]
            fa = f[active] if per_sample_f and not whole else f
            k1, rate = model.rhs(wa, fa, want_rate=True)
            if not np.all(np.isfinite(rate)):
                raise _blowup(float(np.min(t[active])))
            dt_cfl = cfl * model.stable_dt(rate)
            dt_cfl = np.minimum(dt_cfl, dt_force if dt_force.size == 1 or whole
                                else dt_force[active])
            remaining = tk - t[active]
            # Equal steps to the snapshot (no sliver step); a finite, positive number of them.
            with np.errstate(divide="ignore", invalid="ignore"):
                m = np.ceil(remaining / dt_cfl * (1.0 - 1e-12))
            m = np.where(np.isfinite(m), np.maximum(m, 1.0), 1.0)
            dt = remaining / m
            wa = _step(model, wa, fa, dt[:, None, None], k1)
            dt_min = min(dt_min, float(dt.min()))
            dt_max = max(dt_max, float(dt.max()))
            nsteps[active] += 1
            done = m <= 1.0
            t[active] = np.where(done, tk, t[active] + dt)
            if whole:
                w = wa
            else:
                w[active] = wa
            active = active[~done]
        if not np.isfinite(w.sum()):
            raise _blowup(float(tk))
        out[:, k] = w
    return nsteps, dt_min, dt_max


def _forcing_array(forcing: Any, shape: tuple[int, ...],
                   lengths: tuple[float, float]) -> tuple[np.ndarray | None, float]:
    """The forcing as a float64 array of shape (..., nx, ny) that broadcasts to ``shape``."""
    if forcing is None:
        return None, 0.0
    if isinstance(forcing, str):
        if forcing.lower() not in FORCINGS:
            raise ValueError(f"forcing must be None, an array or one of {FORCINGS}; got {forcing!r}.")
        return li_forcing(shape[-2:], lengths), float(np.finfo(np.float64).eps)
    eps = st.input_eps(forcing)
    f, _ = st.to_numpy(forcing, "forcing")
    try:
        full = np.broadcast_shapes(f.shape, shape)
    except ValueError:
        full = None
    if full != tuple(shape):
        raise ValueError(f"forcing of shape {f.shape} does not broadcast to w0's shape {shape}; "
                         f"pass an (nx, ny) field or one per sample.")
    st.check_finite(f, "forcing")
    lead = f.shape[:max(0, f.ndim - 2)]
    return np.broadcast_to(f, lead + tuple(shape[-2:])), eps


@st.call_shape(4, ("dt", "lengths", "n_snapshots", "cfl", "return_info"))
def solve(w0: Any, nu: float, t_final: float, forcing: Any = None, *, dt: float | None = None,
          lengths: float | Sequence[float] = 1.0, n_snapshots: int = 1, cfl: float = DEFAULT_CFL,
          return_info: bool = False, workers: int | None = None) -> Any:
    """Integrate ∂t w + J(ψ, w) = ν Δw + f, −Δψ = w on a periodic box from w0 to t_final.

    Fields and physical parameters are positional, numerical options keyword-only (the
    package's ``solve`` shape). Until 0.2 the options after ``forcing`` are still accepted by position,
    with a ``DeprecationWarning``.

    Parameters
    ----------
    w0 : array_like or torch.Tensor, shape (..., nx, ny)
        Initial vorticity at the nodes x_i = i·Lx/nx, y_j = j·Ly/ny (axis −2 is x); leading axes
        are a batch of independent samples. Must have zero mean over the grid (relative to
        max|w0|: 1e-10 for float64 data, 1000·eps for lower precision); the remaining
        round-off mean is removed. At least 3 nodes per axis.
    nu : float
        Kinematic viscosity ν ≥ 0 (units length²/time); 0 gives the Euler equations.
    t_final : float
        Final time T > 0.
    forcing : None, array_like, torch.Tensor or "li", optional
        Time-independent vorticity source f: an array broadcastable to w0's shape (one field
        for all samples or one per sample), with zero mean like w0, or ``"li"`` for
        :func:`li_forcing` on this grid.
    dt : float, optional
        Fixed time step. It is shortened to T/(n_snapshots·m) for an integer m so that the steps
        land on the snapshot times, and must be within SSP-RK3's stability limit for w0
        (checked: ValueError naming the limit). Default: adaptive (see ``cfl``).
    lengths : float or (Lx, Ly), default 1.0
        Domain lengths in axis order.
    n_snapshots : int, default 1
        Number of snapshots, at t_k = k·T/n_snapshots, k = 1..n_snapshots (w0 not repeated).
    cfl : float, default 0.5
        Adaptive step as a fraction of the SSP-RK3 stability limit, 0 < cfl ≤ 1: dt = cfl·dt_S
        where C/√3 + D/2.513 = 1 at dt_S, with C = dt·max(|u|/hx + |v|/hy) the Courant and
        D = dt·4ν(1/hx² + 1/hy²) the diffusion number (so C = 0.87 at the default when
        advection dominates). Recomputed every step for every sample; with forcing also
        dt ≤ sqrt(cfl/r_f), r_f the Courant rate max(|u_f|/hx + |v_f|/hy) of the velocity
        induced by f, so the flow cannot speed up by more than that within one step.
    return_info : bool, default False
        Also return a :class:`SolveInfo`.
    workers : int, optional
        Threads for ``scipy.fft`` (default as in :func:`neuralhss.solvers.poisson.solve`).

    Returns
    -------
    w : same kind as w0, shape (..., n_snapshots, nx, ny)
        Vorticity at the snapshot times (float64 NumPy, or a tensor with w0's device and
        floating dtype, computed in float64 on the CPU).
    info : SolveInfo
        Only with ``return_info=True``.

    Raises
    ------
    ValueError
        w0 with fewer than 2 axes or fewer than 3 nodes per axis, NaN/Inf in w0 or forcing,
        non-zero mean of w0 or forcing, ``nu`` < 0, bad ``t_final``, ``n_snapshots``, ``cfl``,
        ``lengths``, unknown forcing name, or a fixed ``dt`` beyond the stability limit.
    FloatingPointError
        The solution became NaN/Inf, or a fixed ``dt`` left the stability region because the
        flow sped up (use ``dt=None``).
    """
    t_start = time.perf_counter()
    eps = st.input_eps(w0)
    arr, back = st.to_numpy(w0, "w0")
    nx, ny = _check_field(arr, "w0")
    st.check_finite(arr, "w0")
    nu = check_number(nu, "nu", strict=False, hint=" (kinematic viscosity)")
    times = st.snapshot_times(t_final, n_snapshots)
    if isinstance(cfl, bool) or not isinstance(cfl, (int, float, np.integer, np.floating)) or \
            not (0 < cfl <= 1):
        raise ValueError(f"cfl must be a number in (0, 1] (fraction of the stability limit taken by "
                         f"the adaptive step); got {cfl!r}.")
    if dt is not None:
        dt = check_number(dt, "dt", hint=", or None for adaptive steps")
    hx, hy, lens = _spacings((nx, ny), lengths)
    f, f_eps = _forcing_array(forcing, arr.shape, lens)
    _check_zero_mean(arr, "w0", eps, "the mean vorticity of a periodic flow is invariant and "
                     "induces no velocity")
    if f is not None:
        _check_zero_mean(f, "forcing", f_eps, "a mean source would make the mean vorticity grow "
                         "without bound")

    batch = arr.shape[:-2]
    nb = math.prod(batch)
    w = arr.reshape(nb, nx, ny) - arr.mean(axis=(-2, -1), keepdims=True).reshape(nb, 1, 1)
    if f is not None:
        f = f - f.mean(axis=(-2, -1), keepdims=True)
        if math.prod(f.shape[:-2]) == 1:  # one field for every sample
            f = np.ascontiguousarray(f.reshape(1, nx, ny))
        else:
            f = np.ascontiguousarray(np.broadcast_to(f, arr.shape)).reshape(nb, nx, ny)
    model = _Model((nx, ny), lens, nu, st.fft_workers(nx * ny, workers))
    out = np.empty((nb, len(times), nx, ny))

    if nb == 0:
        steps = np.zeros(batch, dtype=np.int64)
        dt_min = dt_max = math.nan
    elif dt is not None:
        dt_used, per = st.steps_between(times, float(dt))
        rate0 = _courant_rate(_psi(w, lens, model.workers), hx, hy)
        s = float(np.max(model.stability(dt_used, rate0)))
        if s > 1.0:
            limit = float(np.min(model.stable_dt(rate0)))
            raise ValueError(f"dt = {dt_used:.4g} exceeds the SSP-RK3 stability limit {limit:.4g} for "
                             f"this w0, nu and grid (Courant number "
                             f"{dt_used * float(np.max(rate0)):.3g}, diffusion number "
                             f"{dt_used * model.diff_rate:.3g}); pass dt <= {0.9 * limit:.3g}, or "
                             f"dt=None for adaptive steps.")
        n = _integrate_fixed(model, w, f, times, dt_used, per, out)
        steps = np.full(batch, n, dtype=np.int64)
        dt_min = dt_max = dt_used
    else:
        if f is not None:
            rate_f = _courant_rate(_psi(f, lens, model.workers), hx, hy)
            with np.errstate(divide="ignore"):
                dt_force = np.sqrt(cfl / rate_f)
            if dt_force.size > 1:
                dt_force = np.broadcast_to(dt_force, (nb,)).copy()
        else:
            dt_force = np.array([math.inf])
        nsteps, dt_min, dt_max = _integrate_adaptive(model, w, f, times, float(cfl), dt_force, out)
        steps = nsteps.reshape(batch)

    out = out.reshape(batch + (len(times), nx, ny))
    if not return_info:
        return back(out) if back else out
    info = SolveInfo(times=times, steps=steps, dt_min=float(dt_min), dt_max=float(dt_max),
                     fixed_dt=dt is not None,
                     energy0=np.asarray(energy(arr, lens)), enstrophy0=np.asarray(enstrophy(arr, lens)),
                     energy=np.asarray(energy(out, lens)), enstrophy=np.asarray(enstrophy(out, lens)),
                     seconds=time.perf_counter() - t_start)
    return (back(out) if back else out), info
