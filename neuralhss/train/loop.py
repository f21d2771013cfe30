"""Training runs from a configuration: :func:`fit` (relative L2 loss, AdamW with a schedule,
clipping, checkpoints, resume, DDP, and dynamical low-rank training with
``TrainConfig(lowrank=...)``, :class:`neuralhss.lowrank.DLRT`) and :func:`evaluate`.

:func:`fit` builds a :class:`~neuralhss.train.trainer.Trainer` with the step strategy the
configuration asks for (:func:`~neuralhss.train.strategies.make_strategy`); checkpoints and
resume live in :mod:`neuralhss.train.state`.

One mechanism serves one process and many: the data order of epoch ``e`` is
``torch.randperm(n, generator seeded with seed + e)`` (``DistributedSampler``'s), and with ``K``
processes rank ``r`` takes every ``K``-th sample of it. A global batch is therefore the same set
of samples whatever ``K``, and DDP's gradient averaging makes ``K``-process training equal to
single-process training on the same global batch (up to floating-point summation order).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from ..models.registry import count_parameters
from . import distributed
from .checkpoint import model_from_checkpoint  # noqa: F401  (re-exported)
from .config import LOWRANK_KEYS, LowRankConfig, TrainConfig  # noqa: F401  (re-exported)
from .metrics import evaluate, relative_l2  # noqa: F401  (re-exported)
from .state import (  # noqa: F401  (re-exported: the checkpoint API's historical home)
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    TrainState,
    check_out_dir,
    load_checkpoint,
    run_lock,
)
from .strategies import compress_in_place, make_strategy
from .trainer import Callback, EpochCallback, ProgressBar, Trainer


def prepare_lowrank(model: nn.Module, lowrank: LowRankConfig | dict[str, Any]) -> nn.Module:
    """Apply ``lowrank.compress`` (``compress`` keyword arguments; ``{}`` is the exact
    full-rank conversion) to ``model`` in place and return it; no-op without it."""
    return compress_in_place(model, LowRankConfig.from_dict(lowrank).compress)


class InMemory(Dataset):
    """Samples held as two tensors ``X (n, C_in, *grid)``, ``Y (n, C_out, *grid)``."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        if len(x) != len(y):
            raise ValueError(f"x has {len(x)} samples but y has {len(y)}")
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[i], "y": self.y[i]}


def to_memory(dataset: Dataset) -> InMemory:
    """Read every item of a dataset once (small low-data training sets)."""
    items = [dataset[i] for i in range(len(dataset))]
    return InMemory(torch.stack([it["x"] for it in items]), torch.stack([it["y"] for it in items]))


def _make_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig):
    if cfg.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs, eta_min=cfg.lr * 1e-2)
    if cfg.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=max(1, cfg.epochs // 4), gamma=0.5)
    return None


def fit(
    model: nn.Module,
    train_set: Dataset,
    config: TrainConfig,
    out_dir: str | os.PathLike | None = None,
    test_set: Dataset | None = None,
    normalizer=None,
    extra: dict[str, Any] | None = None,
    callback: Callable[[int, dict[str, float]], None] | None = None,
    data: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Train ``model`` on ``train_set``; resume from ``out_dir/checkpoint.pt`` when it exists.

    Parameters
    ----------
    model : nn.Module
        Maps ``(B, C_in, *grid)`` to ``(B, C_out, *grid)``; a model from
        :func:`neuralhss.models.build` carries the ``spec`` that checkpoints record.
    train_set, test_set : Dataset
        Items ``{"x", "y"}`` (e.g. :class:`neuralhss.datasets.PDEDataset`).
    config : TrainConfig
    out_dir : path, optional
        Where ``checkpoint.pt`` and ``metrics.json`` go (rank 0 only). A checkpoint there with
        the same model and config is resumed; one with another model or config is refused.
    normalizer : Normalizer, optional
        Stored in the checkpoint and used to report test errors in data units.
    extra : dict, optional
        More JSON-friendly entries for ``metrics.json`` (e.g. the data file).
    callback : callable, optional
        ``callback(epoch, record)`` after each epoch (rank 0).
    data : mapping, optional
        What the run is trained on (e.g. the dataset's identity and split), recorded in the
        checkpoint with ``n_train``. A checkpoint in ``out_dir`` trained on other data, or with
        another model or config, is refused (:func:`check_out_dir`); so is a file as
        ``out_dir``. The folder is locked (:func:`run_lock`) while the run lasts.

    Returns
    -------
    dict
        The metrics also written to ``metrics.json``: ``train_rel_l2`` and ``test_rel_l2``
        (:func:`evaluate` of the trained model on the training and the test set: one
        definition, relative L2 over all channels per sample, mean over samples, data units
        when ``normalizer`` is given), ``n_params``, ``train_seconds``, ``n_train``,
        ``epochs``... Each epoch's history record (in ``checkpoint.pt``) carries ``train_loss``
        (the optimised loss, mean over the epoch's batches) and ``train_rel_l2`` (the same
        metric on the predictions made during the epoch, before each step).
        With ``config.lowrank``, also ``lowrank``: final ``ranks``, ``kappa`` (largest
        condition number), ``n_params`` and per-layer ``condition_numbers``; each epoch's
        history record carries ``ranks``, ``kappa`` and ``n_params``. ``model`` is trained in
        place (and converted in place when ``lowrank["compress"]`` is given);
        :func:`model_from_checkpoint` rebuilds it from ``checkpoint.pt``.
    """
    config.validate()
    info = distributed.current()
    device = config.resolved_device()
    if info.active and device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
    if config.batch_size % info.world_size:
        raise ValueError(f"batch_size={config.batch_size} is not divisible by the "
                         f"{info.world_size} processes; choose a multiple")
    n_train = len(train_set)
    if n_train == 0:
        raise ValueError("the training set is empty")
    if config.lowrank is not None and info.active:
        raise ValueError("low-rank training (config.lowrank) changes parameter shapes, which "
                         "DistributedDataParallel does not support; train in one process")
    strategy = make_strategy(config)
    spec = getattr(model, "spec", {"name": type(model).__name__, "config": {}})
    run = {"spec": spec, "config": config.recorded()}
    callbacks: list[Callback] = [ProgressBar()] if config.progress else []
    if callback is not None:
        callbacks.append(EpochCallback(callback))
    trainer = Trainer(model, strategy, epochs=config.epochs, batch_size=config.batch_size,
                      seed=config.seed, scheduler=lambda opt: _make_scheduler(opt, config),
                      device=device, out_dir=out_dir, checkpoint_every=config.checkpoint_every,
                      run=run, data={"n_train": n_train, **(data or {})},
                      extra={"n_train": n_train, **(extra or {})}, normalizer=normalizer,
                      callbacks=callbacks)
    out = Path(out_dir) if out_dir is not None else None
    with trainer.locked():
        history = trainer.train(train_set).history
        model = trainer.model
        metrics: dict[str, Any] = {
            "model": spec["name"], "model_config": spec["config"], "n_params": count_parameters(model),
            "n_train": n_train, "epochs": config.epochs, "train_seconds": trainer.state.train_seconds,
            "train_rel_l2": float("nan"), "train_config": run["config"],
        }
        if history:
            # the training error as evaluate defines it, after training; the global RNG is left
            # as it was (evaluate's DataLoader draws a seed)
            with torch.random.fork_rng(devices=[]):
                metrics["train_rel_l2"] = evaluate(model, train_set, normalizer, config.batch_size,
                                                   device)["test_rel_l2"]
        metrics.update(strategy.summary())
        if test_set is not None and info.is_main:
            metrics.update(evaluate(model, test_set, normalizer, config.batch_size, device))
        metrics.update(extra or {})
        if out is not None and info.is_main:
            out.mkdir(parents=True, exist_ok=True)
            (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    distributed.barrier()
    return metrics
