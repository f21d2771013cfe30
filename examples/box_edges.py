"""Box-edge artefacts: does a model's error jump where its tree's boxes meet?

Trains each method on ``--n-train`` samples, predicts the fixed test set, and reports
:func:`neuralhss.train.edges.box_edge_ratios` of the error ``prediction - truth`` for every level
of 4×4-point leaf boxes (median jump across the level's box edges over the median jump between
neighbours inside a leaf; 1 means no artefact). Also draws one test sample's error per method.

Run (2-D Poisson 64², n = 16, and Darcy 32²)::

    python examples/box_edges.py
    python examples/box_edges.py --recipe datasets/darcy2d_32.yaml

``--model-args JSON`` passes model arguments to every method (e.g. ``'{"linear_far": "grids",
"linear_degree": 4}'``); write such runs to their own ``--out``, since a run replaces its
dataset's rows there.

Writes ``OUT/results.json`` (appended per dataset and method) and ``OUT/<dataset>_errors.png``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from neuralhss.datasets import PDEDataset, generate, load_recipe  # noqa: E402
from neuralhss.train.edges import box_edge_ratios  # noqa: E402
from neuralhss.train.loop import to_memory  # noqa: E402
from neuralhss.train.methods import METHODS, fit_method  # noqa: E402


@torch.no_grad()
def test_errors(model: torch.nn.Module, train: PDEDataset, test: PDEDataset) -> torch.Tensor:
    """Prediction minus truth on the test set, in data units, ``(n_test, C, *grid)``."""
    mem = to_memory(test)
    where = next(iter(model.state_dict().values())).device
    model.eval()
    pred = torch.cat([model(mem.x[i:i + 16].to(where)).cpu() for i in range(0, len(mem), 16)])
    dim = mem.y.ndim - 2
    return train.normalizer.decode_y(pred, dim) - train.normalizer.decode_y(mem.y, dim)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", default="datasets/poisson2d_64.yaml")
    ap.add_argument("--data-dir", default="data")
    ap.add_argument("--models", nargs="+", choices=METHODS, default=["neural_h2", "hss_poly", "neural_hss"])
    ap.add_argument("--n-train", type=int, default=16)
    ap.add_argument("--n-test", type=int, default=100)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--leaf-side", type=int, default=4)
    ap.add_argument("--model-args", type=json.loads, default=None,
                    help="JSON object of model arguments for every method")
    ap.add_argument("--out", default="examples/results/box_edges")
    args = ap.parse_args()
    if args.model_args is not None and not isinstance(args.model_args, dict):
        ap.error(f"--model-args {args.model_args!r}: give a JSON object, e.g. '{{\"linear_degree\": 4}}'")
    torch.set_num_threads(1)
    recipe = load_recipe(args.recipe)
    ds = Path(args.recipe).stem
    data = Path(args.data_dir) / f"{ds}.h5"
    generate(recipe.problem, data, n_samples=recipe.samples, seed=recipe.seed, params=recipe.params,
             workers=2, progress=False)
    train = PDEDataset(data, "train", n=args.n_train, n_test=args.n_test, normalize="scale")
    test = PDEDataset(data, "test", n_test=args.n_test, normalize=train.normalizer)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    res_path = out / "results.json"
    results = json.loads(res_path.read_text()) if res_path.exists() else []
    truth = to_memory(test).y
    results = [r for r in results if r["dataset"] != ds]
    results.append({"dataset": ds, "method": "truth (the solution itself)", "n_train": args.n_train,
                    "ratios": box_edge_ratios(train.normalizer.decode_y(truth, truth.ndim - 2)[:, 0],
                                              args.leaf_side)})
    errors = {}
    for method in args.models:
        model, m = fit_method(method, train, test, steps=args.steps, model_args=args.model_args)
        err = test_errors(model, train, test)
        errors[method] = err[0, 0]
        ratios = box_edge_ratios(err[:, 0], args.leaf_side)
        results.append({"dataset": ds, "method": method, "n_train": args.n_train, "ratios": ratios,
                        "test_rel_l2": m["test_rel_l2"], "n_params": m["n_params"],
                        "model_args": args.model_args})
        print(f"{ds} {method:12s} test {m['test_rel_l2']:.4g}  edge/inside jump ratio per box side: "
              + ", ".join(f"{s}: {r:.2f}" for s, r in ratios.items()), flush=True)
        res_path.write_text(json.dumps(results, indent=1) + "\n")
    fig, axes = plt.subplots(1, len(errors), figsize=(4.2 * len(errors), 3.8), squeeze=False)
    for ax, (method, e) in zip(axes[0], errors.items(), strict=True):
        lim = float(e.abs().max())
        im = ax.imshow(e.T, origin="lower", cmap="RdBu_r", vmin=-lim, vmax=lim)
        ax.set_title(f"{method}: error, test sample 0")
        fig.colorbar(im, ax=ax, shrink=0.8)
    fig.tight_layout()
    fig.savefig(out / f"{ds}_errors.png", dpi=100)
    print(f"results: {res_path}, {out / f'{ds}_errors.png'}")


if __name__ == "__main__":
    main()
