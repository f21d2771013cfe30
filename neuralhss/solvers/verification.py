"""Manufactured solutions and convergence studies: how the solvers' accuracy is established.

Each manufactured solution is a smooth ``u`` that satisfies the boundary conditions, with the
source ``f`` (and coefficient ``a``) computed from it analytically; the discrete solution is
compared with ``u`` at the nodes in the max norm on grids whose spacing halves, and the
observed order is ``log2(e_h / e_{h/2})``. ``tests/test_poisson.py`` and ``tests/test_darcy.py``
assert orders in [1.9, 2.1]; ``examples/convergence_orders.py`` prints the tables of ``docs/solvers.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..grid import Grid
from . import darcy, poisson

#: Box side lengths used by the studies (unequal, so that axis mix-ups would show).
LENGTHS = (1.0, 2.0, 0.5)

#: Node counts per axis of the four grids (three refinements, h halves each time).
GRIDS = {
    ("poisson", "dirichlet"): {1: [15, 31, 63, 127], 2: [15, 31, 63, 127], 3: [7, 15, 31, 63]},
    ("poisson", "periodic"): {1: [16, 32, 64, 128], 2: [16, 32, 64, 128], 3: [12, 24, 48, 96]},
    ("darcy", "dirichlet"): {1: [31, 63, 127, 255], 2: [15, 31, 63, 127], 3: [7, 15, 31, 63]},
}


def nodes(shape: Sequence[int], lengths: Sequence[float], bcs: Sequence[str]) -> list[np.ndarray]:
    """Nodal coordinates (``indexing="ij"``, x first): :meth:`neuralhss.grid.Grid.meshgrid`."""
    return list(Grid(tuple(shape), tuple(lengths), tuple(bcs)).meshgrid())


def _dirichlet_factor(x: np.ndarray, L: float):
    """s = sin(πx/L)·exp(x/L), s' and s'': zero at both ends, not a stencil eigenvector."""
    xi = x / L
    e = np.exp(xi)
    s = np.sin(np.pi * xi) * e
    s1 = (np.pi * np.cos(np.pi * xi) + np.sin(np.pi * xi)) * e / L
    s2 = ((1 - np.pi**2) * np.sin(np.pi * xi) + 2 * np.pi * np.cos(np.pi * xi)) * e / L**2
    return s, s1, s2


def _periodic_factor(x: np.ndarray, L: float):
    """s = exp(sin(2πx/L)), s' and s''."""
    w = 2 * np.pi / L
    s = np.exp(np.sin(w * x))
    s1 = w * np.cos(w * x) * s
    s2 = w**2 * (np.cos(w * x) ** 2 - np.sin(w * x)) * s
    return s, s1, s2


def manufactured_poisson(shape: Sequence[int], lengths: Sequence[float], bc: str):
    """``(u, f)`` with ``-Δu = f``, ``u`` a product of 1-D factors satisfying ``bc``."""
    X = nodes(shape, lengths, (bc,) * len(shape))
    factor = _dirichlet_factor if bc == "dirichlet" else _periodic_factor
    parts = [factor(x, L) for x, L in zip(X, lengths, strict=True)]
    u = np.prod([p[0] for p in parts], axis=0)
    f = np.zeros_like(u)
    for k in range(len(shape)):
        others = [parts[j][0] for j in range(len(shape)) if j != k]
        f -= parts[k][2] * (np.prod(others, axis=0) if others else 1.0)
    return u, f


def manufactured_darcy(shape: Sequence[int], lengths: Sequence[float]):
    """``(a, f, u)`` with ``-∇·(a∇u) = f``, ``a = 1 + ½ sin(π Σ x_k/L_k + 1)`` in [½, 3/2]."""
    X = nodes(shape, lengths, ("dirichlet",) * len(shape))
    d = len(shape)
    parts = [_dirichlet_factor(x, L) for x, L in zip(X, lengths, strict=True)]
    phase = np.pi * sum(x / L for x, L in zip(X, lengths, strict=True)) + 1.0
    a = 1.0 + 0.5 * np.sin(phase)
    u = np.prod([p[0] for p in parts], axis=0)
    f = np.zeros_like(u)
    for k in range(d):
        others = np.prod([parts[j][0] for j in range(d) if j != k], axis=0) if d > 1 else 1.0
        da_k = 0.5 * np.cos(phase) * np.pi / lengths[k]
        f -= (da_k * parts[k][1] + a * parts[k][2]) * others
    return a, f, u


@dataclass
class Study:
    """Result of :func:`convergence_study`: max-norm errors and observed orders."""

    solver: str
    dim: int
    bc: str
    sizes: list[int]
    errors: list[float]

    @property
    def orders(self) -> np.ndarray:
        e = np.asarray(self.errors)
        return np.log2(e[:-1] / e[1:])


def convergence_study(solver: str, dim: int, bc: str = "dirichlet",
                      sizes: Sequence[int] | None = None) -> Study:
    """Errors of ``solver`` ("poisson" or "darcy") against its manufactured solution.

    Parameters
    ----------
    solver : {"poisson", "darcy"}
    dim : int
        1, 2 or 3.
    bc : {"dirichlet", "periodic"}
        Periodic only for Poisson.
    sizes : sequence of int, optional
        Nodes per axis of each grid; default :data:`GRIDS` (spacing halving).
    """
    key = (solver, bc)
    if key not in GRIDS:
        raise ValueError(f"no convergence study for solver={solver!r} with bc={bc!r}; "
                         f"available: {sorted(GRIDS)}")
    sizes = list(sizes or GRIDS[key][dim])
    lengths = LENGTHS[:dim]
    errors = []
    for n in sizes:
        shape = (n,) * dim
        if solver == "darcy":
            a, f, u = manufactured_darcy(shape, lengths)
            uh = darcy.solve(a, f, lengths=lengths)
        else:
            u, f = manufactured_poisson(shape, lengths, bc)
            if bc == "periodic":
                f = f - f.mean()  # the (spectrally small) quadrature error of the mean
                u = u - u.mean()  # the periodic solve returns the zero-mean solution
            uh = poisson.solve(f, lengths=lengths, bc=bc)
        errors.append(float(np.abs(uh - u).max()))
    return Study(solver, dim, bc, sizes, errors)


# --------------------------------------------------------------------------------------------
# Studies of the wave, fluid and reaction-diffusion solvers (their tests assert the same orders)

@dataclass
class OrderStudy:
    """Errors of one solver on a sequence of refinements and the observed orders.

    ``refinement`` names what halves between entries of ``sizes`` (grid spacing or time step).
    """

    name: str
    what: str
    refinement: str
    sizes: list[float]
    errors: list[float]

    @property
    def orders(self) -> np.ndarray:
        e = np.asarray(self.errors)
        return np.log2(e[:-1] / e[1:])


def helmholtz_study(k0: float = 8.0, loss: float = 0.2) -> OrderStudy:
    """−Δu − k0²ε u = f with a smooth, lossy ε on a 1 × 2 box (no PML), u = Π sin(πx/L)e^{x/L}.

    k0 = 8 makes the problem indefinite (above five cavity eigenvalues). Max-norm error.
    """
    from . import helmholtz

    lengths = LENGTHS[:2]
    sizes, errors = [15, 31, 63, 127], []
    for n in sizes:
        X = nodes((n, n), lengths, ("dirichlet", "dirichlet"))
        parts = [_dirichlet_factor(x, L) for x, L in zip(X, lengths, strict=True)]
        eps = 1.0 + 0.5 * np.sin(np.pi * (X[0] / lengths[0] + X[1] / lengths[1]) + 1.0) \
            + 1j * loss * (1.0 + np.cos(X[0]))
        u = parts[0][0] * parts[1][0]
        lap = parts[0][2] * parts[1][0] + parts[0][0] * parts[1][2]
        uh = helmholtz.solve(eps, -lap - k0**2 * eps * u, k0, lengths, pml=0)
        errors.append(float(np.abs(uh - u).max()))
    return OrderStudy("helmholtz", f"manufactured solution, k0={k0}, lossy variable eps_r",
                      "grid spacing", sizes, errors)


def maxwell_study(m: int = 1, n: int = 2, eps: float = 2.25, courant: float = 0.5) -> OrderStudy:
    """Frequency of the TM_mn mode of a PEC cavity (Lx × Ly = 1 × 1.5, ε_r = eps) vs the exact
    ω = π·sqrt((m/Lx)² + (n/Ly)²)/sqrt(ε_r), at a fixed Courant number; absolute error.

    The frequency is measured from the snapshots' projections e_k on the mode, which satisfy
    e_{k+1} + e_{k−1} = 2cos(ωτ)e_k exactly for a single discrete mode.
    """
    from . import maxwell

    lengths = (1.0, 1.5)
    sizes, errors = [16, 32, 64, 128], []
    for s in sizes:
        shape = (s - 1, round(1.5 * s) - 1)
        X, Y = nodes(shape, lengths, ("dirichlet", "dirichlet"))
        mode = np.sin(m * np.pi * X / lengths[0]) * np.sin(n * np.pi * Y / lengths[1])
        omega = maxwell.cavity_frequency(m, n, lengths, eps)
        dt = courant * maxwell.cfl_limit(eps, lengths, shape)
        snaps = 64
        per = max(1, round(2 * 2 * np.pi / omega / dt / snaps))
        t_final = snaps * per * dt
        ez = maxwell.solve(eps, t_final, ez0=mode, lengths=lengths, n_snapshots=snaps, dt=dt)
        e = np.concatenate([[np.sum(mode**2)], np.einsum("kij,ij->k", ez, mode)])
        cos = np.sum(e[1:-1] * (e[2:] + e[:-2])) / (2 * np.sum(e[1:-1] ** 2))
        errors.append(float(abs(np.arccos(cos) / (t_final / snaps) - omega)))
    return OrderStudy("maxwell", f"TM_{m}{n} cavity frequency, eps_r={eps}, Courant {courant}",
                      "grid spacing", [s - 1 for s in sizes], errors)


def navier_stokes_study(nu: float = 0.01, t_final: float = 1.0, dt: float = 0.005) -> OrderStudy:
    """Decaying Taylor–Green vortex on a 1 × 2 periodic box: relative max-norm error at T."""
    from . import navier_stokes as ns

    lengths = LENGTHS[:2]
    sizes, errors = [16, 32, 64], []
    for n in sizes:
        w0 = ns.taylor_green((n, n), lengths, 0.0, nu)
        w = ns.solve(w0, nu, t_final, dt=dt, lengths=lengths)
        exact = ns.taylor_green((n, n), lengths, t_final, nu)
        errors.append(float(np.abs(w[-1] - exact).max() / np.abs(exact).max()))
    return OrderStudy("navier_stokes", f"Taylor-Green vortex, nu={nu}, T={t_final}", "grid spacing",
                      sizes, errors)


def gray_scott_study(scheme: str = "sbdf2") -> OrderStudy:
    """Time convergence of a scheme on smooth data (32², active reaction), T = 10, against an
    SBDF2 dt = 1/512 reference; max-norm error in (u, v). Steps 1/2 … 1/16, halved until the
    first is below the scheme's stability bound (the explicit ab2: 1/4 … 1/32)."""
    from . import gray_scott as gs

    n, length = 32, 1.0
    x, y = Grid((n, n), length, "periodic").meshgrid()
    g = (np.exp(-((y - 0.4) ** 2 + (x - 0.55) ** 2) / (2 * 0.1**2))
         + 0.6 * np.exp(-((y - 0.75) ** 2 + (x - 0.2) ** 2) / (2 * 0.07**2)))
    args = {"u0": 1.0 - 0.5 * g, "v0": 0.25 * g, "Du": 2e-4, "Dv": 1e-4, "F": 0.04, "k": 0.06,
            "t_final": 10.0, "lengths": length}
    u_ref, v_ref = gs.solve(dt=1 / 512, scheme="sbdf2", **args)
    sizes, errors = [0.5, 0.25, 0.125, 0.0625], []
    while sizes[0] > gs.stability_bound(scheme, args["Du"], args["Dv"], args["F"], args["k"],
                                        (n, n), length):
        sizes = [dt / 2 for dt in sizes]
    for dt in sizes:
        u, v = gs.solve(dt=dt, scheme=scheme, **args)
        errors.append(float(max(np.abs(u - u_ref).max(), np.abs(v - v_ref).max())))
    return OrderStudy("gray_scott", f"scheme {scheme}, smooth data, T=10", "time step",
                      sizes, errors)


def more_studies() -> list[OrderStudy]:
    """All studies of the wave, fluid and reaction-diffusion solvers."""
    from .gray_scott import SCHEMES

    return [helmholtz_study(), maxwell_study(), navier_stokes_study()] + \
        [gray_scott_study(s) for s in SCHEMES]
