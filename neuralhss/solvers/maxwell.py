"""2-D Maxwell equations (TMz) in the time domain, Yee finite-difference time-domain scheme.

Equations
---------
Nondimensional units c0 = 1, μ = 1, ε = ε_r(x); fields E_z, H_x, H_y (TM polarisation)::

    ∂H_x/∂t = −∂E_z/∂y,   ∂H_y/∂t = ∂E_z/∂x,   ε_r ∂E_z/∂t = ∂H_y/∂x − ∂H_x/∂y − J_z,

with the current J_z(x, t) = source(x)·g(t). Time is in units of length/c0; wave speed
1/sqrt(ε_r).

Grid
----
Arrays are ``(..., n_x, n_y)`` in the package's axis convention: axis −2 is x, axis −1 is y,
and ``lengths = (L_x, L_y)`` follows the axis order; (x, y, z) is right-handed. E_z lives on
the interior nodes of the package grid (neuralhss.grid), x_i = i·h_x, i = 1..n_x,
h_x = L_x/(n_x+1) (same in y), and E_z = 0 on the box boundary (perfect electric conductor,
PEC; not stored). H_x sits at (x_i, y_{j+½}), shape (n_x, n_y+1); H_y at (x_{i+½}, y_j), shape
(n_x+1, n_y) — half a cell from E_z in space and half a step in time (leapfrog: E at
t_n = n·Δt, H at t_{n+½}). ε_r is given at the E_z nodes.

Scheme
------
Second order in space and time. Stable for Δt ≤ 1/(c_max·sqrt(1/h_x² + 1/h_y²)),
c_max = 1/sqrt(min ε_r) (the Courant–Friedrichs–Lewy limit of the 2-D Yee scheme); the default
step is ``courant`` = 0.9 of it, shortened so that the snapshot times are hit exactly. The
initial H = 0 at t = 0 is advanced to t = Δt/2 by a half step (third-order accurate, since
∂²H/∂t² = 0 at t = 0 when J(0) = 0). On a PEC box without sources the discrete energy::

    W^n = ½ Σ ε_r (E_z^n)² h_x h_y + ½ Σ (H^{n−½} · H^{n+½}) h_x h_y

is conserved exactly (to round-off); the "plain" energy with H at t_n taken as the mean of
the two half steps differs from it by ⅛ Σ |H^{n+½} − H^{n−½}|² = O(Δt²). Both are recorded at
the snapshot times (:class:`SolveInfo`).

Absorbing boundary
------------------
``boundary="absorbing"`` puts a split-field perfectly matched layer (Berenger) of ``pml``
nodes inside the box next to each wall, with E_z = 0 behind it: E_z = E_zx + E_zy, and x-derivative
terms (E_zx, H_y) are damped at rate σ_x, y-derivative terms (E_zy, H_x) at rate σ_y, with
σ(d) = σ_max·(d/δ)³ graded over δ = (pml+1)·h and σ_max = 4·A/δ, A = ``pml_strength`` = ∫σ dx: a
plane wave meeting the layer at angle θ returns with amplitude exp(−2·A·sqrt(ε_r)·cos θ) in the
continuous limit. The damping is integrated semi-implicitly (unconditionally stable, the CFL
limit is unchanged). Measured in ``tests/test_maxwell.py`` (default layer, 16 nodes and A = 8):
a Gaussian pulse on a 99² unit box keeps 4e-4 of its energy at t = 1 and 5e-6 at t = 3 (2-D
waves leave a slowly decaying wake), where a PEC box keeps all of it; compared with the same
pulse in a box 100 nodes wider on every side, the reflected field is 7e-7 of the initial peak.

Validated accuracy (``tests/test_maxwell.py``): the energy W of a lossless PEC cavity with
variable ε_r is constant to 2e-15 relative over 2200 steps (the plain energy varies by 3.3e-3
at Courant number 0.9, 9e-4 at 0.45); the frequency of cavity mode TM_mn matches the exact
discrete dispersion relation (:func:`cavity_frequency`) to 3e-14 and converges to
ω_mn = π·sqrt((m/L_x)² + (n/L_y)²)/sqrt(ε_r) at second order (observed 2.00–2.01 at fixed
Courant number); driven by J = j(x)·sin(ωt) with the absorbing layer, the steady state agrees
with :mod:`~neuralhss.solvers.helmholtz` to 1.4 % at 20 points per wavelength (the leapfrog's
temporal dispersion).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .._checks import check_number
from . import _stencils as st

__all__ = ["SolveInfo", "solve", "cfl_limit", "ricker", "cavity_frequency"]

BOUNDARIES = ("pec", "absorbing")
WAVEFORMS = ("ricker", "sine")

#: The Ricker wavelet peaks at t0 = RICKER_DELAY/frequency, where it has risen from 1e-10 of its
#: peak (so that switching it on at t = 0 is smooth to that level).
RICKER_DELAY = 1.5

#: Polynomial degree of the absorbing layer's conductivity profile.
PML_ORDER = 3

#: Default absorbing-layer width (nodes per wall) and nominal attenuation A = ∫σ dx, the same as
#: :mod:`~neuralhss.solvers.helmholtz`'s.
DEFAULT_PML = 16
DEFAULT_PML_STRENGTH = 8.0
#: The names before issue 15.
DEFAULT_WIDTH, DEFAULT_STRENGTH = DEFAULT_PML, DEFAULT_PML_STRENGTH


@dataclasses.dataclass(frozen=True)
class SolveInfo:
    """What an FDTD run did.

    Attributes
    ----------
    dt : float
        Time step used (≤ the requested or default step, so that snapshots land exactly).
    n_steps : int
        Number of time steps to ``t_final``.
    times : ndarray, shape (n_snapshots,)
        Snapshot times t_k = k·t_final/n_snapshots.
    dt_limit : float
        The CFL limit 1/(c_max·sqrt(1/h_x² + 1/h_y²)), c_max = 1/sqrt(min ε_r).
    energy : ndarray, shape (..., n_snapshots + 1)
        Discrete energy W^n = ½Σε_r(E^n)² + ½ΣH^{n−½}·H^{n+½} (times h_x h_y) at t = 0 and at
        every snapshot; exactly conserved on a PEC box without sources.
    energy_plain : ndarray, shape (..., n_snapshots + 1)
        ½Σ ε_r (E^n)² + ½Σ |H^n|² with H^n = (H^{n−½} + H^{n+½})/2; within O(Δt²) of ``energy``.
    seconds : float
        Wall time of the call.
    """

    dt: float
    n_steps: int
    times: np.ndarray
    dt_limit: float
    energy: np.ndarray
    energy_plain: np.ndarray
    seconds: float


def ricker(t: Any, frequency: float) -> Any:
    """Ricker wavelet (1 − 2a²)·exp(−a²), a = π·f·(t − t0), t0 = ``RICKER_DELAY``/f.

    Peak value 1 at t0; spectrum peaked at ``frequency`` f (cycles per unit time).
    """
    a = np.pi * frequency * (np.asarray(t) - RICKER_DELAY / frequency)
    return (1.0 - 2.0 * a**2) * np.exp(-(a**2))


def cfl_limit(eps_min: float, lengths: float | Sequence[float], shape: Sequence[int]) -> float:
    """Largest stable Yee time step 1/(c_max·sqrt(1/h_x² + 1/h_y²)), c_max = 1/sqrt(eps_min).

    ``shape`` = (n_x, n_y) interior nodes, ``lengths`` = (L_x, L_y) (or one number for both).
    """
    lens = st.normalize_lengths(lengths, 2)
    h = [L / (n + 1) for L, n in zip(lens, shape, strict=True)]
    return math.sqrt(eps_min) / math.sqrt(1.0 / h[0] ** 2 + 1.0 / h[1] ** 2)


def cavity_frequency(m: int, n: int, lengths: float | Sequence[float] = 1.0, eps_r: float = 1.0,
                     shape: Sequence[int] | None = None, dt: float | None = None) -> float:
    """Angular frequency of the PEC-cavity mode E_z = sin(mπx/L_x)·sin(nπy/L_y).

    ``m`` counts half-waves along x (array axis 0), ``n`` along y (axis 1); ``lengths`` =
    (L_x, L_y). Without ``shape``: the continuous ω = π·sqrt((m/L_x)² + (n/L_y)²)/sqrt(ε_r).
    With ``shape`` (n_x, n_y) and ``dt``: the Yee scheme's exact discrete frequency,
    sin(ωΔt/2) = (Δt/2)·sqrt(λ/ε_r), λ = Σ_k (4/h_k²)·sin²(m_k π h_k/(2L_k)) (the mode shape is
    an exact eigenvector of the discrete curl-curl operator).
    """
    lx, ly = st.normalize_lengths(lengths, 2)
    if shape is None:
        return math.pi * math.hypot(m / lx, n / ly) / math.sqrt(eps_r)
    if dt is None:
        raise ValueError("dt is required with shape (the discrete frequency depends on the step).")
    hx, hy = lx / (shape[0] + 1), ly / (shape[1] + 1)
    lam = (4 / hx**2) * math.sin(m * math.pi * hx / (2 * lx)) ** 2 \
        + (4 / hy**2) * math.sin(n * math.pi * hy / (2 * ly)) ** 2
    return (2.0 / dt) * math.asin(0.5 * dt * math.sqrt(lam / eps_r))


def _layer_profile(n: int, length: float, width: int, strength: float) -> tuple[np.ndarray, np.ndarray]:
    """Damping rate σ at the nodes (n,) and at the half-nodes (n+1,) of one axis."""
    h = st.spacing(n, length, "dirichlet")
    delta = (width + 1) * h
    sigma_max = (PML_ORDER + 1) * strength / delta

    def sigma(x: np.ndarray) -> np.ndarray:
        depth = np.maximum(np.maximum(delta - x, x - (length - delta)), 0.0) / delta
        return sigma_max * depth**PML_ORDER

    return sigma(st.node_coords(n, length, "dirichlet")), sigma((np.arange(n + 1) + 0.5) * h)


def _waveform(waveform: Any, frequency: Any) -> Callable[[float], float]:
    if callable(waveform):
        if frequency is not None:
            raise ValueError("frequency is only used by the built-in waveforms; with a callable "
                             "waveform pass frequency=None.")
        return lambda t: float(waveform(t))
    if not isinstance(waveform, str) or waveform not in WAVEFORMS:
        raise ValueError(f"waveform must be one of {WAVEFORMS} or a callable g(t) -> float; got "
                         f"{waveform!r}.")
    f = check_number(frequency, "frequency", hint=f" (cycles per unit time) for waveform={waveform!r}")
    if waveform == "ricker":
        return lambda t: float(ricker(t, f))
    return lambda t: math.sin(2.0 * math.pi * f * t)


@st.call_shape(6, ("dt", "lengths", "boundary", "n_snapshots", "courant", "width", "strength",
                   "return_info"), {"width": "pml", "strength": "pml_strength"})
def solve(eps_r: Any, t_final: float, ez0: Any = None, source: Any = None,
          frequency: float | None = None, waveform: str | Callable[[float], float] = "ricker", *,
          lengths: float | Sequence[float] = 1.0, boundary: str = "pec", dt: float | None = None,
          n_snapshots: int = 1, courant: float = 0.9, pml: int = DEFAULT_PML,
          pml_strength: float = DEFAULT_PML_STRENGTH, return_info: bool = False) -> Any:
    """Run the 2-D TMz Yee scheme from t = 0 to ``t_final`` and return E_z snapshots.

    Fields and physical parameters are positional, numerical options keyword-only (the
    package's ``solve`` shape). Until 0.2 the options after ``waveform`` are still accepted by
    position and ``width``/``strength`` as the old names of ``pml``/``pml_strength``, with a
    ``DeprecationWarning``.

    Parameters
    ----------
    eps_r : float, array_like or torch.Tensor, shape (..., n_x, n_y)
        Relative permittivity (real, finite, > 0) at the E_z nodes; a scalar is a homogeneous
        medium (the grid shape then comes from ez0 or source). Leading axes are a batch.
    t_final : float
        Final time (> 0), in units of length/c0.
    ez0 : array_like or torch.Tensor, shape (..., n_x, n_y), optional
        Initial E_z at the interior nodes x_j = j·L/(n+1) (default 0). H = 0 at t = 0.
    source : array_like or torch.Tensor, shape (..., n_x, n_y), optional
        Spatial profile of the current density J_z(x, t) = source(x)·g(t); at least one of ez0
        and source must be given. A point current of unit strength is 1/(h_x h_y) at one node.
    frequency : float, optional
        Frequency f (cycles per unit time) of the built-in waveform: the peak frequency of the
        Ricker wavelet, or the frequency of the sine. Required with ``source`` unless
        ``waveform`` is a callable.
    waveform : {"ricker", "sine"} or callable, default "ricker"
        g(t): "ricker" = :func:`ricker` (peak at 1.5/f, ~0 at t = 0); "sine" = sin(2πft);
        or any callable float -> float. J is sampled at the half steps t_{n+½}.
    lengths : float or pair of floats, default 1.0
        Box lengths (L_x, L_y), in axis order.
    boundary : {"pec", "absorbing"}, default "pec"
        "pec": E_z = 0 on the walls (a closed, lossless cavity). "absorbing": a split-field PML
        of ``pml`` nodes inside the box next to every wall, PEC behind it (module docstring);
        the physical region is then the inner n − 2·pml nodes per axis.
    dt : float, optional
        Time step; default ``courant`` × the CFL limit. Must not exceed the limit
        1/(c_max·sqrt(1/h_x² + 1/h_y²)), c_max = 1/sqrt(min ε_r) over the batch. Shortened if
        needed so that every snapshot time is a whole number of steps.
    n_snapshots : int, default 1
        Number of output times t_k = k·t_final/n_snapshots, k = 1..n (t = 0 not repeated).
    courant : float, default 0.9
        Default step as a fraction of the CFL limit, in (0, 1].
    pml : int, default 16
        Absorbing-layer width in nodes per wall (``boundary="absorbing"`` only); 2·pml < n.
        Formerly ``width``.
    pml_strength : float, default 8.0
        Nominal attenuation A = ∫σ dx of the absorbing layer (normal-incidence continuous
        reflection exp(−2A·sqrt(ε_r))). Formerly ``strength``.
    return_info : bool, default False
        Also return a :class:`SolveInfo` (step, step count, times, energy history).

    Returns
    -------
    ez : same kind as the inputs, shape (..., n_snapshots, n_x, n_y)
        E_z at the snapshot times; leading axes = the broadcast batch axes of eps_r, ez0 and
        source. float64 NumPy, or a tensor on the first tensor input's device and dtype.
    info : SolveInfo
        Only with ``return_info=True``.

    Raises
    ------
    ValueError
        NaN/Inf in any input, eps_r ≤ 0, mismatched spatial shapes or batch axes that do not
        broadcast, neither ez0 nor source, a source without a waveform frequency, dt above the
        CFL limit (the message gives the limit), bad courant, boundary, pml or pml_strength,
        t_final ≤ 0, n_snapshots < 1.

    Notes
    -----
    Cost O(n_x·n_y) per step and sample; a batch is advanced together with NumPy array
    operations. Second order (cavity-mode frequency error observed order 2.00–2.01,
    ``tests/test_maxwell.py``).
    """
    t_start = time.perf_counter()
    if not isinstance(boundary, str) or boundary not in BOUNDARIES:
        raise ValueError(f"boundary must be one of {BOUNDARIES}; got {boundary!r}.")
    if isinstance(courant, bool) or not isinstance(courant, (int, float, np.integer, np.floating)) \
            or not 0.0 < float(courant) <= 1.0:
        raise ValueError(f"courant must be a number in (0, 1] (fraction of the CFL limit); got "
                         f"{courant!r}.")
    if ez0 is None and source is None:
        raise ValueError("pass ez0 (initial E_z) and/or source (current profile); with neither the "
                         "field stays zero.")
    g = _waveform(waveform, frequency) if source is not None else None
    if source is None and frequency is not None:
        raise ValueError("frequency is only used with a source; pass source= or drop frequency.")
    times = st.snapshot_times(t_final, n_snapshots)

    eps_arr, back = st.to_numpy(eps_r, "eps_r")
    arrays: dict[str, np.ndarray] = {}
    for name, value in (("ez0", ez0), ("source", source)):
        if value is not None:
            arrays[name], b = st.to_numpy(value, name)
            back = back if back is not None else b
    ref_name, ref = next(((k, v) for k, v in (("eps_r", eps_arr), *arrays.items()) if v.ndim > 0),
                         ("eps_r", eps_arr))
    if ref.ndim < 2:
        raise ValueError(f"{ref_name} must have at least 2 axes (..., n_x, n_y); got shape "
                         f"{ref.shape}.")
    shape = st.check_spatial_shape(ref.shape[-2:], ref_name)
    if eps_arr.ndim == 0:
        eps_arr = np.broadcast_to(eps_arr, shape)
    for name, arr in (("eps_r", eps_arr), *arrays.items()):
        if arr.ndim < 2 or arr.shape[-2:] != shape:
            raise ValueError(f"{name} must have the spatial shape {shape} of {ref_name} in its last "
                             f"2 axes; got shape {arr.shape}.")
        st.check_finite(arr, name)
    if eps_arr.size and not (eps_arr.min() > 0):
        raise ValueError(f"eps_r must be strictly positive everywhere (min {eps_arr.min():.3g}); "
                         f"pass a physical relative permittivity.")
    lens = st.normalize_lengths(lengths, 2)
    if boundary == "absorbing":
        if isinstance(pml, bool) or not isinstance(pml, (int, np.integer)) or pml < 1:
            raise ValueError(f"pml must be an integer >= 1 (absorbing-layer width in nodes per "
                             f"wall); got {pml!r}.")
        if any(n - 2 * int(pml) < 1 for n in shape):
            raise ValueError(f"pml={pml} (absorbing-layer width) leaves no physical region on a "
                             f"{shape} grid (needs 2·pml < n); use a finer grid or pml <= "
                             f"{(min(shape) - 1) // 2}.")
        pml_strength = check_number(pml_strength, "pml_strength",
                                    hint=" (nominal attenuation ∫σ dx of the absorbing layer)")

    try:
        batch = np.broadcast_shapes(*(a.shape[:-2] for a in (eps_arr, *arrays.values())))
    except ValueError:
        shapes = {k: v.shape[:-2] for k, v in (("eps_r", eps_arr), *arrays.items())}
        raise ValueError(f"batch axes {shapes} do not broadcast; give the inputs equal leading "
                         f"shapes (or none).") from None

    eps_min = float(eps_arr.min()) if eps_arr.size else 1.0
    limit = cfl_limit(eps_min, lens, shape)
    if dt is None:
        dt_max = float(courant) * limit
    else:
        dt_max = check_number(dt, "dt")
        if dt_max > limit * (1 + 1e-12):
            raise ValueError(f"dt={dt_max:.6g} exceeds the CFL limit {limit:.6g} of the Yee scheme "
                             f"(1/(c_max·sqrt(1/hx²+1/hy²)), c_max = 1/sqrt(min eps_r)); pass "
                             f"dt <= {limit:.6g} or leave dt=None.")
    step, steps = st.steps_between(times, dt_max)

    run = _Yee(np.broadcast_to(eps_arr, batch + shape).reshape((-1,) + shape), lens, step,
               boundary, int(pml), float(pml_strength))
    nb = run.ez.shape[0]
    if "ez0" in arrays:
        run.set_initial(np.broadcast_to(arrays["ez0"], batch + shape).reshape((-1,) + shape))
    cj = None
    if "source" in arrays:
        j = np.broadcast_to(arrays["source"], batch + shape).reshape((-1,) + shape)
        cj = run.dt_over_eps * j
    out = np.empty((nb, len(times)) + shape)
    energy = np.empty((nb, len(times) + 1))
    plain = np.empty((nb, len(times) + 1))
    energy[:, 0], plain[:, 0] = run.energies(None)
    t_index = 0
    for k, count in enumerate(steps):
        for s in range(int(count)):
            last = s == count - 1
            src = None if g is None else g(step * (t_index + 0.5))
            h_prev = run.step(cj, src, keep_h=last)
            t_index += 1
        out[:, k] = run.field()
        energy[:, k + 1], plain[:, k + 1] = run.energies(h_prev)

    out = out.reshape(batch + (len(times),) + shape)
    result = back(out) if back is not None else out
    if return_info:
        info = SolveInfo(step, int(steps.sum()), times, limit,
                         energy.reshape(batch + (len(times) + 1,)),
                         plain.reshape(batch + (len(times) + 1,)), time.perf_counter() - t_start)
        return result, info
    return result


class _Yee:
    """State and update of a batch of 2-D TMz Yee grids (E_z padded with its PEC zeros).

    x is axis −2, y axis −1: H_x (from ∂E_z/∂y) lives on the y-faces, shape (nb, n_x, n_y+1),
    H_y (from ∂E_z/∂x) on the x-faces, shape (nb, n_x+1, n_y).
    """

    def __init__(self, eps: np.ndarray, lengths: Sequence[float], dt: float, boundary: str,
                 width: int, strength: float) -> None:
        nb, nx, ny = eps.shape
        self.dx, self.dy = lengths[0] / (nx + 1), lengths[1] / (ny + 1)  # grid spacings
        self.dt = dt
        self.eps = np.ascontiguousarray(eps)
        self.dt_over_eps = dt / self.eps
        self.absorbing = boundary == "absorbing"
        self.ezp = np.zeros((nb, nx + 2, ny + 2))  # E_z with its zero boundary values
        self.ez = self.ezp[:, 1:-1, 1:-1]
        self.hx = np.zeros((nb, nx, ny + 1))       # at (x_i, y_{j+½})
        self.hy = np.zeros((nb, nx + 1, ny))       # at (x_{i+½}, y_j)
        self.buf_hx = np.empty_like(self.hx)
        self.buf_hy = np.empty_like(self.hy)
        self.buf_e = np.empty((nb, nx, ny))
        if self.absorbing:
            sx_node, sx_face = _layer_profile(nx, lengths[0], width, strength)
            sy_node, sy_face = _layer_profile(ny, lengths[1], width, strength)

            def coefficients(sigma: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray]:
                # ∂u/∂t + σu = r  →  u⁺ = a·u + b·r, a = (1 − σΔt/2)/(1 + σΔt/2), b = Δt/(1 + σΔt/2)
                return (1 - 0.5 * sigma * step) / (1 + 0.5 * sigma * step), step / (1 + 0.5 * sigma * step)

            self.a_ey, self.b_ey = coefficients(sy_node[None, None, :], dt)
            self.a_ex, self.b_ex = coefficients(sx_node[None, :, None], dt)
            self.a_hy, self.b_hy = coefficients(sx_face[None, :, None], dt)
            self.a_hx, self.b_hx = coefficients(sy_face[None, None, :], dt)
            self.b_hy_half = coefficients(sx_face[None, :, None], 0.5 * dt)[1]
            self.b_hx_half = coefficients(sy_face[None, None, :], 0.5 * dt)[1]
            self.src_y, self.src_x = self.b_ey / dt, self.b_ex / dt  # J enters like the curl term
            self.ezy = np.zeros((nb, nx, ny))
            self.ezx = np.zeros((nb, nx, ny))
            self.b_ey = self.b_ey / (self.eps * self.dy)
            self.b_ex = self.b_ex / (self.eps * self.dx)
        else:
            self.c_ey = self.dt_over_eps / self.dy
            self.c_ex = self.dt_over_eps / self.dx

    def set_initial(self, ez0: np.ndarray) -> None:
        self.ez[...] = ez0
        if self.absorbing:
            self.ezy[...] = 0.5 * ez0
            self.ezx[...] = 0.5 * ez0
        self._advance_h(half=True)  # H^{½} from H^0 = 0

    def _advance_h(self, half: bool = False) -> None:
        np.subtract(self.ezp[:, 1:, 1:-1], self.ezp[:, :-1, 1:-1], out=self.buf_hy)  # h_x·∂E/∂x
        np.subtract(self.ezp[:, 1:-1, 1:], self.ezp[:, 1:-1, :-1], out=self.buf_hx)  # h_y·∂E/∂y
        if self.absorbing:
            if half:  # H^0 = 0, so only the source term of the damped update remains
                self.hy[...] = (self.b_hy_half / self.dx) * self.buf_hy
                self.hx[...] = -(self.b_hx_half / self.dy) * self.buf_hx
                return
            self.hy *= self.a_hy
            self.buf_hy *= self.b_hy / self.dx
            self.hy += self.buf_hy
            self.hx *= self.a_hx
            self.buf_hx *= self.b_hx / self.dy
            self.hx -= self.buf_hx
            return
        step = 0.5 * self.dt if half else self.dt
        self.buf_hy *= step / self.dx
        self.buf_hx *= step / self.dy
        self.hy += self.buf_hy
        self.hx -= self.buf_hx

    def step(self, cj: np.ndarray | None, g: float | None,
             keep_h: bool) -> tuple[np.ndarray, np.ndarray] | None:
        """E^n → E^{n+1} with H^{n+½}, then H^{n+½} → H^{n+3/2}; optionally return H^{n+½}."""
        buf = self.buf_e
        dy_hx = np.subtract(self.hx[:, :, 1:], self.hx[:, :, :-1], out=buf)
        if self.absorbing:
            self.ezy *= self.a_ey
            self.ezy -= self.b_ey * dy_hx
            dx_hy = np.subtract(self.hy[:, 1:, :], self.hy[:, :-1, :], out=buf)
            self.ezx *= self.a_ex
            self.ezx += self.b_ex * dx_hy
            if cj is not None:
                # half of −J/ε into each split part (the sum E_z is what J drives)
                self.ezy -= (0.5 * g) * self.src_y * cj
                self.ezx -= (0.5 * g) * self.src_x * cj
            np.add(self.ezy, self.ezx, out=self.ez)
        else:
            dy_hx *= self.c_ey
            self.ez -= dy_hx
            dx_hy = np.subtract(self.hy[:, 1:, :], self.hy[:, :-1, :], out=buf)
            dx_hy *= self.c_ex
            self.ez += dx_hy
            if cj is not None:
                self.ez -= g * cj
        h_prev = (self.hx.copy(), self.hy.copy()) if keep_h else None
        self._advance_h()
        return h_prev

    def field(self) -> np.ndarray:
        return self.ez.copy()

    def energies(self, h_prev: tuple[np.ndarray, np.ndarray] | None) -> tuple[np.ndarray, np.ndarray]:
        """(W, plain) per sample: W = ½Σε E² + ½Σ H^{n−½}·H^{n+½}; plain uses the mean H."""
        area = self.dy * self.dx
        e_part = 0.5 * np.einsum("bij,bij,bij->b", self.eps, self.ez, self.ez)
        if h_prev is None:  # t = 0: H^{−½} = −H^{½} (H^0 = 0) for the undamped start
            hxm, hym = -self.hx, -self.hy
        else:
            hxm, hym = h_prev
        cross = 0.5 * (np.einsum("bij,bij->b", hym, self.hy) + np.einsum("bij,bij->b", hxm, self.hx))
        mean = 0.125 * (np.einsum("bij,bij->b", hym + self.hy, hym + self.hy)
                        + np.einsum("bij,bij->b", hxm + self.hx, hxm + self.hx))
        return area * (e_part + cross), area * (e_part + mean)
