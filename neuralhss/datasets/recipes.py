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
