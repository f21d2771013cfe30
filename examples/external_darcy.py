"""Operators trained and tested on data nobody here generated: neuraloperator's Darcy sets.

Question: on the small Darcy-flow benchmark of the neuraloperator project (16×16 training and
test sets, plus a 32×32 test set), how do Neural-HSS, FNO, TFNO and the linear least-squares
maps compare as the number of training samples grows, and do the resolution-independent
models (FNO, TFNO) keep their accuracy at 32×32?

Data: three files, ``darcy_train_16.pt`` (1000 samples), ``darcy_test_16.pt`` (50) and
``darcy_test_32.pt`` (50), each a dict of tensors ``x`` (the coefficient mask) and ``y`` (the
solution). The neuraloperator GitHub repository keeps them in ``neuralop/data/datasets/data/``;
the pip package does not ship them, but neuraloperator's ``load_darcy_flow_small()`` looks for
them (and downloads its Darcy files from Zenodo) in the same folder of the installed package.
``--data-dir`` defaults to that folder, found at run time from the installed ``neuralop``
package; point it at any folder that holds the three files. The results in
``docs/bring_your_own_data.md`` were made with the repository's files (1000 / 50 / 50 samples).

The ``.pt`` files are converted with :func:`neuralhss.datasets.convert` (the train and test
files together, so the source's split is kept: 1000 train / 50 test), then every model is
trained on the first ``n`` training samples (n = 16, 64, 256, 1000), 3 seeds, with the same
optimiser and step budget (AdamW, lr 1e-3, ``--steps`` steps (default 1000), batch 8, cosine schedule;
:mod:`neuralhss.train.methods`). Inputs/outputs are normalised by their training mean/std;
errors are relative L2 in the data's units on the 50 test samples. Neural-HSS's HSS tree is
built for one grid, so only FNO and TFNO are also evaluated at 32×32.

Writes ``OUT/results.json`` (re-running skips finished runs), ``OUT/table.md`` and
``OUT/test_error_vs_n.png``.

Run: ``python examples/external_darcy.py [--data-dir FOLDER]`` (about 30 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from neuralhss.datasets import PDEDataset, convert  # noqa: E402
from neuralhss.train.loop import evaluate, to_memory  # noqa: E402
from neuralhss.train.methods import CLOSED_FORM, METHODS, fit_method  # noqa: E402

RESOLUTION_FREE = ("fno", "tfno")
FILES = ("darcy_train_16.pt", "darcy_test_16.pt", "darcy_test_32.pt")
WHERE = ("neuraloperator's small Darcy set: neuralop/data/datasets/data/ in the neuraloperator "
         "GitHub repository")


def default_data_dir() -> Path | None:
    """``neuralop/data/datasets/data`` of the installed neuraloperator (``None`` if it is not
    installed): where its ``load_darcy_flow_small()`` keeps the small Darcy set."""
    spec = importlib.util.find_spec("neuralop")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "data" / "datasets" / "data"


def check_data_dir(src: Path | None) -> None:
    """Exit with one line naming the first missing file and where to get it."""
    if src is None:
        raise SystemExit(f"neuraloperator is not installed, so there is no default --data-dir; "
                         f"pass --data-dir FOLDER holding {', '.join(FILES)} ({WHERE})")
    for name in FILES:
        if not (src / name).is_file():
            raise SystemExit(f"{src / name} not found; get {', '.join(FILES)} ({WHERE}) and "
                             "pass --data-dir FOLDER")


def convert_once(src: Path, out: Path, names: list[str]) -> Path:
    if not out.exists():
        convert([src / n for n in names], out, "neuralop", inputs=["a"], outputs=["u"])
    return out


def table(results: list[dict]) -> str:
    ns = sorted({r["n_train"] for r in results})
    lines = ["| method | parameters | " + " | ".join(f"n={n}" for n in ns)
             + " | 32×32 test, n=" + str(ns[-1]) + " |", "|---" * (3 + len(ns)) + "|"]
    for method in sorted({r["method"] for r in results}):
        rows = [r for r in results if r["method"] == method]
        cells = []
        for n in ns:
            e = [r["test_rel_l2"] for r in rows if r["n_train"] == n]
            cells.append(f"{np.mean(e):.4f}" + (f" ± {np.std(e):.4f}" if len(e) > 1 else "") if e else "")
        e32 = [r["test32_rel_l2"] for r in rows if r["n_train"] == ns[-1] and "test32_rel_l2" in r]
        params = "dense 256×256" if method.endswith("least_squares") else f"{rows[0]['n_params']:,}"
        lines.append(f"| {method} | {params} | " + " | ".join(cells) + " | "
                     + (f"{np.mean(e32):.4f} ± {np.std(e32):.4f}" if e32 else "—") + " |")
    return "\n".join(lines)


def plot(results: list[dict], png: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for method in sorted({r["method"] for r in results}):
        rows = [r for r in results if r["method"] == method]
        ns = sorted({r["n_train"] for r in rows})
        errs = [[r["test_rel_l2"] for r in rows if r["n_train"] == n] for n in ns]
        ax.plot(ns, [np.mean(e) for e in errs], "o-", label=method)
        ax.fill_between(ns, [min(e) for e in errs], [max(e) for e in errs], alpha=0.2)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("training samples n")
    ax.set_ylabel("relative L2 test error (50 samples, 16×16)")
    ax.set_title("neuraloperator's Darcy 16×16 data")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_dir = default_data_dir()
    ap.add_argument("--data-dir", type=Path, default=default_dir,
                    help=f"folder holding {', '.join(FILES)} ({WHERE}; the pip package does not "
                         "ship them); default: neuralop/data/datasets/data of the installed "
                         f"neuraloperator, here {default_dir}")
    ap.add_argument("--work-dir", default="data/external_darcy")
    ap.add_argument("--models", nargs="+", choices=METHODS,
                    default=["least_squares", "affine_least_squares", "neural_hss", "fno", "tfno"])
    ap.add_argument("--n-train", type=int, nargs="+", default=[16, 64, 256, 1000])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--out", default="examples/results/external_darcy")
    args = ap.parse_args()
    check_data_dir(args.data_dir)
    src, work, out = args.data_dir, Path(args.work_dir), Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    d16 = convert_once(src, work / "darcy_16.h5", ["darcy_train_16.pt", "darcy_test_16.pt"])
    d32 = convert_once(src, work / "darcy_test_32.h5", ["darcy_test_32.pt"])
    res_path = out / "results.json"
    results = json.loads(res_path.read_text()) if res_path.exists() else []
    done = {(r["method"], r["n_train"], r["seed"]) for r in results}
    for n in args.n_train:
        train = PDEDataset(d16, "train", n=n, normalize="gaussian")
        test = PDEDataset(d16, "test", normalize=train.normalizer)
        test32 = PDEDataset(d32, "test", normalize=train.normalizer)
        for seed in args.seeds:
            for method in args.models:
                if (method, n, seed) in done or (method in CLOSED_FORM and seed != args.seeds[0]):
                    continue
                model, m = fit_method(method, train, test, steps=args.steps, seed=seed)
                if method in RESOLUTION_FREE:
                    m["test32_rel_l2"] = evaluate(model, to_memory(test32), train.normalizer)["test_rel_l2"]
                row = {"method": method, "n_train": n, "seed": seed, **m}
                results.append(row)
                res_path.write_text(json.dumps(results, indent=1) + "\n")
                extra = f" 32x32 {m['test32_rel_l2']:.4f}" if "test32_rel_l2" in m else ""
                print(f"{method:14s} n={n:5d} seed={seed} test {m['test_rel_l2']:.4f}{extra} "
                      f"params {m['n_params']:,} {m['train_seconds']:.1f} s", flush=True)
    plot(results, out / "test_error_vs_n.png")
    (out / "table.md").write_text(table(results) + "\n")
    print(table(results))
    print(f"results: {res_path}, {out / 'table.md'}, {out / 'test_error_vs_n.png'}")


if __name__ == "__main__":
    main()
