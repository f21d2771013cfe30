"""One training step of Neural-HSS vs FNO on CPU: 128^3 (2,097,152 points), batch 1, by default;
2-D grids with ``--dim 2`` (e.g. 64^2 and 128^2, batch 8: the low-data sweeps' step).

A training step is what ``neuralhss.train.fit`` does per batch: zero the gradients, forward,
neuraloperator's relative ``LpLoss`` against a target, backward, one AdamW step. Models are the
low-data sweep's (``neuralhss.train.methods``) built for the 3-D grid:

- ``fno`` (baseline): neuraloperator FNO, 8 modes per axis, width 16, 4 layers (the 3-D size
  the sweeps train on CPU);
- ``fno_w32m16`` (only with ``--candidates``): FNO with the 2-D sweep's size, 16 modes per
  axis, width 32, 4 layers; at 32^3 it takes 4.2x the time and 4.0x the memory of ``fno``
  (``results/train_step_32.json``), about 16 GiB at 128^3;
- ``neural_hss_linear``: width 1, one HSS layer (leaf 4x4x4, rank 16, top 5 levels untied);
- ``neural_hss``: nonlinear, width 8, 2 blocks, rank 4, top 3 levels untied;
- ``neural_h2``: Neural-HSS v2, the nonlinear default (strong admissibility, linear H² path;
  in 2-D on the stationary nested grids in float64 since 2026-12-07), its linear path frozen
  as training keeps it after the convex start; the variants below keep the default's other
  arguments, its linear path's precision included;
- ``neural_h2_grids``: the same with its linear path's far field on nested coarse grids
  (``linear_far="grids"``, B-spline degree 4, square-symmetric: the Poisson sweeps' choice);
- ``neural_h2_stationary``: the same with its linear path's far field on stationary
  (undecimated) nested grids (``linear_far="stationary"``, degree 4, square-symmetric: the
  Poisson 32² sweeps' choice at n <= 32);
- ``neural_h2_stationary_all``: hidden blocks on the stationary far field as well (hidden
  degree 4, no coordinate channels: the Gray–Scott probes' configuration, here on the
  Dirichlet grid, where the stationary far field applies its kernel to a continued field);
- ``tfno``, ``uno``: neuraloperator's TFNO and UNO at the ``fno`` size.

Time: candidates interleaved round by round after a warm-up step, medians, in one process.
Peak memory: each candidate alone in a fresh subprocess (VmHWM), in total and as the increase
over the process after set-up (input, target, model and optimizer state allocated). Ratios are
to ``fno`` in the same run.

    .venv/bin/python benchmarks/bench_train_step.py            # 128^3, 1 thread, 3 rounds
    .venv/bin/python benchmarks/bench_train_step.py --n 32     # quick check
    .venv/bin/python benchmarks/bench_train_step.py --dim 2 --n 64 --batch 8 \
        --candidates neural_h2 tfno uno                         # 2-D, the sweeps' batch
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
from neuralop.losses import LpLoss

from neuralhss.models import build
from neuralhss.models.registry import count_parameters
from neuralhss.train.methods import GRADIENT_METHODS

# neural_h2 with far fields other than its default's: extra constructor arguments
H2_VARIANTS: dict[str, dict[str, Any]] = {
    "neural_h2_grids": {"linear_far": "grids", "linear_degree": 4, "linear_symmetric": True},
    "neural_h2_stationary": {"linear_far": "stationary", "linear_degree": 4,
                             "linear_symmetric": True},
    "neural_h2_stationary_all": {"linear_far": "stationary", "linear_degree": 4,
                                 "hidden_far": "stationary", "degree": 4, "positional": False},
}
CANDIDATES = ("fno", "fno_w32m16", "neural_hss_linear", "neural_hss", "neural_h2", *H2_VARIANTS,
              "tfno", "uno")
DEFAULT = ("fno", "neural_hss_linear", "neural_hss")


def make_model(name: str, grid: tuple[int, ...]) -> torch.nn.Module:
    if name == "fno_w32m16":
        model_name, cfg = "fno", {"n_modes": [min(16, n // 2) for n in grid],
                                  "hidden_channels": 32, "n_layers": 4}
    elif name in H2_VARIANTS:
        model_name, cfg = GRADIENT_METHODS["neural_h2"](grid)
        cfg.update(H2_VARIANTS[name])
    else:
        model_name, cfg = GRADIENT_METHODS[name](grid)
    model = build(model_name, in_channels=1, out_channels=1, **cfg)
    if getattr(model, "linear", None) is not None:
        # as in training (fit_method's freeze_linear): the convex-fitted linear path stays fixed
        model.linear.requires_grad_(False)
    return model


def train_step(model: torch.nn.Module, grid: tuple[int, ...], batch: int = 1) -> Callable[[], float]:
    """A closure doing one AdamW training step on a fixed random (input, target) batch."""
    x = torch.randn(batch, 1, *grid)
    y = torch.randn(batch, 1, *grid)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss_fn = LpLoss(d=len(grid), p=2, reduction="mean")

    def run() -> float:
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return float(loss.detach())

    return run


def memory_child(name: str, grid: tuple[int, ...], batch: int) -> None:
    """Run in a subprocess: one candidate alone; prints JSON with its peak memory."""
    torch.manual_seed(0)
    model = make_model(name, grid)
    print(json.dumps(step_memory(train_step(model, grid, batch), repeats=2)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=128, help="grid points per axis")
    ap.add_argument("--dim", type=int, choices=(2, 3), default=3)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--candidates", nargs="+", choices=CANDIDATES, default=list(DEFAULT),
                    help="models to compare with fno (the baseline of the ratios)")
    ap.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    n, grid, batch = args.n, (args.n,) * args.dim, args.batch
    if args.memory_child:
        memory_child(args.memory_child, grid, batch)
        return
    torch.manual_seed(0)
    cands = list(dict.fromkeys(["fno", *args.candidates]))
    models = {k: make_model(k, grid) for k in cands}
    params = {k: count_parameters(m) for k, m in models.items()}
    timing: dict[str, Any] = interleaved({k: train_step(m, grid, batch) for k, m in models.items()},
                                         args.rounds)
    base = timing["fno"]["median_s"]
    for t in timing.values():
        t["ratio_to_fno"] = t["median_s"] / base
    print(", ".join(f"{k} {v['median_s']:.2f} s ({v['ratio_to_fno']:.3g}x)"
                    for k, v in timing.items()), flush=True)
    del models
    memory = {}
    for k in cands:
        out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--n", str(n),
                              "--dim", str(args.dim), "--batch", str(batch),
                              "--threads", str(args.threads), "--memory-child", k],
                             capture_output=True, text=True, check=True)
        memory[k] = json.loads(out.stdout.strip().splitlines()[-1])
        memory[k]["ratio_to_fno"] = memory[k]["working_mib"] / memory["fno"]["working_mib"]
    res = {"grid": list(grid), "batch": batch, "dtype": "float32", "threads": args.threads,
           "step": "zero_grad + forward + LpLoss + backward + AdamW.step",
           "params": params, "timing_train_step": timing, "memory": memory}
    name = f"train_step_{n}" if args.dim == 3 and batch == 1 else f"train_step_{args.dim}d_{n}_b{batch}"
    write_result(
        name, res,
        f"{n}^{args.dim} batch-{batch} training step, {args.threads} thread(s): " + ", ".join(
            f"{k} {timing[k]['median_s']:.2f} s ({timing[k]['ratio_to_fno']:.3g}x), "
            f"{memory[k]['working_mib']:.0f} MiB" for k in cands)
        + " (ratios to fno)")


if __name__ == "__main__":
    main()
