import pytest
import torch

from neuralhss.hss import HSSOperator
from neuralhss.models import build, count_parameters, default_config, from_spec, model_names
from neuralhss.models.neural_hss import NeuralHSS
from neuralhss.models.registry import SPEC_VERSION


def test_registry_names_and_defaults():
    assert {"fno", "tfno", "uno", "neural_hss", "neural_h2"} <= set(model_names())
    for name in ("fno", "tfno", "uno", "neural_hss", "neural_h2"):
        cfg = default_config(name, 1, 1, (32, 32))
        model = build(name, **cfg)
        assert model.spec == {"name": name, "config": cfg, "version": SPEC_VERSION}
        assert count_parameters(model) > 0
        y = model(torch.randn(2, 1, 32, 32))
        assert y.shape == (2, 1, 32, 32)
    with pytest.raises(ValueError, match="unknown model"):
        build("unet")
    with pytest.raises(ValueError, match="JSON"):
        build("fno", n_modes=(object(),))


def test_uno_is_a_u_of_fourier_blocks():
    # full grid -> half grid (twice the width) -> full grid, on any grid dimension
    m = build("uno", in_channels=2, out_channels=3, n_modes=[4, 4], hidden_channels=4)
    assert [b.convs[0].n_modes[0] for b in m.fno_blocks] == [4, 2, 2, 2, 4]
    assert m(torch.randn(2, 2, 16, 16)).shape == (2, 3, 16, 16)
    m3 = build("uno", n_modes=[2, 2, 2], hidden_channels=2)
    assert m3(torch.randn(1, 1, 8, 8, 8)).shape == (1, 1, 8, 8, 8)
    with pytest.raises(ValueError, match="n_modes"):
        build("uno", n_modes=[1, 1])


def test_count_parameters_counts_complex_twice():
    fno = build("fno", n_modes=[4, 4], hidden_channels=4, n_layers=1)
    n_real = sum(p.numel() for p in fno.parameters() if not p.is_complex())
    n_cplx = sum(p.numel() for p in fno.parameters() if p.is_complex())
    assert n_cplx > 0 and count_parameters(fno) == n_real + 2 * n_cplx


@pytest.mark.parametrize("grid, leaf", [((64,), 16), ((16, 16), 16), ((8, 8, 8), 8)])
def test_neural_hss_shapes_and_gradients(grid, leaf):
    torch.manual_seed(0)
    m = NeuralHSS(2, 3, grid, hidden_channels=4, n_layers=2, leaf_size=leaf, rank=2)
    x = torch.randn(2, 2, *grid, requires_grad=True)
    y = m(x)
    assert y.shape == (2, 3, *grid)
    y.square().sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())


def test_linear_neural_hss_is_one_hss_matrix_plus_a_constant():
    torch.manual_seed(0)
    grid = (16, 16)
    m = NeuralHSS(1, 1, grid, hidden_channels=1, n_layers=1, leaf_size=16, rank=3,
                  activation="identity", positional=False, share="none").double()
    x1, x2 = torch.randn(2, 1, 1, *grid, dtype=torch.float64)
    zero = torch.zeros(1, 1, *grid, dtype=torch.float64)
    f = lambda v: m(v) - m(zero)  # noqa: E731
    torch.testing.assert_close(f(2 * x1 - 3 * x2), 2 * f(x1) - 3 * f(x2))
    # The linear part is the HSS layer scaled by the lifting and projection weights.
    hss: HSSOperator = m.hss[0]
    a = m.lift.weight.item()
    p = (m.project[2].weight @ m.project[0].weight).item()
    w = m.local[0].weight.item()
    dense = a * p * (hss.to_dense()[0, 0] + w * torch.eye(256, dtype=torch.float64))
    torch.testing.assert_close(f(x1).reshape(-1), dense @ x1.reshape(-1))


def test_neural_hss_round_trips_through_its_spec():
    cfg = default_config("neural_hss", 1, 1, (32, 32))
    a = build("neural_hss", **cfg)
    b = from_spec(a.spec)
    b.load_state_dict(a.state_dict())
    x = torch.randn(1, 1, 32, 32)
    torch.testing.assert_close(a(x), b(x))


@pytest.mark.parametrize("kwargs, match", [
    ({"activation": "swish"}, "activation"),
    ({"hidden_channels": 0}, "hidden_channels"),
    ({"grid_shape": (20, 20)}, "does not tile"),
])
def test_neural_hss_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        NeuralHSS(**{"grid_shape": (16, 16), "hidden_channels": 2, "n_layers": 1, **kwargs})


def test_neural_hss_rejects_another_grid():
    m = NeuralHSS(1, 1, (16, 16), hidden_channels=2, n_layers=1)
    with pytest.raises(ValueError, match="does not match this model's grid"):
        m(torch.randn(1, 1, 32, 32))


def test_least_squares_recovers_a_linear_operator_from_enough_samples():
    from neuralhss.models.linear import fit_least_squares

    g = torch.Generator().manual_seed(0)
    A = torch.randn(16, 16, generator=g, dtype=torch.float64)
    x = torch.randn(20, 1, 4, 4, generator=g, dtype=torch.float64)
    y = (x.reshape(20, 16) @ A.T).reshape(20, 1, 4, 4)
    model = fit_least_squares(x, y)
    xt = torch.randn(5, 1, 4, 4, generator=g, dtype=torch.float64)
    torch.testing.assert_close(model(xt), (xt.reshape(5, 16) @ A.T).reshape(5, 1, 4, 4))
    few = fit_least_squares(x[:3], y[:3])  # under-determined: still interpolates the data
    torch.testing.assert_close(few(x[:3]), y[:3])
    with pytest.raises(ValueError, match="does not match"):
        model(torch.randn(1, 1, 8, 8, dtype=torch.float64))
    # An affine operator (a forced flow's mean pattern) needs center=True; the linear fit misses b.
    b = torch.randn(16, generator=g, dtype=torch.float64)
    ya = (x.reshape(20, 16) @ A.T + b).reshape(20, 1, 4, 4)
    want = (xt.reshape(5, 16) @ A.T + b).reshape(5, 1, 4, 4)
    torch.testing.assert_close(fit_least_squares(x, ya, center=True)(xt), want)
    assert (fit_least_squares(x, ya)(xt) - want).abs().max() > 1e-3


@pytest.mark.parametrize("name", ["neural_hss", "neural_h2", "fno"])
def test_gradients_have_their_parameters_strides(name):
    # DistributedDataParallel copies (and warns) when a gradient's strides differ from its
    # parameter's, e.g. einsum's transposed gradient of a (1, C) projection weight
    model = build(name, **default_config(name, 1, 1, (16, 16)))
    model(torch.randn(2, 1, 16, 16)).square().sum().backward()
    assert [n for n, p in model.named_parameters()
            if p.grad is not None and p.grad.stride() != p.stride()] == []


def test_width_is_a_deprecated_alias_of_hidden_channels():
    from neuralhss.models.neural_h2 import NeuralH2

    for cls, kwargs in ((NeuralHSS, {}), (NeuralH2, {"grid_shape": (16, 16)})):
        torch.manual_seed(0)
        new = cls(1, 1, hidden_channels=3, n_layers=1, **kwargs)
        torch.manual_seed(0)
        with pytest.warns(DeprecationWarning, match="hidden_channels"):
            old = cls(1, 1, width=3, n_layers=1, **kwargs)
        for a, b in zip(new.state_dict().values(), old.state_dict().values(), strict=True):
            assert torch.equal(a, b)


def test_pointwise_rejects_wrong_channel_count():
    from neuralhss.models.neural_hss import Pointwise

    with pytest.raises(ValueError, match=r"expected \(batch, 3, \*grid\)"):
        Pointwise(3, 2)(torch.randn(2, 4, 8, 8))
