"""Cluster tree: k-d bisection, grid <-> tree orderings."""

from __future__ import annotations

import pytest
import torch

from neuralhss.hss import build_tree, leaf_shape_for


@pytest.mark.parametrize(
    "grid, leaf, expected",
    [((256,), 16, (16,)), ((64, 64), 16, (4, 4)), ((32, 32, 32), 64, (4, 4, 4)),
     ((16, 64), 16, (4, 4)), ((8, 8), 32, (4, 8))],
)
def test_integer_leaf_size_gives_kd_box(grid, leaf, expected):
    assert leaf_shape_for(grid, leaf) == expected


@pytest.mark.parametrize(
    "grid, leaf",
    [((64,), 16), ((32, 64), 16), ((16, 16, 16), 64), ((8, 32), (2, 4)), ((16, 8, 32), (4, 2, 4))],
)
def test_nodes_are_boxes_and_siblings_split_parent(grid, leaf):
    t = build_tree(grid, leaf)
    coords = torch.stack(torch.meshgrid(*[torch.arange(n) for n in grid], indexing="ij"))
    ct = t.to_tree(coords)  # (d, P, m): coordinates of the points of each leaf
    assert ct.shape == (len(grid), t.n_leaves, t.leaf_size)
    for lev in range(t.n_levels + 1):
        nodes = ct.reshape(len(grid), 2**lev, -1)
        lo, hi = nodes.min(-1).values, nodes.max(-1).values
        box = (hi - lo + 1).prod(0)
        assert torch.equal(box, torch.full_like(box, t.node_size(lev))), "node is not a box"
        if lev < t.n_levels:
            # the split axis of this level halves every node along that axis
            a = t.split_axes[lev]
            kids = ct.reshape(len(grid), 2 ** (lev + 1), -1)
            left, right = kids[a, 0::2].max(-1).values, kids[a, 1::2].min(-1).values
            assert torch.all(left + 1 == right)
    # row-major inside a leaf: grid indices of each leaf's points increase
    flat = t.permutation().reshape(t.n_leaves, t.leaf_size)
    assert torch.all(flat[:, 1:] > flat[:, :-1])


def test_split_longest_axis_first():
    t = build_tree((16, 64), (4, 4))
    assert t.split_axes[:2] == (1, 1)  # 16 x 64 -> 16 x 32 -> 16 x 16
    assert t.split_axes[2] == 0  # tie at 16 x 16: lowest axis first


@pytest.mark.parametrize("order", ["tree", "block"])
@pytest.mark.parametrize("grid, leaf", [((64,), 8), ((8, 16), 8), ((8, 8, 16), (2, 4, 4))])
def test_round_trips_and_orders(grid, leaf, order):
    t = build_tree(grid, leaf)
    x = torch.randn(3, 2, *grid)
    ref = t.to_tree(x)
    for k in range(3):
        y = t.to_tree(x, node_dim=k, order=order)
        assert torch.equal(t.to_grid(y, node_dim=k, order=order), x)
        assert torch.equal(t.reorder_leaves(y, k, order, "tree"), ref.movedim(2, k))
    perm = t.permutation()
    assert torch.equal(ref.reshape(3, 2, -1), x.reshape(3, 2, -1)[..., perm])


def test_one_dimensional_tree_order_is_grid_order():
    t = build_tree((128,), 16)
    x = torch.arange(128.0)
    assert torch.equal(t.to_tree(x).reshape(-1), x)


@pytest.mark.parametrize(
    "grid, leaf, match",
    [((48,), 16, "power of two"), ((64,), 24, "power of two"), ((64, 64), (4, 4, 4), "axes"),
     ((64, 64), (4, 6), "tile axis 1"), ((2, 2, 2, 2), 2, "1-D, 2-D and 3-D"), ((64,), 0, "positive")],
)
def test_bad_leaf_sizes_raise(grid, leaf, match):
    with pytest.raises(ValueError, match=match):
        build_tree(grid, leaf)
