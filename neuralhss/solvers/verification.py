"""Manufactured solutions and convergence studies: how the solvers' accuracy is established.

Each manufactured solution is a smooth ``u`` that satisfies the boundary conditions, with the
source ``f`` (and coefficient ``a``) computed from it analytically; the discrete solution is
compared with ``u`` at the nodes in the max norm on grids whose spacing halves, and the
observed order is ``log2(e_h / e_{h/2})``. ``tests/test_poisson.py`` and ``tests/test_darcy.py``
assert orders in [1.9, 2.1]; ``examples/convergence_orders.py`` prints the table the README shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

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
    """Nodal coordinates (``indexing="ij"``) of the package grid convention."""
    axes = [np.arange(1, n + 1) * L / (n + 1) if bc == "dirichlet" else np.arange(n) * L / n
            for n, L, bc in zip(shape, lengths, bcs, strict=True)]
    return np.meshgrid(*axes, indexing="ij")


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
