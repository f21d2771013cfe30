"""Low-rank matrix layers: forward equals the dense layer of U S Vᵀ, W never formed, validation."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from neuralhss.lowrank import LowRankConv, LowRankLinear, LowRankPointwise

D = torch.float64


def _orth_err(u: torch.Tensor) -> float:
    u = u.detach()
    return float((u.mH @ u - torch.eye(u.shape[1], dtype=u.dtype)).abs().max())


class _Shapes(TorchFunctionMode):
    """Records the shape of every tensor produced inside the block."""

    def __init__(self):
        super().__init__()
        self.shapes = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if torch.is_tensor(out):
            self.shapes.append(tuple(out.shape))
        return out


def test_linear_matches_dense_and_factors_orthonormal():
    torch.manual_seed(0)
    layer = LowRankLinear(7, 5, rank=3, dtype=D)
    assert layer.rank == 3 and layer.U.shape == (5, 3) and layer.S.shape == (3, 3) and layer.V.shape == (7, 3)
    assert _orth_err(layer.U) < 1e-12 and _orth_err(layer.V) < 1e-12
    x = torch.randn(4, 2, 7, dtype=D)
    ref = x @ layer.weight_matrix().T + layer.bias
    assert torch.allclose(layer(x), ref, atol=1e-12)
    assert torch.linalg.matrix_rank(layer.weight_matrix().detach()) == 3


def test_complex_linear_orthonormal():
    layer = LowRankLinear(6, 6, rank=2, dtype=torch.cdouble, bias=False)
    assert _orth_err(layer.U) < 1e-12 and _orth_err(layer.V) < 1e-12
    x = torch.randn(3, 6, dtype=torch.cdouble)
    assert torch.allclose(layer(x), x @ layer.weight_matrix().T, atol=1e-12)


def test_forward_never_forms_the_dense_weight():
    layer = LowRankLinear(64, 48, rank=4)
    conv = LowRankConv(16, 24, 3, rank=4, padding=1)
    with _Shapes() as rec:
        layer(torch.randn(5, 64))
        conv(torch.randn(2, 16, 8, 8))
    forbidden = {(48, 64), (64, 48), (24, 16 * 9), (16 * 9, 24), (24, 16, 3, 3)}
    assert not forbidden & set(rec.shapes), rec.shapes


def test_pointwise_matches_dense_einsum():
    torch.manual_seed(0)
    layer = LowRankPointwise(5, 3, rank=2, dtype=D)
    x = torch.randn(2, 5, 4, 6, dtype=D)
    ref = torch.einsum("oi,bi...->bo...", layer.weight_matrix(), x) + layer.bias.view(1, -1, 1, 1)
    assert torch.allclose(layer(x), ref, atol=1e-12)


@pytest.mark.parametrize("dim, kwargs", [
    (1, {"kernel_size": 1}),
    (1, {"kernel_size": 3, "stride": 2, "padding": 1}),
    (2, {"kernel_size": 3, "padding": 1, "padding_mode": "circular"}),
    (2, {"kernel_size": (3, 2), "dilation": 2, "padding": "same"}),
    (3, {"kernel_size": 2, "stride": 1, "padding": 1, "padding_mode": "reflect"}),
])
def test_conv_matches_dense_conv(dim, kwargs):
    torch.manual_seed(0)
    layer = LowRankConv(3, 4, rank=2, dim=dim, dtype=D, **kwargs)
    dense = getattr(nn, f"Conv{dim}d")(3, 4, dtype=D, **kwargs)
    with torch.no_grad():
        dense.weight.copy_(layer.kernel())
        dense.bias.copy_(layer.bias)
    x = torch.randn(2, 3, *([7] * dim), dtype=D)
    assert torch.allclose(layer(x), dense(x), atol=1e-12)
    assert layer(x).is_contiguous()  # neuraloperator's Flattened1dConv calls .view on it


def test_from_dense_truncated_svd():
    torch.manual_seed(0)
    a, b = torch.randn(9, 3, dtype=D), torch.randn(6, 3, dtype=D)
    w = a @ b.T
    layer = LowRankLinear.from_dense(w, tau=1e-8)
    assert layer.rank == 3
    assert torch.allclose(layer.weight_matrix(), w, atol=1e-10)
    full = LowRankLinear.from_dense(torch.randn(5, 4, dtype=D))
    assert full.rank == 4


def test_state_dict_resizes_to_stored_ranks():
    torch.manual_seed(0)
    src = LowRankLinear(8, 6, rank=5)
    dst = LowRankLinear(8, 6, rank=2)
    dst.load_state_dict(src.state_dict())
    assert dst.rank == 5
    x = torch.randn(3, 8)
    assert torch.allclose(dst(x), src(x))


@pytest.mark.parametrize("kwargs, match", [
    ({"rank": 0}, "rank=0"),
    ({"rank": 6}, r"rank=6 must be an integer in \[1, 5\]"),
    ({"rank": 2.5}, "rank=2.5"),
    ({"rank": 3, "max_rank": 2}, "max_rank=2"),
    ({"rank": 2, "max_rank": 9}, "max_rank=9"),
])
def test_bad_ranks(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LowRankLinear(5, 8, **kwargs)


def test_bad_conv_arguments():
    with pytest.raises(ValueError, match="dim=4"):
        LowRankConv(2, 2, 3, rank=1, dim=4)
    with pytest.raises(ValueError, match="kernel_size"):
        LowRankConv(2, 2, (3, 3, 3), rank=1, dim=2)
    with pytest.raises(ValueError, match="padding_mode"):
        LowRankConv(2, 2, 3, rank=1, padding_mode="mirror")
    with pytest.raises(ValueError, match="rank=19"):
        LowRankConv(2, 3, 3, rank=19)  # min(3, 2*9) = 3
    with pytest.raises(ValueError, match="groups"):
        LowRankConv.from_conv(nn.Conv2d(4, 4, 3, groups=2))


def test_conv_gradients_flow_to_factors():
    layer = LowRankConv(3, 5, 3, rank=2, padding=1)
    F.mse_loss(layer(torch.randn(2, 3, 6, 6)), torch.zeros(2, 5, 6, 6)).backward()
    assert all(p.grad is not None for p in (layer.U, layer.S, layer.V, layer.bias))
