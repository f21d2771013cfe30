"""The main job until the Neural-HSS model lands: make, validate and look at two datasets.

Generates a small 2-D Poisson and a 2-D Darcy dataset with the package's solvers, validates
both files (schema, completeness, finiteness), reads them back through ``PDEDataset`` and
``open_xarray``, and writes a PNG of a few input/output pairs.

Run ``make demo`` or ``python examples/demo_datasets.py --out data/demo``. Re-running finds the
finished files and only redraws the figure.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from neuralhss.datasets import PDEDataset, check_file, generate, open_xarray  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="data/demo", help="output folder")
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    files = {}
    for problem in ("poisson", "darcy"):
        path = out / f"{problem}2d_{args.resolution}.h5"
        t0 = time.perf_counter()
        res = generate(problem, path, n_samples=args.samples, seed=0, workers=args.workers,
                       params={"dim": 2, "resolution": args.resolution})
        note = "already there" if res.already_complete else \
            f"{res.n_computed} samples in {time.perf_counter() - t0:.1f} s"
        report = check_file(path)
        if not report.ok:
            raise SystemExit(f"validation failed: {report.summary()}")
        print(f"{problem:8s} {note:28s} {report.summary()}")
        files[problem] = path

    n_show = 3
    fig, axes = plt.subplots(2, 2 * n_show, figsize=(3.0 * 2 * n_show, 6.2),
                             constrained_layout=True)
    for row, (problem, path) in enumerate(files.items()):
        ds = PDEDataset(path, split="train", n=n_show)
        xr_ds = open_xarray(path)
        x_name, y_name = ds.meta.input_fields[0], ds.meta.output_fields[0]
        extent = [0, 1, 0, 1]
        for k in range(n_show):
            x, y = ds.read(k)
            # Cross-check the two readers against each other.
            np.testing.assert_array_equal(y[0], xr_ds[y_name].isel(sample=int(ds.indices[k])).values)
            for j, (field, name) in enumerate(((x[0], x_name), (y[0], y_name))):
                ax = axes[row, 2 * k + j]
                im = ax.imshow(field.T, origin="lower", extent=extent, cmap="viridis")
                ax.set_title(f"{problem} #{k}: {name}", fontsize=10)
                ax.set_xticks([])
                ax.set_yticks([])
                fig.colorbar(im, ax=ax, shrink=0.8)
    fig.suptitle(f"neuralhss datasets, {args.resolution}x{args.resolution} interior nodes: "
                 "Poisson (-Δu = f) and Darcy (-∇·(a∇u) = 1)")
    png = out / "datasets.png"
    fig.savefig(png, dpi=110)
    print(f"figure: {png}")
    print(f"datasets: {', '.join(str(p) for p in files.values())}")


if __name__ == "__main__":
    main()
