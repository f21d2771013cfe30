"""The package's one axis convention, checked solver by solver (neuralhss.grid docstring).

Array axis k is coordinate axis k, named x, y in order; ``lengths = (L_x, L_y)``; positions and
components named after an axis refer to that axis. Every test uses a 48 × 32 grid on a 2 × 1
box and an off-centre or moving feature, so that swapping the axes, the lengths or a sign
would put the response somewhere else.
"""

from __future__ import annotations

import numpy as np
import pytest

from neuralhss.grid import Grid
from neuralhss.solvers import darcy, gray_scott, helmholtz, maxwell, navier_stokes, poisson

SHAPE = (48, 32)
LENGTHS = (2.0, 1.0)


def gaussian(grid: Grid, center, width):
    X, Y = grid.meshgrid()
    return np.exp(-((X - center[0]) ** 2 + (Y - center[1]) ** 2) / (2 * width**2))


def peak(grid: Grid, field):
    """(x, y) of the node where |field| is largest."""
    i = np.unravel_index(np.argmax(np.abs(field)), field.shape)
    return tuple(c[i] for c in grid.meshgrid())


def centroid(grid: Grid, weight):
    """(x, y) centroid of a non-negative weight (no periodic wrap: features stay inside)."""
    return tuple(float((c * weight).sum() / weight.sum()) for c in grid.meshgrid())


def close(point, expected, grid: Grid, spacings=1.5):
    return all(abs(p - e) <= spacings * h for p, e, h in zip(point, expected, grid.spacing, strict=True))


def test_poisson_source_position_and_lengths_in_axis_order():
    grid = Grid(SHAPE, LENGTHS)
    src = (0.5, 0.7)
    u = poisson.solve(gaussian(grid, src, 0.05), lengths=grid.lengths)
    assert close(peak(grid, u), src, grid), peak(grid, u)
    # sin(πx/Lx)·sin(2πy/Ly) is (nearly) an eigenfunction with eigenvalue π²(1/Lx² + 4/Ly²):
    # 19.7 here, 41.9 with the lengths swapped.
    X, Y = grid.meshgrid()
    mode = np.sin(np.pi * X / 2.0) * np.sin(2 * np.pi * Y / 1.0)
    ratio = (mode * poisson.solve(mode, lengths=grid.lengths)).sum() / (mode**2).sum()
    assert ratio == pytest.approx(1 / (np.pi**2 * (1 / 4 + 4)), rel=5e-3)


def test_darcy_source_position_and_slow_region_along_x():
    grid = Grid(SHAPE, LENGTHS)
    X, _ = grid.meshgrid()
    src = (1.4, 0.3)
    f = gaussian(grid, src, 0.05)
    a = np.ones(SHAPE)
    u1 = darcy.solve(a, f, lengths=grid.lengths)
    assert close(peak(grid, u1), src, grid), peak(grid, u1)
    np.testing.assert_allclose(u1, poisson.solve(f, lengths=grid.lengths), rtol=0,
                               atol=1e-8 * np.abs(u1).max())
    # A poorly conducting half x < 1 holds the potential of a source placed there: the
    # response's centroid moves towards small x, not small y.
    a[X < 1.0] = 0.1
    u2 = darcy.solve(a, gaussian(grid, (1.0, 0.5), 0.2), lengths=grid.lengths)
    cx, cy = centroid(grid, u2)
    assert cx < 1.0 - 2 * grid.spacing[0] and abs(cy - 0.5) < grid.spacing[1], (cx, cy)


def test_helmholtz_point_source_lands_on_its_x_y_node():
    grid = Grid(SHAPE, LENGTHS)
    src = (1.2, 0.33)
    f = helmholtz.point_source(grid.shape, grid.lengths, src)
    assert close(peak(grid, f), src, grid, spacings=0.5)
    u = helmholtz.solve(1.0, f, 2 * np.pi, lengths=grid.lengths, pml=6)
    assert peak(grid, u) == peak(grid, f)
    # The outgoing wave is isotropic: |u| at the same distance along x and along y agree
    # (outside the layer of 6 nodes, which starts 0.29 from the right wall, 0.21 from the top).
    i, j = np.unravel_index(np.argmax(np.abs(f)), SHAPE)
    along_x = np.abs(u[i - 9, j])  # 9·hx = 0.367 to the left
    along_y = np.abs(u[i, j + 12])  # 12·hy = 0.364 up
    assert along_x == pytest.approx(along_y, rel=0.15)


def test_maxwell_pulse_spreads_from_its_x_y_position_at_unit_speed():
    grid = Grid(SHAPE, LENGTHS)
    start, t = (0.6, 0.45), 0.3
    ez = maxwell.solve(1.0, t, ez0=gaussian(grid, start, 0.04), lengths=grid.lengths)[-1]
    assert close(centroid(grid, ez**2), start, grid, spacings=1.0)
    # The ring front is at distance ≈ t = 0.3 from the start along both axes (wave speed 1).
    X, Y = grid.meshgrid()
    i, j = (int(np.argmin(np.abs(c - s))) for c, s in zip((X[:, 0], Y[0]), start, strict=True))
    right = X[i + int(np.argmax(np.abs(ez[i:, j]))), j] - start[0]
    up = Y[i, j + int(np.argmax(np.abs(ez[i, j:])))] - start[1]
    assert abs(right - t) < 2.5 * grid.spacing[0] and abs(up - t) < 2.5 * grid.spacing[1], (right, up)
    # ε_r = 4 for x > 1 slows the wave there (c = 1/2): the right-going front falls behind.
    eps = np.where(X > 0.75, 4.0, 1.0)
    slow = maxwell.solve(eps, t, ez0=gaussian(grid, start, 0.04), lengths=grid.lengths)[-1]
    right_slow = X[i + int(np.argmax(np.abs(slow[i:, j]))), j] - start[0]
    assert right_slow < right - 2 * grid.spacing[0], (right_slow, right)


def test_navier_stokes_velocity_components_follow_the_axes():
    grid = Grid(SHAPE, LENGTHS, "periodic")
    _, Y = grid.meshgrid()
    # u = sin(2πy/Ly) along x: w = ∂v/∂x − ∂u/∂y = −(2π/Ly)·cos(2πy/Ly).
    w = -2 * np.pi * np.cos(2 * np.pi * Y)
    u, v = navier_stokes.velocity(w, grid.lengths)
    np.testing.assert_allclose(u, np.sin(2 * np.pi * Y), atol=0.01)
    np.testing.assert_allclose(v, 0.0, atol=1e-12)


def test_navier_stokes_vortex_dipole_moves_along_plus_x():
    # A counter-clockwise vortex (w > 0) above a clockwise one: each carries the other in +x
    # (the standard sign, w = ∂v/∂x − ∂u/∂y with x = axis 0). Before issue 15 the solver had
    # the opposite sign in this convention and the pair moved to −x.
    grid = Grid(SHAPE, LENGTHS, "periodic")
    top, bottom = (0.6, 0.65), (0.6, 0.35)
    w0 = 30.0 * (gaussian(grid, top, 0.1) - gaussian(grid, bottom, 0.1))
    w0 -= w0.mean()
    w = navier_stokes.solve(w0, 1e-3, 0.6, lengths=grid.lengths)[-1]
    pos0, pos = centroid(grid, np.maximum(w0, 0)), centroid(grid, np.maximum(w, 0))
    neg0, neg = centroid(grid, np.maximum(-w0, 0)), centroid(grid, np.maximum(-w, 0))
    hx, hy = grid.spacing
    assert pos[0] - pos0[0] > 3 * hx and neg[0] - neg0[0] > 3 * hx, (pos0, pos, neg0, neg)
    assert abs(pos[1] - pos0[1]) < 2 * hy and abs(neg[1] - neg0[1]) < 2 * hy


def test_navier_stokes_taylor_green_puts_kx_on_axis_0():
    grid = Grid(SHAPE, LENGTHS, "periodic")
    X, Y = grid.meshgrid()
    w = navier_stokes.taylor_green(SHAPE, LENGTHS)
    kx, ky = 2 * np.pi / 2.0, 2 * np.pi / 1.0
    np.testing.assert_allclose(w, (kx**2 + ky**2) / ky * np.sin(kx * X) * np.sin(ky * Y), atol=1e-12)
    u, _ = navier_stokes.velocity(w, LENGTHS)
    assert np.abs(u - np.sin(kx * X) * np.cos(ky * Y)).max() < 0.02


def test_gray_scott_patch_stays_and_diffusion_uses_lx_along_axis_0():
    grid = Grid(SHAPE, LENGTHS, "periodic")
    X, _ = grid.meshgrid()
    start = (1.5, 0.3)
    g = gaussian(grid, start, 0.08)
    u, v = gray_scott.solve(1 - 0.5 * g, 0.25 * g, Du=2e-4, Dv=1e-4, F=0.04, k=0.06, t_final=5.0,
                            lengths=grid.lengths)
    assert close(centroid(grid, 1 - u[-1]), start, grid, spacings=1.0)
    assert close(centroid(grid, v[-1]), start, grid, spacings=1.0)
    # With v = 0, w = 1 − u obeys ∂t w = Du Δw − F w: cos(2πx/Lx) decays at Du·λ_h + F with
    # λ_h = (4/hx²)·sin²(π/nx), hx = Lx/nx = 2/48 (four times slower than with Lx = 1).
    eps, t = 1e-3, 50.0
    mode = np.cos(2 * np.pi * X / 2.0)
    u, _ = gray_scott.solve(1 - eps * mode, np.zeros(SHAPE), Du=2e-3, Dv=1e-3, F=0.01, k=0.05,
                            t_final=t, lengths=grid.lengths, dt=0.01)
    hx = 2.0 / 48
    rate = 2e-3 * 4 / hx**2 * np.sin(np.pi / 48) ** 2 + 0.01
    np.testing.assert_allclose(1 - u[-1], eps * np.exp(-rate * t) * mode, atol=1e-3 * eps)


# ---------------------------------------------------------------------------------------------
# one solve shape: fields and physical parameters positional, numerical options keyword-only

SOLVERS = {"poisson": poisson, "darcy": darcy, "helmholtz": helmholtz, "maxwell": maxwell,
           "navier_stokes": navier_stokes, "gray_scott": gray_scott}
OPTIONS = {"dim", "dt", "n_snapshots", "pml", "pml_strength", "return_info", "workers", "method",
           "rtol", "cfl", "courant", "scheme"}


@pytest.mark.parametrize("name", sorted(SOLVERS))
def test_numerical_options_are_keyword_only_with_shared_names(name):
    import inspect

    params = inspect.signature(SOLVERS[name].solve).parameters
    for p in params.values():
        if p.name in OPTIONS:
            assert p.kind is inspect.Parameter.KEYWORD_ONLY, (name, p.name)
    assert not {"width", "strength"} & set(params)
    if name in ("poisson", "darcy", "navier_stokes", "gray_scott"):  # FFT-based: threads
        assert params["workers"].kind is inspect.Parameter.KEYWORD_ONLY
    if name in ("helmholtz", "maxwell"):
        assert params["pml"].default == 16 and params["pml_strength"].default == 8.0


def test_old_calling_conventions_warn_and_give_the_same_result():
    rng = np.random.default_rng(0)
    f = rng.standard_normal((12, 10))
    a = 1.0 + rng.random((12, 10))
    with pytest.warns(DeprecationWarning, match="poisson.solve: passing dim by position"):
        old = poisson.solve(f[None], 1.0, "dirichlet", 2)
    np.testing.assert_array_equal(old, poisson.solve(f[None], dim=2))
    with pytest.warns(DeprecationWarning, match="dim, method by position"):
        old = darcy.solve(a, f, 1.0, 2, "direct")
    np.testing.assert_array_equal(old, darcy.solve(a, f, dim=2, method="direct"))
    with pytest.warns(DeprecationWarning, match="pml, pml_strength by position"):
        old = helmholtz.solve(1.0, f, 3.0, 1.0, 2, 4.0)
    np.testing.assert_array_equal(old, helmholtz.solve(1.0, f, 3.0, 1.0, pml=2, pml_strength=4.0))

    new = maxwell.solve(1.0, 0.1, f, boundary="absorbing", pml=3, pml_strength=2.0)
    with pytest.warns(DeprecationWarning, match="width= is deprecated"):
        with pytest.warns(DeprecationWarning, match="strength= is deprecated"):
            old = maxwell.solve(1.0, 0.1, f, boundary="absorbing", width=3, strength=2.0)
    np.testing.assert_array_equal(old, new)
    with pytest.warns(DeprecationWarning, match="pml=, pml_strength="):
        old = maxwell.solve(1.0, 0.1, f, None, None, "ricker", None, 1.0, "absorbing", 1, 0.9, 3, 2.0)
    np.testing.assert_array_equal(old, new)
    with pytest.raises(TypeError, match="pml="):
        maxwell.solve(1.0, 0.1, f, width=3, pml=3)
    with pytest.raises(TypeError, match="positional"):
        poisson.solve(f, 1.0, "dirichlet", 2, 1)

    w0 = f - f.mean()
    with pytest.warns(DeprecationWarning, match="dt, lengths, n_snapshots by position"):
        old = navier_stokes.solve(w0, 0.01, 0.05, None, None, (2.0, 1.0), 2)
    np.testing.assert_array_equal(old, navier_stokes.solve(w0, 0.01, 0.05, lengths=(2.0, 1.0),
                                                           n_snapshots=2))
    u0, v0 = 1.0 - 0.1 * a, 0.1 * a
    with pytest.warns(DeprecationWarning, match="scheme"):
        old = gray_scott.solve(u0, v0, 1e-3, 5e-4, 0.04, 0.06, 1.0, 0.1, 1.0, 2, "euler")
    np.testing.assert_array_equal(old, gray_scott.solve(u0, v0, 1e-3, 5e-4, 0.04, 0.06, 1.0, dt=0.1,
                                                        lengths=1.0, n_snapshots=2, scheme="euler"))


def test_darcy_workers_reach_the_spectral_preconditioner():
    rng = np.random.default_rng(1)
    a, f = 1.0 + rng.random((12, 10)), rng.standard_normal((12, 10))
    ref = darcy.solve(a, f, method="spectral")
    np.testing.assert_array_equal(darcy.solve(a, f, method="spectral", workers=1), ref)
    with pytest.raises(ValueError, match="workers"):
        darcy.solve(a, f, workers=0)
