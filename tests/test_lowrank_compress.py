"""compress(): dense -> low-rank/Tucker by truncated SVD/HOSVD, exact at full rank."""

import pytest
import torch
from neuralop.layers.spectral_convolution import SpectralConv
from neuralop.models import FNO
from torch import nn

from neuralhss.lowrank import (
    DLRT,
    LowRankConv,
    LowRankLinear,
    LowRankPointwise,
    TuckerConv,
    TuckerSpectralConv,
    compress,
)
from neuralhss.models import build, count_parameters

D = torch.float64


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.GELU(), nn.Conv2d(16, 24, 1), nn.Flatten(),
                         nn.Linear(24 * 36, 32), nn.GELU(), nn.Linear(32, 5)).to(D)


def test_full_rank_compress_reproduces_and_counts_parameters():
    model = _mlp()
    x = torch.randn(2, 3, 6, 6, dtype=D)
    res = compress(model)
    assert res.model is not model and isinstance(model[0], nn.Conv2d)  # a copy by default
    kinds = [type(m) for m in res.model]
    assert kinds.count(LowRankConv) == 2 and kinds.count(LowRankLinear) == 2
    assert torch.allclose(res.model(x), model(x), atol=1e-10)
    assert res.params_before == count_parameters(model)
    assert res.params_after == count_parameters(res.model)
    assert [e["name"] for e in res.layers] == ["0", "2", "4", "6"]
    assert res.layers[2]["ranks"] == (32, 32) and res.layers[2]["weight_shape"] == (32, 864)
    assert "total parameters" in res.summary()


def test_low_rank_compress_drops_parameters():
    model = _mlp()
    res = compress(model, rank=2)
    assert all(max(e["ranks"]) <= 2 for e in res.layers)
    assert res.params_after < 0.2 * res.params_before
    assert res.ratio == res.params_after / res.params_before


def test_tau_finds_the_rank_of_a_low_rank_weight_and_rank_caps_it():
    torch.manual_seed(0)
    lin = nn.Linear(30, 20).to(D)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(20, 4, dtype=D) @ torch.randn(4, 30, dtype=D)
                         + 1e-6 * torch.randn(20, 30, dtype=D))
    model = nn.Sequential(lin)
    assert compress(model, tau=1e-3).model[0].rank == 4
    assert compress(model, tau=1e-3, rank=3).model[0].rank == 3
    x = torch.randn(5, 30, dtype=D)
    assert torch.allclose(compress(model, tau=1e-3).model(x), model(x), atol=1e-4)


def test_inplace():
    model = _mlp()
    res = compress(model, rank=3, inplace=True)
    assert res.model is model and isinstance(model[0], LowRankConv)


def test_fno_full_rank_compress_reproduces_output_and_trains():
    torch.manual_seed(0)
    fno = FNO(n_modes=(8, 8), in_channels=1, out_channels=1, hidden_channels=8, n_layers=2)
    x = torch.randn(2, 1, 16, 16)
    res = compress(fno)
    with torch.no_grad():
        ref, out = fno(x), res.model(x)
    assert float((out - ref).abs().max() / ref.abs().max()) < 1e-5
    blocks = res.model.fno_blocks
    assert all(isinstance(c, TuckerSpectralConv) for c in blocks.convs)
    assert isinstance(blocks.fno_skips[0].conv, LowRankConv)
    low = compress(fno, rank=4)
    assert low.params_after < low.params_before
    integ = DLRT(low.model, lambda ps: torch.optim.Adam(ps, lr=1e-3), tau=0.1)
    y = torch.randn(2, 1, 16, 16)
    losses = []
    for _ in range(3):
        integ.zero_grad()
        loss = ((low.model(x) - y) ** 2).mean()
        loss.backward()
        integ.step()
        losses.append(float(loss.detach()))
    assert all(torch.isfinite(torch.tensor(losses)))


def test_spectral_tau_finds_the_tucker_rank():
    torch.manual_seed(0)
    conv = SpectralConv(6, 6, (4, 4))
    core = torch.randn(2, 3, 4, 3, dtype=torch.cfloat)
    u0 = torch.linalg.qr(torch.randn(6, 2, dtype=torch.cfloat))[0]
    u1 = torch.linalg.qr(torch.randn(6, 3, dtype=torch.cfloat))[0]
    with torch.no_grad():
        conv.weight.tensor.data = torch.einsum("pqxy,ip,oq->ioxy", core, u0, u1)
    res = compress(nn.Sequential(conv), tau=1e-4)
    assert res.model[0].ranks == (2, 3)
    x = torch.randn(2, 6, 8, 8)
    with torch.no_grad():
        assert torch.allclose(res.model(x), conv(x), atol=1e-5)


def test_neural_hss_channel_mixers_compress():
    model = build("neural_hss", in_channels=1, out_channels=1, grid_shape=[16, 16],
                  hidden_channels=8, n_layers=2, leaf_size=4, rank=2)
    x = torch.randn(2, 1, 16, 16)
    res = compress(model)
    assert sum(isinstance(m, LowRankPointwise) for m in res.model.modules()) == 5  # lift, 2 local, 2 proj
    with torch.no_grad():
        assert float((res.model(x) - model(x)).abs().max() / model(x).abs().max()) < 1e-5
    assert compress(model, rank=2).params_after < res.params_before


def test_tucker_conv_format():
    model = _mlp()
    x = torch.randn(2, 3, 6, 6, dtype=D)
    res = compress(model, conv="tucker", kinds=("conv",))
    assert isinstance(res.model[0], TuckerConv) and isinstance(res.model[4], nn.Linear)
    assert torch.allclose(res.model(x), model(x), atol=1e-10)


def test_bad_arguments():
    model = _mlp()
    with pytest.raises(ValueError, match="tau=1.0"):
        compress(model, tau=1.0)
    with pytest.raises(ValueError, match="rank=0"):
        compress(model, rank=0)
    with pytest.raises(ValueError, match="kinds"):
        compress(model, kinds=("attention",))
    with pytest.raises(ValueError, match="conv="):
        compress(model, conv="cp")
    with pytest.raises(ValueError, match="nothing to compress"):
        compress(nn.Sequential(nn.ReLU()))
