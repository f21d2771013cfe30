"""Fused explicit Gray–Scott steps on the periodic 5-point stencil (numba-compiled kernels).

The private kernels of :func:`neuralhss.solvers.gray_scott.solve` with ``scheme="ab2"`` and
``scheme="rkc2"`` (the RKC2 part at the end of this module). The
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



# --------------------------------------------------------------------------- RKC2
# Second-order Runge–Kutta–Chebyshev with s stages (Sommeijer, Shampine & Verwer's damped
# Chebyshev recursion, damping eps): Y0 = yⁿ, Y1 = Y0 + μ̃₁ dt R(Y0),
#   Yj = (1 − μⱼ − νⱼ) Y0 + μⱼ Yⱼ₋₁ + νⱼ Yⱼ₋₂ + μ̃ⱼ dt R(Yⱼ₋₁) + γ̃ⱼ dt R(Y0),  j = 2..s,
# yⁿ⁺¹ = Ys. Each stage is one fused sweep like an AB2 step; the stable interval on the negative
# real axis grows like s² (:func:`rkc2_tableau`).


def _chebyshev(s: int, eps: float) -> tuple[float, float, list, list, list]:
    """w0, w1 and T_j, T_j', T_j'' (j = 0..s) at w0 for the damped RKC2 recursion."""
    w0 = 1.0 + eps / s**2
    T, dT, ddT = [1.0, w0], [0.0, 1.0], [0.0, 0.0]
    for _ in range(2, s + 1):
        T.append(2 * w0 * T[-1] - T[-2])
        dT.append(2 * T[-2] + 2 * w0 * dT[-1] - dT[-2])
        ddT.append(4 * dT[-2] + 2 * w0 * ddT[-1] - ddT[-2])
    return w0, dT[s] / ddT[s], T, dT, ddT


def rkc2_tableau(s: int, eps: float = 2.0 / 13.0) -> tuple:
    """Coefficients of the s-stage RKC2 method: ``(mu_t, mu, nu, gam, beta)``.

    ``mu_t[j]``, ``mu[j]``, ``nu[j]``, ``gam[j]`` for stages j = 1..s (index 0 unused; ``mu``,
    ``nu``, ``gam`` also unused at j = 1) and ``beta`` = (1 + w0)/w1: the stability polynomial
    P(z) = a_s + b_s T_s(w0 + w1 z) (:func:`rkc2_polynomial`) satisfies |P| <= 1 on
    [−beta, 0], an interval that grows like 0.65 s²."""
    if s < 2:
        raise ValueError(f"RKC2 needs at least 2 stages; got {s}.")
    w0, w1, T, dT, ddT = _chebyshev(s, eps)
    b = [0.0] * (s + 1)
    for j in range(2, s + 1):
        b[j] = ddT[j] / dT[j] ** 2
    b[0] = b[1] = b[2]
    a = [1.0 - b[j] * T[j] for j in range(s + 1)]
    mu_t, mu, nu, gam = ([0.0] * (s + 1) for _ in range(4))
    mu_t[1] = b[1] * w1
    for j in range(2, s + 1):
        mu[j] = 2 * b[j] * w0 / b[j - 1]
        nu[j] = -b[j] / b[j - 2]
        mu_t[j] = 2 * b[j] * w1 / b[j - 1]
        gam[j] = -a[j - 1] * mu_t[j]
    return mu_t, mu, nu, gam, (1.0 + w0) / w1


def rkc2_polynomial(s: int, z: float, eps: float = 2.0 / 13.0) -> float:
    """P_s(z), the growth factor of one s-stage RKC2 step on y' = λy with z = dt·λ."""
    w0, w1, T, dT, ddT = _chebyshev(s, eps)
    arg = w0 + w1 * z
    x = [1.0, arg]
    for _ in range(2, s + 1):
        x.append(2 * arg * x[-1] - x[-2])
    bs = ddT[s] / dT[s] ** 2
    return 1.0 - bs * T[s] + bs * x[s]


@njit(cache=True, inline="always")
def _rates_and_euler(w, v, rw, rv, w1, v1, a, i, im, ip, j, jm, jp, cux, cuy, cvx, cvy, f,
                     fk):  # pragma: no cover - numba
    gw, gv = _rates_at(w, v, i, im, ip, j, jm, jp, cux, cuy, cvx, cvy, f, fk)
    rw[i, j] = gw
    rv[i, j] = gv
    w1[i, j] = w[i, j] + a * gw
    v1[i, j] = v[i, j] + a * gv


@njit(cache=True)
def rates_and_step(w, v, rw, rv, w1, v1, a, cux, cuy, cvx, cvy, f, fk):  # pragma: no cover - numba
    """(R_w, R_v) of the 2-D state (w, v) into ``rw``, ``rv`` and the Euler-type update
    (w, v) + a·(R_w, R_v) into ``w1``, ``v1`` (all ``(nx, ny)`` float64): RKC2's first stage,
    and AB2's starting rates (with ``a = 0``). ``cux = Du/hx²``, ``cuy = Du/hy²``, ``cvx``,
    ``cvy`` likewise for Dv; ``f = F``, ``fk = F + k``."""
    nx, ny = w.shape
    for i in range(nx):
        im = i - 1 if i > 0 else nx - 1
        ip = i + 1 if i < nx - 1 else 0
        # Interior columns first, as in ab2_steps: wrapped column indices computed per node
        # keep LLVM from vectorising the sweep.
        for j in range(1, ny - 1):
            _rates_and_euler(w, v, rw, rv, w1, v1, a, i, im, ip, j, j - 1, j + 1, cux, cuy, cvx,
                             cvy, f, fk)
        _rates_and_euler(w, v, rw, rv, w1, v1, a, i, im, ip, 0, ny - 1, 1 if ny > 1 else 0, cux,
                         cuy, cvx, cvy, f, fk)
        if ny > 1:
            _rates_and_euler(w, v, rw, rv, w1, v1, a, i, im, ip, ny - 1, ny - 2, 0, cux, cuy, cvx,
                             cvy, f, fk)


@njit(cache=True, inline="always")
def _rkc_node(w0, v0, fw, fv, wa, va, wb, vb, wo, vo, c0, mu, nu, mt, gm, i, im, ip, j, jm, jp,
              cux, cuy, cvx, cvy, f, fk):  # pragma: no cover - numba
    gw, gv = _rates_at(wa, va, i, im, ip, j, jm, jp, cux, cuy, cvx, cvy, f, fk)
    wo[i, j] = c0 * w0[i, j] + mu * wa[i, j] + nu * wb[i, j] + mt * gw + gm * fw[i, j]
    vo[i, j] = c0 * v0[i, j] + mu * va[i, j] + nu * vb[i, j] + mt * gv + gm * fv[i, j]


@njit(cache=True)
def _rkc_stage(w0, v0, fw, fv, wa, va, wb, vb, wo, vo, c0, mu, nu, mt, gm, cux, cuy, cvx, cvy,
               f, fk):  # pragma: no cover - numba
    """One stage: (wo, vo) from Y0 = (w0, v0), R(Y0) = (fw, fv), Yⱼ₋₁ = (wa, va) and
    Yⱼ₋₂ = (wb, vb); ``mt``, ``gm`` already multiplied by dt."""
    nx, ny = w0.shape
    for i in range(nx):
        im = i - 1 if i > 0 else nx - 1
        ip = i + 1 if i < nx - 1 else 0
        for j in range(1, ny - 1):
            _rkc_node(w0, v0, fw, fv, wa, va, wb, vb, wo, vo, c0, mu, nu, mt, gm, i, im, ip, j,
                      j - 1, j + 1, cux, cuy, cvx, cvy, f, fk)
        _rkc_node(w0, v0, fw, fv, wa, va, wb, vb, wo, vo, c0, mu, nu, mt, gm, i, im, ip, 0,
                  ny - 1, 1 if ny > 1 else 0, cux, cuy, cvx, cvy, f, fk)
        if ny > 1:
            _rkc_node(w0, v0, fw, fv, wa, va, wb, vb, wo, vo, c0, mu, nu, mt, gm, i, im, ip,
                      ny - 1, ny - 2, 0, cux, cuy, cvx, cvy, f, fk)


@njit(cache=True)
def rkc2_steps(W, V, fw, fv, cur, n_steps, dt, mu_t, mu, nu, gam, cux, cuy, cvx, cvy, f,
               fk):  # pragma: no cover - numba
    """``n_steps`` RKC2 steps; ``W``, ``V``: ``(4, nx, ny)`` slot arrays whose slot ``cur``
    holds the state (w, v). Returns the slot of the new state."""
    s = len(mu_t) - 1
    for _ in range(n_steps):
        k0 = cur
        a = (k0 + 1) % 4
        rates_and_step(W[k0], V[k0], fw, fv, W[a], V[a], mu_t[1] * dt, cux, cuy, cvx, cvy, f,
                       fk)
        jm1, jm2 = a, k0
        for j in range(2, s + 1):
            out = 0
            while out == k0 or out == jm1 or out == jm2:
                out += 1
            _rkc_stage(W[k0], V[k0], fw, fv, W[jm1], V[jm1], W[jm2], V[jm2], W[out], V[out],
                       1.0 - mu[j] - nu[j], mu[j], nu[j], mu_t[j] * dt, gam[j] * dt,
                       cux, cuy, cvx, cvy, f, fk)
            jm1, jm2 = out, jm1
        cur = jm1
    return cur
