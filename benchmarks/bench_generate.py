"""Generation throughput vs the raw solver loop (overhead of sampling, I/O and compression).

For each problem, in one run:
- ``solve_loop``: the solver alone, over inputs drawn beforehand (the raw solver loop);
- ``sample_solve_loop``: drawing the inputs and solving, in memory, nothing written;
- ``generate_w1`` / ``generate_w2``: ``neuralhss.datasets.generate`` with 1 and 2 worker
  processes (sampling, solving, crash-safe block files, HDF5 assembly with gzip).
Overhead = time(generate_w1) / time(solve_loop) - 1; goal <= 20 % (issue 2).

Run: ``python benchmarks/bench_generate.py [--samples 200]``
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.fft
from _common import write_result
from threadpoolctl import threadpool_limits

from neuralhss.datasets import generate, get_problem
from neuralhss.datasets.generation import sample_rng
from neuralhss.solvers import darcy, poisson

CASES = {
    "darcy2d_64": ("darcy", {"dim": 2, "resolution": 64}),
    "poisson2d_64": ("poisson", {"dim": 2, "resolution": 64}),
    "poisson3d_32": ("poisson", {"dim": 3, "resolution": 32}),
}


def solve_only(problem: str, params: dict, inputs: list[dict]) -> None:
    for s in inputs:
        if problem == "darcy":
            darcy.solve(s["a"], params["source"], lengths=params["lengths"])
        else:
            poisson.solve(s["f"], lengths=params["lengths"], bc=params["bc"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=200)
    args = ap.parse_args()
    n = args.samples
    rows = {}
    tmp = Path(tempfile.mkdtemp(prefix="neuralhss-bench-"))
    try:
        for name, (problem, params) in CASES.items():
            prob = get_problem(problem)
            params = prob.resolve(params)
            with threadpool_limits(limits=1), scipy.fft.set_workers(1):  # as the generator does
                inputs = [prob.sample(params, sample_rng(0, i)) for i in range(n)]
                t0 = time.perf_counter()
                solve_only(problem, params, inputs)
                t_solve = time.perf_counter() - t0
                t0 = time.perf_counter()
                for i in range(n):
                    prob.sample(params, sample_rng(0, i))
                t_sample_solve = time.perf_counter() - t0
            row = {"samples": n, "solve_loop_s": t_solve, "sample_solve_loop_s": t_sample_solve}
            for w in (1, 2):
                path = tmp / f"{name}_w{w}.h5"
                t0 = time.perf_counter()
                generate(problem, path, n_samples=n, params=params, workers=w, progress=False)
                row[f"generate_w{w}_s"] = time.perf_counter() - t0
                row[f"file_mib_w{w}"] = path.stat().st_size / 2**20
            row["overhead_vs_solve_loop_w1"] = row["generate_w1_s"] / t_solve - 1
            row["overhead_vs_sample_solve_loop_w1"] = row["generate_w1_s"] / t_sample_solve - 1
            row["speedup_w2_vs_w1"] = row["generate_w1_s"] / row["generate_w2_s"]
            row["samples_per_s_w2"] = n / row["generate_w2_s"]
            rows[name] = row
            print(f"  {name}: solve {t_solve:.2f} s, sample+solve {t_sample_solve:.2f} s, "
                  f"generate w1 {row['generate_w1_s']:.2f} s, w2 {row['generate_w2_s']:.2f} s")
    finally:
        shutil.rmtree(tmp)
    d = rows["darcy2d_64"]
    summary = (f"darcy 64^2 x{n}: overhead {100 * d['overhead_vs_solve_loop_w1']:.0f}% vs the raw "
               f"solver loop at 1 worker, {d['speedup_w2_vs_w1']:.2f}x speed-up at 2 workers")
    write_result("bench_generate", {"cases": rows, "goal_overhead": 0.2,
                              "overhead_goal_met": {k: bool(v["overhead_vs_solve_loop_w1"] <= 0.2)
                                                    for k, v in rows.items()}}, summary)


if __name__ == "__main__":
    np.seterr(all="raise")
    main()
