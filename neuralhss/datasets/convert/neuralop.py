"""neuraloperator ``.pt`` and ``.h5`` files (layouts: the package docstring)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

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

    src = Source(path, role, shapes["x"][0], tuple(grid["x"]), {}, {}, close=close,
                 name=dataset_name(path), meta=meta,
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
