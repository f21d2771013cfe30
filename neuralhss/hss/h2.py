"""A strong-admissibility (H²) layer with fixed polynomial nested bases.

Under *weak* admissibility (HSS) two boxes that touch interact through one rank-``r`` block,
which cannot carry the sharp part of a Green's function along their shared edge (face in 3-D);
the errors then line up with the tree's box edges. Under *strong* admissibility only
well-separated boxes are compressed, as in H²-matrices and the fast multipole method:

* **near field**: every point interacts exactly with the points of its own leaf box and of the
  adjacent leaf boxes. On a uniform grid we take this interaction translation-invariant, i.e. a
  convolution of radius ``2 * leaf_side - 1`` (the farthest pair in two adjacent leaves), so the
  near field has no box edges at all;
* **far field**: on every level ``j`` of a regular box hierarchy (boxes of side
  ``leaf_side * 2**j`` points per axis), each box summarises its field by its moments against
  orthonormal tensor Legendre polynomials of degree ``<= degree`` per axis (``r = (degree + 1)**d``
  numbers per channel; ``expansion="total"`` keeps those of total degree ``<= degree``), and
  receives a local polynomial expansion from the boxes of its
  interaction list: boxes at offset ``o`` with ``max|o| in {2, 3}`` (the children of the parent's
  neighbours that do not touch it, over both parities of the box position). The couplings are
  ``r x r`` matrices per offset, shared by all boxes of a level: a convolution over the box grid.

A second far field, ``far="grids"``, is translation-invariant on every level, as in the
multilevel summation method: the (continued) field is restricted to nested coarse grids of
spacing ``2, 4, ..., 2**L`` points by B-spline subdivision (:mod:`neuralhss.hss._subdivision`),
convolved there with a kernel of ``grid_radius`` coarse points (the coarsest one reaching across
the grid) and prolonged back: ``y = K_0 x + sum_j P_j K_j R_j x``. No pair of points is assigned
to one box pair. With boxes it is, and which pairs a box-pair coupling covers depends on where
the boxes sit (the translation-invariant near field overlaps the interaction list by a
position-dependent amount), while the coupling is shared by all positions; fitted to a discrete
Poisson solve that far field levels off at relative errors of 1-2 %, the nested grids reach a
few 1e-4 with fewer values (``examples/linear_path_floor.py``). Level ``j`` commutes with
shifts by ``2**j`` points only; the B-splines are smooth enough (degree 4 fits Poisson better
than degree 2) that little of that shows. Continuing the field for every coarse level costs a
grid about three times as wide per axis.

A third far field, ``far="stationary"``, is the nested grids without the decimation (the
*à trous* construction of stationary wavelet transforms): level ``j`` smooths the field with the
same B-spline filter but keeps every point, convolves it with its kernel dilated by ``2**j`` and
smooths again. Every level is then a convolution, so the whole operator is one
translation-invariant kernel over the grid, ``K_0 + sum_j 2**(-d j) h_j * dil_j(K_j) * h_j``
(``h_j`` the level-``j`` B-spline filter), assembled from the same few values and applied by FFT
on the continued field (``O(N log N)``). It commutes with every shift (with ``"periodic"``
data, exactly), where the nested grids commute with shifts by ``2**L`` only.

The polynomial spaces are nested (a polynomial on a box restricted to a child is a polynomial on
the child), so the moments of a level are exact linear combinations of the children's; we compute
each level's moments and evaluations directly from the fine grid, which costs ``O(N (degree + 1))``
per level and keeps the code one contraction per level. With ``L`` levels the apply costs
``O(N (k^d + L r))`` per channel, ``k`` the near-field kernel width.

Channels are handled depthwise (each channel its own near kernel and couplings), as in a
depthwise-separable convolution: the channel mixing is a pointwise layer of the model around it,
which keeps the parameter count small (the per-node dense channel-mixing couplings of the HSS
layer held most of its parameters).

Boundaries. The couplings are translation-invariant; what the domain boundary does is set by how
the field is continued past it before the convolutions: ``"dirichlet"`` (odd mirror: the
method of images for a zero boundary value; the grid points are taken as interior nodes, the
boundary node with value 0 one spacing outside), ``"neumann"`` (even mirror about the edge),
``"periodic"`` or ``"zeros"``. Mirroring a box reverses its local coordinate, which multiplies a
Legendre moment of degree ``a`` along that axis by ``(-1)**a``; box moments are continued that way
(for Dirichlet this mirrors about the edge of the last box, half a spacing from the boundary
node, an approximation the couplings of the coarse levels absorb).

Grid convention: arrays ``(B, C, n_1, ..., n_d)``, axis ``k`` of the array is axis ``k`` of the
grid, points equally spaced; the operator is defined in grid units (no spacing enters).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
import warnings
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy.fft import next_fast_len
from torch import nn

from ._lstsq import LeastSquaresFit, direct_least_squares, lbfgs_least_squares
from ._subdivision import prolong, restrict, subdivision_mask, wrap

__all__ = ["H2Operator", "BOUNDARIES", "EXPANSIONS", "FAR_FIELDS", "LINEAR_SOLVERS", "evaluation_matrix",
           "legendre_box_basis", "moment_matrix"]

BOUNDARIES = ("dirichlet", "neumann", "periodic", "zeros")
EXPANSIONS = ("tensor", "total")
#: Solvers of :meth:`H2Operator.fit_linear`.
LINEAR_SOLVERS = ("lbfgs", "lstsq")
FAR_FIELDS = ("boxes", "grids", "stationary")


def legendre_box_basis(side: int, degree: int) -> np.ndarray:
    """Orthonormal discrete Legendre basis on ``side`` equally spaced points, ``(side, degree + 1)``.

    Column ``a`` is even (``a`` even) or odd (``a`` odd) about the box centre: reversing the
    box multiplies it by ``(-1)**a``.
    """
    t = (2 * np.arange(side) + 1) / side - 1
    q, r = np.linalg.qr(np.polynomial.legendre.legvander(t, degree))
    return q * np.sign(np.diag(r))  # positive leading coefficients: column a ~ P_a


def blended_box_basis(side: int, degree: int) -> np.ndarray:
    """The basis of :func:`legendre_box_basis` continued to a window of ``2 * side`` points
    centred on the box and multiplied by the hat function of that window, ``(2 * side, degree + 1)``.

    Hats of neighbouring boxes sum to one, so local expansions evaluated this way and added
    blend continuously from box to box (a partition of unity) instead of jumping at box edges.
    """
    t = (2 * np.arange(side) + 1) / side - 1
    v = np.polynomial.legendre.legvander(t, degree)
    q, r = np.linalg.qr(v)
    sign = np.sign(np.diag(r))
    k = np.arange(2 * side) - side // 2  # window points in box coordinates (box = 0..side-1)
    ext = np.polynomial.legendre.legvander((2 * k + 1) / side - 1, degree) @ np.linalg.inv(r) * sign
    hat = 1 - np.abs((k + 0.5 - side / 2) / side)
    return ext * hat[:, None]


def _window_sum(side: int) -> np.ndarray:
    """Sum of the blending hats over the first box of an axis, ``(side,)``: its own hat plus its
    right neighbour's on the right half; the left half has no left neighbour."""
    k = np.arange(side)
    own = 1 - np.abs((k + 0.5 - side / 2) / side)
    return np.where(k < side // 2, own, 1.0)


def evaluation_matrix(n: int, side: int, degree: int, blend: bool, periodic: bool) -> np.ndarray:
    """The map from the local-expansion coefficients of the boxes of one axis to its points,
    ``(n, degree + 1, n // side)``: entry ``[p, a, b]`` is the value at point ``p`` of basis
    function ``a`` of box ``b``.

    Without ``blend`` box ``b`` covers its own ``side`` points (:func:`legendre_box_basis`).
    With ``blend`` it covers a window of ``2 * side`` points centred on it
    (:func:`blended_box_basis`), whose hats sum to one wherever two windows overlap; windows
    wrap around a ``periodic`` axis, and on other axes the half windows at both ends, which no
    neighbour completes, are divided by their hat so that the weights still sum to one.
    """
    nb = n // side
    e = np.zeros((n, degree + 1, nb))
    if not blend:
        q = legendre_box_basis(side, degree)
        for b in range(nb):
            e[b * side:(b + 1) * side, :, b] = q
        return e
    qb = blended_box_basis(side, degree)
    pts = np.arange(2 * side) - side // 2
    for b in range(nb):
        o = b * side + pts
        if periodic:
            np.add.at(e, (o % n, slice(None), b), qb)
        else:
            keep = (o >= 0) & (o < n)
            e[o[keep], :, b] += qb[keep]
    if not periodic:
        w = _window_sum(side)
        e[:side] /= w[:, None, None]
        e[n - side:] /= w[::-1, None, None]
    return e


def moment_matrix(n: int, side: int, degree: int, boundary: str, pad: int = 3) -> np.ndarray:
    """The map from the points of one axis to the Legendre moments of its boxes, continued by
    ``pad`` boxes past each end, ``(degree + 1, n // side + 2 * pad, n)``.

    Entry ``[a, u, p]``: weight of point ``p`` in moment ``a`` of padded box ``u`` (box
    ``u - pad``). Boxes past the ends are the mirror images of the boxes inside (moment ``a``
    times ``(-1)**a``, and times -1 for ``"dirichlet"``: odd images), the boxes at the other end
    (``"periodic"``) or zero (``"zeros"``).
    """
    nb = n // side
    q = legendre_box_basis(side, degree)  # (side, degree + 1)
    m = np.zeros((degree + 1, nb + 2 * pad, n))
    parity = (-1.0) ** np.arange(degree + 1)
    for u in range(nb + 2 * pad):
        b = u - pad
        factor = np.ones(degree + 1)
        if not 0 <= b < nb:
            if boundary == "zeros":
                continue
            if boundary == "periodic":
                b %= nb
            else:
                b = -b - 1 if b < 0 else 2 * nb - 1 - b
                factor = parity * (-1.0 if boundary == "dirichlet" else 1.0)
        m[:, u, b * side:(b + 1) * side] = (q * factor).T
    return m


@functools.lru_cache(maxsize=64)
def _dft_matrices(kernel: tuple[int, ...], size: tuple[int, ...], dtype: torch.dtype,
                  device: torch.device) -> tuple[torch.Tensor, ...]:
    # per axis exp(-2 pi i p f / S) for kernel positions p and the frequencies rfftn keeps
    mats = []
    for k, (kn, n) in enumerate(zip(kernel, size, strict=True)):
        nf = n // 2 + 1 if k == len(size) - 1 else n
        phase = np.outer(np.arange(kn), np.arange(nf)) * (-2 * np.pi / n)
        mats.append(torch.as_tensor(np.exp(1j * phase), dtype=dtype, device=device))
    return tuple(mats)


def _kernel_rfftn(w: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """``torch.fft.rfftn(w, s=size)`` over the last ``len(size)`` axes of a small kernel, by
    one matrix product per axis (cheaper than FFTs of the zero-padded kernel when the kernel is
    much smaller than ``size``)."""
    d = len(size)
    cdtype = torch.complex128 if w.dtype == torch.float64 else torch.complex64
    t = w.to(cdtype)
    for m in _dft_matrices(tuple(w.shape[-d:]), tuple(size), cdtype, w.device):
        t = torch.tensordot(t, m, dims=([w.ndim - d], [0]))  # next kernel axis -> frequencies
    return t


def _symmetries(modes: list[tuple[int, ...]]) -> list[tuple[tuple[int, ...], tuple[bool, ...],
                                                              torch.Tensor, torch.Tensor]]:
    """Every symmetry of the square (cube) as ``(perm, flips, index, sign)``: the axes in
    ``flips`` reflected, then the axes permuted (new axis ``k`` is old axis ``perm[k]``);
    ``index[b]`` is the mode (degrees per axis, among ``modes``) that mode ``b`` comes from
    and ``sign[b]`` its factor ``(-1)**(degrees along the reflected axes)``."""
    d = len(modes[0])
    where = {a: i for i, a in enumerate(modes)}
    out = []
    for perm in itertools.permutations(range(d)):
        for flips in itertools.product((False, True), repeat=d):
            index, sign = [], []
            for a in modes:
                src = [0] * d
                for k in range(d):
                    src[perm[k]] = a[k]
                index.append(where[tuple(src)])
                sign.append((-1) ** sum(m for m, f in zip(src, flips, strict=True) if f))
            out.append((perm, flips, torch.tensor(index), torch.tensor(sign, dtype=torch.float64)))
    return out


def _mix(X: torch.Tensor, W: torch.Tensor, eq: str) -> torch.Tensor:
    # depthwise product when both mixing axes have size one (no einsum's permuting copies)
    if W.shape[1] == W.shape[2] == 1:
        return X * (W[:, :, 0] if eq == "forward" else W[:, 0, :])[None]
    return torch.einsum("bca...,coa...->bco..." if eq == "forward" else "bco...,coa...->bca...", X, W)


class _FFTConvolve(torch.autograd.Function):
    """Valid convolution by FFT with a hand-written backward.

    Autograd's own backward of ``irfftn(rfftn(x, s) * W)`` runs full complex transforms and
    zero-fills padded copies; the adjoints below need one real transform pair per input: the
    gradient of ``x`` is the full convolution of the output gradient with the flipped kernel,
    that of ``w`` the correlation of the output gradient with ``x`` (summed over the batch in
    frequency space, so its inverse transform has no batch axis). Every circular product is
    exact because the transform size covers the padded input.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        d = x.ndim - 3
        dims = tuple(range(-d, 0))
        size = [next_fast_len(n, real=True) for n in x.shape[-d:]]
        X = torch.fft.rfftn(x, s=size, dim=dims)
        y = torch.fft.irfftn(_mix(X, _kernel_rfftn(w, size), "forward"), s=size, dim=dims)
        for k, (n, k_n) in enumerate(zip(x.shape[-d:], w.shape[-d:], strict=True)):
            y = y.narrow(3 + k, k_n - 1, n - k_n + 1)
        ctx.save_for_backward(X, w)
        ctx.size, ctx.in_shape = size, tuple(x.shape[-d:])
        return y

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        X, w = ctx.saved_tensors
        size, d = ctx.size, len(ctx.size)
        dims = tuple(range(-d, 0))
        G = torch.fft.rfftn(g, s=size, dim=dims)
        dx = dw = None
        if ctx.needs_input_grad[0]:
            dx = torch.fft.irfftn(_mix(G, _kernel_rfftn(w.flip(dims), size), "adjoint"),
                                  s=size, dim=dims)
            for k, n in enumerate(ctx.in_shape):
                dx = dx.narrow(3 + k, 0, n)
        if ctx.needs_input_grad[1]:
            H = torch.einsum("bco...,bca...->coa...", G.conj(), X)
            h = torch.fft.irfftn(H, s=size, dim=dims)
            for k, k_n in enumerate(w.shape[-d:]):
                h = h.narrow(3 + k, 0, k_n)
            dw = h.flip(dims)
        return dx, dw


def _convolve(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Valid convolution by FFT, depthwise over ``C`` and mixing ``a -> o`` within each channel.

    ``x (B, C, a, *padded)``, ``w (C, o, a, *kernel)`` -> ``(B, C, o, *(padded - kernel + 1))``.
    An FFT of (at least) the padded size makes the circular convolution exact on the valid part;
    the kernels are wide (near-field radius ``2 * leaf_side - 1``, 7 boxes in the far field), where
    the FFT's ``O(N log N)`` beats a direct convolution's ``O(N k^d)``.
    """
    return _FFTConvolve.apply(x, w)


def _full_convolve_1d(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Full 1-D convolution of two vectors (length ``len(a) + len(b) - 1``)."""
    return F.conv1d(a.view(1, 1, -1), b.flip(0).view(1, 1, -1), padding=len(b) - 1).view(-1)


def _upsample_smooth(t: torch.Tensor, h: torch.Tensor, q: int, axis: int, radius: int) -> torch.Tensor:
    """Dilate ``t`` (odd length, centred) along ``axis`` by ``q`` (``q - 1`` zeros between
    entries) and convolve it with the symmetric filter ``h`` (odd length), in one transposed
    convolution of stride ``q`` (which never touches the zeros); the centred part within
    ``radius`` of the centre is kept."""
    moved = t.movedim(axis, -1)
    shape = moved.shape
    out = F.conv_transpose1d(moved.reshape(-1, 1, shape[-1]), h.view(1, 1, -1), stride=q)
    full = (out.shape[-1] - 1) // 2
    keep = min(radius, full)
    out = out.narrow(-1, full - keep, 2 * keep + 1)
    return out.reshape(*shape[:-1], out.shape[-1]).movedim(-1, axis)


class H2Operator(nn.Module):
    r"""Depthwise strong-admissibility operator ``(B, C, *grid_shape) -> (B, C, *grid_shape)``.

    Parameters
    ----------
    grid_shape : sequence of int
        Grid ``(n_1, ..., n_d)``, ``d`` in 1..3; every side a multiple of ``leaf_side``.
    channels : int
        ``C``; each channel gets its own operator (depthwise).
    leaf_side : int, default 4
        Side of the leaf boxes in points (the finest level of the far field).
    degree : int, default 2
        Legendre degree of the far-field expansions.
    expansion : {"tensor", "total"}, default "tensor"
        Which products of the per-axis Legendre polynomials the far field keeps: ``"tensor"``
        every one of degree ``<= degree`` per axis (rank ``(degree + 1)**d``), ``"total"``
        those of total degree ``<= degree`` (rank ``binom(degree + d, d)``: 10 instead of 27
        at degree 2 in 3-D; the couplings shrink by the square of that ratio).
    near_radius : int, optional
        Radius of the near-field convolution (kernel ``2 * near_radius + 1`` per axis);
        default ``2 * leaf_side - 1``, the farthest offset between two adjacent leaves. A radius
        of ``n - 1`` on an ``n``-point (square or cube) grid holds every pair of points: the
        operator is then one translation-invariant kernel on the continued field (for
        ``"dirichlet"``, the method of images), applied by FFT in ``O(N log N)``, with
        ``(2 n - 1)**d`` kernel values and no far field (no couplings). On a linear problem whose
        Green's function is translation-invariant up to the boundary (Poisson) this is the
        uncompressed operator, which the polynomial far field only approximates.
    boundary : {"dirichlet", "neumann", "periodic", "zeros"}, default "zeros"
        How fields are continued past the domain boundary (module docstring).
    share_levels : bool, default True
        One coupling kernel for all levels, scaled per level and channel by a learned gain
        (Green's functions of scale-free operators look alike on every level in normalised
        bases); ``False`` gives each level its own kernel.
    blend : bool, default True
        Evaluate each box's local expansion on a window of twice the box, weighted by a hat
        function, so that neighbouring boxes' expansions blend continuously (no jumps at box
        edges; needs an even ``leaf_side``). ``False``: each expansion on its own box only,
        the textbook H² evaluation.
    init_scale : float, default 1.0
        Multiplies the random initialisation of the couplings and the near kernel
        (``0`` starts from the zero operator, as a convex fit does).
    far : {"boxes", "grids", "stationary"}, default "boxes"
        The far field: polynomial expansions of boxes through interaction lists (``"boxes"``)
        or kernels on nested coarse grids (``"grids"``, module docstring), which ignores
        ``leaf_side`` (but for the default ``near_radius``), ``expansion``, ``blend`` and
        ``share_levels``, and takes ``degree`` as the B-spline degree of the grids (even
        degrees keep cell-centred grids, which ``symmetric`` needs); or the same levels
        undecimated (``"stationary"``, module docstring), summed into one translation-invariant
        kernel over the grid (any degree ``>= 1``, also with ``symmetric``).
    grid_radius : int, default 4
        ``far="grids"`` and ``"stationary"``: radius in coarse points of every level's kernel
        but the coarsest
        (whose kernel reaches ``n - 1`` fine points, plus one coarse point); levels
        ``j = 1 .. L`` with ``L`` the largest such that ``grid_radius * 2**L`` does not exceed
        the smallest side (at least 1).
    symmetric : bool, default False
        Average the near kernel and the couplings over the symmetries of the square (cube):
        reflections of each axis and permutations of the axes, 8 in 2-D and 48 in 3-D. The
        operator then commutes with them exactly (for every boundary mode, which are all
        mirror-symmetric), as the solution operator of an isotropic PDE with one boundary
        condition on all sides does; it stays linear in its parameters, so :meth:`fit_linear`
        remains a convex fit. Needs equal sides.
    coupling_rank : int, optional
        ``far="boxes"``: factor the couplings over the channels, ``coupling[c] = sum_k
        mix[c, k] basis[k]``, ``K = coupling_rank`` shared coupling kernels mixed per channel
        (as TFNO factors FNO's spectral weights): the couplings' parameters shrink from ``C``
        to ``K`` kernels. The operator is then no longer linear in its parameters, so
        :meth:`fit_linear` refuses it. ``None`` (default): a kernel per channel.
    near_units : float, default 1.0
        Store the near kernel this many times larger than it acts (the operator is the same;
        only gradient training sees it): Adam moves every stored value by about the learning
        rate per step, and the values of a wide kernel act together on many points, so a
        kernel over the whole grid needs far smaller steps than one of the default radius.
        :meth:`fit_linear` works in the plain units.

    Notes
    -----
    Parameters (``far="grids"``: the near kernel and one kernel ``(C, 1, *k_j)`` per coarse
    level, ``coarse``; an empty ``coupling``): near kernel ``(C, 1, k, ..., k)``; couplings
    ``(G, C, r, r, 7**d - 3**d)``, one ``r x r`` block per far offset in ``[-3, 3]^d`` outside
    ``[-1, 1]^d`` (row-major order of the offsets), with ``G = 1`` (shared, plus gains
    ``(L, C)``) or ``G = L``. The far field has levels ``j = 0, 1, ...`` while the box grid has
    at least 4 boxes per axis (coarser levels have no interaction list).

    The operator is linear in its parameters for fixed gains, so a single-channel operator can
    be fitted to input-output pairs by convex least squares (:meth:`fit_linear`).
    """

    def __init__(self, grid_shape: Sequence[int], channels: int = 1, leaf_side: int = 4,
                 degree: int = 2, near_radius: int | None = None, boundary: str = "zeros",
                 share_levels: bool = True, init_scale: float = 1.0, blend: bool = True,
                 expansion: str = "tensor", symmetric: bool = False, far: str = "boxes",
                 grid_radius: int = 4, dtype: torch.dtype | None = None,
                 device: torch.device | str | None = None, coupling_rank: int | None = None,
                 near_units: float = 1.0) -> None:
        super().__init__()
        self.grid_shape = tuple(int(n) for n in grid_shape)
        d = len(self.grid_shape)
        self.symmetric = bool(symmetric)
        if self.symmetric and len(set(self.grid_shape)) > 1:
            raise ValueError(f"symmetric=True needs a square (cube) grid; got {self.grid_shape}")
        if not 1 <= d <= 3:
            raise ValueError(f"grid_shape {self.grid_shape}: H2Operator supports 1-D to 3-D grids")
        if boundary not in BOUNDARIES:
            raise ValueError(f"boundary={boundary!r}; use one of {BOUNDARIES}")
        for name, v in (("channels", channels), ("leaf_side", leaf_side)):
            if int(v) != v or v < 1:
                raise ValueError(f"{name}={v!r} must be a positive integer")
        if int(degree) != degree or degree < 0:
            raise ValueError(f"degree={degree!r} must be a non-negative integer")
        if expansion not in EXPANSIONS:
            raise ValueError(f"expansion={expansion!r}; use one of {EXPANSIONS}")
        self.expansion = expansion
        if far not in FAR_FIELDS:
            raise ValueError(f"far={far!r}; use one of {FAR_FIELDS}")
        grids = far in ("grids", "stationary")
        if grids and (int(grid_radius) != grid_radius or grid_radius < 1):
            raise ValueError(f"grid_radius={grid_radius!r} must be a positive integer")
        if far == "grids" and self.symmetric and (degree % 2 or any(n % 2 for n in self.grid_shape)):
            raise ValueError(f"symmetric=True with far='grids' needs an even degree and even sides "
                             f"(cell-centred coarse grids); got degree={degree}, grid {self.grid_shape}")
        self.blend = bool(blend) and not grids
        if self.blend and leaf_side % 2:
            raise ValueError(f"blend=True needs an even leaf_side (got {leaf_side}): the blending "
                             "windows overlap by half a box")
        if degree >= leaf_side and not grids:
            raise ValueError(f"degree={degree} needs leaves wider than {degree} points (leaf_side="
                             f"{leaf_side}): a box of s points carries polynomials up to degree "
                             "s - 1; raise leaf_side or lower the degree")
        if any(n % leaf_side for n in self.grid_shape):
            raise ValueError(f"grid {self.grid_shape} is not a whole number of leaves of side "
                             f"{leaf_side}; choose leaf_side dividing every side")
        self.channels, self.leaf_side, self.degree = int(channels), int(leaf_side), int(degree)
        self.boundary, self.share_levels = boundary, bool(share_levels)
        self.near_radius = 2 * leaf_side - 1 if near_radius is None else int(near_radius)
        if self.near_radius < 0 or self.near_radius >= min(self.grid_shape):
            raise ValueError(f"near_radius={self.near_radius} must be in [0, {min(self.grid_shape) - 1}] "
                             "for this grid")
        fk = {"dtype": dtype, "device": device}
        self.sides: list[int] = []
        s = self.leaf_side
        # a near field as wide as the grid holds every pair: no far field is left to compress
        global_near = self.near_radius >= max(self.grid_shape) - 1
        self.far = "none" if global_near else far
        while self.far == "boxes" and all(n % s == 0 and n // s >= 4 for n in self.grid_shape):
            self.sides.append(s)
            s *= 2
        r1 = self.degree + 1
        # (position among the tensor products, degrees per axis) of every kept product
        kept = [(i, a) for i, a in enumerate(itertools.product(range(r1), repeat=d))
                if expansion == "tensor" or sum(a) <= self.degree]
        modes = [i for i, _ in kept]
        # positions of the kept products among the tensor ones (row-major over the axes' degrees)
        self.register_buffer("_modes", torch.tensor(modes, device=device), persistent=False)
        self.rank = len(modes)
        for j, side in enumerate(self.sides):
            for k, n in enumerate(self.grid_shape):
                e = torch.as_tensor(evaluation_matrix(n, side, self.degree, self.blend,
                                                      boundary == "periodic"),
                                    dtype=dtype or torch.get_default_dtype(), device=device)
                self.register_buffer(f"eval{j}_{k}", e, persistent=False)
                mm = torch.as_tensor(moment_matrix(n, side, self.degree, boundary),
                                     dtype=dtype or torch.get_default_dtype(), device=device)
                self.register_buffer(f"mom{j}_{k}", mm, persistent=False)
        C, r, k = self.channels, self.rank, 2 * self.near_radius + 1
        self.near = nn.Parameter(torch.empty(C, 1, *([k] * d), **fk))
        n_kernels = (0 if self.far != "boxes" else 1 if self.share_levels
                     else max(1, len(self.sides)))
        offs = torch.stack(torch.meshgrid(*[torch.arange(-3, 4)] * d, indexing="ij")).reshape(d, -1)
        self.register_buffer("_far", torch.nonzero(offs.abs().amax(0) >= 2)[:, 0], persistent=False)
        if coupling_rank is not None and (int(coupling_rank) != coupling_rank or coupling_rank < 1):
            raise ValueError(f"coupling_rank={coupling_rank!r} must be a positive integer or None")
        if coupling_rank is not None and self.far != "boxes":
            raise ValueError(f"coupling_rank needs far='boxes' (this operator's far field is "
                             f"{self.far!r}, which has no couplings)")
        self.coupling_rank = None if coupling_rank is None else int(coupling_rank)
        K = C if self.coupling_rank is None else self.coupling_rank
        self.coupling = nn.Parameter(torch.empty(n_kernels, K, r, r, len(self._far), **fk))
        self.coupling_mix = (nn.Parameter(torch.empty(C, K, **fk))
                             if self.coupling_rank is not None else None)
        self._symmetries = _symmetries([a for _, a in kept]) if self.symmetric else []
        self.gain = (nn.Parameter(torch.ones(max(1, len(self.sides)), C, **fk))
                     if self.share_levels and self.far == "boxes" else None)
        self.grid_radius = int(grid_radius)
        self.coarse = nn.ParameterList()
        self._pads = [(0, 0)] * d
        if self.far == "stationary":
            if self.degree < 1:
                raise ValueError("far='stationary' needs a B-spline degree >= 1")
            self._init_stationary(fk, dtype)
        if self.far == "grids":
            # levels 1..L; the coarsest spans its grid, the others grid_radius coarse points
            L = max(1, int(math.log2(min(self.grid_shape) / self.grid_radius)))
            if boundary == "periodic":
                # periodic coarse grids need no continuation, but must divide the grid and
                # hold the subdivision's support
                def too_coarse(L: int) -> bool:
                    return any(n % 2**L or n // 2**L <= self.degree // 2 + 1 for n in self.grid_shape)

                while L > 1 and too_coarse(L):
                    L -= 1
                if too_coarse(L):
                    raise ValueError(f"far='grids' with periodic data needs even sides of at least "
                                     f"{2 * (self.degree // 2 + 2)} points; got {self.grid_shape}")
            q = 2**L
            # continue every axis far enough that the coarsest kernel reaches every pair of
            # points of the grid (and their first images): at least 3 n - 2 points, a
            # multiple of 2**L (even sides leave equal pads)
            padded = ([n for n in self.grid_shape] if boundary == "periodic"
                      else [-(-(3 * n - 2) // q) * q for n in self.grid_shape])
            self._pads = [((m - n) // 2, m - n - (m - n) // 2) for m, n in zip(padded, self.grid_shape,
                                                                             strict=True)]
            self.register_buffer("_mask", subdivision_mask(self.degree).to(
                dtype or torch.get_default_dtype()), persistent=False)
            for j in range(1, L + 1):
                # the coarsest reaches n - 1 points, as far as a kernel over the whole grid
                size = ([2 * self.grid_radius + 1] * d if j < L else
                        [2 * min(-(-(n - 1) // q) + 1, m // q - 1 if boundary != "periodic"
                                 else m // q // 2) + 1
                         for n, m in zip(self.grid_shape, padded, strict=True)])
                self.coarse.append(nn.Parameter(torch.empty(C, 1, *size, **fk)))
        self.init_scale = float(init_scale)
        if not (isinstance(near_units, (int, float)) and math.isfinite(near_units) and near_units > 0):
            raise ValueError(f"near_units={near_units!r} must be a positive number")
        self.near_units = float(near_units)
        self._scaled = True  # see _coarse_kernel and _near_kernel
        self.reset_parameters()

    def _init_stationary(self, fk: dict, dtype: torch.dtype | None) -> None:
        # levels 1..L as for the nested grids (the coarsest reaching n - 1 points), and each
        # level's smoothing h_j * h_j as a 1-D filter (odd length, symmetric): h_1 is the
        # subdivision mask, h_j = h_{j-1} * (the mask dilated by 2**(j-1))
        d = len(self.grid_shape)
        L = max(1, int(math.log2(min(self.grid_shape) / self.grid_radius)))
        mask = subdivision_mask(self.degree)
        h = mask
        for j in range(1, L + 1):
            if j > 1:
                up = mask.new_zeros((len(mask) - 1) * 2 ** (j - 1) + 1)
                up[:: 2 ** (j - 1)] = mask
                h = _full_convolve_1d(h, up)
            self.register_buffer(f"_smooth{j}", _full_convolve_1d(h, h.flip(0)).to(
                dtype or torch.get_default_dtype()), persistent=False)
            q = 2**j
            size = ([2 * self.grid_radius + 1] * d if j < L else
                    [2 * (-(-(n - 1) // q) + 1) + 1 for n in self.grid_shape])
            self.coarse.append(nn.Parameter(torch.empty(self.channels, 1, *size, **fk)))

    def _stationary_kernel(self) -> torch.Tensor:
        # near + sum_j 2**(-d j) h_j * dil_j(K_j) * h_j, cropped to n - 1 points per axis:
        # (C, 1, *(2 n - 1))
        d, C = len(self.grid_shape), self.channels
        radius = [n - 1 for n in self.grid_shape]
        w = self.near.new_zeros(C, *[2 * r + 1 for r in radius])

        def add(w: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
            # add the centred kernel k (C, *odd sizes) into w, cropping what reaches past it
            idx_w, idx_k = [slice(None)], [slice(None)]
            for r, m in zip(radius, k.shape[1:], strict=True):
                c = (m - 1) // 2
                e = min(c, r)
                idx_w.append(slice(r - e, r + e + 1))
                idx_k.append(slice(c - e, c + e + 1))
            w[tuple(idx_w)] += k[tuple(idx_k)]
            return w

        w = add(w, self._near_kernel()[:, 0])
        for j in range(1, len(self.coarse) + 1):
            t = self._coarse_kernel(j)[:, 0]
            smooth = getattr(self, f"_smooth{j}")
            for axis, r in enumerate(radius, start=1):
                t = _upsample_smooth(t, smooth, 2**j, axis, r)
            w = add(w, t / 2 ** (d * j))  # the average over the 2**(d j) shifts
        return self._symmetrize(w[:, None, None], modes=False)[:, 0]

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Near kernel ~ U(±1/sqrt(fan_in)) (a convolution's default); couplings Gaussian with
        variance ``1 / (r * offsets)``; both times ``init_scale``; gains 1."""
        d = len(self.grid_shape)
        fan = self.near[0].numel()
        u = torch.rand(self.near.shape, generator=generator, dtype=torch.float64) * 2 - 1
        self.near.copy_(u * self.init_scale / math.sqrt(fan)
                        * (self.near_units if self._scaled else 1))
        n_off = 7**d - 3**d
        g = torch.randn(self.coupling.shape, generator=generator, dtype=torch.float64)
        self.coupling.copy_(g * self.init_scale / math.sqrt(self.rank * n_off))
        if self.coupling_mix is not None:
            # unit-variance sums over K keep the couplings' initial scale
            m = torch.randn(self.coupling_mix.shape, generator=generator, dtype=torch.float64)
            self.coupling_mix.copy_(m / math.sqrt(self.coupling_mix.shape[1]))
        if self.gain is not None:
            self.gain.fill_(1.0)
        for j, k in enumerate(self.coarse, start=1):
            # a level-j coarse value sums about 2**(d j) fine ones: scale its kernel down so
            # that every level starts with a similar share of the output
            g = torch.randn(k.shape, generator=generator, dtype=torch.float64)
            k.copy_(g * self.init_scale / math.sqrt(k[0].numel() * 2 ** (d * j))
                    * (2 ** (d * j) if self._scaled else 1))

    def _coarse_kernel(self, j: int) -> torch.Tensor:
        # The level-j kernel (j = 1 .. L). Its values are stored 2**(d j) times larger than
        # they act: a level-j value acts on sums of about 2**(d j) points, so in the stored units
        # each moves the output about as much as a near-kernel value does, and one learning rate
        # suits every level (in the plain units, hidden blocks with these far fields hardly
        # trained). fit_linear works in the plain units, where L-BFGS converges several times
        # faster.
        k = self.coarse[j - 1]
        return k / 2 ** (len(self.grid_shape) * j) if self._scaled else k

    def _near_kernel(self) -> torch.Tensor:
        # The near kernel as it acts. Its values are stored near_units times larger: a wide
        # kernel's values act together on many points, so Adam's per-value steps of one size
        # move the output far more through a wide kernel than through a narrow one (a kernel
        # over the whole 32² grid, lr 3e-3, plain units: training error 0.094 on Helmholtz)
        return self.near / self.near_units if self._scaled else self.near

    @contextlib.contextmanager
    def _plain_units(self) -> Iterator[None]:
        # store the coarse and near kernels as they act while the block runs (see
        # _coarse_kernel and _near_kernel)
        d = len(self.grid_shape)
        with torch.no_grad():
            for j, k in enumerate(self.coarse, start=1):
                k.div_(2 ** (d * j))
            self.near.div_(self.near_units)
        self._scaled = False
        try:
            yield
        finally:
            with torch.no_grad():
                for j, k in enumerate(self.coarse, start=1):
                    k.mul_(2 ** (d * j))
                self.near.mul_(self.near_units)
            self._scaled = True

    @property
    def n_levels(self) -> int:
        """Far-field levels (boxes: 0 is the leaf level; grids: the coarse grids)."""
        return len(self.coarse) if self.far in ("grids", "stationary") else len(self.sides)

    def linear_parameters(self) -> list[nn.Parameter]:
        """The parameters the operator is linear in (gains held fixed): what
        :meth:`fit_linear` fits."""
        return [self.near, self.coupling, *self.coarse]

    def _orbit_labels(self) -> list[torch.Tensor | None]:
        # for each linear parameter, the orbit of every entry under the symmetries (the
        # smallest flat index it is mapped to), or None where the entries are fitted apart:
        # the near and coarse kernels are symmetrised as plain kernels (their average over
        # the group is what acts); the couplings carry parity signs and stay untied
        labels: list[torch.Tensor | None] = []
        for p in self.linear_parameters():
            if not self._symmetries or p is self.coupling:
                labels.append(None)
                continue
            idx = torch.arange(p.numel(), device=p.device).view(p.shape)
            low = idx
            for perm, flips, _, _ in self._symmetries:
                t = idx.flip([2 + i for i in range(len(flips)) if flips[i]]) if any(flips) else idx
                low = torch.minimum(low, t.permute(0, 1, *(2 + k for k in perm)))
            labels.append(low)
        return labels

    def parameter_count(self) -> int:
        """Deprecated (removed in 0.2): ``neuralhss.models.count_parameters(op)`` counts the
        parameters of any module."""
        warnings.warn("H2Operator.parameter_count() is deprecated; use "
                      "neuralhss.models.count_parameters(op)", DeprecationWarning, stacklevel=2)
        return sum(p.numel() for p in self.parameters())

    def _kernel(self, j: int) -> torch.Tensor:
        # couplings of level j scattered into a dense 7^d convolution kernel (C, r, r, 7, ...)
        d, C, r = len(self.grid_shape), self.channels, self.rank
        c = self.coupling[0 if self.share_levels else j]
        if self.coupling_mix is not None:
            c = torch.einsum("ck,kabo->cabo", self.coupling_mix, c)
        if self.gain is not None:
            c = c * self.gain[j].view(C, 1, 1, 1)
        kernel = c.new_zeros(C, r, r, 7**d).index_copy(-1, self._far, c).reshape(C, r, r, *([7] * d))
        return self._symmetrize(kernel, modes=True)

    def _symmetrize(self, w: torch.Tensor, modes: bool) -> torch.Tensor:
        # the average over the square's (cube's) symmetries of a kernel (C, o, a, *offsets):
        # a reflection of axis i reverses the offsets along i and multiplies a Legendre moment
        # (and a local coefficient) of degree m along i by (-1)**m; a permutation of the axes
        # permutes the offsets' axes and the degrees alike
        if not self._symmetries:
            return w
        d = len(self.grid_shape)
        total = None
        for perm, flips, index, sign in self._symmetries:
            t = w.flip([3 + i for i in range(d) if flips[i]]) if any(flips) else w
            t = t.permute(0, 1, 2, *(3 + k for k in perm))
            if modes:
                sign = sign.to(w.dtype).to(w.device)
                index = index.to(w.device)
                t = t.index_select(1, index).index_select(2, index)
                t = t * sign.view(1, -1, 1, *([1] * d)) * sign.view(1, 1, -1, *([1] * d))
            total = t if total is None else total + t
        return total / len(self._symmetries)

    def extra_repr(self) -> str:
        if self.far in ("grids", "stationary"):
            return (f"grid_shape={self.grid_shape}, channels={self.channels}, far={self.far!r}, "
                    f"degree={self.degree}, near_radius={self.near_radius}, "
                    f"grid_radius={self.grid_radius}, levels={self.n_levels}, "
                    f"boundary={self.boundary!r}" + (", symmetric=True" if self.symmetric else ""))
        return (f"grid_shape={self.grid_shape}, channels={self.channels}, leaf_side={self.leaf_side}, "
                f"degree={self.degree}, expansion={self.expansion!r}, near_radius={self.near_radius}, "
                f"levels={self.n_levels}, "
                f"boundary={self.boundary!r}, share_levels={self.share_levels}"
                + (", symmetric=True" if self.symmetric else "")
                + (f", coupling_rank={self.coupling_rank}" if self.coupling_rank else ""))

    # ------------------------------------------------------------------ apply
    def _continue(self, t: torch.Tensor, pad: int | Sequence[int]) -> torch.Tensor:
        """Pad the spatial axes of ``(B, Ch, *sp)`` by ``pad`` points (one count, or one per
        axis) following the boundary mode (the far field continues box moments instead,
        :func:`moment_matrix`)."""
        d = t.ndim - 2
        pads = [int(pad)] * d if isinstance(pad, int) else [int(p) for p in pad]
        if not any(pads):
            return t
        if self.boundary == "zeros":
            return F.pad(t, [p for p in reversed(pads) for _ in (0, 1)])
        for k in range(d):
            ax, n, pad = 2 + k, t.shape[2 + k], pads[k]
            if pad == 0:
                continue
            if self.boundary == "periodic":
                left, right = t.narrow(ax, n - pad, pad), t.narrow(ax, 0, pad)
            elif self.boundary == "dirichlet":
                # grid points are interior nodes; the boundary node (value 0) lies one spacing
                # outside, and the odd image is taken about it
                zero = torch.zeros_like(t.narrow(ax, 0, 1))
                left = torch.cat([-t.narrow(ax, 0, pad - 1).flip(ax), zero], ax)
                right = torch.cat([zero, -t.narrow(ax, n - pad + 1, pad - 1).flip(ax)], ax)
            else:
                left, right = t.narrow(ax, 0, pad).flip(ax), t.narrow(ax, n - pad, pad).flip(ax)
            t = torch.cat([left, t, right], ax)
        return t

    def _padded_moments(self, x: torch.Tensor, j: int) -> torch.Tensor:
        # (B, C, *grid) -> (B, C, r, *(boxes + 6)): moments of the boxes and of their images
        # three boxes past each end, one tensordot per axis (moment_matrix)
        d = len(self.grid_shape)
        t = x
        for k in range(d):
            t = torch.tensordot(t, getattr(self, f"mom{j}_{k}"), dims=([2], [2]))  # -> (.., a_k, u_k)
        # (B, C, a_1, u_1, ..., a_d, u_d) -> (B, C, a_1..a_d, u_1..u_d)
        t = t.permute(0, 1, *range(2, 2 + 2 * d, 2), *range(3, 3 + 2 * d, 2))
        t = t.reshape(x.shape[0], self.channels, (self.degree + 1)**d, *t.shape[2 + d:])
        return t if self.expansion == "tensor" else t.index_select(2, self._modes)

    def _evaluate(self, c: torch.Tensor, j: int) -> torch.Tensor:
        # (B, C * r, *boxes) -> (B, C, *grid): local expansions evaluated on the grid, one axis
        # at a time through the level's evaluation matrices (points, moment, box)
        d = len(self.grid_shape)
        t = c.reshape(c.shape[0], self.channels, self.rank, *c.shape[2:])
        if self.expansion != "tensor":
            full = t.new_zeros(t.shape[0], self.channels, (self.degree + 1)**d, *t.shape[3:])
            t = full.index_copy(2, self._modes, t)
        t = t.reshape(c.shape[0], self.channels, *([self.degree + 1] * d), *c.shape[2:])
        for k in range(d):
            # the next moment axis is at 2, its box axis at 2 + d - k; points go last
            t = torch.tensordot(t, getattr(self, f"eval{j}_{k}"), dims=([2, 2 + d - k], [1, 2]))
        return t

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the operator to ``x`` of shape ``(B, C, *grid_shape)``."""
        if x.ndim != len(self.grid_shape) + 2 or tuple(x.shape[1:]) != (self.channels, *self.grid_shape):
            raise ValueError(f"input shape {tuple(x.shape)}; expected (batch, {self.channels}, "
                             f"*{self.grid_shape})")
        if self.far == "stationary":
            # the near kernel is part of the one stationary kernel
            return self._circular(x)
        near = self._symmetrize(self._near_kernel()[:, :, None], modes=False)
        y = _convolve(self._continue(x, self.near_radius)[:, :, None], near)[:, :, 0]
        if self.far == "grids":
            return y + self._grids(x)
        for j in range(self.n_levels):
            loc = _convolve(self._padded_moments(x, j), self._kernel(j))
            y = y + self._evaluate(loc.flatten(1, 2), j)
        return y

    def _circular(self, x: torch.Tensor) -> torch.Tensor:
        # The stationary kernel (offsets -(n-1)..n-1 per axis) summed over the continued field,
        # as one circular convolution. Each boundary mode's continuation is periodic (periodic:
        # period n; odd images about the boundary nodes: 2(n + 1); even images about the edges:
        # 2n; zeros: any period >= 2n - 1), and the kernel is shorter than the period, so the
        # circular sum over one period of the extended field is the sum over the continued
        # field: FFTs of about 2n points per axis, not of the 3n - 2 of the continued field.
        d = len(self.grid_shape)
        t = x
        for k, n in enumerate(self.grid_shape):
            ax = 2 + k
            if self.boundary == "dirichlet":
                zero = torch.zeros_like(t.narrow(ax, 0, 1))
                t = torch.cat([t, zero, -t.flip(ax), zero], ax)
            elif self.boundary == "neumann":
                t = torch.cat([t, t.flip(ax)], ax)
            elif self.boundary == "zeros":
                t = F.pad(t, [0, 0] * (d - 1 - k) + [0, n - 1])
        periods = tuple(t.shape[2:])
        dims = tuple(range(2, 2 + d))
        spec = torch.fft.rfftn(t, dim=dims) * self._stationary_spectrum(periods, t.dtype)[None]
        y = torch.fft.irfftn(spec, s=periods, dim=dims)
        for k, n in enumerate(self.grid_shape):
            y = y.narrow(2 + k, 0, n)
        return y

    def _stationary_spectrum(self, periods: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        # rfftn of the stationary kernel folded onto the periods (entry e holds the offsets
        # congruent to e), (C, *half spectrum). A frozen operator (a convex-fitted linear path
        # kept fixed during training) reuses it until a parameter changes in place.
        params = list(self.parameters())
        key = None
        if not any(p.requires_grad for p in params):
            key = (periods, dtype, tuple((p.data_ptr(), p._version, p.dtype) for p in params))
            cached = getattr(self, "_spectrum_cache", None)
            if cached is not None and cached[0] == key:
                return cached[1]
        w = self._stationary_kernel()[:, 0]
        d = len(self.grid_shape)
        for axis, (n, period) in enumerate(zip(self.grid_shape, periods, strict=True), start=1):
            # entry p is offset p - (n - 1); pad to a whole number of periods and sum them
            reps = -(-w.shape[axis] // period)
            t = F.pad(w, [0, 0] * (d - axis) + [0, reps * period - w.shape[axis]])
            w = t.unflatten(axis, (reps, period)).sum(axis).roll(-(n - 1), axis)
        spec = torch.fft.rfftn(w.to(dtype), dim=tuple(range(1, 1 + d)))
        if key is not None:
            self._spectrum_cache = (key, spec)
        return spec

    def _grids(self, x: torch.Tensor) -> torch.Tensor:
        # sum_j P_j K_j R_j x on the continued field, evaluated on the grid
        d = len(self.grid_shape)
        periodic = self.boundary == "periodic"  # circular grids; else continued, then zeros
        inner = min(min(min(p) for p in self._pads), min(self.grid_shape) - 1)
        t = self._continue(x, inner)  # images (their first reflection), then zeros
        t = F.pad(t, [p - inner for pair in reversed(self._pads) for p in pair])
        coarse = []
        for _ in range(self.n_levels):
            t = restrict(t, self._mask, d, periodic)
            coarse.append(t)
        acc = None
        for j in reversed(range(self.n_levels)):
            k = self._symmetrize(self._coarse_kernel(j + 1)[:, :, None], modes=False)
            c = coarse[j]
            for axis, size in enumerate(k.shape[3:]):
                r = (size - 1) // 2
                c = (wrap(c, 2 + axis, r) if periodic else
                     F.pad(c, [0, 0] * (d - 1 - axis) + [r, r]))
            v = _convolve(c[:, :, None], k)[:, :, 0]
            acc = prolong(v if acc is None else acc + v, self._mask, d, periodic)
        for k, (n, (left, _)) in enumerate(zip(self.grid_shape, self._pads, strict=True)):
            acc = acc.narrow(2 + k, left, n)
        return acc

    # ------------------------------------------------------------------ fitting
    def fit_linear(self, x: torch.Tensor, y: torch.Tensor, ridge: float = 0.0,
                   max_iter: int = 300, validate: Callable[[], float] | None = None,
                   check_every: int = 25, solver: str = "lbfgs") -> LeastSquaresFit:
        """Fit near kernel and couplings (gains fixed) to pairs ``y ≈ A x``.

        The objective ``||A x - y||^2 / ||y||^2 + ridge * ||θ||^2`` is a convex quadratic in
        the fitted parameters ``θ``. ``x, y``: ``(n, C, *grid_shape)``. ``solver="lbfgs"``
        (default): L-BFGS from the current parameters; with ``validate`` (an error on held-out
        pairs, a function of no arguments) the iteration count is chosen by early stopping,
        checked every ``check_every`` iterations up to ``max_iter``
        (:func:`~neuralhss.hss._lstsq.lbfgs_least_squares`). ``solver="lstsq"``: the exact
        minimiser, through the QR factorisation of the Jacobian (one evaluation per parameter
        and block of pairs, :func:`~neuralhss.hss._lstsq.direct_least_squares`), for operators
        with few parameters (the nested and stationary grids' few hundred in 2-D), where
        L-BFGS can stall far above it; ``max_iter`` and ``check_every`` are then unused and
        ``validate`` is only reported. Returns the
        :class:`~neuralhss.hss._lstsq.LeastSquaresFit` (relative squared misfit, iterations
        used, validation history).
        """
        if solver not in LINEAR_SOLVERS:
            raise ValueError(f"solver={solver!r}; use one of {LINEAR_SOLVERS}")
        if self.coupling_mix is not None:
            raise ValueError("fit_linear needs an operator linear in its parameters; build it "
                             "without coupling_rank")
        if x.shape[1:] != (self.channels, *self.grid_shape) or y.shape != x.shape:
            raise ValueError(f"x {tuple(x.shape)} and y {tuple(y.shape)} must both be "
                             f"(n, {self.channels}, *{self.grid_shape})")
        if not (torch.isfinite(x).all() and torch.isfinite(y).all()):
            raise ValueError("x or y holds NaN or inf; clean the data before fitting")
        with self._plain_units():
            if solver == "lstsq":
                return direct_least_squares(self, self.linear_parameters(), x, y, ridge=ridge,
                                            validate=validate, tied=self._orbit_labels())
            return lbfgs_least_squares(self, self.linear_parameters(), x, y, ridge=ridge,
                                       max_iter=max_iter, validate=validate, check_every=check_every)
