"""Gray–Scott at 256²: neuralhss's solvers (IMEX/FFT and explicit AB2 on the fused stencil)
against py-pde's numba-compiled explicit Euler.

Problem (the same for both): ∂t u = Du Δu − u v² + F(1 − u), ∂t v = Dv Δv + u v² − (F + k) v,
Pearson's units and "spots" regime (Du = 2e-5, Dv = 1e-5, F = 0.035, k = 0.065), periodic
square of side 2.5 on 256² nodes, 5-point Laplacian (py-pde's default 2-D Cartesian stencil,
``corner_weight`` 0; checked against ``np.roll`` differences in the run), initial data
``gray_scott.initial_perturbation((256, 256), 2.5, seed 0)``, integrated to T = 1000.

Baseline: py-pde (installed for this benchmark only; recorded as "not installed" and skipped
when missing), ``pde.PDE`` with the two right-hand sides as expressions, its fixed-step
``EulerSolver`` on the numba backend. The stepper is built (and compiled) once outside the
timed region and warmed up; a timed call runs the compiled loop from 0 to T on a fresh copy
of the state, with no tracker. Its step: dt = 1, Pearson's step, the largest round step that
forward Euler allows here (dt·Du·8/h² = 1.68 < 2 for the diffusion; at dt = 1.2 its run
reaches |u| ~ 1e17 by T = 1000).

neuralhss: ``gray_scott.solve`` (a) at py-pde's dt = 1 (its defaults: SBDF2, dt = 1; also IMEX
Euler), steps per second; (b) at SBDF2's stability bound dt = 4/3: wall time to T; (c) the
explicit ``scheme="ab2"`` (one fused compiled sweep per step, no FFTs) at its stability bound
on this grid (0.37: explicit diffusion), steps per second and wall time to T. The accuracy of
every run is its max-norm difference at T from an AB2 reference at dt = 1/64 (all codes
integrate the same semi-discrete system, so the difference is time error; the reference's own
error is estimated from the dt = 1/32 run by Richardson). From py-pde's errors at dt = 1 … 1/64
(first order) the benchmark derives the dt py-pde needs to match SBDF2's error at dt = 1, and
the time-to-solution ratio at equal accuracy.

Work precision (one thread): wall time to T against max-norm error at T for SBDF2 and CNAB2 at
dt = 4/3 (SBDF2 only), 1, 1/2, 1/4, 1/8, AB2 at its bound, 1/4, 1/8, RKC2 (as many stages as
the step needs: 3 at dt = 1 to 5 at dt = 4 and 5) at dt = 5, 4, 3, 2, 1, and py-pde's Euler at
dt = 1 ... 1/64, each run timed in ``WP_ROUNDS`` interleaved rounds (median). At each target
error of ``WP_TARGETS`` the time each code needs to reach at most that error is read off its
measured points (the cheapest measured point at or below it, or a log-log interpolation
between two points that bracket it, whichever is cheaper; ``None`` when neither exists, so
nothing is extrapolated), and the ratio py-pde / ours (the fastest of our schemes) is
reported. Drawn in ``docs/gray_scott_work_precision.png``.

Threads: both codes once with one thread (``workers=1``; ``numba.set_num_threads(1)``) and
once with all cores (py-pde's default multithreading of the Laplacian at 256², scipy.fft
workers = all cores), interleaved rounds, medians (and min/max in the JSON). On the shared
2-core development machine the all-cores numbers are dominated by oversubscription (py-pde's
multithreaded Laplacian took 6–24 s for 1000 steps against 0.4–0.6 s on one thread), so the
one-thread rows are the comparison. Also the time per step of the default solver at 256² for
one sample and for a batch of 8, and the machine's load average at start and end.

Also the three FFTs of one step alone, in the solver's buffers: the floor of any step of the
IMEX schemes. Per step at 512² (same square, h halved): SBDF2, AB2 and py-pde, one thread.
Results in ``benchmarks/results/gray_scott.json`` and ``docs/speed.md``.

    .venv/bin/python benchmarks/bench_gray_scott.py
"""

from __future__ import annotations

import math
import os
import statistics
import time
from pathlib import Path

import matplotlib
import numpy as np
from _common import interleaved, peak_rss_mib, write_result

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from neuralhss.solvers import gray_scott as gs

N = 256
L = 2.5
T = 1000.0
REGIME = "spots"
ROUNDS = 5
PP_DT = 1.0
PP_DTS_ACCURACY = (1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625)
#: Reference: AB2 (the most accurate per step of ours) at this step; its error is about 1e-7.
REF_SCHEME, REF_DT = "ab2", 1 / 64
_P = gs.REGIMES[REGIME]
#: AB2's stability bound on this grid (explicit diffusion; gray_scott.stability_bound).
AB2_BOUND = gs.stability_bound("ab2", _P["Du"], _P["Dv"], _P["F"], _P["k"], (N, N), L)
#: Work-precision runs of ours (one thread): scheme -> steps, down to 1/8, where SBDF2's error
#: (about 5e-5) is still a hundred times the reference's.
WP_DTS = {"sbdf2": (4.0 / 3.0, 1.0, 0.5, 0.25, 0.125), "cnab2": (1.0, 0.5, 0.25, 0.125),
          "ab2": (AB2_BOUND, 0.25, 0.125), "rkc2": (5.0, 4.0, 3.0, 2.0, 1.0)}
#: Max-norm errors at T at which the two codes' times are compared (read off the measured
#: work-precision points, never extrapolated).
WP_TARGETS = (2e-2, 1e-2, 3e-3, 1e-3, 3e-4)
WP_ROUNDS = 3


def error(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> float:
    return float(max(np.abs(a[0] - b[0]).max(), np.abs(a[1] - b[1]).max()))


def dt_for_error(errors: dict[str, float], target: float) -> float:
    """Step at which py-pde's error reaches ``target``: log-log interpolation between its measured
    (dt, error) points, first-order extrapolation beyond them."""
    pts = sorted((float(dt), e) for dt, e in errors.items())  # ascending dt
    for (d0, e0), (d1, e1) in zip(pts[:-1], pts[1:], strict=True):
        if e0 <= target <= e1:
            slope = math.log(e1 / e0) / math.log(d1 / d0)
            return d0 * (target / e0) ** (1.0 / slope)
    d, e = pts[0] if target < pts[0][1] else pts[-1]
    return d * target / e


def time_for_error(points: list[tuple[float, float]], target: float) -> float | None:
    """Wall time a code needs to reach an error of at most ``target``, from its measured
    ``(seconds, error)`` points: the cheapest point with error <= ``target``, or a log-log
    interpolation between two points that bracket ``target`` in error, whichever is cheaper;
    ``None`` when there is neither (nothing is extrapolated)."""
    pts = sorted(points)
    below = [t for t, e in pts if e <= target]
    best = min(below) if below else None
    for (t0, e0), (t1, e1) in zip(pts[:-1], pts[1:], strict=True):
        lo, hi = min(e0, e1), max(e0, e1)
        if lo <= target <= hi and e0 != e1:
            w = math.log(target / e0) / math.log(e1 / e0)
            t = t0 * (t1 / t0) ** w
            best = t if best is None else min(best, t)
    return best


def work_precision(u0: np.ndarray, v0: np.ndarray, args: dict, ref: tuple[np.ndarray, np.ndarray],
                   pp: dict | None) -> dict:
    """Time and error of every run of ``WP_DTS`` (and py-pde's ``PP_DTS_ACCURACY``), one
    thread, interleaved rounds; times at the target errors and their ratios."""
    runs = {f"{s}_dt{dt:.4g}": ("ours", s, dt) for s, dts in WP_DTS.items() for dt in dts}
    if pp is not None:
        runs.update({f"py-pde_euler_dt{dt:.4g}": ("py-pde", "euler", dt) for dt in PP_DTS_ACCURACY})

    def run(kind: str, scheme: str, dt: float) -> tuple[np.ndarray, np.ndarray]:
        if kind == "py-pde":
            return py_pde_run(pp, dt)
        u, v = gs.solve(u0, v0, t_final=T, dt=dt, scheme=scheme, workers=1, **args)
        return u[0], v[0]

    times: dict[str, list[float]] = {k: [] for k in runs}
    errors: dict[str, float] = {}
    for _ in range(WP_ROUNDS):
        for name, spec in runs.items():
            t0 = time.perf_counter()
            out = run(*spec)
            times[name].append(time.perf_counter() - t0)
            errors.setdefault(name, error(out, ref))
    points = {k: {"code": spec[0], "scheme": spec[1], "dt": spec[2], "steps": round(T / spec[2]),
                  "wall_s": statistics.median(times[k]), "wall_s_all": times[k],
                  "error_vs_reference": errors[k]} for k, spec in runs.items()}

    def curve(code: str, scheme: str) -> list[tuple[float, float]]:
        return [(r["wall_s"], r["error_vs_reference"]) for r in points.values()
                if r["code"] == code and r["scheme"] == scheme]

    curves = {s: curve("ours", s) for s in WP_DTS}
    if pp is not None:
        curves["py-pde_euler"] = curve("py-pde", "euler")
    at_targets = {}
    for tol in WP_TARGETS:
        row = {name: time_for_error(c, tol) for name, c in curves.items()}
        mine = [row[s] for s in WP_DTS if row[s] is not None]
        row["ours_best"] = min(mine) if mine else None
        pt = row.get("py-pde_euler")
        row["ratio_py-pde_over_ours"] = pt / row["ours_best"] if pt and row["ours_best"] else None
        at_targets[f"{tol:g}"] = row
    return {"rounds": WP_ROUNDS, "points": points, "at_target_errors": at_targets,
            "figure": plot_work_precision(curves)}


def plot_work_precision(curves: dict[str, list[tuple[float, float]]]) -> str:
    """Draw error against wall time per code into the docs; returns the figure's path."""
    path = Path(__file__).resolve().parents[1] / "docs" / "gray_scott_work_precision.png"
    fig, ax = plt.subplots(figsize=(5.5, 4))
    labels = {"sbdf2": "neuralhss SBDF2 (FFT-implicit)", "cnab2": "neuralhss CNAB2 (FFT-implicit)",
              "ab2": "neuralhss AB2 (explicit, fused stencil)",
              "rkc2": "neuralhss RKC2 (explicit, fused stencil)",
              "py-pde_euler": "py-pde explicit Euler (numba)"}
    for name, pts in curves.items():
        pts = sorted(pts)
        ax.loglog([t for t, _ in pts], [e for _, e in pts], "o-", label=labels.get(name, name))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.set_xlabel("wall time to T = 1000, one thread [s]")
    ax.set_ylabel("max-norm error of (u, v) at T")
    ax.set_title("Gray–Scott spots, 256², work precision")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path.relative_to(path.parents[1]))


def five_point_laplacian(f: np.ndarray, h: float) -> np.ndarray:
    return (np.roll(f, 1, 0) + np.roll(f, -1, 0) + np.roll(f, 1, 1) + np.roll(f, -1, 1) - 4 * f) / h**2


def py_pde_setup(u0: np.ndarray, v0: np.ndarray, p: dict) -> dict | None:
    """py-pde problem, compiled steppers per dt, and the Laplacian check; None if missing."""
    try:
        import numba
        import pde
    except ImportError:
        return None
    grid = pde.CartesianGrid([[0.0, L], [0.0, L]], [N, N], periodic=True)
    state = pde.FieldCollection([pde.ScalarField(grid, u0, label="u"),
                                 pde.ScalarField(grid, v0, label="v")])
    F, k = p["F"], p["k"]
    eq = pde.PDE({"u": f"{p['Du']!r} * laplace(u) - u * v**2 + {F!r} * (1 - u)",
                  "v": f"{p['Dv']!r} * laplace(v) + u * v**2 - {F + k!r} * v"})
    probe = np.random.default_rng(1).standard_normal((N, N))
    lap = pde.ScalarField(grid, probe).laplace(bc="periodic").data
    ref_lap = five_point_laplacian(probe, L / N)
    lap_diff = float(np.abs(lap - ref_lap).max() / np.abs(ref_lap).max())
    steppers = {}
    compile_s = {}
    for dt in PP_DTS_ACCURACY:
        t0 = time.perf_counter()
        solver = pde.EulerSolver(eq, backend="numba", adaptive=False)
        stepper = solver.make_stepper(state, dt=dt)
        warm = state.copy()
        stepper(warm, 0.0, 5 * dt)  # compile + first-call costs, outside every timed region
        compile_s[dt] = time.perf_counter() - t0
        steppers[dt] = stepper
    return {"version": pde.__version__, "numba": numba.__version__, "numba_module": numba,
            "state": state, "steppers": steppers, "compile_s": compile_s,
            "laplacian_max_rel_diff": lap_diff}


def py_pde_run(pp: dict, dt: float, one_thread: bool = True) -> tuple[np.ndarray, np.ndarray]:
    numba = pp["numba_module"]
    numba.set_num_threads(1 if one_thread else numba.config.NUMBA_NUM_THREADS)
    s = pp["state"].copy()
    pp["steppers"][dt](s, 0.0, T)
    return s.data[0].copy(), s.data[1].copy()


def per_step_512(p: dict, args: dict) -> dict:
    """ms per step at 512² (same square, so h is halved): py-pde's Euler at dt = 0.25 (its
    diffusion limit there is about 0.3) against SBDF2 at dt = 1 and AB2 at its bound (0.13),
    one thread, interleaved. The per-step cost of each code does not depend on dt."""
    n, steps = 2 * N, 200
    u0, v0 = gs.initial_perturbation((n, n), L, np.random.default_rng(0))
    b512 = gs.stability_bound("ab2", p["Du"], p["Dv"], p["F"], p["k"], (n, n), L)
    fns = {"sbdf2": lambda: gs.solve(u0, v0, t_final=float(steps), dt=1.0, workers=1, **args),
           "ab2": lambda: gs.solve(u0, v0, t_final=steps * b512, dt=b512, scheme="ab2", **args)}
    try:
        import numba
        import pde
    except ImportError:
        pde = None
    if pde is not None:
        numba.set_num_threads(1)
        grid = pde.CartesianGrid([[0.0, L], [0.0, L]], [n, n], periodic=True)
        state = pde.FieldCollection([pde.ScalarField(grid, u0, label="u"),
                                     pde.ScalarField(grid, v0, label="v")])
        eq = pde.PDE({"u": f"{p['Du']!r} * laplace(u) - u * v**2 + {p['F']!r} * (1 - u)",
                      "v": f"{p['Dv']!r} * laplace(v) + u * v**2 - {p['F'] + p['k']!r} * v"})
        stepper = pde.EulerSolver(eq, backend="numba", adaptive=False).make_stepper(state, dt=0.25)
        stepper(state.copy(), 0.0, 1.0)
        fns["py-pde_euler"] = lambda: stepper(state.copy(), 0.0, steps * 0.25)
    res = interleaved(fns, rounds=ROUNDS)
    out = {k: v["median_s"] / steps * 1e3 for k, v in res.items()}
    if "py-pde_euler" in out:
        out["steps_per_s_ratio_sbdf2_vs_py-pde"] = out["py-pde_euler"] / out["sbdf2"]
        out["steps_per_s_ratio_ab2_vs_py-pde"] = out["py-pde_euler"] / out["ab2"]
    return out


def main() -> None:
    p = gs.REGIMES[REGIME]
    args = {"Du": p["Du"], "Dv": p["Dv"], "F": p["F"], "k": p["k"], "lengths": L}
    u0, v0 = gs.initial_perturbation((N, N), L, np.random.default_rng(0))
    load0 = os.getloadavg()[0]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()

    t0 = time.perf_counter()
    ref = gs.solve(u0, v0, t_final=T, dt=REF_DT, scheme=REF_SCHEME, **args)
    ref_s = time.perf_counter() - t0
    half = gs.solve(u0, v0, t_final=T, dt=2 * REF_DT, scheme=REF_SCHEME, **args)
    ref_error_estimate = error(half, ref) / 3.0  # second order: e(2dt) − e(dt) ≈ 3 e(dt)
    ref = (ref[0][0], ref[1][0])

    def ours(scheme: str, dt: float, workers: int | None) -> tuple[np.ndarray, np.ndarray]:
        u, v = gs.solve(u0, v0, t_final=T, dt=dt, scheme=scheme, workers=workers, **args)
        return u[0], v[0]

    ours_runs = {"sbdf2_dt1": ("sbdf2", 1.0), "euler_dt1": ("euler", 1.0),
                 "sbdf2_dt4/3": ("sbdf2", gs.STABILITY_LIMIT["sbdf2"]),
                 "ab2_bound": ("ab2", AB2_BOUND), "rkc2_dt1": ("rkc2", 1.0)}
    accuracy = {name: error(ours(s, dt, None), ref) for name, (s, dt) in ours_runs.items()}

    pp = py_pde_setup(u0, v0, p)
    baseline: dict = {"installed": pp is not None}
    if pp is None:
        baseline["note"] = "py-pde not installed (pip install py-pde to run the comparison)"
    else:
        pp_err = {dt: error(py_pde_run(pp, dt), ref) for dt in PP_DTS_ACCURACY}
        orders = [math.log2(pp_err[a] / pp_err[b])
                  for a, b in zip(PP_DTS_ACCURACY[:-1], PP_DTS_ACCURACY[1:], strict=True)]
        baseline.update({
            "version": pp["version"], "numba": pp["numba"], "solver": "EulerSolver (explicit), numba",
            "dt": PP_DT, "compile_and_warmup_s": pp["compile_s"][PP_DT],
            "laplacian_max_rel_diff_vs_5_point": pp["laplacian_max_rel_diff"],
            "error_vs_reference": {str(dt): e for dt, e in pp_err.items()},
            "observed_orders": orders,
        })

    timing = {}
    for threads in ("1", "all"):
        workers = 1 if threads == "1" else None
        fns = {name: (lambda s=s, dt=dt, w=workers: ours(s, dt, w))
               for name, (s, dt) in ours_runs.items()}
        if pp is not None:
            fns["py-pde_euler_dt1"] = lambda one=threads == "1": py_pde_run(pp, PP_DT, one_thread=one)
        timing[threads] = interleaved(fns, rounds=ROUNDS)

    # Time per step of the default solver (SBDF2), one sample and a batch of 8 (integrated in
    # cache-sized chunks, see gray_scott.CHUNK_NODES).
    per_step = {}
    steps = 200
    u8, v8 = gs.initial_perturbation((8, N, N), L, np.random.default_rng(1))
    for label, (a, b, nb) in {"1_sample": (u0, v0, 1), "batch_8": (u8, v8, 8)}.items():
        res = interleaved({f"workers={w}": (lambda a=a, b=b, w=w: gs.solve(
            a, b, t_final=float(steps), dt=1.0, workers=w, **args)) for w in (1, None)}, rounds=ROUNDS)
        per_step[label] = {k: {"ms_per_step": v["median_s"] / steps * 1e3,
                               "ms_per_step_min": v["min_s"] / steps * 1e3,
                               "ms_per_step_per_sample": v["median_s"] / steps * 1e3 / nb}
                           for k, v in res.items()}

    # The three FFTs of one step alone (forward of dt·u v², inverse of both fields), the floor of
    # any step of this scheme, in the solver's own preallocated buffers, one thread.
    tr = gs._Transform(N, 1)
    phys = np.stack([1.0 - u0, v0])[:, None]
    spec = tr.forward(phys, np.empty((2, 1, N, N // 2 + 1), complex))
    scratch, rbuf = np.empty_like(spec), np.empty_like(spec[0])

    def three_ffts() -> None:
        tr.forward(phys[0], rbuf)
        tr.inverse(spec, scratch, phys)

    fft_floor = interleaved({"three_ffts_x1000": lambda: [three_ffts() for _ in range(1000)]},
                            rounds=ROUNDS)["three_ffts_x1000"]
    fft_floor_ms = fft_floor["median_s"]

    rows = {}
    for threads, t in timing.items():
        row = {}
        for name, (_, dt) in ours_runs.items():
            n_steps = math.ceil(T / dt - 1e-9)  # solve shortens dt to land on T
            row[name] = {"wall_s": t[name]["median_s"], "steps": n_steps,
                         "steps_per_s": n_steps / t[name]["median_s"],
                         "error_vs_reference": accuracy[name], "timing": t[name]}
        if pp is not None:
            tp = t["py-pde_euler_dt1"]
            n_steps = round(T / PP_DT)
            row["py-pde_euler_dt1"] = {"wall_s": tp["median_s"], "steps": n_steps,
                                       "steps_per_s": n_steps / tp["median_s"],
                                       "error_vs_reference": baseline["error_vs_reference"][str(PP_DT)],
                                       "timing": tp}
            ppr = row["py-pde_euler_dt1"]
            dt_match = dt_for_error(baseline["error_vs_reference"], accuracy["sbdf2_dt1"])
            pp_time_match = T / dt_match / ppr["steps_per_s"]  # py-pde's cost per step is dt-independent
            row["comparison"] = {
                "steps_per_s_ratio_sbdf2_vs_py-pde": row["sbdf2_dt1"]["steps_per_s"] / ppr["steps_per_s"],
                "steps_per_s_ratio_euler_vs_py-pde": row["euler_dt1"]["steps_per_s"] / ppr["steps_per_s"],
                "steps_per_s_ratio_ab2_vs_py-pde": row["ab2_bound"]["steps_per_s"] / ppr["steps_per_s"],
                "time_to_T_ratio_py-pde_dt1_over_ab2_bound": ppr["wall_s"] / row["ab2_bound"]["wall_s"],
                "time_to_T_ratio_py-pde_over_sbdf2_dt1": ppr["wall_s"] / row["sbdf2_dt1"]["wall_s"],
                "time_to_T_ratio_py-pde_over_sbdf2_dt4/3": ppr["wall_s"] / row["sbdf2_dt4/3"]["wall_s"],
                "py-pde_dt_for_sbdf2_dt1_error": dt_match,
                "py-pde_time_to_T_at_that_dt_s": pp_time_match,
                "time_at_equal_accuracy_ratio_py-pde_over_sbdf2_dt1":
                    pp_time_match / row["sbdf2_dt1"]["wall_s"],
            }
        rows[threads] = row

    payload = {
        "load_average_1min_start_end": [load0, os.getloadavg()[0]],
        "problem": (f"Gray–Scott {REGIME} (F={p['F']}, k={p['k']}, Du={p['Du']}, Dv={p['Dv']}), periodic "
                    f"square L={L}, {N}² nodes, 5-point Laplacian, T={T}, "
                    f"initial_perturbation seed 0"),
        "baseline": baseline,
        "reference": {"scheme": REF_SCHEME, "dt": REF_DT, "seconds": ref_s,
                      "estimated_error": ref_error_estimate},
        "cores": cores,
        "results_by_threads": rows,
        "time_per_step_default_sbdf2": per_step,
        "fft_floor_ms_per_step_1_thread": fft_floor_ms,
        "ms_per_step_512_1_thread": per_step_512(p, args),
        "work_precision_1_thread": work_precision(u0, v0, args, ref, pp),
        "peak_rss_mib": peak_rss_mib(),
    }
    one = rows["1"]
    if pp is not None:
        c = one["comparison"]
        summary = (f"1 thread: SBDF2 dt=1 {one['sbdf2_dt1']['steps_per_s']:.0f} steps/s "
                   f"(err {one['sbdf2_dt1']['error_vs_reference']:.1e}) vs py-pde Euler dt=1 "
                   f"{one['py-pde_euler_dt1']['steps_per_s']:.0f} steps/s "
                   f"(err {one['py-pde_euler_dt1']['error_vs_reference']:.1e}): per-step ratio "
                   f"{c['steps_per_s_ratio_sbdf2_vs_py-pde']:.2f}; AB2 at its bound dt={AB2_BOUND:.3f} "
                   f"{one['ab2_bound']['steps_per_s']:.0f} steps/s (err "
                   f"{one['ab2_bound']['error_vs_reference']:.1e}), per-step ratio "
                   f"{c['steps_per_s_ratio_ab2_vs_py-pde']:.2f}, time to T ratio py-pde dt=1 / AB2 "
                   f"{c['time_to_T_ratio_py-pde_dt1_over_ab2_bound']:.2f}; "
                   f"time to T ratio (py-pde/ours, dt=4/3) "
                   f"{c['time_to_T_ratio_py-pde_over_sbdf2_dt4/3']:.2f}, at equal accuracy "
                   f"{c['time_at_equal_accuracy_ratio_py-pde_over_sbdf2_dt1']:.1f}")
    else:
        summary = (f"py-pde not installed; SBDF2 dt=1 {one['sbdf2_dt1']['steps_per_s']:.0f} steps/s "
                   f"(1 thread)")
    ps = per_step["1_sample"]["workers=1"]["ms_per_step"]
    pb = per_step["batch_8"]["workers=1"]["ms_per_step"]
    wp = payload["work_precision_1_thread"]["at_target_errors"]
    summary += "; py-pde/ours at equal error " + ", ".join(
        f"{tol}: {r['ratio_py-pde_over_ours']:.2f}x" if r["ratio_py-pde_over_ours"] else f"{tol}: n/a"
        for tol, r in wp.items())
    write_result("gray_scott", payload, f"{summary}; SBDF2 per step 256², 1 thread: {ps:.2f} ms "
                 f"(1 sample), {pb:.2f} ms (batch 8), of which its three FFTs {fft_floor_ms:.2f} ms")


if __name__ == "__main__":
    main()
