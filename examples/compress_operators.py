"""Compressing neural operators: test error vs parameter count, low-rank training vs baselines.

Question: at equal parameter count, does dynamical low-rank training (DLRT; Tucker-DLRT for the
FNO's complex spectral weights, matrix DLRT for 1×1 convolutions and channel mixers) beat neuraloperator's
fixed-rank TFNO and post-training truncation of a dense model? At which compression does the
test error rise by 10 % over the dense model?

Per dataset (2-D Darcy, 2-D Poisson; ``--resolution`` grid, ``--n-train`` training and
``--n-test`` test samples, normalised by the training mean/std, errors relative L2 in data
units) and per model family:

* ``fno`` (neuraloperator FNO, 16 modes per axis, width 32, 4 layers; the low-data examples'
  configuration):

  - ``dense``: the FNO trained for ``--steps`` AdamW steps;
  - ``tfno``: neuraloperator's TFNO (fixed-rank Tucker spectral weights, no orthonormality, no
    rank adaptivity), rank fractions ``--tfno-ranks``, same steps;
  - ``truncation``: :func:`neuralhss.lowrank.compress` of the trained dense FNO at each rank
    ``--ranks`` (and each τ of ``--taus``), no fine-tuning;
  - ``dlrt_scratch``: an *untrained* FNO compressed to rank ``r``, then trained with DLRT
    (rank-adaptive, ``τ = --dlrt-tau``, ranks capped at ``r``) for the same ``--steps``;
  - ``dlrt_finetune``: the trained dense FNO compressed to rank ``r``, then ``--finetune-steps``
    DLRT steps (lr ``--finetune-lr``) on top of the dense training;

* ``neural_hss`` (Neural-HSS width 8, 2 blocks, HSS rank 4; :mod:`neuralhss.train.methods`):
  the same protocol on its channel mixers (lifting, local ``W v`` terms, projection), the only
  layers ``compress`` converts; ranks ``--hss-ranks``. (No TFNO counterpart.)

``compress`` converts the FNO layers of kinds ``--kinds`` (default: the spectral convolutions
only, as TFNO factorises them; the 1×1 convolutions, about 13k parameters, stay dense) into
:class:`~neuralhss.lowrank.TuckerSpectralConv` with orthonormal factors on the weight modes
``--spectral-modes`` (default all four, as in TFNO: 0 = C_in, 1 = C_out, 2, 3 = mode axes), a
rank ``r`` capping every mode; rows carry this format as ``variant`` (e.g. ``spectral/modes0123``),
so several formats can share one results file. Parameter counts are whole-model real scalars
after training (DLRT ranks can fall below the cap). Rows are keyed by dataset, family, method,
setting and variant: to change the budget (``--steps``…) use another ``--out`` and
``--work-dir``.

Writes ``OUT/results.json`` (one row per run, appended as runs finish; re-running skips finished
runs and resumes interrupted training from ``--work-dir``), ``OUT/error_vs_params.png`` (log-x)
and ``OUT/table.md`` (every run, the error relative to dense, the TFNO and truncation errors
interpolated at the same parameter count, and per method the smallest model within +10 % of the
dense error).

Runs on one thread (``--threads``; the 2-core machine is shared). Full run (about 1.5 h):
``python examples/compress_operators.py``; quick run (about 15 min):
``python examples/compress_operators.py --datasets darcy --steps 320 --finetune-steps 96
--ranks 4 8 12 --tfno-ranks 0.02 0.05 0.2 --hss-ranks 2 --work-dir data/compress_operators_quick``.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from neuralhss.datasets import PDEDataset, generate  # noqa: E402
from neuralhss.lowrank import compress  # noqa: E402
from neuralhss.models import build  # noqa: E402
from neuralhss.train.loop import (  # noqa: E402
    TrainConfig,
    evaluate,
    fit,
    load_checkpoint,
    model_from_checkpoint,
    to_memory,
)
from neuralhss.train.methods import GRADIENT_METHODS  # noqa: E402

METHODS = ("dense", "tfno", "truncation", "dlrt_scratch", "dlrt_finetune")
ALL_KINDS = ("linear", "conv", "spectral", "pointwise")
COLORS = {"dense": "k", "tfno": "tab:orange", "truncation": "tab:gray", "dlrt_scratch": "tab:blue",
          "dlrt_finetune": "tab:green"}
BATCH = 8


def family_config(family: str, grid: tuple[int, ...]) -> tuple[str, dict]:
    name, cfg = GRADIENT_METHODS[family](grid)
    return name, {**cfg, "in_channels": 1, "out_channels": 1}


def train_config(steps: int, n_train: int, lr: float, seed: int, lowrank: dict | None = None) -> TrainConfig:
    per_epoch = -(-n_train // BATCH)
    return TrainConfig(epochs=max(1, round(steps / per_epoch)), batch_size=BATCH, lr=lr, weight_decay=0.0,
                       seed=seed, checkpoint_every=5, progress=False, lowrank=lowrank)


def max_rank(ranks: dict) -> int:
    return max((max(r) if isinstance(r, (list, tuple)) else r) for r in ranks.values())


def variant_name(kinds: tuple[str, ...], modes: tuple[int, ...]) -> str:
    """Label of a compression format: converted layer kinds and Tucker modes of spectral weights."""
    k = "all" if set(kinds) == set(ALL_KINDS) else "+".join(kinds)
    return f"{k}/modes{''.join(str(m) for m in modes)}" if "spectral" in kinds else k


def label(r: dict) -> str:
    return r["method"] + (f" [{r['variant']}]" if r.get("variant") else "")


def interp_error(rows: list[dict], n_params: int) -> float | None:
    """Error of ``rows`` interpolated (log-log, linear) at ``n_params``; None outside their range."""
    pts = sorted((r["n_params"], r["test_rel_l2"]) for r in rows)
    if len(pts) < 2 or not pts[0][0] <= n_params <= pts[-1][0]:
        exact = [e for p, e in pts if p == n_params]
        return exact[0] if exact else None
    lp = np.log([p for p, _ in pts])
    return float(np.exp(np.interp(math.log(n_params), lp, np.log([e for _, e in pts]))))


def within_10(rows: list[dict], dense_err: float) -> dict | None:
    ok = [r for r in rows if r["test_rel_l2"] <= 1.1 * dense_err]
    return min(ok, key=lambda r: r["n_params"]) if ok else None


def table(results: list[dict]) -> str:
    out = []
    for ds, fam in sorted({(r["dataset"], r["family"]) for r in results}):
        rows = [r for r in results if r["dataset"] == ds and r["family"] == fam]
        dense = next((r for r in rows if r["method"] == "dense"), None)
        if dense is None:
            continue
        de, dp = dense["test_rel_l2"], dense["n_params"]
        tfno = [r for r in rows if r["method"] == "tfno"]
        groups = sorted({(METHODS.index(r["method"]), r.get("variant", "")) for r in rows})
        out.append(f"### {ds} — {fam} (dense: {dp:,} parameters, test rel. L2 {de:.4f}, "
                   f"{dense['steps']} steps)\n")
        out.append("| method [compressed layers/Tucker modes] | setting | parameters | % of dense "
                   "| test rel. L2 | vs dense | TFNO at same params | truncation at same params "
                   "| max rank | train s |")
        out.append("|---|---|---|---|---|---|---|---|---|---|")
        for mi, var in groups:
            m = METHODS[mi]
            same = [r for r in rows if r["method"] == m and r.get("variant", "") == var]
            trunc = [r for r in rows if r["method"] == "truncation" and r.get("variant", "") == var]
            for r in sorted(same, key=lambda r: r["n_params"]):
                tf = interp_error(tfno, r["n_params"]) if m not in ("dense", "tfno") else None
                tr = interp_error(trunc, r["n_params"]) if m not in ("dense", "tfno", "truncation") else None
                out.append(
                    f"| {label(r)} | {r['setting']} | {r['n_params']:,} | {100 * r['n_params'] / dp:.1f} "
                    f"| {r['test_rel_l2']:.4f} | {r['test_rel_l2'] / de:.2f}× "
                    f"| {'' if tf is None else f'{tf:.4f}'} | {'' if tr is None else f'{tr:.4f}'} "
                    f"| {r.get('max_rank', '')} | {r.get('train_seconds', 0):.0f} |")
        out.append("")
        out.append("Smallest model within +10 % of the dense test error (measured points):\n")
        for mi, var in groups:
            if METHODS[mi] == "dense":
                continue
            same = [r for r in rows if r["method"] == METHODS[mi] and r.get("variant", "") == var]
            best = within_10(same, de)
            out.append(f"- {label(same[0])}: " + (
                "none of the measured settings" if best is None else
                f"{best['setting']}, {best['n_params']:,} parameters ({100 * best['n_params'] / dp:.1f} % "
                f"of dense, {dp / best['n_params']:.1f}× compression), error {best['test_rel_l2']:.4f}"))
        out.append("")
    return "\n".join(out)


def plot(results: list[dict], path: Path) -> None:
    panels = sorted({(r["dataset"], r["family"]) for r in results})
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.8), squeeze=False)
    styles = ["-", "--", ":", "-."]
    for ax, (ds, fam) in zip(axes[0], panels, strict=True):
        rows = [r for r in results if r["dataset"] == ds and r["family"] == fam]
        variants = sorted({r.get("variant", "") for r in rows} - {""})
        for key in sorted({(METHODS.index(r["method"]), r.get("variant", "")) for r in rows}):
            m, var = METHODS[key[0]], key[1]
            same = [r for r in rows if r["method"] == m and r.get("variant", "") == var]
            pts = sorted((r["n_params"], r["test_rel_l2"]) for r in same)
            if m == "dense":
                ax.axhline(pts[0][1], color="k", ls="--", lw=1, label=f"dense ({pts[0][0]:,} params)")
                ax.axhline(1.1 * pts[0][1], color="k", ls=":", lw=1, label="dense + 10 %")
                ax.plot(*zip(*pts, strict=True), "k*", ms=10)
            else:
                ls = styles[variants.index(var) % len(styles)] if var else "-"
                ax.plot(*zip(*pts, strict=True), "o", ls=ls, color=COLORS[m], label=label(same[0]))
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("parameters (real scalars)")
        ax.set_ylabel("relative L2 test error")
        ax.set_title(f"{ds}: {fam}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


class Runner:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.res_path = self.out / "results.json"
        self.results = json.loads(self.res_path.read_text()) if self.res_path.exists() else []
        self.work = Path(args.work_dir)

    def done(self, ds: str, family: str, method: str, setting: str, variant: str = "") -> bool:
        return any((r["dataset"], r["family"], r["method"], r["setting"], r.get("variant", ""))
                   == (ds, family, method, setting, variant) for r in self.results)

    def record(self, row: dict) -> None:
        self.results.append(row)
        self.res_path.write_text(json.dumps(self.results, indent=1) + "\n")
        print(f"{row['dataset']:8s} {row['family']:10s} {label(row):40s} {row['setting']:10s} "
              f"params {row['n_params']:>9,}  test {row['test_rel_l2']:.4f}  "
              f"{row.get('train_seconds', 0):.0f} s", flush=True)

    def train(self, ds: str, family: str, method: str, setting: str, model: torch.nn.Module,
              steps: int, lr: float, lowrank: dict | None = None, variant: str = "") -> torch.nn.Module:
        """Train (resuming from the work dir), record the row, return the trained model."""
        a = self.args
        name = f"{family}_{method}_{setting}" + (f"_{variant}" if variant else "")
        run_dir = self.work / ds / name.replace("=", "").replace("/", "_").replace("+", "-")
        cfg = train_config(steps, len(self.mem), lr, a.seed, lowrank)
        res = fit(model, self.mem, cfg, out_dir=run_dir, test_set=self.tmem, normalizer=self.norm)
        row = {"dataset": ds, "family": family, "method": method, "setting": setting, "variant": variant,
               "n_params": res["n_params"], "test_rel_l2": res["test_rel_l2"],
               "test_rel_l2_median": res["test_rel_l2_median"], "train_rel_l2": res["train_rel_l2"],
               "steps": cfg.epochs * -(-len(self.mem) // BATCH), "lr": lr,
               "train_seconds": res["train_seconds"], "seed": a.seed}
        if "lowrank" in res:
            row.update(max_rank=max_rank(res["lowrank"]["ranks"]), ranks=res["lowrank"]["ranks"],
                       kappa=res["lowrank"]["kappa"], lowrank=lowrank)
        if not self.done(ds, family, method, setting, variant):
            self.record(row)
        return model

    def dense(self, ds: str, family: str) -> torch.nn.Module:
        a = self.args
        ckpt_path = self.work / ds / f"{family}_dense_" / "checkpoint.pt"
        if self.done(ds, family, "dense", "") and ckpt_path.exists():
            ckpt = load_checkpoint(ckpt_path)
            if ckpt["epoch"] == ckpt["run"]["config"]["epochs"]:
                return model_from_checkpoint(ckpt)
        name, cfg = family_config(family, self.grid)
        torch.manual_seed(a.seed)
        return self.train(ds, family, "dense", "", build(name, **cfg), a.steps, a.lr)

    def evaluate_truncation(self, ds: str, family: str, dense: torch.nn.Module, setting: str,
                            variant: str, **kw) -> None:
        if self.done(ds, family, "truncation", setting, variant):
            return
        c = compress(dense, **kw)
        m = evaluate(c.model, self.tmem, self.norm, BATCH)
        ranks = {e["name"]: list(e["ranks"]) for e in c.layers}
        self.record({"dataset": ds, "family": family, "method": "truncation", "setting": setting,
                     "variant": variant, "n_params": c.params_after, "test_rel_l2": m["test_rel_l2"],
                     "test_rel_l2_median": m["test_rel_l2_median"], "steps": 0, "seed": self.args.seed,
                     "max_rank": max(max(r) for r in ranks.values()), "ranks": ranks})

    def family(self, ds: str, family: str, ranks: list[int], kinds: tuple[str, ...], use_tfno: bool) -> None:
        a = self.args
        modes = tuple(a.spectral_modes)
        variant = variant_name(kinds, modes)
        fmt = {"kinds": list(kinds), "spectral_modes": list(modes)}
        dense = self.dense(ds, family)
        for r in ranks:
            self.evaluate_truncation(ds, family, dense, f"rank={r}", variant, rank=r, kinds=kinds,
                                     spectral_modes=modes)
        for tau in a.taus:
            self.evaluate_truncation(ds, family, dense, f"tau={tau:g}", variant, tau=tau, kinds=kinds,
                                     spectral_modes=modes)
        name, cfg = family_config(family, self.grid)
        if use_tfno:
            for rho in a.tfno_ranks:
                if not self.done(ds, family, "tfno", f"rank={rho:g}"):
                    torch.manual_seed(a.seed)
                    self.train(ds, family, "tfno", f"rank={rho:g}", build("tfno", **{**cfg, "rank": rho}),
                               a.steps, a.lr)
        for r in ranks:
            lowrank = {"tau": a.dlrt_tau, "max_rank": r, "compress": {"rank": r, **fmt}}
            if not self.done(ds, family, "dlrt_scratch", f"rank={r}", variant):
                torch.manual_seed(a.seed)
                self.train(ds, family, "dlrt_scratch", f"rank={r}", build(name, **cfg), a.steps, a.lr,
                           lowrank, variant)
            if not self.done(ds, family, "dlrt_finetune", f"rank={r}", variant):
                self.train(ds, family, "dlrt_finetune", f"rank={r}", copy.deepcopy(dense),
                           a.finetune_steps, a.finetune_lr, lowrank, variant)

    def run(self) -> None:
        a = self.args
        for problem in a.datasets:
            ds = f"{problem}{a.resolution}"
            path = Path(a.data_dir) / f"{problem}2d_{a.resolution}_n{a.n_train + a.n_test}.h5"
            generate(problem, path, n_samples=a.n_train + a.n_test, seed=0,
                     params={"dim": 2, "resolution": a.resolution}, progress=False)
            train = PDEDataset(path, "train", n=a.n_train, n_test=a.n_test, normalize="gaussian")
            test = PDEDataset(path, "test", n_test=a.n_test, normalize=train.normalizer)
            self.mem, self.tmem, self.norm = to_memory(train), to_memory(test), train.normalizer
            self.grid = tuple(train.grid_shape)
            if "fno" in a.families:
                self.family(ds, "fno", a.ranks, tuple(a.kinds), use_tfno=True)
            if "neural_hss" in a.families:
                self.family(ds, "neural_hss", a.hss_ranks, ("pointwise",), use_tfno=False)
            self.report()

    def report(self) -> None:
        plot(self.results, self.out / "error_vs_params.png")
        text = table(self.results)
        (self.out / "table.md").write_text(text + "\n")
        print(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=["darcy", "poisson"], choices=["darcy", "poisson"])
    ap.add_argument("--families", nargs="+", default=["fno", "neural_hss"], choices=["fno", "neural_hss"])
    ap.add_argument("--resolution", type=int, default=32)
    ap.add_argument("--n-train", type=int, default=256)
    ap.add_argument("--n-test", type=int, default=100)
    ap.add_argument("--steps", type=int, default=1024, help="AdamW/DLRT steps from scratch (batch 8)")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--finetune-steps", type=int, default=256,
                    help="DLRT steps after compressing the dense model")
    ap.add_argument("--finetune-lr", type=float, default=3e-4)
    ap.add_argument("--ranks", type=int, nargs="+", default=[4, 6, 8, 12, 16],
                    help="FNO ranks (truncation, DLRT cap and initial rank)")
    ap.add_argument("--hss-ranks", type=int, nargs="+", default=[1, 2, 4], help="Neural-HSS mixer ranks")
    ap.add_argument("--taus", type=float, nargs="*", default=[0.1, 0.3], help="truncation τ values")
    ap.add_argument("--tfno-ranks", type=float, nargs="+", default=[0.01, 0.02, 0.05, 0.2])
    ap.add_argument("--dlrt-tau", type=float, default=0.05, help="DLRT truncation tolerance")
    ap.add_argument("--kinds", nargs="+", default=["spectral"], choices=list(ALL_KINDS),
                    help="FNO layer kinds that compress converts (TFNO factorises the spectral ones)")
    ap.add_argument("--spectral-modes", type=int, nargs="+", default=[0, 1, 2, 3],
                    help="Tucker modes of spectral weights (0 C_in, 1 C_out, 2.. mode axes)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--data-dir", default="data")
    ap.add_argument("--work-dir", default="data/compress_operators", help="checkpoints (resume)")
    ap.add_argument("--out", default="examples/results/compress_operators")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    Runner(args).run()


if __name__ == "__main__":
    main()
