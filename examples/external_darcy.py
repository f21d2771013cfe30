"""Operators trained and tested on data nobody here generated: neuraloperator's Darcy sets.

Question: on the small Darcy-flow benchmark that ships with neuraloperator (16×16 training and
test sets, plus a 32×32 test set; ``../shared/data/neuralop-darcy``), how do Neural-HSS, FNO,
TFNO and the linear least-squares map compare as the number of training samples grows, and
do the resolution-independent models (FNO, TFNO) keep their accuracy at 32×32?

The ``.pt`` files are converted with :func:`neuralhss.datasets.convert` (the train and test
files together, so the source's split is kept: 1000 train / 50 test), then every model is
trained on the first ``n`` training samples (n = 16, 64, 256, 1000), 3 seeds, with the same
optimiser and step budget (AdamW, lr 1e-3, ``--steps`` steps (default 1000), batch 8, cosine schedule;
:mod:`neuralhss.train.methods`). Inputs/outputs are normalised by their training mean/std;
errors are relative L2 in the data's units on the 50 test samples. Neural-HSS's HSS tree is
built for one grid, so only FNO and TFNO are also evaluated at 32×32.

Writes ``OUT/results.json`` (re-running skips finished runs), ``OUT/table.md`` and
``OUT/test_error_vs_n.png``.

Run: ``python examples/external_darcy.py`` (about 30 minutes on 2 cores);
``--data-dir`` points at the folder of the ``.pt`` files.
"""

from __future__ import annotations

import argparse
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
    ap.add_argument("--data-dir", default="../shared/data/neuralop-darcy")
    ap.add_argument("--work-dir", default="data/external_darcy")
    ap.add_argument("--models", nargs="+", choices=METHODS,
                    default=["least_squares", "neural_hss", "fno", "tfno"])
    ap.add_argument("--n-train", type=int, nargs="+", default=[16, 64, 256, 1000])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--out", default="examples/results/external_darcy")
    args = ap.parse_args()
    src, work, out = Path(args.data_dir), Path(args.work_dir), Path(args.out)
    if not (src / "darcy_train_16.pt").exists():
        raise SystemExit(f"{src} lacks darcy_train_16.pt; pass --data-dir")
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
