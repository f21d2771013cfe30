"""The ``neuralhss`` command line.

``neuralhss generate PROBLEM|RECIPE.yaml -o FILE.h5`` makes a dataset, ``neuralhss merge``
combines shards, ``neuralhss check`` validates a file, ``neuralhss problems`` lists problems,
``neuralhss train`` fits a model and ``neuralhss evaluate`` scores a checkpoint;
``neuralhss attack`` stress-tests a checkpoint adversarially and ``neuralhss inspect`` prints the
singular spectra of its weights;
``neuralhss convert`` imports neuraloperator, PDEBench and The Well data and ``neuralhss export``
writes neuraloperator or The Well files.
Errors print one line on stderr and exit with status 2 (1 for a failed check).
"""

from __future__ import annotations

import argparse
import errno
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml


def _param(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--param {text!r} must look like KEY=VALUE")
    key, value = text.split("=", 1)
    # Numbers as Python reads them: YAML 1.1 takes 1e-4 (no dot) for a string.
    for cast in (int, float):
        try:
            return key.strip(), cast(value.strip())
        except ValueError:
            pass
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
    p.add_argument("--compression", choices=["gzip", "lzf", "none"], default="gzip",
                   help="HDF5 chunk filter (default gzip level 1 + shuffle, readable everywhere; "
                        "none writes fastest and reads fastest, files are larger)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _at_least(option: str, value: int | Sequence[int] | None, low: int,
              high: int | None = None) -> None:
    """Refuse an integer option (or any of its values) outside ``[low, high]``, naming it."""
    for v in [value] if isinstance(value, int) else value or []:
        if v < low or (high is not None and v > high):
            bound = f"between {low} and {high}" if high is not None else f">= {low}"
            raise ValueError(f"{option} {v} is out of range; give an integer {bound}")


def _cmd_generate(args: argparse.Namespace) -> int:
    from .datasets import generate
    from .datasets.generation import INT64_MAX
    from .datasets.recipes import resolve_target

    # Checked before anything is read or created, with the option's own name in the message.
    _at_least("--samples", args.samples, 1, INT64_MAX)
    _at_least("--seed", args.seed, 0, INT64_MAX)
    _at_least("--workers", args.workers, 1)
    _at_least("--block-size", args.block_size, 1)
    _at_least("--dim", args.dim, 1, 3)
    _at_least("--resolution", args.resolution, 1)
    problem, params, samples, seed = resolve_target(
        args.target, dim=args.dim, resolution=args.resolution, params=args.param,
        samples=args.samples, seed=args.seed)
    if samples is None:
        raise ValueError("--samples is required when the target is a problem name")
    result = generate(problem, args.out, n_samples=samples, seed=seed, params=params,
                      workers=args.workers, shard=args.shard, progress=not args.no_progress,
                      block_size=args.block_size, compression=args.compression)
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
    for path in args.files:  # every file is reported, whatever the ones before it were
        try:
            report = check_file(path, require_complete=True)
        except (ValueError, FileNotFoundError, OSError) as exc:
            print(f"neuralhss check: error: {exc}", file=sys.stderr)
            status = 2
            continue
        print(report.summary(), file=sys.stdout if report.ok else sys.stderr)
        status = max(status, 0 if report.ok else 1)
    return status


def _add_convert(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert", help="import neuraloperator, PDEBench or The Well data into a dataset file",
        description="Convert files of another format into one neuralhss dataset file. Files "
                    "named train/test (or in train/, test/, valid/ folders) give it a /split. "
                    "Supported layouts: see neuralhss.datasets.convert.")
    p.add_argument("sources", nargs="+", help="source files or folders (all on one grid)")
    p.add_argument("-o", "--out", required=True, help="output file (.h5); must not exist")
    p.add_argument("--from", dest="fmt", required=True, choices=["neuralop", "pdebench", "thewell"],
                   help="source format")
    p.add_argument("--input", action="append", metavar="FIELD",
                   help="input variable (repeatable); neuralop: names of the x channels")
    p.add_argument("--output", action="append", metavar="FIELD",
                   help="output variable (repeatable); neuralop: names of the y channels")
    p.add_argument("--input-step", type=int, default=0, metavar="K",
                   help="snapshot used as input for trajectory data (default 0)")
    p.add_argument("--output-step", type=int, default=None, metavar="K",
                   help="use only this snapshot as output (default: all later snapshots)")
    p.add_argument("--bc", help="boundary conditions: periodic or dirichlet, one or one per axis "
                                "comma-separated (default: from the source)")
    p.add_argument("--valid", default="train", choices=["train", "test", "drop"],
                   help="where validation data goes (default train)")
    p.add_argument("--grid", type=int, nargs="+", default=None, metavar="N",
                   help="neuralop: the spatial shape, e.g. --grid 64 or --grid 16 16 (default: "
                        "from the tensors' number of axes)")
    p.add_argument("--channel-axis", default="auto", choices=["1", "none", "auto"],
                   help="neuralop: x and y have a channel axis at position 1, (n, C, *grid), or "
                        "none, (n, *grid); an output with one more axis is a trajectory "
                        "(default auto: from the number of axes)")
    p.add_argument("--no-progress", action="store_true")


def _cmd_convert(args: argparse.Namespace) -> int:
    from .datasets import check_file, convert

    result = convert(args.sources, args.out, args.fmt, inputs=args.input, outputs=args.output,
                     input_step=args.input_step, output_step=args.output_step, bc=args.bc,
                     valid=args.valid, grid=args.grid, channel_axis=args.channel_axis,
                     progress=not args.no_progress)
    split = (f", split {result.n_train} train / {result.n_test} test"
             if result.n_test is not None else "")
    print(check_file(result.path).summary() + split)
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from .datasets import export

    for path in export(args.file, args.to, args.out):
        print(path)
    return 0


def _cmd_problems(args: argparse.Namespace) -> int:
    from .datasets import get_problem, problem_names

    for name in problem_names():
        prob = get_problem(name)
        print(f"{name}: {prob.description}")
        print(f"  inputs {[s.name for s in prob.inputs]} -> outputs {[s.name for s in prob.outputs]}")
        print(f"  defaults {json.dumps(prob.resolve(), sort_keys=True)}")
    return 0


def _count_or_fraction(text: str) -> int | float:
    """``--n-test``: an integer count or a float fraction."""
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is neither a count nor a fraction") from None


def _default_n_test() -> float:
    """PDEDataset's default test split (one default for the library and the command)."""
    import inspect

    from .datasets import PDEDataset

    return inspect.signature(PDEDataset).parameters["n_test"].default


def _train_config_options() -> list[tuple[str, dict]]:
    from .train.config import cli_options

    return [(opt[2:].replace("-", "_"), kw) for opt, kw in cli_options()]


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="train a neural operator on a dataset file (resumes from --out)",
        description="Train a model on the first --n-train training samples of a dataset and "
                    "evaluate it on the test split; writes OUT/checkpoint.pt and OUT/metrics.json. "
                    "Launch with torchrun for multi-process (DDP) training.")
    p.add_argument("--data", required=True, help="dataset file (.h5)")
    p.add_argument("--model", default="fno",
                   help="model name (fno, tfno, uno, neural_h2, neural_hss)")
    p.add_argument("--linear-fit", default="auto", choices=["auto", "affine", "always", "never"],
                   help="neural_h2 with one input and one output channel: start from the convex "
                        "fit of its linear path if it validates on half the training samples "
                        "(auto), the same for the affine path (affine), always, or never; with "
                        "several channels auto drops the linear path (no convex fit exists), the "
                        "others train it from zero; a fitted start is kept fixed, and the hidden "
                        "blocks are silenced after training where the start alone fits the "
                        "training pairs more closely")
    p.add_argument("--model-arg", type=_param, action="append", default=[], metavar="KEY=VALUE",
                   help="override a model argument, e.g. --model-arg hidden_channels=64")
    p.add_argument("--n-train", type=int, default=None, help="training samples (default: all)")
    p.add_argument("--n-test", type=_count_or_fraction, default=_default_n_test(),
                   help="size of the test split: a count, or a fraction of the file "
                        f"(default {_default_n_test()}, as PDEDataset's)")
    p.add_argument("--normalize", default="scale", choices=["scale", "gaussian"],
                   help="per-channel normalisation from the training samples: divide by the RMS "
                        "(scale, default: a linear operator stays linear, so neural_h2's linear "
                        "path can start from its convex fit), or subtract the mean and divide by "
                        "the standard deviation (gaussian)")
    p.add_argument("--time-index", type=int, nargs="+", default=None, metavar="K",
                   help="snapshots of trajectory outputs to learn (-1 = final time; default: all)")
    for name, kw in _train_config_options():  # TrainConfig's fields, defaults and help
        p.add_argument("--" + name.replace("_", "-"), **kw)
    p.add_argument("--out", required=True, help="run folder (checkpoint.pt, metrics.json)")
    p.add_argument("--no-progress", action="store_true")


def _data_identity(args: argparse.Namespace) -> dict[str, Any]:
    """What a run is trained on: the dataset's identity (not its path, which may move) and the
    split. Files with the same identity hold the same samples (generation is deterministic;
    converted files record the sha256 of their sources)."""
    import h5py

    from .datasets.schema import read_meta

    path = Path(args.data)
    if not path.exists():
        raise FileNotFoundError(f"--data {path} does not exist")
    try:
        with h5py.File(path, "r") as f:
            meta = read_meta(f)
    except OSError as exc:
        raise ValueError(f"--data {path} is not a readable HDF5 file ({exc}); check it with "
                         "`neuralhss check`") from None
    return {"dataset": {**meta.identity(), "shard": list(meta.shard) if meta.shard else None,
                        **({"converted_from": meta.attrs["converted_from"]}
                           if "converted_from" in meta.attrs else {})},
            "n_test": args.n_test, "time_index": args.time_index, "normalize": args.normalize}


def _cmd_train(args: argparse.Namespace) -> int:
    import torch

    from .datasets import PDEDataset
    from .models import build, default_config
    from .train import TrainConfig, fit, init_from_env, to_memory
    from .train.loop import check_out_dir

    info = init_from_env()
    data_id = _data_identity(args)
    # Before the data is read (which can take long): a file as --out, or a folder holding a run
    # on other data, fails at once.
    check_out_dir(args.out, data={k: v for k, v in data_id.items() if k != "n_train"})
    train_set = PDEDataset(args.data, split="train", n=args.n_train, n_test=args.n_test,
                           normalize=args.normalize, time_index=args.time_index)
    test_set = PDEDataset(args.data, split="test", n_test=args.n_test,
                          normalize=train_set.normalizer, time_index=args.time_index)
    from .train.methods import data_model_args

    config = default_config(args.model, train_set.in_channels, train_set.out_channels,
                            train_set.grid_shape)
    config.update(data_model_args(args.model, train_set))  # as fit_method builds it
    known = sorted(config)
    kinds = {bool: "true or false", int: "an integer", float: "a number", list: "a list"}
    for key, value in args.model_arg:
        default = config.get(key)
        if isinstance(value, str) and default is not None and not isinstance(default, str):
            raise ValueError(f"--model-arg {key}={value}: {args.model} takes "
                             f"{kinds.get(type(default), type(default).__name__)} for {key} "
                             f"(default {default!r})")
    config.update(dict(args.model_arg))
    torch.manual_seed(args.seed)
    try:
        model = build(args.model, **config)
    except TypeError as exc:  # the model class rejects an argument
        unknown = re.search(r"unexpected keyword argument '(\w+)'", str(exc))
        if unknown is None:
            raise ValueError(f"--model-arg: {args.model} cannot be built with {dict(args.model_arg)} "
                             f"({exc})") from None
        raise ValueError(f"--model-arg {unknown[1]}: {args.model} has no argument {unknown[1]!r}; "
                         f"its arguments include {known}") from None
    start = None
    if args.model == "neural_h2":
        from .train.methods import linear_degrees, start_neural_h2

        dev = TrainConfig(device=args.device).resolved_device()
        model, start = start_neural_h2(model.to(dev), config, to_memory(train_set), dev,
                                       rule=args.linear_fit, seed=args.seed,
                                       degrees=linear_degrees(train_set.grid_shape,
                                                              dict(args.model_arg)))
        if start is not None and info.is_main:
            val = start["validation_rel_l2"]
            why = (f" (validation rel. L2 {val:.3g}; the training mean's "
                   f"{start['validation_rel_l2_mean']:.3g})" if val is not None else "")
            if start["fitted"]:
                kind = "affine" if start["centered"] else "linear"
                print(f"neural_h2 starts from the convex fit of its {kind} path, Legendre "
                      f"degree {start['linear_degree']}{why}")
            elif "dropped" in start:
                print("neural_h2 has no linear path: with several channels it has no convex fit")
            elif model.linear is None:
                print(f"neural_h2 has no linear path: its convex fit did not validate{why}")
            else:
                print("neural_h2: its linear path starts from zero")
    cfg = TrainConfig(**{name: getattr(args, name) for name, _ in _train_config_options()},
                      progress=not args.no_progress)
    cfg.batch_size = min(cfg.batch_size, len(train_set))
    cfg.grad_clip = cfg.grad_clip if cfg.grad_clip > 0 else None
    metrics = fit(model, to_memory(train_set), cfg, out_dir=args.out, test_set=test_set,
                  normalizer=train_set.normalizer,
                  extra={"data": str(Path(args.data).resolve()), "split_n_test": args.n_test,
                         "time_index": args.time_index}, data=data_id)
    if args.model == "neural_h2" and start is not None and start["fitted"] and model.blocks \
            and info.is_main:
        _fall_back_to_start(model, train_set, test_set, cfg, args.out, metrics)
    if info.is_main:
        print(f"{args.model}: test rel. L2 {metrics['test_rel_l2']:.4g} on {metrics['n_test']} "
              f"samples, {metrics['n_params']} parameters, n_train {metrics['n_train']}, "
              f"{metrics['train_seconds']:.1f} s -> {Path(args.out) / 'metrics.json'}")
    return 0


def _fall_back_to_start(model, train_set, test_set, cfg, out: str, metrics: dict) -> None:
    """As ``fit_method`` does: where ``neural_h2``'s frozen convex start alone fits the
    training pairs more closely than the trained model, silence the hidden blocks and write
    that model into the run's checkpoint and metrics."""
    from .train import evaluate, to_memory
    from .train.methods import keep_start_if_better
    from .train.state import replace_model_state

    dev = cfg.resolved_device()
    record = keep_start_if_better(model, model, to_memory(train_set), train_set.normalizer, dev)
    metrics["fallback"] = record
    if not record["kept_blocks"]:
        metrics["train_rel_l2"] = record["rel_l2_start"]
        metrics.update(evaluate(model, test_set, train_set.normalizer, cfg.batch_size, dev))
        replace_model_state(Path(out) / "checkpoint.pt", model, {"fallback": record})
    if not record["kept_blocks"] and record["rel_l2_start"] != record["rel_l2_trained"]:
        # (equal when resuming a run already silenced)
        print(f"neural_h2: the convex start alone fits the training pairs more closely "
              f"({record['rel_l2_start']:.3g} against {record['rel_l2_trained']:.3g}); the hidden "
              "blocks are silenced")
    (Path(out) / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")


def _load_trained(checkpoint: str, data: str, n_test: int | float | None, force: bool = False):
    """Checkpoint, its model and the test split of ``data`` as in training:
    ``(ckpt, model, test_set, normalizer)`` (see :mod:`neuralhss.train.checkpoint`)."""
    from .datasets import Normalizer, PDEDataset
    from .train import load_checkpoint
    from .train.checkpoint import split_settings, trained_model

    ckpt = load_checkpoint(checkpoint)
    split = split_settings(ckpt, n_test)
    normalizer = Normalizer.from_dict(split["normalizer"]) if split["normalizer"] else None
    test_set = PDEDataset(data, split="test", n_test=split["n_test"], normalize=normalizer,
                          time_index=split["time_index"])
    return ckpt, trained_model(ckpt, test_set, data, force), test_set, normalizer


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from .models import count_parameters
    from .train import evaluate

    ckpt, model, test_set, normalizer = _load_trained(args.checkpoint, args.data, args.n_test,
                                                      args.force)
    metrics = evaluate(model, test_set, normalizer, device="cpu")
    metrics.update({"n_params": count_parameters(model), "n_train": ckpt["extra"].get("n_train"),
                    "train_seconds": ckpt["train_seconds"], "epoch": ckpt["epoch"],
                    "model": ckpt["run"]["spec"]["name"]})
    print(json.dumps(metrics, indent=2))
    return 0


def _add_attack(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "attack", help="adversarial stress test of a checkpoint: random noise, PGD, low-rank PGD",
        description="Perturb the first --n-samples test inputs by random noise, l2 PGD and "
                    "low-rank PGD of relative size eps (||delta|| = eps ||x|| per sample, in the "
                    "data's own units) and print the error amplification "
                    "(||G(x+d) - G(x)|| / ||G(x)||) / (||d|| / ||x||), mean/max over samples, "
                    "one line per eps. See neuralhss.lowrank.attacks.")
    p.add_argument("checkpoint", help="checkpoint.pt written by `neuralhss train`")
    p.add_argument("--data", required=True, help="dataset file (.h5); its test split is attacked")
    p.add_argument("--eps", type=float, nargs="+", required=True, help="relative budgets, e.g. 0.01 0.05")
    p.add_argument("--rank", type=int, default=4, help="rank per channel of low-rank PGD (default 4)")
    p.add_argument("--n-samples", type=int, default=16, help="test inputs attacked (default 16)")
    p.add_argument("--steps", type=int, default=20, help="PGD steps (default 20)")
    p.add_argument("--n-test", type=_count_or_fraction, default=None,
                   help="test split size, a count or a fraction (default: as trained)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", dest="json_out", help="also write the results to this JSON file")
    p.add_argument("--force", action="store_true",
                   help="attack even on data of another problem than the checkpoint's")


def _cmd_attack(args: argparse.Namespace) -> int:
    from .lowrank.attacks import InDataUnits, attack_methods, attack_table

    for e in args.eps:  # the options, checked before anything is read
        if not e > 0:
            raise ValueError(f"--eps {e}: every budget must be > 0")
    if args.rank < 1:
        raise ValueError(f"--rank {args.rank} must be >= 1")
    if args.n_samples < 1 or args.steps < 1:
        raise ValueError("--n-samples and --steps must be >= 1")
    _, model, test_set, normalizer = _load_trained(args.checkpoint, args.data, args.n_test,
                                                   args.force)
    import torch

    n = min(args.n_samples, len(test_set))
    x = torch.stack([test_set[i]["x"] for i in range(n)])
    op = model
    if normalizer is not None:
        op = InDataUnits(model, normalizer)
        x = op.decode_x(x)
    grid = tuple(x.shape[2:])
    names = list(attack_methods(op, x, args.rank, args.steps, args.seed))
    print(f"amplification (||G(x+d)-G(x)||/||G(x)||)/(||d||/||x||) on {n} test samples, grid {grid}, "
          f"{args.steps} steps" + ("" if len(names) == 3 else
                                   "; low-rank PGD needs 2-D or 3-D fields: n/a"))
    print(f"{'eps':>8s}  " + "  ".join(f"{name + ' mean/max (s)':>28s}" for name in names))

    def show(row: dict[str, Any]) -> None:
        cells = [f"{row[k]['mean']:.4g} / {row[k]['max']:.4g} ({row[k]['seconds']:.1f})" for k in names]
        print(f"{row['eps']:8.4g}  " + "  ".join(f"{c:>28s}" for c in cells))

    results = attack_table(op, x, args.eps, args.rank, args.steps, args.seed, on_row=show)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"checkpoint": str(args.checkpoint), "n_samples": n,
                                                   "steps": args.steps, "rank": args.rank,
                                                   "results": results}, indent=2))
    return 0


def _add_inspect(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "inspect", help="singular spectra and ranks of every weight of a checkpoint",
        description="Print per weight: matrices, largest singular value, numerical rank at --tau "
                    "(smallest r with ||sigma_{r+1:}|| <= tau ||sigma||, the DLRT rule), stable "
                    "and effective rank, condition number. See neuralhss.lowrank.spectrum.")
    p.add_argument("checkpoint", help="checkpoint.pt written by `neuralhss train`")
    p.add_argument("--tau", type=float, default=0.01, help="relative tolerance in [0, 1) (default 0.01)")
    p.add_argument("--plot", help="write the spectra to this PNG")
    p.add_argument("--json", dest="json_out", help="also write the per-weight summary to this JSON file")


def _cmd_inspect(args: argparse.Namespace) -> int:
    import math

    from .lowrank.layers import check_tau
    from .lowrank.spectrum import inspect_model, plot_spectra, spectral_table
    from .train import load_checkpoint, model_from_checkpoint

    tau = check_tau(args.tau)
    ckpt = load_checkpoint(args.checkpoint)
    spectra = inspect_model(model_from_checkpoint(ckpt))
    if not spectra:
        raise ValueError(f"{args.checkpoint}: the model has no weight matrices to inspect")
    print(spectral_table(spectra, tau))
    if args.json_out:
        rows = [{k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                 for k, v in e.summary(tau).items()} for e in spectra]       # strict JSON: no inf/NaN
        Path(args.json_out).write_text(json.dumps(rows, indent=2))
    if args.plot:
        plot_spectra(spectra, args.plot, tau, title=f"{ckpt['run']['spec']['name']}: {args.checkpoint}")
        print(f"plot -> {args.plot}", file=sys.stderr)
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
    _add_train(sub)
    p = sub.add_parser("evaluate", help="evaluate a checkpoint on a dataset's test split")
    p.add_argument("checkpoint", help="checkpoint.pt written by `neuralhss train`")
    p.add_argument("--data", required=True, help="dataset file (.h5)")
    p.add_argument("--n-test", type=_count_or_fraction, default=None,
                   help="test split size, a count or a fraction (default: as trained)")
    p.add_argument("--force", action="store_true",
                   help="evaluate even on data of another problem than the checkpoint's")
    _add_attack(sub)
    _add_inspect(sub)
    _add_convert(sub)
    p = sub.add_parser(
        "export", help="write a dataset file as neuraloperator .pt/.h5 or The Well HDF5",
        description="Export a complete dataset file. -o PREFIX (no suffix) writes train/test "
                    "files (PREFIX_train_RES.pt, or PREFIX/data/train/*.hdf5 for thewell); "
                    "-o FILE.pt/.h5 one file. Converting the result back restores the dataset.")
    p.add_argument("file", help="dataset file (.h5)")
    p.add_argument("--to", required=True, choices=["neuralop", "thewell"], help="target format")
    p.add_argument("-o", "--out", required=True, help="output file or prefix; must not exist")
    return parser


COMMANDS = {"generate": _cmd_generate, "merge": _cmd_merge, "check": _cmd_check,
            "problems": _cmd_problems, "train": _cmd_train, "evaluate": _cmd_evaluate,
            "convert": _cmd_convert, "export": _cmd_export, "attack": _cmd_attack,
            "inspect": _cmd_inspect}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``neuralhss`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (ValueError, FileExistsError, FileNotFoundError, RuntimeError, FloatingPointError) as exc:
        print(f"neuralhss {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a full disk, a read-only or forbidden folder: one line, no traceback
        where = f"{exc.filename}: " if exc.filename else ""
        hint = "; write to a folder you may write to" if exc.errno in (
            errno.EACCES, errno.EPERM, errno.EROFS) else ""
        print(f"neuralhss {args.command}: error: {where}{exc.strerror or exc}{hint}",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        out = getattr(args, "out", None)
        hint = f"; finished blocks are kept in {Path(out).name}.parts, re-run the same command " \
               "to resume" if out and args.command == "generate" else ""
        print(f"neuralhss {args.command}: interrupted{hint}", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
