"""Validation of neuralhss.solvers.navier_stokes: accuracy, conservation, API contract."""

from __future__ import annotations

import math

import numpy as np
import pytest

from neuralhss.solvers import navier_stokes as ns

# (Lx, Ly) unequal, so that a mix-up of the x and y axes would show.
LENGTHS = (2.0, 1.0)


def nodes(shape, lengths=LENGTHS):
    """x along axis 0, y along axis 1 (the package's axis convention)."""
    lx, ly = lengths
    x = np.arange(shape[0])[:, None] * (lx / shape[0])
    y = np.arange(shape[1])[None, :] * (ly / shape[1])
    return x, y


def smooth_field(shape, seed, lengths=LENGTHS, kmax=4, amplitude=10.0):
    """Zero-mean random trigonometric polynomial with |k| ≤ kmax (coefficients ~ 1/|k|²)."""
    rng = np.random.default_rng(seed)
    x, y = nodes(shape, lengths)
    w = np.zeros(shape)
    for ky in range(-kmax, kmax + 1):
        for kx in range(0, kmax + 1):
            if (kx, ky) == (0, 0):
                continue
            a, b = rng.standard_normal(2)
            phase = 2 * np.pi * (ky * y / lengths[1] + kx * x / lengths[0])
            w += (a * np.cos(phase) + b * np.sin(phase)) / (kx * kx + ky * ky)
    w -= w.mean()
    return amplitude * w


def orders(errors):
    e = np.asarray(errors)
    return np.log2(e[:-1] / e[1:])


# --------------------------------------------------------------------------------------------
# accuracy


def test_taylor_green_second_order_and_discrete_decay_rate():
    nu, T, dt = 0.01, 1.0, 0.005
    errors = []
    for n in (16, 32, 64):
        shape = (n, n)
        w0 = ns.taylor_green(shape, LENGTHS, 0.0, nu)
        w, info = ns.solve(w0, nu, T, dt=dt, lengths=LENGTHS, return_info=True)
        exact = ns.taylor_green(shape, LENGTHS, T, nu)
        errors.append(np.abs(w[-1] - exact).max() / np.abs(exact).max())
        # The discrete TG mode is an eigenvector of −Δ_h with eigenvalue λ_h; J_A vanishes on it,
        # so the scheme multiplies it by the SSP-RK3 amplification factor R(−νλ_h dt) each step.
        lx, ly = LENGTHS
        hx, hy = lx / n, ly / n
        lam_h = 4 / hx**2 * math.sin(math.pi * hx / lx) ** 2 + 4 / hy**2 * math.sin(math.pi * hy / ly) ** 2
        z = -nu * lam_h * dt
        amp = (1 + z + z**2 / 2 + z**3 / 6) ** int(info.steps)
        assert info.steps == round(T / dt)
        assert np.abs(w[-1] - amp * w0).max() <= 1e-12 * np.abs(w0).max()
        assert abs(amp / math.exp(-nu * lam_h * T) - 1) < 1e-8  # time error negligible
        lam = (2 * np.pi / lx) ** 2 + (2 * np.pi / ly) ** 2
        assert lam_h < lam and (lam - lam_h) / lam < (2 * np.pi / n) ** 2 / 12 * 1.01
    o = orders(errors)
    assert np.all((o > 1.8) & (o < 2.2)), (errors, o)


def test_taylor_green_jacobian_vanishes_to_roundoff():
    w = ns.taylor_green((32, 32), LENGTHS)
    psi = ns.streamfunction(w, LENGTHS)
    j = ns.jacobian(psi, w, LENGTHS)
    h2 = (LENGTHS[0] / 32) * (LENGTHS[1] / 32)
    assert np.abs(j).max() < 1e-13 * np.abs(psi).max() * np.abs(w).max() / h2


def test_jacobian_second_order_against_analytic():
    lx, ly = LENGTHS
    a, b = 2 * np.pi / lx, 2 * np.pi / ly
    errors = []
    for n in (32, 64, 128):
        x, y = nodes((n, n))
        psi = np.exp(np.sin(a * x)) * np.cos(b * y)
        psi_x = a * np.cos(a * x) * psi
        psi_y = -b * np.exp(np.sin(a * x)) * np.sin(b * y)
        w = np.sin(a * x + 2 * b * y) + np.cos(b * y) ** 2
        w_x = a * np.cos(a * x + 2 * b * y)
        w_y = 2 * b * np.cos(a * x + 2 * b * y) - 2 * b * np.cos(b * y) * np.sin(b * y)
        exact = psi_y * w_x - psi_x * w_y  # J(ψ, w) = u·∇w, u = ψ_y, v = −ψ_x
        errors.append(np.abs(ns.jacobian(psi, w, LENGTHS) - exact).max())
    o = orders(errors)
    assert np.all((o > 1.8) & (o < 2.2)), (errors, o)


def test_velocity_and_energy_of_taylor_green():
    lx, ly = LENGTHS
    errors = []
    for n in (16, 32, 64):
        x, y = nodes((n, n))
        w = ns.taylor_green((n, n), LENGTHS)
        u, v = ns.velocity(w, LENGTHS)
        kx, ky = 2 * np.pi / lx, 2 * np.pi / ly
        u_ex = np.sin(kx * x) * np.cos(ky * y)
        v_ex = -(kx / ky) * np.cos(kx * x) * np.sin(ky * y)
        # ½∫|u|² = ½·(¼ + ¼(kx/ky)²)·Lx·Ly
        e_ex = 0.5 * (0.25 + 0.25 * (kx / ky) ** 2) * lx * ly
        errors.append([np.abs(u - u_ex).max(), np.abs(v - v_ex).max(), abs(ns.energy(w, LENGTHS) - e_ex)])
    o = orders(np.array(errors))
    assert np.all((o > 1.8) & (o < 2.2)), o


def test_energy_is_sum_of_squared_forward_differences():
    w = smooth_field((12, 20), 3)
    psi = ns.streamfunction(w, LENGTHS)
    hx, hy = LENGTHS[0] / 12, LENGTHS[1] / 20
    grad2 = ((np.roll(psi, -1, -1) - psi) / hy) ** 2 + ((np.roll(psi, -1, -2) - psi) / hx) ** 2
    assert ns.energy(w, LENGTHS) == pytest.approx(0.5 * grad2.sum() * hx * hy, rel=1e-12)
    assert ns.enstrophy(w, LENGTHS) == pytest.approx(0.5 * (w**2).sum() * hx * hy, rel=1e-15)
    # −Δ_h ψ = w exactly (5-point stencil)
    lap = ((np.roll(psi, 1, -1) + np.roll(psi, -1, -1) - 2 * psi) / hy**2
           + (np.roll(psi, 1, -2) + np.roll(psi, -1, -2) - 2 * psi) / hx**2)
    assert np.abs(-lap - w).max() < 1e-12 * np.abs(w).max()


# --------------------------------------------------------------------------------------------
# conservation


def test_arakawa_jacobian_conserves_mean_energy_enstrophy_to_roundoff():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((3, 16, 24))  # rough fields, batch of 3, rectangular grid
    psi = rng.standard_normal((3, 16, 24))
    for p in (psi, ns.streamfunction(w, LENGTHS)):
        j = ns.jacobian(p, w, LENGTHS)
        for weight in (np.ones_like(w), p, w):
            total = np.abs((weight * j).sum(axis=(-2, -1)))
            scale = np.abs(weight * j).sum(axis=(-2, -1))
            assert np.all(total < 1e-13 * scale), total / scale


def test_inviscid_drift_is_third_order_in_dt():
    w0 = smooth_field((32, 32), 0)
    e0, z0 = ns.energy(w0, LENGTHS), ns.enstrophy(w0, LENGTHS)
    drifts = []
    for dt in (0.002, 0.001, 0.0005):
        w, info = ns.solve(w0, 0.0, 0.125, dt=dt, lengths=LENGTHS, return_info=True)
        drifts.append([abs(info.energy[-1] / e0 - 1), abs(info.enstrophy[-1] / z0 - 1)])
        assert abs(w[-1].mean()) < 1e-13 * np.abs(w0).max()  # mean vorticity stays 0
    o = orders(np.array(drifts))
    assert np.all((o > 2.7) & (o < 3.3)), (drifts, o)


def test_inviscid_short_run_conserves_energy_and_enstrophy():
    w0 = smooth_field((32, 32), 1)
    w, info = ns.solve(w0, 0.0, 0.02, n_snapshots=2, lengths=LENGTHS, cfl=0.1, return_info=True)
    assert np.all(np.abs(info.energy / info.energy0 - 1) < 1e-6), info.energy / info.energy0 - 1
    assert np.all(np.abs(info.enstrophy / info.enstrophy0 - 1) < 1e-6)
    assert info.energy0 == pytest.approx(ns.energy(w0, LENGTHS), rel=1e-15)


# --------------------------------------------------------------------------------------------
# time stepping and API


def test_snapshots_land_on_times_and_match_exact_decay():
    nu = 0.02
    w0 = ns.taylor_green((16, 16))
    w, info = ns.solve(w0, nu, 0.8, n_snapshots=4, return_info=True)
    assert w.shape == (4, 16, 16)
    np.testing.assert_allclose(info.times, [0.2, 0.4, 0.6, 0.8], rtol=0, atol=1e-15)
    lam_h = 2 * 4 * 16**2 * math.sin(math.pi / 16) ** 2
    for k, t in enumerate(info.times):
        np.testing.assert_allclose(w[k], w0 * math.exp(-nu * lam_h * t), rtol=0,
                                   atol=1e-6 * np.abs(w0).max())
    assert not info.fixed_dt and info.dt_max <= 0.2


def test_batch_with_li_forcing_matches_single_samples():
    shape = (16, 16)
    w0 = np.stack([smooth_field(shape, s, (1.0, 1.0), amplitude=a) for s, a in ((4, 1.0), (5, 5.0))])
    f = ns.li_forcing(shape)
    assert abs(f.sum()) < 1e-13
    x, y = nodes(shape, (1.0, 1.0))
    np.testing.assert_allclose(f, 0.1 * (np.sin(2 * np.pi * (x + y)) + np.cos(2 * np.pi * (x + y))),
                               atol=1e-15)
    out, info = ns.solve(w0, 1e-3, 0.3, forcing="li", n_snapshots=3, return_info=True)
    assert out.shape == (2, 3) + shape and info.steps.shape == (2,)
    assert info.steps[0] < info.steps[1]  # each sample takes its own steps
    for i in range(2):
        single = ns.solve(w0[i], 1e-3, 0.3, forcing=f, n_snapshots=3)
        np.testing.assert_allclose(out[i], single, rtol=0, atol=1e-13 * np.abs(single).max())
    per_sample = ns.solve(w0, 1e-3, 0.3, forcing=np.stack([f, 2 * f]), n_snapshots=3)
    np.testing.assert_allclose(per_sample[0], out[0], rtol=0, atol=1e-13 * np.abs(out[0]).max())
    assert np.abs(per_sample[1] - out[1]).max() > 1e-3


def test_default_step_time_error_is_far_below_the_space_error():
    # 32², forced, ν = 1e-3, peak |w0| ≈ 17: time error at the default cfl against cfl = 0.1, and
    # space error against 64² (at coinciding nodes). Measured: 9.4e-4 and 0.11 relative.
    t, nu = 0.5, 1e-3
    w0 = smooth_field((32, 32), 6, (1.0, 1.0), amplitude=3.0)
    w = ns.solve(w0, nu, t, forcing="li")
    ref = ns.solve(w0, nu, t, forcing="li", cfl=0.1)
    fine = ns.solve(smooth_field((64, 64), 6, (1.0, 1.0), amplitude=3.0), nu, t, forcing="li", cfl=0.1)
    time_error = np.abs(w - ref).max()
    space_error = np.abs(ref - fine[:, ::2, ::2]).max()
    assert time_error < 2e-3 * np.abs(ref).max()
    assert time_error < 0.02 * space_error


def test_torch_in_torch_out():
    torch = pytest.importorskip("torch")
    w0 = ns.taylor_green((12, 12))
    t0 = torch.tensor(w0, dtype=torch.float32)
    out = ns.solve(t0, 0.01, 0.1, n_snapshots=2)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32 and out.shape == (2, 12, 12)
    ref = ns.solve(w0.astype(np.float32), 0.01, 0.1, n_snapshots=2)
    np.testing.assert_allclose(out.numpy(), ref, rtol=0, atol=1e-6)
    u, v = ns.velocity(torch.tensor(w0), 1.0)
    assert isinstance(u, torch.Tensor) and u.dtype == torch.float64
    assert isinstance(ns.jacobian(torch.tensor(w0), torch.tensor(w0)), torch.Tensor)


def test_empty_batch():
    out, info = ns.solve(np.zeros((0, 8, 8)), 0.1, 1.0, n_snapshots=2, return_info=True)
    assert out.shape == (0, 2, 8, 8) and info.steps.shape == (0,)


# --------------------------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize("kwargs,match", [
    (dict(nu=-1e-3), "nu must be"),
    (dict(nu=float("nan")), "nu must be"),
    (dict(t_final=0.0), "t_final"),
    (dict(n_snapshots=0), "n_snapshots"),
    (dict(cfl=1.5), "cfl"),
    (dict(dt=-0.1), "dt must be"),
    (dict(forcing="kolmogorov2"), "forcing must be"),
    (dict(forcing=np.ones((5, 16))), "does not broadcast"),
    (dict(forcing=np.ones((16, 16))), "forcing must have zero mean"),
    (dict(lengths=(1.0, -1.0)), "lengths"),
])
def test_bad_arguments(kwargs, match):
    args = dict(w0=ns.taylor_green((16, 16)), nu=0.01, t_final=0.1) | kwargs
    with pytest.raises(ValueError, match=match):
        ns.solve(**args)


def test_bad_initial_fields():
    w0 = ns.taylor_green((16, 16))
    bad = w0.copy()
    bad[3, 4] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        ns.solve(bad, 0.01, 0.1)
    with pytest.raises(ValueError, match="at least 2 axes"):
        ns.solve(w0[0], 0.01, 0.1)
    with pytest.raises(ValueError, match="at least 3 nodes"):
        ns.solve(np.zeros((2, 8)), 0.01, 0.1)
    with pytest.raises(ValueError, match="w0 must have zero mean"):
        ns.solve(w0 + 0.1, 0.01, 0.1)
    ns.solve((w0 + 1e-12).astype(np.float32), 0.01, 0.01)  # float32 round-off mean is accepted


def test_unstable_dt_is_rejected_with_the_limit():
    w0 = smooth_field((32, 32), 2, (1.0, 1.0))
    with pytest.raises(ValueError, match=r"stability limit [0-9.e-]+"):
        ns.solve(w0, 0.0, 1.0, dt=0.1)
    with pytest.raises(ValueError, match="stability limit"):
        ns.solve(ns.taylor_green((64, 64)) * 1e-6, 1.0, 1e-3, dt=1e-4)  # diffusion-limited


def test_fixed_dt_that_becomes_unstable_raises():
    # Stable for the quiet initial field, unstable once strong forcing has spun the flow up.
    w0 = 1e-3 * ns.taylor_green((16, 16))
    with pytest.raises(FloatingPointError, match="exceeds the SSP-RK3 stability limit"):
        ns.solve(w0, 0.01, 5.0, dt=0.1, forcing=1e3 * ns.li_forcing((16, 16)))


def test_overflow_raises_floating_point_error():
    w0 = 1e300 * smooth_field((16, 16), 7, (1.0, 1.0))
    with np.errstate(all="ignore"), pytest.raises(FloatingPointError, match="NaN/Inf"):
        ns.solve(w0, 0.0, 1.0)
