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
import statistics
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
    ap.add_argument("--samples", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
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
            times: dict[str, list[float]] = {k: [] for k in
                                             ("solve", "sample_solve", "generate_w1", "generate_w2")}
            for rep in range(args.repeats):  # interleaved, so that machine noise hits all alike
                with threadpool_limits(limits=1), scipy.fft.set_workers(1):
                    t0 = time.perf_counter()
                    solve_only(problem, params, inputs)
                    times["solve"].append(time.perf_counter() - t0)
                    t0 = time.perf_counter()
                    for i in range(n):
                        prob.sample(params, sample_rng(0, i))
                    times["sample_solve"].append(time.perf_counter() - t0)
                for w in (1, 2):
                    path = tmp / f"{name}_w{w}_{rep}.h5"
                    t0 = time.perf_counter()
                    generate(problem, path, n_samples=n, params=params, workers=w, progress=False)
                    times[f"generate_w{w}"].append(time.perf_counter() - t0)
                    size = path.stat().st_size
                    path.unlink()
            med = {k: statistics.median(v) for k, v in times.items()}
            row = {"samples": n, "repeats": args.repeats, **{f"{k}_s": v for k, v in med.items()},
                   "all_times_s": times, "file_mib": size / 2**20,
                   "raw_mib": 2 * n * int(np.prod(params["resolution"])) * 4 / 2**20}
            row["overhead_vs_solve_loop_w1"] = med["generate_w1"] / med["solve"] - 1
            row["overhead_vs_sample_solve_loop_w1"] = med["generate_w1"] / med["sample_solve"] - 1
            row["throughput_w2_vs_solve_loop"] = med["solve"] / med["generate_w2"]
            row["speedup_w2_vs_w1"] = med["generate_w1"] / med["generate_w2"]
            rows[name] = row
            print(f"  {name}: solve loop {med['solve']:.2f} s, sample+solve {med['sample_solve']:.2f} s, "
                  f"generate 1 worker {med['generate_w1']:.2f} s "
                  f"({100 * row['overhead_vs_solve_loop_w1']:+.0f}%), "
                  f"2 workers {med['generate_w2']:.2f} s")
    finally:
        shutil.rmtree(tmp)
    d = rows["darcy2d_64"]
    summary = (f"darcy 64^2 x{n}: generation overhead {100 * d['overhead_vs_solve_loop_w1']:.0f}% vs "
               f"the raw solver loop at 1 worker; 2 workers run at "
               f"{d['throughput_w2_vs_solve_loop']:.2f}x the raw loop's throughput")
    write_result("bench_generate", {
        "cases": rows, "goal_overhead": 0.2,
        "baseline": "raw solver loop: the solver alone over pre-drawn inputs, one thread",
        "overhead_goal_met": {k: bool(v["overhead_vs_solve_loop_w1"] <= 0.2) for k, v in rows.items()},
        "note": "worker processes start with 'spawn' (about 1 s of imports each, in parallel)"},
        summary)


if __name__ == "__main__":
    np.seterr(all="raise")
    main()
