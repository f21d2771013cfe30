"""Where in wavenumber (and near the boundary or not) a trained model's error sits.

Trains one configuration of a method of ``examples/fair_low_data.py`` on the fair protocol's
data (same splits, seed and budget as ``examples/neural_h2_variants.py``) and scores it on the
*validation* split: the relative error per radial wavenumber band
(:func:`neuralhss.train.metrics.band_errors`, wavenumbers in cycles per domain), each band's
share of the squared error, and the share of the squared error within ``--border`` points of
the boundary. Rows are printed and appended to ``examples/results/error_bands/<problem>.jsonl``.

Run, e.g. (about 5 minutes per row on one core)::

    python examples/error_bands.py --problem helmholtz_32 --n-train 16 --method tfno \
        --config '{"lr": 0.003, "weight_decay": 0.001, "augment": "d4", "offset": "mean_feature"}'
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
    ap.add_argument("--problem", default="helmholtz_32", choices=list(fair.PROBLEMS))
    ap.add_argument("--n-train", type=int, default=16)
    ap.add_argument("--n-max", type=int, default=None, help="as in neural_h2_variants.py")
    ap.add_argument("--n-val", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--method", default="neural_h2")
    ap.add_argument("--config", default="{}", help="the configuration, JSON (fair_low_data.py's)")
    ap.add_argument("--bands", type=float, nargs="+", default=[0, 2, 4, 8, 12, 1e9],
                    help="radial wavenumber edges, cycles per domain")
    ap.add_argument("--border", type=int, default=6, help="width of the boundary ring, points")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--data-dir", default="data")
    ap.add_argument("--out", default="examples/results/error_bands")
    args = ap.parse_args()
    from neuralhss.train.loop import to_memory
    from neuralhss.train.methods import fit_method
    from neuralhss.train.metrics import band_errors

    n_max = args.n_max or args.n_train
    if args.n_train > n_max:
        raise SystemExit("--n-train above --n-max: the validation samples would be training samples")
    fair.check_sizes(args.problem, [args.n_train], n_max, args.n_val, None)
    torch.set_num_threads(1)
    fair.make_data(Path(args.data_dir), [args.problem], workers=1)
    data = fair.data_path(Path(args.data_dir), args.problem)
    train, val, test = fair._datasets(data, args.problem, args.n_train, args.n_val,
                                      fair.n_test_of(args.problem, None), n_max)
    config = json.loads(args.config)
    model, m = fit_method(args.method, train, test, steps=args.steps, seed=args.seed, device="cpu",
                          **config)
    model.eval()
    mem = to_memory(val)
    with torch.no_grad():
        pred = model(mem.x)
    ndim = mem.y.ndim - 2
    pred, y = train.normalizer.decode_y(pred, ndim), train.normalizer.decode_y(mem.y, ndim)
    err = (pred - y).double().square().sum(1)  # (n, *grid)
    ring = torch.ones(err.shape[1:], dtype=torch.bool)
    ring[(slice(args.border, -args.border),) * ndim] = False
    row = {"problem": args.problem, "method": args.method, "n_train": args.n_train, "seed": args.seed,
           "config": config, "steps": args.steps, "train_rel_l2": m.get("train_rel_l2"),
           "val_rel_l2": float(((pred - y).flatten(1).norm(dim=1) / y.flatten(1).norm(dim=1)).mean()),
           "bands": band_errors(pred, y, args.bands, ndim),
           "border": args.border, "border_share": float(err[:, ring].sum() / err.sum()),
           "border_share_of_target": float(y.double().square().sum(1)[:, ring].sum()
                                           / y.double().square().sum())}
    print(f"{args.method}: validation {row['val_rel_l2']:.4f}, training {row['train_rel_l2']:.4f}; "
          f"{100 * row['border_share']:.0f} % of the squared error within {args.border} points of "
          f"the boundary (the target holds {100 * row['border_share_of_target']:.0f} %)")
    for b in row["bands"]:
        print(f"  |k| in [{b['low']:g}, {b['high']:g}): relative error {b['rel_l2']:.3f}, "
              f"{100 * b['share']:.1f} % of the squared error")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / f"{args.problem}.jsonl", "a") as fh:
        fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
