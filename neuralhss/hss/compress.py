"""Building HSS operators from matrices or from input-output pairs.

``from_dense`` compresses a dense matrix by SVDs of off-diagonal block rows and columns,
bottom-up, with nested bases. ``from_samples`` recovers an HSS operator from products
``Y = A X`` (and ``Y^T = A^T X^T`` pairs) without ever seeing ``A`` (randomized black-box
compression in the telescoping form of Levitt & Martinsson). Every step is batched over all
nodes of a level.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .operator import HSSOperator, _level_ranks
from .tree import ClusterTree, build_tree

__all__ = ["from_dense", "from_samples"]


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


# ---------------------------------------------------------------------------- from_dense


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
    cap = _level_ranks(rank, L, m) if (rank is not None and L) else None
    out_dtype, device = At.dtype, At.device
    co, ci = At.shape[0], At.shape[1]
    if L == 0:  # the grid is a single leaf: the operator is just D
        op = HSSOperator(tree.grid_shape, tree.leaf_shape, 1, ci, co, dtype=out_dtype,
                         device=device)
        with torch.no_grad():
            op.D.copy_(At[None])
        op.compression_info = {"ranks": [], "row_ranks": [], "col_ranks": [],
                               "error_bound": 0.0, "leaf_shape": list(tree.leaf_shape)}
        return op

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

    op = HSSOperator(tree.grid_shape, tree.leaf_shape, ranks, ci, co, share="none",
                     dtype=out_dtype, device=device)
    a6 = a.reshape(co, ci, P, m, P, m)
    d = torch.diagonal(a6, dim1=2, dim2=4).permute(4, 0, 1, 2, 3)  # (P, Co, Ci, m, m)
    with torch.no_grad():
        op.D.copy_(d)
        op.U.copy_(u_bases[L - 1].permute(1, 0, 2, 3))
        op.V.copy_(v_bases[L - 1].permute(1, 0, 2, 3))
        for lev in range(1, L + 1):
            op.B[lev - 1].copy_(b_list[lev - 1])
            if lev >= 2:
                # transfers of level lev come from the level lev-1 SVD: (X, n/2, 2 r, r')
                for dst, src, x in ((op.R[lev - 2], u_bases[lev - 2], co),
                                    (op.W[lev - 2], v_bases[lev - 2], ci)):
                    q = src.shape[1]
                    t = src.reshape(x, q, 2, ranks[lev - 1], ranks[lev - 2])
                    dst.copy_(t.permute(1, 2, 0, 3, 4))
    op.compression_info = {
        "ranks": ranks,
        "row_ranks": row_need,
        "col_ranks": col_need,
        "error_bound": (err2 / norm2) ** 0.5 if norm2 > 0 else 0.0,
        "leaf_shape": list(tree.leaf_shape),
    }
    return op


# ---------------------------------------------------------------------------- from_samples


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
    ranks = _level_ranks(rank, L, m)
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

    op = HSSOperator(gs, tree.leaf_shape, ranks, 1, 1, share="none", dtype=out_dtype,
                     device=device)
    with torch.no_grad():
        op.D.copy_(d_leaf[:, None, None])
        op.U.copy_(tu[L][:, None])
        op.V.copy_(tv[L][:, None])
        for lev in range(1, L + 1):
            op.B[lev - 1].copy_(b_list[lev - 1][:, :, None, None])
            if lev >= 2:
                r, rp = ranks[lev - 1], ranks[lev - 2]
                q = tu[lev - 1].shape[0]
                op.R[lev - 2].copy_(tu[lev - 1].reshape(q, 2, r, rp)[:, :, None])
                op.W[lev - 2].copy_(tv[lev - 1].reshape(q, 2, r, rp)[:, :, None])
    return op
