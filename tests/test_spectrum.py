import json
import math

import pytest
import torch
from torch import nn

from neuralhss.cli import main
from neuralhss.lowrank import compress
from neuralhss.lowrank.layers import hosvd
from neuralhss.lowrank.spectrum import (
    condition_number,
    effective_rank,
    inspect_model,
    is_weight,
    lowrank_bias,
    neural_collapse,
    numerical_rank,
    plot_spectra,
    spectral_table,
    stable_rank,
    tail_norm,
)
from neuralhss.models import build


def matrix_with_spectrum(sigma, n=12, m=9, seed=0):
    g = torch.Generator().manual_seed(seed)
    u, _ = torch.linalg.qr(torch.randn(n, len(sigma), generator=g, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(m, len(sigma), generator=g, dtype=torch.float64))
    return u @ torch.diag(torch.as_tensor(sigma, dtype=torch.float64)) @ v.T


def test_ranks_of_matrices_with_known_spectra():
    sigma = [10.0, 5.0, 1.0, 0.1, 0.01, 0.0]
    s = torch.linalg.svdvals(matrix_with_spectrum(sigma))
    total = math.sqrt(sum(v * v for v in sigma))
    # smallest r with ||sigma_{r+1:}|| <= tau ||sigma||
    assert numerical_rank(sigma, 0.0) == 5                          # tau = 0: every non-zero value
    for tau, r in [(1e-4, 5), (0.002, 4), (0.02, 3), (0.1, 2), (0.5, 1), (0.99, 1)]:
        assert numerical_rank(s, tau) == r, tau
        assert math.sqrt(sum(v * v for v in sigma[r:])) <= tau * total + 1e-12
    # the same rule as DLRT's truncation (hosvd with tau)
    for tau in (0.002, 0.02, 0.1):
        _, (u, _) = hosvd(matrix_with_spectrum(sigma), (0, 1), tau=tau)
        assert u.shape[1] == numerical_rank(s, tau)
    assert stable_rank(s) == pytest.approx(sum(v * v for v in sigma) / 100)
    assert effective_rank([3.0, 3.0, 3.0, 0.0]) == pytest.approx(3.0)
    p = torch.tensor([10.0, 5.0, 1.0]) / 16
    assert effective_rank([10.0, 5.0, 1.0]) == pytest.approx(float(torch.exp(-(p * p.log()).sum())))
    assert condition_number([4.0, 2.0, 0.5]) == pytest.approx(8.0)
    assert condition_number(sigma) == math.inf and condition_number(s) > 1e12
    assert tail_norm(s, 2) == pytest.approx(math.sqrt(1 + 0.01 + 1e-4))
    assert numerical_rank([0.0, 0.0], 0.1) == 0 and stable_rank([0.0]) == 0.0
    with pytest.raises(ValueError, match="tau"):
        numerical_rank(s, 1.5)
    with pytest.raises(ValueError, match="non-negative"):
        stable_rank([-1.0, 2.0])


def simplex_means(C, d, scale=3.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, C, generator=g, dtype=torch.float64))
    etf = (torch.eye(C, dtype=torch.float64) - 1.0 / C) * math.sqrt(C / (C - 1))
    return scale * etf @ q.T                                       # (C, d), rows a simplex ETF


def test_neural_collapse_metrics_on_collapsed_and_random_features():
    C, d, n = 5, 8, 40
    M = simplex_means(C, d)
    labels = torch.arange(C).repeat_interleave(n)
    g = torch.Generator().manual_seed(1)
    collapsed = M[labels] + 1e-6 * torch.randn(C * n, d, generator=g, dtype=torch.float64)
    nc = neural_collapse(collapsed, labels, weight=M, bias=torch.zeros(C))
    assert nc["nc1"] < 1e-9
    assert nc["nc2_equinorm"] < 1e-5 and nc["nc2_equiangular"] < 1e-5 and nc["nc2_etf"] < 1e-5
    assert nc["nc3"] < 1e-9 and nc["nc4"] == 0.0
    assert nc["nc2_w_equinorm"] < 1e-9 and nc["nc2_w_equiangular"] < 1e-9
    # not collapsed: within-class spread as large as the class separation, random classifier
    noisy = M[labels] + 3.0 * torch.randn(C * n, d, generator=g, dtype=torch.float64)
    w = torch.randn(C, d, generator=g, dtype=torch.float64)
    bad = neural_collapse(noisy, labels, weight=w)
    assert bad["nc1"] > 1.0 and bad["nc3"] > 0.5 and bad["nc4"] > 0.2
    assert bad["within_var"] > 100 * nc["within_var"] + 1
    # NC1 is tr(Sigma_W Sigma_B^+)/C
    mu = torch.stack([noisy[labels == c].mean(0) for c in range(C)])
    e = noisy - mu[labels]
    sw = e.T @ e / len(noisy)
    mc = mu - noisy.mean(0)
    sb = mc.T @ mc / C
    assert bad["nc1"] == pytest.approx(float(torch.trace(sw @ torch.linalg.pinv(sb)) / C), rel=1e-6)
    with pytest.raises(ValueError, match="class"):
        neural_collapse(collapsed, torch.zeros(C * n, dtype=torch.long))
    with pytest.raises(ValueError, match="labels"):
        neural_collapse(collapsed, labels[:-1])
    with pytest.raises(ValueError, match="weight"):
        neural_collapse(collapsed, labels, weight=torch.zeros(C, d + 1))


def test_lowrank_bias_bound_holds_and_tightens_at_stationarity():
    torch.manual_seed(0)
    C, d, n = 4, 6, 30
    labels = torch.arange(C).repeat_interleave(n)
    x = simplex_means(C, d).float()[labels] + 0.3 * torch.randn(C * n, d)
    model = nn.Sequential(nn.Linear(d, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, C))
    lam = 1e-2
    before = lowrank_bias(model, x, labels, lam)
    assert [r["name"] for r in before] == ["0", "2", "4"]
    opt = torch.optim.Adam(model.parameters(), lr=1e-2, weight_decay=lam)
    for _ in range(100):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), labels).backward()
        opt.step()
    after = lowrank_bias(model, x, labels, lam)
    for r in before + after:
        assert r["tail"] <= r["bound"] * (1 + 1e-9) and r["bound"] <= r["bound_cs"] * (1 + 1e-9)
    # training drives the point towards stationarity (the residual shrinks relative to lambda W)
    assert after[1]["residual"] / (lam * after[1]["fro"]) < before[1]["residual"] / (lam * before[1]["fro"])
    assert after[2]["tail"] < 1e-6                                  # the classifier has rank <= C
    with pytest.raises(ValueError, match="weight_decay"):
        lowrank_bias(model, x, labels, 0.0)
    with pytest.raises(ValueError, match="nn.Linear"):
        lowrank_bias(model, x, labels, lam, layers=["1"])


def covered(model, spectra):
    names = {p for e in spectra for p in e.params}
    need = {n for n, p in model.named_parameters() if is_weight(p)}
    return need - names


@pytest.mark.parametrize("name, cfg", [
    ("neural_hss", {"grid_shape": [16, 16], "hidden_channels": 3, "n_layers": 2, "leaf_size": 16, "rank": 4}),
    ("neural_hss", {"grid_shape": [32], "hidden_channels": 2, "n_layers": 1, "leaf_size": 8, "rank": 3,
                    "share": "none"}),
    ("fno", {"n_modes": [4, 4], "hidden_channels": 6, "n_layers": 2}),
    ("tfno", {"n_modes": [4, 4], "hidden_channels": 6, "n_layers": 1}),
])
def test_inspect_covers_every_weight(name, cfg):
    torch.manual_seed(0)
    model = build(name, **cfg)
    spectra = inspect_model(model)
    assert not covered(model, spectra)
    assert len({p for e in spectra for p in e.params}) == sum(len(e.params) for e in spectra)
    table = spectral_table(spectra, 0.05)
    assert len(table.splitlines()) == len(spectra) + 1
    for e in spectra:
        assert e.sigma.shape[0] == e.n_blocks and torch.all(e.sigma[:, :-1] >= e.sigma[:, 1:] - 1e-12)
    if name == "neural_hss":
        hss = model.hss[0]
        levels = {e.level for e in spectra if e.kind == "hss_B" and e.name.startswith("hss.0.")}
        assert levels == set(range(1, hss.n_levels + 1))
        b = next(e for e in spectra if e.name == "hss.0.B.0")
        ref = torch.linalg.svdvals(hss.B[0].detach().double())
        assert torch.allclose(b.sigma, ref.reshape(b.sigma.shape))
    else:
        conv = model.fno_blocks.convs[0]
        w = conv.weight if torch.is_tensor(conv.weight) else conv.weight.to_tensor()
        e = next(e for e in spectra if e.kind == "spectral")
        assert e.n_blocks == math.prod(w.shape[2:]) and e.matrix_shape == (6, 6)
        # per Fourier mode k the singular values of W[:, :, k]
        ref = torch.linalg.svdvals(w.detach()[:, :, 1, 2].to(torch.complex128))
        assert torch.allclose(e.sigma[1 * w.shape[3] + 2], ref)
    # the low-rank form has the same non-zero spectra (full-rank conversion) and covers everything
    lr = compress(model).model
    lspec = inspect_model(lr)
    assert not covered(lr, lspec)
    dense = {e.name.removesuffix(".weight"): e for e in spectra}
    for e in lspec:
        if e.kind == "lowrank":
            ref = dense[e.name].sigma
            k = e.sigma.shape[1]
            assert torch.allclose(e.sigma, ref[:, :k], rtol=1e-4, atol=1e-5)


def test_plot_writes_a_png(tmp_path):
    model = build("fno", n_modes=[4, 4], hidden_channels=4, n_layers=1)
    out = plot_spectra(inspect_model(model), tmp_path / "sub" / "s.png", tau=0.05, title="fno")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ckpt")
    data = tmp / "p.h5"
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["generate", "poisson", "--resolution", "12", "--samples", "10", "--no-progress",
                     "-o", str(data)]) == 0
        run = tmp / "run"
        assert main(["train", "--data", str(data), "--model", "fno", "--n-train", "4", "--n-test", "4",
                     "--epochs", "1", "--batch-size", "2", "--model-arg", "hidden_channels=4",
                     "--model-arg", "n_layers=1", "--model-arg", "n_modes=[4,4]", "--out", str(run),
                     "--no-progress"]) == 0
    finally:
        torch.set_num_threads(n)
    return data, run / "checkpoint.pt"


def test_cli_inspect(trained, tmp_path, capsys):
    data, ckpt = trained
    capsys.readouterr()
    png, js = tmp_path / "s.png", tmp_path / "s.json"
    assert main(["inspect", str(ckpt), "--tau", "0.05", "--plot", str(png), "--json", str(js)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    rows = json.loads(js.read_text())
    assert len(out) == len(rows) + 1 and out[0].split()[0] == "weight"
    assert [line.split()[0] for line in out[1:]] == [r["name"] for r in rows]
    assert any(r["kind"] == "spectral" for r in rows)
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert main(["inspect", str(ckpt), "--tau", "1.5"]) == 2
    err = capsys.readouterr().err.strip()
    assert "tau" in err and len(err.splitlines()) == 1


def test_cli_attack(trained, tmp_path, capsys):
    data, ckpt = trained
    capsys.readouterr()
    js = tmp_path / "a.json"
    assert main(["attack", str(ckpt), "--data", str(data), "--eps", "0.01", "0.05", "--rank", "2",
                 "--n-samples", "3", "--steps", "3", "--json", str(js)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 2 + 2                                        # title, header, one line per eps
    assert "random" in out[1] and "pgd" in out[1] and "lowrank_r2" in out[1]
    assert [float(line.split()[0]) for line in out[2:]] == [0.01, 0.05]
    res = json.loads(js.read_text())["results"]
    for row in res:
        assert row["pgd"]["mean"] > row["random"]["mean"]
        assert row["pgd"]["max"] >= row["pgd"]["mean"] > 0
    for argv, message in [(["--eps", "0"], "--eps"), (["--eps", "0.01", "--rank", "0"], "--rank"),
                          (["--eps", "0.01", "--rank", "13"], "grid side"),
                          (["--eps", "-1", "0.1"], "--eps")]:
        assert main(["attack", str(ckpt), "--data", str(data), *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1
    # data of another dimension: refused in one line, not a traceback
    other = tmp_path / "q.h5"
    assert main(["generate", "poisson", "--dim", "1", "--resolution", "16", "--samples", "6",
                 "--no-progress", "-o", str(other)]) == 0
    capsys.readouterr()
    assert main(["attack", str(ckpt), "--data", str(other), "--n-test", "2", "--eps", "0.01"]) == 2
    err = capsys.readouterr().err.strip()
    assert "cannot be applied" in err and len(err.splitlines()) == 1
