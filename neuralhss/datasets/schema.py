"""The HDF5 dataset schema (version 1; ``docs/datasets.md``) and its validation.

::

    /                 attrs: format="neuralhss", schema_version=1, problem, params (JSON), seed,
                             package_version, n_samples, grid (JSON), input_fields (JSON list),
                             output_fields (JSON list), temporal_fields (JSON list),
                             [shard="I/N" in shard files], [coords_source], [converted_from]
    /coords/<axis>    float64 (n_axis,), HDF5 dimension scales named after the axis
    /coords/t         float64 (n_t,) snapshot times, in files with trajectory fields
    /inputs/<field>   float32 (n_samples, *grid), one chunk per sample, gzip (level 1) + shuffle
                      by default (``COMPRESSIONS``: lzf + shuffle or none on request)
    /outputs/<field>  float32 (n_samples, *grid) or, for a trajectory, (n_samples, n_t, *grid)
                      with one chunk per snapshot
    /done             bool (n_samples,)  which samples are complete
    /split            optional uint8 (n_samples,)  0 = train, 1 = test (files that define a split)

Field datasets carry ``units`` and ``description`` attributes and their dimension scales, so
generic HDF5 tools and xarray see named dimensions (``sample``, ``x``, ``y``, ``z``).

Optional, for data imported from other formats (``neuralhss convert``); files without them read
as before:

- ``coords_source`` (root attribute, str): the ``/coords/<axis>`` values were given by that
  source (e.g. ``"pdebench"``: cell centres) and are *not* the grid's own node coordinates
  (``Grid.coords``); the grid then only carries the shape, the boundary conditions and lengths
  with the source's node spacing. Each such coordinate dataset has ``convention=<source>``.
  Absent: ``/coords`` equal ``Grid.coords`` (the neuralhss.grid convention).
- ``converted_from`` (root attribute, JSON): where imported data came from (format, file names
  and their sha256, the conversion options). Any other extra root attribute is kept as a
  string in :attr:`Meta.attrs` and written back by :func:`create_layout` (``merge`` keeps it).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..grid import Grid

FORMAT = "neuralhss"
SCHEMA_VERSION = 1
REQUIRED_ATTRS = ("format", "schema_version", "problem", "params", "seed", "n_samples")
#: Root attributes with a meaning of their own; any other one lands in ``Meta.attrs``.
KNOWN_ATTRS = (*REQUIRED_ATTRS, "package_version", "grid", "input_fields", "output_fields",
               "temporal_fields", "shard", "coords_source")


@dataclass
class Meta:
    """What a dataset file is: enough to regenerate it bit for bit."""

    problem: str
    params: dict[str, Any]
    seed: int
    n_samples: int
    grid: Grid
    input_fields: list[str]
    output_fields: list[str]
    shard: tuple[int, int] | None = None
    package_version: str = ""
    field_attrs: dict[str, dict[str, str]] = field(default_factory=dict)
    times: list[float] | None = None
    temporal_fields: list[str] = field(default_factory=list)
    #: Coordinates written to ``/coords/<axis>`` instead of ``grid.coords`` (imported data whose
    #: coordinates are not our node convention); needs ``coords_source``.
    coords: dict[str, list[float]] | None = None
    coords_source: str | None = None
    #: Train/test membership (0 = train, 1 = test) written to ``/split``; ``None``: no split.
    split: list[int] | None = None
    #: Extra root attributes (strings), e.g. ``converted_from``.
    attrs: dict[str, str] = field(default_factory=dict)

    def field_shape(self, name: str) -> tuple[int, ...]:
        """Shape of one sample of field ``name``: ``grid`` or ``(n_t, *grid)`` for a trajectory."""
        if name in self.temporal_fields:
            if self.times is None:
                raise ValueError(f"field {name!r} is a trajectory but the file has no /coords/t")
            return (len(self.times), *self.grid.shape)
        return self.grid.shape

    def identity(self) -> dict[str, Any]:
        """The parts that must match for a file to be resumed or merged."""
        return {"problem": self.problem, "params": self.params, "seed": self.seed,
                "n_samples": self.n_samples}


def _attr_str(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def read_meta(f: h5py.File) -> Meta:
    """Read and validate the root attributes of an open file.

    Raises
    ------
    ValueError
        If the file is not a neuralhss schema-v1 file.
    """
    attrs = f.attrs
    if _attr_str(attrs.get("format", "")) != FORMAT:
        raise ValueError(f"{f.filename} is not a neuralhss dataset (no format='neuralhss' "
                         "attribute); convert it first (neuralhss convert)")
    version = int(attrs.get("schema_version", -1))
    if version != SCHEMA_VERSION:
        raise ValueError(f"{f.filename} has schema_version={version}; this neuralhss reads "
                         f"version {SCHEMA_VERSION}")
    missing = [k for k in REQUIRED_ATTRS if k not in attrs]
    if missing:
        raise ValueError(f"{f.filename} lacks root attribute(s) {missing}")
    if "grid" in attrs:
        grid = Grid.from_dict(json.loads(_attr_str(attrs["grid"])))
    else:  # Files from other writers: infer from the coordinates, Dirichlet by default.
        axes = [a for a in ("x", "y", "z") if f"coords/{a}" in f]
        grid = Grid(tuple(f[f"coords/{a}"].shape[0] for a in axes))

    def names(key: str, group: str) -> list[str]:
        if key in attrs:
            return list(json.loads(_attr_str(attrs[key])))
        return sorted(f[group]) if group in f else []

    times = [float(t) for t in f["coords/t"][...]] if "coords/t" in f else None
    if "temporal_fields" in attrs:
        temporal = list(json.loads(_attr_str(attrs["temporal_fields"])))
    else:  # Other writers: a field with one more axis than the grid is a trajectory.
        temporal = [name for group in ("inputs", "outputs") if group in f
                    for name in f[group] if f[group][name].ndim == grid.dim + 2]
    shard = None
    if "shard" in attrs:
        i, n = _attr_str(attrs["shard"]).split("/")
        shard = (int(i), int(n))
    coords_source = _attr_str(attrs["coords_source"]) if "coords_source" in attrs else None
    coords = None
    if coords_source is not None:
        coords = {a: [float(v) for v in f[f"coords/{a}"][...]] for a in grid.axis_names
                  if f"coords/{a}" in f}
    split = [int(v) for v in f["split"][...]] if "split" in f else None
    extra = {k: _attr_str(v) for k, v in attrs.items() if k not in KNOWN_ATTRS}
    return Meta(
        problem=_attr_str(attrs["problem"]),
        params=json.loads(_attr_str(attrs["params"])),
        seed=int(attrs["seed"]),
        n_samples=int(attrs["n_samples"]),
        grid=grid,
        input_fields=names("input_fields", "inputs"),
        output_fields=names("output_fields", "outputs"),
        shard=shard,
        package_version=_attr_str(attrs.get("package_version", "")),
        times=times,
        temporal_fields=temporal,
        coords=coords,
        coords_source=coords_source,
        split=split,
        attrs=extra,
    )


#: Chunk filters of the field datasets. ``gzip`` (level 1, after byte shuffling; the default)
#: is read by every HDF5 tool; ``lzf`` (after shuffling) is faster but is a filter of h5py
#: (h5py, and xarray through h5py/h5netcdf, read it; the netCDF-C library and h5dump do not);
#: ``none`` writes the float32 bytes as they are (fastest, largest).
COMPRESSIONS = ("gzip", "lzf", "none")


def filter_options(compression: str = "gzip", level: int = 1) -> dict[str, Any]:
    """``h5py.Group.create_dataset`` keywords of a :data:`COMPRESSIONS` filter."""
    if compression == "gzip":
        return {"compression": "gzip", "compression_opts": level, "shuffle": True}
    if compression == "lzf":
        return {"compression": "lzf", "shuffle": True}
    if compression == "none":
        return {}
    raise ValueError(f"compression={compression!r} is not one of {', '.join(COMPRESSIONS)}")


def compression_of(ds: h5py.Dataset) -> tuple[str, int]:
    """``(name, gzip level)`` of a field dataset's filter, as :func:`filter_options` takes them
    (``ValueError`` for a filter pipeline that neuralhss does not write)."""
    level = ds.compression_opts if ds.compression == "gzip" else 1
    name = ds.compression or "none"
    if name in COMPRESSIONS and filter_options(name, level) == {
            k: v for k, v in (("compression", ds.compression),
                              ("compression_opts", ds.compression_opts),
                              ("shuffle", ds.shuffle)) if v}:
        return name, int(level)
    raise ValueError(f"{ds.name} uses the filters {ds.compression!r} (shuffle={ds.shuffle}), "
                     "which neuralhss does not write")


def create_layout(f: h5py.File, meta: Meta, compression_level: int = 1,
                  compression: str = "gzip") -> None:
    """Create the empty schema-v1 layout in a new, open file.

    Datasets are chunked one sample per chunk; chunks never written take no space, which is
    what lets a shard file hold only its own samples. gzip level 1 with byte shuffling by
    default: smooth float32 fields compress little at any level, and level 1 costs a third less
    time than 4. ``compression`` is one of :data:`COMPRESSIONS`.
    """
    filters = filter_options(compression, compression_level)
    grid = meta.grid
    f.attrs["format"] = FORMAT
    f.attrs["schema_version"] = SCHEMA_VERSION
    f.attrs["problem"] = meta.problem
    f.attrs["params"] = json.dumps(meta.params, sort_keys=True)
    f.attrs["seed"] = int(meta.seed)
    f.attrs["package_version"] = meta.package_version
    f.attrs["n_samples"] = int(meta.n_samples)
    f.attrs["grid"] = json.dumps(grid.to_dict())
    f.attrs["input_fields"] = json.dumps(meta.input_fields)
    f.attrs["output_fields"] = json.dumps(meta.output_fields)
    f.attrs["temporal_fields"] = json.dumps(meta.temporal_fields)
    if meta.shard is not None:
        f.attrs["shard"] = f"{meta.shard[0]}/{meta.shard[1]}"
    for key, value in meta.attrs.items():
        if key in KNOWN_ATTRS:
            raise ValueError(f"extra attribute {key!r} would overwrite a schema attribute; "
                             "rename it")
        f.attrs[key] = str(value)
    if meta.coords is not None and meta.coords_source is None:
        raise ValueError("Meta.coords needs Meta.coords_source (who gave the coordinates)")
    if meta.coords_source is not None:
        f.attrs["coords_source"] = meta.coords_source
    scales = []
    for axis, name in enumerate(grid.axis_names):
        values = grid.coords(axis)
        if meta.coords is not None and name in meta.coords:
            values = np.asarray(meta.coords[name], dtype=np.float64)
            if values.shape != (grid.shape[axis],):
                raise ValueError(f"coordinates of axis {name!r} have shape {values.shape}, "
                                 f"the grid ({grid.shape[axis]},)")
        c = f.create_dataset(f"coords/{name}", data=values)
        c.attrs["units"] = "length"
        c.attrs["bc"] = grid.bc[axis]
        if meta.coords is not None and name in meta.coords:
            c.attrs["convention"] = meta.coords_source
        c.make_scale(name)
        scales.append(c)
    t_scale = None
    if meta.times is not None:
        t_scale = f.create_dataset("coords/t", data=np.asarray(meta.times, dtype=np.float64))
        t_scale.attrs["units"] = "time"
        t_scale.make_scale("t")
    for group, names in (("inputs", meta.input_fields), ("outputs", meta.output_fields)):
        for name in names:
            sample_shape = meta.field_shape(name)
            ds = f.create_dataset(
                f"{group}/{name}", shape=(meta.n_samples, *sample_shape), dtype=np.float32,
                chunks=(1,) * (1 + len(sample_shape) - grid.dim) + grid.shape,
                fillvalue=np.float32(np.nan), **filters,
            )
            for key, value in meta.field_attrs.get(name, {}).items():
                ds.attrs[key] = value
            ds.dims[0].label = "sample"
            first = 1
            if len(sample_shape) > grid.dim:
                ds.dims[1].attach_scale(t_scale)
                ds.dims[1].label = "t"
                first = 2
            for axis, scale in enumerate(scales):
                ds.dims[axis + first].attach_scale(scale)
                ds.dims[axis + first].label = grid.axis_names[axis]
    f.create_dataset("done", shape=(meta.n_samples,), dtype=bool, fillvalue=False)
    if meta.split is not None:
        split = np.asarray(meta.split)
        if split.shape != (meta.n_samples,) or not np.isin(split, (0, 1)).all():
            raise ValueError(f"split must hold {meta.n_samples} values 0 (train) or 1 (test), "
                             f"got shape {split.shape}")
        f.create_dataset("split", data=split.astype(np.uint8))


def field_paths(meta: Meta) -> list[str]:
    """HDF5 paths of all fields, inputs first, in channel order."""
    return [f"inputs/{n}" for n in meta.input_fields] + [f"outputs/{n}" for n in meta.output_fields]


@dataclass
class CheckReport:
    """Result of :func:`check_file`."""

    path: str
    meta: Meta
    n_done: int
    complete: bool
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        m = self.meta
        head = (f"{self.path}: {m.problem} {'x'.join(map(str, m.grid.shape))}, "
                f"{self.n_done}/{m.n_samples} samples done, fields "
                f"{m.input_fields} -> {m.output_fields}")
        if m.shard is not None:
            own = shard_range(m.n_samples, m.shard)
            head += (f", shard {m.shard[0]}/{m.shard[1]} holding samples {own.start}-"
                     f"{own.stop - 1} only (merge the {m.shard[1]} shards for the whole dataset)")
        if self.ok:
            return head + ": OK"
        return head + ": " + "; ".join(self.problems)


def shard_range(n_samples: int, shard: tuple[int, int] | None) -> range:
    """The contiguous sample indices that shard ``(I, N)`` owns (all samples for ``None``)."""
    if shard is None:
        return range(n_samples)
    i, n = shard
    return range(i * n_samples // n, (i + 1) * n_samples // n)


def check_file(path: str | Path, require_complete: bool = True) -> CheckReport:
    """Validate a dataset file: schema, shapes, completeness and finiteness.

    A shard file is complete when every sample of its own range is done.
    Samples are scanned one chunk at a time, so memory stays at one sample per field.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not HDF5 or not a neuralhss file (other defects are listed in the report).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise ValueError(f"{path} is not a readable HDF5 file ({exc})") from None
    with f:
        meta = read_meta(f)
        problems: list[str] = []
        for axis, name in enumerate(meta.grid.axis_names):
            key = f"coords/{name}"
            if key not in f:
                problems.append(f"missing {key}")
            elif f[key].shape != (meta.grid.shape[axis],):
                problems.append(f"{key} has shape {f[key].shape}, expected ({meta.grid.shape[axis]},)")
        paths = field_paths(meta)
        if not meta.input_fields or not meta.output_fields:
            problems.append("needs at least one input and one output field")
        if meta.temporal_fields and "coords/t" not in f:
            problems.append(f"trajectory fields {meta.temporal_fields} but no /coords/t")
            return CheckReport(str(path), meta, 0, False, problems)
        for p in paths:
            if p not in f:
                problems.append(f"missing field {p}")
                continue
            expected = (meta.n_samples, *meta.field_shape(p.split("/", 1)[1]))
            if f[p].shape != expected:
                problems.append(f"{p} has shape {f[p].shape}, expected {expected}")
        if "done" not in f or f["done"].shape != (meta.n_samples,):
            problems.append("missing or mis-shaped /done")
            return CheckReport(str(path), meta, 0, False, problems)
        done = f["done"][...]
        owned = np.zeros(meta.n_samples, dtype=bool)
        owned[shard_range(meta.n_samples, meta.shard).start:
              shard_range(meta.n_samples, meta.shard).stop] = True
        complete = bool(done[owned].all())
        if require_complete and not complete:
            missing = np.flatnonzero(owned & ~done)
            problems.append(f"{missing.size} sample(s) not done (first: {missing[:5].tolist()}); "
                            "re-run the generate command to resume")
        if not problems:
            bad = _first_nonfinite(f, paths, np.flatnonzero(done))
            if bad is not None:
                problems.append(f"non-finite values in {bad[0]} at sample {bad[1]}")
        if "split" in f and f["split"].shape != (meta.n_samples,):
            problems.append(f"/split has shape {f['split'].shape}, expected ({meta.n_samples},)")
        return CheckReport(str(path), meta, int(done.sum()), complete, problems)


def _first_nonfinite(f: h5py.File, paths: Sequence[str], indices: np.ndarray):
    for p in paths:
        ds = f[p]
        for i in indices:
            if not np.isfinite(ds[int(i)]).all():
                return p, int(i)
    return None
