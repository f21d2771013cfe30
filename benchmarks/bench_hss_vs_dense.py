"""HSS apply vs a dense matvec with the same matrix: where does HSS overtake?

1-D grids N = 2^6 .. 2^14, leaf 16, rank 4, share="none" (the exact HSS class), float32,
forward only (no autograd). Baseline in the same run: ``A @ x`` with the dense ``(N, N)``
matrix ``op.to_dense()`` of the very same operator (one BLAS GEMV/GEMM). Batches of 1 and
32 vectors. Threads: 1 by default (see bench_hss_scaling.py for why).

    .venv/bin/python benchmarks/bench_hss_vs_dense.py
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import torch
from _common import interleaved, peak_rss_mib, write_result

from neuralhss.hss import HSSOperator


def crossover(rows: list[dict[str, Any]], batch: int) -> int | None:
    """Smallest N from which HSS is faster at every larger size of the sweep."""
    best = None
    for r in reversed(rows):
        if r[f"hss_b{batch}"]["median_s"] < r[f"dense_b{batch}"]["median_s"]:
            best = r["N"]
        else:
            break
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-log2", type=int, default=14)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows = []
    for k in range(6, args.max_log2 + 1):
        n = 2**k
        op = HSSOperator(grid_shape=(n,), leaf_size=16, rank=4, share="none")
        with torch.no_grad():
            A = op.to_dense()[0, 0].contiguous()
        fns: dict[str, Callable[[], Any]] = {}
        for b in (1, 32):
            x = torch.randn(b, 1, n)
            xd = x[:, 0].T.contiguous()

            def hss(x: torch.Tensor = x, op: HSSOperator = op) -> None:
                with torch.no_grad():
                    op(x)

            fns[f"hss_b{b}"] = hss
            fns[f"dense_b{b}"] = lambda A=A, xd=xd: A @ xd
        t = interleaved(fns, args.rounds)
        rows.append({"N": n, **t})
        print(f"  N={n:>6}: " + ", ".join(f"{key} {v['median_s'] * 1e6:9.1f} us"
                                          for key, v in t.items()), flush=True)
        del A
    res = {"leaf_size": 16, "rank": 4, "share": "none", "dtype": "float32",
           "threads": torch.get_num_threads(), "rows": rows,
           "crossover_N_batch1": crossover(rows, 1), "crossover_N_batch32": crossover(rows, 32),
           "peak_rss_mib": peak_rss_mib()}
    top = rows[-1]
    write_result(
        "hss_vs_dense", res,
        f"HSS overtakes dense matvec from N={res['crossover_N_batch1']} (1 vector) and "
        f"N={res['crossover_N_batch32']} (32 vectors); at N={top['N']}: dense/HSS = "
        f"{top['dense_b1']['median_s'] / top['hss_b1']['median_s']:.1f}x (1 vector), "
        f"{top['dense_b32']['median_s'] / top['hss_b32']['median_s']:.1f}x (32 vectors)")


if __name__ == "__main__":
    main()
