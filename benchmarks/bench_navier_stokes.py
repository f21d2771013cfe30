"""Navier–Stokes (vorticity form, Arakawa + SSP-RK3) step cost vs a textbook ``np.roll`` step.

Baseline: the same discretisation written the obvious way — every neighbour of ψ and w a
``np.roll`` copy, the Arakawa Jacobian and 5-point Laplacian from those copies, ψ by the same
FFT Poisson solve, the same SSP-RK3 stages — measured in the same run, interleaved. Also
reported: the FFT floor (the two FFTs per stage of the streamfunction solve, three stages),
per-step time at 32²..256² with its log-log slope, per-sample step time for a batch of 16 at
64², and the wall time of one typical operator-learning sample: 64², ν = 1e-3, Li et al.
forcing, T = 10, default cfl, initial vorticity a Gaussian random field with the covariance
shape (−Δ + 49)^(−5/2) of the FNO benchmark and its rms 0.26.

    .venv/bin/python benchmarks/bench_navier_stokes.py
"""

from __future__ import annotations

import time

import numpy as np
import scipy.fft as sfft
from _common import interleaved, peak_rss_mib, write_result

from neuralhss import fields
from neuralhss.grid import Grid
from neuralhss.solvers import navier_stokes as ns
from neuralhss.solvers import poisson

SIZES = (32, 64, 128, 256)


def roll_rhs(w: np.ndarray, f: np.ndarray, nu: float, h: float, inv: np.ndarray) -> np.ndarray:
    """−J_A(ψ, w) + νΔ_h w + f on the unit square, every neighbour an np.roll copy."""
    psi = sfft.irfft2(sfft.rfft2(w) * inv, s=w.shape[-2:])

    def sh(a, dy, dx):
        return np.roll(a, (-dy, -dx), axis=(-2, -1))

    pE, pW, pN, pS = sh(psi, 0, 1), sh(psi, 0, -1), sh(psi, 1, 0), sh(psi, -1, 0)
    pNE, pNW, pSE, pSW = sh(psi, 1, 1), sh(psi, 1, -1), sh(psi, -1, 1), sh(psi, -1, -1)
    wE, wW, wN, wS = sh(w, 0, 1), sh(w, 0, -1), sh(w, 1, 0), sh(w, -1, 0)
    wNE, wNW, wSE, wSW = sh(w, 1, 1), sh(w, 1, -1), sh(w, -1, 1), sh(w, -1, -1)
    jpp = (pE - pW) * (wN - wS) - (pN - pS) * (wE - wW)
    jpx = wN * (pNE - pNW) - wS * (pSE - pSW) - wE * (pNE - pSE) + wW * (pNW - pSW)
    jxp = pE * (wNE - wSE) - pW * (wNW - wSW) - pN * (wNE - wNW) + pS * (wSE - wSW)
    jac = (jpp + jpx + jxp) / (12 * h * h)
    return jac + nu * (wE + wW + wN + wS - 4 * w) / h**2 + f


def roll_step(w: np.ndarray, f: np.ndarray, nu: float, h: float, inv: np.ndarray, dt: float) -> np.ndarray:
    w1 = w + dt * roll_rhs(w, f, nu, h, inv)
    w2 = 0.75 * w + 0.25 * (w1 + dt * roll_rhs(w1, f, nu, h, inv))
    return w / 3 + 2 / 3 * (w2 + dt * roll_rhs(w2, f, nu, h, inv))


def initial(n: int, seed: int = 0, n_samples: int | None = None) -> np.ndarray:
    return fields.grf(Grid((n, n), bc="periodic"), seed, length_scale=1 / 7, smoothness=1.5,
                      amplitude=0.26, zero_mean=True, n_samples=n_samples)


def main() -> None:
    nu, dt = 1e-3, 1e-3
    rows = []
    for n in SIZES:
        w = initial(n)[None]
        f = ns.li_forcing((n, n))[None]
        h = 1.0 / n
        inv = poisson.symbol((n, n), (1.0, 1.0), "periodic", inverse=True)
        model = ns._Model((n, n), (1.0, 1.0), nu, 1)
        ours_w = ns._step(model, w, f, dt, model.rhs(w, f, True)[0])
        base_w = roll_step(w, f, nu, h, inv, dt)
        agree = float(np.abs(ours_w - base_w).max() / np.abs(base_w).max())
        reps = max(1, (64 // n) ** 2 * 8)

        def ours(w=w, f=f, model=model, reps=reps):
            for _ in range(reps):
                ns._step(model, w, f, dt, model.rhs(w, f, True)[0])

        def base(w=w, f=f, h=h, inv=inv, reps=reps):
            for _ in range(reps):
                roll_step(w, f, nu, h, inv, dt)

        def fft_floor(w=w, inv=inv, reps=reps):
            for _ in range(reps * 3):
                sfft.irfft2(sfft.rfft2(w) * inv, s=w.shape[-2:])

        t = interleaved({"ours": ours, "roll": base, "fft": fft_floor}, rounds=15 if n < 256 else 7)
        per = {k: v["median_s"] / reps for k, v in t.items()}
        rows.append({"n": n, "step_s": per["ours"], "roll_step_s": per["roll"],
                     "fft_floor_s": per["fft"], "ratio_vs_roll": per["ours"] / per["roll"],
                     "max_rel_difference": agree, "timings": t, "reps": reps})
    slope = float(np.polyfit(np.log([r["n"] ** 2 for r in rows]), np.log([r["step_s"] for r in rows]), 1)[0])

    # Batch of 16 at 64²: per-sample cost of one step.
    wb = initial(64, 1, n_samples=16)
    fb = ns.li_forcing((64, 64))[None]
    model = ns._Model((64, 64), (1.0, 1.0), nu, 1)
    tb = interleaved({"batch16": lambda: ns._step(model, wb, fb, dt, model.rhs(wb, fb, True)[0])},
                     rounds=15)["batch16"]

    # One typical dataset sample.
    w0 = initial(64, 2)
    ns.solve(w0, nu, 0.1, forcing="li")
    t0 = time.perf_counter()
    _, info = ns.solve(w0, nu, 10.0, forcing="li", n_snapshots=10, return_info=True)
    sample_s = time.perf_counter() - t0
    ref = ns.solve(w0, nu, 10.0, forcing="li", cfl=0.1)
    last = ns.solve(w0, nu, 10.0, forcing="li")
    time_err = float(np.abs(last - ref).max() / np.abs(ref).max())

    by_n = {r["n"]: r for r in rows}
    payload = {
        "problem": "2-D vorticity NS, Arakawa Jacobian, 5-point Laplacian, SSP-RK3, unit square, "
                   "nu=1e-3, Li forcing, GRF initial vorticity",
        "baseline": "same scheme with np.roll neighbour copies (textbook); FFT floor = 3x(rfft2+irfft2)",
        "results": [{k: v for k, v in r.items() if k != "timings"} | {"timings": r["timings"]}
                    for r in rows],
        "step_time_scaling_exponent_in_N": slope,
        "batch16_64_per_sample_step_s": tb["median_s"] / 16,
        "typical_sample": {"n": 64, "nu": nu, "t_final": 10.0, "cfl": ns.DEFAULT_CFL,
                           "seconds": sample_s, "steps": int(info.steps), "dt_min": info.dt_min,
                           "dt_max": info.dt_max, "rel_time_error_vs_cfl_0.1": time_err},
        "peak_rss_mib": peak_rss_mib(),
    }
    r64, r256 = by_n[64], by_n[256]
    summary = (f"step 64² {r64['step_s'] * 1e3:.2f} ms (roll {r64['roll_step_s'] * 1e3:.2f}, "
               f"FFT floor {r64['fft_floor_s'] * 1e3:.2f}), 256² {r256['step_s'] * 1e3:.1f} ms "
               f"(roll {r256['roll_step_s'] * 1e3:.1f}, FFT floor {r256['fft_floor_s'] * 1e3:.1f}); "
               f"slope {slope:.2f} in N; batch-16 64² {tb['median_s'] / 16 * 1e3:.2f} ms/sample-step; "
               f"sample 64² T=10: {sample_s:.2f} s, {int(info.steps)} steps, time error {time_err:.1e}")
    write_result("bench_navier_stokes", payload, summary)


if __name__ == "__main__":
    main()
