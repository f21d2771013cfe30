"""Cluster tree of a regular grid by k-d bisection, and the grid <-> tree orderings.

The tree is implicit: because every node of one level has the same box shape, the whole
tree is described by the leaf box and the sequence of split axes (root first). Reordering
an array from row-major grid order into tree order is a single reshape/permute/reshape,
i.e. one copy, with no index arrays and no per-node work.

Conventions
-----------
* Levels are numbered from the root: level 0 is the root (all ``N`` points), level ``L``
  holds the ``P = 2**L`` leaves of ``m`` points each, so ``N = P * m``.
* In tree order, the nodes of level ``l`` are numbered ``0 .. 2**l - 1`` from left to right;
  the children of node ``q`` are ``2q`` (first half along the split axis) and ``2q + 1``.
  Siblings are therefore adjacent, and an array ``(..., 2**l, k)`` of per-node data
  becomes per-pair data by ``reshape(..., 2**(l-1), 2, k)``.
* Inside a leaf the points keep row-major order of the leaf box.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["ClusterTree", "build_tree", "leaf_shape_for"]


def _as_shape(grid_shape: Sequence[int] | int) -> tuple[int, ...]:
    if isinstance(grid_shape, int):
        grid_shape = (grid_shape,)
    shape = tuple(int(n) for n in grid_shape)
    if not 1 <= len(shape) <= 3:
        raise ValueError(
            f"grid_shape {shape} has {len(shape)} axes; HSS operators support 1-D, 2-D and 3-D "
            "grids: pass a tuple of 1 to 3 positive sides"
        )
    if any(n < 1 for n in shape):
        raise ValueError(f"grid_shape {shape} has a non-positive side; all sides must be >= 1")
    return shape


def _is_pow2(k: int) -> bool:
    return k >= 1 and (k & (k - 1)) == 0


def leaf_shape_for(grid_shape: Sequence[int] | int, leaf_size: int | Sequence[int]) -> tuple[int, ...]:
    """Per-axis leaf box for ``leaf_size`` (points per leaf, or already a per-axis tuple).

    An integer ``leaf_size`` is turned into a box by running the k-d bisection itself:
    halve the longest side (lowest axis first on ties) until the box holds ``leaf_size``
    points; e.g. 16 -> (16,) in 1-D, (4, 4) on a square 2-D grid, 64 -> (4, 4, 4) on a cube.

    Raises
    ------
    ValueError
        If the grid cannot be tiled: every side must equal the leaf side times a power of two.
    """
    shape = _as_shape(grid_shape)
    d = len(shape)
    if isinstance(leaf_size, int | float) and not isinstance(leaf_size, bool):
        m = int(leaf_size)
        if m != leaf_size or m < 1:
            raise ValueError(f"leaf_size={leaf_size!r} must be a positive integer (points per leaf)")
        box = list(shape)
        while math.prod(box) > m:
            a = max(range(d), key=lambda i: (box[i], -i))
            if box[a] % 2:
                break
            box[a] //= 2
        if math.prod(box) != m:
            raise ValueError(
                f"leaf_size={m} does not tile grid_shape {shape} by k-d bisection (halving the "
                f"longest side stops at a box {tuple(box)} of {math.prod(box)} points); accepted "
                "grids have every side equal to a leaf side times a power of two, e.g. "
                f"leaf_size=16 with grids of side 16*2**k in 1-D, (4*2**a, 4*2**b) in 2-D; or pass "
                "a per-axis leaf tuple"
            )
        return tuple(box)
    leaf = tuple(int(v) for v in leaf_size)
    if len(leaf) != d:
        raise ValueError(
            f"leaf_size {leaf} has {len(leaf)} entries but grid_shape {shape} has {d} axes; "
            "give one leaf side per grid axis or an integer number of points per leaf"
        )
    for i, (n, l) in enumerate(zip(shape, leaf, strict=True)):
        if l < 1 or n % l or not _is_pow2(n // l):
            raise ValueError(
                f"leaf side {l} does not tile axis {i} of grid_shape {shape}: each grid side must "
                f"be the leaf side times a power of two (accepted sides here: {l}*2**k, "
                f"e.g. {l}, {2 * l}, {4 * l}, ...)"
            )
    return leaf


@dataclass(frozen=True)
class ClusterTree:
    """Implicit k-d bisection tree of a ``grid_shape`` grid with ``leaf_shape`` leaves.

    Attributes
    ----------
    grid_shape, leaf_shape : tuple of int
        Grid and leaf box, one entry per spatial axis.
    split_axes : tuple of int
        Axis split at each level, root first (``len == n_levels``).
    n_levels : int
        ``L``; the leaves are on level ``L`` (0 when the grid is a single leaf).
    leaf_size : int
        ``m``, points per leaf.
    n_leaves : int
        ``P = 2**L``.
    """

    grid_shape: tuple[int, ...]
    leaf_shape: tuple[int, ...]
    split_axes: tuple[int, ...]
    _perm: tuple[int, ...] = field(repr=False, compare=False)
    _expanded: tuple[int, ...] = field(repr=False, compare=False)

    @property
    def ndim(self) -> int:
        return len(self.grid_shape)

    @property
    def n_levels(self) -> int:
        return len(self.split_axes)

    @property
    def leaf_size(self) -> int:
        return math.prod(self.leaf_shape)

    @property
    def n_leaves(self) -> int:
        return 2 ** self.n_levels

    @property
    def n_points(self) -> int:
        return math.prod(self.grid_shape)

    def node_size(self, level: int) -> int:
        """Number of points in a node of ``level``."""
        return self.n_points >> level

    def _bits(self, order: str) -> list[int]:
        nb = self.n_levels
        if order == "tree":
            return list(self._perm[:nb])
        if order == "block":
            return sorted(self._perm[:nb])
        raise ValueError(f"leaf order {order!r} must be 'tree' or 'block'")

    def to_tree(
        self, x: torch.Tensor, node_dim: int | None = None, order: str = "tree"
    ) -> torch.Tensor:
        """Reorder ``(*lead, *grid_shape)`` (row-major) into leaf blocks ``(*lead', m)``.

        ``lead'`` is ``lead`` with the leaf axis (length ``P``) inserted at position
        ``node_dim`` (default: after all leading axes, i.e. ``(*lead, P, m)``). E.g. for
        ``x`` of shape ``(B, C, *grid)``, ``node_dim=0`` gives ``(P, B, C, m)``. Any choice
        costs the same single copy. ``order="tree"`` numbers the leaves in tree order;
        ``order="block"`` in row-major order of the grid of leaf boxes (cheaper in 2-D/3-D
        because no bit interleaving is needed; the two coincide in 1-D), for operations
        that treat all leaves alike. :meth:`reorder_leaves` converts between the two.
        """
        lead = tuple(x.shape[: x.dim() - self.ndim])
        nl = len(lead)
        k = nl if node_dim is None else node_dim
        if not 0 <= k <= nl:
            raise ValueError(f"node_dim={node_dim} must lie in [0, {nl}] for input {tuple(x.shape)}")
        if order == "tree" and self._bits("tree") != self._bits("block"):
            # A permute over the interleaved level bits (one size-2 axis per level) runs several
            # times slower than a row gather of whole leaves (three times at 128^3).
            y = self.to_tree(x, node_dim, "block")
            return _permute_along(y, k, self, inverse=False)
        nb = self.n_levels
        y = x.reshape(*lead, *self._expanded)
        bits = [nl + p for p in self._bits(order)]
        local = [nl + p for p in self._perm[nb:]]
        y = y.permute(*range(k), *bits, *range(k, nl), *local)
        return y.reshape(*lead[:k], self.n_leaves, *lead[k:], self.leaf_size)

    def to_grid(
        self, y: torch.Tensor, node_dim: int | None = None, order: str = "tree"
    ) -> torch.Tensor:
        """Inverse of :meth:`to_tree` (with the same ``node_dim`` and ``order``)."""
        nl = y.dim() - 2
        k = nl if node_dim is None else node_dim
        if order == "tree" and self._bits("tree") != self._bits("block"):
            y = _permute_along(y, k, self, inverse=True)
            return self.to_grid(y, node_dim, "block")
        lead = tuple(y.shape[:k]) + tuple(y.shape[k + 1: -1])
        nb = self.n_levels
        src = self._bits(order) + list(self._perm[nb:])
        permuted = [self._expanded[p] for p in src]
        z = y.reshape(*lead[:k], *permuted[:nb], *lead[k:], *permuted[nb:])
        pos = [0] * len(src)  # position in z of each expanded grid axis
        for i, p in enumerate(src):
            pos[p] = k + i if i < nb else nl + i
        z = z.permute(*range(k), *range(k + nb, nb + nl), *pos)
        return z.reshape(*lead, *self.grid_shape)

    def reorder_leaves(self, t: torch.Tensor, dim: int, src: str, dst: str) -> torch.Tensor:
        """Permute a per-leaf axis ``dim`` (length ``P``) from leaf order ``src`` to ``dst``
        ("tree" or "block"); returns a view when no data movement is needed."""
        s_bits, d_bits = self._bits(src), self._bits(dst)
        if s_bits == d_bits:
            return t
        dim = dim % t.dim()
        nb = self.n_levels
        shp = list(t.shape)
        z = t.reshape(*shp[:dim], *([2] * nb), *shp[dim + 1:])
        order = [s_bits.index(p) for p in d_bits]
        z = z.permute(*range(dim), *(dim + j for j in order),
                      *range(dim + nb, z.dim()))
        return z.reshape(shp)

    def permutation(self) -> torch.Tensor:
        """``perm[t]`` = row-major grid index of the point at tree position ``t``."""
        idx = torch.arange(self.n_points).reshape(self.grid_shape)
        return self.to_tree(idx).reshape(-1)


@functools.lru_cache(maxsize=64)
def _leaf_gather(tree: ClusterTree, inverse: bool) -> torch.Tensor:
    """Block-order index of every leaf in tree order (``inverse``: tree index of every leaf in
    block order), for ``index_select`` along a leaf axis."""
    idx = tree.reorder_leaves(torch.arange(tree.n_leaves), 0, "block", "tree")
    return torch.argsort(idx) if inverse else idx


class _PermuteRows(torch.autograd.Function):
    """``x.index_select(dim, index)`` for a permutation ``index``: its adjoint is the inverse
    permutation, one gather, where ``index_select``'s own backward zero-fills and scatter-adds."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, dim: int, index: torch.Tensor,
                inverse: torch.Tensor) -> torch.Tensor:
        ctx.dim, ctx.index, ctx.inverse = dim, index, inverse
        return x.index_select(dim, index)

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        return _PermuteRows.apply(g, ctx.dim, ctx.inverse, ctx.index), None, None, None


def _permute_along(x: torch.Tensor, dim: int, tree: ClusterTree, inverse: bool) -> torch.Tensor:
    """Leaves along ``dim`` from block to tree order (``inverse``: tree to block order)."""
    index = _leaf_gather(tree, inverse).to(x.device)
    return _PermuteRows.apply(x, dim, index, _leaf_gather(tree, not inverse).to(x.device))


def build_tree(grid_shape: Sequence[int] | int, leaf_size: int | Sequence[int]) -> ClusterTree:
    """Build the k-d bisection tree of a grid.

    Parameters
    ----------
    grid_shape : int or tuple of int
        Grid sides ``(n_1, ..., n_d)``, ``d <= 3``.
    leaf_size : int or tuple of int
        Points per leaf, or the leaf box per axis. Every side must be the leaf side times a
        power of two.

    Returns
    -------
    ClusterTree
    """
    shape = _as_shape(grid_shape)
    leaf = leaf_shape_for(shape, leaf_size)
    d = len(shape)
    bits = [int(round(math.log2(n // l))) for n, l in zip(shape, leaf, strict=True)]
    box = list(shape)
    axes: list[int] = []
    while any(box[i] > leaf[i] for i in range(d)):
        # Longest remaining side first (ties: lowest axis), the same rule that derives an
        # integer leaf_size's box, so both spellings of a leaf give the same tree.
        a = max((i for i in range(d) if box[i] > leaf[i]), key=lambda i: (box[i], -i))
        axes.append(a)
        box[a] //= 2
    # Expanded shape: axis i of side n_i becomes (2,)*bits_i + (leaf_i,), most significant
    # bit first, so a point's leaf index bits are read off in split order.
    expanded: list[int] = []
    bit_pos: list[list[int]] = []
    leaf_pos: list[int] = []
    for i in range(d):
        bit_pos.append(list(range(len(expanded), len(expanded) + bits[i])))
        expanded.extend([2] * bits[i])
        leaf_pos.append(len(expanded))
        expanded.append(leaf[i])
    used = [0] * d
    perm: list[int] = []
    for a in axes:
        perm.append(bit_pos[a][used[a]])
        used[a] += 1
    perm.extend(leaf_pos)
    return ClusterTree(shape, leaf, tuple(axes), tuple(perm), tuple(expanded))
