"""How fragile are trained operators? Worst-case, low-rank and random input perturbations.

Question: for operators trained on the same data — Neural-HSS, FNO, the FNO compressed to
Tucker rank ``--rank`` and fine-tuned by DLRT, and the same fine-tuned in robust mode
(condition number of every Tucker core clamped to ``--kappa-max``) — how much does each
amplify a relative input perturbation of size ε, for random noise, for the worst perturbation
PGD finds, and for the worst perturbation of rank ≤ r per channel (low-rank PGD)?

Data: 2-D Darcy on 32² nodes (256 training, 100 test samples); the dense models are trained
with :func:`neuralhss.train.fit` for ``--steps`` AdamW steps, the compressed ones fine-tuned
from the dense FNO for ``--finetune-steps`` DLRT steps (lr 3e-4), batch 8 (all resumed from
``--work-dir`` when re-run). Unconstrained DLRT fine-tuning drives κ(S) to 3–11 here
(``examples/compress_operators.py``), so the default bound 2 is active. Attacks run in the data's own units
(:class:`neuralhss.lowrank.InDataUnits`) on ``--n-samples`` test samples; the amplification
is (‖G(x+δ) − G(x)‖/‖G(x)‖) ÷ (‖δ‖/‖x‖) per sample (mean and max reported).

Writes ``OUT/results.json`` and ``OUT/table.md``. Run:
``python examples/robustness.py`` (about 10 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import torch

from neuralhss.datasets import PDEDataset, generate
from neuralhss.lowrank import InDataUnits, lowrank_pgd, pgd, random_noise
from neuralhss.models import build
from neuralhss.train import TrainConfig, fit, to_memory
from neuralhss.train.methods import GRADIENT_METHODS

BATCH = 8


def configs(grid: tuple[int, ...]) -> dict[str, tuple[str, dict]]:
    out = {}
    for family in ("neural_hss", "fno"):
        name, c = GRADIENT_METHODS[family](grid)
        out[family] = (name, {**c, "in_channels": 1, "out_channels": 1})
    return out


def train_config(steps: int, n: int, lr: float, lowrank: dict | None) -> TrainConfig:
    return TrainConfig(epochs=max(1, round(steps / -(-n // BATCH))), batch_size=BATCH, lr=lr,
                       weight_decay=0.0, seed=0, checkpoint_every=5, progress=False, lowrank=lowrank)


def run_attack(attack: str, model: torch.nn.Module, x: torch.Tensor, eps: float,
               args: argparse.Namespace) -> tuple[torch.Tensor, torch.Tensor]:
    if attack == "random":
        return random_noise(model, x, eps)
    if attack == "pgd":
        return pgd(model, x, eps, steps=args.attack_steps)
    return lowrank_pgd(model, x, eps, args.attack_rank, steps=args.attack_steps, init="pgd", warm_steps=5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=320)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--finetune-steps", type=int, default=96)
    ap.add_argument("--kappa-max", type=float, default=2.0)
    ap.add_argument("--tau", type=float, default=0.05)
    ap.add_argument("--eps", type=float, nargs="+", default=[0.01, 0.05])
    ap.add_argument("--attack-rank", type=int, default=4)
    ap.add_argument("--attack-steps", type=int, default=20)
    ap.add_argument("--n-samples", type=int, default=16)
    ap.add_argument("--data-dir", default="data/robustness")
    ap.add_argument("--work-dir", default="data/robustness/runs")
    ap.add_argument("--out", default="examples/results/robustness")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = Path(args.data_dir) / "darcy2d_32.h5"
    generate("darcy", path, n_samples=356, seed=0, params={"dim": 2, "resolution": 32}, progress=False)
    train = PDEDataset(path, "train", n=256, n_test=100, normalize="gaussian")
    test = PDEDataset(path, "test", n_test=100, normalize=train.normalizer)
    mem, tmem = to_memory(train), to_memory(test)
    rows = []
    compressed = {"tau": args.tau, "max_rank": args.rank,
                  "compress": {"rank": args.rank, "kinds": ["spectral"], "spectral_modes": [0, 1, 2, 3]}}
    runs = {"neural_hss": ("neural_hss", None, args.steps, 1e-3),
            "fno": ("fno", None, args.steps, 1e-3),
            f"fno_dlrt_r{args.rank}": ("fno", compressed, args.finetune_steps, 3e-4),
            f"fno_dlrt_r{args.rank}_kappa{args.kappa_max:g}":
                ("fno", {**compressed, "kappa_max": args.kappa_max}, args.finetune_steps, 3e-4)}
    cfgs = configs(tuple(train.grid_shape))
    trained: dict[str, torch.nn.Module] = {}
    for name, (family, lowrank, steps, lr) in runs.items():
        torch.manual_seed(0)
        # The compressed models start from the trained dense FNO (DLRT fine-tuning).
        model = copy.deepcopy(trained["fno"]) if lowrank else build(cfgs[family][0], **cfgs[family][1])
        res = fit(model, mem, train_config(steps, len(mem), lr, lowrank),
                  out_dir=Path(args.work_dir) / name, test_set=tmem, normalizer=train.normalizer)
        trained[name] = model
        model.eval()
        phys = InDataUnits(model, train.normalizer)
        x = phys.decode_x(tmem.x[: args.n_samples])
        row = {"model": name, "n_params": res["n_params"], "test_rel_l2": res["test_rel_l2"],
               "kappa": res.get("lowrank", {}).get("kappa"), "attacks": {}}
        for eps in args.eps:
            for attack in ("random", "pgd", f"lowrank_r{args.attack_rank}"):
                t0 = time.perf_counter()
                _, amp = run_attack(attack, phys, x, eps, args)
                row["attacks"][f"{attack}@{eps:g}"] = {"mean": float(amp.mean()), "max": float(amp.max()),
                                                       "seconds": time.perf_counter() - t0}
        rows.append(row)
        print(name, json.dumps({k: round(v["mean"], 3) for k, v in row["attacks"].items()}), flush=True)
    (out / "results.json").write_text(json.dumps({"settings": vars(args), "rows": rows}, indent=1) + "\n")
    keys = list(rows[0]["attacks"])
    lines = ["| model | parameters | test rel. L2 | max κ(S) | " + " | ".join(keys) + " |",
             "|---" * (4 + len(keys)) + "|"]
    for r in rows:
        kappa = f"{r['kappa']:.1f}" if isinstance(r["kappa"], (int, float)) else "—"
        lines.append(f"| {r['model']} | {r['n_params']:,} | {r['test_rel_l2']:.4f} | {kappa} | "
                     + " | ".join(f"{r['attacks'][k]['mean']:.2f} (max {r['attacks'][k]['max']:.2f})"
                                  for k in keys) + " |")
    text = ("Amplification (‖G(x+δ)−G(x)‖/‖G(x)‖)/(‖δ‖/‖x‖), mean (max) over "
            f"{args.n_samples} test samples; attack@ε.\n\n" + "\n".join(lines))
    (out / "table.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
