"""HSS apply: forward+backward time vs N, with the fitted log-log slope (issue 3: <= 1.1).

1-D: N = 2^12 .. 2^21, leaf 16, rank 4, batch 4. 3-D: 16^3 .. 128^3, leaf 64 (4x4x4), rank 8,
batch 1. One channel, float32, for share="none" (every node its own generators, the full HSS
class) and share="level" (translation-tied). Named baseline in the same run, same input:
neuraloperator's ``SpectralConv`` (16 modes in 1-D, 12 per axis in 3-D), O(N log N).

Threads: 1 by default (``--threads``). On a shared 2-core machine, two OpenMP threads that
wait for each other at every small op made the small sizes up to 50x slower and the fitted
slopes meaningless; one thread measures the algorithm. ``bench_hss_vs_fno.py`` reports both.

The slope is fitted to the median times; ``slope_top4`` uses the four largest sizes only,
where fixed per-call overheads (one Python loop over the levels) no longer matter.

    .venv/bin/python benchmarks/bench_hss_scaling.py            # full range
    .venv/bin/python benchmarks/bench_hss_scaling.py --quick    # small sizes only
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from _common import interleaved, peak_rss_mib, write_result
from neuralop.layers.spectral_convolution import SpectralConv

from neuralhss.hss import HSSOperator
from neuralhss.models import count_parameters

GOAL_SLOPE = 1.1




def slope(ns: list[int], ts: list[float]) -> float:
    return float(np.polyfit(np.log(ns), np.log(ts), 1)[0])


def fwd_bwd(op: torch.nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def run() -> None:
        op.zero_grad(set_to_none=True)
        x.grad = None
        op(x).sum().backward()

    return run


def sweep(label: str, grids: list[tuple[int, ...]], leaf: int, rank: int, batch: int,
          rounds: int) -> dict[str, Any]:
    rows = []
    for g in grids:
        n = int(np.prod(g))
        x = torch.randn(batch, 1, *g, requires_grad=True)
        sc = SpectralConv(1, 1, (16,) if len(g) == 1 else (12,) * len(g))
        fns: dict[str, Callable[[], Any]] = {"spectralconv": fwd_bwd(sc, x)}
        params = {"spectralconv": sum(p.numel() for p in sc.parameters())}
        for share in ("none", "level"):
            op = HSSOperator(grid_shape=g, leaf_size=leaf, rank=rank, share=share)
            params[share] = count_parameters(op)
            fns[share] = fwd_bwd(op, x)
        t = interleaved(fns, rounds)
        rows.append({"grid": list(g), "N": n, "params": params,
                     **{k: v for k, v in t.items()}})
        print(f"  {label} N={n:>8}: none {t['none']['median_s'] * 1e3:8.2f} ms, "
              f"level {t['level']['median_s'] * 1e3:8.2f} ms, SpectralConv "
              f"{t['spectralconv']['median_s'] * 1e3:8.2f} ms", flush=True)
    ns = [r["N"] for r in rows]
    out: dict[str, Any] = {"leaf_size": leaf, "rank": rank, "batch": batch, "rows": rows}
    for k in ("none", "level", "spectralconv"):
        med = [r[k]["median_s"] for r in rows]
        mins = [r[k]["min_s"] for r in rows]
        out[f"slope_{k}"] = slope(ns, med)
        out[f"slope_{k}_min_times"] = slope(ns, mins)
        out[f"slope_{k}_top4"] = slope(ns[-4:], med[-4:])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes only (smoke test)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    top1, top3 = (15, 32) if args.quick else (21, 128)
    one_d = [(2**k,) for k in range(12, top1 + 1)]
    three_d = [(s, s, s) for s in (16, 32, 64, 128) if s <= top3]
    res = {"goal_slope": GOAL_SLOPE, "dtype": "float32", "channels": 1,
           "threads": torch.get_num_threads(),
           "timing": "forward+backward, median over interleaved rounds after a warm-up"}
    print("1-D sweep")
    res["1d"] = sweep("1d", one_d, 16, 4, 4, args.rounds)
    print("3-D sweep")
    res["3d"] = sweep("3d", three_d, 64, 8, 1, args.rounds)
    res["peak_rss_mib"] = peak_rss_mib()
    ok = all(res[d][f"slope_{s}"] <= GOAL_SLOPE for d in ("1d", "3d") for s in ("none", "level"))
    res["meets_goal"] = ok
    summary = ", ".join(
        f"{d} slope none {res[d]['slope_none']:.3f} level {res[d]['slope_level']:.3f} "
        f"(top-4 {res[d]['slope_none_top4']:.3f}/{res[d]['slope_level_top4']:.3f}, "
        f"SpectralConv {res[d]['slope_spectralconv']:.3f})" for d in ("1d", "3d"))
    write_result("hss_scaling" + ("_quick" if args.quick else ""), res,
                 f"{summary}; goal <= {GOAL_SLOPE}: {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
