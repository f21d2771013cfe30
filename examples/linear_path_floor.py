"""Where does the linear H² path's error floor on Poisson come from: the far field or the boundary?

The linear path of ``neural_h2`` (and ``h2_linear``) is a near-field convolution on the input
continued past the boundary (odd images for Dirichlet data) plus a polynomial far field through
interaction lists. Fitted by convex least squares to many Poisson pairs, its training error stops
near 0.02 on 2-D Poisson 32², far above what a linear map of a linear problem should leave. This
script separates the two suspects by fitting, on the same pairs,

* ``far_deg{2,3}``: the path as ``neural_h2`` builds it (leaves of 4 points, Legendre degree 2
  or 3, per-level couplings), square-symmetric;
* ``full``: a near field as wide as the grid (``linear_near_radius="full"``) and no far field:
  one translation-invariant kernel on the odd-continued input (the method of images), also
  square-symmetric;
* ``grids_deg{2,4}``: the far field on nested coarse grids (B-spline degree 2 or 4), and
  ``stationary_deg{2,4}``: the same levels undecimated, summed into one translation-invariant
  kernel (``H2Operator``'s ``far="grids"`` and ``far="stationary"``).

If the continuation were the limit, ``full`` would stall too. For each it prints train and test
relative L2 errors (mean over samples, data units) and the RMS error on rings at distance
``0, 2, 4, ...`` points from the boundary, relative to the RMS of the test outputs.

Data: ``--data-dir/fair_poisson_{32,64}.h5`` (``examples/neural_h2_variants.py`` writes them);
train on the first ``--n-train`` samples, test on the last 100. One thread.

Run: ``python examples/linear_path_floor.py`` (32², about 6 minutes on one core). Writes
``examples/results/linear_path_floor/results.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import h5py
import torch

from neuralhss.models import build, count_parameters

PATHS = {
    "far_deg2": {"linear_degree": 2},
    "far_deg3": {"linear_degree": 3},
    "full": {"linear_degree": 2, "linear_near_radius": "full"},
    "grids_deg2": {"linear_degree": 2, "linear_far": "grids"},
    "grids_deg4": {"linear_degree": 4, "linear_far": "grids"},
    "stationary_deg2": {"linear_degree": 2, "linear_far": "stationary"},
    "stationary_deg4": {"linear_degree": 4, "linear_far": "stationary"},
}


def rel(p: torch.Tensor, t: torch.Tensor) -> float:
    return float(((p - t).flatten(1).norm(dim=1) / t.flatten(1).norm(dim=1)).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default="data")
    ap.add_argument("--size", type=int, default=32, choices=(32, 64))
    ap.add_argument("--n-train", type=int, nargs="+", default=[16, 200])
    ap.add_argument("--paths", nargs="+", default=list(PATHS), choices=list(PATHS))
    ap.add_argument("--max-iter", type=int, default=3000, help="L-BFGS iterations (at most)")
    ap.add_argument("--out", default="examples/results/linear_path_floor/results.jsonl")
    args = ap.parse_args()
    torch.set_num_threads(1)
    path = Path(args.data_dir) / f"fair_poisson_{args.size}.h5"
    if not path.exists():
        raise SystemExit(f"{path} is missing; run examples/neural_h2_variants.py --problem "
                         f"poisson_{args.size} once to write it")
    with h5py.File(path, "r") as f:
        x = torch.tensor(f["inputs/f"][:], dtype=torch.float64)[:, None]
        y = torch.tensor(f["outputs/u"][:], dtype=torch.float64)[:, None]
    if max(args.n_train) + 100 > len(x):
        raise SystemExit(f"{path} has {len(x)} samples; --n-train at most {len(x) - 100}")
    xte, yte = x[-100:], y[-100:]
    n = args.size
    i = torch.arange(n)
    dist = torch.minimum(i, n - 1 - i)
    ring_of = torch.minimum(dist[:, None], dist[None, :])
    scale = float(yte.square().mean().sqrt())
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for n_train in args.n_train:
        for name in args.paths:
            model = build("neural_h2", in_channels=1, out_channels=1, grid_shape=[n, n],
                          n_layers=0, leaf_side=4, boundary="dirichlet", linear_symmetric=True,
                          **PATHS[name]).double()
            t0 = time.perf_counter()
            fit = model.fit_linear_path(x[:n_train], y[:n_train], max_iter=args.max_iter)
            seconds = time.perf_counter() - t0
            with torch.no_grad():
                train, pred = rel(model(x[:n_train]), y[:n_train]), model(xte)
            err = (pred - yte).square().mean(0)[0]
            rings = [float(err[ring_of == k].mean().sqrt()) / scale for k in range(0, n // 2, 2)]
            row = {"size": n, "path": name, "n_train": n_train, "train_rel_l2": train,
                   "test_rel_l2": rel(pred, yte), "ring_rms": rings, "iterations": fit.iterations,
                   "n_params": count_parameters(model, trainable_only=False),
                   "fit_seconds": seconds}
            print(f"{n}² n={n_train:3d} {name:9s} train {train:.5f} test {row['test_rel_l2']:.5f} "
                  f"params {row['n_params']:,} it {fit.iterations} rings "
                  + " ".join(f"{r:.4f}" for r in rings), flush=True)
            with out.open("a") as fh:
                fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
