"""The compression algorithms behind :func:`~neuralhss.hss.operator.from_dense` and
:func:`~neuralhss.hss.operator.from_samples`.

``dense_generators`` compresses a dense matrix by SVDs of off-diagonal block rows and columns,
bottom-up, with nested bases. ``sample_generators`` recovers the generators from products
``Y = A X`` (and ``Y^T = A^T X^T`` pairs) without ever seeing ``A`` (randomized black-box
compression in the telescoping form of Levitt & Martinsson). Every step is batched over all
nodes of a level. Both return :class:`Generators`, plain tensors in the storage layout of
:class:`~neuralhss.hss.operator.HSSOperator`, which the operator module loads: this module
does not import it, so the two depend one way (operator -> compress).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ._ranks import level_ranks
from .tree import ClusterTree, build_tree

__all__ = ["Generators", "dense_generators", "sample_generators"]


@dataclass
class Generators:
    """HSS generators in :class:`~neuralhss.hss.operator.HSSOperator`'s layout, ``share="none"``.

    ``D, U, V, B, R, W`` have the shapes of the operator's parameters of the same names
    (``U, V`` are ``None`` for a single-leaf grid); ``dtype`` and ``device`` are those of the
    operator to build (the tensors may be computed in higher precision). ``info`` becomes
    ``op.compression_info`` when given.
    """

    grid_shape: tuple[int, ...]
    leaf_shape: tuple[int, ...]
    ranks: tuple[int, ...]
    in_channels: int
    out_channels: int
    dtype: torch.dtype
    device: torch.device
    D: torch.Tensor
    U: torch.Tensor | None = None
    V: torch.Tensor | None = None
    B: list[torch.Tensor] = field(default_factory=list)
    R: list[torch.Tensor] = field(default_factory=list)
    W: list[torch.Tensor] = field(default_factory=list)
    info: dict[str, Any] | None = None


def _as_tensor(a: Any, name: str) -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        t = a.detach()
    elif isinstance(a, np.ndarray):
        t = torch.from_numpy(np.ascontiguousarray(a))
    else:
        raise ValueError(f"{name} must be a numpy array or torch tensor, got {type(a).__name__}")
    if t.is_complex():
        raise ValueError(f"{name} is complex; HSS operators here are real — pass real data")
    if not t.is_floating_point():
        t = t.to(torch.float64)
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contains NaN or Inf entries; clean the data before compressing")
    return t


# ---------------------------------------------------------------------- dense_generators


def _zero_own_block(c: torch.Tensor, n: int) -> torch.Tensor:
    """``c`` (X, n, k, Y, N): zero the columns of each node's own block (a copy)."""
    x, _, k, y, N = c.shape
    z = c.reshape(x, n, k, y, n, N // n).clone()
    idx = torch.arange(n, device=c.device)
    z[:, idx, :, :, idx, :] = 0
    return z.reshape(x, n, k, y * N)


def _min_rank(s: torch.Tensor, budget2: float) -> int:
    """Smallest k with sum over nodes of sum_{i >= k} s_i^2 <= budget2."""
    tail = (s**2).sum(dim=tuple(range(s.dim() - 1)))  # per index, summed over nodes
    tails = torch.flip(torch.cumsum(torch.flip(tail, [0]), 0), [0])  # tails[k] = sum_{i>=k}
    tails = torch.cat([tails, tails.new_zeros(1)])
    ok = (tails <= budget2).nonzero()
    return int(ok[0]) if len(ok) else len(tail)


def _tail2(s: torch.Tensor, k: int) -> float:
    return float((s[..., k:] ** 2).sum())


def dense_generators(
    A: Any,
    grid_shape: Sequence[int] | int,
    leaf_size: int | Sequence[int],
    rank: int | Sequence[int] | None = None,
    tol: float | None = None,
) -> Generators:
    """The generators of ``A`` compressed with nested bases; the method, arguments and errors
    are those of :func:`neuralhss.hss.operator.from_dense`."""
    tree = build_tree(grid_shape, leaf_size)
    At = _as_tensor(A, "A")
    if At.dim() == 2:
        At = At[None, None]
    N, L, m, P = tree.n_points, tree.n_levels, tree.leaf_size, tree.n_leaves
    if At.dim() != 4 or At.shape[-1] != N or At.shape[-2] != N:
        raise ValueError(
            f"A has shape {tuple(At.shape)}; expected (N, N) or (C_out, C_in, N, N) with "
            f"N = prod(grid_shape) = {N} for grid_shape {tree.grid_shape}"
        )
    if rank is None and tol is None:
        raise ValueError("give rank=..., tol=..., or both (tol then picks ranks up to rank)")
    if tol is not None and not tol > 0:
        raise ValueError(f"tol={tol} must be positive")
    cap = level_ranks(rank, L, m) if (rank is not None and L) else None
    out_dtype, device = At.dtype, At.device
    co, ci = At.shape[0], At.shape[1]
    if L == 0:  # the grid is a single leaf: the operator is just D
        return Generators(tree.grid_shape, tree.leaf_shape, (), ci, co, out_dtype, device,
                          D=At[None],
                          info={"ranks": [], "row_ranks": [], "col_ranks": [],
                                "error_bound": 0.0, "leaf_shape": list(tree.leaf_shape)})

    a = At.to(torch.float64)
    perm = tree.permutation().to(device)
    a = a[..., perm, :][..., perm]  # tree order, (Co, Ci, N, N)
    norm2 = float((a**2).sum())
    budget2 = (tol**2) * norm2 / (2 * L) if tol is not None else None

    # c_row: compressed block rows U_full^T A(I_tau, :), shape (Co, n, k, Ci, N).
    c_row = a.reshape(co, ci, P, m, N).permute(0, 2, 3, 1, 4)
    c_col = a.transpose(-1, -2).reshape(co, ci, P, m, N).permute(1, 2, 3, 0, 4)
    ranks: list[int] = [0] * L
    row_need: list[int] = [0] * L
    col_need: list[int] = [0] * L
    u_bases: list[torch.Tensor] = [None] * L  # type: ignore[list-item]
    v_bases: list[torch.Tensor] = [None] * L  # type: ignore[list-item]
    b_list: list[torch.Tensor] = [None] * L  # type: ignore[list-item]
    err2 = 0.0
    v_full: torch.Tensor | None = None  # (Ci, n, size, r) full column bases
    for lev in range(L, 0, -1):
        n = 2**lev
        uf, su, _ = torch.linalg.svd(_zero_own_block(c_row, n), full_matrices=False)
        vf, sv, _ = torch.linalg.svd(_zero_own_block(c_col, n), full_matrices=False)
        avail = min(uf.shape[-1], vf.shape[-1])
        want = cap[lev - 1] if cap is not None else avail
        if budget2 is not None:
            row_need[lev - 1] = _min_rank(su, budget2)
            col_need[lev - 1] = _min_rank(sv, budget2)
            r = max(row_need[lev - 1], col_need[lev - 1], 1)
            r = min(r, want, avail)
        else:
            r = min(want, avail)
            row_need[lev - 1] = col_need[lev - 1] = r
        ranks[lev - 1] = r
        err2 += _tail2(su, r) + _tail2(sv, r)
        u, v = uf[..., :r], vf[..., :r]  # (X, n, k, r)
        u_bases[lev - 1], v_bases[lev - 1] = u, v
        c_row = torch.einsum("xnkr,xnkyc->xnryc", u, c_row)
        c_col = torch.einsum("xnkr,xnkyc->xnryc", v, c_col)
        # Full (uncompressed) column bases of this level, needed for the couplings.
        if lev == L:
            v_full = v
        else:
            k2 = v.shape[2] // 2
            tv = v.reshape(ci, n, 2, k2, r)
            vc = v_full.reshape(ci, n, 2, v_full.shape[2], k2)
            v_full = torch.einsum("cqsar,cqsrt->cqsat", vc, tv).reshape(ci, n, -1, r)
        # Couplings B[q, s] = U_s^T A(I_s, I_{1-s}) V_{1-s} for the pair q.
        sz = N // n
        c8 = c_row.reshape(co, n // 2, 2, r, ci, n // 2, 2, sz)
        dg = torch.diagonal(c8, dim1=1, dim2=5)  # (Co, 2, r, Ci, 2, sz, Q)
        e = torch.stack([dg[:, 0, :, :, 1], dg[:, 1, :, :, 0]], dim=1)  # (Co, 2, r, Ci, sz, Q)
        vp = v_full.reshape(ci, n // 2, 2, sz, r).flip(2)
        b_list[lev - 1] = torch.einsum("ostcaq,cqsau->qsoctu", e, vp)
        c_row = c_row.reshape(co, n // 2, 2 * r, ci, N)
        c_col = c_col.reshape(ci, n // 2, 2 * r, co, N)

    a6 = a.reshape(co, ci, P, m, P, m)
    d = torch.diagonal(a6, dim1=2, dim2=4).permute(4, 0, 1, 2, 3)  # (P, Co, Ci, m, m)

    def transfers(bases: list[torch.Tensor], x: int) -> list[torch.Tensor]:
        # transfers of level lev come from the level lev-1 SVD: (X, n/2, 2 r, r')
        return [bases[lev - 2].reshape(x, -1, 2, ranks[lev - 1], ranks[lev - 2])
                .permute(1, 2, 0, 3, 4) for lev in range(2, L + 1)]

    info = {
        "ranks": ranks,
        "row_ranks": row_need,
        "col_ranks": col_need,
        "error_bound": (err2 / norm2) ** 0.5 if norm2 > 0 else 0.0,
        "leaf_shape": list(tree.leaf_shape),
    }
    return Generators(tree.grid_shape, tree.leaf_shape, tuple(ranks), ci, co, out_dtype, device,
                      D=d, U=u_bases[L - 1].permute(1, 0, 2, 3),
                      V=v_bases[L - 1].permute(1, 0, 2, 3), B=b_list,
                      R=transfers(u_bases, co), W=transfers(v_bases, ci), info=info)


# --------------------------------------------------------------------- sample_generators


def _pairs(x: Any, name: str, grid_shape: tuple[int, ...] | None) -> torch.Tensor:
    t = _as_tensor(x, name)
    if grid_shape is not None:
        d = len(grid_shape)
        if t.dim() == d + 2 and t.shape[1] == 1:
            t = t[:, 0]
        if t.dim() != d + 1 or tuple(t.shape[1:]) != tuple(grid_shape):
            raise ValueError(
                f"{name} has shape {tuple(t.shape)}; expected (n_pairs, *{tuple(grid_shape)}) "
                "(or with a channel axis of 1)"
            )
    elif t.dim() < 2:
        raise ValueError(f"{name} has shape {tuple(t.shape)}; expected (n_pairs, *grid_shape)")
    return t


def _qr_null_pinv(om: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For batched ``om`` (n, k, s), k <= s: orthonormal null-space basis (n, s, s - k),
    and ``Q1`` (n, s, k), ``R1`` (n, k, k) with ``om = R1^T Q1^T`` (so om^+ = Q1 R1^{-T})."""
    k = om.shape[1]
    q, r = torch.linalg.qr(om.mT, mode="complete")
    return q[..., k:], q[..., :k], r[..., :k, :]


def _right_solve_pinv(y: torch.Tensor, q1: torch.Tensor, r1: torch.Tensor) -> torch.Tensor:
    """``y om^+ = y Q1 R1^{-T}`` for batched ``y`` (n, a, s)."""
    yq = y @ q1  # (n, a, k)
    # X R1^T = yq  <=>  R1 X^T = yq^T
    return torch.linalg.solve_triangular(r1, yq.mT, upper=True).mT


def sample_generators(
    X: Any,
    Y: Any,
    leaf_size: int | Sequence[int],
    rank: int | Sequence[int],
    XT: Any = None,
    YT: Any = None,
    grid_shape: Sequence[int] | None = None,
) -> Generators:
    """The generators recovered from input-output pairs; the method, arguments and errors are
    those of :func:`neuralhss.hss.operator.from_samples`."""
    gs = tuple(grid_shape) if grid_shape is not None else None
    x = _pairs(X, "X", gs)
    if gs is None:
        gs = tuple(x.shape[1:])
    y = _pairs(Y, "Y", gs)
    if (XT is None) != (YT is None):
        raise ValueError("give both XT and YT (transpose pairs) or neither (self-adjoint A)")
    xt = _pairs(XT, "XT", gs) if XT is not None else x
    yt = _pairs(YT, "YT", gs) if YT is not None else y
    if y.shape[0] != x.shape[0] or yt.shape[0] != xt.shape[0]:
        raise ValueError(
            f"X and Y must hold the same number of pairs (got {x.shape[0]} and {y.shape[0]}; "
            f"XT/YT: {xt.shape[0]} and {yt.shape[0]})"
        )
    tree: ClusterTree = build_tree(gs, leaf_size)
    L, m = tree.n_levels, tree.leaf_size
    if L == 0:
        raise ValueError(
            f"grid_shape {gs} is a single leaf of {m} points; use a smaller leaf_size"
        )
    ranks = level_ranks(rank, L, m)
    need = max([m + ranks[-1], 2 * ranks[0]]
               + [2 * ranks[lev] + ranks[lev - 1] for lev in range(1, L)])
    s = min(x.shape[0], xt.shape[0])
    if s < need:
        raise ValueError(
            f"{s} pairs are too few for leaf_size {m} and ranks {ranks}: black-box recovery "
            f"needs n_pairs >= max(m + r, 3 r) = {need} (use a few more for robustness)"
        )
    out_dtype, device = x.dtype, x.device

    def tree_cols(t: torch.Tensor) -> torch.Tensor:  # (s, *grid) -> (P, m, s)
        return tree.to_tree(t.to(torch.float64)).permute(1, 2, 0).contiguous()

    om, yy, ps, zz = tree_cols(x), tree_cols(y), tree_cols(xt), tree_cols(yt)
    d_tele: list[torch.Tensor] = [None] * (L + 1)  # type: ignore[list-item]
    tu: list[torch.Tensor] = [None] * (L + 1)  # type: ignore[list-item]
    tv: list[torch.Tensor] = [None] * (L + 1)  # type: ignore[list-item]
    for lev in range(L, 0, -1):
        r = ranks[lev - 1]
        k = om.shape[1]
        null_o, q1o, r1o = _qr_null_pinv(om)
        null_p, q1p, r1p = _qr_null_pinv(ps)
        u = torch.linalg.svd(yy @ null_o, full_matrices=False)[0][..., :r]
        v = torch.linalg.svd(zz @ null_p, full_matrices=False)[0][..., :r]
        dy = _right_solve_pinv(yy, q1o, r1o)  # = D + U(...)
        dz = _right_solve_pinv(zz, q1p, r1p)  # = D^T + V(...)
        eye = torch.eye(k, dtype=om.dtype, device=om.device)
        pu, pv = u @ u.mT, v @ v.mT
        dt = (eye - pu) @ dy + pu @ dz.mT @ (eye - pv)
        d_tele[lev], tu[lev], tv[lev] = dt, u, v
        yy = u.mT @ (yy - dt @ om)
        zz = v.mT @ (zz - dt.mT @ ps)
        om, ps = v.mT @ om, u.mT @ ps
        n2 = om.shape[0] // 2
        om, yy, ps, zz = (t.reshape(n2, 2 * r, -1) for t in (om, yy, ps, zz))
    _, q1o, r1o = _qr_null_pinv(om)
    _, q1p, r1p = _qr_null_pinv(ps)
    # Both estimates are exact for exact data; averaging halves the noise of either.
    m_cur = 0.5 * (_right_solve_pinv(yy, q1o, r1o) + _right_solve_pinv(zz, q1p, r1p).mT)

    # Telescoping -> standard generators, top-down: split each node's coarse matrix into the
    # sibling couplings (off-diagonal blocks) and the children's diagonal remainders.
    b_list: list[torch.Tensor] = []
    for lev in range(1, L + 1):
        r = ranks[lev - 1]
        b_list.append(torch.stack([m_cur[:, :r, r:], m_cur[:, r:, :r]], dim=1))
        s_diag = torch.stack([m_cur[:, :r, :r], m_cur[:, r:, r:]], dim=1).reshape(-1, r, r)
        if lev < L:
            m_cur = d_tele[lev] + tu[lev] @ s_diag @ tv[lev].mT
        else:
            d_leaf = d_tele[L] + tu[L] @ s_diag @ tv[L].mT

    def transfers(bases: list[torch.Tensor]) -> list[torch.Tensor]:
        return [bases[lev - 1].reshape(-1, 2, ranks[lev - 1], ranks[lev - 2])[:, :, None]
                for lev in range(2, L + 1)]

    return Generators(tree.grid_shape, tree.leaf_shape, ranks, 1, 1, out_dtype, device,
                      D=d_leaf[:, None, None], U=tu[L][:, None], V=tv[L][:, None],
                      B=[b[:, :, None, None] for b in b_list], R=transfers(tu), W=transfers(tv))
