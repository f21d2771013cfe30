"""Variants of Neural-HSS v2 (`neural_h2`) on the data, splits and budget of the fair protocol.

Each variant is a training configuration of ``examples/fair_low_data.py`` (learning rate and
``model_args``) run on one problem with given seeds; the rows (training, validation and test
error in data units, parameters, seconds per step) are printed and appended to
``examples/results/neural_h2_variants/<problem>.jsonl``. Select variants on the validation
error, never on the test error.

Run, e.g. (about 2-5 minutes per row on one core)::

    python examples/neural_h2_variants.py --problem darcy_32 --n-max 64 --seeds 0 1 2 \
        --variant plain '{"lr": 0.003}' \
        --variant multiplicative '{"lr": 0.003, "model_args": {"multiplicative": true}}'
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fair_low_data as fair  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problem", default="darcy_32", choices=list(fair.PROBLEMS))
    ap.add_argument("--n-train", type=int, default=16)
    ap.add_argument("--n-max", type=int, default=None,
                    help="largest n of the fair sweep on this problem (the validation samples "
                         "follow it); default --n-train")
    ap.add_argument("--n-val", type=int, default=32,
                    help="validation samples (after the first --n-max); use the fair sweep's value "
                         "(100 on neuralop_darcy_16) so that the rows compare with its grid's")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--variant", nargs=2, action="append", metavar=("NAME", "CONFIG_JSON"),
                    required=True)
    ap.add_argument("--method", default="neural_h2",
                    help="neural_h2, or another method of fair_low_data.py (closed-form fits "
                         "such as h2_linear take model_args only)")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--data-dir", default="data")
    ap.add_argument("--out", default="examples/results/neural_h2_variants")
    args = ap.parse_args()
    n_max = args.n_max or args.n_train
    fair.check_sizes(args.problem, [args.n_train], n_max, args.n_val, None)
    torch.set_num_threads(1)
    fair.make_data(Path(args.data_dir), [args.problem], workers=1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, config in args.variant:
        for seed in args.seeds:
            job = {"steps": args.steps, "n_val": args.n_val, "n_test": fair.n_test_of(args.problem, None),
                   "n_max": n_max, "device": "cpu",
                   "problem": args.problem, "method": args.method, "seed": seed,
                   "n_train": args.n_train, "config": json.loads(config),
                   "data": str(fair.data_path(Path(args.data_dir), args.problem))}
            r = fair.run_one(job)
            row = {"variant": name, "problem": args.problem, "method": args.method,
                   "n_train": args.n_train, "n_max": job["n_max"], "n_val": args.n_val, "seed": seed,
                   **{k: r.get(k) for k in ("config", "steps", "train_rel_l2", "val_rel_l2",
                                            "test_rel_l2", "n_params", "seconds_per_step",
                                            "train_seconds")},
                   # what the convex start decided, where the model has one, and whether the
                   # trained model fell back to it
                   **{k: r[k] for k in ("linear_start", "linear_test_rel_l2", "fallback")
                      if k in r},
                   # the model before its group average, where the config asks for one
                   **{k: r[k] for k in ("train_rel_l2_plain", "val_rel_l2_plain",
                                        "test_rel_l2_plain") if k in r}}
            print(json.dumps(row), flush=True)
            with open(out / f"{args.problem}.jsonl", "a") as fh:
                fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
