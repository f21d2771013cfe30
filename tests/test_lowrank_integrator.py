"""DLRT integrator: exactness at full rank, orthonormality, descent, rank recovery, robustness."""

import math

import pytest
import torch
from torch import nn

from neuralhss.lowrank import DLRT, LowRankConv, LowRankLinear, augment_basis, truncation_rank

D = torch.float64


def _orth_err(u: torch.Tensor) -> float:
    u = u.detach()
    return float((u.mH @ u - torch.eye(u.shape[1], dtype=u.dtype)).abs().max())


def _sgd(lr):
    return lambda ps: torch.optim.SGD(ps, lr=lr)


def _run_step(integ, closure, mode, with_closure):
    if mode == "kls" or with_closure:
        return integ.step(closure)
    integ.zero_grad()
    closure()
    return integ.step()


VARIANTS = [("augmented", False), ("augmented", True), ("fixed", False), ("kls", True)]


@pytest.mark.parametrize("mode, with_closure", VARIANTS)
@pytest.mark.parametrize("n, m", [(6, 6), (7, 4), (4, 7)])
@pytest.mark.parametrize("dtype", [D, torch.cdouble])
def test_full_rank_step_is_the_dense_gradient_step(mode, with_closure, n, m, dtype):
    # The defining property of the augmented BUG: at full rank (tau = 0) the step is W - lr grad W.
    torch.manual_seed(0)
    layer = LowRankLinear(m, n, rank=min(n, m), bias=False, dtype=dtype)
    x, y = torch.randn(10, m, dtype=dtype), torch.randn(10, n, dtype=dtype)
    w0 = layer.weight_matrix().detach().clone().requires_grad_()
    ((x @ w0.T - y).abs() ** 2).sum().backward()
    lr = 1e-3
    integ = DLRT(layer, _sgd(lr), tau=0.0, mode=mode)

    def closure():
        loss = ((layer(x) - y).abs() ** 2).sum()
        loss.backward()
        return loss

    _run_step(integ, closure, mode, with_closure)
    ref = w0.detach() - lr * w0.grad
    w1 = layer.weight_matrix().detach()
    assert float((w1 - ref).norm() / ref.norm()) < 1e-10
    assert float((w1 - w0.detach()).norm()) > 1e-4  # the step did move


@pytest.mark.parametrize("with_closure", [False, True])
def test_low_rank_step_is_the_documented_projection(with_closure):
    # Below full rank, one step with SGD (tau = 0, no truncation) is
    #   one pass:     W - lr P_T(G),  P_T(G) = P_U G + G P_V - P_U G P_V  (tangent space at W)
    #   closure pass: W - lr P_Uh G P_Vh,  Uh = orth([U, G V]), Vh = orth([V, G^T U])  (Galerkin)
    torch.manual_seed(0)
    layer = LowRankLinear(10, 12, rank=3, bias=False, dtype=D)
    x, y = torch.randn(20, 10, dtype=D), torch.randn(20, 12, dtype=D)
    u, v = layer.U.detach().clone(), layer.V.detach().clone()
    w0 = layer.weight_matrix().detach().clone().requires_grad_()
    ((x @ w0.T - y) ** 2).sum().backward()
    g = w0.grad
    pu, pv = u @ u.T, v @ v.T
    if with_closure:
        uh = torch.linalg.qr(torch.cat([u, g @ v], 1))[0]
        vh = torch.linalg.qr(torch.cat([v, g.T @ u], 1))[0]
        step = uh @ uh.T @ g @ vh @ vh.T
    else:
        step = pu @ g + g @ pv - pu @ g @ pv
    integ = DLRT(layer, _sgd(1e-3), tau=0.0)

    def closure():
        loss = ((layer(x) - y) ** 2).sum()
        loss.backward()
        return loss

    closure()
    integ.step(closure if with_closure else None)
    ref = w0.detach() - 1e-3 * step
    assert layer.rank == 6
    assert float((layer.weight_matrix().detach() - ref).norm() / ref.norm()) < 1e-10


def test_full_rank_conv_step_is_the_dense_gradient_step():
    torch.manual_seed(0)
    layer = LowRankConv(2, 5, 2, rank=5, bias=False, dtype=D)   # W is 5 x 8
    x, y = torch.randn(3, 2, 5, 5, dtype=D), torch.randn(3, 5, 4, 4, dtype=D)
    k0 = layer.kernel().detach().clone().requires_grad_()
    ((torch.nn.functional.conv2d(x, k0) - y) ** 2).sum().backward()
    integ = DLRT(layer, _sgd(1e-3), tau=0.0)
    integ.zero_grad()
    ((layer(x) - y) ** 2).sum().backward()
    integ.step()
    ref = k0.detach() - 1e-3 * k0.grad
    assert float((layer.kernel().detach() - ref).norm() / ref.norm()) < 1e-10


def _teacher(n=20, m=20, k=3, samples=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.linalg.qr(torch.randn(n, k, generator=g))[0] * torch.tensor([3.0, 2.0, 1.5])
    b = torch.linalg.qr(torch.randn(m, k, generator=g))[0]
    x = torch.randn(samples, m, generator=g)
    return x, x @ (a @ b.T).T


@pytest.mark.parametrize("mode, with_closure", VARIANTS)
def test_orthonormal_after_every_step_and_loss_decreases(mode, with_closure):
    torch.manual_seed(1)
    x, y = _teacher()
    model = nn.Sequential(LowRankLinear(20, 16, rank=6), nn.Tanh(), LowRankLinear(16, 20, rank=6))
    integ = DLRT(model, _sgd(0.05), tau=0.05, mode=mode)

    def closure():
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        return loss

    losses = []
    for _ in range(8):
        loss = integ.step(closure) if with_closure else _step_and_loss(integ, closure)
        losses.append(float(loss))
        for layer in integ.layers.values():
            assert _orth_err(layer.U) < 1e-5 and _orth_err(layer.V) < 1e-5
            assert layer.S.shape == (layer.U.shape[1], layer.V.shape[1])
    assert all(b < a for a, b in zip(losses, losses[1:], strict=False)), losses


def _step_and_loss(integ, closure):
    integ.zero_grad()
    loss = closure()
    integ.step()
    return loss.detach()


@pytest.mark.parametrize("mode, opt", [("augmented", lambda ps: torch.optim.Adam(ps, lr=0.02)),
                                       ("kls", lambda ps: torch.optim.Adam(ps, lr=0.02))])
def test_ranks_settle_at_the_teacher_rank(mode, opt):
    torch.manual_seed(1)
    x, y = _teacher()
    layer = LowRankLinear(20, 20, rank=10, bias=False)
    integ = DLRT(layer, opt, tau=0.1, mode=mode)

    def closure():
        loss = ((layer(x) - y) ** 2).mean()
        loss.backward()
        return loss

    ranks = []
    for _ in range(80):
        if mode == "kls":
            loss = integ.step(closure)
        else:
            loss = _step_and_loss(integ, closure)
        ranks.append(integ.ranks()[""])
    assert ranks[0] == 10 and ranks[-10:] == [3] * 10, ranks
    assert float(loss) < 0.05 * float(((y) ** 2).mean())


def test_fixed_mode_keeps_the_rank():
    torch.manual_seed(0)
    x, y = _teacher()
    layer = LowRankLinear(20, 20, rank=5)
    integ = DLRT(layer, _sgd(0.1), tau=0.5, mode="fixed")
    for _ in range(5):
        _step_and_loss(integ, lambda: _mse_backward(layer, x, y))
        assert layer.rank == 5


def _mse_backward(model, x, y):
    loss = ((model(x) - y) ** 2).mean()
    loss.backward()
    return loss


def test_rank_bounds_are_respected():
    torch.manual_seed(0)
    x, y = _teacher(k=3)
    layer = LowRankLinear(20, 20, rank=6)
    integ = DLRT(layer, _sgd(0.1), tau=0.0, min_rank=2, max_rank=8)
    for _ in range(4):
        _step_and_loss(integ, lambda: _mse_backward(layer, x, y))
        assert 2 <= layer.rank <= 8
    assert layer.rank == 8  # tau = 0 keeps everything up to max_rank
    integ = DLRT(layer, _sgd(0.1), tau=0.99, min_rank=4)
    _step_and_loss(integ, lambda: _mse_backward(layer, x, y))
    assert layer.rank == 4


@pytest.mark.parametrize("rule", ["floor", "mean"])
def test_robust_mode_bounds_the_condition_number(rule):
    torch.manual_seed(0)
    x, y = _teacher()
    model = nn.Sequential(LowRankLinear(20, 16, rank=8), nn.Tanh(), LowRankLinear(16, 20, rank=8))
    kappa = 3.0
    integ = DLRT(model, lambda ps: torch.optim.Adam(ps, lr=0.02), tau=0.05, kappa_max=kappa, kappa_rule=rule)
    free = DLRT(model, lambda ps: torch.optim.Adam(ps, lr=0.02), tau=0.05)
    assert max(free.condition_numbers().values()) == pytest.approx(1.0)  # S = sigma I at init
    for _ in range(15):
        _step_and_loss(integ, lambda: _mse_backward(model, x, y))
        ks = integ.condition_numbers()
        assert set(ks) == {"0", "2"}
        assert max(ks.values()) <= kappa * (1 + 1e-5), ks


def test_unconstrained_training_exceeds_the_bound():
    # the robust test above is not vacuous: without kappa_max the cores get ill-conditioned
    torch.manual_seed(0)
    x, y = _teacher()
    model = nn.Sequential(LowRankLinear(20, 16, rank=8), nn.Tanh(), LowRankLinear(16, 20, rank=8))
    integ = DLRT(model, lambda ps: torch.optim.Adam(ps, lr=0.02), tau=0.05)
    for _ in range(15):
        _step_and_loss(integ, lambda: _mse_backward(model, x, y))
    assert max(integ.condition_numbers().values()) > 3.0


def test_penalty_value_and_gradient():
    layer = LowRankLinear(4, 4, rank=2, bias=False, dtype=D)
    integ = DLRT(layer, _sgd(0.1), beta=0.5)
    with torch.no_grad():
        layer.S.copy_(torch.diag(torch.tensor([2.0, 1.0], dtype=D)))
    # S^T S = diag(4, 1), ||S||^2 / r = 2.5 -> ||diag(1.5, -1.5)||_F = 1.5 sqrt 2
    p = integ.penalty()
    assert float(p.detach()) == pytest.approx(0.5 * 1.5 * math.sqrt(2))
    p.backward()
    assert layer.S.grad is not None and layer.U.grad is None
    with torch.no_grad():
        layer.S.copy_(3 * torch.eye(2, dtype=D))
    assert float(integ.penalty().detach()) == pytest.approx(0.0, abs=1e-12)
    assert float(DLRT(layer, _sgd(0.1)).penalty()) == 0.0


def test_loops_that_keep_the_loss_alive_and_optimizer_instances():
    # Ranks change shapes; a loop holding the previous loss (its graph) must keep working.
    torch.manual_seed(0)
    x, y = _teacher()
    model = nn.Sequential(LowRankLinear(20, 20, rank=2), nn.Linear(20, 20))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    integ = DLRT(model, opt, tau=0.0, max_rank=9)
    assert all(p is not model[0].U and p is not model[0].V for g in opt.param_groups for p in g["params"])
    loss = None
    for _ in range(3):
        integ.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        integ.step()
    assert model[0].rank == 9  # 2 -> 4 -> 8 -> 9 (max_rank)
    state = opt.state[model[0].S]          # moved to the new core parameter, transported
    assert state["exp_avg"].shape == model[0].S.shape == state["exp_avg_sq"].shape
    assert bool((state["exp_avg_sq"] >= 0).all())
    assert any(p is model[0].S for g in opt.param_groups for p in g["params"])


def test_checkpoint_of_an_adapted_model_loads_into_a_fresh_one():
    torch.manual_seed(0)
    x, y = _teacher()
    model = nn.Sequential(LowRankLinear(20, 20, rank=2))
    integ = DLRT(model, _sgd(0.1), tau=0.0, max_rank=7)
    for _ in range(2):
        _step_and_loss(integ, lambda: _mse_backward(model, x, y))
    fresh = nn.Sequential(LowRankLinear(20, 20, rank=2))
    fresh.load_state_dict(model.state_dict())
    assert fresh[0].rank == model[0].rank == 7
    assert torch.allclose(fresh(x), model(x))


def test_augment_basis_is_orthonormal_even_for_dependent_directions():
    torch.manual_seed(0)
    u = torch.linalg.qr(torch.randn(10, 3, dtype=D))[0]
    for g in (torch.randn(10, 3, dtype=D), u @ torch.randn(3, 3, dtype=D), None):
        b = augment_basis(u, g)
        assert torch.equal(b[:, :3], u)
        assert _orth_err(b) < 1e-13
    assert augment_basis(u, torch.randn(10, 3, dtype=D)).shape == (10, 6)
    assert augment_basis(torch.eye(4, dtype=D)[:, :3], torch.randn(4, 3, dtype=D)).shape == (4, 4)


def test_truncation_rank_rule():
    s = torch.tensor([4.0, 2.0, 1.0, 0.1])
    assert truncation_rank(s, 0.0) == 4
    assert truncation_rank(s, 0.05) == 3   # ||(0.1)|| / ||s|| = 0.021
    assert truncation_rank(s, 0.3) == 2    # ||(1, 0.1)|| / ||s|| = 0.22
    assert truncation_rank(s, 0.99) == 1
    assert truncation_rank(s, 0.99, lo=2) == 2
    assert truncation_rank(s, 0.0, hi=3) == 3
    assert truncation_rank(torch.tensor([1.0, 0.0]), 0.0) == 1


def test_bad_arguments():
    layer = LowRankLinear(4, 4, rank=2)
    cases = [({"tau": 1.0}, "tau=1.0"), ({"tau": -0.1}, "tau=-0.1"), ({"mode": "bug"}, "mode='bug'"),
             ({"min_rank": 0}, "min_rank=0"), ({"min_rank": 3, "max_rank": 2}, "max_rank=2"),
             ({"kappa_max": 0.5}, "kappa_max=0.5"), ({"kappa_rule": "x"}, "kappa_rule"),
             ({"beta": -1.0}, "beta=-1.0")]
    for kwargs, match in cases:
        with pytest.raises(ValueError, match=match):
            DLRT(layer, _sgd(0.1), **kwargs)
    with pytest.raises(ValueError, match="no low-rank layers.*compress"):
        DLRT(nn.Linear(3, 3), _sgd(0.1))
    with pytest.raises(ValueError, match="closure"):
        DLRT(layer, _sgd(0.1), mode="kls").step()
    with pytest.raises(ValueError, match="backward"):
        DLRT(layer, _sgd(0.1)).step()
    with pytest.raises(ValueError, match="does not hold the core"):
        DLRT(layer, torch.optim.SGD([layer.bias], lr=0.1))
