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

``python examples/variant_choice.py --summary`` prints one markdown table over every problem,
each under its current grid (``CURRENT``: the fair grid plus the extensions run for every
model), at every size with rows: a model's configuration is chosen at a size when its whole
extended grid ran there, and otherwise the choice made at ``--n-train`` is reused (marked †);
the best model per row is in bold, with the ratio of ``neural_h2``'s error to FNO's;
``--plot PNG`` draws it as test error against n, one panel per problem.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fair_low_data as fair  # noqa: E402


def _key(config: dict) -> str:
    return json.dumps(config, sort_keys=True)


def grid_rows(rows: list[dict], problem: str, method: str, n: int,
              variants: list[str]) -> list[dict]:
    """``method``'s seed-0 rows at ``n`` with a validation error: its fair-grid rows and its rows
    of the named ``variants``, one per configuration (the last: a re-run, e.g. after a change
    of the training code, supersedes the earlier row, as in :func:`seeds_of`)."""
    grid = {_key(c) for c in fair.grid_of(method, problem)}
    last = {_key(r["config"]): r for r in rows
            if (r["problem"], r["method"], r["n_train"], r["seed"]) == (problem, method, n, 0)
            and r.get("val_rel_l2") is not None
            and (r.get("variant") in variants or ("variant" not in r and _key(r["config"]) in grid))}
    return list(last.values())


def choose(rows: list[dict], problem: str, method: str, n: int, variants: list[str]) -> dict | None:
    """The row of :func:`grid_rows` with the lowest validation error (None if there are none)."""
    runs = grid_rows(rows, problem, method, n, variants)
    return min(runs, key=lambda r: r["val_rel_l2"]) if runs else None


def seeds_of(rows: list[dict], problem: str, method: str, n: int, config: dict) -> dict[int, dict]:
    """Every seed's row of ``config`` at ``n`` (the last row of a seed wins)."""
    return {r["seed"]: r for r in rows if (r["problem"], r["method"], r["n_train"]) ==
            (problem, method, n) and _key(r["config"]) == _key(config)}


# The rows behind each problem's current table: the fair grid's plus these variants' (the
# extended grids, every model's extended alike, and the chosen configurations' other seeds and
# sizes; docs/neural_h2.md gives each extension and its command). Probes that extended one
# model's grid alone (e.g. Helmholtz's wider neural_h2) are left out.
RERUN = ["fair_rerun", "chosen_rerun", "long6000_rerun"]
CURRENT: dict[str, list[str]] = {
    # Poisson 32²: the fair grid plus, at every size, each model's choice there once more with
    # the images (neural_h2's with a linear path that commutes with the symmetries as well), and
    # h2_linear with that symmetric path as a second configuration, and neural_h2's and
    # h2_linear's choice once more with the linear path as one kernel over the whole grid (the
    # FNO family's analogue, a padded domain, was probed at n = 16 alone: left out, like the
    # other one-size probes), and once more with the linear path's far field on nested grids,
    # and on the stationary (undecimated) nested grids; that last once more with the convex
    # fit's exact solve offered beside L-BFGS (linear_solver "auto"), for neural_h2 also with
    # its linear path in double precision; that last configuration re-run at every size once
    # neural_h2 fell back to its frozen start where its blocks did not help (fallback_rerun,
    # superseding its rows; on Poisson 64² as well)
    "poisson_32": ["probe_d4", "chosen_d4", "closed_sym", "closed_full", "probe_full_d4",
                   "chosen_full_d4", "closed_grids", "probe_grids_d4", "closed_stat",
                   "probe_stat_d4", "closed_stat_exact", "probe_stat_exact_d4",
                   "probe_stat_exact64_d4", "fallback_rerun"],
    "darcy_32": ["d4", "grid_d4", "chosen_d4", "grid_d4_wide", "chosen_d4_wide",
                 "probe_w32_d4", "long6000_d4", "long6000_d4_wide",
                 "probe_long6000_d4", "probe_long6000_d4_wide"],
    # Poisson 64²: the fair grid, each model's n = 16 choice once more with the images (as on
    # Poisson 32²; reused at n = 4 and 64), and the closed-form fits (h2_linear also symmetric);
    # neural_h2's and h2_linear's full-width and nested-grid linear paths as on Poisson 32²;
    # both on the stationary grids with the exact solve offered (neural_h2 with its linear
    # path in double precision; its n = 16 choice reused at n = 4 and 64)
    "poisson_64": ["grid", "chosen", "probe_d4", "chosen_d4", "closed", "closed_sym",
                   "closed_full", "probe_full_d4", "chosen_full_d4", "closed_grids",
                   "probe_grids_d4", "chosen_grids_d4", "closed_stat_exact",
                   "probe_stat_exact64_d4", "chosen_stat_exact64_d4", "fallback_rerun"],
    # Darcy 64²: the fair grid with the images on every configuration (no plain half, to halve the
    # cost; every model chose the images on Darcy 32²), the closed-form fits, and at n = 64 each
    # model's choice there once more with 6,000 steps
    "darcy_64": ["grid_d4", "chosen_d4", "closed", "probe_long6000_d4"],
    # Helmholtz, Maxwell and Gray–Scott (several input or output channels): neural_h2's rows of
    # every configuration in its grid were re-run once linear_fit="auto" dropped the linear path
    # there (a re-run row supersedes the earlier one of its configuration, grid_rows): the fair
    # grid's as fair_rerun, the extensions' under their own names, the choice's other seeds
    # and sizes as chosen_rerun and long6000_rerun
    "helmholtz_32": ["d4", "grid_d4", "chosen_d4", "probe_offset_d4", "chosen_offset_d4",
                     "long6000_d4", "long6000_offset_d4", "probe_feature_d4", "chosen_feature_d4",
                     "long6000_feature_d4", *RERUN],
    "maxwell_32": ["grid_d4_wide", "chosen_d4_wide", "long6000_d4", "long6000_d4_wide", *RERUN],
    "navier_stokes_32": ["chosen"],
    # Gray–Scott 32²: the fair grid, and each model's grid once more with the square's
    # symmetries and periodic translations (every configuration of the FNO family's grids;
    # neural_h2's with its box far field at degree 2 and, as its second knob value instead of
    # degree 0, the stationary far fields without coordinates), four points per model (two for
    # UNO) as in the fair grid; d4shifts_lr3e-3 and probe_stat2_d4shifts are earlier probes'
    # rows of configurations of that grid (same data, seeds and budget); chosen_d4shifts: the
    # n = 16 choices' other seeds and sizes
    "gray_scott_32": ["chosen", "grid_d4shifts", "d4shifts_lr3e-3", "probe_stat2_d4shifts",
                      "chosen_d4shifts", *RERUN],
    "neuralop_darcy_16": ["grid_transpose_wide", "chosen_transpose_wide",
                          "chosen_n256_transpose_wide"],
}
SUMMARY_MODELS = ("neural_h2", "fno", "tfno", "uno", "h2_linear", "affine_least_squares")


def standing(rows: list[dict], problem: str, method: str, n_train: int, n: int,
             variants: list[str], reuse: int) -> tuple[dict | None, dict[int, dict], bool]:
    """The configuration ``method`` is judged by at ``n``, its rows by seed, and whether it was
    chosen at ``n`` itself: there when at least as many configurations have a seed-0 validation
    row at ``n`` as at ``n_train`` (the fair protocol's per-size choice over a grid of the same
    size; an extension such as "each size's choice plus the images" adds a configuration that
    differs between sizes), else the choice made at size ``reuse`` is taken (as the fair
    protocol does above ``n_max``)."""
    at_n, at_train = ({_key(r["config"]) for r in grid_rows(rows, problem, method, size, variants)}
                      for size in (n, n_train))
    own = len(at_n) >= len(at_train)
    best = choose(rows, problem, method, n if own else reuse, variants)
    if best is None:
        return None, {}, False
    return best, seeds_of(rows, problem, method, n, best["config"]), own


def _places(x: float, places: int) -> int:
    """Decimal places that show ``x`` with ``places`` of them, or with two significant digits
    where that needs more (errors far below 1 %)."""
    if x <= 0 or x >= 10.0**(1 - places):
        return places
    return 1 - math.floor(math.log10(x))


def _mean(runs: dict[int, dict]) -> tuple[float, float]:
    test = [r["test_rel_l2"] for r in runs.values()]
    return statistics.mean(test), statistics.pstdev(test) if len(test) > 1 else float("nan")


def records(rows: list[dict], problems: list[str], n_train: int) -> list[dict]:
    """One record per problem, size and model with rows under its ``CURRENT`` grid: the mean and
    population std of the test error over seeds, whether the configuration was chosen at that
    size (:func:`standing`) and its parameter count."""
    out = []
    for problem in problems:
        sizes = sorted({r["n_train"] for r in rows if r["problem"] == problem} | {n_train})
        reuse = dict.fromkeys(SUMMARY_MODELS, n_train)
        for n in sizes:
            for method in SUMMARY_MODELS:
                _, runs, own = standing(rows, problem, method, n_train, n, CURRENT[problem],
                                        reuse[method])
                if own and n >= n_train:
                    reuse[method] = n
                if runs and (mean_std := _mean(runs))[0] == mean_std[0]:  # NaN: no fit there
                    out.append({"problem": problem, "n": n, "method": method, "mean": mean_std[0],
                                "std": mean_std[1], "own": own,
                                "n_params": runs[min(runs)]["n_params"],
                                "steps": max(r.get("steps") or 0 for r in runs.values())})
    return out


def markdown(recs: list[dict], n_train: int, steps: int = 2000) -> str:
    """The records as two markdown tables: test errors (best per row in bold, † where the
    choice at ``n_train`` was reused, ‡ where the rows ran more than ``steps``, the fair
    protocol's budget) and parameters at ``n_train``."""
    head = ["problem", "n", *SUMMARY_MODELS, "`neural_h2` / FNO"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for problem, n in dict.fromkeys((r["problem"], r["n"]) for r in recs):
        at = {r["method"]: r for r in recs if (r["problem"], r["n"]) == (problem, n)}
        if not set(at) & set(fair.GRADIENT):
            continue  # the closed-form fits alone: nothing to compare them with
        low = min(r["mean"] for r in at.values())
        cells = []
        for method in SUMMARY_MODELS:
            r = at.get(method)
            if r is None:
                cells.append("—")
                continue
            places = _places(r["mean"], 3)
            # a spread that rounds to zero at the mean's places gets one significant digit
            sp = places
            if r["std"] == r["std"] and r["std"] > 0 and round(r["std"], places) == 0:
                sp = -math.floor(math.log10(r["std"]))
            cell = f"{r['mean']:.{places}f}" + (f" ± {r['std']:.{sp}f}" if r["std"] == r["std"]
                                                 else "")
            cell += ("" if r["own"] else "†") + ("‡" if r["steps"] > steps else "")
            cells.append(f"**{cell}**" if r["mean"] == low else cell)
        ratio = "—"
        if {"neural_h2", "fno"} <= at.keys():
            q = at["neural_h2"]["mean"] / at["fno"]["mean"]
            ratio = f"{q:.{_places(q, 2)}f}"
        lines.append(f"| {problem} | {n} | " + " | ".join(cells) + f" | {ratio} |")
    lines += ["", f"† the configuration chosen at n = {n_train} (or at the largest size above it "
              "with its own choice), reused at this size."]
    longer = sorted({r["steps"] for r in recs if r["steps"] > steps})
    if longer:
        lines += ["", f"‡ a longer budget for every gradient-trained model of the row: "
                  f"{' or '.join(f'{k:,}' for k in longer)} steps instead of {steps:,}."]
    lines += ["",
              "| parameters | " + " | ".join(SUMMARY_MODELS) + " |",
              "|" + "---|" * (len(SUMMARY_MODELS) + 1)]
    for problem in dict.fromkeys(r["problem"] for r in recs):
        count = {r["method"]: r["n_params"] for r in recs
                 if (r["problem"], r["n"]) == (problem, n_train)}
        lines.append(f"| {problem} | " + " | ".join(f"{count[m]:,}" if m in count else "—"
                                                    for m in SUMMARY_MODELS) + " |")
    return "\n".join(lines) + "\n"


def plot(recs: list[dict], png: Path) -> None:
    """Test error against n, one panel per problem, one line per model (error bars: the std
    over seeds where there are several; hollow markers: the reused choice, †)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    problems = list(dict.fromkeys(r["problem"] for r in recs))
    ncols = min(4, len(problems))
    nrows = -(-len(problems) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.5 * nrows), squeeze=False)
    for ax in axes.flat[len(problems):]:
        ax.set_visible(False)
    colors = dict(zip(SUMMARY_MODELS, plt.rcParams["axes.prop_cycle"].by_key()["color"],
                      strict=False))
    for ax, problem in zip(axes.flat, problems, strict=False):
        for method in SUMMARY_MODELS:
            rs = [r for r in recs if (r["problem"], r["method"]) == (problem, method)]
            if not rs:
                continue
            n = [r["n"] for r in rs]
            ax.plot(n, [r["mean"] for r in rs], color=colors[method], label=method)
            for r in rs:
                ax.errorbar(r["n"], r["mean"], yerr=r["std"] if r["std"] == r["std"] else None,
                            marker="o", color=colors[method], capsize=3,
                            markerfacecolor=colors[method] if r["own"] else "white")
        fair.style_error_axes(ax, problem)
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(png, dpi=90)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problem", choices=list(fair.PROBLEMS))
    ap.add_argument("--summary", nargs="*", metavar="PROBLEM",
                    help="print one markdown table over these problems (default: all in CURRENT), "
                         "each under its current grid")
    ap.add_argument("--plot", metavar="PNG", help="with --summary: also draw the table (error vs n)")
    ap.add_argument("--n-train", type=int, default=16)
    ap.add_argument("--variants", nargs="*", default=[],
                    help="variant names whose seed-0 rows join the fair grid's")
    ap.add_argument("--n-other", type=int, nargs="*", default=[])
    ap.add_argument("--models", nargs="+", default=list(fair.GRADIENT))
    ap.add_argument("--results", default="examples/results")
    args = ap.parse_args()
    res = Path(args.results)
    rows = fair.load(res / "fair_low_data" / "results.jsonl")
    if args.summary is not None:
        problems = args.summary or list(CURRENT)
        unknown = sorted(set(problems) - set(CURRENT))
        if unknown:
            raise SystemExit(f"--summary {unknown}: no current grid for these; use some of {list(CURRENT)}")
        for problem in problems:
            rows += [r for r in fair.load(res / "neural_h2_variants" / f"{problem}.jsonl")
                     if r.get("variant") in CURRENT[problem]]
        recs = records(rows, problems, args.n_train)
        print(markdown(recs, args.n_train), end="")
        if args.plot:
            plot(recs, Path(args.plot))
            print(f"\nwrote {args.plot}")
        return
    if args.problem is None:
        raise SystemExit("give --problem (one problem's choices) or --summary (the table)")
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
