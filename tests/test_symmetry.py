"""The group average of a model (SymmetryAverage): exact equivariance and the convexity bound."""

import numpy as np
import pytest
import torch
from torch import nn

from neuralhss.solvers import poisson
from neuralhss.train.loop import InMemory, relative_l2
from neuralhss.train.symmetry import SymmetryAverage, _square_transforms, square_images


class Skewed(nn.Module):
    """A map with no symmetry: a convolution plus a fixed field times the input."""

    def __init__(self, shape: tuple[int, int], seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.conv = nn.Conv2d(1, 1, 3, padding=1, dtype=torch.float64)
        self.field = nn.Parameter(torch.randn(*shape, dtype=torch.float64))
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.conv(x) + self.field * x


def _dirichlet_pairs(n: int = 3, s: int = 9) -> tuple[torch.Tensor, torch.Tensor]:
    f = np.random.default_rng(0).standard_normal((n, 1, s, s))
    return torch.from_numpy(f), torch.from_numpy(poisson.solve(f, dim=2))


@pytest.mark.parametrize("group", ["d4", "transpose"])
def test_square_average_is_equivariant_and_no_worse_than_the_images(group):
    """avg(g x) = g avg(x) for every g of the group, and on pairs of an operator that commutes
    with the group (Dirichlet Poisson on a square) each sample's error of the average is at
    most the mean of the model's errors on the sample's images."""
    x, y = _dirichlet_pairs()
    model = Skewed(x.shape[-2:])
    avg = SymmetryAverage(model, group)
    with torch.no_grad():
        ax = avg(x)
        for g, _ in _square_transforms(group):
            torch.testing.assert_close(avg(g(x)), g(ax))
        images = square_images(InMemory(x, y), group)
        per_image = relative_l2(model(images.x), images.y, 2).reshape(-1, len(x))
        plain = relative_l2(model(x), y, 2)
        averaged = relative_l2(ax, y, 2)
    assert torch.all(averaged <= per_image.mean(0) + 1e-12)
    assert torch.all(averaged < plain)  # this skewed map is far from equivariant
    assert not torch.allclose(model(x), ax)


def test_shift_average_draws_fixed_offsets_and_keeps_an_equivariant_model():
    """The translations are the identity and fixed drawn offsets (the same at every call and for
    the same seed); a model that already commutes with the group (a circular convolution with
    a square-symmetric stencil) is unchanged by the average; d4+shifts evaluates 8 * shifts
    images."""
    x = torch.from_numpy(np.random.default_rng(1).standard_normal((2, 1, 8, 8)))
    conv = nn.Conv2d(1, 1, 3, padding=1, padding_mode="circular", bias=False, dtype=torch.float64)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[[[0.1, 1.0, 0.1], [1.0, -3.0, 1.0], [0.1, 1.0, 0.1]]]]))
    avg = SymmetryAverage(conv, "d4+shifts", shifts=5, seed=3)
    offsets = avg.offsets((8, 8))
    assert offsets[0] == (0, 0) and len(offsets) == 5 and len(set(offsets)) > 1
    assert offsets == SymmetryAverage(conv, "shifts", shifts=5, seed=3).offsets((8, 8))
    with torch.no_grad():
        torch.testing.assert_close(avg(x), conv(x))
    skewed = Skewed((8, 8))
    with torch.no_grad():
        SymmetryAverage(skewed, "d4+shifts", shifts=5)(x)
    assert skewed.calls == 40


def test_bad_groups_are_refused():
    model = Skewed((4, 4))
    with pytest.raises(ValueError, match="group="):
        SymmetryAverage(model, None)
    with pytest.raises(ValueError, match="group="):
        SymmetryAverage(model, "c4")
    with pytest.raises(ValueError, match="shifts=0"):
        SymmetryAverage(model, "shifts", shifts=0)
    with pytest.raises(ValueError, match="square grid"):
        SymmetryAverage(model, "d4")(torch.zeros(1, 1, 4, 5, dtype=torch.float64))
