"""Biology dataset problems: Gray–Scott reaction–diffusion patterns."""

from __future__ import annotations

import numpy as np

from ...grid import Grid
from .base import FieldSpec, Problem, register
from .common import check_choice, check_dim2, check_int, check_positive


def _regimes() -> tuple[str, ...]:
    from ...solvers.gray_scott import REGIMES

    return tuple(REGIMES)


def _schemes() -> tuple[str, ...]:
    from ...solvers.gray_scott import SCHEMES

    return SCHEMES


def _draw_gray_scott(params: dict, grid: Grid, rng: np.random.Generator) -> dict[str, np.ndarray]:
    from ...solvers import gray_scott

    regime = gray_scott.REGIMES[params["regime"]]
    u0, v0 = gray_scott.initial_perturbation(grid.shape, grid.lengths, rng,
                                             n_patches=params["n_patches"], noise=params["noise"],
                                             patch_size=params["patch_size"])
    u, v = gray_scott.solve(u0, v0, Du=regime["Du"], Dv=regime["Dv"], F=regime["F"], k=regime["k"],
                            t_final=params["t_final"], lengths=grid.lengths,
                            n_snapshots=params["n_snapshots"], scheme=params["scheme"])
    return {"u0": u0, "v0": v0, "u": u, "v": v}


def _check_gray_scott(params: dict) -> None:
    check_dim2(params, "gray_scott")
    if params["bc"] != "periodic":
        raise ValueError("the gray_scott problem is periodic; use bc=periodic")
    check_choice(params, "regime", _regimes())
    check_choice(params, "scheme", _schemes())
    check_positive(params, "t_final", "patch_size")
    check_int(params, "n_snapshots", 1)
    check_int(params, "n_patches", 1)
    if not (isinstance(params["noise"], (int, float)) and 0 <= params["noise"] < 0.5):
        raise ValueError(f"noise={params['noise']!r} must be in [0, 0.5)")


def _times(params: dict) -> np.ndarray:
    from ...solvers._stencils import snapshot_times

    return snapshot_times(params["t_final"], params["n_snapshots"])


GRAY_SCOTT = register(Problem(
    name="gray_scott",
    description="Gray-Scott reaction-diffusion on a periodic square (explicit AB2 on the 5-point "
                "stencil by default, or IMEX schemes with FFT-implicit diffusion) "
                "in Pearson's units; random perturbation patches (u0, v0) -> pattern trajectories "
                "(u, v) for a named regime (spots, stripes, maze, ...)",
    # Side 1.25 on 64² nodes: twice Pearson's spacing (2.5/256), patterns about 5 nodes wide;
    # patches of Pearson's size 0.2. At this spacing the maze regime fills the box by t ≈ 1500,
    # while spots and stripes stay pinned to the initial patches up to t = 2500 (they need
    # Pearson's finer spacing or far longer times), hence the default.
    # scheme: the solver's time stepping (gray_scott.SCHEMES). The explicit "ab2" at its
    # default step: on this recipe's samples 0-3 (seed 0) its max-norm error at t = 2000
    # against an AB2 run at dt = 1/16 is at most 4.2e-3, SBDF2's at dt = 1 (the default
    # before; "scheme": "sbdf2" reproduces those files) up to 0.37, and a sample is several
    # times faster (benchmarks/bench_gray_scott_recipe.py).
    defaults={"dim": 2, "resolution": 64, "lengths": 1.25, "bc": "periodic", "regime": "maze",
              "t_final": 2000.0, "n_snapshots": 10, "n_patches": 4, "patch_size": 0.2,
              "noise": 0.01, "scheme": "ab2"},
    inputs=(FieldSpec("u0", "initial substrate concentration u(x, 0)", "1"),
            FieldSpec("v0", "initial activator concentration v(x, 0)", "1")),
    outputs=(FieldSpec("u", "substrate u at the snapshot times", "1", temporal=True),
             FieldSpec("v", "activator v at the snapshot times", "1", temporal=True)),
    draw=_draw_gray_scott,
    check=_check_gray_scott,
    added={"scheme": "sbdf2"},  # files and runs before the parameter existed
    snapshot_times=_times,
))
