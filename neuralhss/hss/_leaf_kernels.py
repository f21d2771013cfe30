"""Per-leaf batched products for few right-hand sides on the CPU (numba-compiled kernels).

With ``share="none"`` every leaf has its own dense block, so a forward+backward pass is three
sweeps over the leaf blocks (``y = x A^T``, ``gx = gy A``, ``gA = gy^T x``) that do two flops per
number read: memory-bound. ``torch.bmm`` runs each leaf as a tiny GEMM and pays a GEMM's
fixed cost per leaf; these kernels stream each leaf block once, leaf-parallel over numba's
threads (as many as torch's), and write into preallocated outputs (what that gains:
``benchmarks/bench_hss_vs_fno.py``, candidate ``hss_none_bmm``).

Shapes: ``x`` ``(G, B, k)``, ``A`` ``(G, n, k)`` or ``(G, k, n)``; all C-contiguous, one float
dtype. Every leaf is independent, so results do not depend on the thread count.
"""

from __future__ import annotations

import os

import numba
import numpy as np
import torch
from numba import njit, prange

# Beyond a few right-hand sides each leaf product has enough arithmetic for bmm's blocked GEMM.
MAX_BATCH = 4


@njit(cache=True, inline="always")
def _x_a_leaf(x, a, out, g):  # pragma: no cover - numba
    # out[g, b, :] = sum_i x[g, b, i] * a[g, i, :]   (rows of a streamed, vectorised over them)
    for b in range(x.shape[1]):
        acc = np.zeros(a.shape[2], a.dtype)
        for i in range(a.shape[1]):
            s = x[g, b, i]
            for j in range(a.shape[2]):
                acc[j] += s * a[g, i, j]
        out[g, b, :] = acc


# reassoc lets LLVM vectorise the dot product (a sum in another order; still deterministic)
@njit(fastmath={"reassoc"}, cache=True, inline="always")
def _x_at_leaf(x, a, out, g):  # pragma: no cover - numba
    # out[g, b, i] = sum_j x[g, b, j] * a[g, i, j]
    for b in range(x.shape[1]):
        for i in range(a.shape[1]):
            s = a.dtype.type(0)
            for j in range(a.shape[2]):
                s += a[g, i, j] * x[g, b, j]
            out[g, b, i] = s


@njit(cache=True, inline="always")
def _at_b_leaf(p, q, out, g):  # pragma: no cover - numba
    # out[g, i, j] = sum_b p[g, b, i] * q[g, b, j]
    for i in range(p.shape[2]):
        s = p[g, 0, i]
        for j in range(q.shape[2]):
            out[g, i, j] = s * q[g, 0, j]
        for b in range(1, p.shape[1]):
            s = p[g, b, i]
            for j in range(q.shape[2]):
                out[g, i, j] += s * q[g, b, j]


# Each product twice: leaf-parallel over numba's threads, and serial (one thread, or a forked
# child, where GNU OpenMP's thread pool must not be used). Distinct functions, so that numba's
# on-disk cache (keyed by function name) never hands one the other's machine code.
@njit(parallel=True, cache=True)
def _x_a_par(x, a, out):  # pragma: no cover - numba
    for g in prange(a.shape[0]):
        _x_a_leaf(x, a, out, g)


@njit(cache=True)
def _x_a_ser(x, a, out):  # pragma: no cover - numba
    for g in range(a.shape[0]):
        _x_a_leaf(x, a, out, g)


@njit(parallel=True, fastmath={"reassoc"}, cache=True)
def _x_at_par(x, a, out):  # pragma: no cover - numba
    for g in prange(a.shape[0]):
        _x_at_leaf(x, a, out, g)


@njit(fastmath={"reassoc"}, cache=True)
def _x_at_ser(x, a, out):  # pragma: no cover - numba
    for g in range(a.shape[0]):
        _x_at_leaf(x, a, out, g)


@njit(parallel=True, cache=True)
def _at_b_par(p, q, out):  # pragma: no cover - numba
    for g in prange(p.shape[0]):
        _at_b_leaf(p, q, out, g)


@njit(cache=True)
def _at_b_ser(p, q, out):  # pragma: no cover - numba
    for g in range(p.shape[0]):
        _at_b_leaf(p, q, out, g)


_FORKED = [False]
os.register_at_fork(after_in_child=lambda: _FORKED.__setitem__(0, True))


_PLAIN = (torch.Tensor, torch.nn.Parameter)


def applies(x: torch.Tensor, A: torch.Tensor) -> bool:
    """Whether the kernels serve ``x`` and ``A`` (CPU, float32/64, 1 <= batch <= MAX_BATCH)."""
    # Plain tensors only: a subclass (or a wrapper of torch.func) must see its own ops.
    return (type(x) in _PLAIN and type(A) in _PLAIN
            and x.device.type == "cpu" and A.device.type == "cpu" and x.dtype == A.dtype
            and A.dtype in (torch.float32, torch.float64) and 1 <= x.shape[1] <= MAX_BATCH
            and not torch.compiler.is_compiling())


def _run(kernels, out: torch.Tensor, *args: torch.Tensor) -> torch.Tensor:
    threads = min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)
    if threads > 1 and not _FORKED[0]:
        numba.set_num_threads(threads)
        kernel = kernels[0]
    else:
        kernel = kernels[1]
    kernel(*(t.detach().contiguous().numpy() for t in args), out.numpy())
    return out


def x_a(x: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
    """``x @ A`` per leaf: ``(G, B, k)``, ``(G, k, n)`` -> ``(G, B, n)``."""
    out = torch.empty(x.shape[0], x.shape[1], A.shape[2], dtype=A.dtype)
    return _run((_x_a_par, _x_a_ser), out, x, A)


def x_at(x: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
    """``x @ A^T`` per leaf: ``(G, B, k)``, ``(G, n, k)`` -> ``(G, B, n)``."""
    out = torch.empty(x.shape[0], x.shape[1], A.shape[1], dtype=A.dtype)
    return _run((_x_at_par, _x_at_ser), out, x, A)


def at_b(p: torch.Tensor, q: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """``p^T @ q`` per leaf (a sum over the batch): ``(G, B, n)``, ``(G, B, k)`` -> ``(G, n, k)``,
    into ``out`` where given (C-contiguous, the right shape and dtype)."""
    if out is None:
        out = torch.empty(p.shape[0], p.shape[2], q.shape[2], dtype=p.dtype)
    return _run((_at_b_par, _at_b_ser), out, p, q)
