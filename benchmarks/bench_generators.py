"""Time per sample of every dataset generator, and where the time goes.

For each problem at its standard recipe (``datasets/*.yaml``, 64² grids), in one run:
- ``sample``: ``Problem.sample`` (draw the inputs and solve), one thread, in memory;
- ``generate``: ``neuralhss.datasets.generate`` with one worker (the same plus the crash-safe
  block files and the gzip-compressed HDF5 file), so ``generate / sample - 1`` is the I/O
  overhead; ``generate_none`` the same with ``compression="none"``; with ``--two-workers``
  also ``generate_w2``, ``generate`` with two worker processes (``speedup_w2`` = its
  throughput over one worker's: the goal is >= 1.7x where the solver dominates, never below
  1x); interleaved over ``--repeats``, medians;
- the bottleneck: the functions with the largest own time under cProfile while sampling,
  which names what a faster generator would have to speed up.

Run: ``python benchmarks/bench_generators.py [--samples 8] [--repeats 3]`` (from the repository root or
``benchmarks/``). ``--samples recipe`` times each recipe's own sample count (1,100 at 64²: a run's
fixed cost, tens of milliseconds, is then spread as a user's run spreads it); with
``--problems`` a subset (e.g. the cheap ``poisson2d_64 maxwell2d_64``) and ``--out`` another
result file.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import scipy.fft
from _common import write_result
from threadpoolctl import threadpool_limits

from neuralhss.datasets import generate, get_problem, load_recipe
from neuralhss.datasets.generation import sample_rng

RECIPES = Path(__file__).resolve().parent.parent / "datasets"
PROBLEMS = ["poisson2d_64", "darcy2d_64", "helmholtz2d_64", "maxwell2d_64", "navier_stokes2d_64",
            "gray_scott2d_64"]


def hot_spots(prob, params, n: int, top: int = 3) -> list[dict]:
    """The ``top`` functions by own time while drawing ``n`` samples (share of the total)."""
    prof = cProfile.Profile()
    with threadpool_limits(limits=1), scipy.fft.set_workers(1):
        prof.enable()
        for i in range(n):
            prob.sample(params, sample_rng(1, i))
        prof.disable()
    stats = pstats.Stats(prof).stats
    total = sum(v[2] for v in stats.values())
    rows = sorted(((v[2], f"{Path(k[0]).name}:{k[2]}") for k, v in stats.items()), reverse=True)
    return [{"function": name, "share": t / total} for t, name in rows[:top]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", default="8",
                    help="samples per run: a number, or 'recipe' for each recipe's own count")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--problems", nargs="+", choices=PROBLEMS, default=PROBLEMS)
    ap.add_argument("--no-profile", action="store_true", help="skip the cProfile hot spots")
    ap.add_argument("--two-workers", action="store_true",
                    help="also time generate() with two worker processes (needs two free cores)")
    ap.add_argument("--out", default="bench_generators")
    args = ap.parse_args()
    if args.samples != "recipe" and not (args.samples.isdigit() and int(args.samples) > 0):
        ap.error(f"--samples {args.samples!r}: give a positive number or 'recipe'")
    rows = {}
    tmp = Path(tempfile.mkdtemp(prefix="neuralhss-bench-"))
    try:
        for name in args.problems:
            recipe = load_recipe(RECIPES / f"{name}.yaml")
            n = recipe.samples if args.samples == "recipe" else int(args.samples)
            prob = get_problem(recipe.problem)
            params = prob.resolve(recipe.params)
            with threadpool_limits(limits=1), scipy.fft.set_workers(1):
                prob.sample(params, sample_rng(0, 0))  # warm-up (imports, caches)
            runs = [("generate", "gzip", 1), ("generate_none", "none", 1)]
            if args.two_workers:
                runs.append(("generate_w2", "gzip", 2))
            times: dict[str, list[float]] = {"sample": [], **{k: [] for k, _, _ in runs}}
            for rep in range(args.repeats):  # interleaved: the load of the machine hits all alike
                with threadpool_limits(limits=1), scipy.fft.set_workers(1):
                    t0 = time.perf_counter()
                    for i in range(n):
                        prob.sample(params, sample_rng(0, i))
                    times["sample"].append((time.perf_counter() - t0) / n)
                for key, comp, workers in runs:
                    path = tmp / f"{name}_{key}_{rep}.h5"
                    t0 = time.perf_counter()
                    generate(recipe.problem, path, n_samples=n, params=params, workers=workers,
                             progress=False, compression=comp)
                    times[key].append((time.perf_counter() - t0) / n)
                    path.unlink()
            med = {k: statistics.median(v) for k, v in times.items()}
            t_sample, t_generate, t_none = med["sample"], med["generate"], med["generate_none"]
            rows[name] = {"problem": recipe.problem, "samples": n, "repeats": args.repeats,
                          "sample_s": t_sample, "generate_s": t_generate,
                          "generate_none_s": t_none, "all_times_s": times,
                          "io_overhead": t_generate / t_sample - 1,
                          "io_overhead_none": t_none / t_sample - 1,
                          "hot_spots": [] if args.no_profile else hot_spots(prob, params, min(n, 32))}
            if args.two_workers:
                rows[name]["generate_w2_s"] = med["generate_w2"]
                rows[name]["speedup_w2"] = t_generate / med["generate_w2"]
            spots = ", ".join(f"{h['function']} {100 * h['share']:.0f}%" for h in rows[name]["hot_spots"])
            print(f"  {name} ({n} samples): {1e3 * t_sample:.1f} ms/sample "
                  f"(generate {1e3 * t_generate:.1f} ms, "
                  f"{100 * rows[name]['io_overhead']:+.0f}%; "
                  f"none {100 * rows[name]['io_overhead_none']:+.0f}%"
                  + (f"; 2 workers {rows[name]['speedup_w2']:.2f}x" if args.two_workers else "")
                  + "); "
                  f"hot: {spots}", flush=True)
    finally:
        shutil.rmtree(tmp)
    summary = "; ".join(f"{k}: {1e3 * v['sample_s']:.0f} ms/sample" for k, v in rows.items())
    write_result(args.out, {
        "cases": rows, "baseline": "Problem.sample in memory (one thread) vs generate(workers=1)"},
        summary)


if __name__ == "__main__":
    main()
