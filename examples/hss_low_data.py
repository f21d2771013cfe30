"""How many input-output pairs does it take to learn an elliptic solution operator?

The 1-D Poisson solution operator ``A = T^{-1}``, ``T = tridiag(-1, 2, -1)`` on N interior
nodes, is exactly HSS of rank 2 (its off-diagonal block rows span {1, i}). This example
learns it from ``n`` pairs ``y = A x`` (white-noise inputs ``x``, outputs from a tridiagonal
solve, A is never formed) by three routes and plots the test error against ``n``:

1. **Black-box recovery** ``HSSOperator.from_samples`` (randomized compression, Levitt &
   Martinsson), for several N.
2. **Dense least squares** ``A_ls = Y X^+`` (minimum norm), the obvious linear baseline.
3. **Gradient training** of a linear ``HSSOperator`` (N = 256 by default) under several
   parameterisations, initialisations and optimisers (listed in ``GRAD_ROUTES``).

Identifiability. A leaf block row of A is ``[D_tau | U_tau (rank-r remainder)]``: ``m^2``
numbers for ``D_tau`` plus a rank-``r`` part. Each pair gives ``m`` equations for the
``m`` rows of the leaf, so ``D_tau`` and the remainder's range are determined once the leaf's
local inputs ``X_tau`` (m x n) have full rank *and* ``n - m >= r`` further directions
expose the remainder: ``n >= m + r`` pairs (one level up, nodes have ``2 r`` coordinates and
need ``3 r``). This does not depend on N. A dense N x N matrix has ``N^2`` unknowns and ``N``
equations per pair, so least squares needs ``n = N`` pairs; with fewer it recovers only the
action of A on the span of the inputs (error ~ sqrt(1 - n/N) on white noise).
Gradient training of the HSS generators faces the same identifiability bound, but the loss
is non-convex in (U, V, R, W) jointly with (D, B); with fixed bases it is a convex least
squares problem in (D, B).

Test errors are relative Frobenius errors on 64 fresh white-noise inputs (≈ the relative
operator error ||A_hat - A||_F / ||A||_F) and on 64 smooth inputs (a sine-series Gaussian
random field with spectrum (pi^2 k^2 + 9)^-1, the inputs a PDE dataset would hold).

    .venv/bin/python examples/hss_low_data.py                      # a few minutes on 2 cores
    .venv/bin/python examples/hss_low_data.py --sizes 256 1024 4096 16384 --steps 5000

Writes ``results.json`` and ``test_error_vs_pairs.png`` under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy.fft
import scipy.linalg
import torch

from neuralhss.hss import HSSOperator, from_dense, from_samples

GRAD_ROUTES = {
    "adam_random": "share='none', default random init (orthonormal nested bases), Adam on "
                   "all generators",
    "adam_random_levelscaled": "as adam_random, learning rate of the couplings B of level l "
                               "scaled by node size / leaf size (= a per-level "
                               "parameter scaling, since Adam is invariant to gradient scale)",
    "lbfgs_random": "share='none', random init, L-BFGS (strong Wolfe) on all generators",
    "adam_level_untie": "share='level', untie_top=L//2 (docs/neural_hss.md, low-data section), random init, "
                        "Adam",
    "adam_init_dense_ls": "init = from_dense(dense least-squares fit, rank r), then Adam on "
                          "all generators",
    "lbfgs_fixed_poly_bases": "U, V, R, W fixed to nested Legendre bases of degree < r "
                              "(from_dense of Phi Phi^T), D and B from zero by L-BFGS: a "
                              "convex least-squares fit",
}


def poisson_apply(x: np.ndarray) -> np.ndarray:
    """Rows of x -> T^{-1} x (black box)."""
    n = x.shape[1]
    ab = np.zeros((3, n))
    ab[0, 1:], ab[1], ab[2, :-1] = -1.0, 2.0, -1.0
    return scipy.linalg.solve_banded((1, 1), ab, x.T).T


def grf(rng: np.random.Generator, n_samples: int, n: int) -> np.ndarray:
    """Smooth inputs: sine series with coefficient variance (pi^2 k^2 + 9)^-1."""
    k = np.arange(1, n + 1)
    coef = rng.standard_normal((n_samples, n)) / np.sqrt(np.pi**2 * k**2 + 9.0)
    return scipy.fft.idst(coef, type=1, norm="ortho", axis=1) * np.sqrt(n)


def rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def hss_errors(op: HSSOperator, tests: dict[str, tuple[np.ndarray, np.ndarray]],
               scale: float = 1.0) -> dict[str, float]:
    out = {}
    with torch.no_grad():
        for name, (x, y) in tests.items():
            xt = torch.from_numpy(x)[:, None].to(op.D.dtype)
            yh = op(xt)[:, 0].double().numpy() * scale
            out[name] = rel(yh, y)
    return out


def make_tests(rng: np.random.Generator, n: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    xw, xs = rng.standard_normal((64, n)), grf(rng, 64, n)
    return {"white": (xw, poisson_apply(xw)), "grf": (xs, poisson_apply(xs))}


# ------------------------------------------------------------------ gradient routes


def legendre_bases_op(n: int, leaf: int, rank: int) -> HSSOperator:
    """Nested orthonormal bases spanning polynomials of degree < rank on every node."""
    x = np.linspace(-1.0, 1.0, n)
    phi = np.polynomial.legendre.legvander(x, rank - 1)
    return from_dense(phi @ phi.T, (n,), leaf, rank=rank)


def train(route: str, x: np.ndarray, y: np.ndarray, n: int, leaf: int, rank: int, steps: int,
          lr: float, seed: int) -> tuple[HSSOperator, float, dict[str, Any]]:
    """Fit a linear HSSOperator to (x, y); returns (op, output scale, info)."""
    torch.manual_seed(seed)
    scale = float(np.std(y))  # train on unit-scale outputs; undo when predicting
    xt = torch.from_numpy(x)[:, None]
    yt = torch.from_numpy(y / scale)[:, None]
    info: dict[str, Any] = {}
    if route == "adam_level_untie":
        levels = HSSOperator(grid_shape=(n,), leaf_size=leaf, rank=rank).n_levels
        op = HSSOperator(grid_shape=(n,), leaf_size=leaf, rank=rank, share="level",
                         untie_top=levels // 2,
                         dtype=torch.float64)
    else:
        op = HSSOperator(grid_shape=(n,), leaf_size=leaf, rank=rank, share="none", dtype=torch.float64)
    if route == "adam_init_dense_ls":
        a_ls = (y / scale).T @ np.linalg.pinv(x.T)
        op.load_state_dict(from_dense(a_ls, (n,), leaf, rank=rank).state_dict())
    trainable = list(op.parameters())
    if route == "lbfgs_fixed_poly_bases":
        basis = legendre_bases_op(n, leaf, rank)
        sd = basis.state_dict()
        op.load_state_dict(sd)
        with torch.no_grad():
            op.D.zero_()
            for b in op.B:
                b.zero_()
        for p in [op.U, op.V, *op.R, *op.W]:
            p.requires_grad_(False)
        trainable = [op.D, *op.B]

    def loss_fn() -> torch.Tensor:
        return ((op(xt) - yt) ** 2).sum() / (yt**2).sum()

    t0 = time.perf_counter()
    if route.startswith("lbfgs"):
        opt = torch.optim.LBFGS(trainable, lr=1.0, max_iter=steps, history_size=50,
                                tolerance_grad=1e-14, tolerance_change=1e-16,
                                line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = loss_fn()
            loss.backward()
            return loss

        opt.step(closure)
        info["iterations"] = opt.state[opt._params[0]].get("n_iter", None)
    else:
        groups = [{"params": trainable, "lr": lr}]
        if route == "adam_random_levelscaled":
            bs = set(map(id, op.B))
            groups = [{"params": [p for p in trainable if id(p) not in bs], "lr": lr}]
            for lev, b in enumerate(op.B, start=1):
                groups.append({"params": [b], "lr": lr * op.tree.node_size(lev) / leaf})
        opt = torch.optim.Adam(groups)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
        for _ in range(steps):
            opt.zero_grad()
            loss = loss_fn()
            loss.backward()
            opt.step()
            sched.step()
    with torch.no_grad():
        info["train_rel_error"] = float(loss_fn().sqrt())
    info["seconds"] = time.perf_counter() - t0
    info["parameters"] = sum(p.numel() for p in trainable)
    return op, scale, info


# ------------------------------------------------------------------ main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="examples/results/hss_low_data")
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 1024, 4096],
                    help="grid sizes N for from_samples and dense least squares")
    ap.add_argument("--leaf", type=int, default=16)
    ap.add_argument("--rank", type=int, default=2)
    ap.add_argument("--pairs", type=int, nargs="+",
                    default=[2, 4, 8, 12, 16, 17, 18, 20, 24, 32, 48, 64, 128, 256])
    ap.add_argument("--grad-n", type=int, default=256, help="grid size for gradient training")
    ap.add_argument("--grad-pairs", type=int, nargs="+", default=[4, 8, 16, 24, 32, 64])
    ap.add_argument("--grad-routes", nargs="+", default=list(GRAD_ROUTES))
    ap.add_argument("--steps", type=int, default=1500, help="Adam steps / L-BFGS iterations")
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)  # small ops: one thread is faster on a shared box
    m, r = args.leaf, args.rank
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    res: dict[str, Any] = {"operator": "inverse of tridiag(-1, 2, -1) (1-D Poisson)",
                           "leaf_size": m, "rank": r, "min_pairs_theory": m + r,
                           "from_samples": {}, "dense_ls": {}, "gradient": {},
                           "gradient_routes": {k: GRAD_ROUTES[k] for k in args.grad_routes}}

    for n in args.sizes:
        rng = np.random.default_rng([args.seed, n])
        tests = make_tests(rng, n)
        pool = rng.standard_normal((max(args.pairs), n))
        ypool = poisson_apply(pool)
        fs, ls = [], []
        for k in args.pairs:
            x, y = pool[:k], ypool[:k]
            row: dict[str, Any] = {"pairs": k}
            try:
                t0 = time.perf_counter()
                op = from_samples(x, y, m, r)
                row["seconds"] = time.perf_counter() - t0
                row.update(hss_errors(op, tests))
            except ValueError as e:  # fewer pairs than the identifiability bound
                row["error"] = str(e).split(":")[0]
            fs.append(row)
            if k <= n:
                a_ls = y.T @ np.linalg.pinv(x.T)
                ls.append({"pairs": k, **{name: rel(xx @ a_ls.T, yy)
                                          for name, (xx, yy) in tests.items()}})
        res["from_samples"][str(n)] = fs
        res["dense_ls"][str(n)] = ls
        ok = [f["pairs"] for f in fs if f.get("white", 1.0) < 1e-8]
        res.setdefault("from_samples_min_pairs_1e-8", {})[str(n)] = min(ok) if ok else None
        print(f"N={n}: from_samples reaches 1e-8 from {min(ok) if ok else None} pairs; errors "
              + ", ".join(f"{f['pairs']}:{f['white']:.1e}" for f in fs if "white" in f),
              flush=True)
        print("       dense LS: " + ", ".join(f"{f['pairs']}:{f['white']:.2f}" for f in ls),
              flush=True)

    n = args.grad_n
    rng = np.random.default_rng([args.seed, n, 1])
    tests = make_tests(rng, n)
    pool = rng.standard_normal((max(args.grad_pairs), n))
    ypool = poisson_apply(pool)
    for route in args.grad_routes:
        rows = []
        for k in args.grad_pairs:
            op, scale, info = train(route, pool[:k], ypool[:k], n, m, r, args.steps, args.lr,
                                    args.seed)
            rows.append({"pairs": k, **info, **hss_errors(op, tests, scale)})
            print(f"grad N={n} {route:24s} pairs={k:3d}: train {info['train_rel_error']:.2e} "
                  f"test white {rows[-1]['white']:.2e} grf {rows[-1]['grf']:.2e} "
                  f"({info['seconds']:.1f} s)", flush=True)
        res["gradient"][route] = rows
    res["gradient_n"] = n
    res["steps"] = args.steps
    res["command"] = "python examples/hss_low_data.py " + " ".join(
        f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
        for k, v in vars(args).items())
    (out / "results.json").write_text(json.dumps(res, indent=2) + "\n")
    plot(res, out / "test_error_vs_pairs.png")
    print(f"results: {out / 'results.json'}, plot: {out / 'test_error_vs_pairs.png'}")


def plot(res: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 5), sharey=True)
    floor = 1e-16
    for ax, which in zip(axes, ("white", "grf"), strict=True):
        for i, (n, rows) in enumerate(res["from_samples"].items()):
            pts = [(f["pairs"], max(f[which], floor)) for f in rows if which in f]
            ax.plot(*zip(*pts, strict=True), "o-", color=f"C{i}",
                    label=f"from_samples, N={n}")
            ls = res["dense_ls"][n]
            ax.plot([f["pairs"] for f in ls], [max(f[which], floor) for f in ls], "--",
                    color=f"C{i}", label=f"dense least squares, N={n}")
        for j, (route, rows) in enumerate(res["gradient"].items()):
            ax.plot([f["pairs"] for f in rows], [max(f[which], floor) for f in rows], "s:",
                    color=f"C{j + 4}", label=f"{route}, N={res['gradient_n']}")
        ax.axvline(res["min_pairs_theory"], color="k", lw=0.8, ls=":")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("number of training pairs")
        ax.set_title(f"test inputs: {'white noise' if which == 'white' else 'smooth GRF'}")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("relative test error")
    axes[1].legend(fontsize=7, loc="lower left")
    fig.suptitle(f"1-D Poisson solution operator, leaf {res['leaf_size']}, rank {res['rank']}"
                 f" (dotted line: m + r = {res['min_pairs_theory']} pairs)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
