"""The streaming per-leaf products of ``neuralhss.hss._leaf_kernels`` against ``torch.bmm``."""

from __future__ import annotations

import multiprocessing as mp

import pytest
import torch

from neuralhss.hss import HSSOperator
from neuralhss.hss import _leaf_kernels as K


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("batch", [1, 2, K.MAX_BATCH])
@pytest.mark.parametrize("threads", [1, 2])
def test_kernels_match_bmm(dtype, batch, threads):
    torch.manual_seed(batch)
    G, n, k = 37, 12, 5
    x, gy = torch.randn(G, batch, k, dtype=dtype), torch.randn(G, batch, n, dtype=dtype)
    A = torch.randn(G, n, k, dtype=dtype)
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        assert K.applies(x, A)
        tol = {"rtol": 1e-5, "atol": 1e-5} if dtype == torch.float32 else {}
        torch.testing.assert_close(K.x_at(x, A), torch.bmm(x, A.mT), **tol)
        torch.testing.assert_close(K.x_a(gy, A), torch.bmm(gy, A), **tol)
        out = torch.full((G, n, k), float("nan"), dtype=dtype)
        assert K.at_b(gy, x, out=out) is out
        torch.testing.assert_close(out, torch.bmm(gy.mT, x), **tol)
        # every leaf is computed alone: the thread count never changes a bit of the result
        torch.set_num_threads(1)
        one = K.x_at(x, A), K.x_a(gy, A), K.at_b(gy, x)
        torch.set_num_threads(2)
        two = K.x_at(x, A), K.x_a(gy, A), K.at_b(gy, x)
        assert all(torch.equal(a, b) for a, b in zip(one, two, strict=True))
    finally:
        torch.set_num_threads(saved)


def test_kernels_decline_what_they_do_not_serve():
    x, A = torch.randn(3, 1, 4), torch.randn(3, 5, 4)
    assert K.applies(x, A)
    assert not K.applies(torch.randn(3, K.MAX_BATCH + 1, 4), A)  # bmm's GEMMs pay off
    assert not K.applies(x.half(), A.half())
    assert not K.applies(x.double(), A)
    assert not K.applies(torch.randn(3, 0, 4), A)  # the kernels read a batch's first row


def test_wide_batches_use_bmm_with_the_same_result():
    # Past MAX_BATCH the operator falls back to bmm; both paths give the same gradients.
    torch.manual_seed(4)
    op = HSSOperator(1, 1, grid_shape=(8, 16), leaf_size=8, rank=2, share="none",
                     dtype=torch.float64)
    x = torch.randn(K.MAX_BATCH + 2, 1, 8, 16, dtype=torch.float64)

    def grads(xs):
        op.zero_grad(set_to_none=True)
        op(xs).square().sum().backward()
        return [p.grad.clone() for p in op.parameters()]

    wide = grads(x)  # bmm
    parts = [grads(x[i:i + 2]) for i in range(0, len(x), 2)]  # kernels, 2 at a time
    for w, *ps in zip(wide, *parts, strict=True):
        torch.testing.assert_close(w, sum(ps))


def _child_apply(conn, op, x):
    conn.send(op(x).detach().numpy())  # numpy: torch would pass tensors by shared memory
    conn.close()


def test_forked_child_after_parallel_use():
    # GNU OpenMP's pool must not be used in a child forked after the parent used it; the
    # kernels fall back to their serial versions there (without this, the child aborts).
    torch.manual_seed(5)
    op = HSSOperator(1, 1, grid_shape=(8, 16), leaf_size=8, rank=2, share="none")
    x = torch.randn(1, 1, 8, 16)
    saved = torch.get_num_threads()
    torch.set_num_threads(2)
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    p = ctx.Process(target=_child_apply, args=(child, op, x))
    try:
        expected = op(x).detach()
        p.start()
        assert parent.poll(60), "forked child gave no result"
        got = parent.recv()
        p.join(30)
    finally:
        torch.set_num_threads(saved)
        if p.is_alive():
            p.kill()
    assert p.exitcode == 0
    assert torch.equal(torch.from_numpy(got), expected)
