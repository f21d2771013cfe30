"""Validation of neuralhss.solvers.gray_scott: exact invariants, discrete decay rates, time
convergence orders, pattern formation, API contract."""

from __future__ import annotations

import numpy as np
import pytest

from neuralhss.solvers import gray_scott as gs

PEARSON = {"Du": 2e-5, "Dv": 1e-5}
NOMINAL_ORDER = {"euler": 1.0, "sbdf2": 2.0, "cnab2": 2.0, "ab2": 2.0, "rkc2": 2.0}


def _nodes(n: int, length: float) -> np.ndarray:
    return np.arange(n) * length / n


@pytest.mark.parametrize("scheme", gs.SCHEMES)
@pytest.mark.parametrize("shape", [(2, 32, 32), (15, 21)])
def test_homogeneous_state_is_kept_bitwise(scheme, shape):
    u0, v0 = np.ones(shape), np.zeros(shape)
    u, v, info = gs.solve(u0, v0, F=0.035, k=0.065, t_final=500.0, lengths=0.7, n_snapshots=2,
                          scheme=scheme, return_info=True, **PEARSON)
    assert info.steps >= 500
    assert np.array_equal(u, np.ones(u.shape)) and np.array_equal(v, np.zeros(v.shape))


def _mode(shape, lengths, a, b):
    """cos(2π(a x/Lx + b y/Ly)) on the periodic nodes and its 5-point eigenvalue λ_h."""
    (ny, nx), (ly, lx) = shape, lengths
    y, x = _nodes(ny, ly)[:, None], _nodes(nx, lx)[None, :]
    e = np.cos(2 * np.pi * (a * x / lx + b * y / ly))
    lam = 4 * nx**2 / lx**2 * np.sin(np.pi * a / nx) ** 2 + 4 * ny**2 / ly**2 * np.sin(np.pi * b / ny) ** 2
    return e, lam


def test_mode_is_an_eigenvector_of_the_five_point_laplacian():
    shape, lengths = (24, 20), (1.3, 0.9)
    e, lam = _mode(shape, lengths, 3, 5)
    hy, hx = lengths[0] / shape[0], lengths[1] / shape[1]
    lap = ((np.roll(e, 1, 1) - 2 * e + np.roll(e, -1, 1)) / hx**2
           + (np.roll(e, 1, 0) - 2 * e + np.roll(e, -1, 0)) / hy**2)
    assert np.abs(-lap - lam * e).max() <= 1e-12 * lam
    table = gs.laplacian_eigenvalues(shape, lengths)
    assert table.shape == (24, 11)
    assert abs(table[5, 3] - lam) <= 1e-13 * lam
    with pytest.raises(ValueError, match="shape"):
        gs.laplacian_eigenvalues((8, 8, 8))


@pytest.mark.parametrize("scheme", gs.SCHEMES)
def test_pure_diffusion_mode_decays_at_the_discrete_rate(scheme):
    # F = 0 and v = 0 leave ∂t u = Du Δu: one Fourier mode evolves by the scheme's exact
    # amplification of z = dt·Du·λ_h (backward Euler: 1/(1 + z) per step).
    shape, lengths, Du, dt, n = (24, 20), (1.3, 0.9), 3e-5, 0.5, 40
    e, lam = _mode(shape, lengths, 3, 5)
    eps = 0.1
    # (Dv does not act on v = 0; the explicit ab2 needs it small for dt = 0.5 to be stable.)
    Dv = 1e-5 if scheme == "ab2" else 1e-3
    u, v, info = gs.solve(1.0 + eps * e, np.zeros(shape), Du=Du, Dv=Dv, F=0.0, k=0.06,
                          t_final=n * dt, dt=dt, lengths=lengths, scheme=scheme, return_info=True)
    assert info.steps == n and info.dt == dt
    z = dt * Du * lam
    if scheme == "euler":
        amp = (1.0 / (1.0 + z)) ** n
    elif scheme == "cnab2":
        amp = ((1.0 - z / 2) / (1.0 + z / 2)) ** n
    elif scheme == "rkc2":  # the s-stage Chebyshev polynomial P_s(−z) per step
        from neuralhss.solvers import _gray_scott_stencil as kern

        assert info.stages >= 2
        amp = kern.rkc2_polynomial(info.stages, -z) ** n
    elif scheme == "ab2":  # forward Euler start, then yⁿ⁺¹ = yⁿ − z(3yⁿ − yⁿ⁻¹)/2
        prev, cur = 1.0, 1.0 - z
        for _ in range(n - 1):
            prev, cur = cur, cur - z * (1.5 * cur - 0.5 * prev)
        amp = cur
    else:  # IMEX Euler start, then BDF2
        prev, cur = 1.0, 1.0 / (1.0 + z)
        for _ in range(n - 1):
            prev, cur = cur, (4.0 / 3.0 * cur - 1.0 / 3.0 * prev) / (1.0 + 2.0 / 3.0 * z)
        amp = cur
    assert 0.05 < amp < 0.95  # the test sees real decay
    assert np.abs((u[0] - 1.0) - eps * amp * e).max() <= 1e-12 * eps
    assert not np.any(v)


@pytest.fixture(scope="module")
def convergence_problem():
    # Smooth data with an active reaction and diffusion that matters on this grid
    # (dt·Du·λ_max ≈ 1.6 at dt = 1).
    n, length = 32, 1.0
    y, x = _nodes(n, length)[:, None], _nodes(n, length)[None, :]
    g = (np.exp(-((x - 0.4) ** 2 + (y - 0.55) ** 2) / (2 * 0.1**2))
         + 0.6 * np.exp(-((x - 0.75) ** 2 + (y - 0.2) ** 2) / (2 * 0.07**2)))
    args = {"u0": 1.0 - 0.5 * g, "v0": 0.25 * g, "Du": 2e-4, "Dv": 1e-4, "F": 0.04, "k": 0.06,
            "t_final": 10.0, "lengths": length}
    ref = gs.solve(dt=1 / 512, scheme="sbdf2", **args)
    return args, ref


@pytest.mark.parametrize("scheme", gs.SCHEMES)
def test_time_convergence_order(scheme, convergence_problem):
    args, (u_ref, v_ref) = convergence_problem
    errors = []
    # ab2's bound on this grid is 0.37 (explicit diffusion): the same ladder one step lower.
    dts = (0.25, 0.125, 0.0625, 0.03125) if scheme == "ab2" else (0.5, 0.25, 0.125, 0.0625)
    for dt in dts:
        u, v = gs.solve(dt=dt, scheme=scheme, **args)
        errors.append(max(np.abs(u - u_ref).max(), np.abs(v - v_ref).max()))
    orders = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert np.all(np.abs(orders - NOMINAL_ORDER[scheme]) <= 0.2), (errors, orders)
    assert np.abs(v_ref - args["v0"]).max() > 0.05  # the reaction did change the state


def test_laplacian_symbol_is_second_order():
    # λ_h of a fixed physical mode converges to the continuous |k|² at second order.
    lengths = (1.3, 0.9)
    exact = (2 * np.pi * 3 / lengths[1]) ** 2 + (2 * np.pi * 2 / lengths[0]) ** 2
    errs = [abs(gs.laplacian_eigenvalues((n, n), lengths)[2, 3] - exact) for n in (16, 32, 64, 128)]
    orders = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert np.all(np.abs(orders - 2.0) < 0.05), orders


@pytest.mark.parametrize("regime,t_final", [("spots", 3000.0), ("maze", 2000.0)])
def test_pattern_develops_and_stays_in_unit_range(regime, t_final):
    # Pearson's spacing (2.5/256) on a 64² grid; three perturbed patches.
    p = gs.REGIMES[regime]
    n, length = 64, 0.625
    u0, v0 = gs.initial_perturbation((n, n), length, np.random.default_rng(0), n_patches=3)
    u, v = gs.solve(u0, v0, p["Du"], p["Dv"], p["F"], p["k"], t_final, lengths=length,
                    n_snapshots=3)
    assert v[-1].std() > 0.08 and u[-1].std() > 0.08
    assert v[-1].std() > 2 * v0.std()
    tol = 1e-12  # round-off of the FFTs around 0 and 1
    assert u.min() >= -tol and u.max() <= 1 + tol and v.min() >= -tol and v.max() <= 1 + tol


def test_runs_stably_at_the_stability_bound():
    p = gs.REGIMES["spots"]
    u0, v0 = gs.initial_perturbation((48, 48), 0.47, 3, n_patches=3)
    for scheme in gs.SCHEMES:
        bound = gs.stability_bound(scheme, p["Du"], p["Dv"], p["F"], p["k"], (48, 48), 0.47)
        # RKC2 has no bound (its stages grow with the step): a step 2.5x AB2's bound on this grid
        dt = bound if np.isfinite(bound) else 2.5 * gs.stability_bound(
            "ab2", p["Du"], p["Dv"], p["F"], p["k"], (48, 48), 0.47)
        u, v, info = gs.solve(u0, v0, p["Du"], p["Dv"], p["F"], p["k"], 2000.0, lengths=0.47,
                              dt=dt, scheme=scheme, return_info=True)
        assert info.dt == pytest.approx(dt, rel=1e-3) and info.dt_stable == bound
        tol = 1e-12
        assert u.min() >= -tol and u.max() <= 1 + tol and v.min() >= -tol and v.max() <= 1 + tol


def test_default_step_and_info():
    u0, v0 = gs.initial_perturbation((16, 16), 0.2, 0)
    _, _, info = gs.solve(u0, v0, F=0.035, k=0.065, t_final=30.0, lengths=0.2, n_snapshots=3,
                          return_info=True, **PEARSON)
    assert info.scheme == gs.DEFAULT_SCHEME == "sbdf2"
    assert info.dt == 1.0 and info.steps == 30 and info.dt_stable == pytest.approx(4 / 3)
    assert np.allclose(info.times, [10.0, 20.0, 30.0])
    _, _, info = gs.solve(u0, v0, F=0.035, k=0.065, t_final=30.0, lengths=0.2, scheme="cnab2",
                          return_info=True, **PEARSON)
    assert info.dt == 0.75 and info.steps == 40
    _, _, info = gs.solve(u0, v0, F=0.035, k=0.065, t_final=30.0, lengths=0.2, scheme="ab2",
                          return_info=True, **PEARSON)
    lam_max = 8 * (16 / 0.2) ** 2  # even grid: the Nyquist mode of both axes
    bound = 1 / (2e-5 * lam_max + 0.035 + 1)
    assert info.dt_stable == pytest.approx(bound, rel=1e-12)
    assert info.steps == int(np.ceil(30.0 / (0.75 * bound))) and info.dt <= 0.75 * bound
    _, _, info = gs.solve(u0, v0, F=0.035, k=0.065, t_final=30.0, lengths=0.2, scheme="rkc2",
                          return_info=True, **PEARSON)
    assert info.dt == 1.0 and info.dt_stable == np.inf  # Pearson's step, whatever the grid
    # dt·(a_max + 1) = 2.06 lies between β(2) = 1.96 and β(3) = 5.23
    assert info.stages == gs.rkc2_stages(1.0, 2e-5, 1e-5, 0.035, 0.065, (16, 16), 0.2) == 3
    # A step that does not divide the snapshot interval is shortened to land on it.
    _, _, info = gs.solve(u0, v0, F=0.035, k=0.065, t_final=10.0, dt=0.9, lengths=0.2,
                          return_info=True, **PEARSON)
    assert info.steps == 12 and info.dt == pytest.approx(10 / 12)


def test_snapshots_batch_and_consistency():
    u0, v0 = gs.initial_perturbation((3, 20, 24), (0.3, 0.35), np.random.default_rng(5), n_patches=2)
    kw = {"F": 0.035, "k": 0.065, "lengths": (0.3, 0.35), "dt": 1.0, **PEARSON}
    u, v = gs.solve(u0, v0, t_final=60.0, n_snapshots=3, **kw)
    assert u.shape == v.shape == (3, 3, 20, 24)
    u1, v1 = gs.solve(u0[1], v0[1], t_final=20.0, **kw)
    assert u1.shape == (1, 20, 24)
    assert np.allclose(u[1, 0], u1[0], rtol=0, atol=1e-14)
    assert np.allclose(v[1, 0], v1[0], rtol=0, atol=1e-14)
    u_end, v_end = gs.solve(u0, v0, t_final=60.0, **kw)
    assert np.array_equal(u_end[:, 0], u[:, -1]) and np.array_equal(v_end[:, 0], v[:, -1])
    # Empty batch
    ue, ve = gs.solve(np.ones((0, 8, 8)), np.zeros((0, 8, 8)), t_final=5.0, **kw)
    assert ue.shape == ve.shape == (0, 1, 8, 8)


def test_torch_in_torch_out():
    torch = pytest.importorskip("torch")
    u0, v0 = gs.initial_perturbation((16, 16), 0.2, 1)
    kw = {"F": 0.035, "k": 0.065, "t_final": 50.0, "lengths": 0.2, **PEARSON}
    u_np, v_np = gs.solve(u0, v0, **kw)
    u_t, v_t = gs.solve(torch.from_numpy(u0).float(), torch.from_numpy(v0), **kw)
    assert isinstance(u_t, torch.Tensor) and isinstance(v_t, torch.Tensor)
    assert u_t.dtype == torch.float32 and v_t.dtype == torch.float64
    assert np.allclose(u_t.numpy(), u_np, atol=1e-6)  # u0 was rounded to float32 on the way in
    assert np.allclose(v_t.numpy(), v_np, atol=1e-6)


@pytest.mark.parametrize("change,match", [
    ({"u0": np.full((8, 8), np.nan)}, "u0 contains"),
    ({"v0": np.full((8, 8), np.inf)}, "v0 contains"),
    ({"v0": np.zeros((8, 9))}, "same shape"),
    ({"u0": np.ones(8), "v0": np.zeros(8)}, "at least 2 axes"),
    ({"Du": -1e-5}, "Du must be"),
    ({"Dv": float("nan")}, "Dv must be"),
    ({"F": -0.01}, "F must be"),
    ({"k": float("inf")}, "k must be"),
    ({"dt": 1.5}, r"stability bound 1\.333"),
    ({"dt": 2.5, "scheme": "euler"}, "stability bound 2"),
    ({"dt": 1.01, "scheme": "cnab2"}, "stability bound 1"),
    ({"dt": 0.95, "scheme": "ab2"}, r"stability bound 0\.9.* explicit scheme 'ab2' on this grid"),
    ({"dt": 0.0}, "dt must be"),
    ({"dt": float("nan"), "scheme": "rkc2"}, "dt must be"),
    ({"Du": -1e-5, "scheme": "rkc2"}, "Du must be"),
    ({"scheme": "rk4"}, "scheme must be"),
    ({"t_final": -1.0}, "t_final"),
    ({"n_snapshots": 0}, "n_snapshots"),
    ({"lengths": (1.0, -1.0)}, "lengths"),
])
def test_bad_input_raises_value_error(change, match):
    kw = {"u0": np.ones((8, 8)), "v0": np.zeros((8, 8)), "Du": 2e-5, "Dv": 1e-5, "F": 0.035,
          "k": 0.065, "t_final": 10.0, **change}
    with pytest.raises(ValueError, match=match):
        gs.solve(**kw)


def test_blow_up_raises_floating_point_error():
    # Far outside [0, 1] the explicit reaction is unstable at dt = 1.
    with pytest.raises(FloatingPointError, match="blew up"):
        gs.solve(np.ones((8, 8)), np.full((8, 8), 50.0), 2e-5, 1e-5, 0.035, 0.065, 200.0)


def test_initial_perturbation():
    a = gs.initial_perturbation((2, 32, 40), (1.0, 1.25), np.random.default_rng(7))
    b = gs.initial_perturbation((2, 32, 40), (1.0, 1.25), 7)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])  # int seed ≡ its Generator
    u0, v0 = a
    assert u0.shape == v0.shape == (2, 32, 40)
    assert 0.0 <= u0.min() and u0.max() <= 1.0 and 0.0 <= v0.min() and v0.max() <= 1.0
    assert not np.array_equal(u0[0], u0[1])  # every sample draws its own patches
    patch = v0 > 0.2
    assert patch.any() and np.all(np.abs(u0[patch] - 0.5) <= 0.01)
    u0, v0 = gs.initial_perturbation((16, 16), 1.0, 0, noise=0.0, n_patches=0)
    assert np.array_equal(u0, np.ones((16, 16))) and not v0.any()
    with pytest.raises(ValueError, match="shape"):
        gs.initial_perturbation((16,), 1.0, 0)
    with pytest.raises(ValueError, match="rng"):
        gs.initial_perturbation((16, 16), 1.0, None)


def test_regimes_table():
    assert {"spots", "stripes", "maze", "worms", "mitosis"} <= set(gs.REGIMES)
    for p in gs.REGIMES.values():
        assert set(p) == {"F", "k", "Du", "Dv", "L", "t_final"}
        assert 0 < p["F"] < 0.1 and 0.04 < p["k"] < 0.07


@pytest.mark.slow
@pytest.mark.parametrize("regime", sorted(set(gs.REGIMES) - {"chaos"}))
def test_regime_fills_the_domain_by_t_final(regime):
    # Pearson's spacing on a 128² grid of side 1.25: the pattern covers the domain by t_final
    # (the spread of v has reached 90 % of its value at 1.5·t_final).
    p = gs.REGIMES[regime]
    n, length = 128, 1.25
    u0, v0 = gs.initial_perturbation((n, n), length, 1)
    u, v = gs.solve(u0, v0, p["Du"], p["Dv"], p["F"], p["k"], 1.5 * p["t_final"], lengths=length,
                    n_snapshots=3)
    assert v[1].std() > 0.05
    assert v[1].std() > 0.9 * v[2].std()


@pytest.mark.parametrize("z,grows", [(0.95, False), (1.05, True)])
def test_ab2_diffusion_limit_is_one(z, grows):
    # AB2's stability interval on the negative real axis is [-1, 0]: the checkerboard mode
    # (the largest eigenvalue of -Δ_h) decays for dt·Du·λ_max < 1 and grows above it. This is
    # the limit stability_bound builds on (with the reaction's |μ| <= 1 added).
    from neuralhss.solvers import _gray_scott_stencil as kern

    n, length, Du = 16, 1.0, 1e-3
    lam_max = gs.laplacian_eigenvalues((n, n), length).max()
    dt = z / (Du * lam_max)
    checker = (-1.0) ** np.add.outer(np.arange(n), np.arange(n))
    w, v = 1e-3 * checker, np.zeros((n, n))
    coef = kern.coefficients(Du, 1e-3, 0.0, 0.0, (length / n, length / n))
    rw, rv = np.empty_like(w), np.empty_like(w)
    bufs = [np.empty_like(w), np.empty_like(w)]
    kern.rates_and_step(w, v, rw, rv, bufs[0], bufs[1], 0.0, *coef)
    kern.ab2_steps(w, v, bufs[0], bufs[1], rw, rv, 400, dt, *coef)  # even: the state is in w
    assert (np.abs(w).max() > 1e-3) == grows
    assert not v.any()
    bound = gs.stability_bound("ab2", Du, 1e-3, 0.0, 0.0, (n, n), length)
    assert bound * Du * lam_max < 1  # the solver's bound keeps the diffusion inside the limit


@pytest.mark.parametrize("scheme", gs.EXPLICIT_SCHEMES)
def test_explicit_snapshots_and_batch_match_single_runs_bitwise(scheme):
    # 37 steps per snapshot interval (odd, and across a blow-up check every 32 steps): the
    # state must continue from the right one of the kernels' rotating buffers.
    u0, v0 = gs.initial_perturbation((2, 24, 20), (0.3, 0.25), 4, n_patches=2)
    kw = {"Du": 2e-5, "Dv": 1e-5, "F": 0.035, "k": 0.065, "lengths": (0.3, 0.25),
          "scheme": scheme, "dt": 10.0 / 37}
    u, v, info = gs.solve(u0, v0, t_final=20.0, n_snapshots=2, return_info=True, **kw)
    assert info.steps == 74
    u1, v1 = gs.solve(u0[1], v0[1], t_final=10.0, **kw)
    assert np.array_equal(u[1, 0], u1[0]) and np.array_equal(v[1, 0], v1[0])
    u2, v2 = gs.solve(u0[0], v0[0], t_final=20.0, **kw)
    assert np.array_equal(u[0, 1], u2[0]) and np.array_equal(v[0, 1], v2[0])
    assert not np.array_equal(u[0, 0], u[0, 1])  # the state did move


def test_rkc2_tableau_stability_interval_and_stage_choice():
    # P_s is second-order accurate (1 + z + z²/2 + O(z³)), bounded by 1 on [−β(s), 0], and β(s)
    # grows like 0.65 s²; rkc2_stages takes the fewest stages whose interval holds the step.
    from neuralhss.solvers import _gray_scott_stencil as kern

    for s in (2, 3, 5, 8, 13):
        beta = kern.rkc2_tableau(s)[-1]
        z = 1e-3
        assert abs(kern.rkc2_polynomial(s, -z) - (1 - z + z * z / 2)) < 1e-8
        assert max(abs(kern.rkc2_polynomial(s, -x)) for x in np.linspace(0, beta, 2001)) <= 1 + 1e-12
        assert 0.45 * s * s < beta < 0.66 * s * s
    p = gs.REGIMES["spots"]
    args = (p["Du"], p["Dv"], p["F"], p["k"], (256, 256), 2.5)
    radius = 1 / gs.stability_bound("ab2", *args)  # a_max + 1
    for dt in (0.1, 1.0, 4.0, 30.0):
        s = gs.rkc2_stages(dt, *args)
        assert kern.rkc2_tableau(s)[-1] >= dt * radius
        assert s == 2 or kern.rkc2_tableau(s - 1)[-1] < dt * radius
    with pytest.raises(ValueError, match="at least 2 stages"):
        kern.rkc2_tableau(1)
    with pytest.raises(ValueError, match="dt must be"):
        gs.rkc2_stages(0.0, *args)


@pytest.mark.parametrize("z", [3.0, 40.0])
def test_rkc2_damps_the_stiffest_diffusion_mode_at_large_steps(z):
    # The checkerboard mode (largest eigenvalue of −Δ_h) at dt·Du·λ_max = z, far beyond AB2's
    # limit of 1, decays by exactly P_s(−z) per step with the stages the solver picks.
    from neuralhss.solvers import _gray_scott_stencil as kern

    n, length, Du = 16, 1.0, 1e-3
    lam_max = gs.laplacian_eigenvalues((n, n), length).max()
    dt = z / (Du * lam_max)
    checker = (-1.0) ** np.add.outer(np.arange(n), np.arange(n))
    u, v, info = gs.solve(1.0 + 1e-3 * checker, np.zeros((n, n)), Du, 1e-3, 0.0, 0.0, 10 * dt,
                          dt=dt, lengths=length, scheme="rkc2", return_info=True)
    amp = kern.rkc2_polynomial(info.stages, -z)
    assert info.steps == 10 and abs(amp) < 1
    assert np.abs((u[0] - 1.0) - 1e-3 * amp**10 * checker).max() <= 1e-15
    assert not v.any()


def test_stability_bound_refuses_bad_input():
    with pytest.raises(ValueError, match="scheme must be one of"):
        gs.stability_bound("rk4", 2e-5, 1e-5, 0.035, 0.065, (8, 8))
    with pytest.raises(ValueError, match="shape"):
        gs.stability_bound("ab2", 2e-5, 1e-5, 0.035, 0.065, (8, 8, 8))
    assert gs.stability_bound("sbdf2", 2e-5, 1e-5, 0.035, 0.065, (8, 8)) == pytest.approx(4 / 3)
