"""The strong-admissibility layer, Neural-HSS v2 and the box-edge metric."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from neuralhss.hss.h2 import H2Operator, evaluation_matrix, legendre_box_basis, moment_matrix
from neuralhss.models import build, count_parameters
from neuralhss.models.neural_h2 import NeuralH2
from neuralhss.train.edges import box_edge_ratios


def dense(op: H2Operator) -> torch.Tensor:
    n = int(np.prod(op.grid_shape))
    eye = torch.eye(n, dtype=op.near.dtype).reshape(n, 1, *op.grid_shape)
    with torch.no_grad():
        return op(eye).reshape(n, n).T  # column j = A e_j


def test_legendre_basis_orthonormal_and_parity():
    q = legendre_box_basis(8, 3)
    assert np.allclose(q.T @ q, np.eye(4), atol=1e-12)
    for a in range(4):
        assert np.allclose(q[::-1, a], (-1) ** a * q[:, a], atol=1e-12)


@pytest.mark.parametrize("shape", [(32,), (16, 32), (16, 16, 16)])
def test_linear_and_shapes(shape):
    torch.manual_seed(0)
    op = H2Operator(shape, 3, leaf_side=2, degree=1, boundary="dirichlet", dtype=torch.float64)
    x, z = torch.randn(2, 3, *shape, dtype=torch.float64), torch.randn(2, 3, *shape, dtype=torch.float64)
    y = op(x)
    assert y.shape == x.shape
    assert torch.allclose(op(2 * x - z), 2 * y - op(z), atol=1e-10)
    with pytest.warns(DeprecationWarning, match="count_parameters"):
        assert op.parameter_count() == sum(p.numel() for p in op.parameters())


def test_periodic_operator_commutes_with_box_shifts():
    torch.manual_seed(1)
    op = H2Operator((32, 32), 2, leaf_side=4, degree=2, boundary="periodic", share_levels=False,
                    dtype=torch.float64)
    coarsest = op.sides[-1]
    x = torch.randn(1, 2, 32, 32, dtype=torch.float64)
    shifted = op(torch.roll(x, shifts=(coarsest, -2 * coarsest), dims=(2, 3)))
    assert torch.allclose(shifted, torch.roll(op(x), shifts=(coarsest, -2 * coarsest), dims=(2, 3)),
                          atol=1e-10)


def test_strong_admissibility_block_ranks():
    # 1-D, leaves of 4 points: separated leaves interact through the far field only (rank <=
    # (degree + 1) per contributing level); touching leaves through the dense near field.
    torch.manual_seed(2)
    op = H2Operator((64,), 1, leaf_side=4, degree=1, boundary="zeros", share_levels=False,
                    dtype=torch.float64)
    A = dense(op).numpy()
    sv_near = np.linalg.svd(A[16:20, 20:24], compute_uv=False)
    assert sv_near[-1] > 1e-8 * sv_near[0]  # full rank 4
    far = A[0:16, 40:64]  # boxes 2..  apart on every level: at most 2 levels x rank 2
    sv = np.linalg.svd(far, compute_uv=False)
    assert (sv > 1e-10 * sv[0]).sum() <= 2 * op.n_levels


def test_near_field_is_a_convolution():
    torch.manual_seed(3)
    op = H2Operator((32,), 1, leaf_side=4, degree=0, boundary="zeros", dtype=torch.float64)
    with torch.no_grad():
        op.coupling.zero_()
    A = dense(op).numpy()
    k = op.near.detach().numpy().ravel()[::-1]  # convolution, not correlation
    R = op.near_radius
    for i in range(R, 32 - R):
        assert np.allclose(A[i, i - R:i + R + 1], k, atol=1e-12)


def test_dirichlet_continuation_is_odd_about_the_boundary_node():
    # Interior nodes 0..15; the boundary node (value 0) is at -1 and the odd image about it
    # puts -x_0 at -2.
    op = H2Operator((16,), 1, leaf_side=4, degree=0, near_radius=2, boundary="dirichlet",
                    dtype=torch.float64)
    with torch.no_grad():
        op.coupling.zero_()
        op.near.copy_(torch.tensor([[[0.0, 0.0, 0.0, 0.0, 1.0]]]))  # a convolution: y_i = x_{i-2}
    x = torch.arange(1.0, 17.0, dtype=torch.float64).view(1, 1, 16)
    y = op(x)[0, 0]
    assert torch.allclose(y[:3], torch.tensor([-1.0, 0.0, 1.0], dtype=torch.float64), atol=1e-12)


def test_fit_linear_recovers_an_operator_of_its_class():
    torch.manual_seed(5)
    shape = (32, 32)
    target = H2Operator(shape, 1, leaf_side=4, degree=1, boundary="dirichlet", share_levels=False,
                        dtype=torch.float64)
    x = torch.randn(16, 1, *shape, dtype=torch.float64)  # coarse levels: few boxes per sample
    with torch.no_grad():
        y = target(x)
    fitted = H2Operator(shape, 1, leaf_side=4, degree=1, boundary="dirichlet", share_levels=False,
                        init_scale=0.0, dtype=torch.float64)
    misfit = fitted.fit_linear(x, y, max_iter=1500).misfit
    assert misfit < 1e-6
    xt = torch.randn(2, 1, *shape, dtype=torch.float64)
    with torch.no_grad():
        rel = (fitted(xt) - target(xt)).norm() / target(xt).norm()
    assert rel < 2e-3  # L-BFGS's convergence, not the class, limits this


def test_bad_arguments_give_clear_errors():
    with pytest.raises(ValueError, match="boundary"):
        H2Operator((16, 16), 1, boundary="robin")
    with pytest.raises(ValueError, match="leaves of side"):
        H2Operator((18, 16), 1, leaf_side=4)
    with pytest.raises(ValueError, match="leaves wider"):
        H2Operator((16, 16), 1, leaf_side=2, degree=2)
    op = H2Operator((16, 16), 2)
    with pytest.raises(ValueError, match="expected"):
        op(torch.randn(1, 1, 16, 16))
    x = torch.randn(2, 2, 16, 16)
    with pytest.raises(ValueError, match="must both be"):
        op.fit_linear(x, x[:, :1])
    with pytest.raises(ValueError, match="NaN"):
        op.fit_linear(x, x.clone().fill_(float("nan")))
    with pytest.raises(ValueError, match="NaN"):
        box_edge_ratios(np.full((2, 16, 16), np.nan), leaf_side=4)


def test_neural_h2_starts_as_its_linear_path_and_is_small():
    torch.manual_seed(6)
    model = build("neural_h2", in_channels=1, out_channels=1, grid_shape=[32, 32])
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), model.linear_part(x))
    fno = build("fno", in_channels=1, out_channels=1, n_modes=[16, 16], hidden_channels=32, n_layers=4)
    assert count_parameters(model) < count_parameters(fno)
    multi = NeuralH2(in_channels=2, out_channels=3, grid_shape=(16, 16), hidden_channels=4, n_layers=1)
    assert multi(torch.randn(1, 2, 16, 16)).shape == (1, 3, 16, 16)
    with pytest.raises(ValueError, match="one input and output channel"):
        multi.fit_linear_path(torch.randn(1, 2, 16, 16), torch.randn(1, 3, 16, 16))


def test_multiplicative_blocks_start_as_plain_blocks_and_learn_the_product():
    torch.manual_seed(7)
    kw = {"grid_shape": (16, 16), "hidden_channels": 4, "n_layers": 2, "linear_path": False}
    plain = NeuralH2(**kw, multiplicative=False)
    mult = NeuralH2(**kw)
    # Same draws for the shared parameters: the product term starts at exactly zero.
    mult.load_state_dict(plain.state_dict(), strict=False)
    x = torch.randn(3, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(mult(x), plain(x), rtol=1e-6, atol=1e-7)
    mult(x).square().sum().backward()
    gate = mult.blocks[0]["local_gate"].weight
    assert gate.grad is not None and float(gate.grad.abs().max()) > 0  # not stuck at zero
    extra = sum(p.numel() for p in mult.parameters()) - sum(p.numel() for p in plain.parameters())
    assert extra == 2 * 2 * 4 * 4  # two pointwise maps per block
    with pytest.raises(ValueError, match="multiplicative='no' must be True or False"):
        NeuralH2(**kw, multiplicative="no")


def test_born_blocks_start_as_plain_blocks_and_learn_the_pre_product():
    """``born=True``: the operator acts on ``v + (R v) * (S v)``; ``S`` starts at zero."""
    torch.manual_seed(3)
    kw = {"grid_shape": (16, 16), "hidden_channels": 4, "n_layers": 2, "linear_path": False}
    plain, born = NeuralH2(**kw), NeuralH2(**kw, born=True)
    born.load_state_dict(plain.state_dict(), strict=False)
    x = torch.randn(3, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(born(x), plain(x), rtol=1e-6, atol=1e-7)
    born(x).square().sum().backward()
    assert float(born.blocks[0]["born_b"].weight.grad.abs().max()) > 0
    with torch.no_grad():
        born.blocks[0]["born_b"].weight.normal_()
        assert not torch.allclose(born(x), plain(x))
    with pytest.raises(ValueError, match="born=1 must be True or False"):
        NeuralH2(**kw, born=1)


def test_hidden_blocks_share_or_split_their_level_kernels():
    """``hidden_share_levels=False`` gives each far-field level of a hidden block its own
    coupling kernel (no gains); the default shares one; the linear path has its own per level."""
    kw = {"grid_shape": (32, 32), "hidden_channels": 4, "n_layers": 1, "leaf_side": 4}
    shared, split = NeuralH2(**kw), NeuralH2(**kw, hidden_share_levels=False)
    a, b = shared.blocks[0]["h2"], split.blocks[0]["h2"]
    levels = len(a.sides)
    assert levels == 2 and a.share_levels and not b.share_levels
    assert a.coupling.shape[0] == 1 and b.coupling.shape[0] == levels and b.gain is None
    assert not shared.linear.share_levels
    x = torch.randn(2, 1, 32, 32)
    assert split(x).shape == (2, 1, 32, 32)
    with pytest.raises(ValueError, match="hidden_share_levels='no' must be True or False"):
        NeuralH2(**kw, hidden_share_levels="no")


def test_specs_written_before_a_default_changed_rebuild_the_model_they_saved():
    from neuralhss.models import from_spec

    cfg = {"in_channels": 1, "out_channels": 1, "grid_shape": [16, 16], "hidden_channels": 4,
           "n_layers": 1}
    new = build("neural_h2", **cfg)
    assert new.spec["version"] >= 2 and new.multiplicative
    # A spec of version 1 (no "version" key) was built when the blocks were plain by default.
    old = from_spec({"name": "neural_h2", "config": cfg})
    assert not old.multiplicative
    old.load_state_dict(NeuralH2(**cfg, multiplicative=False).state_dict())  # same parameters
    assert from_spec({"name": "neural_h2", "config": {**cfg, "multiplicative": True}}).multiplicative
    assert from_spec(new.spec).multiplicative


def test_box_edge_ratios_see_steps_and_not_smooth_errors():
    rng = np.random.default_rng(0)
    # Smooth error: random Fourier modes.
    xx, yy = np.meshgrid(np.arange(64) / 64, np.arange(64) / 64, indexing="ij")
    smooth = np.stack([sum(rng.normal() * np.sin(2 * np.pi * (k * xx + l * yy) + rng.uniform(0, 6))
                           for k in range(4) for l in range(4)) for _ in range(5)])
    ratios = box_edge_ratios(smooth, leaf_side=4)
    assert set(ratios) == {4, 8, 16, 32}
    assert all(0.7 < r < 1.4 for r in ratios.values())
    stepped = smooth + 5.0 * (xx >= 0.5)
    ratios = box_edge_ratios(stepped, leaf_side=4)
    assert ratios[32] > 5 and ratios[4] < 1.4
    with pytest.raises(ValueError, match="dividing"):
        box_edge_ratios(smooth, leaf_side=5)


def test_blended_far_field_has_no_box_edges():
    torch.manual_seed(7)
    xx, yy = torch.meshgrid(torch.linspace(0, 1, 64, dtype=torch.float64),
                            torch.linspace(0, 1, 64, dtype=torch.float64), indexing="ij")
    x = torch.stack([torch.sin(3 * xx + 2 * yy + p) for p in torch.rand(4, dtype=torch.float64) * 6])[:, None]
    ratios = {}
    for blend in (False, True):
        torch.manual_seed(8)
        op = H2Operator((64, 64), 1, leaf_side=4, degree=2, boundary="neumann", blend=blend,
                        dtype=torch.float64)
        with torch.no_grad():
            op.near.zero_()
            ratios[blend] = box_edge_ratios(op(x)[:, 0], leaf_side=4)
    assert max(ratios[False].values()) > 3
    assert max(ratios[True].values()) < 1.5
    with pytest.raises(ValueError, match="even leaf_side"):
        H2Operator((30, 30), 1, leaf_side=3)


@pytest.mark.parametrize("periodic", [False, True])
def test_blended_evaluation_is_a_partition_of_unity(periodic):
    # degree 0: every box's expansion is the constant 1/sqrt(side); blended windows sum to one
    side, n = 4, 32
    e = evaluation_matrix(n, side, 0, blend=True, periodic=periodic)
    np.testing.assert_allclose(e[:, 0, :].sum(1), np.full(n, 1 / np.sqrt(side)), atol=1e-12)
    plain = evaluation_matrix(n, side, 2, blend=False, periodic=periodic)
    assert (np.count_nonzero(plain[:, 0, :], axis=1) == 1).all()  # one box per point


def test_moment_matrix_continues_boxes_by_their_images():
    side, n, deg = 4, 16, 2
    inner = moment_matrix(n, side, deg, "zeros")
    x = np.random.default_rng(0).standard_normal(n)
    m_in = inner @ x  # (deg + 1, nb + 6); padding boxes are zero
    assert np.all(m_in[:, :3] == 0) and np.all(m_in[:, -3:] == 0)
    parity = (-1.0) ** np.arange(deg + 1)
    for bc, lam in (("neumann", 1.0), ("dirichlet", -1.0)):
        m = moment_matrix(n, side, deg, bc) @ x
        np.testing.assert_allclose(m[:, 3:-3], m_in[:, 3:-3])
        # the box just left of the domain is the image of the first box
        np.testing.assert_allclose(m[:, 2], lam * parity * m[:, 3], atol=1e-12)
        np.testing.assert_allclose(m[:, -3], lam * parity * m[:, -4], atol=1e-12)
    m = moment_matrix(n, side, deg, "periodic") @ x
    np.testing.assert_allclose(m[:, :3], m[:, -6:-3], atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(boxes=st.lists(st.integers(1, 9), min_size=1, max_size=3),
       leaf=st.sampled_from([2, 4, 2, 4, 1, 3, 0, -1]), misfit=st.booleans(),
       degree=st.integers(-1, 3),
       boundary=st.sampled_from(["dirichlet", "neumann", "periodic", "zeros", "robin"]),
       blend=st.booleans(), near=st.one_of(st.none(), st.none(), st.integers(-2, 20)))
def test_h2_operator_builds_and_applies_or_refuses_clearly(boxes, leaf, misfit, degree, boundary,
                                                          blend, near):
    # any configuration either works (right shape, finite) or is a ValueError, nothing else;
    # grids are mostly whole numbers of leaves, so that both outcomes are common
    shape = [b * max(leaf, 1) + (1 if misfit and i == 0 else 0) for i, b in enumerate(boxes)]
    try:
        op = H2Operator(shape, 2, leaf_side=leaf, degree=degree, boundary=boundary, blend=blend,
                        near_radius=near)
    except ValueError:
        return
    y = op(torch.randn(2, 2, *shape))
    assert y.shape == (2, 2, *shape) and torch.isfinite(y).all()
    with pytest.raises(ValueError, match="shape"):
        op(torch.randn(2, 3, *shape))


def test_affine_fit_needs_two_samples():
    model = NeuralH2(grid_shape=(16, 16), n_layers=0)
    x = torch.randn(1, 1, 16, 16)
    with pytest.raises(ValueError, match="two samples"):
        model.fit_linear_path(x, x, center=True)


@pytest.mark.parametrize("o, a, grid, kernel", [(1, 1, (11,), (3,)), (1, 1, (9, 7), (5, 3)),
                                                (2, 3, (6, 7), (3, 3)), (2, 2, (4, 5, 4), (3, 2, 3))])
def test_fft_convolution_matches_direct_and_has_exact_gradients(o, a, grid, kernel):
    # the hand-written backward of the FFT convolution against finite differences, and the
    # forward against a direct sum (valid convolution, depthwise over C, mixing a -> o)
    from neuralhss.hss.h2 import _convolve

    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 2, a, *grid, dtype=torch.float64, generator=g, requires_grad=True)
    w = torch.randn(2, o, a, *kernel, dtype=torch.float64, generator=g, requires_grad=True)
    d = len(grid)
    conv = {1: torch.nn.functional.conv1d, 2: torch.nn.functional.conv2d,
            3: torch.nn.functional.conv3d}[d]
    flipped = w.detach().flip(tuple(range(-d, 0)))
    direct = torch.stack([conv(x.detach()[:, c], flipped[c]) for c in range(2)], 1)
    torch.testing.assert_close(_convolve(x, w), direct)
    assert torch.autograd.gradcheck(_convolve, (x, w))


def test_linear_path_can_have_its_own_leaves():
    m = NeuralH2(grid_shape=(16, 16, 16), n_layers=1, leaf_side=2, linear_degree=2,
                 linear_leaf_side=4)
    assert (m.linear.leaf_side, m.linear.degree, m.linear.near_radius) == (4, 2, 7)
    assert (m.blocks[0]["h2"].leaf_side, m.blocks[0]["h2"].near_radius) == (2, 3)
    assert m(torch.randn(1, 1, 16, 16, 16)).shape == (1, 1, 16, 16, 16)
    # without it the linear path keeps the blocks' leaves
    assert NeuralH2(grid_shape=(16, 16), n_layers=1, leaf_side=4).linear.leaf_side == 4


@pytest.mark.parametrize("grid, degree", [((32,), 2), ((16, 16), 3), ((8, 8, 8), 1)])
def test_total_degree_expansion_is_the_tensor_one_restricted(grid, degree):
    # a total-degree operator is the tensor-degree operator whose couplings vanish wherever a
    # row or a column is a product of total degree above `degree`
    d = len(grid)
    kw = {"leaf_side": 2, "degree": degree, "boundary": "dirichlet", "share_levels": False,
          "dtype": torch.float64}
    if degree >= 2:
        kw["leaf_side"] = 4
    tot = H2Operator(grid, 2, expansion="total", **kw)
    ten = H2Operator(grid, 2, **kw)
    degs = torch.cartesian_prod(*[torch.arange(degree + 1)] * d).reshape(-1, d).sum(1)
    keep = torch.nonzero(degs <= degree)[:, 0]
    assert tot.rank == len(keep) == int(np.prod(np.arange(degree + 1, degree + d + 1))
                                        // np.prod(np.arange(1, d + 1)))
    with torch.no_grad():
        ten.near.copy_(tot.near)
        ten.coupling.zero_()
        ten.coupling[:, :, keep[:, None], keep[None, :]] = tot.coupling
    x = torch.randn(3, 2, *grid, dtype=torch.float64)
    assert torch.allclose(tot(x), ten(x), atol=1e-12)
    assert count_parameters(tot) < count_parameters(ten) or d == 1
    with pytest.raises(ValueError, match="expansion"):
        H2Operator(grid, 1, expansion="sparse")
    m = NeuralH2(grid_shape=grid, n_layers=1, leaf_side=kw["leaf_side"], linear_degree=degree,
                 expansion="total")
    assert m.linear.expansion == m.blocks[0]["h2"].expansion == "total"


def test_full_radius_near_field_is_the_method_of_images_for_dirichlet_poisson():
    # A near field as wide as the grid leaves no far field; on the odd-continued input one
    # translation-invariant kernel then carries the discrete Dirichlet Green's function, so a
    # convex fit to a few solver pairs reproduces the solver on new (white-noise) sources.
    from neuralhss.solvers import poisson

    torch.manual_seed(0)
    n = 16
    x = torch.randn(20, 1, n, n, dtype=torch.float64)
    y = torch.as_tensor(poisson.solve(x.numpy()[:, 0], dim=2))[:, None]
    op = H2Operator((n, n), 1, leaf_side=4, degree=1, near_radius=n - 1, boundary="dirichlet",
                    share_levels=False, init_scale=0.0, dtype=torch.float64)
    assert op.n_levels == 0 and op.coupling.numel() == 0
    op.fit_linear(x[:12], y[:12], max_iter=1000)
    with torch.no_grad():
        err = (op(x[12:]) - y[12:]).flatten(1).norm(dim=1) / y[12:].flatten(1).norm(dim=1)
    assert float(err.max()) < 1e-4


def test_linear_path_near_radius_full_and_its_errors():
    model = build("neural_h2", in_channels=1, out_channels=1, grid_shape=[16, 16], n_layers=1,
                  linear_near_radius="full")
    assert model.linear.near_radius == 15 and model.linear.n_levels == 0
    assert model(torch.randn(2, 1, 16, 16)).shape == (2, 1, 16, 16)
    with pytest.raises(ValueError, match="square"):
        build("neural_h2", in_channels=1, out_channels=1, grid_shape=[16, 32], n_layers=1,
              linear_near_radius="full")
    with pytest.raises(ValueError, match="linear_near_radius"):
        build("neural_h2", in_channels=1, out_channels=1, grid_shape=[16, 16], n_layers=1,
              linear_near_radius="wide")


@pytest.mark.parametrize("periodic", [False, True])
@pytest.mark.parametrize("degree", [1, 2, 3, 4])
@pytest.mark.parametrize("d", [1, 2, 3])
def test_subdivision_prolongation_is_the_restrictions_transpose_and_keeps_constants(degree, d,
                                                                                    periodic):
    from neuralhss.hss._subdivision import prolong, restrict, subdivision_mask

    torch.manual_seed(0)
    mask = subdivision_mask(degree)
    a = torch.randn(2, 3, *[8] * d, dtype=torch.float64)
    b = torch.randn(2, 3, *[4] * d, dtype=torch.float64)
    assert torch.allclose((restrict(a, mask, d, periodic) * b).sum(),
                          (a * prolong(b, mask, d, periodic)).sum(), atol=1e-12)
    # interpolation reproduces a constant (away from the ends, where zeros enter past them)
    ones = prolong(torch.ones(1, 1, *[8] * d, dtype=torch.float64), mask, d, periodic)
    inner = ones if periodic else ones[(0, 0, *[slice(3, -3)] * d)]
    assert torch.allclose(inner, torch.ones_like(inner), atol=1e-12)
    # a periodic restriction commutes with shifts by two fine points
    dims = tuple(range(2, 2 + d))
    if periodic:
        assert torch.allclose(restrict(a.roll(2, dims[-1]), mask, d, True),
                              restrict(a, mask, d, True).roll(1, dims[-1]), atol=1e-12)
    with pytest.raises(ValueError, match="even sides"):
        restrict(torch.ones(1, 1, *[7] * d), mask, d)


@pytest.mark.parametrize("shape", [(32,), (16, 24), (8, 8, 8)])
def test_nested_grid_far_field_is_linear_and_shift_invariant_on_its_coarsest_spacing(shape):
    torch.manual_seed(0)
    op = H2Operator(shape, 2, leaf_side=2, far="grids", degree=2, boundary="periodic",
                    dtype=torch.float64)
    assert op.n_levels >= 1 and op.coupling.numel() == 0 and len(op.coarse) == op.n_levels
    x, z = (torch.randn(2, 2, *shape, dtype=torch.float64) for _ in range(2))
    y = op(x)
    assert y.shape == x.shape
    assert torch.allclose(op(2 * x - z), 2 * y - op(z), atol=1e-10)
    # with periodic data the whole operator commutes with shifts by the coarsest spacing
    s = 2**op.n_levels
    dims = tuple(range(2, 2 + len(shape)))
    assert torch.allclose(op(x.roll([s] * len(shape), dims)), y.roll([s] * len(shape), dims), atol=1e-10)


def test_nested_grid_far_field_fits_dirichlet_poisson_where_the_box_far_field_stalls():
    # The box far field's couplings serve every position of a box pair alike while the pairs
    # they cover depend on the position: fitted to a Poisson solver it levels off near 1e-2.
    # The nested grids are translation-invariant on every level and fit it tenfold closer
    # with a fraction of the full-width kernel's values.
    from neuralhss.solvers import poisson

    torch.manual_seed(0)
    n = 32
    x = torch.randn(24, 1, n, n, dtype=torch.float64)
    y = torch.as_tensor(poisson.solve(x.numpy()[:, 0], dim=2))[:, None]
    errors = {}
    for far, degree in (("boxes", 2), ("grids", 4)):
        op = H2Operator((n, n), 1, leaf_side=4, degree=degree, boundary="dirichlet", far=far,
                        share_levels=False, init_scale=0.0, symmetric=True, dtype=torch.float64)
        op.fit_linear(x[:16], y[:16], max_iter=400)
        with torch.no_grad():
            e = (op(x[16:]) - y[16:]).flatten(1).norm(dim=1) / y[16:].flatten(1).norm(dim=1)
        errors[far] = float(e.mean())
    assert count_parameters(op) < (2 * n - 1) ** 2
    assert errors["grids"] < errors["boxes"] / 10


def test_nested_grid_options_and_their_errors():
    op = H2Operator((16, 16), 1, far="grids", degree=4, symmetric=True)
    assert "far='grids'" in repr(op)
    model = build("neural_h2", in_channels=1, out_channels=1, grid_shape=[16, 16], n_layers=1,
                  linear_far="grids", linear_degree=4, hidden_far="grids", degree=2)
    assert model.linear.far == model.blocks[0]["h2"].far == "grids"
    assert model(torch.randn(2, 1, 16, 16)).shape == (2, 1, 16, 16)
    with pytest.raises(ValueError, match="far="):
        H2Operator((16, 16), 1, far="tree")
    with pytest.raises(ValueError, match="even degree"):
        H2Operator((16, 16), 1, far="grids", degree=3, symmetric=True)
    with pytest.raises(ValueError, match="grid_radius"):
        H2Operator((16, 16), 1, far="grids", grid_radius=0)
    with pytest.raises(ValueError, match="periodic data needs even sides"):
        H2Operator((6, 6), 1, leaf_side=1, far="grids", degree=4, boundary="periodic")
    with pytest.raises(ValueError, match="even degree"):
        build("neural_h2", in_channels=1, out_channels=1, grid_shape=[16, 16], n_layers=0,
              linear_far="grids", linear_degree=3, linear_symmetric=True)
    with pytest.raises(ValueError, match="far="):
        build("neural_h2", in_channels=1, out_channels=1, grid_shape=[16, 16], hidden_far="box")
    from neuralhss.hss._subdivision import prolong, subdivision_mask, wrap

    with pytest.raises(ValueError, match="positive integer"):
        subdivision_mask(0)
    with pytest.raises(ValueError, match="cannot wrap"):
        wrap(torch.ones(1, 1, 2), 2, 3)
    with pytest.raises(ValueError, match="cannot wrap"):  # periodic subdivision of a too-short axis
        prolong(torch.ones(1, 1, 1), subdivision_mask(8), 1, periodic=True)


@pytest.mark.parametrize("shape", [(32,), (16, 24), (8, 8, 8)])
def test_stationary_far_field_is_linear_and_commutes_with_every_shift(shape):
    torch.manual_seed(0)
    op = H2Operator(shape, 2, leaf_side=2, far="stationary", degree=3, boundary="periodic",
                    dtype=torch.float64)
    assert op.n_levels >= 1 and op.coupling.numel() == 0 and "far='stationary'" in repr(op)
    x, z = (torch.randn(2, 2, *shape, dtype=torch.float64) for _ in range(2))
    y = op(x)
    assert y.shape == x.shape
    assert torch.allclose(op(2 * x - z), 2 * y - op(z), atol=1e-10)
    dims = tuple(range(2, 2 + len(shape)))
    shift = [1 + k for k in range(len(shape))]  # odd shifts, which the nested grids break
    assert torch.allclose(op(x.roll(shift, dims)), y.roll(shift, dims), atol=1e-10)


@pytest.mark.parametrize("boundary", ["dirichlet", "neumann", "periodic", "zeros"])
@pytest.mark.parametrize("shape", [(12,), (6, 10)])
def test_stationary_far_field_is_its_kernel_summed_over_the_continued_field(boundary, shape):
    # the circular convolution (a period of about 2n per axis) against the direct sum of the
    # kernel over the field continued by n - 1 points each way
    import torch.nn.functional as F

    torch.manual_seed(0)
    op = H2Operator(shape, 2, leaf_side=2, far="stationary", degree=2, boundary=boundary,
                    dtype=torch.float64)
    x = torch.randn(3, 2, *shape, dtype=torch.float64)
    with torch.no_grad():
        w = op._stationary_kernel()  # (C, 1, *(2n - 1)), offsets -(n-1)..n-1
        t = op._continue(x, [n - 1 for n in shape])
        conv = F.conv1d if len(shape) == 1 else F.conv2d
        direct = conv(t, w.flip(tuple(range(2, w.ndim))), groups=2)
        assert torch.allclose(op(x), direct, atol=1e-11)
        # a frozen operator reuses its kernel's spectrum until a parameter changes in place
        op.requires_grad_(False)
        first = op(x)
        assert torch.equal(op(x), first)
        op.near.mul_(2.0)
        assert not torch.allclose(op(x), first)


def test_stationary_far_field_is_the_shift_average_of_the_nested_grids():
    # Each undecimated level is the average over the 2**j shifts of its decimated level:
    # with the same kernels (the coarsest left out, whose sizes differ), averaging the
    # periodic nested-grid operator over shifts by 0 .. 2**L - 1 gives the stationary one.
    torch.manual_seed(0)
    n, kw = 64, {"degree": 2, "boundary": "periodic", "leaf_side": 2, "dtype": torch.float64}
    grids, stat = H2Operator((n,), 1, far="grids", **kw), H2Operator((n,), 1, far="stationary", **kw)
    assert grids.n_levels == stat.n_levels
    with torch.no_grad():
        stat.near.copy_(grids.near)
        for kg, ks in zip(grids.coarse[:-1], stat.coarse[:-1], strict=True):
            ks.copy_(kg)
        grids.coarse[-1].zero_()
        stat.coarse[-1].zero_()
        x = torch.randn(3, 1, n, dtype=torch.float64)
        q = 2**grids.n_levels
        average = sum(grids(x.roll(s, 2)).roll(-s, 2) for s in range(q)) / q
        assert torch.allclose(stat(x), average, atol=1e-12)


def test_stationary_far_field_fits_dirichlet_poisson_closer_than_the_nested_grids():
    # The same values as the nested grids, without their dependence on the position modulo
    # 2**j: fitted to a Poisson solver on the same pairs it ends lower.
    from neuralhss.solvers import poisson

    torch.manual_seed(0)
    n = 32
    x = torch.randn(24, 1, n, n, dtype=torch.float64)
    y = torch.as_tensor(poisson.solve(x.numpy()[:, 0], dim=2))[:, None]
    errors = {}
    for far in ("grids", "stationary"):
        op = H2Operator((n, n), 1, degree=4, boundary="dirichlet", far=far, init_scale=0.0,
                        symmetric=True, dtype=torch.float64)
        op.fit_linear(x[:16], y[:16], max_iter=300)
        with torch.no_grad():
            e = (op(x[16:]) - y[16:]).flatten(1).norm(dim=1) / y[16:].flatten(1).norm(dim=1)
        errors[far] = float(e.mean())
    assert errors["stationary"] < errors["grids"] / 2
    # solved exactly: the objective's gradient vanishes, and the misfit is below L-BFGS's
    fits = {}
    for solver in ("lbfgs", "lstsq"):
        op = H2Operator((n, n), 1, degree=4, boundary="dirichlet", far="stationary",
                        symmetric=True, init_scale=0.0, dtype=torch.float64)
        fits[solver] = op.fit_linear(x[:16], y[:16], max_iter=300, solver=solver)
    assert fits["lstsq"].iterations == 0 and fits["lstsq"].misfit < fits["lbfgs"].misfit
    with op._plain_units():
        loss = (op(x[:16]) - y[:16]).square().sum() / y[:16].square().sum()
        grads = torch.autograd.grad(loss, op.linear_parameters(), allow_unused=True)
    assert max(float(g.abs().max()) for g in grads if g is not None) < 1e-9
    with pytest.raises(ValueError, match="solver="):
        op.fit_linear(x[:2], y[:2], solver="cg")
    # odd degrees keep the stationary kernel symmetric
    op = H2Operator((n, n), 1, degree=3, far="stationary", symmetric=True, dtype=torch.float64)
    assert torch.allclose(op(x[:2].transpose(2, 3)), op(x[:2]).transpose(2, 3), atol=1e-10)
    with pytest.raises(ValueError, match="degree >= 1"):
        H2Operator((n, n), 1, degree=0, far="stationary")


def test_float64_linear_path_keeps_its_precision_inside_a_float32_model():
    torch.manual_seed(0)
    kw = {"grid_shape": (16, 16), "n_layers": 0, "linear_far": "stationary", "linear_degree": 2}
    x = torch.randn(4, 1, 16, 16)
    y = torch.roll(x, 1, dims=-1) + 0.5 * x
    m64 = NeuralH2(linear_dtype="float64", **kw)
    m64.fit_linear_path(x.double(), y.double(), solver="lstsq")
    assert m64.linear.near.dtype == torch.float64  # the fit leaves it in its own precision
    m32 = NeuralH2(**kw)
    m32.load_state_dict(m64.state_dict())
    assert m32.linear.near.dtype == torch.float32
    with torch.no_grad():
        exact = m64.linear(x.double())
        out64, out32 = m64(x), m32(x)
    assert out64.dtype == out32.dtype == torch.float32
    err64 = float((out64.double() - exact).norm() / exact.norm())
    err32 = float((out32.double() - exact).norm() / exact.norm())
    assert err64 < 1e-7 < err32
    with pytest.raises(ValueError, match="linear_dtype"):
        NeuralH2(linear_dtype="half", **kw)


def test_coupling_rank_is_the_full_operator_with_factored_couplings():
    """``coupling_rank=K`` builds every channel's couplings from K shared kernels: the operator
    is the unfactored one given ``mix @ basis`` as its couplings, and those couplings, as a
    (channels x rest) matrix, have rank K."""
    torch.manual_seed(0)
    kw = {"grid_shape": (32, 32), "channels": 6, "leaf_side": 4, "degree": 1, "boundary": "neumann"}
    low, full = H2Operator(**kw, coupling_rank=2), H2Operator(**kw)
    assert low.coupling.shape[1] == 2 and count_parameters(low) < count_parameters(full)
    with torch.no_grad():
        full.near.copy_(low.near)
        full.gain.copy_(torch.rand_like(full.gain) + 0.5)
        low.gain.copy_(full.gain)
        full.coupling.copy_(torch.einsum("ck,gkabo->gcabo", low.coupling_mix, low.coupling))
    x = torch.randn(3, 6, 32, 32)
    torch.testing.assert_close(low(x), full(x), rtol=1e-5, atol=1e-6)
    assert torch.linalg.matrix_rank(full.coupling[0].reshape(6, -1)) == 2
    low(x).square().sum().backward()
    assert low.coupling_mix.grad.abs().sum() > 0 and low.coupling.grad.abs().sum() > 0
    assert "coupling_rank=2" in repr(low)
    y = torch.randn(3, 1, 32, 32)
    with pytest.raises(ValueError, match="fit_linear needs an operator linear"):
        H2Operator((32, 32), coupling_rank=1).fit_linear(y, y)
    with pytest.raises(ValueError, match="coupling_rank=0 must be a positive integer"):
        H2Operator((32, 32), coupling_rank=0)
    with pytest.raises(ValueError, match="coupling_rank needs far='boxes'"):
        H2Operator((32, 32), far="grids", coupling_rank=2)
    model = NeuralH2(1, 2, (32, 32), hidden_channels=8, n_layers=1, degree=2, hidden_coupling_rank=2)
    assert model.blocks[0]["h2"].coupling_rank == 2 and model(y).shape == (3, 2, 32, 32)


def test_hidden_grid_radius_sets_the_hidden_blocks_coarse_levels():
    # grid_radius * 2**L <= 32: radius 4 gives levels of spacing 2, 4, 8; radius 16 one level
    # of spacing 2 whose kernel reaches across the grid (35 coarse points per axis).
    shapes = {}
    for radius in (4, 16):
        model = NeuralH2(2, 2, (32, 32), hidden_channels=4, n_layers=2, hidden_far="stationary",
                         degree=2, linear_path=False, hidden_grid_radius=radius)
        shapes[radius] = [tuple(k.shape[2:]) for k in model.blocks[1]["h2"].coarse]
        assert model(torch.randn(2, 2, 32, 32)).shape == (2, 2, 32, 32)
    assert shapes == {4: [(9, 9), (9, 9), (11, 11)], 16: [(35, 35)]}
    with pytest.raises(ValueError, match="grid_radius"):
        NeuralH2(2, 2, (32, 32), hidden_far="stationary", hidden_grid_radius=0)


@pytest.mark.parametrize("far", ["boxes", "stationary"])
def test_near_units_change_the_steps_not_the_operator(far):
    # Stored near_units times larger, the near kernel acts as before from the same seed, a
    # convex fit lands on the same operator, and one Adam step on the kernel moves the output
    # near_units times less (Adam's step per value does not depend on the gradient's scale).
    torch.manual_seed(0)
    x = torch.randn(6, 2, 16, 16, dtype=torch.float64)
    ops = {}
    for units in (1.0, 8.0):
        torch.manual_seed(1)
        ops[units] = H2Operator((16, 16), 2, degree=2, far=far, near_units=units, dtype=torch.float64)
    with torch.no_grad():
        assert torch.allclose(ops[1.0](x), ops[8.0](x), atol=1e-12)
    moved = {}
    for units, op in ops.items():
        before = op(x).detach()
        opt = torch.optim.Adam([op.near], lr=1e-3)
        op(x).square().sum().backward()
        opt.step()
        moved[units] = float((op(x).detach() - before).norm())
    assert moved[8.0] == pytest.approx(moved[1.0] / 8, rel=1e-6)
    y = torch.randn(6, 1, 16, 16, dtype=torch.float64)
    fits = []
    for units in (1.0, 8.0):
        op = H2Operator((16, 16), 1, degree=2, far=far, near_units=units, init_scale=0.0,
                        dtype=torch.float64)
        op.fit_linear(x[:, :1], y, solver="lstsq")
        with torch.no_grad():
            fits.append(op(x[:, :1]))
    assert torch.allclose(fits[0], fits[1], atol=1e-9)
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="near_units"):
            H2Operator((16, 16), 1, near_units=bad)
