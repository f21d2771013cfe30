import json
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from neuralhss.models import build, count_parameters, from_spec
from neuralhss.train import InMemory, TrainConfig, fit, load_checkpoint

TINY = {"n_modes": [4, 4], "hidden_channels": 4, "n_layers": 1, "in_channels": 1, "out_channels": 1}


def data(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 8, 8, generator=g)
    return InMemory(x, 2.0 * x + x.mean(dim=(-2, -1), keepdim=True))  # learnable: local + mode 0


def model(seed=0):
    torch.manual_seed(seed)
    return build("fno", **TINY)


def cfg(**kw):
    base = {"epochs": 4, "batch_size": 4, "lr": 3e-3, "checkpoint_every": 1, "progress": False}
    return TrainConfig(**{**base, **kw})


def params(m):
    return torch.cat([p.detach().flatten().abs() if p.is_complex() else p.detach().flatten()
                      for p in m.parameters()])


def test_loss_decreases_and_metrics_are_written(tmp_path):
    m = model()
    metrics = fit(m, data(), cfg(epochs=30, lr=1e-2), out_dir=tmp_path, test_set=data(8, seed=1))
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk["n_params"] == count_parameters(m) == metrics["n_params"]
    for key in ("test_rel_l2", "n_params", "train_seconds", "n_train"):
        assert key in on_disk
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")
    first = ckpt["history"][0]["train_rel_l2"]
    assert ckpt["history"][-1]["train_rel_l2"] < 0.5 * first
    rebuilt = from_spec(ckpt["run"]["spec"])
    rebuilt.load_state_dict(ckpt["model"])
    torch.testing.assert_close(params(rebuilt), params(m))


def test_interrupted_training_resumes_exactly(tmp_path):
    straight = model()
    fit(straight, data(), cfg(), out_dir=tmp_path / "a")

    def stop_after_two(epoch, record):
        if epoch == 2:
            raise KeyboardInterrupt

    interrupted = model()
    with pytest.raises(KeyboardInterrupt):
        fit(interrupted, data(), cfg(), out_dir=tmp_path / "b", callback=stop_after_two)
    assert load_checkpoint(tmp_path / "b" / "checkpoint.pt")["epoch"] == 2
    resumed = model(seed=123)  # fresh weights: everything must come from the checkpoint
    metrics = fit(resumed, data(), cfg(), out_dir=tmp_path / "b")
    assert len(load_checkpoint(tmp_path / "b" / "checkpoint.pt")["history"]) == 4
    torch.testing.assert_close(params(resumed), params(straight))
    assert metrics["epochs"] == 4


def test_other_config_corrupted_checkpoint_and_nan_are_refused(tmp_path):
    fit(model(), data(), cfg(epochs=1), out_dir=tmp_path)
    with pytest.raises(FileExistsError, match="another run"):
        fit(model(), data(), cfg(epochs=1, lr=1.0), out_dir=tmp_path)
    (tmp_path / "checkpoint.pt").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="corrupted"):
        fit(model(), data(), cfg(epochs=1), out_dir=tmp_path)
    bad = data()
    bad.x[3, 0, 0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match="loss became nan"):
        fit(model(), bad, cfg(epochs=1), out_dir=tmp_path / "nan")
    with pytest.raises(ValueError, match="batch_size"):
        fit(model(), data(), cfg(batch_size=0))
    wrong = InMemory(torch.zeros(4, 1, 8, 8), torch.zeros(4, 2, 8, 8))
    with pytest.raises(ValueError, match="does not match the targets"):
        fit(model(), wrong, cfg(epochs=1))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    import os

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        torch.manual_seed(0)
        m = build("fno", **TINY)
        fit(m, data(), cfg(epochs=3, device="cpu"))
        if rank == 0:
            torch.save(params(m), out)
    finally:
        dist.destroy_process_group()


def test_two_process_ddp_equals_single_process_on_the_same_global_batch(tmp_path):
    out = str(tmp_path / "ddp.pt")
    mp.spawn(_ddp_worker, args=(2, _free_port(), out), nprocs=2, join=True)
    torch.manual_seed(0)
    single = build("fno", **TINY)
    fit(single, data(), cfg(epochs=3, device="cpu"))
    # float32 (neuraloperator keeps complex weights in complex64): only summation order differs.
    ddp = torch.load(out, weights_only=True)
    torch.testing.assert_close(ddp, params(single), rtol=1e-4, atol=1e-6)
    assert not torch.allclose(ddp, params(model(seed=0)))  # it did train


def test_train_and_test_errors_have_one_definition():
    """fit's train_rel_l2 is evaluate's metric on the training set; the loss is kept apart."""
    from neuralhss.train import evaluate

    class Halve:  # a normaliser: data units are twice the stored values
        def decode_y(self, y, dim):
            return 2.0 * y

        def to_dict(self):
            return {}

    m, train = model(), data()
    metrics = fit(m, train, cfg(epochs=2), test_set=data(8, seed=1), normalizer=Halve())
    assert metrics["train_rel_l2"] == evaluate(m, train, Halve(), 4)["test_rel_l2"]
    two = InMemory(torch.randn(8, 2, 8, 8), torch.randn(8, 2, 8, 8))
    two.y[:, 1] *= 100.0  # all channels together, not a mean of per-channel errors
    m2 = build("fno", **{**TINY, "in_channels": 2, "out_channels": 2})
    res = fit(m2, two, cfg(epochs=1))
    with torch.no_grad():
        pred = m2.eval()(two.x)
    expected = ((pred - two.y).flatten(1).norm(dim=1) / two.y.flatten(1).norm(dim=1)).mean()
    assert abs(res["train_rel_l2"] - float(expected)) < 1e-6


def test_trainer_hooks_and_an_overridden_batch_step():
    """Callbacks see every epoch and batch; a subclass changes what a batch step does."""
    from neuralhss.train import Callback, PlainStep, Trainer

    seen = []

    class Log(Callback):
        def on_train_start(self, trainer):
            seen.append("start")

        def on_batch_end(self, trainer, step, loss):
            seen.append(("batch", step))

        def on_epoch_end(self, trainer, epoch, record):
            seen.append(("epoch", epoch, sorted(record)))

        def on_train_stop(self, trainer):
            seen.append("stop")

    class Frozen(Trainer):  # evaluates the loss but never steps
        def train_one_batch(self, step, batch):
            self.setup()
            with torch.no_grad():
                pred = self.forward(batch["x"], batch["y"])
                self.batch_errors = torch.zeros(len(pred), dtype=torch.float64)
                return float(self.loss_fn(pred, batch["y"]))

    m = model()
    before = params(m).clone()
    state = Frozen(m, PlainStep(lr=1e-2), epochs=2, batch_size=8, callbacks=[Log()]).train(data())
    torch.testing.assert_close(params(m), before, rtol=0, atol=0)
    assert state.epoch == 2 and seen[0] == "start" and seen[-1] == "stop"
    assert seen.count(("batch", 0)) == 2 and seen.count(("batch", 1)) == 2
    assert ("epoch", 2, ["epoch", "lr", "train_loss", "train_rel_l2"]) in seen


def test_band_errors_place_an_error_at_its_wavenumber():
    """An error that is one Fourier mode of radial wavenumber 5 sits wholly in the band holding
    5, with the amplitude ratio as that band's relative error; the shares sum to 1."""
    from neuralhss.train.metrics import band_errors

    n = 32
    x = torch.arange(n, dtype=torch.float64) / n
    X, Y = torch.meshgrid(x, x, indexing="ij")
    target = torch.cos(2 * torch.pi * (X + Y)) + torch.sin(2 * torch.pi * 5 * X)  # |k| = 1.41, 5
    pred = target + 0.1 * torch.sin(2 * torch.pi * (3 * X + 4 * Y))  # |k| = 5
    bands = band_errors(pred[None, None], target[None, None], [0, 2, 4, 6, 32])
    assert [b["share"] for b in bands] == pytest.approx([0, 0, 1, 0], abs=1e-12)
    assert bands[2]["rel_l2"] == pytest.approx(0.1, rel=1e-9)
    assert bands[0]["rel_l2"] == pytest.approx(0, abs=1e-12)
    rand_p, rand_t = torch.randn(3, 2, 16, 16), torch.randn(3, 2, 16, 16)
    rand = band_errors(rand_p, rand_t, [0, 3, 100])
    assert sum(b["share"] for b in rand) == pytest.approx(1)
    # the default grid axes are those after (batch, channels): channels are pooled, not
    # transformed, so a constant error of opposite signs in two channels is all at |k| = 0
    flat = torch.ones(1, 2, 8, 8)
    flat[:, 1] = -1
    assert band_errors(flat, torch.zeros_like(flat) + 3, [0, 0.5, 100])[0]["share"] == pytest.approx(1)
    assert band_errors(rand_p, rand_t, [0, 3, 100], ndim=2) == rand
    with pytest.raises(ValueError, match="grid axes for an array"):
        band_errors(torch.randn(16), torch.randn(16), [0, 3])
    with pytest.raises(ValueError, match="increasing edges"):
        band_errors(pred, target, [2, 1])
    with pytest.raises(ValueError, match="differ in shape"):
        band_errors(pred, target[:4], [0, 1])
