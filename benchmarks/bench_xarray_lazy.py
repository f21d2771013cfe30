"""Opening and reducing a dataset larger than the memory allowed: lazy ``open_xarray`` vs eager.

Generates (or reuses, ``--file``) a 3-D Poisson 128³ file — 16 MiB of float32 per sample over
its two fields, 2 GiB at the default 128 samples — and measures, each in a fresh process:

- ``open_lazy``: ``open_xarray(path)`` (the default);
- ``read_sample``: one sample of ``u`` through the lazy dataset;
- ``mean_chunked``: ``open_xarray(path, chunks=4)["u"].mean()``, a reduction over all samples;
- ``open_eager``: ``open_xarray(path, lazy=False)``, which reads everything (the baseline).

The lazy runs are given an address-space cap (``--cap-mib`` over what the imports take, via
``RLIMIT_AS``, i.e. ``ulimit -v``) several times smaller than the file; the eager one runs
without the cap to show what it needs. Reported: wall time and the peak resident memory the
step adds (VmHWM after minus VmRSS before). The eager mean must equal the chunked one.

Run: ``python benchmarks/bench_xarray_lazy.py [--samples 128] [--cap-mib 512] [--file F --keep]``
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import write_result

CHILD = r"""
import json, resource, sys, time
import numpy as np, xarray, dask.array
from neuralhss.datasets import open_xarray

def status_mib(key):
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith(key)) / 1024

what, path, cap = sys.argv[1], sys.argv[2], int(sys.argv[3])
if cap:
    limit = int((status_mib("VmSize") + cap) * 2**20)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
base = status_mib("VmRSS")
t0 = time.perf_counter()
value = None
if what == "open_lazy":
    ds = open_xarray(path)
elif what == "read_sample":
    ds = open_xarray(path)
    value = float(ds["u"].isel(sample=len(ds.sample) // 2).mean())
elif what == "mean_chunked":
    ds = open_xarray(path, chunks=4)
    value = float(ds["u"].mean(dtype=np.float64).compute())
elif what == "open_eager":
    ds = open_xarray(path, lazy=False)
    value = float(ds["u"].mean(dtype=np.float64))
seconds = time.perf_counter() - t0
print(json.dumps({"seconds": seconds, "added_mib": status_mib("VmHWM") - base, "value": value}))
"""


def measure(what: str, path: Path, cap_mib: int) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, what, str(path), str(cap_mib)],
                         capture_output=True, text=True)
    if out.returncode:
        return {"failed": out.stderr.strip().splitlines()[-1], "cap_mib": cap_mib or None}
    return {**json.loads(out.stdout), "cap_mib": cap_mib or None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=128)
    ap.add_argument("--resolution", type=int, default=128)
    ap.add_argument("--cap-mib", type=int, default=512)
    ap.add_argument("--file", type=Path, help="reuse or keep this file")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    from neuralhss.datasets import generate

    tmp = Path(tempfile.mkdtemp(prefix="neuralhss-bench-"))
    path = args.file or tmp / "poisson3d.h5"
    try:
        t0 = time.perf_counter()
        generate("poisson", path, n_samples=args.samples,
                 params={"dim": 3, "resolution": args.resolution}, progress=True)
        gen_s = time.perf_counter() - t0
        raw_mib = args.samples * 2 * args.resolution**3 * 4 / 2**20
        rows = {w: measure(w, path, args.cap_mib)
                for w in ("open_lazy", "read_sample", "mean_chunked")}
        rows["open_eager"] = measure("open_eager", path, 0)
        lazy, eager = rows["mean_chunked"], rows["open_eager"]
        agree = (lazy.get("value") is not None and eager.get("value") is not None
                 and abs(lazy["value"] - eager["value"]) <= 1e-6 * abs(eager["value"]) + 1e-12)
        payload = {"file": {"samples": args.samples, "grid": [args.resolution] * 3,
                            "fields_mib": raw_mib,
                            "on_disk_mib": path.stat().st_size / 2**20,
                            "generate_s": gen_s},
                   "cap_mib": args.cap_mib, "rows": rows, "means_agree": agree}
        summary = (f"{raw_mib / 1024:.1f} GiB of fields, cap {args.cap_mib} MiB: open "
                   f"{rows['open_lazy'].get('seconds', float('nan')):.3f} s lazy vs "
                   f"{eager.get('seconds', float('nan')):.1f} s eager; chunked mean "
                   f"{lazy.get('seconds', float('nan')):.1f} s, +"
                   f"{lazy.get('added_mib', float('nan')):.0f} MiB (eager +"
                   f"{eager.get('added_mib', float('nan')):.0f} MiB); means agree: {agree}")
        write_result("xarray_lazy", payload, summary)
    finally:
        if not args.keep and args.file is None:
            shutil.rmtree(tmp, ignore_errors=True)
        elif args.file is None:
            print(f"kept {path}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
