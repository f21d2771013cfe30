"""The layer-kind registry shared by compress, GeoLoRA and the spectral diagnostics."""

import pytest
import torch
from torch import nn

from neuralhss.lowrank import LowRankLinear, compress, inspect_model, kinds
from neuralhss.lowrank.geolora import KINDS as GEOLORA_KINDS
from neuralhss.lowrank.geolora import LinearAdapter, adapters, add_adapters
from neuralhss.lowrank.spectrum import WeightSpectrum, _svals

D = torch.float64


@pytest.fixture
def registry():
    """Restore the chain and every kind's handlers after the test."""
    saved = [(k, dict(k.handlers)) for k in kinds.registered()]
    yield kinds
    kinds._CHAIN[:] = [k for k, _ in saved]
    for k, h in saved:
        k.handlers.clear()
        k.handlers.update(h)


class Mixer(nn.Module):
    """A layer type none of the built-in kinds knows: ``y = x Wᵀ`` on the last axis."""

    def __init__(self, n: int, m: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n, m, dtype=D) / m**0.5)
        self.bias = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight.T


class MixerAdapter(LinearAdapter):
    kind = "mixer"


def _mixer_convert(module, *, rank, tau, conv, spectral_modes):
    return LowRankLinear.from_dense(module.weight, None, rank=rank, tau=tau)


def _mixer_entries(module, prefix):
    w = module.weight
    return [WeightSpectrum(f"{prefix}.weight", "mixer", tuple(w.shape), tuple(w.shape), _svals(w),
                           (f"{prefix}.weight",))]


def _model():
    torch.manual_seed(0)
    return nn.Sequential(Mixer(6, 5), nn.Tanh(), nn.Linear(6, 3, dtype=D))


def test_builtin_chain_and_acceptance():
    names = [k.name for k in kinds.registered()]
    assert names[:3] == ["lowrank", "hss", "spectral"]
    assert names.index("linear") < names.index("linear_other")
    assert names.index("conv") < names.index("conv_other")
    assert set(kinds.families("compress")) == {"linear", "conv", "spectral", "pointwise"}
    assert set(kinds.families("geolora")) == set(GEOLORA_KINDS)
    spectrum = {k.name for k in kinds.accepted("spectrum")}
    assert spectrum == set(names)
    assert kinds.kind_of(nn.Linear(2, 2)).name == "linear"
    assert kinds.kind_of(nn.modules.linear.NonDynamicallyQuantizableLinear(2, 2)).name == "linear_other"
    assert kinds.kind_of(nn.Conv2d(4, 4, 3, groups=2)).name == "conv_other"
    assert kinds.kind_of(nn.ConvTranspose1d(2, 2, 1)).name == "conv_other"
    assert kinds.kind_of(nn.ReLU()) is None
    assert kinds.match(nn.Conv2d(4, 4, 3, groups=2), "compress") is None
    assert kinds.match(nn.Conv2d(4, 4, 3, groups=2), "spectrum")[0].family == "conv"


def test_spectral_kinds_split_by_weight_format():
    from neuralop.layers.spectral_convolution import SpectralConv

    dense = SpectralConv(3, 4, (4, 4))
    tucker = SpectralConv(3, 4, (4, 4), factorization="tucker", rank=0.5)
    separable = SpectralConv(4, 4, (4, 4), separable=True)
    assert [kinds.kind_of(m).name for m in (dense, tucker, separable)] == [
        "spectral", "spectral_factorized", "spectral_separable"]
    assert {kinds.kind_of(m).family for m in (dense, tucker, separable)} == {"spectral"}
    # compress converts factorised weights (it reads weight.to_tensor()); GeoLoRA needs a dense one
    res = compress(nn.Sequential(tucker))
    assert [e["kind"] for e in res.layers] == ["spectral"]
    with pytest.raises(ValueError, match="no supported layer"):
        add_adapters(nn.Sequential(SpectralConv(3, 4, (4, 4), factorization="tucker", rank=0.5)),
                     targets=("spectral",))
    with pytest.raises(ValueError, match="nothing to compress"):
        compress(nn.Sequential(separable))


def test_new_kind_seen_by_all_three_users(registry):
    registry.register_kind("mixer", lambda m: isinstance(m, Mixer),
                           handlers={"compress": _mixer_convert, "geolora": MixerAdapter,
                                     "spectrum": _mixer_entries}, doc="test mixer")
    assert registry.registered()[0].name == "mixer"        # new kinds go first by default
    assert "mixer" in registry.families("compress") and "mixer" in registry.families("geolora")

    model = _model()
    x = torch.randn(4, 5, dtype=D)
    res = compress(model)                                    # default: every accepted kind
    assert {e["name"]: e["kind"] for e in res.layers} == {"0": "mixer", "2": "linear"}
    assert isinstance(res.model[0], LowRankLinear)
    assert torch.allclose(res.model(x), model(x), atol=1e-12)
    only = compress(model, kinds=("mixer",))
    assert [e["name"] for e in only.layers] == ["0"] and type(only.model[2]) is nn.Linear

    spectra = {e.name: e.kind for e in inspect_model(model)}
    assert spectra == {"0.weight": "mixer", "2.weight": "linear"}

    y0 = model(x)
    add_adapters(model, init_rank=2, max_rank=4)             # default: every accepted kind
    assert {n: a.kind for n, a in adapters(model).items()} == {"0": "mixer", "2": "linear"}
    assert torch.equal(model(x), y0)
    fresh = _model()
    add_adapters(fresh, targets=("mixer",), init_rank=2)
    assert list(adapters(fresh)) == ["0"]

    registry.unregister_kind("mixer")
    assert "mixer" not in registry.families("compress")
    with pytest.raises(ValueError, match="kinds"):
        compress(_model(), kinds=("mixer",))
    assert {e.name: e.kind for e in inspect_model(_model())}["0.weight"] == "tensor"


def test_kind_accepted_by_some_users_only(registry):
    # A kind with a spectrum handler only, placed ahead of "linear": the modules it claims are
    # described by it and no longer converted or adapted (first match wins, whoever asks).
    registry.register_kind("frozen_head", lambda m: getattr(m, "frozen_head", False), before="linear",
                           handlers={"spectrum": _mixer_entries})
    names = [k.name for k in registry.registered()]
    assert names.index("frozen_head") == names.index("linear") - 1
    model = _model()
    model[2].frozen_head = True
    assert {e.name: e.kind for e in inspect_model(model)}["2.weight"] == "mixer"
    with pytest.raises(ValueError, match="nothing to compress"):
        compress(model, kinds=("linear",))
    with pytest.raises(ValueError, match="no supported layer"):
        add_adapters(model, targets=("linear",))
    with pytest.raises(ValueError, match="kinds"):
        compress(model, kinds=("frozen_head",))

    # handlers can be attached later: now compress accepts it too
    registry.set_handler("frozen_head", "compress", _mixer_convert)
    assert [e["kind"] for e in compress(model, kinds=("frozen_head",)).layers] == ["frozen_head"]
    registry.set_handler("frozen_head", "compress", None)
    assert "frozen_head" not in registry.families("compress")


def test_registration_errors(registry):
    pred = lambda m: False  # noqa: E731
    registry.register_kind("nothing", pred, after="gating")
    assert registry.registered()[-1].name == "nothing"
    with pytest.raises(ValueError, match="already registered"):
        registry.register_kind("nothing", pred)
    k = registry.register_kind("nothing", pred, replace=True, family="tensorish")
    assert registry.registered()[-1] is k and k.family == "tensorish"
    assert registry.get_kind("nothing") is k
    with pytest.raises(ValueError, match="at most one"):
        registry.register_kind("other", pred, before="linear", after="conv")
    with pytest.raises(KeyError):
        registry.register_kind("other", pred, before="no_such_kind")
    with pytest.raises(ValueError, match="callable"):
        registry.register_kind("other", "not callable")
    with pytest.raises(KeyError):
        registry.unregister_kind("no_such_kind")
    assert "other" not in [k.name for k in registry.registered()]
