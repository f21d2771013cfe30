"""The main job: data, then operators learned from 16 samples, in a few minutes on a laptop CPU.

1. Generates small 2-D Poisson and Darcy datasets (64x64 interior nodes) with the package's
   solvers and validates both files (schema, completeness, finiteness).
2. On Poisson, fits from 16 training samples: Neural-HSS (the nonlinear default ``neural_h2``:
   its linear H² path fitted by exact least squares and kept fixed, then its hidden blocks by
   Adam, kept only where they lower the training error), FNO from
   neuraloperator (Adam, the same number of steps), and the dense least-squares baseline;
   evaluates all on 100 test samples.
3. Prints a table (test error, parameters, time) and writes PNGs: sample inputs/outputs of both
   datasets, and input, truth, predictions and errors on a test sample.

Run ``make demo`` (or ``python examples/demo.py --out data/demo``); ``--steps`` (Adam steps of
both gradient-trained models) trades time for accuracy. Re-running reuses the generated files.
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

from neuralhss.datasets import PDEDataset, check_file, generate  # noqa: E402
from neuralhss.train.methods import fit_method  # noqa: E402

LABELS = {"neural_h2": "Neural-HSS", "fno": "FNO", "least_squares": "least squares"}


def dataset_figure(files: dict[str, Path], png: Path, n_show: int = 3) -> None:
    fig, axes = plt.subplots(2, 2 * n_show, figsize=(3.0 * 2 * n_show, 6.2), constrained_layout=True)
    for row, (problem, path) in enumerate(files.items()):
        ds = PDEDataset(path, split="train", n=n_show, n_test=100)
        names = (ds.meta.input_fields[0], ds.meta.output_fields[0])
        for k in range(n_show):
            for j, field in enumerate(ds.read(k)):
                ax = axes[row, 2 * k + j]
                im = ax.imshow(field[0].T, origin="lower", extent=[0, 1, 0, 1])
                ax.set_title(f"{problem} #{k}: {names[j]}", fontsize=10)
                ax.set_xticks([])
                ax.set_yticks([])
                fig.colorbar(im, ax=ax, shrink=0.8)
    fig.suptitle("Poisson (-Δu = f) and Darcy (-∇·(a∇u) = 1) samples, 64x64 interior nodes")
    fig.savefig(png, dpi=100)
    plt.close(fig)


def prediction_figure(test: PDEDataset, models: dict, png: Path, index: int = 0) -> None:
    item = test[index]
    x, y = item["x"][None], item["y"][None]
    nrm = test.normalizer
    truth = nrm.decode_y(y, 2)[0, 0].numpy()
    x_raw = test.read(index)[0][0]
    preds = {}
    with torch.no_grad():
        for name, model in models.items():
            preds[name] = nrm.decode_y(model(x), 2)[0, 0].numpy()
    n = 2 + 2 * len(preds)
    fig, axes = plt.subplots(1, n, figsize=(3.1 * n, 3.2), constrained_layout=True)
    panels = [("input f", x_raw, None), ("truth u", truth, None)]
    for name, p in preds.items():
        panels.append((f"{LABELS.get(name, name)}", p, None))
    for name, p in preds.items():
        # each error on its own colour scale: they can differ by orders of magnitude
        err = np.linalg.norm(p - truth) / np.linalg.norm(truth)
        panels.append((f"|error| {LABELS.get(name, name)} (rel. L2 {err:.2g})", np.abs(p - truth),
                       (0, float(np.abs(p - truth).max()))))
    for ax, (title, field, lim) in zip(axes, panels, strict=True):
        im = ax.imshow(field.T, origin="lower", extent=[0, 1, 0, 1], cmap="magma" if lim else "viridis",
                       vmin=None if lim is None else lim[0], vmax=None if lim is None else lim[1])
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(im, ax=ax, shrink=0.75)
    fig.savefig(png, dpi=100)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="data/demo")
    ap.add_argument("--n-train", type=int, default=16)
    ap.add_argument("--steps", type=int, default=300,
                    help="Adam steps of Neural-HSS and FNO")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()

    files = {}
    for problem in ("poisson", "darcy"):
        path = out / f"{problem}2d_64.h5"
        res = generate(problem, path, n_samples=args.n_train + 100, seed=0, workers=2,
                       params={"dim": 2, "resolution": 64}, progress=False)
        report = check_file(path)
        if not report.ok:
            raise SystemExit(f"validation failed: {report.summary()}")
        note = "reused" if res.already_complete else f"generated in {res.seconds:.1f} s"
        print(f"{report.summary()} ({note})")
        files[problem] = path
    dataset_figure(files, out / "datasets.png")

    train = PDEDataset(files["poisson"], "train", n=args.n_train, n_test=100, normalize="scale")
    test = PDEDataset(files["poisson"], "test", n_test=100, normalize=train.normalizer)
    models, rows = {}, []
    for method in ("neural_h2", "fno", "least_squares"):
        model, m = fit_method(method, train, test, steps=args.steps, seed=0)
        models[method] = model
        rows.append({"method": LABELS[method], **m})
        print(f"  fitted {LABELS[method]:14s} in {m['train_seconds']:.1f} s", flush=True)
    prediction_figure(test, {k: models[k] for k in ("neural_h2", "fno")}, out / "predictions.png")

    print(f"\n2-D Poisson 64x64, {args.n_train} training samples, 100 test samples "
          f"(Neural-HSS and FNO: {args.steps} Adam steps)")
    print(f"{'method':16s} {'test rel. L2':>12s} {'parameters':>12s} {'time [s]':>9s}")
    for r in rows:
        params = f"{r['n_params']:,}" if r["method"] != "least squares" else "dense N×N"
        print(f"{r['method']:16s} {r['test_rel_l2']:12.4g} {params:>12s} {r['train_seconds']:9.1f}")
    (out / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(f"\noutputs in {out}/: datasets.png, predictions.png, results.json, "
          f"poisson2d_64.h5, darcy2d_64.h5 ({time.perf_counter() - t_start:.0f} s)")


if __name__ == "__main__":
    main()
