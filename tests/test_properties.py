"""Property-based tests (hypothesis) of the HSS layer and the variable-coefficient solvers: any
input either gives a result with the defining property or a ValueError, never a crash, a hang
or a silently wrong answer."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from neuralhss.hss import HSSOperator
from neuralhss.solvers import darcy, helmholtz

BREAK = (None, None, None, "channels", "rank", "leaf", "misfit", "share", "untie", "levels")


@settings(max_examples=40, deadline=None, derandomize=True)
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


@settings(max_examples=25, deadline=None, derandomize=True)
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


@settings(max_examples=20, deadline=None, derandomize=True)
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


@settings(max_examples=15, deadline=None, derandomize=True)
@given(n=st.integers(12, 24), k0=st.floats(0.5, 12.0), seed=st.integers(0, 2**16))
def test_helmholtz_solution_satisfies_its_discrete_equation(n, k0, seed):
    rng = np.random.default_rng(seed)
    f = rng.standard_normal((n, n + 3))
    eps = 1.0 + rng.random((n, n + 3))
    u = helmholtz.solve(eps, f, k0, pml=3)
    A = helmholtz.operator(eps, k0, pml=3)
    assert np.linalg.norm(A @ u.ravel() - f.ravel()) <= 1e-8 * np.linalg.norm(f)


# --- the solvers' input validation: any array and parameter either solves or is a ValueError --

def _field(data, shape, dtype_kind: str):
    """A random field of the given shape: finite, or with a NaN/Inf, or of an odd dtype."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    a = rng.random(shape) + 0.5
    if dtype_kind == "nan" and a.size:
        a.flat[0] = np.nan
    elif dtype_kind == "inf" and a.size:
        a.flat[-1] = -np.inf
    elif dtype_kind == "int":
        a = (a * 3).astype(np.int64)
    elif dtype_kind == "bool":
        a = a > 0.7
    elif dtype_kind == "complex":
        a = a + 1j * a
    elif dtype_kind == "float32":
        a = a.astype(np.float32)
    elif dtype_kind == "object":
        a = a.astype(object)
    return np.asarray(a)


SHAPES = st.one_of(st.lists(st.integers(0, 9), min_size=0, max_size=4).map(tuple),
                   st.tuples(st.integers(6, 10), st.integers(6, 10)))  # often a valid 2-D grid
KINDS = st.sampled_from(["ok", "ok", "ok", "nan", "inf", "int", "bool", "complex", "float32",
                         "object"])
NUMBERS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-3, 10**12),
                    st.just(True), st.just("1"))
#: Where the number sets a run's length (a final time, a viscosity that shortens the stable
#: step): small, invalid, or far beyond any run that could end (refused), never merely long.
RUN_LENGTHS = st.one_of(st.floats(-2.0, 20.0), st.floats(0.01, 2.0),
                        st.sampled_from([math.nan, math.inf, -math.inf]),
                        st.floats(1e13, 1e300), st.just(True), st.just("1"))


def _solve(name: str, data) -> object:
    from neuralhss.solvers import gray_scott, maxwell, navier_stokes, poisson

    shape = data.draw(SHAPES, label="shape")
    x = _field(data, shape, data.draw(KINDS, label="kind"))
    timed = name in ("maxwell", "navier_stokes", "gray_scott")
    num = data.draw(RUN_LENGTHS if timed else NUMBERS, label="number")
    if name == "navier_stokes" and x.dtype.kind == "f" and np.isfinite(x).all() and x.size:
        x = x - x.mean()  # a periodic vorticity has zero mean (else a ValueError, rightly)
    if name == "poisson":
        return poisson.solve(x, lengths=num if data.draw(st.booleans()) else 1.0)
    if name == "darcy":
        return darcy.solve(x, 1.0, lengths=num if data.draw(st.booleans()) else 1.0)
    if name == "helmholtz":
        return helmholtz.solve(x, np.ones(x.shape), num, pml=2)
    if name == "maxwell":
        return maxwell.solve(x, num, ez0=np.zeros(shape) if len(shape) == 2 else None)
    if name == "navier_stokes":
        return navier_stokes.solve(x, num, 0.05)
    return gray_scott.solve(x, x, 1e-5, 1e-5, 0.04, 0.06, num)


@pytest.mark.parametrize("name", ["poisson", "darcy", "helmholtz", "maxwell", "navier_stokes",
                                  "gray_scott"])
@settings(max_examples=30, deadline=None, derandomize=True)
@given(data=st.data())
def test_solver_inputs_give_a_finite_result_or_a_value_error(name, data):
    """Random shapes (0 to 4 axes, empty ones too), NaN/Inf, int/bool/complex/object dtypes and
    odd numbers (NaN, ±inf, huge, negative, bool, a string) where a physical parameter goes."""
    try:
        out = _solve(name, data)
    except ValueError as err:
        assert str(err) and "\n" not in str(err).strip()
        return
    except FloatingPointError as err:  # a time-dependent run that blew up says so
        assert "blew up" in str(err) or "unstable" in str(err), err
        return
    for arr in out if isinstance(out, tuple) else (out,):
        arr = np.asarray(arr)
        assert np.isfinite(arr).all()
