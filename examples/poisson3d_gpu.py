"""The paper's setting on one GPU: 3-D Poisson at 128³ (2,097,152 points), few samples.

Neural-HSS v2 (``neural_h2``: strong admissibility, linear path fitted by convex least squares,
then Adam) against neuraloperator's FNO (8 modes per axis, width 16, 4 layers) and dense least
squares, at n = 4, 16, 64 training samples, on a fixed test set, relative L2 error in data units.

A GPU is lent for minutes, so every gradient-trained run gets the same wall-clock budget
(``--budget``, seconds of training): the step time is measured first and the number of Adam
steps set to fill the budget (at most ``--max-steps``); the steps taken are recorded. Both
models get the same budget; neither is guaranteed converged, which the results state.

Run (on a GPU; the 128³ rows of docs/neural_hss.md used these defaults)::

    python examples/poisson3d_gpu.py --out examples/results/poisson3d_128
    # FNO with a longer budget at n = 16 (results/poisson3d_128/fno_long_budget.json)
    python examples/poisson3d_gpu.py --methods fno --n-train 16 --budget 240 --max-steps 3000 --out OUT

CPU smoke test of the same script: ``--resolution 32 --n-train 4 --budget 20 --n-test 8``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from neuralhss.datasets import PDEDataset, generate
from neuralhss.models import build
from neuralhss.train.loop import to_memory
from neuralhss.train.methods import GRADIENT_METHODS, fit_method


def step_seconds(method: str, train, device: torch.device, batch: int, repeats: int = 3) -> float:
    """Seconds per Adam step of ``method``'s model on ``batch`` training samples (after a warm-up)."""
    name, cfg = GRADIENT_METHODS[method](tuple(train.grid_shape))
    cfg.update(in_channels=train.in_channels, out_channels=train.out_channels)
    model = build(name, **cfg).to(device)
    mem = to_memory(train)
    x, y = mem.x[:batch].to(device), mem.y[:batch].to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    for k in range(repeats + 1):
        if k == 1:
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        opt.zero_grad()
        (model(x) - y).square().mean().backward()
        opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / repeats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resolution", type=int, default=128)
    ap.add_argument("--n-train", type=int, nargs="+", default=[4, 16, 64])
    ap.add_argument("--n-test", type=int, default=16)
    ap.add_argument("--n-samples", type=int, default=80,
                    help="samples in the file (the last --n-test are the test set)")
    ap.add_argument("--methods", nargs="+", default=["least_squares", "neural_h2", "fno"])
    ap.add_argument("--budget", type=float, default=35.0, help="training seconds per gradient run")
    ap.add_argument("--max-steps", type=int, default=2000)
    ap.add_argument("--lbfgs-iter", type=int, default=50)
    ap.add_argument("--data", default="data")
    ap.add_argument("--out", default="examples/results/poisson3d_128")
    args = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    res = args.resolution
    data = Path(args.data) / f"poisson3d_{res}_gpu.h5"
    t0 = time.perf_counter()
    generate("poisson", data, n_samples=max(args.n_samples, max(args.n_train) + args.n_test), seed=0,
             params={"dim": 3, "resolution": res, "length_scale": 1 / 3, "smoothness": 1.0},
             workers=8, progress=False)
    print(f"data {data}: {time.perf_counter() - t0:.1f} s", flush=True)
    info = {"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
            "torch": torch.__version__, "resolution": res, "n_test": args.n_test,
            "budget_seconds": args.budget}
    rows = []
    for n in args.n_train:
        train = PDEDataset(data, "train", n=n, n_test=args.n_test, normalize="scale")
        test = PDEDataset(data, "test", n_test=args.n_test, normalize=train.normalizer)
        for method in args.methods:
            steps = 0
            if method in GRADIENT_METHODS:
                sec = step_seconds(method, train, device, min(n, 8))
                steps = int(max(50, min(args.max_steps, args.budget / sec)))
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats()
            _, m = fit_method(method, train, test, steps=max(steps, 1), lr=1e-3,
                              lbfgs_iter=args.lbfgs_iter, device=str(device))
            m.update({"method": method, "n_train": n, "steps": steps or None})
            if device.type == "cuda" and steps:
                m["peak_gpu_mib"] = torch.cuda.max_memory_allocated() / 2**20
            rows.append(m)
            print(json.dumps(m), flush=True)
            (out / "results.json").write_text(json.dumps({"info": info, "rows": rows}, indent=1) + "\n")
            del _
            if device.type == "cuda":
                torch.cuda.empty_cache()
    print(f"total {time.perf_counter() - t0:.0f} s; results: {out / 'results.json'}")


if __name__ == "__main__":
    main()
