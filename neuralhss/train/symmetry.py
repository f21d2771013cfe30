"""Symmetries of a PDE's solution operator, used in training and in prediction.

Many of the package's problems commute with a group of grid transformations: Poisson or Darcy
with one boundary condition on all sides and a symmetric source with the square's eight
symmetries (the dihedral group D4), a PDE on the periodic square with the grid's translations.
A model can be taught such a symmetry from data (the training pairs' images:
:func:`square_images`, :class:`PeriodicShifts`) or have it imposed on its predictions
(:class:`SymmetryAverage`, the group average). The group names are :data:`AUGMENTATIONS`.

Fields are ``(B, C, *grid)`` tensors of scalar channels: a transformation moves every channel's
values over the grid and leaves the channels alone (a vector field's components would also
have to rotate; none of the registered problems with a square group has one).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .loop import InMemory

#: The symmetry groups: ``"d4"`` (rotations by 90° and reflections of the square),
#: ``"transpose"`` (the identity and the exchange of the two grid axes), ``"shifts"`` (the
#: periodic grid's translations) and ``"d4+shifts"`` (both); ``None``: none.
AUGMENTATIONS = (None, "d4", "transpose", "shifts", "d4+shifts")

Transform = tuple[Callable[[torch.Tensor], torch.Tensor], Callable[[torch.Tensor], torch.Tensor]]


def _square_transforms(group: str) -> list[Transform]:
    """``(g, g⁻¹)`` for every element of a group of the square's symmetries acting on the last
    two axes, identity first."""
    if group == "transpose":
        return [(lambda t: t, lambda t: t), (lambda t: t.mT, lambda t: t.mT)]
    if group != "d4":
        raise ValueError(f"group={group!r}; use 'd4' or 'transpose'")
    out = []
    for flip in (False, True):
        for k in range(4):
            def g(t, k=k, flip=flip):
                return torch.rot90(t.flip(-1) if flip else t, k, dims=(-2, -1))

            def g_inv(t, k=k, flip=flip):
                t = torch.rot90(t, -k, dims=(-2, -1))
                return t.flip(-1) if flip else t

            out.append((g, g_inv))
    return out


def _check_square(x: torch.Tensor, group: str) -> None:
    if x.ndim != 4 or x.shape[-1] != x.shape[-2]:
        raise ValueError(f"augment={group!r} needs 2-D fields on a square grid; got inputs of "
                         f"shape {tuple(x.shape[1:])}")


def square_images(mem: InMemory, group: str = "d4") -> InMemory:
    """The samples ``(x, y)`` of shape ``(n, C, s, s)`` and their images under a group of the
    square's symmetries, inputs and outputs transformed alike, identity first. ``group="d4"``:
    all eight (rotations by 90° and reflections), ``(8 n, C, s, s)``; ``"transpose"``: the
    identity and the exchange of the two grid axes, ``(2 n, C, s, s)``, for an operator that
    commutes with swapping x and y but not with reflections (an isotropic PDE on a grid that
    is not mirror-symmetric, e.g. sampled from the boundary at one end and not the other).
    Scalar fields only (a vector field's components would also have to move)."""
    _check_square(mem.x, group)
    pairs = _square_transforms(group)
    return InMemory(torch.cat([g(mem.x) for g, _ in pairs]), torch.cat([g(mem.y) for g, _ in pairs]))


class PeriodicShifts(InMemory):
    """The samples ``(x, y)``, ``(n, C, *grid)``, each rolled by its own random offset on every
    grid axis at every access (inputs and outputs alike): images of the training pairs under
    the grid's translations, which a translation-invariant operator on a periodic grid maps to
    each other. ``seed`` fixes the sequence of offsets."""

    def __init__(self, mem: InMemory, seed: int = 0) -> None:
        super().__init__(mem.x, mem.y)
        self.dims = tuple(range(1, mem.x.ndim - 1))  # an item's grid axes
        self.sizes = mem.x.shape[2:]
        self.generator = torch.Generator().manual_seed(seed)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        shifts = [int(torch.randint(n, (), generator=self.generator)) for n in self.sizes]
        return {"x": torch.roll(self.x[i], shifts, self.dims),
                "y": torch.roll(self.y[i], shifts, self.dims)}


class SymmetryAverage(nn.Module):
    """The group average of a model: ``x ↦ (1/|S|) Σ_{g ∈ S} g⁻¹ model(g x)``.

    For an operator that commutes with every ``g`` of a group ``G``, the average over ``S = G``
    commutes with ``G`` as well, and its error on any sample is at most the mean of the model's
    errors on the sample's images (the norm is convex and ``‖g⁻¹ a − b‖ = ‖a − g b‖`` for the
    grid's permutations), so it never does worse than the model does on average over the
    group; a model trained on the images (``fit_method(augment=...)``) has learned the
    symmetry only approximately, and the average makes it exact.

    Parameters
    ----------
    model : nn.Module
        ``(B, C, *grid) -> (B, C_out, *grid)``.
    group : str
        One of :data:`AUGMENTATIONS` (not ``None``): the square's groups are enumerated exactly
        (2-D square grids); for ``"shifts"`` ``S`` is the identity and ``shifts - 1`` offsets
        drawn uniformly at random per grid axis (a Monte Carlo estimate of the average over
        every translation, which would take one evaluation per grid point); ``"d4+shifts"``
        crosses the two.
    shifts : int, default 8
        Translations in ``S`` (identity included), for groups with shifts.
    seed : int, default 0
        Seed of the drawn offsets, which are the same at every call.

    The cost is ``|S|`` evaluations of ``model``: 8 for ``"d4"``, ``8 * shifts`` for
    ``"d4+shifts"``.
    """

    def __init__(self, model: nn.Module, group: str, shifts: int = 8, seed: int = 0) -> None:
        super().__init__()
        if group is None or group not in AUGMENTATIONS:
            raise ValueError(f"group={group!r}; use one of {AUGMENTATIONS[1:]}")
        if shifts < 1:
            raise ValueError(f"shifts={shifts}: give at least 1 (the identity)")
        self.model = model
        self.group = group
        self.square = group.split("+")[0] if group != "shifts" else None
        self.shifts = shifts if "shifts" in group else 1
        self.seed = seed

    def offsets(self, grid: tuple[int, ...]) -> list[tuple[int, ...]]:
        """The translations in ``S`` for a grid of this shape, identity first."""
        gen = torch.Generator().manual_seed(self.seed)
        drawn = [tuple(int(torch.randint(n, (), generator=gen)) for n in grid)
                 for _ in range(self.shifts - 1)]
        return [(0,) * len(grid), *drawn]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.square is not None:
            _check_square(x, self.group)
            pairs = _square_transforms(self.square)
        else:
            pairs = [(lambda t: t, lambda t: t)]
        dims = tuple(range(2, x.ndim))
        total = None
        offsets = self.offsets(tuple(x.shape[2:]))
        for g, g_inv in pairs:
            for s in offsets:
                back = tuple(-k for k in s)
                y = torch.roll(g_inv(self.model(g(torch.roll(x, s, dims)))), back, dims)
                total = y if total is None else total + y
        return total / (len(pairs) * len(offsets))
