"""What a training run saves and how it resumes: the checkpoint file, the run folder and its lock.

A checkpoint (``OUT/checkpoint.pt``, written atomically by :func:`save_checkpoint` through
:func:`neuralhss.io.atomic_write`) holds everything an exact resume needs and nothing that must
be unpickled as code (``torch.load(weights_only=True)`` reads it):

``format``, ``version``
    ``"neuralhss-checkpoint"``, 1.
``run``
    ``{"spec": model spec, "config": the recorded TrainConfig}``; a run folder holds one run.
``model``, ``optimizer``, ``scheduler``
    State dicts (low-rank layers at their trained ranks; the optimizer's state follows them).
``epoch``, ``history``, ``train_seconds``
    The :class:`TrainState`: epochs done, one record per epoch, time spent training.
``data``, ``normalizer``, ``grid_shape``, ``extra``
    What the run was trained on (``n_train`` and the caller's identity of the data), the
    normaliser's statistics, the output grid, and the caller's extra entries.

Resuming (:func:`restore`) loads the model first (low-rank layers resize their factors to the
stored ranks, keeping the Parameter objects the optimizer holds), then the optimizer and the
scheduler; the data order of epoch ``e`` depends only on ``seed + e``, so a resumed run takes the
same steps as an uninterrupted one.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..io import atomic_write
from ..models.registry import tensor_state_dict

CHECKPOINT_FORMAT = "neuralhss-checkpoint"
CHECKPOINT_VERSION = 1


@dataclass
class TrainState:
    """The progress of a run: epochs done, per-epoch records, seconds spent training."""

    epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    train_seconds: float = 0.0


def save_checkpoint(path: str | os.PathLike, *, run: Mapping[str, Any], model: nn.Module,
                    optimizer: torch.optim.Optimizer,
                    scheduler: torch.optim.lr_scheduler.LRScheduler | None, state: TrainState,
                    data: Mapping[str, Any], normalizer=None, grid_shape: list[int] | None = None,
                    extra: Mapping[str, Any] | None = None) -> None:
    """Write the checkpoint of a run atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    obj = {
        "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "run": run,
        "model": tensor_state_dict(model), "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "epoch": state.epoch, "history": state.history, "train_seconds": state.train_seconds,
        "data": dict(data), "normalizer": normalizer.to_dict() if normalizer is not None else None,
        "grid_shape": grid_shape, "extra": dict(extra or {}),
    }
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def replace_model_state(path: str | os.PathLike, model: nn.Module,
                        extra: Mapping[str, Any] | None = None) -> None:
    """Write ``model``'s weights (and more ``extra`` entries) into the finished run's checkpoint
    at ``path``, atomically, leaving its optimizer, schedule and history as they were: for a
    change made to the trained model after its last epoch (e.g. ``neural_h2``'s fallback to its
    convex start), which a resumed run then loads."""
    ckpt = load_checkpoint(path)
    ckpt["model"] = tensor_state_dict(model)
    ckpt["extra"] = {**ckpt.get("extra", {}), **dict(extra or {})}
    atomic_write(Path(path), lambda tmp: torch.save(ckpt, tmp))


def restore(ckpt: Mapping[str, Any], model: nn.Module, optimizer: torch.optim.Optimizer,
            scheduler: torch.optim.lr_scheduler.LRScheduler | None) -> TrainState:
    """Load a checkpoint's model, optimizer and scheduler states; return its :class:`TrainState`.

    Low-rank layers resize their factors and cores (same Parameter objects, which the
    integrator's optimizer holds) to the stored ranks, so the optimizer state fits.
    """
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(ckpt["scheduler"])
    return TrainState(ckpt["epoch"], ckpt["history"], ckpt["train_seconds"])


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint written by :func:`neuralhss.train.fit` (``weights_only=True``: no code
    is unpickled).

    Raises
    ------
    FileNotFoundError, ValueError
        Missing file; unreadable, corrupted or foreign file.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated or foreign files
        raise ValueError(f"checkpoint {path} is corrupted or not a torch file "
                         f"({type(exc).__name__}); delete it to retrain") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a neuralhss checkpoint")
    return ckpt


def _differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    """``"key: old (run folder) vs new (now)"`` for the keys the two share and that differ."""
    return ", ".join(f"{k}: {old[k]!r} (run folder) vs {new[k]!r} (now)"
                     for k in sorted(set(old) & set(new)) if old[k] != new[k])


def check_out_dir(out_dir: str | os.PathLike, run: Mapping[str, Any] | None = None,
                  data: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """Refuse a run folder that belongs to another run; return its checkpoint (or ``None``).

    A run folder holds one (data, model, config): ``out_dir`` must be a folder (or not exist),
    and a ``checkpoint.pt`` in it must record the same ``run`` (model and config) and the same
    ``data`` (keys recorded on both sides are compared, so checkpoints written before ``data``
    was recorded still resume).

    Raises
    ------
    FileExistsError
        ``out_dir`` is a file, or holds a run on other data or with another model or config.
    ValueError
        The checkpoint there is corrupted or foreign.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} is a file, not a run folder; give a new folder or one that "
                              "holds this run")
    ckpt_path = out / "checkpoint.pt"
    if not ckpt_path.exists():
        return None
    ckpt = load_checkpoint(ckpt_path)
    if run is not None and ckpt["run"] != run:
        raise FileExistsError(f"{ckpt_path} belongs to another run (model or config differ); "
                              "use another --out folder or delete it")
    if data is not None:
        old = ckpt.get("data", {"n_train": ckpt.get("extra", {}).get("n_train")})
        diff = _differences(old, data)
        if diff:
            raise FileExistsError(f"{ckpt_path} was trained on other data ({diff}); use another "
                                  "--out folder or delete it")
    return ckpt


@contextmanager
def run_lock(out_dir: str | os.PathLike) -> Iterator[None]:
    """Hold ``out_dir/.lock`` so that two processes never train into the same folder.

    ``flock`` is released by the kernel when the holder dies, so a killed run never blocks the
    next one. A folder this call had to create is removed again if nothing else was written.
    """
    out = Path(out_dir)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    lock = out / ".lock"
    try:
        with open(lock, "a+") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.seek(0)
                pid = fh.read().strip() or "?"
                raise RuntimeError(f"process {pid} is training into {out}; wait for it to finish "
                                   "or use another --out folder") from None
            fh.seek(0)
            fh.truncate()
            fh.write(f"{os.getpid()}\n")
            fh.flush()
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
    finally:
        if created and [p.name for p in out.iterdir()] == [".lock"]:
            lock.unlink()
            out.rmdir()
