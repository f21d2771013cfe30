import numpy as np
import pytest
import torch

from neuralhss.hss import HSSOperator, build_tree
from neuralhss.hss.polynomial import (
    fit_polynomial_hss,
    polynomial_bases,
    polynomial_rank,
    with_polynomial_bases,
)


@pytest.mark.parametrize("grid, leaf, degree", [((64,), 16, 3), ((16, 16), 16, 2), ((8, 8, 8), 64, 2)])
def test_bases_are_orthonormal_and_exactly_nested(grid, leaf, degree):
    tree = build_tree(grid, leaf)
    U, transfers = polynomial_bases(tree, degree)
    r = polynomial_rank(len(grid), degree)
    assert U.shape == (tree.n_leaves, tree.leaf_size, r)
    np.testing.assert_allclose(np.einsum("pmr,pms->prs", U, U), np.broadcast_to(np.eye(r), (len(U), r, r)),
                               atol=1e-12)
    # The implicit basis of every node, built up from the leaves with the transfers, spans the
    # polynomials on the node: rebuild level L-1 and check its columns are orthonormal and nested.
    full = U
    for t in reversed(transfers):
        q = t.shape[0]
        kids = full.reshape(q, 2, -1, r)
        full = np.einsum("qsir,qsrt->qsit", kids, t).reshape(q, -1, r)
        np.testing.assert_allclose(np.einsum("pir,pis->prs", full, full),
                                   np.broadcast_to(np.eye(r), (q, r, r)), atol=1e-10)


def test_fit_recovers_an_operator_with_polynomial_bases():
    torch.manual_seed(0)
    grid, degree = (16, 16), 2
    truth = HSSOperator(grid_shape=grid, leaf_size=16, rank=polynomial_rank(2, degree), share="none",
                        dtype=torch.float64)
    with_polynomial_bases(truth, degree)
    with torch.no_grad():
        truth.D.normal_()
        for b in truth.B:
            b.normal_()
    x = torch.randn(40, *grid, dtype=torch.float64)
    with torch.no_grad():
        y = truth(x[:, None])[:, 0]
    fitted = fit_polynomial_hss(x, y, 16, degree, share="none", max_iter=2000)
    xt = torch.randn(5, 1, *grid, dtype=torch.float64)
    with torch.no_grad():
        err = (fitted(xt) - truth(xt)).norm() / truth(xt).norm()
    assert err < 1e-4  # L-BFGS tolerance, not the model, limits it (1.3e-5 measured)
    assert not fitted.U.requires_grad and fitted.D.requires_grad


def test_bad_degree_and_shapes():
    with pytest.raises(ValueError, match="rank 21 > leaf size 16"):
        polynomial_bases(build_tree((16, 16), 16), 5)
    with pytest.raises(ValueError, match="must both be"):
        fit_polynomial_hss(torch.zeros(2, 8, 8), torch.zeros(2, 8, 4), 16, 1)
