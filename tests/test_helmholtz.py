"""Validation of neuralhss.solvers.helmholtz: convergence, free-space Green's function, PML
reflection, operator, batching and the API contract."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import hankel1

from neuralhss.solvers import helmholtz
from neuralhss.solvers.verification import _dirichlet_factor, nodes

LENGTHS = (1.0, 2.0)


def manufactured(n, k0, loss=0.0, pml=0, strength=helmholtz.DEFAULT_PML_STRENGTH):
    """``(eps, f, u)`` with the stretched −Δu − k0²εu = f, u = Π sin(πξ)e^ξ, smooth ε."""
    X = nodes((n, n), LENGTHS, ("dirichlet", "dirichlet"))
    parts = [_dirichlet_factor(x, L) for x, L in zip(X, LENGTHS, strict=True)]
    eps = 1.0 + 0.5 * np.sin(np.pi * (X[0] / LENGTHS[0] + X[1] / LENGTHS[1]) + 1.0)
    if loss:
        eps = eps + 1j * loss * (1.0 + np.cos(X[0]))
    u = parts[0][0] * parts[1][0]
    lap = np.zeros_like(u, dtype=complex)
    for k, (x, L) in enumerate(zip(X, LENGTHS, strict=True)):
        # (1/s)∂((1/s)∂u) = u''/s² − s'u'/s³ with s = 1 + i(σ_max/k0)(depth/δ)³
        s, s1 = np.ones_like(x, dtype=complex), np.zeros_like(x, dtype=complex)
        if pml:
            delta = (pml + 1) * L / (n + 1)
            c = 4.0 * strength / delta / k0
            depth = np.maximum(np.maximum(delta - x, x - (L - delta)), 0.0) / delta
            s = 1.0 + 1j * c * depth**3
            s1 = 1j * c * 3.0 * depth**2 * np.where(x < L / 2, -1.0, 1.0) / delta
        other = parts[1 - k][0]
        lap += (parts[k][2] / s**2 - s1 * parts[k][1] / s**3) * other
    return eps, -lap - k0**2 * eps * u, u


def orders(errors):
    e = np.asarray(errors)
    return np.log2(e[:-1] / e[1:])


@pytest.mark.parametrize("k0,loss", [(2.0, 0.0), (8.0, 0.2)])
def test_second_order_without_pml(k0, loss):
    # k0 = 2: definite real problem; k0 = 8: indefinite (above five cavity eigenvalues), lossy ε.
    errors = []
    for n in [15, 31, 63, 127]:
        eps, f, u = manufactured(n, k0, loss)
        errors.append(np.abs(helmholtz.solve(eps, f, k0, LENGTHS, pml=0) - u).max())
    o = orders(errors)
    assert np.all((o > 1.9) & (o < 2.1)), (errors, o)  # observed 1.99-2.00


def test_second_order_inside_stretched_layer():
    # The PML itself is discretised to second order: a manufactured u solves the *stretched*
    # equation, with a layer of fixed physical width (a quarter of the box on each side).
    k0, strength = 8.0, 2.0
    errors = []
    for n in [31, 63, 127, 255]:
        pml = (n + 1) // 4 - 1
        eps, f, u = manufactured(n, k0, pml=pml, strength=strength)
        uh = helmholtz.solve(eps, f, k0, LENGTHS, pml=pml, pml_strength=strength)
        errors.append(np.abs(uh - u).max())
    o = orders(errors)
    assert np.all((o > 1.9) & (o < 2.1)), (errors, o)  # observed 2.00-2.02


def point_source_field(ppw, half_width_wl, pml=helmholtz.DEFAULT_PML, extra=0):
    """Unit point source at the centre of a homogeneous box, k0 = 2π (λ = 1), h = λ/ppw.

    The physical region is (2m+1)² nodes, m = half_width_wl·ppw; ``extra`` nodes of physical
    padding per side make the box larger (for a reference). Returns the physical-region field
    (without the padding), the distance of its nodes from the source, and the box size n.
    """
    k0, h = 2 * np.pi, 1.0 / ppw
    m = round(half_width_wl * ppw)
    n = 2 * (m + pml + extra) + 1
    L = (n + 1) * h
    f = helmholtz.point_source((n, n), L, (L / 2, L / 2))
    u, info = helmholtz.solve(1.0, f, k0, L, pml=pml, return_info=True)
    assert info.residual < 1e-10
    inner = slice(pml + extra, n - pml - extra)
    assert info.physical == (slice(pml, n - pml),) * 2
    x = (np.arange(2 * m + 1) - m) * h
    r = np.hypot(*np.meshgrid(x, x, indexing="ij"))
    return u[inner, inner], r, n


def test_point_source_matches_hankel():
    errors = {}
    for ppw in (20, 30):
        u, r, _ = point_source_field(ppw, 2.2)
        ring = (r >= 1.0) & (r <= 2.0)  # one to two wavelengths from the source
        exact = 0.25j * hankel1(0, 2 * np.pi * r[ring])
        errors[ppw] = np.linalg.norm(u[ring] - exact) / np.linalg.norm(exact)
    # The error is the 5-point stencil's phase error ~(k0 h)²/24 per radian: 3.3 % at 20
    # points per wavelength, 1.4 % at 30 (observed); the 2 % target needs ≳ 25 points.
    assert errors[20] < 0.035, errors
    assert errors[30] < 0.02, errors
    assert 0.40 < errors[30] / errors[20] < 0.50, errors  # (20/30)² = 0.44: second order


def test_pml_reflection_below_1e_3():
    # Same h and source; the reference box has 100 more physical nodes on every side, so its
    # own layer's echo is weaker and arrives later. Compared away from the source (r ≥ λ/2).
    u, r, n = point_source_field(20, 2.2)
    ref, _, n_ref = point_source_field(20, 2.2, extra=100)
    assert (n, n_ref) == (121, 321)
    far = r >= 0.5
    reflection = np.abs(u - ref)[far].max() / np.abs(ref[far]).max()
    assert reflection < 1e-3, reflection  # observed 4.3e-6 (default pml=16, strength 8)
    # A weak layer does reflect, measurably: the comparison can see reflections.
    k0, h = 2 * np.pi, 1 / 20
    L = (n + 1) * h
    f = helmholtz.point_source((n, n), L)
    weak = helmholtz.solve(1.0, f, k0, L, pml_strength=1.0)[16:-16, 16:-16]
    assert np.abs(weak - ref)[far].max() / np.abs(ref[far]).max() > 1e-2


def test_operator_forms_and_reciprocity():
    rng = np.random.default_rng(0)
    eps = 1.0 + rng.random((12, 9)) + 0.1j * rng.random((12, 9))
    f = rng.standard_normal((12, 9)) + 1j * rng.standard_normal((12, 9))
    A = helmholtz.operator(eps, 5.0, LENGTHS, pml=3)
    S = helmholtz.operator(eps, 5.0, LENGTHS, pml=3, symmetric=True)
    assert A.dtype == np.complex128 and A.shape == (108, 108)
    assert abs(S - S.T).max() == 0.0  # complex symmetric (reciprocity), not Hermitian
    u = helmholtz.solve(eps, f, 5.0, LENGTHS, pml=3)
    assert np.linalg.norm(A @ u.ravel() - f.ravel()) < 1e-12 * np.linalg.norm(A @ u.ravel())
    # Without a layer it is the 5-point −Δ − k0²ε: constant rows away from the walls.
    A0 = helmholtz.operator(np.ones((5, 5)), 2.0, 6.0, pml=0).toarray()  # h = 1
    assert A0[12, 12] == pytest.approx(4.0 - 4.0)
    assert sorted(A0[12][A0[12] != 0].real) == [-1.0, -1.0, -1.0, -1.0]
    # Source–receiver symmetry of the Green's function with the layer on.
    n, L = 41, 2.1
    a, b = (0.6, 0.9), (1.3, 1.1)
    ga = helmholtz.solve(1.5, helmholtz.point_source((n, n), L, a), 7.0, L, pml=8)
    gb = helmholtz.solve(1.5, helmholtz.point_source((n, n), L, b), 7.0, L, pml=8)
    h = L / (n + 1)
    ia, ib = [tuple(round(c / h) - 1 for c in p) for p in (a, b)]
    assert ga[ib] == pytest.approx(gb[ia], rel=1e-10)


def test_pml_stretch_profile():
    s_node, s_face = helmholtz.stretch(20, 2.1, 3.0, 4, 8.0)  # h = 0.1, δ = 0.5
    assert s_node.shape == (20,) and s_face.shape == (21,)
    assert np.all(s_node.real == 1.0) and np.all(s_node.imag >= 0)
    assert np.all(s_node[4:16] == 1.0) and np.all(s_node[:4].imag > 0)  # 4 nodes per wall
    assert np.allclose(s_node, s_node[::-1]) and np.allclose(s_face, s_face[::-1])
    # σ = k0·Im s = (4A/δ)·(depth/δ)³, so that ∫σ dx over the layer is A = 8.
    x_face = (np.arange(5) + 0.5) * 0.1
    assert np.allclose(3.0 * s_face.imag[:5], (4 * 8.0 / 0.5) * ((0.5 - x_face) / 0.5) ** 3)
    assert np.all(helmholtz.stretch(20, 2.1, 3.0, 0)[0] == 1.0)


def test_batch_broadcast_and_factorisation_reuse():
    rng = np.random.default_rng(1)
    shape = (20, 24)
    f = rng.standard_normal((3, *shape))
    eps = 1.0 + rng.random(shape)
    u, info = helmholtz.solve(eps, f, 6.0, LENGTHS, pml=4, return_info=True)
    assert u.shape == (3, *shape) and u.dtype == np.complex128 and info.factorizations == 1
    for i in range(3):
        assert np.array_equal(u[i], helmholtz.solve(eps, f[i], 6.0, LENGTHS, pml=4))
    eps2 = np.stack([eps, 2 * eps])
    u2, info2 = helmholtz.solve(eps2[:, None], f[None], 6.0, LENGTHS, pml=4, return_info=True)
    assert u2.shape == (2, 3, *shape) and info2.factorizations == 2
    assert np.allclose(u2[1, 2], helmholtz.solve(2 * eps, f[2], 6.0, LENGTHS, pml=4), rtol=1e-12)
    # complex sources are linear: u(f + i g) = u(f) + i u(g)
    g = rng.standard_normal(shape)
    uc = helmholtz.solve(eps, f[0] + 1j * g, 6.0, LENGTHS, pml=4)
    assert np.allclose(uc, u[0] + 1j * helmholtz.solve(eps, g, 6.0, LENGTHS, pml=4), atol=1e-12)
    zero = helmholtz.solve(eps, np.zeros(shape), 6.0, LENGTHS, pml=4)
    assert np.array_equal(zero, np.zeros(shape))


def test_torch_round_trip():
    torch = pytest.importorskip("torch")
    f = torch.from_numpy(helmholtz.point_source((21, 21), 1.0)).float()
    u = helmholtz.solve(1.0, f, 8.0, pml=4)
    assert isinstance(u, torch.Tensor) and u.dtype == torch.complex64
    ref = helmholtz.solve(1.0, f.double().numpy(), 8.0, pml=4)
    assert np.allclose(u.numpy(), ref, rtol=1e-5, atol=1e-6 * np.abs(ref).max())


def test_point_source():
    f = helmholtz.point_source((9, 4), (1.0, 2.5))  # h = 0.1, 0.5
    assert f.sum() == pytest.approx(1 / 0.05) and np.count_nonzero(f) == 1
    assert f[4, 1] == pytest.approx(20.0)  # nearest node to (0.5, 1.25) is (0.5, 1.0)
    with pytest.raises(ValueError, match="center"):
        helmholtz.point_source((9, 9), 1.0, (1.2, 0.5))


@pytest.mark.parametrize("kwargs,match", [
    ({"eps_r": np.full((10, 10), np.nan)}, "eps_r"),
    ({"f": np.full((10, 10), np.inf)}, "f contains"),
    ({"eps_r": -np.ones((10, 10))}, "eps_r"),
    ({"eps_r": np.zeros((10, 10))}, "eps_r"),
    ({"eps_r": np.ones((10, 10)) - 0.1j}, "Im"),
    ({"k0": 0.0}, "k0"),
    ({"k0": -1.0}, "k0"),
    ({"k0": float("nan")}, "k0"),
    ({"pml": 5}, "pml"),
    ({"pml": -1}, "pml"),
    ({"pml": (1, 2, 3)}, "pml"),
    ({"pml_strength": 0.0}, "pml_strength"),
    ({"eps_r": np.ones((10, 11))}, "spatial shape"),
    ({"eps_r": np.ones((3, 10, 10)), "f": np.ones((2, 10, 10))}, "broadcast"),
    ({"f": np.ones(10)}, "at least 2 axes"),
    ({"lengths": (1.0, -1.0)}, "lengths"),
])
def test_bad_input(kwargs, match):
    args = {"eps_r": np.ones((10, 10)), "f": np.ones((10, 10)), "k0": 3.0, "pml": 2}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        helmholtz.solve(**args)
