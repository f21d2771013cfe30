"""Elliptic dataset problems: Poisson and Darcy."""

from __future__ import annotations

import numpy as np

from ... import fields
from ...grid import Grid
from .base import FieldSpec, Problem, register
from .common import check_grf, grf_kwargs

# ----------------------------------------------------------------------------- poisson

def _draw_poisson(params: dict, grid: Grid, rng: np.random.Generator) -> dict[str, np.ndarray]:
    from ...solvers import poisson

    periodic = all(b == "periodic" for b in grid.bc)
    f = fields.grf(grid, rng, zero_mean=periodic, **grf_kwargs(params))
    u = poisson.solve(f, lengths=grid.lengths, bc=params["bc"])
    return {"f": f, "u": u}


def _check_poisson(params: dict) -> None:
    check_grf(params)
    bc = params["bc"]
    if not isinstance(bc, str):
        raise ValueError(f"bc={bc!r}: the poisson problem takes one boundary condition for all "
                         "axes, 'dirichlet' or 'periodic'")


POISSON = register(Problem(
    name="poisson",
    description="-Laplace(u) = f, source f a Matérn GRF, exact discrete solution u "
                "(second-order (2d+1)-point stencil, DST-I/FFT solve)",
    defaults={"dim": 2, "resolution": 64, "lengths": 1.0, "bc": "dirichlet",
              "length_scale": 1 / 3, "smoothness": 1.0, "amplitude": 1.0},
    inputs=(FieldSpec("f", "source term f of -Laplace(u) = f", "1/length^2 (u units)"),),
    outputs=(FieldSpec("u", "solution u, zero on Dirichlet boundaries", "u units"),),
    draw=_draw_poisson,
    check=_check_poisson,
))


# ----------------------------------------------------------------------------- darcy

def _draw_darcy(params: dict, grid: Grid, rng: np.random.Generator) -> dict[str, np.ndarray]:
    from ...solvers import darcy

    psi = fields.grf(grid, rng, **grf_kwargs(params))
    if params["coefficient"] == "threshold":
        a = fields.threshold(psi, low=params["a_low"], high=params["a_high"], level=params["level"])
    else:
        a = fields.lognormal(psi)
    u = darcy.solve(a, params["source"], lengths=grid.lengths, method=params["method"])
    return {"a": a, "u": u}


def darcy_methods() -> tuple[str, ...]:
    from ...solvers.darcy import METHODS

    return METHODS


def _check_darcy(params: dict) -> None:
    check_grf(params)
    if params["dim"] < 2:
        raise ValueError("the darcy problem needs dim=2 or dim=3")
    if params["coefficient"] not in ("threshold", "lognormal"):
        raise ValueError(f"coefficient={params['coefficient']!r}; use 'threshold' or 'lognormal'")
    if not (params["a_low"] > 0 and params["a_high"] > 0):
        raise ValueError(f"a_low={params['a_low']!r} and a_high={params['a_high']!r} must be > 0")
    if not np.isfinite(params["source"]):
        raise ValueError(f"source={params['source']!r} must be a finite number")
    if params["method"] not in darcy_methods():
        raise ValueError(f"method={params['method']!r}; use one of {darcy_methods()}")


DARCY = register(Problem(
    name="darcy",
    description="-div(a grad u) = source, a = thresholded (two-phase) or log-normal GRF, "
                "u = 0 on the boundary (harmonic-mean faces; sparse direct, AMG-CG or DST-preconditioned CG)",
    defaults={"dim": 2, "resolution": 64, "lengths": 1.0, "length_scale": 1 / 3,
              "smoothness": 1.0, "amplitude": 1.0, "coefficient": "threshold",
              "a_low": 3.0, "a_high": 12.0, "level": 0.0, "source": 1.0, "method": "auto"},
    inputs=(FieldSpec("a", "diffusion coefficient a(x) > 0", "1"),),
    outputs=(FieldSpec("u", "pressure/potential u, zero on the boundary", "1"),),
    draw=_draw_darcy,
    check=_check_darcy,
))
