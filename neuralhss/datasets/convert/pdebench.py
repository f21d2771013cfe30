"""PDEBench HDF5 files (layouts: the package docstring)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ...grid import AXIS_NAMES
from ._common import (
    Options,
    Reader,
    Source,
    dataset_name,
    describe_h5,
    parse_h5,
    snapshot_times,
    trajectory_io,
)

EXTENSIONS = (".h5", ".hdf5")
_PDEBENCH_PERIODIC = ("advection", "burgers", "reacdiff", "periodic")
_PDEBENCH_VARIANTS = ("tensor (N, n_t, *grid[, C]) with x-/t-coordinate; Darcy nu + tensor "
                      "(N, 1, *grid); CFD density/pressure/Vx[/Vy/Vz]; per-sample groups with "
                      "data and grid/x, grid/t")
_CFD_VARIABLES = ("density", "pressure", "Vx", "Vy", "Vz")


def _axis_coords(f: h5py.Group, keys: list[str], shape: tuple[int, ...], path: Path,
                 ) -> dict[str, np.ndarray]:
    coords = {}
    for axis, (key, n) in enumerate(zip(keys, shape, strict=True)):
        c = np.asarray(f[key][...], dtype=np.float64)
        if c.ndim > 1:  # a meshgrid: take the varying direction
            c = np.moveaxis(c, axis, 0).reshape(c.shape[axis], -1)[:, 0]
        if c.shape != (n,):
            raise ValueError(f"{path}: {key} has {c.size} entries but the data has {n} points "
                             f"along axis {axis}")
        coords[AXIS_NAMES[axis]] = c
    return coords


def _pdebench_bc(path: Path, dim: int, opts: Options) -> tuple[tuple[str, ...], str]:
    if opts.bc is not None:
        return opts.bc, "given (--bc)"
    stem = path.stem.lower()
    if any(w in stem for w in _PDEBENCH_PERIODIC):
        return ("periodic",) * dim, "file name"
    return ("dirichlet",) * dim, "default (PDEBench files do not state boundary conditions)"


def open_source(path: Path, role: str | None, opts: Options) -> Source:
    return parse_h5(path, role, opts, _pdebench_layout)


def _pdebench_layout(f: h5py.File, path: Path, role: str | None, opts: Options) -> Source:
    coord_keys = [k for k in ("x-coordinate", "y-coordinate", "z-coordinate") if k in f]
    dim = len(coord_keys)
    keys = sorted(f.keys())
    info: dict[str, Any] = {}
    variables: dict[str, Callable[[int, Any], np.ndarray]] = {}
    t_raw = f["t-coordinate"][...] if "t-coordinate" in f else None

    def unknown() -> ValueError:
        return ValueError(f"{path}: unknown PDEBench layout (found {describe_h5(f)}); "
                          f"supported: {_PDEBENCH_VARIANTS}")

    if "tensor" in f and "nu" in f:  # (b) Darcy
        nu, u = f["nu"], f["tensor"]
        if dim == 0 or nu.ndim != dim + 1 or u.shape != (nu.shape[0], 1, *nu.shape[1:]):
            raise ValueError(f"{path}: Darcy layout needs nu (N, *grid) and tensor (N, 1, *grid) "
                             f"with {dim} coordinate dataset(s), found nu {nu.shape}, tensor "
                             f"{u.shape}")
        grid_shape = tuple(nu.shape[1:])
        if opts.inputs not in (None, ["nu"]) or opts.outputs not in (None, ["u"]):
            raise ValueError(f"{path}: a PDEBench Darcy file has input 'nu' and output 'u' only")
        inputs: dict[str, Reader] = {"nu": lambda j: nu[j]}
        outputs: dict[str, Reader] = {"u": lambda j: u[j, 0]}
        src = Source(path, role, nu.shape[0], grid_shape, inputs, outputs, info={
            "layout": "darcy", "dtype": str(u.dtype)})
        src.coords = _axis_coords(f, coord_keys, grid_shape, path)
    else:
        if "tensor" in f:  # (a)
            ds = f["tensor"]
            if dim == 0 or ds.ndim not in (dim + 2, dim + 3):
                raise ValueError(f"{path}: tensor {ds.shape} does not fit (N, n_t, *grid[, C]) "
                                 f"with {dim} coordinate dataset(s) ({coord_keys})")
            n, n_t, grid_shape = ds.shape[0], ds.shape[1], tuple(ds.shape[2:2 + dim])
            if ds.ndim == dim + 2:
                variables["u"] = lambda j, t, ds=ds: ds[j, t]
            else:
                for c in range(ds.shape[-1]):
                    variables[f"u_{c}"] = lambda j, t, ds=ds, c=c: ds[(j, t, Ellipsis, c)]
            info.update(layout="tensor", dtype=str(ds.dtype))
            coord_src: h5py.Group = f
        elif any(v in f for v in _CFD_VARIABLES):  # (c)
            names = [v for v in _CFD_VARIABLES if v in f]
            first = f[names[0]]
            if dim == 0 or first.ndim != dim + 2:
                raise ValueError(f"{path}: {names[0]} {first.shape} does not fit (N, n_t, *grid) "
                                 f"with {dim} coordinate dataset(s)")
            for v in names:
                if f[v].shape != first.shape:
                    raise ValueError(f"{path}: {v} has shape {f[v].shape}, {names[0]} "
                                     f"{first.shape}")
                variables[v] = lambda j, t, ds=f[v]: ds[j, t]
            n, n_t, grid_shape = first.shape[0], first.shape[1], tuple(first.shape[2:])
            info.update(layout="cfd", dtype=str(first.dtype))
            coord_src = f
        elif keys and all(isinstance(f[k], h5py.Group) and "data" in f[k] for k in keys):  # (d)
            g0 = f[keys[0]]
            if "grid" not in g0:
                raise ValueError(f"{path}: group {keys[0]} has no grid/ (coordinates)")
            coord_keys = [f"grid/{a}" for a in AXIS_NAMES if a in g0["grid"]]
            dim = len(coord_keys)
            shape = g0["data"].shape
            if dim == 0 or len(shape) not in (dim + 1, dim + 2):
                raise ValueError(f"{path}: group data {shape} does not fit (n_t, *grid[, C]) with "
                                 f"{dim} coordinate(s) in grid/")
            n, n_t, grid_shape = len(keys), shape[0], tuple(shape[1:1 + dim])

            def group_data(j: int) -> h5py.Dataset:
                ds = f[keys[j]]["data"]
                if ds.shape != shape:
                    raise ValueError(f"{path}: group {keys[j]} data has shape {ds.shape}, group "
                                     f"{keys[0]} {shape}")
                return ds
            if len(shape) == dim + 1:
                variables["u"] = lambda j, t: group_data(j)[t]
            else:
                for c in range(shape[-1]):
                    variables[f"u_{c}"] = lambda j, t, c=c: group_data(j)[(t, Ellipsis, c)]
            t_raw = g0["grid/t"][...] if "t" in g0["grid"] else None
            info.update(layout="groups", dtype=str(g0["data"].dtype), first_group=keys[0],
                        last_group=keys[-1])
            coord_src = g0
        else:
            raise unknown()
        times, how = snapshot_times(t_raw, n_t, path, "the time coordinate")
        info["time_coordinate"] = how
        groups = {"u": [v for v in variables if v.startswith("u_")]} if "u" not in variables \
            and any(v.startswith("u_") for v in variables) else None
        inputs, outputs, out_times, io = trajectory_io(path, variables, {}, n_t, times, opts,
                                                       groups=groups)
        info.update(io)
        src = Source(path, role, n, grid_shape, inputs, outputs, info=info, times=out_times,
                     temporal=list(outputs) if out_times is not None else [])
        src.coords = _axis_coords(coord_src, coord_keys, grid_shape, path)
    src.close = f.close
    src.name = dataset_name(path)
    src.bc, src.bc_origin = _pdebench_bc(path, len(src.grid_shape), opts)
    return src
