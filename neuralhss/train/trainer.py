"""A small trainer: epochs of batches, a pluggable step strategy, callbacks for logging.

:class:`Trainer` runs the loop that :func:`neuralhss.train.fit` exposes: seeded data order (one
mechanism for one process and many, see :mod:`neuralhss.train.loop`), the learning-rate
schedule, checkpoints and exact resume (:mod:`neuralhss.train.state`), DDP under ``torchrun``.
What one step does belongs to its :class:`~neuralhss.train.strategies.StepStrategy` (dense,
DLRT, GeoLoRA); what is logged to :class:`Callback` objects. Subclasses override
:meth:`Trainer.train_one_epoch`, :meth:`Trainer.train_one_batch` or :meth:`Trainer.evaluate`;
a caller with its own sampling (e.g. steps drawn with replacement) can call
:meth:`Trainer.train_one_batch` directly after :meth:`Trainer.setup`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm.auto import tqdm

from . import distributed
from .metrics import evaluate, sample_errors
from .state import TrainState, check_out_dir, restore, run_lock, save_checkpoint
from .strategies import PlainStep, StepStrategy

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class Callback:
    """Hooks the trainer calls on the main process (rank 0); every method is optional."""

    def on_train_start(self, trainer: Trainer) -> None: ...

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None: ...

    def on_batch_end(self, trainer: Trainer, step: int, loss: float) -> None: ...

    def on_epoch_end(self, trainer: Trainer, epoch: int, record: dict[str, Any]) -> None: ...

    def on_train_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None: ...

    def on_train_stop(self, trainer: Trainer) -> None:
        """After the epochs, whether they finished or raised (release resources here)."""


class ProgressBar(Callback):
    """A tqdm bar over epochs showing the last epoch's training loss."""

    def __init__(self, key: str = "train_loss") -> None:
        self.key, self.bar = key, None

    def on_train_start(self, trainer):
        self.bar = tqdm(initial=trainer.state.epoch, total=trainer.epochs, desc=trainer.name,
                        unit="epoch")

    def on_epoch_end(self, trainer, epoch, record):
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{record[self.key]:.3e}")

    def on_train_stop(self, trainer):
        if self.bar is not None:
            self.bar.close()


class EpochCallback(Callback):
    """Calls ``fn(epoch, record)`` after each epoch (the ``callback`` of :func:`fit`)."""

    def __init__(self, fn: Callable[[int, dict[str, Any]], None]) -> None:
        self.fn = fn

    def on_epoch_end(self, trainer, epoch, record):
        self.fn(epoch, record)


def relative_lp_loss(dim: int) -> Loss:
    """neuraloperator's relative ``LpLoss`` (p = 2, mean over the batch) on ``dim`` axes."""
    from neuralop.losses import LpLoss

    return LpLoss(d=dim, p=2, reduction="mean").rel


class Trainer:
    """Train ``model`` by epochs over a dataset with a step ``strategy``.

    Parameters
    ----------
    model : nn.Module
        Maps ``(B, C_in, *grid)`` to ``(B, C_out, *grid)``.
    strategy : StepStrategy, optional
        How a step is taken (default: :class:`~neuralhss.train.strategies.PlainStep`).
    epochs, batch_size, seed : int
        Passes, global batch size (split evenly across processes), data-order seed.
    scheduler : callable, optional
        ``optimizer -> LRScheduler`` stepped once per epoch.
    loss : callable, optional
        ``loss(pred, y) -> scalar``; default neuraloperator's relative ``LpLoss`` (p = 2).
    device : torch.device or str
    out_dir : path, optional
        Run folder for ``checkpoint.pt`` (rank 0), resumed when it holds this run.
    checkpoint_every : int
        Epochs between checkpoints (and the last epoch).
    run : dict, optional
        What identifies the run in checkpoints (``{"spec", "config"}``).
    data, extra : dict, optional
        Recorded in checkpoints (see :mod:`neuralhss.train.state`).
    normalizer : Normalizer, optional
        Stored in checkpoints.
    callbacks : sequence of Callback
    """

    def __init__(self, model: nn.Module, strategy: StepStrategy | None = None, *, epochs: int = 1,
                 batch_size: int = 8, seed: int = 0,
                 scheduler: Callable[[torch.optim.Optimizer], Any] | None = None,
                 loss: Loss | None = None, device: torch.device | str = "cpu",
                 out_dir: str | os.PathLike | None = None, checkpoint_every: int = 1,
                 run: Mapping[str, Any] | None = None, data: Mapping[str, Any] | None = None,
                 extra: Mapping[str, Any] | None = None, normalizer=None,
                 callbacks: Sequence[Callback] = ()) -> None:
        self.model = model
        self.strategy = strategy if strategy is not None else PlainStep()
        self.epochs, self.batch_size, self.seed = epochs, batch_size, seed
        self.make_scheduler, self.loss_fn = scheduler, loss
        self.device = torch.device(device)
        self.out = Path(out_dir) if out_dir is not None else None
        self.checkpoint_every = checkpoint_every
        self.run = dict(run) if run is not None else None
        self.data, self.extra, self.normalizer = dict(data or {}), dict(extra or {}), normalizer
        self.callbacks = list(callbacks)
        self.info = distributed.current()
        self.state = TrainState()
        self.scheduler = None
        self.grid_shape: list[int] | None = None  # of the outputs, set by train()
        self.train_model: nn.Module = model
        self._built = self._locked = False

    @property
    def name(self) -> str:
        return getattr(self.model, "spec", {"name": type(self.model).__name__})["name"]

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        return self.strategy.optimizer

    # ---------------------------------------------------------------- setup

    def setup(self) -> None:
        """Prepare the model (strategy), move it to the device, build optimizer and schedule."""
        if self._built:
            return
        self.model = self.strategy.prepare(self.model).to(self.device)
        self.train_model = self.model
        self.strategy.build(self.model)
        self.scheduler = self.make_scheduler(self.optimizer) if self.make_scheduler else None
        self._built = True

    def _wrap_ddp(self) -> None:
        if self.info.active:
            self.train_model = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)

    def _emit(self, hook: str, *args) -> None:
        if self.info.is_main:
            for cb in self.callbacks:
                getattr(cb, hook)(self, *args)

    # ---------------------------------------------------------------- checkpoints

    def save(self) -> None:
        """Write ``checkpoint.pt`` (rank 0; nothing without a run folder)."""
        if self.out is None or not self.info.is_main:
            return
        save_checkpoint(self.out / "checkpoint.pt", run=self.run, model=self.model,
                        optimizer=self.optimizer, scheduler=self.scheduler, state=self.state,
                        data=self.data, normalizer=self.normalizer, grid_shape=self.grid_shape,
                        extra=self.extra)

    def resume(self) -> None:
        """Load the run folder's checkpoint, if it holds this run (refuse another run's)."""
        ckpt = check_out_dir(self.out, self.run, self.data)
        if ckpt is not None:
            self.state = restore(ckpt, self.model, self.optimizer, self.scheduler)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the run folder's lock (:func:`~neuralhss.train.state.run_lock`, rank 0) for the
        block; nested uses are no-ops."""
        if self.out is None or not self.info.is_main or self._locked:
            yield
            return
        with run_lock(self.out):
            self._locked = True
            try:
                yield
            finally:
                self._locked = False

    # ---------------------------------------------------------------- the loop

    def train(self, train_set: Dataset) -> TrainState:
        """Run the remaining epochs on ``train_set`` (resuming from the run folder)."""
        self.train_set = train_set
        self.grid_shape = list(train_set[0]["y"].shape[1:])
        if self.loss_fn is None:
            self.loss_fn = relative_lp_loss(len(self.grid_shape))
        self.setup()
        # Locked from the check of the folder to the last write into it: two runs into one
        # folder would interleave their checkpoints.
        with self.locked():
            if self.out is not None:
                self.resume()
            self._wrap_ddp()
            self.sampler = DistributedSampler(train_set, num_replicas=self.info.world_size,
                                              rank=self.info.rank, shuffle=True, seed=self.seed,
                                              drop_last=False)
            self.loader = DataLoader(train_set, batch_size=self.batch_size // self.info.world_size,
                                     sampler=self.sampler)
            self._emit("on_train_start")
            try:
                for epoch in range(self.state.epoch, self.epochs):
                    self._emit("on_epoch_start", epoch)
                    t0 = time.perf_counter()
                    record = self.train_one_epoch(epoch)
                    if self.scheduler is not None:
                        self.scheduler.step()
                    self.state.train_seconds += time.perf_counter() - t0
                    record["lr"] = self.optimizer.param_groups[0]["lr"]
                    record.update(self.strategy.record())
                    self.state.history.append(record)
                    self.state.epoch = epoch + 1
                    if (epoch + 1) % self.checkpoint_every == 0 or epoch + 1 == self.epochs:
                        self.save()
                    self._emit("on_epoch_end", epoch + 1, record)
            finally:
                self._emit("on_train_stop")
        return self.state

    def train_one_epoch(self, epoch: int) -> dict[str, Any]:
        """One pass over the data in epoch ``epoch``'s order; returns the epoch record:
        ``epoch`` (counted from 1), ``train_loss`` (mean batch loss weighted by batch size) and
        ``train_rel_l2`` (mean over the epoch's samples of their relative L2 error in data units,
        :mod:`neuralhss.train.metrics`, of the predictions made before each step)."""
        self.train_model.train()
        self.sampler.set_epoch(epoch)
        self.epoch = epoch
        total, errors, count = 0.0, 0.0, 0
        for step, batch in enumerate(self.loader):
            loss = self.train_one_batch(step, batch)
            n = len(batch["x"])
            total += loss * n
            errors += float(self.batch_errors.sum())
            count += n
            self._emit("on_batch_end", step, loss)
        return {"epoch": epoch + 1, "train_rel_l2": errors / count, "train_loss": total / count}

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The model's prediction for ``x`` (checked against the shape of ``y``)."""
        pred = self.train_model(x)
        if pred.shape != y.shape:
            raise ValueError(f"model output {tuple(pred.shape)} does not match the targets "
                             f"{tuple(y.shape)}: wrong out_channels or grid for this dataset")
        return pred

    def train_one_batch(self, step: int, batch: Mapping[str, torch.Tensor]) -> float:
        """Forward, check the loss, let the strategy step; returns the batch loss and keeps the
        batch's per-sample errors (:func:`~neuralhss.train.metrics.sample_errors`, before the
        step) in ``self.batch_errors``."""
        self.setup()
        x, y = batch["x"].to(self.device), batch["y"].to(self.device)
        pred = self.forward(x, y)
        loss = self.loss_fn(pred, y)
        if not torch.isfinite(loss):
            epoch = getattr(self, "epoch", 0)
            raise FloatingPointError(
                f"the loss became {loss.item()} at epoch {epoch + 1}, step {step + 1}; lower the "
                f"learning rate (lr={self.strategy.lr}) or check the data "
                "for NaN. The last checkpoint is kept")
        with torch.no_grad():
            self.batch_errors = sample_errors(pred.detach(), y, self.normalizer)
        loss = self.strategy.step(loss, lambda: self.loss_fn(self.forward(x, y), y))
        return loss.item()

    def evaluate(self, dataset: Dataset, batch_size: int | None = None) -> dict[str, float]:
        """:func:`neuralhss.train.metrics.evaluate` of the model on ``dataset`` (data units)."""
        return evaluate(self.model, dataset, self.normalizer, batch_size or self.batch_size,
                        self.device)
