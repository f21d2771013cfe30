"""How many iterations does the convex fit of the linear H² path need, and does a better solver help?

Question: ``h2_linear`` (and the convex start of ``neural_h2``) fits the linear path ``y = A x``
by L-BFGS (when this was written, for a fixed 300 iterations; the count is now chosen on held-out
pairs by early stopping, :func:`neuralhss.train.methods.start_neural_h2`, because of what this
script found).
The fit is a linear least-squares problem in the path's parameters (the near-field kernel and the
far-field couplings). Is its error floor — on 2-D Poisson 64² and 3-D Poisson 32³ the training
error stops near 0.02-0.03 however many samples there are — a limit of the model or of the
solver's budget? And would a solver built for linear least squares reach it sooner?

For each recipe and training-set size n this records, after 50, 100, 300 and 1000 iterations, the
training and test relative L2 errors (mean over samples, in data units) of the linear path fitted
from the same random start by

* ``lbfgs``: what the package does (:func:`neuralhss.hss._lstsq.lbfgs_least_squares`: history 50,
  strong Wolfe line search), run in chunks so that one run passes every checkpoint;
* ``cgls``: conjugate gradients on the normal equations, one product with ``J`` and one with
  ``J^T`` per iteration (``J`` is the linear map from parameters to outputs on the training
  inputs), no line search;
* ``pcgls``: the same with a Jacobi preconditioner: the diagonal of ``J^T J`` taken as the energy
  of each coupling's source moment on the training inputs (the evaluation bases are
  orthonormal), and ``||x||^2`` for the near-field kernel.

Data are the recipes' files (``datasets/*.yaml``, generated into ``--data-dir`` if missing),
scaled by the training RMS as ``neuralhss train`` does; the test set is each file's last 100
samples. One thread.

Run: ``python examples/linear_fit_iterations.py`` (2-D, about 15 minutes on one core; add
``--recipes datasets/poisson3d_32.yaml --n-train 32`` for 3-D, about an hour). Writes
``examples/results/linear_fit_iterations/{results.jsonl,table.md}``. The best 3-D counts at
n = 16 and 64: ``--recipes datasets/poisson3d_32.yaml --n-train 16 64 --solvers lbfgs
--iterations 10 25 50 75 100 150 200 --out examples/results/linear_fit_iterations_3d``.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import torch

from neuralhss.datasets import PDEDataset, generate, load_recipe
from neuralhss.models import build, default_config
from neuralhss.train.loop import to_memory
from neuralhss.train.methods import _boundary_of

METHODS = ("lbfgs", "cgls", "pcgls")


def rel_l2(op: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float(((op(x) - y).flatten(1).norm(dim=1) / y.flatten(1).norm(dim=1)).mean())


def jacobi_diagonal(op, x: torch.Tensor) -> list[torch.Tensor]:
    """Estimated diagonal of ``J^T J`` for ``[op.near, op.coupling]`` (see the module docstring)."""
    with torch.no_grad():
        near = torch.full_like(op.near, float(x.square().sum()))
        energies = []
        for j in range(op.n_levels):
            m = op._padded_moments(x, j)  # (B, C, r, *boxes)
            energies.append(m.square().sum(dim=(0, *range(3, m.ndim))))  # (C, r)
        e = torch.stack(energies)
        if op.share_levels:
            e = e.sum(0, keepdim=True)
        # coupling (levels, C, out moment, in moment, offset): the source moment is the 4th axis
        coupling = e[:, :, None, :, None].expand_as(op.coupling).clone()
    return [near, coupling]


def run_lbfgs(op, params, x, y, checkpoints, xt, yt) -> dict[int, tuple[float, float]]:
    scale = y.square().sum()
    opt = torch.optim.LBFGS(params, lr=1, max_iter=1, history_size=50, tolerance_grad=1e-12,
                            tolerance_change=1e-14, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = (op(x) - y).square().sum() / scale
        loss.backward()
        return loss

    out, done = {}, 0
    for k in sorted(checkpoints):
        opt.param_groups[0]["max_iter"] = k - done  # the history is kept between the calls
        opt.param_groups[0]["max_eval"] = (k - done) * 5 // 4
        opt.step(closure)
        done = k
        out[k] = (rel_l2(op, x, y), rel_l2(op, xt, yt))
    return out


def run_cgls(op, params, x, y, checkpoints, xt, yt, diagonal=None) -> dict[int, tuple[float, float]]:
    """Conjugate gradients on ``J^T J θ = J^T y`` (preconditioned by ``1 / diagonal`` if given)."""

    def apply_j(p):  # J p: the operator with its fitted parameters replaced by p (it is linear in them)
        with torch.no_grad():
            saved = [q.detach().clone() for q in params]
            for q, v in zip(params, p, strict=True):
                q.copy_(v)
            out = op(x)
            for q, v in zip(params, saved, strict=True):
                q.copy_(v)
        return out

    def apply_jt(r):
        for q in params:
            q.grad = None
        with torch.enable_grad():
            (op(x) * r).sum().backward()
        return [q.grad.detach().clone() for q in params]

    def precondition(g):
        if diagonal is None:
            return g
        return [gi / di.clamp_min(1e-300) for gi, di in zip(g, diagonal, strict=True)]

    with torch.no_grad():
        r = y - op(x)
    g = apply_jt(r)
    s = precondition(g)
    p = [si.clone() for si in s]
    gamma = sum(float((gi * si).sum()) for gi, si in zip(g, s, strict=True))
    out = {}
    for k in range(1, max(checkpoints) + 1):
        q = apply_j(p)
        alpha = gamma / float(q.square().sum())
        with torch.no_grad():
            for th, pi in zip(params, p, strict=True):
                th.add_(alpha * pi)
        r = r - alpha * q
        g = apply_jt(r)
        s = precondition(g)
        new = sum(float((gi * si).sum()) for gi, si in zip(g, s, strict=True))
        p = [si + (new / gamma) * pi for si, pi in zip(s, p, strict=True)]
        gamma = new
        if k in checkpoints:
            out[k] = (rel_l2(op, x, y), rel_l2(op, xt, yt))
    return out


def table(rows: list[dict], iterations: list[int]) -> str:
    iterations = sorted(iterations)
    lines = ["| recipe | n | solver | " + " | ".join(f"{k} it. train / test" for k in iterations)
             + f" | seconds ({iterations[-1]} it.) |", "|---" * (len(iterations) + 4) + "|"]
    keyed = {}
    for r in rows:
        keyed.setdefault((r["recipe"], r["n_train"], r["solver"]), {})[r["iterations"]] = r
    for (recipe, n, solver), byk in sorted(keyed.items()):
        cells = [f"{byk[k]['train_rel_l2']:.4f} / {byk[k]['test_rel_l2']:.4f}" if k in byk else "-"
                 for k in iterations]
        sec = max(r["seconds"] for r in byk.values())
        lines.append(f"| {recipe} | {n} | {solver} | " + " | ".join(cells) + f" | {sec:.0f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipes", nargs="+", default=["datasets/poisson2d_64.yaml"])
    ap.add_argument("--n-train", type=int, nargs="+", default=[8, 32, 128])
    ap.add_argument("--iterations", type=int, nargs="+", default=[50, 100, 300, 1000])
    ap.add_argument("--solvers", nargs="+", choices=METHODS, default=list(METHODS))
    ap.add_argument("--data-dir", default="data")
    ap.add_argument("--out", default="examples/results/linear_fit_iterations")
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    res = out / "results.jsonl"
    rows = [json.loads(line) for line in res.read_text().splitlines()] if res.exists() else []
    done = {(r["recipe"], r["n_train"], r["solver"]) for r in rows}
    for recipe_path in args.recipes:
        recipe = load_recipe(recipe_path)
        name = Path(recipe_path).stem
        data = Path(args.data_dir) / f"{name}.h5"
        generate(recipe.problem, data, n_samples=recipe.samples, seed=recipe.seed,
                 params=recipe.params, progress=False)
        for n in args.n_train:
            train = PDEDataset(data, "train", n=n, n_test=100, normalize="scale")
            test = PDEDataset(data, "test", n_test=100, normalize=train.normalizer)
            mem, tmem = to_memory(train), to_memory(test)
            x, y, xt, yt = mem.x.double(), mem.y.double(), tmem.x.double(), tmem.y.double()
            cfg = default_config("neural_h2", 1, 1, tuple(train.grid_shape))
            torch.manual_seed(0)
            start = build("neural_h2", grid_shape=list(train.grid_shape), n_layers=0,
                          leaf_side=cfg["linear_leaf_side"], linear_degree=cfg["linear_degree"],
                          boundary=_boundary_of(train)).double().linear
            for solver in args.solvers:
                if (name, n, solver) in done:
                    continue
                op = copy.deepcopy(start)
                params = [op.near, op.coupling]
                t0 = time.perf_counter()
                if solver == "lbfgs":
                    hist = run_lbfgs(op, params, x, y, args.iterations, xt, yt)
                else:
                    diag = jacobi_diagonal(op, x) if solver == "pcgls" else None
                    hist = run_cgls(op, params, x, y, set(args.iterations), xt, yt, diag)
                sec = time.perf_counter() - t0
                with res.open("a") as f:
                    for k, (tr, te) in sorted(hist.items()):
                        row = {"recipe": name, "n_train": n, "solver": solver, "iterations": k,
                               "train_rel_l2": tr, "test_rel_l2": te, "seconds": sec}
                        rows.append(row)
                        f.write(json.dumps(row) + "\n")
                print(f"{name} n={n:4d} {solver:6s} " + "  ".join(
                    f"{k}: {tr:.4f}/{te:.4f}" for k, (tr, te) in sorted(hist.items()))
                    + f"  ({sec:.0f} s)", flush=True)
    text = table(rows, args.iterations)
    (out / "table.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
