"""Step strategies: how the :class:`~neuralhss.train.trainer.Trainer` takes one optimisation step.

A strategy owns the optimizer (and, for low-rank training, the integrator around it) and turns
a batch loss into an update. The trainer calls, in this order:

* :meth:`StepStrategy.prepare` on the model before it is moved to the device (e.g. DLRT's
  in-place conversion to low-rank layers);
* :meth:`StepStrategy.build` once on the model on its device: makes ``self.optimizer``, over
  which the trainer builds the learning-rate schedule and whose state checkpoints keep;
* :meth:`StepStrategy.step` for every batch, with the loss of the batch and a function that
  recomputes it (a fresh forward pass, for integrators that need a closure);
* :meth:`StepStrategy.record` after every epoch and :meth:`StepStrategy.summary` at the end
  (extra entries of the epoch record and of the run's metrics).

:class:`PlainStep` is the dense AdamW/Adam step, :class:`DLRTStep` dynamical low-rank training
(:class:`neuralhss.lowrank.DLRT`) and :class:`GeoLoRAStep` the GeoLoRA adapter step
(:class:`neuralhss.lowrank.geolora.GeoLoRA`). :func:`make_strategy` picks one from a
``TrainConfig``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..models.registry import count_parameters

OptimizerFactory = Callable[[Any], torch.optim.Optimizer]


def make_optimizer(params, optimizer: str, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """AdamW or Adam over ``params``."""
    cls = torch.optim.AdamW if optimizer == "adamw" else torch.optim.Adam
    return cls(params, lr=lr, weight_decay=weight_decay)


class StepStrategy:
    """Base class: one optimizer over the model's parameters, ``zero_grad / backward / clip /
    step``. Subclasses override :meth:`build` and :meth:`step` (and :meth:`record`,
    :meth:`summary` to log more)."""

    optimizer: torch.optim.Optimizer

    def __init__(self, optimizer: str | OptimizerFactory = "adamw", lr: float = 1e-3,
                 weight_decay: float = 0.0, grad_clip: float | None = None) -> None:
        self.optimizer_spec, self.lr, self.weight_decay = optimizer, lr, weight_decay
        self.grad_clip = grad_clip
        self.model: nn.Module | None = None

    def new_optimizer(self, params) -> torch.optim.Optimizer:
        if callable(self.optimizer_spec):
            return self.optimizer_spec(params)
        return make_optimizer(params, self.optimizer_spec, self.lr, self.weight_decay)

    def prepare(self, model: nn.Module) -> nn.Module:
        """Change the model before training (in place); the default leaves it alone."""
        return model

    def build(self, model: nn.Module) -> None:
        self.model = model
        self.optimizer = self.new_optimizer(model.parameters())

    def step(self, loss: torch.Tensor, recompute: Callable[[], torch.Tensor]) -> torch.Tensor:
        """Update the model from the batch ``loss``; return the loss to report."""
        raise NotImplementedError

    def record(self) -> dict[str, Any]:
        """Extra entries of an epoch record."""
        return {}

    def summary(self) -> dict[str, Any]:
        """Extra entries of the run's metrics."""
        return {}


class PlainStep(StepStrategy):
    """Dense training: ``loss.backward()``, clip the global gradient norm, :meth:`update`
    (``optimizer.step()``)."""

    def zero_grad(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)

    def update(self) -> None:
        self.optimizer.step()

    def step(self, loss, recompute):
        self.zero_grad()
        loss.backward()
        if self.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.update()
        return loss


class DLRTStep(StepStrategy):
    """Dynamical low-rank training (:class:`neuralhss.lowrank.DLRT` around the optimizer).

    Parameters
    ----------
    dlrt : dict
        Keyword arguments of ``DLRT`` (``tau``, ``mode``, ``min_rank``, ``max_rank``,
        ``kappa_max``, ``kappa_rule``, ``beta``).
    closure : bool
        Recompute the core gradient exactly by a second forward/backward (always so with
        ``mode="kls"``).
    compress : dict or None
        :func:`neuralhss.lowrank.compress` arguments applied in place by :meth:`prepare`.
    """

    def __init__(self, dlrt: dict[str, Any], closure: bool = False,
                 compress: dict[str, Any] | None = None, **kw) -> None:
        super().__init__(**kw)
        self.dlrt_kwargs, self.closure, self.compress = dict(dlrt), bool(closure), compress
        self.integrator = None

    def prepare(self, model):
        return compress_in_place(model, self.compress)

    def build(self, model):
        from ..lowrank import DLRT

        super().build(model)
        self.integrator = DLRT(model, self.optimizer, **self.dlrt_kwargs)
        self.use_closure = self.closure or self.integrator.mode == "kls"
        self.penalised = self.integrator.beta > 0

    def _backward(self, value: torch.Tensor) -> None:
        integ = self.integrator
        (value + integ.penalty() if self.penalised else value).backward()
        clip_lowrank(integ, self.grad_clip)

    def step(self, loss, recompute):
        integ = self.integrator

        def objective() -> torch.Tensor:
            value = recompute()
            self._backward(value)
            return value

        integ.zero_grad()
        if integ.mode == "kls":  # KLS takes its gradients from its own passes
            loss = loss.detach()
        else:
            self._backward(loss)
        integ.step(objective if self.use_closure else None)
        return loss

    def record(self):
        return lowrank_record(self.integrator)

    def summary(self):
        return {"lowrank": {**lowrank_record(self.integrator),
                            "condition_numbers": self.integrator.condition_numbers()}}


class GeoLoRAStep(PlainStep):
    """GeoLoRA adapter training (:class:`neuralhss.lowrank.geolora.GeoLoRA`): one backward, then
    the optimizer step on the augmented cores and the rank truncation.

    The model must hold adapters (:func:`neuralhss.lowrank.geolora.add_adapters`); ``optimizer``
    is a name (``"adam"``, ``"adamw"``, with ``lr``, ``weight_decay``) or a factory
    ``params -> Optimizer``. ``tau``, ``budget`` and ``min_rank`` are GeoLoRA's.
    """

    def __init__(self, tau: float | None = None, budget: int | None = None, min_rank: int = 1,
                 **kw) -> None:
        kw.setdefault("optimizer", "adam")
        super().__init__(**kw)
        self.tau, self.budget, self.min_rank = tau, budget, min_rank
        self.geolora = None

    def build(self, model):
        from ..lowrank.geolora import GeoLoRA

        self.model = model
        self.geolora = GeoLoRA(model, self.new_optimizer, tau=self.tau, budget=self.budget,
                               min_rank=self.min_rank)
        self.optimizer = self.geolora.optimizer

    def zero_grad(self) -> None:
        self.geolora.zero_grad()

    def update(self) -> None:
        self.geolora.step()

    def record(self):
        return {"ranks": self.geolora.ranks(), "adapter_size": self.geolora.adapter_size()}

    def summary(self):
        return {"geolora": self.record()}


def compress_in_place(model: nn.Module, compress: dict[str, Any] | None) -> nn.Module:
    """:func:`neuralhss.lowrank.compress` ``model`` in place with these keyword arguments
    (``{}`` is the exact full-rank conversion); no-op for ``None``."""
    from ..lowrank import compress as compress_model

    if compress is None:
        return model
    kw = dict(compress)
    for key in ("kinds", "spectral_modes"):
        if key in kw:
            kw[key] = tuple(kw[key])
    compress_model(model, inplace=True, **kw)
    return model


def clip_lowrank(integ, max_norm: float | None) -> None:
    """Gradient clipping under DLRT: the norm of the gradients the optimizer applies (cores and
    dense parameters); the factors' gradients, which only give the new basis directions (and the
    one-pass core's new blocks), are scaled by the same coefficient."""
    if max_norm is None:
        return
    held = [p for g in integ.optimizer.param_groups for p in g["params"]]
    total = nn.utils.clip_grad_norm_(held, max_norm)
    coef = min(1.0, max_norm / (float(total) + 1e-6))
    if coef < 1.0:
        for layer in integ.layers.values():
            for f in layer.lowrank_factors():
                if f.grad is not None:
                    f.grad.mul_(coef)


def lowrank_record(integ) -> dict[str, Any]:
    """Ranks, largest condition number and parameter count of a DLRT-trained model."""
    kappas = integ.condition_numbers()
    return {"ranks": {k: list(v) if isinstance(v, tuple) else v for k, v in integ.ranks().items()},
            "kappa": max(kappas.values()), "n_params": count_parameters(integ.model)}


def make_strategy(config) -> StepStrategy:
    """The strategy a :class:`~neuralhss.train.loop.TrainConfig` asks for: :class:`DLRTStep`
    when ``config.lowrank`` is set, :class:`PlainStep` otherwise."""
    common = {"optimizer": config.optimizer, "lr": config.lr,
              "weight_decay": config.weight_decay, "grad_clip": config.grad_clip}
    if config.lowrank is None:
        return PlainStep(**common)
    lowrank = config.lowrank
    return DLRTStep(lowrank.dlrt_kwargs(), closure=bool(lowrank.closure), compress=lowrank.compress,
                    **common)
