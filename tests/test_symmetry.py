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


@pytest.mark.parametrize("boundary", ["dirichlet", "neumann", "periodic", "zeros"])
@pytest.mark.parametrize("expansion", ["tensor", "total"])
def test_symmetric_h2_operator_commutes_with_the_square(boundary, expansion):
    """H2Operator(symmetric=True) commutes with the square's eight symmetries for every boundary
    mode and expansion, blended or not, and with the nested-grid far field; the unsymmetrised
    operator does not."""
    from neuralhss.hss.h2 import H2Operator

    torch.manual_seed(0)
    x = torch.randn(2, 2, 16, 16, dtype=torch.float64)
    for blend, far in ((True, "boxes"), (False, "boxes"), (True, "grids")):
        for symmetric in (True, False):
            op = H2Operator((16, 16), channels=2, leaf_side=2 if far == "grids" else 4, degree=2,
                            boundary=boundary, expansion=expansion, blend=blend,
                            symmetric=symmetric, far=far, dtype=torch.float64)
            with torch.no_grad():
                y = op(x)
                gap = max(float((op(g(x)) - g(y)).abs().max()) for g, _ in _square_transforms("d4"))
            assert (gap < 1e-12 * float(y.abs().max())) == symmetric


def test_symmetric_neural_h2_commutes_with_the_cube_and_fits():
    """The whole model (hidden blocks and linear path) commutes with all 48 symmetries of the
    cube; it refuses coordinate channels and non-cubic grids; its linear path still fits."""
    import itertools

    from neuralhss.models.neural_h2 import NeuralH2

    torch.manual_seed(1)
    model = NeuralH2(1, 1, (8, 8, 8), hidden_channels=4, n_layers=2, leaf_side=2, degree=1,
                     linear_degree=1, positional=False, symmetric=True).double()
    with torch.no_grad():
        model.project[-1].weight.normal_()  # the nonlinear blocks contribute as well
        model.linear.near.normal_()
        x = torch.randn(2, 1, 8, 8, 8, dtype=torch.float64)
        y = model(x)
        for perm in itertools.permutations(range(3)):
            for flips in itertools.product((False, True), repeat=3):
                def g(t, perm=perm, flips=flips):
                    t = t.flip([2 + i for i in range(3) if flips[i]])
                    return t.permute(0, 1, *(2 + k for k in perm))
                torch.testing.assert_close(model(g(x)), g(y))
    with pytest.raises(ValueError, match="positional=False"):
        NeuralH2(1, 1, (8, 8), leaf_side=2, linear_degree=1, symmetric=True)
    for option in ("symmetric", "linear_symmetric"):
        with pytest.raises(ValueError, match="square"):
            NeuralH2(1, 1, (8, 16), leaf_side=2, linear_degree=1, positional=False, **{option: True})
    # the linear path alone: symmetric, the hidden blocks not
    model = NeuralH2(1, 1, (16, 16), hidden_channels=4, n_layers=1, linear_degree=2,
                     linear_symmetric=True).double()
    assert model.linear.symmetric and not model.blocks[0]["h2"].symmetric
    f = torch.from_numpy(np.random.default_rng(2).standard_normal((6, 1, 16, 16)))
    u = torch.from_numpy(poisson.solve(f.numpy(), dim=2))
    model.linear.fit_linear(f, u, max_iter=200)
    with torch.no_grad():
        assert float(relative_l2(model.linear_part(f), u, 2).mean()) < 0.2
