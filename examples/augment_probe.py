"""Does training on the square's symmetry images help one model more than another?

Darcy and Poisson on the unit square with one boundary condition on all sides and a symmetric
source commute with the eight symmetries of the square (rotations by 90°, reflections), so
every training pair gives seven more for free (``fit_method(augment="d4")``). This probe trains
each model once with and once without those images, on the data, splits and budget of
``examples/fair_low_data.py`` (same problem file, validation split, steps, seed 0), and prints
and saves training, validation and test error.

Run: ``python examples/augment_probe.py --problem darcy_32 --n-train 16`` (4 runs of 2000
steps; about 20 minutes on one core).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fair_low_data as fair  # noqa: E402

CONFIGS = {"neural_h2": {"lr": 1e-3}, "tfno": {"lr": 1e-3, "weight_decay": 1e-4},
           "fno": {"lr": 1e-3, "weight_decay": 1e-4}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problem", default="darcy_32", choices=["darcy_32", "poisson_32"])
    ap.add_argument("--n-train", type=int, default=16)
    ap.add_argument("--n-max", type=int, default=64,
                    help="largest n of the fair sweep: the validation samples follow it")
    ap.add_argument("--models", nargs="+", default=["neural_h2", "tfno"], choices=list(CONFIGS))
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--data-dir", default="data")
    ap.add_argument("--out", default="examples/results/augment_probe")
    args = ap.parse_args()
    fair.make_data(Path(args.data_dir), [args.problem], workers=1)
    rows = []
    for method in args.models:
        for augment in (None, "d4"):
            config = {**CONFIGS[method], **({"augment": augment} if augment else {})}
            job = {"steps": args.steps, "n_val": 32, "n_test": 100, "n_max": args.n_max,
                   "device": "cpu", "problem": args.problem, "method": method, "seed": 0,
                   "n_train": args.n_train, "config": config,
                   "data": str(fair.data_path(Path(args.data_dir), args.problem))}
            r = fair.run_one(job)
            row = {k: r[k] for k in ("method", "config", "n_train", "train_rel_l2", "val_rel_l2",
                                     "test_rel_l2", "n_params", "seconds_per_step")}
            print(json.dumps(row), flush=True)
            rows.append(row)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.problem}_n{args.n_train}.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
