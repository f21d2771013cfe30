"""Export neuralhss files to other formats (``neuralhss export``).

**neuraloperator** (``to="neuralop"``). The inputs, in field order, become the channels of
``x`` and the outputs those of ``y``; a trajectory field gives one channel per snapshot (time
as channels). Both are float32 ``(N, C, *grid)``; when both have one channel, the channel axis is
dropped, as in neuraloperator's own Darcy files (its ``PTDataset`` adds it back with the default
``channels_squeezed=True``); otherwise both keep it (load with ``channels_squeezed=False``).
What ``OUT`` names decides the files:

- ``OUT`` without a suffix (a prefix): ``OUT_train_<res>.pt`` and, when the file has a
  ``/split``, ``OUT_test_<res>.pt``, where ``<res>`` is the side of a square or cubic grid (``16``)
  or ``HxW``. These are the names ``PTDataset(root_dir=OUT.parent, dataset_name=OUT.name,
  train_resolution=res, test_resolutions=[res], ...)`` opens. Without ``/split`` every sample goes
  to ``_train``.
- ``OUT.pt``: one dict with all samples (refused for a file with a ``/split``, which it would lose:
  use the prefix form).
- ``OUT.h5``/``OUT.hdf5``: datasets ``x``, ``y`` (and ``split`` when the file has one), the
  layout of neuraloperator's ``H5pyDataset``; ``H5pyDataset(OUT.h5, resolution=1024)`` reads it at
  full resolution (its ``resolution`` maps 1024 to subsampling step 1, 512 to 2, 256 to 4, 128 to 8).

**The Well** (``to="thewell"``). ``OUT.h5``/``OUT.hdf5``: one file (refused for a file with a
``/split``); ``OUT`` without a suffix: a dataset folder ``OUT/data/train/<name>.hdf5`` and, with a
``/split``, ``OUT/data/test/<name>.hdf5`` (``WellDataset(path=OUT, well_split_name="train")``).
Each file follows The Well's layout: root attributes ``dataset_name`` (the problem),
``grid_type="cartesian"``, ``n_spatial_dims``, ``n_trajectories``, ``simulation_parameters``
(the numeric top-level params, each also a root attribute and a ``scalars`` entry);
``dimensions`` with ``time`` and the coordinates (float32, ``spatial_dims=["x", ...]``);
``boundary_conditions`` with one group per axis (``bc_type`` PERIODIC, or WALL for Dirichlet
with zero ``values``); every field a scalar field in ``t0_fields`` (``t1_fields`` and
``t2_fields`` are empty). Trajectory fields are ``(N, n_t, *grid)`` over ``dimensions/time``;
stationary inputs are constant fields ``(N, *grid)`` (``time_varying=False``); in a file without
trajectories the outputs are one-snapshot trajectories ``(N, 1, *grid)`` at time 0. An input and
an output of the same name become ``in_<name>`` and ``out_<name>``; each field's ``role``
attribute says which it is.

Every exported file carries the original metadata as JSON (the ``neuralhss`` dict entry or root
attribute: problem, params, seed, grid, field names, coordinates, times, the samples' original
indices and split), so ``neuralhss convert`` turns the exported files back into the original
dataset: values equal (float32), same coordinates, params, sample order and split.
A shard file (``generate --shard I/N``) exports only the samples it holds (the record names
the shard); merge the shards first (``neuralhss merge``) to export the whole dataset.
The whole dataset is read into memory.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..io import atomic_write
from .convert import META_KEY
from .schema import Meta, check_file, field_paths, read_meta

TARGETS = ("neuralop", "thewell")


def _atomic(path: Path, write: Callable[[Path], None]) -> None:
    # ".partial", like the dataset files: the one name users learn for an unfinished write.
    atomic_write(path, write, temp=path.with_name(path.name + ".partial"))


def _record(f: h5py.File, meta: Meta, indices: np.ndarray, split: np.ndarray | None,
            channels: list[tuple[str, int]], **extra: Any) -> dict[str, Any]:
    field_attrs = {}
    for p in field_paths(meta):
        attrs = {k: str(v) for k, v in f[p].attrs.items() if k in ("units", "description")}
        if attrs:
            field_attrs[p.split("/", 1)[1]] = attrs
    return {
        "format": "neuralhss", "schema_version": 1, "problem": meta.problem,
        "params": meta.params, "seed": meta.seed, "package_version": meta.package_version,
        "n_samples": meta.n_samples, "grid": meta.grid.to_dict(),
        "input_fields": meta.input_fields, "output_fields": meta.output_fields,
        "temporal_fields": meta.temporal_fields, "times": meta.times,
        "coords": {a: [float(v) for v in f[f"coords/{a}"][...]] for a in meta.grid.axis_names},
        "coords_source": meta.coords_source, "field_attrs": field_attrs, "attrs": meta.attrs,
        "indices": [int(i) for i in indices],
        "split": None if split is None else [int(v) for v in split[indices]],
        "channels": [[p, int(c)] for p, c in channels], **extra,
    }


def _stack(f: h5py.File, meta: Meta, group: str) -> tuple[np.ndarray, list[tuple[str, int]]]:
    """All fields of ``group`` as float32 ``(N, C, *grid)`` and the channels of each field."""
    grid = meta.grid.shape
    parts, channels = [], []
    for p in field_paths(meta):
        if p.startswith(group + "/"):
            a = np.asarray(f[p][...], dtype=np.float32).reshape(meta.n_samples, -1, *grid)
            parts.append(a)
            channels.append((p, a.shape[1]))
    return np.concatenate(parts, axis=1), channels


def _res_tag(shape: tuple[int, ...]) -> str:
    return str(shape[0]) if len(set(shape)) == 1 else "x".join(map(str, shape))


def _targets(to: str, out: Path, meta: Meta, split: np.ndarray | None, done: np.ndarray
             ) -> list[tuple[Path, np.ndarray]]:
    """Output files and the sample indices each holds (only samples the file holds: a shard
    file's other slots are empty)."""
    everything = np.flatnonzero(done)
    suffix = out.suffix.lower()
    single = suffix in ((".pt", ".h5", ".hdf5") if to == "neuralop" else (".h5", ".hdf5"))
    if suffix and not single:
        allowed = ".pt, .h5, .hdf5" if to == "neuralop" else ".h5, .hdf5"
        raise ValueError(f"output {out} should end in {allowed} (one file) or have no suffix "
                         "(train/test files)")
    if single:
        if split is not None and not (to == "neuralop" and suffix != ".pt"):
            raise ValueError(f"the file has a train/test split, which one {suffix} file would "
                             f"lose; give -o without a suffix to write train and test files")
        return [(out, everything)]
    parts = [("train", everything if split is None else everything[split[everything] == 0])]
    if split is not None:
        parts.append(("test", everything[split[everything] == 1]))
    if to == "neuralop":
        tag = _res_tag(meta.grid.shape)
        return [(out.with_name(f"{out.name}_{role}_{tag}.pt"), idx) for role, idx in parts]
    name = _safe_name(meta.problem)
    return [(out / "data" / role / f"{name}.hdf5", idx) for role, idx in parts]


def _safe_name(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text) or "dataset"


def export(path: str | os.PathLike, to: str, out: str | os.PathLike) -> list[Path]:
    """Write a complete neuralhss file in another format (module docstring).

    Returns
    -------
    list of Path
        The files written.

    Raises
    ------
    FileExistsError
        If an output file exists (nothing is written then).
    ValueError
        Unknown target, a file that does not pass ``neuralhss check``, an output name that
        does not fit.
    """
    if to not in TARGETS:
        raise ValueError(f"unknown export format {to!r}; use one of {', '.join(TARGETS)}")
    path, out = Path(path), Path(out)
    report = check_file(path)
    if not report.ok:
        raise ValueError(f"{path} does not pass `neuralhss check`: {'; '.join(report.problems)}")
    with h5py.File(path, "r") as f:
        meta = read_meta(f)
        split = np.asarray(meta.split, dtype=np.uint8) if meta.split is not None else None
        targets = _targets(to, out, meta, split, f["done"][...].astype(bool))
        existing = [str(p) for p, _ in targets if p.exists()]
        if existing:
            raise FileExistsError(f"{', '.join(existing)} exist(s); choose another output path "
                                  "or delete it")
        if to == "neuralop":
            x, in_ch = _stack(f, meta, "inputs")
            y, out_ch = _stack(f, meta, "outputs")
            for target, idx in targets:
                record = _record(f, meta, idx, split, in_ch + out_ch, shard=meta.shard)
                target.parent.mkdir(parents=True, exist_ok=True)
                _atomic(target, lambda tmp, idx=idx, record=record, target=target:
                        _write_neuralop(tmp, target.suffix.lower(), x[idx], y[idx], record,
                                        None if split is None else split[idx]))
        else:
            data = {p: f[p][...] for p in field_paths(meta)}
            names = _well_names(meta)
            for target, idx in targets:
                channels = [(p, 1) for p in field_paths(meta)]
                record = _record(f, meta, idx, split, channels, well_names=names,
                                 shard=meta.shard)
                target.parent.mkdir(parents=True, exist_ok=True)
                _atomic(target, lambda tmp, idx=idx, record=record:
                        _write_well(tmp, meta, f, data, idx, names, record))
    return [p for p, _ in targets]


def _write_neuralop(tmp: Path, suffix: str, x: np.ndarray, y: np.ndarray,
                    record: dict[str, Any], split: np.ndarray | None) -> None:
    if x.shape[1] == 1 and y.shape[1] == 1:  # PTDataset's channels_squeezed applies to both
        x, y = x[:, 0], y[:, 0]
    text = json.dumps(record, sort_keys=True)
    if suffix in (".h5", ".hdf5"):
        with h5py.File(tmp, "w") as w:
            w.create_dataset("x", data=x)
            w.create_dataset("y", data=y)
            if split is not None:
                w.create_dataset("split", data=split)
            w.attrs[META_KEY] = text
        return
    import torch

    with open(tmp, "wb") as fh:
        torch.save({"x": torch.from_numpy(np.ascontiguousarray(x)),
                    "y": torch.from_numpy(np.ascontiguousarray(y)), META_KEY: text}, fh)


def _well_names(meta: Meta) -> dict[str, str]:
    clash = set(meta.input_fields) & set(meta.output_fields)
    return {p: (("in_" if p.startswith("inputs/") else "out_") + p.split("/", 1)[1]
                if p.split("/", 1)[1] in clash else p.split("/", 1)[1])
            for p in field_paths(meta)}


def _strings(values: list[str]) -> np.ndarray:
    return np.array(values, dtype=h5py.string_dtype())


def _write_well(tmp: Path, meta: Meta, f: h5py.File, data: dict[str, np.ndarray],
                idx: np.ndarray, names: dict[str, str], record: dict[str, Any]) -> None:
    grid, axes = meta.grid, list(meta.grid.axis_names)
    temporal = bool(meta.temporal_fields)
    times = meta.times if temporal else [0.0]
    numeric = {k: v for k, v in meta.params.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)}
    with h5py.File(tmp, "w") as w:
        w.attrs["dataset_name"] = meta.problem
        w.attrs["grid_type"] = "cartesian"
        w.attrs["n_spatial_dims"] = grid.dim
        w.attrs["n_trajectories"] = len(idx)
        w.attrs["simulation_parameters"] = _strings(sorted(numeric))
        for k, v in numeric.items():
            if k not in w.attrs:
                w.attrs[k] = v
        w.attrs[META_KEY] = json.dumps(record, sort_keys=True)
        dims = w.create_group("dimensions")
        dims.attrs["spatial_dims"] = _strings(axes)
        t = dims.create_dataset("time", data=np.asarray(times, dtype=np.float32))
        t.attrs["sample_varying"] = False
        for a in axes:
            c = dims.create_dataset(a, data=np.asarray(f[f"coords/{a}"][...], dtype=np.float32))
            c.attrs["sample_varying"] = False
            c.attrs["time_varying"] = False
        bcs = w.create_group("boundary_conditions")
        for k, a in enumerate(axes):
            periodic = grid.bc[k] == "periodic"
            g = bcs.create_group(f"{a}_{'periodic' if periodic else 'wall'}")
            g.attrs["associated_dims"] = _strings([a])
            g.attrs["associated_fields"] = _strings([])
            g.attrs["bc_type"] = "PERIODIC" if periodic else "WALL"
            g.attrs["sample_varying"] = False
            g.attrs["time_varying"] = False
            mask = np.zeros(grid.shape[k], dtype=bool)
            mask[[0, -1]] = True
            g.create_dataset("mask", data=mask)
            if not periodic:  # Dirichlet: u = 0 on the wall
                g.create_dataset("values", data=np.zeros(int(mask.sum()), dtype=np.float32))
        scalars = w.create_group("scalars")
        scalars.attrs["field_names"] = _strings(sorted(numeric))
        for k, v in numeric.items():
            s = scalars.create_dataset(k, data=np.float32(v))
            s.attrs["sample_varying"] = False
            s.attrs["time_varying"] = False
        t0 = w.create_group("t0_fields")
        t0.attrs["field_names"] = _strings([names[p] for p in field_paths(meta)])
        for p in field_paths(meta):
            group, name = p.split("/", 1)
            values = data[p][idx]
            time_varying = name in meta.temporal_fields or (group == "outputs" and not temporal)
            if time_varying and name not in meta.temporal_fields:
                values = values[:, None]  # a one-snapshot trajectory
            ds = t0.create_dataset(names[p], data=values.astype(np.float32))
            ds.attrs["dim_varying"] = np.ones(grid.dim, dtype=bool)
            ds.attrs["sample_varying"] = True
            ds.attrs["time_varying"] = time_varying
            ds.attrs["role"] = "input" if group == "inputs" else "output"
            for k, v in f[p].attrs.items():
                if k in ("units", "description"):
                    ds.attrs[k] = str(v)
        for order in (1, 2):
            w.create_group(f"t{order}_fields").attrs["field_names"] = _strings([])
