"""Import datasets from other formats into neuralhss schema-v1 files (``neuralhss convert``).

Supported sources (anything else is refused with a one-line ``ValueError`` naming what was
found):

**neuraloperator** (``fmt="neuralop"``)
    ``.pt`` files holding a dict with tensors ``x`` (input) and ``y`` (output), loaded with
    ``torch.load(weights_only=True)``; or ``.h5``/``.hdf5`` files with datasets ``x`` and ``y``
    (the layout of neuraloperator's ``H5pyDataset``). Per tensor, by number of axes:
    ``(N, n)`` 1-D, ``(N, H, W)`` 2-D (the "squeezed" single channel of neuraloperator's Darcy
    files), ``(N, C, H, W)`` 2-D with a channel axis, ``(N, C, D, H, W)`` 3-D. A 3-D grid must
    therefore carry its channel axis. Fields are named ``input``/``output`` (``input_0``, ...
    for several channels) unless ``inputs``/``outputs`` name them (one name per channel, or one
    name that gets ``_0``, ``_1``... appended). Boolean masks become 0.0/1.0. Complex tensors
    are never cut to their real part: each complex channel becomes two real fields,
    ``<name>_re`` and ``<name>_im`` (e.g. ``input_re``, ``input_im``). The files store no
    coordinates: the grid is the unit box with our node convention (neuralhss.grid), Dirichlet
    unless ``bc`` says otherwise.

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
``done``, ``split``) or used as both input and output, non-finite values. An existing output
file is a ``FileExistsError``; an interrupted conversion leaves no output file.
Source files are read one sample at a time (neuraloperator ``.pt`` files whole) and hashed once.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..grid import AXIS_NAMES, Grid
from .generation import package_version, write_hdf5
from .schema import Meta

FORMATS = ("neuralop", "pdebench", "thewell")
META_KEY = "neuralhss"  # where our exporters keep the original metadata (JSON)
RESERVED_NAMES = frozenset({"x", "y", "z", "t", "sample", "done", "split"})
VALID_POLICIES = ("train", "test", "drop")
_ROLE_WORDS = {"train": "train", "training": "train", "test": "test", "testing": "test",
               "valid": "valid", "val": "valid", "validation": "valid"}
_EXTENSIONS = {"neuralop": (".pt", ".h5", ".hdf5"), "pdebench": (".h5", ".hdf5"),
               "thewell": (".h5", ".hdf5")}
_PDEBENCH_PERIODIC = ("advection", "burgers", "reacdiff", "periodic")
_PDEBENCH_VARIANTS = ("tensor (N, n_t, *grid[, C]) with x-/t-coordinate; Darcy nu + tensor "
                      "(N, 1, *grid); CFD density/pressure/Vx[/Vy/Vz]; per-sample groups with "
                      "data and grid/x, grid/t")
_CFD_VARIABLES = ("density", "pressure", "Vx", "Vy", "Vz")

Reader = Callable[[int], np.ndarray]


def _noop() -> None:
    return None


@dataclass
class ConvertResult:
    """What :func:`convert` wrote."""

    path: Path
    n_samples: int
    n_train: int | None
    n_test: int | None
    sources: list[str]


@dataclass
class _Options:
    inputs: list[str] | None
    outputs: list[str] | None
    input_step: int
    output_step: int | None
    bc: tuple[str, ...] | None


@dataclass
class _Source:
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
    close: Callable[[], None] = _noop


# ----------------------------------------------------------------------------------- helpers


def sha256_of(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _role_of(path: Path) -> str | None:
    """``train``/``test``/``valid`` from a name token, else from the parent folder's name."""
    tokens = re.split(r"[^a-z0-9]+", path.stem.lower())
    found = {_ROLE_WORDS[t] for t in tokens if t in _ROLE_WORDS}
    if len(found) > 1:
        raise ValueError(f"{path.name} names several splits {sorted(found)}; rename it")
    if found:
        return found.pop()
    return _ROLE_WORDS.get(path.parent.name.lower())


def _dataset_name(path: Path) -> str:
    """File stem without split words and resolution numbers (``darcy_train_16`` → ``darcy``)."""
    tokens = [t for t in re.split(r"[_\-]+", path.stem)
              if t and t.lower() not in _ROLE_WORDS and not t.isdigit()]
    return "_".join(tokens) or path.stem


def _expand(sources: Sequence[str | os.PathLike], fmt: str) -> list[Path]:
    exts = _EXTENSIONS[fmt]
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


def _str(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _str_list(value: Any) -> list[str]:
    if isinstance(value, (str, bytes)):
        return [_str(value)]
    return [_str(v) for v in np.asarray(value).ravel()]


def _open_h5(path: Path) -> h5py.File:
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise ValueError(f"{path} is not a readable HDF5 file ({exc})") from None


def _describe_h5(f: h5py.File) -> str:
    keys = sorted(f.keys())
    shown = ", ".join(f"{k} {f[k].shape}" if isinstance(f[k], h5py.Dataset) else f"{k}/"
                      for k in keys[:8])
    return (shown + (f", ... ({len(keys)} entries)" if len(keys) > 8 else "")) or "nothing"


def _embedded_meta(value: Any, path: Path) -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        meta = json.loads(_str(value))
    except json.JSONDecodeError:
        raise ValueError(f"{path}: its {META_KEY!r} entry is not JSON") from None
    if not isinstance(meta, dict) or meta.get("format") != "neuralhss":
        raise ValueError(f"{path}: its {META_KEY!r} entry is not neuralhss metadata")
    return meta


# ------------------------------------------------------------------------- neuraloperator


def _squeezed(ndim: int, dim: int | None) -> bool:
    """Whether a neuraloperator tensor of ``ndim`` axes lacks the channel axis (module
    docstring for the rules; ``dim`` is the grid dimension when known)."""
    if dim is not None:  # our own exports
        if ndim not in (dim + 1, dim + 2):
            raise ValueError(f"{ndim} axes for a {dim}-D grid")
        return ndim == dim + 1
    if ndim in (2, 3):
        return True
    if ndim in (4, 5):
        return False
    raise ValueError(f"{ndim} axes; expected (N, n), (N, H, W), (N, C, H, W) or (N, C, D, H, W)")


def _channel_names(given: list[str] | None, default: str, n: int, what: str) -> list[str]:
    if not given:
        return [default] if n == 1 else [f"{default}_{i}" for i in range(n)]
    if len(given) == n:
        return list(given)
    if len(given) == 1:
        return [f"{given[0]}_{i}" for i in range(n)]
    raise ValueError(f"{len(given)} names given for the {n} {what} channels; give {n} names "
                     "or one")


def _open_neuralop(path: Path, role: str | None, opts: _Options) -> _Source:
    close: Callable[[], None] = _noop
    if path.suffix.lower() == ".pt":
        import torch

        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # pickle, zip and weights_only errors alike
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise ValueError(f"{path} does not load with torch.load(weights_only=True) "
                             f"({type(exc).__name__}: {first[:200]})") from None
        if not isinstance(data, dict) or not {"x", "y"} <= set(data):
            found = (f"keys {sorted(map(str, data))}" if isinstance(data, dict)
                     else type(data).__name__)
            raise ValueError(f"{path}: expected a dict with tensors 'x' and 'y' (neuraloperator "
                             f"layout), found {found}")
        if not (torch.is_tensor(data["x"]) and torch.is_tensor(data["y"])):
            raise ValueError(f"{path}: 'x' and 'y' must be tensors, found "
                             f"{type(data['x']).__name__} and {type(data['y']).__name__}")
        dtypes = {k: str(data[k].dtype).replace("torch.", "") for k in ("x", "y")}
        cplx = {k: data[k].is_complex() for k in ("x", "y")}
        shapes = {k: tuple(data[k].shape) for k in ("x", "y")}
        # Complex values keep both parts, as a trailing axis of 2 (real, imaginary).
        raw = {k: (torch.view_as_real(data[k].detach().to(torch.complex64)) if cplx[k]
                   else data[k].detach().to(torch.float32)).numpy() for k in ("x", "y")}
        meta = _embedded_meta(data.get(META_KEY), path)
    else:
        f = _open_h5(path)
        close = f.close
        if "x" not in f or "y" not in f:
            f.close()
            raise ValueError(f"{path}: expected datasets 'x' and 'y' (neuraloperator "
                             f"H5pyDataset layout), found {_describe_h5(f)}")
        dtypes = {k: str(f[k].dtype) for k in ("x", "y")}
        cplx = {k: f[k].dtype.kind == "c" for k in ("x", "y")}
        shapes = {k: tuple(f[k].shape) for k in ("x", "y")}
        raw = {k: f[k] for k in ("x", "y")}  # read lazily, one sample at a time
        meta = _embedded_meta(f.attrs.get(META_KEY), path)
    dim = len(meta["grid"]["shape"]) if meta else None
    squeezed = {}
    for k in ("x", "y"):
        try:
            squeezed[k] = _squeezed(len(shapes[k]), dim)
        except ValueError as exc:
            close()
            raise ValueError(f"{path}: '{k}' {shapes[k]} has {exc}") from None
    grid = {k: shapes[k][1:] if squeezed[k] else shapes[k][2:] for k in ("x", "y")}
    # Channels as stored: a complex channel becomes two (real, imaginary).
    chans = {k: (1 if squeezed[k] else shapes[k][1]) * (2 if cplx[k] else 1) for k in ("x", "y")}
    if grid["x"] != grid["y"] or shapes["x"][0] != shapes["y"][0]:
        close()
        raise ValueError(f"{path}: x {shapes['x']} and y {shapes['y']} do not hold the same "
                         "samples on the same grid")
    def channel_reader(k: str, lo: int, hi: int, shape: tuple[int, ...]) -> Reader:
        a = raw[k]

        def read(j: int) -> np.ndarray:
            v = np.asarray(a[j])
            if cplx[k]:
                if np.iscomplexobj(v):
                    v = np.stack([v.real, v.imag], axis=-1)
                # ([C,] *grid, 2) -> (C * 2, *grid): channel c gives c.re, c.im
                v = np.moveaxis(v, -1, 0 if squeezed[k] else 1).reshape(-1, *grid[k])
            elif squeezed[k]:
                v = v[None]
            return v.astype(np.float32)[lo:hi].reshape(shape)
        return read

    src = _Source(path, role, shapes["x"][0], tuple(grid["x"]), {}, {}, close=close,
                  name=_dataset_name(path), meta=meta,
                  info={"x": {"dtype": dtypes["x"], "shape": list(shapes["x"])},
                        "y": {"dtype": dtypes["y"], "shape": list(shapes["y"])},
                        "channels": "squeezed" if squeezed["x"] else "channel axis 1"})
    if meta is not None:
        src.temporal = list(meta["temporal_fields"])
        n_t = len(meta["times"]) if meta.get("times") is not None else 0
        pos = {"x": 0, "y": 0}
        for entry, count in meta["channels"]:
            group, name = entry.split("/", 1)
            k = "x" if group == "inputs" else "y"
            shape = ((n_t,) if name in src.temporal else ()) + tuple(grid[k])
            target = src.inputs if group == "inputs" else src.outputs
            target[name] = channel_reader(k, pos[k], pos[k] + count, shape)
            pos[k] += count
        if pos != chans:
            close()
            raise ValueError(f"{path}: its metadata lists {pos} channels but the tensors hold "
                             f"{chans}")
        return src
    for k, given, default, target in (("x", opts.inputs, "input", src.inputs),
                                      ("y", opts.outputs, "output", src.outputs)):
        n = chans[k] // 2 if cplx[k] else chans[k]
        names = _channel_names(given, default, n, "input" if k == "x" else "output")
        if cplx[k]:
            names = [f"{name}_{part}" for name in names for part in ("re", "im")]
        for c, name in enumerate(names):
            target[name] = channel_reader(k, c, c + 1, tuple(grid[k]))
    return src


# ----------------------------------------------------------------- trajectories (shared)


def _times(t: np.ndarray | None, n_t: int, path: Path, what: str) -> tuple[np.ndarray, str]:
    if t is None:
        return np.arange(n_t, dtype=np.float64), "absent: snapshot index used as time"
    t = np.asarray(t, dtype=np.float64).ravel()
    if t.size == n_t:
        return t, "as stored"
    if t.size == n_t + 1:
        return t[:n_t], "one longer than the snapshots: last entry dropped"
    raise ValueError(f"{path}: {what} has {t.size} entries for {n_t} snapshots")


def _trajectory_io(path: Path, variables: dict[str, Callable[[int, Any], np.ndarray]],
                   constants: dict[str, Reader], n_t: int, times: np.ndarray, opts: _Options,
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


# ------------------------------------------------------------------------------- PDEBench


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


def _pdebench_bc(path: Path, dim: int, opts: _Options) -> tuple[tuple[str, ...], str]:
    if opts.bc is not None:
        return opts.bc, "given (--bc)"
    stem = path.stem.lower()
    if any(w in stem for w in _PDEBENCH_PERIODIC):
        return ("periodic",) * dim, "file name"
    return ("dirichlet",) * dim, "default (PDEBench files do not state boundary conditions)"


def _open_pdebench(path: Path, role: str | None, opts: _Options) -> _Source:
    f = _open_h5(path)
    try:
        return _pdebench_layout(f, path, role, opts)
    except BaseException:
        f.close()
        raise


def _pdebench_layout(f: h5py.File, path: Path, role: str | None, opts: _Options) -> _Source:
    coord_keys = [k for k in ("x-coordinate", "y-coordinate", "z-coordinate") if k in f]
    dim = len(coord_keys)
    keys = sorted(f.keys())
    info: dict[str, Any] = {}
    variables: dict[str, Callable[[int, Any], np.ndarray]] = {}
    t_raw = f["t-coordinate"][...] if "t-coordinate" in f else None

    def unknown() -> ValueError:
        return ValueError(f"{path}: unknown PDEBench layout (found {_describe_h5(f)}); "
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
        src = _Source(path, role, nu.shape[0], grid_shape, inputs, outputs, info={
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
        times, how = _times(t_raw, n_t, path, "the time coordinate")
        info["time_coordinate"] = how
        groups = {"u": [v for v in variables if v.startswith("u_")]} if "u" not in variables \
            and any(v.startswith("u_") for v in variables) else None
        inputs, outputs, out_times, io = _trajectory_io(path, variables, {}, n_t, times, opts,
                                                        groups=groups)
        info.update(io)
        src = _Source(path, role, n, grid_shape, inputs, outputs, info=info, times=out_times,
                      temporal=list(outputs) if out_times is not None else [])
        src.coords = _axis_coords(coord_src, coord_keys, grid_shape, path)
    src.close = f.close
    src.name = _dataset_name(path)
    src.bc, src.bc_origin = _pdebench_bc(path, len(src.grid_shape), opts)
    return src


# ------------------------------------------------------------------------------- The Well


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


def _open_thewell(path: Path, role: str | None, opts: _Options) -> _Source:
    f = _open_h5(path)
    try:
        return _well_layout(f, path, role, opts)
    except BaseException:
        f.close()
        raise


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, bytes)):
        return _str(value)
    a = np.asarray(value)
    if a.dtype.kind in "SOU":
        return [_str(v) for v in a.ravel()] if a.ndim else _str(a.item())
    return a.tolist()


def _well_from_meta(f: h5py.File, path: Path, role: str | None, meta: dict[str, Any]) -> _Source:
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
    return _Source(path, role, n, grid_shape, readers["inputs"], readers["outputs"],
                   temporal=list(meta["temporal_fields"]), info={"layout": "the_well (neuralhss "
                                                                          "export)"},
                   name=_str(f.attrs.get("dataset_name", "")), meta=meta, close=f.close)


def _well_layout(f: h5py.File, path: Path, role: str | None, opts: _Options) -> _Source:
    meta = _embedded_meta(f.attrs.get(META_KEY), path)
    if meta is not None:
        return _well_from_meta(f, path, role, meta)
    missing = [k for k in ("dimensions", "t0_fields") if k not in f]
    missing += [f"@{k}" for k in ("n_spatial_dims", "n_trajectories") if k not in f.attrs]
    if missing:
        raise ValueError(f"{path}: not a The Well file (lacks {', '.join(missing)}; found "
                         f"{_describe_h5(f)}; attributes {sorted(f.attrs)[:8]})")
    grid_type = _str(f.attrs.get("grid_type", "cartesian"))
    if grid_type != "cartesian":
        raise ValueError(f"{path}: grid_type {grid_type!r}; only 'cartesian' grids convert to a "
                         "neuralhss Grid")
    dims_group = f["dimensions"]
    dims = _str_list(dims_group.attrs["spatial_dims"]) if "spatial_dims" in dims_group.attrs \
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
        kind = _str(g.attrs.get("bc_type", "")).upper()
        for d in _str_list(g.attrs.get("associated_dims", [])):
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
        names = (_str_list(f[key].attrs["field_names"]) if "field_names" in f[key].attrs
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
        for name in (_str_list(sg.attrs["field_names"]) if "field_names" in sg.attrs
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
    inputs, outputs, out_times, io = _trajectory_io(path, variables, constants, n_t, t, opts,
                                                    hidden=frozenset(scalars), groups=groups)
    attrs = {k: _jsonable(v) for k, v in f.attrs.items()}
    info = {"layout": "the_well", "dataset_name": _str(f.attrs.get("dataset_name", "")),
            "root_attrs": attrs, "spatial_dims": dims,
            "source_bc": {d: sorted(v) for d, v in bc_types.items()}, **io}
    return _Source(path, role, n, grid_shape, inputs, outputs,
                   temporal=list(outputs) if out_times is not None else [], coords=coords,
                   bc=bc, bc_origin=bc_origin, times=out_times, info=info,
                   name=info["dataset_name"] or _dataset_name(path), close=f.close)


# ------------------------------------------------------------------------------ assembling


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


def _check_same(sources: list[_Source]) -> None:
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


_OPENERS = {"neuralop": _open_neuralop, "pdebench": _open_pdebench, "thewell": _open_thewell}


def convert(sources: str | os.PathLike | Sequence[str | os.PathLike], out: str | os.PathLike,
            fmt: str, *, inputs: Sequence[str] | None = None,
            outputs: Sequence[str] | None = None, input_step: int = 0,
            output_step: int | None = None, bc: str | Sequence[str] | None = None,
            valid: str = "train", progress: bool = False) -> ConvertResult:
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
    opts = _Options(list(inputs) if inputs else None, list(outputs) if outputs else None,
                    int(input_step), None if output_step is None else int(output_step),
                    _parse_bc(bc))
    opened: list[_Source] = []
    try:
        for p in files:
            opened.append(_OPENERS[fmt](p, _role_of(p), opts))
        if opened[0].meta is not None and (opts.inputs or opts.outputs or opts.bc):
            raise ValueError(f"{opened[0].path.name} was exported by neuralhss and converts back "
                             "as it was; --input/--output/--bc do not apply")
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


def _write(sources: list[_Source], out: Path, fmt: str, opts: _Options, valid: str,
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
                         n_test, [str(s.path) for s in sources])


def _meta(sources: list[_Source], record: dict[str, Any], n_samples: int,
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
