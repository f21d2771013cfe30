"""Validation of neuralhss.solvers.maxwell: energy conservation, cavity-mode dispersion and
convergence, absorbing boundary, agreement with the Helmholtz solver, API contract."""

from __future__ import annotations

import numpy as np
import pytest

from neuralhss.solvers import helmholtz, maxwell

LENGTHS = (1.5, 1.0)  # (L_x, L_y): x is array axis 0


def nodes(shape, lengths):
    """(X, Y) of the interior nodes, shape (n_x, n_y)."""
    x = np.arange(1, shape[0] + 1) * lengths[0] / (shape[0] + 1)
    y = np.arange(1, shape[1] + 1) * lengths[1] / (shape[1] + 1)
    return np.meshgrid(x, y, indexing="ij")


def gaussian(shape, lengths, center, width):
    X, Y = nodes(shape, lengths)
    return np.exp(-((X - center[0]) ** 2 + (Y - center[1]) ** 2) / (2 * width**2))


def test_pec_cavity_conserves_discrete_energy():
    shape = (47, 31)
    X, Y = nodes(shape, LENGTHS)
    eps = 1.5 + 0.5 * np.sin(2 * X + 3 * Y)
    ez0 = gaussian(shape, LENGTHS, (0.7, 0.4), 0.1)
    deviation = {}
    for courant in (0.9, 0.45):
        _, info = maxwell.solve(eps, 40.0, ez0=ez0, lengths=LENGTHS, n_snapshots=200,
                                courant=courant, return_info=True)
        W, P = info.energy, info.energy_plain
        assert info.energy.shape == (201,) and info.n_steps >= 2000
        assert np.abs(W - W[0]).max() <= 1e-12 * W[0]  # observed 2e-15 over 2200 / 4200 steps
        assert P[0] == pytest.approx(0.5 * np.sum(eps * ez0**2) * 1.5 / 48 / 32, rel=1e-14)
        deviation[courant] = np.abs(P - P[0]).max() / P[0]
    # The plain energy oscillates at O(Δt²) (⅛Σ|H^{n+½} − H^{n−½}|²): observed 3.3e-3 at
    # Courant number 0.9, 9.2e-4 at 0.45 (ratio 3.5).
    assert deviation[0.9] < 1e-2
    assert 3.0 < deviation[0.9] / deviation[0.45] < 5.0, deviation


def mode_frequency(shape, m, n, eps, courant, periods=2.0, n_snapshots=64):
    """Run the TM_mn cavity mode; measure ω from the snapshots' projections on the mode.

    A single discrete mode evolves as e_k = cos(ω t_k) exactly, so
    e_{k+1} + e_{k−1} = 2 cos(ωτ) e_k gives cos(ωτ) by least squares (τ the snapshot spacing).
    """
    X, Y = nodes(shape, LENGTHS)
    mode = np.sin(m * np.pi * X / LENGTHS[0]) * np.sin(n * np.pi * Y / LENGTHS[1])
    omega = maxwell.cavity_frequency(m, n, LENGTHS, eps)
    dt = courant * maxwell.cfl_limit(eps, LENGTHS, shape)
    per = max(1, round(periods * 2 * np.pi / omega / dt / n_snapshots))
    t_final = n_snapshots * per * dt  # whole steps: the Courant number is exactly `courant`
    ez, info = maxwell.solve(eps, t_final, ez0=mode, lengths=LENGTHS, n_snapshots=n_snapshots,
                             dt=dt, return_info=True)
    assert info.dt == pytest.approx(dt, rel=1e-12) and info.n_steps == n_snapshots * per
    e = np.concatenate([[np.sum(mode**2)], np.einsum("kij,ij->k", ez, mode)])
    cos = np.sum(e[1:-1] * (e[2:] + e[:-2])) / (2 * np.sum(e[1:-1] ** 2))
    measured = np.arccos(cos) / (t_final / n_snapshots)
    return measured, maxwell.cavity_frequency(m, n, LENGTHS, eps, shape=shape, dt=info.dt), omega


@pytest.mark.parametrize("m,n,eps,courant", [(1, 2, 2.25, 0.5), (2, 1, 1.0, 0.9)])
def test_cavity_mode_frequency_second_order(m, n, eps, courant):
    errors = []
    for s in (16, 32, 64, 128):  # h = L/s halves
        shape = (round(1.5 * s) - 1, s - 1)
        measured, discrete, exact = mode_frequency(shape, m, n, eps, courant)
        # the scheme follows its exact discrete dispersion relation to round-off
        assert abs(measured - discrete) <= 1e-11 * exact
        errors.append(abs(measured - exact))
    orders = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert np.all((orders > 1.8) & (orders < 2.2)), (errors, orders)  # observed 2.00


def test_absorbing_boundary_lets_energy_leave():
    shape = (99, 99)
    ez0 = gaussian(shape, (1.0, 1.0), (0.45, 0.5), 0.03)
    _, pec = maxwell.solve(1.0, 3.0, ez0=ez0, n_snapshots=3, return_info=True)
    _, pml = maxwell.solve(1.0, 3.0, ez0=ez0, n_snapshots=3, boundary="absorbing",
                           return_info=True)
    assert np.allclose(pec.energy, pec.energy[0], rtol=1e-12)
    ratio = pml.energy / pml.energy[0]
    # the pulse reaches the layer at t ≈ 0.3 and has left by t = 1 (2-D waves keep a slowly
    # decaying wake): observed 5e-4, 3.3e-5, 5e-6 at t = 1, 2, 3
    assert np.all(np.diff(ratio) < 0) and ratio[1] < 2e-3 and ratio[-1] < 1e-4, ratio


def test_absorbing_boundary_reflection():
    # Against the same pulse on a box 100 nodes larger on every side (same h): until the
    # reference's own echo returns, any difference is reflected by the smaller box's layer.
    n, pad, h = 79, 100, 1 / 80
    ez0 = gaussian((n, n), (1.0, 1.0), (0.45, 0.5), 0.03)
    big = np.zeros((n + 2 * pad,) * 2)
    big[pad:-pad, pad:-pad] = ez0
    L_big = (n + 2 * pad + 1) * h
    small = maxwell.solve(1.0, 1.2, ez0=ez0, n_snapshots=6, boundary="absorbing")
    ref = maxwell.solve(1.0, 1.2, ez0=big, lengths=L_big, n_snapshots=6, boundary="absorbing")
    inner = (slice(None), slice(16, -16), slice(16, -16))
    diff = np.abs(small[inner] - ref[:, pad:-pad, pad:-pad][inner]).max()
    assert diff < 1e-4 * np.abs(ez0).max(), diff  # observed 7e-7
    # with a weak layer the comparison does see the reflection
    weak = maxwell.solve(1.0, 1.2, ez0=ez0, n_snapshots=6, boundary="absorbing", pml_strength=0.5)
    assert np.abs(weak[inner] - ref[:, pad:-pad, pad:-pad][inner]).max() > 1e-2


def test_time_harmonic_source_matches_helmholtz():
    # J = j(x)·sin(ωt) ⇒ in steady state E_z = Re(Ê e^{−iωt}) with −ΔÊ − ω²Ê = −ω j (c0 = 1).
    ppw, width, m = 20, 16, 30
    h, k0 = 1.0 / ppw, 2 * np.pi
    n = 2 * (m + width) + 1
    L = (n + 1) * h
    j = helmholtz.point_source((n, n), L)
    t_final = 8.0
    ez = maxwell.solve(1.0, t_final, source=j, frequency=k0 / (2 * np.pi), waveform="sine",
                       lengths=L, boundary="absorbing", pml=width)[0]
    u = helmholtz.solve(1.0, -k0 * j, k0, L, pml=width)
    expected = np.real(u * np.exp(-1j * k0 * t_final))
    x = (np.arange(n) - n // 2) * h
    r = np.hypot(*np.meshgrid(x, x, indexing="ij"))
    ring = (r >= 1.0) & (r <= 1.5)
    err = np.linalg.norm(ez[ring] - expected[ring]) / np.linalg.norm(expected[ring])
    assert err < 0.03, err  # observed 1.4 %: the leapfrog's temporal dispersion (ωΔt)²/24


def test_snapshots_land_on_times_and_waveforms():
    shape = (20, 16)
    ez0 = gaussian(shape, LENGTHS, (0.7, 0.4), 0.1)
    ez, info = maxwell.solve(2.0, 0.8, ez0=ez0, lengths=LENGTHS, n_snapshots=4, return_info=True)
    assert ez.shape == (4, *shape) and np.allclose(info.times, [0.2, 0.4, 0.6, 0.8])
    assert info.dt <= 0.9 * info.dt_limit and info.n_steps * info.dt == pytest.approx(0.8)
    assert info.dt_limit == pytest.approx(np.sqrt(2.0) / np.sqrt(14**2 + 17**2))
    for k, t in enumerate(info.times):
        alone = maxwell.solve(2.0, t, ez0=ez0, lengths=LENGTHS, dt=info.dt)
        assert np.allclose(alone[0], ez[k], rtol=0, atol=1e-12)
    # a callable waveform equals the built-in one
    j = np.zeros(shape)
    j[10, 8] = 1.0
    a = maxwell.solve(1.0, 1.0, source=j, frequency=3.0, lengths=LENGTHS)
    b = maxwell.solve(1.0, 1.0, source=j, waveform=lambda t: maxwell.ricker(t, 3.0), lengths=LENGTHS)
    assert np.array_equal(a, b) and np.abs(a).max() > 0
    # linearity: initial field + source = sum of the two runs
    both = maxwell.solve(1.0, 1.0, ez0=ez0, source=j, frequency=3.0, lengths=LENGTHS)
    only = maxwell.solve(1.0, 1.0, ez0=ez0, lengths=LENGTHS)
    assert np.allclose(both, a + only, atol=1e-13)


@pytest.mark.parametrize("boundary", ["pec", "absorbing"])
def test_batch_broadcasts_and_matches_single_runs(boundary):
    rng = np.random.default_rng(2)
    shape = (24, 22)
    eps = 1.0 + rng.random((2, 1, *shape))
    ez0 = rng.standard_normal((3, *shape))
    kw = {"lengths": LENGTHS, "n_snapshots": 2, "boundary": boundary, "pml": 4}
    ez, info = maxwell.solve(eps, 0.5, ez0=ez0, return_info=True, **kw)
    assert ez.shape == (2, 3, 2, *shape) and info.energy.shape == (2, 3, 3)
    single = maxwell.solve(eps[1, 0], 0.5, ez0=ez0[2], dt=info.dt, **kw)
    assert np.allclose(ez[1, 2], single, rtol=0, atol=1e-13)


def test_torch_round_trip():
    torch = pytest.importorskip("torch")
    ez0 = torch.from_numpy(gaussian((20, 16), LENGTHS, (0.7, 0.4), 0.1)).float()
    ez = maxwell.solve(1.0, 0.5, ez0=ez0, lengths=LENGTHS, n_snapshots=2)
    assert isinstance(ez, torch.Tensor) and ez.dtype == torch.float32 and ez.shape == (2, 20, 16)
    ref = maxwell.solve(1.0, 0.5, ez0=ez0.double().numpy(), lengths=LENGTHS, n_snapshots=2)
    assert np.allclose(ez.numpy(), ref, atol=1e-6)


def test_cfl_violation_is_refused():
    ez0 = np.ones((10, 10))
    limit = maxwell.cfl_limit(2.0, 1.0, (10, 10))  # min eps_r = 2 sets c_max
    eps = np.full((10, 10), 4.0)
    eps[0, 0] = 2.0
    maxwell.solve(eps, 0.3, ez0=ez0, dt=limit)  # at the limit: accepted
    with pytest.raises(ValueError, match=f"CFL limit {limit:.6g}"):
        maxwell.solve(eps, 0.3, ez0=ez0, dt=1.01 * limit)


@pytest.mark.parametrize("kwargs,match", [
    ({"eps_r": np.full((10, 10), np.nan)}, "eps_r contains"),
    ({"ez0": np.full((10, 10), np.inf)}, "ez0 contains"),
    ({"source": np.full((10, 10), np.nan), "frequency": 1.0}, "source contains"),
    ({"eps_r": np.zeros((10, 10))}, "eps_r must be strictly positive"),
    ({"eps_r": -1.0}, "eps_r must be strictly positive"),
    ({"eps_r": np.ones((10, 10)), "ez0": np.ones((10, 11))}, "spatial shape"),
    ({"eps_r": np.ones((2, 10, 10)), "ez0": np.ones((3, 10, 10))}, "broadcast"),
    ({"ez0": None}, "ez0"),
    ({"source": np.ones((10, 10))}, "frequency"),
    ({"frequency": 2.0}, "frequency is only used"),
    ({"source": np.ones((10, 10)), "frequency": 1.0, "waveform": "square"}, "waveform"),
    ({"boundary": "open"}, "boundary"),
    ({"courant": 0.0}, "courant"),
    ({"courant": 1.5}, "courant"),
    ({"dt": -0.01}, "dt"),
    ({"t_final": 0.0}, "t_final"),
    ({"n_snapshots": 0}, "n_snapshots"),
    ({"boundary": "absorbing", "pml": 5}, "width"),
    ({"boundary": "absorbing", "pml": 2, "pml_strength": 0.0}, "strength"),
    ({"ez0": np.ones(10)}, "at least 2 axes"),
])
def test_bad_input(kwargs, match):
    args = {"eps_r": 1.0, "t_final": 0.2, "ez0": np.ones((10, 10))}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        maxwell.solve(**args)
