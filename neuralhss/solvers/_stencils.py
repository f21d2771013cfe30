"""Shared private helpers of the finite-difference solvers.

Everything here is an implementation detail of :mod:`neuralhss.solvers`: argument
validation with one-line ``ValueError`` messages (``lengths`` and ``bc`` by the functions of
neuralhss.grid that ``Grid`` uses, re-exported here), the grid spacing of the package's grid
convention, Kronecker-sum assembly of the (2d+1)-point negative Laplacian, and
the NumPy/torch round trip that lets every solver return the kind of array it was given.
"""

from __future__ import annotations

import functools
import math
import os
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from .._checks import check_number
from ..grid import axis_bcs, axis_coords, axis_lengths, axis_spacing

# Below this many elements a threaded FFT costs more in thread start-up than it saves.
_THREADED_FFT_MIN_SIZE = 1 << 15


def _is_torch_tensor(x: Any) -> bool:
    # Only look for torch if the caller already imported it: the solvers must not pay
    # torch's import time (or need it installed) when they are used with NumPy alone.
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def to_numpy(x: Any, name: str) -> tuple[np.ndarray, Callable[[np.ndarray], Any] | None]:
    """Return ``x`` as a float64 NumPy array and a function that converts a result back.

    The converter is ``None`` for NumPy (and array-like) input, whose results are returned
    as float64 NumPy arrays; for a torch tensor it returns a tensor with the input's device
    and floating dtype (float64 for integer tensors).
    """
    if _is_torch_tensor(x):
        import torch

        if x.is_complex():
            raise ValueError(f"{name} must be real; got a complex tensor ({x.dtype}).")
        device = x.device
        dtype = x.dtype if x.is_floating_point() else torch.float64
        arr = x.detach().to(device="cpu", dtype=torch.float64).numpy()

        def back(u: np.ndarray) -> Any:
            return torch.from_numpy(np.ascontiguousarray(u)).to(device=device, dtype=dtype)

        return arr, back
    arr = np.asarray(x)
    if np.iscomplexobj(arr):
        raise ValueError(f"{name} must be real; got complex dtype {arr.dtype}.")
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be a real numeric array; got dtype {arr.dtype}.")
    return arr.astype(np.float64, copy=False), None


def input_eps(x: Any) -> float:
    """Machine epsilon of the precision the caller's data was stored in (float64 if exact)."""
    dtype = getattr(x, "dtype", None)
    if _is_torch_tensor(x):
        import torch

        if x.is_floating_point():
            return float(torch.finfo(dtype).eps)
        return float(np.finfo(np.float64).eps)
    if dtype is not None and np.dtype(dtype).kind == "f":
        return float(np.finfo(dtype).eps)
    return float(np.finfo(np.float64).eps)


def check_dim(ndim: int, dim: Any, name: str, max_dim: int = 3) -> int:
    """Number of trailing spatial axes of an array with ``ndim`` axes (default: all of them)."""
    if dim is None:
        dim = ndim
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
        raise ValueError(f"dim must be an integer 1..{max_dim} (number of trailing spatial axes); "
                         f"got {dim!r}.")
    dim = int(dim)
    if not 1 <= dim <= max_dim:
        raise ValueError(f"dim must be 1..{max_dim} (number of trailing spatial axes); got "
                         f"dim={dim} for {name} with {ndim} axes.")
    if dim > ndim:
        raise ValueError(f"dim={dim} exceeds the number of axes of {name} ({ndim}); pass an array "
                         f"with {dim} trailing spatial axes or lower dim.")
    return dim


def check_spatial_shape(shape: Sequence[int], name: str) -> tuple[int, ...]:
    """Validate the spatial shape: at least one node per axis."""
    shape = tuple(int(n) for n in shape)
    if any(n < 1 for n in shape):
        raise ValueError(f"{name} has spatial shape {shape}; every spatial axis needs at least "
                         f"one node.")
    return shape


def check_finite(arr: np.ndarray, name: str) -> None:
    """Raise if ``arr`` holds NaN or Inf."""
    # A finite sum proves that every entry is finite (NaN and Inf propagate) at the cost of
    # one pass without a temporary; only when it is not finite is the exact test needed.
    with np.errstate(over="ignore", invalid="ignore"):
        total = arr.sum()
    if np.isfinite(total):
        return
    bad = ~np.isfinite(arr)
    if bad.any():
        raise ValueError(f"{name} contains {int(bad.sum())} NaN/Inf value(s); replace them with "
                         f"finite numbers.")


# The grid's own validation and spacing (one implementation for Grid and every solver).
normalize_lengths = axis_lengths
normalize_bc = axis_bcs
spacing = axis_spacing
node_coords = axis_coords


def call_shape(n_positional: int, old_order: Sequence[str] = (),
               renamed: Mapping[str, str] | None = None,
               until: str = "0.2") -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Keep a solver's old calling convention working, with a DeprecationWarning, until ``until``.

    Every solver's ``solve`` takes its fields and physical parameters positionally and its
    numerical options as keywords only (docs/design.md §2.2). Before issue 15 some options
    could be passed by position and Maxwell called its absorbing layer ``width``/``strength``.

    Parameters
    ----------
    n_positional : int
        Number of positional parameters of the new signature.
    old_order : sequence of str
        Names of the parameters that followed them positionally in the old signature, in
        order (old names); extra positional arguments are bound to these.
    renamed : mapping old name -> new name, optional
        Keyword arguments renamed in the new signature.
    """
    renamed = dict(renamed or {})

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        name = f"{fn.__module__.rsplit('.', 1)[-1]}.{fn.__name__}"

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if len(args) > n_positional:
                extra = args[n_positional:]
                if len(extra) > len(old_order):
                    raise TypeError(f"{name}() takes at most {n_positional + len(old_order)} "
                                    f"positional arguments ({len(args)} given).")
                names = list(old_order[:len(extra)])
                warnings.warn(f"{name}: passing {', '.join(names)} by position is deprecated and "
                              f"stops working in {until}; pass "
                              f"{', '.join(renamed.get(n, n) + '=' for n in names)} as keywords.",
                              DeprecationWarning, stacklevel=2)
                for key, value in zip(names, extra, strict=True):
                    key = renamed.get(key, key)
                    if key in kwargs:
                        raise TypeError(f"{name}() got multiple values for argument {key!r}.")
                    kwargs[key] = value
                args = args[:n_positional]
            for old, new in renamed.items():
                if old in kwargs:
                    if new in kwargs:
                        raise TypeError(f"{name}() got both {old}= and its new name {new}=; "
                                        f"pass {new}= only.")
                    warnings.warn(f"{name}: {old}= is deprecated and stops working in {until}; "
                                  f"use {new}=.", DeprecationWarning, stacklevel=2)
                    kwargs[new] = kwargs.pop(old)
            return fn(*args, **kwargs)

        return wrapper

    return decorate


def fft_workers(size: int, workers: int | None, min_size: int = _THREADED_FFT_MIN_SIZE) -> int:
    """Threads for ``scipy.fft``: all cores for arrays of at least ``min_size`` numbers unless the
    caller chose."""
    if workers is not None:
        if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers == 0:
            raise ValueError(f"workers must be a non-zero integer (-1 = all cores) or None; got "
                             f"{workers!r}.")
        return int(workers)
    if size < min_size:
        return 1
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
               else (os.cpu_count() or 1))


def second_difference(n: int, h: float, bc: str) -> sp.csr_matrix:
    """The 1-D negative second difference (1/h²)·tridiag(−1, 2, −1), circulant if periodic."""
    main = np.full(n, 2.0)
    off = np.full(n - 1, -1.0)
    rows = [np.arange(n), np.arange(n - 1), np.arange(1, n)]
    cols = [np.arange(n), np.arange(1, n), np.arange(n - 1)]
    vals = [main, off, off]
    if bc == "periodic" and n > 1:
        # Wrap-around couplings; for n = 2 they land on the off-diagonals and add up, which is
        # what the periodic stencil means there (both neighbours are the same node).
        rows += [np.array([0, n - 1])]
        cols += [np.array([n - 1, 0])]
        vals += [np.array([-1.0, -1.0])]
    elif bc == "periodic":
        vals[0] = np.zeros(1)  # n = 1: the node is its own neighbour on both sides
    m = sp.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                      shape=(n, n)).tocsr()
    m.sum_duplicates()
    m.eliminate_zeros()
    return m * (1.0 / h**2)


def kron_sum_laplacian(shape: Sequence[int], lengths: Sequence[float],
                       bcs: Sequence[str]) -> sp.csr_matrix:
    """Sparse −Δ_h on a tensor grid, row-major (last axis fastest): Σ_k I ⊗ … ⊗ T_k ⊗ … ⊗ I."""
    shape = tuple(shape)
    total = sp.csr_matrix((math.prod(shape), math.prod(shape)))
    for k, (n, length, bc) in enumerate(zip(shape, lengths, bcs, strict=True)):
        before = math.prod(shape[:k])
        after = math.prod(shape[k + 1:])
        term = second_difference(n, spacing(n, length, bc), bc)
        term = sp.kron(sp.identity(before, format="csr"), term, format="csr")
        term = sp.kron(term, sp.identity(after, format="csr"), format="csr")
        total = total + term
    total = sp.csr_matrix(total)
    total.sum_duplicates()
    total.sort_indices()
    return total


def snapshot_times(t_final: float, n_snapshots: int) -> np.ndarray:
    """Times at which time-dependent solvers return snapshots: t_k = k·T/n_snapshots, k = 1..n.

    The initial state (t = 0) is the solver's input and is not repeated in the output, so the
    last snapshot is always the state at ``t_final``.
    """
    if isinstance(n_snapshots, bool) or not isinstance(n_snapshots, (int, np.integer)) or n_snapshots < 1:
        raise ValueError(f"n_snapshots must be an integer >= 1; got {n_snapshots!r}.")
    t_final = check_number(t_final, "t_final")
    return t_final * np.arange(1, int(n_snapshots) + 1) / int(n_snapshots)


#: Most time steps one call of a time-dependent solver takes: 10^8 steps is days of computing
#: even on small grids, so a request beyond it is refused rather than started.
MAX_STEPS = 10**8


def steps_between(times: np.ndarray, dt_max: float) -> tuple[float, np.ndarray]:
    """Uniform step ``dt <= dt_max`` that lands exactly on every snapshot time.

    Returns ``(dt, steps)`` where ``steps[k]`` is the number of steps from ``t_{k-1}`` to
    ``t_k`` (t_0 = 0). The snapshots are evenly spaced, so one step size serves all intervals.
    """
    dt_max = check_number(dt_max, "dt_max", hint=" (the largest time step)")
    interval = float(times[0])
    ratio = interval / dt_max
    total = ratio * len(times)
    if not math.isfinite(total) or total > MAX_STEPS:
        raise ValueError(f"t_final = {float(times[-1]):.4g} with time steps of at most {dt_max:.4g} "
                         f"needs about {total:.3g} steps, more than MAX_STEPS = {MAX_STEPS:.0e} "
                         "(a run that would not end); use a shorter t_final or a larger stable "
                         "step (coarser grid)")
    per = max(1, math.ceil(ratio - 1e-9))
    return interval / per, np.full(len(times), per, dtype=np.int64)


def solve_per_coefficient(coef: np.ndarray, rhs: np.ndarray, dim: int,
                          prepare: Callable[[np.ndarray], Any],
                          solve: Callable[[Any, np.ndarray], np.ndarray],
                          names: tuple[str, str], dtype: Any = np.float64) -> np.ndarray:
    """Solve a batch of linear problems, preparing each distinct coefficient field once.

    Parameters
    ----------
    coef, rhs : ndarray, shapes ``(*coef_batch, *grid)`` and ``(*rhs_batch, *grid)``
        Coefficient fields and right-hand sides; the batch axes broadcast.
    dim : int
        Number of trailing grid axes.
    prepare : callable
        ``prepare(coef_field)`` assembles and factorises (or builds a preconditioner) for one
        coefficient field. It is called once per run of batch entries that share the
        coefficient, so a single coefficient with many right-hand sides is factorised once.
    solve : callable
        ``solve(prepared, rhs_flat)`` returns the flat solution for one right-hand side.
    names : (str, str)
        The names of ``coef`` and ``rhs`` in the error message.
    dtype : numpy dtype, default float64
        The solutions' dtype.

    Returns
    -------
    ndarray, shape ``(*broadcast batch, *grid)``

    Raises
    ------
    ValueError
        If the batch axes do not broadcast.
    """
    shape = coef.shape[coef.ndim - dim:]
    c_batch, r_batch = coef.shape[:coef.ndim - dim], rhs.shape[:rhs.ndim - dim]
    try:
        batch = np.broadcast_shapes(c_batch, r_batch)
    except ValueError:
        raise ValueError(f"batch axes of {names[0]} {c_batch} and {names[1]} {r_batch} do not "
                         f"broadcast; give them equal leading shapes (or none for one of "
                         f"them).") from None
    n = math.prod(shape)
    c_flat = coef.reshape((-1,) + shape)
    c_index = np.broadcast_to(np.arange(c_flat.shape[0]).reshape(c_batch), batch).ravel()
    r_full = np.broadcast_to(rhs, batch + shape).reshape((-1, n))
    u = np.empty((len(c_index), n), dtype=dtype)
    prepared, current = None, -1
    for s, ci in enumerate(c_index):
        if ci != current:
            prepared, current = prepare(c_flat[ci]), ci
        u[s] = solve(prepared, r_full[s])
    return u.reshape(batch + shape)
