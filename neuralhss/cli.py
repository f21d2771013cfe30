"""The ``neuralhss`` command line.

``neuralhss generate PROBLEM|RECIPE.yaml -o FILE.h5`` makes a dataset, ``neuralhss merge``
combines shards, ``neuralhss check`` validates a file, ``neuralhss problems`` lists problems.
Errors print one line on stderr and exit with status 2 (1 for a failed check).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml


def _param(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--param {text!r} must look like KEY=VALUE")
    key, value = text.split("=", 1)
    return key.strip(), yaml.safe_load(value)


def _add_generate(sub: argparse._SubParsersAction) -> None:
    from .datasets import problem_names

    p = sub.add_parser(
        "generate", help="generate an HDF5 dataset (resumable; bit-identical for any --workers)",
        description="Generate a dataset from a problem name or a YAML recipe. Re-running the "
                    "same command resumes an interrupted run; a file with other parameters is "
                    "never overwritten.")
    p.add_argument("target", help=f"problem ({', '.join(problem_names())}) or a recipe .yaml")
    p.add_argument("-o", "--out", required=True, help="output file (.h5)")
    p.add_argument("--dim", type=int, help="spatial dimension (1, 2 or 3)")
    p.add_argument("--resolution", type=int, nargs="+", help="nodes per axis (one or one per axis)")
    p.add_argument("--samples", type=int, help="number of samples")
    p.add_argument("--seed", type=int, help="root seed (default 0)")
    p.add_argument("--param", type=_param, action="append", default=[], metavar="KEY=VALUE",
                   help="any other problem parameter, e.g. --param length_scale=0.2")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--shard", help="compute shard I/N only (combine with `neuralhss merge`)")
    p.add_argument("--block-size", type=int, help="samples per crash-safe block")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _cmd_generate(args: argparse.Namespace) -> int:
    from .datasets import generate, load_recipe

    params: dict[str, Any] = {}
    samples, seed = None, 0
    if args.target.endswith((".yaml", ".yml")):
        recipe = load_recipe(args.target)
        problem, params, samples, seed = recipe.problem, dict(recipe.params), recipe.samples, recipe.seed
    else:
        problem = args.target
    if args.dim is not None:
        params["dim"] = args.dim
    if args.resolution is not None:
        params["resolution"] = args.resolution[0] if len(args.resolution) == 1 else args.resolution
    params.update(dict(args.param))
    samples = args.samples if args.samples is not None else samples
    seed = args.seed if args.seed is not None else seed
    if samples is None:
        raise ValueError("--samples is required when the target is a problem name")
    result = generate(problem, args.out, n_samples=samples, seed=seed, params=params,
                      workers=args.workers, shard=args.shard, progress=not args.no_progress,
                      block_size=args.block_size)
    if result.already_complete:
        print(f"{result.path}: already complete ({result.n_owned} samples), nothing to do")
    else:
        resumed = f", {result.n_resumed} resumed" if result.n_resumed else ""
        print(f"{result.path}: {result.n_computed} samples computed{resumed} in "
              f"{result.seconds:.1f} s ({result.samples_per_second:.1f} samples/s)")
    return 0


def _cmd_merge(args: argparse.Namespace) -> int:
    from .datasets import check_file, merge

    out = merge(args.shards, args.out, progress=not args.no_progress)
    print(check_file(out).summary())
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from .datasets import check_file

    status = 0
    for path in args.files:
        report = check_file(path, require_complete=True)
        print(report.summary(), file=sys.stdout if report.ok else sys.stderr)
        status |= 0 if report.ok else 1
    return status


def _cmd_problems(args: argparse.Namespace) -> int:
    from .datasets import get_problem, problem_names

    for name in problem_names():
        prob = get_problem(name)
        print(f"{name}: {prob.description}")
        print(f"  inputs {[s.name for s in prob.inputs]} -> outputs {[s.name for s in prob.outputs]}")
        print(f"  defaults {json.dumps(prob.resolve(), sort_keys=True)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="neuralhss", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"neuralhss {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_generate(sub)
    p = sub.add_parser("merge", help="combine shard files into one (byte-identical to one run)")
    p.add_argument("shards", nargs="+", help="shard files from `generate --shard I/N`")
    p.add_argument("-o", "--out", required=True, help="output file (.h5); must not exist")
    p.add_argument("--no-progress", action="store_true")
    p = sub.add_parser("check", help="validate dataset files (schema, shapes, completeness, NaN)")
    p.add_argument("files", nargs="+")
    sub.add_parser("problems", help="list dataset problems and their default parameters")
    return parser


COMMANDS = {"generate": _cmd_generate, "merge": _cmd_merge, "check": _cmd_check,
            "problems": _cmd_problems}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``neuralhss`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (ValueError, FileExistsError, FileNotFoundError, RuntimeError) as exc:
        print(f"neuralhss {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        out = getattr(args, "out", None)
        hint = f"; finished blocks are kept in {Path(out).name}.parts, re-run the same command " \
               "to resume" if out and args.command == "generate" else ""
        print(f"neuralhss {args.command}: interrupted{hint}", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
