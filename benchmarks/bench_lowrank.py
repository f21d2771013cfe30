"""Dynamical low-rank training (DLRT) vs dense training: time and peak memory per training step.

Two settings, each candidate one full training step (forward, backward, optimizer/integrator
step) on the same batch:

* **layer**: a 2048×2048 linear layer, batch 256, MSE loss. Baseline ``nn.Linear`` + AdamW;
  candidates :class:`~neuralhss.lowrank.LowRankLinear` at rank 16, 64, 256 trained by
  :class:`~neuralhss.lowrank.DLRT` (one-pass augmented step, ``tau=0.05``, ranks capped at
  ``r``: the basis is augmented to ``2r`` and truncated back every step).
* **fno**: neuraloperator's FNO (16 modes per axis, width 32, 4 layers) on a 64×64 grid, batch 8
  (random fields of the Darcy shape: timings do not depend on the values), relative L2 loss.
  Baseline dense FNO + AdamW; candidates: ``compress(fno, rank=r, kinds=("spectral",),
  spectral_modes=(0, 1, 2, 3))`` (the format of ``examples/compress_operators.py``: Tucker
  spectral weights, factors on all four modes as in TFNO, 1×1 convolutions dense) + DLRT at
  r = 4, 8, 16; every layer compressed (``compress(fno, rank=8)``: channel-mode Tucker spectral
  weights, low-rank 1×1 convolutions) + DLRT; the r = 8 format trained by plain AdamW on factors
  and core (no DLRT: the cost of the factorised forward/backward alone); neuraloperator's TFNO
  (rank 0.05) + AdamW.

Timing: candidates interleaved round by round after one warm-up step each, medians (and the
ratio of the minima, less sensitive to other load on a shared machine), one torch thread by
default (the 2-core machine is shared). Peak memory: each candidate alone in a fresh
subprocess (VmHWM), in total and as the increase over the process after set-up (model, batch).
The ratio DLRT/dense says where low-rank training pays off on this CPU.

    .venv/bin/python benchmarks/bench_lowrank.py            # about 2 minutes
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from _common import interleaved, step_memory, write_result

from neuralhss.lowrank import DLRT, LowRankLinear, compress
from neuralhss.models import build, count_parameters

N, BATCH = 2048, 256
LAYER_RANKS = (16, 64, 256)
FNO_GRID, FNO_BATCH = 64, 8
FNO_RANKS = (4, 8, 16)
FNO = {"in_channels": 1, "out_channels": 1, "n_modes": [16, 16], "hidden_channels": 32, "n_layers": 4}
TAU = 0.05


def candidates() -> dict[str, str]:
    out = {"layer_dense": f"nn.Linear({N}, {N}) + AdamW"}
    out.update({f"layer_dlrt_r{r}": f"LowRankLinear rank {r} + DLRT" for r in LAYER_RANKS})
    out["fno_dense"] = "FNO 16 modes, width 32, 4 layers + AdamW"
    out.update({f"fno_dlrt_r{r}": f"compress(FNO, rank={r}, spectral only, Tucker modes 0123) + DLRT"
                for r in FNO_RANKS})
    out["fno_dlrt_all_r8"] = "compress(FNO, rank=8), every layer, Tucker modes 01 + DLRT"
    out["fno_adam_r8"] = "compress(FNO, rank=8, spectral only, Tucker modes 0123) + AdamW (no DLRT)"
    out["fno_tfno"] = "TFNO rank 0.05 + AdamW"
    return out


def make(name: str) -> tuple[Callable[[], None], torch.nn.Module, dict[str, Any]]:
    """Build candidate ``name``: a closure doing one training step, the model, and notes."""
    torch.manual_seed(0)
    if name.startswith("layer"):
        x, y = torch.randn(BATCH, N), torch.randn(BATCH, N)

        def loss_fn(m):
            return (m(x) - y).square().mean()

        if name == "layer_dense":
            model: torch.nn.Module = torch.nn.Linear(N, N)
        else:
            r = int(name.rsplit("_r", 1)[1])
            model = LowRankLinear(N, N, rank=r, max_rank=r)
    else:
        x, y = torch.randn(FNO_BATCH, 1, FNO_GRID, FNO_GRID), torch.randn(FNO_BATCH, 1, FNO_GRID, FNO_GRID)

        def loss_fn(m):
            p = m(x)
            return ((p - y).flatten(1).norm(dim=1) / y.flatten(1).norm(dim=1)).mean()

        if name == "fno_tfno":
            model = build("tfno", **FNO, rank=0.05)
        else:
            model = build("fno", **FNO)
            if name == "fno_dlrt_all_r8":
                model = compress(model, rank=8).model
            elif name != "fno_dense":
                model = compress(model, rank=int(name.rsplit("_r", 1)[1]), kinds=("spectral",),
                                 spectral_modes=(0, 1, 2, 3)).model
    if "dlrt" in name:
        r = int(name.rsplit("_r", 1)[1])
        integ = DLRT(model, lambda ps: torch.optim.AdamW(ps, lr=1e-4), tau=TAU, max_rank=r)

        def step() -> None:
            integ.zero_grad()
            loss_fn(model).backward()
            integ.step()

        notes = {"integrator": {"mode": integ.mode, "tau": TAU, "max_rank": r}}
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

        def step() -> None:
            opt.zero_grad(set_to_none=True)
            loss_fn(model).backward()
            opt.step()

        notes = {}
    return step, model, notes


def memory_child(name: str, threads: int) -> None:
    torch.set_num_threads(threads)
    step, _, _ = make(name)
    print(json.dumps(step_memory(step, repeats=3)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child:
        memory_child(args.memory_child, args.threads)
        return
    torch.set_num_threads(args.threads)
    cands = candidates()
    timing: dict[str, Any] = {}
    params: dict[str, int] = {}
    notes: dict[str, Any] = {}
    for group in ("layer", "fno"):
        built = {k: make(k) for k in cands if k.startswith(group)}
        t = interleaved({k: b[0] for k, b in built.items()}, args.rounds)
        base = t[f"{group}_dense"]["median_s"]
        for k, (_, model, note) in built.items():
            t[k]["ratio_to_dense"] = t[k]["median_s"] / base
            t[k]["ratio_of_min_to_dense"] = t[k]["min_s"] / t[f"{group}_dense"]["min_s"]
            params[k] = count_parameters(model)
            if note:
                integ_ranks = sorted({r if isinstance(r, int) else max(r) for r in
                                      DLRT(model, lambda ps: torch.optim.SGD(ps, lr=0.0)).ranks().values()})
                notes[k] = {**note, "ranks_after_timing": integ_ranks}
        timing.update(t)
        print(f"{group}: " + ", ".join(f"{k} {v['median_s'] * 1e3:.1f} ms ({v['ratio_to_dense']:.2f}x)"
                                       for k, v in t.items()), flush=True)
        del built
    memory = {}
    for k in cands:
        out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--threads", str(args.threads),
                              "--memory-child", k], capture_output=True, text=True, check=True)
        memory[k] = json.loads(out.stdout.strip().splitlines()[-1])
    res = {"layer": {"n": N, "batch": BATCH, "ranks": list(LAYER_RANKS)},
           "fno": {**FNO, "grid": [FNO_GRID] * 2, "batch": FNO_BATCH, "ranks": list(FNO_RANKS)},
           "dtype": "float32", "threads": args.threads, "candidates": cands, "params": params,
           "timing_train_step": timing, "memory": memory, "integrators": notes}
    tl = ", ".join(f"r{r} {timing[f'layer_dlrt_r{r}']['ratio_to_dense']:.2f}x" for r in LAYER_RANKS)
    tf = ", ".join(f"r{r} {timing[f'fno_dlrt_r{r}']['ratio_to_dense']:.2f}x" for r in FNO_RANKS)
    mem_l = ", ".join(f"r{r} {memory[f'layer_dlrt_r{r}']['working_mib']:.0f}" for r in LAYER_RANKS)
    write_result("bench_lowrank", res,
                 f"step time DLRT/dense, {args.threads} thread(s): {N}x{N} layer (batch {BATCH}) {tl}; "
                 f"FNO {FNO_GRID}^2 {tf}, TFNO {timing['fno_tfno']['ratio_to_dense']:.2f}x; working MiB "
                 f"layer dense {memory['layer_dense']['working_mib']:.0f} vs {mem_l}; FNO dense "
                 f"{memory['fno_dense']['working_mib']:.0f} vs r8 "
                 f"{memory['fno_dlrt_r8']['working_mib']:.0f}; "
                 f"FNO r8 without DLRT (AdamW) {timing['fno_adam_r8']['ratio_to_dense']:.2f}x")


if __name__ == "__main__":
    main()
