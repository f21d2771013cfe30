"""Fluid-dynamics dataset problems: 2-D incompressible Navier–Stokes (vorticity form)."""

from __future__ import annotations

import numpy as np

from ... import fields
from ...grid import Grid
from .base import FieldSpec, Problem, register
from .common import check_choice, check_dim2, check_grf, check_int, check_positive, grf_kwargs

# The initial vorticity of Li et al.'s benchmark is the GRF with covariance 7^3 (-Δ + 49 I)^-2.5
# on the unit torus, mean mode removed: Matérn length 1/7, smoothness 1.5 (d = 2), and a
# root-mean-square of sqrt(Σ_{k≠0} 2·7^3 (4π²|k|² + 49)^-2.5) = 0.262 (same to 3 digits on every
# grid from 32² up).
LI_AMPLITUDE = 0.262


def _draw_navier_stokes(params: dict, grid: Grid, rng: np.random.Generator) -> dict[str, np.ndarray]:
    from ...solvers import navier_stokes

    w0 = fields.grf(grid, rng, zero_mean=True, **grf_kwargs(params))
    forcing = None if params["forcing"] == "none" else params["forcing"]
    w = navier_stokes.solve(w0, nu=params["nu"], t_final=params["t_final"], forcing=forcing,
                            lengths=grid.lengths, n_snapshots=params["n_snapshots"], cfl=params["cfl"])
    return {"w0": w0, "w": w}


def _check_navier_stokes(params: dict) -> None:
    check_dim2(params, "navier_stokes")
    if params["bc"] != "periodic":
        raise ValueError("the navier_stokes problem is periodic; use bc=periodic")
    check_grf(params)
    check_positive(params, "t_final", "cfl")
    if params["cfl"] > 1:
        raise ValueError(f"cfl={params['cfl']!r} is a fraction of the SSP-RK3 stability limit; "
                         "use 0 < cfl <= 1")
    if not (isinstance(params["nu"], (int, float)) and np.isfinite(params["nu"]) and params["nu"] >= 0):
        raise ValueError(f"nu={params['nu']!r} must be a finite number >= 0")
    check_int(params, "n_snapshots", 1)
    check_choice(params, "forcing", ("li", "none"))


def _times(params: dict) -> np.ndarray:
    from ...solvers._stencils import snapshot_times

    return snapshot_times(params["t_final"], params["n_snapshots"])


NAVIER_STOKES = register(Problem(
    name="navier_stokes",
    description="2-D incompressible Navier-Stokes, vorticity form on the periodic unit square "
                "(Arakawa Jacobian, SSP-RK3); initial vorticity GRF (Li et al.'s spectrum) -> "
                "vorticity trajectory; default: Li et al.'s forcing, nu = 1e-3",
    defaults={"dim": 2, "resolution": 64, "lengths": 1.0, "bc": "periodic",
              "length_scale": 1 / 7, "smoothness": 1.5, "amplitude": LI_AMPLITUDE,
              "nu": 1e-3, "forcing": "li", "t_final": 10.0, "n_snapshots": 10, "cfl": 0.5},
    inputs=(FieldSpec("w0", "initial vorticity w(x, 0) = dv/dx - du/dy", "1/time"),),
    outputs=(FieldSpec("w", "vorticity at the snapshot times t (last: t_final)", "1/time",
                       temporal=True),),
    draw=_draw_navier_stokes,
    check=_check_navier_stokes,
    snapshot_times=_times,
))
