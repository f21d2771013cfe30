"""Build models by name, so that scripts, the CLI and checkpoints share one vocabulary.

``build(name, **config)`` returns an ``nn.Module`` with a ``spec`` attribute
``{"name": name, "config": config, "version": SPEC_VERSION}`` (JSON-friendly) that checkpoints
store and :func:`from_spec` rebuilds. A spec records only the arguments given, so when a
constructor default changes, the old value is registered (:func:`register_earlier_defaults`)
and :func:`from_spec` passes it to specs written before the change.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

_BUILDERS: dict[str, Callable[..., nn.Module]] = {}

#: Version stamped on new specs: 1 (no ``version`` key) before neural_h2's
#: ``multiplicative`` default became True, 2 since.
SPEC_VERSION = 2

#: name -> {spec version: constructor defaults that specs of that version were built with,
#: where they differ from today's}.
_EARLIER: dict[str, dict[int, dict[str, Any]]] = {}


def register_earlier_defaults(name: str, version: int, **defaults: Any) -> None:
    """Record that specs of ``name`` with version at most ``version`` were built with
    ``defaults``: constructor defaults that changed when the spec version passed ``version``."""
    _EARLIER.setdefault(name, {})[int(version)] = dict(defaults)


def register(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator adding a model builder ``fn(**config) -> nn.Module`` under ``name``."""

    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _BUILDERS:
            raise ValueError(f"a model named {name!r} is already registered")
        _BUILDERS[name] = fn
        return fn

    return deco


def default_config(name: str, in_channels: int, out_channels: int,
                   grid_shape: tuple[int, ...]) -> dict[str, Any]:
    """A sensible configuration of model ``name`` for data of the given channels and grid."""
    if name not in _DEFAULTS:
        raise ValueError(f"unknown model {name!r}; available: {model_names()}")
    return _DEFAULTS[name](in_channels, out_channels, tuple(grid_shape))


_DEFAULTS: dict[str, Callable[[int, int, tuple[int, ...]], dict[str, Any]]] = {}


def register_defaults(name: str):
    """Decorator adding ``fn(in_channels, out_channels, grid_shape) -> config`` for ``name``."""

    def deco(fn):
        _DEFAULTS[name] = fn
        return fn

    return deco


def model_names() -> list[str]:
    """Registered model names."""
    return sorted(_BUILDERS)


def _jsonable(config: dict[str, Any]) -> dict[str, Any]:
    try:
        return json.loads(json.dumps(config))
    except TypeError as exc:
        raise ValueError(f"model config must be JSON-serialisable (numbers, strings, lists): {exc}") from None


def build(name: str, **config: Any) -> nn.Module:
    """Build the model ``name`` from keyword arguments (see each builder's docstring)."""
    if name not in _BUILDERS:
        raise ValueError(f"unknown model {name!r}; available: {model_names()}")
    config = _jsonable(config)
    model = _BUILDERS[name](**config)
    model.spec = {"name": name, "config": config, "version": SPEC_VERSION}
    return model


def from_spec(spec: dict[str, Any]) -> nn.Module:
    """Rebuild a model from its ``spec`` (as stored in a checkpoint), with the constructor
    defaults of the version that wrote it where they have changed since."""
    config = dict(spec["config"])
    version = int(spec.get("version", 1))
    # The latest change first, so that the value of the earliest period holding the spec wins.
    for v, defaults in sorted(_EARLIER.get(spec["name"], {}).items(), reverse=True):
        if version <= v:
            config = {**config, **{k: d for k, d in defaults.items() if k not in spec["config"]}}
    return build(spec["name"], **config)


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of real scalars in the parameters of a module (a complex parameter counts twice).

    The package's one count of "parameters of a module"; other counts name what they count
    (``neuralhss.hss.generator_count`` for an HSS configuration, ``Adapter.factor_size`` and
    ``GeoLoRA.adapter_size`` for what a GeoLoRA budget bounds).

    Parameters
    ----------
    model : nn.Module
    trainable_only : bool, default True
        Count only parameters with ``requires_grad``.

    Returns
    -------
    int
    """
    return sum(p.numel() * (2 if p.is_complex() else 1) for p in model.parameters()
               if p.requires_grad or not trainable_only)


def tensor_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """``state_dict`` restricted to tensors, loadable with ``torch.load(weights_only=True)``
    (neuraloperator adds a ``_metadata`` entry holding Python callables)."""
    return {k: v for k, v in model.state_dict().items() if torch.is_tensor(v)}
