"""neuraloperator ``.pt`` and ``.h5`` files (layouts: the package docstring)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np

from ._common import (
    META_KEY,
    Options,
    Reader,
    Source,
    dataset_name,
    describe_h5,
    embedded_meta,
    noop,
    open_h5,
)

EXTENSIONS = (".pt", ".h5", ".hdf5")


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


def _shape_str(shape: tuple[int, ...]) -> str:
    return "×".join(map(str, shape))


def _layout(sx: tuple[int, ...], sy: tuple[int, ...], grid: tuple[int, ...] | None,
            channel_axis: bool | None) -> tuple[bool, bool, bool, tuple[int, ...]]:
    """How to read ``x`` and ``y`` (shapes without a complex part): whether each carries a
    channel axis at position 1, whether ``y`` is a trajectory (its time axis follows the
    channels) and the spatial shape (rules: the package docstring)."""
    rx, ry = tuple(sx[1:]), tuple(sy[1:])
    mismatch = ValueError(f"x {sx} and y {sy} do not hold the same samples on the same grid")
    if grid is None and channel_axis is None:
        # Each tensor by its number of axes (as before); an output with one axis more than
        # its input, over the input's grid, is a trajectory.
        chan = {}
        for k, s in (("x", sx), ("y", sy)):
            try:
                chan[k] = not _squeezed(len(s), None)
            except ValueError as exc:
                raise ValueError(f"'{k}' {s} has {exc}; or give --grid / --channel-axis") from None
        cx, cy = chan["x"], chan["y"]
        gx, gy = rx[int(cx):], ry[int(cy):]
        if gx == gy:
            traj = False
        elif len(ry) == len(rx) + 1 and ry[len(ry) - len(gx):] == gx and 1 not in gx:
            cy, traj = cx, True
            if not cx and ry[0] == 1:
                raise ValueError(f"y {sy} has one axis more than x {sx}: a single snapshot or a "
                                 "channel axis only y has; give --channel-axis none to read it "
                                 "as a 1-snapshot trajectory, or store both with a channel "
                                 "axis (n, C, *grid)")
        else:
            _no_degenerate(gx, sx, "x", cx)
            raise mismatch
    else:
        if grid is not None:
            d = len(grid)
            for k, s, r in (("x", sx, rx), ("y", sy, ry)):
                if len(r) < d or r[len(r) - d:] != grid:
                    raise ValueError(f"{k} {s} does not end in the --grid shape "
                                     f"{' '.join(map(str, grid))}")
            extra = len(rx) - d
            if extra not in (0, 1) or (channel_axis is not None and extra != int(channel_axis)):
                want = ("(n, C, *grid)" if channel_axis else "(n, *grid)"
                        if channel_axis is not None else "(n, *grid) or (n, C, *grid)")
                raise ValueError(f"x {sx} does not fit --grid {' '.join(map(str, grid))}: "
                                 f"expected {want}")
            cx = extra == 1
        else:
            cx = bool(channel_axis)
            if len(rx) - int(cx) < 1:
                raise ValueError(f"x {sx} has no spatial axis after its channel axis")
        gx = rx[int(cx):]
        cy = cx  # one convention for both tensors, as neuraloperator's PTDataset
        t_axes = len(ry) - int(cy) - len(gx)
        if t_axes not in (0, 1) or ry[len(ry) - len(gx):] != gx:
            raise ValueError(f"x {sx} and y {sy} do not hold the same samples on the same grid "
                             f"(read with {'a channel axis at 1' if cx else 'no channel axis'}"
                             f", y may add a time axis: (n, {'C, ' if cx else ''}[T, ]*grid))")
        traj = t_axes == 1
    if sx[0] != sy[0]:
        raise mismatch
    if not 1 <= len(gx) <= 3:
        raise ValueError(f"x {sx} gives a {len(gx)}-D grid {gx}; grids have 1 to 3 axes "
                         "(--grid, --channel-axis)")
    _no_degenerate(gx, sx, "x", cx)
    return cx, cy, traj, gx


def _no_degenerate(g: tuple[int, ...], shape: tuple[int, ...], k: str, chan: bool) -> None:
    """Refuse a spatial axis of size 1 (nothing to learn along it; FNO has no mode there)."""
    if 1 not in g:
        return
    kept = " ".join(str(n) for n in g if n != 1) or "N"
    hint = (f"if axis 1 holds channels give --channel-axis 1 (neuraloperator's (n, C, *grid)), "
            f"or give the spatial shape with --grid {kept}"
            if not chan and shape[1] == 1 else f"give the spatial shape with --grid {kept}")
    raise ValueError(f"{k} {shape} read as a {_shape_str(g)} grid has a spatial axis of size 1; "
                     + hint)


def _channel_names(given: list[str] | None, default: str, n: int, what: str) -> list[str]:
    if not given:
        return [default] if n == 1 else [f"{default}_{i}" for i in range(n)]
    if len(given) == n:
        return list(given)
    if len(given) == 1:
        return [f"{given[0]}_{i}" for i in range(n)]
    raise ValueError(f"{len(given)} names given for the {n} {what} channels; give {n} names "
                     "or one")


def open_source(path: Path, role: str | None, opts: Options) -> Source:
    close: Callable[[], None] = noop
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
        meta = embedded_meta(data.get(META_KEY), path)

        def t_entry() -> object:
            t = data.get("t")
            return t.detach().double().numpy() if torch.is_tensor(t) else t
    else:
        f = open_h5(path)
        close = f.close
        if "x" not in f or "y" not in f:
            f.close()
            raise ValueError(f"{path}: expected datasets 'x' and 'y' (neuraloperator "
                             f"H5pyDataset layout), found {describe_h5(f)}")
        dtypes = {k: str(f[k].dtype) for k in ("x", "y")}
        cplx = {k: f[k].dtype.kind == "c" for k in ("x", "y")}
        shapes = {k: tuple(f[k].shape) for k in ("x", "y")}
        raw = {k: f[k] for k in ("x", "y")}  # read lazily, one sample at a time
        meta = embedded_meta(f.attrs.get(META_KEY), path)

        def t_entry() -> object:
            return f["t"][...] if isinstance(f.get("t"), h5py.Dataset) else None
    squeezed = {}
    n_t = 0  # snapshots of a trajectory output (0: stationary)
    if meta is not None:
        dim = len(meta["grid"]["shape"])
        for k in ("x", "y"):
            try:
                squeezed[k] = _squeezed(len(shapes[k]), dim)
            except ValueError as exc:
                close()
                raise ValueError(f"{path}: '{k}' {shapes[k]} has {exc}") from None
        grid = {k: shapes[k][1:] if squeezed[k] else shapes[k][2:] for k in ("x", "y")}
        if grid["x"] != grid["y"] or shapes["x"][0] != shapes["y"][0]:
            close()
            raise ValueError(f"{path}: x {shapes['x']} and y {shapes['y']} do not hold the "
                             "same samples on the same grid")
    else:
        try:
            cx, cy, traj, g = _layout(shapes["x"], shapes["y"], opts.grid, opts.channel_axis)
        except ValueError as exc:
            close()
            raise ValueError(f"{path}: {exc}") from None
        squeezed = {"x": not cx, "y": not cy}
        grid = {"x": g, "y": g}
        if traj:
            n_t = shapes["y"][1 + int(cy)]
    # What one channel of a sample holds: the grid, or (T, *grid) for a trajectory output.
    field = {"x": tuple(grid["x"]), "y": ((n_t,) if n_t else ()) + tuple(grid["y"])}
    # Channels as stored: a complex channel becomes two (real, imaginary).
    chans = {k: (1 if squeezed[k] else shapes[k][1]) * (2 if cplx[k] else 1) for k in ("x", "y")}
    times, times_origin = None, None
    if n_t:
        t_raw = t_entry()
        if t_raw is None:
            times = np.arange(1, n_t + 1, dtype=np.float64)
            times_origin = (f"absent: snapshot numbers 1..{n_t} used as times (the input is "
                            "time 0)")
        else:
            try:
                times = np.asarray(t_raw, dtype=np.float64).ravel()
            except (TypeError, ValueError):
                times = np.zeros(0)
            times_origin = "as stored ('t')"
            if times.size != n_t or not np.all(np.isfinite(times)) or np.any(np.diff(times) <= 0):
                close()
                raise ValueError(f"{path}: 't' {tuple(np.shape(t_raw))} should hold the {n_t} "
                                 "increasing snapshot times of y")

    def channel_reader(k: str, lo: int, hi: int, shape: tuple[int, ...]) -> Reader:
        a = raw[k]

        def read(j: int) -> np.ndarray:
            v = np.asarray(a[j])
            if cplx[k]:
                if np.iscomplexobj(v):
                    v = np.stack([v.real, v.imag], axis=-1)
                # ([C,] *grid, 2) -> (C * 2, *grid): channel c gives c.re, c.im
                v = np.moveaxis(v, -1, 0 if squeezed[k] else 1).reshape(-1, *field[k])
            elif squeezed[k]:
                v = v[None]
            return v.astype(np.float32)[lo:hi].reshape(shape)
        return read

    src = Source(path, role, shapes["x"][0], tuple(grid["x"]), {}, {}, close=close,
                 name=dataset_name(path), meta=meta,
                 info={"x": {"dtype": dtypes["x"], "shape": list(shapes["x"])},
                       "y": {"dtype": dtypes["y"], "shape": list(shapes["y"])},
                       "channels": "squeezed" if squeezed["x"] else "channel axis 1"})
    if meta is None and squeezed["x"] and not squeezed["y"] and not n_t:
        src.info["note"] = (f"y {shapes['y']} read as {shapes['y'][1]} output channels; if its "
                            "axis 1 is time, convert with --channel-axis none for a trajectory")
    if n_t:
        src.times = times
        src.info.update(output=f"trajectory of {n_t} snapshots (axis {1 + int(not squeezed['y'])}"
                               " of y); the input x is the initial state",
                        time_coordinate=times_origin)
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
            target[name] = channel_reader(k, c, c + 1, field[k])
    if n_t:
        src.temporal = list(src.outputs)
    return src
