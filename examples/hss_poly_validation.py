"""Choosing the linear Neural-HSS hyperparameters without looking at the test set.

Question: the polynomial-basis HSS fit (``hss_poly``) has two hyperparameters, the basis
degree and the number of untied top levels. The low-data table reports one setting; was it
only good on the test set? Here every setting of a grid is fitted on the first ``n`` training
samples and scored on a **validation** set — the last ``--n-val`` samples of the training
split, never used for fitting at the ``n`` studied and disjoint from the 100-sample test set.
The setting with the lowest validation error is then reported with its test error, next to
the best test error over the grid (what picking on the test set would have claimed).

Writes ``OUT/results.json`` (every fit; re-running skips finished ones) and ``OUT/table.md``.

Run: ``python examples/hss_poly_validation.py`` (2-D Poisson 64², the default grid, degree {2, 3, 4} x untie
{4, 5, 6} at n = 4, 16, 32, takes 10-30 minutes on 2 cores). Degree 4 is the largest a
16-point leaf allows: its 2-D polynomial basis has 15 terms, degree 5 would need 21. Other
data: ``--recipe datasets/poisson3d_32.yaml`` (rows are kept per dataset).
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

from neuralhss.datasets import PDEDataset, generate, load_recipe
from neuralhss.train.loop import evaluate, to_memory
from neuralhss.train.methods import fit_method


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", default="datasets/poisson2d_64.yaml")
    ap.add_argument("--data-dir", default="data")
    ap.add_argument("--n-train", type=int, nargs="+", default=[4, 16, 32])
    ap.add_argument("--degrees", type=int, nargs="+", default=[2, 3, 4])
    ap.add_argument("--untie", type=int, nargs="+", default=[4, 5, 6])
    ap.add_argument("--leaf-sizes", type=int, nargs="+", default=[0],
                    help="points per HSS leaf (0: the default, 16 in 2-D and 64 in 3-D)")
    ap.add_argument("--n-test", type=int, default=100)
    ap.add_argument("--n-val", type=int, default=100)
    ap.add_argument("--lbfgs-iter", type=int, default=300)
    ap.add_argument("--out", default="examples/results/hss_poly_validation")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    recipe = load_recipe(args.recipe)
    data = Path(args.data_dir) / (Path(args.recipe).stem + ".h5")
    generate(recipe.problem, data, n_samples=recipe.samples, seed=recipe.seed,
             params=recipe.params, workers=2, progress=False)
    ds_name = Path(args.recipe).stem
    res_path = out / "results.json"
    results = json.loads(res_path.read_text()) if res_path.exists() else []
    done = {(r["dataset"], r["n_train"], r.get("leaf_size", 0), r["degree"], r["untie_top"])
            for r in results}
    for n in args.n_train:
        train = PDEDataset(data, "train", n=n, n_test=args.n_test, normalize="scale")
        pool = PDEDataset(data, "train", n_test=args.n_test, normalize=train.normalizer)
        if n > len(pool) - args.n_val:
            raise ValueError(f"n={n} overlaps the validation set (last {args.n_val} of "
                             f"{len(pool)} training samples)")
        val = pool.subset(slice(-args.n_val, None))
        test = PDEDataset(data, "test", n_test=args.n_test, normalize=train.normalizer)
        for leaf, degree, untie in itertools.product(args.leaf_sizes, args.degrees, args.untie):
            if (ds_name, n, leaf, degree, untie) in done:
                continue
            try:
                model, m = fit_method("hss_poly", train, test, degree=degree, untie_top=untie,
                                      lbfgs_iter=args.lbfgs_iter, leaf_size=leaf or None)
            except ValueError as err:  # degree too high for the leaf, or too many levels
                print(f"skipped leaf {leaf} degree {degree} untie {untie}: {err}")
                continue
            v = evaluate(model, to_memory(val), train.normalizer)
            row = {"dataset": ds_name, "n_train": n, "leaf_size": leaf, "degree": degree,
                   "untie_top": untie,
                   "val_rel_l2": v["test_rel_l2"], **m}
            results.append(row)
            res_path.write_text(json.dumps(results, indent=1) + "\n")
            print(f"{ds_name} n={n:3d} leaf {leaf} degree {degree} untie {untie}: "
                  f"val {row['val_rel_l2']:.4f} test {m['test_rel_l2']:.4f} params {m['n_params']:,} "
                  f"{m['train_seconds']:.1f} s", flush=True)
    def setting(r: dict) -> str:
        leaf = r.get("leaf_size", 0)
        return f"d{r['degree']} u{r['untie_top']}" + (f" leaf {leaf}" if leaf else "")

    lines = ["| dataset | n | chosen on validation (degree, untie) | its test error | params | "
             "best test error over the grid (setting) |", "|---|---|---|---|---|---|"]
    for ds, n in sorted({(r["dataset"], r["n_train"]) for r in results}):
        rows = [r for r in results if r["dataset"] == ds and r["n_train"] == n
                and r.get("leaf_size", 0) in args.leaf_sizes and r["degree"] in args.degrees
                and r["untie_top"] in args.untie]
        if not rows:
            continue
        pick = min(rows, key=lambda r: r["val_rel_l2"])
        best = min(rows, key=lambda r: r["test_rel_l2"])
        lines.append(f"| {ds} | {n} | {setting(pick)} | {pick['test_rel_l2']:.3f} | "
                     f"{pick['n_params']:,} | {best['test_rel_l2']:.3f} ({setting(best)}) |")
    (out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"results: {res_path}, {out / 'table.md'}")


if __name__ == "__main__":
    main()
