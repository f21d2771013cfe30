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

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

BOUNDARY_CONDITIONS = ("dirichlet", "periodic")
AXIS_NAMES = ("x", "y", "z")


def axis_lengths(lengths: Any, dim: int) -> tuple[float, ...]:
    """Side lengths per axis: a scalar is used on every axis, a sequence needs ``dim`` entries.

    The one validation of ``lengths`` in the package (``Grid`` and every solver).

    Raises
    ------
    ValueError
        A sequence of the wrong length, or an entry that is not a finite number > 0.
    """
    if np.ndim(lengths) == 0:
        values = [lengths] * dim
    else:
        values = list(lengths) if isinstance(lengths, (list, tuple)) \
            else list(np.asarray(lengths).ravel())
        if len(values) != dim:
            raise ValueError(f"lengths has {len(values)} entries but the grid has {dim} axes; give a "
                             f"positive number or a sequence of {dim} positive numbers (one per "
                             f"spatial axis); got {lengths!r}.")
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise ValueError(f"lengths must be positive: every entry finite and positive; got "
                         f"{lengths!r}.") from None
    if not all(math.isfinite(v) and v > 0 for v in out):
        raise ValueError(f"lengths must be positive: every entry finite and positive; got "
                         f"{lengths!r}.")
    return out


def axis_bcs(bc: Any, dim: int) -> tuple[str, ...]:
    """Boundary condition per axis: one name for every axis or a sequence of ``dim`` names.

    The one validation of ``bc`` in the package (``Grid`` and every solver); names are
    case-insensitive and returned in lower case.
    """
    values = [bc] * dim if isinstance(bc, str) else list(bc) if isinstance(bc, (list, tuple)) \
        else None
    if values is None or len(values) != dim:
        raise ValueError(f"bc must be one of {BOUNDARY_CONDITIONS} or a sequence of {dim} of them "
                         f"(one per spatial axis); got {bc!r}.")
    out = []
    for v in values:
        if not isinstance(v, str) or v.lower() not in BOUNDARY_CONDITIONS:
            raise ValueError(f"unknown boundary condition {v!r}: bc must be one of "
                             f"{BOUNDARY_CONDITIONS} (per axis).")
        out.append(v.lower())
    return tuple(out)


def axis_spacing(n: int, length: float, bc: str) -> float:
    """Node spacing of one axis: ``L/(n+1)`` if Dirichlet (interior nodes), ``L/n`` if periodic."""
    return length / (n + 1) if bc == "dirichlet" else length / n


def axis_coords(n: int, length: float, bc: str) -> np.ndarray:
    """Node positions of one axis, float64 ``(n,)``: ``i·h``, i = 1..n (Dirichlet) or 0..n−1."""
    start = 1 if bc == "dirichlet" else 0
    return axis_spacing(n, length, bc) * np.arange(start, start + n, dtype=np.float64)


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
        lengths = axis_lengths(self.lengths, dim)
        bc = axis_bcs(tuple(self.bc) if not isinstance(self.bc, str) else self.bc, dim)
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
        return tuple(axis_spacing(n, L, b) for n, L, b in zip(self.shape, self.lengths, self.bc, strict=True))

    def coords(self, axis: int) -> np.ndarray:
        """Node coordinates along ``axis``, float64 of shape ``(n_axis,)``."""
        return axis_coords(self.shape[axis], self.lengths[axis], self.bc[axis])

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
