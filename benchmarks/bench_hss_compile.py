"""torch.compile on the HSS apply: forward+backward time, eager vs compiled, same run.

Run: ``python benchmarks/bench_hss_compile.py`` (first compiled call excluded: it compiles).
"""

from __future__ import annotations

import time

import torch
from _common import interleaved, write_result

from neuralhss.hss import HSSOperator

CASES = {
    "1d_65536_c1_none": dict(grid_shape=(65536,), leaf_size=16, rank=4, share="none", ch=1, batch=4),
    "2d_128x128_c16_level": dict(grid_shape=(128, 128), leaf_size=16, rank=4, share="level", ch=16,
                                 batch=4),
    "3d_32cube_c1_level": dict(grid_shape=(32, 32, 32), leaf_size=64, rank=8, share="level", ch=1,
                               batch=4),
}


def main() -> None:
    torch.manual_seed(0)
    rows = {}
    for name, c in CASES.items():
        op = HSSOperator(c["ch"], c["ch"], grid_shape=c["grid_shape"], leaf_size=c["leaf_size"],
                         rank=c["rank"], share=c["share"])
        x = torch.randn(c["batch"], c["ch"], *c["grid_shape"])
        compiled = torch.compile(op)
        t0 = time.perf_counter()
        compiled(x).square().sum().backward()
        compile_s = time.perf_counter() - t0
        torch.testing.assert_close(compiled(x), op(x), rtol=1e-4, atol=1e-5)

        def step(model, x=x):
            return lambda: model(x).square().sum().backward()

        t = interleaved({"eager": step(op), "compiled": step(compiled)}, rounds=7)
        rows[name] = {**{k: v for k, v in c.items() if k != "grid_shape"},
                      "grid_shape": list(c["grid_shape"]), "first_call_s": compile_s, **t,
                      "speedup": t["eager"]["median_s"] / t["compiled"]["median_s"]}
        print(f"  {name}: eager {t['eager']['median_s'] * 1e3:.1f} ms, compiled "
              f"{t['compiled']['median_s'] * 1e3:.1f} ms ({rows[name]['speedup']:.2f}x), "
              f"first call {compile_s:.1f} s")
    summary = ", ".join(f"{k} {v['speedup']:.2f}x" for k, v in rows.items())
    write_result("hss_compile", {"threads": torch.get_num_threads(), "cases": rows},
                 f"torch.compile speed-up (fwd+bwd): {summary}")


if __name__ == "__main__":
    main()
