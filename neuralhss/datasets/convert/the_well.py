"""The Well HDF5 files (layouts: the package docstring)."""

from __future__ import annotations

from collections.abc import Callable
from itertools import product
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ...grid import AXIS_NAMES
from ._common import (
    META_KEY,
    Options,
    Reader,
    Source,
    as_str,
    dataset_name,
    describe_h5,
    embedded_meta,
    parse_h5,
    str_list,
    trajectory_io,
)

EXTENSIONS = (".h5", ".hdf5")


def _well_reader(ds: h5py.Dataset, sample_varying: bool, time_varying: bool,
                 dim_varying: list[bool], comp: tuple[int, ...],
                 grid_shape: tuple[int, ...]) -> Callable[[int, Any], np.ndarray]:
    def read(j: int, t: Any = None) -> np.ndarray:
        idx: tuple = ()
        if sample_varying:
            idx += (j,)
        if time_varying:
            idx += (slice(None) if t is None else t,)
        if comp:
            idx += (Ellipsis, *comp)
        v = np.asarray(ds[idx] if idx else ds[()])
        lead = v.ndim - sum(dim_varying)
        for axis, varies in enumerate(dim_varying):
            if not varies:
                v = np.expand_dims(v, lead + axis)
        return np.broadcast_to(v, v.shape[:lead] + grid_shape)
    return read


def _attr_bool(obj: h5py.HLObject, key: str, default: bool = True) -> bool:
    return bool(obj.attrs[key]) if key in obj.attrs else default


def open_source(path: Path, role: str | None, opts: Options) -> Source:
    return parse_h5(path, role, opts, _well_layout)


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, bytes)):
        return as_str(value)
    a = np.asarray(value)
    if a.dtype.kind in "SOU":
        return [as_str(v) for v in a.ravel()] if a.ndim else as_str(a.item())
    return a.tolist()


def _well_from_meta(f: h5py.File, path: Path, role: str | None, meta: dict[str, Any]) -> Source:
    """A The Well file written by our exporter: the fields as they were (export.py)."""
    grid_shape = tuple(meta["grid"]["shape"])
    n = int(f.attrs["n_trajectories"])
    readers: dict[str, dict[str, Reader]] = {"inputs": {}, "outputs": {}}
    for entry, well_name in meta["well_names"].items():
        group, name = entry.split("/", 1)
        if well_name not in f["t0_fields"]:
            raise ValueError(f"{path}: t0_fields/{well_name} is missing")
        ds = f["t0_fields"][well_name]
        if name in meta["temporal_fields"] or not _attr_bool(ds, "time_varying"):
            readers[group][name] = (lambda j, ds=ds: ds[j])
        else:  # a stationary output stored as a one-snapshot trajectory
            readers[group][name] = (lambda j, ds=ds: ds[j, 0])
    return Source(path, role, n, grid_shape, readers["inputs"], readers["outputs"],
                  temporal=list(meta["temporal_fields"]),
                  info={"layout": "the_well (neuralhss export)"},
                  name=as_str(f.attrs.get("dataset_name", "")), meta=meta, close=f.close)


def _well_layout(f: h5py.File, path: Path, role: str | None, opts: Options) -> Source:
    meta = embedded_meta(f.attrs.get(META_KEY), path)
    if meta is not None:
        return _well_from_meta(f, path, role, meta)
    missing = [k for k in ("dimensions", "t0_fields") if k not in f]
    missing += [f"@{k}" for k in ("n_spatial_dims", "n_trajectories") if k not in f.attrs]
    if missing:
        raise ValueError(f"{path}: not a The Well file (lacks {', '.join(missing)}; found "
                         f"{describe_h5(f)}; attributes {sorted(f.attrs)[:8]})")
    grid_type = as_str(f.attrs.get("grid_type", "cartesian"))
    if grid_type != "cartesian":
        raise ValueError(f"{path}: grid_type {grid_type!r}; only 'cartesian' grids convert to a "
                         "neuralhss Grid")
    dims_group = f["dimensions"]
    dims = str_list(dims_group.attrs["spatial_dims"]) if "spatial_dims" in dims_group.attrs \
        else []
    n_dims = int(f.attrs["n_spatial_dims"])
    if len(dims) != n_dims or not 1 <= n_dims <= 3 or any(d not in dims_group for d in dims):
        raise ValueError(f"{path}: dimensions@spatial_dims={dims} does not name {n_dims} "
                         f"coordinate datasets (1 to 3 supported); found {sorted(dims_group)}")
    coords = {}
    for axis, d in enumerate(dims):
        ds = dims_group[d]
        if _attr_bool(ds, "sample_varying", False) or ds.ndim != 1:
            raise ValueError(f"{path}: coordinate {d!r} {ds.shape} varies between trajectories; "
                             "only fixed grids are supported")
        coords[AXIS_NAMES[axis]] = np.asarray(ds[...], dtype=np.float64)
    grid_shape = tuple(c.size for c in coords.values())
    if "time" not in dims_group:
        raise ValueError(f"{path}: dimensions/time is missing")
    t = np.asarray(dims_group["time"][...], dtype=np.float64)
    if t.ndim == 2:  # sample-varying time: accept when every trajectory has the same times
        if not np.all(t == t[:1]):
            raise ValueError(f"{path}: dimensions/time differs between trajectories; not "
                             "supported")
        t = t[0]
    n_t = t.size
    n = int(f.attrs["n_trajectories"])

    bc_types: dict[str, set[str]] = {d: set() for d in dims}
    for g in (f["boundary_conditions"].values() if "boundary_conditions" in f else []):
        kind = as_str(g.attrs.get("bc_type", "")).upper()
        for d in str_list(g.attrs.get("associated_dims", [])):
            if d in bc_types:
                bc_types[d].add(kind)
    if opts.bc is not None:
        bc, bc_origin = opts.bc, "given (--bc)"
    else:
        bc = tuple("periodic" if bc_types[d] == {"PERIODIC"} else "dirichlet" for d in dims)
        bc_origin = "boundary_conditions group"

    variables: dict[str, Callable[[int, Any], np.ndarray]] = {}
    constants: dict[str, Reader] = {}
    groups: dict[str, list[str]] = {}
    for order in range(3):
        key = f"t{order}_fields"
        if key not in f:
            continue
        names = (str_list(f[key].attrs["field_names"]) if "field_names" in f[key].attrs
                 else sorted(f[key]))
        for name in names:
            ds = f[key][name]
            sv, tv = _attr_bool(ds, "sample_varying"), _attr_bool(ds, "time_varying")
            dv = [bool(v) for v in np.asarray(ds.attrs.get("dim_varying", [True] * n_dims))]
            expected = (([n] if sv else []) + ([n_t] if tv else [])
                        + [s for s, v in zip(grid_shape, dv, strict=True) if v] + [n_dims] * order)
            if list(ds.shape) != expected:
                raise ValueError(f"{path}: {key}/{name} has shape {ds.shape}, expected "
                                 f"{tuple(expected)} (sample_varying={sv}, time_varying={tv}, "
                                 f"dim_varying={dv})")
            members = []
            for comp in product(range(n_dims), repeat=order):
                cname = name + ("_" + "".join(dims[c] for c in comp) if comp else "")
                rd = _well_reader(ds, sv, tv, dv, comp, grid_shape)
                if tv:
                    variables[cname] = rd
                else:
                    constants[cname] = (lambda j, rd=rd: rd(j))
                members.append(cname)
            if order:
                groups[name] = members
    scalars: list[str] = []
    if "scalars" in f:
        sg = f["scalars"]
        for name in (str_list(sg.attrs["field_names"]) if "field_names" in sg.attrs
                     else sorted(sg)):
            ds = sg[name]
            sv = _attr_bool(ds, "sample_varying", False)
            tv = _attr_bool(ds, "time_varying", False)

            def scalar(j: int, t: Any = None, ds=ds, sv=sv, tv=tv) -> np.ndarray:
                v = np.asarray(ds[j] if sv else ds[()])
                v = v[t if t is not None else slice(None)] if tv else v.reshape(-1)[0]
                return np.broadcast_to(np.asarray(v)[(...,) + (None,) * n_dims],
                                       np.shape(v) + grid_shape)
            if tv:
                variables[name] = scalar
            else:
                constants[name] = (lambda j, s=scalar: s(j))
            scalars.append(name)
    if not variables:
        raise ValueError(f"{path}: no time-varying field in t0/t1/t2_fields; nothing to predict")
    clash = sorted(set(variables) & set(constants))
    if clash:
        raise ValueError(f"{path}: names {clash} are used twice")
    inputs, outputs, out_times, io = trajectory_io(path, variables, constants, n_t, t, opts,
                                                   hidden=frozenset(scalars), groups=groups)
    attrs = {k: _jsonable(v) for k, v in f.attrs.items()}
    info = {"layout": "the_well", "dataset_name": as_str(f.attrs.get("dataset_name", "")),
            "root_attrs": attrs, "spatial_dims": dims,
            "source_bc": {d: sorted(v) for d, v in bc_types.items()}, **io}
    return Source(path, role, n, grid_shape, inputs, outputs,
                  temporal=list(outputs) if out_times is not None else [], coords=coords,
                  bc=bc, bc_origin=bc_origin, times=out_times, info=info,
                  name=info["dataset_name"] or dataset_name(path), close=f.close)
