"""Random input fields: Gaussian random fields by spectral synthesis, and their transforms.

A Gaussian random field (GRF) here is the discrete field

    u = Q diag(g) Q^H xi,    xi ~ N(0, I) on the grid,

where ``Q`` is the orthonormal eigenbasis of the grid Laplacian with the grid's boundary
conditions (DST-I sine vectors on Dirichlet axes, Fourier vectors on periodic axes) and ``g``
is the square root of a Matérn-type spectral density evaluated at the eigen-wavenumbers,

    S(omega) = (1/ell**2 + |omega|**2) ** -(nu + d/2),
    omega_k = pi*k/L (Dirichlet, k = 1..n),   omega_k = 2*pi*k/L (periodic, k = -n/2..n/2).

``ell`` is the correlation length (same unit as the grid lengths), ``nu >= 0`` the smoothness
(larger is smoother; sample paths have about ``nu`` derivatives in the continuum limit) and the
field is scaled so that its mean pointwise variance over the grid equals ``amplitude**2``.
On Dirichlet axes every sample vanishes on the boundary, as the sine series does.
The covariance of the classic Darcy benchmark, ``(-Delta + 9 I)**-2`` in 2-D, is
``length_scale=1/3, smoothness=1``.

Everything is deterministic given the seed: the same seed gives the same field on any
machine and with any number of workers.
"""

from __future__ import annotations

import numpy as np
import scipy.fft as sfft

from ._checks import check_number
from .grid import Grid

Seed = int | np.random.Generator | np.random.SeedSequence | None


def as_generator(seed: Seed) -> np.random.Generator:
    """A ``numpy.random.Generator`` from an int, a ``SeedSequence`` or a generator (kept as is)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None:
        raise ValueError("seed is None; pass an int, a SeedSequence or a numpy Generator so that "
                         "the field is reproducible")
    return np.random.default_rng(seed)


def wavenumbers(grid: Grid) -> list[np.ndarray]:
    """Eigen-wavenumbers ``omega`` (rad per length unit) of each axis, in transform order."""
    out = []
    for n, L, bc in zip(grid.shape, grid.lengths, grid.bc, strict=True):
        if bc == "dirichlet":
            out.append(np.pi * np.arange(1, n + 1) / L)
        else:
            out.append(2 * np.pi * sfft.fftfreq(n, d=L / n))
    return out


def matern_spectrum(grid: Grid, length_scale: float, smoothness: float) -> np.ndarray:
    """Unnormalised Matérn-type spectral density on the grid's eigen-wavenumbers, shape ``grid.shape``."""
    omega2 = sum(np.meshgrid(*[w**2 for w in wavenumbers(grid)], indexing="ij"))
    return (1.0 / length_scale**2 + omega2) ** (-(smoothness + grid.dim / 2.0))


def _check_positive(**kwargs: float) -> None:
    for name, value in kwargs.items():
        check_number(value, name)


def grf(
    grid: Grid,
    seed: Seed,
    *,
    length_scale: float = 0.1,
    smoothness: float = 1.0,
    amplitude: float = 1.0,
    zero_mean: bool = False,
    n_samples: int | None = None,
) -> np.ndarray:
    """Sample a Gaussian random field with a Matérn-type spectrum (module docstring).

    Parameters
    ----------
    grid : Grid
        Where the field lives; its boundary conditions choose sine or Fourier synthesis per axis.
    seed : int, SeedSequence or numpy Generator
        Source of randomness (required, for reproducibility).
    length_scale : float, default 0.1
        Correlation length ``ell``, in the grid's length unit.
    smoothness : float, default 1.0
        Matérn smoothness ``nu >= 0``.
    amplitude : float, default 1.0
        Root-mean-square of the field over the grid (in expectation).
    zero_mean : bool, default False
        Subtract each sample's spatial mean (needed for periodic Poisson sources).
    n_samples : int, optional
        If given, return ``n_samples`` independent fields stacked on a leading axis.

    Returns
    -------
    numpy.ndarray
        float64 of shape ``grid.shape`` or ``(n_samples, *grid.shape)``.
    """
    _check_positive(length_scale=length_scale, amplitude=amplitude)
    check_number(smoothness, "smoothness", strict=False)
    if n_samples is not None and (int(n_samples) != n_samples or n_samples < 1):
        raise ValueError(f"n_samples={n_samples!r} must be a positive integer")
    rng = as_generator(seed)
    spectrum = matern_spectrum(grid, length_scale, smoothness)
    # Orthonormal transforms: mean pointwise variance = sum(g**2)/N, so this g gives amplitude**2.
    g = amplitude * np.sqrt(spectrum * (grid.size / spectrum.sum()))
    lead = () if n_samples is None else (int(n_samples),)
    xi = rng.standard_normal(lead + grid.shape)
    d = grid.dim
    spatial = list(range(xi.ndim - d, xi.ndim))
    periodic = [ax for ax, bc in zip(spatial, grid.bc, strict=True) if bc == "periodic"]
    dirichlet = [ax for ax, bc in zip(spatial, grid.bc, strict=True) if bc == "dirichlet"]
    if periodic:
        coef = sfft.fftn(xi, axes=periodic, norm="ortho") * g
        u = sfft.ifftn(coef, axes=periodic, norm="ortho").real
    else:
        u = xi * g
    if dirichlet:
        # Coefficients of white noise in an orthonormal basis are again white noise, so the sine
        # coefficients can be drawn directly; DST-I with norm="ortho" is its own inverse.
        u = sfft.dstn(u, type=1, axes=dirichlet, norm="ortho")
    if zero_mean:
        u = u - u.mean(axis=tuple(spatial), keepdims=True)
    return u


def threshold(field: np.ndarray, low: float, high: float, level: float = 0.0) -> np.ndarray:
    """Piecewise-constant coefficient: ``high`` where ``field >= level``, ``low`` elsewhere.

    With a GRF this gives the two-phase media of the classic Darcy benchmark (``low=3``,
    ``high=12``). Output dtype float64, same shape as ``field``.
    """
    if not (np.isfinite(low) and np.isfinite(high)):
        raise ValueError(f"threshold values low={low!r}, high={high!r} must be finite")
    return np.where(np.asarray(field) >= level, float(high), float(low))


def lognormal(field: np.ndarray, mean: float = 0.0, scale: float = 1.0) -> np.ndarray:
    """Positive coefficient ``exp(mean + scale * field)`` (a log-normal field for a GRF input)."""
    if not (np.isfinite(mean) and np.isfinite(scale)):
        raise ValueError(f"lognormal mean={mean!r}, scale={scale!r} must be finite")
    return np.exp(mean + scale * np.asarray(field, dtype=np.float64))
