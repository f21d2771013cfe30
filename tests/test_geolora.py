"""GeoLoRA adapters (neuralhss.lowrank.geolora): exactness, invariants, rank adaptivity."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from neuralhss.lowrank.geolora import GeoLoRA, adapters, add_adapters, merge
from neuralhss.models.neural_hss import Pointwise


class Net(nn.Module):
    """Conv → Pointwise → Linear (on channels): one layer of each real kind."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 6, 3, padding=1)
        self.mix = Pointwise(6, 5)
        self.head = nn.Linear(5, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.mix(torch.tanh(self.conv(x))))
        return self.head(h.movedim(1, -1)).movedim(-1, 1)


def _net(seed: int = 0) -> Net:
    torch.manual_seed(seed)
    return Net().double()


def _fno() -> nn.Module:
    from neuralhss.models import build

    torch.manual_seed(0)
    return build("fno", in_channels=1, out_channels=1, n_modes=[4, 4], hidden_channels=6, n_layers=2)


def _train(model: nn.Module, geo: GeoLoRA, x: torch.Tensor, y: torch.Tensor, steps: int,
           each=None) -> list[float]:
    losses = []
    for _ in range(steps):
        geo.zero_grad()
        loss = (model(x) - y).square().mean()
        loss.backward()
        geo.step()
        losses.append(loss.item())
        if each is not None:
            each()
    return losses


def _data(seed: int = 1, dtype=torch.float64, c: int = 2, n: int = 8, size: int = 8):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, size, size, generator=g, dtype=dtype)
    return x, g


def _teacher_targets(x: torch.Tensor) -> torch.Tensor:
    teacher = _net(seed=5)
    with torch.no_grad():
        return teacher(x)


def test_start_equals_base_and_kinds():
    model, x = _net(), _data()[0]
    y0 = model(x)
    add_adapters(model, init_rank=4, max_rank=6)
    kinds = {n: a.kind for n, a in adapters(model).items()}
    assert kinds == {"conv": "conv", "mix": "pointwise", "head": "linear"}
    # Equal up to the last bit: the head's adapter multiplies a contiguous copy of its
    # (non-contiguous) input, which can round differently from nn.Linear on the view.
    torch.testing.assert_close(model(x), y0, rtol=1e-14, atol=1e-14)
    assert all(not p.requires_grad for n, p in model.named_parameters() if ".base." in n)

    fno = _fno()
    xf = torch.randn(3, 1, 16, 16)
    yf = fno(xf)
    add_adapters(fno, targets=("spectral", "conv"), init_rank=3)
    kinds = {a.kind for a in adapters(fno).values()}
    assert kinds == {"spectral", "conv"}
    assert torch.equal(fno(xf), yf)


def test_targets_by_name_and_errors():
    model = _net()
    add_adapters(model, targets=(r"^head$",))
    assert list(adapters(model)) == ["head"]
    with pytest.raises(ValueError, match="no supported layer"):
        add_adapters(_net(), targets=("spectral",))
    with pytest.raises(ValueError, match="no adapters"):
        GeoLoRA(_net(), lambda ps: torch.optim.SGD(ps, lr=0.1))
    geo = GeoLoRA(model, lambda ps: torch.optim.SGD(ps, lr=0.1))
    with pytest.raises(ValueError, match="backward"):
        geo.step()
    with pytest.raises(ValueError, match="budget"):
        GeoLoRA(model, lambda ps: torch.optim.SGD(ps, lr=0.1), budget=3)


def test_sgd_step_is_tangent_projected_gradient_step():
    """With SGD and τ = 0 the step moves ΔW by −λ P_T(G_W) (rank may double)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 12), nn.Tanh(), nn.Linear(12, 7)).double()
    add_adapters(model, init_rank=2, max_rank=12)
    geo = GeoLoRA(model, lambda ps: torch.optim.SGD(ps, lr=0.1), tau=0.0)
    x, y = torch.randn(20, 10, dtype=torch.float64), torch.randn(20, 7, dtype=torch.float64)
    _train(model, geo, x, y, 2)                      # S != 0 from here on
    snaps = {n: (a.delta().detach(), a.U.clone(), a.V.clone()) for n, a in adapters(model).items()}
    geo.zero_grad()
    (model(x) - y).square().mean().backward()
    # tangent projection of the dense gradient from the probes: P_T(G) = U G_Lᴴ + G_K Vᴴ − U Uᴴ G_K Vᴴ
    pt = {}
    for n, a in adapters(model).items():
        _, u, v = snaps[n]
        gk, gl = a.K.grad, a.L.grad
        pt[n] = u @ gl.mH + gk @ v.mH - u @ (u.mH @ gk) @ v.mH
        # the probe gradients are the dense gradient times the bases: G_S = Uᴴ G_K
        assert torch.allclose(a.S.grad, u.mH @ gk, atol=1e-14)
    geo.step()
    for n, a in adapters(model).items():
        assert torch.allclose(a.delta(), snaps[n][0] - 0.1 * pt[n], atol=1e-13, rtol=0)


@pytest.mark.parametrize("kind", ["linear", "pointwise"])
def test_fast_path_matches_autograd_form(kind):
    """The rank-r custom backward gives the same outputs and gradients as ``[US+K|U][V|L]ᵀ x``."""
    torch.manual_seed(0)
    base = nn.Linear(7, 5).double() if kind == "linear" else Pointwise(7, 5).double()
    model = add_adapters(nn.Sequential(base), init_rank=3)
    a = adapters(model)["0"]
    a.S.data = torch.randn(3, 3, dtype=torch.float64)
    shape = (4, 6, 7) if kind == "linear" else (4, 7, 3, 2)
    x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    target = torch.randn_like(model(x))
    grads = []
    for fast in (True, False):
        model.zero_grad()
        x.grad = None
        if fast:
            y = model(x)
        else:
            f, g = a.factors()
            if kind == "linear":
                y = a.base(x) + x @ g @ f.mT
            else:
                y = a.base(x) + torch.einsum("or,ir,bi...->bo...", f, g, x)
        (y * target).sum().backward()
        grads.append([y.detach(), x.grad, a.S.grad, a.K.grad, a.L.grad])
    for fast, slow in zip(*grads, strict=True):
        assert torch.allclose(fast, slow, atol=1e-12, rtol=0)


def test_frozen_orthonormal_ranks_and_merge():
    model = _net()
    x, _ = _data()
    y = _teacher_targets(x)
    add_adapters(model, init_rank=3, max_rank=4, tau=0.1)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    geo = GeoLoRA(model, lambda ps: torch.optim.Adam(ps, lr=1e-2))

    def check():
        for name, a in adapters(model).items():
            eye = torch.eye(a.rank, dtype=a.U.dtype)
            assert torch.allclose(a.U.mH @ a.U, eye, atol=1e-13), name
            assert torch.allclose(a.V.mH @ a.V, eye, atol=1e-13), name
            assert 1 <= a.rank <= min(4, a.n, a.m)
            assert not a.K.any() and not a.L.any()      # the probes stay zero

    losses = _train(model, geo, x, y, 15, each=check)
    assert losses[-1] < 0.7 * losses[0]
    for n, p in model.named_parameters():
        if n in frozen:
            assert torch.equal(p, frozen[n]), n          # base weights bitwise untouched
    assert geo.trainable_parameters() == sum(a.factor_size() for a in adapters(model).values())
    with torch.no_grad():
        y_adapted = model(x)
        merged = merge(model, inplace=False)
        assert not adapters(merged)
        assert torch.allclose(merged(x), y_adapted, atol=1e-13, rtol=0)
        # the merged weights are W + ΔW, not the frozen W
        assert not torch.equal(merged.head.weight, frozen["head.base.weight"])


def test_spectral_adapter_training_and_bitwise_merge():
    fno = _fno()
    add_adapters(fno, targets=("spectral",), init_rank=2, max_rank=6, tau=0.05)
    frozen = {n: p.detach().clone() for n, p in fno.named_parameters() if not p.requires_grad}
    x = torch.randn(4, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    y = torch.tanh(2 * x).roll(1, -1)
    geo = GeoLoRA(fno, lambda ps: torch.optim.Adam(ps, lr=1e-2))
    losses = _train(fno, geo, x, y, 8)
    assert losses[-1] < losses[0]
    for a in adapters(fno).values():
        assert a.S.is_complex() and 1 <= a.rank <= 6
        eye = torch.eye(a.rank, dtype=a.U.dtype)
        assert torch.allclose(a.U.mH @ a.U, eye, atol=1e-5)
        assert torch.allclose(a.V.mH @ a.V, eye, atol=1e-5)
        assert a.factor_size() == 2 * (a.rank * (a.n + a.m) + a.rank ** 2)
    assert all(torch.equal(p, frozen[n]) for n, p in fno.named_parameters() if n in frozen)
    with torch.no_grad():
        y_adapted = fno(x)
        merged = geo.merge()
        assert torch.equal(merged(x), y_adapted)     # same weight W + ΔW, same computation


def test_budget_bounds_adapter_parameters():
    model = _net()
    x, _ = _data()
    y = _teacher_targets(x)
    add_adapters(model, init_rank=4, max_rank=6)
    small = sum(a.factor_size(1) for a in adapters(model).values()) + 40
    geo = GeoLoRA(model, lambda ps: torch.optim.Adam(ps, lr=1e-2), tau=0.0, budget=small)
    _train(model, geo, x, y, 6, each=lambda: (geo.adapter_size() <= small) or pytest.fail("budget"))
    assert geo.adapter_size() <= small
    assert all(r >= 1 for r in geo.ranks().values())
    a = next(iter(adapters(model).values()))
    with pytest.warns(DeprecationWarning, match="factor_size"):
        assert a.num_parameters(1) == a.factor_size(1)
    with pytest.warns(DeprecationWarning, match="adapter_size"):
        assert geo.adapter_parameters() == geo.adapter_size()


def test_checkpoint_round_trip_after_rank_changes():
    model = _net()
    x, _ = _data()
    y = _teacher_targets(x)
    add_adapters(model, init_rank=2, max_rank=6, tau=0.0)
    geo = GeoLoRA(model, lambda ps: torch.optim.Adam(ps, lr=1e-2))
    _train(model, geo, x, y, 3)
    assert any(r != 2 for r in geo.ranks().values())
    fresh = add_adapters(_net(), init_rank=2, max_rank=6)
    fresh.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert torch.equal(fresh(x), model(x))


def _teacher_problem(k: int = 4, n: int = 24, m: int = 20):
    g = torch.Generator().manual_seed(123)
    base = nn.Linear(m, n).double()
    with torch.no_grad():
        base.weight.copy_(torch.randn(n, m, generator=g, dtype=torch.float64) / m ** 0.5)
    ut = torch.linalg.qr(torch.randn(n, k, generator=g, dtype=torch.float64))[0]
    vt = torch.linalg.qr(torch.randn(m, k, generator=g, dtype=torch.float64))[0]
    dw = ut @ torch.diag(torch.linspace(1.0, 0.5, k, dtype=torch.float64)) @ vt.T
    x = torch.randn(128, m, generator=g, dtype=torch.float64)
    y = (x @ (base.weight + dw).T + base.bias).detach()
    return base, x, y


@pytest.mark.parametrize("init_rank", [2, 16])
def test_final_rank_independent_of_initial_rank(init_rank):
    """A rank-4 teacher update: from initial rank 2 or 16 the adapter settles at rank 4."""
    base, x, y = _teacher_problem(k=4)
    torch.manual_seed(0)
    model = add_adapters(nn.Sequential(base), init_rank=init_rank, max_rank=20, tau=0.1)
    geo = GeoLoRA(model, lambda ps: torch.optim.Adam(ps, lr=1e-2))
    losses = _train(model, geo, x, y, 80)
    assert geo.ranks()["0"] == 4
    assert losses[-1] < 0.05 * losses[0]


def test_geolora_step_strategy_in_the_trainer_equals_the_hand_written_loop():
    """GeoLoRAStep plugged into the Trainer takes the same steps as GeoLoRA by hand."""
    from neuralhss.train import GeoLoRAStep, InMemory, Trainer

    x, _ = _data()
    y = _teacher_targets(x)

    def mse(pred, target):
        return (pred - target).square().mean()

    by_hand = add_adapters(_net(), init_rank=2, max_rank=4, tau=0.1)
    geo = GeoLoRA(by_hand, lambda ps: torch.optim.Adam(ps, lr=1e-2))
    expected = _train(by_hand, geo, x, y, steps=5)
    model = add_adapters(_net(), init_rank=2, max_rank=4, tau=0.1)
    trainer = Trainer(model, GeoLoRAStep(optimizer=lambda ps: torch.optim.Adam(ps, lr=1e-2)),
                      loss=mse)
    got = [trainer.train_one_batch(i, {"x": x, "y": y}) for i in range(5)]
    assert got == expected
    assert trainer.strategy.record()["ranks"] == geo.ranks()
    # and by epochs, from a dataset (one batch of all samples per epoch)
    model = add_adapters(_net(), init_rank=2, max_rank=4, tau=0.1)
    trainer = Trainer(model, GeoLoRAStep(optimizer=lambda ps: torch.optim.Adam(ps, lr=1e-2)),
                      loss=mse, epochs=3, batch_size=len(x))
    state = trainer.train(InMemory(x, y))
    assert state.epoch == 3 and all("ranks" in rec and "adapter_size" in rec for rec in state.history)
