"""Each model's choice over an extended grid: the fair protocol's grid plus named variant rows.

The fair protocol (``examples/fair_low_data.py``) chooses every model's configuration on the
validation error of its seed-0 runs. When a grid is extended for every model alike with
``examples/neural_h2_variants.py`` (e.g. the symmetry images, ``grid_d4``, or twice the hidden
channels, ``grid_d4_wide``), this script makes the same choice over the fair grid's rows and the
named variants' seed-0 rows, and reports the chosen configuration's test error (mean ±
population std, as the fair tables) over every seed that ran it (rows of any variant name with
the same configuration, size and problem), with its training and validation error, parameters
and seconds per step. Nothing is trained.

Run, e.g.::

    python examples/variant_choice.py --problem maxwell_32 --n-train 16 \
        --variants grid_d4_wide chosen_d4_wide

prints one line per model; ``--n-other 64 200`` adds the chosen configuration's rows at other
sizes (which reuse the choice made at ``--n-train``, as the fair protocol does above its
validation samples).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fair_low_data as fair  # noqa: E402


def _key(config: dict) -> str:
    return json.dumps(config, sort_keys=True)


def choose(rows: list[dict], problem: str, method: str, n: int, variants: list[str]) -> dict | None:
    """The seed-0 row with the lowest validation error among ``method``'s fair-grid rows and its
    rows of the named ``variants`` at ``n`` (None if there are none)."""
    grid = {_key(c) for c in fair.grid_of(method, problem)}
    runs = [r for r in rows if (r["problem"], r["method"], r["n_train"], r["seed"]) ==
            (problem, method, n, 0) and r.get("val_rel_l2") is not None
            and (r.get("variant") in variants or ("variant" not in r and _key(r["config"]) in grid))]
    return min(runs, key=lambda r: r["val_rel_l2"]) if runs else None


def seeds_of(rows: list[dict], problem: str, method: str, n: int, config: dict) -> dict[int, dict]:
    """Every seed's row of ``config`` at ``n`` (the last row of a seed wins)."""
    return {r["seed"]: r for r in rows if (r["problem"], r["method"], r["n_train"]) ==
            (problem, method, n) and _key(r["config"]) == _key(config)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problem", required=True, choices=list(fair.PROBLEMS))
    ap.add_argument("--n-train", type=int, default=16)
    ap.add_argument("--variants", nargs="*", default=[],
                    help="variant names whose seed-0 rows join the fair grid's")
    ap.add_argument("--n-other", type=int, nargs="*", default=[])
    ap.add_argument("--models", nargs="+", default=list(fair.GRADIENT))
    ap.add_argument("--results", default="examples/results")
    args = ap.parse_args()
    res = Path(args.results)
    rows = fair.load(res / "fair_low_data" / "results.jsonl")
    rows += fair.load(res / "neural_h2_variants" / f"{args.problem}.jsonl")
    missing = sorted({*args.variants} - {r.get("variant") for r in rows
                                         if r["n_train"] == args.n_train})
    if missing:
        raise SystemExit(f"no rows of variants {missing} for {args.problem} at n = {args.n_train} "
                         f"in {res / 'neural_h2_variants'}; check the names (--variants)")
    for method in args.models:
        best = choose(rows, args.problem, method, args.n_train, args.variants)
        if best is None:
            print(f"{method:10s} no rows")
            continue
        for n in [args.n_train, *args.n_other]:
            runs = seeds_of(rows, args.problem, method, n, best["config"])
            if not runs:
                print(f"{method:10s} n={n:<4d} not run")
                continue
            test = [r["test_rel_l2"] for r in runs.values()]
            spread = f" ± {statistics.pstdev(test):.3f}" if len(test) > 1 else ""
            first = runs[min(runs)]
            print(f"{method:10s} n={n:<4d} test {statistics.mean(test):.3f}{spread} "
                  f"(seeds {sorted(runs)}: {' / '.join(f'{t:.3f}' for t in test)}) "
                  f"train {first['train_rel_l2']:.3f} val {first.get('val_rel_l2') or float('nan'):.3f} "
                  f"params {first['n_params']:,} s/step {first.get('seconds_per_step') or 0:.2f} "
                  f"[{best.get('variant', 'fair')}] {_key(best['config'])}")


if __name__ == "__main__":
    main()
