"""The problem abstraction and its registry: what a sample's inputs are and which solver maps
them to the outputs.

A problem owns its parameters (with defaults and validation), its grid, and a ``sample``
function that draws sample ``i`` from a ``numpy.random.Generator``. Generation derives that
generator from ``SeedSequence(seed, spawn_key=(i,))`` (equal to ``SeedSequence(seed).spawn(n)[i]``),
so a dataset is the same whatever the number of workers or shards.

New problems register with :func:`register`; the CLI and recipes find them by name.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...grid import Grid


@dataclass(frozen=True)
class FieldSpec:
    """One stored field: its name in the HDF5 file, a description and its unit.

    A ``temporal`` field is a trajectory: one sample is ``(n_t, *grid)``, the snapshots at the
    problem's :meth:`Problem.times`.
    """

    name: str
    description: str
    units: str = "1"
    temporal: bool = False


@dataclass(frozen=True)
class Problem:
    """A dataset problem.

    Attributes
    ----------
    name : str
        Registry name, e.g. ``"poisson"``.
    description : str
        One line for ``neuralhss generate --help`` and the file's attributes.
    defaults : dict
        Every parameter with its default value; unknown parameters are refused.
    inputs, outputs : tuple of FieldSpec
        Stored fields, in channel order.
    draw : callable
        ``draw(params, grid, rng) -> dict[name, float64 array]`` for all fields, each of the
        grid's shape, or ``(n_t, *grid)`` for a trajectory field.
    check : callable
        ``check(params)`` raises ``ValueError`` for invalid parameter values.
    snapshot_times : callable, optional
        ``snapshot_times(params) -> 1-D array`` of the times of the trajectory fields
        (problems with ``temporal`` fields must give it).
    added : dict, optional
        Parameters added after files of the problem had been written, each with the value
        those files were made with (which may differ from today's default), so that a file or
        interrupted run without the key is compared as what it is (:meth:`with_added`).
    """

    name: str
    description: str
    defaults: Mapping[str, Any]
    inputs: tuple[FieldSpec, ...]
    outputs: tuple[FieldSpec, ...]
    draw: Callable[[dict, Grid, np.random.Generator], dict[str, np.ndarray]]
    check: Callable[[dict], None] = field(default=lambda params: None)
    snapshot_times: Callable[[dict], np.ndarray] | None = None
    added: Mapping[str, Any] = field(default_factory=dict)

    def with_added(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Stored parameters with every parameter of :attr:`added` they lack filled in."""
        return {**self.added, **params}

    def resolve(self, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Fill defaults, validate, and return canonical (JSON-stable) parameters."""
        params = dict(params or {})
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            raise ValueError(f"unknown parameter(s) {unknown} for problem {self.name!r}; "
                             f"known: {sorted(self.defaults)}")
        out = {**self.defaults, **params}
        dim = out["dim"]
        if dim not in (1, 2, 3):
            raise ValueError(f"dim={dim!r} must be 1, 2 or 3")
        grid = Grid(_per_axis_int(out["resolution"], dim), out["lengths"], out.get("bc", "dirichlet"))
        out["resolution"] = list(grid.shape)
        out["lengths"] = list(grid.lengths)
        if "bc" in out:
            out["bc"] = grid.bc[0] if len(set(grid.bc)) == 1 else list(grid.bc)
        self.check(out)
        # A JSON round trip turns tuples into lists and numpy scalars into Python ones, so
        # parameters compare equal to what was stored in a file.
        return json.loads(json.dumps(out, sort_keys=True, default=_json_default))

    def grid(self, params: Mapping[str, Any]) -> Grid:
        """The grid the problem's fields live on."""
        return Grid(tuple(params["resolution"]), tuple(params["lengths"]),
                    params.get("bc", "dirichlet"))

    @property
    def field_specs(self) -> tuple[FieldSpec, ...]:
        return self.inputs + self.outputs

    def times(self, params: Mapping[str, Any]) -> np.ndarray | None:
        """Snapshot times of the trajectory fields, or ``None`` for a stationary problem."""
        if not any(s.temporal for s in self.field_specs):
            return None
        if self.snapshot_times is None:  # pragma: no cover - guards new problem definitions
            raise RuntimeError(f"problem {self.name!r} has trajectory fields but no snapshot_times")
        return np.asarray(self.snapshot_times(dict(params)), dtype=np.float64)

    def field_shape(self, spec: FieldSpec, params: Mapping[str, Any]) -> tuple[int, ...]:
        """Shape of one sample of a field: the grid, or ``(n_t, *grid)`` for a trajectory."""
        grid = self.grid(params).shape
        return (len(self.times(params)), *grid) if spec.temporal else grid

    def sample(self, params: Mapping[str, Any], rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Draw one sample: every input and output field (float64, shapes as :meth:`field_shape`)."""
        grid = self.grid(params)
        out = self.draw(dict(params), grid, rng)
        missing = {f.name for f in self.field_specs} - set(out)
        if missing:  # pragma: no cover - guards new problem definitions
            raise RuntimeError(f"problem {self.name!r} did not produce fields {sorted(missing)}")
        for spec in self.field_specs:
            if np.shape(out[spec.name]) != self.field_shape(spec, params):  # pragma: no cover
                raise RuntimeError(f"problem {self.name!r} produced {spec.name!r} of shape "
                                   f"{np.shape(out[spec.name])}, expected {self.field_shape(spec, params)}")
        return out


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"parameter value {obj!r} is not JSON-serialisable")


def _per_axis_int(value: Any, dim: int) -> tuple[int, ...]:
    if isinstance(value, (int, np.integer)):
        return (int(value),) * dim
    value = tuple(value)
    if len(value) != dim:
        raise ValueError(f"resolution {list(value)} has {len(value)} entries but dim={dim}")
    return value


_REGISTRY: dict[str, Problem] = {}


def register(problem: Problem) -> Problem:
    """Add a problem to the registry (its name must be new)."""
    if problem.name in _REGISTRY:
        raise ValueError(f"a problem named {problem.name!r} is already registered")
    _REGISTRY[problem.name] = problem
    return problem


def get_problem(name: str) -> Problem:
    """Look a problem up by name."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown problem {name!r}; available: {sorted(_REGISTRY)}") from None


def problem_names() -> list[str]:
    """Names of all registered problems (names starting with ``_`` are private, e.g. tests')."""
    return sorted(n for n in _REGISTRY if not n.startswith("_"))
