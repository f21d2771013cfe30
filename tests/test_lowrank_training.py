"""Dynamical low-rank training inside ``fit`` (TrainConfig(lowrank=...))."""

import json

import pytest
import torch

from neuralhss.lowrank import DLRT, LowRankModule, compress
from neuralhss.models import build, count_parameters
from neuralhss.train import InMemory, TrainConfig, fit, load_checkpoint
from neuralhss.train.loop import model_from_checkpoint, prepare_lowrank

SMALL = {"n_modes": [4, 4], "hidden_channels": 8, "n_layers": 1, "in_channels": 1, "out_channels": 1}


def data(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 8, 8, generator=g)
    return InMemory(x, 2.0 * x + x.mean(dim=(-2, -1), keepdim=True))


def model(seed=0):
    torch.manual_seed(seed)
    return build("fno", **SMALL)


def cfg(lowrank, **kw):
    base = {"epochs": 4, "batch_size": 4, "lr": 3e-3, "checkpoint_every": 1, "progress": False,
            "lowrank": lowrank}
    return TrainConfig(**{**base, **kw})


def params(m):
    return torch.cat([torch.view_as_real(p.detach()).flatten() if p.is_complex() else p.detach().flatten()
                      for p in m.parameters()])


def shapes(m):
    return [tuple(p.shape) for p in m.parameters()]


def test_dlrt_in_fit_trains_logs_ranks_and_rebuilds(tmp_path):
    m = model()
    dense = count_parameters(m)
    lowrank = {"tau": 0.05, "compress": {"rank": 2}}
    metrics = fit(m, data(), cfg(lowrank, epochs=25, lr=1e-2), out_dir=tmp_path, test_set=data(8, seed=1))
    assert any(isinstance(mod, LowRankModule) for mod in m.modules())  # converted in place
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")
    hist = ckpt["history"]
    assert hist[-1]["train_rel_l2"] < 0.5 * hist[0]["train_rel_l2"]
    for rec in hist:
        assert rec["ranks"] and rec["n_params"] > 0 and rec["kappa"] >= 1
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk["lowrank"]["ranks"] == hist[-1]["ranks"]
    assert on_disk["n_params"] == count_parameters(m) == hist[-1]["n_params"]
    assert metrics["n_params"] < dense
    assert set(on_disk["lowrank"]["condition_numbers"]) == set(on_disk["lowrank"]["ranks"])
    # The checkpoint alone rebuilds the rank-adapted model.
    rebuilt = model_from_checkpoint(ckpt)
    assert shapes(rebuilt) == shapes(m)
    torch.testing.assert_close(params(rebuilt), params(m))
    x = data(2, seed=5).x
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.eval()(x), m.eval()(x))


def test_interrupted_dlrt_training_resumes_exactly(tmp_path):
    lowrank = {"tau": 0.01, "compress": {"rank": 2}}
    straight = model()
    fit(straight, data(), cfg(lowrank, lr=1e-2), out_dir=tmp_path / "a")

    def stop_after_two(epoch, record):
        if epoch == 2:
            raise KeyboardInterrupt

    interrupted = model()
    with pytest.raises(KeyboardInterrupt):
        fit(interrupted, data(), cfg(lowrank, lr=1e-2), out_dir=tmp_path / "b", callback=stop_after_two)
    ckpt = load_checkpoint(tmp_path / "b" / "checkpoint.pt")
    assert ckpt["epoch"] == 2
    # The ranks moved away from the initial ones: resuming must resize before loading.
    initial = ranks_of(prepare_lowrank(model(), lowrank))
    assert ckpt["history"][-1]["ranks"] != initial
    resumed = model(seed=123)  # fresh dense weights: everything must come from the checkpoint
    fit(resumed, data(), cfg(lowrank, lr=1e-2), out_dir=tmp_path / "b")
    assert len(load_checkpoint(tmp_path / "b" / "checkpoint.pt")["history"]) == 4
    assert shapes(resumed) == shapes(straight)
    torch.testing.assert_close(params(resumed), params(straight), rtol=0, atol=0)
    assert load_checkpoint(tmp_path / "b" / "checkpoint.pt")["history"] == \
        load_checkpoint(tmp_path / "a" / "checkpoint.pt")["history"]


def ranks_of(m):
    integ = DLRT(m, lambda ps: torch.optim.SGD(ps, lr=0.0))
    return {k: list(v) if isinstance(v, tuple) else v for k, v in integ.ranks().items()}


@pytest.mark.parametrize("rule", ["floor", "mean"])
def test_robust_mode_keeps_kappa_below_the_bound(rule):
    kappa = 3.0
    # Matrix layers only: there the bound is guaranteed after every step (Tucker: last mode).
    lowrank = {"tau": 0.02, "kappa_max": kappa, "kappa_rule": rule,
               "compress": {"kinds": ["conv"]}}
    m = model()
    fit(m, data(), cfg(lowrank, epochs=3, lr=2e-2))
    free = model()
    fit(free, data(), cfg({"tau": 0.02, "compress": {"kinds": ["conv"]}}, epochs=3, lr=2e-2))
    kappas = DLRT(m, lambda ps: torch.optim.SGD(ps, lr=0.0)).condition_numbers()
    assert max(kappas.values()) <= kappa * (1 + 1e-4)
    free_kappas = DLRT(free, lambda ps: torch.optim.SGD(ps, lr=0.0)).condition_numbers()
    assert max(free_kappas.values()) > kappa  # the bound is active, not vacuous


def test_history_kappa_respects_the_bound_every_epoch(tmp_path):
    kappa = 2.0
    lowrank = {"tau": 0.05, "kappa_max": kappa, "compress": {"kinds": ["conv"]}}
    fit(model(), data(), cfg(lowrank, epochs=3), out_dir=tmp_path)
    hist = load_checkpoint(tmp_path / "checkpoint.pt")["history"]
    assert all(1 <= rec["kappa"] <= kappa * (1 + 1e-4) for rec in hist)


@pytest.mark.parametrize("lowrank", [
    {"tau": 0.1, "beta": 0.1, "compress": {"rank": 2}},
    {"tau": 0.1, "closure": True, "compress": {"rank": 2, "kinds": ["conv", "spectral"]}},
    {"mode": "kls", "tau": 0.1, "compress": {"rank": 2}},
    {"mode": "fixed", "compress": {"rank": 2}},
])
def test_penalty_closure_kls_and_fixed_modes_train(lowrank):
    m = model()
    metrics = fit(m, data(), cfg(lowrank, epochs=2), test_set=data(4, seed=1))
    assert torch.isfinite(torch.tensor(metrics["test_rel_l2"]))
    if lowrank.get("mode") == "fixed":  # ranks stay at the compressed ones (2, or the layer's size)
        assert metrics["lowrank"]["ranks"] == ranks_of(prepare_lowrank(model(), lowrank))


def test_model_that_already_is_low_rank_and_bad_settings(tmp_path):
    low = compress(model(), rank=2).model
    metrics = fit(low, data(), cfg({"tau": 0.1}, epochs=1))
    assert "lowrank" in metrics
    with pytest.raises(ValueError, match="no low-rank layers"):
        fit(model(), data(), cfg({"tau": 0.1}, epochs=1))
    with pytest.raises(ValueError, match="unknown keys"):
        fit(model(), data(), cfg({"tau": 0.1, "rnak": 2}, epochs=1))
    with pytest.raises(ValueError, match="tau"):
        fit(model(), data(), cfg({"tau": 1.5, "compress": {}}, epochs=1))
    # Dense runs record no lowrank entry (checkpoints from before the field still resume).
    fit(model(), data(), cfg(None, epochs=1), out_dir=tmp_path)
    assert "lowrank" not in load_checkpoint(tmp_path / "checkpoint.pt")["run"]["config"]


def test_lowrank_config_and_dict_are_the_same_run(tmp_path):
    from neuralhss.train.config import LowRankConfig

    typed = LowRankConfig(tau=0.05, compress={"rank": 2})
    assert TrainConfig(lowrank={"tau": 0.05, "compress": {"rank": 2}}) == TrainConfig(lowrank=typed)
    assert typed.to_dict() == {"tau": 0.05, "compress": {"rank": 2}}  # what checkpoints record
    a, b = model(), model()
    fit(a, data(), cfg({"tau": 0.05, "compress": {"rank": 2}}, epochs=2), out_dir=tmp_path)
    fit(b, data(), cfg(typed, epochs=2), out_dir=tmp_path)  # same run: resumes, nothing to do
    assert load_checkpoint(tmp_path / "checkpoint.pt")["run"]["config"]["lowrank"] == typed.to_dict()
    torch.testing.assert_close(params(b), params(a), rtol=0, atol=0)
    with pytest.raises(ValueError, match="unknown keys"):
        LowRankConfig.from_dict({"rnak": 2})
