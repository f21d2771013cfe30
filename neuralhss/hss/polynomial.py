"""Fixed polynomial nested bases, which make an HSS operator linear in its free generators.

On every node of the cluster tree, take the polynomials of total degree ``<= degree`` in the
node's local coordinates (mapped to [-1, 1] per axis), orthonormalised over the node's grid
points. Restricted to a child box such a polynomial is again one of the child's, so the bases
are exactly nested: ``U_parent = [U_left R_left; U_right R_right]`` with
``R_child = U_child^T U_parent[child rows]``. With ``U = V`` and the transfers fixed, the
operator ``y = A x`` is linear in the leaf blocks ``D`` and the couplings ``B``: fitting it to
input-output pairs is a convex least-squares problem (:func:`fit_polynomial_hss`).

Why it suits elliptic problems: a Green's function is smooth away from its diagonal, so its
interactions between separated parts of sibling boxes are well approximated by low-degree
polynomials on each box; what the far field cannot express (the singular part at the shared
edge) is left to the lower levels and the leaf blocks ``D``.
"""

from __future__ import annotations

import math
from itertools import product

import numpy as np
import torch

from ._lstsq import lbfgs_least_squares
from .operator import HSSOperator
from .tree import ClusterTree


def _exponents(dim: int, degree: int) -> list[tuple[int, ...]]:
    return [e for e in product(range(degree + 1), repeat=dim) if sum(e) <= degree]


def polynomial_rank(dim: int, degree: int) -> int:
    """Number of polynomials of total degree ``<= degree`` in ``dim`` variables."""
    return math.comb(degree + dim, dim)


def polynomial_bases(tree: ClusterTree, degree: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Orthonormal nested polynomial bases of a cluster tree.

    Returns
    -------
    leaf : ndarray, shape ``(P, m, r)``
        Leaf bases (rows in each leaf's tree order).
    transfers : list of ndarray, shapes ``(2**(l-1), 2, r, r)`` for levels ``l = 2..L``
        ``transfers[l-2][q, s]`` is ``R`` of child ``s`` (0 left, 1 right) of pair ``q``.
    """
    d, L = tree.ndim, tree.n_levels
    r = polynomial_rank(d, degree)
    if r > tree.leaf_size:
        raise ValueError(f"degree {degree} needs rank {r} > leaf size {tree.leaf_size}; "
                         "lower the degree or use larger leaves")
    perm = tree.permutation().numpy()
    coords = np.stack(np.unravel_index(perm, tree.grid_shape), axis=-1).astype(np.float64)
    exps = _exponents(d, degree)
    Q: dict[int, np.ndarray] = {}
    for lev in range(1, L + 1):
        c = coords.reshape(2**lev, -1, d)
        lo, hi = c.min(axis=1, keepdims=True), c.max(axis=1, keepdims=True)
        t = np.where(hi > lo, 2 * (c - lo) / np.where(hi > lo, hi - lo, 1) - 1, 0.0)
        # Legendre polynomials per axis keep the Vandermonde matrix well conditioned.
        leg = [np.polynomial.legendre.legvander(t[..., k], degree) for k in range(d)]
        V = np.stack([np.prod([leg[k][..., e[k]] for k in range(d)], axis=0) for e in exps], -1)
        Q[lev] = np.linalg.qr(V)[0]
    transfers = []
    for lev in range(2, L + 1):
        parent = Q[lev - 1].reshape(2 ** (lev - 1), 2, -1, r)  # rows split into the two children
        child = Q[lev].reshape(2 ** (lev - 1), 2, -1, r)
        transfers.append(np.einsum("qsir,qsit->qsrt", child, parent))
    return Q[L], transfers


def with_polynomial_bases(op: HSSOperator, degree: int) -> HSSOperator:
    """Set ``U = V`` and ``R = W`` of a one-channel-per-basis operator to polynomial bases,
    freeze them, and zero ``D`` and ``B``. Works for any sharing (the bases of all nodes of a
    level are equal, so shared levels take node 0's)."""
    tree = op.tree
    r = polynomial_rank(tree.ndim, degree)
    if any(rk != r for rk in op.ranks):
        raise ValueError(f"the operator has ranks {op.ranks}; degree {degree} needs rank {r} "
                         "on every level")
    leaf, transfers = polynomial_bases(tree, degree)
    with torch.no_grad():
        for name in ("U", "V"):
            p = getattr(op, name)
            src = torch.as_tensor(leaf if p.shape[0] > 1 else leaf[:1], dtype=p.dtype)
            p.copy_(src[:, None].expand(p.shape))
            p.requires_grad_(False)
        for lev in range(2, tree.n_levels + 1):
            t = transfers[lev - 2]
            for p in (op.R[lev - 2], op.W[lev - 2]):
                src = torch.as_tensor(t if p.shape[0] > 1 else t[:1], dtype=p.dtype)
                p.copy_(src[:, :, None].expand(p.shape))
                p.requires_grad_(False)
        op.D.zero_()
        for b in op.B:
            b.zero_()
    return op


def fit_polynomial_hss(x: torch.Tensor, y: torch.Tensor, leaf_size: int | tuple[int, ...],
                       degree: int, share: str = "level", untie_top: int = 0,
                       ridge: float = 0.0, max_iter: int = 500) -> HSSOperator:
    """Least-squares fit of an HSS operator with fixed polynomial bases to pairs ``y = A x``.

    Parameters
    ----------
    x, y : Tensor, shape ``(n, *grid_shape)``
        Input-output pairs (one channel), batch first.
    leaf_size, share, untie_top
        As for :class:`HSSOperator`.
    degree : int
        Total polynomial degree of the far-field bases (rank ``C(degree + d, d)``).
    ridge : float
        Weight of ``||D||^2 + ||B||^2`` relative to the mean squared data (0: the minimum of
        the data misfit reached from zero, which favours small generators).
    max_iter : int
        L-BFGS iterations (the problem is a convex quadratic).

    Returns
    -------
    HSSOperator
        float64, with ``U, V, R, W`` frozen and ``D, B`` fitted.
    """
    if x.shape != y.shape or x.ndim < 2:
        raise ValueError(f"x {tuple(x.shape)} and y {tuple(y.shape)} must both be (n, *grid)")
    grid = tuple(x.shape[1:])
    r = polynomial_rank(len(grid), degree)
    op = HSSOperator(grid_shape=grid, leaf_size=leaf_size, rank=r, share=share, untie_top=untie_top,
                     dtype=torch.float64)
    with_polynomial_bases(op, degree)
    X = x.to(torch.float64)[:, None]
    Y = y.to(torch.float64)[:, None]
    # torch's default evaluation budget (1.25 per iteration): the hss_poly tables and their
    # fixed iteration count were measured with it
    lbfgs_least_squares(op, [op.D, *op.B], X, Y, ridge=ridge, max_iter=max_iter,
                        tolerance_grad=1e-14, tolerance_change=1e-16, evals_per_iter=1.25)
    return op
