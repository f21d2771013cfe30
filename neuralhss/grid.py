"""Cartesian grids shared by the fields, the solvers and the datasets.

The package's one axis convention
---------------------------------
Array axis k is coordinate axis k, and the axes are named ``x``, ``y``, ``z`` in that order:
a field on a d-D grid is an array ``(..., n_x[, n_y[, n_z]])`` with leading batch axes and the
spatial axes last, row-major, and ``a[..., i, j]`` is the value at ``(x_i, y_j)``. Every
per-axis argument (``lengths``, ``bc``, ``shape``, a position such as a source centre, a
velocity or field component named after an axis) is given in this order: ``lengths = (L_x,
L_y)``, and "the x-component" means the component along array axis 0. Coordinate systems
named this way are right-handed: (x, y, z) = (axis 0, axis 1, axis 2), so a 2-D vorticity is
``∂v/∂x − ∂u/∂y`` with ``u`` along axis 0 and ``v`` along axis 1. Every solver in
:mod:`neuralhss.solvers`, every dataset problem and the HDF5 files (``coords/x`` is axis 0)
follow it.

Node positions
--------------
A Dirichlet axis of length ``L`` with ``n`` unknowns stores the interior nodes
``x_i = i*L/(n+1)``, ``i = 1..n`` (boundary values are zero and not stored); a periodic axis
stores ``x_i = i*L/n``, ``i = 0..n-1``. Lengths are in the user's length unit (dimensionless
by default); the grid attaches no physical unit of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

BOUNDARY_CONDITIONS = ("dirichlet", "periodic")
AXIS_NAMES = ("x", "y", "z")


def _per_axis(value: Any, dim: int, name: str) -> tuple:
    """Broadcast a scalar (or validate a sequence) to one entry per axis."""
    if isinstance(value, (str, int, float, np.integer, np.floating)):
        return (value,) * dim
    values = tuple(value)
    if len(values) != dim:
        raise ValueError(f"{name} has {len(values)} entries but the grid has {dim} axes; "
                         f"give one {name[:-1] if name.endswith('s') else name} per axis or a scalar")
    return values


@dataclass(frozen=True)
class Grid:
    """A tensor-product grid of nodes on the box ``[0, L_1] x ... x [0, L_d]``.

    Parameters
    ----------
    shape : int or sequence of int
        Number of stored nodes per axis, ``(n_1, ..., n_d)``, ``1 <= d <= 3``. An int makes a
        1-D grid.
    lengths : float or sequence of float, default 1.0
        Side lengths ``L_k`` of the box, one per axis or one for all.
    bc : {"dirichlet", "periodic"} or sequence of them, default "dirichlet"
        Boundary condition per axis. It decides where the nodes lie (module docstring).

    Examples
    --------
    >>> g = Grid((4, 8), lengths=(1.0, 2.0))
    >>> g.spacing
    (0.2, 0.2222222222222222)
    >>> g.coords(0)
    array([0.2, 0.4, 0.6, 0.8])
    """

    shape: tuple[int, ...]
    lengths: tuple[float, ...] = field(default=1.0)  # type: ignore[assignment]
    bc: tuple[str, ...] = field(default="dirichlet")  # type: ignore[assignment]

    def __post_init__(self) -> None:
        shape = (self.shape,) if isinstance(self.shape, (int, np.integer)) else tuple(self.shape)
        if not 1 <= len(shape) <= 3:
            raise ValueError(f"grid shape {shape} has {len(shape)} axes; 1, 2 or 3 are supported")
        if any(int(n) != n or n < 1 for n in shape):
            raise ValueError(f"grid shape {shape} must hold positive integers")
        shape = tuple(int(n) for n in shape)
        dim = len(shape)
        lengths = tuple(float(v) for v in _per_axis(self.lengths, dim, "lengths"))
        if any(not np.isfinite(v) or v <= 0 for v in lengths):
            raise ValueError(f"lengths {lengths} must be finite and positive")
        bc = tuple(str(b).lower() for b in _per_axis(self.bc, dim, "bcs"))
        for b in bc:
            if b not in BOUNDARY_CONDITIONS:
                raise ValueError(f"unknown boundary condition {b!r}; use one of {BOUNDARY_CONDITIONS}")
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "lengths", lengths)
        object.__setattr__(self, "bc", bc)

    @property
    def dim(self) -> int:
        """Number of spatial axes ``d``."""
        return len(self.shape)

    @property
    def size(self) -> int:
        """Number of stored nodes ``n_1 * ... * n_d``."""
        return int(np.prod(self.shape))

    @property
    def axis_names(self) -> tuple[str, ...]:
        """Names of the axes, ``("x", "y", "z")[:d]``."""
        return AXIS_NAMES[: self.dim]

    @property
    def spacing(self) -> tuple[float, ...]:
        """Node spacing per axis: ``L/(n+1)`` for Dirichlet, ``L/n`` for periodic."""
        return tuple(
            L / (n + 1) if b == "dirichlet" else L / n
            for n, L, b in zip(self.shape, self.lengths, self.bc, strict=True)
        )

    def coords(self, axis: int) -> np.ndarray:
        """Node coordinates along ``axis``, float64 of shape ``(n_axis,)``."""
        n, h = self.shape[axis], self.spacing[axis]
        start = 1 if self.bc[axis] == "dirichlet" else 0
        return h * np.arange(start, start + n, dtype=np.float64)

    def coordinates(self) -> tuple[np.ndarray, ...]:
        """Coordinates of every axis, one 1-D array each."""
        return tuple(self.coords(k) for k in range(self.dim))

    def meshgrid(self) -> tuple[np.ndarray, ...]:
        """Nodal coordinate arrays of shape ``self.shape`` each (``indexing="ij"``)."""
        return tuple(np.meshgrid(*self.coordinates(), indexing="ij"))

    def to_dict(self) -> dict[str, list]:
        """JSON-friendly description, inverse of :meth:`from_dict`."""
        return {"shape": list(self.shape), "lengths": list(self.lengths), "bc": list(self.bc)}

    @classmethod
    def from_dict(cls, d: dict[str, Sequence]) -> Grid:
        """Rebuild a grid from :meth:`to_dict` output."""
        return cls(tuple(d["shape"]), tuple(d["lengths"]), tuple(d["bc"]))
