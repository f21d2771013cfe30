"""Tucker layers: neuraloperator compatibility, dense equivalence, TDLRT steps (complex factors)."""

import pytest
import torch
from neuralop.layers.spectral_convolution import SpectralConv
from neuralop.models import FNO
from torch import nn

from neuralhss.lowrank import DLRT, TuckerConv, TuckerSpectralConv

D = torch.float64


def _orth_err(u: torch.Tensor) -> float:
    u = u.detach()
    return float((u.mH @ u - torch.eye(u.shape[1], dtype=u.dtype)).abs().max())


def _rel(a, b):
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize("n_modes, grid", [((8, 8), (16, 16)), ((6,), (20,)), ((4, 4, 4), (8, 8, 8)),
                                           ((8, 8), (12, 16)), ((8, 8), (6, 6))])
def test_full_rank_tucker_reproduces_spectral_conv(n_modes, grid):
    torch.manual_seed(0)
    conv = SpectralConv(3, 5, n_modes)
    tucker = TuckerSpectralConv.from_spectral_conv(conv)
    assert tucker.ranks == (3, 5)
    x = torch.randn(2, 3, *grid)
    with torch.no_grad():
        assert _rel(tucker(x), conv(x)) < 1e-5


def test_output_shape_and_transform_follow_neuralop():
    torch.manual_seed(0)
    conv = SpectralConv(3, 4, (8, 8))
    tucker = TuckerSpectralConv.from_spectral_conv(conv)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert _rel(tucker(x, output_shape=(24, 24)), conv(x, output_shape=(24, 24))) < 1e-5
        assert torch.equal(tucker.transform(x), x)
        up = tucker.transform(x, output_shape=(24, 24))
        assert up.shape == (2, 3, 24, 24) and torch.allclose(up, conv.transform(x, output_shape=(24, 24)))


@pytest.mark.parametrize("modes", [(0, 1), (0, 1, 2, 3), (1,)])
def test_spectral_forward_equals_the_dense_tucker_weight(modes):
    # the factorised contraction equals the contraction with the reconstructed weight
    torch.manual_seed(0)
    tucker = TuckerSpectralConv(4, 3, (6, 6), rank=2, tucker_modes=modes, dtype=torch.cdouble)
    dense = SpectralConv(4, 3, (6, 6))
    with torch.no_grad():
        dense.weight.tensor.data = tucker.weight_tensor().to(torch.cfloat)
        dense.bias.copy_(tucker.bias)
    x = torch.randn(2, 4, 12, 12)
    with torch.no_grad():
        assert _rel(tucker(x.double()).float(), dense(x)) < 1e-5
    for u in tucker.lowrank_factors():
        assert _orth_err(u) < 1e-12


def test_tucker_inside_neuralop_fno():
    torch.manual_seed(0)
    fno = FNO(n_modes=(8, 8), in_channels=1, out_channels=2, hidden_channels=8, n_layers=2)
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        shape = fno(x).shape
    fno.fno_blocks.convs[0] = TuckerSpectralConv(8, 8, (8, 8), rank=3)
    fno.fno_blocks.convs[1] = TuckerSpectralConv(8, 8, (8, 8), rank=(2, 4))
    assert fno(x).shape == shape == (2, 2, 16, 16)
    fno.fno_blocks.n_modes = (4, 4)      # neuraloperator's incremental-mode API reaches our layers
    assert fno.fno_blocks.convs[0].n_modes == [4, 3]
    assert fno(x).shape == shape


def test_complex_factors_orthonormal_and_ranks_adapt_in_fno():
    torch.manual_seed(0)
    fno = FNO(n_modes=(6, 6), in_channels=1, out_channels=1, hidden_channels=8, n_layers=2)
    for i in range(2):
        fno.fno_blocks.convs[i] = TuckerSpectralConv(8, 8, (6, 6), rank=6, max_rank=7)
    integ = DLRT(fno, lambda ps: torch.optim.Adam(ps, lr=1e-2), tau=0.0)  # grows to max_rank
    x, y = torch.randn(4, 1, 12, 12), torch.randn(4, 1, 12, 12)
    seen = set(integ.ranks().values())
    for _ in range(4):
        integ.zero_grad()
        ((fno(x) - y) ** 2).mean().backward()
        integ.step()
        for name, layer in integ.layers.items():
            assert layer.core.is_complex()
            for u in layer.lowrank_factors():
                assert _orth_err(u) < 1e-5
            assert all(r <= 7 for r in layer.ranks)
            seen.add(integ.ranks()[name])
    assert seen == {(6, 6), (7, 7)}  # grew from 6 to max_rank
    assert set(integ.condition_numbers()) == set(integ.layers)


def test_full_tucker_rank_step_is_the_dense_gradient_step():
    torch.manual_seed(0)
    layer = TuckerConv(3, 4, 3, tucker_modes=(0, 1, 2), bias=False, dtype=D)   # full ranks (4, 3, 3)
    x, y = torch.randn(2, 3, 6, 6, dtype=D), torch.randn(2, 4, 4, 4, dtype=D)
    k0 = layer.kernel().detach().clone().requires_grad_()
    ((torch.nn.functional.conv2d(x, k0) - y) ** 2).sum().backward()
    for mode in ("augmented", "kls"):
        lay = TuckerConv(3, 4, 3, tucker_modes=(0, 1, 2), bias=False, dtype=D)
        lay.load_state_dict(layer.state_dict())
        integ = DLRT(lay, lambda ps: torch.optim.SGD(ps, lr=1e-3), tau=0.0, mode=mode)

        def closure(lay=lay):
            loss = ((lay(x) - y) ** 2).sum()
            loss.backward()
            return loss

        if mode == "kls":
            integ.step(closure)
        else:
            closure()
            integ.step()
        ref = k0.detach() - 1e-3 * k0.grad
        assert float((lay.kernel().detach() - ref).norm() / ref.norm()) < 1e-10


@pytest.mark.parametrize("modes", [(0, 1), (0, 1, 2, 3)])
def test_tucker_conv_matches_dense_conv_and_trains(modes):
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 6, 3, padding=1, padding_mode="circular", dtype=D)
    tucker = TuckerConv.from_conv(conv, tucker_modes=modes)
    x = torch.randn(2, 4, 8, 8, dtype=D)
    assert torch.allclose(tucker(x), conv(x), atol=1e-10)
    low = TuckerConv.from_conv(conv, rank=2, tucker_modes=modes)
    assert low.ranks == (2,) * len(modes)
    integ = DLRT(low, lambda ps: torch.optim.SGD(ps, lr=1e-2), tau=0.1, mode="kls")
    y = conv(x).detach()

    def closure():
        loss = ((low(x) - y) ** 2).mean()
        loss.backward()
        return loss

    losses = [float(integ.step(closure)) for _ in range(5)]
    assert losses[-1] < losses[0]
    for u in low.lowrank_factors():
        assert _orth_err(u) < 1e-10


def test_bad_tucker_arguments():
    with pytest.raises(ValueError, match="tucker_modes"):
        TuckerSpectralConv(4, 4, (4, 4), tucker_modes=(0, 5))
    with pytest.raises(ValueError, match="rank"):
        TuckerSpectralConv(4, 4, (4, 4), rank=5)
    with pytest.raises(ValueError, match="rank"):
        TuckerSpectralConv(4, 4, (4, 4), rank=(1, 2, 3))
    with pytest.raises(ValueError, match="complex"):
        TuckerSpectralConv(4, 4, (4, 4), dtype=torch.float32)
    with pytest.raises(ValueError, match="tucker_modes"):
        TuckerConv(4, 4, 3, tucker_modes=(0, 2))
    with pytest.raises(ValueError, match="spatial axes"):
        TuckerSpectralConv(2, 2, (4, 4))(torch.randn(1, 2, 8))
    with pytest.raises(ValueError, match="separable"):
        TuckerSpectralConv.from_spectral_conv(SpectralConv(3, 3, (4, 4), separable=True))
