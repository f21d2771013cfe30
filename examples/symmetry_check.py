"""Which symmetries of the square does a dataset's solution operator have? A check from data.

For data generated here the solver itself shows whether ``solve(g·f) = g·solve(f)`` for a
symmetry ``g`` of the square. For external data there is no solver, so this script asks the
data: it trains one model (FNO, neuraloperator's, by default) on many training pairs and
compares its test error on the test set with its error on each image ``(g·x, g·y)`` of the test
set. If ``g`` commutes with the operator (and leaves the input distribution unchanged) the
images are just more test pairs of the same operator, and the error stays about the same (a
model that is not itself equivariant still loses a little); if not, the images are pairs of
another operator and the error jumps. The training images are not used.

Run (about a minute on one core)::

    python examples/symmetry_check.py --problem neuralop_darcy_16 --n-train 1000 --n-max 256

The errors are printed and saved to ``examples/results/symmetry_check/<problem>.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fair_low_data as fair  # noqa: E402

# The eight symmetries of the square on the last two (grid) axes.
SYMMETRIES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "identity": lambda t: t,
    "rotate_90": lambda t: torch.rot90(t, 1, dims=(-2, -1)),
    "rotate_180": lambda t: torch.rot90(t, 2, dims=(-2, -1)),
    "rotate_270": lambda t: torch.rot90(t, 3, dims=(-2, -1)),
    "mirror_axis0": lambda t: t.flip(-2),
    "mirror_axis1": lambda t: t.flip(-1),
    "transpose": lambda t: t.transpose(-1, -2),
    "antitranspose": lambda t: torch.rot90(t, 2, dims=(-2, -1)).transpose(-1, -2),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problem", default="neuralop_darcy_16", choices=list(fair.PROBLEMS))
    ap.add_argument("--n-train", type=int, default=1000)
    ap.add_argument("--n-max", type=int, default=256,
                    help="largest n of the fair sweep on this problem (as in fair_low_data.py)")
    ap.add_argument("--method", default="fno")
    ap.add_argument("--config", default='{"lr": 0.003, "weight_decay": 0.001}',
                    help="training configuration (JSON), as in fair_low_data.py's grids")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-dir", default="data")
    ap.add_argument("--out", default="examples/results/symmetry_check")
    args = ap.parse_args()
    torch.set_num_threads(1)
    from neuralhss.train.loop import InMemory, evaluate, to_memory
    from neuralhss.train.methods import fit_method

    data = fair.data_path(Path(args.data_dir), args.problem)
    if not data.exists():
        sys.exit(f"{data} does not exist; make it first with examples/fair_low_data.py "
                 f"--problems {args.problem}")
    train, _, test = fair._datasets(data, args.problem, args.n_train, 0,
                                    fair.n_test_of(args.problem, None), args.n_max)
    model, _ = fit_method(args.method, train, test, steps=args.steps, seed=args.seed,
                          device="cpu", **json.loads(args.config))
    mem = to_memory(test)
    if mem.x.shape[-1] != mem.x.shape[-2] or mem.x.ndim != 4:
        sys.exit(f"{args.problem}: the check needs 2-D fields on a square grid")
    errors = {}
    for name, g in SYMMETRIES.items():
        errors[name] = evaluate(model, InMemory(g(mem.x), g(mem.y)), train.normalizer,
                                device="cpu")["test_rel_l2"]
        print(f"{name:14s} test error {errors[name]:.4f} "
              f"({errors[name] / errors['identity']:.2f}x the test set's)", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    res = {"problem": args.problem, "method": args.method, "config": json.loads(args.config),
           "n_train": args.n_train, "steps": args.steps, "seed": args.seed,
           "test_rel_l2": errors,
           "ratio_to_test_set": {k: v / errors["identity"] for k, v in errors.items()}}
    (out / f"{args.problem}.json").write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
