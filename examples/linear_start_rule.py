"""When should ``neural_h2`` start from the convex fit of its linear path?

Question: the automatic rule (``linear_fit="auto"``, :func:`neuralhss.train.methods.start_neural_h2`)
fits the linear path on half of the training samples and scores it on the other half. Which
score separates the problems where the start helps (near-linear maps: Poisson) from those where
it hurts (coefficient -> solution: Darcy; a later vorticity: Navier-Stokes)?

For each problem of ``fair_low_data.py`` with one input and one output channel and each
training-set size n, this prints and records the held-out relative L2 error of

* the linear path ``y = A x`` of the default ``neural_h2`` and the affine path
  ``y = y0 + A (x - x0)`` (both fitted on the first half of the n samples, as the rule does:
  by L-BFGS, and for a path of at most ``EXACT_FIT_MAX_VALUES`` values also exactly, the lower
  kept),
* the first half's mean output used as the prediction for every sample of the second half,

and the ratio of the better fit's error to the mean's, which the rule compares with
``LINEAR_START_MAX_RATIO``. Data are the fair protocol's files (generated if missing; scaled by
the training RMS, no shift, as in that protocol).

Run: ``python examples/linear_start_rule.py`` (a minute on one core; add
``--problems neuralop_darcy_16 --external-dir FOLDER`` for neuraloperator's Darcy set). Writes
``examples/results/linear_start_rule/{results.jsonl,table.md}``; those rows were measured
with the box far field, the 2-D default until 2026-12-07, and the stationary default's with
``--out examples/results/linear_start_rule_stationary``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from fair_low_data import PROBLEMS, _datasets, data_path, make_data, n_test_of

SIZES = {"neuralop_darcy_16": (4, 8, 16, 32, 64, 256, 1000)}


def probe(problem: str, n: int, data_dir: Path) -> dict:
    from neuralhss.models import build
    from neuralhss.train.loop import to_memory
    from neuralhss.train.methods import (
        GRADIENT_METHODS,
        _choose_linear_start,
        data_model_args,
        default_linear_solver,
    )

    n_test = n_test_of(problem, None)
    with_val = 16  # _datasets wants a validation pool; the probe does not use it
    total = 1000 if problem == "neuralop_darcy_16" else PROBLEMS[problem][2] - n_test
    train, _, _ = _datasets(data_path(data_dir, problem), problem, n, with_val, n_test,
                            min(n, total - with_val))
    name, cfg = GRADIENT_METHODS["neural_h2"](tuple(train.grid_shape))
    cfg.update(in_channels=1, out_channels=1, **data_model_args(name, train))
    model = build(name, **cfg)
    start = _choose_linear_start(model, to_memory(train), torch.device("cpu"), 300, "always",
                                 solver=default_linear_solver(model.linear))
    return {"problem": problem, "n": n, "linear": start["validation_rel_l2_linear"],
            "affine": start["validation_rel_l2_affine"], "mean": start["validation_rel_l2_mean"],
            "ratio": start["validation_rel_l2_linear"] / start["validation_rel_l2_mean"],
            "ratio_affine": (None if start["validation_rel_l2_affine"] is None
                             else start["validation_rel_l2_affine"] / start["validation_rel_l2_mean"])}


def table(rows: list[dict]) -> str:
    from neuralhss.train.methods import LINEAR_START_MAX_RATIO

    def f(v):
        return "-" if v is None else f"{v:.3g}"

    lines = [f"Held-out relative L2 errors (first half of n fitted, second half scored); ratio = "
             f"fit / training mean; `linear_fit=\"auto\"` keeps the linear start where its ratio is "
             f"below {LINEAR_START_MAX_RATIO}, `\"affine\"` the affine start where its ratio is.", "",
             "| problem | n | linear | affine | training mean | ratio linear | ratio affine | auto keeps |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['problem']} | {r['n']} | {f(r['linear'])} | {f(r['affine'])} | "
                     f"{f(r['mean'])} | {r['ratio']:.3g} | "
                     f"{'-' if r['ratio_affine'] is None else format(r['ratio_affine'], '.3g')} | "
                     f"{'yes' if r['ratio'] < LINEAR_START_MAX_RATIO else 'no'} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    single = [k for k, v in PROBLEMS.items() if v[4] and not k.startswith(("poisson_64", "darcy_64",
                                                                          "poisson3d"))]
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--problems", nargs="+",
                   default=[k for k in single if k != "neuralop_darcy_16"], choices=single)
    p.add_argument("--n-train", nargs="+", type=int, default=[4, 8, 16, 32, 64])
    p.add_argument("--data-dir", type=Path, default=Path("data"))
    p.add_argument("--external-dir", type=Path)
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "linear_start_rule")
    args = p.parse_args()
    torch.set_num_threads(1)
    make_data(args.data_dir, args.problems, workers=1, external_dir=args.external_dir)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "results.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    done = {(r["problem"], r["n"]) for r in rows}
    for problem in args.problems:
        for n in SIZES.get(problem, args.n_train):
            if (problem, n) in done:
                continue
            r = probe(problem, n, args.data_dir)
            print(f"{problem:20s} n={n:5d} linear {r['linear']:.3f} affine "
                  f"{r['affine'] if r['affine'] is None else round(r['affine'], 3)} "
                  f"mean {r['mean']:.3f} ratio (linear) {r['ratio']:.2f}", flush=True)
            rows.append(r)
            with path.open("a") as fh:
                fh.write(json.dumps(r) + "\n")
    rows.sort(key=lambda r: (r["problem"], r["n"]))
    (args.out / "table.md").write_text(table(rows))
    print(table(rows))


if __name__ == "__main__":
    main()
