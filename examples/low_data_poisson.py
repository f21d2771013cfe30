"""Low-data operator learning: test error vs number of training samples.

Question: with n <= 32 training pairs, does Neural-HSS beat FNO (neuraloperator) at a comparable
or smaller parameter count, and does it beat the obvious linear answer (least squares)?

Methods (``--models``) are those of :mod:`neuralhss.train.methods`: ``least_squares``,
``hss_poly`` (linear Neural-HSS, polynomial bases of degree ``--degree``, convex fit, top
``--untie-top`` levels untied; reported as ``hss_poly_d<degree>u<untie>``),
``neural_hss_linear``, ``neural_hss``, ``fno``, ``tfno``. Gradient-trained models take
``--steps`` AdamW steps (cosine schedule, batch <= 8). Errors are relative L2 on the fixed
100-sample test set, in the data's own units. Inputs and outputs are scaled by their training
RMS (no shift, so that a linear operator stays linear).

``--model-args JSON`` overrides the method's model (for ``h2_linear`` its linear path, e.g.
``'{"leaf_side": 4, "linear_degree": 2}'``); such rows are reported as ``method[args]``.
``--linear-solver lstsq|lbfgs|auto`` picks the solver of the H² convex fits (rows reported as
``method<solver>``).

Results are appended to ``OUT/results.json`` as they finish (re-running skips finished runs;
several sweeps may append to the same file at once), and ``OUT/test_error_vs_n.png`` and
``OUT/table.md`` are redrawn at the end. A gradient-trained method run with a ``--steps`` other
than 1000 is reported as ``method@steps``.

Run (CPU default, a few minutes per gradient-trained model and n):
``python examples/low_data_poisson.py --n-train 4 16 64 --seeds 0``
Full sweep: ``--n-train 1 2 4 8 16 32 64 128 --seeds 0 1 2`` (hours on 2 cores).
"""

from __future__ import annotations

import argparse
import fcntl
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from neuralhss.datasets import PDEDataset, generate, load_recipe  # noqa: E402
from neuralhss.train.methods import CLOSED_FORM, METHODS, fit_method  # noqa: E402


def _num(v: float) -> str:
    # three decimals, or two significant digits below 0.001 (exact fits reach 1e-7)
    return f"{v:.3f}" if v == 0 or abs(v) >= 0.001 else f"{v:.2g}"


def _label(r: dict) -> str:
    steps = r.get("steps")
    return r["method"] if steps in (None, 1000) else f"{r['method']}@{steps}"


def append_result(path: Path, row: dict) -> list[dict]:
    """Append ``row`` to the JSON list at ``path`` under an exclusive lock; return the list."""
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        results = json.loads(path.read_text()) if path.exists() else []
        results.append(row)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(results, indent=1) + "\n")
        tmp.replace(path)
    return results


def plot(results: list[dict], out: Path) -> None:
    # Poisson panels first; one colour per method in every panel, reduced budgets dashed.
    def order(d: str) -> tuple:
        stem, _, res = d.rpartition("_")
        return (not d.startswith("poisson"), stem, int(res) if res.isdigit() else 0)

    datasets = sorted({r["dataset"] for r in results}, key=order)
    base = sorted({_label(r).split("@")[0] for r in results})
    colour = {m: plt.get_cmap("tab10")(i % 10) for i, m in enumerate(base)}
    ncols = min(3, len(datasets))
    nrows = -(-len(datasets) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(6 * ncols, 4.5 * nrows), squeeze=False)
    for ax in axes.flat[len(datasets):]:
        ax.set_visible(False)
    for ax, ds in zip(axes.flat, datasets, strict=False):
        for method in sorted({_label(r) for r in results if r["dataset"] == ds}):
            rows = [r for r in results if r["dataset"] == ds and _label(r) == method]
            ns = sorted({r["n_train"] for r in rows})
            errs = [[r["test_rel_l2"] for r in rows if r["n_train"] == n] for n in ns]
            mean = [np.mean(e) for e in errs]
            c = colour[method.split("@")[0]]
            ax.plot(ns, mean, "o--" if "@" in method else "o-", color=c, label=method)
            ax.fill_between(ns, [min(e) for e in errs], [max(e) for e in errs], color=c, alpha=0.2)
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
    """One Markdown table per dataset: mean ± std over seeds of the test error per n."""
    out = []
    for ds in sorted({r["dataset"] for r in results}):
        rows_ds = [r for r in results if r["dataset"] == ds]
        ns = sorted({r["n_train"] for r in rows_ds})
        lines = [f"| {ds} | parameters | fit time (s, median) | "
                 + " | ".join(f"n={n}" for n in ns) + " |", "|---" * (3 + len(ns)) + "|"]
        for method in sorted({_label(r) for r in rows_ds}):
            rows = [r for r in rows_ds if _label(r) == method]
            cells = []
            for n in ns:
                e = [r["test_rel_l2"] for r in rows if r["n_train"] == n]
                cells.append(_num(np.mean(e)) + (f" ± {_num(np.std(e))}" if len(e) > 1 else "")
                             if e else "")
            params = sorted({r["n_params"] for r in rows})
            ptxt = "dense N×N (rank ≤ n)" if method.endswith("least_squares") else \
                (f"{params[0]:,}" if len(params) == 1 else f"{params[0]:,}–{params[-1]:,}")
            secs = float(np.median([r["train_seconds"] for r in rows]))
            stime = f"{secs:.3g}" if secs < 100 else f"{secs:.0f}"
            lines.append(f"| {method} | {ptxt} | {stime} | " + " | ".join(cells) + " |")
        out.append("\n".join(lines))
    return "\n\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipes", nargs="+", default=["datasets/poisson2d_64.yaml"])
    ap.add_argument("--data-dir", default="data")
    ap.add_argument("--models", nargs="+", choices=METHODS,
                    default=["least_squares", "hss_poly", "neural_hss_linear", "fno", "tfno"])
    ap.add_argument("--n-train", type=int, nargs="+", default=[4, 16, 64])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--n-test", type=int, default=100)
    ap.add_argument("--steps", type=int, default=1000, help="Adam steps of gradient-trained models")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--degree", type=int, default=3, help="polynomial degree of hss_poly")
    ap.add_argument("--untie-top", type=int, default=5, help="untied top levels of hss_poly")
    ap.add_argument("--lbfgs-iter", type=int, default=None,
                    help="L-BFGS iterations of the convex fits (default: the method's own, see fit_method)")
    ap.add_argument("--linear-solver", choices=["lbfgs", "lstsq", "auto"], default=None,
                    help="solver of the H² convex fits (fit_method's linear_solver; default its own)")
    ap.add_argument("--model-args", type=json.loads, default=None,
                    help="JSON object of model arguments (fit_method's model_args)")
    ap.add_argument("--out", default="examples/results/low_data_poisson")
    args = ap.parse_args()
    if args.model_args is not None and not isinstance(args.model_args, dict):
        ap.error(f"--model-args {args.model_args!r}: give a JSON object, e.g. '{{\"leaf_side\": 4}}'")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    res_path = out / "results.json"
    results = json.loads(res_path.read_text()) if res_path.exists() else []
    done = {(r["dataset"], _label(r), r["n_train"], r["seed"]) for r in results}
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
                    deterministic = method in CLOSED_FORM
                    label = f"{method}_d{args.degree}u{args.untie_top}" if method == "hss_poly" \
                        else method
                    if args.model_args:
                        label += "[" + ",".join(f"{k}={v}" for k, v in sorted(args.model_args.items())) \
                            + "]"
                    if args.linear_solver:
                        label += f"<{args.linear_solver}>"
                    key = label if deterministic else _label({"method": label, "steps": args.steps})
                    if (ds_name, key, n, seed) in done or (deterministic and seed != args.seeds[0]):
                        continue
                    train = PDEDataset(data, "train", n=n, n_test=args.n_test, normalize="scale")
                    test = PDEDataset(data, "test", n_test=args.n_test, normalize=train.normalizer)
                    _, m = fit_method(method, train, test, steps=args.steps, seed=seed, lr=args.lr,
                                      degree=args.degree, untie_top=args.untie_top,
                                      lbfgs_iter=args.lbfgs_iter, model_args=args.model_args,
                                      **({"linear_solver": args.linear_solver}
                                         if args.linear_solver else {}))
                    row = {"dataset": ds_name, "method": label, "n_train": n, "seed": seed, **m}
                    results = append_result(res_path, row)
                    print(f"{ds_name} {label:18s} n={n:4d} seed={seed} "
                          f"test {m['test_rel_l2']:.4g}  params {m['n_params']:,}  "
                          f"{m['train_seconds']:.1f} s", flush=True)
    results = json.loads(res_path.read_text()) if res_path.exists() else results
    plot(results, out)
    (out / "table.md").write_text(table(results) + "\n")
    print(table(results))
    print(f"results: {res_path}, {out / 'test_error_vs_n.png'}, {out / 'table.md'}")


if __name__ == "__main__":
    main()
