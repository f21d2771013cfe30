"""from_dense / from_samples: exactness on matrices with known HSS structure, tolerances,
black-box recovery from few pairs, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from neuralhss.hss import HSSOperator, from_dense, from_samples
from neuralhss.models import count_parameters


def inv_second_difference(n: int) -> np.ndarray:
    """Exact inverse of tridiag(-1, 2, -1): min(i, j) (n + 1 - max(i, j)) / (n + 1)."""
    i = np.arange(1, n + 1)
    return np.minimum.outer(i, i) * (n + 1 - np.maximum.outer(i, i)) / (n + 1)


def poisson_solve(x: np.ndarray) -> np.ndarray:
    """Rows of x -> T^{-1} x with T = tridiag(-1, 2, -1) (a black box: A is never formed)."""
    n = x.shape[1]
    ab = np.zeros((3, n))
    ab[0, 1:], ab[1], ab[2, :-1] = -1.0, 2.0, -1.0
    return scipy.linalg.solve_banded((1, 1), ab, x.T).T


def rel_err(op: HSSOperator, A: np.ndarray) -> float:
    Ah = op.to_dense().detach().double().numpy()
    Ah = Ah[0, 0] if A.ndim == 2 else Ah
    return float(np.linalg.norm(Ah - A) / np.linalg.norm(A))


def test_inverse_second_difference_is_rank_two():
    A = inv_second_difference(256)
    op = from_dense(A, (256,), 16, rank=2)
    assert op.ranks == (2,) * 4
    assert rel_err(op, A) < 1e-10
    assert op.D.dtype == torch.float64


@pytest.mark.parametrize("grid, leaf", [((64,), 8), ((8, 16), 8), ((8, 8, 8), 8)])
@pytest.mark.parametrize("ci, co", [(1, 1), (2, 3)])
def test_round_trip_random_hss(grid, leaf, ci, co):
    torch.manual_seed(1)
    src = HSSOperator(ci, co, grid_shape=grid, leaf_size=leaf, rank=3, share="none",
                      dtype=torch.float64)
    A = src.to_dense().detach()
    op = from_dense(A, grid, leaf, rank=3)
    assert op.ranks == src.ranks
    torch.testing.assert_close(op.to_dense().detach(), A, rtol=0, atol=1e-12 * float(A.abs().max()))
    # tol finds the rank by itself, never above the true one
    op_tol = from_dense(A, grid, leaf, tol=1e-10)
    assert max(op_tol.ranks) <= 3 and rel_err(op_tol, A.numpy()) < 1e-10


def test_circular_convolution_rank_w():
    n, w = 128, 5
    rng = np.random.default_rng(0)
    kern = np.zeros(n)
    kern[np.r_[0:3, n - 2:n]] = rng.standard_normal(w)  # offsets -2..2
    A = np.stack([np.roll(kern, i) for i in range(n)])  # A[i, j] = k[(i - j) mod n]
    op = from_dense(A, (n,), 16, rank=w)
    assert rel_err(op, A) < 1e-13


def test_truncated_fourier_multiplier_rank_2k_plus_1():
    n, k = 128, 3
    rng = np.random.default_rng(0)
    h = np.zeros(n // 2 + 1, complex)
    h[: k + 1] = rng.standard_normal(k + 1) + 1j * rng.standard_normal(k + 1)
    h[0] = h[0].real
    A = np.fft.irfft(h[:, None] * np.fft.rfft(np.eye(n), axis=0), n=n, axis=0)
    assert np.linalg.matrix_rank(A) == 2 * k + 1
    op = from_dense(A, (n,), 16, rank=2 * k + 1)
    assert rel_err(op, A) < 1e-13


def test_tol_on_inverse_2d_laplacian_reports_ranks():
    n = 32
    t = np.diag(2.0 * np.ones(n)) - np.diag(np.ones(n - 1), 1) - np.diag(np.ones(n - 1), -1)
    lap = np.kron(t, np.eye(n)) + np.kron(np.eye(n), t)
    A = np.linalg.inv(lap)
    op = from_dense(A, (n, n), 16, tol=1e-6)
    info = op.compression_info
    assert len(info["ranks"]) == op.n_levels == 6 and list(op.ranks) == info["ranks"]
    assert info["error_bound"] <= 1e-6
    err = rel_err(op, A)
    assert err <= 1e-6
    # genuinely compressed: ranks below node sizes, far fewer numbers than the dense matrix
    assert all(r < op.tree.node_size(lev) for lev, r in enumerate(op.ranks, start=1))
    assert count_parameters(op) < 0.5 * A.size
    print("2-D Laplacian inverse 32x32, tol 1e-6: ranks", info["ranks"], "error", err,
          "parameters", count_parameters(op), "of", A.size)


def test_from_dense_float32_keeps_dtype():
    A = inv_second_difference(64).astype(np.float32)
    op = from_dense(A, 64, 16, rank=2)
    assert op.D.dtype == torch.float32 and rel_err(op, A) < 1e-6


@pytest.mark.parametrize("n", [256, 1024, 4096])
def test_from_samples_poisson_few_pairs(n):
    m, r = 16, 2
    rng = np.random.default_rng(n)
    budget = m + 3 * r + 10
    x = rng.standard_normal((budget, n))
    y = poisson_solve(x)
    op = from_samples(x, y, m, r)
    # error on fresh probes, relative to the true A (no dense N x N needed for large n)
    xt = rng.standard_normal((8, n))
    yh = op(torch.from_numpy(xt)[:, None]).detach().numpy()[:, 0]
    ye = poisson_solve(xt)
    assert np.linalg.norm(yh - ye) / np.linalg.norm(ye) < 1e-8
    if n <= 1024:
        assert rel_err(op, inv_second_difference(n)) < 1e-8
    # the minimum number of pairs is m + r, whatever n
    op_min = from_samples(x[: m + r], y[: m + r], m, r)
    yh = op_min(torch.from_numpy(xt)[:, None]).detach().numpy()[:, 0]
    assert np.linalg.norm(yh - ye) / np.linalg.norm(ye) < 1e-8


def test_from_samples_nonsymmetric_with_transpose_pairs_2d():
    torch.manual_seed(3)
    src = HSSOperator(grid_shape=(16, 16), leaf_size=16, rank=3, dtype=torch.float64)
    A = src.to_dense().detach()[0, 0].numpy()
    rng = np.random.default_rng(0)
    s = 16 + 3 + 4
    x, xt = rng.standard_normal((s, 16, 16)), rng.standard_normal((s, 16, 16))
    y = (x.reshape(s, -1) @ A.T).reshape(s, 16, 16)
    yt = (xt.reshape(s, -1) @ A).reshape(s, 16, 16)
    op = from_samples(x, y, 16, 3, XT=xt, YT=yt)
    assert rel_err(op, A) < 1e-10
    # without transpose pairs a non-symmetric A is (by contract) treated as self-adjoint: wrong
    assert rel_err(from_samples(x, y, 16, 3), A) > 1e-3


def test_from_samples_accepts_channel_axis_and_tensors():
    n = 128
    x = torch.randn(24, 1, n, dtype=torch.float64)
    y = torch.from_numpy(poisson_solve(x[:, 0].numpy()))[:, None]
    op = from_samples(x, y, 16, 2, grid_shape=(n,))
    assert rel_err(op, inv_second_difference(n)) < 1e-8


@pytest.mark.parametrize(
    "A, kwargs, match",
    [(np.full((64, 64), np.nan), dict(rank=2), "NaN or Inf"),
     (np.eye(32), dict(rank=2), "N = prod"),
     (np.eye(64), dict(rank=32), "exceeds the leaf size"),
     (np.eye(64), dict(), "rank=..., tol=..."),
     (np.eye(64), dict(tol=-1.0), "positive"),
     (np.eye(64) + 0j, dict(rank=2), "complex")],
)
def test_from_dense_bad_input(A, kwargs, match):
    with pytest.raises(ValueError, match=match):
        from_dense(A, (64,), 16, **kwargs)


def test_from_dense_bad_leaf():
    with pytest.raises(ValueError, match="power of two"):
        from_dense(np.eye(48), (48,), 16, rank=2)


def test_from_samples_bad_input():
    x = np.random.default_rng(0).standard_normal((20, 64))
    with pytest.raises(ValueError, match="too few"):
        from_samples(x[:17], x[:17], 16, 2)
    with pytest.raises(ValueError, match="same number of pairs"):
        from_samples(x, x[:19], 16, 2)
    with pytest.raises(ValueError, match="expected"):
        from_samples(x, x.reshape(20, 8, 8), 16, 2)
    with pytest.raises(ValueError, match="both XT and YT"):
        from_samples(x, x, 16, 2, XT=x)
    bad = x.copy()
    bad[0, 0] = np.inf
    with pytest.raises(ValueError, match="NaN or Inf"):
        from_samples(x, bad, 16, 2)
