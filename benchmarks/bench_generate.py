"""Generation throughput vs the raw loop of sampling and solving (overhead of the crash-safe
block files, compression and HDF5 writing), per chunk filter, and peak memory.

For each problem, in one run, interleaved (each repeat times every candidate once, so that the
load of a shared machine hits all alike):
- ``solve``: the solver alone, over inputs drawn beforehand (the raw solver loop);
- ``sample_solve``: drawing the inputs and solving, in memory, nothing written (the raw loop
  of sampling + solving: the same samples ``generate`` computes);
- ``generate_w1`` / ``generate_w2``: ``neuralhss.datasets.generate`` with 1 and 2 worker
  processes (gzip level 1 + shuffle, the default filter);
- ``generate_w1_lzf`` / ``generate_w1_none``: 1 worker with the lzf filter / no filter.
Overhead = time(generate_w1) / time(sample_solve) - 1; goal <= 25 % (issue 16; the ratio
against the solver alone, ``overhead_vs_solve_loop_w1``, is kept from issue 2).
Per filter: file size and the time to read every sample back with h5py.
Peak memory: a fresh process generates Poisson 64^3 (2 MiB per sample) with block sizes 2 and 8
and 1 and 2 workers; its peak RSS (plus each worker's above its fork) above the same process
after a small warm-up run, against the bound (workers + 1) x block size x sample size + workers x
the peak of the raw sampling + solving loop (one sample's working memory), measured alike.
``--memory-resolution 128``: the same at 128^3 (16 MiB per sample) with blocks of 1 and 2.

Run: ``python benchmarks/bench_generate.py [--samples 256] [--repeats 3]`` (from the repository
root, with ``OMP_NUM_THREADS=1``); the 128^3 memory runs alone:
``--cases --memory-samples 8 --memory-resolution 128 --out bench_generate_memory_128``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
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
#: Larger samples, run on request (``--cases poisson3d_128 --samples 64``): one sample per block.
LARGE = {"poisson3d_128": ("poisson", {"dim": 3, "resolution": 128})}
GOAL = 0.25


def solve_only(problem: str, params: dict, inputs: list[dict]) -> None:
    for s in inputs:
        if problem == "darcy":
            darcy.solve(s["a"], params["source"], lengths=params["lengths"])
        else:
            poisson.solve(s["f"], lengths=params["lengths"], bc=params["bc"])


def read_all(path: Path) -> None:
    with h5py.File(path, "r") as f:
        for p in ("inputs", "outputs"):
            for name in f[p]:
                ds = f[p][name]
                for i in range(ds.shape[0]):
                    ds[i]


MEMORY_SCRIPT = r"""
import json, resource, sys, tempfile
from pathlib import Path
from neuralhss.datasets import generate
workers, block, n, res = (int(v) for v in sys.argv[1:5])
d = Path(tempfile.mkdtemp())
params = {"dim": 3, "resolution": res}
generate("poisson", d / "warm.h5", n_samples=2, params=params, progress=False, block_size=1)
def status(key):
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) / 1024 for l in f if l.startswith(key))
def reset_peak():
    with open("/proc/self/clear_refs", "w") as f:  # restart the peak (VmHWM) from the RSS now
        f.write("5")
    return status("VmRSS:")
from neuralhss.datasets import get_problem
from neuralhss.datasets.generation import _one_thread, sample_rng
prob = get_problem("poisson")
rp = prob.resolve(params)
loop_base = reset_peak()
with _one_thread():  # the raw loop: one sample's working memory, what any generator needs
    for i in range(n):
        prob.sample(rp, sample_rng(0, i))
loop_peak = status("VmHWM:") - loop_base
base = reset_peak()
generate("poisson", d / "m.h5", n_samples=n, params=params, progress=False, block_size=block,
         workers=workers)
child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(json.dumps({"base_mib": base, "main_peak_mib": status("VmHWM:"), "loop_peak_mib": loop_peak,
                  "child_peak_mib": child if workers > 1 else 0.0}))
"""


def peak_memory(samples: int, resolution: int = 64,
                blocks: tuple[int, ...] = (2, 8)) -> list[dict]:
    rows = []
    sample_mib = 2 * resolution**3 * 4 / 2**20
    for workers, block in ((w, b) for w in (1, 2) for b in blocks):
        out = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, str(workers), str(block),
                              str(samples), str(resolution)], capture_output=True, text=True,
                             check=True,
                             env={**os.environ, "OMP_NUM_THREADS": "1"})
        r = json.loads(out.stdout.strip().splitlines()[-1])
        # A forked worker starts as a copy of the main process (shared pages): its peak above
        # that copy, counted once per worker.
        extra = (r["main_peak_mib"] - r["base_mib"]
                 + workers * max(0.0, r["child_peak_mib"] - r["base_mib"]) * (workers > 1))
        # Bound: (workers + 1) blocks, plus one sample's working memory per worker (the peak
        # of the raw loop of sampling + solving, measured in the same process).
        bound = (workers + 1) * block * sample_mib + workers * r["loop_peak_mib"]
        rows.append({"workers": workers, "block_size": block, "samples": samples,
                     "resolution": resolution,
                     "sample_mib": sample_mib, "data_mib": samples * sample_mib,
                     "bound_mib": bound, **r, "extra_peak_mib": extra,
                     "within_bound": bool(extra <= bound)})
        print(f"  memory: {workers} worker(s), blocks of {block}: peak +{extra:.0f} MiB above "
              f"the warm process; bound (w+1)*block*sample + w*loop = {bound:.0f} MiB (raw loop "
              f"+{r['loop_peak_mib']:.0f} MiB; data {samples * sample_mib:.0f} MiB)")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--memory-samples", type=int, default=32)
    ap.add_argument("--memory-resolution", type=int, default=64,
                    help="Poisson 3-D grid of the memory runs (128: 16 MiB per sample, blocks "
                         "of 1 and 2 samples, the default block size there being 1)")
    ap.add_argument("--cases", nargs="*", default=list(CASES))
    ap.add_argument("--out", default="bench_generate")
    ap.add_argument("--note", default="machine load not stated; ratios from interleaved repeats",
                    help="what else ran on the machine, stored with the results")
    args = ap.parse_args()
    n = args.samples
    rows = {}
    tmp = Path(tempfile.mkdtemp(prefix="neuralhss-bench-"))
    try:
        for name in args.cases:
            problem, params = {**CASES, **LARGE}[name]
            prob = get_problem(problem)
            params = prob.resolve(params)
            with threadpool_limits(limits=1), scipy.fft.set_workers(1):  # as the generator does
                inputs = [prob.sample(params, sample_rng(0, i)) for i in range(n)]
            runs = {"generate_w1": (1, "gzip"), "generate_w2": (2, "gzip"),
                    "generate_w1_lzf": (1, "lzf"), "generate_w1_none": (1, "none")}
            times: dict[str, list[float]] = {k: [] for k in ("solve", "sample_solve", *runs)}
            sizes: dict[str, int] = {}
            cpu: list[float] = []
            cpu_ss: list[float] = []
            for rep in range(args.repeats):  # interleaved, so that machine noise hits all alike
                with threadpool_limits(limits=1), scipy.fft.set_workers(1):
                    t0 = time.perf_counter()
                    solve_only(problem, params, inputs)
                    times["solve"].append(time.perf_counter() - t0)
                    c0 = resource.getrusage(resource.RUSAGE_SELF)
                    t0 = time.perf_counter()
                    for i in range(n):
                        prob.sample(params, sample_rng(0, i))
                    times["sample_solve"].append(time.perf_counter() - t0)
                    c1 = resource.getrusage(resource.RUSAGE_SELF)
                    cpu_ss.append(c1.ru_utime + c1.ru_stime - c0.ru_utime - c0.ru_stime)
                for key, (w, comp) in runs.items():
                    path = tmp / f"{name}_{key}_{rep}.h5"
                    c0 = resource.getrusage(resource.RUSAGE_SELF)
                    t0 = time.perf_counter()
                    generate(problem, path, n_samples=n, params=params, workers=w, progress=False,
                             compression=comp)
                    times[key].append(time.perf_counter() - t0)
                    c1 = resource.getrusage(resource.RUSAGE_SELF)
                    if key == "generate_w1":  # the main process and its compressing thread
                        cpu.append(c1.ru_utime + c1.ru_stime - c0.ru_utime - c0.ru_stime)
                    sizes[key] = path.stat().st_size
                    if rep < args.repeats - 1:
                        path.unlink()
            reads = {}
            for comp, key in (("gzip", "generate_w1"), ("lzf", "generate_w1_lzf"),
                              ("none", "generate_w1_none")):
                path = tmp / f"{name}_{key}_{args.repeats - 1}.h5"
                rt = []
                for _ in range(args.repeats):
                    t0 = time.perf_counter()
                    read_all(path)
                    rt.append(time.perf_counter() - t0)
                reads[comp] = statistics.median(rt)
            med = {k: statistics.median(v) for k, v in times.items()}
            raw_mib = sum(4 * int(np.prod(v.shape)) for v in inputs[0].values()) * n / 2**20
            row = {"samples": n, "repeats": args.repeats, **{f"{k}_s": v for k, v in med.items()},
                   "all_times_s": times, "raw_mib": raw_mib,
                   "filters": {comp: {"file_mib": sizes[key] / 2**20,
                                      "write_w1_s": med[key], "read_all_s": reads[comp],
                                      "overhead_vs_sample_solve_loop_w1":
                                          med[key] / med["sample_solve"] - 1}
                               for comp, key in (("gzip", "generate_w1"),
                                                 ("lzf", "generate_w1_lzf"),
                                                 ("none", "generate_w1_none"))}}
            row["file_mib"] = row["filters"]["gzip"]["file_mib"]
            # CPU time (this process and its compressing thread) of generate_w1 over that of the
            # sampling + solving loop: the overhead if no second core is free for the thread,
            # and less sensitive than wall time to the load of a shared machine.
            row["cpu_w1_s"] = statistics.median(cpu)
            row["cpu_sample_solve_s"] = statistics.median(cpu_ss)
            row["cpu_overhead_vs_sample_solve_loop_w1"] = (row["cpu_w1_s"]
                                                           / row["cpu_sample_solve_s"] - 1)
            row["overhead_vs_solve_loop_w1"] = med["generate_w1"] / med["solve"] - 1
            row["overhead_vs_sample_solve_loop_w1"] = med["generate_w1"] / med["sample_solve"] - 1
            row["throughput_w2_vs_solve_loop"] = med["solve"] / med["generate_w2"]
            row["throughput_w2_vs_sample_solve_loop"] = med["sample_solve"] / med["generate_w2"]
            row["speedup_w2_vs_w1"] = med["generate_w1"] / med["generate_w2"]
            rows[name] = row
            f = row["filters"]
            print(f"  {name}: solve loop {med['solve']:.2f} s, sample+solve {med['sample_solve']:.2f} s, "
                  f"generate 1 worker {med['generate_w1']:.2f} s "
                  f"({100 * row['overhead_vs_sample_solve_loop_w1']:+.0f}% vs sample+solve), "
                  f"CPU {100 * row['cpu_overhead_vs_sample_solve_loop_w1']:+.0f}%, "
                  f"2 workers {med['generate_w2']:.2f} s ({row['speedup_w2_vs_w1']:.2f}x); "
                  + ", ".join(f"{c} {v['file_mib']:.1f} MiB "
                              f"{100 * v['overhead_vs_sample_solve_loop_w1']:+.0f}% "
                              f"read {v['read_all_s']:.2f} s" for c, v in f.items()))
        blocks = (1, 2) if args.memory_resolution >= 128 else (2, 8)
        memory = (peak_memory(args.memory_samples, args.memory_resolution, blocks)
                  if args.memory_samples else [])
    finally:
        shutil.rmtree(tmp)
    summary = "; ".join(f"{k}: {100 * v['overhead_vs_sample_solve_loop_w1']:+.0f}% over sample+solve "
                        f"at 1 worker, 2 workers {v['speedup_w2_vs_w1']:.2f}x"
                        for k, v in rows.items())
    write_result(args.out, {
        "cases": rows, "goal_overhead": GOAL, "memory": memory,
        "baseline": "raw loop of sampling + solving in memory, one thread (sample_solve); "
                    "the solver alone over pre-drawn inputs (solve) kept from issue 2",
        "overhead_goal_met": {k: bool(v["overhead_vs_sample_solve_loop_w1"] <= GOAL)
                              for k, v in rows.items()},
        "note": f"workers are forked (Linux); {args.note}"},
        summary)


if __name__ == "__main__":
    np.seterr(all="raise")
    main()
