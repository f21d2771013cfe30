"""Validation of neuralhss.solvers.darcy: convergence, agreement with Poisson, API contract."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from neuralhss.solvers import darcy, poisson
from neuralhss.solvers.verification import convergence_study

LENGTHS = (1.0, 2.0, 0.5)


def thresholded_field(shape, seed=0, contrast=(12.0, 3.0)):
    g = gaussian_filter(np.random.default_rng(seed).standard_normal(shape), sigma=max(shape) / 12)
    return np.where(g > 0, *contrast)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_second_order_smooth_coefficient(d):
    orders = convergence_study("darcy", d).orders
    assert np.all((orders > 1.9) & (orders < 2.1)), orders


@pytest.mark.parametrize("method", ["direct", "amg", "spectral"])
@pytest.mark.parametrize("shape", [(40,), (24, 20), (10, 12, 9)])
def test_constant_coefficient_equals_poisson(method, shape):
    lengths = LENGTHS[:len(shape)]
    f = np.random.default_rng(5).standard_normal(shape)
    u = darcy.solve(np.full(shape, 2.5), f, lengths=lengths, method=method, rtol=1e-12)
    ref = poisson.solve(f, lengths=lengths) / 2.5
    assert np.abs(u - ref).max() <= 1e-8 * np.abs(ref).max()


@pytest.mark.parametrize("shape", [(7,), (5, 6), (3, 4, 5)])
def test_operator_symmetric_positive_definite(shape):
    a = np.exp(np.random.default_rng(6).standard_normal(shape))
    A = darcy.operator(a, LENGTHS[:len(shape)])
    dense = A.toarray()
    assert np.array_equal(dense, dense.T)
    assert np.linalg.eigvalsh(dense)[0] > 0
    # M-matrix structure: positive diagonal, non-positive off-diagonal, diagonally dominant
    off = dense - np.diag(np.diag(dense))
    assert np.all(np.diag(dense) > 0) and np.all(off <= 0)
    assert np.all(np.diag(dense) + off.sum(axis=1) >= -1e-12 * np.diag(dense))
    # a ≡ 1 reproduces the Poisson matrix exactly
    ones = darcy.operator(np.ones(shape), LENGTHS[:len(shape)])
    lap = poisson.laplacian(shape, LENGTHS[:len(shape)])
    assert abs(ones - lap).max() < 1e-12 * abs(ones).max()


def test_harmonic_face_coefficient():
    A = darcy.operator(np.array([1.0, 3.0]), lengths=3.0).toarray()  # h = 1
    # faces: boundary 1 | harmonic 2·1·3/(1+3) = 1.5 | boundary 3
    assert np.allclose(A, [[2.5, -1.5], [-1.5, 4.5]])


@pytest.mark.parametrize("method,shape", [
    ("direct", (48, 48)), ("amg", (48, 48)), ("spectral", (48, 48)),
    ("direct", (10, 10, 10)), ("amg", (16, 16, 16)), ("spectral", (16, 16, 16))])
def test_residual_reported(method, shape):
    a = thresholded_field(shape)
    u, info = darcy.solve(a, 1.0, method=method, return_info=True)
    assert isinstance(info, darcy.SolveInfo) and info.method == method
    b = np.ones(a.size)
    true_res = np.linalg.norm(b - darcy.operator(a) @ u.ravel()) / np.linalg.norm(b)
    assert info.residual <= 1e-8 and true_res <= 1e-8
    assert info.residual == pytest.approx(true_res, rel=1e-6, abs=1e-15)
    assert (info.iterations > 0) == (method != "direct") and info.seconds > 0


def test_auto_method_choice():
    _, small = darcy.solve(np.ones((16, 16)), 1.0, return_info=True)
    _, large = darcy.solve(np.ones((128, 128)), 1.0, return_info=True)
    _, low3 = darcy.solve(thresholded_field((16, 16, 16)), 1.0, return_info=True)
    _, high3 = darcy.solve(thresholded_field((16, 16, 16), contrast=(100.0, 1.0)), 1.0,
                           return_info=True)
    assert (small.method, large.method) == ("direct", "amg")
    assert (low3.method, high3.method) == ("spectral", "amg")
    _, mixed = darcy.solve(np.stack([np.ones((16,) * 3), np.where(np.eye(16) > 0, 1e3, 1.0)
                                     * np.ones((16,) * 3)]), 1.0, dim=3, return_info=True)
    assert mixed.method == "amg+spectral"
    assert darcy.solve(np.ones(5000), 1.0, return_info=True)[1].method == "direct"


def test_zero_source_gives_zero():
    u, info = darcy.solve(np.ones((8, 8)), 0.0, return_info=True)
    assert not u.any() and info.residual == 0.0


def test_batch_dims():
    rng = np.random.default_rng(7)
    a = np.exp(rng.standard_normal((3, 9, 10)))
    f = rng.standard_normal((3, 9, 10))
    u = darcy.solve(a, f, dim=2)
    assert u.shape == (3, 9, 10)
    for i in range(3):
        assert np.allclose(darcy.solve(a[i], f[i]), u[i], rtol=0, atol=1e-12)
    # one coefficient, many sources (factorised once); scalar f with batched a
    uf = darcy.solve(a[0], f, dim=2)
    assert uf.shape == (3, 9, 10) and np.allclose(uf[2], darcy.solve(a[0], f[2]), atol=1e-12)
    ua = darcy.solve(a, 1.0, dim=2)
    assert ua.shape == (3, 9, 10) and np.allclose(ua[1], darcy.solve(a[1], np.ones((9, 10))))
    # broadcasting leading axes: a (3,) against f (2, 3)
    f2 = rng.standard_normal((2, 3, 9, 10))
    u2 = darcy.solve(a, f2, dim=2)
    assert u2.shape == (2, 3, 9, 10)
    assert np.allclose(u2[1, 2], darcy.solve(a[2], f2[1, 2]), atol=1e-12)


def test_torch_in_torch_out():
    torch = pytest.importorskip("torch")
    a = torch.rand(2, 12, 12, dtype=torch.float32) + 0.5
    u = darcy.solve(a, 1.0, dim=2)
    assert isinstance(u, torch.Tensor) and u.dtype == torch.float32 and u.device == a.device
    ref = darcy.solve(a.double().numpy(), 1.0, dim=2)
    assert np.allclose(u.numpy(), ref, rtol=1e-5)
    # a tensor source alone also makes the result a tensor
    uf = darcy.solve(a[0].double().numpy(), torch.ones(12, 12, dtype=torch.float64))
    assert isinstance(uf, torch.Tensor) and uf.dtype == torch.float64


A = np.ones((6, 6))


@pytest.mark.parametrize("kwargs,match", [
    (dict(a=A, f=np.ones((6, 5))), "spatial shape of a"),
    (dict(a=A, f=np.ones((6,))), "spatial shape of a"),
    (dict(a=A, f=1.0, dim=3), "dim=3 exceeds"),
    (dict(a=np.ones((2, 2, 2, 2)), f=1.0), "dim must be 1..3"),
    (dict(a=A, f=1.0, dim=0), "dim must be 1..3"),
    (dict(a=np.where(np.eye(6) > 0, np.nan, 1.0), f=1.0), "a contains 6 NaN/Inf"),
    (dict(a=A, f=np.full((6, 6), np.inf)), "f contains 36 NaN/Inf"),
    (dict(a=A, f=np.nan), "f contains 1 NaN/Inf"),
    (dict(a=A - 1.0, f=1.0), "a must be strictly positive"),
    (dict(a=np.where(np.eye(6) > 0, -2.0, 1.0), f=1.0), "a must be strictly positive"),
    (dict(a=A, f=1.0, method="gmres"), "method must be one of"),
    (dict(a=A, f=1.0, lengths=-1.0), "lengths must be positive"),
    (dict(a=A, f=1.0, lengths=(1.0, 0.0)), "lengths must be positive"),
    (dict(a=A, f=1.0, rtol=0.0), "rtol must be"),
    (dict(a=A, f=1.0, rtol=2.0), "rtol must be"),
    (dict(a=np.ones((2, 6, 6)), f=np.ones((3, 6, 6)), dim=2), "do not broadcast"),
])
def test_bad_input_raises(kwargs, match):
    with pytest.raises(ValueError, match=match):
        darcy.solve(**kwargs)


def test_operator_bad_input():
    with pytest.raises(ValueError, match="a must be strictly positive"):
        darcy.operator(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="dim must be 1..3"):
        darcy.operator(np.ones((2, 2, 2, 2)))
    with pytest.raises(ValueError, match="lengths must be positive"):
        darcy.operator(np.ones((3, 3)), lengths=(1.0, -1.0))


def test_square_images_of_darcy_pairs_are_darcy_pairs():
    """With a constant source on the unit square, the coefficient -> solution map commutes with
    the square's eight symmetries, so each image of a training pair is another exact pair (what
    the fair protocol's ``augment="d4"`` relies on for Darcy)."""
    import torch

    from neuralhss.train.loop import InMemory
    from neuralhss.train.symmetry import square_images

    a = np.stack([thresholded_field((12, 12), seed=s) for s in (0, 1)])[:, None]
    u = np.stack([darcy.solve(ai[0], 1.0, rtol=1e-12) for ai in a])[:, None]
    images = square_images(InMemory(torch.from_numpy(a), torch.from_numpy(u)))
    solved = np.stack([darcy.solve(ai[0], 1.0, rtol=1e-12) for ai in images.x.numpy()])
    np.testing.assert_allclose(solved, images.y.numpy()[:, 0], atol=1e-12 * np.abs(u).max())
    # the coefficient is not itself symmetric, so the images are new pairs
    assert len({ai.tobytes() for ai in images.x.numpy()}) == 16
