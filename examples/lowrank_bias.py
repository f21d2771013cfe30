"""Low-rank bias of weight decay: a small MLP classifier on scikit-learn's digits.

Question: do the hidden weight matrices of a classifier trained with weight decay ``λ`` become
low rank as ``λ`` grows, as the neural-collapse / low-rank-bias theory predicts (Zangrando et
al. 2024: at a critical point of ``L + (λ/2)‖θ‖²`` the distance of a layer's weight to rank
``K`` = number of classes is bounded by the within-class variation of its input features over
``λ``)?

Setup: digits (1797 8×8 images, K = 10 classes, shipped with scikit-learn), a fixed split of
1400 training / 397 test images, standardised pixels; an MLP ``64 → w → … → w → 10`` with ReLU
(``--depth`` hidden layers of width ``--width``); full-batch Adam with *coupled* L2 weight decay
``λ`` (``torch.optim.Adam(weight_decay=λ)``: its fixed points are the critical points of
``L + (λ/2)‖θ‖²``), cosine learning-rate decay, ``--steps`` steps. For every ``λ`` and seed the
script records, per linear layer (:mod:`neuralhss.lowrank.spectrum`): the numerical rank at each
``--tau`` (the DLRT rule ``‖σ_{r+1:}‖ ≤ τ‖σ‖``), stable and effective rank, the Eckart–Young
tail ``‖σ_{K+1:}(W)‖`` and its ratio to ``‖W‖_F``, and the low-rank-bias check
(:func:`~neuralhss.lowrank.spectrum.lowrank_bias`: the bound ``(‖E‖ + ‖ρ‖)/λ`` on the tail,
the stationarity residual ``ρ`` and the relative within-class variation of the layer's
inputs); and NC1–NC4 of the penultimate features (:func:`~neuralhss.lowrank.spectrum.neural_collapse`).

Outputs in ``--out`` (default ``examples/results/lowrank_bias``): ``results.json`` (re-running
skips finished runs), ``ranks_vs_weight_decay.png`` and ``table.md``.

Run (about 10 s per run on a shared 2-core CPU, 18 runs):
``python examples/lowrank_bias.py``
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from neuralhss.lowrank.spectrum import (  # noqa: E402
    effective_rank,
    lowrank_bias,
    neural_collapse,
    numerical_rank,
    stable_rank,
    tail_norm,
)

K = 10


def load_data(n_train: int = 1400) -> tuple[torch.Tensor, ...]:
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    perm = np.random.default_rng(0).permutation(len(X))
    X, y = X[perm], y[perm]
    mean, std = X[:n_train].mean(0), X[:n_train].std(0) + 1e-8
    X = (X - mean) / std
    t = lambda a, dt: torch.tensor(a, dtype=dt)  # noqa: E731
    return (t(X[:n_train], torch.float32), t(y[:n_train], torch.long),
            t(X[n_train:], torch.float32), t(y[n_train:], torch.long))


def mlp(width: int, depth: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    d = 64
    for _ in range(depth):
        layers += [nn.Linear(d, width), nn.ReLU()]
        d = width
    return nn.Sequential(*layers, nn.Linear(d, K))


def run(lam: float, seed: int, args, data) -> dict:
    xtr, ytr, xte, yte = data
    torch.manual_seed(seed)
    model = mlp(args.width, args.depth)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=lam)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.steps, eta_min=args.lr * 1e-2)
    t0 = time.perf_counter()
    for _ in range(args.steps):
        opt.zero_grad()
        loss = F.cross_entropy(model(xtr), ytr)
        loss.backward()
        opt.step()
        sched.step()
    seconds = time.perf_counter() - t0
    model.eval()
    with torch.no_grad():
        train_acc = float((model(xtr).argmax(1) == ytr).double().mean())
        test_acc = float((model(xte).argmax(1) == yte).double().mean())
        feats = model[:-1](xtr)
        final_loss = float(F.cross_entropy(model(xtr), ytr))
    linears = [(n, m) for n, m in model.named_children() if isinstance(m, nn.Linear)]
    bias = {r["name"]: r for r in lowrank_bias(model, xtr, ytr, lam)} if lam > 0 else {}
    layers = []
    for name, lin in linears:
        s = torch.linalg.svdvals(lin.weight.detach().double())
        entry = {"name": name, "shape": list(lin.weight.shape),
                 "rank": {str(t): numerical_rank(s, t) for t in args.tau},
                 "stable_rank": stable_rank(s), "effective_rank": effective_rank(s),
                 "tail_K": tail_norm(s, K), "rel_tail_K": tail_norm(s, K) / float(s.norm()),
                 "sigma": s.tolist()}
        if name in bias:
            b = bias[name]
            entry.update({"bound": b["bound"], "bound_cs": b["bound_cs"], "residual_rel":
                          b["residual"] / (lam * b["fro"]), "within_rel": b["within_rel"]})
        layers.append(entry)
    nc = neural_collapse(feats, ytr, model[-1].weight, model[-1].bias)
    return {"weight_decay": lam, "seed": seed, "steps": args.steps, "width": args.width,
            "depth": args.depth, "lr": args.lr, "train_loss": final_loss, "train_acc": train_acc,
            "test_acc": test_acc, "seconds": seconds, "layers": layers, "neural_collapse": nc}


def key(r: dict) -> tuple:
    return (r["weight_decay"], r["seed"], r["steps"], r["width"], r["depth"], r["lr"])


def hidden(r: dict) -> list[dict]:
    """The hidden-to-hidden weight matrices (neither the input layer nor the classifier)."""
    return r["layers"][1:-1]


def table(results: list[dict], taus: list[float]) -> str:
    lams = sorted({r["weight_decay"] for r in results})
    names = [e["name"] for e in results[0]["layers"]]
    lay = "/".join(f"L{n}" for n in names)
    head = ["λ", "train acc", "test acc"] + [f"rank@τ={t} ({lay})" for t in taus] + \
        [f"‖σ_11:‖/‖W‖_F ({lay})", "tail/bound, hidden", "‖ρ‖/(λ‖W‖), hidden", "NC1", "NC2 etf", "NC3",
         "NC4"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for lam in lams:
        rows = [r for r in results if r["weight_decay"] == lam]
        mean = lambda f, rows=rows: float(np.mean([f(r) for r in rows]))  # noqa: E731
        cells = [f"{lam:g}", f"{mean(lambda r: r['train_acc']):.3f}", f"{mean(lambda r: r['test_acc']):.3f}"]
        for t in taus:
            cells.append("/".join(f"{mean(lambda r, i=i, t=t: r['layers'][i]['rank'][str(t)]):.1f}"
                                  for i in range(len(names))))
        cells.append("/".join(f"{mean(lambda r, i=i: r['layers'][i]['rel_tail_K']):.2g}"
                              for i in range(len(names))))
        if lam > 0:
            cells.append(f"{mean(lambda r: max(e['tail_K'] / e['bound'] for e in hidden(r))):.3g}")
            cells.append(f"{mean(lambda r: max(e['residual_rel'] for e in hidden(r))):.3g}")
        else:
            cells += ["–", "–"]
        for k in ("nc1", "nc2_etf", "nc3", "nc4"):
            cells.append(f"{mean(lambda r, k=k: r['neural_collapse'][k]):.3g}")
        lines.append("| " + " | ".join(cells) + " |")
    n_seeds = len({r["seed"] for r in results})
    lines.append("")
    lines.append(f"Means over {n_seeds} seeds; {results[0]['steps']} full-batch Adam steps. L0 is the "
                 f"input layer (64 → {results[0]['width']}), the last the classifier (rank ≤ {K}), "
                 "the others the hidden matrices. Ranks: numerical rank at τ (smallest r with "
                 "‖σ_{r+1:}‖ ≤ τ‖σ‖). tail/bound: Eckart–Young distance ‖σ_11:‖ of the hidden "
                 "matrices to rank 10 over the guaranteed bound (‖E‖ + ‖ρ‖)/λ (worst hidden layer; "
                 "≤ 1 always); ‖ρ‖/(λ‖W‖): distance from stationarity (0 at a critical point). "
                 "NC metrics of the penultimate features (neuralhss.lowrank.spectrum.neural_collapse).")
    return "\n".join(lines)


def plot(results: list[dict], taus: list[float], out: Path) -> None:
    lams = sorted({r["weight_decay"] for r in results})
    pos = [lam for lam in lams if lam > 0]
    x_of = {lam: (lam if lam > 0 else min(pos) / 10) for lam in lams}
    names = [e["name"] for e in results[0]["layers"]]
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.8))
    for i, name in enumerate(names):
        for ax, f, lab in ((axes[0], lambda e: e["rank"][str(taus[0])], f"rank at τ={taus[0]}"),
                           (axes[1], lambda e: e["rel_tail_K"], "‖σ_{K+1:}‖ / ‖W‖_F")):
            vals = [[f(r["layers"][i]) for r in results if r["weight_decay"] == lam] for lam in lams]
            xs = [x_of[lam] for lam in lams]
            shape = results[0]["layers"][i]["shape"]
            ax.plot(xs, [np.mean(v) for v in vals], "o-", label=f"layer {name} {shape}")
            ax.fill_between(xs, [min(v) for v in vals], [max(v) for v in vals], alpha=0.2)
            ax.set_ylabel(lab)
    axes[0].axhline(K, color="k", ls=":", lw=0.8, label="K = 10 classes")
    for ax in axes[:2]:
        ax.set_xscale("log")
        ax.set_xlabel("weight decay λ (λ = 0 drawn at the left end)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    axes[1].set_yscale("log")
    ax = axes[2]
    cmap = plt.get_cmap("viridis")
    for j, lam in enumerate(lams):
        r = next(r for r in results if r["weight_decay"] == lam)
        s = np.asarray(hidden(r)[-1]["sigma"])
        ax.semilogy(np.arange(1, len(s) + 1), s / s[0], color=cmap(j / max(1, len(lams) - 1)),
                    label=f"λ = {lam:g}")
    ax.axvline(K + 0.5, color="k", ls=":", lw=0.8)
    ax.set_xlabel("index i")
    ax.set_ylabel("σ_i / σ_1, last hidden matrix (seed 0)")
    ax.set_ylim(bottom=1e-6)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.suptitle(f"MLP on digits, width {results[0]['width']}, depth {results[0]['depth']}: "
                 "low-rank bias of weight decay")
    fig.tight_layout()
    fig.savefig(out / "ranks_vs_weight_decay.png", dpi=110)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weight-decay", type=float, nargs="+", default=[0.0, 1e-4, 1e-3, 3e-3, 1e-2, 3e-2])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--tau", type=float, nargs="+", default=[0.01, 0.05])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "lowrank_bias")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "results.json"
    results = json.loads(path.read_text()) if path.exists() else []
    done = {key(r) for r in results}
    data = load_data()
    for lam in args.weight_decay:
        for seed in args.seeds:
            probe = {"weight_decay": lam, "seed": seed, "steps": args.steps, "width": args.width,
                     "depth": args.depth, "lr": args.lr}
            if key(probe) in done:
                continue
            r = run(lam, seed, args, data)
            results.append(r)
            path.write_text(json.dumps(results, indent=1))
            ranks = [e["rank"][str(args.tau[0])] for e in r["layers"]]
            print(f"λ={lam:g} seed={seed}: train {r['train_acc']:.3f} test {r['test_acc']:.3f}, "
                  f"ranks@{args.tau[0]} {ranks}, NC1 {r['neural_collapse']['nc1']:.3g}, "
                  f"{r['seconds']:.1f} s", flush=True)
    sel = [r for r in results if (r["steps"], r["width"], r["depth"], r["lr"]) ==
           (args.steps, args.width, args.depth, args.lr) and r["weight_decay"] in args.weight_decay
           and r["seed"] in args.seeds]
    for r in sel:
        for e in r["layers"]:
            for t in args.tau:
                if str(t) not in e["rank"]:
                    e["rank"][str(t)] = numerical_rank(e["sigma"], t)
    (args.out / "table.md").write_text(table(sel, args.tau) + "\n")
    plot(sel, args.tau, args.out)
    print(table(sel, args.tau))


if __name__ == "__main__":
    main()
