"""Gray–Scott dataset recipe (``datasets/gray_scott2d_64.yaml``): accuracy and time per sample of
the time-stepping schemes, which is why the dataset problem's default scheme is ``"ab2"``.

For samples 0-3 of the recipe (seed 0: maze regime, side 1.25 on 64² nodes, t = 2000, 10
snapshots): the max-norm error of (u, v) per snapshot against an AB2 run at dt = 1/16 (the
same semi-discrete system, so the difference is time error; the reference's own error is
estimated against dt = 1/32), for SBDF2 at dt = 1 (the default before 2026-12-05) and 1/4, and
AB2 at its default step; and the time of ``Problem.sample`` per scheme, one thread, interleaved
rounds (medians).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_gray_scott_recipe.py
"""

from __future__ import annotations

import numpy as np
from _common import interleaved, write_result

from neuralhss.datasets import get_problem, load_recipe
from neuralhss.datasets.generation import _one_thread, sample_rng
from neuralhss.solvers import gray_scott as gs

RECIPE = "datasets/gray_scott2d_64.yaml"
SAMPLES = (0, 1, 2, 3)
RUNS = {"sbdf2_dt1": ("sbdf2", 1.0), "sbdf2_dt0.25": ("sbdf2", 0.25), "ab2_default": ("ab2", None)}


def main() -> None:
    recipe = load_recipe(RECIPE)
    prob = get_problem(recipe.problem)
    params = prob.resolve(recipe.params)
    reg = gs.REGIMES[params["regime"]]
    kw = {"Du": reg["Du"], "Dv": reg["Dv"], "F": reg["F"], "k": reg["k"],
          "t_final": params["t_final"], "lengths": params["lengths"],
          "n_snapshots": params["n_snapshots"]}
    errors: dict[str, list[list[float]]] = {k: [] for k in RUNS}
    ref_error = []
    with _one_thread():
        for i in SAMPLES:
            s = prob.sample(params, sample_rng(recipe.seed, i))
            ref = gs.solve(s["u0"], s["v0"], scheme="ab2", dt=1 / 16, **kw)
            finer = gs.solve(s["u0"], s["v0"], scheme="ab2", dt=1 / 32, **kw)
            ref_error.append(float(max(np.abs(ref[0] - finer[0]).max(),
                                       np.abs(ref[1] - finer[1]).max())))
            for name, (scheme, dt) in RUNS.items():
                u, v = gs.solve(s["u0"], s["v0"], scheme=scheme, dt=dt, **kw)
                errors[name].append([float(max(np.abs(u[t] - ref[0][t]).max(),
                                               np.abs(v[t] - ref[1][t]).max()))
                                     for t in range(u.shape[0])])
        timing = interleaved({
            scheme: (lambda sc=scheme: prob.sample({**params, "scheme": sc}, sample_rng(0, 0)))
            for scheme in ("sbdf2", "ab2")}, rounds=5)
    bound = gs.stability_bound("ab2", reg["Du"], reg["Dv"], reg["F"], reg["k"],
                               params["resolution"], params["lengths"])
    final = {k: max(e[-1] for e in v) for k, v in errors.items()}
    summary = (f"max over samples of the error at t = {params['t_final']:g}: "
               + ", ".join(f"{k} {v:.1e}" for k, v in final.items())
               + f"; s per sample: sbdf2 {timing['sbdf2']['median_s']:.3f}, "
               f"ab2 {timing['ab2']['median_s']:.3f}")
    write_result("gray_scott_recipe", {
        "recipe": RECIPE, "samples": list(SAMPLES), "params": params,
        "ab2_stability_bound": bound, "reference": "ab2 dt=1/16",
        "reference_error_vs_dt_1_32": ref_error,
        "error_per_snapshot": errors, "error_at_t_final_max_over_samples": final,
        "seconds_per_sample": {k: v["median_s"] for k, v in timing.items()},
        "timing": timing}, summary)


if __name__ == "__main__":
    main()
