"""Reading datasets back: a lazy PyTorch ``Dataset`` (the ``xarray`` view is in ``xarray_view``).

Train/test split (deterministic): if the file has a ``/split`` dataset (0 = train, 1 = test),
it decides; otherwise the **last** ``n_test`` samples are the test set and the others the
training set. ``n`` then takes the first ``n`` samples of the chosen split, so growing ``n``
adds samples without changing the earlier ones (what low-data sweeps need).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from .schema import Meta, field_paths, read_meta


@dataclass
class Normalizer:
    """Per-channel affine normalisation ``(v - mean) / std`` of inputs and outputs.

    ``x_mean``, ``x_std`` have shape ``(C_in,)``; ``y_mean``, ``y_std`` shape ``(C_out,)``.
    """

    x_mean: np.ndarray
    x_std: np.ndarray
    y_mean: np.ndarray
    y_std: np.ndarray

    def to_dict(self) -> dict[str, list[float]]:
        return {k: np.asarray(v).tolist() for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, d: dict) -> Normalizer:
        return cls(**{k: np.asarray(v, dtype=np.float64) for k, v in d.items()})

    def decode_y(self, y, dim: int):
        """Undo the output normalisation of ``y`` with shape ``(..., C_out, *grid)``, ``dim`` spatial axes."""
        shape = (-1,) + (1,) * dim
        mean, std = self.y_mean.reshape(shape), self.y_std.reshape(shape)
        if isinstance(y, np.ndarray):
            return y * std + mean
        import torch

        return y * torch.as_tensor(std, dtype=y.dtype, device=y.device) + torch.as_tensor(
            mean, dtype=y.dtype, device=y.device)


def split_indices(f: h5py.File, meta: Meta, split: str, n_test: int | float) -> np.ndarray:
    """Sample indices of ``split`` ("train" or "test") in a file (module docstring)."""
    if split not in ("train", "test"):
        raise ValueError(f"split={split!r}; use 'train' or 'test'")
    done = f["done"][...]
    if "split" in f:
        flags = f["split"][...].astype(bool)
        idx = np.flatnonzero(flags if split == "test" else ~flags)
    else:
        n = meta.n_samples
        k = int(round(n_test * n)) if isinstance(n_test, float) else int(n_test)
        if not 0 < k < n:
            raise ValueError(f"n_test={n_test!r} leaves no train or no test samples out of {n}; "
                             "use 0 < n_test < n_samples (an int) or a fraction in (0, 1)")
        idx = np.arange(n - k, n) if split == "test" else np.arange(0, n - k)
    if not done[idx].all():
        raise ValueError(f"{f.filename} is incomplete ({int((~done[idx]).sum())} samples of the "
                         f"{split} split not done); finish generating it first")
    return idx


class PDEDataset:
    """A PyTorch map-style dataset over a neuralhss HDF5 file.

    Items are ``{"x": (C_in, *grid), "y": (C_out, *grid)}`` float32 tensors, the channels being
    the file's input and output fields in order (a trajectory field ``(n_t, *grid)``
    contributes one channel per selected snapshot, see ``time_index``). Samples are read
    lazily, one chunk per field; the file is opened on first access in each process, so the
    dataset is safe with ``DataLoader`` workers.

    Parameters
    ----------
    path : path
        A complete schema-v1 file (``neuralhss check`` passes).
    split : {"train", "test"}, default "train"
        Which split (module docstring).
    n : int, optional
        Use only the first ``n`` samples of the split.
    n_test : int or float, default 0.2
        Size of the test split when the file defines none: a count, or a fraction of all samples.
    normalize : None, "gaussian", "scale" or Normalizer, default None
        ``"gaussian"``: per-channel mean/std of the samples this dataset holds when
        ``split="train"``, or of the whole train split when ``split="test"``. ``"scale"``:
        divide by the per-channel root-mean-square only (no shift), which keeps a linear
        operator linear. A :class:`Normalizer` (e.g. ``train_set.normalizer``) applies given
        statistics.
    time_index : int or sequence of int, optional
        Snapshots of trajectory fields to use (indices into ``/coords/t``; ``-1`` is the final
        time T, the usual operator-learning target). Default: all snapshots, as channels.
    """

    def __init__(self, path: str | os.PathLike, split: str = "train", n: int | None = None,
                 n_test: int | float = 0.2, normalize: str | Normalizer | None = None,
                 time_index: int | Sequence[int] | None = None) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"{self.path} does not exist; generate it with "
                                    "`neuralhss generate`")
        with h5py.File(self.path, "r") as f:
            self.meta = read_meta(f)
            self.fields = field_paths(self.meta)
            missing = [p for p in self.fields if p not in f]
            if missing:
                raise ValueError(f"{self.path} lacks fields {missing}; run `neuralhss check`")
            indices = split_indices(f, self.meta, split, n_test)
            if n is not None:
                if int(n) != n or not 0 < n <= len(indices):
                    raise ValueError(f"n={n!r} but the {split} split of {self.path} has "
                                     f"{len(indices)} samples; use 1 <= n <= {len(indices)}")
                indices = indices[: int(n)]
            self.indices = indices
            self.time_index = self._time_selection(time_index)
            self._temporal = {p for p in self.fields
                              if p.split("/", 1)[1] in self.meta.temporal_fields}
            self._channels = {p: (len(self.time_index) if p in self._temporal else 1)
                              for p in self.fields}
            self.split = split
            self.normalizer: Normalizer | None
            if normalize is None or isinstance(normalize, Normalizer):
                self.normalizer = normalize
            elif normalize in ("gaussian", "scale"):
                stats_idx = indices if split == "train" else split_indices(f, self.meta, "train",
                                                                            n_test)
                self.normalizer = self._statistics(f, stats_idx, center=normalize == "gaussian")
            else:
                raise ValueError(f"normalize={normalize!r}; use None, 'gaussian', 'scale' or a "
                                 "Normalizer")
        self._file: h5py.File | None = None
        self._pid: int | None = None

    def _time_selection(self, time_index: int | Sequence[int] | None) -> list[int]:
        n_t = len(self.meta.times) if self.meta.times is not None else 0
        if time_index is None:
            return list(range(n_t))
        if not n_t:
            raise ValueError(f"time_index={time_index!r} but {self.path} has no trajectory fields; "
                             "leave time_index unset")
        sel = [time_index] if isinstance(time_index, (int, np.integer)) else list(time_index)
        bad = [t for t in sel if not -n_t <= int(t) < n_t]
        if bad or not sel:
            raise ValueError(f"time_index={time_index!r} is out of range for {n_t} snapshots; "
                             f"use indices in [-{n_t}, {n_t - 1}]")
        return [int(t) % n_t for t in sel]

    @property
    def times(self) -> list[float] | None:
        """Times of the selected snapshots (``None`` for stationary data)."""
        return None if self.meta.times is None else [self.meta.times[t] for t in self.time_index]

    @property
    def in_channels(self) -> int:
        return sum(self._channels[p] for p in self.fields if p.startswith("inputs/"))

    @property
    def out_channels(self) -> int:
        return sum(self._channels[p] for p in self.fields if p.startswith("outputs/"))

    @property
    def grid_shape(self) -> tuple[int, ...]:
        return self.meta.grid.shape

    def _statistics(self, f: h5py.File, idx: np.ndarray, center: bool = True) -> Normalizer:
        stats = {}
        for group in ("inputs", "outputs"):
            means, stds = [], []
            for p in (q for q in self.fields if q.startswith(group + "/")):
                ds = f[p]
                count = 0
                per = np.zeros((self._channels[p], 2))
                for i in idx:  # one sample at a time: memory stays at one sample
                    v = self._field(ds, p, int(i)).astype(np.float64).reshape(self._channels[p], -1)
                    per[:, 0] += v.sum(axis=1)
                    per[:, 1] += (v**2).sum(axis=1)
                    count += v.shape[1]
                s1, s2 = per[:, 0] / count, per[:, 1] / count
                if not center:  # scale only (RMS): keeps a linear operator linear
                    s1 = np.zeros_like(s1)
                means.extend(s1)
                stds.extend(np.sqrt(np.maximum(s2 - s1**2, 0.0)))
            stds_arr = np.asarray(stds)
            stds_arr[stds_arr == 0] = 1.0  # a constant channel (e.g. f = 1) stays as is
            stats[group] = (np.asarray(means), stds_arr)
        return Normalizer(stats["inputs"][0], stats["inputs"][1],
                          stats["outputs"][0], stats["outputs"][1])

    def __len__(self) -> int:
        return len(self.indices)

    def subset(self, items: slice | Sequence[int]) -> PDEDataset:
        """A dataset over some of this one's items (same file, split, normalisation).

        E.g. a validation set disjoint from the first ``n`` training samples:
        ``PDEDataset(path, "train").subset(slice(-100, None))``.
        """
        import copy

        out = copy.copy(self)
        out.indices = self.indices[items] if isinstance(items, slice) else \
            self.indices[np.asarray(items, dtype=np.int64)]
        if len(out.indices) == 0:
            raise ValueError(f"subset {items!r} of {len(self)} items is empty")
        out._file, out._pid = None, None
        return out

    def _field(self, ds: h5py.Dataset, path: str, j: int) -> np.ndarray:
        if path not in self._temporal:
            return ds[j]
        if self.time_index == list(range(ds.shape[1])):
            return ds[j]
        return np.stack([ds[j, t] for t in self.time_index])  # one chunk per snapshot

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_file"] = None  # h5py handles cannot cross processes; each worker reopens
        state["_pid"] = None
        return state

    def _handle(self) -> h5py.File:
        if self._file is None or self._pid != os.getpid():
            self._file = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return self._file

    def read(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Raw (unnormalised) float32 ``(x, y)`` arrays of item ``i``."""
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} samples")
        f = self._handle()
        j = int(self.indices[i])
        grid = self.meta.grid.shape
        parts = {"inputs": [], "outputs": []}
        for p in self.fields:
            parts[p.split("/")[0]].append(self._field(f[p], p, j).reshape(-1, *grid))
        return (np.concatenate(parts["inputs"]).astype(np.float32),
                np.concatenate(parts["outputs"]).astype(np.float32))

    def __getitem__(self, i: int) -> dict:
        import torch

        x, y = self.read(i)
        if self.normalizer is not None:
            nrm, shape = self.normalizer, (-1,) + (1,) * self.meta.grid.dim
            x = (x - nrm.x_mean.reshape(shape)) / nrm.x_std.reshape(shape)
            y = (y - nrm.y_mean.reshape(shape)) / nrm.y_std.reshape(shape)
        return {"x": torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)),
                "y": torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32))}

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """All items stacked: ``X (n, C_in, *grid)``, ``Y (n, C_out, *grid)`` (normalised if set)."""
        items = [self[i] for i in range(len(self))]
        return (np.stack([it["x"].numpy() for it in items]),
                np.stack([it["y"].numpy() for it in items]))

    def __repr__(self) -> str:
        return (f"PDEDataset({str(self.path)!r}, split={self.split!r}, n={len(self)}, "
                f"x=({self.in_channels}, {self.grid_shape}), y=({self.out_channels}, "
                f"{self.grid_shape}))")

