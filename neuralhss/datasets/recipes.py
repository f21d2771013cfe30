"""Dataset recipes: YAML files naming a problem, its parameters, sample count and seed.

::

    problem: darcy
    samples: 1100
    seed: 0
    params:
      dim: 2
      resolution: 64

The standard recipes live in the repository's top-level ``datasets/`` folder.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .problems import get_problem

RECIPE_KEYS = {"problem", "samples", "seed", "params", "description"}


@dataclass
class Recipe:
    """A parsed recipe; ``params`` are validated against the problem."""

    problem: str
    samples: int
    seed: int = 0
    params: dict[str, Any] = field(default_factory=dict)
    description: str = ""


def load_recipe(path: str | os.PathLike) -> Recipe:
    """Read and validate a YAML recipe.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If a key is unknown or missing, or a parameter is invalid for the problem.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"recipe {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ValueError(f"recipe {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"recipe {path} must be a mapping with keys {sorted(RECIPE_KEYS)}")
    unknown = set(data) - RECIPE_KEYS
    if unknown:
        raise ValueError(f"recipe {path} has unknown key(s) {sorted(unknown)}; "
                         f"allowed: {sorted(RECIPE_KEYS)}")
    for key in ("problem", "samples"):
        if key not in data:
            raise ValueError(f"recipe {path} lacks the required key {key!r}")
    recipe = Recipe(problem=str(data["problem"]), samples=int(data["samples"]),
                    seed=int(data.get("seed", 0)), params=dict(data.get("params") or {}),
                    description=str(data.get("description", "")))
    get_problem(recipe.problem).resolve(recipe.params)  # fail early on bad parameters
    return recipe


def resolve_target(target: str, *, dim: int | None = None,
                   resolution: int | Sequence[int] | None = None,
                   params: Mapping[str, Any] | Iterable[tuple[str, Any]] = (),
                   samples: int | None = None, seed: int | None = None,
                   ) -> tuple[str, dict[str, Any], int | None, int]:
    """``(problem, params, samples, seed)`` of a generation target with overrides applied.

    ``target`` is a problem name or a recipe file (``.yaml``/``.yml``, :func:`load_recipe`).
    The recipe's values come first; ``dim``, ``resolution`` (one value for every axis, or one
    per axis), ``params`` (any other problem parameter), ``samples`` and ``seed`` override
    them when given. ``samples`` is ``None`` when neither names it; ``seed`` defaults to 0.
    """
    merged: dict[str, Any] = {}
    recipe_samples, recipe_seed = None, 0
    if target.endswith((".yaml", ".yml")):
        recipe = load_recipe(target)
        problem, merged = recipe.problem, dict(recipe.params)
        recipe_samples, recipe_seed = recipe.samples, recipe.seed
    else:
        problem = target
    if dim is not None:
        merged["dim"] = dim
    if resolution is not None:
        if not isinstance(resolution, int):
            resolution = resolution[0] if len(resolution) == 1 else list(resolution)
        merged["resolution"] = resolution
    merged.update(dict(params))
    return (problem, merged, samples if samples is not None else recipe_samples,
            seed if seed is not None else recipe_seed)
