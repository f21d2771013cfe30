"""Training configuration: :class:`TrainConfig` and its low-rank part :class:`LowRankConfig`.

Every default lives here, in the dataclass fields; ``neuralhss train`` derives its options,
their defaults and their help from these fields (:func:`cli_options`), so the two never
disagree. The low-rank fields default to ``None``, meaning the default of
:class:`neuralhss.lowrank.DLRT` (one place for the integrator's defaults).
"""

from __future__ import annotations

import json
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

import torch

from .._checks import check_number

OPTIMIZERS = ("adamw", "adam")
SCHEDULERS = ("cosine", "step", "none")


@dataclass
class LowRankConfig:
    """Dynamical low-rank training (:class:`neuralhss.lowrank.DLRT`); ``None`` = DLRT's default.

    Attributes
    ----------
    tau, mode, min_rank, max_rank, kappa_max, kappa_rule, beta
        ``DLRT``'s arguments (``tau`` defaults to 0.1; the penalty ``beta`` is added to the loss
        when > 0).
    closure : bool or None
        ``True`` recomputes the core gradient exactly by a second forward/backward (always so
        with ``mode="kls"``); default one backward per step.
    compress : dict or None
        Keyword arguments of :func:`neuralhss.lowrank.compress` (``tau``, ``rank``, ``kinds``,
        ``conv``, ``spectral_modes``) applied *in place* to the model's dense layers before
        training; without it the model must already hold low-rank layers.

    A plain dict with these keys is accepted wherever a ``LowRankConfig`` is
    (:meth:`from_dict`); :meth:`to_dict` gives back the keys that were set, which is what
    checkpoints record.
    """

    tau: float | None = None
    mode: str | None = None
    min_rank: int | None = None
    max_rank: int | None = None
    kappa_max: float | None = None
    kappa_rule: str | None = None
    beta: float | None = None
    closure: bool | None = None
    compress: dict[str, Any] | None = None

    @classmethod
    def from_dict(cls, value: LowRankConfig | dict[str, Any]) -> LowRankConfig:
        """A ``LowRankConfig`` from itself or a dict of its fields (unknown keys refused)."""
        if isinstance(value, cls):
            return value
        if not isinstance(value, dict):
            raise ValueError(f"lowrank={value!r} must be a LowRankConfig, a dict of DLRT settings "
                             "or None")
        bad = sorted(set(value) - set(LOWRANK_KEYS))
        if bad:
            raise ValueError(f"lowrank has unknown keys {bad}; use {list(LOWRANK_KEYS)}")
        return cls(**value)

    def to_dict(self) -> dict[str, Any]:
        """The fields that are set (not ``None``): the form checkpoints record."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    def get(self, key: str, default: Any = None) -> Any:
        """Dict-style read of a field (``None`` fields give ``default``)."""
        value = getattr(self, key)
        return default if value is None else value

    def dlrt_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``DLRT`` that are set."""
        return {k: v for k, v in self.to_dict().items() if k not in ("closure", "compress")}

    def validate(self) -> None:
        if self.compress is not None and not isinstance(self.compress, dict):
            raise ValueError(f"lowrank['compress']={self.compress!r} must be a dict of compress() "
                             "arguments")
        try:
            json.dumps(self.to_dict())
        except TypeError as exc:
            raise ValueError(f"lowrank must be JSON-serialisable (it is recorded): {exc}") from None


LOWRANK_KEYS = tuple(f.name for f in fields(LowRankConfig))


def _opt(help: str, **kw) -> dict[str, Any]:
    """Field metadata for the command line: help text and, optionally, choices."""
    return {"help": help, **kw}


@dataclass
class TrainConfig:
    """Optimisation settings (all recorded in checkpoints and ``metrics.json``).

    Attributes
    ----------
    epochs : int
        Passes over the training set.
    batch_size : int
        Global batch size (split evenly across processes under DDP).
    lr, weight_decay : float
        AdamW (or Adam) learning rate and decoupled weight decay.
    optimizer : {"adamw", "adam"}
    scheduler : {"cosine", "step", "none"}
        Per-epoch schedule: cosine annealing to ``lr * 1e-2`` or halving every
        ``max(1, epochs // 4)`` epochs.
    grad_clip : float or None
        Clip the global gradient norm to this value.
    seed : int
        Seeds model initialisation (done by the caller) and the data order.
    checkpoint_every : int
        Write ``checkpoint.pt`` every this many epochs (and at the end).
    device : str
        ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda[:i]"``.
    lowrank : LowRankConfig, dict or None
        Dynamical low-rank training (a dict is converted to :class:`LowRankConfig`):
        :func:`~neuralhss.train.fit` trains with the
        :class:`~neuralhss.train.strategies.DLRTStep` strategy, which wraps the optimizer in
        :class:`neuralhss.lowrank.DLRT` and calls ``DLRT.step()`` instead of
        ``optimizer.step()``. Ranks, ``κ`` and the parameter count are logged per epoch;
        checkpoints keep the rank-adapted shapes. ``grad_clip`` then bounds the norm of the
        gradients the optimizer applies (cores and dense parameters; the factors' gradients,
        which only set new basis directions, are scaled alike). Not with DDP (the low-rank
        parameters change shape).
    progress : bool
        Show a progress bar (not recorded).
    """

    epochs: int = field(default=100, metadata=_opt("passes over the training set"))
    batch_size: int = field(default=8, metadata=_opt("global batch size"))
    lr: float = field(default=1e-3, metadata=_opt("learning rate"))
    weight_decay: float = field(default=1e-4, metadata=_opt("decoupled weight decay"))
    optimizer: str = field(default="adamw", metadata=_opt("optimizer", choices=OPTIMIZERS))
    scheduler: str = field(default="cosine", metadata=_opt(
        "per-epoch schedule: cosine annealing to lr/100, halving every epochs/4, or none",
        choices=SCHEDULERS))
    grad_clip: float | None = field(default=1.0, metadata=_opt(
        "clip the global gradient norm to this value (0: no clipping)"))
    seed: int = field(default=0, metadata=_opt("seed of the model initialisation and data order"))
    checkpoint_every: int = field(default=10, metadata=_opt("epochs between checkpoints"))
    device: str = field(default="auto", metadata=_opt("auto (CUDA when available), cpu or cuda[:i]"))
    lowrank: LowRankConfig | None = None
    progress: bool = field(default=True, compare=False)

    def __post_init__(self) -> None:
        if self.lowrank is not None:
            self.lowrank = LowRankConfig.from_dict(self.lowrank)

    def validate(self) -> None:
        if int(self.epochs) != self.epochs or self.epochs < 1:
            raise ValueError(f"epochs={self.epochs!r} must be a positive integer")
        if int(self.batch_size) != self.batch_size or self.batch_size < 1:
            raise ValueError(f"batch_size={self.batch_size!r} must be a positive integer")
        check_number(self.lr, "lr")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer={self.optimizer!r}; use 'adamw' or 'adam'")
        if self.scheduler not in SCHEDULERS:
            raise ValueError(f"scheduler={self.scheduler!r}; use 'cosine', 'step' or 'none'")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"grad_clip={self.grad_clip!r} must be > 0 or None")
        if self.lowrank is not None:
            self.lowrank.validate()

    def resolved_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    def recorded(self) -> dict[str, Any]:
        """The settings checkpoints record: every field but ``progress``; ``lowrank`` as the
        keys that are set, and left out when ``None`` (so that checkpoints written before the
        field existed resume)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("progress", "lowrank")}
        if self.lowrank is not None:
            out["lowrank"] = self.lowrank.to_dict()
        return out


def cli_options() -> list[tuple[str, dict[str, Any]]]:
    """``(option, argparse keywords)`` for every command-line setting of :class:`TrainConfig`
    (all but ``lowrank`` and ``progress``), with the dataclass defaults and help."""
    out = []
    for f in fields(TrainConfig):
        if f.name in ("lowrank", "progress") or f.default is MISSING:
            continue
        kind = type(f.default)
        meta = dict(f.metadata)
        text = meta.pop("help", "")
        kw: dict[str, Any] = {"type": kind, "default": f.default,
                              "help": f"{text} (default {f.default})", **meta}
        out.append(("--" + f.name.replace("_", "-"), kw))
    return out
