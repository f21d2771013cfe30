"""Fine-tuning pretrained operators to a shifted PDE regime: full, LoRA, AdaLoRA and GeoLoRA.

Question: when a Neural-HSS or FNO model pretrained on one regime is adapted to another from
n ∈ {8, 32, 128} samples, is GeoLoRA (:mod:`neuralhss.lowrank.geolora`) faster per step than
AdaLoRA and no worse in test error at equal trainable parameters, and is its final rank nearly
independent of its initial rank?

Setting (2-D Darcy ``-div(a grad u) = 1`` on a 32×32 grid, u = 0 on the boundary):

* pretraining regime: two-phase coefficient ``a ∈ {3, 12}`` (thresholded GRF);
* fine-tuning regime: log-normal coefficient ``a = exp(GRF)`` (same GRF), both normalised with the
  pretraining statistics (the pretrained model's units: the shift is not normalised away).

Models: Neural-HSS (width 16, 2 blocks, HSS rank 4, top 2 levels untied) and neuraloperator's
FNO (8×8 modes, width 32, 3 layers). Every channel-mixing layer — Neural-HSS's ``Pointwise``
mixers and FNO's kernel-1 ``Conv1d`` (lifting, projection, channel MLPs, skips) — is first
rewritten as an equal ``nn.Linear`` over the channel axis (``ChannelLinear``), the layer type
both peft LoRA and AdaLoRA support, so that all adapter methods adapt *the same layers*. peft
cannot wrap neuraloperator's complex spectral weights or Neural-HSS's HSS generators; those stay
frozen except in full fine-tuning and in ``geolora_spectral`` (GeoLoRA also on FNO's spectral
weights, channel matricisation).

Methods (``--methods``), all Adam, constant learning rate, relative-L2 loss:

* ``full`` — every parameter (``--lr-full``);
* ``lora`` — peft LoRA, rank ``R = --rank``, ``alpha = R``;
* ``adalora`` — peft AdaLoRA, ``init_r = 1.5 R``, ``target_r = R`` (``tinit`` 10 %, ``tfinal``
  20 % of the steps), its orthogonality penalty (weight 0.5) added to the loss by hand (peft adds
  it only to HF-style outputs), ``update_and_allocate`` every step;
* ``geolora`` — initial rank ``R``, ``max_rank = --max-rank``, per-layer ``τ = --tau``;
* ``geolora_budget`` — GeoLoRA with ``τ = 0`` and the global budget set to AdaLoRA's nominal
  final parameter count ``Σ_l R (n_l + m_l + 1)`` (equal trainable parameters);
* ``geolora_spectral`` (FNO only) — ``geolora`` plus adapters on the spectral weights;
* ``geolora_sgd`` — ``geolora`` with SGD (momentum 0.9, ``--lr-sgd``) on the cores instead of
  Adam: SGD is rotation-equivariant, so the core's spectrum — what the τ rule reads — is that of
  the projected gradient, while Adam's elementwise normalisation whitens it in the arbitrary basis
  of the core (its first step is ``±lr`` on every entry of the augmented core: a flat, full-rank
  spectrum that the relative τ rule keeps);
* ``geolora_init<k>``, ``geolora_sgd_init<k>`` — the same from initial rank ``k``
  (``--init-ranks``), run at ``n = --init-rank-n`` for the rank-independence check.

Reported per run: relative L2 test error (``--n-test`` lognormal samples), trainable parameters
(real scalars; AdaLoRA: effective = kept ranks, and allocated = ``init_r``; GeoLoRA: final, and
peak during training, ``r(n+m) + r²`` per adapter), median wall time per training step (forward,
backward, optimizer and rank update; single thread, ``--threads``), and for GeoLoRA the difference
between the merged and the adapted model's predictions. The pretrained model's zero-shot error
on the new regime is the ``pretrained`` row.

Results go to ``OUT/results[_quick].json`` as runs finish (re-running skips finished runs;
datasets and pretrained checkpoints are cached in ``--work-dir``); ``OUT/finetune[_quick].png``
and ``OUT/table[_quick].md`` are redrawn at the end.

Needs peft for the baselines (``pip install -e .[peft]``; ``--methods full geolora ...`` runs without).
Run: ``python examples/finetune_geolora.py --quick`` (about 10–15 minutes on 2 busy cores), or
the full version ``python examples/finetune_geolora.py`` (pretraining 2000 steps on 1000 samples,
500 fine-tuning steps, 3 seeds: hours).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import statistics
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from neuralhss.datasets import PDEDataset, generate  # noqa: E402
from neuralhss.lowrank.geolora import GeoLoRA, adapters, add_adapters  # noqa: E402
from neuralhss.models import build  # noqa: E402
from neuralhss.models.neural_hss import Pointwise  # noqa: E402
from neuralhss.train import GeoLoRAStep, PlainStep, StepStrategy, Trainer  # noqa: E402
from neuralhss.train.loop import relative_l2, to_memory  # noqa: E402

MODELS = {
    "neural_hss": dict(in_channels=1, out_channels=1, grid_shape=[32, 32], hidden_channels=16, n_layers=2,
                       leaf_size=16, rank=4, untie_top=2),
    "fno": dict(in_channels=1, out_channels=1, n_modes=[8, 8], hidden_channels=32, n_layers=3),
}
METHODS = ("full", "lora", "adalora", "geolora", "geolora_budget", "geolora_spectral", "geolora_sgd")
RESOLUTION = 32


# --------------------------------------------------------------------------- models


class ChannelLinear(nn.Module):
    """``nn.Linear`` applied along the channel axis 1 of ``(B, C, *grid)`` (peft can wrap ``.linear``)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        super().__init__()
        self.in_channels, self.out_channels = int(weight.shape[1]), int(weight.shape[0])
        self.linear = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
        with torch.no_grad():
            self.linear.weight.copy_(weight)
            if bias is not None:
                self.linear.bias.copy_(bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.movedim(1, -1)).movedim(-1, 1)


def to_channel_linear(model: nn.Module) -> int:
    """Replace Pointwise mixers and kernel-1 Conv1d (stride 1, no padding) by ChannelLinear."""
    todo = []
    for name, m in model.named_modules():
        if isinstance(m, Pointwise):
            todo.append((name, m.weight.detach(), None if m.bias is None else m.bias.detach()))
        elif (type(m) is nn.Conv1d and m.kernel_size == (1,) and m.groups == 1 and m.stride == (1,)
              and m.padding == (0,) and m.dilation == (1,)):
            todo.append((name, m.weight.detach()[..., 0], None if m.bias is None else m.bias.detach()))
    for name, w, b in todo:
        parent, _, attr = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, attr, ChannelLinear(w, b))
    return len(todo)


def n_real(params) -> int:
    return sum(p.numel() * (2 if p.is_complex() else 1) for p in params)


# --------------------------------------------------------------------------- data


def make_data(work: Path, n_source: int, n_target: int, n_test: int) -> dict:
    """Generate (or reuse) the two Darcy datasets; returns normalised in-memory tensors."""
    common = {"resolution": RESOLUTION}
    src = work / f"darcy_threshold_{RESOLUTION}_{n_source + n_test}.h5"
    tgt = work / f"darcy_lognormal_{RESOLUTION}_{n_target + n_test}.h5"
    generate("darcy", src, n_samples=n_source + n_test, seed=0,
             params={**common, "coefficient": "threshold", "a_low": 3.0, "a_high": 12.0}, progress=False)
    generate("darcy", tgt, n_samples=n_target + n_test, seed=1,
             params={**common, "coefficient": "lognormal"}, progress=False)
    src_train = PDEDataset(src, "train", n_test=n_test, normalize="scale")
    norm = src_train.normalizer
    out = {"source_train": to_memory(src_train),
           "source_test": to_memory(PDEDataset(src, "test", n_test=n_test, normalize=norm)),
           "target_train": to_memory(PDEDataset(tgt, "train", n_test=n_test, normalize=norm)),
           "target_test": to_memory(PDEDataset(tgt, "test", n_test=n_test, normalize=norm))}
    return {k: (v.x, v.y) for k, v in out.items()}


def test_error(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
               batch: int = 25) -> tuple[float, torch.Tensor]:
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(x[i:i + batch]) for i in range(0, len(x), batch)])
    model.train()
    return float(relative_l2(pred, y, 2).mean()), pred


def pretrain(name: str, data: dict, steps: int, batch: int, work: Path) -> tuple[nn.Module, dict]:
    path = work / f"pretrained_{name}_{steps}.pt"
    torch.manual_seed(0)  # before building: the initial weights depend on it
    model = build(name, **MODELS[name])
    if path.exists():
        ckpt = torch.load(path, weights_only=False)
        model.load_state_dict(ckpt["state_dict"])
        return model, ckpt["info"]
    x, y = data["source_train"]
    trainer = make_trainer(model, PlainStep(lambda ps: torch.optim.Adam(ps, lr=1e-3)))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(trainer.optimizer, steps)
    g = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    for step in range(steps):  # batches drawn with replacement, the schedule stepped per batch
        idx = torch.randint(len(x), (min(batch, len(x)),), generator=g)
        trainer.train_one_batch(step, {"x": x[idx], "y": y[idx]})
        sched.step()
    info = {"pretrain_seconds": time.perf_counter() - t0, "pretrain_steps": steps,
            "source_test_rel_l2": test_error(model, *data["source_test"])[0],
            "n_params": n_real(model.parameters())}
    torch.save({"state_dict": model.state_dict(), "info": info}, path)
    return model, info


# --------------------------------------------------------------------------- methods


def _linear_dims(model: nn.Module) -> list[tuple[int, int]]:
    return [tuple(m.weight.shape) for m in model.modules() if type(m) is nn.Linear]


def _adalora_orth(model: nn.Module) -> torch.Tensor:
    """peft's AdaLoRA orthogonality penalty: mean over A, B of ||P Pᵀ − I||_F (A) / ||Pᵀ P − I|| (B)."""
    total, k = 0.0, 0
    for n, p in model.named_parameters():
        if ("lora_A" in n or "lora_B" in n) and p.requires_grad:
            cov = p @ p.T if "lora_A" in n else p.T @ p
            total = total + torch.linalg.matrix_norm(cov - torch.eye(len(cov)))
            k += 1
    return total / max(k, 1)


def make_trainer(model: nn.Module, strategy: StepStrategy) -> Trainer:
    """A trainer taking single steps on given batches (relative L2 over all channels, CPU)."""
    trainer = Trainer(model, strategy, loss=lambda pred, y: relative_l2(pred, y, 2).mean())
    trainer.setup()
    return trainer


class AdaLoRAStep(PlainStep):
    """peft AdaLoRA: its orthogonality penalty (weight 0.5) added to the loss by hand (peft adds
    it only to HF-style outputs), ``update_and_allocate`` after every step."""

    def __init__(self, optimizer) -> None:
        super().__init__(optimizer)
        self.steps = 0

    def step(self, loss, recompute):
        self.optimizer.zero_grad(set_to_none=True)
        (loss + 0.5 * _adalora_orth(self.model)).backward()
        self.optimizer.step()
        self.model.base_model.update_and_allocate(self.steps)
        self.steps += 1
        return loss


def setup(method: str, pretrained: nn.Module, args) -> tuple[nn.Module, Trainer, GeoLoRA | None, dict]:
    """A fresh copy of ``pretrained`` prepared for ``method``: ``(model, trainer, geolora, info)``."""
    model = copy.deepcopy(pretrained)
    steps, r = args.steps, args.rank
    geo, info = None, {}
    if method == "full":
        strategy = PlainStep(lambda ps: torch.optim.Adam(ps, lr=args.lr_full))
        info["trainable_params"] = n_real(model.parameters())
    elif method in ("lora", "adalora"):
        from peft import AdaLoraConfig, LoraConfig, get_peft_model

        if method == "lora":
            cfg = LoraConfig(r=r, lora_alpha=r, target_modules=["linear"], lora_dropout=0.0)
        else:
            init_r = math.ceil(1.5 * r)
            cfg = AdaLoraConfig(init_r=init_r, target_r=r, lora_alpha=init_r, target_modules=["linear"],
                                lora_dropout=0.0, total_step=steps, tinit=max(1, steps // 10),
                                tfinal=max(1, steps // 5), deltaT=1, orth_reg_weight=0.5)
        model = get_peft_model(model, cfg)
        params = [p for p in model.parameters() if p.requires_grad]
        strategy = (AdaLoRAStep if method == "adalora" else PlainStep)(
            lambda ps: torch.optim.Adam([p for p in ps if p.requires_grad], lr=args.lr_adapter))
        info["trainable_params"] = n_real(params)
    else:
        targets = ("linear", "spectral") if method == "geolora_spectral" else ("linear",)
        family, _, init = method.partition("_init")
        init = int(init) if init else r
        add_adapters(model, targets=targets, init_rank=init, max_rank=args.max_rank, tau=args.tau)
        budget = None
        if method == "geolora_budget":
            budget = sum(r * (a + b + 1) for a, b in _linear_dims(pretrained))
            info["budget"] = budget
        if family == "geolora_sgd":
            def factory(ps):
                return torch.optim.SGD(ps, lr=args.lr_sgd, momentum=0.9)
        else:
            def factory(ps):
                return torch.optim.Adam(ps, lr=args.lr_adapter)
        strategy = GeoLoRAStep(tau=0.0 if budget else None, budget=budget, optimizer=factory)
    trainer = make_trainer(model, strategy)
    if isinstance(strategy, GeoLoRAStep):
        geo = strategy.geolora
    return model, trainer, geo, info


def train_step(trainer: Trainer, x: torch.Tensor, y: torch.Tensor, step: int) -> float:
    """One step (forward, backward, optimizer, rank update); returns the data loss."""
    return trainer.train_one_batch(step, {"x": x, "y": y})


def finetune(method: str, pretrained: nn.Module, data: dict, n: int, seed: int, args) -> dict:
    torch.manual_seed(seed)
    model, trainer, geo, info = setup(method, pretrained, args)
    x_all, y_all = data["target_train"]
    x, y = x_all[:n], y_all[:n]
    g = torch.Generator().manual_seed(1000 + seed)
    wall, cpu, losses, hist_params, hist_rank = [], [], [], [], []
    for step in range(args.steps):
        idx = torch.randperm(n, generator=g)[:min(args.batch, n)]
        t0, c0 = time.perf_counter(), time.process_time()
        losses.append(train_step(trainer, x[idx], y[idx], step))
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        if geo is not None:
            hist_params.append(geo.adapter_size())
            hist_rank.append(sum(geo.ranks().values()))
    err, pred = test_error(model, *data["target_test"])
    skip = min(3, len(wall) - 1)
    info.update({"test_rel_l2": err, "train_rel_l2_last": float(np.mean(losses[-5:])),
                 "ms_per_step": 1e3 * statistics.median(wall[skip:]),
                 "cpu_ms_per_step": 1e3 * statistics.median(cpu[skip:]),
                 "train_seconds": float(sum(wall))})
    if method == "adalora":
        eff, alloc = 0, 0
        for m in model.modules():
            if hasattr(m, "lora_E") and "default" in getattr(m, "lora_E", {}):
                k = int((m.lora_E["default"] != 0).sum())
                n_out, n_in = m.get_base_layer().weight.shape
                eff += k * (n_out + n_in + 1)
                alloc += m.lora_E["default"].numel() * (n_out + n_in + 1)
        info.update({"trainable_params": eff, "allocated_params": alloc})
    if geo is not None:
        info.update({"trainable_params": geo.adapter_size(), "peak_params": max(hist_params),
                     "ranks": geo.ranks(), "total_rank": sum(geo.ranks().values()),
                     "param_history": hist_params, "rank_history": hist_rank,
                     "n_adapters": len(adapters(model))})
        merged = geo.merge()
        err_m, pred_m = test_error(merged, *data["target_test"])
        info.update({"merged_test_rel_l2": err_m,
                     "merge_max_abs_diff": float((pred_m - pred).abs().max())})
    return info


def timing(methods: list[str], pretrained: nn.Module, data: dict, args) -> dict:
    """Per-step time of each method, the methods interleaved step by step (same batch, same load)."""
    x, y = (t[:args.batch] for t in data["target_train"])
    setups = {}
    for m in methods:
        torch.manual_seed(0)
        setups[m] = setup(m, pretrained, args)[1]
    wall = {m: [] for m in methods}
    cpu = {m: [] for m in methods}
    for step in range(args.timing_steps):
        for m, trainer in setups.items():
            t0, c0 = time.perf_counter(), time.process_time()
            train_step(trainer, x, y, step)
            wall[m].append(time.perf_counter() - t0)
            cpu[m].append(time.process_time() - c0)
    skip = min(3, args.timing_steps - 1)
    return {m: {"wall_ms": 1e3 * statistics.median(wall[m][skip:]),
                "cpu_ms": 1e3 * statistics.median(cpu[m][skip:]), "steps": args.timing_steps}
            for m in methods}


# --------------------------------------------------------------------------- report


def _init_family(method: str) -> tuple[str, int | None] | None:
    """``("geolora" | "geolora_sgd", initial rank or None for the default)`` for rank-study runs."""
    family, _, init = method.partition("_init")
    if family not in ("geolora", "geolora_sgd"):
        return None
    return family, int(init) if init else None


def plot(rows: list[dict], timings: dict, path: Path, args) -> None:
    models = [m for m in MODELS if any(r["model"] == m for r in rows)]
    fig, axes = plt.subplots(len(models), 3, figsize=(17, 4.6 * len(models)), squeeze=False)
    for ax_row, model in zip(axes, models, strict=True):
        mrows = [r for r in rows if r["model"] == model]
        ax = ax_row[0]
        for method in [m for m in METHODS if any(r["method"] == m for r in mrows)]:
            rr = [r for r in mrows if r["method"] == method]
            ns = sorted({r["n_train"] for r in rr})
            ax.plot(ns, [np.mean([r["test_rel_l2"] for r in rr if r["n_train"] == k]) for k in ns], "o-",
                    label=method)
        zero = [r["test_rel_l2"] for r in mrows if r["method"] == "pretrained"]
        if zero:
            ax.axhline(zero[0], color="k", ls="--", lw=1, label="pretrained (zero-shot)")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("fine-tuning samples n")
        ax.set_ylabel("relative L2 test error (lognormal Darcy)")
        ax.set_title(f"{model}: error")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
        ax = ax_row[1]
        tm = timings.get(model, {})
        meths = list(tm)
        pos = np.arange(len(meths))
        ax.bar(pos - 0.2, [tm[m]["cpu_ms"] for m in meths], 0.4, label="CPU time")
        ax.bar(pos + 0.2, [tm[m]["wall_ms"] for m in meths], 0.4, label="wall time")
        ax.set_xticks(pos, meths, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel("median ms per training step")
        ax.set_title(f"{model}: time per step (interleaved, batch {args.batch}, {args.threads} thread)")
        ax.legend(fontsize=7)
        ax = ax_row[2]
        for r in sorted((r for r in mrows if r["n_train"] == args.init_rank_n and _init_family(r["method"])),
                        key=lambda r: r["method"]):
            family, init = _init_family(r["method"])
            ax.plot(r["param_history"], "--" if family == "geolora_sgd" else "-",
                    label=f"{family} init rank {init or args.rank} (seed {r['seed']})")
        for r in mrows:
            if r["method"] == "lora" and r["n_train"] == args.init_rank_n and r["seed"] == 0:
                ax.axhline(r["trainable_params"], color="gray", ls=":", label=f"LoRA r={args.rank}")
            if r["method"] == "adalora" and r["n_train"] == args.init_rank_n and r["seed"] == 0:
                ax.axhline(r["trainable_params"], color="tab:red", ls=":", label="AdaLoRA effective (final)")
        ax.set_xlabel("step")
        ax.set_ylabel("adapter parameters")
        ax.set_title(f"{model}: GeoLoRA rank adaptation (n={args.init_rank_n})")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def table(rows: list[dict], timings: dict, setting: dict) -> str:
    ns = sorted({r["n_train"] for r in rows if r["n_train"] > 0})
    out = [f"Setting: {json.dumps(setting)}", "",
           "Relative L2 test error on the lognormal regime (mean over seeds); trainable parameters "
           "(real scalars; range over n); time per step: median CPU ms (wall ms) over interleaved "
           "steps of all methods on one batch.", "",
           "| model | method | trainable params | ms / step | " + " | ".join(f"n={k}" for k in ns) + " |",
           "|---" * (4 + len(ns)) + "|"]
    order = ("pretrained",) + METHODS
    for model in MODELS:
        mrows = [r for r in rows if r["model"] == model]
        methods = [m for m in order if any(r["method"] == m for r in mrows)]
        methods += sorted({r["method"] for r in mrows} - set(methods))
        for method in methods:
            rr = [r for r in mrows if r["method"] == method]
            if method == "pretrained":
                out.append(f"| {model} | pretrained (zero-shot) | 0 | – | "
                           + " | ".join(f"{rr[0]['test_rel_l2']:.4f}" for _ in ns) + " |")
                continue
            cells = []
            for k in ns:
                e = [r["test_rel_l2"] for r in rr if r["n_train"] == k]
                cells.append(f"{np.mean(e):.4f}" + (f" ± {np.std(e):.4f}" if len(e) > 1 else "") if e else "")
            p = sorted(r["trainable_params"] for r in rr)
            ptxt = f"{p[0]:,}" if p[0] == p[-1] else f"{p[0]:,}–{p[-1]:,}"
            if method == "adalora":
                ptxt += f" (alloc. {rr[0]['allocated_params']:,})"
            tm = timings.get(model, {}).get(method)
            ttxt = f"{tm['cpu_ms']:.1f} ({tm['wall_ms']:.1f})" if tm else "–"
            out.append(f"| {model} | {method} | {ptxt} | {ttxt} | " + " | ".join(cells) + " |")
    init_rows = [r for r in rows if _init_family(r["method"]) and r["n_train"] == setting["init_rank_n"]]
    if init_rows:
        out += ["", f"GeoLoRA final size vs initial rank (n={setting['init_rank_n']}):", "",
                "| model | optimizer | initial rank | final total rank | final adapter params | peak params "
                "| test error |",
                "|---|---|---|---|---|---|---|"]
        def key(r: dict) -> tuple:
            family, init = _init_family(r["method"])
            return r["model"], family, init or setting["rank"], r["seed"]

        for r in sorted(init_rows, key=key):
            _, family, init, _ = key(r)
            out.append(f"| {r['model']} | {family} | {init} | {r['total_rank']} | "
                       f"{r['trainable_params']:,} | {r['peak_params']:,} | {r['test_rel_l2']:.4f} |")
    merged = [r for r in rows if "merge_max_abs_diff" in r]
    if merged:
        out += ["", f"GeoLoRA merge: largest |merged − adapted| prediction difference over "
                f"{len(merged)} runs: {max(r['merge_max_abs_diff'] for r in merged):.2e}"]
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small budget (about 10-15 minutes on 2 cores)")
    ap.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    ap.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    ap.add_argument("--n-train", type=int, nargs="+", default=[8, 32, 128])
    ap.add_argument("--seeds", type=int, nargs="+", default=None)
    ap.add_argument("--rank", type=int, default=4,
                    help="LoRA rank, AdaLoRA target rank, GeoLoRA initial rank")
    ap.add_argument("--max-rank", type=int, default=32)
    ap.add_argument("--tau", type=float, default=0.15)
    ap.add_argument("--init-ranks", type=int, nargs="*", default=[2, 16])
    ap.add_argument("--init-rank-n", type=int, default=32)
    ap.add_argument("--pretrain-samples", type=int, default=None)
    ap.add_argument("--pretrain-steps", type=int, default=None)
    ap.add_argument("--steps", type=int, default=None, help="fine-tuning steps")
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--n-test", type=int, default=None)
    ap.add_argument("--lr-full", type=float, default=5e-4)
    ap.add_argument("--lr-adapter", type=float, default=3e-3, help="Adam lr of LoRA, AdaLoRA, GeoLoRA")
    ap.add_argument("--lr-sgd", type=float, default=0.05, help="SGD (momentum 0.9) lr of geolora_sgd")
    ap.add_argument("--timing-steps", type=int, default=None,
                    help="interleaved steps per method of the time-per-step benchmark")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--work-dir", default="data/finetune_geolora")
    ap.add_argument("--out", default="examples/results/finetune_geolora")
    args = ap.parse_args()
    q = args.quick
    defaults = {"seeds": [0] if q else [0, 1, 2], "pretrain_samples": 256 if q else 1000,
                "pretrain_steps": 600 if q else 2000, "steps": 150 if q else 500,
                "batch": 8 if q else 16, "n_test": 50 if q else 100, "timing_steps": 25 if q else 100}
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    torch.set_num_threads(args.threads)
    suffix = "_quick" if q else ""
    out, work = Path(args.out), Path(args.work_dir) / ("quick" if q else "full")
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    setting = {k: getattr(args, k) for k in ("pretrain_samples", "pretrain_steps", "steps", "batch", "n_test",
                                             "rank", "max_rank", "tau", "lr_full", "lr_adapter", "lr_sgd",
                                             "init_rank_n", "threads")}
    res_path = out / f"results{suffix}.json"
    saved = json.loads(res_path.read_text()) if res_path.exists() else {}
    if saved and saved.get("setting") != setting:
        raise SystemExit(f"{res_path} holds runs of another setting {saved.get('setting')}; "
                         "use another --out or delete it")
    rows = saved.get("rows", [])
    done = {(r["model"], r["method"], r["n_train"], r["seed"]) for r in rows}

    def save() -> None:
        res_path.write_text(json.dumps({"setting": setting, "pretrain": pre_info, "timing": timings,
                                        "rows": rows}, indent=1) + "\n")

    pre_info, timings = saved.get("pretrain", {}), saved.get("timing", {})
    t_start = time.perf_counter()
    data = make_data(work, args.pretrain_samples, max(args.n_train + [args.init_rank_n]), args.n_test)
    print(f"data ready ({time.perf_counter() - t_start:.0f} s)", flush=True)
    for model_name in args.models:
        pretrained, info = pretrain(model_name, data, args.pretrain_steps, args.batch, work)
        x_chk = data["target_test"][0][:4]
        with torch.no_grad():
            before = pretrained(x_chk)
            converted = to_channel_linear(pretrained)
            gap = float((pretrained(x_chk) - before).abs().max())
        assert gap < 1e-4 * float(before.abs().max()), f"ChannelLinear conversion changed outputs by {gap}"
        pre_info[model_name] = {**info, "channel_linear_layers": converted}
        err0, _ = test_error(pretrained, *data["target_test"])
        if (model_name, "pretrained", 0, 0) not in done:
            rows.append({"model": model_name, "method": "pretrained", "n_train": 0, "seed": 0,
                         "test_rel_l2": err0, "trainable_params": 0, "ms_per_step": 0.0})
            done.add((model_name, "pretrained", 0, 0))
        save()
        print(f"{model_name}: pretrained {info['n_params']:,} params, "
              f"source test {info['source_test_rel_l2']:.4f}, "
              f"zero-shot on the new regime {err0:.4f}", flush=True)
        runs = [(m, n) for n in args.n_train for m in args.methods
                if not (m == "geolora_spectral" and model_name != "fno")]
        runs += [(f"{fam}_init{k}", args.init_rank_n) for fam in ("geolora", "geolora_sgd")
                 if fam in args.methods for k in args.init_ranks if k != args.rank]
        for seed in args.seeds:
            for method, n in runs:
                if (model_name, method, n, seed) in done:
                    continue
                info = finetune(method, pretrained, data, n, seed, args)
                rows.append({"model": model_name, "method": method, "n_train": n, "seed": seed, **info})
                done.add((model_name, method, n, seed))
                save()
                extra = f" ranks→{info['total_rank']}" if "total_rank" in info else ""
                print(f"{model_name:10s} {method:18s} n={n:4d} seed={seed} test {info['test_rel_l2']:.4f} "
                      f"params {info['trainable_params']:,} {info['ms_per_step']:.1f} ms/step{extra} "
                      f"[{time.perf_counter() - t_start:.0f} s]", flush=True)
        if model_name not in timings:
            meths = [m for m in args.methods if not (m == "geolora_spectral" and model_name != "fno")]
            timings[model_name] = timing(meths, pretrained, data, args)
            save()
            print(f"{model_name} time per step (interleaved, median CPU ms): "
                  + ", ".join(f"{m} {v['cpu_ms']:.1f}" for m, v in timings[model_name].items()), flush=True)
    plot(rows, timings, out / f"finetune{suffix}.png", args)
    (out / f"table{suffix}.md").write_text(table(rows, timings, setting) + "\n")
    print(table(rows, timings, setting))
    print(f"results: {res_path}, {out / f'finetune{suffix}.png'}, {out / f'table{suffix}.md'} "
          f"({time.perf_counter() - t_start:.0f} s)")


if __name__ == "__main__":
    main()
