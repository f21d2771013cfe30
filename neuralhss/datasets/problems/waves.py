"""Electromagnetism dataset problems: Helmholtz (frequency domain) and Maxwell FDTD (time domain)."""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr

from ... import fields
from ...grid import Grid
from .base import FieldSpec, Problem, register
from .common import check_choice, check_dim2, check_grf, check_int, check_positive, grf_kwargs


def _interior_mask(grid: Grid, margin: int) -> np.ndarray:
    """0 in the ``margin`` nodes next to each wall, 1 from 8 nodes further in, smoothstep between."""
    masks = []
    for n in grid.shape:
        i = np.arange(n)
        s = np.clip((np.minimum(i, n - 1 - i) - margin + 1) / 8.0, 0.0, 1.0)
        masks.append(s * s * (3 - 2 * s))
    return np.multiply.outer(*masks)


def permittivity(params: dict, grid: Grid, rng: np.random.Generator, margin: int) -> np.ndarray:
    """Random relative permittivity in [eps_background, eps_background + contrast].

    ``medium="smooth"``: eps_background + contrast·Φ(ψ), ψ a unit-variance Matérn GRF and Φ the
    standard normal CDF (so eps is smooth and bounded); ``"inclusions"``: ``n_inclusions``
    disks of permittivity eps_background + contrast with radii uniform in [0.05, 0.15]·L.
    The perturbation is faded out over the ``margin`` nodes next to each wall (where absorbing
    layers live), which therefore see the homogeneous background.
    """
    if params["medium"] == "smooth":
        delta = ndtr(fields.grf(grid, rng, **grf_kwargs(params)))
    else:
        x, y = grid.meshgrid()
        side = min(grid.lengths)
        delta = np.zeros(grid.shape)
        for _ in range(params["n_inclusions"]):
            cx, cy = (rng.uniform(0.2, 0.8) * length for length in grid.lengths)
            r = rng.uniform(0.05, 0.15) * side
            delta[(x - cx) ** 2 + (y - cy) ** 2 <= r**2] = 1.0
    return params["eps_background"] + params["contrast"] * delta * _interior_mask(grid, margin)


def _check_medium(params: dict, name: str) -> None:
    check_dim2(params, name)
    if params["bc"] != "dirichlet":
        raise ValueError(f"the {name} problem has walls (Dirichlet grid); use bc=dirichlet")
    check_grf(params)
    check_positive(params, "eps_background")
    if not (isinstance(params["contrast"], (int, float)) and params["contrast"] >= 0):
        raise ValueError(f"contrast={params['contrast']!r} must be a number >= 0")
    check_choice(params, "medium", ("smooth", "inclusions"))
    check_int(params, "n_inclusions", 1)


MEDIUM_DEFAULTS = {"medium": "smooth", "eps_background": 1.0, "contrast": 3.0, "length_scale": 0.15,
                   "smoothness": 1.5, "amplitude": 1.0, "n_inclusions": 3}


# ----------------------------------------------------------------------------- helmholtz

def gaussian_source(grid: Grid, center: tuple[float, float], width: float) -> np.ndarray:
    """Unit-integral Gaussian exp(-r²/2w²)/(2πw²) centred at ``center`` (length units)."""
    x, y = grid.meshgrid()
    r2 = (x - center[0]) ** 2 + (y - center[1]) ** 2
    return np.exp(-r2 / (2 * width**2)) / (2 * np.pi * width**2)


def _draw_helmholtz(params: dict, grid: Grid, rng: np.random.Generator) -> dict[str, np.ndarray]:
    from ...solvers import helmholtz

    eps = permittivity(params, grid, rng, params["pml"])
    f = gaussian_source(grid, (params["source_x"] * grid.lengths[0], params["source_y"] * grid.lengths[1]),
                        params["source_width"])
    u = helmholtz.solve(eps, f, params["k0"], lengths=grid.lengths, pml=params["pml"])
    return {"eps_r": eps, "u_re": u.real, "u_im": u.imag}


def _check_helmholtz(params: dict) -> None:
    _check_medium(params, "helmholtz")
    check_positive(params, "k0", "source_width")
    check_int(params, "pml", 1)
    for key in ("source_x", "source_y"):
        if not (isinstance(params[key], (int, float)) and 0 < params[key] < 1):
            raise ValueError(f"{key}={params[key]!r} is a fraction of the box side; use 0 < {key} < 1")
    if 2 * params["pml"] + 8 > min(params["resolution"]):
        raise ValueError(f"pml={params['pml']} nodes per wall leaves too little of a "
                         f"{params['resolution']} grid; use a smaller pml or a finer grid")


HELMHOLTZ = register(Problem(
    name="helmholtz",
    description="-Laplace(u) - k0^2 eps_r u = f (TM time-harmonic Maxwell) with a PML, fixed "
                "Gaussian source; random permittivity eps_r (smooth or inclusions) -> complex "
                "field u (real and imaginary parts)",
    # k0 = 4π: free-space wavelength 0.5, 16 nodes per wavelength in the densest medium
    # (eps_r = 4) on 64² nodes.
    defaults={"dim": 2, "resolution": 64, "lengths": 1.0, "bc": "dirichlet", **MEDIUM_DEFAULTS,
              "k0": 4 * np.pi, "pml": 12, "source_x": 0.5, "source_y": 0.5, "source_width": 0.03},
    inputs=(FieldSpec("eps_r", "relative permittivity eps_r(x)", "1"),),
    outputs=(FieldSpec("u_re", "real part of the field u (e^{-i w t} convention)", "source units"),
             FieldSpec("u_im", "imaginary part of the field u", "source units")),
    draw=_draw_helmholtz,
    check=_check_helmholtz,
))


# ----------------------------------------------------------------------------- maxwell

def _draw_maxwell(params: dict, grid: Grid, rng: np.random.Generator) -> dict[str, np.ndarray]:
    from ...solvers import maxwell

    absorbing = params["boundary"] == "absorbing"
    eps = permittivity(params, grid, rng, params["pml"] if absorbing else 0)
    center = tuple(rng.uniform(0.3, 0.7) * length for length in grid.lengths)
    x, y = grid.meshgrid()
    ez0 = np.exp(-((x - center[0]) ** 2 + (y - center[1]) ** 2) / (2 * params["pulse_width"] ** 2))
    ez = maxwell.solve(eps, params["t_final"], ez0=ez0, lengths=grid.lengths,
                       boundary=params["boundary"], n_snapshots=params["n_snapshots"],
                       courant=params["courant"], pml=params["pml"])
    return {"eps_r": eps, "ez0": ez0, "ez": ez}


def _check_maxwell(params: dict) -> None:
    _check_medium(params, "maxwell")
    check_positive(params, "t_final", "pulse_width", "courant")
    if params["courant"] > 1:
        raise ValueError(f"courant={params['courant']!r} is a fraction of the CFL limit; "
                         "use 0 < courant <= 1")
    check_int(params, "n_snapshots", 1)
    check_int(params, "pml", 1)
    check_choice(params, "boundary", ("pec", "absorbing"))
    if params["boundary"] == "absorbing" and 2 * params["pml"] + 8 > min(params["resolution"]):
        raise ValueError(f"pml={params['pml']} nodes per wall leaves too little of a "
                         f"{params['resolution']} grid; use a smaller pml or a finer grid")


def _maxwell_times(params: dict) -> np.ndarray:
    from ...solvers._stencils import snapshot_times

    return snapshot_times(params["t_final"], params["n_snapshots"])


MAXWELL = register(Problem(
    name="maxwell",
    description="2-D TMz Maxwell equations, Yee FDTD (c0 = 1 units), absorbing layer or PEC "
                "walls; random permittivity eps_r and a Gaussian initial pulse E_z(x, 0) at a "
                "random position -> E_z trajectory",
    defaults={"dim": 2, "resolution": 64, "lengths": 1.0, "bc": "dirichlet", **MEDIUM_DEFAULTS,
              "boundary": "absorbing", "pml": 10, "pulse_width": 0.04, "t_final": 0.5,
              "n_snapshots": 10, "courant": 0.9},
    inputs=(FieldSpec("eps_r", "relative permittivity eps_r(x)", "1"),
            FieldSpec("ez0", "initial electric field E_z(x, 0) (H = 0 at t = 0)", "field units")),
    outputs=(FieldSpec("ez", "E_z at the snapshot times", "field units", temporal=True),),
    draw=_draw_maxwell,
    check=_check_maxwell,
    snapshot_times=_maxwell_times,
))
