"""Finite-difference PDE solvers, importable in simulation code.

Every solver follows the package grid convention (neuralhss.grid): a homogeneous-Dirichlet axis
of length L with n unknowns uses the interior nodes x_i = i·L/(n+1), a periodic axis the
nodes x_i = i·L/n; arrays are ``(..., n_x[, n_y[, n_z]])`` with leading batch axes: the
first spatial axis is x, then y, z, and ``lengths`` and positions follow that order (also for
the field components of maxwell and the velocity of navier_stokes); ``dim=`` counts the
trailing spatial axes, and the result has the kind of the input (NumPy float64,
or a torch tensor on the input's device and dtype).

Solvers
-------
poisson
    −Δu = f in 1-D/2-D/3-D, (2d+1)-point stencil, Dirichlet and/or periodic axes, solved
    exactly by DST-I/FFT. Second order.
darcy
    −∇·(a∇u) = f in 1-D/2-D/3-D, homogeneous Dirichlet, harmonic-mean face coefficients,
    sparse direct, or conjugate gradients preconditioned by AMG or by the Poisson solve;
    residual reported. Second order.
gray_scott
    Gray–Scott reaction–diffusion on a periodic box, IMEX (diffusion and linear rates exact in
    Fourier space, u·v² explicit), SBDF2 by default; stability-checked step. Second order.
helmholtz
    2-D frequency-domain wave equation −Δu − k0² ε_r u = f (TM time-harmonic Maxwell) with a
    stretched-coordinate PML, 5-point stencil, sparse LU; complex field. Second order.
maxwell
    2-D TMz Maxwell equations in the time domain, Yee FDTD, PEC walls or a split-field PML,
    CFL-checked step; conserves the discrete energy of a lossless cavity. Second order.
navier_stokes
    2-D incompressible Navier–Stokes in vorticity–streamfunction form on a periodic box:
    Arakawa Jacobian (conserves energy and enstrophy), 5-point Laplacian, exact FFT inverse for
    the streamfunction, SSP-RK3 with a stability-controlled step. Second order in space.
"""

from . import darcy, gray_scott, helmholtz, maxwell, navier_stokes, poisson

__all__ = ["darcy", "gray_scott", "helmholtz", "maxwell", "navier_stokes", "poisson"]
