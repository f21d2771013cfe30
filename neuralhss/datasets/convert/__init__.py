"""Import datasets from other formats into neuralhss schema-v1 files (``neuralhss convert``).

Supported sources (anything else is refused with a one-line ``ValueError`` naming what was
found):

**neuraloperator** (``fmt="neuralop"``)
    ``.pt`` files holding a dict with tensors ``x`` (input) and ``y`` (output), loaded with
    ``torch.load(weights_only=True)``; or ``.h5``/``.hdf5`` files with datasets ``x`` and ``y``
    (the layout of neuraloperator's ``H5pyDataset``). By default each tensor is read by its
    number of axes: ``(N, n)`` 1-D, ``(N, H, W)`` 2-D (the "squeezed" single channel of
    neuraloperator's Darcy files), ``(N, C, H, W)`` 2-D with a channel axis, ``(N, C, D, H, W)``
    3-D. A 3-D grid must therefore carry its channel axis (or give ``grid``).

    *Trajectories.* An output with one axis more than its input, over the input's grid, is a
    trajectory: the input is the initial state and the output holds T snapshots,
    ``x (N, n)`` with ``y (N, T, n)`` (neuraloperator's time-dependent Burgers set), or with
    channel axes ``x (N, C, *grid)``, ``y (N, C', T, *grid)``. Each output channel becomes a
    trajectory field ``(T, *grid)`` with ``/coords/t``, so ``PDEDataset(..., time_index=-1)``
    (``neuralhss train --time-index -1``) learns the final state and the default learns every
    snapshot (as channels). Times come from an optional ``t`` entry of the file (T increasing
    values); without one, **the snapshot numbers 1, ..., T are the times** (the input being
    time 0), and the file's ``params``/``converted_from`` say so (``time_coordinate``). By
    axis count alone a 2-D input ``(N, H, W)`` with an output ``(N, K, H, W)`` reads, as
    before, as K output channels (the conversion notes it); ``channel_axis="none"`` or
    ``grid=(H, W)`` reads K as time.

    *Channel axis and grid* (``channel_axis``, ``grid``; ``--channel-axis``, ``--grid``).
    neuraloperator's convention is ``(N, C, *grid)``, the channel axis at position 1, the same
    for ``x`` and ``y`` (its ``PTDataset`` squeezes or unsqueezes both). ``channel_axis=1``
    says both tensors have it, ``"none"`` that neither has (``y`` may add a time axis in
    either case); ``grid`` gives the spatial shape, the trailing axes of both tensors, and what
    lies between the sample axis and it in ``x`` (nothing, or one channel axis) decides the
    rest. A spatial axis of size 1 is refused at conversion, naming the option that fixes it:
    ``(N, 1, n)`` by axis count would be a 1×n 2-D grid, while it is 1-D data with a channel
    axis (``--channel-axis 1`` or ``--grid n``). The options apply to neuraloperator sources
    only and not to our own exports (whose layout is recorded).

    Fields are named ``input``/``output`` (``input_0``, ... for several channels) unless
    ``inputs``/``outputs`` name them (one name per channel, or one name that gets ``_0``,
    ``_1``... appended). Boolean masks become 0.0/1.0. Complex tensors are never cut to their
    real part: each complex channel becomes two real fields, ``<name>_re`` and ``<name>_im``
    (e.g. ``input_re``, ``input_im``). The files store no coordinates: the grid is the unit box
    with our node convention (neuralhss.grid), Dirichlet unless ``bc`` says otherwise.

**PDEBench** (``fmt="pdebench"``), HDF5:
    (a) ``tensor`` ``(N, n_t, *grid)`` (one variable, named ``u``) or ``(N, n_t, *grid, C)``
        (variables ``u_0`` ... ``u_{C-1}``; ``u`` selects them all) with ``x-coordinate``
        [``y-``, ``z-coordinate``] and ``t-coordinate`` (1-D advection, Burgers,
        reaction-diffusion...);
    (b) Darcy: ``nu`` ``(N, *grid)`` (input ``nu``) and ``tensor`` ``(N, 1, *grid)`` (output
        ``u``) with ``x-``/``y-coordinate``;
    (c) compressible Navier-Stokes ("CFD"): ``density``, ``pressure``, ``Vx`` [``Vy``, ``Vz``]
        each ``(N, n_t, *grid)`` with the coordinate datasets;
    (d) one group per sample (``"0000"``, ``"0001"``, ...) with ``data`` ``(n_t, *grid, C)``
        (or ``(n_t, *grid)``) and ``grid/x`` [``grid/y``, ``grid/z``], ``grid/t``
        (2-D diffusion-reaction, shallow water, 1-D diffusion-sorption...).
    A time coordinate one longer than the snapshots (some PDEBench generators store the end
    time as well) is cut to the snapshots. PDEBench files do not state boundary conditions:
    names containing ``advection``, ``burgers``, ``reacdiff`` or ``periodic`` are periodic,
    others Dirichlet; ``bc`` overrides.

**The Well** (``fmt="thewell"``), HDF5 files (or a dataset folder with ``data/train``,
``data/valid``, ``data/test``): root attributes ``n_spatial_dims``, ``n_trajectories``,
``grid_type`` (only ``"cartesian"``), ``dataset_name``; ``dimensions`` (``time`` and the
coordinates named by its ``spatial_dims`` attribute), ``boundary_conditions`` (an axis is
periodic when all its conditions have ``bc_type`` PERIODIC, else Dirichlet), ``t0_fields``
(scalar fields, named as in the file), ``t1_fields`` (vector fields, one field per component
``<name>_<dim>``, e.g. ``velocity_x``), ``t2_fields`` (``<name>_<dim><dim>``) and
``scalars``. Fields that are constant in time or across samples, or that do not vary along
some axes (``dim_varying``), are broadcast. Scalars can be chosen as inputs (broadcast over the
grid); they are never selected by default. Time-varying grids and sample-varying coordinates
are refused.

Trajectory sources (PDEBench a, c, d and The Well): the input is each chosen variable at
snapshot ``input_step`` (default 0), stored as ``<name>_t<k>`` (e.g. ``u_t0``), plus the
fields that are constant in time under their own name; the output is the trajectory of the
later snapshots (``/coords/t`` holds their times) or, with ``output_step``, the one snapshot at
that step (a stationary field named ``<name>``). ``inputs``/``outputs`` choose the variables by
their source names (a vector field's name selects all its components).

**Coordinates and grid.** Source coordinates are stored in ``/coords`` as given; when they are
not our node convention (``Grid.coords``), the root attribute ``coords_source`` names the
format (schema.py). The ``Grid`` gets the shape, the boundary conditions and lengths matching
the source node spacing ``h`` (``n*h`` periodic, ``(n+1)*h`` Dirichlet).

**Train/test.** A source file's role comes from its name (a ``train``/``test``/``valid``
token, e.g. ``darcy_train_16.pt``, ``..._Train.hdf5``) or its folder (``train/``, ``test/``,
``valid/``). When the chosen sources hold both train and test data, the file gets ``/split``
(0 train, 1 test), which ``PDEDataset`` honours; The Well's ``valid`` data goes to train by
default (``valid="test"`` or ``"drop"``). Sources must share one grid: files of another
resolution are refused (convert them separately).

**Provenance.** ``params`` records the format, the file names with their sha256, the layout and
the options, so the conversion can be re-run and checked; the same record is the root attribute
``converted_from``. ``seed`` is 0 (the schema needs a non-negative integer; the data was not
drawn by neuralhss). Files written by :mod:`neuralhss.datasets.export` carry their original
metadata (a ``neuralhss`` JSON entry), and converting them back restores it exactly: problem,
params, seed, grid, field names, coordinates, times, sample order and split.

**Refused** (``ValueError``, one line): a layout other than the above (the message lists what
the file holds and the supported variants; e.g. PDEBench's incompressible Navier-Stokes files
with ``velocity``/``force``/``particles``), sources that disagree in grid, fields, times,
coordinates or boundary conditions, a mix of files with and without a train/test name, field
names reserved for coordinates and bookkeeping (``x``, ``y``, ``z``, ``t``, ``sample``,
``done``, ``split``) or used as both input and output, non-finite values, a spatial axis of
size 1 (neuraloperator: the message names ``--channel-axis``/``--grid``). An existing output
file is a ``FileExistsError``; an interrupted conversion leaves no output file.
Source files are read one sample at a time (neuraloperator ``.pt`` files whole) and hashed once.

Each format is read by its own module (``neuralop``, ``pdebench``, ``the_well``: an
``open_source`` function and the file ``EXTENSIONS``); this package checks and writes what they
parse.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...grid import AXIS_NAMES, Grid
from ..generation import package_version, write_hdf5
from ..schema import Meta
from . import neuralop, pdebench, the_well
from ._common import META_KEY, Options, Source, role_of, sha256_of

__all__ = ["FORMATS", "META_KEY", "RESERVED_NAMES", "VALID_POLICIES", "ConvertResult", "convert",
           "sha256_of"]

FORMATS = ("neuralop", "pdebench", "thewell")
RESERVED_NAMES = frozenset({"x", "y", "z", "t", "sample", "done", "split"})
VALID_POLICIES = ("train", "test", "drop")
_IMPORTERS = {"neuralop": neuralop, "pdebench": pdebench, "thewell": the_well}


@dataclass
class ConvertResult:
    """What :func:`convert` wrote."""

    path: Path
    n_samples: int
    n_train: int | None
    n_test: int | None
    sources: list[str]
    notes: list[str] = field(default_factory=list)  # readings worth a second look


def _expand(sources: Sequence[str | os.PathLike], fmt: str) -> list[Path]:
    exts = _IMPORTERS[fmt].EXTENSIONS
    files: list[Path] = []
    for s in sources:
        p = Path(s)
        if not p.exists():
            raise FileNotFoundError(f"{p} does not exist")
        if not p.is_dir():
            files.append(p)
            continue
        dirs = [p]
        for base in (p / "data", p):  # The Well: DATASET/data/{train,valid,test}/*.hdf5
            found = [base / r for r in ("train", "valid", "test") if (base / r).is_dir()]
            if found:
                dirs = found
                break
        found_files = [f for d in dirs for f in sorted(d.iterdir())
                       if f.is_file() and f.suffix.lower() in exts]
        if not found_files:
            raise ValueError(f"{p} holds no {'/'.join(exts)} files for --from {fmt}")
        files.extend(found_files)
    if len(set(files)) != len(files):
        raise ValueError("a source file is given twice; give each file once")
    return files


def _grid(shape: tuple[int, ...], coords: dict[str, np.ndarray] | None,
          bc: tuple[str, ...] | None) -> tuple[Grid, dict[str, list[float]] | None]:
    """Grid with the source node spacing, and the coordinates to store (``None``: ours)."""
    bc = bc or ("dirichlet",) * len(shape)
    if len(bc) == 1 and len(shape) > 1:
        bc = bc * len(shape)
    if coords is None:
        return Grid(shape, 1.0, bc), None
    lengths = []
    for axis, name in enumerate(AXIS_NAMES[:len(shape)]):
        c, n = coords[name], shape[axis]
        h = abs(float(c[-1] - c[0])) / (n - 1) if n > 1 else 1.0
        if not np.isfinite(h) or h <= 0:
            raise ValueError(f"coordinates of axis {name!r} are not increasing: {c[:4]}...")
        lengths.append(n * h if bc[axis] == "periodic" else (n + 1) * h)
    grid = Grid(shape, tuple(lengths), bc)
    ours = all(np.allclose(coords[a], grid.coords(k), rtol=0, atol=1e-9 * grid.lengths[k])
               for k, a in enumerate(grid.axis_names))
    return grid, None if ours else {a: coords[a].tolist() for a in grid.axis_names}


def _parse_bc(bc: str | Sequence[str] | None) -> tuple[str, ...] | None:
    if bc is None:
        return None
    values = tuple(b.strip().lower() for b in (bc.split(",") if isinstance(bc, str) else bc))
    bad = [b for b in values if b not in ("periodic", "dirichlet")]
    if bad or not values:
        raise ValueError(f"bc={bc!r}; use periodic or dirichlet (one, or one per axis, "
                         "comma-separated)")
    return values


def _parse_grid(grid: int | Sequence[int] | None) -> tuple[int, ...] | None:
    if grid is None:
        return None
    values = (grid,) if isinstance(grid, (int, np.integer)) else tuple(grid)
    try:
        shape = tuple(int(v) for v in values)
    except (TypeError, ValueError):
        raise ValueError(f"grid={grid!r}; give the spatial shape as integers (--grid 64, "
                         "--grid 16 16)") from None
    if not 1 <= len(shape) <= 3 or any(n < 1 for n in shape):
        raise ValueError(f"grid={grid!r}; give the spatial shape, 1 to 3 positive sizes "
                         "(--grid 64, --grid 16 16)")
    if 1 in shape:
        kept = " ".join(str(n) for n in shape if n != 1) or "N"
        raise ValueError(f"grid {shape} has a spatial axis of size 1; give the spatial shape "
                         f"without it (--grid {kept})")
    return shape


def _parse_channel_axis(channel_axis: int | str | None) -> bool | None:
    """``True``: axis 1 holds channels; ``False``: no channel axis; ``None``: by rank."""
    if isinstance(channel_axis, str) and channel_axis.strip().lower() in ("auto", "none", "1"):
        channel_axis = {"auto": "auto", "none": None, "1": 1}[channel_axis.strip().lower()]
    if channel_axis == "auto":
        return None
    if channel_axis is None:
        return False
    if isinstance(channel_axis, (int, np.integer)) and not isinstance(channel_axis, bool) \
            and channel_axis == 1:
        return True
    raise ValueError(f"channel_axis={channel_axis!r}; use 1 (neuraloperator's (n, C, *grid)), "
                     "none (no channel axis) or auto")


def _check_same(sources: list[Source]) -> None:
    a = sources[0]
    for b in sources[1:]:
        if b.grid_shape != a.grid_shape:
            raise ValueError(f"{b.path.name} has grid {b.grid_shape} but {a.path.name} has "
                             f"{a.grid_shape}; a file holds one resolution: convert them "
                             "separately")
        if (list(b.inputs), list(b.outputs)) != (list(a.inputs), list(a.outputs)):
            raise ValueError(f"{b.path.name} has fields {list(b.inputs)} -> {list(b.outputs)} "
                             f"but {a.path.name} {list(a.inputs)} -> {list(a.outputs)}")
        if (a.times is None) != (b.times is None) or (
                a.times is not None and not np.allclose(a.times - a.times[0],
                                                        b.times - b.times[0])):
            raise ValueError(f"{b.path.name} and {a.path.name} have other snapshot times")
        for name, ca in (a.coords or {}).items():
            cb = (b.coords or {}).get(name)
            if cb is None or not np.allclose(ca, cb):
                raise ValueError(f"{b.path.name} and {a.path.name} have other {name} "
                                 "coordinates")
        if b.bc != a.bc:
            raise ValueError(f"{b.path.name} has boundary conditions {b.bc} but {a.path.name} "
                             f"{a.bc}")
        if (a.meta is None) != (b.meta is None) or (
                a.meta is not None and _identity(a.meta) != _identity(b.meta)):
            raise ValueError(f"{b.path.name} and {a.path.name} come from different neuralhss "
                             "datasets")


def _identity(meta: dict[str, Any]) -> tuple:
    return tuple(json.dumps(meta.get(k), sort_keys=True)
                 for k in ("problem", "params", "seed", "grid", "n_samples"))


def convert(sources: str | os.PathLike | Sequence[str | os.PathLike], out: str | os.PathLike,
            fmt: str, *, inputs: Sequence[str] | None = None,
            outputs: Sequence[str] | None = None, input_step: int = 0,
            output_step: int | None = None, bc: str | Sequence[str] | None = None,
            valid: str = "train", grid: int | Sequence[int] | None = None,
            channel_axis: int | str | None = "auto", progress: bool = False) -> ConvertResult:
    """Convert files of another format into one schema-v1 file (module docstring).

    Parameters
    ----------
    sources : path or paths
        Source files (or folders of them) in format ``fmt``, all on the same grid.
    out : path
        The ``.h5`` file to write; must not exist. Written through ``out.partial`` and an
        atomic rename.
    fmt : {"neuralop", "pdebench", "thewell"}
    inputs, outputs : names, optional
        neuraloperator: names of the ``x`` and ``y`` channels; PDEBench/The Well: the source
        variables to use as inputs and outputs.
    input_step : int, default 0
        Snapshot of the input variables (trajectory sources; negative counts from the end).
    output_step : int, optional
        Use only this snapshot as the (stationary) output instead of the later trajectory.
    bc : "periodic", "dirichlet" or one per axis, optional
        Override the boundary conditions read or guessed from the source.
    valid : {"train", "test", "drop"}, default "train"
        Where The Well's (or any source named) ``valid`` data goes.
    grid : int or sequence of int, optional
        neuraloperator: the spatial shape (``64``, ``(16, 16)``); the axes of ``x`` before it
        are the sample axis and at most one channel axis, ``y`` may add a time axis.
    channel_axis : 1, "none" (or ``None``) or "auto", default "auto"
        neuraloperator: whether ``x`` and ``y`` carry a channel axis at position 1 (``1``) or
        none; ``"auto"`` reads it from their number of axes (module docstring).

    Returns
    -------
    ConvertResult

    Raises
    ------
    FileExistsError
        If ``out`` exists.
    ValueError
        Unknown format or layout, sources that disagree (grid, fields, times), bad options,
        non-finite values.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown source format {fmt!r}; use one of {', '.join(FORMATS)}")
    if valid not in VALID_POLICIES:
        raise ValueError(f"valid={valid!r}; use one of {', '.join(VALID_POLICIES)}")
    grid_shape, chan = _parse_grid(grid), _parse_channel_axis(channel_axis)
    if fmt != "neuralop" and (grid_shape is not None or chan is not None):
        raise ValueError(f"--grid and --channel-axis apply to --from neuralop only ({fmt} files "
                         "name their axes)")
    out = Path(out)
    if out.suffix not in (".h5", ".hdf5"):
        raise ValueError(f"output {out} should end in .h5 or .hdf5")
    if out.exists():
        raise FileExistsError(f"{out} exists; choose another output path or delete it")
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    files = _expand(sources, fmt)
    if not files:
        raise ValueError("convert needs at least one source file")
    opts = Options(list(inputs) if inputs else None, list(outputs) if outputs else None,
                   int(input_step), None if output_step is None else int(output_step),
                   _parse_bc(bc), grid_shape, chan)
    opened: list[Source] = []
    try:
        for p in files:
            opened.append(_IMPORTERS[fmt].open_source(p, role_of(p), opts))
        if opened[0].meta is not None and (opts.inputs or opts.outputs or opts.bc or opts.grid
                                           or opts.channel_axis is not None):
            raise ValueError(f"{opened[0].path.name} was exported by neuralhss and converts back "
                             "as it was; --input/--output/--bc/--grid/--channel-axis do not "
                             "apply")
        for s in opened:
            if s.bc is None:
                s.bc, s.bc_origin = (opts.bc or ("dirichlet",) * len(s.grid_shape),
                                     "given (--bc)" if opts.bc else "default")
            if len(s.bc) == 1:
                s.bc = s.bc * len(s.grid_shape)
            if len(s.bc) != len(s.grid_shape):
                raise ValueError(f"bc {s.bc} has {len(s.bc)} entries for the "
                                 f"{len(s.grid_shape)} axes of {s.path.name}")
        _check_same(opened)
        return _write(opened, out, fmt, opts, valid, progress)
    finally:
        for s in opened:
            s.close()


def _write(sources: list[Source], out: Path, fmt: str, opts: Options, valid: str,
           progress: bool) -> ConvertResult:
    first = sources[0]
    names = [*first.inputs, *first.outputs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"field name(s) {dup} would be both an input and an output; name them "
                         "apart (--input/--output)")
    bad = sorted(RESERVED_NAMES & set(names))
    if bad:
        raise ValueError(f"field name(s) {bad} are reserved for coordinates and bookkeeping "
                         f"({', '.join(sorted(RESERVED_NAMES))}); choose others "
                         "(--input/--output)")
    empty = [str(s.path) for s in sources if s.n == 0]
    if empty:
        raise ValueError(f"{', '.join(empty)} hold(s) no samples (0 along the sample axis); "
                         "leave empty files out of the conversion")
    files = [{"file": s.path.name, "sha256": sha256_of(s.path), "split": s.role,
              "n_samples": s.n} for s in sources]
    record: dict[str, Any] = {"format": fmt, "files": files, **first.info}
    if first.meta is not None:
        # Our own export: restore its sample order and split.
        order = []
        for k, s in enumerate(sources):
            idx = s.meta.get("indices") or list(range(s.n))
            flags = s.meta.get("split") or [None] * s.n
            if len(idx) != s.n or len(flags) != s.n:
                raise ValueError(f"{s.path}: its metadata lists {len(idx)} samples, the file "
                                 f"holds {s.n}")
            order.extend((i, k, j, flags[j]) for j, i in enumerate(idx))
        order.sort()
        if len({o[0] for o in order}) != len(order):
            raise ValueError("the sources hold the same samples twice; give each part once")
        pairs = [(k, j) for _, k, j, _ in order]
        flags = [o[3] for o in order]
        split_values = flags if set(flags) == {0, 1} else None
    else:
        kept = []
        for k, s in enumerate(sources):
            role = valid if s.role == "valid" else s.role
            if role != "drop":
                kept.append((k, role))
        roles = {r for _, r in kept}
        if None in roles and len(roles) > 1:
            unnamed = [sources[k].path.name for k, r in kept if r is None]
            raise ValueError(f"cannot tell whether {unnamed} are train or test data (no "
                             "train/test/valid in the name or folder); convert them separately")
        if not kept:
            raise ValueError("valid='drop' leaves no sources to convert")
        pairs = [(k, j) for k, _ in kept for j in range(sources[k].n)]
        split_values = ([int(r == "test") for k, r in kept for _ in range(sources[k].n)]
                        if roles == {"train", "test"} else None)
        record["valid"] = valid
    record["options"] = {"input": opts.inputs, "output": opts.outputs,
                         "input_step": opts.input_step, "output_step": opts.output_step,
                         "bc": list(opts.bc) if opts.bc else None}
    if opts.grid is not None:
        record["options"]["grid"] = list(opts.grid)
    if opts.channel_axis is not None:
        record["options"]["channel_axis"] = 1 if opts.channel_axis else "none"
    meta = _meta(sources, record, len(pairs), split_values)

    def get_sample(i: int) -> dict[str, np.ndarray]:
        k, j = pairs[i]
        s = sources[k]
        sample = {}
        for name, read in (*s.inputs.items(), *s.outputs.items()):
            v = np.asarray(read(j), dtype=np.float32)
            shape = meta.field_shape(name)
            if v.shape != shape:
                raise ValueError(f"{s.path}: sample {j} of {name} has shape {v.shape}, expected "
                                 f"{shape}")
            if not np.isfinite(v).all():
                raise ValueError(f"{s.path}: sample {j} of {name} has non-finite values; fix or "
                                 "drop it before converting")
            sample[name] = v
        return sample

    out.parent.mkdir(parents=True, exist_ok=True)
    write_hdf5(out, meta, get_sample, progress=progress, desc="converting")
    n_test = None if split_values is None else int(sum(split_values))
    return ConvertResult(out, len(pairs), None if n_test is None else len(pairs) - n_test,
                         n_test, [str(s.path) for s in sources],
                         [first.info["note"]] if "note" in first.info else [])


def _meta(sources: list[Source], record: dict[str, Any], n_samples: int,
          split_values: list[int] | None) -> Meta:
    first = sources[0]
    em = first.meta
    if em is not None:  # restore the original dataset's description
        attrs = dict(em.get("attrs") or {})
        if "converted_from" in attrs:
            record = {**record, "previous": json.loads(attrs["converted_from"])}
        attrs["converted_from"] = json.dumps(record, sort_keys=True)
        coords_source = em.get("coords_source")
        return Meta(
            problem=em["problem"], params=em["params"], seed=int(em["seed"]),
            n_samples=n_samples, grid=Grid.from_dict(em["grid"]),
            input_fields=list(em["input_fields"]), output_fields=list(em["output_fields"]),
            package_version=package_version(), field_attrs=em.get("field_attrs") or {},
            times=em.get("times"), temporal_fields=list(em["temporal_fields"]),
            coords=em.get("coords") if coords_source else None, coords_source=coords_source,
            split=split_values, attrs=attrs)
    grid, coords = _grid(first.grid_shape, first.coords, first.bc)
    record["bc"] = {a: f"{b} ({first.bc_origin})" for a, b in zip(grid.axis_names, grid.bc,
                                                                   strict=True)}
    record["coordinates"] = ("none in the source: neuralhss node convention" if first.coords is None
                             else "as stored in the source" + ("" if coords else
                                                               " (equal to the node convention)"))
    fmt = record["format"]
    return Meta(
        problem=f"{fmt}:{first.name}", params=record, seed=0, n_samples=n_samples, grid=grid,
        input_fields=list(first.inputs), output_fields=list(first.outputs),
        package_version=package_version(),
        field_attrs={n: {"description": f"converted from {fmt} ({first.name})"}
                     for n in [*first.inputs, *first.outputs]},
        times=None if first.times is None else [float(t) for t in first.times],
        temporal_fields=list(first.temporal), coords=coords,
        coords_source=fmt if coords is not None else None, split=split_values,
        attrs={"converted_from": json.dumps(record, sort_keys=True)})
