"""Shared pieces of the importers: the parsed-source record, file naming and HDF5 helpers,
and the input/output selection of trajectory sources (PDEBench and The Well)."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

META_KEY = "neuralhss"  # where our exporters keep the original metadata (JSON)
ROLE_WORDS = {"train": "train", "training": "train", "test": "test", "testing": "test",
              "valid": "valid", "val": "valid", "validation": "valid"}

Reader = Callable[[int], np.ndarray]


def noop() -> None:
    return None


@dataclass
class Options:
    inputs: list[str] | None
    outputs: list[str] | None
    input_step: int
    output_step: int | None
    bc: tuple[str, ...] | None
    grid: tuple[int, ...] | None = None  # neuraloperator: the spatial shape (--grid)
    channel_axis: bool | None = None  # neuraloperator: axis 1 holds channels; None: by rank


@dataclass
class Source:
    """One parsed source file."""

    path: Path
    role: str | None
    n: int
    grid_shape: tuple[int, ...]
    inputs: dict[str, Reader]
    outputs: dict[str, Reader]
    temporal: list[str] = field(default_factory=list)
    coords: dict[str, np.ndarray] | None = None
    bc: tuple[str, ...] | None = None
    bc_origin: str = "default"
    times: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)
    name: str = ""
    meta: dict[str, Any] | None = None
    close: Callable[[], None] = noop


# ----------------------------------------------------------------------------------- helpers


def sha256_of(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def role_of(path: Path) -> str | None:
    """``train``/``test``/``valid`` from a name token, else from the parent folder's name."""
    tokens = re.split(r"[^a-z0-9]+", path.stem.lower())
    found = {ROLE_WORDS[t] for t in tokens if t in ROLE_WORDS}
    if len(found) > 1:
        raise ValueError(f"{path.name} names several splits {sorted(found)}; rename it")
    if found:
        return found.pop()
    return ROLE_WORDS.get(path.parent.name.lower())


def dataset_name(path: Path) -> str:
    """File stem without split words and resolution numbers (``darcy_train_16`` → ``darcy``)."""
    tokens = [t for t in re.split(r"[_\-]+", path.stem)
              if t and t.lower() not in ROLE_WORDS and not t.isdigit()]
    return "_".join(tokens) or path.stem


def as_str(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def str_list(value: Any) -> list[str]:
    if isinstance(value, (str, bytes)):
        return [as_str(value)]
    return [as_str(v) for v in np.asarray(value).ravel()]


def open_h5(path: Path) -> h5py.File:
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise ValueError(f"{path} is not a readable HDF5 file ({exc})") from None


def parse_h5(path: Path, role: str | None, opts: Options,
             layout: Callable[[h5py.File, Path, str | None, Options], Source]) -> Source:
    """Open ``path`` and parse it with ``layout``; the file stays open for the source's readers
    (``Source.close``) unless parsing fails."""
    f = open_h5(path)
    try:
        return layout(f, path, role, opts)
    except BaseException:
        f.close()
        raise


def describe_h5(f: h5py.File) -> str:
    keys = sorted(f.keys())
    shown = ", ".join(f"{k} {f[k].shape}" if isinstance(f[k], h5py.Dataset) else f"{k}/"
                      for k in keys[:8])
    return (shown + (f", ... ({len(keys)} entries)" if len(keys) > 8 else "")) or "nothing"


def embedded_meta(value: Any, path: Path) -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        meta = json.loads(as_str(value))
    except json.JSONDecodeError:
        raise ValueError(f"{path}: its {META_KEY!r} entry is not JSON") from None
    if not isinstance(meta, dict) or meta.get("format") != "neuralhss":
        raise ValueError(f"{path}: its {META_KEY!r} entry is not neuralhss metadata")
    return meta


# ------------------------------------------------ trajectories (PDEBench and The Well)


def snapshot_times(t: np.ndarray | None, n_t: int, path: Path, what: str) -> tuple[np.ndarray, str]:
    if t is None:
        return np.arange(n_t, dtype=np.float64), "absent: snapshot index used as time"
    t = np.asarray(t, dtype=np.float64).ravel()
    if t.size == n_t:
        return t, "as stored"
    if t.size == n_t + 1:
        return t[:n_t], "one longer than the snapshots: last entry dropped"
    raise ValueError(f"{path}: {what} has {t.size} entries for {n_t} snapshots")


def trajectory_io(path: Path, variables: dict[str, Callable[[int, Any], np.ndarray]],
                  constants: dict[str, Reader], n_t: int, times: np.ndarray, opts: Options,
                  hidden: frozenset[str] = frozenset(),
                  groups: dict[str, list[str]] | None = None,
                   ) -> tuple[dict[str, Reader], dict[str, Reader], np.ndarray | None, dict]:
    """Inputs (snapshot ``input_step`` of variables, plus constants) and outputs (later
    snapshots, or the one at ``output_step``) of a trajectory source."""
    groups = groups or {}
    available = [*variables, *constants]

    def expand(names: list[str] | None, default: list[str], what: str) -> list[str]:
        if names is None:
            return default
        out: list[str] = []
        for n in names:
            members = groups.get(n, [n])
            unknown = [m for m in members if m not in variables and m not in constants]
            if unknown:
                raise ValueError(f"{path}: no field {n!r} for --{what}; it has "
                                 f"{', '.join(available)}")
            out.extend(m for m in members if m not in out)
        return out

    shown = [v for v in variables if v not in hidden]
    in_names = expand(opts.inputs, shown + [c for c in constants if c not in hidden], "input")
    out_names = expand(opts.outputs, shown, "output")
    const_out = [n for n in out_names if n in constants]
    if const_out:
        raise ValueError(f"{path}: {const_out} do not vary in time; they can be inputs, not "
                         "outputs")
    if not in_names or not out_names:
        raise ValueError(f"{path}: no {'input' if not in_names else 'output'} field chosen")
    if not -n_t <= opts.input_step < n_t:
        raise ValueError(f"input_step={opts.input_step} is out of range for the {n_t} "
                         f"snapshots of {path.name}")
    k = opts.input_step % n_t
    inputs: dict[str, Reader] = {}
    for name in in_names:
        if name in constants:
            inputs[name] = constants[name]
        else:
            inputs[f"{name}_t{k}"] = (lambda j, r=variables[name]: r(j, k))
    outputs: dict[str, Reader] = {}
    info: dict[str, Any] = {"input_step": k, "input_time": float(times[k])}
    if opts.output_step is not None:
        if not -n_t <= opts.output_step < n_t or opts.output_step % n_t == k:
            raise ValueError(f"output_step={opts.output_step} must be a snapshot other than "
                             f"the input step {k} among the {n_t} of {path.name}")
        o = opts.output_step % n_t
        for name in out_names:
            outputs[name] = (lambda j, r=variables[name]: r(j, o))
        info.update(output_step=o, output_time=float(times[o]))
        out_times = None
    else:
        if k == n_t - 1:
            raise ValueError(f"{path.name} has no snapshot after input step {k} (of {n_t}); "
                             "choose an earlier --input-step or an --output-step")
        for name in out_names:
            outputs[name] = (lambda j, r=variables[name]: r(j, slice(k + 1, None)))
        info["output_steps"] = [k + 1, n_t - 1]
        out_times = times[k + 1:]
    return inputs, outputs, out_times, info
