"""Low-data operator learning: test error vs number of training samples.

Question: with n <= 32 training pairs, does Neural-HSS beat FNO (neuraloperator) at a comparable
or smaller parameter count, and does it beat the obvious linear answer (least squares)?

Methods (``--models``):
- ``least_squares``: minimum-norm dense least squares (closed form, REFERENCE.md section 9);
- ``hss_poly``: linear Neural-HSS whose far-field bases are fixed polynomials
  (``neuralhss.hss.polynomial``), so that the leaf blocks and couplings are fitted by convex
  least squares (L-BFGS); top ``--untie-top`` levels untied;
- ``neural_hss_linear``: linear Neural-HSS (width 1, rank 16, top 5 levels untied) by Adam;
- ``neural_hss``: nonlinear Neural-HSS (width 8, 2 blocks, rank 4) by Adam;
- ``fno``, ``tfno``: neuraloperator's FNO (16 modes, width 32, 4 layers) and TFNO, by Adam.
Gradient-trained models take ``--steps`` AdamW steps (cosine schedule, batch <= 8). Errors are
relative L2 on the fixed 100-sample test set, in the data's own units. Inputs and outputs are
scaled by their training RMS (no shift, so that a linear operator stays linear).

Results are appended to ``OUT/results.json`` as they finish (re-running skips finished runs),
and ``OUT/test_error_vs_n.png`` and ``OUT/table.md`` are redrawn at the end.

Run (CPU default, a few minutes per gradient-trained model and n):
``python examples/low_data_poisson.py --n-train 4 16 64 --seeds 0``
Full sweep: ``--n-train 1 2 4 8 16 32 64 128 --seeds 0 1 2`` (hours on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from neuralhss.datasets import PDEDataset, generate, load_recipe  # noqa: E402
from neuralhss.hss.polynomial import fit_polynomial_hss  # noqa: E402
from neuralhss.models import build  # noqa: E402
from neuralhss.models.linear import fit_least_squares  # noqa: E402
from neuralhss.train import TrainConfig, evaluate, fit, to_memory  # noqa: E402

GRADIENT_MODELS = {
    "neural_hss_linear": lambda grid: ("neural_hss", dict(
        grid_shape=list(grid), width=1, n_layers=1, activation="identity", positional=False,
        rank=16, share="level", untie_top=5, leaf_size=16 if len(grid) < 3 else 64)),
    "neural_hss": lambda grid: ("neural_hss", dict(
        grid_shape=list(grid), width=8, n_layers=2, rank=4, share="level", untie_top=3,
        leaf_size=16 if len(grid) < 3 else 64)),
    "fno": lambda grid: ("fno", dict(n_modes=[min(16, n // 2) for n in grid], hidden_channels=32,
                                     n_layers=4)),
    "tfno": lambda grid: ("tfno", dict(n_modes=[min(16, n // 2) for n in grid], hidden_channels=32,
                                       n_layers=4, rank=0.05)),
}


class _Channel(torch.nn.Module):
    """Wrap a one-channel HSS operator fitted in float64 for (B, 1, *grid) float32 data."""

    def __init__(self, op: torch.nn.Module) -> None:
        super().__init__()
        self.op = op

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x.double()).to(x.dtype)


def run_one(method: str, train, test, grid, steps: int, seed: int, args) -> dict:
    mem, tmem = to_memory(train), to_memory(test)
    t0 = time.perf_counter()
    if method == "least_squares":
        model = fit_least_squares(mem.x, mem.y)
        n_params = int(mem.x[0].numel() * len(mem.x))  # what it stores: the training inputs
        metrics = evaluate(model, tmem, train.normalizer)
    elif method == "hss_poly":
        op = fit_polynomial_hss(mem.x[:, 0], mem.y[:, 0], 16 if len(grid) < 3 else 64,
                                degree=args.degree, share="level", untie_top=args.untie_top,
                                max_iter=args.lbfgs_iter)
        model = _Channel(op)
        n_params = int(sum(p.numel() for p in (op.D, *op.B)))
        metrics = evaluate(model, tmem, train.normalizer)
    else:
        name, cfg = GRADIENT_MODELS[method](grid)
        torch.manual_seed(seed)
        model = build(name, **cfg)
        bs = min(len(mem), 8)
        epochs = max(1, steps // -(-len(mem) // bs))
        res = fit(model, mem, TrainConfig(epochs=epochs, batch_size=bs, lr=args.lr,
                                          weight_decay=0.0, seed=seed, progress=False),
                  test_set=tmem, normalizer=train.normalizer)
        n_params = res["n_params"]
        metrics = {k: res[k] for k in ("test_rel_l2", "test_rel_l2_median", "n_test")}
        metrics["train_rel_l2"] = res["train_rel_l2"]
    metrics.update({"n_params": n_params, "train_seconds": time.perf_counter() - t0})
    return metrics


def plot(results: list[dict], out: Path) -> None:
    datasets = sorted({r["dataset"] for r in results})
    fig, axes = plt.subplots(1, len(datasets), figsize=(6 * len(datasets), 4.5), squeeze=False)
    for ax, ds in zip(axes[0], datasets, strict=True):
        for method in sorted({r["method"] for r in results if r["dataset"] == ds}):
            rows = [r for r in results if r["dataset"] == ds and r["method"] == method]
            ns = sorted({r["n_train"] for r in rows})
            errs = [[r["test_rel_l2"] for r in rows if r["n_train"] == n] for n in ns]
            mean = [np.mean(e) for e in errs]
            ax.plot(ns, mean, "o-", label=method)
            ax.fill_between(ns, [min(e) for e in errs], [max(e) for e in errs], alpha=0.2)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("training samples n")
        ax.set_ylabel("relative L2 test error (100 samples)")
        ax.set_title(ds)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "test_error_vs_n.png", dpi=110)


def table(results: list[dict]) -> str:
    lines = ["| dataset | method | parameters | " + " | ".join(
        f"n={n}" for n in sorted({r['n_train'] for r in results})) + " |"]
    ns = sorted({r["n_train"] for r in results})
    lines.append("|---" * (3 + len(ns)) + "|")
    keys = sorted({(r["dataset"], r["method"]) for r in results})
    for ds, method in keys:
        rows = [r for r in results if r["dataset"] == ds and r["method"] == method]
        cells = []
        for n in ns:
            e = [r["test_rel_l2"] for r in rows if r["n_train"] == n]
            cells.append(f"{np.mean(e):.3f}" + (f" ± {np.std(e):.3f}" if len(e) > 1 else "")
                         if e else "")
        params = sorted({r["n_params"] for r in rows if r["method"] != "least_squares"})
        ptxt = "n·N (stores the data)" if method == "least_squares" else \
            (f"{params[0]:,}" if len(params) == 1 else f"{params[0]:,}–{params[-1]:,}")
        lines.append(f"| {ds} | {method} | {ptxt} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipes", nargs="+", default=["datasets/poisson2d_64.yaml"])
    ap.add_argument("--data-dir", default="data")
    ap.add_argument("--models", nargs="+",
                    default=["least_squares", "hss_poly", "neural_hss_linear", "fno", "tfno"])
    ap.add_argument("--n-train", type=int, nargs="+", default=[4, 16, 64])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--n-test", type=int, default=100)
    ap.add_argument("--steps", type=int, default=1000, help="Adam steps of gradient-trained models")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--degree", type=int, default=3, help="polynomial degree of hss_poly")
    ap.add_argument("--untie-top", type=int, default=5, help="untied top levels of hss_poly")
    ap.add_argument("--lbfgs-iter", type=int, default=300)
    ap.add_argument("--out", default="examples/results/low_data_poisson")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    res_path = out / "results.json"
    results = json.loads(res_path.read_text()) if res_path.exists() else []
    done = {(r["dataset"], r["method"], r["n_train"], r["seed"]) for r in results}
    for recipe_path in args.recipes:
        recipe = load_recipe(recipe_path)
        data = Path(args.data_dir) / (Path(recipe_path).stem + ".h5")
        generate(recipe.problem, data, n_samples=recipe.samples, seed=recipe.seed,
                 params=recipe.params, workers=2, progress=False)
        ds_name = Path(recipe_path).stem
        test = None
        for n in args.n_train:
            for seed in args.seeds:
                for method in args.models:
                    deterministic = method in ("least_squares", "hss_poly")
                    if (ds_name, method, n, seed) in done or (deterministic and seed != args.seeds[0]):
                        continue
                    train = PDEDataset(data, "train", n=n, n_test=args.n_test, normalize="scale")
                    test = PDEDataset(data, "test", n_test=args.n_test, normalize=train.normalizer)
                    m = run_one(method, train, test, train.grid_shape, args.steps, seed, args)
                    row = {"dataset": ds_name, "method": method, "n_train": n, "seed": seed, **m,
                           "steps": args.steps if method in GRADIENT_MODELS else None}
                    results.append(row)
                    res_path.write_text(json.dumps(results, indent=1) + "\n")
                    print(f"{ds_name} {method:18s} n={n:4d} seed={seed} "
                          f"test {m['test_rel_l2']:.4f}  params {m['n_params']:,}  "
                          f"{m['train_seconds']:.1f} s", flush=True)
    plot(results, out)
    (out / "table.md").write_text(table(results) + "\n")
    print(table(results))
    print(f"results: {res_path}, {out / 'test_error_vs_n.png'}, {out / 'table.md'}")


if __name__ == "__main__":
    main()
