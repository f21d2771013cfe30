"""Darcy solve (default method) vs plain unpreconditioned CG on the same system.

Baseline: textbook conjugate gradients without a preconditioner, written with the same
vector kernels as the solver's own PCG loop, so the ratio isolates the AMG preconditioner;
``scipy.sparse.linalg.cg`` (unpreconditioned) is timed as well for reference.

Problem: −∇·(a∇u) = 1 on the unit square/cube, homogeneous Dirichlet, a = thresholded
Gaussian random field with values 12 and 3 (the classic operator-learning benchmark
coefficient), 2-D 256² and 3-D 64³ interior nodes. Both solvers stop at the same relative
residual ‖f − A u‖/‖f‖ ≤ 1e-10 (the default ``rtol``); the reported residuals are recomputed
from the returned solutions. Goals (issue 2): 256² under 0.5 s and 64³ under 5 s on 2 cores,
assembly and set-up included.

    .venv/bin/python benchmarks/bench_darcy.py
"""

from __future__ import annotations

import numpy as np
import scipy.sparse.linalg as sla
from _common import interleaved, peak_rss_mib, write_result
from scipy.ndimage import gaussian_filter

from neuralhss.solvers import darcy

RTOL = 1e-10
GOALS_S = {2: 0.5, 3: 5.0}


def coefficient(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    g = gaussian_filter(np.random.default_rng(seed).standard_normal(shape),
                        sigma=max(shape) / 16, mode="wrap")
    return np.where(g > 0, 12.0, 3.0)


def dot(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.einsum("i,i->", x, y))  # the same BLAS-free kernel the solver uses


def plain_cg(a: np.ndarray) -> tuple[np.ndarray, int]:
    """Textbook CG, no preconditioner, assembly included, stopping at ‖r‖ ≤ RTOL·‖b‖."""
    A = darcy.operator(a)
    b = np.ones(A.shape[0])
    x = np.zeros_like(b)
    r = b.copy()
    p = r.copy()
    rr = dot(r, r)
    tol2 = (RTOL**2) * dot(b, b)
    for it in range(1, 20 * A.shape[0]):
        ap = A @ p
        alpha = rr / dot(p, ap)
        x += alpha * p
        r -= alpha * ap
        rr_new = dot(r, r)
        if rr_new <= tol2:
            return x, it
        p *= rr_new / rr
        p += r
        rr = rr_new
    return x, it


def scipy_cg(a: np.ndarray) -> tuple[np.ndarray, int]:
    """scipy.sparse.linalg.cg, no preconditioner (what a user would reach for first)."""
    A = darcy.operator(a)
    b = np.ones(A.shape[0])
    count = [0]

    def callback(_xk: np.ndarray) -> None:
        count[0] += 1

    x, _ = sla.cg(A, b, rtol=RTOL, atol=0.0, maxiter=20 * A.shape[0], callback=callback)
    return x, count[0]




def main() -> None:
    rows = []
    for shape in ((256, 256), (64, 64, 64)):
        d = len(shape)
        a = coefficient(shape)
        A = darcy.operator(a)
        b = np.ones(A.shape[0])
        u, info = darcy.solve(a, 1.0, return_info=True)
        x, cg_iters = plain_cg(a)
        cg_res = float(np.linalg.norm(b - A @ x) / np.linalg.norm(b))
        _, scipy_iters = scipy_cg(a)
        other = "amg" if info.method == "spectral" else "spectral"
        _, other_info = darcy.solve(a, 1.0, method=other, return_info=True)
        t = interleaved({"default": lambda a=a: darcy.solve(a, 1.0),
                         "other": lambda a=a, m=other: darcy.solve(a, 1.0, method=m),
                         "plain_cg": lambda a=a: plain_cg(a),
                         "scipy_cg": lambda a=a: scipy_cg(a)}, rounds=3)
        ours, cg = t["default"], t["plain_cg"]
        rows.append({
            "shape": list(shape), "unknowns": int(np.prod(shape)),
            "default_method": info.method, "default_s": ours, "default_iterations": info.iterations,
            "default_residual": info.residual,
            "plain_cg_s": cg, "plain_cg_iterations": cg_iters, "plain_cg_residual": cg_res,
            "scipy_cg_s": t["scipy_cg"], "scipy_cg_iterations": scipy_iters,
            "other_method": other, "other_s": t["other"],
            "other_iterations": other_info.iterations, "other_residual": other_info.residual,
            "speedup_vs_plain_cg": cg["median_s"] / ours["median_s"],
            "max_rel_difference": float(np.abs(u.ravel() - x).max() / np.abs(x).max()),
            "goal_s": GOALS_S[d], "goal_met": bool(ours["median_s"] < GOALS_S[d]),
        })
    payload = {
        "problem": "-div(a grad u) = 1, Dirichlet, unit box, a in {12, 3} thresholded GRF",
        "baseline": "textbook CG without preconditioner (same matrix, rtol and vector kernels "
                    "as the solver); scipy.sparse.linalg.cg without preconditioner for reference",
        "rtol": RTOL, "results": rows, "goals_met": all(r["goal_met"] for r in rows),
        "peak_rss_mib": peak_rss_mib(),
    }
    summary = "; ".join(
        f"{'x'.join(map(str, r['shape']))}: {r['default_method']} "
        f"{r['default_s']['median_s']:.2f} s ({r['default_iterations']} it, res "
        f"{r['default_residual']:.1e}) vs plain CG {r['plain_cg_s']['median_s']:.2f} s "
        f"({r['plain_cg_iterations']} it) = {r['speedup_vs_plain_cg']:.1f}x [{r['other_method']} "
        f"{r['other_s']['median_s']:.2f} s], goal "
        f"<{r['goal_s']} s {'met' if r['goal_met'] else 'NOT met'}" for r in rows)
    write_result("bench_darcy", payload, summary)


if __name__ == "__main__":
    main()
