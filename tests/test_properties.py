"""Property-based tests (hypothesis) of the HSS layer and the variable-coefficient solvers: any
input either gives a result with the defining property or a ValueError, never a crash, a hang
or a silently wrong answer."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from neuralhss.hss import HSSOperator
from neuralhss.solvers import darcy, helmholtz

BREAK = (None, None, None, "channels", "rank", "leaf", "misfit", "share", "untie", "levels")


@settings(max_examples=40, deadline=None)
@given(dim=st.integers(1, 3), levels=st.integers(0, 3), leaf_side=st.integers(1, 3),
       rank=st.integers(1, 4), per_level=st.booleans(), share=st.sampled_from(["none", "level"]),
       untie_top=st.integers(0, 3), channels=st.tuples(st.integers(1, 2), st.integers(1, 2)),
       broken=st.sampled_from(BREAK), seed=st.integers(0, 99))
def test_any_hss_configuration_applies_as_its_dense_matrix_or_is_refused(
        dim, levels, leaf_side, rank, per_level, share, untie_top, channels, broken, seed):
    # a valid configuration, then (for most examples) one thing in it made invalid
    ci, co = channels
    side = leaf_side * 2 ** levels
    rank = min(rank, leaf_side ** dim)
    if broken == "channels":
        ci = 0
    elif broken == "rank":
        rank = leaf_side ** dim + 1 if seed % 2 else -1
        per_level = False  # (a one-leaf tree takes an empty list of ranks)
    elif broken == "leaf":
        leaf_side = 0
    elif broken == "misfit":
        side *= 3  # never the leaf side times a power of two
    elif broken == "share":
        share = "tied"
    elif broken == "untie":
        untie_top = -1
    grid = (side,) * dim
    n_levels = dim * levels  # k-d bisection halves one axis per level
    ranks = [rank] * n_levels if per_level else rank
    if broken == "levels":
        ranks = [rank] * (n_levels + 1)  # one rank more than the tree has levels
    try:
        op = HSSOperator(ci, co, grid_shape=grid, leaf_size=leaf_side ** dim, rank=ranks,
                         share=share, untie_top=untie_top, dtype=torch.float64)
    except ValueError as err:
        assert str(err)  # refused with a message
        return
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(2, ci, *grid, generator=gen, dtype=torch.float64)
    y = op(x)
    assert y.shape == (2, co, *grid) and torch.isfinite(y).all()
    # the defining property: the fast apply is the (dense) matrix it represents
    dense = op.to_dense()  # (C_out, C_in, N, N)
    n = int(np.prod(grid))
    ref = torch.einsum("ocij,bcj->boi", dense, x.reshape(2, ci, n)).reshape(y.shape)
    torch.testing.assert_close(y, ref, rtol=1e-10, atol=1e-10)
    assert broken is None, f"{broken} was accepted"


@settings(max_examples=25, deadline=None)
@given(shape=st.lists(st.integers(1, 9), min_size=1, max_size=3),
       lengths=st.lists(st.floats(0.1, 10.0), min_size=3, max_size=3),
       log_contrast=st.floats(0.0, 4.0), method=st.sampled_from(["auto", "direct", "amg",
                                                                  "spectral"]),
       seed=st.integers(0, 2**16))
def test_darcy_solution_satisfies_its_discrete_equation(shape, lengths, log_contrast, method,
                                                         seed):
    rng = np.random.default_rng(seed)
    a = 10.0 ** (log_contrast * rng.random(shape))  # positive, contrast up to 1e4
    f = rng.standard_normal(shape)
    lens = lengths[:len(shape)]
    u, info = darcy.solve(a, f, lengths=lens, method=method, return_info=True)
    assert u.shape == f.shape and np.isfinite(u).all()
    residual = np.linalg.norm(darcy.operator(a, lens) @ u.ravel() - f.ravel())
    # CG stops at rtol 1e-10 (or its round-off floor, which info reports)
    assert residual <= max(1e-10, info.residual) * 1.01 * np.linalg.norm(f) + 1e-300


@settings(max_examples=20, deadline=None)
@given(a_low=st.floats(-2.0, 2.0), nan=st.booleans(), shape_mismatch=st.booleans())
def test_darcy_bad_coefficient_is_one_clear_error(a_low, nan, shape_mismatch):
    a = np.full((6, 5), 1.0)
    a[2, 3] = np.nan if nan else a_low
    f = np.ones((6, 4) if shape_mismatch else (6, 5))
    if a_low > 0 and not nan and not shape_mismatch:
        assert np.isfinite(darcy.solve(a, f)).all()
        return
    with pytest.raises(ValueError) as err:
        darcy.solve(a, f)
    assert "\n" not in str(err.value)


@settings(max_examples=15, deadline=None)
@given(n=st.integers(12, 24), k0=st.floats(0.5, 12.0), seed=st.integers(0, 2**16))
def test_helmholtz_solution_satisfies_its_discrete_equation(n, k0, seed):
    rng = np.random.default_rng(seed)
    f = rng.standard_normal((n, n + 3))
    eps = 1.0 + rng.random((n, n + 3))
    u = helmholtz.solve(eps, f, k0, pml=3)
    A = helmholtz.operator(eps, k0, pml=3)
    assert np.linalg.norm(A @ u.ravel() - f.ravel()) <= 1e-8 * np.linalg.norm(f)
