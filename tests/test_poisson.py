"""Validation of neuralhss.solvers.poisson: convergence, exactness, operator, API contract."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse.linalg as sla
from hypothesis import given, settings
from hypothesis import strategies as hs

from neuralhss.solvers import poisson
from neuralhss.solvers.verification import LENGTHS, convergence_study


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("bc", ["dirichlet", "periodic"])
def test_second_order_convergence(d, bc):
    orders = convergence_study("poisson", d, bc).orders
    assert np.all((orders > 1.9) & (orders < 2.1)), orders


@pytest.mark.parametrize("shape,bc", [
    ((9,), "dirichlet"), ((9,), "periodic"),
    ((6, 7), "dirichlet"), ((6, 7), "periodic"), ((6, 7), ("periodic", "dirichlet")),
    ((4, 5, 6), "dirichlet"), ((4, 5, 6), "periodic"),
    ((4, 5, 6), ("dirichlet", "periodic", "periodic")),
    ((3, 4, 5), ("periodic", "dirichlet", "periodic")),
])
def test_transform_solve_equals_sparse_direct(shape, bc):
    rng = np.random.default_rng(1)
    lengths = LENGTHS[:len(shape)]
    f = rng.standard_normal(shape)
    bcs = (bc,) * len(shape) if isinstance(bc, str) else bc
    A = poisson.laplacian(shape, lengths, bc)
    if all(b == "periodic" for b in bcs):
        f -= f.mean()
        # Singular system: pin the zero-mean solution by appending the constraint Σu = 0.
        import scipy.sparse as sp
        ones = np.ones((1, A.shape[0]))
        K = sp.bmat([[A, ones.T], [ones, None]], format="csc")
        ref = sla.spsolve(K, np.concatenate([f.ravel(), [0.0]]))[:-1]
    else:
        ref = sla.spsolve(A.tocsc(), f.ravel())
    u = poisson.solve(f, lengths=lengths, bc=bc)
    assert np.abs(u.ravel() - ref).max() <= 1e-12 * np.abs(ref).max()
    assert np.linalg.norm(A @ u.ravel() - f.ravel()) <= 1e-13 * np.linalg.norm(f)


@pytest.mark.parametrize("shape,bc", [((12,), "dirichlet"), ((5, 6), "dirichlet"),
                                      ((3, 4, 5), "dirichlet"), ((5, 6), "periodic"),
                                      ((3, 4, 5), ("dirichlet", "periodic", "dirichlet"))])
def test_laplacian_symmetric_positive_definite(shape, bc):
    A = poisson.laplacian(shape, LENGTHS[:len(shape)], bc).toarray()
    assert np.array_equal(A, A.T)
    eig = np.linalg.eigvalsh(A)
    bcs = (bc,) * len(shape) if isinstance(bc, str) else bc
    if all(b == "periodic" for b in bcs):  # semi-definite: kernel = constants
        assert abs(eig[0]) < 1e-10 * eig[-1] and eig[1] > 1e-8 * eig[-1]
    else:
        assert eig[0] > 0


def test_laplacian_matches_eigenvalues():
    A = poisson.laplacian(10, 2.0).toarray()
    assert np.allclose(np.linalg.eigvalsh(A), np.sort(poisson.eigenvalues(10, 2.0)))
    assert poisson.laplacian((4, 5)).shape == (20, 20)


@pytest.mark.parametrize("bc", [("dirichlet", "periodic"), ("periodic", "dirichlet"),
                                ("periodic", "periodic")])
def test_symbol_is_the_spectrum_of_the_laplacian_in_transform_order(bc):
    shape, lengths = (5, 6), (2.0, 0.7)
    lam = poisson.symbol(shape, lengths, bc)
    half = tuple(n // 2 + 1 if k == max(i for i, b in enumerate(bc) if b == "periodic") else n
                 for k, n in enumerate(shape))
    assert lam.shape == half and lam.flags.writeable
    # Every λ is an eigenvalue of the sparse matrix (the full spectrum repeats the rfft half).
    eig = np.linalg.eigvalsh(poisson.laplacian(shape, lengths, bc).toarray())
    assert np.abs(eig[None, :] - lam.reshape(-1, 1)).min(axis=1).max() < 1e-12 * eig.max()
    inv = poisson.symbol(shape, lengths, bc, inverse=True)
    assert not inv.flags.writeable
    kernel = lam == 0
    np.testing.assert_allclose(inv[~kernel] * lam[~kernel], 1.0, rtol=1e-14)
    assert np.all(inv[kernel] == 0) and kernel.sum() == (bc == ("periodic", "periodic"))


def test_gray_scott_eigenvalues_are_the_periodic_symbol():
    from neuralhss.solvers import gray_scott

    np.testing.assert_array_equal(gray_scott.laplacian_eigenvalues((12, 10), (1.3, 0.9)),
                                  poisson.symbol((12, 10), (1.3, 0.9), "periodic"))


@given(shape=hs.lists(hs.integers(1, 7), min_size=1, max_size=3),
       bc=hs.sampled_from(["dirichlet", "periodic"]), seed=hs.integers(0, 2**16))
@settings(max_examples=30, deadline=None)
def test_residual_round_off_any_shape(shape, bc, seed):
    f = np.random.default_rng(seed).standard_normal(shape)
    if bc == "periodic":
        f -= f.mean()
    u = poisson.solve(f, bc=bc)
    A = poisson.laplacian(tuple(shape), bc=bc)
    assert np.linalg.norm(A @ u.ravel() - f.ravel()) <= 1e-12 * max(np.linalg.norm(f), 1e-300)


@pytest.mark.parametrize("bc", ["dirichlet", "periodic"])
def test_batch_dims(bc):
    rng = np.random.default_rng(2)
    f = rng.standard_normal((2, 3, 8, 9))
    if bc == "periodic":
        f -= f.mean(axis=(-2, -1), keepdims=True)
    u = poisson.solve(f, lengths=(1.0, 3.0), bc=bc, dim=2)
    assert u.shape == f.shape and u.dtype == np.float64
    for i in range(2):
        for j in range(3):
            ref = poisson.solve(f[i, j], lengths=(1.0, 3.0), bc=bc)
            assert np.allclose(u[i, j], ref, rtol=0, atol=1e-14 * np.abs(ref).max())
    # a 1-D batch of 2-D problems is not the same as one 3-D problem
    assert not np.allclose(poisson.solve(f[0], dim=2), poisson.solve(f[0]))


def test_numpy_input_kinds():
    f32 = np.random.default_rng(3).standard_normal((6, 6)).astype(np.float32)
    assert poisson.solve(f32).dtype == np.float64
    assert np.allclose(poisson.solve(f32.tolist()), poisson.solve(f32.astype(np.float64)))
    assert poisson.solve(np.zeros((0, 5, 5)), dim=2).shape == (0, 5, 5)


def test_torch_in_torch_out():
    torch = pytest.importorskip("torch")
    f = torch.randn(2, 10, 12, dtype=torch.float32)
    u = poisson.solve(f, dim=2)
    assert isinstance(u, torch.Tensor) and u.dtype == torch.float32 and u.device == f.device
    ref = poisson.solve(f.double().numpy(), dim=2)
    assert np.allclose(u.numpy(), ref, rtol=1e-5, atol=1e-6 * np.abs(ref).max())
    u64 = poisson.solve(f.double(), dim=2)
    assert u64.dtype == torch.float64 and np.allclose(u64.numpy(), ref, rtol=0, atol=1e-15)
    # float32 data whose mean was removed in float32 is accepted as zero-mean
    g = f - f.mean(dim=(-2, -1), keepdim=True)
    assert isinstance(poisson.solve(g, bc="periodic", dim=2), torch.Tensor)


@pytest.mark.parametrize("kwargs,match", [
    (dict(f=np.zeros((4, 4)), dim=3), "dim=3 exceeds"),
    (dict(f=np.zeros((4, 4)), dim=0), "dim must be 1..3"),
    (dict(f=np.zeros((2, 2, 2, 2))), "dim must be 1..3"),
    (dict(f=np.zeros((4, 4)), dim=1.5), "dim must be an integer"),
    (dict(f=np.array([[1.0, np.nan], [0.0, 0.0]])), "f contains 1 NaN/Inf"),
    (dict(f=np.array([1.0, np.inf, -np.inf])), "f contains 2 NaN/Inf"),
    (dict(f=np.zeros((4, 4)), bc="neumann"), "bc must be one of"),
    (dict(f=np.zeros((4, 4)), bc=("dirichlet",)), "sequence of 2"),
    (dict(f=np.zeros((4, 4)), lengths=0.0), "lengths must be positive"),
    (dict(f=np.zeros((4, 4)), lengths=(1.0, -2.0)), "lengths must be positive"),
    (dict(f=np.zeros((4, 4)), lengths=(1.0, 1.0, 1.0)), "sequence of 2 positive"),
    (dict(f=np.zeros((4, 4)), lengths=np.inf), "lengths must be positive"),
    (dict(f=np.ones((4, 4)), bc="periodic"), "zero mean.*f - f.mean"),
    (dict(f=np.zeros((4, 4)) + 1j), "must be real"),
    (dict(f=np.zeros((4, 0))), "at least one node"),
    (dict(f=np.zeros((4, 4)), workers=0), "workers must be"),
])
def test_bad_input_raises(kwargs, match):
    with pytest.raises(ValueError, match=match):
        poisson.solve(**kwargs)


def test_periodic_mean_checked_per_sample():
    f = np.random.default_rng(4).standard_normal((3, 8, 8))
    f -= f.mean(axis=(1, 2), keepdims=True)
    f[1] += 0.1
    with pytest.raises(ValueError, match="in 1 sample"):
        poisson.solve(f, bc="periodic", dim=2)
    # a Dirichlet axis makes the problem non-singular: no mean condition
    poisson.solve(f, bc=("periodic", "dirichlet"), dim=2)


def test_laplacian_bad_shape():
    with pytest.raises(ValueError, match="shape must be"):
        poisson.laplacian((4.0, 4))
    with pytest.raises(ValueError, match="dim must be 1..3"):
        poisson.laplacian((2, 2, 2, 2))
