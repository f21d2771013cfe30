"""2-D Helmholtz equation −Δu − k0² ε_r(x) u = f with a perfectly matched layer (PML).

The frequency-domain wave equation of TM-polarised time-harmonic Maxwell (u = E_z, time
dependence e^{−iωt}, k0 = ω/c0), on a box with radiating (outgoing) behaviour modelled by a
stretched-coordinate PML.

Grid
----
u, ε_r and f live on the interior nodes of the package grid (neuralhss.grid): axis k of length
L_k with n_k unknowns uses x_i = i·h_k, i = 1..n_k, h_k = L_k/(n_k+1), with u = 0 on the box
boundary (not stored). Arrays are ``(..., n_x, n_y)`` (axis 0 of a field is x, the package's
axis convention); ``lengths`` = (L_x, L_y) follows the axis order.

PML
---
The layer lies *inside* the box: on axis k it covers the ``pml`` nodes next to each wall, the
strips 0 < x < δ_k and L_k − δ_k < x < L_k with δ_k = (pml+1)·h_k, and u = 0 on the wall
behind it. The physical region is the remaining n_k − 2·pml nodes per axis, δ_k ≤ x ≤ L_k − δ_k
(``SolveInfo.physical`` gives the index slices). Every derivative is stretched,
∂_k → (1/s_k) ∂_k, with::

    s_k(x) = 1 + i σ_k(x)/k0,   σ_k(x) = σ_max,k · (d/δ_k)³,   σ_max,k = 4·A/δ_k,

d the depth into the layer (0 in the physical region) and A = ``pml_strength`` = ∫σ dx, the
layer's nominal one-way attenuation: a plane wave in a medium ε_r meeting the layer at angle θ
from its normal returns with amplitude exp(−2·A·sqrt(ε_r)·cos θ) in the continuous limit
(1e-7 for the default A = 8 at normal incidence). The decay per length does not depend on k0,
so the layer works for any frequency; on the grid the grading itself reflects a little, which
is governed by the layer width in cells more than by the points per wavelength. Evanescent
waves are not damped by a real-frequency stretch, so sources should sit outside the layer.

Discretisation
--------------
Multiplying the stretched equation by s_0 s_1 gives the complex-symmetric form::

    −∂_0((s_1/s_0) ∂_0 u) − ∂_1((s_0/s_1) ∂_1 u) − k0² ε_r s_0 s_1 u = s_0 s_1 f,

discretised by the 5-point stencil with 1/s_k at the half-nodes (cell faces) between nodes
and s_k at the nodes; without a layer (σ = 0) it is the standard 5-point Helmholtz operator,
second-order accurate. The sparse complex system is solved by SuperLU (``splu``); with one
ε_r for a batch of sources the factorisation is computed once and reused.

Validated accuracy (``tests/test_helmholtz.py``):

* second order: observed orders 1.99–2.00 on a manufactured solution with variable (real, and
  lossy) ε_r without a layer, and 2.00–2.02 for a manufactured solution of the stretched
  equation inside a layer of fixed physical width;
* a unit point source in a homogeneous medium matches (i/4)·H₀⁽¹⁾(k0 r) in the annulus
  λ ≤ r ≤ 2λ to 3.3 % (relative L2) at 20 points per wavelength, 2.1 % at 25 and 1.4 % at 30.
  The error is the 5-point stencil's phase error, about (k0 h)²/24 (1/24 to 1/48 depending on
  direction) per radian travelled, so it grows linearly with distance: a 2 % error one to two
  wavelengths from the source needs ≳ 26 points per wavelength;
* the default PML (16 nodes, A = 8) reflects 4.3e-6 of the outgoing field (20 points per
  wavelength; compared with the same source in a box 100 nodes wider on every side).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as sla

from .._checks import check_number
from . import _stencils as st

__all__ = ["SolveInfo", "solve", "operator", "point_source", "stretch"]

#: Polynomial degree of the PML conductivity profile σ ∝ (depth/δ)^p.
PML_ORDER = 3

#: Default PML width in nodes per wall.
DEFAULT_PML = 16

#: Default nominal one-way attenuation A = ∫σ dx of the layer (continuous reflection e^{−2A}).
DEFAULT_PML_STRENGTH = 8.0


@dataclasses.dataclass(frozen=True)
class SolveInfo:
    """What a Helmholtz solve did.

    Attributes
    ----------
    physical : tuple of two slices
        Index slices of the physical region (outside the PML) on the two spatial axes:
        ``u[..., info.physical[0], info.physical[1]]``.
    residual : float
        Relative residual ‖b − S u‖₂/‖b‖₂ of the solved (symmetric-form) system, worst over a
        batch (0 when f = 0).
    factorizations : int
        Number of sparse LU factorisations computed (one per distinct ε_r in the batch).
    seconds : float
        Wall time of the whole call.
    """

    physical: tuple[slice, slice]
    residual: float
    factorizations: int
    seconds: float


def _to_numpy_complex(x: Any, name: str) -> tuple[np.ndarray, Callable[[np.ndarray], Any] | None]:
    """Like ``_stencils.to_numpy`` but keeps complex data (complex128); the converter returns a
    complex tensor (complex64 for 32-bit input, complex128 otherwise) on the input's device."""
    if st._is_torch_tensor(x):
        import torch

        device = x.device
        single = x.dtype in (torch.float32, torch.float16, torch.bfloat16, torch.complex64)
        ctype = torch.complex64 if single else torch.complex128
        if x.is_complex():
            arr = x.detach().to(device="cpu", dtype=torch.complex128).numpy()
        else:
            arr = x.detach().to(device="cpu", dtype=torch.float64).numpy()

        def back(u: np.ndarray) -> Any:
            return torch.from_numpy(np.ascontiguousarray(u)).to(device=device, dtype=ctype)

        return arr, back
    arr = np.asarray(x)
    if arr.dtype.kind not in "biufc":
        raise ValueError(f"{name} must be a numeric array; got dtype {arr.dtype}.")
    if arr.dtype.kind == "c":
        return arr.astype(np.complex128, copy=False), None
    return arr.astype(np.float64, copy=False), None


def _check_k0(k0: Any) -> float:
    return check_number(k0, "k0", hint=" (the free-space wavenumber ω/c0)")


def _check_resolved(k: float, eps: np.ndarray, shape: Sequence[int],
                    lens: Sequence[float]) -> None:
    """Refuse a wave the grid cannot carry: fewer than 2 nodes per wavelength in the medium
    (k0·sqrt(max|ε_r|)·h > π) is aliasing, not a solution."""
    h = max(L / (n + 1) for L, n in zip(lens, shape, strict=True))
    kh = k * math.sqrt(float(np.abs(eps).max())) * h
    if not kh <= math.pi:
        raise ValueError(f"k0 = {k:.4g} gives fewer than 2 grid nodes per wavelength (k0·sqrt(max "
                         f"|eps_r|)·h = {kh:.3g} > π); use a finer grid or a smaller k0 (about 10 "
                         "nodes per wavelength, k0·h ≈ 0.6, for a few per cent accuracy).")


def _check_pml(pml: Any, shape: Sequence[int]) -> tuple[int, int]:
    values = [pml, pml] if np.ndim(pml) == 0 else list(pml) if isinstance(pml, (list, tuple)) \
        else None
    if values is None or len(values) != 2 or not all(
            isinstance(p, (int, np.integer)) and not isinstance(p, bool) and p >= 0 for p in values):
        raise ValueError(f"pml must be a non-negative integer or a pair of them (layer width in "
                         f"nodes per wall, per axis); got {pml!r}.")
    out = (int(values[0]), int(values[1]))
    for k, (p, n) in enumerate(zip(out, shape, strict=True)):
        if n - 2 * p < 1:
            raise ValueError(f"pml={p} on axis {k} leaves no physical region on {n} nodes "
                             f"(needs 2·pml < n); use a finer grid or pml <= {(n - 1) // 2}.")
    return out


def _check_strength(pml_strength: Any) -> float:
    return check_number(pml_strength, "pml_strength",
                        hint=f" (nominal attenuation ∫σ dx, default {DEFAULT_PML_STRENGTH})")


def _check_eps(eps: np.ndarray) -> None:
    st.check_finite(eps, "eps_r")
    if eps.size == 0:
        return
    if np.iscomplexobj(eps):
        if not (eps.real.min() > 0):
            raise ValueError(f"eps_r must have a strictly positive real part (min "
                             f"{eps.real.min():.3g}); pass a physical relative permittivity.")
        if eps.imag.min() < 0:
            raise ValueError(f"eps_r must have Im(eps_r) >= 0 (losses, e^(-iωt) convention; min "
                             f"{eps.imag.min():.3g}); conjugate it if it uses e^(+iωt).")
    elif not (eps.min() > 0):
        raise ValueError(f"eps_r must be strictly positive everywhere (min {eps.min():.3g}); "
                         f"pass a physical relative permittivity.")


def stretch(n: int, length: float, k0: float, pml: int,
            pml_strength: float = DEFAULT_PML_STRENGTH) -> tuple[np.ndarray, np.ndarray]:
    """PML stretching factors s(x) = 1 + iσ(x)/k0 of one axis.

    Parameters
    ----------
    n, length : int, float
        Nodes and length of the axis (nodes x_i = i·L/(n+1), i = 1..n).
    k0 : float
        Free-space wavenumber.
    pml : int
        Layer width in nodes next to each wall (0: no layer, s ≡ 1).
    pml_strength : float
        Nominal attenuation A = ∫σ dx over the layer.

    Returns
    -------
    s_node : complex ndarray, shape (n,)
        s at the nodes x_i.
    s_face : complex ndarray, shape (n+1,)
        s at the half-nodes x_{i+½} = (i+½)·h, i = 0..n (the cell faces, walls' faces included).
    """
    h = st.spacing(n, length, "dirichlet")
    x_node = st.node_coords(n, length, "dirichlet")
    x_face = (np.arange(n + 1) + 0.5) * h
    if pml == 0:
        return np.ones(n, complex), np.ones(n + 1, complex)
    delta = (pml + 1) * h
    sigma_max = (PML_ORDER + 1) * pml_strength / delta

    def s(x: np.ndarray) -> np.ndarray:
        depth = np.maximum(np.maximum(delta - x, x - (length - delta)), 0.0) / delta
        return 1.0 + 1j * (sigma_max / k0) * depth**PML_ORDER

    return s(x_node), s(x_face)


def _tridiag(w_face: np.ndarray, h: float) -> sp.csr_matrix:
    """1-D stretched negative second difference D^T diag(w_face) D / h² (w at the n+1 faces)."""
    main = (w_face[:-1] + w_face[1:]) / h**2
    off = -w_face[1:-1] / h**2
    return sp.diags([off, main, off], [-1, 0, 1], format="csr")


def _assemble(eps: np.ndarray, k0: float, lengths: Sequence[float], pml: Sequence[int],
              strength: float) -> tuple[sp.csr_matrix, np.ndarray]:
    """Complex-symmetric matrix S and the node factor s_0·s_1 (flattened) for one ε_r."""
    n0, n1 = eps.shape
    s0, f0 = stretch(n0, lengths[0], k0, pml[0], strength)
    s1, f1 = stretch(n1, lengths[1], k0, pml[1], strength)
    t0 = _tridiag(1.0 / f0, lengths[0] / (n0 + 1))
    t1 = _tridiag(1.0 / f1, lengths[1] / (n1 + 1))
    scale = np.outer(s0, s1).ravel()
    mat = (sp.kron(t0, sp.diags(s1), format="csr") + sp.kron(sp.diags(s0), t1, format="csr")
           - sp.diags((k0**2) * eps.ravel() * scale))
    mat = sp.csr_matrix(mat, dtype=np.complex128)
    mat.sort_indices()
    return mat, scale


def _factorize(mat: sp.csr_matrix) -> Any:
    """SuperLU of the complex-symmetric S with a symmetric ordering.

    Symmetric mode (minimum degree on S + Sᵀ, diagonal pivots preferred unless 10x smaller
    than the column maximum) keeps the structure: for 401² nodes it gives 1.0e7 factor entries
    against 1.8e7 with SuperLU's default COLAMD (and was faster), while the symmetric ordering
    with plain partial pivoting was some 60× slower. The residual is checked after each solve.
    """
    return sla.splu(mat.tocsc(), permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.1,
                    options={"SymmetricMode": True})


def operator(eps_r: Any, k0: float, lengths: float | Sequence[float] = 1.0,
             pml: int | Sequence[int] = DEFAULT_PML,
             pml_strength: float = DEFAULT_PML_STRENGTH, symmetric: bool = False) -> sp.csr_matrix:
    """Sparse matrix of the discrete PML-Helmholtz operator that :func:`solve` inverts.

    Parameters
    ----------
    eps_r : array_like or torch.Tensor, shape (n_0, n_1), no batch axes
        Relative permittivity at the interior nodes (real > 0, or complex with Re > 0, Im ≥ 0).
    k0, lengths, pml, pml_strength
        As in :func:`solve`.
    symmetric : bool, default False
        False: the operator A with A·u = f (u.ravel(), row-major), i.e. the stretched
        −Δ − k0²ε_r. True: the complex-symmetric S = diag(s_0 s_1)·A (S = Sᵀ, not Hermitian),
        the matrix actually factorised.

    Returns
    -------
    scipy.sparse.csr_matrix, complex128, shape (N, N), N = n_0·n_1
    """
    eps, _ = _to_numpy_complex(eps_r, "eps_r")
    if eps.ndim != 2:
        raise ValueError(f"eps_r must be a 2-D array (n_0, n_1) without batch axes; got shape "
                         f"{eps.shape}.")
    st.check_spatial_shape(eps.shape, "eps_r")
    k = _check_k0(k0)
    lens = st.normalize_lengths(lengths, 2)
    widths = _check_pml(pml, eps.shape)
    strength = _check_strength(pml_strength)
    _check_eps(eps)
    _check_resolved(k, eps, eps.shape, lens)
    mat, scale = _assemble(eps, k, lens, widths, strength)
    if symmetric:
        return mat
    out = sp.diags(1.0 / scale) @ mat
    return sp.csr_matrix(out)


def point_source(shape: Sequence[int], lengths: float | Sequence[float] = 1.0,
                 center: Sequence[float] | None = None) -> np.ndarray:
    """Discrete delta: 1/(h_0·h_1) at the node nearest ``center``, 0 elsewhere.

    With this right-hand side :func:`solve` approximates the outgoing Green's function
    (i/4)·H₀⁽¹⁾(k0·sqrt(ε_r)·r) of a homogeneous medium (unit point source).

    Parameters
    ----------
    shape : pair of int
        Grid shape (n_0, n_1).
    lengths : float or pair of floats, default 1.0
        Domain lengths per axis.
    center : pair of floats, optional
        Source position (x, y) in the box, in axis order; default the box centre. It snaps to the nearest
        node x_i = i·L/(n+1); place it on a node for an exact comparison.

    Returns
    -------
    float64 ndarray, shape (n_0, n_1)
    """
    if len(shape) != 2 or not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool)
                                  for n in shape):
        raise ValueError(f"shape must be a pair of ints (n_0, n_1); got {shape!r}.")
    shape_t = st.check_spatial_shape(shape, "shape")
    lens = st.normalize_lengths(lengths, 2)
    if center is None:
        center = tuple(L / 2 for L in lens)
    if len(center) != 2 or not all(math.isfinite(float(c)) for c in center):
        raise ValueError(f"center must be a pair of finite coordinates; got {center!r}.")
    index = []
    for k, (n, L, c) in enumerate(zip(shape_t, lens, center, strict=True)):
        h = L / (n + 1)
        i = round(float(c) / h)
        if not 1 <= i <= n:
            raise ValueError(f"center[{k}]={c} is outside the interior nodes (h = {h:.4g} to "
                             f"{n * h:.4g}); pass a point inside the box.")
        index.append(i - 1)
    f = np.zeros(shape_t)
    f[tuple(index)] = 1.0 / math.prod(L / (n + 1) for n, L in zip(shape_t, lens, strict=True))
    return f


@st.call_shape(4, ("pml", "pml_strength", "return_info"))
def solve(eps_r: Any, f: Any, k0: float, lengths: float | Sequence[float] = 1.0, *,
          pml: int | Sequence[int] = DEFAULT_PML, pml_strength: float = DEFAULT_PML_STRENGTH,
          return_info: bool = False) -> Any:
    """Solve −Δu − k0² ε_r u = f in 2-D with a PML inside the box and u = 0 behind it.

    Fields and physical parameters are positional, numerical options keyword-only (the
    package's ``solve`` shape). Until 0.2 the options after ``lengths`` are still accepted by position,
    with a ``DeprecationWarning``.

    Parameters
    ----------
    eps_r : float, array_like or torch.Tensor, shape (..., n_x, n_y)
        Relative permittivity at the interior nodes x_i = i·L/(n+1). Real and > 0, or complex
        with Re > 0 and Im ≥ 0 (a lossy medium, e^{−iωt} convention). A scalar is a homogeneous
        medium on f's grid. Leading axes are a batch.
    f : array_like or torch.Tensor, shape (..., n_x, n_y)
        Source (real or complex) at the same nodes; batch axes broadcast against eps_r's. A
        unit point source is :func:`point_source` (1/(h_0 h_1) at one node).
    k0 : float
        Free-space wavenumber ω/c0 > 0 (in 1/length; wavelength 2π/(k0·sqrt(ε_r))).
    lengths : float or pair of floats, default 1.0
        Box lengths (L_x, L_y) in axis order, PML included.
    pml : int or pair of ints, default 16
        PML width in nodes next to each wall, per axis; 0 disables it (a closed cavity with
        u = 0 on the walls, singular when k0² is a cavity eigenvalue). Needs 2·pml < n.
        At ~20 points per wavelength, 16 nodes are 0.8 wavelength.
    pml_strength : float, default 8.0
        Nominal one-way attenuation A = ∫σ dx of the layer (see the module docstring):
        continuous normal-incidence reflection exp(−2A·sqrt(ε_r)).
    return_info : bool, default False
        Also return a :class:`SolveInfo`.

    Returns
    -------
    u : complex128 ndarray or complex torch tensor, shape (broadcast batch, n_0, n_1)
        The discrete field (u ≈ E_z). A tensor (on the input's device; complex64 for 32-bit
        input) when eps_r or f is one.
    info : SolveInfo
        Only with ``return_info=True``.

    Raises
    ------
    ValueError
        NaN/Inf, eps_r ≤ 0 (or Re ≤ 0 / Im < 0 if complex), k0 ≤ 0, bad pml or pml_strength,
        a layer leaving no physical region, spatial shapes of eps_r and f differing, or batch
        axes that do not broadcast.

    Notes
    -----
    Second order in h (observed 1.99–2.02 on manufactured solutions); phase error of the
    5-point stencil about (k0 h)²/24 per radian travelled (3.3 % relative error one to two
    wavelengths from a point source at 20 points per wavelength, 1.4 % at 30). The matrix
    for each distinct ε_r is factorised once (SuperLU, symmetric mode), which is most of the
    cost of a solve (``benchmarks/bench_generators.py`` times the 64² recipe).
    """
    t0 = time.perf_counter()
    k = _check_k0(k0)
    strength = _check_strength(pml_strength)
    f_arr, back_f = _to_numpy_complex(f, "f")
    eps_arr, back_e = _to_numpy_complex(eps_r, "eps_r")
    back = back_e if back_e is not None else back_f
    if f_arr.ndim < 2:
        raise ValueError(f"f must have at least 2 axes (..., n_0, n_1); got shape {f_arr.shape}.")
    shape = st.check_spatial_shape(f_arr.shape[-2:], "f")
    if eps_arr.ndim == 0:
        eps_arr = np.broadcast_to(eps_arr, shape)
    elif eps_arr.ndim < 2 or eps_arr.shape[-2:] != shape:
        raise ValueError(f"eps_r must be a scalar or have f's spatial shape {shape} in its last 2 "
                         f"axes; got shape {eps_arr.shape}.")
    lens = st.normalize_lengths(lengths, 2)
    widths = _check_pml(pml, shape)
    st.check_finite(f_arr, "f")
    _check_eps(eps_arr)
    _check_resolved(k, eps_arr, shape, lens)

    residual, factorizations = 0.0, 0

    def prepare(eps_field: np.ndarray) -> tuple[Any, sp.csr_matrix, np.ndarray]:
        nonlocal factorizations
        mat, scale = _assemble(eps_field, k, lens, widths, strength)
        factorizations += 1
        return _factorize(mat), mat, scale

    def solve(prepared: tuple[Any, sp.csr_matrix, np.ndarray], rhs: np.ndarray) -> np.ndarray:
        nonlocal residual
        lu, mat, scale = prepared
        b = scale * rhs
        bnorm = float(np.linalg.norm(b))
        if bnorm == 0.0:
            return np.zeros_like(b)
        x = lu.solve(b)
        r = b - mat @ x
        if np.linalg.norm(r) > 1e-10 * bnorm:
            x += lu.solve(r)  # one step of iterative refinement
            r = b - mat @ x
        residual = max(residual, float(np.linalg.norm(r)) / bnorm)
        return x

    u = st.solve_per_coefficient(eps_arr, f_arr, 2, prepare, solve, ("eps_r", "f"),
                                 dtype=np.complex128)
    out = back(u) if back is not None else u
    if return_info:
        physical = (slice(widths[0], shape[0] - widths[0]), slice(widths[1], shape[1] - widths[1]))
        return out, SolveInfo(physical, residual, factorizations, time.perf_counter() - t0)
    return out
