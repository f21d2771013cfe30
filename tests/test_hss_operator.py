"""HSSOperator: batched apply against a node-by-node reference, sharing, gradients, errors."""

from __future__ import annotations

import pytest
import torch
from torch.func import functional_call

from neuralhss.hss import HSSOperator, generator_count, parameter_count
from neuralhss.models import count_parameters

CASES = [((64,), 8), ((8, 16), 8), ((8, 8, 8), (2, 2, 2)), ((4, 8, 8), 16)]
SHARES = [("none", 0), ("level", 0), ("level", 2)]



# Slow reference: the dense matrix built node by node from the generators (explicit nested
# bases), independent of the batched apply.
def _gen(p: torch.Tensor, untied: bool, idx: int) -> torch.Tensor:
    return p[idx] if untied else p[0]


def reference_dense(op: HSSOperator) -> torch.Tensor:
    """(C_out, C_in, N, N) in row-major grid order."""
    t = op.tree
    L, m, P, N = t.n_levels, t.leaf_size, t.n_leaves, t.n_points
    co, ci = op.out_channels, op.in_channels
    ut = op.untied
    A = torch.zeros(co, ci, N, N, dtype=op.D.dtype)
    with torch.no_grad():
        # full bases per level: U_full[lev][node] (co, size, r)
        uf = {L: [_gen(op.U, ut[L], p) for p in range(P)]}
        vf = {L: [_gen(op.V, ut[L], p) for p in range(P)]}
        for lev in range(L, 1, -1):
            uf[lev - 1], vf[lev - 1] = [], []
            for q in range(2 ** (lev - 1)):
                R = _gen(op.R[lev - 2], ut[lev], q)  # (2, co, r, rp)
                W = _gen(op.W[lev - 2], ut[lev], q)
                uf[lev - 1].append(torch.cat([uf[lev][2 * q] @ R[0], uf[lev][2 * q + 1] @ R[1]],
                                             dim=1))
                vf[lev - 1].append(torch.cat([vf[lev][2 * q] @ W[0], vf[lev][2 * q + 1] @ W[1]],
                                             dim=1))
        for p in range(P):
            D = _gen(op.D, ut[L], p)
            A[:, :, p * m:(p + 1) * m, p * m:(p + 1) * m] = D
        for lev in range(1, L + 1):
            sz = N >> lev
            for q in range(2 ** (lev - 1)):
                Bq = _gen(op.B[lev - 1], ut[lev], q)  # (2, co, ci, r, r)
                a, b = 2 * q, 2 * q + 1
                for s, (i, j) in enumerate(((a, b), (b, a))):
                    blk = torch.einsum("oxr,ocrt,cyt->ocxy", uf[lev][i], Bq[s], vf[lev][j])
                    A[:, :, i * sz:(i + 1) * sz, j * sz:(j + 1) * sz] = blk
    perm = t.permutation()
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(N)
    return A[..., inv, :][..., inv]


@pytest.mark.parametrize("grid, leaf", CASES)
@pytest.mark.parametrize("share, untie", SHARES)
@pytest.mark.parametrize("ci, co", [(1, 1), (2, 3)])
def test_apply_matches_reference(grid, leaf, share, untie, ci, co):
    torch.manual_seed(0)
    op = HSSOperator(ci, co, grid_shape=grid, leaf_size=leaf, rank=2, share=share, untie_top=untie,
                     dtype=torch.float64)
    A = reference_dense(op)
    x = torch.randn(3, ci, *grid, dtype=torch.float64)
    y = op(x)
    assert y.shape == (3, co, *grid)
    y_ref = torch.einsum("ocij,bcj->boi", A, x.reshape(3, ci, -1)).reshape(y.shape)
    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(op.to_dense(), A, rtol=1e-12, atol=1e-12)


def test_per_level_ranks():
    op = HSSOperator(grid_shape=(64,), leaf_size=8, rank=(2, 3, 4), dtype=torch.float64)
    assert op.ranks == (2, 3, 4)
    torch.testing.assert_close(op.to_dense(), reference_dense(op), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("grid, leaf", CASES)
@pytest.mark.parametrize("share, untie", SHARES + [("level", 9)])
def test_parameter_count_formula(grid, leaf, share, untie):
    op = HSSOperator(2, 3, grid_shape=grid, leaf_size=leaf, rank=2, share=share, untie_top=untie)
    assert count_parameters(op) == generator_count(grid, leaf, 2, 2, 3, share, untie)


def test_old_parameter_count_names_warn_and_agree():
    op = HSSOperator(grid_shape=(64,), leaf_size=8, rank=2)
    with pytest.warns(DeprecationWarning, match="generator_count"):
        assert parameter_count((64,), 8, 2) == generator_count((64,), 8, 2)
    with pytest.warns(DeprecationWarning, match="count_parameters"):
        assert op.parameter_count() == count_parameters(op)


def test_sharing_semantics():
    n_level = [generator_count((n,), 16, 4, share="level") for n in (256, 1024, 4096)]
    assert n_level[0] < n_level[1] < n_level[2]  # one generator set per level: grows with L only
    full = generator_count((1024,), 16, 4, share="none")
    assert generator_count((1024,), 16, 4, share="level", untie_top=6) == full
    # shared leaves: all diagonal blocks identical (translation-tied)
    op = HSSOperator(grid_shape=(64,), leaf_size=16, rank=4, share="level", untie_top=1,
                     dtype=torch.float64)
    A = op.to_dense()[0, 0]
    blocks = torch.stack([A[i:i + 16, i:i + 16] for i in range(0, 64, 16)])
    torch.testing.assert_close(blocks, blocks[:1].expand_as(blocks))
    # untie_top >= L behaves exactly like share="none"
    op1 = HSSOperator(grid_shape=(64,), leaf_size=8, rank=2, share="level", untie_top=3)
    op2 = HSSOperator(grid_shape=(64,), leaf_size=8, rank=2, share="none")
    assert [p.shape for p in op1.parameters()] == [p.shape for p in op2.parameters()]


def test_gradcheck_float64():
    torch.manual_seed(0)
    for share, untie in SHARES:
        op = HSSOperator(2, 1, grid_shape=(4, 8), leaf_size=4, rank=2, share=share, untie_top=untie,
                         dtype=torch.float64)
        names = [n for n, _ in op.named_parameters()]
        params = tuple(p.detach().clone().requires_grad_(True) for p in op.parameters())
        x = torch.randn(2, 2, 4, 8, dtype=torch.float64, requires_grad=True)

        def f(x, *ps, names=names, op=op):
            return functional_call(op, dict(zip(names, ps, strict=True)), (x,))

        assert torch.autograd.gradcheck(f, (x, *params))


@pytest.mark.parametrize("ci,co,nb", [(1, 1, 1), (1, 1, 3), (2, 3, 1), (3, 2, 2)])
def test_gradcheck_untied_leaf_blocks(ci, co, nb):
    # The untied leaves have their own backward (one pass over D, written in D's layout):
    # check it for every channel and batch case it distinguishes.
    torch.manual_seed(1)
    for levels in ((4, 8), (4, 4)):  # with levels, and a single leaf
        op = HSSOperator(ci, co, grid_shape=levels, leaf_size=16 if levels == (4, 4) else 4,
                         rank=2, share="none", dtype=torch.float64)
        names = [n for n, _ in op.named_parameters()]
        params = tuple(p.detach().clone().requires_grad_(True) for p in op.parameters())
        x = torch.randn(nb, ci, *levels, dtype=torch.float64, requires_grad=True)

        def f(x, *ps, names=names, op=op):
            return functional_call(op, dict(zip(names, ps, strict=True)), (x,))

        assert torch.autograd.gradcheck(f, (x, *params))


def test_untied_leaf_gradients_second_order_and_layout():
    # Second derivatives through the hand-written leaf products and leaf permutations, and
    # first-order gradients laid out like their parameters (as DDP's buckets expect).
    torch.manual_seed(2)
    op = HSSOperator(1, 1, grid_shape=(4, 8), leaf_size=4, rank=2, share="none",
                     dtype=torch.float64)
    names = [n for n, _ in op.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_(True) for p in op.parameters())
    x = torch.randn(1, 1, 4, 8, dtype=torch.float64, requires_grad=True)

    def f(x, *ps):
        return functional_call(op, dict(zip(names, ps, strict=True)), (x,))

    assert torch.autograd.gradgradcheck(f, (x, *params))
    op.float()(torch.randn(1, 1, 4, 8)).square().sum().backward()
    for name, p in op.named_parameters():
        assert p.grad.stride() == p.stride(), name



@pytest.mark.parametrize("batch", [1, 3])
def test_untied_gradient_memory_is_reused_only_when_free(monkeypatch, batch):
    # The memory of a dropped gradient is written again by the next backward (no fresh pages),
    # and a gradient somebody still holds, directly or through a view, never is.
    import neuralhss.hss.operator as hss_op

    monkeypatch.setattr(hss_op, "_KEEP_MIN_BYTES", 0)
    torch.manual_seed(3)
    op = HSSOperator(1, 1, grid_shape=(8, 16), leaf_size=8, rank=2, share="none")
    x = torch.randn(batch, 1, 8, 16)

    def step(op=op):
        op.zero_grad(set_to_none=True)
        op(x).square().sum().backward()
        return {n: p.grad.clone() for n, p in op.named_parameters()}

    first = step()
    where = {n: p.grad.data_ptr() for n, p in op.named_parameters()}
    assert step().keys() == first.keys()
    for name, p in op.named_parameters():
        assert p.grad.data_ptr() == where[name], name  # reused
        torch.testing.assert_close(p.grad, first[name], rtol=0, atol=0)
    held, part = op.D.grad, op.U.grad[:1]
    held_values, part_values = held.clone(), part.clone()
    step()
    assert torch.equal(held, held_values) and torch.equal(part, part_values)
    assert op.D.grad.data_ptr() != held.data_ptr() and op.U.grad.data_ptr() != part.data_ptr()
    op(x).square().sum().backward()  # no zero_grad: gradients accumulate
    for name, p in op.named_parameters():
        torch.testing.assert_close(p.grad, 2 * first[name])
    g1, g2 = (torch.autograd.grad(op(x).square().sum(), op.D)[0] for _ in range(2))
    assert g1.data_ptr() != g2.data_ptr() and torch.equal(g1, g2)
    n_kept = len(hss_op._GRAD_MEMORY)
    del op, held, part, step
    import gc

    gc.collect()
    assert len(hss_op._GRAD_MEMORY) < n_kept  # the holders go with their generators

def test_float32_and_default_init_scale():
    op = HSSOperator(3, 3, grid_shape=(32, 32), leaf_size=16, rank=4, share="level", untie_top=2)
    x = torch.randn(2, 3, 32, 32)
    y = op(x)
    assert y.dtype == torch.float32 and torch.isfinite(y).all()
    assert 0.2 < float(y.detach().std()) < 5.0  # orthonormal nested bases: no explosion across levels
    op64 = HSSOperator(3, 3, grid_shape=(32, 32), leaf_size=16, rank=4, share="level", untie_top=2,
                       dtype=torch.float64)
    op64.load_state_dict({k: v.double() for k, v in op.state_dict().items()})
    torch.testing.assert_close(op64(x.double()).float(), y, rtol=1e-4, atol=1e-5)


def test_single_leaf_grid_is_dense_block():
    op = HSSOperator(grid_shape=(4, 4), leaf_size=16, rank=4, dtype=torch.float64)
    assert op.n_levels == 0
    torch.testing.assert_close(op.to_dense()[0, 0], op.D[0, 0, 0])


def test_device_follows_parameters():
    op = HSSOperator(grid_shape=(64,), leaf_size=16, rank=4, device="meta")
    y = op(torch.empty(2, 1, 64, device="meta"))
    assert y.device.type == "meta" and y.shape == (2, 1, 64)


@pytest.mark.parametrize(
    "kwargs, match",
    [(dict(rank=17), "exceeds the leaf size"), (dict(rank=(2, 2, 2)), "one rank per level"),
     (dict(rank=0), ">= 1"), (dict(rank=4, share="tied"), "not one of"),
     (dict(rank=4, untie_top=2), "only applies to share='level'"),
     (dict(rank=4, in_channels=0), ">= 1")],
)
def test_bad_construction_raises(kwargs, match):
    with pytest.raises(ValueError, match=match):
        HSSOperator(**{"grid_shape": (64,), "leaf_size": 16, **kwargs})


def test_bad_input_raises():
    op = HSSOperator(2, grid_shape=(8, 8), leaf_size=16, rank=4)
    with pytest.raises(ValueError, match="channels"):
        op(torch.randn(1, 3, 8, 8))
    with pytest.raises(ValueError, match="expected"):
        op(torch.randn(2, 8, 8))
    with pytest.raises(ValueError, match="expected"):
        op(torch.randn(1, 2, 8, 16))
    with pytest.raises(ValueError, match="dtype"):
        op(torch.randn(1, 2, 8, 8, dtype=torch.float64))
    with pytest.raises(ValueError, match="empty"):
        op(torch.randn(0, 2, 8, 8))


def test_the_01_argument_order_is_deprecated_and_builds_the_same_operator():
    torch.manual_seed(0)
    new = HSSOperator(2, 3, grid_shape=(16, 16), leaf_size=16, rank=4, share="level")
    torch.manual_seed(0)
    with pytest.warns(DeprecationWarning, match="channels first"):
        old = HSSOperator((16, 16), 16, 4, 2, 3, share="level")
    for a, b in zip(new.state_dict().values(), old.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(TypeError, match="both by position and by name"):
        HSSOperator((16, 16), 16, 4, 2, in_channels=2)
