"""HSS layer vs neuraloperator's SpectralConv at 128^3 (2,097,152 points), one channel.

Baseline: ``neuralop.layers.spectral_convolution.SpectralConv(1, 1, n_modes=(12, 12, 12))``
(the FNO spectral layer). Candidates: ``HSSOperator(grid_shape=(128,)*3, leaf_size=64 (4x4x4), rank=8)``
with share="level" (translation-tied, parameter count independent of N), share="level" with
the top 6 levels untied (hybrid), and share="none" (every node its own generators: N*m = 134 M
numbers in the leaf blocks alone). Forward+backward on a (1, 1, 128, 128, 128) float32 input,
candidates interleaved round by round, medians after a warm-up, with 1 and 2 threads.
Peak memory: each candidate runs alone in a fresh subprocess (VmHWM), reported in total
and as the increase over the process after set-up (input and parameters allocated).
Goal (issue 3): HSS within 2x of SpectralConv (goal: faster).

Allocator: with glibc's default malloc every block above 32 MiB is a fresh ``mmap``, so a
step that allocates its gradients anew page-faults them in (share="none": 0.7 GB of them at
128^3), which costs more than the arithmetic. The large untied generators therefore keep
their last gradient's memory for the next backward; ``hss_none_fresh_grads`` is share="none"
with that switched off, timed interleaved with the rest (its ratio to ``hss_none`` is what
the kept memory gains); ``hss_none_bmm`` is share="none" with the leaf products by
``torch.bmm`` instead of the streaming kernels of ``neuralhss.hss._leaf_kernels``.
The timing is also repeated, one thread, in a subprocess with
``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=<large>`` (freed blocks are reused, as jemalloc or
tcmalloc would do), reported as ``timing_fwd_bwd_malloc_reuse``.

    .venv/bin/python benchmarks/bench_hss_vs_fno.py
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from _common import interleaved, step_memory, write_result
from neuralop.layers.spectral_convolution import SpectralConv

import neuralhss.hss._leaf_kernels as leaf_kernels
import neuralhss.hss.operator as hss_operator
from neuralhss.hss import HSSOperator

GOAL_RATIO = 2.0
CANDIDATES = {
    "spectralconv": "SpectralConv, 12 modes per axis",
    "hss_level": "HSSOperator share='level'",
    "hss_level_untie6": "HSSOperator share='level', untie_top=6",
    "hss_none": "HSSOperator share='none'",
    "hss_none_fresh_grads": "HSSOperator share='none', gradient memory not kept between steps",
    "hss_none_bmm": "HSSOperator share='none', leaf products by torch.bmm (no streaming kernels)",
}
# Private switches, for these comparisons only: (module, attribute, value while the step runs).
SWITCHES = {
    # as before the generators kept their gradients' memory: every step allocates, and
    # page-faults, new gradient blocks
    "hss_none_fresh_grads": (hss_operator, "_SOLE_OWNER", None),
    # as before the leaf products had their own kernels
    "hss_none_bmm": (leaf_kernels, "MAX_BATCH", 0),
}


def build(name: str, n: int) -> torch.nn.Module:
    if name == "spectralconv":
        return SpectralConv(1, 1, n_modes=(12, 12, 12))
    if name == "hss_level":
        return HSSOperator(grid_shape=(n,) * 3, leaf_size=64, rank=8, share="level")
    if name == "hss_level_untie6":
        return HSSOperator(grid_shape=(n,) * 3, leaf_size=64, rank=8, share="level", untie_top=6)
    return HSSOperator(grid_shape=(n,) * 3, leaf_size=64, rank=8, share="none")


def fwd_bwd(mod: torch.nn.Module, x: torch.Tensor, g: torch.Tensor,
            switch: tuple[Any, str, Any] | None = None) -> Callable[[], None]:
    def run() -> None:
        mod.zero_grad(set_to_none=True)
        x.grad = None
        mod(x).backward(g)

    def run_switched() -> None:
        owner, attr, value = switch
        saved = getattr(owner, attr)
        setattr(owner, attr, value)
        try:
            run()
        finally:
            setattr(owner, attr, saved)

    return run if switch is None else run_switched


def memory_child(name: str, n: int) -> None:
    """Run in a subprocess: one candidate alone; prints JSON with its peak memory."""
    torch.manual_seed(0)
    x = torch.randn(1, 1, n, n, n, requires_grad=True)
    g = torch.randn(1, 1, n, n, n)
    mod = build(name, n)
    print(json.dumps(step_memory(fwd_bwd(mod, x, g, SWITCHES.get(name)), repeats=3)))




def time_candidates(mods: dict[str, torch.nn.Module], x: torch.Tensor, g: torch.Tensor,
                    threads: int, rounds: int) -> dict[str, Any]:
    """fwd+bwd of every candidate with ``threads`` threads, interleaved; ratios to SpectralConv."""
    torch.set_num_threads(threads)
    t = interleaved({k: fwd_bwd(m, x, g, SWITCHES.get(k)) for k, m in mods.items()}, rounds)
    for k in t:
        t[k]["ratio_to_spectralconv"] = t[k]["median_s"] / t["spectralconv"]["median_s"]
    return t


def time_one_thread(n: int, rounds: int) -> dict[str, Any]:
    """:func:`time_candidates` with one thread, on freshly built candidates."""
    torch.manual_seed(0)
    x = torch.randn(1, 1, n, n, n, requires_grad=True)
    g = torch.randn(1, 1, n, n, n)
    return time_candidates({k: build(k, n) for k in CANDIDATES}, x, g, 1, rounds)


MALLOC_REUSE = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(1 << 40)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--timing-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                    help="thread counts to time (beside other jobs, only 1 is meaningful)")
    args = ap.parse_args()
    if args.memory_child:
        memory_child(args.memory_child, args.n)
        return
    if args.timing_child:
        print(json.dumps(time_one_thread(args.n, args.rounds)))
        return
    n = args.n
    torch.manual_seed(0)
    x = torch.randn(1, 1, n, n, n, requires_grad=True)
    g = torch.randn(1, 1, n, n, n)
    mods = {k: build(k, n) for k in CANDIDATES}
    params = {k: sum(p.numel() for p in m.parameters()) for k, m in mods.items()}
    timing: dict[str, Any] = {}
    for threads in args.threads:
        t = time_candidates(mods, x, g, threads, args.rounds)
        timing[f"threads_{threads}"] = t
        print(f"threads={threads}: " + ", ".join(
            f"{k} {v['median_s'] * 1e3:.0f} ms ({v['ratio_to_spectralconv']:.2f}x)"
            for k, v in t.items()), flush=True)
    del mods
    memory = {}
    for k in CANDIDATES:
        out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--n", str(n),
                              "--memory-child", k], capture_output=True, text=True, check=True)
        memory[k] = json.loads(out.stdout.strip().splitlines()[-1])
    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--n", str(n),
                          "--rounds", str(args.rounds), "--timing-child"], capture_output=True,
                         text=True, check=True, env={**os.environ, **MALLOC_REUSE})
    reuse = json.loads(out.stdout.strip().splitlines()[-1])
    print("threads=1, malloc reuse: " + ", ".join(
        f"{k} {v['median_s'] * 1e3:.0f} ms ({v['ratio_to_spectralconv']:.2f}x)"
        for k, v in reuse.items()), flush=True)
    res = {"grid": [n] * 3, "leaf_size": 64, "rank": 8, "channels": 1, "batch": 1,
           "dtype": "float32", "goal_ratio": GOAL_RATIO, "candidates": CANDIDATES,
           "params": params, "parameter_mib": {k: v * 4 / 2**20 for k, v in params.items()},
           "timing_fwd_bwd": timing,
           "timing_fwd_bwd_malloc_reuse": {"env": MALLOC_REUSE, "threads_1": reuse},
           "memory": memory, "load_average_1min": os.getloadavg()[0]}
    tn = max(args.threads)
    t2 = timing[f"threads_{tn}"]
    lvl = t2["hss_level"]["ratio_to_spectralconv"]
    write_result(
        "hss_vs_fno", res,
        f"{n}^3 fwd+bwd, {tn} thread(s): HSS level {lvl:.2f}x SpectralConv, level+untie6 "
        f"{t2['hss_level_untie6']['ratio_to_spectralconv']:.2f}x, none "
        f"{t2['hss_none']['ratio_to_spectralconv']:.2f}x (1 thread: "
        f"{timing['threads_1']['hss_level']['ratio_to_spectralconv']:.2f}x level, none "
        f"{timing['threads_1']['hss_none']['ratio_to_spectralconv']:.2f}x; with malloc reuse "
        f"none {reuse['hss_none']['ratio_to_spectralconv']:.2f}x; without kept gradient memory "
        f"{timing['threads_1']['hss_none_fresh_grads']['ratio_to_spectralconv']:.2f}x, with bmm "
        f"{timing['threads_1']['hss_none_bmm']['ratio_to_spectralconv']:.2f}x); working "
        f"memory MiB: SpectralConv {memory['spectralconv']['working_mib']:.0f}, level "
        f"{memory['hss_level']['working_mib']:.0f}, none {memory['hss_none']['working_mib']:.0f}"
        f"; goal <= {GOAL_RATIO}x: {'met' if lvl <= GOAL_RATIO else 'NOT met'} (share='level')")


if __name__ == "__main__":
    main()
