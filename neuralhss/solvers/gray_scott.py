"""Gray–Scott reaction–diffusion on a periodic rectangle, IMEX time stepping with FFT solves.

Equations
---------
::

    ∂t u = Du Δu − u v² + F (1 − u),
    ∂t v = Dv Δv + u v² − (F + k) v,

u the substrate (fed at rate F towards 1), v the autocatalyst (removed at rate F + k).
Pearson's (1993) units: Du = 2e-5, Dv = 1e-5 on a square of side L = 2.5 (:data:`REGIMES`).

Grid
----
Fully periodic rectangle [0, Lx) × [0, Ly) on the package grid (neuralhss.grid): nodes
x_i = i·Lx/nx, y_j = j·Ly/ny, spacings hx = Lx/nx, hy = Ly/ny. Arrays are ``(..., nx, ny)``
(axis −2 is x, the package's axis convention), leading axes a batch of independent samples;
``lengths`` is ``L`` or ``(Lx, Ly)`` in axis order. The equations are isotropic, so the naming
only matters for ``lengths`` and positions.

Discretisation
--------------
* Space: the 5-point Laplacian Δ_h, diagonalised by the real 2-D FFT with eigenvalues
  −λ_h, λ_h = (4/hy²) sin²(πk/ny) + (4/hx²) sin²(πl/nx). The implicit solves are exact for
  this discrete operator, so a pure-diffusion mode decays at the discrete rate of the scheme
  (backward Euler: exactly 1/(1 + dt·D·λ_h) per step).
* Variables: the solver integrates w = 1 − u and v, so that the homogeneous state
  (u, v) = (1, 0) is the zero state and is preserved bitwise on every grid (FFTs of zero
  are zero); u = 1 − w is formed on output.
* Splitting: the linear terms are implicit, diagonal in Fourier space and per field —
  diffusion plus the linear feed/kill rates, a_u = Du λ_h + F and a_v = Dv λ_h + F + k —
  and only the cubic term r = u v² is explicit; it enters both equations (+r for w, +r for
  v), so one forward FFT of r per step serves both. A step costs one forward real FFT and
  two inverse real FFTs (2-D) plus pointwise work, the same for every scheme.
* Schemes (``scheme=``), with ŷ the Fourier coefficients of (w, v) and r̂ those of r:

  - ``"euler"``: IMEX Euler (backward Euler / forward Euler), first order,
    ŷⁿ⁺¹ = (ŷⁿ + dt r̂ⁿ) / (1 + dt a).
  - ``"sbdf2"`` (default): IMEX-BDF2 (SBDF2), second order,
    (3ŷⁿ⁺¹ − 4ŷⁿ + ŷⁿ⁻¹)/(2dt) = −a ŷⁿ⁺¹ + 2r̂ⁿ − r̂ⁿ⁻¹; started by one IMEX Euler step.
    Its implicit part is L-stable (stiff modes are damped, not reflected).
  - ``"cnab2"``: Crank–Nicolson / Adams–Bashforth 2, second order,
    (ŷⁿ⁺¹ − ŷⁿ)/dt = −a (ŷⁿ⁺¹ + ŷⁿ)/2 + (3r̂ⁿ − r̂ⁿ⁻¹)/2; first step with r̂⁻¹ = r̂⁰.
    Not L-stable: stiff modes flip sign each step and decay slowly.

  - ``"ab2"``: fully explicit Adams–Bashforth 2 on the 5-point stencil (no FFTs), second
    order, yⁿ⁺¹ = yⁿ + dt(3Rⁿ − Rⁿ⁻¹)/2 with R the whole right-hand side (diffusion, linear
    rates and reaction); the first step is forward Euler (R⁻¹ = R⁰). One step is a single
    fused, compiled sweep over the grid (numba; :mod:`._gray_scott_stencil`), several times
    cheaper than an IMEX step's FFTs, but its stable step shrinks with the grid spacing
    (:func:`stability_bound`).
  - ``"rkc2"``: explicit second-order Runge–Kutta–Chebyshev on the same stencil, s stages
    (damped Chebyshev recursion, damping 2/13): each stage is one fused sweep like an AB2
    step, and s stages are stable on the negative real axis up to β(s) ≈ 0.65 s², so the
    stage count grows only like the square root of the step (:func:`rkc2_stages` takes the
    fewest that hold it). The step is free: where accuracy allows steps far above AB2's
    bound, RKC2 needs fewer sweeps per unit time.

  SBDF2 is the default: second order at the cost of IMEX Euler (the extra work is a few
  pointwise passes over the spectral arrays), L-stable, a stable step independent of the
  grid, and a larger explicit stability range than CNAB2. CNAB2 has about half SBDF2's error
  constant but needs dt ≤ 1. AB2 is the fastest to a given accuracy on grids where its
  stability bound is not far below the step that accuracy needs, RKC2 at looser accuracies
  (Pearson's 256² spacing: ``benchmarks/bench_gray_scott.py``); the default stays SBDF2 so
  that datasets keep their bytes and coarse-to-fine grid refinement keeps its step.
  IMEX Euler is a poor choice for pattern dynamics: its local error (dt²/2)(A − J)y'
  (A the implicit operator, J the reaction Jacobian) does not vanish on slowly evolving
  patterns, where diffusion and reaction nearly balance and forward Euler's
  −(dt²/2)(A + J)y' ≈ −(dt²/2)y'' does. On the 256² "spots" benchmark at dt = 1 its
  max-norm error at T = 1000 is 0.71 (a spot divides differently) against 0.028 for
  forward Euler and 0.0030 for SBDF2.

Stability of the explicit reaction
----------------------------------
The explicit part N(w, v) = (r, r), r = (1 − w) v² = u v², has the rank-one Jacobian
[[−v², 2uv], [−v², 2uv]], with eigenvalues 0 and μ = v (2u − v). For u, v ∈ [0, 1] (where
the dynamics lives: u, v ≥ 0 and u + v ≤ 1 are invariant for the reaction alone with
F, k ≥ 0), μ ∈ [−1, 1]. Positive μ is genuine growth; for μ < 0 the scalar test equation
y' = −a y + μ y (a ≥ 0 treated implicitly) is stable for every a ≥ 0 exactly when
dt·|μ| ≤ c, with c = 2 (IMEX Euler), 4/3 (SBDF2), 1 (CNAB2), the negative-real-axis limits of
the explicit parts (checked numerically over a ∈ [0, 1e4]). Hence the bound
:data:`STABILITY_LIMIT`: dt ≤ c, independent of the diffusivities, the grid, F and k. It
is a frozen-coefficient, commuting (scalar) analysis: the implicit and explicit Jacobians do
not commute when Du ≠ Dv, and states outside [0, 1] can exceed it; blow-up is detected and
raised as ``FloatingPointError``. The default step is ``min(1, 0.75·c)``: dt = 1 for Euler
and SBDF2 (Pearson's classical step), 0.75 for CNAB2.

For the explicit ``"ab2"`` the diffusion and the linear rates are explicit too: the same
scalar test equation, y' = −a y + μ y with a ∈ [0, a_max] now explicit, where
a_max = max(Du·λ_max + F, Dv·λ_max + F + k) and λ_max the largest eigenvalue of −Δ_h, is
stable when dt·(a_max + 1) ≤ 1, AB2's negative-real-axis limit. That bound falls like h²:
0.37 on Pearson's 256² grid, 0.13 on 512² (:func:`stability_bound`). Its default step is
0.75 of the bound. ``"rkc2"`` uses the same scalar bound with its own interval: s stages are
stable when dt·(a_max + 1) ≤ β(s); :func:`stability_bound` returns ``inf`` for it (any step,
with enough stages), and its default step is 1.

Validated accuracy (``tests/test_gray_scott.py``)
-------------------------------------------------
* (u, v) = (1, 0) is kept bitwise for 500 steps with every scheme, on 32² and 15×21 grids
  (a batch of two on the first).
* A pure-diffusion Fourier mode (F = 0, v = 0) decays by exactly 1/(1 + dt·Du·λ_h) per IMEX
  Euler step, and by the SBDF2, Crank–Nicolson, Adams–Bashforth 2 and RKC2 recurrences of
  z = dt·Du·λ_h: max error 2–3e-15 against 1e-12 allowed (relative to the mode amplitude,
  40 steps, decay to 0.58).
* Time convergence against an SBDF2 reference at dt = 1/512 (32² grid, Gaussian patches,
  active reaction and diffusion, T = 10), max-norm error of (u, v) for dt = 1/2 → 1/16:
  observed orders 0.92, 0.96, 0.98 (euler), 1.95, 1.98, 1.99 (sbdf2), 1.98, 1.99, 2.00
  (cnab2). At dt = 1/2 the errors are 6.1e-3, 6.8e-4 and 3.2e-4. AB2 (bound 0.37 on this
  grid), dt = 1/4 → 1/32: orders 1.99, 2.00, 2.04, error 1.9e-5 at dt = 1/4 (SBDF2 there:
  about 1.7e-4; every term explicit leaves no splitting error). RKC2, dt = 1/2 → 1/16 (two
  stages each): orders 2.10, 2.06, 2.05, error 3.9e-6 at dt = 1/4.
* RKC2's stability polynomial is 1 + z + z²/2 + O(z³) and bounded by 1 on [−β(s), 0]; the
  checkerboard mode decays by exactly P_s(−z) per step at z = dt·Du·λ_max = 3 and 40.
* Space: the 5-point symbol converges to the continuous −|k|² at second order (2.00).
* Patterns: "spots" and "maze" on 64² nodes at Pearson's spacing develop structure
  (std v > 0.08) and stay in [0, 1]; every regime of :data:`REGIMES` except "chaos" has
  filled a 128² domain of side 1.25 by its ``t_final`` (slow test).

Speed: ``benchmarks/bench_gray_scott.py`` compares one step and the time to a given accuracy
with py-pde's numba-compiled explicit Euler on the same semi-discrete problem (results in
``benchmarks/results/gray_scott.json`` and ``docs/speed.md``). An IMEX step runs in
preallocated buffers (three 2-D real FFTs and a few pointwise passes, nothing allocated) and
costs more than one fused explicit stencil sweep, because the three FFTs alone do; ``"ab2"``
is such a sweep. The implicit diffusion pays off where the explicit bound (which scales like h²)
falls far below the step the accuracy needs (fine grids, large diffusivities).
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
from . import _stencils as st
from . import poisson

__all__ = ["SolveInfo", "solve", "initial_perturbation", "laplacian_eigenvalues", "stability_bound",
           "rkc2_stages",
           "REGIMES", "SCHEMES", "DEFAULT_SCHEME", "STABILITY_LIMIT"]

#: Time-stepping schemes accepted by :func:`solve`: three IMEX schemes with FFT solves and two
#: explicit schemes on the stencil.
SCHEMES = ("euler", "sbdf2", "cnab2", "ab2", "rkc2")

#: The explicit schemes: every term explicit; AB2's stability bound depends on the grid, RKC2
#: takes as many stages as the step needs (:func:`rkc2_stages`).
EXPLICIT_SCHEMES = ("ab2", "rkc2")

#: Scheme used when ``scheme`` is not given: second order at first-order cost.
DEFAULT_SCHEME = "sbdf2"

#: Largest stable step per IMEX scheme: c/ρ with ρ = max |v(2u − v)| = 1 over u, v ∈ [0, 1] and
#: c the negative-real-axis stability limit of the explicit part (module docstring). For the
#: explicit ``"ab2"`` it is c = 1 and the bound depends on the grid (:func:`stability_bound`).
STABILITY_LIMIT = {"euler": 2.0, "sbdf2": 4.0 / 3.0, "cnab2": 1.0, "ab2": 1.0, "rkc2": math.inf}

#: Default step as a fraction of the stability limit, capped at 1 (Pearson's step).
DEFAULT_DT_FRACTION = 0.75

#: The solution counts as blown up when |1 − u| or |v| exceeds this (or is NaN/Inf).
BLOWUP_BOUND = 1e6

#: A batch is integrated in chunks of about this many nodes per field (at least one sample),
#: so that a chunk's working set (~80 bytes per node) stays in the last-level cache: 8 samples
#: of 256² in one array ran 10–25 % slower per sample than one at a time (2 shared cores).
CHUNK_NODES = 1 << 16

#: Grids of at least this many nodes use all cores by default (``workers=None``). Below it one
#: thread with preallocated buffers was faster per step at 256² and 512² than the threaded path
#: (scipy.fft, which allocates its results), on 2 shared cores.
THREADED_MIN_NODES = 1 << 20

#: Steps between two blow-up checks (each costs two passes over the state).
CHECK_EVERY = 32

#: Named parameter sets from Pearson's (1993) classification in the (k, F) plane, in his
#: units (Du = 2e-5, Dv = 1e-5, square of side L = 2.5; 256² nodes in his runs). ``t_final`` is
#: a time by which :func:`initial_perturbation` data (default patch density) has developed the
#: pattern over the domain: checked by eye on rendered snapshots and by the spread of v on 128²
#: nodes of side 1.25, Pearson's spacing (slow test ``test_regime_fills_the_domain_by_t_final``).
#: "chaos" never settles; "worms" keep growing at their ends after t_final.
REGIMES: dict[str, dict[str, float]] = {
    # stationary hexagonally packed spots (spots replicate while they fill the domain)
    "spots": {"F": 0.035, "k": 0.065, "Du": 2e-5, "Dv": 1e-5, "L": 2.5, "t_final": 10_000.0},
    # spot division ("mitosis") close to the spots region
    "mitosis": {"F": 0.0367, "k": 0.0649, "Du": 2e-5, "Dv": 1e-5, "L": 2.5, "t_final": 10_000.0},
    # labyrinthine stripes
    "stripes": {"F": 0.06, "k": 0.062, "Du": 2e-5, "Dv": 1e-5, "L": 2.5, "t_final": 10_000.0},
    # maze of stripes on a high-v background
    "maze": {"F": 0.029, "k": 0.057, "Du": 2e-5, "Dv": 1e-5, "L": 2.5, "t_final": 10_000.0},
    # worms: isolated stripe segments that grow at their ends
    "worms": {"F": 0.05, "k": 0.065, "Du": 2e-5, "Dv": 1e-5, "L": 2.5, "t_final": 20_000.0},
    # holes: the negative of spots, low-v holes in a high-v background
    "holes": {"F": 0.039, "k": 0.058, "Du": 2e-5, "Dv": 1e-5, "L": 2.5, "t_final": 20_000.0},
    # spatio-temporal chaos (no steady pattern)
    "chaos": {"F": 0.026, "k": 0.051, "Du": 2e-5, "Dv": 1e-5, "L": 2.5, "t_final": 10_000.0},
}

#: Default density of the perturbed patches of :func:`initial_perturbation`, per unit area.
PATCH_DENSITY = 3.0


@dataclasses.dataclass(frozen=True)
class SolveInfo:
    """What a Gray–Scott solve did.

    Attributes
    ----------
    scheme : str
        The time-stepping scheme (:data:`SCHEMES`).
    dt : float
        The uniform step used: the requested (or default) step shortened so that the steps
        land on the snapshot times.
    steps : int
        Number of time steps taken (the same for every sample of a batch).
    times : ndarray, shape (n_snapshots,)
        Snapshot times t_k = k·T/n_snapshots, k = 1..n_snapshots.
    dt_stable : float
        The stability bound of the scheme on this grid (:func:`stability_bound`).
    seconds : float
        Wall time of the call.
    stages : int
        Right-hand-side evaluations per step for RKC2 (:func:`rkc2_stages`); 1 otherwise.
    """

    scheme: str
    dt: float
    steps: int
    times: np.ndarray
    dt_stable: float
    seconds: float
    stages: int = 1


def laplacian_eigenvalues(shape: Sequence[int], lengths: float | Sequence[float] = 1.0) -> np.ndarray:
    """Eigenvalues λ_h ≥ 0 of the periodic 5-point −Δ_h, in ``rfft2`` order.

    The 2-D periodic case of :func:`neuralhss.solvers.poisson.symbol`, kept under this name.

    Parameters
    ----------
    shape : (nx, ny)
        Grid shape.
    lengths : float or (Lx, Ly), default 1.0
        Domain lengths in axis order (spacing L/n per axis).

    Returns
    -------
    ndarray, shape (nx, ny//2 + 1)
        λ_h[l, k] = (4/hx²) sin²(πl/nx) + (4/hy²) sin²(πk/ny), units 1/length²; the Fourier
        mode exp(2πi(l·i/nx + k·j/ny)) at node (x_i, y_j) satisfies −Δ_h e = λ_h[l, k] e.
    """
    dims = tuple(shape)
    if len(dims) != 2 or not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool)
                                 and n >= 1 for n in dims):
        raise ValueError(f"shape must be (nx, ny) with positive integers; got {shape!r}.")
    return poisson.symbol(tuple(int(n) for n in dims), lengths, "periodic")


class _Transform:
    """Real 2-D FFT over the last two axes as two 1-D passes, writing into caller-owned buffers.

    With one thread the transforms are NumPy's pocketfft with ``out=``: a step then allocates
    nothing. Allocating the ~1 MB spectral arrays afresh each step (what scipy.fft, which has no
    ``out``, does) cost more than the transforms themselves at 256²: each new array is mapped
    from the OS and page-faulted in (``benchmarks/bench_gray_scott.py`` measures the step).
    With several threads scipy.fft's ``workers`` is used and the result copied.
    """

    def __init__(self, ny: int, workers: int):
        self.ny = ny
        self.workers = workers

    def forward(self, x: np.ndarray, out: np.ndarray) -> np.ndarray:
        if self.workers == 1:
            np.fft.rfft(x, axis=-1, out=out)
            return np.fft.fft(out, axis=-2, out=out)
        xh = sfft.rfft(x, axis=-1, workers=self.workers)
        out[...] = sfft.fft(xh, axis=-2, overwrite_x=True, workers=self.workers)
        return out

    def inverse(self, xh: np.ndarray, tmp: np.ndarray, out: np.ndarray) -> np.ndarray:
        """``out`` = inverse of ``xh`` (left intact); ``tmp`` is scratch of ``xh``'s shape."""
        if self.workers == 1:
            np.fft.ifft(xh, axis=-2, out=tmp)
            return np.fft.irfft(tmp, n=self.ny, axis=-1, out=out)
        t = sfft.ifft(xh, axis=-2, workers=self.workers)
        out[...] = sfft.irfft(t, n=self.ny, axis=-1, overwrite_x=True, workers=self.workers)
        return out


def _reaction(phys: np.ndarray, dt: float) -> np.ndarray:
    """dt·r = dt·(1 − w) v² = dt·u v², computed in place in ``phys[0]`` (phys = stacked (w, v)).

    The step dt is folded in here, on one real field, rather than on the spectral arrays.
    """
    r = phys[0]
    v = phys[1]
    np.multiply(r, -dt, out=r)
    r += dt
    r *= v
    r *= v
    return r


def stability_bound(scheme: str, Du: float, Dv: float, F: float, k: float, shape: Sequence[int],
                    lengths: float | Sequence[float] = 1.0) -> float:
    """Largest stable time step of ``scheme`` for these parameters on this grid (time units).

    IMEX schemes: :data:`STABILITY_LIMIT` [scheme], set by the explicit reaction alone. The
    explicit ``"ab2"``: 1 / (max(Du·λ_max + F, Dv·λ_max + F + k) + 1), with λ_max the largest
    eigenvalue of the periodic 5-point −Δ_h on ``shape`` (module docstring).

    Parameters
    ----------
    scheme : str
        One of :data:`SCHEMES`.
    Du, Dv, F, k : float
        Diffusivities (length²/time) and rates (1/time) as in :func:`solve`.
    shape : (nx, ny)
        Grid shape.
    lengths : float or (Lx, Ly), default 1.0
        Domain lengths in axis order.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}; got {scheme!r}.")
    if scheme not in EXPLICIT_SCHEMES:
        return STABILITY_LIMIT[scheme]
    return STABILITY_LIMIT[scheme] / _explicit_radius(Du, Dv, F, k, shape, lengths)


def _explicit_radius(Du: float, Dv: float, F: float, k: float, shape: Sequence[int],
                     lengths: float | Sequence[float]) -> float:
    """a_max + 1: the largest |λ| of the scalar test equation of the explicit schemes."""
    lam = float(laplacian_eigenvalues(shape, lengths).max())
    return max(Du * lam + F, Dv * lam + F + k) + 1.0


def rkc2_stages(dt: float, Du: float, Dv: float, F: float, k: float, shape: Sequence[int],
                lengths: float | Sequence[float] = 1.0) -> int:
    """Stages RKC2 takes for a step ``dt``: the fewest s >= 2 whose stability interval
    [−beta(s), 0] (beta(s) ≈ 0.65 s²) holds dt·(a_max + 1), the same scalar bound as AB2's
    (module docstring). Arguments as in :func:`stability_bound`; ``dt`` in time units."""
    from . import _gray_scott_stencil as kern

    dt = check_number(dt, "dt")
    need = dt * _explicit_radius(Du, Dv, F, k, shape, lengths)
    s = 2
    while kern.rkc2_tableau(s)[-1] < need:
        s += 1
    return s


def _check_state(fields: Sequence[np.ndarray], step: int, dt: float) -> None:
    """Raise FloatingPointError if any of ``fields`` (w = 1 − u and v) is non-finite or
    beyond :data:`BLOWUP_BOUND`."""
    with np.errstate(invalid="ignore", over="ignore"):
        hi = max(float(a.max()) for a in fields)
        lo = min(float(a.min()) for a in fields)
    size = max(hi, -lo)
    if not (math.isfinite(size) and size <= BLOWUP_BOUND):
        shown = "NaN/Inf" if not math.isfinite(size) else f"{size:.3g}"
        raise FloatingPointError(
            f"Gray–Scott solution blew up (max(|1 - u|, |v|) = {shown}) by t = {step * dt:.6g} "
            f"(step {step}, dt = {dt:.4g}); use u0, v0 within [0, 1] or a smaller dt.")


def _real(x: np.ndarray) -> np.ndarray:
    """The interleaved float64 view of a contiguous complex128 array (last axis doubled)."""
    return x.view(np.float64)


def _interleave(m: np.ndarray) -> np.ndarray:
    """A real Fourier multiplier repeated to act on :func:`_real` views: multiplying the real
    view is a plain float64 product, about twice as fast as complex·real with casting."""
    return np.ascontiguousarray(np.repeat(m, 2, axis=-1))


def _integrate(phys: np.ndarray, lam: np.ndarray, coeffs: np.ndarray, rates: np.ndarray,
               scheme: str, dt: float, per: np.ndarray, out_u: np.ndarray, out_v: np.ndarray,
               tr: _Transform) -> int:
    """Advance the stacked physical state ``phys`` = (w, v), shape (2, nb, nx, ny), writing the
    snapshots into ``out_u``/``out_v`` (nb, n_snapshots, nx, ny). Returns the number of steps.

    Every array a step touches is allocated here once; the steps update them in place. The
    explicit term is carried as ρ̂ = dt·r̂ (see :func:`_reaction`).
    """
    # Implicit rates a = D·λ_h + c per field, shape (2, 1, nx, ny//2+1), broadcast over the batch.
    a = coeffs[:, None, None, None] * lam[None, None] + rates[:, None, None, None]
    m_euler = _interleave(1.0 / (1.0 + dt * a))
    if scheme == "sbdf2":
        # ŷⁿ⁺¹ = ((4/3)ŷⁿ − (1/3)ŷⁿ⁻¹ + (2/3)(2ρ̂ⁿ − ρ̂ⁿ⁻¹))/(1 + (2/3)dt a)
        #      = (ŷⁿ − ŷⁿ⁻¹/4 + ρ̂ⁿ − ρ̂ⁿ⁻¹/2)·m, m = (4/3)/(1 + (2/3)dt a): four passes over
        # the two spectral fields and two over one.
        m_bdf = _interleave((4.0 / 3.0) / (1.0 + (2.0 / 3.0) * dt * a))
    elif scheme == "cnab2":
        p_cn = _interleave((1.0 - 0.5 * dt * a) / (1.0 + 0.5 * dt * a))
        q_cn = _interleave(1.5 / (1.0 + 0.5 * dt * a))
    spec_shape = phys.shape[:-1] + (phys.shape[-1] // 2 + 1,)
    spec = tr.forward(phys, np.empty(spec_shape, complex))
    spec_prev = np.empty_like(spec)
    scratch = np.empty_like(spec)
    rh_bufs = [np.empty_like(spec[0]), np.empty_like(spec[0])]
    r_prev = None
    step = 0
    for k, n_steps in enumerate(per):
        for _ in range(int(n_steps)):
            # phys[0] is overwritten by dt·u v²; rh takes the buffer r_prev does not hold.
            rh = tr.forward(_reaction(phys, dt), rh_bufs[1] if r_prev is rh_bufs[0] else rh_bufs[0])
            if scheme == "euler" or (scheme == "sbdf2" and r_prev is None):
                # ŷⁿ⁺¹ = (ŷⁿ + ρ̂ⁿ)/(1 + dt a); also the first SBDF2 step.
                if scheme == "sbdf2":
                    spec_prev[...] = spec
                    r_prev = rh
                spec += rh  # ρ̂ enters both fields
                _real(spec)[...] *= m_euler
            elif scheme == "sbdf2":
                g = r_prev  # ρ̂ⁿ − ρ̂ⁿ⁻¹/2, in the old ρ̂ⁿ⁻¹'s buffer (free after this step)
                g *= -0.5
                g += rh
                new = spec_prev
                new *= -0.25
                new += spec
                new += g
                _real(new)[...] *= m_bdf
                spec_prev, spec = spec, new
                r_prev = rh
            else:
                # CNAB2: ŷⁿ⁺¹ = p ŷⁿ + q (ρ̂ⁿ − ρ̂ⁿ⁻¹/3) with p = (1 − dt a/2)/(1 + dt a/2),
                # q = 1.5/(1 + dt a/2); ρ̂⁻¹ = ρ̂⁰ makes the first step forward Euler.
                if r_prev is None:
                    g = np.multiply(rh, 2.0 / 3.0, out=rh_bufs[1] if rh is rh_bufs[0] else rh_bufs[0])
                else:
                    g = r_prev
                    g *= -1.0 / 3.0
                    g += rh
                _real(spec)[...] *= p_cn
                np.multiply(_real(g)[None], q_cn, out=_real(scratch))
                spec += scratch
                r_prev = rh
            step += 1
            tr.inverse(spec, scratch, phys)
            if step % CHECK_EVERY == 0:
                _check_state((phys,), step, dt)
        _check_state((phys,), step, dt)
        np.subtract(1.0, phys[0], out=out_u[:, k])
        out_v[:, k] = phys[1]
    return step


def _integrate_explicit(u0: np.ndarray, v0: np.ndarray, scheme: str, stages: int,
                        params: tuple[float, float, float, float], spacing: tuple[float, float],
                        dt: float, per: np.ndarray, out_u: np.ndarray, out_v: np.ndarray) -> int:
    """One sample ``(nx, ny)`` by the explicit kernels (AB2, or RKC2 with ``stages``),
    snapshots into ``out_u``/``out_v`` (n_snapshots, nx, ny). Returns the number of steps."""
    from . import _gray_scott_stencil as kern

    coef = kern.coefficients(*params, spacing)
    if scheme == "ab2":
        w = np.subtract(1.0, u0)
        v = np.array(v0, dtype=np.float64, order="C")
        w1, v1 = np.empty_like(w), np.empty_like(w)
        rw, rv = np.empty_like(w), np.empty_like(w)
        kern.rates_and_step(w, v, rw, rv, w1, v1, 0.0, *coef)  # R⁻¹ = R⁰: a forward-Euler start
    else:
        W, V = np.empty((4, *u0.shape)), np.empty((4, *u0.shape))
        np.subtract(1.0, u0, out=W[0])
        V[0] = v0
        fw, fv = np.empty_like(W[0]), np.empty_like(W[0])
        tableau = [np.array(c) for c in kern.rkc2_tableau(stages)[:4]]
        cur = 0
        w, v = W[0], V[0]
    step = 0
    for snap, n_steps in enumerate(per):
        left = int(n_steps)
        while left:
            n = min(left, CHECK_EVERY - step % CHECK_EVERY)
            if scheme == "ab2":
                kern.ab2_steps(w, v, w1, v1, rw, rv, n, dt, *coef)
                if n % 2:
                    w, w1, v, v1 = w1, w, v1, v
            else:
                cur = kern.rkc2_steps(W, V, fw, fv, cur, n, dt, *tableau, *coef)
                w, v = W[cur], V[cur]
            step += n
            left -= n
            if step % CHECK_EVERY == 0:
                _check_state((w, v), step, dt)
        _check_state((w, v), step, dt)
        np.subtract(1.0, w, out=out_u[snap])
        out_v[snap] = v
    return step


@st.call_shape(7, ("dt", "lengths", "n_snapshots", "scheme", "return_info"))
def solve(u0: Any, v0: Any, Du: float, Dv: float, F: float, k: float, t_final: float, *,
          dt: float | None = None, lengths: float | Sequence[float] = 1.0, n_snapshots: int = 1,
          scheme: str = DEFAULT_SCHEME, return_info: bool = False,
          workers: int | None = None) -> Any:
    """Integrate the Gray–Scott system on a periodic rectangle from (u0, v0) to ``t_final``.

    ∂t u = Du Δu − u v² + F(1 − u),  ∂t v = Dv Δv + u v² − (F + k) v, with the 5-point Δ_h;
    diffusion and the linear rates implicit (exact FFT solves), u v² explicit (module
    docstring).

    Fields and physical parameters are positional, numerical options keyword-only (the
    package's ``solve`` shape). Until 0.2 the options after ``t_final`` are still accepted by position,
    with a ``DeprecationWarning``.

    Parameters
    ----------
    u0, v0 : array_like or torch.Tensor, shape (..., nx, ny)
        Initial fields at the nodes x_i = i·Lx/nx, y_j = j·Ly/ny (axis −2 is x); leading axes
        are a batch of independent samples. Same shape; the stability bound assumes values
        in [0, 1] (e.g. :func:`initial_perturbation`).
    Du, Dv : float
        Diffusivities ≥ 0 (length²/time).
    F, k : float
        Feed and kill rates ≥ 0 (1/time).
    t_final : float
        Final time T > 0.
    dt : float, optional
        Time step, at most :func:`stability_bound` (2, 4/3, 1 for euler, sbdf2, cnab2; for ab2
        1/(max(Du·λ_max + F, Dv·λ_max + F + k) + 1), which depends on the grid; none for
        rkc2); shortened to T/(n_snapshots·m) for an integer m so that the steps land on the
        snapshot times. Default ``min(1, 0.75·bound)``: 1 for euler/sbdf2/rkc2, 0.75 for cnab2.
    lengths : float or (Lx, Ly), default 1.0
        Domain lengths in axis order.
    n_snapshots : int, default 1
        Number of snapshots, at t_k = k·T/n_snapshots, k = 1..n_snapshots (the initial state
        is not repeated).
    scheme : {"sbdf2", "euler", "cnab2", "ab2", "rkc2"}, default "sbdf2"
        IMEX-BDF2 (second order), IMEX Euler (first order), Crank–Nicolson/Adams–Bashforth
        (second order), the fully explicit Adams–Bashforth 2 on the stencil (second order,
        cheapest per step, stable step bounded by the grid: :func:`stability_bound`), or the
        explicit Runge–Kutta–Chebyshev 2 on the stencil (second order, any step, with the
        stages it needs: :func:`rkc2_stages`).
    return_info : bool, default False
        Also return a :class:`SolveInfo` (step, number of steps, snapshot times).
    workers : int, optional
        Threads for the FFTs of the IMEX schemes; default one thread below
        :data:`THREADED_MIN_NODES` (2^20) nodes, all cores from there. ``"ab2"`` and ``"rkc2"``
        run on one thread whatever this is.

    Returns
    -------
    u, v : same kind as u0 and v0, shape (..., n_snapshots, nx, ny)
        The fields at the snapshot times (float64 NumPy, or tensors on the inputs' devices
        with their floating dtypes, computed in float64 on the CPU).
    info : SolveInfo
        Only with ``return_info=True``.

    Raises
    ------
    ValueError
        Fewer than 2 axes, shapes of u0 and v0 differ, NaN/Inf in u0 or v0, a negative or
        non-finite Du, Dv, F or k, bad ``t_final``, ``n_snapshots``, ``lengths``, ``workers``,
        unknown ``scheme``, or ``dt`` above the scheme's stability bound.
    FloatingPointError
        The solution became NaN/Inf or exceeded :data:`BLOWUP_BOUND` (checked every
        :data:`CHECK_EVERY` steps and at every snapshot).
    """
    t_start = time.perf_counter()
    u_arr, back_u = st.to_numpy(u0, "u0")
    v_arr, back_v = st.to_numpy(v0, "v0")
    if u_arr.ndim < 2:
        raise ValueError(f"u0 must have at least 2 axes (..., nx, ny); got shape {u_arr.shape}.")
    if u_arr.shape != v_arr.shape:
        raise ValueError(f"u0 and v0 must have the same shape (..., nx, ny); got {u_arr.shape} and "
                         f"{v_arr.shape}.")
    nx, ny = st.check_spatial_shape(u_arr.shape[-2:], "u0")
    st.check_finite(u_arr, "u0")
    st.check_finite(v_arr, "v0")
    Du = check_number(Du, "Du", strict=False, hint=" (diffusivity of u)")
    Dv = check_number(Dv, "Dv", strict=False, hint=" (diffusivity of v)")
    F = check_number(F, "F", strict=False, hint=" (feed rate)")
    k = check_number(k, "k", strict=False, hint=" (kill rate)")
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}; got {scheme!r}.")
    times = st.snapshot_times(t_final, n_snapshots)
    lens = st.normalize_lengths(lengths, 2)
    limit = stability_bound(scheme, Du, Dv, F, k, (nx, ny), lens)
    if dt is None:
        dt = min(1.0, DEFAULT_DT_FRACTION * limit)
    else:
        dt = check_number(dt, "dt", hint=", or None for the default step")
        if dt > limit and scheme in EXPLICIT_SCHEMES:
            raise ValueError(f"dt = {dt:.4g} exceeds the stability bound {limit:.4g} of the explicit "
                             f"scheme {scheme!r} on this grid (dt·(max(Du·λ_max + F, Dv·λ_max + F + k) "
                             f"+ 1) <= 1); pass dt <= {limit:.4g}, or an IMEX scheme such as 'sbdf2'.")
        if dt > limit:
            raise ValueError(f"dt = {dt:.4g} exceeds the stability bound {limit:.4g} of the explicit "
                             f"reaction for scheme {scheme!r} (dt·max|v(2u - v)| <= {limit:.4g} for "
                             f"u, v in [0, 1]); pass dt <= {limit:.4g}.")
    dt_used, per = st.steps_between(times, float(dt))
    stages = rkc2_stages(dt_used, Du, Dv, F, k, (nx, ny), lens) if scheme == "rkc2" else 1
    nworkers = st.fft_workers(nx * ny, workers, THREADED_MIN_NODES)

    batch = u_arr.shape[:-2]
    nb = math.prod(batch)
    out_u = np.empty((nb, len(times), nx, ny))
    out_v = np.empty((nb, len(times), nx, ny))
    steps = 0
    if nb and scheme in EXPLICIT_SCHEMES:
        u_flat, v_flat = u_arr.reshape(nb, nx, ny), v_arr.reshape(nb, nx, ny)
        spacing = (lens[0] / nx, lens[1] / ny)
        with np.errstate(over="ignore", invalid="ignore"):
            for b in range(nb):
                steps = _integrate_explicit(u_flat[b], v_flat[b], scheme, stages, (Du, Dv, F, k),
                                            spacing, dt_used, per, out_u[b], out_v[b])
    elif nb:
        u_flat, v_flat = u_arr.reshape(nb, nx, ny), v_arr.reshape(nb, nx, ny)
        lam = laplacian_eigenvalues((nx, ny), lens)
        tr = _Transform(ny, nworkers)
        chunk = max(1, CHUNK_NODES // (nx * ny))
        for b0 in range(0, nb, chunk):
            b1 = min(nb, b0 + chunk)
            phys = np.empty((2, b1 - b0, nx, ny))
            np.subtract(1.0, u_flat[b0:b1], out=phys[0])
            phys[1] = v_flat[b0:b1]
            with np.errstate(over="ignore", invalid="ignore"):
                steps = _integrate(phys, lam, np.array([Du, Dv]), np.array([F, F + k]), scheme,
                                   dt_used, per, out_u[b0:b1], out_v[b0:b1], tr)
    shape = batch + (len(times), nx, ny)
    u = out_u.reshape(shape)
    v = out_v.reshape(shape)
    u = back_u(u) if back_u else u
    v = back_v(v) if back_v else v
    if not return_info:
        return u, v
    info = SolveInfo(scheme=scheme, dt=float(dt_used), steps=int(steps), times=times,
                     dt_stable=limit, seconds=time.perf_counter() - t_start, stages=stages)
    return u, v, info


def initial_perturbation(shape: Sequence[int], lengths: float | Sequence[float],
                         rng: np.random.Generator | int, *, n_patches: int | None = None,
                         patch_size: float | None = None, noise: float = 0.01) -> tuple[np.ndarray,
                                                                                           np.ndarray]:
    """Pearson's initial condition: the trivial state with a few perturbed square patches.

    u = 1, v = 0 everywhere except in ``n_patches`` squares of side ``patch_size`` at random
    positions (wrapping around the periodic boundary), where u = 1/2, v = 1/4; then uniform
    noise in [−noise, noise] is added to both fields everywhere and the result clipped to
    [0, 1] (where the stability bound of :func:`solve` holds).

    Parameters
    ----------
    shape : (..., nx, ny)
        Output shape; leading axes are a batch, each sample with its own patches.
    lengths : float or (Lx, Ly)
        Domain lengths in axis order (node x_i = i·Lx/nx).
    rng : numpy.random.Generator or int
        Source of randomness (an int is a seed for ``numpy.random.default_rng``).
    n_patches : int, optional
        Number of squares per sample (≥ 0; they may overlap). Default
        max(1, round(:data:`PATCH_DENSITY`·Lx·Ly)): 19 on Pearson's 2.5 × 2.5 square, 5 on
        1.25 × 1.25, so that patterns fill the domain in about the same time.
    patch_size : float, optional
        Side of the squares in length units; default 0.08·min(Lx, Ly) (Pearson: 20 nodes of
        256 on a side of 2.5).
    noise : float, default 0.01
        Amplitude of the additive uniform noise (≥ 0).

    Returns
    -------
    u0, v0 : ndarray, float64, shape ``shape``
    """
    shape_t = tuple(int(n) for n in shape)
    if len(shape_t) < 2 or any(n < 1 for n in shape_t):
        raise ValueError(f"shape must be (..., nx, ny) with positive entries; got {shape!r}.")
    lx, ly = st.normalize_lengths(lengths, 2)
    if n_patches is None:
        n_patches = max(1, round(PATCH_DENSITY * lx * ly))
    if isinstance(n_patches, bool) or not isinstance(n_patches, (int, np.integer)) or n_patches < 0:
        raise ValueError(f"n_patches must be an integer >= 0; got {n_patches!r}.")
    if patch_size is None:
        patch_size = 0.08 * min(lx, ly)
    patch_size = check_number(patch_size, "patch_size", hint=" (side in length units)")
    noise = check_number(noise, "noise", strict=False, hint=" (noise amplitude)")
    if not isinstance(rng, np.random.Generator):
        if isinstance(rng, bool) or not isinstance(rng, (int, np.integer)):
            raise ValueError(f"rng must be a numpy.random.Generator or an int seed; got {rng!r}.")
        rng = np.random.default_rng(int(rng))
    nx, ny = shape_t[-2:]
    nb = math.prod(shape_t[:-2])
    u = np.ones((nb, nx, ny))
    v = np.zeros((nb, nx, ny))
    sx = max(1, round(patch_size / lx * nx))
    sy = max(1, round(patch_size / ly * ny))
    rows = np.arange(sx)
    cols = np.arange(sy)
    for b in range(nb):
        for _ in range(n_patches):
            i0, j0 = int(rng.integers(nx)), int(rng.integers(ny))
            idx = np.ix_((i0 + rows) % nx, (j0 + cols) % ny)
            u[b][idx] = 0.5
            v[b][idx] = 0.25
    if noise:
        u += rng.uniform(-noise, noise, u.shape)
        v += rng.uniform(-noise, noise, v.shape)
    np.clip(u, 0.0, 1.0, out=u)
    np.clip(v, 0.0, 1.0, out=v)
    return u.reshape(shape_t), v.reshape(shape_t)
