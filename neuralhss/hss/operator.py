"""The HSS operator as a PyTorch module.

The class docstring states the mathematics; this module fixes the storage
layout and the batched apply.
"""

from __future__ import annotations

import math
import warnings
import weakref
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from . import _leaf_kernels as _kernels
from ._ranks import level_ranks
from .compress import Generators, dense_generators, sample_generators
from .tree import ClusterTree, build_tree

__all__ = ["HSSOperator", "from_dense", "from_samples", "generator_count", "parameter_count"]

_SHARE_MODES = ("none", "level")


def _untied_levels(share: str, untie_top: int, n_levels: int) -> tuple[bool, ...]:
    if share not in _SHARE_MODES:
        raise ValueError(f"share={share!r} is not one of {_SHARE_MODES}")
    if untie_top < 0 or int(untie_top) != untie_top:
        raise ValueError(f"untie_top={untie_top!r} must be a non-negative integer")
    if share == "none":
        if untie_top:
            raise ValueError(
                "untie_top only applies to share='level' (share='none' already unties every "
                "level); use share='level', untie_top=k"
            )
        return (True,) * (n_levels + 1)
    # index 0 (root) carries no generators; kept so that untied[level] reads naturally.
    return tuple(lev <= untie_top for lev in range(n_levels + 1))


def generator_count(
    grid_shape: Sequence[int] | int,
    leaf_size: int | Sequence[int],
    rank: int | Sequence[int],
    in_channels: int = 1,
    out_channels: int = 1,
    share: str = "none",
    untie_top: int = 0,
) -> int:
    """Scalars in the generators of an :class:`HSSOperator` with these settings.

    The storage of a configuration, from the formula in the class docstring, without building
    the operator; equal to ``count_parameters`` of the operator built with the same settings.

    Parameters
    ----------
    grid_shape, leaf_size, rank, in_channels, out_channels, share, untie_top
        As in :class:`HSSOperator`.

    Returns
    -------
    int
    """
    tree = build_tree(grid_shape, leaf_size)
    L, m, P = tree.n_levels, tree.leaf_size, tree.n_leaves
    ci, co = in_channels, out_channels
    if L == 0:
        return co * ci * m * m
    r = level_ranks(rank, L, m)
    untied = _untied_levels(share, untie_top, L)
    g_leaf = P if untied[L] else 1
    total = g_leaf * m * (co * ci * m + (co + ci) * r[L - 1])
    for lev in range(1, L + 1):
        n = 2**lev if untied[lev] else 2
        total += n * co * ci * r[lev - 1] ** 2
        if lev >= 2:
            total += n * (co + ci) * r[lev - 1] * r[lev - 2]
    return total


def parameter_count(*args: Any, **kwargs: Any) -> int:
    """Deprecated alias of :func:`generator_count` (removed in 0.2)."""
    warnings.warn("neuralhss.hss.parameter_count is deprecated; use generator_count (the scalars "
                  "in the HSS generators of a configuration)", DeprecationWarning, stacklevel=2)
    return generator_count(*args, **kwargs)


def _contiguous_grad(t: torch.Tensor) -> torch.Tensor:
    # An incoming gradient with zero strides (e.g. from ``y.sum().backward()``) would send
    # every batched matmul of the backward pass down a per-node loop; one copy avoids that.
    if t.requires_grad:
        t.register_hook(lambda g: g.contiguous() if g is not None else g)
    return t


def _storage_owners(t: torch.Tensor) -> int:
    return torch._C._storage_Use_Count(t.untyped_storage()._cdata)


# Owners counted for a tensor nobody else refers to (the probe's own handle included); None
# where this torch cannot count them, and then no gradient memory is kept.
_SOLE_OWNER = (_storage_owners(torch.empty(1)) if hasattr(torch._C, "_storage_Use_Count")
               else None)
# Gradients smaller than this are left to the allocator: malloc reuses small blocks itself.
_KEEP_MIN_BYTES = 1 << 22


class _GradMemory:
    """The memory of one generator's last gradient, kept from one backward to the next.

    glibc's malloc gives every block above 32 MiB a fresh ``mmap``, so a gradient freed by
    ``zero_grad()`` (``set_to_none=True``, PyTorch's default) comes back as new pages that the
    next backward page-faults in, for ``share="none"`` at 128^3 (0.7 GB of gradients) a
    larger cost than the arithmetic. A kept block is written again only when nothing but
    this holder refers to its memory (the previous ``.grad`` was dropped and nobody kept it or
    a view of it), so a gradient the caller still holds is never overwritten.
    """

    __slots__ = ("block",)

    def __init__(self) -> None:
        self.block: torch.Tensor | None = None

    def out(self, shape: torch.Size, like: torch.Tensor) -> torch.Tensor | None:
        """A free block for a gradient of ``shape``, or None (then the caller allocates)."""
        b = self.block
        if (b is not None and b.shape == shape and b.dtype == like.dtype
                and b.device == like.device and _storage_owners(b) == _SOLE_OWNER):
            self.block = None  # taken until keep(): a concurrent backward allocates its own
            return b
        return None

    def keep(self, g: torch.Tensor) -> torch.Tensor:
        """Remember ``g``'s memory; returns the tensor to hand to autograd (a second handle on
        the same memory, so that ``AccumulateGrad`` can still adopt it without a copy)."""
        self.block = g
        return g.view_as(g)


# One holder per generator (keyed by id, dropped when the generator dies), kept outside the
# module so that neither its state, nor its pickles, nor its copies carry them.
_GRAD_MEMORY: dict[int, _GradMemory] = {}


def _grad_memory(param: torch.Tensor) -> _GradMemory | None:
    # CUDA's caching allocator already reuses freed blocks; a compiled graph plans its own
    # memory (and would guard on every generator's id).
    if (_SOLE_OWNER is None or param.device.type != "cpu" or torch.compiler.is_compiling()
            or param.numel() * param.element_size() < _KEEP_MIN_BYTES):
        return None
    mem = _GRAD_MEMORY.get(id(param))
    if mem is None:
        mem = _GRAD_MEMORY[id(param)] = _GradMemory()
        weakref.finalize(param, _GRAD_MEMORY.pop, id(param), None)
    return mem


class _LeafProduct(torch.autograd.Function):
    """Per-leaf products ``y[g] = x[g] @ A[g].mT`` (or ``x[g] @ A[g]`` with ``transpose``).

    ``x``: ``(G, B, k)``; ``A``: ``(G, n, k)``, or ``(G, k, n)`` with ``transpose`` ->
    ``(G, B, n)``. Used for every untied generator: the leaf blocks ``D`` and bases ``U``, ``V``
    (with ``share="none"`` the bulk of the model: 134 M numbers in ``D`` at 128^3, so every pass
    over them counts) and, with one channel, the couplings and transfers of untied levels.
    On the CPU with a batch of at most :data:`._leaf_kernels.MAX_BATCH` all three products
    (``y``, ``x``'s and ``A``'s gradients) stream each leaf block once in compiled loops
    (:mod:`._leaf_kernels`) instead of ``bmm``'s per-leaf GEMMs. ``A``'s gradient is written
    once, in ``A``'s layout (autograd through ``bmm`` would form it as ``G`` GEMMs of inner
    dimension ``B``, a slow shape for ``B = 1``, in the matmul's own layout, which
    ``AccumulateGrad`` then copies), into the memory of the previous step's gradient where that
    is free (:class:`_GradMemory`, ``mem``). Twice differentiable: under ``create_graph`` the
    backward is made of autograd ops (and keeps no memory).
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, A: torch.Tensor, transpose: bool,
                mem: _GradMemory | None) -> torch.Tensor:
        ctx.save_for_backward(x, A)
        ctx.transpose = transpose
        ctx.mem = mem
        if _kernels.applies(x, A):
            return _kernels.x_a(x, A) if transpose else _kernels.x_at(x, A)
        return torch.bmm(x, A if transpose else A.mT)

    @staticmethod
    def backward(ctx: Any, gy: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, A = ctx.saved_tensors
        gy = gy.contiguous()
        gx = gA = None
        # Under create_graph the backward must itself be differentiable: autograd ops only.
        stream = not torch.is_grad_enabled() and _kernels.applies(gy, A)
        if ctx.needs_input_grad[0]:
            if stream:
                gx = _kernels.x_at(gy, A) if ctx.transpose else _kernels.x_a(gy, A)
            else:
                gx = torch.bmm(gy, A.mT if ctx.transpose else A)
        if ctx.needs_input_grad[1]:
            a, b = (x, gy) if ctx.transpose else (gy, x)  # gA = sum over the batch of a^T b
            mem = None if torch.is_grad_enabled() else ctx.mem
            out = mem.out(A.shape, A) if mem is not None else None
            if stream:
                gA = _kernels.at_b(a, b, out=out)
            elif x.shape[1] == 1:
                gA = torch.mul(a.mT, b, out=out) if out is not None else a.mT * b
            else:
                gA = torch.bmm(a.mT, b, out=out) if out is not None else torch.bmm(a.mT, b)
            if mem is not None:
                gA = mem.keep(gA)
        return gx, gA, None, None


def _leaf_product(x: torch.Tensor, A: torch.Tensor, transpose: bool = False,
                  owner: torch.Tensor | None = None) -> torch.Tensor:
    """``owner``: the parameter that ``A`` views, whose gradient memory may be kept."""
    mem = _grad_memory(owner) if owner is not None and owner.requires_grad else None
    return _LeafProduct.apply(x.contiguous(), A, transpose, mem)


_OLD_ORDER = ("grid_shape", "leaf_size", "rank", "in_channels", "out_channels", "share",
              "untie_top", "dtype", "device")


class HSSOperator(nn.Module):
    r"""Linear HSS layer ``(B, C_in, *grid_shape) -> (B, C_out, *grid_shape)``.

    A hierarchically semi-separable matrix acting on
    fields over a 1-D, 2-D or 3-D grid, applied in ``O(N (m + r))`` work per channel with one
    batched tensor contraction per tree level (never a per-node Python loop and never a
    dense ``N x N`` matrix).

    ``HSSOperator(in_channels=1, out_channels=1, *, grid_shape, leaf_size, rank, share="none",
    untie_top=0, dtype=None, device=None)``: channels first, as ``torch.nn.Conv2d`` and
    neuraloperator's ``SpectralConv``. (The 0.1 order ``HSSOperator(grid_shape, leaf_size, rank,
    in_channels, out_channels, ...)``, recognised by the absence of ``grid_shape=``, still works
    until 0.2 with a ``DeprecationWarning``.)

    Parameters
    ----------
    in_channels, out_channels : int, default 1
        ``C_in`` and ``C_out``.
    grid_shape : int or tuple of int
        Spatial grid ``(n_1, ..., n_d)``, ``d`` in 1..3, row-major. Each side must be the leaf
        side times a power of two.
    leaf_size : int or tuple of int
        Points per leaf ``m`` (the leaf box then comes from k-d bisection: 16 -> (16,) in 1-D,
        (4, 4) in 2-D, 64 -> (4, 4, 4) in 3-D), or the leaf box per axis.
    rank : int or sequence of int
        HSS rank ``r``, or one rank per level ``(r_1, ..., r_L)`` from the children of the
        root (level 1) down to the leaves (level ``L``). ``r_L <= m`` is required.
    share : {"none", "level"}
        ``"none"``: every node has its own generators (the full HSS class).
        ``"level"``: nodes of one level share their generators (translation-tied, the
        parameter count is independent of ``N``); the left and right child of a pair keep
        distinct transfer and coupling matrices, as a convolution kernel distinguishes left
        from right.
    untie_top : int
        Only with ``share="level"``: the top ``untie_top`` levels (levels ``1..untie_top``,
        few large boxes that feel the boundary) get per-node generators while the lower
        levels stay shared. ``untie_top >= L`` equals ``share="none"``.
    dtype, device : optional
        Factory arguments of the parameters.

    Notes
    -----
    **Generators** (``alpha, beta`` siblings, ``p`` their parent).
    Channels enter as in an FNO layer: the row bases ``U, R`` carry the output channel and
    the column bases ``V, W`` the input channel (one nested basis per channel), while the
    couplings ``B`` and the leaf blocks ``D`` mix channels:

    ``A[o, c](I_alpha, I_beta) = U^o_alpha B^{oc}_{alpha beta} (V^c_beta)^T``, and
    ``A[o, c](I_tau, I_tau) = D^{oc}_tau`` at leaves.

    Stored tensors (``G`` = number of nodes or pairs of the level when untied, 1 if shared;
    the axis of length 2 is the sibling position, 0 = left child, 1 = right child):

    ======================  ================================================  ============
    ``D``                   ``(G_L, C_out, C_in, m, m)``                      leaf blocks
    ``U``, ``V``            ``(G_L, C_out | C_in, m, r_L)``                   leaf bases
    ``B[l-1]``, l = 1..L    ``(G_l, 2, C_out, C_in, r_l, r_l)``; ``[:, 0]`` is
                            ``B_{alpha beta}`` (left rows, right columns)
    ``R[l-2]``, ``W[l-2]``  ``(G_l, 2, C_out | C_in, r_l, r_{l-1})``, l = 2..L  transfers
    ======================  ================================================  ============

    Level-1 nodes have no ``R, W``: their parent is the root, whose basis is never used.

    **Parameter count** with ``P = 2**L`` leaves of ``m`` points, ``N = P m``,
    ``C_i = C_in``, ``C_o = C_out``; ``n_l = 2**l`` for an untied level and ``n_l = 2`` for a
    shared one, ``g = P`` for untied leaves and 1 for shared ones::

        g m (C_o C_i m + (C_o + C_i) r_L)
          + sum_{l=1..L} n_l C_o C_i r_l^2
          + sum_{l=2..L} n_l (C_o + C_i) r_l r_{l-1}

    For ``share="none"`` and a uniform rank this is about
    ``N (C_o C_i m + (C_o + C_i) r) + 2 N r^2 (C_o C_i + C_o + C_i) / m = O(N (m + r))``;
    for ``share="level"`` it does not depend on ``N``. :func:`generator_count` evaluates it.

    **Apply**: up-sweep ``xh_tau = V^T x_tau``, ``xh_p = sum W^T xh_child``;
    coupling ``yh_alpha = B_{alpha beta} xh_beta``; down-sweep ``yh_child += R yh_p``; leaves
    ``y_tau = D x_tau + U yh_tau``. Each step is one ``einsum`` over all nodes of a level.

    **Speed**: ``benchmarks/bench_hss_vs_fno.py`` times forward+backward against
    neuraloperator's ``SpectralConv`` at 128^3 (``share="level"`` is on a par with it,
    ``share="none"``, memory bound, many times slower; ratios in ``docs/hss.md``), and
    ``benchmarks/bench_hss_scaling.py`` shows the time growing linearly in ``N``.

    **Ordering.** Inputs and outputs are in row-major grid order; internally the grid is
    permuted once into tree order (:class:`~neuralhss.hss.tree.ClusterTree`). ``to_dense``
    returns the matrix in row-major grid order.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()
        if "grid_shape" not in kwargs:
            # The 0.1 order HSSOperator(grid_shape, leaf_size, rank, in_channels, out_channels,
            # share, untie_top, dtype, device): still accepted until 0.2.
            if len(args) > len(_OLD_ORDER):
                raise TypeError(f"HSSOperator takes at most {len(_OLD_ORDER)} positional "
                                f"arguments in the 0.1 order; got {len(args)}")
            clash = set(_OLD_ORDER[:len(args)]) & set(kwargs)
            if clash:
                raise TypeError(f"HSSOperator got {sorted(clash)} both by position and by name")
            warnings.warn("HSSOperator(grid_shape, leaf_size, rank, in_channels, out_channels, "
                          "...) is deprecated; use HSSOperator(in_channels, out_channels, "
                          "grid_shape=..., leaf_size=..., rank=...), channels first as in torch "
                          "and neuraloperator", DeprecationWarning, stacklevel=2)
            kwargs.update(zip(_OLD_ORDER, args, strict=False))
            args = ()
        self._build(*args, **kwargs)

    def _build(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        *,
        grid_shape: Sequence[int] | int,
        leaf_size: int | Sequence[int],
        rank: int | Sequence[int],
        share: str = "none",
        untie_top: int = 0,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        if in_channels < 1 or out_channels < 1:
            raise ValueError(
                f"in_channels={in_channels}, out_channels={out_channels}: both must be >= 1"
            )
        self.tree: ClusterTree = build_tree(grid_shape, leaf_size)
        L, m, P = self.tree.n_levels, self.tree.leaf_size, self.tree.n_leaves
        self.grid_shape = self.tree.grid_shape
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.share, self.untie_top = share, int(untie_top)
        self.untied = _untied_levels(share, untie_top, L)
        self.ranks: tuple[int, ...] = level_ranks(rank, L, m)
        fk: dict[str, Any] = {"dtype": dtype, "device": device}
        ci, co = self.in_channels, self.out_channels
        g = P if self.untied[L] else 1
        self.D = nn.Parameter(torch.empty(g, co, ci, m, m, **fk))
        self.B = nn.ParameterList()
        self.R = nn.ParameterList()
        self.W = nn.ParameterList()
        if L:
            rl = self.ranks[-1]
            self.U = nn.Parameter(torch.empty(g, co, m, rl, **fk))
            self.V = nn.Parameter(torch.empty(g, ci, m, rl, **fk))
        else:
            self.register_parameter("U", None)
            self.register_parameter("V", None)
        for lev in range(1, L + 1):
            gl = 2 ** (lev - 1) if self.untied[lev] else 1
            r = self.ranks[lev - 1]
            self.B.append(nn.Parameter(torch.empty(gl, 2, co, ci, r, r, **fk)))
            if lev >= 2:
                rp = self.ranks[lev - 2]
                self.R.append(nn.Parameter(torch.empty(gl, 2, co, r, rp, **fk)))
                self.W.append(nn.Parameter(torch.empty(gl, 2, ci, r, rp, **fk)))
        self.reset_parameters()

    # ------------------------------------------------------------------ setup
    @property
    def n_levels(self) -> int:
        return self.tree.n_levels

    @property
    def leaf_size(self) -> int:
        return self.tree.leaf_size

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Random initialisation that keeps every nested basis orthonormal.

        Leaf bases and each stacked transfer ``[R_alpha; R_beta]`` get orthonormal columns,
        so the implicit full bases ``U_tau`` of every level are orthonormal too and products
        of transfers across levels neither explode nor vanish. ``D`` and ``B`` are Gaussian
        with variance ``1 / (C_in * fan_in)``.
        """
        ci = self.in_channels

        def orth(shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
            g = torch.randn(*shape, dtype=torch.float64, generator=generator)
            q, _ = torch.linalg.qr(g if shape[-2] >= shape[-1] else g.mT)
            q = q if shape[-2] >= shape[-1] else q.mT
            return q.to(dtype=like.dtype, device=like.device)

        def gauss(p: torch.Tensor, std: float) -> torch.Tensor:
            t = torch.randn(p.shape, dtype=torch.float64, generator=generator) * std
            return t.to(dtype=p.dtype, device=p.device)

        m = self.leaf_size
        self.D.copy_(gauss(self.D, 1.0 / math.sqrt(ci * m)))
        if self.n_levels == 0:
            return
        self.U.copy_(orth(tuple(self.U.shape), self.U))
        self.V.copy_(orth(tuple(self.V.shape), self.V))
        for lev in range(1, self.n_levels + 1):
            b = self.B[lev - 1]
            b.copy_(gauss(b, 1.0 / math.sqrt(ci * b.shape[-1])))
            if lev >= 2:
                for t in (self.R[lev - 2], self.W[lev - 2]):
                    g_, _, c_, r_, rp_ = t.shape
                    # orthonormal columns of the stacked (2 r_l) x r_{l-1} transfer
                    q = orth((g_, c_, 2 * r_, rp_), t)
                    t.copy_(q.reshape(g_, c_, 2, r_, rp_).permute(0, 2, 1, 3, 4))

    def extra_repr(self) -> str:
        return (
            f"grid_shape={self.grid_shape}, leaf_shape={self.tree.leaf_shape}, "
            f"levels={self.n_levels}, ranks={self.ranks}, in_channels={self.in_channels}, "
            f"out_channels={self.out_channels}, share={self.share!r}, untie_top={self.untie_top}"
        )

    # ------------------------------------------------------------------ apply
    def _check_input(self, x: torch.Tensor) -> None:
        d = self.tree.ndim
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"input must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() != d + 2 or tuple(x.shape[2:]) != self.grid_shape:
            raise ValueError(
                f"input has shape {tuple(x.shape)}; expected (batch, {self.in_channels}, "
                f"*{self.grid_shape}) — add a batch/channel axis (x[None], x[:, None]) or "
                "build the operator for this grid"
            )
        if x.shape[0] == 0:
            raise ValueError("input batch is empty (shape[0] == 0); pass at least one sample")
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f"input has {x.shape[1]} channels but the operator has in_channels="
                f"{self.in_channels}"
            )
        if x.dtype != self.D.dtype:
            raise ValueError(
                f"input dtype {x.dtype} differs from the operator's {self.D.dtype}; convert one "
                "(x.to(op.D.dtype) or op.to(x.dtype))"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the operator.

        Parameters
        ----------
        x : Tensor, shape ``(B, C_in, *grid_shape)``

        Returns
        -------
        Tensor, shape ``(B, C_out, *grid_shape)``
        """
        self._check_input(x)
        # Untied leaves want the leaf index as the bmm batch axis (node-major); shared leaves
        # want it folded into the GEMM rows. Either layout costs the same single copy.
        if self.untied[self.n_levels]:
            yt = self._apply_untied_leaves(self.tree.to_tree(x, node_dim=0))
            return self.tree.to_grid(_contiguous_grad(yt), node_dim=0)
        yt = self._apply_shared_leaves(self.tree.to_tree(x, node_dim=1, order="block"))
        return self.tree.to_grid(_contiguous_grad(yt), node_dim=1, order="block")

    def _apply_shared_leaves(self, xt: torch.Tensor) -> torch.Tensor:
        # xt: (B, P, C_in, m), leaves in block order -> (B, P, C_out, m), block order
        nb, P, ci, m = xt.shape
        co = self.out_channels
        d2 = self.D[0].permute(1, 3, 0, 2).reshape(ci * m, co * m)  # [c, j, o, i] = D[o, c, i, j]
        x2 = xt.reshape(nb * P, ci * m)
        if self.n_levels == 0:
            return (x2 @ d2).reshape(nb, P, co, m)
        # One GEMM gives both the local product and the leaf up-sweep V^T x (V block-diagonal
        # over channels), so the large input is read once.
        v2 = torch.block_diag(*self.V[0].unbind(0)) if ci > 1 else self.V[0, 0]
        z = x2 @ torch.cat([d2, v2], dim=1)
        # Only the small coefficient arrays (r per leaf) are put into tree order.
        xh = z[:, co * m:].reshape(nb, P, ci, -1).transpose(0, 1)
        xh = self.tree.reorder_leaves(xh, 0, "block", "tree")  # (P, B, C_in, r)
        yh = self.tree.reorder_leaves(self._levels(xh), 0, "tree", "block")
        u2 = torch.block_diag(*self.U[0].mT.unbind(0)) if co > 1 else self.U[0, 0].mT
        yh2 = yh.transpose(0, 1).reshape(nb * P, -1)
        return torch.addmm(z[:, : co * m], yh2, u2).reshape(nb, P, co, m)

    def _apply_untied_leaves(self, xt: torch.Tensor) -> torch.Tensor:
        # xt: (P, B, C_in, m) -> (P, B, C_out, m)
        P, nb, ci, m = xt.shape
        co = self.out_channels
        D = self.D.view(P, m, m) if co == ci == 1 else (
            self.D.permute(0, 1, 3, 2, 4).reshape(P, co * m, ci * m))  # rows (o, i), cols (c, j)
        y = _leaf_product(xt.reshape(P, nb, ci * m), D, owner=self.D).view(P, nb, co, m)
        if self.n_levels == 0:
            return y
        # U and V are block diagonal over channels: (leaf, channel) pairs form the bmm batch.
        r = self.V.shape[-1]
        xc = xt.transpose(1, 2).reshape(P * ci, nb, m)
        xh = _leaf_product(xc, self.V.view(P * ci, m, r), transpose=True, owner=self.V)
        yh = self._levels(xh.view(P, ci, nb, r).transpose(1, 2))  # (P, B, C_out, r)
        yu = _leaf_product(yh.transpose(1, 2).reshape(P * co, nb, r), self.U.view(P * co, m, r),
                           owner=self.U)
        return y + yu.view(P, co, nb, m).transpose(1, 2)

    def _levels(self, xh_leaf: torch.Tensor) -> torch.Tensor:
        """Up-sweep, couplings and down-sweep: leaf coefficients ``(P, B, C_in, r_L)`` ->
        ``(P, B, C_out, r_L)``. Node-major layout ``(2**l, B, C, r_l)`` on every level."""
        L, ut = self.n_levels, self.untied
        nb, ci, co = xh_leaf.shape[1], self.in_channels, self.out_channels
        xh: list[torch.Tensor] = [xh_leaf] * (L + 1)
        for lev in range(L, 1, -1):
            xc = xh[lev].reshape(2 ** (lev - 1), 2, nb, ci, -1)
            w = self.W[lev - 2]
            q = xc.shape[0]
            if ut[lev] and ci == 1:  # one matrix per parent: the hand-written product
                x2 = xc.permute(0, 2, 3, 1, 4).reshape(q, nb, -1)
                xh[lev - 1] = _leaf_product(x2, w.view(q, -1, w.shape[-1]), transpose=True,
                                            owner=w).view(q, nb, 1, -1)
            elif ut[lev]:
                xh[lev - 1] = torch.einsum("qsbcr,qscrt->qbct", xc, w)
            else:
                xh[lev - 1] = torch.einsum("qsbcr,scrt->qbct", xc, w[0])
        yh: torch.Tensor | None = None
        for lev in range(1, L + 1):
            # flip swaps siblings so that each node meets its partner's coefficients.
            xs = xh[lev].reshape(2 ** (lev - 1), 2, nb, ci, -1).flip(1)
            b = self.B[lev - 1]
            q = xs.shape[0]
            if ut[lev] and ci == co == 1:
                y = _leaf_product(xs.reshape(2 * q, nb, -1), b.view(2 * q, *b.shape[-2:]),
                                  owner=b).view(q, 2, nb, 1, -1)
            elif ut[lev]:
                y = torch.einsum("qsbcr,qsoctr->qsbot", xs, b)
            else:
                y = torch.einsum("qsbcr,soctr->qsbot", xs, b[0])
            if yh is not None:
                r = self.R[lev - 2]
                if ut[lev] and co == 1:
                    t = r.shape[-2]
                    yr = _leaf_product(yh.reshape(q, nb, -1), r.view(q, 2 * t, -1), owner=r)
                    y = y + yr.view(q, nb, 2, t).transpose(1, 2).unsqueeze(3)
                elif ut[lev]:
                    y = y + torch.einsum("qbou,qsotu->qsbot", yh, r)
                else:
                    y = y + torch.einsum("qbou,sotu->qsbot", yh, r[0])
            yh = y.reshape(2**lev, nb, co, -1)
        return yh

    # ------------------------------------------------------------------ utilities
    def to_dense(self) -> torch.Tensor:
        """Dense matrix ``(C_out, C_in, N, N)`` in row-major grid order.

        ``y[b, o].reshape(-1) = sum_c to_dense()[o, c] @ x[b, c].reshape(-1)``. Costs
        ``O(C_in N^2 (m + r))`` time and ``O(C_out C_in N^2)`` memory: for tests and small
        grids. Differentiable.
        """
        n, ci, co = self.tree.n_points, self.in_channels, self.out_channels
        eye = torch.eye(ci * n, dtype=self.D.dtype, device=self.D.device)
        x = eye.reshape(ci * n, ci, *self.grid_shape)
        y = self.forward(x).reshape(ci, n, co, n)  # [c, j, o, i] = A[o, c, i, j]
        return y.permute(2, 0, 3, 1).contiguous()

    def parameter_count(self) -> int:
        """Deprecated (removed in 0.2): ``neuralhss.models.count_parameters(op)`` counts the
        parameters of any module; :func:`generator_count` gives the count of a configuration."""
        warnings.warn("HSSOperator.parameter_count() is deprecated; use "
                      "neuralhss.models.count_parameters(op)", DeprecationWarning, stacklevel=2)
        return sum(p.numel() for p in self.parameters())

    @classmethod
    def from_dense(
        cls,
        A: Any,
        grid_shape: Sequence[int] | int,
        leaf_size: int | Sequence[int],
        rank: int | Sequence[int] | None = None,
        tol: float | None = None,
    ) -> HSSOperator:
        """Compress a dense matrix; see :func:`from_dense`."""
        return cls._from_generators(dense_generators(A, grid_shape, leaf_size, rank=rank, tol=tol))

    @classmethod
    def from_samples(
        cls,
        X: Any,
        Y: Any,
        leaf_size: int | Sequence[int],
        rank: int | Sequence[int],
        XT: Any = None,
        YT: Any = None,
    ) -> HSSOperator:
        """Recover an HSS operator from pairs; see :func:`from_samples`."""
        return cls._from_generators(sample_generators(X, Y, leaf_size, rank, XT=XT, YT=YT))

    @classmethod
    def _from_generators(cls, g: Generators) -> HSSOperator:
        # A single-leaf grid has no levels, hence no ranks: any rank builds the same operator.
        op = cls(g.in_channels, g.out_channels, grid_shape=g.grid_shape, leaf_size=g.leaf_shape,
                 rank=g.ranks or 1, share="none", dtype=g.dtype, device=g.device)
        with torch.no_grad():
            op.D.copy_(g.D)
            if g.U is not None:
                op.U.copy_(g.U)
                op.V.copy_(g.V)
            for params, values in ((op.B, g.B), (op.R, g.R), (op.W, g.W)):
                for p, v in zip(params, values, strict=True):
                    p.copy_(v)
        if g.info is not None:
            op.compression_info = g.info
        return op


def from_dense(
    A: Any,
    grid_shape: Sequence[int] | int,
    leaf_size: int | Sequence[int],
    rank: int | Sequence[int] | None = None,
    tol: float | None = None,
) -> HSSOperator:
    """Compress a dense matrix into an :class:`HSSOperator` with nested bases.

    Bottom-up over the levels: a node's row basis is the dominant left singular subspace of
    its off-diagonal block row (for a non-leaf node, of its children's already compressed
    block rows, which is what makes the bases nested); column bases likewise from the block
    columns; couplings ``B = U_alpha^T A(I_alpha, I_beta) V_beta`` and leaf blocks ``D``
    follow. All nodes of a level go through one batched SVD. Cost ``O(N^2 m)`` per level
    (the input is dense anyway).

    Parameters
    ----------
    A : array or Tensor, shape ``(N, N)`` or ``(C_out, C_in, N, N)``
        Rows and columns in row-major grid order (``y.ravel() = A @ x.ravel()``). Must be
        finite and real.
    grid_shape : int or tuple of int
        Grid with ``prod(grid_shape) == N``.
    leaf_size : int or tuple of int
        As in :class:`HSSOperator`.
    rank : int or sequence of int, optional
        Rank per level (fixed, or the cap when ``tol`` is given). A level whose candidate
        subspace is smaller gets the smaller rank.
    tol : float, optional
        Target relative Frobenius error ``||A - A_hss||_F <= tol ||A||_F``. Each of the
        ``2L`` truncations (row and column side of every level) may discard at most
        ``tol^2 ||A||_F^2 / (2L)`` of squared singular values summed over the level's nodes;
        the nested orthogonal projections make these errors add up in squares, so the
        bound holds. The smallest rank per level meeting it is used.

    Returns
    -------
    HSSOperator
        With ``share="none"``, the dtype and device of ``A``. ``op.ranks`` holds the ranks
        used (level 1 .. L) and ``op.compression_info`` a dict with ``ranks``,
        ``row_ranks``/``col_ranks`` (what each side needed), ``error_bound`` (relative
        Frobenius bound from the discarded singular values) and ``leaf_shape``.

    Raises
    ------
    ValueError
        On non-finite or mismatched input, leaf sizes that do not tile the grid, a leaf rank
        above the leaf size, or neither ``rank`` nor ``tol`` given.
    """
    return HSSOperator.from_dense(A, grid_shape, leaf_size, rank=rank, tol=tol)


def from_samples(
    X: Any,
    Y: Any,
    leaf_size: int | Sequence[int],
    rank: int | Sequence[int],
    XT: Any = None,
    YT: Any = None,
    grid_shape: Sequence[int] | None = None,
) -> HSSOperator:
    """Recover a one-channel HSS operator from input-output pairs (black-box compression).

    Given ``Y[i] = A X[i]`` and ``YT[i] = A^T XT[i]`` for random inputs, this reconstructs
    ``A`` exactly (to round-off) when ``A`` is HSS of rank ``<= rank`` — from a number of
    pairs that depends on ``leaf_size`` and ``rank`` only, not on ``N``.

    Method (Martinsson 2011; Levitt & Martinsson 2022, telescoping form), level by level from
    the leaves, all nodes of a level batched:

    1. For a node ``tau`` with local sample rows ``Omega_tau`` (k x s), take an orthonormal
       basis ``P_tau`` of the null space of ``Omega_tau`` (needs ``s > k``). Then
       ``Y_tau P_tau = A(I_tau, I_tau^c) Omega_{tau^c} P_tau``: the diagonal block cancels and
       what is left is a random sketch of the off-diagonal block row. Its dominant
       ``r``-dimensional range is the row basis ``U_tau``; ``V_tau`` likewise from the
       transpose pairs.
    2. ``(I - U U^T) D = (I - U U^T) Y_tau Omega_tau^+`` and
       ``D (I - V V^T) = (Z_tau Psi_tau^+)^T (I - V V^T)``, which fixes the diagonal block
       except for ``U^T D V``; that remainder is handed to the next level (telescoping:
       ``A = D_tele + U A' V^T``).
    3. The next level sees the compressed samples ``U^T (Y - D_tele Omega)`` of ``A'``
       against the inputs ``V^T Omega`` (and the transposed analogues), siblings merged,
       node size ``2 r``. At the root the remaining ``2 r_1 x 2 r_1`` matrix is solved for.

    Finally the telescoping factors are converted top-down into the standard generators
    ``D, U, V, R, W, B`` of :class:`HSSOperator` (diagonal remainders are pushed to the
    children). Cost ``O(N s (m + r))``.

    **Identifiability.** A leaf block row of ``A`` is ``[D_tau, U_tau (...)]``: ``m^2``
    numbers for ``D_tau`` plus a rank-``r`` remainder, so ``m + r`` generic pairs determine it
    (``m`` to separate ``D_tau`` from the rest, ``r`` to see the range); one level up the
    nodes have ``2 r`` coordinates, needing ``3 r``. Hence

        n_pairs >= max(m + r_L, max_l (2 r_{l+1} + r_l), 2 r_1),

    independent of ``N``. A dense least-squares fit of ``A`` needs ``N`` pairs.

    Parameters
    ----------
    X, Y : array or Tensor, shape ``(n_pairs, *grid_shape)``
        Inputs and outputs ``Y[i] = A X[i]``, batch first like model inputs (a channel axis
        of 1 is accepted when ``grid_shape`` is given). Inputs must be rich at the leaf scale
        (e.g. white noise): the local blocks ``Omega_tau`` must have full row rank; smooth
        inputs make them nearly rank-deficient and the recovery ill-conditioned.
    leaf_size : int or tuple of int
        As in :class:`HSSOperator`.
    rank : int or sequence of int
        HSS rank (per level, level 1 .. L).
    XT, YT : optional
        Transpose pairs ``YT[i] = A^T XT[i]``. If both are omitted, ``A`` is assumed
        self-adjoint (``A^T = A``, e.g. a Poisson solution operator) and ``X, Y`` serve as
        transpose pairs too.
    grid_shape : tuple of int, optional
        Defaults to ``X.shape[1:]``.

    Returns
    -------
    HSSOperator
        ``share="none"``, one channel, dtype and device of ``X``, ``ranks`` as given.

    Raises
    ------
    ValueError
        Mismatched shapes, too few pairs (the message states the minimum), non-finite data,
        only one of ``XT``/``YT`` given, or an invalid leaf size / rank.
    """
    return HSSOperator._from_generators(
        sample_generators(X, Y, leaf_size, rank, XT=XT, YT=YT, grid_shape=grid_shape))
