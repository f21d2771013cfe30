"""Fused explicit Gray–Scott steps on the periodic 5-point stencil (numba-compiled kernels).

The private kernels of :func:`neuralhss.solvers.gray_scott.solve` with ``scheme="ab2"``. The
state is (w, v) with w = 1 − u, so that the resting state (u, v) = (1, 0) is the zero state and
stays zero bitwise (every term below vanishes at w = v = 0). The right-hand sides are

    R_w = Du Δ_h w − F w + r,   R_v = Dv Δ_h v − (F + k) v + r,   r = (1 − w) v²,

with Δ_h the periodic 5-point Laplacian, and one Adams–Bashforth 2 step is

    yⁿ⁺¹ = yⁿ + dt (3/2 Rⁿ − 1/2 Rⁿ⁻¹).

A step is one sweep over the grid that reads (w, v) and the previous rates and writes the new
state and the new rates: each node is loaded once, the stencil, the reaction and the update are
fused, and nothing is allocated. That is why it runs faster per step than a solver that
evaluates the Laplacian, the reaction and the update in separate passes
(``benchmarks/bench_gray_scott.py``). Compiled on first use and cached on disk by numba, one
thread (so results do not depend on the core count).
"""

from __future__ import annotations

from numba import njit


@njit(cache=True, inline="always")
def _rates_at(w, v, i, im, ip, j, jm, jp, cux, cuy, cvx, cvy, f, fk):  # pragma: no cover - numba
    wc = w[i, j]
    vc = v[i, j]
    lw = cux * (w[im, j] + w[ip, j] - 2.0 * wc) + cuy * (w[i, jm] + w[i, jp] - 2.0 * wc)
    lv = cvx * (v[im, j] + v[ip, j] - 2.0 * vc) + cvy * (v[i, jm] + v[i, jp] - 2.0 * vc)
    r = (1.0 - wc) * vc * vc
    return lw - f * wc + r, lv - fk * vc + r


@njit(cache=True)
def rates(w, v, rw, rv, cux, cuy, cvx, cvy, f, fk):  # pragma: no cover - numba
    """(R_w, R_v) of the 2-D state (w, v) into ``rw``, ``rv`` (all ``(nx, ny)`` float64).

    ``cux = Du/hx²``, ``cuy = Du/hy²``, ``cvx``, ``cvy`` likewise for Dv; ``f = F``,
    ``fk = F + k``."""
    nx, ny = w.shape
    for i in range(nx):
        im = i - 1 if i > 0 else nx - 1
        ip = i + 1 if i < nx - 1 else 0
        for j in range(ny):
            jm = j - 1 if j > 0 else ny - 1
            jp = j + 1 if j < ny - 1 else 0
            rw[i, j], rv[i, j] = _rates_at(w, v, i, im, ip, j, jm, jp, cux, cuy, cvx, cvy, f, fk)


@njit(cache=True, inline="always")
def _update(w, v, w1, v1, rw, rv, a, c, i, im, ip, j, jm, jp, cux, cuy, cvx, cvy, f,
            fk):  # pragma: no cover - numba
    gw, gv = _rates_at(w, v, i, im, ip, j, jm, jp, cux, cuy, cvx, cvy, f, fk)
    w1[i, j] = w[i, j] + (a * gw - c * rw[i, j])
    v1[i, j] = v[i, j] + (a * gv - c * rv[i, j])
    rw[i, j] = gw
    rv[i, j] = gv


@njit(cache=True)
def ab2_steps(w, v, w1, v1, rw, rv, n_steps, dt, cux, cuy, cvx, cvy, f,
              fk):  # pragma: no cover - numba
    """``n_steps`` AB2 steps of the 2-D state (w, v); ``rw``, ``rv`` hold the previous step's
    rates on entry (the current state's rates for a forward-Euler first step) and the last
    step's on return. The state ping-pongs between (w, v) and (w1, v1): after an even number
    of steps it is in (w, v), after an odd number in (w1, v1)."""
    nx, ny = w.shape
    a = 1.5 * dt
    c = 0.5 * dt
    for _ in range(n_steps):
        for i in range(nx):
            im = i - 1 if i > 0 else nx - 1
            ip = i + 1 if i < nx - 1 else 0
            # Interior columns with affine neighbours (vectorised by LLVM), then the two
            # wrap-around columns.
            for j in range(1, ny - 1):
                _update(w, v, w1, v1, rw, rv, a, c, i, im, ip, j, j - 1, j + 1, cux, cuy, cvx,
                        cvy, f, fk)
            _update(w, v, w1, v1, rw, rv, a, c, i, im, ip, 0, ny - 1, 1 if ny > 1 else 0, cux,
                    cuy, cvx, cvy, f, fk)
            if ny > 1:
                _update(w, v, w1, v1, rw, rv, a, c, i, im, ip, ny - 1, ny - 2, 0, cux, cuy, cvx,
                        cvy, f, fk)
        w, w1 = w1, w
        v, v1 = v1, v


def coefficients(Du: float, Dv: float, F: float, k: float, spacing: tuple[float, float]) -> tuple:
    """The scalar arguments ``(cux, cuy, cvx, cvy, f, fk)`` of the kernels."""
    hx, hy = spacing
    return (Du / hx**2, Du / hy**2, Dv / hx**2, Dv / hy**2, F, F + k)

