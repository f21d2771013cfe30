"""A dataset file as an ``xarray.Dataset`` that reads on demand.

:func:`open_xarray` returns in milliseconds whatever the file size: only the metadata, the
coordinates and the per-sample ``done``/``split`` flags are read. The fields are lazily
indexed arrays over the HDF5 datasets — a selection (``ds.u.isel(sample=3)``,
``ds.u.sel(x=0.5, method="nearest")``) reads only the chunks it touches, and ``.load()`` or
``.values`` reads what is left. With ``chunks=`` the fields become dask arrays (one dask chunk
spanning whole HDF5 chunks, one sample each), so that reductions over a file larger than
memory run out of core, in parallel, and on a dask cluster where one is configured.

Reading needs only h5py and xarray; ``chunks=`` needs dask (``pip install "dask[array]"``).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import h5py
import numpy as np
import xarray as xr
from xarray.backends import BackendArray
from xarray.core import indexing

from .schema import field_paths, read_meta


class _FileHandle:
    """One read-only h5py handle per (open_xarray call, process), opened on first use.

    Pickling drops the handle (a dask worker reopens the file by path); :meth:`close` closes it
    and a later read reopens it, so a closed dataset keeps working and releases the file (HDF5
    file locking would otherwise stop a writer from opening it).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()
        self._file: h5py.File | None = None
        self._pid: int | None = None

    def get(self) -> h5py.File:
        if self._file is None or self._pid != os.getpid() or not self._file.id.valid:
            self._file = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return self._file

    def close(self) -> None:
        with self.lock:
            if self._file is not None and self._pid == os.getpid() and self._file.id.valid:
                self._file.close()
            self._file = None

    def __getstate__(self) -> dict:
        return {"path": self.path}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["path"])


class _H5Array(BackendArray):
    """An HDF5 dataset seen by xarray; outer (orthogonal) indexing is done by h5py reads."""

    def __init__(self, handle: _FileHandle, name: str, shape: tuple[int, ...],
                 dtype: np.dtype) -> None:
        self.handle, self.name = handle, name
        self.shape, self.dtype = shape, np.dtype(dtype)

    def __getitem__(self, key):
        return indexing.explicit_indexing_adapter(key, self.shape,
                                                  indexing.IndexingSupport.OUTER, self._read)

    def _read(self, key: tuple) -> np.ndarray:
        # h5py takes at most one index list per read, increasing and without repeats: read
        # the first list's sorted unique values and the span of any other list, then put
        # the order, repeats and the other lists back in memory.
        h5key: list = []
        post: list = []
        vector_seen = False
        for size, k in zip(self.shape, key, strict=True):
            if isinstance(k, (int, np.integer)):
                h5key.append(int(k))
                continue
            if isinstance(k, slice):
                h5key.append(k)
                post.append(slice(None))
                continue
            k = np.asarray(k)
            k = np.flatnonzero(k) if k.dtype == bool else k.astype(np.int64) % size
            if k.size == 0:
                return self._empty(key)
            if not vector_seen:
                uniq, inverse = np.unique(k, return_inverse=True)
                h5key.append(uniq)
                post.append(inverse)
                vector_seen = True
            else:
                lo = int(k.min())
                h5key.append(slice(lo, int(k.max()) + 1))
                post.append(k - lo)
        with self.handle.lock:
            out = self.handle.get()[self.name][tuple(h5key)]
        if all(isinstance(p, slice) for p in post):
            return out
        # outer indexing: apply each axis's index on its own
        for axis, p in enumerate(post):
            if not isinstance(p, slice):
                out = np.take(out, p, axis=axis)
        return out

    def _empty(self, key: tuple) -> np.ndarray:
        shape = []
        for size, k in zip(self.shape, key, strict=True):
            if isinstance(k, slice):
                shape.append(len(range(*k.indices(size))))
            elif not isinstance(k, (int, np.integer)):
                k = np.asarray(k)
                shape.append(int(k.sum()) if k.dtype == bool else k.size)
        return np.empty(shape, dtype=self.dtype)


def open_xarray(path: str | os.PathLike, *, lazy: bool = True, chunks=None):
    """Open a dataset file as an ``xarray.Dataset`` with named dimensions and coordinates.

    Variables are the fields (``f``, ``u``, ``a``...; an input and an output with the same
    name become ``in_<name>`` and ``out_<name>``) with dimensions ``("sample", "x", "y", ...)``
    (``"t"`` after ``"sample"`` for trajectories), plus ``done`` and, when present, ``split``.
    Root attributes (problem, params, seed...) become dataset attributes; each field has
    ``role`` ("input" or "output") and, where the file gives them, ``units`` and
    ``description``. Coordinates are node positions in the grid's length unit.

    Parameters
    ----------
    path : path
        A schema-v1 file (``neuralhss check`` describes it).
    lazy : bool, default True
        Read the fields on demand (module docstring): opening costs the same for any file size
        and a selection reads only the chunks it touches. ``False`` reads every field into
        memory now (the same values as ``open_xarray(path).load()``).
    chunks : int, dict, "auto" or None, default None
        Make the fields dask arrays with these chunks (xarray's ``Dataset.chunk``; an int is
        the number of samples per chunk). Reductions then run chunk by chunk, out of core.
        Needs dask.

    Returns
    -------
    xarray.Dataset
        Close it (``ds.close()`` or ``with open_xarray(p) as ds:``) to release the file before
        another process writes it; a closed dataset reopens the file if read again.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    if chunks is not None:
        try:
            import dask.array  # noqa: F401
        except ImportError as err:
            raise ImportError(f"open_xarray(chunks={chunks!r}) needs dask; install it with "
                              "`pip install \"dask[array]\"` or leave chunks=None") from err
    handle = _FileHandle(path)
    with h5py.File(path, "r") as f:
        meta = read_meta(f)
        axes = list(meta.grid.axis_names)
        coords: dict = {a: (a, f[f"coords/{a}"][...], {"units": "length"}) for a in axes}
        coords["sample"] = np.arange(meta.n_samples)
        if "coords/t" in f:
            coords["t"] = f["coords/t"][...]
        names = [p.split("/")[1] for p in field_paths(meta)]
        clash = {n for n in names if names.count(n) > 1}
        data_vars = {}
        for p in field_paths(meta):
            group, name = p.split("/")
            key = (("in_" if group == "inputs" else "out_") + name) if name in clash else name
            ds = f[p]
            dims = ["sample"] + (["t"] if ds.ndim == len(axes) + 2 else []) + axes
            attrs = {k: str(v) for k, v in ds.attrs.items() if k in ("units", "description")}
            attrs["role"] = "input" if group == "inputs" else "output"
            if lazy:
                data = indexing.LazilyIndexedArray(_H5Array(handle, p, ds.shape, ds.dtype))
            else:
                data = ds[...]
            data_vars[key] = xr.Variable(dims, data, attrs)
        data_vars["done"] = (["sample"], f["done"][...])
        if "split" in f:
            data_vars["split"] = (["sample"], f["split"][...])
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
    out = xr.Dataset(data_vars, coords=coords, attrs=attrs)
    out.set_close(handle.close)
    if chunks is not None:
        if isinstance(chunks, (int, np.integer)):
            chunks = {"sample": int(chunks)}
        out = out.chunk(chunks)
        out.set_close(handle.close)
    return out
